/* Watching a running job: the counters a known job leaves in its segment,
 * `hps metrics` (stdout checked by promtool, --textfile, --listen over
 * HTTP), `hps top` (a plain snapshot, and live under tmux: sorting keys,
 * q and Ctrl-C restore the terminal), `hps launch --summary`, and the
 * one-line errors of each command. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/cluster/hosts_stats.h"
#include "tests/harness.h"

#define NKEYS0 1000 /* worker 0 pushes and pulls keys 0..NKEYS0-1 */
#define NKEYS1 10   /* worker 1 pushes keys 0..NKEYS1-1 */
#define CLOCKS 3    /* each worker's hps_clock calls */

static char out[1 << 17];
static char tmpdir[128];

/* Runs a shell command line; its stdout and stderr land in `out`. */
static int sh(const char *cmd)
{
	char log[200];
	snprintf(log, sizeof log, "%s/cmd.log", tmpdir);
	pid_t pid = spawn_logged(log, "/bin/sh", cmd);
	int rc = finish_group(pid, 30000);
	slurp_into(log, out, sizeof out);
	return rc;
}

static int file_exists(void *path)
{
	return access(path, F_OK) == 0;
}

/* A worker that does a known amount of work, says so, and stays in the
 * job until the test is done looking. */
static int known_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	uint32_t rank = *(uint32_t *)arg;
	size_t n = rank == 0 ? NKEYS0 : NKEYS1;
	uint64_t keys[NKEYS0];
	float vals[NKEYS0];
	for (size_t i = 0; i < n; i++)
		keys[i] = i, vals[i] = 1.0f;
	if (hps_wait(w, hps_push(w, keys, n, vals, NULL)) != 0)
		return 10;
	for (int c = 0; c < CLOCKS; c++)
		if (hps_clock(w) != 0)
			return 11;
	if (rank == 0 && hps_wait(w, hps_pull(w, keys, n, vals, NULL)) != 0)
		return 12;
	char path[200];
	snprintf(path, sizeof path, "%s/ready%u", tmpdir, rank);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof path, "%s/stop", tmpdir);
	return poll_until(file_exists, path, 60000) ? 0 : 13;
}

static pid_t workers[2];
static uint32_t ranks[2] = {0, 1};

/* A job that did not come up as planned: its processes and segment go. */
static int abandon_job(struct job *j)
{
	for (int r = 0; r < 2; r++)
		if (workers[r] > 0) {
			kill(workers[r], SIGKILL);
			wait_exit(workers[r], 5000);
		}
	job_stop(j);
	return -1;
}

/* Two servers, two known workers, both done with their work. */
static int start_known_job(struct job *j)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hps_observe.%d", (int)getpid());
	mkdir(tmpdir, 0700);
	char path[200];
	snprintf(path, sizeof path, "%s/stop", tmpdir);
	unlink(path);
	if (job_start(j, 2, 2, NULL))
		return -1;
	for (int r = 0; r < 2; r++) {
		snprintf(path, sizeof path, "%s/ready%d", tmpdir, r);
		unlink(path);
		workers[r] = job_fork_worker(j, ranks[r], 1, known_worker, &ranks[r]);
	}
	for (int r = 0; r < 2; r++) {
		snprintf(path, sizeof path, "%s/ready%d", tmpdir, r);
		if (!poll_until(file_exists, path, 20000))
			return abandon_job(j);
	}
	return 0;
}

static void stop_known_job(struct job *j)
{
	char path[200];
	snprintf(path, sizeof path, "%s/stop", tmpdir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	for (int r = 0; r < 2; r++)
		CU_ASSERT_EQUAL(wait_exit(workers[r], 20000), 0);
	CU_ASSERT_EQUAL(job_stop(j), 0);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The value of the sample `name{labels}` in text, or -1. */
static double sample(const char *text, const char *name, const char *role, int rank)
{
	char want[256];
	snprintf(want, sizeof want, "\n%s{job=\"", name);
	for (const char *p = strstr(text, want); p; p = strstr(p + 1, want)) {
		char tail[128];
		snprintf(tail, sizeof tail, "role=\"%s\",rank=\"%d\"} ", role, rank);
		const char *end = strchr(p + 1, '\n');
		const char *t = strstr(p, tail);
		if (t && (!end || t < end))
			return atof(t + strlen(tail));
	}
	return -1;
}

static void check_known_figures(const char *text)
{
	CU_ASSERT_EQUAL(sample(text, "hps_push_keys_total", "worker", 0), NKEYS0);
	CU_ASSERT_EQUAL(sample(text, "hps_pull_keys_total", "worker", 0), NKEYS0);
	CU_ASSERT_EQUAL(sample(text, "hps_push_keys_total", "worker", 1), NKEYS1);
	CU_ASSERT_EQUAL(sample(text, "hps_pull_keys_total", "worker", 1), 0);
	CU_ASSERT_EQUAL(sample(text, "hps_push_bytes_total", "worker", 0), NKEYS0 * 4);
	CU_ASSERT_EQUAL(sample(text, "hps_pull_bytes_total", "worker", 0), NKEYS0 * 4);
	CU_ASSERT_EQUAL(sample(text, "hps_requests_total", "worker", 0), 2);
	CU_ASSERT_EQUAL(sample(text, "hps_requests_completed_total", "worker", 0), 2);
	CU_ASSERT_EQUAL(sample(text, "hps_requests_in_flight", "worker", 0), 0);
	CU_ASSERT_EQUAL(sample(text, "hps_clock", "worker", 0), CLOCKS);
	CU_ASSERT_EQUAL(sample(text, "hps_clock", "worker", 1), CLOCKS);
	CU_ASSERT_EQUAL(sample(text, "hps_process_up", "worker", 1), 1);
	/* the servers between them took every pushed key */
	double s0 = sample(text, "hps_push_keys_total", "server", 0), s1 = sample(text, "hps_push_keys_total", "server", 1);
	CU_ASSERT(s0 > 0 && s1 > 0);
	CU_ASSERT_EQUAL(s0 + s1, NKEYS0 + NKEYS1);
	CU_ASSERT_EQUAL(sample(text, "hps_store_keys", "server", 0) + sample(text, "hps_store_keys", "server", 1),
			NKEYS0);
	CU_ASSERT(sample(text, "hps_stale_pulls_total", "worker", 0) >= 1);
	CU_ASSERT_PTR_NULL(strstr(text, "hps_errors_total{"));
}

static void test_observe_metrics_of_known_job(void)
{
	struct job j;
	CU_ASSERT_FATAL(start_known_job(&j) == 0);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s metrics --job %s --host testhost > %s/m.prom", hps_bin(), j.job, tmpdir);
	CU_ASSERT_EQUAL(sh(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s/m.prom", tmpdir);
	static char text[1 << 17];
	text[0] = '\n';
	slurp_into(cmd, text + 1, sizeof text - 1);
	check_known_figures(text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# HELP hps_push_keys_total "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "# TYPE hps_push_keys_total counter"));

	if (system("command -v promtool >/dev/null 2>&1") == 0) {
		snprintf(cmd, sizeof cmd, "promtool check metrics < %s/m.prom", tmpdir);
		CU_ASSERT_EQUAL(sh(cmd), 0);
		if (*out)
			printf("promtool: %s\n", out);
	} else {
		printf("\n  SKIPPED promtool check: promtool is not installed (Debian package prometheus; make deps)\n");
	}

	/* --textfile: one file under its final name, nothing left beside it */
	snprintf(cmd, sizeof cmd, "mkdir -p %s/tf && %s metrics --job %s --host testhost --textfile %s/tf && ls -A %s/tf",
		 tmpdir, hps_bin(), j.job, tmpdir, tmpdir);
	CU_ASSERT_EQUAL(sh(cmd), 0);
	char want[128];
	snprintf(want, sizeof want, "hps_%s.prom\n", j.job);
	CU_ASSERT_STRING_EQUAL(out, want);
	snprintf(cmd, sizeof cmd, "%s/tf/hps_%s.prom", tmpdir, j.job);
	slurp_into(cmd, text + 1, sizeof text - 1);
	check_known_figures(text);
	snprintf(cmd, sizeof cmd, "%s metrics --job %s --host testhost --textfile %s/none", hps_bin(), j.job, tmpdir);
	CU_ASSERT_EQUAL(sh(cmd), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot write in"));

	/* the plain snapshot of top: one row per process, the clocks */
	snprintf(cmd, sizeof cmd, "%s top --job %s --host testhost --sort clock < /dev/null | cat", hps_bin(), j.job);
	CU_ASSERT_EQUAL(sh(cmd), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "sort: clock"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "REQ/S"));
	int rows = 0;
	for (const char *p = strstr(out, "\ntesthost "); p; p = strstr(p + 1, "\ntesthost "))
		rows++;
	CU_ASSERT_EQUAL(rows, 4);
	stop_known_job(&j);
}

/* GET path from 127.0.0.1:port; the whole answer in `out`; -1 if no connection. */
static int http_get(int port, const char *path)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* a reply that never comes is a failure, not a hang */
	struct timeval tv = {.tv_sec = 5};
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	size_t used = 0;
	ssize_t k;
	while ((k = read(fd, out + used, sizeof out - 1 - used)) > 0)
		used += (size_t)k;
	out[used] = 0;
	close(fd);
	/* our own request read back is a connection to itself, not a server */
	return k == 0 && strncmp(out, "HTTP/", 5) == 0 ? 0 : -1;
}

static int http_port;

static int http_up(void *arg)
{
	(void)arg;
	return http_get(http_port, "/metrics") == 0;
}

static void test_observe_metrics_http(void)
{
	struct job j;
	CU_ASSERT_FATAL(start_known_job(&j) == 0);
	/* below the kernel's ephemeral ports (32768 and up): polling a port of
	 * that range before the server listens can connect a socket to itself
	 * (CI hung here reading its own request back) */
	http_port = 20000 + (int)(getpid() % 12000);
	char cmd[512], log[200];
	snprintf(cmd, sizeof cmd, "exec %s metrics --job %s --host testhost --listen 127.0.0.1:%d", hps_bin(), j.job,
		 http_port);
	snprintf(log, sizeof log, "%s/http.log", tmpdir);
	pid_t srv = spawn_logged(log, "/bin/sh", cmd);
	int up = poll_until(http_up, NULL, 10000);
	CU_ASSERT(up);
	if (!up) { /* what it said, then clean up */
		printf("\n%s\n", slurp_into(log, out, sizeof out));
		kill(srv, SIGTERM);
		finish_group(srv, 10000);
		stop_known_job(&j);
		return;
	}
	CU_ASSERT_EQUAL(http_get(http_port, "/metrics"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.0 200") ? strstr(out, "HTTP/1.0 200") : strstr(out, "HTTP/1.1 200"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "text/plain; version=0.0.4"));
	char *body = strstr(out, "\r\n\r\n");
	CU_ASSERT_PTR_NOT_NULL(body);
	if (body) {
		body[3] = '\n'; /* sample() looks for a line start */
		check_known_figures(body + 3);
	}
	CU_ASSERT_EQUAL(http_get(http_port, "/nothing"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " 404 "));
	kill(srv, SIGTERM);
	CU_ASSERT_EQUAL(finish_group(srv, 10000), 0);
	/* a port already taken is one clear line */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	CU_ASSERT_EQUAL(listen(fd, 1), 0);
	snprintf(cmd, sizeof cmd, "%s metrics --job %s --host testhost --listen 127.0.0.1:%d", hps_bin(), j.job,
		 http_port);
	CU_ASSERT_EQUAL(sh(cmd), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot listen on"));
	close(fd);
	stop_known_job(&j);
}

static void test_observe_top_under_tmux(void)
{
	if (system("command -v tmux >/dev/null 2>&1") != 0) {
		printf("\n  SKIPPED: tmux is not installed (make deps)\n");
		return;
	}
	struct job j;
	CU_ASSERT_FATAL(start_known_job(&j) == 0);
	char sock[64], cmd[1024];
	for (int round = 0; round < 2; round++) {
		/* a server of its own per round: a new one on the name of one that
		 * is still exiting would be refused */
		snprintf(sock, sizeof sock, "hpsobs%d_%d", (int)getpid(), round);
		/* the shell prints top's status once it is back on the main screen */
		snprintf(cmd, sizeof cmd,
			 "TERM=xterm tmux -L %s -f /dev/null new-session -d -s top -x 150 -y 30 "
			 "'%s top --job %s --host testhost; echo top-exit=$?; sleep 60'",
			 sock, hps_bin(), j.job);
		int rc = sh(cmd);
		if (rc) {
			printf("\ntmux said (%d): %s\n", rc, out);
			CU_FAIL("tmux did not start");
			break; /* the job still stops below */
		}
		snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t top", sock);
		int seen = 0;
		for (int t = 0; t < 100 && !seen; t++) {
			usleep(100000);
			sh(cmd);
			seen = strstr(out, "REQ/S") && strstr(out, "testhost");
		}
		CU_ASSERT(seen);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "sort: rank"));
		/* a sorting key redraws at once */
		snprintf(cmd, sizeof cmd, "tmux -L %s send-keys -t top c", sock);
		CU_ASSERT_EQUAL(sh(cmd), 0);
		snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t top", sock);
		for (int t = 0; t < 50 && !strstr(out, "sort: clock"); t++) {
			usleep(100000);
			sh(cmd);
		}
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "sort: clock"));
		/* q, then Ctrl-C: both end top with status 0 and the table gone */
		snprintf(cmd, sizeof cmd, "tmux -L %s send-keys -t top %s", sock, round == 0 ? "q" : "C-c");
		CU_ASSERT_EQUAL(sh(cmd), 0);
		snprintf(cmd, sizeof cmd, "tmux -L %s capture-pane -p -t top", sock);
		for (int t = 0; t < 50 && !strstr(out, "top-exit="); t++) {
			usleep(100000);
			sh(cmd);
		}
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "top-exit=0"));
		CU_ASSERT_PTR_NULL(strstr(out, "REQ/S"));
		snprintf(cmd, sizeof cmd, "tmux -L %s kill-server", sock);
		sh(cmd);
	}
	stop_known_job(&j);
}

/* ---- held pulls and staleness ------------------------------------------- */

static void flag(const char *name)
{
	char path[200];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	close(open(path, O_CREAT | O_WRONLY, 0600));
}

static int wait_flag(const char *name)
{
	char path[200];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	return poll_until(file_exists, path, 20000);
}

/* Worker 0 moves 3 clocks and pulls while worker 1 waits for "go" before
 * it moves 2: under SSP with bound 1 the pull waits for those. */
static int lagging_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	uint32_t rank = *(uint32_t *)arg;
	if (rank == 1) {
		if (!wait_flag("go") || hps_clock(w) != 0 || hps_clock(w) != 0)
			return 20;
		return wait_flag("stop") ? 0 : 21;
	}
	uint64_t key = 7;
	float v = 0;
	for (int c = 0; c < 3; c++)
		if (hps_clock(w) != 0)
			return 22;
	int64_t ts = hps_pull(w, &key, 1, &v, NULL);
	flag("pulled");
	if (hps_wait(w, ts) != 0)
		return 23;
	flag("answered");
	return wait_flag("stop") ? 0 : 24;
}

static double metric_now(const struct job *j, const char *name, const char *role, int rank)
{
	char cmd[512];
	static char text[1 << 17];
	snprintf(cmd, sizeof cmd, "%s metrics --job %s --host testhost", hps_bin(), j->job);
	if (sh(cmd) != 0)
		return -1;
	text[0] = '\n';
	memcpy(text + 1, out, sizeof text - 1); /* out is NUL-terminated within */
	return sample(text, name, role, rank);
}

static void run_lagging_job(const char *staleness, struct job *j)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hps_observe.%d", (int)getpid());
	mkdir(tmpdir, 0700);
	setenv("HPS_STALENESS", staleness, 1);
	int rc = job_start(j, 1, 2, NULL);
	unsetenv("HPS_STALENESS");
	CU_ASSERT_FATAL(rc == 0);
	for (int r = 0; r < 2; r++)
		workers[r] = job_fork_worker(j, ranks[r], 1, lagging_worker, &ranks[r]);
	if (!wait_flag("pulled")) {
		abandon_job(j);
		CU_FAIL_FATAL("worker 0 never pulled");
	}
}

static int held_one(void *j)
{
	return metric_now(j, "hps_held_requests", "server", 0) == 1;
}

static void test_observe_held_pull_and_staleness(void)
{
	struct job j;
	/* SSP 1: the pull at clock 3 waits for worker 1 (at 0) to reach 2 */
	run_lagging_job("1", &j);
	CU_ASSERT(poll_until(held_one, &j, 10000));
	CU_ASSERT_EQUAL(metric_now(&j, "hps_held_requests_total", "server", 0), 1);
	usleep(300000);
	flag("go");
	CU_ASSERT(wait_flag("answered"));
	CU_ASSERT_EQUAL(metric_now(&j, "hps_held_requests", "server", 0), 0);
	CU_ASSERT_EQUAL(metric_now(&j, "hps_held_requests_total", "server", 0), 1);
	CU_ASSERT(metric_now(&j, "hps_held_seconds_total", "server", 0) >= 0.3);
	CU_ASSERT_EQUAL(metric_now(&j, "hps_stale_pulls_total", "worker", 0), 1);
	/* answered once worker 1 reached clock 2: one clock behind 3 */
	CU_ASSERT_EQUAL(metric_now(&j, "hps_staleness_max_clocks", "worker", 0), 1);
	stop_known_job(&j);

	/* ASP: answered at once, three clocks ahead of the slowest worker */
	run_lagging_job("asp", &j);
	CU_ASSERT(wait_flag("answered"));
	CU_ASSERT_EQUAL(metric_now(&j, "hps_held_requests_total", "server", 0), 0);
	CU_ASSERT_EQUAL(metric_now(&j, "hps_stale_pulls_total", "worker", 0), 1);
	CU_ASSERT_EQUAL(metric_now(&j, "hps_staleness_clocks_total", "worker", 0), 3);
	CU_ASSERT_EQUAL(metric_now(&j, "hps_staleness_max_clocks", "worker", 0), 3);
	flag("go");
	stop_known_job(&j);
}

static void test_observe_launch_summary(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hps_observe.%d", (int)getpid());
	mkdir(tmpdir, 0700);
	char ex[512], cmd[1024];
	snprintf(cmd, sizeof cmd, "%s launch -s 2 -w 2 --summary --job obs%d --host testhost -- %s", hps_bin(),
		 (int)getpid(), example_bin("quickstart", ex, sizeof ex));
	CU_ASSERT_EQUAL(sh(cmd), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "summary of job"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "imbalance: busiest server"));
	/* quickstart: each worker pushes 100 keys ten times (1000) and pulls 100 */
	int workers = 0;
	for (const char *p = strstr(out, "keys_pulled"); p && (p = strchr(p, '\n')); p++) {
		unsigned rank;
		unsigned long long req, pushed, pulled;
		if (sscanf(p + 1, " %u %llu %llu %llu", &rank, &req, &pushed, &pulled) != 4)
			break;
		CU_ASSERT_EQUAL(pushed, 1000);
		CU_ASSERT_EQUAL(pulled, 100);
		workers++;
	}
	CU_ASSERT_EQUAL(workers, 2);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* A scheduler killed with SIGKILL leaves its hosts file: hps clean
 * removes it, and keeps the file of a live one. */
static void test_observe_clean_hosts_file(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hps_observe.%d", (int)getpid());
	mkdir(tmpdir, 0700);
	struct hpsi_host_row row = {.name = "h0", .state = "alive", .t = {.requests = 5}};
	pid_t child = fork();
	if (child == 0) {
		setenv("HPS_SHM_DIR", tmpdir, 1);
		hpsi_hosts_stats_write("deadjob", &row, 1);
		_exit(0);
	}
	CU_ASSERT_EQUAL(wait_exit(child, 5000), 0);
	char *old = getenv("HPS_SHM_DIR") ? strdup(getenv("HPS_SHM_DIR")) : NULL;
	setenv("HPS_SHM_DIR", tmpdir, 1);
	hpsi_hosts_stats_write("livejob", &row, 1);
	struct hpsi_host_row back[2];
	CU_ASSERT_EQUAL(hpsi_hosts_stats_read("deadjob", back, 2), 1);
	CU_ASSERT_EQUAL(back[0].t.requests, 5);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "HPS_SHM_DIR=%s %s clean > /dev/null && ls -A %s", tmpdir, hps_bin(), tmpdir);
	CU_ASSERT_EQUAL(sh(cmd), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps-hosts.livejob"));
	CU_ASSERT_PTR_NULL(strstr(out, "hps-hosts.deadjob"));
	CU_ASSERT_EQUAL(hpsi_hosts_stats_read("deadjob", back, 2), 0);
	if (old)
		setenv("HPS_SHM_DIR", old, 1);
	else
		unsetenv("HPS_SHM_DIR");
	free(old);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_observe_usage_errors(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/hps_observe.%d", (int)getpid());
	mkdir(tmpdir, 0700);
	static const struct {
		const char *args, *says;
		int rc;
	} bad[] = {
		{"metrics --bogus", "unexpected '--bogus'", 2},
		{"metrics --job nosuchjob --host testhost", "no job 'nosuchjob'", 1},
		{"metrics --job nosuchjob --host testhost --listen nonsense", "--listen wants ADDRESS:PORT", 2},
		{"metrics --textfile /tmp --listen 127.0.0.1:1", "not both", 2},
		{"top --sort nothing", "--sort wants one of", 2},
		{"top --job nosuchjob --host testhost", "no job 'nosuchjob'", 1},
		{"top --bogus", "unexpected '--bogus'", 2},
	};
	char cmd[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(cmd, sizeof cmd, "%s %s < /dev/null", hps_bin(), bad[i].args);
		CU_ASSERT_EQUAL(sh(cmd), bad[i].rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, bad[i].says));
		if (!strstr(out, bad[i].says))
			printf("\n%s said: %s\n", bad[i].args, out);
	}
	snprintf(cmd, sizeof cmd, "%s metrics --help && %s top --help", hps_bin(), hps_bin());
	CU_ASSERT_EQUAL(sh(cmd), 0);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_observe_metrics_of_known_job", test_observe_metrics_of_known_job},
		{"test_observe_metrics_http", test_observe_metrics_http},
		{"test_observe_top_under_tmux", test_observe_top_under_tmux},
		{"test_observe_held_pull_and_staleness", test_observe_held_pull_and_staleness},
		{"test_observe_launch_summary", test_observe_launch_summary},
		{"test_observe_clean_hosts_file", test_observe_clean_hosts_file},
		{"test_observe_usage_errors", test_observe_usage_errors},
		{NULL, NULL},
	};
	return run_suite("observe", cases);
}
