/* Matrix factorisation by SGD on ratings (MovieLens): a rating r of user u
 * for item i is predicted as mu + b_u + b_i + p_u . q_i with `factors`
 * latent values per user and item (Koren, Bell and Volinsky 2009). With
 * --factors 0 it is the regularised user + item bias baseline.
 *
 * Keys: user u is key 2u, item i is key 2i + 1; each holds its bias and
 * then its factors (width factors + 1). Modes as in sparse_lr: server
 * (mini-batches; the job's HPS_UPDATER applies the summed gradients, the
 * job's HPS_STALENESS chooses BSP/SSP/ASP), --hogwild (per-rating SGD in
 * place on the shared array; needs hps launch --direct --key-ranges) and
 * --local (one process, no parameter server). Random starting factors come
 * from HPS_INIT in the job modes (hps launch --init normal:std=0.1). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/lib/dataset.h"
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

/* Per-rating SGD in place (HOGWILD and local). Returns the summed squared
 * error before each update. */
static double sgd_epoch(const struct rating *t, const size_t *order, size_t n, float *w, uint32_t width, double mu,
			float lr, double reg, double breg)
{
	float gu[1025], gi[1025];
	double se = 0;
	for (size_t k = 0; k < n; k++) {
		const struct rating *r = &t[order[k]];
		float *pu = w + user_key(r->user) * width, *qi = w + item_key(r->item) * width;
		memset(gu, 0, width * sizeof *gu);
		memset(gi, 0, width * sizeof *gi);
		double e = rating_grad(mu, pu, qi, (int)width - 1, r->value, reg, breg, gu, gi);
		se += e * e;
		for (uint32_t j = 0; j < width; j++) {
			pu[j] -= lr * gu[j];
			qi[j] -= lr * gi[j];
		}
	}
	return se;
}

/* ---- server mode ------------------------------------------------------- */

struct batch {
	uint64_t *keys, *tmp; /* distinct keys of the batch, ascending; room to sort */
	uint32_t *pos, *stamp, gen;
	float *w, *g;
	size_t nkeys;
};

static void batch_add(struct batch *b, uint64_t key)
{
	if (b->stamp[key] != b->gen) {
		b->stamp[key] = b->gen;
		b->keys[b->nkeys++] = key;
	}
}

static double server_epoch(hps_worker *w, struct batch *b, const struct rating *t, const size_t *order, size_t n,
			   size_t batches, int bs, uint32_t width, double mu, double reg, double breg, int *err)
{
	hps_opts o = {.width = width};
	double se = 0;
	int64_t last_push = -1;
	for (size_t s = 0; s < batches; s++) {
		size_t from = s * (size_t)bs, to = from + (size_t)bs;
		from = from < n ? from : n;
		to = to < n ? to : n;
		b->gen++;
		b->nkeys = 0;
		for (size_t k = from; k < to; k++)
			batch_add(b, user_key(t[order[k]].user)), batch_add(b, item_key(t[order[k]].item));
		ex_sort_keys(b->keys, b->tmp, b->nkeys);
		for (size_t i = 0; i < b->nkeys; i++)
			b->pos[b->keys[i]] = (uint32_t)i;
		int rc = b->nkeys ? hps_wait(w, hps_pull(w, b->keys, b->nkeys, b->w, &o)) : 0;
		if (!rc && last_push >= 0) /* applied before the pull: costs nothing */
			rc = hps_wait(w, last_push);
		if (rc) {
			*err = rc;
			return se;
		}
		memset(b->g, 0, b->nkeys * width * sizeof *b->g);
		for (size_t k = from; k < to; k++) {
			const struct rating *r = &t[order[k]];
			size_t u = b->pos[user_key(r->user)], i = b->pos[item_key(r->item)];
			double e = rating_grad(mu, b->w + u * width, b->w + i * width, (int)width - 1, r->value, reg,
					       breg, b->g + u * width, b->g + i * width);
			se += e * e;
		}
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

/* Test RMSE from pulled vectors of the test set's users and items. */
static int rmse_pulled(hps_worker *w, struct batch *b, const struct rating *t, size_t n, uint32_t width, double mu,
		       double *out)
{
	b->gen++;
	b->nkeys = 0;
	for (size_t k = 0; k < n; k++)
		batch_add(b, user_key(t[k].user)), batch_add(b, item_key(t[k].item));
	ex_sort_keys(b->keys, b->tmp, b->nkeys);
	for (size_t i = 0; i < b->nkeys; i++)
		b->pos[b->keys[i]] = (uint32_t)i;
	int rc = hps_wait(w, hps_pull(w, b->keys, b->nkeys, b->w, &(hps_opts){.width = width}));
	if (rc)
		return rc;
	double se = 0;
	for (size_t k = 0; k < n; k++) {
		double e = t[k].value - predict(mu, b->w + (size_t)b->pos[user_key(t[k].user)] * width,
						b->w + (size_t)b->pos[item_key(t[k].item)] * width, (int)width - 1);
		se += e * e;
	}
	*out = sqrt(se / (double)n);
	return 0;
}

/* ---- the run ----------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: mf --train FILE --test FILE [options]   (started by hps launch, or --local)\n"
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
	*o = (struct opts){.c = {.name = "ratings", .epochs = 20, .batch = 64, .lr = 0.01, .seed = 1},
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
	struct report rep = {.dataset = o.c.name, .mode = ex_mode_name(o.c.hogwild, o.c.local), .metric = "test_rmse",
			     .reference = o.c.reference, .workers = nworkers, .epochs = o.c.epochs,
			     .target_loss = o.c.target_loss};
	if (rank == 0 && report_open(&rep, o.c.csv))
		return 1;
	if (ctx && (rc = hps_worker_open(ctx, width, &w))) {
		fprintf(stderr, "mf: hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	float *dense = NULL;
	struct batch b = {0};
	if (o.c.hogwild) {
		hps_direct d;
		if ((rc = hps_direct_map(ctx, 0, &d)) || d.first != 0 || d.count < nkeys || d.width != width) {
			fprintf(stderr, "mf: --hogwild needs hps launch --direct %u --key-ranges 0-%llu (%s)\n", width,
				(unsigned long long)nkeys - 1, rc ? hps_strerror(rc) : "range does not fit");
			return 1;
		}
		dense = d.vals;
	} else if (o.c.local) {
		/* the job modes start from HPS_INIT; here: normal(0, 0.1) */
		if ((dense = malloc(nkeys * width * sizeof *dense))) {
			uint64_t s = o.c.seed;
			for (uint64_t i = 0; i < nkeys * width; i++) {
				double u1 = (double)(ex_rand(&s) >> 11) * 0x1p-53, u2 = (double)(ex_rand(&s) >> 11) * 0x1p-53;
				dense[i] = (float)(0.1 * sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2));
			}
		}
	} else {
		const char *u = getenv("HPS_UPDATER");
		if (!u || (strncmp(u, "sgd", 3) && strncmp(u, "adagrad", 7) && strncmp(u, "adam", 4))) {
			fprintf(stderr, "mf: the servers must run an optimizer: hps launch --updater sgd:lr=..|adagrad:lr=..|adam:lr=..\n");
			return 1;
		}
		b.keys = malloc(nkeys * sizeof *b.keys);
		b.tmp = malloc(nkeys * sizeof *b.tmp);
		b.pos = malloc(nkeys * sizeof *b.pos);
		b.stamp = calloc(nkeys, sizeof *b.stamp);
		b.w = malloc(nkeys * width * sizeof *b.w);
		b.g = malloc(nkeys * width * sizeof *b.g);
		if (!b.keys || !b.tmp || !b.pos || !b.stamp || !b.w || !b.g)
			rc = HPS_ENOMEM;
	}
	if ((o.c.local && !dense) || rc) {
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
		if (dense)
			se = sgd_epoch(tr, order, ntr, dense, width, mu, (float)(o.c.lr / (1 + o.c.decay * (e - 1))), o.reg,
				       o.bias_reg);
		else
			se = server_epoch(w, &b, tr, order, ntr, batches, o.c.batch, width, mu, o.reg, o.bias_reg, &rc);
		if (!rc && ctx)
			rc = hps_barrier(ctx);
		double dt = ex_now() - t0;
		train_s += dt;
		if (!rc && rank == 0) {
			if (dense)
				rmse = rmse_dense(te, nte, dense, width, mu);
			else
				rc = rmse_pulled(w, &b, te, nte, width, mu, &rmse);
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
	if (w)
		hps_worker_close(w);
	if (ctx)
		hps_finalize(ctx);
	if (o.c.local)
		free(dense);
	free(order);
	free(all), free(tr), free(te);
	free(b.keys), free(b.tmp), free(b.pos), free(b.stamp), free(b.w), free(b.g);
	return rc ? 1 : 0;
}
