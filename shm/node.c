#include "shm/node.h"

#include "runtime/common/log.h"
#include "shm/liveness.h"

void hpsi_wake_all(struct hpsi_seg *seg)
{
	uint32_t n = seg->hdr->nservers + seg->hdr->nworkers;
	for (uint32_t i = 0; i < n; i++)
		hpsi_bell_ring_always(&hpsi_seg_node(seg, i)->bell);
	hpsi_futex_wake(&seg->hdr->barrier); /* waiters re-check who is left */
}

/* Node state orderings: see struct hpsi_node (shm/segment.h). */
void hpsi_node_mark_dead(struct hpsi_seg *seg, uint32_t id)
{
	struct hpsi_node *n = hpsi_seg_node(seg, id);
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	while (st != HPSI_NODE_CLOSED && st != HPSI_NODE_DEAD &&
	       !atomic_compare_exchange_weak_explicit(&n->state, &st, HPSI_NODE_DEAD, memory_order_acq_rel,
						      memory_order_acquire))
		;
	/* a worker's death changes the membership (hps_membership_epoch);
	 * release: whoever sees the new epoch sees DEAD */
	if (id >= seg->hdr->nservers && st != HPSI_NODE_CLOSED && st != HPSI_NODE_DEAD)
		atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
	hpsi_wake_all(seg);
}

void hpsi_members_changing(struct hpsi_seg *seg)
{
	/* release; the change is stored after this with release, so whoever
	 * acquires the changed entry sees the epoch moved too */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
}

int hpsi_probe_due(struct hpsi_seg *seg, int group, int64_t period_ns)
{
	_Atomic int64_t *at = &seg->hdr->probed_at[group];
	int64_t now = hpsi_now_ns();
	/* relaxed: only whose turn it is; what a check finds travels through
	 * the node states, with their own release and acquire */
	int64_t last = atomic_load_explicit(at, memory_order_relaxed);
	return now - last >= period_ns &&
	       atomic_compare_exchange_strong_explicit(at, &last, now, memory_order_relaxed, memory_order_relaxed);
}

/* A worker slot a joiner claimed (EMPTY above launched_workers) whose
 * process died before ALIVE: DEAD, as the launcher marks such a joiner of
 * its own. The joiner stores birth, then its pid (release) right after
 * its claim (runtime/client/join.c); pid 0: not stored yet, or a slot
 * another host's joiner claimed (its bridge stores its own pid with
 * ALIVE): nothing to probe. The CAS from EMPTY marks only that claim. */
static uint32_t check_claim(struct hpsi_seg *seg, uint32_t id, struct hpsi_node *n)
{
	if (id < seg->hdr->nservers + seg->hdr->launched_workers)
		return HPSI_NODE_EMPTY; /* a launched worker not started yet */
	/* acquire: pairs with the joiner's release of its pid, after birth */
	pid_t pid = atomic_load_explicit(&n->pid, memory_order_acquire);
	if (pid <= 0 || hpsi_proc_alive(pid, atomic_load_explicit(&n->birth, memory_order_relaxed)))
		return HPSI_NODE_EMPTY;
	uint32_t st = HPSI_NODE_EMPTY;
	/* acq_rel: as every state change (struct hpsi_node) */
	if (atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_DEAD, memory_order_acq_rel,
						    memory_order_acquire)) {
		hpsi_warn("worker %u (node %u, pid %d) died after it claimed its rank, before it joined: marked dead",
			  id - seg->hdr->nservers, id, (int)pid);
		/* release: whoever sees the new epoch sees DEAD */
		atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
		hpsi_wake_all(seg);
		return HPSI_NODE_DEAD;
	}
	return st;
}

uint32_t hpsi_node_check(struct hpsi_seg *seg, uint32_t id)
{
	struct hpsi_node *n = hpsi_seg_node(seg, id);
	uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
	if (st == HPSI_NODE_EMPTY)
		return check_claim(seg, id, n);
	if (st != HPSI_NODE_ALIVE && st != HPSI_NODE_JOINING)
		return st;
	pid_t pid = atomic_load_explicit(&n->pid, memory_order_relaxed);
	uint64_t birth = atomic_load_explicit(&n->birth, memory_order_relaxed);
	if (hpsi_proc_alive(pid, birth))
		return st;
	/* Re-read: it may have closed cleanly just before exiting, or have
	 * been replaced meanwhile: a restarted worker (or a replacement
	 * server) stores its own pid before its release of ALIVE/JOINING, so
	 * an acquired ALIVE that still goes with the dead pid is the dead
	 * process's. Only that state is marked dead (one CAS from it): a
	 * RESTARTING node, or one a new process claimed since, is not ours to
	 * mark. (A whole restart between the pid load and the CAS would still
	 * pass: the state and the pid are two words.) */
	st = atomic_load_explicit(&n->state, memory_order_acquire);
	if ((st == HPSI_NODE_ALIVE || st == HPSI_NODE_JOINING) &&
	    atomic_load_explicit(&n->pid, memory_order_relaxed) == pid) {
		uint32_t ns = seg->hdr->nservers;
		hpsi_warn("%s %u (node %u, pid %d) died: marked dead; what waits only for it fails", id < ns ? "server" : "worker",
			  id < ns ? id : id - ns, id, (int)pid);
		/* acq_rel: as every state change (struct hpsi_node) */
		atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_DEAD, memory_order_acq_rel,
							memory_order_acquire);
		hpsi_wake_all(seg);
	}
	return atomic_load_explicit(&n->state, memory_order_acquire);
}

uint32_t hpsi_worker_state(struct hpsi_seg *seg, uint32_t id, int probe)
{
	/* acquire: pairs with the launcher's release of its decrement, made
	 * after its release of RESTARTING (runtime/cluster/launch.c) */
	uint32_t left = atomic_load_explicit(&seg->hdr->worker_restarts, memory_order_acquire);
	uint32_t st = probe ? hpsi_node_check(seg, id) : hpsi_node_state(seg, id);
	return st == HPSI_NODE_DEAD && left ? HPSI_NODE_RESTARTING : st;
}

uint32_t hpsi_members_min_clock(struct hpsi_seg *seg, uint32_t except)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	uint32_t m = UINT32_MAX;
	for (uint32_t w = 0; w < h->nworkers; w++) {
		uint32_t id = hpsi_worker_node(seg, w);
		if (id == except)
			continue;
		uint32_t st = hpsi_worker_state(seg, id, 0);
		if (st == HPSI_NODE_VACANT || st == HPSI_NODE_CLOSED || st == HPSI_NODE_DEAD ||
		    (st == HPSI_NODE_EMPTY && w >= h->launched_workers))
			continue;
		/* acquire: pairs with hps_clock's release (request.c) */
		uint32_t c = atomic_load_explicit(&hpsi_seg_node(seg, id)->clock_done, memory_order_acquire);
		if (c < m)
			m = c;
	}
	return m == UINT32_MAX ? 0 : m;
}

uint32_t hpsi_members_claim_floor(struct hpsi_seg *seg, uint32_t except)
{
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	return hpsi_members_min_clock(seg, except);
}
