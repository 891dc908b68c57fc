/* `hps scheduler`: the one process of a multi-host job that knows every
 * host. Bridges register (host name, where they listen, how many servers
 * and workers they run); once the job's HPS_NUM_SERVERS and
 * HPS_NUM_WORKERS are all accounted for, hosts are ordered (--order, else
 * by name) and given contiguous server and worker ranks, and every bridge gets the
 * whole table. Afterwards it collects heartbeats (each carrying the states
 * of that host's nodes), broadcasts every node's state when one changes,
 * declares a host silent for HPS_DEAD_MS dead (its unfinished nodes DEAD),
 * and decides the cross-host barrier (shm/barrier.h): complete once every
 * host with workers reported that each of them arrived or closed; failed,
 * for good, once a worker died or a host reported a worker's deadline. It
 * also runs checkpoints across hosts, one at a time (struct ckpt_round). It
 * ends when every host has left or died. One thread, one ROUTER socket. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/codec.h"
#include "net/curve.h"
#include "net/wire.h"
#include "net/transport.h"
#include "runtime/cluster/hosts_stats.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/bell.h"

/* A peer's ZeroMQ routing id: bytes, not a string (a bridge names itself
 * after its host; a socket that names itself not gets 5 binary bytes). */
struct peer_id {
	unsigned char b[255];
	size_t n;
};

struct host {
	struct peer_id id;
	struct hpsi_sched_register reg;
	int64_t last_seen;
	int left, dead;
	int absent; /* the host the hosts file marks later, before it registered (no routing id) */
	uint32_t barrier_gen; /* gen + 1 of its last barrier arrival */
	struct hpsi_host_totals totals; /* from its last heartbeat */
	uint32_t restarts; /* its workers' restarts (--restart-workers), from its heartbeats */
	uint32_t join_ack[HPSI_MAX_NODES]; /* per node: its join word (floor) for another host's joiner */
};

/* A checkpoint across hosts, asked for by one host's bridge: a save is
 * one step (SAVE) on every host, a load two (PREPARE, then COMMIT when
 * every host read every file, else ABORT). A step ends on a host when its
 * bridge reports it (DONE), when the host dies or leaves, or after
 * HPS_TIMEOUT_MS plus HPS_DEAD_MS (each host bounds its own step by
 * HPS_TIMEOUT_MS); the asking bridge then gets the outcome (END). */
struct ckpt_round {
	int active;
	uint32_t round;   /* gen of its RUN and DONE messages */
	uint32_t step;    /* HPSI_CKPT_SAVE, _PREPARE or _COMMIT */
	uint32_t asker, seq, op; /* who asked, its request number, SAVE or LOAD */
	uint64_t waiting; /* bit i: host i has not reported this step */
	uint64_t ran;     /* bit i: host i was asked for the round's first step */
	int staged;       /* the first step went to the host with the room only, so far */
	int32_t status;   /* the first failure */
	uint32_t clock;   /* the smallest saved clock (SAVE, PREPARE) */
	int64_t deadline;
	char dir[512];
	char why[256];
};

struct sched {
	void *sock;
	struct hpsi_cluster_cfg cc;
	struct hpsi_curve curve; /* HPS_CURVE: who may talk to us */
	uint32_t nservers, nworkers, nhosts;
	uint32_t launched; /* -w: nworkers less the room (--max-workers), the last host's */
	uint32_t launched_srv; /* -s: nservers less the room (--max-servers), the last host's */
	struct host hosts[HPSI_MAX_HOSTS];
	/* per room slot: its host's join word (claimed, then its clock); per
	 * server: its incarnation and lacking bits (HPSI_SRV_WORD) */
	uint32_t join_own[HPSI_MAX_NODES];
	struct hpsi_sched_assign assign;
	uint8_t state[HPSI_MAX_NODES];
	int states_changed;
	uint32_t barrier_gen;  /* barriers completed: barrier_gen is open */
	int32_t barrier_code;  /* 0, or why barrier_gen failed (and all after it) */
	uint64_t token;          /* hash of HPS_JOB_TOKEN, 0 when unset */
	uint64_t refused;        /* registrations refused before the job started */
	char last_refusal[256];  /* the reason of the last one */
	int64_t timeout_ms;      /* HPS_TIMEOUT_MS: what one host's checkpoint step may take */
	struct ckpt_round ck;
	uint32_t ck_rounds;      /* rounds started */
	/* hps scale --servers: the last host's plan (struct hpsi_sched_states) */
	uint32_t plan_seq, plan_servers;
	uint16_t plan[HPSI_MAX_NODES];
	uint32_t plan_moves[HPSI_MAX_NODES];
	uint16_t plan_backup[HPSI_MAX_NODES];
};

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void bad_message(struct sched *s, const char *why)
{
	(void)s;
	hpsi_msg_count_bad(why); /* counted and logged, rate-limited */
}

static void send_to(struct sched *s, const struct peer_id *id, const void *msg, size_t len)
{
	zmq_send(s->sock, id->b, id->n, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	zmq_send(s->sock, msg, len, ZMQ_DONTWAIT);
}

static void abort_host(struct sched *s, const struct peer_id *id, const char *reason)
{
	struct hpsi_sched_abort a = {0};
	hpsi_sched_init(&a.h, HPSI_SCH_ABORT, 0);
	snprintf(a.reason, sizeof a.reason, "%.*s", (int)sizeof a.reason - 1, reason); /* cut to the frame */
	send_to(s, id, &a, sizeof a);
}

/* Receives one [routing id][message] pair; returns its length, or -1 when
 * nothing is waiting; malformed framing is dropped. */
static int recv_one(struct sched *s, struct peer_id *id, void *buf, size_t cap, int flags)
{
	zmq_msg_t part;
	int nparts = 0, len = -1;
	int more = 1;
	id->n = 0;
	while (more) {
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, s->sock, nparts ? 0 : flags) < 0) {
			zmq_msg_close(&part);
			return nparts ? -2 : -1;
		}
		size_t n = zmq_msg_size(&part);
		if (nparts == 0 && n <= sizeof id->b) {
			memcpy(id->b, zmq_msg_data(&part), n);
			id->n = n;
		} else if (nparts == 1 && n <= cap) {
			memcpy(buf, zmq_msg_data(&part), n);
			len = (int)n;
		}
		nparts++;
		more = zmq_msg_more(&part);
		zmq_msg_close(&part);
	}
	if (nparts != 2 || len < 0 || !id->n) {
		bad_message(s, nparts != 2 ? "wrong number of frames" : "frame too large");
		return -2;
	}
	return len;
}

static struct host *host_by_id(struct sched *s, const struct peer_id *id)
{
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (s->hosts[i].id.n == id->n && memcmp(s->hosts[i].id.b, id->b, id->n) == 0)
			return &s->hosts[i];
	return NULL;
}

static struct host *host_by_name(struct sched *s, const char *name)
{
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (strcmp(s->hosts[i].reg.name, name) == 0)
			return &s->hosts[i];
	return NULL;
}

/* A host the scheduler talks to: registered, and not left or dead. */
static int host_here(const struct host *h)
{
	return !h->left && !h->dead && !h->absent;
}

/* --order NAME,NAME,...: hosts named there first, in that order (`hps
 * launch --hosts` gives its file's), the others after them by name. */
static const char *order;
/* --later NAME: the host that joins the running job (the last of --order;
 * its part is the job's room, the last host's): the job starts without
 * it, and its registration is taken while the job runs (late_register) */
static const char *later;

static size_t order_of(const char *name)
{
	size_t idx = 0, len = strlen(name);
	for (const char *p = order; p && *p; idx++) {
		size_t n = strcspn(p, ",");
		if (n == len && strncmp(p, name, n) == 0)
			return idx;
		p += n + (p[n] == ',');
	}
	return (size_t)-1;
}

static int by_order(const void *a, const void *b)
{
	const char *x = ((const struct host *)a)->reg.name, *y = ((const struct host *)b)->reg.name;
	size_t i = order_of(x), j = order_of(y);
	return i != j ? (i < j ? -1 : 1) : strcmp(x, y);
}

/* 1 with the reason when m's routing settings differ from the first
 * host's (hosts must agree on what shapes routing and messages). */
static int settings_differ(const struct sched *s, const struct hpsi_sched_register *m, char *reason, size_t cap)
{
	if (!memcmp(m->settings, s->hosts[0].reg.settings, sizeof m->settings))
		return 0;
	static const char *const shared[HPSI_NSHARED] = HPSI_SHARED_SETTINGS;
	int k = 0;
	while (k < HPSI_NSHARED - 1 && m->settings[k] == s->hosts[0].reg.settings[k])
		k++;
	snprintf(reason, cap, "hosts %s and %s have different HPS_%s: every host needs the same", s->hosts[0].reg.name,
		 m->name, shared[k]);
	return 1;
}

/* Why registration m from peer id cannot join the job, or "" when it can.
 * srv and wrk: the processes registered so far. *answer: whether to tell
 * the peer (not when it does not know the job's token: a stranger learns
 * nothing). */
static void refusal(struct sched *s, const struct hpsi_sched_register *m, const struct peer_id *id, uint32_t srv,
		    uint32_t wrk, char *reason, size_t cap, int *answer)
{
	const struct host *twin;
	reason[0] = 0;
	*answer = 1;
	if (s->token && m->token != s->token) {
		snprintf(reason, cap, "a registration as host %s without the job's token (HPS_JOB_TOKEN): not a host of this job",
			 m->name);
		*answer = 0;
	} else if (order && order_of(m->name) == (size_t)-1)
		snprintf(reason, cap, "host %s is not one of the job's hosts (%s)", m->name, order);
	else if (m->total_servers != s->nservers || m->total_workers != s->nworkers)
		snprintf(reason, cap,
			 "host %s believes the job has %u servers and %u workers, the scheduler %u and %u (HPS_NUM_SERVERS, HPS_NUM_WORKERS)",
			 m->name, m->total_servers, m->total_workers, s->nservers, s->nworkers);
	else if (m->nservers + m->nworkers == 0 && !(later && strcmp(m->name, later) == 0))
		snprintf(reason, cap, "host %s brings no server and no worker (HPS_LOCAL_SERVERS, HPS_LOCAL_WORKERS)",
			 m->name);
	else if ((twin = host_by_name(s, m->name)) || host_by_id(s, id))
		snprintf(reason, cap,
			 "host name %s is taken: two host groups registered it (set HPS_HOST, or DMLC_NODE_HOST, to a name of its own on each)",
			 m->name);
	else if (s->nhosts == HPSI_MAX_HOSTS)
		snprintf(reason, cap, "host %s is one host too many: at most %d hosts", m->name, HPSI_MAX_HOSTS);
	else if (s->nhosts && settings_differ(s, m, reason, cap))
		;
	else if (srv + m->nservers > s->nservers || wrk + m->nworkers > s->nworkers)
		snprintf(reason, cap,
			 "host %s brings %u servers and %u workers: more than the job's %u and %u less the %u and %u registered (HPS_NUM_SERVERS, HPS_NUM_WORKERS)",
			 m->name, m->nservers, m->nworkers, s->nservers, s->nworkers, srv, wrk);
}

/* Registration: until the job's counts are reached, or the deadline. A
 * registration that cannot join (counts or settings that differ, a name
 * taken, more processes than the job has) is refused alone: that peer gets
 * the reason, the refusal is logged and counted, and the scheduler goes on
 * waiting for the real hosts. Nothing a peer sends ends the scheduler: a
 * stranger's message must not stop the job, and a misconfigured host
 * learns its reason at once either way. */
static int collect_hosts(struct sched *s)
{
	uint32_t srv = 0, wrk = 0;
	int64_t deadline = hpsi_now_ns() + s->cc.register_ms * 1000000;
	union {
		struct hpsi_sched_register reg;
		unsigned char raw[sizeof(struct hpsi_sched_assign)];
	} m;
	struct peer_id id;
	while (srv < s->nservers || wrk < s->nworkers) {
		if (stop_signal)
			return HPS_ECLOSED;
		int64_t left = (deadline - hpsi_now_ns()) / 1000000;
		if (left <= 0) {
			char why[400];
			int k = snprintf(why, sizeof why, "a host never showed up (HPS_REGISTER_MS)");
			if (s->refused && k > 0)
				snprintf(why + k, sizeof why - (size_t)k, "; %llu registration(s) refused, the last: %s",
					 (unsigned long long)s->refused, s->last_refusal);
			hpsi_error("scheduler: only %u of %u servers and %u of %u workers registered within HPS_REGISTER_MS=%lld: %s",
				   srv, s->nservers, wrk, s->nworkers, (long long)s->cc.register_ms, why);
			for (uint32_t i = 0; i < s->nhosts; i++)
				abort_host(s, &s->hosts[i].id, why);
			return HPS_ETIMEDOUT;
		}
		zmq_pollitem_t it = {.socket = s->sock, .events = ZMQ_POLLIN};
		if (zmq_poll(&it, 1, left < 100 ? left : 100) <= 0)
			continue;
		int n = recv_one(s, &id, &m, sizeof m, ZMQ_DONTWAIT);
		const char *why;
		if (n < 0)
			continue;
		if (hpsi_sched_check(&m, (size_t)n, &why)) {
			bad_message(s, why);
			continue;
		}
		if (m.reg.h.type != HPSI_SCH_REGISTER) {
			if (m.reg.h.type != HPSI_SCH_HEARTBEAT)
				bad_message(s, "a message before registration");
			continue;
		}
		struct host *same = host_by_id(s, &id);
		if (same && memcmp(&same->reg, &m.reg, sizeof m.reg) == 0) {
			bad_message(s, "a registration sent twice"); /* the first one stands */
			continue;
		}
		char reason[512];
		int answer;
		refusal(s, &m.reg, &id, srv, wrk, reason, sizeof reason, &answer);
		if (reason[0]) {
			/* a line each for the first few, then every 1000th: a flood
			 * of forged registrations cannot flood the log */
			if (++s->refused <= 10 || s->refused % 1000 == 0)
				hpsi_error("scheduler: registration refused (%llu so far): %s", (unsigned long long)s->refused,
					   reason);
			snprintf(s->last_refusal, sizeof s->last_refusal, "%.*s", (int)sizeof s->last_refusal - 1, reason);
			if (answer)
				abort_host(s, &id, reason);
			continue;
		}
		struct host *h = &s->hosts[s->nhosts++];
		h->id = id;
		h->reg = m.reg;
		h->last_seen = hpsi_now_ns();
		srv += m.reg.nservers;
		wrk += m.reg.nworkers;
		hpsi_info("scheduler: host %s registered (%u servers, %u workers, %s)", m.reg.name, m.reg.nservers,
			  m.reg.nworkers, m.reg.endpoint);
	}
	return 0;
}

static void send_assignments(struct sched *s)
{
	qsort(s->hosts, s->nhosts, sizeof *s->hosts, by_order);
	struct hpsi_sched_assign *a = &s->assign;
	memset(a, 0, sizeof *a);
	a->nhosts = s->nhosts, a->nservers = s->nservers, a->nworkers = s->nworkers, a->launched = s->launched;
	a->launched_servers = s->launched_srv;
	uint32_t srv = 0, wrk = 0;
	for (uint32_t i = 0; i < s->nhosts; i++) {
		struct hpsi_host_entry *e = &a->hosts[i];
		const struct hpsi_sched_register *r = &s->hosts[i].reg;
		snprintf(e->name, sizeof e->name, "%s", r->name);
		snprintf(e->endpoint, sizeof e->endpoint, "%s", r->endpoint);
		e->srv_lo = srv, e->srv_hi = srv += r->nservers;
		e->wrk_lo = wrk, e->wrk_hi = wrk += r->nworkers;
		s->hosts[i].last_seen = hpsi_now_ns();
	}
	/* The free ranks (--max-workers) are the last host's: a claim is one
	 * host's compare-and-swap, and every bridge knows at layout time which
	 * end of those ranks' rings it holds (net/bridge_join.c) */
	a->hosts[s->nhosts - 1].wrk_hi = s->nworkers;
	/* The free server ranks (--max-servers) too: one host's launcher
	 * starts them at a scale, and every bridge knows at layout time on
	 * which host each rank runs (docs/ARCHITECTURE.md, "Elastic servers
	 * across hosts", step 1) */
	a->hosts[s->nhosts - 1].srv_hi = s->nservers;
	for (uint32_t i = 0; i < s->nhosts; i++) {
		if (s->hosts[i].absent)
			continue; /* (it gets this once it registered: late_register) */
		hpsi_sched_init(&a->h, HPSI_SCH_ASSIGN, i);
		send_to(s, &s->hosts[i].id, a, sizeof *a);
	}
	hpsi_info("scheduler: %u hosts, %u servers, %u workers: ranks assigned", s->nhosts, s->nservers, s->nworkers);
	if (s->hosts[s->nhosts - 1].absent)
		hpsi_info("scheduler: host %s joins later: the job runs without it until it registers",
			  s->hosts[s->nhosts - 1].reg.name);
}

/* Tells every host that the open barrier failed; sent again with each
 * broadcast of states, in case a host missed it (applying it twice is
 * harmless). */
static void barrier_send_broken(struct sched *s)
{
	struct hpsi_sched_broken m = {.code = s->barrier_code};
	hpsi_sched_init(&m.h, HPSI_SCH_BROKEN, 0);
	m.h.gen = s->barrier_gen;
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (host_here(&s->hosts[i]))
			send_to(s, &s->hosts[i].id, &m, sizeof m);
}

/* The open barrier fails for every host, and so does every later one. */
static void barrier_fail(struct sched *s, int code)
{
	if (s->barrier_code)
		return;
	s->barrier_code = code;
	hpsi_error("scheduler: barrier %u failed: %s", s->barrier_gen,
		   code == HPS_EPEERDEAD ? "a worker died" : "a worker waited HPS_TIMEOUT_MS");
	barrier_send_broken(s);
}

/* The join words of the states (struct hpsi_sched_states; net/bridge_join.c):
 * a claimed slot's, CLAIMED until every other live host sent its floor,
 * then the largest floor; a joined one's, its join clock. */
static void join_words(const struct sched *s, struct hpsi_sched_states *m)
{
	uint32_t owner = s->nhosts - 1;
	for (uint32_t n = s->nservers + s->launched; n < s->nservers + s->nworkers; n++) {
		uint32_t own = s->join_own[n];
		if (!own || s->state[n] != HPSI_NODE_EMPTY) {
			m->join[n] = own >= HPSI_JOIN_CLOCK ? own : 0;
			continue;
		}
		uint32_t floor = HPSI_JOIN_CLOCK;
		for (uint32_t i = 0; i < s->nhosts && floor; i++) {
			if (i == owner || !host_here(&s->hosts[i]))
				continue;
			uint32_t ack = s->hosts[i].join_ack[n];
			floor = ack < HPSI_JOIN_CLOCK ? 0 : ack > floor ? ack : floor;
		}
		m->join[n] = floor ? floor : HPSI_JOIN_CLAIMED;
	}
}

/* A heartbeat's join words (net/bridge_join.c): the room slots' host
 * reports claims and join clocks, every other host its floors. */
static void join_heard(struct sched *s, uint32_t idx, const struct hpsi_sched_states *hb)
{
	for (uint32_t n = s->nservers + s->launched; n < s->nservers + s->nworkers && n < hb->nnodes; n++) {
		uint32_t j = hb->join[n];
		if (idx == s->nhosts - 1) {
			/* kept while the host sends 0 (a claim whose floor it has) */
			if (j && j != s->join_own[n]) {
				if (j == HPSI_JOIN_CLAIMED)
					hpsi_info("scheduler: worker %u is joining (host %s)", n - s->nservers,
						  s->hosts[idx].reg.name);
				else
					hpsi_info("scheduler: worker %u joined at clock %u (host %s)", n - s->nservers,
						  j - HPSI_JOIN_CLOCK, s->hosts[idx].reg.name);
				s->join_own[n] = j;
				s->states_changed = 1;
			}
		} else if (j != s->hosts[idx].join_ack[n]) {
			s->hosts[idx].join_ack[n] = j;
			s->states_changed = 1;
		}
	}
}

static void broadcast_states(struct sched *s)
{
	if (s->barrier_code)
		barrier_send_broken(s);
	struct hpsi_sched_states m = {0};
	hpsi_sched_init(&m.h, HPSI_SCH_STATES, 0);
	m.nnodes = s->nservers + s->nworkers;
	memcpy(m.state, s->state, m.nnodes);
	join_words(s, &m);
	memcpy(m.join, s->join_own, (size_t)s->nservers * sizeof *m.join); /* servers' words */
	m.plan_seq = s->plan_seq, m.plan_servers = s->plan_servers;
	memcpy(m.plan, s->plan, sizeof m.plan);
	memcpy(m.plan_moves, s->plan_moves, sizeof m.plan_moves);
	memcpy(m.plan_backup, s->plan_backup, sizeof m.plan_backup);
	/* the job's restarts: each host's launcher may restart while they
	 * are below the budget (apply_states, net/bridge_sched.c) */
	for (uint32_t i = 0; i < s->nhosts; i++)
		m.restarts += s->hosts[i].restarts;
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (host_here(&s->hosts[i]))
			send_to(s, &s->hosts[i].id, &m, sizeof m);
	s->states_changed = 0;
}

static void set_state(struct sched *s, uint32_t node, uint8_t st, const char *host)
{
	if (s->state[node] == st || s->state[node] == HPSI_NODE_DEAD || s->state[node] == HPSI_NODE_CLOSED)
		return;
	/* RESTARTING: a dead worker its host's launcher starts again with
	 * its rank (--restart-workers, within the job's budget: hosts report
	 * it only while their count, lowered to the job's, is above 0). Still
	 * a member: no barrier fails, and the other hosts keep it ALIVE
	 * (apply_states, net/bridge_sched.c), so their servers keep its clock
	 * and requests. Not final: it goes back to ALIVE when the restart
	 * claims the rank, and a death beyond the budget comes as DEAD. */
	if (st == HPSI_NODE_RESTARTING && node < s->nservers)
		return; /* servers are replaced, not restarted */
	if (st == HPSI_NODE_JOINING)
		return; /* only with a new incarnation (server_words) */
	if (st == HPSI_NODE_RESTARTING)
		hpsi_info("scheduler: worker %u (host %s) died; its host restarts it", node - s->nservers, host);
	else if (s->state[node] == HPSI_NODE_RESTARTING && st == HPSI_NODE_ALIVE)
		hpsi_info("scheduler: worker %u (host %s) restarted and rejoined", node - s->nservers, host);
	if (st == HPSI_NODE_DEAD)
		hpsi_error("scheduler: %s %u (host %s) died", node < s->nservers ? "server" : "worker",
			   node < s->nservers ? node : node - s->nservers, host);
	if (st == HPSI_NODE_DEAD && node >= s->nservers)
		barrier_fail(s, HPS_EPEERDEAD); /* before the states that tell of it */
	s->state[node] = st;
	s->states_changed = 1;
}

/* The nodes of host i as [first, last) node id ranges. */
static void host_nodes(const struct sched *s, uint32_t i, void (*fn)(struct sched *, uint32_t, const char *),
		       struct sched *ms)
{
	const struct hpsi_host_entry *e = &s->assign.hosts[i];
	for (uint32_t n = e->srv_lo; n < e->srv_hi; n++)
		fn(ms, n, e->name);
	for (uint32_t n = e->wrk_lo; n < e->wrk_hi; n++)
		fn(ms, s->nservers + n, e->name);
}

/* A heartbeat's words of its host's servers (replicas across hosts:
 * net/bridge_recover.c). A newer incarnation is a replacement: the one
 * way back from DEAD, as on one host (the JOINING it reports, then
 * ALIVE), and from CLOSED for a rank a scale starts again; a death of the
 * one before it that the heartbeats missed is reported first. */
static void server_words(struct sched *s, uint32_t idx, const struct hpsi_sched_states *hb)
{
	const struct hpsi_host_entry *e = &s->assign.hosts[idx];
	for (uint32_t n = e->srv_lo; n < e->srv_hi && n < hb->nnodes; n++) {
		uint32_t w = hb->join[n], old = s->join_own[n];
		if (w == old)
			continue;
		if (w >> 8 > old >> 8) {
			/* (a claim whose state the heartbeat did not see yet: the
			 * next one shows it) */
			if (hb->state[n] != HPSI_NODE_JOINING && hb->state[n] != HPSI_NODE_ALIVE)
				continue;
			if (n >= s->launched_srv && n < s->nservers && s->state[n] == HPSI_NODE_EMPTY && !old) {
				/* a free rank's first process: hps scale --servers started it */
				hpsi_info("scheduler: server %u (host %s) started (hps scale)", n, e->name);
			} else if (s->state[n] == HPSI_NODE_CLOSED) {
				/* a rank an earlier scale closed, started again by a later
				 * one (a scale back up after a scale down): no death */
				hpsi_info("scheduler: server %u (host %s) started again (hps scale, incarnation %u)", n,
					  e->name, w >> 8);
			} else {
				if (s->state[n] != HPSI_NODE_DEAD)
					set_state(s, n, HPSI_NODE_DEAD, e->name);
				hpsi_warn("scheduler: server %u (host %s) is replaced (incarnation %u): it copies its key ranges",
					  n, e->name, w >> 8);
			}
			s->state[n] = hb->state[n];
		} else if (w >> 8 < old >> 8) {
			continue; /* (a heartbeat older than the one that told of it) */
		}
		s->join_own[n] = w;
		s->states_changed = 1;
	}
}

static void mark_dead(struct sched *s, uint32_t node, const char *host)
{
	if (node >= s->launched_srv && node < s->nservers && s->state[node] == HPSI_NODE_EMPTY)
		return; /* a free server rank no scale started: no member died */
	if (node >= s->nservers + s->launched && !s->join_own[node])
		return; /* a free rank nobody took: no member died */
	set_state(s, node, HPSI_NODE_DEAD, host);
}

static void barrier_check(struct sched *s)
{
	if (s->barrier_code)
		return;
	for (uint32_t i = 0; i < s->nhosts; i++) {
		const struct hpsi_host_entry *e = &s->assign.hosts[i];
		if (e->wrk_hi > e->wrk_lo && host_here(&s->hosts[i]) &&
		    s->hosts[i].barrier_gen != s->barrier_gen + 1)
			return;
	}
	struct hpsi_sched_hdr r;
	hpsi_sched_init(&r, HPSI_SCH_RELEASE, 0);
	r.gen = s->barrier_gen;
	s->barrier_gen = hpsi_barrier_seq(s->barrier_gen + 1); /* as the bridges count */
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (host_here(&s->hosts[i]))
			send_to(s, &s->hosts[i].id, &r, sizeof r);
}

/* ---- checkpoints across hosts --------------------------------------------- */

static int host_gone(const struct sched *s, uint32_t i)
{
	return !host_here(&s->hosts[i]);
}

/* Whether host i's servers take part in a checkpoint: one of them did
 * not close. Not its layout: a host whose servers closed after a scale
 * moved their key ranges away may have left (a free rank no scale
 * started reads EMPTY; a dead host's servers read DEAD). */
static int host_serves(const struct sched *s, uint32_t i)
{
	const struct hpsi_host_entry *e = &s->assign.hosts[i];
	for (uint32_t n = e->srv_lo; n < e->srv_hi; n++)
		if (s->state[n] != HPSI_NODE_CLOSED && s->state[n] != HPSI_NODE_EMPTY)
			return 1;
	return 0;
}

static void ckpt_run(struct sched *s, uint32_t host, uint32_t step)
{
	static struct hpsi_sched_ckpt m;
	memset(&m, 0, sizeof m);
	hpsi_sched_init(&m.h, HPSI_SCH_CKPT_RUN, host);
	m.h.gen = s->ck.round;
	m.op = step;
	snprintf(m.dir, sizeof m.dir, "%s", s->ck.dir);
	send_to(s, &s->hosts[host].id, &m, sizeof m);
}

static void ckpt_answer(struct sched *s, uint32_t host, uint32_t seq, uint32_t op, int32_t status, uint32_t clock,
			const char *why)
{
	static struct hpsi_sched_ckpt m;
	memset(&m, 0, sizeof m);
	hpsi_sched_init(&m.h, HPSI_SCH_CKPT_END, host);
	m.op = op, m.seq = seq, m.status = status;
	m.clock = clock == UINT32_MAX ? 0 : clock;
	snprintf(m.why, sizeof m.why, "%.*s", (int)sizeof m.why - 1, why); /* cut to the frame */
	send_to(s, &s->hosts[host].id, &m, sizeof m);
}

/* A job across hosts with room for servers (--max-servers): hps scale
 * runs on its last host, whose launcher holds that host's checkpoint lock
 * while key ranges move (runtime/cluster/launch.c), but moves change the
 * owner tables of every host. So a round starts there alone: that host's
 * bridge takes its lock for the whole round, until the UNLOCK at its end
 * (net/bridge_ckpt.c): a scale running refuses the checkpoint there with
 * one line, and a scale asked meanwhile waits for the round's end; the
 * other hosts run the first step once it reported. */
static int room_host_first(const struct sched *s)
{
	return s->nhosts > 1 && s->launched_srv < s->nservers;
}

/* Asks the hosts still in the job for step (the first step of a round
 * with room: the last host alone, the others in ckpt_advance); their
 * reports are awaited. */
static void ckpt_step(struct sched *s, uint32_t step)
{
	struct ckpt_round *r = &s->ck;
	uint32_t last = s->nhosts - 1;
	int first = step == HPSI_CKPT_SAVE || step == HPSI_CKPT_PREPARE;
	r->step = step;
	r->waiting = 0;
	r->staged = first && room_host_first(s) && !host_gone(s, last);
	r->deadline = hpsi_now_ns() + (s->timeout_ms + s->cc.dead_ms) * 1000000;
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (!host_gone(s, i) && (!r->staged || i == last)) {
			r->waiting |= 1ull << i;
			r->ran |= first ? 1ull << i : 0;
			ckpt_run(s, i, step);
		}
}

static void ckpt_fail(struct sched *s, int32_t code, const char *fmt, const char *host)
{
	struct ckpt_round *r = &s->ck;
	if (r->status)
		return; /* the first failure is the one reported */
	r->status = code;
	snprintf(r->why, sizeof r->why, fmt, host);
}

static void ckpt_end(struct sched *s)
{
	struct ckpt_round *r = &s->ck;
	if (r->status)
		hpsi_error("scheduler: checkpoint %s (%s) failed: %s", r->dir, r->op == HPSI_CKPT_SAVE ? "save" : "load",
			   r->why);
	else
		hpsi_info("scheduler: checkpoint %s %s on %u hosts (clock %u)", r->dir,
			  r->op == HPSI_CKPT_SAVE ? "saved" : "loaded", s->nhosts, r->clock == UINT32_MAX ? 0 : r->clock);
	if (!host_gone(s, r->asker))
		ckpt_answer(s, r->asker, r->seq, r->op, r->status, r->clock, r->why);
	/* the lock the host with the room held through the round (after its
	 * ABORT, if any: one stream) */
	if (room_host_first(s) && !host_gone(s, s->nhosts - 1))
		ckpt_run(s, s->nhosts - 1, HPSI_CKPT_UNLOCK);
	r->active = 0;
}

/* Every host reported the step (or failed it): the next step, or the end. */
static void ckpt_advance(struct sched *s)
{
	struct ckpt_round *r = &s->ck;
	if (!r->active || r->waiting)
		return;
	if (r->staged && !r->status) { /* the host with the room did its part, and holds its lock */
		r->staged = 0;
		r->deadline = hpsi_now_ns() + (s->timeout_ms + s->cc.dead_ms) * 1000000;
		for (uint32_t i = 0; i + 1 < s->nhosts; i++)
			if (!host_gone(s, i)) {
				r->waiting |= 1ull << i;
				r->ran |= 1ull << i;
				ckpt_run(s, i, r->step);
			}
		if (r->waiting)
			return;
	}
	if (r->step == HPSI_CKPT_PREPARE && !r->status) {
		ckpt_step(s, HPSI_CKPT_COMMIT); /* every host read every file whole */
		return;
	}
	if (r->step == HPSI_CKPT_PREPARE) /* the tables read aside go; nobody swapped */
		for (uint32_t i = 0; i < s->nhosts; i++)
			if (!host_gone(s, i) && (r->ran >> i & 1))
				ckpt_run(s, i, HPSI_CKPT_ABORT);
	if (r->step == HPSI_CKPT_COMMIT && r->status) {
		size_t n = strlen(r->why);
		snprintf(r->why + n, sizeof r->why - n, "%s",
			 "; the other hosts swapped the checkpoint in: load it again");
	}
	ckpt_end(s);
}

static void ckpt_ask(struct sched *s, uint32_t from, const struct hpsi_sched_ckpt *m)
{
	struct ckpt_round *r = &s->ck;
	if (r->active) {
		char why[256];
		snprintf(why, sizeof why, "a checkpoint of this job is already running (asked from host %.64s for %.120s)",
			 s->hosts[r->asker].reg.name, r->dir);
		ckpt_answer(s, from, m->seq, m->op, HPS_EEXIST, 0, why);
		return;
	}
	memset(r, 0, sizeof *r);
	r->active = 1;
	r->round = ++s->ck_rounds;
	r->asker = from, r->seq = m->seq, r->op = m->op;
	r->clock = UINT32_MAX;
	snprintf(r->dir, sizeof r->dir, "%s", m->dir);
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (host_gone(s, i) && host_serves(s, i))
			ckpt_fail(s, s->hosts[i].dead ? HPS_EPEERDEAD : HPS_ECLOSED,
				  "host %s has left the job: its servers cannot take part", s->hosts[i].reg.name);
	if (r->status) {
		ckpt_end(s);
		return;
	}
	hpsi_info("scheduler: checkpoint %s: %s asked from host %s", r->dir, m->op == HPSI_CKPT_SAVE ? "save" : "load",
		  s->hosts[from].reg.name);
	ckpt_step(s, m->op == HPSI_CKPT_SAVE ? HPSI_CKPT_SAVE : HPSI_CKPT_PREPARE);
}

static void ckpt_done(struct sched *s, uint32_t from, const struct hpsi_sched_ckpt *m)
{
	struct ckpt_round *r = &s->ck;
	if (!r->active || m->h.gen != r->round || m->op != r->step || !(r->waiting & (1ull << from)))
		return; /* an ABORT's report, or one the round no longer waits for */
	r->waiting &= ~(1ull << from);
	if (m->status)
		ckpt_fail(s, m->status, "%s", m->why);
	else if (r->step != HPSI_CKPT_COMMIT && m->clock < r->clock)
		r->clock = m->clock;
	ckpt_advance(s);
}

/* Hosts that died or left, or a step past its deadline, fail the round. */
static void ckpt_watch(struct sched *s)
{
	struct ckpt_round *r = &s->ck;
	if (!r->active)
		return;
	int late = hpsi_now_ns() > r->deadline;
	for (uint32_t i = 0; i < s->nhosts; i++) {
		if (!(r->waiting & (1ull << i)))
			continue;
		if (host_gone(s, i) && !host_serves(s, i))
			; /* it had nothing to do */
		else if (host_gone(s, i))
			ckpt_fail(s, s->hosts[i].dead ? HPS_EPEERDEAD : HPS_ECLOSED,
				  "host %s died or left during the checkpoint", s->hosts[i].reg.name);
		else if (late)
			ckpt_fail(s, HPS_ETIMEDOUT, "host %s did not report its part within HPS_TIMEOUT_MS + HPS_DEAD_MS",
				  s->hosts[i].reg.name);
		else
			continue;
		r->waiting &= ~(1ull << i);
	}
	ckpt_advance(s);
}

/* ---- hosts that join and leave ----------------------------------------- */

/* A registration while the job runs: the host the hosts file marks
 * later (--later), or refused in one line (logged, counted, and told to
 * the peer unless it lacks the job's token). Accepted, the host gets the
 * job's assignment (the open barrier in gen), and every other host the
 * assignment again with its endpoint, so that their bridges connect to
 * it (net/bridge_sched.c, peers_joined). Its ranks are the job's room:
 * its workers join (net/bridge_join.c) and its servers take key ranges
 * (hps scale) as on a last host that was there from the start. */
static void late_register(struct sched *s, const struct peer_id *id, const struct hpsi_sched_register *m)
{
	struct host *h = host_by_name(s, m->name);
	char reason[512] = "";
	int answer = 1;
	if (s->token && m->token != s->token) {
		snprintf(reason, sizeof reason,
			 "a registration as host %s without the job's token (HPS_JOB_TOKEN): not a host of this job", m->name);
		answer = 0;
	} else if (!h || !later || strcmp(m->name, later) != 0)
		snprintf(reason, sizeof reason,
			 "host %s registered after the job started: only the host the hosts file marks `later` joins a running job",
			 m->name);
	else if (!h->absent)
		snprintf(reason, sizeof reason,
			 "host name %s is taken: two host groups registered it (set HPS_HOST, or DMLC_NODE_HOST, to a name of its own on each)",
			 m->name);
	else if (m->total_servers != s->launched_srv || m->total_workers != s->launched)
		snprintf(reason, sizeof reason,
			 "host %s believes the job has %u servers and %u workers, the scheduler %u and %u (HPS_NUM_SERVERS, HPS_NUM_WORKERS)",
			 m->name, m->total_servers, m->total_workers, s->launched_srv, s->launched);
	else if (m->nservers || m->nworkers)
		snprintf(reason, sizeof reason,
			 "host %s joins later: it brings no server or worker of its own, its part is the job's room (hps scale --workers, --servers there)",
			 m->name);
	else
		settings_differ(s, m, reason, sizeof reason);
	if (reason[0]) {
		if (++s->refused <= 10 || s->refused % 1000 == 0)
			hpsi_error("scheduler: registration refused (%llu so far): %s", (unsigned long long)s->refused,
				   reason);
		if (answer)
			abort_host(s, id, reason);
		return;
	}
	uint32_t idx = (uint32_t)(h - s->hosts);
	h->id = *id;
	h->reg = *m;
	h->absent = 0;
	h->last_seen = hpsi_now_ns();
	struct hpsi_sched_assign *a = &s->assign;
	snprintf(a->hosts[idx].endpoint, sizeof a->hosts[idx].endpoint, "%s", m->endpoint);
	for (uint32_t i = 0; i < s->nhosts; i++)
		if (host_here(&s->hosts[i])) {
			hpsi_sched_init(&a->h, HPSI_SCH_ASSIGN, i);
			a->h.gen = s->barrier_gen; /* the joining host's barrier opens where the job's is */
			send_to(s, &s->hosts[i].id, a, sizeof *a);
		}
	s->states_changed = 1;
	hpsi_info("scheduler: host %s joined the running job (%s)", m->name, m->endpoint);
}

/* ---- hosts that leave ----------------------------------------------------- */

/* Whether node n, as the scheduler last heard of it, still takes part:
 * not finished (CLOSED, DEAD) and not a free rank nobody took (EMPTY). */
static int node_unfinished(const struct sched *s, uint32_t n)
{
	return s->state[n] != HPSI_NODE_EMPTY && s->state[n] != HPSI_NODE_CLOSED && s->state[n] != HPSI_NODE_DEAD;
}

static void mark_unfinished_dead(struct sched *s, uint32_t node, const char *host)
{
	if (node_unfinished(s, node))
		set_state(s, node, HPSI_NODE_DEAD, host);
}

/* Host idx said goodbye (its bridge's BYE, after its last heartbeat).
 * A clean leave (docs/ARCHITECTURE.md, "Hosts that leave"): every
 * server of it closed, its key ranges served elsewhere (a scale moved
 * them, or it never had any), and every worker of it ended; the other
 * hosts then lose nothing, and the scheduler only stops talking to it.
 * Anything else is a host stopped in the middle of the job (its bridge
 * or launcher asked to end, a stop racing its processes' deaths): not a
 * leave. Its unfinished nodes count as dead, as if it had gone silent,
 * so that what waits for them fails at once (HPS_EPEERDEAD, or their
 * backups take over) instead of waiting HPS_TIMEOUT_MS for answers
 * that cannot come. */
static void host_bye(struct sched *s, uint32_t idx)
{
	struct host *h = &s->hosts[idx];
	const struct hpsi_host_entry *e = &s->assign.hosts[idx];
	char what[256] = "";
	size_t k = 0;
	for (uint32_t n = e->srv_lo; n < e->srv_hi && k < sizeof what - 40; n++)
		if (node_unfinished(s, n))
			k += (size_t)snprintf(what + k, sizeof what - k, "%sserver %u served key ranges", k ? ", " : "", n);
	for (uint32_t w = e->wrk_lo; w < e->wrk_hi && k < sizeof what - 40; w++)
		if (node_unfinished(s, s->nservers + w))
			k += (size_t)snprintf(what + k, sizeof what - k, "%sworker %u ran", k ? ", " : "", w);
	h->left = 1;
	if (!what[0]) {
		hpsi_info("scheduler: host %s left", h->reg.name);
		return;
	}
	hpsi_error("scheduler: host %s left while %s: not a leave (a host leaves once its servers' key ranges serve elsewhere and its workers ended); they count as dead",
		   h->reg.name, what);
	host_nodes(s, idx, mark_unfinished_dead, s);
	barrier_check(s);
}

static void handle(struct sched *s, const struct peer_id *id, const void *buf, size_t len)
{
	const char *why;
	if (hpsi_sched_check(buf, len, &why)) {
		bad_message(s, why);
		return;
	}
	struct host *h = host_by_id(s, id);
	const struct hpsi_sched_hdr *m = buf;
	if (!h && m->type == HPSI_SCH_REGISTER) {
		late_register(s, id, buf);
		return;
	}
	uint32_t idx = h ? (uint32_t)(h - s->hosts) : UINT32_MAX;
	if (!h || m->host != idx) {
		bad_message(s, "a message from an unknown host, or naming another");
		return;
	}
	if (h->dead || h->left)
		return;
	h->last_seen = hpsi_now_ns();
	if (m->type == HPSI_SCH_HEARTBEAT) {
		const struct hpsi_sched_states *hb = buf;
		const struct hpsi_host_entry *e = &s->assign.hosts[idx];
		server_words(s, idx, hb);
		for (uint32_t n = 0; n < hb->nnodes && n < s->nservers + s->nworkers; n++) {
			int mine = n < s->nservers ? n >= e->srv_lo && n < e->srv_hi
						   : n - s->nservers >= e->wrk_lo && n - s->nservers < e->wrk_hi;
			if (mine && hb->state[n] != HPSI_NODE_EMPTY)
				set_state(s, n, hb->state[n], e->name);
		}
		join_heard(s, idx, hb);
		/* the plan of a scale of servers: the last host's (its launcher
		 * owns the free server ranks), passed on to every host */
		if (idx == s->nhosts - 1 && s->launched_srv < s->nservers && hb->plan_seq != s->plan_seq) {
			s->plan_seq = hb->plan_seq, s->plan_servers = hb->plan_servers;
			memcpy(s->plan, hb->plan, sizeof s->plan);
			memcpy(s->plan_moves, hb->plan_moves, sizeof s->plan_moves);
			memcpy(s->plan_backup, hb->plan_backup, sizeof s->plan_backup);
			s->states_changed = 1;
		}
		h->totals = hb->totals;
		if (h->restarts != hb->restarts) { /* the other hosts' budgets go down now */
			s->states_changed = 1;
			uint32_t all = hb->restarts;
			for (uint32_t i = 0; i < s->nhosts; i++)
				all += i == idx ? 0 : s->hosts[i].restarts;
			const char *budget = hpsi_setting("RESTART_WORKERS");
			hpsi_warn("scheduler: host %s restarted a worker: %u of the job's %s restarts used (--restart-workers)",
				  e->name, all, budget ? budget : "0");
		}
		h->restarts = hb->restarts;
	} else if (m->type == HPSI_SCH_BARRIER) {
		if (m->gen == s->barrier_gen) {
			h->barrier_gen = m->gen + 1;
			barrier_check(s);
		}
	} else if (m->type == HPSI_SCH_EXPIRED) {
		if (m->gen == s->barrier_gen)
			barrier_fail(s, HPS_ETIMEDOUT);
	} else if (m->type == HPSI_SCH_CKPT) {
		ckpt_ask(s, idx, buf);
	} else if (m->type == HPSI_SCH_CKPT_DONE) {
		ckpt_done(s, idx, buf);
	} else if (m->type == HPSI_SCH_BYE) {
		host_bye(s, idx);
	} else {
		bad_message(s, "a message a bridge does not send");
	}
}

/* Every host's totals for hps top and hps metrics on this host. */
static void write_hosts_stats(const struct sched *s, const char *job)
{
	static struct hpsi_host_row rows[HPSI_MAX_HOSTS];
	for (uint32_t i = 0; i < s->nhosts; i++) {
		const struct host *h = &s->hosts[i];
		snprintf(rows[i].name, sizeof rows[i].name, "%s", h->reg.name);
		snprintf(rows[i].state, sizeof rows[i].state, "%s",
			 h->dead ? "dead" : h->left ? "left" : h->absent ? "later" : "alive");
		rows[i].t = h->totals;
	}
	hpsi_hosts_stats_write(job, rows, s->nhosts);
}

int hpsi_cmd_scheduler(int argc, char **argv)
{
	hpsi_log_identity("scheduler", -1, NULL);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: hps scheduler [--order NAME,NAME,...] [--later NAME]\n\n"
			       "Runs the scheduler of a multi-host job at HPS_ROOT_URI:HPS_ROOT_PORT\n"
			       "(DMLC_PS_ROOT_URI, DMLC_PS_ROOT_PORT) for HPS_NUM_SERVERS servers and\n"
			       "HPS_NUM_WORKERS workers. `hps launch --hosts` starts it.\n"
			       "Hosts get contiguous ranks in the order of --order (host names, HPS_HOST),\n"
			       "hosts not named there after them by name; without it, by name.\n"
			       "--later NAME: the last host of --order joins the running job; its part is\n"
			       "the job's room (--max-workers, --max-servers).\n");
			return 0;
		}
		if (strcmp(argv[i], "--order") == 0 && i + 1 < argc) {
			order = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--later") == 0 && i + 1 < argc) {
			later = argv[++i];
			continue;
		}
		fprintf(stderr, "hps scheduler: unexpected '%s'\n", argv[i]);
		return 2;
	}
	size_t last = 0; /* the index of --order's last name */
	for (const char *p = order; p && *p; p++)
		last += *p == ',';
	if (later && (!order || order_of(later) != last)) {
		fprintf(stderr, "hps scheduler: --later %s must name the last host of --order (the host of the job's room)\n",
			later);
		return 2;
	}
	struct sched *s = calloc(1, sizeof *s);
	struct hpsi_config cfg;
	if (!s || hpsi_config_load(&cfg, 0) || hpsi_cluster_load(&s->cc, 0) || hpsi_curve_load(&s->curve))
		return 2;
	snprintf(s->curve.who, sizeof s->curve.who, "scheduler");
	s->nservers = s->launched_srv = cfg.nservers, s->nworkers = s->launched = cfg.nworkers;
	s->timeout_ms = cfg.timeout_ms;
	s->token = hpsi_settings_hash("JOB_TOKEN");
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	void *zctx = zmq_ctx_new();
	s->sock = zmq_socket(zctx, ZMQ_ROUTER);
	hpsi_zmq_setup(s->sock, 200, 1 << 20);
	char ep[160];
	hpsi_tcp_endpoint(ep, sizeof ep, s->cc.root_addr, s->cc.root_ipv6, s->cc.root_port);
	int code = 0;
	/* the ZAP handler first: a CURVE socket listening without one would
	 * admit any key */
	if (hpsi_curve_start(&s->curve, zctx) || hpsi_curve_server(&s->curve, s->sock)) {
		code = 1;
	} else if (zmq_bind(s->sock, ep) != 0) {
		hpsi_error("scheduler: cannot listen on %s: %s (HPS_ROOT_URI, HPS_ROOT_PORT)", ep, zmq_strerror(zmq_errno()));
		code = 1;
	} else if (collect_hosts(s)) {
		code = 1;
	} else {
		/* the room (--max-workers): slots past the registered workers */
		if (cfg.max_workers > s->nworkers)
			s->nworkers = cfg.max_workers;
		/* and for servers (--max-servers): ranks and key ranges past
		 * the registered servers; worker node ids follow them */
		if (cfg.max_servers > s->nservers)
			s->nservers = cfg.max_servers;
		if (later && !host_by_name(s, later)) { /* it comes while the job runs */
			struct host *h = &s->hosts[s->nhosts++];
			memset(h, 0, sizeof *h);
			h->absent = 1;
			snprintf(h->reg.name, sizeof h->reg.name, "%s", later);
		}
		send_assignments(s);
		for (uint32_t n = 0; n < s->nservers + s->nworkers; n++)
			s->state[n] = HPSI_NODE_EMPTY;
		int64_t next_bcast = 0;
		struct peer_id id;
		static union {
			struct hpsi_sched_states st;
			unsigned char raw[sizeof(struct hpsi_sched_assign)];
		} m;
		for (;;) {
			uint32_t active = 0;
			for (uint32_t i = 0; i < s->nhosts; i++)
				active += host_here(&s->hosts[i]);
			if (!active || stop_signal)
				break;
			zmq_pollitem_t it = {.socket = s->sock, .events = ZMQ_POLLIN};
			zmq_poll(&it, 1, (long)s->cc.heartbeat_ms);
			int n;
			while ((n = recv_one(s, &id, &m, sizeof m, ZMQ_DONTWAIT)) != -1)
				if (n >= 0)
					handle(s, &id, &m, (size_t)n);
			int64_t now = hpsi_now_ns();
			for (uint32_t i = 0; i < s->nhosts; i++) {
				struct host *h = &s->hosts[i];
				if (!host_here(h) || now - h->last_seen < s->cc.dead_ms * 1000000)
					continue;
				h->dead = 1;
				hpsi_error("scheduler: host %s sent nothing for %lld ms (HPS_DEAD_MS): its unfinished nodes are dead",
					   h->reg.name, (long long)((now - h->last_seen) / 1000000));
				host_nodes(s, i, mark_dead, s);
				barrier_check(s);
			}
			ckpt_watch(s);
			if (s->states_changed || now > next_bcast) {
				if (now > next_bcast)
					write_hosts_stats(s, cfg.job);
				broadcast_states(s);
				next_bcast = now + s->cc.heartbeat_ms * 1000000;
			}
		}
		broadcast_states(s);
		char path[512];
		if (hpsi_hosts_stats_path(path, sizeof path, cfg.job) == 0)
			unlink(path);
	}
	if (hpsi_curve_refused(&s->curve))
		hpsi_warn("scheduler: refused %llu peer(s) without an admitted key (HPS_CURVE)",
			  (unsigned long long)hpsi_curve_refused(&s->curve));
	zmq_close(s->sock);
	hpsi_curve_stop(&s->curve);
	zmq_ctx_term(zctx);
	free(s);
	return code;
}
