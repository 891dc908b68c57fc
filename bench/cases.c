#include "bench/cases.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "net/route.h"
#include "shm/bell.h"

#define ZIPF_S 1.1
#define ZIPF_SEED 15u /* the worker's rank is added: workers draw different requests */

const struct bench_case cases[NCASES] = {
	{"lat", 1, 1, 0, 0},
	{"sparse1k", 1000, 1, 0, 0},
	{"sparse100k", 100000, 1, 0, 0},
	{"dense4M", 1, 1u << 20, 1, 0},
	{"dense4M_8k", 8, 1u << 17, 1, 0},
	{"zipf1k", 1000, 8, 0, ZIPF_KEYS},
	{"zipf1k_w1", 1000, 1, 0, ZIPF_KEYS},
};
const char *const phase_names[NPHASES] = {"push", "pull", "push+pull", "pushpull", "pipe_push", "pipe_pull"};

struct shared *sh;
int selected[NCASES];
int bench_nservers;
int bench_server_pid[8];
void (*bench_rep_hook)(size_t ci, int ph, long ops);

int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double now_us(void)
{
	return (double)hpsi_now_ns() / 1000.0;
}

/* Keys spread evenly over the key space, sorted; each case has its own
 * (a key keeps the width it was first pushed with). */
uint64_t *bench_sparse_keys(uint32_t n, size_t ci)
{
	uint64_t *k = malloc(n * sizeof *k), step = UINT64_MAX / n;
	for (uint32_t i = 0; i < n; i++)
		k[i] = (uint64_t)i * step + 12345 + ci * 1000;
	return k;
}

/* The key of rank r (1 = most frequent) in case ci: a bijective mix, so
 * that frequent keys lie anywhere in the key space, like hashed feature
 * ids, and each case has its own keys. */
uint64_t bench_zipf_key(uint64_t rank, size_t ci)
{
	return hpsi_key_mix(rank + ((uint64_t)ci << 40));
}

/* splitmix64: the uniform source of the Zipf draws. */
static double uniform01(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}

/* Zipf(s) over ranks 1..n by rejection-inversion (Hörmann and Derflinger,
 * "Rejection-inversion to generate variates from monotone discrete
 * distributions", 1996): invert the integral H of x^-s over a continuous
 * range, round to the nearest rank, accept unless the rank's bar lies
 * below the curve; exact, O(1) per draw and no table. */
struct zipf {
	double s, n, h_lo, h_hi, squeeze;
};

static double zipf_h(double s, double x)
{
	return (pow(x, 1 - s) - 1) / (1 - s);
}

static double zipf_h_inv(double s, double y)
{
	return pow(1 + y * (1 - s), 1 / (1 - s));
}

static void zipf_init(struct zipf *z, double s, double n)
{
	z->s = s, z->n = n;
	z->h_lo = zipf_h(s, 1.5) - 1; /* rank 1's bar is 1 high, from 0.5 */
	z->h_hi = zipf_h(s, n + 0.5);
	z->squeeze = 2 - zipf_h_inv(s, zipf_h(s, 2.5) - pow(2, -s));
}

static uint64_t zipf_draw(const struct zipf *z, uint64_t *state)
{
	for (;;) {
		double u = z->h_hi + uniform01(state) * (z->h_lo - z->h_hi);
		double x = zipf_h_inv(z->s, u), k = floor(x + 0.5);
		if (k < 1)
			k = 1;
		else if (k > z->n)
			k = z->n;
		if (k - x <= z->squeeze || u >= zipf_h(z->s, k + 0.5) - pow(k, -z->s))
			return (uint64_t)k;
	}
}

int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t *bench_zipf_requests(uint32_t nkeys, size_t ci, int rank)
{
	struct zipf z;
	zipf_init(&z, ZIPF_S, (double)ZIPF_KEYS);
	uint64_t state = ZIPF_SEED + (uint64_t)rank;
	uint64_t *all = malloc((size_t)ZIPF_REQS * nkeys * sizeof *all);
	size_t set_cap = 4;
	while (set_cap < 2 * (size_t)nkeys)
		set_cap *= 2;
	uint64_t *set = malloc(set_cap * sizeof *set); /* ranks drawn for this request, 0: empty */
	for (size_t q = 0; q < ZIPF_REQS; q++) {
		uint64_t *k = all + q * nkeys;
		memset(set, 0, set_cap * sizeof *set);
		for (uint32_t n = 0; n < nkeys;) {
			uint64_t r = zipf_draw(&z, &state);
			size_t i = hpsi_key_mix(r) & (set_cap - 1);
			while (set[i] && set[i] != r)
				i = (i + 1) & (set_cap - 1);
			if (set[i])
				continue; /* drawn already: unique keys per request */
			set[i] = r;
			k[n++] = bench_zipf_key(r, ci);
		}
		qsort(k, nkeys, sizeof *k, bench_cmp_u64);
	}
	free(set);
	return all;
}

long bench_rss_bytes(int pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/statm", pid);
	FILE *f = fopen(path, "r");
	long pages = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static long servers_rss(void)
{
	long sum = 0;
	for (int i = 0; i < bench_nservers; i++)
		sum += bench_rss_bytes(bench_server_pid[i]);
	return sum;
}

/* Pushes every key of a zipf case's table once (worker w of W takes every
 * W-th block of ranks), then waits for all workers; worker 0 notes how
 * much the servers' resident memory grew per key. */
static int fill_table(hps_ctx *ctx, hps_worker *w, const struct bench_case *c, size_t ci)
{
	enum { BLOCK = 100000 };
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	uint64_t *k = malloc(BLOCK * sizeof *k);
	float *v = calloc((size_t)BLOCK * c->width, sizeof *v);
	hps_opts o = {.width = c->width};
	if (hps_barrier(ctx))
		return 1;
	long before = me == 0 ? servers_rss() : 0;
	int rc = 0;
	for (uint64_t first = 1 + (uint64_t)me * BLOCK; !rc && first <= c->universe; first += (uint64_t)nw * BLOCK) {
		uint32_t n = 0;
		for (uint64_t r = first; r < first + BLOCK && r <= c->universe; r++)
			k[n++] = bench_zipf_key(r, ci);
		qsort(k, n, sizeof *k, bench_cmp_u64);
		rc = hps_wait(w, hps_push(w, k, n, v, &o));
	}
	free(k);
	free(v);
	if (rc || hps_barrier(ctx))
		return 1;
	if (me == 0 && bench_nservers)
		sh->rss_per_key[ci] = (double)(servers_rss() - before) / (double)c->universe;
	return 0;
}

struct bufs {
	uint64_t *keys;
	size_t nreq; /* requests in keys, sent in turn */
	float *push;
	float *pull[32];
	hps_opts opts;
};

/* One repetition of a phase; returns ops/s, sets *done to the operations
 * it did and adds latency samples. */
static double run_rep(hps_worker *w, const struct bench_case *c, int ph, struct bufs *b, double *samples,
		      int *nsamples, long *done)
{
	int depth = c->dense ? 4 : 16;
	int64_t ts[32];
	long ops = 0;
	int64_t end = hpsi_now_ns() + REP_NS;
	double t0 = now_us();
	const hps_opts *o = &b->opts;
	const uint64_t *keys = b->keys;
#define NEXT_KEYS() (keys = b->keys + (size_t)(ops % (long)b->nreq) * c->nkeys)
	if (ph >= PH_PIPE_PUSH) {
		int head = 0, out = 0;
		while (hpsi_now_ns() < end) {
			if (out == depth) {
				if (hps_wait(w, ts[head % depth]))
					return -1;
				out--;
				head++;
			}
			int slot = (head + out) % depth;
			NEXT_KEYS();
			ts[slot] = ph == PH_PIPE_PUSH ? hps_push(w, keys, c->nkeys, b->push, o)
						      : hps_pull(w, keys, c->nkeys, b->pull[slot], o);
			if (ts[slot] < 0)
				return -1;
			out++;
			ops++;
		}
		for (; out > 0; out--, head++)
			if (hps_wait(w, ts[head % depth]))
				return -1;
		*done = ops;
		return (double)ops / ((now_us() - t0) / 1e6);
	}
	while (hpsi_now_ns() < end) {
		double s = now_us();
		int rc;
		NEXT_KEYS();
		switch (ph) {
		case PH_PUSH: rc = hps_wait(w, hps_push(w, keys, c->nkeys, b->push, o)); break;
		case PH_PULL: rc = hps_wait(w, hps_pull(w, keys, c->nkeys, b->pull[0], o)); break;
		case PH_PUSH_PULL:
			rc = hps_wait(w, hps_push(w, keys, c->nkeys, b->push, o));
			if (!rc)
				rc = hps_wait(w, hps_pull(w, keys, c->nkeys, b->pull[0], o));
			break;
		default: rc = hps_wait(w, hps_pushpull(w, keys, c->nkeys, b->push, b->pull[0], o)); break;
		}
		if (rc)
			return -1;
		if (*nsamples < MAX_SAMPLES)
			samples[(*nsamples)++] = now_us() - s;
		ops++;
	}
	*done = ops;
	return (double)ops / ((now_us() - t0) / 1e6);
#undef NEXT_KEYS
}

int worker_main(hps_ctx *ctx, hps_worker *w)
{
	int me = hps_rank(ctx);
	double *samples = malloc(MAX_SAMPLES * sizeof *samples);
	for (size_t ci = 0; ci < NCASES; ci++) {
		if (!selected[ci])
			continue;
		const struct bench_case *c = &cases[ci];
		size_t floats = (size_t)c->nkeys * c->width;
		struct bufs b = {.keys = c->universe ? bench_zipf_requests(c->nkeys, ci, me) : bench_sparse_keys(c->nkeys, ci),
				 .nreq = c->universe ? ZIPF_REQS : 1,
				 .opts = {.width = c->width}};
		if (c->universe && fill_table(ctx, w, c, ci))
			return 1;
		b.push = c->dense ? hps_alloc(w, floats * 4) : malloc(floats * 4);
		for (int i = 0; i < 32; i++)
			b.pull[i] = c->dense ? hps_alloc(w, floats * 4) : malloc(floats * 4);
		for (size_t i = 0; i < floats; i++)
			b.push[i] = 1e-3f;
		for (int ph = 0; ph < NPHASES; ph++) {
			double ops[REPS];
			int ns = 0;
			for (int rep = 0; rep < REPS; rep++) {
				long done = 0;
				if (hps_barrier(ctx))
					return 1;
				if (bench_rep_hook)
					bench_rep_hook(ci, ph, -1);
				ops[rep] = run_rep(w, c, ph, &b, samples, &ns, &done);
				if (ops[rep] < 0)
					return 1;
				if (bench_rep_hook)
					bench_rep_hook(ci, ph, done);
			}
			struct result *r = &sh->r[me][ci][ph];
			r->ops_s = median(ops, REPS);
			if (ns) {
				qsort(samples, (size_t)ns, sizeof *samples, cmp_double);
				r->p50_us = samples[ns / 2];
				r->p99_us = samples[(size_t)ns * 99 / 100];
			} else {
				r->p50_us = r->p99_us = NAN;
			}
			r->valid = 1;
		}
		for (int i = 0; i < 32; i++)
			c->dense ? (void)hps_free(w, b.pull[i]) : free(b.pull[i]);
		c->dense ? (void)hps_free(w, b.push) : free(b.push);
		free(b.keys);
	}
	free(samples);
	return 0;
}

void print_fig(double v)
{
	if (isnan(v))
		printf(" -");
	else if (v >= 100)
		printf(" %.0f", v);
	else
		printf(" %.3g", v);
}

void report_config(const char *config, uint32_t W)
{
	for (size_t ci = 0; ci < NCASES; ci++) {
		if (!selected[ci])
			continue;
		const struct bench_case *c = &cases[ci];
		for (int ph = 0; ph < NPHASES; ph++) {
			double ops = 0;
			for (uint32_t w = 0; w < W; w++)
				ops += sh->r[w][ci][ph].ops_s;
			if (!sh->r[0][ci][ph].valid)
				continue;
			/* a push+pull op moves the values twice, a pushpull op too */
			double moves = ph == PH_PUSH_PULL || ph == PH_PUSHPULL ? 2 : 1;
			double bytes = (double)c->nkeys * c->width * 4 * moves;
			printf("%s %s %s", c->name, config, phase_names[ph]);
			print_fig(ops * bytes / 1e6);
			print_fig(ops * c->nkeys);
			print_fig(ops);
			print_fig(sh->r[0][ci][ph].p50_us);
			print_fig(sh->r[0][ci][ph].p99_us);
			printf("\n");
			fflush(stdout);
		}
		if (sh->rss_per_key[ci] > 0)
			printf("# %s %s memory: servers' resident memory grew %.1f bytes per key filled (key and values: %u bytes)\n",
			       c->name, config, sh->rss_per_key[ci], 8 + 4 * c->width);
	}
}


/* ---- cleanup on signals ------------------------------------------------- */

static char seg_path[256]; /* the running job's segment, or "" */

static void on_fatal(int sig)
{
	if (seg_path[0])
		unlink(seg_path); /* async-signal-safe, as are the calls below */
	signal(sig, SIG_DFL);
	raise(sig);
}

void bench_cleanup_on_signals(void)
{
	struct sigaction sa = {.sa_handler = on_fatal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

void bench_job_segment(const char *path)
{
	seg_path[0] = 0;
	if (path)
		snprintf(seg_path, sizeof seg_path, "%s", path);
}

void bench_child(int deathsig)
{
	seg_path[0] = 0;
	prctl(PR_SET_PDEATHSIG, deathsig);
}

void bench_env(const char *job, const char *role, int rank)
{
	char num[16];
	snprintf(num, sizeof num, "%d", rank);
	setenv("HPS_ROLE", role, 1);
	setenv("HPS_RANK", num, 1);
	setenv("HPS_JOB_ID", job, 1);
	setenv("HPS_HOST", "bench", 1);
}

void bench_run_node(const char *job, int server, int rank, int (*fn)(hps_ctx *, hps_worker *))
{
	bench_child(SIGKILL);
	bench_env(job, server ? "server" : "worker", rank);
	hps_ctx *ctx;
	hps_worker *w;
	if (hps_init(&ctx, NULL, NULL))
		_exit(1);
	if (server)
		_exit(hps_server_run(ctx, NULL, NULL) ? 1 : 0);
	if (hps_worker_open(ctx, 1, &w))
		_exit(1);
	int rc = fn(ctx, w);
	hps_worker_close(w);
	hps_finalize(ctx);
	_exit(rc);
}
