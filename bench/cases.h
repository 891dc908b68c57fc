/* The cases of the throughput and latency benchmarks, shared by
 * hps_bench (one host) and net_bench (two namespace hosts): what a worker
 * runs and how a configuration's results are printed. */
#ifndef HPS_BENCH_CASES_H
#define HPS_BENCH_CASES_H

#include <stdint.h>

#include "bench/proc_cpu.h"
#include "hps/hps.h"

#define REPS 5
#define REP_NS 150000000ll /* each repetition runs this long */
#define MAX_SAMPLES (1 << 20)

struct bench_case {
	const char *name;
	uint32_t nkeys, width;
	int dense;         /* zero-copy buffers */
	uint64_t universe; /* zipf cases: keys of the table, filled before timing; 0: none */
};

/* The zipf cases: a table of ZIPF_KEYS keys, requests of 1,000 unique
 * keys whose ranks are drawn from Zipf(1.1); ZIPF_REQS requests drawn
 * before timing (32 MiB of keys per worker), sent in turn. */
#define ZIPF_KEYS 10000000ull
#define ZIPF_REQS 4096

#define NCASES 7
extern const struct bench_case cases[NCASES];

enum { PH_PUSH, PH_PULL, PH_PUSH_PULL, PH_PUSHPULL, PH_PIPE_PUSH, PH_PIPE_PULL, NPHASES };
extern const char *const phase_names[NPHASES];

struct result {
	double ops_s, p50_us, p99_us;
	int valid;
};

/* Written by the workers (shared mapping), read by the parent. */
struct shared {
	struct result r[8][NCASES][NPHASES];
	double rss_per_key[NCASES]; /* servers' resident bytes per key the fill added; 0: not measured */
	/* net_bench: CPU time of the job's processes in a phase's timed
	 * repetitions (read by worker 0), and the bytes each worker moved */
	struct cpu_use cpu[NCASES][NPHASES];
	double cpu_bytes[8][NCASES][NPHASES];
	int failed;
};

/* The local servers' processes, whose resident memory the zipf cases
 * measure (hps_bench sets them before it starts the workers; none: 0). */
extern int bench_nservers;
extern int bench_server_pid[8];

extern struct shared *sh;   /* results, in memory every worker shares */
/* When set, worker_main calls it in each worker right before (ops -1) and
 * right after each timed repetition of case ci, phase ph, with the
 * operations the repetition did (net_bench reads CPU times there). */
extern void (*bench_rep_hook)(size_t ci, int ph, long ops);
extern int selected[NCASES];

double median(double *v, int n);
int bench_cmp_u64(const void *a, const void *b);
/* n keys spread evenly over the key space, sorted, of case ci: the one
 * request of the sparse cases (malloc'd). */
uint64_t *bench_sparse_keys(uint32_t n, size_t ci);
/* The key of rank r (1 = most frequent) in case ci. */
/* Resident bytes of process pid (/proc/PID/statm); 0 when unreadable. */
long bench_rss_bytes(int pid);

uint64_t bench_zipf_key(uint64_t rank, size_t ci);
/* ZIPF_REQS requests of nkeys unique keys each, sorted within a request,
 * drawn for worker `rank` (malloc'd). */
uint64_t *bench_zipf_requests(uint32_t nkeys, size_t ci, int rank);
int cmp_double(const void *a, const void *b);
/* One figure of a result line: '-' for NaN, 3 significant digits below 100. */
void print_fig(double v);
/* Runs every selected case in every phase as worker w of the job. */
int worker_main(hps_ctx *ctx, hps_worker *w);
/* Prints the lines of one configuration: case config phase MB/s keys/s ops/s p50_us p99_us */
void report_config(const char *config, uint32_t W);

/* A benchmark stopped by SIGTERM, SIGINT or SIGHUP leaves nothing behind:
 * the handler removes the segment named by bench_job_segment (NULL: none)
 * and dies of the signal; bench_child (in each forked process) forgets the
 * segment and makes the process die with its parent (deathsig). */
void bench_cleanup_on_signals(void);
void bench_job_segment(const char *path);
void bench_child(int deathsig);
/* The settings a forked process of a benchmark's job needs (host "bench"). */
void bench_env(const char *job, const char *role, int rank);
/* In a forked process: joins job as server `rank` (serving until the job
 * ends) or as worker `rank` running fn; exits with the outcome. */
_Noreturn void bench_run_node(const char *job, int server, int rank, int (*fn)(hps_ctx *, hps_worker *));

#endif
