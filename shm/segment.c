#include "shm/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/common/key_split.h"
#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/place.h"
#include "shm/backups.h"
#include "shm/slots.h"

#define PAGE 4096u

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static const char *shm_dir(void)
{
	const char *d = getenv("HPS_SHM_DIR");
	return d && *d ? d : "/dev/shm";
}

static int name_ok(const char *s)
{
	if (!s || !*s || strlen(s) >= HPSI_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (*s == '/' || *s <= ' ')
			return 0;
	return 1;
}

int hpsi_seg_path(char *out, size_t cap, const char *job, const char *host)
{
	if (!name_ok(job) || !name_ok(host)) {
		hpsi_error("job id and host name must be 1..%d characters without '/' or spaces (HPS_JOB_ID, HPS_HOST)",
			   HPSI_NAME_MAX - 1);
		return HPS_ECONFIG;
	}
	int n = snprintf(out, cap, "%s/hps.%s.%s", shm_dir(), job, host);
	return n > 0 && (size_t)n < cap ? 0 : HPS_ECONFIG;
}

uint32_t hpsi_ring_bytes_for(uint32_t nservers, uint32_t nworkers, uint32_t replicas)
{
	/* at most 255 x 255 x 2 + 255 x 255 rings: no overflow in 64 bits */
	uint64_t rings = (uint64_t)nservers * nworkers * 2 + (replicas ? (uint64_t)nservers * nservers : 0);
	uint32_t b = HPSI_RING_MAX;
	while (b > HPSI_RING_MIN && rings * b > HPSI_RING_BUDGET)
		b /= 2;
	return b;
}

/* Byte layout of a segment; every multiplication is checked. */
struct layout {
	size_t nodes_off, ranges_off, counters_off, bridge_counters_off, stale_off, stale_row, place_off, slots_off, owner_off, moves_off, hosts_off, rings_off, ring_stride, heap_off, direct_off, total;
};

/* The dense array of server i's direct range, or 0 bytes. */
static uint64_t direct_bytes_of(const struct hpsi_seg_params *p, uint32_t i)
{
	if (!p->direct_widths || p->range_mode != HPSI_RANGE_DECLARED)
		return 0;
	struct hpsi_range r = {.first = p->ranges[i].first, .last = p->ranges[i].last,
			       .direct_width = p->direct_widths[i]};
	return hpsi_direct_bytes(&r);
}

void hpsi_seg_launched_hosts(const uint32_t *host_servers, uint32_t nhosts, uint32_t launched, uint32_t *host_of)
{
	uint32_t rank = 0;
	for (uint32_t h = 0; h < nhosts; h++)
		for (uint32_t i = 0; i < host_servers[h] && rank < launched; i++)
			host_of[rank++] = h;
}

/* The backup table of a launch with room (shm/backups.h): from the
 * launch's owners, over the launched ranks, apart across hosts (host_of
 * of every rank, or NULL). hpsi_seg_create writes it; a launched server
 * builds it again (hpsi_seg_launch_backups): both must agree. */
static int launch_backups(uint32_t nservers, uint32_t launched, uint32_t range_mode, uint32_t K,
			  const uint32_t *host_of, uint16_t *bk)
{
	uint16_t first[HPSI_MAX_NODES];
	hpsi_seg_first_owners(nservers, launched, range_mode, first);
	return hpsi_backup_build_hosts(first, bk, nservers, K, launched, host_of);
}

int hpsi_seg_launch_backups(const struct hpsi_seg *s, uint16_t *bk)
{
	const struct hpsi_seg_hdr *h = s->hdr;
	if (!h->replicas || !hpsi_seg_room(s))
		return HPS_ECONFIG;
	return launch_backups(h->nservers, h->launched_servers, h->range_mode, h->replicas, hpsi_seg_server_hosts(s),
			      bk);
}

/* Rings between servers: forwards to backups (replicas), copies of key
 * ranges that move (room for servers: fewer launched than ranges). */
static int has_fwd(const struct hpsi_seg_params *p)
{
	return p->replicas || (p->launched_servers && p->launched_servers < p->nservers);
}

static int plan_layout(const struct hpsi_seg_params *p, struct layout *l)
{
	size_t nnodes = (size_t)p->nservers + p->nworkers;
	size_t nrings, rings_bytes, heap_bytes;
	l->nodes_off = PAGE;
	l->ranges_off = align_up(l->nodes_off + nnodes * sizeof(struct hpsi_node), 128);
	l->counters_off = align_up(l->ranges_off + p->nservers * sizeof(struct hpsi_range), 64);
	l->bridge_counters_off = l->counters_off + nnodes * sizeof(struct hpsi_counters);
	l->stale_off = l->bridge_counters_off + sizeof(struct hpsi_bridge_counters);
	l->stale_row = align_up((size_t)p->nworkers * sizeof(struct hpsi_stale_cell), 64);
	l->place_off = l->stale_off + (size_t)p->nservers * l->stale_row; /* rows are 64-byte multiples */
	l->slots_off = align_up(l->place_off + (size_t)p->nservers * 2 * sizeof(uint32_t), 64);
	l->owner_off = l->slots_off + HPSI_SLOTS * sizeof(uint16_t);
	/* the owner table and its plan, then the backup table and its plan;
	 * then the move numbers and the plan's */
	l->moves_off = align_up(l->owner_off + (size_t)p->nservers * 2 * (1 + p->replicas) * sizeof(_Atomic uint16_t), 8);
	/* then the host of each server rank */
	l->hosts_off = align_up(l->moves_off + (size_t)p->nservers * 2 * sizeof(_Atomic uint32_t), 8);
	l->rings_off = align_up(l->hosts_off + (size_t)p->nservers * sizeof(uint32_t), PAGE);
	l->ring_stride = align_up((size_t)HPSI_RING_HDR + p->ring_bytes, PAGE);
	size_t fwd = has_fwd(p) ? (size_t)p->nservers * p->nservers : 0;
	if (__builtin_mul_overflow((size_t)p->nservers * p->nworkers, (size_t)2, &nrings) ||
	    __builtin_add_overflow(nrings, fwd, &nrings) ||
	    __builtin_mul_overflow(nrings, l->ring_stride, &rings_bytes) ||
	    __builtin_mul_overflow((size_t)p->nworkers, (size_t)p->heap_slice, &heap_bytes))
		return HPS_ECONFIG;
	l->heap_off = align_up(l->rings_off + rings_bytes, 2u << 20);
	if (__builtin_add_overflow(l->heap_off, heap_bytes, &l->direct_off))
		return HPS_ECONFIG;
	l->total = l->direct_off;
	for (uint32_t i = 0; i < p->nservers; i++) {
		uint64_t b = direct_bytes_of(p, i);
		if (b > SIZE_MAX / 2 || __builtin_add_overflow(l->total, align_up(b, PAGE), &l->total))
			return HPS_ECONFIG;
	}
	return 0;
}

static int check_params(const struct hpsi_seg_params *p)
{
	if (p->nservers < 1 || p->nworkers < 1 || (size_t)p->nservers + p->nworkers > HPSI_MAX_NODES) {
		hpsi_error("need 1..%d processes with at least one server (HPS_NUM_SERVERS) and one worker (HPS_NUM_WORKERS); got %u servers, %u workers",
			   HPSI_MAX_NODES, p->nservers, p->nworkers);
		return HPS_ECONFIG;
	}
	if (p->ring_bytes < 4096 || p->ring_bytes > (1u << 30) || (p->ring_bytes & (p->ring_bytes - 1))) {
		hpsi_error("ring size %u bytes must be a power of two from 4 KiB to 1 GiB (HPS_RING_KB)", p->ring_bytes);
		return HPS_ECONFIG;
	}
	if (p->heap_slice < (8u << 20) || p->heap_slice % (2u << 20)) {
		hpsi_error("heap per worker must be a multiple of 2 MiB, at least 8 MiB (HPS_HEAP_MB)");
		return HPS_ECONFIG;
	}
	if (p->bridged && (p->srv_lo > p->srv_hi || p->srv_hi > p->nservers || p->wrk_lo > p->wrk_hi ||
			   p->wrk_hi > p->nworkers)) {
		hpsi_error("this host's servers [%u, %u) and workers [%u, %u) do not fit the job's %u and %u",
			   p->srv_lo, p->srv_hi, p->wrk_lo, p->wrk_hi, p->nservers, p->nworkers);
		return HPS_ECONFIG;
	}
	if (p->replicas > HPSI_MAX_REPLICAS || (p->replicas && p->replicas >= p->nservers)) {
		hpsi_error("HPS_REPLICAS=%u: each key range needs its primary and the backups on distinct servers, so at most %u with %u servers (and at most %d)",
			   p->replicas, p->nservers - 1, p->nservers, HPSI_MAX_REPLICAS);
		return HPS_ECONFIG;
	}
	if (p->nhosts) {
		uint32_t pi[HPSI_MAX_NODES], host;
		if (!p->host_servers || hpsi_place_build(p->nservers, p->host_servers, p->nhosts, pi)) {
			hpsi_error("the servers of the job's %u hosts do not add up to its %u servers (HPS_NUM_SERVERS)",
				   p->nhosts, p->nservers);
			return HPS_ECONFIG;
		}
		/* with room the backup table places replicas, over the
		 * launched ranks (the room is the last host's, VACANT), so
		 * those are what must be apart (hpsi_backup_build_hosts) */
		uint32_t launched[HPSI_MAX_NODES], S = p->nservers;
		const uint32_t *per_host = p->host_servers;
		if (p->replicas && p->launched_servers < p->nservers && p->nhosts <= HPSI_MAX_NODES &&
		    p->host_servers[p->nhosts - 1] >= p->nservers - p->launched_servers) {
			memcpy(launched, p->host_servers, p->nhosts * sizeof *launched);
			launched[p->nhosts - 1] -= p->nservers - p->launched_servers;
			S = p->launched_servers, per_host = launched;
		}
		if (hpsi_place_check(S, per_host, p->nhosts, p->replicas, &host)) {
			char why[512], name[32];
			snprintf(name, sizeof name, "#%u", host);
			hpsi_place_why(why, sizeof why, p->host_names ? p->host_names[host] : name, per_host[host], S,
				       p->replicas);
			hpsi_error("%s", why);
			return HPS_ECONFIG;
		}
	}
	if (p->range_mode == HPSI_RANGE_DECLARED) {
		for (uint32_t i = 0; i < p->nservers; i++)
			if (p->ranges[i].first > p->ranges[i].last ||
			    (i > 0 && p->ranges[i].first <= p->ranges[i - 1].last)) {
				hpsi_error("key ranges must be ascending and disjoint (HPS_KEY_RANGES), range %u is not", i);
				return HPS_ECONFIG;
			}
	}
	for (uint32_t i = 0; p->direct_widths && i < p->nservers; i++) {
		if (!p->direct_widths[i])
			continue;
		if (p->replicas) {
			hpsi_error("HPS_DIRECT with HPS_REPLICAS: a direct range is written in place by workers, so it cannot be replicated; drop one of them");
			return HPS_ECONFIG;
		}
		if (p->range_mode != HPSI_RANGE_DECLARED) {
			hpsi_error("HPS_DIRECT needs declared key ranges (HPS_KEY_RANGES): a direct range is dense");
			return HPS_ECONFIG;
		}
		if ((p->dtypes && p->dtypes[i] != 0) || (p->wires && p->wires[i] != 0) || !direct_bytes_of(p, i)) {
			hpsi_error("HPS_DIRECT: server %u's range must be f32 without compression and at most 2^62 bytes", i);
			return HPS_ECONFIG;
		}
	}
	return 0;
}

static int map_fd(int fd, size_t size, struct hpsi_seg *seg)
{
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		hpsi_error("mmap of %zu bytes for %s failed: %s", size, seg->path, strerror(errno));
		return HPS_ESYS;
	}
	seg->base = m;
	seg->hdr = m;
	seg->size = size;
	return 0;
}

/* HPS_LOG=info: what the segment holds and which server owns which keys. */
static void log_layout(const struct hpsi_seg *seg)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	hpsi_info("segment %s created: %llu MiB (%u server%s, %u worker%s; heap %llu MiB per worker, rings %u KiB)",
		  seg->path, (unsigned long long)(h->total_bytes >> 20), h->nservers, h->nservers == 1 ? "" : "s",
		  h->nworkers, h->nworkers == 1 ? "" : "s",
		  (unsigned long long)(h->heap_slice >> 20), h->ring_bytes >> 10);
	const struct hpsi_range *r = hpsi_seg_ranges(seg);
	for (uint32_t i = 0; i < h->nservers; i++) {
		const char *where = !h->bridged ? "" : hpsi_node_local(seg, i) ? ", on this host" : ", on another host";
		if (h->range_mode == HPSI_RANGE_DECLARED && h->launched_servers < h->nservers) {
			hpsi_info("key range %u (served by server %u) holds keys %llu-%llu", i,
				  (unsigned)atomic_load_explicit(&hpsi_seg_owner(seg)[i], memory_order_relaxed),
				  (unsigned long long)r[i].first, (unsigned long long)r[i].last);
		} else if (h->range_mode == HPSI_RANGE_DECLARED) {
			hpsi_info("server %u owns keys %llu-%llu%s%s", i, (unsigned long long)r[i].first,
				  (unsigned long long)r[i].last, r[i].direct_width ? " (direct)" : "", where);
		} else { /* net/route.h: the slot table's server of the key's slot */
			const uint16_t *t = hpsi_seg_slots(seg);
			uint32_t n = 0, runs = 0;
			for (uint32_t j = 0; j < HPSI_SLOTS; j++)
				if (t[j] == i)
					n++, runs += j == 0 || t[j - 1] != i;
			if (h->launched_servers < h->nservers) /* --max-servers: ranges, each served by its owner */
				hpsi_info("key range %u (served by server %u) holds the keys of %u of the %u hash slots (slot = top %u bits of mix(key)), in %u run%s",
					  i, (unsigned)atomic_load_explicit(&hpsi_seg_owner(seg)[i], memory_order_relaxed), n,
					  HPSI_SLOTS, HPSI_SLOT_BITS, runs, runs == 1 ? "" : "s");
			else
				hpsi_info("server %u owns the keys of %u of the %u hash slots (slot = top %u bits of mix(key)), in %u run%s%s",
					  i, n, HPSI_SLOTS, HPSI_SLOT_BITS, runs, runs == 1 ? "" : "s", where);
		}
	}
}

int hpsi_seg_create(const struct hpsi_seg_params *params, struct hpsi_seg *seg)
{
	memset(seg, 0, sizeof *seg);
	struct layout l;
	struct hpsi_seg_params shaped = *params;
	const struct hpsi_seg_params *p = &shaped;
	/* --max-workers: the segment holds a slot (node, rings, heap slice)
	 * for every worker the job may grow to; those past the launched ones
	 * start VACANT (below). Across hosts too: the bridge passes the job's
	 * slots, the room being the last host's (net/bridge_join.c) */
	uint32_t launched = shaped.nworkers;
	if (shaped.max_workers > shaped.nworkers)
		shaped.nworkers = shaped.max_workers;
	/* --max-servers: a key range, rings and a node for every server rank
	 * the job may grow to; ranks past the launched ones start VACANT and
	 * their ranges are served by the launched ones (the owner table) */
	uint32_t launched_srv = shaped.nservers;
	if (shaped.max_servers > shaped.nservers)
		shaped.nservers = shaped.max_servers;
	shaped.launched_servers = launched_srv;
	/* declared ranges with room: each cut into its share of the key
	 * ranges, declared range i's pieces first served by rank i (below,
	 * hpsi_seg_first_owners), so the launch places keys as declared */
	struct hpsi_key_span pieces[HPSI_MAX_NODES];
	if (shaped.range_mode == HPSI_RANGE_DECLARED && shaped.nservers > launched_srv) {
		int rc = hpsi_key_split(params->ranges, launched_srv, shaped.nservers, pieces);
		if (rc)
			return rc;
		shaped.ranges = pieces;
	}
	if (!shaped.ring_bytes && shaped.nservers && shaped.nworkers)
		shaped.ring_bytes = hpsi_ring_bytes_for(shaped.nservers, shaped.nworkers, has_fwd(&shaped));
	int rc = check_params(p);
	if (rc)
		return rc;
	/* with replicas and room, backups by a table (shm/backups.h), built
	 * before anything exists: too few servers for it is refused here */
	uint16_t bk[HPSI_MAX_NODES * HPSI_MAX_REPLICAS];
	if (p->replicas && launched_srv < p->nservers) {
		uint32_t host_of[HPSI_MAX_NODES];
		if (p->nhosts)
			hpsi_seg_launched_hosts(p->host_servers, p->nhosts, p->nservers, host_of);
		if ((rc = launch_backups(p->nservers, launched_srv, p->range_mode, p->replicas,
					 p->nhosts ? host_of : NULL, bk))) {
			hpsi_error("%u server%s cannot hold %u backup%s of every key range on other servers: launch at least %u",
				   launched_srv, launched_srv == 1 ? "" : "s", p->replicas, p->replicas == 1 ? "" : "s",
				   p->replicas + 1);
			return rc;
		}
	}
	if (plan_layout(p, &l)) {
		hpsi_error("segment size overflows (HPS_HEAP_MB x HPS_NUM_WORKERS)");
		return HPS_ECONFIG;
	}
	if ((rc = hpsi_seg_path(seg->path, sizeof seg->path, p->job, p->host)))
		return rc;

	struct statvfs vfs;
	if (statvfs(shm_dir(), &vfs) == 0) {
		unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
		if (avail < l.total) {
			hpsi_error("%s has %llu MiB free but the job's segment needs %zu MiB (HPS_HEAP_MB=%llu per worker x %u workers); lower HPS_HEAP_MB or enlarge %s",
				   shm_dir(), avail >> 20, l.total >> 20, (unsigned long long)(p->heap_slice >> 20),
				   p->nworkers, shm_dir());
			return HPS_ENOSPC;
		}
	}

	/* Built under a temporary name and linked into place when complete, so
	 * nobody ever sees (or has to clean) a half-written header. */
	char tmp[sizeof seg->path + 32];
	snprintf(tmp, sizeof tmp, "%s" HPSI_SEG_TMP "%d", seg->path, (int)getpid());
	if (access(seg->path, F_OK) == 0) {
		hpsi_error("job '%s' already runs on host '%s' (%s exists); pick another HPS_JOB_ID, or run `hps clean` if it died",
			   p->job, p->host, seg->path);
		return HPS_EEXIST;
	}
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		hpsi_error("cannot create %s: %s (HPS_SHM_DIR=%s)", tmp, strerror(errno), shm_dir());
		return HPS_ESYS;
	}
	/* Reserve the control part now so a full /dev/shm fails here, not as a
	 * SIGBUS later; heap pages are taken as workers touch them. */
	if (ftruncate(fd, (off_t)l.total) != 0 || (rc = posix_fallocate(fd, 0, (off_t)l.heap_off)) != 0 ||
	    (l.total > l.direct_off &&
	     (rc = posix_fallocate(fd, (off_t)l.direct_off, (off_t)(l.total - l.direct_off))) != 0)) {
		int e = rc ? rc : errno;
		hpsi_error("cannot size %s to %zu MiB: %s (enlarge %s or lower HPS_HEAP_MB)", seg->path, l.total >> 20,
			   strerror(e), shm_dir());
		close(fd);
		unlink(tmp);
		return e == ENOSPC ? HPS_ENOSPC : HPS_ESYS;
	}
	rc = map_fd(fd, l.total, seg);
	close(fd);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	struct hpsi_seg_hdr *h = seg->hdr;
	h->hdr_bytes = sizeof *h;
	h->total_bytes = l.total;
	h->nservers = p->nservers;
	h->nworkers = p->nworkers;
	h->launched_workers = launched;
	h->launched_servers = launched_srv;
	h->owner_off = l.owner_off;
	h->moves_off = l.moves_off;
	h->hosts_off = l.hosts_off;
	h->nhosts = p->nhosts;
	if (p->nhosts) /* the room (ranks from launched_srv on) is the last host's */
		hpsi_seg_launched_hosts(p->host_servers, p->nhosts, p->nservers,
					(uint32_t *)(seg->base + l.hosts_off));
	h->ring_bytes = p->ring_bytes;
	h->range_mode = p->range_mode;
	h->replicas = p->replicas;
	h->nodes_off = l.nodes_off;
	h->rings_off = l.rings_off;
	h->ring_stride = l.ring_stride;
	h->ranges_off = l.ranges_off;
	h->place_off = l.place_off;
	h->slots_off = l.slots_off;
	h->counters_off = l.counters_off;
	h->bridge_counters_off = l.bridge_counters_off;
	h->stale_off = l.stale_off;
	h->stale_row = l.stale_row;
	h->heap_off = l.heap_off;
	h->heap_slice = p->heap_slice;
	h->timeout_ms = p->timeout_ms;
	h->creator_pid = (int32_t)getpid();
	h->creator_birth = hpsi_proc_birth(getpid());
	snprintf(h->job, sizeof h->job, "%s", p->job);
	snprintf(h->host, sizeof h->host, "%s", p->host);
	h->direct_bytes = l.total - l.direct_off;
	h->bridged = p->bridged;
	h->srv_lo = p->bridged ? p->srv_lo : 0, h->srv_hi = p->bridged ? p->srv_hi : launched_srv;
	h->wrk_lo = p->bridged ? p->wrk_lo : 0, h->wrk_hi = p->bridged ? p->wrk_hi : launched;
	/* relaxed: published with the header by the release of the magic */
	for (uint32_t w = launched; w < p->nworkers; w++)
		atomic_store_explicit(&hpsi_seg_node(seg, p->nservers + w)->state, HPSI_NODE_VACANT, memory_order_relaxed);
	for (uint32_t r = launched_srv; r < p->nservers; r++)
		atomic_store_explicit(&hpsi_seg_node(seg, r)->state, HPSI_NODE_VACANT, memory_order_relaxed);
	/* the owner table: server r serves range r, and the ranges of the
	 * ranks not launched go to the launched ones, ascending, until each
	 * serves floor or ceil of ranges / servers (hpsi_share_rebalance from
	 * nservers holders to launched_srv, shm/slots.h): the identity
	 * without --max-servers, so such a job routes as before */
	uint16_t own[HPSI_MAX_NODES];
	hpsi_seg_first_owners(p->nservers, launched_srv, p->range_mode, own);
	for (uint32_t r = 0; r < p->nservers; r++) {
		atomic_store_explicit(&hpsi_seg_owner(seg)[r], own[r], memory_order_relaxed);
		atomic_store_explicit(&hpsi_seg_want(seg)[r], own[r], memory_order_relaxed);
	}
	atomic_store_explicit(&h->servers_want, launched_srv, memory_order_relaxed);
	for (uint32_t j = 0; p->replicas && launched_srv < p->nservers && j < p->nservers * p->replicas; j++) {
		atomic_store_explicit(&hpsi_seg_backups(seg)[j], bk[j], memory_order_relaxed);
		atomic_store_explicit(&hpsi_seg_backups(seg)[p->nservers * p->replicas + j], bk[j], memory_order_relaxed);
	}
	if (p->bridged) /* the creator stands for every remote node; a free
			 * rank of another host stays VACANT until it is taken */
		for (uint32_t id = 0; id < p->nservers + p->nworkers; id++)
			if (!hpsi_node_local(seg, id) && (id < p->nservers ? id < launched_srv : id - p->nservers < launched)) {
				struct hpsi_node *n = hpsi_seg_node(seg, id);
				atomic_store_explicit(&n->pid, (int32_t)getpid(), memory_order_relaxed);
				atomic_store_explicit(&n->birth, hpsi_proc_birth(getpid()), memory_order_relaxed);
				atomic_store_explicit(&n->state, HPSI_NODE_ALIVE, memory_order_relaxed);
			}
	/* π and pos (shm/place.h); the parameters were checked above */
	uint32_t *pi = (uint32_t *)(seg->base + l.place_off), *pos = pi + p->nservers;
	hpsi_place_build(p->nservers, p->host_servers, p->nhosts, pi);
	for (uint32_t at = 0; at < p->nservers; at++)
		pos[pi[at]] = at;
	/* the slot table (shm/slots.h): a function of S alone, so every host
	 * of the job and every run of it has the same one */
	hpsi_slots_build((uint16_t *)(seg->base + l.slots_off), p->nservers);
	struct hpsi_range *r = (struct hpsi_range *)(seg->base + l.ranges_off);
	size_t direct_at = l.direct_off;
	for (uint32_t i = 0; i < p->nservers; i++) {
		if (p->range_mode == HPSI_RANGE_DECLARED)
			r[i].first = p->ranges[i].first, r[i].last = p->ranges[i].last;
		r[i].dtype = p->dtypes ? p->dtypes[i] : 0;
		r[i].wire = p->wires ? p->wires[i] : r[i].dtype;
		if (direct_bytes_of(p, i)) {
			r[i].direct_width = p->direct_widths[i];
			r[i].direct_off = direct_at;
			direct_at += align_up(direct_bytes_of(p, i), PAGE);
		}
	}
	/* Rings and nodes are zero from ftruncate. The magic goes last: its
	 * release store pairs with the acquire load in header_ok, so an
	 * attacher that sees it sees a whole header. */
	h->version = HPSI_SEG_VERSION;
	atomic_store_explicit(&h->magic, HPSI_SEG_MAGIC, memory_order_release);
	/* link fails if the name exists: two launchers of one job cannot both win */
	rc = link(tmp, seg->path) == 0 ? 0 : errno == EEXIST ? HPS_EEXIST : HPS_ESYS;
	unlink(tmp);
	if (rc) {
		if (rc == HPS_EEXIST)
			hpsi_error("job '%s' already runs on host '%s' (%s exists)", p->job, p->host, seg->path);
		else
			hpsi_error("cannot create %s: %s", seg->path, strerror(errno));
		hpsi_seg_detach(seg);
	} else if (hpsi_log_on(HPSI_LOG_INFO)) {
		log_layout(seg);
	}
	return rc;
}

/* Every offset in the header must lie inside the mapped size. */
static int header_ok(const struct hpsi_seg_hdr *h, size_t size)
{
	/* acquire pairs with hpsi_seg_create's release of the magic: read
	 * first, it orders every read of the header after it */
	if (size < PAGE || atomic_load_explicit(&h->magic, memory_order_acquire) != HPSI_SEG_MAGIC ||
	    h->version != HPSI_SEG_VERSION)
		return 0;
	struct hpsi_seg_params p = {.nservers = h->nservers, .nworkers = h->nworkers,
				    .ring_bytes = h->ring_bytes, .heap_slice = h->heap_slice, .replicas = h->replicas,
				    .launched_servers = h->launched_servers};
	struct layout l;
	if (h->nservers < 1 || h->nworkers < 1 || h->nservers + (uint64_t)h->nworkers > HPSI_MAX_NODES ||
	    h->ring_bytes < 4096 || (h->ring_bytes & (h->ring_bytes - 1)) || h->replicas > HPSI_MAX_REPLICAS ||
	    h->replicas >= h->nservers || h->launched_workers < 1 || h->launched_workers > h->nworkers ||
	    h->launched_servers < 1 || h->launched_servers > h->nservers ||
	    plan_layout(&p, &l))
		return 0;
	if (h->bridged && (h->srv_lo > h->srv_hi || h->srv_hi > h->nservers || h->wrk_lo > h->wrk_hi ||
			   h->wrk_hi > h->nworkers))
		return 0;
	if (!(h->total_bytes == size && h->direct_bytes <= size && l.total == size - h->direct_bytes &&
	      h->nodes_off == l.nodes_off && h->rings_off == l.rings_off && h->ranges_off == l.ranges_off &&
	      h->place_off == l.place_off && h->slots_off == l.slots_off && h->owner_off == l.owner_off &&
	      h->moves_off == l.moves_off && h->hosts_off == l.hosts_off &&
	      h->counters_off == l.counters_off && h->bridge_counters_off == l.bridge_counters_off &&
	      h->stale_off == l.stale_off && h->stale_row == l.stale_row &&
	      h->heap_off == l.heap_off && h->ring_stride == l.ring_stride))
		return 0;
	/* π is a permutation and pos its inverse: routing indexes both */
	const uint32_t *pi = (const uint32_t *)((const unsigned char *)h + h->place_off), *pos = pi + h->nservers;
	for (uint32_t at = 0; at < h->nservers; at++)
		if (pi[at] >= h->nservers || pos[pi[at]] != at)
			return 0;
	/* routing indexes per-server arrays by the slot table's entries */
	if (hpsi_slots_check((const uint16_t *)((const unsigned char *)h + h->slots_off), h->nservers))
		return 0;
	/* routing wakes the owner table's entries */
	_Atomic uint16_t *own = (_Atomic uint16_t *)((unsigned char *)h + h->owner_off);
	for (uint32_t r = 0; r < 2 * h->nservers; r++)
		if (atomic_load_explicit(&own[r], memory_order_relaxed) >= h->nservers)
			return 0;
	/* and, with room, the backup table's (hpsi_replica) */
	for (uint32_t j = 0; h->launched_servers < h->nservers && j < 2 * h->nservers * h->replicas; j++)
		if (atomic_load_explicit(&own[2 * h->nservers + j], memory_order_relaxed) >= h->nservers)
			return 0;
	/* every direct array lies inside the direct part */
	const struct hpsi_range *r = (const struct hpsi_range *)((const unsigned char *)h + h->ranges_off);
	for (uint32_t i = 0; i < h->nservers; i++) {
		uint64_t b = hpsi_direct_bytes(&r[i]);
		if (r[i].direct_width && (!b || r[i].direct_off < l.total || r[i].direct_off > size || b > size - r[i].direct_off))
			return 0;
	}
	return 1;
}

int hpsi_seg_attach_path(const char *path, struct hpsi_seg *seg)
{
	memset(seg, 0, sizeof *seg);
	snprintf(seg->path, sizeof seg->path, "%s", path);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && (errno == EACCES || errno == EPERM)) {
		/* segments are 0600: only the job's own user may attach */
		struct stat own;
		int known = stat(path, &own) == 0;
		hpsi_error("cannot attach %s: permission denied: the job's segment is mode %04o and belongs to uid %ld, "
			   "this process runs as uid %ld (run it as the job's user)",
			   path, known ? (unsigned)(own.st_mode & 07777) : 0600u, known ? (long)own.st_uid : -1L,
			   (long)geteuid());
		return HPS_ESYS;
	}
	if (fd < 0)
		return errno == ENOENT ? HPS_ENOJOB : HPS_ESYS;
	struct stat st;
	int rc = fstat(fd, &st) == 0 ? map_fd(fd, (size_t)st.st_size, seg) : HPS_ESYS;
	close(fd);
	if (rc)
		return rc;
	if (!header_ok(seg->hdr, seg->size)) {
		hpsi_error("%s is not an hps segment of this version, or is damaged", path);
		hpsi_seg_detach(seg);
		return HPS_EPROTO;
	}
	return 0;
}

int hpsi_seg_attach(const char *job, const char *host, struct hpsi_seg *seg)
{
	char path[256];
	int rc = hpsi_seg_path(path, sizeof path, job, host);
	if (rc)
		return rc;
	rc = hpsi_seg_attach_path(path, seg);
	if (rc == HPS_ENOJOB)
		hpsi_error("no job '%s' on host '%s' (%s missing); start it with `hps launch`", job, host, path);
	return rc;
}

void hpsi_seg_detach(struct hpsi_seg *seg)
{
	if (seg->base)
		munmap(seg->base, seg->size);
	seg->base = NULL;
	seg->hdr = NULL;
}

void hpsi_seg_first_owners(uint32_t nranges, uint32_t launched, uint32_t range_mode, uint16_t *own)
{
	if (range_mode == HPSI_RANGE_DECLARED) { /* declared range i's pieces (key_split.h) to rank i */
		for (uint32_t i = 0, r = 0; i < launched; i++)
			for (uint32_t j = 0; j < hpsi_key_split_count(i, launched, nranges); j++)
				own[r++] = (uint16_t)i;
		return;
	}
	for (uint32_t r = 0; r < nranges; r++)
		own[r] = (uint16_t)r;
	hpsi_share_rebalance(own, nranges, nranges, launched, NULL);
}

int hpsi_seg_unlink(struct hpsi_seg *seg)
{
	return unlink(seg->path) == 0 || errno == ENOENT ? 0 : HPS_ESYS;
}

void hpsi_config_seg_params(const struct hpsi_config *c, struct hpsi_seg_params *p)
{
	*p = (struct hpsi_seg_params){.job = c->job, .host = c->host, .nservers = c->nservers,
				      .nworkers = c->nworkers, .max_workers = c->max_workers,
				      .max_servers = c->max_servers, .ring_bytes = c->ring_bytes,
				      .heap_slice = c->heap_slice, .timeout_ms = c->timeout_ms,
				      .range_mode = c->range_mode, .ranges = c->ranges, .replicas = c->replicas,
				      .dtypes = c->dtypes, .wires = c->wires, .direct_widths = c->direct_widths};
}
