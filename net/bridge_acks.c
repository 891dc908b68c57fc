/* Pushes answered but not yet acknowledged by every remote backup
 * (HPS_REPLICAS across hosts; docs/ARCHITECTURE.md, "Failover across
 * hosts").
 *
 * Why: a remote primary's forward to a backup on a third host and its
 * answer to this host's worker take different paths (host P to host B,
 * host P to here). When host P is lost with the forward still in its
 * bridge, the worker has the answer but the backup never gets the push;
 * the worker waits for that backup's ack (runtime/client/worker.c), which
 * never comes. So an origin pair keeps such a push's ring bytes
 * unreleased until every remote backup it was forwarded to acked it (or
 * died): after a failover the pair is read again from the oldest push not
 * acked (hpsi_bridge_acks_resend_at), the new primary applies what it
 * lacks once (last_seq) and answers the rest again, and the worker counts
 * that answer as its replica's (worker.c, handle_response).
 *
 * A backup on this host needs no tracking: P's forwards to it and P's
 * answers to here travel on one stream, forwards first
 * (hpsi_bridge_forward_answers), so the forward is here before the
 * answer. An ack may come before the answer (the forward's path was
 * faster): it is kept in the FIFO entry (`acked`) until the answer.
 *
 * One thread (the bridge's) does all of this. */
#include <stdlib.h>
#include <string.h>

#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/log.h"
#include "shm/bell.h"
#include "shm/node.h"

/* Drops the acked entries at the front; hands their ring bytes back to
 * the worker when any went. */
static void pop_acked(struct hpsi_bridge *b, uint32_t w, struct hpsi_bridge_pair *p)
{
	size_t k = 0;
	while (k < p->nunacked && !p->unacked[k].wait)
		k++;
	if (!k)
		return;
	memmove(p->unacked, p->unacked + k, (p->nunacked - k) * sizeof *p->unacked);
	p->nunacked -= k;
	hpsi_bridge_origin_release(b, p);
	hpsi_bell_ring(&hpsi_seg_node(&b->seg, hpsi_worker_node(&b->seg, w))->bell); /* it may wait for room */
}

void hpsi_bridge_acks_answered(struct hpsi_bridge *b, uint32_t s, struct hpsi_bridge_pair *p,
			       const struct hpsi_bridge_entry *e, const struct hpsi_msg_hdr *in)
{
	if (!b->resend || !in->fwd_mask)
		return;
	uint8_t wait = 0;
	/* With room (one backup) the answer names the rank the push went to
	 * (runtime/server/serve.c, fwd_incarnations' high half): a scale may
	 * have moved the backup since, and the tables here learn it later */
	int room = hpsi_seg_room(&b->seg);
	uint32_t named = in->fwd_incarnations >> 16;
	for (uint32_t i = 1; i <= b->seg.hdr->replicas && i < 8; i++) {
		uint32_t q = room ? named : hpsi_replica(&b->seg, s, i);
		if (q >= b->S)
			continue;
		if ((in->fwd_mask & (1u << i)) && !(e->acked & (1u << i)) && !hpsi_bridge_local_server(b, q) &&
		    !hpsi_server_gone(&b->seg, q))
			wait |= (uint8_t)(1u << i);
	}
	if (!wait)
		return;
	if (p->nunacked == p->unacked_cap) {
		size_t cap = p->unacked_cap ? p->unacked_cap * 2 : 16;
		struct hpsi_bridge_unacked *n = realloc(p->unacked, cap * sizeof *n);
		if (!n) { /* the push is released as answered: a loss of its host then times it out */
			hpsi_warn("bridge %s: no memory to keep a push until its backups acked it", b->cfg.host);
			return;
		}
		p->unacked = n, p->unacked_cap = cap;
	}
	p->unacked[p->nunacked++] =
		(struct hpsi_bridge_unacked){.ts = e->ts, .part = e->part, .at = e->at, .wait = wait, .backup = (uint16_t)named};
}

void hpsi_bridge_acks_receive(struct hpsi_bridge *b, uint32_t w, const struct hpsi_msg_hdr *in)
{
	if (!b->resend || in->range >= b->S || !hpsi_bridge_local_worker(b, w))
		return;
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, in->range);
	/* with room, replica 1 is whichever rank the answer names */
	int room = hpsi_seg_room(&b->seg);
	uint32_t i = room ? (in->sender < b->S ? 1 : HPSI_NO_SERVER) : hpsi_replica_index(&b->seg, in->range, in->sender);
	if (p->used != HPSI_PAIR_ORIGIN || i == HPSI_NO_SERVER || i == 0 || i >= 8)
		return;
	for (size_t k = 0; k < p->nunacked; k++)
		if (p->unacked[k].ts == in->timestamp && p->unacked[k].part == in->part &&
		    (!room || p->unacked[k].backup == in->sender)) {
			p->unacked[k].wait &= (uint8_t)~(1u << i);
			pop_acked(b, w, p);
			return;
		}
	long k = hpsi_bridge_fifo_find(&p->fifo, in->timestamp, in->part);
	if (k >= 0) /* before the answer */
		hpsi_bridge_fifo_at(&p->fifo, (size_t)k)->acked |= (uint8_t)(1u << i);
}

void hpsi_bridge_acks_dead(struct hpsi_bridge *b, uint32_t dead)
{
	if (!b->resend)
		return;
	for (uint32_t w = b->seg.hdr->wrk_lo; w < b->seg.hdr->wrk_hi && w < b->W; w++)
		for (uint32_t r = 0; r < b->S; r++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, r);
			int room = hpsi_seg_room(&b->seg);
			uint32_t i = room ? 1 : hpsi_replica_index(&b->seg, r, dead);
			if (!p->nunacked || i == HPSI_NO_SERVER || i == 0 || i >= 8)
				continue;
			for (size_t k = 0; k < p->nunacked; k++)
				if (!room || p->unacked[k].backup == dead) /* (with room: the rank it went to) */
					p->unacked[k].wait &= (uint8_t)~(1u << i);
			pop_acked(b, w, p);
		}
}

void hpsi_bridge_acks_moved(struct hpsi_bridge *b, uint32_t r)
{
	/* Why: the source of a move applied every push it answered and
	 * copied it to the target before the FINAL, so an answered push is in
	 * the new primary whatever becomes of the backup's ack; read again
	 * from the oldest one not acked (hpsi_bridge_range_to), it was
	 * answered twice, and the worker that took the ack meanwhile counted
	 * the second answer malformed (TSan, test_xscale_replicated_room_scale:
	 * the ack came after the FINAL moved the range to a server here) */
	if (!b->resend || r >= b->S)
		return;
	for (uint32_t w = b->seg.hdr->wrk_lo; w < b->seg.hdr->wrk_hi && w < b->W; w++) {
		struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, r);
		for (size_t k = 0; k < p->nunacked; k++)
			p->unacked[k].wait = 0;
		pop_acked(b, w, p);
	}
}

uint32_t hpsi_bridge_acks_resend_at(struct hpsi_bridge_pair *p)
{
	struct hpsi_bridge_entry *e = hpsi_bridge_fifo_front(&p->fifo);
	return p->nunacked ? p->unacked[0].at : e ? e->at : p->cons.head;
}
