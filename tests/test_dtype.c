/* Value types: f16/bf16 conversions (rounding, limits, every pattern),
 * f64 key ranges end to end, compressed f32 key ranges, and the errors of
 * mixing them up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/common/dtype.h"
#include "runtime/common/config.h"
#include "tests/harness.h"

static void test_dtype_half_patterns_round_trip(void)
{
	int bad = 0;
	for (uint32_t h = 0; h < 65536; h++) {
		float f = hpsi_f16_to_f32((uint16_t)h);
		uint16_t back = hpsi_f32_to_f16(f);
		if (isnan(f))
			bad += !isnan(hpsi_f16_to_f32(back));
		else
			bad += back != h;
		float g = hpsi_bf16_to_f32((uint16_t)h);
		uint16_t bback = hpsi_f32_to_bf16(g);
		if (isnan(g))
			bad += !isnan(hpsi_bf16_to_f32(bback));
		else
			bad += bback != h;
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* h is the nearest value to x, and on a tie the one with an even last bit. */
static int nearest(float x, uint16_t h, float (*to32)(uint16_t))
{
	double d = fabs((double)to32(h) - x);
	for (int k = -1; k <= 1; k += 2) {
		float n = to32((uint16_t)(h + k));
		if (isnan(n) || isinf(n))
			continue;
		double dn = fabs((double)n - x);
		if (dn < d || (dn == d && (h & 1)))
			return 0;
	}
	return 1;
}

static void test_dtype_rounding_to_nearest_even(void)
{
	srand(11);
	int bad = 0;
	for (int i = 0; i < 200000; i++) {
		uint32_t bits = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
		float x = hpsi_bits_f32(bits);
		if (isnan(x) || isinf(x))
			continue;
		if (fabsf(x) < 65504.0f)
			bad += !nearest(x, hpsi_f32_to_f16(x), hpsi_f16_to_f32);
		if (fabsf(x) < 3.0e38f)
			bad += !nearest(x, hpsi_f32_to_bf16(x), hpsi_bf16_to_f32);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(65504.0f), 0x7bff);
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(65519.0f), 0x7bff);
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(65520.0f), 0x7c00); /* rounds to infinity */
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(-INFINITY), 0xfc00);
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(ldexpf(1, -24)), 0x0001); /* smallest subnormal */
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(ldexpf(1, -25)), 0x0000); /* tie: to even (zero) */
	CU_ASSERT_EQUAL(hpsi_f32_to_f16(ldexpf(3, -26)), 0x0001);
	CU_ASSERT(isnan(hpsi_f16_to_f32(hpsi_f32_to_f16(NAN))));
	CU_ASSERT(isnan(hpsi_bf16_to_f32(hpsi_f32_to_bf16(NAN))));
	CU_ASSERT_EQUAL(hpsi_f32_to_bf16(1.0f), 0x3f80);
}

static int f64_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 300 };
	uint64_t keys[N];
	double v[N], got[N];
	for (int i = 0; i < N; i++)
		keys[i] = (uint64_t)i * 13, v[i] = 1.0 + 1e-12 * i; /* not representable in f32 */
	hps_opts o = {.dtype = HPS_F64};
	for (int r = 0; r < 3; r++)
		if (hps_wait(w, hps_push(w, keys, N, v, &o)))
			return 1;
	if (hps_wait(w, hps_pull(w, keys, N, got, &o)))
		return 2;
	for (int i = 0; i < N; i++)
		if (got[i] != v[i] + v[i] + v[i])
			return 3;
	/* variable lengths in f64 */
	uint32_t lens[2] = {2, 3}, out_lens[2];
	uint64_t k2[2] = {100000, 100001};
	double lv[5] = {0.1, 0.2, 0.3, 0.4, 0.5}, lg[8];
	if (hps_wait(w, hps_push(w, k2, 2, lv, &(hps_opts){.dtype = HPS_F64, .lens = lens})))
		return 4;
	if (hps_wait(w, hps_pull(w, k2, 2, lg, &(hps_opts){.dtype = HPS_F64, .out_lens = out_lens, .vals_cap = 8})))
		return 5;
	if (out_lens[0] != 2 || out_lens[1] != 3 || memcmp(lg, lv, sizeof lv))
		return 6;
	/* f32 values into an f64 key range are refused before anything is sent */
	float f[N];
	if (hps_push(w, keys, N, f, NULL) != HPS_EINVAL)
		return 7;
	return 0;
}

static void test_dtype_f64_key_ranges(void)
{
	setenv("HPS_DTYPE", "f64", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, NULL), 0);
	unsetenv("HPS_DTYPE");
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, f64_worker, NULL), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static int sgd64_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k = 7;
	double g = 1e-9, got, want = 0;
	hps_opts o = {.dtype = HPS_F64};
	for (int t = 0; t < 10; t++) {
		if (hps_wait(w, hps_push(w, &k, 1, &g, &o)))
			return 1;
		want -= 0.5 * (g + 0.1 * want);
	}
	if (hps_wait(w, hps_pull(w, &k, 1, &got, &o)))
		return 2;
	return fabs(got - want) <= 1e-24 ? 0 : 3; /* f32 could not even hold 1e-9 steps this finely */
}

static void test_dtype_f64_updater(void)
{
	setenv("HPS_DTYPE", "f64", 1);
	setenv("HPS_UPDATER", "sgd:lr=0.5,l2=0.1", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	unsetenv("HPS_DTYPE");
	unsetenv("HPS_UPDATER");
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, sgd64_worker, NULL), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Keys on server 0 travel as f16, on server 1 as bf16 (declared ranges):
 * the server sums in f32 what arrives rounded, answers rounded. */
static int packed_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	enum { N = 4 };
	uint64_t keys[N] = {1, 2, 1001, 1002};
	float v[N] = {0.1f, 3.14159f, 0.1f, 3.14159f}, got[N];
	float sum[N] = {0};
	for (int r = 0; r < 100; r++) {
		if (hps_wait(w, hps_push(w, keys, N, v, NULL)))
			return 1;
		for (int i = 0; i < N; i++)
			sum[i] += i < 2 ? hpsi_f16_to_f32(hpsi_f32_to_f16(v[i])) : hpsi_bf16_to_f32(hpsi_f32_to_bf16(v[i]));
	}
	if (hps_wait(w, hps_pull(w, keys, N, got, NULL)))
		return 2;
	for (int i = 0; i < N; i++) {
		float want = i < 2 ? hpsi_f16_to_f32(hpsi_f32_to_f16(sum[i])) : hpsi_bf16_to_f32(hpsi_f32_to_bf16(sum[i]));
		if (got[i] != want) {
			fprintf(stderr, "key %llu: got %.9g want %.9g\n", (unsigned long long)keys[i], got[i], want);
			return 3;
		}
	}
	/* a large request (heap path) and variable lengths, compressed */
	enum { M = 50000 };
	uint64_t *mk = malloc(M * sizeof *mk);
	float *mv = malloc(M * sizeof *mv), *mg = malloc(M * sizeof *mg);
	for (int i = 0; i < M; i++)
		mk[i] = 5000 + (uint64_t)i, mv[i] = (float)(i % 100) * 0.25f; /* exact in f16 and bf16 */
	if (hps_wait(w, hps_pushpull(w, mk, M, mv, mg, NULL)))
		return 4;
	for (int i = 0; i < M; i++)
		if (mg[i] != mv[i])
			return 5;
	uint32_t lens[2] = {3, 1}, ol[2];
	uint64_t lk[2] = {10, 2000};
	float lv[4] = {0.5f, 1.5f, 2.5f, 8.0f}, lg[4];
	if (hps_wait(w, hps_push(w, lk, 2, lv, &(hps_opts){.lens = lens})) ||
	    hps_wait(w, hps_pull(w, lk, 2, lg, &(hps_opts){.out_lens = ol, .vals_cap = 4})))
		return 6;
	if (ol[0] != 3 || ol[1] != 1 || memcmp(lg, lv, sizeof lv))
		return 7;
	free(mk), free(mv), free(mg);
	return 0;
}

static void test_dtype_compressed_key_ranges(void)
{
	static const struct hpsi_key_span r[2] = {{.first = 0, .last = 999}, {.first = 1000, .last = UINT64_MAX}};
	setenv("HPS_COMPRESS", "f16;bf16", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, &(struct job_opts){.ranges = r}), 0);
	unsetenv("HPS_COMPRESS");
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, packed_worker, NULL), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static void test_dtype_bad_settings(void)
{
	uint32_t d[4], w[4];
	setenv("HPS_DTYPE", "f128", 1);
	CU_ASSERT_EQUAL(hpsi_config_value_types(1, d, w), HPS_ECONFIG);
	setenv("HPS_DTYPE", "f64", 1);
	setenv("HPS_COMPRESS", "f16", 1);
	CU_ASSERT_EQUAL(hpsi_config_value_types(1, d, w), HPS_ECONFIG); /* compression is for f32 */
	setenv("HPS_DTYPE", "f32;f64", 1);
	setenv("HPS_COMPRESS", "bf16;none", 1);
	CU_ASSERT_EQUAL(hpsi_config_value_types(2, d, w), 0);
	CU_ASSERT(d[0] == HPSI_WIRE_F32 && w[0] == HPSI_WIRE_BF16 && d[1] == HPSI_WIRE_F64 && w[1] == HPSI_WIRE_F64);
	CU_ASSERT_EQUAL(hpsi_config_value_types(3, d, w), HPS_ECONFIG); /* 2 entries, 3 servers */
	setenv("HPS_COMPRESS", "zip", 1);
	CU_ASSERT_EQUAL(hpsi_config_value_types(1, d, w), HPS_ECONFIG);
	unsetenv("HPS_DTYPE");
	unsetenv("HPS_COMPRESS");
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_dtype_half_patterns_round_trip", test_dtype_half_patterns_round_trip},
		{"test_dtype_rounding_to_nearest_even", test_dtype_rounding_to_nearest_even},
		{"test_dtype_f64_key_ranges", test_dtype_f64_key_ranges},
		{"test_dtype_f64_updater", test_dtype_f64_updater},
		{"test_dtype_compressed_key_ranges", test_dtype_compressed_key_ranges},
		{"test_dtype_bad_settings", test_dtype_bad_settings},
		{NULL, NULL},
	};
	return run_suite("dtype", cases);
}
