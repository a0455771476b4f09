/*
 * image.h — the data pipeline's image: 8-bit RGB, HWC, rows packed
 * (stride w*3); decoding (JPEG via libjpeg-turbo, PNG via libpng) and
 * encoding (PNG, JPEG) of it.
 *
 * Decoding refuses bad input with a reason the loader counts: every failure
 * is a DecodeStatus, never a crash, and huge declared dimensions are refused
 * from the header, before any pixel memory is allocated.
 */
#ifndef RXC_DATA_IMAGE_H
#define RXC_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct Image {
    int w, h;
    uint8_t *px;        /* h*w*3 bytes (+1 spare: vector loads of 4), malloc'd */
    int full_w, full_h; /* size before DCT-domain scaling; 0 when not scaled */
} Image;

/* Why a file could not be used; the loader counts files per reason. */
typedef enum DecodeStatus {
    DEC_OK = 0,
    DEC_EMPTY,      /* zero-byte file */
    DEC_NOT_IMAGE,  /* neither JPEG nor PNG signature */
    DEC_CORRUPT,    /* the decoder failed */
    DEC_TRUNCATED,  /* data ends early */
    DEC_TOO_LARGE,  /* declared dimensions above the limits below */
    DEC_TOO_SMALL,  /* smaller than 2x2: nothing a crop can use */
    DEC_UNREADABLE, /* the file could not be read (set by callers) */
    DEC_NSTATUS
} DecodeStatus;

const char *decode_status_name(DecodeStatus s);

/* PIL's decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS), and a side limit. */
#define IMAGE_MAX_PIXELS 178956970LL
#define IMAGE_MAX_SIDE 65500

/* Whether declared dimensions exceed those limits: asked of every header
 * before any pixel memory is allocated. */
static inline int image_dims_too_large(long long w, long long h) {
    return w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS;
}

void image_alloc(Image *im, int w, int h); /* aborts on out of memory, like xmalloc */
void image_free(Image *im);
Image image_clone(const Image *im);

/* Reads width and height from the header without decoding. */
DecodeStatus image_probe(const uint8_t *data, size_t n, int *w, int *h);

/* Decodes JPEG or PNG into RGB (grayscale, CMYK/YCCK, palette, 16-bit and
 * alpha are converted; alpha is dropped). min_short_side > 0 allows JPEG
 * DCT-domain scaling by 1/2, 1/4 or 1/8 (as PIL's draft mode) to the smallest
 * scale whose shorter side is still >= min_short_side; 0 decodes at full size.
 * On failure *out is untouched and err (if given) says why. */
DecodeStatus image_decode(const uint8_t *data, size_t n, int min_short_side, Image *out,
                          Error *err);
/* The scale denominator (1, 2, 4, 8) image_decode would use. */
int image_dct_scale(int w, int h, int min_short_side);

/* Returns 0, or -1 with a message. */
int image_write_png(const Image *im, const char *path, Error *err);
int image_write_jpeg(const Image *im, const char *path, int quality, Error *err);
/* Writes by extension: .png, else JPEG (quality 95). */
int image_write(const Image *im, const char *path, Error *err);

#endif
