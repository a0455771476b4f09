/*
 * elaborate.c — evaluates the network section of a parsed .net file into the
 * graph IR (see elaborate.h and docs/language.md).
 *
 * Owns: the value model (ints, floats, bools, strings, lists, tensors),
 * scoping (block frames over network parameters and top-level constants),
 * arithmetic with overflow checks, conditionals, loops, block calls with
 * recursion detection, the primitive-op and builtin tables with their
 * argument checking, layer naming (labels, scopes, per-kind numbering), and
 * the unused/undefined-name checks.
 *
 * Errors: every problem is reported once at its location; the value of a
 * failed expression is a poison value that later operations pass on without
 * reporting again, so one mistake does not cascade into many messages.
 */
#include "elaborate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *const elaborate_op_names[] = {
    "conv", "batchnorm", "relu", "sigmoid", "add", "mul", "maxpool", "avgpool",
    "global_avgpool", "flatten", "dropout", "linear", "concat", NULL,
};
const char *const elaborate_builtin_names[] = {
    "len", "min", "max", "sum", "int", "float", "channels", "spatial", "range", NULL,
};

/* Bounds that keep hostile or mistaken files (and the fuzzer) from running
 * for minutes: far above any real network. */
enum {
    MAX_STEPS = 1000000,     /* statements and calls executed */
    MAX_NODES = 200000,      /* graph nodes */
    MAX_LIST = 1 << 20,      /* list elements */
    MAX_LIST_BYTES = 256 << 20, /* all lists made while elaborating */
    MAX_CALL_DEPTH = 64,     /* nested block calls */
    MAX_LOOP_NEST = 32,
};

/* ---- values ----------------------------------------------------------------- */

typedef enum ValKind {
    V_ERR,      /* poison: an error was reported already */
    V_NONE,     /* a block that returned nothing */
    V_INT,
    V_FLOAT,
    V_BOOL,
    V_STR,
    V_LIST,
    V_TENSOR,
    V_BRANCH,   /* a name bound in only one branch of an if (i: the if's line) */
} ValKind;

typedef struct Value {
    ValKind k;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        struct { struct Value *items; int n; } list;
        int tensor;
    } u;
} Value;

static const Value VERR = {.k = V_ERR};

static Value vint(int64_t i) { return (Value){.k = V_INT, .u.i = i}; }
static Value vfloat(double f) { return (Value){.k = V_FLOAT, .u.f = f}; }
static Value vbool(bool b) { return (Value){.k = V_BOOL, .u.b = b}; }
static Value vtensor(int id) { return (Value){.k = V_TENSOR, .u.tensor = id}; }

static const char *kind_name(ValKind k) {
    switch (k) {
    case V_ERR: return "an error";
    case V_NONE: return "nothing";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_BOOL: return "a bool";
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_TENSOR: return "a tensor";
    case V_BRANCH: return "a name bound in one branch";
    }
    return "?";
}

/* ---- binding sites: what the unused-name check reads ------------------------ */

typedef enum SiteKind { SITE_LET, SITE_PARAM, SITE_NETPARAM, SITE_CONST } SiteKind;

typedef struct Site {
    const void *key; /* the AstStmt, AstParam or AstDecl */
    SiteKind kind;
    const char *name;
    const char *block; /* SITE_PARAM: the block's name */
    SrcLoc loc;
    bool executed, used;
    bool overwritten; /* rebound before any read: a default such as `s = x` */
} Site;

/* Open-addressing pointer -> Site table. Sites are allocated one by one:
 * bindings keep Site pointers across later insertions, so growing the table
 * must never move a Site. */
typedef struct SiteTable {
    Site **slots;
    int cap, n;
} SiteTable;

static uint64_t ptr_hash(const void *p) { return splitmix64((uint64_t)(uintptr_t)p); }

static Site *site_get(SiteTable *t, const void *key, SiteKind kind, const char *name, SrcLoc loc) {
    if ((t->n + 1) * 2 > t->cap) {
        int ncap = t->cap ? t->cap * 2 : 64;
        Site **ns = xcalloc((size_t)ncap, sizeof *ns);
        for (int i = 0; i < t->cap; i++) {
            if (!t->slots[i]) continue;
            uint64_t h = ptr_hash(t->slots[i]->key) & (uint64_t)(ncap - 1);
            while (ns[h]) h = (h + 1) & (uint64_t)(ncap - 1);
            ns[h] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    uint64_t h = ptr_hash(key) & (uint64_t)(t->cap - 1);
    while (t->slots[h] && t->slots[h]->key != key) h = (h + 1) & (uint64_t)(t->cap - 1);
    if (!t->slots[h]) {
        t->slots[h] = xmalloc(sizeof(Site));
        *t->slots[h] = (Site){.key = key, .kind = kind, .name = name, .loc = loc};
        t->n++;
    }
    return t->slots[h];
}

static void site_table_free(SiteTable *t) {
    for (int i = 0; i < t->cap; i++) free(t->slots[i]);
    free(t->slots);
}

/* ---- string set / counters (layer names, numbering) ------------------------- */

typedef struct StrMap {
    char **keys;
    int *vals;
    int cap, n;
} StrMap;

static int *strmap_slot(StrMap *m, const char *key, bool create) {
    if (create && (m->n + 1) * 2 > m->cap) {
        int ncap = m->cap ? m->cap * 2 : 256;
        char **nk = xcalloc((size_t)ncap, sizeof *nk);
        int *nv = xcalloc((size_t)ncap, sizeof *nv);
        for (int i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            uint64_t h = fnv1a64(m->keys[i], strlen(m->keys[i]), FNV1A64_INIT) & (uint64_t)(ncap - 1);
            while (nk[h]) h = (h + 1) & (uint64_t)(ncap - 1);
            nk[h] = m->keys[i];
            nv[h] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    if (!m->cap) return NULL;
    uint64_t h = fnv1a64(key, strlen(key), FNV1A64_INIT) & (uint64_t)(m->cap - 1);
    while (m->keys[h]) {
        if (strcmp(m->keys[h], key) == 0) return &m->vals[h];
        h = (h + 1) & (uint64_t)(m->cap - 1);
    }
    if (!create) return NULL;
    m->keys[h] = xstrdup(key);
    m->vals[h] = 0;
    m->n++;
    return &m->vals[h];
}

static void strmap_free(StrMap *m) {
    for (int i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

/* ---- frames ------------------------------------------------------------------ */

typedef struct Binding {
    const char *name;
    Value v;
    Site *site; /* NULL for loop variables and the input tensor */
} Binding;

typedef struct Frame {
    Binding *b;
    int n, cap;
    const char *block;        /* NULL: the network body */
    int loops[MAX_LOOP_NEST]; /* iteration counters of the enclosing for loops */
    int n_loops;
} Frame;

typedef struct BlockInfo {
    const AstDecl *decl;
    bool called, active;
} BlockInfo;

typedef struct Elab {
    const AstFile *ast;
    const AstDecl *net;
    Diag *d;
    Graph *g;
    Arena *arena;          /* lists and strings made while evaluating */
    Frame globals;         /* top-level constants and network parameters */
    BlockInfo *blocks;
    int n_blocks;
    SiteTable sites;
    StrMap layers;         /* full names of layers with parameters */
    StrMap counters;       /* "<scope>\x01<kind>" -> last number given */
    StrMap scopes;         /* scopes opened by labelled block calls */
    char *scope;           /* current scope path, "" at network level */
    const BlockInfo *stack[MAX_CALL_DEPTH];
    int depth;
    long steps;
    bool budget_reported;
    int64_t list_bytes;
    SrcLoc last_loc;       /* the statement being run, for budget messages */
    InitKind conv_init;
    int errors0;
} Elab;

static int frame_find(const Frame *f, const char *name) {
    for (int i = f->n - 1; i >= 0; i--)
        if (strcmp(f->b[i].name, name) == 0) return i;
    return -1;
}

static void frame_set(Frame *f, const char *name, Value v, Site *site) {
    int i = frame_find(f, name);
    if (i < 0) {
        GROW(f->b, f->cap, f->n + 1);
        i = f->n++;
    }
    f->b[i] = (Binding){.name = name, .v = v, .site = site};
}

static void frame_remove(Frame *f, const char *name) {
    int i = frame_find(f, name);
    if (i < 0) return;
    memmove(&f->b[i], &f->b[i + 1], (size_t)(f->n - i - 1) * sizeof *f->b);
    f->n--;
}

/* ---- small helpers ------------------------------------------------------------ */

static bool over_budget(Elab *e, SrcLoc loc) {
    if (++e->steps <= MAX_STEPS && e->g->n_nodes <= MAX_NODES) return false;
    if (!e->budget_reported) {
        diag_error(e->d, loc, "the network is too large to elaborate (more than %d steps or %d graph nodes)",
                   MAX_STEPS, MAX_NODES);
        e->budget_reported = true;
    }
    return true;
}

static const BlockInfo *find_block(const Elab *e, const char *name) {
    for (int i = 0; i < e->n_blocks; i++)
        if (strcmp(e->blocks[i].decl->name, name) == 0) return &e->blocks[i];
    return NULL;
}

static bool in_list(const char *const *list, const char *name) {
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0) return true;
    return false;
}

static bool is_main_file(const Elab *e, SrcLoc loc) {
    return loc.file && e->ast->path && strcmp(loc.file, e->ast->path) == 0;
}

/* Appends ", did you mean 'x'?" candidates from the frames into a message. */
static const char *suggest_name(Elab *e, const Frame *f, const char *word) {
    int n = f->n + e->globals.n;
    const char **cands = xmalloc((size_t)(n + 1) * sizeof *cands);
    int k = 0;
    for (int i = 0; i < f->n; i++) cands[k++] = f->b[i].name;
    if (f != &e->globals)
        for (int i = 0; i < e->globals.n; i++) cands[k++] = e->globals.b[i].name;
    const char *best = diag_closest(word, cands, k);
    free(cands);
    return best;
}

static const char *suggest_callee(Elab *e, const char *word) {
    int n = e->n_blocks + 32;
    const char **cands = xmalloc((size_t)n * sizeof *cands);
    int k = 0;
    for (int i = 0; elaborate_op_names[i]; i++) cands[k++] = elaborate_op_names[i];
    for (int i = 0; elaborate_builtin_names[i]; i++) cands[k++] = elaborate_builtin_names[i];
    for (int i = 0; i < e->n_blocks; i++) cands[k++] = e->blocks[i].decl->name;
    const char *best = diag_closest(word, cands, k);
    free(cands);
    return best;
}

/* ---- forward declarations ------------------------------------------------------ */

typedef enum Flow { FLOW_NEXT, FLOW_RETURN } Flow;

static Value eval(Elab *e, Frame *f, const AstExpr *x, const char *bind_hint);
static Flow exec_body(Elab *e, Frame *f, const AstBody *body, Value *ret);

/* ---- conversions with messages --------------------------------------------------- */

static void format_value(const Value *v, char *buf, size_t len) {
    switch (v->k) {
    case V_INT: snprintf(buf, len, "%lld", (long long)v->u.i); break;
    case V_FLOAT: snprintf(buf, len, "%g", v->u.f); break;
    case V_BOOL: snprintf(buf, len, "%s", v->u.b ? "true" : "false"); break;
    case V_STR: snprintf(buf, len, "\"%s\"", v->u.s); break;
    default: snprintf(buf, len, "%s", kind_name(v->k)); break;
    }
}

/* An int, or a float with an integral value. */
static bool to_int(Elab *e, Value v, SrcLoc loc, const char *what, int64_t *out) {
    if (v.k == V_ERR) return false;
    if (v.k == V_INT) {
        *out = v.u.i;
        return true;
    }
    if (v.k == V_FLOAT && v.u.f == floor(v.u.f) && fabs(v.u.f) < 9e18) {
        *out = (int64_t)v.u.f;
        return true;
    }
    char buf[64];
    format_value(&v, buf, sizeof buf);
    if (v.k == V_FLOAT) diag_error(e->d, loc, "%s must be an int, got %s", what, buf);
    else diag_error(e->d, loc, "%s must be an int, got %s", what, kind_name(v.k));
    return false;
}

/* An int that fits the graph's int fields, within [lo, hi]. */
static bool to_int_range(Elab *e, Value v, SrcLoc loc, const char *what, int64_t lo, int64_t hi, int *out) {
    int64_t i;
    if (!to_int(e, v, loc, what, &i)) return false;
    if (i < lo || i > hi) {
        if (hi == INT32_MAX) diag_error(e->d, loc, "%s must be at least %lld, got %lld", what, (long long)lo, (long long)i);
        else diag_error(e->d, loc, "%s must be between %lld and %lld, got %lld", what, (long long)lo, (long long)hi,
                        (long long)i);
        return false;
    }
    *out = (int)i;
    return true;
}

static bool to_float(Elab *e, Value v, SrcLoc loc, const char *what, double *out) {
    if (v.k == V_ERR) return false;
    if (v.k == V_FLOAT) *out = v.u.f;
    else if (v.k == V_INT) *out = (double)v.u.i;
    else {
        diag_error(e->d, loc, "%s must be a number, got %s", what, kind_name(v.k));
        return false;
    }
    return true;
}

static bool to_bool(Elab *e, Value v, SrcLoc loc, const char *what, bool *out) {
    if (v.k == V_ERR) return false;
    if (v.k != V_BOOL) {
        diag_error(e->d, loc, "%s must be a bool (true or false), got %s", what, kind_name(v.k));
        return false;
    }
    *out = v.u.b;
    return true;
}

static bool to_tensor(Elab *e, Value v, SrcLoc loc, const char *what, int *out) {
    if (v.k == V_ERR) return false;
    if (v.k != V_TENSOR) {
        diag_error(e->d, loc, "%s must be a tensor, got %s", what, kind_name(v.k));
        return false;
    }
    *out = v.u.tensor;
    return true;
}

/* An int, or a pair [h, w] of ints, each in [lo, hi]. */
static bool to_pair(Elab *e, Value v, SrcLoc loc, const char *what, int64_t lo, int out[2]) {
    if (v.k == V_LIST) {
        if (v.u.list.n != 2) {
            diag_error(e->d, loc, "%s must be an int or a pair [h, w], got a list of %d", what, v.u.list.n);
            return false;
        }
        return to_int_range(e, v.u.list.items[0], loc, what, lo, INT32_MAX, &out[0]) &&
               to_int_range(e, v.u.list.items[1], loc, what, lo, INT32_MAX, &out[1]);
    }
    if (!to_int_range(e, v, loc, what, lo, INT32_MAX, &out[0])) return false;
    out[1] = out[0];
    return true;
}

/* ---- argument binding for ops, builtins and blocks -------------------------------- */

typedef struct ArgSpec {
    const char *name;
    bool required;
} ArgSpec;

#define MAX_ARGS 16

typedef struct Args {
    Value v[MAX_ARGS];
    SrcLoc loc[MAX_ARGS];
    bool given[MAX_ARGS];
} Args;

/* Evaluates every argument (also after a mistake, so names are marked as
 * used) and matches them to spec. Returns false after reporting. */
static bool bind_args(Elab *e, Frame *f, const AstExpr *call, const ArgSpec *spec, int n_spec, Args *a) {
    const char *callee = call->v.call.callee;
    bool ok = true;
    int pos = 0;
    memset(a, 0, sizeof *a);
    for (int i = 0; i < call->v.call.n_args; i++) {
        const AstArg *arg = &call->v.call.args[i];
        Value v = eval(e, f, arg->value, NULL);
        if (v.k == V_ERR) ok = false;
        int slot = -1;
        if (!arg->key) {
            if (pos >= n_spec) {
                if (ok) diag_error(e->d, arg->loc, "too many arguments to %s (it takes at most %d)", callee, n_spec);
                ok = false;
                continue;
            }
            slot = pos++;
        } else {
            for (int k = 0; k < n_spec; k++)
                if (strcmp(spec[k].name, arg->key) == 0) slot = k;
            if (slot < 0) {
                const char *names[MAX_ARGS];
                for (int k = 0; k < n_spec; k++) names[k] = spec[k].name;
                const char *best = diag_closest(arg->key, names, n_spec);
                if (best) diag_error(e->d, arg->loc, "%s has no argument '%s'; did you mean '%s'?", callee, arg->key, best);
                else diag_error(e->d, arg->loc, "%s has no argument '%s'", callee, arg->key);
                ok = false;
                continue;
            }
            if (a->given[slot]) {
                diag_error(e->d, arg->loc, "argument '%s' of %s is given twice", arg->key, callee);
                ok = false;
                continue;
            }
        }
        a->v[slot] = v;
        a->loc[slot] = arg->loc;
        a->given[slot] = true;
    }
    if (!ok) return false;
    for (int k = 0; k < n_spec; k++)
        if (spec[k].required && !a->given[k]) {
            diag_error(e->d, call->v.call.callee_loc, "%s needs argument '%s'", callee, spec[k].name);
            ok = false;
        }
    return ok;
}

/* ---- layer naming -------------------------------------------------------------------- */

/* Evaluates a label's parts into text; NULL after reporting. */
static char *label_text(Elab *e, Frame *f, const AstLabel *label) {
    StrBuf b = {0};
    bool ok = true;
    for (int i = 0; i < label->n_parts; i++) {
        const AstLabelPart *p = &label->parts[i];
        if (p->text) {
            sb_puts(&b, p->text);
            continue;
        }
        Value v = eval(e, f, p->expr, NULL);
        if (v.k == V_INT) sb_printf(&b, "%lld", (long long)v.u.i);
        else if (v.k == V_STR) sb_puts(&b, v.u.s);
        else {
            if (v.k != V_ERR)
                diag_error(e->d, p->expr->loc, "a label interpolation must be an int or a string, got %s", kind_name(v.k));
            ok = false;
        }
    }
    char *s = sb_take(&b);
    if (ok && (s[0] == 0 || s[0] == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))) {
        diag_error(e->d, label->loc, "label '%s' is not a valid layer name (empty parts)", s);
        ok = false;
    }
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

static char *join_scope(const char *scope, const char *local) {
    return scope[0] ? xasprintf("%s.%s", scope, local) : xstrdup(local);
}

/* The full name of a new layer with parameters of kind `prefix` (conv, bn,
 * fc): its label, or the next free number of its kind in the scope. */
static char *new_layer_name(Elab *e, Frame *f, const AstExpr *call, const char *prefix) {
    if (call->v.call.label) {
        char *local = label_text(e, f, call->v.call.label);
        if (!local) return NULL;
        char *full = join_scope(e->scope, local);
        free(local);
        if (strmap_slot(&e->layers, full, false)) {
            /* Reported here rather than by the graph so that the caret
             * points at the label that repeats the name. */
            diag_error(e->d, call->v.call.label->loc, "parameter name '%s.weight' is used twice", full);
            free(full);
            return NULL;
        }
        *strmap_slot(&e->layers, full, true) = 1;
        return full;
    }
    char *key = xasprintf("%s\x01%s", e->scope, prefix);
    int *counter = strmap_slot(&e->counters, key, true);
    free(key);
    for (;;) {
        int k = ++*counter;
        char local[64];
        snprintf(local, sizeof local, "%s%d", prefix, k);
        char *full = join_scope(e->scope, local);
        if (!strmap_slot(&e->layers, full, false)) {
            *strmap_slot(&e->layers, full, true) = 1;
            return full;
        }
        free(full);
    }
}

/* A label on a parameter-free op only names the node. */
static void name_plain_node(Elab *e, Frame *f, const AstExpr *call, int id) {
    if (!call->v.call.label || id < 0) return;
    char *local = label_text(e, f, call->v.call.label);
    if (!local) return;
    free(e->g->nodes[id].name);
    e->g->nodes[id].name = join_scope(e->scope, local);
    free(local);
}

/* ---- primitive ops --------------------------------------------------------------------- */

static Value op_result(Elab *e, const AstExpr *call, int id, const char *err) {
    if (id < 0) {
        diag_error(e->d, call->v.call.callee_loc, "%s", err);
        return VERR;
    }
    return vtensor(id);
}

static Value op_conv(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true},       {"out", true},     {"k", true},     {"stride", false},
                                   {"padding", false}, {"groups", false}, {"bias", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 7, &a)) return VERR;
    int x = -1, out = 0, k[2] = {0, 0}, s[2] = {1, 1}, p[2] = {0, 0}, groups = 1;
    bool bias = false;
    bool ok = to_tensor(e, a.v[0], a.loc[0], "conv input", &x);
    ok = to_int_range(e, a.v[1], a.loc[1], "conv output channels", 1, INT32_MAX, &out) && ok;
    ok = to_pair(e, a.v[2], a.loc[2], "conv kernel size", 1, k) && ok;
    if (a.given[3]) ok = to_pair(e, a.v[3], a.loc[3], "conv stride", 1, s) && ok;
    if (a.given[4]) ok = to_pair(e, a.v[4], a.loc[4], "conv padding", 0, p) && ok;
    else if (ok) p[0] = k[0] / 2, p[1] = k[1] / 2;
    if (a.given[5]) ok = to_int_range(e, a.v[5], a.loc[5], "conv groups", 1, INT32_MAX, &groups) && ok;
    if (a.given[6]) ok = to_bool(e, a.v[6], a.loc[6], "conv bias", &bias) && ok;
    if (!ok) return VERR;
    char *name = new_layer_name(e, f, call, "conv");
    if (!name) return VERR;
    char err[256];
    int id = graph_conv2d(e->g, name, x, out, k[0], k[1], s[0], s[1], p[0], p[1], groups, bias, e->conv_init,
                          call->v.call.callee_loc, err, sizeof err);
    free(name);
    return op_result(e, call, id, err);
}

static Value op_batchnorm(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"eps", false}, {"momentum", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 3, &a)) return VERR;
    int x = -1;
    double eps = 1e-5, momentum = 0.1;
    bool ok = to_tensor(e, a.v[0], a.loc[0], "batchnorm input", &x);
    if (a.given[1]) ok = to_float(e, a.v[1], a.loc[1], "batchnorm eps", &eps) && ok;
    if (a.given[2]) ok = to_float(e, a.v[2], a.loc[2], "batchnorm momentum", &momentum) && ok;
    if (!ok) return VERR;
    char *name = new_layer_name(e, f, call, "bn");
    if (!name) return VERR;
    char err[256];
    int id = graph_batchnorm(e->g, name, x, (float)eps, (float)momentum, call->v.call.callee_loc, err, sizeof err);
    free(name);
    return op_result(e, call, id, err);
}

static Value op_linear(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"out", true}, {"bias", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 3, &a)) return VERR;
    int x = -1, out = 0;
    bool bias = true;
    bool ok = to_tensor(e, a.v[0], a.loc[0], "linear input", &x);
    ok = to_int_range(e, a.v[1], a.loc[1], "linear output features", 1, INT32_MAX, &out) && ok;
    if (a.given[2]) ok = to_bool(e, a.v[2], a.loc[2], "linear bias", &bias) && ok;
    if (!ok) return VERR;
    char err[256];
    const Node *in = &e->g->nodes[x];
    if (in->rank == 3 && in->dim[0] == 1 && in->dim[1] == 1) {
        /* A {1,1,C} map (after global_avgpool) is flattened implicitly. */
        x = graph_unary(e->g, OP_FLATTEN, x, call->v.call.callee_loc, err, sizeof err);
        if (x < 0) return op_result(e, call, x, err);
    }
    char *name = new_layer_name(e, f, call, "fc");
    if (!name) return VERR;
    InitKind init = INIT_PYTORCH_DEFAULT; /* torchvision's ResNets keep nn.Linear's default too */
    int id = graph_linear(e->g, name, x, out, bias, init, call->v.call.callee_loc, err, sizeof err);
    free(name);
    return op_result(e, call, id, err);
}

static Value op_unary(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"x", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 1, &a)) return VERR;
    int x = -1;
    char what[64];
    snprintf(what, sizeof what, "%s input", call->v.call.callee);
    if (!to_tensor(e, a.v[0], a.loc[0], what, &x)) return VERR;
    char err[256];
    int id = graph_unary(e->g, op, x, call->v.call.callee_loc, err, sizeof err);
    name_plain_node(e, f, call, id);
    return op_result(e, call, id, err);
}

static Value binary_tensor(Elab *e, OpKind op, int a, int b, SrcLoc loc) {
    char err[256];
    int id = graph_binary(e->g, op, a, b, loc, err, sizeof err);
    if (id < 0) {
        diag_error(e->d, loc, "%s", err);
        return VERR;
    }
    return vtensor(id);
}

static Value op_binary(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"a", true}, {"b", true}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1, y = -1;
    bool ok = to_tensor(e, a.v[0], a.loc[0], "first operand", &x);
    ok = to_tensor(e, a.v[1], a.loc[1], "second operand", &y) && ok;
    if (!ok) return VERR;
    Value r = binary_tensor(e, op, x, y, call->v.call.callee_loc);
    if (r.k == V_TENSOR) name_plain_node(e, f, call, r.u.tensor);
    return r;
}

static Value op_pool(Elab *e, Frame *f, const AstExpr *call, OpKind op) {
    static const ArgSpec spec[] = {{"x", true},       {"k", true},         {"stride", false},
                                   {"padding", false}, {"ceil_mode", false}, {"count_include_pad", false}};
    int n_spec = op == OP_AVGPOOL ? 6 : 5;
    Args a;
    if (!bind_args(e, f, call, spec, n_spec, &a)) return VERR;
    int x = -1, k[2] = {0, 0}, s[2] = {0, 0}, p[2] = {0, 0};
    bool ceil_mode = false, count_include_pad = true;
    const char *nm = call->v.call.callee;
    char what[64];
    snprintf(what, sizeof what, "%s input", nm);
    bool ok = to_tensor(e, a.v[0], a.loc[0], what, &x);
    snprintf(what, sizeof what, "%s kernel size", nm);
    ok = to_pair(e, a.v[1], a.loc[1], what, 1, k) && ok;
    if (a.given[2]) {
        snprintf(what, sizeof what, "%s stride", nm);
        ok = to_pair(e, a.v[2], a.loc[2], what, 1, s) && ok;
    } else if (ok) {
        s[0] = k[0], s[1] = k[1];
    }
    if (a.given[3]) {
        snprintf(what, sizeof what, "%s padding", nm);
        ok = to_pair(e, a.v[3], a.loc[3], what, 0, p) && ok;
    }
    if (a.given[4]) ok = to_bool(e, a.v[4], a.loc[4], "ceil_mode", &ceil_mode) && ok;
    if (n_spec > 5 && a.given[5]) ok = to_bool(e, a.v[5], a.loc[5], "count_include_pad", &count_include_pad) && ok;
    if (!ok) return VERR;
    PoolAttr pa = {.kh = k[0], .kw = k[1], .sh = s[0], .sw = s[1], .ph = p[0], .pw = p[1],
                   .ceil_mode = ceil_mode, .count_include_pad = count_include_pad};
    char err[256];
    int id = graph_pool(e->g, op, x, &pa, call->v.call.callee_loc, err, sizeof err);
    name_plain_node(e, f, call, id);
    return op_result(e, call, id, err);
}

static Value op_dropout(Elab *e, Frame *f, const AstExpr *call) {
    static const ArgSpec spec[] = {{"x", true}, {"p", false}};
    Args a;
    if (!bind_args(e, f, call, spec, 2, &a)) return VERR;
    int x = -1;
    double p = 0.5;
    bool ok = to_tensor(e, a.v[0], a.loc[0], "dropout input", &x);
    if (a.given[1]) ok = to_float(e, a.v[1], a.loc[1], "dropout probability", &p) && ok;
    if (!ok) return VERR;
    char err[256];
    int id = graph_dropout(e->g, x, (float)p, a.given[1] ? a.loc[1] : call->v.call.callee_loc, err, sizeof err);
    if (id < 0) {
        diag_error(e->d, a.given[1] ? a.loc[1] : call->v.call.callee_loc, "%s", err);
        return VERR;
    }
    name_plain_node(e, f, call, id);
    return vtensor(id);
}

static Value op_concat(Elab *e, Frame *f, const AstExpr *call) {
    int n = call->v.call.n_args;
    Value *vals = xmalloc((size_t)(n ? n : 1) * sizeof *vals);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const AstArg *arg = &call->v.call.args[i];
        vals[i] = eval(e, f, arg->value, NULL);
        if (arg->key) {
            diag_error(e->d, arg->loc, "concat takes tensors or one list of tensors, not '%s='", arg->key);
            ok = false;
        }
        if (vals[i].k == V_ERR) ok = false;
    }
    Value r = VERR;
    if (ok) {
        const Value *items = vals;
        int count = n;
        SrcLoc loc = n ? call->v.call.args[0].loc : call->v.call.callee_loc;
        if (n == 1 && vals[0].k == V_LIST) {
            items = vals[0].u.list.items;
            count = vals[0].u.list.n;
        }
        int *ids = xmalloc((size_t)(count ? count : 1) * sizeof *ids);
        for (int i = 0; i < count && ok; i++) {
            SrcLoc li = n == count ? call->v.call.args[i].loc : loc;
            ok = to_tensor(e, items[i], li, "concat input", &ids[i]);
        }
        if (ok) {
            char err[256];
            int id = graph_concat(e->g, ids, count, call->v.call.callee_loc, err, sizeof err);
            name_plain_node(e, f, call, id);
            r = op_result(e, call, id, err);
        }
        free(ids);
    }
    free(vals);
    return r;
}

/* ---- builtins ------------------------------------------------------------------------ */

/* A new list of n elements, or poison once the lists made so far exceed the
 * memory budget (a loop that grows a list quadratically). */
static Value list_value(Elab *e, int n) {
    e->list_bytes += (int64_t)(n ? n : 1) * (int64_t)sizeof(Value);
    if (e->list_bytes > MAX_LIST_BYTES) {
        if (!e->budget_reported)
            diag_error(e->d, e->last_loc, "the network uses too much memory to elaborate (lists of more than %d MiB)",
                       MAX_LIST_BYTES >> 20);
        e->budget_reported = true;
        return VERR;
    }
    Value v = {.k = V_LIST};
    v.u.list.n = n;
    v.u.list.items = arena_alloc(e->arena, (size_t)(n ? n : 1) * sizeof(Value));
    return v;
}

static Value builtin_call(Elab *e, Frame *f, const AstExpr *call) {
    const char *nm = call->v.call.callee;
    SrcLoc loc = call->v.call.callee_loc;
    int n = call->v.call.n_args;
    Value vals[MAX_ARGS];
    bool ok = true;
    if (n > MAX_ARGS) {
        diag_error(e->d, loc, "too many arguments to %s", nm);
        return VERR;
    }
    for (int i = 0; i < n; i++) {
        const AstArg *arg = &call->v.call.args[i];
        vals[i] = eval(e, f, arg->value, NULL);
        if (vals[i].k == V_ERR) ok = false;
        if (arg->key) {
            diag_error(e->d, arg->loc, "%s takes no keyword arguments", nm);
            ok = false;
        }
    }
    if (!ok) return VERR;
    SrcLoc a0 = n ? call->v.call.args[0].loc : loc;

    if (!strcmp(nm, "min") || !strcmp(nm, "max") || !strcmp(nm, "sum")) {
        const Value *items = vals;
        int count = n;
        if (n == 1 && vals[0].k == V_LIST) {
            items = vals[0].u.list.items;
            count = vals[0].u.list.n;
        } else if (!strcmp(nm, "sum")) {
            diag_error(e->d, loc, "sum takes one list");
            return VERR;
        }
        if (count == 0 && strcmp(nm, "sum") != 0) {
            diag_error(e->d, loc, "%s of nothing", nm);
            return VERR;
        }
        bool all_int = true;
        for (int i = 0; i < count; i++) {
            if (items[i].k != V_INT && items[i].k != V_FLOAT) {
                diag_error(e->d, a0, "%s takes numbers, got %s", nm, kind_name(items[i].k));
                return VERR;
            }
            if (items[i].k != V_INT) all_int = false;
        }
        if (!strcmp(nm, "sum")) {
            if (all_int) {
                int64_t s = 0;
                for (int i = 0; i < count; i++)
                    if (__builtin_add_overflow(s, items[i].u.i, &s)) {
                        diag_error(e->d, loc, "integer overflow in sum");
                        return VERR;
                    }
                return vint(s);
            }
            double s = 0;
            for (int i = 0; i < count; i++) s += items[i].k == V_INT ? (double)items[i].u.i : items[i].u.f;
            return vfloat(s);
        }
        bool want_max = !strcmp(nm, "max");
        Value best = items[0];
        for (int i = 1; i < count; i++) {
            double a = best.k == V_INT ? (double)best.u.i : best.u.f;
            double b = items[i].k == V_INT ? (double)items[i].u.i : items[i].u.f;
            if (want_max ? b > a : b < a) best = items[i];
        }
        return best;
    }
    if (n != (strcmp(nm, "range") == 0 ? 2 : 1)) {
        diag_error(e->d, loc, "%s takes %d argument%s, got %d", nm, strcmp(nm, "range") == 0 ? 2 : 1,
                   strcmp(nm, "range") == 0 ? "s" : "", n);
        return VERR;
    }
    if (!strcmp(nm, "len")) {
        if (vals[0].k == V_LIST) return vint(vals[0].u.list.n);
        if (vals[0].k == V_STR) return vint((int64_t)strlen(vals[0].u.s));
        diag_error(e->d, a0, "len takes a list or a string, got %s", kind_name(vals[0].k));
        return VERR;
    }
    if (!strcmp(nm, "int")) {
        if (vals[0].k == V_INT) return vals[0];
        if (vals[0].k == V_BOOL) return vint(vals[0].u.b);
        if (vals[0].k == V_FLOAT) {
            if (!(fabs(vals[0].u.f) < 9e18)) {
                diag_error(e->d, a0, "int() of %g overflows", vals[0].u.f);
                return VERR;
            }
            return vint((int64_t)vals[0].u.f);
        }
        diag_error(e->d, a0, "int takes a number, got %s", kind_name(vals[0].k));
        return VERR;
    }
    if (!strcmp(nm, "float")) {
        double d;
        if (!to_float(e, vals[0], a0, "the argument of float", &d)) return VERR;
        return vfloat(d);
    }
    if (!strcmp(nm, "channels") || !strcmp(nm, "spatial")) {
        int t;
        char what[64];
        snprintf(what, sizeof what, "the argument of %s", nm);
        if (!to_tensor(e, vals[0], a0, what, &t)) return VERR;
        const Node *node = &e->g->nodes[t];
        if (!strcmp(nm, "channels")) return vint(node->rank == 3 ? node->dim[2] : node->dim[0]);
        if (node->rank != 3) {
            diag_error(e->d, a0, "spatial needs a feature map, got a vector");
            return VERR;
        }
        Value l = list_value(e, 2);
        if (l.k == V_ERR) return VERR;
        l.u.list.items[0] = vint(node->dim[0]);
        l.u.list.items[1] = vint(node->dim[1]);
        return l;
    }
    /* range(lo, hi) */
    int64_t lo, hi;
    bool rok = to_int(e, vals[0], a0, "range start", &lo);
    rok = to_int(e, vals[1], call->v.call.args[1].loc, "range end", &hi) && rok;
    if (!rok) return VERR;
    int64_t count = 0;
    if (hi > lo && __builtin_sub_overflow(hi, lo, &count)) count = INT64_MAX;
    if (count > MAX_LIST) {
        diag_error(e->d, loc, "range of %lld elements is too long", (long long)count);
        return VERR;
    }
    Value l = list_value(e, (int)count);
    if (l.k == V_ERR) return VERR;
    for (int64_t i = 0; i < count; i++) l.u.list.items[i] = vint(lo + i);
    return l;
}

/* ---- block calls ------------------------------------------------------------------------ */

static Value call_block(Elab *e, Frame *f, const AstExpr *call, BlockInfo *bi) {
    const AstDecl *decl = bi->decl;
    SrcLoc loc = call->v.call.callee_loc;
    bi->called = true;
    if (bi->active) {
        StrBuf chain = {0};
        int start = 0;
        for (int i = 0; i < e->depth; i++)
            if (e->stack[i] == bi) start = i;
        for (int i = start; i < e->depth; i++) sb_printf(&chain, "%s -> ", e->stack[i]->decl->name);
        sb_puts(&chain, decl->name);
        char *c = sb_take(&chain);
        diag_error(e->d, loc, "block '%s' is recursive (%s)", decl->name, c);
        free(c);
        /* Evaluate the arguments anyway so that their names count as used. */
        for (int i = 0; i < call->v.call.n_args; i++) eval(e, f, call->v.call.args[i].value, NULL);
        return VERR;
    }
    if (e->depth >= MAX_CALL_DEPTH) {
        diag_error(e->d, loc, "block calls nest too deeply");
        return VERR;
    }
    ArgSpec spec[MAX_ARGS];
    if (decl->n_params > MAX_ARGS) {
        diag_error(e->d, decl->name_loc, "block '%s' has more than %d parameters", decl->name, MAX_ARGS);
        return VERR;
    }
    for (int i = 0; i < decl->n_params; i++) spec[i] = (ArgSpec){decl->params[i].name, decl->params[i].def == NULL};
    Args a;
    if (!bind_args(e, f, call, spec, decl->n_params, &a)) return VERR;

    /* The scope of the layers inside: a labelled call opens one; an
     * unlabelled call is transparent. */
    char *saved_scope = NULL;
    if (call->v.call.label) {
        char *local = label_text(e, f, call->v.call.label);
        if (!local) return VERR;
        char *scope = join_scope(e->scope, local);
        free(local);
        if (strmap_slot(&e->scopes, scope, false)) {
            diag_error(e->d, call->v.call.label->loc, "block label '%s' is used twice", scope);
            free(scope);
            return VERR;
        }
        *strmap_slot(&e->scopes, scope, true) = 1;
        saved_scope = e->scope;
        e->scope = scope;
    }

    Frame bf = {.block = decl->name};
    for (int i = 0; i < decl->n_params; i++) {
        const AstParam *p = &decl->params[i];
        Site *site = site_get(&e->sites, p, SITE_PARAM, p->name, p->loc);
        site->block = decl->name;
        site->executed = true;
        Value v = a.given[i] ? a.v[i] : eval(e, &bf, p->def, NULL);
        frame_set(&bf, p->name, v, site);
    }
    bi->active = true;
    e->stack[e->depth++] = bi;
    Value ret = {.k = V_NONE};
    Flow flow = exec_body(e, &bf, &decl->body, &ret);
    e->depth--;
    bi->active = false;
    if (flow != FLOW_RETURN) {
        diag_error(e->d, loc, "block '%s' ends without a return", decl->name);
        ret = VERR;
    }
    free(bf.b);
    if (saved_scope) {
        free(e->scope);
        e->scope = saved_scope;
    }
    return ret;
}

static Value eval_call(Elab *e, Frame *f, const AstExpr *x, const char *bind_hint) {
    (void)bind_hint;
    const char *nm = x->v.call.callee;
    if (over_budget(e, x->loc)) return VERR;
    BlockInfo *bi = (BlockInfo *)find_block(e, nm);
    if (bi) return call_block(e, f, x, bi);
    if (!strcmp(nm, "conv")) return op_conv(e, f, x);
    if (!strcmp(nm, "batchnorm")) return op_batchnorm(e, f, x);
    if (!strcmp(nm, "linear")) return op_linear(e, f, x);
    if (!strcmp(nm, "relu")) return op_unary(e, f, x, OP_RELU);
    if (!strcmp(nm, "sigmoid")) return op_unary(e, f, x, OP_SIGMOID);
    if (!strcmp(nm, "flatten")) return op_unary(e, f, x, OP_FLATTEN);
    if (!strcmp(nm, "global_avgpool")) return op_unary(e, f, x, OP_GLOBAL_AVGPOOL);
    if (!strcmp(nm, "add")) return op_binary(e, f, x, OP_ADD);
    if (!strcmp(nm, "mul")) return op_binary(e, f, x, OP_MUL);
    if (!strcmp(nm, "maxpool")) return op_pool(e, f, x, OP_MAXPOOL);
    if (!strcmp(nm, "avgpool")) return op_pool(e, f, x, OP_AVGPOOL);
    if (!strcmp(nm, "dropout")) return op_dropout(e, f, x);
    if (!strcmp(nm, "concat")) return op_concat(e, f, x);
    if (in_list(elaborate_builtin_names, nm)) {
        if (x->v.call.label) diag_error(e->d, x->v.call.label->loc, "a label names a layer; %s is a builtin", nm);
        return builtin_call(e, f, x);
    }
    for (int i = 0; i < x->v.call.n_args; i++) eval(e, f, x->v.call.args[i].value, NULL);
    const char *best = suggest_callee(e, nm);
    if (best) diag_error(e->d, x->v.call.callee_loc, "unknown op or block '%s'; did you mean '%s'?", nm, best);
    else diag_error(e->d, x->v.call.callee_loc, "unknown op or block '%s'", nm);
    return VERR;
}

/* ---- expressions ------------------------------------------------------------------------ */

static Value lookup(Elab *e, Frame *f, const AstExpr *x) {
    const char *nm = x->v.name;
    Binding *b = NULL;
    int i = frame_find(f, nm);
    if (i >= 0) b = &f->b[i];
    else if (f != &e->globals && (i = frame_find(&e->globals, nm)) >= 0) b = &e->globals.b[i];
    if (!b) {
        const char *best = suggest_name(e, f, nm);
        if (!f->block && !strcmp(nm, "input"))
            diag_error(e->d, x->loc, "undefined name 'input'");
        else if (f->block && !strcmp(nm, "input"))
            diag_error(e->d, x->loc, "'input' is the network's image; pass it to block '%s' as an argument", f->block);
        else if (best) diag_error(e->d, x->loc, "undefined name '%s'; did you mean '%s'?", nm, best);
        else diag_error(e->d, x->loc, "undefined name '%s'", nm);
        return VERR;
    }
    if (b->site) b->site->used = true;
    if (b->v.k == V_BRANCH) {
        diag_error(e->d, x->loc, "'%s' is bound in only one branch of the if at line %lld; bind it before the if too",
                   nm, (long long)b->v.u.i);
        return VERR;
    }
    return b->v;
}

static bool num_pair(const Value *a, const Value *b) {
    return (a->k == V_INT || a->k == V_FLOAT) && (b->k == V_INT || b->k == V_FLOAT);
}

static double as_double(const Value *v) { return v->k == V_INT ? (double)v->u.i : v->u.f; }

static Value int_pow(Elab *e, int64_t base, int64_t ex, SrcLoc loc) {
    if (ex < 0) return vfloat(pow((double)base, (double)ex));
    int64_t r = 1;
    while (ex > 0) {
        if (ex & 1)
            if (__builtin_mul_overflow(r, base, &r)) goto overflow;
        ex >>= 1;
        if (ex && __builtin_mul_overflow(base, base, &base)) goto overflow;
    }
    return vint(r);
overflow:
    diag_error(e->d, loc, "integer overflow in '^'");
    return VERR;
}

/* Equality of plain values (numbers compare by value across int and
 * float; lists element by element). Returns -1 when the kinds cannot be
 * compared. */
static int values_equal(const Value *a, const Value *b) {
    if (num_pair(a, b)) return (a->k == V_INT && b->k == V_INT) ? a->u.i == b->u.i : as_double(a) == as_double(b);
    if (a->k != b->k) return -1;
    switch (a->k) {
    case V_BOOL: return a->u.b == b->u.b;
    case V_STR: return strcmp(a->u.s, b->u.s) == 0;
    case V_LIST:
        if (a->u.list.n != b->u.list.n) return 0;
        for (int i = 0; i < a->u.list.n; i++) {
            int r = values_equal(&a->u.list.items[i], &b->u.list.items[i]);
            if (r != 1) return r;
        }
        return 1;
    default: return -1;
    }
}

static Value eval_binary(Elab *e, Frame *f, const AstExpr *x) {
    AstBinOp op = x->v.binary.op;
    SrcLoc loc = x->loc;
    if (op == BIN_AND || op == BIN_OR) {
        Value a = eval(e, f, x->v.binary.a, NULL);
        bool ab;
        if (!to_bool(e, a, x->v.binary.a->loc, op == BIN_AND ? "the left side of 'and'" : "the left side of 'or'", &ab)) {
            eval(e, f, x->v.binary.b, NULL);
            return VERR;
        }
        if (op == BIN_AND ? !ab : ab) return vbool(ab);
        Value b = eval(e, f, x->v.binary.b, NULL);
        bool bb;
        if (!to_bool(e, b, x->v.binary.b->loc, op == BIN_AND ? "the right side of 'and'" : "the right side of 'or'", &bb))
            return VERR;
        return vbool(bb);
    }
    Value a = eval(e, f, x->v.binary.a, NULL);
    Value b = eval(e, f, x->v.binary.b, NULL);
    if (a.k == V_ERR || b.k == V_ERR) return VERR;
    const char *opt = ast_binop_text(op);

    if (a.k == V_TENSOR || b.k == V_TENSOR) {
        if ((op == BIN_ADD || op == BIN_MUL) && a.k == V_TENSOR && b.k == V_TENSOR)
            return binary_tensor(e, op == BIN_ADD ? OP_ADD : OP_MUL, a.u.tensor, b.u.tensor, loc);
        if (op == BIN_ADD || op == BIN_MUL)
            diag_error(e->d, loc, "'%s' of %s and %s: both sides must be tensors", opt, kind_name(a.k), kind_name(b.k));
        else diag_error(e->d, loc, "'%s' is not defined on tensors (only + and *)", opt);
        return VERR;
    }
    switch (op) {
    case BIN_EQ:
    case BIN_NE: {
        int eq = values_equal(&a, &b);
        if (eq < 0) {
            diag_error(e->d, loc, "cannot compare %s with %s", kind_name(a.k), kind_name(b.k));
            return VERR;
        }
        return vbool(op == BIN_EQ ? eq : !eq);
    }
    case BIN_LT:
    case BIN_LE:
    case BIN_GT:
    case BIN_GE: {
        if (!num_pair(&a, &b)) {
            diag_error(e->d, loc, "'%s' needs numbers, got %s and %s", opt, kind_name(a.k), kind_name(b.k));
            return VERR;
        }
        int c;
        if (a.k == V_INT && b.k == V_INT) c = (a.u.i > b.u.i) - (a.u.i < b.u.i);
        else c = (as_double(&a) > as_double(&b)) - (as_double(&a) < as_double(&b));
        bool r = op == BIN_LT ? c < 0 : op == BIN_LE ? c <= 0 : op == BIN_GT ? c > 0 : c >= 0;
        return vbool(r);
    }
    default:
        break;
    }
    if (op == BIN_ADD && a.k == V_LIST && b.k == V_LIST) {
        int64_t n = (int64_t)a.u.list.n + b.u.list.n;
        if (n > MAX_LIST) {
            diag_error(e->d, loc, "list too long");
            return VERR;
        }
        Value l = list_value(e, (int)n);
        if (l.k == V_ERR) return VERR;
        memcpy(l.u.list.items, a.u.list.items, (size_t)a.u.list.n * sizeof(Value));
        memcpy(l.u.list.items + a.u.list.n, b.u.list.items, (size_t)b.u.list.n * sizeof(Value));
        return l;
    }
    if (!num_pair(&a, &b)) {
        diag_error(e->d, loc, "'%s' needs numbers, got %s and %s", opt, kind_name(a.k), kind_name(b.k));
        return VERR;
    }
    bool ints = a.k == V_INT && b.k == V_INT;
    int64_t r;
    switch (op) {
    case BIN_ADD:
        if (!ints) return vfloat(as_double(&a) + as_double(&b));
        if (__builtin_add_overflow(a.u.i, b.u.i, &r)) break;
        return vint(r);
    case BIN_SUB:
        if (!ints) return vfloat(as_double(&a) - as_double(&b));
        if (__builtin_sub_overflow(a.u.i, b.u.i, &r)) break;
        return vint(r);
    case BIN_MUL:
        if (!ints) return vfloat(as_double(&a) * as_double(&b));
        if (__builtin_mul_overflow(a.u.i, b.u.i, &r)) break;
        return vint(r);
    case BIN_DIV:
        if (as_double(&b) == 0) {
            diag_error(e->d, loc, "division by zero");
            return VERR;
        }
        return vfloat(as_double(&a) / as_double(&b));
    case BIN_IDIV:
    case BIN_MOD: {
        if (!ints) {
            diag_error(e->d, loc, "'%s' needs ints, got %s and %s", opt, kind_name(a.k), kind_name(b.k));
            return VERR;
        }
        if (b.u.i == 0) {
            diag_error(e->d, loc, "%s by zero", op == BIN_IDIV ? "division" : "modulo");
            return VERR;
        }
        if (a.u.i == INT64_MIN && b.u.i == -1) break;
        int64_t q = a.u.i / b.u.i, m = a.u.i % b.u.i;
        if (m != 0 && ((m < 0) != (b.u.i < 0))) {
            q -= 1; /* floor, as Python */
            m += b.u.i;
        }
        return vint(op == BIN_IDIV ? q : m);
    }
    case BIN_POW:
        if (ints) return int_pow(e, a.u.i, b.u.i, loc);
        return vfloat(pow(as_double(&a), as_double(&b)));
    default:
        break;
    }
    diag_error(e->d, loc, "integer overflow in '%s'", opt);
    return VERR;
}

static Value eval_index(Elab *e, Frame *f, const AstExpr *x) {
    Value base = eval(e, f, x->v.index.base, NULL);
    const AstExpr *ix = x->v.index.index;
    if (ix->kind == EX_RANGE) {
        Value lo = eval(e, f, ix->v.range.lo, NULL), hi = eval(e, f, ix->v.range.hi, NULL);
        if (base.k == V_ERR) return VERR;
        int64_t l, h;
        bool ok = to_int(e, lo, ix->v.range.lo->loc, "slice start", &l);
        ok = to_int(e, hi, ix->v.range.hi->loc, "slice end", &h) && ok;
        if (!ok) return VERR;
        if (base.k != V_LIST) {
            diag_error(e->d, x->loc, "only lists can be sliced, got %s", kind_name(base.k));
            return VERR;
        }
        int64_t n = base.u.list.n;
        if (l < 0) l += n;
        if (h < 0) h += n;
        if (l < 0) l = 0;
        if (h > n) h = n;
        if (h < l) h = l;
        Value r = list_value(e, (int)(h - l));
        if (r.k == V_ERR) return VERR;
        memcpy(r.u.list.items, base.u.list.items + l, (size_t)(h - l) * sizeof(Value));
        return r;
    }
    Value iv = eval(e, f, ix, NULL);
    if (base.k == V_ERR || iv.k == V_ERR) return VERR;
    int64_t i;
    if (!to_int(e, iv, ix->loc, "an index", &i)) return VERR;
    if (base.k != V_LIST) {
        diag_error(e->d, x->loc, "only lists can be indexed, got %s", kind_name(base.k));
        return VERR;
    }
    int64_t n = base.u.list.n;
    if (i < -n || i >= n) {
        diag_error(e->d, ix->loc, "index %lld is out of range for a list of %lld", (long long)i, (long long)n);
        return VERR;
    }
    return base.u.list.items[i < 0 ? i + n : i];
}

static Value eval(Elab *e, Frame *f, const AstExpr *x, const char *bind_hint) {
    if (!x) return VERR;
    switch (x->kind) {
    case EX_INT: return vint(x->v.i);
    case EX_FLOAT: return vfloat(x->v.f);
    case EX_STRING: return (Value){.k = V_STR, .u.s = x->v.s};
    case EX_BOOL: return vbool(x->v.b);
    case EX_NAME: return lookup(e, f, x);
    case EX_LIST: {
        Value l = list_value(e, x->v.list.n);
        if (l.k == V_ERR) return VERR;
        bool ok = true;
        for (int i = 0; i < x->v.list.n; i++) {
            l.u.list.items[i] = eval(e, f, x->v.list.items[i], NULL);
            if (l.u.list.items[i].k == V_ERR) ok = false;
        }
        return ok ? l : VERR;
    }
    case EX_UNARY: {
        Value v = eval(e, f, x->v.unary.x, NULL);
        if (v.k == V_ERR) return VERR;
        if (x->v.unary.op == UN_NOT) {
            bool b;
            if (!to_bool(e, v, x->v.unary.x->loc, "the operand of 'not'", &b)) return VERR;
            return vbool(!b);
        }
        if (v.k == V_INT) {
            if (v.u.i == INT64_MIN) {
                diag_error(e->d, x->loc, "integer overflow in '-'");
                return VERR;
            }
            return vint(-v.u.i);
        }
        if (v.k == V_FLOAT) return vfloat(-v.u.f);
        diag_error(e->d, x->loc, "'-' needs a number, got %s", kind_name(v.k));
        return VERR;
    }
    case EX_BINARY: return eval_binary(e, f, x);
    case EX_CALL: return eval_call(e, f, x, bind_hint);
    case EX_INDEX: return eval_index(e, f, x);
    case EX_IF: {
        Value c = eval(e, f, x->v.cond.c, NULL);
        bool b;
        if (!to_bool(e, c, x->v.cond.c->loc, "the condition", &b)) {
            eval(e, f, x->v.cond.then, NULL);
            eval(e, f, x->v.cond.otherwise, NULL);
            return VERR;
        }
        return eval(e, f, b ? x->v.cond.then : x->v.cond.otherwise, NULL);
    }
    case EX_RANGE:
        diag_error(e->d, x->loc, "a range 'lo..hi' is only allowed after 'for ... in' or inside '[...]' as a slice");
        return VERR;
    }
    return VERR;
}

/* ---- statements --------------------------------------------------------------------------- */

/* Whether a body (recursively) binds name. */
static bool body_binds(const AstBody *body, const char *name) {
    for (int i = 0; i < body->n; i++) {
        const AstStmt *s = body->items[i];
        if (s->kind == ST_LET && !strcmp(s->name, name)) return true;
        if (s->kind == ST_IF && (body_binds(&s->body, name) || body_binds(&s->otherwise, name))) return true;
        if (s->kind == ST_FOR && body_binds(&s->body, name)) return true;
    }
    return false;
}

/* After a body that could not run (its condition or iterable failed), binds
 * its names to poison so that later uses do not report again. */
static void poison_bindings(Frame *f, const AstBody *body) {
    for (int i = 0; i < body->n; i++) {
        const AstStmt *s = body->items[i];
        if (s->kind == ST_LET && frame_find(f, s->name) < 0) frame_set(f, s->name, VERR, NULL);
        if (s->kind == ST_IF) {
            poison_bindings(f, &s->body);
            poison_bindings(f, &s->otherwise);
        }
        if (s->kind == ST_FOR) poison_bindings(f, &s->body);
    }
}

static Flow exec_if(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    Value c = eval(e, f, s->value, NULL);
    bool b;
    if (!to_bool(e, c, s->value->loc, "the condition of if", &b)) {
        poison_bindings(f, &s->body);
        poison_bindings(f, &s->otherwise);
        return FLOW_NEXT;
    }
    /* Names the taken branch binds for the first time are usable after the
     * if only when the other branch binds them too. */
    int n_before = f->n;
    const char **before = xmalloc((size_t)(n_before ? n_before : 1) * sizeof *before);
    for (int i = 0; i < n_before; i++) before[i] = f->b[i].name;
    const AstBody *taken = b ? &s->body : &s->otherwise, *other = b ? &s->otherwise : &s->body;
    Flow flow = exec_body(e, f, taken, ret);
    if (flow == FLOW_NEXT) {
        for (int i = 0; i < f->n; i++) {
            bool old = false;
            for (int k = 0; k < n_before && !old; k++) old = strcmp(before[k], f->b[i].name) == 0;
            if (!old && !body_binds(other, f->b[i].name) && f->b[i].site) {
                /* Keep the site's use count: reads inside the branch count. */
                f->b[i].v = (Value){.k = V_BRANCH, .u.i = s->loc.line};
            }
        }
    }
    free(before);
    return flow;
}

static Flow exec_for(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    const AstExpr *it = s->value;
    Value list = {.k = V_ERR};
    int64_t lo = 0, hi = 0;
    bool is_range = it->kind == EX_RANGE;
    if (is_range) {
        Value a = eval(e, f, it->v.range.lo, NULL), b = eval(e, f, it->v.range.hi, NULL);
        bool ok = to_int(e, a, it->v.range.lo->loc, "the start of the range", &lo);
        ok = to_int(e, b, it->v.range.hi->loc, "the end of the range", &hi) && ok;
        if (!ok) {
            poison_bindings(f, &s->body);
            return FLOW_NEXT;
        }
    } else {
        list = eval(e, f, it, NULL);
        if (list.k != V_LIST) {
            if (list.k != V_ERR) diag_error(e->d, it->loc, "for needs a range lo..hi or a list, got %s", kind_name(list.k));
            poison_bindings(f, &s->body);
            return FLOW_NEXT;
        }
    }
    if (f->n_loops >= MAX_LOOP_NEST) {
        diag_error(e->d, s->loc, "for loops nest too deeply");
        return FLOW_NEXT;
    }
    int64_t count = is_range ? 0 : list.u.list.n;
    if (is_range && hi > lo && __builtin_sub_overflow(hi, lo, &count)) count = INT64_MAX;
    int shadow = frame_find(f, s->name);
    Binding saved = shadow >= 0 ? f->b[shadow] : (Binding){0};
    Flow flow = FLOW_NEXT;
    f->n_loops++;
    for (int64_t i = 0; i < count; i++) {
        if (over_budget(e, s->loc)) break;
        f->loops[f->n_loops - 1] = (int)i;
        frame_set(f, s->name, is_range ? vint(lo + i) : list.u.list.items[i], NULL);
        flow = exec_body(e, f, &s->body, ret);
        if (flow == FLOW_RETURN) break;
    }
    f->n_loops--;
    frame_remove(f, s->name);
    if (shadow >= 0) frame_set(f, saved.name, saved.v, saved.site);
    return flow;
}

static bool is_network_top_level(const Elab *e, const AstStmt *s) {
    for (int i = 0; i < e->net->body.n; i++)
        if (e->net->body.items[i] == s) return true;
    return false;
}

static Flow exec_stmt(Elab *e, Frame *f, const AstStmt *s, Value *ret) {
    e->last_loc = s->loc;
    if (over_budget(e, s->loc)) {
        *ret = VERR;
        return FLOW_RETURN;
    }
    switch (s->kind) {
    case ST_SETTING:
        /* Network parameters were evaluated before the body ran; only the
         * network body's own top level may set them. */
        if (f->block || !is_network_top_level(e, s))
            diag_error(e->d, s->loc, "network parameters ('%s VALUE') may only be set at the top of the network body; "
                                     "write '%s = ...' to bind a name", s->name, s->name);
        return FLOW_NEXT;
    case ST_LET: {
        Site *site = site_get(&e->sites, s, SITE_LET, s->name, s->name_loc);
        site->executed = true;
        if (frame_find(&e->globals, s->name) >= 0 && frame_find(f, s->name) < 0 && f != &e->globals) {
            diag_error(e->d, s->name_loc, "'%s' is a network parameter or constant; bind another name", s->name);
            site->used = true;
        }
        const char *hint = s->value && s->value->kind == EX_CALL ? s->name : NULL;
        Value v = eval(e, f, s->value, hint);
        int prev = frame_find(f, s->name);
        if (prev >= 0 && f->b[prev].site && !f->b[prev].site->used) f->b[prev].site->overwritten = true;
        frame_set(f, s->name, v, site);
        return FLOW_NEXT;
    }
    case ST_IF: return exec_if(e, f, s, ret);
    case ST_FOR: return exec_for(e, f, s, ret);
    case ST_RETURN:
        *ret = eval(e, f, s->value, NULL);
        return FLOW_RETURN;
    case ST_ASSERT: {
        Value c = eval(e, f, s->value, NULL);
        bool b;
        if (to_bool(e, c, s->value->loc, "the condition of assert", &b) && !b) {
            if (s->message) diag_error(e->d, s->loc, "%s", s->message);
            else diag_error(e->d, s->loc, "assertion failed");
        }
        return FLOW_NEXT;
    }
    }
    return FLOW_NEXT;
}

static Flow exec_body(Elab *e, Frame *f, const AstBody *body, Value *ret) {
    for (int i = 0; i < body->n; i++) {
        Flow flow = exec_stmt(e, f, body->items[i], ret);
        if (flow == FLOW_RETURN) return flow;
    }
    return FLOW_NEXT;
}

/* ---- the network ----------------------------------------------------------------------------- */

static bool is_reserved_setting(const char *name) {
    return !strcmp(name, "input") || !strcmp(name, "classes") || !strcmp(name, "layout") || !strcmp(name, "init");
}

/* The word of a setting such as `layout torchvision` (an EX_NAME or a string). */
static const char *setting_word(const AstExpr *x) {
    if (x && x->kind == EX_NAME) return x->v.name;
    if (x && x->kind == EX_STRING) return x->v.s;
    return NULL;
}

static void collect_blocks(Elab *e) {
    const AstFile *ast = e->ast;
    e->blocks = xcalloc((size_t)(ast->n_decls ? ast->n_decls : 1), sizeof *e->blocks);
    for (int i = 0; i < ast->n_decls; i++) {
        const AstDecl *d = ast->decls[i];
        if (d->kind != DECL_BLOCK) continue;
        const BlockInfo *prev = find_block(e, d->name);
        if (prev) {
            diag_error(e->d, d->name_loc, "block '%s' is defined twice", d->name);
            diag_note(e->d, prev->decl->name_loc, "first defined here");
            continue;
        }
        if (in_list(elaborate_op_names, d->name) || in_list(elaborate_builtin_names, d->name)) {
            diag_error(e->d, d->name_loc, "a block may not be named like the %s '%s'",
                       in_list(elaborate_op_names, d->name) ? "primitive op" : "builtin", d->name);
            continue;
        }
        for (int k = 0; k < d->n_params; k++)
            for (int j = 0; j < k; j++)
                if (!strcmp(d->params[k].name, d->params[j].name))
                    diag_error(e->d, d->params[k].loc, "block '%s' has two parameters named '%s'", d->name,
                               d->params[k].name);
        e->blocks[e->n_blocks++] = (BlockInfo){.decl = d};
    }
}

static void eval_constants(Elab *e) {
    for (int i = 0; i < e->ast->n_decls; i++) {
        const AstDecl *d = e->ast->decls[i];
        if (d->kind != DECL_CONST || !d->stmt) continue;
        const AstStmt *s = d->stmt;
        int prev = frame_find(&e->globals, s->name);
        if (prev >= 0) {
            diag_error(e->d, s->name_loc, "constant '%s' is defined twice", s->name);
            continue;
        }
        Site *site = site_get(&e->sites, d, SITE_CONST, s->name, s->name_loc);
        site->executed = true;
        Value v = eval(e, &e->globals, s->value, NULL);
        frame_set(&e->globals, s->name, v, site);
    }
}

/* Evaluates the network parameters (`name value` statements) into globals and
 * reads the reserved ones. Returns false when the input shape is unusable. */
static bool eval_network_params(Elab *e, const AstDecl *net, int in_chw[3], int *classes, bool *tv) {
    bool have_input = false, have_classes = false, input_ok = true;
    for (int i = 0; i < net->body.n; i++) {
        const AstStmt *s = net->body.items[i];
        if (s->kind != ST_SETTING) continue;
        if (is_reserved_setting(s->name)) {
            /* reserved: checked here, never "unused" */
            bool dup = false;
            for (int k = 0; k < i && !dup; k++)
                dup = net->body.items[k]->kind == ST_SETTING && !strcmp(net->body.items[k]->name, s->name);
            if (dup) {
                diag_error(e->d, s->name_loc, "network parameter '%s' is set twice", s->name);
                continue;
            }
            if (!strcmp(s->name, "layout") || !strcmp(s->name, "init")) {
                const char *w = setting_word(s->value);
                bool is_layout = !strcmp(s->name, "layout");
                const char *alt = is_layout ? "rxc" : "pytorch";
                if (!w || (strcmp(w, "torchvision") && strcmp(w, alt))) {
                    diag_error(e->d, s->value ? s->value->loc : s->loc, "%s must be torchvision or %s", s->name, alt);
                    continue;
                }
                if (is_layout) *tv = !strcmp(w, "torchvision");
                else e->conv_init = !strcmp(w, "torchvision") ? INIT_KAIMING_NORMAL_FAN_OUT : INIT_PYTORCH_DEFAULT;
                continue;
            }
            Value v = eval(e, &e->globals, s->value, NULL);
            if (!strcmp(s->name, "classes")) {
                have_classes = true;
                if (v.k == V_ERR) continue;
                int c;
                if (to_int_range(e, v, s->value->loc, "classes", 1, INT32_MAX, &c)) *classes = c;
                else v = VERR; /* uses of a bad count stay quiet */
                frame_set(&e->globals, "classes", v, NULL);
                continue;
            }
            /* input CxHxW */
            have_input = true;
            input_ok = false;
            if (v.k == V_ERR) continue;
            if (v.k != V_LIST || v.u.list.n != 3) {
                diag_error(e->d, s->value->loc, "input must be CxHxW, e.g. 3x224x224");
                continue;
            }
            input_ok = true;
            for (int k = 0; k < 3 && input_ok; k++)
                input_ok = to_int_range(e, v.u.list.items[k], s->value->loc, k ? "input size" : "input channels", 1,
                                        1 << 20, &in_chw[k]);
            continue;
        }
        if (frame_find(&e->globals, s->name) >= 0) {
            diag_error(e->d, s->name_loc, "'%s' is already defined (a network parameter or a top-level constant)",
                       s->name);
            continue;
        }
        Site *site = site_get(&e->sites, s, SITE_NETPARAM, s->name, s->name_loc);
        site->executed = true;
        Value v = eval(e, &e->globals, s->value, NULL);
        frame_set(&e->globals, s->name, v, site);
    }
    if (!have_input) {
        diag_error(e->d, net->name_loc, "network '%s' does not say its input shape (add e.g. 'input 3x224x224')",
                   net->name);
        return false;
    }
    if (!have_classes) {
        diag_error(e->d, net->name_loc, "network '%s' does not say its number of classes (add e.g. 'classes 10')",
                   net->name);
        frame_set(&e->globals, "classes", VERR, NULL);
    }
    return input_ok;
}

static int site_order(const void *pa, const void *pb) {
    const Site *a = *(const Site *const *)pa, *b = *(const Site *const *)pb;
    int fc = strcmp(a->loc.file ? a->loc.file : "", b->loc.file ? b->loc.file : "");
    if (fc) return fc;
    if (a->loc.line != b->loc.line) return a->loc.line - b->loc.line;
    return a->loc.col - b->loc.col;
}

static void report_unused(Elab *e) {
    Site **list = xmalloc((size_t)(e->sites.n ? e->sites.n : 1) * sizeof *list);
    int n = 0;
    for (int i = 0; i < e->sites.cap; i++) {
        Site *s = e->sites.slots[i];
        if (!s || !s->executed || s->used || s->overwritten || s->name[0] == '_') continue;
        if (s->kind == SITE_CONST && !is_main_file(e, s->loc)) continue;
        list[n++] = s;
    }
    qsort(list, (size_t)n, sizeof *list, site_order);
    for (int i = 0; i < n; i++) {
        const Site *s = list[i];
        switch (s->kind) {
        case SITE_LET: diag_error(e->d, s->loc, "'%s' is bound but never used", s->name); break;
        case SITE_PARAM:
            diag_error(e->d, s->loc, "parameter '%s' of block '%s' is never used", s->name, s->block);
            break;
        case SITE_NETPARAM: diag_error(e->d, s->loc, "network parameter '%s' is never used", s->name); break;
        case SITE_CONST: diag_error(e->d, s->loc, "constant '%s' is never used", s->name); break;
        }
    }
    free(list);
    for (int i = 0; i < e->n_blocks; i++) {
        const AstDecl *d = e->blocks[i].decl;
        if (!e->blocks[i].called && is_main_file(e, d->name_loc) && d->name[0] != '_')
            diag_error(e->d, d->name_loc, "block '%s' is never used", d->name);
    }
}

Graph *elaborate(const AstFile *ast, Diag *d) {
    Elab e = {.ast = ast, .d = d, .conv_init = INIT_KAIMING_NORMAL_FAN_OUT, .errors0 = diag_errors(d)};
    const AstDecl *net = NULL;
    for (int i = 0; i < ast->n_decls; i++) {
        const AstDecl *dc = ast->decls[i];
        if (dc->kind != DECL_NETWORK) continue;
        if (net) {
            diag_error(d, dc->name_loc, "a model has one network; '%s' is the second", dc->name);
            diag_note(d, net->name_loc, "the first is here");
            continue;
        }
        net = dc;
    }
    if (!net) {
        SrcLoc top = {.file = ast->path, .line = 0, .col = 0};
        diag_error(d, top, "%s: no network section (a model needs 'network NAME { ... }')", ast->path ? ast->path : "model");
        return NULL;
    }
    e.net = net;
    e.arena = arena_new();
    e.g = graph_new(net->name);
    e.scope = xstrdup("");
    collect_blocks(&e);
    eval_constants(&e);

    int chw[3] = {0, 0, 0}, classes = 0;
    bool tv = false;
    bool input_ok = eval_network_params(&e, net, chw, &classes, &tv);
    e.g->classes = classes;
    e.g->torchvision_layout = tv;

    Frame nf = {0};
    if (input_ok) {
        int in = graph_input(e.g, chw[1], chw[2], chw[0], net->loc);
        frame_set(&nf, "input", vtensor(in), NULL);
    } else {
        frame_set(&nf, "input", VERR, NULL);
    }
    Value ret = {.k = V_NONE};
    Flow flow = exec_body(&e, &nf, &net->body, &ret);
    if (flow != FLOW_RETURN) diag_error(d, net->name_loc, "network '%s' does not return its output", net->name);
    else if (ret.k == V_TENSOR) e.g->output = ret.u.tensor;
    else if (ret.k != V_ERR)
        diag_error(d, net->name_loc, "network '%s' returns %s; it must return a tensor", net->name, kind_name(ret.k));

    if (e.g->output < 0 && diag_errors(d) == e.errors0)
        diag_error(d, net->name_loc, "network '%s' has no output", net->name);
    if (!e.budget_reported) report_unused(&e);

    free(nf.b);
    free(e.globals.b);
    free(e.blocks);
    site_table_free(&e.sites);
    strmap_free(&e.layers);
    strmap_free(&e.counters);
    strmap_free(&e.scopes);
    free(e.scope);
    arena_free(e.arena);
    if (diag_errors(d) > e.errors0) {
        graph_free(e.g);
        return NULL;
    }
    return e.g;
}
