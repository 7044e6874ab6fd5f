/* A hand-written stand-in with the API of the engine's generated model.h, for testing the
 * firmware without the code generator. Two layers on the 49 x 10 int8 MFCC map:
 *   0 "mean": the mean over frames of (x - zero point) per coefficient, int8 (1 x 1 x 10);
 *   1 "fc":   logits[c] = clamp((sum_j W[c][j] * mean[j]) >> 3), W[c][j] = (7c + 3j) % 11 - 5.
 * tests/test_mcu_firmware.py mirrors it in NumPy. */
#ifndef MODEL_H
#define MODEL_H
#include <stdint.h>

#define MODEL_INPUT_SIZE 490
#define MODEL_OUTPUT_SIZE 12
#define MODEL_ARENA_SIZE 512
#define MODEL_NUM_LAYERS 2
#define MODEL_INPUT_SCALE 0.4010465741157532f
#define MODEL_INPUT_ZERO_POINT 90
#define MODEL_INPUT_INV_SCALE 2.493475914001465f    /* float32(1) / float32(MODEL_INPUT_SCALE) */
#define MODEL_OUTPUT_SCALE 0.1f
#define MODEL_OUTPUT_ZERO_POINT 0

extern const char *const model_layer_names[MODEL_NUM_LAYERS];
int8_t *model_input(void);
const int8_t *model_output(void);
void model_run(void);
#ifdef MODEL_LAYER_HOOK
void model_layer_hook(int layer, const int8_t *output, int32_t bytes);
#endif

#endif
