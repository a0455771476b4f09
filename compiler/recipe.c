/*
 * recipe.c — the training run of a .net file: defaults (the seed's recipe),
 * and filling and checking a Recipe from the data, augment and train
 * sections of the AST. Every key, word and value is checked here, with the
 * location of the offending text and a "did you mean" for misspellings.
 * The value readers (recipe_read.h) serve recipe_augment.c's pipelines too.
 */
#include "recipe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "recipe_read.h"
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
    r->mix_prob = 1.0;
    r->mix_switch_prob = 0.5;
    r->ema_every = 1;
    r->sched = SCHED_COSINE;
    r->eta_min = 1e-5;
    r->gamma = 0.1;
    r->warmup_start = 0.01;
    r->label_smoothing = 0.1;
    r->device = DEVICE_AUTO;
    r->device_index = -1;
    r->precision = PREC_AUTO;
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
    [TF_AUTOAUGMENT] = "autoaugment", [TF_NORMALIZE] = "normalize", [TF_RANDAUGMENT] = "randaugment",
    [TF_TRIVIALAUGMENT] = "trivialaugment", [TF_RANDOM_ERASING] = "random_erasing",
};

static const char *const precision_names[] = {"fp32", "tf32", "bf16", "auto"}; /* Precision's order */

const char *precision_name(Precision p) { return (unsigned)p <= PREC_AUTO ? precision_names[p] : "?"; }

static const char *const recompute_names[] = {"auto", "none", "blocks", "stages"}; /* Recompute's order */
const char *recompute_name(Recompute r) { return (unsigned)r <= RECOMPUTE_STAGES ? recompute_names[r] : "?"; }

const char *transform_name(TransformKind k) {
    return (unsigned)k < TF_COUNT ? transform_names[k] : "?";
}

/* ---- keys ----------------------------------------------------------------- */

static const char *const data_keys[] = {"root", "layout", "train_split", "val_split", "class_names",
                                        "cache", "workers", "drop_last"};
static const char *const train_keys[] = {"epochs", "batch", "accum", "seed", "deterministic", "optimizer",
                                         "schedule", "warmup", "loss", "device", "precision", "run_dir",
                                         "log_every", "clip_grad_norm", "mixup", "cutmix", "mix_prob",
                                         "mix_switch_prob", "sync_bn", "ema", "ema_every", "recompute"};
static const char *const optimizer_args[] = {"lr", "momentum", "nesterov", "weight_decay", "betas", "eps",
                                             "no_decay_bn_bias", "max_grad_norm", "trust_clip", "always_adapt"};
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

void read_error(Reader *rd, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(rd->d, loc, fmt, ap);
    va_end(ap);
    rd->errors++;
}

const AstExpr *lookup_const(const Reader *rd, const char *name) {
    const AstExpr *found = NULL;
    for (int i = 0; i < rd->ast->n_decls; i++) {
        const AstDecl *d = rd->ast->decls[i];
        if (d->kind == DECL_CONST && !strcmp(d->name, name)) found = d->stmt->value;
    }
    return found;
}

/* Evaluates a numeric constant expression. Returns 0 (ok), or -1 when e is
 * not a number (nothing reported: the caller says what it expected). */
int eval_number(Reader *rd, const AstExpr *e, double *v, bool *is_int) {
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

bool get_number(Reader *rd, const AstExpr *e, const char *what, double *out) {
    bool is_int;
    if (eval_number(rd, e, out, &is_int)) {
        read_error(rd, e->loc, "%s expects a number", what);
        return false;
    }
    return true;
}

bool get_int(Reader *rd, const AstExpr *e, const char *what, int64_t lo, int64_t hi, int64_t *out) {
    double v;
    bool is_int;
    if (eval_number(rd, e, &v, &is_int) || (!is_int && v != floor(v))) {
        read_error(rd, e->loc, "%s expects an integer", what);
        return false;
    }
    if (v < (double)lo || v > (double)hi) {
        if (hi >= INT32_MAX) read_error(rd, e->loc, "%s must be at least %lld, not %.15g", what, (long long)lo, v);
        else read_error(rd, e->loc, "%s must be between %lld and %lld, not %.15g", what, (long long)lo, (long long)hi, v);
        return false;
    }
    *out = (int64_t)v;
    return true;
}

bool get_int32(Reader *rd, const AstExpr *e, const char *what, int lo, int hi, int *out) {
    int64_t v;
    if (!get_int(rd, e, what, lo, hi, &v)) return false;
    *out = (int)v;
    return true;
}

/* A number in [lo, hi] (closed) or [lo, hi) when hi_open. */
bool get_range(Reader *rd, const AstExpr *e, const char *what, double lo, double hi, bool hi_open, double *out) {
    double v;
    if (!get_number(rd, e, what, &v)) return false;
    if (v < lo || v > hi || (hi_open && v == hi)) {
        if (isinf(hi)) read_error(rd, e->loc, "%s must be at least %g, not %g", what, lo, v);
        else read_error(rd, e->loc, "%s must be in [%g, %g%c, not %g", what, lo, hi, hi_open ? ')' : ']', v);
        return false;
    }
    *out = v;
    return true;
}

bool get_bool(Reader *rd, const AstExpr *e, const char *what, bool *out) {
    if (e->kind == EX_BOOL) { *out = e->v.b; return true; }
    if (e->kind == EX_NAME) {
        const AstExpr *c = lookup_const(rd, e->v.name);
        if (c && c->kind == EX_BOOL) { *out = c->v.b; return true; }
    }
    read_error(rd, e->loc, "%s expects true or false", what);
    return false;
}

bool get_string(Reader *rd, const AstExpr *e, const char *what, char **out) {
    const AstExpr *s = e;
    if (s->kind == EX_NAME) {
        const AstExpr *c = lookup_const(rd, s->v.name);
        if (c) s = c;
    }
    if (s->kind != EX_STRING) {
        read_error(rd, e->loc, "%s expects a string in double quotes", what);
        return false;
    }
    free(*out);
    *out = xstrdup(s->v.s);
    return true;
}

/* A word from a fixed set: `layout imagefolder`, `device cuda`. */
bool get_word(Reader *rd, const AstExpr *e, const char *what, const char *const *words, int n, int *out) {
    if (e->kind == EX_NAME) {
        for (int i = 0; i < n; i++)
            if (!strcmp(e->v.name, words[i])) { *out = i; return true; }
        const char *near = diag_closest(e->v.name, words, n);
        StrBuf all = {0};
        for (int i = 0; i < n; i++) sb_printf(&all, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", words[i]);
        if (near) read_error(rd, e->loc, "unknown %s '%s'; did you mean '%s'?", what, e->v.name, near);
        else read_error(rd, e->loc, "unknown %s '%s'; expected %s", what, e->v.name, all.s);
        free(all.s);
        return false;
    }
    StrBuf all = {0};
    for (int i = 0; i < n; i++) sb_printf(&all, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "", words[i]);
    read_error(rd, e->loc, "%s expects one of %s", what, all.s);
    free(all.s);
    return false;
}

/* A list of numbers of a fixed or bounded length. */
int get_numbers(Reader *rd, const AstExpr *e, const char *what, int min_n, int max_n, double *out) {
    if (e->kind != EX_LIST) {
        if (min_n == max_n) read_error(rd, e->loc, "%s expects a list of %d numbers", what, min_n);
        else read_error(rd, e->loc, "%s expects a list of numbers", what);
        return -1;
    }
    int n = e->v.list.n;
    if (n < min_n || n > max_n) {
        if (min_n == max_n) read_error(rd, e->loc, "%s expects a list of %d numbers, not %d", what, min_n, n);
        else read_error(rd, e->loc, "%s expects %d to %d numbers, not %d", what, min_n, max_n, n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!get_number(rd, e->v.list.items[i], what, &out[i])) return -1;
    return n;
}

/* ---- calls: `adamw(lr=1e-3)`, `random_crop(224, padding=4)` -------------- */

/* Binds a call's arguments to the spec's parameters (positional first, then
 * keywords). A bare word (`hflip`, `constant`) is a call without arguments. */
bool bind_call(Reader *rd, const AstExpr *e, const Spec *s, const AstExpr **vals) {
    for (int i = 0; i < s->n_params; i++) vals[i] = NULL;
    bool ok = true;
    if (e->kind == EX_CALL) {
        if (e->v.call.label) {
            read_error(rd, e->v.call.label->loc, "a label is not allowed here");
            ok = false;
        }
        int pos = 0;
        for (int a = 0; a < e->v.call.n_args; a++) {
            const AstArg *arg = &e->v.call.args[a];
            int slot = -1;
            if (!arg->key) {
                if (pos >= s->n_params) {
                    read_error(rd, arg->loc, "%s takes at most %d argument%s, but %d were given", s->name, s->n_params,
                        s->n_params == 1 ? "" : "s", e->v.call.n_args);
                    return false;
                }
                slot = pos++;
            } else {
                for (int i = 0; i < s->n_params; i++)
                    if (!strcmp(arg->key, s->params[i])) slot = i;
                if (slot < 0) {
                    const char *near = diag_closest(arg->key, s->params, s->n_params);
                    if (near) read_error(rd, arg->loc, "%s has no argument '%s'; did you mean '%s'?", s->name, arg->key, near);
                    else if (s->n_params == 0) read_error(rd, arg->loc, "%s takes no arguments", s->name);
                    else {
                        StrBuf all = {0};
                        for (int i = 0; i < s->n_params; i++) sb_printf(&all, "%s%s", i ? ", " : "", s->params[i]);
                        read_error(rd, arg->loc, "%s has no argument '%s' (it has %s)", s->name, arg->key, all.s);
                        free(all.s);
                    }
                    ok = false;
                    continue;
                }
            }
            if (vals[slot]) {
                read_error(rd, arg->loc, "argument '%s' of %s is given twice", s->params[slot], s->name);
                ok = false;
                continue;
            }
            vals[slot] = arg->value;
        }
    } else if (e->kind != EX_NAME) {
        read_error(rd, e->loc, "expected %s or a call like %s(...)", s->name, s->name);
        return false;
    }
    for (int i = 0; i < s->n_required; i++)
        if (!vals[i]) {
            read_error(rd, e->kind == EX_CALL ? e->v.call.callee_loc : e->loc, "%s needs the argument '%s'", s->name, s->params[i]);
            ok = false;
        }
    return ok;
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
            read_error(rd, s->loc, "only settings ('key value') are allowed in the %s section", what);
            continue;
        }
        int k = -1;
        for (int j = 0; j < n_keys; j++)
            if (!strcmp(keys[j], s->name)) k = j;
        if (k < 0) {
            const char *near = diag_closest(s->name, keys, n_keys);
            if (near) read_error(rd, s->name_loc, "unknown %s setting '%s'; did you mean '%s'?", what, s->name, near);
            else {
                StrBuf all = {0};
                for (int j = 0; j < n_keys; j++) sb_printf(&all, "%s%s", j ? ", " : "", keys[j]);
                read_error(rd, s->name_loc, "unknown %s setting '%s' (known: %s)", what, s->name, all.s);
                free(all.s);
            }
            continue;
        }
        if (found[k] && !s->overridden) {
            read_error(rd, s->name_loc, "'%s' is set twice in the %s section", s->name, what);
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

/* lamb's own settings, timm's Lamb arguments (v: lamb's spec order). */
static void read_lamb_settings(Reader *rd, const AstExpr *const *v, Recipe *r) {
    if (v[5]) get_range(rd, v[5], "max_grad_norm", 0, INFINITY, false, &r->max_grad_norm);
    if (v[6]) get_bool(rd, v[6], "trust_clip", &r->trust_clip);
    if (v[7]) get_bool(rd, v[7], "always_adapt", &r->always_adapt);
}

static void read_optimizer(Reader *rd, const AstExpr *e, Recipe *r) {
    static const char *const kinds[] = {"sgd", "adam", "adamw", "lamb"};
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc at = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    AstExpr word = {.kind = EX_NAME, .loc = at};
    word.v.name = name;
    int k;
    if (!name) { read_error(rd, e->loc, "optimizer expects sgd(...), adam(...), adamw(...) or lamb(...)"); return; }
    if (!get_word(rd, &word, "optimizer", kinds, 4, &k)) return;
    r->opt = (OptKind)k;
    /* Written optimizers take PyTorch's defaults for what they do not say
     * (lamb: timm's Lamb's). */
    r->lr = 1e-3;
    r->momentum = 0;
    r->nesterov = false;
    r->beta1 = 0.9; r->beta2 = 0.999;
    r->eps = r->opt == OPT_LAMB ? 1e-6 : 1e-8;
    r->weight_decay = r->opt == OPT_ADAMW || r->opt == OPT_LAMB ? 0.01 : 0;
    r->no_decay_bn_bias = false;
    r->max_grad_norm = r->opt == OPT_LAMB ? 1.0 : 0;
    r->trust_clip = r->always_adapt = false;
    static const char *const sgd_ps[] = {"lr", "momentum", "nesterov", "weight_decay", "no_decay_bn_bias"};
    static const char *const adam_ps[] = {"lr", "betas", "eps", "weight_decay", "no_decay_bn_bias",
                                          "max_grad_norm", "trust_clip", "always_adapt"};
    Spec s = r->opt == OPT_SGD ? (Spec){"sgd", sgd_ps, 5, 1}
             : r->opt == OPT_LAMB ? (Spec){"lamb", adam_ps, 8, 0}
                                  : (Spec){kinds[k], adam_ps, 5, 0};
    const AstExpr *v[8];
    if (!bind_call(rd, e, &s, v)) return;
    double lr;
    if (v[0] && get_number(rd, v[0], "lr", &lr)) {
        if (!(lr > 0)) read_error(rd, v[0]->loc, "lr must be positive, not %g", lr);
        else r->lr = lr;
    }
    if (v[3]) get_range(rd, v[3], "weight_decay", 0, INFINITY, false, &r->weight_decay);
    if (v[4]) get_bool(rd, v[4], "no_decay_bn_bias", &r->no_decay_bn_bias);
    if (r->opt == OPT_SGD) {
        if (v[1]) get_range(rd, v[1], "momentum", 0, 1, true, &r->momentum);
        if (v[2]) get_bool(rd, v[2], "nesterov", &r->nesterov);
        if (r->nesterov && r->momentum <= 0) read_error(rd, v[2]->loc, "nesterov needs a positive momentum");
    } else {
        double betas[2];
        if (v[1] && get_numbers(rd, v[1], "betas", 2, 2, betas) == 2) {
            if (betas[0] < 0 || betas[0] >= 1 || betas[1] < 0 || betas[1] >= 1)
                read_error(rd, v[1]->loc, "betas must be in [0, 1)");
            else { r->beta1 = betas[0]; r->beta2 = betas[1]; }
        }
        if (v[2] && get_range(rd, v[2], "eps", 0, INFINITY, false, &r->eps) && r->eps == 0)
            read_error(rd, v[2]->loc, "eps must be positive");
        if (r->opt == OPT_LAMB) read_lamb_settings(rd, v, r);
    }
}

static void read_schedule(Reader *rd, const AstExpr *e, Recipe *r) {
    static const char *const kinds[] = {"constant", "cosine", "step", "multistep"};
    const char *name = e->kind == EX_CALL ? e->v.call.callee : e->kind == EX_NAME ? e->v.name : NULL;
    SrcLoc at = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc;
    AstExpr word = {.kind = EX_NAME, .loc = at};
    word.v.name = name;
    int k;
    if (!name) { read_error(rd, e->loc, "schedule expects constant, cosine(...), step(...) or multistep(...)"); return; }
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
        bind_call(rd, e, &s, v);
        break;
    }
    case SCHED_COSINE: {
        static const char *const ps[] = {"eta_min", "t_max", "per_step"};
        Spec s = {"cosine", ps, 3, 0};
        if (!bind_call(rd, e, &s, v)) return;
        if (v[0]) get_range(rd, v[0], "eta_min", 0, INFINITY, false, &r->eta_min);
        if (v[1]) get_int32(rd, v[1], "t_max", 0, INT32_MAX, &r->t_max);
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    case SCHED_STEP: {
        static const char *const ps[] = {"step_size", "gamma", "per_step"};
        Spec s = {"step", ps, 3, 1};
        if (!bind_call(rd, e, &s, v)) return;
        get_int32(rd, v[0], "step_size", 1, INT32_MAX, &r->step_size);
        if (v[1] && get_range(rd, v[1], "gamma", 0, INFINITY, false, &r->gamma) && r->gamma == 0)
            read_error(rd, v[1]->loc, "gamma must be positive");
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    case SCHED_MULTISTEP: {
        static const char *const ps[] = {"milestones", "gamma", "per_step"};
        Spec s = {"multistep", ps, 3, 1};
        if (!bind_call(rd, e, &s, v)) return;
        double m[RXC_MAX_MILESTONES];
        int n = get_numbers(rd, v[0], "milestones", 1, RXC_MAX_MILESTONES, m);
        for (int i = 0; i < n; i++) {
            if (m[i] != floor(m[i]) || m[i] < 1 || m[i] > INT32_MAX || (i && m[i] <= m[i - 1])) {
                read_error(rd, v[0]->v.list.items[i]->loc, "milestones must be increasing positive integers");
                break;
            }
            r->milestones[i] = (int)m[i];
            r->n_milestones = i + 1;
        }
        if (v[1] && get_range(rd, v[1], "gamma", 0, INFINITY, false, &r->gamma) && r->gamma == 0)
            read_error(rd, v[1]->loc, "gamma must be positive");
        if (v[2]) get_bool(rd, v[2], "per_step", &r->sched_per_step);
        break;
    }
    }
}

/* `warmup N` (epochs), or linear(...) / constant(...) with epochs or steps. */
static void read_warmup(Reader *rd, const AstExpr *e, Recipe *r) {
    if (e->kind != EX_CALL && !(e->kind == EX_NAME && !lookup_const(rd, e->v.name))) {
        get_int32(rd, e, "warmup", 0, 1000000, &r->warmup_epochs);
        return;
    }
    static const char *const kinds[] = {"linear", "constant"};
    static const char *const linear_ps[] = {"epochs", "start", "steps", "lr_init", "prefix"};
    static const char *const constant_ps[] = {"epochs", "factor", "steps", "prefix"};
    AstExpr word = {.kind = EX_NAME, .loc = e->kind == EX_CALL ? e->v.call.callee_loc : e->loc};
    word.v.name = e->kind == EX_CALL ? e->v.call.callee : e->v.name;
    int k;
    if (!get_word(rd, &word, "warmup", kinds, 2, &k)) return;
    r->warmup_kind = (WarmupKind)k;
    Spec s = k == WARMUP_LINEAR ? (Spec){"linear", linear_ps, 5, 0} : (Spec){"constant", constant_ps, 4, 0};
    const AstExpr *w[5];
    if (!bind_call(rd, e, &s, w)) return;
    const AstExpr *prefix = w[k == WARMUP_LINEAR ? 4 : 3];
    if (!w[0] == !w[2]) {
        read_error(rd, word.loc, "%s warmup needs its length in either epochs or steps (one of them)", kinds[k]);
        return;
    }
    if (w[0]) get_int32(rd, w[0], "warmup epochs", 0, 1000000, &r->warmup_epochs);
    if (w[2]) get_int32(rd, w[2], "warmup steps", 0, INT32_MAX, &r->warmup_steps);
    if (w[1]) get_range(rd, w[1], k == WARMUP_LINEAR ? "warmup start" : "warmup factor", 0, 1, false, &r->warmup_start);
    if (k == WARMUP_LINEAR && w[3]) {
        if (w[1]) read_error(rd, w[3]->loc, "linear warmup takes start (a factor) or lr_init (a learning rate), not both");
        else r->warmup_from_lr_init = get_range(rd, w[3], "warmup lr_init", 0, INFINITY, false, &r->warmup_lr_init);
    }
    bool starts_after = true;
    if (prefix && get_bool(rd, prefix, "warmup prefix", &starts_after)) r->warmup_overlaps = !starts_after;
}

/* A setting that may also be written as a call of its own name, as
 * `ema(decay=0.9998, every=1)` or `mixup(alpha=0.2)`: binds that call's
 * arguments to s; `key value` is the first parameter alone. */
static bool setting_call(Reader *rd, const AstStmt *st, const Spec *s, const AstExpr **vals) {
    const AstExpr *e = st->value;
    if (e->kind == EX_CALL && !strcmp(e->v.call.callee, st->name)) return bind_call(rd, e, s, vals);
    vals[0] = e;
    for (int i = 1; i < s->n_params; i++) vals[i] = NULL;
    return true;
}

/* ema DECAY [ema_every N], or ema(decay=DECAY, every=N) */
static void read_ema(Reader *rd, const AstStmt *ema, const AstStmt *every, Recipe *r) {
    static const char *const ps[] = {"decay", "every"};
    Spec s = {"ema", ps, 2, 1};
    const AstExpr *w[2] = {NULL, NULL};
    if (ema && !setting_call(rd, ema, &s, w)) return;
    if (w[0] && get_number(rd, w[0], "ema", &r->ema_decay) && !(r->ema_decay > 0 && r->ema_decay < 1)) {
        read_error(rd, w[0]->loc, "ema (the decay) must be in (0, 1), not %g", r->ema_decay);
        r->ema_decay = 0;
    }
    if (w[1] && every) {
        read_error(rd, every->name_loc, "ema's every is given twice: as ema(every=...) and as ema_every");
        return;
    }
    const AstExpr *n = w[1] ? w[1] : every ? every->value : NULL;
    if (n && get_int32(rd, n, "ema_every", 1, INT32_MAX, &r->ema_every) && !ema)
        read_error(rd, n->loc, "ema_every needs ema (the decay), e.g. `ema 0.9998`");
}

/* mixup ALPHA or mixup(alpha=ALPHA); the same for cutmix */
static void read_mix_alpha(Reader *rd, const AstStmt *st, const char *what, double *alpha) {
    static const char *const ps[] = {"alpha"};
    Spec s = {st->name, ps, 1, 1};
    const AstExpr *w[1];
    if (setting_call(rd, st, &s, w)) get_range(rd, w[0], what, 0, INFINITY, false, alpha);
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
    if (v[7]) read_warmup(rd, v[7]->value, r);
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
        if (e->kind != EX_CALL && e->kind != EX_NAME) read_error(rd, e->loc, "loss expects cross_entropy(label_smoothing=...)");
        else if (get_word(rd, &word, "loss", losses, 1, &k) && bind_call(rd, e, &s, w)) {
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
        int k;
        if (get_word(rd, v[10]->value, "precision", precision_names, 4, &k)) r->precision = (Precision)k;
    }
    if (v[11]) get_string(rd, v[11]->value, "run_dir", &r->run_dir);
    if (v[12]) get_int32(rd, v[12]->value, "log_every", 1, INT32_MAX, &r->log_every);
    if (v[13] && get_range(rd, v[13]->value, "clip_grad_norm", 0, INFINITY, false, &r->clip_grad_norm) &&
        r->clip_grad_norm == 0)
        read_error(rd, v[13]->value->loc, "clip_grad_norm must be positive (leave it out for no clipping)");
    if (v[14]) read_mix_alpha(rd, v[14], "mixup's alpha", &r->mixup_alpha);
    if (v[15]) read_mix_alpha(rd, v[15], "cutmix's alpha", &r->cutmix_alpha);
    if (v[16]) get_range(rd, v[16]->value, "mix_prob", 0, 1, false, &r->mix_prob);
    if (v[17]) get_range(rd, v[17]->value, "mix_switch_prob", 0, 1, false, &r->mix_switch_prob);
    if (r->warmup_steps && !r->sched_per_step && r->sched != SCHED_CONSTANT)
        read_error(rd, v[7]->value->loc, "warmup in steps needs a per-step schedule (per_step=true)");
    if (v[18]) get_bool(rd, v[18]->value, "sync_bn", &r->sync_bn);
    if (v[19] || v[20]) read_ema(rd, v[19], v[20], r);
    if (v[21]) {
        int k;
        if (get_word(rd, v[21]->value, "recompute", recompute_names, 4, &k)) r->recompute = (Recompute)k;
    }
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
                if (near) read_error(&rd, dc->name_loc, "unknown pipeline '%s'; did you mean '%s'?", dc->name, near);
                else read_error(&rd, dc->name_loc, "unknown pipeline '%s'; expected 'augment train:' or 'augment val:'", dc->name);
            }
            break;
        default: break;
        }
        if (!slot) continue;
        if (*slot) {
            read_error(&rd, dc->loc, "a second %s (there may be only one)", what);
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
