/* The built-in store of a server: uint64 keys to values, each followed by
 * its optimizer state. Keys of one length live in cells that hold them
 * with their values inline (cells.h: one table per length, for the first
 * few lengths a store sees), others in a pool of records that never move
 * (table.h). A push runs the updater (default: adds); a pull copies the
 * values out. A key is created on its first push, or on its first
 * fixed-width pull when the initialiser is not zeros, with its initial
 * values; an unknown key otherwise reads as zeros (length 0 in lens
 * mode). A key keeps the length of its first push; a request that
 * disagrees is refused whole (HPS_EVALLEN) before anything is applied. */
#ifndef HPSI_STORE_H
#define HPSI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hps/server.h"
#include "runtime/server/cells.h"
#include "runtime/server/table.h"
#include "runtime/server/updater.h"

struct hpsi_store;

/* u, in: NULL for sum and zeros; dtype: HPSI_WIRE_F32 or HPSI_WIRE_F64. */
struct hpsi_store *hpsi_store_create(const struct hpsi_updater *u, const struct hpsi_init *in, unsigned dtype);
unsigned hpsi_store_dtype(const struct hpsi_store *st);
/* A direct store (HOGWILD mode): keys first .. first+count-1 of `width`
 * f32 values each in the dense array vals (NULL: a private array), set to
 * their initial values. Only stateless updaters (sum, assign, sgd). */
struct hpsi_store *hpsi_store_create_direct(const struct hpsi_updater *u, const struct hpsi_init *in,
					     uint64_t first, uint64_t count, uint32_t width, float *vals);
/* An empty store of the same kind and settings (a checkpoint loads into
 * it; a direct one gets a private array). */
struct hpsi_store *hpsi_store_create_like(const struct hpsi_store *st);
int hpsi_store_is_direct(const struct hpsi_store *st);
/* Copies the values of `loaded` (from create_like) into direct store into. */
int hpsi_store_direct_commit(struct hpsi_store *into, const struct hpsi_store *loaded);
void hpsi_store_destroy(struct hpsi_store *st);
/* An hps_handler; arg is the store. */
int hpsi_store_handle(hps_request *req, void *arg);
/* The updater and initialiser of server `rank` from HPS_UPDATER and
 * HPS_INIT ("spec" for all servers, or "spec;spec;..." one per server). */
int hpsi_server_store_config(int rank, struct hpsi_updater *upd, struct hpsi_init *init);

/* Staleness bound of server `rank` from HPS_STALENESS: a number of clocks,
 * bsp (0), or asp / inf / unset (-1, no bound); "s;s;..." per server. */
int hpsi_server_staleness(int rank, int64_t *out);

/* Visits every key: len values followed by len x state values of
 * optimizer state, in the store's dtype, and its push count (kept by Adam
 * only: 0 under other updaters); a non-zero return from fn stops and is
 * returned. */
typedef int (*hpsi_store_visit)(uint64_t key, uint32_t len, uint32_t steps, const float *vals, void *arg);
int hpsi_store_foreach(const struct hpsi_store *st, hpsi_store_visit fn, void *arg);
/* Adds an absent key with its values and state (loading a checkpoint). */
int hpsi_store_put(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, const float *vals);
/* A key's record as raw bytes (values then optimizer state, len x the
 * store's bytes per value), for copying a store to a replacement server
 * (runtime/server/recover.c). */
/* Where a walk of a store stands: which table (the cells of each length,
 * then the pool) and where in it. {0} is the start. */
struct hpsi_store_cursor {
	uint32_t part; /* cells[part], or STORE_CELLS: the pool (store.c) */
	uint64_t at;   /* cells: the least hash still to visit; pool: an offset */
	uint64_t walk; /* which walk (0: a new one), for the store's block of hashes */
};
struct hpsi_store_item {
	uint64_t key;
	uint32_t len, steps;
	const unsigned char *bytes;
	size_t nbytes;
	struct hpsi_store_cursor at; /* a cursor that finds this very record again */
	int whole;                   /* in cells that go whole to another server (hpsi_store_share) */
};
/* The record at or after *cursor, moving *cursor past it; 0, or 1 at the
 * end. The cells are walked in the order of their keys' hashes, the pool
 * in the order keys were added, so a cursor stays valid while the store
 * serves: cells move (they grow, frequent keys move home), a key's hash
 * does not. Every key held at the start and not moved to another table
 * (none is) is visited once; a key added meanwhile may be visited or not
 * (the copy's caller sends pushed keys again, and a key only pulled gets
 * the same initial values wherever it is added). A walk stopped within a
 * record resumes at it.at: a key added since may come before it. Not for
 * direct stores. */
int hpsi_store_next(struct hpsi_store *st, struct hpsi_store_cursor *cursor, struct hpsi_store_item *it);
/* The record of key; 0, or HPS_ENOKEY when absent. */
int hpsi_store_item(const struct hpsi_store *st, uint64_t key, struct hpsi_store_item *it);
/* Writes n bytes at byte off of key's record, creating it with len values
 * (zeros) when absent; steps is set when off is 0. HPS_EVALLEN when the
 * key holds another length or the bytes fall outside, HPS_ENOMEM. */
int hpsi_store_write(struct hpsi_store *st, uint64_t key, uint32_t len, uint32_t steps, size_t off,
		     const void *bytes, size_t n);

/* A store whose tables another server may take whole (a job whose key
 * ranges move, runtime/server/move.c): every cells table and the pool
 * live in memfds (hpsi_cells_share, hpsi_table_share), stores made like
 * it (hpsi_store_create_like) share too. A walk (hpsi_store_next) then
 * visits nothing, every key is `whole`, and a copy's shape
 * (hpsi_store_shape) names the cells' lengths with no keys: the tables
 * go whole (hpsi_store_whole_pool, hpsi_store_whole; hpsi_store_adopt_pool,
 * then hpsi_store_adopt), not by records. Call it on a store that holds
 * nothing yet: 0, or HPS_ENOMEM (the store does not share). */
int hpsi_store_share(struct hpsi_store *st);
/* An empty store of st's kind that holds no memfd (no fd) while it
 * stands for a range this server does not hold (handed over, or not
 * copied here yet), where one that shares would hold two: stores made
 * like it (hpsi_store_create_like, a copy's BEGIN) share when st does.
 * NULL without memory. */
struct hpsi_store *hpsi_store_create_idle(const struct hpsi_store *st);
/* Makes the empty store st such a stand-in: it does not share, stores
 * made like it do. */
void hpsi_store_share_later(struct hpsi_store *st);
/* 1 when st shares (hpsi_store_share). */
int hpsi_store_shares(const struct hpsi_store *st);
/* A store that shares, walked and shaped as one that does not from here
 * (hpsi_store_next visits every record, none is `whole`, nothing goes
 * whole): a move whose target could not map the tables sends records
 * instead (runtime/server/recover.c). Its tables still live in memfds. */
void hpsi_store_by_records(struct hpsi_store *st);
/* 1 when a copy of st sends its tables whole (it shares and is not
 * walked by records): pushed keys need no tracking during the copy. */
int hpsi_store_goes_whole(const struct hpsi_store *st);
/* The pool of a store that shares, when it holds keys: 1 and its shape. */
int hpsi_store_whole_pool(const struct hpsi_store *st, struct hpsi_table_shape *out);
/* Takes the pool q of process pid as this store's pool, replacing it:
 * before the cells (hpsi_store_adopt may add keys to the pool). 0, or an
 * error of hpsi_table_adopt. */
int hpsi_store_adopt_pool(struct hpsi_store *st, int pid, const struct hpsi_table_shape *q);
/* The cells a store that shares hands over whole: at most max shapes
 * (cells.h), those that hold keys; returns how many. */
size_t hpsi_store_whole(const struct hpsi_store *st, struct hpsi_cells_shape *out, size_t max);
/* Takes the cells q of process pid as this store's cells of q->len (they
 * replace what those cells held, which came from the same source). When
 * this store has no shared cells of that length to spare (it made its
 * cells for other lengths first), the keys are copied in one by one
 * instead. 0, or an error of hpsi_cells_adopt, or HPS_ENOMEM. */
int hpsi_store_adopt(struct hpsi_store *st, int pid, const struct hpsi_cells_shape *q);

/* A copy's sizes: the lengths of the store's cells and how many keys each
 * holds (at most max pairs; returns how many). The destination of a copy
 * takes room for them first (hpsi_store_expect): its cells then do not
 * grow while the keys come, where growing as they came would rebuild the
 * whole array at each step (1.15 times), with the keys so far, all of low
 * hashes (a copy comes in hash order), piled into the low homes. */
size_t hpsi_store_shape(const struct hpsi_store *st, uint32_t *lens, uint64_t *counts, size_t max);
/* Room in cells for `keys` more keys of len values, before they come: 0,
 * or HPS_ENOMEM with nothing changed. Lengths that go to the pool are
 * ignored. */
int hpsi_store_expect(struct hpsi_store *st, uint32_t len, uint64_t keys);
/* The same for the pool (table.h): its keys and the bytes of their
 * records (an upper bound), for the BEGIN of a copy by records; and the
 * destination's room for them (hpsi_table_expect: the slots, and windows
 * mapped in the background). */
void hpsi_store_pool_shape(const struct hpsi_store *st, uint64_t *keys, uint64_t *bytes);
void hpsi_store_expect_pool(struct hpsi_store *st, uint64_t keys, uint64_t bytes);

const struct hpsi_updater *hpsi_store_updater(const struct hpsi_store *st);
const struct hpsi_init *hpsi_store_init(const struct hpsi_store *st);

/* Number of keys held (tests). */
size_t hpsi_store_size(const struct hpsi_store *st);
/* Bytes the store holds: values, optimizer state and the table. */
size_t hpsi_store_bytes(const struct hpsi_store *st);

#endif
