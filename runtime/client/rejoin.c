/* Restarted workers (rejoin.h). The rings of a worker belong to its rank,
 * not to a process: the new process attaches at the indices its
 * predecessor published. What it had reserved or written but not
 * published is past the published tail, so no server ever reads it, and
 * the new process writes over it. What it had published is complete:
 * the servers apply it as any request, then skip the same pushes when the
 * new process sends them again with the same timestamps (last_seq,
 * runtime/server/serve.h). */
#include "runtime/client/rejoin.h"

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

int hpsi_rejoin_drain(struct hps_worker *w)
{
	struct drain_arg a = {w};
	int64_t deadline = hpsi_now_ns() + w->ctx->timeout_ns;
	while (!drained(&a)) {
		int64_t left = deadline - hpsi_now_ns();
		if (left <= 0) {
			hpsi_error("restarted worker %u: the servers did not consume its predecessor's requests within HPS_TIMEOUT_MS",
				   w->rank);
			return HPS_ETIMEDOUT;
		}
		/* servers ring this worker's bell after each batch they serve */
		hpsi_bell_sleep(w->bell, drained, &a, left < DRAIN_SLICE_NS ? left : DRAIN_SLICE_NS);
	}
	return 0;
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
