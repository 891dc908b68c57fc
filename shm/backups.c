#include "shm/backups.h"

#include <stddef.h>

#include "hps/error.h"
#include "runtime/common/limits.h"

#define FREED UINT16_MAX /* an entry taken from its rank, not given yet */

_Static_assert(HPSI_MAX_NODES < FREED, "ranks and the freed mark fit an entry");

static int bounds_ok(uint32_t n, uint32_t K, uint32_t S)
{
	return K && K <= HPSI_MAX_REPLICAS && S >= K + 1 && S <= HPSI_MAX_NODES && n && n <= HPSI_MAX_NODES;
}

static int owners_ok(const uint16_t *owner, uint32_t n, uint32_t S)
{
	for (uint32_t r = 0; r < n; r++)
		if (owner[r] >= S)
			return 0;
	return 1;
}

/* Whether row r (its owner and its entries other than column skip) names
 * rank b. */
static int row_names(const uint16_t *owner, const uint16_t *table, uint32_t K, uint32_t r, uint32_t skip, uint32_t b)
{
	if (owner[r] == b)
		return 1;
	for (uint32_t i = 0; i < K; i++)
		if (i != skip && table[r * K + i] == b)
			return 1;
	return 0;
}

/* Whether rank b is on a host that row r (its owner and its entries other
 * than column skip) does not name yet; always with one host (host_of
 * NULL). */
static int row_apart(const uint16_t *owner, const uint16_t *table, uint32_t K, uint32_t r, uint32_t skip, uint32_t b,
		     const uint32_t *host_of)
{
	if (!host_of || host_of[owner[r]] == host_of[b])
		return !host_of;
	for (uint32_t i = 0; i < K; i++)
		if (i != skip && table[r * K + i] != FREED && host_of[table[r * K + i]] == host_of[b])
			return 0;
	return 1;
}

/* The share of rank b among S of the total backups: floor(total / S),
 * plus one for the first total mod S ranks. */
static int64_t share(uint32_t b, uint32_t total, uint32_t S)
{
	return total / S + (b < total % S);
}

/* Gives each FREED entry, ascending, the rank the row does not name that
 * is furthest below its share (the lowest of those), and counts it. One
 * exists: a row names its owner and at most K - 1 other ranks, and S >=
 * K + 1. Across hosts (host_of) a rank on a host the row does not name
 * comes first whatever the shares: a backup on the primary's host dies
 * with it when the host does (issue 11), which costs more than an uneven
 * share of the backups; the moves below keep that (an entry on a host of
 * its own moves only to another such rank). Then, since the rows that
 * come last may find only ranks at or above their share left (owner
 * tables come in blocks: a late block's owner cannot back itself up),
 * entries given here move from a rank above its share to one below whose
 * row does not name it, until none can: each
 * such move brings both nearer their share, so this ends. Entries kept
 * from before are never moved again (a rank above its share got there by
 * entries given here, kept ones are within it). */
static void fill(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t S, uint32_t *count,
		 const uint32_t *host_of)
{
	uint32_t total = n * K;
	unsigned char given[HPSI_MAX_NODES * HPSI_MAX_REPLICAS] = {0};
	for (uint32_t j = 0; j < total; j++) {
		if (table[j] != FREED)
			continue;
		uint32_t r = j / K, best = UINT32_MAX;
		int best_apart = 0;
		for (uint32_t b = 0; b < S; b++) {
			if (row_names(owner, table, K, r, j % K, b))
				continue;
			int apart = row_apart(owner, table, K, r, j % K, b, host_of);
			if (best == UINT32_MAX || apart > best_apart ||
			    (apart == best_apart &&
			     share(b, total, S) - count[b] > share(best, total, S) - count[best]))
				best = b, best_apart = apart;
		}
		table[j] = (uint16_t)best;
		count[best]++;
		given[j] = 1;
	}
	/* given entries first (a move they make costs nothing more), then any */
	for (int any = 0; any < 2; any++)
		for (int again = 1; again;) {
			again = 0;
			for (uint32_t j = 0; j < total; j++) {
				uint32_t o = table[j];
				if ((!any && !given[j]) || count[o] <= share(o, total, S))
					continue;
				int was_apart = row_apart(owner, table, K, j / K, j % K, o, host_of);
				for (uint32_t u = 0; u < S; u++)
					if (count[u] < share(u, total, S) && !row_names(owner, table, K, j / K, j % K, u) &&
					    row_apart(owner, table, K, j / K, j % K, u, host_of) >= was_apart) {
						table[j] = (uint16_t)u;
						count[o]--, count[u]++;
						again = 1;
						break;
					}
			}
		}
}

int hpsi_backup_build_hosts(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t S,
			    const uint32_t *host_of)
{
	if (!bounds_ok(n, K, S) || !owners_ok(owner, n, S))
		return HPS_ECONFIG;
	uint32_t count[HPSI_MAX_NODES] = {0};
	for (uint32_t j = 0; j < n * K; j++)
		table[j] = FREED;
	fill(owner, table, n, K, S, count, host_of);
	return 0;
}

int hpsi_backup_build(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t S)
{
	return hpsi_backup_build_hosts(owner, table, n, K, S, NULL);
}

/* How many hosts the ranks below S are on. */
static uint32_t hosts_spanned(uint32_t S, const uint32_t *host_of)
{
	uint32_t hosts = 0;
	for (uint32_t b = 0; b < S; b++) {
		int seen = 0;
		for (uint32_t c = 0; c < b && !seen; c++)
			seen = host_of[c] == host_of[b];
		hosts += !seen;
	}
	return hosts;
}

/* Whether entry i of row r (not FREED) is on the host of the row's
 * owner or of an entry in an earlier column. */
static int host_named_before(const uint16_t *owner, const uint16_t *table, uint32_t K, uint32_t r, uint32_t i,
			     const uint32_t *host_of)
{
	uint32_t h = host_of[table[r * K + i]];
	if (host_of[owner[r]] == h)
		return 1;
	for (uint32_t k = 0; k < i; k++)
		if (table[r * K + k] != FREED && host_of[table[r * K + k]] == h)
			return 1;
	return 0;
}

/* Across hosts: frees the fewest entries of row r whose hosts the row
 * names already (host_named_before), last columns first, so that the
 * row's hosts and its freed entries reach `need` (fill gives each freed
 * entry a rank on a host the row does not name while one runs). Entries
 * freed before (a leaving rank, ...) count. Freeing such an entry keeps
 * the hosts the row names, so the others stay as they were. */
static void free_near(const uint16_t *owner, uint16_t *table, uint32_t K, uint32_t r, uint32_t need,
		      const uint32_t *host_of)
{
	uint32_t hosts = 1, freed = 0;
	for (uint32_t i = 0; i < K; i++) {
		if (table[r * K + i] == FREED)
			freed++;
		else
			hosts += !host_named_before(owner, table, K, r, i, host_of);
	}
	for (uint32_t i = K; i-- > 0 && hosts + freed < need;)
		if (table[r * K + i] != FREED && host_named_before(owner, table, K, r, i, host_of))
			table[r * K + i] = FREED, freed++;
}

int hpsi_backup_rebalance_hosts(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t from_S,
				uint32_t to_S, const uint32_t *host_of, uint32_t *moved)
{
	if (moved)
		*moved = 0;
	if (!bounds_ok(n, K, from_S) || !bounds_ok(n, K, to_S) || !owners_ok(owner, n, to_S))
		return HPS_ECONFIG;
	for (uint32_t j = 0; j < n * K; j++)
		if (table[j] >= from_S)
			return HPS_ECONFIG;
	uint32_t total = n * K, count[HPSI_MAX_NODES] = {0};
	uint16_t before[HPSI_MAX_NODES * HPSI_MAX_REPLICAS];
	for (uint32_t j = 0; j < total; j++)
		before[j] = table[j];
	/* Entries that cannot stay: a leaving rank, the row's primary, or a
	 * rank named earlier in the row (the first one stays); across hosts
	 * also as few entries on hosts the row names already as let it reach
	 * the hosts it can (free_near: a scale that starts the first rank of
	 * a host, or that made a range's primary its backup's host mate). */
	uint32_t need = host_of ? hosts_spanned(to_S, host_of) : 1;
	need = need < K + 1 ? need : K + 1;
	for (uint32_t r = 0; r < n; r++) {
		for (uint32_t i = 0; i < K; i++) {
			uint16_t *e = &table[r * K + i];
			int dup = 0;
			for (uint32_t k = 0; k < i; k++)
				dup |= table[r * K + k] == *e;
			if (*e >= to_S || *e == owner[r] || dup)
				*e = FREED;
		}
		if (host_of)
			free_near(owner, table, K, r, need, host_of);
		for (uint32_t i = 0; i < K; i++)
			if (table[r * K + i] != FREED)
				count[table[r * K + i]]++;
	}
	/* The highest entries of ranks above their share of all backups.
	 * Not across hosts: there a rank may be above it because only its
	 * host is apart from the rows it backs up, and which of its entries
	 * can go elsewhere depends on the rows, so fill's repair pass moves
	 * them (only where they stay apart) instead; freeing the highest here
	 * moved twice what the walks of the test need. */
	for (uint32_t j = total; !host_of && j-- > 0;) {
		uint16_t b = table[j];
		if (b != FREED && count[b] > share(b, total, to_S))
			count[b]--, table[j] = FREED;
	}
	fill(owner, table, n, K, to_S, count, host_of);
	for (uint32_t j = 0; moved && j < total; j++) /* a freed entry may get its rank back */
		*moved += table[j] != before[j];
	return 0;
}

int hpsi_backup_rebalance(const uint16_t *owner, uint16_t *table, uint32_t n, uint32_t K, uint32_t from_S,
			  uint32_t to_S, uint32_t *moved)
{
	return hpsi_backup_rebalance_hosts(owner, table, n, K, from_S, to_S, NULL, moved);
}
