/* The bridge's per-pair queues (net/bridge.h): the requests in flight on a
 * pair, in order (answers come back in the order of requests), and the
 * received messages held until their ring has room. */
#include <stdlib.h>
#include <string.h>

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

/* Holds a whole copy of a received message, wire form with the values
 * inline, behind the pair's held ones: a later retry delivers it. */
void hpsi_bridge_hold(struct hpsi_bridge *b, struct hpsi_bridge_pair *p, const struct hpsi_msg_hdr *h,
		      const void *keys, const void *vals)
{
	int answer = h->type == HPSI_MSG_RESPONSE;
	b->held_total++;
	size_t keys_bytes = answer ? hpsi_lens_bytes(h->nlens) : (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
	if (h->type == HPSI_MSG_CLOCK)
		keys_bytes = 0;
	size_t vals_bytes = h->type == HPSI_MSG_CLOCK ? 0 : h->val_bytes;
	struct hpsi_bridge_held *m = malloc(sizeof *m + sizeof *h + keys_bytes + vals_bytes);
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

int hpsi_bridge_retry_held(struct hpsi_bridge *b)
{
	int moved = 0;
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			int any = 0;
			while (p->held) {
				struct hpsi_bridge_held *m = p->held;
				const struct hpsi_msg_hdr *h = (const void *)m->msg;
				const unsigned char *body = m->msg + sizeof *h;
				size_t kb = (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
				int rc = h->type == HPSI_MSG_RESPONSE ? hpsi_bridge_deliver_answer(b, w, s, h, body)
								      : hpsi_bridge_deliver_request(b, w, s, h, body, body + kb);
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
				uint32_t node = hpsi_bridge_local_worker(b, w) ? hpsi_worker_node(&b->seg, w) : s;
				hpsi_bell_ring(&hpsi_seg_node(&b->seg, node)->bell);
			}
		}
	return moved;
}
