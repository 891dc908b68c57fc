/* Replication across hosts (HPS_REPLICAS with --hosts): the
 * bridge carries forwards between a primary and its backups on other
 * hosts (docs/ARCHITECTURE.md, "Across hosts: the plan", step 2).
 *
 * Out: the forward ring of each local server P to each remote server Q
 * (hpsi_seg_fwd_ring(P, Q): P writes it as if Q were local) is consumed
 * here and sent to Q's host in its per-host batch (HPSI_REC_FORWARD), the
 * values inline: a forward whose keys or values sit in the worker's heap
 * slice (a local worker's zero-copy push) is read there, which is safe
 * because that worker keeps the buffer until every backup acked it.
 * hpsi_bridge_forward_answers sends the forwards before the answers of
 * the same pass.
 * In: a forward from a remote P to a local Q goes into the forward ring
 * (P, Q), whose producer this bridge is on Q's host; when the ring is
 * full it waits in order, as requests do (hpsi_bridge_hold).
 *
 * Acks: in a bridged segment every backup acks every forwarded push on
 * its own answer ring (runtime/server/replica.c), and a worker completes
 * a push only when its primary answered and every forwarded backup acked
 * (runtime/client/worker.c): an answer may overtake its forward when they
 * take different paths (a backup on a third host, or a forward waiting
 * for room while the answer goes in). Acks answer no request of their
 * pair, so the bridges pass them on without the pair's FIFO
 * (net/bridge_forward.c, net/bridge_deliver.c).
 *
 * Heap trap: a request of a remote worker whose body a bridge put in that
 * worker's heap slice is freed when the primary answers, while a local
 * backup may still read it; with replicas across hosts the worker refuses
 * a push part that does not fit a ring record (runtime/client/request.c),
 * so pushes never take that path.
 *
 * Ordering: the forward rings are ordinary SPSC rings with the bridge at
 * one end (shm/ring.h, pairs A and B: the primary's release of the tail
 * before the bridge reads a record; the bridge's release of the tail
 * before the backup reads one). One thread (the bridge's) does all of
 * this; nothing here is shared with ZeroMQ's thread. */
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/log.h"
#include "shm/bell.h"

static struct hpsi_bridge_pair *fwd_of(struct hpsi_bridge *b, uint32_t from, uint32_t to)
{
	return &b->fwd[(size_t)from * b->S + to];
}

int hpsi_bridge_fwd_layout(struct hpsi_bridge *b)
{
	/* with replicas, and in a movable job (--max-servers), whose moves
	 * copy key ranges over these rings (net/bridge_recover.c) */
	if (!b->seg.hdr->replicas && !hpsi_seg_movable(&b->seg))
		return 0;
	if (!(b->fwd = calloc((size_t)b->S * b->S, sizeof *b->fwd)))
		return HPS_ENOMEM;
	uint32_t rb = b->seg.hdr->ring_bytes;
	for (uint32_t p = 0; p < b->S; p++)
		for (uint32_t q = 0; q < b->S; q++) {
			int lp = hpsi_bridge_local_server(b, p), lq = hpsi_bridge_local_server(b, q);
			struct hpsi_bridge_pair *f = fwd_of(b, p, q);
			if (lp && !lq)
				hpsi_ring_cons_attach(&f->cons, hpsi_seg_fwd_ring(&b->seg, p, q), rb);
			else if (!lp && lq)
				hpsi_ring_prod_attach(&f->prod, hpsi_seg_fwd_ring(&b->seg, p, q), rb);
			f->used = lp != lq ? (lp ? 1 : 2) : 0; /* 1: out, 2: in */
		}
	return 0;
}

int hpsi_bridge_fwd_pending(const struct hpsi_bridge *b)
{
	for (size_t i = 0; b->fwd && i < (size_t)b->S * b->S; i++) {
		const struct hpsi_bridge_pair *f = &b->fwd[i];
		if (f->used != 1 || !hpsi_ring_pending(f->cons.r))
			continue;
		/* batches wait for ZeroMQ's room to the ring's host: what the
		 * ring holds could only be queued behind them (a copy's records
		 * wait in the ring, send_ring); that room wakes the bridge
		 * (idle_wait polls the dealer) */
		if (b->out[b->host_of_server[i % b->S]].q)
			continue;
		return 1;
	}
	return 0;
}

/* The two parts of a forward's body: keys (and lens), then values. A
 * copy (HPSI_MSG_SYNC) is one part: its body as it is. */
static void body_split(const struct hpsi_msg_hdr *h, size_t *n1, size_t *n2)
{
	int clock = h->type == HPSI_MSG_CLOCK, sync = h->type == HPSI_MSG_SYNC;
	*n1 = clock || sync ? 0 : (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
	*n2 = clock ? 0 : h->val_bytes;
}

/* Sends what local server p forwarded to remote server q; 1 when any.
 * all: a copy's records too while batches to q's host wait for ZeroMQ
 * (p died: its forwards go before its FENCE, hpsi_bridge_fwd_left). */
static int send_ring(struct hpsi_bridge *b, uint32_t p, uint32_t q, int all)
{
	struct hpsi_bridge_pair *f = fwd_of(b, p, q);
	uint32_t host = b->host_of_server[q];
	int moved = 0, copied = 0;
	size_t len;
	void *rec;
	while ((rec = hpsi_ring_peek(&f->cons, &len))) {
		const struct hpsi_msg_hdr *h0 = rec;
		if (len >= sizeof *h0 && h0->type == HPSI_MSG_SYNC) { /* a copy to a replacement */
			/* a copy waits while ZeroMQ refuses batches to that host, as
			 * requests do (rings_pending): else the whole range queues
			 * here in fresh buffers, where waiting lets the batches cycle
			 * through the spares (hpsi_bridge_flush) */
			if (b->out[host].q && !all)
				break;
			if (hpsi_bridge_sync_send(b, p, q, h0, len))
				break; /* no memory: it stays in the ring */
			hpsi_ring_consume(&f->cons, len);
			moved = copied = 1;
			continue;
		}
		struct hpsi_msg_view v;
		const char *why = "a forward from no worker";
		struct hpsi_msg_bounds heap = {0};
		if (len >= sizeof *h0 && h0->sender < b->W)
			heap = hpsi_bridge_slice_of(b, h0->sender);
		if (len < sizeof *h0 || h0->sender >= b->W || hpsi_msg_check(rec, len, &heap, &v, &why) ||
		    (v.hdr->type != HPSI_MSG_PUSH && v.hdr->type != HPSI_MSG_CLOCK) ||
		    !(v.hdr->flags & HPSI_F_REPLICA)) {
			hpsi_msg_count_bad("not a forward in a forward ring");
			hpsi_ring_consume(&f->cons, len);
			moved = 1;
			continue;
		}
		struct hpsi_msg_hdr h = *v.hdr;
		int clock = h.type == HPSI_MSG_CLOCK;
		size_t n1 = clock ? 0 : (size_t)h.nkeys * 8 + hpsi_lens_bytes(h.nlens);
		size_t n2 = clock ? 0 : h.val_bytes;
		if (hpsi_bridge_batch_room(&b->out[host], hpsi_batch_rec_bytes(sizeof h + n1 + n2)) ||
		    hpsi_bridge_fwd_failpoint(b))
			break; /* no memory (or a test's failpoint): it stays in the ring */
		h.flags &= HPSI_F_LENS | HPSI_F_REPLICA;
		h.keys_off = h.vals_off = h.resp_off = h.resp_cap = 0;
		hpsi_bridge_append(b, host, p, q, HPSI_REC_FORWARD, &h, n1 ? (const void *)v.keys : NULL, n1, v.vals,
				   n2);
		hpsi_ring_consume(&f->cons, len);
		moved = 1;
	}
	if (moved)
		hpsi_ring_cons_publish(&f->cons);
	if (copied) /* the copying server waits for room (recover.c, room_for_chunk) */
		hpsi_bell_ring(&hpsi_seg_node(&b->seg, p)->bell);
	return moved;
}

int hpsi_bridge_fwd_send(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t p = b->seg.hdr->srv_lo; b->fwd && p < b->seg.hdr->srv_hi; p++)
		for (uint32_t q = 0; q < b->S; q++)
			if (fwd_of(b, p, q)->used == 1)
				moved |= send_ring(b, p, q, 0);
	return moved;
}

int hpsi_bridge_fwd_left(struct hpsi_bridge *b, uint32_t p)
{
	int left = 0;
	for (uint32_t q = 0; b->fwd && q < b->S; q++) {
		struct hpsi_bridge_pair *f = fwd_of(b, p, q);
		if (f->used == 1) {
			send_ring(b, p, q, 1);
			left |= hpsi_ring_nonempty(&f->cons);
		} else if (f->used == 2) {
			left |= f->held != NULL;
		}
	}
	return left;
}

/* Writes a forward into the ring (p, q); 0 in (not yet published), 1 full. */
static int put(struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *in, const void *keys,
	       const void *vals)
{
	struct hpsi_bridge_pair *f = fwd_of(b, p, q);
	size_t n1, n2;
	body_split(in, &n1, &n2);
	unsigned char *dst = hpsi_ring_reserve(&f->prod, sizeof *in + n1 + n2);
	if (!dst)
		return 1;
	struct hpsi_msg_hdr h = *in;
	h.flags = (uint16_t)((h.flags & HPSI_F_LENS) | HPSI_F_REPLICA);
	memcpy(dst, &h, sizeof h);
	if (n1)
		memcpy(dst + sizeof h, keys, n1);
	if (n2)
		memcpy(dst + sizeof h + n1, vals, n2);
	hpsi_ring_commit(&f->prod, sizeof h + n1 + n2);
	return 0;
}

void hpsi_bridge_fwd_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
			     const struct hpsi_msg_hdr *h, const void *keys, const void *vals)
{
	uint32_t p = rec->worker, q = rec->server;
	if (!b->fwd || p >= b->S || q >= b->S || fwd_of(b, p, q)->used != 2 || b->host_of_server[p] != from ||
	    h->sender >= b->W || (h->type != HPSI_MSG_PUSH && h->type != HPSI_MSG_CLOCK) ||
	    !(h->flags & HPSI_F_REPLICA)) {
		hpsi_msg_count_bad("a forward naming no remote primary and local backup");
		return;
	}
	if (hpsi_server_gone(&b->seg, q))
		return; /* a dead backup: nobody will read it (its primary stops forwarding) */
	hpsi_bridge_fwd_write(b, p, q, h, keys, vals);
}

/* Writes what waits for the ring (p, q) into it, in order, as far as it
 * has room; 1 when any went. */
static int retry_pair(struct hpsi_bridge *b, uint32_t p, uint32_t q)
{
	struct hpsi_bridge_pair *f = fwd_of(b, p, q);
	int any = 0;
	while (f->used == 2 && f->held) {
		struct hpsi_bridge_held *m = f->held;
		const struct hpsi_msg_hdr *h = (const void *)m->msg;
		const unsigned char *body = m->msg + sizeof *h;
		size_t kb, vb;
		body_split(h, &kb, &vb);
		(void)vb;
		if (m->status) /* no memory held its body: the backup misses this push */
			hpsi_error("bridge %s: a forward of %s %u to server %u was lost (out of memory): that backup differs from its primary",
				   b->cfg.host, h->type == HPSI_MSG_SYNC ? "server" : "worker", h->sender, q);
		else if (put(b, p, q, h, body, body + kb))
			break;
		f->held = m->next;
		if (!f->held)
			f->held_tail = NULL;
		free(m);
		any = 1;
	}
	if (any) {
		hpsi_ring_publish(&f->prod);
		hpsi_bell_ring(&hpsi_seg_node(&b->seg, q)->bell);
	}
	return any;
}

void hpsi_bridge_fwd_write(struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h,
			   const void *keys, const void *vals)
{
	struct hpsi_bridge_pair *f = fwd_of(b, p, q);
	/* Those held first, as far as the ring has room again: a stream of
	 * batches keeps hpsi_bridge_recv_peers from returning to the main
	 * loop's hpsi_bridge_fwd_retry until it ends, and a copy (a range's
	 * records, back to back) would otherwise wait here whole while its
	 * server has emptied the ring (the order is kept: held ones go first,
	 * and this one is held behind any left) */
	if (f->held)
		retry_pair(b, p, q);
	if (f->held) {
		hpsi_bridge_hold(b, f, h, keys, vals);
		return;
	}
	if (put(b, p, q, h, keys, vals)) {
		hpsi_bridge_hold(b, f, h, keys, vals);
		return;
	}
	hpsi_ring_publish(&f->prod);
	hpsi_bell_ring(&hpsi_seg_node(&b->seg, q)->bell); /* its worker waits for the ack */
}

int hpsi_bridge_fwd_retry(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t p = 0; b->fwd && p < b->S; p++)
		for (uint32_t q = b->seg.hdr->srv_lo; q < b->seg.hdr->srv_hi; q++)
			moved |= retry_pair(b, p, q);
	return moved;
}
