/* Which `hps launch` processes of a multi-host job form one host group.
 *
 * dmlc-core's tracker starts one process per server and worker; mpirun and
 * srun start one per rank, several on a node when asked. Processes of one
 * machine with the same host name meet in a lobby (runtime/cluster/lobby.h)
 * and become one host group: one segment, one bridge, shared-memory rings
 * between them, as one `hps launch` per host would be. One group per node
 * rather than one per rank (with names made from the local rank): ranks of
 * a node then never talk over TCP, and the scheduler sees as many hosts as
 * there are machines. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/cluster/launch.h"
#include "runtime/cluster/lobby.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"

/* Slurm's tasks on node `node` from "2(x3),1": counts, each for N nodes. */
static uint32_t slurm_tasks_on(const char *list, long node)
{
	const char *s = list;
	while (*s) {
		char *end;
		long n = strtol(s, &end, 10), times = 1;
		if (end == s || n < 0)
			return 0;
		if (strncmp(end, "(x", 2) == 0) {
			times = strtol(end + 2, &end, 10);
			if (*end++ != ')' || times < 1)
				return 0;
		}
		if (node < times)
			return (uint32_t)n;
		node -= times;
		if (*end != ',')
			return 0;
		s = end + 1;
	}
	return 0;
}

/* How many launches of this node to wait for: Open MPI's and MPICH's local
 * size, Slurm's tasks of this node; 0 when a tracker or Slurm says nothing
 * of it (wait until nobody new comes); 1 for a launch on its own. */
static uint32_t expected(int tracker, int *alone)
{
	const char *v;
	char *end;
	*alone = 0;
	if (tracker)
		return 0;
	if (((v = getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) && *v) || ((v = getenv("MPI_LOCALNRANKS")) && *v)) {
		unsigned long n = strtoul(v, &end, 10);
		if (!*end && n >= 1 && n < HPSI_MAX_NODES)
			return (uint32_t)n;
	}
	if ((v = getenv("SLURM_LOCALID")) && *v) {
		const char *list = getenv("SLURM_STEP_TASKS_PER_NODE"), *node = getenv("SLURM_NODEID");
		uint32_t n = list && node ? slurm_tasks_on(list, strtol(node, NULL, 10)) : 0;
		if (!n && (v = getenv("SLURM_NTASKS_PER_NODE")))
			n = (uint32_t)strtoul(v, NULL, 10);
		return n < HPSI_MAX_NODES ? n : 0;
	}
	*alone = 1;
	return 1;
}

int hpsi_launch_group(int tracker, volatile const sig_atomic_t *stop, struct hpsi_lobby *l)
{
	char name[HPSI_NAME_MAX], num[32];
	const char *v;
	/* every launch of the job must name it alike: from the scheduler's port */
	if (!hpsi_setting("JOB_ID") && (v = hpsi_setting("ROOT_PORT"))) {
		snprintf(num, sizeof num, "hps%.20s", v);
		setenv("HPS_JOB_ID", num, 1);
	}
	if ((v = hpsi_setting("HOST")))
		snprintf(name, sizeof name, "%s", v);
	else if (gethostname(name, sizeof name) != 0 || !name[0])
		snprintf(name, sizeof name, "localhost");
	name[sizeof name - 1] = 0;
	uint64_t nsrv = 0, nwrk = 0, quiet = 2000, reg = 30000, S = 1, W = 1;
	if (hpsi_setting_u64("LOCAL_SERVERS", 0, HPSI_MAX_NODES, &nsrv) ||
	    hpsi_setting_u64("LOCAL_WORKERS", 0, HPSI_MAX_NODES, &nwrk) ||
	    hpsi_setting_u64("GATHER_MS", 0, 3600000, &quiet) || hpsi_setting_u64("REGISTER_MS", 100, 3600000, &reg) ||
	    hpsi_setting_u64("NUM_SERVERS", 1, HPSI_MAX_NODES - 1, &S) ||
	    hpsi_setting_u64("NUM_WORKERS", 1, HPSI_MAX_NODES - 1, &W))
		return 2;
	int alone;
	uint32_t expect = expected(tracker, &alone);
	const char *job = hpsi_setting("JOB_ID") ? hpsi_setting("JOB_ID") : "default";
	int rc = hpsi_lobby_join(l, job, name, (uint32_t)nsrv, (uint32_t)nwrk, alone);
	if (rc)
		return 2;
	if (!l->leader) {
		printf("hps launch: joined host group %s of job %s: its launch (pid %d) runs the group's processes and prints their output\n",
		       l->name, job, l->pid);
		fflush(stdout);
		return hpsi_lobby_follow(l, stop);
	}
	uint32_t srv, wrk, members;
	/* siblings we know will come get the whole registration time */
	rc = hpsi_lobby_gather(l, expect, (uint32_t)(S + W), (int64_t)(expect > 1 ? reg : quiet), stop, &srv, &wrk,
			       &members);
	if (rc) {
		hpsi_lobby_finish(l, 128 + (int)*stop);
		return 128 + (int)*stop;
	}
	if (members > 1)
		printf("hps launch: host group %s: %u launches bring %u servers and %u workers\n", l->name, members, srv,
		       wrk);
	setenv("HPS_HOST", l->name, 1);
	snprintf(num, sizeof num, "%u", srv);
	setenv("HPS_LOCAL_SERVERS", num, 1);
	snprintf(num, sizeof num, "%u", wrk);
	setenv("HPS_LOCAL_WORKERS", num, 1);
	fflush(stdout);
	return -1;
}
