/* Server: the serving loop. It applies what primaries forward to it
 * (replica.c), takes over key ranges whose earlier replicas are gone,
 * serves the rings of every range it is the primary of (serve.c), and does
 * its part of checkpoints. Single-threaded: the handler needs no locks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/hps.h"
#include "net/route.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "runtime/server/checkpoint.h"
#include "runtime/server/memfd.h"
#include "runtime/server/serve.h"
#include "runtime/server/server_stats.h"
#include "shm/node.h"
#include "shm/wake.h"

#define IDLE_SLEEP_NS 100000000   /* liveness checks while idle */
#define IDLE_SLEEP_REPLICA_NS 20000000 /* with backups: notice a dead primary soon */

/* Marks workers that closed or died; returns 1 once all have. The node
 * table is read every time, the workers' processes checked once per
 * probe_ns by one process of the host group (hpsi_probe_due): a server is
 * woken by every process that leaves, and by every request. */
static int all_finished(struct server *sv)
{
	int all = 1;
	int probe = hpsi_probe_due(sv->seg, HPSI_PROBE_WORKERS, sv->probe_ns);
	if (sv->any_vacant) { /* a worker that claimed a rank is waited for */
		hpsi_members_look(sv);
		all = !sv->join_pending;
	}
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		if (sv->finished[wk])
			continue;
		uint32_t node = hpsi_worker_node(sv->seg, wk);
		/* A worker being restarted (RESTARTING) stays a member: its clock
		 * holds pulls back until it returns, and its predecessor's
		 * requests are served (runtime/client/rejoin.c). */
		uint32_t st = hpsi_worker_state(sv->seg, node, probe);
		/* A closed worker waited for all its answers: its rings are empty. */
		int empty = 1;
		for (uint32_t i = 0; i < sv->nranges; i++)
			if (sv->ranges[i].serving && hpsi_ring_nonempty(&sv->ranges[i].peers[wk].req))
				empty = 0;
		if (st == HPSI_NODE_DEAD || (st == HPSI_NODE_CLOSED && empty)) {
			hpsi_info(st == HPSI_NODE_DEAD ? "worker %u died: its requests are dropped, its clock holds back no pull"
						       : "worker %u closed: it holds back no pull",
				  wk);
			sv->finished[wk] = 1;
			for (uint32_t i = 0; i < sv->nranges; i++) {
				struct peer *p = &sv->ranges[i].peers[wk];
				if (p->held)
					hpsi_sstat_unhold(sv->stats, p->held_since);
				p->held = 0;
				sv->ranges[i].epoch++; /* it no longer holds back anyone's pulls */
			}
		} else
			all = 0;
	}
	return all;
}

static int requests_waiting(void *arg)
{
	struct server *sv = arg;
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		for (uint32_t wk = 0; rs->serving && !hpsi_recover_frozen(rs) && wk < sv->nworkers; wk++) {
			struct peer *p = &rs->peers[wk];
			int blocked = p->held && p->held_head == p->req.head && p->held_epoch == rs->epoch;
			if (!sv->finished[wk] && !blocked && hpsi_ring_nonempty(&p->req))
				return 1;
		}
	}
	if (sv->replicas && hpsi_replica_pending(sv))
		return 1;
	if (sv->movable && hpsi_move_pending(sv))
		return 1;
	if (sv->any_vacant && atomic_load_explicit(&sv->seg->hdr->members_seq, memory_order_relaxed) != sv->members_seen)
		return 1; /* a worker joined */
	/* acquires pair with the launcher's release of shutdown and
	 * hpsi_checkpoint_run's release of ckpt_seq */
	return atomic_load_explicit(&sv->seg->hdr->shutdown, memory_order_acquire) != 0 ||
	       atomic_load_explicit(&sv->seg->hdr->ckpt_seq, memory_order_acquire) != sv->ckpt_seen;
}

static int serve_all(struct server *sv)
{
	int n = 0;
	if (sv->any_vacant)
		hpsi_members_look(sv); /* one load while nobody joins */
	if (sv->replicas) {
		n += hpsi_replica_drain(sv);
		n += hpsi_replica_takeover(sv);
		n += hpsi_recover_step(sv);
	} else if (sv->movable) {
		n += hpsi_move_step(sv);
	}
	for (uint32_t i = 0; i < sv->nranges; i++)
		if (sv->ranges[i].serving && !hpsi_recover_frozen(&sv->ranges[i]))
			n += hpsi_serve_round(sv, &sv->ranges[i]);
	return n;
}

/* Serves what every worker had published when the checkpoint was asked
 * for (its last pushes and clocks), so a caller that waited for its
 * pushes and passed a barrier finds them all in the checkpoint. */
static void drain_published(struct server *sv)
{
	/* A backup first applies what its primaries forwarded: a push
	 * acknowledged before the request was forwarded before its answer
	 * (replica.c), so it is in the forward ring now; applied after a load
	 * it would survive on the backup only (the primary loaded after
	 * applying it). Stops when nothing more can be applied (an empty ring,
	 * or an answer ring full), or after a bounded number of passes: the
	 * first pass reads everything forwarded before the request, and
	 * primaries on other hosts (nothing pauses them for this host's
	 * checkpoint) or a replacement's copy could feed it for ever. */
	for (int pass = 0; sv->replicas && pass < 64 && hpsi_replica_drain(sv) > 0; pass++)
		;
	size_t n = (size_t)sv->nranges * sv->nworkers;
	uint32_t *target = malloc(n * sizeof *target);
	if (!target)
		return;
	for (uint32_t i = 0; i < sv->nranges; i++)
		for (uint32_t wk = 0; wk < sv->nworkers; wk++)
			target[i * sv->nworkers + wk] =
				atomic_load_explicit(&sv->ranges[i].peers[wk].req.r->tail, memory_order_acquire); /* ring (A) */
	for (;;) {
		int behind = 0;
		for (uint32_t i = 0; i < sv->nranges; i++)
			for (uint32_t wk = 0; sv->ranges[i].serving && wk < sv->nworkers; wk++) {
				struct peer *p = &sv->ranges[i].peers[wk];
				behind |= !sv->finished[wk] && !p->held &&
					  (int32_t)(target[i * sv->nworkers + wk] - p->req.head) > 0;
			}
		if (!behind || !serve_all(sv))
			break; /* done, or no progress (held pull, full answer ring) */
	}
	free(target);
}

/* Swaps a loaded table in (direct ranges copy it into the segment's array). */
static int install_loaded(struct server *sv, struct range_state *rs, struct hpsi_store *fresh)
{
	int rc = 0;
	if (hpsi_store_is_direct(rs->store)) {
		rc = hpsi_store_direct_commit(rs->store, fresh);
		hpsi_store_destroy(fresh);
	} else {
		hpsi_recover_cancel(sv, rs); /* a copy under way starts again (it may keep the table) */
		hpsi_store_destroy(rs->store);
		rs->store = fresh;
		rs->arg = fresh;
	}
	return rc;
}

static void drop_prepared(struct server *sv)
{
	for (uint32_t i = 0; i < sv->nranges; i++) {
		hpsi_store_destroy(sv->ranges[i].prepared);
		sv->ranges[i].prepared = NULL;
	}
}

/* This server's part of a checkpoint (checkpoint.c): between two
 * requests, so it sees every request it answered before. It saves the
 * ranges it serves and loads every range it holds. A load builds a new
 * table and swaps it in only when every file was read whole; across
 * hosts in two requests, PREPARE (read aside) and COMMIT (swap in), so
 * that no host swaps before every host read every file. */
static void serve_checkpoint(struct server *sv)
{
	struct hpsi_seg_hdr *h = sv->seg->hdr;
	uint32_t op = h->ckpt_op;
	if (op != HPSI_CKPT_COMMIT) /* a table prepared for a load that never committed */
		drop_prepared(sv);
	if (op != HPSI_CKPT_ABORT)
		drain_published(sv);
	uint32_t clock = 0, loaded = UINT32_MAX; /* the smallest clock of the ranges */
	char why[HPSI_CKPT_WHY] = "";
	int rc = 0;
	for (uint32_t i = 0; i < sv->nranges && !rc && op != HPSI_CKPT_ABORT; i++) {
		struct range_state *rs = &sv->ranges[i];
		if (!rs->store) {
			snprintf(why, sizeof why, "server %u runs a user handler, which keeps its own state", sv->me);
			rc = HPS_EINVAL;
		} else if (!rs->serving && sv->movable) {
			continue; /* a range handed to another server: it does its part */
		} else if (!rs->serving && sv->replicated_room &&
			   hpsi_replica_index(sv->seg, rs->id, sv->me) == HPSI_NO_SERVER) {
			continue; /* a scale moved its backup away (the tables name its replicas) */
		} else if (op == HPSI_CKPT_SAVE) {
			if (!rs->serving)
				continue;
			clock = sv->nworkers ? hpsi_serve_min_clock(sv, rs) : 0;
			if (clock == UINT32_MAX)
				clock = 0;
			rc = hpsi_store_save(rs->store, h->ckpt_dir, rs->id, h->nservers, clock, why);
			if (clock < loaded)
				loaded = clock;
		} else if (op == HPSI_CKPT_COMMIT) {
			if (!rs->prepared) {
				snprintf(why, sizeof why, "server %u has no table read for this load (it restarted?)", sv->me);
				rc = HPS_EPROTO;
			}
		} else {
			/* loaded aside, so that a bad file leaves the table as it was */
			struct hpsi_store *fresh = hpsi_store_create_like(rs->store);
			rc = fresh ? hpsi_store_load(fresh, h->ckpt_dir, sv->seg, rs->id, &clock, why) : HPS_ENOMEM;
			if (rc)
				hpsi_store_destroy(fresh);
			else if (op == HPSI_CKPT_PREPARE)
				rs->prepared = fresh;
			else
				rc = install_loaded(sv, rs, fresh);
			if (clock < loaded)
				loaded = clock;
		}
	}
	/* COMMIT swaps only once every range has its table: all or none */
	for (uint32_t i = 0; i < sv->nranges && !rc && op == HPSI_CKPT_COMMIT; i++) {
		struct range_state *rs = &sv->ranges[i];
		struct hpsi_store *fresh = rs->prepared;
		rs->prepared = NULL;
		rc = install_loaded(sv, rs, fresh);
	}
	if (rc || op == HPSI_CKPT_COMMIT)
		drop_prepared(sv);
	if (!rc && (op == HPSI_CKPT_SAVE || op == HPSI_CKPT_LOAD || op == HPSI_CKPT_COMMIT))
		hpsi_stat_add(&sv->stats->checkpoints, 1);
	static const char *const done[] = {"", "saved its table into", "loaded its table from",
					   "read (not yet swapped in) its table from", "swapped in its table read from",
					   "dropped the table read from"};
	if (!rc && op <= HPSI_CKPT_ABORT) /* before it is served: the next request may rewrite ckpt_dir */
		hpsi_info("checkpoint: server %u %s %s (clock %u; its key ranges)", sv->me, done[op], h->ckpt_dir,
			  loaded == UINT32_MAX ? 0 : loaded);
	hpsi_checkpoint_served(sv->seg, rc, why, loaded == UINT32_MAX ? 0 : loaded);
}

int hpsi_server_store_config(int rank, struct hpsi_updater *upd, struct hpsi_init *init)
{
	char buf[256];
	const char *spec = hpsi_spec_for(hpsi_setting("UPDATER"), rank, buf, sizeof buf);
	if (!spec) {
		hpsi_error("HPS_UPDATER has no usable entry for server %d (too few entries, or one too long)", rank);
		return HPS_ECONFIG;
	}
	if (hpsi_updater_parse(spec, "HPS_UPDATER", upd))
		return HPS_ECONFIG;
	spec = hpsi_spec_for(hpsi_setting("INIT"), rank, buf, sizeof buf);
	if (!spec) {
		hpsi_error("HPS_INIT has no usable entry for server %d (too few entries, or one too long)", rank);
		return HPS_ECONFIG;
	}
	return hpsi_init_parse(spec, "HPS_INIT", init) ? HPS_ECONFIG : 0;
}

int hpsi_server_staleness(int rank, int64_t *out)
{
	char buf[64];
	const char *spec = hpsi_spec_for(hpsi_setting("STALENESS"), rank, buf, sizeof buf);
	*out = -1;
	if (!spec) {
		hpsi_error("HPS_STALENESS has no usable entry for server %d (too few entries, or one too long)", rank);
		return HPS_ECONFIG;
	}
	if (!*spec || strcmp(spec, "asp") == 0 || strcmp(spec, "inf") == 0)
		return 0;
	if (strcmp(spec, "bsp") == 0) {
		*out = 0;
		return 0;
	}
	char *end;
	long long v = strtoll(spec, &end, 10);
	if (*end || end == spec || v < 0 || v > 1000000000) {
		hpsi_error("HPS_STALENESS: '%s' is not bsp, asp, inf or a number of clocks from 0 to 1e9", spec);
		return HPS_ECONFIG;
	}
	*out = v;
	return 0;
}

/* Sets up sv->ranges[i] for key range `id`: with replicas the range it
 * is replica i of (net/route.h), served when i is 0; without, a range the
 * owner table gives it. Each with its own updater, value types and
 * staleness (the settings of the range's first server). */
static int range_setup(struct server *sv, uint32_t i, uint32_t id, int serving, hps_handler handler, void *arg)
{
	struct hpsi_seg *seg = sv->seg;
	struct range_state *rs = &sv->ranges[i];
	rs->id = id;
	rs->serving = serving;
	rs->min_epoch = UINT64_MAX;
	const struct hpsi_range *rg = &hpsi_seg_ranges(seg)[rs->id];
	rs->dtype = rg->dtype;
	rs->wire = rg->wire;
	if (!(rs->peers = calloc(sv->nworkers, sizeof *rs->peers)))
		return HPS_ENOMEM;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &rs->peers[wk];
		p->last_seq = -1;
		/* a backup attaches the rings when it takes the range over */
		hpsi_ring_cons_attach(&p->req, hpsi_seg_ring(seg, wk, rs->id, 0), seg->hdr->ring_bytes);
		if (rs->serving)
			hpsi_ring_prod_attach(&p->resp, hpsi_seg_ring(seg, wk, rs->id, 1), seg->hdr->ring_bytes);
	}
	if (hpsi_server_staleness((int)rs->id, &rs->staleness))
		return HPS_ECONFIG;
	int det;
	if (hpsi_config_deterministic(&det))
		return HPS_ECONFIG;
	rs->ordered = rs->staleness == 0 && det;
	if (handler) {
		rs->handler = handler;
		rs->arg = arg;
		return 0;
	}
	struct hpsi_updater upd;
	struct hpsi_init init;
	int rc = hpsi_server_store_config((int)rs->id, &upd, &init);
	if (rc)
		return rc;
	if (rg->direct_width)
		rs->store = hpsi_store_create_direct(&upd, &init, rg->first, rg->last - rg->first + 1, rg->direct_width,
						     (float *)(seg->base + rg->direct_off));
	else if ((rs->store = hpsi_store_create(&upd, &init, rg->dtype)) && sv->movable && !serving)
		hpsi_store_share_later(rs->store); /* not held yet: no memfd until its copy begins */
	else if (rs->store && sv->movable && (rc = hpsi_store_share(rs->store))) {
		/* a move hands its tables over whole (recover.c) */
		hpsi_store_destroy(rs->store);
		rs->store = NULL;
		return rc; /* (HPS_ESYS: out of fds, logged by memfd.c) */
	}
	if (!rs->store)
		return rg->direct_width ? HPS_ECONFIG : HPS_ENOMEM;
	/* workers acquire this before they touch the array (hps_direct_map) */
	if (rg->direct_width)
		atomic_store_explicit(&((struct hpsi_range *)rg)->direct_ready, 1, memory_order_release);
	rs->handler = hpsi_store_handle;
	rs->arg = rs->store;
	return 0;
}

/* HPS_FAILPOINT=forwarded:RANK:N, handback:RANK, nolook:RANK, noadopt:RANK,
 * finalpause:RANK:MS, handslow:MS, handbackdie:RANK or clockdie:RANK:WORKER:N
 * (tests only; see struct server). */
static int failpoint(struct server *sv)
{
	const char *fp = hpsi_setting("FAILPOINT");
	unsigned rank;
	unsigned long long n;
	int end = 0;
	if (!fp || !*fp)
		return 0;
	if (sscanf(fp, "handback:%u%n", &rank, &end) == 1 && fp[end] == 0) {
		sv->wait_after_handback = rank == sv->me;
		return 0;
	}
	if (strncmp(fp, "holdfwd:", 8) == 0 || strncmp(fp, "latefence:", 10) == 0 || /* a bridge's (net/bridge_failover.c) */
	    strncmp(fp, "lateplan:", 9) == 0 || strncmp(fp, "holdclosed:", 11) == 0 || /* (net/bridge_scale.c) */
	    strncmp(fp, "joinslow:", 9) == 0) /* (net/bridge_join.c) */
		return 0;
	if (sscanf(fp, "handbackdie:%u%n", &rank, &end) == 1 && fp[end] == 0) {
		sv->die_at_handback = rank == sv->me;
		return 0;
	}
	if (sscanf(fp, "claimdie:%u%n", &rank, &end) == 1 && fp[end] == 0) /* its claim's (runtime/client/ctx.c) */
		return 0;
	if (sscanf(fp, "nolook:%u%n", &rank, &end) == 1 && fp[end] == 0) {
		sv->skip_looks = rank == sv->me;
		return 0;
	}
	unsigned worker;
	if (sscanf(fp, "clockdie:%u:%u:%llu%n", &rank, &worker, &n, &end) == 3 && fp[end] == 0 && n > 0) {
		if (rank == sv->me) {
			sv->die_at_clock = n;
			sv->die_clock_worker = worker;
		}
		return 0;
	}
	unsigned ms;
	if (sscanf(fp, "finalpause:%u:%u%n", &rank, &ms, &end) == 2 && fp[end] == 0) {
		if (rank == sv->me)
			sv->final_pause_ms = ms;
		return 0;
	}
	if (sscanf(fp, "handslow:%u%n", &ms, &end) == 1 && fp[end] == 0 && ms <= 10000) {
		sv->hand_slow_ms = ms;
		return 0;
	}
	if (sscanf(fp, "noadopt:%u%n", &rank, &end) == 1 && fp[end] == 0) {
		sv->refuse_adopt = rank == sv->me;
		return 0;
	}
	if (sscanf(fp, "forwarded:%u:%llu", &rank, &n) != 2 || n == 0) {
		hpsi_error("HPS_FAILPOINT=%s: expected forwarded:RANK:N (N >= 1), handback:RANK, handbackdie:RANK, nolook:RANK, noadopt:RANK, finalpause:RANK:MS, handslow:MS (MS <= 10000), claimdie:RANK or clockdie:RANK:WORKER:N (N >= 1), a fault injected by tests",
			   fp);
		return HPS_ECONFIG;
	}
	if (rank == sv->me)
		sv->die_in_batch = n;
	return 0;
}

static int server_setup(struct server *sv, hps_handler handler, void *arg)
{
	struct hpsi_seg *seg = sv->seg;
	uint32_t S = sv->nservers, W = sv->nworkers;
	if (handler && sv->replicas) {
		hpsi_error("HPS_REPLICAS with a user handler: hps cannot copy a handler's own state to the backups; run it without replicas");
		return HPS_EINVAL;
	}
	if (failpoint(sv))
		return HPS_ECONFIG;
	if (handler && sv->movable) {
		hpsi_error("HPS_MAX_SERVERS with a user handler: hps cannot move a handler's own state between servers; run it without --max-servers");
		return HPS_EINVAL;
	}
	sv->handler = handler;
	sv->handler_arg = arg;
	if (sv->movable)
		hpsi_memfd_raise_limit(); /* its tables live in memfds (memfd.h) */
	/* room for every range it may serve: with replicas its own and the
	 * K before it; without, any of the job's ranges may move to it */
	uint32_t cap = sv->replicas && !hpsi_seg_room(seg) ? sv->replicas + 1 : S;
	sv->answer_max = hpsi_ring_max_payload(seg->hdr->ring_bytes) - sizeof(struct hpsi_msg_hdr);
	if (!(sv->ranges = calloc(cap, sizeof *sv->ranges)) || !(sv->heaps = calloc(W, sizeof *sv->heaps)) ||
	    !(sv->finished = calloc(W, 1)) || !(sv->vacant = calloc(W, 1)) || !(sv->ack_dirty = calloc(W, 1)) ||
	    ((sv->replicas || sv->movable) && (!(sv->fwd_in = calloc(S, sizeof *sv->fwd_in)) ||
			      !(sv->fwd_out = calloc(S, sizeof *sv->fwd_out)) || !(sv->fwd_dirty = calloc(S, 1)) ||
			      !(sv->fwd_urgent = calloc(S, 1)))))
		return HPS_ENOMEM;
	for (uint32_t wk = 0; wk < W; wk++) {
		uint64_t lo = seg->hdr->heap_off + (uint64_t)wk * seg->hdr->heap_slice;
		sv->heaps[wk] = (struct hpsi_msg_bounds){seg->base, lo, lo + seg->hdr->heap_slice};
	}
	for (uint32_t s = 0; (sv->replicas || sv->movable) && s < S; s++) {
		if (s == sv->me)
			continue;
		hpsi_ring_cons_attach(&sv->fwd_in[s], hpsi_seg_fwd_ring(seg, s, sv->me), seg->hdr->ring_bytes);
		hpsi_ring_prod_attach(&sv->fwd_out[s], hpsi_seg_fwd_ring(seg, sv->me, s), seg->hdr->ring_bytes);
	}
	/* Without replicas, the ranges the launch gave it (the first owner
	 * table, not the live one: a scale may hand it a range between its
	 * hps_init, which made it ALIVE, and this; that range comes by a
	 * copy, as every range of a server a scale started (a new
	 * incarnation: hps_init) does, move.c). Nobody moves a range away
	 * from a launched server before its serving loop runs. relaxed: its
	 * own node's, stored by hps_init. */
	int first = atomic_load_explicit(&hpsi_seg_node(seg, sv->me)->incarnation, memory_order_relaxed) == 0;
	uint16_t launch_own[HPSI_MAX_NODES];
	if (!sv->replicas || hpsi_seg_room(seg))
		hpsi_seg_first_owners(S, seg->hdr->launched_servers, seg->hdr->range_mode, launch_own);
	/* The launch's backup table, across hosts too (the segment keeps the
	 * hosts of the ranks): a scale may store entries of the live one
	 * before this runs (recover.c). One backup with room (config.c). */
	uint16_t launch_bk[HPSI_MAX_NODES * HPSI_MAX_REPLICAS];
	if (sv->replicas && hpsi_seg_room(seg) && first && hpsi_seg_launch_backups(seg, launch_bk))
		return HPS_ECONFIG; /* (hpsi_seg_create built the same) */
	if (sv->replicas && hpsi_seg_room(seg) && first) {
		/* With replicas and room: every range the launch's owner and
		 * backup tables name it for (not the live ones: as without
		 * replicas, a scale may move a range to or from it before this
		 * runs, and such a range comes by a copy), its own range first,
		 * then the others it serves, then those it backs up. A server a
		 * scale started holds nothing until copies come (recover.c). */
		for (uint32_t pass = 0; pass < 3; pass++)
			for (uint32_t r = 0; r < S; r++) {
				uint32_t i = launch_own[r] == sv->me ? 0 : launch_bk[r] == sv->me ? 1 : HPSI_NO_SERVER;
				if (i == HPSI_NO_SERVER || (pass == 0) != (r == sv->me) || (pass == 2) != (i > 0))
					continue;
				int rc = range_setup(sv, sv->nranges++, r, i == 0, handler, arg);
				if (rc)
					return rc;
			}
	}
	for (uint32_t r = 0; !(sv->replicas && hpsi_seg_room(seg)) && r < (sv->replicas ? sv->replicas + 1 : S); r++) {
		if (!sv->replicas && (!first || launch_own[r] != sv->me))
			continue;
		uint32_t id = sv->replicas ? hpsi_replica_range(seg, sv->me, r) : r;
		int rc = range_setup(sv, sv->nranges++, id, !sv->replicas || r == 0, handler, arg);
		if (rc)
			return rc;
	}
	hpsi_members_setup(sv);
	if (sv->replicas)
		hpsi_recover_setup(sv);
	for (uint32_t i = 0; sv->replicated_room && i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i]; /* the launch's backups, incarnation 0 */
		rs->fwd_rank[0] = launch_own[rs->id];
		rs->fwd_rank[1] = launch_bk[rs->id];
		rs->fwd_incarnation[0] = rs->fwd_incarnation[1] = 0;
	}
	if (sv->replicated_room)
		hpsi_wake_all(seg); /* a server started by a scale: its sources start copying */
	if (sv->movable) {
		/* acquire: the plan it pairs with the launcher's release of */
		sv->moves_seen = atomic_load_explicit(&seg->hdr->moves_seq, memory_order_acquire);
		for (uint32_t i = 0; i < sv->nranges; i++) /* the launch's tables name each */
			sv->ranges[i].synced = sv->ranges[i].named = 1;
		hpsi_wake_all(seg); /* a server started by a scale: its sources start copying */
	}
	return 0;
}

struct range_state *hpsi_server_range(struct server *sv, uint32_t id)
{
	for (uint32_t i = 0; i < sv->nranges; i++)
		if (sv->ranges[i].id == id)
			return &sv->ranges[i];
	if (sv->nranges >= sv->nservers) /* (room for every range: never) */
		return NULL;
	struct range_state *rs = &sv->ranges[sv->nranges];
	if (range_setup(sv, sv->nranges, id, 0, sv->handler, sv->handler_arg)) {
		free(rs->peers);
		hpsi_store_destroy(rs->store);
		memset(rs, 0, sizeof *rs);
		return NULL;
	}
	sv->nranges++;
	return rs;
}

static void server_free(struct server *sv)
{
	hpsi_recover_free(sv);
	for (uint32_t i = 0; sv->ranges && i < sv->nranges; i++) {
		free(sv->ranges[i].peers);
		hpsi_store_destroy(sv->ranges[i].store);
		hpsi_store_destroy(sv->ranges[i].prepared);
	}
	free(sv->ranges);
	free(sv->heaps);
	free(sv->finished);
	free(sv->vacant);
	free(sv->ack_dirty);
	free(sv->fwd_in);
	free(sv->fwd_out);
	free(sv->fwd_dirty);
	free(sv->fwd_urgent);
	free(sv->scratch);
}

int hps_server_run(hps_ctx *ctx, hps_handler handler, void *arg)
{
	int rc = hpsi_ctx_check(ctx);
	if (rc)
		return rc;
	if (ctx->cfg.role != HPS_ROLE_SERVER)
		return HPS_EINVAL;
	struct hpsi_seg *seg = &ctx->seg;
	struct server sv = {.ctx = ctx, .seg = seg, .nworkers = seg->hdr->nworkers, .nservers = seg->hdr->nservers,
			    .me = ctx->node, .replicas = seg->hdr->replicas, .movable = hpsi_seg_movable(seg),
			    .replicated_room = seg->hdr->replicas && hpsi_seg_room(seg),
			    .stats = hpsi_seg_counters(seg, ctx->node)};
	if ((rc = server_setup(&sv, handler, arg))) {
		server_free(&sv);
		/* out of fds (logged with the limit) is no memory shortage */
		return rc == HPS_ENOMEM && hpsi_memfd_ran_out() ? HPS_ESYS : rc;
	}
	struct hpsi_bell *bell = &hpsi_seg_node(seg, ctx->node)->bell;
	int64_t spin_until = hpsi_now_ns() + ctx->spin_ns;
	int64_t idle_ns = sv.replicas ? IDLE_SLEEP_REPLICA_NS : IDLE_SLEEP_NS;
	sv.probe_ns = idle_ns;
	uint32_t steps = 0;
	sv.ckpt_seen = 0; /* a request made before this server started still counts */
	const struct range_state *own = &sv.ranges[0];
	uint32_t served = 0;
	for (uint32_t i = 0; i < sv.nranges; i++)
		served += sv.ranges[i].serving != 0;
	if (sv.nranges) /* (a server a scale started gets its ranges by copies: move.c) */
		hpsi_info("server %d serves %u workers with %s; staleness %s%s; %u key range%s; backs up %u key range%s",
			  ctx->cfg.rank, sv.nworkers, handler ? "a user handler" : "the built-in store",
			  own->staleness < 0 ? "asp" : own->staleness == 0 ? "bsp" : "ssp",
			  own->ordered ? " (deterministic)" : "", served, served == 1 ? "" : "s",
			  sv.nranges - served, sv.nranges - served == 1 ? "" : "s");
	else
		hpsi_info("server %d starts with no key range: hps scale copies some to it", ctx->cfg.rank);
	for (;;) {
		/* pairs with hpsi_checkpoint_run's release: ckpt_op and ckpt_dir are set */
		uint32_t ck = atomic_load_explicit(&seg->hdr->ckpt_seq, memory_order_acquire);
		if (ck != sv.ckpt_seen) {
			sv.ckpt_seen = ck;
			/* a replacement still copying is not counted (it is gone to
			 * the requester); the copies restart after a load */
			if (!sv.joining)
				serve_checkpoint(&sv);
		}
		if (serve_all(&sv)) {
			hpsi_sstat_stores(&sv);
			spin_until = hpsi_now_ns() + ctx->spin_ns;
			continue;
		}
		if (hpsi_now_ns() < spin_until) {
			hpsi_spin_step(&steps, ctx->spin_yield);
			continue;
		}
		/* pairs with the launcher's release of shutdown */
		if (atomic_load_explicit(&seg->hdr->shutdown, memory_order_acquire) || all_finished(&sv))
			break;
		if ((sv.movable || sv.replicated_room) && hpsi_move_done_leaving(&sv))
			break; /* hps scale --servers: its ranges serve elsewhere now */
		if (sv.replicated_room)
			hpsi_move_drop_unnamed(&sv);
		if (sv.replicas)
			hpsi_replica_check_earlier(&sv);
		hpsi_bell_sleep(bell, requests_waiting, &sv, idle_ns);
		/* No spin after a wake-up: a request rings the bell once it is
		 * published, so serve_all finds it at once; a wake-up that brings
		 * none (a process left: every server is woken) goes back
		 * to sleep instead of spinning for HPS_SPIN_US. */
		spin_until = 0;
	}
	hpsi_info("server %d stops serving: every worker has finished, or the job shuts down", ctx->cfg.rank);
	hpsi_digest_log(&sv);
	server_free(&sv);
	return 0;
}
