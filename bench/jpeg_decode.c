/*
 * bench/jpeg_decode.c — libjpeg-turbo's decode alone, per core: the floor
 * under any pipeline that starts from JPEG bytes (bench/data_pipeline).
 *
 *   jpeg_decode SECONDS FILE...
 * prints two lines, images per CPU-second on one thread:
 *   full   RATE   the whole image to RGB (what PIL's Image.open().convert does)
 *   region RATE   the part the seed's train transform reads, as rxc decodes
 *                 it: shorter side resized to 256, 296 or 384, a 224x224
 *                 crop at a random place, its source rows and columns plus
 *                 the resampling taps' reach (jpeg_decode_region_rgb)
 * Entropy decoding cannot skip the rows above a crop, so "region" is the
 * most any rxc pipeline from JPEG bytes can reach on this machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "data/codec.h"
#include "util.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: jpeg_decode SECONDS FILE...\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int n_files = argc - 2;
    uint8_t **data = xcalloc((size_t)n_files, sizeof *data);
    size_t *size = xcalloc((size_t)n_files, sizeof *size);
    for (int i = 0; i < n_files; i++) {
        if (!(data[i] = (uint8_t *)read_file(argv[i + 2], &size[i]))) {
            fprintf(stderr, "jpeg_decode: cannot read %s\n", argv[i + 2]);
            return 1;
        }
    }
    Error err = {0};
    for (int mode = 0; mode < 2; mode++) {
        long images = 0, draws = 0;
        double t0 = cpu_now();
        while (cpu_now() - t0 < seconds) {
            int f = (int)(images % n_files);
            Image im = {0};
            DecodeStatus st;
            if (mode == 0) {
                st = jpeg_decode_rgb(data[f], size[f], 1, &im, &err);
            } else {
                int w, h;
                jpeg_probe(data[f], size[f], &w, &h);
                static const int sides[] = {256, 296, 384};
                int side = sides[rng_key(1, 0, (uint64_t)draws++) % 3];
                double scale = (double)(w < h ? w : h) / side; /* source pixels per target pixel */
                int tw = w < h ? side : (int)((double)w / scale), th = w < h ? (int)((double)h / scale) : side;
                int cx = (int)(rng_key(1, 0, (uint64_t)draws++) % (uint64_t)(tw - 224 + 1));
                int cy = (int)(rng_key(1, 0, (uint64_t)draws++) % (uint64_t)(th - 224 + 1));
                int reach = (int)(2 * scale) + 2; /* the antialiased bilinear taps' support, and rounding */
                int x0 = (int)(cx * scale) - reach, y0 = (int)(cy * scale) - reach;
                int x1 = (int)((cx + 224) * scale) + reach, y1 = (int)((cy + 224) * scale) + reach;
                x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
                x1 = x1 > w ? w : x1, y1 = y1 > h ? h : y1;
                int ox, oy;
                st = jpeg_decode_region_rgb(data[f], size[f], x0, y0, x1 - x0, y1 - y0, &im, &ox, &oy, &err);
            }
            if (st != DEC_OK) {
                fprintf(stderr, "jpeg_decode: %s\n", err.msg);
                return 1;
            }
            image_free(&im);
            images++;
        }
        printf("%s %.1f\n", mode == 0 ? "full" : "region", images / (cpu_now() - t0));
    }
    return 0;
}
