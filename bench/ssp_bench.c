/* ssp_bench: a straggler under BSP, SSP (s = 1, 3) and ASP.
 *
 * Two workers, one server. Each iteration a worker pulls both workers'
 * keys, "computes" (sleeps 2 ms; the straggler 4 ms, twice as long), pushes
 * +1 to its own key and advances its clock. One line per model:
 *   straggler MODEL fast_iters_per_s job_iters_per_s fast_blocked_fraction max_observed_staleness
 * job_iters_per_s is the rate of the job's slowest clock; the blocked
 * fraction is the fast worker's time inside pulls; the staleness is the
 * most clocks of the straggler's updates a fast worker's pull was missing.
 *
 * With --transient both workers take 2 ms, and each iteration stalls for
 * 10 ms with probability 0.2 (seeded per worker): the stragglers move
 * between workers, the case SSP is for. Lines then start with `transient`;
 * "fast" is worker 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cases.h"
#include "hps/hps.h"
#include "runtime/common/config.h"
#include "shm/bell.h"
#include "shm/segment.h"

#define RUN_NS 2000000000ll
#define FAST_US 2000
#define SLOW_US 4000

struct stats {
	long iters;
	double blocked_s, elapsed_s;
	long max_stale;
	int failed;
};

static struct stats *st; /* shared: one per worker */
static int transient;

static int worker(hps_ctx *ctx, hps_worker *w, int64_t deadline)
{
	int me = hps_rank(ctx), other = 1 - me;
	uint64_t keys[2] = {0, 1}, mine = (uint64_t)me;
	float got[2], one = 1;
	struct stats s = {0};
	int64_t t0 = hpsi_now_ns();
	for (long c = 0; hpsi_now_ns() < deadline; c++) {
		int64_t b = hpsi_now_ns();
		if (hps_wait(w, hps_pull(w, keys, 2, got, NULL)))
			return 1;
		s.blocked_s += (double)(hpsi_now_ns() - b) / 1e9;
		long missing = c - (long)got[other];
		if (missing > s.max_stale)
			s.max_stale = missing;
		if (transient) {
			static unsigned rng;
			rng = rng ? rng * 1103515245u + 12345u : 1u + (unsigned)me * 7919u;
			usleep(FAST_US + ((rng >> 16) % 5 == 0 ? 5 * FAST_US : 0));
		} else {
			usleep(me == 0 ? FAST_US : SLOW_US);
		}
		if (hps_wait(w, hps_push(w, &mine, 1, &one, NULL)) || hps_clock(w))
			return 1;
		s.iters++;
	}
	s.elapsed_s = (double)(hpsi_now_ns() - t0) / 1e9;
	st[me] = s;
	return 0;
}

static int run_model(const char *name, const char *staleness)
{
	char job[32];
	snprintf(job, sizeof job, "ssp%d", (int)getpid());
	setenv("HPS_STALENESS", staleness, 1);
	setenv("HPS_TIMEOUT_MS", "60000", 1);
	struct hpsi_config cfg;
	if (hpsi_config_load(&cfg, 0))
		return 1;
	struct hpsi_seg_params p;
	hpsi_config_seg_params(&cfg, &p);
	p.job = job, p.host = "bench", p.nservers = 1, p.nworkers = 2, p.range_mode = HPSI_RANGE_HASH;
	struct hpsi_seg seg;
	if (hpsi_seg_create(&p, &seg))
		return 1;
	bench_job_segment(seg.path);
	int64_t deadline = hpsi_now_ns() + RUN_NS + 200000000;
	pid_t pids[3];
	for (int i = 0; i < 3; i++) {
		if ((pids[i] = fork()) != 0)
			continue;
		bench_child(SIGKILL);
		char rank[8];
		snprintf(rank, sizeof rank, "%d", i == 0 ? 0 : i - 1);
		setenv("HPS_ROLE", i == 0 ? "server" : "worker", 1);
		setenv("HPS_RANK", rank, 1);
		setenv("HPS_JOB_ID", job, 1);
		setenv("HPS_HOST", "bench", 1);
		hps_ctx *ctx;
		hps_worker *w;
		if (hps_init(&ctx, NULL, NULL))
			_exit(1);
		if (i == 0)
			_exit(hps_server_run(ctx, NULL, NULL) ? 1 : 0);
		if (hps_worker_open(ctx, 1, &w))
			_exit(1);
		int rc = worker(ctx, w, deadline);
		hps_worker_close(w);
		hps_finalize(ctx);
		_exit(rc);
	}
	int bad = 0;
	for (int i = 0; i < 3; i++) {
		int s;
		waitpid(pids[i], &s, 0);
		bad |= !WIFEXITED(s) || WEXITSTATUS(s);
	}
	hpsi_seg_unlink(&seg);
	bench_job_segment(NULL);
	hpsi_seg_detach(&seg);
	if (bad)
		return 1;
	long job_iters = st[0].iters < st[1].iters ? st[0].iters : st[1].iters;
	printf("%s %s %.1f %.1f %.3f %ld\n", transient ? "transient" : "straggler", name, st[0].iters / st[0].elapsed_s, job_iters / st[0].elapsed_s,
	       st[0].blocked_s / st[0].elapsed_s, st[0].max_stale);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	transient = argc > 1 && strcmp(argv[1], "--transient") == 0;
	bench_cleanup_on_signals();
	st = mmap(NULL, 2 * sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	printf("# %s MODEL fast_iters_per_s job_iters_per_s fast_blocked_fraction max_observed_staleness\n",
	       transient ? "transient" : "straggler");
	int rc = 0;
	rc |= run_model("bsp", "bsp");
	rc |= run_model("ssp1", "1");
	rc |= run_model("ssp3", "3");
	rc |= run_model("asp", "asp");
	return rc;
}
