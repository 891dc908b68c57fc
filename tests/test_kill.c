/* Crashes: a server killed with SIGKILL mid-request, a server that stops
 * answering, a worker killed mid-run. Nobody waits forever; the rest of the
 * job goes on (the launcher's policy of stopping the job is tested in
 * test_launch). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/bell.h"
#include "tests/harness.h"

#define STUCK_KEY 666

/* Summing store, except that a request touching STUCK_KEY never returns. */
static float table[1024];

static int stuck_handler(hps_request *r, void *arg)
{
	(void)arg;
	const float *vals = r->vals; /* f32 key range */
	float *out = r->out;
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i] == STUCK_KEY)
			for (;;)
				pause();
	for (size_t i = 0; i < r->nkeys && r->type != HPS_REQ_PULL; i++)
		table[r->keys[i] % 1024] += vals[i];
	for (size_t i = 0; i < r->nkeys && r->type != HPS_REQ_PUSH; i++)
		out[i] = table[r->keys[i] % 1024];
	return r->type == HPS_REQ_PUSH ? 0 : (int)r->nkeys;
}

static int notify_fd = -1;

static void notify(void)
{
	char c = 1;
	if (write(notify_fd, &c, 1) != 1)
		_exit(90);
}

/* Sends a request the server will never answer, then reports how it ended:
 * exit 0 when hps_wait failed with the expected code within 5 s. */
static int stuck_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	int expect = *(int *)arg;
	uint64_t k = STUCK_KEY;
	float v = 1, got;
	int64_t ts = hps_pull(w, &k, 1, &got, NULL);
	if (ts < 0)
		return 2;
	notify();
	int64_t t0 = hpsi_now_ns();
	int rc = hps_wait(w, ts);
	double secs = (double)(hpsi_now_ns() - t0) / 1e9;
	if (rc != expect || secs > 5) {
		fprintf(stderr, "wait gave %s after %.2f s\n", hps_strerror(rc), secs);
		return 3;
	}
	/* a new request to a dead server fails at once, it does not hang */
	if (expect == HPS_EPEERDEAD && hps_wait(w, hps_push(w, &k, 1, &v, NULL)) != HPS_EPEERDEAD)
		return 4;
	/* and so does telling it a new clock */
	if (expect == HPS_EPEERDEAD && hps_clock(w) != HPS_EPEERDEAD)
		return 5;
	return 0;
}

static void test_kill_server_mid_request(void)
{
	struct job j;
	int fds[2];
	CU_ASSERT_FATAL(pipe(fds) == 0);
	notify_fd = fds[1];
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.handler = stuck_handler}), 0);
	int expect = HPS_EPEERDEAD;
	pid_t wpid = job_fork_worker(&j, 0, 1, stuck_worker, &expect);
	char c;
	CU_ASSERT_FATAL(read(fds[0], &c, 1) == 1); /* the request is out */
	kill(j.servers[0], SIGKILL);
	CU_ASSERT_EQUAL(wait_exit(wpid, 10000), 0);
	CU_ASSERT_NOT_EQUAL(job_stop(&j), 0); /* the server did die */
	close(fds[0]), close(fds[1]);
}

static void test_kill_unanswered_request_times_out(void)
{
	struct job j;
	int fds[2];
	CU_ASSERT_FATAL(pipe(fds) == 0);
	notify_fd = fds[1];
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.handler = stuck_handler, .timeout_ms = 300}), 0);
	int expect = HPS_ETIMEDOUT;
	pid_t wpid = job_fork_worker(&j, 0, 1, stuck_worker, &expect);
	char c;
	CU_ASSERT_FATAL(read(fds[0], &c, 1) == 1);
	CU_ASSERT_EQUAL(wait_exit(wpid, 10000), 0);
	kill(j.servers[0], SIGKILL);
	job_stop(&j);
	close(fds[0]), close(fds[1]);
}

/* Worker 1 dies in the middle; worker 0 keeps working, its barrier fails
 * with HPS_EPEERDEAD instead of hanging, and the server ends cleanly. */
static int survivor_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	uint64_t k[3] = {1, 2, 3};
	float v[3] = {1, 1, 1}, got[3];
	for (int i = 0; i < 100; i++)
		if (hps_wait(w, hps_push(w, k, 3, v, NULL)))
			return 2;
	notify();
	int rc = hps_barrier(ctx); /* worker 1 never arrives: it is killed */
	if (rc != HPS_EPEERDEAD) {
		fprintf(stderr, "barrier gave %s\n", hps_strerror(rc));
		return 3;
	}
	if (hps_wait(w, hps_pull(w, k, 3, got, NULL)) || got[0] < 100)
		return 4;
	return 0;
}

static int victim_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k[3] = {1, 2, 3};
	float v[3] = {1, 1, 1};
	if (hps_wait(w, hps_push(w, k, 3, v, NULL)))
		return 2;
	notify(); /* it runs: the kill lands mid-run, not before it joined */
	for (;;) /* pushes until killed, with requests in flight */
		for (int i = 0; i < 8; i++)
			if (hps_push(w, k, 3, v, NULL) < 0)
				return 2;
}

static void test_kill_worker_mid_run(void)
{
	struct job j;
	int fds[2];
	CU_ASSERT_FATAL(pipe(fds) == 0);
	notify_fd = fds[1];
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 2, NULL), 0);
	pid_t w0 = job_fork_worker(&j, 0, 1, survivor_worker, NULL);
	pid_t w1 = job_fork_worker(&j, 1, 1, victim_worker, NULL);
	char c[2];
	CU_ASSERT_FATAL(read(fds[0], c, 1) == 1 && read(fds[0], c + 1, 1) == 1);
	kill(w1, SIGKILL);
	CU_ASSERT_EQUAL(wait_exit(w1, 5000), 128 + SIGKILL);
	int st0 = wait_exit(w0, 10000);
	if (st0)
		fprintf(stderr, "survivor exited with %d\n", st0);
	CU_ASSERT_EQUAL(st0, 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0); /* the server ended by itself, status 0 */
	close(fds[0]), close(fds[1]);
}

/* ---- a server killed while the worker waits for room in its ring ------ */

#define FULL_N 40      /* requests; the first ~24 fill server 0's 4 KiB ring */
#define FULL_KEYS0 8   /* keys of each request on server 0 (1..8) */
#define FULL_KEY1 1001 /* and one on server 1 */
#define GUARD 0xA5

static const struct job *full_job;

/* Summing store that, the first time it sees server 0 dead, waits 300 ms
 * before answering: the answer to the request the worker was blocked on
 * then arrives after that request could (wrongly) have completed. */
static int late_after_death_handler(hps_request *r, void *arg)
{
	static int slept;
	uint32_t st = atomic_load_explicit(&hpsi_seg_node(&full_job->seg, 0)->state, memory_order_acquire);
	if (st == HPSI_NODE_DEAD && !slept) {
		slept = 1;
		usleep(300000);
	}
	return stuck_handler(r, arg);
}

struct completion {
	_Atomic int calls, status;
};

static void count_completion(hps_worker *w, int64_t ts, int status, void *arg)
{
	(void)w, (void)ts;
	struct completion *c = arg;
	atomic_store_explicit(&c->status, status, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
}

static int all_called(void *arg)
{
	struct completion *c = arg;
	for (int i = 0; i < FULL_N; i++)
		if (atomic_load_explicit(&c[i].calls, memory_order_relaxed) == 0)
			return 0;
	return 1;
}

static int guard_intact(const float *buf)
{
	const unsigned char *b = (const unsigned char *)buf;
	for (size_t i = 0; i < (FULL_KEYS0 + 1) * sizeof(float); i++)
		if (b[i] != GUARD)
			return 0;
	return 1;
}

/* Pulls FULL_N requests spanning both servers while server 0 is stopped
 * and then killed. Each must fail with HPS_EPEERDEAD exactly once, and no
 * answer may land in its buffer after hps_wait returned. */
static int full_ring_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	static float got[FULL_N][FULL_KEYS0 + 1];
	static struct completion done[FULL_N];
	uint64_t keys[FULL_KEYS0 + 1];
	for (int k = 0; k < FULL_KEYS0; k++)
		keys[k] = (uint64_t)k + 1;
	keys[FULL_KEYS0] = FULL_KEY1;
	int64_t ts[FULL_N];
	for (int i = 0; i < FULL_N; i++) {
		hps_opts o = {.cb = count_completion, .cb_arg = &done[i]};
		if ((ts[i] = hps_pull(w, keys, FULL_KEYS0 + 1, got[i], &o)) < 0)
			return 2;
	}
	int bad = 0;
	for (int i = 0; i < FULL_N; i++) {
		int rc = hps_wait(w, ts[i]);
		memset(got[i], GUARD, sizeof got[i]); /* the caller reuses its buffer */
		if (rc != HPS_EPEERDEAD) {
			fprintf(stderr, "request %d: wait gave %s\n", i, hps_strerror(rc));
			bad = 3;
		}
	}
	/* Answers of server 1 come in order: once this one is in, every
	 * earlier one was handled. Then give stragglers time to show. */
	uint64_t k1 = FULL_KEY1;
	float one;
	if (hps_wait(w, hps_pull(w, &k1, 1, &one, NULL)))
		return 4;
	usleep(100000);
	if (!poll_until(all_called, done, 5000))
		return 5;
	for (int i = 0; i < FULL_N; i++) {
		if (!guard_intact(got[i])) {
			fprintf(stderr, "request %d: buffer written after hps_wait returned\n", i);
			bad = 6;
		}
		int calls = atomic_load_explicit(&done[i].calls, memory_order_relaxed);
		int st = atomic_load_explicit(&done[i].status, memory_order_relaxed);
		if (calls != 1 || st != HPS_EPEERDEAD) {
			fprintf(stderr, "request %d: %d callbacks, status %s\n", i, calls, hps_strerror(st));
			bad = 7;
		}
	}
	return bad;
}

static int server_alive(void *arg)
{
	const struct job *j = arg;
	for (uint32_t s = 0; s < j->nservers; s++)
		if (atomic_load_explicit(&hpsi_seg_node(&j->seg, s)->state, memory_order_acquire) != HPSI_NODE_ALIVE)
			return 0;
	return 1;
}

/* Server 0's request ring from worker 0 holds nearly all it can. */
static int ring0_full(void *arg)
{
	const struct job *j = arg;
	struct hpsi_ring *r = hpsi_seg_ring(&j->seg, 0, 0, 0);
	uint32_t used = atomic_load_explicit(&r->tail, memory_order_acquire) -
			atomic_load_explicit(&r->head, memory_order_acquire);
	return used > j->seg.hdr->ring_bytes - 512;
}

static void test_kill_server_while_ring_full(void)
{
	static struct job j;
	static const struct hpsi_key_span ranges[2] = {{0, 999}, {1000, 1999}};
	full_job = &j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1,
					&(struct job_opts){.ring_bytes = 4096, .ranges = ranges,
							   .handler = late_after_death_handler}),
			      0);
	CU_ASSERT_FATAL(poll_until(server_alive, &j, 10000));
	kill(j.servers[0], SIGSTOP); /* its ring fills: the worker blocks on it */
	pid_t wpid = job_fork_worker(&j, 0, 1, full_ring_worker, NULL);
	CU_ASSERT(poll_until(ring0_full, &j, 10000));
	usleep(100000); /* the worker is now waiting for room */
	kill(j.servers[0], SIGKILL);
	int st = wait_exit(wpid, 20000);
	if (st)
		fprintf(stderr, "worker exited with %d\n", st);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_NOT_EQUAL(job_stop(&j), 0); /* server 0 did die */
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_kill_server_mid_request", test_kill_server_mid_request},
		{"test_kill_unanswered_request_times_out", test_kill_unanswered_request_times_out},
		{"test_kill_worker_mid_run", test_kill_worker_mid_run},
		{"test_kill_server_while_ring_full", test_kill_server_while_ring_full},
		{NULL, NULL},
	};
	return run_suite("kill", cases);
}
