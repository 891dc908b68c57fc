/* `hps server`: one built-in summing server of a job. bin/hps runs it as
 * a command; `hps launch` starts lib/hps/hps-server (server_main.c), the
 * same function in a program that loads only what libhps needs. */
#include "runtime/cli/server_cmd.h"

#include <stdio.h>
#include <string.h>

#include "hps/hps.h"
#include "runtime/client/ctx.h"

int hpsi_cmd_server(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: hps server\n\n"
			       "Runs one server of the job named by the environment (HPS_JOB_ID, HPS_RANK,\n"
			       "HPS_ROLE=server, ...) with the built-in summing store, until every worker has\n"
			       "closed. `hps launch` starts these; run it by hand only with a tracker.\n");
			return 0;
		}
	hps_ctx *ctx;
	int rc = hps_init(&ctx, &argc, argv);
	if (rc) {
		fprintf(stderr, "hps server: %s\n", hps_strerror(rc));
		return 1;
	}
	rc = hps_server_run(ctx, NULL, NULL);
	hpsi_finalize_exiting(ctx); /* the process ends: no munmap */
	if (rc)
		fprintf(stderr, "hps server: %s\n", hps_strerror(rc));
	return rc ? 1 : 0;
}
