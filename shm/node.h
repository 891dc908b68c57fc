/* Liveness of the nodes of a host group: who is alive, closed or dead, as
 * the node table in the segment says and the processes behind it confirm. */
#ifndef HPSI_NODE_H
#define HPSI_NODE_H

#include <stdint.h>

#include "shm/segment.h"

#include <stdatomic.h>

/* State of node id after checking its process: a node marked ALIVE whose
 * process is gone is marked DEAD here, and every node's bell is rung so
 * that waiters notice. A check reads /proc (three system calls): callers
 * that wake often check at most once per period, and read the table in
 * between (hpsi_node_state), so that a job of N processes does not make
 * N x N checks per wake-up. */
uint32_t hpsi_node_check(struct hpsi_seg *seg, uint32_t id);

/* Whether the caller should check the processes of the workers
 * (HPSI_PROBE_WORKERS) or of the servers (HPSI_PROBE_SERVERS) now: at most
 * once per period_ns for the whole host group, by the first process that
 * asks after it passed; the others read the node table, where that check
 * marks the dead (and wakes everyone). Every waiter checking every peer
 * cost a 64 x 64 job about 100,000 reads of /proc a second. */
enum { HPSI_PROBE_WORKERS = 0, HPSI_PROBE_SERVERS = 1 };
int hpsi_probe_due(struct hpsi_seg *seg, int group, int64_t period_ns);

/* State of node id as the node table holds it, without a system call:
 * acquire pairs with the stores of the state (struct hpsi_node). */
static inline uint32_t hpsi_node_state(const struct hpsi_seg *seg, uint32_t id)
{
	return atomic_load_explicit(&hpsi_seg_node(seg, id)->state, memory_order_acquire);
}

/* State of worker node id (hpsi_node_check when probe, else the table),
 * read as HPSI_NODE_RESTARTING while it is dead but the launcher may still
 * restart it (hdr worker_restarts above 0). worker_restarts is acquired
 * before the state: seeing the launcher's decrement means seeing its
 * RESTARTING (or what the restarted process stored since), so a worker
 * that comes back is never taken for finished. */
uint32_t hpsi_worker_state(struct hpsi_seg *seg, uint32_t id, int probe);
/* Marks a node DEAD (if it was not CLOSED) and wakes everyone. */
void hpsi_node_mark_dead(struct hpsi_seg *seg, uint32_t id);

/* Rings the bells of every node (a state change all must see). */
void hpsi_wake_all(struct hpsi_seg *seg);

/* The slowest member's clock: the least clock_done of the worker slots
 * that are members (not VACANT, CLOSED or DEAD for good, nor a joiner
 * still claiming: EMPTY above the launched workers), but `except`; 0 when
 * there is none. Across hosts, the clock_done of
 * another host's worker is the largest clock its messages brought this
 * host's servers (net/bridge_deliver.c). */
uint32_t hpsi_members_min_clock(struct hpsi_seg *seg, uint32_t except);

/* Bumps the membership epoch (release) before a change that
 * hps_num_servers or hps_num_workers counts is stored (release): a
 * program that sees the count changed sees the epoch moved, whichever
 * it reads first. A bump after the change (hpsi_members_changed) follows. */
void hpsi_members_changing(struct hpsi_seg *seg);

/* A claimed slot's floor: bumps members_seq (seq_cst), issues a seq_cst
 * fence, then reads hpsi_members_min_clock(seg, except). The bump and the
 * fence are the claimer's half of the Dekker pair with a server's fence
 * before it loads members_seq (runtime/client/join.c has why that keeps
 * the SSP bound); the joiner plays it on its host, a bridge on the others
 * (net/bridge_join.c). */
uint32_t hpsi_members_claim_floor(struct hpsi_seg *seg, uint32_t except);

/* A joiner's join_clock while it waits for the other hosts' floor of its
 * start clock (a job across hosts): its host's bridge replaces it with
 * the floor (runtime/client/join.c, net/bridge_join.c). */
#define HPSI_JOIN_WAIT UINT32_MAX

#endif
