/* The cross-host barrier (net/bridge.h): the bridge tells the scheduler
 * once every local worker has arrived, and releases them when the
 * scheduler says that every host has (runtime/client/barrier.c is the
 * workers' side). */
#include <stdatomic.h>

#include "net/bridge.h"
#include "shm/bell.h"

void hpsi_bridge_barrier_release(struct hpsi_bridge *b, uint32_t gen)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	if (atomic_load_explicit(&h->barrier_gen, memory_order_acquire) != gen)
		return;
	atomic_store_explicit(&h->barrier_arrived, 0, memory_order_relaxed);
	/* release: pairs with the waiting workers' acquire (runtime/client/barrier.c) */
	atomic_fetch_add_explicit(&h->barrier_gen, 1, memory_order_release);
	hpsi_futex_wake(&h->barrier_gen);
}

/* The local workers all reached the barrier: tell the scheduler once. */
void hpsi_bridge_barrier_check(struct hpsi_bridge *b)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	uint32_t local = h->wrk_hi - h->wrk_lo;
	uint32_t gen = atomic_load_explicit(&h->barrier_gen, memory_order_acquire);
	if (!local || b->barrier_sent == gen + 1 ||
	    atomic_load_explicit(&h->barrier_arrived, memory_order_acquire) != local)
		return;
	struct hpsi_sched_hdr m;
	hpsi_sched_init(&m, HPSI_SCH_BARRIER, b->me);
	m.gen = gen;
	if (hpsi_bridge_send_sched(b, &m, sizeof m) == 0) /* else: again next round */
		b->barrier_sent = gen + 1;
}
