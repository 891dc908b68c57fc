/* Security of a job across hosts (README, Security across hosts).
 *
 * Without root: the ZAP handler's decision on well-formed and malformed
 * requests, and the one-line errors of HPS_CURVE's key files.
 * With root, on network-namespace hosts (tests/netns.h): a CURVE job gives
 * the sums of a plain one; a packet capture of host 1's veth (tcpdump)
 * holds the float pattern the workers pushed in a plain job and not in a
 * CURVE job; strangers (no key, a wrong key, a replayed capture of a real
 * registration) are refused, counted and logged while the job completes;
 * forged, malformed and repeated registrations cannot take a plain job's
 * place; a host holding other keys is refused and says why; and a process
 * of another uid cannot attach to a job's segment (0600), with an error
 * that says so. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "net/curve.h"
#include "net/wire.h"
#include "shm/segment.h"
#include "tests/netns.h"

static char keys[300]; /* hps keygen's directory */

/* ---- without root ------------------------------------------------------- */

static int keygen_into(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s keygen %s > /dev/null", hps_bin(), dir);
	return system(cmd);
}

static void test_curve_zap_decisions(void)
{
	char d[] = "/tmp/hps-curve-zap-XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(d));
	char dir[64];
	snprintf(dir, sizeof dir, "%s/k", d);
	CU_ASSERT_EQUAL_FATAL(keygen_into(dir), 0);
	setenv("HPS_CURVE", dir, 1);
	static struct hpsi_curve c;
	CU_ASSERT_EQUAL_FATAL(hpsi_curve_load(&c), 0);
	CU_ASSERT(c.on && c.nallowed == 1);
	unsigned char mine[32], other[32];
	zmq_z85_decode(mine, c.pub);
	char opub[41], osec[41];
	zmq_curve_keypair(opub, osec);
	zmq_z85_decode(other, opub);
	struct hpsi_zap_frame f[8] = {{"1.0", 3}, {"1", 1}, {"hps", 3}, {"10.0.0.1", 8}, {"", 0}, {"CURVE", 5},
				      {mine, 32}};
	const char *why = NULL;
	CU_ASSERT_EQUAL(hpsi_zap_decide(&c, f, 7, &why), 200);
	f[6].data = other;
	CU_ASSERT_EQUAL(hpsi_zap_decide(&c, f, 7, &why), 400);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "authorized_keys"));
	/* every frame checked: count, version, domain, lengths, mechanism, key size */
	f[6].data = mine;
	CU_ASSERT_EQUAL(hpsi_zap_decide(&c, f, 6, &why), -1);
	CU_ASSERT_EQUAL(hpsi_zap_decide(&c, f, 8, &why), -1);
	struct hpsi_zap_frame bad[][2] = {
		{{"1.1", 3}, {NULL, 0}}, {{"evil", 4}, {NULL, 2}}, {{"PLAIN", 5}, {NULL, 5}}, {{mine, 31}, {NULL, 6}},
		{{"x", 256}, {NULL, 1}}, {{"x", 256}, {NULL, 3}},
	};
	static char big[300];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct hpsi_zap_frame g[7];
		memcpy(g, f, sizeof g);
		size_t at = bad[i][1].size;
		g[at] = bad[i][0];
		if (g[at].size == 256)
			g[at].data = big;
		why = NULL;
		CU_ASSERT_EQUAL(hpsi_zap_decide(&c, g, 7, &why), -1);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
	CU_ASSERT_EQUAL(sh("rm -rf %s", d), 0);
	unsetenv("HPS_CURVE");
}

/* hpsi_curve_load fails with a line naming HPS_CURVE and what to do. */
static void expect_load_error(const char *dir, const char *what)
{
	char log[] = "/tmp/hps-curve-err-XXXXXX";
	int fd = mkstemp(log);
	CU_ASSERT_FATAL(fd >= 0);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "HPS_CURVE=%s HPS_HEAP_MB=16 %s launch -s 1 -w 1 -- true > %s 2>&1", dir, hps_bin(),
		 log);
	int rc = system(cmd);
	static char buf[4096];
	const char *o = slurp_into(log, buf, sizeof buf);
	if (!strstr(o, "HPS_CURVE") || !strstr(o, what) || rc == 0)
		fprintf(stderr, "HPS_CURVE=%s: status %d, wanted '%s':\n%s\n", dir, rc, what, o);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "HPS_CURVE"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, what));
	close(fd);
	unlink(log);
}

static void test_curve_key_errors(void)
{
	char d[] = "/tmp/hps-curve-keys-XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(d));
	char dir[64], cmd[300];
	snprintf(dir, sizeof dir, "%s/k", d);
	expect_load_error(dir, "hps keygen");
	CU_ASSERT_EQUAL_FATAL(keygen_into(dir), 0);
	/* a second keygen keeps the key */
	CU_ASSERT_NOT_EQUAL(sh("%s keygen %s 2>/dev/null", hps_bin(), dir), 0);
	struct stat st;
	snprintf(cmd, sizeof cmd, "%s/hps.key", dir);
	CU_ASSERT(stat(cmd, &st) == 0 && (st.st_mode & 0777) == 0600);
	chmod(cmd, 0644);
	expect_load_error(dir, "chmod 600");
	chmod(cmd, 0600);
	FILE *f = fopen(cmd, "w");
	fputs("not a key\n", f);
	fclose(f);
	expect_load_error(dir, "not a Z85 secret key");
	/* a new pair whose public key authorized_keys lacks */
	CU_ASSERT_EQUAL(sh("cp %s/authorized_keys %s/old && %s keygen --force %s >/dev/null && mv %s/old %s/authorized_keys",
			   dir, d, hps_bin(), dir, d, dir),
			0);
	expect_load_error(dir, "is not in");
	CU_ASSERT_EQUAL(sh("echo 'short' >> %s/authorized_keys", dir), 0);
	expect_load_error(dir, "authorized_keys:3");
	CU_ASSERT_EQUAL(sh("rm -rf %s", d), 0);
}

/* ---- on namespace hosts -------------------------------------------------- */

static char pcap[300];

/* tcpdump on host i's end of its veth pair into pcap; immediate mode, or
 * what the kernel holds in a block of its ring is lost on SIGINT. */
static pid_t capture(int i)
{
	char log[300];
	snprintf(log, sizeof log, "%s.tcpdump", job_log);
	pid_t t = start(log, "exec ip netns exec %s%d tcpdump --immediate-mode -i eth0 -s 0 -U -n -w %s tcp", pfx, i, pcap);
	CU_ASSERT(wait_log(log, "listening on", 10000));
	return t;
}

static void capture_end(pid_t t)
{
	usleep(200000);
	kill(-t, SIGINT);
	finish(t, 5000);
	char log[300];
	snprintf(log, sizeof log, "%s.tcpdump", job_log);
	unlink(log);
}

/* The whole capture file in memory. */
static unsigned char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
	*n = b && len > 0 ? fread(b, 1, (size_t)len, f) : 0;
	fclose(f);
	return b;
}

/* Whether the capture holds the values some worker pushed: worker r's big
 * values run (r+1)*(1,2,3,1,2,3...) floats. */
static int capture_holds_values(size_t *bytes)
{
	size_t n;
	unsigned char *b = read_file(pcap, &n);
	*bytes = n;
	int found = 0;
	for (int r = 0; r < 2 && b; r++) {
		float pat[6];
		for (int i = 0; i < 6; i++)
			pat[i] = (float)((r + 1) * (i % 3 + 1));
		found |= memmem(b, n, pat, sizeof pat) != NULL;
	}
	free(b);
	return found;
}

/* A job of one server and one worker on each of two hosts: the scheduler
 * at port PORT0, the bridges on PORT1-PORT9 (port: 3 digits). */
static pid_t two_host_job(const char *port, const char *mode, int curve)
{
	char hosts[256];
	snprintf(hosts, sizeof hosts, "%s0 1 1 " NET ".1\n%s1 1 1 " NET ".2\n", pfx, pfx);
	write_hosts(hosts);
	/* HPS_DEAD_MS above ENV's: no host dies in these cases, and under TSan
	 * with CURVE a bridge can be late by a second */
	return start(job_log, "ip netns exec %s0 " ENV("%s0") "HPS_DEAD_MS=5000 HPS_PORTS=%s1-%s9 %s launch %s%s --hosts %s -- %s --cluster-worker %s",
		     pfx, port, port, port, hps_bin(), curve ? "--curve " : "", curve ? keys : "", hostsf, self_path, mode);
}

static void test_curve_sums_and_capture(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	size_t plain_bytes, curve_bytes;
	/* plain: the values cross in clear */
	pid_t t = capture(1);
	CU_ASSERT_EQUAL(job_sums(two_host_job("961", "sums", 0), 60000), 2);
	capture_end(t);
	CU_ASSERT(capture_holds_values(&plain_bytes));
	/* CURVE: the same sums, and no value in the clear */
	t = capture(1);
	CU_ASSERT_EQUAL(job_sums(two_host_job("962", "sums", 1), 60000), 2);
	capture_end(t);
	int seen = capture_holds_values(&curve_bytes);
	CU_ASSERT(!seen);
	/* the capture did hold the job's traffic: at least the values' size */
	CU_ASSERT(curve_bytes > 4 * BIG_KEYS * BIG_WIDTH * sizeof(float));
	if (seen || curve_bytes <= 4 * BIG_KEYS * BIG_WIDTH * sizeof(float))
		fprintf(stderr, "capture: plain %zu bytes, curve %zu bytes, values seen %d\n%s\n", plain_bytes, curve_bytes,
			seen, slurp(job_log));
	unlink(pcap);
	ns_down();
}

/* The bytes host 1 sent to the scheduler's port in the capture: its
 * registration's connection, as a replaying stranger would send it. */
static size_t registration_bytes(unsigned port, unsigned char *out, size_t cap)
{
	size_t n, got = 0;
	unsigned char *b = read_file(pcap, &n);
	if (!b || n < 24)
		return free(b), 0;
	size_t at = 24; /* pcap file header; Ethernet frames */
	uint32_t next_seq = 0;
	int started = 0;
	while (at + 16 <= n) {
		uint32_t incl;
		memcpy(&incl, b + at + 8, 4);
		const unsigned char *p = b + at + 16;
		at += 16 + incl;
		if (at > n || incl < 14 + 20 + 20 || p[12] != 0x08 || p[13] != 0x00)
			continue;
		const unsigned char *ip = p + 14;
		size_t ihl = (size_t)(ip[0] & 15) * 4, iplen = (size_t)ip[2] << 8 | ip[3];
		if (ip[9] != 6 || 14 + iplen > incl || ihl < 20)
			continue;
		const unsigned char *tcp = ip + ihl;
		size_t doff = (size_t)(tcp[12] >> 4) * 4;
		unsigned dport = (unsigned)tcp[2] << 8 | tcp[3];
		uint32_t seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
		if (dport != port || memcmp(ip + 12, (unsigned char[]){10, 78, 0, 2}, 4) || ihl + doff > iplen)
			continue;
		size_t len = iplen - ihl - doff;
		if (tcp[13] & 0x02) { /* SYN: the connection starts */
			next_seq = seq + 1, started = 1;
			continue;
		}
		if (!started || !len || seq != next_seq || got + len > cap)
			continue; /* retransmissions and what does not fit */
		memcpy(out + got, tcp + doff, len);
		got += len, next_seq += (uint32_t)len;
	}
	free(b);
	return got;
}

static void replay(const unsigned char *bytes, size_t n, unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, NET ".1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		CU_ASSERT_EQUAL(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
		usleep(300000);
	} else {
		CU_FAIL("cannot connect to replay");
	}
	close(fd);
}

/* A registration that takes the whole job (a plain job's counts). */
static void send_registration(void *sock, const char *name)
{
	struct hpsi_sched_register r = {0};
	hpsi_sched_init(&r.h, HPSI_SCH_REGISTER, 0);
	snprintf(r.name, sizeof r.name, "%s", name);
	snprintf(r.endpoint, sizeof r.endpoint, "tcp://" NET ".254:9");
	r.nservers = r.total_servers = 2;
	r.nworkers = r.total_workers = 2;
	zmq_send(sock, &r, sizeof r, ZMQ_DONTWAIT);
}

/* A ZeroMQ peer in the root namespace; with a key pair when pub is set. */
static void *stranger(void *z, const char *ep, const char *server_pub, int with_key)
{
	void *s = zmq_socket(z, ZMQ_DEALER);
	int linger = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	if (with_key) {
		char pub[41], sec[41];
		zmq_curve_keypair(pub, sec);
		zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
	}
	zmq_connect(s, ep);
	return s;
}

static void test_curve_strangers_refused(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	pid_t t = capture(1);
	/* the job runs until the strangers are done (the hold file) */
	char hold[128], mode[160];
	snprintf(hold, sizeof hold, "/tmp/hps-curve-hold-%d", (int)getpid());
	snprintf(mode, sizeof mode, "long=%s", hold);
	unlink(hold);
	pid_t p = two_host_job("963", mode, 1);
	CU_ASSERT_FATAL(wait_log(job_log, "sums started", 20000));
	capture_end(t);
	static unsigned char reg[1 << 16];
	size_t nreg = registration_bytes(9630, reg, sizeof reg);
	CU_ASSERT(nreg > 64); /* a CURVE greeting and handshake at least */
	char pub[400] = "";
	snprintf(pub, sizeof pub, "%s/hps.pub", keys);
	FILE *f = fopen(pub, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_PTR_NOT_NULL(fgets(pub, sizeof pub, f));
	fclose(f);
	pub[40] = 0;
	void *z = zmq_ctx_new();
	const char *eps[] = {"tcp://" NET ".1:9630", "tcp://" NET ".1:9631", "tcp://" NET ".2:9631"};
	void *s[6];
	for (int i = 0; i < 3; i++) {
		s[2 * i] = stranger(z, eps[i], pub, 0);     /* no key */
		s[2 * i + 1] = stranger(z, eps[i], pub, 1); /* a key of its own */
		for (int k = 0; k < 2; k++)
			send_registration(s[2 * i + k], "intruder");
	}
	replay(reg, nreg, 9630);
	usleep(500000);
	for (int i = 0; i < 6; i++)
		zmq_close(s[i]);
	zmq_ctx_term(z);
	touch_file(hold);
	CU_ASSERT_EQUAL(job_sums(p, 60000), 2);
	unlink(hold);
	const char *o = slurp(job_log);
	/* a key of its own: ZAP names it; no key and the replay: no handshake */
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "not in authorized_keys"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "no CURVE handshake"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "scheduler: refused"));
	CU_ASSERT_PTR_NULL(strstr(o, "intruder"));
	if (!strstr(o, "not in authorized_keys") || !strstr(o, "no CURVE handshake"))
		fprintf(stderr, "%s\n", o);
	unlink(pcap);
	ns_down();
}

/* A plain job: before its hosts register, a stranger's registrations
 * (one taking every process, one with a host's name, one malformed, one
 * sent twice) are dropped with a reason and the job runs. */
static void test_curve_forged_registration_plain(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	const char *env = "HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9641 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
			  "HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=forged HPS_JOB_TOKEN=f00d";
	char slog[300];
	snprintf(slog, sizeof slog, "%s.sched", job_log);
	pid_t sched = start(slog, "ip netns exec %s0 env %s %s scheduler --order %s0,%s1", pfx, env, hps_bin(), pfx,
			    pfx);
	usleep(300000);
	void *z = zmq_ctx_new();
	void *s = stranger(z, "tcp://" NET ".1:9641", NULL, 0);
	char name[32];
	snprintf(name, sizeof name, "%s0", pfx);
	send_registration(s, "intruder");
	send_registration(s, name);
	struct hpsi_sched_register r = {0};
	hpsi_sched_init(&r.h, HPSI_SCH_REGISTER, 0);
	snprintf(r.name, sizeof r.name, "%s1", pfx);
	snprintf(r.endpoint, sizeof r.endpoint, "tcp://nowhere"); /* no port: every bridge would fail on it */
	r.nservers = r.total_servers = r.nworkers = r.total_workers = 2;
	zmq_send(s, &r, sizeof r, 0);
	usleep(300000);
	char la[300], lb[300];
	snprintf(la, sizeof la, "%s.a", job_log);
	snprintf(lb, sizeof lb, "%s.b", job_log);
	pid_t a = start(la, "ip netns exec %s0 env %s HPS_HOST=%s0 HPS_NODE_ADDR=" NET ".1 %s launch --local-servers 1 "
			    "--local-workers 1 -- %s --cluster-worker sums",
			pfx, env, pfx, hps_bin(), self_path);
	pid_t b = start(lb, "ip netns exec %s1 env %s HPS_HOST=%s1 HPS_NODE_ADDR=" NET ".2 %s launch --local-servers 1 "
			    "--local-workers 1 -- %s --cluster-worker sums",
			pfx, env, pfx, hps_bin(), self_path);
	/* and a host that registers again once the job runs: ignored */
	CU_ASSERT(wait_log(la, "sums ok", 30000));
	send_registration(s, name);
	int ra = finish(a, 60000), rb = finish(b, 60000);
	zmq_close(s);
	zmq_ctx_term(z);
	int rs = finish(sched, 10000);
	if (ra || rb || rs)
		fprintf(stderr, "%s\n---\n%s\n---\n%s\n", slurp(la), slurp(lb), slurp(slog));
	CU_ASSERT_EQUAL(ra, 0);
	CU_ASSERT_EQUAL(rb, 0);
	CU_ASSERT_EQUAL(rs, 0);
	CU_ASSERT(log_has(la, "sums ok") && log_has(lb, "sums ok"));
	CU_ASSERT(log_has(slog, "without the job's token"));
	CU_ASSERT(log_has(slog, "dropped malformed message (registration with a bad name, endpoint or count)"));
	unlink(la), unlink(lb), unlink(slog);
	ns_down();
}

/* A host whose keys are not the job's: the scheduler refuses it, and its
 * bridge says why and gives up within HPS_REGISTER_MS. */
static void test_curve_host_with_other_keys(void)
{
	CU_ASSERT_EQUAL_FATAL(ns_up(2), 0);
	char other[400];
	snprintf(other, sizeof other, "%s.other", keys);
	CU_ASSERT_EQUAL_FATAL(keygen_into(other), 0);
	const char *env = "HPS_ROOT_URI=" NET ".1 HPS_ROOT_PORT=9651 HPS_NUM_SERVERS=2 HPS_NUM_WORKERS=2 "
			  "HPS_HEAP_MB=16 HPS_RING_KB=256 HPS_JOB_ID=otherkeys HPS_REGISTER_MS=2500";
	char slog[300], lb[300];
	snprintf(slog, sizeof slog, "%s.sched", job_log);
	snprintf(lb, sizeof lb, "%s.b", job_log);
	pid_t sched = start(slog, "ip netns exec %s0 env %s HPS_CURVE=%s %s scheduler", pfx, env, keys, hps_bin());
	usleep(200000);
	pid_t b = start(lb, "ip netns exec %s1 env %s HPS_CURVE=%s HPS_HOST=%s1 HPS_NODE_ADDR=" NET ".2 %s launch "
			    "--local-servers 1 --local-workers 1 -- %s --cluster-worker sums",
			pfx, env, other, pfx, hps_bin(), self_path);
	int rb = finish(b, 20000), rs = finish(sched, 20000);
	CU_ASSERT(rb != 0 && rb != -1);
	CU_ASSERT(rs != 0 && rs != -1);
	CU_ASSERT(log_has(lb, "does not hold the job's key"));
	CU_ASSERT(log_has(lb, "HPS_REGISTER_MS"));
	CU_ASSERT(log_has(slog, "scheduler: refused a peer"));
	if (!log_has(lb, "does not hold the job's key") || !log_has(slog, "scheduler: refused a peer"))
		fprintf(stderr, "%s\n---\n%s\n", slurp(lb), slurp(slog));
	sh("rm -rf %s", other);
	unlink(slog), unlink(lb);
	ns_down();
}

/* A job's segment is 0600, and a process of another uid cannot attach. */
static void test_curve_segment_other_uid(void)
{
	const char *user = "hpsstranger";
	int made = 0;
	if (!getpwnam(user)) {
		char cmd[200];
		snprintf(cmd, sizeof cmd, "useradd --system --no-create-home --shell /usr/sbin/nologin %s", user);
		CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
		made = 1;
	}
	struct passwd *pw = getpwnam(user);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pw);
	/* a segment directory anyone may enter: only the segment's mode stops them */
	char dir[64];
	snprintf(dir, sizeof dir, "/dev/shm/hps-curve-uid-%d", (int)getpid());
	mkdir(dir, 0755);
	chmod(dir, 0755);
	char ready[300];
	snprintf(ready, sizeof ready, "%s.ready", job_log);
	pid_t job = start(job_log, "HPS_SHM_DIR=%s HPS_HEAP_MB=16 HPS_JOB_ID=uid HPS_HOST=h %s launch -s 1 -w 1 -- "
				   "sh -c 'touch %s; sleep 2'",
			  dir, hps_bin(), ready);
	for (int i = 0; i < 500 && access(ready, F_OK); i++)
		usleep(10000);
	char path[256], cmd[6000];
	setenv("HPS_SHM_DIR", dir, 1);
	CU_ASSERT_EQUAL(hpsi_seg_path(path, sizeof path, "uid", "h"), 0);
	struct stat st;
	CU_ASSERT(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_uid == getuid());
	char out_log[300];
	snprintf(out_log, sizeof out_log, "%s.other", job_log);
	snprintf(cmd, sizeof cmd, "setpriv --reuid=%u --regid=%u --clear-groups env HPS_SHM_DIR=%s HPS_JOB_ID=uid HPS_HOST=h "
				  "HPS_ROLE=worker HPS_RANK=0 HPS_NUM_SERVERS=1 HPS_NUM_WORKERS=1 %s --cluster-worker sums > %s 2>&1",
		 (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, dir, self_path, out_log);
	int rc = system(cmd);
	const char *o = slurp(out_log);
	if (rc == 0 || !strstr(o, "permission denied") || !strstr(o, "uid"))
		fprintf(stderr, "another uid: status %d\n%s\n", rc, o);
	CU_ASSERT_NOT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "permission denied"));
	CU_ASSERT_PTR_NOT_NULL(strstr(o, "belongs to uid"));
	unsetenv("HPS_SHM_DIR");
	finish(job, 20000);
	unlink(ready), unlink(out_log);
	rmdir(dir);
	if (made) {
		snprintf(cmd, sizeof cmd, "userdel %s", user);
		CU_ASSERT_EQUAL(system(cmd), 0);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--cluster-worker") == 0)
		return cluster_worker(argv[2]);
	static const struct test_case unit[] = {
		{"test_curve_zap_decisions", test_curve_zap_decisions},
		{"test_curve_key_errors", test_curve_key_errors},
		{NULL, NULL},
	};
	int rc = run_suite("curve", unit);
	int skip = netns_suite_start("test_curve");
	if (skip || rc)
		return rc ? rc : skip;
	if (system("command -v tcpdump >/dev/null") != 0) {
		printf("test_curve: skipped: tcpdump is missing (make deps)\n");
		return 77;
	}
	snprintf(pcap, sizeof pcap, "%.250s.pcap", job_log);
	snprintf(keys, sizeof keys, "%s.keys", job_log);
	if (keygen_into(keys))
		return 1;
	static const struct test_case cases[] = {
		{"test_curve_sums_and_capture", test_curve_sums_and_capture},
		{"test_curve_strangers_refused", test_curve_strangers_refused},
		{"test_curve_forged_registration_plain", test_curve_forged_registration_plain},
		{"test_curve_host_with_other_keys", test_curve_host_with_other_keys},
		{"test_curve_segment_other_uid", test_curve_segment_other_uid},
		{NULL, NULL},
	};
	rc = run_suite("curve-hosts", cases);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s", keys, pcap);
	if (system(cmd) != 0)
		rc = 1;
	netns_suite_end();
	return rc;
}
