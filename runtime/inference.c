/*
 * inference.c — eval-mode setup and single-image prediction (inference.h).
 */
#include "inference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "util.h"

int inference_open(TrainRun *run, int batch, const char *split, const char *weights, bool ema) {
    const Recipe *r = &run->model.recipe;
    Error err = {0};
    if (split) {
        if (report_missing_data(&run->model, split)) return 1;
        run->val = loader_open(r, split, batch, false, LOADER_F32_NHWC, 0, &err);
        if (!run->val) {
            fprintf(stderr, "rxc: %s\n", err.msg);
            return 1;
        }
        /* Labels by the class names the weights were trained on, not folder position. */
        int n_classes = 0;
        char **classes = trainer_weight_classes(weights, r, true, &n_classes);
        int rc = classes && loader_use_classes(run->val, classes, n_classes, stderr, &err) != 0 ? 2 : 0;
        dataset_free_names(classes, n_classes);
        if (rc) {
            fprintf(stderr, "rxc: %s\n", err.msg);
            return rc;
        }
    }
    if (train_run_open_trainer(run, batch, true, false, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    if (split && trainer_check_loaders(&run->tr, NULL, run->val, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 2;
    }
    trainer_init_params(&run->tr, r->seed);
    int rc = ema ? checkpoint_load_ema_weights(weights, &run->tr.ref, &err) : trainer_load_weights(&run->tr, weights, &err);
    if (rc != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return checkpoint_load_status(rc);
    }
    return 0;
}

/* The weights file's class names (written by rxc train), else the data
 * set's class folders, else "class N". */
char **predict_class_names(const char *weights, const Recipe *r, int n) {
    int k = 0;
    char **known = trainer_weight_classes(weights, r, false, &k);
    char **names = xcalloc((size_t)n, sizeof *names);
    for (int c = 0; c < n; c++) /* a list that does not fit this model: do not guess */
        names[c] = known && k == n ? xstrdup(known[c]) : xasprintf("class %d", c);
    dataset_free_names(known, k);
    return names;
}

int predict_image(TrainRun *run, const char *path, float *prob) {
    const Graph *g = run->model.graph;
    const Node *in = &g->nodes[g->input];
    int H = (int)in->dim[0], W = (int)in->dim[1], h = H, w = W;
    int classes = (int)run->tr.out_numel;
    size_t bytes = (size_t)H * W * 3 * sizeof(float);
    float *x = xmalloc(bytes);
    Error err = {0};
    int rc = 0;
    StepStats st;
    if (loader_prepare_file(&run->model.recipe, false, path, 0, LOADER_F32_NHWC, x, bytes, &h, &w, &err) != 0) {
        fprintf(stderr, "rxc predict: %s\n", err.msg); /* the message names the file */
        rc = 1;
    } else if (trainer_check_samples(&run->tr, "val", h, w, &err) != 0) {
        fprintf(stderr, "rxc predict: %s: %s\n", path, err.msg);
        rc = 2;
    } else if (trainer_eval(&run->tr, x, NULL, 1, &st, &err) != 0) {
        fprintf(stderr, "rxc predict: %s\n", err.msg);
        rc = 1;
    } else {
        const float *z = run->tr.logits;
        float mx = z[0];
        for (int c = 1; c < classes; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += exp((double)z[c] - mx);
        for (int c = 0; c < classes; c++) prob[c] = (float)(exp((double)z[c] - mx) / sum);
    }
    free(x);
    return rc;
}
