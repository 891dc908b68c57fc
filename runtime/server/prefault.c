#include "runtime/server/prefault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct hpsi_prefault {
	pthread_t thread;
	atomic_int stop; /* relaxed both ways: it only ends the walk early; the join orders the rest */
	size_t n, bytes;
	void *regions[];
};

static void *run(void *arg)
{
	struct hpsi_prefault *p = arg;
	for (size_t i = 0; i < p->n && !atomic_load_explicit(&p->stop, memory_order_relaxed); i++)
		if (madvise(p->regions[i], p->bytes, MADV_POPULATE_WRITE))
			break; /* an old kernel (EINVAL), or no memory: they fault in as they are written */
	return NULL;
}

struct hpsi_prefault *hpsi_prefault_start(void *const *regions, size_t n, size_t bytes)
{
	if (!n || n > (SIZE_MAX - sizeof(struct hpsi_prefault)) / sizeof *regions)
		return NULL;
	struct hpsi_prefault *p = malloc(sizeof *p + n * sizeof *regions);
	if (!p)
		return NULL;
	atomic_init(&p->stop, 0);
	p->n = n, p->bytes = bytes;
	memcpy(p->regions, regions, n * sizeof *regions);
	if (pthread_create(&p->thread, NULL, run, p)) {
		free(p);
		return NULL;
	}
	return p;
}

void hpsi_prefault_stop(struct hpsi_prefault *p)
{
	if (!p)
		return;
	atomic_store_explicit(&p->stop, 1, memory_order_relaxed);
	pthread_join(p->thread, NULL);
	free(p);
}
