/* The shared heap: one jemalloc arena per process, whose extents are carved
 * from that process's slice of the segment and bound to its NUMA node.
 *
 * Only the owner allocates and frees (the arena's bookkeeping holds
 * process-local pointers); other processes read and write buffers by
 * offset and hand them back in a response. Allocation bypasses the thread
 * cache (MALLOCX_TCACHE_NONE), which would mix in objects of other arenas. */
#ifndef HPSI_HEAP_H
#define HPSI_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct hpsi_heap;

/* Builds a heap over [base, base+bytes); bytes is a multiple of 2 MiB. */
int hpsi_heap_create(void *base, size_t bytes, struct hpsi_heap **out);
/* The same over a slice that held an earlier heap (a restarted worker's
 * predecessor's, whose process-local bookkeeping died with it): its pages
 * are not zero, so the extents jemalloc wants zeroed are cleared. */
int hpsi_heap_create_reused(void *base, size_t bytes, struct hpsi_heap **out);
void hpsi_heap_destroy(struct hpsi_heap *h);
/* Every buffer's pages are reserved in the file system behind the slice
 * before it is handed out (no SIGBUS on first touch). NULL when the slice
 * is used up or the file system is full. */
void *hpsi_heap_alloc(struct hpsi_heap *h, size_t bytes);
/* The same; *why: 0, HPS_ENOMEM (the slice is used up: wait for buffers to
 * come back) or HPS_ENOSPC (the shared-memory file system is full; logged,
 * naming HPS_SHM_DIR and HPS_HEAP_MB). */
void *hpsi_heap_alloc_why(struct hpsi_heap *h, size_t bytes, int *why);
void hpsi_heap_free(struct hpsi_heap *h, void *p);
/* Buffers for the application (hps_alloc, hps_free): the heap remembers
 * which are live, so freeing any other pointer, or one twice, returns
 * HPS_EINVAL and leaves the arena intact. */
void *hpsi_heap_alloc_user(struct hpsi_heap *h, size_t bytes);
int hpsi_heap_free_user(struct hpsi_heap *h, void *p);
/* 1 if [p, p+bytes) lies in this heap's slice. */
int hpsi_heap_owns(const struct hpsi_heap *h, const void *p, size_t bytes);
/* Bytes carved from the slice so far (jemalloc keeps and reuses them). */
size_t hpsi_heap_carved(const struct hpsi_heap *h);
/* The largest buffer one can hope to allocate (a limit for messages). */
size_t hpsi_heap_max_alloc(const struct hpsi_heap *h);

/* NUMA node of the CPU this thread runs on (0 without libnuma support). */
int hpsi_numa_node(void);
/* Binds [p, p+bytes) to node when the machine has several nodes. */
void hpsi_numa_bind(void *p, size_t bytes, int node);

/* A process-local jemalloc arena whose memory is bound to this process's
 * NUMA node (server tables); returns MALLOCX_ flags to pass to mallocx. */
int hpsi_local_arena_flags(void);
/* A large array from the arena of flags: from 2 MiB up, 2 MiB-aligned and
 * in transparent huge pages where the kernel gives them (madvise; refused,
 * it works in small pages), zeroed when asked. A table of hundreds of MiB
 * looked up at random otherwise misses the TLB on each access, and a
 * virtual machine's TLB miss walks two page tables. */
void *hpsi_local_alloc_huge(size_t bytes, int flags, int zero);
/* Hands the local arena's free pages back to the kernel now: after a
 * server table grew and freed its old array, which jemalloc would keep
 * resident for its decay time (seconds). */
void hpsi_local_arena_purge(void);

#endif
