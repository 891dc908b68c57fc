/* The startup case of hps_bench: how long `hps launch` takes to bring up
 * a job of many processes, and how much memory the job holds once up.
 * Each run launches bench/startup_worker (linked like a user's program)
 * with S servers and W workers; its worker 0 reports when every worker
 * had pushed, pulled and passed a barrier, and what the job held then. */
#include "bench/startup.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cases.h"
#include "shm/bell.h"
#include "shm/segment.h"

#define STARTUP_REPS 3

struct startup_run {
	double start_us, total_us, seg_mib, pss_mib, anon_mib, cpu_s;
};

/* CPU seconds of the children this process waited for, and theirs. */
static double children_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* `name` beside this program (bench/), or $HPS_BIN for hps. */
static void beside_me(const char *name, char *out, size_t cap)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	char *slash = strrchr(self, '/');
	int dir = slash ? (int)(slash - self) : 0;
	if (strcmp(name, "hps") == 0 && getenv("HPS_BIN"))
		snprintf(out, cap, "%s", getenv("HPS_BIN"));
	else if (strcmp(name, "hps") == 0)
		snprintf(out, cap, "%.*s/../bin/hps", dir, self);
	else
		snprintf(out, cap, "%.*s/%s", dir, self, name);
}

/* One launch; 0 when the job started, finished and left no segment. */
static int startup_once(uint32_t S, uint32_t W, int rep, struct startup_run *r)
{
	char hps[4200], prog[4200], job[64], s[16], w[16], seg[256];
	beside_me("hps", hps, sizeof hps);
	beside_me("startup_worker", prog, sizeof prog);
	snprintf(job, sizeof job, "startup%d_%d", (int)getpid(), rep);
	snprintf(s, sizeof s, "%u", S);
	snprintf(w, sizeof w, "%u", W);
	if (hpsi_seg_path(seg, sizeof seg, job, "bench"))
		return -1;
	char errlog[] = "/tmp/hps_startup.XXXXXX";
	int err = mkstemp(errlog), p[2];
	if (err < 0 || pipe(p) != 0)
		return -1;
	unlink(errlog);
	double cpu0 = children_cpu();
	int64_t t0 = hpsi_now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		/* the launcher stops its job and removes the segment on SIGTERM */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(p[1], 1);
		dup2(err, 2);
		close(p[0]);
		char *argv[] = {hps, "launch", "--no-prefix", "-s", s, "-w", w, "--job", job, "--host", "bench",
				"--", prog, NULL};
		execv(hps, argv);
		_exit(127);
	}
	close(p[1]);
	FILE *f = fdopen(p[0], "r");
	char line[256];
	long long mark = -1;
	unsigned long long bytes = 0, pss = 0, anon = 0;
	while (f && fgets(line, sizeof line, f))
		sscanf(line, "startup-mark %lld %llu %llu %llu", &mark, &bytes, &pss, &anon);
	if (f)
		fclose(f);
	int st = 0;
	waitpid(pid, &st, 0);
	r->total_us = (double)(hpsi_now_ns() - t0) / 1000.0;
	r->cpu_s = children_cpu() - cpu0;
	int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && mark > 0;
	if (access(seg, F_OK) == 0) {
		fprintf(stderr, "hps_bench: startup: %s was left behind\n", seg);
		unlink(seg);
		ok = 0;
	}
	if (!ok) {
		fprintf(stderr, "hps_bench: startup %uS%uW failed (status 0x%x); its log:\n", S, W, st);
		char buf[4096];
		ssize_t n;
		lseek(err, 0, SEEK_SET);
		while ((n = read(err, buf, sizeof buf)) > 0)
			fwrite(buf, 1, (size_t)n, stderr);
	}
	close(err);
	r->start_us = (double)(mark - t0) / 1000.0;
	r->seg_mib = (double)bytes / (1 << 20);
	r->pss_mib = (double)pss / 1024;
	r->anon_mib = (double)anon / 1024;
	return ok ? 0 : -1;
}

static double worst(const double *v, int n)
{
	double m = v[0];
	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

int bench_startup(void)
{
	static const struct {
		const char *name;
		uint32_t S, W;
	} shapes[] = {{"16S16W", 16, 16}, {"64S64W", 64, 64}};
	int rc = 0;
	for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
		double start[STARTUP_REPS], total[STARTUP_REPS], seg[STARTUP_REPS], pss[STARTUP_REPS],
			anon[STARTUP_REPS], cpu[STARTUP_REPS];
		int n = 0;
		for (int rep = 0; rep < STARTUP_REPS; rep++) {
			struct startup_run r;
			if (startup_once(shapes[k].S, shapes[k].W, rep, &r)) {
				rc = 1;
				break;
			}
			start[n] = r.start_us, total[n] = r.total_us, seg[n] = r.seg_mib, pss[n] = r.pss_mib;
			cpu[n] = r.cpu_s, anon[n++] = r.anon_mib;
		}
		if (n < STARTUP_REPS)
			continue;
		printf("startup %s start - - -", shapes[k].name);
		print_fig(median(start, n));
		print_fig(worst(start, n));
		print_fig(median(seg, n));
		printf("\nstartup %s total - - -", shapes[k].name);
		print_fig(median(total, n));
		print_fig(worst(total, n));
		printf(" -\n# startup %s memory: the segment holds %.1f MiB of shared memory; the job's processes %.1f MiB (Pss), %.1f MiB of it anonymous; CPU %.2f s from launch to exit\n",
		       shapes[k].name, median(seg, n), median(pss, n), median(anon, n), median(cpu, n));
		fflush(stdout);
	}
	return rc;
}
