/* The hps command: launch a job, clean dead segments, run a server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hps/hps.h"
#include "runtime/server/checkpoint.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"
#include "runtime/cluster/launch.h"
#include "runtime/cli/server_cmd.h"

static void usage(FILE *f)
{
	fprintf(f, "hps " HPS_VERSION_STRING "\n"
		   "usage: hps COMMAND [options]\n\n"
		   "commands:\n"
		   "  launch   start a job on this host (hps launch --help)\n"
		   "  clean    remove shared-memory segments of dead jobs (hps clean --help)\n"
		   "  server   run one built-in summing server of a job (started by launch)\n"
		   "  top      a live view of a running job (hps top --help)\n"
		   "  metrics  its counters for Prometheus (hps metrics --help)\n"
		   "  scale    grow a running job's workers, grow or shrink its servers (hps scale --help)\n"
		   "  checkpoint  save (or --load) the tables of a running job (hps checkpoint --help)\n"
		   "  scheduler   the scheduler of a multi-host job (started by launch --hosts)\n"
		   "  bridge      this host's bridge in a multi-host job (started by launch)\n"
		   "  keygen DIR  the CURVE keys of a job across hosts (HPS_CURVE=DIR; hps keygen --help)\n"
		   "  help     this text\n"
		   "  version  the version of hps (also --version)\n");
}

static int cmd_checkpoint(int argc, char **argv)
{
	int load = 0;
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: hps checkpoint [--load] [--job ID] [--host NAME] DIR\n\n"
			       "Saves every server's table of the running job (HPS_JOB_ID on this host) into DIR,\n"
			       "or with --load replaces the tables with the checkpoint in DIR. Without --job, the\n"
			       "one job running on this host (it is an error when none or several run).\n"
			       "A job across hosts is saved or loaded on every host (coordinated by its\n"
			       "scheduler): DIR must be on a file system every host sees.\n");
			return 0;
		} else if (strcmp(argv[i], "--load") == 0) {
			load = 1;
		} else if ((strcmp(argv[i], "--job") == 0 || strcmp(argv[i], "--host") == 0) && i + 1 < argc) {
			setenv(strcmp(argv[i], "--job") == 0 ? "HPS_JOB_ID" : "HPS_HOST", argv[i + 1], 1);
			i++;
		} else if (argv[i][0] != '-' && !dir) {
			dir = argv[i];
		} else {
			fprintf(stderr, "hps checkpoint: unexpected '%s' (see hps checkpoint --help)\n", argv[i]);
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "hps checkpoint: no directory given\n");
		return 2;
	}
	struct hpsi_config cfg;
	struct hpsi_seg seg;
	if (hpsi_pick_job("hps checkpoint") || hpsi_config_load(&cfg, 0) || hpsi_seg_attach(cfg.job, cfg.host, &seg))
		return 1;
	char why[HPSI_CKPT_WHY];
	int rc = hpsi_checkpoint_run(&seg, load ? HPSI_CKPT_LOAD : HPSI_CKPT_SAVE, dir,
				     seg.hdr->timeout_ms * 1000000, why);
	hpsi_seg_detach(&seg);
	if (rc < 0) {
		/* the reason, also when a server found it (its log has it too) */
		fprintf(stderr, "hps checkpoint: %s failed: %s\n", load ? "load" : "save", why[0] ? why : hps_strerror(rc));
		return 1;
	}
	printf(load ? "loaded %s (saved at clock %d)\n" : "saved %s\n", dir, rc);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	/* the prefix of this process's log lines (hps server: hps_init says it) */
	static const char *const roles[][2] = {{"launch", "launcher"}, {"clean", "clean"}, {"checkpoint", "checkpoint"}, {"scale", "scale"}};
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (strcmp(cmd, roles[i][0]) == 0)
			hpsi_log_identity(roles[i][1], -1, NULL);
	if (strcmp(cmd, "launch") == 0)
		return hpsi_cmd_launch(argc - 1, argv + 1);
	if (strcmp(cmd, "clean") == 0)
		return hpsi_cmd_clean(argc - 1, argv + 1);
	if (strcmp(cmd, "server") == 0)
		return hpsi_cmd_server(argc - 1, argv + 1);
	if (strcmp(cmd, "checkpoint") == 0)
		return cmd_checkpoint(argc - 1, argv + 1);
	if (strcmp(cmd, "scale") == 0)
		return hpsi_cmd_scale(argc - 1, argv + 1);
	if (strcmp(cmd, "top") == 0)
		return hpsi_cmd_top(argc - 1, argv + 1);
	if (strcmp(cmd, "metrics") == 0)
		return hpsi_cmd_metrics(argc - 1, argv + 1);
	if (strcmp(cmd, "scheduler") == 0)
		return hpsi_cmd_scheduler(argc - 1, argv + 1);
	if (strcmp(cmd, "bridge") == 0)
		return hpsi_cmd_bridge(argc - 1, argv + 1);
	if (strcmp(cmd, "keygen") == 0)
		return hpsi_cmd_keygen(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("hps %s\n", HPS_VERSION_STRING);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "hps: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
