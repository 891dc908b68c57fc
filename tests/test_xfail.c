/* Failover across hosts beyond two hosts and K = 1 (HPS_REPLICAS with
 * --hosts; docs/ARCHITECTURE.md, "Failover across hosts"): three
 * network-namespace hosts of one server each, workers pushing back to
 * back (tests/netns.c, mode busy), and servers, bridges or whole hosts
 * killed with -9 in the middle. Every case ends with exact sums.
 *
 * With three hosts of one server each the placement order is the
 * identity (shm/place.c), so key range r lives on servers r, r+1 (and
 * r+2 with K = 2), all on different hosts: host i runs server i. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/bell.h"
#include "tests/netns.h"

static pid_t three_host_job(const char *port, const int workers[3], const char *env, const char *flags, char *mark,
			    size_t cap)
{
	return hosts_job(port, 3, workers, env, flags, "busy", mark, cap);
}

static void show_log_if(int bad)
{
	if (bad || getenv("SHOWLOG"))
		fprintf(stderr, "%s\n", slurp(job_log));
}

/* kill -9 of the server of host 1 (primary of key range 1): the range
 * goes on at server 2, on host 2. For host 0's worker the new primary is
 * on a third host: host 0's bridge resends the requests not answered from
 * its worker's ring towards host 2 (net/bridge_failover.c, move_ranges),
 * host 1's bridge those of no worker (host 1 runs none), host 2's server
 * reads its own worker's ring from where host 1's bridge left it. */
static void test_xfail_new_primary_on_third_host(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = three_host_job("9471", (const int[3]){1, 0, 1}, "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000", "", mark,
				 sizeof mark);
	kill_server_at_mark(1, mark);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the workers were still pushing */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	const char *o = slurp(job_log);
	int moved = strstr(o, "key range 1 goes on at server 2 (host 2)") != NULL;
	CU_ASSERT(moved);
	/* host 1's bridge sent the FENCE, though its launcher, left with no
	 * node, asked it to leave at once (hpsi_bridge_failover_leave): no
	 * host waited HPS_DEAD_MS more to count host 1 lost */
	int fenced = strstr(o, "that host counts as lost") == NULL;
	CU_ASSERT(fenced);
	show_log_if(!moved || !fenced);
	ns_down();
}

/* Every process of host 1 (launcher, bridge, server) killed during the
 * pushes, with three hosts: no FENCE comes, hosts 0 and 2 fence server 1
 * themselves one heartbeat after the scheduler declared it dead
 * (host_lost: no node of host 1 runs), and range 1 goes on at server 2. A push of host 0's
 * worker that server 1 answered but whose forward to server 2 was still
 * in host 1's bridge when it died is not complete: host 0's bridge
 * keeps it in the ring until server 2 acked it, and resends it
 * (test_xfail_host_lost_with_forwards_in_it makes that moment). Host 1
 * runs no worker: a dead worker fails the others' barrier. */
static void test_xfail_host_lost_of_three(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	/* one worker, which holds (NETNS_TEST_HOLD): the kill comes in the
	 * middle of its pushes, however slow the test is to get there */
	pid_t p = three_host_job("9472", (const int[3]){1, 0, 0}, "HPS_REPLICAS=1 NETNS_TEST_HOLD=1", "--keep-going",
				 mark, sizeof mark);
	pid_t v = proc_of("server", 1), br = proc_of("bridge", 1);
	CU_ASSERT_FATAL(v > 0 && br > 0);
	CU_ASSERT(wait_mark(mark));
	/* worker 0 holds at round 100 until the mark goes; the other pushes */
	kill(br, SIGKILL);
	kill(v, SIGKILL);
	sh("ip netns pids %s1 | xargs -r kill -9 2>/dev/null", pfx);
	unlink(mark);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	/* the lost host's status (137), or 0 when its launcher ended alone
	 * before it was killed */
	int rc = finish(p, 120000);
	CU_ASSERT(rc == 137 || rc == 0);
	const char *o = slurp(job_log);
	int ok = strstr(o, "worker 0: sums ok") && strstr(o, "that host counts as lost");
	CU_ASSERT(ok);
	show_log_if(!ok || (rc != 137 && rc != 0));
	/* what the lost host's launcher would have removed is this machine's */
	const char *shm = getenv("HPS_SHM_DIR");
	sh("rm -f %s/hps.*.%s1 %s/hps-lobby.*.%s1", shm ? shm : "/dev/shm", pfx, shm ? shm : "/dev/shm", pfx);
	ns_down();
}

/* The moment the note in ARCHITECTURE predicted: host 1 lost while
 * server 1 had answered pushes whose forwards to server 2 (host 2) were
 * still in host 1 (HPS_FAILPOINT=holdfwd: host 1's bridge holds its
 * forwards to other hosts after its 400th, about round 100, while its
 * answers go out). The workers wait for server 2's acks of those
 * pushes, which never come: server 2 never got them. Their hosts'
 * bridges keep each push in the worker's ring until every remote backup
 * acked it, so after the failover server 2 reads them again and applies
 * them once. Exact sums (without that: HPS_ETIMEDOUT after HPS_TIMEOUT_MS). */
static void test_xfail_host_lost_with_forwards_in_it(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300], env[200];
	/* HPS_TIMEOUT_MS: the workers wait for the acks from the hold until
	 * the failover, which comes only after the test saw the hold's line
	 * (relayed from host 1: seconds on a loaded machine) and killed host 1 */
	snprintf(env, sizeof env, "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 HPS_FAILPOINT=holdfwd:%s1:400", pfx);
	/* both workers on host 0: for a worker on host 2, the answer and the
	 * forward would take one stream (host 1 to host 2, forwards first),
	 * which the failpoint, holding every forward, does not model */
	pid_t p = three_host_job("9475", (const int[3]){2, 0, 0}, env, "--keep-going", mark, sizeof mark);
	pid_t v = proc_of("server", 1), br = proc_of("bridge", 1);
	CU_ASSERT_FATAL(v > 0 && br > 0);
	CU_ASSERT(wait_log(job_log, "forwards to other hosts are held from now on", 30000));
	/* the answers of the pushes held leave host 1 at once, but nothing
	 * outside the workers' rings tells they arrived: a pause instead */
	usleep(300000);
	kill(br, SIGKILL);
	kill(v, SIGKILL);
	sh("ip netns pids %s1 | xargs -r kill -9 2>/dev/null", pfx);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	int rc = finish(p, 120000);
	CU_ASSERT(rc == 137 || rc == 0);
	const char *o = slurp(job_log);
	int ok = strstr(o, "worker 0: sums ok") && strstr(o, "worker 1: sums ok");
	CU_ASSERT(ok);
	show_log_if(!ok || (rc != 137 && rc != 0));
	const char *shm = getenv("HPS_SHM_DIR");
	sh("rm -f %s/hps.*.%s1 %s/hps-lobby.*.%s1", shm ? shm : "/dev/shm", pfx, shm ? shm : "/dev/shm", pfx);
	unlink(mark);
	ns_down();
}

/* K = 2 across three hosts: kill -9 of server 1 (range 1 goes on at
 * server 2), then, once every host moved it, of server 2 (ranges 1 and 2
 * go on at server 0, their last replica). Exact sums, exit 0. */
static void test_xfail_two_replicas_die(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = three_host_job("9473", (const int[3]){1, 1, 1}, "HPS_REPLICAS=2 HPS_TIMEOUT_MS=30000", "", mark,
				 sizeof mark);
	pid_t v1 = proc_of("server", 1), v2 = proc_of("server", 2);
	CU_ASSERT_FATAL(v1 > 0 && v2 > 0);
	CU_ASSERT(wait_mark(mark));
	kill(v1, SIGKILL);
	unlink(mark);
	/* host 0's bridge logs it once the FENCE came: the second death then
	 * finds the first handed on there */
	CU_ASSERT(wait_log(job_log, "key range 1 goes on at server 2 (host 2)", 20000));
	kill(v2, SIGKILL);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3); /* every worker lives on */
	const char *o = slurp(job_log);
	int moved = strstr(o, "key range 1 goes on at server 0") && strstr(o, "key range 2 goes on at server 0");
	CU_ASSERT(moved);
	show_log_if(!moved);
	ns_down();
}

/* kill -9 of host 1's bridge alone (ARCHITECTURE, step 5): to the other
 * hosts host 1 is lost, and they take its ranges over after
 * HPS_DEAD_MS; host 1's launcher kills its nodes at once, so that its
 * server does not go on serving a range that another host took over.
 * --keep-going: the job goes on with exact sums, and ends with host 1's
 * status. */
static void test_xfail_bridge_dies_alone(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = three_host_job("9474", (const int[3]){1, 0, 1}, "HPS_REPLICAS=1", "--keep-going", mark, sizeof mark);
	pid_t br = proc_of("bridge", 1), v = proc_of("server", 1);
	CU_ASSERT_FATAL(br > 0 && v > 0);
	CU_ASSERT(wait_mark(mark));
	kill(br, SIGKILL);
	unlink(mark);
	/* its launcher ends the server at once: SIGKILL, no grace (polled,
	 * bounded) */
	int gone = 0;
	for (int t = 0; t < 200 && !(gone = kill(v, 0) != 0); t++)
		usleep(10000);
	CU_ASSERT(gone);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	int rc = finish(p, 120000);
	CU_ASSERT(rc != 0); /* a bridge lost while needed fails its host */
	const char *o = slurp(job_log);
	int ok = strstr(o, "worker 0: sums ok") && strstr(o, "worker 1: sums ok") &&
		 strstr(o, "key range 1 goes on at server 2 (host 2)") &&
		 strstr(o, "its 1 node killed at once");
	CU_ASSERT(ok);
	show_log_if(!ok || !gone || rc == 0);
	const char *shm = getenv("HPS_SHM_DIR");
	sh("rm -f %s/hps.*.%s1 %s/hps-lobby.*.%s1", shm ? shm : "/dev/shm", pfx, shm ? shm : "/dev/shm", pfx);
	ns_down();
}

/* Replacement servers across three hosts (--replicas 1 --restart-servers
 * 1; net/bridge_recover.c): a worker on every host, pushing at a pace.
 * kill -9 of server 1: range 1 goes on at server 2 (host 2), host 1's
 * launcher starts a replacement, which copies range 0 from server 0 and
 * takes range 1 back from server 2 while the pushes go on. Host 0 is the
 * third host of that hand-back: it learns it from host 2's HANDBACK
 * record and sends range 1's requests to host 1 from then on (without
 * it, host 2 holds them and never answers: the workers time out). Once
 * the other hosts know the replacement holds both ranges whole, kill -9
 * of server 0, the other replica of range 0: range 0 goes on at the
 * replacement, a replacement of server 0 takes it back (host 2 the third
 * host this time). Exact sums, exit 0. */
static void test_xfail_replacement_on_three_hosts(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = three_host_job("9476", (const int[3]){1, 1, 1},
				 "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 NETNS_TEST_PACE_US=15000", "--restart-servers 1",
				 mark, sizeof mark);
	kill_server_at_mark(1, mark);
	/* hosts 0 and 2 learn (through the scheduler) that the replacement
	 * holds both ranges whole */
	int whole = wait_log(job_log, "server 1 (incarnation 1) holds every key range whole", 60000);
	CU_ASSERT(whole);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* it caught up while the pushes ran */
	pid_t a = proc_of("server", 0);
	CU_ASSERT_FATAL(a > 0);
	kill(a, SIGKILL);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3);
	const char *o = slurp(job_log);
	int ok = strstr(o, "server 2 handed key range 1 back to server 1 (host 1)") &&
		 strstr(o, "server 2 (host 2) handed key range 1 back to server 1 (host 1)") &&
		 strstr(o, "key range 0 goes on at server 1");
	CU_ASSERT(ok);
	show_log_if(!ok || !whole);
	ns_down();
}

/* K = 2 with replacement servers across three hosts (--replicas 2
 * --restart-servers 1): every server holds every key range (range r on
 * servers r, r+1, r+2). kill -9 of server 1: its replacement copies
 * ranges 0 and 2, which it backs up, and takes range 1 back from server
 * 2, while the workers of all three hosts push. Once the other hosts know
 * it holds every range whole, kill -9 of server 0 and, once every host
 * moved range 0 on, of server 2: two servers dead at once, the
 * replacement the live replica of every range (and the source of the
 * other replacements' copies). Exact sums, exit 0. */
static void test_xfail_replacements_with_two_replicas(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(3), 0);
	char mark[300];
	pid_t p = three_host_job("9478", (const int[3]){1, 1, 1},
				 "HPS_REPLICAS=2 HPS_TIMEOUT_MS=30000 NETNS_TEST_PACE_US=15000", "--restart-servers 1",
				 mark, sizeof mark);
	kill_server_at_mark(1, mark);
	int whole = wait_log(job_log, "server 1 (incarnation 1) holds every key range whole", 60000);
	CU_ASSERT(whole);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* it caught up while the pushes ran */
	pid_t a = proc_of("server", 0), c = proc_of("server", 2);
	CU_ASSERT_FATAL(a > 0 && c > 0);
	kill(a, SIGKILL);
	/* every host's bridge moved range 0 on: the second death finds the
	 * first handed on everywhere */
	int moved = 1;
	for (int h = 0; h < 3; h++) {
		char line[120];
		snprintf(line, sizeof line, "bridge %s%d: server 0 died: key range 0 goes on at server 1", pfx, h);
		moved &= wait_log(job_log, line, 20000);
	}
	CU_ASSERT(moved);
	kill(c, SIGKILL);
	CU_ASSERT(!log_has(job_log, "rounds done"));
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3);
	const char *o = slurp(job_log);
	int ok = strstr(o, "server 2 (host 2) handed key range 1 back to server 1 (host 1)") &&
		 strstr(o, "key range 0 goes on at server 1") && strstr(o, "key range 2 goes on at server 1");
	CU_ASSERT(ok);
	show_log_if(!ok || !whole || !moved);
	ns_down();
}

/* A replacement that dies in its claim (HPS_FAILPOINT=claimdie:1: after
 * it cleared `fenced`, before it stored JOINING), two hosts: host 1's
 * bridge never sees it JOINING, so it fences the rank again once that
 * process is gone (claimer_gone in net/bridge_failover.c), and the next
 * replacement's claim, which waits for `fenced`, goes on: it catches up
 * (host 0 learns that incarnation 2 holds every range whole). Exact
 * sums, exit 0. Without the second fence the next claim waits until
 * HPS_TIMEOUT_MS and fails (checked once). */
static void test_xfail_replacement_dies_in_its_claim(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300];
	pid_t p = hosts_job("9477", 2, (const int[2]){1, 1},
			    "HPS_REPLICAS=1 HPS_TIMEOUT_MS=30000 NETNS_TEST_PACE_US=15000 HPS_FAILPOINT=claimdie:1",
			    "--restart-servers 2", "busy", mark, sizeof mark);
	kill_server_at_mark(1, mark);
	int whole = wait_log(job_log, "server 1 (incarnation 2) holds every key range whole", 60000);
	CU_ASSERT(whole);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* it caught up while the pushes ran */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 2);
	int died = log_has(job_log, "HPS_FAILPOINT=claimdie: server 1 dies in its claim");
	CU_ASSERT(died);
	show_log_if(!whole || !died);
	ns_down();
}

/* A clock message lost with its primary, under BSP (HPS_FAILPOINT=
 * clockdie:1:0:50: server 1, primary of key range 1, exits when it took
 * worker 0's 50th clock, before it forwarded it to its backup). Worker 0
 * runs on host 0, so the clock crossed the bridges; clocks are not
 * answered, so neither worker 0's ring nor a bridge keeps it for a
 * resend: range 1's next primary (server 2 on a third host with three
 * hosts, server 0 on worker 0's own host with two) never gets it. The
 * other workers' pulls of that clock wait at the new primary for worker
 * 0's clock until worker 0's next request to range 1, its pull, which
 * carries the clock (hpsi_serve_take_clock): no pull is held past
 * HPS_TIMEOUT_MS (a request failed: the worker's status), each pull is
 * within BSP's bound (mode bsp), exact sums, exit 0. */
static void clock_lost(int n, const char *port)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(n), 0);
	char mark[300], moved[80];
	const int workers[3] = {1, 1, 1};
	pid_t p = hosts_job(port, n, workers, "HPS_REPLICAS=1 HPS_STALENESS=bsp HPS_FAILPOINT=clockdie:1:0:50", "",
			    "bsp", mark, sizeof mark);
	CU_ASSERT_EQUAL(job_sums(p, 120000), n);
	const char *o = slurp(job_log);
	snprintf(moved, sizeof moved, "server 1 died: key range 1 goes on at server %d", n == 3 ? 2 : 0);
	int ok = strstr(o, moved) && strstr(o, "clockdie: server 1 exits with clock 50 of worker 0 not forwarded") &&
		 !strstr(o, "outside the BSP bound") && !strstr(o, "a request failed");
	CU_ASSERT(ok);
	if (!ok || getenv("SHOWLOG"))
		fprintf(stderr, "%d hosts:\n%s\n", n, o);
	unlink(mark);
	ns_down();
}

static void test_xfail_clock_lost_with_its_primary(void)
{
	clock_lost(3, "9479");
	clock_lost(2, "9479");
}

/* Random moments (a property over seeds; XFAIL_SEED=N runs seed N
 * alone): 2 or 3 hosts of one server and one worker each, --replicas 1;
 * a random server killed at a random moment (after a random round of
 * worker 0; the others are within a round or two under BSP): with
 * workers pushing back to back (busy), or under BSP, where the fastest
 * worker's pull is mostly held at its server for the others' clocks
 * (bsp: every pull is checked against BSP's bound too). Exact sums, exit
 * 0, whichever host the server was on (the launcher's too). */
static void random_kill(unsigned seed)
{
	unsigned st = seed * 2654435761u + 1;
	st = st * 1103515245u + 12345u;
	int n = 2 + (int)((st >> 16) % 2);
	st = st * 1103515245u + 12345u;
	int victim = (int)((st >> 16) % (unsigned)n);
	st = st * 1103515245u + 12345u;
	const char *mode = seed % 2 ? "busy" : "bsp";
	int round = 5 + (int)((st >> 16) % (seed % 2 ? 600 : 300)); /* of 1000 busy, 600 bsp */
	char port[16], mark[300], env[200];
	snprintf(port, sizeof port, "%u", 9480 + seed % 16);
	CU_ASSERT_EQUAL_FATAL(ns_up(n), 0);
	const int workers[3] = {1, 1, 1};
	/* busy rounds paced at 3 ms on every host (--env): at least 1.2 s of
	 * rounds after the mark. Unpaced, CI on a loaded machine once saw the
	 * mark only after the 1000 rounds had ended (seed 3, "too late") */
	snprintf(env, sizeof env,
		 "HPS_REPLICAS=1 HPS_STALENESS=bsp HPS_TIMEOUT_MS=30000 NETNS_TEST_MARK_ROUND=%d NETNS_TEST_PACE_US=3000",
		 round);
	pid_t p = hosts_job(port, n, workers, env, "--env NETNS_TEST_PACE_US", mode, mark, sizeof mark);
	kill_server_at_mark(victim, mark); /* the random moment: after worker 0's round `round` */
	int late = log_has(job_log, "rounds done");
	int ok = job_sums(p, 120000) == n;
	CU_ASSERT(ok);
	CU_ASSERT(!late); /* the workers were still at it */
	if (!ok || late || getenv("SHOWLOG"))
		fprintf(stderr, "seed %u: %d hosts, %s, server %d killed after round %d%s\n%s\n", seed, n, mode, victim,
			round, late ? " (too late: the rounds were done)" : "", slurp(job_log));
	ns_down();
}

static void test_xfail_random_moments(void)
{
	const char *one = getenv("XFAIL_SEED");
	if (one) {
		random_kill((unsigned)atoi(one));
		return;
	}
	for (unsigned seed = 1; seed <= 4; seed++)
		random_kill(seed);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return cluster_worker(argv[2]);
	int skip = netns_suite_start("test_xfail");
	if (skip)
		return skip;
	static const struct test_case cases[] = {
		{"test_xfail_new_primary_on_third_host", test_xfail_new_primary_on_third_host},
		{"test_xfail_host_lost_of_three", test_xfail_host_lost_of_three},
		{"test_xfail_host_lost_with_forwards_in_it", test_xfail_host_lost_with_forwards_in_it},
		{"test_xfail_two_replicas_die", test_xfail_two_replicas_die},
		{"test_xfail_bridge_dies_alone", test_xfail_bridge_dies_alone},
		{"test_xfail_random_moments", test_xfail_random_moments},
		{"test_xfail_replacement_on_three_hosts", test_xfail_replacement_on_three_hosts},
		{"test_xfail_replacement_dies_in_its_claim", test_xfail_replacement_dies_in_its_claim},
		{"test_xfail_replacements_with_two_replicas", test_xfail_replacements_with_two_replicas},
		{"test_xfail_clock_lost_with_its_primary", test_xfail_clock_lost_with_its_primary},
		{NULL, NULL},
	};
	int rc = run_suite("xfail", cases);
	netns_suite_end();
	return rc;
}
