/* `hps launch`: starts a whole job on this host from one command.
 *
 * Creates the segment, starts the servers (built-in `hps server`, or the
 * program itself with --self-serve) and the workers, prefixes every line
 * they print with its role and rank, and ends the job on the first failure
 * (unless --keep-going; with --restart-workers a dead worker is started
 * again instead, restart_worker). The segment is removed on every exit path the
 * launcher survives; children die with it (PR_SET_PDEATHSIG), and
 * `hps clean` removes what a SIGKILLed launcher leaves. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hps/hps.h"
#include "runtime/client/join.h"
#include "runtime/common/config.h"
#include "shm/backups.h"
#include "shm/ckpt.h"
#include "shm/liveness.h"
#include "shm/node.h"
#include "net/route.h"
#include "runtime/cluster/jobstats.h"
#include "runtime/cluster/launch.h"
#include "runtime/cluster/lobby.h"
#include "runtime/common/log.h"
#include "runtime/cluster/outpipe.h"
#include "net/curve.h"
#include "net/transport.h"
#include "runtime/server/store.h"

#define GRACE_NS 3000000000ll /* from SIGTERM to SIGKILL when stopping */
#define ROLE_BRIDGE 2         /* a child that is this host's bridge (multi-host) */

struct child {
	pid_t pid;
	int role, rank;
	int running;
	int status;      /* wait status once exited */
	int stop_sent;   /* the bridge was asked to leave */
	int restart;     /* a worker restarted (--restart-workers): its number in the job, else 0 */
	int join;        /* a worker started by `hps scale` (HPS_JOIN=1): rank -1 until it took one */
	struct hpsi_outpipe out; /* its stdout and stderr */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f,
		"hps " HPS_VERSION_STRING "\n"
		"usage: hps launch [options] -- PROGRAM [ARGS...]\n\n"
		"Starts a job on this host: S servers and W copies of PROGRAM as workers, sharing one\n"
		"shared-memory segment. Output lines are prefixed with [server N] / [worker N]. The first\n"
		"process to fail (non-zero exit or signal) stops the job; the exit status is then non-zero.\n\n"
		"  -s, --servers N       server processes (default 1; HPS_NUM_SERVERS)\n"
		"  -w, --workers N       worker processes (default 1; HPS_NUM_WORKERS)\n"
		"  --job ID              job id (default: hps<pid>; HPS_JOB_ID)\n"
		"  --self-serve          run PROGRAM as the servers too (HPS_ROLE=server); it calls\n"
		"                        hps_server_run() with its own handler\n"
		"  --keep-going          a failed worker does not stop the others\n"
		"  --hosts FILE          a multi-host job: FILE lists `NAME SERVERS WORKERS [ADDRESS]`\n"
		"                        per host; started there through HPS_RSH (default ssh), in\n"
		"                        this directory, ranked in the file's order; the last line\n"
		"                        may be `NAME 0 0 ADDRESS later`: a host that joins the running\n"
		"                        job (hps scale --join-host NAME here, or SIGUSR1 to this\n"
		"                        launcher) with the job's room\n"
		"  --env NAME[=VALUE]    pass NAME to every host of --hosts too (repeatable; HPS_*,\n"
		"                        DMLC_*, LD_LIBRARY_PATH, OMP_NUM_THREADS, KMP_AFFINITY go anyway)\n"
		"  --tracker             started by dmlc-core's tracker: DMLC_ROLE=scheduler runs the\n"
		"                        scheduler, a server or worker joins its machine's host group\n"
		"  --root-uri H, --root-port P  where the scheduler listens (HPS_ROOT_URI/PORT)\n"
		"  --node-addr A, --interface I, --ports P-Q  where this host's bridge listens\n"
		"  --local-servers N, --local-workers N  this host's part of a multi-host job\n"
		"  --curve DIR           encrypt and authenticate every TCP link with the keys of\n"
		"                        `hps keygen DIR`, present on every host (HPS_CURVE)\n"
		"  --no-prefix           children write straight to this terminal, lines untagged\n"
		"  --summary             at the end, a screen of what each server and worker did\n"
		"  --heap-mb N           shared heap per worker in MiB (default 256; HPS_HEAP_MB)\n"
		"  --ring-kb N           bytes of each ring in KiB (default: the job's rings share\n"
		"                        256 MiB, 1024 KiB each at most; HPS_RING_KB)\n"
		"  --timeout-ms N        request timeout (default 30000; HPS_TIMEOUT_MS)\n"
		"  --key-ranges R        first-last[,...] per server instead of hashing (HPS_KEY_RANGES)\n"
		"  --updater SPEC        server updater, or SPEC;SPEC;... per server (HPS_UPDATER):\n"
		"                        sum, assign, sgd:lr=,l2=, adagrad:lr=,eps=,init=,\n"
		"                        ftrl:alpha=,beta=,l1=,l2=, adam:lr=,beta1=,beta2=,eps=,bias=\n"
		"  --staleness S         consistency per key range (HPS_STALENESS): bsp, asp, or\n"
		"                        a number of clocks (SSP); S;S;... per server\n"
		"  --dtype T             values stored per key range: f32 or f64; T;T;... per server\n"
		"                        (HPS_DTYPE)\n"
		"  --compress C          f32 values on the rings as none, f16 or bf16 (HPS_COMPRESS)\n"
		"  --replicas K          every key range on K backup servers too: a server may die\n"
		"                        and the job goes on (HPS_REPLICAS, default 0); with --hosts\n"
		"                        the replicas of a range are on different hosts\n"
		"  --restart-servers N   with --replicas: start a replacement for a dead server, which\n"
		"                        copies its key ranges and serves again, up to N times in all\n"
		"                        (default 2 per server; 0: never; with --hosts: N per host,\n"
		"                        default 0, copies through the bridges)\n"
		"  --max-workers N       room for up to N workers (default: -w): more join the running\n"
		"                        job with `hps scale --workers` or HPS_JOIN=1 (HPS_MAX_WORKERS;\n"
		"                        with --hosts the free ranks are the last host's: join there)\n"
		"  --max-servers N       room for up to N servers (default: -s): the job's keys form N\n"
		"                        key ranges, spread over the running servers; `hps scale\n"
		"                        --servers` moves ranges to more or fewer of them while the\n"
		"                        job trains (HPS_MAX_SERVERS; no --restart-servers\n"
		"                        or --direct; with --replicas 1 each range is also on a\n"
		"                        backup, and both move; across hosts such a job does\n"
		"                        not scale yet); with\n"
		"                        --key-ranges each declared range is cut into its share of\n"
		"                        the N ranges\n"
		"  --restart-workers N   start a worker that died (signal or non-zero exit) again, with\n"
		"                        the same rank and HPS_RESTART=k, up to N times in all (default\n"
		"                        0); it resumes from hps_resume_clock and the others wait for it;\n"
		"                        what is left of the dead one's process group is killed first;\n"
		"                        with --hosts on its host, N counted for the whole job\n"
		"  --deterministic       BSP ranges apply each clock's pushes in worker order, so\n"
		"                        same-seed runs give the same model bit for bit; every\n"
		"                        worker must call hps_clock (HPS_DETERMINISTIC=1)\n"
		"  --direct W            HOGWILD direct mode: each server keeps its declared key range\n"
		"                        as a dense shared array of W floats per key; W;W;... per server\n"
		"  --init SPEC           first-touch values (HPS_INIT): zeros, constant:value=,\n"
		"                        uniform:low=,high=,seed=, normal:mean=,std=,seed=\n"
		"  -h, --help            this text\n\n"
		"Every process gets HPS_ROLE, HPS_RANK, HPS_JOB_ID, HPS_HOST, HPS_NUM_SERVERS and\n"
		"HPS_NUM_WORKERS in its environment.\n");
}

/* Options that map to a setting: --name V becomes HPS_NAME=V. */
static const struct {
	const char *opt, *shrt, *env;
} env_opts[] = {
	{"--servers", "-s", "HPS_NUM_SERVERS"}, {"--workers", "-w", "HPS_NUM_WORKERS"},
	{"--max-workers", NULL, "HPS_MAX_WORKERS"}, {"--max-servers", NULL, "HPS_MAX_SERVERS"},
	{"--job", NULL, "HPS_JOB_ID"},          {"--heap-mb", NULL, "HPS_HEAP_MB"},
	{"--replicas", NULL, "HPS_REPLICAS"},
	{"--ring-kb", NULL, "HPS_RING_KB"},     {"--timeout-ms", NULL, "HPS_TIMEOUT_MS"},
	{"--key-ranges", NULL, "HPS_KEY_RANGES"}, {"--host", NULL, "HPS_HOST"},
	{"--updater", NULL, "HPS_UPDATER"},       {"--init", NULL, "HPS_INIT"},
	{"--staleness", NULL, "HPS_STALENESS"},   {"--dtype", NULL, "HPS_DTYPE"},
	{"--compress", NULL, "HPS_COMPRESS"},     {"--direct", NULL, "HPS_DIRECT"},
	{"--local-servers", NULL, "HPS_LOCAL_SERVERS"}, {"--local-workers", NULL, "HPS_LOCAL_WORKERS"},
	{"--root-uri", NULL, "HPS_ROOT_URI"},     {"--root-port", NULL, "HPS_ROOT_PORT"},
	{"--node-addr", NULL, "HPS_NODE_ADDR"},   {"--interface", NULL, "HPS_INTERFACE"},
	{"--ports", NULL, "HPS_PORTS"},           {"--curve", NULL, "HPS_CURVE"},
};

/* --no-prefix: children write to the launcher's own stdout and stderr
 * (a terminal stays a terminal: progress bars work) instead of through a
 * pipe that tags each line with its process. */
static int pass_output;
static int want_summary; /* --summary */

/* The program of the built-in servers: lib/hps/hps-server beside this
 * hps (bin/../lib/hps/, in the tree and under PREFIX), which loads only
 * libhps's libraries; "" when there is none: then `hps server`. */
static char server_prog[4200];

static void find_server_prog(const char *self)
{
	const char *slash = strrchr(self, '/');
	server_prog[0] = 0;
	if (slash && snprintf(server_prog, sizeof server_prog, "%.*s/../lib/hps/hps-server", (int)(slash - self), self) <
			     (int)sizeof server_prog &&
	    access(server_prog, X_OK) == 0)
		return;
	server_prog[0] = 0;
}

/* The environment of a child: the launcher's, less the settings in
 * `drop`, plus the strings of `add` (NULL-terminated lists). Built before
 * vfork: the child shares the launcher's memory until it execs, so it
 * must not setenv. NULL when out of memory; free() it after. */
extern char **environ;

static char **child_env(const char *const *drop, char *const *add)
{
	size_t n = 0, k = 0, m = 0;
	while (environ[n])
		n++;
	while (add[m])
		m++;
	char **env = malloc((n + m + 1) * sizeof *env);
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int keep = 1;
		for (size_t d = 0; keep && drop[d]; d++) {
			size_t len = strlen(drop[d]);
			keep = !(strncmp(environ[i], drop[d], len) == 0 && environ[i][len] == '=');
		}
		if (keep)
			env[k++] = environ[i];
	}
	for (size_t i = 0; i < m; i++)
		env[k++] = add[i];
	env[k] = NULL;
	return env;
}

/* What a vforked child does before it becomes its program; prepared by
 * the launcher, since the child shares the launcher's memory until exec. */
struct exec_plan {
	int out;          /* its stdout and stderr, or -1 */
	pid_t launcher;
	const char *prog; /* first choice */
	char **args;
	int search;       /* look prog up in PATH (the user's program) */
	const char *fallback; /* when prog cannot be run (NULL: none) */
	char **fallback_args;
	char **env;
	sigset_t mask;    /* the launcher's signal mask, restored before exec */
	const char *name; /* for the error line */
};

/* The child's side: system calls on its own stack frame, below the
 * suspended launcher's; never returns. */
__attribute__((noinline, noreturn)) static void exec_child(const struct exec_plan *p)
{
	setpgid(0, 0); /* its own group: stopping it reaches its children too */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != p->launcher)
		_exit(127);
	if (p->out >= 0) {
		dup2(p->out, STDOUT_FILENO);
		dup2(p->out, STDERR_FILENO);
	}
	/* the launcher's handlers back to default before signals are let in
	 * (exec would reset them, but a signal may come first) */
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction cur;
		if (sigaction(sig, NULL, &cur) == 0 && cur.sa_handler != SIG_IGN && cur.sa_handler != SIG_DFL)
			sigaction(sig, &dfl, NULL);
	}
	pthread_sigmask(SIG_SETMASK, &p->mask, NULL);
	if (p->search)
		execvpe(p->prog, p->args, p->env);
	else
		execve(p->prog, p->args, p->env);
	if (p->fallback)
		execve(p->fallback, p->fallback_args, p->env);
	char line[600];
	int n = snprintf(line, sizeof line, "cannot start %s: %s\n", p->name, strerror(errno));
	ssize_t wr = write(STDERR_FILENO, line, n > 0 && n < (int)sizeof line ? (size_t)n : 0);
	(void)wr;
	_exit(127);
}

/* Starts a child with vfork: fork copied the launcher's page tables and
 * took a copy-on-write fault for each page either side then wrote, a
 * tenth of the start-up CPU of a job of 128 processes. Every signal is
 * blocked while the child shares the launcher's memory, so that the
 * launcher's handler never runs in it. */
static int spawn(struct child *c, char **argv, const char *self, const struct hpsi_config *cfg)
{
	int fds[2] = {-1, -1};
	if (!pass_output && hpsi_outpipe_open(&fds[0], &fds[1], 1) != 0)
		return -1;
	char role[32], rank[32], job[96], host[96], ns[48], nw[48], again[32];
	snprintf(role, sizeof role, "HPS_ROLE=%s", c->role == HPS_ROLE_SERVER ? "server" : "worker");
	if (c->join) /* it takes a free rank itself (runtime/client/join.c) */
		snprintf(rank, sizeof rank, "HPS_JOIN=1");
	else
		snprintf(rank, sizeof rank, "HPS_RANK=%d", c->rank);
	snprintf(job, sizeof job, "HPS_JOB_ID=%s", cfg->job);
	snprintf(host, sizeof host, "HPS_HOST=%s", cfg->host);
	snprintf(ns, sizeof ns, "HPS_NUM_SERVERS=%u", cfg->nservers);
	snprintf(nw, sizeof nw, "HPS_NUM_WORKERS=%u", cfg->nworkers);
	static const char *const bridge_drop[] = {"HPS_ROLE", "DMLC_ROLE", NULL};
	static const char *const node_drop[] = {"HPS_ROLE", "HPS_RANK", "HPS_JOB_ID", "HPS_HOST",
						"HPS_NUM_SERVERS", "HPS_NUM_WORKERS", "HPS_RESTART", "HPS_JOIN", NULL};
	snprintf(again, sizeof again, "HPS_RESTART=%d", c->restart);
	char *none[] = {NULL}, *node_add[] = {role, rank, job, host, ns, nw, c->restart ? again : NULL, NULL};
	/* The bridge and the built-in servers are named "hps bridge" and
	 * "hps server" (as ps shows them), whichever program runs them. */
	char *br[] = {(char *)self, "bridge", NULL}, *lean[] = {"hps", "server", NULL},
	     *srv[] = {(char *)self, "server", NULL};
	struct exec_plan plan = {.out = fds[1], .launcher = getpid(), .name = argv ? argv[0] : self};
	if (c->role == ROLE_BRIDGE)
		plan.prog = self, plan.args = br;
	else if (argv)
		plan.prog = argv[0], plan.args = argv, plan.search = 1;
	else if (server_prog[0])
		plan.prog = server_prog, plan.args = lean, plan.fallback = self, plan.fallback_args = srv;
	else
		plan.prog = self, plan.args = srv;
	plan.env = c->role == ROLE_BRIDGE ? child_env(bridge_drop, none) : child_env(node_drop, node_add);
	pid_t pid = -1;
	if (plan.env) {
		sigset_t all;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &plan.mask);
		pid = vfork();
		if (pid == 0)
			exec_child(&plan);
		pthread_sigmask(SIG_SETMASK, &plan.mask, NULL);
		free(plan.env);
	}
	if (pid < 0) {
		if (fds[0] >= 0)
			close(fds[0]), close(fds[1]);
		return -1;
	}
	if (fds[0] >= 0)
		close(fds[1]);
	c->pid = pid;
	c->out.fd = fds[0];
	if (c->role == ROLE_BRIDGE)
		snprintf(c->out.tag, sizeof c->out.tag, "[bridge] ");
	else if (c->join)
		snprintf(c->out.tag, sizeof c->out.tag, "[worker +] ");
	else
		snprintf(c->out.tag, sizeof c->out.tag, "[%s %d] ", c->role == HPS_ROLE_SERVER ? "server" : "worker", c->rank);
	c->running = 1;
	if (c->role == ROLE_BRIDGE)
		hpsi_info("started the bridge: pid %d", (int)pid);
	else if (c->join)
		hpsi_info("started a joining worker: pid %d", (int)pid);
	else
		hpsi_info("started %s %d: pid %d", c->role == HPS_ROLE_SERVER ? "server" : "worker", c->rank, (int)pid);
	return 0;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void describe(const struct child *c)
{
	char who[32];
	if (c->role == ROLE_BRIDGE)
		snprintf(who, sizeof who, "the bridge");
	else if (c->join && c->rank < 0)
		snprintf(who, sizeof who, "a joining worker");
	else
		snprintf(who, sizeof who, "%s %d", c->role == HPS_ROLE_SERVER ? "server" : "worker", c->rank);
	if (WIFEXITED(c->status))
		fprintf(stderr, "hps launch: %s exited with status %d\n", who, WEXITSTATUS(c->status));
	else
		fprintf(stderr, "hps launch: %s killed by signal %d (%s)\n", who, WTERMSIG(c->status),
			strsignal(WTERMSIG(c->status)));
}

struct job {
	struct child *kids;
	int n;
	struct hpsi_seg seg;
	int stopping;
	int64_t kill_at;
};

static void stop_job(struct job *j)
{
	if (j->stopping)
		return;
	int n = 0;
	for (int i = 0; i < j->n; i++)
		n += j->kids[i].running;
	hpsi_info("stopping the job: shutdown flag set, SIGTERM to %d running process%s, SIGKILL after %lld s", n,
		  n == 1 ? "" : "es", GRACE_NS / 1000000000);
	j->stopping = 1;
	atomic_store_explicit(&j->seg.hdr->shutdown, 1, memory_order_release);
	hpsi_wake_all(&j->seg);
	for (int i = 0; i < j->n; i++)
		if (j->kids[i].running)
			kill(-j->kids[i].pid, SIGTERM);
	j->kill_at = hpsi_now_ns() + GRACE_NS;
}

/* This host's bridge died with replicas across hosts (docs/ARCHITECTURE.md,
 * "Across hosts", step 5): SIGKILL to every node of the host at once. */
static void kill_nodes_now(struct job *j)
{
	int n = 0;
	for (int i = 0; i < j->n; i++)
		if (j->kids[i].running && j->kids[i].role != ROLE_BRIDGE) {
			kill(-j->kids[i].pid, SIGKILL);
			n++;
		}
	fprintf(stderr, "hps launch: the other hosts take this host's key ranges over (HPS_REPLICAS=%u): its %d node%s killed at once\n",
		j->seg.hdr->replicas, n, n == 1 ? "" : "s");
}

static const char *hosts_file; /* --hosts FILE: a multi-host job */
static int tracker;             /* --tracker: one process of a dmlc-core tracker's job */
/* --restart-servers N: replacements for dead servers of a replicated job,
 * in all (-1: the default, 2 per server with replicas, none without). */
static long restart_servers = -1;
#define MAX_RESTARTS 64
/* --restart-workers N: restarts of dead workers, in all (0: none). */
static long restart_workers;
/* Children of one host: its nodes, the bridge, and the restarts of both. */
#define MAX_KIDS (HPSI_MAX_NODES + 1 + 2 * MAX_RESTARTS)

/* --tracker: dmlc-core's tracker (and ps-lite's scripts) start every
 * process alone with DMLC_ROLE=scheduler|server|worker. The scheduler runs
 * `hps scheduler` (returns -1); a server or worker brings one process to
 * its machine's host group (runtime/cluster/lobby.h), so the processes of
 * one machine share a segment. Returns 0 to go on, or an exit status. */
static int tracker_role(void)
{
	const char *role = getenv("HPS_ROLE");
	if (!role || !*role)
		role = getenv("DMLC_ROLE");
	if (!role || !*role) {
		fprintf(stderr, "hps launch --tracker: DMLC_ROLE (or HPS_ROLE) is not set: scheduler, server or worker\n");
		return 2;
	}
	if (!hpsi_setting("JOB_ID")) { /* every process of the job must agree: from the port */
		char id[32];
		snprintf(id, sizeof id, "hps%s", hpsi_setting("ROOT_PORT") ? hpsi_setting("ROOT_PORT") : "");
		setenv("HPS_JOB_ID", id, 1);
	}
	int server = strcmp(role, "server") == 0, sched = strcmp(role, "scheduler") == 0;
	if (sched) {
		unsetenv("HPS_ROLE"); /* the scheduler is no node: its settings must not say so */
		unsetenv("DMLC_ROLE");
		return -1;
	}
	if (!server && strcmp(role, "worker") != 0) {
		fprintf(stderr, "hps launch --tracker: DMLC_ROLE=%s: expected scheduler, server or worker\n", role);
		return 2;
	}
	setenv("HPS_LOCAL_SERVERS", server ? "1" : "0", 1);
	setenv("HPS_LOCAL_WORKERS", server ? "0" : "1", 1);
	unsetenv("HPS_ROLE");
	unsetenv("DMLC_ROLE");
	return 0;
}

/* --env NAME passes this variable to every host of a --hosts job (every
 * local process gets the whole environment anyway); --env NAME=VALUE sets
 * it for every process of the job first. */
static int env_option(const char *v)
{
	size_t n = strcspn(v, "=");
	int ok = n > 0 && !(v[0] >= '0' && v[0] <= '9');
	for (size_t k = 0; k < n; k++)
		ok &= v[k] == '_' || (v[k] >= 'A' && v[k] <= 'Z') || (v[k] >= 'a' && v[k] <= 'z') ||
		      (v[k] >= '0' && v[k] <= '9');
	if (!ok) {
		fprintf(stderr, "hps launch: --env '%s': expected NAME or NAME=VALUE, NAME of letters, digits and _\n", v);
		return -1;
	}
	if (v[n] == '=') {
		char name[256];
		if (n >= sizeof name) {
			fprintf(stderr, "hps launch: --env '%.40s...': the name is too long\n", v);
			return -1;
		}
		memcpy(name, v, n);
		name[n] = 0;
		return setenv(name, v + n + 1, 1);
	}
	if (!getenv(v)) {
		fprintf(stderr, "hps launch: --env %s: %s is not set here (use --env %s=VALUE)\n", v, v, v);
		return -1;
	}
	return 0;
}

/* The number after --restart-workers or --restart-servers (argv[*i]),
 * 0 to MAX_RESTARTS; -1 with a one-line error otherwise. */
static int parse_restarts(int argc, char **argv, int *i, long *out)
{
	const char *opt = argv[*i];
	char *end = NULL;
	*out = *i + 1 < argc ? strtol(argv[++*i], &end, 10) : -1;
	if (!end || *end || end == argv[*i] || *out < 0 || *out > MAX_RESTARTS) {
		fprintf(stderr, "hps launch: %s needs a number from 0 to %d\n", opt, MAX_RESTARTS);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, int *self_serve, int *keep_going, int *prog)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			*prog = i + 1;
			return i + 1 < argc ? 0 : -1;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--self-serve") == 0) {
			*self_serve = 1;
			continue;
		}
		if (strcmp(a, "--keep-going") == 0) {
			*keep_going = 1;
			continue;
		}
		if (strcmp(a, "--tracker") == 0) {
			tracker = 1;
			continue;
		}
		if (strcmp(a, "--hosts") == 0 && i + 1 < argc) {
			hosts_file = argv[++i];
			continue;
		}
		if (strcmp(a, "--env") == 0 && i + 1 < argc) { /* launch_hosts.c passes the names on */
			if (env_option(argv[++i]))
				return -2;
			continue;
		}
		if (strcmp(a, "--deterministic") == 0) {
			setenv("HPS_DETERMINISTIC", "1", 1);
			continue;
		}
		if (strcmp(a, "--no-prefix") == 0) {
			pass_output = 1;
			continue;
		}
		if (strcmp(a, "--summary") == 0) {
			want_summary = 1;
			continue;
		}
		if (strcmp(a, "--restart-workers") == 0 || strcmp(a, "--restart-servers") == 0) {
			if (parse_restarts(argc, argv, &i, strcmp(a, "--restart-workers") == 0 ? &restart_workers : &restart_servers))
				return -2;
			continue;
		}
		size_t k;
		for (k = 0; k < sizeof env_opts / sizeof env_opts[0]; k++)
			if (strcmp(a, env_opts[k].opt) == 0 || (env_opts[k].shrt && strcmp(a, env_opts[k].shrt) == 0))
				break;
		if (k == sizeof env_opts / sizeof env_opts[0]) {
			if (a[0] != '-') { /* the program, without "--" */
				*prog = i;
				return 0;
			}
			fprintf(stderr, "hps launch: unknown option '%s' (see hps launch --help)\n", a);
			return -2;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "hps launch: %s needs a value\n", a);
			return -2;
		}
		setenv(env_opts[k].env, argv[++i], 1);
	}
	return -1;
}

int hpsi_launch_check_settings(struct hpsi_config *cfg, int self_serve, int need_node)
{
	if (hpsi_config_load(cfg, 0) || hpsi_config_check_lists(cfg->nservers))
		return HPS_ECONFIG;
	for (uint32_t r = 0; r < cfg->nservers; r++) {
		struct hpsi_updater upd;
		struct hpsi_init init;
		int64_t staleness;
		if ((!self_serve && hpsi_server_store_config((int)r, &upd, &init)) ||
		    hpsi_server_staleness((int)r, &staleness))
			return HPS_ECONFIG;
	}
	uint64_t n;
	struct hpsi_cluster_cfg cc;
	struct hpsi_curve curve;
	if (hpsi_curve_load(&curve))
		return HPS_ECONFIG;
	if (hpsi_setting("ROOT_URI") &&
	    (hpsi_cluster_load(&cc, need_node) || hpsi_setting_u64("LOCAL_SERVERS", 0, HPSI_MAX_NODES, &n) ||
	     hpsi_setting_u64("LOCAL_WORKERS", 0, HPSI_MAX_NODES, &n)))
		return HPS_ECONFIG;
	return 0;
}

/* The exit of a node (not the bridge) fails the job unless it is 0 or the
 * job was already failing: a signal this launcher sent to stop a failed job
 * is no new failure, but a node that fails after every worker finished
 * (the servers being asked to end) still makes the job fail. */
/* With replicas, a dead server costs nothing while each key range still
 * has a replica running, or one that closed: servers close once every
 * worker finished, so a replica that closed served its range to the end
 * (this launcher may reap a death only after the others closed). */
static int every_range_served(const struct job *j)
{
	const struct hpsi_seg *s = &j->seg;
	if (!s->hdr->replicas)
		return 0;
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		int closed = 0;
		for (uint32_t i = 0; i <= s->hdr->replicas; i++)
			closed |= hpsi_node_state(s, hpsi_replica(s, r, i)) == HPSI_NODE_CLOSED;
		if (!closed && hpsi_range_primary(s, r) == HPSI_NO_SERVER)
			return 0;
	}
	return 1;
}

static int node_exit_fails_job(const struct job *j, int status, int code)
{
	int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	return !ok && (!j->stopping || code == 0);
}

/* Multi-host: waits until this host's bridge has registered and built the
 * segment (or failed, or the registration time is over). */
static int wait_for_bridge(struct job *j, struct child *bridge, const struct hpsi_config *cfg)
{
	uint64_t reg_ms = 30000;
	hpsi_setting_u64("REGISTER_MS", 100, 3600000, &reg_ms);
	int64_t deadline = hpsi_now_ns() + (int64_t)(reg_ms + 5000) * 1000000;
	char path[256];
	if (hpsi_seg_path(path, sizeof path, cfg->job, cfg->host))
		return 2;
	for (;;) {
		if (access(path, F_OK) == 0 && hpsi_seg_attach(cfg->job, cfg->host, &j->seg) == 0)
			return 0;
		struct pollfd pf = {.fd = bridge->out.fd, .events = POLLIN};
		if (bridge->out.fd >= 0 && poll(&pf, 1, 20) > 0)
			hpsi_outpipe_pump(&bridge->out);
		else if (bridge->out.fd < 0)
			usleep(20000);
		int status;
		if (waitpid(bridge->pid, &status, WNOHANG) == bridge->pid) {
			while (bridge->out.fd >= 0)
				hpsi_outpipe_pump(&bridge->out);
			fprintf(stderr, "hps launch: the bridge of host %s ended before the job started\n", cfg->host);
			return WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : 1;
		}
		if (got_signal || hpsi_now_ns() > deadline) {
			kill(-bridge->pid, SIGKILL);
			waitpid(bridge->pid, &status, 0);
			if (!got_signal)
				fprintf(stderr, "hps launch: the bridge of host %s built no segment in time\n", cfg->host);
			return got_signal ? 128 + got_signal : 1;
		}
	}
}

static int launch_here(int self_serve, int keep_going, char **argv, int prog);

/* `hps scale --workers N` (runtime/cluster/scale.c): the request word
 * scale_req, answered from the launcher's loop. A request starts the
 * copies of the worker program that make N members (HPS_JOIN=1: each
 * takes a free rank); it ends, with the release of 0, once each copy
 * joined or ended (a job that stops starts none). Returns the workers
 * started (for workers_left). */
struct scaling {
	int first, n; /* the copies of the running request: kids [first, first + n) */
	int servers;  /* the running request is one of servers (serve_scale_servers) */
	uint32_t from, to; /* servers: from and to how many */
	/* servers: a server died (with replicas) or the scale gave up
	 * (give_up_ns), the plan is the tables, and the scale ends once no
	 * copy runs and the tables are still the plan (a copy under way
	 * then changes them after; end_server_scale) */
	int ending;
	/* across hosts: when a rank of another host the plan names must run
	 * (a closed one started again by its host's launcher) */
	int64_t others_by_ns;
	/* servers: when the scale ends where the ranges are (HPS_TIMEOUT_MS
	 * from its plan, when hps scale has given up: the scale's state and
	 * the checkpoint lock go, so that a later scale or checkpoint runs) */
	int64_t give_up_ns;
};

/* Tells the servers how many of them the plan is for: servers_want, then
 * the plan's number with release, which a server that acquires it
 * (runtime/server/move.c) reads after servers_want and the plan stored
 * before this call. */
static void publish_plan(struct hpsi_seg *s, uint32_t servers_want)
{
	atomic_store_explicit(&s->hdr->servers_want, servers_want, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->hdr->moves_seq, 1, memory_order_release);
}

/* A replicated job with room: the backup table's plan half, entry i of
 * range r (net/route.h, hpsi_backup_want). */
static _Atomic uint16_t *backup_want_entry(struct hpsi_seg *s, uint32_t r, uint32_t i)
{
	return &hpsi_seg_backup_plan(s)[(size_t)r * s->hdr->replicas + i];
}

/* The backup plan becomes the backup table (no backup moves). */
static void scale_backup_plan_is_table(struct hpsi_seg *s)
{
	for (uint32_t r = 0; s->hdr->replicas && r < s->hdr->nservers; r++)
		for (uint32_t i = 0; i < s->hdr->replicas; i++)
			atomic_store_explicit(backup_want_entry(s, r, i), hpsi_replica(s, r, i + 1), memory_order_relaxed);
}

/* Range r's move number for a plan (shm/segment.h, moves_off), read
 * before its owner: acquire, so that the owner read after it is that
 * move's or a later one's. A plan's entry then never claims a newer
 * number than its owner's (a move under way when a scale ends: the
 * target's host knows it and keeps its entry; the other way round it
 * would take the source as the plan and move the range back). */
static uint32_t moves_before_owner(const struct hpsi_seg *s, uint32_t r)
{
	return atomic_load_explicit(&hpsi_seg_moves(s)[r], memory_order_acquire);
}

/* The kept rule of other hosts' bridges (net/bridge_scale.c) on this
 * host, whose launcher makes the plans: an entry made before its range's
 * last move (the plan's number below the range's) becomes the range's
 * owner. Such a plan was made from an owner table that did not show the
 * move yet (a scale that ended during it, a FINAL from another host that
 * moved the range by an older plan there), and the servers do not move a
 * range by it (move.c hpsi_move_plan_older): without this the launcher
 * waited for a move nobody makes. Acquire pairs with the release of the
 * number after the owner (hpsi_seg_moves_raise): the owner read after it
 * is that move's or a later one's. This launcher alone writes the plan
 * on its host, so no store here races with another; the plan's numbers
 * stay, and the entry follows the owner until the next plan. */
static void keep_moved_entries(struct hpsi_seg *s)
{
	if (!hpsi_seg_movable(s) || s->hdr->replicas)
		return;
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		uint32_t moved = atomic_load_explicit(&hpsi_seg_moves(s)[r], memory_order_acquire);
		if (atomic_load_explicit(&hpsi_seg_plan_moves(s)[r], memory_order_relaxed) >= moved)
			continue;
		uint32_t owner = hpsi_range_owner(s, r);
		if (hpsi_range_want(s, r) != owner)
			atomic_store_explicit(&hpsi_seg_want(s)[r], (uint16_t)owner, memory_order_relaxed);
	}
}

/* A replicated job's plans: a band of their own (shm/segment.h) above
 * every number this host holds or planned, for every range alike (review:
 * a band per range, from its own number, gave a range that no plan
 * copied the same band in two plans, so the older plan, coming late
 * after the newer one's copy of it, was not older). This launcher alone
 * makes the plans. A scale's plan takes a new band (fresh); the plan of
 * its end keeps the band of the plan before if no copy reached it (it is
 * made again at each poll while a scale ends). */
static uint32_t plan_band(const struct hpsi_seg *s, int fresh)
{
	uint32_t moved = 0, planned = 0;
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		uint32_t m = atomic_load_explicit(&hpsi_seg_moves(s)[r], memory_order_acquire);
		uint32_t p = atomic_load_explicit(&hpsi_seg_plan_moves(s)[r], memory_order_relaxed);
		moved = m > moved ? m : moved;
		planned = p > planned ? p : planned;
	}
	uint32_t band = hpsi_moves_band_next(moved);
	if (fresh)
		return planned >= band ? hpsi_moves_band_next(planned) : band;
	return planned >= band ? planned : band;
}

/* Ends a scale of servers: the plan becomes the owner table again where
 * a range did not move (a server it started died), and the command may
 * look at the result. */
static void plan_is_tables(struct hpsi_seg *s, struct scaling *sc)
{
	uint32_t now = hpsi_servers_current(s);
	/* with replicas a band of its own: a copy of the scale before that
	 * comes after it is older, and the tables go back to this plan */
	uint32_t band = s->hdr->replicas ? plan_band(s, 0) : 0;
	scale_backup_plan_is_table(s); /* (before the numbers' release) */
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		/* the entry, then its number with release (move.c
		 * hpsi_move_plan_older acquires it before the entry) */
		uint32_t moved = band ? band : moves_before_owner(s, r);
		atomic_store_explicit(&hpsi_seg_want(s)[r], hpsi_range_owner(s, r), memory_order_relaxed);
		atomic_store_explicit(&hpsi_seg_plan_moves(s)[r], moved, memory_order_release);
	}
	publish_plan(s, now > sc->to ? now : sc->to);
}

/* With replicas, after plan_is_tables: no server that runs has a copy
 * under way, and the tables are the plan, so none starts one. Acquire
 * pairs with the release of copies_ended (recover.c sync_free), after
 * the copy's table writes. A copy decided on the old plan whose
 * copies_started is not visible yet is missed: the launcher asks twice,
 * a poll apart (scale_settled_polls). */
static int scale_settled(struct hpsi_seg *s)
{
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		struct hpsi_node *n = hpsi_seg_node(s, r);
		if (hpsi_node_state(s, r) != HPSI_NODE_DEAD &&
		    atomic_load_explicit(&n->copies_ended, memory_order_acquire) !=
			    atomic_load_explicit(&n->copies_started, memory_order_relaxed))
			return 0;
	}
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		if (hpsi_range_owner(s, r) != hpsi_range_want(s, r))
			return 0;
		for (uint32_t i = 1; i <= s->hdr->replicas; i++)
			if (hpsi_replica(s, r, i) != hpsi_backup_want(s, r, i))
				return 0;
	}
	return 1;
}

static void end_server_scale(struct job *j, struct scaling *sc)
{
	struct hpsi_seg *s = &j->seg;
	plan_is_tables(s, sc);
	sc->servers = 0, sc->n = 0, sc->ending = 0;
	/* The next scale may start at once, across hosts too: the plan of
	 * this one's end (the tables) reaches another host only through the
	 * scheduler's states, and may come there after the next scale's
	 * FINALs (straight from bridge to bridge), but each entry carries its
	 * range's move number, and a host that knows of a later move keeps
	 * its entry (net/bridge_scale.c; CI, before: 2 -> 4 -> 1 with the
	 * steps 100 ms apart moved ranges back to the servers leaving) */
	hpsi_ckpt_unlock(&s->hdr->ckpt_lock);
	atomic_store_explicit(&s->hdr->scale_req, 0, memory_order_release); /* the next scale may run */
}

/* Whether this launcher starts server rank r: on one host every rank
 * (srv_hi there is the launched ones' end), across hosts its host's. */
static int own_server_rank(const struct hpsi_seg *s, uint32_t r)
{
	return !s->hdr->bridged || (r >= s->hdr->srv_lo && r < s->hdr->srv_hi);
}

/* `hps scale --servers N` (runtime/server/move.c): the plan moves whole
 * key ranges from the running ranks 0 .. from - 1 to 0 .. N - 1 with the
 * fewest moves (hpsi_share_rebalance over the owner table: a new rank
 * gets floor or ceil of ranges / N, taken from the ranks above their
 * share; a leaving rank's ranges go to those below theirs). The launcher
 * stores it, starts the new ranks, and ends the request once the owner
 * table is the plan and the leaving ranks closed. Returns servers started. */
static int serve_scale_servers(struct job *j, struct scaling *sc, uint32_t want, const char *self, char **srv_argv,
			       const struct hpsi_config *cfg)
{
	struct hpsi_seg *s = &j->seg;
	uint32_t M = s->hdr->nservers;
	int started = 0;
	if (!sc->servers) {
		/* No checkpoint meanwhile: the servers that do their part are
		 * the owner table's, which a scale changes. The launcher holds the
		 * checkpoint lock for the scale (a checkpoint running: the scale
		 * starts once it ended). */
		int32_t holder;
		if (hpsi_ckpt_lock(&s->hdr->ckpt_lock, &holder))
			return 0;
		uint16_t plan[HPSI_MAX_NODES], bplan[HPSI_MAX_NODES * HPSI_MAX_REPLICAS];
		uint32_t K = s->hdr->replicas, moves[HPSI_MAX_NODES];
		uint32_t band = K ? plan_band(s, 1) : 0; /* (with replicas: shm/segment.h) */
		for (uint32_t r = 0; r < M; r++) {
			moves[r] = band ? band : moves_before_owner(s, r);
			plan[r] = (uint16_t)hpsi_range_owner(s, r);
			for (uint32_t i = 0; i < K; i++)
				bplan[r * K + i] = (uint16_t)hpsi_replica(s, r, i + 1);
		}
		sc->from = hpsi_servers_current(s), sc->to = want;
		sc->servers = 1, sc->first = j->n, sc->n = 0;
		/* with replicas, then the backups with the fewest moves, on
		 * other hosts than their primaries where the ranks allow it
		 * (shm/backups.h; the segment's hosts of the ranks, NULL on one) */
		if (hpsi_share_rebalance(plan, M, sc->from, sc->to, NULL) ||
		    (K && hpsi_backup_rebalance_hosts(plan, bplan, M, K, sc->from, sc->to, hpsi_seg_server_hosts(s),
						      NULL))) { /* not on 0 .. from - 1 */
			fprintf(stderr, "hps launch: hps scale: the key ranges of job %s are not on servers 0-%u; not scaled\n",
				s->hdr->job, sc->from - 1);
			end_server_scale(j, sc);
			return 0;
		}
		/* The new ranks start before the plan names them (servers_want
		 * first, so that they do not leave at once): when one cannot
		 * start, no range moves, and those started leave again (they
		 * serve nothing and their rank is at or above servers_want). */
		publish_plan(s, sc->to > sc->from ? sc->to : sc->from);
		/* Across hosts a rank of another host (one an earlier scale
		 * closed) is started again by its own host's launcher once the
		 * plan reaches it (restart_closed_servers); this one starts its
		 * own host's */
		uint32_t mine = 0;
		for (uint32_t r = sc->from; r < sc->to; r++)
			mine += own_server_rank(s, r);
		for (uint32_t r = sc->from; !j->stopping && r < sc->to && j->n < MAX_KIDS; r++) {
			if (!own_server_rank(s, r))
				continue;
			struct child *c = &j->kids[j->n];
			*c = (struct child){.out.fd = -1, .role = HPS_ROLE_SERVER, .rank = (int)r};
			if (spawn(c, srv_argv, self, cfg) != 0) {
				fprintf(stderr, "hps launch: cannot start server %u for hps scale: %s\n", r, strerror(errno));
				break;
			}
			j->n++;
			started++;
		}
		sc->n = j->n - sc->first;
		if (sc->to > sc->from && (uint32_t)started < mine) {
			fprintf(stderr, "hps launch: hps scale: not every new server started; the key ranges stay where they are\n");
			sc->to = sc->from; /* servers_want back to it */
			end_server_scale(j, sc);
			hpsi_wake_all(s);
			return started;
		}
		for (uint32_t r = 0; r < M; r++) {
			atomic_store_explicit(&hpsi_seg_want(s)[r], plan[r], memory_order_relaxed);
			for (uint32_t i = 0; i < K; i++)
				atomic_store_explicit(backup_want_entry(s, r, i), bplan[r * K + i], memory_order_relaxed);
			/* after the entries (plan_is_tables; review: the backup's
			 * after it paired a new number with an old backup) */
			atomic_store_explicit(&hpsi_seg_plan_moves(s)[r], moves[r], memory_order_release);
		}
		publish_plan(s, sc->to);
		sc->others_by_ns = hpsi_now_ns() + cfg->timeout_ms / 2 * 1000000; /* before hps scale gives up */
		sc->give_up_ns = hpsi_now_ns() + (int64_t)cfg->timeout_ms * 1000000;
		hpsi_wake_all(s);
		fprintf(stderr, "hps launch: hps scale: servers %u to %u%s\n", sc->from, sc->to,
			started ? " (new ones started; key ranges move to them)" : " (key ranges move off the leaving ones)");
		return started;
	}
	if (sc->ending) { /* a server died, or it gave up: wait for the copies under way */
		if (!j->stopping && !scale_settled(s)) {
			plan_is_tables(s, sc); /* a copy that ended changed them */
			sc->ending = 1;
			return 0;
		}
		if (!j->stopping && sc->ending++ < 2) /* settled twice, a poll apart */
			return 0;
		end_server_scale(j, sc);
		return 0;
	}
	keep_moved_entries(s);
	int done = 1;
	for (uint32_t r = 0; r < M; r++) {
		done &= hpsi_range_owner(s, r) == hpsi_range_want(s, r);
		for (uint32_t i = 1; i <= s->hdr->replicas; i++)
			done &= hpsi_replica(s, r, i) == hpsi_backup_want(s, r, i);
	}
	for (uint32_t r = sc->to; done && r < sc->from; r++) {
		uint32_t st = hpsi_node_check(s, r); /* the leaving ranks closed */
		done = st == HPSI_NODE_CLOSED || st == HPSI_NODE_DEAD;
	}
	int lost = 0; /* a server it started ended */
	for (int i = sc->first; i < sc->first + sc->n; i++)
		lost |= !j->kids[i].running;
	/* Across hosts a rank of another host that the plan names again is
	 * started by that host's launcher, which may be gone (the host left:
	 * runtime/cluster/launch.c, host_part_over) or fail: dead, or not
	 * running in time, it ends the scale as a server of ours that ended
	 * (review: nothing else ended it, and the scale kept the checkpoint
	 * lock for the rest of the job) */
	for (uint32_t r = 0; !done && s->hdr->bridged && r < sc->to; r++) {
		uint32_t st = hpsi_node_state(s, r);
		if (!hpsi_node_local(s, r) && st != HPSI_NODE_ALIVE &&
		    (st == HPSI_NODE_DEAD || hpsi_now_ns() > sc->others_by_ns))
			lost = 2;
	}
	/* With replicas, a server that dies during the scale ends it: its
	 * backups take its ranges over by the tables as they are, which
	 * change only while every replica of a range runs (recover.c,
	 * find_room); what moved stays moved. */
	int died = 0;
	for (uint32_t r = 0; s->hdr->replicas && !done && r < (sc->from > sc->to ? sc->from : sc->to); r++)
		died |= hpsi_node_state(s, r) == HPSI_NODE_DEAD;
	int late = !done && hpsi_now_ns() > sc->give_up_ns;
	if (done || lost || died || late || j->stopping) {
		if (died && !done && !j->stopping) {
			fprintf(stderr, "hps launch: hps scale: a server died during the scale; its backups serve its key ranges, and the scale ends there\n");
			sc->to = sc->from; /* servers_want: new ranks that hold nothing leave */
			plan_is_tables(s, sc);
			sc->ending = 1; /* ends once the copies under way ended */
			return 0;
		}
		else if (!done && lost == 2) {
			sc->to = sc->from; /* servers_want: new ranks that hold nothing leave */
			fprintf(stderr, "hps launch: hps scale: a server of another host the plan names did not run in time "
					"(its host left, or its start failed); the key ranges not moved yet stay "
					"where they are\n");
		} else if (!done && !lost && late) {
			sc->to = sc->from; /* servers_want: new ranks that hold nothing leave */
			fprintf(stderr, "hps launch: hps scale: the key ranges did not all move within HPS_TIMEOUT_MS; "
					"those not moved yet stay where they are\n");
			/* as after a death: the copies under way end first, so
			 * that the next scale or a checkpoint does not start
			 * during one, nor a copy that ends after move a range
			 * away from the plan (review) */
			plan_is_tables(s, sc);
			sc->ending = 1;
			return 0;
		} else if (!done)
			fprintf(stderr, "hps launch: hps scale: a server it started ended; the key ranges stay where they are\n");
		end_server_scale(j, sc);
	}
	return 0;
}

/* Across hosts, on a host that is not the last (whose launcher serves
 * hps scale): a scale back up after a scale down names again ranks an
 * earlier scale closed, some of them this host's. The plan reaches this
 * host through its bridge (net/bridge_scale.c), which bumps moves_seq;
 * each new plan marks the local ranks it names (below servers_want, so
 * that they do not leave at once) as due, and this launcher starts a due
 * rank again once it is CLOSED and its process is gone; a due rank that
 * runs, died, or that a later plan no longer names is no longer due. Only
 * a new plan starts anything: the servers that close at the job's end
 * stay closed. The new process claims the rank from CLOSED with a newer
 * incarnation (runtime/client/ctx.c), which the scheduler and the other
 * hosts take as the way back to ALIVE; the sources copy to it once it is
 * ALIVE on their host. Returns the servers started. */
struct restarts {
	uint32_t plan_seen; /* the moves_seq of the last plan looked at */
	unsigned char due[HPSI_MAX_NODES];
	unsigned char failed[HPSI_MAX_NODES]; /* a start that failed is not tried again */
};

static int restart_closed_servers(struct job *j, struct restarts *rs, const char *self, char **srv_argv,
				  const struct hpsi_config *cfg)
{
	struct hpsi_seg *s = &j->seg;
	const struct hpsi_seg_hdr *h = s->hdr;
	if (j->stopping || !h->bridged || !hpsi_seg_room(s) || h->srv_hi == h->nservers)
		return 0;
	/* acquire pairs with the bridge's release of moves_seq: the plan and
	 * servers_want it stored before are read after */
	uint32_t seq = atomic_load_explicit(&h->moves_seq, memory_order_acquire);
	uint32_t want = atomic_load_explicit(&h->servers_want, memory_order_relaxed);
	int fresh = seq != rs->plan_seen;
	rs->plan_seen = seq;
	int started = 0;
	for (uint32_t r = h->srv_lo; r < h->srv_hi && j->n < MAX_KIDS; r++) {
		int named = 0, running = 0;
		for (uint32_t k = 0; k < h->nservers; k++)
			named |= hpsi_range_want(s, k) == r || (h->replicas && hpsi_backup_want(s, k, 1) == r);
		if (fresh)
			rs->due[r] = named && r < want && !rs->failed[r];
		if (!rs->due[r])
			continue;
		uint32_t st = hpsi_node_state(s, r);
		for (int i = 0; i < j->n; i++)
			running |= j->kids[i].running && j->kids[i].role == HPS_ROLE_SERVER && j->kids[i].rank == (int)r;
		if (!named || st != HPSI_NODE_CLOSED) {
			rs->due[r] = 0; /* it runs, or died, or a later plan leaves it */
			continue;
		}
		if (running) /* closed, its process still going */
			continue;
		rs->due[r] = 0;
		struct child *c = &j->kids[j->n];
		*c = (struct child){.out.fd = -1, .role = HPS_ROLE_SERVER, .rank = (int)r};
		if (spawn(c, srv_argv, self, cfg) != 0) {
			/* its ranges stay where they are: hps scale says so when it
			 * times out (HPS_TIMEOUT_MS) */
			rs->failed[r] = 1;
			fprintf(stderr, "hps launch: cannot start server %u again for hps scale: %s\n", r, strerror(errno));
			continue;
		}
		j->n++;
		started++;
		fprintf(stderr, "hps launch: hps scale: server %u starts again (pid %d): key ranges move to it\n", r,
			(int)c->pid);
	}
	return started;
}

static int serve_scale(struct job *j, struct scaling *sc, const char *self, char **argv, char **srv_argv,
		       const struct hpsi_config *cfg, int *servers_started)
{
	struct hpsi_seg_hdr *h = j->seg.hdr;
	int started = 0;
	if (!sc->servers)
		keep_moved_entries(&j->seg); /* (a move that ends after its scale) */
	if (sc->servers) {
		*servers_started = serve_scale_servers(j, sc, 0, self, srv_argv, cfg);
		return 0;
	}
	if (!sc->n) {
		/* acquire: pairs with the command's CAS from 0 */
		uint32_t want = atomic_load_explicit(&h->scale_req, memory_order_acquire);
		if (!want)
			return 0;
		if (want & HPSI_SCALE_SERVERS) {
			*servers_started = serve_scale_servers(j, sc, want & ~HPSI_SCALE_SERVERS, self, srv_argv, cfg);
			return 0;
		}
		uint32_t now = hpsi_workers_current(&j->seg);
		sc->first = j->n;
		for (uint32_t k = now; !j->stopping && k < want && j->n < MAX_KIDS; k++) {
			struct child *c = &j->kids[j->n];
			*c = (struct child){.out.fd = -1, .role = HPS_ROLE_WORKER, .rank = -1, .join = 1};
			if (spawn(c, argv, self, cfg) != 0) {
				fprintf(stderr, "hps launch: cannot start a worker for hps scale: %s\n", strerror(errno));
				break;
			}
			j->n++;
			started++;
		}
		sc->n = j->n - sc->first;
		if (started)
			fprintf(stderr, "hps launch: hps scale: started %d more worker%s (%u to %u)\n", started,
				started == 1 ? "" : "s", now, now + (uint32_t)started);
	}
	int pending = 0;
	for (int i = sc->first; i < sc->first + sc->n; i++) {
		struct child *c = &j->kids[i];
		if (c->rank < 0 && (c->rank = hpsi_worker_slot_of(&j->seg, c->pid)) >= 0) {
			snprintf(c->out.tag, sizeof c->out.tag, "[worker %d] ", c->rank);
			hpsi_info("the joining worker of pid %d took rank %d", (int)c->pid, c->rank);
		}
		pending += c->rank < 0 && c->running;
	}
	if (!pending) {
		sc->n = 0;
		atomic_store_explicit(&h->scale_req, 0, memory_order_release); /* the next scale may run */
	}
	return started;
}

/* Workers that joined by hand (HPS_JOIN=1, not this launcher's children)
 * and still run: the job goes on for them. */
static int joiners_running(struct job *j)
{
	const struct hpsi_seg_hdr *h = j->seg.hdr;
	for (uint32_t w = h->launched_workers; w < h->nworkers; w++) {
		if (!hpsi_node_local(&j->seg, hpsi_worker_node(&j->seg, w)))
			continue; /* another host's (its bridge's pid) */
		uint32_t st = hpsi_node_check(&j->seg, hpsi_worker_node(&j->seg, w));
		if (st == HPSI_NODE_ALIVE || st == HPSI_NODE_EMPTY)
			return 1;
	}
	return 0;
}

/* Across hosts: some worker of the whole job still runs, as this host's
 * segment tells (the bridge stores other hosts' CLOSED and DEAD there,
 * acquire: pairs with its release; a free rank nobody took is VACANT). */
static int job_workers_running(struct job *j)
{
	const struct hpsi_seg_hdr *h = j->seg.hdr;
	for (uint32_t w = 0; w < h->nworkers; w++) {
		uint32_t st = hpsi_node_state(&j->seg, hpsi_worker_node(&j->seg, w));
		if (st != HPSI_NODE_CLOSED && st != HPSI_NODE_DEAD && st != HPSI_NODE_VACANT)
			return 1;
	}
	return 0;
}

/* Across hosts: this host holds the job's free ranks, the last host's
 * (--max-workers, or --max-servers of a job whose ranges move): its
 * launcher starts what hps scale asks for. */
static int holds_room(struct job *j, int multi)
{
	const struct hpsi_seg_hdr *h = j->seg.hdr;
	return multi && (h->wrk_hi > h->launched_workers || (hpsi_seg_room(&j->seg) && h->srv_hi == h->nservers));
}

/* Across hosts: whether this host's part is over once its processes
 * ended (docs/ARCHITECTURE.md, "Hosts that leave"). A host leaves
 * then: its servers closed only after their key ranges served
 * elsewhere, so nothing of the job is on it any more. Not the host of
 * the free ranks while the job runs: hps scale still needs its
 * launcher (said once). */
static int host_part_over(struct job *j, int multi, const char *host, int *said)
{
	if (!holds_room(j, multi) || !job_workers_running(j))
		return 1;
	if (!*said)
		hpsi_info("host %s holds the job's free ranks (--max-workers, --max-servers): it stays in the job until every worker of the job ended, for hps scale",
			  host);
	*said = 1;
	return 0;
}

#define HOLDER_END_NS 2000000000ll /* for the process that held a dead child's rank to end */

/* A node's child died (not cleanly): what is left of its process group
 * goes too. The child may be a wrapper (a script) whose own child joined
 * as the rank: it would live on, marked dead, beside a restart or a
 * replacement of the rank. The group is the child's pid (exec_child's
 * setpgid); the child was reaped just before, with nothing spawned since,
 * and a pid is not given again while a group of that number has members.
 * Waits (polling, bounded) until the process the node names has ended;
 * returns 0 then, else 1 with the reason printed: it left the group, and
 * the rank is neither restarted nor replaced (hps_init would refuse it). */
static int end_group(struct job *j, const struct child *c, uint32_t node)
{
	kill(-c->pid, SIGKILL); /* (ESRCH: nothing left of the group) */
	struct hpsi_node *n = hpsi_seg_node(&j->seg, node);
	/* acquire pairs with hps_init's release of its claim, after its pid
	 * and birth (a rank nobody claimed since names the last holder) */
	(void)atomic_load_explicit(&n->state, memory_order_acquire);
	pid_t holder = atomic_load_explicit(&n->pid, memory_order_relaxed);
	uint64_t birth = atomic_load_explicit(&n->birth, memory_order_relaxed);
	int64_t end = hpsi_now_ns() + HOLDER_END_NS;
	while (holder != c->pid && hpsi_proc_alive(holder, birth) && hpsi_now_ns() < end)
		usleep(1000);
	if (holder == c->pid || !hpsi_proc_alive(holder, birth))
		return 0;
	fprintf(stderr, "hps launch: %s %d: its process (pid %d) outlived the launched one (pid %d) outside its process group; not started again\n",
		c->role == HPS_ROLE_SERVER ? "server" : "worker", c->rank, (int)holder, (int)c->pid);
	return 1;
}

/* Worker child c exited with status 0, which the launcher takes for
 * finished; but its rank may not be CLOSED: the program left by _exit,
 * or a wrapper exited 0 after its program ended otherwise. While restarts
 * are left, everyone reads such a rank (DEAD once probed) as RESTARTING,
 * and waits for it (barriers, BSP pulls) until they time out, though no
 * restart comes. The launcher closes it instead, as hps_init's exit
 * handler does for exit(0): the others go on without it. (Without
 * restarts left DEAD is final, and what waits for it fails clearly.) */
static void close_finished(struct job *j, const struct child *c, uint32_t node, long restarts_left)
{
	struct hpsi_node *n = hpsi_seg_node(&j->seg, node);
	/* acquire pairs with the state's releases; the pid and birth were
	 * stored before the claim's */
	/* across hosts the bridge may have lowered the count to the job's
	 * (restart_worker): 0 there is final too. acquire: as everyone's */
	if (!atomic_load_explicit(&j->seg.hdr->worker_restarts, memory_order_acquire))
		restarts_left = 0;
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	if (restarts_left <= 0 || (st != HPSI_NODE_ALIVE && st != HPSI_NODE_DEAD && st != HPSI_NODE_RESTARTING) ||
	    hpsi_proc_alive(atomic_load_explicit(&n->pid, memory_order_relaxed),
			    atomic_load_explicit(&n->birth, memory_order_relaxed)))
		return; /* closed, or its program still runs (a probe will judge it) */
	/* acq_rel, as every state change (struct hpsi_node); a probe may mark
	 * it DEAD meanwhile, read as RESTARTING too: closed all the same */
	while ((st == HPSI_NODE_ALIVE || st == HPSI_NODE_DEAD || st == HPSI_NODE_RESTARTING) &&
	       !atomic_compare_exchange_weak_explicit(&n->state, &st, HPSI_NODE_CLOSED, memory_order_acq_rel,
						      memory_order_acquire))
		;
	hpsi_members_changed(&j->seg); /* the membership epoch moves; wakes all */
	fprintf(stderr, "hps launch: worker %d exited with status 0 without closing its rank (no hps_finalize): taken as finished, the others go on without it\n",
		c->rank);
}

/* --restart-workers: starts dead worker c again with its rank; 1 if it
 * did. The node goes from DEAD to RESTARTING (release) before the count
 * left drops (release): whoever reads the count first and then the state
 * (hpsi_worker_state) never takes a worker that comes back for one that
 * does not. The new process claims ALIVE over RESTARTING (hps_init). A
 * worker that closed before it died, or a death while the job stops, is
 * not restarted; nor once the count is spent: then the count is 0 and a
 * death is final, as without the option. */
static int restart_worker(struct job *j, const struct child *c, uint32_t node, long *left, const char *self,
			  char **argv, const struct hpsi_config *cfg)
{
	struct hpsi_node *n = hpsi_seg_node(&j->seg, node);
	uint32_t st = HPSI_NODE_DEAD;
	if (j->stopping || *left <= 0 || j->n >= MAX_KIDS)
		return 0;
	if (!atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_RESTARTING, memory_order_acq_rel,
						     memory_order_acquire) &&
	    st != HPSI_NODE_RESTARTING) /* a restart that died before it joined */
		return 0;
	/* Across hosts the bridge lowers the count to the job's restarts
	 * left (the scheduler's budget, net/bridge_sched.c): one decrement by
	 * compare-and-swap, release as before, and none once it is 0; the
	 * node is then DEAD again, final (nobody acted on RESTARTING as on a
	 * death, so nobody is contradicted). */
	_Atomic uint32_t *count = &j->seg.hdr->worker_restarts;
	uint32_t cur = atomic_load_explicit(count, memory_order_relaxed);
	while (cur && !atomic_compare_exchange_weak_explicit(count, &cur, cur - 1, memory_order_release,
							     memory_order_relaxed))
		;
	if (!cur) {
		st = HPSI_NODE_RESTARTING;
		atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_DEAD, memory_order_acq_rel,
							memory_order_acquire);
		fprintf(stderr, "hps launch: worker %d is not restarted: the job's --restart-workers budget is spent\n",
			c->rank);
		*left = 0;
		hpsi_wake_all(&j->seg);
		return 0;
	}
	*left = cur - 1;
	struct child *r = &j->kids[j->n];
	*r = (struct child){.out.fd = -1, .role = HPS_ROLE_WORKER, .rank = c->rank,
			    .restart = (int)(restart_workers - *left)};
	if (spawn(r, argv, self, cfg) != 0) {
		fprintf(stderr, "hps launch: cannot restart worker %d: %s\n", c->rank, strerror(errno));
		*left = 0;
		atomic_store_explicit(&j->seg.hdr->worker_restarts, 0, memory_order_release);
		hpsi_node_mark_dead(&j->seg, node);
		return 0;
	}
	j->n++;
	fprintf(stderr, "hps launch: restarted worker %d (pid %d, restart %d; %ld more allowed): it resumes from its clock\n",
		c->rank, (int)r->pid, r->restart, *left);
	hpsi_wake_all(&j->seg);
	return 1;
}

/* --summary: the job's counters, printed before its segment goes. */
static void print_summary(const struct hpsi_seg *seg, int64_t started)
{
	struct hpsi_job_stats *st = malloc(sizeof *st);
	if (!st || !seg->hdr) {
		free(st);
		return;
	}
	hpsi_jobstats_read(seg, st);
	fflush(stdout);
	hpsi_jobstats_summary(stdout, st, (double)(hpsi_now_ns() - started) / 1e9);
	fflush(stdout);
	free(st);
}

int hpsi_cmd_launch(int argc, char **argv)
{
	int self_serve = 0, keep_going = 0, prog = 0;
	int rc = parse_args(argc, argv, &self_serve, &keep_going, &prog);
	if (rc) {
		if (rc == -1)
			fprintf(stderr, "hps launch: no program given (hps launch [options] -- PROGRAM ARGS...)\n");
		return 2;
	}
	hpsi_log_identity("launcher", -1, hpsi_setting("HOST")); /* --host may have named it */
	/* Across hosts the scheduler's HPS_MAX_WORKERS makes the room, the
	 * last host's (net/bridge_join.c); a tracker's scheduler is not ours */
	if (hpsi_setting("MAX_WORKERS") && tracker) {
		fprintf(stderr, "hps launch: --max-workers works within one host or with --hosts, not with --tracker\n");
		return 2;
	}
	/* Across hosts the scheduler's HPS_MAX_SERVERS makes the room of
	 * servers, the last host's (docs/ARCHITECTURE.md, "Elastic servers
	 * across hosts"); a tracker's scheduler is not ours. A replicated
	 * job with room launches across hosts; hps scale refuses to move
	 * its ranges there (runtime/cluster/scale.c) */
	if (hpsi_setting("MAX_SERVERS") && tracker) {
		fprintf(stderr, "hps launch: --max-servers works within one host or with --hosts, not with --tracker\n");
		return 2;
	}
	/* Across hosts only under --hosts (which passes the option to every
	 * host's launcher, and sets HPS_RESTART_WORKERS, which the scheduler
	 * and the bridges read as the job's budget). With --tracker or a
	 * hand-started HPS_ROOT_URI job the scheduler would not know it. */
	if (restart_workers &&
	    (tracker || (hpsi_setting("ROOT_URI") && !hosts_file && !hpsi_setting("RESTART_WORKERS")))) {
		fprintf(stderr, "hps launch: --restart-workers works within one host or with --hosts, not with --tracker or HPS_ROOT_URI\n");
		return 2;
	}
	if (restart_workers) {
		char num[24];
		snprintf(num, sizeof num, "%ld", restart_workers);
		setenv("HPS_RESTART_WORKERS", num, 1);
	}
	if (tracker && (rc = tracker_role()))
		return rc < 0 ? hpsi_cmd_scheduler(1, argv) : rc;
	struct hpsi_lobby lobby = {.fd = -1};
	int grouped = 0;
	if (!hosts_file && hpsi_setting("ROOT_URI")) { /* one host group per machine */
		struct sigaction sa = {.sa_handler = on_signal};
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
		if ((rc = hpsi_launch_group(tracker, &got_signal, &lobby)) >= 0)
			return rc;
		grouped = 1;
	}
	if (!hpsi_setting("JOB_ID")) {
		char id[32];
		snprintf(id, sizeof id, "hps%d", (int)getpid());
		setenv("HPS_JOB_ID", id, 1);
	}
	if (hosts_file)
		return hpsi_launch_hosts(hosts_file, argc, argv, prog);
	rc = launch_here(self_serve, keep_going, argv, prog);
	if (grouped)
		hpsi_lobby_finish(&lobby, rc);
	return rc;
}

/* The job's processes of this host (and its bridge, multi-host). */
static int launch_here(int self_serve, int keep_going, char **argv, int prog)
{
	int rc;
	struct hpsi_config cfg;
	if (hpsi_launch_check_settings(&cfg, self_serve, 1)) /* before anything starts */
		return 2;
	/* A dead server of a job with room is not replaced (with --replicas 1
	 * its backups take its ranges over, and nothing copies them back: a
	 * replacement's copy is not built there, recover.c). Refused, not
	 * ignored. */
	if (restart_servers >= 0 && cfg.max_servers > cfg.nservers) {
		fprintf(stderr, "hps launch: --restart-servers with --max-servers: a dead server of a job whose key ranges move is not replaced (that needs --replicas); run it without one of them\n");
		return 2;
	}
	hpsi_log_identity("launcher", -1, cfg.host);
	struct hpsi_seg_params sp;
	hpsi_config_seg_params(&cfg, &sp);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Multi-host (HPS_ROOT_URI set): this host's bridge registers with the
	 * scheduler and builds the segment; the ranks to start come from it. */
	int multi = hpsi_setting("ROOT_URI") != NULL;
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	self[sl > 0 ? sl : 0] = 0;
	find_server_prog(self);
	struct job j = {.n = 0};
	int64_t started = hpsi_now_ns();
	j.kids = calloc(MAX_KIDS, sizeof *j.kids);
	int failed = 0, code = 0;
	struct child *bridge = NULL;
	if (multi) {
		bridge = &j.kids[j.n++];
		bridge->out.fd = -1;
		bridge->role = ROLE_BRIDGE;
		if (spawn(bridge, NULL, self, &cfg) != 0) {
			fprintf(stderr, "hps launch: cannot start the bridge: %s\n", strerror(errno));
			free(j.kids);
			return 1;
		}
		if ((rc = wait_for_bridge(&j, bridge, &cfg))) {
			free(j.kids);
			return rc;
		}
	} else if ((rc = hpsi_seg_create(&sp, &j.seg))) {
		fprintf(stderr, "hps launch: %s\n", hps_strerror(rc));
		free(j.kids);
		return 1;
	} else { /* its name for `hps checkpoint --job` (a host's part of a bigger job says nothing) */
		fprintf(stderr, "hps: job %s on host %s: %u server%s, %u worker%s\n", cfg.job, cfg.host, cfg.nservers,
			cfg.nservers == 1 ? "" : "s", cfg.nworkers, cfg.nworkers == 1 ? "" : "s");
	}
	if (got_signal) { /* arrived while the segment was being made */
		if (bridge)
			kill(-bridge->pid, SIGTERM);
		hpsi_seg_unlink(&j.seg);
		return 128 + got_signal;
	}
	const struct hpsi_seg_hdr *hdr = j.seg.hdr;
	/* relaxed: no process of the job runs yet; starting them orders this
	 * before everything they do */
	atomic_store_explicit(&j.seg.hdr->worker_restarts, (uint32_t)restart_workers, memory_order_relaxed);
	long worker_restarts_left = restart_workers;
	int first = j.n;
	/* across hosts the last host's servers end with the free ranks */
	uint32_t srv_end = hdr->srv_hi < hdr->launched_servers ? hdr->srv_hi : hdr->launched_servers;
	for (uint32_t r = hdr->srv_lo; r < srv_end; r++)
		j.kids[j.n++] = (struct child){.out.fd = -1, .role = HPS_ROLE_SERVER, .rank = (int)r};
	/* across hosts the last host's range ends with the free ranks */
	uint32_t wrk_end = hdr->wrk_hi < hdr->launched_workers ? hdr->wrk_hi : hdr->launched_workers;
	for (uint32_t r = hdr->wrk_lo; r < wrk_end; r++)
		j.kids[j.n++] = (struct child){.out.fd = -1, .role = HPS_ROLE_WORKER, .rank = (int)r};
	for (int i = first; i < j.n && !failed; i++) {
		struct child *c = &j.kids[i];
		char **cmd = c->role == HPS_ROLE_WORKER || self_serve ? argv + prog : NULL;
		if (spawn(c, cmd, self, &cfg) != 0) {
			fprintf(stderr, "hps launch: cannot start a process: %s\n", strerror(errno));
			failed = 1, code = 1;
		}
	}
	if (failed)
		stop_job(&j);

	int workers_left = (int)(wrk_end - hdr->wrk_lo), nodes_left = j.n - first;
	/* across hosts too (their copies cross the bridges:
	 * net/bridge_recover.c), each host's launcher counting its own; there
	 * only when asked: a replacement copies whole key ranges across the
	 * network, which a job across hosts asks for; a job with room: not
	 * replaced, see --restart-servers above */
	long restarts_left = !hdr->replicas || hpsi_seg_room(&j.seg) ? 0
			     : restart_servers >= 0 ? restart_servers
			     : hdr->bridged ? 0
					    : 2 * (long)(hdr->srv_hi - hdr->srv_lo);
	if (restarts_left > MAX_RESTARTS)
		restarts_left = MAX_RESTARTS;
	int64_t drain_until = INT64_MAX; /* output of exited children's leftovers */
	struct scaling scaling = {0};
	static struct restarts restarts; /* (zero: no plan looked at yet) */
	int room_said = 0; /* host_part_over said why this host stays */
	for (;;) {
		if ((!multi && (hdr->launched_workers < hdr->nworkers || hpsi_seg_room(&j.seg))) ||
		    (multi && (hdr->wrk_hi > hdr->launched_workers ||
			       (hpsi_seg_room(&j.seg) && hdr->srv_hi == hdr->nservers)))) { /* across hosts: the host with the room */
			int servers = 0;
			int more = serve_scale(&j, &scaling, self, argv + prog, self_serve ? argv + prog : NULL, &cfg, &servers);
			workers_left += more, nodes_left += more + servers;
		}
		if (multi)
			nodes_left += restart_closed_servers(&j, &restarts, self, self_serve ? argv + prog : NULL, &cfg);
		struct pollfd pf[MAX_KIDS];
		int np = 0, map[MAX_KIDS], running = 0;
		for (int i = 0; i < j.n; i++) {
			running += j.kids[i].running;
			if (j.kids[i].out.fd >= 0) {
				pf[np] = (struct pollfd){.fd = j.kids[i].out.fd, .events = POLLIN};
				map[np++] = i;
			}
		}
		if (!running && (np == 0 || hpsi_now_ns() > drain_until))
			break;
		if (!running && drain_until == INT64_MAX)
			drain_until = hpsi_now_ns() + 1000000000;
		if (poll(pf, (nfds_t)np, 50) > 0)
			for (int k = 0; k < np; k++)
				if (pf[k].revents)
					hpsi_outpipe_pump(&j.kids[map[k]].out);
		if (got_signal && !j.stopping) {
			fprintf(stderr, "hps launch: got signal %d, stopping the job\n", (int)got_signal);
			code = 128 + got_signal;
			stop_job(&j);
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (int i = 0; i < j.n; i++) {
				struct child *c = &j.kids[i];
				if (c->pid != pid || !c->running)
					continue;
				c->running = 0;
				c->status = status;
				int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
				if (c->role == ROLE_BRIDGE) {
					if (nodes_left && !j.stopping) { /* it left while it was needed */
						describe(c);
						if (!code)
							code = ok ? 1 : exit_code(status);
						/* with replicas the other hosts count this one lost and
						 * take its key ranges over after HPS_DEAD_MS: its servers
						 * must not serve them meanwhile, not even for a grace */
						if (j.seg.hdr->replicas)
							kill_nodes_now(&j);
						stop_job(&j);
					}
					continue;
				}
				nodes_left--;
				if (c->join && c->rank < 0) /* ended before or as it took its rank */
					c->rank = hpsi_worker_slot_of(&j.seg, c->pid);
				if (c->join && c->rank < 0) {
					workers_left--;
					if (!ok)
						describe(c);
					continue;
				}
				uint32_t node = c->role == HPS_ROLE_SERVER ? (uint32_t)c->rank
									   : hpsi_worker_node(&j.seg, (uint32_t)c->rank);
				const char *role = c->role == HPS_ROLE_SERVER ? "server" : "worker";
				if (ok)
					hpsi_info("%s %d (pid %d) exited with status 0", role, c->rank, (int)c->pid);
				else
					hpsi_info("%s %d (pid %d) %s %d: marked dead, so that what waits only for it fails", role,
						  c->rank, (int)c->pid, WIFEXITED(status) ? "exited with status" : "killed by signal",
						  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
				if (ok && c->role == HPS_ROLE_WORKER)
					close_finished(&j, c, node, worker_restarts_left);
				/* what is left of it ends before anyone takes its rank */
				int outlived = !ok && end_group(&j, c, node);
				if (!ok)
					hpsi_node_mark_dead(&j.seg, node);
				/* a worker a scale started (c->join) once it took its rank
				 * is restarted like a launched one: with that rank */
				if (!ok && !outlived && c->role == HPS_ROLE_WORKER &&
				    restart_worker(&j, c, node, &worker_restarts_left, self, argv + prog, &cfg)) {
					nodes_left++;
					continue;
				}
				if (c->role == HPS_ROLE_WORKER)
					workers_left--;
				if (!ok && c->role == HPS_ROLE_SERVER && every_range_served(&j)) {
					describe(c);
					fprintf(stderr, "hps launch: its key ranges are served by their backups (HPS_REPLICAS=%u); the job goes on\n",
						j.seg.hdr->replicas);
					if (!j.stopping && !outlived && restarts_left > 0 && j.n < MAX_KIDS) {
						struct child *r = &j.kids[j.n];
						*r = (struct child){.out.fd = -1, .role = HPS_ROLE_SERVER, .rank = c->rank};
						if (spawn(r, self_serve ? argv + prog : NULL, self, &cfg) == 0) {
							j.n++;
							nodes_left++;
							restarts_left--;
							fprintf(stderr, "hps launch: started a replacement for server %d (pid %d; %ld more allowed): it copies its key ranges, then serves\n",
								c->rank, (int)r->pid, restarts_left);
						}
					}
					continue;
				}
				if (node_exit_fails_job(&j, status, code)) {
					describe(c);
					if (!code)
						code = exit_code(status);
					if (!keep_going || c->role == HPS_ROLE_SERVER)
						stop_job(&j);
					else
						hpsi_info("--keep-going: the other workers go on");
				}
			}
		}
		/* Every worker is done: servers end once they see it. With other
		 * hosts, this host's servers still serve theirs: they end when the
		 * bridge reports every worker of the job finished. */
		if (workers_left == 0 && !multi && !j.stopping && !joiners_running(&j)) {
			hpsi_info("every worker has ended: the servers are asked to finish");
			atomic_store_explicit(&j.seg.hdr->shutdown, 1, memory_order_release);
			hpsi_wake_all(&j.seg);
			j.stopping = 1;
			j.kill_at = hpsi_now_ns() + GRACE_NS * 3;
		}
		if (bridge && bridge->running && nodes_left == 0 && !bridge->stop_sent && !joiners_running(&j) &&
		    (j.stopping || host_part_over(&j, multi, cfg.host, &room_said))) {
			kill(-bridge->pid, SIGTERM); /* its host's part is over: it says goodbye */
			bridge->stop_sent = 1;
			if (!j.stopping)
				j.kill_at = hpsi_now_ns() + GRACE_NS, j.stopping = 1;
		}
		if (j.stopping && hpsi_now_ns() > j.kill_at) {
			for (int i = 0; i < j.n; i++)
				if (j.kids[i].running)
					kill(-j.kids[i].pid, SIGKILL);
			j.kill_at = INT64_MAX;
		}
	}
	if (want_summary)
		print_summary(&j.seg, started);
	hpsi_seg_unlink(&j.seg);
	hpsi_info("job %s ended with status %d; segment %s removed", cfg.job, code, j.seg.path);
	hpsi_seg_detach(&j.seg);
	free(j.kids);
	return code;
}
