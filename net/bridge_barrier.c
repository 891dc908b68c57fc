/* The cross-host barrier (net/bridge.h; the rule in shm/barrier.h). The
 * bridge tells the scheduler once every local worker has arrived at the
 * open barrier or closed, and when a local worker's deadline passed in it;
 * the scheduler alone decides, and the bridge writes its decision into the
 * barrier word the local workers wait on (runtime/client/barrier.c), so
 * every host reads the same outcome. */
#include <stdatomic.h>

#include "net/bridge.h"
#include "shm/barrier.h"

void hpsi_bridge_barrier_decide(struct hpsi_bridge *b, uint32_t gen, int code)
{
	hpsi_barrier_decide(&b->seg, gen, code); /* a stale or repeated decision changes nothing */
}

void hpsi_bridge_barrier_check(struct hpsi_bridge *b)
{
	struct hpsi_seg *s = &b->seg;
	struct hpsi_seg_hdr *h = s->hdr;
	int failed;
	uint32_t gen = hpsi_barrier_open(s, &failed), next = hpsi_barrier_seq(gen + 1);
	if (failed || h->wrk_hi == h->wrk_lo)
		return;
	struct hpsi_sched_hdr m;
	/* relaxed: only a request to fail, nothing is read after it */
	if (b->expired_sent != next && atomic_load_explicit(&h->barrier_expired, memory_order_relaxed) == next) {
		hpsi_sched_init(&m, HPSI_SCH_EXPIRED, b->me);
		m.gen = gen;
		if (hpsi_bridge_send_sched(b, &m, sizeof m) == 0) /* else: again next round */
			b->expired_sent = next;
	}
	if (b->barrier_sent == next)
		return;
	for (uint32_t w = h->wrk_lo; w < h->wrk_hi; w++) {
		struct hpsi_node *n = hpsi_seg_node(s, hpsi_worker_node(s, w));
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st == HPSI_NODE_CLOSED || st == HPSI_NODE_VACANT)
			continue; /* no longer a member, or a free rank */
		/* acquire: pairs with the worker's release store of its arrival */
		if (atomic_load_explicit(&n->barrier_arrived, memory_order_acquire) != next)
			return;
	}
	hpsi_sched_init(&m, HPSI_SCH_BARRIER, b->me);
	m.gen = gen;
	if (hpsi_bridge_send_sched(b, &m, sizeof m) == 0) /* else: again next round */
		b->barrier_sent = next;
}
