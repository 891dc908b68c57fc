#include "runtime/client/ctx.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/common/log.h"
#include "shm/liveness.h"
#include "shm/node.h"

static int counts_match(const struct hps_ctx *c)
{
	const struct hpsi_seg_hdr *h = c->seg.hdr;
	if (hpsi_setting("NUM_SERVERS") && c->cfg.nservers != h->nservers) {
		hpsi_error("HPS_NUM_SERVERS=%u but job '%s' has %u servers", c->cfg.nservers, h->job, h->nservers);
		return 0;
	}
	if (hpsi_setting("NUM_WORKERS") && c->cfg.nworkers != h->nworkers) {
		hpsi_error("HPS_NUM_WORKERS=%u but job '%s' has %u workers", c->cfg.nworkers, h->job, h->nworkers);
		return 0;
	}
	if (hpsi_config_check_lists(h->nservers))
		return 0;
	uint32_t limit = c->cfg.role == HPS_ROLE_SERVER ? h->nservers : h->nworkers;
	if ((uint32_t)c->cfg.rank >= limit) {
		hpsi_error("HPS_RANK=%d is out of range: job '%s' has %u %ss", c->cfg.rank, h->job, limit,
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker");
		return 0;
	}
	return 1;
}

int hps_init(hps_ctx **out, int *argc, char **argv)
{
	if (!out)
		return HPS_EINVAL;
	*out = NULL;
	hpsi_config_apply_flags(argc, argv);
	struct hps_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return HPS_ENOMEM;
	int rc = hpsi_config_load(&c->cfg, 1);
	if (!rc)
		rc = hpsi_seg_attach(c->cfg.job, c->cfg.host, &c->seg);
	if (rc) {
		free(c);
		return rc;
	}
	if (!counts_match(c)) {
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ECONFIG;
	}
	c->node = c->cfg.role == HPS_ROLE_SERVER ? (uint32_t)c->cfg.rank
						 : hpsi_worker_node(&c->seg, (uint32_t)c->cfg.rank);
	if (!hpsi_node_local(&c->seg, c->node)) {
		const struct hpsi_seg_hdr *h = c->seg.hdr;
		hpsi_error("%s rank %d does not run on host %s, which runs servers %u-%u and workers %u-%u (HPS_RANK)",
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, h->host, h->srv_lo,
			   h->srv_hi - 1, h->wrk_lo, h->wrk_hi - 1);
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_ECONFIG;
	}
	c->timeout_ns = c->seg.hdr->timeout_ms * 1000000;
	c->spin_ns = c->cfg.spin_ns;
	cpu_set_t cpus;
	long ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : sysconf(_SC_NPROCESSORS_ONLN);
	/* the busy threads of this host: its processes (other hosts' nodes do
	 * not share its CPUs) and, with other hosts, the bridge and ZeroMQ's
	 * I/O thread, which spinners must leave room for */
	const struct hpsi_seg_hdr *sh = c->seg.hdr;
	long busy = (long)(sh->srv_hi - sh->srv_lo + sh->wrk_hi - sh->wrk_lo) + (sh->bridged ? 2 : 0);
	c->spin_yield = busy > ncpu;

	/* Claim the node: only if nobody alive holds it. */
	struct hpsi_node *n = hpsi_seg_node(&c->seg, c->node);
	uint32_t st = hpsi_node_check(&c->seg, c->node);
	if (st == HPSI_NODE_ALIVE) {
		hpsi_error("%s rank %d of job '%s' is already running (pid %d)",
			   c->cfg.role == HPS_ROLE_SERVER ? "server" : "worker", c->cfg.rank, c->seg.hdr->job,
			   (int)atomic_load_explicit(&n->pid, memory_order_relaxed)); /* only printed */
		hpsi_seg_detach(&c->seg);
		free(c);
		return HPS_EEXIST;
	}
	atomic_store_explicit(&n->pid, (int32_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&n->birth, hpsi_proc_birth(getpid()), memory_order_relaxed);
	atomic_store_explicit(&n->state, HPSI_NODE_ALIVE, memory_order_release);
	hpsi_wake_all(&c->seg);
	*out = c;
	return 0;
}

int hps_finalize(hps_ctx *c)
{
	if (!c)
		return HPS_EINVAL;
	if (c->worker)
		hps_worker_close(c->worker);
	struct hpsi_node *n = hpsi_seg_node(&c->seg, c->node);
	uint32_t st = HPSI_NODE_ALIVE;
	atomic_compare_exchange_strong_explicit(&n->state, &st, HPSI_NODE_CLOSED, memory_order_acq_rel,
						memory_order_acquire);
	hpsi_wake_all(&c->seg);
	hpsi_seg_detach(&c->seg);
	free(c);
	return 0;
}

int hps_role(const hps_ctx *c) { return c->cfg.role; }
int hps_rank(const hps_ctx *c) { return c->cfg.rank; }
int hps_num_workers(const hps_ctx *c) { return (int)c->seg.hdr->nworkers; }
int hps_num_servers(const hps_ctx *c) { return (int)c->seg.hdr->nservers; }
