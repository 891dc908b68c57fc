/* `hps launch --hosts` through a real ssh: an sshd of Debian's
 * openssh-server on 127.0.0.1, started by this test on a free port with a
 * host key and a client key made in a temporary directory, stands for the
 * remote hosts; two hosts of the file share its address. The suite skips
 * (77) only where openssh-server is not installed; an sshd that cannot
 * run is a failure. sshd, the job and the directory are removed on every
 * exit path (signals too).
 *
 * The test binary is also the job's worker (`--ssh-worker MODE ARG`). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/bell.h"
#include "tests/harness.h"

#define SSHD "/usr/sbin/sshd"
#define NKEYS 100

static char dir[64];      /* the temporary directory; "" once removed */
static pid_t sshd_pid;
static int made_privsep;  /* this test made /run/sshd */
static int ssh_port;
static char self_path[4096], hps_path[4096];
static char out[1 << 16];

/* ---- the worker program ------------------------------------------------- */

/* sums: every worker pushes rank+1 to NKEYS keys; after a barrier each
 * checks the exact sums and prints what it saw of its start. wait: prints
 * a line and waits to be stopped. */
static int ssh_worker(const char *mode, const char *arg)
{
	if (strcmp(mode, "wait") == 0) {
		printf("waiting\n");
		for (;;)
			pause();
	}
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	static uint64_t keys[NKEYS];
	static float vals[NKEYS], got[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 977, vals[k] = (float)(me + 1);
	if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL))) || (rc = hps_barrier(ctx)) ||
	    (rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL)))) {
		fprintf(stderr, "worker %d: %s\n", me, hps_strerror(rc));
		return 1;
	}
	for (int k = 0; k < NKEYS; k++)
		if (got[k] != (float)(nw * (nw + 1) / 2)) {
			fprintf(stderr, "worker %d: key %d holds %g\n", me, k, got[k]);
			return 1;
		}
	char cwd[4096];
	const char *var = getenv("SSH_TEST_VAR"), *hidden = getenv("SSH_TEST_HIDDEN"), *set = getenv("SSH_TEST_SET");
	printf("rank %d on %s: sums ok, var=[%s] set=[%s] hidden=[%s] arg=[%s] cwd=[%s]\n", me, getenv("HPS_HOST"),
	       var ? var : "", set ? set : "", hidden ? hidden : "", arg, getcwd(cwd, sizeof cwd) ? cwd : "?");
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

/* ---- sshd and the temporary directory ----------------------------------- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void teardown(void)
{
	if (sshd_pid > 0) {
		kill(sshd_pid, SIGTERM);
		if (wait_exit(sshd_pid, 5000) == -1)
			kill(sshd_pid, SIGKILL);
		sshd_pid = 0;
	}
	if (dir[0]) {
		sh("rm -rf %s", dir);
		dir[0] = 0;
	}
	if (made_privsep) {
		rmdir("/run/sshd");
		made_privsep = 0;
	}
}

static void on_fatal(int sig)
{
	teardown();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -1;
	if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (s >= 0)
		close(s);
	return port;
}

static int port_open(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
	if (s >= 0)
		close(s);
	return ok;
}

/* Keys, config and sshd -D on a free port; 0 when it accepts connections. */
static int sshd_up(void)
{
	if (access("/run/sshd", F_OK) != 0) { /* its privilege separation directory */
		if (mkdir("/run/sshd", 0755) != 0) {
			fprintf(stderr, "cannot make /run/sshd: %s\n", strerror(errno));
			return -1;
		}
		made_privsep = 1;
	}
	if (sh("ssh-keygen -q -t ed25519 -N '' -f %s/host_key && ssh-keygen -q -t ed25519 -N '' -f %s/client_key && "
	       "cp %s/client_key.pub %s/authorized_keys",
	       dir, dir, dir, dir))
		return -1;
	ssh_port = free_port();
	char cfg[300];
	snprintf(cfg, sizeof cfg, "%s/sshd_config", dir);
	FILE *f = fopen(cfg, "w");
	if (!f || ssh_port < 0)
		return -1;
	fprintf(f, "Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_key\nPidFile none\n"
		   "AuthorizedKeysFile %s/authorized_keys\nUsePAM no\nPermitRootLogin prohibit-password\n"
		   "StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n",
		ssh_port, dir, dir);
	fclose(f);
	char log[300];
	snprintf(log, sizeof log, "%s/sshd.log", dir);
	sshd_pid = fork();
	if (sshd_pid == 0) {
		setpgid(0, 0);
		execl(SSHD, SSHD, "-D", "-f", cfg, "-E", log, (char *)NULL);
		_exit(127);
	}
	for (int t = 0; t < 500; t++) {
		if (port_open(ssh_port))
			return 0;
		if (waitpid(sshd_pid, NULL, WNOHANG) == sshd_pid) {
			sshd_pid = 0;
			break;
		}
		usleep(10000);
	}
	sh("cat %s >&2", log);
	return -1;
}

/* ---- running the launcher ------------------------------------------------ */

/* Starts a shell command with stdout and stderr into a pipe. */
static pid_t start(int *fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static pid_t start(int *fd, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*fd = p[0];
	return pid;
}

/* Reads fd into `out` until it ends or `until` appears (NULL: the end)
 * or ms pass; returns whether that happened. */
static size_t used;
static int read_until(int fd, const char *until, int ms)
{
	int64_t end = hpsi_now_ns() + (int64_t)ms * 1000000;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (hpsi_now_ns() < end) {
		if (until && strstr(out, until))
			return 1;
		ssize_t n = read(fd, out + used, sizeof out - 1 - used);
		if (n > 0) {
			used += (size_t)n;
			out[used] = 0;
		} else if (n == 0) {
			return until ? strstr(out, until) != NULL : 1;
		} else {
			usleep(5000);
		}
	}
	return 0;
}

static const char *env_pass = ""; /* --env options for the sanitizers' settings */

/* The settings of every job here: ssh to 127.0.0.1 on the test's port. */
static void job_env_ssh(char *env, size_t cap, int root_port)
{
	/* a sanitizer build's settings (suppressions) reach the hosts as a
	 * user's own variables would: ssh starts them with a fresh environment */
	static char pass[128];
	static const char *const san[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"};
	pass[0] = 0;
	for (int i = 0; i < 4; i++)
		if (getenv(san[i]))
			snprintf(pass + strlen(pass), sizeof pass - strlen(pass), " --env %s", san[i]);
	snprintf(env, cap,
		 "HPS_RSH='ssh -p %d -i %s/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
		 "-o BatchMode=yes -o LogLevel=ERROR {host}' HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_HEAP_MB=16 "
		 "HPS_RING_KB=256 HPS_HEARTBEAT_MS=100 HPS_DEAD_MS=2000",
		 ssh_port, dir, root_port);
	env_pass = pass;
}

static int count(const char *s, const char *what)
{
	int n = 0;
	for (const char *x = s; (x = strstr(x, what)); x++)
		n++;
	return n;
}

/* Two hosts on 127.0.0.1 whose names resolve nowhere, listed zeta before
 * alpha; the program by a path relative to the launch directory, a
 * variable passed with --env NAME and one set with --env NAME=VALUE (and
 * one not passed), an argument with a space and quotes. */
static void test_ssh_two_hosts_sums(void)
{
	char env[1024], want[1024];
	job_env_ssh(env, sizeof env, free_port());
	int fd;
	used = 0, out[0] = 0;
	pid_t p = start(&fd, "cd %s/work && SSH_TEST_VAR='a b $HOME \"q\"' SSH_TEST_HIDDEN=1 %s %s launch --hosts hosts "
			     "--env SSH_TEST_VAR --env SSH_TEST_SET='set here'%s -- ./worker --ssh-worker sums \"two words 'x'\"",
			dir, env, hps_path, env_pass);
	read_until(fd, NULL, 60000);
	int rc = wait_exit(p, 5000);
	if (rc == -1)
		kill(-p, SIGKILL);
	close(fd);
	if (rc)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_EQUAL(rc, 0);
	/* ranks in the file's order: zeta holds worker 0 though alpha sorts first */
	static const char *const names[] = {"zeta", "alpha"};
	for (int r = 0; r < 2; r++) {
		snprintf(want, sizeof want,
			 "[%s] [worker %d] rank %d on %s: sums ok, var=[a b $HOME \"q\"] set=[set here] hidden=[] arg=[two words 'x'] "
			 "cwd=[%s/work]\n",
			 names[r], r, r, names[r], dir);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
		if (!strstr(out, want))
			fprintf(stderr, "wanted: %s", want);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps: job hps"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " on 2 hosts (zeta,alpha): 2 servers, 2 workers\n"));
}

/* SIGINT to the launcher: every host stops its part (each says so, and
 * that line arrives), the launcher exits 130, nothing stays behind. */
static void test_ssh_interrupt_stops_hosts(void)
{
	char env[1024];
	job_env_ssh(env, sizeof env, free_port());
	int fd;
	used = 0, out[0] = 0;
	pid_t p = start(&fd, "cd %s/work && exec env %s %s launch --job sshstop --hosts hosts%s -- ./worker --ssh-worker wait x",
			dir, env, hps_path, env_pass);
	int ok = 1;
	for (int t = 0; t < 300 && count(out, "] waiting") < 2; t++)
		read_until(fd, "never printed", 100);
	if (count(out, "] waiting") != 2)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_EQUAL(count(out, "] waiting"), 2);
	kill(p, SIGINT);
	read_until(fd, NULL, 30000);
	int rc = wait_exit(p, 5000);
	if (rc == -1)
		kill(-p, SIGKILL), ok = 0;
	close(fd);
	if (rc != 128 + SIGINT)
		fprintf(stderr, "%s\n", out);
	CU_ASSERT(ok);
	CU_ASSERT_EQUAL(rc, 128 + SIGINT);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[zeta] hps launch: got signal 15, stopping the job"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[alpha] hps launch: got signal 15, stopping the job"));
	/* the remote launchers removed their segments as they ended */
	const char *shm = getenv("HPS_SHM_DIR");
	CU_ASSERT_EQUAL(sh("ls %s | grep -q '^hps\\.sshstop\\.'", shm ? shm : "/dev/shm"), 1);
}

/* The launch directory does not exist where the remote command runs (a
 * remote shell that hides it in a mount namespace of its own): the host
 * says so and the job fails. A remote shell with an open quote is refused
 * before anything starts. */
static void test_ssh_missing_directory_and_bad_rsh(void)
{
	sh("mkdir -p %s/hidden/work && cp %s/work/hosts %s/hidden/work/", dir, dir, dir);
	int fd;
	used = 0, out[0] = 0;
	pid_t p = start(&fd, "cd %s/hidden/work && HPS_RSH=\"unshare --mount sh -c 'mount -t tmpfs none %s/hidden && "
			     "eval \\\"\\$0\\\"'\" HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_REGISTER_MS=3000 %s launch "
			     "--hosts hosts -- ./worker --ssh-worker sums x",
			dir, dir, free_port(), hps_path);
	read_until(fd, NULL, 30000);
	int rc = wait_exit(p, 5000);
	if (rc == -1)
		kill(-p, SIGKILL);
	close(fd);
	char want[300];
	snprintf(want, sizeof want, "hps launch: host zeta has no directory %s/hidden/work: remote commands start in", dir);
	if (rc != 2 || !strstr(out, want))
		fprintf(stderr, "%s\n", out);
	CU_ASSERT_EQUAL(rc, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, want));

	used = 0, out[0] = 0;
	p = start(&fd, "cd %s/work && HPS_RSH='ssh \"{host}' %s launch --hosts hosts -- true", dir, hps_path);
	read_until(fd, NULL, 10000);
	CU_ASSERT_EQUAL(wait_exit(p, 5000), 2);
	close(fd);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_RSH='ssh \"{host}': a quote or backslash is not closed"));
	used = 0, out[0] = 0;
	p = start(&fd, "cd %s/work && %s launch --hosts hosts --env SSH_TEST_UNSET_VAR -- true", dir, hps_path);
	read_until(fd, NULL, 10000);
	CU_ASSERT_EQUAL(wait_exit(p, 5000), 2);
	close(fd);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--env SSH_TEST_UNSET_VAR: SSH_TEST_UNSET_VAR is not set here"));
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--ssh-worker") == 0)
		return ssh_worker(argv[2], argv[3]);
	if (access(SSHD, X_OK) != 0 || system("command -v ssh ssh-keygen >/dev/null") != 0) {
		printf("test_ssh: skipped: openssh-server and openssh-client are not installed (make deps)\n");
		return 77;
	}
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	if (!realpath(hps_bin(), hps_path)) {
		fprintf(stderr, "test_ssh: no %s\n", hps_bin());
		return 1;
	}
	unsetenv("SSH_TEST_UNSET_VAR");
	snprintf(dir, sizeof dir, "/tmp/hps-ssh-XXXXXX");
	if (!mkdtemp(dir)) {
		dir[0] = 0;
		return 1;
	}
	signal(SIGINT, on_fatal);
	signal(SIGTERM, on_fatal);
	signal(SIGABRT, on_fatal);
	signal(SIGSEGV, on_fatal);
	atexit(teardown);
	if (sshd_up() != 0) {
		fprintf(stderr, "test_ssh: sshd (openssh-server) did not start on 127.0.0.1\n");
		return 1;
	}
	/* the launch directory: the worker and the hosts file */
	if (sh("mkdir -p %s/work && ln -sf %s %s/work/worker && printf 'zeta 1 1 127.0.0.1\\nalpha 1 1 127.0.0.1\\n' > "
	       "%s/work/hosts",
	       dir, self_path, dir, dir))
		return 1;
	static const struct test_case cases[] = {
		{"test_ssh_two_hosts_sums", test_ssh_two_hosts_sums},
		{"test_ssh_interrupt_stops_hosts", test_ssh_interrupt_stops_hosts},
		{"test_ssh_missing_directory_and_bad_rsh", test_ssh_missing_directory_and_bad_rsh},
		{NULL, NULL},
	};
	int rc = run_suite("ssh", cases);
	teardown();
	return rc;
}
