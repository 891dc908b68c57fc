/* `hps bridge` (net/bridge.h has what the bridge does): setup of this
 * host's segment, sockets and rings, and the main loop that polls them. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/route.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/liveness.h"
#include "shm/wake.h"

volatile sig_atomic_t hpsi_bridge_stop;
static void on_signal(int sig) { hpsi_bridge_stop = sig; }

/* Any ring the bridge consumes holds a record it can take now: requests
 * to a host whose queue is full wait for that queue instead. */
static int rings_pending(struct hpsi_bridge *b)
{
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			if (!p->used || (p->used == HPSI_PAIR_ORIGIN && b->out[p->host].q))
				continue;
			/* (an origin pair's published head stays at its oldest
			 * request in flight with resend: ask its own cursor) */
			if (p->used == HPSI_PAIR_ORIGIN ? hpsi_ring_nonempty(&p->cons) : hpsi_ring_pending(p->cons.r))
				return 1;
		}
	return hpsi_bridge_fwd_pending(b);
}

/* Sleeps until a peer, the scheduler or a ring has something, or ZeroMQ
 * has room again for a peer whose batches wait (or 100 ms): local
 * processes that publish into our rings while we sleep send a datagram to
 * wake_fd (shm/wake.h has the ordering). */
static void idle_wait(struct hpsi_bridge *b)
{
	hpsi_wake_sleeping(&b->seg, 1);
	if (!rings_pending(b) && !hpsi_bridge_ckpt_asked(b)) { /* what was published before we said so */
		zmq_pollitem_t it[3 + HPSI_MAX_HOSTS] = {{.socket = b->router, .events = ZMQ_POLLIN},
							 {.socket = b->sched, .events = ZMQ_POLLIN},
							 {.fd = b->wake_fd, .events = ZMQ_POLLIN}};
		int n = 3;
		for (uint32_t i = 0; i < b->nhosts; i++)
			if (b->out[i].q)
				it[n++] = (zmq_pollitem_t){.socket = b->dealers[i], .events = ZMQ_POLLOUT};
		long ms = b->cc.heartbeat_ms < 100 ? (long)b->cc.heartbeat_ms : 100;
		if (b->ck.busy)
			ms = 1; /* servers that end a checkpoint step ring no bell of ours */
		zmq_poll(it, n, ms);
	}
	hpsi_wake_sleeping(&b->seg, 0);
	hpsi_wake_drain(b->wake_fd);
}

int hpsi_bridge_layout(struct hpsi_bridge *b)
{
	struct hpsi_sched_assign *a = &b->assign;
	b->me = a->h.host, b->nhosts = a->nhosts, b->S = a->nservers, b->W = a->nworkers;
	b->max_payload = hpsi_ring_max_payload(b->seg.hdr->ring_bytes);
	b->answer_max = b->max_payload - sizeof(struct hpsi_msg_hdr);
	b->host_of_server = calloc(b->S, sizeof *b->host_of_server);
	b->host_of_worker = calloc(b->W, sizeof *b->host_of_worker);
	b->pairs = calloc((size_t)b->W * b->S, sizeof *b->pairs);
	b->heaps = calloc(b->W, sizeof *b->heaps);
	b->heap_live = calloc(b->W, sizeof *b->heap_live);
	b->out = calloc(b->nhosts, sizeof *b->out);
	b->dealers = calloc(b->nhosts, sizeof *b->dealers);
	if (!b->host_of_server || !b->host_of_worker || !b->pairs || !b->heaps || !b->heap_live || !b->out ||
	    !b->dealers)
		return HPS_ENOMEM;
	for (uint32_t i = 0; i < b->nhosts; i++) {
		for (uint32_t s = a->hosts[i].srv_lo; s < a->hosts[i].srv_hi; s++)
			b->host_of_server[s] = i;
		for (uint32_t w = a->hosts[i].wrk_lo; w < a->hosts[i].wrk_hi; w++)
			b->host_of_worker[w] = i;
	}
	/* attach to the rings that cross hosts, at the end that is ours.
	 * Ring (w, s) belongs to key range s, served by its owner (the
	 * identity without --max-servers; with room the launch's owner table,
	 * which every host computes alike from the same header) */
	uint32_t rb = b->seg.hdr->ring_bytes;
	for (uint32_t w = 0; w < b->W; w++)
		for (uint32_t s = 0; s < b->S; s++) {
			struct hpsi_bridge_pair *p = hpsi_bridge_pair_of(b, w, s);
			uint32_t owner = hpsi_range_owner(&b->seg, s);
			if (hpsi_bridge_local_worker(b, w) && !hpsi_bridge_local_server(b, owner)) {
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, s, 0), rb);
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, s, 1), rb);
				p->used = HPSI_PAIR_ORIGIN;
				p->host = b->host_of_server[owner];
			} else if (!hpsi_bridge_local_worker(b, w) && hpsi_bridge_local_server(b, owner)) {
				hpsi_ring_prod_attach(&p->prod, hpsi_seg_ring(&b->seg, w, s, 0), rb);
				hpsi_ring_cons_attach(&p->cons, hpsi_seg_ring(&b->seg, w, s, 1), rb);
				p->used = HPSI_PAIR_INBOUND;
			}
		}
	int rc = hpsi_bridge_fwd_layout(b);
	return rc ? rc : hpsi_bridge_failover_layout(b);
}

void hpsi_bridge_seg_params(const struct hpsi_bridge *b, struct hpsi_bridge_place *pl, struct hpsi_seg_params *sp)
{
	const struct hpsi_sched_assign *a = &b->assign;
	const struct hpsi_host_entry *mine = &a->hosts[a->h.host];
	hpsi_config_seg_params(&b->cfg, sp);
	sp->nworkers = a->launched ? a->launched : a->nworkers;
	sp->max_workers = a->nworkers; /* the room: VACANT slots (net/bridge_join.c) */
	/* and the server ranks' room (--max-servers), the last host's */
	sp->nservers = a->launched_servers ? a->launched_servers : a->nservers, sp->max_servers = a->nservers;
	sp->bridged = 1;
	sp->srv_lo = mine->srv_lo, sp->srv_hi = mine->srv_hi, sp->wrk_lo = mine->wrk_lo, sp->wrk_hi = mine->wrk_hi;
	/* the scheduler ranks hosts in this order with contiguous servers
	 * (hpsi_sched_check checked the entries), as shm/place.h expects */
	for (uint32_t h = 0; h < a->nhosts; h++) {
		pl->servers[h] = a->hosts[h].srv_hi - a->hosts[h].srv_lo;
		pl->names[h] = a->hosts[h].name;
	}
	sp->nhosts = a->nhosts;
	sp->host_servers = pl->servers;
	sp->host_names = pl->names;
}

static int setup(struct hpsi_bridge *b)
{
	struct hpsi_sched_assign *a = &b->assign;
	struct hpsi_seg_params sp;
	struct hpsi_bridge_place pl;
	hpsi_bridge_seg_params(b, &pl, &sp);
	int rc = hpsi_seg_create(&sp, &b->seg);
	if (!rc)
		rc = hpsi_bridge_layout(b);
	if (rc)
		return rc;
	/* read by hps top and hps metrics: which peers there are, and which is us */
	atomic_store_explicit(&hpsi_seg_bridge_counters(&b->seg)->nhosts, b->nhosts, memory_order_relaxed);
	atomic_store_explicit(&hpsi_seg_bridge_counters(&b->seg)->me, b->me, memory_order_relaxed);
	for (uint32_t i = 0; i < b->nhosts; i++)
		if (i != b->me && a->hosts[i].endpoint[0] && (rc = hpsi_bridge_connect(b, i)))
			return rc;
	/* a host that joins a running job starts at the job's open barrier
	 * (the scheduler's, in the assignment's gen): the ones before it
	 * completed without it */
	for (uint32_t k = 0; k != a->h.gen; k = hpsi_barrier_seq(k + 1))
		hpsi_barrier_decide(&b->seg, k, 0);
	return 0;
}

int hpsi_bridge_connect(struct hpsi_bridge *b, uint32_t i)
{
	const struct hpsi_host_entry *e = &b->assign.hosts[i];
	b->dealers[i] = zmq_socket(b->zctx, ZMQ_DEALER);
	hpsi_zmq_setup(b->dealers[i], 200, 1 << 20); /* it only sends */
	/* what waits for a slow peer is bounded (net/bridge.h, Errors) */
	int hwm = HPSI_BRIDGE_SNDHWM;
	zmq_setsockopt(b->dealers[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
	char id[5] = {'b'};
	memcpy(id + 1, &b->me, 4);
	zmq_setsockopt(b->dealers[i], ZMQ_ROUTING_ID, id, sizeof id);
	if (hpsi_curve_client(&b->curve, b->dealers[i]))
		return HPS_ESYS;
	if (zmq_connect(b->dealers[i], e->endpoint) != 0) {
		hpsi_error("bridge %s: cannot connect to host %s at %s: %s", b->cfg.host, e->name, e->endpoint,
			   zmq_strerror(zmq_errno()));
		return HPS_ECONFIG;
	}
	return 0;
}

int hpsi_cmd_bridge(int argc, char **argv)
{
	if (argc > 1) {
		printf("usage: hps bridge\n\n"
		       "Runs the bridge of this host in a multi-host job (started by `hps launch`):\n"
		       "registers with the scheduler (HPS_ROOT_URI, HPS_ROOT_PORT), creates this host's\n"
		       "segment and forwards traffic for remote key ranges over ZeroMQ.\n"
		       "HPS_LOCAL_SERVERS and HPS_LOCAL_WORKERS: the processes this host runs.\n");
		return strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? 2 : 0;
	}
	hpsi_log_identity("bridge", -1, NULL);
	static struct hpsi_bridge br;
	struct hpsi_bridge *b = &br;
	uint64_t nsrv = 0, nwrk = 0;
	if (hpsi_config_load(&b->cfg, 0) || hpsi_cluster_load(&b->cc, 1) ||
	    hpsi_setting_u64("LOCAL_SERVERS", 0, HPSI_MAX_NODES, &nsrv) ||
	    hpsi_setting_u64("LOCAL_WORKERS", 0, HPSI_MAX_NODES, &nwrk) || hpsi_curve_load(&b->curve))
		return 2;
	snprintf(b->curve.who, sizeof b->curve.who, "bridge %.80s", b->cfg.host);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	b->zctx = zmq_ctx_new();
	b->router = zmq_socket(b->zctx, ZMQ_ROUTER);
	b->sched = zmq_socket(b->zctx, ZMQ_DEALER);
	/* the largest frame: values of one request, at most a heap slice */
	hpsi_zmq_setup(b->router, 200, (int64_t)b->cfg.heap_slice + (8 << 20));
	hpsi_zmq_setup(b->sched, 200, 1 << 20);
	/* An id of this process, not the host name: ZeroMQ silently ignores a
	 * peer whose id is taken, so a second host group under a name in use
	 * would never be heard; this way the scheduler hears it and refuses
	 * it by name, telling both sides. */
	char rid[HPSI_NAME_MAX + 16];
	int rl = snprintf(rid, sizeof rid, "%s/%d", b->cfg.host, (int)getpid());
	zmq_setsockopt(b->sched, ZMQ_ROUTING_ID, rid, (size_t)rl);
	/* the ZAP handler before any socket listens (net/curve.h) */
	int rc = hpsi_curve_start(&b->curve, b->zctx);
	if (!rc)
		rc = hpsi_curve_server(&b->curve, b->router);
	if (!rc)
		rc = hpsi_curve_client(&b->curve, b->sched);
	if (!rc)
		rc = hpsi_zmq_bind_range(b->router, b->cc.node_addr, b->cc.node_ipv6, b->cc.port_lo, b->cc.port_hi,
				     b->endpoint, sizeof b->endpoint);
	if (!rc && zmq_connect(b->sched, b->cc.root_ep) != 0) {
		hpsi_error("bridge: cannot connect to the scheduler at %s: %s (HPS_ROOT_URI)", b->cc.root_ep,
			   zmq_strerror(zmq_errno()));
		rc = HPS_ECONFIG;
	}
	if (!rc)
		rc = hpsi_bridge_register(b, (uint32_t)nsrv, (uint32_t)nwrk);
	if (!rc)
		rc = setup(b);
	if (!rc && (b->wake_fd = hpsi_wake_bind(&b->seg)) < 0) {
		hpsi_error("bridge: cannot bind its wake-up socket: %s", strerror(errno));
		rc = HPS_ESYS;
	}
	if (!rc) {
		b->last_sched = hpsi_now_ns();
		int64_t spin_until = 0;
		while (!hpsi_bridge_stop) {
			int moved = hpsi_bridge_retry_held(b);
			moved |= hpsi_bridge_fwd_retry(b);
			moved |= hpsi_bridge_failover_check(b);
			moved |= hpsi_bridge_scale_owners(b);
			moved |= hpsi_bridge_forward_requests(b);
			moved |= hpsi_bridge_forward_answers(b);
			moved |= hpsi_bridge_recv_peers(b);
			moved |= hpsi_bridge_recv_sched(b);
			for (uint32_t i = 0; i < b->nhosts; i++)
				hpsi_bridge_flush(b, i);
			hpsi_bridge_barrier_check(b);
			hpsi_bridge_ckpt_check(b);
			int64_t now = hpsi_now_ns();
			if (now > b->next_heartbeat) {
				hpsi_bridge_heartbeat(b);
				b->next_heartbeat = now + b->cc.heartbeat_ms * 1000000;
			}
			if (!b->sched_lost && now - b->last_sched > b->cc.dead_ms * 1000000)
				hpsi_bridge_lose_scheduler(b);
			if (moved) {
				spin_until = now + b->cfg.spin_ns;
			} else if (now > spin_until) {
				idle_wait(b);
			} else {
				sched_yield(); /* spinning: let the host's other processes run */
			}
		}
		hpsi_bridge_failover_leave(b);
		hpsi_bridge_heartbeat(b);
		hpsi_info("bridge %s: %llu messages waited for room in a ring; %llu requests failed here", b->cfg.host,
			  (unsigned long long)b->held_total, (unsigned long long)b->failed_total);
		if (b->stale) /* requests and answers that crossed a failover (net/bridge_failover.c) */
			hpsi_info("bridge %s: %llu messages for key ranges that moved were dropped", b->cfg.host,
				  (unsigned long long)b->stale);
		struct hpsi_sched_hdr bye;
		hpsi_sched_init(&bye, HPSI_SCH_BYE, b->me);
		hpsi_bridge_send_sched(b, &bye, sizeof bye);
	}
	for (uint32_t i = 0; b->dealers && i < b->nhosts; i++)
		if (b->dealers[i])
			zmq_close(b->dealers[i]);
	if (hpsi_curve_refused(&b->curve))
		hpsi_warn("bridge %s: refused %llu peer(s) without an admitted key (HPS_CURVE)", b->cfg.host,
			  (unsigned long long)hpsi_curve_refused(&b->curve));
	zmq_close(b->router);
	zmq_close(b->sched);
	hpsi_curve_stop(&b->curve);
	zmq_ctx_term(b->zctx);
	hpsi_bridge_failover_free(b); /* after ZeroMQ let go of every frame */
	for (uint32_t i = 0; b->out && i < b->nhosts; i++)
		hpsi_bridge_out_free(&b->out[i]);
	if (b->seg.base)
		hpsi_seg_detach(&b->seg);
	free(b->align_buf);
	return rc ? 1 : 0;
}
