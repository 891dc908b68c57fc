#include "tests/harness.h"

#include <CUnit/Basic.h>
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/common/config.h"
#include "shm/bell.h"

int run_suite(const char *suite, const struct test_case *cases)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	CU_pSuite s = CU_add_suite(suite, NULL, NULL);
	const char *only = getenv("HPS_TEST"); /* run one case: HPS_TEST=name */
	for (const struct test_case *c = cases; c->name; c++)
		if (!only || strcmp(only, c->name) == 0)
			CU_add_test(s, c->name, c->fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

static int job_counter;

void job_env(const struct job *j, const char *role, uint32_t rank)
{
	char num[32];
	setenv("HPS_ROLE", role, 1);
	snprintf(num, sizeof num, "%u", rank);
	setenv("HPS_RANK", num, 1);
	setenv("HPS_JOB_ID", j->job, 1);
	setenv("HPS_HOST", "testhost", 1);
	unsetenv("HPS_NUM_SERVERS");
	unsetenv("HPS_NUM_WORKERS");
	unsetenv("HPS_KEY_RANGES");
}

pid_t job_fork_server(struct job *j, uint32_t rank, hps_handler h)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	job_env(j, "server", rank);
	hps_ctx *ctx;
	int rc = hps_init(&ctx, NULL, NULL);
	if (rc)
		_exit(100);
	rc = hps_server_run(ctx, h, NULL);
	hps_finalize(ctx);
	_exit(rc ? 101 : 0);
}

int job_start(struct job *j, uint32_t nservers, uint32_t nworkers, const struct job_opts *o)
{
	struct job_opts none = {0};
	if (!o)
		o = &none;
	memset(j, 0, sizeof *j);
	snprintf(j->job, sizeof j->job, "t%d_%d", (int)getpid(), job_counter++);
	j->nservers = nservers;
	j->nworkers = nworkers;
	struct hpsi_seg_params p = {
		.job = j->job, .host = "testhost", .nservers = nservers, .nworkers = nworkers,
		.ring_bytes = o->ring_bytes ? o->ring_bytes : 1u << 16,
		.heap_slice = (o->heap_mb ? o->heap_mb : 64) << 20,
		.timeout_ms = o->timeout_ms ? o->timeout_ms : 20000,
		.range_mode = o->ranges ? HPSI_RANGE_DECLARED : HPSI_RANGE_HASH, .ranges = o->ranges,
		.replicas = o->replicas, .nhosts = o->nhosts, .host_servers = o->host_servers,
		.max_servers = o->max_servers};
	uint32_t dtypes[64], wires[64], directs[64];
	uint32_t nranges = o->max_servers > nservers ? o->max_servers : nservers; /* one entry per key range */
	int rc = hpsi_config_value_types(nranges, dtypes, wires); /* HPS_DTYPE, HPS_COMPRESS */
	if (rc || (rc = hpsi_config_direct(nranges, directs)))    /* HPS_DIRECT */
		return rc;
	p.dtypes = dtypes, p.wires = wires, p.direct_widths = directs;
	rc = hpsi_seg_create(&p, &j->seg);
	if (rc)
		return rc;
	if (!o->no_servers)
		for (uint32_t s = 0; s < nservers; s++)
			j->servers[s] = job_fork_server(j, s, o->handler);
	return 0;
}

pid_t job_fork_worker(struct job *j, uint32_t rank, uint32_t width, worker_fn fn, void *arg)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	job_env(j, "worker", rank);
	hps_ctx *ctx;
	hps_worker *w;
	if (hps_init(&ctx, NULL, NULL))
		_exit(100);
	if (hps_worker_open(ctx, width, &w))
		_exit(101);
	int rc = fn(ctx, w, arg);
	hps_worker_close(w);
	hps_finalize(ctx);
	_exit(rc);
}

int wait_exit(pid_t pid, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t++) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -2;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

int job_stop(struct job *j)
{
	int bad = 0;
	for (uint32_t s = 0; s < j->nservers; s++)
		if (j->servers[s] > 0 && wait_exit(j->servers[s], 10000) != 0)
			bad = 1;
	hpsi_seg_unlink(&j->seg);
	hpsi_seg_detach(&j->seg);
	return bad;
}

const char *hps_bin(void)
{
	const char *b = getenv("HPS_BIN");
	return b && *b ? b : "bin/hps";
}

const char *example_bin(const char *name, char *buf, size_t cap)
{
	const char *d = getenv("HPS_EXAMPLES");
	snprintf(buf, cap, "%s/%s", d && *d ? d : "build/examples", name);
	return buf;
}

int poll_until(int (*cond)(void *), void *arg, int timeout_ms)
{
	int64_t end = hpsi_now_ns() + (int64_t)timeout_ms * 1000000;
	while (hpsi_now_ns() < end) {
		if (cond(arg))
			return 1;
		usleep(1000);
	}
	return cond(arg);
}

int join_as_worker(hps_ctx **ctx, hps_worker **w)
{
	int rc = hps_init(ctx, NULL, NULL);
	if (rc || (rc = hps_worker_open(*ctx, 1, w))) {
		fprintf(stderr, "join: %s\n", hps_strerror(rc));
		return 2;
	}
	return 0;
}

pid_t spawn_logged(const char *log, const char *shell, const char *cmd)
{
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execl(shell, shell, "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

const char *slurp_into(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
	buf[n] = 0;
	if (f)
		fclose(f);
	return buf;
}

int finish_group(pid_t pid, int timeout_ms)
{
	int rc = wait_exit(pid, timeout_ms);
	if (rc == -1)
		kill(-pid, SIGKILL);
	return rc;
}

void touch_file(const char *path)
{
	int fd = open(path, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
}

void launched_paths(struct launched *l, const char *tag)
{
	snprintf(l->log, sizeof l->log, "/tmp/hps-%s-%d.log", tag, (int)getpid());
	snprintf(l->flag, sizeof l->flag, "/tmp/hps-%s-%d.flag", tag, (int)getpid());
	unlink(l->flag);
	l->pid = -1;
}

int launched_finish(struct launched *l, int timeout_ms, char *out, size_t cap)
{
	touch_file(l->flag);
	int rc = finish_group(l->pid, timeout_ms);
	slurp_into(l->log, out, cap);
	unlink(l->log);
	unlink(l->flag);
	return rc;
}

int run_on_small_shm(unsigned size_mb, int (*fn)(const char *dir), int timeout_ms)
{
	pid_t pid = fork();
	if (pid == 0) {
		const char *dir = getenv("HPS_SHM_DIR");
		if (!dir || !*dir)
			dir = "/dev/shm";
		char opts[64];
		snprintf(opts, sizeof opts, "size=%um,mode=0700", size_mb);
		if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("hps-test", dir, "tmpfs", 0, opts) != 0) {
			fprintf(stderr, "cannot mount a private tmpfs at %s: %s\n", dir, strerror(errno));
			_exit(77);
		}
		setenv("HPS_SHM_DIR", dir, 1);
		_exit(fn(dir));
	}
	int rc = wait_exit(pid, timeout_ms);
	if (rc == 77)
		fprintf(stderr, "skipped: needs CAP_SYS_ADMIN for a private tmpfs\n");
	return rc;
}
