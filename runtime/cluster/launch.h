/* The `hps` command's subcommands. */
#ifndef HPSI_LAUNCH_H
#define HPSI_LAUNCH_H

#include <signal.h>
#include "runtime/common/limits.h"

int hpsi_cmd_launch(int argc, char **argv);
int hpsi_cmd_clean(int argc, char **argv);
int hpsi_cmd_scheduler(int argc, char **argv);
int hpsi_cmd_bridge(int argc, char **argv);
int hpsi_cmd_metrics(int argc, char **argv); /* metrics.c */
int hpsi_cmd_top(int argc, char **argv);     /* top.c */
int hpsi_cmd_scale(int argc, char **argv);   /* scale.c */
int hpsi_cmd_keygen(int argc, char **argv);
/* `hps launch --hosts FILE`: the scheduler here, and `hps launch` on every
 * host of FILE through HPS_RSH. prog: index of the program in argv. */
int hpsi_launch_hosts(const char *file, int argc, char **argv, int prog);
/* Checks every setting of a job with the parsers its processes use, before
 * anything starts; logs what is wrong (naming the setting) and returns
 * HPS_ECONFIG. self_serve: the program serves (no built-in updater);
 * need_node: this host's bridge address must resolve (not the --hosts root). */
struct hpsi_config;
int hpsi_launch_check_settings(struct hpsi_config *cfg, int self_serve, int need_node);
/* Removes segments of this host whose processes are all dead; returns the
 * number removed, or a negative error. dry_run only lists them. */
int hpsi_clean_segments(int dry_run, int verbose);

/* A multi-host launch joins its machine's host group (lobby.h). Returns -1
 * to go on as the group's leader (HPS_HOST, HPS_LOCAL_SERVERS and
 * HPS_LOCAL_WORKERS then say the group's), else the status to exit with (a
 * member: the leader's). tracker: started by dmlc-core's tracker. */
struct hpsi_lobby;
int hpsi_launch_group(int tracker, volatile const sig_atomic_t *stop, struct hpsi_lobby *l);

/* A running job's host group on this host (a live segment). */
struct hpsi_job_ref {
	char job[HPSI_NAME_MAX], host[HPSI_NAME_MAX];
};
/* The live segments of this host whose job and host match (NULL: any);
 * fills up to cap and returns how many match, or a negative error. */
int hpsi_find_jobs(const char *job, const char *host, struct hpsi_job_ref *out, int cap);
/* For a command that acts on a running job (cmd names it in messages):
 * unless HPS_JOB_ID and HPS_HOST are both set, finds the one running job
 * that fits what is set and sets both. None, or several (listed), is an
 * error with a line on stderr. */
int hpsi_pick_job(const char *cmd);

#endif
