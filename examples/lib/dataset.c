#include "examples/lib/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable arrays for the readers. */
static int grow(void **p, size_t *cap, size_t need, size_t esz)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * esz);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

static int fail(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
	return -1;
}

void ex_sort_keys(uint64_t *keys, uint64_t *tmp, size_t n)
{
	uint64_t max = 0;
	for (size_t i = 0; i < n; i++)
		max = keys[i] > max ? keys[i] : max;
	uint64_t *src = keys, *dst = tmp;
	/* 8 bits a pass, only as many passes as the largest key needs */
	for (unsigned shift = 0; shift < 64 && (max >> shift); shift += 8) {
		size_t count[256] = {0};
		for (size_t i = 0; i < n; i++)
			count[(src[i] >> shift) & 0xff]++;
		size_t at = 0;
		for (size_t d = 0; d < 256; d++) {
			size_t c = count[d];
			count[d] = at;
			at += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xff]++] = src[i];
		uint64_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != keys)
		memcpy(keys, src, n * sizeof *keys);
}

void ex_shuffle(size_t *order, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(ex_rand(&seed) % i);
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

void sparse_free(struct sparse_set *s)
{
	free(s->start);
	free(s->idx);
	free(s->val);
	free(s->label);
	memset(s, 0, sizeof *s);
}

/* Parses one libsvm line into the set (row kept) or only checks it. */
struct caps {
	size_t idx, val, label, start;
};

static int parse_svm_line(char *line, struct sparse_set *s, int keep, struct caps *cap, const char *path,
			  size_t lineno, char *err, size_t errcap)
{
	char *p = line, *end;
	errno = 0;
	long lab = strtol(p, &end, 10);
	if (end == p || (*end != ' ' && *end != '\t' && *end != 0) || errno || lab < 0 || lab > 1000000)
		return fail(err, errcap, "%s:%zu: the label must be an integer from 0 to 1000000", path, lineno);
	p = end;
	uint32_t prev = 0;
	size_t first = s->nnz;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		errno = 0;
		unsigned long id = strtoul(p, &end, 10);
		if (end == p || *end != ':' || errno || id < 1 || id > UINT32_MAX - 1 || *p == '-')
			return fail(err, errcap, "%s:%zu: expected id:value with an id from 1 to 2^32-2 at '%.20s'",
				    path, lineno, p);
		if (id <= prev)
			return fail(err, errcap, "%s:%zu: feature id %lu is not above the previous one (%u): ids must ascend without repeats",
				    path, lineno, id, prev);
		p = end + 1;
		errno = 0;
		float v = strtof(p, &end);
		if (end == p || errno || !isfinite(v) || (*end != ' ' && *end != '\t' && *end != 0))
			return fail(err, errcap, "%s:%zu: feature %lu has no finite value", path, lineno, id);
		p = end;
		prev = (uint32_t)id;
		if (id > s->max_feature) /* over the whole file, so every shard agrees */
			s->max_feature = (uint32_t)id;
		if (!keep)
			continue;
		if (grow((void **)&s->idx, &cap->idx, s->nnz + 1, sizeof *s->idx) ||
		    grow((void **)&s->val, &cap->val, s->nnz + 1, sizeof *s->val))
			return fail(err, errcap, "out of memory reading %s", path);
		s->idx[s->nnz] = (uint32_t)id;
		s->val[s->nnz] = v;
		s->nnz++;
	}
	if (lab > s->max_label)
		s->max_label = (int32_t)lab;
	if (!keep)
		return 0;
	/* start keeps one more entry than rows: the end of the last row */
	if (grow((void **)&s->label, &cap->label, s->rows + 1, sizeof *s->label) ||
	    grow((void **)&s->start, &cap->start, s->rows + 2, sizeof *s->start))
		return fail(err, errcap, "out of memory reading %s", path);
	s->start[s->rows] = first;
	s->label[s->rows] = (int32_t)lab;
	s->rows++;
	return 0;
}

int sparse_read(const char *path, size_t shard, size_t nshards, struct sparse_set *out, char *err, size_t errcap)
{
	memset(out, 0, sizeof *out);
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, errcap, "%s: %s (run `make data`)", path, strerror(errno));
	char *line = NULL;
	size_t lcap = 0, lineno = 0, row = 0;
	struct caps cap = {0};
	ssize_t n;
	int rc = 0;
	while ((n = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		if (memchr(line, 0, (size_t)n)) {
			rc = fail(err, errcap, "%s:%zu: a NUL byte inside the line", path, lineno);
			break;
		}
		if (n == 0) {
			rc = fail(err, errcap, "%s:%zu: empty line", path, lineno);
			break;
		}
		int keep = nshards <= 1 || row % nshards == shard;
		if ((rc = parse_svm_line(line, out, keep, &cap, path, lineno, err, errcap)))
			break;
		row++;
	}
	out->file_rows = row;
	if (!rc && ferror(f))
		rc = fail(err, errcap, "%s: read error", path);
	if (!rc && row == 0)
		rc = fail(err, errcap, "%s: no rows", path);
	free(line);
	fclose(f);
	if (rc) {
		sparse_free(out);
		return rc;
	}
	if (!out->start && !(out->start = malloc(sizeof *out->start))) /* a shard without rows */
		return fail(err, errcap, "out of memory reading %s", path);
	out->start[out->rows] = out->nnz;
	return 0;
}

int ratings_read(const char *path, size_t shard, size_t nshards, struct rating **out, size_t *count, char *err,
		 size_t errcap)
{
	*out = NULL;
	*count = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, errcap, "%s: %s (run `make data`)", path, strerror(errno));
	char *line = NULL;
	size_t lcap = 0, lineno = 0, row = 0, cap = 0;
	ssize_t n;
	int rc = 0;
	while ((n = getline(&line, &lcap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (lineno == 1 && strcmp(line, "user,item,rating") == 0)
			continue;
		char *p = line, *end;
		errno = 0;
		unsigned long u = strtoul(p, &end, 10);
		if (end == p || *end != ',' || errno || u > UINT32_MAX || *p == '-') {
			rc = fail(err, errcap, "%s:%zu: expected user,item,rating with integer ids", path, lineno);
			break;
		}
		p = end + 1;
		unsigned long it = strtoul(p, &end, 10);
		if (end == p || *end != ',' || errno || it > UINT32_MAX || *p == '-') {
			rc = fail(err, errcap, "%s:%zu: expected user,item,rating with integer ids", path, lineno);
			break;
		}
		p = end + 1;
		float v = strtof(p, &end);
		if (end == p || *end || errno || !isfinite(v)) {
			rc = fail(err, errcap, "%s:%zu: the rating is not a finite number", path, lineno);
			break;
		}
		if (nshards <= 1 || row % nshards == shard) {
			if (grow((void **)out, &cap, *count + 1, sizeof **out)) {
				rc = fail(err, errcap, "out of memory reading %s", path);
				break;
			}
			(*out)[(*count)++] = (struct rating){(uint32_t)u, (uint32_t)it, v};
		}
		row++;
	}
	if (!rc && row == 0)
		rc = fail(err, errcap, "%s: no ratings", path);
	free(line);
	fclose(f);
	if (rc) {
		free(*out);
		*out = NULL;
		*count = 0;
	}
	return rc;
}

/* FNV-1a over the two feature numbers of a cross. */
static uint32_t cross_hash(uint32_t a, uint32_t b, unsigned bits)
{
	uint64_t h = 1469598103934665603ull;
	uint32_t v[2] = {a, b};
	const unsigned char *p = (const unsigned char *)v;
	for (size_t i = 0; i < sizeof v; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return (uint32_t)(h >> (64 - bits));
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

int image_add_crosses(struct sparse_set *s, uint32_t side, uint32_t cell, uint32_t levels, unsigned bits,
		      uint32_t base)
{
	if (!cell || side % cell || !levels || bits < 1 || bits > 24 || base < s->max_feature)
		return -1;
	uint32_t cells = (side / cell) * (side / cell);
	float *mean = malloc(cells * sizeof *mean);
	uint32_t *on = malloc(cells * sizeof *on);
	uint32_t *row_ids = malloc((size_t)cells * cells * sizeof *row_ids);
	size_t *start = malloc((s->rows + 1) * sizeof *start);
	size_t cap = s->nnz * 2 + 1024, nnz = 0;
	uint32_t *idx = malloc(cap * sizeof *idx);
	float *val = malloc(cap * sizeof *val);
	int rc = mean && on && row_ids && start && idx && val ? 0 : -1;
	for (size_t r = 0; !rc && r < s->rows; r++) {
		memset(mean, 0, cells * sizeof *mean);
		for (size_t i = s->start[r]; i < s->start[r + 1]; i++) {
			uint32_t p = s->idx[i] - 1;
			if (p >= side * side)
				continue;
			uint32_t y = p / side, x = p % side;
			mean[(y / cell) * (side / cell) + x / cell] += s->val[i] / (float)(cell * cell);
		}
		uint32_t non = 0, nx = 0;
		for (uint32_t c = 0; c < cells; c++) {
			uint32_t lv = (uint32_t)(mean[c] * (float)levels);
			if (lv >= 1)
				on[non++] = c * levels + (lv > levels ? levels : lv) - 1;
		}
		for (uint32_t a = 0; a < non; a++)
			for (uint32_t b = a + 1; b < non; b++)
				row_ids[nx++] = base + 1 + cross_hash(on[a], on[b], bits);
		qsort(row_ids, nx, sizeof *row_ids, cmp_u32);
		size_t orig = s->start[r + 1] - s->start[r];
		if (nnz + orig + nx > cap) {
			while (nnz + orig + nx > cap)
				cap *= 2;
			uint32_t *ni = realloc(idx, cap * sizeof *idx);
			if (ni)
				idx = ni;
			float *nv = realloc(val, cap * sizeof *val);
			if (nv)
				val = nv;
			if (!ni || !nv) {
				rc = -1;
				break;
			}
		}
		start[r] = nnz;
		memcpy(idx + nnz, s->idx + s->start[r], orig * sizeof *idx);
		memcpy(val + nnz, s->val + s->start[r], orig * sizeof *val);
		nnz += orig;
		for (uint32_t k = 0; k < nx; k++) { /* a bucket hit twice counts twice */
			if (k > 0 && row_ids[k] == row_ids[k - 1]) {
				val[nnz - 1] += 1.0f;
				continue;
			}
			idx[nnz] = row_ids[k];
			val[nnz++] = 1.0f;
		}
	}
	free(mean);
	free(on);
	free(row_ids);
	if (rc) {
		free(start);
		free(idx);
		free(val);
		return -1;
	}
	start[s->rows] = nnz;
	free(s->start);
	free(s->idx);
	free(s->val);
	s->start = start, s->idx = idx, s->val = val, s->nnz = nnz;
	s->max_feature = base + (1u << bits);
	return 0;
}
