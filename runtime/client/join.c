/* Workers that join a running job (join.h).
 *
 * Claim. The joiner takes the lowest VACANT slot by a compare-and-swap
 * (acq_rel) to EMPTY: of two joiners racing for a slot one wins, the other
 * tries the next. EMPTY is how every launched worker starts too: a member
 * not yet running, whose barrier arrival the others wait for, and which
 * liveness checks skip (it has no pid yet). A joiner stores its pid at
 * once after the claim, so liveness checks probe its EMPTY slot
 * (hpsi_node_check): killed before ALIVE, it is marked DEAD.
 *
 * Start clock, and why SSP holds without stopping anyone. The joiner then
 * bumps hdr->members_seq (seq_cst), issues a seq_cst fence, and only then
 * reads the members' clock_done: its start clock c is their least. A server
 * computing a min clock (runtime/server/members.c) first issues a seq_cst
 * fence, then loads members_seq; when it changed it looks at the slots:
 * a claimed slot without its clock yet (EMPTY) holds every pull that
 * depends on the min clock, a joined one (ALIVE, or since CLOSED) counts
 * at its published clock. Take the two fences in their single total
 * order. If the server's comes after the joiner's, it sees the bump and
 * holds or counts the joiner. If it comes first, every clock message the
 * server had consumed before it was announced after its worker stored
 * clock_done (request.c: clock_done, then the ring's release, which the
 * server acquired), so the joiner, reading after its own later fence,
 * sees those clock_done values or larger: c is at least the min clock the
 * server computed, and a pull it answers with that min clock (at clock
 * m <= min + s) needs no push from the joiner, whose pushes are all of
 * clocks >= c >= m - s. Pulls of the joiner are held like anyone's.
 *
 * Publication. clock_done = join_clock = c and barrier_arrived (the
 * barriers completed so far) are stored before the release of ALIVE
 * (hps_init); a server that acquires ALIVE reads them (join_clock: it
 * stays c while clock_done moves on). Then members_seq is bumped again (release)
 * and every node woken, so servers holding pulls for the EMPTY slot look
 * again. */
#include "runtime/client/join.h"

#include <time.h>
#include <unistd.h>

#include "runtime/client/ctx.h"
#include "runtime/common/log.h"
#include "shm/barrier.h"
#include "shm/bell.h"
#include "shm/liveness.h"
#include "shm/node.h"

uint32_t hpsi_workers_given(const struct hpsi_seg *seg)
{
	uint32_t n = 0;
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++)
		n += hpsi_node_state(seg, hpsi_worker_node(seg, w)) != HPSI_NODE_VACANT;
	return n;
}

uint32_t hpsi_workers_current(struct hpsi_seg *seg)
{
	uint32_t n = 0;
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++) {
		uint32_t st = hpsi_worker_state(seg, hpsi_worker_node(seg, w), 0);
		n += st != HPSI_NODE_VACANT && st != HPSI_NODE_CLOSED && st != HPSI_NODE_DEAD;
	}
	return n;
}

int hpsi_worker_slot_of(const struct hpsi_seg *seg, int pid)
{
	for (uint32_t w = 0; w < seg->hdr->nworkers; w++) {
		const struct hpsi_node *n = hpsi_seg_node(seg, hpsi_worker_node(seg, w));
		/* acquire: pairs with the release of ALIVE, after the pid */
		uint32_t st = atomic_load_explicit(&n->state, memory_order_acquire);
		if (st != HPSI_NODE_VACANT && st != HPSI_NODE_EMPTY &&
		    atomic_load_explicit(&n->pid, memory_order_relaxed) == pid)
			return (int)w;
	}
	return -1;
}

void hpsi_members_changed(struct hpsi_seg *seg)
{
	/* release: whoever sees the new epoch sees the state change behind it */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
	hpsi_wake_all(seg);
}

/* Across hosts: the other hosts' servers must hold for this rank before
 * its start clock is chosen, and that clock must be at least what each of
 * them may have counted (net/bridge_join.c has the protocol). Asks our
 * bridge through join_clock (HPSI_JOIN_WAIT, release: the bridge acquires
 * it with the claim) and polls until it stored the largest floor of the
 * other hosts (acquire), the bridge died, or HPS_TIMEOUT_MS passed. On
 * failure the caller marks the claimed slot DEAD (hpsi_join_claim). */
static int other_hosts_floor(struct hps_ctx *c, struct hpsi_node *n, uint32_t *clock)
{
	struct hpsi_seg *seg = &c->seg;
	atomic_store_explicit(&n->join_clock, HPSI_JOIN_WAIT, memory_order_release);
	int64_t deadline = hpsi_now_ns() + seg->hdr->timeout_ms * 1000000;
	uint32_t floor;
	while ((floor = atomic_load_explicit(&n->join_clock, memory_order_acquire)) == HPSI_JOIN_WAIT) {
		if (!hpsi_proc_alive(seg->hdr->creator_pid, seg->hdr->creator_birth)) {
			hpsi_error("HPS_JOIN: the bridge of host %s is gone: job '%s' cannot be joined", seg->hdr->host,
				   seg->hdr->job);
			return HPS_EPEERDEAD;
		}
		if (hpsi_now_ns() > deadline) {
			hpsi_error("HPS_JOIN: the other hosts of job '%s' did not make room for worker %d within HPS_TIMEOUT_MS=%lld",
				   seg->hdr->job, c->cfg.rank, (long long)seg->hdr->timeout_ms);
			return HPS_ETIMEDOUT;
		}
		nanosleep(&(struct timespec){0, 1000000}, NULL); /* a heartbeat or two: nothing to wake us */
	}
	if (floor > *clock)
		*clock = floor;
	return 0;
}

int hpsi_join_claim(struct hps_ctx *c)
{
	struct hpsi_seg *seg = &c->seg;
	uint32_t w, id = 0;
	/* The membership epoch moves before the rank is given, so a program
	 * that sees hps_num_workers grow (its acquire of the claimed state
	 * pairs with the CAS below) sees the epoch moved too; the bump after
	 * the claim is the one the servers' look pairs with. A claim that
	 * finds no free rank leaves a bump behind, which changes nothing. */
	atomic_fetch_add_explicit(&seg->hdr->members_seq, 1, memory_order_release);
	for (w = 0; w < seg->hdr->nworkers; w++) {
		id = hpsi_worker_node(seg, w);
		if (!hpsi_node_local(seg, id))
			continue; /* across hosts: another host's free rank */
		uint32_t st = HPSI_NODE_VACANT;
		if (atomic_compare_exchange_strong_explicit(&hpsi_seg_node(seg, id)->state, &st, HPSI_NODE_EMPTY,
							    memory_order_acq_rel, memory_order_relaxed))
			break;
	}
	if (w == seg->hdr->nworkers) {
		if (seg->hdr->bridged && seg->hdr->wrk_hi <= seg->hdr->launched_workers)
			hpsi_error("job '%s' has no free worker rank on host %s: across hosts the free ranks (hps launch --max-workers) are the last host's of --hosts; join there",
				   seg->hdr->job, seg->hdr->host);
		else
			hpsi_error("job '%s' has no free worker rank: its %u were all given out (hps launch --max-workers; a rank is not given twice)",
				   seg->hdr->job, seg->hdr->nworkers);
		return HPS_EEXIST;
	}
	c->cfg.rank = (int)w;
	c->node = id;
	/* The pid at the claim, not only in hps_init: a joiner killed before
	 * ALIVE (while it waits for the other hosts' floor, for one) is then
	 * found dead by whoever probes the slot (hpsi_node_check) and marked
	 * DEAD, not left EMPTY, a join still coming that servers hold
	 * min-clock pulls for, until HPS_TIMEOUT_MS. Birth first, then the
	 * pid (release): a prober that acquires a non-zero pid sees its birth. */
	struct hpsi_node *me = hpsi_seg_node(seg, id);
	atomic_store_explicit(&me->birth, hpsi_proc_birth(getpid()), memory_order_relaxed);
	atomic_store_explicit(&me->pid, (int32_t)getpid(), memory_order_release);
	/* the Dekker pair with a server's fence before it loads members_seq
	 * (see the head of this file) */
	uint32_t clock = hpsi_members_claim_floor(seg, id);
	struct hpsi_node *n = hpsi_seg_node(seg, id);
	int rc;
	if (seg->hdr->bridged && (rc = other_hosts_floor(c, n, &clock))) {
		/* The slot is ours and EMPTY: left so, this host's servers would
		 * hold min-clock pulls and wait for it to finish, and its
		 * launcher would keep the bridge, for good (nothing marks an
		 * EMPTY slot dead). DEAD, as the launcher marks a joiner that
		 * died before ALIVE: the servers drop it, the bridge reports it,
		 * the other hosts stop holding for it. (hpsi_node_mark_dead:
		 * acq_rel CAS, then the release bump of members_seq.) */
		hpsi_node_mark_dead(seg, id);
		return rc;
	}
	/* relaxed: published by hps_init's release of ALIVE */
	atomic_store_explicit(&n->clock_ts[clock & 1], 0, memory_order_relaxed);
	atomic_store_explicit(&n->clock_bar[clock & 1], hpsi_barrier_seq(hpsi_barrier_open(seg, NULL)),
			      memory_order_relaxed);
	atomic_store_explicit(&n->barrier_arrived, hpsi_barrier_seq(hpsi_barrier_open(seg, NULL)), memory_order_relaxed);
	atomic_store_explicit(&n->clock_done, clock, memory_order_relaxed);
	atomic_store_explicit(&n->join_clock, clock, memory_order_relaxed);
	c->resume_clock = clock;
	c->resume_ts = 0;
	c->join_barrier = 1;
	hpsi_info("joined job %s as worker %u at clock %u (the slowest member's)", seg->hdr->job, w, clock);
	return 0;
}
