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
 * Errors: a request the bridge accepted (consumed from a ring, or received
 * for a local server) is answered, always, in the order of its pair: when
 * it cannot be sent or delivered, its entry in the pair's FIFO keeps an
 * error code and the worker gets an answer carrying that code once the
 * entry reaches the front. A request the bridge cannot take yet (memory,
 * a peer that reads too slowly) stays in its ring: the worker sees a full
 * ring and waits. What waits for a peer is bounded: ZeroMQ queues at most
 * HPSI_BRIDGE_SNDHWM messages per peer, the bridge's own queue holds
 * HPSI_BRIDGE_QUEUE_MAX bytes before it stops draining the rings of
 * requests to that peer. Answers are never held back for a peer (they are
 * bounded by the requests that peer sent), and every bridge always reads
 * what peers send, so backpressure cannot close a cycle between two hosts.
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
 *   net/bridge_fwd.c      replicas: forwards between hosts, acks passed on
 *   net/bridge_sched.c    scheduler client: registration, heartbeats, states
 *   net/bridge_barrier.c  the cross-host barrier relay
 *   net/bridge_ckpt.c     checkpoints across hosts: requests, local steps
 *   net/bridge_join.c     workers that join across hosts (--max-workers)
 *   net/bridge_main.c     `hps bridge`: setup and the main loop */
#ifndef HPSI_BRIDGE_H
#define HPSI_BRIDGE_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "net/codec.h"
#include "net/curve.h"
#include "net/transport.h"
#include "net/wire.h"
#include "runtime/common/config.h"
#include "shm/heap.h"
#include "shm/ring.h"
#include "shm/segment.h"

/* A value frame handed to ZeroMQ. Ordering: ZeroMQ's thread stores done = 1
 * with release once it no longer reads the worker's buffer (zc_done,
 * net/bridge_forward.c); the bridge loads it with acquire before it lets
 * the worker see the answer and so reuse the buffer (deliver_answer and
 * answer_failed, net/bridge_deliver.c). When a send fails before ZeroMQ
 * took the frame, the bridge thread frees it; no other thread saw it. */
struct hpsi_bridge_zc {
	_Atomic int done;
	/* a frame whose request was dropped at a failover while ZeroMQ still
	 * held it waits in b->zc_dropped until done (net/bridge_failover.c) */
	struct hpsi_bridge_zc *next;
};

/* What the bridge remembers of a request in flight on a pair, in order. */
struct hpsi_bridge_entry {
	int64_t ts;
	uint32_t part;
	int status;             /* not 0: failed here; answered with this code at the front */
	int heap_resp;          /* origin: the worker wants the answer in its buffer */
	uint64_t resp_off, resp_cap;
	struct hpsi_bridge_zc *zc; /* origin: values still being sent */
	void *bufs[3];          /* inbound: heap buffers given to the server */
	uint32_t at;            /* origin: where its record starts in the request ring */
	uint8_t acked;          /* origin: replicas (bit i: replica i) whose ack came before the answer */
};

/* Origin, with replicas across hosts: a push answered whose forwards to
 * remote backups (bits: replica indices) are not all acked yet; its ring
 * bytes stay unreleased from `at` (net/bridge_acks.c). */
struct hpsi_bridge_unacked {
	int64_t ts;
	uint32_t part, at;
	uint8_t wait;
	uint16_t backup; /* with room: the rank the primary forwarded it to */
};

struct hpsi_bridge_fifo {
	struct hpsi_bridge_entry *e;
	size_t cap, head, n;
};

/* A message waiting for room in a ring: the wire form, whole; or, when
 * there was no memory for a copy, only the header of a request that then
 * fails with status. */
struct hpsi_bridge_held {
	struct hpsi_bridge_held *next;
	uint32_t len;
	int status;
	_Alignas(8) unsigned char msg[];
};

/* A pair's role here (used): none, origin (a local worker's requests to a
 * server of another host: we consume its requests and write its answers),
 * inbound (a remote worker's requests to a local server: we write the
 * requests and consume the answers). With replicas across hosts a pair's
 * role changes when the server of its range dies (net/bridge_failover.c).
 * The forward rings use 1 (we consume) and 2 (we produce). */
enum { HPSI_PAIR_NONE = 0, HPSI_PAIR_ORIGIN = 1, HPSI_PAIR_INBOUND = 2 };

struct hpsi_bridge_pair {
	struct hpsi_ring_cons cons; /* origin: requests; inbound: answers */
	struct hpsi_ring_prod prod; /* origin: answers; inbound: requests */
	struct hpsi_bridge_fifo fifo;
	struct hpsi_bridge_held *held, *held_tail;
	int used;
	uint32_t host; /* origin: the host its requests go to, whose answers count */
	struct hpsi_bridge_unacked *unacked; /* oldest first; wait 0: acked, not popped yet */
	size_t nunacked, unacked_cap;
};

#define HPSI_BRIDGE_SNDHWM 16              /* ZeroMQ messages queued per peer */
#define HPSI_BRIDGE_QUEUE_MAX ((size_t)16 << 20) /* bytes per peer before requests wait */

/* One ZeroMQ message to a peer: a batch header and `count` records. */
struct hpsi_bridge_frame {
	struct hpsi_bridge_frame *next;
	/* a batch sent without a copy: ZeroMQ's thread stores 1 when it no
	 * longer reads it (struct hpsi_bridge_out) */
	atomic_int zmq_done;
	size_t len, cap;
	uint32_t count;
	_Alignas(8) unsigned char data[];
};

/* What goes to one host: the batch being filled, and the batches ZeroMQ
 * refused for now (its queue to that peer is full), in order.
 *
 * Large batches go without a copy (zmq_msg_init_data) and wait in `sent`
 * until ZeroMQ's thread stores their zmq_done (release; the only word
 * that thread writes); the bridge's thread, which alone reads and links
 * these lists, moves a done one (acquire: ZeroMQ's last read of it
 * happens before the bridge writes into it again) to `spare`, from which
 * the next batches are filled. So a stream of batches cycles through a
 * few buffers whose pages are already mapped, instead of a fresh copy per
 * message (net/bridge_forward.c, hpsi_bridge_flush). */
struct hpsi_bridge_out {
	struct hpsi_bridge_frame *open;
	struct hpsi_bridge_frame *q, *q_tail;
	size_t queued; /* bytes in q */
	struct hpsi_bridge_frame *sent;
	struct hpsi_bridge_frame *spare;
	size_t spare_bytes; /* the caps of the spares */
	size_t cap_seen;    /* the largest cap of a batch buffer so far */
};

/* Frees what o holds: the open batch, the queue and the spares; only
 * once ZeroMQ let go of every frame (its context terminated). */
void hpsi_bridge_out_free(struct hpsi_bridge_out *o);

struct hpsi_bridge {
	struct hpsi_config cfg;
	struct hpsi_cluster_cfg cc;
	struct hpsi_seg seg;
	uint32_t S, W, me, nhosts;
	struct hpsi_sched_assign assign;
	uint32_t *host_of_server, *host_of_worker;
	struct hpsi_bridge_pair *pairs; /* W x S */
	/* HPS_REPLICAS: S x S forward rings [primary][backup] that cross
	 * hosts (net/bridge_fwd.c; used 1: we consume, 2: we produce) */
	struct hpsi_bridge_pair *fwd;
	/* Replicas across hosts (net/bridge_failover.c): origin pairs keep
	 * their requests in the ring until answered (resend); the server each
	 * key range's pairs point at here; per server, its death handed on
	 * (1) and its FENCE sent (2) or received (1: forwards held here still
	 * to be written; 2: fenced); frames of dropped requests ZeroMQ holds. */
	int resend;
	uint32_t *serving;
	unsigned char *fence;
	int64_t *dead_since; /* remote servers: when the scheduler said dead, no FENCE yet */
	/* per key range: handed back from here to a replacement on another
	 * host (net/bridge_recover.c): 1 until this host learns that it holds
	 * the range (other hosts' requests wait here meanwhile, in case it
	 * comes back), 2 after (those held then are dropped: their hosts send
	 * them to the replacement) */
	unsigned char *handed;
	/* per key range handed back from here: the local server that handed
	 * it (the source a HANDBACK told again names), and the hosts (bits)
	 * told again since it last moved (hpsi_bridge_handback_again) */
	uint32_t *handed_by;
	uint64_t *retold;
	/* per key range, a movable job (hps scale): a copy of it to a server
	 * here has begun (its first SYNC record came), until its FINAL moves
	 * the pairs here (hpsi_bridge_range_to): other hosts' requests for it
	 * wait (hpsi_bridge_range_coming) */
	unsigned char *coming;
	/* per key range, a movable job: the number of the move that made
	 * serving[r] its owner, as this bridge last told or was told it (a
	 * FINAL, a HANDBACK: hpsi_bridge_owner_to; a move within this host:
	 * hpsi_bridge_scale_owners) */
	uint32_t serving_moves[HPSI_MAX_NODES];
	/* per key range, a replicated job with room: its backup as this
	 * bridge last told or was told it (as serving_moves) */
	uint32_t serving_backup[HPSI_MAX_NODES];
	/* net/bridge_scale.c: the plan of a scale last reported (the last
	 * host) or stored here (the others), by its number */
	uint32_t plan_seq, plan_servers;
	uint16_t plan[HPSI_MAX_NODES];
	uint32_t plan_moves[HPSI_MAX_NODES];
	uint16_t plan_backup[HPSI_MAX_NODES]; /* with replicas (one backup) */
	/* HPS_FAILPOINT=lateplan:MS (tests; net/bridge_scale.c): a host that
	 * is not the last stores each plan MS ms after it came, in the order
	 * they came (up to four waiting), as a host whose states lag behind
	 * the FINALs would */
	int64_t late_plan_ns;
	int late_plan_parsed;
	uint32_t late_seen, late_n;
	struct hpsi_late_plan {
		int64_t due;
		uint32_t seq, servers;
		uint16_t plan[HPSI_MAX_NODES], backup[HPSI_MAX_NODES];
		uint32_t moves[HPSI_MAX_NODES];
	} late_plan[4];
	/* HPS_FAILPOINT=holdclosed:MS (tests; net/bridge_scale.c): a host
	 * that is not the last holds each remote server's first CLOSED MS ms
	 * after its states first said it (a CLOSED still held back when a
	 * scale back up starts the rank again); when each was first seen */
	int64_t hold_closed_ns;
	int64_t closed_seen[HPSI_MAX_NODES];
	/* HPS_FAILPOINT=holdfwd:HOST:N (tests): forwards to other hosts this
	 * bridge still sends before it holds them all; -1: no failpoint */
	int64_t fwd_failpoint;
	/* HPS_FAILPOINT=latefence:HOST (tests): the bridge of HOST keeps the
	 * first FENCE it receives (late_fence 1: armed, 2: one kept) until the
	 * next HANDBACK record came, which it then reads first; 0: none */
	int late_fence;
	uint32_t late_fence_from, late_fence_server;
	/* HPS_FAILPOINT=handbackdie:RANK (tests): the last FINAL of a
	 * hand-back to RANK stays in its ring here for HPSI_HOLD_HANDBACK_MS
	 * from final_hold_until's start (0: not seen yet), so that other
	 * hosts' requests reach the frozen range's rings unread; a third
	 * host keeps the HANDBACK record that long (late_handback: 1 kept, 2
	 * read), so that its workers' requests sent meanwhile wait at the
	 * source's host (net/bridge_recover.c). final_hold_rank is RANK + 1,
	 * 0 without the failpoint. */
	uint32_t final_hold_rank;
	int64_t final_hold_until;
	int late_handback;
	int64_t late_handback_at;
	uint32_t late_handback_from;
	struct hpsi_rec_hdr late_handback_rec;
	struct hpsi_msg_hdr late_handback_hdr;
	struct hpsi_bridge_zc *zc_dropped;
	struct hpsi_heap **heaps; /* remote workers' slices on this host */
	uint32_t *heap_live; /* per remote worker: buffers of ours in its slice */
	struct hpsi_bridge_out *out;  /* per host */
	void *zctx, *router, *sched, **dealers;
	struct hpsi_curve curve; /* HPS_CURVE: keys and the ZAP handler */
	char endpoint[HPSI_ENDPOINT_MAX];
	size_t max_payload, answer_max;
	int64_t last_sched, next_heartbeat;
	uint32_t barrier_sent; /* gen + 1 of the barrier reported complete here */
	uint32_t expired_sent; /* gen + 1 of the barrier reported expired here */
	int sched_lost;
	/* net/bridge_join.c: per worker slot of another host that a joiner
	 * claimed, HPSI_JOIN_CLOCK + this host's floor of its start clock
	 * once this host's servers hold pulls for it (0 before) */
	uint32_t join_note[HPSI_MAX_NODES];
	/* Checkpoints across hosts (net/bridge_ckpt.c): the local request
	 * (xck_req) last sent to the scheduler, and whether it awaits its
	 * END; the step this host's servers run for the scheduler; its
	 * report while ZeroMQ did not take it. */
	uint32_t xck_sent;
	int xck_open;
	struct {
		int busy, abort_queued;
		uint32_t round, op;
		int64_t deadline, next_probe;
		char dir[512];
		/* the host with the room for servers: the checkpoint lock held
		 * through round held_round (held), until the scheduler's UNLOCK
		 * (after the step running: unlock_queued) or held_until */
		int held, unlock_queued;
		uint32_t held_round;
		int64_t held_until;
	} ck;
	struct hpsi_sched_ckpt ck_done;
	int ck_done_unsent;
	int wake_fd;     /* datagrams of local processes that woke us (shm/wake.h) */
	uint64_t held_total; /* messages that waited for room in a ring */
	uint64_t failed_total; /* requests answered here with an error */
	uint64_t stale; /* answers from a host a key range left, requests for one that left here */
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
/* Takes back the entry pushed last (its request was not taken after all). */
void hpsi_bridge_fifo_unpush(struct hpsi_bridge_fifo *f);
/* The entry i places behind the front. */
struct hpsi_bridge_entry *hpsi_bridge_fifo_at(struct hpsi_bridge_fifo *f, size_t i);
/* Index of the entry of request (ts, part), or -1. */
long hpsi_bridge_fifo_find(struct hpsi_bridge_fifo *f, int64_t ts, uint32_t part);
/* Answers of a pair come in the order of its requests: an answer to the
 * entry at index k means the answers to the k before it were lost. They
 * fail with HPS_EPROTO, so the pair stays in step. */
void hpsi_bridge_fifo_lost(struct hpsi_bridge_fifo *f, long k);
/* Queues a whole copy of a received message (wire form, values inline)
 * behind the pair's held ones. */
void hpsi_bridge_hold(struct hpsi_bridge *b, struct hpsi_bridge_pair *p, const struct hpsi_msg_hdr *h,
		      const void *keys, const void *vals);
/* Delivers held messages whose ring has room now, and the answers of
 * failed requests at the front of local workers' pairs; 1 when any moved. */
int hpsi_bridge_retry_held(struct hpsi_bridge *b);
/* A local worker's requests in flight here (its node's bridge_inflight,
 * shm/segment.h) change by delta: +1 when one is taken, before the
 * ring's head is released; minus those answered, after the answers were
 * published. A restarted worker waits for 0 (runtime/client/rejoin.c). */
void hpsi_bridge_inflight(struct hpsi_bridge *b, uint32_t w, int64_t delta);
/* Logs a request that fails here (rate-limited) and counts it. */
void hpsi_bridge_count_failed(struct hpsi_bridge *b, uint32_t w, uint32_t s, int status, const char *why);

/* net/bridge_forward.c: local rings to peers. */
int hpsi_bridge_forward_requests(struct hpsi_bridge *b);
int hpsi_bridge_forward_answers(struct hpsi_bridge *b);
/* Sends the batch being filled for `host` and those waiting before it, as
 * far as ZeroMQ takes them. */
void hpsi_bridge_flush(struct hpsi_bridge *b, uint32_t host);
/* Bytes waiting for `host` (the open batch and the refused ones). */
size_t hpsi_bridge_queued(const struct hpsi_bridge *b, uint32_t host);

/* Makes room for `more` bytes in the open batch of `o`; HPS_ENOMEM. */
int hpsi_bridge_batch_room(struct hpsi_bridge_out *o, size_t more);
/* Appends one message in wire form (header, then body parts) to the open
 * batch for `host`, which hpsi_bridge_batch_room made room in. */
void hpsi_bridge_append(struct hpsi_bridge *b, uint32_t host, uint32_t w, uint32_t s, uint32_t rec_flags,
			const struct hpsi_msg_hdr *h, const void *p1, size_t n1, const void *p2, size_t n2);

/* net/bridge_fwd.c: forwards of primaries to backups on other hosts. */
/* Attaches the forward rings that cross hosts (with replicas only). */
int hpsi_bridge_fwd_layout(struct hpsi_bridge *b);
/* Sends what local primaries forwarded to remote backups; 1 when any. */
int hpsi_bridge_fwd_send(struct hpsi_bridge *b);
/* A received forward (record flagged HPSI_REC_FORWARD) for a local backup. */
void hpsi_bridge_fwd_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
			     const struct hpsi_msg_hdr *h, const void *keys, const void *vals);
/* Writes a forward (or a copy) of remote server p into local server q's
 * ring, or holds it in order while the ring is full. */
void hpsi_bridge_fwd_write(struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h,
			   const void *keys, const void *vals);
/* Writes held forwards whose ring has room now; 1 when any moved. */
int hpsi_bridge_fwd_retry(struct hpsi_bridge *b);
/* Sends what local server p forwarded to remote backups, and says
 * whether any of it (or of what remote p forwarded to local backups, held
 * here for room) is still left. */
int hpsi_bridge_fwd_left(struct hpsi_bridge *b, uint32_t p);
/* Whether a local primary's forward to a remote backup waits. */
int hpsi_bridge_fwd_pending(const struct hpsi_bridge *b);

/* net/bridge_recover.c: replacement servers across hosts (with replicas). */
/* A local server's incarnation and lacking bits, for the scheduler. */
void hpsi_bridge_recover_report(struct hpsi_bridge *b, struct hpsi_sched_states *m);
/* Remote replacements (JOINING, lacking, ALIVE) from the scheduler's
 * states; 1 when a node changed. */
int hpsi_bridge_recover_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m);
/* A copy (HPSI_MSG_SYNC) local server p wrote to remote server q: sent
 * as it is (0), or 1 when the batch has no room (it stays in the ring). */
int hpsi_bridge_sync_send(struct hpsi_bridge *b, uint32_t p, uint32_t q, const struct hpsi_msg_hdr *h, size_t len);
/* A received copy record (HPSI_REC_SYNC) for a local replacement. */
void hpsi_bridge_sync_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec, const void *msg);
/* A HPSI_REC_HANDBACK from host `from`: its server rec->worker handed key
 * range h->range back to server rec->server of a third host. */
void hpsi_bridge_handback_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
				  const struct hpsi_msg_hdr *h);
/* HPS_FAILPOINT=handbackdie:RANK (struct hpsi_bridge): 1 when this
 * HANDBACK is kept for a while; hpsi_bridge_late_handback_check reads it
 * once the time passed (1 then). */
#define HPSI_HOLD_HANDBACK_MS 20
int hpsi_bridge_late_handback_keep(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
				   const struct hpsi_msg_hdr *h);
int hpsi_bridge_late_handback_check(struct hpsi_bridge *b);
/* A request of host `from` for key range r, held here because the range
 * was handed back from here: that host may have ignored the HANDBACK
 * (the FENCE of the death the replacement replaces came to it later), so
 * it is told again, once per host until the range moves again. */
void hpsi_bridge_handback_again(struct hpsi_bridge *b, uint32_t from, uint32_t r);
/* A move of hps scale: key range r's owner here is q from now, with
 * replicas its backup nb (HPSI_NO_SERVER: none, no replicas), and its
 * move number (its FINAL's or HANDBACK's) at least `moves`. */
void hpsi_bridge_owner_to(struct hpsi_bridge *b, uint32_t r, uint32_t q, uint32_t nb, uint32_t moves);

/* net/bridge_scale.c: hps scale --servers across hosts. */
/* The last host's plan, into its heartbeat. */
void hpsi_bridge_scale_report(struct hpsi_bridge *b, struct hpsi_sched_states *m);
/* Free ranks of other hosts started by a scale (ALIVE here), then a new
 * plan from the scheduler's states; 1 when something changed. */
int hpsi_bridge_scale_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m);
/* Moves between two local servers, told to every other host; 1 if any. */
int hpsi_bridge_scale_owners(struct hpsi_bridge *b);
/* Whether server n of another host, CLOSED in the scheduler's states,
 * must still count as running here: a key range it owns here is planned
 * elsewhere, and its hand-over (bridge to bridge) has not come yet. */
int hpsi_bridge_close_waits(struct hpsi_bridge *b, uint32_t n);

/* net/bridge_failover.c: key ranges of dead servers go on at their next
 * replicas across hosts (docs/ARCHITECTURE.md, "Failover across hosts"). */
int hpsi_bridge_failover_layout(struct hpsi_bridge *b);
/* Hands on the ranges of local servers found dead (their FENCE goes to
 * every host) and fences remote ones whose forwards are all written. */
int hpsi_bridge_failover_check(struct hpsi_bridge *b);
/* A bridge asked to leave: first the FENCE of each local server found
 * dead (its host's part may be over because its servers died), so that
 * the other hosts need not wait HPS_DEAD_MS more to count the host lost;
 * bounded by HPS_DEAD_MS. */
void hpsi_bridge_failover_leave(struct hpsi_bridge *b);
/* HPS_FAILPOINT=holdfwd:HOST:N: 1 when the bridge of HOST sent its N
 * forwards to other hosts, so this one and every later one stay in their
 * rings while answers still go out (the moment a lost host's answers left
 * and its forwards did not, tests/test_xfail.c). */
int hpsi_bridge_fwd_failpoint(struct hpsi_bridge *b);
/* A FENCE of server p from host `from`. */
void hpsi_bridge_fence_receive(struct hpsi_bridge *b, uint32_t from, uint32_t p);
/* HPS_FAILPOINT=latefence:HOST: 1 when this FENCE is kept until the next
 * HANDBACK record (hpsi_bridge_late_fence_release reads it then). */
int hpsi_bridge_late_fence_keep(struct hpsi_bridge *b, uint32_t from, uint32_t p);
void hpsi_bridge_late_fence_release(struct hpsi_bridge *b);
/* A RESET record from host `from` (net/wire.h): pair (rec->worker,
 * rec->server)'s requests held here are dropped. */
void hpsi_bridge_reset_receive(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec);
/* Key range r's pairs point at server `next` from now: at a death its
 * next live replica, at a hand-back the replacement (bridge_recover.c). */
void hpsi_bridge_range_to(struct hpsi_bridge *b, uint32_t r, uint32_t next);
/* Key range r, handed back from here, is held whole by its replacement:
 * the requests other hosts sent here meanwhile (held in case it came back)
 * are dropped, and later ones are stale (net/bridge_recover.c). */
void hpsi_bridge_range_settled(struct hpsi_bridge *b, uint32_t r);
/* Origin pair p: hands back to the worker the ring bytes of the requests
 * answered (all consumed ones without resend). */
void hpsi_bridge_origin_release(struct hpsi_bridge *b, struct hpsi_bridge_pair *p);
/* Whether a remote worker's request for key range s may wait here for the
 * range to come to a local replica (the FENCE of its dead primary has not
 * come yet). */
int hpsi_bridge_range_coming(struct hpsi_bridge *b, uint32_t s);
void hpsi_bridge_failover_free(struct hpsi_bridge *b);

/* net/bridge_acks.c: a push answered by a remote primary stays in the
 * worker's ring until each remote backup it was forwarded to acked it
 * (docs/ARCHITECTURE.md, "Failover across hosts"). An answer of pair
 * (w, s) for entry e (before e leaves the FIFO): */
void hpsi_bridge_acks_answered(struct hpsi_bridge *b, uint32_t s, struct hpsi_bridge_pair *p,
			       const struct hpsi_bridge_entry *e, const struct hpsi_msg_hdr *in);
/* A backup's ack (HPSI_F_REPLICA) to local worker w. */
void hpsi_bridge_acks_receive(struct hpsi_bridge *b, uint32_t w, const struct hpsi_msg_hdr *in);
/* Server `dead` acks nothing any more: no push waits for it. */
void hpsi_bridge_acks_dead(struct hpsi_bridge *b, uint32_t dead);
/* A copy of hps scale moves key range r (a replicated job with room): no
 * push of it waits for a backup's ack any more. */
void hpsi_bridge_acks_moved(struct hpsi_bridge *b, uint32_t r);
/* Where origin pair p's ring is read again from after a failover: its
 * oldest push not acked, else its oldest request not answered, else its
 * head. */
uint32_t hpsi_bridge_acks_resend_at(struct hpsi_bridge_pair *p);

/* net/bridge_deliver.c: peers to local rings. Each deliver_* returns 0 when
 * the message is in the ring (not yet published), 1 when it must wait
 * (ring or heap full, or values of its request still being sent), <0 when
 * it can never go in. */
/* Whether a received request or answer record (not a copy, forward,
 * FENCE or HANDBACK; its worker and key range in bounds) may be
 * delivered: 0 yes, 1 stale (it crossed a move or a failover of its key
 * range: the caller counts it in b->stale and drops it; its request is
 * sent again), -1 from or to the wrong host (*why says which; the caller
 * counts it malformed). */
int hpsi_bridge_record_origin(struct hpsi_bridge *b, uint32_t from, const struct hpsi_rec_hdr *rec,
			      const struct hpsi_msg_hdr *h, const char **why);
int hpsi_bridge_deliver_request(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
				const void *keys, const void *vals);
int hpsi_bridge_deliver_answer(struct hpsi_bridge *b, uint32_t w, uint32_t s, const struct hpsi_msg_hdr *in,
			       const void *body);
/* Writes the error answers of failed entries at the front of a local
 * worker's pair into its ring (not yet published). 0 when the front is a
 * live request (or none), 1 when the ring is full or values of the front
 * request are still being sent. */
int hpsi_bridge_answer_failed(struct hpsi_bridge *b, uint32_t w, uint32_t s);
int hpsi_bridge_recv_peers(struct hpsi_bridge *b);

/* The hosts' servers and names a host's segment is laid out for. */
struct hpsi_bridge_place {
	uint32_t servers[HPSI_MAX_HOSTS];
	const char *names[HPSI_MAX_HOSTS];
};

/* net/bridge_main.c: the parameters of this host's segment, from b->cfg
 * and the scheduler's assignment b->assign: this host's ranks, and every
 * host's servers in the assignment's order, the same table on every host,
 * so that every host lays out the same placement of replicas (shm/place.h).
 * pl holds what sp points to. */
void hpsi_bridge_seg_params(const struct hpsi_bridge *b, struct hpsi_bridge_place *pl, struct hpsi_seg_params *sp);

/* net/bridge_main.c: the tables and rings of the job in b->assign, once
 * b->seg exists (what setup does after creating the segment, before it
 * connects to the peers). */
int hpsi_bridge_layout(struct hpsi_bridge *b);
/* Connects this bridge's DEALER to host i (b->assign's endpoint). Hosts
 * whose entry has no endpoint join later (`later` in the hosts file;
 * docs/ARCHITECTURE.md, "Hosts that leave and join"): they get a
 * DEALER once the scheduler sends the assignment again with it, and
 * nothing is appended or flushed to them before (dealers[i] NULL). */
int hpsi_bridge_connect(struct hpsi_bridge *b, uint32_t i);

/* net/bridge_sched.c: the scheduler client. */
int hpsi_bridge_register(struct hpsi_bridge *b, uint32_t nsrv, uint32_t nwrk);
/* 0, or -1 when ZeroMQ did not take the message (the caller says again). */
int hpsi_bridge_send_sched(struct hpsi_bridge *b, const void *m, size_t len);
void hpsi_bridge_heartbeat(struct hpsi_bridge *b);
int hpsi_bridge_recv_sched(struct hpsi_bridge *b);
/* No word from the scheduler for HPS_DEAD_MS: every remote node is dead. */
void hpsi_bridge_lose_scheduler(struct hpsi_bridge *b);

/* net/bridge_barrier.c: the cross-host barrier. */
/* Reports the open barrier to the scheduler when every local worker
 * arrived or closed, or when a local worker's deadline passed. */
void hpsi_bridge_barrier_check(struct hpsi_bridge *b);

/* Workers that join across hosts (net/bridge_join.c). clock_seen: a
 * CLOCK message of remote worker w, about to enter a local server's ring
 * (its release publishes the raise of the node's clock_done). report:
 * the join words of a heartbeat (and the free slots' states read as
 * EMPTY). apply: what the scheduler's states say of joins, before their
 * DEAD and CLOSED are applied. */
void hpsi_bridge_clock_seen(struct hpsi_bridge *b, uint32_t w, uint32_t clock);
void hpsi_bridge_join_report(struct hpsi_bridge *b, struct hpsi_sched_states *m);
int hpsi_bridge_join_apply(struct hpsi_bridge *b, const struct hpsi_sched_states *m);
/* The scheduler's decision on barrier gen: complete (code 0) or failed. */
void hpsi_bridge_barrier_decide(struct hpsi_bridge *b, uint32_t gen, int code);

/* net/bridge_ckpt.c: checkpoints across hosts. */
/* Sends a local request to the scheduler, and ends the local step when
 * its servers are done (or one died, or HPS_TIMEOUT_MS passed). */
void hpsi_bridge_ckpt_check(struct hpsi_bridge *b);
/* Whether a local request waits to be sent (the bridge must not sleep). */
int hpsi_bridge_ckpt_asked(const struct hpsi_bridge *b);
/* The scheduler's RUN (a step for this host's servers) and END (the
 * answer to a local request). */
void hpsi_bridge_ckpt_run(struct hpsi_bridge *b, const struct hpsi_sched_ckpt *m);
void hpsi_bridge_ckpt_end(struct hpsi_bridge *b, const struct hpsi_sched_ckpt *m);
/* No scheduler: a local request waiting for it fails (HPS_EPEERDEAD). */
void hpsi_bridge_ckpt_lost(struct hpsi_bridge *b);

#endif
