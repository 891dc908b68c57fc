#include "shm/heap.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hps/error.h"
#include "runtime/common/log.h"
#include "shm/bell.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older C libraries lack the name */
#endif

struct hpsi_heap {
	extent_hooks_t hooks; /* first: jemalloc hands this pointer to the hooks */
	unsigned arena;
	unsigned char *base;
	size_t bytes;
	_Atomic size_t cursor; /* bytes carved so far; extents are never given back */
	/* Extents the shared-memory file system could not back (it was full):
	 * counted by the hook, reported by the allocating call (relaxed: a
	 * diagnosis, it orders nothing). */
	_Atomic uint32_t reserve_failed;
	_Atomic int no_populate;   /* the kernel cannot reserve (before 5.14) */
	_Atomic int64_t logged_at; /* last "file system full" message */
	_Atomic uint64_t *user; /* live hps_alloc buffers, a bit per USER_UNIT (hpsi_heap_alloc_user) */
	int reused; /* the slice is not fresh (hpsi_heap_create_reused) */
};

/* Takes the pages of [p, p+size) from the file system behind the mapping
 * now, so that nobody's first touch of them can raise SIGBUS when /dev/shm
 * (HPS_SHM_DIR) fills up later: MADV_POPULATE_WRITE fails with EFAULT
 * exactly where such a touch would fault, and leaves the contents alone. A
 * syscall, so allowed inside an extent hook (no malloc, no printf). */
static int reserve(struct hpsi_heap *h, void *p, size_t size)
{
	if (atomic_load_explicit(&h->no_populate, memory_order_relaxed))
		return 0;
	if (madvise(p, size, MADV_POPULATE_WRITE) == 0)
		return 0;
	if (errno == EINVAL) { /* an older kernel: pages are taken when touched, as before */
		atomic_store_explicit(&h->no_populate, 1, memory_order_relaxed);
		return 0;
	}
	atomic_fetch_add_explicit(&h->reserve_failed, 1, memory_order_relaxed);
	return -1;
}

#define USER_UNIT 64 /* the alignment of every buffer */

/* Carves a fresh extent from the slice. Called by jemalloc with arena locks
 * held, possibly from several threads: the cursor moves by CAS, after the
 * extent's pages are reserved, so a failed reservation carves nothing
 * (pages reserved ahead of a lost race are used by the next extents). No
 * malloc or printf here. The slice is fresh tmpfs memory, so it reads as
 * zero, unless a restarted worker's predecessor used it (reused). */
static void *shm_extent_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment,
			      bool *zero, bool *commit, unsigned arena_ind)
{
	(void)arena_ind;
	struct hpsi_heap *h = (struct hpsi_heap *)hooks;
	if (new_addr != NULL)
		return NULL; /* cannot grow in place */
	size_t cur = atomic_load_explicit(&h->cursor, memory_order_relaxed);
	for (;;) {
		uintptr_t start = ((uintptr_t)h->base + cur + alignment - 1) & ~(uintptr_t)(alignment - 1);
		size_t end = (size_t)(start - (uintptr_t)h->base) + size;
		if (end > h->bytes || end < size)
			return NULL;
		if (reserve(h, (void *)start, size) != 0)
			return NULL;
		if (atomic_compare_exchange_weak_explicit(&h->cursor, &cur, end, memory_order_relaxed,
							  memory_order_relaxed)) {
			/* *zero in: jemalloc needs zeroed memory; out: it is zeroed */
			if (!h->reused)
				*zero = true;
			else if (*zero)
				memset((void *)start, 0, size);
			*commit = true;
			return (void *)start;
		}
	}
}

/* true = "not deallocated": jemalloc retains the extent and reuses it. */
static bool shm_extent_dalloc(extent_hooks_t *hooks, void *addr, size_t size, bool committed, unsigned arena_ind)
{
	(void)hooks, (void)addr, (void)size, (void)committed, (void)arena_ind;
	return true;
}

/* false = allowed: all extents come from one contiguous slice. */
static bool shm_extent_split(extent_hooks_t *hooks, void *addr, size_t size, size_t size_a, size_t size_b,
			     bool committed, unsigned arena_ind)
{
	(void)hooks, (void)addr, (void)size, (void)size_a, (void)size_b, (void)committed, (void)arena_ind;
	return false;
}

static bool shm_extent_merge(extent_hooks_t *hooks, void *addr_a, size_t size_a, void *addr_b, size_t size_b,
			     bool committed, unsigned arena_ind)
{
	(void)hooks, (void)addr_a, (void)size_a, (void)addr_b, (void)size_b, (void)committed, (void)arena_ind;
	return false;
}

int hpsi_numa_node(void)
{
	if (numa_available() < 0)
		return 0;
	int cpu = sched_getcpu();
	int node = cpu >= 0 ? numa_node_of_cpu(cpu) : 0;
	return node >= 0 ? node : 0;
}

void hpsi_numa_bind(void *p, size_t bytes, int node)
{
	if (numa_available() < 0 || numa_max_node() == 0)
		return;
	/* Preferred, not strict: a full node must not fail the job. */
	unsigned long mask = 1ul << node;
	if (mbind(p, bytes, MPOL_PREFERRED, &mask, sizeof mask * 8, 0) != 0)
		hpsi_debug("mbind to node %d failed", node);
}

/* reused before arenas.create: the arena's own metadata is carved from
 * the slice too, and jemalloc wants it zeroed. */
static int heap_create(void *base, size_t bytes, int reused, struct hpsi_heap **out)
{
	struct hpsi_heap *h = calloc(1, sizeof *h);
	if (!h)
		return HPS_ENOMEM;
	h->reused = reused;
	h->hooks.alloc = shm_extent_alloc;
	h->hooks.dalloc = shm_extent_dalloc;
	/* destroy, commit, decommit and both purges stay NULL: extents stay
	 * committed and are never purged (MADV_DONTNEED would not zero shm). */
	h->hooks.split = shm_extent_split;
	h->hooks.merge = shm_extent_merge;
	h->base = base;
	h->bytes = bytes;
	/* calloc: only the pages of the map where buffers start get touched */
	h->user = calloc(bytes / USER_UNIT / 64 + 1, sizeof *h->user);
	if (!h->user) {
		free(h);
		return HPS_ENOMEM;
	}
	hpsi_numa_bind(base, bytes, hpsi_numa_node());

	extent_hooks_t *hooks = &h->hooks;
	size_t sz = sizeof h->arena;
	if (mallctl("arenas.create", &h->arena, &sz, &hooks, sizeof hooks) != 0) {
		hpsi_error("jemalloc could not create the shared-heap arena");
		free(h->user);
		free(h);
		return HPS_ENOMEM;
	}
	/* jemalloc grows retained memory geometrically; bound each step so a
	 * slice is not asked for more than it can carve. */
	char name[64];
	size_t limit = bytes / 8;
	snprintf(name, sizeof name, "arena.%u.retain_grow_limit", h->arena);
	if (mallctl(name, NULL, NULL, &limit, sizeof limit) != 0)
		hpsi_debug("cannot set %s", name);
	*out = h;
	return 0;
}

int hpsi_heap_create(void *base, size_t bytes, struct hpsi_heap **out)
{
	return heap_create(base, bytes, 0, out);
}

int hpsi_heap_create_reused(void *base, size_t bytes, struct hpsi_heap **out)
{
	return heap_create(base, bytes, 1, out);
}

void hpsi_heap_destroy(struct hpsi_heap *h)
{
	if (!h)
		return;
	char name[64];
	snprintf(name, sizeof name, "arena.%u.destroy", h->arena);
	mallctl(name, NULL, NULL, NULL, 0);
	free(h->user);
	free(h);
}

void *hpsi_heap_alloc_why(struct hpsi_heap *h, size_t bytes, int *why)
{
	uint32_t failed = atomic_load_explicit(&h->reserve_failed, memory_order_relaxed);
	void *p = mallocx(bytes ? bytes : 1, MALLOCX_ARENA(h->arena) | MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(64));
	*why = 0;
	if (p)
		return p;
	*why = HPS_ENOMEM;
	if (atomic_load_explicit(&h->reserve_failed, memory_order_relaxed) == failed)
		return NULL;
	*why = HPS_ENOSPC;
	/* callers retry while they wait for answers: one line a second */
	int64_t now = hpsi_now_ns(), last = atomic_load_explicit(&h->logged_at, memory_order_relaxed);
	if ((last == 0 || now - last > 1000000000) &&
	    atomic_compare_exchange_strong_explicit(&h->logged_at, &last, now, memory_order_relaxed,
						    memory_order_relaxed)) {
		const char *dir = getenv("HPS_SHM_DIR");
		hpsi_error("the shared-memory file system (HPS_SHM_DIR=%s) is full: no room for %zu KiB of the shared heap; free space there, enlarge it or lower HPS_HEAP_MB",
			   dir && *dir ? dir : "/dev/shm", (bytes + 1023) >> 10);
	}
	return NULL;
}

void *hpsi_heap_alloc(struct hpsi_heap *h, size_t bytes)
{
	int why;
	return hpsi_heap_alloc_why(h, bytes, &why);
}

void hpsi_heap_free(struct hpsi_heap *h, void *p)
{
	(void)h;
	if (p)
		dallocx(p, MALLOCX_TCACHE_NONE);
}

/* Buffers handed to the application are marked in h->user, so that
 * hps_free can refuse a pointer it never handed out, or one freed already,
 * instead of passing it to jemalloc, whose arena it would corrupt (the
 * crash would come at a later allocation). A buffer freed and handed out
 * again by a later hps_alloc is live again: freeing it through an old
 * pointer frees the new buffer, as free() would. */
void *hpsi_heap_alloc_user(struct hpsi_heap *h, size_t bytes)
{
	unsigned char *p = hpsi_heap_alloc(h, bytes);
	if (p) {
		size_t unit = (size_t)(p - h->base) / USER_UNIT;
		/* release: pairs with the acq_rel clear in hpsi_heap_free_user,
		 * which may run in another thread */
		atomic_fetch_or_explicit(&h->user[unit / 64], 1ull << (unit % 64), memory_order_release);
	}
	return p;
}

int hpsi_heap_free_user(struct hpsi_heap *h, void *p)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)h->base;
	if (!hpsi_heap_owns(h, p, 1) || off % USER_UNIT)
		return HPS_EINVAL;
	size_t unit = off / USER_UNIT;
	uint64_t bit = 1ull << (unit % 64);
	/* acq_rel: pairs with the release of hpsi_heap_alloc_user; of two
	 * threads freeing the same buffer only one sees the bit */
	if (!(atomic_fetch_and_explicit(&h->user[unit / 64], ~bit, memory_order_acq_rel) & bit))
		return HPS_EINVAL;
	hpsi_heap_free(h, p);
	return 0;
}

int hpsi_heap_owns(const struct hpsi_heap *h, const void *p, size_t bytes)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)h->base;
	return a >= b && a - b <= h->bytes && bytes <= h->bytes - (a - b);
}

size_t hpsi_heap_carved(const struct hpsi_heap *h)
{
	return atomic_load_explicit(&h->cursor, memory_order_relaxed);
}

size_t hpsi_heap_max_alloc(const struct hpsi_heap *h)
{
	/* jemalloc's metadata and size-class rounding need headroom. */
	return h->bytes / 2;
}

/* --- NUMA-local process arena: the default hooks, plus a bind ---------- */

static extent_hooks_t *default_hooks;
static extent_hooks_t local_hooks;
static int local_flags;
static unsigned local_arena;
static pthread_once_t local_once = PTHREAD_ONCE_INIT;

static void *local_extent_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment,
				bool *zero, bool *commit, unsigned arena_ind)
{
	(void)hooks;
	void *p = default_hooks->alloc(default_hooks, new_addr, size, alignment, zero, commit, arena_ind);
	if (p)
		hpsi_numa_bind(p, size, hpsi_numa_node());
	return p;
}


static bool local_dalloc(extent_hooks_t *k, void *a, size_t s, bool c, unsigned i)
{
	(void)k;
	return default_hooks->dalloc ? default_hooks->dalloc(default_hooks, a, s, c, i) : true;
}
static void local_destroy(extent_hooks_t *k, void *a, size_t s, bool c, unsigned i)
{
	(void)k;
	if (default_hooks->destroy)
		default_hooks->destroy(default_hooks, a, s, c, i);
}
static bool local_commit(extent_hooks_t *k, void *a, size_t s, size_t o, size_t l, unsigned i)
{
	(void)k;
	return default_hooks->commit ? default_hooks->commit(default_hooks, a, s, o, l, i) : true;
}
static bool local_decommit(extent_hooks_t *k, void *a, size_t s, size_t o, size_t l, unsigned i)
{
	(void)k;
	return default_hooks->decommit ? default_hooks->decommit(default_hooks, a, s, o, l, i) : true;
}
static bool local_purge_lazy(extent_hooks_t *k, void *a, size_t s, size_t o, size_t l, unsigned i)
{
	(void)k;
	return default_hooks->purge_lazy ? default_hooks->purge_lazy(default_hooks, a, s, o, l, i) : true;
}
static bool local_purge_forced(extent_hooks_t *k, void *a, size_t s, size_t o, size_t l, unsigned i)
{
	(void)k;
	return default_hooks->purge_forced ? default_hooks->purge_forced(default_hooks, a, s, o, l, i) : true;
}
static bool local_split(extent_hooks_t *k, void *a, size_t s, size_t sa, size_t sb, bool c, unsigned i)
{
	(void)k;
	return default_hooks->split ? default_hooks->split(default_hooks, a, s, sa, sb, c, i) : true;
}
static bool local_merge(extent_hooks_t *k, void *a, size_t sa, void *b, size_t sb, bool c, unsigned i)
{
	(void)k;
	return default_hooks->merge ? default_hooks->merge(default_hooks, a, sa, b, sb, c, i) : true;
}

static void local_arena_init(void)
{
	size_t sz = sizeof default_hooks;
	unsigned arena;
	if (mallctl("arena.0.extent_hooks", &default_hooks, &sz, NULL, 0) != 0 || !default_hooks)
		return;
	local_hooks = (extent_hooks_t){local_extent_alloc, local_dalloc, local_destroy, local_commit,
				       local_decommit, local_purge_lazy, local_purge_forced, local_split,
				       local_merge};
	extent_hooks_t *hooks = &local_hooks;
	sz = sizeof arena;
	if (mallctl("arenas.create", &arena, &sz, &hooks, sizeof hooks) == 0) {
		local_flags = MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
		local_arena = arena;
	}
}

int hpsi_local_arena_flags(void)
{
	pthread_once(&local_once, local_arena_init);
	return local_flags;
}

void *hpsi_local_alloc_huge(size_t bytes, int flags, int zero)
{
	const size_t huge = (size_t)2 << 20;
	if (bytes < huge)
		return mallocx(bytes ? bytes : 1, flags | (zero ? MALLOCX_ZERO : 0));
	bytes = (bytes + huge - 1) & ~(huge - 1);
	/* MALLOCX_ZERO: jemalloc writes zeros only where the pages are not
	 * fresh from the kernel (already zero, and not touched yet: the
	 * madvise below comes before their first fault) */
	void *p = mallocx(bytes, flags | MALLOCX_ALIGN(huge) | (zero ? MALLOCX_ZERO : 0));
	if (p)
		madvise(p, bytes, MADV_HUGEPAGE); /* a hint: refused, the pages stay small */
	return p;
}

void hpsi_local_arena_purge(void)
{
	char name[48];
	pthread_once(&local_once, local_arena_init);
	snprintf(name, sizeof name, "arena.%u.purge", local_flags ? local_arena : 0u);
	mallctl(name, NULL, NULL, NULL, 0); /* best effort: the pages are only kept longer */
}
