/* Workers that join a running job (join.h).
 *
 * Claim. The joiner takes the lowest VACANT slot by a compare-and-swap
 * (acq_rel) to EMPTY: of two joiners racing for a slot one wins, the other
 * tries the next. EMPTY is how every launched worker starts too: a member
 * not yet running, whose barrier arrival the others wait for, and which
 * liveness checks skip (it has no pid yet).
 *
 * Start clock, and why SSP holds without stopping anyone. The joiner then
 * bumps hdr->members_seq (seq_cst), issues a seq_cst fence, and only then
 * reads the members' clock_done: its start clock c is their least. A server
 * computing a min clock (runtime/server/members.c) first issues a seq_cst
 * fence, then loads members_seq; when it changed it looks at the slots:
 * a claimed slot without its clock yet (EMPTY) holds every pull that
 * depends on the min clock, a joined one (ALIVE, or since CLOSED) counts
 * at its published clock. Take the two fences in their single total
 * order. If the server's comes after the joiner's, it sees the bump and
 * holds or counts the joiner. If it comes first, every clock message the
 * server had consumed before it was announced after its worker stored
 * clock_done (request.c: clock_done, then the ring's release, which the
 * server acquired), so the joiner, reading after its own later fence,
 * sees those clock_done values or larger: c is at least the min clock the
 * server computed, and a pull it answers with that min clock (at clock
 * m <= min + s) needs no push from the joiner, whose pushes are all of
 * clocks >= c >= m - s. Pulls of the joiner are held like anyone's.
 *
 * Publication. clock_done = join_clock = c and barrier_arrived (the
 * barriers completed so far) are stored before the release of ALIVE
 * (hps_init); a server that acquires ALIVE reads them (join_clock: it
 * stays c while clock_done moves on). Then members_seq is bumped again (release)
 * and every node woken, so servers holding pulls for the EMPTY slot look
 * again. */
#include "runtime/client/join.h"

#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/node.h"

uint32_t hpsi_members_min_clock(struct hpsi_seg *seg, uint32_t except)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	uint32_t m = UINT32_MAX;
	for (uint32_t w = 0; w < h->nworkers; w++) {
		uint32_t id = hpsi_worker_node(seg, w);
		if (id == except)
			continue;
		uint32_t st = hpsi_worker_state(seg, id, 0);
		if (st == HPSI_NODE_VACANT || st == HPSI_NODE_CLOSED || st == HPSI_NODE_DEAD ||
		    (st == HPSI_NODE_EMPTY && w >= h->launched_workers))
			continue;
		/* acquire: pairs with hps_clock's release (request.c) */
		uint32_t c = atomic_load_explicit(&hpsi_seg_node(seg, id)->clock_done, memory_order_acquire);
		if (c < m)
			m = c;
	}
	return m == UINT32_MAX ? 0 : m;
}

uint32_t hpsi_workers_given(const struct hpsi_seg *seg)
{
	uint32_t n = 0;
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++)
		n += hpsi_node_state(seg, hpsi_worker_node(seg, w)) != HPSI_NODE_VACANT;
	return n;
}

uint32_t hpsi_workers_current(struct hpsi_seg *seg)
{
	uint32_t n = 0;
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++) {
		uint32_t st = hpsi_worker_state(seg, hpsi_worker_node(seg, w), 0);
		n += st != HPSI_NODE_VACANT && st != HPSI_NODE_CLOSED && st != HPSI_NODE_DEAD;
	}
	return n;
}

int hpsi_worker_slot_of(const struct hpsi_seg *seg, int pid)
{
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++) {
		const struct hpsi_node *n = hpsi_seg_node(seg, hpsi_worker_node(seg, w));
		/* acquire: pairs with the release of ALIVE, after the pid */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st != HPSI_NODE_VACANT && st != HPSI_NODE_EMPTY &&
		    atomic_load_explicit(&n->pid, memory_order_relaxed) == pid)
			return (int)w;
	}
	return -1;
}

void hpsi_members_changed(struct hpsi_seg *seg)
{
	/* release: whoever sees the new epoch sees the state change behind it */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
	hpsi_wake_all(seg);
}

int hpsi_join_claim(struct hps_ctx *c)
{
	struct hpsi_seg *seg = &c->seg;
	uint32_t w, id = 0;
	/* The membership epoch moves before the rank is given, so a program
	 * that sees hps_num_workers grow (its acquire of the claimed state
	 * pairs with the CAS below) sees the epoch moved too; the bump after
	 * the claim is the one the servers' look pairs with. A claim that
	 * finds no free rank leaves a bump behind, which changes nothing. */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
	for (w = 0; w < seg->hdr->nworkers; w++) {
		id = hpsi_worker_node(seg, w);
		uint32_t st = HPSI_NODE_VACANT;
		if (atomic_compare_exchange_strong_explicit(&hpsi_seg_node(seg, id)->state, &st, HPSI_NODE_EMPTY,
							    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (w == seg->hdr->nworkers) {
		hpsi_error("job '%s' has no free worker rank: its %u were all given out (hps launch --max-workers; a rank is not given twice)",
			   seg->hdr->job, seg->hdr->nworkers);
		return HPS_EEXIST;
	}
	c->cfg.rank = (int)w;
	c->node = id;
	/* seq_cst, then the fence: the Dekker pair with a server's fence
	 * before it loads members_seq (see the head of this file) */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	uint32_t clock = hpsi_members_min_clock(seg, id);
	struct hpsi_node *n = hpsi_seg_node(seg, id);
	/* relaxed: published by hps_init's release of ALIVE */
	atomic_store_explicit(&n->clock_ts[clock & 1], 0, memory_order_relaxed);
	atomic_store_explicit(&n->clock_bar[clock & 1], hpsi_barrier_seq(hpsi_barrier_open(seg, NULL)),
			      memory_order_relaxed);
	atomic_store_explicit(&n->barrier_arrived, hpsi_barrier_seq(hpsi_barrier_open(seg, NULL)), memory_order_relaxed);
	atomic_store_explicit(&n->clock_done, clock, memory_order_relaxed);
	atomic_store_explicit(&n->join_clock, clock, memory_order_relaxed);
	c->resume_clock = clock;
	c->resume_ts = 0;
	c->join_barrier = 1;
	hpsi_info("joined job %s as worker %u at clock %u (the slowest member's)", seg->hdr->job, w, clock);
	return 0;
}
