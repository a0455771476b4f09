/*
 * image.c — Image allocation and the format dispatch of decoding/encoding:
 * sniffs the signature and hands over to jpeg.c or png.c.
 */
#include "data/image.h"

#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data/codec.h"
#include "util.h"

const char *decode_status_name(DecodeStatus s) {
    switch (s) {
    case DEC_OK: return "ok";
    case DEC_EMPTY: return "zero-byte file";
    case DEC_NOT_IMAGE: return "not a JPEG or PNG image";
    case DEC_CORRUPT: return "corrupt image data";
    case DEC_TRUNCATED: return "truncated image";
    case DEC_TOO_LARGE: return "declared dimensions too large";
    case DEC_TOO_SMALL: return "image smaller than 2x2";
    case DEC_UNREADABLE: return "unreadable file";
    default: return "unknown";
    }
}

void image_alloc(Image *im, int w, int h) {
    im->w = w;
    im->h = h;
    im->px = xmalloc((size_t)w * (size_t)h * 3 + 1);
    im->full_w = im->full_h = 0;
}

void image_free(Image *im) {
    free(im->px);
    im->px = NULL;
    im->w = im->h = im->full_w = im->full_h = 0;
}

Image image_clone(const Image *im) {
    Image c;
    image_alloc(&c, im->w, im->h);
    memcpy(c.px, im->px, (size_t)im->w * im->h * 3);
    c.full_w = im->full_w;
    c.full_h = im->full_h;
    return c;
}

static bool is_jpeg(const uint8_t *d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
static bool is_png(const uint8_t *d, size_t n) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    return n >= 8 && memcmp(d, sig, 8) == 0;
}

static DecodeStatus check_dims(int w, int h) {
    if (w <= 0 || h <= 0) return DEC_CORRUPT;
    if (image_dims_too_large(w, h)) return DEC_TOO_LARGE;
    if (w < 2 || h < 2) return DEC_TOO_SMALL;
    return DEC_OK;
}

DecodeStatus image_probe(const uint8_t *data, size_t n, int *w, int *h) {
    if (n == 0) return DEC_EMPTY;
    DecodeStatus s;
    if (is_jpeg(data, n)) s = jpeg_probe(data, n, w, h);
    else if (is_png(data, n)) s = png_probe(data, n, w, h);
    else return DEC_NOT_IMAGE;
    return s != DEC_OK ? s : check_dims(*w, *h);
}

int image_dct_scale(int w, int h, int min_short_side) {
    if (min_short_side <= 0) return 1;
    int shorter = w < h ? w : h;
    int denom = 1;
    /* libjpeg's scaled size is ceil(side / denom). */
    while (denom < 8 && (shorter + 2 * denom - 1) / (2 * denom) >= min_short_side) denom *= 2;
    return denom;
}

DecodeStatus image_decode(const uint8_t *data, size_t n, int min_short_side, Image *out,
                          Error *err) {
    int w = 0, h = 0;
    DecodeStatus s = image_probe(data, n, &w, &h);
    if (s != DEC_OK) {
        error_set(err, "%s", decode_status_name(s));
        return s;
    }
    if (is_jpeg(data, n)) return jpeg_decode_rgb(data, n, image_dct_scale(w, h, min_short_side), out, err);
    return png_decode_rgb(data, n, out, err);
}

static bool ends_with_ci(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

int image_write(const Image *im, const char *path, Error *err) {
    if (ends_with_ci(path, ".png")) return image_write_png(im, path, err);
    return image_write_jpeg(im, path, 95, err);
}
