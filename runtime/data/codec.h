/*
 * codec.h — format-specific decoders and encoders behind image.h
 * (jpeg.c: libjpeg-turbo; png.c: libpng). Callers use image.h.
 */
#ifndef RXC_DATA_CODEC_H
#define RXC_DATA_CODEC_H

#include "data/image.h"

DecodeStatus jpeg_probe(const uint8_t *data, size_t n, int *w, int *h);
/* scale_denom: 1, 2, 4 or 8 (DCT-domain scaling). */
DecodeStatus jpeg_decode_rgb(const uint8_t *data, size_t n, int scale_denom, Image *out,
                             char *err, size_t errlen);
DecodeStatus png_probe(const uint8_t *data, size_t n, int *w, int *h);
DecodeStatus png_decode_rgb(const uint8_t *data, size_t n, Image *out, char *err, size_t errlen);

#endif
