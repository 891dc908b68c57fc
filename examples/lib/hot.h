/* Which keys a HOGWILD worker keeps its own copies of (hps_direct_cache),
 * and how often it merges each. */
#ifndef HPS_EX_HOT_H
#define HPS_EX_HOT_H

#include <stddef.h>
#include <stdint.h>

/* Every key k < nkeys that this worker's data uses (count[k] of its
 * `updates` examples per epoch use k), with the period that merges k after
 * about `uses` of the worker's own uses of it: every = uses * updates /
 * count[k] examples. So a frequent key's copy is at most `uses` updates
 * behind the others' changes (the bias, used by every example, merges
 * every `uses` examples), and a merge walks a rare key only as often as
 * the worker touches it, so that merging costs about 1/uses of the
 * updates' own work. A key whose period would be longer than the epoch
 * gets 0: merged only at the end of an epoch (hps_direct_cache_merge).
 * Ascending keys and their periods in malloc'd arrays (NULL and 0 when
 * none); returns -1 when out of memory. uses == 0 selects none. */
int ex_copy_keys(const uint32_t *count, uint64_t nkeys, uint64_t updates, uint32_t uses, uint64_t **keys,
		 uint32_t **every, size_t *n);

#endif
