/* SPSC ring: empty, full, wrap-around of the byte ring and of the u32
 * indices past 2^32, record padding, a two-process stress test, and the
 * size of a job's rings by its shape. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/common/config.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "tests/harness.h"

#define SIZE 4096u

static struct hpsi_ring *new_ring(uint32_t size, uint32_t start)
{
	struct hpsi_ring *r = mmap(NULL, HPSI_RING_HDR + size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(r != MAP_FAILED);
	hpsi_ring_init(r, start);
	return r;
}

static void test_ring_empty(void)
{
	struct hpsi_ring *r = new_ring(SIZE, 0);
	struct hpsi_ring_cons c;
	hpsi_ring_cons_attach(&c, r, SIZE);
	size_t len;
	CU_ASSERT_PTR_NULL(hpsi_ring_peek(&c, &len));
	CU_ASSERT_FALSE(hpsi_ring_nonempty(&c));
	munmap(r, HPSI_RING_HDR + SIZE);
}

static void test_ring_unpublished_invisible(void)
{
	struct hpsi_ring *r = new_ring(SIZE, 0);
	struct hpsi_ring_prod p;
	struct hpsi_ring_cons c;
	hpsi_ring_prod_attach(&p, r, SIZE);
	hpsi_ring_cons_attach(&c, r, SIZE);
	char *d = hpsi_ring_reserve(&p, 5);
	memcpy(d, "hello", 5);
	hpsi_ring_commit(&p, 5);
	size_t len;
	CU_ASSERT_PTR_NULL(hpsi_ring_peek(&c, &len));
	hpsi_ring_publish(&p);
	d = hpsi_ring_peek(&c, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
	munmap(r, HPSI_RING_HDR + SIZE);
}

static void test_ring_full(void)
{
	struct hpsi_ring *r = new_ring(SIZE, 0);
	struct hpsi_ring_prod p;
	struct hpsi_ring_cons c;
	hpsi_ring_prod_attach(&p, r, SIZE);
	hpsi_ring_cons_attach(&c, r, SIZE);
	int n = 0;
	void *d;
	while ((d = hpsi_ring_reserve(&p, 56))) { /* 64-byte records */
		memset(d, n, 56);
		hpsi_ring_commit(&p, 56);
		n++;
	}
	CU_ASSERT_EQUAL(n, SIZE / 64);
	hpsi_ring_publish(&p);
	CU_ASSERT_PTR_NULL(hpsi_ring_reserve(&p, 1));
	size_t len = 0;
	unsigned char *rec = hpsi_ring_peek(&c, &len);
	CU_ASSERT_EQUAL(rec[0], 0);
	hpsi_ring_consume(&c, len);
	/* Consumed but not published: the producer must still see it full. */
	CU_ASSERT_PTR_NULL(hpsi_ring_reserve(&p, 56));
	hpsi_ring_cons_publish(&c);
	CU_ASSERT_PTR_NOT_NULL(hpsi_ring_reserve(&p, 56));
	munmap(r, HPSI_RING_HDR + SIZE);
}

static void test_ring_too_large_refused(void)
{
	struct hpsi_ring *r = new_ring(SIZE, 0);
	struct hpsi_ring_prod p;
	hpsi_ring_prod_attach(&p, r, SIZE);
	CU_ASSERT_PTR_NULL(hpsi_ring_reserve(&p, hpsi_ring_max_payload(SIZE) + 1));
	CU_ASSERT_PTR_NOT_NULL(hpsi_ring_reserve(&p, hpsi_ring_max_payload(SIZE)));
	munmap(r, HPSI_RING_HDR + SIZE);
}

/* Varying sizes force padding at the end of the buffer; indices start
 * just below 2^32 so they wrap during the test. */
static void run_sequence(uint32_t start)
{
	struct hpsi_ring *r = new_ring(SIZE, start);
	struct hpsi_ring_prod p;
	struct hpsi_ring_cons c;
	hpsi_ring_prod_attach(&p, r, SIZE);
	hpsi_ring_cons_attach(&c, r, SIZE);
	uint32_t sent = 0, got = 0;
	for (int round = 0; round < 2000; round++) {
		for (int k = 0; k < 3; k++) {
			size_t len = 1 + (sent * 37) % 900;
			unsigned char *d = hpsi_ring_reserve(&p, len);
			if (!d)
				break;
			for (size_t i = 0; i < len; i++)
				d[i] = (unsigned char)(sent + i);
			hpsi_ring_commit(&p, len);
			sent++;
		}
		hpsi_ring_publish(&p);
		size_t len;
		unsigned char *d;
		while ((d = hpsi_ring_peek(&c, &len))) {
			CU_ASSERT_EQUAL_FATAL(len, 1 + (got * 37) % 900);
			for (size_t i = 0; i < len; i++)
				if (d[i] != (unsigned char)(got + i))
					CU_FAIL_FATAL("record payload corrupted");
			hpsi_ring_consume(&c, len);
			got++;
			if (got % 2)
				break; /* leave some behind to vary the fill level */
		}
		hpsi_ring_cons_publish(&c);
	}
	CU_ASSERT(sent > 3000);
	CU_ASSERT(got > 0 && got <= sent);
	if (start > 0xF0000000u)
		CU_ASSERT(atomic_load(&r->tail) < start); /* it wrapped past 2^32 */
	munmap(r, HPSI_RING_HDR + SIZE);
}

static void test_ring_wrap_and_padding(void)
{
	run_sequence(0);
}

static void test_ring_index_wrap_past_2_32(void)
{
	run_sequence(0xFFFFF000u);
}

/* A record header written at pos, published up to head + published. */
static void put_raw(struct hpsi_ring *r, uint32_t start, uint32_t len, uint32_t kind, uint32_t published)
{
	uint32_t *hdr = (uint32_t *)((unsigned char *)r + HPSI_RING_HDR + (start & (SIZE - 1)));
	hdr[0] = len;
	hdr[1] = kind;
	atomic_store_explicit(&r->tail, start + published, memory_order_release);
}

/* The consumer refuses the header at `start`: nothing handed out, every
 * published byte dropped and handed back, the drop counted. */
static void expect_dropped(struct hpsi_ring *r, uint32_t start)
{
	struct hpsi_ring_cons c;
	hpsi_ring_cons_attach(&c, r, SIZE);
	uint64_t before = hpsi_ring_corrupt_count();
	size_t len;
	CU_ASSERT_PTR_NULL(hpsi_ring_peek(&c, &len));
	CU_ASSERT_EQUAL(hpsi_ring_corrupt_count(), before + 1);
	CU_ASSERT_EQUAL(atomic_load_explicit(&r->head, memory_order_acquire),
			atomic_load_explicit(&r->tail, memory_order_acquire));
	hpsi_ring_init(r, start);
}

/* Record lengths and kinds written by another process are bounded by what
 * it published and by the ring before any payload is handed out. */
static void test_ring_lying_records_dropped(void)
{
	const uint32_t near_end = SIZE - 64; /* 64 bytes before the buffer's end */
	struct hpsi_ring *r = new_ring(SIZE, 0);
	put_raw(r, 0, 1000, 0, 24);         /* longer than the 24 bytes published */
	expect_dropped(r, 0);
	put_raw(r, 0, 0xFFFFFFF0u, 0, 64);  /* far past the ring */
	expect_dropped(r, 0);
	put_raw(r, 0, 8, 7, 16);            /* unknown kind */
	expect_dropped(r, 0);
	put_raw(r, 0, 8, 0, 2 * SIZE);      /* a tail beyond the ring's size */
	expect_dropped(r, 0);
	put_raw(r, 0, 0, 0, 4);             /* less than a record header */
	expect_dropped(r, near_end);
	put_raw(r, near_end, 100, 0, 200);  /* would run past the buffer's end */
	expect_dropped(r, near_end);
	put_raw(r, near_end, 8, HPSI_REC_PAD, 200); /* a pad that does not reach the end */
	expect_dropped(r, near_end);
	put_raw(r, near_end, 56, HPSI_REC_PAD, 32); /* a pad past the published bytes */
	expect_dropped(r, 0);

	/* after a drop the ring works on: a proper record goes through */
	put_raw(r, 0, 1000, 0, 24);
	expect_dropped(r, 0);
	struct hpsi_ring_prod p;
	struct hpsi_ring_cons c;
	hpsi_ring_prod_attach(&p, r, SIZE);
	hpsi_ring_cons_attach(&c, r, SIZE);
	memcpy(hpsi_ring_reserve(&p, 5), "hello", 5);
	hpsi_ring_commit(&p, 5);
	hpsi_ring_publish(&p);
	size_t len;
	char *d = hpsi_ring_peek(&c, &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_EQUAL(len, 5);
	CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
	munmap(r, HPSI_RING_HDR + SIZE);
}

/* Two processes, 2 million records of varying size, a checksum on each
 * and a running count: nothing lost, duplicated, reordered or torn. */
static void test_ring_two_process_stress(void)
{
	const uint32_t size = 1u << 16, total = 2000000;
	struct hpsi_ring *r = new_ring(size, 0xFFFF0000u);
	pid_t pid = fork();
	if (pid == 0) {
		struct hpsi_ring_prod p;
		hpsi_ring_prod_attach(&p, r, size);
		for (uint32_t i = 0; i < total;) {
			size_t words = 1 + i % 31;
			uint64_t *d = hpsi_ring_reserve(&p, words * 8 + 8);
			if (!d) {
				hpsi_ring_publish(&p);
				continue;
			}
			uint64_t sum = 0;
			d[0] = i;
			for (size_t k = 1; k <= words; k++)
				sum += d[k] = (uint64_t)i * 2654435761u + k;
			d[0] = (uint64_t)i | (sum << 32);
			hpsi_ring_commit(&p, words * 8 + 8);
			if (++i % 8 == 0)
				hpsi_ring_publish(&p);
		}
		hpsi_ring_publish(&p);
		_exit(0);
	}
	struct hpsi_ring_cons c;
	hpsi_ring_cons_attach(&c, r, size);
	uint32_t next = 0, bad = 0;
	while (next < total) {
		size_t len;
		uint64_t *d = hpsi_ring_peek(&c, &len);
		if (!d)
			continue;
		size_t words = 1 + next % 31;
		uint64_t sum = 0;
		for (size_t k = 1; k <= words && k * 8 < len; k++)
			sum += d[k];
		if (len != words * 8 + 8 || (uint32_t)d[0] != next || (d[0] >> 32) != (sum & 0xFFFFFFFFu))
			bad++;
		hpsi_ring_consume(&c, len);
		if (++next % 16 == 0)
			hpsi_ring_cons_publish(&c);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 0);
	munmap(r, HPSI_RING_HDR + size);
}

/* HPS_RING_KB unset: the rings of a job share HPSI_RING_BUDGET, so a 64 x
 * 64 segment reserves about as much as a 16 x 16 one; small jobs keep 1
 * MiB rings, and HPS_RING_KB still sets any size. */
static void test_ring_size_by_job_shape(void)
{
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(1, 1, 0), HPSI_RING_MAX);
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(2, 2, 0), HPSI_RING_MAX);
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(8, 16, 0), HPSI_RING_MAX); /* 256 rings of 1 MiB: the budget */
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(9, 16, 0), HPSI_RING_MAX / 2);
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(16, 16, 0), 512u << 10);
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(64, 64, 0), 32u << 10);
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(64, 64, 1), 16u << 10); /* and 64 x 64 forward rings */
	CU_ASSERT_EQUAL(hpsi_ring_bytes_for(128, 127, 3), HPSI_RING_MIN);
	for (uint32_t s = 1; s < 256; s += 17)
		for (uint32_t w = 1; s + w <= 256; w += 13) {
			uint32_t b = hpsi_ring_bytes_for(s, w, s > 1);
			uint64_t rings = (uint64_t)s * w * 2 + (s > 1 ? (uint64_t)s * s : 0);
			CU_ASSERT((b & (b - 1)) == 0 && b >= HPSI_RING_MIN && b <= HPSI_RING_MAX);
			CU_ASSERT(b == HPSI_RING_MIN || rings * b <= HPSI_RING_BUDGET);
		}

	/* a 64 x 64 segment made with the default: what the file system holds */
	struct hpsi_config cfg;
	unsetenv("HPS_RING_KB");
	CU_ASSERT_EQUAL_FATAL(hpsi_config_load(&cfg, 0), 0);
	CU_ASSERT_EQUAL(cfg.ring_bytes, 0);
	struct hpsi_seg_params p = {.job = "ringshape", .host = "testhost", .nservers = 64, .nworkers = 64,
				    .ring_bytes = cfg.ring_bytes, .heap_slice = 8u << 20, .timeout_ms = 1000};
	struct hpsi_seg seg;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &seg), 0);
	CU_ASSERT_EQUAL(seg.hdr->ring_bytes, 32u << 10);
	struct stat st;
	CU_ASSERT_EQUAL(stat(seg.path, &st), 0);
	/* the rings with a page of header each, and the control part before them */
	uint64_t rings = 64 * 64 * 2, want = rings * ((32u << 10) + 4096) + seg.hdr->rings_off + (2u << 20);
	CU_ASSERT((uint64_t)st.st_blocks * 512 <= want);
	CU_ASSERT((uint64_t)st.st_blocks * 512 >= rings * (32u << 10)); /* reserved: no SIGBUS on a full /dev/shm */
	CU_ASSERT_EQUAL(hpsi_seg_unlink(&seg), 0);
	hpsi_seg_detach(&seg);

	/* HPS_RING_KB=1024 keeps the old size whatever the shape */
	setenv("HPS_RING_KB", "1024", 1);
	CU_ASSERT_EQUAL_FATAL(hpsi_config_load(&cfg, 0), 0);
	unsetenv("HPS_RING_KB");
	p.nservers = p.nworkers = 4, p.ring_bytes = cfg.ring_bytes;
	CU_ASSERT_EQUAL_FATAL(hpsi_seg_create(&p, &seg), 0);
	CU_ASSERT_EQUAL(seg.hdr->ring_bytes, 1u << 20);
	CU_ASSERT_EQUAL(hpsi_seg_unlink(&seg), 0);
	hpsi_seg_detach(&seg);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_ring_empty", test_ring_empty},
		{"test_ring_unpublished_invisible", test_ring_unpublished_invisible},
		{"test_ring_lying_records_dropped", test_ring_lying_records_dropped},
		{"test_ring_full", test_ring_full},
		{"test_ring_too_large_refused", test_ring_too_large_refused},
		{"test_ring_wrap_and_padding", test_ring_wrap_and_padding},
		{"test_ring_index_wrap_past_2_32", test_ring_index_wrap_past_2_32},
		{"test_ring_two_process_stress", test_ring_two_process_stress},
		{"test_ring_size_by_job_shape", test_ring_size_by_job_shape},
		{NULL, NULL},
	};
	return run_suite("ring", cases);
}
