/* Replication of key ranges (HPS_REPLICAS=K) on one host.
 *
 * The primary of a range applies each push, then forwards the request as
 * it received it, in the order it applied them, to each live backup
 * (HPSI_F_REPLICA on the server-pair ring hpsi_seg_fwd_ring); clocks are
 * forwarded too. A backup applies the forwarded pushes in that order with
 * the same updater code, so values, optimizer state and push counts stay
 * identical bit for bit. A push whose keys or values are in the worker's
 * heap (which the backup reads there) is acknowledged by each backup to
 * its worker directly (a response with HPSI_F_REPLICA on the backup's own
 * answer ring), and the worker completes it once every live backup has;
 * an inline push is complete on the primary's answer, which is published
 * after the forwards: every live backup holds it in its ring and applies
 * all of it before it can take the range over (runtime/client/worker.c).
 *
 * When every replica before a backup is gone, the backup drains what they
 * forwarded, then serves the range from the rings the dead primary left:
 * requests it had not released are read again. Whatever it released was
 * forwarded and answered first (serve.c publishes in that order); what it
 * answered is skipped by the ring's mark, and a push seen twice is applied
 * once (the per-worker last sequence, a push's timestamp). */
#include <string.h>

#include "net/route.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "shm/node.h"
#include "shm/wake.h"

/* Whether backup i of rs gets rs's pushes: running, and not a replacement
 * still waiting for the range's copy (recover.c). */
static int forwarded_to(struct server *sv, const struct range_state *rs, uint32_t i, uint32_t b)
{
	if (b == sv->me || hpsi_server_gone(sv->seg, b))
		return 0;
	/* relaxed: the incarnation was published with the state acquired
	 * just above (struct hpsi_node) */
	return atomic_load_explicit(&hpsi_seg_node(sv->seg, b)->incarnation, memory_order_relaxed) ==
	       rs->fwd_incarnation[i];
}

int hpsi_replica_reserve(struct server *sv, const struct range_state *rs, size_t len, struct fwd_slots *f)
{
	f->n = 0;
	f->mask = 0;
	f->incarnations = 0;
	for (uint32_t i = 1; i <= sv->replicas; i++) {
		/* with room, the rank its copy went to (the table may name the
		 * next one before that copy ended) */
		uint32_t b = sv->replicated_room ? rs->fwd_rank[i] : hpsi_replica(sv->seg, rs->id, i);
		if (b >= sv->nservers || !forwarded_to(sv, rs, i, b))
			continue;
		/* the replicas before this server are gone: b comes after it */
		if (!(f->at[f->n] = hpsi_ring_reserve(&sv->fwd_out[b], len))) {
			hpsi_node_wake(sv->seg, b); /* full: it must drain now */
			return 0;
		}
		f->to[f->n++] = b;
		f->mask |= (uint8_t)(1u << i);
		f->incarnations |= (rs->fwd_incarnation[i] & 0xffu) << (8 * i);
		if (sv->replicated_room) /* one backup (config.c): its rank in the high half */
			f->incarnations |= b << 16;
	}
	return 1;
}

void hpsi_replica_forward(struct server *sv, const struct fwd_slots *f, const void *rec, size_t len)
{
	for (uint32_t k = 0; k < f->n; k++) {
		memcpy(f->at[k], rec, len);
		struct hpsi_msg_hdr *h = f->at[k];
		h->flags |= HPSI_F_REPLICA;
		if (h->type == HPSI_MSG_PUSHPULL) { /* a backup applies the push only */
			h->type = HPSI_MSG_PUSH;
			h->flags &= (uint16_t)~HPSI_F_HEAP_RESP;
			h->resp_off = h->resp_cap = 0;
		}
		hpsi_ring_commit(&sv->fwd_out[f->to[k]], len);
		sv->fwd_dirty[f->to[k]] = 1;
		if ((h->flags & (HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS)) || sv->seg->hdr->bridged)
			sv->fwd_urgent[f->to[k]] = 1; /* its worker waits for the backup (its ack) */
	}
	hpsi_stat_add(&sv->stats->forwarded, f->n);
}

void hpsi_replica_publish(struct server *sv)
{
	for (uint32_t b = 0; sv->fwd_out && b < sv->nservers; b++) /* (replicas, or moves: move.c) */
		if (sv->fwd_dirty[b] == 1) {
			sv->fwd_dirty[b] = 2; /* published, its backup not woken yet */
			hpsi_ring_publish(&sv->fwd_out[b]);
		}
}

/* A backup is woken only when a worker waits for it (a push whose body is
 * in the worker's heap) or its ring is half full; otherwise it applies the
 * forwards in batches when it wakes for its own work or its idle check:
 * on a machine with fewer cores than busy processes, a backup woken for
 * every push takes the core of the worker or the primary. */
void hpsi_replica_wake(struct server *sv)
{
	for (uint32_t b = 0; sv->fwd_out && b < sv->nservers; b++) {
		if (sv->fwd_dirty[b] != 2)
			continue;
		struct hpsi_ring_prod *r = &sv->fwd_out[b];
		int half_full = r->tail - r->head_cache > (r->mask + 1) / 2;
		if (sv->fwd_urgent[b] || half_full)
			hpsi_node_wake(sv->seg, b);
		sv->fwd_dirty[b] = 0;
		sv->fwd_urgent[b] = 0;
	}
}

/* Which replica this server is of the range it holds at sv->ranges[k]:
 * k itself without room (ranges[i] is the range it is replica i of);
 * with room (several ranges per index, server.c) the tables say. */
static uint32_t held_index(const struct server *sv, uint32_t k)
{
	return hpsi_seg_room(sv->seg) ? hpsi_replica_index(sv->seg, sv->ranges[k].id, sv->me) : k;
}

/* The range this server backs up as its replica index i >= 1, or NULL.
 * With room, any range it holds and does not serve: a scale may have
 * moved its backup away while forwards were on their way, and those are
 * still acknowledged (apply_forward). */
static struct range_state *backed_range(struct server *sv, uint32_t range)
{
	if (range >= sv->nservers)
		return NULL;
	if (sv->replicated_room) {
		struct range_state *rs = NULL;
		for (uint32_t k = 0; k < sv->nranges && !rs; k++)
			if (sv->ranges[k].id == range && !sv->ranges[k].serving)
				rs = &sv->ranges[k];
		return rs;
	}
	uint32_t i = hpsi_replica_index(sv->seg, range, sv->me);
	if (i == HPSI_NO_SERVER || i == 0)
		return NULL;
	if (!hpsi_seg_room(sv->seg))
		return &sv->ranges[i];
	for (uint32_t k = 0; k < sv->nranges; k++)
		if (sv->ranges[k].id == range)
			return &sv->ranges[k];
	return NULL;
}

/* One forwarded record; 0 when the worker's answer ring is full (retry). */
static int apply_forward(struct server *sv, const void *rec, size_t len)
{
	const struct hpsi_msg_hdr *h = rec;
	struct hpsi_msg_view v;
	const char *why = "forward from an unknown worker";
	struct range_state *rs;
	if (len < sizeof *h || h->sender >= sv->nworkers ||
	    hpsi_msg_check(rec, len, &sv->heaps[h->sender], &v, &why) || !(h->flags & HPSI_F_REPLICA) ||
	    (h->type != HPSI_MSG_PUSH && h->type != HPSI_MSG_CLOCK) || !(rs = backed_range(sv, h->range))) {
		hpsi_msg_count_bad(len >= sizeof *h && h->sender < sv->nworkers ? "not a forward of a backed-up range" : why);
		return 1;
	}
	if (!rs->synced && !sv->replicated_room)
		return 1; /* a replacement: what the dead server left unread; the copy follows */
	uint32_t wk = h->sender;
	/* A worker that joined (members.c) may reach this backup through its
	 * primary before this server looked at the join: look now, so that it
	 * is counted (its clock, and the ack its heap push waits for). On one
	 * host the joiner stored ALIVE and bumped members_seq before its first
	 * request, and the primary acquired that request's ring before it
	 * forwarded, so the look sees the joiner ALIVE. Across hosts this
	 * backup learns ALIVE from the scheduler (net/bridge_join.c), maybe
	 * after the forward: the forward then waits in the ring, as for a full
	 * answer ring, until a look counts the joiner. */
	if (sv->vacant[wk])
		hpsi_members_look(sv);
	if (sv->vacant[wk])
		return 0;
	struct peer *p = &rs->peers[wk];
	hpsi_serve_take_clock(rs, p, h->clock);
	if (rs->ordered)
		hpsi_serve_take_phase(rs, p, h);
	if (h->type == HPSI_MSG_CLOCK)
		return 1;
	/* A push whose body is in the worker's heap is acknowledged: the
	 * worker keeps the buffer until every backup has read it. Across
	 * hosts every push is: the primary's answer may reach the worker
	 * before the forward reaches this host (net/bridge_fwd.c). */
	int acked = (h->flags & (HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS)) || sv->seg->hdr->bridged;
	/* this server's answer ring to wk: with room, that of a range it
	 * serves (find_room keeps one while it backs any up; none: the ack
	 * waits, a server that leaves closes with it) */
	struct range_state *ackr = sv->replicated_room ? hpsi_move_ack_range(sv) : &sv->ranges[0];
	struct hpsi_msg_hdr *ack = NULL;
	if (acked && !sv->finished[wk] && (!ackr || !(ack = hpsi_ring_reserve(&ackr->peers[wk].resp, sizeof *ack))))
		return 0;
	int rc = 0;
	/* With room, a range it no longer holds a replica of (a scale moved
	 * its backup away) or has no whole copy of yet (its copy's records
	 * come after) is acknowledged, not applied. Any index: a backup that
	 * a swap makes primary (recover.c, ROOM_SWAP) may read the forwards
	 * before the FINAL after the source named it the owner. */
	int applies = !sv->replicated_room ||
		      (rs->synced && hpsi_replica_index(sv->seg, rs->id, sv->me) != HPSI_NO_SERVER);
	if (applies && h->timestamp > p->last_seq) {
		size_t wsz = hpsi_dtype_size(rs->wire);
		hps_request r = {.type = HPS_REQ_PUSH, .sender = (int)wk, .timestamp = h->timestamp,
				 .width = h->width, .dtype = rs->dtype == HPSI_WIRE_F64 ? HPS_F64 : HPS_F32,
				 .nkeys = h->nkeys, .keys = v.keys, .lens = h->nlens ? v.lens : NULL,
				 .vals = v.vals, .nvals = h->val_bytes / wsz};
		rc = h->dtype == rs->wire ? hpsi_serve_apply(sv, rs, &r, NULL) : HPS_EPROTO;
		p->last_seq = h->timestamp;
		hpsi_stat_add(&sv->stats->replica_applied, 1);
	}
	if (ack) {
		hpsi_msg_init(ack, HPSI_MSG_RESPONSE, sv->me, h->timestamp);
		ack->part = h->part;
		ack->range = h->range;
		ack->flags = HPSI_F_REPLICA;
		ack->dtype = (uint8_t)rs->wire;
		ack->status = rc < 0 ? rc : 0;
		hpsi_ring_commit(&ackr->peers[wk].resp, sizeof *ack);
		sv->ack_dirty[wk] = 1;
	}
	return 1;
}

static void publish_acks(struct server *sv)
{
	for (uint32_t wk = 0; wk < sv->nworkers; wk++)
		if (sv->ack_dirty[wk]) {
			sv->ack_dirty[wk] = 0;
			if (sv->replicated_room) { /* (the one acks went on: they go before any hand-over) */
				struct range_state *ackr = hpsi_move_ack_range(sv);
				if (ackr)
					hpsi_serve_publish_answers(&ackr->peers[wk]);
			} else {
				hpsi_serve_publish_answers(&sv->ranges[0].peers[wk]);
			}
			hpsi_node_wake(sv->seg, hpsi_worker_node(sv->seg, wk));
		}
}

/* Applies what server `from` forwarded; *stuck set when an answer ring was
 * full before the ring was empty. */
static int drain_from(struct server *sv, uint32_t from, int *stuck);

int hpsi_replica_drain_from(struct server *sv, uint32_t from, int *stuck)
{
	return drain_from(sv, from, stuck);
}

static int drain_from(struct server *sv, uint32_t from, int *stuck)
{
	struct hpsi_ring_cons *c = &sv->fwd_in[from];
	int n = 0, synced_some = 0;
	size_t len;
	void *rec;
	while ((rec = hpsi_ring_peek(c, &len))) {
		int sync = len >= sizeof(struct hpsi_msg_hdr) && ((const struct hpsi_msg_hdr *)rec)->type == HPSI_MSG_SYNC;
		synced_some |= sync;
		if (!(sync ? hpsi_recover_apply(sv, from, rec, len) : apply_forward(sv, rec, len))) {
			*stuck = 1;
			break;
		}
		hpsi_ring_consume(c, len);
		n++;
	}
	if (n) {
		hpsi_ring_cons_publish(c);
		if (sv->joining || synced_some)
			hpsi_node_wake(sv->seg, from); /* a copy's source waits for room */
	}
	return n;
}

/* The server `j` places after this one in π (j < 0: before). */
static uint32_t neighbour(const struct server *sv, int j)
{
	return hpsi_place_step(sv->seg, sv->me, j);
}

/* The servers furthest before this one first, and nothing after a ring
 * that could not be emptied: a range's forwards from a dead primary come
 * before those of the backup that took it over (which forwards only what
 * it serves itself), and a push is applied once, by its highest sequence.
 * Servers after this one send only copies of ranges (recover.c). */
int hpsi_replica_drain(struct server *sv)
{
	int n = 0, stuck = 0;
	/* With room any rank may forward to it; one backup (config.c), so no
	 * order among them, and a ring stuck on an ack (no range served yet
	 * to answer on, replica.c) does not hold up the others: one of them
	 * may bring the range it will answer on. */
	if (hpsi_seg_room(sv->seg))
		for (uint32_t from = 0; from < sv->nservers; from++)
			n += from != sv->me ? drain_from(sv, from, &stuck) : 0;
	for (int j = -(int)sv->replicas; !hpsi_seg_room(sv->seg) && j <= (int)sv->replicas && !stuck; j++)
		if (j) /* (a ring met twice, with few servers, is read twice: harmless) */
			n += drain_from(sv, neighbour(sv, j), &stuck);
	if (n)
		publish_acks(sv);
	return n;
}

int hpsi_replica_earlier_gone(struct server *sv, const struct range_state *rs, uint32_t i)
{
	int died = 0;
	for (uint32_t j = 0; j < i; j++) {
		uint32_t srv = hpsi_replica(sv->seg, rs->id, j);
		struct hpsi_node *n = hpsi_seg_node(sv->seg, srv);
		/* acquire pairs with the state's release (struct hpsi_node) */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st != HPSI_NODE_DEAD && st != HPSI_NODE_CLOSED && st != HPSI_NODE_JOINING &&
		    !hpsi_replica_lacks(sv->seg, srv, j))
			return 0; /* (a replacement without its copy is no replica yet) */
		/* Across hosts its forwards are final only once its FENCE came,
		 * and only then does the bridge no longer stand at the range's
		 * rings (net/bridge_failover.c) */
		if (hpsi_server_unfenced(sv->seg, srv))
			return 0;
		died |= st != HPSI_NODE_CLOSED; /* servers that all closed ended with the job */
	}
	return died;
}

/* HPS_FAILPOINT=handback:RANK (struct server): range i's first look,
 * taken before its FINAL went out, once; then waits until the replacement
 * it was handed back to is no longer JOINING, polling its state (bounded
 * by the job's timeout). Else `gone`, this look. */
static int failpoint_handback(struct server *sv, const struct range_state *rs, uint32_t i, int gone)
{
	if (sv->handback_look != (int)i + 1 || !rs->handed_to)
		return gone;
	sv->handback_look = 0;
	uint32_t to = rs->handed_to - 1;
	int64_t end = hpsi_now_ns() + (int64_t)sv->seg->hdr->timeout_ms * 1000000;
	uint32_t steps = 0;
	while (hpsi_node_state(sv->seg, to) == HPSI_NODE_JOINING && hpsi_now_ns() < end)
		hpsi_spin_step(&steps, 1);
	hpsi_warn("server %u (HPS_FAILPOINT=handback): took key range %u's replicas for gone, then waited for server %u",
		  sv->me, rs->id, to);
	return 1;
}

int hpsi_replica_takeover(struct server *sv)
{
	int taken = 0;
	for (uint32_t k = 0; k < sv->nranges; k++) {
		struct range_state *rs = &sv->ranges[k];
		uint32_t i = held_index(sv, k);
		if (i == 0 || i == HPSI_NO_SERVER)
			continue;
		/* a range not copied whole yet stays without a server */
		if (rs->serving || !rs->synced ||
		    !failpoint_handback(sv, rs, i, hpsi_replica_earlier_gone(sv, rs, i)) ||
		    hpsi_recover_handed_back(sv, rs))
			continue;
		/* Their forwards are final: every one of them first. */
		int stuck = 0;
		for (uint32_t j = 0; j < i; j++)
			drain_from(sv, hpsi_replica(sv->seg, rs->id, j), &stuck);
		publish_acks(sv);
		if (stuck)
			continue; /* an answer ring is full: next round */
		for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
			struct peer *p = &rs->peers[wk];
			struct hpsi_ring *resp = hpsi_seg_ring(sv->seg, wk, rs->id, 1);
			/* acquire pairs with the dead primary's last release of its
			 * tail (pair A): the mark word stored before it is visible */
			uint32_t tail = atomic_load_explicit(&resp->tail, memory_order_acquire);
			p->answered = 0;
			for (unsigned k = 0; k < 2; k++) {
				uint64_t m = atomic_load_explicit(&resp->mark[k], memory_order_relaxed);
				if ((uint32_t)(m >> 32) == tail) {
					p->answered = (uint32_t)m;
					p->mark_word = k ^ 1; /* keep the word that holds */
				}
			}
			/* 0: nothing answered yet (or exactly 2^32 answers ago, when
			 * the last few might be answered twice) */
			p->adopted = p->answered != 0;
			hpsi_ring_cons_attach(&p->req, hpsi_seg_ring(sv->seg, wk, rs->id, 0), sv->seg->hdr->ring_bytes);
			p->reread_end = p->req.tail_cache; /* the tail, acquired by the attach (pair A) */
			p->rereading = 1;
			hpsi_ring_prod_attach(&p->resp, resp, sv->seg->hdr->ring_bytes);
			p->held = 0;
		}
		rs->serving = 1;
		rs->resent = sv->seg->hdr->bridged;
		rs->epoch++;
		hpsi_warn("server %u now serves key range %u: every replica before it is gone", sv->me, rs->id);
		taken++;
	}
	return taken;
}

int hpsi_replica_pending(struct server *sv)
{
	int room = hpsi_seg_room(sv->seg);
	for (uint32_t from = 0; room && from < sv->nservers; from++)
		if (from != sv->me && hpsi_ring_pending(sv->fwd_in[from].r))
			return 1;
	for (int j = -(int)sv->replicas; !room && j <= (int)sv->replicas; j++)
		if (j && hpsi_ring_pending(sv->fwd_in[neighbour(sv, j)].r))
			return 1;
	for (uint32_t k = 0; k < sv->nranges; k++) {
		uint32_t i = held_index(sv, k);
		if (i && i != HPSI_NO_SERVER && !sv->ranges[k].serving && sv->ranges[k].synced &&
		    hpsi_replica_earlier_gone(sv, &sv->ranges[k], i) && !hpsi_recover_handed_back(sv, &sv->ranges[k]))
			return 1;
	}
	return hpsi_recover_pending(sv);
}

void hpsi_replica_check_earlier(struct server *sv)
{
	if (hpsi_seg_room(sv->seg)) { /* the replicas before it of each range it backs up */
		for (uint32_t k = 0; k < sv->nranges; k++)
			for (uint32_t i = held_index(sv, k), j = 0; i != HPSI_NO_SERVER && j < i; j++)
				hpsi_node_check(sv->seg, hpsi_replica(sv->seg, sv->ranges[k].id, j));
		return;
	}
	for (uint32_t j = 1; j <= sv->replicas; j++)
		hpsi_node_check(sv->seg, neighbour(sv, -(int)j));
}
