/* Server-side updaters and initial values, chosen per key range (per
 * server): what a push does to the stored values, and what a key holds
 * before its first push.
 *
 * Specs are "name" or "name:param=value,...":
 *   sum                                   w += g (default)
 *   assign                                w = g
 *   sgd:lr=0.01,l2=0                      w -= lr (g + l2 w)
 *   adagrad:lr=0.01,eps=1e-8,init=0       a += g^2; w -= lr g / (sqrt(a) + eps)
 *   ftrl:alpha=0.05,beta=1,l1=0,l2=0      FTRL-Proximal (McMahan et al. 2013)
 *   adam:lr=0.001,beta1=0.9,beta2=0.999,eps=1e-8,bias=1
 * and for initial values:
 *   zeros | constant:value=V | uniform:low=-0.01,high=0.01,seed=S
 *   | normal:mean=0,std=0.01,seed=S
 * Random initial values depend only on (seed, key, index), so a job starts
 * from the same model however its keys are spread over servers. */
#ifndef HPSI_UPDATER_H
#define HPSI_UPDATER_H

#include <stddef.h>
#include <stdint.h>

enum hpsi_updater_kind { HPSI_UPD_SUM, HPSI_UPD_ASSIGN, HPSI_UPD_SGD, HPSI_UPD_ADAGRAD, HPSI_UPD_FTRL, HPSI_UPD_ADAM };

struct hpsi_updater {
	int kind;
	double lr, l2, eps, init_acc;      /* sgd, adagrad, adam */
	double alpha, beta, l1;            /* ftrl (also l2) */
	double beta1, beta2;               /* adam */
	int bias_correction;
	uint32_t state; /* optimizer floats kept per value float */
};

enum hpsi_init_kind { HPSI_INIT_ZEROS, HPSI_INIT_CONSTANT, HPSI_INIT_UNIFORM, HPSI_INIT_NORMAL };

struct hpsi_init {
	int kind;
	double a, b; /* constant: value; uniform: low, high; normal: mean, std */
	uint64_t seed;
};

/* The spec name of an updater kind ("sum", "adagrad", ...; "unknown"). */
const char *hpsi_updater_name(int kind);

/* Parse a spec; NULL or "" gives the default. Errors are logged naming
 * `setting` and return HPS_ECONFIG. */
int hpsi_updater_parse(const char *spec, const char *setting, struct hpsi_updater *u);
int hpsi_init_parse(const char *spec, const char *setting, struct hpsi_init *in);

/* Starting state of n value floats: weights w, optimizer state (n * state
 * floats) after them. */
void hpsi_init_values(const struct hpsi_init *in, const struct hpsi_updater *u, uint64_t key, float *w,
		      float *state, uint32_t n);

/* Applies a pushed gradient g to n weights; `step` counts this key's
 * pushes including this one (Adam's bias correction). */
void hpsi_updater_apply(const struct hpsi_updater *u, float *w, float *state, const float *g, uint32_t n,
			uint32_t step);

/* The same for f64 key ranges. */
void hpsi_init_values64(const struct hpsi_init *in, const struct hpsi_updater *u, uint64_t key, double *w,
			double *state, uint32_t n);
void hpsi_updater_apply64(const struct hpsi_updater *u, double *w, double *state, const double *g, uint32_t n,
			  uint32_t step);

#endif
