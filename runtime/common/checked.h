/* Checked arithmetic on sizes and counts that come from another process
 * (a ring record, a network frame) or from the caller: each returns 0 and
 * stores the result, or returns -1 when the exact result does not fit, so
 * a product cannot wrap around to a small size that passes a bound. */
#ifndef HPSI_CHECKED_H
#define HPSI_CHECKED_H

#include <stddef.h>
#include <stdint.h>

static inline int hpsi_mul_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* a x b x c, as in keys x width x bytes per value. */
static inline int hpsi_mul3_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out)
{
	uint64_t ab;
	return hpsi_mul_u64(a, b, &ab) || hpsi_mul_u64(ab, c, out) ? -1 : 0;
}

static inline int hpsi_add_u64(uint64_t a, uint64_t b, uint64_t *out)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

static inline int hpsi_mul_size(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

#endif
