/* The built-in summing store of a server: a sparse open-addressing hash
 * table from uint64 keys to value vectors kept in one pool. A push adds to
 * the stored values (a new key starts at zero); a pull copies them out (an
 * unknown key reads as zeros in fixed-width mode, as length 0 otherwise).
 * A key keeps the length of its first push; a request that disagrees is
 * refused whole (HPS_EVALLEN) before anything is applied. */
#ifndef HPSI_STORE_H
#define HPSI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "hps/server.h"

struct hpsi_store;

struct hpsi_store *hpsi_store_create(void);
void hpsi_store_destroy(struct hpsi_store *st);
/* An hps_handler; arg is the store. */
int hpsi_store_handle(hps_request *req, void *arg);
/* Number of keys held (tests). */
size_t hpsi_store_size(const struct hpsi_store *st);

#endif
