/* How `hps launch --hosts` reaches a host: the remote shell command
 * (HPS_RSH split like a shell would), the command line it runs there
 * (every word quoted for a POSIX shell), which variables go along, and
 * the directory remote commands start in. */
#ifndef HPSI_REMOTE_H
#define HPSI_REMOTE_H

#include <stddef.h>

/* A growing command line; failed is set once memory ran out. */
struct hpsi_cmdline {
	char *p;
	size_t len, cap;
	int failed;
};

/* Appends word, single-quoted for a POSIX shell, and a space: spaces,
 * quotes, $ and backslashes reach the remote program unchanged. */
void hpsi_cmdline_word(struct hpsi_cmdline *c, const char *word);
void hpsi_cmdline_free(struct hpsi_cmdline *c);

/* The argv that runs cmd on one host: rsh split into words as a POSIX
 * shell splits (quotes and backslashes; no expansions), "{host}" in a
 * word replaced by addr (the name where the hosts file gives no
 * address), "{name}" by the host's name, and cmd appended as the last
 * argument. Returns NULL after a line on stderr naming HPS_RSH. */
char **hpsi_rsh_argv(const char *rsh, const char *name, const char *addr, const char *cmd);
void hpsi_rsh_free(char **argv);

/* Whether the variable NAME=VALUE of this environment goes to every
 * host: HPS_* and DMLC_* settings except those that differ per host,
 * LD_LIBRARY_PATH, OMP_NUM_THREADS and KMP_AFFINITY (what dmlc-core's ssh
 * tracker passes), and the names given with --env (NAME or NAME=VALUE). */
int hpsi_remote_passes(const char *entry, char *const *extra, int nextra);

/* The launch directory, as the user sees it ($PWD when it is this
 * directory, so symbolic links stay), for remote commands to start in. */
int hpsi_launch_dir(char *out, size_t cap);

/* The POSIX sh script that runs on each host: `sh -c SCRIPT hps DIR HOST
 * COMMAND...`. It enters DIR (or says that the host lacks it), runs
 * COMMAND, and stops it when its standard input ends: the launcher writes
 * "stop" and closes it to stop the host, and a launcher that died closes
 * it too. */
extern const char hpsi_remote_script[];

#endif
