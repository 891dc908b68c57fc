/* Internal state of a process in a job. */
#ifndef HPSI_CTX_H
#define HPSI_CTX_H

#include "hps/hps.h"
#include "runtime/config.h"
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

/* State of node id after checking its process: a node marked ALIVE whose
 * process is gone is marked DEAD here, and every node's bell is rung so
 * that waiters notice. */
uint32_t hpsi_node_check(struct hpsi_seg *seg, uint32_t id);

/* Marks a node DEAD (if it was not CLOSED) and wakes everyone. */
void hpsi_node_mark_dead(struct hpsi_seg *seg, uint32_t id);

/* Rings the bells of every node (a state change all must see). */
void hpsi_wake_all(struct hpsi_seg *seg);

#endif
