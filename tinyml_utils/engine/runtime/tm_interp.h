/* A table-driven interpreter: the model as data (one row per layer), one loop that dispatches.
 *
 * This is how an interpreter such as TensorFlow Lite Micro runs a model (without its flatbuffer
 * parsing and run-time memory planning): the kernels are chosen by a switch at run time, so every
 * kernel the switch names is linked into the program whether the model uses it or not. The code
 * generator emits this form with generate(..., style="interpreter") so the two can be measured. */
#ifndef TM_INTERP_H
#define TM_INTERP_H
#include <stdint.h>
#include "tm_runtime.h"

/* One value per kernel spec with an `opcode` (engine/kernels_ref.py, kernels_opt.py), named there;
 * a test checks this enum and the switch in tm_interp.c against the specs. */
enum tm_op {
  TM_VIEW, TM_CONV2D_REF, TM_DEPTHWISE_REF, TM_DEPTHWISE_INPLACE_REF, TM_POINTWISE_REF,
  TM_POINTWISE_INPLACE_REF, TM_FULLY_CONNECTED_REF, TM_AVGPOOL_REF, TM_MAXPOOL_REF, TM_ADD_REF,
  TM_FLATTEN_REF, TM_CONV2D_OPT, TM_DEPTHWISE_OPT, TM_POINTWISE_OPT, TM_POINTWISE_INPLACE_OPT,
  TM_FULLY_CONNECTED_OPT
};

typedef struct {
  int32_t op;                 /* enum tm_op */
  const void *params;         /* tm_conv_params, tm_pool_params, tm_add_params or tm_flatten_params */
  int32_t in, in2, out, scratch, out_bytes;   /* arena offsets (in2: add's second input), output bytes */
} tm_layer;

typedef void (*tm_hook)(int layer, const int8_t *output, int32_t bytes);

/* Run `n` layers on `arena`; `hook` (may be NULL) is called after each layer. */
void tm_interpret(const tm_layer *layers, int32_t n, int8_t *arena, tm_hook hook);

#endif
