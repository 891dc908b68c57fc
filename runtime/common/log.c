#include "runtime/common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/error.h"

int hpsi_log_parse(const char *v)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; v && i < 4; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return -1;
}

static int log_threshold(void)
{
	/* an unknown level is refused by hpsi_config_load; until then, warn */
	int level = hpsi_log_parse(getenv("HPS_LOG"));
	return level < 0 ? HPSI_LOG_WARN : level;
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
