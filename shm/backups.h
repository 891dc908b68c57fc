/* Which servers back up each key range of a replicated job with room for
 * more servers (--replicas K with --max-servers M; issue 12, plan step 2
 * in docs/ARCHITECTURE.md, "Replicated jobs with room").
 *
 * A backup table holds, for each of n key ranges, K server ranks:
 * table[r * K + i] is replica i + 1 of range r (replica 0, the primary, is
 * the owner table's entry, shm/slots.h hpsi_share_rebalance). A range's
 * replicas must be K + 1 distinct ranks, so that one death never takes
 * two copies: that is why a replicated job never runs on fewer than K + 1
 * servers.
 *
 * The owner table moves first (hpsi_share_rebalance); then
 * hpsi_backup_rebalance moves only the backups that must move, as the
 * owner table's rebalance does: an entry naming a leaving rank, or the
 * range's (new) primary, or a rank already named earlier in the row; then
 * the highest entries of ranks above their share of the n * K backups.
 * Each freed entry goes to the rank furthest below its share that the
 * row does not name yet; then, where late rows found only ranks at their
 * share left (a block of ranges owned by one rank cannot be backed up by
 * it), entries move from ranks above their share to ranks below that
 * their row does not name, those given in this call first. Every rank
 * ends within one of its share of the n * K backups (floor or ceil of
 * n * K / S), and the moves stay within 1% of what any balanced table
 * needs (tests/test_slots.c). Every move of a backup is a copy of a whole
 * range (recover.c), so keeping entries is what keeps a scale cheap. */
#ifndef HPSI_BACKUPS_H
#define HPSI_BACKUPS_H

#include <stdint.h>

/* Fills table[0 .. n * K) for the owner table owner[0 .. n) of S ranks,
 * as a rebalance in which every entry is free (for -s 2 --max-servers 4
 * --replicas 1, owners 0,1,0,1: backups 1,0,1,0). HPS_ECONFIG when K is
 * 0 or above HPSI_MAX_REPLICAS, S < K + 1 or above HPSI_MAX_NODES, n is 0
 * or above HPSI_MAX_NODES, or an owner is not below S. */
int hpsi_backup_build(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t S);

/* The same for a job across hosts: host_of[b] the host of rank b < S
 * (NULL: one host). Each entry goes first to a rank on a host its row
 * does not name yet, then by the shares, so a range's backups are on
 * other hosts than its primary wherever the ranks allow it (two hosts
 * with servers are enough for K = 1); ranks then stay within one of
 * their share only where the hosts allow it. */
int hpsi_backup_build_hosts(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t S,
			    const uint32_t *host_of);

/* Turns a backup table of from_S ranks (every entry below from_S) into
 * one of to_S ranks for the new owner table owner (every entry below
 * to_S), as above. Afterwards every row's K entries and its owner are
 * K + 1 distinct ranks below to_S. *moved (may be NULL): entries that
 * changed. HPS_ECONFIG (the table unchanged) on the bounds of
 * hpsi_backup_build for both counts, or an entry out of its range. */
int hpsi_backup_rebalance(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t from_S,
			  uint32_t to_S, uint32_t *moved);

/* The same for a job across hosts: host_of[b] the host of rank b <
 * max(from_S, to_S) (NULL: one host, hpsi_backup_rebalance). An entry on
 * a host its row names already (the primary's, an earlier entry's) must
 * move too where a rank below to_S on another host exists, and freed
 * entries go as in hpsi_backup_build_hosts: apart first, then by the
 * shares. So after it each row's replicas are on min(K + 1, hosts with
 * ranks below to_S) hosts; ranks stay within one of their share only
 * where the hosts allow it (two hosts of 1 and 3 servers: the first backs
 * up the three quarters of the ranges the other three own). */
int hpsi_backup_rebalance_hosts(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t from_S,
				uint32_t to_S, const uint32_t *host_of, uint32_t *moved);

#endif
