/* The MFCC front end on the device: 16 kHz int16 audio in, int8 features out, frame by frame.
 *
 * The same steps as tinyml_utils/mfcc.py, in single-precision float (the Cortex-M4F's FPU):
 * a 480-sample frame every 320 samples, periodic Hann window, 512-point real FFT, magnitude,
 * 40 mel filters (20-4000 Hz), natural log of (energy + 1e-6), orthonormal DCT-II -> 10
 * coefficients, then quantized with the model's input scale and zero point. The constant tables
 * (window, twiddles, filterbank, DCT) are written by tinyml_utils/mcu/frontend.py from the
 * Python front end's own functions into mfcc_tables.c, so the two cannot drift apart.
 *
 * Streaming: samples arrive in chunks of any size (a 20 ms hop from a microphone, or a file);
 * mfcc_stream_push() keeps the last 480 samples and emits a frame's features each time one is
 * complete. A 1-second clip (16,000 samples) gives 49 frames, like the Python front end. */
#ifndef MFCC_H
#define MFCC_H
#include <stdint.h>
#include "mfcc_tables.h"

typedef struct {
  int16_t samples[MFCC_FRAME_LENGTH];  /* the frame being filled, oldest sample first */
  int32_t filled;                      /* how many of them are valid */
} mfcc_stream_t;

/* Float MFCCs of one frame of MFCC_FRAME_LENGTH int16 samples, coefficients[MFCC_NUM_COEFFS]. */
void mfcc_frame(const int16_t *frame, float *coefficients);

/* round(value * inv_scale) + zero_point, rounding half to even like NumPy's rint, clamped to int8. */
int8_t mfcc_quantize(float value, float inv_scale, int32_t zero_point);

void mfcc_stream_reset(mfcc_stream_t *stream);

/* Feed `count` samples. For every frame completed, writes its MFCC_NUM_COEFFS int8 features to
 * `features` (frame after frame, at most `max_frames` frames); returns the number of frames. */
int32_t mfcc_stream_push(mfcc_stream_t *stream, const int16_t *samples, int32_t count, float inv_scale,
                         int32_t zero_point, int8_t *features, int32_t max_frames);

#endif
