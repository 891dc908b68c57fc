/* Elastic servers across hosts (issue 12; docs/ARCHITECTURE.md, "Elastic
 * servers across hosts"). Two network namespace hosts of one server each,
 * -s 2 --max-servers 4: ranks 2 and 3 are the last host's (VACANT), while
 * the launch's owner table gives key range 2 to rank 0 on the first host
 * and range 3 to rank 1 on the last, so range 2's rings cross hosts the
 * other way round from its rank. Three workers (two on the first host)
 * push and check exact sums.
 *   room_no_scale: the layout alone; the scheduler lays out 4 server
 *     ranks, and the free ones count as no member that died.
 *   scale: hps scale --servers 2 -> 4 -> 1 -> 3 on the last host while
 *     the workers push: 2 -> 4 moves range 2 across hosts (rank 0 to rank
 *     2) and range 3 within the last host; 4 -> 1 moves ranges 1, 2 and 3
 *     across hosts to rank 0; 1 -> 3 starts the closed ranks 1 and 2
 *     again (a scale back up after a scale down: CLOSED to ALIVE on the
 *     first host by their newer incarnation). Exact sums, the keys
 *     moved per step within 1.5x of the ideal share, and no range moved
 *     to a server at or above the step's count (a move back).
 *   scale_back_to_back: the same steps, each asked once the one before
 *     answered, with no checkpoint between: plans that come after a
 *     later move's FINAL keep that range's entry (the move numbers).
 *   scale_held_closed: the same back to back, the first host holding
 *     each server's first CLOSED back, so that the scale back up starts
 *     ranks 1 and 2 again while that host has them ALIVE.
 *   scale_three_hosts: the same on three hosts of one server each,
 *     3 -> 4 -> 1 -> 4: every move has a third host (the HANDBACK record),
 *     and the last step starts rank 1 again on the middle host, whose
 *     launcher starts it once the plan names it.
 * Both scale cases save a checkpoint before and after each step (the
 * VACANT and CLOSED ranks of the room do no part). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/route.h"
#include "shm/segment.h"
#include "tests/netns.h"

static void room_no_scale(const char *port, const char *mode, const char *flags)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	static const int workers[2] = {2, 1};
	char mark[300];
	pid_t p = hosts_job(port, 2, workers, "HPS_LOG=info", flags, mode, mark,
			    sizeof mark);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3);
	const char *o = slurp(job_log);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "scheduler: 2 hosts, 4 servers, 3 workers: ranks assigned"));
	CU_ASSERT_PTR_NULL(strstr(o, "died")); /* the free ranks 2 and 3 are no dead members */
	ns_down();
}

static void test_xscale_room_no_scale(void)
{
	room_no_scale(ENV("9711"), "sums", "--max-servers 4");
}

/* BSP with clocks: the servers' min clock counts only the ranks that run */
static void test_xscale_room_no_scale_bsp(void)
{
	room_no_scale(ENV("9721"), "bsp", "--max-servers 4 --staleness bsp");
}

/* The keys the servers' "moved key range R (K keys ...) to server T"
 * lines of log[from..] moved, how many such lines (runtime/server/move.c),
 * and how many of them went to a server at or above `servers` (one that
 * leaves, or is not started, at this step: a move back). */
static unsigned long keys_moved(const char *log, size_t from, int *moves, int servers, int *moved_back)
{
	unsigned long sum = 0;
	*moves = *moved_back = 0;
	for (const char *at = log + from; (at = strstr(at, " moved key range ")); at++) {
		unsigned r, keys, to;
		const char *end = strchr(at, '\n'), *dest = strstr(at, ") to server ");
		if (sscanf(at, " moved key range %u (%u keys", &r, &keys) != 2)
			continue;
		sum += keys, ++*moves;
		if (dest && (!end || dest < end) && sscanf(dest, ") to server %u", &to) == 1 && to >= (unsigned)servers) {
			++*moved_back;
			fprintf(stderr, "[moved back: %.*s]\n", end ? (int)(end - at) : 80, at);
		}
	}
	return sum;
}

static int file_exists(void *path)
{
	return access(path, F_OK) == 0;
}

/* hps checkpoint of the running job from the last host (n hosts) into a
 * fresh directory: it must save (the free ranks of the room, VACANT or
 * closed by a scale, do no part) */
static void save_on(int n, const char *job, int step)
{
	static char out[1 << 14], cmd[1024];
	char dir[256];
	snprintf(dir, sizeof dir, "/tmp/hps-xscale-ck-%d-%d", (int)getpid(), step);
	sh("rm -rf %s", dir);
	snprintf(cmd, sizeof cmd, "%s checkpoint --job %s --host %s%d %s", hps_bin(), job, pfx, n - 1, dir);
	int rc = on_host(n - 1, out, sizeof out, cmd);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "saved "));
	if (rc || !strstr(out, "saved "))
		fprintf(stderr, "checkpoint at step %d: %d\n%s\n", step, rc, out);
	sh("rm -rf %s", dir);
}

/* n hosts of one server each, workers[i] on host i, --max-servers 4:
 * hps scale on the last host to steps[0], steps[1] and steps[2] while
 * the workers push; ideal[i]: the share of the keys step i moves; again:
 * how many closed ranks of the other hosts their launchers start again
 * (once each, and none at the job's end, when every server closes). */
/* How scale_hosts runs the steps: a checkpoint before and after each;
 * back to back with every plan stored late on the first host; back to
 * back with every server's first CLOSED held back there. */
enum pacing { SPACED, LATE_PLANS, HELD_CLOSED };

static void scale_hosts(const char *port, int n, const int *workers, const int *steps, const double *ideal, int again,
			enum pacing pacing)
{
	int back_to_back = pacing != SPACED;
	static char out[1 << 16], cmd[4096];
	CU_ASSERT_EQUAL_FATAL(ns_up(n), 0);
	char mark[300], job[32];
	/* a job id of its own per case: a case that failed with its job
	 * still running must not make the next ones fail ("already runs") */
	static int cases;
	snprintf(job, sizeof job, "xs%d%c", (int)getpid() % 100000, 'a' + cases++ % 26);
	/* The rounds paced so that they outlast the three scales: the pace reaches
	 * the workers of every host only through --env (hps launch passes a
	 * host the HPS_ settings and what --env names). After the scale down
	 * worker 0's requests stay on its host and the others' cross hosts: a
	 * round of theirs took ~50 ms under TSan, 7 ms of worker 0's, so
	 * worker 0 waits in its last barrier for them longer than the default
	 * HPS_TIMEOUT_MS (30 s; CI failed so, once). */
	snprintf(cmd, sizeof cmd, "--max-servers 4 --job %s --env NETNS_TEST_PACE_US", job);
	/* back to back: heartbeats every 20 ms, so that the last host reports
	 * the plan of each scale's end before the next scale replaces it,
	 * and the other hosts store each plan 300 ms after it came
	 * (HPS_FAILPOINT=lateplan, net/bridge_scale.c), so that it comes
	 * after the next scale's FINALs, as on a loaded machine */
	/* HPS_DEAD_MS 4 s, not ENV's 1 s: nothing dies here, and under TSan
	 * on a loaded machine a scheduler or bridge went a second without a
	 * heartbeat (new servers starting at once), so a host counted as
	 * lost and its workers' pushes failed (a local run, with a CPU hog) */
	/* held CLOSED: the first host holds each server's first CLOSED 5 s
	 * (HPS_FAILPOINT=holdclosed), so that the scale back up starts ranks
	 * 1 and 2 again while that host still has them ALIVE */
	const char *env = pacing == LATE_PLANS ? "HPS_LOG=info HPS_TIMEOUT_MS=150000 HPS_DEAD_MS=4000 NETNS_TEST_PACE_US=10000 "
						 "HPS_HEARTBEAT_MS=20 HPS_FAILPOINT=lateplan:300"
			  : pacing == HELD_CLOSED ? "HPS_LOG=info HPS_TIMEOUT_MS=150000 HPS_DEAD_MS=4000 NETNS_TEST_PACE_US=10000 "
						  "HPS_FAILPOINT=holdclosed:5000"
						: "HPS_LOG=info HPS_TIMEOUT_MS=150000 HPS_DEAD_MS=4000 NETNS_TEST_PACE_US=10000";
	pid_t p = hosts_job(port, n, workers, env, cmd, "busy", mark, sizeof mark);
	int ready = poll_until(file_exists, mark, 60000);
	CU_ASSERT(ready);
	if (ready && !back_to_back)
		save_on(n, job, 0);
	size_t seen = strlen(slurp(job_log));
	for (int i = 0; ready && i < 3; i++) {
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s%d --servers %d", hps_bin(), job, pfx, n - 1,
			 steps[i]);
		int rc = on_host(n - 1, out, sizeof out, cmd);
		char want[64];
		snprintf(want, sizeof want, "job %s has %d server%s\n", job, steps[i], steps[i] == 1 ? "" : "s");
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_STRING_EQUAL(out, want);
		if (rc || strcmp(out, want))
			fprintf(stderr, "hps scale --servers %d: %d\n%s\n", steps[i], rc, out);
		const char *o = slurp(job_log);
		int moves, back;
		double share = (double)keys_moved(o, seen, &moves, steps[i], &back) / (SMALL_KEYS + BIG_KEYS);
		fprintf(stderr, "[step to %d servers: %d ranges moved, %.2f of the keys, ideal %.2f]\n", steps[i], moves,
			share, ideal[i]);
		CU_ASSERT(share <= ideal[i] * 1.5 && share >= ideal[i] / 1.5);
		CU_ASSERT_EQUAL(back, 0);
		for (const char *at = o + seen; (share > ideal[i] * 1.5 || share < ideal[i] / 1.5) &&
						(at = strstr(at, " moved key range ")); at++) {
			const char *end = strchr(at, '\n');
			fprintf(stderr, "[%.*s]\n", end ? (int)(end - at) : 80, at);
		}
		if (!back_to_back)
			save_on(n, job, i + 1);
		seen = strlen(slurp(job_log));
	}
	CU_ASSERT_EQUAL(job_sums(p, 180000), 3);
	const char *o = slurp(job_log);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "rounds done"));
	/* the old owner's answers still on their way after a move across
	 * hosts are stale at the worker's bridge, not malformed */
	unsigned long stale = 0;
	for (const char *at = o; (at = strstr(at, ": ")); at++) {
		unsigned long k;
		if (sscanf(at, ": %lu messages for key ranges that moved were dropped", &k) == 1)
			stale += k;
	}
	fprintf(stderr, "[%lu stale messages dropped]\n", stale);
	int started_again = 0;
	for (const char *at = o; (at = strstr(at, "hps launch: hps scale: server ")); at++)
		started_again += strncmp(strchr(at + 30, ' '), " starts again", 13) == 0;
	CU_ASSERT_EQUAL(started_again, again);
	/* back to back, the race happened: a plan came after a later move */
	if (pacing == LATE_PLANS)
		CU_ASSERT_PTR_NOT_NULL(strstr(o, "moved since it was made; kept as moved"));
	/* held CLOSED: the first host took the restarted ranks from ALIVE */
	char held[160];
	snprintf(held, sizeof held, "bridge %s0: server 1 runs on host 1 again (hps scale; its CLOSED was held back here)", pfx);
	if (pacing == HELD_CLOSED)
		CU_ASSERT_PTR_NOT_NULL(strstr(o, held));
	CU_ASSERT_PTR_NULL(strstr(o, "dropped malformed message"));
	if (!strstr(o, "sums ok") || strstr(o, "dropped malformed message") || started_again != again) {
		fprintf(stderr, "job:\n%s\n", o);
		failure_digest(o);
	}
	ns_down();
}

static void test_xscale_scale(void)
{
	static const int workers[2] = {2, 1}, steps[] = {4, 1, 3};
	static const double ideal[] = {0.5, 0.75, 0.5}; /* 2 of 4 ranges, 3 of 4, 2 of 4 */
	scale_hosts(ENV("9731"), 2, workers, steps, ideal, 0, SPACED);
}

/* The same scales back to back: each hps scale right after the one
 * before answered, nothing between. The plan of a scale reaches the first
 * host only through the scheduler's states, the next scale's FINALs come
 * straight from bridge to bridge, so the first host reads the plan of
 * the scale before (or of its end) after the FINALs of the next one;
 * without the move numbers of the plan (net/bridge_scale.c) its server
 * moved the ranges it had just taken back to the leaving servers: more
 * keys moved than the step's share, or a copy to a server that closed
 * (CI, 2 -> 4 -> 1 with the steps 100 ms apart). */
static void test_xscale_scale_back_to_back(void)
{
	static const int workers[2] = {2, 1}, steps[] = {4, 1, 3};
	static const double ideal[] = {0.5, 0.75, 0.5};
	scale_hosts(ENV("9751"), 2, workers, steps, ideal, 0, LATE_PLANS);
}

/* The same scales back to back, the first host holding each server's
 * first CLOSED back 5 s: the scale back up (1 -> 3) starts ranks 1 and 2
 * again while that host still has them ALIVE with their old incarnation.
 * Its bridge takes the newer one from ALIVE (net/bridge_scale.c); before,
 * it kept the old one, server 0's copies to the new processes named it
 * and were all dropped, and every request to ranges 2 and 3 timed out
 * (TSan, back to back, once in eight runs; make test once). */
static void test_xscale_scale_held_closed(void)
{
	static const int workers[2] = {2, 1}, steps[] = {4, 1, 3};
	static const double ideal[] = {0.5, 0.75, 0.5};
	scale_hosts(ENV("9755"), 2, workers, steps, ideal, 0, HELD_CLOSED);
}

/* Three hosts: 3 -> 4 moves range 3 from rank 0 (first host) to rank 3
 * (last host), which the second host learns from the HANDBACK record;
 * 4 -> 1 moves ranges 1, 2 and 3 to rank 0, each with a third host;
 * 1 -> 4 moves them back to ranks 1 (middle host), 2 and 3 (last host). */
static void test_xscale_scale_three_hosts(void)
{
	static const int workers[3] = {1, 1, 1}, steps[] = {4, 1, 4};
	static const double ideal[] = {0.25, 0.75, 0.75}; /* 1 of 4 ranges, 3 of 4, 3 of 4 */
	scale_hosts(ENV("9741"), 3, workers, steps, ideal, 1, SPACED); /* rank 1, on the middle host */
}

/* A checkpoint across hosts while a scale runs (net/bridge_ckpt.c): the
 * last host's launcher holds that host's checkpoint lock while key
 * ranges move, with a scale of servers asked (scale_req), which this test
 * stands for: its pid in the lock, then the request (the launcher does
 * nothing for it while it cannot take the lock), taken back in the
 * other order. A
 * checkpoint asked from the first host is refused with one line naming
 * the scale (the last host runs a round's first step before the others),
 * the last host's bridge logs it; once the lock is free a checkpoint
 * saves, the lock the last host's bridge held through the round is free
 * again at its end, and a scale runs. */
static void test_xscale_checkpoint_during_scale(void)
{
	static char out[1 << 14], cmd[1024];
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	static const int workers[2] = {2, 1};
	char mark[300], job[32], host[32], dir[256];
	snprintf(job, sizeof job, "xk%d", (int)getpid() % 100000);
	snprintf(host, sizeof host, "%s1", pfx);
	snprintf(dir, sizeof dir, "/tmp/hps-xscale-ck-%d-during", (int)getpid());
	snprintf(cmd, sizeof cmd, "--max-servers 4 --job %s", job);
	pid_t p = hosts_job(ENV("9791"), 2, workers, "HPS_LOG=info NETNS_TEST_PACE_US=20000", cmd, "busy", mark,
			    sizeof mark);
	int ready = poll_until(file_exists, mark, 60000);
	CU_ASSERT(ready);
	struct hpsi_seg seg;
	if (ready && hpsi_seg_attach(job, host, &seg) == 0) {
		int32_t idle = 0, me = (int32_t)getpid();
		uint32_t none = 0, asked = 3u | HPSI_SCALE_SERVERS;
		CU_ASSERT(atomic_compare_exchange_strong(&seg.hdr->ckpt_lock, &idle, me));
		CU_ASSERT(atomic_compare_exchange_strong(&seg.hdr->scale_req, &none, asked));
		snprintf(cmd, sizeof cmd, "%s checkpoint --job %s --host %s0 %s", hps_bin(), job, pfx, dir);
		CU_ASSERT_EQUAL(on_host(0, out, sizeof out, cmd), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps scale is moving key ranges of this job"));
		if (!strstr(out, "hps scale is moving key ranges"))
			fprintf(stderr, "checkpoint during a scale:\n%s\n", out);
		CU_ASSERT(atomic_compare_exchange_strong(&seg.hdr->scale_req, &asked, 0));
		CU_ASSERT(atomic_compare_exchange_strong(&seg.hdr->ckpt_lock, &me, 0));
		CU_ASSERT_EQUAL(on_host(0, out, sizeof out, cmd), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "saved "));
		sh("rm -rf %s", dir);
		/* the scale after it: the round's lock is gone (or it would wait
		 * until HPS_TIMEOUT_MS and fail) */
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s --servers 3", hps_bin(), job, host);
		CU_ASSERT_EQUAL(on_host(1, out, sizeof out, cmd), 0);
		snprintf(cmd, sizeof cmd, "job %s has 3 servers\n", job);
		CU_ASSERT_STRING_EQUAL(out, cmd);
		hpsi_seg_detach(&seg);
	} else {
		CU_FAIL("the last host's segment");
	}
	CU_ASSERT_EQUAL(job_sums(p, 180000), 3);
	const char *o = slurp(job_log);
	snprintf(cmd, sizeof cmd, "bridge %s: checkpoint refused: host %s: hps scale is moving key ranges", host, host);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, cmd));
	ns_down();
}

/* A replicated job with room across hosts (--replicas 1, two hosts of
 * `per_host` servers each, room for twice as many; step 1 of issue 12
 * for replicated jobs): the backup table is laid out alike on both hosts
 * with every range's backup on the other host than its primary
 * (shm/backups.h, hpsi_backup_build_hosts; with two servers per host the
 * plain build backs ranges up on their primary's host); then kill -9 of a server of host `victim`
 * while the workers push (held at round 100 by NETNS_TEST_HOLD until the kill):
 * its ranges go on at their backups on the other host, exact sums. */
static void replicated_room_kill(const char *port, uint32_t per_host, uint32_t victim)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300], job[32];
	uint32_t S = 2 * per_host, M = 2 * S;
	snprintf(job, sizeof job, "xr%d", (int)getpid() % 100000);
	static const int workers[2] = {2, 1};
	char flags[128];
	snprintf(flags, sizeof flags, "--max-servers %u --replicas 1 --job %s", M, job);
	pid_t p = hosts_job_servers(port, 2, (int)per_host, workers, "HPS_LOG=info NETNS_TEST_HOLD=1 HPS_TIMEOUT_MS=30000",
				    flags, "busy", mark, sizeof mark);
	CU_ASSERT(wait_mark(mark));
	uint32_t owner[2][16], backup[2][16];
	for (int h = 0; h < 2; h++) {
		char host[32];
		snprintf(host, sizeof host, "%s%d", pfx, h);
		struct hpsi_seg seg;
		if (hpsi_seg_attach(job, host, &seg)) {
			CU_FAIL("a host's segment");
			continue;
		}
		for (uint32_t r = 0; r < M; r++) {
			owner[h][r] = hpsi_replica(&seg, r, 0), backup[h][r] = hpsi_replica(&seg, r, 1);
			/* launched ranks, the backup on the other host
			 * (ranks 0 .. per_host - 1 are the first host's) */
			CU_ASSERT(owner[h][r] < S && backup[h][r] < S);
			CU_ASSERT_NOT_EQUAL(owner[h][r] / per_host, backup[h][r] / per_host);
		}
		hpsi_seg_detach(&seg);
	}
	CU_ASSERT(memcmp(owner[0], owner[1], M * sizeof owner[0][0]) == 0); /* alike on both hosts */
	CU_ASSERT(memcmp(backup[0], backup[1], M * sizeof backup[0][0]) == 0);
	kill_server_at_mark((int)victim, mark);
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the workers were still pushing */
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3);
	const char *o = slurp(job_log);
	char says[128];
	/* which of the victim host's servers was killed: the bridges say */
	unsigned dead = UINT32_MAX;
	for (const char *at = o; (at = strstr(at, ": server ")); at++) {
		int end = 0;
		if (sscanf(at, ": server %u died: key range%n", &dead, &end) == 1 && end > 0)
			break;
		dead = UINT32_MAX;
	}
	CU_ASSERT(dead / per_host == victim);
	int moved = dead / per_host == victim;
	for (uint32_t r = 0; r < M; r++)
		if (owner[0][r] == dead) {
			snprintf(says, sizeof says, "key range %u goes on at server %u (host %u)", r, backup[0][r],
				 backup[0][r] / per_host);
			moved &= strstr(o, says) != NULL;
		}
	CU_ASSERT(moved);
	if (!moved || getenv("SHOWLOG")) {
		fprintf(stderr, "job:\n%s\n", o);
		failure_digest(o);
	}
	ns_down();
}

/* The tables of both hosts of a replicated job with room (one server on
 * the first host, rank 0; the others on the last), read once: alike on
 * both, every range's primary and backup running ranks below `servers`,
 * on different hosts. -1: a host's segment is gone. */
static int room_tables_read(const char *job, uint32_t M, uint32_t servers, uint32_t owner[2][16],
			    uint32_t backup[2][16])
{
	int ok = 1;
	for (int h = 0; h < 2; h++) {
		char host[32];
		snprintf(host, sizeof host, "%s%d", pfx, h);
		struct hpsi_seg seg;
		if (hpsi_seg_attach(job, host, &seg))
			return -1;
		for (uint32_t r = 0; r < M; r++) {
			owner[h][r] = hpsi_replica(&seg, r, 0), backup[h][r] = hpsi_replica(&seg, r, 1);
			ok &= owner[h][r] < servers && backup[h][r] < servers && (owner[h][r] == 0) != (backup[h][r] == 0);
		}
		hpsi_seg_detach(&seg);
	}
	return ok && memcmp(owner[0], owner[1], M * sizeof owner[0][0]) == 0 &&
	       memcmp(backup[0], backup[1], M * sizeof backup[0][0]) == 0;
}

/* room_tables_read within 5 s: hps scale answers once the last host's
 * tables are the plan, and a copy's FINAL from there may still be on its
 * way to the first host. */
static int room_tables_agree(const char *job, uint32_t M, uint32_t servers)
{
	uint32_t owner[2][16], backup[2][16];
	int ok = 0;
	for (int t = 0; ok == 0 && t < 100; t++)
		if ((ok = room_tables_read(job, M, servers, owner, backup)) == 0)
			usleep(50000);
	if (ok == 0)
		for (int h = 0; h < 2; h++)
			for (uint32_t r = 0; r < M; r++)
				fprintf(stderr, "[host %d: key range %u on server %u, backed up by %u]\n", h, r, owner[h][r], backup[h][r]);
	return ok == 1;
}

/* Scaling a replicated job across hosts (issue 12): two hosts of one
 * server, --max-servers 4 --replicas 1, three workers pushing; hps scale
 * on the last host to each of the n steps, after each step both hosts'
 * tables alike with every backup on the other host than its primary (the
 * copies' FINALs and HANDBACK records carry the new owner and backup:
 * net/bridge_recover.c); then kill -9 of server 0, whose ranges go on at
 * their backups on the last host: exact sums. late: back to back, the
 * first host storing every plan 300 ms after it came
 * (HPS_FAILPOINT=lateplan), so that a plan comes after the next scale's
 * FINALs there. */
static void replicated_room_scale(const char *port, const uint32_t *steps, int n, int late)
{
	static char out[1 << 14], cmd[1024];
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char mark[300], job[32];
	const uint32_t M = 4;
	static int cases;
	snprintf(job, sizeof job, "xq%d%c", (int)getpid() % 100000, 'a' + cases++ % 26);
	static const int workers[2] = {2, 1};
	char flags[128];
	snprintf(flags, sizeof flags, "--max-servers %u --replicas 1 --job %s --env NETNS_TEST_PACE_US", M, job);
	pid_t p = hosts_job(port, 2, workers,
			    late ? "HPS_LOG=info HPS_DEAD_MS=4000 NETNS_TEST_PACE_US=10000 HPS_TIMEOUT_MS=60000 "
				   "HPS_HEARTBEAT_MS=20 HPS_FAILPOINT=lateplan:300"
				 : "HPS_LOG=info HPS_DEAD_MS=4000 NETNS_TEST_PACE_US=10000 HPS_TIMEOUT_MS=60000",
			    flags, "busy", mark, sizeof mark);
	int bad = !wait_mark(mark) || !room_tables_agree(job, M, 2);
	CU_ASSERT(!bad);
	for (int i = 0; i < n; i++) {
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s1 --servers %u", hps_bin(), job, pfx, steps[i]);
		int rc = on_host(1, out, sizeof out, cmd);
		char want[64];
		snprintf(want, sizeof want, "job %s has %u servers\n", job, steps[i]);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_STRING_EQUAL(out, want);
		if (rc || strcmp(out, want))
			fprintf(stderr, "hps scale --servers %u: %d\n%s\n", steps[i], rc, out);
		int agree = room_tables_agree(job, M, steps[i]);
		CU_ASSERT(agree);
		bad |= rc || strcmp(out, want) || !agree;
	}
	CU_ASSERT(!log_has(job_log, "rounds done")); /* the workers were still pushing */
	pid_t v = proc_of("server", 0);
	CU_ASSERT(v > 0);
	if (v > 0)
		kill(v, SIGKILL);
	CU_ASSERT_EQUAL(job_sums(p, 120000), 3);
	const char *o = slurp(job_log);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "server 0 died: key range"));
	CU_ASSERT_PTR_NULL(strstr(o, "dropped malformed message"));
	if (late) /* the race happened: a plan came after a later copy */
		CU_ASSERT_PTR_NOT_NULL(strstr(o, "moved since it was made; kept as moved"));
	if (bad || !strstr(o, "sums ok") || strstr(o, "dropped malformed message") || getenv("SHOWLOG")) {
		fprintf(stderr, "job:\n%s\n", o);
		failure_digest(o);
	}
	unlink(mark);
	ns_down();
}

static void test_xscale_replicated_room_scale(void)
{
	static const uint32_t steps[] = {4, 2};
	replicated_room_scale("9781", steps, 2, 0);
}

/* 2 -> 4 -> 2 -> 3 back to back (each hps scale right after the one before
 * answered): a replicated range may take two copies in one plan, so a
 * plan's entries are numbered by bands (shm/segment.h), and a plan that
 * comes after a later plan's copy keeps the range as moved */
static void test_xscale_replicated_room_scale_back_to_back(void)
{
	static const uint32_t steps[] = {4, 2, 3};
	replicated_room_scale("9785", steps, 3, 1);
}

/* one server per host, -s 2 --max-servers 4: owners 0,1,0,1, backups
 * 1,0,1,0; the first host's server: host 0's two workers go on at host 1 */
static void test_xscale_replicated_room_kill_first(void)
{
	replicated_room_kill("9751", 1, 0);
}

/* the last host's server, which holds the room's ranks */
static void test_xscale_replicated_room_kill_last(void)
{
	replicated_room_kill("9761", 1, 1);
}

/* two servers per host, -s 4 --max-servers 8: ranks 0 and 1 on the first
 * host, 2 and 3 (and the room, 4 to 7) on the last; one of the last
 * host's killed */
static void test_xscale_replicated_room_two_per_host(void)
{
	replicated_room_kill("9771", 2, 1);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return cluster_worker(argv[2]);
	int skip = netns_suite_start("test_xscale");
	if (skip)
		return skip;
	static const struct test_case cases[] = {
		{"test_xscale_room_no_scale", test_xscale_room_no_scale},
		{"test_xscale_room_no_scale_bsp", test_xscale_room_no_scale_bsp},
		{"test_xscale_scale", test_xscale_scale},
		{"test_xscale_scale_three_hosts", test_xscale_scale_three_hosts},
		{"test_xscale_scale_back_to_back", test_xscale_scale_back_to_back},
		{"test_xscale_scale_held_closed", test_xscale_scale_held_closed},
		{"test_xscale_checkpoint_during_scale", test_xscale_checkpoint_during_scale},
		{"test_xscale_replicated_room_kill_first", test_xscale_replicated_room_kill_first},
		{"test_xscale_replicated_room_kill_last", test_xscale_replicated_room_kill_last},
		{"test_xscale_replicated_room_two_per_host", test_xscale_replicated_room_two_per_host},
		{"test_xscale_replicated_room_scale", test_xscale_replicated_room_scale},
		{"test_xscale_replicated_room_scale_back_to_back", test_xscale_replicated_room_scale_back_to_back},
		{NULL, NULL},
	};
	int rc = run_suite("xscale", cases);
	netns_suite_end();
	return rc;
}
