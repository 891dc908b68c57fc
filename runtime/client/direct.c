/* HOGWILD direct mode: a worker maps a local server's dense key range and
 * updates it in place, with no request, no copy and no lock. */
#include <stdatomic.h>
#include <time.h>

#include "hps/hps.h"
#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "net/route.h"
#include "shm/bell.h"

int hps_direct_map(hps_ctx *ctx, uint64_t key, hps_direct *out)
{
	int rc = hpsi_ctx_check(ctx);
	if (rc || !out)
		return rc ? rc : HPS_EINVAL;
	struct hpsi_seg *seg = &ctx->seg;
	uint32_t srv = hpsi_route_key(seg, key);
	if (srv == HPSI_NO_SERVER)
		return HPS_ENOKEY;
	/* The range table is written once before the segment is published;
	 * only direct_ready changes later. */
	struct hpsi_range *r = (struct hpsi_range *)&hpsi_seg_ranges(seg)[srv];
	if (!r->direct_width) {
		hpsi_warn("key %llu belongs to server %u, whose range is not direct (HPS_DIRECT)",
			  (unsigned long long)key, srv);
		return HPS_EINVAL;
	}
	/* Acquire pairs with the server's release after it wrote the initial
	 * values: a worker never sees the array before it is set up. */
	int64_t deadline = hpsi_now_ns() + ctx->timeout_ns;
	while (!atomic_load_explicit(&r->direct_ready, memory_order_acquire)) {
		uint32_t st = hpsi_node_check(seg, srv);
		if (st == HPSI_NODE_DEAD || st == HPSI_NODE_CLOSED)
			return HPS_EPEERDEAD;
		if (hpsi_now_ns() > deadline)
			return HPS_ETIMEDOUT;
		nanosleep(&(struct timespec){0, 200000}, NULL);
	}
	out->first = r->first;
	out->count = r->last - r->first + 1;
	out->width = r->direct_width;
	out->vals = (float *)(seg->base + r->direct_off);
	return 0;
}
