/* Internal state of a process in a job. */
#ifndef HPSI_CTX_H
#define HPSI_CTX_H

#include "hps/hps.h"
#include "runtime/common/config.h"
#include "shm/node.h"
#include "shm/segment.h"

struct hps_ctx {
	struct hpsi_config cfg;
	struct hpsi_seg seg;
	uint32_t node;     /* this process's node id in the segment */
	int64_t timeout_ns;
	int64_t spin_ns;
	int spin_yield; /* the job has more processes than this host has CPUs */
	struct hps_worker *worker;
};

#endif
