/* ZeroMQ CURVE on every TCP socket of a multi-host job (HPS_CURVE=DIR).
 *
 * DIR holds what `hps keygen DIR` wrote (README, Security across hosts):
 *   hps.key          the job's secret key, Z85 (40 characters), mode 0600
 *   hps.pub          its public key, Z85 (to give to whoever must be admitted)
 *   authorized_keys  the public keys a listening socket admits, one Z85 key
 *                    a line (# comments and text after the key allowed)
 *
 * Every listening socket (the scheduler's, each bridge's) is a CURVE
 * server with the job's key pair; every connecting socket (a bridge's to
 * the scheduler and to the other bridges) is a CURVE client with the
 * job's key pair and the job's public key as the server's. A listening
 * socket's ZAP handler (RFC 27, a thread of this process bound to
 * inproc://zeromq.zap.01 before any socket listens) admits only a client
 * whose public key is in authorized_keys. Peers that fail the handshake
 * (no CURVE, a key not admitted, bytes that are not ZeroMQ) are seen by a
 * socket monitor: counted and logged (rate-limited), never delivered. */
#ifndef HPSI_CURVE_H
#define HPSI_CURVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HPSI_CURVE_MAX_KEYS 256
#define HPSI_CURVE_MAX_SOCKETS 70 /* listeners and connections of one process */

struct hpsi_curve {
	int on;                 /* HPS_CURVE is set */
	char who[96];           /* names this process in its log lines */
	char dir[1024];
	char pub[41], sec[41];  /* the job's pair, Z85 */
	unsigned char allowed[HPSI_CURVE_MAX_KEYS][32];
	size_t nallowed;
	/* the ZAP and monitor thread */
	void *zctx, *zap;
	void *monitors[HPSI_CURVE_MAX_SOCKETS];
	int listens[HPSI_CURVE_MAX_SOCKETS]; /* the monitored socket listens (else it connects) */
	unsigned nmonitors;
	pthread_mutex_t lock; /* monitors and nmonitors, between the caller and the thread */
	pthread_t thread;
	int running;
	_Atomic int stop;
	_Atomic uint64_t refused; /* peers whose handshake failed at a listening socket */
	_Atomic uint64_t failed;  /* handshakes of our connecting sockets that failed */
	_Atomic uint64_t bad_zap; /* malformed ZAP requests */
};

/* Reads HPS_CURVE: off (0) when unset; else the keys of DIR, checked (a
 * ZeroMQ without CURVE, a missing or unreadable file, a secret key others
 * may read, a key that is not Z85, the job's own key missing from
 * authorized_keys) with a one-line error naming HPS_CURVE (HPS_ECONFIG). */
int hpsi_curve_load(struct hpsi_curve *c);

/* Starts the ZAP handler of context zctx (binds it before returning, so
 * no socket made afterwards can listen without it). No-op when off. */
int hpsi_curve_start(struct hpsi_curve *c, void *zctx);

/* Makes sock a CURVE server (listening sockets) or client (connecting
 * ones), watched for failed handshakes; call before bind or connect.
 * No-op when off. */
int hpsi_curve_server(struct hpsi_curve *c, void *sock);
int hpsi_curve_client(struct hpsi_curve *c, void *sock);

/* Peers refused so far (failed handshakes). */
uint64_t hpsi_curve_refused(struct hpsi_curve *c);

/* Stops the thread and closes its sockets: before zmq_ctx_term. */
void hpsi_curve_stop(struct hpsi_curve *c);

/* Checks one ZAP request (its frames, as received) and says whether to
 * admit it: 200, 400 (a key not admitted) or -1 (malformed: *why). The
 * request id is copied to rid (at most 255 bytes). Exposed for the tests. */
struct hpsi_zap_frame {
	const void *data;
	size_t size;
};
int hpsi_zap_decide(const struct hpsi_curve *c, const struct hpsi_zap_frame *f, size_t nframes, const char **why);

#endif
