/* The scheduler's view of every host's totals, as a text file (see
 * hosts_stats.h): one line per host, NAME STATE and ten numbers in the
 * order of struct hpsi_host_totals. */
#include "runtime/cluster/hosts_stats.h"
#include "shm/liveness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The writer's pid and start time come first, so that `hps clean` can
 * tell the file of a scheduler killed with SIGKILL. */
#define HOSTS_HEADER "# hps hosts 1 pid=%d birth=%llu: name state requests push_keys pull_keys push_bytes pull_bytes in_flight held errors bridge_out bridge_in\n"

int hpsi_hosts_stats_path(char *out, size_t cap, const char *job)
{
	const char *dir = getenv("HPS_SHM_DIR");
	int n = snprintf(out, cap, "%s/hps-hosts.%s", dir && *dir ? dir : "/dev/shm", job);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

void hpsi_hosts_stats_write(const char *job, const struct hpsi_host_row *rows, uint32_t n)
{
	char path[512], tmp[540];
	if (hpsi_hosts_stats_path(path, sizeof path, job))
		return;
	snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, HOSTS_HEADER, (int)getpid(), (unsigned long long)hpsi_proc_birth(getpid()));
	for (uint32_t i = 0; i < n; i++) {
		const struct hpsi_host_totals *t = &rows[i].t;
		fprintf(f, "%s %s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n", rows[i].name, rows[i].state,
			(unsigned long long)t->requests, (unsigned long long)t->push_keys,
			(unsigned long long)t->pull_keys, (unsigned long long)t->push_bytes,
			(unsigned long long)t->pull_bytes, (unsigned long long)t->in_flight, (unsigned long long)t->held,
			(unsigned long long)t->errors, (unsigned long long)t->bridge_out,
			(unsigned long long)t->bridge_in);
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

int hpsi_hosts_stats_orphan(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	unsigned long long birth = 0;
	int ok = f && fscanf(f, "# hps hosts 1 pid=%d birth=%llu", &pid, &birth) == 2;
	if (f)
		fclose(f);
	return ok && !hpsi_proc_alive((pid_t)pid, birth);
}

uint32_t hpsi_hosts_stats_read(const char *job, struct hpsi_host_row *rows, uint32_t cap)
{
	char path[512], line[1024];
	if (hpsi_hosts_stats_path(path, sizeof path, job))
		return 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	uint32_t n = 0;
	while (n < cap && fgets(line, sizeof line, f)) {
		if (line[0] == '#')
			continue;
		struct hpsi_host_row *r = &rows[n];
		unsigned long long v[10];
		if (sscanf(line, "%63s %7s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", r->name, r->state, &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]) != 12)
			continue;
		r->t = (struct hpsi_host_totals){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
		n++;
	}
	fclose(f);
	return n;
}
