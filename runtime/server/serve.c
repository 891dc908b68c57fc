/* Server: the requests of one served key range. Each worker's ring is
 * drained in order; consistency rules may hold its head request back; the
 * answer goes through the worker's answer ring of the range. With
 * replication a push is forwarded to the range's live backups before the
 * ring's head moves past it (replica.c). A full answer ring only skips
 * that worker for a round, so one slow or dead worker never stalls the
 * others. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "runtime/server/serve.h"
#include "runtime/server/server_stats.h"
#include "shm/wake.h"

#define BATCH 64 /* requests per worker per round */

uint32_t hpsi_serve_min_clock(struct server *sv, struct range_state *rs)
{
	if (rs->min_epoch != rs->epoch) {
		if (sv->any_vacant) {
			/* the server's half of the Dekker pair with a joiner
			 * (runtime/client/join.c): clocks consumed so far, then the
			 * membership epoch */
			atomic_thread_fence(memory_order_seq_cst);
			hpsi_members_look(sv);
		}
		uint32_t m = sv->join_pending ? 0 : UINT32_MAX;
		for (uint32_t wk = 0; wk < sv->nworkers; wk++)
			if (!sv->finished[wk] && rs->peers[wk].clock < m)
				m = rs->peers[wk].clock;
		rs->min_clock = m;
		rs->min_epoch = rs->epoch;
	}
	return rs->min_clock;
}

/* Deterministic BSP (HPS_DETERMINISTIC): the server applies clock c's
 * pushes only after every worker has read what it reads in clock c, and in
 * worker order, so the model does not depend on timing. A worker's
 * progress is its "phase" 2c (reading in clock c) or 2c+1 (writing in
 * clock c), from the messages that reached the head of its ring; a push
 * of worker wk at clock c waits until every other unfinished worker is at
 * phase >= 2c+1 and every lower-ranked one has moved past clock c. This
 * assumes the usual pull, compute, push, clock order within a clock.
 * Backups track the phases from the forwarded pushes and clocks, so a
 * backup that takes the range over continues the same order. */
static int push_must_wait(const struct server *sv, const struct range_state *rs, uint32_t wk, uint32_t clock)
{
	uint64_t writing = 2 * (uint64_t)clock + 1;
	for (uint32_t o = 0; o < sv->nworkers; o++) {
		const struct peer *q = &rs->peers[o];
		if (o == wk || sv->finished[o])
			continue;
		if (q->phase < writing || (o < wk && q->phase <= writing))
			return 1;
	}
	return 0;
}

void hpsi_serve_take_phase(struct range_state *rs, struct peer *p, const struct hpsi_msg_hdr *h)
{
	/* a CLOCK message opens clock c: reading again */
	uint64_t ph = 2 * (uint64_t)h->clock + (h->type != HPSI_MSG_PULL && h->type != HPSI_MSG_CLOCK);
	if (ph > p->phase) {
		p->phase = ph;
		rs->epoch++; /* held pushes look again */
	}
}

/* Takes the clock a message carries; a clock never goes backwards. */
int hpsi_serve_take_clock(struct range_state *rs, struct peer *p, uint32_t clock)
{
	if (clock < p->clock)
		return 0;
	if (clock > p->clock) {
		p->clock = clock;
		rs->epoch++;
	}
	return 1;
}

/* Answers a message that failed validation, when its header is readable
 * enough to name the request, so the worker gets an error, not a hang. */
static int answer_bad(struct peer *p, uint32_t me, const void *rec, size_t len)
{
	if (len < sizeof(struct hpsi_msg_hdr))
		return 1;
	const struct hpsi_msg_hdr *in = rec;
	if (in->magic != HPSI_MSG_MAGIC || in->type == HPSI_MSG_RESPONSE)
		return 1;
	struct hpsi_msg_hdr *out = hpsi_ring_reserve(&p->resp, sizeof *out);
	if (!out)
		return 0;
	hpsi_msg_init(out, HPSI_MSG_RESPONSE, me, in->timestamp);
	out->part = in->part;
	out->range = in->range;
	out->status = HPS_EPROTO;
	hpsi_ring_commit(&p->resp, sizeof *out);
	return 1;
}

int hpsi_serve_apply(struct server *sv, struct range_state *rs, hps_request *r, unsigned char *answer)
{
	int pull = r->type != HPS_REQ_PUSH;
	size_t wsz = hpsi_dtype_size(rs->wire), ssz = hpsi_dtype_size(rs->dtype);
	int packed = wsz != ssz; /* compressed range: the handler works on f32 in scratch */
	r->out = answer;
	if (packed) {
		size_t need = (r->nvals > r->out_cap ? r->nvals : r->out_cap) * 2;
		if (need > sv->scratch_len) {
			free(sv->scratch);
			sv->scratch_len = 0;
			if ((sv->scratch = malloc(need * sizeof(float))))
				sv->scratch_len = need;
		}
		if (!sv->scratch)
			return HPS_ENOMEM;
		hpsi_convert(sv->scratch, HPSI_WIRE_F32, r->vals, rs->wire, r->nvals);
		r->vals = sv->scratch;
		r->out = sv->scratch + r->nvals;
	}
	int64_t timed = hpsi_sstat_handler_begin(sv->stats);
	int rc = rs->handler(r, rs->arg);
	hpsi_sstat_handler_end(sv->stats, timed);
	if (rc >= 0 && pull && r->width && (size_t)rc != r->nkeys * r->width) {
		hpsi_warn("handler answered %d values for %zu keys x %u", rc, r->nkeys, r->width);
		rc = HPS_EHANDLER;
	}
	if (rc > 0 && pull && packed)
		hpsi_convert(answer, rs->wire, r->out, HPSI_WIRE_F32, (size_t)rc);
	return rc;
}

/* Forwards a clock to the backups, which track it for a takeover. */
static int forward_clock(struct server *sv, struct range_state *rs, const void *rec, size_t len)
{
	struct fwd_slots f;
	if (!sv->replicas)
		return SERVE_DONE;
	if (!hpsi_replica_reserve(sv, rs, len, &f))
		return SERVE_RETRY;
	hpsi_replica_forward(sv, &f, rec, len);
	return SERVE_DONE;
}

/* Handles one request; returns SERVE_RETRY when an answer or forward ring
 * is full (the request stays queued), SERVE_HELD when consistency holds
 * it back, SERVE_DONE when it was consumed. */
static int serve_one(struct server *sv, struct range_state *rs, struct peer *p, uint32_t wk, const void *rec,
		     size_t len)
{
	struct hpsi_msg_view v;
	const char *why;
	if (hpsi_msg_check(rec, len, &sv->heaps[wk], &v, &why) || v.hdr->type == HPSI_MSG_RESPONSE ||
	    v.hdr->sender != wk || v.hdr->range != rs->id || (v.hdr->flags & HPSI_F_REPLICA)) {
		hpsi_msg_count_bad(v.hdr ? "not a request of this worker for this key range" : why);
		hpsi_stat_error(sv->stats, HPS_EPROTO);
		return answer_bad(p, sv->me, rec, len);
	}
	const struct hpsi_msg_hdr *h = v.hdr;
	if (p->rereading && (int32_t)(p->reread_end - p->req.head) <= 0)
		p->rereading = 0;
	if (!hpsi_serve_take_clock(rs, p, h->clock) && !p->rereading && !rs->resent) {
		hpsi_msg_count_bad("clock went backwards");
		return h->type == HPSI_MSG_CLOCK ? SERVE_DONE : answer_bad(p, sv->me, rec, len);
	}
	if (rs->ordered)
		hpsi_serve_take_phase(rs, p, h);
	if (h->type == HPSI_MSG_CLOCK) {
		if (sv->die_at_clock && wk == sv->die_clock_worker && --sv->die_at_clock == 0) {
			hpsi_warn("HPS_FAILPOINT=clockdie: server %u exits with clock %u of worker %u not forwarded",
				  sv->me, h->clock, wk);
			_exit(99); /* (struct server) */
		}
		return forward_clock(sv, rs, rec, len);
	}
	/* Answered by the primary before this one: its pushes reached this
	 * server through the forwards it drained before taking over. */
	if (p->adopted && (int32_t)((uint32_t)(h->timestamp + 1) - p->answered) <= 0)
		return SERVE_DONE; /* (wraps: a ring holds far fewer than 2^31 requests) */
	int pull = h->type != HPSI_MSG_PUSH, lens = (h->flags & HPSI_F_LENS) != 0;
	/* SSP: a pull at clock c must include every update from clocks below
	 * c - s of every unfinished worker; FIFO rings mean that worker w has
	 * delivered them once it announced a clock >= c - s. */
	if (pull && rs->staleness >= 0 && h->clock > rs->staleness &&
	    hpsi_serve_min_clock(sv, rs) < h->clock - (uint32_t)rs->staleness)
		return SERVE_HELD;
	if (rs->ordered && h->type != HPSI_MSG_PULL && push_must_wait(sv, rs, wk, h->clock))
		return SERVE_HELD;
	hpsi_debug("%s of worker %u for key range %u: request %lld, %u keys, clock %u",
		   pull ? (h->type == HPSI_MSG_PULL ? "pull" : "pushpull") : "push", wk, rs->id, (long long)h->timestamp,
		   h->nkeys, h->clock);
	if (h->dtype != rs->wire) {
		hpsi_msg_count_bad("values of another type than this key range's");
		return answer_bad(p, sv->me, rec, len);
	}
	size_t wsz = hpsi_dtype_size(rs->wire);
	int in_buf = (h->flags & HPSI_F_HEAP_RESP) != 0;
	size_t inline_answer = pull && !in_buf ? (size_t)h->nkeys * h->width * wsz : 0;
	if (lens && pull && !in_buf)
		inline_answer = 0; /* no room to answer: refused below */
	if (inline_answer > sv->answer_max) {
		hpsi_msg_count_bad("answer too large to send inline");
		return answer_bad(p, sv->me, rec, len);
	}
	struct hpsi_msg_hdr *out = hpsi_ring_reserve(&p->resp, sizeof *out + inline_answer);
	if (!out)
		return SERVE_RETRY;
	struct fwd_slots f = {.n = 0, .mask = 0, .incarnations = 0};
	int pushes = h->type != HPSI_MSG_PULL;
	if (pushes && sv->replicas && !hpsi_replica_reserve(sv, rs, len, &f))
		return SERVE_RETRY;

	hps_request r = {.type = h->type, .sender = (int)h->sender, .timestamp = h->timestamp,
			 .width = h->width, .dtype = rs->dtype == HPSI_WIRE_F64 ? HPS_F64 : HPS_F32,
			 .nkeys = h->nkeys, .keys = v.keys, .lens = h->nlens ? v.lens : NULL, .vals = v.vals,
			 .nvals = h->val_bytes / wsz};
	/* A push this range already applied (resent, or re-read after a
	 * takeover) is answered, not applied again. */
	int seen = pushes && h->timestamp <= p->last_seq;
	if (seen && h->type == HPSI_MSG_PUSHPULL) {
		r.type = HPS_REQ_PULL;
		r.vals = NULL;
		r.nvals = 0;
	}
	unsigned char *answer = NULL; /* where the answer goes, in the wire type */
	int status = 0;
	if (pull && in_buf && lens) {
		size_t lb = hpsi_lens_bytes(h->nkeys);
		if (h->resp_cap < lb) {
			status = HPS_EPROTO;
		} else {
			r.out_lens = (uint32_t *)v.resp;
			answer = v.resp + lb;
			r.out_cap = (h->resp_cap - lb) / wsz;
		}
	} else if (pull && in_buf) {
		answer = v.resp;
		r.out_cap = h->resp_cap / wsz;
	} else if (pull) {
		answer = (unsigned char *)(out + 1);
		r.out_cap = inline_answer / wsz;
		if (lens)
			status = HPS_EPROTO;
	}
	if (pull)
		hpsi_sstat_stale(sv->seg, sv->me, wk, h->clock, hpsi_serve_min_clock(sv, rs));
	int rc = status;
	if (!rc && !(seen && h->type == HPSI_MSG_PUSH))
		rc = hpsi_serve_apply(sv, rs, &r, answer);
	if (pushes && !seen)
		p->last_seq = h->timestamp;
	if (pushes && !seen && rs->sync)
		hpsi_recover_dirty(rs, v.keys, h->nkeys); /* copied again to a replacement */
	if (f.n)
		hpsi_replica_forward(sv, &f, rec, len);
	hpsi_msg_init(out, HPSI_MSG_RESPONSE, sv->me, h->timestamp);
	out->part = h->part;
	out->range = (uint16_t)rs->id;
	out->fwd_mask = f.mask;
	out->fwd_incarnations = f.incarnations;
	out->dtype = (uint8_t)rs->wire;
	out->flags = (uint16_t)(h->flags & (HPSI_F_LENS | (pull ? HPSI_F_HEAP_RESP : 0)));
	out->resp_off = out->flags & HPSI_F_HEAP_RESP ? h->resp_off : 0;
	out->resp_cap = out->flags & HPSI_F_HEAP_RESP ? h->resp_cap : 0;
	out->status = rc < 0 ? rc : 0;
	out->val_bytes = rc > 0 && pull ? (uint64_t)rc * wsz : 0;
	if (lens && pull && rc >= 0)
		out->nlens = h->nkeys;
	if (!in_buf && out->val_bytes != inline_answer) {
		out->val_bytes = 0; /* an error: no values follow */
		out->nlens = 0;
	}
	hpsi_ring_commit(&p->resp, sizeof *out + (in_buf ? 0 : out->val_bytes));
	p->answered = (uint32_t)(h->timestamp + 1);
	hpsi_sstat_answered(sv->stats, h, out);
	return SERVE_DONE;
}

void hpsi_serve_stop(struct server *sv, struct range_state *rs)
{
	rs->serving = 0;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &rs->peers[wk];
		if (p->held)
			hpsi_sstat_unhold(sv->stats, p->held_since);
		p->held = 0;
	}
}

void hpsi_serve_publish_answers(struct peer *p)
{
	/* relaxed: published by the release of the tail just below (pair A);
	 * alternate words, so that the one for the tail last published stays
	 * whole if this process dies between the two stores */
	uint64_t v = (uint64_t)p->resp.tail << 32 | p->answered;
	atomic_store_explicit(&p->resp.r->mark[p->mark_word], v, memory_order_relaxed);
	p->mark_word ^= 1;
	hpsi_ring_publish(&p->resp);
}

int hpsi_serve_round(struct server *sv, struct range_state *rs)
{
	int total = 0;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &rs->peers[wk];
		if (sv->finished[wk])
			continue;
		int n = 0;
		size_t len;
		void *rec;
		while (n < BATCH && (rec = hpsi_ring_peek(&p->req, &len))) {
			if (!n)
				hpsi_stat_max(&sv->stats->ring_hwm, p->req.tail_cache - p->req.head);
			int r = serve_one(sv, rs, p, wk, rec, len);
			if (r == SERVE_HELD && !p->held)
				p->held_since = hpsi_sstat_hold(sv->stats);
			if (r == SERVE_DONE && p->held)
				hpsi_sstat_unhold(sv->stats, p->held_since);
			if (r == SERVE_HELD) {
				if (!p->held)
					hpsi_debug("request %lld of worker %u held: clock %u waits for slower workers",
						   (long long)((const struct hpsi_msg_hdr *)rec)->timestamp, wk,
						   ((const struct hpsi_msg_hdr *)rec)->clock);
				p->held = 1;
				p->held_head = p->req.head;
				p->held_epoch = rs->epoch;
			}
			if (r != SERVE_DONE)
				break;
			p->held = 0;
			hpsi_ring_consume(&p->req, len);
			n++;
		}
		if (n) {
			/* Forwards and answers are published before the requests are
			 * released: a backup taking the ring over re-reads exactly
			 * those whose forwards and answers may be lost. */
			hpsi_replica_publish(sv);
			hpsi_serve_publish_answers(p);
			if (sv->die_in_batch && --sv->die_in_batch == 0)
				_exit(99);
			hpsi_ring_cons_publish(&p->req);
			hpsi_node_wake(sv->seg, hpsi_worker_node(sv->seg, wk));
			hpsi_replica_wake(sv);
			total += n;
		}
	}
	return total;
}
