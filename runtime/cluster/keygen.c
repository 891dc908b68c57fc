/* `hps keygen DIR`: the key pair of a job that runs with HPS_CURVE=DIR
 * (net/curve.h has the files; the README says how to copy them to each
 * host). The secret key is written 0600 into a directory made 0700, like
 * ssh-keygen's; an existing key is kept unless --force, so that a second
 * run cannot silently lock out the hosts that hold the first. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/cluster/launch.h"

/* Writes text to DIR/name with mode; 0, or -1 after a line naming it. */
static int write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path); /* a new file: O_EXCL below, so the mode is ours */
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) != 0 || close(fd) != 0) {
		fprintf(stderr, "hps keygen: cannot write %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}

int hpsi_cmd_keygen(int argc, char **argv)
{
	const char *dir = NULL;
	int force = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf("usage: hps keygen DIR [--force]\n\n"
			       "Writes the CURVE key pair of a job and the public keys it admits:\n"
			       "  DIR/hps.key           the secret key (Z85, mode 0600)\n"
			       "  DIR/hps.pub           the public key (Z85)\n"
			       "  DIR/authorized_keys   public keys admitted, one a line (hps.pub's at first)\n"
			       "Copy DIR to every host of the job (same path, mode 0700) and run the job\n"
			       "with HPS_CURVE=DIR (or hps launch --curve DIR): every TCP link is then\n"
			       "encrypted and admits only these keys. An existing key is kept unless --force.\n");
			return 0;
		}
		if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr, "hps keygen: unexpected '%s' (hps keygen --help)\n", argv[i]);
			return 2;
		}
	}
	if (!dir) {
		fprintf(stderr, "hps keygen: which directory? usage: hps keygen DIR [--force]\n");
		return 2;
	}
	if (strlen(dir) > 4000) {
		fprintf(stderr, "hps keygen: %s: path too long\n", dir);
		return 2;
	}
	if (!zmq_has("curve")) {
		fprintf(stderr, "hps keygen: this ZeroMQ library was built without CURVE (libsodium)\n");
		return 1;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "hps keygen: cannot make %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char key[4200];
	snprintf(key, sizeof key, "%s/hps.key", dir);
	if (!force && access(key, F_OK) == 0) {
		fprintf(stderr, "hps keygen: %s exists: keep it, or replace it (and every host's copy) with --force\n", key);
		return 1;
	}
	char pub[41], sec[41], text[200];
	if (zmq_curve_keypair(pub, sec) != 0) {
		fprintf(stderr, "hps keygen: cannot make a key pair: %s\n", zmq_strerror(zmq_errno()));
		return 1;
	}
	snprintf(text, sizeof text, "%s\n", sec);
	if (write_file(dir, "hps.key", text, 0600))
		return 1;
	snprintf(text, sizeof text, "%s\n", pub);
	if (write_file(dir, "hps.pub", text, 0644))
		return 1;
	snprintf(text, sizeof text,
		 "# public keys a job with HPS_CURVE admits, one Z85 key a line (text after it is a comment)\n"
		 "%s hps.pub\n", pub);
	if (write_file(dir, "authorized_keys", text, 0644))
		return 1;
	printf("wrote %s/hps.key (secret, 0600), %s/hps.pub and %s/authorized_keys\n"
	       "public key: %s\n"
	       "copy %s to every host of the job, then: hps launch --curve %s ...\n",
	       dir, dir, dir, pub, dir, dir);
	return 0;
}
