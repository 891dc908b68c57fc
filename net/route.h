/* Which server owns a key. With declared ranges, the range holding the key.
 * Otherwise the key space is split evenly after a bijective mix of the key,
 * so that any key set, contiguous ones included, spreads over all servers. */
#ifndef HPSI_ROUTE_H
#define HPSI_ROUTE_H

#include <stdint.h>

#include "shm/segment.h"

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

static inline uint32_t hpsi_route_key(const struct hpsi_seg *s, uint64_t key)
{
	uint32_t n = s->hdr->nservers;
	if (s->hdr->range_mode == HPSI_RANGE_HASH)
		return (uint32_t)(((unsigned __int128)hpsi_key_mix(key) * n) >> 64);
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

#endif
