/* `hps launch --summary`: what a job did, on one screen, read from its
 * counters just before the launcher removes the segment. */
#include <stdio.h>

#include "runtime/cluster/jobstats.h"

static double mb(uint64_t b)
{
	return (double)b / 1e6;
}

static uint64_t errors_of(const struct hpsi_proc_row *r)
{
	uint64_t n = 0;
	for (int i = 0; i < HPSI_STAT_ERRORS; i++)
		n += r->s.errors[i];
	return n;
}

void hpsi_jobstats_summary(FILE *f, const struct hpsi_job_stats *st, double seconds)
{
	fprintf(f, "hps: summary of job %s on host %s after %.1f s\n", st->job, st->host, seconds);
	fprintf(f, "  %-8s %4s %12s %12s %12s %10s %10s %12s %8s\n", "server", "rank", "requests", "keys_in",
		"keys_out", "MB_in", "MB_out", "store_keys", "errors");
	uint64_t most = 0, least = UINT64_MAX, total = 0;
	unsigned nsrv = 0;
	for (uint32_t i = 0; i < st->nrows; i++) {
		const struct hpsi_proc_row *r = &st->rows[i];
		if (r->role != HPSI_R_SERVER)
			continue;
		fprintf(f, "  %-8s %4u %12llu %12llu %12llu %10.2f %10.2f %12llu %8llu\n", "", r->rank,
			(unsigned long long)r->s.requests, (unsigned long long)r->s.push_keys,
			(unsigned long long)r->s.pull_keys, mb(r->s.push_bytes), mb(r->s.pull_bytes),
			(unsigned long long)r->s.store_keys, (unsigned long long)errors_of(r));
		uint64_t keys = r->s.push_keys + r->s.pull_keys;
		most = keys > most ? keys : most;
		least = keys < least ? keys : least;
		total += keys, nsrv++;
	}
	fprintf(f, "  %-8s %4s %12s %12s %12s %10s %10s %12s %8s\n", "worker", "rank", "requests", "keys_pushed",
		"keys_pulled", "MB_out", "MB_in", "wait_s", "errors");
	for (uint32_t i = 0; i < st->nrows; i++) {
		const struct hpsi_proc_row *r = &st->rows[i];
		if (r->role != HPSI_R_WORKER)
			continue;
		fprintf(f, "  %-8s %4u %12llu %12llu %12llu %10.2f %10.2f %12.3f %8llu\n", "", r->rank,
			(unsigned long long)r->s.requests, (unsigned long long)r->s.push_keys,
			(unsigned long long)r->s.pull_keys, mb(r->s.push_bytes), mb(r->s.pull_bytes), r->s.wait_s,
			(unsigned long long)errors_of(r));
	}
	/* Imbalance as ps-lite users read it: the busiest server's keys over
	 * the mean; 1.00 is an even split. */
	if (nsrv > 1 && total)
		fprintf(f, "  imbalance: busiest server %.2fx the mean keys (least %.2fx)\n",
			(double)most * nsrv / (double)total, (double)least * nsrv / (double)total);
	else if (nsrv > 1)
		fprintf(f, "  imbalance: no keys reached the servers\n");
}
