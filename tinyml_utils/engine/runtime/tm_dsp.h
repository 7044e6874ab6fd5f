/* The few ARMv7E-M DSP instructions the optimised kernels use, with portable C equivalents.
 *
 * On a Cortex-M4/M7 (__ARM_FEATURE_DSP) they come from ACLE's <arm_acle.h> and compile to one
 * instruction each; elsewhere (the host, for differential tests) the C versions compute the same
 * bits, so the optimised kernels can be tested on the host too.
 *
 *   tm_sxtb16(x)      two int16 lanes from bytes 0 and 2 of x (sign-extended)
 *   tm_sxtb16_ror8(x) the same from bytes 1 and 3 (SXTB16 with its free rotate)
 *   tm_smlad(a, b, acc)  acc + a.lo * b.lo + a.hi * b.hi   (two MACs, int16 lanes)
 *   tm_smlabb / tm_smlabt / tm_smlatb   acc + one 16x16 product of chosen halves (_asm: as asm)
 *   tm_sxtab16(acc, x)   acc + tm_sxtb16(x), lane by lane (two int16 sums, wrapping)
 *   tm_sxtab16_ror8(acc, x)  the same with bytes 1 and 3 of x
 *   tm_sadd16(a, b)   a + b lane by lane (two int16 sums, wrapping)
 *   tm_smmlar(a, b, c)   c + round(a * b / 2^32), ties up: SMMULR with an addend, one instruction
 *   tm_ssat8(v)       v saturated to [-128, 127] (SSAT)
 *   tm_pkhbt(lo, hi)  the low half of lo and the low half of hi as one word
 * Loads of 32 bits from any address go through tm_read32 (unaligned LDR is legal on ARMv7-M). */
#ifndef TM_DSP_H
#define TM_DSP_H
#include <stdint.h>

static inline uint32_t tm_read32(const void *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
static inline void tm_write32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define tm_sxtb16(x) __sxtb16((int32_t)(x))
/* ACLE has no rotate-and-extend; this is the one instruction "sxtb16 rd, rn, ror #8". */
static inline int32_t tm_sxtb16_ror8(uint32_t x) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
#define tm_smlad(a, b, acc) __smlad((a), (b), (acc))
#define tm_smlabb(a, b, acc) __smlabb((a), (b), (acc))
#define tm_smlabt(a, b, acc) __smlabt((a), (b), (acc))
#define tm_smlatb(a, b, acc) __smlatb((a), (b), (acc))
/* The same two as asm, for tm_fast_dw.h: through ACLE gcc sees that only one half of an operand
 * is used and may narrow it to a 16-bit value, which under register pressure it spills and
 * reloads as a halfword (3 extra instructions each time, seen in the specialised depthwise
 * kernel). In tm_opt.c's depthwise the ACLE form compiles better, so both exist. */
static inline int32_t tm_smlabt_asm(int32_t a, int32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
static inline int32_t tm_smlatb_asm(int32_t a, int32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
#define tm_sxtab16(acc, x) __sxtab16((acc), (int32_t)(x))
#define tm_sadd16(a, b) __sadd16((a), (b))
static inline int32_t tm_sxtab16_ror8(int32_t acc, uint32_t x) {
  int32_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
  return r;
}
static inline int32_t tm_smmlar(int32_t a, int32_t b, int32_t c) {
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}
#define tm_ssat8(v) __ssat((v), 8)
#define TM_HAVE_DSP 1
#else
static inline int32_t tm_ssat8(int32_t v) { return v < -128 ? -128 : v > 127 ? 127 : v; }
static inline int32_t tm_lane(uint32_t x, int hi) { return (int16_t)(hi ? (x >> 16) : (x & 0xFFFFu)); }
static inline int32_t tm_pack(int32_t lo, int32_t hi) { return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu)); }
static inline int32_t tm_sxtb16(uint32_t x) { return tm_pack((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu)); }
static inline int32_t tm_sxtb16_ror8(uint32_t x) { return tm_sxtb16((x >> 8) | (x << 24)); }
/* Sums wrap modulo 2^32 like the hardware (which also sets the Q flag; the kernels never overflow). */
static inline int32_t tm_smlad(int32_t a, int32_t b, int32_t acc) {
  return (int32_t)((uint32_t)acc + (uint32_t)(tm_lane(a, 0) * tm_lane(b, 0)) + (uint32_t)(tm_lane(a, 1) * tm_lane(b, 1)));
}
static inline int32_t tm_smlabb(int32_t a, int32_t b, int32_t acc) { return acc + tm_lane(a, 0) * tm_lane(b, 0); }
static inline int32_t tm_smlabt(int32_t a, int32_t b, int32_t acc) { return acc + tm_lane(a, 0) * tm_lane(b, 1); }
static inline int32_t tm_smlatb(int32_t a, int32_t b, int32_t acc) { return acc + tm_lane(a, 1) * tm_lane(b, 0); }
#define tm_smlabt_asm tm_smlabt
#define tm_smlatb_asm tm_smlatb
static inline int32_t tm_sadd16(int32_t a, int32_t b) { return tm_pack(tm_lane(a, 0) + tm_lane(b, 0), tm_lane(a, 1) + tm_lane(b, 1)); }
static inline int32_t tm_sxtab16(int32_t acc, uint32_t x) { return tm_sadd16(acc, tm_sxtb16(x)); }
static inline int32_t tm_sxtab16_ror8(int32_t acc, uint32_t x) { return tm_sadd16(acc, tm_sxtb16_ror8(x)); }
/* c * 2^32 + a * b + 2^31, divided by 2^32 and floored, equals c + that of a * b + 2^31 (exact). */
static inline int32_t tm_smmlar(int32_t a, int32_t b, int32_t c) {
  return (int32_t)((uint32_t)c + (uint32_t)(((int64_t)a * b + 0x80000000LL) >> 32));
}
#define TM_HAVE_DSP 0
#endif

#if defined(__ARM_FEATURE_DSP)
static inline int32_t tm_pkhbt(int32_t lo, int32_t hi) {
  int32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
  return r;
}
#else
static inline int32_t tm_pkhbt(int32_t lo, int32_t hi) { return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFu)); }
#endif

#endif
