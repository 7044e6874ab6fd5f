#include "layer_marks.h"
#include "cycles.h"
#include "semihost.h"

uint64_t layer_marks[MODEL_NUM_LAYERS + 1];

void layer_marks_start(void) { layer_marks[0] = ticks_now(); }

#ifdef KWS_DUMP_LAYERS
static int dump_file = -1;
void layer_dump_open(void) { dump_file = sh_open("layers.bin", "wb"); }
void layer_dump_close(void) { if (dump_file >= 0) sh_close(dump_file); }
#else
void layer_dump_open(void) {}
void layer_dump_close(void) {}
#endif

void model_layer_hook(int layer, const int8_t *output, int32_t bytes) {
  layer_marks[layer + 1] = ticks_now();
#ifdef KWS_DUMP_LAYERS
  /* A record per layer: its index and size (two int32), then its int8 output in HWC order. */
  if (dump_file >= 0) {
    const int32_t head[2] = {layer, bytes};
    sh_write_file(dump_file, head, sizeof head);
    sh_write_file(dump_file, output, bytes);
  }
#else
  (void)output;
  (void)bytes;
#endif
}
