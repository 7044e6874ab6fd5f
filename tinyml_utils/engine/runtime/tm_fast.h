/* Shape-specialised kernels: templates the code generator instantiates once per layer shape.
 *
 * tm_opt.c's kernels read every shape from a parameter record at run time, so the compiler
 * cannot unroll their loops or keep a layer's constants in registers. Here every function is
 * `static inline` and always inlined, and the generated model.c calls it from a small wrapper
 * with plain numbers for every shape, zero point and clamp (codegen + specialise.py). gcc then
 * compiles one kernel per distinct layer shape: loops over 64 input channels fully unrolled,
 * clamps folded away, tails that cannot happen removed. Bit-exact with tm_ref.c, like tm_opt.c.
 *
 * What changes against tm_opt.c, and why it is exact:
 * 1. 3 pixels x 2 output channels per inner loop (the most that fits the Cortex-M4's 14 free
 *    registers: 6 accumulators, 4 unpacked weight pairs, 2 input pairs, 2 pointers). Each input
 *    word serves 2 channels, each weight word 3 pixels: 20 instructions per 24 MACs.
 * 2. Weights packed 4 per int32 at generation time (rows padded to a multiple of 4 with zeros),
 *    a channel pair's words interleaved, so the loop loads them with LDRD and never reorders.
 * 3. Inputs doubled while unpacked (x2 = 2x fits int16) and the bias doubled at generation time,
 *    so the accumulator is 2 acc and requantization starts with SMMULR/SMMLAR at once.
 * 4. Requantization in two instructions before the clamp (tm_fast_requant).
 * 5. Depthwise 3x3: the channel is copied once into a *transposed*, zero-padded int16 plane, so
 *    two vertically adjacent inputs are one word and a column of 25 outputs is walked in pairs.
 * 6. Global average pooling sums 4 channels per instruction pair (SXTAB16, int16 lanes).
 *
 * gcc's pre-register-allocation scheduler (-fschedule-insns, on at -O2 for ARM) interleaves the
 * unrolled loop so aggressively that the accumulators spill to the stack (measured: 1.44 instead
 * of 1.01 instructions per MAC for the pointwise block), so the generated model.c turns it off
 * for itself with a pragma.
 *
 * Each template's spec (preconditions, scratch bytes, the wrapper that instantiates it) is in
 * engine/kernels_fast.py; debug builds (-DTM_DEBUG) assert the preconditions on entry (tm_debug.h). */
#ifndef TM_FAST_H
#define TM_FAST_H
#include <stdint.h>
#include "tm_debug.h"
#include "tm_dsp.h"
#include "tm_requant.h"

#ifdef __OPTIMIZE__
#define TM_FAST static inline __attribute__((always_inline))
#else   /* -O0 (the host tests compile a thousand models so): one shared copy, compiled once */
#define TM_FAST static inline
#endif
/* The generated wrappers: kept as functions of their own (one symbol per kernel in the map file),
 * and without interprocedural constant propagation, which would turn the scratch pointer into an
 * absolute address whose offsets are too large for LDRD. */
#if defined(__GNUC__) && !defined(__clang__)
#define TM_FAST_KERNEL __attribute__((noipa))
#else
#define TM_FAST_KERNEL __attribute__((noinline))
#endif
#define TM_FAST_PIXELS 3            /* pixels per block of the matrix kernels */

/* Debug builds: the rounding constant (2 z + 1) 2^(e-1) fits (1 <= e <= 22), and no accumulator
 * reaches 2^30 (K products of at most `per_term` onto the bias, stored doubled). */
#define TM_FAST_ASSERT_REQUANT(e, bias2, channels, k, per_term)                   \
  TM_ASSERT(tm_exponents_in((e), (channels), 1, 22));                             \
  TM_ASSERT(tm_accumulator_bounded((bias2), (channels), 2, (k), (per_term)))

/* A 32-bit read of two int16 plane entries that the compiler may not reorder around the int16
 * writes (may_alias) and may merge into LDRD (aligned). */
typedef int32_t tm_word __attribute__((may_alias, aligned(4)));

/* ---- requantization of a doubled accumulator ----
 * tm_requant.h computes q = clamp(((y + 2^(e-1) - [y < 0]) >> e) + z) with y = round(acc m0 / 2^31)
 * = SMMULR(2 acc, m0) and e = -shift. Two exact rewrites make it shorter:
 * - the zero point joins the rounding constant: (a >> e) + z = (a + z 2^e) >> e, so
 *   nudge = 2^(e-1) + z 2^e = (2z + 1) 2^(e-1) (|nudge| < 2^29 when e <= 22, checked by kernels_fast.py);
 * - with a ReLU clamp (act_min >= z), the - [y < 0] term does not matter: for y < 0 both forms give
 *   a value <= z, which the clamp lifts to act_min. Then y + nudge is one SMMLAR. */
TM_FAST int32_t tm_fast_nudge(int32_t e, int32_t zero_point) { return (2 * zero_point + 1) * (1 << (e - 1)); }

TM_FAST int8_t tm_fast_requant(int32_t acc2, int32_t m0, int32_t e, int32_t nudge, const int32_t zero_point,
                               const int32_t act_min, const int32_t act_max) {
  int32_t v;
  if (act_min >= zero_point) {
    v = tm_smmlar(acc2, m0, nudge) >> e;
  } else {
    const int32_t y = tm_smmulr(acc2, m0);
    v = (y + nudge + (y >> 31)) >> e;
  }
  if (act_min == -128 && act_max == 127) return (int8_t)tm_ssat8(v);
  return tm_clamp_s8(v, act_min, act_max);
}

/* ---- the matrix kernels: pointwise, fully connected, general convolution ---- */

/* np pixels' k int8 inputs (pixel p at x + p * x_stride) -> `pairs`, doubled, as the block reads
 * them: for each 4 values, pixel 0's (x0, x2) and (x1, x3), then pixel 1's, ... The last group
 * of 4 is zero-padded when k is not a multiple of 4 (the weights are zero there too). */
TM_FAST void tm_fast_unpack(const int np, const int8_t *x, const int32_t x_stride, const int32_t k, int32_t *pairs) {
  const int32_t k4 = k & ~3;
#pragma GCC unroll 4
  for (int32_t i = 0; i < k4; i += 4, pairs += 2 * np) {
#pragma GCC unroll 3
    for (int p = 0; p < np; p++) {
      const uint32_t u = tm_read32(x + p * x_stride + i);
      const int32_t even = tm_sxtb16(u), odd = tm_sxtb16_ror8(u);
      pairs[2 * p] = tm_sadd16(even, even);
      pairs[2 * p + 1] = tm_sadd16(odd, odd);
    }
  }
  if (k4 < k) {
#pragma GCC unroll 3
    for (int p = 0; p < np; p++) {
      uint32_t u = 0;
      for (int32_t j = 0; j < k - k4; j++) u |= (uint32_t)(uint8_t)x[p * x_stride + k4 + j] << (8 * j);
      const int32_t even = tm_sxtb16(u), odd = tm_sxtb16_ror8(u);
      pairs[2 * p] = tm_sadd16(even, even);
      pairs[2 * p + 1] = tm_sadd16(odd, odd);
    }
  }
}

/* One group of 4 input values for np pixels x nc channels: w holds the nc channels' words (4
 * int8 weights each); SXTB16 splits a word into (w0, w2) and (w1, w3), which line up with the
 * input pairs (x0, x2) and (x1, x3), so SMLAD multiplies them with no reordering. */
TM_FAST void tm_fast_step(const int np, const int nc, const int32_t *x, const int32_t *w,
                          int32_t acc[TM_FAST_PIXELS][2]) {
  int32_t we[2], wo[2];
#pragma GCC unroll 2
  for (int c = 0; c < nc; c++) {
    we[c] = tm_sxtb16(w[c]);
    wo[c] = tm_sxtb16_ror8(w[c]);
  }
#pragma GCC unroll 3
  for (int p = 0; p < np; p++)
#pragma GCC unroll 2
    for (int c = 0; c < nc; c++) acc[p][c] = tm_smlad(x[2 * p + 1], wo[c], tm_smlad(x[2 * p], we[c], acc[p][c]));
}

/* np (1..3) pixels x nc (1..2) channels: acc[p][c] = bias2[c] + the products over all blocks,
 * requantized into out[p * out_stride + c]. The full 3 x 2 block has its loop over the blocks
 * unrolled (16 for 64 input channels: no loop overhead, every offset an immediate); the blocks of
 * a few leftover pixels or an odd last channel keep a loop, which costs little time and saves
 * flash (and compile time). */
TM_FAST void tm_fast_block(const int np, const int nc, const int32_t *x, const int32_t *w, const int32_t blocks,
                           const int32_t *bias2, const int32_t *m0, const uint8_t *e, int8_t *out,
                           const int32_t out_stride, const int32_t zero_point, const int32_t act_min,
                           const int32_t act_max) {
  int32_t acc[TM_FAST_PIXELS][2];
#pragma GCC unroll 3
  for (int p = 0; p < np; p++)
#pragma GCC unroll 2
    for (int c = 0; c < nc; c++) acc[p][c] = bias2[c];
  if (np == TM_FAST_PIXELS && nc == 2) {
#pragma GCC unroll 16
    for (int32_t b = 0; b < blocks; b++) tm_fast_step(np, nc, x + 2 * np * b, w + nc * b, acc);
  } else {
#pragma GCC unroll 1
    for (int32_t b = 0; b < blocks; b++) tm_fast_step(np, nc, x + 2 * np * b, w + nc * b, acc);
  }
#pragma GCC unroll 2
  for (int c = 0; c < nc; c++) {
    const int32_t m = m0[c], shift = e[c], nudge = tm_fast_nudge(shift, zero_point);
#pragma GCC unroll 3
    for (int p = 0; p < np; p++)
      out[p * out_stride + c] = tm_fast_requant(acc[p][c], m, shift, nudge, zero_point, act_min, act_max);
  }
}

/* Every output channel of np pixels whose inputs are unpacked in `pairs`: channel pairs, then an
 * odd last channel alone. Weights: channel pair (c, c+1) starts at word c * blocks. */
TM_FAST void tm_fast_channels(const int np, const int32_t *pairs, const int32_t blocks, const int32_t *w,
                              const int32_t *bias2, const int32_t *m0, const uint8_t *e, const int32_t c_out,
                              int8_t *out, const int32_t zero_point, const int32_t act_min, const int32_t act_max) {
  int32_t c = 0;
  for (; c + 2 <= c_out; c += 2)
    tm_fast_block(np, 2, pairs, w + c * blocks, blocks, bias2 + c, m0 + c, e + c, out + c, c_out, zero_point,
                  act_min, act_max);
  if (c < c_out)
    tm_fast_block(np, 1, pairs, w + c * blocks, blocks, bias2 + c, m0 + c, e + c, out + c, c_out, zero_point,
                  act_min, act_max);
}

/* Pointwise (1x1) convolution, or fully connected (pixels = 1). `output` may equal `input` when
 * c_in == c_out (in place): a block's pixels are unpacked into `pairs` before any of their outputs
 * is written, so the unpacked copy is the temporary. Scratch: 8 * 3 * ceil(c_in / 4) bytes. */
TM_FAST void tm_fast_pointwise(const int8_t *input, int8_t *output, int32_t *pairs, const int32_t *w,
                               const int32_t *bias2, const int32_t *m0, const uint8_t *e, const int32_t pixels,
                               const int32_t c_in, const int32_t c_out, const int32_t zero_point,
                               const int32_t act_min, const int32_t act_max) {
  TM_ASSERT(pixels >= 1 && c_in >= 1 && c_out >= 1);
  TM_FAST_ASSERT_REQUANT(e, bias2, c_out, c_in, 128 * 128);
  const int32_t blocks = (c_in + 3) / 4;
  int32_t i = 0;
  for (; i + TM_FAST_PIXELS <= pixels; i += TM_FAST_PIXELS) {
    tm_fast_unpack(TM_FAST_PIXELS, input + i * c_in, c_in, c_in, pairs);
    tm_fast_channels(TM_FAST_PIXELS, pairs, blocks, w, bias2, m0, e, c_out, output + i * c_out, zero_point,
                     act_min, act_max);
  }
  for (int32_t j = 0; j < TM_FAST_PIXELS - 1; j++, i++) {   /* 0 to 2 leftover pixels, one at a time */
    if (i >= pixels) break;
    tm_fast_unpack(1, input + i * c_in, c_in, c_in, pairs);
    tm_fast_channels(1, pairs, blocks, w, bias2, m0, e, c_out, output + i * c_out, zero_point, act_min, act_max);
  }
}

/* Copy n bytes (a constant where instantiated, so the loop becomes a few LDR/STR). */
TM_FAST void tm_fast_copy(int8_t *dst, const int8_t *src, const int32_t n) {
  int32_t j = 0;
  for (; j + 4 <= n; j += 4) tm_write32(dst + j, tm_read32(src + j));
  for (; j < n; j++) dst[j] = src[j];
}

/* Fill n bytes with the byte whose copies make up `word`. */
TM_FAST void tm_fast_fill(int8_t *dst, const uint32_t word, const int32_t n) {
  int32_t j = 0;
  for (; j + 4 <= n; j += 4) tm_write32(dst + j, word);
  for (; j < n; j++) dst[j] = (int8_t)word;
}

/* Output pixel `pixel`'s receptive field as one row of K = kh * kw * c_in int8 values in the
 * weights' (kh, kw, c_in) order; padding holds the input zero point (the bias was folded with it).
 * A kernel row is one contiguous run of the input, cut where it leaves the map on either side. */
TM_FAST void tm_fast_im2col(const int8_t *input, const int32_t pixel, int8_t *col, const int32_t h, const int32_t w,
                            const int32_t c_in, const int32_t out_w, const int32_t kh, const int32_t kw,
                            const int32_t sh, const int32_t sw, const int32_t ph, const int32_t pw,
                            const int32_t z_in) {
  const int32_t oy = pixel / out_w, ox = pixel % out_w, x0 = ox * sw - pw, run = kw * c_in;
  const uint32_t zeros = 0x01010101u * (uint8_t)z_in;
  /* padding columns on either side (a window may lie wholly in the padding when kw <= pw) */
  const int32_t left = x0 >= 0 ? 0 : -x0 < kw ? -x0 : kw;
  const int32_t right = x0 + kw <= w ? 0 : x0 + kw - w < kw ? x0 + kw - w : kw;
  for (int32_t ky = 0; ky < kh; ky++, col += run) {
    const int32_t iy = oy * sh - ph + ky;
    if (iy < 0 || iy >= h) {
      tm_fast_fill(col, zeros, run);
    } else if (left == 0 && right == 0) {
      tm_fast_copy(col, input + (iy * w + x0) * c_in, run);
    } else {
      for (int32_t j = 0; j < left * c_in; j++) col[j] = (int8_t)z_in;
      for (int32_t j = left * c_in; j < run - right * c_in; j++) col[j] = input[(iy * w + x0) * c_in + j];
      for (int32_t j = run - right * c_in; j < run; j++) col[j] = (int8_t)z_in;
    }
  }
}

/* General convolution (groups == 1): im2col rows of 3 pixels, unpacked, then the matrix block.
 * Scratch: up4(3 K) bytes of rows, then 8 * 3 * ceil(K / 4) bytes of pairs. */
TM_FAST void tm_fast_conv2d(const int8_t *input, int8_t *output, int8_t *scratch, const int32_t *w,
                            const int32_t *bias2, const int32_t *m0, const uint8_t *e, const int32_t h,
                            const int32_t in_w, const int32_t c_in, const int32_t out_h, const int32_t out_w,
                            const int32_t c_out, const int32_t kh, const int32_t kw, const int32_t sh,
                            const int32_t sw, const int32_t ph, const int32_t pw, const int32_t z_in,
                            const int32_t zero_point, const int32_t act_min, const int32_t act_max) {
  TM_ASSERT(out_h == tm_out_size(h, kh, sh, ph) && out_w == tm_out_size(in_w, kw, sw, pw));
  TM_FAST_ASSERT_REQUANT(e, bias2, c_out, kh * kw * c_in, 128 * 128);
  const int32_t k = kh * kw * c_in, blocks = (k + 3) / 4, pixels = out_h * out_w;
  int32_t *pairs = (int32_t *)(void *)(scratch + ((TM_FAST_PIXELS * k + 3) & ~3));
  int32_t i = 0;
  for (; i + TM_FAST_PIXELS <= pixels; i += TM_FAST_PIXELS) {
    for (int p = 0; p < TM_FAST_PIXELS; p++)
      tm_fast_im2col(input, i + p, scratch + p * k, h, in_w, c_in, out_w, kh, kw, sh, sw, ph, pw, z_in);
    tm_fast_unpack(TM_FAST_PIXELS, scratch, k, k, pairs);
    tm_fast_channels(TM_FAST_PIXELS, pairs, blocks, w, bias2, m0, e, c_out, output + i * c_out, zero_point,
                     act_min, act_max);
  }
  for (int32_t j = 0; j < TM_FAST_PIXELS - 1; j++, i++) {   /* 0 to 2 leftover pixels, one at a time */
    if (i >= pixels) break;
    tm_fast_im2col(input, i, scratch, h, in_w, c_in, out_w, kh, kw, sh, sw, ph, pw, z_in);
    tm_fast_unpack(1, scratch, k, k, pairs);
    tm_fast_channels(1, pairs, blocks, w, bias2, m0, e, c_out, output + i * c_out, zero_point, act_min, act_max);
  }
}

#include "tm_fast_dw.h"
#endif
