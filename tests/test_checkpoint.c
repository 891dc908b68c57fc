/* Checkpoints: save, kill the job, load into a job with another number of
 * servers and continue: the same values as a job that never stopped.
 * Damaged, truncated, unfinished or mismatched checkpoints are refused and
 * change nothing; `hps checkpoint` works on a running job. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/wire.h"
#include "tests/harness.h"

#define NK 200
#define WD 2
#define T1 6
#define T2 5

static char dir[256];

static void keys_of(uint64_t *k)
{
	for (int i = 0; i < NK; i++)
		k[i] = (uint64_t)i * 7777 + 3;
}

static void grads(int t, float *g)
{
	for (int i = 0; i < NK * WD; i++)
		g[i] = (float)((i * 31 + t * 17) % 23) / 11.0f - 1.0f;
}

struct run {
	int from, to;  /* steps [from, to) */
	int save, load;
	float *out;    /* shared: final values */
	int clock;     /* load's result */
};

static int train_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	struct run *r = arg;
	uint64_t k[NK];
	float g[NK * WD];
	keys_of(k);
	if (r->load) {
		int c = hps_load(ctx, dir);
		if (c != r->from) {
			fprintf(stderr, "load gave %d, expected clock %d\n", c, r->from);
			return 1;
		}
	}
	for (int t = r->from; t < r->to; t++) {
		grads(t, g);
		if (hps_wait(w, hps_push(w, k, NK, g, NULL)))
			return 2;
		if (!r->load && hps_clock(w)) /* clocks count the steps of the first job */
			return 3;
	}
	if (r->save && hps_save(ctx, dir))
		return 4;
	return hps_wait(w, hps_pull(w, k, NK, r->out, NULL)) ? 5 : 0;
}

static void run_job(uint32_t servers, struct run *r, int kill_after)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, servers, 1, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, WD, train_worker, r), 30000), 0);
	if (kill_after) /* the job dies: only the checkpoint survives */
		for (uint32_t s = 0; s < servers; s++)
			kill(j.servers[s], SIGKILL);
	int rc = job_stop(&j);
	if (!kill_after)
		CU_ASSERT_EQUAL(rc, 0);
}

static float *shared(size_t n)
{
	return mmap(NULL, n * sizeof(float), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
}

static void test_checkpoint_resume_with_other_server_count(void)
{
	setenv("HPS_UPDATER", "adam:lr=0.05", 1);
	setenv("HPS_INIT", "normal:std=0.1,seed=5", 1);
	float *ref = shared(NK * WD), *part = shared(NK * WD), *resumed = shared(NK * WD);
	struct run never = {0, T1 + T2, 0, 0, ref, 0};
	run_job(1, &never, 0);
	struct run first = {0, T1, 1, 0, part, 0};
	run_job(2, &first, 1);
	struct run second = {T1, T1 + T2, 0, 1, resumed, 0};
	run_job(3, &second, 0);
	CU_ASSERT_EQUAL(memcmp(ref, resumed, NK * WD * sizeof(float)), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(ref, part, NK * WD * sizeof(float)), 0);
	unsetenv("HPS_UPDATER");
	unsetenv("HPS_INIT");
}

/* Loads a bad checkpoint into a job holding known values: refused with
 * its code (HPS_EPROTO: damaged; HPS_ECONFIG: another updater or type),
 * and the values are still there. */
struct refusal {
	const char *dir;
	int code;
};

static int refuse_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	const struct refusal *r = arg;
	uint64_t k = 42;
	float v = 3, before = 0, after = 1;
	if (hps_wait(w, hps_push(w, &k, 1, &v, NULL)) || hps_wait(w, hps_pull(w, &k, 1, &before, NULL)))
		return 1;
	int rc = hps_load(ctx, r->dir);
	if (rc != r->code) {
		fprintf(stderr, "loading %s gave %d\n", r->dir, rc);
		return 2;
	}
	if (hps_wait(w, hps_pull(w, &k, 1, &after, NULL)) || after != before)
		return 3;
	return 0;
}

static int load_only_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)w;
	return hps_load(ctx, arg) == HPS_ECONFIG ? 0 : 1;
}

static void expect_refused(const char *bad, int code)
{
	struct job j;
	struct refusal r = {bad, code};
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, refuse_worker, &r), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static int save_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	uint64_t k[3] = {1, 2, 3};
	float v[3] = {1, 2, 3};
	if (hps_wait(w, hps_push(w, k, 3, v, NULL)))
		return 1;
	return hps_save(ctx, arg) ? 2 : 0;
}

static void save_small(const char *to)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, NULL), 0);
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, save_worker, (void *)to), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

static void copy_dir(const char *from, const char *to)
{
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_checkpoint_damage_refused(void)
{
	char good[300], bad[300], path[400];
	snprintf(good, sizeof good, "%s-good", dir);
	snprintf(bad, sizeof bad, "%s-bad", dir);
	save_small(good);
	/* a flipped byte in a value */
	copy_dir(good, bad);
	snprintf(path, sizeof path, "%s/server-1.hpsckpt", bad);
	FILE *f = fopen(path, "r+b");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fseek(f, -2, SEEK_END);
	int c = fgetc(f);
	fseek(f, -2, SEEK_END);
	fputc(c ^ 0x10, f);
	fclose(f);
	expect_refused(bad, HPS_EPROTO);
	/* a truncated file */
	copy_dir(good, bad);
	CU_ASSERT_EQUAL(truncate(path, 70), 0);
	expect_refused(bad, HPS_EPROTO);
	/* a file missing */
	copy_dir(good, bad);
	unlink(path);
	expect_refused(bad, HPS_EPROTO);
	/* unfinished: no MANIFEST (what a crash during a save leaves) */
	copy_dir(good, bad);
	snprintf(path, sizeof path, "%s/MANIFEST", bad);
	unlink(path);
	expect_refused(bad, HPS_EPROTO);
	/* written with another updater */
	setenv("HPS_UPDATER", "adagrad", 1);
	expect_refused(good, HPS_ECONFIG);
	unsetenv("HPS_UPDATER");
	/* a directory that is not there */
	snprintf(path, sizeof path, "%s-missing", dir);
	expect_refused(path, HPS_EINVAL);
	/* written from f32 key ranges, loaded into f64 ones */
	setenv("HPS_DTYPE", "f64", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	unsetenv("HPS_DTYPE");
	CU_ASSERT_EQUAL(wait_exit(job_fork_worker(&j, 0, 1, load_only_worker, good), 30000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	/* and the intact one loads */
	copy_dir(good, bad);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", good, bad);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* A save that cannot finish leaves the previous checkpoint in place. */
static void test_checkpoint_failed_save_keeps_old(void)
{
	char partial[300];
	save_small(dir);
	snprintf(partial, sizeof partial, "%s.partial", dir);
	FILE *f = fopen(partial, "w"); /* a file where the new directory must go */
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	/* remove_dir cannot remove a file: mkdir fails, the save is refused */
	job_env(&j, "worker", 0);
	hps_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(hps_init(&ctx, NULL, NULL), 0);
	CU_ASSERT_NOT_EQUAL(hps_save(ctx, dir), 0);
	hps_finalize(ctx);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	unlink(partial);
	char manifest[300];
	snprintf(manifest, sizeof manifest, "%s/MANIFEST", dir);
	CU_ASSERT_EQUAL(access(manifest, R_OK), 0);
}

static int wait_for_parent(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	int *fds = arg;
	uint64_t k = 9;
	float v = 4;
	char c = 1;
	if (hps_wait(w, hps_push(w, &k, 1, &v, NULL)) || write(fds[1], &c, 1) != 1 || read(fds[2], &c, 1) != 1)
		return 1;
	return 0;
}

static void test_checkpoint_command_on_running_job(void)
{
	int up[2], down[2];
	CU_ASSERT_FATAL(pipe(up) == 0 && pipe(down) == 0);
	int fds[3] = {up[0], up[1], down[0]};
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, NULL), 0);
	pid_t w = job_fork_worker(&j, 0, 1, wait_for_parent, fds);
	char c;
	CU_ASSERT_FATAL(read(up[0], &c, 1) == 1);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "%s checkpoint --job %s --host testhost %s-cli > /dev/null", hps_bin(), j.job, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s checkpoint --load --job %s --host testhost %s-cli > /dev/null", hps_bin(), j.job,
		 dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "%s checkpoint --job no-such-job %s-x 2>/dev/null", hps_bin(), dir);
	CU_ASSERT_NOT_EQUAL(system(cmd), 0);
	CU_ASSERT_FATAL(write(down[1], &c, 1) == 1);
	CU_ASSERT_EQUAL(wait_exit(w, 10000), 0);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	snprintf(cmd, sizeof cmd, "rm -rf %s-cli", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* Runs `hps checkpoint --load` on job j and returns its exit status; its
 * stderr is read into out. */
static int load_command(const struct job *j, const char *from, char *out, size_t cap)
{
	char cmd[900], log[300];
	snprintf(log, sizeof log, "%s-cli.log", dir);
	snprintf(cmd, sizeof cmd, "%s checkpoint --load --job %s --host testhost '%s' 2> '%s'", hps_bin(), j->job,
		 from, log);
	int rc = system(cmd);
	out[0] = 0;
	FILE *f = fopen(log, "r");
	if (f) {
		out[fread(out, 1, cap - 1, f)] = 0;
		fclose(f);
	}
	unlink(log);
	return rc;
}

/* `hps checkpoint --load` says why it refused, also when the reason was
 * found by a server: a missing directory, another updater. */
static void test_checkpoint_command_says_why(void)
{
	char good[300], missing[300], out[2048];
	snprintf(good, sizeof good, "%s-why", dir);
	snprintf(missing, sizeof missing, "%s-none", dir);
	save_small(good); /* the default updater: sum */
	setenv("HPS_UPDATER", "adagrad", 1);
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 2, 1, NULL), 0);
	unsetenv("HPS_UPDATER");
	job_env(&j, "worker", 0); /* a live worker keeps the servers up */
	hps_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(hps_init(&ctx, NULL, NULL), 0);
	CU_ASSERT_NOT_EQUAL(load_command(&j, missing, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "No such file or directory"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, missing));
	CU_ASSERT_PTR_NULL(strstr(out, "malformed"));
	CU_ASSERT_NOT_EQUAL(load_command(&j, good, out, sizeof out), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "hps checkpoint: load failed"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HPS_UPDATER=sum"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "adagrad"));
	CU_ASSERT_PTR_NULL(strstr(out, "malformed"));
	if (!strstr(out, "HPS_UPDATER=sum"))
		fprintf(stderr, "hps checkpoint said: %s\n", out);
	hps_finalize(ctx);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", good);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* One checkpoint at a time: a live holder of the lock refuses a second
 * one; the lock of a holder that died is taken over. */
static void test_checkpoint_one_at_a_time(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, NULL), 0);
	job_env(&j, "worker", 0);
	hps_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(hps_init(&ctx, NULL, NULL), 0);
	char d[300];
	snprintf(d, sizeof d, "%s-lock", dir);
	pid_t holder = fork();
	if (holder == 0) {
		pause();
		_exit(0);
	}
	atomic_store(&j.seg.hdr->ckpt_lock, (int32_t)holder);
	CU_ASSERT_EQUAL(hps_save(ctx, d), HPS_EEXIST);
	kill(holder, SIGKILL);
	wait_exit(holder, 5000);
	CU_ASSERT_EQUAL(hps_save(ctx, d), 0);
	CU_ASSERT_EQUAL(atomic_load(&j.seg.hdr->ckpt_lock), 0);
	hps_finalize(ctx);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static int dense_handler(hps_request *r, void *arg)
{
	(void)arg;
	float *out = r->out; /* f32 key range */
	for (size_t i = 0; r->type != HPS_REQ_PUSH && i < r->nkeys; i++)
		out[i] = 0;
	return r->type == HPS_REQ_PUSH ? 0 : (int)r->nkeys;
}

static void test_checkpoint_user_handler_refuses(void)
{
	struct job j;
	CU_ASSERT_EQUAL_FATAL(job_start(&j, 1, 1, &(struct job_opts){.handler = dense_handler}), 0);
	job_env(&j, "worker", 0);
	hps_ctx *ctx;
	CU_ASSERT_EQUAL_FATAL(hps_init(&ctx, NULL, NULL), 0);
	char d[300];
	snprintf(d, sizeof d, "%s-handler", dir);
	CU_ASSERT_EQUAL(hps_save(ctx, d), HPS_EINVAL);
	CU_ASSERT_NOT_EQUAL(access(d, F_OK), 0);
	hps_finalize(ctx);
	CU_ASSERT_EQUAL(job_stop(&j), 0);
}

/* The checkpoint messages between bridges and the scheduler, as each side
 * checks them (net/wire.c): a step its type may not carry (UNLOCK only in
 * a RUN), a code that is
 * no HPS_E*, a directory not named from the root or not terminated, or a
 * wrong size is refused with a reason. */
static void test_checkpoint_wire_checked(void)
{
	static struct hpsi_sched_ckpt m;
	const char *why = NULL;
	hpsi_sched_init(&m.h, HPSI_SCH_CKPT_RUN, 0);
	m.op = HPSI_CKPT_PREPARE;
	snprintf(m.dir, sizeof m.dir, "/tmp/ck");
	CU_ASSERT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m - 1, &why), 0);
	m.op = HPSI_CKPT_LOAD; /* a request's op, not a step */
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	m.op = HPSI_CKPT_UNLOCK; /* a round's end, to the host with the room */
	CU_ASSERT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	m.h.type = HPSI_SCH_CKPT_DONE; /* which no host reports */
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	m.h.type = HPSI_SCH_CKPT_RUN;
	m.op = HPSI_CKPT_COMMIT;
	m.status = HPS_EPROTO; /* a RUN carries no code */
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	m.status = 0;
	snprintf(m.dir, sizeof m.dir, "relative/ck");
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	memset(m.dir, 'x', sizeof m.dir); /* not terminated */
	m.dir[0] = '/';
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	memset(&m, 0, sizeof m);
	hpsi_sched_init(&m.h, HPSI_SCH_CKPT_END, 0);
	m.op = HPSI_CKPT_LOAD, m.status = HPS_EPROTO;
	snprintf(m.why, sizeof m.why, "host h1: damaged");
	CU_ASSERT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	const int32_t bad[] = {1, -1000, INT32_MIN};
	for (int i = 0; i < 3; i++) {
		m.status = bad[i], why = NULL;
		CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
	m.status = 0;
	m.op = HPSI_CKPT_ABORT; /* an answer names the request's op */
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
	m.op = HPSI_CKPT_SAVE;
	memset(m.why, 'y', sizeof m.why);
	CU_ASSERT_NOT_EQUAL(hpsi_sched_check(&m, sizeof m, &why), 0);
}

int main(void)
{
	char tmpl[] = "/tmp/hps-ckpt-XXXXXX";
	char *base = mkdtemp(tmpl);
	if (!base)
		return 1;
	snprintf(dir, sizeof dir, "%s/ck", base);
	static const struct test_case cases[] = {
		{"test_checkpoint_resume_with_other_server_count", test_checkpoint_resume_with_other_server_count},
		{"test_checkpoint_damage_refused", test_checkpoint_damage_refused},
		{"test_checkpoint_command_says_why", test_checkpoint_command_says_why},
		{"test_checkpoint_failed_save_keeps_old", test_checkpoint_failed_save_keeps_old},
		{"test_checkpoint_command_on_running_job", test_checkpoint_command_on_running_job},
		{"test_checkpoint_user_handler_refuses", test_checkpoint_user_handler_refuses},
		{"test_checkpoint_one_at_a_time", test_checkpoint_one_at_a_time},
		{"test_checkpoint_wire_checked", test_checkpoint_wire_checked},
		{NULL, NULL},
	};
	int rc = run_suite("checkpoint", cases);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
