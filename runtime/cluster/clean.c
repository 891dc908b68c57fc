/* `hps clean`: removes the segments of jobs whose processes all died
 * (a launcher killed with SIGKILL cannot remove its own). A segment is
 * kept while its creator or any of its nodes still runs. A segment of
 * another hps version (its node table unreadable here) is removed when no
 * process maps or holds it open; so are lobby files whose leader died. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/cluster/hosts_stats.h"
#include "runtime/cluster/launch.h"
#include "runtime/cluster/lobby.h"
#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/segment.h"

static int owners_alive(struct hpsi_seg *seg)
{
	struct hpsi_seg_hdr *h = seg->hdr;
	if (hpsi_proc_alive(h->creator_pid, h->creator_birth))
		return 1;
	for (uint32_t i = 0; i < h->nservers + h->nworkers; i++) {
		struct hpsi_node *n = hpsi_seg_node(seg, i);
		/* acquire pairs with hps_init's release of ALIVE, stored after
		 * pid and birth (relaxed): seeing ALIVE, we see its pid */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st == HPSI_NODE_ALIVE && hpsi_proc_alive(atomic_load_explicit(&n->pid, memory_order_relaxed),
							     atomic_load_explicit(&n->birth, memory_order_relaxed)))
			return 1;
	}
	return 0;
}

/* Whether the file starts like an hps segment of any version. */
static int any_version_segment(const char *path)
{
	uint64_t magic = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = pread(fd, &magic, sizeof magic, 0);
	close(fd);
	return n == (ssize_t)sizeof magic && magic == HPSI_SEG_MAGIC;
}

/* Whether a process maps path or holds it open (/proc). Processes this one
 * cannot inspect are passed over: a segment is mode 0600, so only its
 * owner's processes (which the owner can inspect) or root's map it. */
static int in_use(const char *path)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 1;
	size_t plen = strlen(path);
	int used = 0;
	struct dirent *e;
	while (!used && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		char f[300], line[1024];
		snprintf(f, sizeof f, "/proc/%s/maps", e->d_name);
		FILE *m = fopen(f, "r");
		if (!m)
			continue;
		while (!used && fgets(line, sizeof line, m)) {
			size_t n = strcspn(line, "\n");
			used = n >= plen && memcmp(line + n - plen, path, plen) == 0;
		}
		fclose(m);
		snprintf(f, sizeof f, "/proc/%s/fd", e->d_name);
		DIR *fds = opendir(f);
		struct dirent *fe;
		while (!used && fds && (fe = readdir(fds))) {
			char link[600], target[600];
			snprintf(link, sizeof link, "%s/%s", f, fe->d_name);
			ssize_t k = readlink(link, target, sizeof target - 1);
			used = k == (ssize_t)plen && memcmp(target, path, plen) == 0;
		}
		if (fds)
			closedir(fds);
	}
	closedir(d);
	return used;
}

int hpsi_clean_segments(int dry_run, int verbose)
{
	const char *dir = getenv("HPS_SHM_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	DIR *d = opendir(dir);
	if (!d) {
		hpsi_error("cannot read %s", dir);
		return HPS_ESYS;
	}
	int removed = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (strncmp(e->d_name, "hps-hosts.", 10) == 0) { /* a scheduler's view of the hosts */
			if (hpsi_hosts_stats_orphan(path) && (dry_run || unlink(path) == 0)) {
				if (verbose)
					printf("%s %s (its scheduler is dead)\n", dry_run ? "would remove" : "removed", path);
				removed++;
			}
			continue;
		}
		if (strncmp(e->d_name, "hps-lobby.", 10) == 0) { /* a host group's lobby */
			if (hpsi_lobby_remove_orphan(path, dry_run)) {
				if (verbose)
					printf("%s %s (its leader is dead)\n", dry_run ? "would remove" : "removed", path);
				removed++;
			}
			continue;
		}
		if (strncmp(e->d_name, "hps.", 4) != 0)
			continue;
		const char *tmp = strstr(e->d_name, HPSI_SEG_TMP);
		if (tmp) { /* a creator died while building it */
			pid_t pid = (pid_t)atoi(tmp + strlen(HPSI_SEG_TMP));
			if (hpsi_proc_birth(pid) == 0 && (dry_run || unlink(path) == 0)) {
				if (verbose)
					printf("%s %s (unfinished, its creator is dead)\n", dry_run ? "would remove" : "removed", path);
				removed++;
			}
			continue;
		}
		struct hpsi_seg seg;
		if (!any_version_segment(path)) {
			if (verbose)
				printf("skipped %s: not an hps segment\n", path);
			continue;
		}
		if (hpsi_seg_attach_path(path, &seg) != 0) { /* another version's layout */
			if (in_use(path)) {
				if (verbose)
					printf("kept %s: a segment of another hps version, in use\n", path);
			} else if (dry_run || unlink(path) == 0) {
				if (verbose)
					printf("%s %s (a segment of another hps version; no process uses it)\n",
					       dry_run ? "would remove" : "removed", path);
				removed++;
			}
			continue;
		}
		int alive = owners_alive(&seg);
		char job[HPSI_NAME_MAX], host[HPSI_NAME_MAX];
		snprintf(job, sizeof job, "%s", seg.hdr->job);
		snprintf(host, sizeof host, "%s", seg.hdr->host);
		hpsi_seg_detach(&seg);
		if (alive) {
			if (verbose)
				printf("kept %s: job '%s' is running\n", path, job);
			continue;
		}
		if (!dry_run && hpsi_seg_unlink(&seg) != 0) {
			hpsi_error("cannot remove %s", path);
			continue;
		}
		if (verbose)
			printf("%s %s (job '%s', host '%s': every process is dead)\n", dry_run ? "would remove" : "removed",
			       path, job, host);
		removed++;
	}
	closedir(d);
	return removed;
}

int hpsi_find_jobs(const char *job, const char *host, struct hpsi_job_ref *out, int cap)
{
	const char *dir = getenv("HPS_SHM_DIR");
	if (!dir || !*dir)
		dir = "/dev/shm";
	DIR *d = opendir(dir);
	if (!d) {
		hpsi_error("cannot read %s (HPS_SHM_DIR)", dir);
		return HPS_ESYS;
	}
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "hps.", 4) != 0 || strstr(e->d_name, HPSI_SEG_TMP))
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		struct hpsi_seg seg;
		if (hpsi_seg_attach_path(path, &seg) != 0)
			continue;
		int match = (!job || strcmp(job, seg.hdr->job) == 0) && (!host || strcmp(host, seg.hdr->host) == 0) &&
			    owners_alive(&seg);
		if (match && n < cap) {
			snprintf(out[n].job, sizeof out[n].job, "%s", seg.hdr->job);
			snprintf(out[n].host, sizeof out[n].host, "%s", seg.hdr->host);
		}
		n += match;
		hpsi_seg_detach(&seg);
	}
	closedir(d);
	return n;
}

int hpsi_pick_job(const char *cmd)
{
	const char *job = hpsi_setting("JOB_ID"), *host = hpsi_setting("HOST");
	if (job && host)
		return 0; /* both named: attaching says whether it runs */
	struct hpsi_job_ref found[16];
	int n = hpsi_find_jobs(job, host, found, 16);
	if (n < 0)
		return n;
	if (n == 1) {
		setenv("HPS_JOB_ID", found[0].job, 1);
		setenv("HPS_HOST", found[0].host, 1);
		return 0;
	}
	if (n == 0) {
		fprintf(stderr, "%s: no running job%s%s%s%s on this host%s\n", cmd, job ? " " : "", job ? job : "",
			host ? " of host " : "", host ? host : "", job ? "" : " (start one, or give --job ID)");
		return HPS_ENOJOB;
	}
	fprintf(stderr, "%s: %d jobs run on this host, give --job ID%s:", cmd, n, job ? " and --host NAME" : "");
	for (int i = 0; i < n && i < 16; i++)
		fprintf(stderr, "%s %s (host %s)", i ? "," : "", found[i].job, found[i].host);
	fprintf(stderr, "%s\n", n > 16 ? ", ..." : "");
	return HPS_EINVAL;
}

int hpsi_cmd_clean(int argc, char **argv)
{
	int dry = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0) {
			dry = 1;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: hps clean [--dry-run]\n\n"
			       "Removes the shared-memory segments (in $HPS_SHM_DIR, default /dev/shm) of hps jobs\n"
			       "whose launcher and processes are all dead. Segments of running jobs are kept.\n"
			       "  -n, --dry-run   only list what would be removed\n");
			return 0;
		} else {
			fprintf(stderr, "hps clean: unknown option '%s' (see hps clean --help)\n", argv[i]);
			return 2;
		}
	}
	int n = hpsi_clean_segments(dry, 1);
	if (n < 0)
		return 1;
	printf("%d segment%s %s\n", n, n == 1 ? "" : "s", dry ? "to remove" : "removed");
	return 0;
}
