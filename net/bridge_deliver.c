/* The bridge's inbound half (net/bridge.h): batches from peers, validated
 * record by record, written into the local rings: requests of remote
 * workers to local servers, answers of remote servers to local workers. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "net/bridge.h"
#include "runtime/common/dtype.h"
#include "shm/node.h"

static void *heap_copy(struct hpsi_bridge *b, uint32_t w, const void *src, size_t n, uint64_t *off)
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
int hpsi_bridge_deliver_request(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			   const void *keys, const void *vals)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
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
	struct hpsi_bridge_entry *e = NULL;
	if (!dst || (h.type != HPSI_MSG_CLOCK && !(e = hpsi_bridge_fifo_push(&p->fifo))))
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
int hpsi_bridge_deliver_answer(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			       const void *body)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	struct hpsi_bridge_entry *e = hpsi_bridge_fifo_front(&p->fifo);
	if (!e || e->ts != in->timestamp || e->part != in->part)
		return -1;
	if (e->zc && !atomic_load_explicit(&e->zc->done, memory_order_acquire))
		return 1;
	struct hpsi_msg_hdr h = *in;
	size_t n = hpsi_lens_bytes(h.nlens) + h.val_bytes;
	unsigned char *dst;
	if (e->heap_resp) {
		struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
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
	hpsi_bridge_fifo_pop(&p->fifo);
	return 0;
}

/* Delivers a received message, or queues it behind the pair's held ones. */
static void deliver(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *h, const void *keys,
		    const void *vals)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	int answer = h->type == HPSI_MSG_RESPONSE;
	int rc = 1;
	if (!p->held)
		rc = answer ? hpsi_bridge_deliver_answer(b, w, s, h, keys)
			    : hpsi_bridge_deliver_request(b, w, s, h, keys, vals);
	if (rc < 0) {
		hpsi_msg_count_bad("an answer that matches no request in flight");
		return;
	}
	uint32_t node = answer ? hpsi_worker_node(&b->seg, w) : s;
	if (rc == 0) {
		hpsi_ring_publish(&p->prod);
		hpsi_bell_ring(&hpsi_seg_node(&b->seg, node)->bell);
		return;
	}
	hpsi_bridge_hold(b, p, h, keys, vals);
}

static void handle_batch(struct hpsi_bridge *b, uint32_t from, const void *buf, size_t len, const void *vals_frame,
			 size_t vals_len, int nframes)
{
	struct hpsi_batch_reader r;
	const char *why;
	if (hpsi_batch_open(&r, buf, len, &why)) {
		hpsi_msg_count_bad(why);
		return;
	}
	if (r.from != from || r.vals_frame != (nframes == 2)) {
		hpsi_msg_count_bad(r.from != from ? "a batch naming another host" : "value frame missing or unexpected");
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
			hpsi_msg_count_bad(why);
			continue;
		}
		const struct hpsi_msg_hdr *h = v.hdr;
		int answer = h->type == HPSI_MSG_RESPONSE;
		if (rec.worker >= b->W || rec.server >= b->S || (r.vals_frame && (answer || h->vals_off != 0 ||
										 h->val_bytes != vals_len))) {
			hpsi_msg_count_bad("a record naming no such worker or server");
			continue;
		}
		/* requests: a worker of the sending host to a server here;
		 * answers: a server of the sending host to a worker here */
		if (answer ? (h->sender != rec.server || b->host_of_server[rec.server] != from ||
			      !hpsi_bridge_local_worker(b, rec.worker))
			   : (h->sender != rec.worker || b->host_of_worker[rec.worker] != from ||
			      !hpsi_bridge_local_server(b, rec.server))) {
			hpsi_msg_count_bad("a record from or to the wrong host");
			continue;
		}
		deliver(b, rec.worker, rec.server, h, answer ? (const void *)v.lens : (const void *)v.keys, v.vals);
	}
	if (rc < 0)
		hpsi_msg_count_bad(why);
}

int hpsi_bridge_recv_peers(struct hpsi_bridge *b)
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
			hpsi_msg_count_bad(from == UINT32_MAX ? "a peer that is no host of the job" : "wrong number of frames");
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
