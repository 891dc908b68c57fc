#include "net/transport.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"

/* Host name or literal -> numeric address. */
static int resolve(const char *name, const char *setting, char *out, size_t cap, int *ipv6)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(name, NULL, &hints, &res);
	if (rc || !res) {
		hpsi_error("%s=%s: cannot resolve it (%s)", setting, name, gai_strerror(rc));
		return HPS_ECONFIG;
	}
	/* prefer IPv4 when a name has both */
	struct addrinfo *pick = res;
	for (struct addrinfo *a = res; a; a = a->ai_next)
		if (a->ai_family == AF_INET) {
			pick = a;
			break;
		}
	const void *addr = pick->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr
						       : (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
	*ipv6 = pick->ai_family == AF_INET6;
	inet_ntop(pick->ai_family, addr, out, (socklen_t)cap);
	freeaddrinfo(res);
	return 0;
}

static int interface_addr(const char *ifname, char *out, size_t cap, int *ipv6)
{
	struct ifaddrs *ifs, *best = NULL;
	if (getifaddrs(&ifs) != 0)
		return HPS_ESYS;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
		if (i->ifa_addr && strcmp(i->ifa_name, ifname) == 0 &&
		    (i->ifa_addr->sa_family == AF_INET || (i->ifa_addr->sa_family == AF_INET6 && !best)))
			best = i;
	if (!best) {
		freeifaddrs(ifs);
		hpsi_error("%s=%s: no such interface with an address (see `ip addr`)",
			   getenv("HPS_INTERFACE") && *getenv("HPS_INTERFACE") ? "HPS_INTERFACE" : "DMLC_INTERFACE", ifname);
		return HPS_ECONFIG;
	}
	*ipv6 = best->ifa_addr->sa_family == AF_INET6;
	const void *a = *ipv6 ? (const void *)&((struct sockaddr_in6 *)best->ifa_addr)->sin6_addr
			      : (const void *)&((struct sockaddr_in *)best->ifa_addr)->sin_addr;
	inet_ntop(best->ifa_addr->sa_family, a, out, (socklen_t)cap);
	freeifaddrs(ifs);
	return 0;
}

/* The address of this host's interface that routes to the scheduler: a
 * UDP socket connected there has the source address the kernel would use
 * (connect() on a datagram socket sends nothing). Unlike the host name,
 * which Debian maps to 127.0.1.1 and a container may not resolve at all,
 * this is an address the scheduler's host can reach back (ps-lite's
 * trick too). */
static int route_addr(const struct hpsi_cluster_cfg *c, char *out, size_t cap, int *ipv6)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} to = {0}, me = {0};
	socklen_t len;
	if (c->root_ipv6) {
		to.in6.sin6_family = AF_INET6;
		to.in6.sin6_port = htons((uint16_t)c->root_port);
		inet_pton(AF_INET6, c->root_addr, &to.in6.sin6_addr);
		len = sizeof to.in6;
	} else {
		to.in.sin_family = AF_INET;
		to.in.sin_port = htons((uint16_t)c->root_port);
		inet_pton(AF_INET, c->root_addr, &to.in.sin_addr);
		len = sizeof to.in;
	}
	int fd = socket(to.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t mlen = sizeof me;
	int err = fd < 0 || connect(fd, &to.sa, len) != 0 || getsockname(fd, &me.sa, &mlen) != 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	if (err) {
		hpsi_error("no route to the scheduler at %s (HPS_ROOT_URI): %s; say where this host listens with HPS_NODE_ADDR, HPS_INTERFACE or DMLC_NODE_HOST",
			   c->root_addr, strerror(err));
		return HPS_ECONFIG;
	}
	*ipv6 = me.sa.sa_family == AF_INET6;
	inet_ntop(me.sa.sa_family, *ipv6 ? (const void *)&me.in6.sin6_addr : (const void *)&me.in.sin_addr, out,
		  (socklen_t)cap);
	return 0;
}

void hpsi_tcp_endpoint(char *out, size_t cap, const char *addr, int ipv6, unsigned port)
{
	snprintf(out, cap, ipv6 ? "tcp://[%s]:%u" : "tcp://%s:%u", addr, port);
}

int hpsi_cluster_load(struct hpsi_cluster_cfg *c, int need_node)
{
	memset(c, 0, sizeof *c);
	uint64_t v;
	int rc;
	const char *uri = hpsi_setting("ROOT_URI");
	if (!uri) {
		hpsi_error("HPS_ROOT_URI (DMLC_PS_ROOT_URI) is not set: where does the scheduler run?");
		return HPS_ECONFIG;
	}
	if ((rc = resolve(uri, "HPS_ROOT_URI", c->root_addr, sizeof c->root_addr, &c->root_ipv6)))
		return rc;
	v = 0;
	if ((rc = hpsi_setting_u64("ROOT_PORT", 1, 65535, &v)))
		return rc;
	if (!v) {
		hpsi_error("HPS_ROOT_PORT (DMLC_PS_ROOT_PORT) is not set: the scheduler's port");
		return HPS_ECONFIG;
	}
	c->root_port = (unsigned)v;
	hpsi_tcp_endpoint(c->root_ep, sizeof c->root_ep, c->root_addr, c->root_ipv6, c->root_port);
	v = 200;
	if ((rc = hpsi_setting_u64("HEARTBEAT_MS", 10, 600000, &v)))
		return rc;
	c->heartbeat_ms = (int64_t)v;
	v = 2000;
	if ((rc = hpsi_setting_u64("DEAD_MS", 20, 3600000, &v)))
		return rc;
	c->dead_ms = (int64_t)v;
	if (c->dead_ms < 2 * c->heartbeat_ms) {
		hpsi_error("HPS_DEAD_MS=%lld must be at least twice HPS_HEARTBEAT_MS=%lld", (long long)c->dead_ms,
			   (long long)c->heartbeat_ms);
		return HPS_ECONFIG;
	}
	v = 30000;
	if ((rc = hpsi_setting_u64("REGISTER_MS", 100, 3600000, &v)))
		return rc;
	c->register_ms = (int64_t)v;
	const char *ports = hpsi_setting("PORTS");
	if (ports) {
		char *end;
		unsigned long lo = strtoul(ports, &end, 10), hi = lo;
		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		if (*end || ports[0] == '-' || lo > 65535 || hi > 65535 || hi < lo || (lo == 0 && hi != 0)) {
			hpsi_error("HPS_PORTS=%s: expected a port or a range first-last (1-65535), or 0 for any", ports);
			return HPS_ECONFIG;
		}
		c->port_lo = (unsigned)lo, c->port_hi = (unsigned)hi;
	}
	if (!need_node)
		return 0;
	/* Where this host's bridge listens: said outright, an interface's
	 * address, ps-lite's DMLC_NODE_HOST, else the address that routes to
	 * the scheduler. HPS_HOST is a name only: a tracker or launcher may
	 * make it up, so it need not resolve. */
	const char *addr = hpsi_setting("NODE_ADDR"), *ifname = hpsi_setting("INTERFACE"),
		   *node = getenv("DMLC_NODE_HOST");
	if (addr)
		return resolve(addr, "HPS_NODE_ADDR", c->node_addr, sizeof c->node_addr, &c->node_ipv6);
	if (ifname)
		return interface_addr(ifname, c->node_addr, sizeof c->node_addr, &c->node_ipv6);
	if (node && *node)
		return resolve(node, "DMLC_NODE_HOST", c->node_addr, sizeof c->node_addr, &c->node_ipv6);
	return route_addr(c, c->node_addr, sizeof c->node_addr, &c->node_ipv6);
}

void hpsi_zmq_setup(void *sock, int64_t linger_ms, int64_t max_msg)
{
	int linger = (int)linger_ms, one = 1, zero = 0;
	zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof one);
	zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
	zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
}

int hpsi_zmq_bind_range(void *sock, const char *addr, int ipv6, unsigned lo, unsigned hi, char *ep, size_t cap)
{
	if (lo == 0) {
		char want[160];
		snprintf(want, sizeof want, ipv6 ? "tcp://[%s]:*" : "tcp://%s:*", addr);
		if (zmq_bind(sock, want) != 0) {
			hpsi_error("cannot listen on %s: %s (HPS_NODE_ADDR / HPS_INTERFACE)", want, zmq_strerror(zmq_errno()));
			return HPS_ECONFIG;
		}
		size_t n = cap;
		zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &n);
		return 0;
	}
	for (unsigned p = lo; p <= hi; p++) {
		hpsi_tcp_endpoint(ep, cap, addr, ipv6, p);
		if (zmq_bind(sock, ep) == 0)
			return 0;
		if (zmq_errno() != EADDRINUSE) {
			hpsi_error("cannot listen on %s: %s (HPS_NODE_ADDR / HPS_INTERFACE)", ep, zmq_strerror(zmq_errno()));
			return HPS_ECONFIG;
		}
	}
	hpsi_error("every port of HPS_PORTS=%u-%u on %s is in use", lo, hi, addr);
	return HPS_ECONFIG;
}
