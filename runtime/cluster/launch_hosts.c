/* `hps launch --hosts FILE`: a whole multi-host job from one command.
 *
 * FILE has one line per host: `NAME SERVERS WORKERS [ADDRESS]` (blank
 * lines and # comments allowed). This process runs the scheduler (ranking
 * hosts in the file's order), and on every host runs `hps launch` through
 * the remote shell HPS_RSH (default "ssh -o BatchMode=yes {host}"; {host}
 * is ADDRESS, {name} NAME; remote.c makes the command: it starts in the
 * launch directory, with the job's settings). Lines are prefixed with the
 * host's name; the first host to fail stops the job: each host is asked
 * through its standard input, so that it stops its processes and passes on
 * what they printed, and is killed only if it does not end in time. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/cluster/join_host.h"
#include "runtime/cluster/launch.h"
#include "runtime/cluster/outpipe.h"
#include "runtime/cluster/remote.h"
#include "shm/bell.h"
#include "shm/place.h"
#include "shm/segment.h"

#define MAX_HOSTS 64

struct host_line {
	char name[HPSI_NAME_MAX];
	char addr[96];
	unsigned servers, workers;
	int later; /* `later`: joins the running job (the last line, 0 0) */
};

struct proc {
	pid_t pid;
	int running, status;
	int in; /* the write end of its standard input, or -1 */
	struct hpsi_outpipe out;
};

static volatile sig_atomic_t got_signal, got_join;
static void on_signal(int sig) { got_signal = sig; }
static void on_join(int sig) { (void)sig; got_join = 1; }

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
		char name[256], addr[256] = "", extra[8] = "", more[8];
		int srv, wrk;
		int k = sscanf(line, "%255s %d %d %255s %7s %7s", name, &srv, &wrk, addr, extra, more);
		if (k <= 0)
			continue;
		int later = k == 5 && strcmp(extra, "later") == 0;
		if (k < 3 || k > 5 || (k == 5 && !later) || srv < 0 || wrk < 0 || (srv + wrk == 0 && !later) ||
		    strlen(name) >= HPSI_NAME_MAX || strlen(addr) >= sizeof h->addr || strchr(name, '/') ||
		    *n == MAX_HOSTS) {
			fprintf(stderr, "hps launch: %s:%d: expected `NAME SERVERS WORKERS [ADDRESS [later]]` with counts >= 0, not both 0 (at most %d hosts)\n",
				file, lineno, MAX_HOSTS);
			fclose(f);
			return -1;
		}
		if (later && srv + wrk) {
			fprintf(stderr, "hps launch: %s:%d: host %s joins later: it brings 0 servers and 0 workers, its part is the job's room (--max-workers, --max-servers)\n",
				file, lineno, name);
			fclose(f);
			return -1;
		}
		if (*n && h[*n - 1].later) {
			fprintf(stderr, "hps launch: %s:%d: only the last host joins later (the host of the job's room), not %s\n",
				file, lineno - 1, h[*n - 1].name);
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
		e->later = later;
	}
	fclose(f);
	if (*n == 0) {
		fprintf(stderr, "hps launch: %s lists no hosts\n", file);
		return -1;
	}
	return 0;
}

static int spawn(struct proc *p, char **argv, int with_stdin)
{
	int out[2], in[2] = {-1, -1};
	if (hpsi_outpipe_open(&out[0], &out[1], 0) != 0)
		return -1;
	if (with_stdin && pipe2(in, O_CLOEXEC) != 0) {
		close(out[0]), close(out[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(out[0]), close(out[1]);
		if (in[0] >= 0)
			close(in[0]), close(in[1]);
		return -1;
	}
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], STDOUT_FILENO);
		dup2(out[1], STDERR_FILENO);
		if (in[0] >= 0)
			dup2(in[0], STDIN_FILENO);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (in[0] >= 0)
		close(in[0]);
	p->pid = pid, p->out.fd = out[0], p->in = in[1], p->running = 1;
	return 0;
}

/* Asks a host to stop its part: the remote script reads "stop" (or the
 * end of its input) and sends SIGTERM to that host's `hps launch`, which
 * stops its processes and passes on all they printed before it exits. */
static void stop_host(struct proc *p)
{
	if (p->in < 0)
		return;
	ssize_t rc = write(p->in, "stop\n", 5); /* a full pipe cannot be: nothing else is written */
	(void)rc;
	close(p->in);
	p->in = -1;
}

/* The command run on host h: sh -c SCRIPT hps DIR NAME env SETTINGS hps
 * launch --local-servers S --local-workers W OPTIONS -- PROGRAM ARGS. */
static void remote_command(struct hpsi_cmdline *cmd, const char *self, const char *dir, const struct host_line *h,
			   int argc, char **argv, int prog, char *const *extra, int nextra)
{
	extern char **environ;
	hpsi_cmdline_word(cmd, "sh");
	hpsi_cmdline_word(cmd, "-c");
	hpsi_cmdline_word(cmd, hpsi_remote_script);
	hpsi_cmdline_word(cmd, "hps");
	hpsi_cmdline_word(cmd, dir);
	hpsi_cmdline_word(cmd, h->name);
	hpsi_cmdline_word(cmd, "env");
	for (char **e = environ; *e; e++)
		if (hpsi_remote_passes(*e, extra, nextra))
			hpsi_cmdline_word(cmd, *e);
	char kv[256];
	snprintf(kv, sizeof kv, "HPS_HOST=%s", h->name);
	hpsi_cmdline_word(cmd, kv);
	if (h->addr[0]) {
		snprintf(kv, sizeof kv, "HPS_NODE_ADDR=%s", h->addr);
		hpsi_cmdline_word(cmd, kv);
	}
	hpsi_cmdline_word(cmd, self);
	hpsi_cmdline_word(cmd, "launch");
	snprintf(kv, sizeof kv, "%u", h->servers);
	hpsi_cmdline_word(cmd, "--local-servers");
	hpsi_cmdline_word(cmd, kv);
	snprintf(kv, sizeof kv, "%u", h->workers);
	hpsi_cmdline_word(cmd, "--local-workers");
	hpsi_cmdline_word(cmd, kv);
	for (int i = 1; i < prog; i++) /* the launch options, minus --hosts FILE and --env NAME */
		if (strcmp(argv[i], "--hosts") == 0 || strcmp(argv[i], "--env") == 0)
			i++;
		else if (strcmp(argv[i], "--"))
			hpsi_cmdline_word(cmd, argv[i]);
	hpsi_cmdline_word(cmd, "--");
	for (int i = prog; i < argc; i++)
		hpsi_cmdline_word(cmd, argv[i]);
}

/* Settings are checked here, before the scheduler or any host starts;
 * with replicas, that the hosts' servers can hold every key range's
 * replicas on distinct hosts (shm/place.h). */
static int check_settings(char **argv, int prog, const char *file, const struct host_line *h, int n)
{
	int self_serve = 0;
	for (int i = 1; i < prog; i++)
		self_serve |= strcmp(argv[i], "--self-serve") == 0;
	struct hpsi_config cfg;
	if (hpsi_launch_check_settings(&cfg, self_serve, 0))
		return -1;
	/* a host that joins later: its part is the room, which it must have
	 * (docs/ARCHITECTURE.md, "Hosts that leave and join") */
	if (h[n - 1].later && cfg.max_workers <= cfg.nworkers && cfg.max_servers <= cfg.nservers) {
		fprintf(stderr, "hps launch: %s: host %s joins later, but the job has no room for it (--max-workers, --max-servers)\n",
			file, h[n - 1].name);
		return -1;
	}
	uint32_t servers[MAX_HOSTS], host;
	for (int i = 0; i < n; i++)
		servers[i] = h[i].servers;
	if (hpsi_place_check(cfg.nservers, servers, (uint32_t)n, cfg.replicas, &host)) {
		char why[512];
		hpsi_place_why(why, sizeof why, h[host].name, servers[host], cfg.nservers, cfg.replicas);
		fprintf(stderr, "hps launch: %s: %s\n", file, why);
		return -1;
	}
	return 0;
}

/* --env NAME (or NAME=VALUE, set by parse_args already) in the launch
 * options: the names to pass besides the documented set. */
static int env_names(int prog, char **argv, char **names, int cap)
{
	int n = 0;
	for (int i = 1; i + 1 < prog; i++)
		if (strcmp(argv[i], "--hosts") == 0)
			i++;
		else if (strcmp(argv[i], "--env") == 0 && n < cap)
			names[n++] = argv[++i];
	return n;
}

/* The scheduler ranks hosts in the order of its --order list: the file's. */
static char *host_order(const struct host_line *h, int n)
{
	char *o = malloc((size_t)n * HPSI_NAME_MAX + 1);
	if (!o)
		return NULL;
	size_t w = 0;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(h[i].name); /* < HPSI_NAME_MAX (read_hosts) */
		if (i)
			o[w++] = ',';
		memcpy(o + w, h[i].name, l);
		w += l;
	}
	o[w] = 0;
	return o;
}

/* HPS_JOB_TOKEN: 128 random bits every host of this job gets (through
 * the remote command's environment) and the scheduler asks of each
 * registration, so that a stranger cannot take a host's place by guessing
 * its name and counts. It crosses the network in clear text: a job whose
 * network others can read needs HPS_CURVE. */
static int set_job_token(void)
{
	unsigned char r[16];
	char hex[33];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		fprintf(stderr, "hps launch: cannot make the job's token: %s\n", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	setenv("HPS_JOB_TOKEN", hex, 1);
	return 0;
}

/* Starts the host that joins later (on SIGUSR1 or hps scale --join-host):
 * the remote command made for it at the start, freed here, tried once. */
static int start_later(struct proc *p, const struct host_line *h, char ***rargv)
{
	snprintf(p->out.tag, sizeof p->out.tag, "[%.*s] ", HPSI_NAME_MAX, h->name);
	int rc = spawn(p, *rargv, 1);
	if (rc != 0)
		fprintf(stderr, "hps launch: cannot start host %s (%s): %s\n", h->name, (*rargv)[0], strerror(errno));
	else
		fprintf(stderr, "hps launch: host %s joins the job\n", h->name);
	hpsi_rsh_free(*rargv);
	*rargv = NULL;
	return rc;
}

/* One request of hps scale --join-host NAME (join_host.h), answered in
 * one line: the later host is started now, or why not. Returns 1 when it
 * was started. */
static int serve_join(int lfd, const char *job, struct proc *p, const struct host_line *h, char ***rargv, int waiting,
		      int start_failed, int stopping)
{
	char name[256];
	int c = hpsi_join_take(lfd, name, sizeof name);
	if (c < 0)
		return 0;
	if (!h->later)
		hpsi_join_answer(c, 0, "job %s has no host that joins later (no `later` line in its hosts file)", job);
	else if (strcmp(name, h->name) != 0)
		hpsi_join_answer(c, 0, "host %s is not the host of job %s that joins later; its hosts file marks %s", name,
				 job, h->name);
	else if (start_failed) /* tried once: its remote command is freed */
		hpsi_join_answer(c, 0, "host %s of job %s could not be started (see the launcher's output); it is not tried again",
				 name, job);
	else if (!waiting)
		hpsi_join_answer(c, 0, "host %s of job %s was started already (see the launcher's output)", name, job);
	else if (stopping)
		hpsi_join_answer(c, 0, "job %s is stopping", job);
	else if (start_later(p, h, rargv) != 0)
		hpsi_join_answer(c, 0, "cannot start host %s of job %s (see the launcher's output)", name, job);
	else {
		hpsi_join_answer(c, 1, "started");
		return 1;
	}
	return 0;
}

#define GRACE_NS 5000000000ll /* from "stop" to SIGTERM, and SIGTERM to SIGKILL */

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
	if (!hpsi_setting("JOB_TOKEN") && set_job_token())
		return 2;
	if (check_settings(argv, prog, file, hosts, n))
		return 2;
	char self[4096], dir[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	self[sl > 0 ? sl : 0] = 0;
	if (hpsi_launch_dir(dir, sizeof dir) != 0) {
		fprintf(stderr, "hps launch: cannot tell the launch directory: %s\n", strerror(errno));
		return 2;
	}
	char *extra[64];
	int nextra = env_names(prog, argv, extra, 64);
	const char *rsh = getenv("HPS_RSH");
	if (!rsh || !*rsh)
		rsh = "ssh -o BatchMode=yes {host}";
	static char **rargv[MAX_HOSTS];
	int built = 0;
	for (; built < n; built++) {
		struct hpsi_cmdline cmd = {0};
		remote_command(&cmd, self, dir, &hosts[built], argc, argv, prog, extra, nextra);
		rargv[built] = cmd.failed ? NULL : hpsi_rsh_argv(rsh, hosts[built].name, hosts[built].addr, cmd.p);
		hpsi_cmdline_free(&cmd);
		if (!rargv[built])
			break;
	}
	char *order = host_order(hosts, n);
	if (built < n || !order) {
		for (int i = 0; i < built; i++)
			hpsi_rsh_free(rargv[i]);
		free(order);
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	struct sigaction sj = {.sa_handler = on_join};
	sigemptyset(&sj.sa_mask);
	sigaction(SIGUSR1, &sj, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int i = 0; i <= n; i++)
		procs[i].in = -1, procs[i].out.fd = -1;
	struct proc *sched = &procs[n];
	snprintf(sched->out.tag, sizeof sched->out.tag, "[scheduler] ");
	int late = hosts[n - 1].later; /* started on SIGUSR1, not now */
	char *sargv[] = {self, "scheduler", "--order", order, late ? "--later" : NULL, hosts[n - 1].name, NULL};
	if (spawn(sched, sargv, 0) != 0) {
		fprintf(stderr, "hps launch: cannot start the scheduler: %s\n", strerror(errno));
		for (int i = 0; i < n; i++)
			hpsi_rsh_free(rargv[i]);
		free(order);
		return 1;
	}
	fprintf(stderr, "hps: job %s on %d host%s (%s): %u server%s, %u worker%s\n", hpsi_setting("JOB_ID"), n,
		n == 1 ? "" : "s", order, srv, srv == 1 ? "" : "s", wrk, wrk == 1 ? "" : "s");
	/* hps scale --join-host reaches this launcher here (join_host.h);
	 * SIGUSR1 works without it */
	const char *job = hpsi_setting("JOB_ID") ? hpsi_setting("JOB_ID") : "";
	int lfd = hpsi_join_listen(job);
	if (late && lfd < 0)
		fprintf(stderr, "hps launch: cannot take requests of hps scale --join-host for job %s: %s\n", job,
			errno == EADDRINUSE ? "another launcher of that job id runs here" : strerror(errno));
	if (late)
		fprintf(stderr, "hps launch: host %s joins later: `hps scale --job %s --join-host %s` here (or `kill -USR1 %d`) starts it\n",
			hosts[n - 1].name, job, hosts[n - 1].name, (int)getpid());
	int started = 0;
	for (; started < n - late && !got_signal; started++) {
		snprintf(procs[started].out.tag, sizeof procs[started].out.tag, "[%.*s] ", HPSI_NAME_MAX, hosts[started].name);
		if (spawn(&procs[started], rargv[started], 1) != 0) {
			fprintf(stderr, "hps launch: cannot start host %s (%s): %s\n", hosts[started].name, rargv[started][0],
				strerror(errno));
			got_signal = -1;
			break;
		}
	}
	for (int i = 0; i < n - late; i++)
		hpsi_rsh_free(rargv[i]);
	free(order);
	int keep_going = 0;
	for (int i = 1; i < prog; i++)
		keep_going |= strcmp(argv[i], "--keep-going") == 0;
	int code = got_signal < 0 ? 1 : 0, left = started, stopping = 0;
	int64_t term_at = INT64_MAX, kill_at = INT64_MAX, drain_until = INT64_MAX;
	for (;;) {
		struct pollfd pf[MAX_HOSTS + 2];
		int map[MAX_HOSTS + 2], np = 0, running = 0;
		for (int i = 0; i <= n; i++) {
			running += procs[i].running;
			if (procs[i].out.fd >= 0)
				pf[np] = (struct pollfd){.fd = procs[i].out.fd, .events = POLLIN}, map[np++] = i;
		}
		/* what the exited processes left unread (a remote shell that kept
		 * the output open would otherwise hold the launcher) */
		if (!running && (np == 0 || hpsi_now_ns() > drain_until))
			break;
		if (!running && drain_until == INT64_MAX)
			drain_until = hpsi_now_ns() + 2000000000ll;
		int nout = np;
		if (lfd >= 0 && running)
			pf[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		int join_asked = 0;
		if (poll(pf, (nfds_t)np, 50) > 0)
			for (int k = 0; k < np; k++) {
				if (k == nout)
					join_asked = pf[k].revents != 0;
				else if (pf[k].revents)
					hpsi_outpipe_pump(&procs[map[k]].out);
			}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (int i = 0; i <= n; i++) {
				if (procs[i].pid != pid || !procs[i].running)
					continue;
				procs[i].running = 0;
				stop_host(&procs[i]); /* its input is no longer needed */
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
		/* the later host waits while it was not tried (rargv[n - 1]
		 * kept); tried, it either runs (started) or failed to start */
		int waiting = late && started == n - 1 && rargv[n - 1];
		int start_failed = late && started == n - 1 && !rargv[n - 1];
		if (join_asked && serve_join(lfd, job, &procs[n - 1], &hosts[n - 1], &rargv[n - 1], waiting, start_failed,
					     stopping || got_signal))
			started++, left++;
		else if (got_join && waiting && !stopping && !got_signal &&
			 start_later(&procs[n - 1], &hosts[n - 1], &rargv[n - 1]) == 0)
			started++, left++;
		got_join = 0;
		int64_t now = hpsi_now_ns();
		if (got_signal && !stopping) {
			if (got_signal > 0) {
				fprintf(stderr, "hps launch: got signal %d, stopping the job\n", (int)got_signal);
				code = 128 + got_signal;
			}
			for (int i = 0; i < n; i++)
				stop_host(&procs[i]);
			stopping = 1;
			term_at = now + GRACE_NS;
		}
		if (left == 0 && sched->running && term_at > now) { /* every host is done */
			kill(-sched->pid, SIGTERM);
			stopping = 1;
			term_at = now, kill_at = now + GRACE_NS;
		}
		if (now > term_at && kill_at == INT64_MAX) { /* a host that did not stop when asked */
			for (int i = 0; i <= n; i++)
				if (procs[i].running)
					kill(-procs[i].pid, SIGTERM);
			kill_at = now + GRACE_NS;
		}
		if (now > kill_at) {
			for (int i = 0; i <= n; i++)
				if (procs[i].running)
					kill(-procs[i].pid, SIGKILL);
			kill_at = INT64_MAX - 1;
		}
	}
	if (late && rargv[n - 1]) /* it never joined */
		hpsi_rsh_free(rargv[n - 1]);
	if (lfd >= 0)
		close(lfd);
	return code;
}
