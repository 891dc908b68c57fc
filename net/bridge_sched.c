/* The bridge as the scheduler's client (net/bridge.h): registration and the
 * job's layout, heartbeats with the local nodes' states, the states of
 * remote nodes back, and what happens when the scheduler goes silent. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/bridge_stats.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/liveness.h"
#include "shm/node.h"

int hpsi_bridge_send_sched(struct hpsi_bridge *b, const void *m, size_t len)
{
	while (zmq_send(b->sched, m, len, ZMQ_DONTWAIT) < 0)
		if (zmq_errno() != EINTR)
			return -1;
	return 0;
}

void hpsi_bridge_heartbeat(struct hpsi_bridge *b)
{
	struct hpsi_sched_states m = {0};
	hpsi_sched_init(&m.h, HPSI_SCH_HEARTBEAT, b->me);
	m.nnodes = b->S + b->W;
	for (uint32_t n = 0; n < m.nnodes; n++) {
		if (!hpsi_node_local(&b->seg, n))
			continue;
		if (n < b->S) {
			uint32_t st = hpsi_node_check(&b->seg, n);
			/* a free rank of the room (--max-servers): the scheduler knows no VACANT */
			m.state[n] = (uint8_t)(st == HPSI_NODE_VACANT ? HPSI_NODE_EMPTY : st);
			continue;
		}
		/* a dead worker the launcher may restart reads RESTARTING
		 * (hpsi_worker_state): the scheduler keeps it a member */
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		/* This host's restarts: each rank's incarnation (+1 per restart
		 * that claimed its rank; the new process adds it, relaxed,
		 * before its release of ALIVE), +1 while RESTARTING. A claim
		 * between the two state loads may or may not show in inc: the
		 * +1 is then left out, counting it once or, for one heartbeat,
		 * not yet (a restart that died before it claimed is counted
		 * once, though the launcher spent two) */
		uint32_t before = hpsi_node_state(&b->seg, n);
		uint32_t inc = atomic_load_explicit(&node->incarnation, memory_order_relaxed);
		m.state[n] = (uint8_t)hpsi_worker_state(&b->seg, n, 1);
		uint32_t after = hpsi_node_state(&b->seg, n);
		m.restarts += inc + (before == HPSI_NODE_RESTARTING && after == HPSI_NODE_RESTARTING);
	}
	hpsi_bridge_join_report(b, &m);
	hpsi_bridge_recover_report(b, &m);
	hpsi_bridge_scale_report(b, &m);
	hpsi_bstat_totals(b, &m.totals);
	hpsi_bridge_send_sched(b, &m, sizeof m);
}

static void apply_states(struct hpsi_bridge *b, const struct hpsi_sched_states *m)
{
	int changed = hpsi_bridge_join_apply(b, m); /* a joiner ALIVE before its DEAD or CLOSED */
	changed |= hpsi_bridge_recover_apply(b, m); /* replacement servers: JOINING, lacking, ALIVE */
	changed |= hpsi_bridge_scale_apply(b, m); /* a scale's new servers, then its plan */
	for (uint32_t n = 0; n < m->nnodes && n < b->S + b->W; n++) {
		if (hpsi_node_local(&b->seg, n) || (m->state[n] != HPSI_NODE_DEAD && m->state[n] != HPSI_NODE_CLOSED))
			continue;
		if (m->state[n] == HPSI_NODE_CLOSED && hpsi_bridge_close_waits(b, n))
			continue; /* a later states message takes it */
		struct hpsi_node *node = hpsi_seg_node(&b->seg, n);
		uint32_t cur = HPSI_NODE_ALIVE;
		/* release: pairs with the acquire of whoever checks the node */
		if (atomic_compare_exchange_strong_explicit(&node->state, &cur, m->state[n], memory_order_acq_rel,
							    memory_order_acquire)) {
			changed = 1;
			/* a backup a scale closed (with room): no push here waits
			 * for its acks any more, as for a dead one */
			if (m->state[n] == HPSI_NODE_CLOSED && n < b->S && hpsi_seg_room(&b->seg) && b->seg.hdr->replicas)
				hpsi_bridge_acks_dead(b, n);
		}
	}
	/* The job's restart budget is the scheduler's (runtime/cluster/
	 * scheduler.c): this host's launcher may restart only while the job
	 * has restarts left. Lowered, never raised (the launcher counts its
	 * own down from HPS_RESTART_WORKERS); release: as the launcher's own
	 * decrement, which whoever reads a worker's state acquires. */
	const char *budget = hpsi_setting("RESTART_WORKERS");
	uint32_t total = budget ? (uint32_t)strtoul(budget, NULL, 10) : 0;
	uint32_t left = m->restarts < total ? total - m->restarts : 0;
	_Atomic uint32_t *own = &b->seg.hdr->worker_restarts;
	uint32_t cur = atomic_load_explicit(own, memory_order_relaxed);
	while (cur > left &&
	       !atomic_compare_exchange_weak_explicit(own, &cur, left, memory_order_release, memory_order_relaxed))
		;
	if (changed)
		hpsi_wake_all(&b->seg);
}

void hpsi_bridge_lose_scheduler(struct hpsi_bridge *b)
{
	hpsi_error("bridge %s: no word from the scheduler at %s for %lld ms (HPS_DEAD_MS): remote nodes count as dead",
		   b->cfg.host, b->cc.root_ep, (long long)b->cc.dead_ms);
	b->sched_lost = 1;
	for (uint32_t n = 0; n < b->S + b->W; n++)
		if (!hpsi_node_local(&b->seg, n)) {
			/* only ALIVE -> DEAD: a node that closed stays closed. acq_rel
			 * pairs like every state change (shm/segment.h, struct
			 * hpsi_node): the waiters woken below acquire the state */
			uint32_t cur = HPSI_NODE_ALIVE;
			atomic_compare_exchange_strong_explicit(&hpsi_seg_node(&b->seg, n)->state, &cur, HPSI_NODE_DEAD,
								memory_order_acq_rel, memory_order_acquire);
		}
	/* no decision can come any more: the open barrier fails here */
	hpsi_bridge_barrier_decide(b, hpsi_barrier_open(&b->seg, NULL), HPS_EPEERDEAD);
	hpsi_bridge_ckpt_lost(b);
	hpsi_wake_all(&b->seg);
}

/* The assignment again, after the start: a host that joins later
 * registered (its entry has its endpoint now); connect to it. Any other
 * difference from the assignment this bridge was built from is dropped
 * as malformed: the layout cannot change while the job runs. */
static void peers_joined(struct hpsi_bridge *b, const struct hpsi_sched_assign *m)
{
	const struct hpsi_sched_assign *a = &b->assign;
	if (m->h.host != b->me || m->nhosts != a->nhosts || m->nservers != a->nservers || m->nworkers != a->nworkers ||
	    m->launched != a->launched || m->launched_servers != a->launched_servers) {
		hpsi_msg_count_bad("an assignment that differs from the job's");
		return;
	}
	for (uint32_t i = 0; i < a->nhosts; i++) {
		const struct hpsi_host_entry *e = &m->hosts[i], *mine = &a->hosts[i];
		if (strcmp(e->name, mine->name) || e->srv_lo != mine->srv_lo || e->srv_hi != mine->srv_hi ||
		    e->wrk_lo != mine->wrk_lo || e->wrk_hi != mine->wrk_hi || (mine->endpoint[0] && strcmp(e->endpoint, mine->endpoint))) {
			hpsi_msg_count_bad("an assignment that differs from the job's");
			return;
		}
	}
	for (uint32_t i = 0; i < a->nhosts; i++) {
		if (i == b->me || b->dealers[i] || !m->hosts[i].endpoint[0])
			continue;
		memcpy(b->assign.hosts[i].endpoint, m->hosts[i].endpoint, sizeof m->hosts[i].endpoint);
		if (hpsi_bridge_connect(b, i) == 0)
			hpsi_info("bridge %s: host %s joined the job (%s)", b->cfg.host, m->hosts[i].name,
				  m->hosts[i].endpoint);
	}
}

int hpsi_bridge_recv_sched(struct hpsi_bridge *b)
{
	static union {
		struct hpsi_sched_hdr h;
		struct hpsi_sched_states st;
		unsigned char raw[sizeof(struct hpsi_sched_assign)];
	} m;
	int moved = 0;
	for (;;) {
		int n = zmq_recv(b->sched, &m, sizeof m, ZMQ_DONTWAIT);
		if (n < 0)
			return moved;
		moved = 1;
		const char *why;
		if ((size_t)n > sizeof m || hpsi_sched_check(&m, (size_t)n, &why)) {
			hpsi_msg_count_bad((size_t)n > sizeof m ? "scheduler message too large" : why);
			continue;
		}
		b->last_sched = hpsi_now_ns();
		if (m.h.type == HPSI_SCH_STATES)
			apply_states(b, &m.st);
		else if (m.h.type == HPSI_SCH_RELEASE)
			hpsi_bridge_barrier_decide(b, m.h.gen, 0);
		else if (m.h.type == HPSI_SCH_BROKEN)
			hpsi_bridge_barrier_decide(b, m.h.gen, ((struct hpsi_sched_broken *)&m)->code);
		else if (m.h.type == HPSI_SCH_CKPT_RUN)
			hpsi_bridge_ckpt_run(b, (const struct hpsi_sched_ckpt *)&m);
		else if (m.h.type == HPSI_SCH_CKPT_END)
			hpsi_bridge_ckpt_end(b, (const struct hpsi_sched_ckpt *)&m);
		else if (m.h.type == HPSI_SCH_ASSIGN)
			peers_joined(b, (const struct hpsi_sched_assign *)&m);
		else if (m.h.type == HPSI_SCH_ABORT)
			hpsi_error("bridge %s: the scheduler stopped the job: %s", b->cfg.host,
				   ((struct hpsi_sched_abort *)&m)->reason);
	}
}

int hpsi_bridge_register(struct hpsi_bridge *b, uint32_t nsrv, uint32_t nwrk)
{
	struct hpsi_sched_register r = {0};
	hpsi_sched_init(&r.h, HPSI_SCH_REGISTER, 0);
	snprintf(r.name, sizeof r.name, "%s", b->cfg.host);
	snprintf(r.endpoint, sizeof r.endpoint, "%s", b->endpoint);
	r.nservers = nsrv, r.nworkers = nwrk;
	r.total_servers = b->cfg.nservers, r.total_workers = b->cfg.nworkers;
	static const char *const shared[HPSI_NSHARED] = HPSI_SHARED_SETTINGS;
	for (int i = 0; i < HPSI_NSHARED; i++)
		r.settings[i] = hpsi_settings_hash(shared[i]);
	r.token = hpsi_settings_hash("JOB_TOKEN");
	if (hpsi_bridge_send_sched(b, &r, sizeof r)) {
		hpsi_error("bridge %s: cannot send its registration to the scheduler at %s: %s", b->cfg.host,
			   b->cc.root_ep, zmq_strerror(zmq_errno()));
		return HPS_ESYS;
	}
	int64_t deadline = hpsi_now_ns() + b->cc.register_ms * 1000000;
	while (!hpsi_bridge_stop) {
		int64_t left = (deadline - hpsi_now_ns()) / 1000000;
		if (left <= 0) {
			hpsi_error("bridge %s: the scheduler at %s did not answer within HPS_REGISTER_MS=%lld (HPS_ROOT_URI, HPS_ROOT_PORT)",
				   b->cfg.host, b->cc.root_ep, (long long)b->cc.register_ms);
			return HPS_ETIMEDOUT;
		}
		zmq_pollitem_t it = {.socket = b->sched, .events = ZMQ_POLLIN};
		if (zmq_poll(&it, 1, left < 100 ? left : 100) <= 0)
			continue;
		int n = zmq_recv(b->sched, &b->assign, sizeof b->assign, 0);
		const char *why;
		if (n < 0 || (size_t)n > sizeof b->assign || hpsi_sched_check(&b->assign, (size_t)n, &why))
			continue;
		if (b->assign.h.type == HPSI_SCH_ABORT) {
			hpsi_error("bridge %s: the scheduler refused the job: %s", b->cfg.host,
				   ((struct hpsi_sched_abort *)&b->assign)->reason);
			return HPS_ECONFIG;
		}
		if (b->assign.h.type == HPSI_SCH_ASSIGN)
			return 0;
	}
	return HPS_ECLOSED;
}
