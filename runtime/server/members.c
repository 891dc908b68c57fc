/* Server: workers that join a running job (runtime/client/join.c has the
 * protocol and why it keeps SSP's bound). A worker slot that was VACANT
 * when this server started is finished to it (no clock, no rings served)
 * until the server sees it joined; only jobs with room to grow
 * (--max-workers) have such slots, so the others never come here. */
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "shm/node.h"

void hpsi_members_setup(struct server *sv)
{
	for (uint32_t wk = 0; wk < sv->nworkers; wk++)
		if (hpsi_node_state(sv->seg, hpsi_worker_node(sv->seg, wk)) == HPSI_NODE_VACANT) {
			sv->vacant[wk] = 1;
			sv->finished[wk] = 1;
			sv->any_vacant = 1;
		}
	/* relaxed: a join after this load bumps it again */
	sv->members_seen = atomic_load_explicit(&sv->seg->hdr->members_seq, memory_order_relaxed);
	if (sv->any_vacant) /* a slot claimed before the load above */
		sv->members_seen--;
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
		/* acquire: pairs with the joiner's release of ALIVE, after which
		 * its clock_done is its start clock */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st == HPSI_NODE_VACANT)
			continue;
		if (st == HPSI_NODE_EMPTY) { /* claimed; its clock comes with ALIVE */
			sv->join_pending = 1;
			continue;
		}
		uint32_t clock = atomic_load_explicit(&n->clock_done, memory_order_relaxed);
		sv->vacant[wk] = 0;
		/* dead before it was counted: its requests are dropped, as any
		 * dead worker's; a closed one's are served (all_finished) */
		sv->finished[wk] = st == HPSI_NODE_DEAD;
		for (uint32_t i = 0; i < sv->nranges; i++) {
			struct peer *p = &sv->ranges[i].peers[wk];
			p->clock = clock;
			p->phase = 2 * (uint64_t)clock;
			sv->ranges[i].epoch++; /* min clocks and held requests look again */
		}
		hpsi_info("worker %u joined at clock %u", wk, clock);
	}
	if (sv->join_pending) /* recheck until the claimed slot is ALIVE */
		sv->members_seen--;
}
