/* The lobby of a host group: where `hps launch` processes started one by
 * one on the same machine (by dmlc-core's tracker, mpirun or srun) find
 * each other, so that they form one host group around one shared-memory
 * segment and one bridge instead of talking over TCP.
 *
 * The first to arrive leads: it waits for the others (as many as it was
 * told to expect, or the whole job, or until nobody new came for a quiet
 * period), then runs the group's processes as one host-local launch. Each
 * other member brings its counts and waits for the leader's exit status,
 * which becomes its own. A process that comes after the lobby closed opens
 * the next one: a group of its own, named NAME-1, NAME-2, ...
 *
 * The lobby is a small file HPS_SHM_DIR/hps-lobby.JOB.NAME.G changed only
 * under flock(2); a leader that died is noticed (its pid is gone) and its
 * lobby is taken over by the next arrival. */
#ifndef HPSI_LOBBY_H
#define HPSI_LOBBY_H

#include <signal.h>
#include <stdint.h>

#include "runtime/common/limits.h"

struct hpsi_lobby {
	int fd;
	int leader;    /* 1: this process runs the group */
	int pid;       /* the leader's pid */
	char name[HPSI_NAME_MAX]; /* the group's host name */
	char path[512];
};

/* Joins (or opens) the lobby of group NAME of job JOB, bringing nsrv
 * servers and nwrk workers. alone: a launch meant to be its host's only
 * one; a group of that name already here is then an error naming
 * HPS_HOST, not a reason to open the next lobby. 0, or HPS_ECONFIG /
 * HPS_ESYS with a logged reason. */
int hpsi_lobby_join(struct hpsi_lobby *l, const char *job, const char *name, uint32_t nsrv, uint32_t nwrk,
		    int alone);

/* Leader: waits until `expect` members came (0: not known), or the
 * members bring job_total processes, or nobody new came for quiet_ms;
 * closes the lobby and returns the group's counts. *stop (a signal flag)
 * ends the wait early with HPS_ECLOSED. */
int hpsi_lobby_gather(struct hpsi_lobby *l, uint32_t expect, uint32_t job_total, int64_t quiet_ms,
		      volatile const sig_atomic_t *stop, uint32_t *nsrv, uint32_t *nwrk, uint32_t *members);

/* `hps clean`: removes (unless dry_run) the lobby file at path if its
 * leader is dead (a launcher killed with SIGKILL leaves it); 1 if so. */
int hpsi_lobby_remove_orphan(const char *path, int dry_run);

/* Leader: publishes the group's exit status and removes the lobby. */
void hpsi_lobby_finish(struct hpsi_lobby *l, int code);

/* Member: waits for the leader's exit status and returns it (1 when the
 * leader ended without one). */
int hpsi_lobby_follow(struct hpsi_lobby *l, volatile const sig_atomic_t *stop);

#endif
