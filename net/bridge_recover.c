/* Replacement servers across hosts (HPS_REPLICAS with --hosts,
 * hps launch --restart-servers): the bridge's part (docs/ARCHITECTURE.md,
 * "Across hosts", Recovery).
 *
 * On one host a replacement claims its dead rank (a new incarnation,
 * JOINING, its `lacking` bits), and the servers holding its key ranges
 * copy them to it over their forward rings (runtime/server/recover.c).
 * Across hosts three things cross through the bridges:
 *
 * 1. Its state. Each heartbeat carries, per local server, its incarnation
 *    and lacking bits (HPSI_SRV_WORD in join[], net/wire.h); the
 *    scheduler takes a newer incarnation as the way back from DEAD and
 *    passes the words on in its states. Another host's bridge applies
 *    them to its copy of the node: a newer incarnation (only once the
 *    death before it was fenced here, so that the failover of the old
 *    one is over) stores the lacking bits and the incarnation, clears
 *    `fenced`, then JOINING (release); then lacking bits as they clear,
 *    and ALIVE. So the servers here see the replacement as a server of
 *    their own host would (find_target in recover.c), and routing skips
 *    it while it lacks a range.
 * 2. The copy. A SYNC record in a forward ring to a remote server goes as
 *    it is (header and body, HPSI_REC_SYNC) in the per-host batch, after
 *    the forwards before it, and into the same forward ring there: the
 *    order of the ring is kept end to end, as for forwards
 *    (net/bridge_fwd.c). SYNC_WHOLE (a move's memfds) never crosses.
 * 3. The hand-back. The last FINAL piece of a range handed back moves the
 *    range's pairs on every host to the replacement (hpsi_bridge_range_to,
 *    the other direction of a failover): on the source's host when the
 *    bridge reads it (the source froze the range and published its heads
 *    and answers before the FINAL, which the bridge acquired), before the
 *    requests it sends after it; on the replacement's host before it is
 *    written into the ring, so the replacement attaches only to rings no
 *    bridge reads or writes for another server any more. The source's
 *    host holds the requests the other host still sends until the range's
 *    lacking bit clears there (then they are stale: that host reads them
 *    again for the replacement) or the replacement's FENCE brings the
 *    range back (then they are delivered). On the replacement's host the
 *    local workers' rings are read again from the oldest request not
 *    answered (the source's answers still on their way are dropped as
 *    stale); the range is marked resent (runtime/server/recover.c,
 *    attach_range), and its last sequences, copied in the FINAL, answer
 *    a push seen twice without applying it again. Every third host
 *    learns it from a HANDBACK record the source's host sends it when it
 *    reads the FINAL (as a FENCE goes to every host), and moves its pairs
 *    as the replacement's host does for its own workers: origin pairs read
 *    again from the oldest request not answered, towards the
 *    replacement's host, where they wait in the held queue if they come
 *    before the FINAL (hpsi_bridge_range_coming); the source's answers
 *    still on their way are stale, and the requests it sent the source
 *    meanwhile are held there and dropped once the range settles or the
 *    pair's RESET comes (net/bridge_failover.c). A third host that
 *    ignored the HANDBACK (the FENCE of the death before came to it
 *    later) and then sends the range to the source's host is told again
 *    (hpsi_bridge_handback_again).
 *
 * One thread (the bridge's) does all of this. */
#include <stdatomic.h>

#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/log.h"
#include "shm/bell.h"
#include "shm/node.h"
#include "shm/wake.h"

void hpsi_bridge_recover_report(struct hpsi_bridge *b, struct hpsi_sched_states *m)
{
	if (!b->serving)
		return;
	for (uint32_t n = b->seg.hdr->srv_lo; n < b->seg.hdr->srv_hi && n < m->nnodes; n++) {
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		/* After the state the heartbeat acquired: a claim since may show
		 * its incarnation beside the state before it (DEAD), which the
		 * scheduler waits out (scheduler.c, server_words) */
		uint32_t inc = atomic_load_explicit(&node->incarnation, memory_order_relaxed);
		uint32_t lack = atomic_load_explicit(&node->lacking, memory_order_relaxed);
		m->join[n] = HPSI_SRV_WORD(inc, inc ? lack : 0);
	}
}

/* 1 when the node moved from *cur to st (acq_rel, as every state change). */
static int move_state(struct hpsi_node *node, uint32_t cur, uint32_t st)
{
	return atomic_compare_exchange_strong_explicit(&node->state, &cur, st, memory_order_acq_rel,
						       memory_order_acquire);
}

int hpsi_bridge_recover_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m)
{
	if (!b->serving || b->sched_lost)
		return 0;
	int changed = 0;
	for (uint32_t n = 0; n < b->S && n < m->nnodes; n++) {
		if (hpsi_node_local(&b->seg, n))
			continue;
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		uint32_t inc = m->join[n] >> 8, lack = m->join[n] & 0xffu, st = m->state[n];
		uint32_t cur = hpsi_node_state(&b->seg, n);
		uint32_t mine = atomic_load_explicit(&node->incarnation, memory_order_relaxed);
		if (inc > mine) {
			/* the death before it first: its FENCE came and its forwards
			 * are in (or its host was counted lost) */
			if (cur != HPSI_NODE_DEAD || !atomic_load_explicit(&node->fenced, memory_order_acquire))
				continue;
			/* relaxed: published by the release of JOINING below */
			atomic_store_explicit(&node->lacking, lack, memory_order_relaxed);
			atomic_store_explicit(&node->incarnation, inc, memory_order_relaxed);
			atomic_store_explicit(&node->fenced, 0, memory_order_relaxed);
			b->fence[n] = 0; /* FENCE_NONE: its own death is fenced again */
			b->dead_since[n] = 0;
			if (!move_state(node, HPSI_NODE_DEAD, HPSI_NODE_JOINING))
				continue; /* (only this thread moves a remote node from DEAD) */
			hpsi_warn("bridge %s: server %u (host %u) is replaced (incarnation %u): this host's servers copy its key ranges to it",
				  b->cfg.host, n, b->host_of_server[n], inc);
			cur = HPSI_NODE_JOINING, mine = inc, changed = 1;
		}
		if (inc != mine || (cur != HPSI_NODE_JOINING && cur != HPSI_NODE_ALIVE))
			continue;
		uint32_t had = atomic_load_explicit(&node->lacking, memory_order_relaxed);
		if ((had & ~lack) && inc) {
			/* release pairs with routing's acquire (net/route.h): a
			 * replica is counted once it holds the range whole; bits only
			 * clear (a copy begins again only for a range not served) */
			atomic_fetch_and_explicit(&node->lacking, lack, memory_order_release);
			for (uint32_t i = 0; i <= b->seg.hdr->replicas; i++) {
				uint32_t r = hpsi_replica_range(&b->seg, n, i);
				if ((had & ~lack) >> i & 1 && b->handed[r] == 1 && b->serving[r] == n)
					hpsi_bridge_range_settled(b, r);
			}
			if (lack & had)
				hpsi_info("bridge %s: server %u (incarnation %u) holds more key ranges whole (lacking %#x)",
					  b->cfg.host, n, inc, lack & had);
			else
				hpsi_warn("bridge %s: server %u (incarnation %u) holds every key range whole", b->cfg.host,
					  n, inc);
			changed = 1;
		}
		if (cur == HPSI_NODE_JOINING && st == HPSI_NODE_ALIVE && move_state(node, cur, HPSI_NODE_ALIVE)) {
			hpsi_warn("bridge %s: server %u (incarnation %u) serves again", b->cfg.host, n, inc);
			changed = 1;
		} else if (cur == HPSI_NODE_JOINING && (st == HPSI_NODE_DEAD || st == HPSI_NODE_CLOSED) &&
			   move_state(node, cur, st)) {
			changed = 1; /* (apply_states moves it from ALIVE) */
		}
	}
	return changed;
}

/* A replicated job with room (one backup: config.c): a scale's copies
 * (runtime/server/recover.c, find_room) change its owner and backup
 * tables, one entry per copy, and their FINALs cross hosts. */
static int room_replicas(const struct hpsi_bridge *b)
{
	return b->serving && hpsi_seg_room(&b->seg) && b->seg.hdr->replicas;
}

/* Whether h is the last FINAL piece of a range's copy. */
static int last_final(const struct hpsi_bridge *b, const struct hpsi_msg_hdr *h)
{
	return h->part == HPSI_SYNC_FINAL && (uint64_t)h->nkeys + h->val_bytes / HPSI_SYNC_PEER_BYTES >= b->W;
}

/* Whether h is the last FINAL piece of a range handed back. */
static int last_handback(const struct hpsi_bridge *b, const struct hpsi_msg_hdr *h)
{
	return h->width == 1 && last_final(b, h);
}

/* The tables after a copy of a replicated job with room from p to q
 * (recover.c room_handed): width 0 makes q the backup of p's range;
 * 1 and 2 make q its primary, backed up by the rank in the low half of
 * keys_off. The FINAL's width; the HANDBACK record's part (a clock
 * message has no width: net/codec.c). */
static void room_tables(uint32_t width, uint64_t keys_off, uint32_t p, uint32_t q, uint32_t *owner, uint32_t *backup)
{
	*owner = width ? q : p;
	*backup = width ? (uint32_t)keys_off : q;
}

/* A SYNC's header as recover.c writes it, from server p to server q. */
static int sync_ok(const struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h, size_t len)
{
	int room = room_replicas(b);
	/* (the header first: review, a record shorter than one) */
	return len >= sizeof *h && h->magic == HPSI_MSG_MAGIC && h->version == HPSI_MSG_VERSION &&
	       h->type == HPSI_MSG_SYNC && h->flags == HPSI_F_REPLICA && h->sender == p && p < b->S && q < b->S &&
	       h->val_bytes == len - sizeof *h && h->range < b->S && h->part < HPSI_SYNC_WHOLE &&
	       h->width <= (room ? 2u : 1u) &&
	       /* a new primary's FINAL names a backup apart from it */
	       !(room && h->part == HPSI_SYNC_FINAL && h->width &&
		 ((uint32_t)h->keys_off >= b->S || (uint32_t)h->keys_off == q));
}

/* Stores the tables a copy of a replicated job with room made (its
 * owner, backup and number) unless this host stored a later copy's (a
 * copy's FINAL and the records of the copies after it come on different
 * streams: review, a late FINAL of a new backup rolled the owner back),
 * and points range r's pairs at the owner when they point at another
 * host (settle: but on the new owner's host, where the FINAL written
 * after this makes the pairs inbound). source: the copy's source is a
 * server here, which stores the same tables and raises the number after
 * it published the FINAL: the number raised, they are its (review: a
 * later copy of its own within this host may have stored new ones
 * since, which these would roll back). 1 when the pairs moved. */
static int room_tables_to(struct hpsi_bridge *b, uint32_t r, uint32_t owner, uint32_t backup, uint32_t moves, int settle,
			  int source)
{
	uint32_t cur = atomic_load_explicit(&hpsi_seg_moves(&b->seg)[r], memory_order_acquire);
	if (moves < cur) {
		b->stale++;
		return 0;
	}
	if (source && moves == cur) { /* (stored by the source) */
		b->serving_backup[r] = backup;
		b->serving_moves[r] = moves > b->serving_moves[r] ? moves : b->serving_moves[r];
	} else {
		hpsi_bridge_owner_to(b, r, owner, backup, moves);
	}
	/* An owner dead already (its FENCE came here before this copy's
	 * record, on another stream): the range goes on at its first live
	 * replica, as at the FENCE (review: the pairs went to the dead
	 * owner, whose host dropped their requests as stale) */
	uint32_t to = owner;
	if (hpsi_node_state(&b->seg, owner) == HPSI_NODE_DEAD)
		to = hpsi_range_first_live(&b->seg, r);
	uint32_t was = b->serving[r];
	if (was == to)
		return 0;
	if (to >= b->S || (was < b->S && b->host_of_server[was] == b->host_of_server[to])) {
		b->serving[r] = to; /* the same host: the same pairs (or none left: the workers fail it) */
		return 0;
	}
	hpsi_bridge_acks_moved(b, r);
	hpsi_bridge_range_to(b, r, to);
	if (settle)
		hpsi_bridge_range_settled(b, r); /* (as a move's: bridge_scale.c) */
	return 1;
}

/* The source's host of a copy of a replicated job with room: its last
 * FINAL goes to the target's host, a HANDBACK record with the new tables
 * to every other host (hpsi_bridge_handback_receive), in one pass or not
 * at all; then the tables here name them (the source stores the same
 * once it published the FINAL), and with a new primary the range's pairs
 * go to it. 1: not now (no room in a batch). */
static int room_final_send(struct hpsi_bridge *b, uint32_t p, uint32_t q, uint32_t host, const struct hpsi_msg_hdr *h)
{
	for (uint32_t i = 0; i < b->nhosts; i++)
		if (i != b->me && i != host && hpsi_bridge_batch_room(&b->out[i], hpsi_batch_rec_bytes(sizeof *h)))
			return 1;
	uint32_t owner, backup, r = h->range;
	room_tables(h->width, h->keys_off, p, q, &owner, &backup);
	hpsi_bridge_append(b, host, p, q, HPSI_REC_FORWARD | HPSI_REC_SYNC, h, h + 1, (size_t)h->val_bytes, NULL, 0);
	struct hpsi_msg_hdr hb;
	hpsi_msg_init(&hb, HPSI_MSG_CLOCK, p, 0);
	hb.range = h->range;
	hb.part = h->width;
	hb.keys_off = backup;
	hb.clock = atomic_load_explicit(&hpsi_seg_node(&b->seg, q)->incarnation, memory_order_relaxed);
	hb.resp_cap = h->resp_cap; /* the copy's number (net/codec.h) */
	for (uint32_t i = 0; i < b->nhosts; i++)
		if (i != b->me && i != host)
			hpsi_bridge_append(b, i, p, q, HPSI_REC_HANDBACK, &hb, NULL, 0, NULL, 0);
	if (room_tables_to(b, r, owner, backup, (uint32_t)h->resp_cap, 1, 1))
		hpsi_warn("bridge %s: server %u moved key range %u to server %u (host %u); server %u backs it up", b->cfg.host,
			  p, r, q, host, backup);
	else if (!h->width)
		hpsi_info("bridge %s: server %u (host %u) backs up key range %u of server %u", b->cfg.host, q, host, r, p);
	return 0;
}

int hpsi_bridge_sync_send(struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h, size_t len)
{
	if (!sync_ok(b, p, q, h, len)) {
		hpsi_msg_count_bad(len >= sizeof *h && h->part == HPSI_SYNC_WHOLE
					   ? "a range copy of whole tables to another host (memfds stay on their host)"
					   : "a malformed range copy in a forward ring");
		return 0;
	}
	uint32_t host = b->host_of_server[q];
	if (room_replicas(b) && last_final(b, h)) {
		if (hpsi_bridge_batch_room(&b->out[host], hpsi_batch_rec_bytes(len)))
			return 1;
		return room_final_send(b, p, q, host, h);
	}
	int back = b->serving && last_handback(b, h);
	if (back && b->final_hold_rank == q + 1) { /* HPS_FAILPOINT=handbackdie (struct hpsi_bridge) */
		int64_t now = hpsi_now_ns();
		if (!b->final_hold_until) {
			hpsi_warn("bridge %s: HPS_FAILPOINT=handbackdie: the FINAL of key range %u to server %u waits %d ms",
				  b->cfg.host, h->range, q, HPSI_HOLD_HANDBACK_MS);
			b->final_hold_until = now + HPSI_HOLD_HANDBACK_MS * 1000000ll;
		}
		if (now < b->final_hold_until)
			return 1;
		b->final_hold_rank = 0;
	}
	if (hpsi_bridge_batch_room(&b->out[host], hpsi_batch_rec_bytes(len)))
		return 1;
	/* the FINAL and the HANDBACK records go in one pass or not at all */
	for (uint32_t i = 0; back && i < b->nhosts; i++)
		if (i != b->me && i != host && hpsi_bridge_batch_room(&b->out[i], hpsi_batch_rec_bytes(sizeof *h)))
			return 1;
	hpsi_bridge_append(b, host, p, q, HPSI_REC_FORWARD | HPSI_REC_SYNC, h, h + 1, (size_t)h->val_bytes, NULL, 0);
	if (back) {
		hpsi_warn("bridge %s: server %u handed key range %u back to server %u (host %u)", b->cfg.host, p, h->range,
			  q, host);
		/* every other host moves its pairs too (hpsi_bridge_handback_receive);
		 * the replacement's incarnation, as this host knows it, tells them
		 * which one (clock) */
		struct hpsi_msg_hdr hb;
		hpsi_msg_init(&hb, HPSI_MSG_CLOCK, p, 0);
		hb.range = h->range;
		hb.clock = atomic_load_explicit(&hpsi_seg_node(&b->seg, q)->incarnation, memory_order_relaxed);
		hb.resp_cap = h->resp_cap; /* a move's number (net/codec.h) */
		for (uint32_t i = 0; i < b->nhosts; i++)
			if (i != b->me && i != host)
				hpsi_bridge_append(b, i, p, q, HPSI_REC_HANDBACK, &hb, NULL, 0, NULL, 0);
		if (hpsi_seg_movable(&b->seg)) /* (the source stores it too, after the FINAL: move.c) */
			hpsi_bridge_owner_to(b, h->range, q, HPSI_NO_SERVER, (uint32_t)h->resp_cap);
		hpsi_bridge_range_to(b, h->range, q);
		b->handed[h->range] = 1; /* (cleared when it moves again) */
		b->handed_by[h->range] = p;
		/* A move (hps scale) has no replica to come back to: what the
		 * other hosts send here for the range from now on they read again
		 * for the target once they took it (this HANDBACK), so it is
		 * stale; what they send the target before its FINAL waits there
		 * (hpsi_bridge_range_coming) */
		if (hpsi_seg_movable(&b->seg))
			hpsi_bridge_range_settled(b, h->range);
	}
	return 0;
}

/* A move of hps scale told by a HANDBACK record (net/bridge_scale.c):
 * from p of host `from` to q of that host (its bridge saw the owner table
 * change) or of a third host (its bridge read the FINAL). */
static void move_receive(struct hpsi_bridge *b, uint32_t from, uint32_t p, uint32_t q, uint32_t r, uint64_t moves)
{
	if (p >= b->S || q >= b->S || r >= b->S || b->host_of_server[p] != from || hpsi_bridge_local_server(b, q)) {
		hpsi_msg_count_bad("a hand-over naming no source of the sending host and target of another");
		return;
	}
	if (!hpsi_moves_valid(moves)) { /* (shm/segment.h, HPSI_MOVES_MAX) */
		hpsi_msg_count_bad("a hand-over with a move number out of range");
		return;
	}
	if (b->serving[r] != p) { /* (it moved on since, as told by a later FINAL here) */
		b->stale++;
		return;
	}
	hpsi_bridge_owner_to(b, r, q, HPSI_NO_SERVER, (uint32_t)moves);
	if (b->host_of_server[q] == from) {
		b->serving[r] = q; /* the same host: the same pairs */
		return;
	}
	hpsi_warn("bridge %s: server %u (host %u) moved key range %u to server %u (host %u)", b->cfg.host, p, from, r,
		  q, b->host_of_server[q]);
	hpsi_bridge_range_to(b, r, q);
	hpsi_bridge_range_settled(b, r);
}

/* A copy of a replicated job with room told by a HANDBACK record: from
 * the source's host when it read the FINAL (a third host here), or from
 * the host of both ends (its bridge saw the tables change:
 * net/bridge_scale.c). width 0: q backs up p's range from now; 1 and 2:
 * q serves it, backed up by `backup`. */
static void room_receive(struct hpsi_bridge *b, uint32_t from, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h)
{
	uint32_t r = h->range, owner, backup;
	room_tables(h->part, h->keys_off, p, q, &owner, &backup);
	if (p >= b->S || q >= b->S || r >= b->S || b->host_of_server[p] != from || hpsi_bridge_local_server(b, q) ||
	    h->part > 2 || backup >= b->S || backup == owner) {
		hpsi_msg_count_bad("a hand-over naming no source of the sending host and tables apart");
		return;
	}
	if (!hpsi_moves_valid(h->resp_cap)) {
		hpsi_msg_count_bad("a hand-over with a move number out of range");
		return;
	}
	/* by its number alone: a later copy's record or FINAL may have come
	 * first (another stream), and then this one is stale (review: by
	 * the source, a third host dropped a copy after the next one's
	 * backup FINAL and kept its pairs at the old owner's host) */
	if (room_tables_to(b, r, owner, backup, (uint32_t)h->resp_cap, 1, 0))
		hpsi_warn("bridge %s: server %u (host %u) moved key range %u to server %u (host %u); server %u backs it up",
			  b->cfg.host, p, from, r, q, b->host_of_server[q], backup);
}

void hpsi_bridge_owner_to(struct hpsi_bridge *b, uint32_t r, uint32_t q, uint32_t nb, uint32_t moves)
{
	int backup = nb != HPSI_NO_SERVER && b->seg.hdr->replicas; /* (one backup with room) */
	/* The plan too, but on the last host (its launcher makes the plans
	 * and keeps an entry older than the range's move there itself:
	 * runtime/cluster/launch.c, keep_moved_entries): another host may
	 * not have the plan of this move yet, and its servers must not move
	 * the range back by the plan before it (relaxed: the target reads it
	 * after it acquired the FINAL, which this thread writes into its ring
	 * after this) */
	if (b->me != b->nhosts - 1) {
		atomic_store_explicit(&hpsi_seg_want(&b->seg)[r], (uint16_t)q, memory_order_relaxed);
		if (backup)
			atomic_store_explicit(&hpsi_seg_backup_plan(&b->seg)[r], (uint16_t)nb, memory_order_relaxed);
	}
	hpsi_members_changing(&b->seg); /* hps_num_servers may change: the epoch first, and again below */
	/* release pairs with routing's acquire (hpsi_range_owner): a worker
	 * here that sees q as the owner finds the pairs moved (this thread
	 * moves them right after, before it reads any worker's ring again) */
	atomic_store_explicit(&hpsi_seg_owner(&b->seg)[r], (uint16_t)q, memory_order_release);
	/* the backup after the owner, as the source stores them (recover.c
	 * room_handed; release pairs with hpsi_replica's acquire) */
	if (backup) {
		atomic_store_explicit(&hpsi_seg_backups(&b->seg)[r], (uint16_t)nb, memory_order_release);
		if (r < HPSI_MAX_NODES)
			b->serving_backup[r] = nb;
	}
	/* Its move number after the owner (release, hpsi_seg_moves_raise: the
	 * launcher that acquires it reads q as the owner after). A plan older
	 * than this move no longer changes the range's entry here
	 * (hpsi_bridge_scale_apply, the same thread) */
	hpsi_seg_moves_raise(&b->seg, r, moves);
	if (r < HPSI_MAX_NODES && moves > b->serving_moves[r])
		b->serving_moves[r] = moves;
	/* hps_membership_epoch: the servers changed (as hpsi_members_changed,
	 * runtime/client/join.c; release: whoever sees the new epoch sees the
	 * owner before it) */
	atomic_fetch_add_explicit(&b->seg.hdr->members_seq, 1, memory_order_release);
	hpsi_wake_all(&b->seg);
}

int hpsi_bridge_late_handback_keep(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
				   const struct hpsi_msg_hdr *h)
{
	if (!b->final_hold_rank || b->final_hold_rank != rec->server + 1 || b->late_handback)
		return 0;
	hpsi_warn("bridge %s: HPS_FAILPOINT=handbackdie: the HANDBACK of key range %u waits %d ms", b->cfg.host, h->range,
		  HPSI_HOLD_HANDBACK_MS);
	b->late_handback = 1;
	b->late_handback_at = hpsi_now_ns() + HPSI_HOLD_HANDBACK_MS * 1000000ll;
	b->late_handback_from = from;
	b->late_handback_rec = *rec;
	b->late_handback_hdr = *h;
	return 1;
}

int hpsi_bridge_late_handback_check(struct hpsi_bridge *b)
{
	if (b->late_handback != 1 || hpsi_now_ns() < b->late_handback_at)
		return 0;
	b->late_handback = 2;
	hpsi_bridge_handback_receive(b, b->late_handback_from, &b->late_handback_rec, &b->late_handback_hdr);
	return 1;
}

void hpsi_bridge_handback_again(struct hpsi_bridge *b, uint32_t from, uint32_t r)
{
	/* A move (hps scale, replicated or not) has its own HANDBACK
	 * (move_receive, room_receive): its target does not die and bring
	 * the range back (review: with replicas this retold a third host with
	 * no move number, counted bad there) */
	if (!b->serving || r >= b->S || !b->handed[r] || hpsi_seg_room(&b->seg) || from >= HPSI_MAX_HOSTS)
		return;
	uint32_t q = b->serving[r], p = b->handed_by[r];
	if (q >= b->S || b->host_of_server[q] == b->me || b->host_of_server[q] == from ||
	    b->retold[r] >> from & 1)
		return;
	struct hpsi_msg_hdr hb;
	if (hpsi_bridge_batch_room(&b->out[from], hpsi_batch_rec_bytes(sizeof hb)))
		return; /* (no memory: told at its next request) */
	b->retold[r] |= 1ull << from;
	hpsi_warn("bridge %s: host %u still sends key range %u here: it is told again that server %u handed it back to server %u (host %u)",
		  b->cfg.host, from, r, p, q, b->host_of_server[q]);
	/* the same record as at the hand-back: the incarnation the range went
	 * to, as this host knows it, makes it idempotent there */
	hpsi_msg_init(&hb, HPSI_MSG_CLOCK, p, 0);
	hb.range = (uint16_t)r;
	hb.clock = atomic_load_explicit(&hpsi_seg_node(&b->seg, q)->incarnation, memory_order_relaxed);
	hpsi_bridge_append(b, from, p, q, HPSI_REC_HANDBACK, &hb, NULL, 0, NULL, 0);
}

void hpsi_bridge_handback_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
				  const struct hpsi_msg_hdr *h)
{
	uint32_t p = rec->worker, q = rec->server, r = h->range;
	if (room_replicas(b)) {
		room_receive(b, from, p, q, h);
		return;
	}
	if (b->serving && hpsi_seg_movable(&b->seg)) {
		move_receive(b, from, p, q, r, h->resp_cap);
		return;
	}
	if (!b->serving || p >= b->S || q >= b->S || r >= b->S || b->host_of_server[p] != from ||
	    b->host_of_server[q] == from || hpsi_bridge_local_server(b, q) ||
	    hpsi_replica_index(&b->seg, r, p) == HPSI_NO_SERVER || hpsi_replica_index(&b->seg, r, q) == HPSI_NO_SERVER) {
		hpsi_msg_count_bad("a hand-back naming no source of the sending host and replacement on a third host");
		return;
	}
	struct hpsi_node *node = hpsi_seg_node(&b->seg, q);
	uint32_t mine = atomic_load_explicit(&node->incarnation, memory_order_relaxed);
	uint32_t st = hpsi_node_state(&b->seg, q);
	/* Ignored (the range stays at p's host, which takes it back at the
	 * replacement's FENCE, or already did) when the range left p here
	 * meanwhile, or the replacement's death came here first: its
	 * incarnation here is newer, or the same one and dead. A replacement
	 * this host has not heard of yet (older incarnation here) is the one
	 * the range goes to. */
	if (b->serving[r] != p || mine > h->clock ||
	    (mine == h->clock && st != HPSI_NODE_JOINING && st != HPSI_NODE_ALIVE)) {
		b->stale++;
		return;
	}
	hpsi_warn("bridge %s: server %u (host %u) handed key range %u back to server %u (host %u)", b->cfg.host, p, from,
		  r, q, b->host_of_server[q]);
	hpsi_bridge_range_to(b, r, q);
}

void hpsi_bridge_sync_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec, const void *msg)
{
	const struct hpsi_msg_hdr *h = msg;
	uint32_t p = rec->worker, q = rec->server;
	if (!b->serving || !sync_ok(b, p, q, h, rec->len) || b->host_of_server[p] != from ||
	    !hpsi_bridge_local_server(b, q) || hpsi_bridge_local_server(b, p)) {
		hpsi_msg_count_bad("a range copy naming no remote source and local replacement");
		return;
	}
	/* a move's FINAL carries the range's move number (net/codec.h); one
	 * out of range would hold the range against every later plan */
	if (hpsi_seg_room(&b->seg) && h->part == HPSI_SYNC_FINAL && !hpsi_moves_valid(h->resp_cap)) {
		hpsi_msg_count_bad("a move's FINAL with a move number out of range");
		return;
	}
	uint32_t st = hpsi_node_state(&b->seg, q);
	if (st != HPSI_NODE_JOINING && st != HPSI_NODE_ALIVE)
		return; /* its target is gone: nobody reads it (the source stops) */
	if ((hpsi_seg_movable(&b->seg) || (room_replicas(b) && h->width)) && h->range < b->S)
		b->coming[h->range] = 1; /* until the FINAL (hpsi_bridge_range_coming) */
	if (room_replicas(b) && last_final(b, h)) {
		/* the target's host stores the tables before the FINAL goes
		 * into the ring, as for a move (below) */
		uint32_t owner, backup;
		room_tables(h->width, h->keys_off, p, q, &owner, &backup);
		hpsi_warn("bridge %s: server %u %s key range %u of server %u", b->cfg.host, q,
			  h->width ? "takes" : "backs up", h->range, p);
		room_tables_to(b, h->range, owner, backup, (uint32_t)h->resp_cap, 0, 0);
	} else if (last_handback(b, h)) {
		hpsi_warn("bridge %s: server %u hands key range %u back to server %u", b->cfg.host, p, h->range, q);
		/* a move (hps scale): the target's host stores the new owner
		 * before the FINAL goes into the ring (the target serves the
		 * range from it), as the source stores it on its own host */
		if (hpsi_seg_movable(&b->seg))
			hpsi_bridge_owner_to(b, h->range, q, HPSI_NO_SERVER, (uint32_t)h->resp_cap);
		hpsi_bridge_range_to(b, h->range, q);
	}
	hpsi_bridge_fwd_write(b, p, q, h, h + 1, h + 1);
}
