#include "runtime/server/store.h"

#include <jemalloc/jemalloc.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "runtime/server/cells.h"
#include "runtime/server/table.h"
#include "shm/heap.h"

/* Lengths that get cells of their own; keys of further lengths, and the
 * one key whose hash is 0, go to the pool (table.h). A job has few widths
 * (often one); a lens-mode store of many lengths keeps its first ones in
 * cells. */
#define STORE_CELLS 4

struct hpsi_store {
	struct hpsi_cells cells[STORE_CELLS]; /* cells[0 .. ncells - 1]: one length each (cells.h) */
	unsigned ncells;
	struct hpsi_table tab; /* the pool: keys of other lengths, and the key of hash 0 (table.h) */
	/* per request key: its values (NULL when absent), their count, its
	 * hpsi_cells_hash; found_cap keys */
	void **found;
	uint32_t *flen;
	uint64_t *hash;
	void **spot;  /* a new key's place in the cells `spot_in` (where pass 1's scan ended) */
	struct hpsi_cells *spot_in;
	size_t *away; /* the request's keys found past their home in the cells `away_in` */
	size_t naway;
	struct hpsi_cells *away_in;
	size_t found_cap;
	uint64_t requests; /* handled: which keys promote takes */
	/* hpsi_store_next: the sorted hashes [walk_lo, walk_end) of the cells
	 * walk_part (walk_end 0: to the last), gathered during walk walk_id */
	uint64_t *walk;
	size_t walk_n, walk_cap;
	uint64_t walk_lo, walk_end, walk_id, walks;
	uint32_t walk_part;
	int filling;       /* most keys of the last fixed-width request were new */
	int flags;      /* mallocx flags: the NUMA-local arena */
	int steps;      /* keys keep a push count, 4 bytes before their values (Adam) */
	int share;      /* cells go whole to another server (hpsi_store_share) */
	int by_records; /* ...but a copy walks them record by record (hpsi_store_by_records) */
	int like_share; /* does not share, but stores made like it do (hpsi_store_create_idle) */
	struct hpsi_updater upd;
	struct hpsi_init init;
	unsigned dtype; /* HPSI_WIRE_F32 or HPSI_WIRE_F64 */
	size_t esz;     /* bytes per value */
	/* A direct store (HOGWILD mode) holds exactly the keys dfirst ..
	 * dfirst + dcount - 1, dwidth f32 values each, in the dense array
	 * dvals and no table. dvals is the segment's array, or a private copy
	 * (dprivate) while a checkpoint loads. */
	float *dvals;
	uint64_t dfirst, dcount;
	uint32_t dwidth;
	int dprivate;
};

static void free_found(struct hpsi_store *st)
{
	if (st->found)
		dallocx(st->found, st->flags);
	if (st->flen)
		dallocx(st->flen, st->flags);
	if (st->hash)
		dallocx(st->hash, st->flags);
	if (st->away)
		dallocx(st->away, st->flags);
	if (st->spot)
		dallocx(st->spot, st->flags);
	st->found = NULL, st->flen = NULL, st->hash = NULL, st->away = NULL, st->spot = NULL;
	st->found_cap = 0;
}

/* Room for what pass 1 notes about each key of a request of n keys. */
static int room_for(struct hpsi_store *st, size_t n)
{
	if (n <= st->found_cap)
		return 0;
	free_found(st);
	size_t cap = n * 2;
	st->found = mallocx(cap * sizeof *st->found, st->flags);
	st->flen = mallocx(cap * sizeof *st->flen, st->flags);
	st->hash = mallocx(cap * sizeof *st->hash, st->flags);
	st->away = mallocx(cap * sizeof *st->away, st->flags);
	st->spot = mallocx(cap * sizeof *st->spot, st->flags);
	if (!st->found || !st->flen || !st->hash || !st->away || !st->spot) {
		free_found(st);
		return HPS_ENOMEM;
	}
	st->found_cap = cap;
	return 0;
}

struct hpsi_store *hpsi_store_create(const struct hpsi_updater *u, const struct hpsi_init *in, unsigned dtype)
{
	int flags = hpsi_local_arena_flags();
	struct hpsi_store *st = mallocx(sizeof *st, flags | MALLOCX_ZERO);
	if (!st)
		return NULL;
	st->flags = flags;
	st->dtype = dtype == HPSI_WIRE_F64 ? HPSI_WIRE_F64 : HPSI_WIRE_F32;
	st->esz = hpsi_dtype_size(st->dtype);
	if (u)
		st->upd = *u;
	else
		hpsi_updater_parse(NULL, "", &st->upd);
	if (in)
		st->init = *in;
	st->steps = st->upd.kind == HPSI_UPD_ADAM; /* the only updater that reads a key's push count */
	for (unsigned k = 0; k < STORE_CELLS; k++)
		hpsi_cells_init(&st->cells[k], flags, (uint32_t)st->esz, st->upd.state, st->steps);
	if (hpsi_table_init(&st->tab, flags, (uint32_t)(st->esz * (1 + st->upd.state)))) {
		dallocx(st, flags);
		return NULL;
	}
	return st;
}

struct hpsi_store *hpsi_store_create_direct(const struct hpsi_updater *u, const struct hpsi_init *in,
					     uint64_t first, uint64_t count, uint32_t width, float *vals)
{
	if (u && u->state) {
		hpsi_error("HPS_DIRECT: a direct range keeps no optimizer state beside its values; use sum, assign or sgd (HPS_UPDATER)");
		return NULL;
	}
	struct hpsi_store *st = hpsi_store_create(u, in, HPSI_WIRE_F32);
	if (!st)
		return NULL;
	st->dfirst = first, st->dcount = count, st->dwidth = width;
	st->dprivate = !vals;
	st->dvals = vals ? vals : mallocx(count * width * sizeof(float), st->flags);
	if (!st->dvals) {
		hpsi_store_destroy(st);
		return NULL;
	}
	for (uint64_t i = 0; i < count; i++)
		hpsi_init_values(&st->init, &st->upd, first + i, st->dvals + i * width, NULL, width);
	return st;
}

int hpsi_store_direct_commit(struct hpsi_store *into, const struct hpsi_store *loaded)
{
	if (!into->dvals || !loaded->dvals || into->dcount != loaded->dcount || into->dwidth != loaded->dwidth)
		return HPS_EINVAL;
	memcpy(into->dvals, loaded->dvals, into->dcount * into->dwidth * sizeof(float));
	return 0;
}

struct hpsi_store *hpsi_store_create_like(const struct hpsi_store *st)
{
	if (st->dvals)
		return hpsi_store_create_direct(&st->upd, &st->init, st->dfirst, st->dcount, st->dwidth, NULL);
	struct hpsi_store *like = hpsi_store_create(&st->upd, &st->init, st->dtype);
	if (like && (st->share || st->like_share) && hpsi_store_share(like)) {
		hpsi_store_destroy(like);
		return NULL;
	}
	return like;
}

struct hpsi_store *hpsi_store_create_idle(const struct hpsi_store *st)
{
	if (st->dvals)
		return hpsi_store_create_like(st);
	struct hpsi_store *idle = hpsi_store_create(&st->upd, &st->init, st->dtype);
	if (idle && (st->share || st->like_share))
		hpsi_store_share_later(idle);
	return idle;
}

void hpsi_store_share_later(struct hpsi_store *st)
{
	st->like_share = !st->dvals;
}

int hpsi_store_share(struct hpsi_store *st)
{
	if (st->dvals)
		return 0; /* (a direct store has no tables) */
	int rc = hpsi_table_share(&st->tab);
	if (rc)
		return rc;
	st->share = 1;
	for (unsigned k = 0; k < STORE_CELLS; k++)
		hpsi_cells_share(&st->cells[k]);
	return 0;
}

int hpsi_store_is_direct(const struct hpsi_store *st)
{
	return st->dvals != NULL;
}

void hpsi_store_destroy(struct hpsi_store *st)
{
	if (!st)
		return;
	if (st->dprivate && st->dvals)
		dallocx(st->dvals, st->flags);
	for (unsigned k = 0; k < STORE_CELLS; k++)
		hpsi_cells_free(&st->cells[k]);
	hpsi_table_free(&st->tab);
	free_found(st);
	if (st->walk)
		dallocx(st->walk, st->flags);
	dallocx(st, st->flags);
}

size_t hpsi_store_size(const struct hpsi_store *st)
{
	size_t n = st->tab.count;
	for (unsigned k = 0; k < st->ncells; k++)
		n += st->cells[k].count;
	return st->dvals ? st->dcount : n;
}

size_t hpsi_store_bytes(const struct hpsi_store *st)
{
	if (st->dvals)
		return (size_t)st->dcount * st->dwidth * sizeof(float);
	/* the cells, and the pool's records and slot array */
	size_t b = (size_t)st->tab.used * 8 + st->tab.cap * sizeof *st->tab.slots;
	for (unsigned k = 0; k < st->ncells; k++)
		b += hpsi_cells_size(&st->cells[k]);
	return b;
}

/* The hot loop of a dense push: restrict lets the compiler vectorize it
 * without a runtime overlap check (a key's values never alias the
 * request's). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void add_floats(float *restrict dst, const float *restrict src, size_t n)
{
	for (size_t j = 0; j < n; j++)
		dst[j] += src[j];
}

static uint32_t want_len(const hps_request *r, size_t i)
{
	return r->width ? r->width : (r->lens ? r->lens[i] : 0);
}

/* A request to a direct store: every key lies in the range and has the
 * range's width; pushes update the shared array like any other writer. */
static int handle_direct(struct hpsi_store *st, hps_request *r)
{
	int push = r->type != HPS_REQ_PULL, pull = r->type != HPS_REQ_PUSH;
	uint32_t width = st->dwidth;
	for (size_t i = 0; i < r->nkeys; i++) {
		if (r->keys[i] - st->dfirst >= st->dcount) {
			hpsi_warn("key %llu lies outside this server's direct range", (unsigned long long)r->keys[i]);
			return HPS_ENOKEY;
		}
		if ((push || r->width) && want_len(r, i) != width) {
			hpsi_warn("key %llu holds %u floats, request from worker %d has %u",
				  (unsigned long long)r->keys[i], width, r->sender, want_len(r, i));
			return HPS_EVALLEN;
		}
	}
	if (pull && (uint64_t)r->nkeys * width > r->out_cap) {
		hpsi_warn("answer of %llu floats does not fit the %zu of the request (vals_cap)",
			  (unsigned long long)r->nkeys * width, r->out_cap);
		return HPS_EINVAL;
	}
	const float *g = r->vals;
	float *out = r->out;
	for (size_t i = 0; i < r->nkeys; i++) {
		float *v = st->dvals + (r->keys[i] - st->dfirst) * width;
		if (push) {
			if (st->upd.kind == HPSI_UPD_SUM)
				add_floats(v, g, width);
			else
				hpsi_updater_apply(&st->upd, v, NULL, g, width, 1);
			g += width;
		}
		if (pull) {
			if (r->out_lens)
				r->out_lens[i] = width;
			memcpy(out, v, width * sizeof(float));
			out += width;
		}
	}
	return pull ? (int)(r->nkeys * width) : 0;
}

/* A key's values in the pool (NULL when absent) and their count. */
static inline void *find_pool(const struct hpsi_store *st, uint64_t key, uint32_t *len)
{
	if (st->tab.count) {
		struct hpsi_rec *e = hpsi_table_find(&st->tab, key);
		if (e) {
			*len = e->len;
			return hpsi_rec_vals(e);
		}
	}
	*len = 0;
	return NULL;
}

/* A key's values (NULL when absent) and their count, looking in every
 * cells but `except` and then in the pool; h is its hpsi_cells_hash. */
static void *find_except(const struct hpsi_store *st, uint64_t key, uint64_t h, const struct hpsi_cells *except,
			 uint32_t *len)
{
	for (unsigned k = 0; h && k < st->ncells; k++) {
		const struct hpsi_cells *cl = &st->cells[k];
		unsigned char *c = cl != except ? hpsi_cells_find(cl, h) : NULL;
		if (c) {
			*len = cl->len;
			return hpsi_cells_vals(cl, c);
		}
	}
	return find_pool(st, key, len);
}

/* The same, in the cells of the length the request expects first
 * (`first`, NULL: none): a key found elsewhere has another length, one
 * the request must refuse. */
static void *find(const struct hpsi_store *st, uint64_t key, uint64_t h, const struct hpsi_cells *first,
		  uint32_t *len)
{
	unsigned char *c = first && h ? hpsi_cells_find(first, h) : NULL;
	if (c) {
		*len = first->len;
		return hpsi_cells_vals(first, c);
	}
	return find_except(st, key, h, first, len);
}

/* The cells of keys of len values, or NULL. */
static struct hpsi_cells *cells_of(struct hpsi_store *st, uint32_t len)
{
	for (unsigned k = 0; k < st->ncells; k++)
		if (st->cells[k].len == len)
			return &st->cells[k];
	return NULL;
}

/* Where a new key of hash h and len values goes: the cells of its length,
 * new cells for it while fewer than STORE_CELLS lengths have some and its
 * cell is small enough, else the pool (NULL). */
static struct hpsi_cells *cells_for_new(struct hpsi_store *st, uint64_t h, uint32_t len)
{
	struct hpsi_cells *cl = h ? cells_of(st, len) : NULL;
	if (cl || !h || st->ncells == STORE_CELLS || hpsi_cells_set_len(&st->cells[st->ncells], len))
		return cl;
	return &st->cells[st->ncells++];
}

size_t hpsi_store_shape(const struct hpsi_store *st, uint32_t *lens, uint64_t *counts, size_t max)
{
	size_t n = 0;
	for (unsigned k = 0; k < st->ncells && n < max; k++)
		if (st->cells[k].count) /* shared cells: the length alone, their keys go whole */
			lens[n] = st->cells[k].len,
			counts[n++] = st->cells[k].share && !st->by_records ? 0 : st->cells[k].count;
	return n;
}

size_t hpsi_store_whole(const struct hpsi_store *st, struct hpsi_cells_shape *out, size_t max)
{
	size_t n = 0;
	for (unsigned k = 0; !st->by_records && k < st->ncells && n < max; k++)
		if (st->cells[k].share && st->cells[k].count && st->cells[k].fd >= 0)
			hpsi_cells_shape_of(&st->cells[k], &out[n++]);
	return n;
}

int hpsi_store_shares(const struct hpsi_store *st)
{
	return st->share;
}

void hpsi_store_by_records(struct hpsi_store *st)
{
	st->by_records = 1;
}

/* The tables go whole to another server (not by records). */
static int goes_whole(const struct hpsi_store *st)
{
	return st->share && !st->by_records;
}

int hpsi_store_goes_whole(const struct hpsi_store *st)
{
	return goes_whole(st);
}

int hpsi_store_whole_pool(const struct hpsi_store *st, struct hpsi_table_shape *out)
{
	if (!goes_whole(st) || !st->tab.count)
		return 0;
	hpsi_table_shape_of(&st->tab, out);
	return 1;
}

int hpsi_store_adopt_pool(struct hpsi_store *st, int pid, const struct hpsi_table_shape *q)
{
	return st->dvals || !st->share ? HPS_EINVAL : hpsi_table_adopt(&st->tab, pid, q);
}

static int copy_cell(uint64_t key, uint32_t steps, void *vals, void *arg);

struct copy_into {
	struct hpsi_store *st;
	uint32_t len;
};

int hpsi_store_adopt(struct hpsi_store *st, int pid, const struct hpsi_cells_shape *q)
{
	if (st->dvals || !st->share)
		return HPS_EINVAL;
	struct hpsi_cells *cl = cells_for_new(st, 1, q->len); /* any hash but 0 */
	if (cl && cl->share)
		return hpsi_cells_adopt(cl, pid, q);
	/* no cells of its own for that length: the source's mapped aside,
	 * their keys added one by one where this store keeps them */
	struct hpsi_cells aside;
	hpsi_cells_init(&aside, st->flags, (uint32_t)st->esz, st->upd.state, st->steps);
	hpsi_cells_share(&aside);
	int rc = hpsi_cells_set_len(&aside, q->len);
	if (!rc)
		rc = hpsi_cells_adopt(&aside, pid, q);
	if (!rc)
		rc = hpsi_cells_walk(&aside, copy_cell, &(struct copy_into){st, q->len});
	hpsi_cells_free(&aside);
	return rc;
}

int hpsi_store_expect(struct hpsi_store *st, uint32_t len, uint64_t keys)
{
	struct hpsi_cells *cl = st->dvals || !len ? NULL : cells_for_new(st, 1, len); /* any hash but 0 */
	if (!cl || !keys)
		return 0;
	return keys > SIZE_MAX / 2048 || hpsi_cells_reserve(cl, (size_t)keys) < 0 ? HPS_ENOMEM : 0;
}

void hpsi_store_pool_shape(const struct hpsi_store *st, uint64_t *keys, uint64_t *bytes)
{
	*keys = st->dvals ? 0 : st->tab.count;
	*bytes = st->dvals ? 0 : (st->tab.used - HPSI_TABLE_FIRST) * 8;
}

void hpsi_store_expect_pool(struct hpsi_store *st, uint64_t keys, uint64_t bytes)
{
	if (!st->dvals && keys && keys <= SIZE_MAX / 16)
		hpsi_table_expect(&st->tab, (size_t)keys, bytes);
}

/* Starting values and state of a key just added. */
static void init_vals(struct hpsi_store *st, uint64_t key, void *w, uint32_t len)
{
	if (st->dtype == HPSI_WIRE_F64)
		hpsi_init_values64(&st->init, &st->upd, key, w, (double *)w + len, len);
	else
		hpsi_init_values(&st->init, &st->upd, key, w, (float *)w + len, len);
}

/* Adds the keys pass 1 found absent, with their initial values. Room
 * for all of them first, so that a request either adds every key or
 * changes nothing; when cells grew for it, every key is found again (a
 * record found in pass 1 moved). */
static int add_keys(struct hpsi_store *st, const hps_request *r, size_t new_keys)
{
	size_t n = r->nkeys, per[STORE_CELLS] = {0}, in_cells = 0;
	for (size_t i = 0; i < n; i++) {
		struct hpsi_cells *cl = st->found[i] ? NULL : cells_for_new(st, st->hash[i], want_len(r, i));
		if (cl)
			per[cl - st->cells]++, in_cells++;
	}
	int moved = 0;
	for (unsigned k = 0; k < st->ncells; k++) {
		int rc = per[k] ? hpsi_cells_reserve(&st->cells[k], per[k]) : 0;
		if (rc < 0)
			return HPS_ENOMEM;
		moved |= rc;
	}
	/* pass 1 noted where each new key of a fixed-width request goes in
	 * the cells of its width, unless they grew since */
	struct hpsi_cells *spots = moved ? NULL : st->spot_in;
	if (new_keys > in_cells) {
		if (hpsi_table_reserve_keys(&st->tab, new_keys - in_cells))
			return HPS_ENOMEM;
		struct hpsi_table_plan p;
		hpsi_table_plan_begin(&st->tab, &p);
		for (size_t i = 0; i < n; i++)
			if (!st->found[i] && !cells_for_new(st, st->hash[i], want_len(r, i)) &&
			    hpsi_table_plan_rec(&st->tab, &p, want_len(r, i)))
				return HPS_ENOMEM;
	}
	enum { AHEAD = 16 };
	for (size_t i = 0; i < n; i++) {
		if (spots && i + AHEAD < n && !st->found[i + AHEAD] && st->spot[i + AHEAD])
			hpsi_cells_prefetch(st->spot[i + AHEAD], spots->csz);
		if (st->found[i])
			continue;
		uint32_t len = want_len(r, i);
		struct hpsi_cells *cl = cells_for_new(st, st->hash[i], len);
		void *v = !cl ? hpsi_rec_vals(hpsi_table_add(&st->tab, r->keys[i], len))
			  : cl == spots ? hpsi_cells_add_from(cl, st->spot[i], st->hash[i])
					: hpsi_cells_add(cl, st->hash[i]);
		init_vals(st, r->keys[i], v, len);
		st->found[i] = v, st->flen[i] = len;
	}
	for (size_t i = 0; moved && i < n; i++)
		st->found[i] = find(st, r->keys[i], st->hash[i], cells_of(st, want_len(r, i)), &st->flen[i]);
	if (moved)
		st->naway = 0;
	return 0;
}

/* The common push: f32 sums of a fixed width onto keys that all exist. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void sum_fixed(void *const *found, size_t n, const float *restrict g, uint32_t width)
{
	if (width == 1) {
		for (size_t i = 0; i < n; i++)
			*(float *)found[i] += g[i];
		return;
	}
	for (size_t i = 0; i < n; i++, g += width) {
		float *restrict v = found[i];
		for (uint32_t j = 0; j < width; j++)
			v[j] += g[j];
	}
}

/* The common pull: f32 values of a fixed width; absent keys read zeros
 * (and length 0). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void pull_fixed(void *const *found, size_t n, float *restrict out, uint32_t width, uint32_t *out_lens)
{
	for (size_t i = 0; i < n; i++, out += width) {
		const float *restrict v = found[i];
		if (out_lens)
			out_lens[i] = v ? width : 0;
		if (!v)
			memset(out, 0, width * sizeof(float));
		else if (width == 1)
			out[0] = v[0];
		else
			for (uint32_t j = 0; j < width; j++)
				out[j] = v[j];
	}
}

/* Pass 2 of any other request: applies the push, then reads the answer;
 * returns the values written. */
static size_t apply_general(struct hpsi_store *st, hps_request *r, int push, int pull)
{
	const unsigned char *src = (const unsigned char *)r->vals;
	unsigned char *dst = (unsigned char *)r->out;
	size_t esz = st->esz;
	for (size_t i = 0; i < r->nkeys; i++) {
		void *v = st->found[i];
		uint32_t len = want_len(r, i);
		if (push) {
			uint32_t step = 1;
			if (st->steps) { /* the count sits right before the values, in cells and records */
				memcpy(&step, (char *)v - 4, 4);
				step++;
				memcpy((char *)v - 4, &step, 4);
			}
			if (st->dtype == HPSI_WIRE_F64)
				hpsi_updater_apply64(&st->upd, v, (double *)v + len, (const double *)src, len, step);
			else if (st->upd.kind != HPSI_UPD_SUM)
				hpsi_updater_apply(&st->upd, v, (float *)v + len, (const float *)src, len, step);
			else
				add_floats(v, (const float *)src, len);
			src += len * esz;
		}
		if (pull) {
			uint32_t have = v ? st->flen[i] : 0;
			if (r->out_lens)
				r->out_lens[i] = have;
			if (!v) {
				memset(dst, 0, (r->width ? len : 0) * esz);
				dst += r->width ? len * esz : 0;
				continue;
			}
			memcpy(dst, v, have * esz);
			dst += have * esz;
		}
	}
	return (size_t)(dst - (unsigned char *)r->out) / esz;
}

/* After a request to cells larger than the cache: a quarter of its keys
 * found past their home move one cell nearer (cells.h), so that the keys
 * most requests carry end up at their homes (a table in the cache gains
 * nothing from it). A quarter: a frequent key still walks home
 * within a few requests, while a rare one (most of a skewed table) rarely
 * pushes a frequent one back; every other request then pays a quarter of
 * the swaps. A key whose cell an earlier key of the request took is
 * skipped (its pointer is stale); none is noted when the cells grew
 * during the request. */
static void promote(struct hpsi_store *st)
{
	st->requests++;
	for (size_t k = 0; k < st->naway; k++) {
		size_t i = st->away[k];
		if ((i + st->requests) & 3)
			continue;
		unsigned char *c = (unsigned char *)st->found[i] - st->away_in->hdr;
		if (hpsi_cells_at(c) == st->hash[i])
			hpsi_cells_promote(st->away_in, c, st->hash[i]);
	}
	st->naway = 0;
}

/* Cells of a table larger than this are asked for ahead of their lookup;
 * while a table fills, INSERT_SPAN cells from each home (a new key's
 * lookup reads its run to the end: about 6 cells at 70% load, 13 at 80%). */
#define PREFETCH_BYTES ((size_t)1 << 20)
#define INSERT_SPAN 8

int hpsi_store_handle(hps_request *r, void *arg)
{
	struct hpsi_store *st = arg;
	if (st->dvals)
		return handle_direct(st, r);
	int push = r->type != HPS_REQ_PULL, pull = r->type != HPS_REQ_PUSH;
	size_t n = r->nkeys;
	if (room_for(st, n))
		return HPS_ENOMEM;
	const uint64_t *keys = r->keys;
	void **found = st->found;
	uint32_t *flen = st->flen;
	uint64_t *hash = st->hash;
	/* Pass 1: look every key up and check lengths; nothing changes yet. */
	uint64_t out_floats = 0;
	size_t new_keys = 0, naway = 0;
	struct hpsi_cells *want = r->width ? cells_of(st, r->width) : NULL;
	if (want && want->count) {
		/* A fixed-width request looks in the cells of its width first.
		 * A table larger than the cache misses once per key (its cell):
		 * ask for the cell of the key AHEAD places ahead, so that the
		 * misses of that many keys overlap. The homes go into found[]
		 * first (a multiply each, none waiting for another); a copy of
		 * the table's shape stays in registers (stores to found[] could
		 * alias it). */
		enum { AHEAD = 32 };
		const struct hpsi_cells cw = *want;
		int ahead = hpsi_cells_size(&cw) >= PREFETCH_BYTES;
		/* While most keys are new (a table filling), a lookup reads its
		 * run to the end, several cells: ask for them all. */
		size_t span = st->filling ? INSERT_SPAN * cw.csz : cw.csz;
		for (size_t i = 0; i < n; i++) {
			uint64_t h = hpsi_cells_hash(keys[i]);
			hash[i] = h;
			found[i] = h ? hpsi_cells_home(&cw, h) : NULL;
			if (ahead && i < AHEAD && h) /* the first keys' cells: the loop below asks for the others */
				hpsi_cells_prefetch(found[i], span);
		}
		for (size_t i = 0; i < n; i++) {
			if (ahead && i + AHEAD < n && found[i + AHEAD])
				hpsi_cells_prefetch(found[i + AHEAD], span);
			unsigned char *home = found[i], *c = home ? hpsi_cells_scan(&cw, home, hash[i]) : NULL;
			if (c && hpsi_cells_at(c) == hash[i]) {
				found[i] = hpsi_cells_vals(&cw, c), flen[i] = cw.len;
				if (c != home && ahead) /* promote: only where misses cost */
					st->away[naway++] = i;
				continue;
			}
			st->spot[i] = c; /* where the key would go */
			uint32_t have;
			void *v = find_except(st, keys[i], hash[i], want, &have);
			found[i] = v, flen[i] = have;
			if (v && have != r->width) {
				hpsi_warn("key %llu holds %u floats, request from worker %d has %u",
					  (unsigned long long)keys[i], have, r->sender, r->width);
				return HPS_EVALLEN;
			}
			new_keys += !v;
		}
		out_floats = (uint64_t)n * r->width;
		st->filling = new_keys * 2 > n;
		st->spot_in = want;
	} else {
		st->spot_in = NULL;
		/* Any other request. Keys in the pool miss twice (slot, record)
		 * in a large one: their slots are asked for AHEAD places ahead
		 * and their records, once the slot is in, AHEAD / 2 places ahead. */
		enum { AHEAD = 16 };
		int pool_ahead = st->tab.cap >= (1u << 15);
		size_t rec_bytes =
			sizeof(struct hpsi_rec) + (r->width ? r->width : 1) * (push ? st->tab.vbytes : st->esz);
		for (size_t i = 0; i < n; i++)
			hash[i] = hpsi_cells_hash(keys[i]);
		for (size_t i = 0; i < n; i++) {
			if (pool_ahead && i + AHEAD < n)
				hpsi_table_prefetch_slot(&st->tab, keys[i + AHEAD]);
			if (pool_ahead && i + AHEAD / 2 < n)
				hpsi_table_prefetch_rec(&st->tab, keys[i + AHEAD / 2], rec_bytes);
			uint32_t have, len = want_len(r, i);
			void *v = find(st, keys[i], hash[i], push || r->width ? cells_of(st, len) : NULL, &have);
			found[i] = v, flen[i] = have;
			if (v && (push || r->width) && have != len) {
				hpsi_warn("key %llu holds %u floats, request from worker %d has %u",
					  (unsigned long long)keys[i], have, r->sender, len);
				return HPS_EVALLEN;
			}
			out_floats += push || r->width ? len : have;
			new_keys += !v;
		}
	}
	if (pull && out_floats > r->out_cap) {
		hpsi_warn("answer of %llu floats does not fit the %zu of the request (vals_cap)",
			  (unsigned long long)out_floats, r->out_cap);
		return HPS_EINVAL;
	}
	st->naway = naway, st->away_in = want;
	/* fixed-width pulls create keys when their initial values are not 0 */
	int creates = push || (r->width && st->init.kind != HPSI_INIT_ZEROS);
	if (creates && new_keys && add_keys(st, r, new_keys))
		return HPS_ENOMEM;
	/* Pass 2: apply the push, then read the answer. */
	int f32 = st->dtype == HPSI_WIRE_F32;
	size_t wrote;
	if (f32 && r->width && push && !pull && st->upd.kind == HPSI_UPD_SUM) {
		sum_fixed(found, n, r->vals, r->width);
		wrote = 0;
	} else if (f32 && r->width && pull && !push) {
		pull_fixed(found, n, r->out, r->width, r->out_lens);
		wrote = n * r->width;
	} else {
		wrote = apply_general(st, r, push, pull);
	}
	promote(st);
	return pull ? (int)wrote : 0;
}

struct visit {
	hpsi_store_visit fn;
	void *arg;
	uint32_t len; /* of the cells walked */
	int steps;
};

static int visit_cell(uint64_t key, uint32_t steps, void *vals, void *arg)
{
	struct visit *v = arg;
	return v->fn(key, v->len, steps, vals, v->arg);
}

static int visit_rec(struct hpsi_rec *e, void *arg)
{
	struct visit *v = arg;
	return v->fn(e->key, e->len, v->steps ? e->steps : 0, hpsi_rec_vals(e), v->arg);
}

int hpsi_store_foreach(const struct hpsi_store *st, hpsi_store_visit fn, void *arg)
{
	for (uint64_t i = 0; st->dvals && i < st->dcount; i++) {
		int rc = fn(st->dfirst + i, st->dwidth, 0, st->dvals + i * st->dwidth, arg);
		if (rc)
			return rc;
	}
	struct visit v = {fn, arg, 0, st->steps};
	for (unsigned k = 0; k < st->ncells; k++) {
		v.len = st->cells[k].len;
		int rc = hpsi_cells_walk(&st->cells[k], visit_cell, &v);
		if (rc)
			return rc;
	}
	return hpsi_table_walk(&st->tab, visit_rec, &v);
}

/* Adds an absent key with room for len values (NULL: out of memory). */
/* A key's push count, kept 4 bytes before its values in cells and
 * records alike (0 where the updater reads none). */
static uint32_t steps_of(const struct hpsi_store *st, const void *vals)
{
	uint32_t steps = 0;
	if (st->steps)
		memcpy(&steps, (const char *)vals - 4, 4);
	return steps;
}

static void item_of(const struct hpsi_store *st, uint64_t key, uint32_t len, const void *vals,
		    struct hpsi_store_item *it)
{
	*it = (struct hpsi_store_item){.key = key, .len = len, .steps = steps_of(st, vals), .bytes = vals,
				       .nbytes = (size_t)len * st->tab.vbytes};
}

/* Homes per block of a walk: one pass over them and the run after them
 * gathers their keys (about 200 at 80% load). */
#define WALK_HOMES 256

/* The hashes of cells cl from `from` to the block's end into st->walk,
 * sorted (insertion sort: the array's order is nearly the hashes'); 0, or
 * HPS_ENOMEM. */
static int walk_gather(struct hpsi_store *st, const struct hpsi_cells *cl, uint32_t part, uint64_t from,
		       uint64_t walk)
{
	size_t n;
	st->walk_id = 0;
	while ((n = hpsi_cells_gather(cl, from, WALK_HOMES, st->walk, st->walk_cap, &st->walk_end)) == SIZE_MAX ||
	       !st->walk) {
		size_t cap = st->walk_cap ? st->walk_cap * 2 : 1024;
		uint64_t *w = st->walk ? rallocx(st->walk, cap * sizeof *w, st->flags)
				       : mallocx(cap * sizeof *w, st->flags);
		if (!w)
			return HPS_ENOMEM;
		st->walk = w, st->walk_cap = cap;
	}
	uint64_t *w = st->walk;
	for (size_t i = 1; i < n; i++) {
		uint64_t x = w[i];
		size_t j = i;
		for (; j && w[j - 1] > x; j--)
			w[j] = w[j - 1];
		w[j] = x;
	}
	st->walk_n = n, st->walk_lo = from, st->walk_part = part, st->walk_id = walk;
	return 0;
}

int hpsi_store_next(struct hpsi_store *st, struct hpsi_store_cursor *cursor, struct hpsi_store_item *it)
{
	if (!cursor->walk)
		cursor->walk = ++st->walks;
	for (; cursor->part < st->ncells; cursor->part++, cursor->at = 0) {
		const struct hpsi_cells *cl = &st->cells[cursor->part];
		if (cl->share && !st->by_records)
			continue; /* they go whole (hpsi_store_whole) */
		for (;;) {
			uint64_t from = cursor->at ? cursor->at : 1;
			/* A block gathered during this walk holds every key of its
			 * hashes that the walk must visit: keys are never removed,
			 * and those added since may be skipped. */
			int have = st->walk_id == cursor->walk && st->walk_part == cursor->part && st->walk_lo <= from &&
				   (!st->walk_end || from < st->walk_end);
			unsigned char *c = NULL;
			if (!have && walk_gather(st, cl, cursor->part, from, cursor->walk)) {
				c = hpsi_cells_next(cl, from); /* no memory for a block: one key at a time */
			} else {
				size_t lo = 0, hi = st->walk_n; /* the first hash >= from */
				while (lo < hi) {
					size_t mid = (lo + hi) / 2;
					if (st->walk[mid] < from)
						lo = mid + 1;
					else
						hi = mid;
				}
				if (lo == st->walk_n) {
					if (!st->walk_end)
						break; /* the next cells */
					cursor->at = st->walk_end;
					continue;
				}
				c = hpsi_cells_find(cl, st->walk[lo]); /* (keys are never removed) */
			}
			if (!c)
				break; /* the last of these cells */
			uint64_t h = hpsi_cells_at(c);
			item_of(st, hpsi_cells_key(h), cl->len, hpsi_cells_vals(cl, c), it);
			it->at = *cursor;
			it->at.at = h;
			if (h == UINT64_MAX) { /* the last hash: the next cells */
				cursor->part++;
				cursor->at = 0;
			} else {
				cursor->at = h + 1;
			}
			return 0;
		}
	}
	if (goes_whole(st))
		return 1; /* the pool goes whole too (hpsi_store_whole_pool) */
	/* the pool; cells made after the walk passed them hold keys added
	 * meanwhile only */
	if (cursor->part < STORE_CELLS)
		cursor->part = STORE_CELLS, cursor->at = 0;
	struct hpsi_store_cursor from = *cursor;
	struct hpsi_rec *e = hpsi_table_next(&st->tab, &cursor->at);
	if (!e)
		return 1;
	item_of(st, e->key, e->len, hpsi_rec_vals(e), it);
	it->at = from; /* records never move, and new ones go after every cursor */
	return 0;
}

int hpsi_store_item(const struct hpsi_store *st, uint64_t key, struct hpsi_store_item *it)
{
	uint32_t len;
	const void *v = find(st, key, hpsi_cells_hash(key), NULL, &len);
	if (!v)
		return HPS_ENOKEY;
	item_of(st, key, len, v, it);
	it->whole = goes_whole(st); /* cells and pool */
	return 0;
}

/* One key of cells mapped aside into the store (hpsi_store_adopt). */
static int copy_cell(uint64_t key, uint32_t steps, void *vals, void *arg)
{
	struct copy_into *c = arg;
	return hpsi_store_write(c->st, key, c->len, steps, 0, vals, (size_t)c->len * c->st->tab.vbytes);
}

/* Adds an absent key with room for len values, in cells or the pool as a
 * request would (NULL: out of memory). */
static void *add_one(struct hpsi_store *st, uint64_t key, uint64_t h, uint32_t len)
{
	struct hpsi_cells *cl = cells_for_new(st, h, len);
	if (cl)
		return hpsi_cells_reserve(cl, 1) < 0 ? NULL : hpsi_cells_add(cl, h);
	struct hpsi_table_plan p;
	if (hpsi_table_reserve_keys(&st->tab, 1))
		return NULL;
	hpsi_table_plan_begin(&st->tab, &p);
	if (hpsi_table_plan_rec(&st->tab, &p, len))
		return NULL;
	return hpsi_rec_vals(hpsi_table_add(&st->tab, key, len));
}

int hpsi_store_put(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, const float *vals)
{
	if (st->dvals) {
		if (key - st->dfirst >= st->dcount || len != st->dwidth)
			return HPS_EVALLEN;
		memcpy(st->dvals + (key - st->dfirst) * len, vals, len * sizeof(float));
		return 0;
	}
	uint64_t h = hpsi_cells_hash(key);
	uint32_t have;
	if (find(st, key, h, NULL, &have))
		return HPS_EPROTO; /* a key twice in one checkpoint */
	void *v = add_one(st, key, h, len);
	if (!v)
		return HPS_ENOMEM;
	if (st->steps)
		memcpy((char *)v - 4, &steps, 4);
	memcpy(v, vals, (size_t)len * st->tab.vbytes);
	return 0;
}

int hpsi_store_write(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, size_t off,
		     const void *bytes, size_t n)
{
	uint64_t h = hpsi_cells_hash(key);
	uint32_t have;
	void *v = find(st, key, h, NULL, &have);
	if (!v) {
		if (!(v = add_one(st, key, h, len)))
			return HPS_ENOMEM;
		have = len;
		memset(v, 0, (size_t)len * st->tab.vbytes);
	}
	size_t room = (size_t)have * st->tab.vbytes;
	if (have != len || off > room || n > room - off)
		return HPS_EVALLEN;
	if (off == 0 && st->steps)
		memcpy((char *)v - 4, &steps, 4);
	memcpy((unsigned char *)v + off, bytes, n);
	return 0;
}

const struct hpsi_updater *hpsi_store_updater(const struct hpsi_store *st)
{
	return &st->upd;
}

const struct hpsi_init *hpsi_store_init(const struct hpsi_store *st)
{
	return &st->init;
}

unsigned hpsi_store_dtype(const struct hpsi_store *st)
{
	return st->dtype;
}
