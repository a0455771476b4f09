/*
 * aug_tool.c — test driver for the augmentations of the "ResNet strikes
 * back" recipes (tests/data/run.sh, checked by aug_ref.py against
 * torchvision): random_erasing's erase and its box draws.
 *
 *   aug_tool erase IN TOP LEFT EH EW V|R,G,B|random OUT.f32
 *                  ImageNet normalize, then the box erased; raw NHWC float32
 *   aug_tool eraseparams W H N S0 S1 R0 R1
 *                  N draws of the box: "top left eh ew", or "none"
 *   aug_tool erasepipe W H N P
 *                  random_erasing(p=P) after normalize on N sample streams:
 *                  how many samples were erased
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/codec.h"
#include "data/image.h"
#include "data/transforms.h"
#include "util.h"

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};

static int load(const char *path, Image *im) {
    size_t n;
    char *data = read_file(path, &n);
    if (!data) return -1;
    Error err = {0};
    DecodeStatus s = image_decode((const uint8_t *)data, n, 0, im, &err);
    free(data);
    return s == DEC_OK ? 0 : -1;
}

static int write_floats(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(x, sizeof(float), n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int cmd_erase(char **argv) {
    Image im;
    if (load(argv[2], &im)) return 1;
    size_t n = (size_t)im.w * im.h * 3;
    float *x = xmalloc(n * sizeof *x);
    normalize_to_f32(&im, imagenet_mean, imagenet_std, x);
    float value[3];
    SampleRng rng = sample_rng(3, 0, 0);
    bool random = !strcmp(argv[7], "random");
    if (!random && sscanf(argv[7], "%f,%f,%f", &value[0], &value[1], &value[2]) != 3) value[1] = value[2] = value[0];
    erase_f32(x, im.w, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), value, random ? &rng : NULL);
    int rc = write_floats(argv[8], x, n);
    free(x);
    image_free(&im);
    return rc ? 1 : 0;
}

static int cmd_eraseparams(char **argv) {
    int w = atoi(argv[2]), h = atoi(argv[3]), n = atoi(argv[4]);
    float scale[2] = {(float)atof(argv[5]), (float)atof(argv[6])}, ratio[2] = {(float)atof(argv[7]), (float)atof(argv[8])};
    for (int i = 0; i < n; i++) {
        SampleRng rng = sample_rng(11, 0, i);
        int top, left, eh, ew;
        if (erasing_params(w, h, scale, ratio, &rng, &top, &left, &eh, &ew)) printf("%d %d %d %d\n", top, left, eh, ew);
        else printf("none\n");
    }
    return 0;
}

static int cmd_erasepipe(char **argv) {
    int w = atoi(argv[2]), h = atoi(argv[3]), n = atoi(argv[4]);
    TransformOp ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].kind = TF_NORMALIZE;
    ops[1].kind = TF_RANDOM_ERASING;
    ops[1].p = (float)atof(argv[5]);
    ops[1].scale[0] = 0.02f; ops[1].scale[1] = 0.33f;
    ops[1].ratio[0] = 0.3f; ops[1].ratio[1] = 3.3f;
    ops[1].erase_value[0] = ops[1].erase_value[1] = ops[1].erase_value[2] = 1.0f;
    float *x = xmalloc((size_t)w * h * 3 * sizeof *x);
    long erased = 0;
    for (int i = 0; i < n; i++) {
        memset(x, 0, (size_t)w * h * 3 * sizeof *x);
        SampleRng rng = sample_rng(12, 0, i);
        pipeline_apply_f32(ops, 2, x, w, h, &rng);
        for (size_t k = 0; k < (size_t)w * h * 3; k++)
            if (x[k] != 0) { erased++; break; }
    }
    free(x);
    printf("%ld\n", erased);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "erase") && argc >= 9) return cmd_erase(argv);
    if (!strcmp(cmd, "eraseparams") && argc >= 9) return cmd_eraseparams(argv);
    if (!strcmp(cmd, "erasepipe") && argc >= 6) return cmd_erasepipe(argv);
    fprintf(stderr, "bad arguments\n");
    return 2;
}
