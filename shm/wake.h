/* Waking a bridge. A bridge sleeps in zmq_poll, which cannot wait on a
 * futex, so a process that publishes into a ring whose far end is the
 * bridge wakes it with a datagram on a socket the bridge polls: an
 * abstract-namespace UNIX socket named after the job and host (nothing in
 * the file system to clean up; it lives in the network namespace the
 * host's processes share).
 *
 * Ordering (a Dekker pair on hdr->bridge_bell.sleepers, both sides seq_cst):
 *  bridge:   sleepers = 1; fence; re-check its rings; poll
 *  producer: publish; fence; if sleepers: send a datagram
 * Either the bridge sees the record or the producer sees it asleep. */
#ifndef HPSI_WAKE_H
#define HPSI_WAKE_H

#include "shm/segment.h"

/* Rings the bell of node id: a futex for a local node, the bridge's
 * datagram for a remote one. */
void hpsi_node_wake(const struct hpsi_seg *s, uint32_t id);

/* Bridge side: binds the wake socket (non-blocking); returns its fd or -1. */
int hpsi_wake_bind(const struct hpsi_seg *s);
/* Bridge side: about to sleep (1) or awake again (0). */
void hpsi_wake_sleeping(const struct hpsi_seg *s, int asleep);
/* Bridge side: reads away pending wake datagrams. */
void hpsi_wake_drain(int fd);

#endif
