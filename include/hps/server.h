/* hps server side: the request handler interface (ps-lite's request handle). */
#ifndef HPS_SERVER_H
#define HPS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "hps/version.h"

#ifdef __cplusplus
extern "C" {
#endif

struct hps_ctx;

enum hps_req_type { HPS_REQ_PUSH = 1, HPS_REQ_PULL = 2, HPS_REQ_PUSHPULL = 3 };

/* One request as the server sees it, restricted to this server's keys.
 * Pointers are valid only during the handler call. */
typedef struct hps_request {
	int type;               /* enum hps_req_type */
	int sender;             /* rank of the worker */
	int64_t timestamp;      /* the worker's timestamp of the request */
	uint32_t width;         /* values per key, or 0 when lens is set */
	int dtype;              /* type of vals and out: HPS_F32 float, HPS_F64 double
				 * (enum hps_dtype in hps/hps.h; the key range's HPS_DTYPE) */
	size_t nkeys;
	const uint64_t *keys;   /* sorted, unique */
	const uint32_t *lens;   /* values per key in variable-length mode, else NULL */
	const void *vals;       /* pushed values (push, pushpull): nvals of dtype */
	size_t nvals;
	void *out;              /* pull, pushpull: where the answer goes, out_cap of dtype */
	size_t out_cap;         /* values that fit in out */
	uint32_t *out_lens;     /* variable-length pull: values per key to fill */
} hps_request;

/* Handles one request. Returns the values written to out (0 for a push)
 * or a negative HPS_E* code, which the worker's hps_wait returns. */
typedef int (*hps_handler)(hps_request *req, void *arg);

/* Serves requests until every worker has closed (or died) or the job
 * stops. handler NULL selects the built-in summing store: a push adds its
 * values to the stored ones (a new key starts at zero), a pull reads them.
 * Returns 0 on a clean end. */
HPS_API int hps_server_run(struct hps_ctx *ctx, hps_handler handler, void *arg);

#ifdef __cplusplus
}
#endif
#endif
