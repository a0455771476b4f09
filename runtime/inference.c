/*
 * inference.c — eval-mode setup and single-image prediction (inference.h).
 */
#include "inference.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"

int inference_open(TrainRun *run, int batch, const char *split, const char *weights) {
    const Recipe *r = &run->model.recipe;
    char err[2048];
    if (split) {
        if (report_missing_data(&run->model, split)) return 1;
        run->val = loader_open(r, split, batch, false, LOADER_F32_NHWC, 0, err, sizeof err);
        if (!run->val) {
            fprintf(stderr, "rxc: %s\n", err);
            return 1;
        }
    }
    if (train_run_open_trainer(run, batch, true, false, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        return 1;
    }
    trainer_init_params(&run->tr, r->seed);
    char *msg = NULL;
    if (trainer_load_weights(&run->tr, weights, &msg) != 0) {
        fprintf(stderr, "rxc: %s", msg);
        free(msg);
        return 2;
    }
    return 0;
}

char **predict_class_names(const char *weights, const Recipe *r, int n) {
    char **names = xcalloc((size_t)n, sizeof *names);
    SafeTensors st;
    char err[512];
    if (st_read(weights, &st, err, sizeof err) == 0) {
        const char *text = st_get_meta(&st, "class_names");
        for (int c = 0; text && *text && c < n; c++) {
            const char *nl = strchr(text, '\n');
            size_t len = nl ? (size_t)(nl - text) : strlen(text);
            names[c] = xstrndup(text, len);
            text = nl ? nl + 1 : text + len;
        }
        st_free(&st);
    }
    /* Weights from elsewhere (PyTorch): the data set's class folders, in torchvision's sorted order. */
    char *dir = (!names[0] && r->layout == DATA_IMAGEFOLDER && r->data_root)
                    ? xasprintf("%s/%s", r->data_root, r->train_split) : NULL;
    struct dirent **list = NULL;
    int k = dir ? scandir(dir, &list, NULL, alphasort) : -1;
    int c = 0, folders = 0;
    for (int i = 0; i < k; i++) {
        char *sub = xasprintf("%s/%s", dir, list[i]->d_name);
        if (list[i]->d_name[0] != '.' && is_directory(sub) && folders++ < n) names[c++] = xstrdup(list[i]->d_name);
        free(sub);
        free(list[i]);
    }
    free(list);
    free(dir);
    if (folders != n)
        for (int i = 0; i < c; i++) { /* the folders do not fit this model: do not guess */
            free(names[i]);
            names[i] = NULL;
        }
    for (c = 0; c < n; c++)
        if (!names[c]) names[c] = xasprintf("class %d", c);
    return names;
}

int predict_image(TrainRun *run, const char *path, float *prob) {
    const Graph *g = run->model.graph;
    const Node *in = &g->nodes[g->input];
    int H = (int)in->dim[0], W = (int)in->dim[1], h = H, w = W;
    int classes = (int)run->tr.out_numel;
    size_t bytes = (size_t)H * W * 3 * sizeof(float);
    float *x = xmalloc(bytes);
    char err[2048];
    int rc = 0;
    StepStats st;
    if (loader_prepare_file(&run->model.recipe, false, path, 0, LOADER_F32_NHWC, x, bytes, &h, &w, err, sizeof err) != 0) {
        fprintf(stderr, "rxc predict: %s: %s\n", path, err);
        rc = 1;
    } else if (h != H || w != W) {
        fprintf(stderr, "rxc predict: %s: the validation transform gives %dx%d but the network takes %dx%d\n", path, h,
                w, H, W);
        rc = 2;
    } else if (trainer_eval(&run->tr, x, NULL, 1, &st, err, sizeof err) != 0) {
        fprintf(stderr, "rxc predict: %s\n", err);
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
