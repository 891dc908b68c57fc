#include "net/codec.h"

#include <stdatomic.h>
#include <string.h>

#include "hps/error.h"
#include "runtime/common/checked.h"
#include "runtime/common/dtype.h"
#include "runtime/common/log.h"

size_t hpsi_msg_inline_bytes(uint64_t nkeys, uint64_t nlens, uint64_t val_bytes, unsigned flags)
{
	if (nkeys > HPSI_MAX_KEYS || nlens > HPSI_MAX_KEYS || val_bytes > HPSI_MAX_VAL_BYTES)
		return SIZE_MAX;
	size_t n = 0;
	if (!(flags & HPSI_F_HEAP_KEYS))
		n += (size_t)nkeys * 8 + hpsi_lens_bytes(nlens);
	if (!(flags & HPSI_F_HEAP_VALS))
		n += (size_t)val_bytes;
	return n;
}

void hpsi_msg_init(struct hpsi_msg_hdr *h, int type, uint32_t sender, int64_t ts)
{
	memset(h, 0, sizeof *h);
	h->magic = HPSI_MSG_MAGIC;
	h->version = HPSI_MSG_VERSION;
	h->type = (uint8_t)type;
	h->sender = sender;
	h->timestamp = ts;
}

static int in_bounds(const struct hpsi_msg_bounds *b, uint64_t off, uint64_t len)
{
	return b && off >= b->lo && off <= b->hi && len <= b->hi - off;
}

#define BAD(reason)              \
	do {                     \
		*why = reason;   \
		return HPS_EPROTO; \
	} while (0)

int hpsi_msg_check(const void *buf, size_t len, const struct hpsi_msg_bounds *bounds,
		   struct hpsi_msg_view *v, const char **why)
{
	memset(v, 0, sizeof *v);
	if (len < sizeof(struct hpsi_msg_hdr))
		BAD("shorter than the header");
	const struct hpsi_msg_hdr *h = buf;
	if (h->magic != HPSI_MSG_MAGIC)
		BAD("bad magic");
	if (h->version != HPSI_MSG_VERSION)
		BAD("unknown version");
	if (h->type < HPSI_MSG_PUSH || h->type > HPSI_MSG_CLOCK)
		BAD("unknown type");
	if (h->type == HPSI_MSG_CLOCK) {
		if (len != sizeof *h || h->nkeys || h->nlens || h->val_bytes || (h->flags & ~HPSI_F_REPLICA) || h->width)
			BAD("clock message with a body");
		v->hdr = h;
		return 0;
	}
	if (h->flags & ~(HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS | HPSI_F_HEAP_RESP | HPSI_F_LENS | HPSI_F_REPLICA))
		BAD("unknown flags");
	if (h->dtype > HPSI_WIRE_BF16)
		BAD("unknown dtype");
	size_t esz = hpsi_dtype_size(h->dtype);
	if (h->val_bytes % esz)
		BAD("value bytes not a multiple of the dtype");
	int is_resp = h->type == HPSI_MSG_RESPONSE;
	int lens = (h->flags & HPSI_F_LENS) != 0;
	if (!is_resp) {
		if (h->nkeys == 0)
			BAD("request without keys");
		uint32_t want_lens = lens && h->type != HPSI_MSG_PULL ? h->nkeys : 0;
		if (h->nlens != want_lens || (lens ? h->width != 0 : h->width == 0))
			BAD("lens count or width inconsistent with the keys");
		/* keys x width x value size: the pushed bytes, or the answer of a
		 * pull; up to 2^67, so checked, and bounded like val_bytes so that
		 * receivers may compute it in size_t unchecked. */
		uint64_t fixed;
		if (!lens && (hpsi_mul3_u64(h->nkeys, h->width, esz, &fixed) || fixed > HPSI_MAX_VAL_BYTES))
			BAD("keys x width x value size overflows");
		if (!lens && h->type != HPSI_MSG_PULL && fixed != h->val_bytes)
			BAD("value bytes differ from keys x width");
		if (h->type == HPSI_MSG_PULL && h->val_bytes != 0)
			BAD("pull carries values");
	} else if (h->nkeys != 0) {
		BAD("response carries keys");
	}
	if (is_resp && (h->flags & (HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS)))
		BAD("response with heap body");
	size_t body = hpsi_msg_inline_bytes(h->nkeys, h->nlens, h->val_bytes, h->flags);
	if (body == SIZE_MAX)
		BAD("counts overflow");
	if (is_resp && (h->flags & HPSI_F_HEAP_RESP)) {
		/* the answer is in the worker's buffer: nothing inline */
		if (hpsi_lens_bytes(h->nlens) + h->val_bytes > h->resp_cap)
			BAD("answer larger than its buffer");
		body = 0;
	}
	if (len - sizeof *h != body)
		BAD("length differs from the declared counts");
	const unsigned char *p = (const unsigned char *)(h + 1);
	size_t keys_bytes = (size_t)h->nkeys * 8 + hpsi_lens_bytes(h->nlens);
	const unsigned char *k = p, *vals = p + keys_bytes;
	if (h->flags & HPSI_F_HEAP_KEYS) {
		if (!in_bounds(bounds, h->keys_off, keys_bytes) || h->keys_off % 8)
			BAD("keys offset outside the sender's heap");
		k = bounds->base + h->keys_off;
		vals = p;
	}
	if (h->flags & HPSI_F_HEAP_VALS) {
		if (!in_bounds(bounds, h->vals_off, h->val_bytes) || h->vals_off % 4)
			BAD("values offset outside the sender's heap");
		vals = bounds->base + h->vals_off;
	}
	if (h->flags & HPSI_F_HEAP_RESP) {
		if (!in_bounds(bounds, h->resp_off, h->resp_cap) || h->resp_off % 8)
			BAD("answer buffer outside the sender's heap");
		v->resp = bounds->base + h->resp_off;
	}
	v->keys = (const uint64_t *)k;
	v->lens = (const uint32_t *)(k + (size_t)h->nkeys * 8);
	v->vals = vals;
	if (is_resp && (h->flags & HPSI_F_HEAP_RESP)) { /* the answer: lens|values in the buffer */
		v->lens = (const uint32_t *)v->resp;
		v->vals = v->resp + hpsi_lens_bytes(h->nlens);
	}
	if (lens && !is_resp && h->type != HPSI_MSG_PULL) {
		/* at most 2^30 lens of 2^32 - 1: the sum fits; times the size may not */
		uint64_t sum = 0, bytes;
		for (uint32_t i = 0; i < h->nlens; i++)
			sum += v->lens[i];
		if (hpsi_mul_u64(sum, esz, &bytes) || bytes != h->val_bytes)
			BAD("value bytes differ from the sum of lens");
	}
	/* Set last: callers read a set hdr as "well formed" and log their own
	 * reason, so a refusal above must leave it NULL to keep *why. */
	v->hdr = h;
	return 0;
}

static _Atomic uint64_t bad_messages;

void hpsi_msg_count_bad(const char *why)
{
	uint64_t n = atomic_fetch_add_explicit(&bad_messages, 1, memory_order_relaxed) + 1;
	/* The first few get a line each; after that every 1000th, so a flood
	 * of garbage cannot flood the log. */
	if (n <= 10 || n % 1000 == 0)
		hpsi_warn("dropped malformed message (%s); %llu so far", why, (unsigned long long)n);
}

uint64_t hpsi_msg_bad_count(void)
{
	return atomic_load_explicit(&bad_messages, memory_order_relaxed);
}
