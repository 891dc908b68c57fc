#include "runtime/common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int hpsi_log_level_now = -1;

#define DEFAULT_RATE 100 /* debug lines a second per process */

/* Identity and the debug token bucket: touched only when a line is
 * written, so a mutex costs nothing on paths whose level is off. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int known; /* identity filled in */
	char role[24], rank[16], host[64];
	double rate, tokens; /* the bucket holds at most rate tokens: one second of lines */
	long long last_ns;
	unsigned long long suppressed;
} st;

int hpsi_log_parse(const char *v)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; v && i < 4; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	return -1;
}

/* HPS_LOG_RATE's value, or the default when unset or malformed
 * (hpsi_config_load refuses a malformed one). */
static double rate_setting(void)
{
	const char *v = getenv("HPS_LOG_RATE");
	char *end;
	unsigned long n = v && *v ? strtoul(v, &end, 10) : 0;
	return n >= 1 && n <= 1000000 && *end == 0 ? (double)n : DEFAULT_RATE;
}

int hpsi_log_reload(void)
{
	int level = hpsi_log_parse(getenv("HPS_LOG"));
	if (level < 0)
		level = HPSI_LOG_WARN;
	pthread_mutex_lock(&lock);
	st.rate = rate_setting();
	st.tokens = st.rate;
	pthread_mutex_unlock(&lock);
	atomic_store_explicit(&hpsi_log_level_now, level, memory_order_relaxed);
	return level;
}

static long long now_ns(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Under the lock. */
static void fill_identity(void)
{
	if (st.known)
		return;
	st.known = 1;
	const char *v = getenv("HPS_ROLE");
	snprintf(st.role, sizeof st.role, "%s", v && *v ? v : "-");
	v = getenv("HPS_RANK");
	snprintf(st.rank, sizeof st.rank, "%s", v && *v ? v : "-");
	v = getenv("HPS_HOST");
	if (v && *v)
		snprintf(st.host, sizeof st.host, "%s", v);
	else if (gethostname(st.host, sizeof st.host) != 0)
		snprintf(st.host, sizeof st.host, "-");
	st.host[sizeof st.host - 1] = 0;
}

void hpsi_log_identity(const char *role, int rank, const char *host)
{
	pthread_mutex_lock(&lock);
	fill_identity();
	if (role)
		snprintf(st.role, sizeof st.role, "%s", role);
	if (rank >= 0)
		snprintf(st.rank, sizeof st.rank, "%d", rank);
	else
		snprintf(st.rank, sizeof st.rank, "-");
	if (host && *host)
		snprintf(st.host, sizeof st.host, "%s", host);
	pthread_mutex_unlock(&lock);
}

/* Under the lock: takes a token for a debug line, or counts it out. */
static int take_token(void)
{
	long long now = now_ns(CLOCK_MONOTONIC);
	if (st.rate <= 0)
		st.rate = st.tokens = rate_setting();
	if (st.last_ns)
		st.tokens += (double)(now - st.last_ns) * 1e-9 * st.rate;
	if (st.tokens > st.rate)
		st.tokens = st.rate;
	st.last_ns = now;
	if (st.tokens < 1) {
		st.suppressed++;
		return 0;
	}
	st.tokens -= 1;
	return 1;
}

/* One write per line keeps the lines of concurrent processes whole. */
static void emit(int level, const char *prefix, const char *fmt, va_list ap)
{
	static const char *tags[] = {"debug", "info", "warn", "error"};
	char line[1024];
	int n = snprintf(line, sizeof line, "%s %s: ", prefix, tags[level]);
	if (n < 0 || (size_t)n >= sizeof line)
		n = (int)sizeof line - 1;
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	size_t len = strlen(line);
	if (len < sizeof line - 1)
		line[len++] = '\n';
	else
		line[len - 1] = '\n';
	ssize_t rc = write(STDERR_FILENO, line, len);
	(void)rc;
}

static void emit_fmt(int level, const char *prefix, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(level, prefix, fmt, ap);
	va_end(ap);
}

/* Under the lock: "2026-12-02T10:11:12.345Z host=a role=server rank=0 pid=1". */
static void make_prefix(char *out, size_t cap)
{
	long long ns = now_ns(CLOCK_REALTIME);
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fill_identity();
	snprintf(out, cap, "%s.%03dZ host=%s role=%s rank=%s pid=%d", when, (int)(ns / 1000000 % 1000), st.host,
		 st.role, st.rank, (int)getpid());
}

void hpsi_log(int level, const char *fmt, ...)
{
	if (level < HPSI_LOG_DEBUG || level > HPSI_LOG_ERROR || !hpsi_log_on(level))
		return;
	char prefix[192];
	unsigned long long left_out = 0;
	pthread_mutex_lock(&lock);
	double rate = st.rate;
	int go = level != HPSI_LOG_DEBUG || take_token();
	if (go) {
		left_out = level == HPSI_LOG_DEBUG ? st.suppressed : 0;
		if (left_out)
			st.suppressed = 0;
		make_prefix(prefix, sizeof prefix);
	}
	pthread_mutex_unlock(&lock);
	if (!go)
		return;
	if (left_out)
		emit_fmt(HPSI_LOG_DEBUG, prefix, "suppressed %llu debug lines (HPS_LOG_RATE=%g a second)", left_out,
			 rate);
	va_list ap;
	va_start(ap, fmt);
	emit(level, prefix, fmt, ap);
	va_end(ap);
}

void hpsi_log_flush(void)
{
	char prefix[192];
	pthread_mutex_lock(&lock);
	unsigned long long left_out = st.suppressed;
	double rate = st.rate;
	st.suppressed = 0;
	if (left_out)
		make_prefix(prefix, sizeof prefix);
	pthread_mutex_unlock(&lock);
	if (left_out)
		emit_fmt(HPSI_LOG_DEBUG, prefix, "suppressed %llu debug lines (HPS_LOG_RATE=%g a second)", left_out,
			 rate);
}
