/* A doorbell: the futex word one process sleeps on when it has nothing to
 * do. Producers ring it after publishing work; the system call is made only
 * when the owner announced that it sleeps.
 *
 * Ordering (a Dekker pair, both sides seq_cst):
 *  sleeper: sleepers += 1; fence; re-check its rings; futex_wait(seq, v)
 *  ringer:  publish work; fence; if sleepers: seq += 1; futex_wake(seq)
 * Either the sleeper sees the work, or the ringer sees the sleeper. seq is
 * read before the re-check, so a ring between the check and the wait makes
 * futex_wait return at once. */
#ifndef HPSI_BELL_H
#define HPSI_BELL_H

#include <stdatomic.h>
#include <sched.h>
#include <stdint.h>

struct hpsi_bell {
	_Atomic uint32_t seq;
	_Atomic uint32_t sleepers;
};

/* Wakes every sleeper if there is one. */
void hpsi_bell_ring(struct hpsi_bell *b);
/* Unconditional wake (used when a peer changes state). */
void hpsi_bell_ring_always(struct hpsi_bell *b);

/* Sleeps up to timeout_ns unless ready(arg) is true after announcing the
 * sleep. Returns 1 if ready, 0 after a wake-up or timeout. */
int hpsi_bell_sleep(struct hpsi_bell *b, int (*ready)(void *), void *arg, int64_t timeout_ns);

/* Shared-futex wrappers (process-shared words in the segment). */
int hpsi_futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns);
void hpsi_futex_wake(_Atomic uint32_t *word);

/* Monotonic clock in nanoseconds. */
int64_t hpsi_now_ns(void);

static inline void hpsi_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* One step of a bounded spin. With `yield`, every few steps give up the
 * CPU: when a job has more processes than cores (2 vCPUs, servers and
 * workers all spinning), a waiter must let the process it waits for run. */
static inline void hpsi_spin_step(uint32_t *steps, int yield)
{
	for (int i = 0; i < 64; i++)
		hpsi_cpu_relax();
	if (yield && ++*steps % 8 == 0)
		sched_yield();
}

#endif
