/* The main table of a server's store: every key whose values have the
 * table's one length, in fixed-size cells that hold the key with its
 * values inline, so that looking up a key absent from the cache costs one
 * miss (its cell, one or two lines), not two (a slot, then a record
 * elsewhere: table.h, which keeps the keys of other lengths).
 *
 * A cell: the key's hash (8 bytes, see below), its push count (4 bytes,
 * only where the updater reads it: Adam), then its values and their
 * optimizer state, in the store's dtype; a cell of hash 0 is empty.
 *
 * Linear probing: a key's home is hash * cap / 2^64 and it sits in the
 * first cell from there that was free when it came, so adding a key moves
 * no other. Which key of a run sits nearest its home matters: a lookup
 * reads every cell from the home to the key's, and in a table far larger
 * than the cache the few keys most requests carry (embedding tables are
 * skewed) are the ones worth keeping home. The table learns it: after a
 * request, each key of it found past its home trades places with the cell
 * before it (hpsi_cells_promote; any two cells between a key's home and
 * its cell may swap, both stay reachable), so a frequent key walks home
 * within a few requests and stays there. Growing keeps the order of each
 * run (cells are re-added in the order of the old array).
 *
 * The hash is a bijection of the key (hpsi_cells_hash, hpsi_cells_key),
 * so a cell stores the hash alone and the key is computed back for a
 * checkpoint; the one key whose hash is 0 cannot have a cell (the store
 * keeps it in table.h). The capacity is not a power of two (the home is a
 * multiply, not a mask): a large table grows by HPSI_CELLS_GROW when
 * more than HPSI_CELLS_LOAD of it is used, which keeps its load between 70
 * and 80%; cells past the capacity (the slack) hold the end of the last run,
 * so no run wraps around. */
#ifndef HPSI_CELLS_H
#define HPSI_CELLS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Cells larger than this go to table.h: probing a run of large cells
 * reads more than the pool's slot and record would. */
#define HPSI_CELL_MAX 512
/* Load and growth factor, in 1/1024 (0.8 and 1.15): cells of a width 8
 * f32 key (40 bytes) then take 50 to 57.5 bytes per key. Cells smaller
 * than HPSI_CELLS_SMALL in all (in the last-level cache: no DRAM miss to
 * save, at most 8 MiB of memory to spend) stay at most a quarter full and
 * double, so that most keys sit at their home and a lookup's loop runs
 * once: at 80% load the runs of a table that lives in L2 and L3 cost more
 * than the rest of the lookup (SpamAssassin's table of 92 000 keys: 30%
 * more updates/s with 8 MiB here than with 1 MiB, README). */
#define HPSI_CELLS_LOAD 819
#define HPSI_CELLS_GROW 1178
#define HPSI_CELLS_SMALL ((size_t)8 << 20)

struct hpsi_cells {
	unsigned char *base; /* ncells cells of csz bytes */
	size_t cap;          /* homes are 0 .. cap - 1 */
	size_t ncells;       /* cap and the slack */
	size_t tail;         /* one past the last cell in use */
	size_t count;        /* keys held */
	uint32_t len;        /* values of every key (0: not chosen yet) */
	uint32_t csz;        /* bytes of a cell: a multiple of 4 (f32) or 8 (f64) */
	uint32_t hdr;        /* bytes before the values: 8, 12 or 16 */
	uint32_t vbytes;     /* bytes of one value and its optimizer state */
	uint32_t esz;        /* bytes of one value */
	int steps;           /* cells keep a push count (4 bytes before the values) */
	int flags;           /* mallocx flags: the server's NUMA-local arena */
	int share;           /* the array lives in a memfd another server may map (hpsi_cells_adopt) */
	int fd;              /* with share: the array's memfd once it has one (else -1) */
};

/* A bijection of 64-bit keys: xor a constant (so that key 0 has a
 * non-zero hash), fold the high half into the low, one odd multiply.
 * The top bits are the home; sorted, strided or random keys all spread. */
#define HPSI_CELLS_SALT 0x5bd1e9955bd1e995ull
#define HPSI_CELLS_MUL 0x9e3779b97f4a7c15ull
#define HPSI_CELLS_UNMUL 0xf1de83e19937733dull /* HPSI_CELLS_MUL^-1 mod 2^64 */

static inline uint64_t hpsi_cells_hash(uint64_t key)
{
	key ^= HPSI_CELLS_SALT;
	return (key ^ (key >> 32)) * HPSI_CELLS_MUL;
}

static inline uint64_t hpsi_cells_key(uint64_t h)
{
	uint64_t x = h * HPSI_CELLS_UNMUL;
	return (x ^ (x >> 32)) ^ HPSI_CELLS_SALT;
}

static inline unsigned char *hpsi_cells_home(const struct hpsi_cells *t, uint64_t h)
{
	return t->base + (size_t)(((unsigned __int128)h * t->cap) >> 64) * t->csz;
}

static inline uint64_t hpsi_cells_at(const unsigned char *c)
{
	uint64_t h;
	memcpy(&h, c, 8); /* f32 cells are 4-byte aligned */
	return h;
}

/* From the home cell of the key of hash h (h != 0): its cell, or when
 * absent the free cell that ends its run (where it would be added now);
 * hpsi_cells_at tells which. */
static inline unsigned char *hpsi_cells_scan(const struct hpsi_cells *t, unsigned char *home, uint64_t h)
{
	unsigned char *c = home;
	for (uint64_t x; (x = hpsi_cells_at(c)) != h && x; c += t->csz)
		;
	return c;
}

/* The cell of the key of hash h (h != 0), or NULL when absent. */
static inline unsigned char *hpsi_cells_find(const struct hpsi_cells *t, uint64_t h)
{
	if (!t->count)
		return NULL;
	unsigned char *c = hpsi_cells_scan(t, hpsi_cells_home(t, h), h);
	return hpsi_cells_at(c) == h ? c : NULL;
}

static inline void *hpsi_cells_vals(const struct hpsi_cells *t, unsigned char *c)
{
	return c + t->hdr;
}

/* Asks for `bytes` from cell c (a key's home) on, to be read soon: its
 * cell, or the run a lookup of a new key reads to its end. A read
 * prefetch also for a push: x86-64 without -mprfchw compiles a write
 * prefetch to nothing, and a line read by one core alone arrives writable
 * anyway. Always inlined: GCC drops calls to a function whose only effect
 * is a prefetch (it finds it "const"). */
__attribute__((always_inline)) static inline void hpsi_cells_prefetch(const unsigned char *c, size_t bytes)
{
	for (size_t o = 0; o < bytes; o += 64)
		__builtin_prefetch(c + o);
	__builtin_prefetch(c + bytes - 1);
}

/* Bytes of a cell for len values, or 0 when too large for a cell. */
size_t hpsi_cells_bytes_for(const struct hpsi_cells *t, uint32_t len);

/* esz: bytes of a value (4 or 8); state: optimizer values per value;
 * steps: keep a push count per key. No memory until the first reserve. */
void hpsi_cells_init(struct hpsi_cells *t, int flags, uint32_t esz, uint32_t state, int steps);
void hpsi_cells_free(struct hpsi_cells *t);
/* Chooses the length of every key while the table is empty; HPS_EINVAL
 * when its cell would be larger than HPSI_CELL_MAX. */
int hpsi_cells_set_len(struct hpsi_cells *t, uint32_t len);

/* Room for `keys` more keys, so that that many hpsi_cells_add cannot
 * fail; 1 when the cells grew (every cell moved), 0 when they had room. */
int hpsi_cells_reserve(struct hpsi_cells *t, size_t keys);
/* Adds the absent key of hash h (h != 0; room reserved): its values,
 * with the push count and values zero. Moves no other cell. */
void *hpsi_cells_add(struct hpsi_cells *t, uint64_t h);
/* The same from cell c on, a cell of the key's run at or after its home
 * (a scan's end): the cells between stay taken, since nothing frees a
 * cell, so the first free one from c is the first from home. */
void *hpsi_cells_add_from(struct hpsi_cells *t, unsigned char *c, uint64_t h);
/* If cell c (of the key of hash h) lies past the key's home, swaps it
 * with the cell before it: c is the key's cell no longer, nor is the
 * other cell its key's. */
void hpsi_cells_promote(struct hpsi_cells *t, unsigned char *c, uint64_t h);

/* For a walk in the order of the hashes, which the moves of cells do not
 * disturb (growing re-adds every cell elsewhere, promotion swaps
 * neighbours; a key keeps its hash), as a copy of the table made while it
 * serves needs (runtime/server/recover.c): the hashes of the keys whose
 * homes lie in the `homes` homes from that of `from` (0 counts as 1) and
 * that are at least `from`, in the order of the array, into out (room for
 * max). Returns their count, or SIZE_MAX when more than max; *end: the
 * least hash whose home lies past those homes, 0 when they reach the last
 * home. The keys of a home lie in the run from it to the next free cell:
 * one pass over those homes and the run after them. */
size_t hpsi_cells_gather(const struct hpsi_cells *t, uint64_t from, size_t homes, uint64_t *out, size_t max,
			 uint64_t *end);

/* The same one key at a time, without memory: the cell of the least hash
 * at or after `from`, or NULL (about a run's length of cells per key). */
unsigned char *hpsi_cells_next(const struct hpsi_cells *t, uint64_t from);

/* Visits every key in the order of the array: its key, its push count
 * (0 when not kept), its values; a non-zero return stops and is returned. */
int hpsi_cells_walk(const struct hpsi_cells *t, int (*fn)(uint64_t key, uint32_t steps, void *vals, void *arg),
		    void *arg);

/* Bytes the cells take. */
size_t hpsi_cells_size(const struct hpsi_cells *t);

/* Cells handed whole to another process (a key range that moves between
 * servers, runtime/server/recover.c): with share set (before the first
 * reserve) the array lives in a memfd, mapped shared, instead of the
 * server's arena; the server it moves to maps the same pages
 * (hpsi_cells_adopt) and nothing is copied. The price: the pages are the
 * shmem's, in 4 KiB pages where the arena's get huge ones. Out of memfds
 * (EMFILE) is out of memory: a shared table never falls back to private
 * memory, which the other process could not map. */
void hpsi_cells_share(struct hpsi_cells *t);
/* What the other process needs to map a shared array (geometry and fd). */
struct hpsi_cells_shape {
	uint32_t len, csz;
	uint64_t cap, ncells, tail, count;
	int32_t fd, pad;
};
void hpsi_cells_shape_of(const struct hpsi_cells *t, struct hpsi_cells_shape *q);
/* Makes t (share set, of q->len's cell size) the cells of q, mapping fd
 * q->fd of process pid (/proc/PID/fd/FD: the same pages, shared): what t
 * held is dropped. 0; HPS_EINVAL when q does not fit t's settings or the
 * fd's size; HPS_ESYS when the fd cannot be opened or mapped (t keeps
 * what it held). Reading q before the pages: whoever wrote them must
 * have released them before q. */
int hpsi_cells_adopt(struct hpsi_cells *t, int pid, const struct hpsi_cells_shape *q);

#endif
