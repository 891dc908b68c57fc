/* The bridge's outbound half (net/bridge.h): requests of local workers to
 * remote servers and answers of local servers to remote workers, consumed
 * from the rings and sent to the peer's host in batches, one ZeroMQ message
 * per host (large values go without a copy, in a frame of their own). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/bridge.h"

#define ZC_MIN (64u << 10)    /* values this large go without a copy */
#define BATCH_FLUSH (1u << 20) /* send a batch once it holds this much */

/* ZeroMQ's thread: it no longer reads the values (struct hpsi_bridge_zc). */
static void zc_done(void *data, void *hint)
{
	(void)data;
	atomic_store_explicit(&((struct hpsi_bridge_zc *)hint)->done, 1, memory_order_release);
}

static int batch_room(struct hpsi_bridge_batch *o, size_t more)
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

void hpsi_bridge_flush(struct hpsi_bridge *b, uint32_t host)
{
	struct hpsi_bridge_batch *o = &b->out[host];
	if (!o->count)
		return;
	struct hpsi_batch_hdr h = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, o->count, b->me};
	memcpy(o->buf, &h, sizeof h);
	zmq_send(b->dealers[host], o->buf, o->len, 0);
	o->len = 0, o->count = 0;
}

/* Appends one message in wire form (header, then body parts) to the batch
 * for `host`. */
static int append(struct hpsi_bridge *b, uint32_t host, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *h,
		  const void *p1, size_t n1, const void *p2, size_t n2)
{
	struct hpsi_bridge_batch *o = &b->out[host];
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
		hpsi_bridge_flush(b, host);
	return 0;
}

/* A request whose values stay in the worker's heap: its own message, the
 * values as a second frame that ZeroMQ reads in place. */
static int send_zero_copy(struct hpsi_bridge *b, uint32_t host, uint32_t w, uint32_t s, struct hpsi_msg_hdr *h,
			  const void *keys, size_t keys_bytes, const void *vals, struct hpsi_bridge_zc *zc)
{
	hpsi_bridge_flush(b, host); /* keep the order of this pair's messages */
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
int hpsi_bridge_forward_requests(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t w = b->seg.hdr->wrk_lo; w < b->seg.hdr->wrk_hi; w++) {
		struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
		for (uint32_t s = 0; s < b->S; s++) {
			if (hpsi_bridge_local_server(b, s))
				continue;
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
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
				struct hpsi_msg_hdr h = *v.hdr;
				struct hpsi_bridge_entry *e = NULL;
				if (h.type != HPSI_MSG_CLOCK && !(e = hpsi_bridge_fifo_push(&p->fifo)))
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
int hpsi_bridge_forward_answers(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t w = 0; w < b->W; w++) {
		if (hpsi_bridge_local_worker(b, w))
			continue;
		struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
		for (uint32_t s = b->seg.hdr->srv_lo; s < b->seg.hdr->srv_hi; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			size_t len;
			void *rec;
			while ((rec = hpsi_ring_peek(&p->cons, &len))) {
				struct hpsi_msg_view v;
				const char *why;
				struct hpsi_bridge_entry *e = hpsi_bridge_fifo_front(&p->fifo);
				if (hpsi_msg_check(rec, len, &heap, &v, &why) || v.hdr->type != HPSI_MSG_RESPONSE || !e ||
				    e->ts != v.hdr->timestamp) {
					hpsi_msg_count_bad(v.hdr ? "an answer to no request in flight" : why);
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
				hpsi_bridge_fifo_pop(&p->fifo);
				hpsi_ring_consume(&p->cons, len);
				moved = 1;
			}
			hpsi_ring_cons_publish(&p->cons);
		}
	}
	return moved;
}
