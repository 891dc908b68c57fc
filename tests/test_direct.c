/* HOGWILD direct mode: workers map a server's dense key range and update
 * it in place; requests through the server and checkpoints see the same
 * array; wrong settings and wrong requests are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/harness.h"

#define NK 1000 /* keys 0..999 on server 0 */
#define WD 4

static const struct hpsi_key_span one_range[] = {{.first = 0, .last = NK - 1}};
static const struct hpsi_key_span two_ranges[] = {{.first = 0, .last = NK - 1}, {.first = NK, .last = 2 * NK - 1}};

static void direct_env(const char *direct, const char *updater, const char *init)
{
	setenv("HPS_DIRECT", direct, 1);
	setenv("HPS_UPDATER", updater, 1);
	setenv("HPS_INIT", init, 1);
}

static void clear_env(void)
{
	unsetenv("HPS_DIRECT");
	unsetenv("HPS_UPDATER");
	unsetenv("HPS_INIT");
}

/* Worker r owns keys k with k % 2 == r and adds 1 to each of its floats
 * `rounds` times in place: disjoint writers lose nothing. */
#define ROUNDS 2000
static int hogwild_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	hps_direct d;
	if (hps_direct_map(ctx, 5, &d))
		return 1;
	if (d.first != 0 || d.count != NK || d.width != WD)
		return 2;
	for (uint64_t i = 0; i < NK * WD; i++)
		if (d.vals[i] != 1.0f) /* HPS_INIT constant 1 */
			return 3;
	if (hps_barrier(ctx)) /* nobody writes before both checked */
		return 4;
	int me = hps_rank(ctx);
	for (int t = 0; t < ROUNDS; t++)
		for (uint64_t k = (uint64_t)me; k < NK; k += 2)
			for (uint32_t j = 0; j < WD; j++)
				d.vals[k * WD + j] += 1.0f;
	return hps_barrier(ctx) ? 5 : 0;
}

/* After the direct writers: a pull through the server reads the array, a
 * push through it changes what the mapping shows. */
static int request_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	uint64_t keys[NK];
	static float got[NK * WD], one[NK * WD];
	for (int i = 0; i < NK; i++)
		keys[i] = (uint64_t)i;
	if (hps_wait(w, hps_pull(w, keys, NK, got, NULL)))
		return 1;
	for (int i = 0; i < NK * WD; i++)
		if (got[i] != 1.0f + ROUNDS)
			return 2;
	for (int i = 0; i < NK * WD; i++)
		one[i] = 0.5f;
	if (hps_wait(w, hps_push(w, keys, NK, one, NULL)))
		return 3;
	hps_direct d;
	if (hps_direct_map(ctx, 0, &d))
		return 4;
	for (int i = 0; i < NK * WD; i++)
		if (d.vals[i] != 1.5f + ROUNDS)
			return 5;
	return 0;
}

/* Both phases in one job: two direct writers, then a request worker. */
static void test_direct_requests_see_direct_writes(void)
{
	direct_env("4", "sum", "constant:value=1");
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 3, &(struct job_opts){.ranges = one_range}), 0);
	pid_t a = job_fork_worker(&j, 0, WD, hogwild_worker, NULL);
	pid_t b = job_fork_worker(&j, 1, WD, hogwild_worker, NULL);
	/* the barrier counts all three workers: the third joins it twice */
	pid_t c = fork();
	if (c == 0) {
		job_env(&j, "worker", 2);
		hps_ctx *ctx;
		hps_worker *w;
		int rc = hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, WD, &w) || hps_barrier(ctx) ||
			 hps_barrier(ctx);
		rc = rc ? 10 : request_worker(ctx, w, NULL);
		hps_worker_close(w);
		hps_finalize(ctx);
		_exit(rc);
	}
	CU_ASSERT_EQUAL(wait_exit(a, 30000), 0);
	CU_ASSERT_EQUAL(wait_exit(b, 30000), 0);
	CU_ASSERT_EQUAL(wait_exit(c, 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	clear_env();
}

static int errors_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	hps_direct d;
	if (hps_direct_map(ctx, 5 * NK, &d) != HPS_ENOKEY) /* nobody owns it */
		return 1;
	if (hps_direct_map(ctx, NK + 3, &d) != HPS_EINVAL) /* server 1 is not direct */
		return 2;
	if (hps_direct_map(ctx, 3, NULL) != HPS_EINVAL)
		return 3;
	uint64_t k = 7;
	float v[WD + 1] = {0};
	/* a direct range has one width: another is refused, nothing applied */
	if (hps_wait(w, hps_push(w, &k, 1, v, &(hps_opts){.width = WD + 1})) != HPS_EVALLEN)
		return 4;
	if (hps_direct_map(ctx, 3, &d) || d.vals[7 * WD] != 0.0f)
		return 5;
	/* the ordinary range beside it still works */
	k = NK + 3;
	v[0] = 2.5f;
	float got[WD + 1];
	if (hps_wait(w, hps_pushpull(w, &k, 1, v, got, NULL)) || got[0] != 2.5f)
		return 6;
	return 0;
}

static void test_direct_refuses_wrong_requests(void)
{
	direct_env("4;0", "sum", "zeros");
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, &(struct job_opts){.ranges = two_ranges}), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, WD, errors_worker, NULL), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	clear_env();
}

static int map_without_server(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	hps_direct d;
	return hps_direct_map(ctx, 0, &d) == HPS_EPEERDEAD ? 0 : 1;
}

static void test_direct_refuses_wrong_settings(void)
{
	struct job j;
	direct_env("4", "sum", "zeros"); /* hashed keys cannot be dense */
	CU_ASSERT_EQUAL(job_start(&j, 1, 1, NULL), HPS_ECONFIG);
	direct_env("four", "sum", "zeros");
	CU_ASSERT_EQUAL(job_start(&j, 1, 1, &(struct job_opts){.ranges = one_range}), HPS_ECONFIG);
	direct_env("-1", "sum", "zeros");
	CU_ASSERT_EQUAL(job_start(&j, 1, 1, &(struct job_opts){.ranges = one_range}), HPS_ECONFIG);
	direct_env("4;4;4", "sum", "zeros"); /* the list is longer: fine; shorter is not */
	CU_ASSERT_EQUAL(job_start(&j, 2, 1, &(struct job_opts){.ranges = two_ranges, .no_servers = 1}), 0);
	job_stop(&j);
	direct_env("4;", "sum", "zeros");
	CU_ASSERT_EQUAL(job_start(&j, 2, 1, &(struct job_opts){.ranges = two_ranges}), HPS_ECONFIG);
	setenv("HPS_DTYPE", "f64", 1); /* direct arrays are f32 */
	direct_env("4", "sum", "zeros");
	CU_ASSERT_EQUAL(job_start(&j, 1, 1, &(struct job_opts){.ranges = one_range}), HPS_ECONFIG);
	unsetenv("HPS_DTYPE");
	/* an updater with state beside the values cannot run on a direct range:
	 * the server refuses to start and says why */
	direct_env("4", "adagrad:lr=0.1", "zeros");
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.ranges = one_range}), 0);
	CU_ASSERT_NOT_EQUAL(wait_exit(j.servers[0], 10000), 0);
	j.servers[0] = 0;
	/* and a worker waiting to map its range hears that, not a hang */
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, WD, map_without_server, NULL), 10000), 0);
	job_stop(&j);
	clear_env();
}

static char dir[256];

static int save_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	hps_direct d;
	if (hps_direct_map(ctx, 0, &d))
		return 1;
	for (uint64_t i = 0; i < NK * WD; i++)
		d.vals[i] = (float)i * 0.25f;
	if (hps_save(ctx, dir))
		return 2;
	for (uint64_t i = 0; i < NK * WD; i++)
		d.vals[i] = -1.0f;
	if (hps_load(ctx, "/nonexistent-hps-checkpoint") >= 0) /* refused, array unchanged */
		return 3;
	if (d.vals[17] != -1.0f)
		return 4;
	if (hps_load(ctx, dir) < 0)
		return 5;
	for (uint64_t i = 0; i < NK * WD; i++)
		if (d.vals[i] != (float)i * 0.25f)
			return 6;
	return 0;
}

static void test_direct_checkpoint_round_trip(void)
{
	snprintf(dir, sizeof dir, "/tmp/hps-direct-ckpt-%d", (int)getpid());
	direct_env("4", "sgd:lr=0.1", "zeros");
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.ranges = one_range}), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, WD, save_worker, NULL), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	clear_env();
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_direct_requests_see_direct_writes", test_direct_requests_see_direct_writes},
		{"test_direct_refuses_wrong_requests", test_direct_refuses_wrong_requests},
		{"test_direct_refuses_wrong_settings", test_direct_refuses_wrong_settings},
		{"test_direct_checkpoint_round_trip", test_direct_checkpoint_round_trip},
		{NULL, NULL},
	};
	return run_suite("direct", cases);
}
