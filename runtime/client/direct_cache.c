/* Per-worker copies of the keys of a HOGWILD direct range (semantics in
 * include/hps/hps.h).
 *
 * Why: every worker of a HOGWILD job writes the same frequent rows (a bias,
 * common words, popular items, every pixel of a dense model), so the cache
 * lines of those rows move from core to core at nearly every update and
 * each update waits for them (75-100 ns a line here, against a few ns of
 * arithmetic per feature). A worker that updates its own copy of a row and
 * adds the change into the shared row now and then moves each of the row's
 * lines once per merge instead (the scheme of HOGWILD++, Zhang, Hsieh and
 * Akella 2016, here with one copy per worker).
 *
 * Each key has its own merge period, a power of two: the caller gives a
 * frequent key a short one (its change reaches the others soon) and a rare
 * key a long one (merging it often would cost more than it saves). Slots
 * are grouped by period, shortest first ("tiers"), so step t merges the
 * tiers whose period divides t: a prefix of the tier list.
 *
 * A merge adds, float by float, what the worker changed since its last
 * merge (copy - base) into the shared value and starts over from the sum:
 * copy = base = the shared value, which now holds the other workers' merged
 * changes too. The add is a plain read-add-write, as every HOGWILD update
 * is: a compare-and-swap per float would keep a merge from losing a float
 * another merge writes in the same instant, but cost over ten times a
 * plain add per float in a one-off timing (a 51-float row), more than the
 * contention it removes. No lock anywhere. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/hps.h"
#include "runtime/common/checked.h"
#include "runtime/common/log.h"

/* Handles (include/hps/hps.h): key k - first for a shared row, HOT | slot
 * for the copy in slot `slot`. */
#define HOT 0x80000000u
#define PREFETCH 16 /* rows; the transfers one core keeps in flight are about 10-20 */
#define MAX_TIERS 33 /* periods 2^0 .. 2^31, and "only hps_direct_cache_merge" */

struct tier {
	uint64_t period; /* steps, a power of two; 0: only explicit merges */
	size_t lo, hi;   /* its slots */
};

struct hps_direct_cache {
	float *shared;     /* the direct range's array (d.vals) */
	float *copy;       /* nhot x width: what the worker updates */
	float *base;       /* nhot x width: the shared values at the last merge */
	uint64_t *off;     /* slot -> key - first */
	uint64_t *keys;    /* the named keys - first, ascending ... */
	uint32_t *slot;    /* ... and the slot of each */
	struct tier tier[MAX_TIERS];
	int ntiers;
	uint64_t first, count, steps;
	size_t nhot;
	uint64_t seed;     /* where merges start (a linear congruential sequence) */
	uint32_t width;
};

/* Merges slots lo .. hi - 1, starting at a slot of its own. */
static void merge_slots(hps_direct_cache *c, size_t lo, size_t hi)
{
	size_t n = hi - lo;
	if (!n)
		return;
	uint32_t w = c->width;
	/* Each merge starts at another slot: two workers merging at the same
	 * moment then walk different rows instead of racing float by float
	 * down the same ones (their read-add-write could lose one another's
	 * float, as any HOGWILD write may). */
	c->seed = c->seed * 6364136223846793005ull + 1442695040888963407ull;
	size_t i = lo + (size_t)((c->seed >> 33) % n);
	for (size_t done = 0; done < n; done++, i = i + 1 < hi ? i + 1 : lo) {
		/* the shared rows are mostly in another core's cache: asking for
		 * a row PREFETCH slots ahead overlaps those transfers instead of
		 * waiting for each in turn (a read prefetch: GCC drops a write
		 * one on x86-64 without -mprfchw) */
		size_t ahead = i + PREFETCH < hi ? i + PREFETCH : i + PREFETCH - n;
		if (ahead >= lo && ahead < hi)
			__builtin_prefetch(c->shared + c->off[ahead] * w);
		float *restrict s = c->shared + c->off[i] * w, *restrict cp = c->copy + i * w,
				*restrict b = c->base + i * w;
		for (uint32_t j = 0; j < w; j++) {
			float d = cp[j] - b[j], v = s[j];
			if (d != 0.0f) /* a float this worker left alone is only read:
					* writing it back could undo another's merge */
				s[j] = v += d;
			cp[j] = b[j] = v;
		}
	}
}

void hps_direct_cache_merge(hps_direct_cache *c)
{
	if (!c)
		return;
	merge_slots(c, 0, c->nhot);
	c->steps = 0;
}

void hps_direct_cache_step(hps_direct_cache *c)
{
	if (!c)
		return;
	uint64_t t = ++c->steps;
	/* tiers with a period go first, shortest first: once one's period
	 * does not divide t, no longer one does */
	for (int k = 0; k < c->ntiers && c->tier[k].period && !(t & (c->tier[k].period - 1)); k++)
		merge_slots(c, c->tier[k].lo, c->tier[k].hi);
}

hps_direct_rows hps_direct_cache_rows(const hps_direct_cache *c)
{
	return c ? (hps_direct_rows){.base = {c->shared, c->copy}, .width = c->width} : (hps_direct_rows){0};
}

int hps_direct_cache_handle(const hps_direct_cache *c, uint64_t key, uint32_t *handle)
{
	if (!c || !handle)
		return HPS_EINVAL;
	if (key < c->first || key - c->first >= c->count)
		return HPS_ENOKEY;
	uint64_t k = key - c->first;
	size_t lo = 0, hi = c->nhot;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->keys[mid] < k)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* count <= 2^31 and nhot <= count: both fit in 31 bits */
	*handle = lo < c->nhot && c->keys[lo] == k ? HOT | c->slot[lo] : (uint32_t)k;
	return 0;
}

void hps_direct_cache_close(hps_direct_cache *c)
{
	if (!c)
		return;
	hps_direct_cache_merge(c);
	free(c->copy);
	free(c->base);
	free(c->off);
	free(c->keys);
	free(c->slot);
	free(c);
}

/* The tier of a merge period: 0 .. 31 for 2^0 .. 2^31 (rounded up), 32
 * for "only explicit merges". */
static int tier_of(uint32_t every)
{
	if (!every)
		return MAX_TIERS - 1;
	int t = 0;
	while (((uint64_t)1 << t) < every)
		t++;
	return t;
}

/* Refuses what hps_direct_cache_open cannot take, saying why. */
static int check_args(const hps_direct *d, const uint64_t *keys, const uint32_t *every, size_t nkeys)
{
	if (!d || !d->vals || !d->width || !d->count || (nkeys && (!keys || !every))) {
		hpsi_warn("hps_direct_cache_open: %s", !d || !d->vals ? "no mapped direct range (hps_direct_map first)"
						       : nkeys && (!keys || !every) ? "no keys or no periods"
										    : "the direct range is empty");
		return HPS_EINVAL;
	}
	if (d->count > HOT) {
		hpsi_warn("hps_direct_cache_open: the direct range has %llu keys, more than handles name (2^31)",
			  (unsigned long long)d->count);
		return HPS_EINVAL;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i] < d->first || keys[i] - d->first >= d->count) {
			hpsi_warn("hps_direct_cache_open: key %llu is outside the direct range %llu-%llu",
				  (unsigned long long)keys[i], (unsigned long long)d->first,
				  (unsigned long long)(d->first + d->count - 1));
			return HPS_ENOKEY;
		}
		if (i && keys[i] <= keys[i - 1])
			return HPS_EKEYORDER;
	}
	return 0;
}

int hps_direct_cache_open(const hps_direct *d, const uint64_t *keys, const uint32_t *every, size_t nkeys,
			  hps_direct_cache **out)
{
	if (!out)
		return HPS_EINVAL;
	*out = NULL;
	int rc = check_args(d, keys, every, nkeys);
	if (rc)
		return rc;
	size_t vals, vals_bytes, key_bytes, slot_bytes;
	if (hpsi_mul_size(nkeys, d->width, &vals) || hpsi_mul_size(vals, sizeof(float), &vals_bytes) ||
	    hpsi_mul_size(nkeys, sizeof(uint64_t), &key_bytes) || hpsi_mul_size(nkeys, sizeof(uint32_t), &slot_bytes))
		return HPS_ENOMEM;
	hps_direct_cache *c = calloc(1, sizeof *c);
	if (!c)
		return HPS_ENOMEM;
	*c = (hps_direct_cache){.shared = d->vals, .first = d->first, .count = d->count,
				.seed = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)c, .width = d->width};
	/* at least one byte each, so that no key at all is not an error */
	c->copy = malloc(vals_bytes ? vals_bytes : 1);
	c->base = malloc(vals_bytes ? vals_bytes : 1);
	c->off = malloc(key_bytes ? key_bytes : 1);
	c->keys = malloc(key_bytes ? key_bytes : 1);
	c->slot = malloc(slot_bytes ? slot_bytes : 1);
	if (!c->copy || !c->base || !c->off || !c->keys || !c->slot) {
		hps_direct_cache_close(c); /* nhot is 0: nothing to merge */
		return HPS_ENOMEM;
	}
	/* slots tier by tier (a counting sort), keys ascending within each,
	 * so that a merge walks the shared array forward */
	size_t at[MAX_TIERS] = {0}, lo = 0;
	for (size_t i = 0; i < nkeys; i++)
		at[tier_of(every[i])]++;
	for (int t = 0; t < MAX_TIERS; t++) {
		size_t n = at[t];
		at[t] = lo;
		if (n)
			c->tier[c->ntiers++] = (struct tier){.period = t < MAX_TIERS - 1 ? (uint64_t)1 << t : 0,
							    .lo = lo, .hi = lo + n};
		lo += n;
	}
	for (size_t i = 0; i < nkeys; i++) {
		size_t s = at[tier_of(every[i])]++;
		c->keys[i] = keys[i] - d->first;
		c->slot[i] = (uint32_t)s;
		c->off[s] = c->keys[i];
		memcpy(c->copy + s * d->width, d->vals + c->keys[i] * d->width, d->width * sizeof(float));
	}
	memcpy(c->base, c->copy, vals_bytes);
	c->nhot = nkeys;
	*out = c;
	return 0;
}
