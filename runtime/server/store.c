#include "runtime/server/store.h"

#include <jemalloc/jemalloc.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"
#include "runtime/server/table.h"
#include "shm/heap.h"

struct hpsi_store {
	struct hpsi_table tab;
	struct hpsi_rec **found; /* per request key: its record, or NULL when absent */
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
	hpsi_table_free(&st->tab);
	if (st->found)
		dallocx(st->found, st->flags);
	dallocx(st, st->flags);
}

size_t hpsi_store_size(const struct hpsi_store *st)
{
	return st->dvals ? st->dcount : st->tab.count;
}

size_t hpsi_store_bytes(const struct hpsi_store *st)
{
	if (st->dvals)
		return (size_t)st->dcount * st->dwidth * sizeof(float);
	/* the records (keys, values, optimizer state) and the slot array */
	return (size_t)st->tab.used * 8 + st->tab.cap * sizeof *st->tab.slots;
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

/* Starting values and state of a key just added. */
static void init_rec(struct hpsi_store *st, struct hpsi_rec *e)
{
	void *w = hpsi_rec_vals(e);
	if (st->dtype == HPSI_WIRE_F64)
		hpsi_init_values64(&st->init, &st->upd, e->key, w, (double *)w + e->len, e->len);
	else
		hpsi_init_values(&st->init, &st->upd, e->key, w, (float *)w + e->len, e->len);
}

/* Room for the keys pass 1 found absent, so that pass 2 cannot fail
 * half-way; records found stay where they are. */
static int make_room(struct hpsi_store *st, const hps_request *r, size_t new_keys)
{
	if (hpsi_table_reserve_keys(&st->tab, new_keys))
		return HPS_ENOMEM;
	struct hpsi_table_plan p;
	hpsi_table_plan_begin(&st->tab, &p);
	for (size_t i = 0; i < r->nkeys; i++)
		if (!st->found[i] && hpsi_table_plan_rec(&st->tab, &p, want_len(r, i)))
			return HPS_ENOMEM;
	return 0;
}

/* The common push: f32 sums of a fixed width onto keys that all exist. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void sum_fixed(struct hpsi_rec *const *found, size_t n, const float *restrict g, uint32_t width)
{
	if (width == 1) {
		for (size_t i = 0; i < n; i++) {
			*(float *)hpsi_rec_vals(found[i]) += g[i];
			found[i]->steps++;
		}
		return;
	}
	for (size_t i = 0; i < n; i++, g += width) {
		float *restrict v = hpsi_rec_vals(found[i]);
		for (uint32_t j = 0; j < width; j++)
			v[j] += g[j];
		found[i]->steps++;
	}
}

/* The common pull: f32 values of a fixed width; absent keys read zeros
 * (and length 0). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("O3")))
#endif
static void pull_fixed(struct hpsi_rec *const *found, size_t n, float *restrict out, uint32_t width,
		       uint32_t *out_lens)
{
	for (size_t i = 0; i < n; i++, out += width) {
		const float *restrict v = found[i] ? hpsi_rec_vals(found[i]) : NULL;
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

/* Pass 2 of any other request: adds the absent keys it creates, applies
 * the push, then reads the answer; returns the values written. */
static size_t apply_general(struct hpsi_store *st, hps_request *r, int push, int pull, int creates)
{
	const unsigned char *src = (const unsigned char *)r->vals;
	unsigned char *dst = (unsigned char *)r->out;
	size_t esz = st->esz;
	for (size_t i = 0; i < r->nkeys; i++) {
		struct hpsi_rec *e = st->found[i];
		uint32_t len = want_len(r, i);
		if (!e && creates) {
			e = hpsi_table_add(&st->tab, r->keys[i], len);
			init_rec(st, e);
		}
		if (push) {
			void *v = hpsi_rec_vals(e);
			e->steps++;
			if (st->dtype == HPSI_WIRE_F64)
				hpsi_updater_apply64(&st->upd, v, (double *)v + len, (const double *)src, len, e->steps);
			else if (st->upd.kind != HPSI_UPD_SUM)
				hpsi_updater_apply(&st->upd, v, (float *)v + len, (const float *)src, len, e->steps);
			else
				add_floats(v, (const float *)src, len);
			src += len * esz;
		}
		if (pull) {
			uint32_t have = e ? e->len : 0;
			if (r->out_lens)
				r->out_lens[i] = have;
			if (!e) {
				memset(dst, 0, (r->width ? len : 0) * esz);
				dst += r->width ? len * esz : 0;
				continue;
			}
			memcpy(dst, hpsi_rec_vals(e), have * esz);
			dst += have * esz;
		}
	}
	return (size_t)(dst - (unsigned char *)r->out) / esz;
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
	uint64_t out_floats = 0;
	size_t new_keys = 0, n = r->nkeys;
	const uint64_t *keys = r->keys;
	/* fixed-width pulls create keys when their initial values are not 0 */
	int creates = push || (r->width && st->init.kind != HPSI_INIT_ZEROS);
	/* A table larger than the cache misses twice per key (slot, record):
	 * ask for the slot of a key SLOT_AHEAD places ahead and, once that
	 * slot is in, for the record of the key REC_AHEAD places ahead, so
	 * that the misses of several keys overlap. A small table skips it. */
	enum { SLOT_AHEAD = 16, REC_AHEAD = 8 };
	int ahead = st->tab.cap >= (1u << 15);
	size_t rec_bytes = sizeof(struct hpsi_rec) + (r->width ? r->width : 1) * (push ? st->tab.vbytes : st->esz);
	for (size_t i = 0; i < n; i++) {
		if (ahead && i + SLOT_AHEAD < n)
			hpsi_table_prefetch_slot(&st->tab, keys[i + SLOT_AHEAD]);
		if (ahead && i + REC_AHEAD < n)
			hpsi_table_prefetch_rec(&st->tab, keys[i + REC_AHEAD], rec_bytes, push);
		struct hpsi_rec *e = hpsi_table_find(&st->tab, keys[i]);
		st->found[i] = e;
		uint32_t have = e ? e->len : 0;
		if (e && (push || r->width) && have != want_len(r, i)) {
			hpsi_warn("key %llu holds %u floats, request from worker %d has %u",
				  (unsigned long long)keys[i], have, r->sender, want_len(r, i));
			return HPS_EVALLEN;
		}
		out_floats += push || r->width ? want_len(r, i) : have;
		new_keys += !e;
	}
	if (pull && out_floats > r->out_cap) {
		hpsi_warn("answer of %llu floats does not fit the %zu of the request (vals_cap)",
			  (unsigned long long)out_floats, r->out_cap);
		return HPS_EINVAL;
	}
	if (!creates)
		new_keys = 0;
	if (new_keys && make_room(st, r, new_keys))
		return HPS_ENOMEM;
	/* Pass 2: apply the push, then read the answer. */
	int f32 = st->dtype == HPSI_WIRE_F32;
	if (!new_keys && f32 && r->width && push && !pull && st->upd.kind == HPSI_UPD_SUM) {
		sum_fixed(st->found, n, r->vals, r->width);
		return 0;
	}
	if (!new_keys && f32 && r->width && pull && !push) {
		pull_fixed(st->found, n, r->out, r->width, r->out_lens);
		return (int)(n * r->width);
	}
	size_t wrote = apply_general(st, r, push, pull, creates);
	return pull ? (int)wrote : 0;
}

struct visit {
	hpsi_store_visit fn;
	void *arg;
};

static int visit_rec(struct hpsi_rec *e, void *arg)
{
	struct visit *v = arg;
	return v->fn(e->key, e->len, e->steps, hpsi_rec_vals(e), v->arg);
}

int hpsi_store_foreach(const struct hpsi_store *st, hpsi_store_visit fn, void *arg)
{
	for (uint64_t i = 0; st->dvals && i < st->dcount; i++) {
		int rc = fn(st->dfirst + i, st->dwidth, 0, st->dvals + i * st->dwidth, arg);
		if (rc)
			return rc;
	}
	struct visit v = {fn, arg};
	return hpsi_table_walk(&st->tab, visit_rec, &v);
}

/* Adds an absent key with room for len values (NULL: out of memory). */
static struct hpsi_rec *add_one(struct hpsi_store *st, uint64_t key, uint32_t len)
{
	struct hpsi_table_plan p;
	if (hpsi_table_reserve_keys(&st->tab, 1))
		return NULL;
	hpsi_table_plan_begin(&st->tab, &p);
	if (hpsi_table_plan_rec(&st->tab, &p, len))
		return NULL;
	return hpsi_table_add(&st->tab, key, len);
}

int hpsi_store_put(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, const float *vals)
{
	if (st->dvals) {
		if (key - st->dfirst >= st->dcount || len != st->dwidth)
			return HPS_EVALLEN;
		memcpy(st->dvals + (key - st->dfirst) * len, vals, len * sizeof(float));
		return 0;
	}
	if (hpsi_table_find(&st->tab, key))
		return HPS_EPROTO; /* a key twice in one checkpoint */
	struct hpsi_rec *e = add_one(st, key, len);
	if (!e)
		return HPS_ENOMEM;
	e->steps = steps;
	memcpy(hpsi_rec_vals(e), vals, (size_t)len * st->tab.vbytes);
	return 0;
}

static void item_of(const struct hpsi_store *st, const struct hpsi_rec *e, struct hpsi_store_item *it)
{
	*it = (struct hpsi_store_item){.key = e->key, .len = e->len, .steps = e->steps,
				       .bytes = hpsi_rec_vals((struct hpsi_rec *)e),
				       .nbytes = (size_t)e->len * st->tab.vbytes};
}

int hpsi_store_next(const struct hpsi_store *st, uint64_t *cursor, struct hpsi_store_item *it)
{
	const struct hpsi_rec *e = hpsi_table_next(&st->tab, cursor);
	if (!e)
		return 1;
	item_of(st, e, it);
	return 0;
}

int hpsi_store_item(const struct hpsi_store *st, uint64_t key, struct hpsi_store_item *it)
{
	const struct hpsi_rec *e = hpsi_table_find(&st->tab, key);
	if (!e)
		return HPS_ENOKEY;
	item_of(st, e, it);
	return 0;
}

int hpsi_store_write(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, size_t off,
		     const void *bytes, size_t n)
{
	struct hpsi_rec *e = hpsi_table_find(&st->tab, key);
	if (!e) {
		if (!(e = add_one(st, key, len)))
			return HPS_ENOMEM;
		memset(hpsi_rec_vals(e), 0, (size_t)len * st->tab.vbytes);
	}
	size_t have = (size_t)e->len * st->tab.vbytes;
	if (e->len != len || off > have || n > have - off)
		return HPS_EVALLEN;
	if (off == 0)
		e->steps = steps;
	memcpy((unsigned char *)hpsi_rec_vals(e) + off, bytes, n);
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
