/* Optimised kernels for ARMv7E-M (Cortex-M4/M7), bit-exact with tm_ref.c.
 *
 * Where the instructions go in a plain int8 kernel: per multiply-accumulate, two byte loads,
 * a subtraction of the zero point, a multiply-add and loop overhead, about 5 instructions. Here:
 *
 * 1. SIMD: a 32-bit load brings 4 int8 values; SXTB16 sign-extends bytes 0,2 and (with its free
 *    rotate) bytes 1,3 into two int16 pairs; SMLAD does two multiply-accumulates in one
 *    instruction. Activations and weights are unpacked the same way, so the pairs line up.
 * 2. Reuse: the matrix kernel computes 2 pixels x 2 output channels per inner loop, so each
 *    unpacked activation word serves 2 channels and each weight word 2 pixels.
 * 3. Work moved to code-generation time: the zero point of the input is folded into the bias,
 *    sum_k (x_k - z) w_k = sum_k x_k w_k - z sum_k w_k, so the loop multiplies raw int8 values;
 *    the weights of each channel pair are interleaved in blocks of 4 (`interleave_pairs` in
 *    engine/weight_layouts.py) so one pointer walks both rows.
 * 4. Requantization fused into the store, in the cheaper form `tm_mbqm_right` (the generator has
 *    checked its conditions for the layer: multipliers below 0.5 and |acc| < 2^30, else it emits
 *    the reference kernel).
 * 5. Depthwise: one channel at a time, copied (minus its zero point) into a zero-padded int16
 *    buffer, so the window needs no bounds checks; for 3x3 stride 1, two outputs per step with the
 *    weight pairs in registers. The same loop runs in place (output over input).
 *
 * Each kernel's spec (preconditions, scratch bytes, call arguments) is in engine/kernels_opt.py;
 * debug builds (-DTM_DEBUG) assert the preconditions on entry (tm_debug.h).
 */
#include "tm_runtime.h"
#include "tm_debug.h"
#include "tm_dsp.h"

/* Debug builds: what the requantization `tm_mbqm_right` needs, every multiplier below 0.5 and no
 * accumulator reaching 2^30 (K products of at most `per_term` onto the bias). */
#define TM_ASSERT_REQUANT(p, k, per_term)                                    \
  TM_ASSERT(tm_shifts_in((p)->shift, (p)->out_c, -31, -1));                  \
  TM_ASSERT(tm_accumulator_bounded((p)->bias, (p)->out_c, 1, (k), (per_term)))

/* Output quantization of one layer, copied into locals: stores through int8_t pointers may alias
 * anything, so a kernel that read p->... after each store would reload it every time. */
typedef struct { int32_t zero_point, act_min, act_max; } out_q;

static inline out_q out_q_of(const tm_conv_params *p) {
  out_q q = {p->out_zero_point, p->act_min, p->act_max};
  return q;
}

/* Requantize and clamp; (e, nudge) = (-shift, 2^(-shift-1)) of the channel (see tm_requant.h).
 * `full` (a constant where the caller is instantiated) says the clamp is the whole int8 range,
 * as after a ReLU whose zero point is -128: then one SSAT instruction clamps. */
static inline int8_t requant(int32_t acc, int32_t m0, int32_t e, int32_t nudge, out_q q, const int full) {
  const int32_t v = tm_mbqm_right(acc, m0, e, nudge) + q.zero_point;
  return (int8_t)(full ? tm_ssat8(v) : tm_clamp_s8(v, q.act_min, q.act_max));
}

static inline int full_range(const tm_conv_params *p) { return p->act_min == -128 && p->act_max == 127; }

#define CHANNEL_SCALE(p, c, m0, e, nudge)                                          \
  const int32_t m0 = (p)->multiplier[c], e = -(p)->shift[c], nudge = 1 << (e - 1);

/* Two pixels' inputs as int16 pairs, in the order the SIMD loop reads them: for each block of 4
 * values, pixel 0's (x0, x2) and (x1, x3), then pixel 1's. Unpacked once per pixel pair and
 * reused by every output channel, so the inner loop loads pairs instead of unpacking bytes. */
static void unpack_2_pixels(const int8_t *x0, const int8_t *x1, int32_t k4, int32_t *dst) {
  for (int32_t k = 0; k < k4; k += 4, dst += 4) {
    const uint32_t u0 = tm_read32(x0 + k), u1 = tm_read32(x1 + k);
    dst[0] = tm_sxtb16(u0); dst[1] = tm_sxtb16_ror8(u0);
    dst[2] = tm_sxtb16(u1); dst[3] = tm_sxtb16_ror8(u1);
  }
}

/* Two pixels (x0 and x0 + x_stride, k_len int8 values each) times every output channel:
 * out0[c] and out0[out_c + c]. `pairs` is scratch for the unpacked inputs (4 * (k_len & ~3)
 * bytes). Weights: channel pairs interleaved in blocks of 4 values, then the two tails; an odd
 * last channel is stored plainly. */
static inline __attribute__((always_inline)) void matmul_2_pixels_body(
    const tm_conv_params *p, int32_t k_len, const int8_t *x0, int32_t x_stride, int8_t *out0, int32_t *pairs,
    const int full) {
  const int8_t *w = p->weight;
  const int8_t *x1 = x0 + x_stride;
  const int32_t out_c = p->out_c, k4 = k_len & ~3;
  const out_q q = out_q_of(p);
  int8_t *out1 = out0 + out_c;
  unpack_2_pixels(x0, x1, k4, pairs);
  const int32_t *pairs_end = pairs + k4;
  int32_t c = 0;
  for (; c + 2 <= out_c; c += 2) {
    int32_t a0 = p->bias[c], b0 = p->bias[c + 1];   /* pixel 0, channels c and c+1 */
    int32_t a1 = a0, b1 = b0;                       /* pixel 1 */
    for (const int32_t *x = pairs; x < pairs_end; x += 4) {
      uint32_t v = tm_read32(w);                    /* channel c: 4 weights */
      int32_t we = tm_sxtb16(v), wo = tm_sxtb16_ror8(v);
      a0 = tm_smlad(x[0], we, a0); a0 = tm_smlad(x[1], wo, a0);
      a1 = tm_smlad(x[2], we, a1); a1 = tm_smlad(x[3], wo, a1);
      v = tm_read32(w + 4);                         /* channel c + 1 */
      we = tm_sxtb16(v); wo = tm_sxtb16_ror8(v);
      b0 = tm_smlad(x[0], we, b0); b0 = tm_smlad(x[1], wo, b0);
      b1 = tm_smlad(x[2], we, b1); b1 = tm_smlad(x[3], wo, b1);
      w += 8;
    }
    const int32_t tail = k_len - k4;
    for (int32_t k = 0; k < tail; k++) {
      a0 += x0[k4 + k] * w[k];        b0 += x0[k4 + k] * w[tail + k];
      a1 += x1[k4 + k] * w[k];        b1 += x1[k4 + k] * w[tail + k];
    }
    w += 2 * tail;
    {
      CHANNEL_SCALE(p, c, m0, e, nudge)
      out0[c] = requant(a0, m0, e, nudge, q, full);
      out1[c] = requant(a1, m0, e, nudge, q, full);
    }
    {
      CHANNEL_SCALE(p, c + 1, m0, e, nudge)
      out0[c + 1] = requant(b0, m0, e, nudge, q, full);
      out1[c + 1] = requant(b1, m0, e, nudge, q, full);
    }
  }
  if (c < out_c) {                                   /* odd channel count: the last row alone */
    int32_t a0 = p->bias[c], a1 = a0;
    for (int32_t k = 0; k < k_len; k++) { a0 += x0[k] * w[k]; a1 += x1[k] * w[k]; }
    CHANNEL_SCALE(p, c, m0, e, nudge)
    out0[c] = requant(a0, m0, e, nudge, q, full);
    out1[c] = requant(a1, m0, e, nudge, q, full);
  }
}

/* Two copies of the loop, one with the SSAT clamp: chosen once per call, not per output. */
static void matmul_2_pixels(const tm_conv_params *p, int32_t k_len, const int8_t *x0, int32_t x_stride,
                            int8_t *out0, int32_t *pairs) {
  if (full_range(p)) matmul_2_pixels_body(p, k_len, x0, x_stride, out0, pairs, 1);
  else matmul_2_pixels_body(p, k_len, x0, x_stride, out0, pairs, 0);
}

/* One pixel times every output channel (the last pixel of an odd count, fully connected layers). */
static void matmul_1_pixel(const tm_conv_params *p, int32_t k_len, const int8_t *x0, int8_t *out0) {
  const int8_t *w = p->weight;
  const int32_t out_c = p->out_c, k4 = k_len & ~3;
  const out_q q = out_q_of(p);
  int32_t c = 0;
  for (; c + 2 <= out_c; c += 2) {
    int32_t a0 = p->bias[c], b0 = p->bias[c + 1];
    for (int32_t k = 0; k < k4; k += 4) {
      const uint32_t u0 = tm_read32(x0 + k);
      const int32_t x0e = tm_sxtb16(u0), x0o = tm_sxtb16_ror8(u0);
      uint32_t v = tm_read32(w);
      a0 = tm_smlad(x0e, tm_sxtb16(v), a0); a0 = tm_smlad(x0o, tm_sxtb16_ror8(v), a0);
      v = tm_read32(w + 4);
      b0 = tm_smlad(x0e, tm_sxtb16(v), b0); b0 = tm_smlad(x0o, tm_sxtb16_ror8(v), b0);
      w += 8;
    }
    const int32_t tail = k_len - k4;
    for (int32_t k = 0; k < tail; k++) { a0 += x0[k4 + k] * w[k]; b0 += x0[k4 + k] * w[tail + k]; }
    w += 2 * tail;
    {
      CHANNEL_SCALE(p, c, m0, e, nudge)
      out0[c] = requant(a0, m0, e, nudge, q, 0);
    }
    {
      CHANNEL_SCALE(p, c + 1, m0, e, nudge)
      out0[c + 1] = requant(b0, m0, e, nudge, q, 0);
    }
  }
  if (c < out_c) {
    int32_t a0 = p->bias[c];
    for (int32_t k = 0; k < k_len; k++) a0 += x0[k] * w[k];
    CHANNEL_SCALE(p, c, m0, e, nudge)
    out0[c] = requant(a0, m0, e, nudge, q, 0);
  }
}

void tm_pointwise_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int8_t *scratch) {
  TM_ASSERT(p->kernel_h == 1 && p->kernel_w == 1 && p->out_h == p->in_h && p->out_w == p->in_w);
  TM_ASSERT_REQUANT(p, p->in_c, 128 * 128);
  const int32_t pixels = p->in_h * p->in_w;
  int32_t i = 0;
  for (; i + 2 <= pixels; i += 2)
    matmul_2_pixels(p, p->in_c, input + i * p->in_c, p->in_c, output + i * p->out_c, (int32_t *)(void *)scratch);
  if (i < pixels) matmul_1_pixel(p, p->in_c, input + i * p->in_c, output + i * p->out_c);
}

/* Two pixels at a time into scratch, then back over the two input pixels they came from.
 * Scratch: the two pixels' outputs (2 * out_c bytes, rounded up to 4), then the unpacked inputs. */
void tm_pointwise_inplace_opt(const tm_conv_params *p, int8_t *data, int8_t *scratch) {
  TM_ASSERT(p->kernel_h == 1 && p->kernel_w == 1 && p->in_c == p->out_c);
  TM_ASSERT(p->out_h == p->in_h && p->out_w == p->in_w);
  TM_ASSERT_REQUANT(p, p->in_c, 128 * 128);
  const int32_t pixels = p->in_h * p->in_w, c = p->out_c;
  int32_t *pairs = (int32_t *)(void *)(scratch + ((2 * c + 3) & ~3));
  int32_t i = 0;
  for (; i < pixels; i += 2) {
    const int32_t n = i + 2 <= pixels ? 2 : 1;
    int8_t *pixel = data + i * c;
    if (n == 2) matmul_2_pixels(p, c, pixel, c, scratch, pairs);
    else matmul_1_pixel(p, c, pixel, scratch);
    int32_t k = 0;
    for (; k + 4 <= n * c; k += 4) tm_write32(pixel + k, tm_read32(scratch + k));
    for (; k < n * c; k++) pixel[k] = scratch[k];
  }
}

void tm_fully_connected_opt(const tm_conv_params *p, const int8_t *input, int8_t *output) {
  TM_ASSERT(p->in_h == 1 && p->in_w == 1 && p->out_h == 1 && p->out_w == 1);
  TM_ASSERT_REQUANT(p, p->in_c, 128 * 128);
  matmul_1_pixel(p, p->in_c, input, output);
}

/* The receptive field of output pixel `pixel` as one row of K = kH * kW * C_in values, in the
 * weights' HWC order; padding positions hold the input zero point (real 0: with the folded bias
 * every position contributes x * w, and z * w is what the bias took away). */
static void im2col(const tm_conv_params *p, const int8_t *input, int32_t pixel, int8_t *col) {
  const int32_t oy = pixel / p->out_w, ox = pixel % p->out_w;
  const int8_t zero = (int8_t)p->in_zero_point;
  for (int32_t ky = 0; ky < p->kernel_h; ky++) {
    const int32_t iy = oy * p->stride_h - p->pad_h + ky;
    for (int32_t kx = 0; kx < p->kernel_w; kx++) {
      const int32_t ix = ox * p->stride_w - p->pad_w + kx;
      if (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) {
        const int8_t *x = input + (iy * p->in_w + ix) * p->in_c;
        for (int32_t c = 0; c < p->in_c; c++) col[c] = x[c];
      } else {
        for (int32_t c = 0; c < p->in_c; c++) col[c] = zero;
      }
      col += p->in_c;
    }
  }
}

/* General convolution (groups == 1): two im2col rows, then the matrix kernel. Scratch: the two
 * rows (2 * K bytes, rounded up to 4), then the unpacked inputs. */
void tm_conv2d_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int8_t *scratch) {
  TM_ASSERT(p->groups == 1);
  TM_ASSERT(p->out_h == tm_out_size(p->in_h, p->kernel_h, p->stride_h, p->pad_h));
  TM_ASSERT(p->out_w == tm_out_size(p->in_w, p->kernel_w, p->stride_w, p->pad_w));
  TM_ASSERT_REQUANT(p, p->kernel_h * p->kernel_w * p->in_c, 128 * 128);
  const int32_t k_len = p->kernel_h * p->kernel_w * p->in_c, pixels = p->out_h * p->out_w;
  int32_t *pairs = (int32_t *)(void *)(scratch + ((2 * k_len + 3) & ~3));
  int32_t i = 0;
  for (; i + 2 <= pixels; i += 2) {
    im2col(p, input, i, scratch);
    im2col(p, input, i + 1, scratch + k_len);
    matmul_2_pixels(p, k_len, scratch, k_len, output + i * p->out_c, pairs);
  }
  if (i < pixels) {
    im2col(p, input, i, scratch);
    matmul_1_pixel(p, k_len, scratch, output + i * p->out_c);
  }
}

/* 3x3, stride 1, on one padded int16 channel: two outputs per step. Row r of the window holds
 * r[x], r[x+1], r[x+2], r[x+3]; with p0 = (r[x], r[x+1]) and p1 = (r[x+2], r[x+3]) as words and
 * the weights as pairs w01 = (w0, w1), w12 = (w1, w2):
 *   out[x]   += SMLAD(p0, w01) + p1.lo * w12.hi          (r[x] w0 + r[x+1] w1 + r[x+2] w2)
 *   out[x+1] += p0.hi * w01.lo + SMLAD(p1, w12)          (r[x+1] w0 + r[x+2] w1 + r[x+3] w2)
 * six weight pairs stay in registers for the whole channel. */
static inline __attribute__((always_inline)) void depthwise_3x3_body(
    const tm_conv_params *p, int32_t c, const int16_t *pad, int32_t pad_w, int8_t *output, const int full) {
  const int8_t *w = p->weight + c * 9;
  const int32_t w01_0 = tm_pkhbt(w[0], w[1]), w12_0 = tm_pkhbt(w[1], w[2]);
  const int32_t w01_1 = tm_pkhbt(w[3], w[4]), w12_1 = tm_pkhbt(w[4], w[5]);
  const int32_t w01_2 = tm_pkhbt(w[6], w[7]), w12_2 = tm_pkhbt(w[7], w[8]);
  const int32_t bias = p->bias[c], step = p->out_c, out_h = p->out_h, out_w = p->out_w;
  const out_q q = out_q_of(p);
  CHANNEL_SCALE(p, c, m0, e, nudge)
  for (int32_t oy = 0; oy < out_h; oy++) {
    const int16_t *r0 = pad + oy * pad_w, *r1 = r0 + pad_w, *r2 = r1 + pad_w;
    int8_t *out = output + oy * out_w * step + c;
    int32_t ox = 0;
    for (; ox + 2 <= out_w; ox += 2) {
      int32_t acc0 = bias, acc1 = bias, q0, q1;
      q0 = (int32_t)tm_read32(r0 + ox); q1 = (int32_t)tm_read32(r0 + ox + 2);
      acc0 = tm_smlad(q0, w01_0, acc0); acc0 = tm_smlabt(q1, w12_0, acc0);
      acc1 = tm_smlatb(q0, w01_0, acc1); acc1 = tm_smlad(q1, w12_0, acc1);
      q0 = (int32_t)tm_read32(r1 + ox); q1 = (int32_t)tm_read32(r1 + ox + 2);
      acc0 = tm_smlad(q0, w01_1, acc0); acc0 = tm_smlabt(q1, w12_1, acc0);
      acc1 = tm_smlatb(q0, w01_1, acc1); acc1 = tm_smlad(q1, w12_1, acc1);
      q0 = (int32_t)tm_read32(r2 + ox); q1 = (int32_t)tm_read32(r2 + ox + 2);
      acc0 = tm_smlad(q0, w01_2, acc0); acc0 = tm_smlabt(q1, w12_2, acc0);
      acc1 = tm_smlatb(q0, w01_2, acc1); acc1 = tm_smlad(q1, w12_2, acc1);
      out[ox * step] = requant(acc0, m0, e, nudge, q, full);
      out[(ox + 1) * step] = requant(acc1, m0, e, nudge, q, full);
    }
    if (ox < out_w) {                        /* odd width: the last output alone */
      int32_t acc = bias;
      acc = tm_smlad((int32_t)tm_read32(r0 + ox), w01_0, acc); acc += r0[ox + 2] * w[2];
      acc = tm_smlad((int32_t)tm_read32(r1 + ox), w01_1, acc); acc += r1[ox + 2] * w[5];
      acc = tm_smlad((int32_t)tm_read32(r2 + ox), w01_2, acc); acc += r2[ox + 2] * w[8];
      out[ox * step] = requant(acc, m0, e, nudge, q, full);
    }
  }
}

static void depthwise_3x3_channel(const tm_conv_params *p, int32_t c, const int16_t *pad, int32_t pad_w,
                                  int8_t *output) {
  if (full_range(p)) depthwise_3x3_body(p, c, pad, pad_w, output, 1);
  else depthwise_3x3_body(p, c, pad, pad_w, output, 0);
}

/* Any kernel and stride on one padded int16 channel: no bounds checks left in the loop. */
static void depthwise_any_channel(const tm_conv_params *p, int32_t c, const int16_t *pad, int32_t pad_w,
                                  int8_t *output) {
  const int8_t *w = p->weight + c * p->kernel_h * p->kernel_w;
  const out_q q = out_q_of(p);
  CHANNEL_SCALE(p, c, m0, e, nudge)
  for (int32_t oy = 0; oy < p->out_h; oy++)
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      const int16_t *window = pad + oy * p->stride_h * pad_w + ox * p->stride_w;
      int32_t acc = p->bias[c];
      for (int32_t ky = 0; ky < p->kernel_h; ky++)
        for (int32_t kx = 0; kx < p->kernel_w; kx++) acc += window[ky * pad_w + kx] * w[ky * p->kernel_w + kx];
      output[(oy * p->out_w + ox) * p->out_c + c] = requant(acc, m0, e, nudge, q, 0);
    }
}

/* Depthwise, one channel at a time through a zero-padded int16 copy of that channel (scratch:
 * (in_h + 2 pad_h) x (in_w + 2 pad_w) int16). Channel c is copied out before output channel c is
 * written, and no other channel is touched, so `output` may be `input` (in place, same shape). */
void tm_depthwise_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch) {
  TM_ASSERT(p->in_c == p->out_c && p->groups == p->in_c);
  TM_ASSERT(p->out_h == tm_out_size(p->in_h, p->kernel_h, p->stride_h, p->pad_h));
  TM_ASSERT(p->out_w == tm_out_size(p->in_w, p->kernel_w, p->stride_w, p->pad_w));
  TM_ASSERT_REQUANT(p, p->kernel_h * p->kernel_w, 255 * 128);
  const int32_t pad_w = p->in_w + 2 * p->pad_w, pad_h = p->in_h + 2 * p->pad_h;
  const int fast = p->kernel_h == 3 && p->kernel_w == 3 && p->stride_h == 1 && p->stride_w == 1;
  for (int32_t i = 0; i < pad_h * pad_w; i++) scratch[i] = 0;   /* the border stays 0 (= real 0) */
  for (int32_t c = 0; c < p->in_c; c++) {
    const int8_t *x = input + c;
    for (int32_t y = 0; y < p->in_h; y++) {
      int16_t *row = scratch + (y + p->pad_h) * pad_w + p->pad_w;
      for (int32_t i = 0; i < p->in_w; i++, x += p->in_c) row[i] = (int16_t)(*x - p->in_zero_point);
    }
    if (fast) depthwise_3x3_channel(p, c, scratch, pad_w, output);
    else depthwise_any_channel(p, c, scratch, pad_w, output);
  }
}
