/*
 * jpeg.c — JPEG decoding and encoding with libjpeg-turbo.
 *
 * Errors longjmp back here instead of exiting; a "premature end of data"
 * warning counts as truncation (PIL refuses such files too), other warnings
 * (extraneous bytes) are tolerated as PIL does. Decoding uses the library's
 * defaults that PIL uses (ISLOW IDCT, fancy upsampling), so pixels match
 * PIL's; DCT-domain scaling is libjpeg's scale_num/scale_denom.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "data/codec.h"
#include "util.h"

typedef struct JpegErr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int truncated;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void on_error(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    JpegErr *e = (JpegErr *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static void setup_err(struct jpeg_decompress_struct *cinfo, JpegErr *e) {
    cinfo->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = on_error;
    e->pub.emit_message = on_message;
    e->truncated = 0;
    e->msg[0] = 0;
}

DecodeStatus jpeg_probe(const uint8_t *data, size_t n, int *w, int *h) {
    struct jpeg_decompress_struct cinfo;
    JpegErr e;
    setup_err(&cinfo, &e);
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return e.truncated ? DEC_TRUNCATED : DEC_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    int rc = jpeg_read_header(&cinfo, TRUE);
    if (rc != JPEG_HEADER_OK) {
        jpeg_destroy_decompress(&cinfo);
        return DEC_CORRUPT;
    }
    *w = (int)cinfo.image_width;
    *h = (int)cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return DEC_OK;
}

/* CMYK to RGB as PIL does: R = (255-C)(255-K)/255. Adobe files (the usual
 * CMYK JPEGs) store the channels inverted, so there R = C*K/255. */
static void cmyk_row_to_rgb(const uint8_t *src, uint8_t *dst, int w, int inverted) {
    for (int x = 0; x < w; x++) {
        int c = src[4 * x], m = src[4 * x + 1], y = src[4 * x + 2], k = src[4 * x + 3];
        if (!inverted) { c = 255 - c; m = 255 - m; y = 255 - y; k = 255 - k; }
        dst[3 * x] = (uint8_t)((c * k + 127) / 255);
        dst[3 * x + 1] = (uint8_t)((m * k + 127) / 255);
        dst[3 * x + 2] = (uint8_t)((y * k + 127) / 255);
    }
}

DecodeStatus jpeg_decode_rgb(const uint8_t *data, size_t n, int scale_denom, Image *out,
                             Error *err) {
    struct jpeg_decompress_struct cinfo;
    JpegErr e;
    /* volatile: these change between setjmp and a possible longjmp */
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile rowbuf = NULL;
    setup_err(&cinfo, &e);
    if (setjmp(e.jump)) {
        free(pixels);
        free(rowbuf);
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "%s", e.truncated ? "truncated JPEG" : e.msg);
        return e.truncated ? DEC_TRUNCATED : DEC_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (image_dims_too_large(cinfo.image_width, cinfo.image_height)) {
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "declared dimensions too large");
        return DEC_TOO_LARGE;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk) cinfo.out_color_space = JCS_CMYK;
    else cinfo.out_color_space = JCS_EXT_RGB; /* grayscale is expanded too */
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned)scale_denom;
    jpeg_start_decompress(&cinfo);
    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    pixels = xmalloc((size_t)w * h * 3 + 1);
    if (cmyk) rowbuf = xmalloc((size_t)w * 4);
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = pixels + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW row = cmyk ? (JSAMPROW)rowbuf : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
        if (cmyk) cmyk_row_to_rgb(rowbuf, dst, w, cinfo.saw_Adobe_marker);
    }
    if (e.truncated || cinfo.output_scanline < cinfo.output_height) {
        free(pixels);
        free(rowbuf);
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "truncated JPEG");
        return DEC_TRUNCATED;
    }
    JDIMENSION cinfo_w = cinfo.image_width, cinfo_h = cinfo.image_height;
    /* Not jpeg_finish_decompress: trailing garbage after the image is harmless. */
    jpeg_destroy_decompress(&cinfo);
    free(rowbuf);
    out->w = w;
    out->h = h;
    out->px = pixels;
    out->full_w = scale_denom > 1 ? (int)cinfo_w : 0;
    out->full_h = scale_denom > 1 ? (int)cinfo_h : 0;
    return DEC_OK;
}

DecodeStatus jpeg_decode_region_rgb(const uint8_t *data, size_t n, int x0, int y0, int w, int h, Image *out,
                                    int *ox, int *oy, Error *err) {
    struct jpeg_decompress_struct cinfo;
    JpegErr e;
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile rowbuf = NULL;
    setup_err(&cinfo, &e);
    if (setjmp(e.jump)) {
        free(pixels);
        free(rowbuf);
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "%s", e.truncated ? "truncated JPEG" : e.msg);
        return e.truncated ? DEC_TRUNCATED : DEC_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    int fw = (int)cinfo.image_width, fh = (int)cinfo.image_height;
    if (image_dims_too_large(fw, fh)) {
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "declared dimensions too large");
        return DEC_TOO_LARGE;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_EXT_RGB;
    jpeg_start_decompress(&cinfo);
    /* One iMCU of margin on each side: the chroma upsampler at the edge of a
     * crop lacks its neighbours, so only pixels away from the edge are
     * guaranteed to equal a full decode's. */
    int margin = cinfo.max_h_samp_factor * DCTSIZE;
    int vmargin = cinfo.max_v_samp_factor * DCTSIZE;
    int cx0 = x0 - margin < 0 ? 0 : x0 - margin, cx1 = x0 + w + margin > fw ? fw : x0 + w + margin;
    int ry0 = y0 - vmargin < 0 ? 0 : y0 - vmargin, ry1 = y0 + h + vmargin > fh ? fh : y0 + h + vmargin;
    JDIMENSION xoff = (JDIMENSION)cx0, cw = (JDIMENSION)(cx1 - cx0);
    if (cx0 > 0 || cx1 < fw) jpeg_crop_scanline(&cinfo, &xoff, &cw);
    else { xoff = 0; cw = (JDIMENSION)fw; }
    int ow = (int)cinfo.output_width; /* after cropping: the cropped width */
    if (ry0 > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)ry0);
    int rows = ry1 - ry0;
    pixels = xmalloc((size_t)ow * rows * 3 + 1);
    if (cmyk) rowbuf = xmalloc((size_t)ow * 4);
    for (int r = 0; r < rows;) {
        if (cmyk) {
            JSAMPROW row = (JSAMPROW)rowbuf;
            if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) break;
            cmyk_row_to_rgb(rowbuf, pixels + (size_t)r * ow * 3, ow, cinfo.saw_Adobe_marker);
            r++;
            continue;
        }
        /* several rows per call: a whole iMCU row comes out at once */
        JSAMPROW rowp[16];
        int want = rows - r < 16 ? rows - r : 16;
        for (int i = 0; i < want; i++) rowp[i] = (JSAMPROW)(pixels + (size_t)(r + i) * ow * 3);
        JDIMENSION got = jpeg_read_scanlines(&cinfo, rowp, (JDIMENSION)want);
        if (got == 0) break;
        r += (int)got;
    }
    if (e.truncated) {
        free(pixels);
        free(rowbuf);
        jpeg_destroy_decompress(&cinfo);
        error_set(err, "truncated JPEG");
        return DEC_TRUNCATED;
    }
    jpeg_destroy_decompress(&cinfo);
    free(rowbuf);
    out->w = ow;
    out->h = rows;
    out->px = pixels;
    out->full_w = out->full_h = 0;
    *ox = (int)xoff;
    *oy = ry0;
    return DEC_OK;
}

int image_write_jpeg(const Image *im, const char *path, int quality, Error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        error_set(err, "cannot write %s", path);
        return -1;
    }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr); /* encoding our own buffer cannot fail short of I/O */
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)im->w;
    c.image_height = (JDIMENSION)im->h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(im->px + (size_t)c.next_scanline * im->w * 3);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    if (fclose(f) != 0) {
        error_set(err, "cannot write %s", path);
        return -1;
    }
    return 0;
}
