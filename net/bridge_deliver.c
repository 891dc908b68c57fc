/* The bridge's inbound half (net/bridge.h): batches from peers, validated
 * record by record, written into the local rings: requests of remote
 * workers to local servers, answers of remote servers to local workers. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/bridge_stats.h"
#include "net/route.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "shm/node.h"

/* Room in remote worker w's slice on this host for n bytes (copied from
 * src unless NULL): 0 and *buf, 1 when the slice is full for now (the
 * server still holds buffers of ours there, which come back), <0 when it
 * can never hold them, or HPS_ENOSPC when the shared-memory file system
 * is full (space there does not come back with our buffers). */
static int heap_take(struct hpsi_bridge *b, uint32_t w, const void *src, uint64_t n, uint64_t *off, void **buf)
{
	if (n > b->seg.hdr->heap_slice)
		return HPS_ETOOBIG;
	if (!b->heaps[w] && hpsi_heap_create(hpsi_seg_heap(&b->seg, w), b->seg.hdr->heap_slice, &b->heaps[w]))
		return HPS_ESYS;
	int why;
	void *p = hpsi_heap_alloc_why(b->heaps[w], n ? (size_t)n : 8, &why);
	if (!p)
		return why == HPS_ENOSPC ? HPS_ENOSPC : b->heap_live[w] ? 1 : HPS_ETOOBIG;
	b->heap_live[w]++;
	if (src)
		memcpy(p, src, (size_t)n);
	*off = (uint64_t)((unsigned char *)p - b->seg.base);
	*buf = p;
	return 0;
}

static void heap_give_back(struct hpsi_bridge *b, uint32_t w, void *bufs[3])
{
	for (int i = 0; i < 3; i++)
		if (bufs[i]) {
			hpsi_heap_free(b->heaps[w], bufs[i]);
			b->heap_live[w]--;
			bufs[i] = NULL;
		}
}

/* Writes a remote worker's request (wire form: keys|lens inline, values at
 * vals) into the local server's ring. 0 when it is in, or when it can never
 * go in (then it fails in order: its entry keeps the code, the answer
 * carries it); 1 when the ring, the heap or the FIFO is full for now. */
int hpsi_bridge_deliver_request(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
				const void *keys, const void *vals)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	struct hpsi_msg_hdr h = *in;
	size_t keys_bytes = (size_t)h.nkeys * 8 + hpsi_lens_bytes(h.nlens);
	size_t esz = hpsi_dtype_size(h.dtype);
	int pull = h.type == HPSI_MSG_PULL || h.type == HPSI_MSG_PUSHPULL;
	uint64_t answer = 0;
	void *bufs[3] = {0};
	int rc = 0, heap_full = 0;
	const char *why = "";
	if (pull && h.width && __builtin_mul_overflow((uint64_t)h.nkeys * h.width, (uint64_t)esz, &answer))
		answer = UINT64_MAX; /* nkeys < 2^30 keeps the first product in range */
	h.flags &= ~(HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS | HPSI_F_HEAP_RESP);
	size_t body = keys_bytes + h.val_bytes;
	if (h.type == HPSI_MSG_CLOCK)
		body = 0;
	if (sizeof h + body > b->max_payload) {
		why = "no room for its keys or values in the worker's heap slice here (HPS_HEAP_MB)";
		rc = heap_take(b, w, keys, keys_bytes, &h.keys_off, &bufs[0]);
		if (!rc && h.val_bytes)
			rc = heap_take(b, w, vals, h.val_bytes, &h.vals_off, &bufs[1]);
		if (rc) {
			heap_full = rc > 0;
			goto out;
		}
		h.flags |= HPSI_F_HEAP_KEYS | (h.val_bytes ? HPSI_F_HEAP_VALS : 0);
		body = 0;
	}
	if (pull && (h.resp_cap || answer > b->answer_max)) {
		/* the room for the answer comes from the wire: it may be anything */
		uint64_t cap = h.resp_cap > answer ? h.resp_cap : answer;
		why = "no room for its answer in the worker's heap slice here (HPS_HEAP_MB)";
		if ((rc = heap_take(b, w, NULL, cap, &h.resp_off, &bufs[2]))) {
			heap_full = rc > 0;
			goto out;
		}
		h.resp_cap = cap;
		h.flags |= HPSI_F_HEAP_RESP;
	} else {
		h.resp_cap = 0;
	}
	unsigned char *dst = hpsi_ring_reserve(&p->prod, sizeof h + body);
	struct hpsi_bridge_entry *e = NULL;
	if (!dst || (h.type != HPSI_MSG_CLOCK && !(e = hpsi_bridge_fifo_push(&p->fifo)))) {
		heap_full = 0;
		rc = 1;
		goto out;
	}
	memcpy(dst, &h, sizeof h);
	if (body) {
		memcpy(dst + sizeof h, keys, keys_bytes);
		if (h.val_bytes)
			memcpy(dst + sizeof h + keys_bytes, vals, h.val_bytes);
	}
	if (h.type == HPSI_MSG_CLOCK)
		hpsi_bridge_clock_seen(b, w, h.clock);
	hpsi_ring_commit(&p->prod, sizeof h + body);
	if (e) {
		e->ts = h.timestamp, e->part = h.part;
		memcpy(e->bufs, bufs, sizeof bufs);
	}
	return 0;
out:
	heap_give_back(b, w, bufs);
	/* the slice was full of this request's own buffers: with nothing else
	 * of ours to come back, waiting would be forever */
	if (rc > 0 && heap_full && !b->heap_live[w])
		rc = HPS_ETOOBIG;
	if (rc >= 0)
		return rc;
	struct hpsi_bridge_entry *f = hpsi_bridge_fifo_push(&p->fifo);
	if (!f)
		return 1;
	f->ts = h.timestamp, f->part = h.part, f->status = rc;
	hpsi_bridge_count_failed(b, w, s, rc, why);
	return 0;
}

/* Writes an answer without a body into the worker's ring; 1 when it is
 * full. */
static int put_answer_hdr(struct hpsi_bridge_pair *p, const struct hpsi_msg_hdr *h)
{
	unsigned char *dst = hpsi_ring_reserve(&p->prod, sizeof *h);
	if (!dst)
		return 1;
	memcpy(dst, h, sizeof *h);
	hpsi_ring_commit(&p->prod, sizeof *h);
	return 0;
}

/* The worker may reuse the front request's values once ZeroMQ let go of
 * them. Acquire: pairs with zc_done's release (struct hpsi_bridge_zc). */
static int values_sent(const struct hpsi_bridge_entry *e)
{
	return !e->zc || atomic_load_explicit(&e->zc->done, memory_order_acquire);
}

int hpsi_bridge_answer_failed(struct hpsi_bridge *b, uint32_t w, uint32_t s)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	struct hpsi_bridge_entry *e;
	while ((e = hpsi_bridge_fifo_front(&p->fifo)) && e->status) {
		struct hpsi_msg_hdr h;
		hpsi_msg_init(&h, HPSI_MSG_RESPONSE, s, e->ts);
		h.part = e->part;
		h.status = e->status;
		if (!values_sent(e) || put_answer_hdr(p, &h))
			return 1;
		free(e->zc);
		hpsi_bridge_fifo_pop(&p->fifo);
	}
	return 0;
}

/* Writes an answer from a remote server into the local worker's ring (and
 * its answer buffer). 0 in (or, when it cannot fit the worker's buffer or
 * ring, an answer with HPS_EPROTO in its place), 1 not yet (ring full, or
 * the values of its request still being sent), <0 when it answers no
 * request in flight. Failed entries before it are answered first. */
int hpsi_bridge_deliver_answer(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			       const void *body)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	struct hpsi_bridge_entry *e;
	if (in->flags & HPSI_F_REPLICA) { /* a backup's ack: no request of this pair */
		struct hpsi_msg_hdr a = *in;
		a.flags = HPSI_F_REPLICA;
		return put_answer_hdr(p, &a);
	}
	for (;;) {
		if (hpsi_bridge_answer_failed(b, w, s))
			return 1;
		if (!(e = hpsi_bridge_fifo_front(&p->fifo)))
			return -1;
		if (e->ts == in->timestamp && e->part == in->part)
			break;
		long k = hpsi_bridge_fifo_find(&p->fifo, in->timestamp, in->part);
		if (k < 0)
			return -1;
		hpsi_bridge_fifo_lost(&p->fifo, k);
	}
	if (!values_sent(e))
		return 1;
	struct hpsi_msg_hdr h = *in;
	size_t n = hpsi_lens_bytes(h.nlens) + h.val_bytes;
	struct hpsi_msg_bounds heap = hpsi_bridge_slice_of(b, w);
	int fits = e->heap_resp ? n <= e->resp_cap && e->resp_off >= heap.lo && e->resp_cap <= heap.hi - e->resp_off
				: sizeof h + n <= b->max_payload;
	if (!fits) {
		hpsi_msg_init(&h, HPSI_MSG_RESPONSE, s, e->ts);
		h.part = e->part;
		h.status = HPS_EPROTO;
		if (put_answer_hdr(p, &h))
			return 1;
		hpsi_bridge_count_failed(b, w, s, HPS_EPROTO, "its answer is larger than the room the worker gave it");
	} else if (e->heap_resp) {
		unsigned char *dst = hpsi_ring_reserve(&p->prod, sizeof h);
		if (!dst)
			return 1;
		memcpy(b->seg.base + e->resp_off, body, n);
		h.flags |= HPSI_F_HEAP_RESP;
		h.resp_off = e->resp_off, h.resp_cap = e->resp_cap;
		memcpy(dst, &h, sizeof h);
		hpsi_ring_commit(&p->prod, sizeof h);
	} else {
		unsigned char *dst = hpsi_ring_reserve(&p->prod, sizeof h + n);
		if (!dst)
			return 1;
		memcpy(dst, &h, sizeof h);
		memcpy(dst + sizeof h, body, n);
		hpsi_ring_commit(&p->prod, sizeof h + n);
	}
	hpsi_bridge_acks_answered(b, s, p, e, in); /* kept in the ring until its remote backups acked */
	free(e->zc);
	hpsi_bridge_fifo_pop(&p->fifo);
	return 0;
}

int hpsi_bridge_record_origin(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
			      const struct hpsi_msg_hdr *h, const char **why)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, rec->worker, rec->server);
	*why = "a record from or to the wrong host";
	if (h->type != HPSI_MSG_RESPONSE) {
		/* a worker of the sending host to a key range served here (or
		 * coming here: hpsi_bridge_range_coming) */
		if (h->sender != rec->worker || b->host_of_worker[rec->worker] != from ||
		    (p->used != HPSI_PAIR_INBOUND && !b->serving && !hpsi_bridge_local_server(b, rec->server)))
			return -1;
		/* sent before the range left this host (a failover or a move):
		 * the worker's host sends it again to where the range went */
		return p->used != HPSI_PAIR_INBOUND && !hpsi_bridge_range_coming(b, rec->server);
	}
	/* an answer: a server of the sending host, to a worker here */
	if (h->sender >= b->S || b->host_of_server[h->sender] != from || !hpsi_bridge_local_worker(b, rec->worker))
		return -1;
	/* A replica of the range. In a job whose key ranges move (hps scale,
	 * --max-servers) the owner table here may already name the server a
	 * move handed the range to while its old owner's answers are still on
	 * their way: within the sending host (a HANDBACK record here; the
	 * pairs stay, and the answers are of requests still in flight: the
	 * pair's queue matches them) or to another host (the pair moved on:
	 * stale, below). */
	if (!hpsi_seg_room(&b->seg) && hpsi_replica_index(&b->seg, rec->server, h->sender) == HPSI_NO_SERVER)
		return -1;
	/* sent before the range left that host (a failover, or a move of hps
	 * scale): its request is sent again to where the range went */
	return p->used != HPSI_PAIR_ORIGIN || p->host != from;
}

/* Delivers a received message, or queues it behind the pair's held ones. */
static void deliver(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *h, const void *keys,
		    const void *vals)
{
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
	int answer = h->type == HPSI_MSG_RESPONSE;
	int rc = 1;
	size_t before = p->fifo.n;
	if (answer && (h->flags & HPSI_F_REPLICA)) /* proves the push is in that backup, held or not */
		hpsi_bridge_acks_receive(b, w, h);
	/* a request for a range still coming here waits for its FENCE */
	if (!p->held && (answer || p->used == HPSI_PAIR_INBOUND))
		rc = answer ? hpsi_bridge_deliver_answer(b, w, s, h, keys)
			    : hpsi_bridge_deliver_request(b, w, s, h, keys, vals);
	/* answers of failed requests before this one may be in even if it waits */
	if (rc == 0 || p->fifo.n != before) {
		hpsi_ring_publish(&p->prod);
		if (answer) { /* after the publication: a restart's drain (rejoin.c) */
			hpsi_bridge_inflight(b, w, (int64_t)p->fifo.n - (int64_t)before);
			hpsi_bridge_origin_release(b, p); /* before the bell: a worker waiting for room */
		}
		/* a request wakes the server of key range s: its owner (with
		 * --max-servers not s itself; the identity without) */
		hpsi_bell_ring(&hpsi_seg_node(&b->seg, answer ? hpsi_worker_node(&b->seg, w) : hpsi_range_owner(&b->seg, s))
					->bell);
	}
	if (rc < 0)
		hpsi_msg_count_bad("an answer that matches no request in flight");
	else if (rc > 0)
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
		if (rec.flags & HPSI_REC_SYNC) { /* a range copy: no message hpsi_msg_check reads */
			hpsi_bridge_sync_receive(b, from, &rec, msg);
			continue;
		}
		struct hpsi_msg_view v;
		/* a value frame is the only heap a message may point into: offset 0 */
		struct hpsi_msg_bounds vb = {(unsigned char *)vals_frame, 0, vals_len};
		if (hpsi_msg_check(msg, rec.len, r.vals_frame ? &vb : NULL, &v, &why)) {
			hpsi_msg_count_bad(why);
			continue;
		}
		const struct hpsi_msg_hdr *h = v.hdr;
		if (rec.flags & HPSI_REC_FORWARD) {
			hpsi_bridge_fwd_receive(b, from, &rec, h, v.keys, v.vals);
			continue;
		}
		if (rec.flags & HPSI_REC_FENCE) {
			if (!hpsi_bridge_late_fence_keep(b, from, rec.worker))
				hpsi_bridge_fence_receive(b, from, rec.worker);
			continue;
		}
		if (rec.flags & HPSI_REC_HANDBACK) {
			if (!hpsi_bridge_late_handback_keep(b, from, &rec, h))
				hpsi_bridge_handback_receive(b, from, &rec, h);
			hpsi_bridge_late_fence_release(b); /* (tests: HPS_FAILPOINT=latefence) */
			continue;
		}
		if (rec.flags & HPSI_REC_RESET) {
			hpsi_bridge_reset_receive(b, from, &rec);
			continue;
		}
		int answer = h->type == HPSI_MSG_RESPONSE;
		if (rec.worker >= b->W || rec.server >= b->S || (r.vals_frame && (answer || h->vals_off != 0 ||
										 h->val_bytes != vals_len))) {
			hpsi_msg_count_bad("a record naming no such worker or server");
			continue;
		}
		int origin = hpsi_bridge_record_origin(b, from, &rec, h, &why);
		if (origin < 0) {
			hpsi_msg_count_bad(why);
			continue;
		}
		if (origin > 0) {
			b->stale++;
			continue;
		}
		/* held here for a range handed back from here: its host may have
		 * ignored the HANDBACK (net/bridge_recover.c) */
		const struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, rec.worker, rec.server);
		if (!answer && p->used != HPSI_PAIR_INBOUND && b->handed && b->handed[rec.server])
			hpsi_bridge_handback_again(b, from, rec.server);
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
					b->align_buf = malloc(blen * 2);
					b->align_cap = b->align_buf ? blen * 2 : 0;
				}
				if (b->align_buf)
					memcpy(b->align_buf, batch, blen);
				else /* its requests fail at their origin when later answers come */
					hpsi_error("bridge %s: out of memory: a batch of %zu bytes from host %u is lost",
						   b->cfg.host, blen, from);
				batch = b->align_buf;
			}
			hpsi_bstat_received(b, from, blen + (n == 3 ? zmq_msg_size(&parts[2]) : 0));
			if (batch)
				handle_batch(b, from, batch, blen, n == 3 ? zmq_msg_data(&parts[2]) : NULL,
					     n == 3 ? zmq_msg_size(&parts[2]) : 0, n - 1);
		}
		for (int i = 0; i < kept; i++)
			zmq_msg_close(&parts[i]);
	}
}
