/* Misuse of the API's handles and of the shared heap: calls through NULL,
 * closed or finalized handles, a second worker, frees of pointers that are
 * not live buffers, a process that ends without closing, and waits on
 * requests whose slot was long reused. Each returns its code; nothing ends
 * in a signal and the job goes on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/node.h"
#include "tests/harness.h"

#define EXPECT(expr, code)                                                                        \
	do {                                                                                      \
		long long rc_ = (long long)(expr);                                                \
		if (rc_ != (long long)(code)) {                                                   \
			fprintf(stderr, "%s:%d: %s gave %lld (%s), expected %s\n", __FILE__, __LINE__, #expr, \
				rc_, hps_strerror((int)rc_), #code);                              \
			return 1;                                                                 \
		}                                                                                 \
	} while (0)

static void run_one(uint32_t nservers, worker_fn fn, const struct job_opts *o)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, nservers, 1, o), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, fn, NULL), 60000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0); /* the servers saw a clean end */
}

/* Every call of the API with NULL handles: a code, no crash. */
static void test_misuse_null_handles(void)
{
	uint64_t k = 1;
	float v = 1;
	hps_direct d;
	CU_ASSERT_EQUAL(hps_init(NULL, NULL, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_finalize(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_role(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_rank(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_num_workers(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_num_servers(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_barrier(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_worker_open(NULL, 1, &(hps_worker *){NULL}), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_worker_close(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_push(NULL, &k, 1, &v, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_pull(NULL, &k, 1, &v, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_pushpull(NULL, &k, 1, &v, &v, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_wait(NULL, 0), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_wait(NULL, HPS_ENOKEY), HPS_ENOKEY); /* a failed submit passes through */
	CU_ASSERT_EQUAL(hps_clock(NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_save(NULL, "/tmp/x"), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_load(NULL, "/tmp/x"), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_map(NULL, 1, &d), HPS_EINVAL);
	CU_ASSERT_PTR_NULL(hps_alloc(NULL, 64));
	CU_ASSERT_EQUAL(hps_free(NULL, &v), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_server_run(NULL, NULL, NULL), HPS_EINVAL);
}

/* A closed worker: closing again and every call through it give
 * HPS_ECLOSED, and the process cannot open another (its servers have let
 * it go). The harness closes it a third time after this returns. */
static int closed_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	uint64_t k = 7;
	float v = 2, got = 0;
	int64_t ts = hps_push(w, &k, 1, &v, NULL);
	EXPECT(hps_wait(w, ts), 0);
	void *buf = hps_alloc(w, 256);
	if (!buf)
		return 1;
	EXPECT(hps_worker_close(w), 0);
	EXPECT(hps_worker_close(w), HPS_ECLOSED);
	EXPECT(hps_push(w, &k, 1, &v, NULL), HPS_ECLOSED);
	EXPECT(hps_pull(w, &k, 1, &got, NULL), HPS_ECLOSED);
	EXPECT(hps_pushpull(w, &k, 1, &v, &got, NULL), HPS_ECLOSED);
	EXPECT(hps_wait(w, ts), HPS_ECLOSED);
	EXPECT(hps_clock(w), HPS_ECLOSED);
	if (hps_alloc(w, 64) != NULL)
		return 1;
	EXPECT(hps_free(w, buf), HPS_ECLOSED);
	hps_worker *again;
	EXPECT(hps_worker_open(ctx, 1, &again), HPS_ECLOSED);
	EXPECT(hps_rank(ctx), 0); /* the context itself still lives */
	return 0;
}

static void test_misuse_worker_closed_twice(void)
{
	run_one(2, closed_worker, NULL);
}

/* A finalized context: finalizing again and every call through it or
 * through its worker (which finalize closed) give HPS_ECLOSED. */
static int finalized_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	uint64_t k = 3;
	float v = 1;
	hps_direct d;
	hps_worker *again;
	EXPECT(hps_wait(w, hps_push(w, &k, 1, &v, NULL)), 0);
	EXPECT(hps_finalize(ctx), 0);
	EXPECT(hps_finalize(ctx), HPS_ECLOSED);
	EXPECT(hps_role(ctx), HPS_ECLOSED);
	EXPECT(hps_rank(ctx), HPS_ECLOSED);
	EXPECT(hps_num_workers(ctx), HPS_ECLOSED);
	EXPECT(hps_num_servers(ctx), HPS_ECLOSED);
	EXPECT(hps_barrier(ctx), HPS_ECLOSED);
	EXPECT(hps_worker_open(ctx, 1, &again), HPS_ECLOSED);
	EXPECT(hps_save(ctx, "/tmp/never"), HPS_ECLOSED);
	EXPECT(hps_load(ctx, "/tmp/never"), HPS_ECLOSED);
	EXPECT(hps_direct_map(ctx, 1, &d), HPS_ECLOSED);
	EXPECT(hps_server_run(ctx, NULL, NULL), HPS_ECLOSED);
	EXPECT(hps_worker_close(w), HPS_ECLOSED);
	EXPECT(hps_push(w, &k, 1, &v, NULL), HPS_ECLOSED);
	return 0;
}

static void test_misuse_finalized_twice(void)
{
	run_one(1, finalized_worker, NULL);
}

/* One worker per process: a second open is refused with a code whose text
 * does not blame another job. */
static int second_open_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	hps_worker *second = NULL;
	EXPECT(hps_worker_open(ctx, 1, &second), HPS_EEXIST);
	if (second || strstr(hps_strerror(HPS_EEXIST), "job with this id"))
		return 1;
	if (strcmp(hps_strerror(HPS_EUNTRACKED), hps_strerror(12345)) == 0)
		return 1; /* the new code has a name */
	return 0;
}

static void test_misuse_second_worker(void)
{
	run_one(1, second_open_worker, NULL);
}

/* hps_free of anything but a live hps_alloc buffer is refused and leaves
 * the heap intact: allocations after it work and zero-copy requests from
 * them give exact sums. */
static int free_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 64, K = 256 };
	char *p = hps_alloc(w, 4096), *q = hps_alloc(w, 100);
	int local = 0;
	char *heap = malloc(64);
	if (!p || !q || !heap)
		return 1;
	EXPECT(hps_free(w, p), 0);
	EXPECT(hps_free(w, p), HPS_EINVAL);   /* twice */
	EXPECT(hps_free(w, q + 64), HPS_EINVAL); /* inside a buffer */
	EXPECT(hps_free(w, q + 1), HPS_EINVAL);
	EXPECT(hps_free(w, &local), HPS_EINVAL); /* not in the shared heap */
	EXPECT(hps_free(w, heap), HPS_EINVAL);
	EXPECT(hps_free(w, NULL), 0);
	EXPECT(hps_free(w, q), 0);
	EXPECT(hps_free(w, q), HPS_EINVAL);
	free(heap);
	/* the arena still works: many sizes, reused */
	for (int round = 0; round < 3; round++) {
		void *b[N];
		for (int i = 0; i < N; i++) {
			size_t sz = (size_t)(i + 1) * 96 * (size_t)(round + 1);
			if (!(b[i] = hps_alloc(w, sz)))
				return 2;
			memset(b[i], i, sz);
		}
		for (int i = 0; i < N; i++)
			EXPECT(hps_free(w, b[i]), 0);
		for (int i = 0; i < N; i += 7)
			EXPECT(hps_free(w, b[i]), HPS_EINVAL);
	}
	uint64_t keys[K];
	float *push = hps_alloc(w, K * sizeof(float)), *pull = hps_alloc(w, K * sizeof(float));
	if (!push || !pull)
		return 3;
	for (int i = 0; i < K; i++)
		keys[i] = (uint64_t)i * 3 + 1, push[i] = (float)i;
	EXPECT(hps_wait(w, hps_push(w, keys, K, push, NULL)), 0);
	EXPECT(hps_wait(w, hps_push(w, keys, K, push, NULL)), 0);
	EXPECT(hps_wait(w, hps_pull(w, keys, K, pull, NULL)), 0);
	for (int i = 0; i < K; i++)
		if (pull[i] != 2.0f * (float)i)
			return 4;
	EXPECT(hps_free(w, push), 0);
	EXPECT(hps_free(w, pull), 0);
	return 0;
}

static void test_misuse_free_not_live(void)
{
	run_one(1, free_worker, NULL);
}

/* A worker process that ends without closing: exit status 0 counts as a
 * clean end (CLOSED), a non-zero one as died (DEAD). */
static pid_t fork_exiting_worker(struct job *j, uint32_t rank, int status)
{
	fflush(NULL); /* exit() in the child flushes stdio buffers it copied */
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	job_env(j, "worker", rank);
	hps_ctx *ctx;
	hps_worker *w;
	uint64_t k = 5;
	float v = 1;
	if (hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, 1, &w) || hps_wait(w, hps_push(w, &k, 1, &v, NULL)))
		_exit(100);
	exit(status); /* returning from main does the same */
}

static void test_misuse_exit_without_close(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 2, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(fork_exiting_worker(&j, 0, 0), 30000), 0);
	CU_ASSERT_EQUAL(wait_exit(fork_exiting_worker(&j, 1, 3), 30000), 3);
	CU_ASSERT_EQUAL(hpsi_node_check(&j.seg, hpsi_worker_node(&j.seg, 0)), HPSI_NODE_CLOSED);
	CU_ASSERT_EQUAL(hpsi_node_check(&j.seg, hpsi_worker_node(&j.seg, 1)), HPSI_NODE_DEAD);
	job_stop(&j); /* the server ends either way; its status is not the point */
}

/* A server handler that fails every push of key 13. */
static int failing_handler(hps_request *r, void *arg)
{
	(void)arg;
	return r->type == HPS_REQ_PUSH && r->nkeys && r->keys[0] == 13 ? HPS_EHANDLER : 0;
}

#define WINDOW 512   /* slots of a worker (HPSI_MAX_INFLIGHT) */
#define KEPT 4096    /* failures kept past their slot (HPSI_MAX_FAILED) */

/* Old requests: a failure whose slot was reused still reads as that
 * failure, a success as 0; once more failures than are kept went unread,
 * the oldest read as HPS_EUNTRACKED, never as success. */
static int old_status_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t ok = 1, bad = 13;
	float v = 1;
	int64_t first_ok = hps_push(w, &ok, 1, &v, NULL);
	int64_t first_bad = hps_push(w, &bad, 1, &v, NULL);
	int64_t ts = 0;
	for (int i = 0; i < 2 * WINDOW; i++) /* first_bad's slot is reused */
		if ((ts = hps_push(w, &ok, 1, &v, NULL)) < 0)
			return 1;
	EXPECT(hps_wait(w, ts), 0);
	EXPECT(hps_wait(w, first_bad), HPS_EHANDLER);
	EXPECT(hps_wait(w, first_bad), HPS_EHANDLER); /* read again: still kept */
	EXPECT(hps_wait(w, first_ok), 0);
	EXPECT(hps_wait(w, first_ok + 3), 0);
	/* more failures than are kept, none waited for */
	int64_t last_bad = 0;
	for (int i = 0; i < KEPT + WINDOW; i++)
		if ((last_bad = hps_push(w, &bad, 1, &v, NULL)) < 0)
			return 2;
	int64_t later_ok = hps_push(w, &ok, 1, &v, NULL);
	for (int i = 0; i < 2 * WINDOW; i++)
		if ((ts = hps_push(w, &ok, 1, &v, NULL)) < 0)
			return 3;
	EXPECT(hps_wait(w, ts), 0);
	EXPECT(hps_wait(w, first_bad), HPS_EUNTRACKED);
	EXPECT(hps_wait(w, first_ok), HPS_EUNTRACKED); /* cannot be told apart any more */
	EXPECT(hps_wait(w, last_bad), HPS_EHANDLER);
	EXPECT(hps_wait(w, last_bad - KEPT + 2), HPS_EHANDLER);
	EXPECT(hps_wait(w, later_ok), 0);
	return 0;
}

static void test_misuse_old_status_kept(void)
{
	run_one(1, old_status_worker, &(struct job_opts){.handler = failing_handler});
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_misuse_null_handles", test_misuse_null_handles},
		{"test_misuse_worker_closed_twice", test_misuse_worker_closed_twice},
		{"test_misuse_finalized_twice", test_misuse_finalized_twice},
		{"test_misuse_second_worker", test_misuse_second_worker},
		{"test_misuse_free_not_live", test_misuse_free_not_live},
		{"test_misuse_exit_without_close", test_misuse_exit_without_close},
		{"test_misuse_old_status_kept", test_misuse_old_status_kept},
		{NULL, NULL},
	};
	return run_suite("misuse", cases);
}
