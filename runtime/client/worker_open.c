/* Worker: opening and closing it, and the shared-heap buffers a program
 * takes with hps_alloc (zero-copy requests). The request path is
 * request.c; answers and waiting are worker.c. */
#include <stdlib.h>
#include <string.h>

#include "runtime/common/log.h"
#include "runtime/client/handle.h"
#include "runtime/client/join.h"
#include "runtime/client/rejoin.h"
#include "runtime/client/worker.h"

int hps_worker_open(hps_ctx *ctx, uint32_t width, hps_worker **out)
{
	int rc = hpsi_ctx_check(ctx);
	if (rc)
		return rc;
	if (!out || width == 0 || ctx->cfg.role != HPS_ROLE_WORKER)
		return HPS_EINVAL;
	if (ctx->worker) {
		hpsi_error("this process already has an open worker (one per process: use it from every thread)");
		return HPS_EEXIST;
	}
	/* Acquire: pairs with the release of a close (mark_closed, hps_worker_close). */
	if (atomic_load_explicit(&hpsi_seg_node(&ctx->seg, ctx->node)->state, memory_order_acquire) != HPSI_NODE_ALIVE) {
		hpsi_error("this process's worker has closed: the servers no longer serve it, a new one cannot open");
		return HPS_ECLOSED;
	}
	struct hps_worker *w = calloc(1, sizeof *w);
	if (!w)
		return HPS_ENOMEM;
	struct hpsi_seg *seg = &ctx->seg;
	w->ctx = ctx;
	w->seg = seg;
	w->stats = hpsi_seg_counters(seg, ctx->node);
	w->rank = (uint32_t)ctx->cfg.rank;
	w->nservers = seg->hdr->nservers;
	w->width = width;
	w->bell = &hpsi_seg_node(seg, ctx->node)->bell;
	w->inline_max = hpsi_ring_max_payload(seg->hdr->ring_bytes) - sizeof(struct hpsi_msg_hdr);
	uint64_t lo = seg->hdr->heap_off + (uint64_t)w->rank * seg->hdr->heap_slice;
	w->own = (struct hpsi_msg_bounds){seg->base, lo, lo + seg->hdr->heap_slice};
	w->req = calloc(w->nservers, sizeof *w->req);
	w->resp = calloc(w->nservers, sizeof *w->resp);
	w->slots = calloc(HPSI_MAX_INFLIGHT, sizeof *w->slots);
	/* One block: large, so it comes zeroed from fresh pages that only the
	 * slots in use touch (512 small callocs cleared 1.8 MiB per worker of
	 * a 64-server job at start). */
	w->parts = calloc((size_t)HPSI_MAX_INFLIGHT * w->nservers, sizeof *w->parts);
	rc = w->req && w->resp && w->slots && w->parts ? 0 : HPS_ENOMEM;
	for (uint32_t i = 0; !rc && i < HPSI_MAX_INFLIGHT; i++) {
		atomic_init(&w->slots[i].ts, -1);
		w->slots[i].parts = w->parts + (size_t)i * w->nservers;
	}
	for (uint32_t s = 0; !rc && s < w->nservers; s++) {
		hpsi_ring_prod_attach(&w->req[s], hpsi_seg_ring(seg, w->rank, s, 0), seg->hdr->ring_bytes);
		hpsi_ring_cons_attach(&w->resp[s], hpsi_seg_ring(seg, w->rank, s, 1), seg->hdr->ring_bytes);
	}
	/* A restart: its predecessor's requests are consumed before the heap
	 * slice they point into is carved again (runtime/client/rejoin.c);
	 * its requests go on at the predecessor's clock and timestamps. */
	if (!rc && ctx->rejoined)
		rc = hpsi_rejoin_drain(w);
	if (!rc)
		rc = (ctx->rejoined ? hpsi_heap_create_reused : hpsi_heap_create)(hpsi_seg_heap(seg, w->rank),
										  seg->hdr->heap_slice, &w->heap);
	if (rc) {
		free(w->req), free(w->resp), free(w->slots), free(w->parts), free(w->cbq), free(w);
		return rc;
	}
	w->clock = ctx->resume_clock;
	atomic_init(&w->next_ts, ctx->resume_ts);
	pthread_mutex_init(&w->submit_lock, NULL);
	pthread_mutex_init(&w->poll_lock, NULL);
	pthread_mutex_init(&w->fail_lock, NULL);
	w->forgot_upto = -1;
	atomic_init(&w->magic, HPSI_MAGIC_WORKER);
	ctx->worker = w;
	*out = w;
	return 0;
}

static int all_idle(void *p)
{
	struct hps_worker *w = p;
	for (uint32_t i = 0; i < HPSI_MAX_INFLIGHT; i++)
		if (atomic_load_explicit(&w->slots[i].in_use, memory_order_acquire))
			return 0;
	return 1;
}

int hpsi_worker_check(const hps_worker *w)
{
	return hpsi_handle_check(w ? &w->magic : NULL, HPSI_MAGIC_WORKER);
}

int hps_worker_close(hps_worker *w)
{
	int rc = hpsi_worker_check(w);
	if (rc)
		return rc;
	rc = hpsi_worker_wait_until(w, all_idle, w, hpsi_now_ns() + w->ctx->timeout_ns);
	atomic_store_explicit(&w->closing, 1, memory_order_release);
	if (w->progress_started) {
		hpsi_futex_wake(&w->cb_pending);
		hpsi_bell_ring_always(w->bell);
		pthread_join(w->progress_thread, NULL);
	}
	struct hpsi_node *n = hpsi_seg_node(w->seg, w->ctx->node);
	uint32_t st = HPSI_NODE_ALIVE;
	/* acq_rel: pairs with the acquire loads of the state by node checks */
	if (atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_CLOSED, memory_order_acq_rel,
						    memory_order_acquire))
		hpsi_members_changed(w->seg); /* a leave: the membership epoch moves; wakes all */
	/* Buffers of requests that never got an answer stay in the arena: a
	 * server might still read them until the segment goes away. */
	if (rc == 0)
		hpsi_heap_destroy(w->heap);
	for (uint32_t i = 0; i < HPSI_MAX_INFLIGHT; i++)
		free(w->slots[i].idx);
	free(w->parts);
	pthread_mutex_destroy(&w->submit_lock);
	pthread_mutex_destroy(&w->poll_lock);
	pthread_mutex_destroy(&w->fail_lock);
	w->ctx->worker = NULL;
	free(w->req), free(w->resp), free(w->slots), free(w->cbq), free(w->failed);
	hpsi_handle_retire(w, &w->magic);
	return rc;
}

void *hps_alloc(hps_worker *w, size_t bytes)
{
	if (hpsi_worker_check(w) || bytes > hpsi_heap_max_alloc(w->heap))
		return NULL;
	return hpsi_heap_alloc_user(w->heap, bytes);
}

int hps_free(hps_worker *w, void *p)
{
	int rc = hpsi_worker_check(w);
	if (rc || !p)
		return rc;
	rc = hpsi_heap_free_user(w->heap, p);
	if (rc)
		hpsi_error("hps_free: %p is not a buffer of this worker's hps_alloc, or was freed already", p);
	return rc;
}
