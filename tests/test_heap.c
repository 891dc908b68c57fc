/* Shared heap: allocations stay in the slice, are reused after free, fail
 * cleanly when the slice is exhausted, and are readable by offset from
 * another process while only the owner allocates and frees; a shared-memory
 * file system that fills up after start-up gives errors, never SIGBUS. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

/* ---- the shared-memory file system fills up after a job started ------ */

#define FULL_KEYS 4096u
#define FULL_WIDTH 256u /* 4 MiB of values per push: heap buffers, not ring records */

/* Takes every free page of the file system holding dir; returns the fd of
 * the filler file (unlink and close it to give the room back). */
static int fill_fs(const char *dir, char *path, size_t cap)
{
	snprintf(path, cap, "%s/filler", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	off_t at = 0;
	for (off_t chunk = (off_t)64 << 20; fd >= 0 && chunk >= 4096; chunk /= 2)
		while (posix_fallocate(fd, at, chunk) == 0)
			at += chunk;
	return fd;
}

static void full_vals(float *v, float scale)
{
	for (uint32_t k = 0; k < FULL_KEYS; k++)
		for (uint32_t j = 0; j < FULL_WIDTH; j++)
			v[(size_t)k * FULL_WIDTH + j] = scale * (float)(k % 97 + j);
}

/* In the worker: a full file system makes hps_alloc return NULL and large
 * requests fail with HPS_ENOSPC, without a signal and without applying
 * anything; a buffer handed out before is writable whole; once the room is
 * back the same requests succeed with exact sums. */
static int full_fs_worker(hps_ctx *ctx, hps_worker *w, void *arg)
{
	(void)ctx;
	const char *dir = arg;
	uint64_t *keys = malloc(FULL_KEYS * sizeof *keys);
	size_t nv = (size_t)FULL_KEYS * FULL_WIDTH;
	float *v = malloc(nv * sizeof *v), *got = malloc(nv * sizeof *got);
	if (!keys || !v || !got)
		return 2;
	for (uint32_t k = 0; k < FULL_KEYS; k++)
		keys[k] = k * 3 + 1;
	full_vals(v, 1);
	if (hps_wait(w, hps_push(w, keys, 8, v, NULL)) != 0) /* small: travels in the ring */
		return 3;
	unsigned char *early = hps_alloc(w, 1u << 20); /* handed out before the fill */
	char filler[512];
	int fd = fill_fs(dir, filler, sizeof filler);
	if (!early || fd < 0)
		return 4;
	memset(early, 7, 1u << 20); /* reserved when handed out: no SIGBUS */
	if (hps_alloc(w, 4u << 20) != NULL)
		return 5;
	int64_t rc = hps_push(w, keys, FULL_KEYS, v, NULL);
	if (rc >= 0)
		rc = hps_wait(w, rc);
	if (rc != HPS_ENOSPC)
		return fprintf(stderr, "push on a full file system gave %lld\n", (long long)rc), 6;
	rc = hps_pull(w, keys, FULL_KEYS, got, NULL);
	if (rc >= 0)
		rc = hps_wait(w, rc);
	if (rc != HPS_ENOSPC)
		return fprintf(stderr, "pull on a full file system gave %lld\n", (long long)rc), 7;
	unlink(filler);
	close(fd);
	/* the room is back: the same push once, then every sum is exact */
	if (hps_wait(w, hps_push(w, keys, FULL_KEYS, v, NULL)) != 0)
		return 8;
	float *shared = hps_alloc(w, nv * sizeof *shared);
	if (!shared)
		return 9;
	full_vals(shared, 2);
	if (hps_wait(w, hps_push(w, keys, FULL_KEYS, shared, NULL)) != 0)
		return 10;
	hps_free(w, shared);
	hps_free(w, early);
	if (hps_wait(w, hps_pull(w, keys, FULL_KEYS, got, NULL)) != 0)
		return 11;
	for (size_t i = 0; i < nv; i++) {
		/* 1x and 2x pushed after the fill; the first 8 keys once before */
		float want = (i < 8 * FULL_WIDTH ? 4 : 3) * v[i];
		if (got[i] != want)
			return fprintf(stderr, "value %zu is %g, expected %g\n", i, got[i], want), 12;
	}
	free(keys), free(v), free(got);
	return 0;
}

/* Runs in a private mount namespace over a small tmpfs at HPS_SHM_DIR, so
 * the mount goes with the last process of the test, on every exit path. */
static int full_fs_job(const char *dir)
{
	struct job j;
	if (job_start(&j, 2, 1, &(struct job_opts){.heap_mb = 16}) != 0)
		return 20;
	int rc = wait_exit(job_fork_worker(&j, 0, FULL_WIDTH, full_fs_worker, (void *)dir), 60000);
	if (job_stop(&j) != 0 && rc == 0)
		rc = 21;
	return rc;
}

static void test_heap_shm_fills_after_start(void)
{
	int rc = run_on_small_shm(40, full_fs_job, 90000);
	if (rc != 77)
		CU_ASSERT_EQUAL(rc, 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		{"test_heap_alloc_in_slice", test_heap_alloc_in_slice},
		{"test_heap_reuses_freed", test_heap_reuses_freed},
		{"test_heap_exhaustion_returns_null", test_heap_exhaustion_returns_null},
		{"test_heap_cross_process", test_heap_cross_process},
		{"test_heap_shm_fills_after_start", test_heap_shm_fills_after_start},
		{NULL, NULL},
	};
	return run_suite("heap", cases);
}
