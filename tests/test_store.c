/* The server's store called directly: random requests against a plain
 * reference array, table growth past many keys and pool windows, records
 * larger than a window, refused requests that change nothing, and
 * checkpoint visits (foreach/put) that give back what was stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/dtype.h"
#include "runtime/server/cells.h"
#include "runtime/server/store.h"
#include "runtime/server/table.h"
#include "shm/heap.h"
#include "tests/harness.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The keys of the property test: random ones, small consecutive ones,
 * ones that differ only in their high bits, and the extremes. Sorted
 * unique, so that a sorted subset of indices is a valid request. */
static uint64_t *make_universe(size_t n)
{
	uint64_t *k = malloc(n * sizeof *k);
	for (size_t i = 0; i < n; i++) {
		switch (i % 4) {
		case 0: k[i] = rnd(); break;
		case 1: k[i] = i; break;
		case 2: k[i] = (uint64_t)i << 40; break;
		default: k[i] = rnd() & 0xffffffff00000000ull; break;
		}
	}
	k[0] = 0, k[1] = UINT64_MAX;
	qsort(k, n, sizeof *k, cmp_u64);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || k[i] != k[u - 1])
			k[u++] = k[i];
	for (; u < n; u++) /* replace the few duplicates by fresh keys past the end */
		k[u] = k[u - 1] + 1 == 0 ? 2 : k[u - 1] + 1;
	qsort(k, n, sizeof *k, cmp_u64);
	return k;
}

#define WIDTH 3

/* Random pushes, pulls and pushpulls on subsets of a universe of keys,
 * each checked against a reference array; keys are added throughout, so
 * the table grows many times while requests find earlier keys. */
static void test_store_matches_reference(void)
{
	enum { UNIVERSE = 60000, ROUNDS = 400, MAXKEYS = 2000 };
	uint64_t *uni = make_universe(UNIVERSE);
	float *ref = calloc((size_t)UNIVERSE * WIDTH, sizeof *ref);
	char *present = calloc(UNIVERSE, 1);
	size_t *idx = malloc(MAXKEYS * sizeof *idx);
	uint64_t *keys = malloc(MAXKEYS * sizeof *keys);
	float *vals = malloc((size_t)MAXKEYS * WIDTH * sizeof *vals), *out = malloc((size_t)MAXKEYS * WIDTH * sizeof *out);
	struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	size_t bad = 0;
	for (int round = 0; round < ROUNDS; round++) {
		/* a sorted subset: a random stride through a window of the universe */
		size_t n = 1 + rnd() % MAXKEYS, at = rnd() % UNIVERSE, step = 1 + rnd() % 29, m = 0;
		for (size_t i = 0; i < n && at < UNIVERSE; i++, at += 1 + rnd() % step)
			idx[m++] = at;
		for (size_t i = 0; i < m; i++)
			keys[i] = uni[idx[i]];
		int type = round < 40 ? HPS_REQ_PUSH : 1 + (int)(rnd() % 3);
		for (size_t i = 0; i < m * WIDTH; i++)
			vals[i] = (float)(rnd() % 64) / 8.0f - 4.0f; /* exact in float sums */
		hps_request r = {.type = type, .width = WIDTH, .nkeys = m, .keys = keys, .vals = vals,
				 .nvals = m * WIDTH, .out = out, .out_cap = m * WIDTH};
		int rc = hpsi_store_handle(&r, st);
		CU_ASSERT_EQUAL(rc, type == HPS_REQ_PUSH ? 0 : (int)(m * WIDTH));
		for (size_t i = 0; i < m; i++) {
			float *v = ref + idx[i] * WIDTH;
			for (int j = 0; j < WIDTH; j++) {
				if (type != HPS_REQ_PULL)
					v[j] += vals[i * WIDTH + j];
				if (type != HPS_REQ_PUSH)
					bad += out[i * WIDTH + j] != v[j];
			}
			present[idx[i]] |= type != HPS_REQ_PULL;
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	size_t held = 0;
	for (size_t i = 0; i < UNIVERSE; i++)
		held += present[i];
	CU_ASSERT_EQUAL(hpsi_store_size(st), held);
	/* every key at the end, in one pull: absent ones read zeros */
	float *all = malloc((size_t)UNIVERSE * WIDTH * sizeof *all);
	hps_request r = {.type = HPS_REQ_PULL, .width = WIDTH, .nkeys = UNIVERSE, .keys = uni, .out = all,
			 .out_cap = (size_t)UNIVERSE * WIDTH};
	CU_ASSERT_EQUAL(hpsi_store_handle(&r, st), UNIVERSE * WIDTH);
	CU_ASSERT_EQUAL(memcmp(all, ref, (size_t)UNIVERSE * WIDTH * sizeof *all), 0);
	hpsi_store_destroy(st);
	free(all), free(uni), free(ref), free(present), free(idx), free(keys), free(vals), free(out);
}

/* A million keys of width 1 in requests of 50,000: many doublings of the
 * slots and many pool windows; every key keeps its own value. */
static void test_store_grows_past_many_keys(void)
{
	enum { KEYS = 1000000, BATCH = 50000 };
	struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	uint64_t *k = malloc(BATCH * sizeof *k);
	float *v = malloc(BATCH * sizeof *v), *out = malloc(BATCH * sizeof *out);
	for (uint64_t first = 0; first < KEYS; first += BATCH) {
		for (uint64_t i = 0; i < BATCH; i++)
			k[i] = (first + i) * 7919, v[i] = (float)(first + i);
		hps_request r = {.type = HPS_REQ_PUSH, .width = 1, .nkeys = BATCH, .keys = k, .vals = v, .nvals = BATCH};
		CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&r, st), 0);
	}
	CU_ASSERT_EQUAL(hpsi_store_size(st), KEYS);
	size_t bad = 0;
	for (uint64_t first = 0; first < KEYS; first += BATCH) {
		for (uint64_t i = 0; i < BATCH; i++)
			k[i] = (first + i) * 7919;
		hps_request r = {.type = HPS_REQ_PULL, .width = 1, .nkeys = BATCH, .keys = k, .out = out, .out_cap = BATCH};
		CU_ASSERT_EQUAL(hpsi_store_handle(&r, st), BATCH);
		for (uint64_t i = 0; i < BATCH; i++)
			bad += out[i] != (float)(first + i);
	}
	CU_ASSERT_EQUAL(bad, 0);
	hpsi_store_destroy(st);
	free(k), free(v), free(out);
}

static int count_one(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	(void)key, (void)steps, (void)vals;
	uint64_t *c = arg;
	c[0]++, c[1] += len;
	return 0;
}

/* Variable lengths, one of them larger than a pool window (2 MiB): values
 * and lengths come back; a request with one wrong length is refused whole
 * and changes nothing. */
static void test_store_lens_and_large_records(void)
{
	enum { BIG = 700000 };
	struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	uint64_t keys[4] = {5, 6, 1u << 20, UINT64_MAX};
	uint32_t lens[4] = {1, 3, BIG, 2};
	size_t total = 1 + 3 + BIG + 2;
	float *v = malloc(total * sizeof *v), *out = malloc(total * sizeof *out);
	for (size_t i = 0; i < total; i++)
		v[i] = (float)(i % 1000);
	uint32_t out_lens[4];
	for (int twice = 0; twice < 2; twice++) {
		hps_request r = {.type = HPS_REQ_PUSH, .nkeys = 4, .keys = keys, .lens = lens, .vals = v, .nvals = total};
		CU_ASSERT_EQUAL(hpsi_store_handle(&r, st), 0);
	}
	hps_request p = {.type = HPS_REQ_PULL, .nkeys = 4, .keys = keys, .out = out, .out_cap = total, .out_lens = out_lens};
	CU_ASSERT_EQUAL(hpsi_store_handle(&p, st), (int)total);
	CU_ASSERT_EQUAL(memcmp(out_lens, lens, sizeof lens), 0);
	size_t bad = 0;
	for (size_t i = 0; i < total; i++)
		bad += out[i] != 2 * v[i];
	CU_ASSERT_EQUAL(bad, 0);
	/* a new key and a known key with a wrong length: refused, no key added */
	uint64_t k2[2] = {4, 6};
	uint32_t l2[2] = {2, 4};
	hps_request w = {.type = HPS_REQ_PUSH, .nkeys = 2, .keys = k2, .lens = l2, .vals = v, .nvals = 6};
	CU_ASSERT_EQUAL(hpsi_store_handle(&w, st), HPS_EVALLEN);
	CU_ASSERT_EQUAL(hpsi_store_size(st), 4);
	CU_ASSERT_EQUAL(hpsi_store_handle(&p, st), (int)total);
	bad = 0;
	for (size_t i = 0; i < total; i++)
		bad += out[i] != 2 * v[i];
	CU_ASSERT_EQUAL(bad, 0);
	/* a checkpoint's walk steps over the window tail the large record left */
	uint64_t counted[2] = {0, 0};
	CU_ASSERT_EQUAL(hpsi_store_foreach(st, count_one, counted), 0);
	CU_ASSERT(counted[0] == 4 && counted[1] == total);
	/* an unknown key pulls as length 0 in lens mode */
	uint64_t unknown = 7;
	hps_request u = {.type = HPS_REQ_PULL, .nkeys = 1, .keys = &unknown, .out = out, .out_cap = total, .out_lens = out_lens};
	CU_ASSERT_EQUAL(hpsi_store_handle(&u, st), 0);
	CU_ASSERT_EQUAL(out_lens[0], 0);
	/* a fixed-width pull with lengths: a known key has its width, an
	 * unknown one length 0 and zeros */
	uint64_t two[2] = {5, 8};
	out[1] = 1;
	hps_request fw = {.type = HPS_REQ_PULL, .width = 1, .nkeys = 2, .keys = two, .out = out, .out_cap = 2,
			  .out_lens = out_lens};
	CU_ASSERT_EQUAL(hpsi_store_handle(&fw, st), 2);
	CU_ASSERT(out_lens[0] == 1 && out_lens[1] == 0 && out[0] == 2 * v[0] && out[1] == 0);
	hpsi_store_destroy(st);
	free(v), free(out);
}

struct dump {
	size_t n;
	uint64_t keys[64];
	uint32_t lens[64], steps[64];
	double vals[64][8]; /* values and state, as doubles */
	unsigned dtype;
	uint32_t state;
};

static int dump_one(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	struct dump *d = arg;
	if (d->n == 64 || len * (1 + d->state) > 8)
		return -1;
	d->keys[d->n] = key, d->lens[d->n] = len, d->steps[d->n] = steps;
	for (uint32_t j = 0; j < len * (1 + d->state); j++)
		d->vals[d->n][j] = d->dtype == HPSI_WIRE_F64 ? ((const double *)vals)[j] : vals[j];
	d->n++;
	return 0;
}

struct refill {
	struct hpsi_store *into;
	int rc;
};

static int put_one(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	struct refill *f = arg;
	f->rc |= hpsi_store_put(f->into, key, len, steps, vals);
	return 0;
}

/* Adam (two state values per value) in f32 and f64: what foreach visits
 * goes back into an empty store through put and visits the same; a key
 * put twice is refused. */
static void test_store_foreach_put_round_trip(void)
{
	for (int f64 = 0; f64 < 2; f64++) {
		struct hpsi_updater u;
		CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse("adam:lr=0.1", "t", &u), 0);
		unsigned dtype = f64 ? HPSI_WIRE_F64 : HPSI_WIRE_F32;
		struct hpsi_store *st = hpsi_store_create(&u, NULL, dtype);
		CU_ASSERT_PTR_NOT_NULL_FATAL(st);
		uint64_t keys[3] = {1, 99, 1ull << 50};
		double g64[6] = {0.5, -1, 2, 0.25, -0.5, 1};
		float g32[6] = {0.5f, -1, 2, 0.25f, -0.5f, 1};
		for (int step = 0; step < 3; step++) {
			size_t n = step == 2 ? 2 : 3; /* the last key gets two pushes */
			hps_request r = {.type = HPS_REQ_PUSH, .width = 2, .nkeys = n, .keys = keys,
					 .vals = f64 ? (const void *)g64 : (const void *)g32, .nvals = n * 2};
			CU_ASSERT_EQUAL(hpsi_store_handle(&r, st), 0);
		}
		static struct dump a, b;
		memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
		a.dtype = b.dtype = dtype, a.state = b.state = u.state;
		CU_ASSERT_EQUAL(hpsi_store_foreach(st, dump_one, &a), 0);
		CU_ASSERT_EQUAL(a.n, 3);
		CU_ASSERT_EQUAL(a.steps[0] + a.steps[1] + a.steps[2], 8);
		struct refill f = {hpsi_store_create_like(st), 0};
		CU_ASSERT_PTR_NOT_NULL_FATAL(f.into);
		CU_ASSERT_EQUAL(hpsi_store_foreach(st, put_one, &f), 0);
		CU_ASSERT_EQUAL(f.rc, 0);
		CU_ASSERT_EQUAL(hpsi_store_foreach(f.into, dump_one, &b), 0);
		CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
		float zero[8] = {0};
		CU_ASSERT_EQUAL(hpsi_store_put(f.into, 99, 2, 0, zero), HPS_EPROTO);
		hpsi_store_destroy(f.into);
		hpsi_store_destroy(st);
	}
}

/* The cells alone: keys crowded into two homes, one in the middle and the
 * last one (its run goes past the capacity, into the slack), each
 * promoted again and again from wherever it sits, stay findable with
 * their own values, and a key promoted often enough reaches its home;
 * growing keeps them all. */
static void test_store_cells_promote(void)
{
	enum { KEYS = 200, ROUNDS = 20000 };
	struct hpsi_cells c;
	hpsi_cells_init(&c, hpsi_local_arena_flags(), 4, 0, 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_cells_set_len(&c, 1), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_cells_reserve(&c, KEYS), 1); /* the first array */
	uint64_t h[KEYS];
	size_t away = 0;
	for (int i = 0; i < KEYS; i++) {
		/* hashes this close share their home */
		h[i] = (i % 2 ? UINT64_MAX - (1ull << 40) : 1ull << 63) + rnd() % (1ull << 40);
		if (hpsi_cells_find(&c, h[i])) {
			i--; /* drawn twice */
			continue;
		}
		*(float *)hpsi_cells_add(&c, h[i]) = (float)i;
		away += hpsi_cells_find(&c, h[i]) != hpsi_cells_home(&c, h[i]);
	}
	CU_ASSERT_EQUAL(c.count, KEYS);
	CU_ASSERT_EQUAL(away, KEYS - 2); /* two runs of KEYS / 2 */
	CU_ASSERT(c.tail > c.cap);       /* the last run reaches into the slack */
	size_t bad = 0;
	for (int round = 0; round < ROUNDS; round++) {
		int i = (int)(rnd() % KEYS);
		unsigned char *cell = hpsi_cells_find(&c, h[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cell);
		hpsi_cells_promote(&c, cell, h[i]);
	}
	for (int i = 0; i < KEYS; i++) {
		unsigned char *cell = hpsi_cells_find(&c, h[i]);
		bad += !cell || *(float *)hpsi_cells_vals(&c, cell) != (float)i;
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* key 0, promoted until it stops moving, sits at its home */
	for (int round = 0; round < KEYS; round++)
		hpsi_cells_promote(&c, hpsi_cells_find(&c, h[0]), h[0]);
	CU_ASSERT_PTR_EQUAL(hpsi_cells_find(&c, h[0]), hpsi_cells_home(&c, h[0]));
	/* a key absent from a long run is not found */
	CU_ASSERT_PTR_NULL(hpsi_cells_find(&c, UINT64_MAX - 1));
	/* growing (to more homes) keeps every key and its value */
	size_t cap = c.cap;
	CU_ASSERT_EQUAL(hpsi_cells_reserve(&c, 4 * KEYS), 1);
	CU_ASSERT(c.cap > cap);
	for (int i = 0; i < KEYS; i++) {
		unsigned char *cell = hpsi_cells_find(&c, h[i]);
		bad += !cell || *(float *)hpsi_cells_vals(&c, cell) != (float)i;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(hpsi_cells_reserve(&c, 1), 0); /* room already */
	hpsi_cells_free(&c);
	/* keys past the last home, one at a time (a copy in hash order at
	 * its end): the slack after the last home doubles, so the cells are
	 * rebuilt a few times, not once per few keys */
	struct hpsi_cells top;
	hpsi_cells_init(&top, hpsi_local_arena_flags(), 4, 0, 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_cells_set_len(&top, 1), 0);
	enum { TOP = 3000 };
	CU_ASSERT_EQUAL_FATAL(hpsi_cells_reserve(&top, 1), 1);
	int rebuilt = 0;
	for (uint64_t i = 0; i < TOP; i++) { /* all at the last home */
		int rc = hpsi_cells_reserve(&top, 1);
		CU_ASSERT_FATAL(rc >= 0);
		rebuilt += rc;
		*(float *)hpsi_cells_add(&top, UINT64_MAX - i) = (float)i;
	}
	CU_ASSERT(rebuilt <= 20); /* growing and the slack: 13; 40 when the slack grew by SLACK each time */
	bad = 0;
	for (uint64_t i = 0; i < TOP; i++) {
		unsigned char *cell = hpsi_cells_find(&top, UINT64_MAX - i);
		bad += !cell || *(float *)hpsi_cells_vals(&top, cell) != (float)i;
	}
	CU_ASSERT_EQUAL(bad, 0);
	hpsi_cells_free(&top);
}

static int sum_one(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	(void)steps;
	double *sum = arg;
	for (uint32_t j = 0; j < len; j++)
		sum[0] += vals[j];
	sum[1] += (double)(key % 1000);
	return 0;
}

/* Keys of the first four lengths go to cells of their length; keys of
 * further lengths and the one key whose hash is 0 go to the pool. All
 * answer, a request finds each, a wrong width is refused whatever holds
 * the key, a checkpoint's walk visits all and put brings them back. */
static void test_store_cells_and_pool(void)
{
	enum { N = 9, VALS = 2 + 2 + 3 + 1 + 4 + 2 + 5 + 2 + 6 };
	struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	uint64_t keys[N] = {0, 7, 1000, 1001, 1002, 1003, 1004, HPSI_CELLS_SALT, UINT64_MAX}; /* sorted */
	CU_ASSERT_EQUAL_FATAL(hpsi_cells_hash(HPSI_CELLS_SALT), 0);
	uint32_t lens[N] = {2, 2, 3, 1, 4, 2, 5, 2, 6};
	float v[VALS], out[VALS];
	for (int i = 0; i < VALS; i++)
		v[i] = (float)(i + 1);
	uint32_t out_lens[N];
	for (int twice = 0; twice < 2; twice++) {
		hps_request r = {.type = HPS_REQ_PUSH, .nkeys = N, .keys = keys, .lens = lens, .vals = v, .nvals = VALS};
		CU_ASSERT_EQUAL(hpsi_store_handle(&r, st), 0);
	}
	CU_ASSERT_EQUAL(hpsi_store_size(st), N);
	hps_request p = {.type = HPS_REQ_PULL, .nkeys = N, .keys = keys, .out = out, .out_cap = VALS, .out_lens = out_lens};
	CU_ASSERT_EQUAL(hpsi_store_handle(&p, st), VALS);
	CU_ASSERT_EQUAL(memcmp(out_lens, lens, sizeof lens), 0);
	size_t bad = 0;
	for (int i = 0; i < VALS; i++)
		bad += out[i] != 2 * v[i];
	CU_ASSERT_EQUAL(bad, 0);
	/* a fixed-width pull of the width-2 keys (cells and pool) */
	uint64_t two[4] = {0, 7, 1003, HPSI_CELLS_SALT};
	hps_request fw = {.type = HPS_REQ_PULL, .width = 2, .nkeys = 4, .keys = two, .out = out, .out_cap = 8};
	CU_ASSERT_EQUAL(hpsi_store_handle(&fw, st), 8);
	CU_ASSERT(out[0] == 2 && out[2] == 6 && out[4] == 26 && out[6] == 40 && out[7] == 42);
	/* a width-2 push onto keys held with other lengths, in cells (1000)
	 * or in the pool (1004): refused whole */
	for (int k = 0; k < 2; k++) {
		uint64_t mixed[2] = {7, k ? 1004 : 1000};
		hps_request bw = {.type = HPS_REQ_PUSH, .width = 2, .nkeys = 2, .keys = mixed, .vals = v, .nvals = 4};
		CU_ASSERT_EQUAL(hpsi_store_handle(&bw, st), HPS_EVALLEN);
	}
	CU_ASSERT_EQUAL(hpsi_store_handle(&p, st), VALS);
	CU_ASSERT_EQUAL(out[2], 2 * v[2]); /* key 7 unchanged */
	/* the walk visits all; put refills another store the same */
	double a[2] = {0, 0}, b[2] = {0, 0};
	CU_ASSERT_EQUAL(hpsi_store_foreach(st, sum_one, a), 0);
	CU_ASSERT_EQUAL(a[0], (double)VALS * (VALS + 1));
	struct refill f = {hpsi_store_create_like(st), 0};
	CU_ASSERT_PTR_NOT_NULL_FATAL(f.into);
	CU_ASSERT_EQUAL(hpsi_store_foreach(st, put_one, &f), 0);
	CU_ASSERT_EQUAL(f.rc, 0);
	CU_ASSERT_EQUAL(hpsi_store_size(f.into), N);
	CU_ASSERT_EQUAL(hpsi_store_foreach(f.into, sum_one, b), 0);
	CU_ASSERT(a[0] == b[0] && a[1] == b[1]);
	CU_ASSERT_EQUAL(hpsi_store_handle(&p, f.into), VALS);
	bad = 0;
	for (int i = 0; i < VALS; i++)
		bad += out[i] != 2 * v[i];
	CU_ASSERT_EQUAL(bad, 0);
	hpsi_store_destroy(f.into);
	hpsi_store_destroy(st);
}

/* Keys of src that dst lacks or holds otherwise (length, push count,
 * values and optimizer state). */
static size_t copy_differs(struct hpsi_store *src, const struct hpsi_store *dst)
{
	size_t bad = 0;
	struct hpsi_store_cursor all = {0, 0, 0};
	struct hpsi_store_item a, b;
	while (hpsi_store_next(src, &all, &a) == 0)
		bad += hpsi_store_item(dst, a.key, &b) != 0 || a.len != b.len || a.steps != b.steps ||
		       a.nbytes != b.nbytes || memcmp(a.bytes, b.bytes, a.nbytes) != 0;
	return bad;
}

/* What a copy to a replacement server does (runtime/server/recover.c),
 * on a store that serves meanwhile: a walk with hpsi_store_next, a few
 * records per turn, some stopped within a record and resumed at it.at;
 * between turns Adam pushes (of hot keys, which promotion moves home, and
 * of new keys, which grow the cells several times), pulls of hot keys
 * (moved too, and not pushed); at the end the pushed keys again. The copy
 * equals the source: every key, value, optimizer state and push count. */
static void test_store_copy_while_serving(void)
{
	enum { W = 8, FIRST = 6000, ADDS = 400, HOT = 64, TURN = 300 };
	struct hpsi_updater u;
	CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse("adam:lr=0.01", "t", &u), 0);
	struct hpsi_store *src = hpsi_store_create(&u, NULL, HPSI_WIRE_F32);
	struct hpsi_store *dst = hpsi_store_create_like(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
	size_t cap = FIRST + 200 * ADDS, nkeys = 0, ndirty = 0;
	uint64_t *keys = malloc(cap * sizeof *keys), *dirty = malloc(cap * 4 * sizeof *dirty);
	float *g = malloc((size_t)ADDS * W * sizeof *g);
	float *out = malloc((size_t)HOT * W * sizeof *out);
	for (size_t j = 0; j < (size_t)ADDS * W; j++)
		g[j] = (float)(j % 13) * 0.125f - 0.5f;
	/* fixed-width pushes of new keys (cells), then the key of hash 0 and
	 * keys of another width and of cells too large (the pool) */
	while (nkeys < FIRST) {
		hps_request r = {.type = HPS_REQ_PUSH, .width = W, .nkeys = ADDS, .keys = keys + nkeys, .vals = g,
				 .nvals = (size_t)ADDS * W};
		for (size_t i = 0; i < ADDS; i++)
			keys[nkeys + i] = rnd() | 1; /* odd: none is HPSI_CELLS_SALT */
		CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&r, src), 0);
		nkeys += ADDS;
	}
	static float big[64 * 3];
	uint64_t other[3] = {HPSI_CELLS_SALT, 2, 4};
	uint32_t olens[3] = {W, 3, 64};
	hps_request ro = {.type = HPS_REQ_PUSH, .nkeys = 3, .keys = other, .lens = olens, .vals = big, .nvals = W + 3 + 64};
	CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&ro, src), 0);
	CU_ASSERT(hpsi_store_bytes(src) > ((size_t)1 << 20)); /* large enough to promote */
	size_t bytes0 = hpsi_store_bytes(src), sent = 0, resumed = 0;
	struct hpsi_store_cursor cur = {0, 0, 0};
	uint64_t pending = 0; /* the key whose first half went, 0: none */
	int rc = 0;
	for (int turn = 0; rc == 0; turn++) {
		for (int k = 0; k < TURN; k++) {
			struct hpsi_store_item it;
			if ((rc = hpsi_store_next(src, &cur, &it)) != 0)
				break;
			size_t half = it.nbytes / 2 & ~(size_t)3;
			if (pending) { /* resumed at it.at: the same record, its second half */
				CU_ASSERT_EQUAL(it.key, pending);
				CU_ASSERT_EQUAL(hpsi_store_write(dst, it.key, it.len, it.steps, half, it.bytes + half,
								 it.nbytes - half), 0);
				pending = 0;
				resumed++;
				continue;
			}
			if (k == TURN - 1 && turn % 3 == 0) { /* the ring filled within the record */
				CU_ASSERT_EQUAL(hpsi_store_write(dst, it.key, it.len, it.steps, 0, it.bytes, half), 0);
				cur = it.at, pending = it.key;
				break;
			}
			CU_ASSERT_EQUAL(hpsi_store_write(dst, it.key, it.len, it.steps, 0, it.bytes, it.nbytes), 0);
			sent++;
		}
		/* the store serves between turns */
		uint64_t hot[HOT];
		for (int i = 0; i < HOT; i++)
			hot[i] = keys[(size_t)(rnd() % 1000) * (FIRST / 1000) + (size_t)i % (FIRST / 1000)];
		qsort(hot, HOT, sizeof *hot, cmp_u64);
		size_t nh = 0;
		for (int i = 0; i < HOT; i++)
			if (!nh || hot[nh - 1] != hot[i])
				hot[nh++] = hot[i];
		hps_request pull = {.type = HPS_REQ_PULL, .width = W, .nkeys = nh, .keys = hot, .out = out,
				    .out_cap = (size_t)HOT * W};
		CU_ASSERT_EQUAL(hpsi_store_handle(&pull, src), (int)(nh * W));
		/* pulls of the keys the walk reaches next: promoted, some move
		 * to a cell the walk has passed (a walk in the order of the
		 * array would miss them; they are not pushed) */
		uint64_t next[HOT];
		size_t nn = 0;
		struct hpsi_store_cursor peek = cur;
		struct hpsi_store_item pi;
		while (nn < HOT && hpsi_store_next(src, &peek, &pi) == 0)
			if (pi.len == W)
				next[nn++] = pi.key;
		qsort(next, nn, sizeof *next, cmp_u64);
		hps_request pulln = {.type = HPS_REQ_PULL, .width = W, .nkeys = nn, .keys = next, .out = out,
				     .out_cap = (size_t)HOT * W};
		for (int i = 0; i < 4; i++)
			CU_ASSERT_EQUAL(hpsi_store_handle(&pulln, src), (int)(nn * W));
		if (turn % 2) {
			hps_request push = {.type = HPS_REQ_PUSH, .width = W, .nkeys = nh, .keys = hot, .vals = g,
					    .nvals = nh * W};
			CU_ASSERT_EQUAL(hpsi_store_handle(&push, src), 0);
			memcpy(dirty + ndirty, hot, nh * sizeof *hot);
			ndirty += nh;
		}
		if (nkeys + ADDS <= cap) {
			for (size_t i = 0; i < ADDS; i++)
				keys[nkeys + i] = rnd() | 1;
			hps_request add = {.type = HPS_REQ_PUSH, .width = W, .nkeys = ADDS, .keys = keys + nkeys,
					   .vals = g, .nvals = (size_t)ADDS * W};
			CU_ASSERT_EQUAL(hpsi_store_handle(&add, src), 0);
			memcpy(dirty + ndirty, keys + nkeys, ADDS * sizeof *keys);
			ndirty += ADDS;
			nkeys += ADDS;
		}
	}
	CU_ASSERT_EQUAL(rc, 1);
	CU_ASSERT(resumed > 0);
	CU_ASSERT(hpsi_store_bytes(src) > 2 * bytes0); /* the cells grew during the walk */
	/* the frozen delta: every pushed key again */
	for (size_t i = 0; i < ndirty; i++) {
		struct hpsi_store_item it;
		CU_ASSERT_EQUAL_FATAL(hpsi_store_item(src, dirty[i], &it), 0);
		CU_ASSERT_EQUAL(hpsi_store_write(dst, it.key, it.len, it.steps, 0, it.bytes, it.nbytes), 0);
	}
	CU_ASSERT_EQUAL(hpsi_store_size(dst), hpsi_store_size(src));
	CU_ASSERT_EQUAL(copy_differs(src, dst), 0);
	CU_ASSERT(sent >= FIRST);
	free(keys), free(dirty), free(g), free(out);
	hpsi_store_destroy(dst);
	hpsi_store_destroy(src);
}

/* A copy arrives in hash order: a destination sized for the source's
 * keys first (hpsi_store_shape, hpsi_store_expect, as a replacement does
 * at a copy's BEGIN) takes every key without its cells growing or moving,
 * where cells sized as the keys came would pile them into one run. */
static void test_store_copy_into_expected_cells(void)
{
	enum { N = 60000, FEW = 500 };
	struct hpsi_updater u;
	CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse("adagrad:lr=0.1", "t", &u), 0);
	struct hpsi_store *src = hpsi_store_create(&u, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	static uint64_t keys[N];
	static float g[N * 3];
	for (size_t i = 0; i < N; i++)
		keys[i] = 2 * i + 1; /* sorted, none is HPSI_CELLS_SALT */
	for (size_t i = 0; i < (size_t)N * 3; i++)
		g[i] = (float)(i % 7) - 3.0f;
	hps_request one = {.type = HPS_REQ_PUSH, .width = 1, .nkeys = N - FEW, .keys = keys, .vals = g, .nvals = N - FEW};
	hps_request three = {.type = HPS_REQ_PUSH, .width = 3, .nkeys = FEW, .keys = keys + N - FEW, .vals = g,
			     .nvals = FEW * 3};
	CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&one, src), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&three, src), 0);
	uint32_t lens[4];
	uint64_t counts[4];
	size_t n = hpsi_store_shape(src, lens, counts, 4);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT(lens[0] == 1 && counts[0] == N - FEW && lens[1] == 3 && counts[1] == FEW);
	CU_ASSERT_EQUAL(hpsi_store_shape(src, lens, counts, 1), 1);
	struct hpsi_store *dst = hpsi_store_create_like(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
	for (size_t k = 0; k < n; k++)
		CU_ASSERT_EQUAL(hpsi_store_expect(dst, lens[k], counts[k]), 0);
	CU_ASSERT_EQUAL(hpsi_store_expect(dst, 1, UINT64_MAX), HPS_ENOMEM); /* refused, nothing changed */
	size_t bytes0 = hpsi_store_bytes(dst);
	struct hpsi_store_cursor cur = {0, 0, 0};
	struct hpsi_store_item it;
	size_t copied = 0;
	while (hpsi_store_next(src, &cur, &it) == 0) {
		CU_ASSERT_EQUAL_FATAL(hpsi_store_write(dst, it.key, it.len, it.steps, 0, it.bytes, it.nbytes), 0);
		copied++;
	}
	CU_ASSERT_EQUAL(copied, N);
	CU_ASSERT_EQUAL(hpsi_store_bytes(dst), bytes0); /* no cells grew */
	CU_ASSERT_EQUAL(hpsi_store_size(dst), N);
	CU_ASSERT_EQUAL(copy_differs(src, dst), 0);
	hpsi_store_destroy(dst);
	hpsi_store_destroy(src);
}

/* A copy into a pool that expected it (hpsi_table_expect, at the BEGIN of
 * a copy from another host): the source's pool shape counts its keys and
 * bounds their bytes; the destination's records then go into the windows
 * set aside (mapped by the helper meanwhile), none allocated as they
 * come, and read back equal. A table that shares (memfds) sets no
 * windows aside; freeing a table whose helper may still run joins it. */
static void test_store_copy_into_expected_pool(void)
{
	enum { N = 3000, W = 1024 }; /* 4 KiB values: past HPSI_CELL_MAX, in the pool */
	struct hpsi_updater u;
	CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse("sum", "t", &u), 0);
	struct hpsi_store *src = hpsi_store_create(&u, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	static uint64_t keys[N];
	static float g[(size_t)N * W];
	for (size_t i = 0; i < N; i++)
		keys[i] = 3 * i + 7;
	for (size_t i = 0; i < (size_t)N * W; i++)
		g[i] = (float)(i % 11);
	hps_request r = {.type = HPS_REQ_PUSH, .width = W, .nkeys = N, .keys = keys, .vals = g, .nvals = (size_t)N * W};
	CU_ASSERT_EQUAL_FATAL(hpsi_store_handle(&r, src), 0);
	uint64_t pk, pb;
	hpsi_store_pool_shape(src, &pk, &pb);
	CU_ASSERT_EQUAL(pk, N);
	CU_ASSERT(pb >= (uint64_t)N * (sizeof(struct hpsi_rec) + W * 4));

	struct hpsi_table t;
	CU_ASSERT_EQUAL_FATAL(hpsi_table_init(&t, hpsi_local_arena_flags(), 4), 0);
	hpsi_table_expect(&t, (size_t)pk, pb);
	size_t set_aside = t.nspare, nwin0 = t.nwin;
	CU_ASSERT(set_aside >= (size_t)(pb / (HPSI_WIN_UNITS * 8)));
	struct hpsi_store_cursor cur = {0, 0, 0};
	struct hpsi_store_item it;
	size_t copied = 0;
	while (hpsi_store_next(src, &cur, &it) == 0) {
		struct hpsi_table_plan p;
		CU_ASSERT_EQUAL_FATAL(hpsi_table_reserve_keys(&t, 1), 0);
		hpsi_table_plan_begin(&t, &p);
		CU_ASSERT_EQUAL_FATAL(hpsi_table_plan_rec(&t, &p, it.len), 0);
		memcpy(hpsi_rec_vals(hpsi_table_add(&t, it.key, it.len)), it.bytes, it.nbytes);
		copied++;
	}
	CU_ASSERT_EQUAL(copied, N);
	/* every window after the first came from those set aside */
	CU_ASSERT_EQUAL(t.nwin - nwin0, t.spare_next);
	CU_ASSERT(t.spare_next > 0 && t.spare_next <= set_aside);
	size_t bad = 0;
	for (size_t i = 0; i < N; i++) {
		struct hpsi_rec *e = hpsi_table_find(&t, keys[i]);
		bad += !e || e->len != W || memcmp(hpsi_rec_vals(e), g + i * W, W * 4) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	hpsi_table_free(&t);

	/* freed at once, the helper maybe still mapping */
	CU_ASSERT_EQUAL_FATAL(hpsi_table_init(&t, hpsi_local_arena_flags(), 4), 0);
	hpsi_table_expect(&t, (size_t)pk, pb);
	CU_ASSERT(t.nspare > 0);
	hpsi_table_free(&t);

	/* a table that shares: the slots only */
	CU_ASSERT_EQUAL_FATAL(hpsi_table_init(&t, hpsi_local_arena_flags(), 4), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_table_share(&t), 0);
	hpsi_table_expect(&t, (size_t)pk, pb);
	CU_ASSERT_EQUAL(t.nspare, 0);
	CU_ASSERT(t.cap * 3 >= (size_t)pk * 4);
	hpsi_table_free(&t);
	hpsi_store_destroy(src);
}

/* Every key of a equals its key in b (values, state, push count), and
 * both hold as many: by hpsi_store_foreach, which visits cells that go
 * whole too (hpsi_store_next does not). */
struct same_arg {
	const struct hpsi_store *other;
	size_t bad, seen;
};

static int same_key(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	struct same_arg *a = arg;
	struct hpsi_store_item it;
	a->seen++;
	a->bad += hpsi_store_item(a->other, key, &it) != 0 || it.len != len || it.steps != steps ||
		  memcmp(it.bytes, vals, it.nbytes) != 0;
	return 0;
}

static size_t stores_differ(const struct hpsi_store *a, const struct hpsi_store *b)
{
	struct same_arg x = {b, 0, 0};
	hpsi_store_foreach(a, same_key, &x);
	return x.bad + (x.seen != hpsi_store_size(b));
}

/* One push of n keys of width w (gradient g) into each of the stores. */
static void push_all(struct hpsi_store **st, int nst, const uint64_t *keys, uint32_t n, uint32_t w, const float *g)
{
	for (int i = 0; i < nst; i++) {
		hps_request r = {.type = HPS_REQ_PUSH, .width = w, .nkeys = n, .keys = keys, .vals = g,
				 .nvals = (size_t)n * w};
		CU_ASSERT_EQUAL(hpsi_store_handle(&r, st[i]), 0);
	}
}

/* A move of a key range as recover.c makes it between two servers, in
 * one process: the source's tables go whole (hpsi_store_whole_pool and
 * hpsi_store_whole; hpsi_store_adopt_pool and hpsi_store_adopt map the
 * same pages), no record is walked or sent. Pushes reach the source
 * before the freeze: to keys of the cells and of the pool, and new keys
 * that grow the cells, the pool's slots and its windows into other
 * memfds. The copy equals a store that got the same pushes, also after
 * the source is gone and the copy serves and grows on. The refusals
 * leave the destination as it was. */
static void test_store_move_whole(void)
{
	enum { W = 8, WIDE = 200, N = 20000, P = 40, MORE = 30000, MOREWIDE = 1500 };
	struct hpsi_updater u;
	CU_ASSERT_EQUAL_FATAL(hpsi_updater_parse("adam:lr=0.01", "t", &u), 0);
	struct hpsi_store *src = hpsi_store_create(&u, NULL, HPSI_WIRE_F32);
	struct hpsi_store *ref = hpsi_store_create(&u, NULL, HPSI_WIRE_F32); /* gets every push, never moves */
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
	CU_ASSERT_EQUAL_FATAL(hpsi_store_share(src), 0);
	uint64_t *keys = malloc((N + MORE) * sizeof *keys), *wide = malloc((P + MOREWIDE) * sizeof *wide);
	/* (gradients read from g + r, gw + r for r < 4) */
	float *g = malloc(((size_t)(N + MORE) * W + 4) * sizeof *g);
	float *gw = malloc(((size_t)(P + MOREWIDE) * WIDE + 4) * sizeof *gw);
	CU_ASSERT_FATAL(keys && wide && g && gw);
	for (size_t i = 0; i < N + MORE; i++)
		keys[i] = 3 * i + 1;
	for (size_t i = 0; i < (size_t)(N + MORE) * W + 4; i++)
		g[i] = (float)(i % 5) - 2.0f;
	for (size_t i = 0; i < (size_t)(P + MOREWIDE) * WIDE + 4; i++)
		gw[i] = (float)(i % 3) + 0.5f;
	for (int i = 0; i < P + MOREWIDE; i++)
		wide[i] = 7000000 + (uint64_t)i; /* sorted; their cells would be too large: the pool */
	struct hpsi_store *both[] = {src, ref};
	push_all(both, 2, keys, N, W, g);
	push_all(both, 2, keys, N, W, g + 1);
	push_all(both, 2, wide, P, WIDE, gw);

	/* nothing is walked; the shape names the cells, no keys */
	struct hpsi_store_cursor cur = {0, 0, 0};
	struct hpsi_store_item it;
	CU_ASSERT_EQUAL(hpsi_store_next(src, &cur, &it), 1);
	CU_ASSERT(hpsi_store_item(src, keys[5], &it) == 0 && it.whole);
	CU_ASSERT(hpsi_store_item(src, wide[5], &it) == 0 && it.whole);
	uint32_t lens[4];
	uint64_t counts[4];
	size_t nshape = hpsi_store_shape(src, lens, counts, 4);
	CU_ASSERT(nshape == 1 && lens[0] == W && counts[0] == 0);
	struct hpsi_store *dst = hpsi_store_create_like(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
	for (size_t k = 0; k < nshape; k++)
		CU_ASSERT_EQUAL(hpsi_store_expect(dst, lens[k], counts[k]), 0);
	/* pushes before the freeze: old and new keys of the cells and the pool */
	push_all(both, 2, keys, N + MORE, W, g + 2);
	push_all(both, 2, wide, P + MOREWIDE, WIDE, gw + 1);

	/* the freeze: the tables, whole */
	struct hpsi_cells_shape q[4], bad;
	struct hpsi_table_shape pq, pbad;
	CU_ASSERT_EQUAL_FATAL(hpsi_store_whole_pool(src, &pq), 1);
	CU_ASSERT(pq.count == P + MOREWIDE && pq.nwin > 1 && pq.cap > 1024);
	CU_ASSERT_EQUAL_FATAL(hpsi_store_whole(src, q, 4), 1);
	CU_ASSERT(q[0].len == W && q[0].count == N + MORE && q[0].fd >= 0);
	size_t before = hpsi_store_size(dst);
	bad = q[0], bad.csz += 4; /* not the cell size of its length here */
	CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &bad), HPS_EINVAL);
	bad = q[0], bad.ncells *= 2; /* more than the memfd holds */
	CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &bad), HPS_EINVAL);
	bad = q[0], bad.tail = bad.ncells; /* no free cell ends the last run */
	CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &bad), HPS_EINVAL);
	bad = q[0], bad.fd = 1000000; /* no such fd */
	CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &bad), HPS_ESYS);
	/* fds of other files, large enough: not store memfds (another name;
	 * the store's name but made to allow seals; a file on disk) */
	off_t big = (off_t)((q[0].ncells + 1) * q[0].csz * 2 + pq.cap * 8 + (1u << 20));
	char tmpl[] = "/tmp/hps-store-XXXXXX";
	int others[3] = {memfd_create("not-a-store", MFD_CLOEXEC),
			 memfd_create("hps-store", MFD_CLOEXEC | MFD_ALLOW_SEALING), mkstemp(tmpl)};
	unlink(tmpl);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_FATAL(others[i] >= 0 && ftruncate(others[i], big) == 0);
		bad = q[0], bad.fd = others[i];
		CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &bad), HPS_EINVAL);
		pbad = pq, pbad.sfd = others[i];
		CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pbad), HPS_EINVAL);
		close(others[i]);
	}
	pbad = pq, pbad.vbytes += 4; /* not this store's values */
	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pbad), HPS_EINVAL);
	pbad = pq, pbad.cap += 1; /* not a power of two */
	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pbad), HPS_EINVAL);
	pbad = pq, pbad.nwin *= 4; /* more windows than the memfd holds */
	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pbad), HPS_EINVAL);
	pbad = pq, pbad.wfd = 1000000; /* no such fd */
	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pbad), HPS_ESYS);
	CU_ASSERT_EQUAL(hpsi_store_adopt(ref, getpid(), &q[0]), HPS_EINVAL); /* a store that does not share */
	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(ref, getpid(), &pq), HPS_EINVAL);
	CU_ASSERT_EQUAL(hpsi_store_size(dst), before);

	/* a store whose cells went to four other lengths first takes the
	 * keys into its own pool (not the source's, which it would write) */
	struct hpsi_store *full = hpsi_store_create_like(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(full);
	for (uint32_t len = 1; len <= 4; len++)
		CU_ASSERT_EQUAL(hpsi_store_expect(full, len, 0), 0);
	CU_ASSERT_EQUAL(hpsi_store_adopt(full, getpid(), &q[0]), 0);
	CU_ASSERT_EQUAL(hpsi_store_whole(full, q + 1, 3), 0); /* (they are in its pool) */
	CU_ASSERT_EQUAL(hpsi_store_size(full), N + MORE);
	size_t differ = 0;
	for (size_t i = 0; i < N + MORE; i++) {
		struct hpsi_store_item a, b;
		differ += hpsi_store_item(full, keys[i], &a) || hpsi_store_item(ref, keys[i], &b) || a.steps != b.steps ||
			  a.nbytes != b.nbytes || memcmp(a.bytes, b.bytes, a.nbytes);
	}
	CU_ASSERT_EQUAL(differ, 0);
	hpsi_store_destroy(full);

	CU_ASSERT_EQUAL(hpsi_store_adopt_pool(dst, getpid(), &pq), 0);
	CU_ASSERT_EQUAL(hpsi_store_adopt(dst, getpid(), &q[0]), 0);
	hpsi_store_destroy(src); /* the pages stay: dst maps them */
	CU_ASSERT_EQUAL(hpsi_store_size(dst), N + MORE + P + MOREWIDE);
	CU_ASSERT_EQUAL(stores_differ(ref, dst), 0);
	/* the copy serves on: pushes to its keys and new ones (its tables grow) */
	struct hpsi_store *after[] = {dst, ref};
	for (int r = 0; r < 3; r++)
		push_all(after, 2, keys, N + MORE, W, g + r);
	for (size_t i = 0; i < P + MOREWIDE; i++)
		wide[i] += 1000000; /* new keys of the pool: its slots and windows grow */
	push_all(after, 2, wide, P + MOREWIDE, WIDE, gw);
	uint64_t fresh[1000];
	for (int i = 0; i < 1000; i++)
		fresh[i] = 90000000 + (uint64_t)i * 2;
	push_all(after, 2, fresh, 1000, W, g);
	CU_ASSERT_EQUAL(stores_differ(ref, dst), 0);
	CU_ASSERT_EQUAL(stores_differ(dst, ref), 0);
	free(keys), free(wide), free(g), free(gw);
	hpsi_store_destroy(dst);
	hpsi_store_destroy(ref);
}

/* A move whose target could not map the tables (recover.c) walks the
 * same sharing store as records (hpsi_store_by_records): every key of the
 * cells and the pool visited once, none `whole`, no table to hand over,
 * the shape with its counts; the records written into a store made like
 * it give the same store. */
static void test_store_by_records(void)
{
	enum { N = 5000, P = 30, W = 4, WIDE = 300 };
	struct hpsi_store *src = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	CU_ASSERT_EQUAL_FATAL(hpsi_store_share(src), 0);
	static uint64_t keys[N], wide[P];
	static float g[N * W], gw[P * WIDE];
	for (int i = 0; i < N; i++)
		keys[i] = 5 * (uint64_t)i + 2;
	for (int i = 0; i < P; i++)
		wide[i] = 8000000 + (uint64_t)i;
	for (int i = 0; i < N * W; i++)
		g[i] = (float)(i % 7);
	for (int i = 0; i < P * WIDE; i++)
		gw[i] = (float)(i % 3) + 1;
	push_all(&src, 1, keys, N, W, g);
	push_all(&src, 1, wide, P, WIDE, gw);
	struct hpsi_store_cursor cur = {0, 0, 0};
	struct hpsi_store_item it;
	CU_ASSERT_EQUAL(hpsi_store_next(src, &cur, &it), 1); /* (sharing: nothing walked) */

	hpsi_store_by_records(src);
	struct hpsi_table_shape pq;
	struct hpsi_cells_shape q[4];
	CU_ASSERT_EQUAL(hpsi_store_whole_pool(src, &pq), 0);
	CU_ASSERT_EQUAL(hpsi_store_whole(src, q, 4), 0);
	uint32_t lens[4];
	uint64_t counts[4];
	CU_ASSERT(hpsi_store_shape(src, lens, counts, 4) == 1 && lens[0] == W && counts[0] == N);
	struct hpsi_store *dst = hpsi_store_create_like(src);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
	CU_ASSERT(hpsi_store_shares(dst));
	size_t seen = 0, whole = 0;
	cur = (struct hpsi_store_cursor){0, 0, 0};
	while (hpsi_store_next(src, &cur, &it) == 0) {
		seen++;
		whole += it.whole != 0;
		CU_ASSERT_EQUAL(hpsi_store_write(dst, it.key, it.len, it.steps, 0, it.bytes, it.nbytes), 0);
	}
	CU_ASSERT_EQUAL(seen, N + P);
	CU_ASSERT_EQUAL(whole, 0);
	CU_ASSERT_EQUAL(stores_differ(src, dst), 0);
	CU_ASSERT_EQUAL(stores_differ(dst, src), 0);
	hpsi_store_destroy(dst);
	hpsi_store_destroy(src);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_store_matches_reference", test_store_matches_reference},
		{"test_store_grows_past_many_keys", test_store_grows_past_many_keys},
		{"test_store_lens_and_large_records", test_store_lens_and_large_records},
		{"test_store_foreach_put_round_trip", test_store_foreach_put_round_trip},
		{"test_store_cells_promote", test_store_cells_promote},
		{"test_store_cells_and_pool", test_store_cells_and_pool},
		{"test_store_copy_while_serving", test_store_copy_while_serving},
		{"test_store_copy_into_expected_cells", test_store_copy_into_expected_cells},
		{"test_store_copy_into_expected_pool", test_store_copy_into_expected_pool},
		{"test_store_move_whole", test_store_move_whole},
		{"test_store_by_records", test_store_by_records},
		{NULL, NULL},
	};
	return run_suite("store", cases);
}
