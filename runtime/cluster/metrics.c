/* `hps metrics`: every counter of a running job on this host in the
 * Prometheus text exposition format (version 0.0.4), to stdout, to a file
 * for node_exporter's textfile collector, or over HTTP (libmicrohttpd). */
#include <errno.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/cluster/hosts_stats.h"
#include "runtime/cluster/jobstats.h"
#include "runtime/cluster/launch.h"
#include "runtime/common/config.h"

static void labels(FILE *f, const struct hpsi_job_stats *st, const struct hpsi_proc_row *r)
{
	fprintf(f, "job=\"%s\",host=\"%s\",role=\"%s\",rank=\"%u\"", st->job, st->host, hpsi_role_name(r->role),
		r->rank);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP hps_%s %s\n# TYPE hps_%s %s\n", name, help, name, type);
}

/* One family with a value per process of the roles in `mask`. */
#define HPSI_EACH_ROW(st, mask, r) \
	for (const struct hpsi_proc_row *r = (st)->rows; r < (st)->rows + (st)->nrows; r++) \
		if (r->role & (mask))

static void write_node_stats(FILE *f, const struct hpsi_job_stats *st)
{
#define HPSI_STAT_OUT(fld, name, type, mask, help)                                   \
	family(f, name, type, help);                                                \
	HPSI_EACH_ROW(st, mask, r) {                                                \
		fprintf(f, "hps_" name "{");                                        \
		labels(f, st, r);                                                   \
		fprintf(f, "} %llu\n", (unsigned long long)r->s.fld);               \
	}
	HPSI_NODE_STATS(HPSI_STAT_OUT)
	HPSI_STALE_STATS(HPSI_STAT_OUT)
#undef HPSI_STAT_OUT
	family(f, "requests_in_flight", "gauge", "Requests submitted and not completed yet.");
	HPSI_EACH_ROW(st, HPSI_R_WORKER, r) {
		fprintf(f, "hps_requests_in_flight{");
		labels(f, st, r);
		fprintf(f, "} %llu\n", (unsigned long long)(r->s.requests - r->s.completed));
	}
	family(f, "wait_seconds_total", "counter", "Time spent in hps_wait (estimated from one blocking wait in 64).");
	HPSI_EACH_ROW(st, HPSI_R_WORKER, r) {
		fprintf(f, "hps_wait_seconds_total{");
		labels(f, st, r);
		fprintf(f, "} %.9f\n", r->s.wait_s);
	}
	family(f, "updater_seconds_total", "counter", "Time in the handler or updater (estimated from one call in 64).");
	HPSI_EACH_ROW(st, HPSI_R_SERVER, r) {
		fprintf(f, "hps_updater_seconds_total{");
		labels(f, st, r);
		fprintf(f, "} %.9f\n", r->s.updater_s);
	}
	family(f, "held_seconds_total", "counter", "Time requests were held back for consistency, summed.");
	HPSI_EACH_ROW(st, HPSI_R_SERVER, r) {
		fprintf(f, "hps_held_seconds_total{");
		labels(f, st, r);
		fprintf(f, "} %.9f\n", r->s.held_s);
	}
	family(f, "errors_total", "counter", "Requests that failed, by error code.");
	HPSI_EACH_ROW(st, HPSI_R_SERVER | HPSI_R_WORKER, r) {
		for (int i = 1; i < HPSI_STAT_ERRORS; i++)
			if (r->s.errors[i] && hpsi_error_name(-i)) {
				fprintf(f, "hps_errors_total{");
				labels(f, st, r);
				fprintf(f, ",code=\"%s\"} %llu\n", hpsi_error_name(-i), (unsigned long long)r->s.errors[i]);
			}
	}
}

static void write_process_stats(FILE *f, const struct hpsi_job_stats *st)
{
	family(f, "process_up", "gauge", "1 while the process runs, 0 once it closed or died.");
	HPSI_EACH_ROW(st, HPSI_R_SERVER | HPSI_R_WORKER | HPSI_R_BRIDGE, r) {
		fprintf(f, "hps_process_up{");
		labels(f, st, r);
		fprintf(f, "} %d\n", strcmp(r->state, "alive") == 0);
	}
	family(f, "process_resident_bytes", "gauge", "Resident memory of the process (/proc/PID/statm).");
	HPSI_EACH_ROW(st, HPSI_R_SERVER | HPSI_R_WORKER | HPSI_R_BRIDGE, r) {
		fprintf(f, "hps_process_resident_bytes{");
		labels(f, st, r);
		fprintf(f, "} %llu\n", (unsigned long long)r->rss);
	}
}

static void write_peer_stats(FILE *f, const struct hpsi_job_stats *st)
{
	const struct hpsi_proc_row *b = NULL;
	HPSI_EACH_ROW(st, HPSI_R_BRIDGE, r) b = r;
	if (!b)
		return;
#define HPSI_STAT_OUT(fld, name, type, help)                                                 \
	family(f, name, type, help);                                                        \
	for (uint32_t p = 0; p < st->nhosts; p++)                                           \
		if (p != st->me) {                                                          \
			fprintf(f, "hps_" name "{");                                        \
			labels(f, st, b);                                                   \
			fprintf(f, ",peer=\"%u\"} %llu\n", p, (unsigned long long)st->peer[p].fld); \
		}
	HPSI_PEER_STATS(HPSI_STAT_OUT)
#undef HPSI_STAT_OUT
}

/* On the scheduler's host: every host's totals from its heartbeats. */
static void write_host_stats(FILE *f, const char *job)
{
	static struct hpsi_host_row rows[HPSI_MAX_HOSTS];
	uint32_t n = hpsi_hosts_stats_read(job, rows, HPSI_MAX_HOSTS);
	if (!n)
		return;
#define HPSI_HOST_OUT(fld, nm, help)                                                            \
	family(f, "host_" nm, strstr(nm, "_total") ? "counter" : "gauge", help);              \
	for (uint32_t i = 0; i < n; i++)                                                       \
		fprintf(f, "hps_host_" nm "{job=\"%s\",host=\"%s\"} %llu\n", job, rows[i].name, \
			(unsigned long long)rows[i].t.fld);
	HPSI_HOST_OUT(requests, "requests_total", "Requests of the host's workers (scheduler's view).")
	HPSI_HOST_OUT(push_keys, "push_keys_total", "Keys the host's workers pushed (scheduler's view).")
	HPSI_HOST_OUT(pull_keys, "pull_keys_total", "Keys the host's workers pulled (scheduler's view).")
	HPSI_HOST_OUT(push_bytes, "push_bytes_total", "Value bytes the host's workers pushed (scheduler's view).")
	HPSI_HOST_OUT(pull_bytes, "pull_bytes_total", "Value bytes the host's workers pulled (scheduler's view).")
	HPSI_HOST_OUT(in_flight, "requests_in_flight", "Requests of the host's workers in flight (scheduler's view).")
	HPSI_HOST_OUT(held, "held_requests", "Requests its servers hold back now (scheduler's view).")
	HPSI_HOST_OUT(errors, "errors_total", "Failed requests on the host (scheduler's view).")
	HPSI_HOST_OUT(bridge_out, "bridge_bytes_sent_total", "Bytes its bridge sent (scheduler's view).")
	HPSI_HOST_OUT(bridge_in, "bridge_bytes_received_total", "Bytes its bridge received (scheduler's view).")
#undef HPSI_HOST_OUT
	family(f, "host_up", "gauge", "1 while the scheduler hears the host, 0 once it left or was declared dead.");
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "hps_host_up{job=\"%s\",host=\"%s\"} %d\n", job, rows[i].name, strcmp(rows[i].state, "alive") == 0);
}

void hpsi_metrics_write(FILE *f, const struct hpsi_job_stats *st)
{
	write_node_stats(f, st);
	write_process_stats(f, st);
	write_peer_stats(f, st);
	write_host_stats(f, st->job);
}

/* The exposition of the job now, in a malloc'd buffer; NULL when the job
 * is gone. */
static char *render(const char *job, const char *host, size_t *len)
{
	struct hpsi_seg seg;
	if (hpsi_seg_attach(job, host, &seg))
		return NULL;
	struct hpsi_job_stats *st = malloc(sizeof *st);
	char *buf = NULL;
	FILE *f = st ? open_memstream(&buf, len) : NULL;
	if (f) {
		hpsi_jobstats_read(&seg, st);
		hpsi_metrics_write(f, st);
		if (fclose(f) != 0) {
			free(buf);
			buf = NULL;
		}
	}
	free(st);
	hpsi_seg_detach(&seg);
	return buf;
}

/* DIR/hps_JOB.prom, written under a temporary name and renamed, so the
 * textfile collector never reads half a file. */
static int write_textfile(const char *dir, const char *job, const char *text, size_t len)
{
	char tmp[4096], path[4096];
	snprintf(path, sizeof path, "%s/hps_%s.prom", dir, job);
	snprintf(tmp, sizeof tmp, "%s/.hps_%s.prom.%d", dir, job, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "hps metrics: cannot write in %s (--textfile): %s\n", dir, strerror(errno));
		return 1;
	}
	int bad = fwrite(text, 1, len, f) != len;
	bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, path) != 0) {
		fprintf(stderr, "hps metrics: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return 1;
	}
	return 0;
}

struct serve_arg {
	const char *job, *host;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
			      const char *version, const char *data, size_t *data_len, void **state)
{
	(void)version, (void)data, (void)data_len, (void)state;
	const struct serve_arg *a = cls;
	size_t len = 0;
	char *body = NULL;
	unsigned code = MHD_HTTP_OK;
	struct MHD_Response *resp;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		code = MHD_HTTP_NOT_FOUND;
	} else if (!(body = render(a->job, a->host, &len))) {
		code = MHD_HTTP_SERVICE_UNAVAILABLE; /* the job ended: the main loop stops too */
	}
	if (body)
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	else
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (body)
		MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	enum MHD_Result rc = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return rc;
}

static volatile sig_atomic_t stop_serving;

static void on_signal(int sig)
{
	(void)sig;
	stop_serving = 1;
}

/* --listen ADDR:PORT, an IPv4 or [IPv6] address and a port. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss)
{
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec)
		return -1;
	char host[64];
	size_t hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']')
		spec++, hl -= 2;
	if (hl >= sizeof host)
		return -1;
	memcpy(host, spec, hl);
	host[hl] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 1 || port > 65535)
		return -1;
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
	} else {
		return -1;
	}
	return 0;
}

static int serve_http(const char *listen, const char *job, const char *host)
{
	struct sockaddr_storage ss;
	if (parse_listen(listen, &ss)) {
		fprintf(stderr, "hps metrics: --listen wants ADDRESS:PORT with a numeric address, like 127.0.0.1:9464, not '%s'\n",
			listen);
		return 2;
	}
	struct serve_arg a = {job, host};
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
			 (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, answer, &a, MHD_OPTION_SOCK_ADDR,
						 (struct sockaddr *)&ss, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "hps metrics: cannot listen on %s (port taken, or not an address of this host)\n", listen);
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("hps metrics: serving http://%s/metrics for job %s (host %s)\n", listen, job, host);
	fflush(stdout);
	char path[256];
	hpsi_seg_path(path, sizeof path, job, host);
	while (!stop_serving) {
		if (access(path, F_OK) != 0) {
			fprintf(stderr, "hps metrics: job %s ended\n", job);
			break;
		}
		sleep(1);
	}
	MHD_stop_daemon(d);
	return 0;
}

int hpsi_cmd_metrics(int argc, char **argv)
{
	const char *textfile = NULL, *listen = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: hps metrics [--job ID] [--host NAME] [--textfile DIR | --listen ADDRESS:PORT]\n\n"
			       "Prints every counter of the running job on this host in Prometheus' text format.\n"
			       "--textfile DIR writes DIR/hps_JOB.prom (atomically) for node_exporter's textfile\n"
			       "collector; --listen serves /metrics over HTTP until the job ends or Ctrl-C.\n"
			       "Without --job, the one job running on this host.\n");
			return 0;
		} else if ((strcmp(argv[i], "--job") == 0 || strcmp(argv[i], "--host") == 0) && i + 1 < argc) {
			setenv(strcmp(argv[i], "--job") == 0 ? "HPS_JOB_ID" : "HPS_HOST", argv[i + 1], 1);
			i++;
		} else if (strcmp(argv[i], "--textfile") == 0 && i + 1 < argc) {
			textfile = argv[++i];
		} else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			listen = argv[++i];
		} else {
			fprintf(stderr, "hps metrics: unexpected '%s' (see hps metrics --help)\n", argv[i]);
			return 2;
		}
	}
	if (textfile && listen) {
		fprintf(stderr, "hps metrics: give --textfile or --listen, not both\n");
		return 2;
	}
	struct hpsi_config cfg;
	if (hpsi_pick_job("hps metrics") || hpsi_config_load(&cfg, 0))
		return 1;
	if (listen)
		return serve_http(listen, cfg.job, cfg.host);
	size_t len;
	char *text = render(cfg.job, cfg.host, &len);
	if (!text)
		return 1;
	int rc = textfile ? write_textfile(textfile, cfg.job, text, len) : fwrite(text, 1, len, stdout) != len;
	free(text);
	return rc;
}
