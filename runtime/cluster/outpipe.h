/* What a launcher's child prints, read through a pseudo-terminal (or a
 * pipe) and passed on to the launcher's stdout a whole line at a time,
 * behind a tag ("[worker 3] ", "[h1] "), so the lines of concurrent
 * processes never interleave. */
#ifndef HPSI_OUTPIPE_H
#define HPSI_OUTPIPE_H

#include <stddef.h>

struct hpsi_outpipe {
	int fd; /* the read end (non-blocking), or -1 once closed */
	size_t used;
	char tag[96];
	char buf[8192];
};

/* Makes the channel a child writes its stdout and stderr into: a
 * pseudo-terminal in raw mode, so that the C library (and Python, and
 * anything else that asks isatty) line-buffers the child's stdout and
 * every line reaches the launcher as it is written; a pipe where no
 * pseudo-terminal can be had (no /dev/ptmx), or where tty is 0. Sets
 * *rd (the launcher's end, close-on-exec, non-blocking) and *wr (the
 * child's end, close-on-exec: dup2 it onto 1 and 2; the launcher closes
 * it after fork). Returns 0, or -1 with errno. */
int hpsi_outpipe_open(int *rd, int *wr, int tty);

/* Forwards every complete line read so far; at end of file forwards the
 * rest, closes fd and sets it to -1. */
void hpsi_outpipe_pump(struct hpsi_outpipe *o);

#endif
