#include "shm/wake.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t wake_addr(const struct hpsi_seg *s, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	/* abstract: a leading NUL byte, then the name */
	int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "hps-wake.%s.%s", s->hdr->job, s->hdr->host);
	if (n < 0 || (size_t)n >= sizeof a->sun_path - 1)
		n = (int)sizeof a->sun_path - 2;
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int sender = -1;
static pthread_once_t sender_once = PTHREAD_ONCE_INIT;

static void open_sender(void)
{
	sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

void hpsi_node_wake(const struct hpsi_seg *s, uint32_t id)
{
	if (hpsi_node_local(s, id)) {
		hpsi_bell_ring(&hpsi_seg_node(s, id)->bell);
		return;
	}
	struct hpsi_bell *b = &s->hdr->bridge_bell;
	atomic_thread_fence(memory_order_seq_cst); /* pairs with hpsi_wake_sleeping */
	if (!atomic_load_explicit(&b->sleepers, memory_order_relaxed))
		return;
	pthread_once(&sender_once, open_sender);
	struct sockaddr_un a;
	socklen_t len = wake_addr(s, &a);
	char one = 1;
	/* a full queue means a wake-up is already waiting: nothing lost */
	ssize_t rc = sendto(sender, &one, 1, 0, (struct sockaddr *)&a, len);
	(void)rc;
}

int hpsi_wake_bind(const struct hpsi_seg *s)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un a;
	socklen_t len = wake_addr(s, &a);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, len) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void hpsi_wake_sleeping(const struct hpsi_seg *s, int asleep)
{
	atomic_store_explicit(&s->hdr->bridge_bell.sleepers, asleep ? 1u : 0u, memory_order_relaxed);
	if (asleep)
		atomic_thread_fence(memory_order_seq_cst); /* pairs with hpsi_node_wake */
}

void hpsi_wake_drain(int fd)
{
	char buf[64];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}
