#include "runtime/server/store.h"

#include <jemalloc/jemalloc.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "net/route.h"
#include "shm/heap.h"

struct entry {
	uint64_t key;
	uint64_t off;   /* into the pool, in floats: len values, then state */
	uint32_t len;
	uint32_t used;
	uint32_t steps; /* pushes applied (Adam's bias correction) */
	uint32_t pad;
};

struct hpsi_store {
	struct entry *tab;
	size_t cap, count; /* cap a power of two, count <= cap / 2 */
	float *pool;
	size_t pool_len, pool_cap;
	int64_t *found; /* per request key: entry index, or -1 when absent */
	size_t found_cap;
	int flags;      /* mallocx flags: the NUMA-local arena */
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

static void *xalloc(struct hpsi_store *st, size_t bytes)
{
	return mallocx(bytes, st->flags);
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
	st->cap = 1024;
	st->tab = mallocx(st->cap * sizeof *st->tab, flags | MALLOCX_ZERO);
	if (!st->tab) {
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
	return hpsi_store_create(&st->upd, &st->init, st->dtype);
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
	dallocx(st->tab, st->flags);
	if (st->pool)
		dallocx(st->pool, st->flags);
	if (st->found)
		dallocx(st->found, st->flags);
	dallocx(st, st->flags);
}

size_t hpsi_store_size(const struct hpsi_store *st)
{
	return st->dvals ? st->dcount : st->count;
}

static int64_t find(const struct hpsi_store *st, uint64_t key)
{
	size_t mask = st->cap - 1;
	for (size_t i = hpsi_key_mix(key) & mask;; i = (i + 1) & mask) {
		const struct entry *e = &st->tab[i];
		if (!e->used)
			return -1;
		if (e->key == key)
			return (int64_t)i;
	}
}

static int grow_table(struct hpsi_store *st)
{
	size_t ncap = st->cap * 2;
	struct entry *nt = mallocx(ncap * sizeof *nt, st->flags | MALLOCX_ZERO);
	if (!nt)
		return HPS_ENOMEM;
	for (size_t i = 0; i < st->cap; i++) {
		if (!st->tab[i].used)
			continue;
		size_t j = hpsi_key_mix(st->tab[i].key) & (ncap - 1);
		while (nt[j].used)
			j = (j + 1) & (ncap - 1);
		nt[j] = st->tab[i];
	}
	dallocx(st->tab, st->flags);
	st->tab = nt;
	st->cap = ncap;
	return 0;
}

static int reserve_pool(struct hpsi_store *st, size_t more)
{
	if (st->pool_len + more <= st->pool_cap)
		return 0;
	size_t ncap = st->pool_cap ? st->pool_cap : 4096;
	while (ncap < st->pool_len + more)
		ncap *= 2;
	float *np = st->pool ? rallocx(st->pool, ncap * sizeof *np, st->flags) : xalloc(st, ncap * sizeof *np);
	if (!np)
		return HPS_ENOMEM;
	st->pool = np;
	st->pool_cap = ncap;
	return 0;
}

/* Floats a key of len values takes in the pool (an f64 value takes two,
 * so every offset stays even and doubles stay aligned). */
static uint64_t footprint(const struct hpsi_store *st, uint32_t len)
{
	return (uint64_t)len * (1 + st->upd.state) * (st->esz / sizeof(float));
}

/* Adds an absent key with its initial values; room was made by make_room. */
static int64_t add(struct hpsi_store *st, uint64_t key, uint32_t len)
{
	size_t mask = st->cap - 1, i = hpsi_key_mix(key) & mask;
	while (st->tab[i].used)
		i = (i + 1) & mask;
	st->tab[i] = (struct entry){.key = key, .off = st->pool_len, .len = len, .used = 1};
	float *w = st->pool + st->pool_len;
	if (st->dtype == HPSI_WIRE_F64)
		hpsi_init_values64(&st->init, &st->upd, key, (double *)w, (double *)w + len, len);
	else
		hpsi_init_values(&st->init, &st->upd, key, w, w + len, len);
	st->pool_len += footprint(st, len);
	st->count++;
	return (int64_t)i;
}

/* Room for `keys` new keys of `floats` values in all, so that pass 2
 * cannot fail half-way. Growing the table moves entries: look up again. */
static int make_room(struct hpsi_store *st, const hps_request *r, size_t keys, uint64_t floats)
{
	if ((st->count + keys) * 2 > st->cap) {
		while ((st->count + keys) * 2 > st->cap)
			if (grow_table(st))
				return HPS_ENOMEM;
		for (size_t i = 0; i < r->nkeys; i++)
			st->found[i] = find(st, r->keys[i]);
	}
	return reserve_pool(st, floats);
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

int hpsi_store_handle(hps_request *r, void *arg)
{
	struct hpsi_store *st = arg;
	if (st->dvals)
		return handle_direct(st, r);
	int push = r->type != HPS_REQ_PULL, pull = r->type != HPS_REQ_PUSH;
	if (r->nkeys > st->found_cap) {
		if (st->found)
			dallocx(st->found, st->flags);
		st->found_cap = r->nkeys * 2;
		if (!(st->found = xalloc(st, st->found_cap * sizeof *st->found))) {
			st->found_cap = 0;
			return HPS_ENOMEM;
		}
	}
	/* Pass 1: look every key up and check lengths; nothing changes yet. */
	uint64_t out_floats = 0, new_floats = 0;
	size_t new_keys = 0;
	/* fixed-width pulls create keys when their initial values are not 0 */
	int pull_creates = r->width && st->init.kind != HPSI_INIT_ZEROS;
	/* A large table misses the cache on every probe: ask for the slot of
	 * a key a few places ahead while this one is looked up. */
	enum { AHEAD = 8 };
	size_t mask = st->cap - 1;
	for (size_t i = 0; i < r->nkeys; i++) {
		if (i + AHEAD < r->nkeys)
			__builtin_prefetch(&st->tab[hpsi_key_mix(r->keys[i + AHEAD]) & mask]);
		int64_t e = find(st, r->keys[i]);
		st->found[i] = e;
		uint32_t have = e >= 0 ? st->tab[e].len : 0;
		if (e >= 0 && (push || r->width) && have != want_len(r, i)) {
			hpsi_warn("key %llu holds %u floats, request from worker %d has %u",
				  (unsigned long long)r->keys[i], have, r->sender, want_len(r, i));
			return HPS_EVALLEN;
		}
		out_floats += push || r->width ? want_len(r, i) : have;
		if (e < 0 && (push || pull_creates)) {
			new_keys++;
			new_floats += footprint(st, want_len(r, i));
		}
	}
	if (pull && out_floats > r->out_cap) {
		hpsi_warn("answer of %llu floats does not fit the %zu of the request (vals_cap)",
			  (unsigned long long)out_floats, r->out_cap);
		return HPS_EINVAL;
	}
	if (new_keys && make_room(st, r, new_keys, new_floats))
		return HPS_ENOMEM;
	/* Pass 2: apply the push, then read the answer. */
	const unsigned char *src = (const unsigned char *)r->vals;
	unsigned char *dst = (unsigned char *)r->out;
	size_t esz = st->esz;
	for (size_t i = 0; i < r->nkeys; i++) {
		if (i + AHEAD < r->nkeys && st->found[i + AHEAD] >= 0) /* its values, likewise */
			__builtin_prefetch(st->pool + st->tab[st->found[i + AHEAD]].off);
		int64_t e = st->found[i];
		uint32_t len = want_len(r, i);
		if (e < 0 && (push || pull_creates))
			e = add(st, r->keys[i], len);
		if (push) {
			struct entry *en = &st->tab[e];
			float *v = st->pool + en->off;
			en->steps++;
			if (st->dtype == HPSI_WIRE_F64)
				hpsi_updater_apply64(&st->upd, (double *)v, (double *)v + len, (const double *)src, len,
						     en->steps);
			else if (st->upd.kind != HPSI_UPD_SUM)
				hpsi_updater_apply(&st->upd, v, v + len, (const float *)src, len, en->steps);
			else if (len == 1)
				v[0] += *(const float *)src;
			else
				add_floats(v, (const float *)src, len);
			src += len * esz;
		}
		if (pull) {
			if (e < 0) {
				if (r->out_lens)
					r->out_lens[i] = 0;
				memset(dst, 0, (r->width ? len : 0) * esz);
				dst += r->width ? len * esz : 0;
				continue;
			}
			uint32_t have = st->tab[e].len;
			if (r->out_lens)
				r->out_lens[i] = have;
			if (have == 1 && esz == sizeof(float))
				*(float *)dst = st->pool[st->tab[e].off];
			else
				memcpy(dst, st->pool + st->tab[e].off, have * esz);
			dst += have * esz;
		}
	}
	return pull ? (int)((size_t)(dst - (unsigned char *)r->out) / esz) : 0;
}

int hpsi_store_foreach(const struct hpsi_store *st, hpsi_store_visit fn, void *arg)
{
	for (uint64_t i = 0; st->dvals && i < st->dcount; i++) {
		int rc = fn(st->dfirst + i, st->dwidth, 0, st->dvals + i * st->dwidth, arg);
		if (rc)
			return rc;
	}
	for (size_t i = 0; i < st->cap; i++) {
		const struct entry *e = &st->tab[i];
		if (!e->used)
			continue;
		int rc = fn(e->key, e->len, e->steps, st->pool + e->off, arg);
		if (rc)
			return rc;
	}
	return 0;
}

int hpsi_store_put(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, const float *vals)
{
	if (st->dvals) {
		if (key - st->dfirst >= st->dcount || len != st->dwidth)
			return HPS_EVALLEN;
		memcpy(st->dvals + (key - st->dfirst) * len, vals, len * sizeof(float));
		return 0;
	}
	if (find(st, key) >= 0)
		return HPS_EPROTO; /* a key twice in one checkpoint */
	while ((st->count + 1) * 2 > st->cap)
		if (grow_table(st))
			return HPS_ENOMEM;
	uint64_t n = footprint(st, len);
	if (reserve_pool(st, n))
		return HPS_ENOMEM;
	int64_t e = add(st, key, len);
	st->tab[e].steps = steps;
	memcpy(st->pool + st->tab[e].off, vals, n * sizeof(float));
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
