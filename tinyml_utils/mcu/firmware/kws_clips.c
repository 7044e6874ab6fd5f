/* Keyword spotting on a batch of 1-second clips, read from the host file clips.bin.
 *
 * For each clip: read it hop by hop (320 samples, as a microphone driver would deliver them),
 * compute the 49 x 10 int8 MFCC features on the device straight into the model's input, run
 * the model, and print one line:
 *   clip <index> class <argmax> fe <ticks> nn <ticks> logits <12 int8> layers <ticks per layer>
 * Ticks are SysTick ticks (instructions = ticks * 1e9 / SysTick Hz under QEMU's -icount).
 *
 * clips.bin (little-endian): "KWSC", uint32 clips, uint32 samples per clip (16000),
 * uint32 flags (bit 0: also write the int8 features of every clip to features.bin), then the
 * clips' int16 samples one after the other. */
#include <stdint.h>
#include "cycles.h"
#include "layer_marks.h"
#include "mfcc.h"
#include "model.h"
#include "report.h"
#include "semihost.h"
#include "startup.h"

#define CLIP_SAMPLES MFCC_SAMPLE_RATE   /* one second: 16000 samples */
#define FEATURE_BYTES (MFCC_NUM_FRAMES * MFCC_NUM_COEFFS)
#define WRITE_FEATURES 1u

static int16_t hop[MFCC_FRAME_STEP];
static mfcc_stream_t stream;

int main(void) {
  _Static_assert(MODEL_INPUT_SIZE == FEATURE_BYTES, "the model must take 49 x 10 MFCC features");
  ticks_start();
  int input = sh_open("clips.bin", "rb");
  if (input < 0) return report_failure("cannot open clips.bin", EXIT_NO_INPUT);
  uint32_t header[4];
  if (sh_read(input, header, sizeof header) != sizeof header || header[0] != 0x4353574Bu /* "KWSC" read as a little-endian word */)
    return report_failure("clips.bin: not a clip batch (bad header)", EXIT_BAD_INPUT);
  uint32_t clips = header[1], flags = header[3];
  if (header[2] != CLIP_SAMPLES) return report_failure("clips.bin: clips must have 16000 samples", EXIT_BAD_INPUT);
  int features_file = (flags & WRITE_FEATURES) ? sh_open("features.bin", "wb") : -1;
  layer_dump_open();

  line_start("layers");
  for (int32_t i = 0; i < MODEL_NUM_LAYERS; i++) { line_str(" "); line_str(model_layer_names[i]); }
  line_end();

  const float inv_scale = MODEL_INPUT_INV_SCALE;   /* q = round(x * inv_scale) + zero point */
  for (uint32_t clip = 0; clip < clips; clip++) {
    int8_t *features = model_input();
    int32_t frames = 0;
    uint64_t frontend_ticks = 0;
    mfcc_stream_reset(&stream);
    for (int32_t done = 0; done < CLIP_SAMPLES; done += MFCC_FRAME_STEP) {
      int32_t count = CLIP_SAMPLES - done < MFCC_FRAME_STEP ? CLIP_SAMPLES - done : MFCC_FRAME_STEP;
      if (sh_read(input, hop, 2 * count) != 2 * count) return report_failure("clips.bin: truncated", EXIT_BAD_INPUT);
      uint64_t start = ticks_now();
      frames += mfcc_stream_push(&stream, hop, count, inv_scale, MODEL_INPUT_ZERO_POINT,
                                 features + frames * MFCC_NUM_COEFFS, MFCC_NUM_FRAMES - frames);
      frontend_ticks += ticks_now() - start;
    }
    if (frames != MFCC_NUM_FRAMES) return report_failure("the front end did not produce 49 frames", EXIT_BAD_INPUT);
    if (features_file >= 0) sh_write_file(features_file, features, FEATURE_BYTES);

    layer_marks_start();
    model_run();
    uint64_t model_ticks = ticks_now() - layer_marks[0];

    const int8_t *logits = model_output();
    int32_t best = 0;
    for (int32_t c = 1; c < MODEL_OUTPUT_SIZE; c++) if (logits[c] > logits[best]) best = c;
    line_start("clip");
    line_int((int32_t)clip);
    line_str(" class"); line_int(best);
    line_str(" fe"); line_int((int32_t)frontend_ticks);
    line_str(" nn"); line_int((int32_t)model_ticks);
    line_str(" logits");
    for (int32_t c = 0; c < MODEL_OUTPUT_SIZE; c++) line_int(logits[c]);
    line_str(" layers");
    for (int32_t i = 0; i < MODEL_NUM_LAYERS; i++) line_int((int32_t)(layer_marks[i + 1] - layer_marks[i]));
    line_end();
  }
  if (features_file >= 0) sh_close(features_file);
  layer_dump_close();
  sh_close(input);

  return report_stack_and_finish(MODEL_ARENA_SIZE);
}
