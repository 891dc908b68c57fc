/* Server internals shared by the serving loop (server.c), the request
 * path (serve.c) and replication (replica.c).
 *
 * A server holds key ranges: its own one, and with HPS_REPLICAS=K the K
 * ranges of the servers before it in the placement order π, as a backup
 * (net/route.h, hpsi_replica; on one host, the K ranks before it). It serves a
 * range (answers its requests) while it is the range's primary: its own
 * range always, another one once every replica before it is gone. The
 * rings of worker w for range r (hpsi_seg_ring(w, r)) belong to the range,
 * not to a process: whoever serves r consumes them, so a backup that takes
 * a range over continues its request stream where the dead primary left
 * it, with the order of every worker's requests kept. */
#ifndef HPSI_SERVE_H
#define HPSI_SERVE_H

#include <stdint.h>

#include "hps/server.h"
#include "net/codec.h"
#include "runtime/client/ctx.h"
#include "runtime/server/store.h"
#include "shm/ring.h"

/* One worker as seen by one key range. */
struct peer {
	struct hpsi_ring_cons req;  /* attached while the range is served */
	struct hpsi_ring_prod resp;
	uint32_t clock;  /* the worker's clock as last announced to this range */
	uint64_t phase;  /* deterministic BSP: see push_must_wait (serve.c) */
	/* The head request is a pull held back for staleness; it stays in the
	 * ring (so nothing behind it overtakes it) until the clocks move. */
	int held;
	uint32_t held_head;
	uint64_t held_epoch;
	int64_t held_since; /* when the head was first held (counters) */
	/* Replication: the timestamp of the last push applied to this range
	 * (a resent or re-read push at or below it is not applied again), and,
	 * on a ring taken over, the last request the previous primary had
	 * answered (it is not answered twice). */
	int64_t last_seq;
	/* (timestamp + 1) mod 2^32 of the last request answered on the answer
	 * ring, published with it (struct hpsi_ring's mark); on a ring taken
	 * over (adopted), requests at or below it were answered already. */
	uint32_t answered;
	int adopted;
	/* A ring taken over is read again up to reread_end (its tail then):
	 * those requests may carry clocks below what the forwards said. */
	int rereading;
	uint32_t reread_end;
	unsigned mark_word; /* which mark word the next publication uses */
};

struct range_sync; /* recover.c */
struct kept_store; /* recover.c */

struct range_state {
	uint32_t id;          /* the range: index of its first server */
	int serving;          /* this server is its primary now */
	/* Taken over across hosts: a bridge resends the requests after the
	 * last one its host had answered, so a request may come again after
	 * later clocks were forwarded here (net/bridge_failover.c). */
	int resent;
	/* This server holds a whole copy (always, but in a replacement
	 * until the range's copy ended): it may serve the range. */
	int synced;
	/* Per replica index: the incarnation of that server this range's
	 * pushes are forwarded to; a replacement (another incarnation) gets
	 * them once it has the range's copy (recover.c). */
	uint32_t fwd_incarnation[HPSI_MAX_REPLICAS + 1];
	/* With room (replicated_room): the rank its pushes are forwarded to,
	 * per index, with that incarnation. Set by the copy that made it a
	 * backup, not read from the backup table, which a scale changes while
	 * forwards are on their way (a new backup has incarnation 0 like the
	 * one it replaces). */
	uint32_t fwd_rank[HPSI_MAX_REPLICAS + 1];
	struct range_sync *sync; /* this server copies the range to a replacement */
	/* The range was handed back to this server + 1 (0: none) of that
	 * incarnation: not taken over again while that one runs. */
	uint32_t handed_to, handed_incarnation;
	/* A copy this server receives: BEGIN seen, the next FINAL piece
	 * expected (by worker), and a FINAL of a range handed back that
	 * waits for this replacement to serve its own range first. */
	int copy_begun, attach_pending;
	/* With room (replicated_room): a table named this server for the
	 * range since its copy arrived. A copy's FINAL is published before its
	 * primary names the target in the backup table (recover.c
	 * room_handed), so a fresh copy is not named yet: only a named one is
	 * dropped once no table names it (move.c hpsi_move_drop_unnamed). */
	int named;
	uint32_t copy_next_worker;
	/* The copy it receives: when its BEGIN came, the record bytes since
	 * (the log line of a move across hosts, move_apply in recover.c) */
	int64_t copy_began;
	uint64_t copy_bytes;
	/* The number of the move that brought the range here (its FINAL's;
	 * 0: none yet), which this host's number may not show yet: the
	 * source raises that only after it stored this server as the owner
	 * (move.c hpsi_move_handed) */
	uint32_t moved_in;
	hps_handler handler;  /* the store's, or the user's */
	void *arg;
	struct hpsi_store *store; /* NULL with a user handler */
	/* A load across hosts (HPSI_CKPT_PREPARE): the table read aside,
	 * swapped in by COMMIT, dropped by ABORT or any later request. */
	struct hpsi_store *prepared;
	/* Stores whose tables went whole in a copy that was dropped before
	 * the target answered (a checkpoint load, hpsi_recover_cancel): each
	 * kept, with the memfds the target opens when it reads them, until
	 * the target read past it on their ring or is gone (recover.c). A
	 * list: a second load may drop a second copy before the target read
	 * the first. */
	struct kept_store *kept;
	unsigned dtype, wire;     /* stored and ring value types */
	int64_t staleness;        /* HPS_STALENESS of this range; -1: ASP */
	int ordered;              /* HPS_DETERMINISTIC under BSP */
	uint64_t epoch;           /* bumped whenever a clock moves or a worker finishes */
	uint64_t min_epoch;
	uint32_t min_clock;       /* smallest clock of the unfinished workers at min_epoch */
	struct peer *peers;       /* one per worker */
};

struct server {
	hps_ctx *ctx;
	struct hpsi_seg *seg;
	uint32_t nworkers, nservers, me, replicas;
	struct range_state *ranges; /* replicas + 1: [0] its own, [i] hpsi_replica_range(me, i) */
	uint32_t nranges;
	struct hpsi_msg_bounds *heaps; /* each worker's heap slice */
	unsigned char *finished;       /* per worker: closed or dead (or VACANT: vacant) */
	/* Workers that join (members.c): per worker slot, VACANT to this
	 * server so far; any: the job has such slots; join_pending: one is
	 * claimed but not yet ALIVE (min clocks are 0 meanwhile); the
	 * membership epoch last looked at. */
	unsigned char *vacant;
	int any_vacant, join_pending;
	uint32_t members_seen;
	int64_t probe_ns;              /* checks of the workers' processes at most this often */
	/* forwarded pushes: in from the servers before this one in π (ranges
	 * it backs up), out to the servers after it; indexed by server */
	struct hpsi_ring_cons *fwd_in;
	struct hpsi_ring_prod *fwd_out;
	unsigned char *fwd_dirty;  /* out ring: 1 records to publish, 2 published */
	unsigned char *fwd_urgent; /* out ring: a worker waits for that backup */
	unsigned char *ack_dirty; /* own answer ring of a worker has acks to publish */
	size_t answer_max;        /* largest inline answer */
	float *scratch;           /* f32 values of a compressed request */
	size_t scratch_len;
	uint32_t ckpt_seen;       /* last checkpoint request served */
	/* A replacement server (JOINING) until it serves its own range again. */
	int joining;
	/* Tests (HPS_FAILPOINT=forwarded:RANK:N): this server exits at once
	 * in its Nth batch, after publishing its forwards, before its answers
	 * and the release of the requests: a backup then reads requests again
	 * that it applied already. 0: never. */
	uint64_t die_in_batch;
	/* Tests (HPS_FAILPOINT=clockdie:RANK:WORKER:N): this server exits at
	 * once when it took worker WORKER's Nth clock message, before it
	 * forwarded it to the backups: the clock is lost with it (clocks are
	 * not answered, so no ring or bridge keeps them). 0: never. */
	uint64_t die_at_clock;
	uint32_t die_clock_worker;
	/* Tests (HPS_FAILPOINT=handback:RANK): this server's first hand-back
	 * takes the takeover's first look (are the replicas before it gone?)
	 * just before its FINAL goes out, while the replacement surely joins,
	 * and keeps it in handback_look (range index + 1); its next takeover
	 * check uses that look and waits until the replacement is no longer
	 * JOINING (at most HPS_TIMEOUT_MS) before it asks whether the range
	 * is still handed back: as a check preempted between its two looks
	 * while the replacement read the FINAL and stored ALIVE. */
	int wait_after_handback, handback_look;
	/* Tests (HPS_FAILPOINT=nolook:RANK): this server does not look at
	 * the workers that joined (hpsi_members_look) until it sent the FINAL
	 * of a copy: a move's source that had not seen a join yet. */
	int skip_looks;
	/* Tests (HPS_FAILPOINT=noadopt:RANK): this server cannot map the
	 * tables of a range moved to it (as an fd it cannot open), after it
	 * mapped the pool: the source sends records instead (recover.c). */
	int refuse_adopt;
	/* Tests (HPS_FAILPOINT=finalpause:RANK:MS): this server's first move
	 * (hps scale) waits MS ms before its FINAL goes out, after the copy:
	 * a scale that ends meanwhile makes its plan from the owner table as
	 * it was (recover.c send_final, test_scale_end_during_move). */
	unsigned final_pause_ms;
	/* Tests (HPS_FAILPOINT=handslow:MS): every server waits MS ms after
	 * it stored a moved range's new owner, before the membership epoch
	 * moves again (hpsi_move_hand_slow): a program that reads
	 * hps_num_servers meanwhile must see the epoch moved already. */
	unsigned hand_slow_ms;
	/* Tests (HPS_FAILPOINT=handbackdie:RANK): this server, a replacement,
	 * exits (60 ms later) when it read the last FINAL piece of a range
	 * handed back to it, before it clears its lacking bit or serves a
	 * request:
	 * the range goes back to its source's host, whose bridge still holds
	 * what a third host sent it after the hand-back (net/bridge_failover.c,
	 * the RESET record). */
	int die_at_handback;
	/* The number of the last SYNC_WHOLE this server sent (recover.c). */
	uint32_t whole_seq;
	/* Copy messages dropped for another incarnation of this rank (recover.c). */
	uint32_t stale_copies;
	struct hpsi_counters *stats; /* this server's block (server_stats.h) */
	/* Key ranges move between servers (hpsi_seg_movable, move.c): the
	 * ranges array has room for every range of the job; the handler
	 * new ranges get; the plan number (moves_seq) last looked at. */
	int movable;
	/* A replicated job with room (hpsi_seg_room with replicas): a scale
	 * moves primaries and backups by copies (recover.c, find_room). */
	int replicated_room;
	struct range_state *ack_rs; /* hpsi_move_ack_range's, kept while it serves */
	hps_handler handler;
	void *handler_arg;
	uint32_t moves_seen;
};

enum { SERVE_RETRY = 0, SERVE_DONE = 1, SERVE_HELD = 2 };

/* members.c */
void hpsi_members_setup(struct server *sv);
/* Counts the workers that joined since the last look (membership epoch). */
void hpsi_members_look(struct server *sv);
/* Raises worker wk's clock and phase at rs to at least the clock it
 * joined at, when this server counts it (after a copy's FINAL set them:
 * the source may not have seen the join). */
void hpsi_members_floor(struct server *sv, struct range_state *rs, uint32_t wk);

/* serve.c */
uint32_t hpsi_serve_min_clock(struct server *sv, struct range_state *rs);
void hpsi_serve_take_phase(struct range_state *rs, struct peer *p, const struct hpsi_msg_hdr *h);
int hpsi_serve_take_clock(struct range_state *rs, struct peer *p, uint32_t clock);
/* Publishes a worker's answer ring with its mark (answers, then acks). */
void hpsi_serve_publish_answers(struct peer *p);
/* rs is served elsewhere from now (handed back, moved, or made a backup):
 * this server stops serving it and holds no pull of it any more. */
void hpsi_serve_stop(struct server *sv, struct range_state *rs);
/* One pass over the workers' rings of a served range; returns requests handled. */
int hpsi_serve_round(struct server *sv, struct range_state *rs);
/* Runs the range's handler on a checked request whose answer space is
 * answer (wire type, r->out_cap values); a compressed range's handler
 * works on f32 in scratch. Returns the handler's result. */
int hpsi_serve_apply(struct server *sv, struct range_state *rs, hps_request *r, unsigned char *answer);

/* server.c: sets up key range `id` in sv->ranges (found, or added: not
 * served until a copy of it ends); NULL without memory. */
struct range_state *hpsi_server_range(struct server *sv, uint32_t id);

/* move.c: key ranges that move between server processes (hps scale
 * --servers; a job with room for more servers and no replicas). */
/* Applies copies sent to this server and starts or advances those it
 * sends; returns work done. */
int hpsi_move_step(struct server *sv);
/* 1 if a copy or a new plan waits (the idle sleep's check). */
int hpsi_move_pending(struct server *sv);
/* 1 once this server is to leave (its rank is at or above the plan's
 * servers) and has handed every range over: it closes. */
int hpsi_move_done_leaving(struct server *sv);
/* A replicated job with room: drops the tables of ranges no table names
 * this server for any more (a scale moved their backup away). */
void hpsi_move_drop_unnamed(struct server *sv);
/* The range this server serves first (its answer ring carries its acks
 * as a backup: replica.c), or NULL. */
struct range_state *hpsi_move_ack_range(struct server *sv);
/* The source's end of a move, after its FINAL: stops serving rs, stores
 * the new owner, drops the range's table (the target answered that it
 * mapped the tables, with fds of its own, before the FINAL went). mb:
 * what moved, records and tables mapped; mapped: the keys of those
 * tables. */
void hpsi_move_handed(struct server *sv, struct range_state *rs, uint32_t to, uint32_t moved, double mb, double ms,
		      uint64_t mapped);
/* Whether the plan's entry for rs is older than the range's last move
 * (shm/segment.h, moves_off): then it does not move it (move.c). */
int hpsi_move_plan_older(const struct server *sv, const struct range_state *rs);
/* HPS_FAILPOINT=handslow:MS: waits MS ms (struct server) between a
 * hand-over's store of range's new owner and the epoch's second move. */
void hpsi_move_hand_slow(struct server *sv, uint32_t range);

/* replica.c */
/* Applies what server `from` sent on its ring to this one. */
int hpsi_replica_drain_from(struct server *sv, uint32_t from, int *stuck);
/* Room reserved on the forward rings of a range's live backups. */
struct fwd_slots {
	uint32_t n;
	uint8_t mask; /* bit i: replica i of the range (the answer's fwd_mask) */
	uint32_t incarnations; /* byte i: its incarnation (fwd_incarnations) */
	uint32_t to[HPSI_MAX_REPLICAS];
	void *at[HPSI_MAX_REPLICAS];
};
/* Reserves room for forwarding a request of len bytes to every live
 * backup of rs; 0 when a ring is full (nothing is written then). */
int hpsi_replica_reserve(struct server *sv, const struct range_state *rs, size_t len, struct fwd_slots *f);
/* Writes the forwarded copies of rec into the reserved room. */
void hpsi_replica_forward(struct server *sv, const struct fwd_slots *f, const void *rec, size_t len);
/* Publishes forwarded records; hpsi_replica_wake then rings their
 * backups' bells (after the answers: a backup is off the answer's path). */
void hpsi_replica_publish(struct server *sv);
void hpsi_replica_wake(struct server *sv);
/* Applies the pushes forwarded to this server; returns records handled. */
int hpsi_replica_drain(struct server *sv);
/* Takes over the ranges whose earlier replicas are all gone; returns how many. */
int hpsi_replica_takeover(struct server *sv);
/* 1 if forwarded records wait, or a range waits to be taken over. */
int hpsi_replica_pending(struct server *sv);
/* Notices dead servers before this one (a syscall each: only when idle). */
void hpsi_replica_check_earlier(struct server *sv);
/* Every replica of rs before replica i is gone and one of them died (a
 * replacement still joining stands for a dead one). */
int hpsi_replica_earlier_gone(struct server *sv, const struct range_state *rs, uint32_t i);

/* digest.c: one line per held key range (keys, a hash of every record)
 * at HPS_LOG=info; replicas of a range log the same line. */
void hpsi_digest_log(struct server *sv);

/* recover.c: copying key ranges to a replacement server. */
/* A replacement's start: nothing held, its own range not served. */
void hpsi_recover_setup(struct server *sv);
/* Starts and advances the copies this server sends; returns work done. */
int hpsi_recover_step(struct server *sv);
/* Applies one HPSI_MSG_SYNC record from server `from`; 0 when it must be
 * tried again (a move's tables whose answer finds no room on the ring
 * back), 1 when consumed. */
int hpsi_recover_apply(struct server *sv, uint32_t from, const void *rec, size_t len);
/* A push applied to rs while it is copied: its keys go again. */
void hpsi_recover_dirty(struct range_state *rs, const uint64_t *keys, uint32_t n);
/* 1 while rs must not be served (the last part of its copy). */
int hpsi_recover_frozen(const struct range_state *rs);
/* 1 if a copy waits for room or a start (the idle sleep's check). */
int hpsi_recover_pending(struct server *sv);
/* 1 while the incarnation of the replacement rs was handed back to runs
 * (JOINING or ALIVE): rs is not taken over again meanwhile. */
int hpsi_recover_handed_back(const struct server *sv, const struct range_state *rs);
/* Drops rs's copy under way before the caller replaces its store: it
 * starts again. When its tables went whole and the target has not
 * answered, the store is kept for the target (struct range_state: kept)
 * and rs->store is NULL. */
void hpsi_recover_cancel(struct server *sv, struct range_state *rs);
void hpsi_recover_free(struct server *sv);

#endif
