/* Restarted workers (hps launch --restart-workers): a worker killed with
 * SIGKILL at a random clock is started again with its rank, resumes from
 * hps_resume_clock, and the job ends with exactly the sums of a run without
 * the kill, the staleness bound holding at every pull (BSP and SSP(2)),
 * also when it died in a barrier, with replicated key ranges, and with a
 * server killed at the same time; under deterministic BSP, Adam's model
 * is bit for bit that of a run without the kill;
 * the restarts are bounded; bad values and arguments are refused.
 * Across hosts: tests/test_cluster.c runs rejoin_worker with a dying rank. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/client/ctx.h"
#include "shm/liveness.h"
#include "shm/node.h"
#include "shm/segment.h"
#include "tests/harness.h"

#define NKEYS 16
#define CLOCKS 2000 /* long enough for the kill to land before the end */
#define NWORKERS 3
#define BARRIER_EVERY 100 /* clocks between barriers, and one at the end */

static char self_path[4096];
static char out[1 << 17];

/* What worker r pushes to key index k at clock c: small integers, so that
 * every sum is exact in f32 and a push applied twice or lost shows. */
static float value(int r, uint32_t c, int k)
{
	return (float)(r + 1 + (int)((c + (uint32_t)k) % 4));
}

/* sums[c][k]: what every worker pushed to key k at clocks below c */
static double sums[CLOCKS + 1][NKEYS];
/* The job's workers: NWORKERS here; any number when test_cluster.c runs
 * this program across hosts (--rejoin-worker with a dying rank). */
static int nworkers = NWORKERS;

static void fill_sums(void)
{
	for (int k = 0; k < NKEYS; k++)
		for (uint32_t c = 0; c < CLOCKS; c++) {
			sums[c + 1][k] = sums[c][k];
			for (int r = 0; r < nworkers; r++)
				sums[c + 1][k] += value(r, c, k);
		}
}

/* The sum over every worker of their pushes to key k at clocks [0, upto). */
static double pushed_before(int64_t upto, int k)
{
	return sums[upto < 0 ? 0 : upto > CLOCKS ? CLOCKS : upto][k];
}

/* The worker program: pull, check the staleness bound, push, clock, from
 * the resume clock to CLOCKS; then a barrier, and rank 0 checks the sums.
 * Deterministic from any clock, as a restarted program must be. */
/* Worker 1 was restarted (its node's incarnation moved on). */
static int worker1_restarted(void *ctx)
{
	const struct hps_ctx *c = ctx;
	return atomic_load_explicit(&hpsi_seg_node(&c->seg, hpsi_worker_node(&c->seg, 1))->incarnation,
				    memory_order_relaxed) > 0;
}

/* Worker die_rank (1 unless test_cluster.c names another) kills itself
 * once its push of clock `die_at` was answered (0: never), in its first
 * `deaths` incarnations (1 unless named): the restart replays a push
 * that every server applied already. */
static int die_rank = 1, deaths = 1;
/* test_cluster.c: it dies instead at the start of clock die_at + 1, with
 * that clock's pull and push sent and their answers not read (across
 * hosts: in its bridge's FIFO, the pull held back by BSP). The restart
 * sends the same two again. */
static int die_in_flight;
/* ... and the others wait, before they end clock die_at, until this file
 * exists (the test made it once the restart waits in its drain): so the
 * pull stays unanswered in the bridge until then (BSP). */
static const char *go_file;

static int go_there(void *path)
{
	return access(path, F_OK) == 0;
}

static int dies_now(int rank, uint32_t c, uint32_t die_at)
{
	const char *again = getenv("HPS_RESTART");
	return die_at && rank == die_rank && c == die_at && (again ? atoi(again) : 0) < deaths;
}

static void maybe_die(int rank, uint32_t c, uint32_t die_at)
{
	if (!die_in_flight && dies_now(rank, c, die_at))
		raise(SIGKILL);
}

/* After hps_clock began clock c + 1. */
static void maybe_die_in_flight(hps_worker *w, const uint64_t *keys, float *got, int rank, uint32_t c, uint32_t die_at)
{
	if (!die_in_flight || !dies_now(rank, c, die_at))
		return;
	float next[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		next[k] = value(rank, c + 1, k);
	(void)hps_pull(w, keys, NKEYS, got, NULL);
	(void)hps_push(w, keys, NKEYS, next, NULL);
	raise(SIGKILL);
}

static int rejoin_worker(int staleness, uint32_t hold, uint32_t die_at)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	uint32_t c0 = 99;
	int rc = hps_resume_clock(ctx, &c0);
	const char *again = getenv("HPS_RESTART");
	if (rc || (!again && c0 != 0)) {
		fprintf(stderr, "hps_resume_clock: %s, clock %u without a restart\n", hps_strerror(rc), c0);
		return 3;
	}
	if (again)
		printf("restart %s resumes from clock %u\n", again, c0);
	fflush(stdout);
	int rank = hps_rank(ctx);
	if (die_rank == 1 && hps_num_workers(ctx) != NWORKERS)
		return 10;
	nworkers = hps_num_workers(ctx);
	fill_sums();
	uint64_t keys[NKEYS];
	float vals[NKEYS], got[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 7 + 1;
	for (uint32_t c = c0; c < CLOCKS; c++) {
		/* what clock c does comes after its hps_clock: a restart at c
		 * does it again, barrier included */
		/* hold: the others come to that barrier only once worker 1 was
		 * restarted, so that it dies inside it */
		if (hold && c == hold * BARRIER_EVERY && rank != 1 && !poll_until(worker1_restarted, ctx, 20000))
			return 11;
		if (c > 0 && c % BARRIER_EVERY == 0 && (rc = hps_barrier(ctx))) {
			fprintf(stderr, "barrier at clock %u: %s\n", c, hps_strerror(rc));
			return 7;
		}
		if ((rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL)))) {
			fprintf(stderr, "pull at clock %u: %s\n", c, hps_strerror(rc));
			return 4;
		}
		for (int k = 0; k < NKEYS; k++) {
			/* every push of clocks below c - s is in; none beyond c + s */
			double lo = pushed_before((int64_t)c - staleness, k);
			double hi = pushed_before((int64_t)c + staleness + 1, k);
			if (got[k] < lo || got[k] > hi) {
				fprintf(stderr, "clock %u key %d: pulled %.0f, outside [%.0f, %.0f]\n", c, k, got[k], lo, hi);
				return 5;
			}
			vals[k] = value(rank, c, k);
		}
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL)))) {
			fprintf(stderr, "push at clock %u: %s\n", c, hps_strerror(rc));
			return 6;
		}
		maybe_die(rank, c, die_at);
		if (go_file && rank != die_rank && c == die_at && !poll_until(go_there, (void *)go_file, 30000)) {
			fprintf(stderr, "%s never came\n", go_file);
			return 12;
		}
		if ((rc = hps_clock(w))) {
			fprintf(stderr, "clock %u: %s\n", c, hps_strerror(rc));
			return 6;
		}
		maybe_die_in_flight(w, keys, got, rank, c, die_at);
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "barrier: %s\n", hps_strerror(rc));
		return 7;
	}
	if (rank == 0) {
		if ((rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL))))
			return 8;
		for (int k = 0; k < NKEYS; k++)
			if (got[k] != pushed_before(CLOCKS, k)) {
				fprintf(stderr, "key %d: sum %.0f, want %.0f\n", k, got[k], pushed_before(CLOCKS, k));
				return 9;
			}
		printf("sums exact\n");
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* Pull, push and clock up to 200 clocks, then a barrier; worker 1 leaves
 * with _exit(0) at clock exit_at, without hps_finalize (its rank is not
 * closed by the exit handler). */
static int exit_worker(uint32_t exit_at)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	uint64_t keys[NKEYS];
	float vals[NKEYS], got[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 7 + 1, vals[k] = 1;
	for (uint32_t c = 0; c < 200; c++) {
		if ((rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL))) ||
		    (rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL)))) {
			fprintf(stderr, "clock %u: %s\n", c, hps_strerror(rc));
			return 4;
		}
		if (rank == 1 && c == exit_at)
			_exit(0);
		if ((rc = hps_clock(w)))
			return 6;
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "barrier: %s\n", hps_strerror(rc));
		return 7;
	}
	printf("barrier passed\n");
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* Deterministic BSP with Adam on the servers (as test_replica.c's
 * adam_worker): pull, a gradient from the pulled values, push, clock,
 * from the resume clock; rank 0 writes the final model to `path`. Each
 * key's gradient depends on that key's pulled value only: a replayed
 * clock whose push some server had applied already reads that server's
 * keys one clock ahead, but pushes nothing new to them (ARCHITECTURE.md,
 * "Restarted workers"). */
static int adam_worker(const char *path, uint32_t die_at)
{
	hps_ctx *ctx;
	hps_worker *w;
	uint32_t c0;
	if (join_as_worker(&ctx, &w) || hps_resume_clock(ctx, &c0))
		return 2;
	if (getenv("HPS_RESTART"))
		printf("restart %s resumes from clock %u\n", getenv("HPS_RESTART"), c0);
	fflush(stdout);
	int rank = hps_rank(ctx), rc;
	uint64_t keys[NKEYS];
	float got[NKEYS], grad[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 7 + 1;
	for (uint32_t c = c0; c < CLOCKS; c++) {
		if ((rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL))))
			return 4;
		for (int k = 0; k < NKEYS; k++)
			grad[k] = 0.25f * (got[k] - (float)(k % 5)) + 0.01f * (float)rank;
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, grad, NULL))))
			return 6;
		maybe_die(rank, c, die_at);
		if ((rc = hps_clock(w)))
			return 6;
	}
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL))))
		return 7;
	if (rank == 0) {
		FILE *f = fopen(path, "wb");
		if (!f || fwrite(got, sizeof got, 1, f) != 1)
			return 8;
		fclose(f);
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* The parent of pid (field 4 of /proc/PID/stat), or -1. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	slurp_into(path, buf, sizeof buf);
	const char *p = strrchr(buf, ')');
	int ppid = -1;
	return p && sscanf(p + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

struct watch {
	const char *job;
	struct hpsi_seg seg;
	int attached;
	uint32_t worker, incarnation, clock, barriers; /* wait for these */
};

/* The job's segment is there, and worker `worker` of incarnation
 * `incarnation` runs at clock `clock` or later. */
static int worker_reached(void *p)
{
	struct watch *a = p;
	char path[256];
	if (!a->attached && hpsi_seg_path(path, sizeof path, a->job, "testhost") == 0 && access(path, F_OK) == 0)
		a->attached = hpsi_seg_attach(a->job, "testhost", &a->seg) == 0;
	if (!a->attached)
		return 0;
	struct hpsi_node *n = hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, a->worker));
	return atomic_load_explicit(&n->state, memory_order_acquire) == HPSI_NODE_ALIVE &&
	       atomic_load_explicit(&n->incarnation, memory_order_relaxed) == a->incarnation &&
	       atomic_load_explicit(&n->clock_done, memory_order_relaxed) >= a->clock &&
	       atomic_load_explicit(&n->barrier_arrived, memory_order_relaxed) >= a->barriers;
}

/* Kills worker a->worker, or with `wrap` its parent (the wrapper the
 * launcher started); returns the worker's pid. */
static pid_t kill_worker(struct watch *a, int wrap)
{
	pid_t pid = atomic_load_explicit(&hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, a->worker))->pid,
					 memory_order_relaxed);
	pid_t victim = wrap && pid > 0 ? parent_of(pid) : pid;
	CU_ASSERT(victim > 1);
	if (victim > 1)
		kill(victim, SIGKILL);
	return pid;
}

/* A job under hps launch, with 3 workers: `opts` (servers, replicas,
 * ...) and the worker program's arguments `prog`. */
struct spec {
	const char *job, *opts, *prog;
	int restarts, kills; /* kills of worker 1 */
	uint32_t kill_at, kill_barriers;
	/* killed once worker 1's restart (incarnation 1) reached clock
	 * server_at; -1: none */
	int kill_server;
	uint32_t server_at;
	/* the worker command is a wrapper (sh running the worker as its
	 * child), and the kills hit the wrapper: the worker lives on */
	int wrap;
};


/* Runs the job; kills worker 1 `kills` times, the first time once it
 * reached clock kill_at and kill_barriers barriers, each later one as
 * soon as the restart joined. Returns the launcher's exit status; the
 * output is in `out`. */
static int run_spec(const struct spec *sp)
{
	char log[128], cmd[8192];
	snprintf(log, sizeof log, "/tmp/hps-rejoin-%d.log", (int)getpid());
	snprintf(cmd, sizeof cmd,
		 "exec %s launch %s -w 3 --job %s --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "--restart-workers %d -- %s%s %s%s",
		 hps_bin(), sp->opts, sp->job, sp->restarts, sp->wrap ? "/bin/sh -c '" : "", self_path, sp->prog,
		 sp->wrap ? "; exit $?'" : "");
	pid_t killed[4] = {0};
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	struct watch a = {.job = sp->job, .worker = 1, .clock = sp->kill_at, .barriers = sp->kill_barriers};
	for (int i = 0; i < sp->kills; i++) {
		a.incarnation = (uint32_t)i;
		if (!poll_until(worker_reached, &a, 20000)) {
			CU_FAIL("worker 1 did not reach the clock to kill it at");
			break;
		}
		killed[i < 4 ? i : 3] = kill_worker(&a, sp->wrap);
		a.clock = a.barriers = 0;
	}
	a.incarnation = 1;
	a.clock = sp->server_at;
	if (sp->kill_server >= 0 && !poll_until(worker_reached, &a, 20000)) {
		CU_FAIL("worker 1's restart did not reach the clock to kill the server at");
	} else if (sp->kill_server >= 0) {
		pid_t spid = atomic_load_explicit(&hpsi_seg_node(&a.seg, (uint32_t)sp->kill_server)->pid,
						  memory_order_relaxed);
		CU_ASSERT(spid > 0);
		if (spid > 0)
			kill(spid, SIGKILL);
	}
	int rc = finish_group(pid, 60000);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	slurp_into(log, out, sizeof out);
	unlink(log);
	/* a worker whose wrapper was killed ended with its process group */
	for (int i = 0; i < 4; i++)
		if (killed[i] > 0 && hpsi_proc_birth(killed[i]) != 0) { /* (a zombie is gone) */
			fprintf(stderr, "worker pid %d outlived its killed wrapper\n", (int)killed[i]);
			rc = 99;
		}
	return rc;
}

/* The job of 2 servers and 3 workers running rejoin_worker. */
static int run_job(const char *job, const char *staleness, int restarts, int kills, uint32_t kill_at,
		   uint32_t kill_barriers, uint32_t hold)
{
	char opts[64], prog[64];
	snprintf(opts, sizeof opts, "-s 2 --staleness %s", staleness);
	snprintf(prog, sizeof prog, "--rejoin-worker %s %u 0", strcmp(staleness, "bsp") ? staleness : "0", hold);
	struct spec sp = {job, opts, prog, restarts, kills, kill_at, kill_barriers, -1, 0, 0};
	return run_spec(&sp);
}

/* Worker 1 was restarted once, from clock `at` or later. */
static void check_restart_line(uint32_t at)
{
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: restarted worker 1"));
	const char *r = strstr(out, "[worker 1] restart 1 resumes from clock ");
	CU_ASSERT_PTR_NOT_NULL(r);
	unsigned resumed = 0;
	if (r)
		sscanf(r + strlen("[worker 1] restart 1 resumes from clock "), "%u", &resumed);
	CU_ASSERT(resumed >= at && resumed <= CLOCKS); /* it was killed at that clock or later */
}

/* Kills worker 1 once it reached clock `at` and arrived at `barriers`
 * barriers; checks the restart and the exact sums. */
static void check_restarted_job(const char *job, const char *staleness, uint32_t at, uint32_t barriers, uint32_t hold)
{
	int rc = run_job(job, staleness, 1, 1, at, barriers, hold);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	check_restart_line(at);
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "killed at clock %u (%u barriers) or later:\n%s\n", at, barriers, out);
}

/* BSP: the others wait in their pulls for the restarted worker; exact sums. */
static void test_rejoin_bsp_exact(void)
{
	check_restarted_job("rj1", "bsp", 5 + (uint32_t)(rand() % 400), 0, 0);
}

/* SSP(2): the same, and no pull reads beyond the bound meanwhile. */
static void test_rejoin_ssp_exact(void)
{
	check_restarted_job("rj2", "2", 5 + (uint32_t)(rand() % 400), 0, 0);
}

/* Killed inside a barrier (the others come to it only after the restart):
 * the restart replays that barrier without arriving twice, and the
 * others' barrier neither fails nor hangs. */
static void test_rejoin_in_barrier(void)
{
	uint32_t b = 1 + (uint32_t)(rand() % 5);
	check_restarted_job("rj5", "bsp", 0, b, b);
}

/* Replicated key ranges (3 servers, 1 backup each), BSP: worker 1 killed
 * at a random clock and restarted: exact sums. */
static void test_rejoin_replicas_exact(void)
{
	uint32_t at = 5 + (uint32_t)(rand() % 400);
	struct spec sp = {"rj6", "-s 3 --replicas 1 --staleness bsp", "--rejoin-worker 0 0 0", 1, 1, at, 0, -1, 0, 0};
	int rc = run_spec(&sp);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	check_restart_line(at);
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "killed at clock %u or later:\n%s\n", at, out);
}

/* The same, worker 1 dying just after its push of a random clock was
 * answered (so that the restart replays a push every primary applied and
 * forwarded), and server 1 killed once the restart is 20 clocks further:
 * its backups, which were forwarded the replayed push too and must have
 * skipped it, take its ranges over. Exact sums. */
static void test_rejoin_replicas_server_killed_too(void)
{
	uint32_t at = 5 + (uint32_t)(rand() % 400);
	char prog[64];
	snprintf(prog, sizeof prog, "--rejoin-worker 0 0 %u", at);
	struct spec sp = {"rj7", "-s 3 --replicas 1 --staleness bsp", prog, 1, 0, 0, 0, 1, at + 20, 0};
	int rc = run_spec(&sp);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: started a replacement for server 1"));
	check_restart_line(at);
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "died after its push of clock %u:\n%s\n", at, out);
}

/* The worker command is a wrapper script: the launcher's child is sh,
 * whose child joins as worker 1. The wrapper is killed: the launcher ends
 * its process group (the worker) before the restart, which would
 * otherwise run beside the old worker with the same rank. Exact sums, and
 * the old worker is gone. */
static void test_rejoin_wrapper_killed(void)
{
	uint32_t at = 5 + (uint32_t)(rand() % 400);
	struct spec sp = {"rj9", "-s 2 --staleness bsp", "--rejoin-worker 0 0 0", 1, 1, at, 0, -1, 0, 1};
	int rc = run_spec(&sp);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	check_restart_line(at);
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "wrapper killed at clock %u or later (%d):\n%s\n", at, rc, out);
}

static int flag_set(void *flag)
{
	return atomic_load_explicit((_Atomic int *)flag, memory_order_acquire) != 0;
}

/* Holds its rank until the test kills it (or 20 s). */
static int hold_rank(hps_ctx *ctx, hps_worker *w, void *flag)
{
	(void)ctx, (void)w;
	/* flag[1]: its worker is open (the test changes the rank's state only
	 * then: before, hps_worker_open would refuse a rank not ALIVE) */
	atomic_store_explicit((_Atomic int *)flag + 1, 1, memory_order_release);
	poll_until(flag_set, flag, 20000);
	return 0;
}

static int nothing(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)w, (void)arg;
	return 0;
}

/* hps_init refuses a RESTARTING rank whose last process still runs (the
 * launcher's child that died was a wrapper it could not end), with
 * HPS_EEXIST; once that process has ended, the restart joins. */
static void test_rejoin_init_refuses_live_holder(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	_Atomic int *flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(flag != MAP_FAILED);
	pid_t holder = job_fork_worker(&j, 0, 1, hold_rank, flag);
	CU_ASSERT(poll_until(flag_set, flag + 1, 20000));
	/* as the launcher does when its child dies and it restarts the rank */
	atomic_store_explicit(&hpsi_seg_node(&j.seg, hpsi_worker_node(&j.seg, 0))->state, HPSI_NODE_RESTARTING,
			      memory_order_release);
	atomic_store_explicit(&j.seg.hdr->worker_restarts, 1, memory_order_release);
	pid_t p = fork();
	if (p == 0) {
		job_env(&j, "worker", 0);
		hps_ctx *ctx;
		_exit(hps_init(&ctx, NULL, NULL) == HPS_EEXIST ? 0 : 1);
	}
	CU_ASSERT_EQUAL(wait_exit(p, 20000), 0);
	kill(holder, SIGKILL);
	waitpid(holder, NULL, 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, nothing, NULL), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	munmap(flag, 4096);
}

/* Worker 1 leaves with _exit(0), its rank not closed, while a restart is
 * left: the launcher closes the rank (status 0 is finished, not
 * restarted), and the others' BSP pulls and final barrier go on instead
 * of waiting for a restart that never comes until they time out. */
static void test_rejoin_exit_zero_unclosed(void)
{
	char prog[64];
	snprintf(prog, sizeof prog, "--exit-worker %u", 5 + (unsigned)(rand() % 100));
	struct spec sp = {"rj10", "-s 2 --staleness bsp", prog, 1, 0, 0, 0, -1, 0, 0};
	int rc = run_spec(&sp);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] barrier passed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 2] barrier passed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: worker 1 exited with status 0 without closing its rank"));
	CU_ASSERT_PTR_NULL(strstr(out, "restarted worker 1"));
	if (rc || !strstr(out, "[worker 0] barrier passed"))
		fprintf(stderr, "%s (%d):\n%s\n", prog, rc, out);
}

/* Runs rejoin's Adam job; 1 if it succeeded and its model went to m. */
static int adam_run(const struct spec *sp0, uint32_t die_at, float *m)
{
	char path[64], prog[128];
	snprintf(path, sizeof path, "/tmp/hps_rj_adam_%d", (int)getpid());
	snprintf(prog, sizeof prog, "--adam-worker %s %u", path, die_at);
	struct spec sp = *sp0;
	sp.prog = prog;
	int rc = run_spec(&sp);
	FILE *f = fopen(path, "rb");
	int ok = !rc && f && fread(m, sizeof(float) * NKEYS, 1, f) == 1;
	if (f)
		fclose(f);
	unlink(path);
	if (!ok)
		fprintf(stderr, "adam run (kill at %u, death after push %u) failed (%d):\n%s\n", sp.kill_at, die_at, rc,
			out);
	return ok;
}

/* Adam under --deterministic (with replicas): runs with worker 1 killed at
 * a random clock, and dying just after its push of a random clock, end
 * with the model of a run without a death, bit for bit. */
static void test_rejoin_deterministic_adam_bit_identical(void)
{
	const char *opts = "-s 3 --replicas 1 --staleness bsp --deterministic --updater adam:lr=0.05";
	uint32_t at = 5 + (uint32_t)(rand() % 400), die_at = 5 + (uint32_t)(rand() % 400);
	float clean[NKEYS], killed[NKEYS], died[NKEYS];
	struct spec sp = {"rj8", opts, NULL, 1, 0, 0, 0, -1, 0, 0};
	CU_ASSERT_FATAL(adam_run(&sp, 0, clean));
	sp.kills = 1;
	sp.kill_at = at;
	CU_ASSERT(adam_run(&sp, 0, killed) && memcmp(clean, killed, sizeof clean) == 0);
	check_restart_line(at);
	sp.kills = 0;
	CU_ASSERT(adam_run(&sp, die_at, died) && memcmp(clean, died, sizeof clean) == 0);
	check_restart_line(die_at);
}

/* --restart-workers 1: a second death of the same worker is final, as
 * without the option: the job stops and fails. */
static void test_rejoin_bounded(void)
{
	int rc = run_job("rj3", "bsp", 1, 2, 3, 0, 0);
	CU_ASSERT(rc != 0 && rc != -1);
	const char *first = strstr(out, "hps launch: restarted worker 1");
	CU_ASSERT_PTR_NOT_NULL(first);
	CU_ASSERT(first && !strstr(first + 1, "hps launch: restarted worker 1"));
	CU_ASSERT_PTR_NULL(strstr(out, "sums exact"));
}

static int run_quiet(const char *cmd)
{
	char log[128];
	snprintf(log, sizeof log, "/tmp/hps-rejoin-%d.err", (int)getpid());
	int rc = finish_group(spawn_logged(log, "/bin/sh", cmd), 20000);
	slurp_into(log, out, sizeof out);
	unlink(log);
	return rc;
}

/* Values out of range, or not numbers, and restarts across hosts are
 * refused with one line before anything starts. */
static void test_rejoin_bad_values(void)
{
	static const char *const bad[] = {"-1", "65", "x", "1x", ""};
	char cmd[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(cmd, sizeof cmd, "%s launch --job rj4 --host testhost --restart-workers '%s' -- true", hps_bin(),
			 bad[i]);
		CU_ASSERT_EQUAL(run_quiet(cmd), 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: --restart-workers needs a number from 0 to 64\n"));
	}
	snprintf(cmd, sizeof cmd, "%s launch --job rj4 --host testhost --restart-workers", hps_bin());
	CU_ASSERT_EQUAL(run_quiet(cmd), 2);
	/* across hosts only with --hosts (test_cluster.c): the scheduler of
	 * --tracker or of a hand-started HPS_ROOT_URI job does not know it */
	snprintf(cmd, sizeof cmd, "%s launch --restart-workers 1 --tracker -- true", hps_bin());
	CU_ASSERT_EQUAL(run_quiet(cmd), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: --restart-workers works within one host or with --hosts, not with --tracker or HPS_ROOT_URI\n"));
	snprintf(cmd, sizeof cmd, "HPS_ROOT_URI=127.0.0.1 %s launch --restart-workers 1 -- true", hps_bin());
	CU_ASSERT_EQUAL(run_quiet(cmd), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: --restart-workers works within one host or with --hosts, not with --tracker or HPS_ROOT_URI\n"));
	snprintf(cmd, sizeof cmd, "%s launch --help", hps_bin());
	CU_ASSERT_EQUAL(run_quiet(cmd), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--restart-workers N"));
}

static int resume_args(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	uint32_t c = 7;
	if (hps_resume_clock(NULL, &c) != HPS_EINVAL || hps_resume_clock(ctx, NULL) != HPS_EINVAL)
		return 1;
	if (hps_resume_clock(ctx, &c) != 0 || c != 0) /* no restart */
		return 2;
	return 0;
}

/* hps_resume_clock: 0 for a worker that is no restart; a NULL ctx or
 * clock, a server's ctx and a finalized ctx are refused. */
static void test_rejoin_resume_clock_args(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	pid_t p = job_fork_worker(&j, 0, 1, resume_args, NULL);
	CU_ASSERT_EQUAL(wait_exit(p, 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	/* a server's ctx, then the same once finalized */
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.no_servers = 1}), 0);
	job_env(&j, "server", 0);
	hps_ctx *ctx;
	uint32_t c;
	CU_ASSERT_EQUAL_FATAL(hps_init(&ctx, NULL, NULL), 0);
	CU_ASSERT_EQUAL(hps_resume_clock(ctx, &c), HPS_EINVAL);
	hps_finalize(ctx);
	CU_ASSERT_EQUAL(hps_resume_clock(ctx, &c), HPS_ECLOSED);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--adam-worker") == 0)
		return adam_worker(argv[2], (uint32_t)atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "--exit-worker") == 0)
		return exit_worker((uint32_t)atoi(argv[2]));
	if ((argc == 5 || argc == 7 || argc == 8) && strcmp(argv[1], "--rejoin-worker") == 0) {
		if (argc >= 7) /* test_cluster.c: the dying rank and its deaths */
			die_rank = atoi(argv[5]), deaths = atoi(argv[6]);
		/* "in-flight:GO" (test_cluster.c) */
		die_in_flight = argc == 8 && strncmp(argv[7], "in-flight:", 10) == 0;
		go_file = die_in_flight ? argv[7] + 10 : NULL;
		return rejoin_worker(atoi(argv[2]), (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
	}
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	printf("seed %u\n", seed);
	srand(seed);
	static const struct test_case cases[] = {
		{"test_rejoin_bsp_exact", test_rejoin_bsp_exact},
		{"test_rejoin_ssp_exact", test_rejoin_ssp_exact},
		{"test_rejoin_in_barrier", test_rejoin_in_barrier},
		{"test_rejoin_replicas_exact", test_rejoin_replicas_exact},
		{"test_rejoin_replicas_server_killed_too", test_rejoin_replicas_server_killed_too},
		{"test_rejoin_deterministic_adam_bit_identical", test_rejoin_deterministic_adam_bit_identical},
		{"test_rejoin_wrapper_killed", test_rejoin_wrapper_killed},
		{"test_rejoin_init_refuses_live_holder", test_rejoin_init_refuses_live_holder},
		{"test_rejoin_exit_zero_unclosed", test_rejoin_exit_zero_unclosed},
		{"test_rejoin_bounded", test_rejoin_bounded},
		{"test_rejoin_bad_values", test_rejoin_bad_values},
		{"test_rejoin_resume_clock_args", test_rejoin_resume_clock_args},
		{NULL, NULL},
	};
	return run_suite("rejoin", cases);
}
