/* Which server owns a key. With declared ranges, the range holding the key.
 * Otherwise the server the slot table gives the key's slot (shm/slots.h):
 * slots are the top bits of a bijective mix of the key, so that any key
 * set, contiguous ones included, spreads over all servers, and a change of
 * the number of servers moves only the slots that change hands. */
#ifndef HPSI_ROUTE_H
#define HPSI_ROUTE_H

#include <stdint.h>

#include "hps/error.h"
#include "shm/segment.h"
#include "shm/slots.h"

#define HPSI_NO_SERVER UINT32_MAX

/* splitmix64's finalizer: invertible, so distinct keys stay distinct. */
static inline uint64_t hpsi_key_mix(uint64_t k)
{
	k ^= k >> 30;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 27;
	k *= 0x94d049bb133111ebull;
	k ^= k >> 31;
	return k;
}

/* The hash slot of a key: the top bits of its mix. */
static inline uint32_t hpsi_key_slot(uint64_t key)
{
	return (uint32_t)(hpsi_key_mix(key) >> (64 - HPSI_SLOT_BITS));
}

static inline uint32_t hpsi_route_key(const struct hpsi_seg *s, uint64_t key)
{
	if (s->hdr->range_mode == HPSI_RANGE_HASH) /* a shift and one load from an 8 KiB table */
		return hpsi_seg_slots(s)[hpsi_key_slot(key)];
	uint32_t n = s->hdr->nservers;
	const struct hpsi_range *r = hpsi_seg_ranges(s);
	uint32_t lo = 0, hi = n;
	while (lo < hi) { /* first range whose last >= key */
		uint32_t mid = (lo + hi) / 2;
		if (r[mid].last < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && r[lo].first <= key ? lo : HPSI_NO_SERVER;
}

/* Replica placement, the one place that maps key ranges and replica
 * indices to servers (shm/place.h): the server j positions after srv in
 * the placement order π (j < 0: before; |j| < S). With one host π is the
 * identity: the servers that follow srv by rank. */
static inline uint32_t hpsi_place_step(const struct hpsi_seg *s, uint32_t srv, int32_t j)
{
	uint32_t S = s->hdr->nservers;
	const uint32_t *pi = hpsi_seg_place(s), *pos = pi + S;
	int64_t at = (int64_t)pos[srv] + j;
	at += at < 0 ? (int64_t)S : at >= (int64_t)S ? -(int64_t)S : 0;
	return pi[at];
}

/* Server i (0 = primary, 1..K = backups) of key range r: replicas are
 * placed on the servers that follow the range's own one in π; in a job
 * with room for servers (hpsi_seg_room) by its owner table (i = 0) and
 * its backup table (shm/backups.h), written at launch; a scale stores
 * an entry with release once the copy that makes it true was published
 * (runtime/server/recover.c, room_handed): acquire pairs with it. */
static inline uint32_t hpsi_replica(const struct hpsi_seg *s, uint32_t r, uint32_t i)
{
	if (hpsi_seg_room(s))
		return i ? atomic_load_explicit(&hpsi_seg_backups(s)[r * s->hdr->replicas + i - 1], memory_order_acquire)
			 : atomic_load_explicit(&hpsi_seg_owner(s)[r], memory_order_acquire);
	return hpsi_place_step(s, r, (int32_t)i);
}

/* The rank a scale's plan makes replica i >= 1 of key range r (the
 * backup table's plan half); acquire as hpsi_range_want. */
static inline uint32_t hpsi_backup_want(const struct hpsi_seg *s, uint32_t r, uint32_t i)
{
	return atomic_load_explicit(&hpsi_seg_backup_plan(s)[(size_t)r * s->hdr->replicas + i - 1], memory_order_acquire);
}

/* Which replica of range r this server is, or HPSI_NO_SERVER (also for
 * ids out of range: a message's sender is checked here). */
static inline uint32_t hpsi_replica_index(const struct hpsi_seg *s, uint32_t r, uint32_t srv)
{
	uint32_t S = s->hdr->nservers;
	const uint32_t *pos = hpsi_seg_place(s) + S;
	if (r >= S || srv >= S)
		return HPSI_NO_SERVER;
	if (hpsi_seg_room(s)) { /* the K + 1 replicas are distinct ranks */
		for (uint32_t i = 0; i <= s->hdr->replicas; i++)
			if (hpsi_replica(s, r, i) == srv)
				return i;
		return HPSI_NO_SERVER;
	}
	uint32_t i = pos[srv] >= pos[r] ? pos[srv] - pos[r] : pos[srv] + S - pos[r];
	return i <= s->hdr->replicas ? i : HPSI_NO_SERVER;
}

/* The key range whose replica i server srv is (i = 0: its own). */
static inline uint32_t hpsi_replica_range(const struct hpsi_seg *s, uint32_t srv, uint32_t i)
{
	return hpsi_place_step(s, srv, -(int32_t)i);
}

static inline int hpsi_server_gone(const struct hpsi_seg *s, uint32_t srv)
{
	/* acquire pairs with the state's release (struct hpsi_node) */
	uint32_t st = atomic_load_explicit(&hpsi_seg_node(s, srv)->state, memory_order_acquire);
	return st == HPSI_NODE_DEAD || st == HPSI_NODE_CLOSED || st == HPSI_NODE_JOINING;
}

/* Whether server srv, replica i of its range, lacks a whole copy of it
 * (a replacement still copying it: runtime/server/recover.c). */
static inline int hpsi_replica_lacks(const struct hpsi_seg *s, uint32_t srv, uint32_t i)
{
	/* acquire pairs with the release that clears the bit at the copy's end */
	return (atomic_load_explicit(&hpsi_seg_node(s, srv)->lacking, memory_order_acquire) >> i) & 1;
}

/* The server rank the owner table names for key range r: r itself
 * unless the job has room for more servers (--max-servers), where ranges
 * move between server processes (runtime/server/recover.c). acquire pairs
 * with the release that stores a new owner at a range's hand-back, so a
 * worker that sees the new owner sees its state (JOINING moved to ALIVE
 * before it). */
static inline uint32_t hpsi_range_owner(const struct hpsi_seg *s, uint32_t r)
{
	return atomic_load_explicit(&hpsi_seg_owner(s)[r], memory_order_acquire);
}

/* The rank the plan of a scale moves key range r to (hpsi_seg_want);
 * its owner when no move is planned. acquire: read after the plan's
 * moves_seq was acquired, or polled. */
static inline uint32_t hpsi_range_want(const struct hpsi_seg *s, uint32_t r)
{
	return atomic_load_explicit(&hpsi_seg_want(s)[r], memory_order_acquire);
}

/* The server processes serving key ranges: the ranks the owner table
 * names (hps_num_servers). A scale changes it at each hand-back. */
static inline uint32_t hpsi_servers_current(const struct hpsi_seg *s)
{
	unsigned char seen[HPSI_MAX_NODES] = {0};
	uint32_t n = 0;
	for (uint32_t r = 0; r < s->hdr->nservers; r++) {
		uint32_t o = hpsi_range_owner(s, r);
		n += !seen[o];
		seen[o] = 1;
	}
	return n;
}

/* Whether server srv, of another host and dead, still has its key
 * ranges handed on by that host's bridge: its FENCE has not come, so its
 * forwards may still be on their way to local backups and the bridge may
 * still stand at the rings of its ranges (net/bridge_failover.c). */
static inline int hpsi_server_unfenced(const struct hpsi_seg *s, uint32_t srv)
{
	if (!s->hdr->bridged || hpsi_node_local(s, srv))
		return 0;
	/* acquire pairs with the bridge's release of fenced (struct hpsi_node) */
	return atomic_load_explicit(&hpsi_seg_node(s, srv)->state, memory_order_acquire) == HPSI_NODE_DEAD &&
	       !atomic_load_explicit(&hpsi_seg_node(s, srv)->fenced, memory_order_acquire);
}

/* The first replica of range r still running and holding it whole (a
 * replacement counts once it has its copy), or HPSI_NO_SERVER. */
static inline uint32_t hpsi_range_first_live(const struct hpsi_seg *s, uint32_t r)
{
	for (uint32_t i = 0; i <= s->hdr->replicas; i++) {
		uint32_t srv = hpsi_replica(s, r, i);
		if (!hpsi_server_gone(s, srv) && !hpsi_replica_lacks(s, srv, i))
			return srv;
	}
	return HPSI_NO_SERVER;
}

/* The server serving range r now: its first replica still running and
 * holding it whole, or HPSI_NO_SERVER when every replica is gone. Node
 * states only move forward (ALIVE to CLOSED or DEAD), so once a worker
 * sees a replica gone the replica after it sees the same and takes the
 * range over (runtime/server/replica.c). Across hosts, a dead replica of
 * another host before it whose FENCE has not come stands for the range
 * meanwhile (hpsi_server_unfenced): its node is this host's bridge, which
 * still holds the range's rings, so that is whom to wake. */
static inline uint32_t hpsi_range_primary(const struct hpsi_seg *s, uint32_t r)
{
	if (!s->hdr->replicas) { /* its owner, while it runs */
		uint32_t srv = hpsi_range_owner(s, r);
		return hpsi_server_gone(s, srv) ? HPSI_NO_SERVER : srv;
	}
	uint32_t live = hpsi_range_first_live(s, r);
	if (live == HPSI_NO_SERVER || !s->hdr->bridged)
		return live;
	for (uint32_t i = 0; hpsi_replica(s, r, i) != live; i++)
		if (hpsi_server_unfenced(s, hpsi_replica(s, r, i)))
			return hpsi_replica(s, r, i);
	return live;
}

/* 0 while key range r has a server, else why not: HPS_EPEERDEAD when one
 * of its replicas died, HPS_ECLOSED when they all closed. */
static inline int hpsi_range_gone(const struct hpsi_seg *s, uint32_t r)
{
	if (hpsi_range_primary(s, r) != HPSI_NO_SERVER)
		return 0;
	if (!s->hdr->replicas) {
		uint32_t st = atomic_load_explicit(&hpsi_seg_node(s, hpsi_range_owner(s, r))->state, memory_order_acquire);
		return st == HPSI_NODE_DEAD || st == HPSI_NODE_JOINING ? HPS_EPEERDEAD : HPS_ECLOSED;
	}
	for (uint32_t i = 0; i <= s->hdr->replicas; i++) {
		/* acquire pairs with the CAS in hpsi_node_mark_dead; only picks the
		 * code (a replacement still joining stands for a dead server) */
		uint32_t st = atomic_load_explicit(&hpsi_seg_node(s, hpsi_replica(s, r, i))->state, memory_order_acquire);
		if (st == HPSI_NODE_DEAD || st == HPSI_NODE_JOINING)
			return HPS_EPEERDEAD;
	}
	return HPS_ECLOSED;
}

#endif
