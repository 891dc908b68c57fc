/* The `hps` command's subcommands. */
#ifndef HPSI_LAUNCH_H
#define HPSI_LAUNCH_H

int hpsi_cmd_launch(int argc, char **argv);
int hpsi_cmd_clean(int argc, char **argv);
/* Removes segments of this host whose processes are all dead; returns the
 * number removed, or a negative error. dry_run only lists them. */
int hpsi_clean_segments(int dry_run, int verbose);

#endif
