/* Logs: HPS_LOG=info tells the life of a local job (segment, key ranges,
 * each process joining and leaving, a killed worker and what was done);
 * every line carries a UTC timestamp with milliseconds, host, role, rank
 * and pid; debug lines are rate-limited per process and the lines left out
 * are counted; an unknown level or rate is refused naming the setting. */
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/common/log.h"
#include "tests/harness.h"

static char self_path[4096];
static char out[1 << 20];

/* One line of the log: an optional tag of the launcher's output pump,
 * then the prefix every log line has. */
#define LINE_RE                                                                                                  \
	"^(\\[(server|worker) [0-9]+\\] )?[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z " \
	"host=([^ ]+) role=([a-z]+) rank=([0-9]+|-) pid=[0-9]+ (debug|info|warn|error): .+$"

/* Runs a shell command line into a log file and reads it into `out`;
 * returns the command's exit status. */
static int run_logged(const char *cmd, double *seconds)
{
	char log[64];
	snprintf(log, sizeof log, "/tmp/hps-log-%d.out", (int)getpid());
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	int rc = finish_group(pid, 60000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (seconds)
		*seconds = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	slurp_into(log, out, sizeof out);
	unlink(log);
	return rc;
}

static int count(const char *needle)
{
	int n = 0;
	for (const char *p = out; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Every line is a log line in the format, whose role and rank agree with
 * the launcher's tag, except the launcher's own messages, which name the
 * job and a failed process whatever the level. Returns the log lines. */
static int check_every_line(const char *host)
{
	regex_t re;
	CU_ASSERT_EQUAL_FATAL(regcomp(&re, LINE_RE, REG_EXTENDED), 0);
	int lines = 0;
	char *save = NULL, *copy = strdup(out);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "hps: job ", 9) == 0 || strncmp(l, "hps launch: ", 12) == 0)
			continue;
		regmatch_t m[7];
		int ok = regexec(&re, l, 7, m, 0) == 0;
		if (!ok)
			fprintf(stderr, "not a log line: '%s'\n", l);
		CU_ASSERT_TRUE(ok);
		if (!ok)
			continue;
		lines++;
		CU_ASSERT_EQUAL((int)(m[3].rm_eo - m[3].rm_so), (int)strlen(host));
		CU_ASSERT_EQUAL(strncmp(l + m[3].rm_so, host, strlen(host)), 0);
		if (m[1].rm_so >= 0) { /* "[worker 1] ... role=worker rank=1" */
			char role[16], tag[32];
			int rank;
			CU_ASSERT_EQUAL(sscanf(l, "[%15s %d]", role, &rank), 2);
			snprintf(tag, sizeof tag, "role=%s rank=%d ", role, rank);
			CU_ASSERT_PTR_NOT_NULL(strstr(l, tag));
		} else {
			CU_ASSERT_PTR_NOT_NULL(strstr(l, "role=launcher rank=- "));
		}
	}
	free(copy);
	regfree(&re);
	return lines;
}

/* The worker of the life-of-a-job test: pushes, then rank 1 kills itself
 * with SIGKILL; rank 0 saves a checkpoint into dir, waits at a barrier,
 * which fails once rank 1 is dead, and finishes cleanly. */
static int life_worker(const char *dir)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	uint64_t keys[] = {1, 2, 3, 4};
	float v[] = {1, 1, 1, 1};
	if (hps_wait(w, hps_push(w, keys, 4, v, NULL)))
		return 3;
	if (hps_rank(ctx) == 1)
		raise(SIGKILL);
	if (hps_save(ctx, dir))
		return 5;
	int rc = hps_barrier(ctx);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc == HPS_EPEERDEAD ? 0 : 4;
}

static void test_log_info_tells_the_life_of_a_job(void)
{
	char cmd[8192], dir[64];
	snprintf(dir, sizeof dir, "/tmp/hps-log-%d.ckpt", (int)getpid());
	snprintf(cmd, sizeof cmd,
		 "HPS_LOG=info %s launch -s 2 -w 2 --keep-going --job lg1 --host logh -- %s --life-worker %s; s=$?; rm -rf %s; exit $s",
		 hps_bin(), self_path, dir, dir);
	int rc = run_logged(cmd, NULL);
	CU_ASSERT_EQUAL(rc, 128 + SIGKILL); /* worker 1's end is the job's status */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps: job lg1 on host logh: 2 servers, 2 workers"));
	CU_ASSERT_TRUE(check_every_line("logh") > 20);
	/* the segment and who owns which keys */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: segment ") && strstr(out, "hps.lg1.logh created: "));
	/* two servers: each half of the slot table, in one run (shm/slots.h) */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: server 0 owns the keys of 2048 of the 4096 hash slots (slot = top 12 bits of mix(key)), in 1 run"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: server 1 owns the keys of 2048 of the 4096 hash slots (slot = top 12 bits of mix(key)), in 1 run"));
	/* each process joins; the launcher starts each */
	static const char *const who[] = {"server 0", "server 1", "worker 0", "worker 1"};
	char line[128];
	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof line, "info: joined job lg1 on host logh: %s, node %d, pid ", who[i], i);
		CU_ASSERT_EQUAL(count(line), 1);
		snprintf(line, sizeof line, "info: started %s: pid ", who[i]);
		CU_ASSERT_EQUAL(count(line), 1);
	}
	/* all but the killed worker leave, and the launcher sees them end */
	for (int i = 0; i < 3; i++) {
		snprintf(line, sizeof line, "info: left job lg1: %s, pid ", who[i]);
		CU_ASSERT_EQUAL(count(line), 1);
	}
	CU_ASSERT_EQUAL(count("info: left job lg1: worker 1"), 0);
	CU_ASSERT_EQUAL(count(") exited with status 0"), 3);
	/* the failure and what was done about it */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ") killed by signal 9: marked dead, so that what waits only for it fails"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: --keep-going: the other workers go on"));
	/* by each server that looked before the launcher's shutdown flag (the
	 * launcher wakes them when it marks the worker dead, so at least one) */
	int seen = count("info: worker 1 died: its requests are dropped");
	CU_ASSERT_TRUE(seen >= 1 && seen <= 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "role=worker rank=0 pid=") && strstr(out, " error: barrier 0 failed: a worker died"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "info: job lg1 ended with status 137; segment "));
	/* the checkpoint worker 0 saved: each server's part, then the whole */
	CU_ASSERT_EQUAL(count("info: checkpoint: server 0 saved its table into "), 1);
	CU_ASSERT_EQUAL(count("info: checkpoint: server 1 saved its table into "), 1);
	char saved[128];
	snprintf(saved, sizeof saved, " info: checkpoint %s: saved 2 server tables (clock 0)", dir);
	CU_ASSERT_EQUAL(count(saved), 1);
	if (!CU_get_number_of_failures())
		return;
	fprintf(stderr, "%s\n", out);
}

/* At the default level a job that goes well prints only its id. */
static void test_log_quiet_by_default(void)
{
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "unset HPS_LOG; %s launch -s 1 -w 2 --job lg2 --host logh -- %s/quickstart", hps_bin(),
		 getenv("HPS_EXAMPLES") ? getenv("HPS_EXAMPLES") : "build/examples");
	CU_ASSERT_EQUAL(run_logged(cmd, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps: job lg2 on host logh: 1 server, 2 workers"));
	CU_ASSERT_EQUAL(count("Z host="), 0); /* no log line at all */
	CU_ASSERT_EQUAL(count("[worker "), 2); /* only the workers' own lines */
}

/* A worker of the rate test: `n` pushes, each logged twice at debug (sent
 * and done) by this worker. */
static int busy_worker(int n)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	uint64_t key = 7;
	float v = 1;
	for (int i = 0; i < n; i++)
		if (hps_wait(w, hps_push(w, &key, 1, &v, NULL)))
			return 3;
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* Sums N in every "suppressed N debug lines" line of the process with pid. */
static long long suppressed_of(const char *pid_eq)
{
	long long sum = 0;
	for (const char *p = out; (p = strstr(p, pid_eq)); p++) {
		const char *eol = strchr(p, '\n'), *s = strstr(p, "debug: suppressed ");
		if (s && (!eol || s < eol))
			sum += atoll(s + strlen("debug: suppressed "));
	}
	return sum;
}

/* Lines of one process (pid) with the needle in them. */
static int lines_of(const char *pid_eq, const char *needle)
{
	int n = 0;
	for (const char *p = out; (p = strstr(p, pid_eq)); p++) {
		const char *eol = strchr(p, '\n'), *s = strstr(p, needle);
		n += s && (!eol || s < eol);
	}
	return n;
}

static void test_log_debug_is_rate_limited(void)
{
	enum { RATE = 20, PUSHES = 3000 };
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "HPS_LOG=debug HPS_LOG_RATE=%d %s launch -s 1 -w 1 --job lg3 --host logh -- %s --busy-worker %d", RATE,
		 hps_bin(), self_path, PUSHES);
	double secs;
	CU_ASSERT_EQUAL(run_logged(cmd, &secs), 0);
	check_every_line("logh");
	/* the worker's pid, from its join line */
	const char *j = strstr(out, "[worker 0] ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	const char *pp = strstr(j, " pid=");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pp);
	char pid_eq[32];
	snprintf(pid_eq, sizeof pid_eq, " pid=%d ", atoi(pp + 5));
	int debug = lines_of(pid_eq, " debug: ");
	long long left_out = suppressed_of(pid_eq);
	/* a full bucket (RATE lines) plus RATE a second, plus the lines that
	 * report what was left out */
	int most = RATE + (int)(RATE * secs) + 1 + lines_of(pid_eq, "debug: suppressed ");
	if (debug > most)
		fprintf(stderr, "%d debug lines in %.2f s at HPS_LOG_RATE=%d\n", debug, secs, RATE);
	CU_ASSERT_TRUE(debug <= most);
	CU_ASSERT_TRUE(debug >= RATE); /* the first second's worth went out */
	/* nothing is lost uncounted: each push is logged when sent and done */
	int printed = lines_of(pid_eq, "debug: request ");
	CU_ASSERT_TRUE(left_out > 0);
	CU_ASSERT_TRUE(printed + left_out >= 2 * PUSHES);
	CU_ASSERT_TRUE(lines_of(pid_eq, "HPS_LOG_RATE=20 a second") >= 1);
}

/* An unknown level or rate: hps launch refuses it in one line naming the
 * setting, before anything starts; hps_init returns HPS_ECONFIG. */
static void test_log_bad_settings_refused(void)
{
	static const char *const bad[][2] = {
		{"HPS_LOG=loud", "HPS_LOG=loud: expected debug, info, warn or error"},
		{"HPS_LOG=INFO", "HPS_LOG=INFO: expected debug, info, warn or error"},
		{"HPS_LOG_RATE=0", "HPS_LOG_RATE=0: expected an integer from 1 to 1000000"},
		{"HPS_LOG_RATE=fast", "HPS_LOG_RATE=fast: expected an integer from 1 to 1000000"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char cmd[8192];
		snprintf(cmd, sizeof cmd, "%s %s launch --job lg4 --host logh -- true", bad[i][0], hps_bin());
		CU_ASSERT_EQUAL(run_logged(cmd, NULL), 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, bad[i][1]));
		CU_ASSERT_EQUAL(count("\n"), 1); /* one line */
		CU_ASSERT_EQUAL(check_every_line("logh"), 1);

		char *eq = strchr(bad[i][0], '=');
		char name[32];
		snprintf(name, sizeof name, "%.*s", (int)(eq - bad[i][0]), bad[i][0]);
		setenv(name, eq + 1, 1);
		setenv("HPS_ROLE", "worker", 1);
		setenv("HPS_JOB_ID", "lg-none", 1);
		hps_ctx *ctx = NULL;
		CU_ASSERT_EQUAL(hps_init(&ctx, NULL, NULL), HPS_ECONFIG);
		CU_ASSERT_PTR_NULL(ctx);
		unsetenv(name);
		unsetenv("HPS_ROLE");
		unsetenv("HPS_JOB_ID");
	}
}

/* The level is read again by the next hps_init (or settings check): a
 * program may change HPS_LOG between jobs; a line below it costs nothing. */
static void test_log_level_follows_the_setting(void)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/hps-log-%d.err", (int)getpid());
	fflush(stderr);
	int saved = dup(2);
	FILE *f = fopen(path, "w+");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	dup2(fileno(f), 2);
	setenv("HPS_LOG", "error", 1);
	hpsi_log_reload();
	hpsi_log_identity("tester", 3, "h1");
	int formatted = 0;
	hpsi_info("hidden %d", ++formatted); /* the level is checked before the arguments */
	setenv("HPS_LOG", "info", 1);
	hpsi_log_reload();
	hpsi_info("shown %d", ++formatted);
	hpsi_log_identity("tester", -1, NULL);
	hpsi_warn("no rank");
	unsetenv("HPS_LOG");
	hpsi_log_reload();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fclose(f);
	slurp_into(path, out, sizeof out);
	unlink(path);
	CU_ASSERT_EQUAL(formatted, 1);
	CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
	regex_t re;
	CU_ASSERT_EQUAL_FATAL(regcomp(&re, LINE_RE, REG_EXTENDED | REG_NEWLINE), 0);
	char *nl = strchr(out, '\n');
	CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
	*nl = 0;
	CU_ASSERT_EQUAL(regexec(&re, out, 0, NULL, 0), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " host=h1 role=tester rank=3 pid="));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " info: shown 1"));
	CU_ASSERT_EQUAL(regexec(&re, nl + 1, 0, NULL, 0), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(nl + 1, " host=h1 role=tester rank=- pid="));
	CU_ASSERT_PTR_NOT_NULL(strstr(nl + 1, " warn: no rank"));
	regfree(&re);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--life-worker") == 0)
		return life_worker(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--busy-worker") == 0)
		return busy_worker(atoi(argv[2]));
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	static const struct test_case cases[] = {
		{"test_log_info_tells_the_life_of_a_job", test_log_info_tells_the_life_of_a_job},
		{"test_log_quiet_by_default", test_log_quiet_by_default},
		{"test_log_debug_is_rate_limited", test_log_debug_is_rate_limited},
		{"test_log_bad_settings_refused", test_log_bad_settings_refused},
		{"test_log_level_follows_the_setting", test_log_level_follows_the_setting},
		{NULL, NULL},
	};
	return run_suite("log", cases);
}
