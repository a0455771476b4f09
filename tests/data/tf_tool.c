/*
 * tf_tool.c — test driver for the data pipeline's ops (tests/data/run.sh):
 * exposes decode, resize, crops and single AutoAugment ops with forced
 * magnitude and sign, so each can be compared with PIL/torchvision.
 *
 *   tf_tool decode IN OUT.png [MIN_SHORT]       decode (DCT-scaled if MIN_SHORT)
 *   tf_tool probe IN                            status name, w, h
 *   tf_tool resize IN W H OUT.png               PIL bilinear resize
 *   tf_tool window IN W H X0 Y0 CW CH OUT.png   windowed resize
 *   tf_tool aa OP M SIGN IN OUT.png             one AutoAugment op
 *   tf_tool policy imagenet|cifar10|svhn        prints the table
 *   tf_tool draws POLICY N                      counts of random choices over N samples
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/autoaugment.h"
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
    char err[256] = "";
    DecodeStatus s = image_decode((const uint8_t *)data, n, min_short, im, err, sizeof err);
    free(data);
    if (s != DEC_OK) {
        fprintf(stderr, "%s: %s (%s)\n", path, decode_status_name(s), err);
        return -1;
    }
    return 0;
}

static int save(const Image *im, const char *path) {
    char err[256];
    if (image_write(im, path, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
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
        /* Replays autoaugment_apply's draws: sub-policy index, step 1 and 2 applied, signs. */
        int n = atoi(argv[3]), np;
        const AASubPolicy *t = aa_policy(policy_of(argv[2]), &np);
        long *pick = calloc(np, sizeof(long)), *a1 = calloc(np, sizeof(long)), *a2 = calloc(np, sizeof(long));
        long plus = 0;
        for (int i = 0; i < n; i++) {
            SampleRng r = sample_rng(42, 0, i);
            int k = srng_below(&r, np);
            double u1 = srng_uniform(&r);
            int s1 = (srng_u64(&r) >> 63) ? 1 : -1;
            double u2 = srng_uniform(&r);
            (void)srng_u64(&r);
            pick[k]++;
            a1[k] += u1 < t[k].p1;
            a2[k] += u2 < t[k].p2;
            plus += s1 > 0;
        }
        for (int k = 0; k < np; k++) printf("%d %ld %ld %ld\n", k, pick[k], a1[k], a2[k]);
        printf("plus %ld\n", plus);
        return 0;
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
