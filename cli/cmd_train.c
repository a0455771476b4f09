/*
 * cmd_train.c — the command lines of `rxc train` (also `rxc FILE.net`),
 * `rxc eval` and `rxc predict`: their options, usage texts and results on
 * stdout. The run itself is runtime/train_loop.h's (start-up, epochs,
 * checkpoints, signals); eval and predict share inference.h's setup.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "distributed.h"
#include "frontend.h"
#include "inference.h"
#include "train_loop.h"
#include "util.h"

typedef struct TrainArgs {
    const char *file;
    const char *resume, *init, *run_dir, *weights;
    const char *split;
    int epochs;              /* 0: the file's */
    int64_t max_steps;       /* 0: none; stop (with a checkpoint) after this many optimizer steps */
    bool ema;                /* eval, predict: the checkpoint's EMA weights */
    bool have_device;
    DeviceKind device;
    int device_index;        /* --device cuda:K */
    SetOverride *sets;
    int n_sets;
    char **images;
    int n_images;
} TrainArgs;

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: rxc train FILE.net [--set NAME=VALUE]... [--device cpu|cuda[:K]|auto] [--resume CKPT]\n"
            "                 [--init WEIGHTS] [--epochs N] [--run-dir DIR] [--max-steps N]\n"
            "                 [--distributed auto|on|off]\n"
            "       rxc FILE.net [same options]\n"
            "  Trains and validates epoch by epoch as the file says, printing the seed's epoch line.\n"
            "  The run directory (default runs/<network>) gets metrics.csv/jsonl, TensorBoard events,\n"
            "  curves.svg, log.txt, model.net, settings.txt, last.safetensors and best.safetensors.\n"
            "  --resume CKPT   continue a run exactly (a checkpoint written by rxc train)\n"
            "  --init W        start from weights only (strict names and shapes; a PyTorch state_dict\n"
            "                  saved with safetensors works)\n"
            "  --max-steps N   stop after N optimizer steps in total, saving a checkpoint\n"
            "  --distributed   auto (default): data-parallel when started by mpirun or srun, e.g.\n"
            "                  mpirun -np 4 rxc train FILE.net (the file's batch is the global batch);\n"
            "                  off: one process even so; on: fail unless started that way\n"
            "  Ctrl-C or SIGTERM finishes the current step, saves last.safetensors and exits 130.\n");
}


static int parse_count(const char *opt, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long k = strtoll(v, &end, 10);
    if (!*v || *end || errno || k < lo || k > hi) {
        fprintf(stderr, "rxc: %s needs an integer in %lld..%lld (got '%s')\n", opt, (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = k;
    return 0;
}

/* mode: 't' train, 'e' eval, 'p' predict. Returns 0, 1 for --help, or 2. */
static int parse_args(int argc, char **argv, char mode, TrainArgs *a) {
    memset(a, 0, sizeof *a);
    if (cli_take_sets(&argc, argv, &a->sets, &a->n_sets) != 0) return 2;
    a->images = xcalloc((size_t)argc + 1, sizeof *a->images);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
        bool takes = !strcmp(s, "--device") || !strcmp(s, "--weights") || !strcmp(s, "--split") ||
                     (mode == 't' && (!strcmp(s, "--resume") || !strcmp(s, "--init") || !strcmp(s, "--epochs") ||
                                      !strcmp(s, "--run-dir") || !strcmp(s, "--max-steps")));
        if (takes) {
            if (!v) {
                fprintf(stderr, "rxc: %s needs a value\n", s);
                return 2;
            }
            i++;
            int64_t k = 0;
            if (!strcmp(s, "--device")) {
                if (device_parse(v, &a->device, &a->device_index) != 0) {
                    fprintf(stderr, "rxc: --device must be cpu, cuda, cuda:K or auto (got '%s')\n", v);
                    return 2;
                }
                a->have_device = true;
            } else if (!strcmp(s, "--weights")) a->weights = v;
            else if (!strcmp(s, "--split")) a->split = v;
            else if (!strcmp(s, "--resume")) a->resume = v;
            else if (!strcmp(s, "--init")) a->init = v;
            else if (!strcmp(s, "--run-dir")) a->run_dir = v;
            else if (!strcmp(s, "--epochs")) {
                if (parse_count(s, v, 1, 1000000, &k) != 0) return 2;
                a->epochs = (int)k;
            } else {
                if (parse_count(s, v, 1, INT64_MAX / 2, &k) != 0) return 2;
                a->max_steps = k;
            }
        } else if (mode != 't' && !strcmp(s, "--ema")) {
            a->ema = true;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "rxc: unknown option '%s' (see rxc %s --help)\n", s,
                    mode == 't' ? "train" : mode == 'e' ? "eval" : "predict");
            return 2;
        } else if (!a->file) {
            a->file = s;
        } else if (mode == 'p') {
            a->images[a->n_images++] = argv[i];
        } else {
            fprintf(stderr, "rxc: unexpected argument '%s'\n", s);
            return 2;
        }
    }
    if (!a->file) {
        fprintf(stderr, "rxc: which .net file? (see rxc %s --help)\n", mode == 't' ? "train" : mode == 'e' ? "eval" : "predict");
        return 2;
    }
    if (mode != 't' && !a->weights) {
        fprintf(stderr, "rxc %s: --weights W.safetensors is required\n", mode == 'e' ? "eval" : "predict");
        return 2;
    }
    if (mode == 'p' && a->n_images == 0) {
        fprintf(stderr, "rxc predict: give at least one image\n");
        return 2;
    }
    if (a->resume && a->init) {
        fprintf(stderr, "rxc train: --resume and --init exclude each other (a checkpoint already holds the weights)\n");
        return 2;
    }
    return 0;
}

static void free_args(TrainArgs *a) {
    free(a->sets);
    free(a->images);
}

/* The model with the command line's overrides; 0, or 1 (unreadable) or 2. */
static int load_model(const TrainArgs *a, TrainRun *run) {
    Model *m = &run->model;
    LoadOptions lo = {a->sets, a->n_sets, 0};
    int rc = model_load(a->file, &lo, m);
    if (rc != LOAD_OK) return rc == LOAD_IO_ERROR ? 1 : 2;
    run->model_loaded = true;
    if (a->epochs > 0) m->recipe.epochs = a->epochs;
    if (a->have_device) {
        m->recipe.device = a->device;
        m->recipe.device_index = a->device_index;
    }
    if (a->run_dir) {
        free(m->recipe.run_dir);
        m->recipe.run_dir = xstrdup(a->run_dir);
    }
    return 0;
}

static int train(int argc, char **argv, Dist *dist);

int cmd_train(int argc, char **argv) {
    Dist *dist = NULL;
    int rc = cli_take_distributed(&argc, argv, &dist);
    if (rc) return rc;
    rc = train(argc, argv, dist);
    dist_close(dist, rc);
    return rc;
}

static int train(int argc, char **argv, Dist *dist) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 't', &a);
    if (rc) {
        if (rc == 1) train_usage(stdout);
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    TrainRun run;
    memset(&run, 0, sizeof run);
    run.dist = dist;
    TrainStart start = {.resume = a.resume, .init = a.init, .max_steps = a.max_steps};
    rc = load_model(&a, &run);
    if (rc == 0) rc = train_run_open(&run, &start);
    if (rc == 0) rc = run_epochs(&run, &start);
    train_run_close(&run);
    free_args(&a);
    return rc;
}

/* ---- eval and predict -------------------------------------------------------- */

/* The setup eval and predict share: the model, its trainer in eval mode with
 * the --weights loaded, and for eval the loader of the split. */
static int open_for_inference(const TrainArgs *a, char mode, TrainRun *run) {
    memset(run, 0, sizeof *run);
    int rc = load_model(a, run);
    if (rc) return rc;
    const Recipe *r = &run->model.recipe;
    if (mode == 'e') return inference_open(run, r->batch, a->split ? a->split : r->val_split, a->weights, a->ema);
    return inference_open(run, 1, NULL, a->weights, a->ema);
}

int cmd_eval(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 'e', &a);
    if (rc) {
        if (rc == 1)
            printf("usage: rxc eval FILE.net --weights W.safetensors [--split val] [--set NAME=VALUE]...\n"
                   "                [--device cpu|cuda[:K]|auto] [--ema]\n"
                   "  Evaluates the weights on the validation split (eval-mode BatchNorm) and prints the loss\n"
                   "  and accuracy.\n"
                   "  --ema           the checkpoint's EMA weights (a run with `ema`) instead of its own\n");
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    TrainRun run;
    rc = open_for_inference(&a, 'e', &run);
    if (rc == 0) {
        Error err = {0};
        EvalResult vr;
        if (evaluate_split(&run.tr, run.val, &vr, &err) != 0) {
            fprintf(stderr, "rxc: %s\n", err.msg);
            rc = 1;
        } else {
            printf("%sVal Loss: %.4f Accuracy: %.4f (%lld images, split %s)\n", a.ema ? "EMA " : "", vr.loss, vr.acc,
                   (long long)vr.n, a.split ? a.split : run.model.recipe.val_split);
        }
    }
    train_run_close(&run);
    free_args(&a);
    return rc;
}

/* The five most likely classes, with probabilities and names. */
static void print_top5(const char *image, const float *prob, char *const *names, int classes) {
    printf("%s\n", image);
    bool *taken = xcalloc((size_t)classes, sizeof *taken);
    for (int k = 0; k < 5 && k < classes; k++) {
        int best = -1;
        for (int c = 0; c < classes; c++)
            if (!taken[c] && (best < 0 || prob[c] > prob[best])) best = c;
        taken[best] = true;
        printf("  %d. %-24s %6.2f%%\n", k + 1, names[best], 100.0 * prob[best]);
    }
    free(taken);
}

int cmd_predict(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 'p', &a);
    if (rc) {
        if (rc == 1)
            printf("usage: rxc predict FILE.net --weights W.safetensors [--ema] [--set NAME=VALUE]... IMAGE...\n"
                   "  Prints the five most likely classes of each image (the file's validation transform,\n"
                   "  eval-mode BatchNorm), with probabilities and class names.\n");
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    TrainRun run;
    rc = open_for_inference(&a, 'p', &run);
    if (rc == 0) {
        int classes = (int)run.tr.out_numel;
        char **names = predict_class_names(a.weights, &run.model.recipe, classes);
        float *prob = xmalloc((size_t)classes * sizeof(float));
        for (int i = 0; i < a.n_images && rc == 0; i++) {
            rc = predict_image(&run, a.images[i], prob);
            if (rc == 0) print_top5(a.images[i], prob, names, classes);
        }
        for (int c = 0; c < classes; c++) free(names[c]);
        free(names);
        free(prob);
    }
    train_run_close(&run);
    free_args(&a);
    return rc;
}
