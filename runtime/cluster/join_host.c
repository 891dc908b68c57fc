/* hps scale --join-host: the request to the launcher of a job that spans
 * hosts, and its answer (join_host.h has the design). */
#include "runtime/cluster/join_host.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runtime/cluster/hosts_stats.h"
#include "runtime/cluster/launch.h"
#include "runtime/common/config.h"
#include "shm/bell.h"
#include "shm/liveness.h"

#define POLL_NS 20000000 /* how often the scheduler's view is read */

/* The abstract address of job's launcher: a leading NUL, no file. */
static socklen_t join_addr(struct sockaddr_un *a, const char *job)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "hps-join.%s", job);
	if (n < 0 || (size_t)n >= sizeof a->sun_path - 1)
		return 0;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

int hpsi_join_listen(const char *job)
{
	struct sockaddr_un a;
	socklen_t len = join_addr(&a, job);
	if (!len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, len) != 0 || listen(fd, 8) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int hpsi_join_connect(const char *job)
{
	struct sockaddr_un a;
	socklen_t len = join_addr(&a, job);
	int fd = len ? socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0) : -1;
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, len) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void hpsi_join_answer(int conn, int ok, const char *fmt, ...)
{
	char line[600];
	line[0] = ok ? '+' : '-';
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + 1, sizeof line - 1, fmt, ap);
	va_end(ap);
	size_t len = 1 + (n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2);
	/* the peer waits for it: a full buffer cannot be, and one that went
	 * away only loses its answer (no SIGPIPE) */
	ssize_t rc = send(conn, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)rc;
	close(conn);
}

int hpsi_join_take(int lfd, char *name, size_t cap)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (c < 0)
		return -1;
	/* the command sends the name right after connecting: a peer that
	 * does not holds the launcher one second at most; a signal
	 * meanwhile (SIGUSR1, SIGTERM: no SA_RESTART; its flag is seen by
	 * the launcher's loop after) does not lose the request (review: a
	 * blocking recv failed with EINTR). Read before any answer: a socket
	 * closed with its request unread resets the peer, which then loses
	 * the answer (test_join_host_other_user) */
	int64_t until = hpsi_now_ns() + 1000000000;
	ssize_t n;
	while ((n = recv(c, name, cap - 1, 0)) < 0 && (errno == EAGAIN || errno == EINTR)) {
		int64_t left_ms = (until - hpsi_now_ns()) / 1000000;
		if (left_ms <= 0)
			break;
		struct pollfd p = {.fd = c, .events = POLLIN};
		(void)poll(&p, 1, (int)left_ms);
	}
	if (n <= 0) {
		close(c);
		return -1;
	}
	name[n] = 0;
	struct ucred cr;
	socklen_t cl = sizeof cr;
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != getuid()) {
		hpsi_join_answer(c, 0, "the launcher of this job runs as another user");
		return -1;
	}
	return c;
}

/* No launcher of the job answers here: is some host group of it here? */
static int not_here(const char *job)
{
	struct hpsi_job_ref r;
	int n = hpsi_find_jobs(job, NULL, &r, 1);
	if (n > 0)
		fprintf(stderr, "hps scale: job %s runs here (host %s), but its `hps launch --hosts` does not: run hps scale --join-host on the host where it runs\n",
			job, r.host);
	else
		fprintf(stderr, "hps scale: no job %s was launched with --hosts on this host\n", job);
	return 1;
}

/* The scheduler's state of host name (hosts_stats.h), "" when not listed. */
static void host_state(const char *job, const char *name, char *state, size_t cap)
{
	static struct hpsi_host_row rows[HPSI_MAX_HOSTS];
	uint32_t n = hpsi_hosts_stats_read(job, rows, HPSI_MAX_HOSTS);
	state[0] = 0;
	for (uint32_t i = 0; i < n; i++)
		if (strcmp(rows[i].name, name) == 0)
			snprintf(state, cap, "%s", rows[i].state);
}

int hpsi_join_host_cmd(const char *name)
{
	const char *job = hpsi_setting("JOB_ID");
	struct hpsi_config cfg;
	if (!job || !*job) {
		fprintf(stderr, "hps scale: --join-host needs --job ID (the job of `hps launch --hosts`)\n");
		return 2;
	}
	if (!*name || strlen(name) >= HPSI_NAME_MAX) {
		fprintf(stderr, "hps scale: --join-host needs a host name of 1 to %d characters\n", HPSI_NAME_MAX - 1);
		return 2;
	}
	if (hpsi_config_load(&cfg, 0))
		return 1; /* it said which setting is wrong */
	int fd = hpsi_join_connect(job);
	if (fd < 0)
		return not_here(job);
	/* the launcher's pid (the process that listens), to tell it ended;
	 * abstract names are shared by every user of the network namespace,
	 * so one of another user is not the job's (review) */
	struct ucred cr = {0};
	socklen_t cl = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != getuid() || cr.pid <= 0) {
		close(fd);
		fprintf(stderr, "hps scale: the socket of job %s is another user's, not its launcher's\n", job);
		return 1;
	}
	uint64_t birth = hpsi_proc_birth(cr.pid);
	struct timeval tv = {.tv_sec = cfg.timeout_ms / 1000, .tv_usec = cfg.timeout_ms % 1000 * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char answer[601];
	ssize_t n = send(fd, name, strlen(name), MSG_NOSIGNAL) < 0 ? -1 : recv(fd, answer, sizeof answer - 1, 0);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "hps scale: the launcher of job %s did not answer (%s)\n", job,
			n < 0 ? strerror(errno) : "it closed");
		return 1;
	}
	answer[n] = 0;
	if (answer[0] != '+') {
		fprintf(stderr, "hps scale: %s\n", answer + 1);
		return 1;
	}
	/* started: the scheduler's view says when it registered */
	int64_t deadline = hpsi_now_ns() + cfg.timeout_ms * 1000000;
	char state[16];
	for (;;) {
		host_state(job, name, state, sizeof state);
		if (strcmp(state, "alive") == 0) {
			printf("job %s: host %s joined\n", job, name);
			return 0;
		}
		if (strcmp(state, "dead") == 0 || strcmp(state, "left") == 0) {
			fprintf(stderr, "hps scale: host %s of job %s is %s (see the launcher's output)\n", name, job, state);
			return 1;
		}
		if (!hpsi_proc_alive(cr.pid, birth)) {
			fprintf(stderr, "hps scale: job %s ended before host %s joined\n", job, name);
			return 1;
		}
		if (hpsi_now_ns() > deadline) {
			fprintf(stderr, "hps scale: host %s of job %s did not join within HPS_TIMEOUT_MS (see the launcher's output)\n",
				name, job);
			return 1;
		}
		nanosleep(&(struct timespec){0, POLL_NS}, NULL);
	}
}
