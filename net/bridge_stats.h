/* The bridge's counters per peer host (shm/counters.h): the bridge's one
 * thread is their only writer. */
#ifndef HPSI_BRIDGE_STATS_H
#define HPSI_BRIDGE_STATS_H

#include "net/bridge.h"

static inline struct hpsi_peer_counters *hpsi_bstat_peer(struct hpsi_bridge *b, uint32_t host)
{
	return &hpsi_seg_bridge_counters(&b->seg)->peer[host];
}

/* A ZeroMQ message of `bytes` went to `host`. */
static inline void hpsi_bstat_sent(struct hpsi_bridge *b, uint32_t host, uint64_t bytes)
{
	struct hpsi_peer_counters *c = hpsi_bstat_peer(b, host);
	hpsi_stat_add(&c->msgs_out, 1);
	hpsi_stat_add(&c->bytes_out, bytes);
}

static inline void hpsi_bstat_received(struct hpsi_bridge *b, uint32_t host, uint64_t bytes)
{
	struct hpsi_peer_counters *c = hpsi_bstat_peer(b, host);
	hpsi_stat_add(&c->msgs_in, 1);
	hpsi_stat_add(&c->bytes_in, bytes);
}

/* Bytes of batches waiting for `host`, after a flush. */
static inline void hpsi_bstat_queue(struct hpsi_bridge *b, uint32_t host)
{
	struct hpsi_peer_counters *c = hpsi_bstat_peer(b, host);
	uint64_t q = hpsi_bridge_queued(b, host);
	hpsi_stat_set(&c->queue_bytes, q);
	hpsi_stat_max(&c->queue_hwm, q);
}

/* This host's totals for its heartbeat (net/wire.h). */
static inline void hpsi_bstat_totals(struct hpsi_bridge *b, struct hpsi_host_totals *t)
{
	for (uint32_t n = 0; n < b->S + b->W; n++) {
		if (!hpsi_node_local(&b->seg, n))
			continue;
		const struct hpsi_counters *c = hpsi_seg_counters(&b->seg, n);
		for (int e = 0; e < HPSI_STAT_ERRORS; e++)
			t->errors += hpsi_stat_get(&c->errors[e]);
		if (n < b->S) {
			t->held += hpsi_stat_get(&c->held_now);
			continue;
		}
		t->requests += hpsi_stat_get(&c->requests);
		t->push_keys += hpsi_stat_get(&c->push_keys);
		t->pull_keys += hpsi_stat_get(&c->pull_keys);
		t->push_bytes += hpsi_stat_get(&c->push_bytes);
		t->pull_bytes += hpsi_stat_get(&c->pull_bytes);
		t->in_flight += hpsi_stat_get(&c->requests) - hpsi_stat_get(&c->completed);
	}
	for (uint32_t h = 0; h < b->nhosts; h++) {
		t->bridge_out += hpsi_stat_get(&hpsi_bstat_peer(b, h)->bytes_out);
		t->bridge_in += hpsi_stat_get(&hpsi_bstat_peer(b, h)->bytes_in);
	}
}

#endif
