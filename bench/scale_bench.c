/* scale_bench: what `hps scale --servers` costs a training job (make bench-ft).
 *
 * The driver launches `hps launch -s 1 --max-servers 2 -w 1` running this
 * program as its worker, twice: narrow values (1,000,000 keys of 16 floats)
 * and wide ones (16,384 keys of 1,024 floats). The worker fills the keys,
 * then pushes and pulls NK keys (both key ranges) in a loop, timing each
 * request: first in steady state, then while `hps scale --servers 2`
 * moves key range 1 to a new server, then while `--servers 1` moves it
 * back. The servers log each move (size and time, runtime/server/move.c);
 * the driver reads those lines from the launcher's output. Lines in
 * hps_bench's format (the last column is the maximum):
 *   scale 1S memcpy MB/s - - - -             (memcpy in this process, same run)
 *   scale 1S1WwW steady - - ops/s p50_us max_us  (W: floats per key)
 *   scale 1S1WwW out MB/s keys/s ops/s p50_us max_us   (1 -> 2 servers)
 *   scale 2S1WwW in MB/s keys/s ops/s p50_us max_us    (2 -> 1)
 *   scale 1S1WwW out_idle MB/s keys/s - - -    (1 -> 2, the worker idle)
 *   scale 2S1WwW in_idle MB/s keys/s - - -     (2 -> 1, the worker idle)
 * MB/s and keys/s: the move as its source timed it (copy start to the
 * FINAL); ops/s, p50_us and max_us: the worker's requests during the whole
 * scale step, so max_us is the pause of the final handover. The worker
 * checks the sums at the end: a wrong one fails the benchmark. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cases.h"
#include "hps/hps.h"
#include "shm/bell.h"

#define FILL_FLOATS (1u << 21) /* values per fill request (8 MiB) */
#define NK 64
#define STEADY_REQS 20000
#define MAX_LAT (1 << 20)
#define MEMCPY_BYTES (64u << 20)

static double lat_us[MAX_LAT];

/* Runs `hps scale --servers n` (or, n == 0, nothing for STEADY_REQS
 * requests) while pushing and pulling; prints "STEP name ops/s p50 max".
 * idle: the worker sends nothing until the scale ended (the move alone
 * on the cores; prints "STEP name - - -"). */
static int timed_step(hps_worker *w, const char *hps, const char *name, int n, int idle, const uint64_t *keys,
		      float *push, float *pull, long *rounds)
{
	pid_t pid = 0;
	if (n) {
		char num[16];
		snprintf(num, sizeof num, "%d", n);
		if ((pid = fork()) == 0) {
			execl(hps, hps, "scale", "--servers", num, (char *)NULL);
			_exit(127);
		}
		if (pid < 0)
			return 1;
	}
	int count = 0, st = 0, done = 0;
	if (idle) {
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "scale_bench: hps scale --servers %d failed\n", n);
			return 1;
		}
		printf("STEP %s - - -\n", name);
		fflush(stdout);
		return 0;
	}
	int64_t t0 = hpsi_now_ns();
	while (!done) {
		int64_t sent = hpsi_now_ns();
		int64_t ts = hps_pushpull(w, keys, NK, push, pull, NULL);
		if (ts < 0 || hps_wait(w, ts)) {
			fprintf(stderr, "scale_bench: a request failed during %s\n", name);
			return 1;
		}
		(*rounds)++;
		if (count < MAX_LAT)
			lat_us[count++] = (double)(hpsi_now_ns() - sent) / 1000.0;
		done = n ? waitpid(pid, &st, WNOHANG) == pid : count >= STEADY_REQS;
	}
	double secs = (double)(hpsi_now_ns() - t0) / 1e9;
	if (n && (!WIFEXITED(st) || WEXITSTATUS(st))) {
		fprintf(stderr, "scale_bench: hps scale --servers %d failed\n", n);
		return 1;
	}
	qsort(lat_us, (size_t)count, sizeof *lat_us, cmp_double);
	printf("STEP %s %.0f %.1f %.1f\n", name, count / secs, lat_us[count / 2], lat_us[count - 1]);
	fflush(stdout);
	return 0;
}

static int worker(const char *hps, uint32_t width, uint32_t fill)
{
	const uint32_t batch = FILL_FLOATS / width;
	hps_ctx *ctx;
	hps_worker *w;
	if (hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, width, &w))
		return 2;
	uint64_t *fk = malloc(batch * sizeof *fk);
	float *fv = malloc((size_t)FILL_FLOATS * sizeof *fv);
	float *push = malloc((size_t)NK * width * sizeof *push), *pull = malloc((size_t)NK * width * sizeof *pull);
	if (!fk || !fv || !push || !pull)
		return 2;
	for (size_t i = 0; i < FILL_FLOATS; i++)
		fv[i] = 1;
	for (uint64_t b = 0; b < fill; b += batch) {
		for (uint64_t i = 0; i < batch; i++)
			fk[i] = NK + b + i;
		if (hps_wait(w, hps_push(w, fk, batch, fv, NULL)))
			return 3;
	}
	uint64_t keys[NK];
	for (int k = 0; k < NK; k++)
		keys[k] = (uint64_t)k;
	for (int i = 0; i < (int)(NK * width); i++)
		push[i] = 1;
	long rounds = 0;
	if (timed_step(w, hps, "steady", 0, 0, keys, push, pull, &rounds) ||
	    timed_step(w, hps, "out", 2, 0, keys, push, pull, &rounds) ||
	    timed_step(w, hps, "in", 1, 0, keys, push, pull, &rounds) ||
	    timed_step(w, hps, "out_idle", 2, 1, keys, push, pull, &rounds) ||
	    timed_step(w, hps, "in_idle", 1, 1, keys, push, pull, &rounds))
		return 4;
	/* exact: every round added 1 to every value of the NK keys */
	if (hps_wait(w, hps_pull(w, keys, NK, pull, NULL)))
		return 5;
	for (int i = 0; i < (int)(NK * width); i++)
		if (pull[i] != (float)rounds) {
			fprintf(stderr, "scale_bench: key %d holds %.0f after %ld pushes\n", i / (int)width, pull[i], rounds);
			return 6;
		}
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

static double memcpy_mbs(void)
{
	char *a = malloc(MEMCPY_BYTES), *b = malloc(MEMCPY_BYTES);
	if (!a || !b)
		return -1;
	memset(a, 1, MEMCPY_BYTES);
	memset(b, 2, MEMCPY_BYTES);
	double v[5];
	for (int i = 0; i < 5; i++) {
		int64_t t = hpsi_now_ns();
		memcpy(i & 1 ? a : b, i & 1 ? b : a, MEMCPY_BYTES);
		v[i] = MEMCPY_BYTES / 1e6 / ((double)(hpsi_now_ns() - t) / 1e9);
	}
	free(a);
	free(b);
	return median(v, 5);
}

/* A source's line "moved key range R (K keys, X MB in Y ms)"
 * (runtime/server/move.c) in the launcher's output: 1 and its figures. */
static int read_move(const char *line, double *keys, double *mb, double *ms)
{
	const char *m = strstr(line, "moved key range");
	return m && sscanf(m, "moved key range %*u (%lf keys, %lf MB in %lf ms)", keys, mb, ms) == 3;
}

/* One job at `width` floats per key and `fill` keys: its lines, 0 or 1. */
static int one_job(const char *self, const char *hps, uint32_t width, uint32_t fill)
{
	char outp[] = "/tmp/scale_bench_outXXXXXX", errp[] = "/tmp/scale_bench_errXXXXXX", job[48], w[16], f[16];
	int ofd = mkstemp(outp), efd = mkstemp(errp);
	if (ofd < 0 || efd < 0)
		return 1;
	snprintf(job, sizeof job, "scalebench%d_%u", (int)getpid(), width);
	snprintf(w, sizeof w, "%u", width);
	snprintf(f, sizeof f, "%u", fill);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(ofd, 1);
		dup2(efd, 2);
		setenv("HPS_LOG", "warn", 1);
		execl(hps, hps, "launch", "-s", "1", "--max-servers", "2", "-w", "1", "--job", job, "--", self, "--worker",
		      hps, w, f, (char *)NULL);
		_exit(127);
	}
	int st = 1;
	waitpid(pid, &st, 0);
	/* the launcher passes its nodes' lines (the servers' log too) to its stdout */
	FILE *out = fdopen(ofd, "r"), *err = fdopen(efd, "r");
	unlink(outp);
	unlink(errp);
	if (out)
		rewind(out);
	if (err)
		rewind(err);
	int bad = !out || !err || !WIFEXITED(st) || WEXITSTATUS(st);
	if (bad) {
		fprintf(stderr, "scale_bench: the job failed; its output:\n");
		char buf[4096];
		size_t n;
		while (err && (n = fread(buf, 1, sizeof buf, err)) > 0)
			fwrite(buf, 1, n, stderr);
	}
	char line[1024], name[16];
	double ops, p50, max, keys = 0, mb = 0, ms = 0;
	int moved = 0;
	while (!bad && fgets(line, sizeof line, out)) {
		if (read_move(line, &keys, &mb, &ms)) {
			moved = 1; /* logged before the step's end: its STEP line follows */
			continue;
		}
		const char *at = strstr(line, "STEP "); /* the launcher prefixes the worker's lines */
		if (!at || sscanf(at, "STEP %15s", name) != 1)
			continue;
		if (sscanf(at, "STEP %*s %lf %lf %lf", &ops, &p50, &max) != 3)
			ops = p50 = max = NAN; /* an idle step: no requests */
		int steady = strcmp(name, "steady") == 0;
		if (!steady && !moved) {
			fprintf(stderr, "scale_bench: no move logged for step %s\n", name);
			bad = 1;
			break;
		}
		printf("scale %sS1Ww%u %s", strncmp(name, "in", 2) == 0 ? "2" : "1", width, name);
		if (steady)
			printf(" - -");
		else
			print_fig(mb / (ms / 1e3)), print_fig(keys / (ms / 1e3));
		print_fig(ops);
		print_fig(p50);
		print_fig(max);
		printf("\n");
		moved = 0;
	}
	if (out)
		fclose(out);
	if (err)
		fclose(err);
	return bad;
}

int main(int argc, char **argv)
{
	const char *hps = getenv("HPS_BIN") ? getenv("HPS_BIN") : "bin/hps";
	if (argc == 5 && strcmp(argv[1], "--worker") == 0)
		return worker(argv[2], (uint32_t)atoi(argv[3]), (uint32_t)atoi(argv[4]));
	printf("# case config phase MB/s keys/s ops/s p50_us max_us\n");
	printf("scale 1S memcpy");
	print_fig(memcpy_mbs());
	printf(" - - - -\n");
	fflush(stdout);
	return one_job(argv[0], hps, 16, 1000000) || one_job(argv[0], hps, 1024, 16384);
}
