/*
 * train_loop.c — one training run (see train_loop.h): start-up, the epoch
 * loop with validation, logging and checkpoints, and the stop signals.
 *
 * Where things happen, for changes to one of them:
 *   start-up        train_run_open: open_loaders, check_classes,
 *                   start_weights (--init / --resume), open_run_dir
 *   the loop        run_epochs: train_epoch (train_batch per batch), then
 *                   finish_epoch (validation, the epoch line, the run log)
 *   checkpoints     write_stop_checkpoint (mid-epoch stop),
 *                   write_epoch_checkpoints (after every epoch)
 */
#include "train_loop.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "mix.h"
#include "progress.h"
#include "schedule.h"
#include "util.h"

/* The one piece of process-wide state: a signal handler can only talk to the
 * training loop through a flag of this type. */
static volatile sig_atomic_t stop_signal;
/* Set while a caller that runs several trainings in a row (rxc ablate) holds
 * the handlers, so that a signal between two trainings is not lost. */
static volatile sig_atomic_t signals_held;
/* The handlers in place before train_hold_signals(true), restored by
 * train_hold_signals(false). */
static struct sigaction held_int, held_term;

static void on_stop_signal(int sig) { stop_signal = sig; }

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

/* ---- shared with eval ----------------------------------------------------------- */

bool report_missing_data(const Model *m, const char *split) {
    const Recipe *r = &m->recipe;
    if (r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100) {
        if (r->data_root && is_directory(r->data_root)) return false;
    } else if (r->data_root && is_directory(r->data_root)) {
        char *p = xasprintf("%s/%s", r->data_root, split);
        bool ok = is_directory(p);
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

void train_config_init(TrainerConfig *cfg, const Model *m, int batch, bool quiet, bool u8_on_gpu) {
    memset(cfg, 0, sizeof *cfg);
    cfg->batch = batch;
    cfg->device = m->recipe.device;
    cfg->device_index = m->recipe.device_index;
    cfg->loss = LOSS_CROSS_ENTROPY;
    cfg->quiet = quiet;
    /* mixing happens on float batches */
    cfg->u8_where_target_wants = u8_on_gpu && !mix_enabled(&m->recipe) && shared_normalize(&m->recipe, cfg->mean, cfg->std);
}

int train_run_open_trainer(TrainRun *run, int batch, bool quiet, bool u8_on_gpu, Error *err) {
    TrainerConfig cfg;
    train_config_init(&cfg, &run->model, batch, quiet, u8_on_gpu);
    if (run->buckets) cfg.hooks = grad_buckets_hooks(run->buckets);
    cfg.ranks = dist_size(run->dist);
    cfg.local_rank = dist_local_rank(run->dist);
    if (trainer_open(&run->tr, &run->model, &cfg, err) != 0) return -1;
    run->trainer_open = true;
    return 0;
}

int evaluate_split(Trainer *t, Loader *split, EvalResult *res, Error *err) {
    memset(res, 0, sizeof *res);
    if (loader_begin_epoch(split, 0, err) != 0) return -1;
    double loss = 0;
    int64_t correct = 0, n = 0;
    for (;;) {
        Batch b;
        int got = loader_next(split, &b, err);
        if (got < 0) return -1;
        if (got == 0) break;
        StepStats st;
        if (trainer_eval(t, b.data, b.labels, b.n, &st, err) != 0) return -1;
        loss += st.loss_sum;
        correct += st.correct;
        n += st.n;
    }
    res->n = n;
    res->loss = n ? loss / (double)n : NAN;
    res->acc = n ? (double)correct / (double)n : NAN;
    return 0;
}

/* ---- start-up ------------------------------------------------------------------- */

int checkpoint_load_status(int rc) { return rc == CHECKPOINT_UNREADABLE ? 1 : 2; }

static int open_loaders(TrainRun *run) {
    const Recipe *r = &run->model.recipe;
    Error err = {0};
    LoaderOutput kind = run->tr.cfg.u8_input ? LOADER_U8_NHWC : LOADER_F32_NHWC;
    Dist *d = run->dist;
    int rank = dist_rank(d), ranks = dist_size(d), batch = run->tr.cfg.batch;
    run->train = loader_open(r, r->train_split, batch, true, kind, 0, &err);
    if (!run->train || (d && loader_shard(run->train, rank, ranks, true, &err) != 0)) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    if (dist_is_root(d)) loader_report(run->train, stderr);
    char *val_dir = r->data_root ? xasprintf("%s/%s", r->data_root, r->val_split) : NULL;
    bool want_val = r->layout == DATA_CIFAR10 || r->layout == DATA_CIFAR100 || is_directory(val_dir);
    free(val_dir);
    if (!want_val) {
        if (dist_is_root(d))
            fprintf(stderr, "rxc: note: no '%s' split under %s: training without validation\n", r->val_split, r->data_root);
        return 0;
    }
    run->val = loader_open(r, r->val_split, batch, false, kind, 0, &err);
    if (!run->val || (d && loader_shard(run->val, rank, ranks, false, &err) != 0)) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    if (dist_is_root(d)) loader_report(run->val, stderr);
    return 0;
}

/* The data must fit the network before anything runs: each split's sample
 * shape, and val's classes mapped onto train's by name. */
static int check_data(TrainRun *run) {
    Error err = {0};
    if (trainer_check_loaders(&run->tr, run->train, run->val, &err) != 0 ||
        (run->val && loader_match_classes(run->val, run->train, stderr, &err) != 0)) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 2;
    }
    return 0;
}

static int check_classes(TrainRun *run) {
    int classes = loader_num_classes(run->train);
    int64_t out_classes = node_numel(&run->model.graph->nodes[run->model.graph->output]);
    if (out_classes != classes) {
        fprintf(stderr, "rxc: the data set has %d classes but the network outputs %lld (set classes %d)\n", classes,
                (long long)out_classes, classes);
        return 2;
    }
    /* stored in checkpoints, so that eval and predict label as training did */
    run->classes = loader_class_text(run->train, false);
    run->folders = loader_class_text(run->train, true);
    run->tr.ref.class_names = run->classes;
    run->tr.ref.class_folders = run->folders;
    return 0;
}

/* The weights training starts from: the recipe's initialisation, then
 * --init's weights, or everything a --resume checkpoint holds. */
static int start_weights(TrainRun *run, const TrainStart *start) {
    Trainer *t = &run->tr;
    trainer_init_params(t, run->model.recipe.seed);
    Error err = {0};
    int rc;
    if (start->init && (rc = trainer_load_weights(t, start->init, &err)) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return checkpoint_load_status(rc);
    }
    if (start->resume) {
        if ((rc = trainer_resume(t, start->resume, &err)) != 0) {
            fprintf(stderr, "rxc: %s\n", err.msg);
            return checkpoint_load_status(rc);
        }
        if (dist_is_root(run->dist))
            fprintf(stderr, "rxc: resuming %s at epoch %d, step %lld\n", start->resume, t->state.epoch + 1,
                (long long)t->state.step);
    }
    return 0;
}

/* The run directory the recipe names, or the default. */
static const char *run_dir_of(const Recipe *r) { return r->run_dir ? r->run_dir : "runs/net"; }

/* The run directory: logs from the state's epoch on, and the checkpoint
 * paths; a resumed run notes where it resumed and repairs best.safetensors
 * if a kill left it behind last's record (run_dir.h). */
static int open_run_dir(TrainRun *run, const TrainStart *start) {
    const Recipe *r = &run->model.recipe;
    Error err = {0};
    /* the settings as resolved, with what `precision auto` became on this device */
    char *settings = run->model.resolved_text
                         ? xasprintf("%s# precision: %s\n", run->model.resolved_text, run->tr.precision_note)
                         : NULL;
    run->log = runlog_open(run_dir_of(r), run->model.path, settings, run->tr.state.epoch, &err);
    free(settings);
    if (!run->log) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    runlog_notef(run->log, "precision %s", run->tr.precision_note);
    run->last_path = runlog_path(run->log, "last.safetensors");
    run->best_path = runlog_path(run->log, "best.safetensors");
    if (start->resume) {
        const TrainState *s = &run->tr.state;
        runlog_notef(run->log, "resumed from epoch %d, step %lld (%s)", s->epoch + 1, (long long)s->step, start->resume);
        if (run_dir_reconcile_best(run->dir, stderr, &err) != 0) fprintf(stderr, "rxc: warning: %s\n", err.msg);
    }
    return 0;
}

int train_run_open(TrainRun *run, const TrainStart *start) {
    const Recipe *r = &run->model.recipe;
    if (report_missing_data(&run->model, r->train_split)) return 1;
    Error err = {0};
    Dist *d = run->dist;
    int ranks = dist_size(d);
    if (r->batch % ranks != 0) {
        fprintf(stderr, "rxc: batch %d (the global batch) does not divide among %d ranks; use a multiple of %d "
                        "(--set batch=...) or another process count\n", r->batch, ranks, ranks);
        return 2;
    }
    /* The run directory is locked before anything reads or writes in it; rank 0 owns it. */
    int lock = dist_is_root(d) ? run_dir_open(run_dir_of(r), stderr, &run->dir, &err)
                               : 0;
    if (lock != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return lock == RUN_DIR_IN_USE ? 2 : 1;
    }
    if (d) run->buckets = grad_buckets_new(d);
    if (train_run_open_trainer(run, r->batch / ranks, !dist_is_root(d), true, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    int rc = open_loaders(run);
    if (rc == 0) rc = check_data(run);
    if (rc == 0) rc = check_classes(run);
    if (rc == 0) rc = start_weights(run, start);
    if (rc) return rc;
    if (!dist_is_root(d)) return 0;
    /* The seed's notebook prints the trainable parameter count first. */
    printf("#Parameter: %lld\n", (long long)graph_param_count(run->model.graph));
    if (d) printf("Data-parallel on %d ranks: %d samples per rank and step\n", ranks, r->batch / ranks);
    fflush(stdout);
    return open_run_dir(run, start);
}

void train_run_close(TrainRun *run) {
    runlog_close(run->log);
    run_dir_close(run->dir);
    if (run->trainer_open) trainer_close(&run->tr);
    grad_buckets_free(run->buckets);
    if (run->train) loader_close(run->train);
    if (run->val) loader_close(run->val);
    if (run->model_loaded) model_free(&run->model);
    free(run->last_path);
    free(run->best_path);
    free(run->classes);
    free(run->folders);
    memset(run, 0, sizeof *run);
}

/* ---- checkpoints ---------------------------------------------------------------- */

/* A stop inside an epoch (a signal or --max-steps): last.safetensors records
 * the position, so that --resume continues with the next batch. */
static int write_stop_checkpoint(TrainRun *run, bool interrupted, int epoch, int64_t batch, int batches) {
    Trainer *t = &run->tr;
    Error err = {0};
    if (!dist_is_root(run->dist)) return interrupted ? 130 : 0;
    if (trainer_save(t, run->last_path, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    runlog_notef(run->log, "%s at epoch %d, step %lld (batch %lld of %d)",
                 interrupted ? "interrupted" : "stopped at --max-steps", epoch + 1, (long long)t->state.step,
                 (long long)batch, batches);
    fprintf(stderr, "rxc: %s after step %lld (epoch %d, batch %lld/%d); checkpoint %s\n"
                    "  to continue, run the same command with --resume %s\n",
            interrupted ? "interrupted" : "stopped at --max-steps", (long long)t->state.step, epoch + 1,
            (long long)batch, batches, run->last_path, run->last_path);
    return interrupted ? 130 : 0;
}

/* After a finished epoch: best.safetensors when the epoch improved on the
 * best validation accuracy, then last.safetensors. Best first: a kill
 * between the two leaves best ahead of last, which the resumed run simply
 * repeats; the other order would leave best behind last's record. */
static int write_epoch_checkpoints(TrainRun *run, bool best) {
    Error err = {0};
    if (!dist_is_root(run->dist)) return 0;
    if ((best && trainer_save(&run->tr, run->best_path, &err) != 0) ||
        trainer_save(&run->tr, run->last_path, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------------- */

/* What stays fixed for the whole loop. */
typedef struct EpochLoop {
    TrainRun *run;
    const Recipe *r;
    int epochs, accum, batches;
    int64_t steps_per_epoch, max_steps;
} EpochLoop;

/* One epoch in progress. */
typedef struct EpochPass {
    int epoch;               /* 0-based */
    double t0;               /* when the epoch began (earlier when resumed inside it) */
    Progress pg;
    int in_group;            /* micro-batches accumulated since the last update */
    int64_t batch;           /* batches of the epoch trained */
    int64_t images;          /* images of the epoch trained */
    bool stopped;            /* a signal or --max-steps ended the run */
    bool stop_agreed;        /* distributed: a signal reached some rank by the last micro-batch */
} EpochPass;

static bool step_limit_reached(const EpochLoop *L) {
    return L->max_steps > 0 && L->run->tr.state.step >= L->max_steps;
}

/* Whether a stop signal arrived; in a distributed run, at any rank (all
 * ranks must stop after the same step, or the others wait forever). */
static bool stop_now(const EpochLoop *L, const EpochPass *p) {
    return L->run->dist ? p->stop_agreed : stop_signal != 0;
}

/* A micro-batch's statistics summed over the ranks, with the stop flag. */
static int reduce_step_stats(Dist *d, StepStats *st, bool *stop) {
    double v[4] = {st->loss_sum, (double)st->correct, st->n, stop_signal ? 1 : 0};
    if (dist_sum_f64(d, v, 4) != 0) return -1;
    st->loss_sum = v[0];
    st->correct = llround(v[1]);
    st->n = (int)llround(v[2]);
    *stop = v[3] > 0;
    return 0;
}

/* The optimizer update after a group of micro-batches, with its scalars and
 * progress; stops mid-epoch on a signal or --max-steps. Returns a status. */
static int update_step(const EpochLoop *L, EpochPass *p, const StepStats *st, double loss, double lr,
                       int64_t opt_step, int batch_n, bool last_batch) {
    TrainRun *run = L->run;
    Trainer *t = &run->tr;
    Error err; /* once per step: clear the message, not all 16 KiB */
    error_clear(&err);
    Dist *d = run->dist;
    if (d && grad_buckets_collect(run->buckets, t->exec) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: the gradient all-reduce failed\n", p->epoch + 1, (long long)opt_step);
        return 1;
    }
    if (trainer_update(t, lr, opt_step, &err) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: %s\n", p->epoch + 1, (long long)opt_step, err.msg);
        return 1;
    }
    if (d && dist_broadcast_space(d, t->exec, SPACE_BUFFERS, t->prog->space_bytes[SPACE_BUFFERS]) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: the BatchNorm buffer broadcast failed\n", p->epoch + 1,
                (long long)opt_step);
        return 1;
    }
    if (trainer_ema_update(t, &err) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: %s\n", p->epoch + 1, (long long)opt_step, err.msg);
        return 1;
    }
    p->in_group = 0;
    t->state.batch_in_epoch = p->batch;
    runlog_scalar(run->log, "train/loss", t->state.step, loss);
    runlog_scalar(run->log, "train/lr", t->state.step, lr);
    runlog_scalar(run->log, "train/accuracy", t->state.step, (double)st->correct / st->n);
    double elapsed = progress_now() - p->t0;
    if (elapsed > 0) runlog_scalar(run->log, "train/images_per_s", t->state.step, (double)p->images / elapsed);
    progress_step(&p->pg, p->batch, batch_n, loss);
    if ((stop_now(L, p) || step_limit_reached(L)) && !last_batch) {
        progress_end(&p->pg);
        t->state.epoch_seconds = progress_now() - p->t0;
        p->stopped = true;
        return write_stop_checkpoint(run, stop_now(L, p), p->epoch, p->batch, L->batches);
    }
    return 0;
}

/* One micro-batch: forward and backward, then the update when its group is
 * complete. Returns a status. */
static int train_batch(const EpochLoop *L, EpochPass *p, const Batch *b) {
    TrainRun *run = L->run;
    Trainer *t = &run->tr;
    Error err; /* once per step: clear the message, not all 16 KiB */
    error_clear(&err);
    int64_t opt_step = t->state.step + 1;
    double lr = schedule_lr(L->r, L->steps_per_epoch, opt_step - 1);
    StepStats st;
    /* mixup/cutmix: the loader's batch is ours until the next loader_next, and float (no u8 input when mixing) */
    MixDraw mix = mix_draw(L->r, b->h, b->w, t->state.micro_step);
    double partner = b->kind == LOADER_F32_NHWC ? mix_apply(&mix, b->data, b->n, b->h, b->w, 3) : 0.0;
    if (p->in_group + 1 == L->accum || p->batch + 1 >= L->batches) grad_buckets_arm(run->buckets);
    if (trainer_forward_backward_mixed(t, b->data, b->labels, b->n, lr, opt_step, partner, &st, &err) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: %s\n", p->epoch + 1, (long long)opt_step, err.msg);
        return 1;
    }
    if (run->dist && reduce_step_stats(run->dist, &st, &p->stop_agreed) != 0) {
        progress_end(&p->pg);
        fprintf(stderr, "rxc: epoch %d, step %lld: the all-reduce of the losses failed\n", p->epoch + 1,
                (long long)opt_step);
        return 1;
    }
    double loss = st.loss_sum / st.n;
    if (!isfinite(loss)) {
        progress_end(&p->pg);
        if (dist_is_root(run->dist))
            fprintf(stderr,
                "rxc: the loss is %s at epoch %d, step %lld (batch %lld of the epoch): training stopped.\n"
                "  The last good checkpoint is %s%s. A smaller learning rate (--set lr=...) usually helps.\n",
                isnan(loss) ? "NaN" : "infinite", p->epoch + 1, (long long)opt_step, (long long)p->batch + 1,
                run->last_path, access(run->last_path, F_OK) == 0 ? "" : " (none was written yet)");
        runlog_note(run->log, "training stopped: non-finite loss");
        return 1;
    }
    p->batch++;
    p->in_group++;
    t->state.epoch_loss_sum += st.loss_sum;
    t->state.epoch_correct += st.correct;
    t->state.epoch_seen += st.n;
    p->images += st.n;
    bool last_batch = p->batch >= L->batches;
    if (p->in_group == L->accum || last_batch) return update_step(L, p, &st, loss, lr, opt_step, st.n, last_batch);
    return 0;
}

/* Trains epoch p->epoch from where the trainer's state stands. Returns a status. */
static int train_epoch(const EpochLoop *L, EpochPass *p) {
    TrainRun *run = L->run;
    Trainer *t = &run->tr;
    p->t0 = progress_now() - t->state.epoch_seconds;
    Error err = {0};
    if (loader_begin_epoch(run->train, p->epoch, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 1;
    }
    /* Resuming inside an epoch: the order is a function of (seed, epoch), so skipping
     * the batches already trained lands on exactly the next one. */
    for (int64_t k = 0; k < t->state.batch_in_epoch; k++) {
        Batch skip;
        int got = loader_next(run->train, &skip, &err);
        if (got < 0) {
            fprintf(stderr, "rxc: %s\n", err.msg);
            return 1;
        }
        if (got == 0) break;
    }
    progress_begin(&p->pg, dist_is_root(run->dist) ? stderr : NULL, p->epoch + 1, L->epochs, L->batches, L->r->log_every);
    p->batch = t->state.batch_in_epoch;
    p->images = t->state.epoch_seen;
    int status = 0;
    while (status == 0 && !p->stopped) {
        Batch b;
        int got = loader_next(run->train, &b, &err);
        if (got < 0) {
            progress_end(&p->pg);
            fprintf(stderr, "rxc: %s\n", err.msg);
            return 1;
        }
        if (got == 0) break;
        status = train_batch(L, p, &b);
    }
    if (status == 0 && !p->stopped) progress_end(&p->pg);
    return status;
}

/* Validation's sums over the ranks (each validated its shard). */
static int reduce_eval(Dist *d, EvalResult *vr, Error *err) {
    if (!d) return 0;
    double v[3] = {vr->n ? vr->loss * (double)vr->n : 0, vr->n ? vr->acc * (double)vr->n : 0, (double)vr->n};
    if (dist_sum_f64(d, v, 3) != 0) return error_set(err, "the all-reduce of the validation sums failed");
    vr->n = llround(v[2]);
    vr->loss = vr->n ? v[0] / v[2] : NAN;
    vr->acc = vr->n ? (double)llround(v[1]) / v[2] : NAN;
    return 0;
}

/* Validation of the weights, and with `ema` of their average (the weights
 * swapped with it for the while, exactly restored). Returns 0 or -1. */
static int validate(TrainRun *run, EvalResult *vr, EvalResult *ema, Error *err) {
    Trainer *t = &run->tr;
    if (evaluate_split(t, run->val, vr, err) != 0 || reduce_eval(run->dist, vr, err) != 0) return -1;
    if (!trainer_has_ema(t)) return 0;
    if (trainer_swap_ema(t, err) != 0) return -1;
    int rc = evaluate_split(t, run->val, ema, err) != 0 || reduce_eval(run->dist, ema, err) != 0 ? -1 : 0;
    if (trainer_swap_ema(t, err) != 0) return -1;
    return rc;
}

/* After an epoch's training: validation, the epoch line, the run log, the
 * checkpoints, and a stop requested during the epoch's last step. With
 * `ema`, best.safetensors follows the EMA's accuracy, as timm's train.py
 * tracks its best on the EMA's metrics. */
static int finish_epoch(const EpochLoop *L, EpochPass *p) {
    TrainRun *run = L->run;
    Trainer *t = &run->tr;
    Error err = {0};
    double train_seconds = progress_now() - p->t0;
    EvalResult vr = {NAN, NAN, 0}, ema = {NAN, NAN, 0};
    if (run->val && validate(run, &vr, &ema, &err) != 0) {
        fprintf(stderr, "rxc: validation: %s\n", err.msg);
        return 1;
    }
    EpochRecord rec;
    memset(&rec, 0, sizeof rec);
    rec.epoch = p->epoch + 1;
    rec.epochs = L->epochs;
    rec.train_loss = t->state.epoch_seen ? t->state.epoch_loss_sum / (double)t->state.epoch_seen : NAN;
    rec.train_acc = t->state.epoch_seen ? (double)t->state.epoch_correct / (double)t->state.epoch_seen : NAN;
    rec.val_loss = vr.loss;
    rec.val_acc = vr.acc;
    rec.has_ema = trainer_has_ema(t) && run->val;
    rec.ema_val_loss = ema.loss;
    rec.ema_val_acc = ema.acc;
    rec.lr = schedule_epoch_lr(L->r, L->steps_per_epoch, p->epoch);
    rec.seconds = progress_now() - p->t0;
    rec.images_per_s = train_seconds > 0 ? (double)p->images / train_seconds : 0;
    char line[512];
    runlog_epoch_line(&rec, line, sizeof line);
    if (dist_is_root(run->dist)) printf("%s\n", line);
    fflush(stdout);
    runlog_note(run->log, line);
    runlog_epoch(run->log, &rec);

    t->state.epoch = p->epoch + 1;
    t->state.batch_in_epoch = 0;
    t->state.epoch_loss_sum = 0;
    t->state.epoch_correct = 0;
    t->state.epoch_seen = 0;
    t->state.epoch_seconds = 0;
    double tracked = rec.has_ema ? ema.acc : vr.acc;
    bool best = run->val && tracked > t->state.best_val_acc;
    if (best) {
        t->state.best_val_acc = tracked;
        t->state.best_epoch = p->epoch + 1;
    }
    if (write_epoch_checkpoints(run, best) != 0) return 1;
    double interrupted = stop_signal ? 1 : 0;
    if (dist_sum_f64(run->dist, &interrupted, 1) != 0) return 1;
    if (interrupted > 0 || step_limit_reached(L)) {
        runlog_notef(run->log, "%s at the end of epoch %d, step %lld (batch %d of %d)",
                     interrupted > 0 ? "interrupted" : "stopped at --max-steps", p->epoch + 1,
                     (long long)t->state.step, L->batches, L->batches);
        if (dist_is_root(run->dist))
            fprintf(stderr, "rxc: %s after epoch %d; checkpoint %s\n"
                            "  to continue, run the same command with --resume %s\n",
                    interrupted > 0 ? "interrupted" : "stopped at --max-steps", p->epoch + 1, run->last_path,
                    run->last_path);
        p->stopped = true;
        return interrupted > 0 ? 130 : 0;
    }
    return 0;
}

int run_epochs(TrainRun *run, const TrainStart *start) {
    const Recipe *r = &run->model.recipe;
    EpochLoop L = {.run = run, .r = r, .max_steps = start->max_steps};
    L.epochs = r->epochs > 0 ? r->epochs : 1;
    L.accum = r->accum_steps > 0 ? r->accum_steps : 1;
    L.batches = loader_num_batches(run->train);
    L.steps_per_epoch = (L.batches + L.accum - 1) / L.accum;
    if (L.steps_per_epoch < 1) L.steps_per_epoch = 1;

    bool own_signals = !signals_held;
    struct sigaction old_int, old_term;
    if (own_signals) {
        stop_signal = 0;
        install_signals(&old_int, &old_term);
    }
    int status = 0;
    bool stopped = false;
    for (int e = run->tr.state.epoch; e < L.epochs && status == 0 && !stopped; e++) {
        EpochPass p = {.epoch = e};
        status = train_epoch(&L, &p);
        if (status == 0 && !p.stopped) status = finish_epoch(&L, &p);
        stopped = p.stopped;
    }
    if (own_signals) restore_signals(&old_int, &old_term);
    if (status == 0 && !stopped && dist_is_root(run->dist)) {
        const TrainState *s = &run->tr.state;
        if (run->val && s->best_epoch > 0)
            printf("Best %svalidation accuracy %.4f at epoch %d. Run directory: %s\n",
                   trainer_has_ema(&run->tr) ? "EMA " : "", s->best_val_acc, s->best_epoch, runlog_dir(run->log));
        else
            printf("Run directory: %s\n", runlog_dir(run->log));
    }
    return status;
}
