/* Servers that come and go (hps launch --max-servers M, hps scale
 * --servers N). First room alone: the job's keys form M key ranges from
 * the start, served by the -s running servers through the owner table
 * (shm/segment.h); the ranks not launched are VACANT; three workers push
 * integer-valued floats under BSP: the sums are exact, hps_num_servers
 * counts the running servers, and a checkpoint writes one file per key
 * range and loads back. Then scales while three workers push and pull
 * continuously: 2 -> 4 -> 1 servers under SSP(2), 2 -> 4 under BSP (every
 * pull exact: it sees all pushes of the clocks before and none after);
 * the final sums are exact and each step moves about the ideal share of
 * the keys. Then the refusals of hps launch and hps scale. And a worker
 * that joins before a range moves from a server that had not seen it
 * (HPS_FAILPOINT=nolook): no pull held, exact sums. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/route.h"
#include "hps/server.h"
#include "runtime/client/ctx.h"
#include "runtime/common/key_split.h"
#include "runtime/server/checkpoint.h"
#include "shm/segment.h"
#include "tests/harness.h"

#define NKEYS 64
#define CLOCKS 200
#define WORKERS 3

static char self_path[4096];
static char out[1 << 17], out2[1 << 16];

static float value(int r, uint32_t c, int k)
{
	return (float)(r + 1 + (int)((c + (uint32_t)k) % 4));
}

static double sum_of(int k)
{
	double s = 0;
	for (int r = 0; r < WORKERS; r++)
		for (uint32_t c = 0; c < CLOCKS; c++)
			s += value(r, c, k);
	return s;
}

/* The layout the launch made for -s 2 --max-servers 4: four ranges, ranks
 * 2 and 3 VACANT, ranges 2 and 3 served by ranks 0 and 1. */
static int room_layout_ok(hps_ctx *ctx)
{
	struct hpsi_seg *s = &ctx->seg;
	static const uint32_t want[4] = {0, 1, 0, 1};
	if (s->hdr->nservers != 4 || s->hdr->launched_servers != 2 || hps_num_servers(ctx) != 2) {
		fprintf(stderr, "ranges %u, launched servers %u, hps_num_servers %d\n", s->hdr->nservers,
			s->hdr->launched_servers, hps_num_servers(ctx));
		return 0;
	}
	for (uint32_t r = 0; r < 4; r++)
		if (hpsi_range_owner(s, r) != want[r]) {
			fprintf(stderr, "range %u is served by %u, want %u\n", r, hpsi_range_owner(s, r), want[r]);
			return 0;
		}
	/* with --replicas 1: each range backed up by the other launched rank */
	for (uint32_t r = 0; s->hdr->replicas && r < 4; r++)
		if (hpsi_replica(s, r, 1) != 1 - want[r] || hpsi_replica_index(s, r, 1 - want[r]) != 1) {
			fprintf(stderr, "range %u is backed up by %u, want %u\n", r, hpsi_replica(s, r, 1), 1 - want[r]);
			return 0;
		}
	for (uint32_t r = 2; r < 4; r++)
		if (atomic_load_explicit(&hpsi_seg_node(s, r)->state, memory_order_acquire) != HPSI_NODE_VACANT) {
			fprintf(stderr, "server rank %u is not VACANT\n", r);
			return 0;
		}
	return 1;
}

static int check_sums(hps_worker *w, const uint64_t *keys, const char *when)
{
	float got[NKEYS];
	int rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL));
	if (rc) {
		fprintf(stderr, "pull %s: %s\n", when, hps_strerror(rc));
		return 0;
	}
	for (int k = 0; k < NKEYS; k++)
		if (got[k] != sum_of(k)) {
			fprintf(stderr, "%s: key %d holds %.0f, want %.0f\n", when, k, got[k], sum_of(k));
			return 0;
		}
	return 1;
}

/* Workers of the room job; worker 0 checks the layout, the sums, and a
 * checkpoint into dir. */
static int room_worker(const char *dir)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	if (!room_layout_ok(ctx))
		return 3;
	uint64_t keys[NKEYS];
	float vals[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 13 + 5;
	for (uint32_t c = 0; c < CLOCKS; c++) {
		for (int k = 0; k < NKEYS; k++)
			vals[k] = value(rank, c, k);
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL))) || (rc = hps_clock(w))) {
			fprintf(stderr, "push or clock at clock %u: %s\n", c, hps_strerror(rc));
			return 4;
		}
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "barrier: %s\n", hps_strerror(rc));
		return 5;
	}
	if (rank == 0) {
		if (!check_sums(w, keys, "at the end"))
			return 6;
		/* one file per key range, written by the server serving it */
		if ((rc = hps_save(ctx, dir)) < 0) {
			fprintf(stderr, "hps_save: %s\n", hps_strerror(rc));
			return 7;
		}
		for (int r = 0; r < 4; r++) {
			char path[600];
			struct stat st;
			snprintf(path, sizeof path, "%s/server-%d.hpsckpt", dir, r);
			if (stat(path, &st) != 0) {
				fprintf(stderr, "%s is missing\n", path);
				return 8;
			}
		}
		/* a push after the save, which the load must undo */
		for (int k = 0; k < NKEYS; k++)
			vals[k] = 1.0f;
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL)))) {
			fprintf(stderr, "push after the save: %s\n", hps_strerror(rc));
			return 9;
		}
		if ((rc = hps_load(ctx, dir)) < 0 || !check_sums(w, keys, "after the load")) {
			fprintf(stderr, "hps_load: %s\n", rc < 0 ? hps_strerror(rc) : "loaded");
			return 9;
		}
		printf("sums exact\n");
		fflush(stdout);
	}
	if ((rc = hps_barrier(ctx)))
		return 10;
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* ---- scales while the workers train ---- */

#define SKEYS 8192
/* right after the data keys (7 k + 3), inside the declared ranges of
 * test_scale_declared_ranges */
#define STOP_KEY (7u * SKEYS + 3)  /* worker 0 pushes the clock every worker stops at */
#define COUNT_KEY (7u * SKEYS + 4) /* + rank: the clocks a worker ran (not data keys: 4, 5, 6 mod 7) */

static uint64_t skey(int k)
{
	return (uint64_t)k * 7 + 3;
}

static float svalue(int r, uint32_t c, int k)
{
	return (float)(1 + (r + (int)c + k) % 5);
}

/* Pushes every clock until the clock worker 0 names once it saw the stop
 * file; then worker 0 checks every sum against the clocks each worker ran.
 * Under BSP (staleness 0) every pull is checked: it holds every push of
 * the clocks before it and none after its own.
 *
 * Why a named clock: a worker must not stop at the first pull that shows
 * the stop key. A pull may see pushes of its own clock and later ones up
 * to the bound, so a fast worker could see it a clock before a slower
 * one, stop clocking, and hold the slower one's next pull for ever.
 * Worker 0 pushes, at clock c, the stop clock V = c + staleness + 2; every
 * pull from clock c + staleness + 1 = V - 1 on holds that push, and no
 * worker passes V - 1 before worker 0 finished clock c, so every worker
 * knows V before it reaches V, and all stop there. */
static int scale_worker(const char *stop, int staleness)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	static uint64_t keys[SKEYS + 1];
	static float vals[SKEYS + 1], got[SKEYS + 1];
	static double sum[SKEYS];
	for (int k = 0; k < SKEYS; k++)
		keys[k] = skey(k);
	keys[SKEYS] = STOP_KEY;
	uint32_t c = 0;
	int announced = 0;
	for (;; c++) {
		if ((rc = hps_wait(w, hps_pull(w, keys, SKEYS + 1, got, NULL)))) {
			fprintf(stderr, "pull at clock %u: %s\n", c, hps_strerror(rc));
			return 3;
		}
		/* BSP: every push of the clocks before, and none of the clocks
		 * after (some of this clock's may be in) */
		for (int k = 0; staleness == 0 && k < SKEYS; k++) {
			double hi = sum[k];
			for (int r = 0; r < WORKERS; r++)
				hi += svalue(r, c, k);
			if (got[k] < sum[k] || got[k] > hi) {
				fprintf(stderr, "rank %d clock %u key %d: pulled %.0f, outside [%.0f, %.0f] under BSP\n", rank, c,
					k, got[k], sum[k], hi);
				return 4;
			}
		}
		if (got[SKEYS] > 0 && c >= (uint32_t)got[SKEYS]) /* the stop clock worker 0 named */
			break;
		for (int k = 0; k < SKEYS; k++) {
			vals[k] = svalue(rank, c, k);
			for (int r = 0; r < WORKERS; r++)
				sum[k] += svalue(r, c, k); /* (BSP: every worker pushes at every clock) */
		}
		vals[SKEYS] = 0;
		if (rank == 0 && !announced && access(stop, F_OK) == 0) {
			vals[SKEYS] = (float)(c + (uint32_t)staleness + 2);
			announced = 1;
		}
		if ((rc = hps_wait(w, hps_push(w, keys, SKEYS + 1, vals, NULL))) || (rc = hps_clock(w))) {
			fprintf(stderr, "push or clock at clock %u: %s\n", c, hps_strerror(rc));
			return 5;
		}
	}
	uint64_t ck = COUNT_KEY + (uint64_t)rank;
	float cv = (float)c;
	if ((rc = hps_wait(w, hps_push(w, &ck, 1, &cv, NULL))) || (rc = hps_barrier(ctx))) {
		fprintf(stderr, "count or barrier: %s\n", hps_strerror(rc));
		return 6;
	}
	if (rank == 0) {
		uint64_t cks[WORKERS];
		float clocks[WORKERS];
		for (int r = 0; r < WORKERS; r++)
			cks[r] = COUNT_KEY + (uint64_t)r;
		if ((rc = hps_wait(w, hps_pull(w, cks, WORKERS, clocks, NULL))) ||
		    (rc = hps_wait(w, hps_pull(w, keys, SKEYS, got, NULL)))) {
			fprintf(stderr, "final pulls: %s\n", hps_strerror(rc));
			return 7;
		}
		for (int k = 0; k < SKEYS; k++) {
			double want = 0;
			for (int r = 0; r < WORKERS; r++)
				for (uint32_t x = 0; x < (uint32_t)clocks[r]; x++)
					want += svalue(r, x, k);
			if (got[k] != want) {
				fprintf(stderr, "key %d: sum %.0f, want %.0f\n", k, got[k], want);
				return 8;
			}
		}
		printf("sums exact after %.0f, %.0f and %.0f clocks on %d servers\n", clocks[0], clocks[1], clocks[2],
		       hps_num_servers(ctx));
		fflush(stdout);
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

struct watch {
	const char *job;
	struct hpsi_seg seg;
	int attached;
	uint32_t clock;
	uint32_t workers; /* the workers watched (0: WORKERS) */
};

/* Every worker of the job runs and passed clock a->clock. */
static int workers_past(void *p)
{
	struct watch *a = p;
	char path[256];
	if (!a->attached && hpsi_seg_path(path, sizeof path, a->job, "testhost") == 0 && access(path, F_OK) == 0)
		a->attached = hpsi_seg_attach(a->job, "testhost", &a->seg) == 0;
	if (!a->attached)
		return 0;
	for (uint32_t w = 0; w < (a->workers ? a->workers : WORKERS); w++) {
		struct hpsi_node *n = hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, w));
		if (atomic_load_explicit(&n->state, memory_order_acquire) != HPSI_NODE_ALIVE ||
		    atomic_load_explicit(&n->clock_done, memory_order_relaxed) < a->clock)
			return 0;
	}
	return 1;
}

/* The keys the servers' logs say each move carried, summed over the
 * lines from `from` on; *lines: how many moves; *mapped: how many of
 * those keys went in tables handed over whole (runtime/server/recover.c). */
static unsigned long keys_moved(const char *log, size_t from, int *lines, unsigned long *mapped)
{
	unsigned long sum = 0;
	*lines = 0;
	*mapped = 0;
	for (const char *at = log + from; (at = strstr(at, " moved key range ")); at++) {
		unsigned r, keys, to;
		unsigned long m;
		if (sscanf(at, " moved key range %u (%u keys", &r, &keys) == 2)
			sum += keys, ++*lines;
		const char *tail = strstr(at, " ms) to server ");
		if (tail && sscanf(tail, " ms) to server %u (%lu keys in tables mapped", &to, &m) == 2)
			*mapped += m;
	}
	return sum;
}

/* The store memfds process pid holds (its fds named memfd:hps-store). */
static int store_fds(int pid)
{
	char dir[64], path[320], name[128];
	snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
	DIR *d = opendir(dir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t k = readlink(path, name, sizeof name - 1);
		n += k > 0 && (name[k] = 0, strncmp(name, "/memfd:hps-store", 16) == 0);
	}
	if (d)
		closedir(d);
	return n;
}

/* Each running server holds store memfds only for the ranges it serves:
 * its pool's two (slots, windows) and one cells array (these keys are one
 * value wide), none for ranges it handed over or never held (before, an
 * empty store of two for every range it had held). */
static void check_store_fds(struct hpsi_seg *s, uint32_t servers)
{
	for (uint32_t r = 0; r < servers; r++) {
		uint32_t served = 0;
		for (uint32_t g = 0; g < s->hdr->nservers; g++)
			served += atomic_load_explicit(&hpsi_seg_owner(s)[g], memory_order_acquire) == r;
		int pid = atomic_load_explicit(&hpsi_seg_node(s, r)->pid, memory_order_relaxed);
		int fds = store_fds(pid);
		CU_ASSERT(fds <= 3 * (int)served);
		if (fds > 3 * (int)served)
			fprintf(stderr, "server %u (pid %d) holds %d store memfds for %u key ranges\n", r, pid, fds, served);
	}
}

static int run_cmd(const char *cmd, char *buf, size_t cap)
{
	char log[128];
	snprintf(log, sizeof log, "/tmp/hps-scale-%d.cmd", (int)getpid());
	int rc = finish_group(spawn_logged(log, "/bin/sh", cmd), 60000);
	slurp_into(log, buf, cap);
	unlink(log);
	return rc;
}

static void test_scale_room_exact_sums(void)
{
	char cmd[8192], dir[128];
	snprintf(dir, sizeof dir, "/tmp/hps-scale-%d.ckpt", (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 2 -w 3 --max-servers 4 --job sc1 --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "--staleness bsp -- %s --room-worker %s",
		 hps_bin(), self_path, dir);
	int rc = run_cmd(cmd, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "launcher:\n%s\n", out);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The same job replicated (--replicas 1 with room: the backup table,
 * shm/backups.h): exact sums, a checkpoint saved by the primaries and
 * loaded by every replica, and at the end each of the four ranges held by
 * its primary and its backup with the same keys and digest (the servers'
 * digest lines, runtime/server/digest.c). */
/* The servers' last lines (HPS_LOG=info, runtime/server/digest.c) of a
 * replicated job with room of M ranges (one backup): every range's
 * primary and backup logged once, with keys, the same keys and digest.
 * 1 if so. */
static int replicas_agree(const char *log, uint32_t M)
{
	unsigned long long keys[HPSI_MAX_NODES][2] = {{0}}, dig[HPSI_MAX_NODES][2] = {{0}};
	int seen[HPSI_MAX_NODES][2] = {{0}}, lines = 0, ok = 1;
	for (const char *at = log; (at = strstr(at, ": key range ")); at++) {
		unsigned r, i;
		unsigned long long n, d;
		if (sscanf(at, ": key range %u (replica %u): %llu keys, digest %llx", &r, &i, &n, &d) == 4 && r < M && i < 2) {
			keys[r][i] = n, dig[r][i] = d, seen[r][i]++;
			lines++;
		}
	}
	CU_ASSERT_EQUAL(lines, (int)(2 * M));
	ok &= lines == (int)(2 * M);
	for (uint32_t r = 0; r < M; r++) {
		int agree = seen[r][0] == 1 && seen[r][1] == 1 && keys[r][0] > 0 && keys[r][0] == keys[r][1] &&
			    dig[r][0] == dig[r][1];
		CU_ASSERT(agree);
		ok &= agree;
	}
	return ok;
}

static void test_scale_replicated_room_digests(void)
{
	char cmd[8192], dir[128];
	snprintf(dir, sizeof dir, "/tmp/hps-scale-%d.rckpt", (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd,
		 "HPS_LOG=info exec %s launch -s 2 -w 3 --max-servers 4 --replicas 1 --job sc10 --host testhost --heap-mb 16 "
		 "--timeout-ms 20000 --staleness bsp -- %s --room-worker %s",
		 hps_bin(), self_path, dir);
	int rc = run_cmd(cmd, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	int same = replicas_agree(out, 4);
	if (rc || !same || !strstr(out, "sums exact"))
		fprintf(stderr, "launcher:\n%s\n", out);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Scale steps while three workers train; the keys moved by each step
 * (from the servers' logs) against the ideal share: the fraction of
 * ranges that change hands, each holding about a quarter of the keys. */
static void run_scales_env(const char *job, const char *staleness, const int *steps, const double *ideal, int nsteps,
			   const char *opts, int (*launch_ok)(const struct hpsi_seg *), const char *env);
static void run_scales_kill(const char *job, const char *staleness, const int *steps, const double *ideal, int nsteps,
			    const char *opts, int (*launch_ok)(const struct hpsi_seg *), const char *env, int victim);
static void run_scales(const char *job, const char *staleness, const int *steps, const double *ideal, int nsteps,
		       const char *opts, int (*launch_ok)(const struct hpsi_seg *))
{
	run_scales_env(job, staleness, steps, ideal, nsteps, opts, launch_ok, "");
}

/* run_scales with env (NAME=VALUE ...) set for the launch; a noadopt
 * failpoint there: some keys go by records, not mapped. */
static void run_scales_env(const char *job, const char *staleness, const int *steps, const double *ideal, int nsteps,
			   const char *opts, int (*launch_ok)(const struct hpsi_seg *), const char *env)
{
	run_scales_kill(job, staleness, steps, ideal, nsteps, opts, launch_ok, env, -1);
}

/* The tables of a replicated job with room (one backup): every range's
 * primary and backup are distinct running ranks below `servers`. */
static void check_replica_tables(struct hpsi_seg *s, uint32_t servers)
{
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		uint32_t p = hpsi_replica(s, r, 0), b = hpsi_replica(s, r, 1);
		CU_ASSERT(p < servers && b < servers && p != b);
		if (!(p < servers && b < servers && p != b))
			fprintf(stderr, "key range %u: primary %u, backup %u with %u servers\n", r, p, b, servers);
	}
}

/* A program's view of the membership while a step runs: when the count
 * of servers it reads (hps_num_servers: the owners in the owner table)
 * differs from the one before the step, the epoch it reads after it
 * (hps_membership_epoch) differs too. The baseline is read the other
 * way round, the epoch first, before the step starts: every move of the
 * step then moves the epoch after that read. */
struct epoch_watch {
	struct hpsi_seg *seg;
	uint32_t servers0, epoch0;
	pthread_t thread;
	atomic_int stop;
	int stale; /* polls that saw the new count with the epoch of before */
};

static void *watch_epoch(void *p)
{
	struct epoch_watch *e = p;
	while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
		uint32_t n = hpsi_servers_current(e->seg); /* (acquire loads) */
		uint32_t epoch = atomic_load_explicit(&e->seg->hdr->members_seq, memory_order_acquire);
		e->stale += n != e->servers0 && epoch == e->epoch0;
		usleep(200);
	}
	return NULL;
}

static void epoch_watch_start(struct epoch_watch *e, struct hpsi_seg *seg)
{
	e->seg = seg;
	e->epoch0 = atomic_load_explicit(&seg->hdr->members_seq, memory_order_acquire);
	e->servers0 = hpsi_servers_current(seg);
	e->stale = 0;
	atomic_init(&e->stop, 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&e->thread, NULL, watch_epoch, e), 0);
}

/* The polls that saw the count change before the epoch (0 is right). */
static int epoch_watch_end(struct epoch_watch *e)
{
	atomic_store_explicit(&e->stop, 1, memory_order_relaxed);
	pthread_join(e->thread, NULL);
	return e->stale;
}

/* run_scales_env, then with victim >= 0 a kill -9 of that server after the
 * last step: the workers train on past it (its backups serve its ranges)
 * and the sums stay exact. A replicated job (--replicas in opts) moves
 * its ranges by records, not tables mapped. */
static void run_scales_kill(const char *job, const char *staleness, const int *steps, const double *ideal, int nsteps,
			    const char *opts, int (*launch_ok)(const struct hpsi_seg *), const char *env, int victim)
{
	int replicated = strstr(opts, "--replicas") != NULL;
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "scale");
	int by_records = strstr(env, "noadopt") != NULL;
	snprintf(cmd, sizeof cmd,
		 "%s exec %s launch -s 2 -w 3 --max-servers 4 --job %s --host testhost --heap-mb 16 --timeout-ms 30000 "
		 "--staleness %s %s -- %s --scale-worker %s %s",
		 env, hps_bin(), job, staleness, opts, self_path, l.flag, strcmp(staleness, "bsp") ? staleness : "0");
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = job, .clock = 10};
	int ready = poll_until(workers_past, &a, 30000);
	CU_ASSERT(ready);
	if (ready && launch_ok)
		CU_ASSERT(launch_ok(&a.seg));
	size_t seen = 0;
	for (int i = 0; ready && i < nsteps; i++) {
		a.clock = atomic_load_explicit(&hpsi_seg_node(&a.seg, hpsi_worker_node(&a.seg, 0))->clock_done,
					       memory_order_relaxed);
		int epoch = (int)atomic_load_explicit(&a.seg.hdr->members_seq, memory_order_acquire);
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host testhost --servers %d", hps_bin(), job, steps[i]);
		struct epoch_watch ew;
		epoch_watch_start(&ew, &a.seg);
		int rc = run_cmd(cmd, out2, sizeof out2);
		/* HPS_FAILPOINT=handslow:MS: the sources wait MS ms after the
		 * owner's store, which hps scale's answer may come in; the
		 * watch goes on through it, and the checks below come after */
		const char *slow = strstr(env, "handslow:");
		if (slow)
			usleep((useconds_t)(2 * atoi(slow + 9) + 300) * 1000u);
		int stale = epoch_watch_end(&ew);
		CU_ASSERT_EQUAL(stale, 0);
		if (stale)
			fprintf(stderr, "hps scale --servers %d: %d looks saw %u servers become %u with the epoch still %u\n",
				steps[i], stale, ew.servers0, hpsi_servers_current(&a.seg), ew.epoch0);
		char want[128];
		snprintf(want, sizeof want, "job %s has %d server%s\n", job, steps[i], steps[i] == 1 ? "" : "s");
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_STRING_EQUAL(out2, want);
		if (rc || strcmp(out2, want))
			fprintf(stderr, "hps scale --servers %d: %d\n%s\n", steps[i], rc, out2);
		CU_ASSERT_EQUAL(hpsi_servers_current(&a.seg), (uint32_t)steps[i]);
		CU_ASSERT_NOT_EQUAL((int)atomic_load_explicit(&a.seg.hdr->members_seq, memory_order_acquire), epoch);
		for (uint32_t r = 0; r < a.seg.hdr->nservers; r++) { /* the leaving ranks closed (or never ran) */
			uint32_t st = atomic_load_explicit(&hpsi_seg_node(&a.seg, r)->state, memory_order_acquire);
			CU_ASSERT(r < (uint32_t)steps[i] || st == HPSI_NODE_CLOSED || st == HPSI_NODE_VACANT);
		}
		/* the workers trained meanwhile (they run until the stop file) */
		CU_ASSERT(poll_until(workers_past, &a, 30000));
		slurp_into(l.log, out, sizeof out);
		int moves;
		unsigned long mapped, moved = keys_moved(out, seen, &moves, &mapped);
		/* every key went in tables mapped whole, none by records; with
		 * the target of a range unable to map them, its keys went as
		 * records and the other range's mapped */
		if (by_records) {
			CU_ASSERT(mapped > 0 && mapped < moved);
			CU_ASSERT_PTR_NOT_NULL(strstr(out + seen, "it could not map the tables"));
		} else if (replicated) { /* (replicated stores are copied: a backup keeps its own) */
			CU_ASSERT_EQUAL(mapped, 0);
			check_replica_tables(&a.seg, (uint32_t)steps[i]);
		} else {
			CU_ASSERT_EQUAL(mapped, moved);
		}
		double share = (double)moved / (SKEYS + 1); /* the data keys and the stop key */
		fprintf(stderr, "[step to %d servers: %d ranges moved, %lu keys: %.2f of them, ideal %.2f]\n", steps[i], moves,
			moved, share, ideal[i]);
		CU_ASSERT(share <= ideal[i] * 1.5 && share >= ideal[i] / 1.5);
		check_store_fds(&a.seg, (uint32_t)steps[i]);
		seen = strlen(out);
	}
	if (ready && victim >= 0) {
		int pid = atomic_load_explicit(&hpsi_seg_node(&a.seg, (uint32_t)victim)->pid, memory_order_relaxed);
		a.clock = atomic_load_explicit(&hpsi_seg_node(&a.seg, hpsi_worker_node(&a.seg, 0))->clock_done,
					       memory_order_relaxed) + 10;
		CU_ASSERT(pid > 0 && kill(pid, SIGKILL) == 0);
		CU_ASSERT(poll_until(workers_past, &a, 30000)); /* they train on */
	}
	int rc = launched_finish(&l, 60000, out, sizeof out);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	CU_ASSERT_EQUAL(rc, 0);
	if (victim >= 0)
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "now serves key range"));
	char want[64];
	snprintf(want, sizeof want, "on %d servers", steps[nsteps - 1]);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact after"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	if (rc || !strstr(out, "sums exact") || !strstr(out, want))
		fprintf(stderr, "launcher:\n%s\n", out);
}

/* 8,192 keys: a range's copy takes more than one message. 2 -> 4: ranges
 * 2 and 3 go to the new ranks (half the keys, their share); 4 -> 1: ranges 1, 2, 3 go to rank 0 (three quarters); 1 -> 3:
 * ranks 1 and 2, closed before, run again (new incarnations) and take a
 * range each (half the keys, for an ideal two thirds: shares are whole
 * ranges). */
static void test_scale_out_in_ssp(void)
{
	static const int steps[] = {4, 1, 3};
	static const double ideal[] = {0.5, 0.75, 2.0 / 3};
	run_scales("sc2", "2", steps, ideal, 3, "", NULL);
}

static void test_scale_out_bsp(void)
{
	static const int steps[] = {4};
	static const double ideal[] = {0.5};
	run_scales("sc3", "bsp", steps, ideal, 1, "", NULL);
}

/* A replicated job (one backup per range) scaled 2 -> 4 -> 2 under
 * SSP(2): primaries and backups move by copies (runtime/server/recover.c,
 * find_room), every range keeps a primary and a backup on distinct running
 * servers after each step, the keys whose primary moved are its share
 * (2 -> 4: ranges 2 and 3, half the keys; 4 -> 2: the same two back),
 * then a kill -9 of server 1: its backups take its ranges over, the job
 * trains on and the sums stay exact. */
static void test_scale_replicated_out_in_kill(void)
{
	static const int steps[] = {4, 2};
	static const double ideal[] = {0.5, 0.5};
	run_scales_kill("sc11", "2", steps, ideal, 2, "--replicas 1", NULL, "", 1);
}

/* A replicated job with a dead server: its backups serve its ranges,
 * and a scale ends at once (the tables change only while every replica
 * of a range runs): the launcher says why, hps scale reports the count it
 * did not reach, the new server it started leaves, no replacement starts
 * (none with room), and the job finishes with exact sums. */
static void test_scale_replicated_dead_server_ends_scale(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "scale");
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 2 -w 3 --max-servers 4 --replicas 1 --job sc15 --host testhost --heap-mb 16 "
		 "--timeout-ms 30000 --staleness 2 -- %s --scale-worker %s 2",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc15", .clock = 10};
	int ready = poll_until(workers_past, &a, 30000);
	CU_ASSERT_FATAL(ready);
	int pid = atomic_load_explicit(&hpsi_seg_node(&a.seg, 1)->pid, memory_order_relaxed);
	CU_ASSERT(pid > 0 && kill(pid, SIGKILL) == 0);
	a.clock += 10;
	CU_ASSERT(poll_until(workers_past, &a, 30000)); /* its backup serves its ranges */
	snprintf(cmd, sizeof cmd, "%s scale --job sc15 --host testhost --servers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: job sc15 has 2 servers, not 3 (see the launcher's output)\n");
	a.clock += 10;
	CU_ASSERT(poll_until(workers_past, &a, 30000)); /* they train on */
	int rc = launched_finish(&l, 60000, out, sizeof out);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: hps scale: a server died during the scale; its backups serve its key ranges, and the scale ends there\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "server 2 leaves the job"));
	CU_ASSERT_PTR_NULL(strstr(out, "started a replacement"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact after"));
	if (rc || !strstr(out, "sums exact") || !strstr(out, "server 2 leaves"))
		fprintf(stderr, "launcher:\n%s\nhps scale:\n%s\n", out, out2);
}

/* The step that copies nothing (find_room): with six ranges, 3 -> 2
 * hands one of the leaving server's two ranges to its backup, which
 * holds it whole (the leaving server backs it up until the new primary
 * moves its backup, then hands its other range on by a copy). Under BSP,
 * every pull checked; at the end every range's replicas log the same
 * digest. */
static void test_scale_replicated_swap(void)
{
	static const int steps[] = {3, 2};
	static const double ideal[] = {1.0 / 3, 1.0 / 3};
	run_scales_kill("sc14", "bsp", steps, ideal, 2, "--replicas 1 --max-servers 6", NULL, "HPS_LOG=info", -1);
	/* every range's primary and backup hold the same keys and values */
	if (!replicas_agree(out, 6))
		fprintf(stderr, "launcher:\n%s\n", out);
	/* both kinds ran (out: the launcher's output) */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "; this server backs it up now"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "; it held it as the backup, and this server backs it up now"));
}

/* The membership epoch moves before hps_num_servers changes: with
 * HPS_FAILPOINT=handslow:300 every source waits 300 ms after it stored
 * the new owner of a range it handed over, before the epoch's second
 * move. A program that reads the count (run_scales_kill's epoch watch)
 * sees it changed only with the epoch moved (the first move, before the
 * owner's store). 2 -> 4 under BSP, exact sums. */
static void test_scale_epoch_before_count(void)
{
	static const int steps[] = {4};
	static const double ideal[] = {0.5};
	run_scales_env("sc18", "bsp", steps, ideal, 1, "", NULL, "HPS_FAILPOINT=handslow:300");
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_FAILPOINT=handslow: waits 300 ms"));
}

/* The same with one backup per range: the primaries move by copies
 * (recover.c), whose hand-over has the same two moves of the epoch. */
static void test_scale_replicated_epoch_before_count(void)
{
	static const int steps[] = {4};
	static const double ideal[] = {0.5};
	run_scales_kill("sc19", "bsp", steps, ideal, 1, "--replicas 1", NULL, "HPS_FAILPOINT=handslow:300", -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_FAILPOINT=handslow: waits 300 ms"));
}

/* A target that cannot map the tables handed to it (HPS_FAILPOINT=
 * noadopt:2: as an fd it cannot open, after it mapped the pool) answers
 * so; its source, the range still frozen, sends records instead, and
 * only then the FINAL. Before, the target stopped (exit 3) and the range
 * was lost. 2 -> 4 under BSP, every pull checked, exact sums. */
static void test_scale_out_adopt_refused(void)
{
	static const int steps[] = {4};
	static const double ideal[] = {0.5};
	run_scales_env("sc10", "bsp", steps, ideal, 1, "", NULL, "HPS_FAILPOINT=noadopt:2");
}

/* -s 2 --max-servers 4 --key-ranges 0-28674,28675-57350: each declared
 * range cut in two key ranges (the first piece one key wider where the
 * keys do not split evenly), the pieces of declared range i served by
 * rank i, so the launch places keys as declared; no rank 2 or 3 runs. */
static int declared_layout_ok(const struct hpsi_seg *s)
{
	static const struct hpsi_key_span want[4] = {{0, 14337}, {14338, 28674}, {28675, 43012}, {43013, 57350}};
	const struct hpsi_range *r = hpsi_seg_ranges(s);
	if (s->hdr->nservers != 4 || s->hdr->range_mode != HPSI_RANGE_DECLARED)
		return 0;
	for (uint32_t i = 0; i < 4; i++)
		if (r[i].first != want[i].first || r[i].last != want[i].last || hpsi_range_owner(s, i) != i / 2 ||
		    hpsi_route_key(s, want[i].first) != i || hpsi_route_key(s, want[i].last) != i) {
			fprintf(stderr, "key range %u: keys %llu-%llu served by %u, want %llu-%llu by %u\n", i,
				(unsigned long long)r[i].first, (unsigned long long)r[i].last, hpsi_range_owner(s, i),
				(unsigned long long)want[i].first, (unsigned long long)want[i].last, i / 2);
			return 0;
		}
	return hpsi_route_key(s, 57351) == HPSI_NO_SERVER;
}

/* Declared ranges re-split by scales while three workers push under
 * SSP(2): the 8,193 keys (7 k + 3 and the stop key) spread evenly over
 * the declared 0-57350, so each piece holds a quarter of them. 2 -> 4:
 * rank 0 hands range 1, rank 1 range 3 (half the keys, the new ranks'
 * share); 4 -> 1: ranges 1, 2 and 3 go to rank 0 (three quarters). */
static void test_scale_declared_ranges(void)
{
	static const int steps[] = {4, 1};
	static const double ideal[] = {0.5, 0.75};
	run_scales("sc4", "2", steps, ideal, 2, "--key-ranges 0-28674,28675-57350", declared_layout_ok);
}

/* The cut itself: the whole key space (its width overflows 64 bits) and
 * uneven widths; pieces ascending, adjacent, covering each declared range,
 * widths one apart at most. */
static void test_scale_key_split(void)
{
	static const struct {
		struct hpsi_key_span d[3];
		uint32_t S, M;
	} cases[] = {
		{{{0, UINT64_MAX}}, 1, 3},
		{{{0, 9}, {10, 11}, {100, 1000}}, 3, 7},
		{{{5, 6}, {7, UINT64_MAX}}, 2, 4},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct hpsi_key_span out[8];
		CU_ASSERT_EQUAL_FATAL(hpsi_key_split(cases[c].d, cases[c].S, cases[c].M, out), 0);
		for (uint32_t i = 0, at = 0; i < cases[c].S; i++) {
			uint32_t k = hpsi_key_split_count(i, cases[c].S, cases[c].M);
			CU_ASSERT_EQUAL(out[at].first, cases[c].d[i].first);
			CU_ASSERT_EQUAL(out[at + k - 1].last, cases[c].d[i].last);
			for (uint32_t j = at; j < at + k; j++) {
				CU_ASSERT(out[j].first <= out[j].last);
				CU_ASSERT(j == at || out[j].first == out[j - 1].last + 1);
				uint64_t wj = out[j].last - out[j].first, w0 = out[at].last - out[at].first;
				CU_ASSERT(wj == w0 || wj + 1 == w0);
			}
			at += k;
		}
	}
	struct hpsi_key_span narrow[2] = {{0, 9}, {10, 10}}, out[4];
	CU_ASSERT_EQUAL(hpsi_key_split(narrow, 2, 4, out), HPS_ECONFIG); /* 10-10 cannot hold two pieces */
}

/* Each refused before anything starts, with one line. */
static void test_scale_room_refusals(void)
{
	static const struct {
		const char *args, *says;
	} cases[] = {
		{"-s 2 --max-servers 1", "HPS_MAX_SERVERS=1 is below HPS_NUM_SERVERS=2"},
		{"-s 2 --max-servers 4 --replicas 1 --key-ranges 0-99,100-199", "HPS_MAX_SERVERS with HPS_REPLICAS and HPS_KEY_RANGES: declared ranges of a replicated job with room for servers are not built"},
		{"-s 3 --max-servers 4 --replicas 2", "HPS_MAX_SERVERS with HPS_REPLICAS=2: a job with room for servers keeps one backup of each key range, not more"},
		{"-s 2 --max-servers 5 --key-ranges 0-9,10-10", "HPS_KEY_RANGES with HPS_MAX_SERVERS=5: range 1 (10-10) is cut into 2 key ranges that can move between servers but holds fewer keys"},
		{"-s 2 --max-servers 4 --key-ranges 9-0,10-19", "key ranges must be ascending and disjoint (HPS_KEY_RANGES), range 0 is not"},
		{"-s 2 --max-servers 4 --key-ranges 0-9,10-19 --direct 4", "HPS_MAX_SERVERS with HPS_DIRECT: a direct range is a dense array"},
		{"-s 2 --max-servers 4 --updater 'sum;sum'", "HPS_MAX_SERVERS with HPS_UPDATER=sum;sum: a list per server is not built"},
		/* across hosts (a replicated job with room launches there,
		 * tests/test_xscale.c): K > 1 with room stays refused, and
		 * replicas that cannot be on distinct hosts (shm/place.h) */
		{"--max-servers 6 --replicas 2 --hosts HOSTSF", "HPS_MAX_SERVERS with HPS_REPLICAS=2: a job with room for servers keeps one backup of each key range, not more"},
		{"--max-servers 6 --replicas 1 --hosts HOSTSF", ".hosts: HPS_REPLICAS=1: host ha runs 3 of the job's 4 servers, but the 2 replicas of each key range must be on 2 different hosts"},
		{"-s 2 --max-servers 4 --tracker", "hps launch: --max-servers works within one host or with --hosts, not with --tracker"},
		{"-s 2 --max-servers 300", "HPS_MAX_SERVERS"},
		{"-s 2 --max-servers 4 --restart-servers 2", "hps launch: --restart-servers with --max-servers: a dead server"},
	};
	char hostsf[64], args[512];
	snprintf(hostsf, sizeof hostsf, "/tmp/hps-scale-refusals-%d.hosts", (int)getpid());
	FILE *hosts = fopen(hostsf, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(hosts);
	fputs("ha 3 1 127.0.0.1\nhb 1 1 127.0.0.2\n", hosts); /* (nothing starts: refused before) */
	fclose(hosts);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char cmd[8192];
		const char *at = strstr(cases[i].args, "HOSTSF");
		if (at)
			snprintf(args, sizeof args, "%.*s%s%s", (int)(at - cases[i].args), cases[i].args, hostsf, at + 6);
		snprintf(cmd, sizeof cmd, "%s launch --job sr --host testhost %s -- true", hps_bin(), at ? args : cases[i].args);
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(out2, cases[i].says));
		if (!strstr(out2, cases[i].says))
			fprintf(stderr, "%s:\n%s\n", cases[i].args, out2);
	}
	unlink(hostsf);
}

/* ---- Adam under deterministic BSP: a scale-out changes nothing ---- */

#define ADAM_CLOCKS 300
#define ADAM_HOLD 150 /* the workers wait here for the go file (a scale runs before) */
#define AKEYS 512

/* Pull, a gradient from the pulled values, push, clock; rank 0 writes the
 * final model to `path`. */
static int adam_worker(const char *path, const char *go)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	static uint64_t keys[AKEYS];
	static float got[AKEYS], grad[AKEYS];
	for (int k = 0; k < AKEYS; k++)
		keys[k] = skey(k);
	for (uint32_t c = 0; c < ADAM_CLOCKS; c++) {
		if (c == ADAM_HOLD)
			while (access(go, F_OK) != 0)
				usleep(1000); /* (bounded by the test's wait for the job) */
		if ((rc = hps_wait(w, hps_pull(w, keys, AKEYS, got, NULL))))
			return 4;
		for (int k = 0; k < AKEYS; k++)
			grad[k] = 0.25f * (got[k] - (float)(k % 5)) + 0.01f * (float)rank;
		if ((rc = hps_wait(w, hps_push(w, keys, AKEYS, grad, NULL))) || (rc = hps_clock(w)))
			return 5;
	}
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, keys, AKEYS, got, NULL))))
		return 6;
	if (rank == 0) {
		FILE *f = fopen(path, "wb");
		if (!f || fwrite(got, sizeof got, 1, f) != 1)
			return 7;
		fclose(f);
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* One Adam job; with `scale`, 2 -> 4 servers while the workers are
 * between clock 20 and ADAM_HOLD. 1 if it ran and its model is in m. */
static int adam_run_opts(const char *job, int scale, float *m, const char *opts);
static int adam_run(const char *job, int scale, float *m)
{
	return adam_run_opts(job, scale, m, "");
}

/* adam_run with more options for hps launch (--replicas 1). */
static int adam_run_opts(const char *job, int scale, float *m, const char *opts)
{
	char log[128], path[128], go[128], cmd[8192];
	snprintf(log, sizeof log, "/tmp/hps-scale-%d.adam.log", (int)getpid());
	snprintf(path, sizeof path, "/tmp/hps-scale-%d.model", (int)getpid());
	snprintf(go, sizeof go, "/tmp/hps-scale-%d.go", (int)getpid());
	unlink(path);
	if (!scale)
		touch_file(go);
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 2 -w 3 --max-servers 4 --job %s --host testhost --heap-mb 16 --timeout-ms 30000 "
		 "--staleness bsp --deterministic --updater adam:lr=0.05 %s -- %s --adam-worker %s %s",
		 hps_bin(), job, opts, self_path, path, go);
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	int ok = 1;
	if (scale) {
		struct watch a = {.job = job, .clock = 20};
		ok = poll_until(workers_past, &a, 30000);
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host testhost --servers 4", hps_bin(), job);
		ok = ok && run_cmd(cmd, out2, sizeof out2) == 0;
		/* the scale ran while they trained: none waits at the hold yet */
		for (uint32_t w = 0; ok && w < WORKERS; w++)
			if (atomic_load_explicit(&hpsi_seg_node(&a.seg, hpsi_worker_node(&a.seg, w))->clock_done,
						 memory_order_relaxed) >= ADAM_HOLD)
				fprintf(stderr, "(worker %u reached clock %d before the scale ended)\n", w, ADAM_HOLD);
		if (a.attached)
			hpsi_seg_detach(&a.seg);
		touch_file(go);
	}
	int rc = finish_group(pid, 60000);
	slurp_into(log, out, sizeof out);
	FILE *f = fopen(path, "rb");
	ok = ok && !rc && f && fread(m, sizeof(float) * AKEYS, 1, f) == 1;
	if (f)
		fclose(f);
	if (!ok)
		fprintf(stderr, "adam run%s failed (%d):\n%s\n%s\n", scale ? " with a scale" : "", rc, out, out2);
	if (scale && ok && !strstr(out, "moved key range"))
		ok = 0, fprintf(stderr, "no key range moved:\n%s\n", out);
	unlink(path);
	unlink(go);
	unlink(log);
	return ok;
}

static void test_scale_deterministic_adam_bit_identical(void)
{
	static float clean[AKEYS], scaled[AKEYS];
	CU_ASSERT_FATAL(adam_run("sc4", 0, clean));
	CU_ASSERT(adam_run("sc5", 1, scaled));
	CU_ASSERT_EQUAL(memcmp(clean, scaled, sizeof clean), 0);
}

/* The same with one backup per range (--replicas 1): a replicated
 * scale-out (primaries and backups copied, recover.c) in the middle of
 * deterministic BSP gives the model of a replicated run without, bit for
 * bit. */
static void test_scale_replicated_adam_bit_identical(void)
{
	static float clean[AKEYS], scaled[AKEYS];
	CU_ASSERT_FATAL(adam_run_opts("sc12", 0, clean, "--replicas 1"));
	CU_ASSERT(adam_run_opts("sc13", 1, scaled, "--replicas 1"));
	CU_ASSERT_EQUAL(memcmp(clean, scaled, sizeof clean), 0);
}

/* --self-serve: the servers run this program too; those a scale starts
 * (rank 2 and up) fail before they serve. */
static int failing_new_servers(const char *stop)
{
	const char *role = getenv("HPS_ROLE"), *rank = getenv("HPS_RANK");
	if (!role || strcmp(role, "server"))
		return scale_worker(stop, 2);
	if (rank && atoi(rank) >= 2)
		return 3;
	hps_ctx *ctx;
	if (hps_init(&ctx, NULL, NULL))
		return 2;
	int rc = hps_server_run(ctx, NULL, NULL);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* A server a scale starts fails: the scale says so, and (a failed server
 * stops the job, as always) the launcher names it. */
static void test_scale_new_server_fails(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "scale");
	snprintf(cmd, sizeof cmd,
		 "exec %s launch --self-serve -s 2 -w 3 --max-servers 4 --job sc6 --host testhost --heap-mb 16 "
		 "--timeout-ms 30000 --staleness 2 -- %s --failing-servers %s",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc6", .clock = 10};
	CU_ASSERT(poll_until(workers_past, &a, 30000));
	snprintf(cmd, sizeof cmd, "%s scale --job sc6 --host testhost --servers 4", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT(strcmp(out2, "hps scale: job sc6 has 2 servers, not 4 (see the launcher's output)\n") == 0 ||
		  strcmp(out2, "hps scale: job sc6 ended before its key ranges moved\n") == 0);
	CU_ASSERT_NOT_EQUAL(launched_finish(&l, 60000, out, sizeof out), 0);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	/* both new servers fail; the first to end stops the job, and the
	 * other may be ended by that before it exits 3 itself */
	CU_ASSERT(strstr(out, "hps launch: server 2 exited with status 3") ||
		  strstr(out, "hps launch: server 3 exited with status 3"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: hps scale: a server it started ended; the key ranges stay where they are"));
	if (!strstr(out, "a server it started ended"))
		fprintf(stderr, "scale: %s\nlauncher:\n%s\n", out2, out);
}

/* --self-serve: server 0 calls hps_init (its rank is ALIVE), then runs
 * its serving loop only once server 1 sent it range 1's tables (hps
 * scale --servers 1; the ring from server 1 to 0 has them; server 1
 * sends the FINAL, and the owner table changes, only once server 0
 * answered that it mapped them, from its loop). The
 * worker pushes 1 to keys of range 1 (served by server 1), narrow ones
 * (cells) and wide ones (the pool), asks for the scale itself, and pulls
 * them back from server 0: server 1 kept the tables it handed over until
 * server 0 mapped them (runtime/server/recover.c). */
#define LKEYS 16
#define LWIDE 4    /* keys of LWIDTH floats: in the pool, not in cells */
#define LWIDTH 200
static int late_target(void)
{
	const char *role = getenv("HPS_ROLE");
	hps_ctx *ctx;
	if (role && strcmp(role, "server") == 0) {
		if (hps_init(&ctx, NULL, NULL))
			return 2;
		/* acquire pairs with server 1's release of the ring's tail */
		if (hps_rank(ctx) == 0)
			for (int64_t until = hpsi_now_ns() + 30000000000ll;
			     !atomic_load_explicit(&hpsi_seg_fwd_ring(&ctx->seg, 1, 0)->tail, memory_order_acquire);) {
				if (hpsi_now_ns() > until)
					return 3;
				usleep(1000);
			}
		int rc = hps_server_run(ctx, NULL, NULL);
		hps_finalize(ctx);
		return rc ? 1 : 0;
	}
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	uint64_t keys[LKEYS], wide[LWIDE];
	float ones[LKEYS], got[LKEYS];
	static float wones[LWIDE * LWIDTH], wgot[LWIDE * LWIDTH];
	int n = 0, nw = 0, rc;
	for (uint64_t k = 1; n < LKEYS; k++)
		if (hpsi_route_key(&ctx->seg, k) == 1)
			ones[n] = 1.0f, keys[n++] = k;
	for (uint64_t k = 1000000; nw < LWIDE; k++) /* keys of the pool: their cells would be too large */
		if (hpsi_route_key(&ctx->seg, k) == 1)
			wide[nw++] = k;
	for (int i = 0; i < LWIDE * LWIDTH; i++)
		wones[i] = 1.0f;
	hps_opts wopt = {.width = LWIDTH};
	if ((rc = hps_wait(w, hps_push(w, keys, LKEYS, ones, NULL))) ||
	    (rc = hps_wait(w, hps_push(w, wide, LWIDE, wones, &wopt)))) {
		fprintf(stderr, "push: %s\n", hps_strerror(rc));
		return 4;
	}
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "env -u HPS_ROLE -u HPS_RANK %s scale --servers 1", hps_bin());
	if (system(cmd) != 0)
		return 5;
	if ((rc = hps_wait(w, hps_pull(w, keys, LKEYS, got, NULL)))) {
		fprintf(stderr, "pull: %s\n", hps_strerror(rc));
		return 6;
	}
	for (int k = 0; k < LKEYS; k++)
		if (got[k] != 1.0f) {
			fprintf(stderr, "key %llu holds %.0f after the move, want 1\n", (unsigned long long)keys[k], got[k]);
			return 7;
		}
	if ((rc = hps_wait(w, hps_pull(w, wide, LWIDE, wgot, &wopt)))) {
		fprintf(stderr, "pull of wide keys: %s\n", hps_strerror(rc));
		return 6;
	}
	for (int i = 0; i < LWIDE * LWIDTH; i++)
		if (wgot[i] != 1.0f) {
			fprintf(stderr, "wide key %llu holds %.0f after the move, want 1\n",
				(unsigned long long)wide[i / LWIDTH], wgot[i]);
			return 7;
		}
	printf("moved keys intact\n");
	fflush(stdout);
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* --self-serve for test_scale_end_during_move (joins 1): server 3 (a
 * scale starts it) joins but never serves, so the copy to it waits for
 * its answer (recover.c, SYNC_WHOLE), until the file <stop>.s3 appears;
 * then it closes, and the launcher ends the scale ("a server it started
 * ended"). For test_scale_timed_out_scale_ends (joins 0) it does not
 * join either (no copy to it starts), and exits at that file. */
static int end_during_move(const char *stop, int joins)
{
	const char *role = getenv("HPS_ROLE"), *rank = getenv("HPS_RANK");
	if (!role || strcmp(role, "server"))
		return scale_worker(stop, 2);
	hps_ctx *ctx = NULL;
	int three = rank && atoi(rank) == 3;
	if ((!three || joins) && hps_init(&ctx, NULL, NULL))
		return 2;
	if (three) {
		char path[4200];
		snprintf(path, sizeof path, "%s.s3", stop);
		for (int64_t until = hpsi_now_ns() + 60000000000ll; access(path, F_OK) != 0;) {
			if (hpsi_now_ns() > until)
				return 3;
			usleep(1000);
		}
		if (ctx)
			hps_finalize(ctx);
		return 0;
	}
	int rc = hps_server_run(ctx, NULL, NULL);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

static int final_paused(void *path)
{
	slurp_into(path, out, sizeof out);
	return strstr(out, "HPS_FAILPOINT=finalpause") != NULL;
}

static int server0_handed(void *path)
{
	slurp_into(path, out, sizeof out);
	return strstr(out, "server 0 moved key range") != NULL;
}

/* Issue 12, race (1): a scale that ends during a move. 2 -> 4 servers;
 * server 0 copies a range to server 2, and its FINAL waits 1.5 s
 * (HPS_FAILPOINT=finalpause:0:1500); meanwhile server 3 closes without
 * having served, so the launcher ends the scale and makes its plan from
 * the owner table as it is. Server 0 then hands the range to server 2.
 * The move's number goes up only after the owner (move.c
 * hpsi_move_handed): the plan's entry (server 0, the number before the
 * move) is older than the move, and server 2 keeps the range. Before,
 * the source raised the number before its FINAL, the plan paired server
 * 0 with the new number, and server 2 moved the range back to server 0
 * (an extra copy). The job trains on to exact sums. */
static void test_scale_end_during_move(void)
{
	char cmd[8192], s3[4200];
	struct launched l;
	launched_paths(&l, "scale");
	snprintf(s3, sizeof s3, "%s.s3", l.flag);
	snprintf(cmd, sizeof cmd,
		 "HPS_FAILPOINT=finalpause:0:1500 exec %s launch --self-serve -s 2 -w 3 --max-servers 4 --job sc16 "
		 "--host testhost --heap-mb 16 --timeout-ms 30000 --staleness 2 -- %s --end-during-move %s",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc16", .clock = 10};
	CU_ASSERT_FATAL(poll_until(workers_past, &a, 30000));
	char scale_log[4200];
	snprintf(scale_log, sizeof scale_log, "%s.scale", l.flag);
	snprintf(cmd, sizeof cmd, "exec %s scale --job sc16 --host testhost --servers 4", hps_bin());
	pid_t scale = spawn_logged(scale_log, "/bin/sh", cmd);
	int paused = poll_until(final_paused, l.log, 30000);
	CU_ASSERT(paused);
	touch_file(s3); /* server 3 closes: the scale ends while server 0's FINAL waits */
	CU_ASSERT(finish_group(scale, 60000) == 1);
	slurp_into(scale_log, out2, sizeof out2);
	CU_ASSERT(poll_until(server0_handed, l.log, 30000)); /* the FINAL went */
	a.clock += 20; /* a move back would run meanwhile */
	CU_ASSERT(poll_until(workers_past, &a, 30000));
	int rc = launched_finish(&l, 60000, out, sizeof out);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	unlink(s3);
	unlink(scale_log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: hps scale: a server it started ended"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "server 0 moved key range"));
	CU_ASSERT_PTR_NULL(strstr(out, "server 2 moved key range"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact after"));
	if (rc || !paused || strstr(out, "server 2 moved key range") || !strstr(out, "sums exact"))
		fprintf(stderr, "hps scale:\n%s\nlauncher:\n%s\n", out2, out);
}

static int scale_gave_up(void *path)
{
	slurp_into(path, out, sizeof out);
	return strstr(out, "did not all move within HPS_TIMEOUT_MS") != NULL;
}

/* The scale request of the job a (workers_past attached) was ended. */
static int scale_ended(void *p)
{
	struct watch *a = p;
	return atomic_load_explicit(&a->seg.hdr->scale_req, memory_order_acquire) == 0;
}

/* A scale that outlives HPS_TIMEOUT_MS: 2 -> 4 servers, server 3 never
 * joins (end_during_move), so no range moves to it; hps scale gives up,
 * and so does the launcher, in one line: the scale's state and the
 * checkpoint lock go (before, the launcher kept both for the rest of the
 * job), so a checkpoint and the next hps scale run: 3 servers hold the
 * ranges, as many as it asks for. The job trains on to exact sums. */
static void test_scale_timed_out_scale_ends(void)
{
	char cmd[8192], s3[4200];
	struct launched l;
	launched_paths(&l, "scale");
	snprintf(s3, sizeof s3, "%s.s3", l.flag);
	snprintf(cmd, sizeof cmd,
		 "exec %s launch --self-serve -s 2 -w 3 --max-servers 4 --job sc17 --host testhost --heap-mb 16 "
		 "--timeout-ms 6000 --staleness 2 -- %s --never-joins %s",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc17", .clock = 10};
	CU_ASSERT_FATAL(poll_until(workers_past, &a, 30000));
	snprintf(cmd, sizeof cmd, "%s scale --job sc17 --host testhost --servers 4", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	/* (the launcher gives up HPS_TIMEOUT_MS after its plan, hps scale
	 * that long after its request: the launcher may still come first) */
	CU_ASSERT(strcmp(out2, "hps scale: the key ranges of job sc17 did not move within HPS_TIMEOUT_MS\n") == 0 ||
		  strcmp(out2, "hps scale: job sc17 has 3 servers, not 4 (see the launcher's output)\n") == 0);
	int gave_up = poll_until(scale_gave_up, l.log, 15000);
	CU_ASSERT(gave_up);
	/* (it ends once no copy runs: the line comes first) */
	CU_ASSERT(poll_until(scale_ended, &a, 15000));
	/* the checkpoint lock went with it: a checkpoint of the servers that
	 * hold the ranges runs (server 3 never came) */
	char dir[128], why[HPSI_CKPT_WHY] = "";
	snprintf(dir, sizeof dir, "/tmp/hps-scale-%d.gaveup", (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	int saved = hpsi_checkpoint_run(&a.seg, HPSI_CKPT_SAVE, dir, 20000000000ll, why);
	CU_ASSERT_EQUAL(saved, 0);
	if (saved)
		fprintf(stderr, "a checkpoint after the scale gave up: %d (%s)\n", saved, why);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s scale --job sc17 --host testhost --servers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 0);
	CU_ASSERT_STRING_EQUAL(out2, "job sc17 has 3 servers already\n");
	touch_file(s3); /* server 3 closes */
	a.clock += 10;
	CU_ASSERT(poll_until(workers_past, &a, 30000));
	int rc = launched_finish(&l, 60000, out, sizeof out);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	unlink(s3);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: hps scale: the key ranges did not all move within HPS_TIMEOUT_MS; "
					   "those not moved yet stay where they are\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact after"));
	if (rc || !gave_up || !strstr(out, "sums exact"))
		fprintf(stderr, "hps scale:\n%s\nlauncher:\n%s\n", out2, out);
}

/* A range sent to a launched server between its hps_init and its
 * serving loop: it serves the copy, not an empty table of its own. */
static void test_scale_in_before_target_serves(void)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "exec %s launch --self-serve -s 2 -w 1 --max-servers 3 --job sc7 --host testhost --heap-mb 16 "
		 "--timeout-ms 30000 -- %s --late-target",
		 hps_bin(), self_path);
	int rc = run_cmd(cmd, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] moved keys intact"));
	/* the narrow and the wide keys went in tables mapped, none by records */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " to server 0 (20 keys in tables mapped, not copied)"));
	if (rc || !strstr(out, "moved keys intact"))
		fprintf(stderr, "launcher:\n%s\n", out);
}

/* The launcher's log (path) says how server 2 of a failed scale ended:
 * it could not start, or it started and left again. */
static int server2_settled(void *path)
{
	slurp_into(path, out, sizeof out);
	return strstr(out, "cannot start server 2") || strstr(out, "server 2 leaves the job");
}

/* The launcher cannot start a new server (its open files run out: ulimit
 * -n, other files closed, leaves room for the launch, not for the scale's
 * servers): the scale ends at once and says so, no range moves, a server
 * it did start leaves again, and the job trains on to exact sums. */
static void test_scale_new_server_cannot_start(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "scale");
	snprintf(cmd, sizeof cmd,
		 "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- && ulimit -n 10 && exec %s launch -s 2 -w 3 --max-servers 4 "
		 "--job sc8 --host testhost --heap-mb 16 --timeout-ms 30000 --staleness 2 -- %s --scale-worker %s 2",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc8", .clock = 10};
	CU_ASSERT(poll_until(workers_past, &a, 30000));
	snprintf(cmd, sizeof cmd, "%s scale --job sc8 --host testhost --servers 4", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: job sc8 has 2 servers, not 4 (see the launcher's output)\n");
	if (a.attached) {
		CU_ASSERT_EQUAL(hpsi_servers_current(&a.seg), 2);
		/* the next scale is not refused as running */
		CU_ASSERT_EQUAL(atomic_load_explicit(&a.seg.hdr->scale_req, memory_order_acquire), 0);
	}
	/* the workers stop only once a server 2 that started has left (a slow
	 * start, as under TSan, would otherwise meet the job's end instead) */
	CU_ASSERT(poll_until(server2_settled, l.log, 30000));
	CU_ASSERT_EQUAL(launched_finish(&l, 60000, out, sizeof out), 0);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: cannot start server "));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps scale: not every new server started; the key ranges stay where they are"));
	CU_ASSERT_PTR_NULL(strstr(out, " moved key range "));
	if (strstr(out, "cannot start server 3")) /* server 2 started */
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "server 2 leaves the job"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "sums exact after"));
	if (!strstr(out, "not every new server started") || !strstr(out, "sums exact"))
		fprintf(stderr, "scale: %s\nlauncher:\n%s\n", out2, out);
}

/* One server holding 64 key ranges keeps two memfds for each (the pool's
 * slots and windows): about 128 fds. Under an open-file limit of 80, soft
 * and hard, it fails with one line naming EMFILE and the limit, and
 * nothing says "out of memory", wherever the fds run out (a memfd of its
 * own or a table's: 0 to 6 more fds held open move that point); under a
 * soft limit of 80 with a higher hard one it raises its soft limit and
 * the job runs. */
static void test_scale_open_file_limit(void)
{
	static const char *const held[] = {"", "3</dev/null", "3</dev/null 4</dev/null",
					   "3</dev/null 4</dev/null 5</dev/null",
					   "3</dev/null 4</dev/null 5</dev/null 6</dev/null",
					   "3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null",
					   "3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null 8</dev/null"};
	const int nheld = (int)(sizeof held / sizeof *held);
	for (int i = 0; i <= nheld; i++) {
		int hard = i < nheld;
		char cmd[8192];
		snprintf(cmd, sizeof cmd,
			 "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- && exec %s && ulimit %s && HPS_LOG=info exec %s launch -s 1 "
			 "-w 1 --max-servers 64 --job sc11 --host testhost --heap-mb 16 --timeout-ms 20000 -- true",
			 hard ? held[i] : "", hard ? "-n 80" : "-Sn 80", hps_bin());
		int rc = run_cmd(cmd, out, sizeof out);
		if (hard) {
			CU_ASSERT_NOT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "error: server tables: out of file descriptors (EMFILE: the open-file limit, ulimit -n, is 80;"));
			CU_ASSERT_PTR_NULL(strstr(out, "out of memory"));
		} else {
			CU_ASSERT_EQUAL(rc, 0);
			CU_ASSERT_PTR_NOT_NULL(strstr(out, "server tables: open-file limit raised from 80 to "));
			CU_ASSERT_PTR_NULL(strstr(out, "out of file descriptors"));
		}
		if (hard ? rc == 0 || !strstr(out, "EMFILE") || strstr(out, "out of memory") : rc != 0)
			fprintf(stderr, "%s ulimit %s: status %d\n%s\n", hard ? held[i] : "", hard ? "-n 80" : "-Sn 80", rc, out);
	}
}

static int echo_handler(hps_request *req, void *arg)
{
	(void)req, (void)arg;
	return 0;
}

/* ---- a worker joins, then a range moves from a server that had not seen it ---- */

#define JKEYS 256
#define JCLOCKS 60
#define JHOLD 20          /* the workers wait here for the go file */
#define START_KEY 3000000u /* worker 2 pushes its start clock here */

/* Under BSP: pull, push 1 to every key, clock, from the resume clock (a
 * joiner's start clock) to JCLOCKS; every pull must be answered (none
 * held until HPS_TIMEOUT_MS). The joiner (rank 2) sends nothing until
 * the others finished its start clock. Worker 0 checks the sums at the
 * end. */
static int join_move_worker(const char *go)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	uint32_t start = 0;
	if ((rc = hps_resume_clock(ctx, &start)))
		return 3;
	static uint64_t keys[JKEYS + 1];
	static float ones[JKEYS + 1], got[JKEYS + 1];
	for (int k = 0; k < JKEYS; k++)
		keys[k] = skey(k), ones[k] = 1.0f;
	keys[JKEYS] = START_KEY;
	if (rank == 2) {
		/* sends nothing until the others finished its start clock: they
		 * need none of its pushes for that (BSP), so a pull of theirs held
		 * for it is held until HPS_TIMEOUT_MS */
		for (uint32_t o = 0; o < 2; o++)
			for (int64_t until = hpsi_now_ns() + 30000000000ll;
			     atomic_load_explicit(&hpsi_seg_node(&ctx->seg, hpsi_worker_node(&ctx->seg, o))->clock_done,
						  memory_order_acquire) <= start;) {
				if (hpsi_now_ns() > until) {
					fprintf(stderr, "rank 2: worker %u did not finish clock %u\n", o, start);
					return 4;
				}
				usleep(1000);
			}
		float s = (float)start;
		if ((rc = hps_wait(w, hps_push(w, &keys[JKEYS], 1, &s, NULL)))) {
			fprintf(stderr, "rank 2: push of its start: %s\n", hps_strerror(rc));
			return 4;
		}
	}
	for (uint32_t c = start; c < JCLOCKS; c++) {
		if (c == JHOLD)
			while (access(go, F_OK) != 0)
				usleep(1000); /* (bounded by the test's wait for the job) */
		if ((rc = hps_wait(w, hps_pull(w, keys, JKEYS, got, NULL)))) {
			fprintf(stderr, "rank %d: pull at clock %u: %s\n", rank, c, hps_strerror(rc));
			return 5;
		}
		if ((rc = hps_wait(w, hps_push(w, keys, JKEYS, ones, NULL))) || (rc = hps_clock(w))) {
			fprintf(stderr, "rank %d: push or clock at clock %u: %s\n", rank, c, hps_strerror(rc));
			return 6;
		}
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "rank %d: barrier: %s\n", rank, hps_strerror(rc));
		return 7;
	}
	if (rank == 0) {
		if ((rc = hps_wait(w, hps_pull(w, keys, JKEYS + 1, got, NULL)))) {
			fprintf(stderr, "final pull: %s\n", hps_strerror(rc));
			return 8;
		}
		float want = (float)(2 * JCLOCKS) + (float)JCLOCKS - got[JKEYS];
		for (int k = 0; k < JKEYS; k++)
			if (got[k] != want) {
				fprintf(stderr, "key %d holds %.0f, want %.0f (worker 2 joined at clock %.0f)\n", k, got[k],
					want, got[JKEYS]);
				return 9;
			}
		printf("sums exact, worker 2 joined at clock %.0f\n", got[JKEYS]);
		fflush(stdout);
	}
	if ((rc = hps_barrier(ctx)))
		return 10;
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

static int worker_alive(void *p)
{
	struct watch *a = p;
	return atomic_load_explicit(&hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, a->clock))->state,
				    memory_order_acquire) == HPSI_NODE_ALIVE;
}

/* -s 1 --max-servers 2, two workers of --max-workers 3 under BSP, held at
 * JHOLD; a third joins; then range 1 moves from server 0, which
 * (HPS_FAILPOINT=nolook:0) has not looked at the join before its FINAL,
 * to the new server 1, which started after the join. The joiner's clock
 * at the target must be its start clock, not the source's 0: every pull
 * is answered (none held until HPS_TIMEOUT_MS) and the sums are exact. */
static void test_scale_join_then_move(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "scale-jm");
	snprintf(cmd, sizeof cmd,
		 "HPS_FAILPOINT=nolook:0 exec %s launch -s 1 --max-servers 2 -w 2 --max-workers 3 --job sc9 --host testhost "
		 "--heap-mb 16 --timeout-ms 10000 --staleness bsp -- %s --join-move-worker %s",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "sc9", .clock = JHOLD, .workers = 2};
	int ok = poll_until(workers_past, &a, 30000);
	CU_ASSERT(ok);
	snprintf(cmd, sizeof cmd, "%s scale --job sc9 --host testhost --workers 3", hps_bin());
	ok = ok && run_cmd(cmd, out2, sizeof out2) == 0;
	CU_ASSERT(ok);
	a.clock = 2; /* worker 2 */
	ok = ok && poll_until(worker_alive, &a, 30000);
	CU_ASSERT(ok);
	snprintf(cmd, sizeof cmd, "%s scale --job sc9 --host testhost --servers 2", hps_bin());
	ok = ok && run_cmd(cmd, out2, sizeof out2) == 0;
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(launched_finish(&l, 60000, out, sizeof out), 0);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "moved key range"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	if (!strstr(out, "sums exact") || !strstr(out, "moved key range"))
		fprintf(stderr, "scale: %s\nlauncher:\n%s\n", out2, out);
}

/* hps scale --servers against segments made here (this process stands
 * for the launcher: its creator): each refusal one line. */
static void test_scale_servers_refusals(void)
{
	char cmd[8192];
	struct hpsi_seg room, plain, repl, hosts, hroom, hlast, hrepl;
	struct hpsi_seg_params p = {.job = "sq1", .host = "testhost", .nservers = 2, .nworkers = 1, .max_servers = 4,
				    .heap_slice = 8u << 20, .timeout_ms = 20000};
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &room), 0);
	p.job = "sq2", p.max_servers = 0;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &plain), 0);
	p.job = "sq3", p.replicas = 1, p.max_servers = 4; /* replicated, with room: it scales */
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &repl), 0);
	p = (struct hpsi_seg_params){.job = "sq4", .host = "testhost", .nservers = 2, .nworkers = 2, .heap_slice = 8u << 20,
				     .timeout_ms = 20000, .bridged = 1, .srv_lo = 0, .srv_hi = 1, .wrk_lo = 0, .wrk_hi = 1};
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &hosts), 0);
	p.job = "sq5", p.max_servers = 4; /* room, but on the last host, not this one */
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &hroom), 0);
	/* the last host (its room ranks 2 and 3), where rank 2 of an earlier
	 * scale died: it is neither free nor closed, and is not started again */
	p.job = "sq6", p.srv_lo = 1, p.srv_hi = 4, p.wrk_lo = 1, p.wrk_hi = 2;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &hlast), 0);
	atomic_store(&hpsi_seg_node(&hlast, 2)->state, HPSI_NODE_DEAD);
	/* a replicated job with room on two hosts, this the last: it
	 * launches (its backups on the other host); it scales (test_xscale
	 * test_xscale_replicated_room_scale), not below 2 servers */
	static const uint32_t host_servers[2] = {1, 3};
	p.job = "sq7", p.replicas = 1, p.nhosts = 2, p.host_servers = host_servers;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &hrepl), 0);
	for (uint32_t r = 0; r < 4; r++)
		CU_ASSERT(hpsi_replica(&hrepl, r, 0) == r % 2 && hpsi_replica(&hrepl, r, 1) == 1 - r % 2);
	static const struct {
		const char *args, *says;
		int rc;
	} cases[] = {
		{"--job sq1 --servers 5", "hps scale: job sq1 has room for at most 4 servers (hps launch --max-servers)\n", 1},
		{"--job sq1 --servers 2", "job sq1 has 2 servers already\n", 0},
		{"--job sq2 --servers 3", "hps scale: job sq2 was launched without room for more servers; its key ranges cannot move (hps launch --max-servers)\n", 1},
		{"--job sq3 --servers 2", "job sq3 has 2 servers already\n", 0}, /* (a replicated job scales: no refusal) */
		{"--job sq3 --servers 1", "hps scale: job sq3 keeps 1 backup of every key range on other servers (--replicas), so it needs at least 2 servers, not 1\n", 1},
		{"--job sq4 --servers 3", "hps scale: job sq4 was launched without room for more servers; its key ranges cannot move (hps launch --max-servers)\n", 1},
		{"--job sq5 --servers 3", "hps scale: job sq5 spans hosts (--hosts): its free server ranks are on its last host, not on testhost; run hps scale there\n", 1},
		{"--job sq6 --servers 3", "hps scale: job sq6 spans hosts (--hosts): server rank 2 is neither free nor closed by a scale (it died); it cannot start again\n", 1},
		{"--job sq7 --servers 1", "hps scale: job sq7 keeps 1 backup of every key range on other servers (--replicas), so it needs at least 2 servers, not 1\n", 1},
		{"--job sq1 --servers 0", "hps scale: --servers needs a number from 1 to 255\n", 2},
		{"--job sq1 --servers 3 --workers 2", "hps scale: say how many workers or servers the job should have (--workers N or --servers N, one of them)\n", 2},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(cmd, sizeof cmd, "%s scale --host testhost %s", hps_bin(), cases[i].args);
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), cases[i].rc);
		CU_ASSERT_STRING_EQUAL(out2, cases[i].says);
	}
	/* a scale running (its request word taken) */
	atomic_store(&room.hdr->scale_req, 3u | HPSI_SCALE_SERVERS);
	snprintf(cmd, sizeof cmd, "%s scale --host testhost --job sq1 --servers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: a scale of job sq1 is running\n");
	/* ... and its launcher (the creator: this process) holding the
	 * checkpoint lock while it moves ranges: a checkpoint is refused */
	char why[HPSI_CKPT_WHY];
	atomic_store(&room.hdr->ckpt_lock, (int32_t)getpid());
	CU_ASSERT_EQUAL(hpsi_checkpoint_run(&room, HPSI_CKPT_SAVE, "/tmp/hps-scale-never", 1000000000, why), HPS_EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "hps scale is moving key ranges between the servers of this job"));
	snprintf(cmd, sizeof cmd, "%s scale --host testhost --job nosuch --servers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "error: no job 'nosuch' on host 'testhost'"));
	/* a server with a user handler in a job with room: its state could not move */
	pid_t pid = fork();
	if (pid == 0) {
		hps_ctx *ctx;
		setenv("HPS_ROLE", "server", 1), setenv("HPS_RANK", "0", 1);
		setenv("HPS_JOB_ID", "sq1", 1), setenv("HPS_HOST", "testhost", 1);
		int rc = hps_init(&ctx, NULL, NULL);
		if (!rc)
			rc = hps_server_run(ctx, echo_handler, NULL);
		_exit(rc == HPS_EINVAL ? 0 : 1);
	}
	CU_ASSERT_EQUAL(wait_exit(pid, 30000), 0);
	atomic_store(&hpsi_seg_node(&room, 0)->state, HPSI_NODE_CLOSED);
	struct hpsi_seg *all[] = {&room, &plain, &repl, &hosts, &hroom, &hlast, &hrepl};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		hpsi_seg_unlink(all[i]);
		hpsi_seg_detach(all[i]);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--room-worker") == 0)
		return room_worker(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--failing-servers") == 0)
		return failing_new_servers(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--end-during-move") == 0)
		return end_during_move(argv[2], 1);
	if (argc == 3 && strcmp(argv[1], "--never-joins") == 0)
		return end_during_move(argv[2], 0);
	if (argc == 2 && strcmp(argv[1], "--late-target") == 0)
		return late_target();
	if (argc == 4 && strcmp(argv[1], "--adam-worker") == 0)
		return adam_worker(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--join-move-worker") == 0)
		return join_move_worker(argv[2]);
	if (argc == 4 && strcmp(argv[1], "--scale-worker") == 0)
		return scale_worker(argv[2], atoi(argv[3]));
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	static const struct test_case cases[] = {
		{"test_scale_room_exact_sums", test_scale_room_exact_sums},
		{"test_scale_replicated_room_digests", test_scale_replicated_room_digests},
		{"test_scale_room_refusals", test_scale_room_refusals},
		{"test_scale_out_in_ssp", test_scale_out_in_ssp},
		{"test_scale_out_bsp", test_scale_out_bsp},
		{"test_scale_out_adopt_refused", test_scale_out_adopt_refused},
		{"test_scale_epoch_before_count", test_scale_epoch_before_count},
		{"test_scale_replicated_epoch_before_count", test_scale_replicated_epoch_before_count},
		{"test_scale_replicated_out_in_kill", test_scale_replicated_out_in_kill},
		{"test_scale_replicated_swap", test_scale_replicated_swap},
		{"test_scale_replicated_dead_server_ends_scale", test_scale_replicated_dead_server_ends_scale},
		{"test_scale_declared_ranges", test_scale_declared_ranges},
		{"test_scale_key_split", test_scale_key_split},
		{"test_scale_deterministic_adam_bit_identical", test_scale_deterministic_adam_bit_identical},
		{"test_scale_replicated_adam_bit_identical", test_scale_replicated_adam_bit_identical},
		{"test_scale_new_server_fails", test_scale_new_server_fails},
		{"test_scale_servers_refusals", test_scale_servers_refusals},
		{"test_scale_in_before_target_serves", test_scale_in_before_target_serves},
		{"test_scale_end_during_move", test_scale_end_during_move},
		{"test_scale_timed_out_scale_ends", test_scale_timed_out_scale_ends},
		{"test_scale_new_server_cannot_start", test_scale_new_server_cannot_start},
		{"test_scale_join_then_move", test_scale_join_then_move},
		{"test_scale_open_file_limit", test_scale_open_file_limit},
		{NULL, NULL},
	};
	return run_suite("scale", cases);
}
