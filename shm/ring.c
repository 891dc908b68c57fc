/* The cold path of the ring consumer (shm/ring.h): a producer in another
 * process published a record that breaks its bounds. */
#include "shm/ring.h"

#include "runtime/common/log.h"

static _Atomic uint64_t corrupt_records;

void hpsi_ring_drop_corrupt(struct hpsi_ring_cons *c, uint32_t len, uint32_t kind)
{
	uint32_t avail = c->tail_cache - c->head;
	/* relaxed: a statistic, read by nobody who relies on other memory */
	uint64_t n = atomic_fetch_add_explicit(&corrupt_records, 1, memory_order_relaxed) + 1;
	if (n <= 10 || n % 1000 == 0)
		hpsi_warn("ring record (length %u, kind %u) breaks the %u bytes published or the ring's %u; "
			  "dropping them (%llu so far)",
			  len, kind, avail, c->mask + 1, (unsigned long long)n);
	/* Nothing after a bad length can be parsed: skip all that is
	 * published, and hand it back at once, (B) release. */
	c->head = c->tail_cache;
	hpsi_ring_cons_publish(c);
}

uint64_t hpsi_ring_corrupt_count(void)
{
	return atomic_load_explicit(&corrupt_records, memory_order_relaxed);
}
