#include "runtime/common/dtype.h"

uint16_t hpsi_f32_to_f16(float f)
{
	uint32_t u = hpsi_f32_bits(f);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t abs = u & 0x7fffffffu;
	if (abs >= 0x7f800000u) /* inf or NaN */
		return sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0);
	if (abs >= 0x477ff000u) /* rounds to above 65504: infinity */
		return sign | 0x7c00u;
	if (abs < 0x38800000u) { /* below 2^-14: a subnormal half or zero */
		if (abs < 0x33000000u) /* below half of the smallest subnormal */
			return sign;
		uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
		int shift = 126 - (int)(abs >> 23); /* 14..24 */
		uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return sign | (uint16_t)half;
	}
	uint32_t r = abs + 0xfffu + ((abs >> 13) & 1); /* round to nearest even */
	return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

float hpsi_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	if (exp == 0x1f)
		return hpsi_bits_f32(sign | 0x7f800000u | (mant << 13));
	if (exp == 0) {
		if (!mant)
			return hpsi_bits_f32(sign);
		float f = (float)mant * (1.0f / 16777216.0f); /* mant x 2^-24 */
		return sign ? -f : f;
	}
	return hpsi_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

static float load(const void *src, unsigned dt, size_t i)
{
	switch (dt) {
	case HPSI_WIRE_F64: return (float)((const double *)src)[i];
	case HPSI_WIRE_F16: return hpsi_f16_to_f32(((const uint16_t *)src)[i]);
	case HPSI_WIRE_BF16: return hpsi_bf16_to_f32(((const uint16_t *)src)[i]);
	default: return ((const float *)src)[i];
	}
}

void hpsi_convert(void *dst, unsigned dst_dt, const void *src, unsigned src_dt, size_t n)
{
	if (dst_dt == src_dt) {
		memcpy(dst, src, n * hpsi_dtype_size(dst_dt));
		return;
	}
	if (dst_dt == HPSI_WIRE_F64 && src_dt == HPSI_WIRE_F32) {
		for (size_t i = 0; i < n; i++)
			((double *)dst)[i] = ((const float *)src)[i];
		return;
	}
	for (size_t i = 0; i < n; i++) {
		float f = load(src, src_dt, i);
		switch (dst_dt) {
		case HPSI_WIRE_F16: ((uint16_t *)dst)[i] = hpsi_f32_to_f16(f); break;
		case HPSI_WIRE_BF16: ((uint16_t *)dst)[i] = hpsi_f32_to_bf16(f); break;
		case HPSI_WIRE_F64: ((double *)dst)[i] = f; break;
		default: ((float *)dst)[i] = f;
		}
	}
}
