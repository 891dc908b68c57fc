/* The shape of a job that every layer agrees on: how many nodes, how long
 * a name, how keys are split. Settings (config.h) parse into these; the
 * segment (shm/segment.h) lays itself out by them. */
#ifndef HPSI_LIMITS_H
#define HPSI_LIMITS_H

#include <stdint.h>

#define HPSI_MAX_NODES 256
#define HPSI_NAME_MAX 64
#define HPSI_MAX_REPLICAS 3 /* backups per key range (HPS_REPLICAS) */

enum hpsi_range_mode {
	HPSI_RANGE_HASH = 0,     /* even split of a mixed key: spreads any key set */
	HPSI_RANGE_DECLARED = 1, /* [first, last] per server, given by the job */
};

/* The keys of one declared range, inclusive. */
struct hpsi_key_span {
	uint64_t first, last;
};

#endif
