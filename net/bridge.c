/* `hps bridge`: one per host of a multi-host job, started by `hps launch`.
 *
 * It registers with the scheduler, builds this host's segment (node ids of
 * the whole job; the remote ones carry the bridge's pid), and then stands
 * at the far end of every ring that crosses hosts:
 *   - requests of local workers to remote servers: it consumes them and
 *     sends them to the server's host (many per ZeroMQ message when they
 *     queue up; large values straight from the worker's shared heap,
 *     zmq_msg_init_data, no copy), and later writes the answers back into
 *     the worker's response ring (and answer buffer);
 *   - requests of remote workers to local servers: it writes them into the
 *     server's ring (large parts into that worker's heap slice on this
 *     host, which the bridge owns here) and sends the answers back.
 * A ring a message cannot enter yet (full) keeps it in an overflow queue
 * in order. Every received frame is validated (net/wire.c, net/codec.c);
 * a bad one is dropped and counted with its reason.
 *
 * It also relays node states (heartbeats to the scheduler, states back)
 * and the cross-host barrier. One thread owns every ZeroMQ socket; the
 * only other thread is ZeroMQ's, which runs zc_done. Local processes wake
 * it from its sleep in zmq_poll with a datagram (shm/wake.h). */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/codec.h"
#include "runtime/common/dtype.h"
#include "net/wire.h"
#include "net/transport.h"
#include "runtime/common/config.h"
#include "shm/node.h"
#include "runtime/common/log.h"
#include "shm/heap.h"
#include "shm/liveness.h"
#include "shm/wake.h"

#define ZC_MIN (64u << 10)    /* values this large go without a copy */
#define BATCH_FLUSH (1u << 20) /* send a batch once it holds this much */

/* A value frame handed to ZeroMQ: it sets done (release) once it no longer
 * reads the worker's buffer; the bridge acquires it before it lets the
 * worker see the answer (and so reuse the buffer). */
struct zc {
	_Atomic int done;
};

static void zc_done(void *data, void *hint)
{
	(void)data;
	atomic_store_explicit(&((struct zc *)hint)->done, 1, memory_order_release);
}

/* What the bridge remembers of a request in flight on a pair, in order. */
struct entry {
	int64_t ts;
	uint32_t part;
	int heap_resp;          /* origin: the worker wants the answer in its buffer */
	uint64_t resp_off, resp_cap;
	struct zc *zc;          /* origin: values still being sent */
	void *bufs[3];          /* inbound: heap buffers given to the server */
};

struct fifo {
	struct entry *e;
	size_t cap, head, n;
};

/* A message waiting for room in a ring: the wire form, whole. */
struct held {
	struct held *next;
	uint32_t len;
	_Alignas(8) unsigned char msg[];
};

struct pair {
	struct hpsi_ring_cons cons; /* origin: requests; inbound: answers */
	struct hpsi_ring_prod prod; /* origin: answers; inbound: requests */
	struct fifo fifo;
	struct held *held, *held_tail;
	int used;
};

struct batch {
	unsigned char *buf;
	size_t len, cap;
	uint32_t count;
};

struct bridge {
	struct hpsi_config cfg;
	struct hpsi_cluster_cfg cc;
	struct hpsi_seg seg;
	uint32_t S, W, me, nhosts;
	struct hpsi_sched_assign assign;
	uint32_t *host_of_server, *host_of_worker;
	struct pair *pairs; /* W x S */
	struct hpsi_heap **heaps; /* remote workers' slices on this host */
	struct batch *out;  /* per host */
	void *zctx, *router, *sched, **dealers;
	char endpoint[HPSI_ENDPOINT_MAX];
	size_t max_payload, answer_max;
	int64_t last_sched, next_heartbeat;
	uint32_t barrier_sent; /* gen + 1 of the barrier reported */
	int sched_lost;
	int wake_fd;     /* datagrams of local processes that woke us (shm/wake.h) */
	uint64_t held_total; /* messages that waited for room in a ring */
	void *align_buf; /* an aligned copy of a received frame */
	size_t align_cap;
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

/* Counted and logged (rate-limited) by the codec's one counter. */
static void bad(struct bridge *b, const char *why)
{
	(void)b;
	hpsi_msg_count_bad(why);
}

static struct entry *fifo_push(struct fifo *f)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct entry *e = malloc(cap * sizeof *e);
		if (!e)
			return NULL;
		for (size_t i = 0; i < f->n; i++)
			e[i] = f->e[(f->head + i) % (f->cap ? f->cap : 1)];
		free(f->e);
		f->e = e, f->cap = cap, f->head = 0;
	}
	struct entry *e = &f->e[(f->head + f->n++) % f->cap];
	memset(e, 0, sizeof *e);
	return e;
}

static struct entry *fifo_front(struct fifo *f)
{
	return f->n ? &f->e[f->head] : NULL;
}

static void fifo_pop(struct fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->n--;
}

static struct pair *pair_of(struct bridge *b, uint32_t w, uint32_t s)
{
	return &b->pairs[(size_t)w * b->S + s];
}

static int local_server(const struct bridge *b, uint32_t s)
{
	return s >= b->seg.hdr->srv_lo && s < b->seg.hdr->srv_hi;
}

static int local_worker(const struct bridge *b, uint32_t w)
{
	return w >= b->seg.hdr->wrk_lo && w < b->seg.hdr->wrk_hi;
}

static struct hpsi_msg_bounds slice_of(const struct bridge *b, uint32_t w)
{
	uint64_t lo = b->seg.hdr->heap_off + (uint64_t)w * b->seg.hdr->heap_slice;
	return (struct hpsi_msg_bounds){b->seg.base, lo, lo + b->seg.hdr->heap_slice};
}

/* ---- sending ------------------------------------------------------------ */

static int batch_room(struct batch *o, size_t more)
{
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 1 << 16;
	while (cap < o->len + more)
		cap *= 2;
	unsigned char *n = realloc(o->buf, cap);
	if (!n)
		return HPS_ENOMEM;
	o->buf = n, o->cap = cap;
	return 0;
}

static void flush(struct bridge *b, uint32_t host)
{
	struct batch *o = &b->out[host];
	if (!o->count)
		return;
	struct hpsi_batch_hdr h = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, o->count, b->me};
	memcpy(o->buf, &h, sizeof h);
	zmq_send(b->dealers[host], o->buf, o->len, 0);
	o->len = 0, o->count = 0;
}

/* Appends one message in wire form (header, then body parts) to the batch
 * for `host`. */
static int append(struct bridge *b, uint32_t host, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *h,
		  const void *p1, size_t n1, const void *p2, size_t n2)
{
	struct batch *o = &b->out[host];
	size_t len = sizeof *h + n1 + n2;
	if (!o->len)
		o->len = sizeof(struct hpsi_batch_hdr);
	if (batch_room(o, hpsi_batch_rec_bytes(len)))
		return HPS_ENOMEM;
	struct hpsi_rec_hdr r = {(uint32_t)len, w, s, 0};
	unsigned char *at = o->buf + o->len;
	memcpy(at, &r, sizeof r);
	memcpy(at + sizeof r, h, sizeof *h);
	if (n1)
		memcpy(at + sizeof r + sizeof *h, p1, n1);
	if (n2)
		memcpy(at + sizeof r + sizeof *h + n1, p2, n2);
	memset(at + sizeof r + len, 0, hpsi_batch_rec_bytes(len) - sizeof r - len);
	o->len += hpsi_batch_rec_bytes(len);
	o->count++;
	if (o->len >= BATCH_FLUSH)
		flush(b, host);
	return 0;
}

/* A request whose values stay in the worker's heap: its own message, the
 * values as a second frame that ZeroMQ reads in place. */
static int send_zero_copy(struct bridge *b, uint32_t host, uint32_t w, uint32_t s, struct hpsi_msg_hdr *h,
			  const void *keys, size_t keys_bytes, const void *vals, struct zc *zc)
{
	flush(b, host); /* keep the order of this pair's messages */
	size_t len = sizeof *h + keys_bytes;
	size_t total = sizeof(struct hpsi_batch_hdr) + hpsi_batch_rec_bytes(len);
	unsigned char *buf = calloc(1, total);
	if (!buf)
		return HPS_ENOMEM;
	struct hpsi_batch_hdr bh = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, HPSI_REC_VALS_FRAME, 1, b->me};
	struct hpsi_rec_hdr r = {(uint32_t)len, w, s, HPSI_REC_VALS_FRAME};
	h->flags |= HPSI_F_HEAP_VALS; /* at offset 0 of the next frame */
	memcpy(buf, &bh, sizeof bh);
	memcpy(buf + sizeof bh, &r, sizeof r);
	memcpy(buf + sizeof bh + sizeof r, h, sizeof *h);
	memcpy(buf + sizeof bh + sizeof r + sizeof *h, keys, keys_bytes);
	zmq_send(b->dealers[host], buf, total, ZMQ_SNDMORE);
	free(buf);
	zmq_msg_t m;
	zmq_msg_init_data(&m, (void *)vals, h->val_bytes, zc_done, zc);
	zmq_msg_send(&m, b->dealers[host], 0);
	return 0;
}

/* Local workers' requests to remote servers. */
static int forward_requests(struct bridge *b)
{
	int moved = 0;
	for (uint32_t w = b->seg.hdr->wrk_lo; w < b->seg.hdr->wrk_hi; w++) {
		struct hpsi_msg_bounds heap = slice_of(b, w);
		for (uint32_t s = 0; s < b->S; s++) {
			if (local_server(b, s))
				continue;
			struct pair *p = pair_of(b, w, s);
			size_t len;
			void *rec;
			int n = 0;
			while ((rec = hpsi_ring_peek(&p->cons, &len))) {
				struct hpsi_msg_view v;
				const char *why;
				if (hpsi_msg_check(rec, len, &heap, &v, &why) || v.hdr->type == HPSI_MSG_RESPONSE) {
					bad(b, v.hdr ? "a response in a request ring" : why);
					hpsi_ring_consume(&p->cons, len);
					continue;
				}
				struct hpsi_msg_hdr h = *v.hdr;
				struct entry *e = NULL;
				if (h.type != HPSI_MSG_CLOCK && !(e = fifo_push(&p->fifo)))
					break;
				if (e) {
					e->ts = h.timestamp, e->part = h.part;
					e->heap_resp = (h.flags & HPSI_F_HEAP_RESP) != 0;
					e->resp_off = h.resp_off, e->resp_cap = h.resp_cap;
				}
				size_t keys_bytes = (size_t)h.nkeys * 8 + hpsi_lens_bytes(h.nlens);
				int zero_copy = (h.flags & HPSI_F_HEAP_VALS) && h.val_bytes >= ZC_MIN && e;
				/* wire form: everything inline; the answer's room travels as resp_cap */
				h.resp_cap = (h.flags & HPSI_F_HEAP_RESP) ? h.resp_cap : 0;
				h.flags &= HPSI_F_LENS;
				h.keys_off = h.vals_off = h.resp_off = 0;
				uint32_t host = b->host_of_server[s];
				if (zero_copy && (e->zc = calloc(1, sizeof *e->zc)))
					send_zero_copy(b, host, w, s, &h, v.keys, keys_bytes, v.vals, e->zc);
				else
					append(b, host, w, s, &h, h.nkeys ? (const void *)v.keys : NULL, h.nkeys ? keys_bytes : 0,
					       v.vals, h.val_bytes);
				hpsi_ring_consume(&p->cons, len);
				moved = 1;
				if (++n % 64 == 0)
					hpsi_ring_cons_publish(&p->cons);
			}
			hpsi_ring_cons_publish(&p->cons);
		}
	}
	return moved;
}

/* Local servers' answers to remote workers. */
static int forward_answers(struct bridge *b)
{
	int moved = 0;
	for (uint32_t w = 0; w < b->W; w++) {
		if (local_worker(b, w))
			continue;
		struct hpsi_msg_bounds heap = slice_of(b, w);
		for (uint32_t s = b->seg.hdr->srv_lo; s < b->seg.hdr->srv_hi; s++) {
			struct pair *p = pair_of(b, w, s);
			size_t len;
			void *rec;
			while ((rec = hpsi_ring_peek(&p->cons, &len))) {
				struct hpsi_msg_view v;
				const char *why;
				struct entry *e = fifo_front(&p->fifo);
				if (hpsi_msg_check(rec, len, &heap, &v, &why) || v.hdr->type != HPSI_MSG_RESPONSE || !e ||
				    e->ts != v.hdr->timestamp) {
					bad(b, v.hdr ? "an answer to no request in flight" : why);
					hpsi_ring_consume(&p->cons, len);
					continue;
				}
				struct hpsi_msg_hdr h = *v.hdr;
				size_t lens_bytes = hpsi_lens_bytes(h.nlens);
				h.flags &= HPSI_F_LENS;
				h.resp_off = h.resp_cap = 0;
				append(b, b->host_of_worker[w], w, s, &h, h.nlens ? (const void *)v.lens : NULL,
				       h.nlens ? lens_bytes : 0, v.vals, h.val_bytes);
				for (int i = 0; i < 3; i++)
					if (e->bufs[i])
						hpsi_heap_free(b->heaps[w], e->bufs[i]);
				fifo_pop(&p->fifo);
				hpsi_ring_consume(&p->cons, len);
				moved = 1;
			}
			hpsi_ring_cons_publish(&p->cons);
		}
	}
	return moved;
}

/* ---- delivering --------------------------------------------------------- */

static void *heap_copy(struct bridge *b, uint32_t w, const void *src, size_t n, uint64_t *off)
{
	if (!b->heaps[w] && hpsi_heap_create(hpsi_seg_heap(&b->seg, w), b->seg.hdr->heap_slice, &b->heaps[w]))
		return NULL;
	void *p = hpsi_heap_alloc(b->heaps[w], n ? n : 8);
	if (p && src)
		memcpy(p, src, n);
	if (p)
		*off = (uint64_t)((unsigned char *)p - b->seg.base);
	return p;
}

/* Writes a remote worker's request (wire form: keys|lens inline, values at
 * vals) into the local server's ring. 0 when it is in, 1 when the ring (or
 * the heap) is full for now, <0 when it can never go in. */
static int deliver_request(struct bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			   const void *keys, const void *vals)
{
	struct pair *p = pair_of(b, w, s);
	struct hpsi_msg_hdr h = *in;
	size_t keys_bytes = (size_t)h.nkeys * 8 + hpsi_lens_bytes(h.nlens);
	size_t esz = hpsi_dtype_size(h.dtype);
	int pull = h.type == HPSI_MSG_PULL || h.type == HPSI_MSG_PUSHPULL;
	uint64_t answer = pull && h.width ? (uint64_t)h.nkeys * h.width * esz : 0;
	void *bufs[3] = {0};
	h.flags &= ~(HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS | HPSI_F_HEAP_RESP);
	size_t body = keys_bytes + h.val_bytes;
	if (h.type == HPSI_MSG_CLOCK)
		body = 0;
	if (sizeof h + body > b->max_payload) {
		if (!(bufs[0] = heap_copy(b, w, keys, keys_bytes, &h.keys_off)) ||
		    (h.val_bytes && !(bufs[1] = heap_copy(b, w, vals, h.val_bytes, &h.vals_off))))
			goto full;
		h.flags |= HPSI_F_HEAP_KEYS | (h.val_bytes ? HPSI_F_HEAP_VALS : 0);
		body = 0;
	}
	if (pull && (h.resp_cap || answer > b->answer_max)) {
		uint64_t cap = h.resp_cap > answer ? h.resp_cap : answer;
		if (!(bufs[2] = heap_copy(b, w, NULL, cap, &h.resp_off)))
			goto full;
		h.resp_cap = cap;
		h.flags |= HPSI_F_HEAP_RESP;
	} else {
		h.resp_cap = 0;
	}
	unsigned char *dst = hpsi_ring_reserve(&p->prod, sizeof h + body);
	struct entry *e = NULL;
	if (!dst || (h.type != HPSI_MSG_CLOCK && !(e = fifo_push(&p->fifo))))
		goto full;
	memcpy(dst, &h, sizeof h);
	if (body) {
		memcpy(dst + sizeof h, keys, keys_bytes);
		if (h.val_bytes)
			memcpy(dst + sizeof h + keys_bytes, vals, h.val_bytes);
	}
	hpsi_ring_commit(&p->prod, sizeof h + body);
	if (e) {
		e->ts = h.timestamp, e->part = h.part;
		memcpy(e->bufs, bufs, sizeof bufs);
	}
	return 0;
full:
	for (int i = 0; i < 3; i++)
		if (bufs[i])
			hpsi_heap_free(b->heaps[w], bufs[i]);
	return 1;
}

/* Writes an answer from a remote server into the local worker's ring (and
 * its answer buffer). 0 in, 1 not yet (ring full, or the values of its
 * request still being sent), <0 never. */
static int deliver_answer(struct bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in, const void *body)
{
	struct pair *p = pair_of(b, w, s);
	struct entry *e = fifo_front(&p->fifo);
	if (!e || e->ts != in->timestamp || e->part != in->part)
		return -1;
	if (e->zc && !atomic_load_explicit(&e->zc->done, memory_order_acquire))
		return 1;
	struct hpsi_msg_hdr h = *in;
	size_t n = hpsi_lens_bytes(h.nlens) + h.val_bytes;
	unsigned char *dst;
	if (e->heap_resp) {
		struct hpsi_msg_bounds heap = slice_of(b, w);
		if (n > e->resp_cap || e->resp_off < heap.lo || e->resp_cap > heap.hi - e->resp_off)
			return -1;
		if (!(dst = hpsi_ring_reserve(&p->prod, sizeof h)))
			return 1;
		memcpy(b->seg.base + e->resp_off, body, n);
		h.flags |= HPSI_F_HEAP_RESP;
		h.resp_off = e->resp_off, h.resp_cap = e->resp_cap;
		memcpy(dst, &h, sizeof h);
		hpsi_ring_commit(&p->prod, sizeof h);
	} else {
		if (!(dst = hpsi_ring_reserve(&p->prod, sizeof h + n)))
			return sizeof h + n > b->max_payload ? -1 : 1;
		memcpy(dst, &h, sizeof h);
		memcpy(dst + sizeof h, body, n);
		hpsi_ring_commit(&p->prod, sizeof h + n);
	}
	free(e->zc);
	fifo_pop(&p->fifo);
	return 0;
}

/* Delivers a received message, or queues it behind the pair's held ones. */
static void deliver(struct bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *h, const void *keys,
		    const void *vals)
{
	struct pair *p = pair_of(b, w, s);
	int answer = h->type == HPSI_MSG_RESPONSE;
	int rc = 1;
	if (!p->held)
		rc = answer ? deliver_answer(b, w, s, h, keys) : deliver_request(b, w, s, h, keys, vals);
	if (rc < 0) {
		bad(b, "an answer that matches no request in flight");
		return;
	}
	uint32_t node = answer ? hpsi_worker_node(&b->seg, w) : s;
	if (rc == 0) {
		hpsi_ring_publish(&p->prod);
		hpsi_bell_ring(&hpsi_seg_node(&b->seg, node)->bell);
		return;
	}
	/* hold a whole copy: wire form with the values inline */
	b->held_total++;
	size_t keys_bytes = answer ? hpsi_lens_bytes(h->nlens) : (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
	if (h->type == HPSI_MSG_CLOCK)
		keys_bytes = 0;
	size_t vals_bytes = h->type == HPSI_MSG_CLOCK ? 0 : h->val_bytes;
	struct held *m = malloc(sizeof *m + sizeof *h + keys_bytes + vals_bytes);
	if (!m) {
		hpsi_error("bridge: out of memory holding a message");
		return;
	}
	m->next = NULL;
	m->len = (uint32_t)(sizeof *h + keys_bytes + vals_bytes);
	memcpy(m->msg, h, sizeof *h);
	if (answer) {
		memcpy(m->msg + sizeof *h, keys, keys_bytes + vals_bytes); /* lens|vals are contiguous */
	} else {
		memcpy(m->msg + sizeof *h, keys, keys_bytes);
		memcpy(m->msg + sizeof *h + keys_bytes, vals, vals_bytes);
	}
	((struct hpsi_msg_hdr *)m->msg)->flags &= HPSI_F_LENS;
	if (p->held_tail)
		p->held_tail->next = m;
	else
		p->held = m;
	p->held_tail = m;
}

static int retry_held(struct bridge *b)
{
	int moved = 0;
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct pair *p = pair_of(b, w, s);
			int any = 0;
			while (p->held) {
				struct held *m = p->held;
				const struct hpsi_msg_hdr *h = (const void *)m->msg;
				const unsigned char *body = m->msg + sizeof *h;
				size_t kb = (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
				int rc = h->type == HPSI_MSG_RESPONSE ? deliver_answer(b, w, s, h, body)
								      : deliver_request(b, w, s, h, body, body + kb);
				if (rc > 0)
					break;
				p->held = m->next;
				if (!p->held)
					p->held_tail = NULL;
				free(m);
				any = moved = 1;
			}
			if (any) {
				hpsi_ring_publish(&p->prod);
				uint32_t node = local_worker(b, w) ? hpsi_worker_node(&b->seg, w) : s;
				hpsi_bell_ring(&hpsi_seg_node(&b->seg, node)->bell);
			}
		}
	return moved;
}

/* ---- receiving ---------------------------------------------------------- */

static void handle_batch(struct bridge *b, uint32_t from, const void *buf, size_t len, const void *vals_frame,
			 size_t vals_len, int nframes)
{
	struct hpsi_batch_reader r;
	const char *why;
	if (hpsi_batch_open(&r, buf, len, &why)) {
		bad(b, why);
		return;
	}
	if (r.from != from || r.vals_frame != (nframes == 2)) {
		bad(b, r.from != from ? "a batch naming another host" : "value frame missing or unexpected");
		return;
	}
	struct hpsi_rec_hdr rec;
	const void *msg;
	int rc;
	while ((rc = hpsi_batch_next(&r, &rec, &msg, &why)) == 1) {
		struct hpsi_msg_view v;
		/* a value frame is the only heap a message may point into: offset 0 */
		struct hpsi_msg_bounds vb = {(unsigned char *)vals_frame, 0, vals_len};
		if (hpsi_msg_check(msg, rec.len, r.vals_frame ? &vb : NULL, &v, &why)) {
			bad(b, why);
			continue;
		}
		const struct hpsi_msg_hdr *h = v.hdr;
		int answer = h->type == HPSI_MSG_RESPONSE;
		if (rec.worker >= b->W || rec.server >= b->S || (r.vals_frame && (answer || h->vals_off != 0 ||
										 h->val_bytes != vals_len))) {
			bad(b, "a record naming no such worker or server");
			continue;
		}
		/* requests: a worker of the sending host to a server here;
		 * answers: a server of the sending host to a worker here */
		if (answer ? (h->sender != rec.server || b->host_of_server[rec.server] != from ||
			      !local_worker(b, rec.worker))
			   : (h->sender != rec.worker || b->host_of_worker[rec.worker] != from ||
			      !local_server(b, rec.server))) {
			bad(b, "a record from or to the wrong host");
			continue;
		}
		deliver(b, rec.worker, rec.server, h, answer ? (const void *)v.lens : (const void *)v.keys, v.vals);
	}
	if (rc < 0)
		bad(b, why);
}

static int recv_peers(struct bridge *b)
{
	int moved = 0;
	for (;;) {
		zmq_msg_t parts[4];
		int n = 0, more = 1;
		while (more) {
			zmq_msg_t *m = &parts[n < 4 ? n : 3];
			if (n >= 4)
				zmq_msg_close(m);
			zmq_msg_init(m);
			if (zmq_msg_recv(m, b->router, n ? 0 : ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(m);
				return moved;
			}
			more = zmq_msg_more(m);
			n++;
		}
		int kept = n < 4 ? n : 4;
		moved = 1;
		uint32_t from = UINT32_MAX;
		if (zmq_msg_size(&parts[0]) == 5 && ((char *)zmq_msg_data(&parts[0]))[0] == 'b') {
			uint32_t id;
			memcpy(&id, (char *)zmq_msg_data(&parts[0]) + 1, 4);
			from = id < b->nhosts && id != b->me ? id : UINT32_MAX;
		}
		if (from == UINT32_MAX || n < 2 || n > 3) {
			bad(b, from == UINT32_MAX ? "a peer that is no host of the job" : "wrong number of frames");
		} else {
			/* ZeroMQ hands out frames at any address; records are read in place, so
			 * a frame that is not 8-byte aligned is copied first */
			const void *batch = zmq_msg_data(&parts[1]);
			size_t blen = zmq_msg_size(&parts[1]);
			if ((uintptr_t)batch % 8) {
				if (blen > b->align_cap) {
					free(b->align_buf);
					b->align_cap = blen * 2;
					b->align_buf = malloc(b->align_cap);
				}
				if (b->align_buf)
					memcpy(b->align_buf, batch, blen);
				batch = b->align_buf;
			}
			if (batch)
				handle_batch(b, from, batch, blen, n == 3 ? zmq_msg_data(&parts[2]) : NULL,
					     n == 3 ? zmq_msg_size(&parts[2]) : 0, n - 1);
		}
		for (int i = 0; i < kept; i++)
			zmq_msg_close(&parts[i]);
	}
}

/* ---- scheduler ---------------------------------------------------------- */

static void send_sched(struct bridge *b, const void *m, size_t len)
{
	zmq_send(b->sched, m, len, ZMQ_DONTWAIT);
}

static void heartbeat(struct bridge *b)
{
	struct hpsi_sched_states m = {0};
	hpsi_sched_init(&m.h, HPSI_SCH_HEARTBEAT, b->me);
	m.nnodes = b->S + b->W;
	for (uint32_t n = 0; n < m.nnodes; n++)
		if (hpsi_node_local(&b->seg, n))
			m.state[n] = (uint8_t)hpsi_node_check(&b->seg, n);
	send_sched(b, &m, sizeof m);
}

static void apply_states(struct bridge *b, const struct hpsi_sched_states *m)
{
	int changed = 0;
	for (uint32_t n = 0; n < m->nnodes && n < b->S + b->W; n++) {
		if (hpsi_node_local(&b->seg, n) || (m->state[n] != HPSI_NODE_DEAD && m->state[n] != HPSI_NODE_CLOSED))
			continue;
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		uint32_t cur = HPSI_NODE_ALIVE;
		/* release: pairs with the acquire of whoever checks the node */
		if (atomic_compare_exchange_strong_explicit(&node->state, &cur, m->state[n], memory_order_acq_rel,
							    memory_order_acquire))
			changed = 1;
	}
	if (changed)
		hpsi_wake_all(&b->seg);
}

static void lose_scheduler(struct bridge *b)
{
	hpsi_error("bridge %s: no word from the scheduler at %s for %lld ms (HPS_DEAD_MS): remote nodes count as dead",
		   b->cfg.host, b->cc.root_ep, (long long)b->cc.dead_ms);
	b->sched_lost = 1;
	for (uint32_t n = 0; n < b->S + b->W; n++)
		if (!hpsi_node_local(&b->seg, n)) {
			uint32_t cur = HPSI_NODE_ALIVE;
			atomic_compare_exchange_strong(&hpsi_seg_node(&b->seg, n)->state, &cur, HPSI_NODE_DEAD);
		}
	hpsi_wake_all(&b->seg);
}

static void barrier_release(struct bridge *b, uint32_t gen)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	if (atomic_load_explicit(&h->barrier_gen, memory_order_acquire) != gen)
		return;
	atomic_store_explicit(&h->barrier_arrived, 0, memory_order_relaxed);
	/* release: pairs with the waiting workers' acquire (runtime/client/barrier.c) */
	atomic_fetch_add_explicit(&h->barrier_gen, 1, memory_order_release);
	hpsi_futex_wake(&h->barrier_gen);
}

static int recv_sched(struct bridge *b)
{
	static union {
		struct hpsi_sched_hdr h;
		struct hpsi_sched_states st;
		unsigned char raw[sizeof(struct hpsi_sched_assign)];
	} m;
	int moved = 0;
	for (;;) {
		int n = zmq_recv(b->sched, &m, sizeof m, ZMQ_DONTWAIT);
		if (n < 0)
			return moved;
		moved = 1;
		const char *why;
		if ((size_t)n > sizeof m || hpsi_sched_check(&m, (size_t)n, &why)) {
			bad(b, (size_t)n > sizeof m ? "scheduler message too large" : why);
			continue;
		}
		b->last_sched = hpsi_now_ns();
		if (m.h.type == HPSI_SCH_STATES)
			apply_states(b, &m.st);
		else if (m.h.type == HPSI_SCH_RELEASE)
			barrier_release(b, m.h.gen);
		else if (m.h.type == HPSI_SCH_ABORT)
			hpsi_error("bridge %s: the scheduler stopped the job: %s", b->cfg.host,
				   ((struct hpsi_sched_abort *)&m)->reason);
	}
}

/* The local workers all reached the barrier: tell the scheduler once. */
static void barrier_check(struct bridge *b)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	uint32_t local = h->wrk_hi - h->wrk_lo;
	uint32_t gen = atomic_load_explicit(&h->barrier_gen, memory_order_acquire);
	if (!local || b->barrier_sent == gen + 1 ||
	    atomic_load_explicit(&h->barrier_arrived, memory_order_acquire) != local)
		return;
	struct hpsi_sched_hdr m;
	hpsi_sched_init(&m, HPSI_SCH_BARRIER, b->me);
	m.gen = gen;
	send_sched(b, &m, sizeof m);
	b->barrier_sent = gen + 1;
}

/* ---- waking up ---------------------------------------------------------- */

/* Any ring the bridge consumes holds a record (any thread may ask). */
static int rings_pending(void *arg)
{
	struct bridge *b = arg;
	for (size_t i = 0; i < (size_t)b->W * b->S; i++)
		if (b->pairs[i].used && hpsi_ring_pending(b->pairs[i].cons.r))
			return 1;
	return 0;
}

/* Sleeps until a peer, the scheduler or a ring has something (or 100 ms):
 * local processes that publish into our rings while we sleep send a
 * datagram to wake_fd (shm/wake.h has the ordering). */
static void idle_wait(struct bridge *b)
{
	hpsi_wake_sleeping(&b->seg, 1);
	if (!rings_pending(b)) { /* what was published before we said so */
		zmq_pollitem_t it[3] = {{.socket = b->router, .events = ZMQ_POLLIN},
					{.socket = b->sched, .events = ZMQ_POLLIN},
					{.fd = b->wake_fd, .events = ZMQ_POLLIN}};
		long ms = b->cc.heartbeat_ms < 100 ? (long)b->cc.heartbeat_ms : 100;
		zmq_poll(it, 3, ms);
	}
	hpsi_wake_sleeping(&b->seg, 0);
	hpsi_wake_drain(b->wake_fd);
}

/* ---- start -------------------------------------------------------------- */

static int register_host(struct bridge *b, uint32_t nsrv, uint32_t nwrk)
{
	struct hpsi_sched_register r = {0};
	hpsi_sched_init(&r.h, HPSI_SCH_REGISTER, 0);
	snprintf(r.name, sizeof r.name, "%s", b->cfg.host);
	snprintf(r.endpoint, sizeof r.endpoint, "%s", b->endpoint);
	r.nservers = nsrv, r.nworkers = nwrk;
	r.total_servers = b->cfg.nservers, r.total_workers = b->cfg.nworkers;
	static const char *const shared[HPSI_NSHARED] = HPSI_SHARED_SETTINGS;
	for (int i = 0; i < HPSI_NSHARED; i++)
		r.settings[i] = hpsi_settings_hash(shared[i]);
	zmq_send(b->sched, &r, sizeof r, 0);
	int64_t deadline = hpsi_now_ns() + b->cc.register_ms * 1000000;
	while (!stop_signal) {
		int64_t left = (deadline - hpsi_now_ns()) / 1000000;
		if (left <= 0) {
			hpsi_error("bridge %s: the scheduler at %s did not answer within HPS_REGISTER_MS=%lld (HPS_ROOT_URI, HPS_ROOT_PORT)",
				   b->cfg.host, b->cc.root_ep, (long long)b->cc.register_ms);
			return HPS_ETIMEDOUT;
		}
		zmq_pollitem_t it = {.socket = b->sched, .events = ZMQ_POLLIN};
		if (zmq_poll(&it, 1, left < 100 ? left : 100) <= 0)
			continue;
		int n = zmq_recv(b->sched, &b->assign, sizeof b->assign, 0);
		const char *why;
		if (n < 0 || (size_t)n > sizeof b->assign || hpsi_sched_check(&b->assign, (size_t)n, &why))
			continue;
		if (b->assign.h.type == HPSI_SCH_ABORT) {
			hpsi_error("bridge %s: the scheduler refused the job: %s", b->cfg.host,
				   ((struct hpsi_sched_abort *)&b->assign)->reason);
			return HPS_ECONFIG;
		}
		if (b->assign.h.type == HPSI_SCH_ASSIGN)
			return 0;
	}
	return HPS_ECLOSED;
}

static int setup(struct bridge *b)
{
	struct hpsi_sched_assign *a = &b->assign;
	b->me = a->h.host, b->nhosts = a->nhosts, b->S = a->nservers, b->W = a->nworkers;
	const struct hpsi_host_entry *mine = &a->hosts[b->me];
	struct hpsi_seg_params sp;
	hpsi_config_seg_params(&b->cfg, &sp);
	sp.nservers = b->S, sp.nworkers = b->W;
	sp.bridged = 1;
	sp.srv_lo = mine->srv_lo, sp.srv_hi = mine->srv_hi, sp.wrk_lo = mine->wrk_lo, sp.wrk_hi = mine->wrk_hi;
	int rc = hpsi_seg_create(&sp, &b->seg);
	if (rc)
		return rc;
	b->max_payload = hpsi_ring_max_payload(b->seg.hdr->ring_bytes);
	b->answer_max = b->max_payload - sizeof(struct hpsi_msg_hdr);
	b->host_of_server = calloc(b->S, sizeof *b->host_of_server);
	b->host_of_worker = calloc(b->W, sizeof *b->host_of_worker);
	b->pairs = calloc((size_t)b->W * b->S, sizeof *b->pairs);
	b->heaps = calloc(b->W, sizeof *b->heaps);
	b->out = calloc(b->nhosts, sizeof *b->out);
	b->dealers = calloc(b->nhosts, sizeof *b->dealers);
	if (!b->host_of_server || !b->host_of_worker || !b->pairs || !b->heaps || !b->out || !b->dealers)
		return HPS_ENOMEM;
	for (uint32_t i = 0; i < b->nhosts; i++) {
		for (uint32_t s = a->hosts[i].srv_lo; s < a->hosts[i].srv_hi; s++)
			b->host_of_server[s] = i;
		for (uint32_t w = a->hosts[i].wrk_lo; w < a->hosts[i].wrk_hi; w++)
			b->host_of_worker[w] = i;
		if (i == b->me)
			continue;
		b->dealers[i] = zmq_socket(b->zctx, ZMQ_DEALER);
		hpsi_zmq_setup(b->dealers[i], 200, 1 << 20); /* it only sends */
		char id[5] = {'b'};
		memcpy(id + 1, &b->me, 4);
		zmq_setsockopt(b->dealers[i], ZMQ_ROUTING_ID, id, sizeof id);
		if (zmq_connect(b->dealers[i], a->hosts[i].endpoint) != 0) {
			hpsi_error("bridge %s: cannot connect to host %s at %s: %s", b->cfg.host, a->hosts[i].name,
				   a->hosts[i].endpoint, zmq_strerror(zmq_errno()));
			return HPS_ECONFIG;
		}
	}
	/* attach to the rings that cross hosts, at the end that is ours */
	uint32_t rb = b->seg.hdr->ring_bytes;
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct pair *p = pair_of(b, w, s);
			if (local_worker(b, w) && !local_server(b, s)) {
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, s, 0), rb);
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, s, 1), rb);
				p->used = 1;
			} else if (!local_worker(b, w) && local_server(b, s)) {
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, s, 0), rb);
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, s, 1), rb);
				p->used = 1;
			}
		}
	return 0;
}

int hpsi_cmd_bridge(int argc, char **argv)
{
	if (argc > 1) {
		printf("usage: hps bridge\n\n"
		       "Runs the bridge of this host in a multi-host job (started by `hps launch`):\n"
		       "registers with the scheduler (HPS_ROOT_URI, HPS_ROOT_PORT), creates this host's\n"
		       "segment and forwards traffic for remote key ranges over ZeroMQ.\n"
		       "HPS_LOCAL_SERVERS and HPS_LOCAL_WORKERS: the processes this host runs.\n");
		return strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? 2 : 0;
	}
	static struct bridge br;
	struct bridge *b = &br;
	uint64_t nsrv = 0, nwrk = 0;
	if (hpsi_config_load(&b->cfg, 0) || hpsi_cluster_load(&b->cc, 1) ||
	    hpsi_setting_u64("LOCAL_SERVERS", 0, HPSI_MAX_NODES, &nsrv) ||
	    hpsi_setting_u64("LOCAL_WORKERS", 0, HPSI_MAX_NODES, &nwrk))
		return 2;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	b->zctx = zmq_ctx_new();
	b->router = zmq_socket(b->zctx, ZMQ_ROUTER);
	b->sched = zmq_socket(b->zctx, ZMQ_DEALER);
	/* the largest frame: values of one request, at most a heap slice */
	hpsi_zmq_setup(b->router, 200, (int64_t)b->cfg.heap_slice + (8 << 20));
	hpsi_zmq_setup(b->sched, 200, 1 << 20);
	zmq_setsockopt(b->sched, ZMQ_ROUTING_ID, b->cfg.host, strlen(b->cfg.host));
	int rc = hpsi_zmq_bind_range(b->router, b->cc.node_addr, b->cc.node_ipv6, b->cc.port_lo, b->cc.port_hi,
				     b->endpoint, sizeof b->endpoint);
	if (!rc && zmq_connect(b->sched, b->cc.root_ep) != 0) {
		hpsi_error("bridge: cannot connect to the scheduler at %s: %s (HPS_ROOT_URI)", b->cc.root_ep,
			   zmq_strerror(zmq_errno()));
		rc = HPS_ECONFIG;
	}
	if (!rc)
		rc = register_host(b, (uint32_t)nsrv, (uint32_t)nwrk);
	if (!rc)
		rc = setup(b);
	if (!rc && (b->wake_fd = hpsi_wake_bind(&b->seg)) < 0) {
		hpsi_error("bridge: cannot bind its wake-up socket: %s", strerror(errno));
		rc = HPS_ESYS;
	}
	if (!rc) {
		b->last_sched = hpsi_now_ns();
		int64_t spin_until = 0;
		while (!stop_signal) {
			int moved = retry_held(b);
			moved |= forward_requests(b);
			moved |= forward_answers(b);
			moved |= recv_peers(b);
			moved |= recv_sched(b);
			for (uint32_t i = 0; i < b->nhosts; i++)
				flush(b, i);
			barrier_check(b);
			int64_t now = hpsi_now_ns();
			if (now > b->next_heartbeat) {
				heartbeat(b);
				b->next_heartbeat = now + b->cc.heartbeat_ms * 1000000;
			}
			if (!b->sched_lost && now - b->last_sched > b->cc.dead_ms * 1000000)
				lose_scheduler(b);
			if (moved) {
				spin_until = now + b->cfg.spin_ns;
			} else if (now > spin_until) {
				idle_wait(b);
			} else {
				sched_yield(); /* spinning: let the host's other processes run */
			}
		}
		heartbeat(b);
		hpsi_info("bridge %s: %llu messages waited for room in a ring", b->cfg.host,
			  (unsigned long long)b->held_total);
		struct hpsi_sched_hdr bye;
		hpsi_sched_init(&bye, HPSI_SCH_BYE, b->me);
		send_sched(b, &bye, sizeof bye);
	}
	for (uint32_t i = 0; b->dealers && i < b->nhosts; i++)
		if (b->dealers[i])
			zmq_close(b->dealers[i]);
	zmq_close(b->router);
	zmq_close(b->sched);
	zmq_ctx_term(b->zctx);
	if (b->seg.base)
		hpsi_seg_detach(&b->seg);
	free(b->align_buf);
	return rc ? 1 : 0;
}
