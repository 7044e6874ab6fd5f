/* Shape-specialised depthwise 3x3 and average pooling (included by tm_fast.h; see its notes). */
#ifndef TM_FAST_DW_H
#define TM_FAST_DW_H

/* ---- depthwise 3x3, stride 1, any padding ----
 * One channel at a time, copied into a zero-padded int16 plane stored *transposed* (column
 * after column), each entry 2 (x - z_in): doubled for the requantization, as the matrix kernels.
 * A column has `rows` = (h + 2 ph) rounded up to even entries, so (plane[r], plane[r + 1]) for
 * even r is one aligned word: two *vertically* adjacent inputs. With the weights of kernel column
 * dx as pairs A = (w[0][dx], w[1][dx]) and C = (w[1][dx], w[2][dx]) and the words
 * q0 = (p[y], p[y+1]), q1 = (p[y+2], p[y+3]) of plane column x + dx:
 *   out[y]   += SMLAD(q0, A) + q1.lo * C.hi        p[y] w0 + p[y+1] w1 + p[y+2] w2
 *   out[y+1] += q0.hi * A.lo + SMLAD(q1, C)        p[y+1] w0 + p[y+2] w1 + p[y+3] w2
 * so a pair of outputs costs 6 words (3 LDRD) and 12 multiply instructions, and the six weight
 * pairs stay in registers for the channel. Walking down columns (25 outputs on DS-CNN's 25 x 5
 * maps) instead of rows (5) leaves one unpaired output per column instead of one per row. The
 * walk down a column is unrolled (12 pairs on DS-CNN-S): with no loop counter and every offset an
 * immediate, fewer of the loop's values spill (measured on DS-CNN-S: 1.88 instead of 2.38
 * instructions per MAC with the soft-float ABI, 2.01 in the hard-float firmware; 1 KB more flash).
 * Channel c is copied out before output channel c is written and nothing else is touched, so
 * `output` may be `input` (in place). Scratch: 2 * rows * (w + 2 pw) bytes. */
TM_FAST void tm_fast_dw_channel(const int16_t *plane, const int32_t rows, const int8_t *w9, const int32_t bias2,
                                const int32_t m0, const int32_t e, int8_t *output, const int32_t out_h,
                                const int32_t out_w, const int32_t c, const int32_t zero_point,
                                const int32_t act_min, const int32_t act_max) {
  const int32_t a0 = tm_pkhbt(w9[0], w9[3]), c0 = tm_pkhbt(w9[3], w9[6]);
  const int32_t a1 = tm_pkhbt(w9[1], w9[4]), c1 = tm_pkhbt(w9[4], w9[7]);
  const int32_t a2 = tm_pkhbt(w9[2], w9[5]), c2 = tm_pkhbt(w9[5], w9[8]);
  const int32_t nudge = tm_fast_nudge(e, zero_point), down = out_w * c;
  for (int32_t ox = 0; ox < out_w; ox++) {
    const int16_t *col = plane + ox * rows;
    int8_t *out = output + ox * c;
    int32_t oy = 0;
#pragma GCC unroll 16
    for (; oy + 2 <= out_h; oy += 2, out += 2 * down) {
      const tm_word *r0 = (const tm_word *)(const void *)(col + oy);
      const tm_word *r1 = (const tm_word *)(const void *)(col + rows + oy);
      const tm_word *r2 = (const tm_word *)(const void *)(col + 2 * rows + oy);
      int32_t acc0 = tm_smlabt_asm(r0[1], c0, tm_smlad(r0[0], a0, bias2));
      int32_t acc1 = tm_smlad(r0[1], c0, tm_smlatb_asm(r0[0], a0, bias2));
      acc0 = tm_smlabt_asm(r1[1], c1, tm_smlad(r1[0], a1, acc0));
      acc1 = tm_smlad(r1[1], c1, tm_smlatb_asm(r1[0], a1, acc1));
      acc0 = tm_smlabt_asm(r2[1], c2, tm_smlad(r2[0], a2, acc0));
      acc1 = tm_smlad(r2[1], c2, tm_smlatb_asm(r2[0], a2, acc1));
      out[0] = tm_fast_requant(acc0, m0, e, nudge, zero_point, act_min, act_max);
      out[down] = tm_fast_requant(acc1, m0, e, nudge, zero_point, act_min, act_max);
    }
    if (oy < out_h) {                          /* odd height: the last output alone */
      int32_t acc = bias2;
      acc = tm_smlabt_asm(col[oy + 2], c0, tm_smlad(*(const tm_word *)(const void *)(col + oy), a0, acc));
      acc = tm_smlabt_asm(col[rows + oy + 2], c1, tm_smlad(*(const tm_word *)(const void *)(col + rows + oy), a1, acc));
      acc = tm_smlabt_asm(col[2 * rows + oy + 2], c2,
                          tm_smlad(*(const tm_word *)(const void *)(col + 2 * rows + oy), a2, acc));
      out[0] = tm_fast_requant(acc, m0, e, nudge, zero_point, act_min, act_max);
    }
  }
}

TM_FAST void tm_fast_depthwise3x3(const int8_t *input, int8_t *output, int16_t *plane, const int8_t *weight,
                                  const int32_t *bias2, const int32_t *m0, const uint8_t *e, const int32_t h,
                                  const int32_t w, const int32_t c, const int32_t ph, const int32_t pw,
                                  const int32_t z_in, const int32_t zero_point, const int32_t act_min,
                                  const int32_t act_max) {
  TM_ASSERT(h >= 1 && w >= 1 && c >= 1 && h + 2 * ph >= 3 && w + 2 * pw >= 3);
  TM_FAST_ASSERT_REQUANT(e, bias2, c, 9, 255 * 128);
  const int32_t rows = (h + 2 * ph + 1) & ~1, cols = w + 2 * pw;
  const int32_t out_h = h + 2 * ph - 2, out_w = w + 2 * pw - 2, minus_2z = -2 * z_in;
  for (int32_t i = 0; i < rows * cols; i++) plane[i] = 0;        /* the border stays 0 (= real 0) */
  const int32_t minus_2z_pair = tm_pkhbt(minus_2z, minus_2z);
  for (int32_t ch = 0; ch < c; ch++) {
    /* Two vertically adjacent inputs become one word of the plane: 2 loads, PKHBT, 2 SADD16, 1 store. */
    const int8_t *x = input + ch;
    int16_t *dst = plane + pw * rows + ph;
    int32_t y = 0;
    for (; y + 2 <= h; y += 2, x += 2 * w * c, dst += 2)
#pragma GCC unroll 8
      for (int32_t i = 0; i < w; i++) {
        const int32_t pair = tm_pkhbt(x[i * c], x[(w + i) * c]);
        tm_write32(dst + i * rows, (uint32_t)tm_sadd16(tm_sadd16(pair, pair), minus_2z_pair));
      }
    if (y < h)
#pragma GCC unroll 8
      for (int32_t i = 0; i < w; i++) dst[i * rows] = (int16_t)(minus_2z + 2 * x[i * c]);
    tm_fast_dw_channel(plane, rows, weight + 9 * ch, bias2[ch], m0[ch], e[ch], output + ch, out_h, out_w, c,
                       zero_point, act_min, act_max);
  }
}

/* ---- average pooling (any window of at most 256 pixels, any stride, no padding) ----
 * Four channels per 32-bit load: SXTAB16 adds bytes 0 and 2 (and, rotated, 1 and 3) to two int16
 * lane sums, which cannot wrap: |sum| <= 256 * 128 = 32768 fits int16's range for the negative
 * end (-32768) and 256 * 127 for the positive one. Then the reference kernel's rounding. */
TM_FAST int8_t tm_fast_average(int32_t sum, const int32_t count) {
  sum = sum > 0 ? sum + count / 2 : sum - count / 2;
  return tm_clamp_s8(sum / count, -128, 127);
}

TM_FAST void tm_fast_avgpool(const int8_t *input, int8_t *output, const int32_t w, const int32_t c,
                             const int32_t out_h, const int32_t out_w, const int32_t kh, const int32_t kw,
                             const int32_t sh, const int32_t sw) {
  TM_ASSERT(kh * kw <= 256 && out_w == tm_out_size(w, kw, sw, 0));   /* int16 lane sums cannot wrap */
  const int32_t count = kh * kw, c4 = c & ~3;
  for (int32_t oy = 0; oy < out_h; oy++)
    for (int32_t ox = 0; ox < out_w; ox++) {
      const int8_t *window = input + (oy * sh * w + ox * sw) * c;
      int8_t *out = output + (oy * out_w + ox) * c;
      int32_t ch = 0;
      for (; ch < c4; ch += 4) {
        int32_t even = 0, odd = 0;             /* lanes: channels (ch, ch + 2) and (ch + 1, ch + 3) */
        for (int32_t ky = 0; ky < kh; ky++) {
          const int8_t *row = window + ky * w * c + ch;
#pragma GCC unroll 8
          for (int32_t kx = 0; kx < kw; kx++) {
            const uint32_t u = tm_read32(row + kx * c);
            even = tm_sxtab16(even, u);
            odd = tm_sxtab16_ror8(odd, u);
          }
        }
        out[ch] = tm_fast_average((int16_t)even, count);
        out[ch + 1] = tm_fast_average((int16_t)odd, count);
        out[ch + 2] = tm_fast_average(even >> 16, count);
        out[ch + 3] = tm_fast_average(odd >> 16, count);
      }
      for (; ch < c; ch++) {
        int32_t sum = 0;
        for (int32_t ky = 0; ky < kh; ky++)
          for (int32_t kx = 0; kx < kw; kx++) sum += window[(ky * w + kx) * c + ch];
        out[ch] = tm_fast_average(sum, count);
      }
    }
}

#endif
