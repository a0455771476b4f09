/*
 * runlog.c — the run directory (see runlog.h): the model copy, resolved
 * settings, metrics.csv / metrics.jsonl, TensorBoard scalars, curves.svg and
 * log.txt. Checkpoints are the trainer's.
 */
#include "runlog.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include <cjson/cJSON.h>

#include "plot.h"
#include "tfevents.h"
#include "util.h"

struct RunLog {
    char *dir;
    char *title;           /* the figure title: the model file's base name */
    FILE *csv, *jsonl, *log;
    TfEvents *tb;
    EpochRecord *rows;     /* every epoch so far, for curves.svg */
    int n_rows, cap_rows;
    bool write_error_reported;
};

char *runlog_path(const RunLog *l, const char *name) { return xasprintf("%s/%s", l ? l->dir : ".", name); }
const char *runlog_dir(const RunLog *l) { return l ? l->dir : NULL; }

static void note_write_error(RunLog *l, const char *what) {
    if (l->write_error_reported) return;
    l->write_error_reported = true;
    fprintf(stderr, "rxc: warning: cannot write %s in %s (%s); training goes on\n", what, l->dir, strerror(errno));
}

/* ---- formatting ------------------------------------------------------------- */
void runlog_csv_number(StrBuf *b, double v) {
    sb_putc(b, ',');
    if (isfinite(v)) sb_printf(b, "%.6g", v);
}

static void json_num(StrBuf *b, const char *key, double v) {
    if (isfinite(v))
        sb_printf(b, ",\"%s\":%.9g", key, v);
    else
        sb_printf(b, ",\"%s\":null", key);
}

static char *csv_row(const EpochRecord *e) {
    StrBuf b = {0};
    sb_printf(&b, "%d", e->epoch);
    runlog_csv_number(&b, e->train_loss);
    runlog_csv_number(&b, e->train_acc);
    runlog_csv_number(&b, e->val_loss);
    runlog_csv_number(&b, e->val_acc);
    runlog_csv_number(&b, e->lr);
    runlog_csv_number(&b, e->seconds);
    runlog_csv_number(&b, e->images_per_s);
    sb_putc(&b, '\n');
    return sb_take(&b);
}

static char *json_row(const EpochRecord *e) {
    StrBuf b = {0};
    sb_printf(&b, "{\"epoch\":%d,\"epochs\":%d", e->epoch, e->epochs);
    json_num(&b, "train_loss", e->train_loss);
    json_num(&b, "train_acc", e->train_acc);
    json_num(&b, "val_loss", e->val_loss);
    json_num(&b, "val_acc", e->val_acc);
    json_num(&b, "lr", e->lr);
    json_num(&b, "seconds", e->seconds);
    json_num(&b, "images_per_s", e->images_per_s);
    if (e->has_ema) {
        json_num(&b, "ema_val_loss", e->ema_val_loss);
        json_num(&b, "ema_val_acc", e->ema_val_acc);
    }
    sb_puts(&b, "}\n");
    return sb_take(&b);
}

char *runlog_epoch_line(const EpochRecord *e, char *buf, size_t buflen) {
    int n = snprintf(buf, buflen, "Epoch: %d/%d Train Loss: %.4f Accuracy: %.4f Time: %.5f  | Val Loss: %.4f Accuracy: %.4f",
                     e->epoch, e->epochs, e->train_loss, e->train_acc, e->seconds, e->val_loss, e->val_acc);
    if (e->has_ema && n >= 0 && (size_t)n < buflen)
        snprintf(buf + n, buflen - (size_t)n, "  | EMA Val Loss: %.4f Accuracy: %.4f", e->ema_val_loss, e->ema_val_acc);
    return buf;
}

/* ---- reading metrics.jsonl --------------------------------------------------- */
static double json_get(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int runlog_read_metrics(const char *run_dir, EpochRecord **out) {
    *out = NULL;
    char *path = xasprintf("%s/metrics.jsonl", run_dir);
    char *text = read_file(path, NULL);
    free(path);
    if (!text) return 0;
    EpochRecord *rows = NULL;
    int n = 0, cap = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        cJSON *o = cJSON_Parse(line);
        if (!o) continue; /* a line cut short by a crash: skip it */
        double epoch = json_get(o, "epoch");
        if (isfinite(epoch) && epoch >= 1) {
            GROW(rows, cap, n + 1);
            EpochRecord *e = &rows[n++];
            e->epoch = (int)epoch;
            double epochs = json_get(o, "epochs");
            e->epochs = isfinite(epochs) ? (int)epochs : 0;
            e->train_loss = json_get(o, "train_loss");
            e->train_acc = json_get(o, "train_acc");
            e->val_loss = json_get(o, "val_loss");
            e->val_acc = json_get(o, "val_acc");
            e->lr = json_get(o, "lr");
            e->seconds = json_get(o, "seconds");
            e->images_per_s = json_get(o, "images_per_s");
        }
        cJSON_Delete(o);
    }
    free(text);
    *out = rows;
    return n;
}

RunSummary runlog_summarize(const EpochRecord *rows, int n) {
    RunSummary s = {NAN, NAN, NAN, 0};
    for (int i = 0; i < n; i++) {
        if (isfinite(rows[i].val_acc) && !(rows[i].val_acc <= s.best_val_acc)) s.best_val_acc = rows[i].val_acc;
        if (isfinite(rows[i].seconds)) s.seconds += rows[i].seconds;
    }
    if (n) {
        s.final_val_acc = rows[n - 1].val_acc;
        s.final_val_loss = rows[n - 1].val_loss;
    }
    return s;
}

/* ---- open / close ------------------------------------------------------------- */
static FILE *open_in(RunLog *l, const char *name, const char *mode, Error *err) {
    char *p = runlog_path(l, name);
    FILE *f = fopen(p, mode);
    if (!f) error_set(err, "cannot write %s: %s", p, strerror(errno));
    free(p);
    return f;
}

/* Only files rxc wrote (the ".rxc" suffix) are removed. */
static void remove_old_event_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    static const char prefix[] = "events.out.tfevents.", suffix[] = ".rxc";
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > (sizeof prefix - 1) + (sizeof suffix - 1) && !strncmp(e->d_name, prefix, sizeof prefix - 1) &&
            !strcmp(e->d_name + n - (sizeof suffix - 1), suffix)) {
            char *path = xasprintf("%s/%s", dir, e->d_name);
            remove(path);
            free(path);
        }
    }
    closedir(d);
}

RunLog *runlog_open(const char *run_dir, const char *model_path, const char *resolved_settings_text,
                    int start_epoch, Error *err) {
    if (!run_dir || !*run_dir) {
        error_set(err, "no run directory given");
        return NULL;
    }
    if (make_dirs(run_dir, 0777, err) != 0) return NULL;
    RunLog *l = xcalloc(1, sizeof *l);
    l->dir = xstrdup(run_dir);
    l->title = path_stem(model_path ? model_path : run_dir);

    if (model_path) {
        size_t n;
        char *text = read_file(model_path, &n);
        if (!text) {
            error_set(err, "cannot read %s: %s", model_path, strerror(errno));
            goto fail;
        }
        char *dst = runlog_path(l, "model.net");
        int rc = write_file_atomic(dst, text, n, err);
        free(dst);
        free(text);
        if (rc) goto fail;
    }
    if (resolved_settings_text) {
        char *dst = runlog_path(l, "settings.txt");
        int rc = write_file_atomic(dst, resolved_settings_text, strlen(resolved_settings_text), err);
        free(dst);
        if (rc) goto fail;
    }

    /* Resuming keeps the finished epochs the checkpoint covers; anything after
     * it was trained from a state that no longer exists. */
    if (start_epoch > 0) {
        EpochRecord *old;
        int n = runlog_read_metrics(run_dir, &old);
        for (int i = 0; i < n; i++)
            if (old[i].epoch <= start_epoch) {
                GROW(l->rows, l->cap_rows, l->n_rows + 1);
                l->rows[l->n_rows++] = old[i];
            }
        free(old);
    }
    /* A fresh run replaces an earlier run's logs in the same directory:
     * its event files would otherwise show in TensorBoard as this run. */
    if (start_epoch == 0) remove_old_event_files(run_dir);
    if (!(l->csv = open_in(l, "metrics.csv", "w", err))) goto fail;
    if (!(l->jsonl = open_in(l, "metrics.jsonl", "w", err))) goto fail;
    if (!(l->log = open_in(l, "log.txt", start_epoch > 0 ? "a" : "w", err))) goto fail;
    fprintf(l->csv, "%s\n", RUNLOG_CSV_HEADER);
    for (int i = 0; i < l->n_rows; i++) {
        char *c = csv_row(&l->rows[i]), *j = json_row(&l->rows[i]);
        fputs(c, l->csv);
        fputs(j, l->jsonl);
        free(c);
        free(j);
    }
    if (fflush(l->csv) || fflush(l->jsonl)) {
        error_set(err, "cannot write metrics in %s: %s", run_dir, strerror(errno));
        goto fail;
    }
    if (!(l->tb = tfevents_open(run_dir, err))) goto fail;
    return l;
fail:
    runlog_close(l);
    return NULL;
}

void runlog_close(RunLog *l) {
    if (!l) return;
    if (l->csv) fclose(l->csv);
    if (l->jsonl) fclose(l->jsonl);
    if (l->log) fclose(l->log);
    tfevents_close(l->tb);
    free(l->rows);
    free(l->title);
    free(l->dir);
    free(l);
}

/* ---- logging ------------------------------------------------------------------ */
void runlog_scalar(RunLog *l, const char *tag, int64_t step, double value) {
    if (!l || !l->tb) return;
    if (tfevents_scalar(l->tb, tag, step, tfevents_wall_time(), (float)value) != 0 || tfevents_flush(l->tb) != 0)
        note_write_error(l, "TensorBoard events");
}

void runlog_note(RunLog *l, const char *line) { runlog_notef(l, "%s", line); }

void runlog_notef(RunLog *l, const char *fmt, ...) {
    if (!l || !l->log) return;
    va_list ap;
    va_start(ap, fmt);
    int rc = vfprintf(l->log, fmt, ap);
    va_end(ap);
    if (rc < 0 || fputc('\n', l->log) == EOF || fflush(l->log) != 0) note_write_error(l, "log.txt");
}

void runlog_epoch(RunLog *l, const EpochRecord *e) {
    if (!l) return;
    GROW(l->rows, l->cap_rows, l->n_rows + 1);
    l->rows[l->n_rows++] = *e;

    char *c = csv_row(e), *j = json_row(e);
    if (fputs(c, l->csv) < 0 || fflush(l->csv) != 0) note_write_error(l, "metrics.csv");
    if (fputs(j, l->jsonl) < 0 || fflush(l->jsonl) != 0) note_write_error(l, "metrics.jsonl");
    free(c);
    free(j);

    static const struct { const char *tag; size_t offset; } scalars[] = {
        {"epoch/train_loss", offsetof(EpochRecord, train_loss)},
        {"epoch/train_acc", offsetof(EpochRecord, train_acc)},
        {"epoch/val_loss", offsetof(EpochRecord, val_loss)},
        {"epoch/val_acc", offsetof(EpochRecord, val_acc)},
        {"epoch/lr", offsetof(EpochRecord, lr)},
        {"epoch/images_per_s", offsetof(EpochRecord, images_per_s)},
        {"epoch/ema_val_loss", offsetof(EpochRecord, ema_val_loss)},
        {"epoch/ema_val_acc", offsetof(EpochRecord, ema_val_acc)},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++) {
        double v;
        memcpy(&v, (const char *)e + scalars[i].offset, sizeof v);
        bool ema_tag = scalars[i].offset >= offsetof(EpochRecord, ema_val_loss);
        if (isfinite(v) && (e->has_ema || !ema_tag)) runlog_scalar(l, scalars[i].tag, e->epoch, v);
    }

    Error err = {0};
    char *svg = runlog_path(l, "curves.svg");
    if (plot_training_curves(svg, l->title, l->rows, l->n_rows, &err) != 0 && !l->write_error_reported) {
        l->write_error_reported = true;
        fprintf(stderr, "rxc: warning: %s; training goes on\n", err.msg);
    }
    free(svg);
}
