/* Key ranges that move between server processes: `hps scale --servers N`
 * of a job launched with room for more servers (--max-servers M, no
 * replicas). docs/ARCHITECTURE.md, "Elastic servers", has the design.
 *
 * The job has M key ranges from its start; the owner table (shm/segment.h)
 * names the server process (rank) serving each, and its second half the
 * rank a scale's plan moves it to. The rings of (worker, range) belong to
 * the range, so a move is the copy and hand-back of a replacement's
 * recovery (recover.c): the owner copies the range to the planned rank
 * over their server ring while it serves it, freezes it for the last
 * pushed keys, sends the FINAL (every worker's clock, phase and last
 * sequence), stops serving it and stores the new owner (release); the
 * target continues the rings where the owner stopped. Nothing is read
 * twice, held pulls stay at the head of their ring, every worker's order
 * per range is kept, and workers resend nothing: they route by range and
 * wake whoever the owner table names.
 *
 * Scale out: the launcher starts the new ranks (ALIVE, serving nothing),
 * then their sources copy to them. Scale in: the planned owners of a
 * leaving rank's ranges are running servers; once it handed every range
 * over, the leaving rank closes (CLOSED: nobody routes to it any more). */
#include <unistd.h>

#include "net/route.h"
#include "runtime/client/join.h"
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "runtime/server/server_stats.h"
#include "shm/node.h"
#include "shm/wake.h"

int hpsi_move_step(struct server *sv)
{
	int n = 0, stuck = 0;
	/* acquire pairs with the launcher's release of the plan's number:
	 * the plan (hpsi_seg_want) and servers_want it stored before */
	uint32_t seq = atomic_load_explicit(&sv->seg->hdr->moves_seq, memory_order_acquire);
	if (seq != sv->moves_seen) {
		sv->moves_seen = seq;
		n++;
	}
	for (uint32_t s = 0; s < sv->nservers; s++)
		if (s != sv->me)
			n += hpsi_replica_drain_from(sv, s, &stuck);
	return n + hpsi_recover_step(sv);
}

int hpsi_move_pending(struct server *sv)
{
	for (uint32_t s = 0; s < sv->nservers; s++)
		if (s != sv->me && hpsi_ring_pending(sv->fwd_in[s].r))
			return 1;
	/* relaxed: only whether to look; hpsi_move_step acquires it */
	return atomic_load_explicit(&sv->seg->hdr->moves_seq, memory_order_relaxed) != sv->moves_seen ||
	       hpsi_recover_pending(sv);
}

void hpsi_move_hand_slow(struct server *sv, uint32_t range)
{
	if (!sv->hand_slow_ms) /* HPS_FAILPOINT=handslow (struct server) */
		return;
	hpsi_warn("server %u: HPS_FAILPOINT=handslow: waits %u ms after the hand-over of key range %u", sv->me,
		  sv->hand_slow_ms, range);
	usleep(sv->hand_slow_ms * 1000u);
}

/* The source's end of a move (recover.c calls it after the FINAL went):
 * the range is the target's from here. */
void hpsi_move_handed(struct server *sv, struct range_state *rs, uint32_t to, uint32_t moved, double mb, double ms,
		      uint64_t mapped)
{
	size_t keys = hpsi_store_size(rs->store);
	hpsi_serve_stop(sv, rs);
	hpsi_members_changing(sv->seg); /* hps_num_servers may change: the epoch first */
	/* release pairs with routing's acquire (hpsi_range_owner): a worker
	 * that wakes the new owner finds the FINAL published before it */
	atomic_store_explicit(&hpsi_seg_owner(sv->seg)[rs->id], (uint16_t)to, memory_order_release);
	/* The move's number after the owner (release, hpsi_seg_moves_raise):
	 * whoever acquires the new number reads the new owner after it (the
	 * launcher's plans, the bridge's HANDBACK of a move within a host) */
	hpsi_seg_moves_raise(sv->seg, rs->id, moved);
	hpsi_move_hand_slow(sv, rs->id);
	hpsi_members_changed(sv->seg); /* hps_membership_epoch: the servers changed */
	/* before its memory goes (which takes a while for a large range): the
	 * line's time is the FINAL's (bench/net_bench scale reads it) */
	hpsi_warn("server %u moved key range %u (%zu keys, %.1f MB in %.3f ms) to server %u (%llu keys in tables mapped, not copied)",
		  sv->me, rs->id, keys, mb, ms, to, (unsigned long long)mapped);
	/* its memory goes: an empty table of the same kind, filled again by a
	 * copy if the range comes back; one without memfds, so that ranges a
	 * server no longer holds cost it no fds (a copy's BEGIN makes one that
	 * shares) */
	struct hpsi_store *empty = hpsi_store_create_idle(rs->store);
	if (empty) {
		/* the target answered its SYNC_WHOLE: it opened the memfds (its
		 * own fds), so the pages stay with it */
		hpsi_store_destroy(rs->store);
		rs->store = rs->arg = empty;
	}
	hpsi_sstat_stores(sv);
}

int hpsi_move_plan_older(const struct server *sv, const struct range_state *rs)
{
	/* Acquire: every writer of the plan (launch.c, the launcher's;
	 * net/bridge_scale.c store_plan, another host's) stores an entry's
	 * number after its owner with release, and the caller reads the
	 * owner after this (recover.c find_target), so the owner it moves
	 * the range to is this number's plan or a later one's, never the
	 * entry before it (review: a pass between two plans could pair the
	 * old entry with the new number and move the range back). The
	 * range's number is its FINAL's (moved_in) or one
	 * this host's bridge or a source here raised since. A plan made
	 * before the range's last move (a scale's end that read the owner
	 * before the move, a plan that came after a FINAL that overtook it)
	 * would move it back: the range stays, and the launcher or bridge
	 * stores its owner as the plan (launch.c keep_moved_entries,
	 * net/bridge_recover.c hpsi_bridge_owner_to) */
	uint32_t r = rs->id;
	uint32_t planned = atomic_load_explicit(&hpsi_seg_plan_moves(sv->seg)[r], memory_order_acquire);
	uint32_t moved = atomic_load_explicit(&hpsi_seg_moves(sv->seg)[r], memory_order_relaxed);
	return planned < (moved > rs->moved_in ? moved : rs->moved_in);
}

struct range_state *hpsi_move_ack_range(struct server *sv)
{
	/* kept while it serves: acks committed on its ring are published
	 * by the same pass (replica.c), whatever ranges came meanwhile */
	if (sv->ack_rs && sv->ack_rs->serving)
		return sv->ack_rs;
	sv->ack_rs = NULL;
	for (uint32_t i = 0; i < sv->nranges && !sv->ack_rs; i++)
		if (sv->ranges[i].serving)
			sv->ack_rs = &sv->ranges[i];
	return sv->ack_rs;
}

void hpsi_move_drop_unnamed(struct server *sv)
{
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		/* a range the tables named this server for and no longer do
		 * stays so while nothing copies it here; a copy that just
		 * arrived is not named yet (its primary writes the table after
		 * the FINAL: recover.c room_handed) and is kept until it is */
		if (rs->serving || !rs->synced || rs->copy_begun || rs->sync)
			continue;
		if (hpsi_replica_index(sv->seg, rs->id, sv->me) != HPSI_NO_SERVER) {
			rs->named = 1;
			continue;
		}
		if (!rs->named) /* a fresh copy, not named yet */
			continue;
		struct hpsi_store *empty = hpsi_store_create_idle(rs->store);
		if (!empty)
			continue;
		hpsi_store_destroy(rs->store);
		rs->store = rs->arg = empty;
		rs->synced = rs->named = 0;
		hpsi_sstat_stores(sv);
		hpsi_info("server %u drops its copy of key range %u: hps scale moved its backup to server %u", sv->me,
			  rs->id, hpsi_replica(sv->seg, rs->id, 1));
	}
}

int hpsi_move_done_leaving(struct server *sv)
{
	/* acquire pairs with the launcher's release of moves_seq, stored
	 * after servers_want: a plan seen has its count */
	(void)atomic_load_explicit(&sv->seg->hdr->moves_seq, memory_order_acquire);
	if (sv->me < atomic_load_explicit(&sv->seg->hdr->servers_want, memory_order_relaxed))
		return 0;
	for (uint32_t i = 0; i < sv->nranges; i++)
		if (sv->ranges[i].serving || sv->ranges[i].sync || sv->ranges[i].copy_begun || sv->ranges[i].kept)
			return 0;
	/* Its FINALs read off its forward rings first (by a target here, or
	 * by the bridge, which sends a remote target's on in that pass): its
	 * CLOSED reaches other hosts through the scheduler, and a worker
	 * there that saw it before the FINAL took the range for one with no
	 * server left (test_xscale_scale_three_hosts, once in five runs: the
	 * bridge read the FINAL 7 ms after the server closed). A target that
	 * is gone reads nothing more. */
	for (uint32_t s = 0; (sv->movable || sv->replicated_room) && s < sv->nservers; s++)
		if (s != sv->me && sv->fwd_out[s].r && hpsi_ring_pending(sv->fwd_out[s].r) &&
		    hpsi_node_state(sv->seg, s) == HPSI_NODE_ALIVE)
			return 0;
	/* a replicated job's: no table names it (its backups moved too) */
	for (uint32_t r = 0; sv->replicated_room && r < sv->nservers; r++)
		if (hpsi_replica_index(sv->seg, r, sv->me) != HPSI_NO_SERVER)
			return 0;
	hpsi_warn("server %u leaves the job: hps scale handed its key ranges to the other servers", sv->me);
	return 1;
}
