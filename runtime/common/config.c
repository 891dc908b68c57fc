#include "runtime/common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hps/error.h"
#include "hps/hps.h"
#include "runtime/common/dtype.h"
#include "runtime/common/key_split.h"
#include "runtime/common/log.h"

/* ps-lite / dmlc-core tracker names accepted for our settings. */
static const struct {
	const char *name, *alias;
} aliases[] = {
	{"ROLE", "DMLC_ROLE"},
	{"NUM_SERVERS", "DMLC_NUM_SERVER"},
	{"NUM_WORKERS", "DMLC_NUM_WORKER"},
	{"HOST", "DMLC_NODE_HOST"},
	{"RANK", "DMLC_RANK"},
	{"JOB_ID", "DMLC_JOB_ID"},
	{"ROOT_URI", "DMLC_PS_ROOT_URI"},
	{"ROOT_PORT", "DMLC_PS_ROOT_PORT"},
	{"INTERFACE", "DMLC_INTERFACE"},
};

const char *hpsi_setting(const char *name)
{
	char key[96];
	snprintf(key, sizeof key, "HPS_%s", name);
	const char *v = getenv(key);
	if (v && *v)
		return v;
	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		if (strcmp(aliases[i].name, name) == 0 && (v = getenv(aliases[i].alias)) && *v)
			return v;
	return NULL;
}

void hpsi_config_apply_flags(int *argc, char **argv)
{
	if (!argc || !argv)
		return;
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i], *eq;
		if (strncmp(a, "--hps-", 6) == 0 && (eq = strchr(a, '=')) && eq > a + 6) {
			char key[96];
			size_t n = (size_t)(eq - a - 6);
			if (n + 5 < sizeof key) {
				memcpy(key, "HPS_", 4);
				for (size_t j = 0; j < n; j++)
					key[4 + j] = a[6 + j] == '-' ? '_' : (char)toupper((unsigned char)a[6 + j]);
				key[4 + n] = 0;
				if (hpsi_setting_known(key + 4, n))
					setenv(key, eq + 1, 1);
				else
					hpsi_setting_warn_unknown("--hps-", a + 6, n);
				continue;
			}
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	*argc = out;
}

int hpsi_setting_u64(const char *name, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *v = hpsi_setting(name);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || *end || end == v || v[0] == '-' || x < min || x > max) {
		hpsi_error("HPS_%s=%s: expected an integer from %llu to %llu", name, v, (unsigned long long)min,
			   (unsigned long long)max);
		return HPS_ECONFIG;
	}
	*out = x;
	return 0;
}

/* "first-last,first-last,..." with one range per server. */
static int parse_ranges(const char *s, struct hpsi_config *c)
{
	uint32_t n = 0;
	while (*s) {
		char *end;
		if (n >= HPSI_MAX_NODES)
			goto bad;
		errno = 0;
		c->ranges[n].first = strtoull(s, &end, 0);
		if (errno || *end != '-')
			goto bad;
		c->ranges[n].last = strtoull(end + 1, &end, 0);
		if (errno || (*end && *end != ',') || (*end == ',' && !end[1])) /* "0-9," names no range */
			goto bad;
		n++;
		s = *end ? end + 1 : end;
	}
	if (n != c->nservers) {
		hpsi_error("HPS_KEY_RANGES has %u ranges but the job has %u servers (HPS_NUM_SERVERS)", n, c->nservers);
		return HPS_ECONFIG;
	}
	c->range_mode = HPSI_RANGE_DECLARED;
	return 0;
bad:
	hpsi_error("HPS_KEY_RANGES: expected first-last[,first-last...], one range per server");
	return HPS_ECONFIG;
}

const char *hpsi_spec_for(const char *list, int rank, char *buf, size_t cap)
{
	if (!list)
		return "";
	const char *s = list;
	if (strchr(list, ';'))
		for (int i = 0; i < rank; i++)
			if (!(s = strchr(s, ';')) || !*++s)
				return NULL;
	size_t n = strcspn(s, ";");
	if (n >= cap)
		return NULL;
	memcpy(buf, s, n);
	buf[n] = 0;
	return buf;
}

int hpsi_config_value_types(uint32_t nservers, uint32_t *dtypes, uint32_t *wires)
{
	const char *dt = hpsi_setting("DTYPE"), *cp = hpsi_setting("COMPRESS");
	for (uint32_t r = 0; r < nservers; r++) {
		char abuf[16], bbuf[16];
		const char *a = dt ? hpsi_spec_for(dt, (int)r, abuf, sizeof abuf) : "f32";
		const char *b = cp ? hpsi_spec_for(cp, (int)r, bbuf, sizeof bbuf) : "none";
		if (!a || !b) {
			hpsi_error("HPS_DTYPE / HPS_COMPRESS list fewer entries than there are servers (%u)", nservers);
			return HPS_ECONFIG;
		}
		if (strcmp(a, "f32") && strcmp(a, "f64")) {
			hpsi_error("HPS_DTYPE: '%s' is not f32 or f64", a);
			return HPS_ECONFIG;
		}
		dtypes[r] = strcmp(a, "f64") == 0 ? HPSI_WIRE_F64 : HPSI_WIRE_F32;
		if (strcmp(b, "none") == 0)
			wires[r] = dtypes[r];
		else if ((strcmp(b, "f16") == 0 || strcmp(b, "bf16") == 0) && dtypes[r] == HPSI_WIRE_F32)
			wires[r] = strcmp(b, "f16") == 0 ? HPSI_WIRE_F16 : HPSI_WIRE_BF16;
		else {
			hpsi_error("HPS_COMPRESS: '%s' is not none, f16 or bf16 (compression applies to f32 key ranges)", b);
			return HPS_ECONFIG;
		}
	}
	return 0;
}

int hpsi_config_direct(uint32_t nservers, uint32_t *widths)
{
	const char *list = hpsi_setting("DIRECT");
	for (uint32_t r = 0; r < nservers; r++) {
		char buf[16], *end;
		const char *w = list ? hpsi_spec_for(list, (int)r, buf, sizeof buf) : "0";
		unsigned long v = w ? strtoul(w, &end, 10) : 0;
		if (!w || !*w || *end || w[0] == '-' || v > 65536) {
			hpsi_error("HPS_DIRECT: expected floats per key from 0 to 65536 for each of the %u servers (\"W\" or \"W;W;...\"), got '%s'",
				   nservers, list);
			return HPS_ECONFIG;
		}
		widths[r] = (uint32_t)v;
	}
	return 0;
}

int hpsi_config_check_lists(uint32_t nservers)
{
	static const char *const lists[] = {"DTYPE", "COMPRESS", "DIRECT", "UPDATER", "INIT", "STALENESS"};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		const char *v = hpsi_setting(lists[i]);
		if (!v || !strchr(v, ';'))
			continue; /* one entry for every server */
		uint32_t n = 1;
		for (const char *p = v; (p = strchr(p, ';')); p++)
			n++;
		if (n != nservers) {
			hpsi_error("HPS_%s=%s lists %u entries but the job has %u server%s (HPS_NUM_SERVERS): give one entry for all servers or one per server",
				   lists[i], v, n, nservers, nservers == 1 ? "" : "s");
			return HPS_ECONFIG;
		}
	}
	return 0;
}

int hpsi_config_deterministic(int *on)
{
	const char *det = hpsi_setting("DETERMINISTIC");
	if (det && strcmp(det, "0") && strcmp(det, "1")) {
		hpsi_error("HPS_DETERMINISTIC=%s: expected 0 or 1", det);
		return HPS_ECONFIG;
	}
	*on = det && strcmp(det, "1") == 0;
	return 0;
}

/* Settings read outside this file whose mistakes must still be caught
 * before a job starts: the log level and the shared-memory directory. */
static int check_environment(void)
{
	hpsi_log_reload(); /* a test or tool may have changed them since the last line */
	const char *v = getenv("HPS_LOG");
	if (v && *v && hpsi_log_parse(v) < 0) {
		hpsi_error("HPS_LOG=%s: expected debug, info, warn or error", v);
		return HPS_ECONFIG;
	}
	uint64_t rate;
	if (hpsi_setting_u64("LOG_RATE", 1, 1000000, &rate))
		return HPS_ECONFIG;
	struct stat st;
	int bad = 0;
	if ((v = getenv("HPS_SHM_DIR")) && *v)
		bad = stat(v, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
	if (bad) {
		hpsi_error("HPS_SHM_DIR=%s: %s; point it to a directory on a shared-memory file system (default /dev/shm)",
			   v, bad == ENOENT ? "no such directory" : strerror(bad));
		return HPS_ECONFIG;
	}
	int det;
	return hpsi_config_deterministic(&det);
}

/* HPS_MAX_SERVERS above HPS_NUM_SERVERS: key ranges move between server
 * processes (docs/ARCHITECTURE.md, "Elastic servers"); what that does
 * not handle yet is refused here, before anything starts. */
static int max_servers_ok(const struct hpsi_config *c)
{
	static const char *const lists[] = {"DTYPE", "COMPRESS", "DIRECT", "UPDATER", "INIT", "STALENESS"};
	/* One backup only: a backup drains the forward rings of every other
	 * rank, so with two a range's forwards from a dead primary and from
	 * the backup that took it over could be applied out of order (π's
	 * order, furthest first, keeps them in order without room). */
	/* A backup acknowledges on the answer ring of the range numbered as
	 * its rank (replica.c), which a launched rank serves only when hashed
	 * keys give it that range; declared ranges give rank i the pieces of
	 * its own declared range instead (hpsi_seg_first_owners). */
	const char *kr = hpsi_setting("KEY_RANGES");
	if (c->replicas && kr && *kr) {
		hpsi_error("HPS_MAX_SERVERS with HPS_REPLICAS and HPS_KEY_RANGES: declared ranges of a replicated job with room for servers are not built; drop one of them");
		return HPS_ECONFIG;
	}
	if (c->replicas > 1) {
		hpsi_error("HPS_MAX_SERVERS with HPS_REPLICAS=%u: a job with room for servers keeps one backup of each key range, not more; use HPS_REPLICAS=1",
			   c->replicas);
		return HPS_ECONFIG;
	}
	const char *d = hpsi_setting("DIRECT");
	if (d && strcmp(d, "0")) {
		hpsi_error("HPS_MAX_SERVERS with HPS_DIRECT: a direct range is a dense array workers write in place, so it cannot move between servers; drop one of them");
		return HPS_ECONFIG;
	}
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		const char *v = hpsi_setting(lists[i]);
		if (v && strchr(v, ';')) {
			hpsi_error("HPS_MAX_SERVERS with HPS_%s=%s: a list per server is not built for servers that come and go; give one entry for all",
				   lists[i], v);
			return HPS_ECONFIG;
		}
	}
	return 0;
}

int hpsi_config_load(struct hpsi_config *c, int need_role)
{
	memset(c, 0, sizeof *c);
	uint64_t v;
	int rc = 0;
	const char *s;

	/* the launcher (and the other tools) warn; the nodes it starts would
	 * repeat the same lines once per process */
	if (!need_role)
		hpsi_config_check_names();
	if ((rc = check_environment()))
		return rc;

	c->role = -1;
	if ((s = hpsi_setting("ROLE"))) {
		if (strcmp(s, "worker") == 0)
			c->role = HPS_ROLE_WORKER;
		else if (strcmp(s, "server") == 0)
			c->role = HPS_ROLE_SERVER;
		else {
			hpsi_error("HPS_ROLE=%s: expected worker or server", s);
			return HPS_ECONFIG;
		}
	} else if (need_role) {
		hpsi_error("HPS_ROLE is not set: start the program with `hps launch` or set HPS_ROLE=worker|server");
		return HPS_ECONFIG;
	}
	v = 0;
	if ((rc = hpsi_setting_u64("RANK", 0, HPSI_MAX_NODES - 1, &v)))
		return rc;
	c->rank = (int)v;
	v = 1;
	if ((rc = hpsi_setting_u64("NUM_SERVERS", 1, HPSI_MAX_NODES - 1, &v)))
		return rc;
	c->nservers = (uint32_t)v;
	v = 1;
	if ((rc = hpsi_setting_u64("NUM_WORKERS", 1, HPSI_MAX_NODES - 1, &v)))
		return rc;
	c->nworkers = (uint32_t)v;
	v = c->nworkers;
	if ((rc = hpsi_setting_u64("MAX_WORKERS", 1, HPSI_MAX_NODES - 1, &v)))
		return rc;
	if (v < c->nworkers) {
		hpsi_error("HPS_MAX_WORKERS=%llu is below HPS_NUM_WORKERS=%u: it is the most workers the job may grow to",
			   (unsigned long long)v, c->nworkers);
		return HPS_ECONFIG;
	}
	c->max_workers = (uint32_t)v;
	v = c->nservers;
	if ((rc = hpsi_setting_u64("MAX_SERVERS", 1, HPSI_MAX_NODES - 1, &v)))
		return rc;
	if (v < c->nservers) {
		hpsi_error("HPS_MAX_SERVERS=%llu is below HPS_NUM_SERVERS=%u: it is the most servers the job may grow to",
			   (unsigned long long)v, c->nservers);
		return HPS_ECONFIG;
	}
	c->max_servers = (uint32_t)v;
	v = 0;
	if ((rc = hpsi_setting_u64("JOIN", 0, 1, &v)))
		return rc;
	c->join = (int)v;
	v = 0; /* unset: by the job's shape, when the segment is made */
	if ((rc = hpsi_setting_u64("RING_KB", 4, 1u << 20, &v)))
		return rc;
	c->ring_bytes = (uint32_t)(v << 10);
	v = 256;
	if ((rc = hpsi_setting_u64("HEAP_MB", 8, 1u << 24, &v)))
		return rc;
	c->heap_slice = v << 20;
	v = 30000;
	if ((rc = hpsi_setting_u64("TIMEOUT_MS", 1, 1ull << 40, &v)))
		return rc;
	c->timeout_ms = (int64_t)v;
	v = 50;
	if ((rc = hpsi_setting_u64("SPIN_US", 0, 1000000, &v)))
		return rc;
	c->spin_ns = (int64_t)v * 1000;
	v = 0;
	if ((rc = hpsi_setting_u64("REPLICAS", 0, HPSI_MAX_REPLICAS, &v)))
		return rc;
	c->replicas = (uint32_t)v;
	if (hpsi_setting("NUM_SERVERS") && c->replicas >= c->nservers) {
		hpsi_error("HPS_REPLICAS=%u needs more servers: a key range and its %u backups live on distinct servers, and HPS_NUM_SERVERS=%u",
			   c->replicas, c->replicas, c->nservers);
		return HPS_ECONFIG;
	}
	if (c->max_servers > c->nservers && (rc = max_servers_ok(c)))
		return rc;

	s = hpsi_setting("JOB_ID");
	snprintf(c->job, sizeof c->job, "%s", s ? s : "default");
	if ((s = hpsi_setting("HOST")))
		snprintf(c->host, sizeof c->host, "%s", s);
	else if (gethostname(c->host, sizeof c->host) != 0 || !c->host[0])
		snprintf(c->host, sizeof c->host, "localhost");
	c->host[sizeof c->host - 1] = 0;

	if ((s = hpsi_setting("KEY_RANGES")) && (rc = parse_ranges(s, c)))
		return rc;
	/* room for more servers: the segment cuts each declared range into
	 * its share of the key ranges (key_split.h); said here, before
	 * anything starts, when one is too narrow for that */
	struct hpsi_key_span pieces[HPSI_MAX_NODES];
	if (c->range_mode == HPSI_RANGE_DECLARED && c->max_servers > c->nservers &&
	    (rc = hpsi_key_split(c->ranges, c->nservers, c->max_servers, pieces)))
		return rc;
	/* without HPS_NUM_SERVERS the count comes from the segment: hps_init
	 * checks the lists against it */
	if (hpsi_setting("NUM_SERVERS") && (rc = hpsi_config_check_lists(c->nservers)))
		return rc;
	/* one entry per key range: --max-servers lays out max_servers of them */
	uint32_t nranges = c->max_servers > c->nservers ? c->max_servers : c->nservers;
	if ((rc = hpsi_config_value_types(nranges, c->dtypes, c->wires)))
		return rc;
	return hpsi_config_direct(nranges, c->direct_widths);
}
