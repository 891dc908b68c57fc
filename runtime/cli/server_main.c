/* lib/hps/hps-server: what `hps launch` starts for each built-in server.
 * It links libhps only (jemalloc, libnuma), not ZeroMQ and the libraries
 * ZeroMQ loads, which bin/hps needs for bridges and schedulers: loading
 * those took each server about 8 ms of CPU, 0.5 s for a job of 64
 * servers. Started as "hps server", it runs `hps server`. */
#include <string.h>

#include "runtime/cli/server_cmd.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "server") == 0)
		return hpsi_cmd_server(argc - 1, argv + 1);
	return hpsi_cmd_server(argc, argv);
}
