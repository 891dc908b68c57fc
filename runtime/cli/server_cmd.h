/* The server command, shared by bin/hps and lib/hps/hps-server. */
#ifndef HPSI_SERVER_CMD_H
#define HPSI_SERVER_CMD_H

/* argv[0] is "server"; --help prints the usage. Returns the exit status. */
int hpsi_cmd_server(int argc, char **argv);

#endif
