/* hps error codes: every public function returns 0 (or a non-negative
 * value such as a timestamp) on success and a negative HPS_E* on failure. */
#ifndef HPS_ERROR_H
#define HPS_ERROR_H

#include "hps/version.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
	HPS_OK = 0,
	HPS_EINVAL = -1,    /* bad argument: lengths, counts, flags */
	HPS_EKEYORDER = -2, /* keys not sorted ascending or duplicated */
	HPS_ENOKEY = -3,    /* a key lies outside every server's key range */
	HPS_ETOOBIG = -4,   /* request larger than the segment allows (HPS_HEAP_MB) */
	HPS_ENOMEM = -5,    /* out of process memory */
	HPS_EEXIST = -6,    /* already exists or runs (the job, this rank, the worker, a checkpoint) */
	HPS_ENOSPC = -7,    /* HPS_SHM_DIR (/dev/shm) lacks room for the segment or heap */
	HPS_ENOJOB = -8,    /* no segment for this job (not started by hps launch?) */
	HPS_EPEERDEAD = -9, /* a peer process died before answering */
	HPS_ETIMEDOUT = -10,/* no answer within HPS_TIMEOUT_MS */
	HPS_ECLOSED = -11,  /* the job or the object is shutting down */
	HPS_ECONFIG = -12,  /* wrong configuration (a message names the setting) */
	HPS_EPROTO = -13,   /* malformed message */
	HPS_ESYS = -14,     /* a system call failed (see errno / the log) */
	HPS_EHANDLER = -15, /* the server's handler rejected the request */
	HPS_EVALLEN = -16,  /* value length differs from the one stored for a key */
	HPS_EUNTRACKED = -17, /* hps_wait: the request's status is no longer kept */
};

/* Names an error code; never returns NULL. */
HPS_API const char *hps_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
