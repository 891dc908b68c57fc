#include "runtime/server/updater.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/common/log.h"
#include "net/route.h"

struct param {
	const char *name;
	double *at;
	double min, max; /* allowed, inclusive */
};

/* Reads "k=v,k=v" into the params; every key must be known and in range. */
static int parse_params(const char *s, struct param *ps, const char *setting, const char *what)
{
	while (s && *s) {
		const char *eq = strchr(s, '='), *end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		if (!eq || eq > end) {
			hpsi_error("%s: '%.*s' is not name=value (%s)", setting, (int)(end - s), s, what);
			return HPS_ECONFIG;
		}
		struct param *p = ps;
		while (p->name && !(strlen(p->name) == (size_t)(eq - s) && strncmp(p->name, s, (size_t)(eq - s)) == 0))
			p++;
		if (!p->name) {
			hpsi_error("%s: %s has no parameter '%.*s'", setting, what, (int)(eq - s), s);
			return HPS_ECONFIG;
		}
		char *num_end;
		double v = strtod(eq + 1, &num_end);
		if (num_end != end || !isfinite(v) || v < p->min || v > p->max) {
			hpsi_error("%s: %s %s=%.*s must be a number from %g to %g", setting, what, p->name,
				   (int)(end - eq - 1), eq + 1, p->min, p->max);
			return HPS_ECONFIG;
		}
		*p->at = v;
		s = *end ? end + 1 : end;
	}
	return 0;
}

/* Splits "name:params" into name (copied) and params. */
static const char *split_name(const char *spec, char *name, size_t cap)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	if (n >= cap)
		n = cap - 1;
	memcpy(name, spec, n);
	name[n] = 0;
	return colon ? colon + 1 : NULL;
}

const char *hpsi_updater_name(int kind)
{
	static const char *names[] = {"sum", "assign", "sgd", "adagrad", "ftrl", "adam"}; /* enum order */
	return kind >= 0 && (size_t)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

int hpsi_updater_parse(const char *spec, const char *setting, struct hpsi_updater *u)
{
	memset(u, 0, sizeof *u);
	u->lr = 0.01, u->eps = 1e-8, u->alpha = 0.05, u->beta = 1, u->beta1 = 0.9, u->beta2 = 0.999;
	u->bias_correction = 1;
	if (!spec || !*spec)
		return 0;
	char name[32];
	const char *params = split_name(spec, name, sizeof name);
	double bias = 1;
	struct param none[] = {{NULL, NULL, 0, 0}};
	struct param sgd[] = {{"lr", &u->lr, 0, 1e6}, {"l2", &u->l2, 0, 1e6}, {NULL, NULL, 0, 0}};
	struct param ada[] = {{"lr", &u->lr, 0, 1e6}, {"eps", &u->eps, 0, 1}, {"init", &u->init_acc, 0, 1e6},
			      {NULL, NULL, 0, 0}};
	struct param ftrl[] = {{"alpha", &u->alpha, 1e-12, 1e6}, {"beta", &u->beta, 0, 1e6},
			       {"l1", &u->l1, 0, 1e6}, {"l2", &u->l2, 0, 1e6}, {NULL, NULL, 0, 0}};
	struct param adam[] = {{"lr", &u->lr, 0, 1e6}, {"beta1", &u->beta1, 0, 0.999999},
			       {"beta2", &u->beta2, 0, 0.99999999}, {"eps", &u->eps, 0, 1},
			       {"bias", &bias, 0, 1}, {NULL, NULL, 0, 0}};
	struct {
		const char *name;
		int kind;
		struct param *ps;
		uint32_t state;
	} table[] = {{"sum", HPSI_UPD_SUM, none, 0},     {"assign", HPSI_UPD_ASSIGN, none, 0},
		     {"sgd", HPSI_UPD_SGD, sgd, 0},      {"adagrad", HPSI_UPD_ADAGRAD, ada, 1},
		     {"ftrl", HPSI_UPD_FTRL, ftrl, 2},   {"adam", HPSI_UPD_ADAM, adam, 2}};
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcmp(name, table[i].name) != 0)
			continue;
		u->kind = table[i].kind;
		u->state = table[i].state;
		int rc = parse_params(params, table[i].ps, setting, name);
		u->bias_correction = bias != 0;
		return rc;
	}
	hpsi_error("%s: unknown updater '%s' (sum, assign, sgd, adagrad, ftrl, adam)", setting, name);
	return HPS_ECONFIG;
}

int hpsi_init_parse(const char *spec, const char *setting, struct hpsi_init *in)
{
	memset(in, 0, sizeof *in);
	if (!spec || !*spec)
		return 0;
	char name[32];
	const char *params = split_name(spec, name, sizeof name);
	double seed = 0;
	int rc;
	if (strcmp(name, "zeros") == 0) {
		struct param ps[] = {{NULL, NULL, 0, 0}};
		rc = parse_params(params, ps, setting, name);
	} else if (strcmp(name, "constant") == 0) {
		in->kind = HPSI_INIT_CONSTANT;
		struct param ps[] = {{"value", &in->a, -1e30, 1e30}, {NULL, NULL, 0, 0}};
		rc = parse_params(params, ps, setting, name);
	} else if (strcmp(name, "uniform") == 0) {
		in->kind = HPSI_INIT_UNIFORM;
		in->a = -0.01, in->b = 0.01;
		struct param ps[] = {{"low", &in->a, -1e30, 1e30}, {"high", &in->b, -1e30, 1e30},
				     {"seed", &seed, 0, 9007199254740992.0}, {NULL, NULL, 0, 0}};
		rc = parse_params(params, ps, setting, name);
		if (!rc && in->a > in->b) {
			hpsi_error("%s: uniform low=%g is above high=%g", setting, in->a, in->b);
			rc = HPS_ECONFIG;
		}
	} else if (strcmp(name, "normal") == 0) {
		in->kind = HPSI_INIT_NORMAL;
		in->b = 0.01;
		struct param ps[] = {{"mean", &in->a, -1e30, 1e30}, {"std", &in->b, 0, 1e30},
				     {"seed", &seed, 0, 9007199254740992.0}, {NULL, NULL, 0, 0}};
		rc = parse_params(params, ps, setting, name);
	} else {
		hpsi_error("%s: unknown initialiser '%s' (zeros, constant, uniform, normal)", setting, name);
		return HPS_ECONFIG;
	}
	in->seed = (uint64_t)seed;
	return rc;
}

/* A uniform double in [0, 1) from (seed, key, index): counter-based, so
 * it needs no state and no order. */
static double unit(uint64_t seed, uint64_t key, uint64_t j)
{
	uint64_t h = hpsi_key_mix(hpsi_key_mix(seed ^ 0x5851f42d4c957f2dull) ^ key);
	h = hpsi_key_mix(h + j * 0x9e3779b97f4a7c15ull);
	return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* The initial values and the updaters, once for float and once for double
 * key ranges: the arithmetic is the same, only the element type differs. */
#define DEFINE_INIT(NAME, T)                                                                       \
	void NAME(const struct hpsi_init *in, const struct hpsi_updater *u, uint64_t key, T *w, T *state, \
		  uint32_t n)                                                                      \
	{                                                                                          \
		for (uint32_t j = 0; j < n; j++) {                                                 \
			double v;                                                                  \
			switch (in->kind) {                                                        \
			case HPSI_INIT_ZEROS: v = 0; break;                                        \
			case HPSI_INIT_CONSTANT: v = in->a; break;                                 \
			case HPSI_INIT_UNIFORM: v = in->a + (in->b - in->a) * unit(in->seed, key, j); break; \
			default: { /* Box-Muller from two uniforms of this (key, j) */             \
				double u1 = unit(in->seed, key, 2 * (uint64_t)j);                  \
				double u2 = unit(in->seed, key, 2 * (uint64_t)j + 1);              \
				v = in->a + in->b * sqrt(-2.0 * log(1.0 - u1)) * cos(2 * M_PI * u2); \
			}                                                                          \
			}                                                                          \
			w[j] = (T)v;                                                               \
		}                                                                                  \
		uint32_t ns = n * u->state;                                                        \
		for (uint32_t j = 0; j < ns; j++)                                                  \
			state[j] = u->kind == HPSI_UPD_ADAGRAD ? (T)u->init_acc : (T)0;            \
		if (u->kind == HPSI_UPD_FTRL) /* z consistent with w = -z / (beta/alpha + l2) */   \
			for (uint32_t j = 0; j < n; j++)                                           \
				state[j] = (T)(-w[j] * (u->beta / u->alpha + u->l2));              \
	}

DEFINE_INIT(hpsi_init_values, float)
DEFINE_INIT(hpsi_init_values64, double)

#define DEFINE_APPLY(NAME, T, SQRT)                                                                \
	void NAME(const struct hpsi_updater *u, T *restrict w, T *restrict st, const T *restrict g, uint32_t n, \
		  uint32_t step)                                                                   \
	{                                                                                          \
		switch (u->kind) {                                                                 \
		case HPSI_UPD_SUM:                                                                 \
			for (uint32_t j = 0; j < n; j++)                                           \
				w[j] += g[j];                                                      \
			break;                                                                     \
		case HPSI_UPD_ASSIGN:                                                              \
			for (uint32_t j = 0; j < n; j++)                                           \
				w[j] = g[j];                                                       \
			break;                                                                     \
		case HPSI_UPD_SGD: {                                                               \
			T lr = (T)u->lr, l2 = (T)u->l2;                                            \
			for (uint32_t j = 0; j < n; j++)                                           \
				w[j] -= lr * (g[j] + l2 * w[j]);                                   \
			break;                                                                     \
		}                                                                                  \
		case HPSI_UPD_ADAGRAD: {                                                           \
			T lr = (T)u->lr, eps = (T)u->eps;                                          \
			for (uint32_t j = 0; j < n; j++) {                                         \
				st[j] += g[j] * g[j];                                              \
				w[j] -= lr * g[j] / (SQRT(st[j]) + eps);                           \
			}                                                                          \
			break;                                                                     \
		}                                                                                  \
		case HPSI_UPD_FTRL: { /* st: z[n], then n[n] (sum of squared gradients) */         \
			T *z = st, *acc = st + n;                                                  \
			for (uint32_t j = 0; j < n; j++) {                                         \
				double gj = g[j], nn = acc[j] + gj * gj;                           \
				double sigma = (sqrt(nn) - sqrt((double)acc[j])) / u->alpha;       \
				z[j] += (T)(gj - sigma * w[j]);                                    \
				acc[j] = (T)nn;                                                    \
				double zj = z[j];                                                  \
				w[j] = fabs(zj) <= u->l1 ? (T)0                                    \
							 : (T)(-(zj - copysign(u->l1, zj)) /       \
							       ((u->beta + sqrt(nn)) / u->alpha + u->l2)); \
			}                                                                          \
			break;                                                                     \
		}                                                                                  \
		case HPSI_UPD_ADAM: { /* st: m[n], then v[n] */                                    \
			T *m = st, *v = st + n;                                                    \
			double c1 = u->bias_correction ? 1.0 - pow(u->beta1, step) : 1.0;          \
			double c2 = u->bias_correction ? 1.0 - pow(u->beta2, step) : 1.0;          \
			T b1 = (T)u->beta1, b2 = (T)u->beta2;                                      \
			for (uint32_t j = 0; j < n; j++) {                                         \
				m[j] = b1 * m[j] + (1 - b1) * g[j];                                \
				v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];                         \
				double mh = m[j] / c1, vh = v[j] / c2;                             \
				w[j] -= (T)(u->lr * mh / (sqrt(vh) + u->eps));                     \
			}                                                                          \
			break;                                                                     \
		}                                                                                  \
		}                                                                                  \
	}

DEFINE_APPLY(hpsi_updater_apply, float, sqrtf)
DEFINE_APPLY(hpsi_updater_apply64, double, sqrt)
