/* The distinct keys of one mini-batch, and room for their weights and
 * gradient: what sparse_lr and mf gather before every pull and push (and
 * before every update of the in-process mini-batch baseline). */
#ifndef HPS_EX_MINIBATCH_H
#define HPS_EX_MINIBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "examples/lib/dataset.h"
#include "hps/hps.h"

struct ex_batch {
	uint64_t *keys;   /* distinct keys of the batch, in the order first seen (ascending once sorted) */
	uint64_t *tmp;    /* room to sort them */
	uint32_t *pos;    /* key -> index in keys, valid where stamp[key] == gen */
	uint32_t *stamp;  /* per key: the gen of the last batch that had it */
	uint32_t gen;
	size_t nkeys, cap; /* keys now; the most one batch can have */
	uint32_t width;
	float *w, *g;     /* cap x width: pulled weights, summed gradient */
	hps_worker *shared; /* w and g came from its hps_alloc (zero-copy), or NULL */
};

/* Batches a worker keeps at once: the one it pulls, the one whose push
 * may be in flight, and the next one it gathers meanwhile. */
#define EX_BATCH_RING 3

/* Room for batches of up to cap distinct keys out of 0 .. key_space - 1:
 * a gradient, and with pulls room for the pulled weights too. With heap
 * (a worker), both come from its shared heap where it has room, so that
 * pulls and pushes with one server write and read them in place
 * (hps_alloc); otherwise they are private. Returns 0, or -1 when out of
 * memory. */
int ex_batch_alloc(struct ex_batch *b, uint64_t key_space, size_t cap, uint32_t width, int pulls, hps_worker *heap);
void ex_batch_free(struct ex_batch *b);

/* The most distinct keys a batch of `batch` rows of s can have: the bias
 * key and the features of its longest rows, at most key_space. */
size_t ex_batch_cap_rows(const struct sparse_set *s, int batch, uint64_t key_space);

/* Starts the next batch: no keys yet. */
static inline void ex_batch_begin(struct ex_batch *b)
{
	b->gen++;
	b->nkeys = 0;
}

/* Adds key unless the batch has it already. */
static inline void ex_batch_add(struct ex_batch *b, uint64_t key)
{
	if (b->stamp[key] != b->gen) {
		b->stamp[key] = b->gen;
		b->pos[key] = (uint32_t)b->nkeys;
		b->keys[b->nkeys++] = key;
	}
}

/* Sorts the keys ascending (hps wants them so) and moves pos along. */
void ex_batch_sort(struct ex_batch *b);

/* The position of key in the batch (which must have it). */
static inline size_t ex_batch_pos(const struct ex_batch *b, uint64_t key)
{
	return b->pos[key];
}

#endif
