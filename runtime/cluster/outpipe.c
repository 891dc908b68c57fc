#include "runtime/cluster/outpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Open MPI gives its ranks' stdout a pseudo-terminal for the same reason:
 * a pipe makes stdio fully buffered, so lines would arrive in 4 KiB bursts
 * and whatever a killed child had not flushed would be lost. Setting the
 * buffering in hps_init would miss programs that print before it, or never
 * call it (scripts, `sh -c`, Python). Raw mode: no "\r\n", no echo, no
 * signal characters. The pseudo-terminal is no process's controlling
 * terminal, so nothing reaches the child through it. */
static int open_pty(int *rd, int *wr)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	char name[128];
	int s = -1;
	if (grantpt(m) == 0 && unlockpt(m) == 0 && ptsname_r(m, name, sizeof name) == 0)
		s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios t;
	if (s < 0 || tcgetattr(s, &t) != 0) {
		if (s >= 0)
			close(s);
		close(m);
		return -1;
	}
	cfmakeraw(&t);
	tcsetattr(s, TCSANOW, &t);
	fcntl(m, F_SETFL, O_NONBLOCK);
	*rd = m, *wr = s;
	return 0;
}

int hpsi_outpipe_open(int *rd, int *wr, int tty)
{
	if (tty && open_pty(rd, wr) == 0)
		return 0;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	*rd = fds[0], *wr = fds[1];
	return 0;
}

static void put_line(const struct hpsi_outpipe *o, const char *s, size_t n)
{
	char out[sizeof o->buf + sizeof o->tag + 1];
	size_t t = strnlen(o->tag, sizeof o->tag);
	memcpy(out, o->tag, t);
	memcpy(out + t, s, n);
	out[t + n] = '\n';
	ssize_t rc = write(STDOUT_FILENO, out, t + n + 1); /* one write: lines stay whole */
	(void)rc;
}

void hpsi_outpipe_pump(struct hpsi_outpipe *o)
{
	ssize_t n = read(o->fd, o->buf + o->used, sizeof o->buf - o->used);
	if (n <= 0) { /* a pseudo-terminal says EIO once every writer closed it */
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return;
		if (o->used)
			put_line(o, o->buf, o->used);
		o->used = 0;
		close(o->fd);
		o->fd = -1;
		return;
	}
	o->used += (size_t)n;
	size_t start = 0;
	for (size_t i = 0; i < o->used; i++)
		if (o->buf[i] == '\n') {
			put_line(o, o->buf + start, i - start);
			start = i + 1;
		}
	if (start == 0 && o->used == sizeof o->buf) { /* a line longer than the buffer */
		put_line(o, o->buf, o->used);
		start = o->used;
	}
	memmove(o->buf, o->buf + start, o->used - start);
	o->used -= start;
}
