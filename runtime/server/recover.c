/* Recovery (HPS_REPLICAS): a replacement server copies the key ranges it
 * holds while the job goes on, and the replication factor is restored.
 * The same copy and hand-back move key ranges between the servers of an
 * unreplicated job (hps scale --servers: move.c has what differs; here
 * find_target, move_apply and the end of send_final).
 *
 * A replacement claims the dead server's rank (hps_init: JOINING, a new
 * incarnation); routing and the workers treat it as gone. Every server
 * that serves one of its ranges copies that range to it over their forward
 * ring, as the paper's section 4.5 does: first every record, through a
 * store cursor that survives inserts and moving cells (hpsi_store_next:
 * cells in the order of their hashes, the pool in the order keys were
 * added), while the range is served; the keys pushed meanwhile are
 * copied again, in rounds, until few are left; then the range is frozen
 * (not served) for the last of them and FINAL records with the workers'
 * clocks, phases and last sequences. Records apply in ring order, so the
 * copy ends identical to the source, optimizer state and push counts
 * included. A move (not a replacement) whose store shares its tables
 * (hpsi_store_share) sends no records: at the freeze its pool and cells
 * go whole, as memfds the target maps (send_whole, apply_whole).
 *
 * - Its own range (and any other whose replicas before it are all gone)
 *   is handed back: the server that took it over stops serving it at the
 *   FINAL, and the replacement continues its rings where it stopped (all
 *   it consumed was answered and published; nothing is read twice). Once
 *   it serves every such range it stores ALIVE: the workers route to it.
 *   The source waits, before the FINAL, until its other backups applied
 *   what it forwarded them, so that they apply the range's pushes in order
 *   when the replacement forwards after it.
 * - A range it backs up is copied once it is ALIVE; after the FINAL its
 *   primary forwards it every push (rs->fwd_incarnation), and the answers
 *   name the backups forwarded to (fwd_mask), so that a worker never
 *   waits for a backup that was not sent its push.
 *
 * Ordering: the source publishes its last answers and ring heads before
 * the FINAL; the replacement acquires the forward ring's tail (pair A)
 * before it reads the FINAL, so it attaches to rings whose state it sees
 * whole. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/route.h"
#include "runtime/client/join.h"
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "runtime/server/server_stats.h"
#include "shm/node.h"
#include "shm/wake.h"

#define SYNC_CHUNK (64u << 10)  /* record bytes per SYNC message at most */
#define STEP_BYTES (1u << 20)   /* bytes copied per turn of the serving loop */
#define FREEZE_KEYS 4096        /* few enough pushed keys to copy frozen */
#define MAX_ROUNDS 4            /* copy rounds of pushed keys before freezing anyway */

/* hdr->part; SYNC_WHOLE: a move's tables, mapped, not copied (below);
 * SYNC_ADOPTED: the target's answer to a SYNC_WHOLE, on the ring back */
enum sync_kind { SYNC_BEGIN = 0, SYNC_RECORDS = 1, SYNC_FINAL = 2, SYNC_WHOLE = 3, SYNC_ADOPTED = 4 };
/* range_sync.adopt: the answer to its SYNC_WHOLE */
enum { ADOPT_NONE, ADOPT_WAIT, ADOPT_OK, ADOPT_REFUSED };
enum sync_phase { PH_BEGIN, PH_COPY, PH_DELTA, PH_FREEZE };

/* One piece of a record in a SYNC_RECORDS body, followed by n bytes
 * (padded to 8). */
struct sync_chunk {
	uint64_t key;
	uint32_t len, steps;
	uint64_t off, n;
};

/* The source's cells, in a SYNC_BEGIN body (hpsi_store_shape): the
 * replacement sizes its cells for them before the keys come in hash order.
 * After them, an entry of len 0 for its pool (hpsi_store_pool_shape):
 * keys and the bytes of their records, for which the replacement sets
 * windows aside and maps them while the records come (hpsi_table_expect;
 * the first write to fresh memory was most of a move's time across
 * hosts). */
struct sync_shape {
	uint32_t len, pad;
	uint64_t keys, bytes;
};
enum { SYNC_SHAPES = 4 };

/* A move's tables, whole (send_whole), in a SYNC_WHOLE body. */
struct sync_whole {
	uint32_t pool, ncells; /* the pool's shape is there (0 or 1); cells' shapes there */
	struct hpsi_table_shape tab;
	struct hpsi_cells_shape cells[SYNC_SHAPES];
};

/* A worker as the range saw it, in a SYNC_FINAL body. */
struct sync_peer {
	uint32_t clock, pad;
	uint64_t phase;
	int64_t last_seq;
};
/* what a bridge reads of a hand-back (net/codec.h, net/bridge_recover.c) */
_Static_assert(sizeof(struct sync_peer) == HPSI_SYNC_PEER_BYTES && (int)SYNC_FINAL == (int)HPSI_SYNC_FINAL &&
		       (int)SYNC_WHOLE == (int)HPSI_SYNC_WHOLE,
	       "a bridge reads FINAL pieces");

/* range_sync.room: what a copy of a replicated job with room does to
 * the tables (find_room): a new backup, a new primary by a copy, or the
 * backup made primary with no copy (it holds the range whole). */
enum { ROOM_NONE, ROOM_BACKUP, ROOM_HANDBACK, ROOM_SWAP };

struct range_sync {
	uint32_t to, to_index, incarnation;
	int handback; /* the range goes to the replacement at the FINAL */
	int room;            /* ROOM_*: a scale of a replicated job with room */
	uint32_t new_backup; /* ROOM_HANDBACK, ROOM_SWAP: the range's backup after it */
	uint32_t room_moves; /* ROOM_*: the copy's number (shm/segment.h, bands) */
	int phase;
	struct hpsi_store_cursor cursor, next_cursor; /* PH_COPY: at the record being sent, the one after */
	size_t rec_off;               /* bytes of the current record sent */
	uint64_t *dirty;              /* keys pushed since the copy began */
	size_t ndirty, dirty_cap;
	int dirty_lost;               /* too many: copy everything again */
	uint64_t *list;               /* PH_DELTA, PH_FREEZE: the keys being sent */
	size_t nlist, list_i;
	unsigned rounds, full_copies;
	int frozen_copy;     /* a full copy with the range frozen (pushes outran the others) */
	uint32_t final_sent; /* workers whose state went in FINAL pieces */
	int waiting;         /* handback: for other backups (polled at the idle pace) */
	int whole_sent;      /* a move's tables (PH_FREEZE): 1 none to send, 2 their SYNC_WHOLE went */
	int adopt;           /* ADOPT_*: the target's answer to that SYNC_WHOLE */
	uint32_t whole_seq;  /* which SYNC_WHOLE of this server (its nkeys), the answer names it */
	uint64_t whole_bytes, whole_keys; /* the tables it handed over */
	uint32_t *wait_tail; /* handback: per server, the forwards it must apply first */
	int64_t started;
	uint64_t bytes;
	/* the SYNC message being filled */
	struct hpsi_msg_hdr *msg;
	size_t msg_used, msg_cap;
};

#define NO_INCARNATION UINT32_MAX /* forwards to nobody until a copy */
#define MAX_FULL_COPIES 3            /* then the last full copy runs frozen */

static uint32_t incarnation_of(const struct server *sv, uint32_t srv)
{
	/* relaxed: published by the release of the state a caller acquires
	 * around it; a newer incarnation than that state's only starts a copy
	 * that the state's next change stops */
	return atomic_load_explicit(&hpsi_seg_node(sv->seg, srv)->incarnation, memory_order_relaxed);
}

static uint32_t state_of(const struct server *sv, uint32_t srv)
{
	/* acquire pairs with the state's release (struct hpsi_node) */
	return atomic_load_explicit(&hpsi_seg_node(sv->seg, srv)->state, memory_order_acquire);
}

void hpsi_recover_setup(struct server *sv)
{
	sv->joining = state_of(sv, sv->me) == HPSI_NODE_JOINING;
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		rs->synced = !sv->joining;
		if (sv->joining)
			rs->serving = 0;
		/* a replica joining now holds nothing yet: it gets a copy first */
		for (uint32_t k = 0; k <= sv->replicas; k++) {
			uint32_t b = hpsi_replica(sv->seg, rs->id, k);
			rs->fwd_rank[k] = b; /* (with room server.c sets the launch's) */
			rs->fwd_incarnation[k] = state_of(sv, b) == HPSI_NODE_JOINING && b != sv->me ? NO_INCARNATION
												 : incarnation_of(sv, b);
		}
	}
	if (sv->joining)
		hpsi_warn("server %u replaces a dead one: it copies its %u key range%s before it serves", sv->me,
			  sv->nranges, sv->nranges == 1 ? "" : "s");
}

/* ---- the source: a served range copied to a replacement ---- */

static void sync_free(struct server *sv, struct range_state *rs)
{
	struct range_sync *y = rs->sync;
	if (!y)
		return;
	/* release: the copy's table writes (room_handed) before it, for a
	 * launcher that ends a scale once no copy runs (launch.c
	 * scale_settled) */
	atomic_fetch_add_explicit(&hpsi_seg_node(sv->seg, sv->me)->copies_ended, 1, memory_order_release);
	free(y->dirty);
	free(y->list);
	free(y->wait_tail);
	free(y);
	rs->sync = NULL;
}

/* Whether some range's entry in the owner table (backups: the backup
 * table) names rank b. */
static int table_names(const struct server *sv, uint32_t b, int backups)
{
	for (uint32_t r = 0; r < sv->nservers; r++)
		if (hpsi_replica(sv->seg, r, backups ? 1 : 0) == b)
			return 1;
	return 0;
}

static int running(const struct server *sv, uint32_t b)
{
	return b < sv->nservers && state_of(sv, b) == HPSI_NODE_ALIVE && !hpsi_replica_lacks(sv->seg, b, 0) &&
	       !hpsi_replica_lacks(sv->seg, b, 1);
}

/* A replicated job with room (one backup: config.c): the step of a
 * scale's plan that the primary of rs (this server) takes next, if any.
 * One table entry changes per copy, so every moment has a primary and a
 * backup that hold the range whole, on distinct ranks:
 * - the plan's primary is the backup: ROOM_SWAP, no copy (it holds the
 *   range); this server becomes its backup;
 * - another primary: ROOM_HANDBACK, a copy; the backup stays, or this
 *   server becomes it where the plan says so (it keeps its table);
 * - another backup: ROOM_BACKUP, a copy; the old backup drops the range.
 * Only while the range's primary and backup and the target run (a range
 * with a dead replica waits for its takeover; the launcher ends the
 * scale). A backup acknowledges heap pushes on the answer ring of a range
 * it serves (replica.c), so a copy makes a backup only of a server that
 * serves a range, and a server gives up its last range only when no
 * table names it as a backup. */
static int find_room(struct server *sv, struct range_state *rs, uint32_t *to, int *kind, uint32_t *new_b,
		     uint32_t *number)
{
	uint32_t r = rs->id, cb = hpsi_replica(sv->seg, r, 1);
	if (hpsi_replica(sv->seg, r, 0) != sv->me)
		return 0; /* a range taken over: its primary died, the tables stay (the launcher ends the scale) */
	/* A plan older than the range's last copy by its band (shm/
	 * segment.h) would move it back: across hosts a plan comes through
	 * the scheduler, after a later plan's FINALs that came straight from
	 * bridge to bridge. Acquire as move.c hpsi_move_plan_older: every
	 * writer stores the number after the entries, with release, so the
	 * entries read below are this plan's or a later one's. The copy's
	 * number: one above the range's last and the plan's. */
	uint32_t planned = atomic_load_explicit(&hpsi_seg_plan_moves(sv->seg)[r], memory_order_acquire);
	uint32_t moved = atomic_load_explicit(&hpsi_seg_moves(sv->seg)[r], memory_order_relaxed);
	moved = moved > rs->moved_in ? moved : rs->moved_in;
	if (hpsi_moves_band_older(planned, moved))
		return 0;
	*number = (moved > planned ? moved : planned) + 1;
	uint32_t wo = hpsi_range_want(sv->seg, r), wb = hpsi_backup_want(sv->seg, r, 1);
	if (wo >= sv->nservers || wb >= sv->nservers || wo == wb || (wo == sv->me && wb == cb) || !running(sv, cb))
		return 0;
	/* ranges it serves besides r and keeps: not those it hands on now
	 * (two hand-overs decided at once must not leave it a backup that
	 * serves nothing, whose acks would wait in front of the copy that
	 * brings it a range on the same ring) */
	uint32_t others = 0;
	for (uint32_t k = 0; k < sv->nranges; k++) {
		const struct range_state *o = &sv->ranges[k];
		others += o != rs && o->serving &&
			  !(o->sync && (o->sync->room == ROOM_HANDBACK || o->sync->room == ROOM_SWAP));
	}
	int may_back_up = others > 0;
	int backup_move = wb != cb && wb != sv->me && running(sv, wb) && table_names(sv, wb, 0);
	if (wo != sv->me && wo == cb) {
		if (may_back_up) {
			*to = cb, *kind = ROOM_SWAP, *new_b = sv->me;
			return 1;
		}
	} else if (wo != sv->me && running(sv, wo)) {
		uint32_t nb = wb == sv->me ? sv->me : cb;
		if (nb == sv->me ? may_back_up : others > 0 || !table_names(sv, sv->me, 1)) {
			*to = wo, *kind = ROOM_HANDBACK, *new_b = nb;
			return 1;
		}
	}
	if (backup_move) {
		*to = wb, *kind = ROOM_BACKUP, *new_b = wb;
		return 1;
	}
	return 0;
}

/* Which replica of rs, if any, needs a copy from this server now. */
static int find_target(struct server *sv, struct range_state *rs, uint32_t *to, uint32_t *idx, int *handback,
		       int *room, uint32_t *new_b, uint32_t *number)
{
	*room = ROOM_NONE;
	if (sv->replicated_room) {
		if (!find_room(sv, rs, to, room, new_b, number))
			return 0;
		*idx = *room == ROOM_BACKUP ? 1 : 0;
		*handback = *room != ROOM_BACKUP;
		return 1;
	}
	if (sv->movable) { /* the plan of a scale names another server (move.c) */
		if (hpsi_move_plan_older(sv, rs)) /* its number first: move.c */
			return 0;
		uint32_t t = hpsi_range_want(sv->seg, rs->id);
		if (t == sv->me || t >= sv->nservers || state_of(sv, t) != HPSI_NODE_ALIVE)
			return 0; /* (a server a scale starts copies once it runs) */
		*to = t, *idx = 0, *handback = 1;
		return 1;
	}
	uint32_t mine = hpsi_replica_index(sv->seg, rs->id, sv->me);
	int before_gone = 1; /* every replica before index i is gone */
	for (uint32_t i = 0; i <= sv->replicas; i++) {
		uint32_t b = hpsi_replica(sv->seg, rs->id, i), st = state_of(sv, b);
		int lacks = hpsi_replica_lacks(sv->seg, b, i);
		if (i < mine && before_gone && (st == HPSI_NODE_JOINING || (st == HPSI_NODE_ALIVE && lacks))) {
			*to = b, *idx = i, *handback = 1;
			return 1;
		}
		if (i > mine && st == HPSI_NODE_ALIVE && incarnation_of(sv, b) != rs->fwd_incarnation[i]) {
			*to = b, *idx = i, *handback = 0;
			return 1;
		}
		before_gone &= hpsi_server_gone(sv->seg, b) || lacks;
	}
	return 0;
}

static int msg_open(struct server *sv, struct range_state *rs, int kind, size_t body)
{
	struct range_sync *y = rs->sync;
	struct hpsi_msg_hdr *h = hpsi_ring_reserve(&sv->fwd_out[y->to], sizeof *h + body);
	if (!h)
		return 0;
	hpsi_msg_init(h, HPSI_MSG_SYNC, sv->me, 0);
	h->flags = HPSI_F_REPLICA;
	h->range = (uint16_t)rs->id;
	h->part = (uint32_t)kind;
	h->width = y->room == ROOM_SWAP ? 2u : (uint32_t)y->handback; /* 2: no BEGIN, the target holds it */
	h->clock = y->incarnation; /* a copy for an earlier replacement is not for it */
	y->msg = h;
	y->msg_used = 0;
	y->msg_cap = body;
	return 1;
}

static void msg_close(struct server *sv, struct range_sync *y)
{
	if (!y->msg)
		return;
	y->msg->val_bytes = y->msg_used;
	hpsi_ring_commit(&sv->fwd_out[y->to], sizeof *y->msg + y->msg_used);
	sv->fwd_dirty[y->to] = 1;
	sv->fwd_urgent[y->to] = 1; /* the replacement waits for it */
	y->bytes += y->msg_used;
	y->msg = NULL;
}

static size_t chunk_room(const struct server *sv)
{
	size_t max = hpsi_ring_max_payload(sv->seg->hdr->ring_bytes) / 2;
	return (max < SYNC_CHUNK ? max : SYNC_CHUNK) & ~(size_t)7;
}

/* Sends what is left of a record from y->rec_off; 0 when the ring is full
 * (resume at rec_off), 1 when all of it went. *budget counts bytes. */
static int send_item(struct server *sv, struct range_state *rs, const struct hpsi_store_item *it, size_t *budget)
{
	struct range_sync *y = rs->sync;
	do {
		if (y->msg && y->msg_cap - y->msg_used < sizeof(struct sync_chunk) + 8)
			msg_close(sv, y);
		if (!y->msg) {
			size_t cap = chunk_room(sv);
			/* (the smallest rings, HPS_RING_KB=4, leave about 2 KiB) */
			if (cap < sizeof(struct hpsi_msg_hdr) + sizeof(struct sync_chunk) + 8)
				return 0;
			if (!msg_open(sv, rs, SYNC_RECORDS, cap - sizeof(struct hpsi_msg_hdr)))
				return 0;
		}
		size_t left = it->nbytes - y->rec_off, room = y->msg_cap - y->msg_used - sizeof(struct sync_chunk);
		size_t n = left < (room & ~(size_t)7) ? left : (room & ~(size_t)7);
		unsigned char *at = (unsigned char *)(y->msg + 1) + y->msg_used;
		struct sync_chunk c = {.key = it->key, .len = it->len, .steps = it->steps, .off = y->rec_off, .n = n};
		memcpy(at, &c, sizeof c);
		memcpy(at + sizeof c, it->bytes + y->rec_off, n);
		y->msg_used += sizeof c + ((n + 7) & ~(size_t)7);
		y->rec_off += n;
		*budget = *budget > n + sizeof c ? *budget - n - sizeof c : 0;
	} while (y->rec_off < it->nbytes);
	y->rec_off = 0;
	return 1;
}

/* Sends the keys of y->list from list_i; 1 when all went. */
static int send_list(struct server *sv, struct range_state *rs, size_t *budget)
{
	struct range_sync *y = rs->sync;
	while (y->list_i < y->nlist && *budget) {
		struct hpsi_store_item it;
		/* (a key of tables that go whole is not sent: they go at the freeze) */
		if (hpsi_store_item(rs->store, y->list[y->list_i], &it) == 0 && !it.whole &&
		    !send_item(sv, rs, &it, budget))
			return 0;
		y->list_i++;
	}
	return y->list_i == y->nlist;
}


static int cmp_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static size_t sort_unique(uint64_t *v, size_t n)
{
	if (n)
		qsort(v, n, sizeof *v, cmp_key);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!m || v[m - 1] != v[i])
			v[m++] = v[i];
	return m;
}

/* Sorts the pushed keys and keeps each once; returns how many. */
static size_t dedup_dirty(struct range_sync *y)
{
	return y->ndirty = sort_unique(y->dirty, y->ndirty);
}

/* The pushed keys become the list to send (sorted, each once). */
static void take_dirty(struct range_sync *y)
{
	free(y->list);
	y->list = y->dirty;
	y->nlist = y->ndirty;
	y->list_i = 0;
	y->dirty = NULL;
	y->ndirty = y->dirty_cap = 0;
	y->nlist = sort_unique(y->list, y->nlist);
}

void hpsi_recover_dirty(struct range_state *rs, const uint64_t *keys, uint32_t n)
{
	struct range_sync *y = rs->sync;
	if (y->phase == PH_BEGIN || y->dirty_lost || hpsi_store_goes_whole(rs->store))
		return; /* nothing sent yet, everything goes again, or whole at the freeze */
	if (y->ndirty + n > y->dirty_cap) {
		size_t cap = y->dirty_cap ? y->dirty_cap * 2 : 4096;
		while (cap < y->ndirty + n)
			cap *= 2;
		/* more pushed keys than the range holds: copying it all again is cheaper */
		uint64_t *d = cap / 2 > hpsi_store_size(rs->store) + 65536 ? NULL : realloc(y->dirty, cap * sizeof *d);
		if (!d && y->ndirty && dedup_dirty(y) + n <= y->dirty_cap)
			goto add; /* the same hot keys again and again */
		if (!d) {
			y->dirty_lost = 1;
			return;
		}
		y->dirty = d;
		y->dirty_cap = cap;
	}
add:
	memcpy(y->dirty + y->ndirty, keys, (size_t)n * sizeof *keys);
	y->ndirty += n;
}

int hpsi_recover_frozen(const struct range_state *rs)
{
	return rs->sync && (rs->sync->phase == PH_FREEZE || rs->sync->frozen_copy);
}

/* A range taken over is read again up to where its dead server stopped;
 * it is handed back only after that (the replacement reads nothing twice). */
static int rereading(const struct server *sv, const struct range_state *rs)
{
	for (uint32_t wk = 0; wk < sv->nworkers; wk++)
		if (rs->peers[wk].rereading && !sv->finished[wk] &&
		    (int32_t)(rs->peers[wk].reread_end - rs->peers[wk].req.head) > 0)
			return 1; /* (the flag itself drops only at the next request) */
	return 0;
}

/* Handback: the other backups have applied what this server forwarded
 * them up to the freeze. */
static int others_caught_up(struct server *sv, struct range_sync *y)
{
	if (sv->movable)
		return 1; /* no backups */
	if (y->handback && !y->wait_tail &&
	    (y->wait_tail = calloc(sv->nservers, sizeof *y->wait_tail))) /* (set at the freeze; memory ran out then) */
		for (uint32_t b = 0; b < sv->nservers; b++)
			y->wait_tail[b] = b == sv->me ? 0 : sv->fwd_out[b].tail;
	if (y->handback && !y->wait_tail)
		return 0;
	for (uint32_t b = 0; y->wait_tail && b < sv->nservers; b++) {
		if (b == sv->me || b == y->to || hpsi_server_gone(sv->seg, b))
			continue;
		/* acquire pairs with the backup's release of its head (ring pair B) */
		uint32_t head = atomic_load_explicit(&sv->fwd_out[b].r->head, memory_order_acquire);
		if ((int32_t)(y->wait_tail[b] - head) > 0) {
			hpsi_node_wake(sv->seg, b);
			return 0;
		}
	}
	return 1;
}

/* A move's tables (pool and cells), handed over whole (the range is
 * frozen: nothing writes them any more): their shapes and fds in one
 * SYNC_WHOLE; the target maps the same pages (apply_whole), answers, and
 * serves them only after the FINAL, which goes after its answer, when
 * this server no longer does. This server keeps the store, and with it
 * the fds, until that answer (or, for a copy dropped before it, until
 * the target read past them: keep_store): it may read them long after
 * (a target whose serving loop has not started yet). 1 once sent (or
 * nothing to send). */
static int send_whole(struct server *sv, struct range_state *rs)
{
	struct range_sync *y = rs->sync;
	if (y->whole_sent)
		return 1;
	struct sync_whole w = {0};
	w.pool = (uint32_t)hpsi_store_whole_pool(rs->store, &w.tab);
	w.ncells = (uint32_t)hpsi_store_whole(rs->store, w.cells, SYNC_SHAPES);
	if (w.pool || w.ncells) {
		if (!msg_open(sv, rs, SYNC_WHOLE, sizeof w))
			return 0;
		y->msg->nkeys = y->whole_seq = ++sv->whole_seq; /* (a cancelled copy's answer is not this one's) */
		memcpy(y->msg + 1, &w, sizeof w);
		y->msg_used = sizeof w;
		msg_close(sv, y);
		if (w.pool)
			y->whole_bytes += w.tab.cap * 8 + w.tab.nwin * HPSI_WIN_UNITS * 8, y->whole_keys += w.tab.count;
		for (size_t k = 0; k < w.ncells; k++)
			y->whole_bytes += w.cells[k].ncells * w.cells[k].csz, y->whole_keys += w.cells[k].count;
	}
	y->whole_sent = w.pool || w.ncells ? 2 : 1;
	y->adopt = y->whole_sent == 2 ? ADOPT_WAIT : ADOPT_NONE;
	return 1;
}

/* The target could not map the tables (an fd it cannot open: EMFILE,
 * /proc mounted hidepid; a mapping refused): the same range, still
 * frozen, goes again from a BEGIN as records (its store walked as one
 * that does not share), and the FINAL follows them. Nothing was served
 * meanwhile, so the records are the tables' contents. */
static void resend_by_records(struct server *sv, struct range_state *rs)
{
	struct range_sync *y = rs->sync;
	hpsi_warn("server %u sends key range %u to server %u record by record: it could not map the tables", sv->me,
		  rs->id, y->to);
	hpsi_store_by_records(rs->store);
	y->phase = PH_BEGIN;
	y->frozen_copy = 1; /* frozen through the copy: no push comes in between */
	y->whole_sent = 0;
	y->adopt = ADOPT_NONE;
	y->whole_bytes = y->whole_keys = 0; /* (they moved by records) */
	y->rec_off = 0;
	y->ndirty = 0;
	y->nlist = y->list_i = 0;
	y->waiting = 0;
}


/* A store kept for a target that may still open its memfds (struct
 * range_state: kept): until that incarnation of `to` read its ring past
 * `tail`, or is gone. */
struct kept_store {
	struct hpsi_store *store;
	uint32_t to, incarnation, tail;
	struct kept_store *next;
};

/* Drops the kept tables (struct range_state) whose target read past
 * their tail, or is gone (then nobody maps them any more); force: all
 * (the server ends). Each is judged alone: a later one's target may have
 * read its ring further than an earlier one's. */
static void drop_kept(struct server *sv, struct range_state *rs, int force)
{
	for (struct kept_store **at = &rs->kept, *k; (k = *at);) {
		if (!force) {
			uint32_t st = state_of(sv, k->to);
			int running = (st == HPSI_NODE_JOINING || st == HPSI_NODE_ALIVE) &&
				      incarnation_of(sv, k->to) == k->incarnation;
			/* acquire pairs with the target's release of its head
			 * (ring pair B): it opened the fds before it moved past
			 * them */
			uint32_t head = atomic_load_explicit(&sv->fwd_out[k->to].r->head, memory_order_acquire);
			if (running && (int32_t)(k->tail - head) > 0) {
				at = &k->next;
				continue;
			}
		}
		*at = k->next;
		hpsi_store_destroy(k->store);
		free(k);
	}
}

/* Keeps rs's store (its tables went whole to `to`, no answer yet) beside
 * any kept before, which the target may not have read either: dropping
 * one early would let the target open a closed fd number, maybe reused
 * by another memfd since. Without memory for the entry the store is
 * left allocated for the life of the process (never dropped early). */
static void keep_store(struct server *sv, struct range_state *rs, uint32_t to)
{
	struct kept_store *k = malloc(sizeof *k);
	if (!k) {
		hpsi_warn("server %u keeps key range %u's old tables until it ends (no memory to track them)", sv->me,
			  rs->id);
		return;
	}
	/* tail: published (hpsi_replica_publish before) */
	*k = (struct kept_store){rs->store, to, incarnation_of(sv, to), sv->fwd_out[to].tail, rs->kept};
	rs->kept = k;
}

/* The source's end of a copy of a scale of a replicated job with room
 * (find_room), once its FINAL is published: the tables name the target.
 * Stored with release after the FINAL went, so that whoever reads the new
 * entry (routing, a takeover, which first drains this server's ring to
 * the target) finds the copy whole. */
static void room_handed(struct server *sv, struct range_state *rs, double mb, double ms)
{
	struct range_sync *y = rs->sync;
	_Atomic uint16_t *backup = &hpsi_seg_backups(sv->seg)[(size_t)rs->id * sv->replicas];
	size_t keys = hpsi_store_size(rs->store);
	if (y->room == ROOM_BACKUP) {
		uint32_t old = hpsi_replica(sv->seg, rs->id, 1);
		rs->fwd_rank[1] = y->to; /* its pushes go there from now */
		rs->fwd_incarnation[1] = y->incarnation;
		atomic_store_explicit(backup, (uint16_t)y->to, memory_order_release);
		hpsi_seg_moves_raise(sv->seg, rs->id, y->room_moves); /* (after the entry, release) */
		hpsi_warn("server %u copied the backup of key range %u (%zu keys, %.1f MB in %.3f ms) from server %u to server %u",
			  sv->me, rs->id, keys, mb, ms, old, y->to);
		return;
	}
	hpsi_serve_stop(sv, rs);
	hpsi_members_changing(sv->seg); /* hps_num_servers may change: the epoch first */
	/* release pairs with routing's acquire (hpsi_range_owner): the owner
	 * first, so that the two entries never name one rank twice as the
	 * backup (a swap passes through the target named as both) */
	atomic_store_explicit(&hpsi_seg_owner(sv->seg)[rs->id], (uint16_t)y->to, memory_order_release);
	atomic_store_explicit(backup, (uint16_t)y->new_backup, memory_order_release);
	hpsi_seg_moves_raise(sv->seg, rs->id, y->room_moves); /* (after the entries, release) */
	hpsi_move_hand_slow(sv, rs->id);
	hpsi_members_changed(sv->seg); /* hps_membership_epoch: the servers changed */
	if (y->new_backup != sv->me) { /* its memory goes (a copy brings it back) */
		struct hpsi_store *empty = hpsi_store_create_idle(rs->store);
		if (empty) {
			hpsi_store_destroy(rs->store);
			rs->store = rs->arg = empty;
		}
		rs->synced = 0;
	}
	hpsi_sstat_stores(sv);
	hpsi_warn("server %u moved key range %u (%zu keys, %.1f MB in %.3f ms) to server %u (0 keys in tables mapped, not copied)%s",
		  sv->me, rs->id, keys, mb, ms, y->to,
		  y->room == ROOM_SWAP ? "; it held it as the backup, and this server backs it up now"
		  : y->new_backup == sv->me ? "; this server backs it up now" : "");
}

/* The workers' state in pieces that fit the ring (nkeys: the first
 * worker of the piece); the piece that reaches the last worker ends the
 * copy. 1 once all went. */
static int send_final(struct server *sv, struct range_state *rs)
{
	struct range_sync *y = rs->sync;
	size_t per = (chunk_room(sv) - sizeof(struct hpsi_msg_hdr)) / sizeof(struct sync_peer);
	uint32_t ri = (uint32_t)(rs - sv->ranges);
	/* A move's number (shm/segment.h, moves_off): this one's, in every
	 * piece; no other process raises it before the last piece is read.
	 * The number of the move that brought the range here counts too: its
	 * source raises the host's number only after it stored this server
	 * as the owner (hpsi_move_handed), which may not be visible yet */
	uint32_t moved = atomic_load_explicit(&hpsi_seg_moves(sv->seg)[rs->id], memory_order_relaxed);
	moved = (moved > rs->moved_in ? moved : rs->moved_in) + 1;
	if (sv->wait_after_handback && y->handback && !y->final_sent && ri > 0 && hpsi_replica_earlier_gone(sv, rs, ri)) {
		sv->wait_after_handback = 0; /* HPS_FAILPOINT=handback (struct server) */
		sv->handback_look = (int)ri + 1;
	}
	while (y->final_sent < sv->nworkers) {
		uint32_t n = sv->nworkers - y->final_sent;
		if (n > per)
			n = (uint32_t)per;
		if (!msg_open(sv, rs, SYNC_FINAL, (size_t)n * sizeof(struct sync_peer)))
			return 0;
		y->msg->nkeys = y->final_sent;
		/* which incarnation of each replica holds the range whole; with
		 * room, the rank and incarnation of its backup from here */
		y->msg->keys_off = rs->fwd_incarnation[0] | (uint64_t)rs->fwd_incarnation[1] << 32;
		y->msg->vals_off = rs->fwd_incarnation[2] | (uint64_t)rs->fwd_incarnation[3] << 32;
		if (y->room == ROOM_HANDBACK || y->room == ROOM_SWAP) {
			uint32_t inc = y->new_backup == sv->me ? incarnation_of(sv, sv->me) : rs->fwd_incarnation[1];
			y->msg->keys_off = y->new_backup | (uint64_t)inc << 32;
		}
		if (sv->movable)
			y->msg->resp_cap = moved;
		else if (y->room)
			y->msg->resp_cap = y->room_moves;
		struct sync_peer *out = (struct sync_peer *)(y->msg + 1);
		for (uint32_t k = 0; k < n; k++) {
			const struct peer *p = &rs->peers[y->final_sent + k];
			out[k] = (struct sync_peer){.clock = p->clock, .phase = p->phase, .last_seq = p->last_seq};
		}
		y->msg_used = (size_t)n * sizeof(struct sync_peer);
		msg_close(sv, y);
		y->final_sent += n;
	}
	sv->skip_looks = 0; /* HPS_FAILPOINT=nolook (struct server) */
	if (sv->movable && sv->final_pause_ms) { /* HPS_FAILPOINT=finalpause (struct server) */
		hpsi_warn("server %u: HPS_FAILPOINT=finalpause: the FINAL of key range %u to server %u waits %u ms",
			  sv->me, rs->id, y->to, sv->final_pause_ms);
		usleep(sv->final_pause_ms * 1000u);
		sv->final_pause_ms = 0;
	}
	/* The number is raised after the FINAL, by hpsi_move_handed once it
	 * stored the new owner (shm/segment.h, hpsi_seg_moves_raise): raised
	 * here, before the owner, a scale's end in between paired the old
	 * owner with the new number in its plan, and the target moved the
	 * range back (test_scale_end_during_move) */
	hpsi_replica_publish(sv);
	hpsi_node_wake(sv->seg, y->to);
	double ms = (double)(hpsi_now_ns() - y->started) / 1e6;
	if (sv->movable) {
		hpsi_move_handed(sv, rs, y->to, moved, (double)(y->bytes + y->whole_bytes) / 1e6, ms, y->whole_keys);
		sync_free(sv, rs);
		return 1;
	}
	if (y->room) {
		room_handed(sv, rs, (double)y->bytes / 1e6, ms);
		sync_free(sv, rs);
		return 1;
	}
	hpsi_warn("server %u copied key range %u to server %u (incarnation %u): %.1f MB in %.1f ms%s", sv->me, rs->id,
		  y->to, y->incarnation, (double)y->bytes / 1e6, ms, y->handback ? "; it serves the range again" : "");
	if (y->handback) {
		hpsi_serve_stop(sv, rs);
		rs->handed_to = y->to + 1;
		rs->handed_incarnation = y->incarnation;
	} else {
		rs->fwd_incarnation[y->to_index] = y->incarnation; /* its pushes go there from now */
	}
	sync_free(sv, rs);
	return 1;
}

/* Advances rs's copy; returns 1 if it did something. */
static int sync_range(struct server *sv, struct range_state *rs)
{
	struct range_sync *y = rs->sync;
	uint32_t st = state_of(sv, y->to);
	if ((st != HPSI_NODE_JOINING && st != HPSI_NODE_ALIVE) || incarnation_of(sv, y->to) != y->incarnation) {
		hpsi_warn("server %u stops copying key range %u: server %u is gone", sv->me, rs->id, y->to);
		sync_free(sv, rs);
		return 1;
	}
	size_t budget = STEP_BYTES;
	int did = 0;
	if (y->phase == PH_BEGIN && y->room == ROOM_SWAP) {
		y->phase = PH_FREEZE; /* nothing to copy: the target applied every forward before the FINAL */
		did = 1;
	}
	if (y->phase == PH_BEGIN) {
		/* A move to another host's server goes by records: memfds stay
		 * on their host (the bridge drops a SYNC_WHOLE to another host
		 * as malformed), so the store is walked as one that does not
		 * share, pushed keys tracked as without room (docs/
		 * ARCHITECTURE.md, "Elastic servers across hosts", step 3) */
		if (sv->movable && !hpsi_node_local(sv->seg, y->to))
			hpsi_store_by_records(rs->store);
		uint32_t lens[SYNC_SHAPES];
		uint64_t keys[SYNC_SHAPES];
		size_t n = hpsi_store_shape(rs->store, lens, keys, SYNC_SHAPES);
		struct sync_shape pool = {0};
		hpsi_store_pool_shape(rs->store, &pool.keys, &pool.bytes);
		size_t all = n + (pool.keys != 0);
		if (!msg_open(sv, rs, SYNC_BEGIN, all * sizeof(struct sync_shape)))
			return 0;
		for (size_t k = 0; k < n; k++) {
			struct sync_shape q = {.len = lens[k], .keys = keys[k]};
			memcpy((unsigned char *)(y->msg + 1) + k * sizeof q, &q, sizeof q);
		}
		if (pool.keys)
			memcpy((unsigned char *)(y->msg + 1) + n * sizeof pool, &pool, sizeof pool);
		y->msg_used = all * sizeof(struct sync_shape);
		msg_close(sv, y);
		y->phase = PH_COPY;
		y->cursor = y->next_cursor = (struct hpsi_store_cursor){0, 0, 0};
		did = 1;
	}
	if (y->dirty_lost && y->phase != PH_FREEZE) { /* everything again */
		y->dirty_lost = 0;
		y->ndirty = 0;
		y->phase = PH_COPY;
		y->cursor = (struct hpsi_store_cursor){0, 0, 0};
		y->rec_off = 0;
		/* pushes outrun the copy: the last full one runs frozen */
		y->frozen_copy = ++y->full_copies >= MAX_FULL_COPIES;
	}
	while (y->phase == PH_COPY && budget) {
		struct hpsi_store_item it;
		y->next_cursor = y->cursor;
		if (hpsi_store_next(rs->store, &y->next_cursor, &it)) {
			y->phase = PH_DELTA;
			break;
		}
		if (!send_item(sv, rs, &it, &budget)) {
			y->cursor = it.at; /* the rest of this record next time (a key added since may come before it) */
			break;
		}
		y->cursor = y->next_cursor;
		did = 1;
	}
	if (y->phase == PH_DELTA && send_list(sv, rs, &budget)) {
		did = 1;
		if ((y->ndirty <= FREEZE_KEYS || y->rounds >= MAX_ROUNDS) && !(y->handback && rereading(sv, rs))) {
			y->phase = PH_FREEZE; /* no push reaches the range from here */
			if (y->handback && !y->wait_tail && (y->wait_tail = calloc(sv->nservers, sizeof *y->wait_tail)))
				for (uint32_t b = 0; b < sv->nservers; b++)
					y->wait_tail[b] = b == sv->me ? 0 : sv->fwd_out[b].tail;
		} else {
			y->rounds++;
		}
		take_dirty(y);
	}
	if (y->phase == PH_FREEZE && send_list(sv, rs, &budget)) {
		msg_close(sv, y);
		hpsi_replica_publish(sv);
		if (sv->movable && !send_whole(sv, rs))
			return did; /* (the ring is full: the target frees room as it reads) */
		if (y->adopt == ADOPT_REFUSED) {
			resend_by_records(sv, rs);
			return 1;
		}
		/* the FINAL only once the target mapped the tables: until then
		 * the range is still this server's to send another way */
		if (y->adopt == ADOPT_WAIT) {
			y->waiting = 1; /* (its answer wakes this server) */
			msg_close(sv, y);
			return 1;
		}
		y->waiting = !y->final_sent && !others_caught_up(sv, y);
		if (!y->waiting) {
			uint32_t before = y->final_sent;
			if (send_final(sv, rs))
				return 1; /* (rs->sync is gone) */
			return did || y->final_sent != before;
		}
	}
	msg_close(sv, y);
	return did;
}

int hpsi_recover_step(struct server *sv)
{
	int n = 0;
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		drop_kept(sv, rs, 0);
		if (!rs->serving || !rs->store)
			continue;
		uint32_t to, idx, new_b = 0, number = 0;
		int handback, room;
		if (!rs->sync && find_target(sv, rs, &to, &idx, &handback, &room, &new_b, &number)) {
			if (!(rs->sync = calloc(1, sizeof *rs->sync)))
				continue;
			*rs->sync = (struct range_sync){.to = to, .to_index = idx, .incarnation = incarnation_of(sv, to),
							.handback = handback, .room = room, .new_backup = new_b,
							.room_moves = number,
							.phase = PH_BEGIN, .started = hpsi_now_ns()};
			atomic_fetch_add_explicit(&hpsi_seg_node(sv->seg, sv->me)->copies_started, 1, memory_order_relaxed);
			hpsi_info("server %u copies key range %u to server %u (%zu keys)", sv->me, rs->id, to,
				  hpsi_store_size(rs->store));
		}
		if (rs->sync)
			n += sync_range(sv, rs);
	}
	/* always: a copy may have committed records and still report no
	 * progress (its ring filled up) */
	hpsi_replica_publish(sv);
	hpsi_replica_wake(sv);
	return n;
}

/* Room for a whole SYNC message on the ring to `to` (no reservation: that
 * would write into the ring). */
static int room_for_chunk(struct server *sv, uint32_t to)
{
	struct hpsi_ring_prod *p = &sv->fwd_out[to];
	/* acquire pairs with the consumer's release of its head (ring pair B) */
	uint32_t head = atomic_load_explicit(&p->r->head, memory_order_acquire);
	return (p->mask + 1) - (p->tail - head) >= chunk_room(sv) + 2 * HPSI_CACHELINE; /* + headers, padding */
}

/* Handed back for as long as the incarnation it went to runs (JOINING or
 * ALIVE), not only until that one read the FINAL: a caller reads the
 * target's state again after hpsi_replica_earlier_gone read it, and in
 * between the target may read the FINAL, serve the range and store ALIVE.
 * Had this answer turned to "not handed back" at ALIVE, that caller would
 * combine "gone" (JOINING, the first read) with "not handed back" (ALIVE,
 * the second) and take the range over from a replacement serving it: two
 * readers on one ring. States move only forward (JOINING, ALIVE, then DEAD
 * or CLOSED) and a new incarnation comes only after DEAD, so "running, the
 * same incarnation" never turns back on once off; while it holds the
 * target is not gone, or it is gone only to a replica before it, which then
 * takes the range over itself. The state is acquired before the
 * incarnation is read (incarnation_of). */
int hpsi_recover_handed_back(const struct server *sv, const struct range_state *rs)
{
	if (!rs->handed_to)
		return 0;
	uint32_t to = rs->handed_to - 1, st = state_of(sv, to);
	return (st == HPSI_NODE_JOINING || st == HPSI_NODE_ALIVE) && incarnation_of(sv, to) == rs->handed_incarnation;
}

int hpsi_recover_pending(struct server *sv)
{
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		if (!rs->serving || !rs->store)
			continue;
		if (!rs->sync) {
			uint32_t to, idx, new_b, number;
			int handback, room;
			if (find_target(sv, rs, &to, &idx, &handback, &room, &new_b, &number))
				return 1;
			continue;
		}
		/* room for a message again (the replacement wakes this server as it
		 * reads); a frozen range waiting for other backups polls at the
		 * idle check's pace */
		if (!rs->sync->waiting && room_for_chunk(sv, rs->sync->to))
			return 1;
	}
	return 0;
}

void hpsi_recover_cancel(struct server *sv, struct range_state *rs)
{
	if (rs->sync && rs->sync->whole_sent == 2 && rs->sync->adopt == ADOPT_WAIT) {
		/* the target may map the tables sent yet (it has not answered):
		 * the store is kept, the caller's is gone */
		hpsi_replica_publish(sv);
		keep_store(sv, rs, rs->sync->to);
		rs->store = rs->arg = NULL;
	}
	sync_free(sv, rs);
}

void hpsi_recover_free(struct server *sv)
{
	for (uint32_t i = 0; sv->ranges && i < sv->nranges; i++) {
		sync_free(sv, &sv->ranges[i]);
		drop_kept(sv, &sv->ranges[i], 1);
	}
}

/* ---- the replacement: applying a copy ---- */

/* Continues the rings of a range handed back, where its last server
 * stopped: it consumed only what it answered and published. */
static void attach_range(struct server *sv, struct range_state *rs)
{
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &rs->peers[wk];
		struct hpsi_ring *resp = hpsi_seg_ring(sv->seg, wk, rs->id, 1);
		/* acquire pairs with the last server's release of its tail (pair A) */
		uint32_t tail = atomic_load_explicit(&resp->tail, memory_order_acquire);
		p->answered = 0;
		p->mark_word = 0;
		for (unsigned k = 0; k < 2; k++) {
			uint64_t m = atomic_load_explicit(&resp->mark[k], memory_order_relaxed);
			if ((uint32_t)(m >> 32) == tail) {
				p->answered = (uint32_t)m; /* kept for a takeover of this server */
				p->mark_word = k ^ 1;
			}
		}
		p->adopted = p->rereading = p->held = 0;
		hpsi_ring_cons_attach(&p->req, hpsi_seg_ring(sv->seg, wk, rs->id, 0), sv->seg->hdr->ring_bytes);
		hpsi_ring_prod_attach(&p->resp, resp, sv->seg->hdr->ring_bytes);
	}
	/* Across hosts a bridge read some of these rings for the source: it
	 * published their heads only up to the oldest request not answered
	 * (net/bridge_recover.c), so requests answered there come again, with
	 * clocks older than the last one copied */
	rs->resent = sv->seg->hdr->bridged;
	rs->serving = 1;
	rs->epoch++;
}

/* A replacement serves again once it serves its own range: it stores
 * ALIVE, and then serves the other ranges handed back to it meanwhile
 * (never before: while it is JOINING another replica may take them over,
 * and one ring would have two readers). */
static void maybe_alive(struct server *sv)
{
	if (!sv->joining || !sv->ranges[0].serving)
		return;
	sv->joining = 0;
	/* release pairs with the acquire of the state by routing (net/route.h):
	 * whoever routes to this server sees it serve */
	atomic_store_explicit(&hpsi_seg_node(sv->seg, sv->me)->state, HPSI_NODE_ALIVE, memory_order_release);
	for (uint32_t i = 1; i < sv->nranges; i++)
		if (sv->ranges[i].attach_pending) {
			sv->ranges[i].attach_pending = 0;
			attach_range(sv, &sv->ranges[i]);
		}
	hpsi_wake_all(sv->seg);
	hpsi_warn("server %u is back: it serves key range %u again and backs up the others", sv->me, sv->me);
}

static int bad_sync(const char *why)
{
	hpsi_msg_count_bad(why);
	return 1;
}

/* A copy this server cannot hold whole (memory): it stops with a clear
 * error rather than serve a range with keys missing; the launcher starts
 * another replacement, and the sources see this one dead. */
_Noreturn static void copy_failed(struct server *sv, const struct range_state *rs, uint64_t key, int rc)
{
	hpsi_error("server %u cannot hold its copy of key range %u (key %llu): %s; it stops, a replacement may follow",
		   sv->me, rs->id, (unsigned long long)key, hps_strerror(rc));
	hpsi_log_flush();
	_exit(3);
}

static int apply_records(struct server *sv, struct range_state *rs, const unsigned char *at, size_t left)
{
	/* no value is larger than a worker's heap slice, which it came from */
	uint64_t max_len = sv->seg->hdr->heap_slice / sizeof(float);
	while (left) {
		struct sync_chunk c;
		if (left < sizeof c)
			return bad_sync("copy of a key range: a piece shorter than its header");
		memcpy(&c, at, sizeof c);
		size_t padded = (size_t)((c.n + 7) & ~(uint64_t)7);
		if (c.n > left - sizeof c || padded > left - sizeof c)
			return bad_sync("copy of a key range: a piece longer than its message");
		if (c.len == 0 || c.len > max_len)
			return bad_sync("copy of a key range: a record of no or too many values");
		int rc = hpsi_store_write(rs->store, c.key, c.len, c.steps, (size_t)c.off, at + sizeof c, (size_t)c.n);
		if (rc == HPS_EVALLEN)
			return bad_sync("copy of a key range: a piece outside its record");
		if (rc)
			copy_failed(sv, rs, c.key, rc);
		at += sizeof c + padded;
		left -= sizeof c + padded;
	}
	return 1;
}

/* The source's view of which incarnation of each replica holds the range
 * whole (a FINAL's keys_off, vals_off), taken by the replacement it hands
 * the range to: the source itself holds it whole. */
static void take_forwarding(struct server *sv, struct range_state *rs, const struct hpsi_msg_hdr *h, uint32_t from)
{
	uint32_t inc[4] = {(uint32_t)h->keys_off, (uint32_t)(h->keys_off >> 32), (uint32_t)h->vals_off,
			   (uint32_t)(h->vals_off >> 32)};
	for (uint32_t k = 0; k <= sv->replicas; k++) {
		uint32_t b = hpsi_replica(sv->seg, rs->id, k);
		if (b == from)
			rs->fwd_incarnation[k] = incarnation_of(sv, from);
		else if (b != sv->me)
			rs->fwd_incarnation[k] = inc[k];
	}
}

/* Room for the keys a BEGIN announces, before they come. A count beyond
 * this machine's memory (a damaged message) is not taken; a copy that
 * then does not fit fails as any other (copy_failed). */
static void expect_shapes(struct server *sv, struct hpsi_store *st, const unsigned char *body, size_t n)
{
	uint64_t mem = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
	for (size_t k = 0; k < n; k++) {
		struct sync_shape q;
		memcpy(&q, body + k * sizeof q, sizeof q);
		if (!q.len && q.keys && q.keys <= mem / 16 && q.bytes <= mem / 4) { /* the pool */
			hpsi_store_expect_pool(st, q.keys, q.bytes);
			continue;
		}
		if (!q.len || q.keys > mem / 4 / q.len || hpsi_store_expect(st, q.len, q.keys))
			hpsi_info("server %u: no room set aside for %llu keys of %u values before a copy",
				  sv->me, (unsigned long long)q.keys, q.len);
	}
}

/* What a piece of a copy did to the range it fills (apply_piece);
 * PIECE_AGAIN: not applied, read it again later (no room for an answer). */
enum { PIECE_BAD, PIECE_BEGUN, PIECE_MORE, PIECE_DONE, PIECE_AGAIN };

/* A move's tables, whole (send_whole): this server maps the source's
 * pages as its pool and cells (hpsi_store_adopt_pool, hpsi_store_adopt)
 * and answers on its ring to the source (SYNC_ADOPTED), which sends the
 * FINAL only after that answer. Whatever fails (the fd: EMFILE, /proc
 * mounted hidepid, the source gone; the mapping; a shape that does not
 * fit) is answered "not adopted": the table goes back to an empty one
 * and the source sends the range again as records, from a BEGIN. Room for
 * the answer comes first: without it the message is read again later
 * (PIECE_AGAIN), nothing adopted yet. */
static int apply_whole(struct server *sv, struct range_state *rs, const struct hpsi_msg_hdr *h)
{
	struct sync_whole w;
	if (h->val_bytes != sizeof w)
		return bad_sync("copy of a key range: tables of a bad length"), PIECE_BAD;
	memcpy(&w, h + 1, sizeof w);
	if (w.pool > 1 || w.ncells > SYNC_SHAPES)
		return bad_sync("copy of a key range: too many tables"), PIECE_BAD;
	struct hpsi_msg_hdr *a = hpsi_ring_reserve(&sv->fwd_out[h->sender], sizeof *a);
	if (!a)
		return PIECE_AGAIN;
	/* relaxed: the source stored its pid before ALIVE (release), which
	 * this server acquired before it read the source's ring */
	int pid = atomic_load_explicit(&hpsi_seg_node(sv->seg, h->sender)->pid, memory_order_relaxed);
	int rc = w.pool ? hpsi_store_adopt_pool(rs->store, pid, &w.tab) : 0; /* first: cells may add to it */
	if (!rc && sv->refuse_adopt) /* HPS_FAILPOINT=noadopt (struct server): as cells that cannot be opened */
		rc = HPS_ESYS;
	for (uint32_t k = 0; !rc && k < w.ncells; k++)
		rc = hpsi_store_adopt(rs->store, pid, &w.cells[k]);
	if (rc) {
		hpsi_warn("server %u cannot map key range %u's tables from server %u (%s): it asks for records instead",
			  sv->me, rs->id, h->sender, hps_strerror(rc));
		struct hpsi_store *fresh = hpsi_store_create_like(rs->store);
		if (fresh) { /* (else the BEGIN of the records replaces it) */
			hpsi_store_destroy(rs->store);
			rs->store = rs->arg = fresh;
		}
	}
	hpsi_msg_init(a, HPSI_MSG_SYNC, sv->me, 0);
	a->flags = HPSI_F_REPLICA;
	a->range = h->range;
	a->part = SYNC_ADOPTED;
	a->width = rc == 0;
	a->nkeys = h->nkeys; /* which SYNC_WHOLE */
	a->clock = incarnation_of(sv, h->sender);
	a->val_bytes = 0;
	hpsi_ring_commit(&sv->fwd_out[h->sender], sizeof *a);
	sv->fwd_dirty[h->sender] = 1;
	sv->fwd_urgent[h->sender] = 1; /* the source waits for it, frozen (published by hpsi_recover_step) */
	return PIECE_MORE;
}


/* Applies one BEGIN, RECORDS or FINAL piece of a copy into rs, the same
 * for a replacement and for a range that moves (move.c): PIECE_BEGUN, a
 * BEGIN (rs has a fresh table sized for the source's); PIECE_MORE,
 * records or a FINAL piece with more to come; PIECE_DONE, the last FINAL
 * piece (rs holds the copy whole, with every worker's state); PIECE_BAD,
 * a malformed piece (counted, dropped). */
static int apply_piece(struct server *sv, struct range_state *rs, const struct hpsi_msg_hdr *h)
{
	const unsigned char *body = (const unsigned char *)(h + 1);
	if (h->part == SYNC_BEGIN) {
		if (h->val_bytes % sizeof(struct sync_shape) || h->val_bytes > (SYNC_SHAPES + 1) * sizeof(struct sync_shape))
			return bad_sync("copy of a key range: a BEGIN of a bad length"), PIECE_BAD;
		/* Records from another host go into tables of this process's
		 * arena (huge pages), not into memfds, whose small pages cost a
		 * fault each as the records fill them: that was the slowest step
		 * of a move across hosts (docs/ARCHITECTURE.md, "Elastic servers
		 * across hosts", step 7). Such a range moves on by records if it
		 * moves again on this host (its store does not share; stores
		 * made like it do, hpsi_store_create_idle). */
		struct hpsi_store *fresh = hpsi_node_local(sv->seg, h->sender) ? hpsi_store_create_like(rs->store)
										: hpsi_store_create_idle(rs->store);
		if (!fresh)
			copy_failed(sv, rs, 0, HPS_ENOMEM);
		expect_shapes(sv, fresh, body, (size_t)(h->val_bytes / sizeof(struct sync_shape)));
		hpsi_store_destroy(rs->store);
		rs->store = rs->arg = fresh;
		rs->copy_begun = 1;
		rs->copy_next_worker = 0;
		rs->copy_began = hpsi_now_ns();
		rs->copy_bytes = 0;
		return PIECE_BEGUN;
	}
	if (!rs->copy_begun)
		return bad_sync("copy of a key range: a piece before its BEGIN"), PIECE_BAD;
	if (h->part == SYNC_RECORDS) {
		rs->copy_bytes += h->val_bytes;
		return apply_records(sv, rs, body, h->val_bytes), PIECE_MORE;
	}
	if (h->part == SYNC_WHOLE)
		return apply_whole(sv, rs, h);
	uint64_t n = h->val_bytes / sizeof(struct sync_peer);
	if (h->val_bytes % sizeof(struct sync_peer) || h->nkeys != rs->copy_next_worker || n > sv->nworkers - h->nkeys)
		return bad_sync("copy of a key range: a FINAL piece out of order"), PIECE_BAD;
	for (uint32_t k = 0; k < n; k++) {
		struct sync_peer q;
		memcpy(&q, body + (size_t)k * sizeof q, sizeof q);
		struct peer *p = &rs->peers[h->nkeys + k];
		/* the larger: clocks only grow, and the source may not have seen
		 * a join this server counts (members.c) */
		if (p->clock < q.clock)
			p->clock = q.clock;
		if (p->phase < q.phase)
			p->phase = q.phase;
		p->last_seq = q.last_seq;
		hpsi_members_floor(sv, rs, h->nkeys + k);
	}
	rs->copy_next_worker += (uint32_t)n;
	if (rs->copy_next_worker < sv->nworkers)
		return PIECE_MORE;
	rs->copy_begun = 0;
	rs->epoch++;
	rs->synced = 1;
	rs->named = 0; /* until a table names it (struct range_state) */
	return PIECE_DONE;
}

/* A copy of a key range that moves to this server (hps scale --servers,
 * move.c): a range it holds no part of yet (its range_state is made on
 * the first piece); at the FINAL it continues the range's rings where the
 * source stopped, as a replacement does at a hand-back. */
static int move_apply(struct server *sv, const struct hpsi_msg_hdr *h)
{
	if (!h->width)
		return bad_sync("copy of a key range: a move that is no hand-over");
	struct range_state *rs = hpsi_server_range(sv, h->range);
	if (!rs)
		copy_failed(sv, &(struct range_state){.id = h->range}, 0, HPS_ENOMEM);
	if (!rs->store || rs->serving)
		return bad_sync("copy of a key range this server serves");
	int got = apply_piece(sv, rs, h);
	if (got == PIECE_AGAIN)
		return 0; /* (the drain stops at it and comes back) */
	if (got == PIECE_DONE) {
		/* the move's number (every FINAL piece carries it; a bridge
		 * range-checked one from another host): this server's next
		 * move of the range counts from it (send_final), and a plan
		 * older than it does not move the range (find_target) */
		if (h->resp_cap <= HPSI_MOVES_MAX && h->resp_cap > rs->moved_in)
			rs->moved_in = (uint32_t)h->resp_cap;
		attach_range(sv, rs);
		if (hpsi_node_local(sv->seg, h->sender))
			hpsi_info("server %u serves key range %u now (%zu keys)", sv->me, rs->id, hpsi_store_size(rs->store));
		else /* (bench/net_bench scale: the end of a move across hosts) */
			hpsi_warn("server %u serves key range %u now: it took it from server %u on another host (%zu keys, %.1f MB of records in %.3f ms from their BEGIN)",
				  sv->me, rs->id, h->sender, hpsi_store_size(rs->store), (double)rs->copy_bytes / 1e6,
				  (double)(hpsi_now_ns() - rs->copy_began) / 1e6);
	}
	return 1;
}

/* A copy of a scale of a replicated job with room (find_room): width 0,
 * this server becomes the range's backup (the source names it in the
 * backup table after the FINAL); 1, its primary, from a copy; 2, its
 * primary with no copy: it is the range's backup and holds it whole (the
 * source's forwards came before the FINAL on this ring). At the FINAL of
 * 1 and 2 it takes from the source the rank and incarnation it forwards
 * to and continues the range's rings where the source stopped. */
static int room_apply(struct server *sv, uint32_t from, const struct hpsi_msg_hdr *h)
{
	struct range_state *rs = hpsi_server_range(sv, h->range);
	if (!rs)
		copy_failed(sv, &(struct range_state){.id = h->range}, 0, HPS_ENOMEM);
	if (!rs->store || rs->serving)
		return bad_sync("copy of a key range this server serves");
	if (h->width == 2 && !rs->copy_begun) {
		if (!rs->synced || h->part != SYNC_FINAL || h->nkeys)
			return bad_sync("copy of a key range: handed to a server without a whole copy");
		rs->copy_begun = 1; /* its FINAL pieces only */
		rs->copy_next_worker = 0;
	} else if (h->width == 2) {
		if (h->part != SYNC_FINAL)
			return bad_sync("copy of a key range: records for a server with a whole copy");
	}
	int got = apply_piece(sv, rs, h);
	if (got == PIECE_AGAIN)
		return 0;
	if (got == PIECE_BEGUN)
		rs->synced = 0; /* forwards of it are acknowledged, not applied, until the FINAL */
	if (got != PIECE_DONE)
		return 1;
	/* the copy's number (a bridge range-checked one from another host):
	 * this server's next copy of the range counts from it (find_room) */
	if (h->resp_cap <= HPSI_MOVES_MAX && h->resp_cap > rs->moved_in)
		rs->moved_in = (uint32_t)h->resp_cap;
	if (!h->width) {
		hpsi_info("server %u holds a whole copy of key range %u (%zu keys) as its backup", sv->me, rs->id,
			  hpsi_store_size(rs->store));
		return 1;
	}
	rs->fwd_rank[0] = sv->me;
	rs->fwd_incarnation[0] = incarnation_of(sv, sv->me);
	rs->fwd_rank[1] = (uint32_t)h->keys_off;
	rs->fwd_incarnation[1] = (uint32_t)(h->keys_off >> 32);
	if (rs->fwd_rank[1] == from) /* (the source's own word: it holds the range whole) */
		rs->fwd_incarnation[1] = incarnation_of(sv, from);
	attach_range(sv, rs);
	hpsi_info("server %u serves key range %u now (%zu keys); server %u backs it up", sv->me, rs->id,
		  hpsi_store_size(rs->store), rs->fwd_rank[1]);
	return 1;
}

/* The target's answer to a SYNC_WHOLE (apply_whole), on its ring to this
 * server: it opened and mapped the tables (the FINAL may go), or not
 * (records go instead). An answer to a SYNC_WHOLE of a copy that was
 * dropped since (a checkpoint load, hpsi_recover_cancel) names another
 * number and is ignored. */
static int take_adopted(struct server *sv, uint32_t from, const struct hpsi_msg_hdr *h)
{
	if (h->val_bytes)
		return bad_sync("copy of a key range: an answer with a body");
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_sync *y = sv->ranges[i].sync;
		if (sv->ranges[i].id != h->range || !y || y->to != from || y->adopt != ADOPT_WAIT ||
		    y->whole_seq != h->nkeys)
			continue;
		y->adopt = h->width ? ADOPT_OK : ADOPT_REFUSED;
		y->waiting = 0;
		return 1;
	}
	return 1; /* (for a copy dropped since) */
}

int hpsi_recover_apply(struct server *sv, uint32_t from, const void *rec, size_t len)
{
	const struct hpsi_msg_hdr *h = rec;
	if (len < sizeof *h || h->magic != HPSI_MSG_MAGIC || h->version != HPSI_MSG_VERSION ||
	    h->flags != HPSI_F_REPLICA || h->val_bytes != len - sizeof *h || h->range >= sv->nservers ||
	    h->part > SYNC_ADOPTED || h->sender != from || h->width > (sv->replicated_room ? 2u : 1u))
		return bad_sync("copy of a key range: a malformed message");
	if (h->clock != incarnation_of(sv, sv->me)) {
		/* left in the ring for a replacement that died before this one,
		 * or (a scale) a copy its host started for this rank's earlier
		 * process: said at the 1st, 2nd, 4th, ... such message, so that a
		 * source that never learned of this process shows in the log */
		uint32_t n = ++sv->stale_copies;
		if (sv->movable && !(n & (n - 1)))
			hpsi_warn("server %u dropped a copy of key range %u from server %u meant for its incarnation %u (it is %u); %u so far",
				  sv->me, h->range, from, h->clock, incarnation_of(sv, sv->me), n);
		return 1;
	}
	if (h->part == SYNC_ADOPTED)
		return sv->movable ? take_adopted(sv, from, h) : bad_sync("copy of a key range: an answer to no move");
	if (sv->movable)
		return move_apply(sv, h);
	if (sv->replicated_room) /* (no replacements there: launch.c refuses --restart-servers) */
		return room_apply(sv, from, h);
	uint32_t i = hpsi_replica_index(sv->seg, h->range, sv->me), fi = hpsi_replica_index(sv->seg, h->range, from);
	if (i == HPSI_NO_SERVER || fi == HPSI_NO_SERVER)
		return bad_sync("copy of a key range this server does not hold");
	if (h->width && fi < i)
		return bad_sync("copy of a key range: handed back by a replica before this one");
	struct range_state *rs = &sv->ranges[i];
	if (!rs->store || rs->serving || rs->attach_pending)
		return bad_sync("copy of a key range this server serves");
	int got = apply_piece(sv, rs, h);
	if (got == PIECE_AGAIN)
		return 0;
	if (got == PIECE_BEGUN) {
		rs->synced = 0;
		/* relaxed: whoever routes here stops at the state or this bit;
		 * a copy begins again only for a range not served here */
		atomic_fetch_or_explicit(&hpsi_seg_node(sv->seg, sv->me)->lacking, 1u << i, memory_order_relaxed);
	}
	if (got != PIECE_DONE)
		return 1;
	if (h->width && sv->die_at_handback) { /* HPS_FAILPOINT=handbackdie (struct server) */
		hpsi_warn("HPS_FAILPOINT=handbackdie: server %u exits at the hand-back of key range %u", sv->me, h->range);
		/* after a third host took the HANDBACK its bridge keeps 20 ms
		 * (HPSI_HOLD_HANDBACK_MS, net/bridge.h): its requests go here,
		 * then back to the source's host at this death's FENCE */
		usleep(60 * 1000);
		_exit(99);
	}
	/* release pairs with routing's acquire (net/route.h): who routes to
	 * this server for the range finds it whole */
	atomic_fetch_and_explicit(&hpsi_seg_node(sv->seg, sv->me)->lacking, ~(1u << i), memory_order_release);
	hpsi_info("server %u holds a whole copy of key range %u (%zu keys)", sv->me, rs->id, hpsi_store_size(rs->store));
	if (h->width) {
		take_forwarding(sv, rs, h, from);
		if (i == 0 || !sv->joining)
			attach_range(sv, rs);
		else
			rs->attach_pending = 1; /* after its own range (maybe_alive) */
	}
	maybe_alive(sv);
	return 1;
}
