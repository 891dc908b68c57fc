/* The bridge's per-pair queues (net/bridge.h): the requests in flight on a
 * pair, in order (answers come back in the order of requests), and the
 * received messages held until their ring has room. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "runtime/common/log.h"
#include "shm/node.h"

struct hpsi_bridge_entry *hpsi_bridge_fifo_push(struct hpsi_bridge_fifo *f)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		struct hpsi_bridge_entry *e = malloc(cap * sizeof *e);
		if (!e)
			return NULL;
		for (size_t i = 0; i < f->n; i++)
			e[i] = f->e[(f->head + i) % (f->cap ? f->cap : 1)];
		free(f->e);
		f->e = e, f->cap = cap, f->head = 0;
	}
	struct hpsi_bridge_entry *e = &f->e[(f->head + f->n++) % f->cap];
	memset(e, 0, sizeof *e);
	return e;
}

struct hpsi_bridge_entry *hpsi_bridge_fifo_front(struct hpsi_bridge_fifo *f)
{
	return f->n ? &f->e[f->head] : NULL;
}

void hpsi_bridge_fifo_pop(struct hpsi_bridge_fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->n--;
}

void hpsi_bridge_fifo_unpush(struct hpsi_bridge_fifo *f)
{
	f->n--;
}

struct hpsi_bridge_entry *hpsi_bridge_fifo_at(struct hpsi_bridge_fifo *f, size_t i)
{
	return &f->e[(f->head + i) % f->cap];
}

long hpsi_bridge_fifo_find(struct hpsi_bridge_fifo *f, int64_t ts, uint32_t part)
{
	for (size_t i = 0; i < f->n; i++) {
		struct hpsi_bridge_entry *e = hpsi_bridge_fifo_at(f, i);
		if (e->ts == ts && e->part == part && !e->status)
			return (long)i;
	}
	return -1;
}

void hpsi_bridge_fifo_lost(struct hpsi_bridge_fifo *f, long k)
{
	for (long i = 0; i < k; i++) {
		struct hpsi_bridge_entry *e = hpsi_bridge_fifo_at(f, (size_t)i);
		if (!e->status) {
			e->status = HPS_EPROTO;
			hpsi_msg_count_bad("the answer to an earlier request of the pair never came");
		}
	}
}

void hpsi_bridge_count_failed(struct hpsi_bridge *b, uint32_t w, uint32_t s, int status, const char *why)
{
	uint64_t n = ++b->failed_total;
	/* the first few get a line each, then every 1000th: a stream of
	 * failing requests cannot flood the log */
	if (n <= 10 || n % 1000 == 0)
		hpsi_warn("bridge %s: request of worker %u to server %u fails with %s: %s; %llu so far", b->cfg.host,
			  w, s, hps_strerror(status), why, (unsigned long long)n);
}

void hpsi_bridge_hold(struct hpsi_bridge *b, struct hpsi_bridge_pair *p, const struct hpsi_msg_hdr *h,
		      const void *keys, const void *vals)
{
	int answer = h->type == HPSI_MSG_RESPONSE;
	b->held_total++;
	size_t keys_bytes = answer ? hpsi_lens_bytes(h->nlens) : (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
	if (h->type == HPSI_MSG_CLOCK || h->type == HPSI_MSG_SYNC) /* (a copy: one part, vals) */
		keys_bytes = 0;
	size_t vals_bytes = h->type == HPSI_MSG_CLOCK ? 0 : h->val_bytes;
	struct hpsi_bridge_held *m = malloc(sizeof *m + sizeof *h + keys_bytes + vals_bytes);
	int status = 0;
	if (!m && answer) {
		/* no room for the answer: its request fails in its place, in order */
		long k = hpsi_bridge_fifo_find(&p->fifo, h->timestamp, h->part);
		if (k >= 0)
			hpsi_bridge_fifo_at(&p->fifo, (size_t)k)->status = HPS_ENOMEM;
		hpsi_error("bridge %s: out of memory holding an answer of %llu bytes: the request fails (HPS_ENOMEM)",
			   b->cfg.host, (unsigned long long)(keys_bytes + vals_bytes));
		return;
	}
	if (!m && h->type != HPSI_MSG_CLOCK) {
		/* keep the header only: the request fails when its turn comes */
		status = HPS_ENOMEM;
		keys_bytes = vals_bytes = 0;
		m = malloc(sizeof *m + sizeof *h);
	}
	if (!m) {
		hpsi_error("bridge %s: out of memory holding a message: a %s of worker %u is lost", b->cfg.host,
			   h->type == HPSI_MSG_CLOCK ? "clock" : "request", h->sender);
		return;
	}
	m->next = NULL;
	m->status = status;
	m->len = (uint32_t)(sizeof *h + keys_bytes + vals_bytes);
	memcpy(m->msg, h, sizeof *h);
	if (answer) {
		memcpy(m->msg + sizeof *h, keys, keys_bytes + vals_bytes); /* lens|vals are contiguous */
	} else {
		memcpy(m->msg + sizeof *h, keys, keys_bytes);
		memcpy(m->msg + sizeof *h + keys_bytes, vals, vals_bytes);
	}
	((struct hpsi_msg_hdr *)m->msg)->flags &= HPSI_F_LENS | (answer ? HPSI_F_REPLICA : 0); /* acks stay acks */
	if (p->held_tail)
		p->held_tail->next = m;
	else
		p->held = m;
	p->held_tail = m;
}

/* A held request whose copy failed: it takes its place in the FIFO as a
 * failed entry (answered in order); 1 while the FIFO cannot grow. */
static int fail_held(struct hpsi_bridge *b, struct hpsi_bridge_pair *p, uint32_t w, uint32_t s,
		     const struct hpsi_bridge_held *m)
{
	const struct hpsi_msg_hdr *h = (const void *)m->msg;
	struct hpsi_bridge_entry *e = hpsi_bridge_fifo_push(&p->fifo);
	if (!e)
		return 1;
	e->ts = h->timestamp, e->part = h->part, e->status = m->status;
	hpsi_bridge_count_failed(b, w, s, m->status, "no memory to hold it until its ring had room");
	return 0;
}

int hpsi_bridge_retry_held(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			if (!p->used)
				continue;
			int origin = hpsi_bridge_local_worker(b, w);
			size_t before = p->fifo.n;
			int any = 0;
			while (p->held) {
				struct hpsi_bridge_held *m = p->held;
				const struct hpsi_msg_hdr *h = (const void *)m->msg;
				const unsigned char *body = m->msg + sizeof *h;
				size_t kb = (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
				int rc = m->status ? fail_held(b, p, w, s, m)
				       : h->type == HPSI_MSG_RESPONSE ? hpsi_bridge_deliver_answer(b, w, s, h, body)
								      : hpsi_bridge_deliver_request(b, w, s, h, body, body + kb);
				if (rc > 0)
					break;
				if (rc < 0)
					hpsi_msg_count_bad("an answer that matches no request in flight");
				p->held = m->next;
				if (!p->held)
					p->held_tail = NULL;
				free(m);
				any = moved = 1;
			}
			/* failed requests of a local worker with nothing held before them */
			if (origin && !p->held)
				hpsi_bridge_answer_failed(b, w, s);
			if (p->fifo.n != before) /* records went in, also when a held one waits */
				any = moved = 1;
			if (any) {
				hpsi_ring_publish(&p->prod);
				if (origin) { /* after the publication: a restart's drain (rejoin.c) */
					hpsi_bridge_inflight(b, w, (int64_t)p->fifo.n - (int64_t)before);
					hpsi_bridge_origin_release(b, p); /* before the bell */
				}
				uint32_t node = origin ? hpsi_worker_node(&b->seg, w) : s;
				hpsi_bell_ring(&hpsi_seg_node(&b->seg, node)->bell);
			}
		}
	return moved;
}

void hpsi_bridge_inflight(struct hpsi_bridge *b, uint32_t w, int64_t delta)
{
	if (!delta)
		return;
	_Atomic uint32_t *n = &hpsi_seg_node(&b->seg, hpsi_worker_node(&b->seg, w))->bridge_inflight;
	if (delta > 0) /* relaxed: the release of the ring's head publishes it */
		atomic_fetch_add_explicit(n, (uint32_t)delta, memory_order_relaxed);
	else /* release: the answers published before it */
		atomic_fetch_sub_explicit(n, (uint32_t)-delta, memory_order_release);
}
