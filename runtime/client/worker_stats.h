/* The worker's counters (shm/counters.h): one inline call per event, so
 * that request.c and worker.c each gain a line, not a block. Which line of
 * the block a helper writes decides who may call it: line 0 under
 * submit_lock, line 1 under poll_lock, lines 2 and the errors from any
 * thread. */
#ifndef HPSI_WORKER_STATS_H
#define HPSI_WORKER_STATS_H

#include "runtime/client/worker.h"
#include "shm/counters.h"
#include "shm/bell.h"

/* Under submit_lock: a request was taken (its parts are being sent). */
static inline void hpsi_wstat_submit(struct hps_worker *w, int type, size_t nkeys)
{
	struct hpsi_counters *c = w->stats;
	hpsi_stat_add(&c->requests, 1);
	if (type != HPS_REQ_PULL)
		hpsi_stat_add(&c->push_keys, nkeys);
	if (type != HPS_REQ_PUSH)
		hpsi_stat_add(&c->pull_keys, nkeys);
}

/* Under submit_lock: value bytes of a part put on a ring. */
static inline void hpsi_wstat_pushed(struct hps_worker *w, uint64_t bytes)
{
	hpsi_stat_add(&w->stats->push_bytes, bytes);
}

/* Under submit_lock: the worker's clock moved. */
static inline void hpsi_wstat_clock(struct hps_worker *w)
{
	hpsi_stat_set(&w->stats->clock, w->clock);
}

/* Under poll_lock: a request completed with `status`. */
static inline void hpsi_wstat_done(struct hps_worker *w, int status)
{
	hpsi_stat_add(&w->stats->completed, 1);
	hpsi_stat_error(w->stats, status);
}

/* Under poll_lock: an answer arrived with these value bytes. */
static inline void hpsi_wstat_answer(struct hps_worker *w, uint64_t bytes)
{
	hpsi_stat_add(&w->stats->pull_bytes, bytes);
}

/* Under poll_lock: bytes that waited in an answer ring. */
static inline void hpsi_wstat_resp_ring(struct hps_worker *w, uint32_t bytes)
{
	hpsi_stat_max(&w->stats->resp_hwm, bytes);
}

/* Any thread: a wait starts; `blocked` when its request is not done yet.
 * Returns the start time when this wait is one timed (every
 * HPSI_STAT_SAMPLE-th blocking wait: a clock read costs about as much
 * as the rest of the counters of a request), else 0. */
static inline int64_t hpsi_wstat_wait_begin(struct hps_worker *w, int blocked)
{
	if (!blocked) {
		hpsi_stat_add_shared(&w->stats->waits_done, 1);
		return 0;
	}
	uint64_t n = atomic_fetch_add_explicit(&w->stats->waits_blocked, 1, memory_order_relaxed);
	return n % HPSI_STAT_SAMPLE == 0 ? hpsi_now_ns() : 0;
}

static inline void hpsi_wstat_wait_end(struct hps_worker *w, int64_t start)
{
	if (!start)
		return;
	hpsi_stat_add_shared(&w->stats->wait_ns_sampled, (uint64_t)(hpsi_now_ns() - start));
	hpsi_stat_add_shared(&w->stats->wait_samples, 1);
}

#endif
