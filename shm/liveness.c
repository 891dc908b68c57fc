#include "shm/liveness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads state (field 3) and starttime (field 22) of /proc/PID/stat. The
 * command name (field 2) may hold spaces and parentheses, so parsing
 * starts after its last ')'. */
static int proc_stat(pid_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	/* fields 3..22: skip 19 separators to reach starttime */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

uint64_t hpsi_proc_birth(pid_t pid)
{
	char st;
	uint64_t start;
	if (pid <= 0 || proc_stat(pid, &st, &start) != 0 || st == 'Z' || st == 'X')
		return 0;
	return start ? start : 1;
}

int hpsi_proc_alive(pid_t pid, uint64_t birth)
{
	uint64_t b = hpsi_proc_birth(pid);
	return b != 0 && b == birth;
}
