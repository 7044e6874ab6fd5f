#include "model.h"

static int8_t arena[MODEL_ARENA_SIZE];   /* input 0..489, mean 490..499, logits 500..511 */
const char *const model_layer_names[MODEL_NUM_LAYERS] = {"mean", "fc"};

int8_t *model_input(void) { return arena; }
const int8_t *model_output(void) { return arena + 500; }

#ifndef STANDIN_MEAN_BIAS
#define STANDIN_MEAN_BIAS 0   /* tests inject a bug here to exercise the layer-diff helper */
#endif

void model_run(void) {
  int8_t *mean = arena + 490, *logits = arena + 500;
  for (int j = 0; j < 10; j++) {
    int32_t sum = 0;
    for (int t = 0; t < 49; t++) sum += arena[t * 10 + j] - MODEL_INPUT_ZERO_POINT;
    int32_t m = sum / 49 + STANDIN_MEAN_BIAS;
    mean[j] = (int8_t)(m < -128 ? -128 : m > 127 ? 127 : m);
  }
#ifdef MODEL_LAYER_HOOK
  model_layer_hook(0, mean, 10);
#endif
  for (int c = 0; c < 12; c++) {
    int32_t acc = 0;
    for (int j = 0; j < 10; j++) acc += ((7 * c + 3 * j) % 11 - 5) * mean[j];
    acc >>= 3;
    logits[c] = (int8_t)(acc < -128 ? -128 : acc > 127 ? 127 : acc);
  }
#ifdef MODEL_LAYER_HOOK
  model_layer_hook(1, logits, 12);
#endif
}
