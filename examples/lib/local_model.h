/* The model of the in-process mini-batch baseline (--local-batch): every
 * key's weights in one dense array, the optimizer state the servers keep
 * beside them, and each key's push count, updated by the very updater
 * and initialiser code the servers run (runtime/server/updater.c, linked
 * from libhps.a). So a run with --local-batch applies the same arithmetic
 * to the same gradients as one worker with the parameter server, minus
 * the server. A user program would not reach into libhps like this; the
 * baseline does so that the comparison measures only the server. */
#ifndef HPS_EX_LOCAL_MODEL_H
#define HPS_EX_LOCAL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/server/updater.h"

struct ex_local_model {
	struct hpsi_updater upd;
	float *w;         /* nkeys x width: key k's weights at w + k * width */
	float *state;     /* nkeys x width x upd.state: the optimizer's floats per weight */
	uint32_t *steps;  /* pushes per key (Adam's bias correction) */
	uint64_t nkeys;
	uint32_t width;
};

/* 0 when updater and init are specs as hps launch --updater and --init
 * take them (init NULL: zeros); else -1 with a message in err (the
 * parsers log the reason). */
int ex_local_model_check(const char *updater, const char *init, char *err, size_t errcap);

/* A model of nkeys x width weights from checked specs. Out of memory:
 * writes a message into err and returns -1. */
int ex_local_model_init(struct ex_local_model *m, const char *updater, const char *init, uint64_t nkeys,
			uint32_t width, char *err, size_t errcap);
void ex_local_model_free(struct ex_local_model *m);

/* Applies the gradient g (width floats) to key's weights, as a server
 * applies one key of a push. */
static inline void ex_local_model_apply(struct ex_local_model *m, uint64_t key, const float *g)
{
	size_t at = (size_t)key * m->width;
	hpsi_updater_apply(&m->upd, m->w + at, m->state + at * m->upd.state, g, m->width, ++m->steps[key]);
}

#endif
