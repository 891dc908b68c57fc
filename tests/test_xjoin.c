/* Workers that join a job across hosts (net/bridge_join.c): two network
 * namespace hosts, one server and one launched worker each, room for a
 * third worker (--max-workers 3), whose free rank is the last host's (the
 * one that does not run the scheduler). tests/test_join.c's worker program
 * runs on both: the launched workers wait at clock 150 until the job has 3
 * workers (hps_num_workers and hps_membership_epoch moved on their host),
 * the joiner must start at clock 150 with rank 2, every pull of every
 * worker checks the staleness bound (with the joiner's pushes from 150 on),
 * the barriers after the join count it, and worker 0 checks the exact sums.
 * The third worker joins by hand (HPS_JOIN=1) or by hps scale, under BSP
 * and SSP(2); joining on, or scaling from, the host without free ranks is
 * refused with one line. A last case holds the first host's bridge right
 * after the slot counts there (HPS_FAILPOINT=joinslow): its workers must
 * see the membership epoch moved as soon as they see three workers. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm/segment.h"
#include "tests/netns.h"

#define JOIN_AT 150 /* tests/test_join.c */

/* tests/test_join.c, beside this binary. */
static const char *join_prog(void)
{
	return sibling_prog("test_join");
}

/* Both hosts' segments of job `job`: workers 0 and 1 ALIVE at JOIN_AT on
 * each (a remote worker's clock_done there is what its clock messages
 * brought), so the joiner's start clock is JOIN_AT whatever host's floor
 * is the largest. */
struct xwatch {
	const char *job;
	struct hpsi_seg seg[2];
	int attached[2];
};

static int members_waiting(void *p)
{
	struct xwatch *a = p;
	for (int h = 0; h < 2; h++) {
		char host[32], path[512];
		snprintf(host, sizeof host, "%s%d", pfx, h);
		if (!a->attached[h] && hpsi_seg_path(path, sizeof path, a->job, host) == 0 && access(path, F_OK) == 0)
			a->attached[h] = hpsi_seg_attach(a->job, host, &a->seg[h]) == 0;
		if (!a->attached[h])
			return 0;
		for (uint32_t w = 0; w < 2; w++) {
			struct hpsi_node *n = hpsi_seg_node(&a->seg[h], hpsi_worker_node(&a->seg[h], w));
			if (atomic_load_explicit(&n->state, memory_order_acquire) != HPSI_NODE_ALIVE ||
			    atomic_load_explicit(&n->clock_done, memory_order_relaxed) != JOIN_AT)
				return 0;
		}
	}
	return 1;
}

/* extra_env: more settings of the job; want: a line its output must
 * hold (NULL: none) */
static void xjoin(const char *port_env, const char *staleness, int by_scale, const char *extra_env, const char *want)
{
	static char out[1 << 16], cmd[8192];
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char hosts[256], job[32];
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 1 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	snprintf(job, sizeof job, "xj%d", (int)getpid() % 100000);
	const char *s = strcmp(staleness, "bsp") ? staleness : "0";
	/* HPS_LOG=info: the scheduler's and the bridges' lines of the join.
	 * HPS_DEAD_MS 4 s, not ENV's 1 s: nothing dies here, and under TSan a
	 * second's silence between a bridge and the scheduler was seen */
	pid_t p = start(job_log, "ip netns exec %s0 %sHPS_LOG=info HPS_DEAD_MS=4000 %s %s launch --job %s --max-workers 3 --staleness %s --hosts %s -- %s --join-worker %s",
			pfx, port_env, extra_env, hps_bin(), job, staleness, hostsf, join_prog(), s);
	struct xwatch a = {.job = job};
	int ready = poll_until(members_waiting, &a, 60000);
	CU_ASSERT(ready);
	if (ready && !by_scale) {
		/* host 0 has no free rank: refused, and nothing taken */
		snprintf(cmd, sizeof cmd, "env HPS_ROLE=worker HPS_JOB_ID=%s HPS_HOST=%s0 HPS_JOIN=1 %s --join-worker %s", job,
			 pfx, join_prog(), s);
		CU_ASSERT_NOT_EQUAL(on_host(0, out, sizeof out, cmd), 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "has no free worker rank on host"));
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s0 --workers 3", hps_bin(), job, pfx);
		CU_ASSERT_EQUAL(on_host(0, out, sizeof out, cmd), 1);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "its free worker ranks are on its last host"));
		/* host 1 has it */
		snprintf(cmd, sizeof cmd, "env HPS_ROLE=worker HPS_JOB_ID=%s HPS_HOST=%s1 HPS_JOIN=1 %s --join-worker %s", job,
			 pfx, join_prog(), s);
		int rc = on_host(1, out, sizeof out, cmd);
		CU_ASSERT_EQUAL(rc, 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, "joined as rank 2 at clock 150"));
		if (rc || !strstr(out, "joined as rank 2 at clock 150"))
			fprintf(stderr, "joiner (%d):\n%s\n", rc, out);
	} else if (ready) {
		snprintf(cmd, sizeof cmd, "%s scale --job %s --host %s1 --workers 3", hps_bin(), job, pfx);
		int rc = on_host(1, out, sizeof out, cmd);
		CU_ASSERT_EQUAL(rc, 0);
		char want[64];
		snprintf(want, sizeof want, "job %s has 3 workers", job);
		CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
		if (rc || !strstr(out, want))
			fprintf(stderr, "hps scale (%d):\n%s\n", rc, out);
	}
	for (int h = 0; h < 2; h++)
		if (a.attached[h])
			hpsi_seg_detach(&a.seg[h]);
	int rc = finish(p, 120000);
	const char *o = slurp(job_log);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "[worker 0] sums exact"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "scheduler: worker 2 joined at clock 150"));
	/* host 0's servers held for the claim, then counted the joiner */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "worker 2 is joining on another host: this host's servers wait for it"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "worker 2 joined on another host at clock 150"));
	if (by_scale)
		CU_ASSERT_PTR_NOT_NULL(strstr(o, "joined as rank 2 at clock 150"));
	if (want)
		CU_ASSERT_PTR_NOT_NULL(strstr(o, want));
	if (rc || !strstr(o, "sums exact") || !strstr(o, "joined at clock 150"))
		fprintf(stderr, "job (%d):\n%s\n", rc, o);
	ns_down();
}

static void test_xjoin_bsp_by_hand(void)
{
	xjoin(ENV("9611"), "bsp", 0, "", NULL);
}

static void test_xjoin_ssp_by_hand(void)
{
	xjoin(ENV("9621"), "2", 0, "", NULL);
}

static void test_xjoin_bsp_by_scale(void)
{
	xjoin(ENV("9631"), "bsp", 1, "", NULL);
}

static void test_xjoin_ssp_by_scale(void)
{
	xjoin(ENV("9641"), "2", 1, "", NULL);
}

/* The first host's bridge stops 300 ms right after the claimed slot
 * counts there (HPS_FAILPOINT=joinslow): its workers, waiting for three,
 * see the third in that window and must see the membership epoch moved
 * too (it once moved only after: worker 0 ended with "the membership
 * epoch did not move"). */
static void test_xjoin_epoch_before_count(void)
{
	xjoin(ENV("9651"), "bsp", 1, "HPS_FAILPOINT=joinslow:300", "HPS_FAILPOINT=joinslow: 300 ms");
}

int main(int argc, char **argv)
{
	(void)argc, (void)argv;
	int skip = netns_suite_start("test_xjoin");
	if (skip)
		return skip;
	static const struct test_case cases[] = {
		{"test_xjoin_bsp_by_hand", test_xjoin_bsp_by_hand},
		{"test_xjoin_ssp_by_hand", test_xjoin_ssp_by_hand},
		{"test_xjoin_bsp_by_scale", test_xjoin_bsp_by_scale},
		{"test_xjoin_ssp_by_scale", test_xjoin_ssp_by_scale},
		{"test_xjoin_epoch_before_count", test_xjoin_epoch_before_count},
		{NULL, NULL},
	};
	int rc = run_suite("xjoin", cases);
	netns_suite_end();
	return rc;
}
