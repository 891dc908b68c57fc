/* Failover across hosts (HPS_REPLICAS across hosts): the key
 * ranges of a dead server go on at their next replica, on whatever host
 * (docs/ARCHITECTURE.md, "Failover across hosts").
 *
 * Resend: with replicas, the bridge of a worker's host publishes the
 * consumer head of each origin pair's request ring only up to its oldest
 * request not answered yet (hpsi_bridge_origin_release; each FIFO entry
 * remembers where its record starts). So the ring itself is the resend
 * log: whoever consumes it after a failover starts at that head, and the
 * per-worker last sequence of the range (runtime/server/serve.c) makes a
 * push seen twice harmless. Every worker's order per range, clocks
 * included, stays that of its ring.
 *
 * FENCE: when a local server P dies, this bridge sends what P published
 * to its remote backups' forward rings, then a FENCE record naming P to
 * every other host, on the same streams, so a FENCE comes after every
 * forward of P. Then it hands P's ranges on (move_ranges): the request
 * rings of local workers for a range whose next replica is on another
 * host become origin pairs read from P's last published head, the
 * remote workers' pairs of P's ranges are dropped (their hosts send their
 * requests again). A host receiving the FENCE marks P dead, hands P's
 * ranges on the same way (a local next replica: the bridge stops reading
 * the local workers' rings of the range, its head at the oldest request
 * not answered, and starts writing the remote workers' requests for it;
 * another host: the origin pairs start again from that head, towards
 * that host), and once every forward of P held here for room is in its
 * ring, stores P's node `fenced` (release). A backup takes a range over
 * only after it acquired `fenced` of every earlier replica of another
 * host (runtime/server/replica.c), so it drains every forward of P first
 * and no two consumers ever read one ring; routing waits for the same
 * (net/route.h, hpsi_server_unfenced).
 *
 * RESET: a local worker's origin pair that leaves a host sends it a
 * RESET record behind its requests there; that host drops the pair's
 * requests it still holds (they are read again from the ring for where
 * the range went), so that requests held there never overtake the ones
 * sent again after a later move back (reset_out).
 *
 * Answers of a range come only from the host its pair points at
 * (pair->host): those of the host the range left are dropped
 * (net/bridge_deliver.c), and requests for a range still coming here
 * wait in the pair's held queue until the FENCE came (a worker's host may
 * learn of the death before this one).
 *
 * One thread (the bridge's) does all of this. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/bell.h"
#include "shm/liveness.h"
#include "shm/node.h"

enum { FENCE_NONE = 0, FENCE_WAITING = 1, FENCE_DONE = 2 };

int hpsi_bridge_failover_layout(struct hpsi_bridge *b)
{
	/* a movable job (--max-servers) too: its key ranges move between
	 * hosts, each read again from the oldest request not answered
	 * (docs/ARCHITECTURE.md, "Elastic servers across hosts", step 2);
	 * serving[r] is then its owner (hpsi_replica with room) */
	if (!b->seg.hdr->replicas && !hpsi_seg_movable(&b->seg))
		return 0;
	b->resend = 1;
	b->fwd_failpoint = -1;
	const char *fp = hpsi_setting("FAILPOINT");
	char host[HPSI_NAME_MAX + 1];
	unsigned long long n;
	if (fp && sscanf(fp, "holdfwd:%64[^:]:%llu", host, &n) == 2 && strcmp(host, b->cfg.host) == 0)
		b->fwd_failpoint = (int64_t)n;
	int end = 0;
	if (fp && sscanf(fp, "latefence:%64[^:]%n", host, &end) == 1 && fp[end] == 0 && strcmp(host, b->cfg.host) == 0)
		b->late_fence = 1;
	unsigned rank;
	if (fp && sscanf(fp, "handbackdie:%u%n", &rank, &end) == 1 && fp[end] == 0 && rank < b->S)
		b->final_hold_rank = rank + 1;
	b->serving = calloc(b->S, sizeof *b->serving);
	b->fence = calloc(b->S, 1);
	b->dead_since = calloc(b->S, sizeof *b->dead_since);
	b->handed = calloc(b->S, 1);
	b->coming = calloc(b->S, 1);
	b->handed_by = calloc(b->S, sizeof *b->handed_by);
	b->retold = calloc(b->S, sizeof *b->retold);
	if (!b->serving || !b->fence || !b->dead_since || !b->handed || !b->coming || !b->handed_by || !b->retold)
		return HPS_ENOMEM;
	for (uint32_t r = 0; r < b->S; r++) {
		b->serving[r] = hpsi_replica(&b->seg, r, 0);
		if (hpsi_seg_room(&b->seg) && b->seg.hdr->replicas && r < HPSI_MAX_NODES)
			b->serving_backup[r] = hpsi_replica(&b->seg, r, 1);
	}
	return 0;
}

int hpsi_bridge_fwd_failpoint(struct hpsi_bridge *b)
{
	if (!b->serving || b->fwd_failpoint == -1) /* none */
		return 0;
	if (b->fwd_failpoint > 0) {
		b->fwd_failpoint--;
		return 0;
	}
	if (b->fwd_failpoint == 0) {
		b->fwd_failpoint = -2; /* holding, logged */
		hpsi_warn("bridge %s: HPS_FAILPOINT=holdfwd: forwards to other hosts are held from now on", b->cfg.host);
	}
	return 1;
}

void hpsi_bridge_origin_release(struct hpsi_bridge *b, struct hpsi_bridge_pair *p)
{
	if (b->resend && (p->nunacked || hpsi_bridge_fifo_front(&p->fifo)))
		hpsi_ring_cons_publish_at(&p->cons, hpsi_bridge_acks_resend_at(p));
	else
		hpsi_ring_cons_publish(&p->cons);
}

/* Frees the frames of dropped requests that ZeroMQ let go of; all of
 * them when `all` (ZeroMQ's context is gone). Acquire: pairs with
 * zc_done's release (struct hpsi_bridge_zc). */
static void free_dropped(struct hpsi_bridge *b, int all)
{
	struct hpsi_bridge_zc **at = &b->zc_dropped;
	while (*at) {
		struct hpsi_bridge_zc *z = *at;
		if (all || atomic_load_explicit(&z->done, memory_order_acquire)) {
			*at = z->next;
			free(z);
		} else {
			at = &z->next;
		}
	}
}

/* Forgets a pair's requests in flight and held messages without answering
 * them: they are read again from the ring, by whoever serves the range. */
static void drop_pair(struct hpsi_bridge *b, uint32_t w, struct hpsi_bridge_pair *p)
{
	struct hpsi_bridge_entry *e;
	size_t n = p->fifo.n;
	while ((e = hpsi_bridge_fifo_front(&p->fifo))) {
		if (e->zc && !atomic_load_explicit(&e->zc->done, memory_order_acquire)) {
			e->zc->next = b->zc_dropped; /* ZeroMQ still reads the values */
			b->zc_dropped = e->zc;
		} else {
			free(e->zc);
		}
		for (int i = 0; i < 3; i++)
			if (e->bufs[i]) {
				hpsi_heap_free(b->heaps[w], e->bufs[i]);
				b->heap_live[w]--;
			}
		hpsi_bridge_fifo_pop(&p->fifo);
	}
	if (p->used == HPSI_PAIR_ORIGIN) /* after the head went back, as when answered */
		hpsi_bridge_inflight(b, w, -(int64_t)n);
	while (p->held) {
		struct hpsi_bridge_held *m = p->held;
		p->held = m->next;
		free(m);
	}
	p->held_tail = NULL;
	p->nunacked = 0;
}

/* Origin pair (w, r) leaves host `from`: a RESET record to it, behind
 * every request of the pair sent there (the same stream), so that what
 * of them waits there is dropped (hpsi_bridge_reset_receive). Else a
 * host that takes the range back (the FENCE of a replacement that died
 * soon after a hand-back) delivered those held requests, a later part
 * of the pair's stream, before the ones this host sends again from its
 * oldest not answered: a push of the gap then read as seen twice (its
 * sequence below the last applied), not applied, and its wait failed
 * with HPS_EPROTO (answers out of order). */
static void reset_out(struct hpsi_bridge *b, uint32_t from, uint32_t w, uint32_t r)
{
	struct hpsi_msg_hdr h;
	if (hpsi_bridge_batch_room(&b->out[from], hpsi_batch_rec_bytes(sizeof h))) {
		hpsi_error("bridge %s: no memory for the reset of worker %u's requests for key range %u to host %u",
			   b->cfg.host, w, r, from);
		return;
	}
	hpsi_msg_init(&h, HPSI_MSG_CLOCK, w, 0);
	h.range = (uint16_t)r;
	hpsi_bridge_append(b, from, w, r, HPSI_REC_RESET, &h, NULL, 0, NULL, 0);
}

void hpsi_bridge_reset_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec)
{
	if (!b->serving || rec->worker >= b->W || rec->server >= b->S || b->host_of_worker[rec->worker] != from) {
		hpsi_msg_count_bad("a reset naming no worker of the sending host or no key range");
		return;
	}
	/* Held requests only: one written into a server's ring is served
	 * (its answer is stale at the sender, or matches a request sent
	 * again: the same push, answered once more) */
	struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, rec->worker, rec->server);
	unsigned n = 0;
	for (; p->held; n++) {
		struct hpsi_bridge_held *m = p->held;
		p->held = m->next;
		free(m);
		b->stale++;
	}
	p->held_tail = NULL;
	if (n)
		hpsi_warn("bridge %s: host %u moved worker %u's key range %u away: %u of its requests held here dropped",
			  b->cfg.host, from, rec->worker, rec->server, n);
}

/* Key range r's pairs point at server `next` from now (see the head
 * comment): at a death, its next live replica; at a hand-back
 * (net/bridge_recover.c), the replacement it goes back to. */
void hpsi_bridge_range_to(struct hpsi_bridge *b, uint32_t r, uint32_t next)
{
	uint32_t rb = b->seg.hdr->ring_bytes;
	uint32_t host = b->host_of_server[next];
	b->serving[r] = next;
	b->handed[r] = 0;
	b->coming[r] = 0;
	b->retold[r] = 0;
	for (uint32_t w = 0; w < b->W; w++) {
		struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, r);
		if (hpsi_bridge_local_worker(b, w)) {
			if (p->used == HPSI_PAIR_ORIGIN) {
				/* from the oldest push not acked by a remote
				 * backup, else request not answered */
				uint32_t at = hpsi_bridge_acks_resend_at(p);
				hpsi_ring_cons_publish_at(&p->cons, at);
				p->cons.head = at;
				drop_pair(b, w, p);
				if (p->host != host)
					reset_out(b, p->host, w, r);
				if (host == b->me)
					p->used = HPSI_PAIR_NONE; /* the local server reads it now */
				else
					p->host = host;
			} else if (host != b->me) {
				/* the server that stopped read it here: we do, from its head */
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, r, 0), rb);
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, r, 1), rb);
				p->used = HPSI_PAIR_ORIGIN;
				p->host = host;
			}
		} else if (host == b->me) {
			if (p->used != HPSI_PAIR_INBOUND) { /* its requests come here now */
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, r, 0), rb);
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, r, 1), rb);
				/* What an earlier stay of the range here left in them
				 * (requests nobody read, answers nobody sent) is stale:
				 * the worker's host sends every request not answered
				 * again. Nobody reads the request ring now (the new
				 * server attaches after a FENCE or a FINAL that this
				 * bridge writes after this), so its head may move;
				 * release pairs with that server's acquire at attach. */
				atomic_store_explicit(&p->prod.r->head, p->prod.tail, memory_order_release);
				p->prod.head_cache = p->prod.tail;
				p->cons.head = p->cons.tail_cache;
				hpsi_ring_cons_publish(&p->cons);
				p->used = HPSI_PAIR_INBOUND;
			}
		} else if (p->used == HPSI_PAIR_INBOUND) {
			drop_pair(b, w, p); /* its host sends them elsewhere */
			p->used = HPSI_PAIR_NONE;
		}
	}
}

void hpsi_bridge_range_settled(struct hpsi_bridge *b, uint32_t r)
{
	for (uint32_t w = 0; w < b->W; w++) {
		struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, r);
		if (!hpsi_bridge_local_worker(b, w) && p->used == HPSI_PAIR_NONE)
			drop_pair(b, w, p); /* their host reads them again for the replacement */
	}
	b->handed[r] = 2;
}

/* Key ranges that `dead` served go on at their next live replica. */
static void move_ranges(struct hpsi_bridge *b, uint32_t dead)
{
	hpsi_bridge_acks_dead(b, dead); /* as a backup: no push waits for its ack */
	for (uint32_t r = 0; r < b->S; r++) {
		if (b->serving[r] != dead)
			continue;
		uint32_t next = hpsi_range_first_live(&b->seg, r);
		if (next == HPSI_NO_SERVER) {
			b->serving[r] = next;
			continue; /* the range is gone: its requests fail at the workers */
		}
		hpsi_warn("bridge %s: server %u died: key range %u goes on at server %u (host %u)", b->cfg.host, dead, r,
			  next, b->host_of_server[next]);
		hpsi_bridge_range_to(b, r, next);
	}
}

/* A local server found dead: its forwards, then its FENCE, to every host;
 * 0 while something of it cannot go yet. */
static int fence_out(struct hpsi_bridge *b, uint32_t dead)
{
	if (hpsi_bridge_fwd_left(b, dead))
		return 0;
	struct hpsi_msg_hdr h;
	size_t need = hpsi_batch_rec_bytes(sizeof h);
	for (uint32_t i = 0; i < b->nhosts; i++)
		if (i != b->me && hpsi_bridge_batch_room(&b->out[i], need))
			return 0;
	hpsi_msg_init(&h, HPSI_MSG_CLOCK, dead, 0);
	for (uint32_t i = 0; i < b->nhosts; i++)
		if (i != b->me)
			hpsi_bridge_append(b, i, dead, 0, HPSI_REC_FENCE, &h, NULL, 0, NULL, 0);
	move_ranges(b, dead);
	return 1;
}

/* A remote server the scheduler says is dead whose FENCE did not come
 * within HPS_DEAD_MS after: its host is lost with its bridge (a whole
 * host's processes killed), so nothing of it can come any more; this
 * bridge fences it itself. Forwards that would still come after (a host
 * only slow, not lost) are harmless: they are of requests not answered,
 * which the workers' hosts send again first, and the backup applies a
 * push once (last_seq). Not while the scheduler is silent: then every
 * remote node counts as dead, alive or not (hpsi_bridge_lose_scheduler),
 * and two hosts must not both take a range over. */
/* Whether no node of host h runs any more (every one DEAD or CLOSED). */
static int host_ended(struct hpsi_bridge *b, uint32_t h)
{
	for (uint32_t s = 0; s < b->S; s++)
		if (b->host_of_server[s] == h && !hpsi_server_gone(&b->seg, s))
			return 0;
	for (uint32_t w = 0; w < b->W; w++)
		if (b->host_of_worker[w] == h) {
			uint32_t st = hpsi_node_state(&b->seg, hpsi_worker_node(&b->seg, w));
			if (st != HPSI_NODE_DEAD && st != HPSI_NODE_CLOSED)
				return 0;
		}
	return 1;
}

static void host_lost(struct hpsi_bridge *b, uint32_t s)
{
	if (b->sched_lost || hpsi_node_state(&b->seg, s) != HPSI_NODE_DEAD) {
		b->dead_since[s] = 0;
		return;
	}
	int64_t now = hpsi_now_ns();
	if (!b->dead_since[s])
		b->dead_since[s] = now;
	/* The wait lets the FENCE of a host whose bridge lives come first.
	 * When no node of that host runs any more (what the scheduler
	 * declares of a host silent for HPS_DEAD_MS, its bridge too), one
	 * heartbeat is enough: a live bridge sends the FENCE as soon as its
	 * launcher marks the server dead, before its next heartbeat tells the
	 * scheduler, and a FENCE coming later still is harmless (below); no
	 * worker of that host runs to be served by a server of its own. */
	int64_t wait_ms = host_ended(b, b->host_of_server[s]) && b->cc.heartbeat_ms < b->cc.dead_ms
				  ? b->cc.heartbeat_ms
				  : b->cc.dead_ms;
	if (now - b->dead_since[s] < wait_ms * 1000000)
		return;
	hpsi_warn("bridge %s: no FENCE of dead server %u from host %u within %lld ms: that host counts as lost",
		  b->cfg.host, s, b->host_of_server[s], (long long)wait_ms);
	move_ranges(b, s);
	b->fence[s] = FENCE_WAITING;
}

/* Local server s reads DEAD after its death was fenced: 1 when a
 * replacement claimed it since (fenced 0) and its process is gone. The
 * acquire pairs with the claim's release of fenced 0 (runtime/client/ctx.c),
 * stored after its pid and birth, so a claimer still in its claim reads
 * alive. */
static int claimer_gone(struct hpsi_bridge *b, uint32_t s)
{
	struct hpsi_node *n = hpsi_seg_node(&b->seg, s);
	if (atomic_load_explicit(&n->fenced, memory_order_acquire))
		return 0;
	pid_t pid = atomic_load_explicit(&n->pid, memory_order_relaxed);
	return !hpsi_proc_alive(pid, atomic_load_explicit(&n->birth, memory_order_relaxed));
}

int hpsi_bridge_failover_check(struct hpsi_bridge *b)
{
	if (!b->serving)
		return 0;
	int moved = hpsi_bridge_late_handback_check(b); /* (tests: HPS_FAILPOINT=handbackdie) */
	free_dropped(b, 0);
	for (uint32_t s = 0; s < b->S; s++) {
		/* a local replacement claimed the rank (it cleared fenced): its
		 * own death is fenced again. The state's acquire (JOINING, or a
		 * later state changed from it) pairs with its release of
		 * JOINING, stored after it cleared fenced. Not on DEAD: between
		 * its clear and its JOINING the old death still reads DEAD with
		 * fenced 0, and a second fence_out then would store fenced 1 over
		 * the claim's 0, so that the replacement's own death would never
		 * be fenced here. A replacement that dies before this loop saw
		 * it JOINING (even before it stored JOINING) leaves DEAD with
		 * fenced 0 too: then its process is gone (claimer_gone), and its
		 * death is fenced again, else its successor's claim would wait
		 * for `fenced` until HPS_TIMEOUT_MS. */
		uint32_t st = hpsi_node_state(&b->seg, s);
		if (b->fence[s] == FENCE_DONE && hpsi_bridge_local_server(b, s) &&
		    (((st == HPSI_NODE_JOINING || st == HPSI_NODE_ALIVE || st == HPSI_NODE_CLOSED) &&
		      !atomic_load_explicit(&hpsi_seg_node(&b->seg, s)->fenced, memory_order_relaxed)) ||
		     (st == HPSI_NODE_DEAD && claimer_gone(b, s))))
			b->fence[s] = FENCE_NONE;
		if (b->fence[s] == FENCE_DONE)
			continue;
		if (hpsi_bridge_local_server(b, s)) {
			if (hpsi_node_state(&b->seg, s) == HPSI_NODE_DEAD && fence_out(b, s)) {
				b->fence[s] = FENCE_DONE;
				/* release: a replacement acquires it before it claims the
				 * rank (runtime/client/ctx.c), so that the death it
				 * replaces is fenced first, and clears it */
				atomic_store_explicit(&hpsi_seg_node(&b->seg, s)->fenced, 1, memory_order_release);
				hpsi_futex_wake(&hpsi_seg_node(&b->seg, s)->fenced);
				moved = 1;
			}
		} else if (b->fence[s] == FENCE_NONE) {
			host_lost(b, s);
		} else if (b->fence[s] == FENCE_WAITING && !hpsi_bridge_fwd_left(b, s)) {
			/* release: the forwards written before, and the pairs' new
			 * roles, are seen by whoever acquires it */
			atomic_store_explicit(&hpsi_seg_node(&b->seg, s)->fenced, 1, memory_order_release);
			b->fence[s] = FENCE_DONE;
			hpsi_wake_all(&b->seg);
			moved = 1;
		}
	}
	return moved;
}

void hpsi_bridge_failover_leave(struct hpsi_bridge *b)
{
	if (!b->serving)
		return;
	int64_t until = hpsi_now_ns() + b->cc.dead_ms * 1000000;
	for (;;) {
		hpsi_bridge_failover_check(b);
		for (uint32_t i = 0; i < b->nhosts; i++)
			hpsi_bridge_flush(b, i);
		int left = 0;
		for (uint32_t s = b->seg.hdr->srv_lo; s < b->seg.hdr->srv_hi; s++)
			left |= hpsi_node_state(&b->seg, s) == HPSI_NODE_DEAD && b->fence[s] != FENCE_DONE;
		if (!left || hpsi_now_ns() > until)
			return;
		/* what holds a FENCE back is room: batches to send, forwards
		 * still in a ring; the peers' traffic is read meanwhile */
		if (!hpsi_bridge_recv_peers(b))
			sched_yield();
	}
}

void hpsi_bridge_fence_receive(struct hpsi_bridge *b, uint32_t from, uint32_t p)
{
	if (!b->serving || p >= b->S || b->host_of_server[p] != from) {
		hpsi_msg_count_bad("a FENCE naming no server of the sending host");
		return;
	}
	if (b->fence[p] != FENCE_NONE) {
		b->stale++; /* fenced here already: its host was slow, not lost (host_lost) */
		return;
	}
	hpsi_node_mark_dead(&b->seg, p); /* its host's bridge saw it dead */
	move_ranges(b, p);
	b->fence[p] = FENCE_WAITING; /* fenced once its held forwards are in */
}

int hpsi_bridge_late_fence_keep(struct hpsi_bridge *b, uint32_t from, uint32_t p)
{
	if (b->late_fence != 1)
		return 0;
	hpsi_warn("bridge %s: HPS_FAILPOINT=latefence: the FENCE of server %u waits for the next hand-back record",
		  b->cfg.host, p);
	b->late_fence = 2;
	b->late_fence_from = from;
	b->late_fence_server = p;
	return 1;
}

void hpsi_bridge_late_fence_release(struct hpsi_bridge *b)
{
	if (b->late_fence != 2)
		return;
	b->late_fence = 3; /* fired */
	hpsi_bridge_fence_receive(b, b->late_fence_from, b->late_fence_server);
}

int hpsi_bridge_range_coming(struct hpsi_bridge *b, uint32_t s)
{
	/* Also for a range handed back whose replacement holds it (handed 2):
	 * a third host may learn of the replacement's death (its FENCE)
	 * before this one and send the range's requests here again; dropped,
	 * they would never be sent a third time. What comes meanwhile from a
	 * host that had not learned of the hand-back yet waits too (a worker's
	 * ring window at most): it is delivered only if the range comes back
	 * here, where a push seen twice is answered, not applied again. */
	if (!b->serving || s >= b->S)
		return 0;
	/* A move (hps scale) to a server here: a third host sends the range
	 * here once it read the source's HANDBACK record, which may overtake
	 * the FINAL (another stream); its requests wait for the FINAL that
	 * makes the pairs inbound (review: dropped as stale, they were never
	 * sent again). The copy's first record (coming), or the plan, names
	 * the target here; the plan reaches a host that is not the last
	 * through the scheduler, often after a short copy. */
	if (hpsi_seg_room(&b->seg)) {
		if (b->coming[s]) /* its copy here began: the plan may come later */
			return 1;
		uint32_t q = hpsi_range_want(&b->seg, s);
		uint32_t st = q < b->S ? hpsi_node_state(&b->seg, q) : HPSI_NODE_DEAD;
		if (q >= b->seg.hdr->srv_lo && q < b->seg.hdr->srv_hi && st != HPSI_NODE_DEAD && st != HPSI_NODE_CLOSED)
			return 1;
		if (!b->seg.hdr->replicas) /* (with replicas: a takeover here too, below) */
			return 0;
	}
	/* A JOINING replica counts: a third host sends a range handed back
	 * to a replacement here as soon as it read the source's HANDBACK,
	 * which may come before the FINAL that makes the pairs here inbound
	 * (another stream); those requests wait for it. */
	for (uint32_t q = b->seg.hdr->srv_lo; q < b->seg.hdr->srv_hi; q++) {
		uint32_t st = hpsi_node_state(&b->seg, q);
		if (hpsi_replica_index(&b->seg, s, q) != HPSI_NO_SERVER && st != HPSI_NODE_DEAD && st != HPSI_NODE_CLOSED)
			return 1;
	}
	return 0;
}

void hpsi_bridge_failover_free(struct hpsi_bridge *b)
{
	free_dropped(b, 1);
	for (size_t i = 0; b->serving && b->pairs && i < (size_t)b->W * b->S; i++)
		free(b->pairs[i].unacked);
	free(b->serving);
	free(b->fence);
	free(b->dead_since);
	free(b->handed);
	b->handed = NULL;
	free(b->coming);
	b->coming = NULL;
	free(b->handed_by);
	b->handed_by = NULL;
	free(b->retold);
	b->retold = NULL;
	b->serving = NULL;
	b->fence = NULL;
	b->dead_since = NULL;
}
