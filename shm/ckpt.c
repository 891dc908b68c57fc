#include "shm/ckpt.h"

#include <stdio.h>
#include <unistd.h>

#include "hps/error.h"
#include "shm/liveness.h"
#include "shm/node.h"

int hpsi_ckpt_lock(_Atomic int32_t *lock, int32_t *holder)
{
	int32_t cur = 0, me = (int32_t)getpid();
	/* acquire: pairs with hpsi_ckpt_unlock's release; a failed attempt only reads the holder */
	if (atomic_compare_exchange_strong_explicit(lock, &cur, me, memory_order_acquire, memory_order_relaxed))
		return 0;
	if (hpsi_proc_birth(cur) == 0 &&
	    atomic_compare_exchange_strong_explicit(lock, &cur, me, memory_order_acquire, memory_order_relaxed))
		return 0; /* its holder died half-way */
	*holder = cur;
	return HPS_EEXIST;
}

void hpsi_ckpt_unlock(_Atomic int32_t *lock)
{
	/* release: pairs with hpsi_ckpt_lock's acquire by the next holder */
	atomic_store_explicit(lock, 0, memory_order_release);
}

void hpsi_ckpt_post(struct hpsi_seg *seg, int op, const char *dir)
{
	struct hpsi_seg_hdr *h = seg->hdr;
	snprintf(h->ckpt_dir, sizeof h->ckpt_dir, "%s", dir);
	h->ckpt_op = (uint32_t)op;
	h->ckpt_why[0] = 0;
	atomic_store_explicit(&h->ckpt_done, 0, memory_order_relaxed);
	atomic_store_explicit(&h->ckpt_status, 0, memory_order_relaxed);
	atomic_store_explicit(&h->ckpt_clock, UINT32_MAX, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->ckpt_seq, 1, memory_order_release); /* servers acquire it */
	hpsi_wake_all(seg);
}
