/*
 * ablate.c — `rxc ablate`: the cardinality ablation of the ResNeXt paper.
 *
 *   rxc ablate FILE --cardinality 1,2,4,8,32 [--keep complexity|width]
 *              [--epochs N] [--out DIR] [--dry-run] [--json] [--set NAME=VALUE ...]
 *
 * Deriving the variants. The network's `cardinality` (C) and `width` (d,
 * the bottleneck width of one group) settings are varied with --set
 * overrides. With --keep complexity each variant's d is the one whose
 * elaborated graph has parameters and multiply-accumulates closest to the
 * base model's (compiler/width_search.h). The counts are measured, not
 * modelled: each candidate d is loaded with model_load and counted with
 * graph_param_count and graph_macs, so the rule holds for any block a file
 * writes. --keep width keeps the file's d.
 *
 * Training. Each variant is trained by the trainer itself (cmd_train, in
 * this process) with the file's recipe, into its own run directory
 * OUT/c<C>_d<d>; when it finishes, a record (ablation_done.json) is written
 * there (C, d, epochs and the model's hash). Rerunning the same command
 * skips variants with a matching record and resumes an interrupted variant
 * from its last checkpoint, so an interrupted ablation continues where it
 * stopped; more --epochs continue finished variants, and a record for
 * another model or settings makes its variant train anew. After each variant the
 * table is rewritten to OUT/ablation.csv and OUT/ablation.md and the plot to
 * OUT/ablation.svg (plot.h); each variant's numbers are its run directory's
 * metrics (runlog.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "ast.h"
#include "commands.h"
#include "diag.h"
#include "frontend.h"
#include "plot.h"
#include "runlog.h"
#include "train_loop.h"
#include "util.h"
#include "width_search.h"

#define MAX_VARIANTS 32

typedef struct Variant {
    int cardinality, width;
    int64_t params, macs;
    /* filled when trained (or found finished) */
    bool trained;
    int epochs;
    RunSummary result;
    EpochRecord *rows;
    int n_rows;
} Variant;

typedef struct AblateArgs {
    const char *file;
    int cards[MAX_VARIANTS];
    int n_cards;
    bool keep_width;
    int epochs;            /* 0: the file's */
    const char *out_dir;   /* NULL: runs/ablate-<file base name> */
    bool dry_run, json;
    SetOverride *sets;     /* the user's --set overrides, passed to every variant */
    int n_sets;
} AblateArgs;

static void usage(FILE *out) {
    fprintf(out,
            "usage: rxc ablate FILE --cardinality C1,C2,... [options]\n"
            "\n"
            "Trains one variant of FILE's network per cardinality and compares them.\n"
            "FILE's network must have `cardinality` and `width` settings.\n"
            "\n"
            "  --cardinality LIST    cardinalities to compare, e.g. 1,2,4,8,32\n"
            "  --keep complexity     choose each variant's width d so that parameters and\n"
            "                        MACs stay closest to FILE's (default; the paper's Table 2)\n"
            "  --keep width          keep FILE's width d for every variant\n"
            "  --epochs N            train each variant N epochs (default: the file's)\n"
            "  --out DIR             where runs and results go (default runs/ablate-<name>)\n"
            "  --dry-run             print the variants (C, d, C*d, params, MACs) and stop\n"
            "  --json                print the table as JSON, one object per variant\n"
            "  --set NAME=VALUE      override a setting of FILE for every variant\n"
            "\n"
            "Outputs: the table on the terminal and in DIR/ablation.csv and DIR/ablation.md,\n"
            "the plot DIR/ablation.svg, and one run directory per variant (DIR/c<C>_d<d>).\n"
            "Rerunning an interrupted ablation skips the variants that finished and continues\n"
            "the interrupted one from its last checkpoint.\n");
}

/* ---- arguments -------------------------------------------------------------- */
static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_cardinalities(const char *list, AblateArgs *a) {
    char *copy = xstrdup(list);
    int rc = 0;
    a->n_cards = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long c;
        if (parse_int(tok, 1, 1 << 16, &c) != 0) {
            fprintf(stderr, "rxc ablate: --cardinality: '%s' is not a positive integer\n", tok);
            rc = -1;
            break;
        }
        for (int i = 0; i < a->n_cards; i++)
            if (a->cards[i] == c) {
                fprintf(stderr, "rxc ablate: --cardinality: %ld is given twice\n", c);
                rc = -1;
            }
        if (rc) break;
        if (a->n_cards == MAX_VARIANTS) {
            fprintf(stderr, "rxc ablate: --cardinality: at most %d values\n", MAX_VARIANTS);
            rc = -1;
            break;
        }
        a->cards[a->n_cards++] = (int)c;
    }
    if (!rc && a->n_cards == 0) {
        fprintf(stderr, "rxc ablate: --cardinality: no values in '%s'\n", list);
        rc = -1;
    }
    free(copy);
    return rc;
}

/* Returns 0, 1 (--help shown) or 2 (bad arguments, message printed). */
static int parse_args(int argc, char **argv, AblateArgs *a) {
    memset(a, 0, sizeof *a);
    if (cli_take_sets(&argc, argv, &a->sets, &a->n_sets) != 0) return 2;
    bool have_cards = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char opt[64];
        /* --opt=value and --opt value */
        if (!strncmp(arg, "--", 2) && strchr(arg, '=')) {
            size_t n = (size_t)(strchr(arg, '=') - arg);
            if (n >= sizeof opt) n = sizeof opt - 1;
            memcpy(opt, arg, n);
            opt[n] = 0;
            val = strchr(arg, '=') + 1;
        } else {
            snprintf(opt, sizeof opt, "%s", arg);
        }
        bool takes_value = !strcmp(opt, "--cardinality") || !strcmp(opt, "--keep") || !strcmp(opt, "--epochs") ||
                           !strcmp(opt, "--out");
        if (takes_value && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "rxc ablate: %s needs a value\n", opt);
                return 2;
            }
            val = argv[++i];
        }
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(opt, "--cardinality")) {
            if (parse_cardinalities(val, a) != 0) return 2;
            have_cards = true;
        } else if (!strcmp(opt, "--keep")) {
            if (!strcmp(val, "complexity")) a->keep_width = false;
            else if (!strcmp(val, "width")) a->keep_width = true;
            else {
                fprintf(stderr, "rxc ablate: --keep must be 'complexity' or 'width', not '%s'\n", val);
                return 2;
            }
        } else if (!strcmp(opt, "--epochs")) {
            long e;
            if (parse_int(val, 1, 1000000, &e) != 0) {
                fprintf(stderr, "rxc ablate: --epochs must be a positive integer, not '%s'\n", val);
                return 2;
            }
            a->epochs = (int)e;
        } else if (!strcmp(opt, "--out")) {
            a->out_dir = val;
        } else if (!strcmp(opt, "--dry-run") && !val) {
            a->dry_run = true;
        } else if (!strcmp(opt, "--json") && !val) {
            a->json = true;
        } else if (arg[0] == '-' && arg[1]) {
            fprintf(stderr, "rxc ablate: unknown option '%s' (see rxc ablate --help)\n", arg);
            return 2;
        } else if (a->file) {
            fprintf(stderr, "rxc ablate: one model file only ('%s' and '%s' given)\n", a->file, arg);
            return 2;
        } else {
            a->file = arg;
        }
    }
    if (!a->file) {
        fprintf(stderr, "rxc ablate: no model file given\n\n");
        usage(stderr);
        return 2;
    }
    if (!have_cards) {
        fprintf(stderr, "rxc ablate: --cardinality LIST is required (e.g. --cardinality 1,2,4,8,32)\n");
        return 2;
    }
    return 0;
}

/* ---- measuring variants -------------------------------------------------------- */

/* The user's overrides plus the variant's own; strings are owned by the caller. */
typedef struct SetList {
    SetOverride *items;
    int n, cap;
} SetList;

static void sets_add(SetList *l, const char *name, const char *value) {
    GROW(l->items, l->cap, l->n + 1);
    l->items[l->n].name = name;
    l->items[l->n].value = value;
    l->n++;
}

/* The user's overrides, minus cardinality and width, which each variant sets
 * (train_variant also leaves out epochs and run_dir, which it passes as
 * --epochs and --run-dir). */
static void sets_user(SetList *l, const AblateArgs *a) {
    static const char *const ours[] = {"cardinality", "network.cardinality", "width", "network.width"};
    for (int i = 0; i < a->n_sets; i++) {
        bool skip = false;
        for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++) skip |= !strcmp(a->sets[i].name, ours[k]);
        if (!skip) sets_add(l, a->sets[i].name, a->sets[i].value);
    }
}

/* Loads FILE with cardinality C and width d; 0 with the counts, or -1 (the
 * front end has printed why). */
static int measure(const AblateArgs *a, int c, int d, int64_t *params, int64_t *macs) {
    char cs[32], ds[32];
    snprintf(cs, sizeof cs, "%d", c);
    snprintf(ds, sizeof ds, "%d", d);
    SetList l = {0};
    sets_user(&l, a);
    sets_add(&l, "cardinality", cs);
    sets_add(&l, "width", ds);
    LoadOptions opt = {.sets = l.items, .n_sets = l.n};
    Model m;
    memset(&m, 0, sizeof m);
    int rc = model_load(a->file, &opt, &m);
    free(l.items);
    if (rc != LOAD_OK) return -1;
    *params = graph_param_count(m.graph);
    *macs = graph_macs(m.graph);
    model_free(&m);
    return 0;
}

/* An int setting of the network section, read from the model's resolved
 * text (after includes and overrides). Returns 0, or -1 if absent. */
static int network_int_setting(const Model *m, const char *key, long *out) {
    const char *text = m->resolved_text;
    char *file_text = NULL;
    if (!text) text = file_text = read_file(m->path, NULL);
    if (!text) return -1;
    Diag *d = diag_new(NULL);
    AstFile *ast = ast_file_new("<resolved>");
    const char *name = diag_add_source(d, "<resolved>", text, strlen(text));
    int rc = -1;
    if (ast_parse_source(d, name, text, strlen(text), ast) == 0) {
        const AstExpr *e = ast_setting(ast, DECL_NETWORK, key);
        if (e && e->kind == EX_INT) {
            *out = (long)e->v.i;
            rc = 0;
        }
    }
    ast_free(ast);
    diag_free(d);
    free(file_text);
    return rc;
}

/* The width search's counter: one cardinality of the file. */
typedef struct WidthProbe {
    const AblateArgs *a;
    int c;
} WidthProbe;

static int count_width(void *ctx, int d, int64_t *params, int64_t *macs) {
    const WidthProbe *w = ctx;
    return measure(w->a, w->c, d, params, macs);
}

/* ---- results ----------------------------------------------------------------- */
static char *variant_dir(const char *out, const Variant *v) {
    return xasprintf("%s/c%d_d%d", out, v->cardinality, v->width);
}

/* The variant's rows and summary, from its run directory's metrics. */
static void read_results(Variant *v, const char *dir, int epochs) {
    free(v->rows);
    v->n_rows = runlog_read_metrics(dir, &v->rows);
    v->trained = true;
    v->epochs = epochs;
    v->result = runlog_summarize(v->rows, v->n_rows);
}

/* What the table shows: the summary of a trained variant, else NaNs ("-"). */
static RunSummary shown(const Variant *v) {
    return v->trained ? v->result : (RunSummary){NAN, NAN, NAN, NAN};
}

/* What a variant's run directory holds for this ablation. */
typedef enum RecordState {
    REC_NONE,      /* no record: train (continuing from last.safetensors if an interrupted run left one) */
    REC_DONE,      /* finished with this model, these settings and this many epochs: skip */
    REC_EXTEND,    /* finished with this model and settings, fewer epochs: continue it to the new count */
    REC_STALE,     /* finished for another model, other settings or more epochs: train anew */
} RecordState;

/* Reads ablation_done.json, written when a variant finishes: C, d, epochs
 * and the SHA-256 of the base model text with the user's overrides. */
static RecordState load_done(const char *out, Variant *v, int epochs, const char *model_sha) {
    char *dir = variant_dir(out, v);
    char *path = xasprintf("%s/ablation_done.json", dir);
    char *text = read_file(path, NULL);
    RecordState st = REC_NONE;
    if (text) {
        cJSON *o = cJSON_Parse(text);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "cardinality");
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "width");
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "epochs");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "model_sha256");
        bool same = cJSON_IsNumber(c) && cJSON_IsNumber(w) && cJSON_IsNumber(e) && cJSON_IsString(h) &&
                    c->valueint == v->cardinality && w->valueint == v->width && !strcmp(h->valuestring, model_sha);
        st = !same ? REC_STALE : e->valueint == epochs ? REC_DONE : e->valueint < epochs ? REC_EXTEND : REC_STALE;
        cJSON_Delete(o);
    }
    if (st == REC_DONE) read_results(v, dir, epochs);
    if (st == REC_STALE || st == REC_EXTEND) remove(path); /* until the variant finishes again */
    free(text);
    free(path);
    free(dir);
    return st;
}

static int write_done(const char *out, const Variant *v, const char *model_sha) {
    char *dir = variant_dir(out, v);
    char *path = xasprintf("%s/ablation_done.json", dir);
    char *text = xasprintf("{\"cardinality\":%d,\"width\":%d,\"epochs\":%d,\"params\":%lld,\"macs\":%lld,"
                           "\"model_sha256\":\"%s\"}\n",
                           v->cardinality, v->width, v->epochs, (long long)v->params, (long long)v->macs, model_sha);
    int rc = write_file_atomic(path, text, strlen(text), NULL);
    free(text);
    if (rc) fprintf(stderr, "rxc ablate: cannot write %s: %s\n", path, strerror(errno));
    free(path);
    free(dir);
    return rc;
}

/* "1,234,567" */
static char *group_digits(int64_t v, char *buf, size_t n) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), j = 0;
    for (size_t i = 0; i < len && j + 1 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && raw[i - 1] != '-' && j + 2 < n) buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = 0;
    return buf;
}

static void fmt_opt(char *buf, size_t n, const char *fmt, double v) {
    if (isfinite(v)) snprintf(buf, n, fmt, v);
    else snprintf(buf, n, "-");
}

static double ratio(int64_t v, int64_t base) { return (double)v / (double)base; }

/* A variant's results as the terminal table and ablation.md show them. */
typedef struct ResultText {
    char best[32], final[32], loss[32], time[32];
} ResultText;

static ResultText result_text(const Variant *v, const char *time_format) {
    RunSummary r = shown(v);
    ResultText t;
    fmt_opt(t.best, sizeof t.best, "%.4f", r.best_val_acc);
    fmt_opt(t.final, sizeof t.final, "%.4f", r.final_val_acc);
    fmt_opt(t.loss, sizeof t.loss, "%.4f", r.final_val_loss);
    fmt_opt(t.time, sizeof t.time, time_format, r.seconds);
    return t;
}

static void print_table(FILE *out, const Variant *v, int n, int64_t p0, int64_t m0, bool trained) {
    fprintf(out, "%5s %5s %6s %14s %16s %7s %7s", "C", "d", "C*d", "params", "MACs", "params", "MACs");
    if (trained) fprintf(out, "  %8s %9s %8s %9s", "best acc", "final acc", "val loss", "time");
    fprintf(out, "\n%5s %5s %6s %14s %16s %7s %7s", "", "", "", "", "", "/base", "/base");
    if (trained) fprintf(out, "  %8s %9s %8s %9s", "(val)", "(val)", "(final)", "");
    fputc('\n', out);
    for (int i = 0; i < n; i++) {
        char pb[32], mb[32];
        fprintf(out, "%5d %5d %6d %14s %16s %7.4f %7.4f", v[i].cardinality, v[i].width, v[i].cardinality * v[i].width,
                group_digits(v[i].params, pb, sizeof pb), group_digits(v[i].macs, mb, sizeof mb),
                ratio(v[i].params, p0), ratio(v[i].macs, m0));
        if (trained) {
            ResultText t = result_text(&v[i], "%.1fs");
            fprintf(out, "  %8s %9s %8s %9s", t.best, t.final, t.loss, t.time);
        }
        fputc('\n', out);
    }
}

static void json_num(FILE *out, const char *key, double v) {
    if (isfinite(v)) fprintf(out, ", \"%s\": %.6g", key, v);
    else fprintf(out, ", \"%s\": null", key);
}

static void print_json(FILE *out, const Variant *v, int n, int64_t p0, int64_t m0, bool trained) {
    fprintf(out, "[\n");
    for (int i = 0; i < n; i++) {
        fprintf(out,
                "  {\"cardinality\": %d, \"width\": %d, \"group_width\": %d, \"params\": %lld, \"macs\": %lld, "
                "\"params_ratio\": %.6f, \"macs_ratio\": %.6f",
                v[i].cardinality, v[i].width, v[i].cardinality * v[i].width, (long long)v[i].params,
                (long long)v[i].macs, ratio(v[i].params, p0), ratio(v[i].macs, m0));
        if (trained) {
            RunSummary r = shown(&v[i]);
            json_num(out, "best_val_acc", r.best_val_acc);
            json_num(out, "final_val_acc", r.final_val_acc);
            json_num(out, "final_val_loss", r.final_val_loss);
            json_num(out, "seconds", r.seconds);
        }
        fprintf(out, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(out, "]\n");
}

/* ablation.csv: the numbers as metrics.csv writes them (runlog.h). */
static char *csv_text(const Variant *v, int n, int64_t p0, int64_t m0) {
    StrBuf b = {0};
    sb_puts(&b, "cardinality,width,group_width,params,macs,params_ratio,macs_ratio,epochs,best_val_acc,"
                "final_val_acc,final_val_loss,seconds\n");
    for (int i = 0; i < n; i++) {
        sb_printf(&b, "%d,%d,%d,%lld,%lld,%.6f,%.6f", v[i].cardinality, v[i].width, v[i].cardinality * v[i].width,
                  (long long)v[i].params, (long long)v[i].macs, ratio(v[i].params, p0), ratio(v[i].macs, m0));
        if (v[i].trained) {
            sb_printf(&b, ",%d", v[i].epochs);
            runlog_csv_number(&b, v[i].result.best_val_acc);
            runlog_csv_number(&b, v[i].result.final_val_acc);
            runlog_csv_number(&b, v[i].result.final_val_loss);
            sb_printf(&b, ",%.3f\n", v[i].result.seconds);
        } else {
            sb_puts(&b, ",,,,,\n");
        }
    }
    return sb_take(&b);
}

static char *markdown_text(const char *title, const Variant *v, int n, int64_t p0, int64_t m0) {
    StrBuf b = {0};
    sb_printf(&b, "# Cardinality ablation: %s\n\n", title);
    sb_puts(&b, "| C | d | C×d | params | MACs | params/base | MACs/base | best val acc | final val acc | "
                "final val loss | time |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        char pb[32], mb[32];
        ResultText t = result_text(&v[i], "%.1f s");
        sb_printf(&b, "| %d | %d | %d | %s | %s | %.4f | %.4f | %s | %s | %s | %s |\n", v[i].cardinality, v[i].width,
                  v[i].cardinality * v[i].width, group_digits(v[i].params, pb, sizeof pb),
                  group_digits(v[i].macs, mb, sizeof mb), ratio(v[i].params, p0), ratio(v[i].macs, m0), t.best,
                  t.final, t.loss, t.time);
    }
    sb_puts(&b, "\nParameters and MACs (per image) as `rxc summary` counts them. Each variant's run "
                "directory (c<C>_d<d>/) has its metrics, curves and checkpoints; the plot is ablation.svg.\n");
    return sb_take(&b);
}

/* ablation.csv, ablation.md and ablation.svg in out. Returns 0 or -1 (reported). */
static int write_outputs(const char *out, const char *title, const Variant *v, int n, int64_t p0, int64_t m0) {
    char *csv = xasprintf("%s/ablation.csv", out), *md = xasprintf("%s/ablation.md", out);
    char *csv_data = csv_text(v, n, p0, m0), *md_data = markdown_text(title, v, n, p0, m0);
    int csv_rc = write_file_atomic(csv, csv_data, strlen(csv_data), NULL), why = errno;
    int md_rc = write_file_atomic(md, md_data, strlen(md_data), NULL);
    if (md_rc && !csv_rc) why = errno;
    int rc = csv_rc || md_rc ? -1 : 0;
    if (rc) fprintf(stderr, "rxc ablate: cannot write %s or %s: %s\n", csv, md, strerror(why));
    free(csv_data);
    free(md_data);
    free(csv);
    free(md);

    AblationPlotVariant pv[MAX_VARIANTS];
    char labels[MAX_VARIANTS][32];
    for (int i = 0; i < n; i++) {
        snprintf(labels[i], sizeof labels[i], "%dx%dd", v[i].cardinality, v[i].width);
        RunSummary r = shown(&v[i]);
        pv[i] = (AblationPlotVariant){labels[i], v[i].cardinality, r.best_val_acc, r.final_val_acc, v[i].rows,
                                      v[i].n_rows};
    }
    Error err = {0};
    char *svg = xasprintf("%s/ablation.svg", out);
    if (plot_ablation(svg, title, pv, n, &err) != 0) {
        fprintf(stderr, "rxc ablate: %s\n", err.msg);
        rc = -1;
    }
    free(svg);
    return rc;
}

/* ---- training ------------------------------------------------------------------ */
/* Trains one variant with the trainer's own command, in this process, into
 * its run directory. Unless `fresh`, a variant interrupted earlier (or one
 * being extended to more epochs) continues from its last checkpoint (the
 * trainer's --resume). Returns the exit status (0, 1, 2, 130). */
static int train_variant(const AblateArgs *a, const char *out, Variant *v, int epochs, bool fresh,
                         const char *model_sha) {
    char *dir = variant_dir(out, v);
    char *last = xasprintf("%s/last.safetensors", dir);
    bool resume = !fresh && access(last, R_OK) == 0;
    StrBuf argbuf = {0};
    char **argv = xcalloc((size_t)(2 * a->n_sets + 20), sizeof *argv);
    char **owned = xcalloc((size_t)(a->n_sets + 8), sizeof *owned);
    int argc = 0, n_owned = 0;
    argv[argc++] = "train";
    argv[argc++] = (char *)a->file;
    SetList l = {0};
    sets_user(&l, a);
    for (int i = 0; i < l.n; i++) {
        if (!strcmp(l.items[i].name, "epochs") || !strcmp(l.items[i].name, "train.epochs") ||
            !strcmp(l.items[i].name, "run_dir") || !strcmp(l.items[i].name, "train.run_dir"))
            continue;
        argv[argc++] = "--set";
        argv[argc++] = owned[n_owned++] = xasprintf("%s=%s", l.items[i].name, l.items[i].value);
    }
    free(l.items);
    argv[argc++] = "--set";
    argv[argc++] = owned[n_owned++] = xasprintf("cardinality=%d", v->cardinality);
    argv[argc++] = "--set";
    argv[argc++] = owned[n_owned++] = xasprintf("width=%d", v->width);
    argv[argc++] = "--epochs";
    argv[argc++] = owned[n_owned++] = xasprintf("%d", epochs);
    argv[argc++] = "--run-dir";
    argv[argc++] = dir;
    if (resume) {
        argv[argc++] = "--resume";
        argv[argc++] = last;
    }
    argv[argc] = NULL;

    for (int i = 0; i < argc; i++) sb_printf(&argbuf, "%s%s", i ? " " : "", argv[i]);
    fprintf(stderr, "\n== variant %dx%dd%s: rxc %s\n", v->cardinality, v->width, resume ? " (resumed)" : "", argbuf.s);
    /* The trainer's own stdout (epoch lines, its summary) goes to stderr for
     * the duration, so that ablate's stdout is only its table or JSON. */
    fflush(stdout);
    int saved_stdout = dup(STDOUT_FILENO);
    if (saved_stdout >= 0) dup2(STDERR_FILENO, STDOUT_FILENO);
    int rc = cmd_train(argc, argv);
    fflush(stdout);
    if (saved_stdout >= 0) {
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
    }

    if (rc == 0) {
        read_results(v, dir, epochs);
        if (write_done(out, v, model_sha) != 0) rc = 1;
    }
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(argv);
    free(argbuf.s);
    free(last);
    free(dir);
    return rc;
}

/* ---- the command ----------------------------------------------------------------- */

/* What the variants are compared with: the file as given (with the user's overrides). */
typedef struct Base {
    long c, d;               /* its cardinality and width settings */
    int64_t params, macs;
    int epochs;              /* the file's */
    char sha[65];            /* of the model text with the overrides: names a finished variant's model */
} Base;

/* Returns 0 or an exit status (the message printed). */
static int load_base(const AblateArgs *a, Base *b) {
    LoadOptions opt = {.sets = a->sets, .n_sets = a->n_sets};
    Model m;
    memset(&m, 0, sizeof m);
    int lrc = model_load(a->file, &opt, &m);
    if (lrc != LOAD_OK) return lrc == LOAD_IO_ERROR ? 1 : 2;
    if (network_int_setting(&m, "cardinality", &b->c) != 0 || network_int_setting(&m, "width", &b->d) != 0) {
        fprintf(stderr,
                "rxc ablate: %s: the network has no integer `cardinality` and `width` settings to vary\n"
                "  (write them in the network body, e.g. `cardinality 32` and `width 4`, and use them in the block)\n",
                a->file);
        model_free(&m);
        return 2;
    }
    b->params = graph_param_count(m.graph);
    b->macs = graph_macs(m.graph);
    b->epochs = m.recipe.epochs;
    memcpy(b->sha, m.source_sha256, sizeof b->sha);
    b->sha[64] = 0;
    model_free(&m);
    if (b->params <= 0 || b->macs <= 0) {
        fprintf(stderr, "rxc ablate: %s: the network has no parameters or MACs to keep equal\n", a->file);
        return 2;
    }
    return 0;
}

/* Each cardinality's width and counts. Returns 0 or 2 (the message printed). */
static int derive_variants(const AblateArgs *a, const Base *b, Variant *v) {
    for (int i = 0; i < a->n_cards; i++) {
        int c = a->cards[i];
        v[i].cardinality = c;
        if (a->keep_width || c == b->c) {
            v[i].width = (int)b->d;
        } else {
            WidthProbe probe = {a, c};
            v[i].width = width_search(count_width, &probe, b->params, b->macs, width_hint((int)b->c, (int)b->d, c));
            if (v[i].width < 1) {
                fprintf(stderr, "rxc ablate: no width d elaborates with cardinality %d\n", c);
                return 2;
            }
        }
        if (measure(a, c, v[i].width, &v[i].params, &v[i].macs) != 0) {
            fprintf(stderr, "rxc ablate: %s does not elaborate with cardinality %d and width %d (above)\n", a->file, c,
                    v[i].width);
            return 2;
        }
    }
    return 0;
}

/* Trains the variants that are not finished yet, rewriting the outputs
 * after each. Returns the exit status. */
static int run_variants(const AblateArgs *a, const Base *b, Variant *v, const char *out, const char *name) {
    int n = a->n_cards, rc = 0;
    int epochs = a->epochs ? a->epochs : b->epochs;
    train_hold_signals(true);
    for (int i = 0; i < n && rc == 0; i++) {
        if (train_stop_requested()) {
            rc = 130;
            break;
        }
        RecordState st = load_done(out, &v[i], epochs, b->sha);
        if (st == REC_DONE) {
            fprintf(stderr, "rxc ablate: %dx%dd already finished (%s/c%d_d%d), skipped\n", v[i].cardinality,
                    v[i].width, out, v[i].cardinality, v[i].width);
            continue;
        }
        if (st == REC_STALE)
            fprintf(stderr, "rxc ablate: %s/c%d_d%d holds a run of another model, other settings or more epochs; "
                            "training it anew\n", out, v[i].cardinality, v[i].width);
        rc = train_variant(a, out, &v[i], epochs, st == REC_STALE, b->sha);
        write_outputs(out, name, v, n, b->params, b->macs);
    }
    train_hold_signals(false);
    if (rc == 0) write_outputs(out, name, v, n, b->params, b->macs);
    return rc;
}

int cmd_ablate(int argc, char **argv) {
    AblateArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        free(a.sets);
        return rc == 1 ? 0 : 2;
    }
    Base b;
    Variant v[MAX_VARIANTS];
    memset(v, 0, sizeof v);
    int n = a.n_cards;
    rc = load_base(&a, &b);
    if (rc == 0) rc = derive_variants(&a, &b, v);
    if (rc || a.dry_run) {
        char pb[32], mb[32];
        if (rc == 0 && a.json) {
            print_json(stdout, v, n, b.params, b.macs, false);
        } else if (rc == 0) {
            printf("%s: base %ldx%ldd, %s params, %s MACs per image; keeping %s\n", a.file, b.c, b.d,
                   group_digits(b.params, pb, sizeof pb), group_digits(b.macs, mb, sizeof mb),
                   a.keep_width ? "the width d fixed" : "params and MACs closest to the base");
            print_table(stdout, v, n, b.params, b.macs, false);
        }
        free(a.sets);
        return rc;
    }

    char *name = path_stem(a.file);
    char *out = a.out_dir ? xstrdup(a.out_dir) : xasprintf("runs/ablate-%s", name);
    if (make_dirs(out, 0777, NULL) != 0) {
        fprintf(stderr, "rxc ablate: cannot create %s: %s\n", out, strerror(errno));
        rc = 1;
    } else {
        rc = run_variants(&a, &b, v, out, name);
    }
    fputc('\n', stderr);
    if (a.json) print_json(stdout, v, n, b.params, b.macs, true);
    else print_table(stdout, v, n, b.params, b.macs, true);
    if (rc == 130)
        fprintf(stderr, "rxc ablate: interrupted; run the same command again to resume (finished variants are kept)\n");
    else if (rc)
        fprintf(stderr, "rxc ablate: a variant failed (above); finished variants are kept in %s\n", out);
    else
        fprintf(stderr, "rxc ablate: results in %s/ablation.csv, %s/ablation.md and %s/ablation.svg\n", out, out, out);
    for (int i = 0; i < n; i++) free(v[i].rows);
    free(out);
    free(name);
    free(a.sets);
    return rc;
}
