/* Hosts that leave and join a running job across hosts (issue 12: "a
 * host joins with its servers/workers; a host leaves cleanly";
 * docs/ARCHITECTURE.md, "Hosts that leave and join"). Network namespace
 * hosts (tests/netns.c). The worker program here (`--cluster-worker
 * leave`) pushes as tests/netns.c's workers do, worker r adding (r+1)
 * per round, but the worker of rank $XHOSTS_SHORT, and every worker hps
 * scale starts (HPS_JOIN=1), does 10 rounds and ends (hps_finalize, exit
 * 0) while the others pass a barrier at round 20 and go on until the
 * test creates $XHOSTS_GO, then 30 rounds more. Each worker adds its
 * rounds to key ROUNDS_KEY + r, so the others know every worker's share
 * and check exact sums after their last barrier.
 *   no_servers: host 1 of 3 runs no server and one short worker: once
 *     it ended the host leaves (the scheduler says "left", nothing
 *     died) and the others sum exactly.
 *   scaled_away: 3 hosts of one server each (--max-servers 4): host 1's
 *     worker ends, but its server serves a range, so it stays; hps scale
 *     --servers 1 moves its range away, its server closes and the host
 *     leaves; a checkpoint saves after it left; a scale back up that
 *     names its closed rank ends unmoved (nobody starts it), and a
 *     checkpoint saves after it; exact sums.
 *   last_stays: the last host holds the free ranks (--max-workers): its
 *     worker ended, yet it stays (one line says why) and a later hps
 *     scale --workers there still starts a worker.
 *   not_a_leave: a host whose bridge ends while its server serves and
 *     its worker runs did not leave: the scheduler says so in one line
 *     and counts its unfinished nodes dead (--keep-going: the other
 *     hosts' workers see their requests fail, not time out).
 *   join_later: the last host of the file is `later`; hps scale
 *     --join-host starts it, it joins the running job, takes a key range
 *     and a worker (below); each wrong --join-host refused in one line.
 *   join_later_signal: SIGUSR1 to hps launch starts the `later` host as
 *     well; hps scale --join-host then says it was started already.
 *   later_refusals: each wrong `later` in a hosts file. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/netns.h"

#define SHORT_ROUNDS 10
#define AFTER_GO 30
#define MAX_ROUNDS 6000 /* 10 ms each: a minute at most */
#define ROUNDS_KEY 200000

static int add_rounds(hps_worker *w, int me, int rounds)
{
	uint64_t k = ROUNDS_KEY + (uint64_t)me;
	float v = (float)rounds;
	return hps_wait(w, hps_push(w, &k, 1, &v, NULL));
}

/* After the barrier: every launched worker's rounds (ROUNDS_KEY + r),
 * then the sums they make. */
static int check_leave_sums(hps_worker *w, int nw)
{
	static uint64_t small[SMALL_KEYS], big[BIG_KEYS], rk[64];
	static float got[SMALL_KEYS], rounds[64];
	for (int r = 0; r < nw; r++)
		rk[r] = ROUNDS_KEY + (uint64_t)r;
	for (int k = 0; k < SMALL_KEYS; k++)
		small[k] = (uint64_t)k;
	for (int k = 0; k < BIG_KEYS; k++)
		big[k] = 100000 + (uint64_t)k * 3;
	float *bg = malloc(sizeof(float) * BIG_KEYS * BIG_WIDTH);
	if (hps_wait(w, hps_pull(w, rk, (size_t)nw, rounds, NULL)) ||
	    hps_wait(w, hps_pull(w, small, SMALL_KEYS, got, NULL)) ||
	    hps_wait(w, hps_pull(w, big, BIG_KEYS, bg, &(hps_opts){.width = BIG_WIDTH}))) {
		fprintf(stderr, "final pull failed\n");
		free(bg);
		return 1;
	}
	double unit = 0; /* sum over workers of (r+1) * rounds of r */
	for (int r = 0; r < nw; r++)
		unit += (r + 1) * (double)rounds[r];
	int rc = 0;
	for (int k = 0; k < SMALL_KEYS && !rc; k++)
		if (got[k] != (float)(unit * (k % 5 + 1))) {
			fprintf(stderr, "key %d holds %g, expected %g\n", k, got[k], unit * (k % 5 + 1));
			rc = 1;
		}
	for (int k = 0; k < BIG_KEYS * BIG_WIDTH && !rc; k++)
		if (bg[k] != (float)(unit * (k % 3 + 1))) {
			fprintf(stderr, "big value %d holds %g, expected %g\n", k, bg[k], unit * (k % 3 + 1));
			rc = 1;
		}
	free(bg);
	return rc;
}

static int leave_worker(void)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	int me = hps_rank(ctx);
	int joiner = getenv("HPS_JOIN") != NULL; /* started by hps scale --workers: SHORT_ROUNDS, then ends */
	const char *go = getenv("XHOSTS_GO");
	int nw = atoi(getenv("XHOSTS_WORKERS") ? getenv("XHOSTS_WORKERS") : "0");
	int is_short = joiner || (getenv("XHOSTS_SHORT") && atoi(getenv("XHOSTS_SHORT")) == me);
	static uint64_t small[SMALL_KEYS], big[BIG_KEYS];
	static float sv[SMALL_KEYS];
	for (int k = 0; k < SMALL_KEYS; k++)
		small[k] = (uint64_t)k, sv[k] = (float)((me + 1) * (k % 5 + 1));
	for (int k = 0; k < BIG_KEYS; k++)
		big[k] = 100000 + (uint64_t)k * 3;
	float *bv = hps_alloc(w, sizeof(float) * BIG_KEYS * BIG_WIDTH);
	for (int k = 0; k < BIG_KEYS * BIG_WIDTH; k++)
		bv[k] = (float)((me + 1) * (k % 3 + 1));
	int rounds = 0, stop_at = is_short ? SHORT_ROUNDS : MAX_ROUNDS;
	for (; rounds < stop_at && !rc; rounds++) {
		int64_t a = hps_push(w, small, SMALL_KEYS, sv, NULL);
		int64_t b = hps_push(w, big, BIG_KEYS, bv, &(hps_opts){.width = BIG_WIDTH});
		int ea = hps_wait(w, a), eb = hps_wait(w, b);
		if (ea || eb) {
			fprintf(stderr, "worker %d: push failed in round %d: %s\n", me, rounds, hps_strerror(ea ? ea : eb));
			rc = 1;
		}
		if (is_short)
			continue;
		usleep(10000);
		/* a barrier before the tests' moments: a host that joins later
		 * must open the job's second one (net/bridge_main.c, setup) */
		if (rounds == 20 && !rc && (rc = hps_barrier(ctx)))
			fprintf(stderr, "worker %d: barrier at round 20: %s\n", me, hps_strerror(rc));
		if (rounds == 30 && me == 0 && getenv("NETNS_TEST_MARK"))
			touch_file(getenv("NETNS_TEST_MARK"));
		if (stop_at == MAX_ROUNDS && go && access(go, F_OK) == 0)
			stop_at = rounds + 1 + AFTER_GO;
	}
	if (!rc && (rc = add_rounds(w, me, rounds)))
		fprintf(stderr, "worker %d: its rounds' push failed: %s\n", me, hps_strerror(rc));
	if (is_short) {
		printf("worker %d: %s%d rounds, leaves\n", me, joiner ? "joined, " : "", rounds);
		fflush(stdout);
		hps_free(w, bv);
		hps_worker_close(w);
		hps_finalize(ctx);
		return rc;
	}
	if (stop_at == MAX_ROUNDS) {
		fprintf(stderr, "worker %d: %s never came\n", me, go ? go : "XHOSTS_GO");
		rc = 1;
	}
	if (!rc && (rc = hps_barrier(ctx)))
		fprintf(stderr, "worker %d: barrier: %s\n", me, hps_strerror(rc));
	if (!rc)
		rc = check_leave_sums(w, nw);
	if (!rc)
		printf("worker %d: %d rounds, sums ok\n", me, rounds);
	hps_free(w, bv);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

static char go_file[300], mark_file[300];
#define TOKEN "0123456789abcdef0123456789abcdef"

/* A job on the namespace hosts of hosts (SERVERS WORKERS [later]; name
 * and address added here: line i is host PFXi at NET.(i+1)); short: the
 * rank of the worker that ends early; nworkers: the ranks whose rounds
 * the others read (joiners' slots too); env: settings beside ENV's. The
 * job's token is TOKEN.
 * Returns the launcher's pid. */
static pid_t leave_job(const char *port, const char *const *lines, int n, int nworkers, int short_rank,
		       const char *flags, const char *env)
{
	char hosts[512];
	size_t at = 0;
	for (int i = 0; i < n; i++)
		at += (size_t)snprintf(hosts + at, sizeof hosts - at, "%s%d %.3s " NET ".%d%s\n", pfx, i, lines[i], i + 1,
				       strstr(lines[i], "later") ? " later" : "");
	write_hosts(hosts);
	snprintf(go_file, sizeof go_file, "%s.go", job_log);
	snprintf(mark_file, sizeof mark_file, "%s.running", job_log);
	unlink(go_file);
	unlink(mark_file);
	return start(job_log,
		     "ip netns exec %s0 " ENV("%s") "HPS_LOG=info HPS_JOB_TOKEN=" TOKEN " XHOSTS_GO=%s XHOSTS_SHORT=%d XHOSTS_WORKERS=%d "
		     "%s NETNS_TEST_MARK=%s %s launch %s --env XHOSTS_GO --env XHOSTS_SHORT --env XHOSTS_WORKERS "
		     "--hosts %s -- %s --cluster-worker leave",
		     pfx, port, go_file, short_rank, nworkers, env, mark_file, hps_bin(), flags, hostsf, self_path);
}

static int has_left(const char *log, int h)
{
	char want[64];
	snprintf(want, sizeof want, "scheduler: host %s%d left", pfx, h);
	return log_has(log, want);
}

static int wait_left(int h, int ms)
{
	char want[64];
	snprintf(want, sizeof want, "scheduler: host %s%d left", pfx, h);
	return wait_log(job_log, want, ms);
}

/* Nothing died, no host counted dead, no request failed or timed out
 * (the bridges' closing counts say "0 requests failed here"). */
static void assert_clean(const char *o)
{
	static const char *const bad[] = {"died", "dead", "push failed", "pull failed", "barrier:", "HPS_TIMEOUT_MS"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		const char *at = strstr(o, bad[i]);
		CU_ASSERT_PTR_NULL(at);
		if (at)
			fprintf(stderr, "the job's log says \"%s\": ...%.300s\n", bad[i], at > o + 200 ? at - 200 : o);
	}
	for (const char *at = o; (at = strstr(at, " requests failed here")); at++)
		CU_ASSERT(at[-1] == '0' && at[-2] == ' ');
}

static void test_xhosts_no_servers(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	static const char *const lines[] = {"1 1", "0 1", "1 1"};
	pid_t p = leave_job("9811", lines, 3, 3, 1, "", "");
	int left = wait_left(1, 60000);
	CU_ASSERT(left);
	CU_ASSERT(log_has(job_log, "worker 1: 10 rounds, leaves"));
	touch_file(go_file); /* the others go on for 30 rounds after it left */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	if (!left || !strstr(o, "sums ok"))
		fprintf(stderr, "job:\n%s\n", o);
	assert_clean(o);
	unlink(go_file);
	ns_down();
}

/* hps checkpoint of the running job on host h into a fresh directory */
static int save_on(int h, const char *job, char *out, size_t cap)
{
	char dir[256], cmd[1024];
	snprintf(dir, sizeof dir, "/tmp/hps-xhosts-ck-%d", (int)getpid());
	sh("rm -rf %s", dir);
	snprintf(cmd, sizeof cmd, "%s checkpoint --job %s --host %s%d %s", hps_bin(), job, pfx, h, dir);
	int rc = on_host(h, out, cap, cmd);
	sh("rm -rf %s", dir);
	return rc;
}

static void test_xhosts_scaled_away(void)
{
	static char out[1 << 14];
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	static const char *const lines[] = {"1 1", "1 1", "1 1"};
	char flags[64], job[32], cmd[1024];
	snprintf(job, sizeof job, "xh%d", (int)getpid() % 100000);
	snprintf(flags, sizeof flags, "--max-servers 4 --job %s", job);
	pid_t p = leave_job("9821", lines, 3, 3, 1, flags, "");
	int ready = wait_log(job_log, "worker 1: 10 rounds, leaves", 60000) && wait_mark(mark_file);
	CU_ASSERT(ready);
	/* its worker ended, but its server serves key range 1: it stays */
	usleep(500000);
	CU_ASSERT_FALSE(has_left(job_log, 1));
	snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s2 --servers 1", hps_bin(), job, pfx);
	int rc = on_host(2, out, sizeof out, cmd);
	CU_ASSERT_EQUAL(rc, 0);
	char want[64];
	snprintf(want, sizeof want, "job %s has 1 server\n", job);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc || strcmp(out, want))
		fprintf(stderr, "hps scale --servers 1: %d\n%s\n", rc, out);
	int left = wait_left(1, 30000);
	CU_ASSERT(left);
	/* a host that left took no part: the checkpoint saves without it */
	rc = save_on(2, job, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "saved "));
	if (rc || !strstr(out, "saved "))
		fprintf(stderr, "checkpoint after host 1 left: %d\n%s\n", rc, out);
	/* a scale back up that names the closed rank of the host that left:
	 * nobody starts it, and the scale ends (review: it never did, and
	 * held the checkpoint lock for the rest of the job) */
	snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s2 --servers 2", hps_bin(), job, pfx);
	rc = on_host(2, out, sizeof out, cmd);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "has 1 servers, not 2"));
	if (rc != 1 || !strstr(out, "has 1 servers, not 2"))
		fprintf(stderr, "hps scale --servers 2 after host 1 left: %d\n%s\n", rc, out);
	CU_ASSERT(log_has(job_log, "a server of another host the plan names did not run"));
	rc = save_on(2, job, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "saved "));
	touch_file(go_file);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	if (!left || !strstr(o, "sums ok"))
		fprintf(stderr, "job:\n%s\n", o);
	assert_clean(o);
	unlink(go_file);
	ns_down();
}

static void test_xhosts_last_stays(void)
{
	static char out[1 << 14];
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	static const char *const lines[] = {"1 1", "0 1"};
	char flags[64], job[32], cmd[1024];
	snprintf(job, sizeof job, "xh%d", (int)getpid() % 100000);
	snprintf(flags, sizeof flags, "--max-workers 3 --job %s", job);
	pid_t p = leave_job("9831", lines, 2, 3, 1, flags, "");
	char want[160];
	snprintf(want, sizeof want, "host %s1 holds the job's free ranks", pfx);
	int stays = wait_log(job_log, want, 60000);
	CU_ASSERT(stays);
	usleep(500000);
	CU_ASSERT_FALSE(has_left(job_log, 1));
	snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s1 --workers 2", hps_bin(), job, pfx);
	int rc = on_host(1, out, sizeof out, cmd);
	CU_ASSERT_EQUAL(rc, 0);
	snprintf(want, sizeof want, "job %s has 2 workers\n", job);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc || strcmp(out, want))
		fprintf(stderr, "hps scale --workers 2: %d\n%s\n", rc, out);
	/* no `later` line: hps scale --join-host has no host to start */
	snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s1", hps_bin(), job, pfx);
	rc = on_host(0, out, sizeof out, cmd);
	snprintf(want, sizeof want, "hps scale: job %s has no host that joins later (no `later` line in its hosts file)\n", job);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc != 1 || strcmp(out, want))
		fprintf(stderr, "hps scale --join-host without a later host: %d\n%s\n", rc, out);
	touch_file(go_file);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 1);
	const char *o = slurp(job_log);
	if (!stays || !strstr(o, "sums ok"))
		fprintf(stderr, "job:\n%s\n", o);
	CU_ASSERT_PTR_NULL(strstr(o, "died"));
	unlink(go_file);
	ns_down();
}

static void test_xhosts_not_a_leave(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	static const char *const lines[] = {"1 1", "1 1", "1 1"};
	pid_t p = leave_job("9841", lines, 3, 3, -1, "--keep-going", "");
	CU_ASSERT(wait_mark(mark_file));
	/* its bridge asked to end (as a stop of its launcher does, racing its
	 * processes' deaths): it says goodbye with its nodes still running */
	pid_t b = proc_of("bridge", 1);
	CU_ASSERT_FATAL(b > 0);
	kill(b, SIGTERM);
	char want[160];
	snprintf(want, sizeof want, "scheduler: host %s1 left while server 1 served key ranges", pfx);
	int said = wait_log(job_log, want, 20000);
	CU_ASSERT(said);
	touch_file(go_file);
	CU_ASSERT_NOT_EQUAL(finish(p, 120000), 0);
	const char *o = slurp(job_log);
	/* the others' pushes to server 1 fail as to a dead server, at once,
	 * not after HPS_TIMEOUT_MS */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "push failed in round"));
	CU_ASSERT_PTR_NULL(strstr(o, "timed out"));
	if (!said || strstr(o, "timed out"))
		fprintf(stderr, "job:\n%s\n", o);
	unlink(go_file);
	ns_down();
}

/* The pid of the `hps launch --hosts` of this suite's hosts file. */
static pid_t top_launcher(void)
{
	char cmd[512], buf[32] = "";
	snprintf(cmd, sizeof cmd, "pgrep -f -- '^[^ ]*hps launch .*--hosts %s' | head -1", hostsf);
	FILE *f = popen(cmd, "r");
	if (f) {
		if (!fgets(buf, sizeof buf, f))
			buf[0] = 0;
		pclose(f);
	}
	return (pid_t)atoi(buf);
}

static int seg_exists(void *path)
{
	return access(path, F_OK) == 0;
}

/* Host 2 of 3 is `later`: the job starts on two hosts of one server and
 * one worker each (--max-workers 3 --max-servers 3: its part is one
 * server rank and one worker slot). A host group under another name
 * registering while the job runs is refused; hps scale --join-host,
 * run where hps launch runs (host 0's namespace), refuses a job that
 * does not run, a host not marked `later` and a request from another
 * host, then starts host 2 and says once it registered; the other
 * bridges connect to it; a second --join-host is refused;
 * hps scale --servers 3 there moves key range 2 to its new server (the
 * others' requests now cross to it), hps scale --workers 3 there starts
 * a worker that pushes 10 rounds through every host and ends; exact
 * sums, nothing died. */
static void test_xhosts_join_later(void)
{
	static char out[1 << 14];
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	static const char *const lines[] = {"1 1", "1 1", "0 0 later"};
	char flags[96], job[32], cmd[2048], want[160];
	snprintf(job, sizeof job, "xh%d", (int)getpid() % 100000);
	snprintf(flags, sizeof flags, "--max-workers 3 --max-servers 3 --job %s", job);
	pid_t p = leave_job("9851", lines, 3, 3, -1, flags, "");
	snprintf(want, sizeof want, "scheduler: host %s2 joins later", pfx);
	int ready = wait_mark(mark_file) && wait_log(job_log, want, 30000);
	CU_ASSERT(ready);
	/* another host group under a name of its own, with the token */
	snprintf(cmd, sizeof cmd,
		 ENV("9851") "HPS_JOB_TOKEN=" TOKEN " HPS_JOB_ID=%s HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
			     "HPS_HOST=%sx HPS_NODE_ADDR=" NET ".3 %s launch --local-servers 0 --local-workers 1 -- /bin/true",
		 job, pfx, hps_bin());
	int rc = on_host(2, out, sizeof out, cmd);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "registered after the job started: only the host the hosts file marks `later` joins a running job"));
	if (!strstr(out, "marks `later`"))
		fprintf(stderr, "a stranger's launch: %d\n%s\n", rc, out);
	static const struct {
		int host;
		const char *job, *name, *says;
	} refused[] = {
		{0, "nosuch", "2", "hps scale: no job nosuch was launched with --hosts on this host\n"},
		{0, NULL, "1", "is not the host of job %s that joins later; its hosts file marks %s2\n"},
		{1, NULL, "2", "runs here (host %s"},
		{1, NULL, "2", "but its `hps launch --hosts` does not: run hps scale --join-host on the host where it runs\n"},
	};
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
		const char *j = refused[i].job ? refused[i].job : job;
		snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s%s", hps_bin(), j, pfx, refused[i].name);
		rc = on_host(refused[i].host, out, sizeof out, cmd);
		char says[300];
		if (strstr(refused[i].says, "%s2"))
			snprintf(says, sizeof says, refused[i].says, job, pfx);
		else if (strstr(refused[i].says, "%s"))
			snprintf(says, sizeof says, refused[i].says, pfx);
		else
			snprintf(says, sizeof says, "%s", refused[i].says);
		CU_ASSERT_EQUAL(rc, 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, says));
		if (rc != 1 || !strstr(out, says))
			fprintf(stderr, "--join-host refusal %zu: %d\n%s\n", i, rc, out);
	}
	CU_ASSERT(!log_has(job_log, "joins the job")); /* none of them started it */
	snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s2", hps_bin(), job, pfx);
	rc = on_host(0, out, sizeof out, cmd);
	snprintf(want, sizeof want, "job %s: host %s2 joined\n", job, pfx);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc || strcmp(out, want))
		fprintf(stderr, "hps scale --join-host: %d\n%s\n", rc, out);
	snprintf(want, sizeof want, "scheduler: host %s2 joined the running job", pfx);
	/* (the command waited for the scheduler's view; its line reaches
	 * the log through the launcher's pipe, maybe a moment later) */
	int joined = wait_log(job_log, want, 10000);
	CU_ASSERT(joined);
	snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s2", hps_bin(), job, pfx);
	rc = on_host(0, out, sizeof out, cmd);
	snprintf(want, sizeof want, "hps scale: host %s2 of job %s was started already (see the launcher's output)\n", pfx, job);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc != 1 || strcmp(out, want))
		fprintf(stderr, "a second --join-host: %d\n%s\n", rc, out);
	char seg[512];
	snprintf(seg, sizeof seg, "%s/hps.%s.%s2", getenv("HPS_SHM_DIR") ? getenv("HPS_SHM_DIR") : "/dev/shm", job, pfx);
	CU_ASSERT(poll_until(seg_exists, seg, 30000));
	snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s2 --servers 3", hps_bin(), job, pfx);
	rc = on_host(2, out, sizeof out, cmd);
	snprintf(want, sizeof want, "job %s has 3 servers\n", job);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc || strcmp(out, want))
		fprintf(stderr, "hps scale --servers 3: %d\n%s\n", rc, out);
	snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s2 --workers 3", hps_bin(), job, pfx);
	rc = on_host(2, out, sizeof out, cmd);
	snprintf(want, sizeof want, "job %s has 3 workers\n", job);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc || strcmp(out, want))
		fprintf(stderr, "hps scale --workers 3: %d\n%s\n", rc, out);
	CU_ASSERT(wait_log(job_log, "worker 2: joined, 10 rounds, leaves", 30000));
	touch_file(go_file);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	if (!joined || !strstr(o, "sums ok"))
		fprintf(stderr, "job:\n%s\n", o);
	assert_clean(o);
	unlink(go_file);
	ns_down();
}

/* A replicated job (--replicas 1) whose host 2 of 3 is `later`, the
 * first two hosts of one server and one worker each. kill: --max-workers
 * 3; server 0 is killed (kill -9) before host 2 joins, its ranges go on
 * at their backups on host 1; then host 2 joins, and the worker hps scale
 * starts there pushes 10 rounds to every range, server 0's through the
 * failover it learns from the scheduler's states (its bridge never saw
 * the FENCE). scale: --max-workers 3 --max-servers 3; host 2 joins, hps
 * scale --servers 3 there moves a range and backups to its new server
 * (copies across three hosts), then a worker joins there. Exact sums. */
static void join_later_replicated(const char *port, int kill_first)
{
	static char out[1 << 14];
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	static const char *const lines[] = {"1 1", "1 1", "0 0 later"};
	char flags[128], job[32], cmd[2048], want[160];
	snprintf(job, sizeof job, "xr%d%c", (int)getpid() % 100000, kill_first ? 'k' : 's');
	snprintf(flags, sizeof flags, "--max-workers 3 %s--replicas 1 --job %s", kill_first ? "" : "--max-servers 3 ", job);
	/* a server's part of a push fits a ring record (replicas across hosts) */
	pid_t p = leave_job(port, lines, 3, 3, -1, flags, "HPS_RING_KB=1024");
	snprintf(want, sizeof want, "scheduler: host %s2 joins later", pfx);
	int ready = wait_mark(mark_file) && wait_log(job_log, want, 30000);
	CU_ASSERT(ready);
	if (kill_first) {
		pid_t v = proc_of("server", 0);
		CU_ASSERT(v > 0);
		if (v > 0)
			kill(v, SIGKILL);
		snprintf(want, sizeof want, "bridge %s1: server 0 died: key range", pfx);
		CU_ASSERT(wait_log(job_log, want, 30000));
	}
	snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s2", hps_bin(), job, pfx);
	int rc = on_host(0, out, sizeof out, cmd);
	snprintf(want, sizeof want, "job %s: host %s2 joined\n", job, pfx);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(out, want);
	int bad = rc || strcmp(out, want);
	char seg[512];
	snprintf(seg, sizeof seg, "%s/hps.%s.%s2", getenv("HPS_SHM_DIR") ? getenv("HPS_SHM_DIR") : "/dev/shm", job, pfx);
	CU_ASSERT(poll_until(seg_exists, seg, 30000));
	for (int i = kill_first; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s2 --%s 3", hps_bin(), job, pfx,
			 i ? "workers" : "servers");
		rc = on_host(2, out, sizeof out, cmd);
		snprintf(want, sizeof want, "job %s has 3 %s\n", job, i ? "workers" : "servers");
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_STRING_EQUAL(out, want);
		if (rc || strcmp(out, want))
			fprintf(stderr, "%s: %d\n%s\n", cmd, rc, out), bad = 1;
	}
	bad |= !wait_log(job_log, "worker 2: joined, 10 rounds, leaves", 60000);
	CU_ASSERT(!bad);
	touch_file(go_file);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	if (bad || !strstr(o, "sums ok") || getenv("SHOWLOG"))
		fprintf(stderr, "job:\n%s\n", o);
	if (!kill_first)
		assert_clean(o);
	unlink(go_file);
	ns_down();
}

static void test_xhosts_join_later_replicated_after_kill(void)
{
	join_later_replicated("9861", 1);
}

static void test_xhosts_join_later_replicated_scale(void)
{
	join_later_replicated("9865", 0);
}

/* Host 1 of 2 is `later` (--max-workers 2: its part is a worker slot);
 * SIGUSR1 to hps launch starts it, the scheduler says it joined, hps
 * scale --join-host then refuses to start it again; the job ends with
 * exact sums. */
static void test_xhosts_join_later_signal(void)
{
	static char out[1 << 14];
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	static const char *const lines[] = {"1 1", "0 0 later"};
	char flags[96], job[32], cmd[1024], want[200];
	snprintf(job, sizeof job, "xh%d", (int)getpid() % 100000);
	snprintf(flags, sizeof flags, "--max-workers 2 --job %s", job);
	pid_t p = leave_job("9856", lines, 2, 1, -1, flags, "");
	snprintf(want, sizeof want, "scheduler: host %s1 joins later", pfx);
	CU_ASSERT(wait_mark(mark_file) && wait_log(job_log, want, 30000));
	pid_t top = top_launcher();
	CU_ASSERT_FATAL(top > 0);
	kill(top, SIGUSR1);
	snprintf(want, sizeof want, "scheduler: host %s1 joined the running job", pfx);
	int joined = wait_log(job_log, want, 30000);
	CU_ASSERT(joined);
	snprintf(cmd, sizeof cmd, "%s scale --job %s --join-host %s1", hps_bin(), job, pfx);
	int rc = on_host(0, out, sizeof out, cmd);
	snprintf(want, sizeof want, "hps scale: host %s1 of job %s was started already (see the launcher's output)\n", pfx, job);
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT_STRING_EQUAL(out, want);
	if (rc != 1 || strcmp(out, want))
		fprintf(stderr, "--join-host after SIGUSR1: %d\n%s\n", rc, out);
	touch_file(go_file);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 1);
	const char *o = slurp(job_log);
	if (!joined || !strstr(o, "sums ok"))
		fprintf(stderr, "job:\n%s\n", o);
	assert_clean(o);
	unlink(go_file);
	ns_down();
}

/* `later` in the hosts file: each wrong use refused in one line before
 * anything starts. */
static void test_xhosts_later_refusals(void)
{
	static const struct {
		const char *hosts, *flags, *says;
	} cases[] = {
		{"a 0 0 10.0.0.1 later\nb 1 1 10.0.0.2\n", "--max-workers 4", ":1: only the last host joins later (the host of the job's room), not a"},
		{"a 1 1 10.0.0.1\nb 0 1 10.0.0.2 later\n", "--max-workers 4", ":2: host b joins later: it brings 0 servers and 0 workers, its part is the job's room"},
		{"a 1 1 10.0.0.1\nb 0 0 10.0.0.2 later\n", "", ": host b joins later, but the job has no room for it (--max-workers, --max-servers)"},
		{"a 1 1 10.0.0.1\nb 0 0 10.0.0.2 soon\n", "--max-workers 4", ":2: expected `NAME SERVERS WORKERS [ADDRESS [later]]`"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		write_hosts(cases[i].hosts);
		char log[300];
		snprintf(log, sizeof log, "%s.refusal", job_log);
		pid_t p = start(log, "HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=9861 %s launch %s --hosts %s -- /bin/true",
				hps_bin(), cases[i].flags, hostsf);
		int rc = finish(p, 20000);
		const char *o = slurp(log);
		CU_ASSERT_EQUAL(rc, 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(o, cases[i].says));
		if (rc != 2 || !strstr(o, cases[i].says))
			fprintf(stderr, "case %zu: %d\n%s\n", i, rc, o);
		unlink(log);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return strcmp(argv[2], "leave") == 0 ? leave_worker() : cluster_worker(argv[2]);
	int skip = netns_suite_start("test_xhosts");
	if (skip)
		return skip;
	static const struct test_case cases[] = {
		{"test_xhosts_no_servers", test_xhosts_no_servers},
		{"test_xhosts_scaled_away", test_xhosts_scaled_away},
		{"test_xhosts_last_stays", test_xhosts_last_stays},
		{"test_xhosts_not_a_leave", test_xhosts_not_a_leave},
		{"test_xhosts_join_later", test_xhosts_join_later},
		{"test_xhosts_join_later_replicated_after_kill", test_xhosts_join_later_replicated_after_kill},
		{"test_xhosts_join_later_replicated_scale", test_xhosts_join_later_replicated_scale},
		{"test_xhosts_join_later_signal", test_xhosts_join_later_signal},
		{"test_xhosts_later_refusals", test_xhosts_later_refusals},
		{NULL, NULL},
	};
	int rc = run_suite("xhosts", cases);
	unlink(mark_file);
	unlink(go_file);
	netns_suite_end();
	return rc;
}
