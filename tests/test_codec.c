/* Message codec: valid messages round-trip; every malformed one is
 * refused before anything past the received bytes is read. */
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "net/codec.h"
#include "runtime/common/dtype.h"
#include "tests/harness.h"

static unsigned char buf[4096];

/* A push of 3 keys x width 2, inline. */
static size_t make_push(void)
{
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, HPSI_MSG_PUSH, 7, 42);
	h.nkeys = 3;
	h.width = 2;
	h.val_bytes = 3 * 2 * 4;
	memcpy(buf, &h, sizeof h);
	uint64_t keys[3] = {1, 5, 9};
	float vals[6] = {1, 2, 3, 4, 5, 6};
	memcpy(buf + sizeof h, keys, sizeof keys);
	memcpy(buf + sizeof h + sizeof keys, vals, sizeof vals);
	return sizeof h + sizeof keys + sizeof vals;
}

static void test_codec_push_round_trip(void)
{
	size_t len = make_push();
	struct hpsi_msg_view v;
	const char *why = NULL;
	CU_ASSERT_EQUAL_FATAL(hpsi_msg_check(buf, len, NULL, &v, &why), 0);
	CU_ASSERT_EQUAL(v.hdr->sender, 7);
	CU_ASSERT_EQUAL(v.hdr->timestamp, 42);
	CU_ASSERT_EQUAL(v.keys[2], 9);
	CU_ASSERT_EQUAL(((const float *)v.vals)[5], 6.0f);
}

static void test_codec_lens_round_trip(void)
{
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, HPSI_MSG_PUSHPULL, 1, 3);
	h.flags = HPSI_F_LENS;
	h.nkeys = h.nlens = 3;
	uint32_t lens[3] = {1, 0, 4};
	h.val_bytes = 5 * 4;
	uint64_t keys[3] = {2, 3, 4};
	size_t off = 0;
	memcpy(buf, &h, sizeof h), off += sizeof h;
	memcpy(buf + off, keys, sizeof keys), off += sizeof keys;
	memcpy(buf + off, lens, sizeof lens), off += hpsi_lens_bytes(3);
	float vals[5] = {9, 8, 7, 6, 5};
	memcpy(buf + off, vals, sizeof vals), off += sizeof vals;
	struct hpsi_msg_view v;
	const char *why;
	CU_ASSERT_EQUAL_FATAL(hpsi_msg_check(buf, off, NULL, &v, &why), 0);
	CU_ASSERT_EQUAL(v.lens[2], 4);
	CU_ASSERT_EQUAL(((const float *)v.vals)[4], 5.0f);
	/* lens that do not add up to the values are refused */
	((struct hpsi_msg_hdr *)buf)->val_bytes = 4 * 4;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, off - 4, NULL, &v, &why), HPS_EPROTO);
}

static void expect_bad(size_t len, const struct hpsi_msg_bounds *b)
{
	struct hpsi_msg_view v;
	const char *why = NULL;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, len, b, &v, &why), HPS_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(why);
}

static void test_codec_truncated_refused(void)
{
	size_t len = make_push();
	for (size_t cut = 0; cut < len; cut += 7)
		expect_bad(cut, NULL);
	expect_bad(len - 1, NULL);
	expect_bad(len + 8, NULL); /* trailing bytes are as wrong as missing ones */
}

static void test_codec_bad_fields_refused(void)
{
	struct hpsi_msg_hdr *h = (struct hpsi_msg_hdr *)buf;
	size_t len;
	len = make_push(), h->magic ^= 1, expect_bad(len, NULL);
	len = make_push(), h->version = 9, expect_bad(len, NULL);
	len = make_push(), h->type = 0, expect_bad(len, NULL);
	len = make_push(), h->type = 77, expect_bad(len, NULL);
	len = make_push(), h->flags = 0x100, expect_bad(len, NULL);
	len = make_push(), h->dtype = 5, expect_bad(len, NULL);
	len = make_push(), h->nkeys = 0, expect_bad(len, NULL);
	len = make_push(), h->width = 0, expect_bad(len, NULL);
	len = make_push(), h->width = 3, expect_bad(len, NULL);
	len = make_push(), h->val_bytes = 23, expect_bad(len, NULL);
	len = make_push(), h->nlens = 3, expect_bad(len, NULL);
}

static void test_codec_huge_counts_refused(void)
{
	struct hpsi_msg_hdr *h = (struct hpsi_msg_hdr *)buf;
	size_t len = make_push();
	h->nkeys = 0xFFFFFFFFu;
	expect_bad(len, NULL);
	len = make_push();
	h->nkeys = 1u << 29;
	h->width = 1u << 31;
	h->val_bytes = (uint64_t)h->nkeys * h->width * 4;
	expect_bad(len, NULL);
	len = make_push();
	h->val_bytes = UINT64_MAX - 3;
	expect_bad(len, NULL);
}

/* Counts whose product passes 2^64: keys x width x value size of a push
 * that wraps to the value bytes it declares, and a pull asking for such an
 * answer. The keys sit in a (never read) heap range so that the message
 * itself stays short. */
static void test_codec_product_overflow_refused(void)
{
	static unsigned char seg[64];
	struct hpsi_msg_bounds b = {seg, 0, (uint64_t)1 << 40};
	struct hpsi_msg_hdr *h = (struct hpsi_msg_hdr *)buf;
	struct hpsi_msg_view v;
	const char *why = NULL;
	for (int type = HPSI_MSG_PUSH; type <= HPSI_MSG_PULL; type++) {
		hpsi_msg_init(h, type, 0, 1);
		h->flags = HPSI_F_HEAP_KEYS;
		h->dtype = HPSI_WIRE_F64;
		h->nkeys = 1u << 30;
		h->width = 1u << 31; /* 2^30 x 2^31 x 8 = 2^64: wraps to 0 */
		h->val_bytes = 0;
		CU_ASSERT_EQUAL(hpsi_msg_check(buf, sizeof *h, &b, &v, &why), HPS_EPROTO);
		CU_ASSERT_PTR_NULL(v.hdr);
		CU_ASSERT_STRING_EQUAL(why, "keys x width x value size overflows");
	}
	/* a pull whose answer fits 64 bits but no receiver's memory */
	hpsi_msg_init(h, HPSI_MSG_PULL, 0, 1);
	h->flags = HPSI_F_HEAP_KEYS;
	h->nkeys = 1u << 20;
	h->width = 1u << 30;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, sizeof *h, &b, &v, &why), HPS_EPROTO);
	CU_ASSERT_STRING_EQUAL(why, "keys x width x value size overflows");
	/* the largest allowed answer is still accepted */
	h->width = 1u << 8; /* 2^20 x 2^8 x 4 = 2^30 */
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, sizeof *h, &b, &v, &why), 0);
}

/* A refusal leaves the view's header unset, so callers that log their own
 * reason for a well-formed message keep the codec's reason here. */
static void test_codec_refusal_keeps_reason(void)
{
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, HPSI_MSG_PUSH, 1, 3);
	h.flags = HPSI_F_LENS;
	h.nkeys = h.nlens = 2;
	h.val_bytes = 2 * 4; /* the lens below say 3 values */
	uint64_t keys[2] = {2, 3};
	uint32_t lens[2] = {1, 2};
	size_t off = 0;
	memcpy(buf, &h, sizeof h), off += sizeof h;
	memcpy(buf + off, keys, sizeof keys), off += sizeof keys;
	memcpy(buf + off, lens, sizeof lens), off += hpsi_lens_bytes(2);
	memset(buf + off, 0, 8), off += 8;
	struct hpsi_msg_view v;
	const char *why = NULL;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, off, NULL, &v, &why), HPS_EPROTO);
	CU_ASSERT_PTR_NULL(v.hdr);
	CU_ASSERT_STRING_EQUAL(why, "value bytes differ from the sum of lens");
}

static void test_codec_heap_offsets_checked(void)
{
	static unsigned char seg[1 << 16];
	struct hpsi_msg_bounds b = {seg, 4096, 8192};
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, HPSI_MSG_PUSH, 0, 1);
	h.flags = HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS;
	h.nkeys = 4;
	h.width = 1;
	h.val_bytes = 16;
	h.keys_off = 4096;
	h.vals_off = 4096 + 32;
	memcpy(buf, &h, sizeof h);
	struct hpsi_msg_view v;
	const char *why;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, sizeof h, &b, &v, &why), 0);
	CU_ASSERT_PTR_EQUAL(v.keys, seg + 4096);
	expect_bad(sizeof h, NULL); /* heap references need bounds */
	struct hpsi_msg_hdr *m = (struct hpsi_msg_hdr *)buf;
	m->keys_off = 8192 - 16, expect_bad(sizeof h, &b); /* runs past the slice */
	m->keys_off = 1024, expect_bad(sizeof h, &b);      /* before the slice */
	m->keys_off = 4096, m->vals_off = UINT64_MAX - 4, expect_bad(sizeof h, &b);
	m->vals_off = 4096 + 32, m->flags |= HPSI_F_HEAP_RESP, m->resp_off = 8000, m->resp_cap = 4096;
	expect_bad(sizeof h, &b);
}

static void test_codec_response_rules(void)
{
	struct hpsi_msg_hdr h;
	hpsi_msg_init(&h, HPSI_MSG_RESPONSE, 0, 1);
	h.val_bytes = 8;
	memcpy(buf, &h, sizeof h);
	memset(buf + sizeof h, 0, 8);
	struct hpsi_msg_view v;
	const char *why;
	CU_ASSERT_EQUAL(hpsi_msg_check(buf, sizeof h + 8, NULL, &v, &why), 0);
	((struct hpsi_msg_hdr *)buf)->nkeys = 1;
	expect_bad(sizeof h + 8, NULL); /* responses carry no keys */
}

/* Random bytes, and random corruption of a valid message: never accepted
 * with pointers outside the buffer. */
static void test_codec_random_garbage(void)
{
	srand(7);
	struct hpsi_msg_view v;
	const char *why;
	for (int i = 0; i < 200000; i++) {
		size_t len = make_push();
		int flips = 1 + rand() % 4;
		for (int k = 0; k < flips; k++)
			buf[rand() % len] ^= (unsigned char)(1 + rand() % 255);
		if (rand() % 3 == 0)
			len = (size_t)rand() % (len + 1);
		if (hpsi_msg_check(buf, len, NULL, &v, &why) == 0) {
			CU_ASSERT((const unsigned char *)v.keys >= buf &&
				  (const unsigned char *)v.vals + v.hdr->val_bytes <= buf + len);
		}
	}
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_codec_push_round_trip", test_codec_push_round_trip},
		{"test_codec_lens_round_trip", test_codec_lens_round_trip},
		{"test_codec_truncated_refused", test_codec_truncated_refused},
		{"test_codec_bad_fields_refused", test_codec_bad_fields_refused},
		{"test_codec_huge_counts_refused", test_codec_huge_counts_refused},
		{"test_codec_product_overflow_refused", test_codec_product_overflow_refused},
		{"test_codec_refusal_keeps_reason", test_codec_refusal_keeps_reason},
		{"test_codec_heap_offsets_checked", test_codec_heap_offsets_checked},
		{"test_codec_response_rules", test_codec_response_rules},
		{"test_codec_random_garbage", test_codec_random_garbage},
		{NULL, NULL},
	};
	return run_suite("codec", cases);
}
