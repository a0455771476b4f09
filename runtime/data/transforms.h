/*
 * transforms.h — the augmentation ops on uint8 RGB images with
 * torchvision/PIL semantics (resize = PIL's bilinear resample with its
 * antialiasing support and fixed-point rounding, crops as torchvision's),
 * and the application of a Recipe pipeline (TransformOp list) to one sample.
 *
 * All randomness comes from a SampleRng: a counter stream keyed by
 * (seed, epoch, sample index), so a sample's result does not depend on which
 * thread processes it.
 */
#ifndef RXC_DATA_TRANSFORMS_H
#define RXC_DATA_TRANSFORMS_H

#include <stdbool.h>
#include <stdint.h>

#include "data/image.h"
#include "recipe.h"
#include "util.h"
#include "error.h"

typedef struct SampleRng {
    uint64_t key;
    uint64_t counter;
} SampleRng;

/* The per-sample stream of the loader: (seed, epoch, index). */
static inline SampleRng sample_rng(uint64_t seed, int epoch, int64_t index) {
    SampleRng r = {rng_key(seed, 0xDA7A0000ULL + (uint64_t)epoch, (uint64_t)index), 0};
    return r;
}
static inline uint64_t srng_u64(SampleRng *r) { return rng_key(r->key, 0x5A, r->counter++); }
/* Uniform in [0, 1) with 53 bits. */
static inline double srng_uniform(SampleRng *r) { return (double)(srng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }
/* Uniform integer in [0, n), n >= 1. */
static inline int srng_below(SampleRng *r, int n) {
    return (int)(((srng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* Output size of torchvision's Resize(size) on a w x h image (shorter side
 * to `size`, the longer one int(size * long / short)). */
void resize_shorter_dims(int w, int h, int size, int *out_w, int *out_h);

/* PIL Image.resize(..., BILINEAR) (what torchvision's Resize does to PIL
 * images): separable triangle filter, support scaled by the reduction factor,
 * 22-bit fixed-point coefficients, horizontal pass first, each pass rounded
 * and clipped to uint8. Produces only the window [x0, x0+cw) x [y0, y0+ch) of
 * the full out_w x out_h result (pixels identical to resizing then cropping);
 * the whole image is x0 = y0 = 0, cw = out_w, ch = out_h. */
void resize_bilinear_window(const Image *in, int out_w, int out_h, int x0, int y0, int cw, int ch,
                            Image *out);
void resize_bilinear(const Image *in, int out_w, int out_h, Image *out);
/* The same when `in` holds only part of a full_w x full_h source: its
 * columns [in_x, in_x + in->w) and rows [in_y, in_y + in->h), which must
 * cover resize_source_region's answer. */
void resize_bilinear_window_at(const Image *in, int in_x, int in_y, int full_w, int full_h, int out_w, int out_h,
                               int x0, int y0, int cw, int ch, Image *out);
/* The source columns [sx, sx+sw) and rows [sy, sy+sh) that window's taps read. */
void resize_source_region(int full_w, int full_h, int out_w, int out_h, int x0, int y0, int cw, int ch, int *sx,
                          int *sy, int *sw, int *sh);

/* Crop of w x h at (x0, y0); pixels outside the source are 0 (torchvision's
 * zero padding). */
void crop_image(const Image *in, int x0, int y0, int w, int h, Image *out);
void hflip_image(Image *im);

/* torchvision ToTensor + Normalize, per channel, NHWC: bit-identical float32
 * arithmetic ((v / 255f) - mean) / std. */
void normalize_to_f32(const Image *im, const float mean[3], const float std[3], float *dst);
/* The same through a per-channel table of the 256 results (built once). */
void normalize_lut(const float mean[3], const float std[3], float lut[3][256]);
void normalize_with_lut(const Image *im, const float lut[3][256], float *dst);

/* The output h, w a pipeline gives every sample, if a fixed-size op (crop,
 * random_resized_crop, resize with both sides) fixes it; false otherwise. */
bool pipeline_output_shape(const TransformOp *ops, int n, int *h, int *w);
/* The shorter side the decoder must keep for a resize to short_side: twice
 * it. JPEG DCT-domain scaling (1/2, 1/4, 1/8) thus only happens when the
 * image is at least 4x the target, and the antialiased resize that follows
 * still reduces by 2x or more: measured against full decode + resize
 * (tests/data dct_scaled_*) the difference is ~1-2 levels mean. */
int decode_hint_for(int short_side);
/* decode_hint_for(largest size) of the pipeline's first resize when nothing
 * but flips comes before it; 0 (full decode) otherwise. */
int pipeline_decode_hint(const TransformOp *ops, int n);
/* Index of the normalize op, or -1. */
int pipeline_normalize_index(const TransformOp *ops, int n);

/* Applies every op before normalize to *img (replaced; *img_owned says
 * whether the input pixels may be freed — a cached source is not). On return
 * *img is always owned. Random draws come from rng. Returns 0, or -1 with a
 * message in err. */
int pipeline_apply_u8(const TransformOp *ops, int n, Image *img, bool img_owned, SampleRng *rng,
                      Error *err);

/* torchvision RandomErasing.get_params on a w x h image: up to 10 attempts
 * at an area fraction uniform in scale and a log-uniform aspect ratio h/w,
 * sides rounded half to even, kept when both are smaller than the image;
 * then the top-left corner uniformly. false: no attempt fitted (no erasing). */
bool erasing_params(int w, int h, const float scale[2], const float ratio[2], SampleRng *rng, int *top, int *left,
                    int *eh, int *ew);
/* torchvision's F.erase on an NHWC float image of width w: rows [top,
 * top+eh) and columns [left, left+ew) set to value[c], or, with rng, to
 * standard normal draws (RandomErasing(value='random')). */
void erase_f32(float *x, int w, int top, int left, int eh, int ew, const float value[3], SampleRng *rng);
/* Applies the float ops after the pipeline's normalize (random_erasing) to
 * an NHWC float w x h sample that normalize produced, continuing rng. */
void pipeline_apply_f32(const TransformOp *ops, int n, float *x, int w, int h, SampleRng *rng);
/* Whether float ops follow normalize: batches must then travel as floats. */
bool pipeline_has_float_ops(const TransformOp *ops, int n);

/* Decodes JPEG/PNG bytes and applies the pipeline (up to normalize), with
 * the same result and the same random draws as image_decode (with
 * pipeline_decode_hint) + pipeline_apply_u8, but faster when the pipeline
 * starts with a resize and a crop: only the source region the crop needs is
 * decoded. Returns 0, or -1 with a message. */
int pipeline_apply_encoded(const TransformOp *ops, int n, const uint8_t *data, size_t nbytes, SampleRng *rng,
                           Image *out, Error *err);

#endif
