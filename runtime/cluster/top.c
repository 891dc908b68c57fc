/* `hps top`: a live view of a running job on this host, one row per
 * process, refreshed every second from the counters in its segment
 * (runtime/cluster/jobstats.h). Plain ANSI escapes: an alternate screen,
 * the terminal in non-canonical mode, both restored on q, Ctrl-C or the
 * job's end. Without a terminal it prints one snapshot as plain text. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/cluster/hosts_stats.h"
#include "runtime/cluster/jobstats.h"
#include "runtime/cluster/launch.h"
#include "runtime/common/config.h"

/* One process's figures over the last interval. */
struct top_row {
	const struct hpsi_proc_row *p;
	double req_s, keys_s, mb_in_s, mb_out_s;
	uint64_t inflight, held;
};

enum sort_key { BY_RANK, BY_REQ, BY_KEYS, BY_IN, BY_OUT, BY_FLIGHT, BY_HELD, BY_CLOCK, BY_RSS, NSORT };
static const char *const sort_names[NSORT] = {"rank", "req", "keys", "in", "out", "flight", "held", "clock", "rss"};
static const char sort_keys[NSORT] = {'n', 'r', 'k', 'i', 'o', 'f', 'h', 'c', 'm'};
static enum sort_key sort_by = BY_RANK;

/* Bytes a process took in and sent out: a server takes pushes in and
 * sends pull answers out; a worker the other way round; a bridge's row
 * holds its bytes to peers in push_bytes and from them in pull_bytes. */
static uint64_t bytes_in(const struct hpsi_proc_row *p)
{
	return p->role == HPSI_R_SERVER ? p->s.push_bytes : p->s.pull_bytes;
}

static uint64_t bytes_out(const struct hpsi_proc_row *p)
{
	return p->role == HPSI_R_SERVER ? p->s.pull_bytes : p->s.push_bytes;
}

static const struct hpsi_proc_row *find_row(const struct hpsi_job_stats *st, const struct hpsi_proc_row *p)
{
	for (uint32_t i = 0; st && i < st->nrows; i++)
		if (st->rows[i].role == p->role && st->rows[i].node == p->node)
			return &st->rows[i];
	return NULL;
}

static double rate(uint64_t now, uint64_t before, double secs)
{
	return now >= before && secs > 0 ? (double)(now - before) / secs : 0.0;
}

static void compute(const struct hpsi_job_stats *now, const struct hpsi_job_stats *prev, struct top_row *rows)
{
	double secs = prev ? (double)(now->at_ns - prev->at_ns) / 1e9 : 0;
	for (uint32_t i = 0; i < now->nrows; i++) {
		const struct hpsi_proc_row *p = &now->rows[i], *q = find_row(prev, p);
		struct top_row *t = &rows[i];
		*t = (struct top_row){.p = p};
		if (q) {
			t->req_s = rate(p->s.requests, q->s.requests, secs);
			t->keys_s = rate(p->s.push_keys + p->s.pull_keys, q->s.push_keys + q->s.pull_keys, secs);
			t->mb_in_s = rate(bytes_in(p), bytes_in(q), secs) / 1e6;
			t->mb_out_s = rate(bytes_out(p), bytes_out(q), secs) / 1e6;
		}
		t->inflight = p->role == HPSI_R_WORKER ? p->s.requests - p->s.completed : 0;
		t->held = p->s.held_now;
	}
}

static double sort_value(const struct top_row *t)
{
	switch (sort_by) {
	case BY_REQ: return t->req_s;
	case BY_KEYS: return t->keys_s;
	case BY_IN: return t->mb_in_s;
	case BY_OUT: return t->mb_out_s;
	case BY_FLIGHT: return (double)t->inflight;
	case BY_HELD: return (double)t->held;
	case BY_CLOCK: return (double)t->p->s.clock;
	case BY_RSS: return (double)t->p->rss;
	default: return 0;
	}
}

static int cmp_rows(const void *a_, const void *b_)
{
	const struct top_row *a = a_, *b = b_;
	if (sort_by != BY_RANK) {
		double x = sort_value(a), y = sort_value(b);
		if (x != y)
			return x < y ? 1 : -1; /* largest first */
	}
	if (a->p->role != b->p->role)
		return a->p->role - b->p->role;
	return a->p->rank < b->p->rank ? -1 : a->p->rank > b->p->rank;
}

/* nl: the line end, "\n" on a pipe, clear-to-end-of-line first on a screen */
static void render(FILE *f, const struct hpsi_job_stats *st, const struct top_row *rows, const char *nl)
{
	fprintf(f, "hps top  job %s  host %s  %u servers %u workers  sort: %s%s", st->job, st->host, st->nservers,
		st->nworkers, sort_names[sort_by], nl);
	fprintf(f, "%-12s %-6s %4s %8s %-8s %10s %10s %8s %8s %6s %5s %8s %8s%s", "HOST", "ROLE", "RANK", "PID", "STATE",
		"REQ/S", "KEYS/S", "MBIN/S", "MBOUT/S", "FLIGHT", "HELD", "CLOCK", "RSS_MB", nl);
	double tot[2][4] = {{0}};
	uint64_t flight = 0, held = 0;
	for (uint32_t i = 0; i < st->nrows; i++) {
		const struct top_row *t = &rows[i];
		const struct hpsi_proc_row *p = t->p;
		char clock[24] = "-";
		if (p->role == HPSI_R_WORKER)
			snprintf(clock, sizeof clock, "%llu", (unsigned long long)p->s.clock);
		fprintf(f, "%-12.12s %-6s %4u %8d %-8s %10.0f %10.0f %8.2f %8.2f %6llu %5llu %8s %8.1f%s", st->host,
			hpsi_role_name(p->role), p->rank, (int)p->pid, p->state, t->req_s, t->keys_s, t->mb_in_s,
			t->mb_out_s, (unsigned long long)t->inflight, (unsigned long long)t->held, clock,
			(double)p->rss / 1e6, nl);
		if (p->role != HPSI_R_BRIDGE) {
			double *s = tot[p->role == HPSI_R_WORKER];
			s[0] += t->req_s, s[1] += t->keys_s, s[2] += t->mb_in_s, s[3] += t->mb_out_s;
		}
		flight += t->inflight, held += t->held;
	}
	for (int w = 1; w >= 0; w--)
		fprintf(f, "%-12s %-6s %4s %8s %-8s %10.0f %10.0f %8.2f %8.2f %6llu %5llu%s", "TOTAL",
			w ? "worker" : "server", "", "", "", tot[w][0], tot[w][1], tot[w][2], tot[w][3],
			(unsigned long long)(w ? flight : 0), (unsigned long long)(w ? 0 : held), nl);
}

/* On the scheduler's host: every host's totals, with rates since the
 * last look (the scheduler refreshes them once per heartbeat period). */
static void render_hosts(FILE *f, const char *job, const char *nl)
{
	static struct hpsi_host_row rows[HPSI_MAX_HOSTS], prev[HPSI_MAX_HOSTS];
	static uint32_t nprev;
	static int64_t prev_at;
	uint32_t n = hpsi_hosts_stats_read(job, rows, HPSI_MAX_HOSTS);
	if (!n)
		return;
	int64_t now = hpsi_now_ns();
	double secs = (double)(now - prev_at) / 1e9;
	fprintf(f, "%s%-12s %-6s %10s %10s %8s %8s %6s %5s %8s %10s %10s%s", nl, "HOSTS", "STATE", "REQ/S", "KEYS/S",
		"MBOUT/S", "MBIN/S", "FLIGHT", "HELD", "ERRORS", "BRIDGE_OUT", "BRIDGE_IN", nl);
	for (uint32_t i = 0; i < n; i++) {
		const struct hpsi_host_totals *t = &rows[i].t, *p = NULL;
		for (uint32_t k = 0; k < nprev; k++)
			if (strcmp(prev[k].name, rows[i].name) == 0)
				p = &prev[k].t;
		double req = p ? rate(t->requests, p->requests, secs) : 0;
		double keys = p ? rate(t->push_keys + t->pull_keys, p->push_keys + p->pull_keys, secs) : 0;
		double out = p ? rate(t->push_bytes, p->push_bytes, secs) / 1e6 : 0;
		double in = p ? rate(t->pull_bytes, p->pull_bytes, secs) / 1e6 : 0;
		fprintf(f, "%-12.12s %-6s %10.0f %10.0f %8.2f %8.2f %6llu %5llu %8llu %9.1fM %9.1fM%s", rows[i].name,
			rows[i].state, req, keys, out, in, (unsigned long long)t->in_flight, (unsigned long long)t->held,
			(unsigned long long)t->errors, (double)t->bridge_out / 1e6, (double)t->bridge_in / 1e6, nl);
	}
	memcpy(prev, rows, sizeof rows[0] * n);
	nprev = n;
	prev_at = now;
}

static int snapshot(const char *job, const char *host, struct hpsi_job_stats *st)
{
	struct hpsi_seg seg;
	char path[256];
	if (hpsi_seg_path(path, sizeof path, job, host) || access(path, F_OK) != 0 || hpsi_seg_attach(job, host, &seg))
		return -1;
	hpsi_jobstats_read(&seg, st);
	hpsi_seg_detach(&seg);
	return 0;
}

static volatile sig_atomic_t stop_top;
static struct termios saved_tio;
static int tio_saved;

static void on_signal(int sig)
{
	(void)sig;
	stop_top = 1;
}

static void restore_terminal(void)
{
	if (!tio_saved)
		return;
	fputs("\033[?25h\033[?1049l", stdout); /* cursor back, main screen back */
	fflush(stdout);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
	tio_saved = 0;
}

static void take_key(int c)
{
	if (c == 's')
		sort_by = (sort_by + 1) % NSORT;
	for (int i = 0; i < NSORT; i++)
		if (c == sort_keys[i])
			sort_by = i;
}

static int live(const char *job, const char *host, struct hpsi_job_stats *cur, struct hpsi_job_stats *prev,
		struct top_row *rows)
{
	if (tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		struct termios raw = saved_tio;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
		tio_saved = 1;
		atexit(restore_terminal);
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, no cursor */
	int have_prev = 0, ended = 0;
	while (!stop_top) {
		if (snapshot(job, host, cur)) {
			ended = 1;
			break;
		}
		compute(cur, have_prev ? prev : NULL, rows);
		qsort(rows, cur->nrows, sizeof *rows, cmp_rows);
		fputs("\033[H", stdout);
		render(stdout, cur, rows, "\033[K\n");
		render_hosts(stdout, job, "\033[K\n");
		fputs("keys: q quit, s next sort, n rank r req k keys i in o out f flight h held c clock m rss\033[K\033[J",
		      stdout);
		fflush(stdout);
		*prev = *cur;
		have_prev = 1;
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		int64_t until = cur->at_ns + 1000000000;
		while (!stop_top) {
			int64_t left = until - hpsi_now_ns();
			if (left <= 0)
				break;
			if (poll(&pfd, 1, (int)(left / 1000000) + 1) > 0) {
				char c;
				if (read(STDIN_FILENO, &c, 1) != 1)
					continue;
				if (c == 'q' || c == 'Q')
					stop_top = 1;
				else
					take_key(c);
				break; /* redraw at once in the new order */
			}
		}
	}
	restore_terminal();
	if (ended)
		printf("hps top: job %s ended\n", job);
	return 0;
}

int hpsi_cmd_top(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: hps top [--job ID] [--host NAME] [--sort KEY]\n\n"
			       "A live view of the running job on this host, refreshed every second: one row per\n"
			       "process with its rates over the last second. Keys: q quits, s cycles the sort,\n"
			       "or n r k i o f h c m sort by rank, req/s, keys/s, MB/s in, out, in flight, held,\n"
			       "clock, RSS. KEY for --sort: rank req keys in out flight held clock rss.\n"
			       "Without a terminal it prints one snapshot (rates over one second) and exits.\n");
			return 0;
		} else if ((strcmp(argv[i], "--job") == 0 || strcmp(argv[i], "--host") == 0) && i + 1 < argc) {
			setenv(strcmp(argv[i], "--job") == 0 ? "HPS_JOB_ID" : "HPS_HOST", argv[i + 1], 1);
			i++;
		} else if (strcmp(argv[i], "--sort") == 0 && i + 1 < argc) {
			int k = -1;
			for (int j = 0; j < NSORT; j++)
				if (strcmp(argv[i + 1], sort_names[j]) == 0)
					k = j;
			if (k < 0) {
				fprintf(stderr, "hps top: --sort wants one of rank req keys in out flight held clock rss, not '%s'\n",
					argv[i + 1]);
				return 2;
			}
			sort_by = k;
			i++;
		} else {
			fprintf(stderr, "hps top: unexpected '%s' (see hps top --help)\n", argv[i]);
			return 2;
		}
	}
	struct hpsi_config cfg;
	struct hpsi_seg seg;
	if (hpsi_pick_job("hps top") || hpsi_config_load(&cfg, 0) || hpsi_seg_attach(cfg.job, cfg.host, &seg))
		return 1; /* each says why */
	hpsi_seg_detach(&seg);
	struct hpsi_job_stats *cur = malloc(sizeof *cur), *prev = malloc(sizeof *prev);
	struct top_row *rows = malloc(sizeof *rows * (HPSI_MAX_NODES + 1));
	int rc = 1;
	if (!cur || !prev || !rows) {
		fprintf(stderr, "hps top: out of memory\n");
	} else if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
		rc = live(cfg.job, cfg.host, cur, prev, rows);
	} else if (snapshot(cfg.job, cfg.host, prev) == 0) {
		/* rates need two looks: one second apart */
		sleep(1);
		int gone = snapshot(cfg.job, cfg.host, cur) != 0;
		struct hpsi_job_stats *last = gone ? prev : cur;
		compute(last, gone ? NULL : prev, rows);
		qsort(rows, last->nrows, sizeof *rows, cmp_rows);
		render(stdout, last, rows, "\n");
		render_hosts(stdout, cfg.job, "\n");
		rc = 0;
	}
	free(cur);
	free(prev);
	free(rows);
	return rc;
}
