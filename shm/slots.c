#include "shm/slots.h"

#include <stddef.h>

#include "hps/error.h"
#include "runtime/common/limits.h"

/* A slot that a rebalance took from its server and has not given yet. */
#define FREED UINT16_MAX

_Static_assert(HPSI_MAX_NODES < FREED, "server ids and the freed mark fit a table entry");
_Static_assert(HPSI_SLOTS >= HPSI_MAX_NODES, "every server of the largest job gets a slot");

int hpsi_slots_check(const uint16_t *table, uint32_t S)
{
	for (uint32_t j = 0; j < HPSI_SLOTS; j++)
		if (table[j] >= S)
			return HPS_EPROTO;
	return 0;
}

/* Shares of n entries among S holders: floor(n / S), plus one for the
 * first n mod S (hpsi_slots_target with n = HPSI_SLOTS). */
static uint32_t share_target(uint32_t i, uint32_t n, uint32_t S)
{
	return n / S + (i < n % S);
}

int hpsi_share_rebalance(uint16_t *table, uint32_t n, uint32_t from_S, uint32_t to_S, uint32_t *moved)
{
	if (moved)
		*moved = 0;
	if (from_S == 0 || to_S == 0 || from_S > HPSI_MAX_NODES || to_S > HPSI_MAX_NODES || n == 0 || n > HPSI_SLOTS)
		return HPS_ECONFIG;
	for (uint32_t j = 0; j < n; j++)
		if (table[j] >= from_S)
			return HPS_ECONFIG;
	uint32_t count[HPSI_MAX_NODES] = {0}, excess[HPSI_MAX_NODES] = {0}, deficit[HPSI_MAX_NODES] = {0};
	for (uint32_t j = 0; j < n; j++)
		count[table[j]]++;
	for (uint32_t i = 0; i < to_S; i++) {
		uint32_t t = share_target(i, n, to_S);
		if (count[i] > t)
			excess[i] = count[i] - t;
		else
			deficit[i] = t - count[i];
	}
	/* Free every entry of a removed holder and the highest entries of a
	 * holder above its target: the ones scanned first from the top. */
	uint32_t freed = 0;
	for (uint32_t j = n; j-- > 0;) {
		uint32_t o = table[j];
		if (o >= to_S) {
			table[j] = FREED, freed++;
		} else if (excess[o]) {
			excess[o]--;
			table[j] = FREED, freed++;
		}
	}
	/* The freed entries, ascending, fill the holders below target in id
	 * order. Both sides count n - (entries kept), so they match; with
	 * fewer entries than holders the last holders get none. */
	uint32_t r = 0;
	for (uint32_t j = 0; j < n; j++) {
		if (table[j] != FREED)
			continue;
		while (!deficit[r])
			r++;
		deficit[r]--;
		table[j] = (uint16_t)r;
	}
	if (moved)
		*moved = freed;
	return 0;
}

int hpsi_slots_rebalance(uint16_t *table, uint32_t from_S, uint32_t to_S, uint32_t *moved)
{
	if (from_S && hpsi_slots_check(table, from_S))
		return HPS_ECONFIG;
	return hpsi_share_rebalance(table, HPSI_SLOTS, from_S, to_S, moved);
}

int hpsi_share_build(uint16_t *table, uint32_t n, uint32_t S)
{
	if (S == 0 || S > HPSI_MAX_NODES || n == 0 || n > HPSI_SLOTS)
		return HPS_ECONFIG;
	for (uint32_t j = 0; j < n; j++)
		table[j] = 0;
	/* one holder at a time: from s - 1 holders, each already at its
	 * target for s - 1, which is never below its target for s, so a step
	 * only hands the new holder its share */
	for (uint32_t s = 2; s <= S; s++)
		hpsi_share_rebalance(table, n, s - 1, s, NULL);
	return 0;
}

int hpsi_slots_build(uint16_t *table, uint32_t S)
{
	return hpsi_share_build(table, HPSI_SLOTS, S);
}
