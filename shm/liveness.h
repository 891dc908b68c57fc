/* Is a process alive? A pid alone is not enough: pids are reused, and a
 * killed child stays a zombie until reaped. So every node records its pid
 * with its start time, and a node is alive while /proc shows that pid, not
 * a zombie, with the same start time. */
#ifndef HPSI_LIVENESS_H
#define HPSI_LIVENESS_H

#include <stdint.h>
#include <sys/types.h>

/* Start time of pid in clock ticks since boot, or 0 if it does not run. */
uint64_t hpsi_proc_birth(pid_t pid);
/* 1 if pid runs (not a zombie) and started at birth, else 0. */
int hpsi_proc_alive(pid_t pid, uint64_t birth);

#endif
