/* Workers that join a job across hosts, the bridge's part (net/bridge.h;
 * docs/ARCHITECTURE.md, "Workers that join", Across hosts).
 *
 * The free ranks (--max-workers past -w) are the last host's, fixed by
 * the scheduler's assignment: a claim is the local compare-and-swap of one
 * host (runtime/client/join.c), and every bridge knows at layout time on
 * which side of each ring of such a rank it stands. What crosses hosts
 * goes through the scheduler's heartbeats and states (struct
 * hpsi_sched_states, join[]):
 *   1. the joiner's host reports the claim (EMPTY, join_clock
 *      HPSI_JOIN_WAIT);
 *   2. every other bridge takes the slot from VACANT to EMPTY, so that its
 *      servers hold every pull that needs the min clock, and then reads
 *      its floor: the least clock_done of the members as its servers may
 *      have counted them (its own workers' from their nodes, other hosts'
 *      from the CLOCK messages it delivered: hpsi_bridge_clock_seen);
 *   3. the scheduler sends the largest floor once every other live host
 *      answered; the joiner's bridge hands it to the joiner, which starts
 *      at the larger of it and its own host's least clock;
 *   4. the joiner's host reports ALIVE with its join clock; every other
 *      bridge stores it (join_clock, clock_done) and then ALIVE, so its
 *      servers count the joiner from that clock.
 * Why the start clock keeps every server's SSP bound: a server that
 * computed a min clock m without holding for the slot did so before the
 * bridge of its host took the slot to EMPTY (the same pair of seq_cst
 * fences as on one host: the bridge plays the joiner's part), and every
 * clock message it had consumed then was published after its worker's
 * clock_done (local) or after this bridge raised the remote node's
 * clock_done (below): that host's floor is at least m. The start clock is
 * at least every host's floor, hence at least every m, and the joiner
 * pushes nothing below it. It is at most the least clock of the members
 * (every floor, and the joiner's own read, is at most that, as clocks
 * only grow). */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "net/bridge.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/node.h"

static int room_slot(const struct hpsi_bridge *b, uint32_t w)
{
	return w >= b->seg.hdr->launched_workers && w < b->seg.hdr->nworkers;
}

void hpsi_bridge_clock_seen(struct hpsi_bridge *b, uint32_t w, uint32_t clock)
{
	/* Only this thread writes a remote node's clock_done. relaxed: the
	 * release of the server ring's tail that follows publishes it to the
	 * server, and a floor read after a fence sees it (bridge_join.c) */
	_Atomic uint32_t *cd = &hpsi_seg_node(&b->seg, hpsi_worker_node(&b->seg, w))->clock_done;
	if (atomic_load_explicit(cd, memory_order_relaxed) < clock)
		atomic_store_explicit(cd, clock, memory_order_relaxed);
}

void hpsi_bridge_join_report(struct hpsi_bridge *b, struct hpsi_sched_states *m)
{
	for (uint32_t w = b->seg.hdr->launched_workers; w < b->seg.hdr->nworkers && b->S + w < m->nnodes; w++) {
		uint32_t n = b->S + w;
		if (!hpsi_node_local(&b->seg, n)) {
			m->join[n] = b->join_note[w];
			continue;
		}
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		/* acquire: pairs with the joiner's release of HPSI_JOIN_WAIT, and
		 * with its release of ALIVE after its join_clock */
		uint32_t st = atomic_load_explicit(&node->state, memory_order_acquire);
		uint32_t jc = atomic_load_explicit(&node->join_clock, memory_order_acquire);
		if (st == HPSI_NODE_VACANT)
			m->state[n] = HPSI_NODE_EMPTY; /* the scheduler knows no VACANT */
		else if (st == HPSI_NODE_EMPTY && jc == HPSI_JOIN_WAIT)
			m->join[n] = HPSI_JOIN_CLAIMED;
		else if (st == HPSI_NODE_ALIVE || st == HPSI_NODE_CLOSED || st == HPSI_NODE_RESTARTING)
			m->join[n] = HPSI_JOIN_CLOCK + jc;
	}
}

/* HPS_FAILPOINT=joinslow:MS (tests): the bridge stops MS ms (at most
 * 10 s) right after another host's claimed slot counts here, as a bridge
 * preempted there would, so that this host's workers look at the
 * membership in that window (tests/test_xjoin.c). */
static void join_slow_failpoint(const struct hpsi_bridge *b)
{
	const char *fp = hpsi_setting("FAILPOINT");
	unsigned ms;
	int end = 0;
	if (!fp || sscanf(fp, "joinslow:%u%n", &ms, &end) != 1 || fp[end] || ms > 10000)
		return;
	hpsi_warn("bridge %s: HPS_FAILPOINT=joinslow: %u ms between the claimed slot and the floor", b->cfg.host, ms);
	nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

/* Step 2: another host's slot was claimed; our servers hold, then our floor. */
static void hold_for(struct hpsi_bridge *b, uint32_t w)
{
	uint32_t n = b->S + w;
	struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
	uint32_t cur = HPSI_NODE_VACANT;
	if (atomic_load_explicit(&node->state, memory_order_acquire) != cur)
		return;
	/* The epoch moves before the slot counts in hps_num_workers, as at a
	 * claim on this host (runtime/client/join.c): a program that sees one
	 * more worker (its acquire of EMPTY pairs with the CAS below) sees the
	 * epoch moved too. The bump after it, in the floor, is the one
	 * the servers' look pairs with. */
	hpsi_members_changing(&b->seg);
	/* acq_rel: as every state change (struct hpsi_node) */
	if (!atomic_compare_exchange_strong_explicit(&node->state, &cur, HPSI_NODE_EMPTY, memory_order_acq_rel,
						     memory_order_acquire))
		return;
	join_slow_failpoint(b);
	/* the Dekker pair with a server's fence before it loads members_seq
	 * (runtime/client/join.c): the bridge plays the joiner's part here */
	uint32_t floor = hpsi_members_claim_floor(&b->seg, n);
	b->join_note[w] = HPSI_JOIN_CLOCK + floor;
	hpsi_info("bridge %s: worker %u is joining on another host: this host's servers wait for it (floor %u)",
		  b->cfg.host, w, floor);
	hpsi_wake_all(&b->seg);
}

/* Step 4: another host's joiner is ALIVE from clock c. */
static int joined(struct hpsi_bridge *b, uint32_t w, uint32_t c)
{
	uint32_t n = b->S + w;
	struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
	uint32_t cur = atomic_load_explicit(&node->state, memory_order_acquire);
	if (cur != HPSI_NODE_VACANT && cur != HPSI_NODE_EMPTY)
		return 0;
	/* from VACANT the slot starts counting in hps_num_workers: the epoch
	 * first (release, as in hold_for) */
	if (cur == HPSI_NODE_VACANT)
		hpsi_members_changing(&b->seg);
	/* relaxed: published by the release of ALIVE below; the pid is ours,
	 * as for every remote node (liveness probes find us alive) */
	atomic_store_explicit(&node->pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&node->birth, b->seg.hdr->creator_birth, memory_order_relaxed);
	atomic_store_explicit(&node->join_clock, c, memory_order_relaxed);
	hpsi_bridge_clock_seen(b, w, c);
	if (!atomic_compare_exchange_strong_explicit(&node->state, &cur, HPSI_NODE_ALIVE, memory_order_acq_rel,
						     memory_order_acquire))
		return 0;
	/* release: a server that sees the new epoch looks and sees ALIVE */
	atomic_fetch_add_explicit(&b->seg.hdr->members_seq, 1, memory_order_release);
	hpsi_info("bridge %s: worker %u joined on another host at clock %u", b->cfg.host, w, c);
	return 1;
}

int hpsi_bridge_join_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m)
{
	int changed = 0;
	for (uint32_t w = b->seg.hdr->launched_workers; w < b->seg.hdr->nworkers && b->S + w < m->nnodes; w++) {
		uint32_t n = b->S + w, j = m->join[n], st = m->state[n];
		if (!room_slot(b, w) || !j)
			continue;
		if (hpsi_node_local(&b->seg, n)) {
			/* step 3: the floor to our joiner, while it waits for it */
			if (st != HPSI_NODE_EMPTY || j < HPSI_JOIN_CLOCK)
				continue;
			uint32_t want = HPSI_JOIN_WAIT;
			/* release: pairs with the joiner's acquire of join_clock */
			atomic_compare_exchange_strong_explicit(&hpsi_seg_node(&b->seg, n)->join_clock, &want,
								j - HPSI_JOIN_CLOCK, memory_order_release,
								memory_order_relaxed);
		} else if (st == HPSI_NODE_EMPTY) {
			hold_for(b, w);
		} else if (j >= HPSI_JOIN_CLOCK) { /* ALIVE (or later): counted from its clock */
			changed |= joined(b, w, j - HPSI_JOIN_CLOCK);
		}
	}
	return changed;
}
