/* The job's barrier word in the segment: one 32-bit futex word that holds
 * the number of barriers completed (mod 2^30) and, in its low two bits,
 * why the next one failed (0: it has not). A worker's k-th call of
 * hps_barrier is barrier k; it arrives by storing k + 1 in its node's
 * barrier_arrived.
 *
 * The outcome of each barrier is decided once, by one compare-and-swap of
 * the word from (k, 0) to (k + 1, 0) (complete) or to (k, code) (failed),
 * so every worker of a barrier reads the same outcome. A failure is
 * sticky: no later barrier can complete, and every later call fails with
 * the same code at once (as torch.distributed after a lost rank or a
 * timed-out collective): a worker that arrives late at a failed barrier
 * cannot be told apart from one that arrives at the next.
 *
 * Who decides: on one host the workers themselves (runtime/client/
 * barrier.c); with several hosts only the scheduler, through the bridges
 * (which may decide alone only when they lose the scheduler), so that
 * every host sees the same outcome. */
#ifndef HPSI_BARRIER_H
#define HPSI_BARRIER_H

#include <stdatomic.h>
#include <stdint.h>

#include "hps/error.h"
#include "shm/segment.h"

#define HPSI_BARRIER_SEQ_MASK 0x3fffffffu

static inline uint32_t hpsi_barrier_seq(uint32_t k) { return k & HPSI_BARRIER_SEQ_MASK; }

/* The word of "barriers 0 .. done-1 completed, barrier done failed with
 * code (0: undecided)". */
uint32_t hpsi_barrier_word(uint32_t done, int code);

/* What the word says of barrier k: 1 undecided, 0 passed, or the negative
 * HPS_E* code it failed with (HPS_EPEERDEAD, HPS_ETIMEDOUT, HPS_ECLOSED). */
int hpsi_barrier_outcome(uint32_t word, uint32_t k);

/* Decides barrier k: completes it (code 0) or fails it, and wakes its
 * waiters. Returns 1 if this call decided, 0 if it was already decided
 * (or the word is at another barrier). */
int hpsi_barrier_decide(struct hpsi_seg *seg, uint32_t k, int code);

/* The barrier now open (completed count), and whether it already failed. */
uint32_t hpsi_barrier_open(const struct hpsi_seg *seg, int *failed);

#endif
