#include "runtime/server/table.h"

#include <jemalloc/jemalloc.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/server/memfd.h"
#include "runtime/server/prefault.h"
#include "shm/heap.h"

#define WIN_BYTES ((size_t)HPSI_WIN_UNITS * 8)

/* Where a window's unused tail starts, when a record did not fit in it
 * (at least a header's room left; less is skipped without a mark). */
#define END_MARK UINT32_MAX

static uint64_t rec_units(const struct hpsi_table *t, uint32_t len)
{
	return 2 + ((uint64_t)len * t->vbytes + 7) / 8;
}

static uint64_t window_rest(uint64_t off)
{
	return HPSI_WIN_UNITS - (off & (HPSI_WIN_UNITS - 1));
}

/* Large parts of the table in huge pages (hpsi_local_alloc_huge); a
 * table's first window stays in small pages: a server with few keys keeps
 * a few KiB resident. */
static void *alloc_big(const struct hpsi_table *t, size_t bytes, int zero)
{
	if (t->nwin == 0)
		return mallocx(bytes, t->flags | (zero ? MALLOCX_ZERO : 0));
	return hpsi_local_alloc_huge(bytes, t->flags, zero);
}

/* k more windows in one piece: from the arena, or (share) the next k of
 * the windows' memfd, grown for them. */
static uint64_t *windows_alloc(struct hpsi_table *t, size_t k)
{
	if (!t->share)
		return alloc_big(t, k * WIN_BYTES, 0);
	if (hpsi_memfd_grow(t->wfd, (t->nwin + k) * WIN_BYTES))
		return NULL;
	return hpsi_memfd_map(t->wfd, t->nwin * WIN_BYTES, k * WIN_BYTES);
}

/* Slots for cap keys, zeros: from the arena, or (share) a memfd (*fd). */
static uint64_t *slots_alloc(struct hpsi_table *t, size_t cap, int *fd)
{
	*fd = -1;
	if (!t->share)
		return alloc_big(t, cap * sizeof *t->slots, 1);
	void *p;
	return hpsi_memfd_new(cap * sizeof *t->slots, &p, fd) ? NULL : p;
}

static void slots_free(struct hpsi_table *t, uint64_t *slots, size_t cap, int fd)
{
	if (!slots)
		return;
	if (t->share)
		hpsi_memfd_free(slots, cap * sizeof *slots, fd);
	else
		dallocx(slots, t->flags);
}

/* Windows get allocated in order, one allocation per record that needs a
 * fresh window (several windows for a record larger than one). */
static int add_windows(struct hpsi_table *t, size_t k)
{
	if (t->nwin + k > t->win_cap) {
		size_t ncap = t->win_cap ? t->win_cap : 16;
		while (ncap < t->nwin + k)
			ncap *= 2;
		uint64_t **nw = t->win ? rallocx(t->win, ncap * sizeof *nw, t->flags) : mallocx(ncap * sizeof *nw, t->flags);
		if (!nw)
			return HPS_ENOMEM;
		t->win = nw;
		uint32_t *ns = t->span ? rallocx(t->span, ncap * sizeof *ns, t->flags) : mallocx(ncap * sizeof *ns, t->flags);
		if (!ns)
			return HPS_ENOMEM;
		t->span = ns;
		t->win_cap = ncap;
	}
	/* a window of those set aside (hpsi_table_expect), mapped already or soon */
	uint64_t *base = k == 1 && t->spare_next < t->nspare ? t->spare[t->spare_next++] : windows_alloc(t, k);
	if (!base)
		return HPS_ENOMEM;
	for (size_t j = 0; j < k; j++) {
		t->win[t->nwin + j] = base + j * HPSI_WIN_UNITS;
		t->span[t->nwin + j] = j ? 0 : (uint32_t)k;
	}
	t->nwin += k;
	return 0;
}

/* The windows set aside and not taken, and the helper mapping them
 * (first: it may be in any of them, taken or not). */
static void drop_spare(struct hpsi_table *t)
{
	hpsi_prefault_stop(t->prefault);
	t->prefault = NULL;
	for (size_t j = t->spare_next; j < t->nspare; j++)
		dallocx(t->spare[j], t->flags);
	if (t->spare)
		dallocx(t->spare, t->flags);
	t->spare = NULL;
	t->nspare = t->spare_next = 0;
}

static void drop_windows(struct hpsi_table *t, size_t keep)
{
	hpsi_prefault_stop(t->prefault); /* it may be in a window freed here */
	t->prefault = NULL;
	for (size_t j = keep; j < t->nwin; j++)
		if (t->span[j] && t->share)
			hpsi_memfd_free(t->win[j], t->span[j] * WIN_BYTES, -1); /* (the file stays: grown again later) */
		else if (t->span[j])
			dallocx(t->win[j], t->flags);
	t->nwin = keep;
}

/* Where a record of n units goes when the pool ends at *cursor: after the
 * last record if it fits in that window, else at the start of the next
 * window (the tail left behind marked), taking as many windows as it
 * needs. *fresh tells that the record starts new windows. The one rule
 * both the plan and the adding follow, so that they agree. */
static uint64_t place(uint64_t *cursor, uint64_t n, int *fresh)
{
	uint64_t c = *cursor, in = c & (HPSI_WIN_UNITS - 1);
	*fresh = in == 0 || in + n > HPSI_WIN_UNITS;
	if (*fresh && in)
		c += window_rest(c);
	*cursor = c + n;
	return c;
}

/* An empty table's slots and first window (flags, vbytes, share and wfd
 * set). */
static int table_start(struct hpsi_table *t)
{
	t->cap = 1024;
	t->shift = 64 - 10;
	t->used = HPSI_TABLE_FIRST;
	t->slots = slots_alloc(t, t->cap, &t->sfd);
	if (!t->slots || add_windows(t, 1)) {
		hpsi_table_free(t);
		return HPS_ENOMEM;
	}
	return 0;
}

int hpsi_table_init(struct hpsi_table *t, int flags, uint32_t vbytes)
{
	memset(t, 0, sizeof *t);
	t->flags = flags;
	t->vbytes = vbytes;
	t->sfd = t->wfd = -1;
	return table_start(t);
}

void hpsi_table_free(struct hpsi_table *t)
{
	drop_spare(t);
	if (t->win)
		drop_windows(t, 0);
	if (t->win)
		dallocx(t->win, t->flags);
	if (t->span)
		dallocx(t->span, t->flags);
	slots_free(t, t->slots, t->cap, t->sfd);
	if (t->share)
		hpsi_memfd_free(NULL, 0, t->wfd);
	memset(t, 0, sizeof *t);
	t->sfd = t->wfd = -1;
}

int hpsi_table_share(struct hpsi_table *t)
{
	int flags = t->flags;
	uint32_t vbytes = t->vbytes;
	if (t->count)
		return HPS_EINVAL;
	hpsi_table_free(t);
	t->flags = flags;
	t->vbytes = vbytes;
	t->share = 1;
	int rc = hpsi_memfd_new(0, NULL, &t->wfd);
	if (!rc && !(rc = table_start(t)))
		return 0;
	hpsi_table_init(t, flags, vbytes); /* (table_start freed it) */
	return rc;
}

void hpsi_table_shape_of(const struct hpsi_table *t, struct hpsi_table_shape *q)
{
	*q = (struct hpsi_table_shape){.cap = t->cap, .count = t->count, .nwin = t->nwin, .used = t->used,
				       .vbytes = t->vbytes, .sfd = t->sfd, .wfd = t->wfd};
}

int hpsi_table_adopt(struct hpsi_table *t, int pid, const struct hpsi_table_shape *q)
{
	/* as any table has it: slots a power of two at most 3/4 used, the
	 * records inside the windows */
	if (!t->share || q->vbytes != t->vbytes || q->cap < 1024 || (q->cap & (q->cap - 1)) ||
	    q->cap > SIZE_MAX / 64 || q->count * 4 > q->cap * 3 || !q->nwin || q->nwin > SIZE_MAX / WIN_BYTES / 2 ||
	    q->used < HPSI_TABLE_FIRST || q->used > q->nwin * HPSI_WIN_UNITS)
		return HPS_EINVAL;
	size_t cap = (size_t)q->cap, nwin = (size_t)q->nwin;
	int sfd = -1, wfd = -1, rc = hpsi_memfd_open(pid, q->sfd, cap * 8, &sfd);
	if (!rc)
		rc = hpsi_memfd_open(pid, q->wfd, nwin * WIN_BYTES, &wfd);
	uint64_t *slots = rc ? NULL : hpsi_memfd_map(sfd, 0, cap * 8);
	uint64_t *base = rc ? NULL : hpsi_memfd_map(wfd, 0, nwin * WIN_BYTES); /* every window in one piece */
	uint64_t **win = rc ? NULL : mallocx(nwin * sizeof *win, t->flags);
	uint32_t *span = rc ? NULL : mallocx(nwin * sizeof *span, t->flags | MALLOCX_ZERO);
	if (!rc && (!slots || !base || !win || !span))
		rc = HPS_ESYS;
	if (rc) {
		hpsi_memfd_free(slots, cap * 8, sfd);
		hpsi_memfd_free(base, nwin * WIN_BYTES, wfd);
		if (win)
			dallocx(win, t->flags);
		if (span)
			dallocx(span, t->flags);
		return rc;
	}
	for (size_t j = 0; j < nwin; j++)
		win[j] = base + j * HPSI_WIN_UNITS;
	span[0] = (uint32_t)nwin;
	int flags = t->flags;
	hpsi_table_free(t);
	*t = (struct hpsi_table){.slots = slots, .cap = cap, .shift = 64 - (unsigned)__builtin_ctzll(q->cap),
				 .count = (size_t)q->count, .win = win, .span = span, .nwin = nwin, .win_cap = nwin,
				 .used = q->used, .vbytes = q->vbytes, .flags = flags, .share = 1, .sfd = sfd, .wfd = wfd};
	return 0;
}

static void put_slot(uint64_t *slots, size_t mask, unsigned shift, uint64_t key, uint64_t off)
{
	uint64_t h = hpsi_table_hash(key);
	size_t i = (size_t)(h >> shift);
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = off << 16 | ((h >> 16) & 0xffff);
}

/* Calls fn with each record's offset, in the order of the pool. */
/* The first record at or after off (past window tails), or t->used. */
static uint64_t skip_to_rec(const struct hpsi_table *t, uint64_t off)
{
	while (off < t->used) {
		if (window_rest(off) < 2) {
			off += window_rest(off);
			continue;
		}
		struct hpsi_rec *r = hpsi_table_rec(t, off);
		if (r->len != END_MARK || r->steps != END_MARK)
			return off;
		off += window_rest(off);
	}
	return off;
}

struct hpsi_rec *hpsi_table_next(const struct hpsi_table *t, uint64_t *cursor)
{
	uint64_t off = skip_to_rec(t, *cursor < HPSI_TABLE_FIRST ? HPSI_TABLE_FIRST : *cursor);
	*cursor = off;
	if (off >= t->used)
		return NULL;
	struct hpsi_rec *r = hpsi_table_rec(t, off);
	*cursor = off + rec_units(t, r->len);
	return r;
}

static int walk_offsets(const struct hpsi_table *t, int (*fn)(const struct hpsi_table *t, uint64_t off, void *arg),
			void *arg)
{
	for (uint64_t off = skip_to_rec(t, HPSI_TABLE_FIRST); off < t->used;
	     off = skip_to_rec(t, off + rec_units(t, hpsi_table_rec(t, off)->len))) {
		int rc = fn(t, off, arg);
		if (rc)
			return rc;
	}
	return 0;
}

struct rehash {
	uint64_t *slots;
	size_t mask;
	unsigned shift;
};

static int rehash_one(const struct hpsi_table *t, uint64_t off, void *arg)
{
	struct rehash *h = arg;
	put_slot(h->slots, h->mask, h->shift, hpsi_table_rec(t, off)->key, off);
	return 0;
}

/* Doubles the slots, reading the keys in the pool's order (a stream)
 * rather than through the old slots (a miss per key). */
int hpsi_table_reserve_keys(struct hpsi_table *t, size_t keys)
{
	size_t ncap = t->cap;
	unsigned nshift = t->shift;
	while ((t->count + keys) * 4 > ncap * 3)
		ncap *= 2, nshift--;
	if (ncap == t->cap)
		return 0;
	int nfd;
	uint64_t *ns = slots_alloc(t, ncap, &nfd);
	if (!ns)
		return HPS_ENOMEM;
	struct rehash h = {ns, ncap - 1, nshift};
	walk_offsets(t, rehash_one, &h);
	slots_free(t, t->slots, t->cap, t->sfd);
	t->slots = ns;
	t->sfd = nfd;
	t->cap = ncap;
	t->shift = nshift;
	return 0;
}

void hpsi_table_expect(struct hpsi_table *t, size_t keys, uint64_t bytes)
{
	if (hpsi_table_reserve_keys(t, keys) || t->share || t->nspare)
		return;
	uint64_t n = (bytes + WIN_BYTES - 1) / WIN_BYTES;
	if (!n || !(t->spare = mallocx(n * sizeof *t->spare, t->flags)))
		return;
	/* single windows, each its own allocation as add_windows makes them
	 * (a record larger than a window still gets fresh ones, in one piece) */
	while (t->nspare < n && (t->spare[t->nspare] = alloc_big(t, WIN_BYTES, 0)))
		t->nspare++;
	t->prefault = hpsi_prefault_start((void *const *)t->spare, t->nspare, WIN_BYTES);
}

void hpsi_table_plan_begin(const struct hpsi_table *t, struct hpsi_table_plan *p)
{
	p->cursor = t->used;
	p->nwin0 = t->nwin;
}

int hpsi_table_plan_rec(struct hpsi_table *t, struct hpsi_table_plan *p, uint32_t len)
{
	int fresh;
	uint64_t n = rec_units(t, len);
	place(&p->cursor, n, &fresh);
	if (fresh && add_windows(t, (size_t)((n + HPSI_WIN_UNITS - 1) >> HPSI_WIN_BITS))) {
		drop_windows(t, p->nwin0);
		return HPS_ENOMEM;
	}
	return 0;
}

struct hpsi_rec *hpsi_table_add(struct hpsi_table *t, uint64_t key, uint32_t len)
{
	int fresh;
	uint64_t was = t->used, off = place(&t->used, rec_units(t, len), &fresh);
	if (fresh && off != was && window_rest(was) >= 2) {
		struct hpsi_rec *mark = hpsi_table_rec(t, was);
		mark->len = mark->steps = END_MARK;
	}
	put_slot(t->slots, t->cap - 1, t->shift, key, off);
	t->count++;
	struct hpsi_rec *r = hpsi_table_rec(t, off);
	*r = (struct hpsi_rec){.key = key, .len = len};
	return r;
}

struct visit {
	int (*fn)(struct hpsi_rec *r, void *arg);
	void *arg;
};

static int visit_one(const struct hpsi_table *t, uint64_t off, void *arg)
{
	struct visit *v = arg;
	return v->fn(hpsi_table_rec(t, off), v->arg);
}

int hpsi_table_walk(const struct hpsi_table *t, int (*fn)(struct hpsi_rec *r, void *arg), void *arg)
{
	struct visit v = {fn, arg};
	return walk_offsets(t, visit_one, &v);
}

size_t hpsi_table_bytes(const struct hpsi_table *t)
{
	return t->cap * sizeof *t->slots + t->nwin * HPSI_WIN_UNITS * 8;
}
