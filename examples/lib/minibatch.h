/* The distinct keys of one mini-batch, where each of its key occurrences
 * lies among them, and room for their weights and gradient: what sparse_lr
 * and mf gather before every pull and push (and before every update of the
 * in-process mini-batch baseline). */
#ifndef HPS_EX_MINIBATCH_H
#define HPS_EX_MINIBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "examples/lib/dataset.h"
#include "hps/hps.h"

/* Per key of the whole key space: whether the batch being gathered has it
 * (stamp == gen) and at which position. One map serves all the batches
 * of a process, since one batch is gathered at a time: positions are read
 * while gathering and indexing, then kept per occurrence in ex_batch.at,
 * so the map's footprint does not grow with the batches kept. */
struct ex_keymap {
	uint32_t *stamp, *pos;
	uint32_t gen;
};

int ex_keymap_alloc(struct ex_keymap *m, uint64_t key_space);
void ex_keymap_free(struct ex_keymap *m);

struct ex_batch {
	struct ex_keymap *map;
	uint64_t *keys;   /* distinct keys of the batch, in the order first seen (ascending once sorted) */
	uint64_t *tmp;    /* room to sort them */
	size_t nkeys, cap; /* keys now; the most one batch can have */
	uint32_t *at;     /* per key occurrence, in the order the example visits them: its position in keys */
	size_t occ_cap;
	uint32_t width;
	float *w, *g;     /* cap x width: pulled weights, summed gradient */
	hps_worker *shared; /* w and g came from its hps_alloc (zero-copy), or NULL */
};

/* Batches a worker keeps at once: the one it pulls, the one whose push
 * may be in flight, and the next one it gathers meanwhile. */
#define EX_BATCH_RING 3

/* Room for batches of up to cap distinct keys and occ_cap key occurrences,
 * gathered through map: a gradient, and with pulls room for the pulled
 * weights too. With heap (a worker), both come from its shared heap where
 * it has room, so that pulls and pushes with one server write and read them
 * in place (hps_alloc); otherwise they are private. Returns 0, or -1 when
 * out of memory. */
int ex_batch_alloc(struct ex_batch *b, struct ex_keymap *map, size_t cap, size_t occ_cap, uint32_t width, int pulls,
		   hps_worker *heap);
void ex_batch_free(struct ex_batch *b);

/* The most distinct keys and key occurrences a batch of `batch` rows of s
 * can have: the bias key and the features of its longest rows (distinct
 * keys at most key_space). */
void ex_batch_caps_rows(const struct sparse_set *s, int batch, uint64_t key_space, size_t *cap, size_t *occ_cap);

/* Starts gathering the next batch into b: no keys yet. */
static inline void ex_batch_begin(struct ex_batch *b)
{
	b->map->gen++;
	b->nkeys = 0;
}

/* Adds key unless the batch has it already; returns its position. */
static inline uint32_t ex_batch_add(struct ex_batch *b, uint64_t key)
{
	struct ex_keymap *m = b->map;
	if (m->stamp[key] != m->gen) {
		m->stamp[key] = m->gen;
		m->pos[key] = (uint32_t)b->nkeys;
		b->keys[b->nkeys++] = key;
	}
	return m->pos[key];
}

/* Sorts the keys ascending (hps wants them so); the map's positions
 * follow (ex_batch_pos), the caller then indexes the occurrences again. */
void ex_batch_sort(struct ex_batch *b);

/* The position of key in the batch last gathered through b's map. */
static inline uint32_t ex_batch_pos(const struct ex_batch *b, uint64_t key)
{
	return b->map->pos[key];
}

#endif
