/* Failover and recovery across hosts (make bench-ft): two host groups on this machine,
 * alpha and beta (HPS_HOST; the scheduler and both bridges at localhost,
 * as tests/test_cluster.c's named jobs), one server each, HPS_REPLICAS=1
 * and one worker on alpha that pushes and pulls NK
 * keys (both key ranges) in a loop. After its 200th request the benchmark
 * kills beta's server alone (phase "kill": beta's bridge sees it dead at
 * its next liveness check and sends the FENCE), or every process of beta
 * (phase "host": no FENCE can come; alpha's bridge counts beta lost one
 * heartbeat after the scheduler declared its nodes dead, itself
 * HPS_DEAD_MS after beta's last message: about HPS_DEAD_MS + 100 ms). The time
 * runs from the kill to the completion of the first request the worker
 * submitted after it, which only alpha's server, the new primary of beta's
 * range, can have answered. HPS_DEAD_MS=1000, heartbeats every 100 ms.
 *
 * Recovery (ft_xrecover): the same job with --restart-servers 1 on beta;
 * the worker first fills XFILL_KEYS keys, then loops as above; beta's
 * server is killed, its launcher starts a replacement, which copies both
 * key ranges (the whole table) from alpha's server through the bridges
 * while the worker goes on. The time runs from the replacement's claim of
 * the rank (its incarnation 1 in beta's segment) until it serves its own
 * range and lacks no range any more (ALIVE, `lacking` 0: every copy
 * ended), as the one-host line's from its start until it serves and
 * applies forwards.
 *
 * The worker and this program share a small file mapping (struct xshared):
 * the kill's time goes one way, the failover time and the request count
 * the other. Each job has its own HPS_SHM_DIR, removed after it, so a
 * killed host's segment is not left behind. */
#include "bench/ft_xhosts.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cases.h"
#include "hps/hps.h"
#include "shm/bell.h"
#include "shm/segment.h"

#define NK 64
/* recovery: the table the replacement copies (width 1; 2 x 10000 keys a
 * push, a part of about 120 KB, under a ring record of HPS_RING_KB=1024) */
#define XFILL_KEYS 1000000
#define XFILL_BATCH 20000

struct xshared {
	_Atomic int64_t kill_ns; /* 0 until the kill */
	_Atomic int64_t failover_ns;
	_Atomic int requests;
	_Atomic int stop;
	int fill;                /* recovery: fill the table first */
	_Atomic int filled;
};

static struct xshared *map_file(const char *file)
{
	int fd = open(file, O_RDWR);
	if (fd < 0)
		return NULL;
	void *m = mmap(NULL, sizeof(struct xshared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

int ft_xworker(const char *file)
{
	struct xshared *x = map_file(file);
	hps_ctx *ctx;
	hps_worker *w;
	if (!x || hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, 1, &w))
		return 2;
	uint64_t keys[NK];
	float push[NK], pull[NK];
	for (int k = 0; k < NK; k++)
		keys[k] = (uint64_t)k, push[k] = 1;
	int rc = 0;
	if (x->fill) { /* recovery: XFILL_KEYS more keys, in pushes whose parts fit a ring record */
		uint64_t *fk = malloc(sizeof *fk * XFILL_BATCH);
		float *fv = malloc(sizeof *fv * XFILL_BATCH);
		for (uint64_t at = 0; fk && fv && !rc && at < XFILL_KEYS; at += XFILL_BATCH) {
			for (int i = 0; i < XFILL_BATCH; i++)
				fk[i] = NK + at + (uint64_t)i, fv[i] = 1;
			rc = hps_wait(w, hps_push(w, fk, XFILL_BATCH, fv, NULL)) != 0;
		}
		rc |= !fk || !fv;
		free(fk);
		free(fv);
		atomic_store_explicit(&x->filled, 1, memory_order_release);
	}
	while (!atomic_load_explicit(&x->stop, memory_order_acquire)) {
		int64_t sent = hpsi_now_ns();
		int64_t ts = hps_pushpull(w, keys, NK, push, pull, NULL);
		if (ts < 0 || hps_wait(w, ts)) {
			rc = 1;
			break;
		}
		/* CLOCK_MONOTONIC: one clock for every process of the machine */
		int64_t kill_ns = atomic_load_explicit(&x->kill_ns, memory_order_acquire);
		if (kill_ns && sent > kill_ns && !atomic_load_explicit(&x->failover_ns, memory_order_relaxed))
			atomic_store_explicit(&x->failover_ns, hpsi_now_ns() - kill_ns, memory_order_release);
		atomic_fetch_add_explicit(&x->requests, 1, memory_order_release);
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

/* sh -c CMD in a process group of its own, output to /dev/null. */
static pid_t spawn(const char *cmd)
{
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		int fd = open("/dev/null", O_WRONLY);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Whether the NUL-separated file holds `want` among its strings. */
static int file_has(const char *path, const char *want, int prefix)
{
	char buf[16384];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	for (ssize_t at = 0; n > 0 && at < n; at += (ssize_t)strlen(buf + at) + 1) {
		buf[n] = 0;
		if (prefix ? strstr(buf + at, want) != NULL : strcmp(buf + at, want) == 0)
			return 1;
	}
	return 0;
}

/* The pid of `hps ROLE` (argv[1]) of job `job` on host beta, or 0. */
static pid_t find_beta(const char *role, const char *job)
{
	char env_job[96], path[64];
	snprintf(env_job, sizeof env_job, "HPS_JOB_ID=%s", job);
	DIR *d = opendir("/proc");
	pid_t found = 0;
	struct dirent *e;
	while (d && !found && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
		int role_ok = file_has(path, role, 0);
		snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
		if (role_ok && file_has(path, "HPS_HOST=beta", 0) && file_has(path, env_job, 0))
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

/* Waits for pid up to ms; kills its group when it is still there. */
static void reap(pid_t pid, int ms)
{
	for (int t = 0; t < ms; t += 10) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10000);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Polls beta's segment (bounded by end), attached before the kill: the
 * time from the replacement's claim of rank 1 until it serves and lacks
 * no range, in ns, or -1. */
static int64_t catch_up(const struct hpsi_seg *seg, int64_t end)
{
	struct hpsi_node *n = hpsi_seg_node(seg, 1);
	int64_t claimed = 0;
	while (hpsi_now_ns() < end) {
		/* acquire: pairs with the replacement's releases of its claim,
		 * state and lacking bits (runtime/server/recover.c) */
		if (!claimed && atomic_load_explicit(&n->incarnation, memory_order_acquire) >= 1)
			claimed = hpsi_now_ns();
		if (claimed && atomic_load_explicit(&n->state, memory_order_acquire) == HPSI_NODE_ALIVE &&
		    atomic_load_explicit(&n->lacking, memory_order_acquire) == 0)
			return hpsi_now_ns() - claimed;
		usleep(100);
	}
	return -1;
}

/* One job, one kill: the failover time in ns (recover: the replacement's
 * catch-up time), or -1. */
static int64_t one(int rep, int whole_host, int recover, const char *self, const char *hps)
{
	char file[96], shm[96], job[48], env[1024], cmd[16384];
	snprintf(file, sizeof file, "/tmp/ft_xhosts.%d", (int)getpid());
	snprintf(shm, sizeof shm, "/dev/shm/ft_xhosts.%d", (int)getpid());
	snprintf(job, sizeof job, "ftx%d_%d", (int)getpid(), rep);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, sizeof(struct xshared)) || mkdir(shm, 0700)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	struct xshared *x = map_file(file);
	if (!x)
		return -1;
	snprintf(env, sizeof env,
		 "HPS_SHM_DIR=%s HPS_ROOT_URI=localhost HPS_ROOT_PORT=%d HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=1 "
		 "HPS_NODE_ADDR=localhost HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=%s HPS_REPLICAS=1 "
		 "HPS_HEARTBEAT_MS=100 HPS_DEAD_MS=1000 HPS_TIMEOUT_MS=20000 HPS_LOG=error%s",
		 shm, 9660 + rep % 20, job, recover ? " HPS_RING_KB=1024 HPS_HEAP_MB=64" : "");
	x->fill = recover;
	snprintf(cmd, sizeof cmd, "exec env %s %s scheduler", env, hps);
	pid_t sched = spawn(cmd);
	snprintf(cmd, sizeof cmd, "exec env %s HPS_HOST=alpha %s launch --local-servers 1 --local-workers 1 -- %s --xworker %s",
		 env, hps, self, file);
	pid_t a = spawn(cmd);
	snprintf(cmd, sizeof cmd,
		 "exec env %s HPS_HOST=beta %s launch --local-servers 1 --local-workers 0 %s -- %s --xworker %s", env,
		 hps, recover ? "--restart-servers 1" : "", self, file);
	pid_t b = spawn(cmd);
	int64_t end = hpsi_now_ns() + 60000000000ll, got = 0;
	while ((atomic_load_explicit(&x->requests, memory_order_acquire) < 200 ||
		(recover && !atomic_load_explicit(&x->filled, memory_order_acquire))) &&
	       hpsi_now_ns() < end)
		usleep(1000);
	pid_t srv = find_beta("server", job), br = whole_host ? find_beta("bridge", job) : 0;
	struct hpsi_seg seg;
	int attached = 0;
	if (recover) { /* beta's segment, to watch the replacement */
		setenv("HPS_SHM_DIR", shm, 1);
		attached = hpsi_seg_attach(job, "beta", &seg) == 0;
		unsetenv("HPS_SHM_DIR");
	}
	int ok = srv > 0 && (!whole_host || br > 0) && (!recover || attached) && hpsi_now_ns() < end;
	if (ok) {
		atomic_store_explicit(&x->kill_ns, hpsi_now_ns(), memory_order_release);
		kill(srv, SIGKILL);
		if (whole_host) {
			kill(br, SIGKILL);
			kill(b, SIGKILL); /* its launcher */
		}
		if (recover) {
			got = catch_up(&seg, end);
			got = got < 0 ? 0 : got;
		} else
			while (!(got = atomic_load_explicit(&x->failover_ns, memory_order_acquire)) && hpsi_now_ns() < end)
				usleep(100);
	}
	if (attached)
		hpsi_seg_detach(&seg);
	atomic_store_explicit(&x->stop, 1, memory_order_release);
	reap(a, 20000);
	reap(b, 20000);
	reap(sched, 10000);
	munmap(x, sizeof *x);
	unlink(file);
	snprintf(cmd, sizeof cmd, "rm -rf %s", shm);
	if (system(cmd) != 0)
		fprintf(stderr, "ft_bench: could not remove %s\n", shm);
	return ok && got ? got : -1;
}

/* This program and bin/hps beside it (or $HPS_BIN). */
static void paths(char *self, size_t scap, char *hps, size_t hcap)
{
	ssize_t n = readlink("/proc/self/exe", self, scap - 1);
	self[n > 0 ? n : 0] = 0;
	if (getenv("HPS_BIN"))
		snprintf(hps, hcap, "%s", getenv("HPS_BIN"));
	else
		snprintf(hps, hcap, "%.*s/../bin/hps", (int)(strrchr(self, '/') - self), self);
}

int ft_xrecover(int repeats)
{
	char self[4096], hps[4200];
	paths(self, sizeof self, hps, sizeof hps);
	double us[64];
	int k = 0;
	for (int rep = 0; rep < repeats && k < 64; rep++) {
		int64_t ns = one(rep, 0, 1, self, hps);
		if (ns < 0) {
			fprintf(stderr, "ft_bench: recovery across hosts, run %d failed\n", rep);
			return 1;
		}
		us[k++] = (double)ns / 1000.0;
	}
	qsort(us, (size_t)k, sizeof *us, cmp_double);
	/* every key of both ranges is copied: 20 bytes a key at width 1 */
	double keys = NK + XFILL_KEYS, s50 = us[k / 2] / 1e6;
	printf("recover 2H2S1WK1 catchup");
	print_fig(keys * 20 / 1e6 / s50);
	print_fig(keys / s50);
	printf(" -");
	print_fig(us[k / 2]);
	print_fig(us[k - 1]);
	printf("\n");
	fflush(stdout);
	return 0;
}

int ft_xhosts(int repeats, int whole_host)
{
	char self[4096], hps[4200];
	paths(self, sizeof self, hps, sizeof hps);
	double us[64];
	int k = 0;
	for (int rep = 0; rep < repeats && k < 64; rep++) {
		int64_t ns = one(rep, whole_host, 0, self, hps);
		if (ns < 0) {
			fprintf(stderr, "ft_bench: failover across hosts, run %d failed\n", rep);
			return 1;
		}
		us[k++] = (double)ns / 1000.0;
	}
	qsort(us, (size_t)k, sizeof *us, cmp_double);
	printf("failover 2H2S1WK1 %s - - -", whole_host ? "host" : "kill");
	print_fig(us[k / 2]);
	print_fig(us[k - 1]);
	printf("\n");
	fflush(stdout);
	return 0;
}
