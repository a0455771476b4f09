/*
 * cmd_data.c — the data commands: `rxc transform` (a pipeline on one image),
 * `rxc augment` (a grid of augmented training samples of a model's recipe)
 * and `rxc demo` (the offline demo data set).
 *
 * The front end's entry points are referenced weakly, so this file links
 * (and `rxc demo` works) in a build whose front end is not there yet.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "data/autoaugment.h"
#include "data/demo.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/transforms.h"
#include "frontend.h"
#include "util.h"

#pragma weak augment_parse
#pragma weak model_load
#pragma weak model_free
#pragma weak cli_take_sets

static const char transform_usage[] =
    "usage: rxc transform \"PIPELINE\" IN.jpg OUT.png [--seed S] [--aa-op OP,M,SIGN]...\n"
    "  PIPELINE in the language's augment syntax, e.g.\n"
    "    \"random_resize([256, 296, 384]) -> random_crop(224) -> hflip -> autoaugment(imagenet)\"\n"
    "  (\"none\" for no pipeline). normalize is not applied: the output is the uint8 image before it.\n"
    "  --aa-op applies one AutoAugment op after the pipeline with a fixed magnitude index (0-9) and\n"
    "  sign (+ or -), e.g. --aa-op rotate,9,+ (ops: shearX shearY translateX translateY rotate color\n"
    "  posterize solarize contrast sharpness brightness autocontrast equalize invert).\n"
    "  OUT is PNG when it ends in .png, else JPEG.\n";

int cmd_transform(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0;
    uint64_t seed = 0;
    const char *aa_ops[16];
    int n_aa = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(transform_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--aa-op") && i + 1 < argc && n_aa < 16) {
            aa_ops[n_aa++] = argv[++i];
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            fputs(transform_usage, stderr);
            return 2;
        }
    }
    if (n_pos != 3) {
        fputs(transform_usage, stderr);
        return 2;
    }
    TransformOp *ops = NULL;
    int n_ops = 0;
    Error err = {0};
    if (strcmp(pos[0], "none") && strcmp(pos[0], "")) {
        if (!augment_parse) {
            fprintf(stderr, "rxc: transform: the pipeline parser is not in this build; use \"none\" with --aa-op\n");
            return 1;
        }
        if (augment_parse(pos[0], &ops, &n_ops, &err)) {
            fprintf(stderr, "rxc: transform: %s\n", err.msg);
            return 2;
        }
    }
    size_t n_bytes;
    char *bytes = read_file(pos[1], &n_bytes);
    if (!bytes) {
        perror(pos[1]);
        free(ops);
        return 1;
    }
    Image im;
    SampleRng rng = sample_rng(seed, 0, 0);
    int prc = pipeline_apply_encoded(ops, n_ops, (const uint8_t *)bytes, n_bytes, &rng, &im, &err);
    free(bytes);
    if (prc) {
        fprintf(stderr, "rxc: transform: %s: %s\n", pos[1], err.msg);
        free(ops);
        return 1;
    }
    free(ops);
    for (int i = 0; i < n_aa; i++) {
        char name[32];
        int m = 0;
        char sign = '+';
        if (sscanf(aa_ops[i], "%31[^,],%d,%c", name, &m, &sign) < 2 || aa_op_from_name(name) < 0 || m < 0 ||
            m > 9) {
            fprintf(stderr, "rxc: transform: bad --aa-op '%s' (want OP,M,SIGN with M in 0..9)\n", aa_ops[i]);
            image_free(&im);
            return 2;
        }
        aa_apply_op(&im, (AAOp)aa_op_from_name(name), m, sign == '-' ? -1 : 1, 128);
    }
    int rc = image_write(&im, pos[2], &err);
    image_free(&im);
    if (rc) {
        fprintf(stderr, "rxc: transform: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static const char augment_usage[] =
    "usage: rxc augment FILE.net [--split train|val] [-n 16] [-o grid.jpg] [--epoch E] [--set NAME=VALUE]...\n"
    "  writes a grid of N samples as the loader gives them to training (the split's pipeline, before\n"
    "  normalize), from the recipe's data.\n";

int cmd_augment(int argc, char **argv) {
    if (!model_load || !cli_take_sets) {
        fprintf(stderr, "rxc: augment: the front end is not in this build\n");
        return 1;
    }
    SetOverride *sets = NULL;
    int n_sets = 0;
    if (cli_take_sets(&argc, argv, &sets, &n_sets)) return 2;
    const char *file = NULL, *split = "train", *outp = "grid.jpg";
    int n = 16, epoch = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(augment_usage, stdout);
            free(sets);
            return 0;
        } else if (!strcmp(argv[i], "--split") && i + 1 < argc) split = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--epoch") && i + 1 < argc) epoch = atoi(argv[++i]);
        else if (!file && argv[i][0] != '-') file = argv[i];
        else {
            fputs(augment_usage, stderr);
            free(sets);
            return 2;
        }
    }
    if (!file || n < 1 || n > 1024) {
        fputs(augment_usage, stderr);
        free(sets);
        return 2;
    }
    LoadOptions lo = {sets, n_sets, 0};
    Model m;
    int lrc = model_load(file, &lo, &m);
    free(sets);
    if (lrc != LOAD_OK) return lrc == LOAD_IO_ERROR ? 1 : 2;
    const Recipe *r = &m.recipe;
    bool train = strcmp(split, "val") != 0;
    const char *split_dir = train ? (r->train_split ? r->train_split : "train") : (r->val_split ? r->val_split : "val");
    Error err = {0};
    Loader *L = loader_open(r, split_dir, n, train, LOADER_U8_NHWC, 0, &err);
    if (!L) {
        fprintf(stderr, "rxc: augment: %s\n", err.msg);
        model_free(&m);
        return 1;
    }
    loader_report(L, stderr);
    Batch b;
    int got = loader_begin_epoch(L, epoch, &err) == 0 ? loader_next(L, &b, &err) : -1;
    if (got <= 0) {
        fprintf(stderr, "rxc: augment: %s\n", got < 0 ? err.msg : "no samples");
        loader_close(L);
        model_free(&m);
        return 1;
    }
    int cols = (int)ceil(sqrt((double)got)), rows = (got + cols - 1) / cols, gap = 2;
    Image grid;
    image_alloc(&grid, cols * (b.w + gap) + gap, rows * (b.h + gap) + gap);
    memset(grid.px, 255, (size_t)grid.w * grid.h * 3);
    for (int k = 0; k < got; k++) {
        int gx = gap + (k % cols) * (b.w + gap), gy = gap + (k / cols) * (b.h + gap);
        const uint8_t *src = (const uint8_t *)b.data + (size_t)k * b.h * b.w * 3;
        for (int y = 0; y < b.h; y++)
            memcpy(grid.px + ((size_t)(gy + y) * grid.w + gx) * 3, src + (size_t)y * b.w * 3, (size_t)b.w * 3);
    }
    printf("%s: %d %s samples of epoch %d (%dx%d each); classes:", outp, got, split, epoch, b.w, b.h);
    for (int k = 0; k < got; k++) printf(" %s", loader_class_name(L, (int)b.labels[k]));
    printf("\n");
    int rc = image_write(&grid, outp, &err);
    if (rc) fprintf(stderr, "rxc: augment: %s\n", err.msg);
    image_free(&grid);
    loader_close(L);
    model_free(&m);
    return rc ? 1 : 0;
}

static const char demo_usage[] =
    "usage: rxc demo [--out DIR] [--csv digits.csv.gz]\n"
    "  writes the demo data set (sklearn's 1,797 handwritten digits as 32x32 RGB JPEGs, ImageFolder\n"
    "  layout, fixed split: CSV row i goes to val/ when i %% 5 == 4) to DIR (default data/digits).\n"
    "  The CSV comes from --csv, else from an installed python3-sklearn, else from\n"
    "  `apt-get download python3-sklearn` + `dpkg -x` in a temporary directory (nothing is installed).\n";

int cmd_demo(int argc, char **argv) {
    const char *out = "data/digits", *csv = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(demo_usage);
            return 0;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--csv") && i + 1 < argc) csv = argv[++i];
        else {
            fprintf(stderr, demo_usage);
            return 2;
        }
    }
    Error err = {0};
    if (demo_prepare(out, csv, &err)) {
        fprintf(stderr, "rxc: demo: %s\n", err.msg);
        return 1;
    }
    return 0;
}
