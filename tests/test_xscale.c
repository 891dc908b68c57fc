/* Elastic servers across hosts (issue 12; docs/ARCHITECTURE.md, "Elastic
 * servers across hosts"). Built so far: the layout of steps 1-2, the room
 * of --max-servers being the last host's and the bridges following the
 * owner table. Two network namespace hosts of one server each, -s 2
 * --max-servers 4: ranks 2 and 3 are the last host's (VACANT), while the
 * launch's owner table gives key range 2 to rank 0 on the first host and
 * range 3 to rank 1 on the last, so range 2's rings cross hosts the other
 * way round from its rank. Three workers (two on the first host) push and
 * check exact sums; the scheduler lays out 4 server ranks, and the free
 * ones count as no member that died. hps scale across hosts is not built
 * (test_scale_servers_refusals), so such a launch is still refused to
 * users (test_scale_room_refusals) and HPS_FAILPOINT=xroom lets it in. */
#include <stdio.h>
#include <string.h>

#include "tests/netns.h"

static void room_no_scale(const char *port, const char *mode, const char *flags)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	static const int workers[2] = {2, 1};
	char mark[300];
	pid_t p = hosts_job(port, 2, workers, "HPS_LOG=info HPS_FAILPOINT=xroom", flags, mode, mark,
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
		{NULL, NULL},
	};
	int rc = run_suite("xscale", cases);
	netns_suite_end();
	return rc;
}
