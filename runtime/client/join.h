/* A worker that joins a running job (HPS_JOIN=1, or started by `hps
 * scale --workers`): it takes a free rank of the room `hps launch
 * --max-workers` made and starts at the slowest member's clock (design:
 * docs/ARCHITECTURE.md, "Workers that join"). */
#ifndef HPSI_JOIN_H
#define HPSI_JOIN_H

#include <stdint.h>

struct hps_ctx;
struct hpsi_seg;

/* In hps_init of a worker with HPS_JOIN=1, before the node is claimed:
 * claims the lowest VACANT worker slot (VACANT -> EMPTY), sets the ctx's
 * rank and node, and its start clock (resume_clock). HPS_EEXIST (logged)
 * when every slot was given out. */
int hpsi_join_claim(struct hps_ctx *c);

/* hpsi_members_min_clock: shm/node.h (the bridge's look uses it too) */

/* Worker ranks given out: the slots not VACANT (launched or joined,
 * whether they closed since or not). */
uint32_t hpsi_workers_given(const struct hpsi_seg *seg);

/* The workers that are members now: launched or joined, not closed nor
 * dead for good (a worker the launcher restarts counts). */
uint32_t hpsi_workers_current(struct hpsi_seg *seg);
/* The worker slot whose joined process is pid (ALIVE or later), or -1. */
int hpsi_worker_slot_of(const struct hpsi_seg *seg, int pid);

/* Bumps the membership epoch (release) and wakes every node. */
void hpsi_members_changed(struct hpsi_seg *seg);

#endif
