/* `hps launch --hosts FILE`: a whole multi-host job from one command.
 *
 * FILE has one line per host: `NAME SERVERS WORKERS [ADDRESS]` (blank
 * lines and # comments allowed). This process runs the scheduler, and on
 * every host runs `hps launch` through the remote shell HPS_RSH (default
 * "ssh -o BatchMode=yes {host}"; {host} is replaced by NAME and the
 * command follows as one shell-quoted argument, so "ip netns exec {host}
 * sh -c" works as well), with the job's settings passed along. Lines are
 * prefixed with the host's name; the first host to fail stops the job. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/cluster/launch.h"
#include "runtime/cluster/outpipe.h"
#include "shm/bell.h"
#include "shm/segment.h"

#define MAX_HOSTS 64

struct host_line {
	char name[HPSI_NAME_MAX];
	char addr[96];
	unsigned servers, workers;
};

struct proc {
	pid_t pid;
	int running, status;
	struct hpsi_outpipe out;
};

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

static int read_hosts(const char *file, struct host_line *h, int *n)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "hps launch: --hosts %s: %s\n", file, strerror(errno));
		return -1;
	}
	char line[512];
	int lineno = 0;
	*n = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char name[256], addr[256] = "", extra[8];
		int srv, wrk;
		int k = sscanf(line, "%255s %d %d %255s %7s", name, &srv, &wrk, addr, extra);
		if (k <= 0)
			continue;
		if (k < 3 || k > 4 || srv < 0 || wrk < 0 || srv + wrk == 0 || strlen(name) >= HPSI_NAME_MAX ||
		    strlen(addr) >= sizeof h->addr || strchr(name, '/') || *n == MAX_HOSTS) {
			fprintf(stderr, "hps launch: %s:%d: expected `NAME SERVERS WORKERS [ADDRESS]` with counts >= 0, not both 0 (at most %d hosts)\n",
				file, lineno, MAX_HOSTS);
			fclose(f);
			return -1;
		}
		for (int i = 0; i < *n; i++)
			if (strcmp(h[i].name, name) == 0) {
				fprintf(stderr, "hps launch: %s:%d: host %s appears twice\n", file, lineno, name);
				fclose(f);
				return -1;
			}
		struct host_line *e = &h[(*n)++];
		memcpy(e->name, name, strlen(name) + 1); /* lengths checked above */
		memcpy(e->addr, addr, strlen(addr) + 1);
		e->servers = (unsigned)srv, e->workers = (unsigned)wrk;
	}
	fclose(f);
	if (*n == 0) {
		fprintf(stderr, "hps launch: %s lists no hosts\n", file);
		return -1;
	}
	return 0;
}

/* Appends s to the command line, single-quoted for a POSIX shell. */
static void quote(char *out, size_t cap, const char *s)
{
	size_t n = strlen(out);
	if (n + 1 < cap)
		out[n++] = '\'';
	for (; *s && n + 5 < cap; s++) {
		if (*s == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			out[n++] = *s;
		}
	}
	if (n + 2 < cap)
		out[n++] = '\'', out[n++] = ' ';
	out[n] = 0;
}

static int spawn(struct proc *p, char **argv)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	p->pid = pid, p->out.fd = fds[0], p->running = 1;
	return 0;
}

/* The remote command of host h: env SETTINGS hps launch ... -- PROGRAM. */
static void remote_command(char *cmd, size_t cap, const char *self, const struct host_line *h, int argc, char **argv,
			   int prog)
{
	extern char **environ;
	cmd[0] = 0;
	quote(cmd, cap, "env");
	for (char **e = environ; *e; e++)
		if ((strncmp(*e, "HPS_", 4) == 0 || strncmp(*e, "DMLC_", 5) == 0) && strncmp(*e, "HPS_HOST=", 9) &&
		    strncmp(*e, "HPS_NODE_ADDR=", 14) && strncmp(*e, "HPS_LOCAL_", 10))
			quote(cmd, cap, *e);
	char kv[256];
	snprintf(kv, sizeof kv, "HPS_HOST=%s", h->name);
	quote(cmd, cap, kv);
	if (h->addr[0]) {
		snprintf(kv, sizeof kv, "HPS_NODE_ADDR=%s", h->addr);
		quote(cmd, cap, kv);
	}
	quote(cmd, cap, self);
	quote(cmd, cap, "launch");
	snprintf(kv, sizeof kv, "%u", h->servers);
	quote(cmd, cap, "--local-servers");
	quote(cmd, cap, kv);
	snprintf(kv, sizeof kv, "%u", h->workers);
	quote(cmd, cap, "--local-workers");
	quote(cmd, cap, kv);
	for (int i = 1; i < prog; i++) /* the launch options, minus --hosts FILE */
		if (strcmp(argv[i], "--hosts") == 0)
			i++;
		else if (strcmp(argv[i], "--"))
			quote(cmd, cap, argv[i]);
	quote(cmd, cap, "--");
	for (int i = prog; i < argc; i++)
		quote(cmd, cap, argv[i]);
}

/* Settings are checked here, before the scheduler or any host starts. */
static int check_settings(char **argv, int prog)
{
	int self_serve = 0;
	for (int i = 1; i < prog; i++)
		self_serve |= strcmp(argv[i], "--self-serve") == 0;
	struct hpsi_config cfg;
	return hpsi_launch_check_settings(&cfg, self_serve, 0);
}

int hpsi_launch_hosts(const char *file, int argc, char **argv, int prog)
{
	static struct host_line hosts[MAX_HOSTS];
	static struct proc procs[MAX_HOSTS + 1];
	int n;
	if (read_hosts(file, hosts, &n))
		return 2;
	unsigned srv = 0, wrk = 0;
	for (int i = 0; i < n; i++)
		srv += hosts[i].servers, wrk += hosts[i].workers;
	if (srv == 0 || wrk == 0 || srv + wrk > HPSI_MAX_NODES) {
		fprintf(stderr, "hps launch: %s: the job needs 1 to %d processes with at least one server and one worker\n",
			file, HPSI_MAX_NODES);
		return 2;
	}
	char num[32];
	snprintf(num, sizeof num, "%u", srv);
	setenv("HPS_NUM_SERVERS", num, 1);
	snprintf(num, sizeof num, "%u", wrk);
	setenv("HPS_NUM_WORKERS", num, 1);
	if (!hpsi_setting("ROOT_URI")) {
		char me[256];
		if (gethostname(me, sizeof me) != 0)
			snprintf(me, sizeof me, "localhost");
		setenv("HPS_ROOT_URI", me, 1);
	}
	if (!hpsi_setting("ROOT_PORT"))
		setenv("HPS_ROOT_PORT", "9091", 1);
	if (check_settings(argv, prog))
		return 2;
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	self[sl > 0 ? sl : 0] = 0;
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct proc *sched = &procs[n];
	snprintf(sched->out.tag, sizeof sched->out.tag, "[scheduler] ");
	char *sargv[] = {self, "scheduler", NULL};
	if (spawn(sched, sargv) != 0) {
		fprintf(stderr, "hps launch: cannot start the scheduler: %s\n", strerror(errno));
		return 1;
	}
	const char *rsh = getenv("HPS_RSH");
	if (!rsh || !*rsh)
		rsh = "ssh -o BatchMode=yes {host}";
	for (int i = 0; i < n; i++) {
		static char cmd[65536];
		remote_command(cmd, sizeof cmd, self, &hosts[i], argc, argv, prog);
		char words[1024], *args[64];
		int k = 0;
		snprintf(words, sizeof words, "%s", rsh);
		for (char *t = strtok(words, " "); t && k < 62; t = strtok(NULL, " "))
			args[k++] = strcmp(t, "{host}") == 0 ? hosts[i].name : t;
		args[k++] = cmd;
		args[k] = NULL;
		snprintf(procs[i].out.tag, sizeof procs[i].out.tag, "[%s] ", hosts[i].name);
		if (spawn(&procs[i], args) != 0) {
			fprintf(stderr, "hps launch: cannot start host %s: %s\n", hosts[i].name, strerror(errno));
			got_signal = SIGTERM;
			break;
		}
	}
	int keep_going = 0;
	for (int i = 1; i < prog; i++)
		keep_going |= strcmp(argv[i], "--keep-going") == 0;
	int code = 0, left = n, stopping = 0;
	int64_t kill_at = INT64_MAX;
	for (;;) {
		struct pollfd pf[MAX_HOSTS + 1];
		int map[MAX_HOSTS + 1], np = 0, running = 0;
		for (int i = 0; i <= n; i++) {
			running += procs[i].running;
			if (procs[i].out.fd >= 0 && procs[i].pid)
				pf[np] = (struct pollfd){.fd = procs[i].out.fd, .events = POLLIN}, map[np++] = i;
		}
		if (!running && np == 0)
			break;
		if (poll(pf, (nfds_t)np, 50) > 0)
			for (int k = 0; k < np; k++)
				if (pf[k].revents)
					hpsi_outpipe_pump(&procs[map[k]].out);
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (int i = 0; i <= n; i++) {
				if (procs[i].pid != pid || !procs[i].running)
					continue;
				procs[i].running = 0;
				int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
				if (i < n)
					left--;
				if (!ok && !stopping) {
					fprintf(stderr, "hps launch: %s%s with status %d\n", i < n ? "host " : "the scheduler ",
						i < n ? hosts[i].name : "ended", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
					code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
					if (!keep_going || i == n) /* --keep-going: the other hosts go on */
						got_signal = got_signal ? got_signal : -1;
				}
			}
		if (got_signal && !stopping) {
			if (got_signal > 0) {
				fprintf(stderr, "hps launch: got signal %d, stopping the job\n", (int)got_signal);
				code = 128 + got_signal;
			}
			for (int i = 0; i <= n; i++)
				if (procs[i].running)
					kill(-procs[i].pid, SIGTERM);
			stopping = 1;
			kill_at = hpsi_now_ns() + 5000000000ll;
		}
		if (left == 0 && sched->running && !stopping) { /* every host is done */
			kill(-sched->pid, SIGTERM);
			stopping = 1;
			kill_at = hpsi_now_ns() + 5000000000ll;
		}
		if (stopping && hpsi_now_ns() > kill_at) {
			for (int i = 0; i <= n; i++)
				if (procs[i].running)
					kill(-procs[i].pid, SIGKILL);
			kill_at = INT64_MAX;
		}
	}
	return code;
}
