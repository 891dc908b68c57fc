/* Settings of a job, from the environment (HPS_*, with ps-lite's DMLC_*
 * names as aliases) and `--hps-name=value` flags, which override. */
#ifndef HPSI_CONFIG_H
#define HPSI_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/common/limits.h"

struct hpsi_config {
	int role;  /* HPS_ROLE: worker | server */
	int rank;  /* HPS_RANK: index among the processes of the role */
	uint32_t nservers, nworkers; /* HPS_NUM_SERVERS, HPS_NUM_WORKERS */
	uint32_t max_workers;        /* HPS_MAX_WORKERS: worker slots, default nworkers */
	uint32_t max_servers;        /* HPS_MAX_SERVERS: key ranges and server ranks, default nservers */
	int join;                    /* HPS_JOIN=1: a worker that takes a free rank (join.c) */
	char job[HPSI_NAME_MAX];     /* HPS_JOB_ID */
	char host[HPSI_NAME_MAX];    /* HPS_HOST, default the host name */
	uint32_t ring_bytes;         /* HPS_RING_KB; 0 (unset): by the job's shape */
	uint64_t heap_slice;         /* HPS_HEAP_MB per worker, default 256 */
	int64_t timeout_ms;          /* HPS_TIMEOUT_MS for requests, default 30000 */
	int64_t spin_ns;             /* HPS_SPIN_US before sleeping, default 50 */
	uint32_t range_mode;         /* HPS_KEY_RANGES: "first-last,..." per server */
	struct hpsi_key_span ranges[HPSI_MAX_NODES];
	uint32_t dtypes[HPSI_MAX_NODES]; /* HPS_DTYPE: f32 | f64, per server */
	uint32_t wires[HPSI_MAX_NODES];  /* HPS_COMPRESS: none | f16 | bf16 */
	uint32_t direct_widths[HPSI_MAX_NODES]; /* HPS_DIRECT: floats per key, 0 = off */
	uint32_t replicas;           /* HPS_REPLICAS: backups per key range, default 0 */
};

/* Value of HPS_<name>, or of its DMLC_ alias, or NULL. */
const char *hpsi_setting(const char *name);

/* Moves `--hps-name=value` arguments into the environment (HPS_NAME) and
 * removes them from argv. */
void hpsi_config_apply_flags(int *argc, char **argv);

/* The table of setting names (runtime/common/setting_names.c): 1 if
 * HPS_<name> (len bytes of name) is a setting hps or its scripts read. */
int hpsi_setting_known(const char *name, size_t len);
/* The known name nearest to name, or NULL when none is close. */
const char *hpsi_setting_closest(const char *name, size_t len);
/* Warns that prefix+name (HPS_ or --hps-) is no setting, naming the closest. */
void hpsi_setting_warn_unknown(const char *prefix, const char *name, size_t len);
/* Warns once per process about each HPS_* variable that is no setting. */
void hpsi_config_check_names(void);

/* Reads every setting; a wrong one is logged naming it and returns
 * HPS_ECONFIG. need_role: role and rank must be set (a node, not the
 * launcher). */
int hpsi_config_load(struct hpsi_config *c, int need_role);

/* Parses a non-negative integer setting into *out; returns 0 if unset. */
int hpsi_setting_u64(const char *name, uint64_t min, uint64_t max, uint64_t *out);

/* The entry of server `rank` in a per-server setting: "x" for every server
 * or "x;y;..." one per server. Copies it into buf; "" when list is NULL,
 * NULL when the list is too short or the entry does not fit. */
const char *hpsi_spec_for(const char *list, int rank, char *buf, size_t cap);

/* Every per-server list (HPS_DTYPE, HPS_COMPRESS, HPS_DIRECT, HPS_UPDATER,
 * HPS_INIT, HPS_STALENESS) holds one entry, or exactly one per server. */
int hpsi_config_check_lists(uint32_t nservers);

/* HPS_DETERMINISTIC: 0 or 1 (unset: 0) into *on. */
int hpsi_config_deterministic(int *on);

/* Reads HPS_DTYPE and HPS_COMPRESS ("x" for all servers or "x;y;..."). */
int hpsi_config_value_types(uint32_t nservers, uint32_t *dtypes, uint32_t *wires);

/* Reads HPS_DIRECT: the floats per key of each server's dense direct
 * range ("W" for all servers or "W;W;...", 0 = an ordinary range). */
int hpsi_config_direct(uint32_t nservers, uint32_t *widths);

#endif
