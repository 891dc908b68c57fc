/* Every host's totals as the scheduler last heard them (heartbeats,
 * net/wire.h), in a small text file beside the segments on the
 * scheduler's host, $HPS_SHM_DIR/hps-hosts.JOB: written by the scheduler
 * once per heartbeat period (under a temporary name, then renamed),
 * removed when it ends, read by `hps top` and `hps metrics`. */
#ifndef HPSI_HOSTS_STATS_H
#define HPSI_HOSTS_STATS_H

#include <stdint.h>

#include "net/wire.h"

struct hpsi_host_row {
	char name[HPSI_NAME_MAX];
	char state[8]; /* alive, dead, left */
	struct hpsi_host_totals t;
};

int hpsi_hosts_stats_path(char *out, size_t cap, const char *job);
/* Writes the file; quietly does nothing when it cannot (it is only shown). */
void hpsi_hosts_stats_write(const char *job, const struct hpsi_host_row *rows, uint32_t n);
/* 1 when the file at path was written by a process that is gone. */
int hpsi_hosts_stats_orphan(const char *path);
/* Reads up to cap rows; returns how many, 0 when there is no file. */
uint32_t hpsi_hosts_stats_read(const char *job, struct hpsi_host_row *rows, uint32_t cap);

#endif
