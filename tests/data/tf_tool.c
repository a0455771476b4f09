/*
 * tf_tool.c — test driver for the data pipeline's ops (tests/data/run.sh):
 * exposes decode, resize, crops and single AutoAugment ops with forced
 * magnitude and sign, so each can be compared with PIL/torchvision.
 *
 *   tf_tool decode IN OUT.png [MIN_SHORT]       decode (DCT-scaled if MIN_SHORT)
 *   tf_tool region X0 Y0 W H IN OUT.png         region decode (crop/skip scanlines), that region
 *   tf_tool probe IN                            status name, w, h
 *   tf_tool resize IN W H OUT.png               PIL bilinear resize
 *   tf_tool decode-resize S IN OUT.png          DCT-scaled decode (as the loader), then resize(S)
 *   tf_tool window IN W H X0 Y0 CW CH OUT.png   windowed resize
 *   tf_tool aa OP M SIGN IN OUT.png             one AutoAugment op
 *   tf_tool policy imagenet|cifar10|svhn        prints the table
 *   tf_tool draws POLICY N                      counts of random choices over N samples
 *   tf_tool pipedraws N                         observed random_resize/random_crop/hflip choices
 *   tf_tool center H W IN OUT.png               center_crop through the pipeline
 *   tf_tool resize-short S X IN OUT.png         resize(S) (shorter side) through the pipeline
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/autoaugment.h"
#include "data/codec.h"
#include "data/image.h"
#include "data/transforms.h"
#include "util.h"

static int load(const char *path, int min_short, Image *im) {
    size_t n;
    char *data = read_file(path, &n);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return -1;
    }
    Error err = {0};
    DecodeStatus s = image_decode((const uint8_t *)data, n, min_short, im, &err);
    free(data);
    if (s != DEC_OK) {
        fprintf(stderr, "%s: %s (%s)\n", path, decode_status_name(s), err.msg);
        return -1;
    }
    return 0;
}

static int save(const Image *im, const char *path) {
    Error err = {0};
    if (image_write(im, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static AutoAugmentPolicy policy_of(const char *s) {
    return !strcmp(s, "cifar10") ? AA_CIFAR10 : !strcmp(s, "svhn") ? AA_SVHN : AA_IMAGENET;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    Image im, out;
    if (!strcmp(cmd, "decode") && argc >= 4) {
        if (load(argv[2], argc > 4 ? atoi(argv[4]) : 0, &im)) return 1;
        return save(&im, argv[3]) ? 1 : 0;
    }
    if (!strcmp(cmd, "probe") && argc >= 3) {
        size_t n;
        char *data = read_file(argv[2], &n);
        if (!data) { printf("unreadable\n"); return 0; }
        int w = 0, h = 0;
        DecodeStatus s = image_probe((const uint8_t *)data, n, &w, &h);
        printf("%s %d %d\n", decode_status_name(s), w, h);
        free(data);
        return 0;
    }
    if (!strcmp(cmd, "region") && argc >= 8) {
        /* region X0 Y0 W H IN OUT.png: decode a region, write exactly that region */
        int x0 = atoi(argv[2]), y0 = atoi(argv[3]), w = atoi(argv[4]), h = atoi(argv[5]), ox, oy;
        size_t n;
        char *data = read_file(argv[6], &n);
        Error err = {0};
        if (!data || jpeg_decode_region_rgb((const uint8_t *)data, n, x0, y0, w, h, &im, &ox, &oy, &err)) {
            fprintf(stderr, "region decode failed\n");
            return 1;
        }
        free(data);
        fprintf(stderr, "region: decoded %dx%d at (%d,%d)\n", im.w, im.h, ox, oy);
        crop_image(&im, x0 - ox, y0 - oy, w, h, &out);
        return save(&out, argv[7]) ? 1 : 0;
    }
    if (!strcmp(cmd, "decode-resize") && argc >= 5) {
        /* what the loader does for resize(S) first: DCT-scaled decode with hint S, then resize */
        int size = atoi(argv[2]), ow, oh;
        if (load(argv[3], decode_hint_for(size), &im)) return 1;
        size_t n;
        char *data = read_file(argv[3], &n);
        int w0 = 0, h0 = 0;
        image_probe((const uint8_t *)data, n, &w0, &h0);
        free(data);
        fprintf(stderr, "decode-resize: %dx%d decoded at %dx%d (1/%d)\n", w0, h0, im.w, im.h, image_dct_scale(w0, h0, decode_hint_for(size)));
        resize_shorter_dims(w0, h0, size, &ow, &oh);
        resize_bilinear(&im, ow, oh, &out);
        return save(&out, argv[4]) ? 1 : 0;
    }
    if (!strcmp(cmd, "resize") && argc >= 6) {
        if (load(argv[2], 0, &im)) return 1;
        resize_bilinear(&im, atoi(argv[3]), atoi(argv[4]), &out);
        return save(&out, argv[5]) ? 1 : 0;
    }
    if (!strcmp(cmd, "window") && argc >= 10) {
        if (load(argv[2], 0, &im)) return 1;
        resize_bilinear_window(&im, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]),
                               atoi(argv[8]), &out);
        return save(&out, argv[9]) ? 1 : 0;
    }
    if (!strcmp(cmd, "aa") && argc >= 7) {
        int op = aa_op_from_name(argv[2]);
        if (op < 0) { fprintf(stderr, "unknown op %s\n", argv[2]); return 2; }
        if (load(argv[5], 0, &im)) return 1;
        aa_apply_op(&im, (AAOp)op, atoi(argv[3]), argv[4][0] == '-' ? -1 : 1, 128);
        return save(&im, argv[6]) ? 1 : 0;
    }
    if (!strcmp(cmd, "policy") && argc >= 3) {
        int n;
        const AASubPolicy *t = aa_policy(policy_of(argv[2]), &n);
        for (int i = 0; i < n; i++)
            printf("%d %.1f %s %d %.1f %s %d\n", i, t[i].p1, aa_op_name(t[i].op1), t[i].m1, t[i].p2,
                   aa_op_name(t[i].op2), t[i].m2);
        for (int op = 0; op < AA_NUM_OPS; op++) {
            printf("mag %s", aa_op_name((AAOp)op));
            for (int m = 0; m < 10; m++) printf(" %.17g", aa_magnitude((AAOp)op, m));
            printf("\n");
        }
        return 0;
    }
    if (!strcmp(cmd, "draws") && argc >= 4) {
        /* autoaugment_choose over N sample streams: per sub-policy, how often
         * it was picked and how often each step applied; signs of step 1. */
        int n = atoi(argv[3]), np;
        AutoAugmentPolicy pol = policy_of(argv[2]);
        aa_policy(pol, &np);
        long *pick = calloc(np, sizeof(long)), *a1 = calloc(np, sizeof(long)), *a2 = calloc(np, sizeof(long));
        long plus = 0;
        for (int i = 0; i < n; i++) {
            SampleRng r = sample_rng(42, 0, i);
            AAChoice c = autoaugment_choose(pol, &r);
            pick[c.index]++;
            a1[c.index] += c.apply1;
            a2[c.index] += c.apply2;
            plus += c.sign1 > 0;
        }
        for (int k = 0; k < np; k++) printf("%d %ld %ld %ld\n", k, pick[k], a1[k], a2[k]);
        printf("plus %ld\n", plus);
        return 0;
    }
    if (!strcmp(cmd, "pipedraws") && argc >= 3) {
        /* Random choices of random_resize, random_crop and hflip observed from
         * their outputs over N sample streams, on a 64x48 image whose pixels
         * encode their coordinates (R = 4x, G = 5y). Prints per sample:
         * "resize W H" for random_resize([32, 40, 48]) alone, and
         * "crop I J FLIP" for random_crop(24) -> hflip(0.5). */
        int n = atoi(argv[2]);
        Image coord;
        image_alloc(&coord, 64, 48);
        for (int y = 0; y < 48; y++)
            for (int x = 0; x < 64; x++) {
                uint8_t *p = coord.px + ((size_t)y * 64 + x) * 3;
                p[0] = (uint8_t)(4 * x);
                p[1] = (uint8_t)(5 * y);
                p[2] = 0;
            }
        TransformOp rr, crop[2];
        memset(&rr, 0, sizeof rr);
        memset(crop, 0, sizeof crop);
        rr.kind = TF_RANDOM_RESIZE;
        rr.sizes[0] = 32; rr.sizes[1] = 40; rr.sizes[2] = 48; rr.n_sizes = 3;
        crop[0].kind = TF_RANDOM_CROP; crop[0].size[0] = crop[0].size[1] = 24;
        crop[1].kind = TF_HFLIP; crop[1].p = 0.5f;
        Error err = {0};
        for (int i = 0; i < n; i++) {
            SampleRng r = sample_rng(5, 1, i);
            Image a = coord;
            if (pipeline_apply_u8(&rr, 1, &a, false, &r, &err)) return 1;
            printf("resize %d %d\n", a.w, a.h);
            image_free(&a);
            r = sample_rng(5, 2, i);
            Image b = coord;
            if (pipeline_apply_u8(crop, 2, &b, false, &r, &err)) return 1;
            int left = b.px[0], right = b.px[23 * 3];
            int flip = left > right;
            int j = (flip ? right : left) / 4, row = b.px[1] / 5;
            printf("crop %d %d %d\n", row, j, flip);
            image_free(&b);
        }
        return 0;
    }
    if ((!strcmp(cmd, "center") || !strcmp(cmd, "resize-short")) && argc >= 6) {
        /* one pipeline op through pipeline_apply_u8: center_crop(H, W) or resize(S) */
        TransformOp op;
        memset(&op, 0, sizeof op);
        op.kind = !strcmp(cmd, "center") ? TF_CENTER_CROP : TF_RESIZE;
        op.size[0] = atoi(argv[2]);
        op.size[1] = !strcmp(cmd, "center") ? atoi(argv[3]) : 0;
        if (load(argv[4], 0, &im)) return 1;
        SampleRng r = sample_rng(1, 0, 0);
        Error err = {0};
        if (pipeline_apply_u8(&op, 1, &im, true, &r, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        return save(&im, argv[5]) ? 1 : 0;
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
