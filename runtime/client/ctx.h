/* Internal state of a process in a job. */
#ifndef HPSI_CTX_H
#define HPSI_CTX_H

#include <stdatomic.h>
#include <sys/types.h>

#include "hps/hps.h"
#include "runtime/common/config.h"
#include "shm/node.h"
#include "shm/segment.h"

struct hps_ctx {
	_Atomic uint32_t magic; /* HPSI_MAGIC_CTX; a tombstone once finalized */
	struct hpsi_config cfg;
	struct hpsi_seg seg;
	uint32_t node;     /* this process's node id in the segment */
	int64_t timeout_ns;
	int64_t spin_ns;
	int spin_yield; /* the job has more processes than this host has CPUs */
	struct hps_worker *worker;
	pid_t pid;                 /* the process that joined (fork copies ctx) */
	/* A worker restarted by `hps launch --restart-workers`: the clock its
	 * rank had reached and the timestamp its requests of that clock began
	 * at (hps_resume_clock; runtime/client/rejoin.c). 0, 0 otherwise. */
	int rejoined;
	uint32_t resume_clock;
	int64_t resume_ts;
	/* Its barriers from the resume clock on that the predecessor had
	 * arrived at already: [bar_replay, bar_replay_end) (mod 2^30). Each
	 * call of hps_barrier takes the next one without arriving again. */
	uint32_t bar_replay, bar_replay_end;
	/* A worker that joined (runtime/client/join.c) until its first
	 * hps_barrier: that call meets the first barrier not completed yet. */
	int join_barrier;
	struct hps_ctx *next_live; /* contexts the exit handler closes, under its lock */
};

/* 0 if c is a live context, else HPS_EINVAL / HPS_ECLOSED (handle.h). */
int hpsi_ctx_check(const struct hps_ctx *c);

/* hps_finalize for a process that exits next (the `hps server` program):
 * the segment stays mapped until the exit. munmap of a mapping both CPUs
 * used waits for a TLB shootdown on each; exit's teardown does not, and
 * on this 2-vCPU machine that wait cost each server about 5 ms. */
int hpsi_finalize_exiting(hps_ctx *c);

#endif
