/*
 * loader_tool.c — drives the loader without the front end, for
 * tests/data/run.sh and bench/data_pipeline: builds a Recipe for a named
 * pipeline preset, runs epochs, and prints a hash per batch (so thread
 * counts can be compared), the report, and the throughput.
 *
 *   loader_tool ROOT SPLIT PRESET [--batch B] [--threads T] [--cache decoded|jpeg|none]
 *               [--epochs E] [--u8] [--train|--val] [--layout imagefolder|cifar10|cifar100]
 *               [--drop-last] [--seed S] [--dump FILE] [--indices] [--quiet] [--class-names FILE]
 *   PRESET: seed-train, seed-val, demo-train, none
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/loader.h"
#include "util.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int preset(const char *name, TransformOp *ops) {
    memset(ops, 0, sizeof(TransformOp) * 8);
    float seed_mean[3] = {0.4625f, 0.4580f, 0.4295f}, seed_std[3] = {0.2452f, 0.2390f, 0.2469f};
    int n = 0;
    if (!strcmp(name, "seed-train")) {
        ops[n].kind = TF_RANDOM_RESIZE;
        ops[n].sizes[0] = 256; ops[n].sizes[1] = 296; ops[n].sizes[2] = 384; ops[n].n_sizes = 3; n++;
        ops[n].kind = TF_RANDOM_CROP; ops[n].size[0] = ops[n].size[1] = 224; n++;
        ops[n].kind = TF_HFLIP; ops[n].p = 0.5f; n++;
        ops[n].kind = TF_AUTOAUGMENT; ops[n].policy = AA_IMAGENET; ops[n].fill = 128; n++;
    } else if (!strcmp(name, "seed-val")) {
        ops[n].kind = TF_RESIZE; ops[n].size[0] = 256; n++;
        ops[n].kind = TF_CENTER_CROP; ops[n].size[0] = ops[n].size[1] = 224; n++;
    } else if (!strcmp(name, "demo-train")) {
        ops[n].kind = TF_RANDOM_CROP; ops[n].size[0] = ops[n].size[1] = 32; ops[n].padding = 2; n++;
        ops[n].kind = TF_HFLIP; ops[n].p = 0.5f; n++;
        for (int c = 0; c < 3; c++) { seed_mean[c] = 0.15f; seed_std[c] = 0.3f; }
    } else if (strcmp(name, "none")) {
        return -1;
    }
    ops[n].kind = TF_NORMALIZE;
    memcpy(ops[n].mean, seed_mean, sizeof seed_mean);
    memcpy(ops[n].std, seed_std, sizeof seed_std);
    return n + 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: loader_tool ROOT SPLIT PRESET [options]\n");
        return 2;
    }
    Recipe r;
    memset(&r, 0, sizeof r);
    TransformOp ops[8];
    int n_ops = preset(argv[3], ops);
    if (n_ops < 0) { fprintf(stderr, "unknown preset\n"); return 2; }
    r.data_root = argv[1];
    r.layout = DATA_IMAGEFOLDER;
    r.train_split = "train";
    r.val_split = "val";
    r.cache = CACHE_DECODED;
    r.train_tf = r.val_tf = ops;
    r.n_train_tf = r.n_val_tf = n_ops;
    r.seed = 1;
    int batch = 16, threads = 1, epochs = 1;
    bool train = true;
    LoaderOutput out = LOADER_F32_NHWC;
    const char *dump = NULL;
    bool show_indices = false, quiet = false;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed")) r.seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--u8")) out = LOADER_U8_NHWC;
        else if (!strcmp(argv[i], "--train")) train = true;
        else if (!strcmp(argv[i], "--val")) train = false;
        else if (!strcmp(argv[i], "--drop-last")) r.drop_last = true;
        else if (!strcmp(argv[i], "--dump")) dump = argv[++i];
        else if (!strcmp(argv[i], "--indices")) show_indices = true;
        else if (!strcmp(argv[i], "--quiet")) quiet = true;
        else if (!strcmp(argv[i], "--class-names")) r.class_names = argv[++i];
        else if (!strcmp(argv[i], "--cache")) {
            const char *c = argv[++i];
            r.cache = !strcmp(c, "jpeg") ? CACHE_JPEG : !strcmp(c, "none") ? CACHE_NONE : CACHE_DECODED;
        } else if (!strcmp(argv[i], "--layout")) {
            const char *l = argv[++i];
            r.layout = !strcmp(l, "cifar10") ? DATA_CIFAR10 : !strcmp(l, "cifar100") ? DATA_CIFAR100 : DATA_IMAGEFOLDER;
        } else {
            fprintf(stderr, "bad option %s\n", argv[i]);
            return 2;
        }
    }
    Error err = {0};
    double t_open = now();
    Loader *L = loader_open(&r, argv[2], batch, train, out, threads, &err);
    if (!L) {
        printf("ERROR %s\n", err.msg);
        return 1;
    }
    t_open = now() - t_open;
    loader_report(L, stdout);
    printf("classes %d:", loader_num_classes(L));
    for (int c = 0; c < loader_num_classes(L); c++) printf(" %s", loader_class_name(L, c));
    printf("\nsamples %d batches %d skipped %d\n", loader_num_samples(L), loader_num_batches(L), loader_num_skipped(L));
    FILE *df = dump ? fopen(dump, "wb") : NULL;
    long images = 0;
    double t0 = now(), c0 = cpu_now();
    for (int e = 0; e < epochs; e++) {
        if (loader_begin_epoch(L, e, &err)) { printf("ERROR %s\n", err.msg); return 1; }
        Batch b;
        int k = 0, got;
        while ((got = loader_next(L, &b, &err)) > 0) {
            size_t bytes = (size_t)b.n * b.h * b.w * 3 * (b.kind == LOADER_U8_NHWC ? 1 : sizeof(float));
            images += b.n;
            if (quiet) continue; /* benchmarks: the consumer only takes batches */
            uint64_t h = fnv1a64(b.data, bytes, FNV1A64_INIT);
            h = fnv1a64(b.labels, sizeof(int64_t) * b.n, h);
            printf("epoch %d batch %d n %d %dx%d hash %016llx first %d\n", e, k++, b.n, b.w, b.h,
                   (unsigned long long)h, b.indices[0]);
            if (df) fwrite(b.data, 1, bytes, df);
            if (show_indices) {
                printf("indices %d:", e);
                for (int i = 0; i < b.n; i++) printf(" %d/%lld", b.indices[i], (long long)b.labels[i]);
                printf("\n");
            }
        }
        if (got < 0) { printf("ERROR %s\n", err.msg); loader_close(L); return 1; }
    }
    double dt = now() - t0, cpu = cpu_now() - c0;
    if (df) fclose(df);
    printf("open %.3f s; %ld images in %.3f s: %.1f images/s with %d threads; stall %.3f s; "
           "cpu %.3f s: %.1f images per cpu-second\n",
           t_open, images, dt, images / dt, threads, loader_stall_seconds(L), cpu, images / cpu);
    loader_close(L);
    return 0;
}
