#include "shm/barrier.h"

#include "shm/bell.h"

/* The failure codes that fit in the word's two low bits. */
static const int failure_code[4] = {0, HPS_EPEERDEAD, HPS_ETIMEDOUT, HPS_ECLOSED};

uint32_t hpsi_barrier_word(uint32_t done, int code)
{
	uint32_t bits = 0;
	for (uint32_t i = 1; i < 4; i++)
		if (failure_code[i] == code)
			bits = i;
	if (code && !bits)
		bits = 1; /* any other failure reads as a lost peer */
	return hpsi_barrier_seq(done) << 2 | bits;
}

int hpsi_barrier_outcome(uint32_t word, uint32_t k)
{
	/* Compared first: barrier k+1 may already have failed while this
	 * worker had not yet seen k complete. */
	if (word >> 2 == hpsi_barrier_seq(k + 1))
		return 0;
	if (word & 3)
		return failure_code[word & 3];
	return 1;
}

int hpsi_barrier_decide(struct hpsi_seg *seg, uint32_t k, int code)
{
	_Atomic uint32_t *w = &seg->hdr->barrier;
	uint32_t expect = hpsi_barrier_word(k, 0);
	uint32_t want = code ? hpsi_barrier_word(k, code) : hpsi_barrier_word(k + 1, 0);
	/* acq_rel: the release pairs with the acquire load of the word by the
	 * waiters (runtime/client/barrier.c), so what every worker did before
	 * arriving (which the decider acquired from their arrival words) is
	 * visible to each of them once they pass. */
	if (!atomic_compare_exchange_strong_explicit(w, &expect, want, memory_order_acq_rel, memory_order_acquire))
		return 0;
	hpsi_futex_wake(w);
	return 1;
}

uint32_t hpsi_barrier_open(const struct hpsi_seg *seg, int *failed)
{
	/* acquire: pairs with the release CAS of hpsi_barrier_decide */
	uint32_t word = atomic_load_explicit(&seg->hdr->barrier, memory_order_acquire);
	if (failed)
		*failed = (word & 3) != 0;
	return word >> 2;
}
