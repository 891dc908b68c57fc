#include "runtime/client/ctx.h"

#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/route.h"
#include "runtime/client/handle.h"
#include "runtime/client/join.h"
#include "runtime/client/rejoin.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/node.h"

static int counts_match(const struct hps_ctx *c)
{
	const struct hpsi_seg_hdr *h = c->seg.hdr;
	if (hpsi_setting("NUM_SERVERS") && c->cfg.nservers != h->launched_servers) {
		hpsi_error("HPS_NUM_SERVERS=%u but job '%s' was launched with %u servers", c->cfg.nservers, h->job,
			   h->launched_servers);
		return 0;
	}
	if (hpsi_setting("MAX_SERVERS") && c->cfg.max_servers != h->nservers) {
		hpsi_error("HPS_MAX_SERVERS=%u but job '%s' has room for %u servers", c->cfg.max_servers, h->job,
			   h->nservers);
		return 0;
	}
	if (hpsi_setting("NUM_WORKERS") && c->cfg.nworkers != h->launched_workers) {
		hpsi_error("HPS_NUM_WORKERS=%u but job '%s' was launched with %u workers", c->cfg.nworkers, h->job,
			   h->launched_workers);
		return 0;
	}
	if (hpsi_setting("MAX_WORKERS") && c->cfg.max_workers != h->nworkers) {
		hpsi_error("HPS_MAX_WORKERS=%u but job '%s' has room for %u workers", c->cfg.max_workers, h->job,
			   h->nworkers);
		return 0;
	}
	if (hpsi_config_check_lists(h->nservers))
		return 0;
	uint32_t limit = c->cfg.role == HPS_ROLE_SERVER ? h->nservers : h->nworkers;
	if ((uint32_t)c->cfg.rank >= limit) {
		hpsi_error("HPS_RANK=%d is out of range: job '%s' has %u %ss", c->cfg.rank, h->job, limit,
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker");
		return 0;
	}
	return 1;
}

/* A process that ends with exit status 0 (returning from main, exit(0))
 * without hps_finalize has finished, not failed: its nodes are marked
 * CLOSED before the process goes, so servers and other workers treat it
 * as a clean end and nobody reports it as died. A non-zero status, a
 * signal or _exit leaves the node ALIVE, and whoever checks finds the
 * process gone and marks it DEAD. on_exit (glibc) rather than atexit or a
 * destructor, because only it passes the exit status; the launcher knows
 * the status too, but only under `hps launch` and only after the others
 * may already have judged the node. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hps_ctx *live_ctxs;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void mark_closed(struct hps_ctx *c)
{
	struct hpsi_node *n = hpsi_seg_node(&c->seg, c->node);
	/* acq_rel: pairs with the acquire loads of the state by node checks
	 * (shm/node.c), so what this node published before is seen first; a
	 * replacement server may close while still JOINING. Only a change
	 * wakes the others (a worker closed by hps_worker_close has woken them
	 * already). */
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	int closed = 0;
	while ((st == HPSI_NODE_ALIVE || st == HPSI_NODE_JOINING) &&
	       !(closed = atomic_compare_exchange_weak_explicit(&n->state, &st, HPSI_NODE_CLOSED, memory_order_acq_rel,
								memory_order_acquire)))
		;
	if (closed && c->cfg.role == HPS_ROLE_WORKER)
		hpsi_members_changed(&c->seg); /* the membership epoch moves; wakes all */
	else if (closed)
		hpsi_wake_all(&c->seg);
}

static void close_at_exit(int status, void *arg)
{
	(void)arg;
	/* trylock: a thread stopped inside hps_init or hps_finalize holds the
	 * lock; waiting for it at exit would never end */
	if (status != 0 || pthread_mutex_trylock(&live_lock) != 0)
		return;
	for (struct hps_ctx *c = live_ctxs; c; c = c->next_live)
		if (c->pid == getpid()) {
			mark_closed(c);
			hpsi_info("left job %s: %s %d, pid %d (exit status 0 without hps_finalize)", c->seg.hdr->job,
				  c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, (int)c->pid);
		}
	hpsi_log_flush();
	pthread_mutex_unlock(&live_lock);
}

static void register_exit(void)
{
	if (on_exit(close_at_exit, NULL) != 0)
		hpsi_warn("cannot register the exit handler: a process that ends without hps_finalize is reported as died");
}

int hpsi_ctx_check(const struct hps_ctx *c)
{
	return hpsi_handle_check(c ? &c->magic : NULL, HPSI_MAGIC_CTX);
}

/* A replacement server across hosts claims its rank only once this host's
 * bridge sent the FENCE of the death it replaces and handed its key ranges
 * on (net/bridge_failover.c stores `fenced`, release, and wakes the word):
 * a claim before would hide that death from the bridge, which sees it at
 * its next liveness check. Bounded by HPS_TIMEOUT_MS. */
/* HPS_FAILPOINT=claimdie:RANK (tests): the first replacement of server
 * RANK dies (SIGKILL) in its claim, after it cleared fenced, before it
 * stored JOINING: its bridge never sees it JOINING and must fence the
 * rank again for the next one (net/bridge_failover.c, claimer_gone). */
static void claim_failpoint(struct hps_ctx *c, struct hpsi_node *n)
{
	const char *fp = hpsi_setting("FAILPOINT");
	unsigned rank;
	int end = 0;
	if (fp && sscanf(fp, "claimdie:%u%n", &rank, &end) == 1 && fp[end] == 0 && rank == (unsigned)c->cfg.rank &&
	    atomic_load_explicit(&n->incarnation, memory_order_relaxed) == 1) {
		hpsi_warn("HPS_FAILPOINT=claimdie: server %u dies in its claim", rank);
		raise(SIGKILL);
	}
}

static int wait_fenced(struct hps_ctx *c, struct hpsi_node *n)
{
	int64_t end = hpsi_now_ns() + c->timeout_ns;
	/* acquire pairs with the bridge's release */
	while (!atomic_load_explicit(&n->fenced, memory_order_acquire)) {
		int64_t left = end - hpsi_now_ns();
		if (left <= 0) {
			hpsi_error("server rank %d of job '%s': this host's bridge did not hand the dead server's key ranges on within HPS_TIMEOUT_MS; no replacement",
				   c->cfg.rank, c->seg.hdr->job);
			return 1;
		}
		hpsi_futex_wait(&n->fenced, 0, left < 100000000 ? left : 100000000);
	}
	return 0;
}

int hps_init(hps_ctx **out, int *argc, char **argv)
{
	if (!out)
		return HPS_EINVAL;
	*out = NULL;
	hpsi_config_apply_flags(argc, argv);
	struct hps_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return HPS_ENOMEM;
	int rc = hpsi_config_load(&c->cfg, 1);
	if (!rc) /* the lines of this process say who wrote them */
		hpsi_log_identity(c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, c->cfg.host);
	if (!rc)
		rc = hpsi_seg_attach(c->cfg.job, c->cfg.host, &c->seg);
	if (rc) {
		free(c);
		return rc;
	}
	if (!counts_match(c)) {
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ECONFIG;
	}
	c->node = c->cfg.role == HPS_ROLE_SERVER ? (uint32_t)c->cfg.rank
						 : hpsi_worker_node(&c->seg, (uint32_t)c->cfg.rank);
	/* HPS_JOIN=1: a free rank, taken now (its slot is EMPTY, ours) */
	int joined = c->cfg.role == HPS_ROLE_WORKER && c->cfg.join;
	if (joined && (rc = hpsi_join_claim(c))) {
		hpsi_seg_detach(&c->seg);
		free(c);
		return rc;
	}
	if (!hpsi_node_local(&c->seg, c->node)) {
		const struct hpsi_seg_hdr *h = c->seg.hdr;
		hpsi_error("%s rank %d does not run on host %s, which runs servers %u-%u and workers %u-%u (HPS_RANK)",
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, h->host, h->srv_lo,
			   h->srv_hi - 1, h->wrk_lo, h->wrk_hi - 1);
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ECONFIG;
	}
	c->timeout_ns = c->seg.hdr->timeout_ms * 1000000;
	c->spin_ns = c->cfg.spin_ns;
	cpu_set_t cpus;
	long ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : sysconf(_SC_NPROCESSORS_ONLN);
	/* the busy threads of this host: its processes (other hosts' nodes do
	 * not share its CPUs) and, with other hosts, the bridge and ZeroMQ's
	 * I/O thread, which spinners must leave room for */
	const struct hpsi_seg_hdr *sh = c->seg.hdr;
	long busy = (long)(sh->srv_hi - sh->srv_lo + sh->wrk_hi - sh->wrk_lo) + (sh->bridged ? 2 : 0);
	c->spin_yield = busy > ncpu;

	/* Claim the node: only if nobody alive holds it. */
	struct hpsi_node *n = hpsi_seg_node(&c->seg, c->node);
	uint32_t st = c->cfg.role == HPS_ROLE_WORKER ? hpsi_worker_state(&c->seg, c->node, 1)
						     : hpsi_node_check(&c->seg, c->node);
	/* A VACANT server rank is taken by the server a scale starts
	 * (runtime/server/move.c); a VACANT worker rank only by HPS_JOIN. */
	if (st == HPSI_NODE_VACANT && c->cfg.role == HPS_ROLE_WORKER) {
		hpsi_error("worker rank %d of job '%s' was not launched: a worker takes a free rank with HPS_JOIN=1 (or hps scale)",
			   c->cfg.rank, c->seg.hdr->job);
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ECONFIG;
	}
	if (st == HPSI_NODE_ALIVE || st == HPSI_NODE_JOINING) {
		hpsi_error("%s rank %d of job '%s' is already running (pid %d)",
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, c->seg.hdr->job,
			   (int)atomic_load_explicit(&n->pid, memory_order_relaxed)); /* only printed */
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_EEXIST;
	}
	/* A rank the launcher marked dead (or RESTARTING) because its child
	 * died, while the process that joined as it lives on: the child was a
	 * wrapper (a script) whose own child joined, and the launcher could
	 * not end it. Claiming the rank would give it two processes. The pid
	 * and birth were stored before the state the check above acquired. */
	if (st == HPSI_NODE_DEAD || st == HPSI_NODE_RESTARTING) {
		pid_t old = atomic_load_explicit(&n->pid, memory_order_relaxed);
		if (old > 0 && old != getpid() &&
		    hpsi_proc_alive(old, atomic_load_explicit(&n->birth, memory_order_relaxed))) {
			hpsi_error("%s rank %d of job '%s': the process that held it (pid %d) still runs; a %s waits until it has ended",
				   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, c->seg.hdr->job,
				   (int)old, st == HPSI_NODE_RESTARTING ? "restart" : "replacement");
			hpsi_seg_detach(&c->seg);
			free(c);
			return HPS_EEXIST;
		}
	}
	/* A server replacing a dead one of a replicated job joins: it copies
	 * its key ranges before anyone routes to it (runtime/server/recover.c). */
	int replacing = c->cfg.role == HPS_ROLE_SERVER && c->seg.hdr->replicas && st == HPSI_NODE_DEAD;
	/* before it stores its pid: while it waits, the pid is that of the
	 * claimer before it, which the bridge checks (claimer_gone) */
	if (replacing && c->seg.hdr->bridged && wait_fenced(c, n)) {
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ETIMEDOUT;
	}
	atomic_store_explicit(&n->pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&n->birth, hpsi_proc_birth(getpid()), memory_order_relaxed);
	uint32_t claimed = HPSI_NODE_ALIVE;
	if (replacing) {
		/* the next death of this rank is fenced again (net/bridge_failover.c);
		 * release: a bridge reading 0 on a DEAD node sees this pid and
		 * birth (claimer_gone there), so it fences again only once this
		 * claimer is gone */
		atomic_store_explicit(&n->fenced, 0, memory_order_release);
		atomic_fetch_add_explicit(&n->incarnation, 1, memory_order_relaxed); /* published just below */
		atomic_store_explicit(&n->lacking, (2u << c->seg.hdr->replicas) - 1, memory_order_relaxed); /* all */
		claimed = HPSI_NODE_JOINING;
		claim_failpoint(c, n);
	}
	/* A server a scale starts (runtime/server/move.c) is a new incarnation
	 * of its rank: it serves only what is copied to it (a copy for an
	 * earlier one is not for it), whatever the owner table says when it
	 * starts (a range may be handed to it before its serving loop runs). */
	if (c->cfg.role == HPS_ROLE_SERVER && (st == HPSI_NODE_VACANT || st == HPSI_NODE_CLOSED) &&
	    hpsi_seg_room(&c->seg)) /* (replicated or not) */
		atomic_fetch_add_explicit(&n->incarnation, 1, memory_order_relaxed); /* published just below */
	/* A worker the launcher restarts takes over its rank's place: its
	 * clock, its rings and heap slice once the servers drained them
	 * (runtime/client/rejoin.c). */
	if (c->cfg.role == HPS_ROLE_WORKER && st == HPSI_NODE_RESTARTING) {
		atomic_fetch_add_explicit(&n->incarnation, 1, memory_order_relaxed); /* published just below */
		hpsi_rejoin_claim(c);
	}
	atomic_store_explicit(&n->state, claimed, memory_order_release);
	/* Only a replacement wakes everyone (its replicas start copying to it).
	 * A first join does not: requests wait in its rings, and waking every
	 * node at each of a 64 x 64 job's joins cost its servers 8,192
	 * wake-ups while it started. */
	if (claimed == HPSI_NODE_JOINING)
		hpsi_wake_all(&c->seg);
	if (joined) /* servers holding pulls for the claimed slot look again */
		hpsi_members_changed(&c->seg);
	atomic_init(&c->magic, HPSI_MAGIC_CTX);
	c->pid = getpid();
	pthread_once(&exit_once, register_exit);
	pthread_mutex_lock(&live_lock);
	c->next_live = live_ctxs;
	live_ctxs = c;
	pthread_mutex_unlock(&live_lock);
	hpsi_info("joined job %s on host %s: %s %d, node %u, pid %d", c->seg.hdr->job, c->seg.hdr->host,
		  c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, c->node, (int)c->pid);
	*out = c;
	return 0;
}

static int finalize(hps_ctx *c, int unmap)
{
	int rc = hpsi_ctx_check(c);
	if (rc)
		return rc;
	if (c->worker)
		hps_worker_close(c->worker);
	pthread_mutex_lock(&live_lock);
	for (struct hps_ctx **p = &live_ctxs; *p; p = &(*p)->next_live)
		if (*p == c) {
			*p = c->next_live;
			break;
		}
	pthread_mutex_unlock(&live_lock);
	mark_closed(c);
	hpsi_info("left job %s: %s %d, pid %d (hps_finalize)", c->seg.hdr->job,
		  c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, (int)c->pid);
	hpsi_log_flush();
	if (unmap)
		hpsi_seg_detach(&c->seg);
	hpsi_handle_retire(c, &c->magic);
	return 0;
}

int hps_finalize(hps_ctx *c)
{
	return finalize(c, 1);
}

int hpsi_finalize_exiting(hps_ctx *c)
{
	return finalize(c, 0);
}

int hps_role(const hps_ctx *c)
{
	int rc = hpsi_ctx_check(c);
	return rc ? rc : c->cfg.role;
}

int hps_rank(const hps_ctx *c)
{
	int rc = hpsi_ctx_check(c);
	return rc ? rc : c->cfg.rank;
}

int hps_num_workers(const hps_ctx *c)
{
	int rc = hpsi_ctx_check(c);
	return rc ? rc : (int)hpsi_workers_given(&c->seg);
}

int hps_membership_epoch(const hps_ctx *c)
{
	int rc = hpsi_ctx_check(c);
	/* acquire: pairs with hpsi_members_changed's release */
	return rc ? rc
		  : (int)(atomic_load_explicit(&c->seg.hdr->members_seq, memory_order_acquire) & 0x7fffffffu);
}

int hps_num_servers(const hps_ctx *c)
{
	int rc = hpsi_ctx_check(c);
	return rc ? rc : (int)hpsi_servers_current(&c->seg);
}
