/* A snapshot of a running job's counters on this host (shm/counters.h),
 * for `hps top`, `hps metrics` and `hps launch --summary`: one row per
 * process of the host group (its servers, workers and bridge). */
#ifndef HPSI_JOBSTATS_H
#define HPSI_JOBSTATS_H

#include <stdint.h>
#include <stdio.h>

#include "shm/segment.h"

enum { HPSI_R_SERVER = 1, HPSI_R_WORKER = 2, HPSI_R_BRIDGE = 4 };

/* Each counter of a node: its field in struct hpsi_counters, its name
 * after hps_, counter or gauge, the roles it means something for, help. */
#define HPSI_NODE_STATS(X)                                                                                     \
	X(requests, "requests_total", "counter", 3, "Requests submitted (worker) or answered (server).")       \
	X(completed, "requests_completed_total", "counter", 2, "Requests completed, with or without error.")    \
	X(push_keys, "push_keys_total", "counter", 3, "Keys pushed (worker) or received in pushes (server).")   \
	X(pull_keys, "pull_keys_total", "counter", 3, "Keys pulled (worker) or answered in pulls (server).")    \
	X(push_bytes, "push_bytes_total", "counter", 3, "Value bytes pushed, as they travel.")                   \
	X(pull_bytes, "pull_bytes_total", "counter", 3, "Value bytes of pull answers, as they travel.")         \
	X(clock, "clock", "gauge", 2, "The worker's clock (hps_clock calls).")                                  \
	X(ring_hwm, "request_ring_high_water_bytes", "gauge", 1, "Most bytes seen waiting in one request ring.") \
	X(resp_hwm, "answer_ring_high_water_bytes", "gauge", 2, "Most bytes seen waiting in one answer ring.")  \
	X(held_now, "held_requests", "gauge", 1, "Requests held back now for consistency (SSP, BSP).")          \
	X(held_total, "held_requests_total", "counter", 1, "Requests ever held back for consistency.")          \
	X(store_keys, "store_keys", "gauge", 1, "Keys in the server's built-in store.")                         \
	X(store_bytes, "store_bytes", "gauge", 1, "Bytes of values, optimizer state and table in the store.")   \
	X(checkpoints, "checkpoints_total", "counter", 1, "Checkpoint parts this server saved or loaded.")       \
	X(forwarded, "replica_forwards_total", "counter", 1,                                                    \
	  "Pushes and clocks this server copied to the backups of the key ranges it serves (HPS_REPLICAS).")    \
	X(replica_applied, "replica_applied_total", "counter", 1, "Forwarded pushes this server applied as a backup.") \
	X(waits_done, "waits_done_total", "counter", 2, "hps_wait calls whose request was already done.")      \
	X(waits_blocked, "waits_blocked_total", "counter", 2, "hps_wait calls whose request was not done yet.")

/* A worker's staleness, summed over this host's servers' cells. */
#define HPSI_STALE_STATS(X)                                                                                \
	X(stale_pulls, "stale_pulls_total", "counter", 2, "Pulls answered by this host's servers.")        \
	X(stale_sum, "staleness_clocks_total", "counter", 2,                                                \
	  "Clocks the slowest worker was behind each pull's clock when it was answered, summed.")           \
	X(stale_max, "staleness_max_clocks", "gauge", 2, "Largest staleness a pull of this worker saw.")

/* What a peer host's line of the bridge holds. */
#define HPSI_PEER_STATS(X)                                                                          \
	X(msgs_out, "bridge_messages_sent_total", "counter", "ZeroMQ messages sent to the peer host.")  \
	X(bytes_out, "bridge_bytes_sent_total", "counter", "Bytes sent to the peer host.")               \
	X(msgs_in, "bridge_messages_received_total", "counter", "ZeroMQ messages from the peer host.") \
	X(bytes_in, "bridge_bytes_received_total", "counter", "Bytes received from the peer host.")    \
	X(queue_bytes, "bridge_queue_bytes", "gauge", "Bytes of batches waiting to be sent to the peer.") \
	X(queue_hwm, "bridge_queue_high_water_bytes", "gauge", "Most bytes ever waiting for the peer.")

#define HPSI_STAT_FIELD(f, ...) uint64_t f;
struct hpsi_node_snap {
	HPSI_NODE_STATS(HPSI_STAT_FIELD)
	HPSI_STALE_STATS(HPSI_STAT_FIELD)
	uint64_t errors[HPSI_STAT_ERRORS];
	double wait_s, updater_s, held_s; /* wait and updater time estimated from their samples */
};
struct hpsi_peer_snap {
	HPSI_PEER_STATS(HPSI_STAT_FIELD)
};
#undef HPSI_STAT_FIELD

struct hpsi_proc_row {
	int role; /* HPSI_R_* */
	uint32_t node, rank;
	int32_t pid;
	const char *state; /* alive, closed, dead, starting */
	uint64_t rss;      /* resident bytes from /proc, 0 when gone */
	struct hpsi_node_snap s;
};

struct hpsi_job_stats {
	char job[HPSI_NAME_MAX], host[HPSI_NAME_MAX];
	int64_t at_ns; /* when it was taken (monotonic) */
	uint32_t nrows, nservers, nworkers;
	struct hpsi_proc_row rows[HPSI_MAX_NODES + 1];
	uint32_t nhosts, me; /* peers: with a bridge, peer[h] for h != me */
	struct hpsi_peer_snap peer[HPSI_MAX_NODES];
};

/* Fills st from the segment: the host's own processes only (a bridged
 * segment's other nodes stand for remote processes). */
void hpsi_jobstats_read(const struct hpsi_seg *seg, struct hpsi_job_stats *st);

const char *hpsi_role_name(int role);
/* The short name of an error code (ETIMEDOUT), or NULL. */
const char *hpsi_error_name(int code);

/* `hps launch --summary`: one screen of what the job did, from its
 * segment before it is removed. */
void hpsi_jobstats_summary(FILE *f, const struct hpsi_job_stats *st, double seconds);

#endif
