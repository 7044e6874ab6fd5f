/* Debug builds (-DTM_DEBUG): the optimised kernels assert the preconditions under which they are
 * exact, the ones the code generator proved for the layer before it chose the kernel (the specs in
 * engine/kernels_opt.py and engine/kernels_fast.py). Called outside them, a kernel would not crash:
 * it would compute plausible, wrong bytes. A debug build stops at the first broken precondition
 * instead. Release builds compile none of this (TM_ASSERT expands to nothing). */
#ifndef TM_DEBUG_H
#define TM_DEBUG_H
#include <stdint.h>

#ifdef TM_DEBUG
#include <assert.h>
#define TM_ASSERT(condition) assert(condition)

/* Every shift in [lo, hi]. The specification's shifts are never below -31 (quantize_multiplier
 * returns a zero multiplier instead), and the optimised requantization needs shift <= -1. */
static inline int tm_shifts_in(const int32_t *shift, int32_t n, int32_t lo, int32_t hi) {
  for (int32_t c = 0; c < n; c++)
    if (shift[c] < lo || shift[c] > hi) return 0;
  return 1;
}

/* The specialised kernels' right shifts e = -shift, as bytes: every one in [lo, hi]. */
static inline int tm_exponents_in(const uint8_t *e, int32_t n, int32_t lo, int32_t hi) {
  for (int32_t c = 0; c < n; c++)
    if (e[c] < lo || e[c] > hi) return 0;
  return 1;
}

/* |bias[c] / divisor| + k * per_term < 2^30 for every channel: no accumulator can reach 2^30,
 * whatever the input (divisor 2 for the specialised kernels' doubled bias). */
static inline int tm_accumulator_bounded(const int32_t *bias, int32_t n, int32_t divisor, int32_t k,
                                         int32_t per_term) {
  for (int32_t c = 0; c < n; c++) {
    const int64_t b = bias[c] / divisor;
    if ((b < 0 ? -b : b) + (int64_t)k * per_term >= ((int64_t)1 << 30)) return 0;
  }
  return 1;
}

/* The output size of a convolution or pooling window along one axis. */
static inline int32_t tm_out_size(int32_t in, int32_t kernel, int32_t stride, int32_t pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}
#else
#define TM_ASSERT(condition) ((void)0)
#endif

#endif
