/* Restarted workers (rejoin.h). The rings of a worker belong to its rank,
 * not to a process: the new process attaches at the indices its
 * predecessor published. What it had reserved or written but not
 * published is past the published tail, so no server ever reads it, and
 * the new process writes over it. What it had published is complete:
 * the servers apply it as any request, then skip the same pushes when the
 * new process sends them again with the same timestamps (last_seq,
 * runtime/server/serve.h). */
#include "runtime/client/rejoin.h"

#include <stdlib.h>

#include "net/route.h"
#include "runtime/client/ctx.h"
#include "runtime/client/worker.h"
#include "runtime/common/log.h"

#define DRAIN_SLICE_NS 10000000 /* liveness and deadline checks while asleep */

void hpsi_rejoin_claim(struct hps_ctx *c)
{
	struct hpsi_node *n = hpsi_seg_node(&c->seg, c->node);
	/* The writer is dead: the launcher saw it end (waitpid) before its
	 * release of RESTARTING, which hps_init acquired. acquire pairs with
	 * hps_clock's release all the same (request.c). */
	uint32_t clock = atomic_load_explicit(&n->clock_done, memory_order_acquire);
	c->rejoined = 1;
	c->resume_clock = clock;
	c->resume_ts = atomic_load_explicit(&n->clock_ts[clock & 1], memory_order_relaxed);
	/* The barriers the program called from that clock on, which the
	 * predecessor arrived at: the restart replays those calls too. */
	c->bar_replay = atomic_load_explicit(&n->clock_bar[clock & 1], memory_order_relaxed);
	c->bar_replay_end = atomic_load_explicit(&n->barrier_arrived, memory_order_relaxed);
	hpsi_info("restarted worker %d resumes from clock %u (request %lld on)", c->cfg.rank, clock,
		  (long long)c->resume_ts);
}

struct drain_arg {
	struct hps_worker *w;
	uint32_t *fwd_tail; /* per server pair: what a backup must consume */
};

/* 1 once every request ring of this rank is consumed up to what the
 * predecessor published; drops the answers that arrived. */
static int drained(void *p)
{
	struct hps_worker *w = ((struct drain_arg *)p)->w;
	int all = 1;
	for (uint32_t s = 0; s < w->nservers; s++) {
		/* acquire: pairs with the server's release of the head (ring
		 * pair B), made after it published the answers to those
		 * requests and wrote any pull answer into the heap slice; so
		 * those answers are drained just below, and the slice is the
		 * new process's once every ring is consumed. A range with no
		 * server left never consumes: nothing reads it either. */
		uint32_t head = atomic_load_explicit(&w->req[s].r->head, memory_order_acquire);
		if (head != w->req[s].tail && !hpsi_range_gone(w->seg, s))
			all = 0;
	}
	/* Across hosts the ring of a remote server is consumed by the local
	 * bridge when it takes a request, and the answer (a pull's into the
	 * heap slice) comes later. acquire: pairs with the bridge's release
	 * of its count after it published those answers; it counted each
	 * request before it released the head acquired above, so 0 here
	 * means every answer to the predecessor's requests is in the rings,
	 * dropped just below (net/bridge.h, hpsi_bridge_inflight). */
	if (atomic_load_explicit(&hpsi_seg_node(w->seg, hpsi_worker_node(w->seg, w->rank))->bridge_inflight,
				 memory_order_acquire))
		all = 0;
	for (uint32_t s = 0; s < w->nservers; s++) {
		struct hpsi_ring_cons *c = &w->resp[s];
		size_t len;
		int n = 0;
		while (hpsi_ring_peek(c, &len)) {
			hpsi_ring_consume(c, len);
			n++;
		}
		if (n)
			hpsi_ring_cons_publish(c);
	}
	return all;
}

/* With replicas, a backup reads a forwarded push's keys and values in
 * the worker's heap slice (replica.c), after the primary released the
 * request. So once the request rings are consumed, every forward ring
 * between two local servers must be consumed up to the tail it had then:
 * the primaries published those forwards before they released the heads
 * that drained() acquired, so that tail covers every forward of the
 * predecessor's pushes. (It covers later forwards of other workers too:
 * a bounded extra wait, not worth telling them apart.) */
static void fwd_snapshot(struct drain_arg *a)
{
	struct hpsi_seg *seg = a->w->seg;
	uint32_t n = a->w->nservers;
	for (uint32_t f = 0; f < n; f++)
		for (uint32_t b = 0; b < n; b++)
			/* acquire: pairs with the primary's release of its tail */
			a->fwd_tail[f * n + b] =
				f == b ? 0 : atomic_load_explicit(&hpsi_seg_fwd_ring(seg, f, b)->tail, memory_order_acquire);
}

/* 1 once every live local backup consumed its forward rings up to the
 * snapshot; drops answers (its acknowledgements) as drained() does. */
static int fwd_drained(void *p)
{
	struct drain_arg *a = p;
	struct hpsi_seg *seg = a->w->seg;
	uint32_t n = a->w->nservers;
	drained(a); /* drops the answers that came meanwhile */
	for (uint32_t f = 0; f < n; f++)
		for (uint32_t b = 0; b < n; b++) {
			if (f == b || !hpsi_node_local(seg, b) || hpsi_server_gone(seg, b))
				continue; /* a dead backup reads nothing; a replacement copies */
			/* acquire: pairs with the backup's release of the head,
			 * made after it applied (read) those forwards */
			uint32_t head = atomic_load_explicit(&hpsi_seg_fwd_ring(seg, f, b)->head, memory_order_acquire);
			if ((int32_t)(head - a->fwd_tail[f * n + b]) < 0)
				return 0;
		}
	return 1;
}

/* Sleeps on the bell until done(a) or the request timeout. */
static int drain_until(struct hps_worker *w, int (*done)(void *), struct drain_arg *a, int64_t deadline)
{
	while (!done(a)) {
		int64_t left = deadline - hpsi_now_ns();
		if (left <= 0) {
			hpsi_error("restarted worker %u: the servers did not consume its predecessor's requests within HPS_TIMEOUT_MS",
				   w->rank);
			return HPS_ETIMEDOUT;
		}
		/* servers ring this worker's bell after each batch they serve;
		 * backups do not: the slice bounds that wait */
		hpsi_bell_sleep(w->bell, done, a, left < DRAIN_SLICE_NS ? left : DRAIN_SLICE_NS);
	}
	return 0;
}

int hpsi_rejoin_drain(struct hps_worker *w)
{
	struct drain_arg a = {w, NULL};
	int64_t deadline = hpsi_now_ns() + w->ctx->timeout_ns;
	int rc = drain_until(w, drained, &a, deadline);
	if (rc || !w->seg->hdr->replicas)
		return rc;
	if (!(a.fwd_tail = calloc((size_t)w->nservers * w->nservers, sizeof *a.fwd_tail)))
		return HPS_ENOMEM;
	fwd_snapshot(&a);
	rc = drain_until(w, fwd_drained, &a, deadline);
	free(a.fwd_tail);
	return rc;
}

int hps_resume_clock(hps_ctx *c, uint32_t *clock)
{
	int rc = hpsi_ctx_check(c);
	if (rc)
		return rc;
	if (!clock || c->cfg.role != HPS_ROLE_WORKER)
		return HPS_EINVAL;
	*clock = c->resume_clock;
	return 0;
}
