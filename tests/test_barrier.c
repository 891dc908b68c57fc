/* The barrier when workers die, close or come late, on one host and
 * across two (host groups on 127.0.0.1, each with its bridge, and a
 * scheduler; the test binary is also their worker program).
 *
 * The rule (include/hps/hps.h): a barrier waits for every worker that has
 * not closed; it completes for all or fails for all; once a worker died
 * (or a barrier timed out) every barrier still open and every later one
 * fails with the same code. Checked as a property over seeded random
 * schedules: each worker calls m barriers with random pauses, then
 * survives, closes or is killed; with D the fewest barriers any killed
 * worker passed, barrier j must return 0 for every worker that calls it
 * when j < D, and HPS_EPEERDEAD for every one when j >= D. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/wire.h"
#include "shm/barrier.h"
#include "shm/bell.h"
#include "tests/harness.h"

#define NW 4
#define NB 3 /* barriers each survivor calls */

enum fate { SURVIVE, CLOSE, DIE };

struct plan {
	unsigned seed;
	int code;              /* what barriers fail with from the first death on */
	uint32_t late_from;    /* the first barrier that fails for another reason */
	enum fate fate[NW];
	uint32_t calls[NW];    /* barriers called before the fate (NB for survivors) */
	uint32_t pause_us[NW][NB + 1]; /* before each call, and before the fate */
};

static uint32_t first_death(const struct plan *p)
{
	uint32_t d = p->late_from;
	for (int w = 0; w < NW; w++)
		if (p->fate[w] == DIE && p->calls[w] < d)
			d = p->calls[w];
	return d;
}

/* Runs worker `rank` of the plan; exits 0 when every call returned what
 * the rule says (and a closed worker's call HPS_ECLOSED). */
static int plan_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *p = arg;
	int me = hps_rank(ctx), bad = 0;
	uint32_t d = first_death(p);
	for (uint32_t j = 0; j < p->calls[me]; j++) {
		usleep(p->pause_us[me][j]);
		int rc = hps_barrier(ctx), want = j < d ? 0 : p->code;
		if (rc != want) {
			fprintf(stderr, "seed %u: worker %d barrier %u gave %s, the rule says %s\n", p->seed, me, j,
				hps_strerror(rc), hps_strerror(want));
			bad = 3;
		}
	}
	if (!bad && getenv("HPS_ROOT_URI")) { /* across hosts: the test reads the logs */
		printf("worker %d: barriers ok\n", me);
		fflush(stdout);
	}
	usleep(p->pause_us[me][NB]);
	if (p->fate[me] == DIE)
		raise(SIGKILL);
	if (p->fate[me] == CLOSE) {
		int rc = hps_worker_close(w);
		if (rc == 0 && hps_barrier(ctx) != HPS_ECLOSED)
			rc = 4; /* a closed worker is no longer a member */
		hps_finalize(ctx);
		_exit(bad ? bad : rc ? 4 : 0);
	}
	return bad;
}

static void run_plan(const struct plan *p)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, NW, NULL), 0);
	pid_t pid[NW];
	for (uint32_t w = 0; w < NW; w++)
		pid[w] = job_fork_worker(&j, w, 1, plan_worker, (void *)p);
	for (uint32_t w = 0; w < NW; w++) {
		int st = wait_exit(pid[w], 20000);
		if (st != (p->fate[w] == DIE ? 128 + SIGKILL : 0))
			fprintf(stderr, "seed %u: worker %u (fate %d after %u barriers) ended with %d\n", p->seed, w,
				p->fate[w], p->calls[w], st);
		CU_ASSERT_EQUAL(st, p->fate[w] == DIE ? 128 + SIGKILL : 0);
	}
	/* the word agrees: D barriers completed, and a failure after them */
	uint32_t d = first_death(p);
	int failed;
	uint32_t done = hpsi_barrier_open(&j.seg, &failed);
	int called_after = 0; /* someone called barrier D, so it was decided */
	for (int w = 0; w < NW; w++)
		called_after |= p->calls[w] > d;
	CU_ASSERT_EQUAL(done, d);
	CU_ASSERT_EQUAL(failed, d < NB && called_after);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Fates and pauses from seed; at least two survivors, so that every
 * barrier has two workers to agree. */
static void random_plan(struct plan *p, unsigned seed)
{
	memset(p, 0, sizeof *p);
	p->seed = seed, p->code = HPS_EPEERDEAD, p->late_from = NB;
	srand(seed);
	int survivors = 0;
	for (int w = 0; w < NW; w++) {
		int r = rand() % 4;
		p->fate[w] = r < 2 ? SURVIVE : r == 2 ? CLOSE : DIE;
		if (NW - w <= 2 - survivors)
			p->fate[w] = SURVIVE;
		survivors += p->fate[w] == SURVIVE;
		p->calls[w] = p->fate[w] == SURVIVE ? NB : (uint32_t)(rand() % (NB + 1));
		for (int k = 0; k <= NB; k++)
			p->pause_us[w][k] = (uint32_t)(rand() % 4 == 0 ? rand() % 150000 : rand() % 2000);
	}
}

static void test_barrier_random_schedules(void)
{
	for (unsigned seed = 1; seed <= 12; seed++) {
		struct plan p;
		random_plan(&p, seed);
		run_plan(&p);
	}
}

/* The reviewers' case: 3 workers, worker 1 dies (or closes) before the
 * first barrier; workers 0 and 2 call it three times. */
static void issue_plan(struct plan *p, enum fate f)
{
	memset(p, 0, sizeof *p);
	p->code = HPS_EPEERDEAD, p->late_from = NB;
	for (int w = 0; w < NW; w++)
		p->fate[w] = SURVIVE, p->calls[w] = NB;
	p->fate[1] = f, p->calls[1] = 0;
	p->fate[3] = CLOSE, p->calls[3] = 0; /* the fourth worker stays out */
	p->pause_us[1][NB] = 100000;         /* the others wait in the barrier meanwhile */
}

static void test_barrier_death_fails_all(void)
{
	struct plan p;
	issue_plan(&p, DIE);
	run_plan(&p);
}

static void test_barrier_close_leaves(void)
{
	struct plan p;
	issue_plan(&p, CLOSE);
	run_plan(&p);
}

/* HPS_TIMEOUT_MS: the workers that came fail with HPS_ETIMEDOUT once the
 * first one's deadline passed; the late one, arriving after, fails the
 * same way at once; every later barrier fails too (the sticky part). */
static int timeout_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	if (hps_rank(ctx) == 2)
		usleep(1200000);
	int rc = hps_barrier(ctx);
	if (rc != HPS_ETIMEDOUT) {
		fprintf(stderr, "worker %d: barrier gave %s\n", hps_rank(ctx), hps_strerror(rc));
		return 3;
	}
	return hps_barrier(ctx) == HPS_ETIMEDOUT ? 0 : 4;
}

static void test_barrier_timeout(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 3, &(struct job_opts){.timeout_ms = 300}), 0);
	pid_t pid[3];
	for (uint32_t w = 0; w < 3; w++)
		pid[w] = job_fork_worker(&j, w, 1, timeout_worker, NULL);
	for (uint32_t w = 0; w < 3; w++)
		CU_ASSERT_EQUAL(wait_exit(pid[w], 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* ---- across hosts ------------------------------------------------------- */

/* A plan by name: a seed, the reviewers' "die" and "close", or "late":
 * worker 3 comes 2.5 s after the others, with HPS_TIMEOUT_MS below that. */
static void make_plan(struct plan *p, const char *name)
{
	if (strcmp(name, "die") == 0 || strcmp(name, "close") == 0) {
		issue_plan(p, name[0] == 'd' ? DIE : CLOSE);
	} else if (strcmp(name, "late") == 0) {
		issue_plan(p, SURVIVE);
		p->calls[1] = NB, p->fate[3] = SURVIVE, p->calls[3] = NB;
		p->code = HPS_ETIMEDOUT, p->late_from = 0;
		p->pause_us[3][0] = 2500000;
	} else {
		random_plan(p, (unsigned)atoi(name));
	}
}

/* The worker program of a multi-host job (`--barrier-worker PLAN`). */
static int plan_process(const char *name)
{
	static struct plan p;
	make_plan(&p, name);
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	rc = plan_worker(ctx, w, &p);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

static char self_path[4096];

/* Starts `hps ARGS` with the settings `env` added; output to log. */
static pid_t spawn_hps(const char *log, char *const *env, char *const *args)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(126);
	for (int i = 0; env[i]; i++)
		putenv(env[i]);
	execv(hps_bin(), args);
	_exit(127);
}

static int count_in(const char *log, const char *text, char *buf, size_t cap)
{
	FILE *f = fopen(log, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	int c = 0;
	for (const char *x = buf; (x = strstr(x, text)); x++)
		c++;
	return c;
}

/* One job of plan `name` over hosts alpha (workers 0, 1) and beta (2, 3),
 * one server each: every worker's codes follow the rule (each checks its
 * own and prints "barriers ok"), so the hosts agree. */
static void run_on_two_hosts(const char *name, const char *timeout_ms)
{
	static int runs;
	char job[64], tmo[64], logs[3][128], hostv[2][32];
	snprintf(job, sizeof job, "HPS_JOB_ID=xb%d_%d", (int)getpid(), runs++);
	snprintf(tmo, sizeof tmo, "HPS_TIMEOUT_MS=%s", timeout_ms);
	char *env[] = {job, tmo, "HPS_ROOT_URI=127.0.0.1", "HPS_ROOT_PORT=9611", "HPS_NODE_ADDR=127.0.0.1",
		       "HPS_PORTS=9612-9630", "HPS_NUM_SERVERS=2", "HPS_NUM_WORKERS=4", "HPS_HEAP_MB=16",
		       "HPS_RING_KB=64", "HPS_HEARTBEAT_MS=100", "HPS_DEAD_MS=1000", NULL, NULL};
	pid_t pid[3];
	for (int i = 0; i < 3; i++)
		snprintf(logs[i], sizeof logs[i], "/tmp/hps-barrier-%d.%d.log", (int)getpid(), i);
	pid[0] = spawn_hps(logs[0], env, (char *[]){"hps", "scheduler", NULL});
	for (int h = 0; h < 2; h++) {
		snprintf(hostv[h], sizeof hostv[h], "HPS_HOST=%s", h ? "beta" : "alpha");
		env[12] = hostv[h];
		pid[h + 1] = spawn_hps(logs[h + 1], env,
				       (char *[]){"hps", "launch", "--keep-going", "--local-servers", "1", "--local-workers",
						  "2", "--", self_path, "--barrier-worker", (char *)name, NULL});
	}
	int ok = 0, broken = 0, stuck = 0;
	static char buf[1 << 17];
	for (int i = 2; i >= 0; i--) {
		int st = wait_exit(pid[i], 40000);
		if (st == -1)
			kill(-pid[i], SIGKILL), stuck = 1;
		ok += count_in(logs[i], "barriers ok", buf, sizeof buf);
		broken += count_in(logs[i], "the rule says", buf, sizeof buf);
	}
	if (ok != NW || broken || stuck)
		for (int i = 0; i < 3; i++)
			fprintf(stderr, "plan %s, %s:\n%s\n", name, logs[i], (count_in(logs[i], "", buf, sizeof buf), buf));
	CU_ASSERT_EQUAL(ok, NW);
	CU_ASSERT_EQUAL(broken, 0);
	CU_ASSERT_EQUAL(stuck, 0);
	for (int i = 0; i < 3; i++)
		unlink(logs[i]);
}

static void test_barrier_across_hosts(void)
{
	run_on_two_hosts("die", "20000");
	run_on_two_hosts("close", "20000");
	run_on_two_hosts("late", "800");
	const char *seeds[] = {"1", "5", "9", "12"};
	for (int i = 0; i < 4; i++)
		run_on_two_hosts(seeds[i], "20000");
}

static void test_barrier_misuse(void)
{
	CU_ASSERT_EQUAL(hps_barrier(NULL), HPS_EINVAL);
	/* the word: each failure code survives the round trip */
	const int codes[] = {HPS_EPEERDEAD, HPS_ETIMEDOUT, HPS_ECLOSED};
	for (int i = 0; i < 3; i++) {
		uint32_t word = hpsi_barrier_word(7, codes[i]);
		CU_ASSERT_EQUAL(hpsi_barrier_outcome(word, 7), codes[i]);
		CU_ASSERT_EQUAL(hpsi_barrier_outcome(word, 9), codes[i]); /* sticky */
		CU_ASSERT_EQUAL(hpsi_barrier_outcome(word, 6), 0);        /* 6 had completed */
	}
	CU_ASSERT_EQUAL(hpsi_barrier_outcome(hpsi_barrier_word(7, 0), 7), 1);
	/* the count wraps at 2^30 without confusing barriers */
	CU_ASSERT_EQUAL(hpsi_barrier_outcome(hpsi_barrier_word(0, 0), HPSI_BARRIER_SEQ_MASK), 0);
}

/* The scheduler's word on a failed barrier, as a bridge checks it: a
 * code other than the three a barrier fails with, or a wrong size, is
 * refused with a reason. */
static void test_barrier_wire_checked(void)
{
	struct hpsi_sched_broken m = {.code = HPS_ETIMEDOUT};
	hpsi_sched_init(&m.h, HPSI_SCH_BROKEN, 0);
	const char *why = NULL;
	CU_ASSERT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m.h, &why), 0);
	const int32_t bad[] = {0, 1, HPS_EINVAL, INT32_MIN};
	for (int i = 0; i < 4; i++) {
		m.code = bad[i], why = NULL;
		CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
	struct hpsi_sched_hdr e;
	hpsi_sched_init(&e, HPSI_SCH_EXPIRED, 1);
	CU_ASSERT_EQUAL(hpsi_sched_check(&e, sizeof e, &why), 0);
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&e, sizeof m, &why), 0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--barrier-worker") == 0)
		return plan_process(argv[2]);
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	static const struct test_case cases[] = {
		{"test_barrier_misuse", test_barrier_misuse},
		{"test_barrier_wire_checked", test_barrier_wire_checked},
		{"test_barrier_death_fails_all", test_barrier_death_fails_all},
		{"test_barrier_close_leaves", test_barrier_close_leaves},
		{"test_barrier_random_schedules", test_barrier_random_schedules},
		{"test_barrier_timeout", test_barrier_timeout},
		{"test_barrier_across_hosts", test_barrier_across_hosts},
		{NULL, NULL},
	};
	return run_suite("barrier", cases);
}
