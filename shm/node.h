/* Liveness of the nodes of a host group: who is alive, closed or dead, as
 * the node table in the segment says and the processes behind it confirm. */
#ifndef HPSI_NODE_H
#define HPSI_NODE_H

#include <stdint.h>

#include "shm/segment.h"

/* State of node id after checking its process: a node marked ALIVE whose
 * process is gone is marked DEAD here, and every node's bell is rung so
 * that waiters notice. */
uint32_t hpsi_node_check(struct hpsi_seg *seg, uint32_t id);

/* Marks a node DEAD (if it was not CLOSED) and wakes everyone. */
void hpsi_node_mark_dead(struct hpsi_seg *seg, uint32_t id);

/* Rings the bells of every node (a state change all must see). */
void hpsi_wake_all(struct hpsi_seg *seg);

#endif
