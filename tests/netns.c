/* Hosts as network namespaces, and jobs on them, for the multi-host
 * suites (tests/netns.h). */
#include "tests/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/bell.h"

char pfx[16];
char self_path[4096];
char job_log[256], hostsf[256];
static int nhosts;

/* ---- the worker program --------------------------------------------------- */

static int check_sums(hps_worker *w, int nw, int rounds)
{
	static uint64_t small[SMALL_KEYS], big[BIG_KEYS];
	static float got[SMALL_KEYS];
	for (int k = 0; k < SMALL_KEYS; k++)
		small[k] = (uint64_t)k;
	for (int k = 0; k < BIG_KEYS; k++)
		big[k] = 100000 + (uint64_t)k * 3;
	float *bg = malloc(sizeof(float) * BIG_KEYS * BIG_WIDTH);
	if (hps_wait(w, hps_pull(w, small, SMALL_KEYS, got, NULL)) ||
	    hps_wait(w, hps_pull(w, big, BIG_KEYS, bg, &(hps_opts){.width = BIG_WIDTH}))) {
		fprintf(stderr, "final pull failed\n");
		return 1;
	}
	/* worker r pushed (r+1)(k%5+1) and (r+1)(j%3+1) each round */
	double wsum = nw * (nw + 1) / 2.0;
	for (int k = 0; k < SMALL_KEYS; k++)
		if (got[k] != (float)(wsum * (k % 5 + 1) * rounds)) {
			fprintf(stderr, "key %d holds %g, expected %g\n", k, got[k], wsum * (k % 5 + 1) * rounds);
			return 1;
		}
	for (int k = 0; k < BIG_KEYS * BIG_WIDTH; k++)
		if (bg[k] != (float)(wsum * (k % 3 + 1) * rounds)) {
			fprintf(stderr, "big value %d holds %g\n", k, bg[k]);
			return 1;
		}
	free(bg);
	return 0;
}

/* The end of every test worker: the barrier, the sums of `rounds` rounds
 * when nothing failed before, then the worker's resources. */
static int finish_worker(hps_ctx *ctx, hps_worker *w, float *bv, int rounds, int rc)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	if (!rc && (rc = hps_barrier(ctx)))
		fprintf(stderr, "barrier: %s\n", hps_strerror(rc));
	if (!rc)
		rc = check_sums(w, nw, rounds);
	if (!rc)
		printf("worker %d: sums ok\n", me);
	hps_free(w, bv);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

/* The round after which worker 0 creates $NETNS_TEST_MARK:
 * $NETNS_TEST_MARK_ROUND, 100 by default (a test's random moment). */
static int mark_round(void)
{
	const char *r = getenv("NETNS_TEST_MARK_ROUND");
	return r ? atoi(r) : 100;
}

/* Mode bsp (HPS_STALENESS=bsp): 600 rounds of push, hps_clock, pull of
 * the small keys, so that the fastest worker's pull is mostly held at
 * its server for the others' clocks. Each pulled value is checked
 * against the guarantee: every worker's pushes of the earlier clocks are
 * in it, and no worker's pushes of more than one clock later. Worker 0
 * creates $NETNS_TEST_MARK after round mark_round(). Then the final sums. */
static int bsp_worker(hps_ctx *ctx, hps_worker *w)
{
	enum { ROUNDS = 600 };
	int me = hps_rank(ctx), nw = hps_num_workers(ctx), rc = 0;
	static uint64_t small[SMALL_KEYS], big[BIG_KEYS];
	static float sv[SMALL_KEYS], got[SMALL_KEYS];
	for (int k = 0; k < SMALL_KEYS; k++)
		small[k] = (uint64_t)k, sv[k] = (float)((me + 1) * (k % 5 + 1));
	for (int k = 0; k < BIG_KEYS; k++)
		big[k] = 100000 + (uint64_t)k * 3;
	float *bv = hps_alloc(w, sizeof(float) * BIG_KEYS * BIG_WIDTH);
	for (int k = 0; k < BIG_KEYS * BIG_WIDTH; k++)
		bv[k] = (float)((me + 1) * (k % 3 + 1));
	double wsum = nw * (nw + 1) / 2.0;
	for (int r = 0; r < ROUNDS && !rc; r++) {
		int64_t a = hps_push(w, small, SMALL_KEYS, sv, NULL);
		int64_t b = hps_push(w, big, BIG_KEYS, bv, &(hps_opts){.width = BIG_WIDTH});
		if (hps_wait(w, a) || hps_wait(w, b) || hps_clock(w) ||
		    hps_wait(w, hps_pull(w, small, SMALL_KEYS, got, NULL))) {
			fprintf(stderr, "worker %d: a request failed in round %d\n", me, r);
			rc = 1;
		}
		/* at clock r + 1: rounds 0..r of everyone, at most round r + 1 too */
		for (int k = 0; k < SMALL_KEYS && !rc; k++) {
			double unit = wsum * (k % 5 + 1);
			if (got[k] < (float)(unit * (r + 1)) || got[k] > (float)(unit * (r + 2))) {
				fprintf(stderr, "worker %d: round %d: key %d holds %g, outside the BSP bound\n", me, r, k,
					got[k]);
				rc = 1;
			}
		}
		if (r == mark_round() && me == 0 && getenv("NETNS_TEST_MARK"))
			touch_file(getenv("NETNS_TEST_MARK"));
	}
	printf("worker %d: rounds done\n", me);
	fflush(stdout);
	return finish_worker(ctx, w, bv, ROUNDS, rc);
}

int cluster_worker(const char *mode)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	if (strcmp(mode, "bsp") == 0)
		return bsp_worker(ctx, w);
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	static uint64_t small[SMALL_KEYS], big[BIG_KEYS];
	static float sv[SMALL_KEYS];
	for (int k = 0; k < SMALL_KEYS; k++)
		small[k] = (uint64_t)k, sv[k] = (float)((me + 1) * (k % 5 + 1));
	for (int k = 0; k < BIG_KEYS; k++)
		big[k] = 100000 + (uint64_t)k * 3;
	float *bv = hps_alloc(w, sizeof(float) * BIG_KEYS * BIG_WIDTH); /* zero copy */
	for (int k = 0; k < BIG_KEYS * BIG_WIDTH; k++)
		bv[k] = (float)((me + 1) * (k % 3 + 1));
	if (strcmp(mode, "loop") == 0) {
		/* pushes and pulls until one fails: prints how long the failure took
		 * to surface after the last success */
		printf("loop started\n");
		fflush(stdout);
		int64_t last_ok = hpsi_now_ns();
		for (int i = 0;; i++) {
			int rc = hps_wait(w, hps_pushpull(w, small, SMALL_KEYS, sv, sv, NULL));
			if (rc) {
				printf("request failed: %s after %lld ms\n", hps_strerror(rc),
				       (long long)((hpsi_now_ns() - last_ok) / 1000000));
				fflush(stdout);
				_exit(3);
			}
			last_ok = hpsi_now_ns();
			for (int k = 0; k < SMALL_KEYS; k++)
				sv[k] = (float)((me + 1) * (k % 5 + 1));
			usleep(2000);
		}
	}
	if (strcmp(mode, "pipe") == 0) {
		/* many requests in flight at once, far more than tiny rings hold:
		 * bridges must hold what does not fit and lose nothing */
		enum { NP = 400, NK = 10 };
		static int64_t ts[NP];
		uint64_t k[NK];
		float one[NK], got[NK];
		for (int i = 0; i < NK; i++)
			k[i] = (uint64_t)i * 7919, one[i] = 1.0f;
		for (int i = 0; i < NP; i++)
			if ((ts[i] = hps_push(w, k, NK, one, NULL)) < 0)
				rc = 1;
		for (int i = 0; i < NP; i++)
			if (hps_wait(w, ts[i]))
				rc = 1;
		if (!rc && (rc = hps_barrier(ctx)) == 0 && (rc = hps_wait(w, hps_pull(w, k, NK, got, NULL))) == 0)
			for (int i = 0; i < NK; i++)
				if (got[i] != (float)(NP * nw)) {
					fprintf(stderr, "key %d holds %g, expected %d\n", i, got[i], NP * nw);
					rc = 1;
				}
		if (!rc)
			printf("worker %d: sums ok\n", me);
		hps_free(w, bv);
		hps_worker_close(w);
		hps_finalize(ctx);
		return rc ? 1 : 0;
	}
	/* long=FILE: as long, then each worker waits for FILE before its
	 * barrier, so the job runs until the test is done with it (bounded) */
	const char *hold = strncmp(mode, "long=", 5) == 0 ? mode + 5 : NULL;
	int busy = strcmp(mode, "busy") == 0; /* back to back: requests always in flight */
	int rounds = busy ? 1000 : hold || strcmp(mode, "long") == 0 ? 60 : 4;
	if (me == 0) {
		printf("sums started\n");
		fflush(stdout);
	}
	for (int r = 0; r < rounds && !rc; r++) {
		int64_t a = hps_push(w, small, SMALL_KEYS, sv, NULL);
		int64_t b = hps_push(w, big, BIG_KEYS, bv, &(hps_opts){.width = BIG_WIDTH});
		if (hps_wait(w, a) || hps_wait(w, b)) {
			fprintf(stderr, "push failed in round %d\n", r);
			rc = 1;
		}
		if (rounds > 4 && !busy)
			usleep(20000);
		/* NETNS_TEST_PACE_US: busy rounds that last while a test does
		 * something slow in the middle of them (a replacement's copy).
		 * The tests' HPS_RSH (`ip netns exec`) runs each host's command
		 * as a child of hps launch, so every host inherits it (as
		 * NETNS_TEST_MARK); a --hosts test that relies on the pace still
		 * names it with --env, which a real remote shell would need */
		if (busy && getenv("NETNS_TEST_PACE_US"))
			usleep((useconds_t)atoi(getenv("NETNS_TEST_PACE_US")));
		/* the pushes run: a test waiting to kill a server may now */
		if (busy && r == mark_round() && me == 0 && getenv("NETNS_TEST_MARK")) {
			const char *mark = getenv("NETNS_TEST_MARK");
			touch_file(mark);
			/* NETNS_TEST_HOLD: until the test removed it (what it
			 * does meanwhile happens in the middle of the rounds) */
			for (int t = 0; getenv("NETNS_TEST_HOLD") && t < 20000 && access(mark, F_OK) == 0; t++)
				usleep(1000);
		}
	}
	if (busy) {
		printf("worker %d: rounds done\n", me); /* a test that kills a server sees it came after */
		fflush(stdout);
	}
	for (int t = 0; hold && access(hold, F_OK) != 0 && t < 6000; t++)
		usleep(10000);
	return finish_worker(ctx, w, bv, rounds, rc);
}
/* ---- namespaces ---------------------------------------------------------- */

int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* Every run of these tests on one machine uses the same subnet (NET) on a
 * bridge of the root namespace, so two runs at once (a suite and CI, two
 * builds) would route each other's traffic. A case holds this lock from
 * ns_up to ns_down; the kernel drops it when the process dies. */
static int netns_lock_fd = -1;

static void netns_lock(void)
{
	if (netns_lock_fd >= 0)
		return;
	netns_lock_fd = open("/tmp/hps-netns-tests.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (netns_lock_fd >= 0 && flock(netns_lock_fd, LOCK_EX | LOCK_NB) != 0) {
		printf("\n  waiting for another run's network namespaces (/tmp/hps-netns-tests.lock)\n");
		fflush(stdout);
		flock(netns_lock_fd, LOCK_EX);
	}
}

static void netns_unlock(void)
{
	if (netns_lock_fd >= 0)
		close(netns_lock_fd);
	netns_lock_fd = -1;
}

static void remove_hosts(void)
{
	for (int i = 0; i < nhosts; i++) {
		sh("ip netns pids %s%d 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns del %s%d 2>/dev/null", pfx, i,
		   pfx, i);
		/* a namespace goes once its last process is gone: its veth with it */
		for (int t = 0; t < 100 && sh("ip link show %sv%d >/dev/null 2>&1", pfx, i) == 0; t++) {
			sh("ip link del %sv%d 2>/dev/null", pfx, i);
			usleep(20000);
		}
	}
	if (nhosts)
		sh("ip link del %sbr 2>/dev/null", pfx);
	nhosts = 0;
}

void ns_down(void)
{
	remove_hosts();
	netns_unlock();
}

void ns_on_fatal(int sig)
{
	/* the shells of ns_down inherit these: `timeout` signals the whole
	 * process group right after this process, which must not cut them off */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	ns_down();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* n hosts PFX0..: 10.78.0.(i+1) and fd78::(i+1); the root namespace is .254 */
int ns_up(int n)
{
	netns_lock();
	remove_hosts();
	if (sh("ip link add %sbr type bridge 2>/dev/null && ip link set %sbr up && ip addr add " NET ".254/24 dev %sbr",
	       pfx, pfx, pfx))
		return -1;
	nhosts = n;
	for (int i = 0; i < n; i++)
		if (sh("ip netns add %s%d && ip link add %sv%d type veth peer name eth0 netns %s%d && "
		       "ip link set %sv%d master %sbr up && "
		       "ip netns exec %s%d ip addr add " NET ".%d/24 dev eth0 && "
		       "ip netns exec %s%d ip -6 addr add " NET6 "%d/64 dev eth0 nodad && "
		       "ip netns exec %s%d ip link set eth0 up && ip netns exec %s%d ip link set lo up",
		       pfx, i, pfx, i, pfx, i, pfx, i, pfx, pfx, i, i + 1, pfx, i, i + 1, pfx, i, pfx, i))
			return -1;
	return 0;
}

/* ---- running jobs -------------------------------------------------------- */

static char out[1 << 18];

/* Runs a shell command in the background with output to a file. */
pid_t start(const char *log, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	/* the child truncates the log: until it runs, a wait_log of the
	 * caller would still read the last job's lines */
	if (strcmp(log, "/dev/null") != 0)
		unlink(log);
	return spawn_logged(log, "/bin/sh", cmd);
}

const char *slurp(const char *log)
{
	return slurp_into(log, out, sizeof out);
}

int on_host(int h, char *out, size_t cap, const char *cmd)
{
	char log[300];
	snprintf(log, sizeof log, "%s.cmd", job_log);
	pid_t p = start(log, "ip netns exec %s%d %s", pfx, h, cmd);
	int rc = finish(p, 120000);
	snprintf(out, cap, "%s", slurp(log));
	unlink(log);
	return rc;
}

int log_has(const char *log, const char *text)
{
	return strstr(slurp(log), text) != NULL;
}

int wait_log(const char *log, const char *text, int ms)
{
	for (int t = 0; t < ms; t += 20) {
		if (log_has(log, text))
			return 1;
		usleep(20000);
	}
	return 0;
}

int finish(pid_t pid, int ms)
{
	return finish_group(pid, ms);
}


/* The first lines of a failed job's log that tell why (an error, a
 * sanitizer's report, a process that ended badly), printed after the
 * whole log: CI shows only the output's last lines. */
void failure_digest(const char *o)
{
	static const char *const signs[] = {" error: ", "Sanitizer", "runtime error", " with status ", "by signal",
					    "failed in round", "request failed", ", expected ", "big value", "pull failed", "barrier: ",
					    "dropped a copy of key range"};
	int shown = 0;
	fprintf(stderr, "[first lines of the job log that tell why it failed]\n");
	for (const char *line = o; *line && shown < 12;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		for (size_t i = 0; !memmem(line, len, " info: ", 7) && i < sizeof signs / sizeof *signs; i++)
			if (memmem(line, len, signs[i], strlen(signs[i]))) {
				fprintf(stderr, "[%.*s]\n", (int)len, line);
				shown++;
				break;
			}
		line += len + (end != NULL);
	}
}

/* Waits for a job started with start(); asserts it ended well and returns
 * how many workers printed "sums ok" (the whole log is shown on failure). */
int job_sums(pid_t p, int ms)
{
	int rc = finish(p, ms);
	const char *o = slurp(job_log);
	if (rc) {
		fprintf(stderr, "%s\n", o);
		failure_digest(o);
	}
	CU_ASSERT_EQUAL(rc, 0);
	int ok = 0;
	for (const char *x = o; (x = strstr(x, "sums ok")); x++)
		ok++;
	return ok;
}

void write_hosts(const char *text)
{
	FILE *f = fopen(hostsf, "w");
	fputs(text, f);
	fclose(f);
}

/* Finds the pid of `hps WHAT` run for host HOST of the job. */
pid_t find_proc(const char *what, const char *host)
{
	char cmd[512], buf[64] = "";
	snprintf(cmd, sizeof cmd,
		 "for p in /proc/[0-9]*; do if (tr '\\0' ' ' < $p/cmdline) 2>/dev/null | grep -q 'hps %s' && "
		 "(tr '\\0' '\\n' < $p/environ) 2>/dev/null | grep -qx 'HPS_HOST=%s'; then basename $p; fi; done | head -1",
		 what, host);
	FILE *f = popen(cmd, "r");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		pclose(f);
	}
	return (pid_t)atoi(buf);
}

/* A job of n hosts of one server each; host i runs workers[i] workers
 * of `mode` (tests/netns.h; worker 0, on host 0, touches *mark once the
 * pushes run). env: more settings; flags: more options of hps launch.
 * Returns the launcher's pid (it runs on host 0). */
pid_t hosts_job(const char *port, int n, const int *workers, const char *env, const char *flags,
		       const char *mode, char *mark, size_t cap)
{
	return hosts_job_servers(port, n, 1, workers, env, flags, mode, mark, cap);
}

pid_t hosts_job_servers(const char *port, int n, int servers, const int *workers, const char *env, const char *flags,
			const char *mode, char *mark, size_t cap)
{
	char hosts[512];
	size_t at = 0;
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(hosts + at, sizeof hosts - at, "%s%d %d %d " NET ".%d\n", pfx, i, servers, workers[i],
				       i + 1);
	write_hosts(hosts);
	snprintf(mark, cap, "%s.running", job_log);
	unlink(mark);
	return start(job_log,
		     "ip netns exec %s0 " ENV("%s") "HPS_RING_KB=1024 %s "
		     "NETNS_TEST_MARK=%s %s launch %s --hosts %s -- %s --cluster-worker %s",
		     pfx, port, env, mark, hps_bin(), flags, hostsf, self_path, mode);
}

/* The digest lines of a log (runtime/server/digest.c, HPS_LOG=info):
 * keys and digest of replica i of key range r, in n[r][i] and d[r][i]. */
void read_digests(const char *log, unsigned long long n[2][2], unsigned long long d[2][2])
{
	const char *o = slurp(log);
	for (const char *at = o; (at = strstr(at, ": key range ")); at++) {
		unsigned r, i;
		unsigned long long keys, dig;
		if (sscanf(at, ": key range %u (replica %u): %llu keys, digest %llx", &r, &i, &keys, &dig) == 4 &&
		    r < 2 && i < 2)
			n[r][i] = keys, d[r][i] = dig;
	}
}

/* The pid of `hps WHAT` of host i, waiting for it to start (bounded). */
pid_t proc_of(const char *what, int i)
{
	char h[32];
	snprintf(h, sizeof h, "%s%d", pfx, i);
	pid_t v = 0;
	for (int t = 0; t < 200 && (v = find_proc(what, h)) <= 0; t++)
		usleep(100000);
	return v;
}

/* Waits (bounded) until worker 0 created the mark: the pushes run. */
int wait_mark(const char *mark)
{
	for (int t = 0; t < 20000; t++) {
		if (access(mark, F_OK) == 0)
			return 1;
		usleep(1000);
	}
	return 0;
}

pid_t kill_server_at_mark(int rank, const char *mark)
{
	pid_t v = proc_of("server", rank);
	CU_ASSERT_FATAL(v > 0);
	CU_ASSERT(wait_mark(mark));
	kill(v, SIGKILL);
	unlink(mark);
	return v;
}

int netns_suite_start(const char *suite)
{
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	if (geteuid() != 0 || system("ip netns list >/dev/null 2>&1") != 0) {
		printf("%s: skipped: network namespaces need root and iproute2\n", suite);
		return 77;
	}
	snprintf(pfx, sizeof pfx, "%.2s%d", suite + 5, (int)(getpid() % 100000));
	snprintf(job_log, sizeof job_log, "/tmp/hps-%s-%d.log", suite + 5, (int)getpid());
	snprintf(hostsf, sizeof hostsf, "/tmp/hps-%s-%d.hosts", suite + 5, (int)getpid());
	signal(SIGINT, ns_on_fatal);
	signal(SIGTERM, ns_on_fatal);
	signal(SIGHUP, ns_on_fatal);
	signal(SIGABRT, ns_on_fatal);
	signal(SIGSEGV, ns_on_fatal);
	atexit(ns_down);
	return 0;
}

void netns_suite_end(void)
{
	ns_down();
	unlink(job_log);
	unlink(hostsf);
	/* the marks the suites' jobs leave beside the log (hosts_job, test_xhosts) */
	char mark[300];
	snprintf(mark, sizeof mark, "%s.running", job_log);
	unlink(mark);
	snprintf(mark, sizeof mark, "%s.go", job_log);
	unlink(mark);
}

const char *sibling_prog(const char *name)
{
	static char path[4200];
	snprintf(path, sizeof path, "%s", self_path);
	char *slash = strrchr(path, '/');
	snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0), "%s", name);
	return path;
}
