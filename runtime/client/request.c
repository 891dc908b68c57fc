/* Worker: building and sending requests (opening and closing the worker
 * is worker_open.c). A request is checked, split by
 * key owner into parts, and each part goes to its server's ring: inline
 * when it fits, otherwise with keys, values or the answer in this worker's
 * shared heap (the caller's own buffer when it came from hps_alloc). */
#include <stdlib.h>
#include <string.h>

#include "runtime/common/checked.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "shm/wake.h"
#include "net/route.h"
#include "runtime/client/handle.h"
#include "runtime/client/worker.h"
#include "runtime/client/worker_stats.h"

/* What the caller asked for, checked. */
struct call {
	int type;
	const uint64_t *keys;
	size_t n;
	const unsigned char *push;
	unsigned char *pull;
	unsigned udt; /* the caller's value type */
	size_t usz;   /* its bytes per value */
	const uint32_t *lens;  /* lens-mode push */
	uint64_t *lens_off;    /* prefix sums of lens, n + 1 entries */
	uint32_t width;        /* 0 in lens mode */
	const hps_opts *opts;
	uint32_t nparts;
	struct hpsi_part *parts;
	uint32_t *idx;
};

/* ---- checking and splitting --------------------------------------------- */

static int check_call(hps_worker *w, struct call *c)
{
	const hps_opts *o = c->opts;
	if (!w || !c->keys || c->n == 0) {
		hpsi_error("request without keys");
		return HPS_EINVAL;
	}
	if (c->n > HPSI_MAX_KEYS)
		return HPS_ETOOBIG;
	if ((c->type != HPS_REQ_PULL && !c->push) || (c->type != HPS_REQ_PUSH && !c->pull))
		return HPS_EINVAL;
	for (size_t i = 1; i < c->n; i++)
		if (c->keys[i] <= c->keys[i - 1]) {
			hpsi_error("keys must be sorted ascending and unique: key[%zu]=%llu after %llu", i,
				   (unsigned long long)c->keys[i], (unsigned long long)c->keys[i - 1]);
			return HPS_EKEYORDER;
		}
	c->width = o && o->width ? o->width : w->width;
	if (o && o->dtype != HPS_F32 && o->dtype != HPS_F64)
		return HPS_EINVAL;
	c->udt = o && o->dtype == HPS_F64 ? HPSI_WIRE_F64 : HPSI_WIRE_F32;
	c->usz = hpsi_dtype_size(c->udt);
	if (o && o->lens) {
		if (c->type == HPS_REQ_PULL)
			return HPS_EINVAL; /* a pull's lens come back in out_lens */
		c->width = 0;
		c->lens = o->lens;
	} else if (o && o->out_lens) {
		if (c->type != HPS_REQ_PULL)
			return HPS_EINVAL;
		c->width = 0;
	}
	if (c->lens) {
		if (!(c->lens_off = malloc((c->n + 1) * sizeof *c->lens_off)))
			return HPS_ENOMEM;
		c->lens_off[0] = 0;
		for (size_t i = 0; i < c->n; i++)
			c->lens_off[i + 1] = c->lens_off[i] + c->lens[i];
		if (c->type == HPS_REQ_PUSHPULL && o->out_lens)
			memcpy(o->out_lens, c->lens, c->n * sizeof *c->lens);
	}
	/* Everything must fit the heap at once in the worst case. */
	uint64_t vals = c->lens ? c->lens_off[c->n] : (uint64_t)c->n * c->width;
	if (c->width == 0 && c->type == HPS_REQ_PULL)
		vals = o->vals_cap;
	/* vals can reach 2^62 (keys x width, sum of lens) and vals_cap any
	 * size_t: a wrapped product would pass the bound below. */
	uint64_t vbytes, bytes;
	if (hpsi_mul3_u64(vals, c->usz, c->type == HPS_REQ_PUSHPULL ? 2 : 1, &vbytes) ||
	    hpsi_add_u64((uint64_t)c->n * 12, vbytes, &bytes)) {
		hpsi_error("request of %llu values (width, lens or vals_cap) does not fit 64 bits of bytes",
			   (unsigned long long)vals);
		return HPS_ETOOBIG;
	}
	if (bytes > hpsi_heap_max_alloc(w->heap)) {
		hpsi_error("request of %llu MiB exceeds the %zu MiB a worker's shared heap can hold; raise HPS_HEAP_MB (now %llu)",
			   (unsigned long long)(bytes >> 20), hpsi_heap_max_alloc(w->heap) >> 20,
			   (unsigned long long)(w->seg->hdr->heap_slice >> 20));
		return HPS_ETOOBIG;
	}
	return 0;
}

/* Splits the keys by owner. Contiguous parts need no index; hash routing
 * over several servers groups key positions per server in c->idx. */
static int split_call(hps_worker *w, struct call *c)
{
	uint32_t S = w->nservers;
	const struct hpsi_seg *seg = w->seg;
	if (S == 1 && seg->hdr->range_mode == HPSI_RANGE_HASH) {
		c->parts[0] = (struct hpsi_part){.server = 0, .begin = 0, .count = (uint32_t)c->n};
		c->nparts = 1;
		return 0;
	}
	if (seg->hdr->range_mode == HPSI_RANGE_DECLARED) {
		c->nparts = 0;
		for (size_t i = 0; i < c->n; i++) {
			uint32_t s = hpsi_route_key(seg, c->keys[i]);
			if (s == HPSI_NO_SERVER) {
				hpsi_error("key %llu lies outside every server's range (HPS_KEY_RANGES)",
					   (unsigned long long)c->keys[i]);
				return HPS_ENOKEY;
			}
			if (c->nparts && c->parts[c->nparts - 1].server == s)
				c->parts[c->nparts - 1].count++;
			else
				c->parts[c->nparts++] = (struct hpsi_part){.server = s, .begin = (uint32_t)i, .count = 1};
		}
		return 0;
	}
	uint32_t *owner = malloc(c->n * sizeof *owner);
	uint32_t count[HPSI_MAX_NODES] = {0}, start[HPSI_MAX_NODES];
	if (!owner)
		return HPS_ENOMEM;
	/* hpsi_route_key of hashed keys, with the table read once: stores
	 * to owner[] may alias the header, so the compiler would reload it */
	const uint16_t *slots = hpsi_seg_slots(seg);
	for (size_t i = 0; i < c->n; i++)
		count[owner[i] = slots[hpsi_key_slot(c->keys[i])]]++;
	c->nparts = 0;
	for (uint32_t s = 0, at = 0; s < S; s++) {
		start[s] = at;
		if (count[s])
			c->parts[c->nparts++] = (struct hpsi_part){.server = s, .begin = at, .count = count[s]};
		at += count[s];
	}
	if (c->nparts == 1) { /* one owner: the request stays contiguous */
		c->parts[0].begin = 0;
		free(owner);
		return 0;
	}
	if (!(c->idx = malloc(c->n * sizeof *c->idx))) {
		free(owner);
		return HPS_ENOMEM;
	}
	for (size_t i = 0; i < c->n; i++)
		c->idx[start[owner[i]]++] = (uint32_t)i;
	free(owner);
	return 0;
}

/* ---- building one part's message ---------------------------------------- */

static size_t pos_of(const struct call *c, const struct hpsi_part *p, uint32_t j)
{
	return c->idx ? c->idx[p->begin + j] : p->begin + j;
}

static void put_keys(const struct call *c, const struct hpsi_part *p, unsigned char *dst)
{
	uint64_t *k = (uint64_t *)dst;
	if (!c->idx)
		memcpy(k, c->keys + p->begin, (size_t)p->count * 8);
	else
		for (uint32_t j = 0; j < p->count; j++)
			k[j] = c->keys[c->idx[p->begin + j]];
	if (c->lens) {
		uint32_t *l = (uint32_t *)(dst + (size_t)p->count * 8);
		for (uint32_t j = 0; j < p->count; j++)
			l[j] = c->lens[pos_of(c, p, j)];
	}
}

static uint64_t part_vals(const struct call *c, const struct hpsi_part *p)
{
	if (c->type == HPS_REQ_PULL)
		return 0;
	if (!c->lens)
		return (uint64_t)p->count * c->width;
	if (!c->idx)
		return c->lens_off[p->begin + p->count] - c->lens_off[p->begin];
	uint64_t n = 0;
	for (uint32_t j = 0; j < p->count; j++)
		n += c->lens[pos_of(c, p, j)];
	return n;
}

/* Gathers a part's values, converted to its wire type. */
static void put_vals(const struct call *c, const struct hpsi_part *p, unsigned char *dst)
{
	size_t wsz = hpsi_dtype_size(p->wire);
	if (!c->idx) {
		size_t from = c->lens ? c->lens_off[p->begin] : (size_t)p->begin * c->width;
		hpsi_convert(dst, p->wire, c->push + from * c->usz, c->udt, part_vals(c, p));
		return;
	}
	if (c->width == 1 && p->wire == HPSI_WIRE_F32 && c->udt == HPSI_WIRE_F32) {
		float *d = (float *)dst;
		const float *src = (const float *)c->push;
		for (uint32_t j = 0; j < p->count; j++)
			d[j] = src[c->idx[p->begin + j]];
		return;
	}
	for (uint32_t j = 0; j < p->count; j++) {
		size_t i = c->idx[p->begin + j];
		size_t from = c->lens ? c->lens_off[i] : i * c->width;
		size_t len = c->lens ? c->lens[i] : c->width;
		hpsi_convert(dst, p->wire, c->push + from * c->usz, c->udt, len);
		dst += len * wsz;
	}
}

struct alloc_arg {
	hps_worker *w;
	uint32_t srv;
	size_t bytes;
	void *p;
	int why;
};

/* Done when allocated, when the file system behind the heap is full
 * (answers coming back free slice space, not file-system space), or when
 * the part's server is gone: a part not sent yet is failed by its sender,
 * not by the peer check, so stop waiting as soon as nobody can answer. */
static int try_alloc(void *a_)
{
	struct alloc_arg *a = a_;
	if ((a->why = hpsi_range_gone(a->w->seg, a->srv)))
		return 1;
	a->p = hpsi_heap_alloc_why(a->w->heap, a->bytes, &a->why);
	return a->p != NULL || a->why == HPS_ENOSPC;
}

/* Shared-heap buffer for a part to server srv into *out; when the slice is
 * used up, waits for answers to free some (bounded by the request's
 * deadline). */
static int heap_buf(hps_worker *w, uint32_t srv, size_t bytes, int64_t deadline, void **out)
{
	struct alloc_arg a = {.w = w, .srv = srv, .bytes = bytes};
	int rc = try_alloc(&a) ? 0 : hpsi_worker_wait_until(w, try_alloc, &a, deadline);
	*out = a.p;
	if (a.p)
		return 0;
	if (a.why == HPS_ENOSPC || a.why == HPS_EPEERDEAD || a.why == HPS_ECLOSED)
		return a.why;
	return rc ? rc : HPS_ETIMEDOUT;
}

/* Bytes of answer space a variable-length pull asks for. */
static size_t call_out_cap(const struct call *c)
{
	if (c->type == HPS_REQ_PUSHPULL && c->lens)
		return c->lens_off[c->n];
	return c->opts && c->width == 0 ? c->opts->vals_cap : 0;
}

static int zero_copy_push(const hps_worker *w, const struct call *c, const struct hpsi_part *p, size_t vals_bytes)
{
	return c->type != HPS_REQ_PULL && p->wire == c->udt && c->nparts == 1 &&
	       hpsi_heap_owns(w->heap, c->push, vals_bytes);
}

static int zero_copy_pull(const hps_worker *w, const struct call *c, const struct hpsi_part *p, size_t ans_bytes)
{
	return c->type != HPS_REQ_PUSH && p->wire == c->udt && c->width && c->nparts == 1 &&
	       hpsi_heap_owns(w->heap, c->pull, ans_bytes);
}

/* The heap buffers part p needs (values and keys too large for a ring
 * record, answer space), allocated before anything of the request is sent:
 * a request that cannot have all of them fails whole, nothing applied. */
static int part_buffers(hps_worker *w, const struct call *c, struct hpsi_part *p, size_t out_cap, int64_t deadline)
{
	int push = c->type != HPS_REQ_PULL, pull = c->type != HPS_REQ_PUSH;
	size_t wsz = hpsi_dtype_size(p->wire);
	size_t keys_bytes = (size_t)p->count * 8 + (c->lens ? hpsi_lens_bytes(p->count) : 0);
	size_t vals_bytes = push ? part_vals(c, p) * wsz : 0;
	size_t ans_bytes = pull && c->width ? (size_t)p->count * c->width * wsz : 0;
	int rc = 0;
	/* Across hosts a forwarded push travels inline (net/bridge_fwd.c): a
	 * bridge that put its body in a heap slice would free it when the
	 * primary answers, while a backup on that host may still read it. */
	if (push && w->seg->hdr->replicas && w->seg->hdr->bridged && keys_bytes + vals_bytes > w->inline_max) {
		hpsi_error("a push of %zu KiB to server %u: with HPS_REPLICAS across hosts each server's part of a push must fit a ring record (%zu KiB); raise HPS_RING_KB or push fewer keys at once",
			   (keys_bytes + vals_bytes) >> 10, p->server, w->inline_max >> 10);
		return HPS_ETOOBIG;
	}
	size_t body = keys_bytes + (zero_copy_push(w, c, p, vals_bytes) ? 0 : vals_bytes);
	if (body > w->inline_max && vals_bytes && !zero_copy_push(w, c, p, vals_bytes)) {
		rc = heap_buf(w, p->server, vals_bytes, deadline, &p->vals_buf);
		body = keys_bytes;
	}
	if (!rc && body > w->inline_max)
		rc = heap_buf(w, p->server, keys_bytes, deadline, &p->keys_buf);
	if (!rc && !zero_copy_pull(w, c, p, ans_bytes) && pull && (c->width == 0 || ans_bytes > w->inline_max))
		rc = heap_buf(w, p->server, c->width ? ans_bytes : hpsi_lens_bytes(p->count) + out_cap * wsz, deadline,
			      &p->resp_buf);
	return rc;
}

static int alloc_parts(hps_worker *w, const struct call *c, struct hpsi_part *parts, size_t out_cap, int64_t deadline)
{
	int rc = 0;
	for (uint32_t i = 0; !rc && i < c->nparts; i++)
		rc = part_buffers(w, c, &parts[i], out_cap, deadline);
	for (uint32_t i = 0; rc && i < c->nparts; i++) {
		hpsi_heap_free(w->heap, parts[i].vals_buf);
		hpsi_heap_free(w->heap, parts[i].keys_buf);
		hpsi_heap_free(w->heap, parts[i].resp_buf);
		parts[i].vals_buf = parts[i].keys_buf = parts[i].resp_buf = NULL;
	}
	return rc;
}

/* Rings the bell of whoever serves range r now. */
static void wake_range(const hps_worker *w, uint32_t r)
{
	uint32_t srv = w->seg->hdr->replicas ? hpsi_range_primary(w->seg, r) : hpsi_range_owner(w->seg, r);
	if (srv != HPSI_NO_SERVER)
		hpsi_node_wake(w->seg, srv);
}

struct reserve_arg {
	hps_worker *w;
	uint32_t srv;
	size_t len;
	void *rec;
	int dead;
};

static int try_reserve(void *a_)
{
	struct reserve_arg *a = a_;
	if ((a->dead = hpsi_range_gone(a->w->seg, a->srv)))
		return 1;
	return (a->rec = hpsi_ring_reserve(&a->w->req[a->srv], a->len)) != NULL;
}

static uint64_t seg_off(const hps_worker *w, const void *p)
{
	return (uint64_t)((const unsigned char *)p - w->seg->base);
}

static int send_part(hps_worker *w, const struct call *c, struct hpsi_slot *s, uint32_t pi, int64_t ts)
{
	struct hpsi_part *p = &s->parts[pi];
	int gone = hpsi_range_gone(w->seg, p->server);
	if (gone)
		return gone;

	int pull = c->type != HPS_REQ_PUSH;
	size_t wsz = hpsi_dtype_size(p->wire);
	size_t keys_bytes = (size_t)p->count * 8 + (c->lens ? hpsi_lens_bytes(p->count) : 0);
	size_t vals_bytes = part_vals(c, p) * wsz;
	size_t ans_bytes = pull && c->width ? (size_t)p->count * c->width * wsz : 0;
	unsigned flags = c->width ? 0 : HPSI_F_LENS;
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, c->type, w->rank, ts);

	if (zero_copy_push(w, c, p, vals_bytes)) {
		flags |= HPSI_F_HEAP_VALS; /* zero copy: the caller's shared buffer */
		h.vals_off = seg_off(w, c->push);
	}
	size_t body = keys_bytes + (flags & HPSI_F_HEAP_VALS ? 0 : vals_bytes);
	/* part_buffers decided what goes in the heap. Its copy in c->parts is
	 * read, not s->parts: once a part is out, its answer may free the
	 * slot's buffer fields at any time (the poller). */
	const struct hpsi_part *b = &c->parts[pi];
	if (b->vals_buf) {
		put_vals(c, p, b->vals_buf);
		flags |= HPSI_F_HEAP_VALS;
		h.vals_off = seg_off(w, b->vals_buf);
		body = keys_bytes;
	}
	if (b->keys_buf) {
		put_keys(c, p, b->keys_buf);
		flags |= HPSI_F_HEAP_KEYS;
		h.keys_off = seg_off(w, b->keys_buf);
		body = 0;
	}
	if (zero_copy_pull(w, c, p, ans_bytes)) {
		flags |= HPSI_F_HEAP_RESP; /* zero copy: the server writes the caller's buffer */
		h.resp_off = seg_off(w, c->pull);
		h.resp_cap = ans_bytes;
		p->resp_in_place = 1;
	} else if (b->resp_buf) {
		size_t cap = c->width ? ans_bytes : hpsi_lens_bytes(p->count) + s->out_cap * wsz;
		flags |= HPSI_F_HEAP_RESP;
		h.resp_off = seg_off(w, b->resp_buf);
		h.resp_cap = cap;
	}
	h.flags = (uint16_t)flags;
	p->heap_body = c->type != HPS_REQ_PULL && (flags & (HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS));
	h.dtype = (uint8_t)p->wire;
	h.clock = w->clock;
	h.part = pi;
	h.range = (uint16_t)p->server;
	h.nkeys = p->count;
	h.nlens = c->lens ? p->count : 0;
	h.width = c->width;
	h.val_bytes = vals_bytes;

	struct reserve_arg ra = {w, p->server, sizeof h + body, NULL, 0};
	if (!try_reserve(&ra) && hpsi_worker_wait_until(w, try_reserve, &ra, s->deadline) != 0)
		return HPS_ETIMEDOUT;
	if (ra.dead)
		return ra.dead;
	unsigned char *rec = ra.rec;
	memcpy(rec, &h, sizeof h);
	if (!(flags & HPSI_F_HEAP_KEYS))
		put_keys(c, p, rec + sizeof h);
	if (vals_bytes && !(flags & HPSI_F_HEAP_VALS))
		put_vals(c, p, rec + sizeof h + keys_bytes);
	hpsi_ring_commit(&w->req[p->server], sizeof h + body);
	hpsi_wstat_pushed(w, vals_bytes);
	/* Release pairs with the poller's acquire of SENT: the buffers above
	 * are set. From here the poller owns the part (its answer can come as
	 * soon as the ring is published), so p is not touched again. */
	atomic_store_explicit(&p->state, HPSI_PART_SENT, memory_order_release);
	hpsi_ring_publish(&w->req[p->server]);
	wake_range(w, p->server);
	return 0;
}

/* ---- submitting ----------------------------------------------------------- */

static int slot_free(void *p)
{
	return atomic_load_explicit(&((struct hpsi_slot *)p)->in_use, memory_order_acquire) == 0;
}

static int64_t submit(hps_worker *w, struct call *c)
{
	struct hpsi_part parts[HPSI_MAX_NODES];
	c->parts = parts;
	int rc = hpsi_worker_check(w);
	if (rc)
		return rc;
	rc = check_call(w, c);
	if (!rc)
		rc = split_call(w, c);
	for (uint32_t i = 0; !rc && i < c->nparts; i++) {
		const struct hpsi_range *r = &hpsi_seg_ranges(w->seg)[parts[i].server];
		parts[i].wire = r->wire;
		if (r->dtype != c->udt) {
			hpsi_error("server %u keeps %s values but the request passes %s (hps_opts.dtype, HPS_DTYPE)",
				   parts[i].server, r->dtype == HPSI_WIRE_F64 ? "f64" : "f32",
				   c->udt == HPSI_WIRE_F64 ? "f64" : "f32");
			rc = HPS_EINVAL;
		}
	}
	if (rc) {
		free(c->lens_off);
		free(c->idx);
		return rc;
	}
	pthread_mutex_lock(&w->submit_lock);
	hpsi_worker_in_submit(1);
	int64_t ts = atomic_load_explicit(&w->next_ts, memory_order_relaxed);
	struct hpsi_slot *s = &w->slots[(uint64_t)ts & (HPSI_MAX_INFLIGHT - 1)];
	int64_t deadline = hpsi_now_ns() + w->ctx->timeout_ns;
	if (!slot_free(s) && (rc = hpsi_worker_wait_until(w, slot_free, s, deadline))) {
		hpsi_worker_in_submit(0);
		pthread_mutex_unlock(&w->submit_lock);
		free(c->lens_off);
		free(c->idx);
		return rc;
	}
	size_t out_cap = call_out_cap(c);
	if ((rc = alloc_parts(w, c, parts, out_cap, deadline))) { /* nothing is sent */
		hpsi_worker_in_submit(0);
		pthread_mutex_unlock(&w->submit_lock);
		free(c->lens_off);
		free(c->idx);
		return rc;
	}
	/* relaxed: only submitters store ts, under submit_lock; the old
	 * request's failure is kept before the release of the new ts below,
	 * which hps_wait acquires before it looks among the kept ones */
	int64_t old_ts = atomic_load_explicit(&s->ts, memory_order_relaxed);
	if (old_ts >= 0 && s->status)
		hpsi_failed_keep(w, old_ts, s->status);
	s->status = 0;
	s->type = c->type;
	s->width = c->width;
	s->udt = c->udt;
	s->out = c->pull;
	s->out_lens = c->opts ? c->opts->out_lens : NULL;
	s->out_cap = out_cap;
	s->nkeys = c->n;
	s->idx = c->idx;
	s->nparts = c->nparts;
	for (uint32_t i = 0; i < c->nparts; i++) {
		s->parts[i] = parts[i];
		/* published by the in_use/ts release below */
		atomic_store_explicit(&s->parts[i].state, HPSI_PART_UNSENT, memory_order_relaxed);
	}
	s->deadline = deadline;
	s->abandoned = 0;
	s->cb = c->opts ? c->opts->cb : NULL;
	s->cb_arg = c->opts ? c->opts->cb_arg : NULL;
	atomic_store_explicit(&s->done, 0, memory_order_relaxed);
	/* Release: the poller scans slots by in_use (acquire) and reads the
	 * fields above; answers find the slot by ts (acquire). */
	atomic_store_explicit(&s->refs, c->nparts + 1, memory_order_relaxed);
	atomic_store_explicit(&s->in_use, 1, memory_order_release);
	atomic_store_explicit(&s->ts, ts, memory_order_release);
	atomic_store_explicit(&w->next_ts, ts + 1, memory_order_release);
	hpsi_wstat_submit(w, c->type, c->n);
	if (s->cb) {
		atomic_fetch_add_explicit(&w->cb_pending, 1, memory_order_release);
		hpsi_worker_start_progress(w);
		hpsi_futex_wake(&w->cb_pending);
	}
	for (uint32_t i = 0; i < c->nparts; i++) {
		rc = send_part(w, c, s, i, ts);
		if (rc) /* this part never reached its server */
			hpsi_worker_fail_part(w, s, i, rc);
	}
	hpsi_debug("request %lld: %s of %zu keys to %u server%s, clock %u", (long long)ts,
		   c->type == HPS_REQ_PUSH ? "push" : c->type == HPS_REQ_PULL ? "pull" : "pushpull", c->n, c->nparts,
		   c->nparts == 1 ? "" : "s", w->clock);
	hpsi_worker_sent(w, s);
	hpsi_worker_in_submit(0);
	pthread_mutex_unlock(&w->submit_lock);
	free(c->lens_off);
	return ts;
}

int64_t hps_push(hps_worker *w, const uint64_t *keys, size_t nkeys, const void *vals, const hps_opts *opts)
{
	struct call c = {.type = HPS_REQ_PUSH, .keys = keys, .n = nkeys, .push = vals, .opts = opts};
	return submit(w, &c);
}

int64_t hps_pull(hps_worker *w, const uint64_t *keys, size_t nkeys, void *vals, const hps_opts *opts)
{
	struct call c = {.type = HPS_REQ_PULL, .keys = keys, .n = nkeys, .pull = vals, .opts = opts};
	return submit(w, &c);
}

int64_t hps_pushpull(hps_worker *w, const uint64_t *keys, size_t nkeys, const void *push_vals, void *pull_vals,
		     const hps_opts *opts)
{
	struct call c = {.type = HPS_REQ_PUSHPULL, .keys = keys, .n = nkeys, .push = push_vals, .pull = pull_vals,
			 .opts = opts};
	return submit(w, &c);
}

int hps_clock(hps_worker *w)
{
	int rc = hpsi_worker_check(w);
	if (rc)
		return rc;
	pthread_mutex_lock(&w->submit_lock);
	hpsi_worker_in_submit(1);
	w->clock++;
	hpsi_wstat_clock(w);
	/* The resume point of a restart (struct hpsi_node, clock_done): stored
	 * before any server hears of the clock, so a restarted process never
	 * starts below what a server holds; every request of the clock before
	 * was published already (submit_lock orders them before this). */
	struct hpsi_node *me = hpsi_seg_node(w->seg, w->ctx->node);
	atomic_store_explicit(&me->clock_ts[w->clock & 1], atomic_load_explicit(&w->next_ts, memory_order_relaxed),
			      memory_order_relaxed);
	/* only this process stores its arrivals (runtime/client/barrier.c) */
	atomic_store_explicit(&me->clock_bar[w->clock & 1],
			      atomic_load_explicit(&me->barrier_arrived, memory_order_relaxed), memory_order_relaxed);
	atomic_store_explicit(&me->clock_done, w->clock, memory_order_release);
	int64_t deadline = hpsi_now_ns() + w->ctx->timeout_ns;
	/* Every server learns the new clock, also those this worker did not
	 * touch in the iteration: their held pulls may wait for it. */
	for (uint32_t srv = 0; srv < w->nservers; srv++) {
		struct reserve_arg a = {w, srv, sizeof(struct hpsi_msg_hdr), NULL, 0};
		if (!try_reserve(&a) && hpsi_worker_wait_until(w, try_reserve, &a, deadline) != 0) {
			rc = HPS_ETIMEDOUT;
			continue;
		}
		if (a.dead) {
			if (a.dead == HPS_EPEERDEAD)
				rc = HPS_EPEERDEAD;
			continue;
		}
		struct hpsi_msg_hdr *h = a.rec;
		hpsi_msg_init(h, HPSI_MSG_CLOCK, w->rank, -1);
		h->clock = w->clock;
		h->range = (uint16_t)srv;
		hpsi_ring_commit(&w->req[srv], sizeof *h);
		hpsi_ring_publish(&w->req[srv]);
		wake_range(w, srv);
	}
	hpsi_debug("clock %u announced to %u server%s", w->clock, w->nservers, w->nservers == 1 ? "" : "s");
	hpsi_worker_in_submit(0);
	pthread_mutex_unlock(&w->submit_lock);
	return rc;
}
