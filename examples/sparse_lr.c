/* Sparse logistic regression (binary, or multinomial with --classes > 2)
 * trained by W workers, each on its own shard of a libsvm file.
 *
 * Modes:
 *   server   (BSP, SSP or ASP: the job's HPS_STALENESS) each worker pulls
 *            the weights of a mini-batch's features, computes the gradient
 *            and pushes it; the servers' optimizer (HPS_UPDATER: sgd,
 *            adagrad or ftrl) applies it; one clock per mini-batch.
 *   hogwild  (--hogwild; the job needs HPS_DIRECT and HPS_KEY_RANGES) every
 *            worker maps the weights in the shared segment and applies SGD
 *            per example in place, without locks (Recht et al. 2011).
 *   local    (--local; no hps job) the same per-example SGD in one process
 *            on a private array: HOGWILD's baseline without a parameter
 *            server.
 *   local-batch (--local-batch --updater SPEC; no hps job) the server
 *            modes' mini-batches, order, gradient and optimizer in one
 *            process on a private model: their baseline without a
 *            parameter server (one worker in a server mode computes the
 *            very same model).
 *
 * Keys: 0 is the bias, feature id f is key f; each key holds one weight
 * (binary) or one per class. Worker 0 evaluates the test set after every
 * epoch while the others wait, and prints the report. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/lib/dataset.h"
#include "examples/lib/hot.h"
#include "examples/lib/local_model.h"
#include "examples/lib/minibatch.h"
#include "examples/lib/options.h"
#include "examples/lib/report.h"
#include "hps/hps.h"

struct opts {
	struct ex_options c;
	int classes, cross_bits, log1p, normalize;
};

/* The model as the training loop sees it: width floats per key, keys
 * 0 .. nkeys-1. */
struct model {
	uint32_t width; /* 1 for binary, classes otherwise */
	uint64_t nkeys;
};

/* Scores of one row against weights looked up through at(): z[width]. */
static void row_scores(const struct sparse_set *s, size_t r, const float *bias, const float *(*at)(void *, uint32_t),
		       void *arg, uint32_t width, double *z)
{
	for (uint32_t c = 0; c < width; c++)
		z[c] = bias[c];
	for (size_t i = s->start[r]; i < s->start[r + 1]; i++) {
		const float *w = at(arg, s->idx[i]);
		double x = s->val[i];
		for (uint32_t c = 0; c < width; c++)
			z[c] += x * w[c];
	}
}

/* Turns scores into the loss of label y and the error terms d = p - onehot
 * (what multiplies x in the gradient). Returns the loss. */
static double loss_and_delta(double *z, uint32_t width, int32_t y, double *d)
{
	if (width == 1) {
		double p = 1.0 / (1.0 + exp(-z[0]));
		d[0] = p - (y ? 1.0 : 0.0);
		/* log(1 + e^-|z|) form: no overflow for large scores */
		double m = y ? z[0] : -z[0];
		return m > 0 ? log1p(exp(-m)) : -m + log1p(exp(m));
	}
	double mx = z[0], sum = 0;
	for (uint32_t c = 1; c < width; c++)
		mx = z[c] > mx ? z[c] : mx;
	for (uint32_t c = 0; c < width; c++)
		sum += (d[c] = exp(z[c] - mx));
	for (uint32_t c = 0; c < width; c++)
		d[c] = d[c] / sum - (c == (uint32_t)y ? 1.0 : 0.0);
	return -(z[y] - mx - log(sum));
}

static int32_t argmax(const double *z, uint32_t width)
{
	if (width == 1)
		return z[0] > 0;
	uint32_t b = 0;
	for (uint32_t c = 1; c < width; c++)
		if (z[c] > z[b])
			b = c;
	return (int32_t)b;
}

/* A dense weight array (the full model): HOGWILD's shared one, the local
 * baseline's, or worker 0's pulled copy for evaluation. */
static const float *dense_at(void *arg, uint32_t key)
{
	const float **p = arg;
	return p[0] + (size_t)key * (size_t)(uintptr_t)p[1];
}

static void evaluate(const struct sparse_set *test, const float *w, uint32_t width, double *loss, double *acc)
{
	const void *arg[2] = {w, (const void *)(uintptr_t)width};
	double z[1024], d[1024], l = 0;
	size_t right = 0;
	for (size_t r = 0; r < test->rows; r++) {
		row_scores(test, r, w, dense_at, arg, width, z);
		right += argmax(z, width) == test->label[r];
		l += loss_and_delta(z, width, test->label[r], d);
	}
	*loss = l / (double)test->rows;
	*acc = (double)right / (double)test->rows;
}

/* Per-example SGD in place (HOGWILD and local): the same code for both,
 * so the comparison measures only where the weights live. s->idx holds
 * row handles (hps_direct_row), bias the bias's: rows in the shared array,
 * this worker's copies of its keys (--merge), or the local baseline's
 * private array. Returns the summed loss of the examples before their
 * updates. */
static double sgd_epoch(const struct sparse_set *s, const size_t *order, const hps_direct_rows *rows, uint32_t bias,
			hps_direct_cache *cache, float lr, struct report *rep, int epoch, int show)
{
	uint32_t width = rows->width;
	double z[1024], d[1024], loss = 0;
	for (size_t k = 0; k < s->rows; k++) {
		size_t r = order[k];
		float *b = hps_direct_row(rows, bias);
		for (uint32_t c = 0; c < width; c++)
			z[c] = b[c];
		for (size_t i = s->start[r]; i < s->start[r + 1]; i++) {
			const float *wi = hps_direct_row(rows, s->idx[i]);
			double x = s->val[i];
			for (uint32_t c = 0; c < width; c++)
				z[c] += x * wi[c];
		}
		loss += loss_and_delta(z, width, s->label[r], d);
		for (uint32_t c = 0; c < width; c++)
			b[c] -= lr * (float)d[c];
		for (size_t i = s->start[r]; i < s->start[r + 1]; i++) {
			float *wi = hps_direct_row(rows, s->idx[i]), g = lr * s->val[i];
			for (uint32_t c = 0; c < width; c++)
				wi[c] -= g * (float)d[c];
		}
		hps_direct_cache_step(cache);
		if (show && (k & 4095) == 0)
			report_progress(rep, epoch, (double)k / (double)s->rows);
	}
	return loss;
}

/* HOGWILD's rows: d's array, with this worker's own copies of the keys its
 * shard uses, each merged after about `merge` of its uses (ex_copy_keys;
 * the bias is in every example); none with merge 0. Turns the shard's
 * feature ids into row handles and gives the bias's in *bias. */
static int open_rows(const hps_direct *d, struct sparse_set *s, const struct model *m, int merge,
		     hps_direct_cache **out, uint32_t *bias)
{
	uint32_t *count = calloc(m->nkeys, sizeof *count);
	uint64_t *keys = NULL;
	uint32_t *every = NULL;
	size_t ncopy = 0;
	int rc = HPS_ENOMEM;
	if (count) {
		count[0] = (uint32_t)s->rows;
		for (size_t i = 0; i < s->nnz; i++)
			count[s->idx[i]]++;
		if (!ex_copy_keys(count, m->nkeys, s->rows, (uint32_t)merge, &keys, &every, &ncopy))
			rc = hps_direct_cache_open(d, keys, every, ncopy, out);
		/* count becomes key -> handle */
		for (uint64_t k = 0; !rc && k < m->nkeys; k++)
			rc = hps_direct_cache_handle(*out, k, &count[k]);
		for (size_t i = 0; !rc && i < s->nnz; i++)
			s->idx[i] = count[s->idx[i]];
		if (!rc)
			*bias = count[0];
	}
	free(count);
	free(keys);
	free(every);
	return rc;
}

/* ---- mini-batches: the server modes and the in-process baseline ------- */

/* Gathers the distinct keys of rows order[from..to) (plus the bias) and
 * the position of each occurrence: b->at[0] the bias, then every
 * nonzero of the rows in order. sorted: keys ascending, as hps wants
 * them (the positions are then taken again after the sort). */
static void batch_keys(struct ex_batch *b, const struct sparse_set *s, const size_t *order, size_t from, size_t to,
		       int sorted)
{
	uint32_t *at = b->at;
	ex_batch_begin(b);
	*at++ = ex_batch_add(b, 0);
	for (size_t k = from; k < to; k++)
		for (size_t i = s->start[order[k]]; i < s->start[order[k] + 1]; i++)
			*at++ = ex_batch_add(b, s->idx[i]);
	if (!sorted)
		return;
	ex_batch_sort(b);
	at = b->at;
	*at++ = ex_batch_pos(b, 0);
	for (size_t k = from; k < to; k++)
		for (size_t i = s->start[order[k]]; i < s->start[order[k] + 1]; i++)
			*at++ = ex_batch_pos(b, s->idx[i]);
}

/* The mean gradient of rows order[from..to) into b->g (by position in the
 * batch). The weights are w: the batch's pulled ones by position (pulled),
 * or the whole model's by key. Returns the summed loss of the rows. The
 * same arithmetic as row_scores and sgd_epoch, for the server modes and
 * the baseline alike. */
static double batch_gradient(struct ex_batch *b, const struct sparse_set *s, const size_t *order, size_t from,
			     size_t to, const float *w, int pulled)
{
	double z[1024], d[1024], loss = 0;
	uint32_t width = b->width;
	const uint32_t *at = b->at;
	const float *wb = w + (size_t)(pulled ? at[0] : 0) * width;
	float *gb = b->g + (size_t)at[0] * width;
	at++;
	memset(b->g, 0, b->nkeys * width * sizeof *b->g);
	for (size_t k = from; k < to; k++) {
		size_t r = order[k], first = s->start[r], n = s->start[r + 1] - first;
		const uint32_t *idx = s->idx + first;
		const float *val = s->val + first;
		for (uint32_t c = 0; c < width; c++)
			z[c] = wb[c];
		for (size_t i = 0; i < n; i++) {
			const float *wi = w + (size_t)(pulled ? at[i] : idx[i]) * width;
			double x = val[i];
			for (uint32_t c = 0; c < width; c++)
				z[c] += x * wi[c];
		}
		loss += loss_and_delta(z, width, s->label[r], d);
		for (uint32_t c = 0; c < width; c++)
			gb[c] += (float)d[c];
		for (size_t i = 0; i < n; i++) {
			float *gi = b->g + (size_t)at[i] * width, x = val[i];
			for (uint32_t c = 0; c < width; c++)
				gi[c] += x * (float)d[c];
		}
		at += n;
	}
	if (to > from) {
		float scale = 1.0f / (float)(to - from);
		for (size_t i = 0; i < b->nkeys * width; i++)
			b->g[i] *= scale;
	}
	return loss;
}

/* Rows of batch t: [*from, *to) of the shard's order. Every worker runs
 * the same number of batches (and clocks), so under BSP nobody waits for a
 * clock that never comes; the last ones of a short shard are empty. */
static void batch_rows(size_t t, int batch_size, size_t rows, size_t *from, size_t *to)
{
	size_t f = t * (size_t)batch_size, e = f + (size_t)batch_size;
	*from = f < rows ? f : rows;
	*to = e < rows ? e : rows;
}

/* Batch t of the server modes lives in bs[t % EX_BATCH_RING]: while the
 * servers answer the pull of batch t, the worker gathers and sorts the
 * keys of batch t + 1 into the buffers of batch t - 2, whose push it has
 * waited for (the pull of batch t - 1 followed it on the ring), so that
 * key gathering and sorting leave the path a batch waits on. The requests
 * and their order are those of gathering each batch just before its pull. */
static double server_epoch(hps_worker *w, struct ex_batch *bs, const struct sparse_set *s, const size_t *order,
			   size_t batches, int batch_size, struct report *rep, int epoch, int show, int *err)
{
	double loss = 0;
	hps_opts o = {.width = bs[0].width};
	int64_t last_push = -1;
	size_t from, to;
	if (batches) {
		batch_rows(0, batch_size, s->rows, &from, &to);
		batch_keys(&bs[0], s, order, from, to, 1);
	}
	for (size_t t = 0; t < batches; t++) {
		struct ex_batch *b = &bs[t % EX_BATCH_RING], *next = &bs[(t + 1) % EX_BATCH_RING];
		/* every worker runs the same number of batches (and clocks), so
		 * under BSP nobody waits for a clock that never comes */
		int64_t pull = hps_pull(w, b->keys, b->nkeys, b->w, &o);
		if (pull >= 0 && t + 1 < batches) {
			size_t nfrom, nto;
			batch_rows(t + 1, batch_size, s->rows, &nfrom, &nto);
			batch_keys(next, s, order, nfrom, nto, 1);
		}
		int rc = hps_wait(w, pull);
		/* the previous push was applied before this pull (same ring, in
		 * order): its status is in, waiting costs nothing */
		if (!rc && last_push >= 0)
			rc = hps_wait(w, last_push);
		if (rc) {
			*err = rc;
			return loss;
		}
		batch_rows(t, batch_size, s->rows, &from, &to);
		loss += batch_gradient(b, s, order, from, to, b->w, 1);
		if (to > from) {
			/* not waited for: the next pull follows it on the same ring */
			last_push = hps_push(w, b->keys, b->nkeys, b->g, &o);
			if (last_push < 0) {
				*err = (int)last_push;
				return loss;
			}
		}
		if ((rc = hps_clock(w))) {
			*err = rc;
			return loss;
		}
		if (show && (t & 63) == 0)
			report_progress(rep, epoch, (double)t / (double)batches);
	}
	*err = last_push >= 0 ? hps_wait(w, last_push) : 0;
	return loss;
}

/* The baseline of the server modes (--local-batch): the same batches in
 * the same order, the same gradient, and the servers' optimizer applied
 * to each key of the batch, all in this process on the model's own
 * array: no sorting, no copies, no requests. */
static double local_batch_epoch(struct ex_local_model *m, struct ex_batch *b, const struct sparse_set *s,
				const size_t *order, size_t batches, int batch_size, struct report *rep, int epoch)
{
	double loss = 0;
	for (size_t t = 0; t < batches; t++) {
		size_t from, to;
		batch_rows(t, batch_size, s->rows, &from, &to);
		batch_keys(b, s, order, from, to, 0);
		loss += batch_gradient(b, s, order, from, to, m->w, 0);
		for (size_t i = 0; to > from && i < b->nkeys; i++)
			ex_local_model_apply(m, b->keys[i], b->g + i * m->width);
		if ((t & 63) == 0)
			report_progress(rep, epoch, (double)t / (double)batches);
	}
	return loss;
}

/* Worker 0's copy of the whole model, pulled in pieces. */
static int pull_model(hps_worker *w, const struct model *m, float *out)
{
	const uint64_t chunk = 16384;
	uint64_t *keys = malloc(chunk * sizeof *keys);
	if (!keys)
		return HPS_ENOMEM;
	int rc = 0;
	for (uint64_t first = 0; !rc && first < m->nkeys; first += chunk) {
		uint64_t n = m->nkeys - first < chunk ? m->nkeys - first : chunk;
		for (uint64_t i = 0; i < n; i++)
			keys[i] = first + i;
		rc = hps_wait(w, hps_pull(w, keys, n, out + first * m->width, &(hps_opts){.width = m->width}));
	}
	free(keys);
	return rc;
}

/* ---- the run ------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: sparse_lr --train FILE --test FILE [options]   (started by hps launch, or --local, --local-batch)\n"
		"  --classes C        classes (default: from the labels; 2 = binary)\n"
		"  --cross BITS       add hashed pairwise crosses of 28x28 images into 2^BITS buckets\n"
		"  --log1p            feature values x become log(1 + x) (word counts)\n"
		"  --normalize        scale each row to unit L2 norm (after --log1p)\n"
		EX_COMMON_USAGE
		"defaults: --epochs 10 --batch 32 --lr 0.1\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {EX_COMMON_LONGOPTS,     {"classes", 1, 0, 'c'}, {"cross", 1, 0, 'x'},
					   {"log1p", 0, 0, 'p'},   {"normalize", 0, 0, 'N'}, {"help", 0, 0, 'h'},
					   {0, 0, 0, 0}};
	*o = (struct opts){.c = {.name = "data", .epochs = 10, .batch = 32, .lr = 0.1, .seed = 1, .merge = 16}};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ex_common_option(c, optarg, &o->c))
			continue;
		switch (c) {
		case 'c': o->classes = atoi(optarg); break;
		case 'x': o->cross_bits = atoi(optarg); break;
		case 'p': o->log1p = 1; break;
		case 'N': o->normalize = 1; break;
		default: usage(); return -1;
		}
	}
	if (ex_common_check(&o->c) || o->classes < 0 || o->classes > 1024 || o->cross_bits < 0 || o->cross_bits > 24) {
		usage();
		return -1;
	}
	return 0;
}

static void transform(const struct opts *o, struct sparse_set *s)
{
	for (size_t r = 0; r < s->rows; r++) {
		double sq = 0;
		for (size_t i = s->start[r]; i < s->start[r + 1]; i++) {
			if (o->log1p)
				s->val[i] = log1pf(s->val[i] > 0 ? s->val[i] : 0);
			sq += (double)s->val[i] * s->val[i];
		}
		if (o->normalize && sq > 0)
			for (size_t i = s->start[r]; i < s->start[r + 1]; i++)
				s->val[i] = (float)(s->val[i] / sqrt(sq));
	}
}

/* Loads this worker's shard and the test set; adds crosses if asked. */
static int load(const struct opts *o, int rank, int nworkers, struct sparse_set *tr, struct sparse_set *te,
		struct model *m)
{
	char err[512];
	if (sparse_read(o->c.train, (size_t)rank, (size_t)nworkers, tr, err, sizeof err) ||
	    sparse_read(o->c.test, 0, 1, te, err, sizeof err)) {
		fprintf(stderr, "sparse_lr: %s\n", err);
		return -1;
	}
	transform(o, tr);
	transform(o, te);
	uint32_t maxf = tr->max_feature > te->max_feature ? tr->max_feature : te->max_feature;
	if (o->cross_bits) {
		if (image_add_crosses(tr, 28, 4, 3, (unsigned)o->cross_bits, maxf) ||
		    image_add_crosses(te, 28, 4, 3, (unsigned)o->cross_bits, maxf)) {
			fprintf(stderr, "sparse_lr: cannot add crosses (out of memory?)\n");
			return -1;
		}
		maxf = tr->max_feature;
	}
	int32_t maxl = tr->max_label > te->max_label ? tr->max_label : te->max_label;
	int classes = o->classes ? o->classes : (maxl + 1 > 2 ? maxl + 1 : 2);
	if (maxl >= classes) {
		fprintf(stderr, "sparse_lr: label %d does not fit --classes %d\n", maxl, classes);
		return -1;
	}
	m->width = classes == 2 ? 1 : (uint32_t)classes;
	m->nkeys = (uint64_t)maxf + 1;
	return 0;
}

/* The optimizers that make sense for logistic regression. */
static int optimizer_ok(const char *spec)
{
	return spec && (!strncmp(spec, "sgd", 3) || !strncmp(spec, "adagrad", 7) || !strncmp(spec, "ftrl", 4));
}

int main(int argc, char **argv)
{
	hps_ctx *ctx = NULL;
	hps_worker *w = NULL;
	struct opts o;
	int rc;
	if ((rc = ex_start("sparse_lr", &argc, argv, usage, &ctx)) >= 0)
		return rc;
	rc = 0;
	if (parse(argc, argv, &o))
		return 2;
	if (o.c.local_batch) { /* before the data is read */
		char err[512];
		if (!optimizer_ok(o.c.updater)) {
			fprintf(stderr, "sparse_lr: --local-batch needs an optimizer: --updater sgd:lr=..|adagrad:lr=..|ftrl:alpha=..\n");
			return 2;
		}
		if (ex_local_model_check(o.c.updater, o.c.init, err, sizeof err)) {
			fprintf(stderr, "sparse_lr: %s\n", err);
			return 2;
		}
	}
	int rank = ctx ? hps_rank(ctx) : 0, nworkers = ctx ? hps_num_workers(ctx) : 1;
	struct sparse_set tr, te;
	struct model m;
	if (load(&o, rank, nworkers, &tr, &te, &m))
		return 1;
	struct report rep = {.dataset = o.c.name, .mode = ex_mode_name(o.c.hogwild, o.c.local, o.c.local_batch),
			     .metric = "test_accuracy", .reference = o.c.reference, .workers = nworkers,
			     .epochs = o.c.epochs, .target_loss = o.c.target_loss};
	if (rank == 0 && report_open(&rep, o.c.csv))
		return 1;
	if (ctx && (rc = hps_worker_open(ctx, m.width, &w))) {
		fprintf(stderr, "sparse_lr: hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	float *dense = NULL;  /* hogwild: the shared weights; local: private ones; local-batch: the model's */
	float *copy = NULL;   /* server mode, worker 0: the pulled model */
	struct ex_batch b[EX_BATCH_RING] = {{0}}; /* server modes: a ring of batches; local-batch: b[0] */
	struct ex_keymap map = {0};
	struct ex_local_model lm = {0};
	hps_direct_cache *cache = NULL; /* hogwild: this worker's copies of its keys */
	hps_direct_rows rows = {.width = m.width}; /* hogwild and local: where sgd_epoch's rows are */
	uint32_t bias = 0;
	size_t cap, occ_cap;
	ex_batch_caps_rows(&tr, o.c.batch, m.nkeys, &cap, &occ_cap);
	if (o.c.hogwild) {
		hps_direct d;
		if ((rc = hps_direct_map(ctx, 0, &d)) || d.first != 0 || d.count < m.nkeys || d.width != m.width) {
			fprintf(stderr, "sparse_lr: --hogwild needs hps launch --direct %u --key-ranges 0-%llu (%s)\n",
				m.width, (unsigned long long)m.nkeys - 1, rc ? hps_strerror(rc) : "range does not fit");
			return 1;
		}
		dense = d.vals;
		if (!(rc = open_rows(&d, &tr, &m, o.c.merge, &cache, &bias)))
			rows = hps_direct_cache_rows(cache);
	} else if (o.c.local) {
		/* handles are the keys: one process shares no rows to copy */
		if (m.nkeys > 0x80000000u) {
			fprintf(stderr, "sparse_lr: --local takes feature ids below 2^31\n");
			return 1;
		}
		if (!(dense = rows.base[0] = calloc(m.nkeys * m.width, sizeof *dense)))
			rc = HPS_ENOMEM;
	} else if (o.c.local_batch) {
		char err[512]; /* the specs were checked: out of memory */
		if (ex_local_model_init(&lm, o.c.updater, o.c.init, m.nkeys, m.width, err, sizeof err) ||
		    ex_keymap_alloc(&map, m.nkeys) || ex_batch_alloc(&b[0], &map, cap, occ_cap, m.width, 0, NULL))
			rc = HPS_ENOMEM;
		dense = lm.w;
	} else {
		if (!optimizer_ok(getenv("HPS_UPDATER"))) {
			fprintf(stderr, "sparse_lr: the servers must run an optimizer: hps launch --updater sgd:lr=..|adagrad:lr=..|ftrl:alpha=..\n");
			return 1;
		}
		if (ex_keymap_alloc(&map, m.nkeys))
			rc = HPS_ENOMEM;
		for (int i = 0; !rc && i < EX_BATCH_RING; i++)
			if (ex_batch_alloc(&b[i], &map, cap, occ_cap, m.width, 1, w))
				rc = HPS_ENOMEM;
		if (rank == 0 && !(copy = malloc(m.nkeys * m.width * sizeof *copy)))
			rc = HPS_ENOMEM;
	}
	if (rc) {
		fprintf(stderr, "sparse_lr: out of memory for %llu keys\n", (unsigned long long)m.nkeys);
		return 1;
	}
	size_t *order = malloc((tr.rows ? tr.rows : 1) * sizeof *order);
	size_t shard_max = (tr.file_rows + (size_t)nworkers - 1) / (size_t)nworkers;
	size_t batches = (shard_max + (size_t)o.c.batch - 1) / (size_t)o.c.batch;
	double train_s = 0, updates_s = 0, acc = 0, test_loss = 0;
	rc = ctx ? hps_barrier(ctx) : 0;
	for (int e = 1; !rc && e <= o.c.epochs; e++) {
		ex_shuffle(order, tr.rows, o.c.seed * 1000003u + (uint64_t)rank * 7919u + (uint64_t)e);
		double t0 = ex_now(), loss;
		if (o.c.local_batch)
			loss = local_batch_epoch(&lm, &b[0], &tr, order, batches, o.c.batch, &rep, e);
		else if (dense) {
			loss = sgd_epoch(&tr, order, &rows, bias, cache, (float)(o.c.lr / (1 + o.c.decay * (e - 1))), &rep,
					 e, rank == 0);
			hps_direct_cache_merge(cache); /* worker 0 evaluates the shared array */
		} else
			loss = server_epoch(w, b, &tr, order, batches, o.c.batch, &rep, e, rank == 0, &rc);
		if (!rc && ctx)
			rc = hps_barrier(ctx); /* every update of the epoch is in */
		double dt = ex_now() - t0;
		train_s += dt;
		updates_s = (double)tr.file_rows / dt;
		if (!rc && rank == 0) {
			if (!dense)
				rc = pull_model(w, &m, copy);
			if (!rc) {
				evaluate(&te, dense ? dense : copy, m.width, &test_loss, &acc);
				report_epoch(&rep, e, train_s, tr.rows ? loss / (double)tr.rows : 0, test_loss, acc,
					     updates_s);
			}
		}
		if (!rc && ctx)
			rc = hps_barrier(ctx); /* nobody trains while worker 0 evaluates */
	}
	if (rc)
		fprintf(stderr, "sparse_lr: worker %d: %s\n", rank, hps_strerror(rc));
	else if (rank == 0)
		report_result(&rep, acc, train_s, (double)tr.file_rows * o.c.epochs / train_s);
	report_close(&rep);
	hps_direct_cache_close(cache);
	for (int i = 0; i < EX_BATCH_RING; i++)
		ex_batch_free(&b[i]); /* before the worker closes: the buffers may be in its heap */
	ex_keymap_free(&map);
	if (w)
		hps_worker_close(w);
	if (ctx)
		hps_finalize(ctx);
	if (o.c.local)
		free(dense);
	ex_local_model_free(&lm);
	free(order);
	free(copy);
	sparse_free(&tr);
	sparse_free(&te);
	return rc ? 1 : 0;
}
