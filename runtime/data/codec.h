/*
 * codec.h — format-specific decoders and encoders behind image.h
 * (jpeg.c: libjpeg-turbo; png.c: libpng). Callers use image.h.
 */
#ifndef RXC_DATA_CODEC_H
#define RXC_DATA_CODEC_H

#include "data/image.h"
#include "error.h"

DecodeStatus jpeg_probe(const uint8_t *data, size_t n, int *w, int *h);
/* scale_denom: 1, 2, 4 or 8 (DCT-domain scaling). */
DecodeStatus jpeg_decode_rgb(const uint8_t *data, size_t n, int scale_denom, Image *out,
                             Error *err);
/* Decodes (at least) the region [x0, x0+w) x [y0, y0+h) of the full-size
 * image, skipping the IDCT and colour conversion of rows and columns outside
 * it (libjpeg-turbo's jpeg_skip_scanlines / jpeg_crop_scanline). out holds
 * full-image columns [*ox, *ox + out->w) and rows [*oy, *oy + out->h); its
 * pixels equal a full decode's. */
DecodeStatus jpeg_decode_region_rgb(const uint8_t *data, size_t n, int x0, int y0, int w, int h, Image *out,
                                    int *ox, int *oy, Error *err);
DecodeStatus png_probe(const uint8_t *data, size_t n, int *w, int *h);
DecodeStatus png_decode_rgb(const uint8_t *data, size_t n, Image *out, Error *err);

#endif
