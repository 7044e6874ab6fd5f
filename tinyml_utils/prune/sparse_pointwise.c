/* A pointwise (1x1) convolution on int8 data, four ways, for chapter 2 (pruning).
 *
 * out[p][o] = sum_i W[o][i] * x[p][i]   for every position p < positions and output o < c_out.
 * Accumulators are int32; there is no requantization (the quantization chapters add it): the
 * point here is how many instructions the inner loops execute when W is sparse.
 *
 *   pw_dense_ref     the plain triple loop: one multiply-accumulate per weight, zero or not;
 *   pw_dense_simd    the way CMSIS-NN does it on ARMv7E-M: each position's inputs are widened to
 *                    int16 once, then four int8 weights are loaded with one 32-bit read, split
 *                    into two int16 pairs (SXTB16) and multiplied-accumulated two at a time
 *                    (SMLAD), for two positions and two output rows at once;
 *   pw_csr           compressed sparse rows: per output, loop over its nonzeros only, reading a
 *                    column index and fetching the matching input (a gather);
 *   pw_bitmask       one bit per weight: per 32-bit word of the mask, jump from set bit to set bit
 *                    (count trailing zeros) and consume the packed nonzero values in order.
 *
 * All four must give the same int32 outputs (checked by the caller). */
#include <arm_acle.h>
#include <stdint.h>

#include "sparse_pointwise.h"

void pw_dense_ref(const int8_t *x, const int8_t *w, int32_t *out, int positions, int c_in, int c_out) {
  for (int p = 0; p < positions; p++) {
    const int8_t *xp = x + p * c_in;
    for (int o = 0; o < c_out; o++) {
      const int8_t *wo = w + o * c_in;
      int32_t acc = 0;
      for (int i = 0; i < c_in; i++) acc += wo[i] * xp[i];
      out[p * c_out + o] = acc;
    }
  }
}

/* Bytes 1 and 3 of v sign-extended to two int16: one SXTB16 with its built-in rotation. */
static inline uint32_t sxtb16_ror8(uint32_t v) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}

/* Widen one position's c_in int8 inputs to int16, in the order SXTB16 splits a word of weights:
 * (x0, x2), (x1, x3) for every group of four. */
static void widen_reordered(const int8_t *xp, int16_t *x16, int c_in) {
  int i = 0;
  for (; i + 4 <= c_in; i += 4) {
    x16[i] = xp[i]; x16[i + 1] = xp[i + 2]; x16[i + 2] = xp[i + 1]; x16[i + 3] = xp[i + 3];
  }
  for (; i < c_in; i++) x16[i] = xp[i];   /* the tail (c_in % 4 values) stays in order */
}

/* Two output rows times two positions per inner loop, as CMSIS-NN's s8 matrix kernel: each
 * loaded weight word serves two positions and each loaded input word two rows. Rows must start
 * 4-byte aligned (w aligned and c_in a multiple of 4) for the word loads, unless c_in < 4; the
 * c_in % 4 tail, an odd last row and an odd last position run through plain loops.
 * x16 is scratch for 2 * c_in int16. */
void pw_dense_simd(const int8_t *x, const int8_t *w, int32_t *out, int positions, int c_in, int c_out,
                   int16_t *x16) {
  int16_t *xa16 = x16, *xb16 = x16 + c_in;
  for (int p = 0; p < positions; p += 2) {
    int pair = p + 1 < positions;                     /* an odd last position runs alone */
    widen_reordered(x + p * c_in, xa16, c_in);
    widen_reordered(x + (pair ? p + 1 : p) * c_in, xb16, c_in);
    for (int o = 0; o < c_out; o += 2) {
      int two_rows = o + 1 < c_out;                    /* an odd last row runs alone */
      const uint32_t *xa = (const uint32_t *)xa16, *xb = (const uint32_t *)xb16;
      const uint32_t *w0 = (const uint32_t *)(w + o * c_in), *end = w0 + c_in / 4;
      const int stride = two_rows ? c_in / 4 : 0;       /* row o + 1 is w0[stride] */
      int32_t a0 = 0, a1 = 0, b0 = 0, b1 = 0;           /* (position a or b, row o or o + 1) */
      while (w0 < end) {
        uint32_t four = w0[0];                                  /* w0 w1 w2 w3 of row o */
        uint32_t even = __sxtb16(four);                         /* (w0, w2) as int16 */
        uint32_t odd = sxtb16_ror8(four);                       /* (w1, w3) as int16 */
        uint32_t four1 = w0[stride];                            /* the same of row o + 1 */
        uint32_t even1 = __sxtb16(four1), odd1 = sxtb16_ror8(four1);
        w0++;
        uint32_t x02 = *xa++, x13 = *xa++;                      /* position a: (x0, x2), (x1, x3) */
        a0 = __smlad(even, x02, a0); a0 = __smlad(odd, x13, a0);
        a1 = __smlad(even1, x02, a1); a1 = __smlad(odd1, x13, a1);
        x02 = *xb++; x13 = *xb++;                               /* position b */
        b0 = __smlad(even, x02, b0); b0 = __smlad(odd, x13, b0);
        b1 = __smlad(even1, x02, b1); b1 = __smlad(odd1, x13, b1);
      }
      for (int i = c_in & ~3; i < c_in; i++) {                  /* the tail, one MAC at a time */
        int32_t wa = w[o * c_in + i], wb = two_rows ? w[(o + 1) * c_in + i] : 0;
        a0 += wa * xa16[i]; a1 += wb * xa16[i]; b0 += wa * xb16[i]; b1 += wb * xb16[i];
      }
      out[p * c_out + o] = a0;
      if (two_rows) out[p * c_out + o + 1] = a1;
      if (pair) {
        out[(p + 1) * c_out + o] = b0;
        if (two_rows) out[(p + 1) * c_out + o + 1] = b1;
      }
    }
  }
}

void pw_csr(const int8_t *x, const int8_t *values, const uint8_t *col_index, const uint16_t *row_ptr,
            int32_t *out, int positions, int c_in, int c_out) {
  for (int p = 0; p < positions; p++) {
    const int8_t *xp = x + p * c_in;
    for (int o = 0; o < c_out; o++) {
      int32_t acc = 0;
      for (int k = row_ptr[o]; k < row_ptr[o + 1]; k++) acc += values[k] * xp[col_index[k]];
      out[p * c_out + o] = acc;
    }
  }
}

/* bits: c_out rows of ceil(c_in / 32) words; bit i of a row is in word i / 32 at position i % 32. */
void pw_bitmask(const int8_t *x, const uint32_t *bits, const int8_t *values, int32_t *out, int positions,
                int c_in, int c_out) {
  int words = (c_in + 31) / 32;
  for (int p = 0; p < positions; p++) {
    const int8_t *xp = x + p * c_in;
    const int8_t *v = values;                 /* the nonzeros, row after row */
    for (int o = 0; o < c_out; o++) {
      int32_t acc = 0;
      for (int k = 0; k < words; k++) {
        uint32_t m = bits[o * words + k];
        const int8_t *xk = xp + 32 * k;
        while (m) {
          int i = __builtin_ctz(m);           /* RBIT + CLZ on ARMv7-M */
          acc += *v++ * xk[i];
          m &= m - 1;                         /* clear the lowest set bit */
        }
      }
      out[p * c_out + o] = acc;
    }
  }
}
