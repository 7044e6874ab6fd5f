/* Requantization: an int32 accumulator back to int8, the course's integer specification in C.
 *
 * A layer's real multiplier M = s_in * s_w / s_out is stored as a Q31 integer m0 in [2^30, 2^31)
 * and an exponent `shift`, M = m0 * 2^(shift - 31). Exactly as tinyml_utils/quant/fixedpoint.py
 * (and TFLite's reference kernels):
 *
 *   x   = acc << max(shift, 0)                     saturated to int32
 *   y   = round(x * m0 / 2^31)                     ties toward +infinity (the "doubling high mul")
 *   out = round(y / 2^max(-shift, 0))              ties away from zero
 *   q   = clamp(out + zero_point, act_min, act_max)
 *
 * Two versions: `tm_mbqm` is the specification for every int32 input (what the reference kernels
 * use); `tm_mbqm_right` gives the same result in fewer instructions under conditions the code
 * generator proves for a layer before it picks an optimised kernel. Both assume gcc's
 * behaviour for >> on negative numbers (arithmetic shift), as every ARM and x86 compiler does. */
#ifndef TM_REQUANT_H
#define TM_REQUANT_H
#include <stdint.h>

/* round(a * b / 2^31), ties toward +infinity; the one overflowing case saturates (gemmlowp form). */
static inline int32_t tm_srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * b;
  int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));   /* C division truncates toward zero */
}

/* round(x / 2^exponent), ties away from zero, 0 <= exponent <= 31. */
static inline int32_t tm_rdbp(int32_t x, int32_t exponent) {
  int32_t mask = (int32_t)((1ull << exponent) - 1u);
  int32_t remainder = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0);
  return (x >> exponent) + (remainder > threshold);
}

/* acc * m0 * 2^(shift - 31), rounded as above: the specification for any int32 acc. */
static inline int32_t tm_mbqm(int32_t acc, int32_t m0, int32_t shift) {
  int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  int64_t x = (int64_t)acc * ((int64_t)1 << left);
  if (x > INT32_MAX) x = INT32_MAX;        /* saturating left shift (multipliers >= 0.5 only) */
  if (x < INT32_MIN) x = INT32_MIN;
  return tm_rdbp(tm_srdhm((int32_t)x, m0), right);
}

static inline int8_t tm_clamp_s8(int32_t v, int32_t act_min, int32_t act_max) {
  v = v < act_min ? act_min : v;
  return (int8_t)(v > act_max ? act_max : v);
}

/* int32 accumulator -> int8 output: scale, add the zero point, clamp (fused ReLU / ReLU6). */
static inline int8_t tm_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zero_point,
                                   int32_t act_min, int32_t act_max) {
  return tm_clamp_s8(tm_mbqm(acc, m0, shift) + zero_point, act_min, act_max);
}

/* round(a * b / 2^32), ties toward +infinity: ARM's SMMULR, one instruction on a Cortex-M4. */
static inline int32_t tm_smmulr(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP)
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32);
#endif
}

/* tm_mbqm in a few instructions, for the case optimised kernels are generated for: shift <= -1
 * (a multiplier below 0.5, true of practically every layer), 0 <= m0 < 2^31 and |acc| < 2^30
 * (the code generator proves both for a layer before it picks an optimised kernel).
 * - the high multiply round(acc * m0 / 2^31) (ties up) is round(2 acc * m0 / 2^32): SMMULR of
 *   2 * acc, which fits int32 because |acc| < 2^30; equal to the gemmlowp form since m0 is never
 *   INT32_MIN;
 * - the rounding divide by 2^e is (y + 2^(e-1) - [y < 0]) >> e, which cannot overflow because
 *   |y| <= |acc| < 2^30. `e` = -shift and `nudge` = 2^(e-1) are per channel (computed once). */
static inline int32_t tm_mbqm_right(int32_t acc, int32_t m0, int32_t e, int32_t nudge) {
  int32_t y = tm_smmulr(acc * 2, m0);
  return (y + nudge + (y >> 31)) >> e;
}

#endif
