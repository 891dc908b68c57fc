/* Mapping memory in the background before a copy fills it: on this
 * kind of machine (a VM) the first write to a page costs 17-30 us, so a
 * range that moves here by records (runtime/server/recover.c) spent most
 * of its time faulting in the windows its records went to (docs/
 * ARCHITECTURE.md, "Elastic servers across hosts", step 7). The server
 * allocates those windows when the copy's BEGIN announces its size
 * (hpsi_table_expect), and a helper thread maps them, in the order the
 * records will fill them, while the records are still on their way.
 *
 * Contract: the helper only calls madvise(MADV_POPULATE_WRITE) on the
 * regions it was given, which maps the pages writable without reading or
 * writing them, so the owner may write into them meanwhile; the owner
 * frees a region only after hpsi_prefault_stop (stop, then join). Where
 * the kernel lacks MADV_POPULATE_WRITE (before Linux 5.14) the helper
 * stops at once and the pages fault in as they are written. */
#ifndef HPSI_PREFAULT_H
#define HPSI_PREFAULT_H

#include <stddef.h>

struct hpsi_prefault;

/* Maps n regions of `bytes` each (page-aligned), in order, in a helper
 * thread; NULL when none could start (nothing is lost: the pages fault
 * in as they are written). */
struct hpsi_prefault *hpsi_prefault_start(void *const *regions, size_t n, size_t bytes);

/* Stops the helper (it finishes the region it is in), joins it and
 * frees it; NULL is a no-op. */
void hpsi_prefault_stop(struct hpsi_prefault *p);

#endif
