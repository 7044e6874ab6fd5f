/* The engine's C runtime: one kernel per operator, all int8, activations in HWC order.
 *
 * Every operator has a plain *reference* kernel (tm_ref.c: loops written like the maths, the
 * specification in C) and, where it pays, an *optimised* kernel (tm_opt.c: ARMv7E-M DSP
 * instructions through ACLE intrinsics, several outputs per inner loop, weights rearranged by the
 * code generator). The fastest kernels are templates (tm_fast.h) that the generated model.c
 * instantiates once per layer shape, every shape a constant. All give the same bytes as the
 * reference kernels; the tests check it.
 *
 * Layouts (the code generator writes the constant arrays in these orders):
 *   feature map          (H, W, C)                 channels innermost
 *   conv2d weight        (C_out, kH, kW, C_in/groups)
 *   depthwise weight     (C, kH, kW)
 *   pointwise / fc weight (C_out, C_in)
 *   bias, multiplier, shift  (C_out,)  int32
 * Kernels never allocate: the caller passes every buffer (arena offsets chosen by the planner).
 * What the code generator knows of each kernel (when it may run, its scratch bytes, its
 * arguments) is the kernel's spec: engine/kernels_ref.py, kernels_opt.py, kernels_fast.py. */
#ifndef TM_RUNTIME_H
#define TM_RUNTIME_H
#include <stdint.h>
#include "tm_requant.h"

/* Convolutions of every kind (conv2d, depthwise, pointwise) and fully connected (1x1 map). */
typedef struct {
  int32_t in_h, in_w, in_c;          /* input map */
  int32_t out_h, out_w, out_c;       /* output map */
  int32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, groups;
  int32_t in_zero_point, out_zero_point, act_min, act_max;
  const int8_t *weight;              /* layouts above */
  const int32_t *bias;               /* optimised kernels: bias - in_zero_point * sum(weight row) */
  const int32_t *multiplier;         /* m0 per output channel, Q31 */
  const int32_t *shift;              /* exponent per output channel */
} tm_conv_params;

typedef struct {                     /* average and max pooling, no padding */
  int32_t in_h, in_w, channels, out_h, out_w;
  int32_t kernel_h, kernel_w, stride_h, stride_w;
} tm_pool_params;

typedef struct {                     /* TFLite's int8 add: both inputs rescaled to a common scale */
  int32_t size;                      /* elements */
  int32_t a_zero_point, b_zero_point, out_zero_point, left_shift;
  int32_t a_multiplier, a_shift, b_multiplier, b_shift, out_multiplier, out_shift;
  int32_t act_min, act_max;
} tm_add_params;

typedef struct { int32_t h, w, c; } tm_flatten_params;

/* ---- reference kernels (tm_ref.c) ---- */
void tm_conv2d_ref(const tm_conv_params *p, const int8_t *input, int8_t *output);
void tm_depthwise_ref(const tm_conv_params *p, const int8_t *input, int8_t *output);
/* In place: output overwrites input (same shape); scratch holds one input channel. */
void tm_depthwise_inplace_ref(const tm_conv_params *p, int8_t *data, int8_t *scratch);
void tm_pointwise_ref(const tm_conv_params *p, const int8_t *input, int8_t *output);
/* In place (C_in == C_out): scratch holds one pixel's outputs. */
void tm_pointwise_inplace_ref(const tm_conv_params *p, int8_t *data, int8_t *scratch);
void tm_fully_connected_ref(const tm_conv_params *p, const int8_t *input, int8_t *output);
void tm_avgpool_ref(const tm_pool_params *p, const int8_t *input, int8_t *output);
void tm_maxpool_ref(const tm_pool_params *p, const int8_t *input, int8_t *output);
void tm_add_ref(const tm_add_params *p, const int8_t *a, const int8_t *b, int8_t *output);
/* (H, W, C) -> (C, H, W) order: PyTorch's flatten on an HWC device. */
void tm_flatten_ref(const tm_flatten_params *p, const int8_t *input, int8_t *output);

/* ---- optimised kernels (tm_opt.c), same results; `bias` holds the folded bias (see above) ---- */
/* Preconditions and scratch bytes: each kernel's spec (engine/kernels_opt.py); what the scratch
 * holds: the comment at the kernel. */
/* groups == 1; scratch: two im2col rows, then the rows unpacked to int16 pairs. */
void tm_conv2d_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* input may equal output (in place); scratch: one zero-padded input channel as int16. */
void tm_depthwise_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int16_t *scratch);
/* scratch: two pixels unpacked to int16 pairs. */
void tm_pointwise_opt(const tm_conv_params *p, const int8_t *input, int8_t *output, int8_t *scratch);
/* In place (C_in == C_out): scratch: two pixels' outputs, then the pixels unpacked to int16 pairs. */
void tm_pointwise_inplace_opt(const tm_conv_params *p, int8_t *data, int8_t *scratch);
void tm_fully_connected_opt(const tm_conv_params *p, const int8_t *input, int8_t *output);

#endif
