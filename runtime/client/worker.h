/* Worker internals shared by the request builder and the response path. */
#ifndef HPSI_WORKER_H
#define HPSI_WORKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "hps/hps.h"
#include "net/codec.h"
#include "runtime/client/ctx.h"
#include "shm/heap.h"

#define HPSI_MAX_INFLIGHT 512 /* power of two: slots indexed by ts */

/* A part's life. Only the submitter leaves UNSENT: to SENT once its
 * record is committed (just before the ring is published), or to DONE
 * when it cannot be sent. Only the poller leaves SENT, to DONE, on the
 * answer or when the server died or closed. Every move to DONE happens
 * under poll_lock and checks that the part was not DONE yet, so a part
 * completes, and drops its reference on the slot, exactly once: the poller
 * never fails a part that the submitter may still fail itself (issue 10
 * item 8), and never frees buffers the submitter is still filling. */
enum hpsi_part_state { HPSI_PART_UNSENT = 0, HPSI_PART_SENT = 1, HPSI_PART_DONE = 2 };

/* The share of a request sent to one server. Its keys are positions
 * begin..begin+count-1 of the request, or idx[begin..] when the keys of
 * several servers interleave (hash routing). */
struct hpsi_part {
	uint32_t server;
	uint32_t begin, count;
	/* enum hpsi_part_state. SENT is stored with release after the fields
	 * below are final; the poller loads it with acquire before reading
	 * them (handle_response, fail_server_parts). UNSENT is stored relaxed
	 * at submission, published by the slot's in_use/ts release. */
	_Atomic uint32_t state;
	void *keys_buf, *vals_buf, *resp_buf; /* heap buffers freed on the answer */
	int resp_in_place;                    /* server wrote into the caller's buffer */
	unsigned wire;                        /* value type on this server's rings */
	/* Replication (HPS_REPLICAS), under poll_lock: the primary answered;
	 * bit i: replica i of the range applied the push. heap_body: set by
	 * the submitter before SENT, the push's keys or values are in this
	 * worker's heap, which the backups read: it is done only once every
	 * live replica it was forwarded to (forwarded: the answer's fwd_mask)
	 * has applied it. An inline push is done on the primary's answer: the
	 * primary publishes it to its backups' rings first, and they apply all
	 * of it before they take the range over. */
	uint8_t answered, applied, heap_body, forwarded;
	uint32_t forwarded_incarnations; /* the answer's fwd_incarnations */
	/* With room (one backup, named by rank in the answer's high half):
	 * rank + 1 of each backup whose ack came before the answer (0: none),
	 * so that the answer counts only the one its primary forwarded to
	 * (handle_replica_ack); two: the backup of a first send and of a
	 * resend after a move */
	uint16_t early_acks[2];
	int early_status[2]; /* their status (a backup's apply that failed) */
};

struct hpsi_slot {
	/* Submitter stores ts last with release after filling the slot; the
	 * poller loads it with acquire before touching the slot. */
	_Atomic int64_t ts;
	/* Poller stores 1 with release after the status and pulled values;
	 * waiters load it with acquire. */
	_Atomic uint32_t done;
	/* References: one per part still out, one held by the submitter until
	 * every part is sent. Whoever drops the last one completes the request;
	 * acq_rel on each drop orders every use of the slot before that. */
	_Atomic uint32_t refs;
	/* 1 from submission until completion; the slot is reused only at 0.
	 * Stored 0 with release by the completer, loaded with acquire. */
	_Atomic uint32_t in_use;
	int status;
	int type;
	uint32_t width; /* 0 in lens mode */
	unsigned udt;   /* the caller's value type (HPSI_WIRE_F32 / F64) */
	unsigned char *out;
	uint32_t *out_lens;
	size_t out_cap, nkeys; /* out_cap in values */
	uint32_t *idx;
	uint32_t nparts;
	struct hpsi_part *parts;
	int64_t deadline;
	int abandoned;
	hps_callback cb;
	void *cb_arg;
};

struct hpsi_cb {
	hps_callback cb;
	void *arg;
	int64_t ts;
	int status;
};

/* A failed request whose slot was reused: hps_wait still reports it. */
struct hpsi_failed {
	int64_t ts;
	int status;
};

#define HPSI_MAX_FAILED 4096 /* failures kept past their slot; older ones are forgotten */

struct hps_worker {
	_Atomic uint32_t magic; /* HPSI_MAGIC_WORKER; a tombstone once closed */
	hps_ctx *ctx;
	struct hpsi_seg *seg;
	uint32_t rank, nservers, width;
	struct hpsi_heap *heap;
	struct hpsi_msg_bounds own; /* this worker's heap slice */
	struct hpsi_bell *bell;
	struct hpsi_counters *stats; /* this worker's block (worker_stats.h) */
	size_t inline_max;
	struct hpsi_ring_prod *req;  /* per server, under submit_lock */
	struct hpsi_ring_cons *resp; /* per server, under poll_lock */
	pthread_mutex_t submit_lock, poll_lock;
	_Atomic int64_t next_ts;
	uint32_t clock; /* this worker's iteration, under submit_lock */
	uint64_t incarnations_seen; /* of the servers at the last liveness check, under poll_lock */
	struct hpsi_slot *slots;
	struct hpsi_part *parts; /* every slot's parts, one block (worker_open.c) */
	struct hpsi_cb *cbq; /* callbacks due, under poll_lock */
	size_t ncb, cb_cap;
	_Atomic uint32_t cb_pending; /* requests with callbacks not yet run */
	_Atomic uint32_t closing;
	pthread_t progress_thread;
	int progress_started;
	/* Failures of requests whose slot was reused, oldest first in a ring
	 * of HPSI_MAX_FAILED; forgot_upto: the newest ts dropped from it (-1
	 * none), whose status and older ones' can no longer be told. Under
	 * fail_lock (runtime/client/failed.c). */
	pthread_mutex_t fail_lock;
	struct hpsi_failed *failed;
	size_t failed_head, nfailed;
	int64_t forgot_upto;
};

/* 0 if w is a live worker, else HPS_EINVAL / HPS_ECLOSED (handle.h). */
int hpsi_worker_check(const struct hps_worker *w);

/* Keeps the failure `status` of request ts whose slot is being reused;
 * called in timestamp order by the submitter. */
void hpsi_failed_keep(struct hps_worker *w, int64_t ts, int status);
/* Status of request ts whose slot was reused: its kept failure, 0 if it
 * succeeded, HPS_EUNTRACKED if that can no longer be told. */
int hpsi_failed_status(struct hps_worker *w, int64_t ts);

/* Drains answers and runs due callbacks; returns 1 if it did work. Takes
 * poll_lock with trylock, so a busy poller elsewhere makes it return 0. */
int hpsi_worker_progress(struct hps_worker *w);

/* Polls until pred(arg) holds or the deadline passes (HPS_ETIMEDOUT); a
 * server that died fails the requests it holds (HPS_EPEERDEAD). */
int hpsi_worker_wait_until(struct hps_worker *w, int (*pred)(void *), void *arg, int64_t deadline);

/* Starts the thread that runs callbacks nobody waits for; under submit_lock. */
void hpsi_worker_start_progress(struct hps_worker *w);

/* Ends a part that could not be sent; its callback runs on a later poll. */
void hpsi_worker_fail_part(struct hps_worker *w, struct hpsi_slot *s, uint32_t part, int status);
/* Drops the submitter's reference once every part is sent. */
void hpsi_worker_sent(struct hps_worker *w, struct hpsi_slot *s);

/* Marks the calling thread as inside submit (holding submit_lock): it may
 * drive progress but must not run callbacks, which may submit. */
void hpsi_worker_in_submit(int on);

#endif
