/* Multi-host settings shared by the scheduler, the bridges and `hps
 * launch`: where the scheduler listens, where a bridge listens, heartbeat
 * and failure timeouts, and ZeroMQ socket setup.
 *
 *   HPS_ROOT_URI / DMLC_PS_ROOT_URI    scheduler host: name, IPv4 or IPv6
 *   HPS_ROOT_PORT / DMLC_PS_ROOT_PORT  scheduler port
 *   HPS_NODE_ADDR     address a bridge listens on (default: HPS_INTERFACE's
 *                     address, else DMLC_NODE_HOST resolved, else the
 *                     address of the interface that routes to the scheduler)
 *   HPS_INTERFACE / DMLC_INTERFACE     network interface to listen on
 *   HPS_PORTS         bridge port, or a range "first-last" (default 0: any)
 *   HPS_HEARTBEAT_MS  bridge heartbeat period (default 200)
 *   HPS_DEAD_MS       a host silent this long is dead (default 2000)
 *   HPS_REGISTER_MS   time for every host to register (default 30000) */
#ifndef HPSI_CLUSTER_H
#define HPSI_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

struct hpsi_cluster_cfg {
	char root_ep[160];  /* tcp://host:port of the scheduler */
	char root_addr[96]; /* its numeric address (for bind) */
	unsigned root_port;
	int root_ipv6;
	char node_addr[96]; /* numeric address this host's bridge binds */
	int node_ipv6;
	unsigned port_lo, port_hi;
	int64_t heartbeat_ms, dead_ms, register_ms;
};

/* Reads the settings; need_node: also the bridge's listening address.
 * A wrong one is a one-line error naming it (HPS_ECONFIG). */
int hpsi_cluster_load(struct hpsi_cluster_cfg *c, int need_node);

/* "tcp://addr:port", bracketing IPv6 addresses. */
void hpsi_tcp_endpoint(char *out, size_t cap, const char *addr, int ipv6, unsigned port);

/* Binds a ZeroMQ socket to the first free port of [lo, hi] on addr (lo = 0:
 * any port); writes the endpoint bound. HPS_ECONFIG naming HPS_PORTS when
 * every port is taken. */
int hpsi_zmq_bind_range(void *sock, const char *addr, int ipv6, unsigned lo, unsigned hi, char *ep, size_t cap);

/* LINGER (so closing never hangs), IPv6, no limit on queued messages
 * between bridges (flow control is the rings'), and the largest frame a
 * peer may announce (ZeroMQ would otherwise try to allocate whatever size
 * a stranger's bytes declare). */
void hpsi_zmq_setup(void *sock, int64_t linger_ms, int64_t max_msg);

#endif
