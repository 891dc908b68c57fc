#include "shm/bell.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t hpsi_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Not FUTEX_PRIVATE: the word lives in memory shared between processes. */
int hpsi_futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns)
{
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
	long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, timeout_ns >= 0 ? &ts : NULL,
			  NULL, 0);
	return rc == 0 ? 0 : -errno;
}

void hpsi_futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void hpsi_bell_ring(struct hpsi_bell *b)
{
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in hpsi_bell_sleep */
	if (atomic_load_explicit(&b->sleepers, memory_order_relaxed) != 0)
		hpsi_bell_ring_always(b);
}

void hpsi_bell_ring_always(struct hpsi_bell *b)
{
	/* seq_cst: rung without hpsi_bell_ring's fence too (state changes,
	 * hpsi_wake_all), so the increment itself takes part in the Dekker
	 * pair of shm/bell.h; the sleeper acquires seq below */
	atomic_fetch_add_explicit(&b->seq, 1, memory_order_seq_cst);
	hpsi_futex_wake(&b->seq);
}

int hpsi_bell_sleep(struct hpsi_bell *b, int (*ready)(void *), void *arg, int64_t timeout_ns)
{
	uint32_t v = atomic_load_explicit(&b->seq, memory_order_acquire); /* pairs with ring_always */
	/* seq_cst: the sleeper's half of the Dekker pair (shm/bell.h) */
	atomic_fetch_add_explicit(&b->sleepers, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in hpsi_bell_ring */
	int r = ready(arg);
	if (!r)
		hpsi_futex_wait(&b->seq, v, timeout_ns);
	atomic_fetch_sub_explicit(&b->sleepers, 1, memory_order_relaxed);
	return r;
}
