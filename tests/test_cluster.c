/* Multi-host jobs on one machine: network namespaces joined by veth pairs
 * on a Linux bridge stand for hosts (root is needed; the suite exits 77,
 * skipped, only where namespaces cannot be made). Everything made is
 * removed afterwards, on failure too.
 *
 * The namespaces, the jobs on them and the worker program are in
 * tests/netns.c (shared with test_curve.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "net/wire.h"
#include "runtime/cluster/hosts_stats.h"
#include "shm/bell.h"
#include "shm/segment.h"
#include "tests/netns.h"

static void test_cluster_mixed_sums_on_three_hosts(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	/* host names are the namespaces' (HPS_RSH gets {name}) */
	char hosts[512];
	/* host 0 names no address: its bridge listens on HPS_INTERFACE's */
	snprintf(hosts, sizeof hosts, "# name servers workers address\n%s0 1 2\n%s1 1 2 " NET
		 ".2\n%s2 1 2 " NET ".3\n", pfx, pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9411") "HPS_INTERFACE=eth0 %s launch --hosts %s -- %s --cluster-worker sums", pfx,
			hps_bin(), hostsf, self_path);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 6);
	/* the same job on one host gives the same sums (checked the same way) */
	p = start(job_log, "HPS_HEAP_MB=16 HPS_RING_KB=256 %s launch -s 3 -w 6 -- %s --cluster-worker sums", hps_bin(),
		  self_path);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 6);
	ns_down();
}

static void test_cluster_ipv6_and_dmlc_names(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	/* host-local launchers as a tracker would start them: ps-lite's names */
	pid_t sched = start(job_log, "ip netns exec %s0 env DMLC_PS_ROOT_URI=" NET6 "1 DMLC_PS_ROOT_PORT=9421 "
				  "DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=2 %s scheduler",
			    pfx, hps_bin());
	char l0[300], l1[300];
	snprintf(l0, sizeof l0, "%s.a", job_log);
	snprintf(l1, sizeof l1, "%s.b", job_log);
	const char *common = "DMLC_PS_ROOT_URI=" NET6 "1 DMLC_PS_ROOT_PORT=9421 DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=2 "
			     "HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=v6";
	pid_t a = start(l0, "ip netns exec %s0 env %s DMLC_NODE_HOST=" NET6 "1 %s launch --local-servers 1 "
			    "--local-workers 1 -- %s --cluster-worker sums",
			pfx, common, hps_bin(), self_path);
	pid_t b = start(l1, "ip netns exec %s1 env %s DMLC_NODE_HOST=" NET6 "2 %s launch --local-servers 1 "
			    "--local-workers 1 -- %s --cluster-worker sums",
			pfx, common, hps_bin(), self_path);
	int ra = finish(a, 60000), rb = finish(b, 60000);
	if (ra || rb)
		fprintf(stderr, "%s\n---\n%s\n", slurp(l0), slurp(l1));
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rb, 0);
	CU_ASSERT(log_has(l0, "sums ok"));
	CU_ASSERT(log_has(l1, "sums ok"));
	CU_ASSERT_EQUAL(finish(sched, 10000), 0);
	unlink(l0), unlink(l1);
	ns_down();
}

/* Rings of 16 KiB and 400 requests in flight per worker: the bridges'
 * overflow queues, in both directions, lose and reorder nothing. */
static void test_cluster_full_rings(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 2 " NET ".1\n%s1 1 2 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9481") "HPS_RING_KB=16 %s launch --hosts %s -- %s --cluster-worker pipe",
			pfx, hps_bin(), hostsf, self_path);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 4);
	ns_down();
}

/* A job of two host groups, alpha (its servers) and beta (one server),
 * one worker each running --cluster-worker MODE, in namespace 0 with the
 * scheduler and both bridges at "localhost" (env names it). */
struct named_job {
	pid_t sched, a, b;
	char la[300], lb[300];
};

static void named_start(struct named_job *j, const char *env, int alpha_servers, const char *mode)
{
	j->sched = start("/dev/null", "ip netns exec %s0 env %s %s scheduler", pfx, env, hps_bin());
	snprintf(j->la, sizeof j->la, "%s.a", job_log);
	snprintf(j->lb, sizeof j->lb, "%s.b", job_log);
	j->a = start(j->la, "ip netns exec %s0 env %s HPS_HOST=alpha %s launch --local-servers %d --local-workers 1 -- %s --cluster-worker %s",
		     pfx, env, hps_bin(), alpha_servers, self_path, mode);
	j->b = start(j->lb, "ip netns exec %s0 env %s HPS_HOST=beta %s launch --local-servers 1 --local-workers 1 -- %s --cluster-worker %s",
		     pfx, env, hps_bin(), self_path, mode);
}

/* Both host groups end with status 0 and exact sums, then the scheduler. */
static void named_finish(struct named_job *j)
{
	int ra = finish(j->a, 60000), rb = finish(j->b, 60000);
	if (ra || rb)
		fprintf(stderr, "%s\n---\n%s\n", slurp(j->la), slurp(j->lb));
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rb, 0);
	CU_ASSERT(log_has(j->la, "sums ok") && log_has(j->lb, "sums ok"));
	CU_ASSERT_EQUAL(finish(j->sched, 10000), 0);
	unlink(j->la), unlink(j->lb);
}

/* Host names, not only address literals: the scheduler at "localhost",
 * two host groups in one namespace whose bridges listen on it too. */
static void test_cluster_host_names(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(1), 0);
	const char *env = "HPS_ROOT_URI=localhost HPS_ROOT_PORT=9471 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
			  "HPS_NODE_ADDR=localhost HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=names";
	struct named_job j;
	named_start(&j, env, 1, "sums");
	named_finish(&j);
	ns_down();
}

/* Every host's segment holds the same placement of replicas (shm/place.h),
 * laid out by its bridge from the scheduler's assignment: hosts of 2 and 1
 * servers interleave (pi = 0 2 1), on both. */
static void test_cluster_hosts_share_placement(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(1), 0);
	const char *env = "HPS_ROOT_URI=localhost HPS_ROOT_PORT=9598 HPS_NUM_SERVERS=3 HPS_NUM_WORKERS=2 "
			  "HPS_NODE_ADDR=localhost HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=place";
	/* alpha ranks first (hosts by name): servers 0 and 1, worker 0 */
	struct named_job j;
	named_start(&j, env, 2, "long");
	CU_ASSERT(wait_log(j.la, "sums started", 30000));
	struct hpsi_seg sa, sb;
	int ra = hpsi_seg_attach("place", "alpha", &sa), rb = hpsi_seg_attach("place", "beta", &sb);
	CU_ASSERT(ra == 0 && rb == 0);
	if (ra == 0 && rb == 0) {
		static const uint32_t want[] = {0, 2, 1};
		CU_ASSERT_EQUAL(memcmp(hpsi_seg_place(&sa), want, sizeof want), 0);
		CU_ASSERT_EQUAL(memcmp(hpsi_seg_place(&sb), hpsi_seg_place(&sa), 2 * 3 * sizeof(uint32_t)), 0);
	}
	if (ra == 0)
		hpsi_seg_detach(&sa);
	if (rb == 0)
		hpsi_seg_detach(&sb);
	named_finish(&j);
	ns_down();
}

/* A job of two hosts of one server each with HPS_REPLICAS=1 and
 * settings: exact sums, and at the end each server
 * logs a digest of the records of each key range it holds, which for the
 * backup must equal the primary's (keys, push counts and values bit for
 * bit). */
static void replicated_job(const char *settings, const char *mode)
{
	char env[1024];
	snprintf(env, sizeof env,
		 "HPS_ROOT_URI=localhost HPS_ROOT_PORT=9606 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
		 "HPS_NODE_ADDR=localhost HPS_HEAP_MB=16 HPS_RING_KB=1024 HPS_JOB_ID=xrep "
		 "HPS_REPLICAS=1 HPS_LOG=info %s",
		 settings);
	struct named_job j;
	named_start(&j, env, 1, mode);
	int ra = finish(j.a, 60000), rb = finish(j.b, 60000);
	if (ra || rb)
		fprintf(stderr, "%s\n---\n", slurp(j.la)), fprintf(stderr, "%s\n", slurp(j.lb));
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rb, 0);
	CU_ASSERT(log_has(j.la, "sums ok") && log_has(j.lb, "sums ok"));
	unsigned long long n[2][2] = {{0}}, d[2][2] = {{0}};
	read_digests(j.la, n, d); /* alpha: server 0, primary of range 0, backup of 1 */
	read_digests(j.lb, n, d);
	for (int r = 0; r < 2; r++) {
		CU_ASSERT(n[r][0] > 0);
		CU_ASSERT_EQUAL(n[r][1], n[r][0]);
		CU_ASSERT_EQUAL(d[r][1], d[r][0]);
		if (!n[r][0] || n[r][1] != n[r][0] || d[r][1] != d[r][0])
			fprintf(stderr, "%s: range %d: primary %llu keys %016llx, backup %llu keys %016llx\n", settings, r,
				n[r][0], d[r][0], n[r][1], d[r][1]);
	}
	CU_ASSERT_EQUAL(finish(j.sched, 10000), 0);
	unlink(j.la), unlink(j.lb);
}

/* HPS_REPLICAS=1 across hosts: every push reaches the backup on the
 * other host through the bridges, and the workers' waits return once
 * the backups acked. Hashed keys (every push in two parts, inline), then
 * declared ranges, where the 128 KiB push of each worker is one part sent
 * from its shared heap without a copy: the primary on the worker's host
 * forwards it with its values in the worker's heap, which the bridge
 * reads there; then many small pushes over full rings. */
static void test_cluster_replicas_across_hosts(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(1), 0);
	replicated_job("", "sums");
	replicated_job("HPS_KEY_RANGES=0-99999,100000-199999", "sums");
	/* 400 pushes in flight over 16 KiB rings: forwards wait in the
	 * backups' hosts for room in their rings (hpsi_bridge_fwd_retry) */
	replicated_job("HPS_RING_KB=16", "pipe");
	struct named_job j;
	const char *env;
	int ra, rb;
	/* A forward crosses hosts inline: a push part larger than a ring
	 * record (the 128 KiB push over 64 KiB records) fails in one line
	 * with HPS_ETOOBIG and the job ends. */
	env = "HPS_ROOT_URI=localhost HPS_ROOT_PORT=9607 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
	      "HPS_NODE_ADDR=localhost HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=xrep2 "
	      "HPS_REPLICAS=1";
	named_start(&j, env, 1, "sums");
	ra = finish(j.a, 60000), rb = finish(j.b, 60000);
	CU_ASSERT(ra != 0 && rb != 0);
	const char *says = "with HPS_REPLICAS across hosts each server's part of a push must fit a ring record";
	CU_ASSERT(log_has(j.la, says) && log_has(j.lb, says));
	if (!log_has(j.la, says))
		fprintf(stderr, "%s\n", slurp(j.la));
	finish(j.sched, 10000);
	unlink(j.la), unlink(j.lb);
	ns_down();
}

/* As dmlc-core's tracker starts a job: every process alone, with its
 * DMLC_ROLE, the scheduler too, all running one command. */
static void test_cluster_dmlc_tracker_processes(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	const char *env = "DMLC_PS_ROOT_URI=" NET ".1 DMLC_PS_ROOT_PORT=9461 DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=2 "
			  "HPS_HEAP_MB=16 HPS_RING_KB=256";
	static const struct {
		int ns;
		const char *role;
	} procs[] = {{0, "scheduler"}, {0, "server"}, {0, "worker"}, {1, "server"}, {1, "worker"}};
	pid_t pid[5];
	char logs[5][300];
	for (int i = 0; i < 5; i++) {
		snprintf(logs[i], sizeof logs[i], "%s.%d", job_log, i);
		pid[i] = start(logs[i], "ip netns exec %s%d env %s DMLC_ROLE=%s DMLC_NODE_HOST=" NET ".%d %s launch --tracker -- %s --cluster-worker sums",
			       pfx, procs[i].ns, env, procs[i].role, procs[i].ns + 1, hps_bin(), self_path);
		if (i == 0)
			usleep(100000);
	}
	int ok = 0;
	for (int i = 4; i >= 0; i--) {
		int rc = finish(pid[i], 60000);
		if (rc)
			fprintf(stderr, "%s (%s): status %d\n%s\n", procs[i].role, logs[i], rc, slurp(logs[i]));
		CU_ASSERT_EQUAL(rc, 0);
		ok += log_has(logs[i], "sums ok");
		unlink(logs[i]);
	}
	CU_ASSERT_EQUAL(ok, 2);
	ns_down();
}

static void kill_and_watch(const char *victim, const char *settings)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256], h1[32];
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 0 " NET ".2\n", pfx, pfx);
	snprintf(h1, sizeof h1, "%s1", pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9431") "%s %s launch --keep-going --hosts %s -- %s --cluster-worker loop",
			pfx, settings, hps_bin(), hostsf, self_path);
	CU_ASSERT_FATAL(wait_log(job_log, "loop started", 20000));
	usleep(300000);
	/* the victim may not have started yet: the worker's loop runs before
	 * the other host's processes exist (slow to start under TSan) */
	pid_t v = 0;
	for (int t = 0; t < 100 && (v = find_proc(victim, h1)) <= 0; t++)
		usleep(100000);
	CU_ASSERT_FATAL(v > 0);
	kill(v, SIGKILL);
	int64_t t0 = hpsi_now_ns();
	CU_ASSERT(wait_log(job_log, "request failed", 10000));
	int64_t took = (hpsi_now_ns() - t0) / 1000000;
	/* HPS_DEAD_MS=1000 and heartbeats every 100 ms: well inside 5 s */
	CU_ASSERT(took < 5000);
	finish(p, 20000);
	const char *o = slurp(job_log);
	CU_ASSERT(strstr(o, "[scheduler] ") && (strstr(o, " died") || strstr(o, " dead"))); /* it reports the node */
	if (!strstr(o, "request failed") || took >= 5000)
		fprintf(stderr, "%s\n", o);
	ns_down();
}

static void test_cluster_bridge_killed(void)
{
	kill_and_watch("bridge", "");
}

static void test_cluster_remote_server_killed(void)
{
	kill_and_watch("server", "");
}

/* HPS_REPLICAS=1 across two hosts of one server and one worker each:
 * kill -9 the other host's server in the middle of the pushes. Its key
 * range goes on at its backup on the launcher's host (FENCE, then the
 * rings read again from the oldest request not answered:
 * net/bridge_failover.c): the launcher's worker's requests to it are
 * resent from its host's ring, the other worker's by its host's bridge,
 * which reads the ring the dead server left. Exact sums, exit 0. */
/* Two hosts of one server each (host 1 with host1_workers workers, host 0
 * with one), --replicas 1, every worker pushing back to back (busy); the
 * workers touch *mark once they run. env: more settings; flags: more
 * options of hps launch. Returns the launcher's pid. */
static pid_t busy_replicated_job(const char *port, int host1_workers, const char *env, const char *flags, char *mark,
				 size_t cap)
{
	char settings[512];
	snprintf(settings, sizeof settings, "HPS_REPLICAS=1 %s", env);
	return hosts_job(port, 2, (const int[2]){1, host1_workers}, settings, flags, "busy", mark, cap);
}

static void test_cluster_replica_takes_over_across_hosts(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300];
	pid_t p = busy_replicated_job("9433", 1, "HPS_TIMEOUT_MS=30000", "", mark, sizeof mark);
	pid_t v = proc_of("server", 1);
	CU_ASSERT_FATAL(v > 0);
	/* early in the 1000 rounds of pushes, back to back: requests in
	 * flight on both hosts when it dies (checked once: without the resend
	 * from the oldest request not answered, a push is lost and the job
	 * fails with HPS_ETIMEDOUT) */
	wait_mark(mark);
	kill(v, SIGKILL);
	CU_ASSERT(access(mark, F_OK) == 0);
	unlink(mark);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the workers were still pushing */
	/* (the other host's worker sends everything through the bridges
	 * after the failover: slow under TSan, so the barrier waits longer) */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	CU_ASSERT(strstr(o, "key range 1 goes on at server 0") != NULL);
	if (getenv("SHOWLOG") || !strstr(o, "key range 1 goes on at server 0"))
		fprintf(stderr, "%s\n", o);
	ns_down();
}

/* Recovery across hosts: two hosts of one server and one worker each,
 * --replicas 1 --restart-servers 1, the workers pushing at a pace. kill -9
 * of the second host's server: its range fails over to the first host's,
 * its launcher starts a replacement, which copies both ranges through the
 * bridges (its own handed back across hosts, then the one it backs up)
 * while the pushes go on (net/bridge_recover.c). Once the first host knows
 * it holds both whole, kill -9 of the first host's server (the other
 * replica of every range): the replacement serves both, exact sums, exit
 * 0. */
static void test_cluster_replacement_across_hosts(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300];
	pid_t p = busy_replicated_job("9436", 1, "HPS_TIMEOUT_MS=30000 NETNS_TEST_PACE_US=15000",
				      "--restart-servers 1 --env NETNS_TEST_PACE_US", mark, sizeof mark);
	pid_t v = proc_of("server", 1);
	if (v <= 0)
		fprintf(stderr, "%s\n", slurp(job_log));
	CU_ASSERT_FATAL(v > 0);
	wait_mark(mark);
	kill(v, SIGKILL);
	CU_ASSERT(access(mark, F_OK) == 0);
	unlink(mark);
	/* the first host's bridge learns that the replacement holds both
	 * ranges whole (through the scheduler) */
	CU_ASSERT(wait_log(job_log, "server 1 (incarnation 1) holds every key range whole", 60000));
	CU_ASSERT(!log_has(job_log, "rounds done")); /* it caught up while the pushes ran */
	pid_t a = proc_of("server", 0);
	CU_ASSERT_FATAL(a > 0);
	kill(a, SIGKILL);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	CU_ASSERT(strstr(o, "handed key range 1 back to server 1") != NULL);
	CU_ASSERT(strstr(o, "key range 0 goes on at server 1") != NULL);
	if (getenv("SHOWLOG") || !strstr(o, "key range 0 goes on at server 1"))
		fprintf(stderr, "%s\n", o);
	ns_down();
}

/* HPS_REPLICAS=1 across two hosts, the second of one server and no
 * worker: kill -9 every process of that host (launcher, bridge, server)
 * in the middle of the pushes. No FENCE can come: once the scheduler
 * declared the host dead and HPS_DEAD_MS more passed, the launcher's
 * host fences the dead server itself (net/bridge_failover.c, host_lost)
 * and its backup there takes the key range over. Exact sums; with
 * --keep-going the job goes on. */
static void test_cluster_host_lost_with_replicas(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300];
	pid_t p = busy_replicated_job("9434", 0, "NETNS_TEST_HOLD=1", "--keep-going", mark, sizeof mark);
	pid_t v = proc_of("server", 1), br = proc_of("bridge", 1);
	CU_ASSERT_FATAL(v > 0 && br > 0);
	wait_mark(mark);
	/* the worker holds at round 100 until the mark goes */
	kill(v, SIGKILL);
	kill(br, SIGKILL);
	/* (a process listed may end before its kill: no status to check) */
	sh("ip netns pids %s1 | xargs -r kill -9 2>/dev/null", pfx);
	CU_ASSERT(access(mark, F_OK) == 0);
	unlink(mark);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	/* --keep-going: the job goes on; its status reports the host lost
	 * (137), or 0 when that host's launcher, alone on it once its bridge
	 * and server were gone, ended before it was killed */
	int rc = finish(p, 60000);
	CU_ASSERT(rc == 137 || rc == 0);
	const char *o = slurp(job_log);
	CU_ASSERT(strstr(o, "worker 0: sums ok") != NULL);
	CU_ASSERT(strstr(o, "that host counts as lost") != NULL);
	if (getenv("SHOWLOG") || (rc != 137 && rc != 0) || !strstr(o, "worker 0: sums ok") || !strstr(o, "that host counts as lost"))
		fprintf(stderr, "%s\n", o);
	/* what the lost host's launcher would have removed (its segment and
	 * lobby) is left, as on a real host: here it is this machine's */
	const char *shm = getenv("HPS_SHM_DIR");
	sh("rm -f %s/hps.*.%s1 %s/hps-lobby.*.%s1", shm ? shm : "/dev/shm", pfx, shm ? shm : "/dev/shm", pfx);
	ns_down();
}

/* Random bytes, truncated frames and huge declared lengths at the bridges'
 * and the scheduler's ports while a job runs: it ends with right sums. */
static void test_cluster_garbage_is_dropped(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 1 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9441") "HPS_PORTS=9450-9460 %s launch --hosts %s -- %s --cluster-worker long",
			pfx, hps_bin(), hostsf, self_path);
	CU_ASSERT_FATAL(wait_log(job_log, "sums started", 20000));
	void *z = zmq_ctx_new();
	unsigned seed = 7;
	const char *targets[] = {"tcp://" NET ".1:9450", "tcp://" NET ".2:9450", "tcp://" NET ".1:9441"};
	for (int t = 0; t < 3; t++) {
		/* a ZeroMQ peer saying nonsense */
		void *s = zmq_socket(z, ZMQ_DEALER);
		int linger = 0;
		zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
		char id[5] = {'b', 1, 0, 0, 0}; /* claims to be host 1 */
		if (t == 1)
			id[1] = 0;
		zmq_setsockopt(s, ZMQ_ROUTING_ID, id, sizeof id);
		zmq_connect(s, targets[t]);
		unsigned char junk[4096];
		for (int i = 0; i < 200; i++) {
			size_t n = (size_t)(rand_r(&seed) % sizeof junk);
			for (size_t k = 0; k < n; k++)
				junk[k] = (unsigned char)rand_r(&seed);
			if (i % 4 == 1 && n >= sizeof(struct hpsi_batch_hdr)) { /* a valid header, lying counts */
				struct hpsi_batch_hdr h = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, 1u << 30, 1};
				memcpy(junk, &h, sizeof h);
			}
			if (i % 4 == 2 && n >= sizeof(struct hpsi_batch_hdr) + sizeof(struct hpsi_rec_hdr)) {
				struct hpsi_batch_hdr h = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, 1, 1};
				struct hpsi_rec_hdr r = {0xfffffff0u, 0, 0, 0}; /* a huge record */
				memcpy(junk, &h, sizeof h);
				memcpy(junk + sizeof h, &r, sizeof r);
			}
			if (i % 4 == 3 && n >= sizeof(struct hpsi_sched_hdr)) {
				struct hpsi_sched_hdr h = {HPSI_SCHED_MAGIC, HPSI_WIRE_VERSION, (uint16_t)(i % 9), 0, 0};
				memcpy(junk, &h, sizeof h);
			}
			zmq_send(s, junk, n, i % 7 == 0 ? ZMQ_SNDMORE : 0);
		}
		zmq_send(s, "", 0, 0);
		usleep(50000);
		zmq_close(s);
		/* and a raw TCP peer that never speaks ZeroMQ */
		sh("ip netns exec %s0 bash -c 'head -c 65536 /dev/urandom > /dev/tcp/%s/%s' 2>/dev/null; true", pfx,
		   t == 1 ? NET ".2" : NET ".1", t == 2 ? "9441" : "9450");
	}
	zmq_ctx_term(z);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(job_log), "dropped malformed"));
	ns_down();
}

/* A host-local launcher in namespace 0 with extra settings; returns its
 * exit status and how long it took (ms); output in job_log. */
static int local_launch(const char *settings, int64_t *ms)
{
	int64_t t0 = hpsi_now_ns();
	pid_t p = start(job_log, "ip netns exec %s0 env HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=1 "
			      "HPS_NODE_ADDR=" NET ".1 %s %s launch --local-servers 1 --local-workers 1 -- true",
			pfx, settings, hps_bin());
	int rc = finish(p, 20000);
	*ms = (hpsi_now_ns() - t0) / 1000000;
	return rc;
}

static void expect_error(const char *settings, const char *names, int64_t within_ms)
{
	int64_t ms;
	int rc = local_launch(settings, &ms);
	const char *o = slurp(job_log);
	if (rc == 0 || !strstr(o, names) || ms > within_ms)
		fprintf(stderr, "settings [%s]: status %d after %lld ms, wanted '%s':\n%s\n", settings, rc, (long long)ms,
			names, o);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT(rc != -1); /* it ended by itself */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, names));
	CU_ASSERT(ms <= within_ms);
}

static void test_cluster_configuration_errors(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(1), 0);
	/* an unreachable scheduler: nobody listens there */
	expect_error("HPS_ROOT_URI=" NET ".99 HPS_ROOT_PORT=9501 HPS_REGISTER_MS=800", "HPS_REGISTER_MS", 8000);
	/* a scheduler host name that does not resolve */
	expect_error("HPS_ROOT_URI=no-such-host.invalid HPS_ROOT_PORT=9501", "HPS_ROOT_URI", 8000);
	expect_error("HPS_ROOT_URI=" NET ".1", "HPS_ROOT_PORT", 8000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9501 HPS_INTERFACE=nosuch0 HPS_NODE_ADDR=", "HPS_INTERFACE",
		     8000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9501 HPS_PORTS=9-3", "HPS_PORTS", 8000);
	/* counts that differ from the scheduler's */
	pid_t s = start("/dev/null", "ip netns exec %s0 env HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9502 HPS_NUM_SERVERS=2 "
				     "HPS_NUM_WORKERS=2 HPS_REGISTER_MS=5000 %s scheduler",
			pfx, hps_bin());
	usleep(200000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9502 HPS_REGISTER_MS=5000", "HPS_NUM_SERVERS", 8000);
	finish(s, 5000);
	/* a host whose routing settings differ from the others' */
	s = start("/dev/null", "ip netns exec %s0 env HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9505 HPS_NUM_SERVERS=2 "
			       "HPS_NUM_WORKERS=2 HPS_REGISTER_MS=5000 %s scheduler",
		  pfx, hps_bin());
	usleep(200000);
	char other[300];
	snprintf(other, sizeof other, "%s.other", job_log);
	pid_t o1 = start(other, "ip netns exec %s0 env HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9505 HPS_NUM_SERVERS=2 "
				"HPS_NUM_WORKERS=2 HPS_NODE_ADDR=" NET ".1 HPS_HOST=other HPS_KEY_RANGES=0-99,100-199 "
				"%s launch --local-servers 1 --local-workers 1 -- true",
			 pfx, hps_bin());
	usleep(300000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9505 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 HPS_REGISTER_MS=5000",
		     "different HPS_KEY_RANGES", 8000);
	finish(o1, 5000);
	finish(s, 5000);
	unlink(other);
	/* a host that never shows up: the scheduler waits HPS_REGISTER_MS */
	s = start("/dev/null", "ip netns exec %s0 env HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9503 HPS_NUM_SERVERS=2 "
			       "HPS_NUM_WORKERS=1 HPS_REGISTER_MS=1000 %s scheduler",
		  pfx, hps_bin());
	usleep(200000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9503 HPS_NUM_SERVERS=2 HPS_REGISTER_MS=5000",
		     "never showed up", 8000);
	finish(s, 5000);
	/* a port in use: the first launcher holds 9510 while it waits */
	char held[300];
	snprintf(held, sizeof held, "%s.held", job_log);
	pid_t first = start(held, "ip netns exec %s0 env HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9504 HPS_NUM_SERVERS=1 "
				  "HPS_NUM_WORKERS=1 HPS_NODE_ADDR=" NET ".1 HPS_PORTS=9510 HPS_REGISTER_MS=4000 "
				  "HPS_HOST=first %s launch --local-servers 1 --local-workers 1 -- true",
			    pfx, hps_bin());
	usleep(300000);
	expect_error("HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9504 HPS_PORTS=9510", "HPS_PORTS", 8000);
	finish(first, 10000);
	unlink(held);
	/* a hosts file with a bad line */
	write_hosts("h0 1 1\nh1 one 1\n");
	char cmd[600];
	snprintf(cmd, sizeof cmd, "%s launch --hosts %s -- true > %s 2>&1", hps_bin(), hostsf, job_log);
	CU_ASSERT_EQUAL(WEXITSTATUS(system(cmd)), 2);
	char where[300];
	snprintf(where, sizeof where, "%s:2:", hostsf);
	CU_ASSERT(log_has(job_log, where));
	ns_down();
}

/* The scheduler's host shows every host: heartbeats carry each host's
 * totals, the scheduler keeps them in hps-hosts.JOB beside the segments,
 * `hps metrics` there lists both hosts, and the file goes with the job. */
static int both_hosts_busy(void *job)
{
	struct hpsi_host_row rows[4];
	uint32_t n = hpsi_hosts_stats_read(job, rows, 4);
	return n == 2 && rows[0].t.requests > 0 && rows[1].t.requests > 0 && rows[0].t.bridge_out > 0 &&
	       rows[1].t.bridge_out > 0;
}

static void test_cluster_scheduler_shows_every_host(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256], job[64], path[512];
	snprintf(job, sizeof job, "obs%d", (int)getpid());
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 1 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9491") "%s launch --job %s --hosts %s -- %s --cluster-worker long",
			pfx, hps_bin(), job, hostsf, self_path);
	CU_ASSERT(poll_until(both_hosts_busy, job, 20000));
	char cmd[512], log[300], want[256];
	snprintf(log, sizeof log, "%s.metrics", job_log);
	snprintf(cmd, sizeof cmd, "%s metrics --job %s --host %s0", hps_bin(), job, pfx);
	CU_ASSERT_EQUAL(finish(start(log, "%s", cmd), 10000), 0);
	const char *m = slurp(log);
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof want, "hps_host_requests_total{job=\"%s\",host=\"%s%d\"} ", job, pfx, i);
		CU_ASSERT_PTR_NOT_NULL(strstr(m, want));
		snprintf(want, sizeof want, "hps_host_up{job=\"%s\",host=\"%s%d\"} 1", job, pfx, i);
		CU_ASSERT_PTR_NOT_NULL(strstr(m, want));
	}
	unlink(log);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 2);
	hpsi_hosts_stats_path(path, sizeof path, job);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	ns_down();
}

/* ---- checkpoints across hosts -------------------------------------------- */

/* The workers of these jobs push integer-valued gradients under Adam
 * (HPS_UPDATER in CK_ENV): worker w pushes the keys k with k % W == w, so
 * each key's pushes come in one order and a continued job is
 * bit-identical whatever the number of servers, hosts or workers. */
#define CK_KEYS 96
#define CK_WIDTH 3
#define CK_SAVED 5 /* rounds before the save: its clock */
#define CK_AFTER 4 /* rounds after it */
#define CK_ENV "HPS_UPDATER=adam:lr=0.05 "

static float ck_grad(int r, int k, int j)
{
	return (float)((k * 7 + r * 3 + j) % 9 - 4);
}

static int ck_push_rounds(hps_ctx *ctx, hps_worker *w, int from, int to)
{
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	uint64_t keys[CK_KEYS];
	float vals[CK_KEYS * CK_WIDTH];
	for (int r = from; r < to; r++) {
		int n = 0;
		for (int k = me; k < CK_KEYS; k += nw, n++) {
			keys[n] = (uint64_t)k;
			for (int j = 0; j < CK_WIDTH; j++)
				vals[n * CK_WIDTH + j] = ck_grad(r, k, j);
		}
		int rc = n ? hps_wait(w, hps_push(w, keys, (size_t)n, vals, &(hps_opts){.width = CK_WIDTH})) : 0;
		if (rc || (rc = hps_clock(w)) < 0) {
			fprintf(stderr, "worker %d: round %d: %s\n", me, r, hps_strerror(rc));
			return 1;
		}
	}
	return 0;
}

/* Every key: a pull that also reaches every server after the clocks
 * sent before it (one ring per worker and server, in order). */
static int ck_pull_all(hps_worker *w, float *out)
{
	uint64_t keys[CK_KEYS];
	for (int k = 0; k < CK_KEYS; k++)
		keys[k] = (uint64_t)k;
	int rc = hps_wait(w, hps_pull(w, keys, CK_KEYS, out, &(hps_opts){.width = CK_WIDTH}));
	if (rc)
		fprintf(stderr, "pull: %s\n", hps_strerror(rc));
	return rc;
}

/* `hps checkpoint [--load] DIR` run by a worker: the command line's path
 * from a process outside the job, on this worker's host. */
static int ck_cli(const char *args)
{
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "env -u HPS_ROLE -u HPS_RANK %s checkpoint %s", hps_bin(), args);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* Worker 0 loads each damaged copy of dir (dir-flip ...) and checks the
 * code and that every table, on every host, is as it was. */
static int ck_refusals(hps_ctx *ctx, hps_worker *w, const char *dir)
{
	static const struct {
		const char *sfx;
		int code;
	} bad[] = {{"-flip", HPS_EPROTO}, {"-trunc", HPS_EPROTO}, {"-missing", HPS_EPROTO},
		   {"-nomanifest", HPS_EPROTO}, {"-nosuchdir", HPS_EINVAL}};
	static float before[CK_KEYS * CK_WIDTH], after[CK_KEYS * CK_WIDTH];
	int fails = ck_pull_all(w, before);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0] && !fails; i++) {
		char path[600];
		snprintf(path, sizeof path, "%s%s", dir, bad[i].sfx);
		int rc = hps_load(ctx, path);
		if (rc != bad[i].code) {
			fprintf(stderr, "load of %s: %d (%s), expected %s\n", path, rc, rc < 0 ? hps_strerror(rc) : "ok",
				hps_strerror(bad[i].code));
			fails++;
		}
		if (ck_pull_all(w, after) || memcmp(before, after, sizeof before)) {
			fprintf(stderr, "the refused load of %s changed the tables\n", path);
			fails++;
		}
	}
	if (!fails)
		printf("damaged checkpoints refused, tables unchanged\n");
	return fails;
}

static int ck_worker(const char *mode, const char *dir)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	int me = hps_rank(ctx);
	char ref[600], args[700];
	static float got[CK_KEYS * CK_WIDTH], want[CK_KEYS * CK_WIDTH];
	snprintf(ref, sizeof ref, "%s.ref", dir);
	if (strcmp(mode, "save") == 0) {
		rc = ck_push_rounds(ctx, w, 0, CK_SAVED) || ck_pull_all(w, got) || hps_barrier(ctx);
		if (!rc && me == 0 && (rc = hps_save(ctx, dir)) != 0)
			fprintf(stderr, "hps_save: %s\n", hps_strerror(rc));
		/* the same tables through `hps checkpoint`, into dir.cli */
		snprintf(args, sizeof args, "%s.cli", dir);
		if (!rc && me == 0 && (rc = ck_cli(args)) != 0)
			fprintf(stderr, "hps checkpoint %s: status %d\n", args, rc);
		rc = rc || hps_barrier(ctx) || ck_push_rounds(ctx, w, CK_SAVED, CK_SAVED + CK_AFTER) || hps_barrier(ctx);
		if (!rc && me == 0) { /* what continuing gives: the reference */
			FILE *f = fopen(ref, "wb");
			rc = ck_pull_all(w, got) || !f || fwrite(got, sizeof got, 1, f) != 1;
			if (f)
				fclose(f);
		}
		if (!rc && me == 0)
			printf("checkpoint saved\n");
	} else if (strcmp(mode, "dead") == 0) {
		/* host 1's bridge is killed once we say so: the save fails in bounded time */
		rc = ck_push_rounds(ctx, w, 0, 1);
		char go[620];
		snprintf(go, sizeof go, "%s.go", dir);
		printf("ready to save\n");
		fflush(stdout);
		for (int t = 0; t < 20000 && access(go, F_OK) != 0; t++)
			usleep(1000);
		int64_t t0 = hpsi_now_ns();
		int code = hps_save(ctx, dir);
		printf("save across a dead host: %s after %lld ms\n", code ? hps_strerror(code) : "success",
		       (long long)((hpsi_now_ns() - t0) / 1000000));
		fflush(stdout);
		_exit(code == HPS_EPEERDEAD ? 0 : 1);
	} else { /* load DIR (and dir.cli with `hps checkpoint --load`), then continue */
		/* tables that differ from the checkpoint's, so that a load shows */
		rc = ck_push_rounds(ctx, w, 100, 101) || hps_barrier(ctx);
		if (!rc && me == 0 && strcmp(mode, "load-all") == 0) {
			rc = ck_refusals(ctx, w, dir);
			snprintf(args, sizeof args, "--load %s.cli", dir);
			if (!rc && (rc = ck_cli(args)) != 0)
				fprintf(stderr, "hps checkpoint %s: status %d\n", args, rc);
		}
		if (!rc && me == 0) {
			int clock = hps_load(ctx, dir);
			if (clock != CK_SAVED) {
				fprintf(stderr, "hps_load: %d (%s), expected clock %d\n", clock,
					clock < 0 ? hps_strerror(clock) : "a clock", CK_SAVED);
				rc = 1;
			}
		}
		rc = rc || hps_barrier(ctx) || ck_push_rounds(ctx, w, CK_SAVED, CK_SAVED + CK_AFTER) || hps_barrier(ctx);
		if (!rc && me == 0) {
			FILE *f = fopen(ref, "rb");
			rc = ck_pull_all(w, got) || !f || fread(want, sizeof want, 1, f) != 1;
			if (f)
				fclose(f);
			if (!rc && memcmp(got, want, sizeof got)) {
				for (int i = 0; i < CK_KEYS * CK_WIDTH; i++)
					if (memcmp(&got[i], &want[i], sizeof got[i])) {
						fprintf(stderr, "key %d [%d]: %a after the load, %a continuing\n", i / CK_WIDTH,
							i % CK_WIDTH, got[i], want[i]);
						break;
					}
				rc = 1;
			}
			if (!rc)
				printf("continued bit-identically\n");
		}
	}
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* The damaged copies of a saved checkpoint that ck_refusals loads. */
static void ck_damage(const char *dir)
{
	CU_ASSERT_EQUAL(sh("for s in flip trunc missing nomanifest; do rm -rf %s-$s; cp -r %s %s-$s; done", dir, dir,
			   dir),
			0);
	char path[700];
	snprintf(path, sizeof path, "%s-flip/server-1.hpsckpt", dir);
	FILE *f = fopen(path, "r+b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fseek(f, 100, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 100, SEEK_SET);
	fputc(c ^ 0x10, f);
	fclose(f);
	struct stat sb;
	snprintf(path, sizeof path, "%s-trunc/server-3.hpsckpt", dir);
	CU_ASSERT_EQUAL(stat(path, &sb), 0);
	CU_ASSERT_EQUAL(truncate(path, sb.st_size - 10), 0);
	snprintf(path, sizeof path, "%s-missing/server-2.hpsckpt", dir);
	CU_ASSERT_EQUAL(unlink(path), 0);
	snprintf(path, sizeof path, "%s-nomanifest/MANIFEST", dir);
	CU_ASSERT_EQUAL(unlink(path), 0);
}

static void ck_expect(pid_t p, const char *what)
{
	int rc = finish(p, 60000);
	const char *o = slurp(job_log);
	if (rc || !strstr(o, what))
		fprintf(stderr, "status %d, wanted '%s':\n%s\n", rc, what, o);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, what));
}

/* Saved by 2 hosts x 2 servers (through hps_save and `hps checkpoint`),
 * loaded into 3 hosts x 1 server and a host of workers only (after five
 * damaged copies were refused, tables unchanged on every host; and through
 * `hps checkpoint --load`) and into one host of 2 servers: the
 * same further pushes give bit for bit what continuing the first job
 * gave, and hps_load returns the saved clock. */
static void test_cluster_checkpoint_across_hosts(void)
{
	char dir[256], hosts[256];
	snprintf(dir, sizeof dir, "/tmp/hps-cluster-ck-%d", (int)getpid());
	CU_ASSERT_EQUAL_FATAL(ns_up(4), 0);
	snprintf(hosts, sizeof hosts, "%s0 2 1 " NET ".1\n%s1 2 1 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9521") CK_ENV "%s launch --hosts %s -- %s --ckpt-worker save %s",
			pfx, hps_bin(), hostsf, self_path, dir);
	ck_expect(p, "checkpoint saved");
	char path[600];
	snprintf(path, sizeof path, "%s/MANIFEST", dir);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	snprintf(path, sizeof path, "%s/server-3.hpsckpt", dir);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	snprintf(path, sizeof path, "%s.partial", dir);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
	ck_damage(dir);
	/* and a host of workers only: its part is empty, its clock none */
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 1 " NET ".2\n%s2 1 1 " NET ".3\n%s3 0 1 " NET ".4\n", pfx,
		 pfx, pfx, pfx);
	write_hosts(hosts);
	p = start(job_log, "ip netns exec %s0 " ENV("9531") CK_ENV "%s launch --hosts %s -- %s --ckpt-worker load-all %s",
		  pfx, hps_bin(), hostsf, self_path, dir);
	ck_expect(p, "continued bit-identically");
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(job_log), "damaged checkpoints refused, tables unchanged"));
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(job_log), "on 4 hosts"));
	char said[64];
	snprintf(said, sizeof said, "(saved at clock %d)", CK_SAVED); /* hps checkpoint --load */
	CU_ASSERT_PTR_NOT_NULL(strstr(slurp(job_log), said));
	p = start(job_log, "env HPS_HEAP_MB=16 HPS_RING_KB=256 " CK_ENV "%s launch -s 2 -w 1 -- %s --ckpt-worker load %s",
		  hps_bin(), self_path, dir);
	ck_expect(p, "continued bit-identically");
	sh("rm -rf %s %s.cli %s.ref %s-flip %s-trunc %s-missing %s-nomanifest", dir, dir, dir, dir, dir, dir, dir);
	ns_down();
}

/* A host whose bridge dies before its part: the save fails with
 * HPS_EPEERDEAD in bounded time, and leaves no checkpoint behind. */
static void test_cluster_checkpoint_host_dies(void)
{
	char dir[256], hosts[256], go[300], h1[32];
	snprintf(dir, sizeof dir, "/tmp/hps-cluster-ckdead-%d", (int)getpid());
	snprintf(go, sizeof go, "%s.go", dir);
	snprintf(h1, sizeof h1, "%s1", pfx);
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 0 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	pid_t p = start(job_log, "ip netns exec %s0 " ENV("9541") "%s launch --keep-going --hosts %s -- %s --ckpt-worker dead %s",
			pfx, hps_bin(), hostsf, self_path, dir);
	CU_ASSERT_FATAL(wait_log(job_log, "ready to save", 20000));
	pid_t v = 0;
	for (int t = 0; t < 100 && (v = find_proc("bridge", h1)) <= 0; t++)
		usleep(100000);
	CU_ASSERT_FATAL(v > 0);
	kill(v, SIGKILL);
	sh("touch %s", go);
	CU_ASSERT(wait_log(job_log, "save across a dead host", 20000));
	finish(p, 20000);
	const char *o = slurp(job_log);
	const char *line = strstr(o, "save across a dead host: ");
	const char *after = line ? strstr(line, " after ") : NULL;
	long long ms = -1;
	if (after && sscanf(after, " after %lld ms", &ms) != 1)
		ms = -1;
	if (!line || !strstr(line, hps_strerror(HPS_EPEERDEAD)) || ms < 0 || ms > 10000)
		fprintf(stderr, "%s\n", o);
	CU_ASSERT(line && strstr(line, hps_strerror(HPS_EPEERDEAD)) != NULL);
	CU_ASSERT(ms >= 0 && ms <= 10000); /* HPS_DEAD_MS=1000: well inside */
	CU_ASSERT_NOT_EQUAL(access(dir, F_OK), 0);
	char partial[300];
	snprintf(partial, sizeof partial, "%s.partial", dir);
	CU_ASSERT_NOT_EQUAL(access(partial, F_OK), 0);
	unlink(go);
	ns_down();
}

/* ---- restarted workers across hosts ------------------------------------- */

/* tests/test_rejoin.c's worker program (pull, check the staleness bound,
 * push, clock; worker 0 checks the exact sums), beside this binary. */
static const char *rejoin_prog(void)
{
	return sibling_prog("test_rejoin");
}

/* 2 hosts x (1 server, 2 workers), --restart-workers 1 and `opts`: worker 3, on the
 * host that does not run the scheduler, kills itself after its push of a
 * random clock was answered, in its first `deaths` incarnations. Returns
 * the job's exit status; the output is in job_log. */
static int rejoin_across_hosts_opts(const char *port_env, const char *staleness, int deaths, uint32_t *at,
				    const char *opts)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 2 " NET ".1\n%s1 1 2 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	*at = 5 + (uint32_t)(rand() % 400);
	pid_t p = start(job_log,
			"ip netns exec %s0 %s%s launch %s --staleness %s --restart-workers 1 --hosts %s -- %s --rejoin-worker %s 0 %u 3 %d",
			pfx, port_env, hps_bin(), opts, staleness, hostsf, rejoin_prog(), strcmp(staleness, "bsp") ? staleness : "0",
			*at, deaths);
	return finish(p, 120000);
}

static int rejoin_across_hosts(const char *port_env, const char *staleness, int deaths, uint32_t *at)
{
	return rejoin_across_hosts_opts(port_env, staleness, deaths, at, "");
}

/* The restart resumes with rank 3 on its host, the others wait for it
 * (BSP or SSP(2), the bound checked at every pull) and the sums are exact. */
static void check_rejoined(const char *port_env, const char *staleness)
{
	uint32_t at;
	int rc = rejoin_across_hosts(port_env, staleness, 1, &at);
	const char *o = slurp(job_log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "[worker 0] sums exact"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "hps launch: restarted worker 3"));
	const char *r = strstr(o, "[worker 3] restart 1 resumes from clock ");
	unsigned resumed = 0;
	CU_ASSERT(r && sscanf(r + strlen("[worker 3] restart 1 resumes from clock "), "%u", &resumed) == 1);
	CU_ASSERT(resumed >= at); /* it died after its push of that clock */
	/* the scheduler counted it against the job's budget */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "restarted a worker: 1 of the job's 1 restarts used"));
	CU_ASSERT_PTR_NULL(strstr(o, "failed: a worker died")); /* no barrier failed */
	/* no answer to the predecessor's requests reached the restart (its
	 * drain waited for them; else: "answer to no pending request") */
	CU_ASSERT_PTR_NULL(strstr(o, "dropped malformed message"));
	if (rc || !strstr(o, "sums exact") || !strstr(o, "restarts used") || strstr(o, "dropped malformed"))
		fprintf(stderr, "worker 3 died at clock %u:\n%s\n", at, o);
	ns_down();
}

static void test_cluster_rejoin_bsp(void)
{
	check_rejoined(ENV("9541"), "bsp");
}

/* Host 1's segment of job "xrj": worker 3 restarted and waiting in its
 * drain for requests its predecessor left in the bridge. */
struct inflight_watch {
	char host[32];
	struct hpsi_seg seg;
	int attached;
};

static int restart_drains(void *arg)
{
	struct inflight_watch *a = arg;
	char path[512];
	if (!a->attached && hpsi_seg_path(path, sizeof path, "xrj", a->host) == 0 && access(path, F_OK) == 0)
		a->attached = hpsi_seg_attach("xrj", a->host, &a->seg) == 0;
	if (!a->attached)
		return 0;
	struct hpsi_node *n = hpsi_seg_node(&a->seg, hpsi_worker_node(&a->seg, 3));
	return atomic_load_explicit(&n->incarnation, memory_order_relaxed) > 0 &&
	       atomic_load_explicit(&n->bridge_inflight, memory_order_relaxed) > 0;
}

/* It dies at the start of a clock with that clock's pull and push sent,
 * unanswered; the others end the clock before only once the restart
 * claimed the rank while requests of its predecessor were still in the
 * bridge (the pull to the other host's server is held there by BSP until
 * then). So the restart's drain has to wait for their answers before it
 * drops them and carves the heap slice again; had it not, those answers
 * would come to the restart ("answer to no pending request"), and the
 * sums could break. */
static void test_cluster_rejoin_in_flight(void)
{
	char go[300], how[320];
	snprintf(go, sizeof go, "%s.go", job_log);
	unlink(go);
	snprintf(how, sizeof how, " in-flight:%s", go);
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 2 " NET ".1\n%s1 1 2 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	uint32_t at = 5 + (uint32_t)(rand() % 400);
	pid_t p = start(job_log,
			"ip netns exec %s0 " ENV("9571") "%s launch --job xrj --staleness bsp --restart-workers 1 --hosts %s -- %s --rejoin-worker 0 0 %u 3 1%s",
			pfx, hps_bin(), hostsf, rejoin_prog(), at, how);
	struct inflight_watch w = {.attached = 0};
	snprintf(w.host, sizeof w.host, "%s1", pfx);
	CU_ASSERT(poll_until(restart_drains, &w, 60000));
	if (w.attached)
		hpsi_seg_detach(&w.seg);
	FILE *f = fopen(go, "w");
	if (f)
		fclose(f);
	int rc = finish(p, 120000);
	unlink(go);
	const char *o = slurp(job_log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "[worker 0] sums exact"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "[worker 3] restart 1 resumes from clock "));
	CU_ASSERT_PTR_NULL(strstr(o, "dropped malformed message"));
	if (rc || !strstr(o, "sums exact") || strstr(o, "dropped malformed"))
		fprintf(stderr, "worker 3 died at clock %u:\n%s\n", at + 1, o);
	ns_down();
}

static void test_cluster_rejoin_ssp(void)
{
	check_rejoined(ENV("9551"), "2");
}

/* A second death of worker 3 is beyond --restart-workers 1: final, as
 * without the option: the scheduler fails the barriers with HPS_EPEERDEAD
 * (--keep-going, so that the others come to theirs) and the job fails. */
static void test_cluster_rejoin_budget_spent(void)
{
	uint32_t at;
	int rc = rejoin_across_hosts_opts(ENV("9561"), "bsp", 2, &at, "--keep-going");
	const char *o = slurp(job_log);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	const char *first = strstr(o, "hps launch: restarted worker 3");
	CU_ASSERT(first && !strstr(first + 1, "hps launch: restarted worker 3")); /* once */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "scheduler: worker 3 (host "));
	char failed[96]; /* the barrier open at its death: the one at the next multiple of 100 */
	snprintf(failed, sizeof failed, "scheduler: barrier %u failed: a worker died", at / 100);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, failed));
	/* the others' pulls miss its pushes from then on (the servers
	 * finished it), or their barrier fails: no exact sums */
	CU_ASSERT_PTR_NULL(strstr(o, "sums exact"));
	if (!rc || !strstr(o, failed))
		fprintf(stderr, "worker 3 died at clock %u twice (want \"%s\"):\n%s\n", at, failed, o);
	ns_down();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return cluster_worker(argv[2]);
	if (argc == 4 && strcmp(argv[1], "--ckpt-worker") == 0)
		return ck_worker(argv[2], argv[3]);
	int skip = netns_suite_start("test_cluster");
	if (skip)
		return skip;
	static const struct test_case cases[] = {
		{"test_cluster_mixed_sums_on_three_hosts", test_cluster_mixed_sums_on_three_hosts},
		{"test_cluster_ipv6_and_dmlc_names", test_cluster_ipv6_and_dmlc_names},
		{"test_cluster_dmlc_tracker_processes", test_cluster_dmlc_tracker_processes},
		{"test_cluster_host_names", test_cluster_host_names},
		{"test_cluster_hosts_share_placement", test_cluster_hosts_share_placement},
		{"test_cluster_replicas_across_hosts", test_cluster_replicas_across_hosts},
		{"test_cluster_full_rings", test_cluster_full_rings},
		{"test_cluster_scheduler_shows_every_host", test_cluster_scheduler_shows_every_host},
		{"test_cluster_bridge_killed", test_cluster_bridge_killed},
		{"test_cluster_remote_server_killed", test_cluster_remote_server_killed},
		{"test_cluster_replica_takes_over_across_hosts", test_cluster_replica_takes_over_across_hosts},
		{"test_cluster_replacement_across_hosts", test_cluster_replacement_across_hosts},
		{"test_cluster_host_lost_with_replicas", test_cluster_host_lost_with_replicas},
		{"test_cluster_garbage_is_dropped", test_cluster_garbage_is_dropped},
		{"test_cluster_configuration_errors", test_cluster_configuration_errors},
		{"test_cluster_checkpoint_across_hosts", test_cluster_checkpoint_across_hosts},
		{"test_cluster_checkpoint_host_dies", test_cluster_checkpoint_host_dies},
		{"test_cluster_rejoin_bsp", test_cluster_rejoin_bsp},
		{"test_cluster_rejoin_ssp", test_cluster_rejoin_ssp},
		{"test_cluster_rejoin_in_flight", test_cluster_rejoin_in_flight},
		{"test_cluster_rejoin_budget_spent", test_cluster_rejoin_budget_spent},
		{NULL, NULL},
	};
	int rc = run_suite("cluster", cases);
	netns_suite_end();
	return rc;
}
