/* Internal logging: one line per event to stderr, prefixed with the pid.
 * HPS_LOG=debug|info|warn|error picks the threshold (default warn). */
#ifndef HPSI_LOG_H
#define HPSI_LOG_H

enum { HPSI_LOG_DEBUG, HPSI_LOG_INFO, HPSI_LOG_WARN, HPSI_LOG_ERROR };

/* The level named by v (debug, info, warn, error), or -1. */
int hpsi_log_parse(const char *v);

void hpsi_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hpsi_debug(...) hpsi_log(HPSI_LOG_DEBUG, __VA_ARGS__)
#define hpsi_info(...) hpsi_log(HPSI_LOG_INFO, __VA_ARGS__)
#define hpsi_warn(...) hpsi_log(HPSI_LOG_WARN, __VA_ARGS__)
#define hpsi_error(...) hpsi_log(HPSI_LOG_ERROR, __VA_ARGS__)

#endif
