/* Internal logging: one line per event to stderr, written whole, each
 * saying when, where and who:
 *
 *   2026-12-02T10:11:12.345Z host=a role=server rank=0 pid=4711 info: text
 *
 * (UTC, milliseconds; rank is "-" for processes without one: the launcher,
 * the bridge, the scheduler, tools). HPS_LOG=debug|info|warn|error picks
 * the threshold (default warn): info tells the life of a job (segment,
 * key ranges, processes joining and leaving, failures and what was done,
 * checkpoints), debug adds detail per request, limited by a token bucket
 * per process to HPS_LOG_RATE lines a second (default 100; the lines left
 * out are counted and reported in one line once the bucket refills, or at
 * hpsi_log_flush).
 *
 * The macros test the level inline before anything is formatted: a
 * disabled debug line in a hot path costs one relaxed load and a branch. */
#ifndef HPSI_LOG_H
#define HPSI_LOG_H

#include <stdatomic.h>

enum { HPSI_LOG_DEBUG, HPSI_LOG_INFO, HPSI_LOG_WARN, HPSI_LOG_ERROR };

/* The threshold in force, or -1 until HPS_LOG was first read. Relaxed
 * everywhere: it is a value read from the environment, publishing nothing. */
extern _Atomic int hpsi_log_level_now;

/* The level named by v (debug, info, warn, error), or -1. */
int hpsi_log_parse(const char *v);

/* (Re)reads HPS_LOG and HPS_LOG_RATE; an unknown level counts as warn here
 * (hpsi_config_load refuses it). Returns the threshold. */
int hpsi_log_reload(void);

/* Who this process is, for the prefix of its lines. role NULL keeps the
 * current one; rank < 0 prints "-"; host NULL keeps the current one. Until
 * called, HPS_ROLE, HPS_RANK and HPS_HOST (or the host name) say it. */
void hpsi_log_identity(const char *role, int rank, const char *host);

/* Reports debug lines the rate limit left out and not yet reported. */
void hpsi_log_flush(void);

static inline int hpsi_log_on(int level)
{
	int t = atomic_load_explicit(&hpsi_log_level_now, memory_order_relaxed);
	if (__builtin_expect(t < 0, 0))
		t = hpsi_log_reload();
	return level >= t;
}

void hpsi_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hpsi_log_at(level, ...) ((void)(hpsi_log_on(level) ? hpsi_log(level, __VA_ARGS__) : (void)0))
#define hpsi_debug(...) hpsi_log_at(HPSI_LOG_DEBUG, __VA_ARGS__)
#define hpsi_info(...) hpsi_log_at(HPSI_LOG_INFO, __VA_ARGS__)
#define hpsi_warn(...) hpsi_log_at(HPSI_LOG_WARN, __VA_ARGS__)
#define hpsi_error(...) hpsi_log_at(HPSI_LOG_ERROR, __VA_ARGS__)

#endif
