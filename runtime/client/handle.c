/* Tombstones of released handles (runtime/client/handle.h). */
#include "runtime/client/handle.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t tomb_lock = PTHREAD_MUTEX_INITIALIZER;
static void *tombs[HPSI_TOMBS]; /* reachable, so leak checkers stay quiet */
static unsigned next_tomb;

void hpsi_handle_retire(void *obj, _Atomic uint32_t *magic)
{
	atomic_store_explicit(magic, HPSI_MAGIC_TOMB, memory_order_relaxed);
	pthread_mutex_lock(&tomb_lock);
	void *oldest = tombs[next_tomb];
	tombs[next_tomb] = obj;
	next_tomb = (next_tomb + 1) % HPSI_TOMBS;
	pthread_mutex_unlock(&tomb_lock);
	free(oldest);
}
