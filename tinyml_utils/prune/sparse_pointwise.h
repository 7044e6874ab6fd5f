/* Pointwise convolution kernels for dense and sparse int8 weights (see sparse_pointwise.c). */
#ifndef SPARSE_POINTWISE_H
#define SPARSE_POINTWISE_H
#include <stdint.h>

void pw_dense_ref(const int8_t *x, const int8_t *w, int32_t *out, int positions, int c_in, int c_out);
void pw_dense_simd(const int8_t *x, const int8_t *w, int32_t *out, int positions, int c_in, int c_out,
                   int16_t *x16);
void pw_csr(const int8_t *x, const int8_t *values, const uint8_t *col_index, const uint16_t *row_ptr,
            int32_t *out, int positions, int c_in, int c_out);
void pw_bitmask(const int8_t *x, const uint32_t *bits, const int8_t *values, int32_t *out, int positions,
                int c_in, int c_out);

#endif
