/* The barrier when workers die, close or come late (one host; the same
 * rule across hosts is in test_cluster_barrier.c).
 *
 * The rule (include/hps/hps.h): a barrier waits for every worker that has
 * not closed; it completes for all or fails for all; once a worker died
 * (or a barrier timed out) every barrier still open and every later one
 * fails with the same code. Checked as a property over seeded random
 * schedules: each worker calls m barriers with random pauses, then
 * survives, closes or is killed; with D the fewest barriers any killed
 * worker passed, barrier j must return 0 for every worker that calls it
 * when j < D, and HPS_EPEERDEAD for every one when j >= D. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/barrier.h"
#include "shm/bell.h"
#include "tests/harness.h"

#define NW 4
#define NB 3 /* barriers each survivor calls */

enum fate { SURVIVE, CLOSE, DIE };

struct plan {
	unsigned seed;
	enum fate fate[NW];
	uint32_t calls[NW];    /* barriers called before the fate (NB for survivors) */
	uint32_t pause_us[NW][NB + 1]; /* before each call, and before the fate */
};

static uint32_t first_death(const struct plan *p)
{
	uint32_t d = NB;
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
		int rc = hps_barrier(ctx), want = j < d ? 0 : HPS_EPEERDEAD;
		if (rc != want) {
			fprintf(stderr, "seed %u: worker %d barrier %u gave %s, the rule says %s\n", p->seed, me, j,
				hps_strerror(rc), hps_strerror(want));
			bad = 3;
		}
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
	p->seed = seed;
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

int main(void)
{
	static const struct test_case cases[] = {
		{"test_barrier_misuse", test_barrier_misuse},
		{"test_barrier_death_fails_all", test_barrier_death_fails_all},
		{"test_barrier_close_leaves", test_barrier_close_leaves},
		{"test_barrier_random_schedules", test_barrier_random_schedules},
		{"test_barrier_timeout", test_barrier_timeout},
		{NULL, NULL},
	};
	return run_suite("barrier", cases);
}
