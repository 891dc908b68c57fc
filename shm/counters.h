/* Counters of a job's processes, in the shared segment: one block per node
 * (struct hpsi_counters) and one for the host's bridge, with a line per peer
 * host. `hps top`, `hps metrics` and `hps launch --summary` read them while
 * the job runs (runtime/cluster/jobstats.c).
 *
 * The contract (docs/ARCHITECTURE.md, Counters): every field is a
 * monotonic count or a gauge, updated and read with memory_order_relaxed
 * only. Nothing is published through a counter and no reader acts on one,
 * so no acquire/release pair is needed: a reader may see a field a little
 * old, or two fields of one event from different moments, never a torn one.
 * Each cache line has one writer at a time (a thread, or whoever holds a
 * lock: see the comments of each line; an alignas covers one declarator
 * each, so each line starts with its own declaration), which adds with a plain relaxed
 * load and store (hpsi_stat_add): no locked instruction, no syscall on the
 * hot path. Lines that several threads or processes write use
 * hpsi_stat_add_shared (a relaxed fetch-add). */
#ifndef HPSI_COUNTERS_H
#define HPSI_COUNTERS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hps/error.h"
#include "runtime/common/limits.h"

#define HPSI_STAT_ERRORS 24   /* errors by code: index -code, 0..23 */
#define HPSI_STAT_SAMPLE 64   /* time one in so many updater calls and blocking waits */

struct hpsi_counters {
	/* Line 0, the request side. Worker: under submit_lock (request.c);
	 * server: its loop. Requests of a worker are those it submitted; of a
	 * server, those it answered (remote workers' included). Bytes are value
	 * bytes as they travel (after f16/bf16 compression). */
	alignas(64) _Atomic uint64_t requests;
	_Atomic uint64_t push_keys, pull_keys, push_bytes;
	_Atomic uint64_t clock;       /* worker: its clock (hps_clock) */
	_Atomic uint64_t ring_hwm;    /* server: most bytes seen waiting in one request ring */
	_Atomic uint64_t checkpoints; /* server: checkpoint parts done */
	_Atomic uint64_t handled;     /* server: handler calls (the updater's sampling) */
	/* Line 1. Worker: the answer side, under poll_lock (worker.c); server:
	 * its loop. */
	alignas(64) _Atomic uint64_t completed; /* worker: requests done; in flight = requests - completed */
	_Atomic uint64_t pull_bytes;
	_Atomic uint64_t resp_hwm;              /* worker: most bytes seen waiting in one answer ring */
	_Atomic uint64_t held_now, held_total;  /* server: requests held back (SSP/BSP), now and ever */
	_Atomic uint64_t held_ns;               /* server: time held requests waited, summed */
	_Atomic uint64_t store_keys, store_bytes; /* server: the built-in store's size */
	/* Line 2: waits, from any thread of the worker (one shared add per
	 * wait: waits_done when the request was already done, waits_blocked
	 * when it was not); the server's sampled updater time and replication
	 * counts (its loop). */
	alignas(64) _Atomic uint64_t waits_done;
	_Atomic uint64_t waits_blocked;
	_Atomic uint64_t wait_ns_sampled, wait_samples;  /* every HPSI_STAT_SAMPLE-th blocking wait */
	_Atomic uint64_t updater_ns_sampled, updater_samples;
	/* server, its loop: replication (HPS_REPLICAS) */
	_Atomic uint64_t forwarded;       /* pushes and clocks copied to backups */
	_Atomic uint64_t replica_applied; /* forwarded pushes applied as a backup */
	/* Lines 3-5: errors by code (-HPS_E*), shared adds: any thread. */
	alignas(64) _Atomic uint64_t errors[HPSI_STAT_ERRORS];
};
_Static_assert(sizeof(struct hpsi_counters) == 384, "six cache lines per node");

/* The staleness server s saw in worker w's pulls: how many clocks the
 * slowest worker was behind a pull's clock when s answered it. One row of
 * cells per server (rows start on a cache line), so each cell has one
 * writer: that server's loop. */
struct hpsi_stale_cell {
	_Atomic uint64_t pulls, sum, max;
};

/* What this host's bridge sends to and receives from one peer host, and
 * the bytes waiting for it. Written by the bridge's single thread. */
struct hpsi_peer_counters {
	alignas(64) _Atomic uint64_t msgs_out;
	_Atomic uint64_t bytes_out, msgs_in, bytes_in;
	_Atomic uint64_t queue_bytes, queue_hwm, failed;
};
_Static_assert(sizeof(struct hpsi_peer_counters) == 64, "one cache line per peer host");

struct hpsi_bridge_counters {
	alignas(64) _Atomic uint32_t nhosts;
	_Atomic uint32_t me; /* set once by the bridge */
	struct hpsi_peer_counters peer[HPSI_MAX_NODES];
};

/* Single writer of the line: a relaxed load and store, no locked add. */
static inline void hpsi_stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Several writers: a relaxed fetch-add. */
static inline void hpsi_stat_add_shared(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void hpsi_stat_set(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Single writer: raises a high-water mark. */
static inline void hpsi_stat_max(_Atomic uint64_t *c, uint64_t v)
{
	if (v > atomic_load_explicit(c, memory_order_relaxed))
		atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t hpsi_stat_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/* Counts a failure by its code (shared: any thread). */
static inline void hpsi_stat_error(struct hpsi_counters *c, int code)
{
	if (code < 0 && -code < HPSI_STAT_ERRORS)
		hpsi_stat_add_shared(&c->errors[-code], 1);
}

#endif
