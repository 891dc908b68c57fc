/* Workers that join a running job (hps launch --max-workers, HPS_JOIN=1,
 * hps scale --workers): under BSP and SSP(2) a third worker joins two
 * that push for many clocks; it starts at the slowest member's clock,
 * every pull of every worker stays within the staleness bound, the first
 * barrier of the joiner is the members' next one, and the final sums are
 * exact with the joiner's pushes. Then the refusals of hps scale and
 * HPS_JOIN, scales whose worker fails or loses its rank, and a job
 * without --max-workers as before. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <errno.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/client/ctx.h"
#include "runtime/cluster/join_host.h"
#include "shm/node.h"
#include "shm/segment.h"
#include "tests/harness.h"

#define NKEYS 16
#define CLOCKS 400
#define JOIN_AT 150      /* the members wait at this clock until the joiner took its rank */
#define BARRIER_EVERY 100
#define JOINER 2         /* its rank: the first free one */
#define HOLD_AT 250      /* with JOIN_TEST_HOLD=FILE every worker waits here for FILE */
#define DIE_AT 300       /* with JOIN_TEST_DIE=1 the joiner dies here once (SIGKILL) */

static char self_path[4096];
static char out[1 << 17], out2[1 << 16];

static float value(int r, uint32_t c, int k)
{
	return (float)(r + 1 + (int)((c + (uint32_t)k) % 4));
}

/* pre[r][c][k]: what worker r pushed to key k at clocks below c (from 0) */
static double pre[3][CLOCKS + 1][NKEYS];

static void fill_sums(void)
{
	for (int r = 0; r < 3; r++)
		for (int k = 0; k < NKEYS; k++)
			for (uint32_t c = 0; c < CLOCKS; c++)
				pre[r][c + 1][k] = pre[r][c][k] + value(r, c, k);
}

static int64_t clamp(int64_t c)
{
	return c < 0 ? 0 : c > CLOCKS ? CLOCKS : c;
}

/* Every worker's pushes to key k at clocks below upto; the joiner's from JOIN_AT. */
static double pushed_before(int64_t upto, int k)
{
	int64_t u = clamp(upto);
	double s = pre[0][u][k] + pre[1][u][k];
	if (u > JOIN_AT)
		s += pre[JOINER][u][k] - pre[JOINER][JOIN_AT][k];
	return s;
}

static int three_workers(void *ctx)
{
	return hps_num_workers(ctx) == 3;
}

/* After the barrier at clock c every worker that runs (the joiner too)
 * had come to it: its clock is c. Across hosts (tests/test_xjoin.c) the
 * workers of this host: another host's clock_done here is what its clock
 * messages brought, which may come after the barrier's release. */
static int all_at(hps_ctx *ctx, uint32_t c)
{
	struct hpsi_seg *s = &ctx->seg;
	for (uint32_t w = 0; w < s->hdr->nworkers; w++) {
		if (!hpsi_node_local(s, hpsi_worker_node(s, w)))
			continue;
		struct hpsi_node *n = hpsi_seg_node(s, hpsi_worker_node(s, w));
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st == HPSI_NODE_ALIVE && atomic_load_explicit(&n->clock_done, memory_order_relaxed) < c) {
			fprintf(stderr, "after the barrier at clock %u worker %u is at clock %u\n", c, w,
				atomic_load_explicit(&n->clock_done, memory_order_relaxed));
			return 0;
		}
	}
	return 1;
}

static int file_there(void *path)
{
	return access(path, F_OK) == 0;
}

static int join_worker(int staleness)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int restarted = getenv("HPS_RESTART") != NULL, rank = hps_rank(ctx), rc;
	int joined = getenv("HPS_JOIN") != NULL || (restarted && rank == JOINER);
	uint32_t c0 = 99;
	/* a restart resumes where the joiner died: right after its clock DIE_AT */
	uint32_t start = restarted ? DIE_AT + 1 : joined ? JOIN_AT : 0;
	if ((rc = hps_resume_clock(ctx, &c0)) || c0 != start || rank != (joined ? JOINER : rank)) {
		fprintf(stderr, "rank %d starts at clock %u, not %u (%s)\n", rank, c0, start, hps_strerror(rc));
		return 3;
	}
	if (joined) {
		printf("%s as rank %d at clock %u\n", restarted ? "restarted" : "joined", rank, c0);
		fflush(stdout);
	}
	int epoch = hps_membership_epoch(ctx);
	fill_sums();
	uint64_t keys[NKEYS];
	float vals[NKEYS], got[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 7 + 1;
	for (uint32_t c = c0; c < CLOCKS; c++) {
		if (!joined && c == JOIN_AT) {
			if (hps_num_workers(ctx) != 2 || !poll_until(three_workers, ctx, 30000))
				return 11;
			if (hps_membership_epoch(ctx) == epoch) {
				fprintf(stderr, "the membership epoch did not move\n");
				return 12;
			}
		}
		if (c == HOLD_AT && getenv("JOIN_TEST_HOLD") && !poll_until(file_there, getenv("JOIN_TEST_HOLD"), 30000))
			return 14;
		if (c > 0 && c % BARRIER_EVERY == 0) {
			if ((rc = hps_barrier(ctx))) {
				fprintf(stderr, "barrier at clock %u: %s\n", c, hps_strerror(rc));
				return 7;
			}
			if (!all_at(ctx, c))
				return 13;
		}
		if ((rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL)))) {
			fprintf(stderr, "pull at clock %u: %s\n", c, hps_strerror(rc));
			return 4;
		}
		for (int k = 0; k < NKEYS; k++) {
			double lo = pushed_before((int64_t)c - staleness, k);
			double hi = pushed_before((int64_t)c + staleness + 1, k);
			if (got[k] < lo || got[k] > hi) {
				fprintf(stderr, "rank %d clock %u key %d: pulled %.0f, outside [%.0f, %.0f]\n", rank, c, k,
					got[k], lo, hi);
				return 5;
			}
			vals[k] = value(rank, c, k);
		}
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL))) || (rc = hps_clock(w))) {
			fprintf(stderr, "push or clock at clock %u: %s\n", c, hps_strerror(rc));
			return 6;
		}
		if (c == DIE_AT && joined && !restarted && getenv("JOIN_TEST_DIE"))
			raise(SIGKILL); /* the launcher restarts it (--restart-workers) */
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "last barrier: %s\n", hps_strerror(rc));
		return 7;
	}
	if (hps_num_workers(ctx) != 3)
		return 10;
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

/* A worker that waits for file `go` (a joiner: before it joins), then ends. */
static int idle_worker(const char *go, int expect_workers)
{
	if (getenv("HPS_JOIN") && getenv("JOIN_TEST_FAIL"))
		return 1; /* a joiner that fails before it joins */
	if (getenv("HPS_JOIN") && !poll_until(file_there, (void *)go, 30000))
		return 20;
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	if (!getenv("HPS_JOIN") && hps_num_workers(ctx) != expect_workers) {
		fprintf(stderr, "hps_num_workers %d, want %d\n", hps_num_workers(ctx), expect_workers);
		return 21;
	}
	if (!poll_until(file_there, (void *)go, 30000))
		return 20;
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

struct watch {
	const char *job;
	struct hpsi_seg seg;
	int attached;
	uint32_t clock; /* workers 0 and 1 at this clock */
	uint32_t workers; /* the workers watched (0: the two launched) */
};

static int members_at(void *p)
{
	struct watch *a = p;
	char path[256];
	if (!a->attached && hpsi_seg_path(path, sizeof path, a->job, "testhost") == 0 && access(path, F_OK) == 0)
		a->attached = hpsi_seg_attach(a->job, "testhost", &a->seg) == 0;
	if (!a->attached)
		return 0;
	for (uint32_t w = 0; w < (a->workers ? a->workers : 2); w++) {
		struct hpsi_node *n = hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, w));
		if (atomic_load_explicit(&n->state, memory_order_acquire) != HPSI_NODE_ALIVE ||
		    atomic_load_explicit(&n->clock_done, memory_order_relaxed) != a->clock)
			return 0;
	}
	return 1;
}

static const char *launcher_log;

/* The launcher started the scale's worker (it says so in its log). */
static int scale_started(void *unused)
{
	(void)unused;
	return strstr(slurp_into(launcher_log, out, sizeof out), "hps launch: hps scale: started") != NULL;
}

static int scale_running(void *p)
{
	struct watch *a = p;
	return atomic_load_explicit(&a->seg.hdr->scale_req, memory_order_acquire) != 0;
}

static int run_cmd(const char *cmd, char *buf, size_t cap)
{
	char log[128];
	snprintf(log, sizeof log, "/tmp/hps-join-%d.cmd", (int)getpid());
	int rc = finish_group(spawn_logged(log, "/bin/sh", cmd), 30000);
	slurp_into(log, buf, cap);
	unlink(log);
	return rc;
}

/* Two workers launched with room for three; the third joins by hand
 * (HPS_JOIN=1) or by hps scale once both wait at JOIN_AT. `servers`: the
 * launch's server options. With kill_server, once all three wait at
 * HOLD_AT, that server is killed (-9) and they go on: its key ranges are
 * served by their backups, which must count the joiner too. */
static void run_join_with(const char *job, const char *staleness, int by_scale, const char *env, const char *servers,
			  int kill_server)
{
	char log[128], cmd[8192], hold[128];
	snprintf(log, sizeof log, "/tmp/hps-join-%d.log", (int)getpid());
	snprintf(hold, sizeof hold, "/tmp/hps-join-%d.hold", (int)getpid());
	unlink(hold);
	snprintf(cmd, sizeof cmd,
		 "%s %s%s exec %s launch %s -w 2 --max-workers 3 --job %s --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "--staleness %s -- %s --join-worker %s",
		 env, kill_server >= 0 ? "JOIN_TEST_HOLD=" : "", kill_server >= 0 ? hold : "", hps_bin(), servers, job,
		 staleness, self_path, strcmp(staleness, "bsp") ? staleness : "0");
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	struct watch a = {.job = job, .clock = JOIN_AT};
	int ready = poll_until(members_at, &a, 30000);
	CU_ASSERT(ready);
	if (ready && by_scale) {
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host testhost --workers 3", hps_bin(), job);
		int src = run_cmd(cmd, out2, sizeof out2);
		CU_ASSERT_EQUAL(src, 0);
		if (src)
			fprintf(stderr, "hps scale: %d\n%s\n", src, out2);
		char want[128];
		snprintf(want, sizeof want, "job %s has 3 workers", job);
		CU_ASSERT_PTR_NOT_NULL(strstr(out2, want));
	} else if (ready) {
		snprintf(cmd, sizeof cmd,
			 "HPS_ROLE=worker HPS_JOB_ID=%s HPS_HOST=testhost HPS_JOIN=1 exec %s --join-worker %s", job,
			 self_path, strcmp(staleness, "bsp") ? staleness : "0");
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out2, "joined as rank 2 at clock 150"));
	}
	if (ready && kill_server >= 0) {
		a.clock = HOLD_AT;
		a.workers = 3;
		int held = poll_until(members_at, &a, 30000);
		CU_ASSERT(held);
		pid_t victim = atomic_load_explicit(&hpsi_seg_node(&a.seg, (uint32_t)kill_server)->pid, memory_order_relaxed);
		CU_ASSERT(held && victim > 0 && kill(victim, SIGKILL) == 0);
		touch_file(hold);
	}
	int rc = finish_group(pid, 60000);
	unlink(hold);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	slurp_into(log, out, sizeof out);
	unlink(log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	if (by_scale)
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "joined as rank 2 at clock 150"));
	if (kill_server >= 0)
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "are served by their backups"));
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "launcher:\n%s\njoiner or scale:\n%s\n", out, out2);
}

static void run_join(const char *job, const char *staleness, int by_scale)
{
	run_join_with(job, staleness, by_scale, "", "-s 2", -1);
}

static void test_join_bsp_by_hand(void)
{
	run_join("jn1", "bsp", 0);
}

static void test_join_ssp_by_hand(void)
{
	run_join("jn2", "2", 0);
}

static void test_join_bsp_by_scale(void)
{
	run_join("jn3", "bsp", 1);
}

static void test_join_ssp_by_scale(void)
{
	run_join("jn4", "2", 1);
}

/* A replicated job (3 servers, every key range on 2): the joiner's pushes
 * and clock reach the backups through the primaries, so after server 0
 * dies (every worker waiting at HOLD_AT) its range's backup serves it
 * with the joiner counted: the staleness bound at every pull and exact
 * sums, under BSP and SSP(2). (The joiner comes by hps scale: one started
 * by hand would wait at HOLD_AT while the test waits for it.) */
static void test_join_replicated_then_kill(void)
{
	run_join_with("jr1", "bsp", 1, "", "-s 3 --replicas 1", 0);
	run_join_with("jr2", "2", 1, "", "-s 3 --replicas 1", 0);
}

/* A worker that joined by hps scale dies (SIGKILL after its clock
 * DIE_AT): the launcher restarts it with its rank (--restart-workers 1),
 * it resumes from the clock after, and the job ends with exact sums, the
 * staleness bound held at every pull, under BSP and SSP(2). */
static void test_join_then_restart(void)
{
	static const char *const staleness[] = {"bsp", "2"};
	for (int i = 0; i < 2; i++) {
		run_join_with(i ? "jd2" : "jd1", staleness[i], 1, "JOIN_TEST_DIE=1", "-s 2 --restart-workers 1", -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: restarted worker 2"));
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "restarted as rank 2 at clock 301"));
	}
}

/* hps scale against a running job: each refusal one line and a non-zero
 * exit; a second scale while one runs is refused; a rank above the
 * launched ones is not taken without HPS_JOIN. */
static void test_join_scale_refusals(void)
{
	char log[128], cmd[8192], go[128];
	snprintf(log, sizeof log, "/tmp/hps-join-%d.log", (int)getpid());
	snprintf(go, sizeof go, "/tmp/hps-join-%d.go", (int)getpid());
	unlink(go);
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 1 -w 2 --max-workers 3 --job jr --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "-- %s --idle-worker %s 2",
		 hps_bin(), self_path, go);
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	struct watch a = {.job = "jr", .clock = 0};
	CU_ASSERT_FATAL(poll_until(members_at, &a, 30000));
	static const struct {
		int workers;
		const char *says;
		int rc;
	} cases[] = {
		{4, "hps scale: job jr has room for at most 3 workers (hps launch --max-workers)\n", 1},
		{1, "hps scale: job jr has 2 workers; workers leave by closing (hps_finalize), not by hps scale\n", 1},
		{2, "job jr has 2 workers already\n", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(cmd, sizeof cmd, "%s scale --job jr --host testhost --workers %d", hps_bin(), cases[i].workers);
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), cases[i].rc);
		CU_ASSERT_STRING_EQUAL(out2, cases[i].says);
	}
	/* HPS_RANK of a free rank, without HPS_JOIN */
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_RANK=2 HPS_JOB_ID=jr HPS_HOST=testhost exec %s --idle-worker %s 2",
		 self_path, go);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "worker rank 2 of job 'jr' was not launched: a worker takes a free rank with HPS_JOIN=1"));
	/* a scale whose worker waits for `go` before it joins: still running */
	char log2[128];
	snprintf(log2, sizeof log2, "/tmp/hps-join-%d.scale", (int)getpid());
	snprintf(cmd, sizeof cmd, "exec %s scale --job jr --host testhost --workers 3", hps_bin());
	pid_t scale = spawn_logged(log2, "/bin/sh", cmd);
	CU_ASSERT(poll_until(scale_running, &a, 30000));
	CU_ASSERT_EQUAL(run_cmd(cmd + 5, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: a scale of job jr is running\n");
	/* the members end once go is there: the launcher counts them first */
	launcher_log = log;
	CU_ASSERT(poll_until(scale_started, NULL, 30000));
	touch_file(go);
	int src = finish_group(scale, 30000);
	CU_ASSERT_EQUAL(src, 0);
	slurp_into(log2, out2, sizeof out2);
	if (src)
		fprintf(stderr, "hps scale: %d\n%s\n", src, out2);
	CU_ASSERT_STRING_EQUAL(out2, "job jr has 3 workers\n");
	unlink(log2);
	CU_ASSERT_EQUAL(finish_group(pid, 30000), 0);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	slurp_into(log, out, sizeof out);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: hps scale: started 1 more worker (2 to 3)"));
	if (src)
		fprintf(stderr, "launcher:\n%s\n", out);
	unlink(log);
	unlink(go);
}

/* The rank a scale's worker would take is taken by hand first: that
 * worker ends without joining (the launcher names it), the job goes on,
 * and the scale is done all the same: the job has the workers asked for. */
static void test_join_scale_loses_rank(void)
{
	char log2[128], cmd[8192];
	struct launched l;
	launched_paths(&l, "join");
	snprintf(log2, sizeof log2, "/tmp/hps-join-%d.scale", (int)getpid());
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 1 -w 2 --max-workers 3 --job jl --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "-- %s --idle-worker %s 2",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "jl", .clock = 0};
	CU_ASSERT_FATAL(poll_until(members_at, &a, 30000));
	snprintf(cmd, sizeof cmd, "exec %s scale --job jl --host testhost --workers 3", hps_bin());
	pid_t scale = spawn_logged(log2, "/bin/sh", cmd);
	launcher_log = l.log;
	CU_ASSERT(poll_until(scale_started, NULL, 30000)); /* its worker waits for the flag */
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_JOB_ID=jl HPS_HOST=testhost HPS_JOIN=1 exec %s --idle-worker /tmp 2",
		 self_path);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 0);
	touch_file(l.flag);
	CU_ASSERT_EQUAL(finish_group(scale, 30000), 0);
	slurp_into(log2, out2, sizeof out2);
	CU_ASSERT_STRING_EQUAL(out2, "job jl has 3 workers\n");
	CU_ASSERT_EQUAL(launched_finish(&l, 30000, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "has no free worker rank"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: a joining worker exited with status 2"));
	if (a.attached)
		hpsi_seg_detach(&a.seg);
	unlink(log2);
}

/* The scale's worker fails before it joins: the scale says so, the job
 * goes on. */
static void test_join_scale_worker_fails(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "join");
	snprintf(cmd, sizeof cmd,
		 "JOIN_TEST_FAIL=1 exec %s launch -s 1 -w 2 --max-workers 3 --job jf --host testhost --heap-mb 16 "
		 "--timeout-ms 20000 -- %s --idle-worker %s 2",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "jf", .clock = 0};
	CU_ASSERT_FATAL(poll_until(members_at, &a, 30000));
	snprintf(cmd, sizeof cmd, "%s scale --job jf --host testhost --workers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: only 0 of the 1 new workers of job jf joined (see the launcher's output)\n");
	CU_ASSERT_EQUAL(launched_finish(&l, 30000, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps launch: a joining worker exited with status 1"));
	if (a.attached)
		hpsi_seg_detach(&a.seg);
}

/* Refusals that need no running job, or no room. */
static void test_join_refusals(void)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "%s scale --job nosuch --host testhost --workers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "error: no job 'nosuch' on host 'testhost'"));
	snprintf(cmd, sizeof cmd, "%s scale --job nosuch --host testhost", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	snprintf(cmd, sizeof cmd, "%s scale --workers 0", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "hps scale: --workers needs a number from 1 to"));
	snprintf(cmd, sizeof cmd, "%s scale --help", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "usage: hps scale"));
	/* --join-host (its refusals of a running job: tests/test_xhosts.c) */
	snprintf(cmd, sizeof cmd, "env -u HPS_JOB_ID %s scale --join-host h2", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: --join-host needs --job ID (the job of `hps launch --hosts`)\n");
	snprintf(cmd, sizeof cmd, "%s scale --job nosuch --join-host h2 --workers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "hps scale: --join-host starts a host with none of its own"));
	snprintf(cmd, sizeof cmd, "%s scale --job nosuch --join-host h2", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: no job nosuch was launched with --hosts on this host\n");
	snprintf(cmd, sizeof cmd, "%s launch --job jb --host testhost -w 2 --max-workers 1 -- true", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "HPS_MAX_WORKERS=1 is below HPS_NUM_WORKERS=2"));
	snprintf(cmd, sizeof cmd, "%s launch --max-workers 3 --tracker -- true", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "hps launch: --max-workers works within one host or with --hosts, not with --tracker"));
}

/* The socket of hps scale --join-host has an abstract name, which every
 * user of the network namespace shares: each end checks that the other
 * runs as its own user (runtime/cluster/join_host.c). Needs root, to be
 * another user in a child (nobody). */
static int become_nobody(void)
{
	return setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0 ? 0 : -1;
}

static void test_join_host_other_user(void)
{
	if (getuid() != 0) {
		fprintf(stderr, "test_join_host_other_user: skipped (needs root to be another user)\n");
		return;
	}
	char job[64], cmd[8192];
	/* 1: another user's socket by the job's name answers "started": the
	 * command refuses it (it waited for the host until its timeout) */
	snprintf(job, sizeof job, "otheruser%d", (int)getpid());
	int ready[2];
	CU_ASSERT_EQUAL_FATAL(pipe(ready), 0);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		int lfd = become_nobody() == 0 ? hpsi_join_listen(job) : -1;
		char ok = lfd >= 0 ? 'y' : 'n';
		if (write(ready[1], &ok, 1) != 1 || lfd < 0)
			_exit(3);
		for (;;) {
			struct pollfd p = {.fd = lfd, .events = POLLIN};
			char name[64];
			if (poll(&p, 1, 10000) <= 0)
				_exit(0);
			int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0 && recv(c, name, sizeof name, 0) > 0)
				hpsi_join_answer(c, 1, "host started");
			else if (c >= 0)
				close(c);
		}
	}
	close(ready[1]);
	char ok = 0;
	CU_ASSERT_EQUAL(read(ready[0], &ok, 1), 1);
	close(ready[0]);
	CU_ASSERT_EQUAL(ok, 'y');
	snprintf(cmd, sizeof cmd, "HPS_TIMEOUT_MS=2000 %s scale --job %s --join-host h2", hps_bin(), job);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	char want[200];
	snprintf(want, sizeof want, "hps scale: the socket of job %s is another user's, not its launcher's\n", job);
	CU_ASSERT_STRING_EQUAL(out2, want);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* 2: another user asks the job's launcher: refused in one line */
	snprintf(job, sizeof job, "otherasks%d", (int)getpid());
	int lfd = hpsi_join_listen(job);
	CU_ASSERT_FATAL(lfd >= 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) { /* nobody connects to it as the command does */
		int fd = become_nobody() == 0 ? hpsi_join_connect(job) : -1;
		char answer[600];
		if (fd < 0 || send(fd, "h2", 2, MSG_NOSIGNAL) != 2) {
			fprintf(stderr, "nobody's request: %s (fd %d)\n", strerror(errno), fd);
			_exit(3);
		}
		ssize_t got = recv(fd, answer, sizeof answer - 1, 0);
		answer[got > 0 ? got : 0] = 0;
		if (strcmp(answer, "-the launcher of this job runs as another user") != 0) {
			fprintf(stderr, "nobody's request: answered %zd \"%s\" (%s)\n", got, answer, got < 0 ? strerror(errno) : "");
			_exit(4);
		}
		_exit(0);
	}
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CU_ASSERT_EQUAL(poll(&p, 1, 10000), 1);
	char name[64];
	CU_ASSERT_EQUAL(hpsi_join_take(lfd, name, sizeof name), -1); /* refused, answered */
	int st = -1;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "the other user's request: status %#x\n", st);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(lfd);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/* A signal that comes to the launcher while it waits for a request's
 * name (SIGUSR1, SIGTERM: its handlers have no SA_RESTART) does not lose
 * the request: the name that comes after it is taken. */
static void test_join_host_request_signalled(void)
{
	char job[64];
	snprintf(job, sizeof job, "signalled%d", (int)getpid());
	int lfd = hpsi_join_listen(job);
	CU_ASSERT_FATAL(lfd >= 0);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) { /* connects, and sends the name 300 ms later */
		int fd = hpsi_join_connect(job);
		if (fd < 0)
			_exit(3);
		nanosleep(&(struct timespec){0, 300000000}, NULL);
		char answer[600];
		if (send(fd, "h2", 2, MSG_NOSIGNAL) != 2 || recv(fd, answer, sizeof answer, 0) <= 0 || answer[0] != '+')
			_exit(4);
		_exit(0);
	}
	struct sigaction sa = {.sa_handler = on_alarm}, old; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, &old);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CU_ASSERT_EQUAL(poll(&p, 1, 10000), 1);
	struct itimerval it = {.it_value = {.tv_usec = 100000}}; /* during the wait for the name */
	setitimer(ITIMER_REAL, &it, NULL);
	char name[64] = "";
	int c = hpsi_join_take(lfd, name, sizeof name);
	CU_ASSERT(c >= 0);
	CU_ASSERT_STRING_EQUAL(name, "h2");
	if (c >= 0)
		hpsi_join_answer(c, 1, "started");
	sigaction(SIGALRM, &old, NULL);
	int st = -1;
	waitpid(pid, &st, 0);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(lfd);
}

/* A stand-in for a job's launcher (its own process, listening on the
 * job's socket as hps launch --hosts does) that takes one request and
 * then: 'n' never answers, 'c' closes unanswered, 's' answers "started"
 * and stays, 'e' answers "started" and ends. */
static pid_t fake_launcher(const char *job, char mode)
{
	int ready[2];
	if (pipe(ready) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(ready[0]);
		int lfd = hpsi_join_listen(job);
		char ok = lfd >= 0 ? 'y' : 'n';
		if (write(ready[1], &ok, 1) != 1 || lfd < 0)
			_exit(3);
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		char name[64];
		if (poll(&p, 1, 10000) != 1)
			_exit(4);
		int c = hpsi_join_take(lfd, name, sizeof name);
		if (c < 0)
			_exit(5);
		if (mode == 'c')
			close(c);
		else if (mode == 's' || mode == 'e')
			hpsi_join_answer(c, 1, "started");
		if (mode == 'e')
			_exit(0);
		pause(); /* until the test kills it */
		_exit(0);
	}
	close(ready[1]);
	char ok = 0;
	if (pid < 0 || read(ready[0], &ok, 1) != 1 || ok != 'y') {
		if (pid > 0)
			kill(pid, SIGKILL), waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(ready[0]);
	return pid;
}

/* hps scale --join-host waits for the launcher's answer and then for
 * the host to join, each at most HPS_TIMEOUT_MS, and says in one line
 * which did not come: no answer, a launcher that closed unanswered, a
 * host that did not join in time, a launcher that ended before it did. */
static void test_join_host_command_waits(void)
{
	static const struct {
		char mode;
		const char *says; /* after "hps scale: " (%s: the job) */
	} cases[] = {
		{'n', "the launcher of job %s did not answer (Resource temporarily unavailable)\n"},
		{'c', "the launcher of job %s did not answer (it closed)\n"},
		{'s', "host h2 of job %s did not join within HPS_TIMEOUT_MS (see the launcher's output)\n"},
		{'e', "job %s ended before host h2 joined\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char job[64], cmd[8192], want[300], fmt[200];
		snprintf(job, sizeof job, "waits%c%d", cases[i].mode, (int)getpid());
		pid_t pid = fake_launcher(job, cases[i].mode);
		CU_ASSERT_FATAL(pid > 0);
		snprintf(cmd, sizeof cmd, "HPS_TIMEOUT_MS=1000 %s scale --job %s --join-host h2", hps_bin(), job);
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
		snprintf(fmt, sizeof fmt, "hps scale: %s", cases[i].says);
		snprintf(want, sizeof want, fmt, job);
		CU_ASSERT_STRING_EQUAL(out2, want);
		if (strcmp(out2, want))
			fprintf(stderr, "mode %c: %s", cases[i].mode, out2);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* A segment of a job across hosts (as a bridge makes it) on a host that
 * holds no free rank (those are the last host's): hps scale refuses. */
static void test_join_scale_across_hosts(void)
{
	struct hpsi_seg seg;
	struct hpsi_seg_params p = {.job = "jh", .host = "testhost", .nservers = 2, .nworkers = 2, .heap_slice = 8u << 20,
				    .timeout_ms = 20000, .bridged = 1, .srv_lo = 0, .srv_hi = 1, .wrk_lo = 0, .wrk_hi = 1};
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &seg), 0);
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "%s scale --job jh --host testhost --workers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: job jh spans hosts (--hosts): its free worker ranks are on its last host, not on testhost; run hps scale there\n");
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
}

/* The last host's segment of a job across hosts with room for a third
 * worker (rank 2, free), made as its bridge makes it: the process that
 * makes it stands for the bridge (its pid is the header's creator). */
static int room_segment_timeout(const char *job, struct hpsi_seg *seg, int64_t timeout_ms)
{
	struct hpsi_seg_params p = {.job = job, .host = "testhost", .nservers = 2, .nworkers = 2, .max_workers = 3,
				    .heap_slice = 8u << 20, .timeout_ms = timeout_ms, .bridged = 1, .srv_lo = 1, .srv_hi = 2,
				    .wrk_lo = 1, .wrk_hi = 3};
	return hpsi_seg_create(&p, seg);
}

static int room_segment(const char *job, struct hpsi_seg *seg)
{
	return room_segment_timeout(job, seg, 500);
}

/* Worker slot 2 of the segment is claimed and its joiner waits for the
 * other hosts' floor (HPSI_JOIN_WAIT, stored after the claim). */
static int waits_for_floor(void *p)
{
	struct hpsi_node *n = hpsi_seg_node(p, hpsi_worker_node(p, 2));
	return hpsi_node_state(p, hpsi_worker_node(p, 2)) == HPSI_NODE_EMPTY &&
	       atomic_load_explicit(&n->join_clock, memory_order_acquire) == HPSI_JOIN_WAIT;
}

/* A joiner killed while it waits for the other hosts' floor (before
 * ALIVE): the next probe of its slot finds its pid, stored at the claim,
 * dead and marks the slot DEAD at once, with the membership epoch moved.
 * Before, the pid came only with ALIVE: the slot stayed EMPTY (a join
 * still coming, held for by the servers) until HPS_TIMEOUT_MS, here 60 s. */
static void test_join_killed_waiting_for_floor(void)
{
	struct hpsi_seg seg;
	CU_ASSERT_EQUAL_FATAL(room_segment_timeout("jz", &seg, 60000), 0); /* we stand for the bridge */
	char cmd[8192], log[128];
	snprintf(log, sizeof log, "/tmp/hps-join-%d.kill", (int)getpid());
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_JOB_ID=jz HPS_HOST=testhost HPS_JOIN=1 exec %s --idle-worker /tmp 3",
		 self_path);
	pid_t kid = spawn_logged(log, "/bin/sh", cmd);
	CU_ASSERT_FATAL(kid > 0);
	CU_ASSERT(poll_until(waits_for_floor, &seg, 30000));
	uint32_t node = hpsi_worker_node(&seg, 2);
	CU_ASSERT_EQUAL(hpsi_worker_state(&seg, node, 1), HPSI_NODE_EMPTY); /* alive: still a join coming */
	uint32_t epoch = atomic_load_explicit(&seg.hdr->members_seq, memory_order_acquire);
	kill(kid, SIGKILL);
	int st = 0;
	CU_ASSERT(waitpid(kid, &st, 0) == kid && WIFSIGNALED(st));
	CU_ASSERT_EQUAL(hpsi_worker_state(&seg, node, 1), HPSI_NODE_DEAD);
	CU_ASSERT_NOT_EQUAL(atomic_load_explicit(&seg.hdr->members_seq, memory_order_acquire), epoch);
	unlink(log);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
}

/* A joiner across hosts waits for the other hosts' floor of its start
 * clock from its bridge: with no answer it fails after HPS_TIMEOUT_MS
 * (here 500 ms), and at once when the bridge that made the segment is
 * gone; either way with one line and a non-zero status, and its claimed
 * slot DEAD, not EMPTY (an EMPTY slot is a join still coming: servers
 * would hold min-clock pulls for it and the launcher keep its bridge). */
static void test_join_across_hosts_no_answer(void)
{
	struct hpsi_seg seg;
	CU_ASSERT_EQUAL_FATAL(room_segment("jw", &seg), 0); /* we stand for the bridge: alive, silent */
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_JOB_ID=jw HPS_HOST=testhost HPS_JOIN=1 exec %s --idle-worker /tmp 3",
		 self_path);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "HPS_JOIN: the other hosts of job 'jw' did not make room for worker 2 within HPS_TIMEOUT_MS=500"));
	CU_ASSERT_EQUAL(hpsi_node_state(&seg, hpsi_worker_node(&seg, 2)), HPSI_NODE_DEAD);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
	/* made by a process that ended since */
	pid_t kid = fork();
	if (kid == 0)
		_exit(room_segment("jg", &seg) ? 1 : 0);
	int st = -1;
	CU_ASSERT_FATAL(kid > 0 && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_attach("jg", "testhost", &seg), 0);
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_JOB_ID=jg HPS_HOST=testhost HPS_JOIN=1 exec %s --idle-worker /tmp 3",
		 self_path);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "HPS_JOIN: the bridge of host testhost is gone: job 'jg' cannot be joined"));
	CU_ASSERT_EQUAL(hpsi_node_state(&seg, hpsi_worker_node(&seg, 2)), HPSI_NODE_DEAD);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
}

/* Without --max-workers nothing changes: hps_num_workers is -w, no rank
 * is free (HPS_JOIN fails, hps scale has no room). */
static void test_join_no_room(void)
{
	char cmd[8192];
	struct launched l;
	launched_paths(&l, "join");
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 1 -w 2 --job jo --host testhost --heap-mb 16 --timeout-ms 20000 -- %s --idle-worker %s 2",
		 hps_bin(), self_path, l.flag);
	l.pid = spawn_logged(l.log, "/bin/sh", cmd);
	struct watch a = {.job = "jo", .clock = 0};
	CU_ASSERT_FATAL(poll_until(members_at, &a, 30000));
	CU_ASSERT_EQUAL(a.seg.hdr->nworkers, 2);
	snprintf(cmd, sizeof cmd, "%s scale --job jo --host testhost --workers 3", hps_bin());
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 1);
	CU_ASSERT_STRING_EQUAL(out2, "hps scale: job jo has room for at most 2 workers (hps launch --max-workers)\n");
	/* a joiner (it waits for a file that is there: /tmp) */
	snprintf(cmd, sizeof cmd, "HPS_ROLE=worker HPS_JOB_ID=jo HPS_HOST=testhost HPS_JOIN=1 exec %s --idle-worker /tmp 2",
		 self_path);
	CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out2, "job 'jo' has no free worker rank: its 2 were all given out"));
	CU_ASSERT_EQUAL(launched_finish(&l, 30000, out, sizeof out), 0);
	if (a.attached)
		hpsi_seg_detach(&a.seg);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--join-worker") == 0)
		return join_worker(atoi(argv[2]));
	if (argc == 4 && strcmp(argv[1], "--idle-worker") == 0)
		return idle_worker(argv[2], atoi(argv[3]));
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	static const struct test_case cases[] = {
		{"test_join_bsp_by_hand", test_join_bsp_by_hand},
		{"test_join_ssp_by_hand", test_join_ssp_by_hand},
		{"test_join_bsp_by_scale", test_join_bsp_by_scale},
		{"test_join_ssp_by_scale", test_join_ssp_by_scale},
		{"test_join_replicated_then_kill", test_join_replicated_then_kill},
		{"test_join_then_restart", test_join_then_restart},
		{"test_join_scale_refusals", test_join_scale_refusals},
		{"test_join_scale_loses_rank", test_join_scale_loses_rank},
		{"test_join_scale_worker_fails", test_join_scale_worker_fails},
		{"test_join_refusals", test_join_refusals},
		{"test_join_host_other_user", test_join_host_other_user},
		{"test_join_host_request_signalled", test_join_host_request_signalled},
		{"test_join_host_command_waits", test_join_host_command_waits},
		{"test_join_scale_across_hosts", test_join_scale_across_hosts},
		{"test_join_across_hosts_no_answer", test_join_across_hosts_no_answer},
		{"test_join_killed_waiting_for_floor", test_join_killed_waiting_for_floor},
		{"test_join_no_room", test_join_no_room},
		{NULL, NULL},
	};
	return run_suite("join", cases);
}
