/* hps: a parameter server over shared memory.
 *
 * A job has S server processes, which own the keys, and W worker processes,
 * which push values (gradients) to keys and pull them back. `hps launch`
 * starts a job on one host; each process calls hps_init() and then either
 * hps_server_run() or hps_worker_open().
 *
 *   hps_ctx *ctx;     hps_init(&ctx, &argc, argv);
 *   hps_worker *w;    hps_worker_open(ctx, 1, &w);      // 1 float per key
 *   uint64_t keys[] = {1, 3, 5};  float g[] = {.1f, .2f, .3f}, p[3];
 *   hps_wait(w, hps_push(w, keys, 3, g, NULL));
 *   hps_wait(w, hps_pull(w, keys, 3, p, NULL));
 *   hps_worker_close(w);  hps_finalize(ctx);
 *
 * Keys of one request are uint64, sorted ascending and unique. Values are
 * f32 (or f64, see hps_opts.dtype): `width` values per key (fixed width),
 * or per-key lengths (`lens`, as in ps-lite). All functions return 0 / a non-negative value or a
 * negative HPS_E* code (see hps/error.h).
 *
 * Released handles: a call through a ctx after hps_finalize or a worker
 * after hps_worker_close (closing or finalizing twice included) returns
 * HPS_ECLOSED, and NULL gives HPS_EINVAL. The library keeps the last few
 * released handles as small tombstones to tell this (runtime/client/
 * handle.h); a handle released long before (more than 8 releases ago),
 * a pointer hps never returned, or releasing a handle while another
 * thread still uses it is undefined, as any use of freed memory in C.
 * A process that ends with exit status 0 without hps_finalize counts as
 * closed (an on_exit handler marks it), not as died; a non-zero status or
 * a signal counts as died.
 */
#ifndef HPS_HPS_H
#define HPS_HPS_H

#include <stddef.h>
#include <stdint.h>

#include "hps/error.h"
#include "hps/server.h"
#include "hps/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hps_ctx hps_ctx;
typedef struct hps_worker hps_worker;

enum hps_role { HPS_ROLE_WORKER = 0, HPS_ROLE_SERVER = 1 };

/* Joins the job described by the environment (HPS_ROLE, HPS_RANK,
 * HPS_JOB_ID, ...; ps-lite's DMLC_* names are accepted too). Arguments
 * `--hps-name=value` override HPS_NAME and are removed from argv.
 * argc/argv may be NULL. A worker with HPS_JOIN=1 joins a running job
 * launched with room for it (hps launch --max-workers): it takes the
 * lowest free rank (HPS_RANK is ignored; hps_rank tells it) and starts
 * at the slowest member's clock, which hps_resume_clock returns; its
 * first hps_barrier meets the first barrier the members have not
 * completed. HPS_EEXIST when no rank is free. */
HPS_API int hps_init(hps_ctx **ctx, int *argc, char **argv);
/* Leaves the job; close the worker first. */
HPS_API int hps_finalize(hps_ctx *ctx);

/* Getters return a negative HPS_E* for a NULL or finalized ctx. */
HPS_API int hps_role(const hps_ctx *ctx);
HPS_API int hps_rank(const hps_ctx *ctx);
/* The worker ranks given out so far: the workers launched plus those
 * that joined (HPS_JOIN=1 or `hps scale --workers`), counting those that
 * closed or died since, so that ranks are 0 .. hps_num_workers - 1. It
 * grows when a worker joins; a job launched without --max-workers keeps
 * the launch's count. */
HPS_API int hps_num_workers(const hps_ctx *ctx);
/* The server processes serving the job's key ranges now: -s, until
 * `hps scale --servers` (a job launched with --max-servers) moves ranges
 * to more or fewer of them; it changes as each range is handed over. */
HPS_API int hps_num_servers(const hps_ctx *ctx);
/* A number that grows whenever the job's workers or servers change: a
 * worker joins (it moves by 2: once when the rank is taken, once when the
 * worker runs), closes or dies; a key range moves to another server
 * (hps scale --servers; once before hps_num_servers can change, once
 * after). A program notices a change by comparing it with the value
 * it saw last (then reads hps_num_workers, hps_num_servers). One that
 * sees a count change finds this moved past its value before the change
 * began, and one that sees a hand-over's second move finds the new count. */
HPS_API int hps_membership_epoch(const hps_ctx *ctx);

/* Waits until every worker of the job that has not closed has called
 * hps_barrier() as often as this one (a worker's n-th call meets the
 * others' n-th). A worker that closes (hps_worker_close or hps_finalize)
 * is no longer waited for, even by a barrier others already wait in; its
 * own later calls return HPS_ECLOSED. Every barrier completes (0) or fails
 * for all its workers alike, on every host:
 *   HPS_EPEERDEAD  a worker died before the barrier completed;
 *   HPS_ETIMEDOUT  a worker waited HPS_TIMEOUT_MS (from its own call) and
 *                  not all had come (a late one gets it too, at once);
 *   HPS_ECLOSED    the job is shutting down.
 * A failure is final, as in torch.distributed after a lost rank: every
 * later barrier of the job fails at once with the same code. */
HPS_API int hps_barrier(hps_ctx *ctx);

/* A worker sends requests; `width` is the floats per key of requests that
 * pass no lens. One worker per process; thread-safe. A second open while
 * one is open fails with HPS_EEXIST, an open after the worker closed with
 * HPS_ECLOSED (the servers no longer serve this process). */
HPS_API int hps_worker_open(hps_ctx *ctx, uint32_t width, hps_worker **w);
/* Waits for outstanding requests, then tells the servers this worker is
 * done. A server exits once every worker has closed or died. */
HPS_API int hps_worker_close(hps_worker *w);

/* Called once per request, from whichever thread of the worker drives
 * progress (hps_wait or the progress thread), with the request's status.
 * A callback may issue new requests but must not wait for them. */
typedef void (*hps_callback)(hps_worker *w, int64_t ts, int status, void *arg);

/* Optional per-request settings; NULL means fixed width, no callback. */
/* The caller's value type (hps_opts.dtype); it must match what the key
 * range stores (HPS_DTYPE). f16/bf16 compression on the rings
 * (HPS_COMPRESS) is invisible here: callers pass f32. */
enum hps_dtype { HPS_F32 = 0, HPS_F64 = 1 };

typedef struct hps_opts {
	/* Values per key for this request instead of the worker's width. */
	uint32_t width;
	/* HPS_F32 (default: vals are float) or HPS_F64 (vals are double). */
	int dtype;
	/* Variable-length values: floats of each key (push and push-then-pull).
	 * Push values are then sum(lens) floats. */
	const uint32_t *lens;
	/* Pull in variable-length mode: receives the floats of each key; vals
	 * must hold vals_cap floats. */
	uint32_t *out_lens;
	size_t vals_cap;
	hps_callback cb;
	void *cb_arg;
} hps_opts;

/* Each returns the request's timestamp (>= 0) or a negative error. The
 * buffers must stay valid and unchanged until the request completes.
 * Requests run concurrently; those from one thread to one server are
 * applied in order. A request whose heap buffers cannot be had because the
 * shared-memory file system (HPS_SHM_DIR) is full fails whole with
 * HPS_ENOSPC before any of it is sent. */
HPS_API int64_t hps_push(hps_worker *w, const uint64_t *keys, size_t nkeys, const void *vals,
			 const hps_opts *opts);
HPS_API int64_t hps_pull(hps_worker *w, const uint64_t *keys, size_t nkeys, void *vals,
			 const hps_opts *opts);
/* Push, then pull the same keys after the push is applied, in one request. */
HPS_API int64_t hps_pushpull(hps_worker *w, const uint64_t *keys, size_t nkeys,
			     const void *push_vals, void *pull_vals, const hps_opts *opts);

/* Waits for request ts to complete and returns its status. Passing a
 * negative ts returns it, so hps_wait(w, hps_push(...)) reports both kinds
 * of error. A dead server fails the wait with HPS_EPEERDEAD, no answer
 * within HPS_TIMEOUT_MS with HPS_ETIMEDOUT. A failure is never reported
 * as success: statuses of the last 512 requests are kept, and of older
 * ones their failures, up to 4096 of them; past that the oldest failures
 * are forgotten and waits on requests up to them return HPS_EUNTRACKED. */
HPS_API int hps_wait(hps_worker *w, int64_t ts);

/* Ends this worker's iteration: its clock (0 at open) advances by one and
 * every server learns it. A pull issued at clock c from a key range with
 * staleness s (HPS_STALENESS) is answered only once it includes every
 * update pushed by every live worker at clocks below c - s; the server
 * holds it back until then. Workers that closed or died no longer count. */
HPS_API int hps_clock(hps_worker *w);

/* Restarted workers (`hps launch --restart-workers N`): a worker that
 * died (killed by a signal, or exited with a non-zero status) is started
 * again with the same rank and HPS_RESTART=k (its k-th restart of the job)
 * in its environment. Its hps_worker_open waits until the servers have
 * consumed what its predecessor had sent, and its clock starts where the
 * predecessor's stood: hps_resume_clock tells the program that clock (0 for
 * a worker that is no restart), from which it must run again. Requests are
 * numbered on from where that clock's requests began, so a program that
 * sends the same requests from that clock as before (deterministic from it)
 * has each push applied exactly once: the servers skip the pushes they
 * applied already. A program that sends other pushes has those of that
 * clock that reached a server before the death applied, and the rest of
 * its new ones. Barriers are replayed likewise: the restart's calls from
 * that clock on that its predecessor had made do not arrive again (they
 * return once those barriers completed). A worker that joined (HPS_JOIN)
 * gets the clock it starts at. HPS_EINVAL for a NULL clock or a
 * server's ctx. */
HPS_API int hps_resume_clock(hps_ctx *ctx, uint32_t *clock);

/* Checkpoints (any process of the job may call them; one at a time).
 * hps_save writes every server's table, with optimizer state and push
 * counts, and the workers' clocks into directory dir (its parent must
 * exist; an older checkpoint there is replaced only once the new one is
 * complete). Each server saves between two requests: wait for your pushes
 * and pass a barrier first for a consistent snapshot.
 * hps_load replaces every server's table with the checkpoint in dir, which
 * may come from a job with another number of servers (the updater must be
 * the same). Returns the smallest worker clock saved (to resume from), or a
 * negative error, and leaves the tables as they were: a damaged or
 * unfinished checkpoint is refused with HPS_EPROTO, one written with
 * another updater or value type with HPS_ECONFIG, a missing directory with
 * HPS_EINVAL; the caller's log names the reason. Servers running a user
 * handler refuse both (HPS_EINVAL). */
HPS_API int hps_save(hps_ctx *ctx, const char *dir);
HPS_API int hps_load(hps_ctx *ctx, const char *dir);

/* HOGWILD direct mode. A server whose key range is dense (HPS_DIRECT=W
 * with HPS_KEY_RANGES; only f32, and sum/assign/sgd updaters) keeps it as
 * one array of W floats per key in the job's shared memory. Every process
 * of the host may map it and read or update values in place, without a
 * request or a lock, while pulls, pushes and checkpoints through the server
 * keep working on the same array.
 * Memory-ordering contract: none. Concurrent writers may lose each other's
 * updates and readers may see a mix of old and new floats (each aligned
 * float is read and written whole); that is the HOGWILD bargain
 * (Recht et al. 2011), fine for sparse SGD. Use requests when every update
 * must count. */
typedef struct hps_direct {
	uint64_t first, count; /* the keys first .. first + count - 1 */
	uint32_t width;        /* floats per key */
	float *vals;           /* key k's floats: vals[(k - first) * width ...] */
} hps_direct;

/* Maps the direct range holding `key`, waiting (up to HPS_TIMEOUT_MS) until
 * its server has set it up. HPS_ENOKEY: no server owns key; HPS_EINVAL: its
 * range is not direct; HPS_EPEERDEAD or HPS_ETIMEDOUT: its server died or
 * never started. The mapping lives as long as ctx. */
HPS_API int hps_direct_map(hps_ctx *ctx, uint64_t key, hps_direct *out);

/* Per-worker copies of a direct range's keys, for HOGWILD writers that
 * share frequent rows (a bias, common features, popular items, a small
 * dense model): updating one shared row from several cores moves its cache
 * lines between them at nearly every update. With a cache the worker
 * updates its own copy of each key it names and adds what it changed since
 * the key's last merge into the shared array every every[i] calls of
 * hps_direct_cache_step (rounded up to a power of two; 0: only in
 * hps_direct_cache_merge), reloading the copy from the sum. Other workers
 * thus see its changes to key i up to every[i] updates late (HOGWILD++,
 * Zhang, Hsieh and Akella 2016, merges a whole replica at once; here each
 * key has its own period: short for frequent keys, whose staleness costs
 * accuracy, long for rare ones, whose merges would cost more time than they
 * save). No lock: the adds are plain read-add-writes, so a merge may lose a
 * float that another process writes in the same instant, as any HOGWILD
 * write may. Keys not named stay shared, updated in place as before.
 *
 * keys: ascending, inside the range d (HPS_EKEYORDER, HPS_ENOKEY); the
 * range may hold up to 2^31 keys (HPS_EINVAL beyond). The copies cost 8
 * bytes per float of the named keys. A handle names where key k's row is
 * for this worker (hps_direct_cache_handle, a binary search: look handles up
 * once, say when the data is loaded); hps_direct_row turns it into the
 * row's address in the hot loop, with no table in between. One thread uses
 * a cache; hps_direct_cache_merge merges every key now (before others must
 * see every change, for example before a barrier); hps_direct_cache_close
 * merges a last time and frees it. */
typedef struct hps_direct_cache hps_direct_cache;

/* Where handles point: base[0] the shared array, base[1] the copies. */
typedef struct hps_direct_rows {
	float *base[2];
	uint32_t width;
} hps_direct_rows;

/* Bit 31 of a handle picks the base, the rest is the row within it: with
 * base[0] = d.vals and no copies, key k - d.first is its own handle. */
static inline float *hps_direct_row(const hps_direct_rows *r, uint32_t handle)
{
	return r->base[handle >> 31] + (size_t)(handle & 0x7fffffffu) * r->width;
}

HPS_API int hps_direct_cache_open(const hps_direct *d, const uint64_t *keys, const uint32_t *every, size_t nkeys,
				  hps_direct_cache **out);
/* HPS_ENOKEY for a key outside the range. */
HPS_API int hps_direct_cache_handle(const hps_direct_cache *c, uint64_t key, uint32_t *handle);
HPS_API hps_direct_rows hps_direct_cache_rows(const hps_direct_cache *c);
HPS_API void hps_direct_cache_step(hps_direct_cache *c);
HPS_API void hps_direct_cache_merge(hps_direct_cache *c);
HPS_API void hps_direct_cache_close(hps_direct_cache *c);

/* Zero-copy buffers in the job's shared memory. Values passed in them are
 * read or written by the server in place when one server owns every key
 * of the request (always with one server or for a single key). NULL when
 * the worker's heap (HPS_HEAP_MB) is used up or HPS_SHM_DIR is full; the
 * pages are reserved when handed out, so writing them never raises SIGBUS.
 * hps_free returns 0 (also for NULL), or HPS_EINVAL for a pointer that is
 * not a live buffer of this worker's hps_alloc (freed already, from
 * elsewhere, or inside a buffer); the shared heap stays intact. */
HPS_API void *hps_alloc(hps_worker *w, size_t bytes);
HPS_API int hps_free(hps_worker *w, void *p);

#ifdef __cplusplus
}
#endif
#endif
