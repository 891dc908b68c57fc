/* The README's launch recipes as a user runs them, on 127.0.0.1 only:
 * dmlc-core's tracker (processes started one by one with exactly the
 * environment dmlc_tracker/local.py and tracker.py give them: dmlc-core is
 * not packaged in Debian, so the test plays its part), mpirun from Debian's
 * openmpi-bin with two ranks on this one node, srun's environment for two
 * tasks of a node, and a scheduler fed forged registrations before the
 * real hosts come.
 *
 * The test binary is also the job's worker program (`--recipe-worker`):
 * what a worker checks travels back as its exit status. */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "net/wire.h"
#include "shm/bell.h"
#include "tests/harness.h"

#define NKEYS 1000
#define ROUNDS 3

static char self_path[4096], logs[6][256];

/* Each worker r pushes r+1 to every key ROUNDS times; after a barrier every
 * key holds ROUNDS * W(W+1)/2 exactly. */
static int recipe_worker(void)
{
	hps_ctx *ctx;
	hps_worker *w;
	int rc = join_as_worker(&ctx, &w);
	if (rc)
		return rc;
	int me = hps_rank(ctx), nw = hps_num_workers(ctx);
	static uint64_t keys[NKEYS];
	static float v[NKEYS], got[NKEYS];
	for (int k = 0; k < NKEYS; k++)
		keys[k] = (uint64_t)k * 7919, v[k] = (float)(me + 1);
	for (int r = 0; r < ROUNDS && !rc; r++)
		rc = hps_wait(w, hps_push(w, keys, NKEYS, v, NULL));
	if (!rc)
		rc = hps_barrier(ctx);
	if (!rc)
		rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL));
	float want = (float)(ROUNDS * nw * (nw + 1) / 2);
	for (int k = 0; k < NKEYS && !rc; k++)
		if (got[k] != want) {
			fprintf(stderr, "key %d holds %g, expected %g\n", k, got[k], want);
			rc = 1;
		}
	if (!rc)
		printf("worker %d: sums ok\n", me);
	else
		fprintf(stderr, "worker %d: %s\n", me, rc > 0 ? "wrong sums" : hps_strerror(rc));
	hps_worker_close(w);
	hps_finalize(ctx);
	return rc ? 1 : 0;
}

/* ---- processes -------------------------------------------------------------- */

static pid_t start(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static pid_t start(const char *log, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	/* as local.py runs the command: bash -c, in a fresh process */
	return spawn_logged(log, "/bin/bash", cmd);
}

static char text[1 << 17];

static const char *slurp(const char *log)
{
	return slurp_into(log, text, sizeof text);
}

static int count(const char *log, const char *what)
{
	int n = 0;
	for (const char *x = slurp(log); (x = strstr(x, what)); x++)
		n++;
	return n;
}

/* Exit status within ms, else the process group is killed and -1. */
static int finish(pid_t pid, int ms)
{
	return finish_group(pid, ms);
}

static void show_if(int bad, int n)
{
	for (int i = 0; bad && i < n; i++)
		fprintf(stderr, "--- %s\n%s\n", logs[i], slurp(logs[i]));
}

#define COMMON "HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_LOG=info"

/* ---- dmlc-core's tracker ---------------------------------------------------- */

/* dmlc-submit --cluster local --num-servers 2 --num-workers 2 hps launch
 * --tracker -- PROG: the scheduler with DMLC_ROLE=scheduler and the root
 * URI and port, then every worker and server alone with DMLC_ROLE,
 * DMLC_TASK_ID and DMLC_JOB_CLUSTER=local. No DMLC_NODE_HOST, no
 * DMLC_INTERFACE. They share this machine, so they form one host group. */
static void test_recipes_dmlc_tracker_local(void)
{
	const char *env = "DMLC_NUM_WORKER=2 DMLC_NUM_SERVER=2 DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=9721 " COMMON;
	static const char *const roles[] = {"scheduler", "worker", "worker", "server", "server"};
	pid_t pid[5];
	for (int i = 0; i < 5; i++) {
		char task[64] = ""; /* the scheduler gets none */
		if (i)
			snprintf(task, sizeof task, "DMLC_TASK_ID=%d DMLC_JOB_CLUSTER=local", i - 1);
		pid[i] = start(logs[i], "env %s DMLC_ROLE=%s %s %s launch --tracker -- %s --recipe-worker", env, roles[i],
			       task, hps_bin(), self_path);
		if (i == 0)
			usleep(100000);
	}
	int bad = 0;
	for (int i = 4; i >= 0; i--) {
		int rc = finish(pid[i], 60000);
		CU_ASSERT_EQUAL(rc, 0);
		bad |= rc != 0;
	}
	int ok = 0, joined = 0;
	for (int i = 1; i < 5; i++)
		ok += count(logs[i], "sums ok"), joined += count(logs[i], "joined host group");
	CU_ASSERT_EQUAL(ok, 2);
	CU_ASSERT_EQUAL(joined, 3); /* one launch leads, three join it */
	/* one host: the four processes share one segment, no TCP between them */
	CU_ASSERT_EQUAL(count(logs[0], "1 hosts, 2 servers, 2 workers"), 1);
	show_if(bad || ok != 2 || joined != 3, 5);
}

/* A bad node address under the tracker: non-zero within seconds, naming
 * the setting the user gave. */
static void test_recipes_tracker_errors_name_the_setting(void)
{
	static const struct {
		const char *set, *name;
	} cases[] = {{"DMLC_NODE_HOST=no-such-host.invalid", "DMLC_NODE_HOST"},
		     {"DMLC_INTERFACE=nosuch0", "DMLC_INTERFACE"}};
	for (int i = 0; i < 2; i++) {
		int64_t t0 = hpsi_now_ns();
		pid_t p = start(logs[0], "env DMLC_ROLE=worker DMLC_NUM_WORKER=1 DMLC_NUM_SERVER=1 DMLC_PS_ROOT_URI=127.0.0.1 "
					 "DMLC_PS_ROOT_PORT=9722 HPS_GATHER_MS=300 %s " COMMON " %s launch --tracker -- true",
				cases[i].set, hps_bin());
		int rc = finish(p, 20000);
		int64_t ms = (hpsi_now_ns() - t0) / 1000000;
		int named = count(logs[0], cases[i].name) > 0;
		CU_ASSERT(rc > 0);
		CU_ASSERT(named);
		CU_ASSERT(ms < 10000);
		show_if(rc <= 0 || !named || ms >= 10000, 1);
	}
}

/* ---- mpirun and srun ---------------------------------------------------------- */

#define MPI_ENV                                                                                              \
	"HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 " COMMON

/* The README's recipe with Debian's Open MPI: two ranks on this node, each
 * `hps launch --local-servers 1 --local-workers 1`. mpirun's own sockets
 * stay on the loopback interface. */
static void test_recipes_mpirun_two_ranks(void)
{
	CU_ASSERT_EQUAL_FATAL(system("command -v mpirun >/dev/null"), 0); /* openmpi-bin (make deps) */
	pid_t s = start(logs[0], "env " MPI_ENV " %s scheduler", 9723, hps_bin());
	usleep(100000);
	pid_t m = start(logs[1], "export " MPI_ENV " OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo; "
				 "mpirun --allow-run-as-root --oversubscribe -np 2 -x HPS_ROOT_URI -x HPS_ROOT_PORT "
				 "-x HPS_NUM_SERVERS -x HPS_NUM_WORKERS -x HPS_HEAP_MB -x HPS_RING_KB "
				 "%s launch --local-servers 1 --local-workers 1 -- %s --recipe-worker",
			9723, hps_bin(), self_path);
	int rm = finish(m, 90000), rs = finish(s, 10000);
	CU_ASSERT_EQUAL(rm, 0);
	CU_ASSERT_EQUAL(rs, 0);
	CU_ASSERT_EQUAL(count(logs[1], "sums ok"), 2);
	CU_ASSERT_EQUAL(count(logs[0], "1 hosts, 2 servers, 2 workers"), 1);
	show_if(rm || rs || count(logs[1], "sums ok") != 2, 2);
}

/* What srun gives two tasks of one node (SLURM_LOCALID, SLURM_NODEID,
 * SLURM_STEP_TASKS_PER_NODE): one host group as well. */
static void test_recipes_srun_tasks_share_a_host(void)
{
	pid_t s = start(logs[0], "env " MPI_ENV " %s scheduler", 9724, hps_bin());
	pid_t t[2];
	for (int i = 0; i < 2; i++)
		t[i] = start(logs[1 + i], "env " MPI_ENV " SLURM_LOCALID=%d SLURM_PROCID=%d SLURM_NODEID=0 "
					  "SLURM_STEP_TASKS_PER_NODE='2' %s launch --local-servers 1 --local-workers 1 -- %s --recipe-worker",
			     9724, i, i, hps_bin(), self_path);
	int r0 = finish(t[0], 60000), r1 = finish(t[1], 60000), rs = finish(s, 10000);
	int ok = count(logs[1], "sums ok") + count(logs[2], "sums ok");
	CU_ASSERT_EQUAL(r0, 0);
	CU_ASSERT_EQUAL(r1, 0);
	CU_ASSERT_EQUAL(rs, 0);
	CU_ASSERT_EQUAL(ok, 2);
	CU_ASSERT_EQUAL(count(logs[0], "1 hosts, 2 servers, 2 workers"), 1);
	show_if(r0 || r1 || rs || ok != 2, 3);
}

/* A second launch under a host name in use: on the same machine its lobby
 * refuses it, from another machine the scheduler does; either way at once,
 * naming HPS_HOST on its side (and the scheduler's), and the job goes on
 * with a launch that has a name of its own. */
static void test_recipes_same_name_twice_is_refused(void)
{
	const char *env = "HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=9726 HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=2 " COMMON;
	pid_t s = start(logs[0], "env %s %s scheduler", env, hps_bin());
	pid_t a = start(logs[1], "env %s HPS_HOST=twin %s launch --local-servers 1 --local-workers 1 -- %s --recipe-worker",
			env, hps_bin(), self_path);
	int seen = 0;
	for (int t = 0; t < 300 && !(seen = count(logs[0], "host twin registered")); t++)
		usleep(20000);
	CU_ASSERT(seen);
	int64_t t0 = hpsi_now_ns();
	pid_t b = start(logs[2], "env %s HPS_HOST=twin %s launch --local-servers 0 --local-workers 1 -- %s --recipe-worker",
			env, hps_bin(), self_path);
	int rb = finish(b, 20000);
	int64_t ms = (hpsi_now_ns() - t0) / 1000000;
	CU_ASSERT(rb > 0);
	CU_ASSERT(ms < 5000);
	CU_ASSERT(count(logs[2], "HPS_HOST") > 0);
	show_if(rb <= 0 || ms >= 5000, 3);
	/* the same name from another machine (a shared-memory directory of
	 * its own stands for it): the scheduler refuses it by name */
	char other[] = "/dev/shm/hps-recipes-XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(other));
	t0 = hpsi_now_ns();
	b = start(logs[2], "env %s HPS_HOST=twin HPS_SHM_DIR=%s %s launch --local-servers 0 --local-workers 1 -- %s --recipe-worker",
		  env, other, hps_bin(), self_path);
	rb = finish(b, 20000);
	ms = (hpsi_now_ns() - t0) / 1000000;
	rmdir(other);
	CU_ASSERT(rb > 0);
	CU_ASSERT(ms < 5000);
	CU_ASSERT(count(logs[2], "host name twin is taken") == 1);
	CU_ASSERT(count(logs[0], "host name twin is taken") == 1);
	show_if(rb <= 0 || ms >= 5000, 3);
	pid_t c = start(logs[3], "env %s HPS_HOST=other %s launch --local-servers 0 --local-workers 1 -- %s --recipe-worker",
			env, hps_bin(), self_path);
	int ra = finish(a, 60000), rc = finish(c, 60000), rs = finish(s, 10000);
	int ok = count(logs[1], "sums ok") + count(logs[3], "sums ok");
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_EQUAL(rs, 0);
	CU_ASSERT_EQUAL(ok, 2);
	show_if(ra || rc || rs || ok != 2, 4);
}

/* The launch that leads a host group is SIGKILLed while it gathers: the
 * launch that joined it ends by itself, non-zero, saying why. */
static void test_recipes_leader_death_ends_members(void)
{
	const char *env = "DMLC_NUM_WORKER=2 DMLC_NUM_SERVER=2 DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=9727 "
			  "HPS_GATHER_MS=30000 " COMMON;
	pid_t l = start(logs[0], "exec env %s DMLC_ROLE=worker %s launch --tracker -- true", env, hps_bin());
	usleep(300000);
	pid_t m = start(logs[1], "exec env %s DMLC_ROLE=server %s launch --tracker -- true", env, hps_bin());
	int joined = 0;
	for (int t = 0; t < 250 && !(joined = count(logs[1], "joined host group")); t++)
		usleep(20000);
	CU_ASSERT(joined);
	char want[64];
	snprintf(want, sizeof want, "(pid %d)", (int)l);
	CU_ASSERT(count(logs[1], want) == 1); /* the first launch leads */
	kill(-l, SIGKILL);
	finish(l, 5000);
	int rm = finish(m, 5000);
	CU_ASSERT(rm > 0);
	CU_ASSERT(count(logs[1], "ended without telling") == 1);
	show_if(!joined || rm <= 0, 2);
	char host[256], path[1024];
	const char *dir = getenv("HPS_SHM_DIR");
	if (gethostname(host, sizeof host) == 0) { /* what the dead leader left */
		host[sizeof host - 1] = 0;
		snprintf(path, sizeof path, "%s/hps-lobby.hps9727.%s", dir && *dir ? dir : "/dev/shm", host);
		unlink(path);
	}
}

/* ---- forged registrations --------------------------------------------------- */

/* Sends one registration from a socket of its own; returns the scheduler's
 * answer (an ABORT's reason) in why, or "" when none came within ms. */
static void forge(void *zctx, int port, const struct hpsi_sched_register *r, char *why, size_t cap, int ms)
{
	void *d = zmq_socket(zctx, ZMQ_DEALER);
	int linger = 0;
	zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
	char ep[64];
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
	zmq_connect(d, ep);
	zmq_send(d, r, sizeof *r, 0);
	why[0] = 0;
	zmq_pollitem_t it = {.socket = d, .events = ZMQ_POLLIN};
	static struct hpsi_sched_assign m;
	if (ms && zmq_poll(&it, 1, ms) > 0) {
		int n = zmq_recv(d, &m, sizeof m, 0);
		if (n == (int)sizeof(struct hpsi_sched_abort) && m.h.type == HPSI_SCH_ABORT)
			snprintf(why, cap, "%s", ((struct hpsi_sched_abort *)&m)->reason);
	}
	zmq_close(d);
}

static void real_registration(struct hpsi_sched_register *r, const char *name, uint32_t srv, uint32_t wrk)
{
	memset(r, 0, sizeof *r);
	hpsi_sched_init(&r->h, HPSI_SCH_REGISTER, 0);
	snprintf(r->name, sizeof r->name, "%s", name);
	snprintf(r->endpoint, sizeof r->endpoint, "tcp://127.0.0.1:1");
	r->nservers = srv, r->nworkers = wrk, r->total_servers = 1, r->total_workers = 2;
	static const char *const shared[HPSI_NSHARED] = HPSI_SHARED_SETTINGS;
	for (int i = 0; i < HPSI_NSHARED; i++)
		r->settings[i] = hpsi_settings_hash(shared[i]);
}

/* Registrations with the right magic, version, type and size but wrong
 * counts, random bytes, no processes, or a host name already taken: each
 * is refused (that peer told why, the refusal logged) and the scheduler
 * goes on to run the real job to exact sums. */
static void test_recipes_forged_registrations_are_refused(void)
{
	const int port = 9725;
	pid_t s = start(logs[0], "env HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=2 "
				 "HPS_REGISTER_MS=30000 " COMMON " %s scheduler",
			port, hps_bin());
	setenv("HPS_HEAP_MB", "16", 1); /* the hashes of the real hosts' settings */
	setenv("HPS_RING_KB", "256", 1);
	void *zctx = zmq_ctx_new();
	struct hpsi_sched_register r;
	char why[256];
	real_registration(&r, "forged", 1, 1);
	r.total_servers = 214, r.total_workers = 77;
	forge(zctx, port, &r, why, sizeof why, 3000);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "HPS_NUM_SERVERS"));
	real_registration(&r, "empty", 0, 0);
	forge(zctx, port, &r, why, sizeof why, 3000);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "no server and no worker"));
	real_registration(&r, "greedy", 1, 9);
	forge(zctx, port, &r, why, sizeof why, 3000);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "more than the job's"));
	srand(7);
	for (int v = 0; v < 20; v++) { /* random bodies behind a valid header */
		unsigned char *b = (unsigned char *)&r;
		for (size_t i = 0; i < sizeof r; i++)
			b[i] = (unsigned char)rand();
		hpsi_sched_init(&r.h, HPSI_SCH_REGISTER, (uint32_t)rand());
		if (v % 2) /* a terminated name: the counts are what is wrong */
			snprintf(r.name, sizeof r.name, "random%d", v), r.endpoint[0] = 0;
		forge(zctx, port, &r, why, sizeof why, 0);
	}
	pid_t a = start(logs[1], "env HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=2 HPS_HOST=alpha "
				 COMMON " %s launch --local-servers 1 --local-workers 1 -- %s --recipe-worker",
			port, hps_bin(), self_path);
	int seen = 0;
	for (int t = 0; t < 300 && !(seen = count(logs[0], "host alpha registered")); t++)
		usleep(20000);
	CU_ASSERT(seen);
	/* a second host group named alpha, from another connection */
	real_registration(&r, "alpha", 0, 1);
	forge(zctx, port, &r, why, sizeof why, 3000);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "host name alpha is taken"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "HPS_HOST"));
	zmq_ctx_term(zctx);
	pid_t b = start(logs[2], "env HPS_ROOT_URI=127.0.0.1 HPS_ROOT_PORT=%d HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=2 HPS_HOST=beta "
				 COMMON " %s launch --local-servers 0 --local-workers 1 -- %s --recipe-worker",
			port, hps_bin(), self_path);
	int ra = finish(a, 60000), rb = finish(b, 60000), rs = finish(s, 10000);
	int ok = count(logs[1], "sums ok") + count(logs[2], "sums ok");
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rb, 0);
	CU_ASSERT_EQUAL(rs, 0);
	CU_ASSERT_EQUAL(ok, 2);
	CU_ASSERT(count(logs[0], "registration refused") >= 4);
	show_if(ra || rb || rs || ok != 2, 3);
	unsetenv("HPS_HEAP_MB");
	unsetenv("HPS_RING_KB");
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--recipe-worker") == 0)
		return recipe_worker();
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	self_path[n > 0 ? n : 0] = 0;
	for (int i = 0; i < 6; i++)
		snprintf(logs[i], sizeof logs[i], "/tmp/hps-recipes-%d.%d.log", (int)getpid(), i);
	static const struct test_case cases[] = {
		{"test_recipes_dmlc_tracker_local", test_recipes_dmlc_tracker_local},
		{"test_recipes_tracker_errors_name_the_setting", test_recipes_tracker_errors_name_the_setting},
		{"test_recipes_mpirun_two_ranks", test_recipes_mpirun_two_ranks},
		{"test_recipes_srun_tasks_share_a_host", test_recipes_srun_tasks_share_a_host},
		{"test_recipes_same_name_twice_is_refused", test_recipes_same_name_twice_is_refused},
		{"test_recipes_leader_death_ends_members", test_recipes_leader_death_ends_members},
		{"test_recipes_forged_registrations_are_refused", test_recipes_forged_registrations_are_refused},
		{NULL, NULL},
	};
	int rc = run_suite("recipes", cases);
	for (int i = 0; i < 6; i++)
		unlink(logs[i]);
	return rc;
}
