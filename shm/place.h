/* Where the replicas of each key range are (HPS_REPLICAS): the placement
 * order π of the servers.
 *
 * Replica i of key range r (0: the primary, server r itself) is server
 * π[(pos[r] + i) mod S], pos being π's inverse. π lays the servers out
 * host by host, the host with most servers first, in rows as wide as that
 * host, and reads the grid column by column. A host then fills at most one
 * cell per column, and its cells in neighbouring columns sit in one row,
 * so two of its servers are at least a column's length apart in π (and
 * around its end): every K + 1 consecutive positions are on K + 1
 * different hosts exactly when S >= (K + 1) x the biggest host's servers
 * (hpsi_place_check); no order can do with fewer, as each host needs K
 * others after each of its servers.
 *
 * With one host π is the identity, the placement replication always had
 * on one host (backups are the servers after the primary).
 *
 * Every host of a job computes π from the same table (the servers per
 * host, in the order the scheduler ranks hosts: net/bridge_main.c), so
 * all agree on it; the segment keeps it (hpsi_seg_place, net/route.h). */
#ifndef HPSI_PLACE_H
#define HPSI_PLACE_H

#include <stddef.h>
#include <stdint.h>

/* Fills pi[0..S) for S servers on nhosts hosts, host h running
 * host_servers[h] of them, numbered host after host in that order (the
 * scheduler's ranks); nhosts 0: one host, the identity. HPS_ECONFIG when
 * the counts do not add up to S or S is 0 or above HPSI_MAX_NODES. */
int hpsi_place_build(uint32_t S, const uint32_t *host_servers, uint32_t nhosts, uint32_t *pi);

/* 0 when K backups per key range can be on hosts other than the
 * primary's and each other's (S >= (K + 1) x the biggest host), or when
 * fewer than two hosts run servers (then every replica shares the one
 * host, as on one host); else HPS_ECONFIG with *host the biggest host (the
 * first of equals). */
int hpsi_place_check(uint32_t S, const uint32_t *host_servers, uint32_t nhosts, uint32_t K, uint32_t *host);

/* The one-line reason of a refusal by hpsi_place_check, naming the host. */
void hpsi_place_why(char *out, size_t cap, const char *host, uint32_t host_servers, uint32_t S, uint32_t K);

#endif
