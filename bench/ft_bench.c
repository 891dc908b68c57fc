/* ft_bench: how long a killed primary stops its key range (make bench-ft).
 *
 * A job of 3 servers with HPS_REPLICAS=1 and one worker that pushes and
 * pulls 64 keys (every range) in a loop. After the worker's 200th request
 * the benchmark kills server 0 with SIGKILL; the failover time is from the
 * kill to the completion of the first request the worker submitted after
 * it (only the backup that took the range over can have answered it).
 * Repeated over REPEATS jobs; one line in hps_bench's format:
 *   failover 3S1WK1 kill - - - p50_us max_us
 * (the last column is the maximum, not a 99th percentile).
 *
 * Then the same across hosts (bench/ft_xhosts.c): a server of the other
 * host killed, then every process of that host, XREPEATS jobs each:
 *   failover 2H2S1WK1 kill|host - - - p50_us max_us
 *
 * Then recovery: the worker fills FILL_KEYS keys (width 1) and goes on
 * pushing; server 1 is killed, and once the backup serves its range a
 * replacement is started; the time runs from its start until it serves its
 * own range again and applies forwards of the range it backs up (both
 * copied whole, about 2/3 of the table):
 *   recover 3S1WK1 catchup MB/s keys/s - p50_us max_us
 * MB/s counts the copied records (key, length, push count, values: 20
 * bytes per key at width 1), keys/s the keys of the two ranges.
 *
 * Then the same across hosts (bench/ft_xhosts.c, ft_xrecover): two hosts
 * of one server, the second's server killed and replaced; its
 * replacement copies the whole table through the bridges:
 *   recover 2H2S1WK1 catchup MB/s keys/s - p50_us max_us
 * (`ft_bench --xhosts` runs the lines across hosts alone, `--xrecover`
 * this one). */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hps/hps.h"
#include "runtime/common/config.h"
#include "net/route.h"
#include "shm/bell.h"
#include "shm/node.h"
#include "shm/segment.h"

#include "bench/cases.h"
#include "bench/ft_xhosts.h"

#define REPEATS 15
#define NK 64
#define RECOVER_REPEATS 5
#define XREPEATS 5
#define XRECOVER_REPEATS 3
#define FILL_KEYS 2000000
#define FILL_BATCH 200000

struct ft_shared {
	_Atomic int64_t kill_ns;  /* 0 until the kill */
	_Atomic int64_t failover_ns;
	_Atomic int requests;
	_Atomic int stop;
	int fill;             /* recovery: fill the table first */
	_Atomic int filled;
};

static struct ft_shared *fs;

static int ft_worker(hps_ctx *ctx, hps_worker *w)
{
	(void)ctx;
	uint64_t keys[NK];
	float push[NK], pull[NK];
	for (int k = 0; k < NK; k++)
		keys[k] = (uint64_t)k, push[k] = 1;
	if (fs->fill) {
		uint64_t *fk = malloc(FILL_BATCH * sizeof *fk);
		float *fv = malloc(FILL_BATCH * sizeof *fv);
		for (uint64_t b = 0; fk && fv && b < FILL_KEYS; b += FILL_BATCH) {
			for (uint64_t i = 0; i < FILL_BATCH; i++)
				fk[i] = NK + b + i, fv[i] = 1;
			int64_t ts = hps_push(w, fk, FILL_BATCH, fv, NULL);
			if (ts < 0 || hps_wait(w, ts))
				return 1;
		}
		free(fk);
		free(fv);
		atomic_store_explicit(&fs->filled, 1, memory_order_release);
	}
	while (!atomic_load_explicit(&fs->stop, memory_order_acquire)) {
		int64_t sent = hpsi_now_ns();
		int64_t ts = hps_pushpull(w, keys, NK, push, pull, NULL);
		if (ts < 0 || hps_wait(w, ts))
			return 1;
		int64_t kill_ns = atomic_load_explicit(&fs->kill_ns, memory_order_acquire);
		if (kill_ns && sent > kill_ns && !atomic_load_explicit(&fs->failover_ns, memory_order_relaxed))
			atomic_store_explicit(&fs->failover_ns, hpsi_now_ns() - kill_ns, memory_order_release);
		atomic_fetch_add_explicit(&fs->requests, 1, memory_order_release);
	}
	return 0;
}

/* The segment of a job of 3 servers (K=1) and one worker; 0 or -1. */
static int make_job(const char *job, struct hpsi_seg *seg)
{
	setenv("HPS_REPLICAS", "1", 1);
	struct hpsi_config cfg;
	if (hpsi_config_load(&cfg, 0))
		return -1;
	struct hpsi_seg_params p;
	hpsi_config_seg_params(&cfg, &p);
	p.job = job, p.host = "bench", p.nservers = 3, p.nworkers = 1, p.range_mode = HPSI_RANGE_HASH;
	p.replicas = 1;
	if (hpsi_seg_create(&p, seg))
		return -1;
	bench_job_segment(seg->path);
	memset(fs, 0, sizeof *fs);
	return 0;
}

/* One job, one kill; the failover time in ns, or -1. */
static int64_t one_failover(int rep)
{
	char job[48];
	snprintf(job, sizeof job, "ftbench%d_%d", (int)getpid(), rep);
	struct hpsi_seg seg;
	if (make_job(job, &seg))
		return -1;
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		if ((pids[i] = fork()) == 0)
			bench_run_node(job, i < 3, i < 3 ? i : 0, ft_worker);
	}
	int64_t end = hpsi_now_ns() + 10000000000ll, got = -1;
	while (atomic_load_explicit(&fs->requests, memory_order_acquire) < 200 && hpsi_now_ns() < end)
		usleep(200);
	atomic_store_explicit(&fs->kill_ns, hpsi_now_ns(), memory_order_release);
	kill(pids[0], SIGKILL);
	while (!(got = atomic_load_explicit(&fs->failover_ns, memory_order_acquire)) && hpsi_now_ns() < end)
		usleep(100);
	atomic_store_explicit(&fs->stop, 1, memory_order_release);
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		bad |= i > 0 && (!WIFEXITED(st) || WEXITSTATUS(st));
	}
	hpsi_seg_unlink(&seg);
	bench_job_segment(NULL);
	hpsi_seg_detach(&seg);
	return bad || !got ? -1 : got;
}

static int node_state(const struct hpsi_seg *seg, uint32_t id)
{
	return (int)atomic_load_explicit(&hpsi_seg_node(seg, id)->state, memory_order_acquire);
}

/* One job: fill, kill server 1, start its replacement; the catch-up time
 * in ns (-1: failed) and the keys of ranges 0 and 1. */
static int64_t one_recover(int rep, uint64_t *keys)
{
	char job[48];
	snprintf(job, sizeof job, "rcbench%d_%d", (int)getpid(), rep);
	struct hpsi_seg seg;
	if (make_job(job, &seg))
		return -1;
	fs->fill = 1;
	*keys = 0;
	for (uint64_t k = 0; k < NK + FILL_KEYS; k++)
		*keys += hpsi_route_key(&seg, k) <= 1;
	pid_t pids[5];
	for (int i = 0; i < 4; i++)
		if ((pids[i] = fork()) == 0)
			bench_run_node(job, i < 3, i < 3 ? i : 0, ft_worker);
	int64_t end = hpsi_now_ns() + 60000000000ll, got = -1;
	while (!atomic_load_explicit(&fs->filled, memory_order_acquire) && hpsi_now_ns() < end)
		usleep(1000);
	kill(pids[1], SIGKILL);
	waitpid(pids[1], NULL, 0);
	hpsi_node_mark_dead(&seg, 1);
	uint64_t applied = atomic_load_explicit(&hpsi_seg_counters(&seg, 1)->replica_applied, memory_order_relaxed);
	int64_t start = hpsi_now_ns();
	if ((pids[4] = fork()) == 0)
		bench_run_node(job, 1, 1, ft_worker);
	while (hpsi_now_ns() < end) {
		if (node_state(&seg, 1) == HPSI_NODE_ALIVE &&
		    atomic_load_explicit(&hpsi_seg_counters(&seg, 1)->replica_applied, memory_order_relaxed) > applied) {
			got = hpsi_now_ns() - start;
			break;
		}
		usleep(100);
	}
	atomic_store_explicit(&fs->stop, 1, memory_order_release);
	int bad = 0;
	for (int i = 0; i < 5; i++) {
		int st;
		if (i == 1)
			continue;
		waitpid(pids[i], &st, 0);
		bad |= !WIFEXITED(st) || WEXITSTATUS(st);
	}
	hpsi_seg_unlink(&seg);
	bench_job_segment(NULL);
	hpsi_seg_detach(&seg);
	return bad ? -1 : got;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--xworker") == 0)
		return ft_xworker(argv[2]);
	if (argc == 2 && strcmp(argv[1], "--xhosts") == 0) /* the lines across hosts alone */
		return ft_xhosts(XREPEATS, 0) || ft_xhosts(XREPEATS, 1) || ft_xrecover(XRECOVER_REPEATS);
	if (argc == 2 && strcmp(argv[1], "--xrecover") == 0) /* the recovery line across hosts alone */
		return ft_xrecover(XRECOVER_REPEATS);
	bench_cleanup_on_signals();
	fs = mmap(NULL, sizeof *fs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fs == MAP_FAILED)
		return 1;
	double us[REPEATS];
	int n = 0;
	for (int rep = 0; rep < REPEATS; rep++) {
		int64_t ns = one_failover(rep);
		if (ns < 0) {
			fprintf(stderr, "ft_bench: run %d failed\n", rep);
			return 1;
		}
		us[n++] = (double)ns / 1000.0;
	}
	qsort(us, (size_t)n, sizeof *us, cmp_double);
	printf("# case config phase MB/s keys/s ops/s p50_us max_us\n");
	printf("failover 3S1WK1 kill - - -");
	print_fig(us[n / 2]);
	print_fig(us[n - 1]);
	printf("\n");
	fflush(stdout);
	/* across hosts (bench/ft_xhosts.c): a server killed, then a host */
	if (ft_xhosts(XREPEATS, 0) || ft_xhosts(XREPEATS, 1))
		return 1;
	uint64_t keys = 0;
	n = 0;
	for (int rep = 0; rep < RECOVER_REPEATS; rep++) {
		int64_t ns = one_recover(rep, &keys);
		if (ns < 0) {
			fprintf(stderr, "ft_bench: recovery run %d failed\n", rep);
			return 1;
		}
		us[n++] = (double)ns / 1000.0;
	}
	qsort(us, (size_t)n, sizeof *us, cmp_double);
	double s50 = us[n / 2] / 1e6;
	printf("recover 3S1WK1 catchup");
	print_fig((double)keys * 20 / 1e6 / s50);
	print_fig((double)keys / s50);
	printf(" -");
	print_fig(us[n / 2]);
	print_fig(us[n - 1]);
	printf("\n");
	fflush(stdout);
	return ft_xrecover(XRECOVER_REPEATS); /* across hosts (bench/ft_xhosts.c) */
}
