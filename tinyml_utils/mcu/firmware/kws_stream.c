/* Keyword spotting on a live stream: the firmware listens to a long recording (the host file
 * stream.bin) 20 ms at a time, as it would listen to a microphone.
 *
 * Every hop of 320 samples the front end completes one frame of 10 int8 MFCCs, which goes into
 * a ring of the last 49 frames (one second). Every `infer_every` hops the model classifies that
 * second; its int8 logits become posteriors (softmax), which are averaged over the last
 * `average_window` inferences. When a keyword's averaged posterior reaches `threshold`, and the
 * last detection is at least `suppression_hops` ago, the firmware prints
 *   detect <hop> class <c> score <posterior * 1000>
 * (the window then ends at sample 320 * hop + 160). At the end it prints the instruction
 * budget: ticks of the front end, the model and the post-processing, and the worst single hop.
 *
 * stream.bin (little-endian): "KWSS", uint32 samples, uint32 infer_every, uint32 average_window,
 * float32 threshold, uint32 suppression_hops, uint32 flags (bit 0: print every inference's
 * logits; bit 1: write every frame's features to features.bin), then the int16 samples.
 *
 * Everything about the model, its output quantization included, comes from model.h. The build
 * (mcu/kws.py) defines KWS_FIRST_KEYWORD, the first class that is a keyword (the class list is
 * the data set's, not the model's: classes 0 and 1 are _silence_ and _unknown_). */
#include <stdint.h>
#include "cycles.h"
#include "layer_marks.h"
#include "mathf.h"
#include "mfcc.h"
#include "model.h"
#include "report.h"
#include "semihost.h"
#include "startup.h"

#ifndef KWS_FIRST_KEYWORD
#error "build with -DKWS_FIRST_KEYWORD=<first keyword class> (mcu/kws.py does)"
#endif
#define MAX_WINDOW 16
#define PRINT_LOGITS 1u
#define WRITE_FEATURES 2u

static int16_t hop[MFCC_FRAME_STEP];
static mfcc_stream_t stream;
static int8_t ring[MFCC_NUM_FRAMES][MFCC_NUM_COEFFS];   /* the last second of features */
static float posteriors[MAX_WINDOW][MODEL_OUTPUT_SIZE];  /* the last `average_window` inferences */

/* softmax(scale * (logit - zero point)) into `out`, with the output scale of model.h. */
static void softmax(const int8_t *logits, float *out) {
  int32_t largest = logits[0];
  for (int32_t c = 1; c < MODEL_OUTPUT_SIZE; c++) if (logits[c] > largest) largest = logits[c];
  float total = 0.0f;
  for (int32_t c = 0; c < MODEL_OUTPUT_SIZE; c++) {
    out[c] = exp_f32(MODEL_OUTPUT_SCALE * (float)(logits[c] - largest));   /* the zero point cancels */
    total += out[c];
  }
  for (int32_t c = 0; c < MODEL_OUTPUT_SIZE; c++) out[c] /= total;
}

int main(void) {
  _Static_assert(MODEL_INPUT_SIZE == MFCC_NUM_FRAMES * MFCC_NUM_COEFFS, "the model must take 49 x 10 MFCCs");
  ticks_start();
  int input = sh_open("stream.bin", "rb");
  if (input < 0) return report_failure("cannot open stream.bin", EXIT_NO_INPUT);
  uint32_t header[7];
  if (sh_read(input, header, sizeof header) != sizeof header || header[0] != 0x5353574Bu /* "KWSS" */)
    return report_failure("stream.bin: not a stream (bad header)", EXIT_BAD_INPUT);
  uint32_t samples = header[1], infer_every = header[2], window = header[3], suppression = header[5];
  uint32_t flags = header[6];
  float threshold = f32_from_bits(header[4]);
  if (infer_every < 1 || window < 1 || window > MAX_WINDOW)
    return report_failure("stream.bin: infer_every must be >= 1 and average_window in 1..16", EXIT_BAD_INPUT);
  int features_file = (flags & WRITE_FEATURES) ? sh_open("features.bin", "wb") : -1;

  const float inv_scale = MODEL_INPUT_INV_SCALE;   /* q = round(x * inv_scale) + zero point */
  uint64_t frontend_total = 0, model_total = 0, post_total = 0, worst_hop = 0;
  int32_t frames = 0, next = 0, inferences = 0, last_detection = -1000000;
  const int32_t hops = (int32_t)(samples / MFCC_FRAME_STEP);
  mfcc_stream_reset(&stream);
  for (int32_t h = 0; h < hops; h++) {
    if (sh_read(input, hop, sizeof hop) != sizeof hop) return report_failure("stream.bin: truncated", EXIT_BAD_INPUT);
    uint64_t start = ticks_now();
    int8_t frame[2][MFCC_NUM_COEFFS];
    int32_t made = mfcc_stream_push(&stream, hop, MFCC_FRAME_STEP, inv_scale, MODEL_INPUT_ZERO_POINT, frame[0], 2);
    for (int32_t f = 0; f < made; f++) {           /* one frame per hop once the first is full */
      for (int32_t j = 0; j < MFCC_NUM_COEFFS; j++) ring[next][j] = frame[f][j];
      next = (next + 1) % MFCC_NUM_FRAMES;
      frames++;
    }
    uint64_t after_frontend = ticks_now();
    frontend_total += after_frontend - start;
    if (features_file >= 0 && made) sh_write_file(features_file, frame[0], made * MFCC_NUM_COEFFS);

    if (frames >= MFCC_NUM_FRAMES && h % (int32_t)infer_every == 0) {
      /* The ring's oldest frame is at `next`: copy the second into the model's input in order. */
      int8_t *input_map = model_input();
      for (int32_t t = 0; t < MFCC_NUM_FRAMES; t++)
        for (int32_t j = 0; j < MFCC_NUM_COEFFS; j++)
          input_map[t * MFCC_NUM_COEFFS + j] = ring[(next + t) % MFCC_NUM_FRAMES][j];
      layer_marks_start();
      model_run();
      uint64_t after_model = ticks_now();
      const int8_t *logits = model_output();

      /* Posterior smoothing: average the last `window` softmax outputs. */
      softmax(logits, posteriors[inferences % window]);
      inferences++;
      int32_t count = inferences < (int32_t)window ? inferences : (int32_t)window;
      int32_t best = -1;
      float best_score = 0.0f;
      for (int32_t c = KWS_FIRST_KEYWORD; c < MODEL_OUTPUT_SIZE; c++) {
        float sum = 0.0f;
        for (int32_t i = 0; i < count; i++) sum += posteriors[i][c];
        if (sum / (float)count > best_score) { best_score = sum / (float)count; best = c; }
      }
      int detected = best >= 0 && best_score >= threshold && h - last_detection >= (int32_t)suppression;
      if (detected) last_detection = h;
      uint64_t end = ticks_now();
      model_total += after_model - after_frontend;
      post_total += end - after_model;
      if (end - start > worst_hop) worst_hop = end - start;

      if (flags & PRINT_LOGITS) {
        line_start("inference"); line_int(h); line_str(" logits");
        for (int32_t c = 0; c < MODEL_OUTPUT_SIZE; c++) line_int(logits[c]);
        line_end();
      }
      if (detected) {
        line_start("detect"); line_int(h);
        line_str(" class"); line_int(best);
        line_str(" score"); line_int((int32_t)(1000.0f * best_score + 0.5f));
        line_end();
      }
    } else if (after_frontend - start > worst_hop) {
      worst_hop = after_frontend - start;
    }
  }
  if (features_file >= 0) sh_close(features_file);
  sh_close(input);

  line_start("summary hops"); line_int(hops);
  line_str(" inferences"); line_int(inferences);
  line_str(" fe"); line_int((int32_t)frontend_total);
  line_str(" nn"); line_int((int32_t)model_total);
  line_str(" post"); line_int((int32_t)post_total);
  line_str(" worst_hop"); line_int((int32_t)worst_hop);
  line_end();
  return report_stack_and_finish(MODEL_ARENA_SIZE);
}
