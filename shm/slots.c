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

int hpsi_slots_rebalance(uint16_t *table, uint32_t from_S, uint32_t to_S, uint32_t *moved)
{
	if (moved)
		*moved = 0;
	if (from_S == 0 || to_S == 0 || from_S > HPSI_MAX_NODES || to_S > HPSI_MAX_NODES ||
	    hpsi_slots_check(table, from_S))
		return HPS_ECONFIG;
	uint32_t count[HPSI_MAX_NODES] = {0}, excess[HPSI_MAX_NODES] = {0}, deficit[HPSI_MAX_NODES] = {0};
	for (uint32_t j = 0; j < HPSI_SLOTS; j++)
		count[table[j]]++;
	for (uint32_t i = 0; i < to_S; i++) {
		uint32_t t = hpsi_slots_target(i, to_S);
		if (count[i] > t)
			excess[i] = count[i] - t;
		else
			deficit[i] = t - count[i];
	}
	/* Free every slot of a removed server and the highest slots of a
	 * server above its target: the ones scanned first from the top. */
	uint32_t freed = 0;
	for (uint32_t j = HPSI_SLOTS; j-- > 0;) {
		uint32_t o = table[j];
		if (o >= to_S) {
			table[j] = FREED, freed++;
		} else if (excess[o]) {
			excess[o]--;
			table[j] = FREED, freed++;
		}
	}
	/* The freed slots, ascending, fill the servers below target in id
	 * order. Both sides count SLOTS - (slots kept), so they match. */
	uint32_t r = 0;
	for (uint32_t j = 0; j < HPSI_SLOTS; j++) {
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

int hpsi_slots_build(uint16_t *table, uint32_t S)
{
	if (S == 0 || S > HPSI_MAX_NODES)
		return HPS_ECONFIG;
	for (uint32_t j = 0; j < HPSI_SLOTS; j++)
		table[j] = 0;
	/* one server at a time: from s - 1 servers, each already at its
	 * target for s - 1, which is never below its target for s, so a step
	 * only hands the new server its share */
	for (uint32_t s = 2; s <= S; s++)
		hpsi_slots_rebalance(table, s - 1, s, NULL);
	return 0;
}
