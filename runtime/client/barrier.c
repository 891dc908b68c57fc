/* hps_barrier: the workers' barrier (semantics in include/hps/hps.h,
 * the shared word in shm/barrier.h).
 *
 * A worker's k-th call is barrier k. It arrives by storing k + 1 in its
 * node's barrier_arrived, then waits until the job's barrier word decides
 * barrier k. On one host any worker in the barrier may decide it: complete
 * once every worker has arrived or closed, failed with HPS_EPEERDEAD once
 * a worker that had not closed is dead (and will not be restarted:
 * hpsi_worker_state), HPS_ETIMEDOUT once its own
 * deadline (HPS_TIMEOUT_MS after it arrived) passed, HPS_ECLOSED when the
 * job shuts down. One compare-and-swap decides, so all read one outcome.
 * With other hosts the scheduler decides instead (barrier_bridged).
 *
 * Waiters sleep on the futex of the word; state changes of nodes wake them
 * (shm/node.c), and they wake every 50 ms anyway to check the processes
 * behind the node table, which no one else may be watching. */
#include "hps/hps.h"
#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/liveness.h"
#include "shm/wake.h"

#define BARRIER_CHECK_NS 50000000

/* Barrier k on one host: 1 complete, 0 not yet, or a failure code.
 * `probe` checks the process of each node still marked alive (system
 * calls); without it only the node table is read. */
static int barrier_scan(hps_ctx *c, uint32_t k, int probe)
{
	struct hpsi_seg *s = &c->seg;
	int complete = 1;
	for (uint32_t w = 0; w < s->hdr->nworkers; w++) {
		uint32_t id = hpsi_worker_node(s, w);
		struct hpsi_node *n = hpsi_seg_node(s, id);
		/* RESTARTING: waited for, as alive (its arrival word persists) */
		uint32_t st = hpsi_worker_state(s, id, probe);
		if (st == HPSI_NODE_DEAD)
			return HPS_EPEERDEAD;
		if (st == HPSI_NODE_CLOSED || st == HPSI_NODE_VACANT)
			continue; /* a worker that closed (or a free rank) is not waited for */
		/* acquire: pairs with that worker's release store of its arrival,
		 * so the decider's release CAS passes its writes on to everyone */
		if (atomic_load_explicit(&n->barrier_arrived, memory_order_acquire) != hpsi_barrier_seq(k + 1))
			complete = 0;
	}
	if (atomic_load_explicit(&s->hdr->shutdown, memory_order_acquire))
		return HPS_ECLOSED;
	return complete;
}

/* Wakes the bridge (it also looks every 100 ms): the bell of any node
 * it stands for. */
static void bridge_wake(hps_ctx *c)
{
	uint32_t n = c->seg.hdr->nservers + c->seg.hdr->nworkers;
	for (uint32_t id = 0; id < n; id++)
		if (!hpsi_node_local(&c->seg, id)) {
			hpsi_node_wake(&c->seg, id);
			return;
		}
}

/* Barrier k with other hosts: only the scheduler decides, through the
 * bridge, so that every host reads one outcome. A worker here only says
 * that its deadline passed (the bridge asks the scheduler to fail the
 * barrier), and decides alone only when no decision can come: the job
 * shuts down, or the bridge is gone. */
static int barrier_bridged(hps_ctx *c, uint32_t k, int probe, int expired)
{
	struct hpsi_seg_hdr *h = c->seg.hdr;
	if (atomic_load_explicit(&h->shutdown, memory_order_acquire))
		return HPS_ECLOSED;
	if (probe && !hpsi_proc_alive(h->creator_pid, h->creator_birth))
		return HPS_EPEERDEAD; /* the bridge that created the segment */
	if (expired && atomic_exchange_explicit(&h->barrier_expired, hpsi_barrier_seq(k + 1), memory_order_relaxed) !=
			       hpsi_barrier_seq(k + 1))
		bridge_wake(c);
	return 0;
}

static const char *why(int rc)
{
	return rc == HPS_EPEERDEAD ? "a worker died"
	       : rc == HPS_ETIMEDOUT ? "not every worker arrived within HPS_TIMEOUT_MS"
				     : "the job is shutting down";
}

int hps_barrier(hps_ctx *c)
{
	int rc0 = hpsi_ctx_check(c);
	if (rc0)
		return rc0;
	if (c->cfg.role != HPS_ROLE_WORKER)
		return HPS_EINVAL;
	struct hpsi_seg *s = &c->seg;
	struct hpsi_node *me = hpsi_seg_node(s, c->node);
	if (atomic_load_explicit(&me->state, memory_order_acquire) != HPSI_NODE_ALIVE)
		return HPS_ECLOSED; /* its worker closed: it is no longer a member */
	uint32_t k;
	if (c->bar_replay != c->bar_replay_end) {
		/* A restart replaying a barrier its predecessor arrived at
		 * (runtime/client/rejoin.c): not arrived at again. Only the last
		 * of them may still be open (the predecessor died in it); the
		 * others completed before it arrived at the next one. */
		k = c->bar_replay;
		c->bar_replay = hpsi_barrier_seq(k + 1);
		if (c->bar_replay != c->bar_replay_end)
			return 0;
	} else {
		/* only this process writes its arrival word */
		k = atomic_load_explicit(&me->barrier_arrived, memory_order_relaxed);
		if (c->join_barrier) {
			/* A joiner's first barrier (runtime/client/join.c): the first
			 * one not completed now. Barriers completed since it joined
			 * (decided before it was seen) are skipped, not met. */
			uint32_t open = hpsi_barrier_seq(hpsi_barrier_open(s, NULL));
			if (hpsi_barrier_seq(open - k) < (HPSI_BARRIER_SEQ_MASK >> 1))
				k = open;
			c->join_barrier = 0;
		}
		/* release: pairs with the decider's acquire load in barrier_scan (or
		 * the bridge's, net/bridge_barrier.c) */
		atomic_store_explicit(&me->barrier_arrived, hpsi_barrier_seq(k + 1), memory_order_release);
		/* seq_cst fence between storing our arrival and reading the others'
		 * (a Dekker pair with the same fence of every other arriver): of two
		 * workers arriving at once, at least one sees both arrivals, so the
		 * last arrival never goes unnoticed until the next 50 ms check. */
		atomic_thread_fence(memory_order_seq_cst);
	}
	if (s->hdr->bridged)
		bridge_wake(c);
	int64_t deadline = hpsi_now_ns() + c->timeout_ns;
	/* The processes are checked from the second look on, once per
	 * BARRIER_CHECK_NS by one waiter of the host group (hpsi_probe_due):
	 * every process that leaves wakes every waiter, and each waiter
	 * checking every worker at each wake-up made a 64 x 64 job read /proc
	 * about 100,000 times a second. */
	for (int looked = 0;; looked = 1) {
		/* acquire: pairs with the release CAS of hpsi_barrier_decide */
		uint32_t word = atomic_load_explicit(&s->hdr->barrier, memory_order_acquire);
		int rc = hpsi_barrier_outcome(word, k);
		if (rc <= 0) {
			if (rc)
				hpsi_error("barrier %u failed: %s", k, why(rc));
			return rc;
		}
		int64_t now = hpsi_now_ns();
		int scan, probe = looked && hpsi_probe_due(s, HPSI_PROBE_WORKERS, BARRIER_CHECK_NS);
		if (s->hdr->bridged) {
			scan = barrier_bridged(c, k, probe, now >= deadline);
		} else {
			scan = barrier_scan(c, k, probe);
			if (scan == 0 && now >= deadline)
				scan = HPS_ETIMEDOUT;
		}
		if (scan != 0) {
			hpsi_barrier_decide(s, k, scan == 1 ? 0 : scan);
			continue; /* read the outcome, whoever decided it */
		}
		int64_t nap = deadline > now && deadline - now < BARRIER_CHECK_NS ? deadline - now : BARRIER_CHECK_NS;
		hpsi_futex_wait(&s->hdr->barrier, word, nap);
	}
}
