/* The placement of replicas (shm/place.h, net/route.h): π keeps every
 * K + 1 consecutive positions on K + 1 hosts whenever the job has the
 * servers for it and is refused otherwise; it is the identity on one host;
 * every host of a job lays out the same π (and slot table, shm/slots.h);
 * and a replicated job whose π is not the identity fails over, and
 * recovers, along π. */
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hps/error.h"
#include "net/bridge.h"
#include "net/route.h"
#include "net/wire.h"
#include "shm/node.h"
#include "shm/place.h"
#include "shm/slots.h"
#include "tests/harness.h"

#define MAXH 12

/* The host of each server: hosts run consecutive ranks, in host order. */
static void hosts_of(const uint32_t *hs, uint32_t nh, uint32_t *host_of)
{
	uint32_t s = 0;
	for (uint32_t h = 0; h < nh; h++)
		for (uint32_t k = 0; k < hs[h]; k++)
			host_of[s++] = h;
}

/* Whether every K + 1 cyclically consecutive positions of pi are on
 * distinct hosts. */
static int windows_apart(const uint32_t *pi, uint32_t S, const uint32_t *host_of, uint32_t K)
{
	for (uint32_t a = 0; a < S; a++)
		for (uint32_t i = 1; i <= K; i++)
			for (uint32_t j = 0; j < i; j++)
				if (host_of[pi[(a + i) % S]] == host_of[pi[(a + j) % S]])
					return 0;
	return 1;
}

static int is_identity(const uint32_t *pi, uint32_t S)
{
	for (uint32_t p = 0; p < S; p++)
		if (pi[p] != p)
			return 0;
	return 1;
}

struct tally {
	unsigned layouts, apart, refused, bad;
};

/* Checks one layout for K = 0..3; counts into t. */
static void check_layout(const uint32_t *hs, uint32_t nh, struct tally *t)
{
	uint32_t S = 0, m = 0, used = 0, pi[HPSI_MAX_NODES], host_of[HPSI_MAX_NODES], seen[HPSI_MAX_NODES] = {0};
	for (uint32_t h = 0; h < nh; h++)
		S += hs[h], m = hs[h] > m ? hs[h] : m, used += hs[h] > 0;
	if (S == 0) {
		t->bad += hpsi_place_build(S, hs, nh, pi) != HPS_ECONFIG;
		return;
	}
	t->layouts++;
	if (hpsi_place_build(S, hs, nh, pi)) {
		t->bad++;
		return;
	}
	for (uint32_t p = 0; p < S; p++) /* a permutation */
		if (pi[p] >= S || seen[pi[p]]++) {
			t->bad++;
			return;
		}
	hosts_of(hs, nh, host_of);
	if (used == 1 && !is_identity(pi, S)) { /* one host with servers: as on one host */
		fprintf(stderr, "one host with servers, S=%u: pi is no identity\n", S);
		t->bad++;
	}
	for (uint32_t K = 0; K <= HPSI_MAX_REPLICAS && K < S; K++) {
		uint32_t host;
		int refused = hpsi_place_check(S, hs, nh, K, &host) != 0;
		int fits = (uint64_t)(K + 1) * m <= S;
		if (refused != (K > 0 && used > 1 && !fits) || (refused && hs[host] != m)) {
			fprintf(stderr, "S=%u K=%u biggest %u: refused %d\n", S, K, m, refused);
			t->bad++;
		}
		if (used < 2 || K == 0)
			continue;
		int apart = windows_apart(pi, S, host_of, K);
		/* accepted: apart; refused: no order could be (a host of m servers
		 * needs K others after each of its own), so pi is not either */
		if (apart != !refused) {
			fprintf(stderr, "S=%u K=%u (hosts %u, biggest %u): apart %d, refused %d\n", S, K, nh, m, apart, refused);
			t->bad++;
		}
		t->apart += apart;
		t->refused += refused;
	}
}

/* Every layout of up to 4 hosts of 0..5 servers, and random ones of up
 * to MAXH hosts of 0..9 servers (zeros: hosts with workers only). */
static void test_place_hosts_apart(void)
{
	struct tally t = {0};
	uint32_t hs[MAXH];
	for (uint32_t nh = 1; nh <= 4; nh++) {
		uint32_t total = 1;
		for (uint32_t h = 0; h < nh; h++)
			total *= 6;
		for (uint32_t code = 0; code < total; code++) {
			uint32_t c = code;
			for (uint32_t h = 0; h < nh; h++)
				hs[h] = c % 6, c /= 6;
			check_layout(hs, nh, &t);
		}
	}
	uint64_t s = 12345;
	for (int n = 0; n < 3000; n++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t nh = 1 + (uint32_t)(s >> 33) % MAXH;
		for (uint32_t h = 0; h < nh; h++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			hs[h] = (uint32_t)(s >> 33) % 10;
		}
		check_layout(hs, nh, &t);
	}
	CU_ASSERT_EQUAL(t.bad, 0);
	/* neither side is vacuous */
	CU_ASSERT(t.layouts > 4000);
	CU_ASSERT(t.apart > 1000);
	CU_ASSERT(t.refused > 1000);
	/* the example of docs/ARCHITECTURE.md: hosts of 3, 2 and 1 servers */
	uint32_t ex[] = {3, 2, 1}, pi[6], want[] = {0, 3, 1, 4, 2, 5};
	CU_ASSERT_EQUAL(hpsi_place_build(6, ex, 3, pi), 0);
	CU_ASSERT_EQUAL(memcmp(pi, want, sizeof want), 0);
	/* the biggest host first, wherever it is in host order */
	uint32_t ex2[] = {1, 3}, pi2[4], want2[] = {1, 0, 2, 3};
	CU_ASSERT_EQUAL(hpsi_place_build(4, ex2, 2, pi2), 0);
	CU_ASSERT_EQUAL(memcmp(pi2, want2, sizeof want2), 0);
	/* counts that do not add up */
	CU_ASSERT_EQUAL(hpsi_place_build(7, ex, 3, pi), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_place_build(0, NULL, 0, pi), HPS_ECONFIG);
	/* the refusal names the host and the numbers */
	uint32_t host;
	CU_ASSERT_EQUAL(hpsi_place_check(6, ex, 3, 1, &host), 0);
	CU_ASSERT_EQUAL(hpsi_place_check(6, ex, 3, 2, &host), HPS_ECONFIG);
	CU_ASSERT_EQUAL(host, 0);
	char why[512];
	hpsi_place_why(why, sizeof why, "alpha", ex[host], 6, 2);
	CU_ASSERT(strstr(why, "HPS_REPLICAS=2: host alpha runs 3 of the job's 6 servers") != NULL);
	CU_ASSERT(strstr(why, "3 x 3 = 9 servers") != NULL);
}

/* One host: π is the identity, so replicas follow their primary by rank,
 * as they always did. */
static void test_place_identity_on_one_host(void)
{
	uint32_t pi[HPSI_MAX_NODES];
	for (uint32_t S = 1; S <= HPSI_MAX_NODES; S++) {
		uint32_t one[] = {S}, padded[] = {0, S, 0};
		CU_ASSERT(hpsi_place_build(S, NULL, 0, pi) == 0 && is_identity(pi, S));
		CU_ASSERT(hpsi_place_build(S, one, 1, pi) == 0 && is_identity(pi, S));
		CU_ASSERT(hpsi_place_build(S, padded, 3, pi) == 0 && is_identity(pi, S));
	}
	struct job j;
	struct job_opts o = {.no_servers = 1, .replicas = 2};
	CU_ASSERT_FATAL(job_start(&j, 5, 1, &o) == 0);
	for (uint32_t r = 0; r < 5; r++)
		for (uint32_t i = 0; i < 5; i++) {
			CU_ASSERT_EQUAL(hpsi_replica(&j.seg, r, i), (r + i) % 5);
			CU_ASSERT_EQUAL(hpsi_replica_range(&j.seg, r, i), (r + 5 - i) % 5);
			CU_ASSERT_EQUAL(hpsi_replica_index(&j.seg, r, (r + i) % 5), i <= 2 ? i : HPSI_NO_SERVER);
		}
	CU_ASSERT_EQUAL(hpsi_replica_index(&j.seg, 0, 5), HPSI_NO_SERVER); /* no such server */
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* The bridges of three hosts make their segments from the scheduler's
 * assignment (the same table, each with its own host index): all hold the
 * same π, so each routes every range to the same replicas. */
static void test_place_hosts_agree(void)
{
	static const uint32_t servers[] = {1, 3, 2}, workers[] = {1, 1, 2};
	static struct hpsi_bridge b;
	struct hpsi_sched_assign a;
	memset(&a, 0, sizeof a);
	a.nhosts = 3, a.nservers = 6, a.nworkers = 4;
	uint32_t srv = 0, wrk = 0;
	for (uint32_t h = 0; h < 3; h++) {
		struct hpsi_host_entry *e = &a.hosts[h];
		snprintf(e->name, sizeof e->name, "host%u", h);
		snprintf(e->endpoint, sizeof e->endpoint, "tcp://127.0.0.1:%u", 9600 + h);
		e->srv_lo = srv, e->srv_hi = srv += servers[h];
		e->wrk_lo = wrk, e->wrk_hi = wrk += workers[h];
	}
	struct hpsi_seg seg[3];
	char job[64];
	snprintf(job, sizeof job, "place%d", (int)getpid());
	for (uint32_t h = 0; h < 3; h++) {
		hpsi_sched_init(&a.h, HPSI_SCH_ASSIGN, h);
		const char *why;
		CU_ASSERT_FATAL(hpsi_sched_check(&a, sizeof a, &why) == 0);
		memset(&b, 0, sizeof b);
		snprintf(b.cfg.job, sizeof b.cfg.job, "%s", job);
		snprintf(b.cfg.host, sizeof b.cfg.host, "%s", a.hosts[h].name);
		b.cfg.heap_slice = 8u << 20, b.cfg.ring_bytes = 4096, b.cfg.timeout_ms = 1000;
		b.assign = a;
		struct hpsi_bridge_place pl;
		struct hpsi_seg_params sp;
		hpsi_bridge_seg_params(&b, &pl, &sp);
		CU_ASSERT_FATAL(hpsi_seg_create(&sp, &seg[h]) == 0);
	}
	/* π as shm/place.h lays it out: rows of 3 (host1's 1 2 3, host2's
	 * 4 5 and host0's 0), read column by column */
	static const uint32_t want[] = {1, 4, 2, 5, 3, 0};
	CU_ASSERT_EQUAL(memcmp(hpsi_seg_place(&seg[0]), want, sizeof want), 0);
	for (uint32_t h = 1; h < 3; h++) {
		CU_ASSERT_EQUAL(memcmp(hpsi_seg_place(&seg[h]), hpsi_seg_place(&seg[0]), 2 * 6 * sizeof(uint32_t)), 0);
		for (uint32_t r = 0; r < 6; r++)
			for (uint32_t i = 0; i < 6; i++)
				CU_ASSERT_EQUAL(hpsi_replica(&seg[h], r, i), hpsi_replica(&seg[0], r, i));
	}
	/* and the same slot table (shm/slots.h): every host routes every
	 * hashed key to the same server */
	static uint16_t slots[HPSI_SLOTS];
	CU_ASSERT_EQUAL(hpsi_slots_build(slots, 6), 0);
	for (uint32_t h = 0; h < 3; h++)
		CU_ASSERT_EQUAL(memcmp(hpsi_seg_slots(&seg[h]), slots, sizeof slots), 0);
	for (uint32_t h = 0; h < 3; h++) {
		hpsi_seg_unlink(&seg[h]);
		hpsi_seg_detach(&seg[h]);
	}
	/* with replicas, a layout that cannot keep them apart is refused
	 * when the segment is made, naming the host (jobs a tracker starts;
	 * hps launch --hosts refuses it before anything starts); one that can
	 * is made (replication across hosts needs no opt-in any more) */
	static const struct {
		uint32_t K;
		const char *says;
	} refusals[] = {
		{2, "HPS_REPLICAS=2: host host1 runs 3 of the job's 6 servers"},
		{1, NULL},
	};
	for (int k = 0; k < 2; k++) {
		memset(&b, 0, sizeof b);
		snprintf(b.cfg.job, sizeof b.cfg.job, "%s", job);
		snprintf(b.cfg.host, sizeof b.cfg.host, "host2");
		b.cfg.heap_slice = 8u << 20, b.cfg.ring_bytes = 4096, b.cfg.timeout_ms = 1000;
		b.cfg.replicas = refusals[k].K;
		b.assign = a;
		b.assign.h.host = 2;
		struct hpsi_bridge_place pl;
		struct hpsi_seg_params sp;
		hpsi_bridge_seg_params(&b, &pl, &sp);
		char log[64], said[2048];
		snprintf(log, sizeof log, "/tmp/hps_place_seg_%d.log", (int)getpid());
		int saved = dup(STDERR_FILENO), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
		dup2(fd, STDERR_FILENO);
		int rc = hpsi_seg_create(&sp, &seg[2]);
		dup2(saved, STDERR_FILENO);
		close(saved), close(fd);
		slurp_into(log, said, sizeof said);
		unlink(log);
		if (!refusals[k].says) {
			CU_ASSERT_EQUAL(rc, 0);
			if (rc)
				fprintf(stderr, "K=%u: %s\n", refusals[k].K, said);
			else
				hpsi_seg_unlink(&seg[2]), hpsi_seg_detach(&seg[2]);
			continue;
		}
		CU_ASSERT_EQUAL(rc, HPS_ECONFIG);
		CU_ASSERT(strstr(said, refusals[k].says) != NULL);
		if (!strstr(said, refusals[k].says))
			fprintf(stderr, "K=%u: %s\n", refusals[k].K, said);
	}
	/* an assignment whose hosts' servers are not consecutive is refused */
	a.hosts[1].srv_lo = 2;
	const char *why;
	CU_ASSERT_EQUAL(hpsi_sched_check(&a, sizeof a, &why), -1);
}

/* hps launch --hosts refuses a layout that cannot keep the replicas of a
 * key range on distinct hosts, in one line naming the host, before it
 * starts anything (no remote shell runs). */
static void test_place_launch_refuses(void)
{
	char hosts[64], log[64], mark[64], cmd[768], out[4096];
	snprintf(hosts, sizeof hosts, "/tmp/hps_place_hosts_%d", (int)getpid());
	snprintf(log, sizeof log, "/tmp/hps_place_%d.log", (int)getpid());
	snprintf(mark, sizeof mark, "/tmp/hps_place_ran_%d", (int)getpid());
	FILE *f = fopen(hosts, "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "small 1 1\nbig 3 1\n");
	fclose(f);
	snprintf(cmd, sizeof cmd, "HPS_RSH='touch %s' HPS_ROOT_PORT=9597 exec %s launch --hosts %s --replicas 1 -- /bin/true",
		 mark, hps_bin(), hosts);
	int st = finish_group(spawn_logged(log, "/bin/sh", cmd), 20000);
	slurp_into(log, out, sizeof out);
	CU_ASSERT_EQUAL(st, 2);
	CU_ASSERT(strstr(out, "HPS_REPLICAS=1: host big runs 3 of the job's 4 servers") != NULL);
	CU_ASSERT(access(mark, F_OK) != 0);
	if (st != 2 || !strstr(out, "host big runs"))
		fprintf(stderr, "%s\n", out);
	/* a layout that keeps the replicas apart starts, with replacements
	 * too, on three hosts (no opt-in, no refusal of --restart-servers):
	 * HPS_RSH runs for the hosts (it touches the mark, then fails) */
	f = fopen(hosts, "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "one 1 1\ntwo 1 1\nthree 1 1\n");
	fclose(f);
	snprintf(cmd, sizeof cmd,
		 "HPS_RSH='touch %s' HPS_ROOT_PORT=9597 exec %s launch --hosts %s --replicas 1 --restart-servers 1 -- /bin/true",
		 mark, hps_bin(), hosts);
	st = finish_group(spawn_logged(log, "/bin/sh", cmd), 20000);
	slurp_into(log, out, sizeof out);
	CU_ASSERT(access(mark, F_OK) == 0);
	CU_ASSERT(strstr(out, "on 3 hosts (one,two,three)") != NULL);
	if (access(mark, F_OK) != 0 || !strstr(out, "on 3 hosts"))
		fprintf(stderr, "%s\n", out);
	unlink(mark);
	unlink(hosts);
	unlink(log);
}

/* ---- a replicated job placed as across hosts, on one machine ---- */

#define NK 32
#define ITERS 60

struct plan {
	_Atomic int *progress; /* per worker: iterations done */
	_Atomic int *hold;     /* set: workers wait after their pushes */
};

/* Pushes rank + 1: to every key in even iterations, to one key from the
 * worker's heap in odd ones (zero copy: each backup of its range reads it
 * there and acknowledges to the worker, which finds it by its replica
 * index); 4 in flight; exact sums at the end. */
static int place_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct plan *pl = arg;
	int me = hps_rank(ctx), W = hps_num_workers(ctx), rc, nout = 0;
	uint64_t keys[NK];
	float inl[NK], got[NK];
	float *heap = hps_alloc(w, sizeof(float) * NK);
	if (!heap)
		return 20;
	for (int k = 0; k < NK; k++)
		keys[k] = (uint64_t)k * 11 + 3, inl[k] = heap[k] = (float)(me + 1);
	int64_t ts[4];
	for (int it = 0; it < ITERS; it++) {
		if (nout == 4) {
			if ((rc = hps_wait(w, ts[0])))
				return fprintf(stderr, "worker %d: push: %s\n", me, hps_strerror(rc)), 21;
			memmove(ts, ts + 1, sizeof ts[0] * --nout);
		}
		ts[nout] = it % 2 ? hps_push(w, &keys[(it / 2) % NK], 1, heap, NULL) : hps_push(w, keys, NK, inl, NULL);
		if (ts[nout++] < 0)
			return 22;
		if ((rc = hps_clock(w)))
			return 23;
		atomic_store_explicit(&pl->progress[me], it + 1, memory_order_release);
		usleep(3000);
	}
	for (int i = 0; i < nout; i++)
		if ((rc = hps_wait(w, ts[i])))
			return fprintf(stderr, "worker %d: last pushes: %s\n", me, hps_strerror(rc)), 24;
	/* relaxed: only says when to go on */
	for (int waited = 0; atomic_load_explicit(pl->hold, memory_order_relaxed) && waited < 30000; waited++)
		usleep(1000);
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, keys, NK, got, NULL))))
		return fprintf(stderr, "worker %d: final pull: %s\n", me, hps_strerror(rc)), 25;
	for (int k = 0; k < NK; k++) {
		int times = ITERS / 2 + (k < ITERS / 2); /* every even iteration, and odd iteration 2k + 1 */
		float want = (float)(times * W * (W + 1) / 2);
		if (got[k] != want)
			return fprintf(stderr, "worker %d: key %d holds %g, not %g\n", me, k, got[k], want), 26;
	}
	hps_free(w, heap);
	return 0;
}

static int reached(void *a)
{
	_Atomic int *p = a;
	return atomic_load_explicit(p, memory_order_acquire) >= 20;
}

static int applied_by_2(void *a)
{
	const struct job *j = a;
	return atomic_load_explicit(&hpsi_seg_counters(&j->seg, 2)->replica_applied, memory_order_relaxed) > 0;
}

static int alive(void *a)
{
	void **v = a;
	const struct job *j = v[0];
	uint32_t srv = *(uint32_t *)v[1];
	/* acquire pairs with the state's release (struct hpsi_node) */
	return atomic_load_explicit(&hpsi_seg_node(&j->seg, srv)->state, memory_order_acquire) == HPSI_NODE_ALIVE &&
	       atomic_load_explicit(&hpsi_seg_node(&j->seg, srv)->lacking, memory_order_acquire) == 0;
}

/* Servers as on two hosts of 2 (π = 0 2 1 3), K = 1: range 0's backup
 * is server 2, not 1. Server 0 dies midway: server 2 takes range 0 over;
 * with `replace`, a replacement of server 0 copies its ranges from
 * servers 2 and 3 (the replica after and the primary before it in π) and
 * serves again. Exact sums either way. */
static void run_across(int replace)
{
	static const uint32_t hs[] = {2, 2};
	setenv("HPS_STALENESS", "asp", 1);
	_Atomic int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(shared != MAP_FAILED);
	struct plan pl = {.progress = shared, .hold = &shared[64]};
	atomic_store_explicit(pl.hold, 1, memory_order_relaxed);
	struct job j;
	struct job_opts o = {.timeout_ms = 20000, .replicas = 1, .nhosts = 2, .host_servers = hs};
	CU_ASSERT_FATAL(job_start(&j, 4, 2, &o) == 0);
	CU_ASSERT_EQUAL(hpsi_replica(&j.seg, 0, 1), 2);
	CU_ASSERT_EQUAL(hpsi_replica(&j.seg, 3, 1), 0);
	CU_ASSERT_EQUAL(hpsi_replica_range(&j.seg, 0, 1), 3);
	pid_t wk[2];
	for (uint32_t i = 0; i < 2; i++)
		wk[i] = job_fork_worker(&j, i, 1, place_worker, &pl);
	CU_ASSERT(poll_until(reached, &shared[0], 20000));
	/* server 2 applies range 0's forwards before any takeover: it drains
	 * the ring of the server before it in π */
	CU_ASSERT(poll_until(applied_by_2, &j, 20000));
	kill(j.servers[0], SIGKILL);
	waitpid(j.servers[0], NULL, 0);
	hpsi_node_mark_dead(&j.seg, 0); /* as hps launch does on waitpid */
	j.servers[0] = 0;
	uint32_t zero = 0;
	void *arg[2] = {&j, &zero};
	if (replace) {
		j.servers[0] = job_fork_server(&j, 0, NULL);
		CU_ASSERT(poll_until(alive, arg, 20000));
		CU_ASSERT_EQUAL(hpsi_range_primary(&j.seg, 0), 0);
	} else {
		CU_ASSERT_EQUAL(hpsi_range_primary(&j.seg, 0), 2);
	}
	atomic_store_explicit(pl.hold, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(wait_exit(wk[i], 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	munmap(shared, 4096);
	unsetenv("HPS_STALENESS");
}

static void test_place_failover_along_pi(void)
{
	run_across(0);
}

static void test_place_recovery_along_pi(void)
{
	run_across(1);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_place_hosts_apart", test_place_hosts_apart},
		{"test_place_identity_on_one_host", test_place_identity_on_one_host},
		{"test_place_hosts_agree", test_place_hosts_agree},
		{"test_place_launch_refuses", test_place_launch_refuses},
		{"test_place_failover_along_pi", test_place_failover_along_pi},
		{"test_place_recovery_along_pi", test_place_recovery_along_pi},
		{NULL, NULL},
	};
	return run_suite("place", cases);
}
