#include "runtime/cluster/lobby.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/log.h"
#include "shm/bell.h"

#define LOBBY_MAGIC 0x42424f4cu /* "LOBB" */
#define MAX_GENERATIONS 64

/* The lobby file's contents; read and written whole under flock. */
struct rec {
	uint32_t magic;
	uint32_t closed;  /* the leader stopped waiting: late arrivals go to the next lobby */
	uint32_t done;    /* the leader's job is over: code is its status */
	int32_t code;
	int32_t leader;   /* pid */
	uint32_t members, nsrv, nwrk;
	int64_t last_arrival_ns; /* CLOCK_MONOTONIC is one clock for the machine */
};

static int load(int fd, struct rec *r)
{
	memset(r, 0, sizeof *r);
	ssize_t n = pread(fd, r, sizeof *r, 0);
	if (n != (ssize_t)sizeof *r || r->magic != LOBBY_MAGIC)
		memset(r, 0, sizeof *r);
	return n < 0 ? -1 : 0;
}

static int store(int fd, const struct rec *r)
{
	return pwrite(fd, r, sizeof *r, 0) == (ssize_t)sizeof *r ? 0 : -1;
}

static int alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static const char *lobby_dir(void)
{
	const char *d = getenv("HPS_SHM_DIR");
	return d && *d ? d : "/dev/shm";
}

int hpsi_lobby_join(struct hpsi_lobby *l, const char *job, const char *name, uint32_t nsrv, uint32_t nwrk,
		    int alone)
{
	memset(l, 0, sizeof *l);
	l->fd = -1;
	for (int g = 0; g < MAX_GENERATIONS; g++) {
		/* NAME, NAME-1, ...: the suffix kept whole when the name is long,
		 * since it tells the groups apart */
		char suffix[8] = "";
		if (g)
			snprintf(suffix, sizeof suffix, "-%d", g % 100);
		size_t sl = strlen(suffix), keep = strnlen(name, sizeof l->name - 1 - sl);
		memcpy(l->name, name, keep);
		memcpy(l->name + keep, suffix, sl + 1);
		int n = snprintf(l->path, sizeof l->path, "%s/hps-lobby.%s.%s", lobby_dir(), job, l->name);
		if (n < 0 || (size_t)n >= sizeof l->path || strchr(job, '/') || strchr(l->name, '/')) {
			hpsi_error("job id %s and host name %s make no file name in %s (HPS_JOB_ID, HPS_HOST)", job, name,
				   lobby_dir());
			return HPS_ECONFIG;
		}
		int fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) != 0) {
			hpsi_error("cannot open %s: %s (HPS_SHM_DIR)", l->path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return HPS_ESYS;
		}
		struct rec r;
		load(fd, &r);
		int taken = r.magic == LOBBY_MAGIC && !r.done && alive(r.leader);
		if (taken && alone) {
			hpsi_error("host %s of job %s already runs on this machine (hps launch, pid %d): give each launch its own HPS_HOST (DMLC_NODE_HOST), or start them with mpirun or srun",
				   name, job, r.leader);
			close(fd);
			return HPS_ECONFIG;
		}
		if (taken && r.closed) { /* that group is running: the next lobby */
			close(fd);
			continue;
		}
		if (taken) {
			r.members++;
			r.nsrv += nsrv, r.nwrk += nwrk;
		} else { /* new, or left by a finished or dead leader */
			r = (struct rec){.magic = LOBBY_MAGIC, .leader = getpid(), .members = 1, .nsrv = nsrv, .nwrk = nwrk};
			l->leader = 1;
		}
		r.last_arrival_ns = hpsi_now_ns();
		l->pid = r.leader;
		int rc = store(fd, &r);
		flock(fd, LOCK_UN);
		if (rc) {
			hpsi_error("cannot write %s: %s (HPS_SHM_DIR)", l->path, strerror(errno));
			close(fd);
			return HPS_ESYS;
		}
		l->fd = fd;
		return 0;
	}
	hpsi_error("host %s: %d host groups of job %s already run here", name, MAX_GENERATIONS, job);
	return HPS_ECONFIG;
}

int hpsi_lobby_gather(struct hpsi_lobby *l, uint32_t expect, uint32_t job_total, int64_t quiet_ms,
		      volatile const sig_atomic_t *stop, uint32_t *nsrv, uint32_t *nwrk, uint32_t *members)
{
	for (;;) {
		struct rec r;
		flock(l->fd, LOCK_EX);
		load(l->fd, &r);
		int full = (expect && r.members >= expect) || (job_total && r.nsrv + r.nwrk >= job_total);
		if (full || hpsi_now_ns() - r.last_arrival_ns >= quiet_ms * 1000000 || *stop) {
			r.closed = 1;
			store(l->fd, &r);
			flock(l->fd, LOCK_UN);
			*nsrv = r.nsrv, *nwrk = r.nwrk, *members = r.members;
			return *stop ? HPS_ECLOSED : 0;
		}
		flock(l->fd, LOCK_UN);
		usleep(20000);
	}
}

void hpsi_lobby_finish(struct hpsi_lobby *l, int code)
{
	if (l->fd < 0)
		return;
	struct rec r;
	flock(l->fd, LOCK_EX);
	load(l->fd, &r);
	r.closed = 1, r.done = 1, r.code = code;
	store(l->fd, &r);
	unlink(l->path); /* members hold it open; the next job starts afresh */
	flock(l->fd, LOCK_UN);
	close(l->fd);
	l->fd = -1;
}

int hpsi_lobby_remove_orphan(const char *path, int dry_run)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int gone = 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) { /* busy: someone is joining it now */
		struct rec r;
		load(fd, &r);
		gone = r.magic == LOBBY_MAGIC && !alive(r.leader);
		if (gone && !dry_run && unlink(path) != 0)
			gone = 0;
		flock(fd, LOCK_UN);
	}
	close(fd);
	return gone;
}

int hpsi_lobby_follow(struct hpsi_lobby *l, volatile const sig_atomic_t *stop)
{
	int code = 1;
	while (!*stop) {
		struct rec r;
		flock(l->fd, LOCK_SH);
		load(l->fd, &r);
		flock(l->fd, LOCK_UN);
		if (r.done) {
			code = r.code;
			break;
		}
		if (!alive(l->pid)) {
			hpsi_error("host group %s: its leader (pid %d) ended without telling how the job went", l->name,
				   l->pid);
			break;
		}
		usleep(50000);
	}
	if (*stop)
		code = 128 + (int)*stop;
	close(l->fd);
	l->fd = -1;
	return code;
}
