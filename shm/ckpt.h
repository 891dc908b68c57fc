/* The servers' part of a checkpoint, as one requester on a host asks for
 * it through the segment header (the fields and their ordering are in
 * shm/segment.h): the one-host requester (runtime/server/checkpoint.c) and,
 * in a job across hosts, each host's bridge (net/bridge_ckpt.c). */
#ifndef HPSI_CKPT_H
#define HPSI_CKPT_H

#include <stdatomic.h>
#include <stdint.h>

#include "shm/segment.h"

/* Takes a lock word between processes (ckpt_lock, xck_lock) for the
 * calling process: 0, or HPS_EEXIST with the holder's pid in *holder. A
 * holder that died half-way is replaced. Taking it acquires, pairing with
 * hpsi_ckpt_unlock's release: the last holder's writes to the fields the
 * lock guards happen before ours. */
int hpsi_ckpt_lock(_Atomic int32_t *lock, int32_t *holder);
void hpsi_ckpt_unlock(_Atomic int32_t *lock);

/* Asks every server of this segment for op on dir (the caller holds
 * ckpt_lock): writes the request, clears the answers, bumps ckpt_seq with
 * release and wakes the servers. */
void hpsi_ckpt_post(struct hpsi_seg *seg, int op, const char *dir);

#endif
