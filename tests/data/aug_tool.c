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
 *   aug_tool tvtable ra|wide BINS W H
 *                  "Op bin value" for every op with bins (the float, exactly)
 *   aug_tool tvop ra|wide BINS BIN OP SIGN IN OUT.png
 *                  one of torchvision's ops at bin BIN of the table
 *   aug_tool tvdraws ra|wide N BINS M
 *                  N choices: "Op bin sign" per line
 *   aug_tool tvpipe ra|wide BINS M NUM_OPS INDEX IN OUT.png
 *                  randaugment / trivialaugment through the pipeline on
 *                  sample stream INDEX; prints the choices it made
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/codec.h"
#include "data/randaugment.h"
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

static int cmd_tvtable(char **argv) {
    bool wide = !strcmp(argv[2], "wide");
    int bins = atoi(argv[3]), w = atoi(argv[4]), h = atoi(argv[5]);
    for (int op = 0; op < TV_NUM_OPS; op++)
        if (tv_op_has_bins((TvOp)op))
            for (int b = 0; b < bins; b++)
                printf("%s %d %.17g\n", tv_op_name((TvOp)op), b, tv_magnitude(wide, (TvOp)op, bins, b, w, h));
    return 0;
}

static int cmd_tvop(char **argv) {
    Image im;
    int op = tv_op_from_name(argv[5]);
    if (op < 0 || load(argv[7], &im)) return 1;
    TvChoice c = {(TvOp)op, atoi(argv[4]), atoi(argv[6]) < 0 ? -1 : 1};
    tv_apply_choice(&im, !strcmp(argv[2], "wide"), atoi(argv[3]), c, 0);
    Error err = {0};
    int rc = image_write(&im, argv[8], &err);
    image_free(&im);
    return rc ? 1 : 0;
}

static int cmd_tvdraws(char **argv) {
    bool wide = !strcmp(argv[2], "wide");
    int n = atoi(argv[3]), bins = atoi(argv[4]), m = atoi(argv[5]);
    for (int i = 0; i < n; i++) {
        SampleRng rng = sample_rng(13, 0, i);
        TvChoice c = wide ? trivialaugment_choose(bins, &rng) : randaugment_choose(m, &rng);
        printf("%s %d %d\n", tv_op_name(c.op), c.bin, c.sign);
    }
    return 0;
}

static int cmd_tvpipe(char **argv) {
    bool wide = !strcmp(argv[2], "wide");
    TransformOp op;
    memset(&op, 0, sizeof op);
    op.kind = wide ? TF_TRIVIALAUGMENT : TF_RANDAUGMENT;
    op.bins = atoi(argv[3]);
    op.magnitude = atoi(argv[4]);
    op.num_ops = atoi(argv[5]);
    Image im;
    if (load(argv[7], &im)) return 1;
    SampleRng rng = sample_rng(14, 0, atoi(argv[6])), replay = rng;
    for (int k = 0; k < (wide ? 1 : op.num_ops); k++) {
        TvChoice c = wide ? trivialaugment_choose(op.bins, &replay) : randaugment_choose(op.magnitude, &replay);
        printf("%s %d %d\n", tv_op_name(c.op), c.bin, c.sign);
    }
    Error err = {0};
    if (pipeline_apply_u8(&op, 1, &im, true, &rng, &err) || image_write(&im, argv[8], &err)) return 1;
    image_free(&im);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "erase") && argc >= 9) return cmd_erase(argv);
    if (!strcmp(cmd, "eraseparams") && argc >= 9) return cmd_eraseparams(argv);
    if (!strcmp(cmd, "erasepipe") && argc >= 6) return cmd_erasepipe(argv);
    if (!strcmp(cmd, "tvtable") && argc >= 6) return cmd_tvtable(argv);
    if (!strcmp(cmd, "tvop") && argc >= 9) return cmd_tvop(argv);
    if (!strcmp(cmd, "tvdraws") && argc >= 6) return cmd_tvdraws(argv);
    if (!strcmp(cmd, "tvpipe") && argc >= 9) return cmd_tvpipe(argv);
    fprintf(stderr, "bad arguments\n");
    return 2;
}
