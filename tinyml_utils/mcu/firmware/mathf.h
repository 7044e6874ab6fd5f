/* Natural logarithm and exponential in single precision, from scratch (no libm).
 *
 * newlib's logf/expf would also work, but they set errno, which pulls in the C library's
 * 1 KB re-entrancy structure (.data, i.e. RAM and flash). These need neither and are accurate
 * to a few units in the last place, far below the MFCC's quantization step. */
#ifndef MATHF_H
#define MATHF_H
#include <stdint.h>

/* The bits of a float and back (a union is how C reinterprets them without a library call). */
static inline uint32_t f32_bits(float x) { union { float f; uint32_t u; } v = {.f = x}; return v.u; }
static inline float f32_from_bits(uint32_t u) { union { uint32_t u; float f; } v = {.u = u}; return v.f; }

/* ln(x) for finite x > 0. Write x = 2^e * m with m in [sqrt(1/2), sqrt(2)); then
 * ln(x) = e ln 2 + ln(m) and ln(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m-1)/(m+1),
 * |s| <= 0.172, so five terms reach float precision. (Zero, negative, subnormal inputs are not
 * handled: the front end adds 1e-6 to every energy before the log.) */
static inline float log_f32(float x) {
  uint32_t bits = f32_bits(x);
  int32_t e = (int32_t)((bits >> 23) & 0xFFu) - 127;
  float m = f32_from_bits((bits & 0x007FFFFFu) | 0x3F800000u);   /* mantissa in [1, 2) */
  if (m > 1.41421356f) { m *= 0.5f; e += 1; }
  float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
  float series = s * (2.0f + s2 * (0.666666667f + s2 * (0.4f + s2 * (0.285714286f + s2 * 0.222222222f))));
  return (float)e * 0.693147181f + series;
}

/* e^x. Write x = k ln 2 + r with k an integer and |r| <= ln(2)/2, then e^x = 2^k e^r, where
 * 2^k is put straight into the exponent bits and e^r is a degree-6 Taylor polynomial.
 * Results below 2^-126 are flushed to 0 (softmax needs no more). */
static inline float exp_f32(float x) {
  if (x < -87.0f) return 0.0f;
  if (x > 88.0f) x = 88.0f;
  float kf = x * 1.44269504f;                       /* x / ln 2, rounded to the nearest integer */
  int32_t k = (int32_t)(kf + (kf >= 0.0f ? 0.5f : -0.5f));
  float r = x - (float)k * 0.693145752f - (float)k * 1.42860677e-6f;   /* ln 2 in two parts */
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f +
            r * (0.00833333333f + r * 0.00138888889f)))));
  return p * f32_from_bits((uint32_t)(k + 127) << 23);
}

#endif
