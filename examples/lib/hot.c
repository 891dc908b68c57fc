#include "examples/lib/hot.h"

#include <stdlib.h>

int ex_copy_keys(const uint32_t *count, uint64_t nkeys, uint64_t updates, uint32_t uses, uint64_t **keys,
		 uint32_t **every, size_t *n)
{
	*keys = NULL;
	*every = NULL;
	*n = 0;
	if (!uses)
		return 0;
	size_t used = 0;
	for (uint64_t k = 0; k < nkeys; k++)
		used += count[k] != 0;
	if (!used)
		return 0;
	*keys = malloc(used * sizeof **keys);
	*every = malloc(used * sizeof **every);
	if (!*keys || !*every) {
		free(*keys), free(*every);
		*keys = NULL, *every = NULL;
		return -1;
	}
	for (uint64_t k = 0; k < nkeys; k++) {
		if (!count[k])
			continue;
		/* a period longer than the epoch would never come: such keys
		 * are merged with all the others at its end */
		double p = (double)uses * (double)updates / count[k];
		(*keys)[*n] = k;
		(*every)[(*n)++] = p > (double)updates || p > 0x40000000 ? 0 : (uint32_t)(p + 0.5);
	}
	return 0;
}
