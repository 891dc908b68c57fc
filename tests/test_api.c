/* The worker API against real server processes: sums from several workers,
 * push-then-pull, widths, variable lengths, large and zero-copy values,
 * callbacks, many requests in flight, threads, key ranges, handlers. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			return 1;                                                   \
		}                                                                   \
	} while (0)
#define OK(expr)                                                                    \
	do {                                                                        \
		int rc_ = (expr);                                                   \
		if (rc_ < 0) {                                                      \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, hps_strerror(rc_)); \
			return 1;                                                   \
		}                                                                   \
	} while (0)

/* Runs fn in W forked workers against S servers; asserts all succeed. */
static void run_job(uint32_t S, uint32_t W, uint32_t width, worker_fn fn, void *arg, const struct job_opts *o)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, S, W, o), 0);
	pid_t pids[16];
	for (uint32_t r = 0; r < W; r++)
		pids[r] = job_fork_worker(&j, r, width, fn, arg);
	for (uint32_t r = 0; r < W; r++)
		CU_ASSERT_EQUAL(wait_exit(pids[r], 60000), 0); /* exit status of the worker */
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Keys spread over the key space and a contiguous run, 10 pushes of
 * (rank + 1) each; after a barrier, key i holds 10 * sum(rank + 1). */
static int sum_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	enum { N = 300 };
	uint64_t keys[N];
	float vals[N], got[N];
	for (int i = 0; i < N; i++) {
		keys[i] = i < 200 ? (uint64_t)i * 0x9E3779B97F4A7C15ull % 0xFFFFFFFFFFFFull : 1000000 + (uint64_t)i;
		vals[i] = (float)(hps_rank(ctx) + 1);
	}
	/* sort: the spread keys are not ordered */
	for (int i = 1; i < N; i++)
		for (int k = i; k > 0 && keys[k] < keys[k - 1]; k--) {
			uint64_t t = keys[k];
			keys[k] = keys[k - 1];
			keys[k - 1] = t;
		}
	for (int r = 0; r < 10; r++)
		OK(hps_wait(w, hps_push(w, keys, N, vals, NULL)));
	OK(hps_barrier(ctx));
	OK(hps_wait(w, hps_pull(w, keys, N, got, NULL)));
	int W = hps_num_workers(ctx);
	float want = 10.0f * (float)(W * (W + 1) / 2);
	for (int i = 0; i < N; i++)
		CHECK(got[i] == want);
	OK(hps_barrier(ctx)); /* nobody pushes again before all have pulled */
	return 0;
}

static void test_api_sum_from_many_workers(void)
{
	run_job(2, 3, 1, sum_worker, NULL, NULL);
	run_job(3, 2, 1, sum_worker, NULL, NULL);
}

static int pushpull_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t keys[] = {3, 9, 1u << 20, 1ull << 40};
	float g[8] = {1, 2, 3, 4, 5, 6, 7, 8}, p[8];
	for (int r = 1; r <= 5; r++) {
		OK(hps_wait(w, hps_pushpull(w, keys, 4, g, p, NULL)));
		for (int i = 0; i < 8; i++)
			CHECK(p[i] == g[i] * (float)r); /* width 2: sees its own push */
	}
	/* a request may carry its own width: 4 floats on other keys */
	uint64_t wide[2] = {100, 200};
	hps_opts four = {.width = 4};
	OK(hps_wait(w, hps_push(w, wide, 2, g, &four)));
	OK(hps_wait(w, hps_pull(w, wide, 2, p, &four)));
	for (int i = 0; i < 8; i++)
		CHECK(p[i] == g[i]);
	return 0;
}

static void test_api_pushpull_sees_own_push(void)
{
	run_job(2, 1, 2, pushpull_worker, NULL, NULL);
}

static int lens_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 50 };
	uint64_t keys[N];
	uint32_t lens[N], out_lens[N];
	float vals[N * 8], got[N * 8 + 4];
	size_t nv = 0;
	for (int i = 0; i < N; i++) {
		keys[i] = (uint64_t)i * 7 + 1;
		lens[i] = (uint32_t)(i % 5); /* 0..4 floats, zero-length keys too */
		for (uint32_t k = 0; k < lens[i]; k++)
			vals[nv++] = (float)(i * 10 + (int)k);
	}
	hps_opts push = {.lens = lens};
	OK(hps_wait(w, hps_push(w, keys, N, vals, &push)));
	OK(hps_wait(w, hps_push(w, keys, N, vals, &push)));
	hps_opts pull = {.out_lens = out_lens, .vals_cap = sizeof got / sizeof got[0]};
	OK(hps_wait(w, hps_pull(w, keys, N, got, &pull)));
	size_t at = 0;
	for (int i = 0; i < N; i++) {
		CHECK(out_lens[i] == lens[i]);
		for (uint32_t k = 0; k < lens[i]; k++, at++)
			CHECK(got[at] == 2 * vals[at]);
	}
	/* push-then-pull in lens mode answers with the same lengths */
	uint32_t pp_lens[N];
	OK(hps_wait(w, hps_pushpull(w, keys, N, vals, got, &(hps_opts){.lens = lens, .out_lens = pp_lens})));
	at = 0;
	for (int i = 0; i < N; i++) {
		CHECK(pp_lens[i] == lens[i]);
		for (uint32_t k = 0; k < lens[i]; k++, at++)
			CHECK(got[at] == 3 * vals[at]);
	}
	/* an unknown key reads as length 0 */
	uint64_t unknown = 999999;
	OK(hps_wait(w, hps_pull(w, &unknown, 1, got, &pull)));
	CHECK(out_lens[0] == 0);
	/* a push with another length for a known key is refused whole */
	uint32_t wrong[2] = {4, 9};
	uint64_t two[2] = {keys[4], keys[6]};
	CHECK(hps_wait(w, hps_push(w, two, 2, vals, &(hps_opts){.lens = wrong})) == HPS_EVALLEN);
	/* a too-small answer buffer is an error, not an overflow */
	hps_opts tiny = {.out_lens = out_lens, .vals_cap = 3};
	CHECK(hps_wait(w, hps_pull(w, keys, N, got, &tiny)) == HPS_EINVAL);
	return 0;
}

static void test_api_variable_lengths(void)
{
	run_job(2, 1, 1, lens_worker, NULL, NULL);
}

/* Values far larger than a ring slot go through the shared heap. */
static int large_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { DENSE = 1 << 18 };
	float *d = malloc(DENSE * sizeof *d), *back = malloc(DENSE * sizeof *back);
	CHECK(d && back);
	for (int i = 0; i < DENSE; i++)
		d[i] = (float)(i % 1000);
	uint64_t k0 = 77;
	OK(hps_wait(w, hps_push(w, &k0, 1, d, NULL)));
	OK(hps_wait(w, hps_pull(w, &k0, 1, back, NULL)));
	CHECK(memcmp(d, back, DENSE * sizeof *d) == 0);
	free(d), free(back);
	return 0;
}

static int sparse_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 100000 };
	uint64_t *keys = malloc(N * sizeof *keys);
	float *v = malloc(N * sizeof *v), *got = malloc(N * sizeof *got);
	CHECK(keys && v && got);
	for (int i = 0; i < N; i++)
		keys[i] = (uint64_t)i * 1000003, v[i] = (float)(i % 97);
	OK(hps_wait(w, hps_push(w, keys, N, v, NULL)));
	OK(hps_wait(w, hps_pushpull(w, keys, N, v, got, NULL)));
	for (int i = 0; i < N; i++)
		CHECK(got[i] == 2 * v[i]);
	free(keys), free(v), free(got);
	return 0;
}

static void test_api_large_values_via_heap(void)
{
	run_job(1, 1, 1 << 18, large_worker, NULL, &(struct job_opts){.heap_mb = 64});
	run_job(2, 1, 1, sparse_worker, NULL, NULL);
}

/* Buffers from hps_alloc are read and written by the server in place. */
static int zero_copy_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 1 << 16 };
	float *push = hps_alloc(w, N * sizeof(float)), *pull = hps_alloc(w, N * sizeof(float));
	CHECK(push && pull);
	for (int i = 0; i < N; i++)
		push[i] = (float)i;
	uint64_t key = 5;
	OK(hps_wait(w, hps_push(w, &key, 1, push, NULL)));
	OK(hps_wait(w, hps_pushpull(w, &key, 1, push, pull, NULL)));
	for (int i = 0; i < N; i++)
		CHECK(pull[i] == 2.0f * (float)i);
	hps_free(w, push);
	hps_free(w, pull);
	CHECK(hps_alloc(w, (size_t)1 << 40) == NULL);
	return 0;
}

static void test_api_zero_copy_buffers(void)
{
	run_job(1, 1, 1 << 16, zero_copy_worker, NULL, NULL);
	run_job(2, 1, 1 << 16, zero_copy_worker, NULL, NULL);
}

static _Atomic int callbacks_run, callback_errors;

static void count_cb(hps_worker *w, int64_t ts, int status, void *arg)
{
	(void)w, (void)ts;
	if (status || arg != &callbacks_run)
		atomic_fetch_add(&callback_errors, 1);
	atomic_fetch_add(&callbacks_run, 1);
}

static int callbacks_done(void *arg)
{
	return atomic_load(&callbacks_run) == *(int *)arg;
}

/* Callbacks run without anyone waiting (the progress thread), and with
 * more requests in flight than the worker has slots. */
static int callback_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	int n = 2000;
	uint64_t keys[4] = {1, 2, 3, 4};
	float v[4] = {1, 1, 1, 1}, got[4];
	hps_opts o = {.cb = count_cb, .cb_arg = &callbacks_run};
	for (int i = 0; i < n; i++)
		OK(hps_push(w, keys, 4, v, &o));
	CHECK(poll_until(callbacks_done, &n, 20000));
	CHECK(atomic_load(&callback_errors) == 0);
	OK(hps_wait(w, hps_pull(w, keys, 4, got, NULL)));
	for (int i = 0; i < 4; i++)
		CHECK(got[i] == (float)n);
	return 0;
}

static void test_api_callbacks_and_many_in_flight(void)
{
	run_job(2, 1, 1, callback_worker, NULL, NULL);
}

static int pipelined_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 1500 };
	static int64_t ts[N];
	uint64_t key = 11;
	float one = 1, got;
	for (int i = 0; i < N; i++)
		OK(ts[i] = hps_push(w, &key, 1, &one, NULL));
	for (int i = N - 1; i >= 0; i--) /* any order; old ones read as done */
		OK(hps_wait(w, ts[i]));
	OK(hps_wait(w, hps_pull(w, &key, 1, &got, NULL)));
	CHECK(got == (float)N);
	return 0;
}

static void test_api_pipelined_requests(void)
{
	run_job(1, 1, 1, pipelined_worker, NULL, NULL);
}

struct thread_arg {
	hps_worker *w;
	int id, failed;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	uint64_t keys[16];
	float v[16], got[16];
	for (int i = 0; i < 16; i++)
		keys[i] = (uint64_t)a->id * 1000 + (uint64_t)i, v[i] = 1;
	for (int r = 1; r <= 300; r++) {
		if (hps_wait(a->w, hps_pushpull(a->w, keys, 16, v, got, NULL)) != 0) {
			a->failed = 1;
			return NULL;
		}
		for (int i = 0; i < 16; i++)
			if (got[i] != (float)r)
				a->failed = 1;
	}
	return NULL;
}

static int threads_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	pthread_t t[4];
	struct thread_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){w, i, 0};
		pthread_create(&t[i], NULL, thread_main, &a[i]);
	}
	int failed = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		failed |= a[i].failed;
	}
	CHECK(!failed);
	return 0;
}

static void test_api_threads_share_a_worker(void)
{
	run_job(2, 1, 1, threads_worker, NULL, NULL);
}

/* A handler that answers each key with the server's rank. */
static int rank_handler(hps_request *r, void *arg)
{
	(void)arg;
	if (r->type == HPS_REQ_PUSH)
		return 0;
	float rank = (float)atoi(getenv("HPS_RANK")), *out = r->out; /* f32 key range */
	for (size_t i = 0; i < r->nkeys * r->width; i++)
		out[i] = rank;
	return (int)(r->nkeys * r->width);
}

static int spread_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	uint64_t keys[64];
	float owner[64];
	for (int i = 0; i < 64; i++)
		keys[i] = (uint64_t)i;
	OK(hps_wait(w, hps_pull(w, keys, 64, owner, NULL)));
	int seen[8] = {0};
	for (int i = 0; i < 64; i++) {
		CHECK(owner[i] >= 0 && owner[i] < (float)hps_num_servers(ctx));
		seen[(int)owner[i]]++;
	}
	for (int s = 0; s < hps_num_servers(ctx); s++)
		CHECK(seen[s] > 0); /* small contiguous key sets reach every server */
	if (arg)
		for (int i = 0; i < 64; i++) /* declared ranges: [0,9] [10,39] [40,...] */
			CHECK(owner[i] == (i < 10 ? 0.0f : i < 40 ? 1.0f : 2.0f));
	return 0;
}

static void test_api_key_ranges_and_handler(void)
{
	run_job(4, 1, 1, spread_worker, NULL, &(struct job_opts){.handler = rank_handler});
	static const struct hpsi_key_span ranges[3] = {{.first = 0, .last = 9}, {.first = 10, .last = 39}, {.first = 40, .last = UINT64_MAX}};
	run_job(3, 1, 1, spread_worker, (void *)1, &(struct job_opts){.handler = rank_handler, .ranges = ranges});
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_api_sum_from_many_workers", test_api_sum_from_many_workers},
		{"test_api_pushpull_sees_own_push", test_api_pushpull_sees_own_push},
		{"test_api_variable_lengths", test_api_variable_lengths},
		{"test_api_large_values_via_heap", test_api_large_values_via_heap},
		{"test_api_zero_copy_buffers", test_api_zero_copy_buffers},
		{"test_api_callbacks_and_many_in_flight", test_api_callbacks_and_many_in_flight},
		{"test_api_pipelined_requests", test_api_pipelined_requests},
		{"test_api_threads_share_a_worker", test_api_threads_share_a_worker},
		{"test_api_key_ranges_and_handler", test_api_key_ranges_and_handler},
		{NULL, NULL},
	};
	return run_suite("api", cases);
}
