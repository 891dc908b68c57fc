/* Data sets of the examples: sparse rows read from libsvm files and
 * ratings read from CSV files. Readers check every line and stop at the
 * first bad one with "FILE:LINE: reason"; nothing is skipped silently. */
#ifndef HPS_EX_DATASET_H
#define HPS_EX_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* Rows in compressed sparse row form: row r has features
 * idx[start[r] .. start[r+1]) with values val[...], and label[r]. */
struct sparse_set {
	size_t rows, nnz;
	size_t *start;     /* rows + 1 entries */
	uint32_t *idx;     /* feature ids, ascending within a row, >= 1 */
	float *val;
	int32_t *label;
	uint32_t max_feature; /* over every row of the file, not only the shard */
	int32_t max_label;    /* likewise */
	size_t file_rows;     /* rows in the file, all shards */
};

/* Reads a libsvm file ("label id:value id:value ..."; ids ascending,
 * >= 1; labels integers >= 0). Keeps the rows r with r % nshards == shard,
 * so a worker loads only its shard. On error writes a
 * message into err and returns -1. */
int sparse_read(const char *path, size_t shard, size_t nshards, struct sparse_set *out, char *err, size_t errcap);
void sparse_free(struct sparse_set *s);

/* Hashed pairwise feature crosses for square images (Fashion-MNIST): the
 * side x side pixel ids 1..side^2 are pooled into cells of cell x cell
 * pixels; each cell's mean intensity (0..1) is quantised into `levels`
 * (a cell below 1/levels is off); every pair of (cell, level) features
 * that are on becomes one feature hashed into 2^bits buckets, added after
 * id `base` with value 1. It turns a dense image into a sparse CTR-like
 * problem whose model has 2^bits x classes parameters. */
int image_add_crosses(struct sparse_set *s, uint32_t side, uint32_t cell, uint32_t levels, unsigned bits,
		      uint32_t base);

struct rating {
	uint32_t user, item;
	float value;
};

/* Reads "user,item,rating" lines (a header line "user,item,rating" is
 * allowed); ids >= 0, rating finite. Same error contract as sparse_read. */
int ratings_read(const char *path, size_t shard, size_t nshards, struct rating **out, size_t *n, char *err,
		 size_t errcap);

/* splitmix64: the examples' only random numbers, so runs repeat. */
static inline uint64_t ex_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Sorts n keys ascending (LSD radix, 8 bits a pass; tmp holds n keys). A mini-batch's keys must go to hps sorted, and qsort's
 * comparator calls cost more than the training step itself. */
void ex_sort_keys(uint64_t *keys, uint64_t *tmp, size_t n);

/* A seeded permutation of 0..n-1 into order. */
void ex_shuffle(size_t *order, size_t n, uint64_t seed);

#endif
