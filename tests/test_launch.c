/* The hps command: launch runs a job end to end, prefixes output, stops the
 * job on the first failure with a non-zero status, removes its segment on
 * every exit path it survives; clean removes what a killed launcher left. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cluster/lobby.h"
#include "shm/segment.h"
#include "tests/harness.h"

static char out[1 << 16];

/* Starts argv with stdout and stderr into *fd; returns the pid. */
static pid_t start_cmd(char *const argv[], int *fd)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* Runs argv to completion; its output lands in `out`. */
static int run_cmd(char *const argv[])
{
	int fd;
	pid_t pid = start_cmd(argv, &fd);
	size_t used = 0;
	ssize_t n;
	while ((n = read(fd, out + used, sizeof out - 1 - used)) > 0)
		used += (size_t)n;
	out[used] = 0;
	close(fd);
	return wait_exit(pid, 60000);
}

static int seg_exists(const char *job)
{
	char path[256];
	hpsi_seg_path(path, sizeof path, job, "testhost");
	return access(path, F_OK) == 0;
}

static int seg_exists_cb(void *job)
{
	return seg_exists(job);
}

#define HPS(...) (char *[]){(char *)hps_bin(), __VA_ARGS__, NULL}

static void test_launch_runs_job(void)
{
	char ex[256];
	example_bin("quickstart", ex, sizeof ex);
	int rc = run_cmd(HPS("launch", "--servers", "2", "--workers", "4", "--job", "lj1", "--host", "testhost",
			     "--", ex));
	CU_ASSERT_EQUAL(rc, 0);
	for (int r = 0; r < 4; r++) {
		char want[64];
		snprintf(want, sizeof want, "[worker %d] ok: 100 keys hold 40", r);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	}
	CU_ASSERT_FALSE(seg_exists("lj1"));
	/* the program serves too, with its own handler */
	rc = run_cmd(HPS("launch", "-s", "2", "-w", "2", "--self-serve", "--job", "lj2", "--host", "testhost", "--", ex));
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 1] ok: 100 keys hold 20"));
	CU_ASSERT_FALSE(seg_exists("lj2"));
}

/* A many-core job (issue 15): 64 servers and 64 workers, with the default
 * rings (sized by the job's shape), start, push and pull exact sums, end
 * with status 0 and leave no segment. Heaps are the smallest allowed, so
 * that a small /dev/shm holds the segment. */
static void test_launch_64x64_job(void)
{
	char ex[256];
	example_bin("quickstart", ex, sizeof ex);
	int rc = run_cmd(HPS("launch", "-s", "64", "-w", "64", "--heap-mb", "8", "--job", "lj64", "--host", "testhost",
			     "--", ex));
	CU_ASSERT_EQUAL(rc, 0);
	int ok = 0;
	for (int r = 0; r < 64; r++) {
		char want[64];
		snprintf(want, sizeof want, "[worker %d] ok: 100 keys hold 640 after 64 workers", r);
		ok += strstr(out, want) != NULL;
	}
	CU_ASSERT_EQUAL(ok, 64);
	if (ok != 64 || rc != 0)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_FALSE(seg_exists("lj64"));
}

/* A copy of hps without lib/hps/hps-server beside it runs its built-in
 * servers as `hps server`, as before that program existed. */
static void test_launch_server_without_hps_server(void)
{
	char dir[] = "/tmp/hps_lonely.XXXXXX", hps[64], ex[256], want[96];
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(hps, sizeof hps, "%s/hps", dir);
	CU_ASSERT_EQUAL_FATAL(run_cmd((char *[]){"cp", (char *)hps_bin(), hps, NULL}), 0);
	example_bin("quickstart", ex, sizeof ex);
	int rc = run_cmd((char *[]){hps, "launch", "-s", "2", "-w", "2", "--job", "lj65", "--host", "testhost", "--",
				    "sh", "-c",
				    "[ $HPS_RANK = 0 ] && for p in $(pgrep -P $PPID -x hps); do echo exe $(readlink /proc/$p/exe); done; "
				    "exec \"$0\"",
				    ex, NULL});
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 1] ok: 100 keys hold 20"));
	snprintf(want, sizeof want, "[worker 0] exe %s\n", hps); /* each server runs the copy */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
	if (!strstr(out, want))
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_FALSE(seg_exists("lj65"));
	unlink(hps);
	rmdir(dir);
}

static void test_launch_failure_stops_job(void)
{
	char ex[256];
	example_bin("quickstart", ex, sizeof ex);
	int rc = run_cmd(HPS("launch", "-s", "1", "-w", "3", "--job", "lj3", "--host", "testhost", "--", ex, "--fail"));
	CU_ASSERT_EQUAL(rc, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] failing on purpose"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 0 exited with status 3"));
	CU_ASSERT_FALSE(seg_exists("lj3"));
	/* a worker killed by a signal */
	rc = run_cmd(HPS("launch", "-w", "2", "--job", "lj4", "--host", "testhost", "--", "sh", "-c",
			 "[ $HPS_RANK = 1 ] && kill -9 $$; sleep 30"));
	CU_ASSERT_EQUAL(rc, 128 + SIGKILL);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "worker 1 killed by signal 9"));
	CU_ASSERT_FALSE(seg_exists("lj4"));
	/* a program that does not exist */
	rc = run_cmd(HPS("launch", "--job", "lj5", "--host", "testhost", "--", "/no/such/program"));
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_FALSE(seg_exists("lj5"));
}

static void test_launch_signal_cleans_up(void)
{
	int fd;
	pid_t pid = start_cmd(HPS("launch", "-w", "2", "--job", "lj6", "--host", "testhost", "--", "sleep", "30"), &fd);
	CU_ASSERT_FATAL(poll_until(seg_exists_cb, "lj6", 5000));
	kill(pid, SIGTERM);
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 128 + SIGTERM);
	CU_ASSERT_FALSE(seg_exists("lj6"));
	close(fd);
}

static void test_launch_same_job_twice(void)
{
	int fd;
	pid_t pid = start_cmd(HPS("launch", "--job", "lj7", "--host", "testhost", "--", "sleep", "30"), &fd);
	CU_ASSERT_FATAL(poll_until(seg_exists_cb, "lj7", 5000));
	int rc = run_cmd(HPS("launch", "--job", "lj7", "--host", "testhost", "--", "true"));
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "already runs"));
	CU_ASSERT(seg_exists("lj7")); /* the running job's segment is untouched */
	kill(pid, SIGINT);
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 128 + SIGINT);
	CU_ASSERT_FALSE(seg_exists("lj7"));
	close(fd);
}

/* SIGKILL leaves the segment; clean removes it and keeps a live job's. */
static void test_launch_clean_after_kill(void)
{
	int fd;
	pid_t pid = start_cmd(HPS("launch", "-w", "2", "--job", "lj8", "--host", "testhost", "--", "sleep", "30"), &fd);
	CU_ASSERT_FATAL(poll_until(seg_exists_cb, "lj8", 5000));
	struct job live;
	CU_ASSERT_EQUAL_FATAL(job_start(&live, 1, 1, &(struct job_opts){.no_servers = 1}), 0);
	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(wait_exit(pid, 5000), 128 + SIGKILL);
	CU_ASSERT(seg_exists("lj8"));
	/* its children die with it (PR_SET_PDEATHSIG); clean waits for them */
	int rc = -1;
	for (int i = 0; i < 500 && seg_exists("lj8"); i++) {
		rc = run_cmd(HPS("clean"));
		if (seg_exists("lj8"))
			usleep(10000);
	}
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_FALSE(seg_exists("lj8"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "removed"));
	CU_ASSERT(seg_exists(live.job)); /* its creator (this process) lives */
	CU_ASSERT_EQUAL(job_stop(&live), 0);
	close(fd);
}

/* A segment of another hps version (its layout unreadable here) is
 * removed when no process uses it and kept while one holds it open; a
 * lobby whose leader died is removed. */
static void test_launch_clean_other_versions_and_lobbies(void)
{
	const char *dir = getenv("HPS_SHM_DIR");
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	char old[512], busy[512];
	snprintf(old, sizeof old, "%s/hps.oldversion.testhost", dir);
	snprintf(busy, sizeof busy, "%s/hps.busyversion.testhost", dir);
	struct {
		uint64_t magic;
		uint32_t version, pad;
	} hdr = {HPSI_SEG_MAGIC, HPSI_SEG_VERSION + 100, 0};
	int fds[2];
	const char *paths[2] = {old, busy};
	for (int i = 0; i < 2; i++) {
		fds[i] = open(paths[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
		CU_ASSERT_FATAL(fds[i] >= 0);
		CU_ASSERT_EQUAL(pwrite(fds[i], &hdr, sizeof hdr, 0), (ssize_t)sizeof hdr);
		CU_ASSERT_EQUAL(ftruncate(fds[i], 65536), 0);
	}
	close(fds[0]); /* nobody uses the old one; this process keeps the busy one open */
	/* a lobby whose leader is killed before it finishes */
	pid_t leader = fork();
	if (leader == 0) {
		struct hpsi_lobby l;
		_exit(hpsi_lobby_join(&l, "lobbyjob", "grp", 1, 1, 0) == 0 ? 0 : 1);
	}
	CU_ASSERT_EQUAL(wait_exit(leader, 5000), 0);
	char lobby[512];
	snprintf(lobby, sizeof lobby, "%s/hps-lobby.lobbyjob.grp", dir);
	CU_ASSERT_EQUAL(access(lobby, F_OK), 0);
	CU_ASSERT_EQUAL(run_cmd(HPS("clean")), 0);
	CU_ASSERT_NOT_EQUAL(access(old, F_OK), 0);
	CU_ASSERT_EQUAL(access(busy, F_OK), 0);
	CU_ASSERT_NOT_EQUAL(access(lobby, F_OK), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "another hps version"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "leader is dead"));
	close(fds[1]);
	CU_ASSERT_EQUAL(run_cmd(HPS("clean")), 0);
	CU_ASSERT_NOT_EQUAL(access(busy, F_OK), 0);
	unlink(old);
	unlink(busy);
	unlink(lobby);
}

static void test_launch_help_and_usage_errors(void)
{
	CU_ASSERT_EQUAL(run_cmd(HPS("--help")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "launch"));
	CU_ASSERT_EQUAL(run_cmd(HPS("launch", "--help")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--servers"));
	CU_ASSERT_EQUAL(run_cmd(HPS("clean", "--help")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--dry-run"));
	CU_ASSERT_EQUAL(run_cmd(HPS("server", "--help")), 0);
	CU_ASSERT_EQUAL(run_cmd(HPS("launch", "--bogus")), 2);
	CU_ASSERT_EQUAL(run_cmd(HPS("launch", "--servers", "2")), 2); /* no program */
	CU_ASSERT_EQUAL(run_cmd(HPS("frobnicate")), 2);
	CU_ASSERT_NOT_EQUAL(run_cmd(HPS("launch", "--servers", "0", "--", "true")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_NUM_SERVERS"));
	CU_ASSERT_EQUAL(run_cmd(HPS("launch", "--updater", "sgd:rate=1", "--", "true")), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_UPDATER: sgd has no parameter 'rate'"));
}

/* A wrong setting is refused by the launcher before anything starts: the
 * program never runs, no segment is made, the message names the setting. */
static void test_launch_settings_checked_before_start(void)
{
	static const struct {
		const char *env, *servers, *says;
	} bad[] = {
		{"HPS_KEY_RANGES=0-10,", "1", "HPS_KEY_RANGES"},
		{"HPS_STALENESS=bsp;asp", "1", "HPS_STALENESS=bsp;asp lists 2 entries"},
		{"HPS_UPDATER=sum;sum;sum", "2", "HPS_UPDATER=sum;sum;sum lists 3 entries"},
		{"HPS_DTYPE=f32;", "1", "HPS_DTYPE"},
		{"HPS_LOG=loud", "1", "HPS_LOG=loud"},
		{"HPS_SHM_DIR=/nonexistent", "1", "HPS_SHM_DIR=/nonexistent: no such directory"},
		{"HPS_DETERMINISTIC=yes", "1", "HPS_DETERMINISTIC=yes: expected 0 or 1"},
	};
	char marker[64];
	snprintf(marker, sizeof marker, "/tmp/hps-lj9.%d", (int)getpid());
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char touch[128];
		snprintf(touch, sizeof touch, "touch %s", marker);
		int rc = run_cmd((char *[]){"env", (char *)bad[i].env, (char *)hps_bin(), "launch", "-s", (char *)bad[i].servers,
					    "--job", "lj9", "--host", "testhost", "--", "sh", "-c", touch, NULL});
		CU_ASSERT_EQUAL(rc, 2);
		if (!strstr(out, bad[i].says))
			fprintf(stderr, "%s: expected '%s' in: %s\n", bad[i].env, bad[i].says, out);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, bad[i].says));
		CU_ASSERT_NOT_EQUAL(access(marker, F_OK), 0); /* nothing was started */
		CU_ASSERT_FALSE(seg_exists("lj9"));
		unlink(marker);
	}
	/* one entry per server is fine */
	CU_ASSERT_EQUAL(run_cmd((char *[]){"env", "HPS_STALENESS=bsp;asp", (char *)hps_bin(), "launch", "-s", "2", "--job",
					   "lj9", "--host", "testhost", "--", "true", NULL}),
			0);
}

/* A misspelt setting is no error but is named, with the closest real name. */
static void test_launch_unknown_setting_warns(void)
{
	char ex[256];
	example_bin("quickstart", ex, sizeof ex);
	int rc = run_cmd((char *[]){"env", "HPS_STALENES=bsp", (char *)hps_bin(), "launch", "--job", "lj10", "--host",
				    "testhost", "--", ex, "--hps-heap-mbs=64", NULL});
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_STALENES is no hps setting and is ignored; did you mean HPS_STALENESS?"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--hps-heap-mbs is no hps setting and is ignored; did you mean --hps-heap-mb?"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] ok:"));
}

/* A server that fails after every worker has finished (the launcher is
 * already ending the job) still fails it, exit code or signal alike. */
static void test_launch_server_failing_last_fails_job(void)
{
	char marker[64], script[512];
	snprintf(marker, sizeof marker, "/tmp/hps-lj11.%d", (int)getpid());
	static const char *ends[] = {"exit 1", "kill -SEGV $$"};
	static const int codes[] = {1, 128 + SIGSEGV};
	for (int i = 0; i < 2; i++) {
		unlink(marker);
		/* the server waits until the worker has finished, then fails */
		snprintf(script, sizeof script,
			 "if [ \"$HPS_ROLE\" = server ]; then n=0; while [ ! -e %s ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; "
			 "sleep 0.3; %s; fi; touch %s",
			 marker, ends[i], marker);
		int rc = run_cmd(HPS("launch", "--self-serve", "--job", "lj11", "--host", "testhost", "--", "sh", "-c", script));
		CU_ASSERT_EQUAL(rc, codes[i]);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, i ? "server 0 killed by signal 11" : "server 0 exited with status 1"));
		CU_ASSERT_FALSE(seg_exists("lj11"));
	}
	unlink(marker);
}

/* A worker that prints through stdio without flushing: "first", then
 * waits for the file named by argv to exist, then "second". */
static int print_worker(const char *file)
{
	printf("first\n");
	while (access(file, F_OK) != 0)
		usleep(2000);
	printf("second\n");
	return 0;
}

/* Prints numbered lines through stdio without flushing, and after each
 * one appends its number to the file, until it is stopped. */
static int count_worker(const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0600);
	for (int i = 0; i < 1000000; i++) {
		printf("line %d\n", i);
		dprintf(fd, "%d\n", i);
		usleep(1000);
	}
	return 1;
}

static char self_path[4096];

/* Reads fd into `out` until `until` appears or ms pass. */
static int read_until(int fd, size_t *used, const char *until, int ms)
{
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int t = 0; t < ms; t++) {
		ssize_t n;
		while ((n = read(fd, out + *used, sizeof out - 1 - *used)) > 0)
			*used += (size_t)n;
		out[*used] = 0;
		if (until && strstr(out, until))
			return 1;
		if (n == 0)
			return 0;
		usleep(1000);
	}
	return 0;
}

/* A line reaches the launcher's output when written, not when the
 * child's stdio buffer fills or the child exits: "first" is seen while the
 * worker still waits for the file, so before "second" is written. */
static void test_launch_lines_arrive_as_written(void)
{
	char file[64];
	snprintf(file, sizeof file, "/tmp/hps-launch-%d.go", (int)getpid());
	unlink(file);
	int fd;
	size_t used = 0;
	pid_t pid = start_cmd(HPS("launch", "--job", "lj10", "--host", "testhost", "--", self_path, "--print-worker", file),
			      &fd);
	CU_ASSERT(read_until(fd, &used, "[worker 0] first\n", 10000));
	CU_ASSERT_PTR_NULL(strstr(out, "second"));
	close(open(file, O_WRONLY | O_CREAT, 0600));
	CU_ASSERT(read_until(fd, &used, "[worker 0] second\n", 10000));
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 0);
	close(fd);
	unlink(file);
}

/* SIGINT to the launcher loses no line its worker had written: every
 * number the worker recorded as printed is in the launcher's output. */
static void test_launch_interrupt_loses_no_line(void)
{
	char file[64];
	snprintf(file, sizeof file, "/tmp/hps-launch-%d.count", (int)getpid());
	unlink(file);
	int fd;
	size_t used = 0;
	pid_t pid = start_cmd(HPS("launch", "--job", "lj11", "--host", "testhost", "--", self_path, "--count-worker", file),
			      &fd);
	CU_ASSERT(read_until(fd, &used, "[worker 0] line 20\n", 10000));
	kill(pid, SIGINT);
	read_until(fd, &used, NULL, 10000);
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 128 + SIGINT);
	close(fd);
	FILE *f = fopen(file, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	int last = -1, n;
	while (fscanf(f, "%d", &n) == 1)
		last = n;
	fclose(f);
	unlink(file);
	CU_ASSERT(last >= 20);
	for (int i = 0; i <= last; i++) {
		char want[48];
		snprintf(want, sizeof want, "[worker 0] line %d\n", i);
		if (!strstr(out, want)) {
			fprintf(stderr, "line %d of %d lost\n", i, last);
			CU_FAIL("a written line was lost");
			break;
		}
	}
}

/* The launcher names its job on stderr, and `hps checkpoint` without
 * --job finds the one running job; none, or two, is an error that says so
 * (listing the two). */
static void test_launch_job_id_found_without_job(void)
{
	char dir[64], dir2[64];
	snprintf(dir, sizeof dir, "/tmp/hps-launch-%d.ckpt", (int)getpid());
	snprintf(dir2, sizeof dir2, "/tmp/hps-launch-%d.ckpt2", (int)getpid());
	CU_ASSERT_EQUAL(run_cmd(HPS("checkpoint", dir)), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps checkpoint: no running job on this host"));
	int fd, fd2;
	size_t used = 0;
	pid_t a = start_cmd(HPS("launch", "-w", "2", "--host", "testhost", "--", "sleep", "30"), &fd);
	char line[128];
	snprintf(line, sizeof line, "hps: job hps%d on host testhost: 1 server, 2 workers\n", (int)a);
	CU_ASSERT_FATAL(read_until(fd, &used, line, 10000));
	CU_ASSERT_EQUAL(run_cmd(HPS("checkpoint", dir)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "saved"));
	pid_t b = start_cmd(HPS("launch", "--job", "lj12", "--host", "testhost", "--", "sleep", "30"), &fd2);
	CU_ASSERT_FATAL(poll_until(seg_exists_cb, "lj12", 5000));
	CU_ASSERT_EQUAL(run_cmd(HPS("checkpoint", dir)), 1);
	char ida[32];
	snprintf(ida, sizeof ida, "hps%d (host testhost)", (int)a);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps checkpoint: 2 jobs run on this host, give --job ID:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ida));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "lj12 (host testhost)"));
	CU_ASSERT_EQUAL(run_cmd(HPS("checkpoint", "--job", "lj12", dir2)), 0);
	kill(a, SIGINT);
	kill(b, SIGINT);
	CU_ASSERT_EQUAL(wait_exit(a, 10000), 128 + SIGINT);
	CU_ASSERT_EQUAL(wait_exit(b, 10000), 128 + SIGINT);
	close(fd);
	close(fd2);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, dir2);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--print-worker") == 0)
		return print_worker(argv[2]);
	if (argc == 3 && strcmp(argv[1], "--count-worker") == 0)
		return count_worker(argv[2]);
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	static const struct test_case cases[] = {
		{"test_launch_runs_job", test_launch_runs_job},
		{"test_launch_64x64_job", test_launch_64x64_job},
		{"test_launch_server_without_hps_server", test_launch_server_without_hps_server},
		{"test_launch_failure_stops_job", test_launch_failure_stops_job},
		{"test_launch_signal_cleans_up", test_launch_signal_cleans_up},
		{"test_launch_same_job_twice", test_launch_same_job_twice},
		{"test_launch_clean_after_kill", test_launch_clean_after_kill},
		{"test_launch_clean_other_versions_and_lobbies", test_launch_clean_other_versions_and_lobbies},
		{"test_launch_help_and_usage_errors", test_launch_help_and_usage_errors},
		{"test_launch_settings_checked_before_start", test_launch_settings_checked_before_start},
		{"test_launch_unknown_setting_warns", test_launch_unknown_setting_warns},
		{"test_launch_server_failing_last_fails_job", test_launch_server_failing_last_fails_job},
		{"test_launch_lines_arrive_as_written", test_launch_lines_arrive_as_written},
		{"test_launch_interrupt_loses_no_line", test_launch_interrupt_loses_no_line},
		{"test_launch_job_id_found_without_job", test_launch_job_id_found_without_job},
		{NULL, NULL},
	};
	return run_suite("launch", cases);
}
