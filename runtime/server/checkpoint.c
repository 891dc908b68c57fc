#include "runtime/server/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hps/hps.h"
#include "runtime/common/dtype.h"
#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "runtime/server/updater.h"
#include "net/route.h"
#include "shm/ckpt.h"
#include "shm/liveness.h"
#include "shm/node.h"
#include "shm/wake.h"

#define CKPT_MAGIC "HPSCKPT1"
#define CKPT_VERSION 1
#define MANIFEST "MANIFEST"
#define MANIFEST_HEAD "hps-checkpoint 1"

struct ckpt_hdr { /* little-endian, 64 bytes */
	char magic[8];
	uint32_t version, hdr_bytes;
	uint32_t rank, nservers;
	uint32_t updater, state;
	uint32_t clock, dtype;
	uint64_t nkeys, body_bytes, checksum;
};
_Static_assert(sizeof(struct ckpt_hdr) == 64, "checkpoint header is 64 bytes");

/* FNV-style hash over 4-byte words: every part of a record is a multiple
 * of 4 bytes, so the body can be hashed as it streams out. */
static uint64_t hash_words(uint64_t h, const void *p, size_t bytes)
{
	const unsigned char *b = p;
	for (size_t i = 0; i + 4 <= bytes; i += 4) {
		uint32_t w;
		memcpy(&w, b + i, 4);
		h = (h ^ w) * 0x100000001b3ull;
	}
	return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

/* Writes a failure's reason into why (HPSI_CKPT_WHY bytes); returns rc. */
__attribute__((format(printf, 3, 4))) static int say(char *why, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, HPSI_CKPT_WHY, fmt, ap);
	va_end(ap);
	return rc;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* ---- one server's file ---------------------------------------------------- */

struct writer {
	FILE *f;
	uint64_t hash, nkeys, bytes;
	uint32_t state;
	size_t esz;
};

static int put(struct writer *w, const void *p, size_t n)
{
	w->hash = hash_words(w->hash, p, n);
	w->bytes += n;
	return fwrite(p, 1, n, w->f) == n ? 0 : HPS_ESYS;
}

static int write_key(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg)
{
	struct writer *w = arg;
	uint32_t meta[2] = {len, steps};
	w->nkeys++;
	int rc = put(w, &key, 8);
	if (!rc)
		rc = put(w, meta, 8);
	if (!rc)
		rc = put(w, vals, (size_t)len * (1 + w->state) * w->esz);
	return rc;
}

int hpsi_store_save(struct hpsi_store *st, const char *dir, uint32_t rank, uint32_t nservers, uint32_t clock,
		    char *why)
{
	char path[600], tmp[620];
	snprintf(path, sizeof path, "%s/server-%u.hpsckpt", dir, rank);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	const struct hpsi_updater *u = hpsi_store_updater(st);
	struct writer w = {.f = fopen(tmp, "wb"), .hash = HASH_SEED, .state = u->state,
			   .esz = hpsi_dtype_size(hpsi_store_dtype(st))};
	if (!w.f)
		return say(why, HPS_ESYS, "cannot create %s: %s", tmp, strerror(errno));
	struct ckpt_hdr h = {.version = CKPT_VERSION, .hdr_bytes = sizeof h, .rank = rank, .nservers = nservers,
			     .updater = (uint32_t)u->kind, .state = u->state, .clock = clock,
			     .dtype = hpsi_store_dtype(st)};
	memcpy(h.magic, CKPT_MAGIC, 8);
	int rc = fwrite(&h, sizeof h, 1, w.f) == 1 ? 0 : HPS_ESYS;
	if (!rc)
		rc = hpsi_store_foreach(st, write_key, &w);
	h.nkeys = w.nkeys, h.body_bytes = w.bytes, h.checksum = w.hash;
	if (!rc && (fseek(w.f, 0, SEEK_SET) || fwrite(&h, sizeof h, 1, w.f) != 1 || fflush(w.f) ||
		    fsync(fileno(w.f))))
		rc = HPS_ESYS;
	if (fclose(w.f) && !rc)
		rc = HPS_ESYS;
	if (!rc && rename(tmp, path))
		rc = HPS_ESYS;
	if (rc) {
		say(why, rc, "writing %s failed: %s", path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	fsync_dir(dir);
	return 0;
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return HPS_ENOJOB;
	struct stat sb;
	if (fstat(fileno(f), &sb) || sb.st_size < 0) {
		fclose(f);
		return HPS_ESYS;
	}
	*len = (size_t)sb.st_size;
	*out = malloc(*len ? *len : 1);
	int ok = *out && fread(*out, 1, *len, f) == *len;
	fclose(f);
	if (!ok) {
		free(*out);
		return HPS_ESYS;
	}
	return 0;
}

#define REFUSE(code, ...)                                                            \
	do {                                                                         \
		rc = say(why, code, __VA_ARGS__);                                    \
		goto out;                                                            \
	} while (0)
#define BAD_FILE(...) REFUSE(HPS_EPROTO, __VA_ARGS__)

/* Validates one file whole, then adds the keys server `me` owns. */
static int load_file(struct hpsi_store *into, const char *path, const struct hpsi_seg *seg, uint32_t me,
		     uint32_t *clock, char *why)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int rc = read_file(path, &buf, &len);
	if (rc)
		return say(why, rc == HPS_ENOJOB ? HPS_EPROTO : rc, "cannot read %s: %s", path, strerror(errno));
	struct ckpt_hdr h;
	const struct hpsi_updater *u = hpsi_store_updater(into);
	if (len < sizeof h)
		BAD_FILE("%s is truncated (%zu bytes)", path, len);
	memcpy(&h, buf, sizeof h);
	if (memcmp(h.magic, CKPT_MAGIC, 8) || h.version != CKPT_VERSION || h.hdr_bytes != sizeof h)
		BAD_FILE("%s is not a version %d checkpoint file", path, CKPT_VERSION);
	if (h.body_bytes != len - sizeof h)
		BAD_FILE("%s has %zu body bytes, its header says %llu", path, len - sizeof h,
			 (unsigned long long)h.body_bytes);
	if (hash_words(HASH_SEED, buf + sizeof h, len - sizeof h) != h.checksum)
		BAD_FILE("%s fails its checksum", path);
	if (h.updater != (uint32_t)u->kind || h.state != u->state)
		REFUSE(HPS_ECONFIG, "%s was written by the %s updater but this job's servers run %s; start the job with HPS_UPDATER=%s",
		       path, hpsi_updater_name((int)h.updater), hpsi_updater_name(u->kind),
		       hpsi_updater_name((int)h.updater));
	if (h.dtype != hpsi_store_dtype(into))
		REFUSE(HPS_ECONFIG, "%s holds %s values but this job's servers keep %s; start the job with HPS_DTYPE=%s",
		       path, h.dtype == HPSI_WIRE_F64 ? "f64" : "f32",
		       hpsi_store_dtype(into) == HPSI_WIRE_F64 ? "f64" : "f32", h.dtype == HPSI_WIRE_F64 ? "f64" : "f32");
	size_t at = sizeof h;
	for (uint64_t k = 0; k < h.nkeys; k++) {
		uint64_t key;
		uint32_t meta[2];
		if (len - at < 16)
			BAD_FILE("%s: record %llu is cut short", path, (unsigned long long)k);
		memcpy(&key, buf + at, 8);
		memcpy(meta, buf + at + 8, 8);
		at += 16;
		uint64_t bytes = (uint64_t)meta[0] * (1 + h.state) * hpsi_dtype_size(h.dtype);
		if (bytes > len - at)
			BAD_FILE("%s: record %llu claims %u floats past the end", path, (unsigned long long)k, meta[0]);
		if (hpsi_route_key(seg, key) == me) {
			float *vals = malloc(bytes ? bytes : 1); /* aligned copy */
			if (!vals)
				REFUSE(HPS_ENOMEM, "out of memory loading %s", path);
			memcpy(vals, buf + at, bytes);
			rc = hpsi_store_put(into, key, meta[0], meta[1], vals);
			free(vals);
			if (rc)
				BAD_FILE("%s: key %llu cannot be loaded (%s)", path, (unsigned long long)key, hps_strerror(rc));
		}
		at += bytes;
	}
	if (at != len)
		BAD_FILE("%s has bytes after its last record", path);
	if (h.clock < *clock)
		*clock = h.clock;
out:
	free(buf);
	return rc;
}

/* Reads the MANIFEST: the number of server files. */
static int read_manifest(const char *dir, uint32_t *nservers, char *why)
{
	char path[600], line[128];
	struct stat sb;
	if (stat(dir, &sb) != 0)
		return say(why, HPS_EINVAL, "checkpoint directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return say(why, HPS_EINVAL, "checkpoint %s is not a directory", dir);
	snprintf(path, sizeof path, "%s/" MANIFEST, dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return say(why, HPS_EPROTO, "checkpoint %s refused: no %s (it was never completed)", dir, MANIFEST);
	int ok = fgets(line, sizeof line, f) && strncmp(line, MANIFEST_HEAD, strlen(MANIFEST_HEAD)) == 0 &&
		 fscanf(f, "servers %u", nservers) == 1 && *nservers >= 1 && *nservers <= HPSI_MAX_NODES;
	fclose(f);
	if (!ok)
		return say(why, HPS_EPROTO, "checkpoint %s refused: its %s is damaged", dir, MANIFEST);
	return 0;
}

int hpsi_store_load(struct hpsi_store *into, const char *dir, const struct hpsi_seg *seg, uint32_t me,
		    uint32_t *clock, char *why)
{
	uint32_t n;
	int rc = read_manifest(dir, &n, why);
	*clock = UINT32_MAX;
	for (uint32_t r = 0; !rc && r < n; r++) {
		char path[600];
		snprintf(path, sizeof path, "%s/server-%u.hpsckpt", dir, r);
		rc = load_file(into, path, seg, me, clock, why);
	}
	if (*clock == UINT32_MAX)
		*clock = 0;
	return rc;
}

/* ---- the requester ------------------------------------------------------- */

/* Servers that do their part: with replicas, the dead ones' ranges are
 * saved by the backups that serve them now; each saves (and loads) the
 * key ranges it serves, one file per range. */
static uint32_t live_servers(struct hpsi_seg *seg)
{
	uint32_t n = 0;
	for (uint32_t s = 0; s < seg->hdr->nservers; s++) /* (a VACANT rank of the room --max-servers made: none) */
		n += !hpsi_server_gone(seg, s) && hpsi_node_state(seg, s) != HPSI_NODE_VACANT;
	/* without replicas: every server the owner table names (a rank of the
	 * room --max-servers made serves nothing and does no part) */
	return seg->hdr->replicas ? n : hpsi_servers_current(seg);
}

/* With replicas: a sum that changes whenever a server is replaced or a
 * copy of a key range to a replacement starts or ends, and whether one
 * is under way (a replacement joining, or a copy started and not ended).
 * A load beside one could leave the copy older than its source. */
static uint64_t recovery_state(const struct hpsi_seg *seg, int *busy)
{
	uint64_t sum = 0;
	*busy = 0;
	for (uint32_t s = 0; s < seg->hdr->nservers; s++) {
		struct hpsi_node *n = hpsi_seg_node(seg, s);
		/* relaxed: only compared, before and after the load */
		uint32_t inc = atomic_load_explicit(&n->incarnation, memory_order_relaxed);
		uint32_t st = atomic_load_explicit(&n->copies_started, memory_order_relaxed);
		uint32_t en = atomic_load_explicit(&n->copies_ended, memory_order_relaxed);
		*busy |= st != en ||
			 atomic_load_explicit(&n->state, memory_order_acquire) == HPSI_NODE_JOINING;
		sum = sum * 1000003u + inc * 31u + st + en * 7u;
	}
	return sum;
}

/* With replicas, a range whose primary died during the save may have
 * been saved by nobody: refused, so that the caller tries again. */
static int check_every_range(const char *dir, uint32_t nservers, char *why)
{
	for (uint32_t r = 0; r < nservers; r++) {
		char path[600];
		snprintf(path, sizeof path, "%s/server-%u.hpsckpt", dir, r);
		if (access(path, F_OK) != 0)
			return say(why, HPS_EPEERDEAD,
				   "key range %u was not saved: a server died, or handed the range to its replacement, during the checkpoint; try again", r);
	}
	return 0;
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[700];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int write_manifest(const char *dir, uint32_t nservers, uint32_t clock)
{
	char path[600], tmp[620];
	snprintf(path, sizeof path, "%s/" MANIFEST, dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return HPS_ESYS;
	fprintf(f, MANIFEST_HEAD "\nservers %u\nclock %u\n", nservers, clock);
	for (uint32_t r = 0; r < nservers; r++)
		fprintf(f, "server-%u.hpsckpt\n", r);
	int rc = fflush(f) || fsync(fileno(f)) ? HPS_ESYS : 0;
	if (fclose(f) || rc || rename(tmp, path))
		return HPS_ESYS;
	return fsync_dir(dir) ? HPS_ESYS : 0;
}

/* Moves the finished DIR.partial over DIR: the old one is moved aside
 * first (rename cannot replace a non-empty directory), then removed. */
static int publish_dir(const char *partial, const char *dir)
{
	char old[600];
	snprintf(old, sizeof old, "%s.old", dir);
	remove_dir(old);
	if (rename(dir, old) && errno != ENOENT)
		return HPS_ESYS;
	if (rename(partial, dir))
		return HPS_ESYS;
	remove_dir(old);
	char parent[600];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	fsync_dir(slash ? (slash == parent ? "/" : (*slash = 0, parent)) : ".");
	return 0;
}

static int take_lock(struct hpsi_seg_hdr *h, char *why)
{
	int32_t holder = 0;
	if (hpsi_ckpt_lock(&h->ckpt_lock, &holder) == 0)
		return 0;
	/* acquire: pairs with the command's CAS of the request */
	if (holder == h->creator_pid && (atomic_load_explicit(&h->scale_req, memory_order_acquire) & HPSI_SCALE_SERVERS))
		return say(why, HPS_EEXIST, "hps scale is moving key ranges between the servers of this job; checkpoint once it ended");
	return say(why, HPS_EEXIST, "a checkpoint of this job is already running (pid %d)", (int)holder);
}

static void release_lock(struct hpsi_seg_hdr *h)
{
	hpsi_ckpt_unlock(&h->ckpt_lock);
}

/* The end of a save that the servers answered with rc: the MANIFEST,
 * written last, then DIR.partial (work) renamed over dir; on any failure
 * DIR.partial goes and the previous checkpoint stays. */
static int finish_save(const char *work, const char *dir, uint32_t nservers, uint32_t clock, int rc, char *why)
{
	if (!rc && (rc = write_manifest(work, nservers, clock)) == 0)
		rc = publish_dir(work, dir);
	if (rc && !why[0])
		say(why, rc, "checkpoint %s not written: %s", dir, strerror(errno));
	if (rc)
		remove_dir(work);
	return rc;
}

/* ---- a job across hosts -------------------------------------------------- */

/* DIR as the servers of every host open it: absolute, since `hps
 * checkpoint` may run in another directory than the job's processes. */
static int absolute_dir(const char *dir, char *out, size_t cap, char *why)
{
	char cwd[4096];
	int n;
	if (dir[0] == '/')
		n = snprintf(out, cap, "%s", dir);
	else if (getcwd(cwd, sizeof cwd))
		n = snprintf(out, cap, "%s/%s", cwd, dir);
	else
		return say(why, HPS_ESYS, "checkpoint directory %s: cannot name the working directory: %s", dir,
			   strerror(errno));
	if (n < 0 || (size_t)n >= cap)
		return say(why, HPS_EINVAL, "checkpoint directory %s: its absolute name is longer than %zu bytes", dir,
			   cap - 1);
	return 0;
}

/* Wakes this host's bridge: it stands for every node of the other hosts. */
static void wake_bridge(struct hpsi_seg *seg)
{
	for (uint32_t id = 0; id < seg->hdr->nservers + seg->hdr->nworkers; id++)
		if (!hpsi_node_local(seg, id)) {
			hpsi_node_wake(seg, id);
			return;
		}
}

/* A checkpoint of a job that spans hosts. Our bridge asks the scheduler,
 * which has every host's bridge ask its servers (net/bridge_ckpt.c,
 * runtime/cluster/scheduler.c): a save writes each server's file into
 * DIR.partial, on a file system every host sees; a load runs in two
 * phases, every server reading every file whole into a table aside
 * (PREPARE), and only once every host succeeded swapping it in (COMMIT),
 * else dropping it (ABORT). The MANIFEST and the rename are ours, as on
 * one host. Every wait is bounded: each host's part by HPS_TIMEOUT_MS, a
 * dead host by HPS_DEAD_MS at the scheduler, ours by both phases'. */
static int cluster_run(struct hpsi_seg *seg, int op, const char *dir, int64_t timeout_ns, char *why)
{
	struct hpsi_seg_hdr *h = seg->hdr;
	char full[sizeof h->xck_dir - 16], work[sizeof h->xck_dir];
	int rc = absolute_dir(dir, full, sizeof full, why);
	if (rc)
		return rc;
	snprintf(work, sizeof work, op == HPSI_CKPT_SAVE ? "%s.partial" : "%s", full);
	uint32_t n;
	if (op == HPSI_CKPT_LOAD && (rc = read_manifest(full, &n, why)) != 0)
		return rc;
	int32_t holder = 0;
	if (hpsi_ckpt_lock(&h->xck_lock, &holder))
		return say(why, HPS_EEXIST, "a checkpoint of this job is already running (pid %d)", (int)holder);
	if (op == HPSI_CKPT_SAVE) {
		remove_dir(work);
		if (mkdir(work, 0755)) {
			rc = say(why, HPS_ESYS, "cannot create %s: %s", work, strerror(errno));
			hpsi_ckpt_unlock(&h->xck_lock);
			return rc;
		}
	}
	snprintf(h->xck_dir, sizeof h->xck_dir, "%s", work);
	h->xck_op = (uint32_t)op;
	/* relaxed load: only the holder of xck_lock writes xck_req */
	uint32_t req = atomic_load_explicit(&h->xck_req, memory_order_relaxed) + 1;
	atomic_store_explicit(&h->xck_req, req, memory_order_release); /* the bridge acquires it */
	wake_bridge(seg);
	/* two phases of HPS_TIMEOUT_MS each at most, and the scheduler's
	 * verdict on a silent host; the bridge answers well before */
	int64_t start = hpsi_now_ns(), deadline = start + 3 * timeout_ns + 5000000000ll, next_probe = start;
	/* acquire: pairs with the bridge's release of xck_ans, after xck_status, xck_clock, xck_why */
	while (atomic_load_explicit(&h->xck_ans, memory_order_acquire) != req) {
		int64_t now = hpsi_now_ns();
		if (now > deadline) {
			rc = say(why, HPS_ETIMEDOUT, "the hosts did not finish the checkpoint within 3 x HPS_TIMEOUT_MS=%lld",
				 (long long)h->timeout_ms);
			break;
		}
		if (now > next_probe) {
			if (!hpsi_proc_alive(h->creator_pid, h->creator_birth)) {
				rc = say(why, HPS_EPEERDEAD, "this host's bridge died during the checkpoint");
				break;
			}
			next_probe = now + 100000000;
		}
		usleep(1000);
	}
	uint32_t clock = 0;
	if (!rc) {
		rc = h->xck_status;
		clock = h->xck_clock;
		if (rc)
			snprintf(why, HPSI_CKPT_WHY, "%s", h->xck_why[0] ? h->xck_why : hps_strerror(rc));
	}
	if (op == HPSI_CKPT_SAVE) {
		/* with replicas the hosts' steps skip dead servers (net/bridge_ckpt.c) */
		if (!rc && h->replicas)
			rc = check_every_range(work, h->nservers, why);
		rc = finish_save(work, full, h->nservers, clock, rc, why);
	}
	if (!rc)
		hpsi_info("checkpoint %s: %s %u server tables on every host (clock %u)", dir,
			  op == HPSI_CKPT_SAVE ? "saved" : "loaded", h->nservers, clock);
	hpsi_ckpt_unlock(&h->xck_lock);
	return rc ? rc : op == HPSI_CKPT_LOAD ? (int)clock : 0;
}

int hpsi_checkpoint_run(struct hpsi_seg *seg, int op, const char *dir, int64_t timeout_ns, char *why)
{
	struct hpsi_seg_hdr *h = seg->hdr;
	char work[sizeof h->ckpt_dir];
	why[0] = 0;
	if (!dir || !*dir || strlen(dir) + 16 > sizeof work)
		return say(why, HPS_EINVAL, "checkpoint directory name missing or longer than %zu bytes",
			   sizeof work - 16);
	if (h->bridged) /* the servers of other hosts do not see this segment */
		return cluster_run(seg, op, dir, timeout_ns, why);
	snprintf(work, sizeof work, op == HPSI_CKPT_SAVE ? "%s.partial" : "%s", dir);
	uint32_t n;
	int rc = op == HPSI_CKPT_LOAD ? read_manifest(dir, &n, why) : 0;
	int busy = 0;
	uint64_t recovery = h->replicas ? recovery_state(seg, &busy) : 0;
	if (!rc && op == HPSI_CKPT_LOAD && busy)
		rc = say(why, HPS_EPEERDEAD, "a replacement server is copying key ranges; load again once it serves");
	if (!rc)
		rc = take_lock(h, why);
	if (rc)
		return rc;
	if (op == HPSI_CKPT_SAVE) {
		remove_dir(work);
		if (mkdir(work, 0755)) {
			say(why, HPS_ESYS, "cannot create %s: %s", work, strerror(errno));
			release_lock(h);
			return HPS_ESYS;
		}
	}
	hpsi_ckpt_post(seg, op, work);
	int64_t deadline = hpsi_now_ns() + timeout_ns;
	/* pairs with each server's release of ckpt_done (serve_checkpoint):
	 * its files, ckpt_status and ckpt_clock are then visible */
	while (atomic_load_explicit(&h->ckpt_done, memory_order_acquire) < live_servers(seg)) {
		for (uint32_t s = 0; s < h->nservers && !rc; s++)
			if (hpsi_node_check(seg, s) == HPSI_NODE_DEAD && !h->replicas)
				rc = say(why, HPS_EPEERDEAD, "server %u died during the checkpoint", s);
		if (!rc && hpsi_now_ns() > deadline)
			rc = say(why, HPS_ETIMEDOUT, "the servers did not finish within HPS_TIMEOUT_MS=%lld",
				 (long long)h->timeout_ms);
		if (rc)
			break;
		usleep(1000);
	}
	if (!rc && (rc = atomic_load_explicit(&h->ckpt_status, memory_order_acquire)) != 0)
		snprintf(why, HPSI_CKPT_WHY, "%s", h->ckpt_why[0] ? h->ckpt_why : hps_strerror(rc));
	if (!rc && op == HPSI_CKPT_LOAD && h->replicas && (recovery_state(seg, &busy) != recovery || busy))
		rc = say(why, HPS_EPEERDEAD,
			 "a server was replaced or a key range copied during the load: the replicas may differ; load again");
	uint32_t clock = atomic_load_explicit(&h->ckpt_clock, memory_order_acquire);
	if (clock == UINT32_MAX)
		clock = 0;
	if (op == HPSI_CKPT_SAVE) {
		if (!rc && h->replicas)
			rc = check_every_range(work, h->nservers, why);
		rc = finish_save(work, dir, h->nservers, clock, rc, why);
	}
	if (!rc)
		hpsi_info("checkpoint %s: %s %u server table%s (clock %u)", dir, op == HPSI_CKPT_SAVE ? "saved" : "loaded",
			  h->nservers, h->nservers == 1 ? "" : "s", clock);
	release_lock(h);
	return rc ? rc : op == HPSI_CKPT_LOAD ? (int)clock : 0;
}

void hpsi_checkpoint_served(struct hpsi_seg *seg, int rc, const char *why, uint32_t clock)
{
	struct hpsi_seg_hdr *h = seg->hdr;
	int32_t ok = 0;
	if (rc) {
		hpsi_error("checkpoint: %s", why[0] ? why : hps_strerror(rc));
		/* the first error wins and leaves its reason. ckpt_status,
		 * ckpt_why and ckpt_clock are relaxed: the ckpt_done release below
		 * publishes them to the requester, which acquires ckpt_done before
		 * it reads them (hpsi_checkpoint_run); the servers only race each
		 * other on the values, which the compare-exchanges settle. */
		if (atomic_compare_exchange_strong_explicit(&h->ckpt_status, &ok, rc, memory_order_relaxed,
							    memory_order_relaxed))
			snprintf(h->ckpt_why, sizeof h->ckpt_why, "%s", why);
	}
	uint32_t cur = atomic_load_explicit(&h->ckpt_clock, memory_order_relaxed);
	while (clock < cur && !atomic_compare_exchange_weak_explicit(&h->ckpt_clock, &cur, clock, memory_order_relaxed,
								     memory_order_relaxed))
		;
	atomic_fetch_add_explicit(&h->ckpt_done, 1, memory_order_release); /* the requester acquires */
}

/* The calling process's own log gets the reason; the caller the code. */
static int run_logged(hps_ctx *ctx, int op, const char *dir)
{
	int rc = hpsi_ctx_check(ctx);
	if (rc)
		return rc;
	char why[HPSI_CKPT_WHY];
	rc = hpsi_checkpoint_run(&ctx->seg, op, dir, ctx->timeout_ns, why);
	if (rc < 0)
		hpsi_error("%s failed: %s", op == HPSI_CKPT_SAVE ? "hps_save" : "hps_load", why);
	return rc;
}

int hps_save(hps_ctx *ctx, const char *dir)
{
	return run_logged(ctx, HPSI_CKPT_SAVE, dir);
}

int hps_load(hps_ctx *ctx, const char *dir)
{
	return run_logged(ctx, HPSI_CKPT_LOAD, dir);
}
