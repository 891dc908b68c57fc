/* Crashes: a server killed with SIGKILL mid-request, a server that stops
 * answering, a worker killed mid-run. Nobody waits forever; the rest of the
 * job goes on (the launcher's policy of stopping the job is tested in
 * test_launch). */
#include <signal.h>
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

int main(void)
{
	static const struct test_case cases[] = {
		{"test_kill_server_mid_request", test_kill_server_mid_request},
		{"test_kill_unanswered_request_times_out", test_kill_unanswered_request_times_out},
		{"test_kill_worker_mid_run", test_kill_worker_mid_run},
		{NULL, NULL},
	};
	return run_suite("kill", cases);
}
