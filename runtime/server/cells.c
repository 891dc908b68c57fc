#include "runtime/server/cells.h"

#include <jemalloc/jemalloc.h>

#include "hps/error.h"
#include "runtime/server/memfd.h"
#include "shm/heap.h"

/* Cells past the capacity when the table is (re)built, for the end of the
 * last run: an add moves the end of the cells in use by one at most, and
 * reserve makes sure the adds of a request stay inside the array. */
#define SLACK 64

void hpsi_cells_init(struct hpsi_cells *t, int flags, uint32_t esz, uint32_t state, int steps)
{
	memset(t, 0, sizeof *t);
	t->flags = flags;
	t->esz = esz;
	t->vbytes = esz * (1 + state);
	t->steps = steps;
	/* the hash, then the push count, then the values at their alignment */
	t->hdr = steps ? (esz == 8 ? 16 : 12) : 8;
	t->fd = -1;
}

void hpsi_cells_share(struct hpsi_cells *t)
{
	t->share = 1;
}

/* A zeroed array of `bytes`: from the arena, or (share) a fresh memfd
 * mapped shared, whose fd goes to *fd. NULL when out of memory. */
static unsigned char *array_alloc(const struct hpsi_cells *t, size_t bytes, int *fd)
{
	*fd = -1;
	if (!t->share)
		return hpsi_local_alloc_huge(bytes, t->flags, 1);
	void *p;
	return hpsi_memfd_new(bytes, &p, fd) ? NULL : p;
}

static void array_free(const struct hpsi_cells *t, unsigned char *base, size_t bytes, int fd)
{
	if (!base)
		return;
	if (fd < 0)
		dallocx(base, t->flags);
	else
		hpsi_memfd_free(base, bytes, fd); /* another server may map the pages yet */
}

void hpsi_cells_free(struct hpsi_cells *t)
{
	array_free(t, t->base, t->ncells * t->csz, t->fd);
	t->base = NULL;
	t->fd = -1;
	t->cap = t->ncells = t->tail = t->count = 0;
}

size_t hpsi_cells_bytes_for(const struct hpsi_cells *t, uint32_t len)
{
	uint64_t align = t->esz == 8 ? 8 : 4;
	uint64_t b = t->hdr + (uint64_t)len * t->vbytes;
	b = (b + align - 1) & ~(align - 1);
	return b <= HPSI_CELL_MAX ? (size_t)b : 0;
}

int hpsi_cells_set_len(struct hpsi_cells *t, uint32_t len)
{
	size_t b = hpsi_cells_bytes_for(t, len);
	if (t->count || !b)
		return HPS_EINVAL;
	if (b != t->csz)
		hpsi_cells_free(t); /* empty: an array of another cell size is of no use */
	t->len = len;
	t->csz = (uint32_t)b;
	return 0;
}

/* The first free cell from home for the key of hash h, in an array of
 * `cap` homes and `ncells` cells; NULL past the end. */
static unsigned char *free_cell(unsigned char *base, size_t cap, size_t ncells, uint32_t csz, uint64_t h)
{
	size_t i = (size_t)(((unsigned __int128)h * cap) >> 64);
	while (i < ncells && hpsi_cells_at(base + i * csz))
		i++;
	return i < ncells ? base + i * csz : NULL;
}

/* Re-adds every cell to a new array of `cap` homes, in the order of the
 * old array: the old homes grow with the hash as the new ones do, so the
 * writes go nearly in order, and a run keeps the order of its keys. */
static int rebuild(struct hpsi_cells *t, size_t cap, size_t slack)
{
	size_t ncells = cap + slack;
	if (ncells > SIZE_MAX / t->csz)
		return HPS_ENOMEM;
	int nfd;
	unsigned char *nb = array_alloc(t, ncells * t->csz, &nfd);
	if (!nb)
		return HPS_ENOMEM;
	size_t tail = 0;
	for (size_t i = 0; i < t->tail; i++) {
		const unsigned char *c = t->base + i * t->csz;
		uint64_t h = hpsi_cells_at(c);
		if (!h)
			continue;
		unsigned char *to = free_cell(nb, cap, ncells, t->csz, h);
		if (!to) { /* the last run is longer than the slack: more of it */
			array_free(t, nb, ncells * t->csz, nfd);
			return rebuild(t, cap, slack * 4 + (t->tail - i));
		}
		memcpy(to, c, t->csz);
		size_t at = (size_t)(to - nb) / t->csz;
		if (at >= tail)
			tail = at + 1;
	}
	if (t->base) {
		array_free(t, t->base, t->ncells * t->csz, t->fd);
		if (t->fd < 0)
			hpsi_local_arena_purge();
	}
	t->base = nb, t->cap = cap, t->ncells = ncells, t->tail = tail, t->fd = nfd;
	return 1;
}

int hpsi_cells_reserve(struct hpsi_cells *t, size_t keys)
{
	if (!t->csz)
		return HPS_EINVAL;
	size_t need = t->count + keys, cap = t->cap;
	if (need > SIZE_MAX / 2048)
		return HPS_ENOMEM;
	for (;;) {
		int small = (uint64_t)cap * t->csz < HPSI_CELLS_SMALL;
		if (need * 1024 <= (uint64_t)cap * (small ? 256 : HPSI_CELLS_LOAD))
			break;
		size_t grown = small ? cap * 2 : (size_t)((uint64_t)cap * HPSI_CELLS_GROW / 1024);
		cap = grown > cap + 64 ? grown : cap + 64;
	}
	int moved = 0;
	if (cap != t->cap) {
		moved = rebuild(t, cap, SLACK + keys);
		if (moved < 0)
			return moved;
	}
	/* An add takes the first free cell from its home (below cap) or
	 * after the last cell in use: `keys` adds end below `reach`, and the
	 * cell at `reach` stays free, so that every lookup's scan ends inside
	 * the array. */
	size_t reach = (t->tail > cap ? t->tail : cap) + keys;
	if (reach >= t->ncells) {
		/* At least twice the slack it had: keys added one by one to
		 * a run past the last home (a copy in hash order reaching the
		 * top hashes) would otherwise rebuild the array every SLACK
		 * adds, quadratic in the keys. */
		size_t slack = reach + 1 - cap + SLACK, had = t->ncells > cap ? t->ncells - cap : 0;
		return rebuild(t, cap, slack > 2 * had ? slack : 2 * had);
	}
	return moved;
}

void *hpsi_cells_add_from(struct hpsi_cells *t, unsigned char *c, uint64_t h)
{
	while (hpsi_cells_at(c)) /* reserve made sure of a free cell before the end */
		c += t->csz;
	size_t at = (size_t)(c - t->base) / t->csz;
	if (at >= t->tail)
		t->tail = at + 1;
	memset(c, 0, t->csz);
	memcpy(c, &h, 8);
	t->count++;
	return c + t->hdr;
}

void *hpsi_cells_add(struct hpsi_cells *t, uint64_t h)
{
	return hpsi_cells_add_from(t, hpsi_cells_home(t, h), h);
}

void hpsi_cells_promote(struct hpsi_cells *t, unsigned char *c, uint64_t h)
{
	if (c <= hpsi_cells_home(t, h))
		return;
	/* The cell before c lies between the key's home and c, so the key
	 * may take it; its own key's home is at or before it, so it may go
	 * one further (every cell between stays taken). */
	unsigned char tmp[HPSI_CELL_MAX];
	memcpy(tmp, c - t->csz, t->csz);
	memcpy(c - t->csz, c, t->csz);
	memcpy(c, tmp, t->csz);
}

static size_t home_index(const struct hpsi_cells *t, uint64_t h);

size_t hpsi_cells_gather(const struct hpsi_cells *t, uint64_t from, size_t homes, uint64_t *out, size_t max,
			 uint64_t *end)
{
	*end = 0;
	if (!t->count)
		return 0;
	if (!from)
		from = 1;
	size_t h0 = home_index(t, from), h1 = h0 + homes;
	if (h1 < t->cap) /* the least hash of home h1: ceil(h1 * 2^64 / cap) */
		*end = (uint64_t)((((unsigned __int128)h1 << 64) + t->cap - 1) / t->cap);
	else
		h1 = t->cap;
	size_t n = 0;
	for (size_t i = h0; i < t->tail; i++) {
		uint64_t h = hpsi_cells_at(t->base + i * t->csz);
		if (!h) {
			if (i + 1 >= h1)
				break; /* the end of the last home's run */
			continue;
		}
		if (h < from || (*end && h >= *end))
			continue; /* a key of an earlier or a later home */
		if (n == max)
			return SIZE_MAX;
		out[n++] = h;
	}
	return n;
}

static size_t home_index(const struct hpsi_cells *t, uint64_t h)
{
	return (size_t)(((unsigned __int128)h * t->cap) >> 64);
}

unsigned char *hpsi_cells_next(const struct hpsi_cells *t, uint64_t from)
{
	if (!t->count)
		return NULL;
	if (!from)
		from = 1;
	/* homes grow with the hash: the keys of hash >= from have their home
	 * at or after from's, and each home's keys sit in the run from it */
	for (size_t home = home_index(t, from); home < t->cap; home++) {
		unsigned char *best = NULL;
		uint64_t least = 0;
		for (size_t i = home; i < t->tail; i++) {
			unsigned char *c = t->base + i * t->csz;
			uint64_t h = hpsi_cells_at(c);
			if (!h)
				break; /* the run's end: no key of this home further on */
			if (h >= from && (!best || h < least) && home_index(t, h) == home)
				best = c, least = h;
		}
		if (best)
			return best;
	}
	return NULL;
}

int hpsi_cells_walk(const struct hpsi_cells *t, int (*fn)(uint64_t key, uint32_t steps, void *vals, void *arg),
		    void *arg)
{
	for (size_t i = 0; i < t->tail; i++) {
		unsigned char *c = t->base + i * t->csz;
		uint64_t h = hpsi_cells_at(c);
		if (!h)
			continue;
		uint32_t steps = 0;
		if (t->steps)
			memcpy(&steps, c + t->hdr - 4, 4);
		int rc = fn(hpsi_cells_key(h), steps, c + t->hdr, arg);
		if (rc)
			return rc;
	}
	return 0;
}

size_t hpsi_cells_size(const struct hpsi_cells *t)
{
	return t->ncells * t->csz;
}

void hpsi_cells_shape_of(const struct hpsi_cells *t, struct hpsi_cells_shape *q)
{
	*q = (struct hpsi_cells_shape){.len = t->len, .csz = t->csz, .cap = t->cap, .ncells = t->ncells,
				       .tail = t->tail, .count = t->count, .fd = t->fd};
}

int hpsi_cells_adopt(struct hpsi_cells *t, int pid, const struct hpsi_cells_shape *q)
{
	/* the shape as any table of these settings has it: a cell size its
	 * length gives, the slack after the homes, the keys within the tail */
	if (!t->share || q->fd < 0 || !q->len || hpsi_cells_bytes_for(t, q->len) != q->csz || !q->cap ||
	    q->ncells <= q->cap || q->ncells > SIZE_MAX / q->csz || q->tail > q->ncells || q->count > q->tail ||
	    q->tail == q->ncells)
		return HPS_EINVAL;
	size_t bytes = (size_t)q->ncells * q->csz;
	int f, rc = hpsi_memfd_open(pid, q->fd, bytes, &f);
	if (rc)
		return rc;
	void *p = hpsi_memfd_map(f, 0, bytes);
	if (!p) {
		hpsi_memfd_free(NULL, 0, f);
		return HPS_ESYS;
	}
	hpsi_cells_free(t); /* what it held came by records before: the adopted cells hold it too */
	t->len = q->len;
	t->csz = q->csz;
	t->base = p;
	t->fd = f;
	t->cap = (size_t)q->cap, t->ncells = (size_t)q->ncells, t->tail = (size_t)q->tail, t->count = (size_t)q->count;
	return 0;
}
