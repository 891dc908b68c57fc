/* The worker program of hps_bench's startup case, linked like a user's
 * program (libhps only): each worker opens, pushes 1 to a key of its own,
 * pulls it back and checks it, and enters a barrier. Once every worker has
 * passed it, worker 0 prints one line
 *
 *   startup-mark NOW_NS SEGMENT_BYTES PSS_KB PSS_ANON_KB
 *
 * (CLOCK_MONOTONIC, which hps_bench reads too; the pages the file system
 * holds for the job's segment; the proportional set size of the launcher
 * and its children, and its anonymous part), and a second barrier keeps
 * every process alive until it has measured. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hps/hps.h"
#include "shm/segment.h"

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Adds Pss and Pss_Anon (kB) of one process. */
static void add_pss(int pid, unsigned long long *pss, unsigned long long *anon)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", pid);
	FILE *f = fopen(path, "r");
	unsigned long long v;
	while (f && fgets(line, sizeof line, f)) {
		if (sscanf(line, "Pss: %llu", &v) == 1)
			*pss += v;
		else if (sscanf(line, "Pss_Anon: %llu", &v) == 1)
			*anon += v;
	}
	if (f)
		fclose(f);
}

/* The launcher (this worker's parent) and every process it started. */
static void job_pss(unsigned long long *pss, unsigned long long *anon)
{
	int parent = (int)getppid(), pid;
	char path[96];
	add_pss(parent, pss, anon);
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
	FILE *f = fopen(path, "r");
	while (f && fscanf(f, "%d", &pid) == 1)
		add_pss(pid, pss, anon);
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = hps_init(&ctx, &argc, argv);
	if (rc || hps_role(ctx) != HPS_ROLE_WORKER) {
		fprintf(stderr, "startup_worker: %s\n", rc ? hps_strerror(rc) : "runs as a worker only");
		return 1;
	}
	if ((rc = hps_worker_open(ctx, 1, &w))) {
		fprintf(stderr, "hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	uint64_t key = 1000003ull * (uint64_t)hps_rank(ctx); /* any key: the hash spreads them */
	float one = 1, got = 0;
	if ((rc = hps_wait(w, hps_push(w, &key, 1, &one, NULL))) || (rc = hps_wait(w, hps_pull(w, &key, 1, &got, NULL))) ||
	    (rc = hps_barrier(ctx))) {
		fprintf(stderr, "startup_worker: %s\n", hps_strerror(rc));
		return 1;
	}
	if (got != 1) {
		fprintf(stderr, "startup_worker: key %llu holds %g, expected 1\n", (unsigned long long)key, got);
		return 1;
	}
	if (hps_rank(ctx) == 0) {
		long long t = now_ns();
		char seg[256];
		struct stat st;
		const char *job = getenv("HPS_JOB_ID"), *host = getenv("HPS_HOST");
		unsigned long long bytes = 0, pss = 0, anon = 0;
		if (job && host && hpsi_seg_path(seg, sizeof seg, job, host) == 0 && stat(seg, &st) == 0)
			bytes = (unsigned long long)st.st_blocks * 512;
		job_pss(&pss, &anon);
		printf("startup-mark %lld %llu %llu %llu\n", t, bytes, pss, anon);
		fflush(stdout);
	}
	rc = hps_barrier(ctx);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}
