/* `hps scale --join-host NAME`: asks the `hps launch --hosts` of a job,
 * on the machine where it runs, to start the host its hosts file marks
 * `later` (what SIGUSR1 to it does), then waits until the scheduler sees
 * that host joined.
 *
 * The launcher listens on a Unix socket in the abstract namespace,
 * "hps-join.JOB": it belongs to the network namespace, so it reaches
 * the launcher from its own host only (another machine, or in the tests
 * another namespace host, cannot connect), and it vanishes with the
 * launcher, leaving nothing to clean. Only the launcher's user is
 * served (SO_PEERCRED), as only it can open the job's segments (0600).
 * One request per connection, SOCK_SEQPACKET: the host's name; one
 * answer: '+' or '-' and a line. */
#ifndef HPSI_JOIN_HOST_H
#define HPSI_JOIN_HOST_H

#include <stddef.h>

/* The launcher's listening socket for job (non-blocking), or -1 with
 * errno (EADDRINUSE: another launcher of that job id listens here). */
int hpsi_join_listen(const char *job);
/* Takes one request from the listening socket: returns the connection,
 * with the host's name asked for in name, to be answered with
 * hpsi_join_answer; -1 when there was none (nothing pending, a peer that
 * sent nothing within a second, another user's: answered and closed). */
/* The command's end: a socket connected to job's launcher, or -1. */
int hpsi_join_connect(const char *job);

int hpsi_join_take(int lfd, char *name, size_t cap);
/* Answers and closes the connection: ok, or a refusal whose line says why. */
void hpsi_join_answer(int conn, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The command: asks the launcher of job (HPS_JOB_ID) to start host name
 * and waits, printing one line; the exit status. */
int hpsi_join_host_cmd(const char *name);

#endif
