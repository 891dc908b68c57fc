/* The smallest hps worker: every worker adds 1 to keys 0..99, ten times;
 * after a barrier, each pulls the keys and checks they hold 10 x W.
 *
 *   hps launch --servers 2 --workers 4 -- build/examples/quickstart
 *
 * With --self-serve the same program also runs the servers, with a
 * handler of its own (a summing store that also counts requests). */
#include <hps/hps.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKEYS 100
#define ROUNDS 10

/* A user handler: sums fixed-width values in a dense table of NKEYS keys. */
static float table[NKEYS];

static int dense_sum(hps_request *r, void *arg)
{
	(void)arg;
	/* vals and out point to r->dtype values: this table holds floats. */
	if (r->width != 1 || r->dtype != HPS_F32)
		return HPS_EINVAL;
	const float *vals = r->vals;
	float *out = r->out;
	for (size_t i = 0; i < r->nkeys; i++)
		if (r->keys[i] >= NKEYS)
			return HPS_ENOKEY;
	if (r->type != HPS_REQ_PULL)
		for (size_t i = 0; i < r->nkeys; i++)
			table[r->keys[i]] += vals[i];
	if (r->type == HPS_REQ_PUSH)
		return 0;
	for (size_t i = 0; i < r->nkeys; i++)
		out[i] = table[r->keys[i]];
	return (int)r->nkeys;
}

int main(int argc, char **argv)
{
	hps_ctx *ctx;
	int rc = hps_init(&ctx, &argc, argv);
	if (rc) {
		fprintf(stderr, "hps_init: %s\n", hps_strerror(rc));
		return 1;
	}
	if (hps_role(ctx) == HPS_ROLE_SERVER) {
		rc = hps_server_run(ctx, dense_sum, NULL);
		hps_finalize(ctx);
		return rc ? 1 : 0;
	}
	hps_worker *w;
	if ((rc = hps_worker_open(ctx, 1, &w))) {
		fprintf(stderr, "hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	uint64_t keys[NKEYS];
	float ones[NKEYS], got[NKEYS];
	for (int i = 0; i < NKEYS; i++)
		keys[i] = (uint64_t)i, ones[i] = 1.0f;
	for (int r = 0; r < ROUNDS && !rc; r++)
		rc = hps_wait(w, hps_push(w, keys, NKEYS, ones, NULL));
	if (!rc)
		rc = hps_barrier(ctx);
	/* --fail (for the launcher's tests): worker 0 fails once every worker
	 * has pushed, so what the others check does not depend on when the
	 * launcher notices; its exit is the job's only failure. */
	if (!rc && argc > 1 && strcmp(argv[1], "--fail") == 0 && hps_rank(ctx) == 0) {
		fprintf(stderr, "failing on purpose\n");
		hps_worker_close(w);
		hps_finalize(ctx);
		return 3;
	}
	if (!rc)
		rc = hps_wait(w, hps_pull(w, keys, NKEYS, got, NULL));
	if (rc) {
		fprintf(stderr, "request failed: %s\n", hps_strerror(rc));
		return 1;
	}
	float want = (float)(ROUNDS * hps_num_workers(ctx));
	for (int i = 0; i < NKEYS; i++)
		if (got[i] != want) {
			fprintf(stderr, "key %d holds %g, expected %g\n", i, got[i], want);
			return 1;
		}
	printf("ok: %d keys hold %g after %d workers x %d pushes\n", NKEYS, want, hps_num_workers(ctx), ROUNDS);
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}
