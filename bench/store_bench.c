/* store_bench: the server's store alone, in one process, on the zipf
 * cases of hps_bench (the same table of 10 M keys and the same requests),
 * next to what this machine's memory allows.
 *
 *   bench/store_bench [sparse1k] [zipf1k] [zipf1k_w1]     (default: all three)
 *
 * For each zipf case: fills a store (sum updater, f32) with every key of
 * the table in blocks of 100,000 sorted keys, as hps_bench's workers do,
 * then sends worker 0's requests to hpsi_store_handle in turn, pushes then
 * pulls, REPS runs of REP_NS each; sparse1k sends its one request of 1,000
 * keys again and again (a table in the cache: the store's CPU per key).
 * Lines:
 *   case store phase MB/s keys/s ops/s ns_per_key -
 * then "# case store memory: ..." (the store's own count of its bytes, the
 * process's resident growth per key, and how fast the fill went) and "# bare ..." : independent
 * random reads of one 64-byte line each over as many bytes as the table
 * holds, plain and with a prefetch 16 reads ahead, and a chain of
 * dependent reads (the latency of one miss). Without rings or a second
 * process this is the server's side of `pipe_push` / `pipe_pull`: what the
 * table costs per key, and how far that is from one miss per key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/cases.h"
#include "hps/hps.h"
#include "runtime/common/dtype.h"
#include "runtime/server/store.h"
#include "shm/bell.h"

/* Resident bytes in transparent huge pages (the table asks for them). */
static long huge_now(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static double now_ns(void)
{
	return (double)hpsi_now_ns();
}

static int fill(struct hpsi_store *st, const struct bench_case *c, size_t ci)
{
	enum { BLOCK = 100000 };
	uint64_t *k = malloc(BLOCK * sizeof *k);
	float *v = calloc((size_t)BLOCK * c->width, sizeof *v);
	int rc = !k || !v;
	for (uint64_t first = 1; !rc && first <= c->universe; first += BLOCK) {
		uint32_t n = 0;
		for (uint64_t r = first; r < first + BLOCK && r <= c->universe; r++)
			k[n++] = bench_zipf_key(r, ci);
		qsort(k, n, sizeof *k, bench_cmp_u64);
		hps_request q = {.type = HPS_REQ_PUSH, .width = c->width, .dtype = HPS_F32, .nkeys = n, .keys = k,
				 .vals = v, .nvals = (size_t)n * c->width};
		rc = hpsi_store_handle(&q, st) != 0;
	}
	free(k);
	free(v);
	return rc;
}

/* One phase: REPS runs of REP_NS; prints the median. */
static int run_phase(struct hpsi_store *st, const struct bench_case *c, const uint64_t *keys, size_t nreq, int pull)
{
	size_t floats = (size_t)c->nkeys * c->width;
	float *vals = malloc(floats * sizeof *vals), *out = malloc(floats * sizeof *out);
	if (!vals || !out)
		return 1;
	for (size_t i = 0; i < floats; i++)
		vals[i] = 1e-3f;
	double ops[REPS];
	long q = 0;
	for (int rep = 0; rep < REPS; rep++) {
		double t0 = now_ns(), end = t0 + (double)REP_NS;
		long n = 0;
		do {
			for (int b = 0; b < 16; b++, n++, q++) {
				const uint64_t *k = keys + (size_t)q % nreq * c->nkeys;
				hps_request r = {.type = pull ? HPS_REQ_PULL : HPS_REQ_PUSH, .width = c->width,
						 .dtype = HPS_F32, .nkeys = c->nkeys, .keys = k};
				if (pull)
					r.out = out, r.out_cap = floats;
				else
					r.vals = vals, r.nvals = floats;
				if (hpsi_store_handle(&r, st) < 0) {
					fprintf(stderr, "store_bench: the store refused a request\n");
					return 1;
				}
			}
		} while (now_ns() < end);
		ops[rep] = (double)n / ((now_ns() - t0) / 1e9);
	}
	double m = median(ops, REPS), keys_s = m * c->nkeys;
	printf("%s store %s", c->name, pull ? "pull" : "push");
	print_fig(keys_s * c->width * 4 / 1e6);
	print_fig(keys_s);
	print_fig(m);
	print_fig(1e9 / keys_s);
	printf(" -\n");
	fflush(stdout);
	free(vals);
	free(out);
	return 0;
}

static inline uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Random reads of one line each over `bytes` (huge pages asked for, like
 * the table's): ns per read, independent (only the core's out-of-order
 * window overlaps them), prefetched 16 ahead, and dependent. */
static void bare_reads(size_t bytes)
{
	const size_t huge = (size_t)2 << 20;
	bytes = (bytes + huge - 1) & ~(huge - 1);
	char *p = aligned_alloc(huge, bytes);
	if (!p)
		return;
	madvise(p, bytes, MADV_HUGEPAGE);
	memset(p, 1, bytes);
	size_t lines = bytes / 64, n = 4000000, dn = 500000;
	double ind[REPS], pre[REPS], dep[REPS];
	uint64_t sink = 0;
	for (int rep = 0; rep < REPS; rep++) {
		uint64_t base = (uint64_t)rep * n, s = 0;
		double t = now_ns();
		for (size_t i = 0; i < n; i++)
			s += *(volatile uint64_t *)(p + mix(base + i) % lines * 64);
		ind[rep] = (now_ns() - t) / (double)n;
		t = now_ns();
		for (size_t i = 0; i < n; i++) {
			__builtin_prefetch(p + mix(base + i + 16) % lines * 64);
			s += *(volatile uint64_t *)(p + mix(base + i) % lines * 64);
		}
		pre[rep] = (now_ns() - t) / (double)n;
		t = now_ns();
		uint64_t x = 0;
		for (size_t i = 0; i < dn; i++)
			x = *(volatile uint64_t *)(p + mix(base + i + x) % lines * 64);
		dep[rep] = (now_ns() - t) / (double)dn;
		sink += s + x;
	}
	printf("# bare random 64-byte reads over %zu MiB: %.1f ns each independent, %.1f prefetched 16 ahead, "
	       "%.1f dependent (medians of %d)%s\n",
	       bytes >> 20, median(ind, REPS), median(pre, REPS), median(dep, REPS), REPS, sink == 42 ? " " : "");
	free(p);
}

/* Counts the keys a walk visits. */
static int count_key(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	(void)key, (void)len, (void)steps, (void)vals;
	++*(uint64_t *)arg;
	return 0;
}

/* The two walks over a whole table: the recovery copy's cursor (in the
 * order of the hashes, runtime/server/recover.c) and a checkpoint's (in the
 * order of the arrays), in ns per key. */
static int walks(struct hpsi_store *st, const char *name, uint64_t nkeys)
{
	struct hpsi_store_cursor cur = {0};
	struct hpsi_store_item it;
	uint64_t seen = 0;
	double t0 = now_ns();
	int rc;
	while ((rc = hpsi_store_next(st, &cur, &it)) == 0)
		seen++;
	double copy_ns = (now_ns() - t0) / (double)nkeys;
	uint64_t visited = 0;
	t0 = now_ns();
	if (rc != 1 || hpsi_store_foreach(st, count_key, &visited))
		return -1;
	double ckpt_ns = (now_ns() - t0) / (double)nkeys;
	if (seen != nkeys || visited != nkeys) {
		fprintf(stderr, "store_bench: the walks saw %llu and %llu keys of %llu\n", (unsigned long long)seen,
			(unsigned long long)visited, (unsigned long long)nkeys);
		return -1;
	}
	printf("# %s store walks: the copy cursor %.1f ns per key, a checkpoint's walk %.1f ns per key\n", name,
	       copy_ns, ckpt_ns);
	return 0;
}

enum { SPARSE1K = 1 }; /* cases[SPARSE1K] */

int main(int argc, char **argv)
{
	size_t want[NCASES] = {0}, nwant = 0;
	for (size_t ci = 0; ci < NCASES; ci++)
		for (int a = 1; a < argc; a++)
			if (!strcmp(argv[a], cases[ci].name) && (cases[ci].universe || ci == SPARSE1K))
				want[nwant++] = ci;
	if (nwant < (size_t)argc - 1) {
		fprintf(stderr, "usage: store_bench [sparse1k] [zipf1k] [zipf1k_w1]\n");
		return 2;
	}
	for (size_t ci = 0; argc == 1 && ci < NCASES; ci++)
		if (cases[ci].universe || ci == SPARSE1K)
			want[nwant++] = ci;
	for (size_t w = 0; w < nwant; w++) {
		size_t ci = want[w];
		const struct bench_case *c = &cases[ci];
		if (!c->universe) {
			uint64_t *keys = bench_sparse_keys(c->nkeys, ci);
			struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
			if (!keys || !st || run_phase(st, c, keys, 1, 0) || run_phase(st, c, keys, 1, 1))
				return 1;
			hpsi_store_destroy(st);
			free(keys);
			continue;
		}
		uint64_t *keys = bench_zipf_requests(c->nkeys, ci, 0);
		long before = bench_rss_bytes(getpid());
		struct hpsi_store *st = hpsi_store_create(NULL, NULL, HPSI_WIRE_F32);
		double t0 = now_ns();
		if (!keys || !st || fill(st, c, ci)) {
			fprintf(stderr, "store_bench: cannot fill the table of %s\n", c->name);
			return 1;
		}
		double fill_s = (now_ns() - t0) / 1e9;
		long rss = bench_rss_bytes(getpid()), huge = huge_now();
		double grew = (double)(rss - before) / (double)c->universe;
		if (run_phase(st, c, keys, ZIPF_REQS, 0) || run_phase(st, c, keys, ZIPF_REQS, 1))
			return 1;
		size_t bytes = hpsi_store_bytes(st);
		printf("# %s store memory: %.1f bytes per key counted by the store, resident memory grew %.1f "
		       "(key and values: %u bytes); %.0f%% of the resident memory in huge pages; filled at %.1f M keys/s\n",
		       c->name, (double)bytes / (double)c->universe, grew, 8 + 4 * c->width,
		       100.0 * (double)huge / (double)rss, (double)c->universe / fill_s / 1e6);
		if (walks(st, c->name, c->universe))
			return 1;
		hpsi_store_destroy(st);
		free(keys);
		bare_reads(bytes);
	}
	return 0;
}
