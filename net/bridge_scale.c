/* hps scale --servers of a job across hosts (docs/ARCHITECTURE.md,
 * "Elastic servers across hosts"): the bridge's part beside the copies
 * and hand-overs of net/bridge_recover.c.
 *
 * 1. The plan (step 5). The last host's launcher (it owns the free server
 *    ranks) starts the new ranks, stores the plan and servers_want and
 *    bumps its moves_seq (release). Its bridge reports the plan in each
 *    heartbeat, numbered by that moves_seq; the scheduler passes it on in
 *    its states, and every other bridge stores the plan and servers_want,
 *    then bumps its own moves_seq (release) and wakes its servers, which
 *    copy as on one host (runtime/server/move.c). Each entry carries
 *    its range's move number when the plan was made (shm/segment.h,
 *    moves_off); a host that knows of a later move of the range (a FINAL
 *    or HANDBACK, which come bridge to bridge and may overtake the plan
 *    that comes through the scheduler) keeps its own entry: its servers
 *    never move a range back by a plan older than the range's last move.
 * 2. New ranks. A free rank of another host the states say ALIVE (a
 *    scale started it there), or a rank an earlier scale closed that the
 *    states say ALIVE with a newer incarnation (a scale back up after a
 *    scale down started it again), becomes ALIVE here with this bridge's pid,
 *    as the other remote nodes are at start, before the plan that names it
 *    (same states message, applied first): a source copies only to an
 *    ALIVE target.
 * 3. Moves between two servers of one host cross no bridge, so no FINAL
 *    tells the other hosts: the bridge of that host sees the owner table
 *    change from one local server to another and sends a HANDBACK record
 *    naming (range, from, to) to every other host, which stores the new
 *    owner (hpsi_bridge_handback_receive). Without it another host would
 *    route to a server that closed once it handed its ranges over.
 *
 * One thread (the bridge's) does all of this. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/node.h"

/* The host whose launcher owns the free server ranks: the last one. */
static int room_host(const struct hpsi_bridge *b)
{
	return b->me == b->nhosts - 1;
}

void hpsi_bridge_scale_report(struct hpsi_bridge *b, struct hpsi_sched_states *m)
{
	if (!hpsi_seg_room(&b->seg) || !room_host(b))
		return;
	/* acquire pairs with the launcher's release of moves_seq (publish_plan,
	 * runtime/cluster/launch.c): the plan and servers_want stored before
	 * it are read after. A plan stored meanwhile (moves_seq moved on while
	 * we read) goes in the next heartbeat; this one repeats the last. */
	uint32_t seq = atomic_load_explicit(&b->seg.hdr->moves_seq, memory_order_acquire);
	if (seq != b->plan_seq) {
		uint16_t plan[HPSI_MAX_NODES], backup[HPSI_MAX_NODES] = {0};
		uint32_t moves[HPSI_MAX_NODES];
		for (uint32_t r = 0; r < b->S; r++) {
			plan[r] = (uint16_t)hpsi_range_want(&b->seg, r);
			moves[r] = atomic_load_explicit(&hpsi_seg_plan_moves(&b->seg)[r], memory_order_relaxed);
			if (b->seg.hdr->replicas) /* (one backup with room: config.c) */
				backup[r] = (uint16_t)hpsi_backup_want(&b->seg, r, 1);
		}
		uint32_t want = atomic_load_explicit(&b->seg.hdr->servers_want, memory_order_relaxed);
		if (atomic_load_explicit(&b->seg.hdr->moves_seq, memory_order_acquire) == seq) {
			memcpy(b->plan, plan, b->S * sizeof *plan);
			memcpy(b->plan_moves, moves, b->S * sizeof *moves);
			memcpy(b->plan_backup, backup, b->S * sizeof *backup);
			b->plan_seq = seq, b->plan_servers = want;
		}
	}
	m->plan_seq = b->plan_seq, m->plan_servers = b->plan_servers;
	memcpy(m->plan, b->plan, b->S * sizeof *b->plan);
	memcpy(m->plan_moves, b->plan_moves, b->S * sizeof *b->plan_moves);
	memcpy(m->plan_backup, b->plan_backup, b->S * sizeof *b->plan_backup);
}

/* Stores a plan that came through the scheduler; 1. */
static int store_plan(struct hpsi_bridge *b, uint32_t seq, uint32_t servers, const uint16_t *plan,
		      const uint16_t *backup, const uint32_t *plan_moves)
{
	b->plan_seq = seq;
	/* published by the release of moves_seq, as the launcher's own plan
	 * is on its host (move.c acquires it); and each entry's number after
	 * its owner, with release: a server that reads a range's entry
	 * between two plans acquires the number first, so the owner it reads
	 * after is that plan's or a later one's (review: the old owner paired
	 * with a new number moved a range back). An entry older than
	 * the range's last move known here stays as it is (the move stored
	 * its target there: hpsi_bridge_owner_to); this thread alone raises
	 * the numbers of ranges no server here holds, and a server here
	 * moves a range only by a plan this thread stored before. */
	uint32_t kept = 0;
	for (uint32_t r = 0; r < b->S; r++) {
		uint32_t moved = atomic_load_explicit(&hpsi_seg_moves(&b->seg)[r], memory_order_relaxed);
		/* with replicas by bands (shm/segment.h): a plan's own second
		 * copy of a range does not make it older */
		if (b->seg.hdr->replicas ? hpsi_moves_band_older(plan_moves[r], moved) : plan_moves[r] < moved) {
			kept++;
			continue;
		}
		atomic_store_explicit(&hpsi_seg_want(&b->seg)[r], plan[r], memory_order_relaxed);
		/* with replicas the backup's entry too, kept or taken with the
		 * owner's: every change of a range's tables (a copy's FINAL,
		 * recover.c room_handed) raises its one move number */
		if (b->seg.hdr->replicas)
			atomic_store_explicit(&hpsi_seg_backup_plan(&b->seg)[r], backup[r], memory_order_relaxed);
		/* with its number: a server here moves a range only by an entry
		 * not older than the range's last move (move.c) */
		atomic_store_explicit(&hpsi_seg_plan_moves(&b->seg)[r], plan_moves[r], memory_order_release);
	}
	if (kept)
		hpsi_info("bridge %s: plan %u of hps scale: %u key range%s moved since it was made; kept as moved", b->cfg.host,
			  seq, kept, kept == 1 ? "" : "s");
	atomic_store_explicit(&b->seg.hdr->servers_want, servers, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->seg.hdr->moves_seq, 1, memory_order_release);
	return 1;
}

/* HPS_FAILPOINT=lateplan:MS (struct hpsi_bridge): the plans due, stored
 * in the order they came; 1 if one was. */
static int late_plans_due(struct hpsi_bridge *b)
{
	int stored = 0;
	while (b->late_n && hpsi_now_ns() >= b->late_plan[0].due) {
		struct hpsi_late_plan *p = &b->late_plan[0];
		stored = store_plan(b, p->seq, p->servers, p->plan, p->backup, p->moves);
		memmove(&b->late_plan[0], &b->late_plan[1], --b->late_n * sizeof *p);
	}
	return stored;
}

int hpsi_bridge_scale_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m)
{
	if (!b->late_plan_parsed) {
		const char *fp = hpsi_setting("FAILPOINT");
		unsigned ms;
		int end = 0;
		b->late_plan_parsed = 1;
		if (fp && sscanf(fp, "lateplan:%u%n", &ms, &end) == 1 && fp[end] == 0 && !room_host(b))
			b->late_plan_ns = (int64_t)ms * 1000000;
		if (fp && sscanf(fp, "holdclosed:%u%n", &ms, &end) == 1 && fp[end] == 0 && !room_host(b))
			b->hold_closed_ns = (int64_t)ms * 1000000;
	}
	if (!hpsi_seg_room(&b->seg) || b->sched_lost)
		return 0;
	int changed = 0;
	for (uint32_t n = 0; n < b->S && n < m->nnodes; n++) {
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		uint32_t cur = hpsi_node_state(&b->seg, n), inc = m->join[n] >> 8;
		if (hpsi_node_local(&b->seg, n) || m->state[n] != HPSI_NODE_ALIVE)
			continue;
		/* A free rank's first start, or a rank an earlier scale closed
		 * started again by a later one (a scale back up after a scale
		 * down): the scheduler takes only a newer incarnation back from
		 * CLOSED (scheduler.c, server_words), and so does this host. It
		 * may not have applied that CLOSED yet (held back while a plan
		 * or a FINAL was due: hpsi_bridge_close_waits) when the new
		 * process's ALIVE comes: a newer incarnation of a rank still
		 * ALIVE here is the same restart (no replacement takes a
		 * rank's place in a job with room: launch.c refuses
		 * --restart-servers there). Without it this host kept the
		 * old incarnation, its server's copies named it, and the new
		 * process dropped them all (TSan, back to back: every request
		 * to the ranges of the scale back up timed out) */
		uint32_t known = atomic_load_explicit(&node->incarnation, memory_order_relaxed);
		int again = inc > known && (cur == HPSI_NODE_CLOSED || cur == HPSI_NODE_ALIVE);
		if (!(cur == HPSI_NODE_VACANT && n >= b->seg.hdr->launched_servers) && !again)
			continue;
		/* relaxed: published by the release of ALIVE below. Its
		 * incarnation as its host counts it (HPSI_SRV_WORD in the states):
		 * a source here names it in its copy, which the target checks */
		atomic_store_explicit(&node->incarnation, inc, memory_order_relaxed);
		atomic_store_explicit(&node->pid, (int32_t)getpid(), memory_order_relaxed);
		atomic_store_explicit(&node->birth, hpsi_proc_birth(getpid()), memory_order_relaxed);
		/* release: pairs with the acquire of whoever checks the node */
		int held = cur == HPSI_NODE_ALIVE;
		if (atomic_compare_exchange_strong_explicit(&node->state, &cur, HPSI_NODE_ALIVE, memory_order_acq_rel,
							    memory_order_acquire)) {
			hpsi_info("bridge %s: server %u runs on host %u%s (hps scale%s)", b->cfg.host, n, b->host_of_server[n],
				  again ? " again" : "", held ? "; its CLOSED was held back here" : "");
			changed = 1;
		}
	}
	if (room_host(b) || !m->plan_seq || m->plan_seq == (b->late_plan_ns ? b->late_seen : b->plan_seq))
		return changed | late_plans_due(b);
	if (m->plan_servers < 1 || m->plan_servers > b->S) {
		hpsi_msg_count_bad("a plan of a scale with a bad count of servers");
		return changed | late_plans_due(b);
	}
	for (uint32_t r = 0; r < b->S; r++)
		if (m->plan[r] >= b->S) {
			hpsi_msg_count_bad("a plan of a scale naming no server");
			return changed | late_plans_due(b);
		} else if (m->plan_moves[r] > HPSI_MOVES_MAX) { /* would never count as older */
			hpsi_msg_count_bad("a plan of a scale with a move number out of range");
			return changed | late_plans_due(b);
		} else if (b->seg.hdr->replicas && (m->plan_backup[r] >= b->S || m->plan_backup[r] == m->plan[r])) {
			hpsi_msg_count_bad("a plan of a scale naming no backup apart from the primary");
			return changed | late_plans_due(b);
		}
	/* A plan that moves a range to a rank the states say CLOSED while
	 * this host still has it ALIVE (its CLOSED held back:
	 * hpsi_bridge_close_waits) waits: a server here copies only to an
	 * ALIVE target, and this one is the old process, gone, not the one
	 * a scale back up is starting (HPS_FAILPOINT=holdclosed, TSan: the
	 * source copied to it before the new process ran, the copy was
	 * lost, the scale gave up and the requests to the range timed
	 * out). Every states message carries the plan: it is stored once
	 * this host took the CLOSED, or the new process's ALIVE above. The
	 * plans held back before it are stored meanwhile (review: with
	 * lateplan they hold every CLOSED back, and on three hosts two
	 * hosts each waited for the other's rank) */
	for (uint32_t r = 0; r < b->S; r++)
		for (uint32_t i = 0; i <= (b->seg.hdr->replicas ? 1u : 0u); i++) {
			uint32_t t = i ? m->plan_backup[r] : m->plan[r];
			if (t != hpsi_replica(&b->seg, r, i) && t < m->nnodes && m->state[t] == HPSI_NODE_CLOSED &&
			    !hpsi_node_local(&b->seg, t) && hpsi_node_state(&b->seg, t) == HPSI_NODE_ALIVE)
				return changed | late_plans_due(b);
		}
	if (b->late_plan_ns) {
		if (b->late_n < sizeof b->late_plan / sizeof b->late_plan[0]) { /* full: a later states brings it */
			struct hpsi_late_plan *p = &b->late_plan[b->late_n++];
			p->due = hpsi_now_ns() + b->late_plan_ns, p->seq = m->plan_seq, p->servers = m->plan_servers;
			memcpy(p->plan, m->plan, b->S * sizeof *p->plan);
			memcpy(p->moves, m->plan_moves, b->S * sizeof *p->moves);
			memcpy(p->backup, m->plan_backup, b->S * sizeof *p->backup);
			b->late_seen = m->plan_seq;
		}
		return changed | late_plans_due(b);
	}
	return store_plan(b, m->plan_seq, m->plan_servers, m->plan, m->plan_backup, m->plan_moves);
}

/* A leaving server closes once its key ranges moved (move.c): its host
 * sends the hand-over (FINAL, HANDBACK) straight to the other bridges and
 * the CLOSED through the scheduler, so the CLOSED may come first (CI,
 * under ASan: the workers here read "key range 3 has no server left" 2 ms
 * before the FINAL came, and their pushes failed). The scheduler sends
 * its states every heartbeat, so a CLOSED held back here is taken by a
 * later one, once the owner table no longer names n. A range still
 * planned to stay on n (the job's end) does not hold it back. The plan
 * (want) comes in the same states as the CLOSED or before it: the last
 * host's heartbeat carries its plan from the scale's start. Relaxed: the
 * owner entries are stored by this bridge (the FINAL, the HANDBACK) or
 * acquired by the routing that reads them; only this thread decides. */
int hpsi_bridge_close_waits(struct hpsi_bridge *b, uint32_t n)
{
	if (!hpsi_seg_room(&b->seg) || n >= b->S)
		return 0;
	if (b->hold_closed_ns) { /* HPS_FAILPOINT=holdclosed:MS (struct hpsi_bridge) */
		int64_t now = hpsi_now_ns();
		if (!b->closed_seen[n])
			b->closed_seen[n] = now;
		if (now - b->closed_seen[n] < b->hold_closed_ns)
			return 1;
	}
	/* A plan that came before the CLOSED (HPS_FAILPOINT=lateplan holds
	 * it back) is stored first: want still names n until then, so the
	 * check below would not hold the CLOSED (TSan, back to back: a FINAL
	 * 17 ms slow came after the CLOSED, and the workers here read "key
	 * range 1 has no server left") */
	if (b->late_n)
		return 1;
	for (uint32_t r = 0; r < b->S; r++)
		if (atomic_load_explicit(&hpsi_seg_owner(&b->seg)[r], memory_order_relaxed) == n &&
		    atomic_load_explicit(&hpsi_seg_want(&b->seg)[r], memory_order_relaxed) != n)
			return 1;
	/* with replicas a backup too: the FINAL of the copy that makes
	 * another rank the backup may still be on its way here */
	for (size_t r = 0; b->seg.hdr->replicas && r < b->S; r++)
		if (atomic_load_explicit(&hpsi_seg_backups(&b->seg)[r], memory_order_relaxed) == n &&
		    atomic_load_explicit(&hpsi_seg_backup_plan(&b->seg)[r], memory_order_relaxed) != n)
			return 1;
	return 0;
}

int hpsi_bridge_scale_owners(struct hpsi_bridge *b)
{
	if (!hpsi_seg_room(&b->seg) || !b->serving)
		return 0;
	int moved = 0, K = b->seg.hdr->replicas != 0;
	for (uint32_t r = 0; r < b->S; r++) {
		uint32_t was = b->serving[r], now = hpsi_range_owner(&b->seg, r);
		uint32_t nb = K ? hpsi_replica(&b->seg, r, 1) : 0;
		/* With replicas (one backup) a copy within this host may also
		 * make a rank here the backup of a range its primary here keeps
		 * (recover.c, ROOM_BACKUP). Neither after a failover: serving
		 * names the backup that took the range over, the tables stay */
		int owner_moved = now != was && was < b->S && hpsi_bridge_local_server(b, was) &&
				  hpsi_bridge_local_server(b, now);
		int backup_moved = K && now == was && nb != b->serving_backup[r] && nb < b->S &&
				   hpsi_bridge_local_server(b, now) && hpsi_bridge_local_server(b, nb);
		if (K && hpsi_server_gone(&b->seg, now))
			continue;
		if (!owner_moved && !backup_moved)
			continue; /* (a move to another host: its FINAL tells, bridge_recover.c) */
		struct hpsi_msg_hdr h;
		int room = 1;
		for (uint32_t i = 0; i < b->nhosts; i++)
			if (i != b->me && hpsi_bridge_batch_room(&b->out[i], hpsi_batch_rec_bytes(sizeof h)))
				room = 0;
		if (!room)
			return moved; /* next pass */
		hpsi_msg_init(&h, HPSI_MSG_CLOCK, was, 0);
		h.range = r;
		h.part = (uint32_t)owner_moved; /* 0: the backup only (to: the new backup); a clock message has no width */
		h.keys_off = nb;       /* with replicas: the backup from now on */
		/* The move's number, the one its FINAL carried: the source
		 * raises the host's number after it stored the owner (release,
		 * move.c hpsi_move_handed), so the number read here (acquire)
		 * may be the one before the move; that one plus one is the
		 * FINAL's (the source counted from the number it held the range
		 * at, serving_moves). Two moves within this host between two
		 * passes are told as one, numbered one too low if the second's
		 * number is not raised yet: never too high, so no later plan's
		 * entry looks older than the range's move on another host */
		uint32_t moves = atomic_load_explicit(&hpsi_seg_moves(&b->seg)[r], memory_order_acquire);
		if (hpsi_range_owner(&b->seg, r) != now || (K && hpsi_replica(&b->seg, r, 1) != nb))
			continue; /* moved on meanwhile: the number may be a later move's (next pass) */
		if (K && (nb == now || moves <= b->serving_moves[r]))
			continue; /* a copy half stored (a swap names its target twice between its two
				   * entries), or its number not raised yet, which the source does after
				   * both (recover.c room_handed; review): next pass */
		if (moves <= b->serving_moves[r])
			moves = b->serving_moves[r] + 1;
		b->serving_moves[r] = moves;
		h.resp_cap = moves;
		for (uint32_t i = 0; i < b->nhosts; i++)
			if (i != b->me)
				hpsi_bridge_append(b, i, was, owner_moved ? now : nb, HPSI_REC_HANDBACK, &h, NULL, 0, NULL, 0);
		b->serving[r] = now;
		b->serving_backup[r] = nb;
		moved = 1;
	}
	return moved;
}
