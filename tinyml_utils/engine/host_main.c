/* The host harness of the engine's generated models (hostbuild.run_host): one program for many
 * models, compiled with the host's gcc.
 *
 * stdin: records (int32 model, int32 count, int32 dump) followed by `count` inputs of that model;
 * stdout: per input, with dump set every layer's output in order, then the model's output.
 * Before each input the arena's free region (model_scratch()) is filled with junk, as firmware
 * using it would leave it: a kernel that read it uninitialised would give different outputs.
 *
 * harness_models.h (written by hostbuild.py) includes every model's header and defines the table
 * `models[]` of their entry points, and a `<prefix>_layer_hook` per model that calls layer_hook(). */
#include <stdint.h>
#include <stdio.h>

static int dumping;
static void layer_hook(int layer, const int8_t *out, int32_t bytes);

#include "harness_models.h"

static void layer_hook(int layer, const int8_t *out, int32_t bytes) {
  (void)layer;
  if (dumping) fwrite(out, 1, (size_t)bytes, stdout);
}

int main(void) {
  int32_t head[3];
  while (fread(head, sizeof head, 1, stdin) == 1) {
    const model_entry *m = &models[head[0]];
    dumping = head[2];
    for (int32_t n = 0; n < head[1]; n++) {
      for (int32_t i = 0; i < m->scratch_size; i++) m->scratch()[i] = (int8_t)(0x5A ^ (i * 7 + n));
      if (fread(m->input(), 1, (size_t)m->in_size, stdin) != (size_t)m->in_size) return 2;
      m->run();
      fwrite(m->output(), 1, (size_t)m->out_size, stdout);
    }
  }
  return 0;
}
