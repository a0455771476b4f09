/*
 * frontend.c — the front end's driver: reads a .net file, parses it,
 * splices in included files (relative to the including file; each file once;
 * cycles are errors), applies `--set NAME=VALUE` overrides to the tree, then
 * elaborates the network (elaborate.c) and fills the recipe (recipe.c).
 * Also: parsing one augmentation pipeline (rxc transform). Taking --set
 * options out of a command line is cli/cli_args.c's.
 */
#include "frontend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "util.h"

#include "elaborate.h"

enum { MAX_INCLUDE_DEPTH = 32 };
#define MAX_PARAMS ((int64_t)1 << 40)

typedef struct Loader {
    Diag *d;
    AstFile *ast;
    bool allow_includes;
    char *stack[MAX_INCLUDE_DEPTH + 1]; /* real paths of the files being expanded */
    int depth;
    char **seen;                         /* real paths of every file loaded: each once */
    int n_seen, cap_seen;
    AstDecl **out;                       /* the flat declaration list being built */
    int n_out, cap_out;
} Loader;

static void push_decl(Loader *ld, AstDecl *d) {
    GROW(ld->out, ld->cap_out, ld->n_out + 1);
    ld->out[ld->n_out++] = d;
}

/* "dir/of/including.net" + "blocks.net" -> "dir/of/blocks.net". */
static char *resolve_include(const char *including, const char *path) {
    if (path[0] == '/') return xstrdup(path);
    const char *slash = strrchr(including, '/');
    if (!slash) return xstrdup(path);
    return xasprintf("%.*s/%s", (int)(slash - including), including, path);
}

static void expand(Loader *ld, AstDecl **decls, int n, const char *file);

static void include_file(Loader *ld, const AstDecl *inc, const char *including) {
    if (!ld->allow_includes) {
        diag_error(ld->d, inc->name_loc, "includes are not allowed here");
        return;
    }
    if (!inc->name[0]) {
        diag_error(ld->d, inc->name_loc, "include needs a file name");
        return;
    }
    char *path = resolve_include(including, inc->name);
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        diag_error(ld->d, inc->name_loc, "cannot open included file '%s': %s", path, strerror(errno));
        free(path);
        return;
    }
    for (int i = 0; i < ld->depth; i++)
        if (!strcmp(ld->stack[i], real)) {
            diag_error(ld->d, inc->name_loc, "include cycle: '%s' includes itself (through '%s')", path, including);
            free(path);
            return;
        }
    for (int i = 0; i < ld->n_seen; i++)
        if (!strcmp(ld->seen[i], real)) { /* already loaded: its declarations are in */
            free(path);
            return;
        }
    if (ld->depth >= MAX_INCLUDE_DEPTH) {
        diag_error(ld->d, inc->name_loc, "includes are nested more than %d deep", MAX_INCLUDE_DEPTH);
        free(path);
        return;
    }
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        diag_error(ld->d, inc->name_loc, "cannot read included file '%s': %s", path, strerror(errno));
        free(path);
        return;
    }
    GROW(ld->seen, ld->cap_seen, ld->n_seen + 1);
    ld->seen[ld->n_seen++] = xstrdup(real);
    const char *name = diag_add_source(ld->d, path, text, len);
    AstFile part = {0};
    part.arena = ld->ast->arena;
    ast_parse_source(ld->d, name, text, len, &part);
    free(text);
    ld->stack[ld->depth++] = xstrdup(real);
    expand(ld, part.decls, part.n_decls, name);
    free(ld->stack[--ld->depth]);
    free(part.decls);
    free(path);
}

static void expand(Loader *ld, AstDecl **decls, int n, const char *file) {
    for (int i = 0; i < n; i++) {
        if (decls[i]->kind == DECL_INCLUDE) include_file(ld, decls[i], file);
        else push_decl(ld, decls[i]);
    }
}

/* ---- --set ---------------------------------------------------------------- */

static bool is_literal(const AstExpr *e) {
    switch (e->kind) {
    case EX_INT: case EX_FLOAT: case EX_STRING: case EX_BOOL: case EX_NAME: return true;
    case EX_UNARY: return e->v.unary.op == UN_NEG && (e->v.unary.x->kind == EX_INT || e->v.unary.x->kind == EX_FLOAT);
    case EX_LIST:
        for (int i = 0; i < e->v.list.n; i++)
            if (!is_literal(e->v.list.items[i])) return false;
        return true;
    default: return false;
    }
}

/* Folds `-3` into an int literal so consumers see plain values. */
static AstExpr *fold_negative(AstExpr *e) {
    if (e->kind == EX_UNARY && e->v.unary.op == UN_NEG) {
        AstExpr *x = e->v.unary.x;
        if (x->kind == EX_INT) { x->v.i = -x->v.i; x->loc = e->loc; return x; }
        if (x->kind == EX_FLOAT) { x->v.f = -x->v.f; x->loc = e->loc; return x; }
    }
    if (e->kind == EX_LIST)
        for (int i = 0; i < e->v.list.n; i++) e->v.list.items[i] = fold_negative(e->v.list.items[i]);
    return e;
}

static const char *kind_word(const AstExpr *e) {
    switch (e->kind) {
    case EX_INT: return "an integer";
    case EX_FLOAT: return "a float";
    case EX_STRING: return "a string";
    case EX_BOOL: return "true or false";
    case EX_NAME: return "a word";
    case EX_LIST: return "a list";
    case EX_CALL: return "a call";
    default: return "an expression";
    }
}

/* Whether `new` may replace `old`: the same kind of value, an int for a
 * float, a number for a computed number, a word for a call setting. */
static bool same_type(const AstExpr *old, const AstExpr *new) {
    switch (old->kind) {
    case EX_INT: return new->kind == EX_INT;
    case EX_FLOAT: return new->kind == EX_INT || new->kind == EX_FLOAT;
    case EX_STRING: return new->kind == EX_STRING;
    case EX_BOOL: return new->kind == EX_BOOL;
    case EX_LIST: return new->kind == EX_LIST;
    case EX_NAME: return new->kind == EX_NAME || new->kind == EX_CALL;
    case EX_CALL: return new->kind == EX_NAME || new->kind == EX_CALL;
    case EX_UNARY: case EX_BINARY: case EX_IF: case EX_INDEX:
        return new->kind == EX_INT || new->kind == EX_FLOAT || new->kind == EX_BOOL;
    default: return false;
    }
}

static AstDecl **section_slot(AstFile *f, AstDeclKind kind) {
    for (int i = 0; i < f->n_decls; i++)
        if (f->decls[i]->kind == kind) return &f->decls[i];
    return NULL;
}

static AstStmt *find_stmt(AstDecl *sec, const char *key, bool settings_only) {
    if (!sec) return NULL;
    AstStmt *found = NULL;
    for (int i = 0; i < sec->body.n; i++) {
        AstStmt *s = sec->body.items[i];
        if (s->kind == ST_SETTING && !strcmp(s->name, key)) return s;
        if (!settings_only && s->kind == ST_LET && !strcmp(s->name, key) && !found) found = s;
    }
    return found;
}

static void body_append(Arena *a, AstBody *b, AstStmt *s) {
    AstStmt **items = arena_alloc(a, (size_t)(b->n + 1) * sizeof *items);
    if (b->n) memcpy(items, b->items, (size_t)b->n * sizeof *items);
    items[b->n++] = s;
    b->items = items;
}

/* The data or train section, created when the file has none. */
static AstDecl *ensure_section(AstFile *f, AstDeclKind kind, SrcLoc at) {
    AstDecl **slot = section_slot(f, kind);
    if (slot) return *slot;
    AstDecl *d = arena_alloc(f->arena, sizeof *d);
    d->kind = kind;
    d->loc = d->name_loc = at;
    GROW(f->decls, f->cap_decls, f->n_decls + 1);
    f->decls[f->n_decls++] = d;
    return d;
}

static AstStmt *new_setting(AstFile *f, AstDecl *sec, const char *key, AstExpr *value, SrcLoc at) {
    AstStmt *s = arena_alloc(f->arena, sizeof *s);
    s->kind = ST_SETTING;
    s->loc = s->name_loc = at;
    s->name = arena_strdup(f->arena, key);
    s->value = value;
    s->overridden = true;
    body_append(f->arena, &sec->body, s);
    return s;
}

/* The default written form of a call setting that the file leaves out:
 * what recipe_defaults means, so that setting one argument changes only it. */
static AstExpr *default_call(AstFile *f, const char *setting, SrcLoc at) {
    const char *src = !strcmp(setting, "optimizer") ? "adamw(lr=1e-3, weight_decay=0)"
                      : !strcmp(setting, "schedule") ? "cosine(eta_min=1e-5)"
                                                     : "cross_entropy(label_smoothing=0.1)";
    Diag *quiet = diag_new(NULL);
    AstExpr *e = ast_parse_expr(quiet, at.file, src, strlen(src), at, f->arena);
    diag_free(quiet);
    return e;
}

/* Sets keyword argument `key` of the call in train setting `setting`. */
static void set_call_arg(AstFile *f, const char *setting, const char *key, AstExpr *value, SrcLoc at) {
    AstDecl *train = ensure_section(f, DECL_TRAIN, at);
    AstStmt *s = find_stmt(train, setting, false);
    if (!s) s = new_setting(f, train, setting, default_call(f, setting, at), at);
    AstExpr *call = s->value;
    if (call->kind == EX_NAME) { /* `schedule cosine` -> `schedule cosine(key=value)` */
        AstExpr *c = arena_alloc(f->arena, sizeof *c);
        c->kind = EX_CALL;
        c->loc = call->loc;
        c->v.call.callee = call->v.name;
        c->v.call.callee_loc = call->loc;
        s->value = call = c;
    }
    if (call->kind != EX_CALL) { /* a malformed setting: recipe.c reports it */
        return;
    }
    for (int i = 0; i < call->v.call.n_args; i++)
        if (call->v.call.args[i].key && !strcmp(call->v.call.args[i].key, key)) {
            call->v.call.args[i].value = value;
            return;
        }
    AstArg *args = arena_alloc(f->arena, (size_t)(call->v.call.n_args + 1) * sizeof *args);
    if (call->v.call.n_args) memcpy(args, call->v.call.args, (size_t)call->v.call.n_args * sizeof *args);
    args[call->v.call.n_args].key = arena_strdup(f->arena, key);
    args[call->v.call.n_args].loc = at;
    args[call->v.call.n_args].value = value;
    call->v.call.args = args;
    call->v.call.n_args++;
    s->overridden = true;
}

static bool in_list(const char *key, const char *const *list, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(key, list[i])) return true;
    return false;
}

/* Replaces a statement's value after checking the type. */
static void replace_value(Diag *d, AstStmt *s, AstExpr *value, const char *name, SrcLoc vloc) {
    if (!same_type(s->value, value)) {
        diag_error(d, vloc, "--set %s: expected %s like the file's value, got %s", name, kind_word(s->value), kind_word(value));
        diag_note(d, s->value->loc, "'%s' is set here", s->name);
        return;
    }
    s->value = value;
    s->overridden = true;
}

static void apply_set(AstFile *f, Diag *d, const char *name, AstExpr *value, SrcLoc nloc, SrcLoc vloc) {
    AstDecl **net_slot = section_slot(f, DECL_NETWORK);
    AstDecl *net = net_slot ? *net_slot : NULL;
    const char *dot = strchr(name, '.');
    char section[32] = "";
    const char *key = name;
    if (dot && dot - name < (long)sizeof section) {
        memcpy(section, name, (size_t)(dot - name));
        section[dot - name] = 0;
        key = dot + 1;
    }
    int n_train, n_data, n_opt, n_sched, n_loss;
    const char *const *train_keys = recipe_keys("train", &n_train);
    const char *const *data_keys = recipe_keys("data", &n_data);
    const char *const *opt_args = recipe_keys("optimizer", &n_opt);
    const char *const *sched_args = recipe_keys("schedule", &n_sched);
    const char *const *loss_args = recipe_keys("loss", &n_loss);
    bool any = !section[0];

    if (any || !strcmp(section, "network")) {
        AstStmt *s = find_stmt(net, key, false);
        if (s && (s->kind == ST_SETTING || is_literal(s->value))) { replace_value(d, s, value, name, vloc); return; }
    }
    if (any) {
        for (int i = f->n_decls - 1; i >= 0; i--)
            if (f->decls[i]->kind == DECL_CONST && !strcmp(f->decls[i]->name, key)) {
                replace_value(d, f->decls[i]->stmt, value, name, vloc);
                return;
            }
    }
    if ((any || !strcmp(section, "train")) && in_list(key, train_keys, n_train)) {
        AstDecl *train = ensure_section(f, DECL_TRAIN, nloc);
        AstStmt *s = find_stmt(train, key, false);
        if (s) replace_value(d, s, value, name, vloc);
        else new_setting(f, train, key, value, vloc);
        return;
    }
    if ((any || !strcmp(section, "data")) && in_list(key, data_keys, n_data)) {
        AstDecl *data = ensure_section(f, DECL_DATA, nloc);
        AstStmt *s = find_stmt(data, key, false);
        if (s) replace_value(d, s, value, name, vloc);
        else new_setting(f, data, key, value, vloc);
        return;
    }
    struct { const char *setting; const char *const *args; int n; } calls[] = {
        {"optimizer", opt_args, n_opt}, {"schedule", sched_args, n_sched}, {"loss", loss_args, n_loss}};
    for (int c = 0; c < 3; c++)
        if ((any || !strcmp(section, calls[c].setting)) && in_list(key, calls[c].args, calls[c].n)) {
            set_call_arg(f, calls[c].setting, key, value, vloc);
            return;
        }

    /* Unknown: suggest from everything that could have been meant. */
    const char **cands = NULL;
    int n = 0, cap = 0;
#define ADD(s) do { GROW(cands, cap, n + 1); cands[n++] = (s); } while (0)
    if (net)
        for (int i = 0; i < net->body.n; i++)
            if (net->body.items[i]->kind == ST_SETTING) ADD(net->body.items[i]->name);
    for (int i = 0; i < f->n_decls; i++)
        if (f->decls[i]->kind == DECL_CONST) ADD(f->decls[i]->name);
    for (int i = 0; i < n_train; i++) ADD(train_keys[i]);
    for (int i = 0; i < n_data; i++) ADD(data_keys[i]);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < calls[c].n; i++) ADD(calls[c].args[i]);
#undef ADD
    const char *near = diag_closest(key, cands, n);
    if (section[0] && strcmp(section, "network") && strcmp(section, "train") && strcmp(section, "data") &&
        strcmp(section, "optimizer") && strcmp(section, "schedule") && strcmp(section, "loss"))
    {
        static const char *const sections[] = {"network", "train", "data", "optimizer", "schedule", "loss"};
        const char *near_section = diag_closest(section, sections, 6);
        if (near_section) diag_error(d, nloc, "--set: unknown section '%s'; did you mean '%s'?", section, near_section);
        else diag_error(d, nloc, "--set: unknown section '%s' (known: network, train, data, optimizer, schedule, loss)", section);
    }
    else if (near) diag_error(d, nloc, "--set: the file has no setting '%s'; did you mean '%s'?", name, near);
    else diag_error(d, nloc, "--set: the file has no setting '%s' (--set changes network parameters, top-level constants and data/train settings)", name);
    free(cands);
}

/* Keys whose values are file names: their --set values may skip the quotes. */
static bool is_path_key(const char *name) {
    static const char *const keys[] = {"root", "train_split", "val_split", "class_names", "run_dir",
                                       "data.root", "data.train_split", "data.val_split", "data.class_names",
                                       "train.run_dir"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(name, keys[i])) return true;
    return false;
}

/* Applies every override. The overrides form one pseudo source,
 * "--set a=1 --set b=2", so that their errors point into it. */
static void apply_sets(AstFile *f, Diag *d, const LoadOptions *opt) {
    if (!opt || opt->n_sets == 0) return;
    StrBuf line = {0};
    int *name_col = xcalloc((size_t)opt->n_sets, sizeof(int));
    int *value_col = xcalloc((size_t)opt->n_sets, sizeof(int));
    for (int i = 0; i < opt->n_sets; i++) {
        if (i) sb_putc(&line, ' ');
        sb_puts(&line, "--set ");
        name_col[i] = (int)line.len + 1;
        sb_printf(&line, "%s=", opt->sets[i].name);
        value_col[i] = (int)line.len + 1;
        sb_puts(&line, opt->sets[i].value);
    }
    const char *src = diag_add_source(d, "<command line>", line.s, line.len);
    for (int i = 0; i < opt->n_sets; i++) {
        SrcLoc nloc = {src, 1, name_col[i]}, vloc = {src, 1, value_col[i]};
        const char *name = opt->sets[i].name, *val = opt->sets[i].value;
        if (!name[0]) { diag_error(d, nloc, "--set needs NAME=VALUE"); continue; }
        if (!val[0]) { diag_error(d, vloc, "--set %s: the value is missing", name); continue; }
        AstExpr *v;
        if (is_path_key(name) && val[0] != '"') {
            /* `--set root=data/digits`: paths need no quotes on a command line. */
            v = arena_alloc(f->arena, sizeof *v);
            v->kind = EX_STRING;
            v->loc = vloc;
            v->v.s = arena_strdup(f->arena, val);
        } else {
            v = ast_parse_expr(d, src, val, strlen(val), vloc, f->arena);
        }
        if (!v) continue;
        if (!is_literal(v) && v->kind != EX_CALL) {
            diag_error(d, vloc, "--set %s: the value must be a literal (a number, string, list, true/false or a word)", name);
            continue;
        }
        v = fold_negative(v);
        apply_set(f, d, arena_strdup(f->arena, name), v, nloc, vloc);
    }
    free(name_col);
    free(value_col);
    free(line.s);
}

/* ---- loading -------------------------------------------------------------- */

static AstFile *parse_all(const char *name, const char *text, size_t len, bool allow_includes, Diag *d) {
    const char *src = diag_add_source(d, name, text, len);
    AstFile *f = ast_file_new(src);
    AstFile top = {0};
    top.arena = f->arena;
    ast_parse_source(d, src, text, len, &top);
    Loader ld = {.d = d, .ast = f, .allow_includes = allow_includes};
    char real[PATH_MAX];
    if (allow_includes && realpath(name, real)) {
        ld.stack[ld.depth++] = xstrdup(real);
        GROW(ld.seen, ld.cap_seen, 1);
        ld.seen[ld.n_seen++] = xstrdup(real);
    }
    expand(&ld, top.decls, top.n_decls, src);
    free(top.decls);
    for (int i = 0; i < ld.depth; i++) free(ld.stack[i]);
    for (int i = 0; i < ld.n_seen; i++) free(ld.seen[i]);
    free(ld.seen);
    f->decls = ld.out;
    f->n_decls = ld.n_out;
    f->cap_decls = ld.cap_out;
    return f;
}

int frontend_load_text(const char *name, const char *text, size_t len, const LoadOptions *opt, bool allow_includes,
                       Diag *d, Model *out) {
    memset(out, 0, sizeof *out);
    AstFile *f = parse_all(name, text, len, allow_includes, d);
    apply_sets(f, d, opt);
    const AstDecl *net = ast_find_decl(f, DECL_NETWORK, NULL);
    Graph *g = NULL;
    /* Elaborating a file with syntax errors would only report their echoes. */
    if (diag_errors(d) == 0) {
        if (!net) {
            SrcLoc at = {f->path, 1, 1};
            diag_error(d, at, "the file declares no network (expected 'network NAME { ... }')");
        } else {
            g = elaborate(f, d);
            /* A backstop for absurd sizes: later passes count bytes in int64. */
            if (g && (graph_param_count(g) < 0 || graph_param_count(g) > MAX_PARAMS || graph_macs(g) < 0)) {
                diag_error(d, net->name_loc, "network '%s' is absurdly large: its parameter or MAC count overflows "
                           "(the limit is 2^40 parameters)", net->name);
                graph_free(g);
                g = NULL;
            }
        }
    }
    Recipe r;
    recipe_defaults(&r);
    if (net || diag_errors(d) == 0) recipe_from_ast(f, &r, d);
    if (diag_errors(d) > 0 || !g) {
        if (g) graph_free(g);
        recipe_free(&r);
        ast_free(f);
        return LOAD_BAD_FILE;
    }
    StrBuf resolved = {0};
    ast_print(f, &resolved);
    out->path = xstrdup(name);
    out->graph = g;
    out->recipe = r;
    out->resolved_text = resolved.s ? resolved.s : xstrdup("");
    StrBuf hashed = {0};
    ast_print_omitting(f, recipe_run_only_setting, &hashed);
    sha256_hex(hashed.s ? hashed.s : "", hashed.len, out->source_sha256);
    free(hashed.s);
    ast_free(f);
    return LOAD_OK;
}

int model_load(const char *path, const LoadOptions *opt, Model *out) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        fprintf(stderr, "rxc: cannot read '%s': %s\n", path, strerror(errno));
        return LOAD_IO_ERROR;
    }
    Diag *d = diag_new(stderr);
    int rc = frontend_load_text(path, text, len, opt, true, d, out);
    if (rc != LOAD_OK && diag_errors(d) > 1)
        fprintf(stderr, "rxc: %d error%s in %s\n", diag_errors(d), diag_errors(d) == 1 ? "" : "s", path);
    diag_free(d);
    free(text);
    return rc;
}

void model_free(Model *m) {
    if (!m) return;
    free(m->path);
    if (m->graph) graph_free(m->graph);
    recipe_free(&m->recipe);
    free(m->resolved_text);
    memset(m, 0, sizeof *m);
}

int augment_parse(const char *text, TransformOp **ops, int *n_ops, Error *err) {
    Diag *d = diag_new(NULL);
    const char *src = diag_add_source(d, "pipeline", text, strlen(text));
    Arena *a = arena_new();
    AstExpr **exprs = NULL;
    int n = ast_parse_pipeline(d, src, text, strlen(text), a, &exprs);
    int rc = -1;
    *ops = NULL;
    *n_ops = 0;
    if (n > 0 && diag_errors(d) == 0 && transforms_from_ops(exprs, n, ops, n_ops, d) == 0) rc = 0;
    if (rc != 0) {
        const char *first = diag_first(d);
        error_set(err, "%s", first ? first : "pipeline: error: empty pipeline");
    }
    arena_free(a);
    diag_free(d);
    return rc;
}
