/* Test helpers: a CUnit main, and small jobs made of forked processes. */
#ifndef HPS_TEST_HARNESS_H
#define HPS_TEST_HARNESS_H

#include <CUnit/CUnit.h>
#include <sys/types.h>

#include "hps/hps.h"
#include "shm/segment.h"

struct test_case {
	const char *name;
	void (*fn)(void);
};

/* Runs the cases as one suite; returns the process exit status. */
int run_suite(const char *suite, const struct test_case *cases);

struct job {
	struct hpsi_seg seg;
	char job[64];
	uint32_t nservers, nworkers;
	pid_t servers[64];
};

/* Job settings; zero fields take defaults (4 KiB.. see harness.c). */
struct job_opts {
	uint32_t ring_bytes;
	uint64_t heap_mb;
	int64_t timeout_ms;
	const struct hpsi_key_span *ranges; /* declared ranges, one per server */
	hps_handler handler;             /* servers' handler; NULL: summing store */
	int no_servers;                  /* create the segment only */
	uint32_t replicas;               /* HPS_REPLICAS */
	uint32_t max_servers;            /* HPS_MAX_SERVERS: key ranges for this many (nservers run) */
	/* the placement of replicas as for a job across hosts running
	 * host_servers[h] servers each (shm/place.h); nhosts 0: one host */
	uint32_t nhosts;
	const uint32_t *host_servers;
};

/* Creates a segment for a fresh job id and forks its servers. */
int job_start(struct job *j, uint32_t nservers, uint32_t nworkers, const struct job_opts *o);

typedef int (*worker_fn)(hps_ctx *ctx, hps_worker *w, void *arg);

/* Forks worker `rank`: it joins the job, opens a worker of `width` and
 * returns fn's result as its exit status (0 = success). */
pid_t job_fork_worker(struct job *j, uint32_t rank, uint32_t width, worker_fn fn, void *arg);
/* Forks a server of rank `rank` (done by job_start unless no_servers). */
pid_t job_fork_server(struct job *j, uint32_t rank, hps_handler h);

/* Waits for pid up to timeout_ms; returns its exit status, 128+signal, or
 * -1 if it is still running (then it is killed). */
int wait_exit(pid_t pid, int timeout_ms);

/* Waits for the servers, kills stragglers, removes the segment. Returns 0
 * if every server exited 0. */
int job_stop(struct job *j);

/* Sets the environment a child of this job needs, for role and rank. */
void job_env(const struct job *j, const char *role, uint32_t rank);

/* Path of a built program: $HPS_BIN (bin/hps) or $HPS_EXAMPLES/name. */
const char *hps_bin(void);
const char *example_bin(const char *name, char *buf, size_t cap);

/* Joins the job this process was started for as a worker of width 1;
 * 0, or 2 with the reason on stderr (the exit status of a worker program
 * that could not join). */
int join_as_worker(hps_ctx **ctx, hps_worker **w);

/* Runs cmd with `shell -c` in a new process group, stdout and stderr into
 * log (truncated). */
pid_t spawn_logged(const char *log, const char *shell, const char *cmd);

/* The file's first cap-1 bytes in buf, NUL-terminated ("" if unreadable). */
const char *slurp_into(const char *path, char *buf, size_t cap);

/* wait_exit, and on a timeout the whole process group is killed. */
int finish_group(pid_t pid, int timeout_ms);

/* Creates the empty file path: a signal to a test's child processes. */
void touch_file(const char *path);

/* A job a test starts with `hps launch` in the background: its output
 * goes to log, and its workers run until the file flag appears. */
struct launched {
	char log[128], flag[128];
	pid_t pid;
};
/* Names log and flag after tag and this process, and removes a flag left
 * from an earlier run; the caller then puts l->flag into its command and
 * starts it: l->pid = spawn_logged(l->log, "/bin/sh", cmd). */
void launched_paths(struct launched *l, const char *tag);
/* Creates the flag, waits up to timeout_ms for the job (finish_group),
 * reads its log into out, removes log and flag; the job's exit status. */
int launched_finish(struct launched *l, int timeout_ms, char *out, size_t cap);

/* Runs fn in a child process inside a private mount namespace over a
 * tmpfs of size_mb at HPS_SHM_DIR (so a test can fill the shared-memory
 * file system; the mount goes with the child on every exit path). Returns
 * the child's exit status, or 77 (printed: skipped) when no tmpfs could be
 * mounted (needs CAP_SYS_ADMIN). */
int run_on_small_shm(unsigned size_mb, int (*fn)(const char *dir), int timeout_ms);

/* Polls cond() every millisecond up to timeout_ms; returns 1 if it held. */
int poll_until(int (*cond)(void *), void *arg, int timeout_ms);

#endif
