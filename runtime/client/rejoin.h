/* A worker restarted by `hps launch --restart-workers` (same rank): it
 * takes over its rank's clock, rings and heap slice, and replays from the
 * clock its predecessor had reached (design: docs/ARCHITECTURE.md,
 * "Restarted workers"). */
#ifndef HPSI_REJOIN_H
#define HPSI_REJOIN_H

struct hps_ctx;
struct hps_worker;

/* In hps_init, before the node is claimed ALIVE over RESTARTING: reads the
 * predecessor's resume point into ctx: its clock, the timestamp its
 * requests of that clock began at, and the barriers it arrived at since. */
void hpsi_rejoin_claim(struct hps_ctx *c);

/* In hps_worker_open of a restarted worker, with the rings attached and
 * before the heap is built: waits (up to HPS_TIMEOUT_MS) until the servers
 * consumed every request the predecessor published, and with replicas
 * until the backups consumed what the primaries forwarded of them (they
 * read pushes' bodies in the heap slice), dropping the answers meant for
 * it; then nothing reads or writes its heap slice any more.
 * 0, or HPS_ETIMEDOUT. */
int hpsi_rejoin_drain(struct hps_worker *w);

#endif
