/* Value types on the wire: f32 and f64 as stored, f16 and bf16 as
 * transport compression of f32 key ranges (the server keeps f32). The
 * conversions round to nearest even and keep infinities and NaN. */
#ifndef HPSI_DTYPE_H
#define HPSI_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum hpsi_wire_dtype { HPSI_WIRE_F32 = 0, HPSI_WIRE_F64 = 1, HPSI_WIRE_F16 = 2, HPSI_WIRE_BF16 = 3 };

static inline size_t hpsi_dtype_size(unsigned dt)
{
	return dt == HPSI_WIRE_F64 ? 8 : dt == HPSI_WIRE_F32 ? 4 : 2;
}

static inline uint32_t hpsi_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

static inline float hpsi_bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline uint16_t hpsi_f32_to_bf16(float f)
{
	uint32_t u = hpsi_f32_bits(f);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
	u += 0x7fffu + ((u >> 16) & 1);          /* round to nearest even */
	return (uint16_t)(u >> 16);
}

static inline float hpsi_bf16_to_f32(uint16_t h)
{
	return hpsi_bits_f32((uint32_t)h << 16);
}

uint16_t hpsi_f32_to_f16(float f);
float hpsi_f16_to_f32(uint16_t h);

/* Converts n values from src_dt to dst_dt (a copy when they are equal;
 * f64 <-> f16/bf16 goes through f32). */
void hpsi_convert(void *dst, unsigned dst_dt, const void *src, unsigned src_dt, size_t n);

#endif
