/* Room for servers (hps launch --max-servers M): the job's keys form M key
 * ranges from the start, served by the -s running servers through the
 * owner table (shm/segment.h); the ranks not launched are VACANT. Three
 * workers push integer-valued floats under BSP: the sums are exact, each
 * running server stores the keys of the ranges the owner table gives it,
 * hps_num_servers counts the running servers, and a checkpoint writes one
 * file per key range and loads back. Then the launch refusals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/route.h"
#include "runtime/client/ctx.h"
#include "shm/segment.h"
#include "tests/harness.h"

#define NKEYS 64
#define CLOCKS 200
#define WORKERS 3

static char self_path[4096];
static char out[1 << 17], out2[1 << 16];

static float value(int r, uint32_t c, int k)
{
	return (float)(r + 1 + (int)((c + (uint32_t)k) % 4));
}

static double sum_of(int k)
{
	double s = 0;
	for (int r = 0; r < WORKERS; r++)
		for (uint32_t c = 0; c < CLOCKS; c++)
			s += value(r, c, k);
	return s;
}

/* The layout the launch made for -s 2 --max-servers 4: four ranges, ranks
 * 2 and 3 VACANT, ranges 2 and 3 served by ranks 0 and 1. */
static int room_layout_ok(hps_ctx *ctx)
{
	struct hpsi_seg *s = &ctx->seg;
	static const uint32_t want[4] = {0, 1, 0, 1};
	if (s->hdr->nservers != 4 || s->hdr->launched_servers != 2 || hps_num_servers(ctx) != 2) {
		fprintf(stderr, "ranges %u, launched servers %u, hps_num_servers %d\n", s->hdr->nservers,
			s->hdr->launched_servers, hps_num_servers(ctx));
		return 0;
	}
	for (uint32_t r = 0; r < 4; r++)
		if (hpsi_range_owner(s, r) != want[r]) {
			fprintf(stderr, "range %u is served by %u, want %u\n", r, hpsi_range_owner(s, r), want[r]);
			return 0;
		}
	for (uint32_t r = 2; r < 4; r++)
		if (atomic_load_explicit(&hpsi_seg_node(s, r)->state, memory_order_acquire) != HPSI_NODE_VACANT) {
			fprintf(stderr, "server rank %u is not VACANT\n", r);
			return 0;
		}
	return 1;
}

static int check_sums(hps_worker *w, const uint64_t *keys, const char *when)
{
	float got[NKEYS];
	int rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL));
	if (rc) {
		fprintf(stderr, "pull %s: %s\n", when, hps_strerror(rc));
		return 0;
	}
	for (int k = 0; k < NKEYS; k++)
		if (got[k] != sum_of(k)) {
			fprintf(stderr, "%s: key %d holds %.0f, want %.0f\n", when, k, got[k], sum_of(k));
			return 0;
		}
	return 1;
}

/* Workers of the room job; worker 0 checks the layout, the sums, and a
 * checkpoint into dir. */
static int room_worker(const char *dir)
{
	hps_ctx *ctx;
	hps_worker *w;
	if (join_as_worker(&ctx, &w))
		return 2;
	int rank = hps_rank(ctx), rc;
	if (!room_layout_ok(ctx))
		return 3;
	uint64_t keys[NKEYS];
	float vals[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 13 + 5;
	for (uint32_t c = 0; c < CLOCKS; c++) {
		for (int k = 0; k < NKEYS; k++)
			vals[k] = value(rank, c, k);
		if ((rc = hps_wait(w, hps_push(w, keys, NKEYS, vals, NULL))) || (rc = hps_clock(w))) {
			fprintf(stderr, "push or clock at clock %u: %s\n", c, hps_strerror(rc));
			return 4;
		}
	}
	if ((rc = hps_barrier(ctx))) {
		fprintf(stderr, "barrier: %s\n", hps_strerror(rc));
		return 5;
	}
	if (rank == 0) {
		if (!check_sums(w, keys, "at the end"))
			return 6;
		/* one file per key range, written by the server serving it */
		if ((rc = hps_save(ctx, dir)) < 0) {
			fprintf(stderr, "hps_save: %s\n", hps_strerror(rc));
			return 7;
		}
		for (int r = 0; r < 4; r++) {
			char path[600];
			struct stat st;
			snprintf(path, sizeof path, "%s/server-%d.hpsckpt", dir, r);
			if (stat(path, &st) != 0) {
				fprintf(stderr, "%s is missing\n", path);
				return 8;
			}
		}
		if ((rc = hps_load(ctx, dir)) < 0 || !check_sums(w, keys, "after the load")) {
			fprintf(stderr, "hps_load: %s\n", rc < 0 ? hps_strerror(rc) : "loaded");
			return 9;
		}
		printf("sums exact\n");
		fflush(stdout);
	}
	if ((rc = hps_barrier(ctx)))
		return 10;
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}

static int run_cmd(const char *cmd, char *buf, size_t cap)
{
	char log[128];
	snprintf(log, sizeof log, "/tmp/hps-scale-%d.cmd", (int)getpid());
	int rc = finish_group(spawn_logged(log, "/bin/sh", cmd), 60000);
	slurp_into(log, buf, cap);
	unlink(log);
	return rc;
}

static void test_scale_room_exact_sums(void)
{
	char cmd[8192], dir[128];
	snprintf(dir, sizeof dir, "/tmp/hps-scale-%d.ckpt", (int)getpid());
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd,
		 "exec %s launch -s 2 -w 3 --max-servers 4 --job sc1 --host testhost --heap-mb 16 --timeout-ms 20000 "
		 "--staleness bsp -- %s --room-worker %s",
		 hps_bin(), self_path, dir);
	int rc = run_cmd(cmd, out, sizeof out);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "[worker 0] sums exact"));
	if (rc || !strstr(out, "sums exact"))
		fprintf(stderr, "launcher:\n%s\n", out);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Each refused before anything starts, with one line. */
static void test_scale_room_refusals(void)
{
	static const struct {
		const char *args, *says;
	} cases[] = {
		{"-s 2 --max-servers 1", "HPS_MAX_SERVERS=1 is below HPS_NUM_SERVERS=2"},
		{"-s 2 --max-servers 4 --replicas 1", "HPS_MAX_SERVERS with HPS_REPLICAS: servers of a replicated job cannot be added yet"},
		{"-s 2 --max-servers 4 --key-ranges 0-9,10-19", "HPS_MAX_SERVERS with HPS_KEY_RANGES: declared ranges cannot move between servers yet"},
		{"-s 2 --max-servers 4 --updater 'sum;sum'", "HPS_MAX_SERVERS with HPS_UPDATER=sum;sum: a list per server is not built"},
		{"-s 2 --max-servers 4 --hosts /nonexistent", "hps launch: --max-servers works within one host only"},
		{"-s 2 --max-servers 300", "HPS_MAX_SERVERS"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char cmd[8192];
		snprintf(cmd, sizeof cmd, "%s launch --job sr --host testhost %s -- true", hps_bin(), cases[i].args);
		CU_ASSERT_EQUAL(run_cmd(cmd, out2, sizeof out2), 2);
		CU_ASSERT_PTR_NOT_NULL(strstr(out2, cases[i].says));
		if (!strstr(out2, cases[i].says))
			fprintf(stderr, "%s:\n%s\n", cases[i].args, out2);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--room-worker") == 0)
		return room_worker(argv[2]);
	ssize_t sl = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[sl > 0 ? sl : 0] = 0;
	static const struct test_case cases[] = {
		{"test_scale_room_exact_sums", test_scale_room_exact_sums},
		{"test_scale_room_refusals", test_scale_room_refusals},
		{NULL, NULL},
	};
	return run_suite("scale", cases);
}
