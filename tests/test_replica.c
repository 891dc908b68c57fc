/* Replicated key ranges (HPS_REPLICAS): a server killed with SIGKILL at a
 * random moment loses nothing. Every worker pushes integer-valued floats
 * from a plan that every process can recompute, so each worker knows the
 * exact sums the job must end with, and under BSP the bounds each pull
 * must lie in. The kill lands while the workers run (the parent waits for
 * a random iteration of a random worker), with small rings that fill up,
 * with held BSP pulls, with pushpulls. Without replicas the same kill
 * fails the job (checked too, so the test cannot pass vacuously). */
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/codec.h"
#include "net/route.h"
#include "shm/bell.h"
#include "shm/liveness.h"
#include "shm/node.h"
#include "shm/wake.h"
#include "tests/harness.h"

#define NKEYS 48
#define ITERS 40
#define INFLIGHT 6  /* requests a worker keeps outstanding */
#define PIPELINED 48 /* ... in the pipelined case */

struct plan {
	uint64_t seed;
	int bsp;
	_Atomic int *progress; /* per worker: iterations done (shared memory) */
	const char *model_out; /* adam case: worker 0 writes the final values here */
	const char *ckpt_dir;  /* worker 0 saves a checkpoint every 8 iterations */
	const char *started;   /* launched: worker 0 creates this file at iteration 5 */
	int inflight;          /* 0: INFLIGHT */
	int pace_us;           /* sleep per iteration: time for a replacement to join */
	uint32_t prefill;      /* worker 0 first pushes 1 to this many other keys */
	/* non-NULL: after its last push a worker waits while *hold is set, so
	 * that the job still runs when a slow copy (sanitizers) ends; the test
	 * clears it once the replacement is back, or has given up on it */
	_Atomic int *hold;
};

#define PREFILL_BASE 1000000

/* Pushes (check == 0) or checks (check == 1) the prefilled keys: ones. */
static int prefill(hps_worker *w, uint32_t n, int check)
{
	uint64_t *keys = malloc(n * sizeof *keys);
	float *vals = malloc(n * sizeof *vals);
	int rc = keys && vals ? 0 : HPS_ENOMEM;
	for (uint32_t i = 0; !rc && i < n; i++)
		keys[i] = PREFILL_BASE + i, vals[i] = check ? 0 : 1;
	if (!rc)
		rc = hps_wait(w, check ? hps_pull(w, keys, n, vals, NULL) : hps_push(w, keys, n, vals, NULL));
	for (uint32_t i = 0; !rc && check && i < n; i++)
		if (vals[i] != 1) {
			fprintf(stderr, "prefilled key %llu holds %g, not 1\n", (unsigned long long)keys[i], vals[i]);
			rc = 16;
		}
	free(keys);
	free(vals);
	return rc;
}

static uint64_t next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The push of worker `rank` in iteration `it`: sorted keys, small
 * integer values; the same in every process. */
static size_t planned_push(uint64_t seed, uint32_t rank, int it, uint64_t *keys, float *vals)
{
	uint64_t s = seed * 1000003u + rank * 7919u + (uint64_t)it;
	size_t n = 0;
	for (uint64_t k = 0; k < NKEYS; k++)
		if (next(&s) % 3 == 0) {
			keys[n] = k * 7 + 1;
			vals[n++] = (float)(1 + next(&s) % 5);
		}
	if (n == 0) {
		keys[0] = 1;
		vals[0] = 1;
		n = 1;
	}
	return n;
}

/* Sum of every worker's pushes to each key over iterations [0, upto). */
static void planned_sums(uint64_t seed, uint32_t nworkers, int upto, float *sum)
{
	uint64_t keys[NKEYS];
	float vals[NKEYS];
	memset(sum, 0, NKEYS * sizeof *sum);
	for (uint32_t r = 0; r < nworkers; r++)
		for (int it = 0; it < upto; it++) {
			size_t n = planned_push(seed, r, it, keys, vals);
			for (size_t i = 0; i < n; i++)
				sum[(keys[i] - 1) / 7] += vals[i];
		}
}

static int all_keys(uint64_t *keys)
{
	for (uint64_t k = 0; k < NKEYS; k++)
		keys[k] = k * 7 + 1;
	return NKEYS;
}

static int fail(uint32_t rank, const char *what, int rc)
{
	fprintf(stderr, "worker %u: %s: %s\n", rank, what, hps_strerror(rc));
	return 10;
}

/* Pushes (every fourth a pushpull) with up to pl->inflight outstanding,
 * clocks every iteration; under BSP pulls every key at the start of each
 * iteration and checks the staleness bounds. Ends with the exact sums. */
static int sum_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *pl = arg;
	uint32_t me = (uint32_t)hps_rank(ctx), W = (uint32_t)hps_num_workers(ctx);
	uint64_t keys[NKEYS], all[NKEYS];
	float vals[NKEYS], back[NKEYS], got[NKEYS], lo[NKEYS], hi[NKEYS];
	int64_t ts[PIPELINED];
	int inflight = pl->inflight ? pl->inflight : INFLIGHT;
	int rc, nout = 0;
	all_keys(all);
	if (pl->prefill && me == 0 && (rc = prefill(w, pl->prefill, 0)))
		return fail(me, "prefill", rc);
	for (int it = 0; it < ITERS; it++) {
		if (pl->bsp) {
			int64_t t = hps_pull(w, all, NKEYS, got, NULL);
			if ((rc = hps_wait(w, t)))
				return fail(me, "pull", rc);
			planned_sums(pl->seed, W, it, lo);
			planned_sums(pl->seed, W, it + 1, hi);
			for (int k = 0; k < NKEYS; k++)
				if (got[k] < lo[k] || got[k] > hi[k]) {
					fprintf(stderr, "worker %u: BSP pull in clock %d read %g for key %d, not in [%g, %g]\n",
						me, it, got[k], k, lo[k], hi[k]);
					return 11;
				}
		}
		size_t n = planned_push(pl->seed, me, it, keys, vals);
		if (nout == inflight) {
			if ((rc = hps_wait(w, ts[0])))
				return fail(me, "push", rc);
			memmove(ts, ts + 1, sizeof ts[0] * --nout);
		}
		ts[nout] = it % 4 == 3 ? hps_pushpull(w, keys, n, vals, back, NULL) : hps_push(w, keys, n, vals, NULL);
		if (ts[nout] < 0)
			return fail(me, "submit", (int)ts[nout]);
		nout++;
		if ((rc = hps_clock(w)))
			return fail(me, "clock", rc);
		/* a server may die during it: then the save fails, and is tried
		 * again once the replacement had time to copy its ranges (make
		 * test once: four tries back to back, within 12 ms, all fell in
		 * the recovery of two kills of one server in a row) */
		if (pl->ckpt_dir && me == 0 && it % 8 == 4)
			for (int tries = 0; (rc = hps_save(ctx, pl->ckpt_dir)) != 0; tries++) {
				if (rc != HPS_EPEERDEAD || tries == 20)
					return fail(me, "checkpoint", rc);
				usleep(50000);
			}
		if (pl->progress)
			atomic_store_explicit(&pl->progress[me], it + 1, memory_order_release);
		if (pl->pace_us)
			usleep((useconds_t)pl->pace_us);
		if (pl->started) { /* under hps launch: slow enough to be killed midway, twice */
			usleep(40000);
			if (me == 0 && it == 5)
				fclose(fopen(pl->started, "w"));
		}
	}
	for (int i = 0; i < nout; i++)
		if ((rc = hps_wait(w, ts[i])))
			return fail(me, "last pushes", rc);
	/* relaxed: the flag only says when to go on, it publishes nothing */
	for (int waited = 0; pl->hold && atomic_load_explicit(pl->hold, memory_order_relaxed) && waited < 60000; waited++)
		usleep(1000);
	if ((rc = hps_barrier(ctx)))
		return fail(me, "barrier", rc);
	int64_t t = hps_pull(w, all, NKEYS, got, NULL);
	if ((rc = hps_wait(w, t)))
		return fail(me, "final pull", rc);
	planned_sums(pl->seed, W, ITERS, lo);
	for (int k = 0; k < NKEYS; k++)
		if (got[k] != lo[k]) {
			fprintf(stderr, "worker %u: key %d holds %g, the workers pushed %g\n", me, k, got[k], lo[k]);
			return 12;
		}
	if (pl->prefill && me == 0 && (rc = prefill(w, pl->prefill, 1)))
		return fail(me, "prefilled keys", rc);
	return 0;
}

struct run {
	uint32_t S, W, K;
	uint32_t M; /* --max-servers: key ranges for M servers, S run (0: S) */
	uint64_t seed;
	int bsp;
	uint32_t ring_bytes;
	int kills;       /* servers killed (0, 1 or 2 in a row) */
	worker_fn fn;
	const char *model_out;
	const char *ckpt_dir;
	int inflight;
	int self_exit; /* server self_exit - 1 exits by itself (HPS_FAILPOINT); 0: none */
	int *fired;    /* counts the runs where it did (status 99) */
	/* Recovery: a replacement of the first server killed is started and
	 * waited for (it serves again and backs up its ranges) before the
	 * second kill, which then hits another replica of its ranges.
	 * kill_replacement: the first replacement is killed while it copies. */
	int replace, kill_replacement;
	int pace_us;
	uint32_t prefill;
	/* the workers wait after their last pushes until the kills are done
	 * (plan.hold; sum_worker): the kills land while the final pull needs
	 * the servers, however late the test wakes */
	int hold;
};

struct back_arg {
	struct job *j;
	uint32_t srv;
	uint64_t applied; /* the rank's count before the replacement started */
};

static uint64_t applied_count(const struct job *j, uint32_t srv)
{
	return atomic_load_explicit(&hpsi_seg_counters(&j->seg, srv)->replica_applied, memory_order_relaxed);
}

/* The replacement serves its range again and applies forwards of the
 * range it backs up (so its copy of that range is whole). The counters of
 * a rank go on across its replacements. */
static int replacement_back(void *a_)
{
	struct back_arg *a = a_;
	struct hpsi_node *n = hpsi_seg_node(&a->j->seg, a->srv);
	return atomic_load_explicit(&n->state, memory_order_acquire) == HPSI_NODE_ALIVE &&
	       applied_count(a->j, a->srv) > a->applied;
}

/* Starts a replacement of server v (as hps launch does); 0 once it is
 * back, else -1. */
static int replace_server(struct job *j, uint32_t v, uint64_t *s, int kill_first)
{
	if (kill_first) { /* killed at a random moment of its copy, and replaced again */
		j->servers[v] = job_fork_server(j, v, NULL);
		usleep((useconds_t)(next(s) % 20000));
		kill(j->servers[v], SIGKILL);
		waitpid(j->servers[v], NULL, 0);
		hpsi_node_mark_dead(&j->seg, v);
	}
	struct back_arg a = {j, v, applied_count(j, v)};
	j->servers[v] = job_fork_server(j, v, NULL);
	if (!poll_until(replacement_back, &a, 20000)) {
		fprintf(stderr, "  the replacement of server %u did not come back\n", v);
		return -1;
	}
	return 0;
}

static int progress_reached(void *a)
{
	void **v = a;
	_Atomic int *p = v[0];
	int target = *(int *)v[1];
	return atomic_load_explicit(p, memory_order_acquire) >= target;
}

/* Runs one job; returns how many workers failed (-1: setup failed). */
static int run_job(const struct run *r, uint32_t *killed)
{
	char stal[8];
	snprintf(stal, sizeof stal, "%s", r->bsp ? "bsp" : "asp");
	setenv("HPS_STALENESS", stal, 1);
	_Atomic int *progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (progress == MAP_FAILED)
		return -1;
	struct job j;
	struct job_opts o = {.ring_bytes = r->ring_bytes, .timeout_ms = 20000, .replicas = r->K, .max_servers = r->M};
	if (job_start(&j, r->S, r->W, &o)) {
		munmap(progress, 4096);
		return -1;
	}
	struct plan pl = {.seed = r->seed, .bsp = r->bsp, .progress = progress, .model_out = r->model_out,
			  .ckpt_dir = r->ckpt_dir, .inflight = r->inflight, .pace_us = r->pace_us,
			  .prefill = r->prefill, .hold = r->replace || r->hold ? &progress[64] : NULL};
	if (pl.hold)
		atomic_store_explicit(pl.hold, 1, memory_order_relaxed);
	int failed = 0;
	pid_t wk[8];
	for (uint32_t i = 0; i < r->W; i++)
		wk[i] = job_fork_worker(&j, i, 1, r->fn, &pl);
	uint64_t s = r->seed;
	for (int k = 0; k < r->kills; k++) {
		/* wait for a random iteration of a random worker, then kill */
		int target = k == 0 ? 1 + (int)(next(&s) % (r->replace ? 12 : ITERS - 8)) : 0;
		void *arg[2] = {&progress[next(&s) % r->W], &target};
		poll_until(progress_reached, arg, 10000);
		uint32_t victim = k == 0 ? (uint32_t)(r->seed % r->S) : (killed[0] + 1) % r->S;
		if (k == 1 && r->replace) /* the replica after it, or the one before */
			victim = (killed[0] + (next(&s) % 2 ? 1 : r->S - 1)) % r->S;
		kill(j.servers[victim], SIGKILL);
		waitpid(j.servers[victim], NULL, 0);
		/* as hps launch does on waitpid: also a server killed before its
		 * hps_init (a slow start, with pushes still in flight) is dead */
		hpsi_node_mark_dead(&j.seg, victim);
		j.servers[victim] = 0;
		killed[k] = victim;
		if (k == 0 && r->replace && replace_server(&j, victim, &s, r->kill_replacement))
			failed++;
	}
	if (pl.hold)
		atomic_store_explicit(pl.hold, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < r->W; i++) {
		int st = wait_exit(wk[i], 30000);
		if (st != 0) {
			fprintf(stderr, "  seed %llu: worker %u ended with %d\n", (unsigned long long)r->seed, i, st);
			failed++;
		}
	}
	if (r->self_exit) {
		int st = wait_exit(j.servers[r->self_exit - 1], 20000);
		*r->fired += st == 99;
		failed += st != 99 && st != 0;
		j.servers[r->self_exit - 1] = 0;
	}
	if (job_stop(&j))
		failed += 100;
	munmap(progress, 4096);
	unsetenv("HPS_STALENESS");
	return failed;
}

/* Many seeds, ASP and BSP, normal and tiny rings: one server killed at a
 * random moment; every worker ends with the exact sums. */
static void test_replica_kill_one_server_exact_sums(void)
{
	int bad = 0;
	for (uint64_t seed = 1; seed <= 12; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = (int)(seed % 2),
				.ring_bytes = seed % 3 == 0 ? 4096 : 0, .kills = 1, .fn = sum_worker};
		uint32_t killed[2];
		int f = run_job(&r, killed);
		if (f)
			fprintf(stderr, "seed %llu (%s, server %u killed): %d failed\n", (unsigned long long)seed,
				r.bsp ? "bsp" : "asp", killed[0], f);
		bad += f != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* Checkpoints while a server is killed: each one is whole or refused
 * (and saved again); the job still ends with the exact sums. */
static int big_worker(hps_ctx *ctx, hps_worker *w, void *arg);

/* Replicated jobs with room for servers (--max-servers 4 with -s 2,
 * --replicas 1): four key ranges, ranks 0 and 1 each primary of two and
 * backup of the other two (the owner and backup tables, shm/backups.h).
 * One server killed at a random moment, many seeds, ASP and BSP, normal
 * and tiny rings: its backups take its two ranges over, exact sums. */
static void test_replica_room_kill_exact_sums(void)
{
	struct job j;
	struct job_opts o = {.replicas = 1, .max_servers = 4, .no_servers = 1};
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 3, &o), 0);
	static const uint32_t own[4] = {0, 1, 0, 1}, backup[4] = {1, 0, 1, 0};
	for (uint32_t r = 0; r < 4; r++) {
		CU_ASSERT_EQUAL(hpsi_replica(&j.seg, r, 0), own[r]);
		CU_ASSERT_EQUAL(hpsi_replica(&j.seg, r, 1), backup[r]);
		CU_ASSERT_EQUAL(hpsi_replica_index(&j.seg, r, backup[r]), 1);
		CU_ASSERT_EQUAL(hpsi_replica_index(&j.seg, r, 2), HPSI_NO_SERVER); /* VACANT: no replica */
	}
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	/* one launched server cannot hold a range and its backup: refused
	 * before anything is made (shm/segment.c) */
	struct job_opts one = {.replicas = 1, .max_servers = 4, .no_servers = 1};
	CU_ASSERT_EQUAL(job_start(&j, 1, 1, &one), HPS_ECONFIG);
	int bad = 0;
	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct run r = {.S = 2, .M = 4, .W = 3, .K = 1, .seed = seed, .bsp = (int)(seed % 2), .kills = 1,
				.ring_bytes = seed % 3 == 0 ? 4096 : 0, .fn = sum_worker};
		uint32_t killed[2];
		int failed = run_job(&r, killed);
		if (failed)
			fprintf(stderr, "  seed %llu: killed server %u, %d failed\n", (unsigned long long)seed, killed[0], failed);
		bad += failed != 0;
	}
	/* pushes whose bodies stay in the worker's heap: each waits for the
	 * backup's ack, which comes on the answer ring of the backup's own
	 * range (replica.c) */
	for (uint64_t seed = 91; seed <= 94; seed++) {
		struct run r = {.S = 2, .M = 4, .W = 3, .K = 1, .seed = seed, .kills = 1, .ring_bytes = 4096,
				.fn = big_worker};
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

static void test_replica_kill_during_checkpoints(void)
{
	char dir[64], cmd[256];
	snprintf(dir, sizeof dir, "/tmp/hps_replica_ckpt_%d", (int)getpid());
	int bad = 0;
	for (uint64_t seed = 41; seed <= 44; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = (int)(seed % 2), .kills = 1,
				.fn = sum_worker, .ckpt_dir = dir};
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s %s.old %s.partial", dir, dir, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	CU_ASSERT_EQUAL(bad, 0);
}

/* Many pushes in flight (ASP): the killed primary is more often in the
 * middle of a batch it has applied and forwarded but not yet released, so
 * the backup reads those pushes again and must not apply them twice. */
static void test_replica_kill_pipelined_pushes(void)
{
	int bad = 0;
	for (uint64_t seed = 51; seed <= 62; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = 0, .kills = 1, .fn = sum_worker,
				.inflight = PIPELINED};
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* A primary that dies exactly after publishing its forwards, before its
 * answers and the release of the requests (HPS_FAILPOINT): the backup
 * reads those requests again, and their pushes, which it already applied
 * from the forwards, must not be applied twice. With K=2 the next backup also sees
 * them twice, from the dead primary and from its successor. */
static void test_replica_primary_dies_between_forward_and_release(void)
{
	int bad = 0, fired = 0;
	for (uint64_t seed = 71; seed <= 82; seed++) {
		char fp[64];
		uint32_t K = 1 + (uint32_t)(seed % 2);
		snprintf(fp, sizeof fp, "forwarded:%u:%u", (unsigned)(seed % 3), 2 + (unsigned)(seed * 7 % 12));
		setenv("HPS_FAILPOINT", fp, 1);
		struct run r = {.S = 3 + (K == 2), .W = 3, .K = K, .seed = seed, .bsp = (int)(seed / 2 % 2), .kills = 0,
				.fn = sum_worker, .inflight = PIPELINED, .self_exit = (int)(seed % 3) + 1, .fired = &fired};
		uint32_t killed[2];
		int f = run_job(&r, killed);
		if (f)
			fprintf(stderr, "seed %llu (K=%u, %s): %d failed\n", (unsigned long long)seed, K, fp, f);
		bad += f != 0;
	}
	unsetenv("HPS_FAILPOINT");
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(fired >= 9); /* the path was taken, not skipped by a short job */
}

/* Pushes too large for a ring record travel through the worker's heap,
 * which backups read there: those wait for every live backup's
 * acknowledgement. 3000 keys of value 1 per push, every key ends at
 * workers x iterations. */
#define BIG_KEYS 3000
static int big_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *pl = arg;
	uint32_t me = (uint32_t)hps_rank(ctx), W = (uint32_t)hps_num_workers(ctx);
	static uint64_t keys[BIG_KEYS];
	static float ones[BIG_KEYS], got[BIG_KEYS];
	int64_t ts[4];
	int rc, nout = 0;
	for (int k = 0; k < BIG_KEYS; k++)
		keys[k] = (uint64_t)k, ones[k] = 1;
	for (int it = 0; it < ITERS; it++) {
		if (nout == 4) {
			if ((rc = hps_wait(w, ts[0])))
				return fail(me, "push", rc);
			memmove(ts, ts + 1, sizeof ts[0] * --nout);
		}
		if ((ts[nout++] = hps_push(w, keys, BIG_KEYS, ones, NULL)) < 0)
			return fail(me, "submit", (int)ts[nout - 1]);
		atomic_store_explicit(&pl->progress[me], it + 1, memory_order_release);
		if (pl->pace_us)
			usleep((useconds_t)pl->pace_us);
	}
	for (int i = 0; i < nout; i++)
		if ((rc = hps_wait(w, ts[i])))
			return fail(me, "last pushes", rc);
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, keys, BIG_KEYS, got, NULL))))
		return fail(me, "final pull", rc);
	for (int k = 0; k < BIG_KEYS; k++)
		if (got[k] != (float)(W * ITERS)) {
			fprintf(stderr, "worker %u: key %d holds %g, the workers pushed %u\n", me, k, got[k], W * ITERS);
			return 12;
		}
	return 0;
}

static void test_replica_kill_with_heap_pushes(void)
{
	int bad = 0;
	for (uint64_t seed = 91; seed <= 96; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1 + (uint32_t)(seed % 2), .seed = seed, .kills = 1,
				.ring_bytes = 4096, .fn = big_worker};
		r.S = r.K == 2 ? 4 : 3;
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* Recovery: a replacement of a killed server copies its key ranges while
 * the workers push (normal and tiny rings, small and large tables), serves
 * its range again and backs up the one before it; then another replica of
 * those ranges is killed, and nothing is lost: the sums are exact. */
static void test_replica_replacement_then_second_kill(void)
{
	int bad = 0;
	for (uint64_t seed = 91; seed <= 98; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = (int)(seed % 2), .kills = 2,
				.fn = sum_worker, .replace = 1, .pace_us = 15000,
				.ring_bytes = seed % 4 == 0 ? 4096 : 0, .inflight = seed % 3 == 0 ? PIPELINED : 0,
				/* a table the copy takes many turns of the loop for: pushes
				 * land on keys it copied already, which go again */
				.prefill = seed % 2 ? 60000 : 0};
		uint32_t killed[2];
		int f = run_job(&r, killed);
		if (f)
			fprintf(stderr, "seed %llu (%s, server %u replaced, then server %u killed): %d failed\n",
				(unsigned long long)seed, r.bsp ? "bsp" : "asp", killed[0], killed[1], f);
		bad += f != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* A replacement killed at a random moment of its copy is replaced again;
 * K=2 with four servers too. */
static void test_replica_replacement_killed_while_copying(void)
{
	int bad = 0;
	for (uint64_t seed = 101; seed <= 106; seed++) {
		int k2 = seed % 2 == 0;
		struct run r = {.S = k2 ? 4 : 3, .W = 3, .K = k2 ? 2 : 1, .seed = seed, .bsp = (int)(seed % 3 == 0),
				.kills = 2, .fn = sum_worker, .replace = 1, .kill_replacement = 1, .pace_us = 15000};
		uint32_t killed[2];
		int f = run_job(&r, killed);
		if (f)
			fprintf(stderr, "seed %llu (K=%u, server %u replaced twice, then server %u killed): %d failed\n",
				(unsigned long long)seed, r.K, killed[0], killed[1], f);
		bad += f != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* Checkpoints every few clocks while a server is killed, replaced, and
 * another replica killed: each checkpoint is whole or refused (and saved
 * again), and the sums are exact. */
static void test_replica_checkpoints_during_recovery(void)
{
	char dir[64], cmd[256];
	snprintf(dir, sizeof dir, "/tmp/hps_replica_rckpt_%d", (int)getpid());
	int bad = 0;
	for (uint64_t seed = 111; seed <= 114; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = (int)(seed % 2), .kills = 2,
				.fn = sum_worker, .ckpt_dir = dir, .replace = 1, .pace_us = 15000,
				.prefill = seed % 2 ? 0 : 30000};
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s %s.old %s.partial", dir, dir, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	CU_ASSERT_EQUAL(bad, 0);
}

/* Copies of key ranges travel between servers of one job, but their
 * reader checks them like any message: bad records written where server 2
 * (never started here: this test plays it) would copy range 0 to server 1
 * are dropped, the reader stays up and reads on. K=2, S=3: server 1 holds
 * range 0 as its second replica, server 2 is its third. */
static int ring_read(void *r_)
{
	struct hpsi_ring *r = r_;
	return atomic_load_explicit(&r->head, memory_order_acquire) == atomic_load_explicit(&r->tail, memory_order_acquire);
}

static void put_sync(struct hpsi_ring_prod *p, uint32_t part, uint16_t range, uint32_t width, uint32_t nkeys,
		     const void *body, size_t n, uint32_t magic)
{
	struct hpsi_msg_hdr *h = hpsi_ring_reserve(p, sizeof *h + n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	hpsi_msg_init(h, HPSI_MSG_SYNC, 2, 0);
	h->magic = magic;
	h->flags = HPSI_F_REPLICA;
	h->range = range;
	h->part = part;
	h->width = width;
	h->nkeys = nkeys;
	h->clock = 0; /* server 1's incarnation */
	h->val_bytes = n;
	if (n)
		memcpy(h + 1, body, n);
	hpsi_ring_commit(p, sizeof *h + n);
}

static void test_replica_bad_copies_are_dropped(void)
{
	struct job j;
	struct job_opts o = {.timeout_ms = 20000, .replicas = 2, .no_servers = 1};
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 3, 1, &o), 0);
	j.servers[0] = job_fork_server(&j, 0, NULL);
	j.servers[1] = job_fork_server(&j, 1, NULL);
	struct hpsi_ring *r = hpsi_seg_fwd_ring(&j.seg, 2, 1);
	struct hpsi_ring_prod p;
	hpsi_ring_prod_attach(&p, r, j.seg.hdr->ring_bytes);
	struct {
		uint64_t key;
		uint32_t len, steps;
		uint64_t off, n;
		float v[2];
	} rec = {.key = 5, .len = 2, .steps = 1, .off = 0, .n = 8, .v = {1, 2}};
	uint64_t peers[3] = {0, 0, 0};
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, 0xdeadbeef);     /* bad magic */
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, HPSI_MSG_MAGIC); /* records before any BEGIN */
	put_sync(&p, 9, 0, 0, 0, NULL, 0, HPSI_MSG_MAGIC);          /* no such part */
	put_sync(&p, 0, 2, 1, 0, NULL, 0, HPSI_MSG_MAGIC);          /* range 2 "handed back" by its primary */
	put_sync(&p, 0, 1, 1, 0, NULL, 0, HPSI_MSG_MAGIC);          /* a range server 1 serves */
	struct {
		uint32_t len, pad;
		uint64_t keys;
	} shapes[5] = {{2, 0, UINT64_MAX / 4}, {1, 0, 10}, {3, 0, 10}, {4, 0, 10}, {5, 0, 10}};
	put_sync(&p, 0, 0, 0, 0, shapes, 5, HPSI_MSG_MAGIC);        /* BEGIN of a cut shape */
	put_sync(&p, 0, 0, 0, 0, shapes, sizeof shapes, HPSI_MSG_MAGIC); /* of five shapes (four at most) */
	put_sync(&p, 0, 0, 0, 0, shapes, 16, HPSI_MSG_MAGIC);       /* keys past any memory: no room set aside */
	put_sync(&p, 0, 0, 0, 0, NULL, 0, HPSI_MSG_MAGIC);          /* BEGIN of range 0: fine */
	rec.len = 0;
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, HPSI_MSG_MAGIC); /* a record of no values */
	rec.len = UINT32_MAX;
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, HPSI_MSG_MAGIC); /* of 2^32 - 1 values */
	rec.len = 2;
	rec.off = 8;
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, HPSI_MSG_MAGIC); /* bytes past its end */
	rec.off = 0;
	rec.n = 4096;
	put_sync(&p, 1, 0, 0, 0, &rec, sizeof rec, HPSI_MSG_MAGIC); /* longer than its message */
	put_sync(&p, 2, 0, 0, 1, peers, 24, HPSI_MSG_MAGIC);         /* FINAL piece out of order */
	put_sync(&p, 2, 0, 0, 0, peers, 20, HPSI_MSG_MAGIC);         /* FINAL of a partial worker */
	hpsi_ring_publish(&p);
	hpsi_node_wake(&j.seg, 1);
	CU_ASSERT(poll_until(ring_read, r, 10000));
	CU_ASSERT_EQUAL(kill(j.servers[1], 0), 0); /* still running */
	CU_ASSERT_EQUAL(hpsi_node_check(&j.seg, 1), HPSI_NODE_ALIVE);
	atomic_store_explicit(&j.seg.hdr->shutdown, 1, memory_order_release);
	hpsi_wake_all(&j.seg);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* K=2 survives two servers killed one after the other. */
static void test_replica_two_backups_survive_two_kills(void)
{
	int bad = 0;
	for (uint64_t seed = 21; seed <= 24; seed++) {
		struct run r = {.S = 4, .W = 3, .K = 2, .seed = seed, .bsp = (int)(seed % 2), .kills = 2, .fn = sum_worker};
		uint32_t killed[2];
		bad += run_job(&r, killed) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* The same kill without replicas fails the job: the test above is not
 * vacuous (the kill lands while the workers need the server). Held, not
 * paced: the workers wait after their last pushes until the kill is done
 * (run.hold), so their final pull always needs the killed server; a pace
 * only made a late wake-up of the test (a loaded machine) unlikely to
 * find the job done. */
static void test_replica_without_replicas_the_kill_loses(void)
{
	int lost = 0;
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct run r = {.S = 3, .W = 3, .K = 0, .seed = seed, .bsp = 0, .kills = 1, .fn = sum_worker,
				.hold = 1};
		uint32_t killed[2];
		lost += run_job(&r, killed) > 0;
	}
	CU_ASSERT_EQUAL(lost, 3);
}

/* Both replicas of a range dead with K=1: its requests fail with
 * HPS_EPEERDEAD within the timeout; nothing hangs. */
static int doomed_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *pl = arg;
	uint32_t me = (uint32_t)hps_rank(ctx);
	uint64_t all[NKEYS];
	float got[NKEYS], ones[NKEYS];
	all_keys(all);
	for (int k = 0; k < NKEYS; k++)
		ones[k] = 1;
	int64_t t0 = hpsi_now_ns();
	for (int it = 0; it < 100000; it++) {
		int64_t ts = hps_push(w, all, NKEYS, ones, NULL);
		int rc = ts < 0 ? (int)ts : hps_wait(w, ts);
		if (rc == 0)
			rc = hps_wait(w, hps_pull(w, all, NKEYS, got, NULL));
		if (it == 2)
			atomic_store_explicit(&pl->progress[me], 100, memory_order_release);
		if (rc == HPS_EPEERDEAD)
			return 0;
		if (rc)
			return fail(me, "expected HPS_EPEERDEAD", rc);
		if (hpsi_now_ns() - t0 > 15000000000ll)
			return 13;
	}
	return 14;
}

static void test_replica_every_replica_dead_fails_cleanly(void)
{
	struct run r = {.S = 3, .W = 2, .K = 1, .seed = 5, .kills = 2, .fn = doomed_worker};
	uint32_t killed[2];
	int64_t t0 = hpsi_now_ns();
	CU_ASSERT_EQUAL(run_job(&r, killed), 0);
	CU_ASSERT(hpsi_now_ns() - t0 < 20000000000ll);
}

/* Deterministic BSP with Adam on the servers: pull, a gradient from the
 * pulled values, push, clock. Worker 0 writes the final model. */
static int adam_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *pl = arg;
	uint32_t me = (uint32_t)hps_rank(ctx);
	uint64_t all[NKEYS];
	float got[NKEYS], grad[NKEYS];
	int rc;
	all_keys(all);
	for (int it = 0; it < ITERS; it++) {
		if ((rc = hps_wait(w, hps_pull(w, all, NKEYS, got, NULL))))
			return fail(me, "pull", rc);
		for (int k = 0; k < NKEYS; k++)
			grad[k] = 0.25f * (got[k] - (float)(k % 5)) + 0.01f * (float)me;
		if ((rc = hps_wait(w, hps_push(w, all, NKEYS, grad, NULL))))
			return fail(me, "push", rc);
		if ((rc = hps_clock(w)))
			return fail(me, "clock", rc);
		atomic_store_explicit(&pl->progress[me], it + 1, memory_order_release);
		if (pl->pace_us)
			usleep((useconds_t)pl->pace_us);
	}
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, all, NKEYS, got, NULL))))
		return fail(me, "final pull", rc);
	if (me == 0) {
		FILE *f = fopen(pl->model_out, "wb");
		if (!f || fwrite(got, sizeof got, 1, f) != 1)
			return 15;
		fclose(f);
	}
	return 0;
}

static int read_model(const char *path, float *m)
{
	FILE *f = fopen(path, "rb");
	int ok = f && fread(m, sizeof(float) * NKEYS, 1, f) == 1;
	if (f)
		fclose(f);
	unlink(path);
	return ok;
}

/* Adam under deterministic BSP: a run with a server killed mid-run ends
 * with the model of a run without the kill, bit for bit (the backup holds
 * the same optimizer state and continues the same order). Every other
 * seed, a replacement copies the ranges back and then another replica of
 * them dies: the copy holds the optimizer state bit for bit too. */
static void test_replica_deterministic_adam_bit_identical(void)
{
	char clean[64], killed_path[64];
	snprintf(clean, sizeof clean, "/tmp/hps_adam_%d_a", (int)getpid());
	snprintf(killed_path, sizeof killed_path, "/tmp/hps_adam_%d_b", (int)getpid());
	setenv("HPS_UPDATER", "adam:lr=0.05", 1);
	setenv("HPS_DETERMINISTIC", "1", 1);
	int bad = 0;
	for (uint64_t seed = 31; seed <= 34; seed++) {
		uint32_t killed[2];
		struct run r = {.S = 3, .W = 3, .K = 1, .seed = seed, .bsp = 1, .kills = 0, .fn = adam_worker,
				.model_out = clean};
		float a[NKEYS], b[NKEYS];
		int f0 = run_job(&r, killed);
		r.kills = 1;
		r.model_out = killed_path;
		if (seed % 2 == 0) { /* a replacement copies Adam's state, then the other replica dies */
			r.kills = 2;
			r.replace = 1;
			r.pace_us = 10000;
		}
		int f1 = run_job(&r, killed);
		if (f0 || f1 || !read_model(clean, a) || !read_model(killed_path, b) || memcmp(a, b, sizeof a)) {
			fprintf(stderr, "seed %llu: runs failed (%d, %d) or models differ\n", (unsigned long long)seed, f0, f1);
			bad++;
		}
	}
	unsetenv("HPS_UPDATER");
	unsetenv("HPS_DETERMINISTIC");
	CU_ASSERT_EQUAL(bad, 0);
}

/* The pid of server `rank` of job `job`: an `hps server` process whose
 * environment names the job and the rank; 0 if none. */
static pid_t find_server(const char *job, int rank)
{
	char want_job[96], want_rank[32];
	snprintf(want_job, sizeof want_job, "HPS_JOB_ID=%s", job);
	snprintf(want_rank, sizeof want_rank, "HPS_RANK=%d", rank);
	DIR *proc = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	while (proc && !found && (e = readdir(proc))) {
		pid_t pid = (pid_t)atoi(e->d_name);
		char path[300], env[8192];
		snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
		FILE *f = pid > 0 ? fopen(path, "r") : NULL;
		if (!f)
			continue;
		size_t n = fread(env, 1, sizeof env - 1, f);
		fclose(f);
		int job_ok = 0, rank_ok = 0, server = 0;
		for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
			env[n] = 0;
			job_ok |= strcmp(env + at, want_job) == 0;
			rank_ok |= strcmp(env + at, want_rank) == 0;
			server |= strcmp(env + at, "HPS_ROLE=server") == 0;
		}
		if (job_ok && rank_ok && server)
			found = pid;
	}
	if (proc)
		closedir(proc);
	return found;
}

static int file_exists(void *path)
{
	return access(path, F_OK) == 0;
}

struct log_says {
	const char *path, *text;
};

static int log_says(void *a_)
{
	struct log_says *a = a_;
	char buf[16384];
	return strstr(slurp_into(a->path, buf, sizeof buf), a->text) != NULL;
}

/* The user's story: `hps launch -s 3 -w 2 --replicas 1`, kill -9 a server
 * midway; the launcher says so and starts a replacement, which copies its
 * key ranges and serves again; then the other replica of its range is
 * killed too; the job goes on and exits 0 with exact sums. */
static void test_replica_launch_survives_kill(void)
{
	char job[32], flag[64], log[64], cmd[512], out[8192], self[256];
	snprintf(job, sizeof job, "rl%d", (int)getpid());
	snprintf(flag, sizeof flag, "/tmp/hps_%s_started", job);
	snprintf(log, sizeof log, "/tmp/hps_%s.log", job);
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	CU_ASSERT_FATAL(sl > 0);
	self[sl] = 0;
	unlink(flag);
	snprintf(cmd, sizeof cmd, "exec %s launch -s 3 -w 2 --replicas 1 --job %s -- %s --launched-worker 7 %s", hps_bin(),
		 job, self, flag);
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	CU_ASSERT_FATAL(poll_until(file_exists, flag, 20000));
	/* the backups count what they applied (hps metrics) */
	char mlog[80];
	snprintf(mlog, sizeof mlog, "%s.metrics", log);
	snprintf(cmd, sizeof cmd, "exec %s metrics --job %s", hps_bin(), job);
	CU_ASSERT_EQUAL(finish_group(spawn_logged(mlog, "/bin/sh", cmd), 10000), 0);
	slurp_into(mlog, out, sizeof out);
	const char *applied = strstr(out, "hps_replica_applied_total{");
	CU_ASSERT(applied && strtoull(strchr(applied, '}') + 1, NULL, 10) > 0);
	unlink(mlog);
	pid_t victim = find_server(job, 1);
	CU_ASSERT(victim > 0);
	if (victim > 0)
		kill(victim, SIGKILL);
	struct log_says back = {log, "server 1 is back"};
	CU_ASSERT(poll_until(log_says, &back, 20000));
	pid_t second = find_server(job, 2);
	CU_ASSERT(second > 0);
	if (second > 0)
		kill(second, SIGKILL);
	CU_ASSERT_EQUAL(finish_group(pid, 30000), 0);
	slurp_into(log, out, sizeof out);
	CU_ASSERT(strstr(out, "served by their backups") != NULL);
	CU_ASSERT(strstr(out, "started a replacement for server 1") != NULL);
	if (!strstr(out, "served by their backups") || !strstr(out, "started a replacement for server 1"))
		fprintf(stderr, "%s\n", out);
	unlink(flag);
	unlink(log);
}

/* What replication does not support is refused in one line, before
 * anything starts: too few servers, too many replicas, direct ranges, a
 * user handler, a job across hosts. */
static void test_replica_refusals(void)
{
	static const struct {
		const char *args, *says;
	} cases[] = {
		{"-s 2 -w 1 --replicas 2 -- /bin/true", "HPS_REPLICAS=2 needs more servers"},
		{"-s 5 -w 1 --replicas 4 -- /bin/true", "HPS_REPLICAS=4: expected an integer from 0 to 3"},
		{"-s 2 -w 1 --replicas 1 --key-ranges 0-99,100-199 --direct 4 -- /bin/true", "HPS_DIRECT with HPS_REPLICAS"},
		{"--self-serve -s 2 -w 1 --replicas 1 -- ", "HPS_REPLICAS with a user handler"},
	};
	char log[64], cmd[512], out[8192], quick[256];
	example_bin("quickstart", quick, sizeof quick);
	snprintf(log, sizeof log, "/tmp/hps_refuse_%d.log", (int)getpid());
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int self_serve = strstr(cases[i].args, "--self-serve") != NULL;
		snprintf(cmd, sizeof cmd, "exec %s launch %s%s", hps_bin(), cases[i].args, self_serve ? quick : "");
		pid_t pid = spawn_logged(log, "/bin/sh", cmd);
		int st = finish_group(pid, 20000);
		slurp_into(log, out, sizeof out);
		CU_ASSERT(st != 0);
		CU_ASSERT(strstr(out, cases[i].says) != NULL);
		if (!strstr(out, cases[i].says))
			fprintf(stderr, "%s: %s\n", cases[i].args, out);
	}
	/* a fault injection the servers cannot read stops the job, named
	 * (clockdie's count starts at 1, as forwarded's) */
	const char *bad_fp[] = {"soon", "clockdie:1:0:0", "handslow:10001"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(cmd, sizeof cmd, "HPS_FAILPOINT=%s exec %s launch -s 2 -w 1 --replicas 1 -- %s", bad_fp[i],
			 hps_bin(), quick);
		CU_ASSERT(finish_group(spawn_logged(log, "/bin/sh", cmd), 20000) != 0);
		slurp_into(log, out, sizeof out);
		char says[80];
		snprintf(says, sizeof says, "HPS_FAILPOINT=%s: expected forwarded:RANK:N", bad_fp[i]);
		CU_ASSERT(strstr(out, says) != NULL);
		CU_ASSERT(strstr(out, "clockdie:RANK:WORKER:N (N >= 1)") != NULL);
	}
	unlink(log);
	/* across hosts: the segment of a bridged host group is made (it was
	 * refused without HPS_XREPLICAS=1, an opt-in that is gone) */
	struct hpsi_seg seg;
	struct hpsi_seg_params p = {.job = "replrefuse", .host = "h", .nservers = 2, .nworkers = 1,
				    .ring_bytes = 4096, .heap_slice = 8u << 20, .timeout_ms = 1000, .replicas = 1,
				    .bridged = 1, .srv_lo = 0, .srv_hi = 1, .wrk_lo = 0, .wrk_hi = 1};
	int rc = hpsi_seg_create(&p, &seg);
	CU_ASSERT_EQUAL(rc, 0);
	if (!rc) {
		hpsi_seg_unlink(&seg);
		hpsi_seg_detach(&seg);
	}
}


static int state_is_alive(void *a_)
{
	struct back_arg *a = a_;
	return atomic_load_explicit(&hpsi_seg_node(&a->j->seg, a->srv)->state, memory_order_acquire) == HPSI_NODE_ALIVE;
}

/* A paced job of S servers with K replicas and 3 workers summing (ASP),
 * started and run until worker 0 reached its third iteration. */
struct paced {
	struct job j;
	_Atomic int *progress;
	struct plan pl;
	pid_t wk[3];
};

static void paced_start(struct paced *p, uint32_t S, uint32_t K, uint64_t seed, uint32_t prefill)
{
	setenv("HPS_STALENESS", "asp", 1);
	p->progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(p->progress != MAP_FAILED);
	struct job_opts o = {.timeout_ms = 20000, .replicas = K};
	CU_ASSERT_FATAL(job_start(&p->j, S, 3, &o) == 0);
	p->pl = (struct plan){.seed = seed, .progress = p->progress, .pace_us = 15000, .prefill = prefill,
			      .hold = &p->progress[64]};
	atomic_store_explicit(p->pl.hold, 1, memory_order_relaxed); /* until paced_finish */
	for (uint32_t i = 0; i < 3; i++)
		p->wk[i] = job_fork_worker(&p->j, i, 1, sum_worker, &p->pl);
	int target = 3;
	void *arg[2] = {&p->progress[0], &target};
	poll_until(progress_reached, arg, 60000);
}

/* Waits for the workers and stops the job; returns how many failed. */
static int paced_finish(struct paced *p)
{
	int failed = 0;
	atomic_store_explicit(p->pl.hold, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < 3; i++) {
		int st = wait_exit(p->wk[i], 40000);
		if (st != 0) {
			fprintf(stderr, "  seed %llu: worker %u ended with %d\n", (unsigned long long)p->pl.seed, i, st);
			failed++;
		}
	}
	if (job_stop(&p->j))
		failed += 100;
	munmap(p->progress, 4096);
	unsetenv("HPS_STALENESS");
	return failed;
}

static void kill_server(struct job *j, uint32_t v)
{
	kill(j->servers[v], SIGKILL);
	waitpid(j->servers[v], NULL, 0);
	hpsi_node_mark_dead(&j->seg, v); /* as hps launch does on waitpid */
	j->servers[v] = 0;
}

/* K=2, S=4: server 1 is killed and replaced; as soon as the replacement
 * serves again (range 0's copy to it just starting), range 0's primary
 * (server 0) dies. Server 2 holds range 0 whole and takes it over (the
 * replacement, without its copy, is no replica yet); exact sums. */
static void test_replica_primary_dies_while_copying(void)
{
	int bad = 0;
	for (uint64_t seed = 201; seed <= 202; seed++) {
		struct paced p;
		paced_start(&p, 4, 2, seed, 1500000);
		kill_server(&p.j, 1);
		p.j.servers[1] = job_fork_server(&p.j, 1, NULL);
		struct back_arg a = {&p.j, 1, 0};
		int64_t end = hpsi_now_ns() + 20000000000ll;
		while (!state_is_alive(&a) && hpsi_now_ns() < end)
			; /* no sleep: the kill must land at the start of the copy */
		kill_server(&p.j, 0);
		bad += paced_finish(&p) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* Pushes through the worker's heap wait for backup 1's ack; backup 1 is
 * stopped, killed and replaced while the worker sleeps (4 KiB rings): the
 * replacement never got those pushes, and the worker, seeing a new
 * incarnation, stops waiting for it; exact sums. */
static void test_replica_backup_replaced_before_its_ack(void)
{
	int bad = 0;
	for (uint64_t seed = 301; seed <= 302; seed++) {
		_Atomic int *progress = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		struct job j;
		struct job_opts o = {.ring_bytes = 4096, .timeout_ms = 20000, .replicas = 1};
		CU_ASSERT_FATAL(job_start(&j, 3, 1, &o) == 0);
		struct plan pl = {.seed = seed, .progress = progress, .pace_us = 20000};
		pid_t wk = job_fork_worker(&j, 0, 1, big_worker, &pl);
		int target = 2;
		void *arg[2] = {&progress[0], &target};
		poll_until(progress_reached, arg, 60000);
		kill(j.servers[1], SIGSTOP);
		usleep(100000);
		kill(wk, SIGSTOP); /* the worker descheduled for a while */
		kill(j.servers[1], SIGKILL);
		waitpid(j.servers[1], NULL, 0);
		j.servers[1] = job_fork_server(&j, 1, NULL); /* it marks the old one dead itself */
		/* back while the worker sleeps, unless a full answer ring of the
		 * stopped worker holds the takeover up */
		struct back_arg a = {&j, 1, 0};
		poll_until(state_is_alive, &a, 2000);
		kill(wk, SIGCONT);
		int st = wait_exit(wk, 40000);
		fprintf(stderr, "  seed %llu: worker ended with %d\n", (unsigned long long)seed, st);
		int failed = st != 0;
		if (job_stop(&j))
			failed += 100;
		munmap(progress, 4096);
		bad += failed != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* How often needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *at = hay; (at = strstr(at, needle)); at += strlen(needle))
		n++;
	return n;
}

/* K=1, S=3: server 1 is killed and replaced; server 2 serves range 1 and
 * hands it back. HPS_FAILPOINT=handback:2 opens the window between server
 * 2's two looks at the replacement: it finds range 1's replicas gone (the
 * replacement JOINING), then waits until the replacement serves range 1
 * and stored ALIVE, then asks whether it handed the range back. It must
 * not take range 1 over again: two servers would read one ring (requests
 * lost, the workers time out). The servers' log says exactly once that
 * server 2 serves range 1, the failpoint fired, and the sums are exact. */
static void test_replica_handback_not_taken_again(void)
{
	char log[] = "/tmp/hps_handback_XXXXXX";
	int fd = mkstemp(log), saved = dup(STDERR_FILENO);
	CU_ASSERT_FATAL(fd >= 0 && saved >= 0);
	dup2(fd, STDERR_FILENO); /* the servers' lines, forked below */
	close(fd);
	setenv("HPS_FAILPOINT", "handback:2", 1);
	struct paced p;
	paced_start(&p, 3, 1, 311, 0);
	unsetenv("HPS_FAILPOINT");
	kill_server(&p.j, 1);
	p.j.servers[1] = job_fork_server(&p.j, 1, NULL);
	struct back_arg a = {&p.j, 1, 0};
	int back = poll_until(state_is_alive, &a, 20000);
	int failed = paced_finish(&p);
	dup2(saved, STDERR_FILENO);
	close(saved);
	static char out[1 << 20];
	slurp_into(log, out, sizeof out);
	unlink(log);
	int fired = count_of(out, "(HPS_FAILPOINT=handback)");
	int served = count_of(out, "server 2 now serves key range 1:");
	if (!back || failed || fired != 1 || served != 1)
		fprintf(stderr, "back %d, failed %d, failpoint fired %d, range 1 taken over %d times; log:\n%s\n", back,
			failed, fired, served, out);
	CU_ASSERT(back);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(fired, 1);
	CU_ASSERT_EQUAL(served, 1);
}

/* K=2, S=4: servers 1 and 2 die together and are replaced together: each
 * gets its ranges copied (none assumes the other holds one it does not),
 * both serve again; exact sums. */
static void test_replica_two_adjacent_servers_replaced(void)
{
	int bad = 0;
	for (uint64_t seed = 401; seed <= 402; seed++) {
		struct paced p;
		paced_start(&p, 4, 2, seed, 200000);
		kill_server(&p.j, 1);
		kill_server(&p.j, 2);
		usleep(50000);
		p.j.servers[1] = job_fork_server(&p.j, 1, NULL);
		p.j.servers[2] = job_fork_server(&p.j, 2, NULL);
		struct back_arg a1 = {&p.j, 1, 0}, a2 = {&p.j, 2, 0};
		int back = poll_until(state_is_alive, &a1, 10000) && poll_until(state_is_alive, &a2, 10000);
		if (!back)
			fprintf(stderr, "  seed %llu: a replacement did not come back\n", (unsigned long long)seed);
		bad += (paced_finish(&p) != 0) | !back;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* With room (one backup, named by rank in the primary's answer), a
 * backup's ack counts only from the rank the primary forwarded the push
 * to (runtime/client/worker.c, room_ack_counts). The test plays both
 * servers of a job with room (S = 2, M = 4): it reads worker 0's pushes
 * (through its heap: they wait for the backup's ack) and answers them
 * itself. First an ack from rank 0, then the answer naming backup 1:
 * the push is not done (it times out; before the check it returned 0).
 * Then the answer, the ack of rank 0, the ack of rank 1: done. */
#define ACK_WIDTH 1024

struct ack_plan {
	uint64_t key;
};

static int ack_rank_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	const struct ack_plan *pl = arg;
	static float vals[ACK_WIDTH];
	int rc = hps_wait(w, hps_push(w, &pl->key, 1, vals, NULL));
	if (rc != HPS_ETIMEDOUT) {
		fprintf(stderr, "push acked by rank 0 only ended with %s, not a timeout\n", hps_strerror(rc));
		return 1;
	}
	if ((rc = hps_wait(w, hps_push(w, &pl->key, 1, vals, NULL)))) {
		fprintf(stderr, "push acked by rank 1 ended with %s\n", hps_strerror(rc));
		return 2;
	}
	return 0;
}

static int ring_has(void *c_)
{
	size_t len;
	return hpsi_ring_peek(c_, &len) != NULL;
}

/* Writes a bare answer (or, flags HPSI_F_REPLICA, an ack) of `sender` to
 * the request h into p. */
static void put_answer(struct hpsi_ring_prod *p, const struct hpsi_msg_hdr *h, uint32_t sender, uint16_t flags,
		       uint32_t named_backup)
{
	struct hpsi_msg_hdr *a = hpsi_ring_reserve(p, sizeof *a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	hpsi_msg_init(a, HPSI_MSG_RESPONSE, sender, h->timestamp);
	a->part = h->part;
	a->range = h->range;
	a->dtype = h->dtype;
	a->flags = flags;
	if (!flags) {
		a->fwd_mask = 2; /* forwarded to backup 1 ... */
		a->fwd_incarnations = named_backup << 16; /* ... rank named_backup, incarnation 0 */
	}
	hpsi_ring_commit(p, sizeof *a);
}

static void test_replica_room_ack_of_another_rank(void)
{
	struct job j;
	struct job_opts o = {.replicas = 1, .max_servers = 4, .no_servers = 1, .ring_bytes = 4096, .timeout_ms = 1500};
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, &o), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_replica(&j.seg, 0, 1), 1);
	for (uint32_t s = 0; s < 2; s++) { /* this process is both servers */
		struct hpsi_node *n = hpsi_seg_node(&j.seg, s);
		atomic_store(&n->birth, hpsi_proc_birth(getpid()));
		atomic_store(&n->pid, getpid());
		atomic_store(&n->state, HPSI_NODE_ALIVE);
	}
	struct ack_plan pl = {0};
	while (hpsi_route_key(&j.seg, pl.key) != 0)
		pl.key++;
	struct hpsi_ring_cons req;
	struct hpsi_ring_prod resp;
	hpsi_ring_cons_attach(&req, hpsi_seg_ring(&j.seg, 0, 0, 0), j.seg.hdr->ring_bytes);
	hpsi_ring_prod_attach(&resp, hpsi_seg_ring(&j.seg, 0, 0, 1), j.seg.hdr->ring_bytes);
	pid_t wk = job_fork_worker(&j, 0, ACK_WIDTH, ack_rank_worker, &pl);
	for (int round = 0; round < 2; round++) {
		CU_ASSERT_FATAL(poll_until(ring_has, &req, 20000));
		size_t len = 0;
		struct hpsi_msg_hdr h = *(const struct hpsi_msg_hdr *)hpsi_ring_peek(&req, &len);
		CU_ASSERT_EQUAL(h.type, HPSI_MSG_PUSH);
		CU_ASSERT(h.flags & HPSI_F_HEAP_VALS); /* it waits for its backup's ack */
		hpsi_ring_consume(&req, len);
		hpsi_ring_cons_publish(&req);
		if (round == 0) { /* rank 0 acks before the answer that names rank 1 */
			put_answer(&resp, &h, 0, HPSI_F_REPLICA, 0);
			put_answer(&resp, &h, 0, 0, 1);
		} else { /* the answer, then acks of rank 0 and of rank 1 */
			put_answer(&resp, &h, 0, 0, 1);
			put_answer(&resp, &h, 0, HPSI_F_REPLICA, 0);
			put_answer(&resp, &h, 1, HPSI_F_REPLICA, 0);
		}
		hpsi_ring_publish(&resp);
		hpsi_bell_ring(&hpsi_seg_node(&j.seg, hpsi_worker_node(&j.seg, 0))->bell);
	}
	CU_ASSERT_EQUAL(wait_exit(wk, 20000), 0);
	for (uint32_t s = 0; s < 2; s++)
		atomic_store(&hpsi_seg_node(&j.seg, s)->state, HPSI_NODE_CLOSED);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

struct test_case replica_cases[] = {
	{"replica_two_adjacent_servers_replaced", test_replica_two_adjacent_servers_replaced},
	{"replica_backup_replaced_before_its_ack", test_replica_backup_replaced_before_its_ack},
	{"replica_handback_not_taken_again", test_replica_handback_not_taken_again},
	{"replica_primary_dies_while_copying", test_replica_primary_dies_while_copying},
	{"replica_kill_one_server_exact_sums", test_replica_kill_one_server_exact_sums},
	{"replica_room_kill_exact_sums", test_replica_room_kill_exact_sums},
	{"replica_room_ack_of_another_rank", test_replica_room_ack_of_another_rank},
	{"replica_kill_during_checkpoints", test_replica_kill_during_checkpoints},
	{"replica_kill_pipelined_pushes", test_replica_kill_pipelined_pushes},
	{"replica_primary_dies_between_forward_and_release", test_replica_primary_dies_between_forward_and_release},
	{"replica_kill_with_heap_pushes", test_replica_kill_with_heap_pushes},
	{"replica_two_backups_survive_two_kills", test_replica_two_backups_survive_two_kills},
	{"replica_replacement_then_second_kill", test_replica_replacement_then_second_kill},
	{"replica_replacement_killed_while_copying", test_replica_replacement_killed_while_copying},
	{"replica_checkpoints_during_recovery", test_replica_checkpoints_during_recovery},
	{"replica_bad_copies_are_dropped", test_replica_bad_copies_are_dropped},
	{"replica_without_replicas_the_kill_loses", test_replica_without_replicas_the_kill_loses},
	{"replica_every_replica_dead_fails_cleanly", test_replica_every_replica_dead_fails_cleanly},
	{"replica_deterministic_adam_bit_identical", test_replica_deterministic_adam_bit_identical},
	{"replica_launch_survives_kill", test_replica_launch_survives_kill},
	{"replica_refusals", test_replica_refusals},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--launched-worker") == 0) {
		hps_ctx *ctx;
		hps_worker *w;
		int rc = join_as_worker(&ctx, &w);
		if (rc)
			return rc;
		struct plan pl = {.seed = strtoull(argv[2], NULL, 10), .started = argv[3]};
		rc = sum_worker(ctx, w, &pl);
		hps_worker_close(w);
		hps_finalize(ctx);
		return rc;
	}
	return run_suite("replica", replica_cases);
}
