/*
 * png.c — PNG decoding and encoding with libpng (the optional format).
 *
 * Palette, grayscale, 16-bit and alpha are all converted to 8-bit RGB with
 * libpng's transformations; alpha is dropped (PIL's convert("RGB")).
 */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/codec.h"
#include "util.h"

typedef struct MemReader {
    const uint8_t *data;
    size_t n, pos;
} MemReader;

static void mem_read(png_structp png, png_bytep out, png_size_t len) {
    MemReader *r = png_get_io_ptr(png);
    if (len > r->n - r->pos) png_error(png, "truncated PNG");
    memcpy(out, r->data + r->pos, len);
    r->pos += len;
}

static void quiet_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

DecodeStatus png_probe(const uint8_t *data, size_t n, int *w, int *h) {
    /* IHDR is always the first chunk: signature(8) length(4) "IHDR"(4) w(4) h(4) */
    if (n < 24 || memcmp(data + 12, "IHDR", 4) != 0) return DEC_CORRUPT;
    uint32_t pw = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 | (uint32_t)data[18] << 8 | data[19];
    uint32_t ph = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 | (uint32_t)data[22] << 8 | data[23];
    if (pw > 0x7fffffff || ph > 0x7fffffff) return DEC_TOO_LARGE;
    *w = (int)pw;
    *h = (int)ph;
    return DEC_OK;
}

DecodeStatus png_decode_rgb(const uint8_t *data, size_t n, Image *out, Error *err) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        error_set(err, "libpng initialisation failed");
        return DEC_CORRUPT;
    }
    MemReader reader = {data, n, 0};
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        int truncated = reader.pos >= reader.n;
        error_set(err, "%s", truncated ? "truncated PNG" : "corrupt PNG");
        return truncated ? DEC_TRUNCATED : DEC_CORRUPT;
    }
    png_set_read_fn(png, &reader, mem_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected PNG row size");
    pixels = xmalloc((size_t)w * h * 3 + 1);
    rows = xmalloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->w = (int)w;
    out->h = (int)h;
    out->px = pixels;
    out->full_w = out->full_h = 0;
    return DEC_OK;
}

int image_write_png(const Image *im, const char *path, Error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        error_set(err, "cannot write %s", path);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        error_set(err, "cannot write PNG %s", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)im->w, (png_uint_32)im->h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < im->h; y++) png_write_row(png, im->px + (size_t)y * im->w * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) {
        error_set(err, "cannot write %s", path);
        return -1;
    }
    return 0;
}
