/* Barrier of all workers, in the segment: a counter and a generation word.
 *
 * Ordering: each arrival is an acq_rel RMW on barrier_arrived; the last
 * arriver resets the counter, then bumps barrier_gen with release, which
 * pairs with the acquire load of barrier_gen by the waiters, so everything
 * done before the barrier by any worker is visible after it. In a
 * multi-host job the bridge resets and bumps them instead (net/bridge_barrier.c),
 * with the same orders. Waiters sleep
 * on the futex of barrier_gen and wake every 50 ms to check that no worker
 * died or left, which would otherwise make them wait forever. */
#include "hps/hps.h"
#include "runtime/client/ctx.h"
#include "runtime/common/log.h"

#define BARRIER_CHECK_NS 50000000

static int barrier_broken(hps_ctx *c)
{
	struct hpsi_seg *s = &c->seg;
	for (uint32_t w = 0; w < s->hdr->nworkers; w++) {
		uint32_t st = hpsi_node_check(s, hpsi_worker_node(s, w));
		if (st == HPSI_NODE_DEAD)
			return HPS_EPEERDEAD;
		if (st == HPSI_NODE_CLOSED)
			return HPS_ECLOSED;
	}
	return atomic_load_explicit(&s->hdr->shutdown, memory_order_acquire) ? HPS_ECLOSED : 0;
}

int hps_barrier(hps_ctx *c)
{
	if (!c || c->cfg.role != HPS_ROLE_WORKER)
		return HPS_EINVAL;
	struct hpsi_seg_hdr *h = c->seg.hdr;
	uint32_t gen = atomic_load_explicit(&h->barrier_gen, memory_order_acquire);
	uint32_t n = atomic_fetch_add_explicit(&h->barrier_arrived, 1, memory_order_acq_rel) + 1;
	/* With other hosts, the bridge sees every local worker arrived and
	 * releases the barrier once the scheduler has heard from all hosts. */
	if (!h->bridged && n == h->nworkers) {
		atomic_store_explicit(&h->barrier_arrived, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&h->barrier_gen, 1, memory_order_release);
		hpsi_futex_wake(&h->barrier_gen);
		return 0;
	}
	while (atomic_load_explicit(&h->barrier_gen, memory_order_acquire) == gen) {
		hpsi_futex_wait(&h->barrier_gen, gen, BARRIER_CHECK_NS);
		if (atomic_load_explicit(&h->barrier_gen, memory_order_acquire) != gen)
			break;
		int rc = barrier_broken(c);
		if (rc) {
			hpsi_error("barrier abandoned: a worker %s", rc == HPS_EPEERDEAD ? "died" : "left the job");
			return rc;
		}
	}
	return 0;
}
