/* Which server holds each hash slot: the placement of hashed keys
 * (HPSI_RANGE_HASH).
 *
 * A key's slot is the top HPSI_SLOT_BITS bits of its mix (net/route.h,
 * hpsi_key_slot); a table of HPSI_SLOTS entries maps slots to servers.
 * Keys move between servers only as whole slots, so changing the number of
 * servers moves the keys of the slots that change hands and no others
 * (with the even split mix(key) * S >> 64 it replaces, going from S to
 * S + 1 servers moved half of all keys, whatever S, where the new server
 * needs only 1/(S + 1) of them).
 *
 * The table of a job with S servers is hpsi_slots_build(S): grown from one
 * server, each step from s - 1 to s servers giving the new server its
 * share, taken from the servers above theirs. It depends on S alone, so
 * every host of a job and every run of it lays out the same table, and
 * build(S + 1) differs from build(S) in exactly the new server's slots,
 * about 1/(S + 1) of them. Every server holds its target share,
 * hpsi_slots_target: floor or ceil of HPSI_SLOTS / S.
 *
 * hpsi_slots_rebalance moves any table to another number of servers with
 * the fewest slot moves that reach those shares; it is how later work
 * (moving ranges while serving, `hps scale`) computes the table it
 * migrates to. */
#ifndef HPSI_SLOTS_H
#define HPSI_SLOTS_H

#include <stdint.h>

/* 4096 slots: the table is 8 KiB (it stays in cache on the hot path),
 * and the largest job (HPSI_MAX_NODES servers) still gives each server
 * 16, so shares differ by at most 1/16 of a share. */
#define HPSI_SLOT_BITS 12
#define HPSI_SLOTS (1u << HPSI_SLOT_BITS)

/* The slots server i of S holds in a balanced table: floor(SLOTS / S),
 * plus one for the first SLOTS mod S servers. */
static inline uint32_t hpsi_slots_target(uint32_t i, uint32_t S)
{
	return HPSI_SLOTS / S + (i < HPSI_SLOTS % S);
}

/* Fills table[0..HPSI_SLOTS) for S servers (see above). HPS_ECONFIG when
 * S is 0 or above HPSI_MAX_NODES. */
int hpsi_slots_build(uint16_t *table, uint32_t S);

/* Turns a table of from_S servers (every entry below from_S) into one of
 * to_S (either more or fewer) where server i holds hpsi_slots_target(i,
 * to_S) slots, moving only slots that must move: every slot of a server
 * at or above to_S, and the highest slots of a server above its target;
 * the freed slots go, in ascending order, to the servers below their
 * target, lowest server first, each up to its target. Deterministic.
 * From build(S) to S + 1 it gives build(S + 1); from build(S) to S - 1 it
 * moves exactly server S - 1's slots, though not always to where build(S -
 * 1) has them (which server gave a slot is not in the table), so a job
 * that scaled keeps its current table rather than recomputing it from S.
 * *moved (may be NULL): slots that changed server. HPS_ECONFIG when a
 * count is 0 or above HPSI_MAX_NODES, or an entry is not below from_S
 * (the table is then unchanged). */
int hpsi_slots_rebalance(uint16_t *table, uint32_t from_S, uint32_t to_S, uint32_t *moved);

/* The same two on any table of n entries (1..HPSI_SLOTS) shared among S
 * holders, holder i's target floor(n / S) plus one for the first n mod S
 * (hpsi_slots_* is n = HPSI_SLOTS). Used for the owner table of key
 * ranges (--max-servers, shm/segment.h): ranges move between server
 * processes as slots move between ranges, only those that must. */
int hpsi_share_rebalance(uint16_t *table, uint32_t n, uint32_t from_S, uint32_t to_S, uint32_t *moved);
int hpsi_share_build(uint16_t *table, uint32_t n, uint32_t S);

/* 0 when every entry is below S, else HPS_EPROTO (a damaged segment). */
int hpsi_slots_check(const uint16_t *table, uint32_t S);

#endif
