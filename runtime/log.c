#include "runtime/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/error.h"

static int log_threshold(void)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	const char *v = getenv("HPS_LOG");
	if (v)
		for (int i = 0; i < 4; i++)
			if (strcmp(v, names[i]) == 0)
				return i;
	return HPSI_LOG_WARN;
}

void hpsi_log(int level, const char *fmt, ...)
{
	static const char *tags[] = {"debug", "info", "warning", "error"};
	if (level < log_threshold())
		return;
	char line[1024];
	int n = snprintf(line, sizeof line, "hps[%d] %s: ", (int)getpid(), tags[level]);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines of concurrent processes whole. */
	size_t len = strlen(line);
	if (len < sizeof line - 1)
		line[len++] = '\n';
	ssize_t rc = write(STDERR_FILENO, line, len);
	(void)rc;
}

const char *hps_strerror(int err)
{
	switch (err) {
	case HPS_OK: return "success";
	case HPS_EINVAL: return "invalid argument";
	case HPS_EKEYORDER: return "keys not sorted ascending or duplicated";
	case HPS_ENOKEY: return "key outside every server's key range";
	case HPS_ETOOBIG: return "request too large for the shared heap (raise HPS_HEAP_MB)";
	case HPS_ENOMEM: return "out of memory";
	case HPS_EEXIST: return "a job with this id already runs on this host";
	case HPS_ENOSPC: return "not enough room in /dev/shm for the job's segment";
	case HPS_ENOJOB: return "no such job on this host";
	case HPS_EPEERDEAD: return "a peer process died";
	case HPS_ETIMEDOUT: return "timed out (HPS_TIMEOUT_MS)";
	case HPS_ECLOSED: return "closed";
	case HPS_ECONFIG: return "wrong configuration";
	case HPS_EPROTO: return "malformed message";
	case HPS_ESYS: return "system call failed";
	case HPS_EHANDLER: return "server handler failed";
	case HPS_EVALLEN: return "value length differs from the stored one";
	default: return "unknown error";
	}
}
