/* The bridge's outbound half (net/bridge.h): requests of local workers to
 * remote servers and answers of local servers to remote workers, consumed
 * from the rings and sent to the peer's host in batches, one ZeroMQ message
 * per host (large values go without a copy, in a frame of their own).
 *
 * Nothing consumed is lost: room for a record is made before its ring
 * record is consumed (no memory: it stays in the ring); a batch ZeroMQ
 * refuses for now waits in the host's queue; a request that cannot be sent
 * at all fails through its FIFO entry (net/bridge.h, Errors). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/bridge_stats.h"
#include "runtime/common/log.h"

#define ZC_MIN (64u << 10)    /* values this large go without a copy */
#define BATCH_FLUSH (1u << 20) /* send a batch once it holds this much */
/* Batches this large go without a copy (send_batch); smaller ones are
 * copied by zmq_send, which costs less than a free callback for them
 * (the latency path: a few hundred bytes) and keeps the open batch. */
#define ZC_BATCH (64u << 10)
/* Spare batch buffers kept per host, in bytes: about what ZeroMQ holds
 * in flight to one peer (HPSI_BRIDGE_SNDHWM batches of BATCH_FLUSH) */
#define SPARE_MAX ((size_t)HPSI_BRIDGE_SNDHWM * 2 * BATCH_FLUSH)

/* ZeroMQ's thread: it no longer reads the values. Release: pairs with the
 * bridge's acquire of done (struct hpsi_bridge_zc). */
static void zc_done(void *data, void *hint)
{
	(void)data;
	atomic_store_explicit(&((struct hpsi_bridge_zc *)hint)->done, 1, memory_order_release);
}

size_t hpsi_bridge_queued(const struct hpsi_bridge *b, uint32_t host)
{
	const struct hpsi_bridge_out *o = &b->out[host];
	return o->queued + (o->open ? o->open->len : 0);
}

/* ZeroMQ's thread: it no longer reads batch `hint`. Release: pairs with
 * the acquire in take_returned (struct hpsi_bridge_out). */
static void batch_done(void *data, void *hint)
{
	(void)data;
	atomic_store_explicit(&((struct hpsi_bridge_frame *)hint)->zmq_done, 1, memory_order_release);
}

static void spare_put(struct hpsi_bridge_out *o, struct hpsi_bridge_frame *f)
{
	if (o->spare_bytes + f->cap > SPARE_MAX) {
		free(f);
		return;
	}
	f->next = o->spare;
	o->spare = f;
	o->spare_bytes += f->cap;
}

/* The batches ZeroMQ is done with, from `sent` into the spares.
 * Acquire: pairs with batch_done's release. */
static void take_returned(struct hpsi_bridge_out *o)
{
	struct hpsi_bridge_frame **at = &o->sent, *f;
	while ((f = *at)) {
		if (atomic_load_explicit(&f->zmq_done, memory_order_acquire)) {
			*at = f->next;
			spare_put(o, f);
		} else {
			at = &f->next;
		}
	}
}

void hpsi_bridge_out_free(struct hpsi_bridge_out *o)
{
	struct hpsi_bridge_frame *f, *n;
	take_returned(o);
	free(o->open);
	for (f = o->q; f; f = n)
		n = f->next, free(f);
	for (f = o->spare; f; f = n)
		n = f->next, free(f);
	for (f = o->sent; f; f = n) /* (ZeroMQ's context is gone: done with all) */
		n = f->next, free(f);
	o->open = o->q = o->q_tail = o->spare = o->sent = NULL;
	o->queued = o->spare_bytes = 0;
}

int hpsi_bridge_batch_room(struct hpsi_bridge_out *o, size_t more)
{
	if (!o->open) { /* a buffer ZeroMQ is done with, its pages mapped */
		take_returned(o);
		struct hpsi_bridge_frame *s = o->spare;
		if (s) {
			o->spare = s->next;
			o->spare_bytes -= s->cap;
			s->next = NULL;
			s->len = 0, s->count = 0;
			o->open = s;
		}
	}
	struct hpsi_bridge_frame *f = o->open;
	size_t len = f && f->len ? f->len : sizeof(struct hpsi_batch_hdr);
	if (f && len + more <= f->cap) {
		f->len = len;
		return 0;
	}
	/* a new buffer as large as the largest one this host's batches took:
	 * growing one by doubling copies it into fresh pages each time */
	size_t cap = f ? f->cap : o->cap_seen ? o->cap_seen : 1 << 16;
	while (cap < len + more)
		cap *= 2;
	if (cap > o->cap_seen)
		o->cap_seen = cap;
	struct hpsi_bridge_frame *n = realloc(f, sizeof *n + cap);
	if (!n)
		return HPS_ENOMEM;
	if (!f)
		n->count = 0, n->next = NULL;
	n->len = len, n->cap = cap;
	o->open = n;
	return 0;
}

/* 0 sent, 1 ZeroMQ's queue to the peer is full, <0 failed (errno kept). */
static int send_frame(void *sock, const void *buf, size_t len, int flags)
{
	for (;;) {
		if (zmq_send(sock, buf, len, flags | ZMQ_DONTWAIT) >= 0)
			return 0;
		if (zmq_errno() == EINTR)
			continue;
		return zmq_errno() == EAGAIN ? 1 : HPS_ESYS;
	}
}

/* A batch that cannot be sent: each request in it fails (its entry keeps
 * the code, the worker gets it in order); answers and clocks in it are
 * gone, which the peer's pairs notice (hpsi_bridge_fifo_lost). */
static void batch_failed(struct hpsi_bridge *b, uint32_t host, const struct hpsi_bridge_frame *f)
{
	int err = zmq_errno();
	struct hpsi_batch_reader r;
	struct hpsi_rec_hdr rec;
	const void *msg;
	const char *why;
	unsigned failed = 0, lost = 0;
	if (hpsi_batch_open(&r, f->data, f->len, &why) == 0)
		while (hpsi_batch_next(&r, &rec, &msg, &why) == 1) {
			const struct hpsi_msg_hdr *h = msg;
			/* records of no pair (their worker word is a server rank or
			 * unused): lost with the batch */
			if (rec.flags & (HPSI_REC_SYNC | HPSI_REC_FORWARD | HPSI_REC_FENCE | HPSI_REC_HANDBACK | HPSI_REC_RESET) ||
			    rec.worker >= b->W || rec.server >= b->S) {
				lost++;
				continue;
			}
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, rec.worker, rec.server);
			long k = h->type == HPSI_MSG_RESPONSE || h->type == HPSI_MSG_CLOCK
					 ? -1
					 : hpsi_bridge_fifo_find(&p->fifo, h->timestamp, h->part);
			if (k >= 0) {
				hpsi_bridge_fifo_at(&p->fifo, (size_t)k)->status = HPS_ESYS;
				hpsi_bridge_count_failed(b, rec.worker, rec.server, HPS_ESYS, "the batch could not be sent");
				failed++;
			} else {
				lost++;
			}
		}
	hpsi_error("bridge %s: cannot send to host %u: %s: %u requests fail, %u answers or clocks lost", b->cfg.host,
		   host, zmq_strerror(err), failed, lost);
}

/* Sends batch f: 0 sent, 1 ZeroMQ's queue to the peer is full, <0 failed
 * (errno kept). *taken: ZeroMQ holds f now, without a copy, in o->sent
 * until it is done with it (batch_done); else f is still the caller's.
 * The caller reads what it needs of f (next, len) before. */
static int send_batch(struct hpsi_bridge_out *o, void *sock, struct hpsi_bridge_frame *f, int *taken)
{
	*taken = 0;
	if (f->len < ZC_BATCH)
		return send_frame(sock, f->data, f->len, 0); /* small: zmq_send's copy */
	zmq_msg_t m;
	atomic_store_explicit(&f->zmq_done, 0, memory_order_relaxed); /* (this thread's alone until sent) */
	if (zmq_msg_init_data(&m, f->data, f->len, batch_done, f) != 0)
		return send_frame(sock, f->data, f->len, 0); /* no memory for the message: a copy */
	for (;;) {
		if (zmq_msg_send(&m, sock, ZMQ_DONTWAIT) >= 0) {
			f->next = o->sent;
			o->sent = f;
			*taken = 1;
			return 0;
		}
		int err = zmq_errno();
		if (err == EINTR)
			continue;
		/* not sent: closing it runs batch_done here; f stays ours */
		zmq_msg_close(&m);
		errno = err;
		return err == EAGAIN ? 1 : HPS_ESYS;
	}
}

void hpsi_bridge_flush(struct hpsi_bridge *b, uint32_t host)
{
	if (!b->dealers[host])
		return; /* this host, or one that joins later (hpsi_bridge_connect) */
	struct hpsi_bridge_out *o = &b->out[host];
	struct hpsi_bridge_frame *f = o->open;
	if (f && f->count) {
		struct hpsi_batch_hdr h = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, f->count, b->me};
		memcpy(f->data, &h, sizeof h);
		int taken = 0;
		size_t len = f->len;
		int rc = o->q ? 1 : send_batch(o, b->dealers[host], f, &taken);
		if (rc == 0)
			hpsi_bstat_sent(b, host, len);
		if (rc < 0)
			batch_failed(b, host, f);
		if (taken) { /* ZeroMQ's now: the next batch takes a spare */
			o->open = NULL;
		} else if (rc <= 0) { /* keep the buffer for the next batch */
			f->len = 0, f->count = 0;
		} else { /* wait in the queue, after those already there */
			f->next = NULL;
			if (o->q_tail)
				o->q_tail->next = f;
			else
				o->q = f;
			o->q_tail = f;
			o->queued += f->len;
			o->open = NULL;
		}
	}
	while ((f = o->q)) {
		int taken = 0;
		struct hpsi_bridge_frame *next = f->next; /* (send_batch links f into `sent` once taken) */
		size_t len = f->len;
		int rc = send_batch(o, b->dealers[host], f, &taken);
		if (rc > 0)
			break;
		if (rc == 0)
			hpsi_bstat_sent(b, host, len);
		if (rc < 0)
			batch_failed(b, host, f);
		o->q = next;
		if (!o->q)
			o->q_tail = NULL;
		o->queued -= len;
		if (!taken)
			spare_put(o, f);
	}
	hpsi_bstat_queue(b, host);
}

void hpsi_bridge_append(struct hpsi_bridge *b, uint32_t host, uint32_t w, uint32_t s, uint32_t rec_flags,
			const struct hpsi_msg_hdr *h, const void *p1, size_t n1, const void *p2, size_t n2)
{
	if (!b->dealers[host])
		return; /* a host that joins later and did not yet: nothing of the job is there (hpsi_bridge_connect) */
	struct hpsi_bridge_frame *o = b->out[host].open;
	size_t len = sizeof *h + n1 + n2;
	struct hpsi_rec_hdr r = {(uint32_t)len, w, s, rec_flags};
	unsigned char *at = o->data + o->len;
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
		hpsi_bridge_flush(b, host);
}

/* A request whose values stay in the worker's heap: its own message, the
 * values as a second frame that ZeroMQ reads in place. The batches before
 * it must be gone (the order of the pair). 0 sent, 1 not now (nothing
 * sent), <0 failed. */
static int send_zero_copy(struct hpsi_bridge *b, uint32_t host, uint32_t w, uint32_t s, struct hpsi_msg_hdr *h,
			  const void *keys, size_t keys_bytes, const void *vals, struct hpsi_bridge_zc *zc)
{
	size_t len = sizeof *h + keys_bytes;
	size_t total = sizeof(struct hpsi_batch_hdr) + hpsi_batch_rec_bytes(len);
	unsigned char *buf = calloc(1, total);
	if (!buf)
		return 1;
	struct hpsi_batch_hdr bh = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, HPSI_REC_VALS_FRAME, 1, b->me};
	struct hpsi_rec_hdr r = {(uint32_t)len, w, s, HPSI_REC_VALS_FRAME};
	h->flags |= HPSI_F_HEAP_VALS; /* at offset 0 of the next frame */
	memcpy(buf, &bh, sizeof bh);
	memcpy(buf + sizeof bh, &r, sizeof r);
	memcpy(buf + sizeof bh + sizeof r, h, sizeof *h);
	memcpy(buf + sizeof bh + sizeof r + sizeof *h, keys, keys_bytes);
	/* the values' frame first: once the first part is sent the second must
	 * follow, and this is the step that may fail for want of memory */
	zmq_msg_t m;
	if (zmq_msg_init_data(&m, (void *)vals, h->val_bytes, zc_done, zc) != 0) {
		free(buf);
		return 1;
	}
	int rc = send_frame(b->dealers[host], buf, total, ZMQ_SNDMORE);
	free(buf);
	if (rc) {
		zmq_msg_close(&m); /* never sent: closing it runs zc_done here */
		return rc;
	}
	/* ZeroMQ counts whole messages against its limit: the second part of
	 * a message whose first part it took is never refused for room */
	while (zmq_msg_send(&m, b->dealers[host], 0) < 0) {
		if (zmq_errno() == EINTR)
			continue;
		hpsi_error("bridge %s: cannot send values to host %u: %s", b->cfg.host, host, zmq_strerror(zmq_errno()));
		zmq_msg_close(&m); /* still ours: closing it runs zc_done */
		return HPS_ESYS;
	}
	hpsi_bstat_sent(b, host, total + h->val_bytes);
	return 0;
}

/* Local workers' requests to remote servers. A pair stops (its requests
 * stay in the ring, the worker sees it fill) while its host's queue is
 * full or while memory for a record is short. */
int hpsi_bridge_forward_requests(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t w = b->seg.hdr->wrk_lo; w < b->seg.hdr->wrk_hi; w++) {
		struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			if (p->used != HPSI_PAIR_ORIGIN)
				continue;
			uint32_t host = p->host;
			size_t len;
			void *rec;
			int n = 0;
			while ((rec = hpsi_ring_peek(&p->cons, &len))) {
				struct hpsi_msg_view v;
				const char *why;
				if (hpsi_msg_check(rec, len, &heap, &v, &why) || v.hdr->type == HPSI_MSG_RESPONSE) {
					hpsi_msg_count_bad(v.hdr ? "a response in a request ring" : why);
					hpsi_ring_consume(&p->cons, len);
					continue;
				}
				if (hpsi_bridge_queued(b, host) >= HPSI_BRIDGE_QUEUE_MAX)
					break; /* backpressure: the peer reads too slowly */
				struct hpsi_msg_hdr h = *v.hdr;
				int clock = h.type == HPSI_MSG_CLOCK;
				size_t keys_bytes = (size_t)h.nkeys * 8 + hpsi_lens_bytes(h.nlens);
				int zero_copy = (h.flags & HPSI_F_HEAP_VALS) && h.val_bytes >= ZC_MIN && !clock;
				size_t n1 = h.nkeys ? keys_bytes : 0, n2 = zero_copy ? 0 : h.val_bytes;
				if (zero_copy) {
					hpsi_bridge_flush(b, host); /* keep the order of this pair's messages */
					if (b->out[host].q)
						break;
				} else if (hpsi_bridge_batch_room(&b->out[host],
								  hpsi_batch_rec_bytes(sizeof h + n1 + n2))) {
					break;
				}
				struct hpsi_bridge_entry *e = NULL;
				if (!clock && !(e = hpsi_bridge_fifo_push(&p->fifo)))
					break;
				if (e) {
					hpsi_bridge_inflight(b, w, 1);
					e->at = p->cons.head; /* the record's start: peek skipped any pad */
					e->ts = h.timestamp, e->part = h.part;
					e->heap_resp = (h.flags & HPSI_F_HEAP_RESP) != 0;
					e->resp_off = h.resp_off, e->resp_cap = h.resp_cap;
				}
				/* wire form: everything inline; the answer's room travels as resp_cap */
				h.resp_cap = (h.flags & HPSI_F_HEAP_RESP) ? h.resp_cap : 0;
				h.flags &= HPSI_F_LENS;
				h.keys_off = h.vals_off = h.resp_off = 0;
				if (zero_copy) {
					int rc = (e->zc = calloc(1, sizeof *e->zc))
							 ? send_zero_copy(b, host, w, s, &h, v.keys, keys_bytes, v.vals, e->zc)
							 : 1;
					if (rc > 0) { /* not taken: it stays in the ring */
						free(e->zc);
						hpsi_bridge_fifo_unpush(&p->fifo);
						hpsi_bridge_inflight(b, w, -1);
						break;
					}
					if (rc < 0) {
						e->status = rc;
						hpsi_bridge_count_failed(b, w, s, rc, "its values could not be sent");
					}
				} else {
					hpsi_bridge_append(b, host, w, s, 0, &h, n1 ? (const void *)v.keys : NULL, n1,
							   v.vals, n2);
				}
				hpsi_ring_consume(&p->cons, len);
				moved = 1;
				if (++n % 64 == 0)
					hpsi_bridge_origin_release(b, p);
			}
			hpsi_bridge_origin_release(b, p);
		}
	}
	return moved;
}

/* The heap buffers the bridge gave the server for the request at the front
 * go back to the worker's slice, and the entry goes. */
static void answered(struct hpsi_bridge *b, uint32_t w, struct hpsi_bridge_pair *p)
{
	struct hpsi_bridge_entry *e = hpsi_bridge_fifo_front(&p->fifo);
	for (int i = 0; i < 3; i++)
		if (e->bufs[i]) {
			hpsi_heap_free(b->heaps[w], e->bufs[i]);
			b->heap_live[w]--;
		}
	hpsi_bridge_fifo_pop(&p->fifo);
}

/* Sends the error answers of failed entries at the front of a remote
 * worker's pair; 1 when memory for one is short. */
static int send_failed(struct hpsi_bridge *b, uint32_t w, uint32_t s, struct hpsi_bridge_pair *p)
{
	struct hpsi_bridge_entry *e;
	uint32_t host = b->host_of_worker[w];
	while ((e = hpsi_bridge_fifo_front(&p->fifo)) && e->status) {
		struct hpsi_msg_hdr h;
		if (hpsi_bridge_batch_room(&b->out[host], hpsi_batch_rec_bytes(sizeof h)))
			return 1;
		hpsi_msg_init(&h, HPSI_MSG_RESPONSE, s, e->ts);
		h.part = e->part;
		h.status = e->status;
		hpsi_bridge_append(b, host, w, s, 0, &h, NULL, 0, NULL, 0);
		answered(b, w, p);
	}
	return 0;
}

/* Local servers' answers to remote workers (never held back for the peer:
 * they are bounded by the requests it sent). */
int hpsi_bridge_forward_answers(struct hpsi_bridge *b)
{
	/* the forwards the servers published before these answers go first */
	int moved = hpsi_bridge_fwd_send(b);
	for (uint32_t w = 0; w < b->W; w++) {
		if (hpsi_bridge_local_worker(b, w))
			continue;
		struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
		uint32_t host = b->host_of_worker[w];
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			if (p->used != HPSI_PAIR_INBOUND)
				continue;
			size_t before = p->fifo.n;
			size_t len;
			void *rec;
			while (!send_failed(b, w, s, p) && (rec = hpsi_ring_peek(&p->cons, &len))) {
				struct hpsi_msg_view v;
				const char *why;
				struct hpsi_bridge_entry *e = hpsi_bridge_fifo_front(&p->fifo);
				if (hpsi_msg_check(rec, len, &heap, &v, &why) || v.hdr->type != HPSI_MSG_RESPONSE) {
					hpsi_msg_count_bad(v.hdr ? "a request in an answer ring" : why);
					hpsi_ring_consume(&p->cons, len);
					moved = 1;
					continue;
				}
				if (v.hdr->flags & HPSI_F_REPLICA) {
					/* a backup's ack answers no request of this pair: it
					 * goes as it is, past the FIFO (net/bridge_fwd.c) */
					if (hpsi_bridge_batch_room(&b->out[host], hpsi_batch_rec_bytes(sizeof *v.hdr)))
						break;
					struct hpsi_msg_hdr a = *v.hdr;
					a.flags = HPSI_F_REPLICA;
					a.nlens = 0, a.val_bytes = 0;
					a.keys_off = a.vals_off = a.resp_off = a.resp_cap = 0;
					hpsi_bridge_append(b, host, w, s, 0, &a, NULL, 0, NULL, 0);
					hpsi_ring_consume(&p->cons, len);
					moved = 1;
					continue;
				}
				if (!e || e->ts != v.hdr->timestamp || e->part != v.hdr->part) {
					long k = hpsi_bridge_fifo_find(&p->fifo, v.hdr->timestamp, v.hdr->part);
					if (k > 0) { /* answers before it were lost: they fail first */
						hpsi_bridge_fifo_lost(&p->fifo, k);
						continue;
					}
					hpsi_msg_count_bad("an answer to no request in flight");
					hpsi_ring_consume(&p->cons, len);
					moved = 1;
					continue;
				}
				struct hpsi_msg_hdr h = *v.hdr;
				size_t lens_bytes = h.nlens ? hpsi_lens_bytes(h.nlens) : 0;
				size_t bytes = hpsi_batch_rec_bytes(sizeof h + lens_bytes + h.val_bytes);
				if (hpsi_bridge_batch_room(&b->out[host], bytes))
					break; /* it stays in the ring until memory is back */
				h.flags &= HPSI_F_LENS;
				h.resp_off = h.resp_cap = 0;
				const void *lens = h.nlens ? (const void *)v.lens : NULL;
				hpsi_bridge_append(b, host, w, s, 0, &h, lens, lens_bytes, v.vals, h.val_bytes);
				answered(b, w, p);
				hpsi_ring_consume(&p->cons, len);
			}
			moved |= p->fifo.n != before;
			hpsi_ring_cons_publish(&p->cons);
		}
	}
	return moved;
}
