/* net_bench: the cases of hps_bench across hosts, next to raw ZeroMQ over
 * the same link. Two network namespaces joined by a veth pair stand for
 * two hosts (root needed): servers on one, workers on the other, so every
 * request goes worker -> bridge -> ZeroMQ -> bridge -> server and back.
 *
 *   bench/net_bench [CASE...]     CASE: lat sparse1k sparse100k dense4M
 *                                 dense4M_8k zmq_rtt zmq_thr scale (default:
 *                                 lat sparse1k dense4M zmq_rtt zmq_thr)
 *
 * Lines as hps_bench's (case config phase MB/s keys/s ops/s p50_us p99_us)
 * with configs net1S1W and net2S2W; netcurve1S1W: net1S1W with every
 * TCP link under CURVE (HPS_CURVE, keys from `hps keygen`; by default only
 * lat and dense4M); mixed_local: a worker whose keys all
 * live on the server of its own host while the job spans both hosts,
 * beside host_local, the same job (2 servers, same key ranges) on one
 * host; and the baselines: zmq_rtt (REQ/REP
 * round trip of 8-byte messages) and zmq_thr (PUSH/PULL of 1 MB messages
 * sent without a copy), medians of 5 runs.
 *
 * scale: hps scale --servers across the hosts (docs/ARCHITECTURE.md,
 * "Elastic servers across hosts"): a job of one server on the first host
 * and one worker on the other, --max-servers 2; the worker pushes
 * SCALE_MB of values (keys of 1024 floats), then `hps scale --servers 2`
 * on the second host moves key range 1 to a new server there, record by
 * record through the bridges; then the worker pulls every key back and
 * checks it. The line gives MB of that range moved per second, from the
 * source's BEGIN to the target serving it (the target's "took it from
 * server" line, by the log's clock), next to zmq_thr of the same run
 * ("# scale: ... of zmq_thr", which also gives the source's own figure,
 * BEGIN to its FINAL: its records may still be on their way then).
 *
 * After the lines of a configuration, `# cpu CASE CONFIG PHASE: ...` says
 * for the pipelined phases of dense cases how much CPU time each process
 * of both hosts spent per byte moved (bridges with ZeroMQ's threads,
 * servers, workers; `_a` the servers' host, `_b` the workers'), the share
 * of it in the kernel, and how busy the machine's CPUs were; `# cpu
 * zmq_thr ...` the same for the zmq_thr baseline (bench/proc_cpu.h).
 *
 *   bench/net_bench --namespaces-only   builds the namespaces, says so and
 *                                       waits for a signal (tests the cleanup)
 *
 * SIGTERM, SIGINT or SIGHUP (a `timeout`, a Ctrl-C, a closed terminal)
 * removes the namespaces, the processes in them and the temporary files
 * before the program dies of the signal. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "bench/cases.h"
#include "bench/proc_cpu.h"
#include "shm/bell.h"

#define ADDR_A "10.79.0.1" /* servers */
#define ADDR_B "10.79.0.2" /* workers */
#define THR_MSG (1u << 20)
#define SCALE_MB 64     /* the scale case's values */
#define SCALE_WIDTH 1024 /* floats per key: 4 KiB */

static char ns[16];

static int sh_cmd(const char *cmd)
{
	return system(cmd);
}

/* What ns_down runs, made once before any namespace exists, so that a
 * signal handler can run it without formatting anything. */
static char down_cmd[512];

static void ns_down(void)
{
	sh_cmd(down_cmd);
}

/* fork, exec and waitpid are async-signal-safe (system() is not). The
 * cleanup runs in a process group of its own, deaf to the same signals:
 * `timeout` sends its signal to the whole group, right after this one. */
static void on_fatal(int sig)
{
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		execl("/bin/sh", "sh", "-c", down_cmd, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void cleanup_on_signals(void)
{
	snprintf(down_cmd, sizeof down_cmd,
		 "for n in %sa %sb; do ip netns pids $n 2>/dev/null | xargs -r kill -9 2>/dev/null; "
		 "ip netns del $n 2>/dev/null; done; rm -rf /tmp/net_bench.%d /tmp/net_bench.%d.hosts /tmp/net_bench.%d.log "
		 "/tmp/net_bench.%d.keys; true",
		 ns, ns, (int)getpid(), (int)getpid(), (int)getpid(), (int)getpid());
	struct sigaction sa = {.sa_handler = on_fatal};
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGTERM); /* one cleanup at a time */
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGHUP);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static int ns_up(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
		 "ip netns add %sa && ip netns add %sb && ip link add %sv netns %sa type veth peer name %sw netns %sb && "
		 "ip -n %sa addr add " ADDR_A "/24 dev %sv && ip -n %sb addr add " ADDR_B "/24 dev %sw && "
		 "ip -n %sa link set %sv up && ip -n %sb link set %sw up && ip -n %sa link set lo up && ip -n %sb link set lo up",
		 ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns, ns);
	return sh_cmd(cmd);
}

/* ---- raw ZeroMQ baselines (both ends are this program) ---- */

static void zmq_rep(void)
{
	void *z = zmq_ctx_new(), *s = zmq_socket(z, ZMQ_REP);
	zmq_bind(s, "tcp://" ADDR_A ":9601");
	char buf[8];
	for (;;) {
		int n = zmq_recv(s, buf, sizeof buf, 0);
		if (n < 0 || (n == 1 && buf[0] == 'q'))
			break;
		zmq_send(s, buf, (size_t)n, 0);
	}
	zmq_send(s, "q", 1, 0);
	zmq_close(s);
	zmq_ctx_term(z);
}

static void zmq_req(void)
{
	void *z = zmq_ctx_new(), *s = zmq_socket(z, ZMQ_REQ);
	zmq_connect(s, "tcp://" ADDR_A ":9601");
	char buf[8] = "12345678";
	static double lat[1 << 20];
	double rate[REPS];
	int n = 0;
	for (int i = 0; i < 200; i++) /* warm up the connection */
		zmq_send(s, buf, 8, 0), zmq_recv(s, buf, 8, 0);
	for (int rep = 0; rep < REPS; rep++) {
		int64_t t0 = hpsi_now_ns(), end = t0 + REP_NS;
		long ops = 0;
		while (hpsi_now_ns() < end) {
			int64_t a = hpsi_now_ns();
			zmq_send(s, buf, 8, 0);
			zmq_recv(s, buf, 8, 0);
			if (n < (1 << 20))
				lat[n++] = (double)(hpsi_now_ns() - a) / 1000.0;
			ops++;
		}
		rate[rep] = (double)ops / ((double)(hpsi_now_ns() - t0) / 1e9);
	}
	zmq_send(s, "q", 1, 0);
	zmq_recv(s, buf, 8, 0);
	qsort(lat, (size_t)n, sizeof *lat, cmp_double);
	printf("zmq_rtt net reqrep - -");
	print_fig(median(rate, REPS));
	print_fig(lat[n / 2]);
	print_fig(lat[(size_t)n * 99 / 100]);
	printf("\n");
	zmq_close(s);
	zmq_ctx_term(z);
}

static void zmq_pull(void)
{
	void *z = zmq_ctx_new(), *s = zmq_socket(z, ZMQ_PULL), *ack = zmq_socket(z, ZMQ_PUSH);
	zmq_bind(s, "tcp://" ADDR_A ":9602");
	zmq_bind(ack, "tcp://" ADDR_A ":9603");
	zmq_msg_t m;
	for (;;) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s, 0) < 0)
			break;
		size_t n = zmq_msg_size(&m);
		zmq_msg_close(&m);
		if (n == 1) { /* end of a run: acknowledge it, so the sender's clock covers delivery */
			zmq_send(ack, "a", 1, 0);
		} else if (n == 2) {
			zmq_send(ack, "q", 1, 0);
			break;
		}
	}
	int linger = 1000;
	zmq_setsockopt(ack, ZMQ_LINGER, &linger, sizeof linger);
	zmq_close(s);
	zmq_close(ack);
	zmq_ctx_term(z);
}

static void no_free(void *data, void *hint)
{
	(void)data, (void)hint;
}

static void zmq_push(void)
{
	void *z = zmq_ctx_new(), *s = zmq_socket(z, ZMQ_PUSH), *ack = zmq_socket(z, ZMQ_PULL);
	zmq_connect(s, "tcp://" ADDR_A ":9602");
	zmq_connect(ack, "tcp://" ADDR_A ":9603");
	char *payload = malloc(THR_MSG), a[2];
	memset(payload, 1, THR_MSG);
	double rate[REPS], bytes = 0;
	struct cpu_snap before, after;
	struct cpu_use cpu = {0};
	for (int rep = -1; rep < REPS; rep++) { /* rep -1 warms up */
		int snap = rep >= 0 && cpu_snap_take(&before) == 0;
		int64_t t0 = hpsi_now_ns(), end = t0 + REP_NS;
		long msgs = 0;
		while (hpsi_now_ns() < end) {
			zmq_msg_t m;
			zmq_msg_init_data(&m, payload, THR_MSG, no_free, NULL);
			zmq_msg_send(&m, s, 0);
			msgs++;
		}
		zmq_send(s, "e", 1, 0);
		zmq_recv(ack, a, 1, 0);
		if (rep >= 0)
			rate[rep] = (double)msgs * THR_MSG / ((double)(hpsi_now_ns() - t0) / 1e9);
		if (snap && cpu_snap_take(&after) == 0) {
			cpu_use_add(&cpu, &before, &after);
			bytes += (double)msgs * THR_MSG;
		}
	}
	zmq_send(s, "qq", 2, 0);
	zmq_recv(ack, a, 1, 0);
	double r = median(rate, REPS);
	printf("zmq_thr net push");
	print_fig(r / 1e6);
	FILE *f = fopen(getenv("NET_BENCH_THR") ? getenv("NET_BENCH_THR") : "/dev/null", "w");
	if (f) { /* for the scale case's share of it */
		fprintf(f, "%.3f\n", r / 1e6);
		fclose(f);
	}
	printf(" -");
	print_fig(r / THR_MSG);
	printf(" - -\n");
	cpu_use_print(&cpu, "zmq_thr net push", bytes);
	free(payload);
	zmq_close(s);
	zmq_close(ack);
	zmq_ctx_term(z);
}

/* Runs this program in namespace `which` with args, in the background. */
static pid_t in_ns(char which, const char *args)
{
	char cmd[5200], self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	snprintf(cmd, sizeof cmd, "ip netns exec %s%c %s %s", ns, which, self, args);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void baseline(const char *server, const char *client)
{
	pid_t s = in_ns('a', server);
	usleep(200000);
	pid_t c = in_ns('b', client);
	waitpid(c, NULL, 0);
	waitpid(s, NULL, 0);
	fflush(stdout);
}

/* ---- hps across the two hosts ---- */

/* CPU time of the pipelined phases of dense cases (bench/proc_cpu.h):
 * worker 0 reads it around each timed repetition, every worker counts the
 * bytes it moved. */
static int hook_rank, hook_snap;
static struct cpu_snap hook_before;

static void cpu_hook(size_t ci, int ph, long ops)
{
	if (!cases[ci].dense || (ph != PH_PIPE_PUSH && ph != PH_PIPE_PULL) || hook_rank >= 8)
		return;
	if (ops < 0) {
		hook_snap = hook_rank == 0 && cpu_snap_take(&hook_before) == 0;
		return;
	}
	struct cpu_snap after;
	if (hook_snap && cpu_snap_take(&after) == 0)
		cpu_use_add(&sh->cpu[ci][ph], &hook_before, &after);
	sh->cpu_bytes[hook_rank][ci][ph] += (double)ops * cases[ci].nkeys * cases[ci].width * 4;
}

/* The `# cpu` lines of one configuration: CPU time per byte moved. */
static void report_cpu(const char *config, uint32_t W)
{
	for (size_t ci = 0; ci < NCASES; ci++)
		for (int ph = 0; ph < NPHASES; ph++) {
			double bytes = 0;
			for (uint32_t w = 0; w < W; w++)
				bytes += sh->cpu_bytes[w][ci][ph];
			char what[128];
			snprintf(what, sizeof what, "%s %s %s", cases[ci].name, config, phase_names[ph]);
			cpu_use_print(&sh->cpu[ci][ph], what, bytes);
		}
}

static int net_worker(const char *file)
{
	int fd = open(file, O_RDWR);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	hps_ctx *ctx;
	hps_worker *w;
	if (sh == MAP_FAILED || hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, 1, &w))
		return 1;
	hook_rank = hps_rank(ctx);
	bench_rep_hook = cpu_hook;
	int rc = worker_main(ctx, w);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

/* $HPS_BIN, or bin/hps beside this program's bench/ */
static void hps_path(char *hps, size_t cap)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	if (getenv("HPS_BIN"))
		snprintf(hps, cap, "%s", getenv("HPS_BIN"));
	else
		snprintf(hps, cap, "%.*s/../bin/hps", (int)(strrchr(self, '/') - self), self);
}

/* The scale case's worker: SCALE_MB of values in keys of SCALE_WIDTH
 * floats, 1 MB per push; then it touches DIR/ready, waits (bounded) for
 * DIR/go, and pulls every key back (the moved range's from its new
 * server, which answers once it took the whole copy): 1 when a value is
 * not the 1.0 it pushed. */
static int scale_worker(const char *dir)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (hps_init(&ctx, NULL, NULL) || hps_worker_open(ctx, 1, &w))
		return 1;
	enum { PER = (1 << 20) / (SCALE_WIDTH * 4) };
	static uint64_t keys[PER];
	float *vals = hps_alloc(w, sizeof(float) * PER * SCALE_WIDTH);
	int rc = vals ? 0 : 1;
	for (size_t i = 0; vals && i < (size_t)PER * SCALE_WIDTH; i++)
		vals[i] = 1.0f;
	for (uint64_t k0 = 0; !rc && k0 < (uint64_t)SCALE_MB * PER; k0 += PER) {
		for (uint64_t k = 0; k < PER; k++)
			keys[k] = k0 + k;
		rc = hps_wait(w, hps_push(w, keys, PER, vals, &(hps_opts){.width = SCALE_WIDTH}));
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/ready", dir);
	close(open(path, O_WRONLY | O_CREAT, 0600));
	snprintf(path, sizeof path, "%s/go", dir);
	for (int t = 0; t < 120000 && access(path, F_OK) != 0; t++)
		usleep(1000);
	for (uint64_t k0 = 0; !rc && k0 < (uint64_t)SCALE_MB * PER; k0 += PER) {
		for (uint64_t k = 0; k < PER; k++)
			keys[k] = k0 + k;
		rc = hps_wait(w, hps_pull(w, keys, PER, vals, &(hps_opts){.width = SCALE_WIDTH}));
		for (size_t i = 0; !rc && i < (size_t)PER * SCALE_WIDTH; i++)
			if (vals[i] != 1.0f) {
				fprintf(stderr, "net_bench: key %llu holds %g after the scale, not 1\n",
					(unsigned long long)keys[i / SCALE_WIDTH], (double)vals[i]);
				rc = 1;
			}
	}
	if (vals)
		hps_free(w, vals);
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc;
}

/* Milliseconds since midnight of a log line's time (...THH:MM:SS.mmmZ
 * host=...), or -1. */
static double log_ms(const char *line)
{
	const char *z = strstr(line, "Z host=");
	unsigned h, m, s, ms;
	if (!z || z - line < 12 || sscanf(z - 12, "%2u:%2u:%2u.%3u", &h, &m, &s, &ms) != 4)
		return -1;
	return ((h * 60.0 + m) * 60.0 + s) * 1e3 + ms;
}

/* The scale case (see the head comment); thr: zmq_thr's MB/s of this run. */
static int run_scale(double thr)
{
	char dir[64], cmd[9000], self[4096], hps[4200], log[96];
	snprintf(dir, sizeof dir, "/tmp/net_bench.%d.scale", (int)getpid());
	snprintf(log, sizeof log, "/tmp/net_bench.%d.log", (int)getpid());
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	hps_path(hps, sizeof hps);
	snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir %s && printf '%sa 1 0 " ADDR_A "\n%sb 0 1 " ADDR_B "\n' > %s/hosts",
		 dir, dir, ns, ns, dir);
	if (sh_cmd(cmd))
		return 1;
	snprintf(cmd, sizeof cmd,
		 "ip netns exec %sa env HPS_RSH='ip netns exec {name} sh -c' HPS_ROOT_URI=" ADDR_A
		 " HPS_ROOT_PORT=9610 HPS_HEAP_MB=64 %s launch --job nbs%d --max-servers 2 --hosts %s/hosts -- %s --scale-worker %s > %s 2>&1",
		 ns, hps, (int)getpid(), dir, self, dir, log);
	pid_t job = fork();
	if (job == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	char ready[128];
	snprintf(ready, sizeof ready, "%s/ready", dir);
	for (int t = 0; t < 120000 && access(ready, F_OK) != 0; t++)
		usleep(1000);
	snprintf(cmd, sizeof cmd, "ip netns exec %sb %s scale --job nbs%d --host %sb --servers 2 > %s/scale.out 2>&1", ns,
		 hps, (int)getpid(), ns, dir);
	int rc = access(ready, F_OK) != 0 || sh_cmd(cmd);
	snprintf(cmd, sizeof cmd, "touch %s/go", dir);
	sh_cmd(cmd);
	int st = 0;
	waitpid(job, &st, 0);
	rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	/* the source: "server 0 moved key range 1 (K keys, X MB in Y ms) to
	 * server 1", logged at its FINAL; the target: "server 1 serves key
	 * range 1 now: it took it from server 0 on another host (...)" */
	FILE *f = fopen(log, "r");
	double mb = 0, ms = 0, began = -1, served = -1;
	char line[2048];
	while (f && fgets(line, sizeof line, f)) {
		const char *at = strstr(line, " moved key range ");
		unsigned r, keys;
		double x, y;
		if (at && sscanf(at, " moved key range %u (%u keys, %lf MB in %lf ms)", &r, &keys, &x, &y) == 4) {
			mb += x, ms += y;
			began = log_ms(line) - y;
		}
		if (strstr(line, " now: it took it from server "))
			served = log_ms(line);
	}
	if (f)
		fclose(f);
	/* (the log's clock has milliseconds; a move across midnight is not timed) */
	double all_ms = began >= 0 && served >= began ? served - began : 0;
	if (rc || ms <= 0 || all_ms <= 0) {
		fprintf(stderr, "net_bench: the scale case failed\n");
		snprintf(cmd, sizeof cmd, "tail -20 %s >&2; cat %s/scale.out >&2", log, dir);
		sh_cmd(cmd);
		rc = 1;
	} else {
		double rate = mb / (all_ms / 1e3), source = mb / (ms / 1e3);
		printf("scale net2H move");
		print_fig(rate);
		printf(" - - - -\n");
		if (thr > 0)
			printf("# scale: %.1f MB in %.0f ms across hosts (BEGIN to the target serving it), %.0f%% of zmq_thr (%.1f MB/s); the source's BEGIN to its FINAL %.1f ms (%.0f MB/s, %.0f%%)\n",
			       mb, all_ms, 100 * rate / thr, thr, ms, source, 100 * source / thr);
	}
	fflush(stdout);
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, log);
	sh_cmd(cmd);
	return rc;
}

/* hosts: the hosts file (NULL: a one-host job of S servers and W workers
 * in namespace b); env: extra settings. */
static int run_config(const char *name, const char *hosts_text, uint32_t S, uint32_t W, const char *env,
		      const char *cases_arg)
{
	char file[64], hosts[64], cmd[9000], self[4096];
	snprintf(file, sizeof file, "/tmp/net_bench.%d", (int)getpid());
	snprintf(hosts, sizeof hosts, "/tmp/net_bench.%d.hosts", (int)getpid());
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	self[n > 0 ? n : 0] = 0;
	char hps[4200];
	hps_path(hps, sizeof hps);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, sizeof *sh))
		return 1;
	close(fd);
	if (hosts_text) {
		FILE *f = fopen(hosts, "w");
		fprintf(f, hosts_text, ns, ns);
		fclose(f);
		snprintf(cmd, sizeof cmd,
			 "ip netns exec %sa env HPS_RSH='ip netns exec {name} sh -c' HPS_ROOT_URI=" ADDR_A
			 " HPS_ROOT_PORT=9610 %s %s launch --hosts %s -- %s --net-worker %s %s > /tmp/net_bench.%d.log 2>&1",
			 ns, env, hps, hosts, self, file, cases_arg, (int)getpid());
	} else {
		snprintf(cmd, sizeof cmd,
			 "ip netns exec %sb env %s %s launch -s %u -w %u -- %s --net-worker %s %s > /tmp/net_bench.%d.log 2>&1",
			 ns, env, hps, S, W, self, file, cases_arg, (int)getpid());
	}
	int rc = system(cmd);
	if (rc) {
		snprintf(cmd, sizeof cmd, "tail -20 /tmp/net_bench.%d.log >&2", (int)getpid());
		sh_cmd(cmd);
	} else {
		fd = open(file, O_RDONLY);
		sh = mmap(NULL, sizeof *sh, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		report_config(name, W);
		report_cpu(name, W);
		munmap(sh, sizeof *sh);
	}
	snprintf(cmd, sizeof cmd, "rm -f %s %s /tmp/net_bench.%d.log", file, hosts, (int)getpid());
	sh_cmd(cmd);
	return rc != 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--zmq-rep") == 0)
		return zmq_rep(), 0;
	if (argc >= 2 && strcmp(argv[1], "--zmq-req") == 0)
		return zmq_req(), 0;
	if (argc >= 2 && strcmp(argv[1], "--zmq-pull") == 0)
		return zmq_pull(), 0;
	if (argc >= 2 && strcmp(argv[1], "--zmq-push") == 0)
		return zmq_push(), 0;
	if (argc >= 3 && strcmp(argv[1], "--scale-worker") == 0)
		return scale_worker(argv[2]);
	int ns_only = argc == 2 && strcmp(argv[1], "--namespaces-only") == 0;
	int want_rtt = argc == 1, want_thr = argc == 1, any = argc == 1, want_scale = 0;
	char cases_arg[256] = "";
	if (argc == 1) {
		snprintf(cases_arg, sizeof cases_arg, "lat sparse1k dense4M");
	}
	int first = 1;
	if (argc >= 3 && strcmp(argv[1], "--net-worker") == 0)
		first = 3;
	if (ns_only)
		first = argc;
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "zmq_rtt") == 0) {
			want_rtt = 1;
			continue;
		}
		if (strcmp(argv[i], "zmq_thr") == 0) {
			want_thr = 1;
			continue;
		}
		if (strcmp(argv[i], "scale") == 0) { /* with zmq_thr of the same run */
			want_scale = want_thr = 1;
			continue;
		}
		size_t ci;
		for (ci = 0; ci < NCASES && strcmp(argv[i], cases[ci].name); ci++)
			;
		if (ci == NCASES) {
			fprintf(stderr, "net_bench: unknown case '%s'\n", argv[i]);
			return 2;
		}
		selected[ci] = any = 1;
		strncat(cases_arg, argv[i], sizeof cases_arg - strlen(cases_arg) - 2);
		strcat(cases_arg, " ");
	}
	if (argc == 1)
		for (size_t ci = 0; ci < NCASES; ci++)
			selected[ci] = strstr(cases_arg, cases[ci].name) && strcmp(cases[ci].name, "dense4M_8k");
	if (first == 3)
		return net_worker(argv[2]);
	if (geteuid() != 0) {
		fprintf(stderr, "net_bench: needs root for network namespaces\n");
		return 2;
	}
	snprintf(ns, sizeof ns, "nb%d", (int)(getpid() % 100000));
	cleanup_on_signals();
	ns_down();
	if (ns_up()) {
		ns_down();
		fprintf(stderr, "net_bench: cannot build the namespaces\n");
		return 1;
	}
	if (ns_only) {
		printf("namespaces %sa %sb up\n", ns, ns);
		fflush(stdout);
		for (;;)
			pause(); /* until a signal: on_fatal removes them */
	}
	printf("# case config phase MB/s keys/s ops/s p50_us p99_us\n");
	fflush(stdout);
	if (want_rtt)
		baseline("--zmq-rep", "--zmq-req");
	char thr_file[64];
	snprintf(thr_file, sizeof thr_file, "/tmp/net_bench.%d.thr", (int)getpid());
	setenv("NET_BENCH_THR", thr_file, 1);
	if (want_thr)
		baseline("--zmq-pull", "--zmq-push");
	int rc = 0;
	if (want_scale) {
		double thr = 0;
		FILE *f = fopen(thr_file, "r");
		if (!f || fscanf(f, "%lf", &thr) != 1)
			thr = 0;
		if (f)
			fclose(f);
		rc |= run_scale(thr);
	}
	unlink(thr_file);
	if (any) {
		rc |= run_config("net1S1W", "%sa 1 0 " ADDR_A "\n%sb 0 1 " ADDR_B "\n", 1, 1, "", cases_arg);
		/* the same under CURVE, right after it: the cost of encryption */
		char hps[4200], keys[64], cmd[4400], env[128];
		hps_path(hps, sizeof hps);
		snprintf(keys, sizeof keys, "/tmp/net_bench.%d.keys", (int)getpid());
		snprintf(cmd, sizeof cmd, "%s keygen %s > /dev/null", hps, keys);
		snprintf(env, sizeof env, "HPS_CURVE=%s", keys);
		if (sh_cmd(cmd) == 0)
			rc |= run_config("netcurve1S1W", "%sa 1 0 " ADDR_A "\n%sb 0 1 " ADDR_B "\n", 1, 1, env,
					 argc == 1 ? "lat dense4M" : cases_arg);
		else
			rc = 1;
		rc |= run_config("net2S2W", "%sa 2 0 " ADDR_A "\n%sb 0 2 " ADDR_B "\n", 2, 2, "", cases_arg);
		/* local traffic of a job that spans hosts: the worker's keys all
		 * belong to the server beside it (server 0, on the other host,
		 * owns only key 0), against the same job on one host */
		const char *ranges = "HPS_KEY_RANGES=0-0,1-18446744073709551615";
		rc |= run_config("mixed_local", "%sa 1 0 " ADDR_A "\n%sb 1 1 " ADDR_B "\n", 2, 1, ranges, cases_arg);
		rc |= run_config("host_local", NULL, 2, 1, ranges, cases_arg);
	}
	ns_down();
	return rc;
}
