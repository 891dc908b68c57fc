/* Server-side updaters against double-precision references written from
 * the papers' formulas, initial values, and their configuration errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/common/config.h"
#include "runtime/server/updater.h"
#include "tests/harness.h"

#define KEYS 16
#define STEPS 300

/* Deterministic gradients in [-1, 1), some exactly zero. */
static float grad(int k, int t)
{
	unsigned x = (unsigned)(k * 7919 + t * 104729 + 17);
	x ^= x >> 13, x *= 0x5bd1e995u, x ^= x >> 15;
	if (x % 11 == 0)
		return 0.0f;
	return (float)((double)(x % 20001) / 10000.0 - 1.0);
}

struct ref {
	double w, a, b; /* weight and up to two state values */
};

static void ref_step(const struct hpsi_updater *u, struct ref *r, double g, int t)
{
	switch (u->kind) {
	case HPSI_UPD_SGD: r->w -= u->lr * (g + u->l2 * r->w); break;
	case HPSI_UPD_ADAGRAD:
		r->a += g * g;
		r->w -= u->lr * g / (sqrt(r->a) + u->eps);
		break;
	case HPSI_UPD_FTRL: { /* McMahan et al. 2013, Algorithm 1, per coordinate */
		double sigma = (sqrt(r->b + g * g) - sqrt(r->b)) / u->alpha;
		r->a += g - sigma * r->w; /* z */
		r->b += g * g;            /* n */
		r->w = fabs(r->a) <= u->l1 ? 0
					   : -(r->a - (r->a > 0 ? u->l1 : -u->l1)) / ((u->beta + sqrt(r->b)) / u->alpha + u->l2);
		break;
	}
	case HPSI_UPD_ADAM: { /* Kingma & Ba 2015, Algorithm 1 */
		r->a = u->beta1 * r->a + (1 - u->beta1) * g;
		r->b = u->beta2 * r->b + (1 - u->beta2) * g * g;
		double mh = u->bias_correction ? r->a / (1 - pow(u->beta1, t)) : r->a;
		double vh = u->bias_correction ? r->b / (1 - pow(u->beta2, t)) : r->b;
		r->w -= u->lr * mh / (sqrt(vh) + u->eps);
		break;
	}
	case HPSI_UPD_ASSIGN: r->w = g; break;
	default: r->w += g;
	}
}

/* Runs STEPS pushes on KEYS keys of width 3; returns the largest error
 * relative to max(1, |reference|). */
static double compare(const char *spec, int *zeros)
{
	struct hpsi_updater u;
	struct hpsi_init in;
	CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse(spec, "test", &u), 0);
	hpsi_init_parse("constant:value=0.25", "test", &in);
	double worst = 0;
	*zeros = 0;
	for (int k = 0; k < KEYS; k++) {
		float w[3], st[6], g[3];
		struct ref r[3];
		hpsi_init_values(&in, &u, (uint64_t)k, w, st, 3);
		for (int j = 0; j < 3; j++)
			r[j] = (struct ref){.w = 0.25, .a = u.kind == HPSI_UPD_ADAGRAD ? u.init_acc : 0};
		if (u.kind == HPSI_UPD_FTRL)
			for (int j = 0; j < 3; j++)
				r[j].a = -0.25 * (u.beta / u.alpha + u.l2);
		for (int t = 1; t <= STEPS; t++) {
			for (int j = 0; j < 3; j++)
				g[j] = grad(k * 3 + j, t);
			hpsi_updater_apply(&u, w, st, g, 3, (uint32_t)t);
			for (int j = 0; j < 3; j++)
				ref_step(&u, &r[j], g[j], t);
		}
		for (int j = 0; j < 3; j++) {
			double err = fabs(w[j] - r[j].w) / fmax(1.0, fabs(r[j].w));
			worst = fmax(worst, err);
			*zeros += w[j] == 0.0f && r[j].w == 0.0;
		}
	}
	return worst;
}

static void test_updater_matches_references(void)
{
	const char *specs[] = {"sum", "assign", "sgd:lr=0.05", "sgd:lr=0.05,l2=0.1", "adagrad:lr=0.1,eps=1e-6,init=0.1",
			       "ftrl:alpha=0.1,beta=1,l1=0,l2=0.5", "adam:lr=0.01", "adam:lr=0.01,bias=0,beta1=0.8"};
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		int zeros;
		double err = compare(specs[i], &zeros);
		if (err > 1e-4)
			fprintf(stderr, "%s: relative error %g\n", specs[i], err);
		CU_ASSERT(err <= 1e-4); /* float arithmetic over 300 steps */
	}
}

static void test_updater_ftrl_l1_gives_exact_zeros(void)
{
	int zeros;
	double err = compare("ftrl:alpha=0.1,beta=1,l1=30,l2=0", &zeros);
	CU_ASSERT(err <= 1e-4);
	CU_ASSERT(zeros > KEYS); /* most coordinates sit at exactly 0 */
	/* with no L1 none are exactly zero */
	compare("ftrl:alpha=0.1,beta=1,l1=0,l2=0", &zeros);
	CU_ASSERT(zeros < 3);
}

static void test_updater_bad_specs_refused(void)
{
	struct hpsi_updater u;
	struct hpsi_init in;
	CU_ASSERT_EQUAL(hpsi_updater_parse("rmsprop", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("sgd:lr=-1", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("sgd:lr=abc", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("sgd:momentum=0.9", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("adam:beta1=1", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("ftrl:alpha=0", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_updater_parse("adagrad:lr", "HPS_UPDATER", &u), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_init_parse("gaussian", "HPS_INIT", &in), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_init_parse("uniform:low=1,high=0", "HPS_INIT", &in), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_init_parse("normal:std=-1", "HPS_INIT", &in), HPS_ECONFIG);
	char buf[64];
	CU_ASSERT_PTR_NULL(hpsi_spec_for("sgd;adam", 2, buf, sizeof buf)); /* 2 specs, 3rd server */
	CU_ASSERT_STRING_EQUAL(hpsi_spec_for("sgd;adam:lr=0.1", 1, buf, sizeof buf), "adam:lr=0.1");
	CU_ASSERT_STRING_EQUAL(hpsi_spec_for("sgd", 5, buf, sizeof buf), "sgd");
	/* a server whose updater is wrong refuses to start, and says why */
	struct job j;
	setenv("HPS_UPDATER", "sgd:lr=2e9", 1);
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	unsetenv("HPS_UPDATER");
	CU_ASSERT_EQUAL(wait_exit(j.servers[0], 5000), 101);
	j.servers[0] = 0;
	job_stop(&j);
}

static void test_updater_init_distribution(void)
{
	struct hpsi_updater u;
	struct hpsi_init in;
	hpsi_updater_parse(NULL, "", &u);
	CU_ASSERT_EQUAL_FATAL(hpsi_init_parse("normal:mean=1,std=0.5,seed=3", "t", &in), 0);
	enum { N = 200000 };
	float *v = malloc(N * sizeof *v), again[8];
	hpsi_init_values(&in, &u, 99, v, NULL, N);
	double s = 0, s2 = 0;
	for (int i = 0; i < N; i++)
		s += v[i], s2 += (double)v[i] * v[i];
	double mean = s / N, sd = sqrt(s2 / N - mean * mean);
	CU_ASSERT(fabs(mean - 1) < 0.01 && fabs(sd - 0.5) < 0.01);
	hpsi_init_values(&in, &u, 99, again, NULL, 8);
	CU_ASSERT_EQUAL(memcmp(v, again, sizeof again), 0); /* same seed and key, same values */
	hpsi_init_values(&in, &u, 100, again, NULL, 8);
	CU_ASSERT_NOT_EQUAL(memcmp(v, again, sizeof again), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_init_parse("uniform:low=-2,high=3,seed=1", "t", &in), 0);
	hpsi_init_values(&in, &u, 5, v, NULL, N);
	float lo = 10, hi = -10;
	for (int i = 0; i < N; i++)
		lo = fminf(lo, v[i]), hi = fmaxf(hi, v[i]);
	CU_ASSERT(lo >= -2 && hi < 3 && lo < -1.99f && hi > 2.99f);
	free(v);
}

/* Pulls keys 0..99 (width 4) of a fresh job into out. */
static int pull_init_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	uint64_t keys[100];
	for (int i = 0; i < 100; i++)
		keys[i] = (uint64_t)i * 977;
	float *out = arg;
	return hps_wait(w, hps_pull(w, keys, 100, out, NULL)) ? 1 : 0;
}

static float *shared_floats(size_t n)
{
	return mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
}

static void test_updater_init_independent_of_servers(void)
{
	float *one = shared_floats(400), *three = shared_floats(400);
	setenv("HPS_INIT", "normal:std=0.1,seed=42", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 4, pull_init_worker, one), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 3, 1, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 4, pull_init_worker, three), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	unsetenv("HPS_INIT");
	CU_ASSERT_EQUAL(memcmp(one, three, 400 * sizeof(float)), 0);
	int nonzero = 0;
	for (int i = 0; i < 400; i++)
		nonzero += one[i] != 0;
	CU_ASSERT(nonzero > 390);
	munmap(one, 400 * sizeof(float));
	munmap(three, 400 * sizeof(float));
}

/* Key 5 lives on server 0 (sgd), key 500 on server 1 (adagrad). */
static int per_range_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t keys[2] = {5, 500};
	float g[2] = {1.0f, 2.0f}, got[2];
	for (int t = 0; t < 3; t++)
		if (hps_wait(w, hps_push(w, keys, 2, g, NULL)))
			return 1;
	if (hps_wait(w, hps_pull(w, keys, 2, got, NULL)))
		return 2;
	double sgd = 1.0 - 3 * 0.1 * 1.0, acc = 0, ada = 1.0;
	for (int t = 0; t < 3; t++) {
		acc += 4.0;
		ada -= 0.5 * 2.0 / (sqrt(acc) + 1e-8);
	}
	if (fabs(got[0] - sgd) > 1e-5 || fabs(got[1] - ada) > 1e-5) {
		fprintf(stderr, "got %g %g, want %g %g\n", got[0], got[1], sgd, ada);
		return 3;
	}
	return 0;
}

static void test_updater_chosen_per_key_range(void)
{
	static const struct hpsi_key_span r[2] = {{.first = 0, .last = 99}, {.first = 100, .last = 999}};
	setenv("HPS_UPDATER", "sgd:lr=0.1;adagrad:lr=0.5,eps=1e-8", 1);
	setenv("HPS_INIT", "constant:value=1", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, &(struct job_opts){.ranges = r}), 0);
	unsetenv("HPS_UPDATER");
	unsetenv("HPS_INIT");
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, per_range_worker, NULL), 20000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_updater_matches_references", test_updater_matches_references},
		{"test_updater_ftrl_l1_gives_exact_zeros", test_updater_ftrl_l1_gives_exact_zeros},
		{"test_updater_bad_specs_refused", test_updater_bad_specs_refused},
		{"test_updater_init_distribution", test_updater_init_distribution},
		{"test_updater_init_independent_of_servers", test_updater_init_independent_of_servers},
		{"test_updater_chosen_per_key_range", test_updater_chosen_per_key_range},
		{NULL, NULL},
	};
	return run_suite("updater", cases);
}
