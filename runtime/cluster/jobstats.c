/* Reads a job's counters out of its segment (runtime/cluster/jobstats.h).
 * Every load is relaxed (the contract in shm/counters.h): a snapshot is a
 * set of recent values, not one instant. */
#include "runtime/cluster/jobstats.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/bell.h"
#include "shm/liveness.h"

const char *hpsi_role_name(int role)
{
	return role == HPSI_R_SERVER ? "server" : role == HPSI_R_WORKER ? "worker" : "bridge";
}

const char *hpsi_error_name(int code)
{
	static const char *const names[] = {
		NULL,         "EINVAL",    "EKEYORDER", "ENOKEY",   "ETOOBIG", "ENOMEM",   "EEXIST",
		"ENOSPC",     "ENOJOB",    "EPEERDEAD", "ETIMEDOUT", "ECLOSED", "ECONFIG", "EPROTO",
		"ESYS",       "EHANDLER",  "EVALLEN",   "EUNTRACKED",
	};
	return code < 0 && -code < (int)(sizeof names / sizeof names[0]) ? names[-code] : NULL;
}

/* Resident bytes of pid from /proc/PID/statm; 0 when it is gone. */
static uint64_t rss_of(int32_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	FILE *f = fopen(path, "r");
	unsigned long long size = 0, res = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Sampled time: the samples' sum scaled to every event they stand for. */
static double estimate(uint64_t sampled_ns, uint64_t samples, uint64_t events)
{
	return samples ? (double)sampled_ns / 1e9 * ((double)events / (double)samples) : 0.0;
}

static void snap_node(const struct hpsi_counters *c, struct hpsi_node_snap *s)
{
#define HPSI_STAT_LOAD(f, ...) s->f = hpsi_stat_get(&c->f);
	HPSI_NODE_STATS(HPSI_STAT_LOAD)
#undef HPSI_STAT_LOAD
	for (int i = 0; i < HPSI_STAT_ERRORS; i++)
		s->errors[i] = hpsi_stat_get(&c->errors[i]);
	s->wait_s = estimate(hpsi_stat_get(&c->wait_ns_sampled), hpsi_stat_get(&c->wait_samples), s->waits_blocked);
	s->updater_s = estimate(hpsi_stat_get(&c->updater_ns_sampled), hpsi_stat_get(&c->updater_samples),
				hpsi_stat_get(&c->handled));
	s->held_s = (double)hpsi_stat_get(&c->held_ns) / 1e9;
}

static const char *state_of(const struct hpsi_node *n, int32_t *pid)
{
	/* acquire pairs with the node's state changes (struct hpsi_node,
	 * shm/segment.h): the pid read after it is the one of that state */
	uint32_t st = atomic_load_explicit(&((struct hpsi_node *)n)->state, memory_order_acquire);
	*pid = atomic_load_explicit(&((struct hpsi_node *)n)->pid, memory_order_relaxed);
	uint64_t birth = atomic_load_explicit(&((struct hpsi_node *)n)->birth, memory_order_relaxed);
	switch (st) {
	case HPSI_NODE_ALIVE:
		return hpsi_proc_alive(*pid, birth) ? "alive" : "dead";
	case HPSI_NODE_JOINING:
		return hpsi_proc_alive(*pid, birth) ? "joining" : "dead";
	case HPSI_NODE_CLOSED:
		return "closed";
	case HPSI_NODE_DEAD:
		return "dead";
	case HPSI_NODE_RESTARTING:
		return "restarting";
	default:
		return "starting";
	}
}

void hpsi_jobstats_read(const struct hpsi_seg *seg, struct hpsi_job_stats *st)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	memset(st, 0, sizeof *st);
	snprintf(st->job, sizeof st->job, "%s", h->job);
	snprintf(st->host, sizeof st->host, "%s", h->host);
	st->at_ns = hpsi_now_ns();
	st->nservers = h->nservers;
	st->nworkers = h->nworkers;
	for (uint32_t id = 0; id < h->nservers + h->nworkers; id++) {
		if (!hpsi_node_local(seg, id))
			continue;
		/* a free rank of the room --max-workers made: no process (yet).
		 * acquire: pairs with the claim's CAS (runtime/client/join.c) */
		if (atomic_load_explicit(&hpsi_seg_node(seg, id)->state, memory_order_acquire) == HPSI_NODE_VACANT)
			continue;
		struct hpsi_proc_row *r = &st->rows[st->nrows++];
		r->node = id;
		r->role = id < h->nservers ? HPSI_R_SERVER : HPSI_R_WORKER;
		r->rank = id < h->nservers ? id : id - h->nservers;
		r->state = state_of(hpsi_seg_node(seg, id), &r->pid);
		r->rss = r->pid > 0 ? rss_of(r->pid) : 0;
		snap_node(hpsi_seg_counters(seg, id), &r->s);
		for (uint32_t srv = 0; r->role == HPSI_R_WORKER && srv < h->nservers; srv++) {
			const struct hpsi_stale_cell *c = hpsi_seg_stale(seg, srv, r->rank);
			uint64_t max = hpsi_stat_get(&c->max);
			r->s.stale_pulls += hpsi_stat_get(&c->pulls);
			r->s.stale_sum += hpsi_stat_get(&c->sum);
			r->s.stale_max = max > r->s.stale_max ? max : r->s.stale_max;
		}
	}
	if (!h->bridged)
		return;
	const struct hpsi_bridge_counters *bc = hpsi_seg_bridge_counters(seg);
	st->nhosts = atomic_load_explicit(&((struct hpsi_bridge_counters *)bc)->nhosts, memory_order_relaxed);
	st->me = atomic_load_explicit(&((struct hpsi_bridge_counters *)bc)->me, memory_order_relaxed);
	if (st->nhosts > HPSI_MAX_NODES)
		st->nhosts = HPSI_MAX_NODES;
	struct hpsi_proc_row *r = &st->rows[st->nrows++];
	r->role = HPSI_R_BRIDGE;
	r->node = UINT32_MAX;
	r->rank = st->me;
	r->pid = h->creator_pid;
	r->state = hpsi_proc_alive(h->creator_pid, h->creator_birth) ? "alive" : "dead";
	r->rss = rss_of(r->pid);
	for (uint32_t p = 0; p < st->nhosts; p++) {
		const struct hpsi_peer_counters *c = &bc->peer[p];
#define HPSI_STAT_LOAD(f, ...) st->peer[p].f = hpsi_stat_get(&c->f);
		HPSI_PEER_STATS(HPSI_STAT_LOAD)
#undef HPSI_STAT_LOAD
		/* the bridge's row: its traffic with every peer */
		r->s.requests += st->peer[p].msgs_out;
		r->s.push_bytes += st->peer[p].bytes_out;
		r->s.pull_bytes += st->peer[p].bytes_in;
	}
}
