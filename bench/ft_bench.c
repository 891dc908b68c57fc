/* ft_bench: how long a killed primary stops its key range (make bench-ft).
 *
 * A job of 3 servers with HPS_REPLICAS=1 and one worker that pushes and
 * pulls 64 keys (every range) in a loop. After the worker's 200th request
 * the benchmark kills server 0 with SIGKILL; the failover time is from the
 * kill to the completion of the first request the worker submitted after
 * it (only the backup that took the range over can have answered it).
 * Repeated over REPEATS jobs; one line in hps_bench's format:
 *   failover 3S1WK1 kill - - - p50_us max_us
 * (the last column is the maximum, not a 99th percentile). */
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
#include "shm/bell.h"
#include "shm/segment.h"

#include "bench/cases.h"

#define REPEATS 15
#define NK 64

struct ft_shared {
	_Atomic int64_t kill_ns;  /* 0 until the kill */
	_Atomic int64_t failover_ns;
	_Atomic int requests;
	_Atomic int stop;
};

static struct ft_shared *fs;

static int ft_worker(hps_ctx *ctx, hps_worker *w)
{
	(void)ctx;
	uint64_t keys[NK];
	float push[NK], pull[NK];
	for (int k = 0; k < NK; k++)
		keys[k] = (uint64_t)k, push[k] = 1;
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

/* One job, one kill; the failover time in ns, or -1. */
static int64_t one_failover(int rep)
{
	char job[48];
	snprintf(job, sizeof job, "ftbench%d_%d", (int)getpid(), rep);
	setenv("HPS_REPLICAS", "1", 1);
	struct hpsi_config cfg;
	if (hpsi_config_load(&cfg, 0))
		return -1;
	struct hpsi_seg_params p;
	hpsi_config_seg_params(&cfg, &p);
	p.job = job, p.host = "bench", p.nservers = 3, p.nworkers = 1, p.range_mode = HPSI_RANGE_HASH;
	p.replicas = 1;
	struct hpsi_seg seg;
	if (hpsi_seg_create(&p, &seg))
		return -1;
	bench_job_segment(seg.path);
	memset(fs, 0, sizeof *fs);
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

int main(void)
{
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
	return 0;
}
