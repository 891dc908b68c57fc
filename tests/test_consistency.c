/* Consistency: the SSP guarantee as a property over random delays and
 * seeds for s in {0, 1, 3, unbounded}; BSP equals a sequential run bit for
 * bit; workers that leave stop counting; clocks never go backwards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "net/codec.h"
#include "runtime/client/ctx.h"
#include "runtime/server/store.h"
#include "tests/harness.h"

#define W 3
#define T 15

struct prop_arg {
	int staleness; /* -1: unbounded */
	unsigned seed;
	int stop_early; /* worker 2 leaves after T/2 clocks */
};

/* Worker w owns key w and adds 1 to it once per clock. At clock c a pull
 * must show at least c - s updates of every worker still running (all T
 * of one that finished), at least c of its own, and never more than T. */
static int prop_worker(hps_ctx *ctx, hps_worker *w, void *arg_)
{
	const struct prop_arg *a = arg_;
	int me = hps_rank(ctx);
	unsigned rng = a->seed * 7919u + (unsigned)me * 104729u;
	uint64_t keys[W] = {0, 1, 2};
	float one = 1, got[W];
	uint64_t mine = (uint64_t)me;
	int iters = a->stop_early && me == 2 ? T / 2 : T;
	for (int c = 0; c < iters; c++) {
		rng = rng * 1103515245u + 12345u;
		usleep((rng >> 16) % 1500); /* random skew between workers */
		if (hps_wait(w, hps_pull(w, keys, W, got, NULL)))
			return 1;
		for (int k = 0; k < W; k++) {
			int total = a->stop_early && k == 2 ? T / 2 : T;
			int must = k == me ? c : a->staleness < 0 ? 0 : c - a->staleness;
			if (must > total)
				must = total; /* a worker that left pushed all it will */
			if (got[k] < (float)must || got[k] > (float)total) {
				fprintf(stderr, "s=%d seed=%u worker %d clock %d: key %d holds %g, needs >= %d\n",
					a->staleness, a->seed, me, c, k, got[k], must);
				return 2;
			}
		}
		if (hps_wait(w, hps_push(w, &mine, 1, &one, NULL)) || hps_clock(w))
			return 3;
	}
	return 0;
}

static void run_property(int staleness, unsigned seed, int stop_early)
{
	char s[16];
	snprintf(s, sizeof s, "%d", staleness);
	setenv("HPS_STALENESS", staleness < 0 ? "asp" : s, 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, W, NULL), 0);
	unsetenv("HPS_STALENESS");
	struct prop_arg a = {staleness, seed, stop_early};
	pid_t p[W];
	for (int r = 0; r < W; r++)
		p[r] = job_fork_worker(&j, (uint32_t)r, 1, prop_worker, &a);
	for (int r = 0; r < W; r++)
		CU_ASSERT_EQUAL(wait_exit(p[r], 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static void test_consistency_staleness_property(void)
{
	int bounds[] = {0, 1, 3, -1};
	for (int b = 0; b < 4; b++)
		for (unsigned seed = 1; seed <= 8; seed++)
			run_property(bounds[b], seed, 0);
}

static void test_consistency_finished_worker_stops_counting(void)
{
	run_property(0, 9, 1);
	run_property(1, 10, 1);
}

/* A float in [-1, 1) with a full mantissa, from (worker, clock, key). */
static float val(int w, int t, int k)
{
	uint64_t x = (uint64_t)(w * 1000003 + t * 7919 + k * 104729 + 1);
	x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
	return (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

#define K 12
#define TB 10

/* At clock t, key k gets one push, from worker (k + t) % W. */
static int bsp_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	float *final = arg;
	int me = hps_rank(ctx);
	uint64_t keys[K];
	float got[K];
	for (int k = 0; k < K; k++)
		keys[k] = (uint64_t)k * 1000;
	for (int t = 0; t < TB; t++) {
		usleep((unsigned)((me * 37 + t * 11) % 7) * 200);
		if (hps_wait(w, hps_pull(w, keys, K, got, NULL)))
			return 1;
		uint64_t mk[K];
		float mv[K];
		int n = 0;
		for (int k = 0; k < K; k++)
			if ((k + t) % W == me)
				mk[n] = keys[k], mv[n++] = val(me, t, k);
		if (hps_wait(w, hps_push(w, mk, (size_t)n, mv, NULL)) || hps_clock(w))
			return 2;
	}
	if (hps_barrier(ctx) || hps_wait(w, hps_pull(w, keys, K, got, NULL)))
		return 3;
	if (me == 0)
		memcpy(final, got, sizeof got);
	return 0;
}

static void test_consistency_bsp_equals_sequential(void)
{
	float *final = mmap(NULL, K * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	float seq[K] = {0};
	for (int t = 0; t < TB; t++)
		for (int k = 0; k < K; k++)
			seq[k] += val((k + t) % W, t, k);
	for (int round = 0; round < 3; round++) {
		setenv("HPS_STALENESS", "bsp", 1);
		struct job j;
		CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, W, NULL), 0);
		unsetenv("HPS_STALENESS");
		pid_t p[W];
		for (int r = 0; r < W; r++)
			p[r] = job_fork_worker(&j, (uint32_t)r, 1, bsp_worker, final);
		for (int r = 0; r < W; r++)
			CU_ASSERT_EQUAL(wait_exit(p[r], 30000), 0);
		CU_ASSERT_EQUAL(job_stop(&j), 0);
		CU_ASSERT_EQUAL(memcmp(final, seq, sizeof seq), 0);
	}
	munmap(final, K * sizeof(float));
}

/* Deterministic BSP: every worker pushes a gradient computed from what it
 * pulled to every key, AdaGrad applies them (order matters in floats),
 * random delays change the timing each round; the model must come out
 * bit-identical. */
#define TD 12
static unsigned det_round;
static int det_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	float *final = arg;
	int me = hps_rank(ctx);
	uint64_t keys[K];
	float got[K], g[K];
	unsigned rng = det_round * 7919u + (unsigned)me * 104729u + 1;
	for (int k = 0; k < K; k++)
		keys[k] = (uint64_t)k * 1000;
	for (int t = 0; t < TD; t++) {
		rng = rng * 1103515245u + 12345u;
		usleep((rng >> 16) % 700);
		if (hps_wait(w, hps_pull(w, keys, K, got, NULL)))
			return 1;
		for (int k = 0; k < K; k++)
			g[k] = sinf(3.0f * got[k] + (float)me) + val(me, t, k);
		rng = rng * 1103515245u + 12345u;
		usleep((rng >> 16) % 700);
		if (hps_wait(w, hps_push(w, keys, K, g, NULL)) || hps_clock(w))
			return 2;
	}
	if (hps_barrier(ctx) || hps_wait(w, hps_pull(w, keys, K, got, NULL)))
		return 3;
	if (me == 0)
		memcpy(final, got, sizeof got);
	return 0;
}

static void test_consistency_deterministic_bsp_is_bit_identical(void)
{
	float *final = mmap(NULL, K * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	float first[K];
	setenv("HPS_STALENESS", "bsp", 1);
	setenv("HPS_DETERMINISTIC", "1", 1);
	setenv("HPS_UPDATER", "adagrad:lr=0.3", 1);
	for (det_round = 0; det_round < 4; det_round++) {
		struct job j;
		CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, W, NULL), 0);
		pid_t p[W];
		for (int r = 0; r < W; r++)
			p[r] = job_fork_worker(&j, (uint32_t)r, 1, det_worker, final);
		for (int r = 0; r < W; r++)
			CU_ASSERT_EQUAL(wait_exit(p[r], 30000), 0);
		CU_ASSERT_EQUAL(job_stop(&j), 0);
		if (det_round == 0)
			memcpy(first, final, sizeof first);
		else
			CU_ASSERT_EQUAL(memcmp(final, first, sizeof first), 0);
	}
	/* a wrong value is refused: the servers do not start */
	setenv("HPS_DETERMINISTIC", "yes", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	CU_ASSERT_NOT_EQUAL(wait_exit(j.servers[0], 10000), 0);
	j.servers[0] = 0;
	job_stop(&j);
	unsetenv("HPS_STALENESS");
	unsetenv("HPS_DETERMINISTIC");
	unsetenv("HPS_UPDATER");
	munmap(final, K * sizeof(float));
}

/* Written straight into worker 0's ring: clock 5, then clock 3 (dropped),
 * then a pull stamped with clock 2 (answered HPS_EPROTO). */
static void test_consistency_clock_backwards_refused(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	struct hpsi_ring_prod p;
	hpsi_ring_prod_attach(&p, hpsi_seg_ring(&j.seg, 0, 0, 0), j.seg.hdr->ring_bytes);
	uint32_t clocks[2] = {5, 3};
	for (int i = 0; i < 2; i++) {
		struct hpsi_msg_hdr *h = hpsi_ring_reserve(&p, sizeof *h);
		hpsi_msg_init(h, HPSI_MSG_CLOCK, 0, -1);
		h->clock = clocks[i];
		hpsi_ring_commit(&p, sizeof *h);
	}
	struct hpsi_msg_hdr *h = hpsi_ring_reserve(&p, sizeof *h + 8);
	hpsi_msg_init(h, HPSI_MSG_PULL, 0, 77);
	h->nkeys = 1, h->width = 1, h->clock = 2;
	memset(h + 1, 0, 8);
	hpsi_ring_commit(&p, sizeof *h + 8);
	hpsi_ring_publish(&p);
	hpsi_bell_ring(&hpsi_seg_node(&j.seg, 0)->bell);
	struct hpsi_ring_cons c;
	hpsi_ring_cons_attach(&c, hpsi_seg_ring(&j.seg, 0, 0, 1), j.seg.hdr->ring_bytes);
	size_t len = 0;
	struct hpsi_msg_hdr *r = NULL;
	for (int t = 0; t < 5000 && !(r = hpsi_ring_peek(&c, &len)); t++)
		usleep(1000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->timestamp, 77);
	CU_ASSERT_EQUAL(r->status, HPS_EPROTO);
	hpsi_ring_consume(&c, len);
	hpsi_ring_cons_publish(&c);
	/* the server lives on: mark the worker closed and it ends cleanly */
	atomic_store(&hpsi_seg_node(&j.seg, 1)->state, HPSI_NODE_CLOSED);
	hpsi_wake_all(&j.seg);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static void test_consistency_bad_staleness_refused(void)
{
	int64_t s;
	setenv("HPS_STALENESS", "often", 1);
	CU_ASSERT_EQUAL(hpsi_server_staleness(0, &s), HPS_ECONFIG);
	setenv("HPS_STALENESS", "-2", 1);
	CU_ASSERT_EQUAL(hpsi_server_staleness(0, &s), HPS_ECONFIG);
	setenv("HPS_STALENESS", "0;3", 1);
	CU_ASSERT_EQUAL(hpsi_server_staleness(1, &s), 0);
	CU_ASSERT_EQUAL(s, 3);
	CU_ASSERT_EQUAL(hpsi_server_staleness(2, &s), HPS_ECONFIG); /* no bound for server 2 */
	setenv("HPS_STALENESS", "asp", 1);
	CU_ASSERT_EQUAL(hpsi_server_staleness(0, &s), 0);
	CU_ASSERT_EQUAL(s, -1);
	unsetenv("HPS_STALENESS");
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_consistency_staleness_property", test_consistency_staleness_property},
		{"test_consistency_finished_worker_stops_counting", test_consistency_finished_worker_stops_counting},
		{"test_consistency_bsp_equals_sequential", test_consistency_bsp_equals_sequential},
		{"test_consistency_deterministic_bsp_is_bit_identical", test_consistency_deterministic_bsp_is_bit_identical},
		{"test_consistency_clock_backwards_refused", test_consistency_clock_backwards_refused},
		{"test_consistency_bad_staleness_refused", test_consistency_bad_staleness_refused},
		{NULL, NULL},
	};
	return run_suite("consistency", cases);
}
