/* CPU time that the processes of net_bench's two namespace hosts spend,
 * by host and role, read from /proc around a timed window: what net_bench
 * prints as CPU time per byte moved (`# cpu ...` lines). Both hosts share
 * the machine's CPUs, so these figures say where a throughput that is
 * bound by CPU goes. */
#ifndef HPS_BENCH_PROC_CPU_H
#define HPS_BENCH_PROC_CPU_H

#include <stddef.h>
#include <sys/types.h>

/* Roles, from a process's command line: `hps bridge`, `hps server`,
 * net_bench --net-worker, net_bench --zmq-* (the raw ZeroMQ baselines),
 * anything else (launchers, shells). */
enum cpu_role { CPU_BRIDGE, CPU_SERVER, CPU_WORKER, CPU_ZMQ, CPU_OTHER, NCPU_ROLES };

#define CPU_SNAP_MAX 64

/* One reading of the processes in both namespaces and of the machine. */
struct cpu_snap {
	int n;
	struct {
		pid_t pid;
		int host; /* 0: namespace ...a (servers), 1: ...b (workers) */
		int role;
		double run_ns;            /* on a CPU, every live thread (schedstat) */
		double user_tk, sys_tk;   /* utime, stime of the process (clock ticks) */
	} p[CPU_SNAP_MAX];
	double wall_ns;
	double busy_tk, all_tk; /* the machine's CPUs: busy and all ticks (/proc/stat) */
};

/* What a phase cost: the sum of the windows added to it. */
struct cpu_use {
	double ns[2][NCPU_ROLES];             /* CPU time by host and role */
	double user_tk[2][NCPU_ROLES], sys_tk[2][NCPU_ROLES];
	double wall_ns, busy_tk, all_tk;
	int windows;
};

/* Reads the processes of the namespace this process runs in and of its
 * partner (net_bench's namespaces are NAMEa and NAMEb in /run/netns).
 * 0, or -1 when this process runs in no such namespace. */
int cpu_snap_take(struct cpu_snap *s);
/* Adds the CPU time spent between two readings by the processes present
 * in both. */
void cpu_use_add(struct cpu_use *u, const struct cpu_snap *before, const struct cpu_snap *after);
/* Prints `# cpu WHAT: ROLE_HOST X ns/B (sys P%), ..., total X ns/B (sys P%);
 * ours C CPUs, machine M of N CPUs busy` for `bytes` moved in the windows
 * (roles below 0.0005 ns/B are left out). */
void cpu_use_print(const struct cpu_use *u, const char *what, double bytes);

#endif
