/* Reference kernels: one plain loop nest per operator, the quantization arithmetic spelled out.
 * They are the specification in C (tinyml_utils/quant/interpreter.py in Python): every optimised
 * kernel must give the same bytes. Activations are HWC: element (y, x, c) of an H x W x C map is
 * at [(y * W + x) * C + c]. Each kernel's spec for the code generator: engine/kernels_ref.py. */
#include "tm_runtime.h"

/* acc = sum over the window and input channels of (x - z_x) * w; padding contributes 0.
 * Summed first, then the bias: the sum alone cannot overflow int32 (terms <= 255 * 127). */
void tm_conv2d_ref(const tm_conv_params *p, const int8_t *input, int8_t *output) {
  const int32_t c_in_g = p->in_c / p->groups, c_out_g = p->out_c / p->groups;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t first_c = (oc / c_out_g) * c_in_g;   /* this group's input channels */
        int32_t acc = 0;
        for (int32_t ky = 0; ky < p->kernel_h; ky++) {
          const int32_t iy = oy * p->stride_h - p->pad_h + ky;
          if (iy < 0 || iy >= p->in_h) continue;            /* padding row */
          for (int32_t kx = 0; kx < p->kernel_w; kx++) {
            const int32_t ix = ox * p->stride_w - p->pad_w + kx;
            if (ix < 0 || ix >= p->in_w) continue;          /* padding column */
            const int8_t *x = input + (iy * p->in_w + ix) * p->in_c + first_c;
            const int8_t *w = p->weight + ((oc * p->kernel_h + ky) * p->kernel_w + kx) * c_in_g;
            for (int32_t ic = 0; ic < c_in_g; ic++) acc += (x[ic] - p->in_zero_point) * w[ic];
          }
        }
        acc += p->bias[oc];
        output[(oy * p->out_w + ox) * p->out_c + oc] = tm_requantize(
            acc, p->multiplier[oc], p->shift[oc], p->out_zero_point, p->act_min, p->act_max);
      }
    }
  }
}

/* One output channel of a depthwise convolution, read from `x` (channel stride `step`). */
static void depthwise_channel(const tm_conv_params *p, int32_t c, const int8_t *x, int32_t step,
                              int8_t *output) {
  const int8_t *w = p->weight + c * p->kernel_h * p->kernel_w;
  for (int32_t oy = 0; oy < p->out_h; oy++) {
    for (int32_t ox = 0; ox < p->out_w; ox++) {
      int32_t acc = 0;
      for (int32_t ky = 0; ky < p->kernel_h; ky++) {
        const int32_t iy = oy * p->stride_h - p->pad_h + ky;
        if (iy < 0 || iy >= p->in_h) continue;
        for (int32_t kx = 0; kx < p->kernel_w; kx++) {
          const int32_t ix = ox * p->stride_w - p->pad_w + kx;
          if (ix < 0 || ix >= p->in_w) continue;
          acc += (x[(iy * p->in_w + ix) * step] - p->in_zero_point) * w[ky * p->kernel_w + kx];
        }
      }
      acc += p->bias[c];
      output[(oy * p->out_w + ox) * p->out_c + c] = tm_requantize(
          acc, p->multiplier[c], p->shift[c], p->out_zero_point, p->act_min, p->act_max);
    }
  }
}

void tm_depthwise_ref(const tm_conv_params *p, const int8_t *input, int8_t *output) {
  for (int32_t c = 0; c < p->in_c; c++) depthwise_channel(p, c, input + c, p->in_c, output);
}

/* Channel c of the output needs only channel c of the input. Copy that channel aside, then
 * write the output channel over it: the other channels are untouched, so one channel of scratch
 * replaces a whole second tensor. */
void tm_depthwise_inplace_ref(const tm_conv_params *p, int8_t *data, int8_t *scratch) {
  const int32_t pixels = p->in_h * p->in_w;
  for (int32_t c = 0; c < p->in_c; c++) {
    for (int32_t i = 0; i < pixels; i++) scratch[i] = data[i * p->in_c + c];
    depthwise_channel(p, c, scratch, 1, data);
  }
}

/* One pixel of a pointwise (1x1) convolution: C_in inputs -> C_out outputs. */
static void pointwise_pixel(const tm_conv_params *p, const int8_t *x, int8_t *y) {
  for (int32_t oc = 0; oc < p->out_c; oc++) {
    const int8_t *w = p->weight + oc * p->in_c;
    int32_t acc = 0;
    for (int32_t ic = 0; ic < p->in_c; ic++) acc += (x[ic] - p->in_zero_point) * w[ic];
    acc += p->bias[oc];
    y[oc] = tm_requantize(acc, p->multiplier[oc], p->shift[oc], p->out_zero_point, p->act_min, p->act_max);
  }
}

void tm_pointwise_ref(const tm_conv_params *p, const int8_t *input, int8_t *output) {
  for (int32_t i = 0; i < p->in_h * p->in_w; i++) pointwise_pixel(p, input + i * p->in_c, output + i * p->out_c);
}

/* Output pixel i needs only input pixel i: compute it aside, then write it over its input. */
void tm_pointwise_inplace_ref(const tm_conv_params *p, int8_t *data, int8_t *scratch) {
  for (int32_t i = 0; i < p->in_h * p->in_w; i++) {
    int8_t *pixel = data + i * p->in_c;
    pointwise_pixel(p, pixel, scratch);
    for (int32_t c = 0; c < p->out_c; c++) pixel[c] = scratch[c];
  }
}

void tm_fully_connected_ref(const tm_conv_params *p, const int8_t *input, int8_t *output) {
  pointwise_pixel(p, input, output);   /* a fully connected layer is a pointwise conv on one pixel */
}

/* Sum over the window, divided by its size rounding half away from zero (TFLite's rounding). */
void tm_avgpool_ref(const tm_pool_params *p, const int8_t *input, int8_t *output) {
  const int32_t count = p->kernel_h * p->kernel_w;
  for (int32_t oy = 0; oy < p->out_h; oy++)
    for (int32_t ox = 0; ox < p->out_w; ox++)
      for (int32_t c = 0; c < p->channels; c++) {
        int32_t sum = 0;
        for (int32_t ky = 0; ky < p->kernel_h; ky++)
          for (int32_t kx = 0; kx < p->kernel_w; kx++)
            sum += input[((oy * p->stride_h + ky) * p->in_w + ox * p->stride_w + kx) * p->channels + c];
        sum = sum > 0 ? sum + count / 2 : sum - count / 2;
        output[(oy * p->out_w + ox) * p->channels + c] = tm_clamp_s8(sum / count, -128, 127);
      }
}

void tm_maxpool_ref(const tm_pool_params *p, const int8_t *input, int8_t *output) {
  for (int32_t oy = 0; oy < p->out_h; oy++)
    for (int32_t ox = 0; ox < p->out_w; ox++)
      for (int32_t c = 0; c < p->channels; c++) {
        int32_t best = -128;
        for (int32_t ky = 0; ky < p->kernel_h; ky++)
          for (int32_t kx = 0; kx < p->kernel_w; kx++) {
            int32_t v = input[((oy * p->stride_h + ky) * p->in_w + ox * p->stride_w + kx) * p->channels + c];
            best = v > best ? v : best;
          }
        output[(oy * p->out_w + ox) * p->channels + c] = (int8_t)best;
      }
}

/* (x - z) << left_shift gives both inputs headroom; each is scaled by its own multiplier to a
 * common scale, the sum is scaled to the output. Sums stay far inside int32 (|x - z| <= 255). */
void tm_add_ref(const tm_add_params *p, const int8_t *a, const int8_t *b, int8_t *output) {
  for (int32_t i = 0; i < p->size; i++) {
    int32_t xa = (a[i] - p->a_zero_point) * (1 << p->left_shift);
    int32_t xb = (b[i] - p->b_zero_point) * (1 << p->left_shift);
    int64_t sum = (int64_t)tm_mbqm(xa, p->a_multiplier, p->a_shift) + tm_mbqm(xb, p->b_multiplier, p->b_shift);
    if (sum > INT32_MAX) sum = INT32_MAX;     /* the specification rescales the int64 sum; it saturates */
    if (sum < INT32_MIN) sum = INT32_MIN;     /* there only if it does not fit int32 */
    output[i] = tm_requantize((int32_t)sum, p->out_multiplier, p->out_shift, p->out_zero_point,
                              p->act_min, p->act_max);
  }
}

void tm_flatten_ref(const tm_flatten_params *p, const int8_t *input, int8_t *output) {
  for (int32_t c = 0; c < p->c; c++)
    for (int32_t i = 0; i < p->h * p->w; i++) output[c * p->h * p->w + i] = input[i * p->c + c];
}
