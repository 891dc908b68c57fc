#include "runtime/cluster/outpipe.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

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
	if (n <= 0) {
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
