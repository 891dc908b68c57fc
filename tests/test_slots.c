/* The placement of hashed keys (shm/slots.h, net/route.h): the slot table
 * of S servers gives each floor or ceil of SLOTS / S slots, is the same on
 * every build and every host, and one server more or fewer moves about
 * 1/S of any key set (within 1.5x of it, the bound), to or from
 * that server only; a running job routes every key to one server. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hps/error.h"
#include "net/route.h"
#include "shm/backups.h"
#include "shm/slots.h"
#include "tests/harness.h"

#define MAX_S 64         /* the property range: S = 1..64 */
#define NKEYS (1u << 17) /* keys per set: ~32 per slot, so shares show */

/* Keys per slot of two key sets: contiguous 0..NKEYS-1 (the common case
 * of dense ids) and pseudo-random 64-bit ones (xorshift64*, fixed seed). */
static uint32_t dense_hist[HPSI_SLOTS], sparse_hist[HPSI_SLOTS];

static void fill_hists(void)
{
	memset(dense_hist, 0, sizeof dense_hist);
	memset(sparse_hist, 0, sizeof sparse_hist);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (uint64_t k = 0; k < NKEYS; k++) {
		dense_hist[hpsi_key_slot(k)]++;
		x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
		sparse_hist[hpsi_key_slot(x * 0x2545f4914f6cdd1dull)]++;
	}
}

/* Each server of S holds its target share. */
static int balanced(const uint16_t *t, uint32_t S)
{
	uint32_t count[HPSI_MAX_NODES] = {0};
	for (uint32_t j = 0; j < HPSI_SLOTS; j++) {
		if (t[j] >= S)
			return 0;
		count[t[j]]++;
	}
	for (uint32_t i = 0; i < S; i++)
		if (count[i] != hpsi_slots_target(i, S) || count[i] < HPSI_SLOTS / S || count[i] > HPSI_SLOTS / S + 1)
			return 0;
	return 1;
}

/* Slots that differ between a and b, checking that each moved to or from
 * server `only` (a server added or removed); keys of each set moved. */
static uint32_t diff(const uint16_t *a, const uint16_t *b, uint32_t only, uint64_t moved[2])
{
	uint32_t n = 0;
	moved[0] = moved[1] = 0;
	for (uint32_t j = 0; j < HPSI_SLOTS; j++) {
		if (a[j] == b[j])
			continue;
		n++;
		CU_ASSERT(a[j] == only || b[j] == only);
		moved[0] += dense_hist[j], moved[1] += sparse_hist[j];
	}
	return n;
}

/* The fraction moved is within 1.5x of the ideal 1/S of the keys. */
static int near_ideal(uint64_t moved, uint32_t S)
{
	double ideal = (double)NKEYS / S;
	return moved <= 1.5 * ideal && moved >= ideal / 1.5;
}

/* S = 1..MAX_S + 1: every table balanced; build(S) is the same twice and
 * equal to growing build(S - 1) by one server; the new server takes
 * exactly its share, only from others, and about 1/S of each key set. */
static void test_slots_grow_moves_one_share(void)
{
	static uint16_t prev[HPSI_SLOTS], cur[HPSI_SLOTS], again[HPSI_SLOTS];
	fill_hists();
	CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(prev, 1), 0);
	CU_ASSERT(balanced(prev, 1));
	unsigned bad = 0;
	for (uint32_t S = 2; S <= MAX_S + 1; S++) {
		CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(cur, S), 0);
		CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(again, S), 0);
		CU_ASSERT_EQUAL(memcmp(cur, again, sizeof cur), 0);
		memcpy(again, prev, sizeof again);
		uint32_t moved_slots;
		CU_ASSERT_EQUAL(hpsi_slots_rebalance(again, S - 1, S, &moved_slots), 0);
		CU_ASSERT_EQUAL(memcmp(cur, again, sizeof cur), 0);
		uint64_t keys[2];
		uint32_t n = diff(prev, cur, S - 1, keys);
		if (!balanced(cur, S) || n != moved_slots || n != hpsi_slots_target(S - 1, S) ||
		    !near_ideal(keys[0], S) || !near_ideal(keys[1], S))
			bad++, fprintf(stderr, "growing to S=%u: %u slots, %llu and %llu keys moved\n", S, n,
				       (unsigned long long)keys[0], (unsigned long long)keys[1]);
		memcpy(prev, cur, sizeof prev);
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* the largest job: still a share for everyone */
	CU_ASSERT_EQUAL(hpsi_slots_build(cur, HPSI_MAX_NODES), 0);
	CU_ASSERT(balanced(cur, HPSI_MAX_NODES));
}

/* S = 2..MAX_S + 1 down to S - 1: only server S - 1's slots move, the
 * result is balanced, about 1/S of each key set moves; growing back moves
 * one share again. */
static void test_slots_shrink_moves_one_share(void)
{
	static uint16_t full[HPSI_SLOTS], less[HPSI_SLOTS], back[HPSI_SLOTS];
	fill_hists();
	unsigned bad = 0;
	for (uint32_t S = 2; S <= MAX_S + 1; S++) {
		CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(full, S), 0);
		memcpy(less, full, sizeof less);
		uint32_t moved_slots, again;
		CU_ASSERT_EQUAL_FATAL(hpsi_slots_rebalance(less, S, S - 1, &moved_slots), 0);
		uint64_t keys[2];
		uint32_t n = diff(full, less, S - 1, keys);
		if (!balanced(less, S - 1) || n != moved_slots || n != hpsi_slots_target(S - 1, S) ||
		    !near_ideal(keys[0], S) || !near_ideal(keys[1], S))
			bad++, fprintf(stderr, "shrinking from S=%u: %u slots, %llu and %llu keys moved\n", S, n,
				       (unsigned long long)keys[0], (unsigned long long)keys[1]);
		memcpy(back, less, sizeof back);
		CU_ASSERT_EQUAL(hpsi_slots_rebalance(back, S - 1, S, &again), 0);
		bad += !balanced(back, S) || again != hpsi_slots_target(S - 1, S) || diff(less, back, S - 1, keys) != again;
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* two servers fewer at once: both removed servers' slots move, no other */
	CU_ASSERT_EQUAL(hpsi_slots_build(full, 8), 0);
	memcpy(less, full, sizeof less);
	uint32_t moved_slots, want = 0;
	CU_ASSERT_EQUAL(hpsi_slots_rebalance(less, 8, 6, &moved_slots), 0);
	CU_ASSERT(balanced(less, 6));
	for (uint32_t j = 0; j < HPSI_SLOTS; j++) {
		want += full[j] >= 6;
		CU_ASSERT(full[j] >= 6 || less[j] == full[j]);
	}
	CU_ASSERT_EQUAL(moved_slots, want);
}

/* Any table (here a lopsided one) rebalances to the target shares with
 * the fewest moves: the slots above each server's target, plus those of
 * removed servers. */
static void test_slots_rebalance_any_table(void)
{
	static uint16_t t[HPSI_SLOTS], before[HPSI_SLOTS];
	static const uint32_t to[] = {3, 7, 10, 1};
	for (int c = 0; c < 4; c++) {
		uint32_t count[HPSI_MAX_NODES] = {0}, need = 0, moved;
		for (uint32_t j = 0; j < HPSI_SLOTS; j++) /* server 0 a third, 1..6 a ninth each */
			t[j] = (uint16_t)(j % 3 == 0 ? 0 : 1 + j % 6);
		memcpy(before, t, sizeof t);
		for (uint32_t j = 0; j < HPSI_SLOTS; j++)
			count[t[j]]++;
		for (uint32_t i = 0; i < 7; i++)
			need += i >= to[c] ? count[i] : count[i] > hpsi_slots_target(i, to[c]) ? count[i] - hpsi_slots_target(i, to[c]) : 0;
		CU_ASSERT_EQUAL(hpsi_slots_rebalance(t, 7, to[c], &moved), 0);
		CU_ASSERT(balanced(t, to[c]));
		CU_ASSERT_EQUAL(moved, need);
		uint32_t changed = 0;
		for (uint32_t j = 0; j < HPSI_SLOTS; j++)
			changed += t[j] != before[j];
		CU_ASSERT_EQUAL(changed, need);
	}
}

/* Bad counts and tables are refused and leave the table as it was. */
static void test_slots_refuses(void)
{
	static uint16_t t[HPSI_SLOTS], before[HPSI_SLOTS];
	uint32_t moved = 99;
	CU_ASSERT_EQUAL(hpsi_slots_build(t, 0), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_slots_build(t, HPSI_MAX_NODES + 1), HPS_ECONFIG);
	CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(t, 4), 0);
	CU_ASSERT_EQUAL(hpsi_slots_check(t, 4), 0);
	CU_ASSERT_EQUAL(hpsi_slots_check(t, 3), HPS_EPROTO);
	memcpy(before, t, sizeof t);
	CU_ASSERT_EQUAL(hpsi_slots_rebalance(t, 0, 4, &moved), HPS_ECONFIG);
	CU_ASSERT_EQUAL(moved, 0);
	CU_ASSERT_EQUAL(hpsi_slots_rebalance(t, 4, 0, NULL), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_slots_rebalance(t, 4, HPSI_MAX_NODES + 1, NULL), HPS_ECONFIG);
	CU_ASSERT_EQUAL(hpsi_slots_rebalance(t, 3, 5, NULL), HPS_ECONFIG); /* server 3 is not below 3 */
	CU_ASSERT_EQUAL(memcmp(t, before, sizeof t), 0);
}

/* A job's segment holds build(S), and hashed keys route through it; a
 * segment whose table names a server the job lacks is refused on attach. */
static void test_slots_segment_routes_by_table(void)
{
	static uint16_t want[HPSI_SLOTS];
	struct job j;
	struct job_opts o = {.no_servers = 1};
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 5, 1, &o), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_slots_build(want, 5), 0);
	CU_ASSERT_EQUAL(memcmp(hpsi_seg_slots(&j.seg), want, sizeof want), 0);
	uint32_t per[5] = {0};
	for (uint64_t k = 0; k < NKEYS; k++) {
		uint32_t s = hpsi_route_key(&j.seg, k);
		CU_ASSERT_FATAL(s < 5);
		CU_ASSERT_EQUAL(s, want[hpsi_key_slot(k)]);
		per[s]++;
	}
	for (uint32_t s = 0; s < 5; s++) /* a fifth each, give or take the slots' spread */
		CU_ASSERT(per[s] > NKEYS / 5 * 9 / 10 && per[s] < NKEYS / 5 * 11 / 10);
	struct hpsi_seg again;
	CU_ASSERT_EQUAL(hpsi_seg_attach(j.job, "testhost", &again), 0);
	hpsi_seg_detach(&again);
	uint16_t *t = (uint16_t *)hpsi_seg_slots(&j.seg);
	t[HPSI_SLOTS - 1] = 5;
	CU_ASSERT_EQUAL(hpsi_seg_attach(j.job, "testhost", &again), HPS_EPROTO);
	t[HPSI_SLOTS - 1] = want[HPSI_SLOTS - 1];
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* A running job of 5 servers: two workers push rank + 1 to dense and
 * sparse keys; every sum is exact, and each server stores exactly the keys
 * the table routes to it. */
#define JOB_KEYS 3000

static uint64_t job_key(int k)
{
	return k < JOB_KEYS / 2 ? (uint64_t)k : hpsi_key_mix((uint64_t)k) | 1ull << 63;
}

static int push_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)arg;
	static uint64_t keys[JOB_KEYS];
	static float vals[JOB_KEYS], got[JOB_KEYS];
	int me = hps_rank(ctx), rc;
	for (int k = 0; k < JOB_KEYS; k++)
		keys[k] = job_key(k);
	/* hps_push needs ascending keys: dense ones first, then sorted sparse */
	for (int a = JOB_KEYS / 2 + 1; a < JOB_KEYS; a++)
		for (int b = a; b > JOB_KEYS / 2 && keys[b - 1] > keys[b]; b--) {
			uint64_t x = keys[b];
			keys[b] = keys[b - 1], keys[b - 1] = x;
		}
	for (int k = 0; k < JOB_KEYS; k++)
		vals[k] = (float)(me + 1);
	for (int it = 0; it < 3; it++)
		if ((rc = hps_wait(w, hps_push(w, keys, JOB_KEYS, vals, NULL))))
			return fprintf(stderr, "worker %d: push: %s\n", me, hps_strerror(rc)), 21;
	if ((rc = hps_barrier(ctx)) || (rc = hps_wait(w, hps_pull(w, keys, JOB_KEYS, got, NULL))))
		return fprintf(stderr, "worker %d: pull: %s\n", me, hps_strerror(rc)), 22;
	for (int k = 0; k < JOB_KEYS; k++)
		if (got[k] != 3.0f * (1 + 2))
			return fprintf(stderr, "worker %d: key %llu holds %g, not 9\n", me, (unsigned long long)keys[k], got[k]), 23;
	return 0;
}

struct stored {
	const struct job *j;
	uint32_t want[5];
};

static int stored_as_routed(void *a)
{
	const struct stored *st = a;
	for (uint32_t s = 0; s < 5; s++) /* relaxed: a gauge, polled */
		if (atomic_load_explicit(&hpsi_seg_counters(&st->j->seg, s)->store_keys, memory_order_relaxed) != st->want[s])
			return 0;
	return 1;
}

static void test_slots_job_exact_sums(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 5, 2, NULL), 0);
	struct stored st = {.j = &j};
	for (int k = 0; k < JOB_KEYS; k++)
		st.want[hpsi_route_key(&j.seg, job_key(k))]++;
	pid_t wk[2];
	for (uint32_t i = 0; i < 2; i++)
		wk[i] = job_fork_worker(&j, i, 1, push_worker, NULL);
	for (uint32_t i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(wait_exit(wk[i], 30000), 0);
	CU_ASSERT(poll_until(stored_as_routed, &st, 10000));
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Backups of a replicated job with room (shm/backups.h): every row's
 * owner and K backups are K + 1 distinct ranks of the job. */
static int backups_valid(const uint16_t *own, const uint16_t *b, uint32_t n, uint32_t K, uint32_t S)
{
	for (uint32_t r = 0; r < n; r++)
		for (uint32_t i = 0; i < K; i++) {
			if (b[r * K + i] >= S || b[r * K + i] == own[r])
				return 0;
			for (uint32_t k = 0; k < i; k++)
				if (b[r * K + k] == b[r * K + i])
					return 0;
		}
	return 1;
}

/* Each rank's backups: at most one off its share of the n * K. */
static int backups_balanced(const uint16_t *b, uint32_t n, uint32_t K, uint32_t S)
{
	uint32_t count[HPSI_MAX_NODES] = {0};
	for (uint32_t j = 0; j < n * K; j++)
		count[b[j]]++;
	for (uint32_t i = 0; i < S; i++) {
		uint32_t t = n * K / S + (i < n * K % S);
		if (count[i] + 1 < t || count[i] > t + 1)
			return 0;
	}
	return 1;
}

static void test_backups_build(void)
{
	/* the layout of -s 2 --max-servers 4 --replicas 1: owners 0,1,0,1 */
	uint16_t own[HPSI_MAX_NODES], b[HPSI_MAX_NODES * 3];
	CU_ASSERT_EQUAL_FATAL(hpsi_share_build(own, 4, 1), 0);
	for (uint32_t r = 0; r < 4; r++)
		own[r] = (uint16_t)r;
	CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, 4, 4, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_backup_build(own, b, 4, 1, 2), 0);
	CU_ASSERT(own[0] == 0 && own[1] == 1 && own[2] == 0 && own[3] == 1);
	CU_ASSERT(b[0] == 1 && b[1] == 0 && b[2] == 1 && b[3] == 0);
	for (uint32_t M = 2; M <= 64; M++)
		for (uint32_t K = 1; K <= 3; K++)
			for (uint32_t S = K + 1; S <= M; S++) {
				for (uint32_t r = 0; r < M; r++)
					own[r] = (uint16_t)r;
				CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, M, S, NULL), 0);
				CU_ASSERT_EQUAL_FATAL(hpsi_backup_build(own, b, M, K, S), 0);
				CU_ASSERT(backups_valid(own, b, M, K, S));
				CU_ASSERT(backups_balanced(b, M, K, S));
			}
}

/* Random walks of the server count: after each step the rows are valid
 * and within one of their shares, and few backups moved: at least the
 * entries that could not stay (a leaving rank, the new primary, a
 * duplicate), at most twice what any balanced table needs (those, plus
 * the valid entries above a rank's share: lb), and over all steps within
 * 5% of lb (measured: 0.6% over; lb overcounts by the ranks that end one
 * above their share, so a step may move fewer). Deterministic: fixed seed. */
static void test_backups_rebalance_walk(void)
{
	uint64_t x = 0x2545f4914f6cdd1dull, moved_total = 0, lb_total = 0;
	uint16_t own[HPSI_MAX_NODES], b[HPSI_MAX_NODES * 3], was[HPSI_MAX_NODES * 3];
	static const uint32_t Ms[] = {3, 4, 5, 8, 16, 31, 64, 255};
	for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
		for (uint32_t K = 1; K <= 3 && K < Ms[m]; K++) {
			uint32_t M = Ms[m], S = K + 1;
			for (uint32_t r = 0; r < M; r++)
				own[r] = (uint16_t)r;
			CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, M, S, NULL), 0);
			CU_ASSERT_EQUAL_FATAL(hpsi_backup_build(own, b, M, K, S), 0);
			for (int step = 0; step < 60; step++) {
				x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
				uint32_t to = K + 1 + (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 33) % (M - K);
				uint32_t moved = 0, must = 0, changed = 0, valid[HPSI_MAX_NODES] = {0};
				memcpy(was, b, sizeof(uint16_t) * M * K);
				CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, S, to, NULL), 0);
				CU_ASSERT_EQUAL_FATAL(hpsi_backup_rebalance(own, b, M, K, S, to, &moved), 0);
				CU_ASSERT(backups_valid(own, b, M, K, to));
				CU_ASSERT(backups_balanced(b, M, K, to));
				for (uint32_t j = 0; j < M * K; j++) {
					uint32_t r = j / K;
					int invalid = was[j] >= to || was[j] == own[r];
					for (uint32_t k = 0; k < j % K; k++)
						invalid |= was[r * K + k] == was[j];
					must += invalid;
					valid[was[j]] += !invalid;
					changed += b[j] != was[j];
				}
				uint32_t lb = must;
				for (uint32_t i = 0; i < to; i++) {
					uint32_t t = M * K / to + (i < M * K % to);
					lb += valid[i] > t ? valid[i] - t : 0;
				}
				CU_ASSERT_EQUAL(moved, changed);
				CU_ASSERT(moved >= must && moved <= 2 * lb);
				moved_total += moved;
				lb_total += lb;
				S = to;
			}
		}
	printf("backups moved over all walks: %llu, needed by any balanced table: %llu\n",
	       (unsigned long long)moved_total, (unsigned long long)lb_total);
	CU_ASSERT(moved_total * 100 <= lb_total * 105);
}

/* Across hosts (hpsi_backup_build_hosts): for every split of S launched
 * ranks over 2 to 4 hosts laid out host after host (hpsi_seg_launched_hosts,
 * the room's ranks not counted), every backup is on another host than
 * its primary and its row's other backups, whenever the hosts hold K + 1
 * apart: with K = 1, two hosts with servers. The rows stay valid. And
 * the plain build does put backups on their primary's host (so this
 * test fails without the hosts): 4 launched ranks on two hosts of 2,
 * M = 8, plain backups 1,0,3,2,... are within a host. */
static void test_backups_build_hosts(void)
{
	uint16_t own[HPSI_MAX_NODES], b[HPSI_MAX_NODES * 3];
	uint32_t host_of[HPSI_MAX_NODES], per_host[4];
	int plain_same_host = 0;
	for (uint32_t M = 2; M <= 32; M++)
		for (uint32_t S = 2; S <= M; S++)
			for (uint32_t nh = 2; nh <= 4 && nh <= S; nh++)
				for (uint32_t first = 1; first + nh - 1 <= S; first++) {
					/* host 0 runs `first`, the others share the rest evenly */
					per_host[0] = first;
					for (uint32_t h = 1; h < nh; h++)
						per_host[h] = (S - first) / (nh - 1) + (h <= (S - first) % (nh - 1));
					hpsi_seg_launched_hosts(per_host, nh, S, host_of);
					for (uint32_t r = 0; r < M; r++)
						own[r] = (uint16_t)r;
					CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, M, S, NULL), 0);
					CU_ASSERT_EQUAL_FATAL(hpsi_backup_build_hosts(own, b, M, 1, S, host_of), 0);
					CU_ASSERT(backups_valid(own, b, M, 1, S));
					int apart = 1;
					for (uint32_t r = 0; r < M; r++)
						apart &= host_of[b[r]] != host_of[own[r]];
					CU_ASSERT(apart);
					if (!apart)
						fprintf(stderr, "M %u S %u hosts %u first %u: a backup on its primary's host\n", M,
							S, nh, first);
					CU_ASSERT_EQUAL_FATAL(hpsi_backup_build(own, b, M, 1, S), 0);
					for (uint32_t r = 0; r < M; r++)
						plain_same_host |= host_of[b[r]] == host_of[own[r]];
				}
	CU_ASSERT(plain_same_host);
	/* K = 2 over three hosts of two: a row's three replicas on three hosts */
	static const uint32_t three[3] = {2, 2, 2};
	hpsi_seg_launched_hosts(three, 3, 6, host_of);
	for (uint32_t r = 0; r < 12; r++)
		own[r] = (uint16_t)r;
	CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, 12, 12, 6, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_backup_build_hosts(own, b, 12, 2, 6, host_of), 0);
	CU_ASSERT(backups_valid(own, b, 12, 2, 6));
	for (uint32_t r = 0; r < 12; r++) {
		uint32_t h0 = host_of[own[r]], h1 = host_of[b[2 * r]], h2 = host_of[b[2 * r + 1]];
		CU_ASSERT(h0 != h1 && h0 != h2 && h1 != h2);
	}
	/* the room's ranks are the last host's: launched ranks only */
	static const uint32_t room[2] = {1, 3}; /* -s 2 --max-servers 4 on two hosts of one */
	host_of[1] = 99;
	hpsi_seg_launched_hosts(room, 2, 2, host_of);
	CU_ASSERT(host_of[0] == 0 && host_of[1] == 1);
}

/* How many hosts the ranks below S are on. */
static uint32_t spanned(const uint32_t *host_of, uint32_t S)
{
	uint32_t hosts = 0;
	for (uint32_t x = 0; x < S; x++) {
		int seen = 0;
		for (uint32_t y = 0; y < x && !seen; y++)
			seen = host_of[y] == host_of[x];
		hosts += !seen;
	}
	return hosts;
}

/* Hosts the rows of a backup table span: whether each row's owner and
 * entries are on min(K + 1, hosts with ranks below S) distinct hosts. */
static int backups_apart(const uint16_t *own, const uint16_t *b, uint32_t n, uint32_t K, uint32_t S,
			 const uint32_t *host_of)
{
	uint32_t hosts = spanned(host_of, S);
	for (uint32_t r = 0; r < n; r++) {
		uint32_t distinct = 1;
		for (uint32_t i = 0; i < K; i++) {
			int seen = host_of[b[r * K + i]] == host_of[own[r]];
			for (uint32_t k = 0; k < i && !seen; k++)
				seen = host_of[b[r * K + k]] == host_of[b[r * K + i]];
			distinct += !seen;
		}
		if (distinct < (K + 1 < hosts ? K + 1 : hosts))
			return 0;
	}
	return 1;
}

/* Whether no backup could move from a rank above its share of the n * K
 * to one below its share that its row does not name, keeping the row on
 * as many hosts: across hosts the shares are even only where the hosts
 * allow it, and this is what is left of "within one of the share". */
static int backups_settled(const uint16_t *own, const uint16_t *b, uint32_t n, uint32_t K, uint32_t S,
			   const uint32_t *host_of)
{
	uint32_t count[HPSI_MAX_NODES] = {0}, total = n * K;
	for (uint32_t j = 0; j < total; j++)
		count[b[j]]++;
	for (uint32_t j = 0; j < total; j++) {
		uint32_t r = j / K, o = b[j];
		if (count[o] <= total / S + (o < total % S))
			continue;
		for (uint32_t u = 0; u < S; u++) {
			if (count[u] >= total / S + (u < total % S) || u == own[r])
				continue;
			int named = 0, o_shared = host_of[o] == host_of[own[r]], u_shared = host_of[u] == host_of[own[r]];
			for (uint32_t i = 0; i < K; i++) {
				if (i == j % K)
					continue;
				named |= b[r * K + i] == u;
				o_shared |= host_of[b[r * K + i]] == host_of[o];
				u_shared |= host_of[b[r * K + i]] == host_of[u];
			}
			if (!named && (!u_shared || o_shared))
				return 0;
		}
	}
	return 1;
}

/* Across hosts (hpsi_backup_rebalance_hosts): random walks of the server
 * count of jobs whose first hosts run 1 or 2 ranks and whose last host
 * has the room (as hps launch --hosts lays them out), K = 1 and 2. After
 * each step the rows are valid, on as many hosts as the running ranks
 * allow (backups_apart), and settled (no entry could still move from a
 * rank above its share to one below, as far apart); the moves are at
 * least a lower bound for the table made (moved, below), and over all
 * steps within 5% of it (measured: 12,743 against 12,498; freeing by
 * shares as on one host, and every entry on a host its row names, moved
 * 18,499). The plain rebalance on the same steps leaves rows
 * on one host (so this test fails without the hosts). Then the task's
 * layout: two hosts of one server, M = 4, 2 -> 4 -> 2: every backup on
 * the other host, one entry moved each way. */
static void test_backups_rebalance_hosts_walk(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull, moved_total = 0, lb_total = 0;
	uint16_t own[HPSI_MAX_NODES], b[HPSI_MAX_NODES * 3], was[HPSI_MAX_NODES * 3], plain[HPSI_MAX_NODES * 3];
	uint32_t host_of[HPSI_MAX_NODES], per_host[3];
	int plain_near = 0;
	static const uint32_t Ms[] = {4, 5, 8, 16, 31, 64};
	for (size_t m = 0; m < sizeof Ms / sizeof Ms[0]; m++)
		for (uint32_t nh = 2; nh <= 3; nh++)
			for (uint32_t a = 1; a <= 2; a++)
				for (uint32_t K = 1; K <= 2; K++) {
					uint32_t M = Ms[m], first = a * (nh - 1);
					if (first + 1 > M || K + 1 > M)
						continue;
					for (uint32_t h = 0; h + 1 < nh; h++)
						per_host[h] = a;
					per_host[nh - 1] = M - first; /* the room is the last host's */
					hpsi_seg_launched_hosts(per_host, nh, M, host_of);
					uint32_t S = first + 1 > K + 1 ? first + 1 : K + 1;
					for (uint32_t r = 0; r < M; r++)
						own[r] = (uint16_t)r;
					CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, M, S, NULL), 0);
					CU_ASSERT_EQUAL_FATAL(hpsi_backup_build_hosts(own, b, M, K, S, host_of), 0);
					for (int step = 0; step < 60; step++) {
						x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
						uint32_t to = K + 1 + (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 33) % (M - K);
						uint32_t moved = 0, changed = 0, valid[HPSI_MAX_NODES] = {0};
						memcpy(was, b, sizeof(uint16_t) * M * K);
						CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, M, S, to, NULL), 0);
						memcpy(plain, b, sizeof(uint16_t) * M * K);
						CU_ASSERT_EQUAL_FATAL(hpsi_backup_rebalance(own, plain, M, K, S, to, NULL), 0);
						plain_near |= !backups_apart(own, plain, M, K, to, host_of);
						CU_ASSERT_EQUAL_FATAL(
							hpsi_backup_rebalance_hosts(own, b, M, K, S, to, host_of, &moved), 0);
						CU_ASSERT(backups_valid(own, b, M, K, to));
						CU_ASSERT(backups_settled(own, b, M, K, to, host_of));
						int apart = backups_apart(own, b, M, K, to, host_of);
						CU_ASSERT(apart);
						if (!apart)
							fprintf(stderr, "M %u hosts %u of %u K %u: %u -> %u, a row on too few hosts\n",
								M, nh, a, K, S, to);
						/* Lower bounds of the moves: an entry naming a leaving
						 * rank, the primary or a rank named before it in the row
						 * must change (plain); a row whose owner and other entries
						 * span fewer hosts than it must needs one change per host
						 * missing (each change adds at most one); and the table
						 * made needs a rank's valid entries beyond what it holds
						 * now to change. */
						uint32_t must = 0, near = 0, over = 0, now[HPSI_MAX_NODES] = {0};
						for (uint32_t r = 0; r < M; r++) {
							uint32_t hosts_row[4], nhr = 0, keep = 0;
							hosts_row[nhr++] = host_of[own[r]];
							for (uint32_t i = 0; i < K; i++) {
								uint32_t j = r * K + i;
								int invalid = was[j] >= to || was[j] == own[r];
								for (uint32_t k = 0; k < i; k++)
									invalid |= was[r * K + k] == was[j];
								must += invalid;
								valid[was[j]] += !invalid;
								changed += b[j] != was[j];
								int seen = 0;
								for (uint32_t k = 0; k < nhr && !invalid; k++)
									seen |= hosts_row[k] == host_of[was[j]];
								if (!invalid && !seen)
									hosts_row[nhr++] = host_of[was[j]];
								keep += !invalid;
							}
							uint32_t need = K + 1 < spanned(host_of, to) ? K + 1 : spanned(host_of, to);
							/* the valid entries keep nhr hosts; the others must move anyway */
							uint32_t missing = need > nhr ? need - nhr : 0, free_ = K - keep;
							near += missing > free_ ? missing - free_ : 0;
						}
						for (uint32_t j = 0; j < M * K; j++)
							now[b[j]]++;
						for (uint32_t i = 0; i < to; i++)
							over += valid[i] > now[i] ? valid[i] - now[i] : 0;
						uint32_t lb = must + (near > over ? near : over);
						CU_ASSERT_EQUAL(moved, changed);
						CU_ASSERT(moved >= lb);
						moved_total += moved;
						lb_total += lb;
						S = to;
					}
				}
	printf("backups moved over all walks across hosts: %llu, needed by the tables made: %llu\n",
	       (unsigned long long)moved_total, (unsigned long long)lb_total);
	CU_ASSERT(moved_total * 100 <= lb_total * 105);
	CU_ASSERT(plain_near);

	/* -s 2 --max-servers 4 on two hosts of one: 2 -> 4 -> 2 */
	static const uint32_t two[2] = {1, 3};
	hpsi_seg_launched_hosts(two, 2, 4, host_of);
	for (uint32_t r = 0; r < 4; r++)
		own[r] = (uint16_t)r;
	CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, 4, 4, 2, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hpsi_backup_build_hosts(own, b, 4, 1, 2, host_of), 0);
	static const uint32_t steps[3] = {2, 4, 2};
	for (int st = 1; st < 3; st++) {
		uint32_t moved = 0;
		CU_ASSERT_EQUAL_FATAL(hpsi_share_rebalance(own, 4, steps[st - 1], steps[st], NULL), 0);
		CU_ASSERT_EQUAL_FATAL(hpsi_backup_rebalance_hosts(own, b, 4, 1, steps[st - 1], steps[st], host_of, &moved),
				      0);
		CU_ASSERT(backups_valid(own, b, 4, 1, steps[st]));
		for (uint32_t r = 0; r < 4; r++)
			CU_ASSERT(host_of[b[r]] != host_of[own[r]]);
		CU_ASSERT_EQUAL(moved, 1);
	}
}

/* The launch's backup table from the segment (hpsi_seg_launch_backups,
 * what a launched server sets up): two hosts of two servers with room for
 * eight (-s 4 --max-servers 8 --replicas 1 --hosts), as the last host's
 * bridge makes it. The segment keeps the hosts of all eight ranks (the
 * room the last host's); the table is the one hpsi_seg_create wrote (each
 * backup on the other host, which the plain build is not), and stays the
 * launch's after a scale stored entries of the live table. On one host it
 * is the plain build. */
static void test_backups_launch_table_from_segment(void)
{
	char job[64];
	snprintf(job, sizeof job, "tbl%d", (int)getpid());
	static const uint32_t per_host[2] = {2, 6};
	static const char *const names[2] = {"h0", "h1"};
	struct hpsi_seg_params sp = {.job = job, .host = "h1", .nservers = 4, .max_servers = 8, .nworkers = 2,
				     .ring_bytes = 1u << 14, .heap_slice = 8u << 20, .timeout_ms = 20000,
				     .range_mode = HPSI_RANGE_HASH, .replicas = 1, .bridged = 1, .srv_lo = 2,
				     .srv_hi = 8, .wrk_lo = 1, .wrk_hi = 2, .nhosts = 2, .host_servers = per_host,
				     .host_names = names};
	struct hpsi_seg seg;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&sp, &seg), 0);
	const uint32_t *hosts = hpsi_seg_server_hosts(&seg);
	CU_ASSERT_FATAL(hosts != NULL);
	for (uint32_t r = 0; r < 8; r++)
		CU_ASSERT_EQUAL(hosts[r], r < 2 ? 0u : 1u);
	uint16_t bk[HPSI_MAX_NODES * HPSI_MAX_REPLICAS], own[HPSI_MAX_NODES], plain[HPSI_MAX_NODES];
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_launch_backups(&seg, bk), 0);
	int plain_near = 0;
	hpsi_seg_first_owners(8, 4, HPSI_RANGE_HASH, own);
	CU_ASSERT_EQUAL_FATAL(hpsi_backup_build(own, plain, 8, 1, 4), 0);
	for (uint32_t r = 0; r < 8; r++) {
		CU_ASSERT_EQUAL(bk[r], hpsi_replica(&seg, r, 1));
		CU_ASSERT(hosts[bk[r]] != hosts[own[r]]);
		plain_near |= hosts[plain[r]] == hosts[own[r]];
	}
	CU_ASSERT(plain_near);
	/* a scale's copy stores a new backup of range 0: the launch's stays */
	uint16_t was = bk[0];
	atomic_store(&hpsi_seg_backups(&seg)[0], (uint16_t)(was == 0 ? 1 : 0));
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_launch_backups(&seg, bk), 0);
	CU_ASSERT_EQUAL(bk[0], was);
	struct hpsi_seg again; /* another process of the host attaches */
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_attach(job, "h1", &again), 0);
	CU_ASSERT_EQUAL(memcmp(hpsi_seg_server_hosts(&again), hosts, 8 * sizeof *hosts), 0);
	hpsi_seg_detach(&again);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);

	/* one host: no hosts, the plain build; no room or no replicas: none */
	struct hpsi_seg_params one = {.job = job, .host = "testhost", .nservers = 4, .max_servers = 8, .nworkers = 2,
				      .ring_bytes = 1u << 14, .heap_slice = 8u << 20, .timeout_ms = 20000,
				      .range_mode = HPSI_RANGE_HASH, .replicas = 1};
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&one, &seg), 0);
	CU_ASSERT(hpsi_seg_server_hosts(&seg) == NULL);
	CU_ASSERT_EQUAL(hpsi_seg_launch_backups(&seg, bk), 0);
	CU_ASSERT_EQUAL(memcmp(bk, plain, 8 * sizeof *bk), 0);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
	one.max_servers = 0;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&one, &seg), 0);
	CU_ASSERT_EQUAL(hpsi_seg_launch_backups(&seg, bk), HPS_ECONFIG);
	hpsi_seg_unlink(&seg);
	hpsi_seg_detach(&seg);
}

static void test_backups_refuses(void)
{
	uint16_t own[4] = {0, 1, 0, 1}, b[8] = {1, 0, 1, 0}, keep[8];
	memcpy(keep, b, sizeof b);
	CU_ASSERT_EQUAL(hpsi_backup_build(own, b, 4, 0, 2), HPS_ECONFIG);  /* no backups */
	CU_ASSERT_EQUAL(hpsi_backup_build(own, b, 4, 2, 2), HPS_ECONFIG);  /* K + 1 > S */
	CU_ASSERT_EQUAL(hpsi_backup_build(own, b, 4, 4, 8), HPS_ECONFIG);  /* above HPSI_MAX_REPLICAS */
	CU_ASSERT_EQUAL(hpsi_backup_build(own, b, 0, 1, 2), HPS_ECONFIG);  /* no ranges */
	CU_ASSERT_EQUAL(hpsi_backup_build(own, b, 4, 1, 1), HPS_ECONFIG);  /* one server */
	CU_ASSERT_EQUAL(hpsi_backup_rebalance(own, b, 4, 1, 2, 1, NULL), HPS_ECONFIG); /* below K + 1 */
	CU_ASSERT_EQUAL(hpsi_backup_rebalance(own, b, 4, 1, 1, 2, NULL), HPS_ECONFIG);
	uint16_t far[4] = {0, 1, 0, 2};
	CU_ASSERT_EQUAL(hpsi_backup_rebalance(far, b, 4, 1, 2, 2, NULL), HPS_ECONFIG); /* owner 2 of 2 */
	b[3] = 2;
	keep[3] = 2;
	CU_ASSERT_EQUAL(hpsi_backup_rebalance(own, b, 4, 1, 2, 3, NULL), HPS_ECONFIG); /* entry 2 of 2 */
	CU_ASSERT_EQUAL(memcmp(b, keep, sizeof b), 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_slots_grow_moves_one_share", test_slots_grow_moves_one_share},
		{"test_slots_shrink_moves_one_share", test_slots_shrink_moves_one_share},
		{"test_slots_rebalance_any_table", test_slots_rebalance_any_table},
		{"test_slots_refuses", test_slots_refuses},
		{"test_slots_segment_routes_by_table", test_slots_segment_routes_by_table},
		{"test_slots_job_exact_sums", test_slots_job_exact_sums},
		{"test_backups_build", test_backups_build},
		{"test_backups_rebalance_walk", test_backups_rebalance_walk},
		{"test_backups_build_hosts", test_backups_build_hosts},
		{"test_backups_rebalance_hosts_walk", test_backups_rebalance_hosts_walk},
		{"test_backups_launch_table_from_segment", test_backups_launch_table_from_segment},
		{"test_backups_refuses", test_backups_refuses},
		{NULL, NULL},
	};
	return run_suite("slots", cases);
}
