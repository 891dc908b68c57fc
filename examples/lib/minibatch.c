#include "examples/lib/minibatch.h"

#include <stdlib.h>
#include <string.h>

int ex_keymap_alloc(struct ex_keymap *m, uint64_t key_space)
{
	*m = (struct ex_keymap){0};
	m->stamp = calloc(key_space, sizeof *m->stamp);
	m->pos = malloc(key_space * sizeof *m->pos);
	if (!m->stamp || !m->pos) {
		ex_keymap_free(m);
		return -1;
	}
	return 0;
}

void ex_keymap_free(struct ex_keymap *m)
{
	free(m->stamp), free(m->pos);
	*m = (struct ex_keymap){0};
}

int ex_batch_alloc(struct ex_batch *b, struct ex_keymap *map, size_t cap, size_t occ_cap, uint32_t width, int pulls,
		   hps_worker *heap)
{
	*b = (struct ex_batch){.map = map, .cap = cap, .occ_cap = occ_cap, .width = width};
	b->keys = malloc(cap * sizeof *b->keys);
	b->tmp = malloc(cap * sizeof *b->tmp);
	b->at = malloc(occ_cap * sizeof *b->at);
	size_t vbytes = cap * width * sizeof(float);
	if (heap && (b->g = hps_alloc(heap, vbytes)) && (!pulls || (b->w = hps_alloc(heap, vbytes)))) {
		b->shared = heap;
	} else {
		if (heap)
			hps_free(heap, b->g);
		b->g = malloc(vbytes);
		b->w = pulls ? malloc(vbytes) : NULL;
	}
	if (!b->keys || !b->tmp || !b->at || !b->g || (pulls && !b->w)) {
		ex_batch_free(b);
		return -1;
	}
	return 0;
}

void ex_batch_free(struct ex_batch *b)
{
	free(b->keys), free(b->tmp), free(b->at);
	if (b->shared) {
		hps_free(b->shared, b->w);
		hps_free(b->shared, b->g);
	} else {
		free(b->w), free(b->g);
	}
	*b = (struct ex_batch){0};
}

void ex_batch_sort(struct ex_batch *b)
{
	ex_sort_keys(b->keys, b->tmp, b->nkeys);
	for (size_t i = 0; i < b->nkeys; i++)
		b->map->pos[b->keys[i]] = (uint32_t)i;
}

static int longer_first(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

void ex_batch_caps_rows(const struct sparse_set *s, int batch, uint64_t key_space, size_t *cap, size_t *occ_cap)
{
	size_t *len = malloc((s->rows ? s->rows : 1) * sizeof *len), occ = 1;
	if (!len) { /* no room to find the longest rows: every row */
		occ += s->nnz;
	} else {
		for (size_t r = 0; r < s->rows; r++)
			len[r] = s->start[r + 1] - s->start[r];
		qsort(len, s->rows, sizeof *len, longer_first);
		for (size_t r = 0; r < s->rows && r < (size_t)batch; r++)
			occ += len[r];
		free(len);
	}
	*occ_cap = occ;
	*cap = occ < key_space ? occ : (size_t)key_space;
}
