#include "runtime/server/memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hps/error.h"
#include "runtime/common/log.h"

/* The name of every store memfd (hpsi_memfd_open checks it). */
#define STORE_NAME "hps-store"

/* Out of fds (EMFILE: this process's RLIMIT_NOFILE; ENFILE: the
 * system's): said once per process, with the limit, since the caller's
 * own error (a store that cannot grow) would read as out of memory. */
static _Atomic int said;

static int out_of_fds(void)
{
	int e = errno;
	struct rlimit rl = {0, 0};
	if (!atomic_exchange_explicit(&said, 1, memory_order_relaxed)) {
		getrlimit(RLIMIT_NOFILE, &rl);
		if (e == EMFILE)
			hpsi_error("server tables: out of file descriptors (EMFILE: the open-file limit, ulimit -n, is %llu; "
				   "a job with --max-servers keeps 2 to 6 per key range a server holds); raise ulimit -n",
				   (unsigned long long)rl.rlim_cur);
		else
			hpsi_error("server tables: the system is out of file descriptors (ENFILE)");
	}
	return HPS_ESYS;
}

int hpsi_memfd_ran_out(void)
{
	return atomic_load_explicit(&said, memory_order_relaxed);
}

void hpsi_memfd_raise_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		hpsi_info("server tables: open-file limit raised from %llu to %llu (the hard limit)", (unsigned long long)was,
			  (unsigned long long)rl.rlim_max);
}

int hpsi_memfd_new(size_t bytes, void **at, int *fd)
{
	int f = memfd_create(STORE_NAME, MFD_CLOEXEC);
	if (f < 0)
		return errno == EMFILE || errno == ENFILE ? out_of_fds() : HPS_ENOMEM;
	/* ftruncate: zeros, allocated as they are touched, as fresh
	 * anonymous pages are */
	void *p = NULL;
	if (ftruncate(f, (off_t)bytes) || (at && !(p = hpsi_memfd_map(f, 0, bytes)))) {
		close(f);
		return HPS_ENOMEM;
	}
	if (at)
		*at = p;
	*fd = f;
	return 0;
}

int hpsi_memfd_grow(int fd, size_t bytes)
{
	return ftruncate(fd, (off_t)bytes) ? HPS_ENOMEM : 0;
}

void *hpsi_memfd_map(int fd, size_t off, size_t bytes)
{
	void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)off);
	return p == MAP_FAILED ? NULL : p;
}

/* f is a memfd made by hpsi_memfd_new: a memfd (F_GET_SEALS works only
 * on memfds) without sealing (memfd_create without MFD_ALLOW_SEALING
 * seals F_SEAL_SEAL at once, and nothing else), named STORE_NAME. An fd
 * number that a source reused for another file (its store closed, a
 * damaged message) is not mapped as a table. */
static int is_store_memfd(int f)
{
	char self[64], name[128];
	if (fcntl(f, F_GET_SEALS) != F_SEAL_SEAL)
		return 0;
	snprintf(self, sizeof self, "/proc/self/fd/%d", f);
	ssize_t n = readlink(self, name, sizeof name - 1);
	if (n < 0)
		return 0;
	name[n] = 0;
	/* "/memfd:NAME (deleted)" */
	return strncmp(name, "/memfd:" STORE_NAME " ", strlen("/memfd:" STORE_NAME " ")) == 0;
}

int hpsi_memfd_open(int pid, int fd, size_t bytes, int *out)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
	/* the same file, not a copy: its pages are shared */
	int f = fd < 0 ? -1 : open(path, O_RDWR | O_CLOEXEC);
	if (f < 0)
		return HPS_ESYS;
	struct stat sb;
	if (fstat(f, &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size < bytes || !is_store_memfd(f)) {
		close(f);
		return HPS_EINVAL;
	}
	*out = f;
	return 0;
}

void hpsi_memfd_free(void *at, size_t bytes, int fd)
{
	if (at)
		munmap(at, bytes ? bytes : 1);
	if (fd >= 0)
		close(fd);
}
