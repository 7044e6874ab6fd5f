/* The MFCC front end in C: see mfcc.h for the steps. Plain loops, single precision. */
#include "mfcc.h"
#include "mathf.h"

/* Work buffers (static: they live in .bss, not on the stack). */
static float fft_buffer[MFCC_FFT_SIZE];          /* 512 reals = 256 complex (re, im) pairs */
static float magnitude[MFCC_LAST_BIN + 1];        /* |X[k]| for the bins the filters use */
static float log_mel[MFCC_NUM_MEL];

/* In-place radix-2 FFT of 256 complex values z[n] = (z[2n], z[2n+1]).
 * First the values are put in bit-reversed order, then log2(256) = 8 stages of butterflies
 * combine transforms of size 2, 4, ..., 256. twiddle[j] = (cos, -sin)(2 pi j / 256). */
static void fft_complex_256(float *z) {
  const int32_t n = MFCC_FFT_SIZE / 2;
  for (int32_t i = 0; i < n; i++) {
    int32_t j = mfcc_bit_reverse[i];
    if (j > i) {
      float re = z[2 * i], im = z[2 * i + 1];
      z[2 * i] = z[2 * j]; z[2 * i + 1] = z[2 * j + 1];
      z[2 * j] = re; z[2 * j + 1] = im;
    }
  }
  for (int32_t size = 2; size <= n; size *= 2) {
    int32_t half = size / 2, step = n / size;
    for (int32_t k = 0; k < half; k++) {
      float w_re = mfcc_fft_twiddle[k * step][0], w_im = mfcc_fft_twiddle[k * step][1];
      for (int32_t start = 0; start < n; start += size) {
        float *a = z + 2 * (start + k), *b = z + 2 * (start + k + half);
        float a_re = a[0], a_im = a[1];               /* (read before writing: a and b could alias) */
        float t_re = b[0] * w_re - b[1] * w_im;       /* t = b * w */
        float t_im = b[0] * w_im + b[1] * w_re;
        a[0] = a_re + t_re; a[1] = a_im + t_im;       /* a + t */
        b[0] = a_re - t_re; b[1] = a_im - t_im;       /* a - t */
      }
    }
  }
}

/* |X[k]| of the 512-point FFT of 512 real values, from the 256-point complex FFT Z of the same
 * values read as z[n] = x[2n] + i x[2n+1]. With Zc = conj(Z[256 - k]):
 *   even part E = (Z[k] + Zc) / 2,  odd part O = (Z[k] - Zc) / (2i),  X[k] = E + e^(-2 pi i k/512) O.
 * Only the bins the mel filters use are computed. */
static void real_fft_magnitude(const float *z) {
  const int32_t n = MFCC_FFT_SIZE / 2;
  for (int32_t k = MFCC_FIRST_BIN; k <= MFCC_LAST_BIN; k++) {
    int32_t m = (n - k) % n;
    float zr = z[2 * k], zi = z[2 * k + 1], cr = z[2 * m], ci = -z[2 * m + 1];
    float e_re = 0.5f * (zr + cr), e_im = 0.5f * (zi + ci);
    float o_re = 0.5f * (zi - ci), o_im = -0.5f * (zr - cr);  /* (Z - Zc) / (2i) */
    float w_re = mfcc_split_twiddle[k][0], w_im = mfcc_split_twiddle[k][1];
    float x_re = e_re + w_re * o_re - w_im * o_im;
    float x_im = e_im + w_re * o_im + w_im * o_re;
    magnitude[k] = __builtin_sqrtf(x_re * x_re + x_im * x_im);   /* one VSQRT instruction */
  }
}

void mfcc_frame(const int16_t *frame, float *coefficients) {
  /* Window (the table includes the 1/32768 that maps int16 to [-1, 1)), zero-pad to 512. */
  for (int32_t i = 0; i < MFCC_FRAME_LENGTH; i++) fft_buffer[i] = (float)frame[i] * mfcc_window[i];
  for (int32_t i = MFCC_FRAME_LENGTH; i < MFCC_FFT_SIZE; i++) fft_buffer[i] = 0.0f;
  fft_complex_256(fft_buffer);
  real_fft_magnitude(fft_buffer);

  /* Mel filterbank, stored sparsely: filter m covers mfcc_mel_num_bins[m] bins from
   * mfcc_mel_first_bin[m]; its weights follow each other in mfcc_mel_weights. */
  const float *weight = mfcc_mel_weights;
  for (int32_t m = 0; m < MFCC_NUM_MEL; m++) {
    float energy = 0.0f;
    for (int32_t i = 0; i < mfcc_mel_num_bins[m]; i++) energy += *weight++ * magnitude[mfcc_mel_first_bin[m] + i];
    log_mel[m] = log_f32(energy + MFCC_LOG_FLOOR);
  }
  /* DCT-II (orthonormal), first MFCC_NUM_COEFFS coefficients. */
  for (int32_t j = 0; j < MFCC_NUM_COEFFS; j++) {
    float sum = 0.0f;
    for (int32_t m = 0; m < MFCC_NUM_MEL; m++) sum += mfcc_dct[j][m] * log_mel[m];
    coefficients[j] = sum;
  }
}

int8_t mfcc_quantize(float value, float inv_scale, int32_t zero_point) {
  float x = value * inv_scale;
  if (x > 1000.0f) x = 1000.0f;             /* far outside int8 either way; keeps the cast defined */
  if (x < -1000.0f) x = -1000.0f;
  int32_t n = (int32_t)x;                   /* truncates toward zero ... */
  if ((float)n > x) n--;                    /* ... so step down for negatives: n = floor(x) */
  float fraction = x - (float)n;            /* exact for |x| < 2^23 */
  if (fraction > 0.5f || (fraction == 0.5f && (n & 1))) n++;   /* half to even */
  n += zero_point;
  return (int8_t)(n < -128 ? -128 : n > 127 ? 127 : n);
}

void mfcc_stream_reset(mfcc_stream_t *stream) { stream->filled = 0; }

int32_t mfcc_stream_push(mfcc_stream_t *stream, const int16_t *samples, int32_t count, float inv_scale,
                         int32_t zero_point, int8_t *features, int32_t max_frames) {
  int32_t frames = 0;
  for (int32_t i = 0; i < count; i++) {
    stream->samples[stream->filled++] = samples[i];
    if (stream->filled < MFCC_FRAME_LENGTH) continue;
    if (frames < max_frames) {                 /* a whole frame: compute its features */
      float coefficients[MFCC_NUM_COEFFS];
      mfcc_frame(stream->samples, coefficients);
      for (int32_t j = 0; j < MFCC_NUM_COEFFS; j++)
        features[frames * MFCC_NUM_COEFFS + j] = mfcc_quantize(coefficients[j], inv_scale, zero_point);
      frames++;
    }
    /* The next frame starts MFCC_FRAME_STEP samples later: keep the overlap. */
    int32_t keep = MFCC_FRAME_LENGTH - MFCC_FRAME_STEP;
    for (int32_t j = 0; j < keep; j++) stream->samples[j] = stream->samples[MFCC_FRAME_STEP + j];
    stream->filled = keep;
  }
  return frames;
}
