/* Per-worker copies of a direct range's keys (hps_direct_cache): the
 * shared array sees a copy's changes only at merges, once each, each key
 * on its own period; a merge
 * brings the other workers' merged changes back; handles name the right
 * rows; wrong arguments are refused; two workers of a job that merge the
 * same rows lose nothing where they change different floats. */
#include <stdlib.h>
#include <string.h>

#include "tests/harness.h"

#define NK 64 /* keys FIRST .. FIRST + NK - 1 */
#define WD 3
#define FIRST 100

static float *row(const hps_direct_rows *r, hps_direct_cache *c, uint64_t key)
{
	uint32_t h;
	return hps_direct_cache_handle(c, key, &h) ? NULL : hps_direct_row(r, h);
}

static void add(float *p, float v)
{
	for (int j = 0; j < WD; j++)
		p[j] += v;
}

/* One process, two caches over one array: the array plays the shared
 * range, the caches two workers. */
static void test_direct_cache_merges_each_change_once(void)
{
	static float vals[NK * WD];
	for (int i = 0; i < NK * WD; i++)
		vals[i] = 1.0f;
	hps_direct d = {.first = FIRST, .count = NK, .width = WD, .vals = vals};
	uint64_t even[NK / 2];
	for (int i = 0; i < NK / 2; i++)
		even[i] = FIRST + 2 * (uint64_t)i;
	uint32_t three[NK / 2], never[NK / 2] = {0};
	for (int i = 0; i < NK / 2; i++)
		three[i] = 3; /* rounded up to 4 */
	hps_direct_cache *a, *b;
	CU_ASSERT_EQUAL_FATAL(hps_direct_cache_open(&d, even, three, NK / 2, &a), 0);
	CU_ASSERT_EQUAL_FATAL(hps_direct_cache_open(&d, even, never, NK / 2, &b), 0);
	hps_direct_rows ra = hps_direct_cache_rows(a), rb = hps_direct_cache_rows(b);
	CU_ASSERT_PTR_EQUAL(ra.base[0], vals);
	CU_ASSERT_EQUAL(ra.width, WD);

	/* named keys have copies (bit 31), the others are their own rows */
	uint32_t h;
	CU_ASSERT_EQUAL(hps_direct_cache_handle(a, FIRST + 4, &h), 0);
	CU_ASSERT_EQUAL(h, 0x80000000u | 2);
	CU_ASSERT_EQUAL(hps_direct_cache_handle(a, FIRST + 5, &h), 0);
	CU_ASSERT_EQUAL(h, 5);
	CU_ASSERT_PTR_EQUAL(row(&ra, a, FIRST + 5), &vals[5 * WD]);
	CU_ASSERT_PTR_NOT_EQUAL(row(&ra, a, FIRST), &vals[0]);
	CU_ASSERT_PTR_NOT_EQUAL(row(&ra, a, FIRST), row(&rb, b, FIRST));
	CU_ASSERT_EQUAL(row(&ra, a, FIRST + 62)[2], 1.0f); /* copies start from the array */

	/* a shared key changes at once, a copied one at the fourth step */
	add(row(&ra, a, FIRST), 1.0f);
	add(row(&ra, a, FIRST + 1), 1.0f);
	CU_ASSERT_EQUAL(vals[1 * WD], 2.0f);
	for (int i = 0; i < 3; i++)
		hps_direct_cache_step(a);
	CU_ASSERT_EQUAL(vals[0], 1.0f);
	hps_direct_cache_step(a);
	CU_ASSERT_EQUAL(vals[0], 2.0f);
	CU_ASSERT_EQUAL(vals[WD - 1], 2.0f);

	/* b has not merged: its copy is stale; its merge adds its own change
	 * to a's and brings a's in */
	CU_ASSERT_EQUAL(row(&rb, b, FIRST)[0], 1.0f);
	add(row(&rb, b, FIRST), 0.5f);
	for (int i = 0; i < 10; i++)
		hps_direct_cache_step(b); /* period 0: steps never merge */
	CU_ASSERT_EQUAL(vals[0], 2.0f);
	hps_direct_cache_merge(b);
	CU_ASSERT_EQUAL(vals[0], 2.5f);
	CU_ASSERT_EQUAL(row(&rb, b, FIRST)[1], 2.5f);

	/* a merges b's change back; merging again adds nothing twice */
	add(row(&ra, a, FIRST), 1.0f);
	hps_direct_cache_merge(a);
	CU_ASSERT_EQUAL(vals[0], 3.5f);
	CU_ASSERT_EQUAL(row(&ra, a, FIRST)[0], 3.5f);
	hps_direct_cache_merge(a);
	hps_direct_cache_merge(b);
	CU_ASSERT_EQUAL(vals[0], 3.5f);
	CU_ASSERT_EQUAL(row(&rb, b, FIRST)[2], 3.5f);

	/* close merges what is left */
	add(row(&rb, b, FIRST + 2), 2.0f);
	hps_direct_cache_close(b);
	CU_ASSERT_EQUAL(vals[2 * WD], 3.0f);
	hps_direct_cache_close(a);
	for (int k = 3; k < NK; k++)
		CU_ASSERT_EQUAL(vals[k * WD], 1.0f);
}

/* Each key merges on its own period: 1, 4 (asked 3), 8, or only when told. */
static void test_direct_cache_merges_each_key_on_its_period(void)
{
	static float vals[NK * WD];
	memset(vals, 0, sizeof vals);
	hps_direct d = {.first = FIRST, .count = NK, .width = WD, .vals = vals};
	uint64_t keys[4] = {FIRST + 1, FIRST + 2, FIRST + 5, FIRST + 9};
	uint32_t every[4] = {8, 3, 0, 1};
	hps_direct_cache *c;
	CU_ASSERT_EQUAL_FATAL(hps_direct_cache_open(&d, keys, every, 4, &c), 0);
	hps_direct_rows r = hps_direct_cache_rows(c);
	int seen[4][9]; /* step t: did key i's change show in the array? */
	for (int t = 1; t <= 8; t++) {
		for (int i = 0; i < 4; i++)
			add(row(&r, c, keys[i]), 1.0f);
		hps_direct_cache_step(c);
		for (int i = 0; i < 4; i++)
			seen[i][t] = vals[(keys[i] - FIRST) * WD] == (float)t;
	}
	for (int t = 1; t <= 8; t++) {
		CU_ASSERT_EQUAL(seen[3][t], 1);          /* every step */
		CU_ASSERT_EQUAL(seen[1][t], t % 4 == 0); /* steps 4 and 8 */
		CU_ASSERT_EQUAL(seen[0][t], t == 8);
		CU_ASSERT_EQUAL(seen[2][t], 0);
	}
	hps_direct_cache_merge(c);
	CU_ASSERT_EQUAL(vals[5 * WD + 2], 8.0f);
	/* handles still name each key's own copy, whatever its slot */
	for (int i = 0; i < 4; i++) {
		add(row(&r, c, keys[i]), (float)i);
		hps_direct_cache_merge(c);
		CU_ASSERT_EQUAL(vals[(keys[i] - FIRST) * WD], 8.0f + (float)i);
	}
	hps_direct_cache_close(c);
	CU_ASSERT_EQUAL(vals[0], 0.0f);
}

static void test_direct_cache_refuses_bad_arguments(void)
{
	static float vals[NK * WD];
	hps_direct d = {.first = FIRST, .count = NK, .width = WD, .vals = vals};
	hps_direct_cache *c = (hps_direct_cache *)&d;
	uint64_t keys[3] = {FIRST, FIRST + 5, FIRST + 9};
	uint32_t ev[3] = {8, 8, 8};
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, keys, ev, 3, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_open(NULL, keys, ev, 3, &c), HPS_EINVAL);
	CU_ASSERT_PTR_NULL(c); /* cleared on failure */
	CU_ASSERT_EQUAL(hps_direct_cache_open(&(hps_direct){.count = NK, .width = WD}, keys, ev, 3, &c), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&(hps_direct){.count = NK, .vals = vals}, keys, ev, 3, &c), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&(hps_direct){.width = WD, .vals = vals}, keys, ev, 0, &c), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, NULL, ev, 3, &c), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, keys, NULL, 3, &c), HPS_EINVAL);
	/* more keys than a handle names */
	CU_ASSERT_EQUAL(hps_direct_cache_open(&(hps_direct){.count = 0x80000001u, .width = 1, .vals = vals}, keys, ev, 0,
					      &c),
			HPS_EINVAL);
	uint64_t unsorted[3] = {FIRST + 5, FIRST, FIRST + 9}, twice[3] = {FIRST, FIRST + 5, FIRST + 5};
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, unsorted, ev, 3, &c), HPS_EKEYORDER);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, twice, ev, 3, &c), HPS_EKEYORDER);
	uint64_t below[1] = {FIRST - 1}, above[2] = {FIRST, FIRST + NK};
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, below, ev, 1, &c), HPS_ENOKEY);
	CU_ASSERT_EQUAL(hps_direct_cache_open(&d, above, ev, 2, &c), HPS_ENOKEY);
	CU_ASSERT_PTR_NULL(c);

	/* no keys at all: every handle is the key's own row */
	CU_ASSERT_EQUAL_FATAL(hps_direct_cache_open(&d, NULL, NULL, 0, &c), 0);
	uint32_t h = 7;
	CU_ASSERT_EQUAL(hps_direct_cache_handle(c, FIRST + NK, &h), HPS_ENOKEY);
	CU_ASSERT_EQUAL(hps_direct_cache_handle(c, FIRST - 1, &h), HPS_ENOKEY);
	CU_ASSERT_EQUAL(hps_direct_cache_handle(c, FIRST, NULL), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_handle(NULL, FIRST, &h), HPS_EINVAL);
	CU_ASSERT_EQUAL(hps_direct_cache_handle(c, FIRST + NK - 1, &h), 0);
	CU_ASSERT_EQUAL(h, NK - 1);
	hps_direct_cache_step(c);
	hps_direct_cache_close(c);
	/* NULL is a no-op for the rest */
	hps_direct_cache_step(NULL);
	hps_direct_cache_merge(NULL);
	hps_direct_cache_close(NULL);
	CU_ASSERT_PTR_NULL(hps_direct_cache_rows(NULL).base[0]);
}

/* ---- two workers of a job ----------------------------------------------- */

#define JK 512 /* keys 0 .. JK - 1, one direct range */
#define JW 4
#define ROUNDS 300
static const struct hpsi_key_span job_range[] = {{.first = 0, .last = JK - 1}};

/* Both workers copy every key and merge each every 1 to 32 steps.
 * Phase 1: worker r adds 1 to the keys of parity r only, so the two merge
 * the same rows but never the same float: nothing may be lost. Phase 2:
 * both add to every key; merges can then lose a float written by both in
 * the same instant, but never count a change twice. */
static int cache_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w, (void)arg;
	hps_direct d;
	if (hps_direct_map(ctx, 0, &d))
		return 1;
	uint64_t keys[JK];
	uint32_t every[JK];
	for (int k = 0; k < JK; k++)
		keys[k] = (uint64_t)k, every[k] = 1u << (k % 6); /* 1 .. 32 steps */
	hps_direct_cache *c;
	if (hps_direct_cache_open(&d, keys, every, JK, &c))
		return 2;
	hps_direct_rows r = hps_direct_cache_rows(c);
	uint32_t h[JK];
	for (int k = 0; k < JK; k++)
		if (hps_direct_cache_handle(c, (uint64_t)k, &h[k]) || !(h[k] & 0x80000000u))
			return 3;
	if (hps_barrier(ctx)) /* both copied the zeros before anyone merges */
		return 4;
	int me = hps_rank(ctx);
	for (int t = 0; t < ROUNDS; t++)
		for (int k = me; k < JK; k += 2) {
			float *p = hps_direct_row(&r, h[k]);
			for (int j = 0; j < JW; j++)
				p[j] += 1.0f;
			hps_direct_cache_step(c);
		}
	hps_direct_cache_merge(c);
	if (hps_barrier(ctx))
		return 5;
	for (int i = 0; i < JK * JW; i++)
		if (d.vals[i] != (float)ROUNDS)
			return 6;
	if (hps_barrier(ctx)) /* both checked before phase 2 writes */
		return 7;
	for (int t = 0; t < ROUNDS; t++)
		for (int k = 0; k < JK; k++) {
			float *p = hps_direct_row(&r, h[k]);
			for (int j = 0; j < JW; j++)
				p[j] += 1.0f;
			hps_direct_cache_step(c);
		}
	hps_direct_cache_close(c);
	if (hps_barrier(ctx))
		return 8;
	double sum = 0;
	for (int i = 0; i < JK * JW; i++) {
		if (d.vals[i] > 3.0f * ROUNDS) /* a change merged twice */
			return 9;
		sum += d.vals[i];
	}
	/* 99%: room for the rare float both merges wrote at once */
	return sum >= 0.99 * 3.0 * ROUNDS * JK * JW ? 0 : 10;
}

static void test_direct_cache_two_workers_merge_the_same_rows(void)
{
	setenv("HPS_DIRECT", "4", 1);
	setenv("HPS_UPDATER", "sum", 1);
	setenv("HPS_INIT", "zeros", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 2, &(struct job_opts){.ranges = job_range}), 0);
	pid_t a = job_fork_worker(&j, 0, JW, cache_worker, NULL);
	pid_t b = job_fork_worker(&j, 1, JW, cache_worker, NULL);
	CU_ASSERT_EQUAL(wait_exit(a, 30000), 0);
	CU_ASSERT_EQUAL(wait_exit(b, 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	unsetenv("HPS_DIRECT");
	unsetenv("HPS_UPDATER");
	unsetenv("HPS_INIT");
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_direct_cache_merges_each_change_once", test_direct_cache_merges_each_change_once},
		{"test_direct_cache_merges_each_key_on_its_period", test_direct_cache_merges_each_key_on_its_period},
		{"test_direct_cache_refuses_bad_arguments", test_direct_cache_refuses_bad_arguments},
		{"test_direct_cache_two_workers_merge_the_same_rows", test_direct_cache_two_workers_merge_the_same_rows},
		{NULL, NULL},
	};
	return run_suite("direct_cache", cases);
}
