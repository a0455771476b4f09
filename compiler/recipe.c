/*
 * recipe.c — the training run of a .net file: defaults (the seed's recipe),
 * and filling and checking a Recipe from the data, augment and train
 * sections of the AST. Every key, word and value is checked here, with the
 * location of the offending text and a "did you mean" for misspellings.
 */
#include "recipe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "util.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

void recipe_defaults(Recipe *r) {
    memset(r, 0, sizeof *r);
    r->layout = DATA_IMAGEFOLDER;
    r->train_split = xstrdup("train");
    r->val_split = xstrdup("val");
    r->cache = CACHE_DECODED;
    r->workers = 0;
    r->epochs = 200;
    r->batch = 64;
    r->accum_steps = 1;
    r->seed = 0;
    r->deterministic = true;
    r->opt = OPT_ADAMW;
    r->lr = 1e-3;
    r->momentum = 0;
    r->beta1 = 0.9;
    r->beta2 = 0.999;
    r->eps = 1e-8;
    r->weight_decay = 0;
    r->sched = SCHED_COSINE;
    r->eta_min = 1e-5;
    r->gamma = 0.1;
    r->warmup_start = 0.01;
    r->label_smoothing = 0.1;
    r->device = DEVICE_AUTO;
    r->precision = PREC_FP32;
    r->log_every = 50;
}

void recipe_free(Recipe *r) {
    free(r->data_root);
    free(r->train_split);
    free(r->val_split);
    free(r->class_names);
    free(r->train_tf);
    free(r->val_tf);
    free(r->run_dir);
    memset(r, 0, sizeof *r);
}

static const char *const transform_names[TF_COUNT] = {
    [TF_RESIZE] = "resize", [TF_RANDOM_RESIZE] = "random_resize", [TF_RANDOM_CROP] = "random_crop",
    [TF_CENTER_CROP] = "center_crop", [TF_RANDOM_RESIZED_CROP] = "random_resized_crop", [TF_HFLIP] = "hflip",
    [TF_AUTOAUGMENT] = "autoaugment", [TF_NORMALIZE] = "normalize",
};

const char *transform_name(TransformKind k) {
    return (unsigned)k < TF_COUNT ? transform_names[k] : "?";
}

/* ---- keys ----------------------------------------------------------------- */

static const char *const data_keys[] = {"root", "layout", "train_split", "val_split", "class_names",
                                        "cache", "workers", "drop_last"};
static const char *const train_keys[] = {"epochs", "batch", "accum", "seed", "deterministic", "optimizer",
                                         "schedule", "warmup", "loss", "device", "precision", "run_dir",
                                         "log_every", "sync_bn"};
static const char *const optimizer_args[] = {"lr", "momentum", "nesterov", "weight_decay", "betas", "eps",
                                             "no_decay_bn_bias"};
static const char *const schedule_args[] = {"eta_min", "t_max", "per_step", "step_size", "gamma", "milestones"};
static const char *const loss_args[] = {"label_smoothing"};

const char *const *recipe_keys(const char *section, int *n) {
    struct { const char *name; const char *const *keys; int n; } table[] = {
        {"data", data_keys, COUNT(data_keys)},         {"train", train_keys, COUNT(train_keys)},
        {"optimizer", optimizer_args, COUNT(optimizer_args)}, {"schedule", schedule_args, COUNT(schedule_args)},
        {"loss", loss_args, COUNT(loss_args)},
    };
    for (int i = 0; i < COUNT(table); i++)
        if (!strcmp(table[i].name, section)) {
            *n = table[i].n;
            return table[i].keys;
        }
    *n = 0;
    return NULL;
}

bool recipe_run_only_setting(AstDeclKind section, const char *name) {
    if (section == DECL_TRAIN) return !strcmp(name, "run_dir") || !strcmp(name, "log_every");
    return section == DECL_DATA && !strcmp(name, "workers"); /* batches are the same for any thread count */
}

/* ---- values --------------------------------------------------------------- */

/* The context for reading values: constants at top level may be used in the
 * train and data sections (`lr base_lr * 2`). */
typedef struct Reader {
    const AstFile *ast;
    Diag *d;
    int errors;
    int depth;
} Reader;

static void err(Reader *rd, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void err(Reader *rd, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(rd->d, loc, fmt, ap);
    va_end(ap);
    rd->errors++;
}

static const AstExpr *lookup_const(const Reader *rd, const char *name) {
    const AstExpr *found = NULL;
    for (int i = 0; i < rd->ast->n_decls; i++) {
        const AstDecl *d = rd->ast->decls[i];
        if (d->kind == DECL_CONST && !strcmp(d->name, name)) found = d->stmt->value;
    }
    return found;
}

/* Evaluates a numeric constant expression. Returns 0 (ok), or -1 when e is
 * not a number (nothing reported: the caller says what it expected). */
static int eval_number(Reader *rd, const AstExpr *e, double *v, bool *is_int) {
    if (rd->depth > 64) return -1;
    switch (e->kind) {
    case EX_INT: *v = (double)e->v.i; *is_int = true; return 0;
    case EX_FLOAT: *v = e->v.f; *is_int = false; return 0;
    case EX_NAME: {
        const AstExpr *c = lookup_const(rd, e->v.name);
        if (!c) return -1;
        rd->depth++;
        int rc = eval_number(rd, c, v, is_int);
        rd->depth--;
        return rc;
    }
    case EX_UNARY:
        if (e->v.unary.op != UN_NEG || eval_number(rd, e->v.unary.x, v, is_int)) return -1;
        *v = -*v;
        return 0;
    case EX_BINARY: {
        double a, b;
        bool ia, ib;
        if (eval_number(rd, e->v.binary.a, &a, &ia) || eval_number(rd, e->v.binary.b, &b, &ib)) return -1;
        *is_int = ia && ib;
        switch (e->v.binary.op) {
        case BIN_ADD: *v = a + b; break;
        case BIN_SUB: *v = a - b; break;
        case BIN_MUL: *v = a * b; break;
        case BIN_DIV: if (b == 0) return -1; *v = a / b; *is_int = false; break;
        case BIN_IDIV: if (b == 0) return -1; *v = floor(a / b); break;
        case BIN_MOD: if (b == 0) return -1; *v = a - b * floor(a / b); break;
        case BIN_POW: *v = pow(a, b); *is_int = *is_int && b >= 0; break;
        default: return -1;
        }
        return isfinite(*v) ? 0 : -1;
    }
    default: return -1;
    }
}

static bool get_number(Reader *rd, const AstExpr *e, const char *what, double *out) {
    bool is_int;
    if (eval_number(rd, e, out, &is_int)) {
        err(rd, e->loc, "%s expects a number", what);
        return false;
    }
    return true;
}

static bool get_int(Reader *rd, const AstExpr *e, const char *what, int64_t lo, int64_t hi, int64_t *out) {
    double v;
    bool is_int;
    if (eval_number(rd, e, &v, &is_int) || (!is_int && v != floor(v))) {
        err(rd, e->loc, "%s expects an integer", what);
        return false;
    }
    if (v < (double)lo || v > (double)hi) {
        if (hi >= INT32_MAX) err(rd, e->loc, "%s must be at least %lld, not %.15g", what, (long long)lo, v);
        else err(rd, e->loc, "%s must be between %lld and %lld, not %.15g", what, (long long)lo, (long long)hi, v);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

static bool get_int32(Reader *rd, const AstExpr *e, const char *what, int lo, int hi, int *out) {
    int64_t v;
    if (!get_int(rd, e, what, lo, hi, &v)) return false;
    *out = (int)v;
    return true;
}

/* A number in [lo, hi] (closed) or [lo, hi) when hi_open. */
static bool get_range(Reader *rd, const AstExpr *e, const char *what, double lo, double hi, bool hi_open, double *out) {
    double v;
    if (!get_number(rd, e, what, &v)) return false;
    if (v < lo || v > hi || (hi_open && v == hi)) {
        if (isinf(hi)) err(rd, e->loc, "%s must be at least %g, not %g", what, lo, v);
        else err(rd, e->loc, "%s must be in [%g, %g%c, not %g", what, lo, hi, hi_open ? ')' : ']', v);
        return false;
    }
    *out = v;
    return true;
}

static bool get_bool(Reader *rd, const AstExpr *e, const char *what, bool *out) {
    if (e->kind == EX_BOOL) { *out = e->v.b; return true; }
    if (e->kind == EX_NAME) {
        const AstExpr *c = lookup_const(rd, e->v.name);
        if (c && c->kind == EX_BOOL) { *out = c->v.b; return true; }
    }
    err(rd, e->loc, "%s expects true or false", what);
    return false;
}

static bool get_string(Reader *rd, const AstExpr *e, const char *what, char **out) {
    const AstExpr *s = e;
    if (s->kind == EX_NAME) {
        const AstExpr *c = lookup_const(rd, s->v.name);
        if (c) s = c;
    }
    if (s->kind != EX_STRING) {
        err(rd, e->loc, "%s expects a string in double quotes", what);
        return false;
    }
    free(*out);
    *out = xstrdup(s->v.s);
    return true;
}

/* A word from a fixed set: `layout imagefolder`, `device cuda`. */
static bool get_word(Reader *rd, const AstExpr *e, const char *what, const char *const *words, int n, int *out) {
    if (e->kind == EX_NAME) {
        for (int i = 0; i < n; i++)
            if (!strcmp(e->v.name, words[i])) { *out = i; return true; }
        const char *near = diag_closest(e->v.name, words, n);
        StrBuf all = {0};
        for (int i = 0; i < n; i++) sb_printf(&all, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", words[i]);
        if (near) err(rd, e->loc, "unknown %s '%s'; did you mean '%s'?", what, e->v.name, near);
        else err(rd, e->loc, "unknown %s '%s'; expected %s", what, e->v.name, all.s);
        free(all.s);
        return false;
    }
    StrBuf all = {0};
    for (int i = 0; i < n; i++) sb_printf(&all, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", words[i]);
    err(rd, e->loc, "%s expects one of %s", what, all.s);
    free(all.s);
    return false;
}

/* A list of numbers of a fixed or bounded length. */
static int get_numbers(Reader *rd, const AstExpr *e, const char *what, int min_n, int max_n, double *out) {
    if (e->kind != EX_LIST) {
        if (min_n == max_n) err(rd, e->loc, "%s expects a list of %d numbers", what, min_n);
        else err(rd, e->loc, "%s expects a list of numbers", what);
        return -1;
    }
    int n = e->v.list.n;
    if (n < min_n || n > max_n) {
        if (min_n == max_n) err(rd, e->loc, "%s expects a list of %d numbers, not %d", what, min_n, n);
        else err(rd, e->loc, "%s expects %d to %d numbers, not %d", what, min_n, max_n, n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!get_number(rd, e->v.list.items[i], what, &out[i])) return -1;
    return n;
}

/* ---- calls: `adamw(lr=1e-3)`, `random_crop(224, padding=4)` -------------- */

typedef struct Spec {
    const char *name;  /* the op or callee, for messages */
    const char *const *params;
    int n_params;
    int n_required;    /* the first n_required params must be given */
} Spec;

/* Binds a call's arguments to the spec's parameters (positional first, then
 * keywords). A bare word (`hflip`, `constant`) is a call without arguments. */
static bool bind(Reader *rd, const AstExpr *e, const Spec *s, const AstExpr **vals) {
    for (int i = 0; i < s->n_params; i++) vals[i] = NULL;
    bool ok = true;
    if (e->kind == EX_CALL) {
        if (e->v.call.label) {
            err(rd, e->v.call.label->loc, "a label is not allowed here");
            ok = false;
        }
        int pos = 0;
        for (int a = 0; a < e->v.call.n_args; a++) {
            const AstArg *arg = &e->v.call.args[a];
            int slot = -1;
            if (!arg->key) {
                if (pos >= s->n_params) {
                    err(rd, arg->loc, "%s takes at most %d argument%s, but %d were given", s->name, s->n_params,
                        s->n_params == 1 ? "" : "s", e->v.call.n_args);
                    return false;
                }
                slot = pos++;
            } else {
                for (int i = 0; i < s->n_params; i++)
                    if (!strcmp(arg->key, s->params[i])) slot = i;
                if (slot < 0) {
                    const char *near = diag_closest(arg->key, s->params, s->n_params);
                    if (near) err(rd, arg->loc, "%s has no argument '%s'; did you mean '%s'?", s->name, arg->key, near);
                    else if (s->n_params == 0) err(rd, arg->loc, "%s takes no arguments", s->name);
                    else {
                        StrBuf all = {0};
                        for (int i = 0; i < s->n_params; i++) sb_printf(&all, "%s%s", i ? ", " : "", s->params[i]);
                        err(rd, arg->loc, "%s has no argument '%s' (it has %s)", s->name, arg->key, all.s);
                        free(all.s);
                    }
                    ok = false;
                    continue;
                }
            }
            if (vals[slot]) {
                err(rd, arg->loc, "argument '%s' of %s is given twice", s->params[slot], s->name);
                ok = false;
                continue;
            }
            vals[slot] = arg->value;
        }
    } else if (e->kind != EX_NAME) {
        err(rd, e->loc, "expected %s or a call like %s(...)", s->name, s->name);
        return false;
    }
    for (int i = 0; i < s->n_required; i++)
        if (!vals[i]) {
            err(rd, e->kind == EX_CALL ? e->v.call.callee_loc : e->loc, "%s needs the argument '%s'", s->name, s->params[i]);
            ok = false;
        }
    return ok;
}

/* An image size: an int (square, or the shorter side for resize) or [h, w]. */
static bool get_size(Reader *rd, const AstExpr *e, const char *what, bool allow_int_as_short, int size[2]) {
    if (e->kind == EX_LIST) {
        double hw[2];
        if (get_numbers(rd, e, what, 2, 2, hw) != 2) return false;
        for (int i = 0; i < 2; i++)
            if (hw[i] != floor(hw[i]) || hw[i] < 1 || hw[i] > 65536) {
                err(rd, e->v.list.items[i]->loc, "%s must be whole numbers between 1 and 65536", what);
                return false;
            }
        size[0] = (int)hw[0];
        size[1] = (int)hw[1];
        return true;
    }
    int v;
    if (!get_int32(rd, e, what, 1, 65536, &v)) return false;
    size[0] = v;
    size[1] = allow_int_as_short ? 0 : v;
    return true;
}

/* random_resize's sizes: one to RXC_MAX_SIZES image sizes. */
static bool get_resize_sizes(Reader *rd, const AstExpr *e, TransformOp *op) {
    double sz[RXC_MAX_SIZES];
    int n = get_numbers(rd, e, "random_resize's sizes", 1, RXC_MAX_SIZES, sz);
    if (n < 0) return false;
    for (int i = 0; i < n; i++) {
        if (sz[i] != floor(sz[i]) || sz[i] < 1 || sz[i] > 65536) {
            err(rd, e->v.list.items[i]->loc, "random_resize's sizes must be whole numbers between 1 and 65536");
            return false;
        }
        op->sizes[i] = (int)sz[i];
    }
    op->n_sizes = n;
    return true;
}

/* random_resized_crop's optional scale and ratio ranges (NULL: the default). */
static bool get_crop_scale_ratio(Reader *rd, const AstExpr *scale, const AstExpr *ratio, TransformOp *op) {
    double pair[2];
    if (scale) {
        if (get_numbers(rd, scale, "random_resized_crop's scale", 2, 2, pair) != 2) return false;
        if (!(pair[0] > 0 && pair[0] <= pair[1] && pair[1] <= 1)) {
            err(rd, scale->loc, "random_resized_crop's scale must be [lo, hi] with 0 < lo <= hi <= 1");
            return false;
        }
        op->scale[0] = (float)pair[0]; op->scale[1] = (float)pair[1];
    }
    if (ratio) {
        if (get_numbers(rd, ratio, "random_resized_crop's ratio", 2, 2, pair) != 2) return false;
        if (!(pair[0] > 0 && pair[0] <= pair[1] && isfinite(pair[1]))) {
            err(rd, ratio->loc, "random_resized_crop's ratio must be [lo, hi] with 0 < lo <= hi");
            return false;
        }
        op->ratio[0] = (float)pair[0]; op->ratio[1] = (float)pair[1];
    }
    return true;
}

/* normalize's per-channel mean and std (std positive). */
static bool get_mean_std(Reader *rd, const AstExpr *mean, const AstExpr *std, TransformOp *op) {
    double m[3], sd[3];
    if (get_numbers(rd, mean, "normalize's mean", 3, 3, m) != 3) return false;
    if (get_numbers(rd, std, "normalize's std", 3, 3, sd) != 3) return false;
    for (int i = 0; i < 3; i++) {
        if (!(sd[i] > 0)) {
            err(rd, std->v.list.items[i]->loc, "normalize's std must be positive");
            return false;
        }
        op->mean[i] = (float)m[i];
        op->std[i] = (float)sd[i];
    }
    return true;
}

static const char *const tf_names_list[] = {"resize", "random_resize", "random_crop", "center_crop",
                                            "random_resized_crop", "hflip", "autoaugment", "normalize"};

int transform_from_expr(const AstExpr *e, TransformOp *op, Diag *d) {
    Reader rd = {.d = d};
    AstFile empty = {0};
    rd.ast = &empty;
    memset(op, 0, sizeof *op);
    op->p = 0.5f;
    op->fill = 128;
    op->scale[0] = 0.08f; op->scale[1] = 1.0f;
    op->ratio[0] = 3.0f / 4.0f; op->ratio[1] = 4.0f / 3.0f;
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc name_loc = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    if (!name) {
        err(&rd, e->loc, "expected an augmentation op such as resize(256) or hflip");
        return -1;
    }
    int kind = -1;
    for (int i = 0; i < TF_COUNT; i++)
        if (!strcmp(name, tf_names_list[i])) kind = i;
    if (kind < 0) {
        const char *near = diag_closest(name, tf_names_list, TF_COUNT);
        if (near) err(&rd, name_loc, "unknown augmentation op '%s'; did you mean '%s'?", name, near);
        else err(&rd, name_loc, "unknown augmentation op '%s' (known: resize, random_resize, random_crop, center_crop, random_resized_crop, hflip, autoaugment, normalize)", name);
        return -1;
    }
    op->kind = (TransformKind)kind;
    const AstExpr *v[4];
    switch (op->kind) {
    case TF_RESIZE: {
        static const char *const ps[] = {"size"};
        Spec s = {"resize", ps, 1, 1};
        if (!bind(&rd, e, &s, v) || !get_size(&rd, v[0], "resize's size", true, op->size)) return -1;
        break;
    }
    case TF_RANDOM_RESIZE: {
        static const char *const ps[] = {"sizes"};
        Spec s = {"random_resize", ps, 1, 1};
        if (!bind(&rd, e, &s, v) || !get_resize_sizes(&rd, v[0], op)) return -1;
        break;
    }
    case TF_RANDOM_CROP: {
        static const char *const ps[] = {"size", "padding"};
        Spec s = {"random_crop", ps, 2, 1};
        if (!bind(&rd, e, &s, v) || !get_size(&rd, v[0], "random_crop's size", false, op->size)) return -1;
        if (v[1] && !get_int32(&rd, v[1], "random_crop's padding", 0, 4096, &op->padding)) return -1;
        break;
    }
    case TF_CENTER_CROP: {
        static const char *const ps[] = {"size"};
        Spec s = {"center_crop", ps, 1, 1};
        if (!bind(&rd, e, &s, v) || !get_size(&rd, v[0], "center_crop's size", false, op->size)) return -1;
        break;
    }
    case TF_RANDOM_RESIZED_CROP: {
        static const char *const ps[] = {"size", "scale", "ratio"};
        Spec s = {"random_resized_crop", ps, 3, 1};
        if (!bind(&rd, e, &s, v) || !get_size(&rd, v[0], "random_resized_crop's size", false, op->size)) return -1;
        if (!get_crop_scale_ratio(&rd, v[1], v[2], op)) return -1;
        break;
    }
    case TF_HFLIP: {
        static const char *const ps[] = {"p"};
        Spec s = {"hflip", ps, 1, 0};
        double p;
        if (!bind(&rd, e, &s, v)) return -1;
        if (v[0]) {
            if (!get_range(&rd, v[0], "hflip's p", 0, 1, false, &p)) return -1;
            op->p = (float)p;
        }
        break;
    }
    case TF_AUTOAUGMENT: {
        static const char *const ps[] = {"policy", "fill"};
        static const char *const policies[] = {"imagenet", "cifar10", "svhn"};
        Spec s = {"autoaugment", ps, 2, 1};
        int pol;
        if (!bind(&rd, e, &s, v) || !get_word(&rd, v[0], "autoaugment policy", policies, 3, &pol)) return -1;
        op->policy = (AutoAugmentPolicy)pol;
        if (v[1] && !get_int32(&rd, v[1], "autoaugment's fill", 0, 255, &op->fill)) return -1;
        break;
    }
    case TF_NORMALIZE: {
        static const char *const ps[] = {"mean", "std"};
        Spec s = {"normalize", ps, 2, 2};
        if (!bind(&rd, e, &s, v) || !get_mean_std(&rd, v[0], v[1], op)) return -1;
        break;
    }
    case TF_COUNT: break;
    }
    return 0;
}

int transforms_from_ops(AstExpr *const *ops, int n, TransformOp **out, int *n_out, Diag *d) {
    TransformOp *tf = xcalloc((size_t)(n > 0 ? n : 1), sizeof *tf);
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (transform_from_expr(ops[i], &tf[i], d)) bad++;
    for (int i = 0; i + 1 < n && !bad; i++)
        if (tf[i].kind == TF_NORMALIZE) {
            diag_error(d, ops[i]->loc, "normalize must be the last op of a pipeline (it turns the image into floats)");
            bad++;
        }
    if (bad) {
        free(tf);
        return -1;
    }
    free(*out);
    *out = tf;
    *n_out = n;
    return 0;
}

/* ---- sections ------------------------------------------------------------- */

/* Collects a section's settings, rejecting statements that are not settings
 * and keys given twice, and suggesting the right key for a misspelt one. */
static int section_settings(Reader *rd, const AstDecl *sec, const char *what, const char *const *keys, int n_keys,
                            const AstStmt **found) {
    for (int k = 0; k < n_keys; k++) found[k] = NULL;
    for (int i = 0; i < sec->body.n; i++) {
        const AstStmt *s = sec->body.items[i];
        if (s->kind != ST_SETTING && s->kind != ST_LET) {
            err(rd, s->loc, "only settings ('key value') are allowed in the %s section", what);
            continue;
        }
        int k = -1;
        for (int j = 0; j < n_keys; j++)
            if (!strcmp(keys[j], s->name)) k = j;
        if (k < 0) {
            const char *near = diag_closest(s->name, keys, n_keys);
            if (near) err(rd, s->name_loc, "unknown %s setting '%s'; did you mean '%s'?", what, s->name, near);
            else {
                StrBuf all = {0};
                for (int j = 0; j < n_keys; j++) sb_printf(&all, "%s%s", j ? ", " : "", keys[j]);
                err(rd, s->name_loc, "unknown %s setting '%s' (known: %s)", what, s->name, all.s);
                free(all.s);
            }
            continue;
        }
        if (found[k] && !s->overridden) {
            err(rd, s->name_loc, "'%s' is set twice in the %s section", s->name, what);
            diag_note(rd->d, found[k]->name_loc, "first set here");
            continue;
        }
        found[k] = s;
    }
    return 0;
}

static void read_data(Reader *rd, const AstDecl *sec, Recipe *r) {
    const AstStmt *v[COUNT(data_keys)];
    section_settings(rd, sec, "data", data_keys, COUNT(data_keys), v);
    if (v[0]) get_string(rd, v[0]->value, "root", &r->data_root);
    if (v[1]) {
        static const char *const layouts[] = {"imagefolder", "cifar10", "cifar100", "demo"};
        int k;
        if (get_word(rd, v[1]->value, "data layout", layouts, 4, &k)) r->layout = (DataLayout)k;
    }
    if (v[2]) get_string(rd, v[2]->value, "train_split", &r->train_split);
    if (v[3]) get_string(rd, v[3]->value, "val_split", &r->val_split);
    if (v[4]) get_string(rd, v[4]->value, "class_names", &r->class_names);
    if (v[5]) {
        static const char *const modes[] = {"decoded", "jpeg", "none"};
        int k;
        if (get_word(rd, v[5]->value, "cache mode", modes, 3, &k)) r->cache = (CacheMode)k;
    }
    if (v[6]) get_int32(rd, v[6]->value, "workers", 0, 1024, &r->workers);
    if (v[7]) get_bool(rd, v[7]->value, "drop_last", &r->drop_last);
}

static void read_optimizer(Reader *rd, const AstExpr *e, Recipe *r) {
    static const char *const kinds[] = {"sgd", "adam", "adamw"};
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc at = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    AstExpr word = {.kind = EX_NAME, .loc = at};
    word.v.name = name;
    int k;
    if (!name) { err(rd, e->loc, "optimizer expects sgd(...), adam(...) or adamw(...)"); return; }
    if (!get_word(rd, &word, "optimizer", kinds, 3, &k)) return;
    r->opt = (OptKind)k;
    /* Written optimizers take PyTorch's defaults for what they do not say. */
    r->lr = 1e-3;
    r->momentum = 0;
    r->nesterov = false;
    r->beta1 = 0.9; r->beta2 = 0.999;
    r->eps = 1e-8;
    r->weight_decay = r->opt == OPT_ADAMW ? 0.01 : 0;
    r->no_decay_bn_bias = false;
    static const char *const sgd_ps[] = {"lr", "momentum", "nesterov", "weight_decay", "no_decay_bn_bias"};
    static const char *const adam_ps[] = {"lr", "betas", "eps", "weight_decay", "no_decay_bn_bias"};
    Spec s = r->opt == OPT_SGD ? (Spec){"sgd", sgd_ps, 5, 1} : (Spec){kinds[k], adam_ps, 5, 0};
    const AstExpr *v[5];
    if (!bind(rd, e, &s, v)) return;
    double lr;
    if (v[0] && get_number(rd, v[0], "lr", &lr)) {
        if (!(lr > 0)) err(rd, v[0]->loc, "lr must be positive, not %g", lr);
        else r->lr = lr;
    }
    if (v[3]) get_range(rd, v[3], "weight_decay", 0, INFINITY, false, &r->weight_decay);
    if (v[4]) get_bool(rd, v[4], "no_decay_bn_bias", &r->no_decay_bn_bias);
    if (r->opt == OPT_SGD) {
        if (v[1]) get_range(rd, v[1], "momentum", 0, 1, true, &r->momentum);
        if (v[2]) get_bool(rd, v[2], "nesterov", &r->nesterov);
        if (r->nesterov && r->momentum <= 0) err(rd, v[2]->loc, "nesterov needs a positive momentum");
    } else {
        double betas[2];
        if (v[1] && get_numbers(rd, v[1], "betas", 2, 2, betas) == 2) {
            if (betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1)
                err(rd, v[1]->loc, "betas must be in [0, 1)");
            else { r->beta1 = betas[0]; r->beta2 = betas[1]; }
        }
        if (v[2] && get_range(rd, v[2], "eps", 0, INFINITY, false, &r->eps) && r->eps == 0)
            err(rd, v[2]->loc, "eps must be positive");
    }
}

static void read_schedule(Reader *rd, const AstExpr *e, Recipe *r) {
    static const char *const kinds[] = {"constant", "cosine", "step", "multistep"};
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc at = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    AstExpr word = {.kind = EX_NAME, .loc = at};
    word.v.name = name;
    int k;
    if (!name) { err(rd, e->loc, "schedule expects constant, cosine(...), step(...) or multistep(...)"); return; }
    if (!get_word(rd, &word, "schedule", kinds, 4, &k)) return;
    r->sched = (SchedKind)k;
    r->eta_min = 0;
    r->t_max = 0;
    r->gamma = 0.1;
    r->sched_per_step = false;
    const AstExpr *v[3];
    switch (r->sched) {
    case SCHED_CONSTANT: {
        Spec s = {"constant", NULL, 0, 0};
        bind(rd, e, &s, v);
        break;
    }
    case SCHED_COSINE: {
        static const char *const ps[] = {"eta_min", "t_max", "per_step"};
        Spec s = {"cosine", ps, 3, 0};
        if (!bind(rd, e, &s, v)) return;
        if (v[0]) get_range(rd, v[0], "eta_min", 0, INFINITY, false, &r->eta_min);
        if (v[1]) get_int32(rd, v[1], "t_max", 0, INT32_MAX, &r->t_max);
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    case SCHED_STEP: {
        static const char *const ps[] = {"step_size", "gamma", "per_step"};
        Spec s = {"step", ps, 3, 1};
        if (!bind(rd, e, &s, v)) return;
        get_int32(rd, v[0], "step_size", 1, INT32_MAX, &r->step_size);
        if (v[1] && get_range(rd, v[1], "gamma", 0, INFINITY, false, &r->gamma) && r->gamma == 0)
            err(rd, v[1]->loc, "gamma must be positive");
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    case SCHED_MULTISTEP: {
        static const char *const ps[] = {"milestones", "gamma", "per_step"};
        Spec s = {"multistep", ps, 3, 1};
        if (!bind(rd, e, &s, v)) return;
        double m[RXC_MAX_MILESTONES];
        int n = get_numbers(rd, v[0], "milestones", 1, RXC_MAX_MILESTONES, m);
        for (int i = 0; i < n; i++) {
            if (m[i] != floor(m[i]) || m[i] < 1 || m[i] > INT32_MAX || (i && m[i] <= m[i - 1])) {
                err(rd, v[0]->v.list.items[i]->loc, "milestones must be increasing positive integers");
                break;
            }
            r->milestones[i] = (int)m[i];
            r->n_milestones = i + 1;
        }
        if (v[1] && get_range(rd, v[1], "gamma", 0, INFINITY, false, &r->gamma) && r->gamma == 0)
            err(rd, v[1]->loc, "gamma must be positive");
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    }
}

static void read_train(Reader *rd, const AstDecl *sec, Recipe *r) {
    const AstStmt *v[COUNT(train_keys)];
    section_settings(rd, sec, "train", train_keys, COUNT(train_keys), v);
    int64_t i64;
    if (v[0]) get_int32(rd, v[0]->value, "epochs", 1, 1000000, &r->epochs);
    if (v[1]) get_int32(rd, v[1]->value, "batch", 1, 1 << 20, &r->batch);
    if (v[2]) get_int32(rd, v[2]->value, "accum", 1, 1 << 16, &r->accum_steps);
    if (v[3] && get_int(rd, v[3]->value, "seed", 0, INT64_MAX, &i64)) r->seed = (uint64_t)i64;
    if (v[4]) get_bool(rd, v[4]->value, "deterministic", &r->deterministic);
    if (v[5]) read_optimizer(rd, v[5]->value, r);
    if (v[6]) read_schedule(rd, v[6]->value, r);
    if (v[7]) {
        const AstExpr *e = v[7]->value;
        if (e->kind == EX_CALL || (e->kind == EX_NAME && !lookup_const(rd, e->v.name))) {
            static const char *const ps[] = {"epochs", "start"};
            Spec s = {"linear", ps, 2, 1};
            const AstExpr *w[2];
            const char *name = e->kind == EX_CALL ? e->v.call.callee : e->v.name;
            if (strcmp(name, "linear")) err(rd, e->loc, "warmup expects a number of epochs or linear(epochs, start=0.01)");
            else if (bind(rd, e, &s, w)) {
                get_int32(rd, w[0], "warmup epochs", 0, 1000000, &r->warmup_epochs);
                if (w[1]) get_range(rd, w[1], "warmup start", 0, 1, false, &r->warmup_start);
            }
        } else {
            get_int32(rd, e, "warmup", 0, 1000000, &r->warmup_epochs);
        }
    }
    if (v[8]) {
        const AstExpr *e = v[8]->value;
        static const char *const ps[] = {"label_smoothing"};
        Spec s = {"cross_entropy", ps, 1, 0};
        const AstExpr *w[1];
        const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : "";
        static const char *const losses[] = {"cross_entropy"};
        AstExpr word = {.kind = EX_NAME, .loc = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc};
        word.v.name = name;
        int k;
        if (e->kind != EX_CALL && e->kind != EX_NAME) err(rd, e->loc, "loss expects cross_entropy(label_smoothing=...)");
        else if (get_word(rd, &word, "loss", losses, 1, &k) && bind(rd, e, &s, w)) {
            r->label_smoothing = 0;
            if (w[0]) get_range(rd, w[0], "label_smoothing", 0, 1, true, &r->label_smoothing);
        }
    }
    if (v[9]) {
        static const char *const devices[] = {"auto", "cpu", "cuda"};
        int k;
        if (get_word(rd, v[9]->value, "device", devices, 3, &k)) r->device = (DeviceKind)k;
    }
    if (v[10]) {
        static const char *const precs[] = {"fp32", "tf32", "bf16"};
        int k;
        if (get_word(rd, v[10]->value, "precision", precs, 3, &k)) r->precision = (Precision)k;
    }
    if (v[11]) get_string(rd, v[11]->value, "run_dir", &r->run_dir);
    if (v[12]) get_int32(rd, v[12]->value, "log_every", 1, INT32_MAX, &r->log_every);
    if (v[13]) get_bool(rd, v[13]->value, "sync_bn", &r->sync_bn);
    if (r->sched == SCHED_MULTISTEP && v[0])
        for (int i = 0; i < r->n_milestones; i++)
            if (r->milestones[i] > r->epochs && !r->sched_per_step) {
                diag_warning(rd->d, v[6]->value->loc, "milestone %d is after the last epoch (%d)", r->milestones[i], r->epochs);
                break;
            }
}

int recipe_from_ast(const AstFile *f, Recipe *r, Diag *d) {
    Reader rd = {.ast = f, .d = d};
    const AstDecl *data = NULL, *train = NULL, *aug[2] = {NULL, NULL}, *net = NULL;
    for (int i = 0; i < f->n_decls; i++) {
        const AstDecl *dc = f->decls[i];
        const AstDecl **slot = NULL;
        const char *what = NULL;
        switch (dc->kind) {
        case DECL_DATA: slot = &data; what = "data section"; break;
        case DECL_TRAIN: slot = &train; what = "train section"; break;
        case DECL_NETWORK: if (!net) net = dc; break;
        case DECL_AUGMENT:
            if (!strcmp(dc->name, "train")) { slot = &aug[0]; what = "augment train pipeline"; }
            else if (!strcmp(dc->name, "val")) { slot = &aug[1]; what = "augment val pipeline"; }
            else {
                static const char *const splits[] = {"train", "val"};
                const char *near = diag_closest(dc->name, splits, 2);
                if (near) err(&rd, dc->name_loc, "unknown pipeline '%s'; did you mean '%s'?", dc->name, near);
                else err(&rd, dc->name_loc, "unknown pipeline '%s'; expected 'augment train:' or 'augment val:'", dc->name);
            }
            break;
        default: break;
        }
        if (!slot) continue;
        if (*slot) {
            err(&rd, dc->loc, "a second %s (there may be only one)", what);
            diag_note(d, (*slot)->loc, "the first is here");
            continue;
        }
        *slot = dc;
    }
    if (data) read_data(&rd, data, r);
    if (train) read_train(&rd, train, r);
    if (aug[0] && transforms_from_ops(aug[0]->ops, aug[0]->n_ops, &r->train_tf, &r->n_train_tf, d)) rd.errors++;
    if (aug[1] && transforms_from_ops(aug[1]->ops, aug[1]->n_ops, &r->val_tf, &r->n_val_tf, d)) rd.errors++;
    if (!r->run_dir) r->run_dir = xasprintf("runs/%s", net && net->name ? net->name : "model");
    return rd.errors;
}
