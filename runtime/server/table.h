/* The pool of a server's store (store.c): the keys whose length has no
 * cells (cells.h: lengths past the first few a store sees, cells larger
 * than HPSI_CELL_MAX, and the one key whose cells hash is 0), as uint64
 * keys to records that hold the key, its value count, its push count and
 * then its values and optimizer state.
 *
 * Two parts:
 * - slots: an open-addressing (linear probing) array of 8 bytes per slot,
 *   each the record's offset in the pool and 16 bits of the key's hash
 *   (a tag), so that a probe past another key rarely reads its record;
 * - the pool: records one after the other in windows of 2 MiB that never
 *   move, so that growing the slots does not copy values and a record
 *   found stays where it is while a request adds keys.
 * A lookup of a key absent from the cache costs two misses: its slot and
 * its record, which the handler's loop asks for keys ahead
 * (hpsi_table_prefetch_slot, then hpsi_table_prefetch_rec). */
#ifndef HPSI_TABLE_H
#define HPSI_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct hpsi_rec {
	uint64_t key;
	uint32_t len;   /* values */
	uint32_t steps; /* pushes applied (Adam's bias correction) */
	/* len values, then len x state optimizer values, in the store's dtype */
};

static inline void *hpsi_rec_vals(struct hpsi_rec *r)
{
	return r + 1;
}

/* The pool counts in units of 8 bytes; a window holds 2^18 of them. */
#define HPSI_WIN_BITS 18
#define HPSI_WIN_UNITS ((uint64_t)1 << HPSI_WIN_BITS)

struct hpsi_table {
	uint64_t *slots;  /* 0: empty; else offset << 16 | tag */
	size_t cap;       /* a power of two */
	unsigned shift;   /* 64 - log2(cap): a hash's top bits are its home slot */
	size_t count;     /* keys held, at most 3/4 of cap */
	uint64_t **win;   /* per window: its first unit */
	uint32_t *span;   /* per window: windows of its allocation, 0 past the first */
	size_t nwin, win_cap;
	uint64_t used;    /* units placed; units 0 and 1 stay unused (offset 0 means empty) */
	uint32_t vbytes;  /* bytes of one value and its optimizer state */
	int flags;        /* mallocx flags: the server's NUMA-local arena */
	/* hpsi_table_share: the slots in a memfd of their own (sfd), the
	 * windows in one memfd (wfd), window j at 2 MiB x j of it */
	int share, sfd, wfd;
	/* hpsi_table_expect: single windows allocated ahead of a copy's
	 * records, which add_windows takes in order (spare_next .. nspare - 1
	 * unused), mapped meanwhile by a helper (runtime/server/prefault.h) */
	uint64_t **spare;
	size_t nspare, spare_next;
	struct hpsi_prefault *prefault;
};

/* One multiply after folding the high half in: sorted, strided or random
 * keys all spread over the slots (the top bits are the home slot, bits
 * 16..31 the tag). */
static inline uint64_t hpsi_table_hash(uint64_t key)
{
	return (key ^ (key >> 32)) * 0x9e3779b97f4a7c15ull;
}

static inline struct hpsi_rec *hpsi_table_rec(const struct hpsi_table *t, uint64_t off)
{
	return (struct hpsi_rec *)(t->win[off >> HPSI_WIN_BITS] + (off & (HPSI_WIN_UNITS - 1)));
}

static inline struct hpsi_rec *hpsi_table_find(const struct hpsi_table *t, uint64_t key)
{
	uint64_t h = hpsi_table_hash(key), tag = (h >> 16) & 0xffff;
	size_t mask = t->cap - 1;
	for (size_t i = (size_t)(h >> t->shift);; i = (i + 1) & mask) {
		uint64_t s = t->slots[i];
		if (!s)
			return NULL;
		if ((s & 0xffff) == tag) {
			struct hpsi_rec *r = hpsi_table_rec(t, s >> 16);
			if (r->key == key)
				return r;
		}
	}
}

/* Asks for the home slot of a key that will be looked up soon. The
 * prefetch helpers are always inlined: GCC drops calls to a function
 * whose only effect is a prefetch (it finds it "const"). */
__attribute__((always_inline)) static inline void hpsi_table_prefetch_slot(const struct hpsi_table *t, uint64_t key)
{
	__builtin_prefetch(&t->slots[hpsi_table_hash(key) >> t->shift]);
}

/* Asks for the first `bytes` of a key's record (at most two lines) when
 * its home slot, asked for earlier, holds it. A read prefetch also for a
 * push: x86-64 without -mprfchw compiles a write prefetch to nothing. */
__attribute__((always_inline)) static inline void hpsi_table_prefetch_rec(const struct hpsi_table *t, uint64_t key,
									   size_t bytes)
{
	uint64_t h = hpsi_table_hash(key), s = t->slots[h >> t->shift];
	if (!s || (s & 0xffff) != ((h >> 16) & 0xffff))
		return;
	const char *r = (const char *)hpsi_table_rec(t, s >> 16);
	__builtin_prefetch(r);
	__builtin_prefetch(r + bytes - 1);
}

/* vbytes: bytes of one value with its optimizer state. */
int hpsi_table_init(struct hpsi_table *t, int flags, uint32_t vbytes);
void hpsi_table_free(struct hpsi_table *t);

/* Room for the keys a request will add, so that hpsi_table_add cannot
 * fail half-way through it: reserve_keys with their number, then
 * plan_begin and one plan_rec per new key in the order they will be added
 * (a failed plan_rec gives back what the plan took). Records already found
 * do not move. */
int hpsi_table_reserve_keys(struct hpsi_table *t, size_t keys);

/* Room for `keys` keys whose records take about `bytes` in all, before a
 * copy sends them (runtime/server/recover.c, a BEGIN from another host):
 * the slots, and the windows, which a helper thread maps in the
 * background (runtime/server/prefault.h). A table that shares (memfds)
 * takes the slots only. Best effort: what cannot be allocated is
 * allocated as the records come. */
void hpsi_table_expect(struct hpsi_table *t, size_t keys, uint64_t bytes);
struct hpsi_table_plan {
	uint64_t cursor;
	size_t nwin0;
};
void hpsi_table_plan_begin(const struct hpsi_table *t, struct hpsi_table_plan *p);
int hpsi_table_plan_rec(struct hpsi_table *t, struct hpsi_table_plan *p, uint32_t len);

/* Adds an absent key with room for len values and their state (room was
 * reserved); steps is 0, the values are left to the caller. */
struct hpsi_rec *hpsi_table_add(struct hpsi_table *t, uint64_t key, uint32_t len);

/* The record at or after *cursor (start with HPSI_TABLE_FIRST) in the
 * order keys were added, moving *cursor past it; NULL at the end. Records
 * never move, so a cursor stays valid while keys are added (they come
 * after it). */
#define HPSI_TABLE_FIRST 2
struct hpsi_rec *hpsi_table_next(const struct hpsi_table *t, uint64_t *cursor);

/* Visits every record in the order the keys were added; a non-zero
 * return from fn stops and is returned. */
int hpsi_table_walk(const struct hpsi_table *t, int (*fn)(struct hpsi_rec *r, void *arg), void *arg);

/* Bytes the table holds: slots and pool windows. */
size_t hpsi_table_bytes(const struct hpsi_table *t);

/* A pool handed whole to another process, as cells are (cells.h,
 * hpsi_cells_share): its slots and windows in memfds that the other maps
 * (hpsi_table_adopt); offsets, not addresses, link them, so the same
 * bytes serve there. An empty table only; 0 or HPS_ENOMEM (t is then
 * empty and unshared, as after hpsi_table_free). */
int hpsi_table_share(struct hpsi_table *t);
struct hpsi_table_shape {
	uint64_t cap, count, nwin, used;
	uint32_t vbytes, pad;
	int32_t sfd, wfd;
};
void hpsi_table_shape_of(const struct hpsi_table *t, struct hpsi_table_shape *q);
/* Makes t (shared) the pool of q, mapping its fds in process pid (the
 * same pages); what t held is dropped. 0; HPS_EINVAL when q does not fit
 * t's settings or the files' sizes; HPS_ESYS when an fd cannot be opened
 * or mapped (t keeps what it held). */
int hpsi_table_adopt(struct hpsi_table *t, int pid, const struct hpsi_table_shape *q);

#endif
