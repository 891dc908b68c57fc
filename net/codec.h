/* The one message format of hps, on rings and (later) on the wire.
 *
 * A fixed 96-byte little-endian header, then the body:
 *   keys [nkeys x u64] | lens [nlens x u32, padded to 8] | values [val_bytes]
 * Large parts live in the sender's shared heap instead and travel as
 * offsets: keys|lens at keys_off (HPSI_F_HEAP_KEYS), values at vals_off
 * (HPSI_F_HEAP_VALS); the inline body then omits them. A pull may name a
 * heap buffer for its answer (HPSI_F_HEAP_RESP, resp_off/resp_cap): the
 * server writes lens|values there and its response carries no body.
 *
 * hpsi_msg_check validates every count, length and offset against the bytes
 * received and the bounds the receiver allows before anything is read;
 * products of counts are checked for overflow (runtime/common/checked.h). */
#ifndef HPSI_CODEC_H
#define HPSI_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define HPSI_MSG_MAGIC 0x4d535048u /* "HPSM" */
#define HPSI_MSG_VERSION 2
#define HPSI_MAX_KEYS (1u << 30)
/* Largest value bytes a message may declare, and the largest answer a
 * fixed-width pull may ask for (nkeys x width x value size, checked by
 * hpsi_msg_check): far below 2^64, so sums and size_t products of a
 * checked message's counts cannot wrap. */
#define HPSI_MAX_VAL_BYTES ((uint64_t)1 << 48)

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "hps messages are little-endian; this port needs byte swapping in net/codec"
#endif

enum hpsi_msg_type {
	HPSI_MSG_PUSH = 1,
	HPSI_MSG_PULL = 2,
	HPSI_MSG_PUSHPULL = 3,
	HPSI_MSG_RESPONSE = 4,
	HPSI_MSG_CLOCK = 5, /* a worker reached `clock`; no body, no answer */
	/* Server to server only, on the forward rings: a key range's copy for
	 * a replacement server (runtime/server/recover.c checks it;
	 * hpsi_msg_check refuses it). */
	HPSI_MSG_SYNC = 6,
};

/* What a bridge reads of a SYNC it carries to another host
 * (net/bridge_recover.c): `part` HPSI_SYNC_FINAL with `width` 1 is a
 * hand-back, whose last piece (nkeys + val_bytes / HPSI_SYNC_PEER_BYTES
 * reaches the job's workers) moves the key range `range`; recover.c
 * checks that its layout agrees. */
enum { HPSI_SYNC_FINAL = 2, HPSI_SYNC_WHOLE = 3, HPSI_SYNC_PEER_BYTES = 24 };
/* A FINAL piece of a move (hps scale) and the HANDBACK record that tells
 * other hosts of it carry the range's move number after the move in
 * `resp_cap` (unused without HPSI_F_HEAP_RESP, which neither has): the
 * hosts that read it raise theirs to it (shm/segment.h, moves_off). */

enum hpsi_msg_flags {
	HPSI_F_HEAP_KEYS = 1, /* keys|lens at keys_off in the sender's heap */
	HPSI_F_HEAP_VALS = 2, /* values at vals_off in the sender's heap */
	HPSI_F_HEAP_RESP = 4, /* answer goes to resp_off (resp_cap bytes) */
	HPSI_F_LENS = 8,      /* variable-length values */
	/* Replication (HPS_REPLICAS): on a request, a primary forwards it to
	 * a backup of its key range; on a response, a backup says it applied
	 * the push (runtime/server/replica.c). */
	HPSI_F_REPLICA = 16,
};


struct hpsi_msg_hdr {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint16_t app;
	uint16_t customer;
	uint32_t sender;    /* worker rank */
	int64_t timestamp;
	uint32_t part;      /* server index of this part of the request */
	uint32_t clock;
	int32_t status;     /* responses: 0 or HPS_E* */
	uint32_t nkeys;
	uint32_t nlens;     /* 0, or nkeys with HPSI_F_LENS (requests), or lens answered */
	uint32_t width;     /* floats per key in fixed-width mode */
	uint64_t val_bytes;
	uint8_t dtype;     /* enum hpsi_wire_dtype of the values */
	/* A push's response with replicas: bit i, replica i of the range was
	 * forwarded the push (the worker waits for the acks of those only). */
	uint8_t fwd_mask;
	uint16_t range;    /* the key range (its first server's index) */
	/* A push's response with replicas: byte i, the low 8 bits of the
	 * incarnation of replica i the push was forwarded to (a replacement
	 * of it since did not get it). */
	uint32_t fwd_incarnations;
	uint64_t keys_off;
	uint64_t vals_off;
	uint64_t resp_off;
	uint64_t resp_cap;
};

_Static_assert(sizeof(struct hpsi_msg_hdr) == 96, "wire header is 96 bytes");

/* A checked message: pointers into the received bytes or the heap. For a
 * response whose answer is in the heap (HPSI_F_HEAP_RESP), lens and vals
 * point into that buffer. */
struct hpsi_msg_view {
	const struct hpsi_msg_hdr *hdr;
	const uint64_t *keys;
	const uint32_t *lens;
	const void *vals;
	unsigned char *resp; /* HPSI_F_HEAP_RESP: the answer buffer */
};

/* Where heap offsets may point: [lo, hi) of the segment, mapped at base. */
struct hpsi_msg_bounds {
	unsigned char *base;
	uint64_t lo, hi;
};

static inline size_t hpsi_lens_bytes(uint64_t nlens)
{
	return (size_t)((nlens * 4 + 7) & ~(uint64_t)7);
}

/* Fills a header; the rest of the fields are zero. */
/* Inline body bytes of a message with these counts and flags, or
 * SIZE_MAX when the counts overflow. */
size_t hpsi_msg_inline_bytes(uint64_t nkeys, uint64_t nlens, uint64_t val_bytes, unsigned flags);

void hpsi_msg_init(struct hpsi_msg_hdr *h, int type, uint32_t sender, int64_t ts);

/* Validates len bytes at buf. bounds may be NULL, which refuses heap
 * references. Returns 0 or HPS_EPROTO and sets *why to the reason. */
int hpsi_msg_check(const void *buf, size_t len, const struct hpsi_msg_bounds *bounds,
		   struct hpsi_msg_view *v, const char **why);

/* Counts of bad messages dropped by this process, by reason. */
uint64_t hpsi_msg_bad_count(void);
void hpsi_msg_count_bad(const char *why);

#endif
