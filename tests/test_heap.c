/* Shared heap: allocations stay in the slice, are reused after free, fail
 * cleanly when the slice is exhausted, and are readable by offset from
 * another process while only the owner allocates and frees. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/heap.h"
#include "tests/harness.h"

#define SLICE (32u << 20)

static void *new_region(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(p != MAP_FAILED);
	return p;
}

static void test_heap_alloc_in_slice(void)
{
	void *base = new_region(SLICE);
	struct hpsi_heap *h;
	CU_ASSERT_EQUAL_FATAL(hpsi_heap_create(base, SLICE, &h), 0);
	size_t sizes[] = {1, 64, 4000, 100000, 3u << 20};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		unsigned char *p = hpsi_heap_alloc(h, sizes[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CU_ASSERT(hpsi_heap_owns(h, p, sizes[i]));
		CU_ASSERT_EQUAL((uintptr_t)p % 64, 0);
		memset(p, 0xAB, sizes[i]);
		hpsi_heap_free(h, p);
	}
	CU_ASSERT(hpsi_heap_carved(h) <= SLICE);
	CU_ASSERT_FALSE(hpsi_heap_owns(h, (char *)base + SLICE, 1));
	hpsi_heap_destroy(h);
	munmap(base, SLICE);
}

static void test_heap_reuses_freed(void)
{
	void *base = new_region(SLICE);
	struct hpsi_heap *h;
	CU_ASSERT_EQUAL_FATAL(hpsi_heap_create(base, SLICE, &h), 0);
	/* 100 rounds of 4 MiB would need 400 MiB without reuse. */
	for (int i = 0; i < 100; i++) {
		void *p = hpsi_heap_alloc(h, 4u << 20);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		hpsi_heap_free(h, p);
	}
	CU_ASSERT(hpsi_heap_carved(h) <= SLICE);
	hpsi_heap_destroy(h);
	munmap(base, SLICE);
}

static void test_heap_exhaustion_returns_null(void)
{
	void *base = new_region(SLICE);
	struct hpsi_heap *h;
	CU_ASSERT_EQUAL_FATAL(hpsi_heap_create(base, SLICE, &h), 0);
	void *ptrs[64];
	int n = 0;
	while (n < 64 && (ptrs[n] = hpsi_heap_alloc(h, 1u << 20)))
		n++;
	CU_ASSERT(n > 8 && n < 32); /* some fit, not more than the slice */
	CU_ASSERT_PTR_NULL(hpsi_heap_alloc(h, SLICE));
	for (int i = 0; i < n; i++)
		hpsi_heap_free(h, ptrs[i]);
	CU_ASSERT_PTR_NOT_NULL(ptrs[0] = hpsi_heap_alloc(h, 1u << 20));
	hpsi_heap_free(h, ptrs[0]);
	hpsi_heap_destroy(h);
	munmap(base, SLICE);
}

/* The child owns the heap: it allocates, fills, and sends offsets; the
 * parent reads by offset and sends them back; the child frees. */
static void test_heap_cross_process(void)
{
	unsigned char *base = new_region(SLICE);
	int to_parent[2], to_child[2];
	CU_ASSERT_FATAL(pipe(to_parent) == 0 && pipe(to_child) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct hpsi_heap *h;
		if (hpsi_heap_create(base, SLICE, &h))
			_exit(1);
		for (uint32_t i = 0; i < 200; i++) {
			size_t n = 1000 + i * 997;
			uint32_t *p = hpsi_heap_alloc(h, n * 4);
			if (!p)
				_exit(2);
			for (size_t k = 0; k < n; k++)
				p[k] = i * 31 + (uint32_t)k;
			uint64_t msg[2] = {(uint64_t)((unsigned char *)p - base), n};
			if (write(to_parent[1], msg, sizeof msg) != sizeof msg)
				_exit(3);
			uint64_t back;
			if (read(to_child[0], &back, sizeof back) != sizeof back || back != msg[0])
				_exit(4);
			hpsi_heap_free(h, p);
		}
		_exit(hpsi_heap_carved(h) <= SLICE ? 0 : 5);
	}
	int bad = 0;
	for (uint32_t i = 0; i < 200; i++) {
		uint64_t msg[2];
		CU_ASSERT_FATAL(read(to_parent[0], msg, sizeof msg) == sizeof msg);
		CU_ASSERT_FATAL(msg[0] + msg[1] * 4 <= SLICE);
		const uint32_t *p = (const uint32_t *)(base + msg[0]);
		for (size_t k = 0; k < msg[1]; k++)
			bad += p[k] != i * 31 + (uint32_t)k;
		CU_ASSERT_FATAL(write(to_child[1], &msg[0], 8) == 8);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(wait_exit(pid, 10000), 0);
	munmap(base, SLICE);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_heap_alloc_in_slice", test_heap_alloc_in_slice},
		{"test_heap_reuses_freed", test_heap_reuses_freed},
		{"test_heap_exhaustion_returns_null", test_heap_exhaustion_returns_null},
		{"test_heap_cross_process", test_heap_cross_process},
		{NULL, NULL},
	};
	return run_suite("heap", cases);
}
