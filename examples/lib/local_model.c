#include "examples/lib/local_model.h"

#include <stdio.h>
#include <stdlib.h>

int ex_local_model_check(const char *updater, const char *init, char *err, size_t errcap)
{
	struct hpsi_updater u;
	struct hpsi_init in;
	/* the parsers log what is wrong with a spec, naming the option */
	if (hpsi_updater_parse(updater, "--updater", &u)) {
		snprintf(err, errcap, "--updater '%s' is not an updater spec (see above)", updater ? updater : "");
		return -1;
	}
	if (hpsi_init_parse(init, "--init", &in)) {
		snprintf(err, errcap, "--init '%s' is not an initialiser spec (see above)", init ? init : "");
		return -1;
	}
	return 0;
}

int ex_local_model_init(struct ex_local_model *m, const char *updater, const char *init, uint64_t nkeys,
			uint32_t width, char *err, size_t errcap)
{
	*m = (struct ex_local_model){.nkeys = nkeys, .width = width};
	struct hpsi_init in;
	if (ex_local_model_check(updater, init, err, errcap) || hpsi_updater_parse(updater, "--updater", &m->upd) ||
	    hpsi_init_parse(init, "--init", &in))
		return -1;
	size_t n = (size_t)nkeys * width;
	m->w = malloc(n * sizeof *m->w);
	m->state = malloc((n * m->upd.state + 1) * sizeof *m->state);
	m->steps = calloc(nkeys, sizeof *m->steps);
	if (!m->w || !m->state || !m->steps) {
		ex_local_model_free(m);
		snprintf(err, errcap, "out of memory for %llu keys", (unsigned long long)nkeys);
		return -1;
	}
	for (uint64_t k = 0; k < nkeys; k++)
		hpsi_init_values(&in, &m->upd, k, m->w + k * width, m->state + k * width * m->upd.state, width);
	return 0;
}

void ex_local_model_free(struct ex_local_model *m)
{
	free(m->w), free(m->state), free(m->steps);
	m->w = m->state = NULL;
	m->steps = NULL;
}
