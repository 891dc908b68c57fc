/* Matrix factorisation by SGD on ratings (MovieLens): a rating r of user u
 * for item i is predicted as mu + b_u + b_i + p_u . q_i with `factors`
 * latent values per user and item (Koren, Bell and Volinsky 2009). With
 * --factors 0 it is the regularised user + item bias baseline.
 *
 * Keys: user u is key 2u, item i is key 2i + 1; each holds its bias and
 * then its factors (width factors + 1). Modes as in sparse_lr: server
 * (mini-batches; the job's HPS_UPDATER applies the summed gradients, the
 * job's HPS_STALENESS chooses BSP/SSP/ASP), --hogwild (per-rating SGD in
 * place on the shared array; needs hps launch --direct --key-ranges),
 * --local (the same per-rating SGD in one process, no parameter server)
 * and --local-batch --updater SPEC [--init SPEC] (the server modes'
 * mini-batches, order and optimizer in one process: their baseline
 * without a parameter server). Random starting factors come from
 * HPS_INIT in the job modes (hps launch --init normal:std=0.1), from
 * --init with --local-batch. */
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
	double reg, bias_reg;
	int factors;
};

static uint64_t user_key(uint32_t u) { return 2 * (uint64_t)u; }
static uint64_t item_key(uint32_t i) { return 2 * (uint64_t)i + 1; }

static double predict(double mu, const float *pu, const float *qi, int f)
{
	double r = mu + pu[0] + qi[0];
	for (int k = 1; k <= f; k++)
		r += (double)pu[k] * qi[k];
	return r;
}

/* The gradient of (r - pred)^2 / 2 + reg/2 (|p_u|^2 + |q_i|^2) + breg/2 (b_u^2 + b_i^2) for
 * the user's and item's vectors, added into gu and gi. Returns the error. */
static double rating_grad(double mu, const float *pu, const float *qi, int f, double r, double reg, double breg,
			  float *gu, float *gi)
{
	double e = r - predict(mu, pu, qi, f);
	gu[0] += (float)(-e + breg * pu[0]);
	gi[0] += (float)(-e + breg * qi[0]);
	for (int k = 1; k <= f; k++) {
		gu[k] += (float)(-e * qi[k] + reg * pu[k]);
		gi[k] += (float)(-e * pu[k] + reg * qi[k]);
	}
	return e;
}

static double rmse_dense(const struct rating *t, size_t n, const float *w, uint32_t width, double mu)
{
	double se = 0;
	for (size_t k = 0; k < n; k++) {
		double e = t[k].value - predict(mu, w + user_key(t[k].user) * width, w + item_key(t[k].item) * width,
						  (int)width - 1);
		se += e * e;
	}
	return sqrt(se / (double)n);
}

/* Per-rating SGD in place (HOGWILD and local), the same code for both:
 * rating t[k]'s user and item rows have the handles hu[k] and hi[k]
 * (hps_direct_row): rows in the shared array, in this worker's copies of
 * its keys (--merge), or in the local baseline's private array. Returns the
 * summed squared error before each update. */
static double sgd_epoch(const struct rating *t, const uint32_t *hu, const uint32_t *hi, const size_t *order, size_t n,
			const hps_direct_rows *rows, hps_direct_cache *cache, double mu, float lr, double reg,
			double breg)
{
	uint32_t width = rows->width;
	float gu[1025], gi[1025];
	double se = 0;
	for (size_t k = 0; k < n; k++) {
		size_t o = order[k];
		float *pu = hps_direct_row(rows, hu[o]), *qi = hps_direct_row(rows, hi[o]);
		memset(gu, 0, width * sizeof *gu);
		memset(gi, 0, width * sizeof *gi);
		double e = rating_grad(mu, pu, qi, (int)width - 1, t[o].value, reg, breg, gu, gi);
		se += e * e;
		for (uint32_t j = 0; j < width; j++) {
			pu[j] -= lr * gu[j];
			qi[j] -= lr * gi[j];
		}
		hps_direct_cache_step(cache);
	}
	return se;
}

/* HOGWILD's rows: d's array, with this worker's own copies of the users
 * and items its shard rates, each merged after about `merge` of its uses
 * (ex_copy_keys); none with merge 0. The ratings' handles go to hu and
 * hi. */
static int open_rows(const hps_direct *d, const struct rating *t, size_t n, uint64_t nkeys, int merge,
		     hps_direct_cache **out, uint32_t *hu, uint32_t *hi)
{
	uint32_t *count = calloc(nkeys, sizeof *count);
	uint64_t *keys = NULL;
	uint32_t *every = NULL;
	size_t ncopy = 0;
	int rc = HPS_ENOMEM;
	if (count) {
		for (size_t k = 0; k < n; k++)
			count[user_key(t[k].user)]++, count[item_key(t[k].item)]++;
		if (!ex_copy_keys(count, nkeys, n, (uint32_t)merge, &keys, &every, &ncopy))
			rc = hps_direct_cache_open(d, keys, every, ncopy, out);
		for (size_t k = 0; !rc && k < n; k++)
			rc = hps_direct_cache_handle(*out, user_key(t[k].user), &hu[k]) ||
					     hps_direct_cache_handle(*out, item_key(t[k].item), &hi[k])
				     ? HPS_ENOKEY
				     : 0;
	}
	free(count);
	free(keys);
	free(every);
	return rc;
}

/* ---- mini-batches: the server modes and the in-process baseline ------ */

/* Gathers the users and items of ratings order[from..to) and where each
 * lies among them: b->at[2k] the user, b->at[2k + 1] the item of the
 * batch's k-th rating. sorted: keys ascending, as hps wants them (the
 * positions are then taken again after the sort). */
static void batch_keys(struct ex_batch *b, const struct rating *t, const size_t *order, size_t from, size_t to,
		       int sorted)
{
	uint32_t *at = b->at;
	ex_batch_begin(b);
	for (size_t k = from; k < to; k++) {
		*at++ = ex_batch_add(b, user_key(t[order[k]].user));
		*at++ = ex_batch_add(b, item_key(t[order[k]].item));
	}
	if (!sorted)
		return;
	ex_batch_sort(b);
	at = b->at;
	for (size_t k = from; k < to; k++) {
		*at++ = ex_batch_pos(b, user_key(t[order[k]].user));
		*at++ = ex_batch_pos(b, item_key(t[order[k]].item));
	}
}

/* The summed gradient of ratings order[from..to) into b->g (by position
 * in the batch) from the weights w: the batch's pulled ones by position
 * (pulled), or the whole model's by key. Returns the summed squared
 * error. The same code for the server modes and the baseline. */
static double batch_gradient(struct ex_batch *b, const struct rating *t, const size_t *order, size_t from,
			     size_t to, const float *w, int pulled, double mu, double reg, double breg)
{
	uint32_t width = b->width;
	const uint32_t *at = b->at;
	double se = 0;
	memset(b->g, 0, b->nkeys * width * sizeof *b->g);
	for (size_t k = from; k < to; k++, at += 2) {
		const struct rating *r = &t[order[k]];
		size_t u = at[0], i = at[1];
		const float *pu = w + (pulled ? u : user_key(r->user)) * width;
		const float *qi = w + (pulled ? i : item_key(r->item)) * width;
		double e = rating_grad(mu, pu, qi, (int)width - 1, r->value, reg, breg, b->g + u * width,
				       b->g + i * width);
		se += e * e;
	}
	return se;
}

/* Ratings of batch t: [*from, *to) of the shard's order; every worker
 * runs the same number of batches (and clocks), the last ones of a short
 * shard empty. */
static void batch_rows(size_t t, int bs, size_t n, size_t *from, size_t *to)
{
	size_t f = t * (size_t)bs, e = f + (size_t)bs;
	*from = f < n ? f : n;
	*to = e < n ? e : n;
}

/* As in sparse_lr: batch t in bs[t % EX_BATCH_RING], the keys of batch
 * t + 1 gathered and sorted while the pull of batch t is out. */
static double server_epoch(hps_worker *w, struct ex_batch *bs, const struct rating *t, const size_t *order, size_t n,
			   size_t batches, int bsize, double mu, double reg, double breg, int *err)
{
	hps_opts o = {.width = bs[0].width};
	double se = 0;
	int64_t last_push = -1;
	size_t from, to;
	if (batches) {
		batch_rows(0, bsize, n, &from, &to);
		batch_keys(&bs[0], t, order, from, to, 1);
	}
	for (size_t s = 0; s < batches; s++) {
		struct ex_batch *b = &bs[s % EX_BATCH_RING], *next = &bs[(s + 1) % EX_BATCH_RING];
		int64_t pull = b->nkeys ? hps_pull(w, b->keys, b->nkeys, b->w, &o) : 0;
		if (pull >= 0 && s + 1 < batches) {
			size_t nfrom, nto;
			batch_rows(s + 1, bsize, n, &nfrom, &nto);
			batch_keys(next, t, order, nfrom, nto, 1);
		}
		int rc = b->nkeys ? hps_wait(w, pull) : 0;
		if (!rc && last_push >= 0) /* applied before the pull: costs nothing */
			rc = hps_wait(w, last_push);
		if (rc) {
			*err = rc;
			return se;
		}
		batch_rows(s, bsize, n, &from, &to);
		se += batch_gradient(b, t, order, from, to, b->w, 1, mu, reg, breg);
		if (b->nkeys && (last_push = hps_push(w, b->keys, b->nkeys, b->g, &o)) < 0) {
			*err = (int)last_push;
			return se;
		}
		if ((rc = hps_clock(w))) { /* same number of clocks on every worker */
			*err = rc;
			return se;
		}
	}
	*err = last_push >= 0 ? hps_wait(w, last_push) : 0;
	return se;
}

/* The baseline of the server modes (--local-batch): the same batches,
 * gradient and server optimizer in this process on the model's own
 * array, no sorting, copies or requests. */
static double local_batch_epoch(struct ex_local_model *m, struct ex_batch *b, const struct rating *t,
				const size_t *order, size_t n, size_t batches, int bs, double mu, double reg, double breg)
{
	double se = 0;
	for (size_t s = 0; s < batches; s++) {
		size_t from, to;
		batch_rows(s, bs, n, &from, &to);
		batch_keys(b, t, order, from, to, 0);
		se += batch_gradient(b, t, order, from, to, m->w, 0, mu, reg, breg);
		for (size_t i = 0; i < b->nkeys; i++)
			ex_local_model_apply(m, b->keys[i], b->g + i * m->width);
	}
	return se;
}

/* Test RMSE from pulled vectors of the test set's users and items (b has
 * room for all of them). */
static int rmse_pulled(hps_worker *w, struct ex_batch *b, const struct rating *t, size_t n, double mu, double *out)
{
	uint32_t width = b->width;
	ex_batch_begin(b);
	for (size_t k = 0; k < n; k++)
		ex_batch_add(b, user_key(t[k].user)), ex_batch_add(b, item_key(t[k].item));
	ex_batch_sort(b);
	int rc = hps_wait(w, hps_pull(w, b->keys, b->nkeys, b->w, &(hps_opts){.width = width}));
	if (rc)
		return rc;
	double se = 0;
	for (size_t k = 0; k < n; k++) {
		double e = t[k].value - predict(mu, b->w + ex_batch_pos(b, user_key(t[k].user)) * width,
						b->w + ex_batch_pos(b, item_key(t[k].item)) * width, (int)width - 1);
		se += e * e;
	}
	*out = sqrt(se / (double)n);
	return 0;
}

/* The optimizers that make sense for matrix factorisation. */
static int optimizer_ok(const char *spec)
{
	return spec && (!strncmp(spec, "sgd", 3) || !strncmp(spec, "adagrad", 7) || !strncmp(spec, "adam", 4));
}

/* ---- the run ----------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: mf --train FILE --test FILE [options]   (started by hps launch, or --local, --local-batch)\n"
		"  --factors F        latent factors per user and item (default 10; 0 = biases only)\n"
		"  --reg R            L2 regularisation of the factors (default 0.05)\n"
		"  --bias-reg R       L2 regularisation of the biases (default: --reg)\n"
		EX_COMMON_USAGE
		"defaults: --epochs 20 --batch 64 --lr 0.01\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {EX_COMMON_LONGOPTS, {"factors", 1, 0, 'f'}, {"reg", 1, 0, 'R'},
					   {"bias-reg", 1, 0, 'B'}, {0, 0, 0, 0}};
	*o = (struct opts){.c = {.name = "ratings", .epochs = 20, .batch = 64, .lr = 0.01, .seed = 1, .merge = 16},
			   .reg = 0.05, .bias_reg = -1, .factors = 10};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ex_common_option(c, optarg, &o->c))
			continue;
		switch (c) {
		case 'f': o->factors = atoi(optarg); break;
		case 'R': o->reg = atof(optarg); break;
		case 'B': o->bias_reg = atof(optarg); break;
		default: usage(); return -1;
		}
	}
	if (o->bias_reg < 0)
		o->bias_reg = o->reg;
	if (ex_common_check(&o->c) || o->reg < 0 || o->factors < 0 || o->factors > 1024) {
		usage();
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	hps_ctx *ctx = NULL;
	hps_worker *w = NULL;
	struct opts o;
	int rc;
	if ((rc = ex_start("mf", &argc, argv, usage, &ctx)) >= 0)
		return rc;
	rc = 0;
	if (parse(argc, argv, &o))
		return 2;
	if (o.c.local_batch) { /* before the data is read */
		char err[512];
		if (!optimizer_ok(o.c.updater)) {
			fprintf(stderr, "mf: --local-batch needs an optimizer: --updater sgd:lr=..|adagrad:lr=..|adam:lr=..\n");
			return 2;
		}
		if (ex_local_model_check(o.c.updater, o.c.init, err, sizeof err)) {
			fprintf(stderr, "mf: %s\n", err);
			return 2;
		}
	}
	int rank = ctx ? hps_rank(ctx) : 0, nworkers = ctx ? hps_num_workers(ctx) : 1;
	struct rating *all, *tr, *te;
	size_t nall, ntr, nte;
	char err[512];
	/* the whole training file once for the global mean and the id range,
	 * so every worker agrees on them; then this worker's shard */
	if (ratings_read(o.c.train, 0, 1, &all, &nall, err, sizeof err) ||
	    ratings_read(o.c.train, (size_t)rank, (size_t)nworkers, &tr, &ntr, err, sizeof err) ||
	    ratings_read(o.c.test, 0, 1, &te, &nte, err, sizeof err)) {
		fprintf(stderr, "mf: %s\n", err);
		return 1;
	}
	double mu = 0;
	uint64_t nkeys = 0;
	for (size_t k = 0; k < nall; k++) {
		mu += all[k].value;
		nkeys = item_key(all[k].item) + 1 > nkeys ? item_key(all[k].item) + 1 : nkeys;
		nkeys = user_key(all[k].user) + 1 > nkeys ? user_key(all[k].user) + 1 : nkeys;
	}
	for (size_t k = 0; k < nte; k++) {
		nkeys = item_key(te[k].item) + 1 > nkeys ? item_key(te[k].item) + 1 : nkeys;
		nkeys = user_key(te[k].user) + 1 > nkeys ? user_key(te[k].user) + 1 : nkeys;
	}
	mu /= (double)nall;
	uint32_t width = (uint32_t)o.factors + 1;
	struct report rep = {.dataset = o.c.name, .mode = ex_mode_name(o.c.hogwild, o.c.local, o.c.local_batch),
			     .metric = "test_rmse", .reference = o.c.reference, .workers = nworkers,
			     .epochs = o.c.epochs, .target_loss = o.c.target_loss};
	if (rank == 0 && report_open(&rep, o.c.csv))
		return 1;
	if (ctx && (rc = hps_worker_open(ctx, width, &w))) {
		fprintf(stderr, "mf: hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	float *dense = NULL; /* hogwild: the shared array; local: a private one; local-batch: the model's */
	struct ex_batch b[EX_BATCH_RING] = {{0}}, eb = {0}; /* server modes: a ring of batches (local-batch: b[0]); worker 0's test set */
	struct ex_keymap map = {0};
	struct ex_local_model lm = {0};
	hps_direct_cache *cache = NULL; /* hogwild: this worker's copies of its keys */
	hps_direct_rows rows = {.width = width}; /* hogwild and local: where sgd_epoch's rows are */
	uint32_t *hu = malloc((ntr ? ntr : 1) * sizeof *hu), *hi = malloc((ntr ? ntr : 1) * sizeof *hi);
	if (!hu || !hi) {
		fprintf(stderr, "mf: out of memory for %zu ratings\n", ntr);
		return 1;
	}
	size_t occ_cap = 2 * (size_t)o.c.batch, cap = occ_cap < nkeys ? occ_cap : (size_t)nkeys;
	if (o.c.hogwild) {
		hps_direct d;
		if ((rc = hps_direct_map(ctx, 0, &d)) || d.first != 0 || d.count < nkeys || d.width != width) {
			fprintf(stderr, "mf: --hogwild needs hps launch --direct %u --key-ranges 0-%llu (%s)\n", width,
				(unsigned long long)nkeys - 1, rc ? hps_strerror(rc) : "range does not fit");
			return 1;
		}
		dense = d.vals;
		if (!(rc = open_rows(&d, tr, ntr, nkeys, o.c.merge, &cache, hu, hi)))
			rows = hps_direct_cache_rows(cache);
	} else if (o.c.local) {
		if (nkeys > 0x80000000u) { /* handles are the keys */
			fprintf(stderr, "mf: --local takes user and item ids below 2^30\n");
			return 1;
		}
		/* the job modes start from HPS_INIT; here: normal(0, 0.1) */
		if ((dense = malloc(nkeys * width * sizeof *dense))) {
			uint64_t s = o.c.seed;
			for (uint64_t i = 0; i < nkeys * width; i++) {
				double u1 = (double)(ex_rand(&s) >> 11) * 0x1p-53, u2 = (double)(ex_rand(&s) >> 11) * 0x1p-53;
				dense[i] = (float)(0.1 * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
			}
			/* handles are the keys: one process shares no rows to copy */
			rows.base[0] = dense;
			for (size_t k = 0; k < ntr; k++)
				hu[k] = (uint32_t)user_key(tr[k].user), hi[k] = (uint32_t)item_key(tr[k].item);
		} else {
			rc = HPS_ENOMEM;
		}
	} else if (o.c.local_batch) {
		/* the same starting model as a job with hps launch --init; the
		 * specs were checked: a failure is out of memory */
		if (ex_local_model_init(&lm, o.c.updater, o.c.init, nkeys, width, err, sizeof err) ||
		    ex_keymap_alloc(&map, nkeys) || ex_batch_alloc(&b[0], &map, cap, occ_cap, width, 0, NULL))
			rc = HPS_ENOMEM;
		dense = lm.w;
	} else {
		if (!optimizer_ok(getenv("HPS_UPDATER"))) {
			fprintf(stderr, "mf: the servers must run an optimizer: hps launch --updater sgd:lr=..|adagrad:lr=..|adam:lr=..\n");
			return 1;
		}
		size_t test_keys = 2 * nte < nkeys ? 2 * nte : (size_t)nkeys;
		if (ex_keymap_alloc(&map, nkeys))
			rc = HPS_ENOMEM;
		for (int i = 0; !rc && i < EX_BATCH_RING; i++)
			if (ex_batch_alloc(&b[i], &map, cap, occ_cap, width, 1, w))
				rc = HPS_ENOMEM;
		if (!rc && rank == 0 && ex_batch_alloc(&eb, &map, test_keys, 1, width, 1, NULL))
			rc = HPS_ENOMEM;
	}
	if (rc) {
		fprintf(stderr, "mf: out of memory for %llu keys\n", (unsigned long long)nkeys);
		return 1;
	}
	size_t *order = malloc((ntr ? ntr : 1) * sizeof *order);
	size_t shard_max = (nall + (size_t)nworkers - 1) / (size_t)nworkers;
	size_t batches = (shard_max + (size_t)o.c.batch - 1) / (size_t)o.c.batch;
	double train_s = 0, rmse = 0;
	rc = ctx ? hps_barrier(ctx) : 0;
	for (int e = 1; !rc && e <= o.c.epochs; e++) {
		ex_shuffle(order, ntr, o.c.seed * 1000003u + (uint64_t)rank * 7919u + (uint64_t)e);
		double t0 = ex_now(), se;
		if (o.c.local_batch)
			se = local_batch_epoch(&lm, &b[0], tr, order, ntr, batches, o.c.batch, mu, o.reg, o.bias_reg);
		else if (dense) {
			se = sgd_epoch(tr, hu, hi, order, ntr, &rows, cache, mu, (float)(o.c.lr / (1 + o.c.decay * (e - 1))),
				       o.reg, o.bias_reg);
			hps_direct_cache_merge(cache); /* worker 0 evaluates the shared array */
		} else
			se = server_epoch(w, b, tr, order, ntr, batches, o.c.batch, mu, o.reg, o.bias_reg, &rc);
		if (!rc && ctx)
			rc = hps_barrier(ctx);
		double dt = ex_now() - t0;
		train_s += dt;
		if (!rc && rank == 0) {
			if (dense)
				rmse = rmse_dense(te, nte, dense, width, mu);
			else
				rc = rmse_pulled(w, &eb, te, nte, mu, &rmse);
			if (!rc)
				report_epoch(&rep, e, train_s, ntr ? sqrt(se / (double)ntr) : 0, rmse, rmse,
					     (double)nall / dt);
		}
		if (!rc && ctx)
			rc = hps_barrier(ctx);
	}
	if (rc)
		fprintf(stderr, "mf: worker %d: %s\n", rank, hps_strerror(rc));
	else if (rank == 0)
		report_result(&rep, rmse, train_s, (double)nall * o.c.epochs / train_s);
	report_close(&rep);
	hps_direct_cache_close(cache);
	for (int i = 0; i < EX_BATCH_RING; i++)
		ex_batch_free(&b[i]); /* before the worker closes: the buffers may be in its heap */
	ex_batch_free(&eb);
	ex_keymap_free(&map);
	if (w)
		hps_worker_close(w);
	if (ctx)
		hps_finalize(ctx);
	if (o.c.local)
		free(dense);
	ex_local_model_free(&lm);
	free(order);
	free(all), free(tr), free(te), free(hu), free(hi);
	return rc ? 1 : 0;
}
