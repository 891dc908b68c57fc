/* Worker: opening and closing, the response path, waiting. Requests are
 * built in runtime/request.c. */
#include "runtime/client/worker.h"
#include "runtime/client/worker_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/route.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"

#define SLEEP_SLICE_NS 10000000 /* liveness and deadline checks while asleep */

static void free_part_buffers(struct hps_worker *w, struct hpsi_part *p)
{
	hpsi_heap_free(w->heap, p->keys_buf);
	hpsi_heap_free(w->heap, p->vals_buf);
	hpsi_heap_free(w->heap, p->resp_buf);
	p->keys_buf = p->vals_buf = p->resp_buf = NULL;
}

static void set_status(struct hpsi_slot *s, int status)
{
	if (status && !s->status)
		s->status = status;
}

/* Publishes a request's completion to waiters; under poll_lock. */
static void finish_slot(struct hps_worker *w, struct hpsi_slot *s)
{
	if (atomic_load_explicit(&s->done, memory_order_relaxed))
		return;
	if (s->cb) {
		/* Grows: a thread inside submit queues callbacks without running them. */
		if (w->ncb == w->cb_cap) {
			size_t cap = w->cb_cap ? w->cb_cap * 2 : 64;
			struct hpsi_cb *q = realloc(w->cbq, cap * sizeof *q);
			if (q)
				w->cbq = q, w->cb_cap = cap;
		}
		if (w->ncb < w->cb_cap)
			w->cbq[w->ncb++] = (struct hpsi_cb){s->cb, s->cb_arg,
							    atomic_load_explicit(&s->ts, memory_order_relaxed), s->status};
		else
			hpsi_error("out of memory: callback of request %lld dropped",
				   (long long)atomic_load_explicit(&s->ts, memory_order_relaxed)); /* only printed */
	}
	hpsi_wstat_done(w, s->status);
	atomic_store_explicit(&s->done, 1, memory_order_release); /* pairs with hps_wait's acquire */
	hpsi_debug("request %lld done: %s", (long long)atomic_load_explicit(&s->ts, memory_order_relaxed), /* only printed */
		   s->status ? hps_strerror(s->status) : "ok");
}

/* Variable-length pull: every part's answer is in its heap buffer as
 * lens|values (wire type); lay them out in key order, in the caller's type. */
static int assemble_lens(struct hpsi_slot *s)
{
	size_t n = s->nkeys, usz = hpsi_dtype_size(s->udt);
	uint64_t *off = malloc((n + 1) * sizeof *off);
	uint32_t *own_lens = s->out_lens ? NULL : malloc(n * sizeof *own_lens);
	if (!off || (!s->out_lens && !own_lens)) {
		free(off);
		free(own_lens);
		return HPS_ENOMEM;
	}
	if (own_lens)
		s->out_lens = own_lens;
	for (uint32_t i = 0; i < s->nparts; i++) {
		struct hpsi_part *p = &s->parts[i];
		const uint32_t *lens = p->resp_buf;
		for (uint32_t j = 0; j < p->count; j++)
			s->out_lens[s->idx ? s->idx[p->begin + j] : p->begin + j] = lens[j];
	}
	off[0] = 0;
	for (size_t k = 0; k < n; k++)
		off[k + 1] = off[k] + s->out_lens[k];
	int rc = 0;
	if (off[n] > s->out_cap) {
		hpsi_error("pull answer has %llu values but vals_cap is %zu", (unsigned long long)off[n], s->out_cap);
		rc = HPS_EINVAL;
	}
	for (uint32_t i = 0; i < s->nparts && !rc; i++) {
		struct hpsi_part *p = &s->parts[i];
		size_t wsz = hpsi_dtype_size(p->wire);
		const unsigned char *src = (const unsigned char *)p->resp_buf + hpsi_lens_bytes(p->count);
		for (uint32_t j = 0; j < p->count; j++) {
			size_t k = s->idx ? s->idx[p->begin + j] : p->begin + j;
			hpsi_convert(s->out + off[k] * usz, s->udt, src, p->wire, s->out_lens[k]);
			src += s->out_lens[k] * wsz;
		}
	}
	free(off);
	if (own_lens) {
		free(own_lens);
		s->out_lens = NULL;
	}
	return rc;
}

/* Copies a fixed-width answer of one part into the caller's buffer,
 * converting from the wire type. */
static void scatter_fixed(struct hpsi_slot *s, struct hpsi_part *p, const unsigned char *src)
{
	size_t wd = s->width, usz = hpsi_dtype_size(s->udt), wsz = hpsi_dtype_size(p->wire);
	if (!s->idx) {
		hpsi_convert(s->out + (size_t)p->begin * wd * usz, s->udt, src, p->wire, (size_t)p->count * wd);
		return;
	}
	const uint32_t *idx = s->idx + p->begin;
	if (wd == 1 && p->wire == HPSI_WIRE_F32 && s->udt == HPSI_WIRE_F32) {
		float *out = (float *)s->out;
		const float *in = (const float *)src;
		for (uint32_t j = 0; j < p->count; j++)
			out[idx[j]] = in[j];
		return;
	}
	for (uint32_t j = 0; j < p->count; j++)
		hpsi_convert(s->out + idx[j] * wd * usz, s->udt, src + j * wd * wsz, p->wire, wd);
}

/* The last reference is gone: answer the caller and free the slot. A
 * variable-length pull kept every part's answer buffer until now. Under
 * poll_lock. */
static void complete_slot(struct hps_worker *w, struct hpsi_slot *s)
{
	int lens_pull = s->width == 0 && s->type != HPS_REQ_PUSH;
	if (lens_pull && !s->status && !s->abandoned)
		set_status(s, assemble_lens(s));
	for (uint32_t i = 0; lens_pull && i < s->nparts; i++)
		free_part_buffers(w, &s->parts[i]);
	free(s->idx);
	s->idx = NULL;
	if (!s->abandoned)
		finish_slot(w, s);
	atomic_store_explicit(&s->in_use, 0, memory_order_release); /* pairs with slot_free's acquire */
}

static void slot_unref(struct hps_worker *w, struct hpsi_slot *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		complete_slot(w, s);
}

/* One part is over (answered, its server is gone, or it could not be
 * sent). Under poll_lock, which orders every move to DONE: relaxed
 * suffices for the exchange; a second completion finds DONE and does
 * nothing, so the slot's reference is dropped once. */
static void part_done(struct hps_worker *w, struct hpsi_slot *s, struct hpsi_part *p, int status)
{
	if (atomic_exchange_explicit(&p->state, HPSI_PART_DONE, memory_order_relaxed) == HPSI_PART_DONE)
		return;
	set_status(s, status);
	if (!(s->width == 0 && s->type != HPS_REQ_PUSH))
		free_part_buffers(w, p);
	slot_unref(w, s);
}

void hpsi_worker_sent(struct hps_worker *w, struct hpsi_slot *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		pthread_mutex_lock(&w->poll_lock);
		complete_slot(w, s);
		pthread_mutex_unlock(&w->poll_lock);
	}
}

/* Whether replica i of part p's range still is the process its primary
 * forwarded the push to: running, and not replaced since. */
static int forwarded_replica_runs(const struct hps_worker *w, const struct hpsi_part *p, uint32_t i)
{
	/* with room the answer names the rank (one backup: the high half),
	 * since a scale may move the backup after the forward */
	uint32_t b = hpsi_seg_room(w->seg) ? p->forwarded_incarnations >> 16 : hpsi_replica(w->seg, p->server, i);
	if (b >= w->nservers)
		return 0;
	if (hpsi_server_gone(w->seg, b)) /* acquires the state: the incarnation below is its */
		return 0;
	uint32_t inc = atomic_load_explicit(&hpsi_seg_node(w->seg, b)->incarnation, memory_order_relaxed);
	return (inc & 0xffu) == ((p->forwarded_incarnations >> (8 * i)) & 0xffu);
}

/* Replication: a push part is done once its primary answered and every
 * replica it forwarded the push to applied it, unless that one is gone or
 * was replaced (every replica dead fails the part in check_peers). Only
 * those the primary names: a replacement joining meanwhile was not
 * forwarded it. */
static void part_maybe_done(struct hps_worker *w, struct hpsi_slot *s, struct hpsi_part *p)
{
	if (!p->answered)
		return;
	/* across hosts a forward may arrive after the answer: every ack counts */
	if (p->heap_body || w->seg->hdr->bridged)
		for (uint32_t i = 1; i <= w->seg->hdr->replicas; i++)
			if ((p->forwarded & (1u << i)) && !(p->applied & (1u << i)) && forwarded_replica_runs(w, p, i))
				return;
	part_done(w, s, p, 0);
}

/* With room, whether a backup's ack of part p counts: only the rank the
 * primary forwarded the push to (its answer names it) counts. An ack
 * before the answer is remembered by rank (early_acks) and counted once
 * the answer names that rank (room_answer_acks). Under poll_lock. */
static int room_ack_counts(struct hpsi_part *p, uint32_t sender, int status)
{
	if (p->answered) {
		if ((p->forwarded & 2u) && sender == p->forwarded_incarnations >> 16)
			return 1;
		hpsi_msg_count_bad("replica answer from a backup the primary did not forward the push to");
		return 0;
	}
	for (int k = 0; k < 2; k++) {
		if (p->early_acks[k] == sender + 1)
			return 0;
		if (!p->early_acks[k]) {
			p->early_acks[k] = (uint16_t)(sender + 1);
			p->early_status[k] = status;
			return 0;
		}
	}
	hpsi_msg_count_bad("replica answers of a push from more than two backups");
	return 0;
}

/* With room, the primary's answer names the one backup it forwarded the
 * push to: an ack of that rank that came before counts now. */
static void room_answer_acks(struct hpsi_slot *s, struct hpsi_part *p)
{
	uint32_t named = p->forwarded_incarnations >> 16;
	for (int k = 0; k < 2; k++)
		if ((p->forwarded & 2u) && p->early_acks[k] == named + 1) {
			set_status(s, p->early_status[k]);
			p->applied |= 2u;
		}
}

/* A backup applied a push (HPSI_F_REPLICA): it answers on its own ring. */
static void handle_replica_ack(struct hps_worker *w, uint32_t ring, const struct hpsi_msg_hdr *h)
{
	struct hpsi_slot *s = &w->slots[(uint64_t)h->timestamp & (HPSI_MAX_INFLIGHT - 1)];
	uint32_t i = h->range < w->nservers ? hpsi_replica_index(w->seg, h->range, h->sender) : HPSI_NO_SERVER;
	/* With room there is one backup, and it acknowledges on the ring of a
	 * range it serves (runtime/server/replica.c); the table may name
	 * another backup by now: the part's answer says which one it waits for */
	int room = hpsi_seg_room(w->seg) && h->range < w->nservers && h->sender < w->nservers;
	if (room)
		i = 1;
	/* acquire pairs with send_part's release of SENT; a part done since
	 * (a late ack after a takeover) takes nothing */
	if (h->timestamp < 0 || atomic_load_explicit(&s->ts, memory_order_acquire) != h->timestamp ||
	    h->part >= s->nparts ||
	    atomic_load_explicit(&s->parts[h->part].state, memory_order_acquire) != HPSI_PART_SENT)
		return;
	struct hpsi_part *p = &s->parts[h->part];
	if (i == HPSI_NO_SERVER || i == 0 || (!room && ring != h->sender) || p->server != h->range) {
		hpsi_msg_count_bad("replica answer from no replica of the range");
		return;
	}
	if (room && !room_ack_counts(p, h->sender, h->status))
		return;
	set_status(s, h->status);
	p->applied |= (uint8_t)(1u << i);
	part_maybe_done(w, s, p);
}

static void handle_response(struct hps_worker *w, uint32_t server, const void *rec, size_t len)
{
	struct hpsi_msg_view v;
	const char *why;
	if (hpsi_msg_check(rec, len, &w->own, &v, &why) || v.hdr->type != HPSI_MSG_RESPONSE) {
		hpsi_msg_count_bad(v.hdr ? "not a response" : why);
		return;
	}
	const struct hpsi_msg_hdr *h = v.hdr;
	if (h->flags & HPSI_F_REPLICA) {
		handle_replica_ack(w, server, h);
		return;
	}
	struct hpsi_slot *s = &w->slots[(uint64_t)h->timestamp & (HPSI_MAX_INFLIGHT - 1)];
	/* SENT: acquire pairs with send_part's release, making the part's
	 * buffers visible; an UNSENT or DONE part takes no answer. */
	if (h->timestamp < 0 || atomic_load_explicit(&s->ts, memory_order_acquire) != h->timestamp ||
	    h->part >= s->nparts ||
	    atomic_load_explicit(&s->parts[h->part].state, memory_order_acquire) != HPSI_PART_SENT ||
	    s->parts[h->part].server != server) {
		hpsi_msg_count_bad("answer to no pending request");
		return;
	}
	struct hpsi_part *p = &s->parts[h->part];
	if (p->answered) {
		/* answered again by a backup that took the range over: it holds
		 * the push now, as its ack would say (across hosts its ack may
		 * never come: the forward was lost with the primary's host, and
		 * the worker's host's bridge sent the push again, net/bridge_acks.c) */
		uint32_t i = w->seg->hdr->replicas ? hpsi_replica_index(w->seg, server, h->sender) : HPSI_NO_SERVER;
		if (i != HPSI_NO_SERVER && i < 8 && !h->status) {
			p->applied |= (uint8_t)(1u << i);
			part_maybe_done(w, s, p);
		}
		return;
	}
	int status = h->status;
	if (!status && h->dtype != p->wire)
		status = HPS_EPROTO;
	if (!status && !s->abandoned && s->type != HPS_REQ_PUSH && s->width) {
		size_t want = (size_t)p->count * s->width * hpsi_dtype_size(p->wire);
		if (h->val_bytes != want)
			status = HPS_EHANDLER;
		else if (!p->resp_in_place)
			scatter_fixed(s, p, (h->flags & HPSI_F_HEAP_RESP) ? p->resp_buf : v.vals);
	}
	hpsi_wstat_answer(w, s->type != HPS_REQ_PUSH ? h->val_bytes : 0);
	if (!w->seg->hdr->replicas) {
		part_done(w, s, p, status);
		return;
	}
	set_status(s, status);
	/* with room the answer is its primary's, whatever the table says
	 * while a scale moves the range */
	uint32_t i = hpsi_seg_room(w->seg) ? 0 : hpsi_replica_index(w->seg, server, h->sender);
	if (i != HPSI_NO_SERVER)
		p->applied |= (uint8_t)(1u << i);
	p->forwarded = h->fwd_mask;
	p->forwarded_incarnations = h->fwd_incarnations;
	p->answered = 1;
	if (hpsi_seg_room(w->seg))
		room_answer_acks(s, p);
	part_maybe_done(w, s, p);
}

/* Calls fn(w, s, part, status) on every sent part of key range r;
 * returns how many. */
static uint32_t each_sent_part(struct hps_worker *w, uint32_t r,
			       void (*fn)(struct hps_worker *, struct hpsi_slot *, struct hpsi_part *, int), int status)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < HPSI_MAX_INFLIGHT; i++) {
		struct hpsi_slot *s = &w->slots[i];
		if (!atomic_load_explicit(&s->in_use, memory_order_acquire))
			continue;
		for (uint32_t j = 0; j < s->nparts; j++)
			/* acquire pairs with send_part's release of SENT */
			if (atomic_load_explicit(&s->parts[j].state, memory_order_acquire) == HPSI_PART_SENT &&
			    s->parts[j].server == r) {
				fn(w, s, &s->parts[j], status);
				n++;
			}
	}
	return n;
}

/* Fails every sent part of a key range that has no server left. Parts not
 * sent yet are the submitter's: it fails them when its send fails. */
static void fail_server_parts(struct hps_worker *w, uint32_t srv, int status)
{
	uint32_t failed = each_sent_part(w, srv, part_done, status); /* the count: for the log only */
	if (failed)
		hpsi_info("key range %u has no server left: %u request part%s sent to it fail with %s", srv, failed,
			  failed == 1 ? "" : "s", hps_strerror(status));
}

/* Times out requests past their deadline: the caller learns now; answers
 * that arrive later only free buffers. */
static void expire_slots(struct hps_worker *w, int64_t now)
{
	for (uint32_t i = 0; i < HPSI_MAX_INFLIGHT; i++) {
		struct hpsi_slot *s = &w->slots[i];
		if (atomic_load_explicit(&s->in_use, memory_order_acquire) && !s->abandoned &&
		    now > s->deadline && !atomic_load_explicit(&s->done, memory_order_relaxed)) {
			set_status(s, HPS_ETIMEDOUT);
			s->abandoned = 1;
			hpsi_warn("request %lld timed out after HPS_TIMEOUT_MS=%lld",
				  (long long)atomic_load_explicit(&s->ts, memory_order_relaxed), /* only printed */
				  (long long)w->seg->hdr->timeout_ms);
			finish_slot(w, s);
		}
	}
}

static void run_callbacks(struct hps_worker *w, struct hpsi_cb *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		q[i].cb(w, q[i].ts, q[i].status, q[i].arg);
		atomic_fetch_sub_explicit(&w->cb_pending, 1, memory_order_relaxed);
	}
}

/* Under poll_lock: drains every response ring; returns records seen. */
static int drain_locked(struct hps_worker *w)
{
	int seen = 0;
	for (uint32_t srv = 0; srv < w->nservers; srv++) {
		struct hpsi_ring_cons *c = &w->resp[srv];
		size_t len;
		void *rec;
		int n = 0;
		while ((rec = hpsi_ring_peek(c, &len))) {
			if (!n)
				hpsi_wstat_resp_ring(w, c->tail_cache - c->head);
			handle_response(w, srv, rec, len);
			hpsi_ring_consume(c, len);
			n++;
		}
		if (n)
			hpsi_ring_cons_publish(c);
		seen += n;
	}
	return seen;
}

static _Thread_local int in_submit;

void hpsi_worker_in_submit(int on)
{
	in_submit = on;
}

void hpsi_worker_fail_part(struct hps_worker *w, struct hpsi_slot *s, uint32_t part, int status)
{
	pthread_mutex_lock(&w->poll_lock);
	part_done(w, s, &s->parts[part], status);
	pthread_mutex_unlock(&w->poll_lock);
}

static int progress_locked_then_unlock(struct hps_worker *w, int (*extra)(struct hps_worker *))
{
	int seen = drain_locked(w);
	if (extra)
		seen += extra(w);
	size_t ncb = in_submit ? 0 : w->ncb;
	struct hpsi_cb local[64], *q = local;
	if (ncb > 64 && !(q = malloc(ncb * sizeof *q))) {
		q = local;
		ncb = 64;
	}
	if (ncb)
		memcpy(q, w->cbq + (w->ncb - ncb), ncb * sizeof *q);
	w->ncb -= ncb;
	pthread_mutex_unlock(&w->poll_lock);
	if (seen)
		hpsi_bell_ring(w->bell); /* other threads of this process may wait */
	run_callbacks(w, q, ncb);
	if (q != local)
		free(q);
	return seen > 0 || ncb > 0;
}

int hpsi_worker_progress(struct hps_worker *w)
{
	if (pthread_mutex_trylock(&w->poll_lock) != 0)
		return 0;
	return progress_locked_then_unlock(w, NULL);
}

/* Replication: pushes waiting only for backups that died are done. */
static void recheck_part(struct hps_worker *w, struct hpsi_slot *s, struct hpsi_part *p, int unused)
{
	(void)unused;
	part_maybe_done(w, s, p);
}

/* Checks the servers that hold requests and the deadlines. A key range
 * fails its requests only when every replica of it is gone. */
static int check_peers(struct hps_worker *w)
{
	int64_t now = hpsi_now_ns();
	uint32_t K = w->seg->hdr->replicas, died = 0;
	uint64_t incs = 0;
	/* the servers' processes once per SLEEP_SLICE_NS for the whole host
	 * group (a wait may wake often), the node table every time */
	int probe = hpsi_probe_due(w->seg, HPSI_PROBE_SERVERS, SLEEP_SLICE_NS);
	for (uint32_t srv = 0; srv < w->nservers; srv++) {
		uint32_t st = probe ? hpsi_node_check(w->seg, srv) : hpsi_node_state(w->seg, srv);
		/* relaxed: a change is all that counts (a server replaced since
		 * the last check, perhaps dead and back in between) */
		incs = incs * 31 + atomic_load_explicit(&hpsi_seg_node(w->seg, srv)->incarnation, memory_order_relaxed);
		/* JOINING: a replacement, so the one it replaced died (perhaps
		 * between two checks) */
		died |= st == HPSI_NODE_DEAD || st == HPSI_NODE_CLOSED || st == HPSI_NODE_JOINING;
	}
	if (K && incs != w->incarnations_seen) {
		w->incarnations_seen = incs;
		died = 1; /* its acks will not come: the parts waiting for them look again */
	}
	if (died)
		drain_locked(w); /* an answer may have been written just before the end */
	for (uint32_t r = 0; died && r < w->nservers; r++) {
		int gone = hpsi_range_gone(w->seg, r);
		if (gone)
			fail_server_parts(w, r, gone);
		else if (K)
			each_sent_part(w, r, recheck_part, 0);
	}
	expire_slots(w, now);
	return 0;
}

struct sleep_arg {
	struct hps_worker *w;
	int (*pred)(void *);
	void *arg;
};

static int ready_to_run(void *p)
{
	struct sleep_arg *a = p;
	if (a->pred(a->arg))
		return 1;
	for (uint32_t srv = 0; srv < a->w->nservers; srv++)
		if (hpsi_ring_pending(a->w->resp[srv].r))
			return 1;
	return 0;
}

int hpsi_worker_wait_until(struct hps_worker *w, int (*pred)(void *), void *arg, int64_t deadline)
{
	int64_t spin_until = hpsi_now_ns() + w->ctx->spin_ns;
	uint32_t steps = 0;
	for (;;) {
		if (pred(arg))
			return 0;
		if (hpsi_worker_progress(w))
			continue;
		int64_t now = hpsi_now_ns();
		if (now < spin_until) {
			hpsi_spin_step(&steps, w->ctx->spin_yield);
			continue;
		}
		if (now > deadline)
			return HPS_ETIMEDOUT;
		if (pthread_mutex_trylock(&w->poll_lock) == 0)
			progress_locked_then_unlock(w, check_peers);
		if (pred(arg))
			return 0;
		struct sleep_arg sa = {w, pred, arg};
		int64_t left = deadline - now;
		hpsi_bell_sleep(w->bell, ready_to_run, &sa, left < SLEEP_SLICE_NS ? left : SLEEP_SLICE_NS);
		spin_until = hpsi_now_ns() + w->ctx->spin_ns / 4;
	}
}

struct wait_arg {
	struct hpsi_slot *s;
	int64_t ts;
};

static int slot_done(void *p)
{
	struct wait_arg *a = p;
	return atomic_load_explicit(&a->s->ts, memory_order_acquire) != a->ts ||
	       atomic_load_explicit(&a->s->done, memory_order_acquire);
}

int hps_wait(hps_worker *w, int64_t ts)
{
	if (ts < 0)
		return (int)ts;
	int rc = hpsi_worker_check(w);
	if (rc)
		return rc;
	if (ts >= atomic_load_explicit(&w->next_ts, memory_order_acquire))
		return HPS_EINVAL;
	struct wait_arg a = {&w->slots[(uint64_t)ts & (HPSI_MAX_INFLIGHT - 1)], ts};
	/* Deadlines are enforced per request by expire_slots; this bound only
	 * guards against a bug leaving a slot forever pending. */
	int64_t timed = hpsi_wstat_wait_begin(w, !slot_done(&a));
	rc = hpsi_worker_wait_until(w, slot_done, &a, INT64_MAX);
	hpsi_wstat_wait_end(w, timed);
	if (rc)
		return rc;
	/* Acquire: pairs with submit's release of the slot's new ts, stored
	 * after the old request's failure was kept (hpsi_failed_keep). */
	if (atomic_load_explicit(&a.s->ts, memory_order_acquire) != ts)
		return hpsi_failed_status(w, ts); /* long done, slot reused */
	return a.s->status;
}

static int responses_waiting(void *p)
{
	struct hps_worker *w = p;
	for (uint32_t srv = 0; srv < w->nservers; srv++)
		if (hpsi_ring_pending(w->resp[srv].r))
			return 1;
	return 0;
}

/* Runs callbacks when no thread of the application waits: started with
 * the first request that has a callback; asleep while none is pending. */
static void *progress_main(void *p)
{
	struct hps_worker *w = p;
	while (!atomic_load_explicit(&w->closing, memory_order_acquire)) {
		if (atomic_load_explicit(&w->cb_pending, memory_order_acquire) == 0) {
			hpsi_futex_wait(&w->cb_pending, 0, SLEEP_SLICE_NS * 10);
			continue;
		}
		if (hpsi_worker_progress(w))
			continue;
		if (pthread_mutex_trylock(&w->poll_lock) == 0)
			progress_locked_then_unlock(w, check_peers);
		hpsi_bell_sleep(w->bell, responses_waiting, w, SLEEP_SLICE_NS / 10);
	}
	return NULL;
}

void hpsi_worker_start_progress(struct hps_worker *w)
{
	if (!w->progress_started && pthread_create(&w->progress_thread, NULL, progress_main, w) == 0)
		w->progress_started = 1;
}
