/* Server: workers that join a running job (runtime/client/join.c has the
 * protocol and why it keeps SSP's bound). A worker slot that was VACANT
 * (or claimed, EMPTY above launched_workers) when this server started is
 * finished to it (no clock, no rings served) until the server sees it
 * joined; only jobs with room to grow (--max-workers) have such slots, so
 * the others never come here.
 *
 * Clocks only grow. A worker's clock at a range is a lower bound of the
 * clocks whose pushes reached the range; a joiner's start clock (its
 * node's join_clock) is one too, as it sends no push below it. So every
 * writer of a clock other than the worker's own messages (this look, a
 * copy's FINAL: runtime/server/recover.c) takes the larger of the two:
 * a FINAL from a source that had not seen a join (0 for the joiner), or
 * a look after a FINAL that brought a newer clock, lowers nothing. The
 * look takes join_clock, not clock_done: by then the joiner may have
 * stored clock_done for clocks whose pushes wait unread in its rings
 * here. */
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "shm/node.h"

void hpsi_members_setup(struct server *sv)
{
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		uint32_t st = hpsi_node_state(sv->seg, hpsi_worker_node(sv->seg, wk));
		/* a claimed slot's join clock comes with ALIVE: looked at then */
		if (st == HPSI_NODE_VACANT || (st == HPSI_NODE_EMPTY && wk >= sv->seg->hdr->launched_workers)) {
			sv->vacant[wk] = 1;
			sv->finished[wk] = 1;
			sv->any_vacant = 1;
		}
	}
	/* relaxed: a join after this load bumps it again */
	sv->members_seen = atomic_load_explicit(&sv->seg->hdr->members_seq, memory_order_relaxed);
	if (sv->any_vacant) /* a slot claimed before the load above */
		sv->members_seen--;
}

/* At least clock c (and its reading phase 2c): never lower. */
static void raise_to(struct peer *p, uint32_t c)
{
	if (p->clock < c)
		p->clock = c;
	if (p->phase < 2 * (uint64_t)c)
		p->phase = 2 * (uint64_t)c;
}

void hpsi_members_look(struct server *sv)
{
	if (sv->skip_looks) /* HPS_FAILPOINT=nolook (struct server) */
		return;
	/* acquire: pairs with the joiners' bumps; the states read below are
	 * at least as new as the bump seen */
	uint32_t seq = atomic_load_explicit(&sv->seg->hdr->members_seq, memory_order_acquire);
	if (seq == sv->members_seen)
		return;
	sv->members_seen = seq;
	sv->join_pending = 0;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		if (!sv->vacant[wk])
			continue;
		struct hpsi_node *n = hpsi_seg_node(sv->seg, hpsi_worker_node(sv->seg, wk));
		/* acquire: pairs with the joiner's release of ALIVE, after its
		 * store of join_clock */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st == HPSI_NODE_VACANT)
			continue;
		if (st == HPSI_NODE_EMPTY) { /* claimed; its clock comes with ALIVE */
			sv->join_pending = 1;
			continue;
		}
		uint32_t clock = atomic_load_explicit(&n->join_clock, memory_order_relaxed);
		sv->vacant[wk] = 0;
		/* dead before it was counted: its requests are dropped, as any
		 * dead worker's; a closed one's are served (all_finished) */
		sv->finished[wk] = st == HPSI_NODE_DEAD;
		for (uint32_t i = 0; i < sv->nranges; i++) {
			raise_to(&sv->ranges[i].peers[wk], clock);
			sv->ranges[i].epoch++; /* min clocks and held requests look again */
		}
		hpsi_info("worker %u joined at clock %u", wk, clock);
	}
	if (sv->join_pending) /* recheck until the claimed slot is ALIVE */
		sv->members_seen--;
}

void hpsi_members_floor(struct server *sv, struct range_state *rs, uint32_t wk)
{
	if (sv->vacant[wk]) /* not counted here yet: the look raises it */
		return;
	/* relaxed: this server acquired the slot's state past EMPTY (setup or
	 * look) after the joiner stored it; 0 for a launched worker */
	struct hpsi_node *n = hpsi_seg_node(sv->seg, hpsi_worker_node(sv->seg, wk));
	raise_to(&rs->peers[wk], atomic_load_explicit(&n->join_clock, memory_order_relaxed));
}
