/* Failover across hosts at the moments tests/test_xfail.c does not make
 * (HPS_REPLICAS across hosts; docs/ARCHITECTURE.md, "Failover
 * across hosts" and "Recovery across hosts"): a worker blocked on a full
 * ring, a checkpoint running, a lost host that ran workers, a restarted
 * worker, and a replacement that dies during its copy. Hosts are network
 * namespaces (tests/netns.c), one server each, so the placement order is
 * the identity: key range r lives on servers r and r+1 (mod the hosts).
 *
 * This binary is also the jobs' worker program: `--cluster-worker MODE`
 * runs tests/netns.c's modes, or the ones below (xf_worker). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/bell.h"
#include "shm/segment.h"
#include "tests/netns.h"

/* ---- the worker programs of this suite ---------------------------------- */

#define XF_NK 64 /* keys of one push: a few hundred bytes, many fit a ring */

static uint64_t xf_key(int owner, int k)
{
	/* spread over every range (keys are hashed to ranges) */
	return (uint64_t)owner * 1000003u + (uint64_t)k * 7919u + 1;
}

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v ? atoi(v) : dflt;
}

/* Mode ring: XF_ROUNDS rounds of XF_INFLIGHT pushes of the shared keys
 * submitted before the first is waited for, far more than a ring of
 * HPS_RING_KB=16 holds, so that the worker waits for room in its rings
 * most of the time (a push part that does not fit waits in hps_push).
 * The rounds start once $XF_GO exists (the test is ready to kill);
 * worker 0 creates $NETNS_TEST_MARK after round $NETNS_TEST_MARK_ROUND.
 * Then the barrier and the exact sums: worker r pushed r+1 to every key
 * XF_ROUNDS x XF_INFLIGHT times. */
static int ring_worker(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx), rc = 0;
	int rounds = env_int("XF_ROUNDS", 300), inflight = env_int("XF_INFLIGHT", 64);
	int mark_round = env_int("NETNS_TEST_MARK_ROUND", 20);
	uint64_t keys[XF_NK];
	float one[XF_NK], got[XF_NK];
	int64_t *ts = calloc((size_t)inflight, sizeof *ts);
	for (int k = 0; k < XF_NK; k++)
		keys[k] = xf_key(0, k), one[k] = (float)(me + 1);
	/* the pushes start once the test found the server it kills */
	for (int t = 0; getenv("XF_GO") && t < 30000 && access(getenv("XF_GO"), F_OK) != 0; t++)
		usleep(1000);
	for (int r = 0; r < rounds && !rc; r++) {
		for (int i = 0; i < inflight; i++)
			ts[i] = hps_push(w, keys, XF_NK, one, NULL);
		for (int i = 0; i < inflight; i++)
			if (ts[i] < 0 || hps_wait(w, ts[i])) {
				fprintf(stderr, "worker %d: push %d of round %d failed\n", me, i, r);
				rc = 1;
			}
		if (r == mark_round && me == 0 && getenv("NETNS_TEST_MARK"))
			touch_file(getenv("NETNS_TEST_MARK"));
	}
	free(ts);
	printf("worker %d: rounds done\n", me);
	fflush(stdout);
	if (!rc && (rc = hps_barrier(ctx)) != 0)
		fprintf(stderr, "worker %d: barrier: %s\n", me, hps_strerror(rc));
	if (!rc && (rc = hps_wait(w, hps_pull(w, keys, XF_NK, got, NULL))) != 0)
		fprintf(stderr, "worker %d: final pull: %s\n", me, hps_strerror(rc));
	double want = (double)nw * (nw + 1) / 2 * rounds * inflight;
	for (int k = 0; k < XF_NK && !rc; k++)
		if (got[k] != (float)want) {
			fprintf(stderr, "worker %d: key %d holds %.0f, expected %.0f\n", me, k, got[k], want);
			rc = 1;
		}
	if (!rc)
		printf("worker %d: sums ok\n", me);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* Mode ckpt (checkpoints while a server dies; XF_DIR the checkpoint).
 * Every worker pushes r+1 to the shared keys and 1 to its own counter
 * key in one push per round, so the sums are exact when every key holds
 * sum over r of (r+1) x counter r and each worker's counter is its own
 * rounds. Worker 0 saves XF_DIR back to back, one round before each;
 * $NETNS_TEST_MARK after its first save that succeeded (the test then
 * kills a server while XF_DIR.partial exists: a save runs). Every save's
 * outcome is printed ("save N: ..."); once $XF_DIR.go exists (the test
 * killed) worker 0 goes on until a save succeeds. The others push until
 * then. Then, at rest: worker 0 pulls the sums S, saves XF_DIR.final,
 * everyone pushes one round more, worker 0 loads XF_DIR.final and must
 * pull S again. */
#define XF_CK_KEYS 4000

static int ck_sums(hps_ctx *ctx, hps_worker *w, const uint64_t *keys, float *got, int my_rounds)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	uint64_t counters[16];
	float count[16];
	for (int r = 0; r < nw; r++)
		counters[r] = xf_key(100 + r, 0);
	if (hps_wait(w, hps_pull(w, keys, XF_CK_KEYS, got, NULL)) || hps_wait(w, hps_pull(w, counters, (size_t)nw, count, NULL))) {
		fprintf(stderr, "worker %d: pull failed\n", me);
		return 1;
	}
	if (count[me] != (float)my_rounds) {
		fprintf(stderr, "worker %d: its counter holds %.0f, it pushed %d rounds\n", me, count[me], my_rounds);
		return 1;
	}
	double want = 0;
	for (int r = 0; r < nw; r++)
		want += (r + 1) * (double)count[r];
	for (int k = 0; k < XF_CK_KEYS; k++)
		if (got[k] != (float)want) {
			fprintf(stderr, "worker %d: key %d holds %.0f, expected %.0f\n", me, k, got[k], want);
			return 1;
		}
	return 0;
}

static int ck_worker(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx), rc = 0, rounds = 0;
	const char *dir = getenv("XF_DIR"), *mark = getenv("NETNS_TEST_MARK");
	char go[600], done[600], fin[600];
	snprintf(go, sizeof go, "%s.go", dir);
	snprintf(done, sizeof done, "%s.saved", dir); /* worker 0 saved after the kill */
	snprintf(fin, sizeof fin, "%s.final", dir);
	static uint64_t keys[XF_CK_KEYS + 1];
	static float vals[XF_CK_KEYS + 1], got[XF_CK_KEYS];
	for (int k = 0; k < XF_CK_KEYS; k++)
		keys[k] = xf_key(0, k), vals[k] = (float)(me + 1);
	keys[XF_CK_KEYS] = xf_key(100 + me, 0), vals[XF_CK_KEYS] = 1;
	int saved_after = 0, saves = 0;
	int64_t end = hpsi_now_ns() + 90000000000ll;
	while (!rc && hpsi_now_ns() < end) {
		if ((rc = hps_wait(w, hps_push(w, keys, XF_CK_KEYS + 1, vals, NULL))) != 0) {
			fprintf(stderr, "worker %d: push of round %d: %s\n", me, rounds, hps_strerror(rc));
			break;
		}
		rounds++;
		if (me != 0) {
			if (access(done, F_OK) == 0)
				break;
			continue;
		}
		int killed = access(go, F_OK) == 0;
		int code = hps_save(ctx, dir);
		printf("save %d: %s\n", saves++, code ? hps_strerror(code) : "ok");
		fflush(stdout);
		if (code && code != HPS_EPEERDEAD) /* the one failure a death may give */
			rc = 1;
		if (!code && mark && access(mark, F_OK) != 0 && !killed)
			touch_file(mark);
		if (!code && killed) {
			saved_after = 1;
			touch_file(done);
			break;
		}
	}
	if (!rc && me == 0 && !saved_after) {
		fprintf(stderr, "worker 0: no save succeeded after the kill\n");
		rc = 1;
	}
	if (!rc && (rc = hps_barrier(ctx)) != 0)
		fprintf(stderr, "worker %d: barrier: %s\n", me, hps_strerror(rc));
	if (!rc)
		rc = ck_sums(ctx, w, keys, got, rounds);
	if (!rc)
		printf("worker %d: sums ok\n", me);
	/* the checkpoint at rest loads back */
	static float before[XF_CK_KEYS];
	memcpy(before, got, sizeof before);
	if (!rc && me == 0 && (rc = hps_save(ctx, fin)) != 0)
		fprintf(stderr, "worker 0: save of %s: %s\n", fin, hps_strerror(rc));
	rc = rc || hps_barrier(ctx) || hps_wait(w, hps_push(w, keys, XF_CK_KEYS, vals, NULL)) || hps_barrier(ctx);
	if (!rc && me == 0) {
		int clock = hps_load(ctx, fin);
		if (clock < 0 || hps_wait(w, hps_pull(w, keys, XF_CK_KEYS, got, NULL)) ||
		    memcmp(got, before, sizeof before)) {
			fprintf(stderr, "worker 0: load of %s: %s, or other sums\n", fin, clock < 0 ? hps_strerror(clock) : "ok");
			rc = 1;
		} else
			printf("checkpoint loads\n");
	}
	rc = rc || hps_barrier(ctx);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* Mode own (a lost host that ran workers): worker r pushes r+1 to its own
 * keys (xf_key(r, k)), one push per round, each waited for. The workers
 * that survive do XF_ROUNDS rounds; after round 50 worker 0 creates
 * $NETNS_TEST_MARK, and both wait for $NETNS_TEST_MARK.killed (the test
 * killed the lost host), so that most of their rounds cross the
 * failover. The lost worker (rank $XF_LOST) pushes until it is killed
 * (XF_LOST_ROUNDS at most). No barrier: the lost worker would fail it.
 * Each survivor checks its own keys exactly. Worker 0 then checks the
 * lost worker's: what reached the servers before its host died, in
 * whole pushes of one range at a time: every key holds (lost+1) x n_k
 * with n_k a whole number of rounds, 0 <= n_k <= XF_LOST_ROUNDS, and the
 * n_k differ by at most 1 (a push spans ranges; one at most was in
 * flight). */
static int own_worker(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx), rc = 0, lost = env_int("XF_LOST", -1), lost_rounds = env_int("XF_LOST_ROUNDS", 1000000);
	int rounds = me == lost ? lost_rounds : env_int("XF_ROUNDS", 400);
	const char *mark = getenv("NETNS_TEST_MARK");
	char killed[600];
	snprintf(killed, sizeof killed, "%s.killed", mark ? mark : "");
	uint64_t keys[XF_NK];
	float vals[XF_NK], got[XF_NK];
	for (int k = 0; k < XF_NK; k++)
		keys[k] = xf_key(me, k), vals[k] = (float)(me + 1);
	for (int r = 0; r < rounds && !rc; r++) {
		if ((rc = hps_wait(w, hps_push(w, keys, XF_NK, vals, NULL))) != 0)
			fprintf(stderr, "worker %d: push of round %d: %s\n", me, r, hps_strerror(rc));
		if (r == 50 && me != lost && mark) {
			if (me == 0)
				touch_file(mark);
			for (int t = 0; t < 30000 && access(killed, F_OK) != 0; t++)
				usleep(1000);
		}
	}
	if (!rc && (rc = hps_wait(w, hps_pull(w, keys, XF_NK, got, NULL))) != 0)
		fprintf(stderr, "worker %d: pull: %s\n", me, hps_strerror(rc));
	for (int k = 0; k < XF_NK && !rc; k++)
		if (got[k] != (float)((me + 1) * rounds)) {
			fprintf(stderr, "worker %d: its key %d holds %.0f, expected %d\n", me, k, got[k], (me + 1) * rounds);
			rc = 1;
		}
	if (!rc)
		printf("worker %d: sums ok\n", me);
	if (!rc && me == 0 && lost >= 0) {
		for (int k = 0; k < XF_NK; k++)
			keys[k] = xf_key(lost, k);
		if ((rc = hps_wait(w, hps_pull(w, keys, XF_NK, got, NULL))) != 0)
			fprintf(stderr, "worker 0: pull of the lost worker's keys: %s\n", hps_strerror(rc));
		float lo = 1e30f, hi = -1;
		for (int k = 0; k < XF_NK && !rc; k++) {
			float n = got[k] / (float)(lost + 1);
			if (n != (float)(int)n || n < 0 || n > lost_rounds) {
				fprintf(stderr, "worker 0: lost worker's key %d holds %.2f: no whole number of pushes\n", k,
					got[k]);
				rc = 1;
			}
			lo = n < lo ? n : lo, hi = n > hi ? n : hi;
		}
		if (!rc && hi - lo > 1) {
			fprintf(stderr, "worker 0: the lost worker's keys hold %.0f to %.0f pushes\n", lo, hi);
			rc = 1;
		}
		if (!rc)
			printf("lost worker's keys whole: %.0f to %.0f rounds\n", lo, hi);
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* Mode xfill: worker 0 first pushes 1 to XF_FILL keys of their own (a
 * table whose copy to a replacement lasts long enough to be caught in
 * it), then every worker pushes r+1 to the shared keys, XF_ROUNDS rounds
 * at a pace of $NETNS_TEST_PACE_US, worker 0 creating $NETNS_TEST_MARK
 * after round 20. Then the barrier, the shared keys exact and every
 * filled key 1. */
#define XF_FILL_BATCH 20000 /* 2 parts of about 120 KB: under a ring record of HPS_RING_KB=1024 */

static uint64_t fill_key(int k)
{
	return ((uint64_t)1 << 40) + (uint64_t)k;
}

static int fill_worker(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx), rc = 0;
	int fill = env_int("XF_FILL", 0), rounds = env_int("XF_ROUNDS", 1000), pace = env_int("NETNS_TEST_PACE_US", 0);
	static uint64_t fk[XF_FILL_BATCH];
	static float fv[XF_FILL_BATCH];
	for (int at = 0; me == 0 && !rc && at < fill; at += XF_FILL_BATCH) {
		int n = fill - at < XF_FILL_BATCH ? fill - at : XF_FILL_BATCH;
		for (int i = 0; i < n; i++)
			fk[i] = fill_key(at + i), fv[i] = 1;
		if ((rc = hps_wait(w, hps_push(w, fk, (size_t)n, fv, NULL))) != 0)
			fprintf(stderr, "worker 0: fill push: %s\n", hps_strerror(rc));
	}
	uint64_t keys[XF_NK];
	float vals[XF_NK], got[XF_NK];
	for (int k = 0; k < XF_NK; k++)
		keys[k] = xf_key(0, k), vals[k] = (float)(me + 1);
	for (int r = 0; r < rounds && !rc; r++) {
		if ((rc = hps_wait(w, hps_push(w, keys, XF_NK, vals, NULL))) != 0)
			fprintf(stderr, "worker %d: push of round %d: %s\n", me, r, hps_strerror(rc));
		usleep((useconds_t)pace);
		if (r == 20 && me == 0 && getenv("NETNS_TEST_MARK"))
			touch_file(getenv("NETNS_TEST_MARK"));
	}
	printf("worker %d: rounds done\n", me);
	fflush(stdout);
	if (!rc && (rc = hps_barrier(ctx)) != 0)
		fprintf(stderr, "worker %d: barrier: %s\n", me, hps_strerror(rc));
	if (!rc && (rc = hps_wait(w, hps_pull(w, keys, XF_NK, got, NULL))) != 0)
		fprintf(stderr, "worker %d: pull: %s\n", me, hps_strerror(rc));
	double want = (double)nw * (nw + 1) / 2 * rounds;
	for (int k = 0; k < XF_NK && !rc; k++)
		if (got[k] != (float)want) {
			fprintf(stderr, "worker %d: key %d holds %.0f, expected %.0f\n", me, k, got[k], want);
			rc = 1;
		}
	for (int at = 0; me == 0 && !rc && at < fill; at += XF_FILL_BATCH) {
		int n = fill - at < XF_FILL_BATCH ? fill - at : XF_FILL_BATCH;
		for (int i = 0; i < n; i++)
			fk[i] = fill_key(at + i);
		if ((rc = hps_wait(w, hps_pull(w, fk, (size_t)n, fv, NULL))) != 0)
			fprintf(stderr, "worker 0: pull of the filled keys: %s\n", hps_strerror(rc));
		for (int i = 0; i < n && !rc; i++)
			if (fv[i] != 1) {
				fprintf(stderr, "worker 0: filled key %d holds %g\n", at + i, fv[i]);
				rc = 1;
			}
	}
	if (!rc)
		printf("worker %d: sums ok\n", me);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* Mode xtrickle: XF_PUSHES pushes of the shared keys, one every
 * XF_PACE_US, up to XF_WINDOW in flight (the oldest is waited for only
 * then): a pair's requests go out one by one while the answers of a key
 * range are late, so its stream goes on through a hand-back's moments.
 * Worker 0 creates $NETNS_TEST_MARK after 200 pushes. Exact sums: worker
 * r pushed r+1 to every key XF_PUSHES times. */
static int trickle_worker(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx), rc = 0;
	int n = env_int("XF_PUSHES", 20000), pace = env_int("XF_PACE_US", 100), win = env_int("XF_WINDOW", 400);
	if (win < 1 || win > 500) /* (HPSI_MAX_INFLIGHT slots) */
		win = 400;
	uint64_t keys[XF_NK];
	float one[XF_NK], got[XF_NK];
	int64_t *ts = calloc((size_t)win, sizeof *ts);
	for (int k = 0; k < XF_NK; k++)
		keys[k] = xf_key(0, k), one[k] = (float)(me + 1);
	for (int i = 0; i < n + win && !rc; i++) {
		if (i >= win && (ts[i % win] < 0 || hps_wait(w, ts[i % win]))) {
			fprintf(stderr, "worker %d: push %d failed\n", me, i - win);
			rc = 1;
		}
		if (i >= n)
			continue;
		ts[i % win] = hps_push(w, keys, XF_NK, one, NULL);
		if (i == 200 && me == 0 && getenv("NETNS_TEST_MARK"))
			touch_file(getenv("NETNS_TEST_MARK"));
		usleep((useconds_t)pace);
	}
	free(ts);
	printf("worker %d: rounds done\n", me);
	fflush(stdout);
	if (!rc && (rc = hps_barrier(ctx)) != 0)
		fprintf(stderr, "worker %d: barrier: %s\n", me, hps_strerror(rc));
	if (!rc && (rc = hps_wait(w, hps_pull(w, keys, XF_NK, got, NULL))) != 0)
		fprintf(stderr, "worker %d: final pull: %s\n", me, hps_strerror(rc));
	double want = (double)nw * (nw + 1) / 2 * n;
	for (int k = 0; k < XF_NK && !rc; k++)
		if (got[k] != (float)want) {
			fprintf(stderr, "worker %d: key %d holds %.0f, expected %.0f\n", me, k, got[k], want);
			rc = 1;
		}
	if (!rc)
		printf("worker %d: sums ok\n", me);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

static int xf_worker(const char *mode)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	if (strcmp(mode, "xring") == 0)
		return ring_worker(ctx, w);
	if (strcmp(mode, "xckpt") == 0)
		return ck_worker(ctx, w);
	if (strcmp(mode, "xfill") == 0)
		return fill_worker(ctx, w);
	if (strcmp(mode, "xtrickle") == 0)
		return trickle_worker(ctx, w);
	return own_worker(ctx, w);
}

/* ---- the cases ----------------------------------------------------------- */

static void show_log_if(int bad, const char *what)
{
	if (bad || getenv("SHOWLOG"))
		fprintf(stderr, "%s\n%s\n", what, slurp(job_log));
}

static unsigned next_rand(unsigned *st)
{
	*st = *st * 1103515245u + 12345u;
	return *st >> 16;
}

/* 1. Random moments of workers blocked on a full ring (HPS_RING_KB=16:
 * 64 pushes of a few hundred bytes per round, submitted at once, do not
 * fit, so hps_push waits for room most of the time and the bridges hold
 * what does not fit the other host's rings): 2 hosts of one server and
 * one worker each, --replicas 1, a random server killed after a random
 * round of worker 0. Exact sums, exit 0. XFAULT_SEED=N runs seed N. */
static void ring_kill(unsigned seed)
{
	unsigned st = seed * 2654435761u + 7;
	int victim = (int)(next_rand(&st) % 2), round = 2 + (int)(next_rand(&st) % 200);
	char port[16], mark[300], env[512], go[300];
	snprintf(port, sizeof port, "%u", 9700 + seed % 16);
	snprintf(go, sizeof go, "%s.go", job_log);
	unlink(go);
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	snprintf(env, sizeof env,
		 "HPS_REPLICAS=1 HPS_RING_KB=16 HPS_TIMEOUT_MS=30000 XF_ROUNDS=300 XF_INFLIGHT=64 NETNS_TEST_MARK_ROUND=%d "
		 "XF_GO=%s",
		 round, go);
	pid_t p = hosts_job(port, 2, (const int[2]){1, 1}, env, "", "xring", mark, sizeof mark);
	pid_t v = proc_of("server", victim);
	CU_ASSERT_FATAL(v > 0);
	touch_file(go);
	CU_ASSERT(wait_mark(mark));
	kill(v, SIGKILL);
	unlink(mark);
	int late = log_has(job_log, "rounds done");
	int ok = job_sums(p, 120000) == 2;
	CU_ASSERT(ok);
	CU_ASSERT(!late);
	char what[128];
	snprintf(what, sizeof what, "seed %u: server %d killed after round %d%s", seed, victim, round,
		 late ? " (too late)" : "");
	show_log_if(!ok || late, what);
	unlink(go);
	ns_down();
}

static void test_xfault_full_ring_random_moments(void)
{
	const char *one = getenv("XFAULT_SEED");
	if (one) {
		ring_kill((unsigned)atoi(one));
		return;
	}
	for (unsigned seed = 1; seed <= 3; seed++)
		ring_kill(seed);
}

/* 2. A kill during a checkpoint across hosts: 2 hosts of one server and
 * one worker each, --replicas 1; worker 0 saves back to back while both
 * push (mode xckpt); once a save succeeded, server 1 is killed while
 * the next one runs (its DIR.partial exists). That save either completes
 * or fails with HPS_EPEERDEAD (README: a range whose primary died
 * mid-save), nothing else; a save after the kill succeeds; the sums are
 * exact, and a checkpoint saved at rest afterwards loads back to the same
 * sums. */
static void test_xfault_kill_during_checkpoint(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300], env[512], dir[300], partial[320], go[320];
	snprintf(dir, sizeof dir, "%s.ck", job_log);
	snprintf(partial, sizeof partial, "%s.partial", dir);
	snprintf(go, sizeof go, "%s.go", dir);
	sh("rm -rf %s %s %s.final %s.saved %s", dir, partial, dir, dir, go);
	snprintf(env, sizeof env, "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 XF_DIR=%s", dir);
	pid_t p = hosts_job("9720", 2, (const int[2]){1, 1}, env, "", "xckpt", mark, sizeof mark);
	pid_t v = proc_of("server", 1);
	CU_ASSERT_FATAL(v > 0);
	CU_ASSERT(wait_mark(mark));
	int running = 0; /* polled, bounded: the next save's directory */
	for (int t = 0; t < 200000 && !(running = access(partial, F_OK) == 0); t++)
		usleep(50);
	kill(v, SIGKILL);
	CU_ASSERT(running);
	touch_file(go);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	int loads = strstr(o, "checkpoint loads") != NULL;
	CU_ASSERT(loads);
	show_log_if(!loads || !running || getenv("SHOWLOG"), "kill during a checkpoint");
	sh("rm -rf %s %s %s.final %s.saved %s", dir, partial, dir, dir, go);
	unlink(mark);
	ns_down();
}

/* 3. A lost host that ran workers: 3 hosts of one server and one worker
 * each, --replicas 1 --keep-going; once worker 0 is 50 rounds in, every
 * process of host 2 (launcher, bridge, server, worker 2, which pushes
 * until then) is killed, and workers 0 and 1 go on with 350 rounds.
 * They (mode own: each its own keys, no barrier, since the lost worker
 * fails it) end with their own keys exact, and the lost worker's keys
 * hold whole pushes: (2+1) x n per key, n whole, within one push of each
 * other (what reached the servers before the host died; own_worker). The job ends with the lost host's status (137,
 * or 0 when its launcher ended alone before its kill). */
static void test_xfault_lost_host_with_workers(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = hosts_job("9730", 3, (const int[3]){1, 1, 1}, "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 XF_LOST=2",
			    "--keep-going", "xown", mark, sizeof mark);
	pid_t v = proc_of("server", 2), br = proc_of("bridge", 2);
	CU_ASSERT_FATAL(v > 0 && br > 0);
	CU_ASSERT(wait_mark(mark));
	kill(br, SIGKILL);
	kill(v, SIGKILL);
	sh("ip netns pids %s2 | xargs -r kill -9 2>/dev/null", pfx);
	char killed[320];
	snprintf(killed, sizeof killed, "%s.killed", mark);
	touch_file(killed);
	int rc = finish(p, 120000);
	unlink(killed);
	unlink(mark);
	CU_ASSERT(rc == 137 || rc == 0);
	const char *o = slurp(job_log);
	int ok = strstr(o, "worker 0: sums ok") && strstr(o, "worker 1: sums ok") &&
		 strstr(o, "lost worker's keys whole");
	CU_ASSERT(ok);
	show_log_if(!ok || (rc != 137 && rc != 0), "lost host with workers");
	const char *shm = getenv("HPS_SHM_DIR");
	sh("rm -f %s/hps.*.%s2 %s/hps-lobby.*.%s2", shm ? shm : "/dev/shm", pfx, shm ? shm : "/dev/shm", pfx);
	ns_down();
}

/* 4. --restart-workers 1 with --replicas 1 across hosts: 2 hosts x (1
 * server, 2 workers) run tests/test_rejoin.c's worker program (pull with
 * the BSP bound checked, push, clock; worker 0 checks the exact sums);
 * worker 3, on the host that does not run the scheduler, dies by SIGKILL
 * after its push of a random clock was answered. It restarts with rank 3,
 * resumes from a clock at or past its death, and the job ends with exit 0,
 * exact sums, and the replicas of each range equal (their digests). */
static void test_xfault_restart_worker_with_replicas(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 2 " NET ".1\n%s1 1 2 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	unsigned at = 5 + (unsigned)(rand() % 400);
	pid_t p = start(job_log,
			"ip netns exec %s0 " ENV("9740") "HPS_LOG=info %s launch --replicas 1 --staleness bsp "
			"--restart-workers 1 --hosts %s -- %s --rejoin-worker 0 0 %u 3 1",
			pfx, hps_bin(), hostsf, sibling_prog("test_rejoin"), at);
	int rc = finish(p, 120000);
	const char *o = slurp(job_log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "[worker 0] sums exact"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "hps launch: restarted worker 3"));
	const char *r = strstr(o, "[worker 3] restart 1 resumes from clock ");
	unsigned resumed = 0;
	CU_ASSERT(r && sscanf(r + strlen("[worker 3] restart 1 resumes from clock "), "%u", &resumed) == 1);
	CU_ASSERT(resumed >= at);
	CU_ASSERT_PTR_NULL(strstr(o, "dropped malformed message"));
	/* the replay's pushes were applied once on every replica: each
	 * server's digest of each range (keys, push counts, values) at its
	 * end is the other replica's */
	unsigned long long n[2][2] = {{0}}, d[2][2] = {{0}};
	read_digests(job_log, n, d);
	int same = 1;
	for (int g = 0; g < 2; g++) {
		CU_ASSERT(n[g][0] > 0 && n[g][0] == n[g][1] && d[g][0] == d[g][1]);
		same &= n[g][0] > 0 && n[g][0] == n[g][1] && d[g][0] == d[g][1];
	}
	char what[64];
	snprintf(what, sizeof what, "worker 3 died at clock %u", at);
	show_log_if(rc || !strstr(o, "sums exact") || !r || resumed < at || !same, what);
	ns_down();
}

/* Server 1's replacement of incarnation `incarnation` (host 1's segment
 * of job "xfr"), the part of its catch-up to kill it in, and server 0
 * (host 0's segment), its source. */
struct srv_watch {
	char host[2][32];
	struct hpsi_seg seg[2];
	int attached[2];
	uint32_t incarnation;
	int own_range; /* 1: JOINING (its own range not handed back yet); 0: ALIVE, still lacking a range */
};

/* In the part watched, with a copy from server 0 under way. */
static int in_phase(struct srv_watch *a)
{
	struct hpsi_node *n = hpsi_seg_node(&a->seg[1], 1), *src = hpsi_seg_node(&a->seg[0], 0);
	/* acquire: pairs with the replacement's releases of its claim, state
	 * and lacking bits (runtime/server/recover.c); the copy counters are
	 * only counted (relaxed) */
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	if (atomic_load_explicit(&n->incarnation, memory_order_acquire) != a->incarnation ||
	    atomic_load_explicit(&src->copies_started, memory_order_relaxed) ==
		    atomic_load_explicit(&src->copies_ended, memory_order_relaxed))
		return 0;
	return a->own_range ? st == HPSI_NODE_JOINING
			    : st == HPSI_NODE_ALIVE && atomic_load_explicit(&n->lacking, memory_order_acquire) != 0;
}

static int replacement_in_phase(void *arg)
{
	struct srv_watch *a = arg;
	char path[512];
	for (int i = 0; i < 2; i++)
		if (!a->attached[i] && hpsi_seg_path(path, sizeof path, "xfr", a->host[i]) == 0 &&
		    access(path, F_OK) == 0)
			a->attached[i] = hpsi_seg_attach("xfr", a->host[i], &a->seg[i]) == 0;
	return a->attached[0] && a->attached[1] && in_phase(a);
}

/* 5. A replacement dying during its copy across hosts: 2 hosts of one
 * server and one worker each, --replicas 1 --restart-servers 2; worker 0
 * fills 600 000 keys, then both push at a pace (mode xfill). kill -9 of
 * server 1; its replacement (incarnation 1) is killed while server 0
 * copies a range to it (server 0's copies_started above copies_ended),
 * own_range: while JOINING (its own range, not handed back yet), else
 * once ALIVE, still lacking range 0 (the range it backs up, copied after
 * the hand-back). The second replacement (incarnation 2) catches up,
 * host 0's bridge learns it holds every range whole, and the job ends
 * with exit 0 and exact sums. */
static void replacement_dies(int own_range)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300];
	pid_t p = hosts_job("9750", 2, (const int[2]){1, 1},
			    "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 NETNS_TEST_PACE_US=15000 XF_FILL=600000 XF_ROUNDS=1000",
			    "--job xfr --restart-servers 2 --env NETNS_TEST_PACE_US", "xfill", mark, sizeof mark);
	pid_t v = kill_server_at_mark(1, mark);
	struct srv_watch w = {.incarnation = 1, .own_range = own_range};
	snprintf(w.host[0], sizeof w.host[0], "%s0", pfx);
	snprintf(w.host[1], sizeof w.host[1], "%s1", pfx);
	int seen = poll_until(replacement_in_phase, &w, 30000), in_copy = 0;
	/* the node's pid: a shell's scan of /proc takes longer than the copy */
	pid_t r = w.attached[1] ? atomic_load_explicit(&hpsi_seg_node(&w.seg[1], 1)->pid, memory_order_acquire) : 0;
	if (seen && (in_copy = in_phase(&w)) && r > 0 && r != v)
		kill(r, SIGKILL);
	for (int i = 0; i < 2; i++)
		if (w.attached[i])
			hpsi_seg_detach(&w.seg[i]);
	CU_ASSERT(in_copy && r > 0 && r != v);
	CU_ASSERT(wait_log(job_log, "server 1 (incarnation 2) holds every key range whole", 60000));
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the pushes went on throughout */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	show_log_if(!in_copy || getenv("SHOWLOG"), own_range ? "replacement killed while JOINING" : "replacement killed lacking a range");
	ns_down();
}

static void test_xfault_replacement_dies_in_copy(void)
{
	replacement_dies(1);
	replacement_dies(0);
}

/* 6. Held requests after a hand-back, three hosts of one server and one
 * worker each (--replicas 1 --restart-servers 1), each worker's pushes
 * going out one by one (mode xtrickle). kill -9 of server 1: range 1
 * goes on at server 2 (host 2); host 1's replacement takes it back and
 * exits 60 ms after it read the FINAL (HPS_FAILPOINT=handbackdie:1:
 * before it serves a request or clears its lacking bit), so range 1
 * comes back to host 2. The failpoint also widens the moments: host 2's
 * bridge keeps the FINAL 20 ms (host 0's requests reach the frozen
 * range's ring unread: the requests host 0 sends again start there),
 * host 0's keeps the HANDBACK 20 ms, or until host 2 tells it again
 * (the requests it sends meanwhile wait at host 2, which handed the
 * range away). Host 0 moved its pair at
 * the HANDBACK and sent host 2 a RESET behind those requests, which
 * drops them (net/bridge_failover.c); delivered when the range came
 * back, before host 0's requests sent again from its oldest not
 * answered, the pushes in the gap were taken as seen twice (not applied;
 * the waits ended in HPS_EPROTO). Exact sums, exit 0. */
static void test_xfault_replacement_dies_at_handback(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = hosts_job("9493", 3, (const int[3]){1, 1, 1},
			    "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 HPS_FAILPOINT=handbackdie:1", "--restart-servers 1",
			    "xtrickle", mark, sizeof mark);
	kill_server_at_mark(1, mark);
	int died = wait_log(job_log, "HPS_FAILPOINT=handbackdie: server 1 exits at the hand-back of key range 1", 60000);
	CU_ASSERT(died);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the pushes went on throughout */
	int ok = job_sums(p, 120000) == 3;
	CU_ASSERT(ok);
	const char *o = slurp(job_log);
	int back = strstr(o, "server 2 handed key range 1 back to server 1 (host 1)") != NULL;
	CU_ASSERT(back);
	/* the moment came: requests waited at host 2 when a RESET came */
	int reset = strstr(o, "'s key range 1 away: ") && strstr(o, "of its requests held here dropped");
	CU_ASSERT(reset);
	show_log_if(!ok || !died || !back || !reset || getenv("SHOWLOG"), "replacement dies at the hand-back");
	ns_down();
}

/* 7. A third host that learns the hand-back before the death it mends:
 * as 6, but host 0's bridge keeps the FENCE of server 1 until the
 * HANDBACK record came (HPS_FAILPOINT=latefence:HOST0), so it ignores
 * the HANDBACK (range 1 is not at server 2 there yet) and then moves
 * range 1 to server 2, whose host handed it back. Host 2 holds those
 * requests and tells host 0 the hand-back again (net/bridge_recover.c,
 * hpsi_bridge_handback_again); host 0 sends them to the replacement.
 * Without that, they waited at host 2 until HPS_TIMEOUT_MS. Exact sums,
 * exit 0. */
static void test_xfault_handback_before_fence(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300], env[200];
	snprintf(env, sizeof env, "HPS_REPLICAS=1 HPS_TIMEOUT_MS=20000 NETNS_TEST_PACE_US=15000 HPS_FAILPOINT=latefence:%s0",
		 pfx);
	pid_t p = hosts_job("9494", 3, (const int[3]){1, 1, 1}, env, "--restart-servers 1 --env NETNS_TEST_PACE_US", "busy",
			    mark, sizeof mark);
	kill_server_at_mark(1, mark);
	int whole = wait_log(job_log, "server 1 (incarnation 1) holds every key range whole", 60000);
	CU_ASSERT(whole);
	int ok = job_sums(p, 120000) == 3;
	CU_ASSERT(ok);
	const char *o = slurp(job_log);
	int kept = strstr(o, "HPS_FAILPOINT=latefence: the FENCE of server 1 waits") != NULL;
	int again = strstr(o, "it is told again that server 2 handed it back to server 1 (host 1)") != NULL;
	CU_ASSERT(kept);
	CU_ASSERT(again);
	show_log_if(!ok || !whole || !kept || !again || getenv("SHOWLOG"), "hand-back before the fence");
	ns_down();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return strncmp(argv[2], "x", 1) == 0 ? xf_worker(argv[2]) : cluster_worker(argv[2]);
	int skip = netns_suite_start("test_xfault");
	if (skip)
		return skip;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	static const struct test_case cases[] = {
		{"test_xfault_full_ring_random_moments", test_xfault_full_ring_random_moments},
		{"test_xfault_kill_during_checkpoint", test_xfault_kill_during_checkpoint},
		{"test_xfault_lost_host_with_workers", test_xfault_lost_host_with_workers},
		{"test_xfault_restart_worker_with_replicas", test_xfault_restart_worker_with_replicas},
		{"test_xfault_replacement_dies_in_copy", test_xfault_replacement_dies_in_copy},
		{"test_xfault_replacement_dies_at_handback", test_xfault_replacement_dies_at_handback},
		{"test_xfault_handback_before_fence", test_xfault_handback_before_fence},
		{NULL, NULL},
	};
	int rc = run_suite("xfault", cases);
	netns_suite_end();
	return rc;
}
