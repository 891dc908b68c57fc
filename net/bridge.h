/* `hps bridge`: one per host of a multi-host job, started by `hps launch`.
 *
 * It registers with the scheduler, builds this host's segment (node ids of
 * the whole job; the remote ones carry the bridge's pid), and then stands
 * at the far end of every ring that crosses hosts:
 *   - requests of local workers to remote servers: it consumes them and
 *     sends them to the server's host (many per ZeroMQ message when they
 *     queue up; large values straight from the worker's shared heap,
 *     zmq_msg_init_data, no copy), and later writes the answers back into
 *     the worker's response ring (and answer buffer);
 *   - requests of remote workers to local servers: it writes them into the
 *     server's ring (large parts into that worker's heap slice on this
 *     host, which the bridge owns here) and sends the answers back.
 * A ring a message cannot enter yet (full) keeps it in an overflow queue
 * in order. Every received frame is validated (net/wire.c, net/codec.c);
 * a bad one is dropped and counted with its reason.
 *
 * It also relays node states (heartbeats to the scheduler, states back)
 * and the cross-host barrier. One thread owns every ZeroMQ socket; the
 * only other thread is ZeroMQ's, which runs the zero-copy free callback.
 * Local processes wake it from its sleep in zmq_poll with a datagram
 * (shm/wake.h).
 *
 * The bridge's files (part of the `hps` program, not of libhps):
 *   net/bridge.h          the bridge's state and what its files share
 *   net/bridge_queue.c    per pair: requests in flight, held messages
 *   net/bridge_forward.c  local rings -> peers (batches, zero-copy values)
 *   net/bridge_deliver.c  peers -> local rings (validation, delivery)
 *   net/bridge_sched.c    scheduler client: registration, heartbeats, states
 *   net/bridge_barrier.c  the cross-host barrier relay
 *   net/bridge_main.c     `hps bridge`: setup and the main loop */
#ifndef HPSI_BRIDGE_H
#define HPSI_BRIDGE_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "net/codec.h"
#include "net/transport.h"
#include "net/wire.h"
#include "runtime/common/config.h"
#include "shm/heap.h"
#include "shm/ring.h"
#include "shm/segment.h"

/* A value frame handed to ZeroMQ: it sets done (release) once it no longer
 * reads the worker's buffer; the bridge acquires it before it lets the
 * worker see the answer (and so reuse the buffer). */
struct hpsi_bridge_zc {
	_Atomic int done;
};

/* What the bridge remembers of a request in flight on a pair, in order. */
struct hpsi_bridge_entry {
	int64_t ts;
	uint32_t part;
	int heap_resp;          /* origin: the worker wants the answer in its buffer */
	uint64_t resp_off, resp_cap;
	struct hpsi_bridge_zc *zc; /* origin: values still being sent */
	void *bufs[3];          /* inbound: heap buffers given to the server */
};

struct hpsi_bridge_fifo {
	struct hpsi_bridge_entry *e;
	size_t cap, head, n;
};

/* A message waiting for room in a ring: the wire form, whole. */
struct hpsi_bridge_held {
	struct hpsi_bridge_held *next;
	uint32_t len;
	_Alignas(8) unsigned char msg[];
};

struct hpsi_bridge_pair {
	struct hpsi_ring_cons cons; /* origin: requests; inbound: answers */
	struct hpsi_ring_prod prod; /* origin: answers; inbound: requests */
	struct hpsi_bridge_fifo fifo;
	struct hpsi_bridge_held *held, *held_tail;
	int used;
};

/* Records on their way to one host, sent as one ZeroMQ message. */
struct hpsi_bridge_batch {
	unsigned char *buf;
	size_t len, cap;
	uint32_t count;
};

struct hpsi_bridge {
	struct hpsi_config cfg;
	struct hpsi_cluster_cfg cc;
	struct hpsi_seg seg;
	uint32_t S, W, me, nhosts;
	struct hpsi_sched_assign assign;
	uint32_t *host_of_server, *host_of_worker;
	struct hpsi_bridge_pair *pairs; /* W x S */
	struct hpsi_heap **heaps; /* remote workers' slices on this host */
	struct hpsi_bridge_batch *out;  /* per host */
	void *zctx, *router, *sched, **dealers;
	char endpoint[HPSI_ENDPOINT_MAX];
	size_t max_payload, answer_max;
	int64_t last_sched, next_heartbeat;
	uint32_t barrier_sent; /* gen + 1 of the barrier reported */
	int sched_lost;
	int wake_fd;     /* datagrams of local processes that woke us (shm/wake.h) */
	uint64_t held_total; /* messages that waited for room in a ring */
	void *align_buf; /* an aligned copy of a received frame */
	size_t align_cap;
};

/* The signal that stops the bridge (SIGTERM, SIGINT), 0 until then. */
extern volatile sig_atomic_t hpsi_bridge_stop;

static inline struct hpsi_bridge_pair *hpsi_bridge_pair_of(struct hpsi_bridge *b, uint32_t w, uint32_t s)
{
	return &b->pairs[(size_t)w * b->S + s];
}

static inline int hpsi_bridge_local_server(const struct hpsi_bridge *b, uint32_t s)
{
	return s >= b->seg.hdr->srv_lo && s < b->seg.hdr->srv_hi;
}

static inline int hpsi_bridge_local_worker(const struct hpsi_bridge *b, uint32_t w)
{
	return w >= b->seg.hdr->wrk_lo && w < b->seg.hdr->wrk_hi;
}

/* Worker w's heap slice on this host. */
static inline struct hpsi_msg_bounds hpsi_bridge_slice_of(const struct hpsi_bridge *b, uint32_t w)
{
	uint64_t lo = b->seg.hdr->heap_off + (uint64_t)w * b->seg.hdr->heap_slice;
	return (struct hpsi_msg_bounds){b->seg.base, lo, lo + b->seg.hdr->heap_slice};
}

/* net/bridge_queue.c: a pair's requests in flight (FIFO of entries) and its
 * messages held back until their ring has room. */
struct hpsi_bridge_entry *hpsi_bridge_fifo_push(struct hpsi_bridge_fifo *f);
struct hpsi_bridge_entry *hpsi_bridge_fifo_front(struct hpsi_bridge_fifo *f);
void hpsi_bridge_fifo_pop(struct hpsi_bridge_fifo *f);
/* Queues a whole copy of a received message (wire form, values inline)
 * behind the pair's held ones. */
void hpsi_bridge_hold(struct hpsi_bridge *b, struct hpsi_bridge_pair *p, const struct hpsi_msg_hdr *h,
		      const void *keys, const void *vals);
/* Delivers held messages whose ring has room now; 1 when any moved. */
int hpsi_bridge_retry_held(struct hpsi_bridge *b);

/* net/bridge_forward.c: local rings to peers. */
int hpsi_bridge_forward_requests(struct hpsi_bridge *b);
int hpsi_bridge_forward_answers(struct hpsi_bridge *b);
/* Sends the batch queued for `host`, if any. */
void hpsi_bridge_flush(struct hpsi_bridge *b, uint32_t host);

/* net/bridge_deliver.c: peers to local rings. Each deliver_* returns 0 when
 * the message is in the ring (not yet published), 1 when it must wait
 * (ring or heap full, or values of its request still being sent), <0 when
 * it can never go in. */
int hpsi_bridge_deliver_request(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
				const void *keys, const void *vals);
int hpsi_bridge_deliver_answer(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			       const void *body);
int hpsi_bridge_recv_peers(struct hpsi_bridge *b);

/* net/bridge_sched.c: the scheduler client. */
int hpsi_bridge_register(struct hpsi_bridge *b, uint32_t nsrv, uint32_t nwrk);
void hpsi_bridge_send_sched(struct hpsi_bridge *b, const void *m, size_t len);
void hpsi_bridge_heartbeat(struct hpsi_bridge *b);
int hpsi_bridge_recv_sched(struct hpsi_bridge *b);
/* No word from the scheduler for HPS_DEAD_MS: every remote node is dead. */
void hpsi_bridge_lose_scheduler(struct hpsi_bridge *b);

/* net/bridge_barrier.c: the cross-host barrier. */
void hpsi_bridge_barrier_check(struct hpsi_bridge *b);
void hpsi_bridge_barrier_release(struct hpsi_bridge *b, uint32_t gen);

#endif
