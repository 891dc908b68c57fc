/* `hps scale`: changes the number of workers or servers of a running
 * job. The launcher owns the processes, so the command only asks it,
 * through the segment's scale_req word (shm/segment.h): a compare-and-swap
 * from 0, so that a second scale while one runs is refused; the launcher
 * starts the copies (HPS_JOIN=1) and stores 0 once each joined or ended
 * (runtime/cluster/launch.c, serve_scale). Workers leave by closing, so
 * only growing is asked of it. Servers grow and shrink: the launcher
 * plans which key ranges move where, starts new servers, and the servers
 * move the ranges while the job trains (runtime/server/move.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hps/hps.h"
#include "net/route.h"
#include "runtime/client/join.h"
#include "runtime/cluster/join_host.h"
#include "runtime/cluster/launch.h"
#include "runtime/common/config.h"
#include "shm/liveness.h"
#include "shm/node.h"

#define POLL_NS 10000000 /* how often the answer is looked for */

static void usage(FILE *f)
{
	fprintf(f, "usage: hps scale [--job ID] [--host NAME] --workers N | --servers N\n"
		   "       hps scale --job ID --join-host NAME\n\n"
		   "--workers N: grows the running job (HPS_JOB_ID on this host) to N workers: its\n"
		   "launcher starts N minus the current number of copies of the worker program with\n"
		   "HPS_JOIN=1; each takes a free rank and starts at the slowest worker's clock. The\n"
		   "job must have been launched with room for them (hps launch --max-workers); a rank\n"
		   "is not given twice. Workers leave by closing (hps_finalize), so N below the\n"
		   "current number is refused. Waits until the new workers joined (or ended) and\n"
		   "prints the number of workers. Across hosts (hps launch --hosts), run it on the\n"
		   "last host of the hosts file: the free ranks are its own.\n"
		   "--servers N: grows or shrinks the job to N server processes while it trains. Its\n"
		   "keys form the key ranges of hps launch --max-servers, spread over the servers;\n"
		   "whole ranges move (about 1/N of the keys per server added or removed), their\n"
		   "tables handed over in shared memory, not copied: no push is lost or applied\n"
		   "twice and workers see no error. New servers are started by the launcher; leaving\n"
		   "ones close once their ranges serve elsewhere. Waits until the ranges moved.\n"
		   "A replicated job's backups move too (copied, with one backup per range).\n"
		   "Without --job, the one job running on this host. Across hosts (hps launch\n"
		   "--hosts), run it on the last host; closed ranks of other hosts are started\n"
		   "again by their own launcher. Refused: a replicated job below --replicas + 1\n"
		   "servers (a range and its backups live on distinct servers), a replicated job\n"
		   "across hosts, one without --max-servers, a rank that died, and a scale while\n"
		   "another one of the job runs.\n"
		   "--join-host NAME: starts host NAME of a job launched with --hosts, the host its\n"
		   "hosts file marks `later` (what kill -USR1 to hps launch does). Run it where\n"
		   "`hps launch --hosts` runs; waits until the scheduler sees the host joined (at\n"
		   "most HPS_TIMEOUT_MS) and prints one line. Refused: a job whose hps launch\n"
		   "--hosts does not run on this host, a host not marked `later`, one started\n"
		   "already. Its servers and workers then come with --servers and --workers there.\n");
}

/* Waits until the launcher ended the request this command made (it
 * stores 0 with release once the new workers joined or the ranges
 * moved), bounded by HPS_TIMEOUT_MS and by the launcher's life; 1 with
 * one line when it did not: what ("new workers"), verb ("join") and
 * done ("joined") name what the request waits for. */
static int wait_launcher(struct hpsi_seg *seg, const char *what, const char *verb, const char *done)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	int64_t deadline = hpsi_now_ns() + h->timeout_ms * 1000000;
	/* acquire: pairs with the launcher's release of 0 */
	while (atomic_load_explicit(&seg->hdr->scale_req, memory_order_acquire) != 0) {
		if (!hpsi_proc_alive(h->creator_pid, h->creator_birth)) {
			fprintf(stderr, "hps scale: job %s ended before its %s %s\n", h->job, what, done);
			return 1;
		}
		if (hpsi_now_ns() > deadline) {
			fprintf(stderr, "hps scale: the %s of job %s did not %s within HPS_TIMEOUT_MS\n", what, h->job, verb);
			return 1;
		}
		nanosleep(&(struct timespec){0, POLL_NS}, NULL);
	}
	return 0;
}

static int scale_workers(struct hpsi_seg *seg, uint32_t want)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	/* across hosts the free ranks are the last host's (net/bridge_join.c),
	 * whose launcher starts the new workers */
	if (h->bridged && h->wrk_hi <= h->launched_workers) {
		fprintf(stderr, "hps scale: job %s spans hosts (--hosts): its free worker ranks are on its last host, not on %s; run hps scale there\n",
			h->job, h->host);
		return 1;
	}
	if (!hpsi_proc_alive(h->creator_pid, h->creator_birth)) {
		fprintf(stderr, "hps scale: the launcher of job %s is gone; start workers with HPS_JOIN=1 instead\n", h->job);
		return 1;
	}
	uint32_t now = hpsi_workers_current(seg), vacant = h->nworkers - hpsi_workers_given(seg);
	if (want > h->nworkers) {
		fprintf(stderr, "hps scale: job %s has room for at most %u workers (hps launch --max-workers)\n", h->job,
			h->nworkers);
		return 1;
	}
	if (want < now) {
		fprintf(stderr, "hps scale: job %s has %u workers; workers leave by closing (hps_finalize), not by hps scale\n",
			h->job, now);
		return 1;
	}
	if (want == now) {
		printf("job %s has %u workers already\n", h->job, now);
		return 0;
	}
	if (want - now > vacant) {
		fprintf(stderr, "hps scale: job %s has %u unused worker rank%s left (a rank is not given twice), not %u\n",
			h->job, vacant, vacant == 1 ? "" : "s", want - now);
		return 1;
	}
	uint32_t given = hpsi_workers_given(seg), idle = 0;
	/* acq_rel: the request is whole when the launcher acquires it */
	if (!atomic_compare_exchange_strong_explicit(&seg->hdr->scale_req, &idle, want, memory_order_acq_rel,
						     memory_order_acquire)) {
		fprintf(stderr, "hps scale: a scale of job %s is running\n", h->job);
		return 1;
	}
	if (wait_launcher(seg, "new workers", "join", "joined"))
		return 1;
	/* the ranks taken since: the new workers may have ended already */
	uint32_t joined = hpsi_workers_given(seg) - given;
	if (now + joined < want) {
		fprintf(stderr, "hps scale: only %u of the %u new workers of job %s joined (see the launcher's output)\n",
			joined, want - now, h->job);
		return 1;
	}
	printf("job %s has %u workers\n", h->job, now + joined);
	return 0;
}

/* hps scale --servers N (runtime/server/move.c has the design). */
static int scale_servers(struct hpsi_seg *seg, uint32_t want)
{
	const struct hpsi_seg_hdr *h = seg->hdr;
	/* said first: it holds whatever else is built, since
	 * a range and its backups live on distinct servers (issue 12 part 5) */
	if (h->replicas && want < h->replicas + 1) {
		fprintf(stderr, "hps scale: job %s keeps %u backup%s of every key range on other servers (--replicas), so it needs at least %u servers, not %u\n",
			h->job, h->replicas, h->replicas == 1 ? "" : "s", h->replicas + 1, want);
		return 1;
	}
	if (!hpsi_seg_room(seg)) {
		fprintf(stderr, "hps scale: job %s was launched without room for more servers; its key ranges cannot move (hps launch --max-servers)\n",
			h->job);
		return 1;
	}
	if (want > h->nservers) {
		fprintf(stderr, "hps scale: job %s has room for at most %u servers (hps launch --max-servers)\n", h->job,
			h->nservers);
		return 1;
	}
	/* across hosts the free server ranks are the last host's, whose
	 * launcher starts the new servers and makes the plan (docs/
	 * ARCHITECTURE.md, "Elastic servers across hosts") */
	if (h->bridged && h->srv_hi != h->nservers) {
		fprintf(stderr, "hps scale: job %s spans hosts (--hosts): its free server ranks are on its last host, not on %s; run hps scale there\n",
			h->job, h->host);
		return 1;
	}
	/* Across hosts the new servers take ranks now .. want - 1: free
	 * (VACANT) ranks of this host, which the other hosts know as free, or
	 * ranks an earlier scale closed (a scale back up after a scale down),
	 * which their own host's launcher starts again once the plan names
	 * them (launch.c, restart_closed_servers) and the other hosts take
	 * back from CLOSED by their newer incarnation (net/bridge_scale.c).
	 * A rank in any other state (it died, or still leaves) is refused. */
	for (uint32_t r = hpsi_servers_current(seg); h->bridged && r < want; r++) {
		uint32_t st = hpsi_node_state(seg, r);
		if (!(st == HPSI_NODE_VACANT && r >= h->srv_lo) && st != HPSI_NODE_CLOSED) {
			fprintf(stderr, "hps scale: job %s spans hosts (--hosts): server rank %u is neither free nor closed by a scale (%s); it cannot start again\n",
				h->job, r, st == HPSI_NODE_DEAD ? "it died" : "it has not closed");
			return 1;
		}
	}
	if (!hpsi_proc_alive(h->creator_pid, h->creator_birth)) {
		fprintf(stderr, "hps scale: the launcher of job %s is gone\n", h->job);
		return 1;
	}
	uint32_t idle = 0;
	/* acq_rel: the request is whole when the launcher acquires it */
	if (!atomic_compare_exchange_strong_explicit(&seg->hdr->scale_req, &idle, want | HPSI_SCALE_SERVERS,
						     memory_order_acq_rel, memory_order_acquire)) {
		fprintf(stderr, "hps scale: a scale of job %s is running\n", h->job);
		return 1;
	}
	uint32_t now = hpsi_servers_current(seg);
	if (want == now) { /* (counted once the request is ours: no scale moves them now) */
		atomic_store_explicit(&seg->hdr->scale_req, 0, memory_order_release);
		printf("job %s has %u server%s already\n", h->job, now, now == 1 ? "" : "s");
		return 0;
	}
	if (wait_launcher(seg, "key ranges", "move", "moved"))
		return 1;
	now = hpsi_servers_current(seg);
	if (now != want) {
		fprintf(stderr, "hps scale: job %s has %u servers, not %u (see the launcher's output)\n", h->job, now, want);
		return 1;
	}
	printf("job %s has %u server%s\n", h->job, now, now == 1 ? "" : "s");
	return 0;
}

int hpsi_cmd_scale(int argc, char **argv)
{
	long workers = -1, servers = -1;
	const char *join_host = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if ((strcmp(argv[i], "--job") == 0 || strcmp(argv[i], "--host") == 0) && i + 1 < argc) {
			setenv(strcmp(argv[i], "--job") == 0 ? "HPS_JOB_ID" : "HPS_HOST", argv[i + 1], 1);
			i++;
		} else if (strcmp(argv[i], "--join-host") == 0 && i + 1 < argc) {
			join_host = argv[++i];
		} else if (strcmp(argv[i], "--servers") == 0 && i + 1 < argc) {
			char *end;
			servers = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || servers < 1 || servers >= HPSI_MAX_NODES) {
				fprintf(stderr, "hps scale: --servers needs a number from 1 to %d\n", HPSI_MAX_NODES - 1);
				return 2;
			}
		} else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
			char *end;
			workers = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || workers < 1 || workers >= HPSI_MAX_NODES) {
				fprintf(stderr, "hps scale: --workers needs a number from 1 to %d\n", HPSI_MAX_NODES - 1);
				return 2;
			}
		} else {
			fprintf(stderr, "hps scale: unexpected '%s' (see hps scale --help)\n", argv[i]);
			return 2;
		}
	}
	if (join_host && (workers > 0 || servers > 0)) {
		fprintf(stderr, "hps scale: --join-host starts a host with none of its own; scale it with --workers or --servers afterwards, not with it\n");
		return 2;
	}
	if (join_host)
		return hpsi_join_host_cmd(join_host);
	if ((workers < 0) == (servers < 0)) {
		fprintf(stderr, "hps scale: say how many workers or servers the job should have (--workers N or --servers N, one of them)\n");
		return 2;
	}
	struct hpsi_config cfg;
	struct hpsi_seg seg;
	if (hpsi_pick_job("hps scale") || hpsi_config_load(&cfg, 0))
		return 1;
	if (hpsi_seg_attach(cfg.job, cfg.host, &seg))
		return 1; /* it says why: no such job on this host */
	int rc = workers > 0 ? scale_workers(&seg, (uint32_t)workers) : scale_servers(&seg, (uint32_t)servers);
	hpsi_seg_detach(&seg);
	return rc;
}
