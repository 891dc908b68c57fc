/* Bad input and wrong configuration: each gets its error code, and the
 * job goes on as if the bad request had never been made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/codec.h"
#include "runtime/common/config.h"
#include "tests/harness.h"

#define EXPECT(expr, code)                                                          \
	do {                                                                        \
		int rc_ = (int)(expr);                                              \
		if (rc_ != (code)) {                                                \
			fprintf(stderr, "%s:%d: %s gave %d (%s), expected %s\n", __FILE__, __LINE__, #expr, rc_, \
				hps_strerror(rc_), #code);                          \
			return 1;                                                   \
		}                                                                   \
	} while (0)

static void run_one(uint32_t S, uint32_t width, worker_fn fn, const struct job_opts *o)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, S, 1, o), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, width, fn, NULL), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static int bad_keys_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t unsorted[3] = {5, 3, 9}, dup[3] = {1, 4, 4}, ok[3] = {1, 2, 3};
	float v[3] = {1, 1, 1}, got[3];
	EXPECT(hps_push(w, unsorted, 3, v, NULL), HPS_EKEYORDER);
	EXPECT(hps_wait(w, hps_pull(w, dup, 3, got, NULL)), HPS_EKEYORDER);
	EXPECT(hps_push(w, ok, 0, v, NULL), HPS_EINVAL);
	EXPECT(hps_push(w, NULL, 3, v, NULL), HPS_EINVAL);
	EXPECT(hps_push(w, ok, 3, NULL, NULL), HPS_EINVAL);
	EXPECT(hps_pull(w, ok, 3, NULL, NULL), HPS_EINVAL);
	uint32_t lens[3] = {1, 1, 1};
	EXPECT(hps_pull(w, ok, 3, got, &(hps_opts){.lens = lens}), HPS_EINVAL);
	EXPECT(hps_wait(w, 1000000), HPS_EINVAL); /* a timestamp never issued */
	/* none of the refused requests changed anything */
	EXPECT(hps_wait(w, hps_pull(w, ok, 3, got, NULL)), 0);
	for (int i = 0; i < 3; i++)
		if (got[i] != 0)
			return 1;
	return 0;
}

static void test_errors_bad_keys(void)
{
	run_one(2, 1, bad_keys_worker, NULL);
}

/* Width 2 stored; a variable-length push of 3 floats to the same key is
 * refused whole, also its keys that were fine. */
static int length_mismatch_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k[2] = {10, 20};
	float v[6] = {1, 2, 3, 4, 5, 6}, got[4];
	EXPECT(hps_wait(w, hps_push(w, k, 1, v, NULL)), 0);
	uint32_t lens[2] = {3, 2};
	uint64_t k2[2] = {10, 11};
	EXPECT(hps_wait(w, hps_push(w, k2, 2, v, &(hps_opts){.lens = lens})), HPS_EVALLEN);
	EXPECT(hps_wait(w, hps_pull(w, k, 2, got, NULL)), 0);
	if (got[0] != 1 || got[1] != 2 || got[2] != 0 || got[3] != 0)
		return 1;
	return 0;
}

static void test_errors_value_length_mismatch(void)
{
	run_one(1, 2, length_mismatch_worker, NULL);
}

static int outside_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k[3] = {5, 150, 250};
	float v[3] = {1, 1, 1};
	EXPECT(hps_push(w, k, 3, v, NULL), HPS_ENOKEY); /* 150 is in no range */
	uint64_t in[2] = {5, 250};
	EXPECT(hps_wait(w, hps_push(w, in, 2, v, NULL)), 0);
	return 0;
}

static void test_errors_key_outside_ranges(void)
{
	static const struct hpsi_key_span r[2] = {{.first = 0, .last = 99}, {.first = 200, .last = 299}};
	run_one(2, 1, outside_worker, &(struct job_opts){.ranges = r});
}

static int too_big_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	size_t n = 4u << 20; /* 16 MiB of floats into an 8 MiB heap */
	float *v = calloc(n, sizeof *v);
	uint64_t k = 1;
	EXPECT(hps_push(w, &k, 1, v, NULL), HPS_ETOOBIG);
	EXPECT(hps_wait(w, hps_push(w, &k, 1, v, NULL)), HPS_ETOOBIG);
	free(v);
	return 0;
}

static void test_errors_value_too_big_for_heap(void)
{
	run_one(1, 4u << 20, too_big_worker, &(struct job_opts){.heap_mb = 8});
}

/* An answer capacity whose size in bytes passes 2^64 (vals_cap x 4 wraps
 * to 4) is refused like any request too big for the heap, not sent with a
 * wrapped size; the job goes on. */
static int overflow_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k[2] = {1, 2};
	uint32_t out_lens[2];
	float got[2] = {0, 0};
	hps_opts wraps = {.out_lens = out_lens, .vals_cap = ((size_t)1 << 62) + 1};
	EXPECT(hps_pull(w, k, 2, got, &wraps), HPS_ETOOBIG);
	hps_opts wraps_f64 = {.dtype = HPS_F64, .out_lens = out_lens, .vals_cap = ((size_t)1 << 61) + 1};
	EXPECT(hps_pull(w, k, 2, got, &wraps_f64), HPS_ETOOBIG);
	float v[2] = {1, 2};
	EXPECT(hps_wait(w, hps_push(w, k, 2, v, NULL)), 0);
	EXPECT(hps_wait(w, hps_pull(w, k, 2, got, NULL)), 0);
	return got[0] == 1 && got[1] == 2 ? 0 : 1;
}

static void test_errors_size_overflow_refused(void)
{
	run_one(1, 1, overflow_worker, NULL);
}

static void test_errors_job_started_twice(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.no_servers = 1}), 0);
	struct hpsi_seg again;
	struct hpsi_seg_params p = {.job = j.job, .host = "testhost", .nservers = 1, .nworkers = 1,
				    .ring_bytes = 1 << 16, .heap_slice = 8 << 20};
	CU_ASSERT_EQUAL(hpsi_seg_create(&p, &again), HPS_EEXIST);
	/* the same rank twice in one job */
	job_env(&j, "server", 0);
	hps_ctx *a, *b;
	CU_ASSERT_EQUAL_FATAL(hps_init(&a, NULL, NULL), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(hps_init(&b, NULL, NULL) == HPS_EEXIST ? 0 : 1);
	CU_ASSERT_EQUAL(wait_exit(pid, 5000), 0);
	hps_finalize(a);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static void test_errors_shm_too_small(void)
{
	struct hpsi_seg s;
	struct hpsi_seg_params p = {.job = "toolarge", .host = "testhost", .nservers = 1, .nworkers = 4,
				    .ring_bytes = 1 << 16, .heap_slice = (uint64_t)1 << 40};
	CU_ASSERT_EQUAL(hpsi_seg_create(&p, &s), HPS_ENOSPC);
	char path[256];
	hpsi_seg_path(path, sizeof path, "toolarge", "testhost");
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0); /* nothing left behind */
}

static void test_errors_bad_configuration(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 2, &(struct job_opts){.no_servers = 1}), 0);
	hps_ctx *c;
	job_env(&j, "worker", 0);
	setenv("HPS_ROLE", "boss", 1);
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	job_env(&j, "worker", 2); /* the job has 2 workers */
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	job_env(&j, "worker", 0);
	setenv("HPS_NUM_WORKERS", "5", 1);
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	job_env(&j, "worker", 0);
	setenv("HPS_RANK", "x1", 1);
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	job_env(&j, "worker", 0);
	setenv("HPS_JOB_ID", "no-such-job", 1);
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ENOJOB);
	unsetenv("HPS_ROLE");
	unsetenv("HPS_JOB_ID");
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	/* ps-lite's names and --hps- flags work too */
	job_env(&j, "worker", 0);
	unsetenv("HPS_ROLE");
	setenv("DMLC_ROLE", "worker", 1);
	char a0[] = "prog", a1[] = "--hps-rank=1", a2[] = "keep";
	char *argv[] = {a0, a1, a2, NULL};
	int argc = 3;
	CU_ASSERT_EQUAL_FATAL(hps_init(&c, &argc, argv), 0);
	CU_ASSERT_EQUAL(hps_rank(c), 1);
	CU_ASSERT_EQUAL(argc, 2);
	CU_ASSERT_STRING_EQUAL(argv[1], "keep");
	hps_finalize(c);
	unsetenv("DMLC_ROLE");
	setenv("HPS_KEY_RANGES", "0-10", 1);
	setenv("HPS_NUM_SERVERS", "2", 1);
	struct hpsi_config cfg;
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG); /* 1 range for 2 servers */
	setenv("HPS_KEY_RANGES", "0-10,5-20", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), 0);
	struct hpsi_seg_params p;
	struct hpsi_seg s;
	hpsi_config_seg_params(&cfg, &p);
	p.job = "overlap";
	CU_ASSERT_EQUAL(hpsi_seg_create(&p, &s), HPS_ECONFIG); /* ranges overlap */
	unsetenv("HPS_KEY_RANGES");
	setenv("HPS_RING_KB", "100", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), 0);
	hpsi_config_seg_params(&cfg, &p);
	p.job = "badring";
	CU_ASSERT_EQUAL(hpsi_seg_create(&p, &s), HPS_ECONFIG); /* not a power of two */
	unsetenv("HPS_RING_KB");
	unsetenv("HPS_NUM_SERVERS");
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Settings that used to be accepted: each is refused naming it, by the
 * launcher's parser (hpsi_config_load) and by a node joining a job. */
static void test_errors_settings_refused(void)
{
	struct hpsi_config cfg;
	unsetenv("HPS_ROLE");
	setenv("HPS_NUM_SERVERS", "2", 1);
	setenv("HPS_KEY_RANGES", "0-10,20-30,", 1); /* trailing comma */
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
	setenv("HPS_KEY_RANGES", "0-10,20-30", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), 0);
	unsetenv("HPS_KEY_RANGES");
	/* every per-server list: one entry, or exactly one per server */
	static const char *lists[][2] = {{"HPS_STALENESS", "bsp;asp;bsp"}, {"HPS_UPDATER", "sum;sum;"},
					 {"HPS_DTYPE", "f32;f32;f64"},      {"HPS_COMPRESS", "none;none;none"},
					 {"HPS_DIRECT", "0;0;0"},           {"HPS_INIT", "zeros;zeros;zeros"}};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		setenv(lists[i][0], lists[i][1], 1);
		CU_ASSERT_EQUAL(hpsi_config_check_lists(2), HPS_ECONFIG);
		CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
		unsetenv(lists[i][0]);
	}
	setenv("HPS_STALENESS", "bsp;3", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), 0);
	setenv("HPS_NUM_SERVERS", "3", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG); /* too few */
	unsetenv("HPS_STALENESS");
	unsetenv("HPS_NUM_SERVERS");
	setenv("HPS_LOG", "loud", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
	setenv("HPS_LOG", "info", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), 0);
	unsetenv("HPS_LOG");
	setenv("HPS_DETERMINISTIC", "yes", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
	unsetenv("HPS_DETERMINISTIC");
	const char *dir = getenv("HPS_SHM_DIR");
	char keep[256];
	snprintf(keep, sizeof keep, "%s", dir ? dir : "");
	setenv("HPS_SHM_DIR", "/nonexistent", 1);
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
	setenv("HPS_SHM_DIR", "/etc/hostname", 1); /* not a directory */
	CU_ASSERT_EQUAL(hpsi_config_load(&cfg, 0), HPS_ECONFIG);
	if (dir)
		setenv("HPS_SHM_DIR", keep, 1);
	else
		unsetenv("HPS_SHM_DIR");

	/* a node checks the lists against the servers its job has */
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, &(struct job_opts){.no_servers = 1}), 0);
	hps_ctx *c;
	job_env(&j, "worker", 0);
	setenv("HPS_STALENESS", "bsp;bsp;bsp", 1);
	CU_ASSERT_EQUAL(hps_init(&c, NULL, NULL), HPS_ECONFIG);
	unsetenv("HPS_STALENESS");

	/* unknown names: the closest is named; an unknown flag is dropped */
	CU_ASSERT(hpsi_setting_known("STALENESS", 9));
	CU_ASSERT_FALSE(hpsi_setting_known("STALENES", 8));
	CU_ASSERT_STRING_EQUAL(hpsi_setting_closest("STALENES", 8), "STALENESS");
	CU_ASSERT_STRING_EQUAL(hpsi_setting_closest("heap-mbs", 8), "HEAP_MB");
	CU_ASSERT_PTR_NULL(hpsi_setting_closest("FROBNICATE_ALL", 14));
	char a0[] = "prog", a1[] = "--hps-stalenes=bsp", a2[] = "--hps-staleness=asp";
	char *argv[] = {a0, a1, a2, NULL};
	int argc = 3;
	hpsi_config_apply_flags(&argc, argv);
	CU_ASSERT_EQUAL(argc, 1);
	CU_ASSERT_PTR_NULL(getenv("HPS_STALENES"));
	CU_ASSERT_STRING_EQUAL(getenv("HPS_STALENESS"), "asp");
	unsetenv("HPS_STALENESS");
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* Garbage written into a worker's request ring: the server drops it,
 * answers what it can with HPS_EPROTO, and serves the real worker after. */
static int after_garbage_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx, (void)arg;
	uint64_t k[2] = {1, 2};
	float v[2] = {3, 4}, got[2];
	EXPECT(hps_wait(w, hps_pushpull(w, k, 2, v, got, NULL)), 0);
	return got[0] == 3 && got[1] == 4 ? 0 : 1;
}

static void test_errors_corrupt_messages_dropped(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	struct hpsi_ring_prod p;
	hpsi_ring_prod_attach(&p, hpsi_seg_ring(&j.seg, 0, 0, 0), j.seg.hdr->ring_bytes);
	srand(3);
	for (int i = 0; i < 300; i++) {
		size_t len = (size_t)(rand() % 400);
		unsigned char *d = hpsi_ring_reserve(&p, len);
		CU_ASSERT_PTR_NOT_NULL_FATAL(d);
		for (size_t k = 0; k < len; k++)
			d[k] = (unsigned char)rand();
		if (i % 3 == 0 && len >= sizeof(struct hpsi_msg_hdr)) {
			/* a plausible header with lying counts or offsets */
			struct hpsi_msg_hdr *h = (struct hpsi_msg_hdr *)d;
			hpsi_msg_init(h, HPSI_MSG_PUSH + i % 3, 0, 100000 + i);
			h->nkeys = (uint32_t)rand();
			h->width = 1;
			h->val_bytes = (uint64_t)h->nkeys * 4;
			if (i % 2) {
				h->flags = HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS;
				h->keys_off = (uint64_t)rand() << 20;
				h->vals_off = 8;
			}
		}
		hpsi_ring_commit(&p, len);
		if (i % 50 == 49) {
			hpsi_ring_publish(&p);
			hpsi_bell_ring(&hpsi_seg_node(&j.seg, 0)->bell);
			/* let the server drain, so the ring never fills */
			struct hpsi_ring *r = hpsi_seg_ring(&j.seg, 0, 0, 0);
			for (int t = 0; t < 5000 && atomic_load(&r->head) != p.tail; t++)
				usleep(1000);
			/* drop its error answers: there is no worker yet */
			struct hpsi_ring_cons c;
			hpsi_ring_cons_attach(&c, hpsi_seg_ring(&j.seg, 0, 0, 1), j.seg.hdr->ring_bytes);
			size_t l;
			while (hpsi_ring_peek(&c, &l))
				hpsi_ring_consume(&c, l);
			hpsi_ring_cons_publish(&c);
		}
	}
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, after_garbage_worker, NULL), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0); /* the server exited cleanly, not crashed */
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_errors_bad_keys", test_errors_bad_keys},
		{"test_errors_value_length_mismatch", test_errors_value_length_mismatch},
		{"test_errors_key_outside_ranges", test_errors_key_outside_ranges},
		{"test_errors_value_too_big_for_heap", test_errors_value_too_big_for_heap},
		{"test_errors_size_overflow_refused", test_errors_size_overflow_refused},
		{"test_errors_job_started_twice", test_errors_job_started_twice},
		{"test_errors_shm_too_small", test_errors_shm_too_small},
		{"test_errors_bad_configuration", test_errors_bad_configuration},
		{"test_errors_settings_refused", test_errors_settings_refused},
		{"test_errors_corrupt_messages_dropped", test_errors_corrupt_messages_dropped},
		{NULL, NULL},
	};
	return run_suite("errors", cases);
}
