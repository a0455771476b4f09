/*
 * runlog.h — the run directory: everything a training run leaves behind for
 * its user besides checkpoints.
 *
 * A run directory (Recipe.run_dir, default "runs/<network>") holds:
 *   model.net          a copy of the model file as given
 *   settings.txt       the resolved settings (Model.resolved_text: the file
 *                      after includes and --set overrides)
 *   metrics.csv        one row per epoch (header below)
 *   metrics.jsonl      the same rows, one JSON object per line
 *   curves.svg         training curves (loss and accuracy vs epoch, train
 *                      and val), regenerated after every epoch
 *   events.out.tfevents.<time>.<host>.<pid>.rxc
 *                      TensorBoard scalars (runtime/tfevents.h)
 *   log.txt            the epoch lines and notes, as printed
 * Checkpoints (best, last) are the trainer's; runlog_path() names files in
 * the directory for it.
 *
 * Use from the trainer:
 *   RunLog *log = runlog_open(recipe.run_dir, model.path, model.resolved_text,
 *                             start_epoch, &err);
 *   per step (every few steps is enough):
 *       runlog_scalar(log, "train/loss", global_step, loss);
 *       runlog_scalar(log, "train/images_per_s", global_step, ips);
 *   per epoch:  runlog_epoch(log, &rec);   (also writes epoch-level scalars)
 *   at the end: runlog_close(log);
 * Every function accepts log == NULL and then does nothing, so a caller that
 * runs without a run directory (tests, `rxc step`) needs no special cases.
 *
 * Write failures after a successful open (disk full, ...) are not fatal to
 * training: the first one is reported once on stderr and logging goes on
 * best effort. The trainer's checkpoints are what matters for a run.
 */
#ifndef RXC_RUNLOG_H
#define RXC_RUNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "error.h"

/* One epoch's results. Accuracies are fractions in [0, 1] (0.9475, as the
 * seed prints them). A value the trainer does not have (no val split) is NAN
 * and is written as empty (csv) / null (json). */
typedef struct EpochRecord {
    int epoch;            /* 1-based */
    int epochs;           /* the run's total, for the epoch line */
    double train_loss, train_acc;
    double val_loss, val_acc;
    double lr;            /* the learning rate used during this epoch */
    double seconds;       /* wall time of the epoch (training + validation) */
    double images_per_s;  /* training throughput */
    bool has_ema;         /* a run with `ema`: its weights' average was validated too */
    double ema_val_loss, ema_val_acc; /* (with has_ema) in metrics.jsonl, TensorBoard and the epoch line */
} EpochRecord;

/* metrics.csv's header line (without the newline). */
#define RUNLOG_CSV_HEADER "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds,images_per_s"

typedef struct RunLog RunLog;

/* Creates run_dir (and its parents) if needed, copies model_path to
 * model.net, writes resolved_settings_text (may be NULL) to settings.txt and
 * opens a new TensorBoard event file.
 *
 * start_epoch: 0 for a fresh run (metrics.csv/jsonl are started anew, and
 * event files an earlier run left in run_dir are removed);
 * N > 0 when resuming after N finished epochs: rows for epochs 1..N already
 * in metrics.jsonl are kept (and shown in curves.svg), later rows (epochs
 * whose checkpoint was lost) are dropped.
 * Returns NULL with a message in err when the directory cannot be made or
 * the files cannot be written. */
RunLog *runlog_open(const char *run_dir, const char *model_path, const char *resolved_settings_text,
                    int start_epoch, Error *err);

/* One TensorBoard scalar, e.g. tag "train/loss" at the global step. Not
 * written to the csv. */
void runlog_scalar(RunLog *l, const char *tag, int64_t step, double value);

/* Appends the epoch to metrics.csv and metrics.jsonl, writes the scalars
 * epoch/{train_loss,train_acc,val_loss,val_acc,lr,images_per_s} at step =
 * epoch, and regenerates curves.svg. Files are flushed so that an
 * interrupted run keeps every finished epoch. */
void runlog_epoch(RunLog *l, const EpochRecord *e);

/* Appends one line to log.txt (a newline is added). */
void runlog_note(RunLog *l, const char *line);
/* The same, formatted ("resumed from epoch 3, step 120", "interrupted at ..."). */
void runlog_notef(RunLog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The seed's epoch line, e.g.
 *   "Epoch: 3/200 Train Loss: 1.8613 Accuracy: 0.4157 Time: 21.45586  | Val Loss: 2.1527 Accuracy: 0.4986"
 *   (format "Epoch: %d/%d Train Loss: %.4f Accuracy: %.4f Time: %.5f  | Val Loss: %.4f Accuracy: %.4f")
 * written into buf (no newline). Returns buf. The trainer prints it and may
 * pass it to runlog_note. */
char *runlog_epoch_line(const EpochRecord *e, char *buf, size_t buflen);

/* "<run_dir>/<name>", malloc'd (for checkpoints). */
char *runlog_path(const RunLog *l, const char *name);
const char *runlog_dir(const RunLog *l);

/* Closes the event file and frees l. */
void runlog_close(RunLog *l);

/* What a run's epoch rows add up to: the best validation accuracy (NaN
 * when none), the last epoch's validation accuracy and loss, and the
 * seconds of every epoch together. */
typedef struct RunSummary {
    double best_val_acc, final_val_acc, final_val_loss, seconds;
} RunSummary;
RunSummary runlog_summarize(const EpochRecord *rows, int n);

/* Appends ",VALUE" to b as metrics.csv writes a value (%.6g), or only ","
 * when v is not finite (an empty field). */
void runlog_csv_number(StrBuf *b, double v);

/* Reads the epoch rows of an existing run directory's metrics.jsonl (for
 * resuming, and for `rxc ablate` to collect finished variants). Returns the
 * number of rows (0 when none) and sets *out (malloc'd, or NULL). */
int runlog_read_metrics(const char *run_dir, EpochRecord **out);

#endif
