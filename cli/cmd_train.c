/*
 * train.c — `rxc train` (also `rxc FILE.net`), `rxc eval` and `rxc predict`.
 *
 * cmd_train runs the file's recipe epoch by epoch: a parallel loader feeds
 * the trainer (trainer.h); after each epoch it validates, prints the seed's
 * epoch line, appends to the run directory (runlog.h) and writes the last
 * and best checkpoints. Ctrl-C / SIGTERM finish the current optimizer step,
 * save a checkpoint and exit 130; --resume continues exactly where a
 * checkpoint stopped (mid-epoch included). A non-finite loss stops the run
 * and leaves the last good checkpoint in place.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "frontend.h"
#include "progress.h"
#include "run_dir.h"
#include "runlog.h"
#include "safetensors.h"
#include "schedule.h"
#include "trainer.h"
#include "util.h"

/* The one piece of process-wide state: a signal handler can only talk to the
 * training loop through a flag of this type. */
static volatile sig_atomic_t stop_signal;
/* Set while a caller that runs several trainings in a row (rxc ablate) holds
 * the handlers, so that a signal between two trainings is not lost. */
static volatile sig_atomic_t signals_held;

static void on_stop_signal(int sig) { stop_signal = sig; }

typedef struct TrainArgs {
    const char *file;
    const char *resume, *init, *run_dir, *weights;
    const char *split;
    int epochs;              /* 0: the file's */
    int64_t max_steps;       /* 0: none; stop (with a checkpoint) after this many optimizer steps */
    bool have_device;
    DeviceKind device;
    SetOverride *sets;
    int n_sets;
    char **images;
    int n_images;
} TrainArgs;

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: rxc train FILE.net [--set NAME=VALUE]... [--device cpu|cuda|auto] [--resume CKPT]\n"
            "                 [--init WEIGHTS] [--epochs N] [--run-dir DIR] [--max-steps N]\n"
            "       rxc FILE.net [same options]\n"
            "  Trains and validates epoch by epoch as the file says, printing the seed's epoch line.\n"
            "  The run directory (default runs/<network>) gets metrics.csv/jsonl, TensorBoard events,\n"
            "  curves.svg, log.txt, model.net, settings.txt, last.safetensors and best.safetensors.\n"
            "  --resume CKPT   continue a run exactly (a checkpoint written by rxc train)\n"
            "  --init W        start from weights only (strict names and shapes; a PyTorch state_dict\n"
            "                  saved with safetensors works)\n"
            "  --max-steps N   stop after N optimizer steps in total, saving a checkpoint\n"
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
                if (device_parse(v, &a->device) != 0) {
                    fprintf(stderr, "rxc: --device must be cpu, cuda or auto (got '%s')\n", v);
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

static int load_model(const TrainArgs *a, Model *m) {
    LoadOptions lo = {a->sets, a->n_sets, 0};
    int rc = model_load(a->file, &lo, m);
    if (rc != LOAD_OK) return rc == LOAD_IO_ERROR ? 1 : 2;
    if (a->epochs > 0) m->recipe.epochs = a->epochs;
    if (a->have_device) m->recipe.device = a->device;
    if (a->run_dir) {
        free(m->recipe.run_dir);
        m->recipe.run_dir = xstrdup(a->run_dir);
    }
    return 0;
}

static bool is_dir(const char *p) {
    struct stat sb;
    return p && stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* When the data set is absent: where rxc looked, how to get Imagenette, and
 * the offline demo. Returns true when it printed the message. */
static bool report_missing_data(const Model *m, const char *split) {
    const Recipe *r = &m->recipe;
    if (r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100) {
        if (r->data_root && is_dir(r->data_root)) return false;
    } else if (r->data_root && is_dir(r->data_root)) {
        char *p = xasprintf("%s/%s", r->data_root, split);
        bool ok = is_dir(p);
        free(p);
        if (ok) return false;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    fprintf(stderr, "rxc: no data for %s.\n", m->path);
    if (!r->data_root)
        fprintf(stderr, "  The file gives no data root (data { root \"...\" }) and no --set root=PATH was given.\n");
    else if (r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100)
        fprintf(stderr, "  Looked for the CIFAR binary batches in %s%s%s (no such directory).\n",
                r->data_root[0] == '/' ? "" : cwd, r->data_root[0] == '/' ? "" : "/", r->data_root);
    else
        fprintf(stderr, "  Looked for %s%s%s/%s/<class>/*.JPEG (no such directory).\n", r->data_root[0] == '/' ? "" : cwd,
                r->data_root[0] == '/' ? "" : "/", r->data_root, split);
    fprintf(stderr,
            "  To train on Imagenette (the seed experiment), download the imagenette2 archive\n"
            "  (https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz, 1.5 GB) and unpack it:\n"
            "      mkdir -p data && tar -xzf imagenette2.tgz -C data\n"
            "  which gives data/imagenette2/train/<wnid>/*.JPEG (9,469 images) and\n"
            "  data/imagenette2/val/<wnid>/*.JPEG (3,925 images), 10 class folders each;\n"
            "  then run with --set root=data/imagenette2 if the file names another root.\n"
            "  Without a network: `rxc demo --out data/digits` prepares a small offline data set\n"
            "  (handwritten digits), and `rxc models/tiny_resnext.net` trains on it in minutes.\n");
    return true;
}

static int epochs_of(const Recipe *r) { return r->epochs > 0 ? r->epochs : 1; }

/* Exit status for a failed checkpoint load: 1 when the file cannot be read,
 * 2 when it does not fit the model (docs/rxc.1, EXIT STATUS). */
static int load_failure_status(int rc) { return rc == CHECKPOINT_UNREADABLE ? 1 : 2; }

static int save_checkpoint(Trainer *t, const char *path, char *err, size_t errlen) {
    return trainer_save(t, path, err, errlen);
}

typedef struct EvalResult { double loss, acc; int64_t n; } EvalResult;

static int evaluate(Trainer *t, Loader *val, EvalResult *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    if (loader_begin_epoch(val, 0) != 0) {
        snprintf(err, errlen, "%s", loader_error(val));
        return -1;
    }
    double loss = 0;
    int64_t correct = 0, n = 0;
    for (;;) {
        Batch b;
        int got = loader_next(val, &b);
        if (got < 0) {
            snprintf(err, errlen, "%s", loader_error(val));
            return -1;
        }
        if (got == 0) break;
        StepStats st;
        if (trainer_eval(t, b.data, b.labels, b.n, &st, err, errlen) != 0) return -1;
        loss += st.loss_sum;
        correct += st.correct;
        n += st.n;
    }
    res->n = n;
    res->loss = n ? loss / (double)n : NAN;
    res->acc = n ? (double)correct / (double)n : NAN;
    return 0;
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

static void restore_signals(const struct sigaction *old_int, const struct sigaction *old_term) {
    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGTERM, old_term, NULL);
}

static struct sigaction held_int, held_term;

void train_hold_signals(bool hold) {
    if (hold && !signals_held) {
        stop_signal = 0;
        install_signals(&held_int, &held_term);
        signals_held = 1;
    } else if (!hold && signals_held) {
        signals_held = 0;
        restore_signals(&held_int, &held_term);
    }
}

bool train_stop_requested(void) { return stop_signal != 0; }

/* Everything one training run holds, released by run_close. */
typedef struct Run {
    Model model;
    bool model_loaded;
    Loader *train, *val;
    Trainer tr;
    bool trainer_open;
    RunLog *log;
    RunDir *dir;
    char *last_path, *best_path, *classes, *folders;
} Run;

static void run_close(Run *r) {
    runlog_close(r->log);
    run_dir_close(r->dir);
    if (r->trainer_open) trainer_close(&r->tr);
    if (r->train) loader_close(r->train);
    if (r->val) loader_close(r->val);
    if (r->model_loaded) model_free(&r->model);
    free(r->last_path);
    free(r->best_path);
    free(r->classes);
    free(r->folders);
}

/* Opens the trainer for float NHWC batches and cross-entropy. */
/* The normalize op shared by both pipelines (the last op of each), which a
 * GPU program can fuse so that batches travel as uint8. */
static bool shared_normalize(const Recipe *r, float mean[3], float std[3]) {
    if (r->n_train_tf < 1 || r->n_val_tf < 1) return false;
    const TransformOp *a = &r->train_tf[r->n_train_tf - 1], *b = &r->val_tf[r->n_val_tf - 1];
    if (a->kind != TF_NORMALIZE || b->kind != TF_NORMALIZE) return false;
    if (memcmp(a->mean, b->mean, sizeof a->mean) != 0 || memcmp(a->std, b->std, sizeof a->std) != 0) return false;
    memcpy(mean, a->mean, sizeof a->mean);
    memcpy(std, a->std, sizeof a->std);
    return true;
}

static int open_trainer(Run *run, int batch, DeviceKind device, bool quiet, bool u8_on_gpu, char *err,
                        size_t errlen) {
    TrainerConfig cfg = {0};
    cfg.batch = batch;
    cfg.device = device;
    cfg.loss = LOSS_CROSS_ENTROPY;
    cfg.quiet = quiet;
    cfg.u8_if_cuda = u8_on_gpu && shared_normalize(&run->model.recipe, cfg.mean, cfg.std);
    if (trainer_open(&run->tr, &run->model, &cfg, err, errlen) != 0) return -1;
    run->trainer_open = true;
    return 0;
}

int cmd_train(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 't', &a);
    if (rc) {
        if (rc == 1) train_usage(stdout);
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    Run run;
    memset(&run, 0, sizeof run);
    char err[2048];
    rc = load_model(&a, &run.model);
    if (rc) {
        free_args(&a);
        return rc;
    }
    run.model_loaded = true;
    Recipe *r = &run.model.recipe;
    const int epochs = epochs_of(r);
    if (report_missing_data(&run.model, r->train_split)) {
        run_close(&run);
        free_args(&a);
        return 1;
    }
    /* The run directory is locked before anything reads or writes in it. */
    rc = run_dir_open(r->run_dir ? r->run_dir : "runs/net", stderr, &run.dir, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return rc == RUN_DIR_IN_USE ? 2 : 1;
    }
    /* The trainer first: on a GPU it takes uint8 batches, which decides the loaders' output. */
    if (open_trainer(&run, r->batch, r->device, false, true, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 1;
    }
    LoaderOutput kind = run.tr.cfg.u8_input ? LOADER_U8_NHWC : LOADER_F32_NHWC;
    run.train = loader_open(r, r->train_split, r->batch, true, kind, 0, err, sizeof err);
    if (!run.train) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 1;
    }
    loader_report(run.train, stderr);
    char *val_dir = r->data_root ? xasprintf("%s/%s", r->data_root, r->val_split) : NULL;
    bool want_val = r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100 || is_dir(val_dir);
    free(val_dir);
    if (want_val) {
        run.val = loader_open(r, r->val_split, r->batch, false, kind, 0, err, sizeof err);
        if (!run.val) {
            fprintf(stderr, "rxc: %s\n", err);
            run_close(&run);
            free_args(&a);
            return 1;
        }
        loader_report(run.val, stderr);
    } else {
        fprintf(stderr, "rxc: note: no '%s' split under %s: training without validation\n", r->val_split, r->data_root);
    }
    if (trainer_check_loaders(&run.tr, run.train, run.val, err, sizeof err) != 0 ||
        (run.val && loader_match_classes(run.val, run.train, stderr, err, sizeof err) != 0)) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 2;
    }
    int classes = loader_num_classes(run.train);
    int64_t out_classes = node_numel(&run.model.graph->nodes[run.model.graph->output]);
    if (out_classes != classes) {
        fprintf(stderr, "rxc: the data set has %d classes but the network outputs %lld (set classes %d)\n", classes,
                (long long)out_classes, classes);
        run_close(&run);
        free_args(&a);
        return 2;
    }
    run.classes = loader_class_text(run.train, false);
    run.folders = loader_class_text(run.train, true);

    Trainer *t = &run.tr;
    t->ref.class_names = run.classes;
    t->ref.class_folders = run.folders;
    trainer_init_params(t, r->seed);
    char *msg = NULL;
    if (a.init && (rc = trainer_load_weights(t, a.init, &msg)) != 0) {
        fprintf(stderr, "rxc: %s", msg);
        free(msg);
        run_close(&run);
        free_args(&a);
        return load_failure_status(rc);
    }
    if (a.resume) {
        if ((rc = trainer_resume(t, a.resume, &msg)) != 0) {
            fprintf(stderr, "rxc: %s", msg);
            free(msg);
            run_close(&run);
            free_args(&a);
            return load_failure_status(rc);
        }
        fprintf(stderr, "rxc: resuming %s at epoch %d, step %lld\n", a.resume, t->state.epoch + 1,
                (long long)t->state.step);
    }
    /* The seed's notebook prints the trainable parameter count first. */
    printf("#Parameter: %lld\n", (long long)graph_param_count(run.model.graph));
    fflush(stdout);
    const char *run_dir = r->run_dir ? r->run_dir : "runs/net";
    run.log = runlog_open(run_dir, run.model.path, run.model.resolved_text, t->state.epoch, err, sizeof err);
    if (!run.log) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 1;
    }
    run.last_path = runlog_path(run.log, "last.safetensors");
    run.best_path = runlog_path(run.log, "best.safetensors");
    if (a.resume) {
        runlog_notef(run.log, "resumed from epoch %d, step %lld (%s)", t->state.epoch + 1, (long long)t->state.step,
                     a.resume);
        if (run_dir_reconcile_best(run.dir, stderr, err, sizeof err) != 0) fprintf(stderr, "rxc: warning: %s\n", err);
    }

    int accum = r->accum_steps > 0 ? r->accum_steps : 1;
    int batches = loader_num_batches(run.train);
    int64_t steps_per_epoch = (batches + accum - 1) / accum;
    if (steps_per_epoch < 1) steps_per_epoch = 1;

    struct sigaction old_int, old_term;
    if (!signals_held) {
        stop_signal = 0;
        install_signals(&old_int, &old_term);
    }
    int status = 0;
    bool stopped = false;
    for (int e = t->state.epoch; e < epochs && status == 0 && !stopped; e++) {
        double t0 = progress_now() - t->state.epoch_seconds;
        if (loader_begin_epoch(run.train, e) != 0) {
            fprintf(stderr, "rxc: %s\n", loader_error(run.train));
            status = 1;
            break;
        }
        /* Resuming inside an epoch: the order is a function of (seed, epoch), so skipping
         * the batches already trained lands on exactly the next one. */
        for (int64_t k = 0; k < t->state.batch_in_epoch; k++) {
            Batch skip;
            if (loader_next(run.train, &skip) <= 0) break;
        }
        Progress pg;
        progress_begin(&pg, stderr, e + 1, epochs, batches, r->log_every);
        int in_group = 0;
        int64_t bi = t->state.batch_in_epoch;
        int64_t images_in_epoch = t->state.epoch_seen;
        double lr = schedule_lr(r, steps_per_epoch, t->state.step);
        for (;;) {
            Batch b;
            int got = loader_next(run.train, &b);
            if (got < 0) {
                progress_end(&pg);
                fprintf(stderr, "rxc: %s\n", loader_error(run.train));
                status = 1;
                break;
            }
            if (got == 0) break;
            int64_t opt_step = t->state.step + 1;
            lr = schedule_lr(r, steps_per_epoch, opt_step - 1);
            StepStats st;
            if (trainer_forward_backward(t, b.data, b.labels, b.n, lr, opt_step, &st, err, sizeof err) != 0) {
                progress_end(&pg);
                fprintf(stderr, "rxc: epoch %d, step %lld: %s\n", e + 1, (long long)opt_step, err);
                status = 1;
                break;
            }
            double loss = st.loss_sum / st.n;
            if (!isfinite(loss)) {
                progress_end(&pg);
                fprintf(stderr,
                        "rxc: the loss is %s at epoch %d, step %lld (batch %lld of the epoch): training stopped.\n"
                        "  The last good checkpoint is %s%s. A smaller learning rate (--set lr=...) usually helps.\n",
                        isnan(loss) ? "NaN" : "infinite", e + 1, (long long)opt_step, (long long)bi + 1,
                        run.last_path, access(run.last_path, F_OK) == 0 ? "" : " (none was written yet)");
                runlog_note(run.log, "training stopped: non-finite loss");
                status = 1;
                break;
            }
            bi++;
            in_group++;
            t->state.epoch_loss_sum += st.loss_sum;
            t->state.epoch_correct += st.correct;
            t->state.epoch_seen += st.n;
            images_in_epoch += st.n;
            bool last_batch = bi >= batches;
            if (in_group == accum || last_batch) {
                if (trainer_update(t, lr, opt_step, err, sizeof err) != 0) {
                    progress_end(&pg);
                    fprintf(stderr, "rxc: epoch %d, step %lld: %s\n", e + 1, (long long)opt_step, err);
                    status = 1;
                    break;
                }
                in_group = 0;
                t->state.batch_in_epoch = bi;
                runlog_scalar(run.log, "train/loss", t->state.step, loss);
                runlog_scalar(run.log, "train/lr", t->state.step, lr);
                runlog_scalar(run.log, "train/accuracy", t->state.step, (double)st.correct / st.n);
                double elapsed = progress_now() - t0;
                if (elapsed > 0)
                    runlog_scalar(run.log, "train/images_per_s", t->state.step, (double)images_in_epoch / elapsed);
                progress_step(&pg, bi, b.n, loss);
                bool limit = a.max_steps > 0 && t->state.step >= a.max_steps;
                if ((stop_signal || limit) && !last_batch) {
                    progress_end(&pg);
                    t->state.epoch_seconds = progress_now() - t0;
                    if (save_checkpoint(t, run.last_path, err, sizeof err) != 0) {
                        fprintf(stderr, "rxc: %s\n", err);
                        status = 1;
                    } else {
                        fprintf(stderr, "rxc: %s after step %lld (epoch %d, batch %lld/%d); checkpoint %s\n"
                                        "  to continue, run the same command with --resume %s\n",
                                stop_signal ? "interrupted" : "stopped at --max-steps", (long long)t->state.step,
                                e + 1, (long long)bi, batches, run.last_path, run.last_path);
                        status = stop_signal ? 130 : 0;
                    }
                    stopped = true;
                    break;
                }
            }
        }
        if (status != 0 || stopped) break;
        progress_end(&pg);
        double train_seconds = progress_now() - t0;
        EvalResult vr = {NAN, NAN, 0};
        if (run.val && evaluate(t, run.val, &vr, err, sizeof err) != 0) {
            fprintf(stderr, "rxc: validation: %s\n", err);
            status = 1;
            break;
        }
        EpochRecord rec;
        memset(&rec, 0, sizeof rec);
        rec.epoch = e + 1;
        rec.epochs = epochs;
        rec.train_loss = t->state.epoch_seen ? t->state.epoch_loss_sum / (double)t->state.epoch_seen : NAN;
        rec.train_acc = t->state.epoch_seen ? (double)t->state.epoch_correct / (double)t->state.epoch_seen : NAN;
        rec.val_loss = vr.loss;
        rec.val_acc = vr.acc;
        rec.lr = schedule_epoch_lr(r, steps_per_epoch, e);
        rec.seconds = progress_now() - t0;
        rec.images_per_s = train_seconds > 0 ? (double)images_in_epoch / train_seconds : 0;
        char line[512];
        runlog_epoch_line(&rec, line, sizeof line);
        printf("%s\n", line);
        fflush(stdout);
        runlog_note(run.log, line);
        runlog_epoch(run.log, &rec);

        t->state.epoch = e + 1;
        t->state.batch_in_epoch = 0;
        t->state.epoch_loss_sum = 0;
        t->state.epoch_correct = 0;
        t->state.epoch_seen = 0;
        t->state.epoch_seconds = 0;
        bool best = run.val && vr.acc > t->state.best_val_acc;
        if (best) {
            t->state.best_val_acc = vr.acc;
            t->state.best_epoch = e + 1;
        }
        /* best first: a kill between the two leaves best ahead of last, which a resumed run repeats */
        if ((best && save_checkpoint(t, run.best_path, err, sizeof err) != 0) ||
            save_checkpoint(t, run.last_path, err, sizeof err) != 0) {
            fprintf(stderr, "rxc: %s\n", err);
            status = 1;
            break;
        }
        if (stop_signal || (a.max_steps > 0 && t->state.step >= a.max_steps)) {
            fprintf(stderr, "rxc: %s after epoch %d; checkpoint %s\n"
                            "  to continue, run the same command with --resume %s\n",
                    stop_signal ? "interrupted" : "stopped at --max-steps", e + 1, run.last_path, run.last_path);
            status = stop_signal ? 130 : 0;
            stopped = true;
        }
    }
    if (!signals_held) restore_signals(&old_int, &old_term);
    if (stopped)
        runlog_notef(run.log, "%s at %s %d, step %lld (batch %lld of %d)",
                     stop_signal ? "interrupted" : "stopped at --max-steps",
                     t->state.batch_in_epoch ? "epoch" : "the end of epoch",
                     t->state.epoch + (t->state.batch_in_epoch ? 1 : 0), (long long)t->state.step,
                     (long long)(t->state.batch_in_epoch ? t->state.batch_in_epoch : batches), batches);
    if (status == 0 && !stopped) {
        if (run.val && t->state.best_epoch > 0)
            printf("Best validation accuracy %.4f at epoch %d. Run directory: %s\n", t->state.best_val_acc,
                   t->state.best_epoch, runlog_dir(run.log));
        else
            printf("Run directory: %s\n", runlog_dir(run.log));
    }
    run_close(&run);
    free_args(&a);
    return status;
}

/* ---- eval ------------------------------------------------------------------ */

int cmd_eval(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 'e', &a);
    if (rc) {
        if (rc == 1)
            printf("usage: rxc eval FILE.net --weights W.safetensors [--split val] [--set NAME=VALUE]...\n"
                   "                [--device cpu|cuda|auto]\n"
                   "  Evaluates the weights on the validation split (eval-mode BatchNorm) and prints the loss\n"
                   "  and accuracy.\n");
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    Run run;
    memset(&run, 0, sizeof run);
    char err[2048];
    if ((rc = load_model(&a, &run.model)) != 0) {
        free_args(&a);
        return rc;
    }
    run.model_loaded = true;
    Recipe *r = &run.model.recipe;
    const char *split = a.split ? a.split : r->val_split;
    if (report_missing_data(&run.model, split)) {
        run_close(&run);
        free_args(&a);
        return 1;
    }
    run.val = loader_open(r, split, r->batch, false, LOADER_F32_NHWC, 0, err, sizeof err);
    if (!run.val) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 1;
    }
    /* Labels by the class names the weights were trained on, not folder position. */
    int n_classes = 0;
    char **classes = trainer_weight_classes(a.weights, r, true, &n_classes);
    rc = classes && loader_use_classes(run.val, classes, n_classes, stderr, err, sizeof err) != 0 ? 2 : 0;
    dataset_free_names(classes, n_classes);
    char *msg = NULL;
    EvalResult vr;
    if (rc) {
        fprintf(stderr, "rxc: %s\n", err);
    } else if (open_trainer(&run, r->batch, r->device, true, false, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        rc = 1;
    } else if (trainer_check_loaders(&run.tr, NULL, run.val, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        rc = 2;
    } else if (trainer_init_params(&run.tr, r->seed), (rc = trainer_load_weights(&run.tr, a.weights, &msg)) != 0) {
        fprintf(stderr, "rxc: %s", msg);
        free(msg);
        rc = load_failure_status(rc);
    } else if (evaluate(&run.tr, run.val, &vr, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        rc = 1;
    } else {
        printf("Val Loss: %.4f Accuracy: %.4f (%lld images, split %s)\n", vr.loss, vr.acc, (long long)vr.n, split);
    }
    run_close(&run);
    free_args(&a);
    return rc;
}

/* ---- predict --------------------------------------------------------------- */

/* Class names: the weights file's (written by rxc train), else the data
 * set's class folders, else "class N". Returns a malloc'd array of n. */
static char **predict_class_names(const char *weights, const Recipe *r, int n) {
    int k = 0;
    char **known = trainer_weight_classes(weights, r, false, &k);
    char **names = xcalloc((size_t)n, sizeof *names);
    for (int c = 0; c < n; c++) /* a list that does not fit this model: do not guess */
        names[c] = known && k == n ? xstrdup(known[c]) : xasprintf("class %d", c);
    dataset_free_names(known, k);
    return names;
}

int cmd_predict(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, 'p', &a);
    if (rc) {
        if (rc == 1)
            printf("usage: rxc predict FILE.net --weights W.safetensors [--set NAME=VALUE]... IMAGE...\n"
                   "  Prints the five most likely classes of each image (the file's validation transform,\n"
                   "  eval-mode BatchNorm), with probabilities and class names.\n");
        free_args(&a);
        return rc == 1 ? 0 : rc;
    }
    Run run;
    memset(&run, 0, sizeof run);
    char err[2048];
    if ((rc = load_model(&a, &run.model)) != 0) {
        free_args(&a);
        return rc;
    }
    run.model_loaded = true;
    Recipe *r = &run.model.recipe;
    const Graph *g = run.model.graph;
    const Node *in = &g->nodes[g->input];
    int H = (int)in->dim[0], W = (int)in->dim[1];
    char *msg = NULL;
    if (open_trainer(&run, 1, r->device, true, false, err, sizeof err) != 0) {
        fprintf(stderr, "rxc: %s\n", err);
        run_close(&run);
        free_args(&a);
        return 1;
    }
    trainer_init_params(&run.tr, r->seed);
    if ((rc = trainer_load_weights(&run.tr, a.weights, &msg)) != 0) {
        fprintf(stderr, "rxc: %s", msg);
        free(msg);
        run_close(&run);
        free_args(&a);
        return load_failure_status(rc);
    }
    int classes = (int)run.tr.out_numel;
    char **names = predict_class_names(a.weights, r, classes);
    float *x = xmalloc((size_t)H * W * 3 * sizeof(float));
    float *prob = xmalloc((size_t)classes * sizeof(float));
    for (int i = 0; i < a.n_images && rc == 0; i++) {
        int h = H, w = W;
        if (loader_prepare_file(r, false, a.images[i], 0, LOADER_F32_NHWC, x, (size_t)H * W * 3 * sizeof(float), &h, &w,
                                err, sizeof err) != 0) {
            fprintf(stderr, "rxc predict: %s: %s\n", a.images[i], err);
            rc = 1;
            break;
        }
        if (trainer_check_samples(&run.tr, "val", h, w, err, sizeof err) != 0) {
            fprintf(stderr, "rxc predict: %s: %s\n", a.images[i], err);
            rc = 2;
            break;
        }
        StepStats st;
        if (trainer_eval(&run.tr, x, NULL, 1, &st, err, sizeof err) != 0) {
            fprintf(stderr, "rxc predict: %s\n", err);
            rc = 1;
            break;
        }
        const float *z = run.tr.logits;
        float mx = z[0];
        for (int c = 1; c < classes; c++) mx = z[c] > mx ? z[c] : mx;
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += exp((double)z[c] - mx);
        for (int c = 0; c < classes; c++) prob[c] = (float)(exp((double)z[c] - mx) / sum);
        printf("%s\n", a.images[i]);
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
    for (int c = 0; c < classes; c++) free(names[c]);
    free(names);
    free(x);
    free(prob);
    run_close(&run);
    free_args(&a);
    return rc;
}
