/*
 * transforms.c — resize (PIL's bilinear resample), crops, flip, normalize,
 * and the application of a pipeline to one sample (transforms.h).
 *
 * A resize followed by a crop is computed as one windowed resize: only the
 * crop's pixels are resampled, which gives the same bytes as resizing the
 * whole image first (each output pixel depends only on its own taps) at a
 * fraction of the work.
 */
#include "data/transforms.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/autoaugment.h"
#include "data/codec.h"
#include "data/randaugment.h"

#define PRECISION_BITS (32 - 8 - 2) /* PIL's for 8-bit images */

/* GCC vectorizes the resize loops at -O3 only; clang has no such attribute. */
#if defined(__clang__)
#define OPTIMIZE_O3
#else
#define OPTIMIZE_O3 __attribute__((optimize("O3")))
#endif

void resize_shorter_dims(int w, int h, int size, int *out_w, int *out_h) {
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int new_long = (int)((double)size * longer / shorter);
    if (w <= h) {
        *out_w = size;
        *out_h = new_long;
    } else {
        *out_w = new_long;
        *out_h = size;
    }
}

/* Taps of one axis: for output i, bounds[2i] is the first input index and
 * bounds[2i+1] the count; k[i*ksize + t] the fixed-point weights. */
typedef struct Taps {
    int ksize;
    int *bounds;
    int32_t *k;
} Taps;

static double triangle(double x) {
    if (x < 0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs + normalize_coeffs_8bpc for outputs [first, first+count). */
static void taps_compute(int in_size, int out_size, int first, int count, Taps *t) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    t->ksize = ksize;
    t->bounds = xmalloc(sizeof(int) * 2 * (size_t)count);
    t->k = xcalloc((size_t)count * ksize, sizeof(int32_t));
    double *w = xmalloc(sizeof(double) * ksize);
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = triangle((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            t->k[(size_t)i * ksize + x] =
                v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        t->bounds[2 * i] = xmin;
        t->bounds[2 * i + 1] = xmax;
    }
    free(w);
}

static void taps_free(Taps *t) {
    free(t->bounds);
    free(t->k);
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* Taps padded to a fixed count K per output (zero weights), windows shifted
 * left where they would run past the source, so the inner loop has a
 * constant trip count; zero weights leave the sums, hence the bytes, equal. */
static bool pad_taps(const Taps *t, int count, int avail_first, int avail_end, int **start, int32_t **kp) {
    int K = t->ksize;
    *start = xmalloc(sizeof(int) * count);
    *kp = xcalloc((size_t)count * K, sizeof(int32_t));
    for (int i = 0; i < count; i++) {
        int xmin = t->bounds[2 * i], n = t->bounds[2 * i + 1], shift = 0;
        if (xmin + K > avail_end) shift = xmin + K - avail_end;
        if (xmin - shift < avail_first) {
            free(*start);
            free(*kp);
            return false;
        }
        (*start)[i] = xmin - shift;
        for (int x = 0; x < n; x++) (*kp)[(size_t)i * K + shift + x] = t->k[(size_t)i * t->ksize + x];
    }
    return true;
}

#define HPASS_ROW(K)                                                          \
    for (int i = 0; i < cw; i++) {                                            \
        const int32_t *k = kp + (size_t)i * (K);                              \
        const uint8_t *s = src + (size_t)start[i] * 3;                        \
        int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;             \
        for (int x = 0; x < (K); x++) {                                       \
            s0 += s[3 * x] * k[x];                                            \
            s1 += s[3 * x + 1] * k[x];                                        \
            s2 += s[3 * x + 2] * k[x];                                        \
        }                                                                     \
        dst[3 * i] = clip8(s0);                                               \
        dst[3 * i + 1] = clip8(s1);                                           \
        dst[3 * i + 2] = clip8(s2);                                           \
    }

/* One output row of the vertical pass: len bytes from n source rows of
 * mid (stride apart). Built for AVX2 too, picked at run time: the
 * accumulation is exact integer arithmetic either way. */
__attribute__((target_clones("avx2", "default"))) OPTIMIZE_O3 static void
vertical_row(const uint8_t *restrict rows, size_t stride, const int32_t *restrict k, int n, int len,
             int32_t *restrict acc, uint8_t *restrict dst) {
    for (int i = 0; i < len; i++) acc[i] = 1 << (PRECISION_BITS - 1);
    for (int y = 0; y < n; y++) {
        const uint8_t *restrict s = rows + (size_t)y * stride;
        int32_t ky = k[y];
        for (int i = 0; i < len; i++) acc[i] += s[i] * ky;
    }
    for (int i = 0; i < len; i++) {
        int32_t v = acc[i] >> PRECISION_BITS;
        dst[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}


/* The padded horizontal pass with a pixel's R, G, B (and one ignored byte)
 * as the four lanes of a vector: one widening load and one multiply-add per
 * tap instead of three. Reads one byte past the last pixel, which every
 * Image allocation leaves room for. */
/* One row of the padded horizontal pass with a pixel's R, G, B (and one
 * ignored byte) as the four lanes of a vector: one widening load and one
 * multiply-add per tap instead of three. K is a constant in each caller so
 * the tap loop unrolls. Reads one byte past the last pixel, which every
 * Image allocation leaves room for. */
__attribute__((target("avx2"), always_inline)) static inline void
hpass_row_avx2(const uint8_t *src, uint8_t *dst, const int *start, const int32_t *kp, const int K, int cw) {
    for (int i = 0; i < cw; i++) {
        const int32_t *k = kp + (size_t)i * K;
        const uint8_t *s = src + (size_t)start[i] * 3;
        __m128i acc = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
        for (int x = 0; x < K; x++) {
            int32_t four;
            memcpy(&four, s + 3 * x, 4);
            __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(four));
            acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[x])));
        }
        int32_t lanes[4];
        _mm_storeu_si128((__m128i *)lanes, acc);
        dst[3 * i] = clip8(lanes[0]);
        dst[3 * i + 1] = clip8(lanes[1]);
        dst[3 * i + 2] = clip8(lanes[2]);
    }
}

__attribute__((target("avx2"))) static void hpass_rows_avx2(const Image *in, int in_x, int in_y, int row_first,
                                                            int row_count, const int *start, const int32_t *kp,
                                                            int K, int cw, Image *mid) {
    for (int r = 0; r < row_count; r++) {
        const uint8_t *src = in->px + ((size_t)(row_first + r - in_y) * in->w - in_x) * 3;
        uint8_t *dst = mid->px + (size_t)r * cw * 3;
        switch (K) {
        case 3: hpass_row_avx2(src, dst, start, kp, 3, cw); break;
        case 5: hpass_row_avx2(src, dst, start, kp, 5, cw); break;
        case 7: hpass_row_avx2(src, dst, start, kp, 7, cw); break;
        default: hpass_row_avx2(src, dst, start, kp, K, cw); break;
        }
    }
}

/* Rows [row_first, +row_count) of the source (which holds columns from in_x
 * and rows from in_y) resampled horizontally into mid's cw columns. */
OPTIMIZE_O3 static void horizontal_pass(const Image *in, int in_x, int in_y, int row_first, int row_count, const Taps *th,
                            int cw, Image *mid) {
    int *start = NULL;
    int32_t *kp = NULL;
    int K = th->ksize;
    bool padded = K <= 9 && pad_taps(th, cw, in_x, in_x + in->w, &start, &kp);
    if (padded && __builtin_cpu_supports("avx2")) {
        hpass_rows_avx2(in, in_x, in_y, row_first, row_count, start, kp, K, cw, mid);
        free(start);
        free(kp);
        return;
    }
    for (int r = 0; r < row_count; r++) {
        const uint8_t *src = in->px + ((size_t)(row_first + r - in_y) * in->w - in_x) * 3;
        uint8_t *dst = mid->px + (size_t)r * cw * 3;
        if (padded) {
            switch (K) {
            case 3: HPASS_ROW(3) break;
            case 5: HPASS_ROW(5) break;
            case 7: HPASS_ROW(7) break;
            case 9: HPASS_ROW(9) break;
            default: HPASS_ROW(K) break;
            }
            continue;
        }
        for (int i = 0; i < cw; i++) {
            const int32_t *k = th->k + (size_t)i * th->ksize;
            const uint8_t *s = src + (size_t)th->bounds[2 * i] * 3;
            int n = th->bounds[2 * i + 1];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                s0 += s[3 * x] * k[x];
                s1 += s[3 * x + 1] * k[x];
                s2 += s[3 * x + 2] * k[x];
            }
            dst[3 * i] = clip8(s0);
            dst[3 * i + 1] = clip8(s1);
            dst[3 * i + 2] = clip8(s2);
        }
    }
    free(start);
    free(kp);
}

void resize_bilinear_window_at(const Image *in, int in_x, int in_y, int full_w, int full_h, int out_w, int out_h,
                               int x0, int y0, int cw, int ch, Image *out) {
    bool need_h = out_w != full_w, need_v = out_h != full_h;
    /* Rows of the source the vertical pass reads. */
    int row_first = y0, row_count = ch;
    Taps tv = {0};
    if (need_v) {
        taps_compute(full_h, out_h, y0, ch, &tv);
        row_first = tv.bounds[0];
        int last = 0;
        for (int i = 0; i < ch; i++) {
            int end = tv.bounds[2 * i] + tv.bounds[2 * i + 1];
            if (end > last) last = end;
        }
        row_count = last - row_first;
    }
    /* Horizontal pass: rows [row_first, +row_count) x output columns [x0, +cw). */
    Image mid;
    image_alloc(&mid, cw, row_count);
    if (need_h) {
        Taps th;
        taps_compute(full_w, out_w, x0, cw, &th);
        horizontal_pass(in, in_x, in_y, row_first, row_count, &th, cw, &mid);
        taps_free(&th);
    } else {
        for (int r = 0; r < row_count; r++)
            memcpy(mid.px + (size_t)r * cw * 3, in->px + ((size_t)(row_first + r - in_y) * in->w + (x0 - in_x)) * 3,
                   (size_t)cw * 3);
    }
    if (!need_v) {
        *out = mid;
        return;
    }
    image_alloc(out, cw, ch);
    int32_t *acc = xmalloc(sizeof(int32_t) * (size_t)cw * 3);
    for (int j = 0; j < ch; j++)
        vertical_row(mid.px + (size_t)(tv.bounds[2 * j] - row_first) * cw * 3, (size_t)cw * 3,
                     tv.k + (size_t)j * tv.ksize, tv.bounds[2 * j + 1], cw * 3, acc, out->px + (size_t)j * cw * 3);
    free(acc);
    taps_free(&tv);
    image_free(&mid);
}

void resize_bilinear_window(const Image *in, int out_w, int out_h, int x0, int y0, int cw, int ch, Image *out) {
    resize_bilinear_window_at(in, 0, 0, in->w, in->h, out_w, out_h, x0, y0, cw, ch, out);
}

void resize_source_region(int full_w, int full_h, int out_w, int out_h, int x0, int y0, int cw, int ch, int *sx,
                          int *sy, int *sw, int *sh) {
    Taps t;
    if (out_w != full_w) {
        taps_compute(full_w, out_w, x0, cw, &t);
        int first = t.bounds[0], last = 0;
        for (int i = 0; i < cw; i++) {
            if (t.bounds[2 * i] < first) first = t.bounds[2 * i];
            if (t.bounds[2 * i] + t.bounds[2 * i + 1] > last) last = t.bounds[2 * i] + t.bounds[2 * i + 1];
        }
        *sx = first;
        *sw = last - first;
        taps_free(&t);
    } else {
        *sx = x0;
        *sw = cw;
    }
    if (out_h != full_h) {
        taps_compute(full_h, out_h, y0, ch, &t);
        int first = t.bounds[0], last = 0;
        for (int i = 0; i < ch; i++) {
            if (t.bounds[2 * i] < first) first = t.bounds[2 * i];
            if (t.bounds[2 * i] + t.bounds[2 * i + 1] > last) last = t.bounds[2 * i] + t.bounds[2 * i + 1];
        }
        *sy = first;
        *sh = last - first;
        taps_free(&t);
    } else {
        *sy = y0;
        *sh = ch;
    }
}

void resize_bilinear(const Image *in, int out_w, int out_h, Image *out) {
    resize_bilinear_window(in, out_w, out_h, 0, 0, out_w, out_h, out);
}

void crop_image(const Image *in, int x0, int y0, int w, int h, Image *out) {
    image_alloc(out, w, h);
    memset(out->px, 0, (size_t)w * h * 3);
    int xa = x0 < 0 ? 0 : x0, xb = x0 + w > in->w ? in->w : x0 + w;
    if (xb <= xa) return;
    for (int y = 0; y < h; y++) {
        int sy = y0 + y;
        if (sy < 0 || sy >= in->h) continue;
        memcpy(out->px + ((size_t)y * w + (xa - x0)) * 3, in->px + ((size_t)sy * in->w + xa) * 3, (size_t)(xb - xa) * 3);
    }
}

void hflip_image(Image *im) {
    for (int y = 0; y < im->h; y++) {
        uint8_t *row = im->px + (size_t)y * im->w * 3;
        for (int a = 0, b = im->w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[3 * a + c];
                row[3 * a + c] = row[3 * b + c];
                row[3 * b + c] = t;
            }
    }
}

void normalize_lut(const float mean[3], const float std[3], float lut[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            volatile float x = (float)v / 255.0f; /* as ToTensor: a float32 division */
            lut[c][v] = (x - mean[c]) / std[c];
        }
}

void normalize_with_lut(const Image *im, const float lut[3][256], float *dst) {
    size_t n = (size_t)im->w * im->h;
    const uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++) {
        dst[3 * i] = lut[0][p[3 * i]];
        dst[3 * i + 1] = lut[1][p[3 * i + 1]];
        dst[3 * i + 2] = lut[2][p[3 * i + 2]];
    }
}

void normalize_to_f32(const Image *im, const float mean[3], const float std[3], float *dst) {
    float lut[3][256];
    normalize_lut(mean, std, lut);
    normalize_with_lut(im, (const float(*)[256])lut, dst);
}

bool pipeline_output_shape(const TransformOp *ops, int n, int *h, int *w) {
    bool known = false;
    for (int i = 0; i < n; i++) {
        const TransformOp *op = &ops[i];
        switch (op->kind) {
        case TF_RESIZE:
            if (op->size[1] > 0) {
                *h = op->size[0];
                *w = op->size[1];
                known = true;
            } else known = false;
            break;
        case TF_RANDOM_RESIZE: known = false; break;
        case TF_RANDOM_CROP:
        case TF_CENTER_CROP:
        case TF_RANDOM_RESIZED_CROP:
            *h = op->size[0];
            *w = op->size[1] > 0 ? op->size[1] : op->size[0];
            known = true;
            break;
        default: break;
        }
    }
    return known;
}

int decode_hint_for(int short_side) { return 2 * short_side; }

int pipeline_decode_hint(const TransformOp *ops, int n) {
    for (int i = 0; i < n; i++) {
        const TransformOp *op = &ops[i];
        if (op->kind == TF_RESIZE) return op->size[1] > 0 ? 0 : decode_hint_for(op->size[0]);
        if (op->kind == TF_RANDOM_RESIZE) {
            int m = 0;
            for (int j = 0; j < op->n_sizes; j++)
                if (op->sizes[j] > m) m = op->sizes[j];
            return decode_hint_for(m);
        }
        if (op->kind == TF_HFLIP) continue; /* commutes with scaling */
        return 0;
    }
    return 0;
}

int pipeline_normalize_index(const TransformOp *ops, int n) {
    for (int i = 0; i < n; i++)
        if (ops[i].kind == TF_NORMALIZE) return i;
    return -1;
}

static void replace(Image *img, bool *owned, Image *next) {
    if (*owned) image_free(img);
    *img = *next;
    *owned = true;
}

/* torchvision RandomResizedCrop.get_params. */
static void rrc_params(int width, int height, const float scale[2], const float ratio[2], SampleRng *rng,
                       int *ox, int *oy, int *ow, int *oh) {
    double area = (double)width * height;
    double log_r0 = log(ratio[0]), log_r1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale[0] + (scale[1] - scale[0]) * srng_uniform(rng));
        double aspect = exp(log_r0 + (log_r1 - log_r0) * srng_uniform(rng));
        int w = (int)nearbyint(sqrt(target * aspect));
        int h = (int)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            *oy = srng_below(rng, height - h + 1);
            *ox = srng_below(rng, width - w + 1);
            *ow = w;
            *oh = h;
            return;
        }
    }
    double in_ratio = (double)width / height;
    int w, h;
    if (in_ratio < ratio[0]) {
        w = width;
        h = (int)nearbyint(w / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        h = height;
        w = (int)nearbyint(h * ratio[1]);
    } else {
        w = width;
        h = height;
    }
    *ow = w;
    *oh = h;
    *oy = (height - h) / 2;
    *ox = (width - w) / 2;
}

/* A crop's placement on an in_w x in_h image: torchvision's RandomCrop
 * (uniform offsets, after `padding` zeros on every side) or CenterCrop
 * (round-half-even of the centred offset, zero padding when larger). */
static void crop_placement(const TransformOp *op, int in_w, int in_h, SampleRng *rng, int *x0, int *y0,
                           int *cw, int *ch) {
    *ch = op->size[0];
    *cw = op->size[1] > 0 ? op->size[1] : op->size[0];
    if (op->kind == TF_RANDOM_CROP) {
        int pad = op->padding, pw = in_w + 2 * pad, ph = in_h + 2 * pad;
        int i = ph >= *ch ? srng_below(rng, ph - *ch + 1) : -((*ch - ph) / 2);
        int j = pw >= *cw ? srng_below(rng, pw - *cw + 1) : -((*cw - pw) / 2);
        *y0 = i - pad;
        *x0 = j - pad;
    } else {
        if (*cw > in_w || *ch > in_h) {
            /* torchvision pads (left (cw-w)//2, top (ch-h)//2) then crops at 0 */
            int pad_l = *cw > in_w ? (*cw - in_w) / 2 : 0, pad_t = *ch > in_h ? (*ch - in_h) / 2 : 0;
            int pw = in_w + (*cw > in_w ? *cw - in_w : 0), ph = in_h + (*ch > in_h ? *ch - in_h : 0);
            *y0 = (int)nearbyint((ph - *ch) / 2.0) - pad_t;
            *x0 = (int)nearbyint((pw - *cw) / 2.0) - pad_l;
        } else {
            *y0 = (int)nearbyint((in_h - *ch) / 2.0);
            *x0 = (int)nearbyint((in_w - *cw) / 2.0);
        }
    }
}

/* The output size of a resize op on a w x h image, drawing random_resize's choice. */
static void resize_target(const TransformOp *op, int w, int h, SampleRng *rng, int *ow, int *oh) {
    if (op->kind == TF_RESIZE && op->size[1] > 0) {
        *oh = op->size[0];
        *ow = op->size[1];
        return;
    }
    int size = op->kind == TF_RESIZE ? op->size[0] : op->sizes[op->n_sizes > 1 ? srng_below(rng, op->n_sizes) : 0];
    resize_shorter_dims(w, h, size, ow, oh);
}

static bool crop_inside(int x0, int y0, int cw, int ch, int w, int h) {
    return x0 >= 0 && y0 >= 0 && x0 + cw <= w && y0 + ch <= h;
}

int pipeline_apply_u8(const TransformOp *ops, int n, Image *img, bool img_owned, SampleRng *rng,
                      Error *err) {
    bool owned = img_owned;
    for (int i = 0; i < n; i++) {
        const TransformOp *op = &ops[i];
        Image next;
        switch (op->kind) {
        case TF_RESIZE:
        case TF_RANDOM_RESIZE: {
            int ow, oh;
            /* from the image's full size, as torchvision would see it, when
             * the decoder already scaled it down in the DCT domain */
            if (img->full_w > 0) resize_target(op, img->full_w, img->full_h, rng, &ow, &oh);
            else resize_target(op, img->w, img->h, rng, &ow, &oh);
            if (ow < 1 || oh < 1) {
                error_set(err, "resize to %dx%d", ow, oh);
                return -1;
            }
            /* Fuse with a following crop that stays inside the resized image. */
            if (i + 1 < n && (ops[i + 1].kind == TF_RANDOM_CROP || ops[i + 1].kind == TF_CENTER_CROP)) {
                int x0, y0, cw, ch;
                crop_placement(&ops[i + 1], ow, oh, rng, &x0, &y0, &cw, &ch);
                if (crop_inside(x0, y0, cw, ch, ow, oh)) {
                    resize_bilinear_window(img, ow, oh, x0, y0, cw, ch, &next);
                    replace(img, &owned, &next);
                    i++;
                    break;
                }
                Image full;
                resize_bilinear(img, ow, oh, &full);
                crop_image(&full, x0, y0, cw, ch, &next);
                image_free(&full);
                replace(img, &owned, &next);
                i++;
                break;
            }
            resize_bilinear(img, ow, oh, &next);
            replace(img, &owned, &next);
            break;
        }
        case TF_RANDOM_CROP:
        case TF_CENTER_CROP: {
            int x0, y0, cw, ch;
            crop_placement(op, img->w, img->h, rng, &x0, &y0, &cw, &ch);
            crop_image(img, x0, y0, cw, ch, &next);
            replace(img, &owned, &next);
            break;
        }
        case TF_RANDOM_RESIZED_CROP: {
            int x0, y0, cw, ch;
            rrc_params(img->w, img->h, op->scale, op->ratio, rng, &x0, &y0, &cw, &ch);
            Image region;
            crop_image(img, x0, y0, cw, ch, &region);
            int oh = op->size[0], ow = op->size[1] > 0 ? op->size[1] : op->size[0];
            resize_bilinear(&region, ow, oh, &next);
            image_free(&region);
            replace(img, &owned, &next);
            break;
        }
        case TF_HFLIP:
            if (srng_uniform(rng) < op->p) {
                if (!owned) {
                    next = image_clone(img);
                    replace(img, &owned, &next);
                }
                hflip_image(img);
            }
            break;
        case TF_AUTOAUGMENT:
            if (!owned) {
                next = image_clone(img);
                replace(img, &owned, &next);
            }
            autoaugment_apply(img, op->policy, op->fill, rng);
            break;
        case TF_RANDAUGMENT:
        case TF_TRIVIALAUGMENT:
            if (!owned) {
                next = image_clone(img);
                replace(img, &owned, &next);
            }
            if (op->kind == TF_RANDAUGMENT) randaugment_apply(img, op->num_ops, op->magnitude, op->bins, op->fill, rng);
            else trivialaugment_apply(img, op->bins, op->fill, rng);
            break;
        case TF_NORMALIZE:
            i = n; /* the caller normalizes; float ops (pipeline_apply_f32) follow */
            break;
        default:
            error_set(err, "unknown transform %d", (int)op->kind);
            return -1;
        }
    }
    if (!owned) {
        Image copy = image_clone(img);
        *img = copy;
    }
    return 0;
}

bool erasing_params(int w, int h, const float scale[2], const float ratio[2], SampleRng *rng, int *top, int *left,
                    int *eh, int *ew) {
    double area = (double)w * h;
    double log_r0 = log(ratio[0]), log_r1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double erase_area = area * (scale[0] + (scale[1] - scale[0]) * srng_uniform(rng));
        double aspect = exp(log_r0 + (log_r1 - log_r0) * srng_uniform(rng));
        int bh = (int)nearbyint(sqrt(erase_area * aspect));
        int bw = (int)nearbyint(sqrt(erase_area / aspect));
        if (!(bh < h && bw < w)) continue;
        *top = srng_below(rng, h - bh + 1);
        *left = srng_below(rng, w - bw + 1);
        *eh = bh;
        *ew = bw;
        return true;
    }
    return false;
}

/* A standard normal draw (Box-Muller; 1 - u keeps the logarithm finite). */
static float srng_normal(SampleRng *rng) {
    double u1 = srng_uniform(rng), u2 = srng_uniform(rng);
    return (float)(sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2));
}

void erase_f32(float *x, int w, int top, int left, int eh, int ew, const float value[3], SampleRng *rng) {
    for (int y = top; y < top + eh; y++)
        for (int xx = left; xx < left + ew; xx++)
            for (int c = 0; c < 3; c++) x[((size_t)y * w + xx) * 3 + c] = rng ? srng_normal(rng) : value[c];
}

void pipeline_apply_f32(const TransformOp *ops, int n, float *x, int w, int h, SampleRng *rng) {
    for (int i = pipeline_normalize_index(ops, n) + 1; i > 0 && i < n; i++) {
        const TransformOp *op = &ops[i];
        if (op->kind != TF_RANDOM_ERASING || !(srng_uniform(rng) < op->p)) continue;
        int top, left, eh, ew;
        if (erasing_params(w, h, op->scale, op->ratio, rng, &top, &left, &eh, &ew))
            erase_f32(x, w, top, left, eh, ew, op->erase_value, op->erase_random ? rng : NULL);
    }
}

bool pipeline_has_float_ops(const TransformOp *ops, int n) {
    int ni = pipeline_normalize_index(ops, n);
    return ni >= 0 && ni + 1 < n;
}

static bool starts_with_resize_crop(const TransformOp *ops, int n) {
    return n >= 2 && (ops[0].kind == TF_RANDOM_RESIZE || ops[0].kind == TF_RESIZE) &&
           (ops[1].kind == TF_RANDOM_CROP || ops[1].kind == TF_CENTER_CROP);
}

int pipeline_apply_encoded(const TransformOp *ops, int n, const uint8_t *data, size_t nbytes, SampleRng *rng,
                           Image *out, Error *err) {
    int fw = 0, fh = 0;
    int hint = pipeline_decode_hint(ops, n);
    bool is_jpeg = nbytes >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
    if (is_jpeg && starts_with_resize_crop(ops, n) && image_probe(data, nbytes, &fw, &fh) == DEC_OK &&
        image_dct_scale(fw, fh, hint) == 1) {
        /* The same draws, in the same order, as pipeline_apply_u8's fused
         * resize + crop, made before decoding so that only the source rows
         * and columns the crop needs are decoded. */
        int ow, oh, x0, y0, cw, ch;
        resize_target(&ops[0], fw, fh, rng, &ow, &oh);
        if (ow < 1 || oh < 1) {
            error_set(err, "resize to %dx%d", ow, oh);
            return -1;
        }
        crop_placement(&ops[1], ow, oh, rng, &x0, &y0, &cw, &ch);
        Image src;
        if (crop_inside(x0, y0, cw, ch, ow, oh)) {
            int sx, sy, sw, sh, ox, oy;
            resize_source_region(fw, fh, ow, oh, x0, y0, cw, ch, &sx, &sy, &sw, &sh);
            DecodeStatus st = jpeg_decode_region_rgb(data, nbytes, sx, sy, sw, sh, &src, &ox, &oy, err);
            if (st != DEC_OK) return -1;
            resize_bilinear_window_at(&src, ox, oy, fw, fh, ow, oh, x0, y0, cw, ch, out);
        } else {
            DecodeStatus st = image_decode(data, nbytes, 0, &src, err);
            if (st != DEC_OK) return -1;
            Image full;
            resize_bilinear(&src, ow, oh, &full);
            crop_image(&full, x0, y0, cw, ch, out);
            image_free(&full);
        }
        image_free(&src);
        return pipeline_apply_u8(ops + 2, n - 2, out, true, rng, err);
    }
    DecodeStatus st = image_decode(data, nbytes, hint, out, err);
    if (st != DEC_OK) return -1;
    return pipeline_apply_u8(ops, n, out, true, rng, err);
}
