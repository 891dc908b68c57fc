/* The `hps` command's subcommands. */
#ifndef HPSI_LAUNCH_H
#define HPSI_LAUNCH_H

int hpsi_cmd_launch(int argc, char **argv);
int hpsi_cmd_clean(int argc, char **argv);
int hpsi_cmd_scheduler(int argc, char **argv);
int hpsi_cmd_bridge(int argc, char **argv);
/* `hps launch --hosts FILE`: the scheduler here, and `hps launch` on every
 * host of FILE through HPS_RSH. prog: index of the program in argv. */
int hpsi_launch_hosts(const char *file, int argc, char **argv, int prog);
/* Removes segments of this host whose processes are all dead; returns the
 * number removed, or a negative error. dry_run only lists them. */
int hpsi_clean_segments(int dry_run, int verbose);

#endif
