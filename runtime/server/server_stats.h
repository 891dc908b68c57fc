/* The server's counters (shm/counters.h): one inline call per event in
 * the serving loop (server.c), the single writer of its block and of its
 * row of staleness cells. */
#ifndef HPSI_SERVER_STATS_H
#define HPSI_SERVER_STATS_H

#include "net/codec.h"
#include "runtime/server/serve.h"
#include "runtime/server/store.h"
#include "shm/bell.h"
#include "shm/segment.h"

/* A request was answered: its keys and the value bytes in and out. */
static inline void hpsi_sstat_answered(struct hpsi_counters *c, const struct hpsi_msg_hdr *in,
				       const struct hpsi_msg_hdr *out)
{
	hpsi_stat_add(&c->requests, 1);
	if (in->type != HPSI_MSG_PULL) {
		hpsi_stat_add(&c->push_keys, in->nkeys);
		hpsi_stat_add(&c->push_bytes, in->val_bytes);
	}
	if (in->type != HPSI_MSG_PUSH) {
		hpsi_stat_add(&c->pull_keys, in->nkeys);
		hpsi_stat_add(&c->pull_bytes, out->val_bytes);
	}
	hpsi_stat_error(c, out->status);
}

/* A pull at `clock` is answered while the slowest worker is at `slowest`:
 * its staleness goes to this server's cell of the worker. */
static inline void hpsi_sstat_stale(const struct hpsi_seg *seg, uint32_t server, uint32_t worker, uint32_t clock,
				    uint32_t slowest)
{
	struct hpsi_stale_cell *c = hpsi_seg_stale(seg, server, worker);
	uint64_t behind = slowest != UINT32_MAX && clock > slowest ? clock - slowest : 0;
	hpsi_stat_add(&c->pulls, 1);
	hpsi_stat_add(&c->sum, behind);
	hpsi_stat_max(&c->max, behind);
}

/* Before the handler: the start time when this call is one timed (every
 * HPSI_STAT_SAMPLE-th), else 0. */
static inline int64_t hpsi_sstat_handler_begin(struct hpsi_counters *c)
{
	uint64_t n = hpsi_stat_get(&c->handled);
	hpsi_stat_set(&c->handled, n + 1);
	return n % HPSI_STAT_SAMPLE == 0 ? hpsi_now_ns() : 0;
}

static inline void hpsi_sstat_handler_end(struct hpsi_counters *c, int64_t start)
{
	if (!start)
		return;
	hpsi_stat_add(&c->updater_ns_sampled, (uint64_t)(hpsi_now_ns() - start));
	hpsi_stat_add(&c->updater_samples, 1);
}

/* A request is held back for the first time; returns when. */
static inline int64_t hpsi_sstat_hold(struct hpsi_counters *c)
{
	hpsi_stat_add(&c->held_now, 1);
	hpsi_stat_add(&c->held_total, 1);
	return hpsi_now_ns();
}

/* A held request was served, or its worker finished. */
static inline void hpsi_sstat_unhold(struct hpsi_counters *c, int64_t since)
{
	hpsi_stat_set(&c->held_now, hpsi_stat_get(&c->held_now) - 1);
	hpsi_stat_add(&c->held_ns, (uint64_t)(hpsi_now_ns() - since));
}

/* Once per serving pass that did work: the size of the stores of every
 * key range this server holds (its own and those it backs up). */
static inline void hpsi_sstat_stores(struct server *sv)
{
	uint64_t keys = 0, bytes = 0;
	for (uint32_t i = 0; i < sv->nranges; i++)
		if (sv->ranges[i].store) {
			keys += hpsi_store_size(sv->ranges[i].store);
			bytes += hpsi_store_bytes(sv->ranges[i].store);
		}
	hpsi_stat_set(&sv->stats->store_keys, keys);
	hpsi_stat_set(&sv->stats->store_bytes, bytes);
}

#endif
