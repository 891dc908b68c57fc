/* CURVE keys, the ZAP handler and the refusal count (net/curve.h). */
#include "net/curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hps/error.h"
#include "runtime/common/config.h"
#include "runtime/common/log.h"

#define ZAP_DOMAIN "hps"

/* Reads the first line of DIR/name into out (at most cap-1 bytes, the
 * newline dropped); -1 after a line naming the file. */
static int read_line(const struct hpsi_curve *c, const char *name, char *out, size_t cap)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/%s", c->dir, name);
	FILE *f = fopen(path, "r");
	if (!f) {
		hpsi_error("HPS_CURVE=%s: cannot read %s: %s (write the keys with `hps keygen %s`)", c->dir, path,
			   strerror(errno), c->dir);
		return -1;
	}
	if (!fgets(out, (int)cap, f))
		out[0] = 0;
	fclose(f);
	out[strcspn(out, "\r\n")] = 0;
	return 0;
}

/* A Z85 key of 40 characters into 32 bytes; 0 when it is one. */
static int decode_key(const char *z85, unsigned char key[32])
{
	if (strlen(z85) != 40)
		return -1;
	return zmq_z85_decode(key, z85) ? 0 : -1;
}

static int load_allowed(struct hpsi_curve *c)
{
	char path[1100];
	snprintf(path, sizeof path, "%s/authorized_keys", c->dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		hpsi_error("HPS_CURVE=%s: cannot read %s: %s (write it with `hps keygen %s`)", c->dir, path, strerror(errno),
			   c->dir);
		return -1;
	}
	char line[512];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char key[64];
		/* '#' is a Z85 digit too: a comment is a '#' word that is no key */
		if (sscanf(line, "%63s", key) != 1 || (key[0] == '#' && strlen(key) != 40))
			continue;
		if (c->nallowed == HPSI_CURVE_MAX_KEYS) {
			hpsi_error("HPS_CURVE=%s: %s:%d: more than %d keys", c->dir, path, lineno, HPSI_CURVE_MAX_KEYS);
			rc = -1;
		} else if (decode_key(key, c->allowed[c->nallowed])) {
			hpsi_error("HPS_CURVE=%s: %s:%d: not a Z85 public key of 40 characters", c->dir, path, lineno);
			rc = -1;
		} else {
			c->nallowed++;
		}
	}
	fclose(f);
	return rc;
}

int hpsi_curve_load(struct hpsi_curve *c)
{
	memset(c, 0, sizeof *c);
	pthread_mutex_init(&c->lock, NULL);
	const char *dir = hpsi_setting("CURVE");
	if (!dir)
		return 0;
	if (!*dir || strlen(dir) >= sizeof c->dir) {
		hpsi_error("HPS_CURVE='%s': expected the directory `hps keygen` wrote", dir);
		return HPS_ECONFIG;
	}
	snprintf(c->dir, sizeof c->dir, "%s", dir);
	if (!zmq_has("curve")) {
		hpsi_error("HPS_CURVE=%s: this ZeroMQ library was built without CURVE (libsodium); install Debian's libzmq5",
			   dir);
		return HPS_ECONFIG;
	}
	/* like ssh with a private key: refuse one that others may read */
	char path[1100];
	struct stat st;
	snprintf(path, sizeof path, "%s/hps.key", dir);
	if (stat(path, &st) == 0 && (st.st_mode & 077)) {
		hpsi_error("HPS_CURVE=%s: %s may be read by others (mode %04o): chmod 600 it", dir, path,
			   (unsigned)(st.st_mode & 07777));
		return HPS_ECONFIG;
	}
	unsigned char sec[32], pub[32];
	char line[128];
	if (read_line(c, "hps.key", line, sizeof line))
		return HPS_ECONFIG;
	if (decode_key(line, sec)) {
		hpsi_error("HPS_CURVE=%s: %s is not a Z85 secret key of 40 characters", dir, path);
		return HPS_ECONFIG;
	}
	memcpy(c->sec, line, 41);
	zmq_curve_public(c->pub, c->sec);
	if (load_allowed(c))
		return HPS_ECONFIG;
	decode_key(c->pub, pub);
	size_t i = 0;
	while (i < c->nallowed && memcmp(c->allowed[i], pub, 32))
		i++;
	if (i == c->nallowed) {
		hpsi_error("HPS_CURVE=%s: the job's own public key (%s) is not in %s/authorized_keys: no host could join",
			   dir, c->pub, dir);
		return HPS_ECONFIG;
	}
	c->on = 1;
	return 0;
}

int hpsi_zap_decide(const struct hpsi_curve *c, const struct hpsi_zap_frame *f, size_t n, const char **why)
{
	/* RFC 27: version, request id, domain, address, identity, mechanism,
	 * then the mechanism's credentials: CURVE has one, the 32-byte key */
	if (n != 7) {
		*why = "a ZAP request of the wrong number of frames";
		return -1;
	}
	if (f[0].size != 3 || memcmp(f[0].data, "1.0", 3)) {
		*why = "a ZAP request of another version";
		return -1;
	}
	if (f[1].size > 255) {
		*why = "a ZAP request id longer than 255 bytes";
		return -1;
	}
	if (f[2].size != strlen(ZAP_DOMAIN) || memcmp(f[2].data, ZAP_DOMAIN, f[2].size)) {
		*why = "a ZAP request for another domain";
		return -1;
	}
	if (f[3].size > 255 || f[4].size > 255) {
		*why = "a ZAP request with an address or identity longer than 255 bytes";
		return -1;
	}
	if (f[5].size != 5 || memcmp(f[5].data, "CURVE", 5)) {
		*why = "a ZAP request for a mechanism other than CURVE";
		return -1;
	}
	if (f[6].size != 32) {
		*why = "a CURVE credential that is not a 32-byte key";
		return -1;
	}
	for (size_t i = 0; i < c->nallowed; i++)
		if (memcmp(c->allowed[i], f[6].data, 32) == 0)
			return 200;
	*why = "its public key is not in authorized_keys";
	return 400;
}

/* a line for the first few, then every 1000th: a flood cannot flood the log */
static int worth_a_line(uint64_t n)
{
	return n <= 10 || n % 1000 == 0;
}

static void zap_reply(void *sock, const zmq_msg_t *rid, int status, const char *text)
{
	const char *code = status == 200 ? "200" : status == 400 ? "400" : "500";
	zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
	zmq_send(sock, rid ? zmq_msg_data((zmq_msg_t *)rid) : "", rid ? zmq_msg_size((zmq_msg_t *)rid) : 0, ZMQ_SNDMORE);
	zmq_send(sock, code, 3, ZMQ_SNDMORE);
	zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
	zmq_send(sock, "", 0, ZMQ_SNDMORE); /* user id */
	zmq_send(sock, "", 0, 0);           /* metadata */
}

/* One request: every frame received (at most 8 kept), checked, answered.
 * A REP socket must answer each request, malformed or not, to take the
 * next one: a malformed one is refused (500, or 400 for a key). */
static void serve_zap(struct hpsi_curve *c)
{
	enum { MAXF = 8 };
	zmq_msg_t m[MAXF];
	size_t n = 0;
	int more = 1, lost = 0;
	while (more) {
		zmq_msg_t part;
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, c->zap, 0) < 0) {
			zmq_msg_close(&part);
			break;
		}
		more = zmq_msg_more(&part);
		if (n < MAXF)
			m[n++] = part;
		else {
			zmq_msg_close(&part);
			lost = 1;
		}
	}
	struct hpsi_zap_frame f[MAXF];
	for (size_t i = 0; i < n; i++)
		f[i] = (struct hpsi_zap_frame){zmq_msg_data(&m[i]), zmq_msg_size(&m[i])};
	const char *why = "";
	int status = lost ? -1 : hpsi_zap_decide(c, f, n, &why);
	if (lost)
		why = "a ZAP request of the wrong number of frames";
	if (status < 0) {
		uint64_t k = atomic_fetch_add_explicit(&c->bad_zap, 1, memory_order_relaxed) + 1;
		if (worth_a_line(k))
			hpsi_error("%s: refused a malformed ZAP request (%s); %llu so far", c->who, why, (unsigned long long)k);
	} else if (status != 200) {
		char addr[256] = "?", key[41] = "?";
		if (f[3].size < sizeof addr)
			memcpy(addr, f[3].data, f[3].size), addr[f[3].size] = 0;
		zmq_z85_encode(key, f[6].data, 32);
		uint64_t k = atomic_load_explicit(&c->refused, memory_order_relaxed) + 1;
		if (worth_a_line(k))
			hpsi_error("%s: refused a peer at %s with key %s: %s", c->who, addr, key, why);
	}
	zap_reply(c->zap, n > 1 ? &m[1] : NULL, status < 0 ? 500 : status,
		  status == 200 ? "OK" : status == 400 ? "key not admitted" : "malformed request");
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&m[i]);
}

/* One monitor event: a failed handshake at a listening socket is a
 * refused peer; at a connecting one, a peer that is not of this job (or
 * does not admit our key). */
static void serve_monitor(struct hpsi_curve *c, void *mon, int listens)
{
	zmq_msg_t ev, ep;
	zmq_msg_init(&ev);
	zmq_msg_init(&ep);
	if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&ev);
		zmq_msg_close(&ep);
		return;
	}
	int two = zmq_msg_more(&ev) && zmq_msg_recv(&ep, mon, 0) >= 0;
	uint16_t event = 0;
	if (zmq_msg_size(&ev) >= 2)
		memcpy(&event, zmq_msg_data(&ev), 2);
	if (event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
		uint64_t k = atomic_fetch_add_explicit(listens ? &c->refused : &c->failed, 1, memory_order_relaxed) + 1;
		char where[256] = "";
		if (two && zmq_msg_size(&ep) < sizeof where)
			memcpy(where, zmq_msg_data(&ep), zmq_msg_size(&ep)), where[zmq_msg_size(&ep)] = 0;
		if (worth_a_line(k) && listens)
			hpsi_error("%s: refused a peer on %s: %s; %llu refused so far", c->who, where,
				   event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "key not admitted"
									    : "no CURVE handshake (no key, or not ZeroMQ)",
				   (unsigned long long)k);
		else if (worth_a_line(k))
			hpsi_error("%s: the CURVE handshake with %s failed (%llu so far): it does not hold the job's key "
				   "(HPS_CURVE=%s), or does not admit ours",
				   c->who, where, (unsigned long long)k, c->dir);
	}
	zmq_msg_close(&ev);
	zmq_msg_close(&ep);
}

static void *curve_thread(void *arg)
{
	struct hpsi_curve *c = arg;
	while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
		zmq_pollitem_t it[1 + HPSI_CURVE_MAX_SOCKETS] = {{.socket = c->zap, .events = ZMQ_POLLIN}};
		int listens[HPSI_CURVE_MAX_SOCKETS];
		pthread_mutex_lock(&c->lock); /* the monitors handed over so far */
		unsigned n = c->nmonitors;
		for (unsigned i = 0; i < n; i++) {
			it[1 + i] = (zmq_pollitem_t){.socket = c->monitors[i], .events = ZMQ_POLLIN};
			listens[i] = c->listens[i];
		}
		pthread_mutex_unlock(&c->lock);
		if (zmq_poll(it, (int)n + 1, 50) <= 0)
			continue;
		if (it[0].revents & ZMQ_POLLIN)
			serve_zap(c);
		for (unsigned i = 0; i < n; i++)
			if (it[1 + i].revents & ZMQ_POLLIN)
				serve_monitor(c, it[1 + i].socket, listens[i]);
	}
	return NULL;
}

int hpsi_curve_start(struct hpsi_curve *c, void *zctx)
{
	if (!c->on)
		return 0;
	c->zctx = zctx;
	c->zap = zmq_socket(zctx, ZMQ_REP);
	int linger = 0;
	zmq_setsockopt(c->zap, ZMQ_LINGER, &linger, sizeof linger);
	if (!c->zap || zmq_bind(c->zap, "inproc://zeromq.zap.01") != 0) {
		hpsi_error("HPS_CURVE=%s: cannot start the ZAP handler: %s", c->dir, zmq_strerror(zmq_errno()));
		return HPS_ESYS;
	}
	if (pthread_create(&c->thread, NULL, curve_thread, c) != 0) {
		hpsi_error("HPS_CURVE=%s: cannot start the ZAP thread", c->dir);
		return HPS_ESYS;
	}
	c->running = 1;
	return 0;
}

/* Watches sock's handshakes from the thread. */
static int watch(struct hpsi_curve *c, void *sock, int listens)
{
	char ep[64];
	snprintf(ep, sizeof ep, "inproc://hps-curve-monitor-%u", c->nmonitors);
	if (c->nmonitors == HPSI_CURVE_MAX_SOCKETS ||
	    zmq_socket_monitor(sock, ep,
			       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
				       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
		return HPS_ESYS;
	void *mon = zmq_socket(c->zctx, ZMQ_PAIR);
	int linger = 0;
	zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
	if (!mon || zmq_connect(mon, ep) != 0)
		return HPS_ESYS;
	/* the mutex is the full fence ZeroMQ asks for when a socket moves to
	 * another thread */
	pthread_mutex_lock(&c->lock);
	c->listens[c->nmonitors] = listens;
	c->monitors[c->nmonitors++] = mon;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int set_keys(struct hpsi_curve *c, void *sock, int server)
{
	int one = 1;
	if (server) {
		if (zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) ||
		    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
		    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, 40))
			return -1;
	} else if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, c->pub, 40) ||
		   zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, c->pub, 40) ||
		   zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->sec, 40)) {
		return -1;
	}
	return 0;
}

static int secure(struct hpsi_curve *c, void *sock, int server)
{
	if (!c->on)
		return 0;
	if (set_keys(c, sock, server) || watch(c, sock, server)) {
		hpsi_error("HPS_CURVE=%s: cannot set up CURVE on a socket: %s", c->dir, zmq_strerror(zmq_errno()));
		return HPS_ESYS;
	}
	return 0;
}

int hpsi_curve_server(struct hpsi_curve *c, void *sock)
{
	return secure(c, sock, 1);
}

int hpsi_curve_client(struct hpsi_curve *c, void *sock)
{
	return secure(c, sock, 0);
}

uint64_t hpsi_curve_refused(struct hpsi_curve *c)
{
	return atomic_load_explicit(&c->refused, memory_order_relaxed);
}

void hpsi_curve_stop(struct hpsi_curve *c)
{
	if (c->running) {
		atomic_store_explicit(&c->stop, 1, memory_order_relaxed); /* seen within one poll */
		pthread_join(c->thread, NULL);
		c->running = 0;
	}
	for (unsigned i = 0; i < c->nmonitors; i++)
		zmq_close(c->monitors[i]);
	c->nmonitors = 0;
	if (c->zap)
		zmq_close(c->zap);
	c->zap = NULL;
}
