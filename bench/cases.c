#include "bench/cases.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "shm/bell.h"

const struct bench_case cases[NCASES] = {
	{"lat", 1, 1, 0},
	{"sparse1k", 1000, 1, 0},
	{"sparse100k", 100000, 1, 0},
	{"dense4M", 1, 1u << 20, 1},
	{"dense4M_8k", 8, 1u << 17, 1},
};
const char *const phase_names[NPHASES] = {"push", "pull", "push+pull", "pushpull", "pipe_push", "pipe_pull"};

struct shared *sh;
int selected[NCASES];

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
static uint64_t *make_keys(uint32_t n, size_t ci)
{
	uint64_t *k = malloc(n * sizeof *k), step = UINT64_MAX / n;
	for (uint32_t i = 0; i < n; i++)
		k[i] = (uint64_t)i * step + 12345 + ci * 1000;
	return k;
}

struct bufs {
	uint64_t *keys;
	float *push;
	float *pull[32];
	hps_opts opts;
};

/* One repetition of a phase; returns ops/s and adds latency samples. */
static double run_rep(hps_worker *w, const struct bench_case *c, int ph, struct bufs *b, double *samples,
		      int *nsamples)
{
	int depth = c->dense ? 4 : 16;
	int64_t ts[32];
	long ops = 0;
	int64_t end = hpsi_now_ns() + REP_NS;
	double t0 = now_us();
	const hps_opts *o = &b->opts;
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
			ts[slot] = ph == PH_PIPE_PUSH ? hps_push(w, b->keys, c->nkeys, b->push, o)
						      : hps_pull(w, b->keys, c->nkeys, b->pull[slot], o);
			if (ts[slot] < 0)
				return -1;
			out++;
			ops++;
		}
		for (; out > 0; out--, head++)
			if (hps_wait(w, ts[head % depth]))
				return -1;
		return (double)ops / ((now_us() - t0) / 1e6);
	}
	while (hpsi_now_ns() < end) {
		double s = now_us();
		int rc;
		switch (ph) {
		case PH_PUSH: rc = hps_wait(w, hps_push(w, b->keys, c->nkeys, b->push, o)); break;
		case PH_PULL: rc = hps_wait(w, hps_pull(w, b->keys, c->nkeys, b->pull[0], o)); break;
		case PH_PUSH_PULL:
			rc = hps_wait(w, hps_push(w, b->keys, c->nkeys, b->push, o));
			if (!rc)
				rc = hps_wait(w, hps_pull(w, b->keys, c->nkeys, b->pull[0], o));
			break;
		default: rc = hps_wait(w, hps_pushpull(w, b->keys, c->nkeys, b->push, b->pull[0], o)); break;
		}
		if (rc)
			return -1;
		if (*nsamples < MAX_SAMPLES)
			samples[(*nsamples)++] = now_us() - s;
		ops++;
	}
	return (double)ops / ((now_us() - t0) / 1e6);
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
		struct bufs b = {.keys = make_keys(c->nkeys, ci), .opts = {.width = c->width}};
		b.push = c->dense ? hps_alloc(w, floats * 4) : malloc(floats * 4);
		for (int i = 0; i < 32; i++)
			b.pull[i] = c->dense ? hps_alloc(w, floats * 4) : malloc(floats * 4);
		for (size_t i = 0; i < floats; i++)
			b.push[i] = 1e-3f;
		for (int ph = 0; ph < NPHASES; ph++) {
			double ops[REPS];
			int ns = 0;
			for (int rep = 0; rep < REPS; rep++) {
				if (hps_barrier(ctx))
					return 1;
				ops[rep] = run_rep(w, c, ph, &b, samples, &ns);
				if (ops[rep] < 0)
					return 1;
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
