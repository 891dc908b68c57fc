/* What a launcher's child prints, read through a pipe and passed on to
 * the launcher's stdout a whole line at a time, behind a tag ("[worker 3] ",
 * "[h1] "), so the lines of concurrent processes never interleave. */
#ifndef HPSI_OUTPIPE_H
#define HPSI_OUTPIPE_H

#include <stddef.h>

struct hpsi_outpipe {
	int fd; /* the read end (non-blocking), or -1 once closed */
	size_t used;
	char tag[96];
	char buf[8192];
};

/* Forwards every complete line read so far; at end of file forwards the
 * rest, closes fd and sets it to -1. */
void hpsi_outpipe_pump(struct hpsi_outpipe *o);

#endif
