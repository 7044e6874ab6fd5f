/* The device harness of the engine's generated models (mcu/models_on_device.py): many models in
 * one program, their inputs in flash, run one after another on the emulated board.
 *
 * Per input it prints two lines over semihosting:
 *   T <instructions of model_run()> <instructions of layer 1> ... <of layer L>
 *   O <the int8 output as hex>
 * Instructions are SysTick ticks times INSTRUCTIONS_PER_TICK (cycles.h); the layer hook reads
 * SysTick after every layer, so each layer's count includes the hook's few instructions.
 * Before each input the arena's free region (model_scratch()) is filled with junk, as firmware
 * using it between inferences would leave it.
 *
 * harness_models.h (written by models_on_device.py) includes every model's header, defines the
 * table `models[]`, a `<prefix>_layer_hook` per model calling layer_hook(), MAX_LAYERS,
 * NUM_MODELS, and the inputs: `inputs[m]` holds `counts[m]` inputs of model m, one after another. */
#include <stdint.h>
#include "cycles.h"
#include "semihost.h"

static void layer_hook(int layer, const int8_t *out, int32_t bytes);

#include "harness_models.h"

static uint64_t marks[MAX_LAYERS + 1];
static int32_t num_marks;

static void layer_hook(int layer, const int8_t *out, int32_t bytes) {
  (void)layer; (void)out; (void)bytes;
  marks[++num_marks] = ticks_now();
}

/* Bytes as hex digits, at most 64 bytes per semihosting call, then a newline. */
static void put_hex(const int8_t *data, int32_t n) {
  static const char digits[] = "0123456789abcdef";
  char line[2 * 64 + 2];
  for (int32_t i = 0; i < n; i += 64) {
    int32_t k = 0;
    for (int32_t j = i; j < n && j < i + 64; j++) {
      line[k++] = digits[((uint8_t)data[j]) >> 4];
      line[k++] = digits[((uint8_t)data[j]) & 15];
    }
    line[k] = 0;
    sh_write(line);
  }
  sh_write("\n");
}

static void run_one(const model_entry *m, const int8_t *x, int32_t n) {
  int8_t *junk = m->scratch();
  for (int32_t i = 0; i < m->scratch_size; i++) junk[i] = (int8_t)(0x5A ^ (i * 7 + n));
  int8_t *dst = m->input();
  for (int32_t i = 0; i < m->in_size; i++) dst[i] = x[i];
  num_marks = 0;
  marks[0] = ticks_now();
  m->run();
  uint64_t end = ticks_now();
  sh_write("T "); sh_write_int((int32_t)((end - marks[0]) * INSTRUCTIONS_PER_TICK));
  for (int32_t l = 1; l <= num_marks; l++) {
    sh_write(" "); sh_write_int((int32_t)((marks[l] - marks[l - 1]) * INSTRUCTIONS_PER_TICK));
  }
  sh_write("\nO ");
  put_hex(m->output(), m->out_size);
}

int main(void) {
  ticks_start();
  for (int32_t m = 0; m < NUM_MODELS; m++)
    for (int32_t n = 0; n < counts[m]; n++) run_one(&models[m], inputs[m] + n * models[m].in_size, n);
  return 0;
}
