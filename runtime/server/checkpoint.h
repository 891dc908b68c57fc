/* Checkpoints of the servers' tables.
 *
 * A checkpoint is a directory: one file per server (server-R.hpsckpt: a
 * versioned header with a checksum of the body, then every key with its
 * values, optimizer state and push count) and a MANIFEST listing them,
 * written last. Files are written under temporary names and renamed; the
 * whole directory is built as DIR.partial and renamed to DIR once complete,
 * so a crash never leaves a checkpoint that loads half-written. Loading
 * reads every file and keeps the keys this server owns now, so the number
 * of servers may differ from the saving job's. */
#ifndef HPSI_CHECKPOINT_H
#define HPSI_CHECKPOINT_H

#include <stdint.h>

#include "runtime/server/store.h"
#include "shm/segment.h"

/* A failure's reason, one line naming the file or setting at fault. */
#define HPSI_CKPT_WHY 256

/* Asks every server of the segment to save or load (op) and waits, up to
 * timeout_ns; for SAVE also writes the MANIFEST and renames the directory
 * into place. Returns 0 (SAVE), the smallest saved clock (LOAD), or a
 * negative error whose reason (its own, or the failing server's) is in
 * why: HPS_EINVAL for a directory that is missing or not one, HPS_EPROTO
 * for a damaged or unfinished checkpoint, HPS_ECONFIG for one written
 * with another updater or value type. */
int hpsi_checkpoint_run(struct hpsi_seg *seg, int op, const char *dir, int64_t timeout_ns, char *why);

/* Server side; each fills why on failure. */
int hpsi_store_save(struct hpsi_store *st, const char *dir, uint32_t rank, uint32_t nservers, uint32_t clock,
		    char *why);
/* Fills `into` (an empty store with the job's updater) with the keys of
 * every file in dir that server `me` owns under the segment's routing. */
int hpsi_store_load(struct hpsi_store *into, const char *dir, const struct hpsi_seg *seg, uint32_t me,
		    uint32_t *clock, char *why);
/* Reports this server's part as done: its status, reason and (LOAD) the
 * smallest clock it read. */
void hpsi_checkpoint_served(struct hpsi_seg *seg, int rc, const char *why, uint32_t clock);

#endif
