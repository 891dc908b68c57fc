/* Single-producer/single-consumer byte ring in shared memory.
 *
 * Records are [u32 len | u32 kind | payload], padded to 8 bytes. A record
 * never wraps: when it does not fit before the end of the buffer, the
 * producer fills the rest with a PAD record and starts at offset 0.
 *
 * Indices are free-running u32 byte counts masked by size-1, so they wrap
 * past 2^32 harmlessly (unsigned differences). The shared part holds only
 * the two published indices, each on its own cache line with a guard line
 * between; each side keeps its unpublished index and a cached copy of the
 * other side's index in process memory (struct hpsi_ring_prod/_cons), so a
 * batch of records costs one cache-line transfer each way.
 *
 * Memory ordering, by pair:
 *  (A) producer: store-release tail (hpsi_ring_publish)   pairs with
 *      consumer: load-acquire tail (hpsi_ring_peek): the payload written
 *      before the release is visible after the acquire.
 *  (B) consumer: store-release head (hpsi_ring_cons_publish) pairs with
 *      producer: load-acquire head (hpsi_ring_reserve): the consumer's
 *      reads of a record happen before the producer overwrites it.
 *
 * The producer is another process: the consumer bounds every record header
 * it reads by the bytes published (tail - head, at most the ring size) and
 * by the end of the buffer (records never wrap) before it hands out the
 * payload. A record that breaks those bounds means the rest of the
 * published bytes cannot be parsed: hpsi_ring_peek then drops them all
 * (logged and counted, shm/ring.c) and publishes the new head, so the
 * producer is not left waiting for room forever.
 */
#ifndef HPSI_RING_H
#define HPSI_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HPSI_CACHELINE 64
#define HPSI_RING_HDR 256 /* shared header bytes before the data */
#define HPSI_REC_HDR 8
#define HPSI_REC_PAD 1u

struct hpsi_ring {
	alignas(128) _Atomic uint32_t tail; /* written by the producer only */
	/* What the producer's records reach, in its own terms (servers: the
	 * last request answered on a response ring), for whoever takes over a
	 * dead producer's ring: (tail << 32 | value), in the two words
	 * alternately, each stored relaxed before the release of that tail.
	 * The word whose tail equals the published one is the one that holds
	 * (runtime/server/serve.c, hpsi_serve_publish_answers). */
	_Atomic uint64_t mark[2];
	char guard0[128 - sizeof(uint32_t) - 4 - 2 * sizeof(uint64_t)];
	alignas(128) _Atomic uint32_t head; /* written by the consumer only */
	char guard1[128 - sizeof(uint32_t)];
	/* data follows at HPSI_RING_HDR; its size is passed to the handles */
};

_Static_assert(sizeof(struct hpsi_ring) == HPSI_RING_HDR, "ring header is 256 bytes");

struct hpsi_ring_prod {
	struct hpsi_ring *r;
	unsigned char *data;
	uint32_t mask;
	uint32_t tail;       /* next byte to write, not yet published */
	uint32_t head_cache; /* consumer's head as last seen */
};

struct hpsi_ring_cons {
	struct hpsi_ring *r;
	unsigned char *data;
	uint32_t mask;
	uint32_t head;       /* next byte to read, not yet published */
	uint32_t tail_cache; /* producer's tail as last seen */
};

static inline uint32_t hpsi_rec_bytes(size_t len)
{
	return (uint32_t)((HPSI_REC_HDR + len + 7) & ~(size_t)7);
}

/* The largest payload a ring of `size` bytes accepts: a quarter, so that a
 * record plus the padding before it always fits in an empty ring. */
static inline size_t hpsi_ring_max_payload(uint32_t size)
{
	return size / 4 - HPSI_REC_HDR;
}

/* Sets both indices to `start` (tests use a value near 2^32). Call before
 * any process uses the ring. */
static inline void hpsi_ring_init(struct hpsi_ring *r, uint32_t start)
{
	atomic_store_explicit(&r->tail, start, memory_order_relaxed);
	atomic_store_explicit(&r->head, start, memory_order_relaxed);
}

static inline void hpsi_ring_prod_attach(struct hpsi_ring_prod *p, struct hpsi_ring *r, uint32_t size)
{
	p->r = r;
	p->data = (unsigned char *)r + HPSI_RING_HDR;
	p->mask = size - 1;
	p->tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	p->head_cache = atomic_load_explicit(&r->head, memory_order_acquire); /* pairs with (B) */
}

static inline void hpsi_ring_cons_attach(struct hpsi_ring_cons *c, struct hpsi_ring *r, uint32_t size)
{
	c->r = r;
	c->data = (unsigned char *)r + HPSI_RING_HDR;
	c->mask = size - 1;
	c->head = atomic_load_explicit(&r->head, memory_order_relaxed);
	c->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire); /* pairs with (A) */
}

/* Returns room for a payload of len bytes, or NULL when the ring is full
 * (or len exceeds hpsi_ring_max_payload). Follow with hpsi_ring_commit. */
static inline void *hpsi_ring_reserve(struct hpsi_ring_prod *p, size_t len)
{
	uint32_t size = p->mask + 1;
	if (len > hpsi_ring_max_payload(size))
		return NULL;
	uint32_t need = hpsi_rec_bytes(len);
	uint32_t pos = p->tail & p->mask;
	uint32_t to_end = size - pos;
	uint32_t total = need <= to_end ? need : to_end + need;
	if (size - (p->tail - p->head_cache) < total) {
		/* (B): acquire the consumer's head before reusing its bytes. */
		p->head_cache = atomic_load_explicit(&p->r->head, memory_order_acquire);
		if (size - (p->tail - p->head_cache) < total)
			return NULL;
	}
	if (need > to_end) {
		uint32_t *pad = (uint32_t *)(p->data + pos);
		pad[0] = to_end - HPSI_REC_HDR;
		pad[1] = HPSI_REC_PAD;
		p->tail += to_end;
		pos = 0;
	}
	uint32_t *hdr = (uint32_t *)(p->data + pos);
	hdr[0] = (uint32_t)len;
	hdr[1] = 0;
	return hdr + 2;
}

/* Ends the record reserved last; len must not exceed the reserved one
 * (a record may shrink after it was filled). Invisible until publish. */
static inline void hpsi_ring_commit(struct hpsi_ring_prod *p, size_t len)
{
	uint32_t *hdr = (uint32_t *)(p->data + (p->tail & p->mask));
	hdr[0] = (uint32_t)len;
	p->tail += hpsi_rec_bytes(len);
}

/* Makes committed records visible to the consumer: (A) release. */
static inline void hpsi_ring_publish(struct hpsi_ring_prod *p)
{
	atomic_store_explicit(&p->r->tail, p->tail, memory_order_release);
}

/* Drops every published byte after a record that breaks its bounds, logs
 * why and publishes the new head (shm/ring.c). */
void hpsi_ring_drop_corrupt(struct hpsi_ring_cons *c, uint32_t len, uint32_t kind);
/* Records dropped that way by this process. */
uint64_t hpsi_ring_corrupt_count(void);

/* Returns the next record's payload and length, or NULL when empty (or
 * when the published bytes were dropped as corrupt). */
static inline void *hpsi_ring_peek(struct hpsi_ring_cons *c, size_t *len)
{
	uint32_t size = c->mask + 1;
	for (;;) {
		if (c->head == c->tail_cache) {
			/* (A): acquire the producer's tail, and so its payloads. */
			c->tail_cache = atomic_load_explicit(&c->r->tail, memory_order_acquire);
			if (c->head == c->tail_cache)
				return NULL;
		}
		uint32_t pos = c->head & c->mask;
		uint32_t avail = c->tail_cache - c->head; /* published, not consumed */
		uint32_t to_end = size - pos;
		uint32_t *hdr = (uint32_t *)(c->data + pos);
		/* read once: the producer's process could still change them */
		uint32_t rlen = hdr[0], kind = hdr[1];
		if (avail > size || avail < HPSI_REC_HDR) {
			hpsi_ring_drop_corrupt(c, rlen, kind);
			return NULL;
		}
		if (kind == HPSI_REC_PAD) {
			/* a pad fills exactly the rest of the buffer */
			if (rlen != to_end - HPSI_REC_HDR || to_end > avail) {
				hpsi_ring_drop_corrupt(c, rlen, kind);
				return NULL;
			}
			c->head += to_end;
			continue;
		}
		if (kind != 0 || rlen > hpsi_ring_max_payload(size) || hpsi_rec_bytes(rlen) > avail ||
		    hpsi_rec_bytes(rlen) > to_end) {
			hpsi_ring_drop_corrupt(c, rlen, kind);
			return NULL;
		}
		*len = rlen;
		return hdr + 2;
	}
}

/* True when a record is waiting, without consuming it. */
static inline int hpsi_ring_nonempty(struct hpsi_ring_cons *c)
{
	return c->head != atomic_load_explicit(&c->r->tail, memory_order_acquire); /* (A) */
}

/* True when published records await the consumer; any thread may ask
 * (it reads only the shared indices). */
static inline int hpsi_ring_pending(struct hpsi_ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_relaxed) !=
	       atomic_load_explicit(&r->tail, memory_order_acquire); /* (A) */
}

/* Consumes the record returned by the last peek; its bytes stay readable
 * until hpsi_ring_cons_publish. */
static inline void hpsi_ring_consume(struct hpsi_ring_cons *c, size_t len)
{
	c->head += hpsi_rec_bytes(len);
}

/* Hands the bytes before `pos` back to the producer, which may be fewer
 * than were consumed (a bridge that keeps requests until they are
 * answered, to read them again: net/bridge_failover.c): (B) release. */
static inline void hpsi_ring_cons_publish_at(struct hpsi_ring_cons *c, uint32_t pos)
{
	atomic_store_explicit(&c->r->head, pos, memory_order_release);
}
/* Hands consumed bytes back to the producer: (B) release. */
static inline void hpsi_ring_cons_publish(struct hpsi_ring_cons *c)
{
	atomic_store_explicit(&c->r->head, c->head, memory_order_release);
}

#endif
