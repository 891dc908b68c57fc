/* Released handles (hps_ctx after hps_finalize, hps_worker after
 * hps_worker_close) are kept as tombstones instead of being freed, so that
 * a later call through the stale pointer reads a tombstone's magic and
 * fails with HPS_ECLOSED instead of touching freed memory. Only the most
 * recent HPSI_TOMBS are kept (a process opens few handles); an older
 * tombstone is freed, and a call through it is undefined again, as is a
 * call through a pointer hps never handed out. */
#ifndef HPSI_HANDLE_H
#define HPSI_HANDLE_H

#include <stdatomic.h>
#include <stdint.h>

#include "hps/error.h"

#define HPSI_TOMBS 8

enum {
	HPSI_MAGIC_CTX = 0x78746368u,    /* "hctx" */
	HPSI_MAGIC_WORKER = 0x6b727768u, /* "hwrk" */
	HPSI_MAGIC_TOMB = 0x626d6f74u,   /* "tomb" */
};

/* 0 for a live handle of the kind `live`, HPS_ECLOSED for a released one,
 * HPS_EINVAL for NULL or another kind. Relaxed: a handle released by
 * another thread is ordered by the caller's own synchronisation (using a
 * handle while another thread releases it is undefined). */
static inline int hpsi_handle_check(const _Atomic uint32_t *magic, uint32_t live)
{
	if (!magic)
		return HPS_EINVAL;
	uint32_t m = atomic_load_explicit(magic, memory_order_relaxed);
	return m == live ? 0 : m == HPSI_MAGIC_TOMB ? HPS_ECLOSED : HPS_EINVAL;
}

/* Marks obj (whose magic is *magic) released and keeps it; frees the
 * oldest tombstone beyond HPSI_TOMBS. */
void hpsi_handle_retire(void *obj, _Atomic uint32_t *magic);

#endif
