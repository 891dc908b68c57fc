/* libFuzzer target for the decoders of everything hps receives (`make
 * fuzz`). The first byte picks one: a ring record (hpsi_msg_check), a
 * bridge batch frame with its records (hpsi_batch_open/next, then each
 * message checked as the bridge does), a scheduler message
 * (hpsi_sched_check), or the bytes of a ring and its published tail as a
 * producer in another process could leave them (hpsi_ring_peek). Any bytes must be refused with a reason or accepted
 * with views that lie inside what was received (AddressSanitizer checks
 * every read and write below).
 *
 * Built with -DHPS_FUZZ_SEEDS it is instead the seed-corpus writer: one
 * valid message of each type and layout into the directory argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/error.h"
#include "net/codec.h"
#include "net/wire.h"
#include "shm/ring.h"

#define HEAP_BYTES 65536
#define HEAP_LO 4096 /* the sender's slice: [HEAP_LO, HEAP_BYTES) */
static _Alignas(64) unsigned char heap[HEAP_BYTES];

#ifndef HPS_FUZZ_SEEDS
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void touch(const struct hpsi_msg_view *v)
{
	const struct hpsi_msg_hdr *h = v->hdr;
	volatile uint64_t sink = 0;
	for (uint32_t i = 0; i < h->nkeys; i++)
		sink += v->keys[i];
	for (uint32_t i = 0; i < h->nlens; i++)
		sink += v->lens[i];
	const unsigned char *vals = v->vals;
	for (uint64_t i = 0; vals && i < h->val_bytes; i++)
		sink += vals[i];
	(void)sink;
}

static void fuzz_batch(const unsigned char *rec, size_t size)
{
	struct hpsi_batch_reader r;
	const char *why = NULL;
	if (hpsi_batch_open(&r, rec, size, &why)) {
		if (!why)
			abort();
		return;
	}
	struct hpsi_rec_hdr h;
	const void *msg;
	int rc;
	while ((rc = hpsi_batch_next(&r, &h, &msg, &why)) == 1) {
		struct hpsi_msg_view v;
		/* the message is copied as the bridge reads it: aligned, exact */
		void *m = malloc(h.len ? h.len : 1);
		memcpy(m, msg, h.len);
		if (hpsi_msg_check(m, h.len, NULL, &v, &why) == 0)
			touch(&v);
		free(m);
	}
	if (rc < 0 && !why)
		abort();
}

#define FUZZ_RING 4096

/* A ring whose data are the input (zero-filled) and whose tail the input's
 * first 4 bytes publish: the consumer must hand out only payloads inside
 * the ring and the published bytes. The ring is an exact-size heap block,
 * so a read past its end is caught. */
static void fuzz_ring(const unsigned char *in, size_t size)
{
	uint32_t tail = 0;
	if (size >= 4)
		memcpy(&tail, in, 4), in += 4, size -= 4;
	struct hpsi_ring *r = aligned_alloc(128, HPSI_RING_HDR + FUZZ_RING);
	if (!r)
		return;
	memset(r, 0, HPSI_RING_HDR + FUZZ_RING);
	memcpy((unsigned char *)r + HPSI_RING_HDR, in, size < FUZZ_RING ? size : FUZZ_RING);
	hpsi_ring_init(r, 0);
	atomic_store_explicit(&r->tail, tail, memory_order_release);
	struct hpsi_ring_cons c;
	hpsi_ring_cons_attach(&c, r, FUZZ_RING);
	volatile unsigned char sink = 0;
	size_t len;
	const unsigned char *p;
	for (int n = 0; n < FUZZ_RING / HPSI_REC_HDR && (p = hpsi_ring_peek(&c, &len)); n++) {
		if (p < (unsigned char *)r + HPSI_RING_HDR || p + len > (unsigned char *)r + HPSI_RING_HDR + FUZZ_RING ||
		    hpsi_rec_bytes(len) > (uint32_t)(tail - c.head))
			abort(); /* a payload outside the ring or the published bytes */
		for (size_t i = 0; i < len; i++)
			sink += p[i];
		hpsi_ring_consume(&c, len);
	}
	(void)sink;
	free(r);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 1)
		return 0;
	int kind = data[0] % 4;
	if (kind == 3) {
		fuzz_ring(data + 1, size - 1);
		return 0;
	}
	data++, size--;
	/* records are 8-byte aligned: copy to an exact-size heap block so that a
	 * read past the end is caught */
	unsigned char *rec = malloc(size ? size : 1);
	if (!rec)
		return 0;
	memcpy(rec, data, size);
	if (kind == 1) {
		fuzz_batch(rec, size);
		free(rec);
		return 0;
	}
	if (kind == 2) {
		const char *why = NULL;
		if (hpsi_sched_check(rec, size, &why) && !why)
			abort();
		free(rec);
		return 0;
	}
	struct hpsi_msg_bounds b = {heap, HEAP_LO, HEAP_BYTES};
	struct hpsi_msg_view v;
	const char *why = NULL;
	if (hpsi_msg_check(rec, size, &b, &v, &why) == 0) {
		touch(&v);
		if (v.resp)
			memset(v.resp, 0, v.hdr->resp_cap);
	} else if (!why) {
		abort(); /* a refusal always names its reason */
	}
	free(rec);
	return 0;
}
#else
static void write_kind(const char *dir, const char *name, int kind, const void *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	unsigned char k = (unsigned char)kind;
	if (!f || fwrite(&k, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n) {
		perror(path);
		exit(1);
	}
	fclose(f);
}

static void write_seed(const char *dir, const char *name, const void *p, size_t n)
{
	write_kind(dir, name, 0, p, n);
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
	/* a pull of many keys (in the heap) x a wide width: the answer's size
	 * is a product of counts near overflow */
	hpsi_msg_init(h, HPSI_MSG_PULL, 0, 13);
	h->flags = HPSI_F_HEAP_KEYS, h->dtype = 1;
	h->nkeys = 4, h->width = 1u << 20, h->keys_off = HEAP_LO;
	write_seed(argv[1], "pull_heap_keys_wide", buf, sizeof *h);
	/* f16 values */
	hpsi_msg_init(h, HPSI_MSG_PUSH, 1, 12);
	h->dtype = 2, h->nkeys = 1, h->width = 4, h->val_bytes = 8;
	keys[0] = 99;
	write_seed(argv[1], "push_f16", buf, sizeof *h + 8 + 8);
	/* a bridge batch of two records: a push and a clock */
	static _Alignas(8) unsigned char batch[1024];
	struct hpsi_batch_hdr bh = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, 2, 1};
	size_t at = sizeof bh;
	hpsi_msg_init(h, HPSI_MSG_PUSH, 1, 7);
	h->nkeys = 2, h->width = 1, h->val_bytes = 8;
	keys[0] = 1, keys[1] = 2;
	struct hpsi_rec_hdr rh = {(uint32_t)(sizeof *h + 24), 1, 0, 0};
	memcpy(batch + at, &rh, sizeof rh);
	memcpy(batch + at + sizeof rh, buf, rh.len);
	at += hpsi_batch_rec_bytes(rh.len);
	hpsi_msg_init(h, HPSI_MSG_CLOCK, 1, -1);
	rh.len = sizeof *h;
	memcpy(batch + at, &rh, sizeof rh);
	memcpy(batch + at + sizeof rh, buf, rh.len);
	at += hpsi_batch_rec_bytes(rh.len);
	memcpy(batch, &bh, sizeof bh);
	write_kind(argv[1], "batch", 1, batch, at);
	/* a primary's forward to a backup on another host (net/bridge_fwd.c) */
	hpsi_msg_init(h, HPSI_MSG_PUSH, 1, 8);
	h->nkeys = 2, h->width = 1, h->val_bytes = 8, h->flags = HPSI_F_REPLICA;
	struct hpsi_rec_hdr fh = {(uint32_t)(sizeof *h + 24), 0, 1, HPSI_REC_FORWARD};
	struct hpsi_batch_hdr fb = {HPSI_BATCH_MAGIC, HPSI_WIRE_VERSION, 0, 1, 1};
	memcpy(batch, &fb, sizeof fb);
	memcpy(batch + sizeof fb, &fh, sizeof fh);
	memcpy(batch + sizeof fb + sizeof fh, buf, fh.len);
	write_kind(argv[1], "batch_forward", 1, batch, sizeof fb + hpsi_batch_rec_bytes(fh.len));
	/* scheduler messages: a registration, a heartbeat, a barrier and its failure */
	static struct hpsi_sched_register reg;
	hpsi_sched_init(&reg.h, HPSI_SCH_REGISTER, 0);
	snprintf(reg.name, sizeof reg.name, "h0");
	snprintf(reg.endpoint, sizeof reg.endpoint, "tcp://10.0.0.1:9000");
	reg.nservers = reg.nworkers = reg.total_servers = reg.total_workers = 1;
	write_kind(argv[1], "sched_register", 2, &reg, sizeof reg);
	static struct hpsi_sched_states st;
	hpsi_sched_init(&st.h, HPSI_SCH_HEARTBEAT, 0);
	st.nnodes = 2, st.state[0] = 1, st.state[1] = 2;
	write_kind(argv[1], "sched_heartbeat", 2, &st, sizeof st);
	struct hpsi_sched_hdr sb;
	hpsi_sched_init(&sb, HPSI_SCH_BARRIER, 0);
	write_kind(argv[1], "sched_barrier", 2, &sb, sizeof sb);
	struct hpsi_sched_broken bk = {.code = HPS_EPEERDEAD};
	hpsi_sched_init(&bk.h, HPSI_SCH_BROKEN, 0);
	write_kind(argv[1], "sched_broken", 2, &bk, sizeof bk);
	/* a checkpoint across hosts: a step asked of a host, and an answer */
	static struct hpsi_sched_ckpt ck;
	hpsi_sched_init(&ck.h, HPSI_SCH_CKPT_RUN, 1);
	ck.h.gen = 3, ck.op = HPSI_CKPT_PREPARE;
	snprintf(ck.dir, sizeof ck.dir, "/tmp/model.ckpt");
	write_kind(argv[1], "sched_ckpt_run", 2, &ck, sizeof ck);
	hpsi_sched_init(&ck.h, HPSI_SCH_CKPT_END, 0);
	ck.op = HPSI_CKPT_LOAD, ck.seq = 2, ck.status = HPS_EPROTO, ck.dir[0] = 0;
	snprintf(ck.why, sizeof ck.why, "host h1: /tmp/model.ckpt/server-1.hpsckpt fails its checksum");
	write_kind(argv[1], "sched_ckpt_end", 2, &ck, sizeof ck);
	/* a ring holding a record, a pad to the end and none after: tail, data */
	static _Alignas(8) unsigned char ring[4 + 4096];
	uint32_t rtail = 4096 + 16, *w = (uint32_t *)(ring + 4);
	memcpy(ring, &rtail, 4);
	w[0] = 8, w[1] = 0;                       /* record of 8 bytes at 0 */
	w[4] = 4096 - 16 - 8, w[5] = HPSI_REC_PAD; /* pad from 16 to the end */
	write_kind(argv[1], "ring", 3, ring, sizeof ring);
	return 0;
}
#endif
