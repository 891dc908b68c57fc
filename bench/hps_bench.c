/* hps_bench: throughput and latency of a local job, next to the machine's
 * limits (memcpy bandwidth, a bare shared-memory ring round trip).
 *
 *   bench/hps_bench [--ft] [CASE...]  CASE: lat sparse1k sparse100k dense4M
 *                                 dense4M_8k zipf1k zipf1k_w1 memcpy_4M
 *                                 memcpy_64M ring_rtt idle startup
 *
 * --ft: the configurations of replicated key ranges instead (make bench-ft):
 * 2S2W without replicas, 2S2WK1 (HPS_REPLICAS=1), 3S2WK2 (HPS_REPLICAS=2).
 *
 * One line per (case, config, phase):
 *   case config phase MB/s keys/s ops/s p50_us p99_us
 * with '-' where a figure does not apply. Throughputs add up the workers;
 * latencies are worker 0's. Each figure is the median of REPS runs. The
 * idle line adds a ninth column: CPU used by the whole job, in percent of
 * one core, while its workers wait 10 s in a barrier. The startup lines
 * (bench/startup.h) time `hps launch` of 16 x 16 and 64 x 64 jobs over 3
 * runs (p50_us: the median, p99_us: the slowest) and add the shared
 * memory the job held once started, in MiB.
 *
 * Dense cases pass buffers from hps_alloc (the zero-copy variant); sparse
 * cases pass ordinary malloc'd arrays, as most applications would. The
 * zipf cases fill a table of 10 M keys first and add a line
 * "# CASE CONFIG memory: ..." with the servers' resident memory per key
 * (bench/cases.c says how their keys are drawn). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hps/hps.h"
#include "runtime/common/config.h"
#include "shm/bell.h"
#include "shm/ring.h"
#include "shm/segment.h"

#include "bench/cases.h"
#include "bench/startup.h"

/* Forks a job of S servers and W workers; fn runs in each worker. */
static int run_job(uint32_t S, uint32_t W, int (*fn)(hps_ctx *, hps_worker *), pid_t *pids)
{
	char job[32];
	snprintf(job, sizeof job, "bench%d", (int)getpid());
	struct hpsi_config cfg;
	if (hpsi_config_load(&cfg, 0))
		return -1;
	struct hpsi_seg_params p;
	hpsi_config_seg_params(&cfg, &p);
	p.job = job;
	p.host = "bench";
	p.nservers = S;
	p.nworkers = W;
	p.range_mode = HPSI_RANGE_HASH;
	struct hpsi_seg seg;
	if (hpsi_seg_create(&p, &seg))
		return -1;
	bench_job_segment(seg.path);
	uint32_t n = S + W;
	bench_nservers = 0;
	for (uint32_t i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0)
			bench_run_node(job, i < S, i < S ? (int)i : (int)(i - S), fn);
		pids[i] = pid;
		if (i < S && i < 8) /* the workers, forked next, measure the servers' memory */
			bench_server_pid[bench_nservers++] = pid;
	}
	if (pids == NULL)
		return 0;
	int bad = 0;
	for (uint32_t i = 0; i < n; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	hpsi_seg_unlink(&seg);
	bench_job_segment(NULL);
	hpsi_seg_detach(&seg);
	return bad ? -1 : 0;
}

static void bench_memcpy(const char *name, size_t bytes)
{
	char *a = malloc(bytes), *b = malloc(bytes);
	memset(a, 1, bytes), memset(b, 2, bytes);
	double rates[REPS];
	for (int rep = 0; rep < REPS; rep++) {
		long n = 0;
		int64_t t0 = hpsi_now_ns(), end = t0 + REP_NS;
		while (hpsi_now_ns() < end) {
			memcpy(n % 2 ? a : b, n % 2 ? b : a, bytes);
			n++;
		}
		rates[rep] = (double)n * (double)bytes / ((double)(hpsi_now_ns() - t0) / 1e9) / 1e6;
	}
	printf("%s host copy", name);
	print_fig(median(rates, REPS));
	printf(" - - - -\n");
	fflush(stdout);
	free(a), free(b);
}

/* Two processes bounce an 8-byte record over two bare rings. */
static void bench_ring_rtt(void)
{
	const uint32_t size = 1u << 16;
	const int rounds = 200000;
	size_t region = 2 * (HPSI_RING_HDR + size);
	unsigned char *m = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct hpsi_ring *ping = (void *)m, *pong = (void *)(m + HPSI_RING_HDR + size);
	pid_t pid = fork();
	if (pid == 0) {
		struct hpsi_ring_cons c;
		struct hpsi_ring_prod p;
		hpsi_ring_cons_attach(&c, ping, size);
		hpsi_ring_prod_attach(&p, pong, size);
		for (int i = 0; i < rounds; i++) {
			size_t len;
			uint64_t *v;
			while (!(v = hpsi_ring_peek(&c, &len)))
				hpsi_cpu_relax();
			uint64_t x = *v;
			hpsi_ring_consume(&c, len);
			hpsi_ring_cons_publish(&c);
			uint64_t *o;
			while (!(o = hpsi_ring_reserve(&p, 8)))
				hpsi_cpu_relax();
			*o = x;
			hpsi_ring_commit(&p, 8);
			hpsi_ring_publish(&p);
		}
		_exit(0);
	}
	struct hpsi_ring_prod p;
	struct hpsi_ring_cons c;
	hpsi_ring_prod_attach(&p, ping, size);
	hpsi_ring_cons_attach(&c, pong, size);
	double *lat = malloc(rounds * sizeof *lat);
	int64_t t0 = hpsi_now_ns();
	for (int i = 0; i < rounds; i++) {
		int64_t s = hpsi_now_ns();
		uint64_t *o;
		while (!(o = hpsi_ring_reserve(&p, 8)))
			hpsi_cpu_relax();
		*o = (uint64_t)i;
		hpsi_ring_commit(&p, 8);
		hpsi_ring_publish(&p);
		size_t len;
		while (!hpsi_ring_peek(&c, &len))
			hpsi_cpu_relax();
		hpsi_ring_consume(&c, len);
		hpsi_ring_cons_publish(&c);
		lat[i] = (double)(hpsi_now_ns() - s) / 1000.0;
	}
	double total = (double)(hpsi_now_ns() - t0) / 1e9;
	waitpid(pid, NULL, 0);
	qsort(lat, rounds, sizeof *lat, cmp_double);
	printf("ring_rtt bare spsc - -");
	print_fig(rounds / total);
	print_fig(lat[rounds / 2]);
	print_fig(lat[rounds * 99 / 100]);
	printf("\n");
	fflush(stdout);
	free(lat);
	munmap(m, region);
}

static uint64_t cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (p)
		sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	return ut + st;
}

static int idle_worker(hps_ctx *ctx, hps_worker *w)
{
	uint64_t k = 1;
	float v = 1;
	if (hps_wait(w, hps_push(w, &k, 1, &v, NULL)) || hps_barrier(ctx))
		return 1;
	if (hps_rank(ctx) == 1) {
		sleep(10); /* everyone else waits in the barrier meanwhile */
	}
	return hps_barrier(ctx) ? 1 : 0;
}

/* CPU of a job whose workers wait 10 s in a barrier. */
static void bench_idle(void)
{
	pid_t pids[3];
	pid_t parent = fork();
	if (parent == 0) {
		/* run_job waits for the job; measure from outside it */
		bench_child(SIGTERM); /* its handler removes the job's segment */
		_exit(run_job(1, 2, idle_worker, pids) ? 1 : 0);
	}
	usleep(500000); /* let it start and reach the barrier */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent, (int)parent);
	pid_t kids[8];
	int nk = 0;
	FILE *f = fopen(path, "r");
	while (f && nk < 8 && fscanf(f, "%d", &kids[nk]) == 1)
		nk++;
	if (f)
		fclose(f);
	uint64_t before = 0, after = 0;
	for (int i = 0; i < nk; i++)
		before += cpu_ticks(kids[i]);
	int64_t t0 = hpsi_now_ns();
	usleep(8000000);
	for (int i = 0; i < nk; i++)
		after += cpu_ticks(kids[i]);
	double secs = (double)(hpsi_now_ns() - t0) / 1e9;
	int st;
	waitpid(parent, &st, 0);
	double pct = (double)(after - before) / (double)sysconf(_SC_CLK_TCK) / secs * 100.0;
	printf("idle 1S2W barrier - - - - - %.2f\n", pct);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	int ft = argc > 1 && strcmp(argv[1], "--ft") == 0;
	if (ft)
		argv++, argc--;
	int want_memcpy4 = argc == 1, want_memcpy64 = argc == 1, want_rtt = argc == 1, want_idle = argc == 1 && !ft;
	int want_startup = argc == 1 && !ft;
	int any_case = argc == 1;
	for (size_t ci = 0; ci < NCASES; ci++)
		selected[ci] = argc == 1;
	for (int i = 1; i < argc; i++) {
		int known = 1;
		if (strcmp(argv[i], "memcpy_4M") == 0)
			want_memcpy4 = 1;
		else if (strcmp(argv[i], "memcpy_64M") == 0)
			want_memcpy64 = 1;
		else if (strcmp(argv[i], "ring_rtt") == 0)
			want_rtt = 1;
		else if (strcmp(argv[i], "idle") == 0)
			want_idle = 1;
		else if (strcmp(argv[i], "startup") == 0)
			want_startup = 1;
		else {
			known = 0;
			for (size_t ci = 0; ci < NCASES; ci++)
				if (strcmp(argv[i], cases[ci].name) == 0)
					selected[ci] = any_case = known = 1;
		}
		if (!known) {
			fprintf(stderr, "hps_bench: unknown case '%s'\n", argv[i]);
			return 2;
		}
	}
	bench_cleanup_on_signals();
	printf("# case config phase MB/s keys/s ops/s p50_us p99_us [cpu_pct for idle, shm_MiB for startup]\n");
	if (want_memcpy4)
		bench_memcpy("memcpy_4M", 4u << 20);
	if (want_memcpy64)
		bench_memcpy("memcpy_64M", 64u << 20);
	if (want_rtt)
		bench_ring_rtt();
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	static const struct config {
		const char *name;
		uint32_t S, W;
		const char *replicas;
	} plain[] = {{"1S1W", 1, 1, "0"}, {"2S2W", 2, 2, "0"}},
	  replicated[] = {{"2S2W", 2, 2, "0"}, {"2S2WK1", 2, 2, "1"}, {"3S2WK2", 3, 2, "2"}};
	const struct config *configs = ft ? replicated : plain;
	size_t nconfigs = ft ? 3 : 2;
	int rc = 0;
	for (size_t k = 0; any_case && k < nconfigs; k++) {
		setenv("HPS_REPLICAS", configs[k].replicas, 1);
		memset(sh, 0, sizeof *sh);
		pid_t pids[8];
		if (run_job(configs[k].S, configs[k].W, worker_main, pids)) {
			fprintf(stderr, "hps_bench: job %s failed\n", configs[k].name);
			rc = 1;
			continue;
		}
		report_config(configs[k].name, configs[k].W);
	}
	if (want_idle)
		bench_idle();
	if (want_startup && bench_startup())
		rc = 1;
	return rc;
}
