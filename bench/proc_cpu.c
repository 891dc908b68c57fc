#include "bench/proc_cpu.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/bell.h"

static const char *const role_names[NCPU_ROLES] = {"bridge", "server", "worker", "zmq", "other"};

/* The two namespaces (device and inode of their nsfs files), found once. */
static struct {
	int found;
	dev_t dev;
	ino_t ino[2];
} nss;

static int find_namespaces(void)
{
	if (nss.found)
		return nss.found > 0 ? 0 : -1;
	nss.found = -1;
	struct stat self, st;
	if (stat("/proc/self/ns/net", &self))
		return -1;
	DIR *d = opendir("/run/netns");
	if (!d)
		return -1;
	char path[512], name[256] = "";
	struct dirent *e;
	while ((e = readdir(d))) {
		snprintf(path, sizeof path, "/run/netns/%s", e->d_name);
		if (e->d_name[0] != '.' && !stat(path, &st) && st.st_ino == self.st_ino && st.st_dev == self.st_dev) {
			snprintf(name, sizeof name, "%s", e->d_name);
			break;
		}
	}
	closedir(d);
	size_t len = strlen(name);
	if (len < 2 || (name[len - 1] != 'a' && name[len - 1] != 'b'))
		return -1;
	int me = name[len - 1] == 'b';
	name[len - 1] = me ? 'a' : 'b';
	snprintf(path, sizeof path, "/run/netns/%s", name);
	if (stat(path, &st) || st.st_dev != self.st_dev)
		return -1;
	nss.dev = self.st_dev;
	nss.ino[me] = self.st_ino;
	nss.ino[!me] = st.st_ino;
	nss.found = 1;
	return 0;
}

static int role_of(int pid)
{
	char path[64], cmd[4096];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return CPU_OTHER;
	size_t n = fread(cmd, 1, sizeof cmd - 1, f);
	fclose(f);
	cmd[n] = 0;
	size_t a0 = strlen(cmd);
	const char *arg1 = a0 + 1 < n ? cmd + a0 + 1 : "";
	if (!strcmp(arg1, "bridge"))
		return CPU_BRIDGE;
	if (!strcmp(arg1, "server"))
		return CPU_SERVER;
	if (!strcmp(arg1, "--net-worker"))
		return CPU_WORKER;
	if (!strncmp(arg1, "--zmq-", 6))
		return CPU_ZMQ;
	return CPU_OTHER;
}

/* utime and stime (fields 14 and 15 of /proc/PID/stat; the command, field
 * 2, may hold spaces, so counting starts after its closing parenthesis). */
static int read_times(int pid, double *user, double *sys)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut, st;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	*user = (double)ut, *sys = (double)st;
	return 0;
}

/* Time on a CPU of every live thread, in ns (first field of schedstat). */
static double run_ns(int pid)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%d/task", pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	double sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%d/schedstat", pid, atoi(e->d_name));
		FILE *f = fopen(path, "r");
		unsigned long long ns;
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += (double)ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

static void machine_ticks(double *busy, double *all)
{
	unsigned long long v[8] = {0};
	FILE *f = fopen("/proc/stat", "r");
	*busy = *all = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &v[6], &v[7]) == 8) {
		for (int i = 0; i < 8; i++)
			*all += (double)v[i];
		*busy = *all - (double)v[3] - (double)v[4]; /* not idle, not waiting for I/O */
	}
	fclose(f);
}

int cpu_snap_take(struct cpu_snap *s)
{
	if (find_namespaces())
		return -1;
	s->n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	struct dirent *e;
	char path[64];
	while ((e = readdir(d)) && s->n < CPU_SNAP_MAX) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		int pid = atoi(e->d_name);
		struct stat st;
		snprintf(path, sizeof path, "/proc/%d/ns/net", pid);
		if (stat(path, &st) || st.st_dev != nss.dev || (st.st_ino != nss.ino[0] && st.st_ino != nss.ino[1]))
			continue;
		int i = s->n;
		if (read_times(pid, &s->p[i].user_tk, &s->p[i].sys_tk))
			continue; /* gone */
		s->p[i].pid = pid;
		s->p[i].host = st.st_ino == nss.ino[1];
		s->p[i].role = role_of(pid);
		s->p[i].run_ns = run_ns(pid);
		s->n++;
	}
	closedir(d);
	machine_ticks(&s->busy_tk, &s->all_tk);
	s->wall_ns = (double)hpsi_now_ns();
	return 0;
}

void cpu_use_add(struct cpu_use *u, const struct cpu_snap *a, const struct cpu_snap *b)
{
	for (int j = 0; j < b->n; j++)
		for (int i = 0; i < a->n; i++) {
			if (a->p[i].pid != b->p[j].pid)
				continue;
			int h = b->p[j].host, r = b->p[j].role;
			u->ns[h][r] += b->p[j].run_ns - a->p[i].run_ns;
			u->user_tk[h][r] += b->p[j].user_tk - a->p[i].user_tk;
			u->sys_tk[h][r] += b->p[j].sys_tk - a->p[i].sys_tk;
			break;
		}
	u->wall_ns += b->wall_ns - a->wall_ns;
	u->busy_tk += b->busy_tk - a->busy_tk;
	u->all_tk += b->all_tk - a->all_tk;
	u->windows++;
}

static double sys_pct(double user, double sys)
{
	return user + sys > 0 ? 100 * sys / (user + sys) : 0;
}

void cpu_use_print(const struct cpu_use *u, const char *what, double bytes)
{
	if (!u->windows || bytes <= 0)
		return;
	double ns = 0, ut = 0, st = 0;
	printf("# cpu %s:", what);
	for (int r = 0; r < NCPU_ROLES; r++)
		for (int h = 0; h < 2; h++) {
			if (u->ns[h][r] / bytes < 0.0005) /* idle here (a one-host job has no bridges) */
				continue;
			printf(" %s_%c %.3f ns/B (sys %.0f%%),", role_names[r], "ab"[h], u->ns[h][r] / bytes,
			       sys_pct(u->user_tk[h][r], u->sys_tk[h][r]));
			ns += u->ns[h][r], ut += u->user_tk[h][r], st += u->sys_tk[h][r];
		}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf(" total %.3f ns/B (sys %.0f%%); ours %.2f CPUs, machine %.2f of %ld CPUs busy\n", ns / bytes,
	       sys_pct(ut, st), ns / u->wall_ns, u->all_tk > 0 ? (double)ncpu * u->busy_tk / u->all_tk : 0, ncpu);
	fflush(stdout);
}
