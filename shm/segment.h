/* The shared-memory segment of one host group (every process of one job
 * on one host): a header of sizes and byte offsets (never pointers), the
 * node table, the rings of every (worker, server) pair and one heap slice
 * per worker. Each process maps it at its own address and rebuilds its
 * pointers from the offsets. */
#ifndef HPSI_SEGMENT_H
#define HPSI_SEGMENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/common/limits.h"
#include "shm/bell.h"
#include "shm/counters.h"
#include "shm/ring.h"

#define HPSI_SEG_MAGIC 0x31474553535048ull /* "HPSSEG1" */
#define HPSI_SEG_VERSION 21 /* 5: counters (shm/counters.h); 6: JOINING, incarnation; 7: probed_at; 8: place_off; 9: xck_*; 10: slots_off; 11: RESTARTING, clock_done/_bar/_ts, worker_restarts; 12: VACANT, launched_workers, members_seq, scale_req; 13: launched_servers, owner_off; 15: bridge_inflight; 16: join_clock; 17: fenced; 19: the backup table after the owner table (18 was set aside for other work); 20: moves_off, the move numbers of the key ranges; 21: nhosts, hosts_off, the host of each server rank */
#define HPSI_SEG_TMP ".tmp" /* suffix + creator pid while a segment is being built */

enum hpsi_node_state {
	HPSI_NODE_EMPTY = 0,  /* not started yet */
	HPSI_NODE_ALIVE = 1,
	HPSI_NODE_CLOSED = 2, /* finished cleanly */
	HPSI_NODE_DEAD = 3,   /* died; set by whoever noticed */
	/* A replacement of a dead server (HPS_REPLICAS) copying the key
	 * ranges it holds: gone to workers and to routing, alive to its
	 * liveness checks; it becomes ALIVE when it serves its own range
	 * again (runtime/server/recover.c). */
	HPSI_NODE_JOINING = 4,
	/* A dead worker that `hps launch --restart-workers` starts again with
	 * the same rank (shm/node.h, hpsi_worker_state): still a member, whose
	 * clock and barrier arrival hold the others back until it returns.
	 * The launcher stores it over DEAD with release before it decrements
	 * worker_restarts; the new process claims ALIVE over it. */
	HPSI_NODE_RESTARTING = 5,
	/* A worker slot of the room --max-workers made that no process has
	 * claimed yet (runtime/client/join.c): no member. Clocks, barriers
	 * and liveness skip it. A joining process moves it to EMPTY by a
	 * compare-and-swap (its claim), then to ALIVE; never back.
	 * Also a server rank of the room --max-servers made that runs no
	 * process: it serves no key range (the owner table names it
	 * nowhere), nothing waits for it, liveness never probes it. */
	HPSI_NODE_VACANT = 6,
};

/* state: the owner stores ALIVE with release after pid and birth
 * (relaxed) in hps_init; it moves to CLOSED by the owner's compare-exchange
 * (acq_rel) when it closes, or to DEAD by anyone's (hpsi_node_mark_dead,
 * acq_rel). Readers load it with acquire, pairing with those, so seeing a
 * state they see the pid and birth and what the node did before it.
 * With replicas a server may come back: its replacement stores a new
 * incarnation (relaxed), then JOINING over DEAD with release; the
 * replacement itself stores ALIVE with release once it serves again
 * (runtime/server/recover.c), the only move back from DEAD. */
struct hpsi_node {
	_Atomic int32_t pid;
	_Atomic uint32_t state;  /* enum hpsi_node_state */
	_Atomic uint64_t birth;  /* start time of pid, tells a reused pid apart */
	struct hpsi_bell bell;   /* rung by whoever has work for this node */
	/* Workers: barriers arrived at (mod 2^30, shm/barrier.h); stored with
	 * release by the worker, loaded with acquire by whoever decides. */
	_Atomic uint32_t barrier_arrived;
	/* Servers: 0 for the first process of this rank, +1 per replacement
	 * (published by the release of JOINING). Workers: +1 per restart
	 * (published by the release of ALIVE). */
	_Atomic uint32_t incarnation;
	/* Servers: copies of key ranges to replacements this node started
	 * and ended (runtime/server/recover.c; relaxed, only counted: a
	 * checkpoint load refuses to run beside one). */
	_Atomic uint32_t copies_started, copies_ended;
	/* Servers: bit i, this server lacks a whole copy of the key range it
	 * is replica i of (hpsi_place_step(id, -i), net/route.h): a
	 * replacement until that range's copy ended. Set
	 * (relaxed) before the release of JOINING, cleared with release at
	 * the copy's end; routing acquires it (net/route.h). */
	_Atomic uint32_t lacking;
	/* Workers: the clock this rank reached, the timestamp of its first
	 * request in that clock and the barriers it had arrived at then
	 * (barrier_arrived), for a restart (hps_resume_clock). hps_clock
	 * stores clock_bar and clock_ts [c & 1] (relaxed), then clock_done = c
	 * (release), before it announces clock c to any server; a restarted
	 * process reads clock_done (acquire), then the slots [clock_done & 1].
	 * The slots of the clock before stay whole, so a death between the
	 * stores leaves a consistent resume point. */
	_Atomic uint32_t clock_done;
	_Atomic uint32_t clock_bar[2];
	_Atomic int64_t clock_ts[2];
	/* Workers of a multi-host job: this rank's requests the local bridge
	 * took from its rings and has not answered into them yet (net/bridge.h).
	 * The bridge adds (relaxed) before it releases the request ring's head
	 * and subtracts (release) after it published the answers; a restarted
	 * process acquires the head, then this, before it drops the answers
	 * and carves its heap slice again (runtime/client/rejoin.c). */
	_Atomic uint32_t bridge_inflight;
	/* Workers: the clock a joiner started at (runtime/client/join.c), 0
	 * for a launched worker; stored (relaxed) before the release of
	 * ALIVE and never changed after, restarts included. Servers read it
	 * after they acquired a state other than VACANT or EMPTY: a joiner
	 * needs no push below it, so every range may count it at least
	 * there (runtime/server/members.c). */
	_Atomic uint32_t join_clock;
	/* Servers of another host, with replicas across hosts: 1 once this
	 * host's bridge wrote into their rings everything this dead server
	 * forwarded to local backups and handed its key ranges on (its FENCE
	 * came: net/bridge_failover.c). Stored with release by the bridge;
	 * routing and takeovers acquire it (net/route.h, replica.c). A local
	 * server, with replicas across hosts: 1 once this host's bridge sent
	 * the FENCE of its death (release); a replacement acquires it before
	 * it claims the rank and clears it (relaxed, before its release of
	 * JOINING: runtime/client/ctx.c); a remote replacement's host clears
	 * it likewise (net/bridge_recover.c). The layout is unchanged. */
	_Atomic uint32_t fenced;
	char pad[128 - 84];
};
_Static_assert(sizeof(struct hpsi_node) == 128, "a node entry is two cache lines");

/* What each server (key range) holds: its keys when declared, the type
 * it stores and the type its values travel in (enum hpsi_wire_dtype). */
struct hpsi_range {
	uint64_t first, last; /* inclusive; used with HPSI_RANGE_DECLARED */
	uint32_t dtype;       /* stored: f32 or f64 */
	uint32_t wire;        /* on the rings: dtype, or f16/bf16 for f32 */
	/* HOGWILD direct mode (HPS_DIRECT): the server keeps this whole range
	 * as a dense f32 array of direct_width floats per key at direct_off in
	 * the segment. The server sets direct_ready with release once the
	 * array holds its initial values; a worker acquires it before mapping. */
	uint32_t direct_width; /* 0: an ordinary (hash table) range */
	_Atomic uint32_t direct_ready;
	uint64_t direct_off;
};

struct hpsi_seg_hdr {
	/* Stored last by the creator with release once the header is whole;
	 * attachers load it with acquire before reading the rest. */
	_Atomic uint64_t magic;
	uint32_t version;
	uint32_t hdr_bytes;
	uint64_t total_bytes;
	/* nworkers: worker slots (--max-workers; the -w of the launch when
	 * not given), each with its node, rings and heap slice; those from
	 * launched_workers on start VACANT (runtime/client/join.c) */
	uint32_t nservers, nworkers;
	uint32_t ring_bytes; /* data bytes of each ring, a power of two */
	uint32_t range_mode;
	uint32_t launched_workers; /* -w: the workers the launch started */
	/* -s: the server processes the launch started (ranks 0 ..
	 * launched_servers - 1); nservers is the key ranges and server ranks
	 * (--max-servers), the ranks from launched_servers on start VACANT */
	uint32_t launched_servers;
	uint64_t nodes_off, rings_off, ring_stride, ranges_off;
	/* The placement of replicas (shm/place.h): nservers uint32_t of π,
	 * then nservers of its inverse pos; written by the creator before the
	 * magic, never changed (hpsi_seg_place) */
	uint64_t place_off;
	/* The slot table of hashed keys (shm/slots.h): HPSI_SLOTS uint16_t
	 * server ids, hpsi_slots_build(nservers); written by the creator
	 * before the magic, never changed yet (hpsi_seg_slots) */
	uint64_t slots_off;
	/* The owner table (hpsi_seg_owner): nservers _Atomic uint16_t, the
	 * server rank serving each key range, then nservers more, the rank
	 * each range should move to (the plan of a scale, hpsi_seg_want).
	 * Written by the creator before the magic (the identity without
	 * --max-servers; both halves equal). A scale's launcher stores the
	 * plan (relaxed), then bumps moves_seq with release; the server
	 * handing a range over stores its new owner with release, routing
	 * loads it with acquire (net/route.h). After them, with replicas,
	 * the backup table (hpsi_seg_backups): nservers x replicas _Atomic
	 * uint16_t, entry r * replicas + i - 1 the rank of replica i of key
	 * range r, then as many more for a scale's plan; written by the
	 * creator before the magic (shm/backups.h) and read by routing only
	 * in a job with room for servers (hpsi_seg_room): other replicated
	 * jobs place backups by π. */
	uint64_t owner_off;
	/* The move numbers (hpsi_seg_moves): nservers _Atomic uint32_t, how
	 * many times each key range changed owner as far as this host knows
	 * (raised after the new owner is stored, by whoever stores it: the
	 * source server, or the bridge told by a FINAL or HANDBACK, which
	 * carry the number), then nservers more, the numbers the plan of a
	 * scale was made at (the last host's launcher stores them with the
	 * plan; its bridge sends them with it, and another host's bridge
	 * stores those of the entries it takes). Another host applies a
	 * plan's entry for a range only if its number is not below the one
	 * it holds (net/bridge_scale.c), and a server moves a range only by
	 * such an entry (runtime/server/move.c): a plan that reaches it after
	 * a later move's FINAL, or that was read before a move, does not move
	 * the range back. Zero at creation. */
	uint64_t moves_off;
	/* Multi-host jobs (hps launch --hosts): nhosts (0: one host) and, at
	 * hosts_off, nservers uint32_t, the host of each server rank as the
	 * assignment laid them out (host after host, the room the last
	 * host's; hpsi_seg_launched_hosts). Written by the creator before the
	 * magic, never changed: a rank stays on its host (a scale starts a
	 * closed rank again on the host it was on). Whoever plans or rebuilds
	 * a backup table across hosts reads it (hpsi_seg_launch_backups; the
	 * launcher's hpsi_backup_rebalance_hosts). */
	uint32_t nhosts, pad1;
	uint64_t hosts_off;
	uint64_t heap_off, heap_slice; /* one slice per worker */
	uint64_t direct_bytes;         /* dense arrays of direct ranges, after the heap */
	/* one struct hpsi_counters per node, then the bridge's (shm/counters.h) */
	uint64_t counters_off, bridge_counters_off;
	uint64_t stale_off, stale_row; /* nservers rows of nworkers struct hpsi_stale_cell */
	/* Multi-host jobs: node ids cover the whole job; the servers
	 * [srv_lo, srv_hi) and workers [wrk_lo, wrk_hi) run on this host, the
	 * others are stood for by this host's bridge (their node entries carry
	 * the bridge's pid, and their rings have the bridge at the far end). */
	uint32_t bridged;
	uint32_t srv_lo, srv_hi, wrk_lo, wrk_hi;
	/* HPS_REPLICAS: backups per key range; with any, the S x S rings of
	 * server pairs follow the worker rings (hpsi_seg_fwd_ring) */
	uint32_t replicas;
	/* sleepers: the bridge sleeps and wants a datagram (shm/wake.h) */
	struct hpsi_bell bridge_bell;
	int64_t timeout_ms;
	int32_t creator_pid;
	uint32_t pad0;
	uint64_t creator_birth;
	char job[HPSI_NAME_MAX];
	char host[HPSI_NAME_MAX];
	_Atomic uint32_t shutdown; /* set by the launcher: every node ends */
	/* --restart-workers: worker restarts the launcher may still make. A
	 * worker found DEAD while it is above 0 is RESTARTING to everyone
	 * (hpsi_worker_state). Stored with release by the launcher after it
	 * moved the dead worker to RESTARTING; readers acquire it before the
	 * node's state. */
	_Atomic uint32_t worker_restarts;
	/* The membership epoch (hps_membership_epoch): bumped by a joining
	 * worker when it claims its slot and again once it is ALIVE, by a
	 * worker's close and by a worker's death. A joiner's bump at its
	 * claim is seq_cst, followed by a seq_cst fence before it reads the
	 * members' clocks; servers fence (seq_cst) before they read it when
	 * they compute a min clock (runtime/client/join.c has the argument). */
	_Atomic uint32_t members_seq;
	/* `hps scale --workers N`: 0 while no scale runs; the command stores
	 * N by a compare-and-swap from 0 (acq_rel; a second one fails), the
	 * launcher loads it with acquire, starts the copies and stores 0 with
	 * release once each has joined or ended. */
	_Atomic uint32_t scale_req;
#define HPSI_SCALE_SERVERS 0x80000000u /* scale_req: N | this asks for N servers (hps scale --servers) */
	/* --max-servers: the server processes the plan in the owner table's
	 * second half is for (ranks at or above it leave once they handed
	 * their ranges over), and the plan's number, bumped with release by
	 * the launcher after it stored the plan and servers_want (servers
	 * load it with acquire, runtime/server/move.c). */
	_Atomic uint32_t servers_want, moves_seq;
	/* When the processes of the workers [0] and of the servers [1] were
	 * last checked, by whichever process of the host group won the turn
	 * (hpsi_probe_due, shm/node.c); monotonic ns. */
	_Atomic int64_t probed_at[2];
	/* The barrier (shm/barrier.h): completed count and failure, a futex
	 * word; and, with a bridge, barrier k + 1 once a local worker's
	 * deadline passed in barrier k (the bridge asks the scheduler to fail it). */
	_Atomic uint32_t barrier;
	_Atomic uint32_t barrier_expired;
	/* Checkpoints: the requester (holding ckpt_lock) writes ckpt_op and
	 * ckpt_dir, then bumps ckpt_seq with release; each server loads it
	 * with acquire, does its part, records an error in ckpt_status and
	 * bumps ckpt_done with release; the requester acquires ckpt_done. */
	_Atomic int32_t ckpt_lock; /* 0, or the pid running a checkpoint */
	_Atomic uint32_t ckpt_seq;
	uint32_t ckpt_op;          /* HPSI_CKPT_SAVE / HPSI_CKPT_LOAD */
	_Atomic uint32_t ckpt_done;
	_Atomic int32_t ckpt_status;
	_Atomic uint32_t ckpt_clock; /* LOAD: smallest saved clock, reported back */
	char ckpt_dir[512];
	/* Why it failed: written by the server whose error won ckpt_status,
	 * before its release on ckpt_done; the requester reads it after. */
	char ckpt_why[256];
	/* Checkpoints of a job that spans hosts (net/bridge_ckpt.c): a local
	 * requester (holding xck_lock) writes xck_op and xck_dir, then stores
	 * its request number in xck_req with release; the bridge acquires it
	 * and asks the scheduler, and once every host did its part it writes
	 * xck_status, xck_clock and xck_why, then stores the request number
	 * in xck_ans with release; the requester acquires xck_ans. */
	_Atomic int32_t xck_lock; /* 0, or the pid of the local requester */
	_Atomic uint32_t xck_req, xck_ans;
	uint32_t xck_op;           /* HPSI_CKPT_SAVE / HPSI_CKPT_LOAD */
	int32_t xck_status;
	uint32_t xck_clock;        /* the smallest saved clock of every host */
	char xck_dir[512];         /* absolute: every host's servers open it */
	char xck_why[256];
};

/* SAVE and LOAD: a one-host checkpoint (and what a requester asks of a
 * job across hosts). PREPARE, COMMIT and ABORT: the two phases of a load
 * across hosts, as each host's bridge asks its servers: PREPARE reads
 * every file whole into a table aside, COMMIT swaps it in, ABORT drops it.
 * UNLOCK: the end of a round, to the bridge of the host with the room for
 * servers, which held its checkpoint lock through it (net/bridge_ckpt.c);
 * no server sees it. */
enum {
	HPSI_CKPT_SAVE = 1,
	HPSI_CKPT_LOAD = 2,
	HPSI_CKPT_PREPARE = 3,
	HPSI_CKPT_COMMIT = 4,
	HPSI_CKPT_ABORT = 5,
	HPSI_CKPT_UNLOCK = 6
};

struct hpsi_seg_params {
	const char *job, *host;
	uint32_t nservers, nworkers;
	uint32_t max_workers; /* worker slots (--max-workers); 0 or below nworkers: nworkers */
	uint32_t max_servers; /* key ranges and server ranks (--max-servers); 0 or below nservers: nservers */
	uint32_t launched_servers; /* set by hpsi_seg_create (the servers of -s): leave 0 */
	uint32_t ring_bytes; /* 0: by the job's shape (hpsi_ring_bytes_for) */
	uint64_t heap_slice;
	int64_t timeout_ms;
	uint32_t range_mode;
	const struct hpsi_key_span *ranges; /* nservers entries when DECLARED (with room: the -s declared ones, cut into max_servers) */
	const uint32_t *dtypes, *wires;  /* nservers entries each, or NULL: f32 */
	const uint32_t *direct_widths;   /* nservers entries (needs DECLARED), or NULL */
	/* multi-host: this host's servers and workers; the creator (the
	 * bridge) stands for every other node */
	uint32_t bridged;
	uint32_t srv_lo, srv_hi, wrk_lo, wrk_hi;
	uint32_t replicas; /* HPS_REPLICAS */
	/* Multi-host: the servers each host runs, in the order of the
	 * scheduler's ranks (host h's follow host h - 1's), and the hosts'
	 * names (for errors); every host of a job passes the same table, so
	 * all lay out the same π (shm/place.h). nhosts 0: one host. */
	uint32_t nhosts;
	const uint32_t *host_servers;
	const char *const *host_names;
};

struct hpsi_seg {
	struct hpsi_seg_hdr *hdr;
	unsigned char *base;
	size_t size;
	char path[256];
};

/* Rings of a job whose HPS_RING_KB is unset share HPSI_RING_BUDGET bytes:
 * each gets the largest power of two that fits, from HPSI_RING_MIN to
 * HPSI_RING_MAX. Per-pair rings grow with workers x servers; a fixed size
 * made a 64 x 64 job reserve 8 GiB of rings. Small jobs keep 1 MiB. */
#define HPSI_RING_BUDGET (256u << 20)
#define HPSI_RING_MIN (16u << 10)
#define HPSI_RING_MAX (1u << 20)
uint32_t hpsi_ring_bytes_for(uint32_t nservers, uint32_t nworkers, uint32_t replicas);

/* Path of the segment file: $HPS_SHM_DIR (default /dev/shm)/hps.JOB.HOST. */
int hpsi_seg_path(char *out, size_t cap, const char *job, const char *host);

/* Creates and maps a new segment (mode 0600). Fails with HPS_EEXIST if the
 * job already has one on this host, HPS_ENOSPC if the shm file system has
 * too little room, HPS_ECONFIG for impossible sizes; logs why. */
int hpsi_seg_create(const struct hpsi_seg_params *p, struct hpsi_seg *seg);
/* Fills segment parameters from a job's settings (runtime/common/config.h). */
struct hpsi_config;
void hpsi_config_seg_params(const struct hpsi_config *c, struct hpsi_seg_params *p);
/* Maps an existing segment and checks its header against its size. */
int hpsi_seg_attach(const char *job, const char *host, struct hpsi_seg *seg);
int hpsi_seg_attach_path(const char *path, struct hpsi_seg *seg);
void hpsi_seg_detach(struct hpsi_seg *seg);
int hpsi_seg_unlink(struct hpsi_seg *seg);

static inline struct hpsi_node *hpsi_seg_node(const struct hpsi_seg *s, uint32_t id)
{
	return (struct hpsi_node *)(s->base + s->hdr->nodes_off) + id;
}

/* Node ids: servers 0..S-1, then workers S..S+W-1. */
static inline uint32_t hpsi_worker_node(const struct hpsi_seg *s, uint32_t w)
{
	return s->hdr->nservers + w;
}

/* dir 0: requests worker -> server; dir 1: responses server -> worker. */
static inline struct hpsi_ring *hpsi_seg_ring(const struct hpsi_seg *s, uint32_t w, uint32_t srv, int dir)
{
	size_t idx = ((size_t)w * s->hdr->nservers + srv) * 2 + (size_t)dir;
	return (struct hpsi_ring *)(s->base + s->hdr->rings_off + idx * s->hdr->ring_stride);
}

/* The ring of forwarded pushes from server `from` (a primary) to server
 * `to` (a backup of one of its key ranges), and of copies of key ranges;
 * only with replicas, or room for servers (hpsi_seg_movable). */
static inline struct hpsi_ring *hpsi_seg_fwd_ring(const struct hpsi_seg *s, uint32_t from, uint32_t to)
{
	size_t idx = (size_t)s->hdr->nworkers * s->hdr->nservers * 2 + (size_t)from * s->hdr->nservers + to;
	return (struct hpsi_ring *)(s->base + s->hdr->rings_off + idx * s->hdr->ring_stride);
}

/* Node id `id` runs on this host (always, without a bridge). */
static inline int hpsi_node_local(const struct hpsi_seg *s, uint32_t id)
{
	const struct hpsi_seg_hdr *h = s->hdr;
	if (!h->bridged)
		return 1;
	if (id < h->nservers)
		return id >= h->srv_lo && id < h->srv_hi;
	return id - h->nservers >= h->wrk_lo && id - h->nservers < h->wrk_hi;
}

static inline unsigned char *hpsi_seg_heap(const struct hpsi_seg *s, uint32_t w)
{
	return s->base + s->hdr->heap_off + (size_t)w * s->hdr->heap_slice;
}

/* The counters of node `id`; each process writes only its own block
 * (and servers the staleness line of the workers they answer). */
static inline struct hpsi_counters *hpsi_seg_counters(const struct hpsi_seg *s, uint32_t id)
{
	return (struct hpsi_counters *)(s->base + s->hdr->counters_off) + id;
}

static inline struct hpsi_bridge_counters *hpsi_seg_bridge_counters(const struct hpsi_seg *s)
{
	return (struct hpsi_bridge_counters *)(s->base + s->hdr->bridge_counters_off);
}

static inline struct hpsi_stale_cell *hpsi_seg_stale(const struct hpsi_seg *s, uint32_t server, uint32_t worker)
{
	return (struct hpsi_stale_cell *)(s->base + s->hdr->stale_off + server * s->hdr->stale_row) + worker;
}

/* π, the servers in placement order (shm/place.h), then pos[srv], the
 * position of each in π; read through net/route.h (hpsi_place_step). */
static inline const uint32_t *hpsi_seg_place(const struct hpsi_seg *s)
{
	return (const uint32_t *)(s->base + s->hdr->place_off);
}

/* The slot table, slot -> server (shm/slots.h); read through net/route.h
 * (hpsi_route_key). */
static inline const uint16_t *hpsi_seg_slots(const struct hpsi_seg *s)
{
	return (const uint16_t *)(s->base + s->hdr->slots_off);
}

/* The owner table: the server rank serving each of the nservers key
 * ranges; read through net/route.h (hpsi_range_owner). */
static inline _Atomic uint16_t *hpsi_seg_owner(const struct hpsi_seg *s)
{
	return (_Atomic uint16_t *)(s->base + s->hdr->owner_off);
}

/* The plan of a scale: the rank each key range should move to. */
static inline _Atomic uint16_t *hpsi_seg_want(const struct hpsi_seg *s)
{
	return hpsi_seg_owner(s) + s->hdr->nservers;
}

/* The move number of each key range, as this host knows it (struct
 * hpsi_seg_hdr, moves_off); after it, hpsi_seg_plan_moves. */
static inline _Atomic uint32_t *hpsi_seg_moves(const struct hpsi_seg *s)
{
	return (_Atomic uint32_t *)(s->base + s->hdr->moves_off);
}

/* The move numbers the plan of a scale was made at (the plan's half). */
static inline _Atomic uint32_t *hpsi_seg_plan_moves(const struct hpsi_seg *s)
{
	return hpsi_seg_moves(s) + s->hdr->nservers;
}

/* The highest move number a peer may send: a number near UINT32_MAX
 * would wrap at the range's next move and make every later plan look
 * older than it (a peer's number is range-checked where it is read). */
#define HPSI_MOVES_MAX (1u << 30)

/* Whether n may be a move's number from a peer (a FINAL, a HANDBACK). */
static inline int hpsi_moves_valid(uint64_t n)
{
	return n >= 1 && n <= HPSI_MOVES_MAX;
}

/* A replicated job with room: a scale's plan may change a range's tables
 * in two or three copies (runtime/server/recover.c, find_room), each
 * raising its number by one, so a plan's entry carries the first number
 * of a band of its own, above every copy before it (the launcher's
 * hpsi_moves_band_next), and is older than the range's last copy only
 * when that copy's band is higher: a later plan's (the plain rule,
 * planned < moved, would take the plan's own second copy for a later
 * plan's). 4096 copies of a range per plan, 2^18 plans. */
#define HPSI_MOVES_BAND_SHIFT 12
static inline uint32_t hpsi_moves_band_next(uint32_t moved)
{
	return ((moved >> HPSI_MOVES_BAND_SHIFT) + 1) << HPSI_MOVES_BAND_SHIFT;
}
static inline int hpsi_moves_band_older(uint32_t planned, uint32_t moved)
{
	return moved >> HPSI_MOVES_BAND_SHIFT > planned >> HPSI_MOVES_BAND_SHIFT;
}

/* Raises range r's move number to at least n (a FINAL or HANDBACK read
 * twice on one host, by its server and its bridge, counts once). Called
 * after the move's new owner was stored, everywhere: release pairs with
 * the acquire of whoever reads the number first (the launcher's
 * moves_before_owner, the bridge's hpsi_bridge_scale_owners), so that
 * the owner it reads after is this move's or a later one's, never the
 * source (a plan's entry never pairs the old owner with the new number). */
static inline void hpsi_seg_moves_raise(const struct hpsi_seg *s, uint32_t r, uint32_t n)
{
	_Atomic uint32_t *m = &hpsi_seg_moves(s)[r];
	uint32_t cur = atomic_load_explicit(m, memory_order_relaxed);
	while (cur < n && !atomic_compare_exchange_weak_explicit(m, &cur, n, memory_order_release, memory_order_relaxed))
		;
}

/* The backup table (replicas only; struct hpsi_seg_hdr, owner_off):
 * replica i >= 1 of key range r at [r * replicas + i - 1]; the plan's
 * half after it. Read through net/route.h (hpsi_replica). */
static inline _Atomic uint16_t *hpsi_seg_backups(const struct hpsi_seg *s)
{
	return hpsi_seg_owner(s) + 2 * (size_t)s->hdr->nservers;
}

/* The backup table's plan half (a scale's): replica i >= 1 of key range
 * r at [r * replicas + i - 1], as hpsi_seg_backups. Read through
 * net/route.h (hpsi_backup_want). */
static inline _Atomic uint16_t *hpsi_seg_backup_plan(const struct hpsi_seg *s)
{
	return hpsi_seg_backups(s) + (size_t)s->hdr->nservers * s->hdr->replicas;
}

/* The host of each server rank (struct hpsi_seg_hdr, hosts_off): NULL
 * for a job on one host (nhosts 0), so that it can be passed as the
 * host_of of shm/backups.h as it is. */
static inline const uint32_t *hpsi_seg_server_hosts(const struct hpsi_seg *s)
{
	return s->hdr->nhosts ? (const uint32_t *)(s->base + s->hdr->hosts_off) : NULL;
}

/* A job launched with room for more servers (--max-servers above -s),
 * replicated or not: its ranges are placed by the owner table, and with
 * replicas their backups by the backup table, not by π. */
static inline int hpsi_seg_room(const struct hpsi_seg *s)
{
	return s->hdr->launched_servers < s->hdr->nservers;
}

/* The owner table a launch starts with (hpsi_seg_create): range r to
 * rank r, the ranges of the ranks not launched (launched .. nranges - 1)
 * spread over the launched ones; with declared ranges (range_mode), the
 * pieces of declared range i (runtime/common/key_split.h) to rank i, in
 * blocks, so each rank serves the keys it was declared. Into
 * own[nranges]. Either way rank i gets floor or ceil of nranges /
 * launched ranges (the shares hpsi_share_rebalance keeps). A launched server
 * sets up these ranges, not the ones the live table names: a scale may
 * hand it a range between its hps_init and its serving loop, and that
 * range comes by a copy (runtime/server/server.c). */
void hpsi_seg_first_owners(uint32_t nranges, uint32_t launched, uint32_t range_mode, uint16_t *own);

/* The host of each server rank b < launched, into host_of[b]: host h
 * runs host_servers[h] ranks after host h - 1's, the room (the ranks
 * past the launched ones) being the last host's; launched may be every
 * rank (the segment's table, hosts_off). For the backup table across
 * hosts (shm/backups.h, hpsi_backup_build_hosts). */
void hpsi_seg_launched_hosts(const uint32_t *host_servers, uint32_t nhosts, uint32_t launched, uint32_t *host_of);

/* The backup table a replicated job with room was launched with (what
 * hpsi_seg_create wrote; replica 1 of range r at bk[r * replicas]): from
 * the launch's owners (hpsi_seg_first_owners) and, across hosts, the
 * hosts of the ranks (hpsi_seg_server_hosts), not from the live table,
 * which a scale's copies change (runtime/server/recover.c). A launched
 * server sets up the ranges these name it for. HPS_ECONFIG when the job
 * has no replicas or no room. */
int hpsi_seg_launch_backups(const struct hpsi_seg *s, uint16_t *bk);

/* Key ranges move between server processes (hps scale --servers): a job
 * launched with room for more servers (--max-servers above -s), without
 * replicas. Its segment has the forward rings for the copies. */
static inline int hpsi_seg_movable(const struct hpsi_seg *s)
{
	return !s->hdr->replicas && s->hdr->launched_servers < s->hdr->nservers;
}

static inline const struct hpsi_range *hpsi_seg_ranges(const struct hpsi_seg *s)
{
	return (const struct hpsi_range *)(s->base + s->hdr->ranges_off);
}

/* Bytes of the dense array of a direct range: (last - first + 1) x width
 * floats; 0 when it overflows or there is none. */
static inline uint64_t hpsi_direct_bytes(const struct hpsi_range *r)
{
	uint64_t keys = r->last - r->first + 1, b;
	if (!r->direct_width || keys == 0 || __builtin_mul_overflow(keys, (uint64_t)r->direct_width * 4u, &b))
		return 0;
	return b;
}

#endif
