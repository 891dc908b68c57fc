/* Cutting declared key ranges into movable ones (key_split.h). */
#include "runtime/common/key_split.h"

#include "hps/error.h"
#include "runtime/common/log.h"

int hpsi_key_split(const struct hpsi_key_span *declared, uint32_t S, uint32_t M, struct hpsi_key_span *out)
{
	if (S < 1 || M < S || M > HPSI_MAX_NODES)
		return HPS_ECONFIG;
	uint32_t at = 0;
	for (uint32_t i = 0; i < S; i++) {
		uint64_t first = declared[i].first, span = declared[i].last - first; /* keys - 1: 0..2^64 - 1 */
		uint32_t k = hpsi_key_split_count(i, S, M);
		if (declared[i].last < first) {
			hpsi_error("key ranges must be ascending and disjoint (HPS_KEY_RANGES), range %u is not", i);
			return HPS_ECONFIG;
		}
		if (span < k - 1) {
			hpsi_error("HPS_KEY_RANGES with HPS_MAX_SERVERS=%u: range %u (%llu-%llu) is cut into %u key ranges that can move between servers but holds fewer keys; widen it or lower HPS_MAX_SERVERS",
				   M, i, (unsigned long long)first, (unsigned long long)declared[i].last, k);
			return HPS_ECONFIG;
		}
		/* keys = span + 1 = k * base + extra, extra < k, without
		 * computing span + 1 (it overflows for the whole key space): the
		 * first `extra` pieces are one key wider */
		uint64_t base = span / k, extra = span % k + 1;
		if (extra == k)
			base++, extra = 0;
		for (uint32_t j = 0; j < k; j++, at++) {
			uint64_t width = base + (j < extra); /* >= 1: span >= k - 1 */
			out[at].first = first;
			out[at].last = first + (width - 1);
			first = out[at].last + 1; /* wraps only after the last piece of 0-2^64-1 */
		}
	}
	return 0;
}
