/* Checkpoints of a job that spans hosts, the bridge's part (net/bridge.h;
 * the protocol in runtime/server/checkpoint.c, cluster_run, and
 * runtime/cluster/scheduler.c). Two roles:
 *   - a local process (hps_save, hps_load, `hps checkpoint`) asks through
 *     the segment (xck_*, shm/segment.h): the bridge sends the request to
 *     the scheduler and writes its answer back;
 *   - the scheduler asks this host's servers for one step (SAVE, PREPARE,
 *     COMMIT, ABORT): the bridge posts it as a one-host requester would
 *     (shm/ckpt.h), watches it without blocking its loop, and reports how
 *     it ended. A step ends when every local server did its part, when
 *     one died (HPS_EPEERDEAD) or after HPS_TIMEOUT_MS (HPS_ETIMEDOUT).
 * The host with the room of a job with --max-servers (the last: its
 * launcher serves hps scale and holds the checkpoint lock while key ranges
 * move) runs a round's first step before the other hosts and keeps the
 * lock through the round, until the scheduler's UNLOCK (or a bound, or
 * the scheduler's loss): no scale starts in the middle of a checkpoint,
 * and a checkpoint asked while one runs is refused (runtime/cluster/
 * scheduler.c, room_host_first). */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/log.h"
#include "shm/bell.h"
#include "shm/ckpt.h"
#include "shm/node.h"

/* Writes the answer to local request seq; the requester acquires xck_ans. */
static void answer_local(struct hpsi_bridge *b, uint32_t seq, int32_t status, uint32_t clock, const char *why)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	h->xck_status = status;
	h->xck_clock = clock;
	snprintf(h->xck_why, sizeof h->xck_why, "%s", why ? why : "");
	/* release: pairs with cluster_run's acquire; the fields above first */
	atomic_store_explicit(&h->xck_ans, seq, memory_order_release);
	b->xck_open = 0;
}

static void send_done(struct hpsi_bridge *b)
{
	if (hpsi_bridge_send_sched(b, &b->ck_done, sizeof b->ck_done) == 0)
		b->ck_done_unsent = 0; /* else: again next round of the loop */
}

static void report(struct hpsi_bridge *b, uint32_t round, uint32_t op, int32_t status, uint32_t clock,
		   const char *why)
{
	struct hpsi_sched_ckpt *m = &b->ck_done;
	memset(m, 0, sizeof *m);
	hpsi_sched_init(&m->h, HPSI_SCH_CKPT_DONE, b->me);
	m->h.gen = round;
	m->op = op, m->status = status, m->clock = clock;
	snprintf(m->why, sizeof m->why, "%.*s", (int)sizeof m->why - 1, why ? why : ""); /* cut to the frame */
	b->ck_done_unsent = 1;
	send_done(b);
}

/* Whether this host holds its checkpoint lock through a round (the host
 * with the room; as the scheduler's room_host_first). */
static int holds_rounds(const struct hpsi_bridge *b)
{
	return b->nhosts > 1 && b->me == b->nhosts - 1 && hpsi_seg_room(&b->seg) && !b->seg.hdr->replicas;
}

static void release_round(struct hpsi_bridge *b)
{
	b->ck.held = 0, b->ck.unlock_queued = 0;
	hpsi_ckpt_unlock(&b->seg.hdr->ckpt_lock);
}

static void start_step(struct hpsi_bridge *b, uint32_t round, uint32_t op, const char *dir)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	int32_t holder = 0;
	if (h->srv_hi == h->srv_lo) { /* no servers here: nothing to do, no clock to add */
		report(b, round, op, 0, UINT32_MAX, NULL);
		return;
	}
	if (b->ck.held && b->ck.held_round != round) /* (an UNLOCK lost with its round) */
		release_round(b);
	if (!b->ck.held && hpsi_ckpt_lock(&h->ckpt_lock, &holder)) {
		char why[200];
		/* the launcher (not the segment's creator here: this bridge made
		 * it) holds the lock while a scale of servers runs; acquire pairs
		 * with the command's CAS of the request */
		if (holds_rounds(b) &&
		    (atomic_load_explicit(&h->scale_req, memory_order_acquire) & HPSI_SCALE_SERVERS))
			snprintf(why, sizeof why,
				 "host %s: hps scale is moving key ranges of this job (process %d holds the checkpoint lock); checkpoint again once it ended",
				 b->cfg.host, (int)holder);
		else
			snprintf(why, sizeof why, "host %s: process %d holds its checkpoint lock", b->cfg.host, (int)holder);
		hpsi_warn("bridge %s: checkpoint refused: %s", b->cfg.host, why);
		report(b, round, op, HPS_EEXIST, UINT32_MAX, why);
		return;
	}
	if (holds_rounds(b) && !b->ck.held) {
		/* bounded: every step of the round bounded by the scheduler
		 * (HPS_TIMEOUT_MS + HPS_DEAD_MS each; a load has three here) */
		b->ck.held = 1, b->ck.held_round = round;
		b->ck.held_until = hpsi_now_ns() + 4 * (h->timeout_ms + b->cc.dead_ms) * 1000000;
	}
	hpsi_ckpt_post(&b->seg, (int)op, dir);
	b->ck.busy = 1, b->ck.round = round, b->ck.op = op;
	b->ck.deadline = hpsi_now_ns() + h->timeout_ms * 1000000;
	b->ck.next_probe = 0;
	snprintf(b->ck.dir, sizeof b->ck.dir, "%s", dir);
}

void hpsi_bridge_ckpt_run(struct hpsi_bridge *b, const struct hpsi_sched_ckpt *m)
{
	if (m->op == HPSI_CKPT_UNLOCK) { /* the round ended: the lock held through it goes */
		if (b->ck.held && b->ck.held_round == m->h.gen) {
			if (b->ck.busy)
				b->ck.unlock_queued = 1; /* once its step ended */
			else
				release_round(b);
		}
		return;
	}
	if (b->ck.busy) {
		/* the scheduler gave up on this step (another host failed or
		 * died): its ABORT comes once our servers finished it */
		if (m->op == HPSI_CKPT_ABORT && m->h.gen == b->ck.round) {
			b->ck.abort_queued = 1;
			return;
		}
		char why[200];
		snprintf(why, sizeof why, "host %s still runs a step of an earlier checkpoint; try again", b->cfg.host);
		report(b, m->h.gen, m->op, HPS_EEXIST, UINT32_MAX, why);
		return;
	}
	start_step(b, m->h.gen, m->op, m->dir);
}

void hpsi_bridge_ckpt_end(struct hpsi_bridge *b, const struct hpsi_sched_ckpt *m)
{
	if (b->xck_open && m->seq == b->xck_sent)
		answer_local(b, m->seq, m->status, m->clock, m->why);
}

void hpsi_bridge_ckpt_lost(struct hpsi_bridge *b)
{
	if (b->ck.held && !b->ck.busy) /* no UNLOCK can come (a step running: at its end) */
		release_round(b);
	if (b->xck_open)
		answer_local(b, b->xck_sent, HPS_EPEERDEAD, 0, "the scheduler went silent during the checkpoint");
}

int hpsi_bridge_ckpt_asked(const struct hpsi_bridge *b)
{
	/* relaxed: only whether to look again; hpsi_bridge_ckpt_check acquires */
	return atomic_load_explicit(&b->seg.hdr->xck_req, memory_order_relaxed) != b->xck_sent;
}

/* The local servers whose part a step waits for. Without replicas,
 * every one that serves a range (a dead one fails the step, below). With replicas, as on one
 * host (live_servers in runtime/server/checkpoint.c), those not gone: a
 * dead server's ranges are saved and loaded by the replicas that serve
 * them now, and the caller checks that every range was saved
 * (check_every_range). Counting a dead one failed every checkpoint of the
 * job after a server's death (tests/test_xfault.c). */
static uint32_t step_servers(const struct hpsi_seg *s)
{
	const struct hpsi_seg_hdr *h = s->hdr;
	if (!h->replicas && !hpsi_seg_room(s))
		return h->srv_hi - h->srv_lo;
	if (!h->replicas) {
		/* with room (--max-servers): the ranks the owner table names, as
		 * on one host (hpsi_servers_current); a VACANT rank of the room,
		 * or one a scale closed, serves nothing and does no part */
		uint32_t n = 0;
		for (uint32_t srv = h->srv_lo; srv < h->srv_hi; srv++)
			for (uint32_t r = 0; r < h->nservers; r++)
				if (hpsi_range_owner(s, r) == srv) {
					n++;
					break;
				}
		return n;
	}
	uint32_t n = 0;
	for (uint32_t srv = h->srv_lo; srv < h->srv_hi; srv++)
		n += !hpsi_server_gone(s, srv);
	return n;
}

/* How the local step stands: 1 ended (status, clock, why), 0 running. */
static int step_ended(struct hpsi_bridge *b, int32_t *status, uint32_t *clock, char *why, size_t cap)
{
	struct hpsi_seg *s = &b->seg;
	struct hpsi_seg_hdr *h = s->hdr;
	/* acquire: pairs with each server's release of ckpt_done
	 * (hpsi_checkpoint_served): ckpt_status, ckpt_clock, ckpt_why are then visible */
	if (atomic_load_explicit(&h->ckpt_done, memory_order_acquire) >= step_servers(s)) {
		*status = atomic_load_explicit(&h->ckpt_status, memory_order_relaxed);
		*clock = atomic_load_explicit(&h->ckpt_clock, memory_order_relaxed);
		snprintf(why, cap, "host %s: %s", b->cfg.host, *status ? (h->ckpt_why[0] ? h->ckpt_why : hps_strerror(*status)) : "");
		return 1;
	}
	*clock = UINT32_MAX;
	int64_t now = hpsi_now_ns();
	if (now < b->ck.next_probe) /* a check reads /proc: not on every turn of the loop */
		return 0;
	b->ck.next_probe = now + 20000000;
	for (uint32_t srv = h->srv_lo; srv < h->srv_hi; srv++)
		if (hpsi_node_check(s, srv) == HPSI_NODE_DEAD && !h->replicas) {
			*status = HPS_EPEERDEAD;
			snprintf(why, cap, "host %s: server %u died during the checkpoint", b->cfg.host, srv);
			return 1;
		}
	if (now > b->ck.deadline) {
		*status = HPS_ETIMEDOUT;
		snprintf(why, cap, "host %s: its servers did not finish within HPS_TIMEOUT_MS=%lld", b->cfg.host,
			 (long long)h->timeout_ms);
		return 1;
	}
	return 0;
}

void hpsi_bridge_ckpt_check(struct hpsi_bridge *b)
{
	struct hpsi_seg_hdr *h = b->seg.hdr;
	if (b->ck_done_unsent)
		send_done(b);
	/* acquire: pairs with cluster_run's release of xck_req, after xck_op and xck_dir */
	uint32_t req = atomic_load_explicit(&h->xck_req, memory_order_acquire);
	if (req != b->xck_sent) {
		if (b->sched_lost) {
			b->xck_sent = req, b->xck_open = 1;
			hpsi_bridge_ckpt_lost(b);
		} else {
			struct hpsi_sched_ckpt m = {0};
			hpsi_sched_init(&m.h, HPSI_SCH_CKPT, b->me);
			m.op = h->xck_op, m.seq = req;
			snprintf(m.dir, sizeof m.dir, "%s", h->xck_dir);
			const char *why;
			if (hpsi_sched_check(&m, sizeof m, &why)) { /* what the scheduler would refuse */
				b->xck_sent = req, b->xck_open = 1;
				answer_local(b, req, HPS_EINVAL, 0, "checkpoint request with a bad step or directory");
			} else if (hpsi_bridge_send_sched(b, &m, sizeof m) == 0) { /* else: again next round */
				b->xck_sent = req, b->xck_open = 1;
			}
		}
	}
	if (b->ck.held && !b->ck.busy && hpsi_now_ns() > b->ck.held_until) {
		hpsi_warn("bridge %s: checkpoint round %u did not end in time: its checkpoint lock goes", b->cfg.host,
			  b->ck.held_round);
		release_round(b);
	}
	if (!b->ck.busy)
		return;
	int32_t status;
	uint32_t clock;
	char why[sizeof h->ckpt_why + HPSI_NAME_MAX + 16];
	if (!step_ended(b, &status, &clock, why, sizeof why))
		return;
	b->ck.busy = 0;
	if (!b->ck.held)
		hpsi_ckpt_unlock(&h->ckpt_lock);
	else if ((b->ck.unlock_queued && !b->ck.abort_queued) || b->sched_lost)
		release_round(b); /* (with an ABORT queued: once it ended) */
	report(b, b->ck.round, b->ck.op, status, clock, status ? why : NULL);
	if (b->ck.abort_queued) {
		b->ck.abort_queued = 0;
		start_step(b, b->ck.round, HPSI_CKPT_ABORT, b->ck.dir);
	}
}
