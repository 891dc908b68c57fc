#include "shm/place.h"

#include <stdio.h>

#include "hps/error.h"
#include "runtime/common/limits.h"

/* The biggest host (the first of equals) and its servers; hosts with
 * servers in *used. */
static uint32_t biggest(const uint32_t *host_servers, uint32_t nhosts, uint32_t *host, uint32_t *used)
{
	uint32_t m = 0;
	*host = 0, *used = 0;
	for (uint32_t h = 0; h < nhosts; h++) {
		*used += host_servers[h] > 0;
		if (host_servers[h] > m)
			m = host_servers[h], *host = h;
	}
	return m;
}

int hpsi_place_build(uint32_t S, const uint32_t *host_servers, uint32_t nhosts, uint32_t *pi)
{
	if (S == 0 || S > HPSI_MAX_NODES || nhosts > HPSI_MAX_NODES)
		return HPS_ECONFIG;
	if (nhosts == 0) {
		for (uint32_t p = 0; p < S; p++)
			pi[p] = p;
		return 0;
	}
	uint32_t first[HPSI_MAX_NODES], order[HPSI_MAX_NODES], grid[HPSI_MAX_NODES];
	uint64_t sum = 0;
	for (uint32_t h = 0; h < nhosts; h++) {
		first[h] = (uint32_t)sum; /* < HPSI_MAX_NODES: checked below before use */
		sum += host_servers[h];
		order[h] = h;
	}
	if (sum != S)
		return HPS_ECONFIG;
	/* biggest host first; equals keep their order (insertion sort: stable,
	 * and nhosts is small) */
	for (uint32_t a = 1; a < nhosts; a++)
		for (uint32_t b = a; b > 0 && host_servers[order[b - 1]] < host_servers[order[b]]; b--) {
			uint32_t t = order[b];
			order[b] = order[b - 1], order[b - 1] = t;
		}
	uint32_t width = host_servers[order[0]], cells = 0;
	for (uint32_t k = 0; k < nhosts; k++)
		for (uint32_t s = 0; s < host_servers[order[k]]; s++)
			grid[cells++] = first[order[k]] + s;
	/* column by column: cell (row, col) is grid[row * width + col] */
	uint32_t p = 0;
	for (uint32_t col = 0; col < width; col++)
		for (uint32_t at = col; at < S; at += width)
			pi[p++] = grid[at];
	return 0;
}

int hpsi_place_check(uint32_t S, const uint32_t *host_servers, uint32_t nhosts, uint32_t K, uint32_t *host)
{
	uint32_t used, m = biggest(host_servers, nhosts, host, &used);
	return K == 0 || used < 2 || (uint64_t)(K + 1) * m <= S ? 0 : HPS_ECONFIG;
}

void hpsi_place_why(char *out, size_t cap, const char *host, uint32_t host_servers, uint32_t S, uint32_t K)
{
	snprintf(out, cap,
		 "HPS_REPLICAS=%u: host %s runs %u of the job's %u servers, but the %u replicas of each key range must be on %u different hosts, which needs at least %u x %u = %u servers; run more servers on other hosts or fewer on %s",
		 K, host, host_servers, S, K + 1, K + 1, K + 1, host_servers, (K + 1) * host_servers, host);
}
