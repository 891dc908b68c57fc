/* libFuzzer target for the message decoder (`make fuzz`): any bytes given
 * to hpsi_msg_check as a ring record must be refused with a reason or
 * accepted with a view whose every key, length, value and answer byte lies
 * inside the record or the sender's heap (AddressSanitizer checks each
 * read and write below).
 *
 * Built with -DHPS_FUZZ_SEEDS it is instead the seed-corpus writer: one
 * valid message of each type and layout into the directory argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/codec.h"

#define HEAP_BYTES 65536
#define HEAP_LO 4096 /* the sender's slice: [HEAP_LO, HEAP_BYTES) */
static _Alignas(64) unsigned char heap[HEAP_BYTES];

#ifndef HPS_FUZZ_SEEDS
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	/* ring records are 8-byte aligned: copy to an exact-size heap block so
	 * that a read past the end is caught */
	unsigned char *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	struct hpsi_msg_bounds b = {heap, HEAP_LO, HEAP_BYTES};
	struct hpsi_msg_view v;
	const char *why = NULL;
	if (hpsi_msg_check(rec, size, &b, &v, &why) == 0) {
		const struct hpsi_msg_hdr *h = v.hdr;
		volatile uint64_t sink = 0;
		for (uint32_t i = 0; i < h->nkeys; i++)
			sink += v.keys[i];
		for (uint32_t i = 0; i < h->nlens; i++)
			sink += v.lens[i];
		const unsigned char *vals = v.vals;
		for (uint64_t i = 0; vals && i < h->val_bytes; i++)
			sink += vals[i];
		if (v.resp)
			memset(v.resp, 0, h->resp_cap);
		(void)sink;
	} else if (!why) {
		abort(); /* a refusal always names its reason */
	}
	free(rec);
	return 0;
}
#else
static void write_seed(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	static _Alignas(8) unsigned char buf[4096];
	struct hpsi_msg_hdr *h = (struct hpsi_msg_hdr *)buf;
	uint64_t *keys = (uint64_t *)(h + 1);
	/* inline push of 3 keys x width 2 */
	hpsi_msg_init(h, HPSI_MSG_PUSH, 1, 7);
	h->nkeys = 3, h->width = 2, h->val_bytes = 3 * 2 * 4;
	for (int i = 0; i < 3; i++)
		keys[i] = (uint64_t)i * 10;
	write_seed(argv[1], "push_inline", buf, sizeof *h + 24 + 24);
	/* pull, inline answer */
	hpsi_msg_init(h, HPSI_MSG_PULL, 1, 8);
	h->nkeys = 3, h->width = 2;
	write_seed(argv[1], "pull_inline", buf, sizeof *h + 24);
	/* pushpull in lens mode: lens after the keys, padded to 8 */
	hpsi_msg_init(h, HPSI_MSG_PUSHPULL, 2, 9);
	h->flags = HPSI_F_LENS;
	h->nkeys = 3, h->nlens = 3, h->val_bytes = (1 + 2 + 3) * 4;
	uint32_t *lens = (uint32_t *)(keys + 3);
	lens[0] = 1, lens[1] = 2, lens[2] = 3;
	write_seed(argv[1], "pushpull_lens", buf, sizeof *h + 24 + hpsi_lens_bytes(3) + 24);
	/* push with keys and values in the heap, pull answering into it */
	hpsi_msg_init(h, HPSI_MSG_PUSH, 0, 10);
	h->flags = HPSI_F_HEAP_KEYS | HPSI_F_HEAP_VALS;
	h->nkeys = 100, h->width = 4, h->val_bytes = 100 * 4 * 4;
	h->keys_off = HEAP_LO, h->vals_off = HEAP_LO + 800;
	write_seed(argv[1], "push_heap", buf, sizeof *h);
	hpsi_msg_init(h, HPSI_MSG_PULL, 0, 11);
	h->flags = HPSI_F_HEAP_RESP;
	h->nkeys = 2, h->width = 4, h->resp_off = HEAP_LO + 8192, h->resp_cap = 32;
	write_seed(argv[1], "pull_heap_answer", buf, sizeof *h + 16);
	/* responses: inline values, an error, an answer in the heap */
	hpsi_msg_init(h, HPSI_MSG_RESPONSE, 0, 8);
	h->val_bytes = 24;
	write_seed(argv[1], "response_inline", buf, sizeof *h + 24);
	hpsi_msg_init(h, HPSI_MSG_RESPONSE, 0, 9);
	h->status = -16;
	write_seed(argv[1], "response_error", buf, sizeof *h);
	hpsi_msg_init(h, HPSI_MSG_RESPONSE, 0, 11);
	h->flags = HPSI_F_HEAP_RESP, h->val_bytes = 32, h->resp_off = HEAP_LO + 8192, h->resp_cap = 32;
	write_seed(argv[1], "response_heap", buf, sizeof *h);
	hpsi_msg_init(h, HPSI_MSG_CLOCK, 3, -1);
	h->clock = 5;
	write_seed(argv[1], "clock", buf, sizeof *h);
	/* f16 values */
	hpsi_msg_init(h, HPSI_MSG_PUSH, 1, 12);
	h->dtype = 2, h->nkeys = 1, h->width = 4, h->val_bytes = 8;
	keys[0] = 99;
	write_seed(argv[1], "push_f16", buf, sizeof *h + 8 + 8);
	return 0;
}
#endif
