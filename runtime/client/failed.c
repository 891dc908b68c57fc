/* Failures that outlive their slot. A worker tracks HPSI_MAX_INFLIGHT
 * requests in slots indexed by timestamp; when a slot is reused, the
 * status of the request it held would be lost and a later hps_wait on it
 * could only guess. Successes need no record (a reused slot whose ts is
 * not kept here succeeded); failures are kept here, in timestamp order,
 * so a failure is never reported as success. The ring is bounded: past
 * HPSI_MAX_FAILED unread failures the oldest is dropped, and waits on
 * timestamps up to it answer HPS_EUNTRACKED. */
#include <stdlib.h>

#include "runtime/client/worker.h"

void hpsi_failed_keep(struct hps_worker *w, int64_t ts, int status)
{
	pthread_mutex_lock(&w->fail_lock);
	if (!w->failed)
		w->failed = malloc(HPSI_MAX_FAILED * sizeof *w->failed);
	if (!w->failed) {
		w->forgot_upto = ts; /* cannot keep it: it must not read as success */
	} else {
		if (w->nfailed == HPSI_MAX_FAILED) {
			w->forgot_upto = w->failed[w->failed_head].ts;
			w->failed_head = (w->failed_head + 1) % HPSI_MAX_FAILED;
			w->nfailed--;
		}
		w->failed[(w->failed_head + w->nfailed++) % HPSI_MAX_FAILED] = (struct hpsi_failed){ts, status};
	}
	pthread_mutex_unlock(&w->fail_lock);
}

int hpsi_failed_status(struct hps_worker *w, int64_t ts)
{
	pthread_mutex_lock(&w->fail_lock);
	int status = ts <= w->forgot_upto ? HPS_EUNTRACKED : 0;
	/* binary search: kept in ascending ts order */
	size_t lo = 0, hi = w->nfailed;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct hpsi_failed *f = &w->failed[(w->failed_head + mid) % HPSI_MAX_FAILED];
		if (f->ts == ts) {
			status = f->status;
			break;
		}
		if (f->ts < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	pthread_mutex_unlock(&w->fail_lock);
	return status;
}
