/* Memory a server hands to another server process whole: an array in a
 * memfd, mapped shared, which the other maps through /proc/PID/fd/FD
 * (the same pages, nothing copied). The store's cells (cells.h) and pool
 * (table.h) of a job whose key ranges move live in such arrays
 * (runtime/server/recover.c hands them over). Opening another process's
 * fd needs the ptrace "read" access of the same user, which Yama's
 * ptrace_scope does not restrict (it restricts attaching). */
#ifndef HPSI_MEMFD_H
#define HPSI_MEMFD_H

#include <stddef.h>

/* Raises this process's soft open-file limit (RLIMIT_NOFILE) to its hard
 * one: a server of a job whose ranges move keeps 2 to 6 memfds per key
 * range it holds, and with many ranges (--max-servers 256 on one server)
 * the usual soft limit of 1,024 would run out. Nothing when it cannot. */
void hpsi_memfd_raise_limit(void);
/* A fresh memfd of `bytes` zeros, mapped read-write at *at (at NULL: not
 * mapped), its fd in *fd: 0, HPS_ESYS when out of fds (EMFILE, ENFILE:
 * logged once per process, with the limit), or HPS_ENOMEM; nothing is
 * left either way. */
int hpsi_memfd_new(size_t bytes, void **at, int *fd);
/* 1 once hpsi_memfd_new ran out of fds in this process: a caller that
 * turned that NULL into HPS_ENOMEM (a store that cannot grow) learns the
 * cause was the fds, not the memory. */
int hpsi_memfd_ran_out(void);
/* Grows memfd fd to `bytes` (zeros): 0, or HPS_ENOMEM. */
int hpsi_memfd_grow(int fd, size_t bytes);
/* Maps `bytes` from byte `off` of memfd fd (shared): NULL when it cannot. */
void *hpsi_memfd_map(int fd, size_t off, size_t bytes);
/* Opens fd `fd` of process pid, which must be a store memfd of
 * hpsi_memfd_new (its name, no seals but F_SEAL_SEAL) holding at least
 * `bytes`, into *out: 0; HPS_EINVAL when it is smaller or another file;
 * HPS_ESYS when it cannot be opened. */
int hpsi_memfd_open(int pid, int fd, size_t bytes, int *out);
/* Unmaps at (bytes long) and closes fd (-1: none): the pages go with the
 * last mapping and fd, in whichever process. */
void hpsi_memfd_free(void *at, size_t bytes, int fd);

#endif
