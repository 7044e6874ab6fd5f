#include "tm_interp.h"

void tm_interpret(const tm_layer *layers, int32_t n, int8_t *arena, tm_hook hook) {
  for (int32_t i = 0; i < n; i++) {
    const tm_layer *l = &layers[i];
    const void *p = l->params;
    int8_t *in = arena + l->in, *out = arena + l->out, *scratch = arena + l->scratch;
    switch (l->op) {
      case TM_VIEW: break;
      case TM_CONV2D_REF: tm_conv2d_ref(p, in, out); break;
      case TM_DEPTHWISE_REF: tm_depthwise_ref(p, in, out); break;
      case TM_DEPTHWISE_INPLACE_REF: tm_depthwise_inplace_ref(p, out, scratch); break;
      case TM_POINTWISE_REF: tm_pointwise_ref(p, in, out); break;
      case TM_POINTWISE_INPLACE_REF: tm_pointwise_inplace_ref(p, out, scratch); break;
      case TM_FULLY_CONNECTED_REF: tm_fully_connected_ref(p, in, out); break;
      case TM_AVGPOOL_REF: tm_avgpool_ref(p, in, out); break;
      case TM_MAXPOOL_REF: tm_maxpool_ref(p, in, out); break;
      case TM_ADD_REF: tm_add_ref(p, in, arena + l->in2, out); break;
      case TM_FLATTEN_REF: tm_flatten_ref(p, in, out); break;
      case TM_CONV2D_OPT: tm_conv2d_opt(p, in, out, scratch); break;
      case TM_DEPTHWISE_OPT: tm_depthwise_opt(p, in, out, (int16_t *)(void *)scratch); break;
      case TM_POINTWISE_OPT: tm_pointwise_opt(p, in, out, scratch); break;
      case TM_POINTWISE_INPLACE_OPT: tm_pointwise_inplace_opt(p, out, scratch); break;
      case TM_FULLY_CONNECTED_OPT: tm_fully_connected_opt(p, in, out); break;
      default: return;        /* an unknown row: stop rather than run garbage */
    }
    if (hook) hook((int)i, out, l->out_bytes);
  }
}
