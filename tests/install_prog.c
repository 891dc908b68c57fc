/* The program tests/check_install.sh builds outside the tree against an
 * installed hps, with only what pkg-config prints: a worker pushes values
 * to three keys and pulls them back; a server runs the built-in store.
 * Prints "round trip: ..." with the pulled values, exact in binary. */
#include <hps/hps.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	hps_ctx *ctx;
	int rc = hps_init(&ctx, &argc, argv);
	if (rc) {
		fprintf(stderr, "hps_init: %s\n", hps_strerror(rc));
		return 1;
	}
	if (hps_role(ctx) == HPS_ROLE_SERVER) {
		rc = hps_server_run(ctx, NULL, NULL);
		hps_finalize(ctx);
		return rc ? 1 : 0;
	}
	hps_worker *w;
	if ((rc = hps_worker_open(ctx, 2, &w))) {
		fprintf(stderr, "hps_worker_open: %s\n", hps_strerror(rc));
		return 1;
	}
	uint64_t keys[] = {3, 70, 1000000007};
	float push[] = {1.5f, -2.25f, 0.125f, 1e6f, 3.0f, -0.5f}, pull[6];
	memset(pull, 0, sizeof pull);
	/* Twice: the store sums, so each value comes back doubled. */
	for (int i = 0; i < 2 && !rc; i++)
		rc = hps_wait(w, hps_push(w, keys, 3, push, NULL));
	if (!rc)
		rc = hps_wait(w, hps_pull(w, keys, 3, pull, NULL));
	if (rc) {
		fprintf(stderr, "push/pull: %s\n", hps_strerror(rc));
		return 1;
	}
	printf("round trip:");
	for (int i = 0; i < 6; i++)
		printf(" %a", (double)pull[i]);
	printf("\n");
	hps_worker_close(w);
	hps_finalize(ctx);
	return 0;
}
