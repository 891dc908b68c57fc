/* What crosses hosts over ZeroMQ.
 *
 * Bridge to bridge: one ZeroMQ message is a batch frame, optionally
 * followed by one value frame. The batch frame is a 16-byte batch header
 * then `count` records, each a 16-byte record header and an hps message of
 * `len` bytes (net/codec.h, inline form: no heap references), padded to 8.
 * A record flagged HPSI_REC_VALS_FRAME is the only record of its batch;
 * its values are the whole next frame (sent from the worker's shared heap
 * without a copy), and its message says so with HPSI_F_HEAP_VALS at
 * offset 0 of that frame.
 *
 * Bridge and scheduler: fixed-size little-endian messages, one per frame.
 *
 * Every decoder here checks every length, count and index against the
 * bytes received before anything is read; a bad frame is refused whole
 * with a reason. */
#ifndef HPSI_WIRE_H
#define HPSI_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "shm/segment.h"

#define HPSI_BATCH_MAGIC 0x42535048u /* "HPSB" */
#define HPSI_SCHED_MAGIC 0x43535048u /* "HPSC" */
#define HPSI_WIRE_VERSION 7 /* 2: heartbeats carry the host's totals; 3: join words (states), launched (assignment); 4: launched_servers (assignment), the plan of a scale (states); 5: the RESET record, the checkpoint UNLOCK, an empty endpoint for a host that joins later; 6: the plan's move numbers (states), a move's number in its FINAL and HANDBACK (resp_cap); 7: the plan's backups (states), the new backup in a HANDBACK (keys_off) */
#define HPSI_MAX_HOSTS 64
#define HPSI_ENDPOINT_MAX 128

struct hpsi_batch_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint32_t count;    /* records */
	uint32_t from;     /* sending host */
};

/* HPSI_REC_FORWARD: a primary's forward to a backup (HPS_REPLICAS) read
 * from the forward ring of server `worker` (the primary) to server
 * `server` (the backup), to go into that ring on the backup's host
 * (net/bridge_fwd.c); never in a batch with a value frame. */
/* HPSI_REC_FENCE: server `worker` of the sending host died, and every
 * forward it published came before this record on this stream; its key
 * ranges go on at their next replicas (net/bridge_failover.c). The
 * message is a bare header; never in a batch with a value frame. */
/* HPSI_REC_SYNC (with HPSI_REC_FORWARD): a copy of a key range to a
 * replacement server (HPSI_MSG_SYNC, carried as it is in the forward
 * ring: header and body, which hpsi_msg_check does not read;
 * net/bridge_recover.c). */
/* HPSI_REC_HANDBACK: server `worker` of the sending host handed key range
 * `range` (in the bare header) back to the replacement server `server` on
 * another host: the range's pairs of this host go to it (sent to every
 * host but the replacement's, which learns it from the FINAL itself;
 * net/bridge_recover.c). Alone, never with a value frame. */
/* HPSI_REC_RESET: the sending host moved the pair of its worker `worker`
 * and key range `server` away from this host: requests of that pair it
 * sent here before this record and that still wait here (held) are
 * dropped, the sender reads them again for wherever the range went
 * (net/bridge_failover.c). A bare header, alone, never with a value
 * frame. */
enum {
	HPSI_REC_VALS_FRAME = 1,
	HPSI_REC_FORWARD = 2,
	HPSI_REC_FENCE = 4,
	HPSI_REC_SYNC = 8,
	HPSI_REC_HANDBACK = 16,
	HPSI_REC_RESET = 32
};

struct hpsi_rec_hdr {
	uint32_t len;      /* bytes of the message that follows */
	uint32_t worker;   /* the request's worker rank (requests and responses); forwards: the primary */
	uint32_t server;   /* the server rank; forwards: the backup */
	uint32_t flags;    /* HPSI_REC_VALS_FRAME, HPSI_REC_FORWARD, HPSI_REC_FENCE, HPSI_REC_SYNC, HPSI_REC_HANDBACK, HPSI_REC_RESET */
};

/* Bytes a record of a message of len bytes takes in a batch frame. */
static inline size_t hpsi_batch_rec_bytes(size_t len)
{
	return sizeof(struct hpsi_rec_hdr) + ((len + 7) & ~(size_t)7);
}

/* A cursor over the records of a received batch frame. */
struct hpsi_batch_reader {
	const unsigned char *buf;
	size_t len, at;
	uint32_t left, from;
	int vals_frame; /* the batch's one record carries its values in the next frame */
};

/* Checks the batch header; 0, or -1 with *why. */
int hpsi_batch_open(struct hpsi_batch_reader *r, const void *buf, size_t len, const char **why);
/* Next record: 1 and its parts, 0 at the end, -1 with *why when the frame
 * lies about its sizes. The message bytes are 8-byte aligned. */
int hpsi_batch_next(struct hpsi_batch_reader *r, struct hpsi_rec_hdr *rec, const void **msg, const char **why);

/* ---- scheduler protocol ---- */

enum hpsi_sched_type {
	HPSI_SCH_REGISTER = 1,  /* bridge -> scheduler: who I am */
	HPSI_SCH_ASSIGN = 2,    /* scheduler -> bridge: the job's hosts and ranks */
	HPSI_SCH_HEARTBEAT = 3, /* bridge -> scheduler: alive, and my nodes' states */
	HPSI_SCH_STATES = 4,    /* scheduler -> bridges: every node's state */
	HPSI_SCH_BARRIER = 5,   /* bridge -> scheduler: my workers reached barrier gen */
	HPSI_SCH_RELEASE = 6,   /* scheduler -> bridges: barrier gen is complete */
	HPSI_SCH_BYE = 7,       /* bridge -> scheduler: my nodes finished, I leave */
	HPSI_SCH_ABORT = 8,     /* scheduler -> bridges: the job cannot start (reason) */
	HPSI_SCH_EXPIRED = 9,   /* bridge -> scheduler: a worker's deadline passed in barrier gen */
	HPSI_SCH_BROKEN = 10,   /* scheduler -> bridges: barrier gen failed (code), and all later */
	/* Checkpoints across hosts (struct hpsi_sched_ckpt) */
	HPSI_SCH_CKPT = 11,      /* bridge -> scheduler: a local process asks for a save or a load */
	HPSI_SCH_CKPT_RUN = 12,  /* scheduler -> bridges: have your servers do step op of round gen */
	HPSI_SCH_CKPT_DONE = 13, /* bridge -> scheduler: step op of round gen ended (status) */
	HPSI_SCH_CKPT_END = 14,  /* scheduler -> the asking bridge: request seq ended (status) */
};

struct hpsi_sched_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t host; /* sender's host index (bridges), or the receiver's (ASSIGN) */
	uint32_t gen;  /* barrier generation */
};

/* Settings every host must agree on (they shape routing and messages);
 * a registration carries a hash of each, so a host that differs is named. */
#define HPSI_SHARED_SETTINGS                                                                       \
	{ "KEY_RANGES", "UPDATER", "INIT", "STALENESS", "DTYPE", "COMPRESS", "DIRECT", "RING_KB", \
	  "HEAP_MB", "DETERMINISTIC", "REPLICAS" }
#define HPSI_NSHARED 11

struct hpsi_sched_register {
	struct hpsi_sched_hdr h;
	char name[HPSI_NAME_MAX];
	char endpoint[HPSI_ENDPOINT_MAX]; /* where its bridge listens */
	uint32_t nservers, nworkers;      /* processes it runs */
	uint32_t total_servers, total_workers; /* what it believes the job has */
	uint64_t settings[HPSI_NSHARED];  /* hpsi_settings_hash of each shared setting */
	uint64_t token;                   /* hpsi_settings_hash("JOB_TOKEN"): the job's own hosts know it */
};

/* Hash of setting HPS_<name> as this process sees it (unset hashes alike). */
uint64_t hpsi_settings_hash(const char *name);

struct hpsi_host_entry {
	char name[HPSI_NAME_MAX];
	char endpoint[HPSI_ENDPOINT_MAX];
	uint32_t srv_lo, srv_hi, wrk_lo, wrk_hi;
};

struct hpsi_sched_assign {
	struct hpsi_sched_hdr h;
	/* nworkers: worker slots (--max-workers); launched: the -w of the
	 * launch (0: nworkers); the slots past it (room) are the last host's,
	 * VACANT until a worker joins (net/bridge_join.c). nservers: server
	 * ranks and key ranges (--max-servers); launched_servers: the -s of
	 * the launch (0: nservers); the ranks past it (room) are the last
	 * host's, VACANT until a scale starts them */
	uint32_t nhosts, nservers, nworkers, launched;
	uint32_t launched_servers, pad;
	struct hpsi_host_entry hosts[HPSI_MAX_HOSTS];
};

/* What a host's processes did so far (shm/counters.h, summed by role),
 * sent with each heartbeat so that the scheduler's host can show every
 * host (hps top, hps metrics). Counts only: a forged or stale one changes
 * nothing but what is shown. */
struct hpsi_host_totals {
	uint64_t requests, push_keys, pull_keys, push_bytes, pull_bytes; /* its workers' */
	uint64_t in_flight, held, errors;  /* requests in flight, held by its servers, failed */
	uint64_t bridge_out, bridge_in;    /* bytes its bridge sent to and received from peers */
};

/* HEARTBEAT and STATES: one enum hpsi_node_state per node id; a
 * heartbeat fills only the sender's own nodes, and its totals.
 * restarts: HEARTBEAT, the restarts of the sender's workers so far
 * (--restart-workers); STATES, the whole job's (the scheduler's sum). */
/* join[n], for a worker slot n of the room (--max-workers; 0 elsewhere),
 * carries a join across hosts (net/bridge_join.c):
 *   HEARTBEAT from the slot's host: HPSI_JOIN_CLAIMED (a joiner took it,
 *     its start clock is not known yet), or HPSI_JOIN_CLOCK + c once it is
 *     ALIVE (c: its join clock);
 *   HEARTBEAT from another host: HPSI_JOIN_CLOCK + f once its servers
 *     hold pulls for the slot (f: that host's floor of the start clock);
 *   STATES: CLAIMED while some host has not answered, HPSI_JOIN_CLOCK + f
 *     (f: the largest floor) once all have, and HPSI_JOIN_CLOCK + c while
 *     the slot's state is ALIVE or later. */
enum { HPSI_JOIN_CLAIMED = 1, HPSI_JOIN_CLOCK = 2 };
/* join[n] for a server n (replicas across hosts, net/bridge_recover.c):
 * its incarnation << 8 | its `lacking` bits, from its host's heartbeat,
 * passed on in STATES; 0 for the first process of the rank. A newer
 * incarnation brings a dead server back (JOINING). */
#define HPSI_SRV_WORD(inc, lacking) ((uint32_t)(inc) << 8 | ((uint32_t)(lacking) & 0xffu))

struct hpsi_sched_states {
	struct hpsi_sched_hdr h;
	uint32_t nnodes, restarts;
	uint8_t state[HPSI_MAX_NODES];
	uint32_t join[HPSI_MAX_NODES];
	struct hpsi_host_totals totals; /* HEARTBEAT only */
	/* The plan of hps scale --servers across hosts (docs/ARCHITECTURE.md,
	 * "Elastic servers across hosts", step 5): from the last host's
	 * heartbeat (its launcher's plan, numbered by its moves_seq), passed
	 * on in STATES; every other host stores it and bumps its own
	 * moves_seq when plan_seq moves on. 0: no plan yet. plan_moves[r]:
	 * range r's move number when the plan was made (struct
	 * hpsi_seg_hdr, moves_off); a host that knows of a later move of r
	 * keeps its entry (net/bridge_scale.c). plan_backup[r]: with
	 * replicas (one backup with room), the rank the plan makes range r's
	 * backup; 0 without. */
	uint32_t plan_seq, plan_servers;
	uint16_t plan[HPSI_MAX_NODES];
	uint32_t plan_moves[HPSI_MAX_NODES];
	uint16_t plan_backup[HPSI_MAX_NODES];
};

/* BROKEN: the outcome of barrier gen (shm/barrier.h) for every host. */
struct hpsi_sched_broken {
	struct hpsi_sched_hdr h;
	int32_t code; /* HPS_EPEERDEAD, HPS_ETIMEDOUT or HPS_ECLOSED */
	uint32_t pad;
};

/* The four checkpoint messages. A save is one step (SAVE: every server
 * writes its file into dir, DIR.partial); a load two (PREPARE: every
 * server reads every file into a table aside; then COMMIT: it swaps that
 * in, or ABORT: it drops it). gen: the scheduler's round (RUN, DONE). */
struct hpsi_sched_ckpt {
	struct hpsi_sched_hdr h;
	uint32_t op;     /* CKPT, END: HPSI_CKPT_SAVE or _LOAD; RUN, DONE: the step */
	uint32_t seq;    /* CKPT, END: the asking bridge's request number */
	int32_t status;  /* DONE, END: 0 or an HPS_E* code (CKPT, RUN: 0) */
	uint32_t clock;  /* DONE (SAVE, PREPARE), END: the smallest saved clock */
	char dir[512];   /* CKPT, RUN: the directory, absolute */
	char why[256];   /* DONE, END: the reason of a failure */
};

struct hpsi_sched_abort {
	struct hpsi_sched_hdr h;
	char reason[256];
};

/* Fills a scheduler message header. */
void hpsi_sched_init(struct hpsi_sched_hdr *h, int type, uint32_t host);
/* Checks a received scheduler message (size for its type, magic, version,
 * counts, strings terminated, host names printable, endpoints of the form
 * tcp://ADDRESS:PORT); 0 or -1 with *why. */
int hpsi_sched_check(const void *buf, size_t len, const char **why);

#endif
