/* A digest of the key ranges a server holds, logged when it stops
 * (HPS_LOG=info): one line per range, its keys and a hash of every record
 * (key, length, push count, bytes). Replicas of a range hold the same
 * records bit for bit, so their lines must match; tests compare them
 * across hosts (tests/test_cluster.c), where no process can read another
 * host's store. The hash is a sum over records, so the order in which two
 * stores keep their records (cells grow differently) does not matter. */
#include <string.h>

#include "net/route.h"
#include "runtime/common/log.h"
#include "runtime/server/serve.h"

static uint64_t record_hash(const struct hpsi_store_item *it)
{
	uint64_t h = hpsi_key_mix(it->key ^ ((uint64_t)it->len << 32 | it->steps));
	size_t i = 0;
	for (; i + 8 <= it->nbytes; i += 8) {
		uint64_t v;
		memcpy(&v, it->bytes + i, 8);
		h = hpsi_key_mix(h ^ v);
	}
	for (; i < it->nbytes; i++)
		h = hpsi_key_mix(h ^ it->bytes[i]);
	return h;
}

void hpsi_digest_log(struct server *sv)
{
	if (!hpsi_log_on(HPSI_LOG_INFO))
		return;
	for (uint32_t i = 0; i < sv->nranges; i++) {
		struct range_state *rs = &sv->ranges[i];
		if (!rs->store || !rs->synced)
			continue;
		struct hpsi_store_cursor cur = {0};
		struct hpsi_store_item it;
		uint64_t keys = 0, sum = 0;
		while (hpsi_store_next(rs->store, &cur, &it) == 0)
			keys++, sum += record_hash(&it);
		/* (ranges[i] is replica i of its range, except with room: server.c) */
		uint32_t idx = hpsi_seg_room(sv->seg) ? hpsi_replica_index(sv->seg, rs->id, sv->me) : i;
		if (idx == HPSI_NO_SERVER)
			continue; /* a copy a scale moved away, not dropped yet (move.c) */
		hpsi_info("server %u: key range %u (replica %u): %llu keys, digest %016llx", sv->me, rs->id, idx,
			  (unsigned long long)keys, (unsigned long long)sum);
	}
}
