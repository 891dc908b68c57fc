/* Multi-host jobs on one machine, shared by tests/test_cluster.c and
 * tests/test_curve.c: network namespaces joined by veth pairs on a Linux
 * bridge stand for hosts (root is needed). Everything made is removed
 * afterwards, on failure and on signals too.
 *
 * A suite's binary is also its jobs' worker program (`--cluster-worker
 * MODE`, cluster_worker), so what a worker checks travels back as its exit
 * status: "sums" (4 rounds of pushes, then the sums checked), "long" (60),
 * "busy" (1000, back to back; worker 0 creates $NETNS_TEST_MARK
 * after 100 ($NETNS_TEST_MARK_ROUND if set), and with NETNS_TEST_HOLD set waits until it is removed, and every worker prints "rounds done" after them), "loop" (until a request fails), "pipe" (400 requests in flight), "bsp" (600 rounds of push, clock and pull, each pull checked against BSP's bound; the mark as for busy). Worker
 * r pushes (r+1)(k%5+1) to small key k and (r+1)(j%3+1) to the j-th float
 * of the big keys' values. */
#ifndef HPS_TESTS_NETNS_H
#define HPS_TESTS_NETNS_H

#include <stdint.h>
#include <sys/types.h>

#include "tests/harness.h"

#define NET "10.78.0"
#define NET6 "fd78::"

#define SMALL_KEYS 3000
#define BIG_KEYS 1000
#define BIG_WIDTH 32 /* 128 KiB of values: travels without a copy */

extern char pfx[16];          /* namespaces PFX0.., bridge PFXbr, host veths PFXv0.. */
extern char self_path[4096];  /* this test binary */
extern char job_log[256], hostsf[256];

/* Root check (77: skip), names, clean-up on exit and signals. */
int netns_suite_start(const char *suite);
void netns_suite_end(void);

int cluster_worker(const char *mode);

int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* n hosts PFX0..: NET.(i+1) and NET6(i+1); the root namespace is NET.254 */
int ns_up(int n);
void ns_down(void);
void ns_on_fatal(int sig);

/* The first lines of a failed job's log that say why (CI shows only the
 * output's last lines). */
void failure_digest(const char *log);

/* Runs a shell command in the background with output to a file (a new
 * one: what the file held is gone before this returns). */
pid_t start(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *slurp(const char *log);
int log_has(const char *log, const char *text);
int wait_log(const char *log, const char *text, int ms);
int finish(pid_t pid, int ms);
/* Waits for a job started with start(); asserts it ended well and returns
 * how many workers printed "sums ok" (the whole log is shown on failure). */
int job_sums(pid_t p, int ms);
void write_hosts(const char *text);
/* Runs cmd in namespace host PFXh to the end (at most 120 s); its exit
 * status, and its output in out. */
int on_host(int h, char *out, size_t cap, const char *cmd);
/* The pid of `hps WHAT` run for host HOST of the job. */
pid_t find_proc(const char *what, const char *host);
/* A job of n hosts of one server each, host i with workers[i] workers
 * of `mode`; worker 0 touches *mark (a path under
 * job_log) once the pushes run. Returns the launcher's pid. */
pid_t hosts_job(const char *port, int n, const int *workers, const char *env, const char *flags, const char *mode,
		char *mark, size_t cap);
/* The same with `servers` servers on each host. */
pid_t hosts_job_servers(const char *port, int n, int servers, const int *workers, const char *env, const char *flags,
			const char *mode, char *mark, size_t cap);
/* find_proc for namespace host PFXi, waiting (bounded) for it to start. */
pid_t proc_of(const char *what, int i);
/* The digest lines of a log (HPS_LOG=info; runtime/server/digest.c):
 * keys and digest of replica i of key range r < 2, in n[r][i], d[r][i]. */
void read_digests(const char *log, unsigned long long n[2][2], unsigned long long d[2][2]);
/* Waits (bounded, 20 s) until worker 0 created the mark file; 0 if not. */
int wait_mark(const char *mark);
/* kill -9 of server `rank` (namespace host PFXrank) once worker 0 created
 * the mark, which it then removes (the worker goes on): the test's
 * failure (CUnit) if the server or the mark does not come. Returns its
 * pid. */
pid_t kill_server_at_mark(int rank, const char *mark);

/* The path of another test binary beside this one (e.g. "test_join", whose
 * worker program a cluster test runs); a static buffer. */
const char *sibling_prog(const char *name);

/* The common environment of a job on the namespaces. */
#define ENV(port)                                                                                              \
	"env HPS_RSH='ip netns exec {name} sh -c' HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=" port                      \
	" HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_HEARTBEAT_MS=100 HPS_DEAD_MS=1000 HPS_TIMEOUT_MS=8000 "

#endif
