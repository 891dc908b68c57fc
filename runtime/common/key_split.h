/* Declared key ranges of a job with room for more servers (HPS_KEY_RANGES
 * with HPS_MAX_SERVERS above HPS_NUM_SERVERS): the S declared ranges are
 * cut into M movable key ranges, declared range i into its share of M
 * (floor or ceil of M / S, hpsi_key_split_count), so that server i of
 * the launch serves exactly the keys it was declared, and a scale moves
 * whole pieces, each about 1/M of the keys when the keys spread over
 * their declared ranges (docs/ARCHITECTURE.md, "Elastic servers"). */
#ifndef HPSI_KEY_SPLIT_H
#define HPSI_KEY_SPLIT_H

#include <stdint.h>

#include "runtime/common/limits.h"

/* The pieces declared range i of S becomes with M key ranges: floor(M /
 * S), plus one for the first M mod S ranges (the share of a rank in
 * shm/slots.h, so the launch's owner table is balanced). */
static inline uint32_t hpsi_key_split_count(uint32_t i, uint32_t S, uint32_t M)
{
	return M / S + (i < M % S);
}

/* Cuts the S ranges of declared[] into M >= S ascending pieces out[0..M):
 * declared range i's pieces follow those of i - 1, each piece as wide as
 * the others of its range or one key wider. HPS_ECONFIG (one line said)
 * when a declared range holds fewer keys than its pieces. */
int hpsi_key_split(const struct hpsi_key_span *declared, uint32_t S, uint32_t M, struct hpsi_key_span *out);

#endif
