/* Converts the raw data sets that `make data` fetched into the examples'
 * formats (called by examples/data.sh):
 *
 *   prepare_data spam SRC OUT       SpamAssassin e-mails -> libsvm
 *   prepare_data fashion SRC OUT    Fashion-MNIST IDX files -> libsvm
 *   prepare_data movielens CSV OUT  ratings -> 80/20 train/test CSV
 *
 * Splits are fixed by seed 42, so every machine gets the same files. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/lib/dataset.h"

#define SEED 42
#define TEST_PERCENT 20
#define SPAM_BITS 18 /* feature ids 1 .. 2^18 */

static void die(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "prepare_data: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	exit(1);
}

/* ---- SpamAssassin ------------------------------------------------------
 * Tokeniser: the Subject header and the body (other headers are dropped:
 * they carry routing details that would let a model learn the corpus's
 * collection dates rather than spam). Text is lowercased; HTML tags are
 * removed; "http://", "https://" and "www." words become URL; runs of
 * digits (with . or , inside) become NUMBER; runs of 2 to 20 letters are
 * words; '$' and '!' are tokens of their own. Subject tokens are kept
 * apart from body tokens ("s:" prefix). Each token is hashed (FNV-1a) into
 * 2^18 features; a feature's value is the token's count in the message. */

struct bag {
	uint32_t *ids;
	size_t n, cap;
};

static void bag_add(struct bag *b, const char *tok, size_t len, int subject)
{
	uint32_t h = 2166136261u;
	if (subject)
		h = (h ^ 's') * 16777619u, h = (h ^ ':') * 16777619u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)tok[i]) * 16777619u;
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 256;
		if (!(b->ids = realloc(b->ids, b->cap * sizeof *b->ids)))
			die("%s%s", "out of memory", "");
	}
	b->ids[b->n++] = (h & ((1u << SPAM_BITS) - 1)) + 1;
}

static void tokenise(const char *t, size_t n, struct bag *b, int subject)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)tolower((unsigned char)t[i]);
		if (c == '<') { /* an HTML tag, if it closes soon */
			const char *gt = memchr(t + i, '>', n - i < 512 ? n - i : 512);
			if (gt) {
				i = (size_t)(gt - t) + 1;
				continue;
			}
		}
		if ((n - i >= 7 && strncasecmp(t + i, "http://", 7) == 0) ||
		    (n - i >= 8 && strncasecmp(t + i, "https://", 8) == 0) ||
		    (n - i >= 4 && strncasecmp(t + i, "www.", 4) == 0)) {
			while (i < n && !isspace((unsigned char)t[i]) && t[i] != '"' && t[i] != '>')
				i++;
			bag_add(b, "URL", 3, subject);
			continue;
		}
		if (isdigit(c)) {
			while (i < n && (isdigit((unsigned char)t[i]) ||
					 ((t[i] == '.' || t[i] == ',') && i + 1 < n && isdigit((unsigned char)t[i + 1]))))
				i++;
			bag_add(b, "NUMBER", 6, subject);
			continue;
		}
		if (isalpha(c)) {
			char w[21];
			size_t len = 0;
			while (i < n && isalpha((unsigned char)t[i])) {
				if (len < sizeof w)
					w[len < 20 ? len : 20] = (char)tolower((unsigned char)t[i]);
				len++;
				i++;
			}
			if (len >= 2 && len <= 20)
				bag_add(b, w, len, subject);
			continue;
		}
		if (c == '$' || c == '!')
			bag_add(b, (const char *)&c, 1, subject);
		i++;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0, got;
	char *buf = malloc(cap);
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap && !(buf = realloc(buf, cap *= 2)))
			break;
	}
	fclose(f);
	if (!buf)
		die("%s%s", "out of memory", "");
	*len = n;
	return buf;
}

/* One libsvm line of a message: label, then "id:count" ascending. */
static char *email_line(const char *path, int label)
{
	size_t n;
	char *t = read_file(path, &n);
	struct bag b = {0};
	size_t i = 0;
	while (i < n) { /* headers, up to the first empty line */
		const char *nl = memchr(t + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - t) : n;
		if (end == i || (end == i + 1 && t[i] == '\r')) {
			i = end + 1;
			break;
		}
		if (end - i > 8 && strncasecmp(t + i, "Subject:", 8) == 0)
			tokenise(t + i + 8, end - i - 8, &b, 1);
		i = end + 1;
	}
	if (i < n)
		tokenise(t + i, n - i, &b, 0);
	qsort(b.ids, b.n, sizeof *b.ids, cmp_u32);
	size_t cap = 16 + b.n * 16, len = 0;
	char *line = malloc(cap);
	if (!line)
		die("%s%s", "out of memory", "");
	len += (size_t)snprintf(line, cap, "%d", label);
	for (size_t k = 0; k < b.n;) {
		size_t j = k;
		while (j < b.n && b.ids[j] == b.ids[k])
			j++;
		len += (size_t)snprintf(line + len, cap - len, " %u:%zu", b.ids[k], j - k);
		k = j;
	}
	free(b.ids);
	free(t);
	return line;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static FILE *open_out(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* Writes lines[order[i]] to test for the first TEST_PERCENT%, else train. */
static void write_split(char **lines, size_t n, const char *dir, const char *train, const char *test,
			const char *header)
{
	size_t *order = malloc(n * sizeof *order);
	if (!order)
		die("%s%s", "out of memory", "");
	ex_shuffle(order, n, SEED);
	size_t ntest = n * TEST_PERCENT / 100;
	FILE *tr = open_out(dir, train), *te = open_out(dir, test);
	if (header)
		fprintf(tr, "%s\n", header), fprintf(te, "%s\n", header);
	for (size_t i = 0; i < n; i++)
		fprintf(i < ntest ? te : tr, "%s\n", lines[order[i]]);
	if (fclose(tr) || fclose(te))
		die("cannot write into %s%s", dir, "");
	free(order);
	fprintf(stderr, "%s: %zu train, %zu test\n", dir, n - ntest, ntest);
}

static void prepare_spam(const char *src, const char *out)
{
	static const char *const folders[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"};
	char **paths = NULL;
	size_t n = 0, cap = 0;
	for (size_t f = 0; f < sizeof folders / sizeof *folders; f++) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/%s", src, folders[f]);
		DIR *d = opendir(dir);
		if (!d)
			die("cannot open %s: %s", dir, strerror(errno));
		struct dirent *e;
		while ((e = readdir(d))) {
			size_t len = strlen(e->d_name);
			if (len < 5 || strcmp(e->d_name + len - 4, ".txt"))
				continue;
			if (n == cap && !(paths = realloc(paths, (cap = cap ? 2 * cap : 8192) * sizeof *paths)))
				die("%s%s", "out of memory", "");
			size_t plen = strlen(dir) + len + 2;
			if (!(paths[n] = malloc(plen)))
				die("%s%s", "out of memory", "");
			snprintf(paths[n++], plen, "%s/%s", dir, e->d_name);
		}
		closedir(d);
	}
	if (n == 0)
		die("no messages under %s%s", src, "");
	qsort(paths, n, sizeof *paths, cmp_str); /* readdir order differs between machines */
	char **lines = malloc(n * sizeof *lines);
	size_t spam = 0;
	for (size_t i = 0; i < n; i++) {
		int label = strstr(paths[i] + strlen(src), "/spam-") != NULL;
		spam += (size_t)label;
		lines[i] = email_line(paths[i], label);
		free(paths[i]);
	}
	fprintf(stderr, "spamassassin: %zu messages, %zu spam\n", n, spam);
	write_split(lines, n, out, "train.svm", "test.svm", NULL);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(paths);
}

/* ---- Fashion-MNIST ------------------------------------------------------
 * IDX files (big-endian header), already gunzipped by data.sh. Pixels
 * become features 1..784 with value pixel/255; zero pixels are left out. */

static unsigned char *read_idx(const char *path, uint32_t magic, uint32_t *count, size_t item)
{
	size_t n;
	unsigned char *b = (unsigned char *)read_file(path, &n);
	size_t hdr = magic == 0x803 ? 16 : 8;
	if (n < hdr)
		die("%s: shorter than an IDX header%s", path, "");
	uint32_t m = (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
	*count = (uint32_t)b[4] << 24 | b[5] << 16 | b[6] << 8 | b[7];
	if (m != magic || (size_t)*count * item + hdr != n)
		die("%s: not the IDX file expected (magic or size)%s", path, "");
	memmove(b, b + hdr, n - hdr);
	return b;
}

static void fashion_part(const char *src, const char *prefix, const char *out, const char *name)
{
	char ip[4096], lp[4096];
	snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte", src, prefix);
	snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte", src, prefix);
	uint32_t ni, nl;
	unsigned char *img = read_idx(ip, 0x803, &ni, 784), *lab = read_idx(lp, 0x801, &nl, 1);
	if (ni != nl)
		die("%s and %s hold different counts", ip, lp);
	FILE *f = open_out(out, name);
	for (uint32_t r = 0; r < ni; r++) {
		fprintf(f, "%d", lab[r]);
		for (int p = 0; p < 784; p++)
			if (img[(size_t)r * 784 + p])
				fprintf(f, " %d:%.4g", p + 1, img[(size_t)r * 784 + p] / 255.0);
		fputc('\n', f);
	}
	if (fclose(f))
		die("cannot write %s/%s", out, name);
	fprintf(stderr, "fashion-mnist %s: %u images\n", name, ni);
	free(img);
	free(lab);
}

/* ---- MovieLens ----------------------------------------------------------
 * The CSV R exported (userId,movieId,rating), split 80/20 by rating. */

static void prepare_movielens(const char *csv, const char *out)
{
	struct rating *r;
	size_t n;
	char err[512];
	if (ratings_read(csv, 0, 1, &r, &n, err, sizeof err))
		die("%s%s", err, "");
	char **lines = malloc(n * sizeof *lines);
	for (size_t i = 0; i < n; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "%u,%u,%g", r[i].user, r[i].item, r[i].value);
		if (!(lines[i] = strdup(buf)))
			die("%s%s", "out of memory", "");
	}
	write_split(lines, n, out, "train.csv", "test.csv", "user,item,rating");
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(r);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: prepare_data spam|fashion|movielens SRC OUT\n");
		return 2;
	}
	if (strcmp(argv[1], "spam") == 0)
		prepare_spam(argv[2], argv[3]);
	else if (strcmp(argv[1], "fashion") == 0) {
		fashion_part(argv[2], "train", argv[3], "train.svm");
		fashion_part(argv[2], "t10k", argv[3], "test.svm");
	} else if (strcmp(argv[1], "movielens") == 0)
		prepare_movielens(argv[2], argv[3]);
	else
		die("unknown data set '%s'%s", argv[1], "");
	return 0;
}
