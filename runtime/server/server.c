/* Server: drains the request ring of every worker, runs the handler, and
 * answers through the worker's response ring. Single-threaded: the handler
 * needs no locks. A full response ring only skips that worker for a round,
 * so one slow or dead worker never stalls the others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/hps.h"
#include "net/codec.h"
#include "runtime/common/dtype.h"
#include "runtime/common/config.h"
#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "shm/wake.h"
#include "runtime/server/checkpoint.h"
#include "runtime/server/store.h"

#define BATCH 64                  /* requests per worker per round */
#define IDLE_SLEEP_NS 100000000   /* liveness checks while idle */

struct peer {
	struct hpsi_ring_cons req;
	struct hpsi_ring_prod resp;
	struct hpsi_msg_bounds heap; /* the worker's heap slice */
	int finished;
	uint32_t clock;      /* the worker's clock as last announced */
	uint64_t phase;      /* deterministic BSP: see push_must_wait */
	/* The head request is a pull held back for staleness; it stays in the
	 * ring (so nothing behind it overtakes it) until the clocks move. */
	int held;
	uint32_t held_head;
	uint64_t held_epoch;
};

struct server {
	hps_ctx *ctx;
	struct hpsi_seg *seg;
	uint32_t nworkers, me;
	struct peer *peers;
	hps_handler handler;
	void *arg;
	size_t answer_max; /* largest inline answer */
	int64_t staleness; /* HPS_STALENESS of this key range; -1: unbounded (ASP) */
	int ordered;       /* HPS_DETERMINISTIC under BSP: each clock's pushes in worker order */
	uint64_t epoch;    /* bumped whenever a clock moves or a worker finishes */
	uint64_t min_epoch;
	uint32_t min_clock; /* smallest clock of the unfinished workers at min_epoch */
	struct hpsi_store *store; /* the built-in store, NULL with a user handler */
	unsigned dtype, wire;     /* this key range's stored and ring value types */
	float *scratch;           /* f32 values of a compressed request */
	size_t scratch_len;
	uint32_t ckpt_seen;       /* last checkpoint request served */
};

enum { SERVE_RETRY = 0, SERVE_DONE = 1, SERVE_HELD = 2 };

static uint32_t min_clock(struct server *sv)
{
	if (sv->min_epoch != sv->epoch) {
		uint32_t m = UINT32_MAX;
		for (uint32_t wk = 0; wk < sv->nworkers; wk++)
			if (!sv->peers[wk].finished && sv->peers[wk].clock < m)
				m = sv->peers[wk].clock;
		sv->min_clock = m;
		sv->min_epoch = sv->epoch;
	}
	return sv->min_clock;
}

/* Deterministic BSP (HPS_DETERMINISTIC): the server applies clock c's
 * pushes only after every worker has read what it reads in clock c, and in
 * worker order, so the model does not depend on timing. A worker's
 * progress is its "phase" 2c (reading in clock c) or 2c+1 (writing in
 * clock c), from the messages that reached the head of its ring; a push
 * of worker wk at clock c waits until every other unfinished worker is at
 * phase >= 2c+1 and every lower-ranked one has moved past clock c. This
 * assumes the usual pull, compute, push, clock order within a clock. */
static int push_must_wait(const struct server *sv, uint32_t wk, uint32_t clock)
{
	uint64_t writing = 2 * (uint64_t)clock + 1;
	for (uint32_t o = 0; o < sv->nworkers; o++) {
		const struct peer *q = &sv->peers[o];
		if (o == wk || q->finished)
			continue;
		if (q->phase < writing || (o < wk && q->phase <= writing))
			return 1;
	}
	return 0;
}

/* Records the phase of a message at the head of a worker's ring. */
static void take_phase(struct server *sv, struct peer *p, const struct hpsi_msg_hdr *h)
{
	/* a CLOCK message opens clock c: reading again */
	uint64_t ph = 2 * (uint64_t)h->clock + (h->type != HPSI_MSG_PULL && h->type != HPSI_MSG_CLOCK);
	if (ph > p->phase) {
		p->phase = ph;
		sv->epoch++; /* held pushes look again */
	}
}

/* Takes the clock a message carries; a clock never goes backwards. */
static int take_clock(struct server *sv, struct peer *p, uint32_t clock)
{
	if (clock < p->clock)
		return 0;
	if (clock > p->clock) {
		p->clock = clock;
		sv->epoch++;
	}
	return 1;
}

/* Answers a message that failed validation, when its header is readable
 * enough to name the request, so the worker gets an error, not a hang. */
static int answer_bad(struct server *sv, struct peer *p, const void *rec, size_t len)
{
	if (len < sizeof(struct hpsi_msg_hdr))
		return 1;
	const struct hpsi_msg_hdr *in = rec;
	if (in->magic != HPSI_MSG_MAGIC || in->type == HPSI_MSG_RESPONSE)
		return 1;
	struct hpsi_msg_hdr *out = hpsi_ring_reserve(&p->resp, sizeof *out);
	if (!out)
		return 0;
	hpsi_msg_init(out, HPSI_MSG_RESPONSE, sv->me, in->timestamp);
	out->part = in->part;
	out->status = HPS_EPROTO;
	hpsi_ring_commit(&p->resp, sizeof *out);
	return 1;
}

/* Handles one request; returns 0 when the response ring is full (retry
 * later, the request stays queued), 1 when the request was consumed. */
static int serve_one(struct server *sv, struct peer *p, uint32_t wk, const void *rec, size_t len)
{
	struct hpsi_msg_view v;
	const char *why;
	if (hpsi_msg_check(rec, len, &p->heap, &v, &why) || v.hdr->type == HPSI_MSG_RESPONSE ||
	    v.hdr->sender != wk) {
		hpsi_msg_count_bad(v.hdr ? "not a request of this worker" : why);
		return answer_bad(sv, p, rec, len);
	}
	const struct hpsi_msg_hdr *h = v.hdr;
	if (!take_clock(sv, p, h->clock)) {
		hpsi_msg_count_bad("clock went backwards");
		return h->type == HPSI_MSG_CLOCK ? SERVE_DONE : answer_bad(sv, p, rec, len);
	}
	if (sv->ordered)
		take_phase(sv, p, h);
	if (h->type == HPSI_MSG_CLOCK)
		return SERVE_DONE;
	int pull = h->type != HPSI_MSG_PUSH, lens = (h->flags & HPSI_F_LENS) != 0;
	/* SSP: a pull at clock c must include every update from clocks below
	 * c - s of every unfinished worker; FIFO rings mean that worker w has
	 * delivered them once it announced a clock >= c - s. */
	if (pull && sv->staleness >= 0 && h->clock > sv->staleness &&
	    min_clock(sv) < h->clock - (uint32_t)sv->staleness)
		return SERVE_HELD;
	if (sv->ordered && h->type != HPSI_MSG_PULL && push_must_wait(sv, wk, h->clock))
		return SERVE_HELD;
	hpsi_debug("%s of worker %u: request %lld, %u keys, clock %u", pull ? (h->type == HPSI_MSG_PULL ? "pull" : "pushpull") : "push",
		   wk, (long long)h->timestamp, h->nkeys, h->clock);
	if (h->dtype != sv->wire) {
		hpsi_msg_count_bad("values of another type than this key range's");
		return answer_bad(sv, p, rec, len);
	}
	size_t wsz = hpsi_dtype_size(sv->wire), ssz = hpsi_dtype_size(sv->dtype);
	int in_buf = (h->flags & HPSI_F_HEAP_RESP) != 0;
	size_t inline_answer = pull && !in_buf ? (size_t)h->nkeys * h->width * wsz : 0;
	if (lens && pull && !in_buf)
		inline_answer = 0; /* no room to answer: refused below */
	if (inline_answer > sv->answer_max) {
		hpsi_msg_count_bad("answer too large to send inline");
		return answer_bad(sv, p, rec, len);
	}
	struct hpsi_msg_hdr *out = hpsi_ring_reserve(&p->resp, sizeof *out + inline_answer);
	if (!out)
		return 0;

	hps_request r = {.type = h->type, .sender = (int)h->sender, .timestamp = h->timestamp,
			 .width = h->width, .dtype = sv->dtype == HPSI_WIRE_F64 ? HPS_F64 : HPS_F32,
			 .nkeys = h->nkeys, .keys = v.keys, .lens = h->nlens ? v.lens : NULL, .vals = v.vals,
			 .nvals = h->val_bytes / wsz};
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
	r.out = answer;
	/* Compressed key ranges: the handler works on f32 in a scratch buffer. */
	int packed = wsz != ssz;
	if (packed && !status) {
		size_t need = (r.nvals > r.out_cap ? r.nvals : r.out_cap) * 2;
		if (need > sv->scratch_len) {
			free(sv->scratch);
			sv->scratch_len = 0;
			if ((sv->scratch = malloc(need * sizeof(float))))
				sv->scratch_len = need;
		}
		if (!sv->scratch) {
			status = HPS_ENOMEM;
		} else {
			hpsi_convert(sv->scratch, HPSI_WIRE_F32, v.vals, sv->wire, r.nvals);
			r.vals = sv->scratch;
			r.out = sv->scratch + r.nvals;
		}
	}
	int rc = status ? status : sv->handler(&r, sv->arg);
	if (rc >= 0 && pull && !lens && (size_t)rc != (size_t)h->nkeys * h->width) {
		hpsi_warn("handler answered %d values for %u keys x %u", rc, h->nkeys, h->width);
		rc = HPS_EHANDLER;
	}
	if (rc > 0 && pull && packed)
		hpsi_convert(answer, sv->wire, r.out, HPSI_WIRE_F32, (size_t)rc);
	hpsi_msg_init(out, HPSI_MSG_RESPONSE, sv->me, h->timestamp);
	out->part = h->part;
	out->dtype = (uint8_t)sv->wire;
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
	return 1;
}

/* One pass over the workers; returns requests handled. */
static int serve_round(struct server *sv)
{
	int total = 0;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &sv->peers[wk];
		if (p->finished)
			continue;
		int n = 0;
		size_t len;
		void *rec;
		while (n < BATCH && (rec = hpsi_ring_peek(&p->req, &len))) {
			int r = serve_one(sv, p, wk, rec, len);
			if (r == SERVE_HELD) {
				if (!p->held)
					hpsi_debug("request %lld of worker %u held: clock %u waits for slower workers",
						   (long long)((const struct hpsi_msg_hdr *)rec)->timestamp, wk,
						   ((const struct hpsi_msg_hdr *)rec)->clock);
				p->held = 1;
				p->held_head = p->req.head;
				p->held_epoch = sv->epoch;
			}
			if (r != SERVE_DONE)
				break;
			p->held = 0;
			hpsi_ring_consume(&p->req, len);
			n++;
		}
		if (n) {
			hpsi_ring_cons_publish(&p->req);
			hpsi_ring_publish(&p->resp);
			hpsi_node_wake(sv->seg, hpsi_worker_node(sv->seg, wk));
			total += n;
		}
	}
	return total;
}

/* Marks workers that closed or died; returns 1 once all have. */
static int all_finished(struct server *sv)
{
	int all = 1;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &sv->peers[wk];
		if (p->finished)
			continue;
		uint32_t st = hpsi_node_check(sv->seg, hpsi_worker_node(sv->seg, wk));
		/* A closed worker waited for all its answers: its ring is empty. */
		if (st == HPSI_NODE_DEAD || (st == HPSI_NODE_CLOSED && !hpsi_ring_nonempty(&p->req))) {
			hpsi_info(st == HPSI_NODE_DEAD ? "worker %u died: its requests are dropped, its clock holds back no pull"
						       : "worker %u closed: it holds back no pull",
				  wk);
			p->finished = 1;
			sv->epoch++; /* it no longer holds back anyone's pulls */
		} else
			all = 0;
	}
	return all;
}

static int requests_waiting(void *arg)
{
	struct server *sv = arg;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
		struct peer *p = &sv->peers[wk];
		int blocked = p->held && p->held_head == p->req.head && p->held_epoch == sv->epoch;
		if (!p->finished && !blocked && hpsi_ring_nonempty(&p->req))
			return 1;
	}
	/* acquires pair with the launcher's release of shutdown and
	 * hpsi_checkpoint_run's release of ckpt_seq */
	return atomic_load_explicit(&sv->seg->hdr->shutdown, memory_order_acquire) != 0 ||
	       atomic_load_explicit(&sv->seg->hdr->ckpt_seq, memory_order_acquire) != sv->ckpt_seen;
}

/* This server's part of a checkpoint (runtime/checkpoint.c): between two
 * requests, so it sees every request it answered before. A load builds a
 * new table and swaps it in only when every file was read whole. */
static int serve_round(struct server *sv);

/* Serves what every worker had published when the checkpoint was asked
 * for (its last pushes and clocks), so a caller that waited for its
 * pushes and passed a barrier finds them all in the checkpoint. */
static void drain_published(struct server *sv)
{
	uint32_t *target = malloc(sv->nworkers * sizeof *target);
	if (!target)
		return;
	for (uint32_t wk = 0; wk < sv->nworkers; wk++)
		target[wk] = atomic_load_explicit(&sv->peers[wk].req.r->tail, memory_order_acquire); /* ring (A) */
	for (;;) {
		int behind = 0;
		for (uint32_t wk = 0; wk < sv->nworkers; wk++) {
			struct peer *p = &sv->peers[wk];
			behind |= !p->finished && !p->held && (int32_t)(target[wk] - p->req.head) > 0;
		}
		if (!behind || !serve_round(sv))
			break; /* done, or no progress (held pull, full answer ring) */
	}
	free(target);
}

static void serve_checkpoint(struct server *sv)
{
	struct hpsi_seg_hdr *h = sv->seg->hdr;
	drain_published(sv);
	uint32_t me = sv->ctx->node, clock = 0;
	char why[HPSI_CKPT_WHY] = "";
	int rc;
	if (!sv->store) {
		snprintf(why, sizeof why, "server %u runs a user handler, which keeps its own state", me);
		rc = HPS_EINVAL;
	} else if (h->ckpt_op == HPSI_CKPT_SAVE) {
		clock = sv->nworkers ? min_clock(sv) : 0;
		if (clock == UINT32_MAX)
			clock = 0;
		rc = hpsi_store_save(sv->store, h->ckpt_dir, me, h->nservers, clock, why);
	} else {
		/* loaded aside, so that a bad file leaves the table as it was */
		struct hpsi_store *fresh = hpsi_store_create_like(sv->store);
		rc = fresh ? hpsi_store_load(fresh, h->ckpt_dir, sv->seg, me, &clock, why) : HPS_ENOMEM;
		if (rc) {
			hpsi_store_destroy(fresh);
		} else if (hpsi_store_is_direct(sv->store)) {
			rc = hpsi_store_direct_commit(sv->store, fresh);
			hpsi_store_destroy(fresh);
		} else {
			hpsi_store_destroy(sv->store);
			sv->store = fresh;
			sv->arg = fresh;
		}
	}
	if (!rc) /* before it is served: the next request may rewrite ckpt_dir */
		hpsi_info("checkpoint: server %u %s %s (clock %u)", me,
			  h->ckpt_op == HPSI_CKPT_SAVE ? "saved its table into" : "loaded its table from", h->ckpt_dir, clock);
	hpsi_checkpoint_served(sv->seg, rc, why, clock);
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

int hps_server_run(hps_ctx *ctx, hps_handler handler, void *arg)
{
	int rc0 = hpsi_ctx_check(ctx);
	if (rc0)
		return rc0;
	if (ctx->cfg.role != HPS_ROLE_SERVER)
		return HPS_EINVAL;
	struct hpsi_seg *seg = &ctx->seg;
	struct server sv = {.ctx = ctx, .seg = seg, .nworkers = seg->hdr->nworkers, .me = ctx->node,
			    .handler = handler, .arg = arg};
	struct hpsi_store *store = NULL;
	if (!handler) {
		struct hpsi_updater upd;
		struct hpsi_init init;
		int rc = hpsi_server_store_config(ctx->cfg.rank, &upd, &init);
		if (rc)
			return rc;
		const struct hpsi_range *rg = &hpsi_seg_ranges(seg)[ctx->node];
		if (rg->direct_width)
			store = hpsi_store_create_direct(&upd, &init, rg->first, rg->last - rg->first + 1,
							 rg->direct_width, (float *)(seg->base + rg->direct_off));
		else
			store = hpsi_store_create(&upd, &init, rg->dtype);
		if (!store)
			return rg->direct_width ? HPS_ECONFIG : HPS_ENOMEM;
		/* workers acquire this before they touch the array (hps_direct_map) */
		if (rg->direct_width)
			atomic_store_explicit(&((struct hpsi_range *)rg)->direct_ready, 1, memory_order_release);
		sv.handler = hpsi_store_handle;
		sv.arg = store;
	}
	sv.answer_max = hpsi_ring_max_payload(seg->hdr->ring_bytes) - sizeof(struct hpsi_msg_hdr);
	if (hpsi_server_staleness(ctx->cfg.rank, &sv.staleness)) {
		hpsi_store_destroy(store);
		return HPS_ECONFIG;
	}
	int det;
	if (hpsi_config_deterministic(&det)) {
		hpsi_store_destroy(store);
		return HPS_ECONFIG;
	}
	sv.ordered = sv.staleness == 0 && det;
	sv.min_epoch = UINT64_MAX;
	if (!(sv.peers = calloc(sv.nworkers, sizeof *sv.peers))) {
		hpsi_store_destroy(store);
		return HPS_ENOMEM;
	}
	for (uint32_t wk = 0; wk < sv.nworkers; wk++) {
		struct peer *p = &sv.peers[wk];
		hpsi_ring_cons_attach(&p->req, hpsi_seg_ring(seg, wk, sv.me, 0), seg->hdr->ring_bytes);
		hpsi_ring_prod_attach(&p->resp, hpsi_seg_ring(seg, wk, sv.me, 1), seg->hdr->ring_bytes);
		uint64_t lo = seg->hdr->heap_off + (uint64_t)wk * seg->hdr->heap_slice;
		p->heap = (struct hpsi_msg_bounds){seg->base, lo, lo + seg->hdr->heap_slice};
	}
	struct hpsi_bell *bell = &hpsi_seg_node(seg, ctx->node)->bell;
	int64_t spin_until = hpsi_now_ns() + ctx->spin_ns;
	uint32_t steps = 0;
	sv.store = store;
	sv.dtype = hpsi_seg_ranges(seg)[ctx->node].dtype;
	sv.wire = hpsi_seg_ranges(seg)[ctx->node].wire;
	sv.ckpt_seen = 0; /* a request made before this server started still counts */
	hpsi_info("server %d serves %u workers with %s; staleness %s%s", ctx->cfg.rank, sv.nworkers,
		  handler ? "a user handler" : "the built-in store", sv.staleness < 0 ? "asp" : sv.staleness == 0 ? "bsp" : "ssp",
		  sv.ordered ? " (deterministic)" : "");
	for (;;) {
		/* pairs with hpsi_checkpoint_run's release: ckpt_op and ckpt_dir are set */
		uint32_t ck = atomic_load_explicit(&seg->hdr->ckpt_seq, memory_order_acquire);
		if (ck != sv.ckpt_seen) {
			sv.ckpt_seen = ck;
			serve_checkpoint(&sv);
		}
		if (serve_round(&sv)) {
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
		hpsi_bell_sleep(bell, requests_waiting, &sv, IDLE_SLEEP_NS);
		spin_until = hpsi_now_ns() + ctx->spin_ns;
	}
	hpsi_info("server %d stops serving: every worker has finished, or the job shuts down", ctx->cfg.rank);
	free(sv.peers);
	free(sv.scratch);
	hpsi_store_destroy(sv.store);
	return 0;
}
