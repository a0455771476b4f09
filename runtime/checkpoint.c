/*
 * checkpoint.c — model state <-> safetensors (see checkpoint.h).
 *
 * The device holds parameters in SPACE_PARAMS, BN statistics in
 * SPACE_BUFFERS and the optimizer state in SPACE_STATE (program.h); this
 * file moves each graph parameter between those spaces and a named tensor.
 * Loading checks everything first and writes nothing unless all of it fits,
 * so a bad file never leaves a half-loaded model behind.
 */
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define FORMAT_NAME "rxc.checkpoint.v1"
#define OPT_PREFIX "optimizer."
#define EMA_PREFIX "ema."

static const char *opt_name(OptKind k) {
    switch (k) {
    case OPT_SGD: return "sgd";
    case OPT_ADAM: return "adam";
    case OPT_ADAMW: return "adamw";
    case OPT_LAMB: return "lamb";
    }
    return "?";
}

/* The optimizer's per-parameter state slots and where each lives in
 * SPACE_STATE (byte offset of the slot's copy of the parameter layout). */
typedef struct Slots {
    int n;
    const char *name[2];
    int64_t base[2];
} Slots;

static Slots opt_slots(const ModelRef *m) {
    Slots s = {0};
    int64_t state = m->program->space_bytes[SPACE_STATE];
    if (state <= 0) return s;
    if (m->opt == OPT_ADAM || m->opt == OPT_ADAMW || m->opt == OPT_LAMB) { /* timm's Lamb names them so too */
        s.n = 2;
        s.name[0] = "exp_avg";
        s.name[1] = "exp_avg_sq";
        s.base[0] = 0;
        s.base[1] = m->program->space_bytes[SPACE_PARAMS]; /* program.h: m then v, each in the parameters' layout */
    } else if (m->momentum != 0.0) {
        s.n = 1;
        s.name[0] = "momentum_buffer";
        s.base[0] = 0;
    }
    return s;
}

static BufSpace param_space(const Param *p) { return p->trainable ? SPACE_PARAMS : SPACE_BUFFERS; }

static int64_t param_byte_offset(const ModelRef *m, int i) { return m->program->param_offset[i] * (int64_t)sizeof(float); }

static char *slot_tensor_name(const char *slot, const char *param) { return xasprintf(OPT_PREFIX "%s.%s", slot, param); }

/* The EMA of the weights (program.h SPACE_EMA): "ema.<name>" for every
 * parameter and buffer; its num_batches_tracked is the model's own count
 * (copied, as timm's ModelEmaV3 copies integer buffers). */
static bool has_ema(const ModelRef *m) { return m->program->space_bytes[SPACE_EMA] > 0; }

static int64_t ema_byte_offset(const ModelRef *m, int i) {
    return (m->graph->params[i].trainable ? 0 : m->program->space_bytes[SPACE_PARAMS]) + param_byte_offset(m, i);
}

/* A file's EMA entry "ema.<name>": the parameter's name, else NULL. A name
 * of the model itself (a layer called `ema`) is never an EMA entry. */
static const char *ema_entry_param(const Graph *g, const char *name) {
    size_t n = strlen(EMA_PREFIX);
    if (strncmp(name, EMA_PREFIX, n) != 0 || graph_find_param(g, name) >= 0) return NULL;
    return graph_find_param(g, name + n) >= 0 ? name + n : NULL;
}

static int count_ema_entries(const SafeTensors *st, const Graph *g) {
    int n = 0;
    for (int j = 0; j < st->n; j++) n += ema_entry_param(g, st->t[j].name) != NULL;
    return n;
}

/* ---- saving -------------------------------------------------------------- */

void checkpoint_collect(const ModelRef *m, SafeTensors *st, bool with_optimizer) {
    const Graph *g = m->graph;
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        if (p->role == ROLE_NUM_BATCHES) {
            int64_t v = m->num_batches ? m->num_batches[i] : 0;
            st_add(st, p->name, ST_I64, 0, NULL, &v, true);
            continue;
        }
        StTensor *t = st_add_zeroed(st, p->name, ST_F32, p->rank, p->dim);
        m->exec->read(m->exec, param_space(p), param_byte_offset(m, i), t->data, p->numel * (int64_t)sizeof(float));
    }
    for (int i = 0; has_ema(m) && i < g->n_params; i++) {
        const Param *p = &g->params[i];
        char *name = xasprintf(EMA_PREFIX "%s", p->name);
        if (p->role == ROLE_NUM_BATCHES) {
            int64_t v = m->num_batches ? m->num_batches[i] : 0;
            st_add(st, name, ST_I64, 0, NULL, &v, true);
        } else {
            StTensor *t = st_add_zeroed(st, name, ST_F32, p->rank, p->dim);
            m->exec->read(m->exec, SPACE_EMA, ema_byte_offset(m, i), t->data, p->numel * (int64_t)sizeof(float));
        }
        free(name);
    }
    if (!with_optimizer) return;
    Slots s = opt_slots(m);
    for (int k = 0; k < s.n; k++)
        for (int i = 0; i < g->n_params; i++) {
            const Param *p = &g->params[i];
            if (!p->trainable) continue;
            char *name = slot_tensor_name(s.name[k], p->name);
            StTensor *t = st_add_zeroed(st, name, ST_F32, p->rank, p->dim);
            m->exec->read(m->exec, SPACE_STATE, s.base[k] + param_byte_offset(m, i), t->data,
                          p->numel * (int64_t)sizeof(float));
            free(name);
        }
}

static void meta_i64(SafeTensors *st, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    st_set_meta(st, key, buf);
}

static void meta_f64(SafeTensors *st, const char *key, double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    st_set_meta(st, key, buf);
}

int checkpoint_save(const char *path, const ModelRef *m, const TrainState *s, const char *source_sha256,
                    Error *err) {
    SafeTensors st = {0};
    checkpoint_collect(m, &st, true);
    st_set_meta(&st, "format", FORMAT_NAME);
    st_set_meta(&st, "network", m->graph->name ? m->graph->name : "");
    st_set_meta(&st, "optimizer", opt_name(m->opt));
    st_set_meta(&st, "source_sha256", source_sha256 ? source_sha256 : "");
    meta_i64(&st, "epoch", s->epoch);
    meta_i64(&st, "step", s->step);
    meta_i64(&st, "micro_step", s->micro_step);
    meta_i64(&st, "batch_in_epoch", s->batch_in_epoch);
    meta_f64(&st, "epoch_loss_sum", s->epoch_loss_sum);
    meta_i64(&st, "epoch_correct", s->epoch_correct);
    meta_i64(&st, "epoch_seen", s->epoch_seen);
    meta_f64(&st, "epoch_seconds", s->epoch_seconds);
    meta_f64(&st, "best_val_acc", s->best_val_acc);
    meta_i64(&st, "best_epoch", s->best_epoch);
    char seed[32];
    snprintf(seed, sizeof seed, "%" PRIu64, s->seed);
    st_set_meta(&st, "seed", seed);
    if (m->class_names) st_set_meta(&st, "class_names", m->class_names);
    if (m->class_folders) st_set_meta(&st, "class_folders", m->class_folders);
    if (m->precision) st_set_meta(&st, "precision", m->precision);
    st_set_meta(&st, "rng", "counter-based splitmix64(seed, stream, counter); counters are epoch, step, micro_step");
    int rc = st_write(path, &st, err);
    st_free(&st);
    return rc;
}

/* ---- loading ------------------------------------------------------------- */

static void shape_of_param(const Param *p, char *buf, size_t n) { st_shape_str(p->rank, p->dim, buf, n); }

static bool same_shape(const StTensor *t, const Param *p) {
    if (t->rank != p->rank) return false;
    for (int d = 0; d < p->rank; d++)
        if (t->shape[d] != p->dim[d]) return false;
    return true;
}

/* Checks one tensor against the parameter it should fill; appends a line to
 * problems and returns false when it does not fit. */
static bool check_tensor(const StTensor *t, const Param *p, const char *name, StrBuf *problems) {
    char want[160], got[160];
    if (!same_shape(t, p)) {
        shape_of_param(p, want, sizeof want);
        st_shape_str(t->rank, t->shape, got, sizeof got);
        sb_printf(problems, "  shape mismatch: %s is %s in the file, %s in the model\n", name, got, want);
        return false;
    }
    if (p->role == ROLE_NUM_BATCHES) {
        if (t->dtype == ST_I64) return true;
        if (t->dtype == ST_F32) {
            float v = *(const float *)t->data;
            if (v >= 0 && v == (float)(int64_t)v) return true;
        }
        sb_printf(problems, "  wrong dtype: %s is %s in the file; num_batches_tracked must be I64\n", name,
                  st_dtype_name(t->dtype));
        return false;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_BF16) {
        sb_printf(problems, "  wrong dtype: %s is %s in the file; expected F32 (or BF16)\n", name, st_dtype_name(t->dtype));
        return false;
    }
    return true;
}

static void write_tensor(const ModelRef *m, const StTensor *t, int i, BufSpace space, int64_t byte_offset) {
    const Param *p = &m->graph->params[i];
    if (p->role == ROLE_NUM_BATCHES) {
        if (m->num_batches)
            m->num_batches[i] = t->dtype == ST_I64 ? *(const int64_t *)t->data : (int64_t)*(const float *)t->data;
        return;
    }
    if (t->dtype == ST_F32) {
        m->exec->write(m->exec, space, byte_offset, t->data, p->numel * (int64_t)sizeof(float));
        return;
    }
    float *tmp = xmalloc((size_t)p->numel * sizeof(float));
    st_to_f32(t, tmp);
    m->exec->write(m->exec, space, byte_offset, tmp, p->numel * (int64_t)sizeof(float));
    free(tmp);
}

static bool is_param_name(const Graph *g, const char *name) { return graph_find_param(g, name) >= 0; }

/* Checks st against the graph (and the optimizer slots when with_optimizer);
 * returns the number of problems, listed in *problems. */
static int check_all(const SafeTensors *st, const ModelRef *m, bool with_optimizer, StrBuf *problems) {
    const Graph *g = m->graph;
    int bad = 0;
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        const StTensor *t = st_find(st, p->name);
        if (!t) {
            char sh[160];
            shape_of_param(p, sh, sizeof sh);
            sb_printf(problems, "  missing: %s %s\n", p->name, sh);
            bad++;
        } else if (!check_tensor(t, p, p->name, problems)) {
            bad++;
        }
    }
    Slots s = opt_slots(m);
    if (with_optimizer)
        for (int k = 0; k < s.n; k++)
            for (int i = 0; i < g->n_params; i++) {
                const Param *p = &g->params[i];
                if (!p->trainable) continue;
                char *name = slot_tensor_name(s.name[k], p->name);
                const StTensor *t = st_find(st, name);
                if (!t) {
                    sb_printf(problems, "  missing optimizer state: %s\n", name);
                    bad++;
                } else if (!check_tensor(t, p, name, problems)) {
                    bad++;
                }
                free(name);
            }
    /* a resume with `ema` restores the average when the file has one (a file without one starts it afresh) */
    bool want_ema = with_optimizer && has_ema(m) && count_ema_entries(st, g) > 0;
    for (int i = 0; want_ema && i < g->n_params; i++) {
        const Param *p = &g->params[i];
        char *name = xasprintf(EMA_PREFIX "%s", p->name);
        const StTensor *t = st_find(st, name);
        if (!t) sb_printf(problems, "  missing EMA weights: %s\n", name);
        bad += !t || !check_tensor(t, p, name, problems);
        free(name);
    }
    for (int j = 0; j < st->n; j++) {
        const char *name = st->t[j].name;
        if (ema_entry_param(g, name)) continue; /* checked above, or not wanted: weights-only loads skip them */
        if (!strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX))) {
            if (!with_optimizer) continue;
            bool known = false;
            for (int k = 0; k < s.n && !known; k++) {
                size_t n = strlen(OPT_PREFIX) + strlen(s.name[k]);
                if (!strncmp(name, OPT_PREFIX, strlen(OPT_PREFIX)) && !strncmp(name + strlen(OPT_PREFIX), s.name[k], strlen(s.name[k])) &&
                    name[n] == '.' && is_param_name(g, name + n + 1))
                    known = true;
            }
            if (!known) {
                sb_printf(problems, "  unexpected optimizer state: %s\n", name);
                bad++;
            }
            continue;
        }
        if (!is_param_name(g, name)) {
            char sh[160];
            st_shape_str(st->t[j].rank, st->t[j].shape, sh, sizeof sh);
            sb_printf(problems, "  unexpected: %s %s (not a parameter or buffer of the model)\n", name, sh);
            bad++;
        }
    }
    return bad;
}

/* SPACE_EMA from the file's "ema." entries, or from the weights themselves
 * when it has none; the count of num_batches_tracked stays the model's. */
static void load_ema(const SafeTensors *st, const ModelRef *m) {
    const Graph *g = m->graph;
    bool from_file = count_ema_entries(st, g) > 0;
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        if (p->role == ROLE_NUM_BATCHES) continue;
        char *name = xasprintf(EMA_PREFIX "%s", p->name);
        write_tensor(m, st_find(st, from_file ? name : p->name), i, SPACE_EMA, ema_byte_offset(m, i));
        free(name);
    }
}

static void load_all(const SafeTensors *st, const ModelRef *m, bool with_optimizer) {
    const Graph *g = m->graph;
    for (int i = 0; i < g->n_params; i++) {
        const Param *p = &g->params[i];
        write_tensor(m, st_find(st, p->name), i, param_space(p), param_byte_offset(m, i));
    }
    if (!with_optimizer) return;
    if (has_ema(m)) load_ema(st, m);
    Slots s = opt_slots(m);
    for (int k = 0; k < s.n; k++)
        for (int i = 0; i < g->n_params; i++) {
            const Param *p = &g->params[i];
            if (!p->trainable) continue;
            char *name = slot_tensor_name(s.name[k], p->name);
            write_tensor(m, st_find(st, name), i, SPACE_STATE, s.base[k] + param_byte_offset(m, i));
            free(name);
        }
}

/* The summary line, then one line per problem. A list too long for an
 * Error (a checkpoint of another network) ends at a whole line, saying how
 * many were left out. */
static int mismatch_message(const char *what, const ModelRef *m, int bad, StrBuf *problems, Error *err) {
    StrBuf b = {0};
    sb_printf(&b, "%s does not match network '%s': %d problem%s (nothing was loaded)", what,
              m->graph->name ? m->graph->name : "?", bad, bad == 1 ? "" : "s");
    const char *p = problems->s ? problems->s : "";
    size_t room = sizeof err->msg - 64; /* for the summary of what was left out */
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (b.len + 1 + n >= room) {
            int left = 0; /* lines, the last one with or without its newline */
            for (; *p; p++) left += *p == '\n' || (p[1] == 0);
            sb_printf(&b, "\n  ... and %d more", left);
            break;
        }
        sb_printf(&b, "\n%.*s", (int)n, p);
        p += eol ? n + 1 : n;
    }
    free(problems->s);
    error_set(err, "%s", b.s);
    free(b.s);
    return -1;
}

int checkpoint_apply_weights(const char *what, const SafeTensors *st, const ModelRef *m, Error *err) {
    StrBuf problems = {0};
    int bad = check_all(st, m, false, &problems);
    if (bad) return mismatch_message(what, m, bad, &problems, err);
    free(problems.s);
    load_all(st, m, false);
    return 0;
}

int checkpoint_load_weights(const char *path, const ModelRef *m, Error *err) {
    SafeTensors st;
    int read_rc = st_read(path, &st, err);
    if (read_rc != 0) return read_rc == ST_UNREADABLE ? CHECKPOINT_UNREADABLE : -1;
    int rc = checkpoint_apply_weights(path, &st, m, err);
    st_free(&st);
    return rc;
}

int checkpoint_load_ema_weights(const char *path, const ModelRef *m, Error *err) {
    SafeTensors st, averaged = {0};
    int read_rc = st_read(path, &st, err);
    if (read_rc != 0) return read_rc == ST_UNREADABLE ? CHECKPOINT_UNREADABLE : -1;
    /* the "ema." entries under the model's names; their data stays in st */
    for (int j = 0; j < st.n; j++) {
        const StTensor *t = &st.t[j];
        const char *name = ema_entry_param(m->graph, t->name);
        if (name) st_add(&averaged, name, t->dtype, t->rank, t->shape, t->data, false);
    }
    int rc;
    if (averaged.n == 0) {
        error_set(err, "%s holds no EMA weights (\"ema.\" entries): it was not written by a run with `ema` in its "
                       "train section; evaluate its own weights without --ema", path);
        rc = CHECKPOINT_NO_EMA;
    } else {
        char *what = xasprintf("the EMA weights of %s", path);
        rc = checkpoint_apply_weights(what, &averaged, m, err);
        free(what);
    }
    st_free(&averaged);
    st_free(&st);
    return rc;
}

static int meta_int(const SafeTensors *st, const char *key, int64_t *out, StrBuf *problems) {
    const char *v = st_get_meta(st, key);
    char *end = NULL;
    if (!v) {
        sb_printf(problems, "  metadata '%s' is missing\n", key);
        return -1;
    }
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) {
        sb_printf(problems, "  metadata '%s' is not an integer: '%s'\n", key, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int meta_double(const SafeTensors *st, const char *key, double *out, StrBuf *problems) {
    const char *v = st_get_meta(st, key);
    char *end = NULL;
    if (!v) {
        sb_printf(problems, "  metadata '%s' is missing\n", key);
        return -1;
    }
    double x = strtod(v, &end);
    if (end == v || *end) {
        sb_printf(problems, "  metadata '%s' is not a number: '%s'\n", key, v);
        return -1;
    }
    *out = x;
    return 0;
}

int checkpoint_load_resume(const char *path, const ModelRef *m, TrainState *s, const char *source_sha256,
                           Error *err) {
    SafeTensors st;
    int read_rc = st_read(path, &st, err);
    if (read_rc != 0) return read_rc == ST_UNREADABLE ? CHECKPOINT_UNREADABLE : -1;
    StrBuf problems = {0};
    int bad = 0;
    const char *fmt = st_get_meta(&st, "format");
    if (!fmt || strcmp(fmt, FORMAT_NAME) != 0) {
        sb_printf(&problems, "  not an rxc training checkpoint (metadata format is '%s', expected '%s'); "
                             "use --init for a weights-only file\n", fmt ? fmt : "(none)", FORMAT_NAME);
        bad++;
    }
    const char *opt = st_get_meta(&st, "optimizer");
    if (fmt && (!opt || strcmp(opt, opt_name(m->opt)) != 0)) {
        sb_printf(&problems, "  the checkpoint's optimizer is '%s' but the model file says '%s'\n", opt ? opt : "(none)",
                  opt_name(m->opt));
        bad++;
    }
    TrainState t = {0};
    int64_t v = 0;
    if (meta_int(&st, "epoch", &v, &problems) == 0) t.epoch = (int)v; else bad++;
    if (meta_int(&st, "step", &t.step, &problems) != 0) bad++;
    if (meta_int(&st, "micro_step", &t.micro_step, &problems) != 0) bad++;
    if (meta_int(&st, "batch_in_epoch", &t.batch_in_epoch, &problems) != 0) bad++;
    if (meta_double(&st, "epoch_loss_sum", &t.epoch_loss_sum, &problems) != 0) bad++;
    if (meta_int(&st, "epoch_correct", &t.epoch_correct, &problems) != 0) bad++;
    if (meta_int(&st, "epoch_seen", &t.epoch_seen, &problems) != 0) bad++;
    if (meta_double(&st, "epoch_seconds", &t.epoch_seconds, &problems) != 0) bad++;
    if (meta_double(&st, "best_val_acc", &t.best_val_acc, &problems) != 0) bad++;
    if (meta_int(&st, "best_epoch", &v, &problems) == 0) t.best_epoch = (int)v; else bad++;
    const char *seed = st_get_meta(&st, "seed");
    if (seed) t.seed = strtoull(seed, NULL, 10);
    bad += check_all(&st, m, true, &problems);
    if (bad) {
        int rc = mismatch_message(path, m, bad, &problems, err);
        st_free(&st);
        return rc;
    }
    free(problems.s);
    const char *sha = st_get_meta(&st, "source_sha256");
    if (source_sha256 && sha && strcmp(sha, source_sha256) != 0)
        fprintf(stderr, "rxc: note: %s was saved from a different model text or settings; resuming anyway\n", path);
    if (has_ema(m) && count_ema_entries(&st, m->graph) == 0)
        fprintf(stderr, "rxc: note: %s holds no EMA weights; the average starts from its weights\n", path);
    else if (!has_ema(m) && count_ema_entries(&st, m->graph) > 0)
        fprintf(stderr, "rxc: note: %s holds EMA weights, but this run has no `ema`: they are left behind\n", path);
    if (seed && t.seed != s->seed)
        fprintf(stderr, "rxc: note: %s was trained with seed %s; continuing with seed %" PRIu64 "\n", path, seed, s->seed);
    t.seed = s->seed;
    load_all(&st, m, true);
    *s = t;
    st_free(&st);
    return 0;
}

/* ---- the class list ------------------------------------------------------- */

char **checkpoint_class_list(const char *path, bool folders, int *n) {
    *n = 0;
    SafeTensors st;
    Error err = {0};
    if (st_read_meta(path, &st, &err) != 0) return NULL;
    const char *text = folders ? st_get_meta(&st, "class_folders") : NULL;
    if (!text) text = st_get_meta(&st, "class_names");
    char **names = NULL;
    int cap = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        GROW(names, cap, *n + 1);
        names[(*n)++] = xstrndup(line, len);
        line += len + (nl ? 1 : 0);
    }
    st_free(&st);
    return names;
}
