/*
 * render_cuda.c — renders the kernel IR (kir.h) as CUDA C++ for NVRTC, each
 * kernel for the launch geometry launch_cuda.c chooses (render_cuda.h).
 *
 * Expressions are rendered exactly as the C renderer does (one named value
 * per DAG node, lazily evaluated select branches, KE_REDUCE as a sequential
 * loop, the shared KE_RAND text of kir.c). What differs is the mapping of
 * the kernel's loops onto the grid:
 *
 *   KF_ROWS, no long inner loop  -> one thread per outer index, grid-stride;
 *   KF_ROWS, inner >= 64 with a reduce or map stage
 *                                -> one block per outer index; threads
 *                                   stride over inner; each accumulator is
 *                                   combined by a warp-shuffle + shared
 *                                   memory tree that every thread reads back;
 *   KF_ROWS, 8 <= inner < 64 with a reduce or map stage, read and written
 *   contiguously in j (the loss)  -> one warp per outer index, 8 per block;
 *                                   lanes stride over inner; a fixed shuffle
 *                                   tree, lane 0's total broadcast;
 *   KF_COLS                      -> blocks of 32 columns x one row chunk
 *                                   (the IR's row_chunks, each split into
 *                                   2^s equal parts until the grid has
 *                                   ~1024 blocks: fixed by the shape); 8 row lanes per
 *                                   column reduce their rows in order, a
 *                                   shared-memory tree combines the lanes,
 *                                   partials go to scratch, then NAME_finish
 *                                   combines them with a warp per column:
 *                                   lanes stride over the chunks in order,
 *                                   a fixed shuffle tree joins the lanes.
 * No atomics anywhere: every sum is taken in an order fixed by the source,
 * so results never vary from run to run. Integer widths and what can be
 * hoisted out of the inner loop come from kir_analysis.h, as in render_c.c.
 */
#include "render_cuda.h"
#include "render_cuda_prelude.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kir_analysis.h"
#include "kir_text.h"
#include "util.h"

const char *render_cuda_ctype(KDType t) {
    switch (t) {
    case KD_F32: return "float";
    case KD_BF16: return "__nv_bfloat16";
    case KD_U8: return "unsigned char";
    case KD_I64: return "long long";
    }
    return "float";
}

/* ---- expression emission ------------------------------------------------------ */

typedef struct Emitter {
    const Kernel *k;
    StrBuf *out;
    int indent;
    const char *itype;     /* loop counters: "int" or "long long" */
    KirWidths w;           /* per integer: 32 or 64 bits (kir_analysis.h) */
    bool *ready;           /* per node: its value is in scope */
    int *undo, n_undo, cap_undo;
    int *marks, n_marks, cap_marks;
    int lane;              /* NAME_v4: the element of the vector being computed, else -1 */
    int vec_width;         /* NAME_v4: 4 or 8 elements per thread */
    uint64_t vec_bufs;     /* NAME_v4: buffers accessed only at [i], 16 bytes at a time */
} Emitter;

static void line(Emitter *E, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Emitter *E, const char *fmt, ...) {
    for (int i = 0; i < E->indent; i++) sb_puts(E->out, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(E->out, fmt, ap);
    va_end(ap);
    sb_putc(E->out, '\n');
}

static void open_scope(Emitter *E) {
    GROW(E->marks, E->cap_marks, E->n_marks + 1);
    E->marks[E->n_marks++] = E->n_undo;
}

static void close_scope(Emitter *E) {
    int mark = E->marks[--E->n_marks];
    while (E->n_undo > mark) E->ready[E->undo[--E->n_undo]] = false;
}

static void mark_ready(Emitter *E, int e) {
    E->ready[e] = true;
    GROW(E->undo, E->cap_undo, E->n_undo + 1);
    E->undo[E->n_undo++] = e;
}

/* The C type of node e's value. */
static const char *node_type(const Emitter *E, int e) {
    KType t = E->k->ex[e].type;
    return t == KT_FLOAT ? "float" : t == KT_BOOL ? "bool" : E->w.node_wide[e] ? "long long" : "int";
}

static const char *acc_ctype(const Emitter *E, int a) {
    KType t = E->k->ex[E->k->accs[a].value].type;
    return t == KT_FLOAT ? "float" : E->w.acc_wide[a] ? "long long" : "int";
}

/* A cast that makes an int operation happen in 64 bits when node e is wide. */
static const char *widen(const Emitter *E, int e) {
    return E->k->ex[e].type == KT_INT && E->w.node_wide[e] ? "(long long)" : "";
}

static const KirNonFinite cuda_non_finite = {"__int_as_float(0x7fc00000)", "__int_as_float(0x7f800000)",
                                              "__int_as_float((int)0xff800000)"};

/* The text that names node e's value (a literal, a variable or eN). */
static void ref(const Emitter *E, int e, char *out, size_t n) {
    const KExpr *x = &E->k->ex[e];
    switch (x->kind) {
    case KE_CONST_F: kir_float_literal(out, n, x->f, &cuda_non_finite); break;
    case KE_CONST_I: kir_int_literal(out, n, x->i); break;
    case KE_VAR: kir_var_name(out, n, x->var); break;
    case KE_SCALAR: snprintf(out, n, "((float)sc[%d])", x->scalar); break;
    case KE_ACC: snprintf(out, n, "acc%d", x->acc); break;
    default: snprintf(out, n, "e%d", e); break;
    }
}

#define REFLEN 64

static void buf_param(const Kernel *k, int b, char *out, size_t n) {
    char clean[25];
    const char *s = k->bufs[b].name ? k->bufs[b].name : "";
    size_t m = 0;
    for (; *s && m < sizeof clean - 1; s++)
        clean[m++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) ? *s : '_';
    clean[m] = 0;
    snprintf(out, n, "b%d%s%s", b, m ? "_" : "", clean);
}

static void emit_expr(Emitter *E, int e);

/* Lane E->lane of vector variable PREFIX<b> of the vector variant: in the
 * 4-wide form a float4 component; 8 wide, f32 buffers are two float4s
 * (PREFIX<b>_0, _1) and bf16 ones a uint4 of bf16 pairs, low half first,
 * widened exactly ("in") or a float of the lanes to pack ("out"). */
static void lane_text(const Emitter *E, const char *prefix, int b, char *out, size_t n) {
    int l = E->lane;
    if (E->vec_width == 4) snprintf(out, n, "%s%d.%c", prefix, b, "xyzw"[l]);
    else if (E->k->bufs[b].dtype == KD_F32) snprintf(out, n, "%s%d_%d.%c", prefix, b, l / 4, "xyzw"[l % 4]);
    else if (prefix[0] == 'o') snprintf(out, n, "%s%d[%d]", prefix, b, l);
    else snprintf(out, n, "rxc_bf16_%s(%s%d.%c)", l % 2 ? "hi" : "lo", prefix, b, "xyzw"[l / 2]);
}

static void load_text(Emitter *E, const KExpr *x, char *out, size_t n) {
    char idx[REFLEN], name[40];
    ref(E, x->a, idx, sizeof idx);
    buf_param(E->k, x->buf, name, sizeof name);
    if (E->lane >= 0 && x->buf < 64 && (E->vec_bufs >> x->buf & 1)) {
        lane_text(E, "in", x->buf, out, n);
        return;
    }
    switch (E->k->bufs[x->buf].dtype) {
    case KD_F32: snprintf(out, n, "%s[%s]", name, idx); break;
    case KD_BF16: snprintf(out, n, "__bfloat162float(%s[%s])", name, idx); break;
    case KD_U8: snprintf(out, n, "(float)%s[%s]", name, idx); break;
    case KD_I64: snprintf(out, n, "(%s)%s[%s]", E->w.node_wide[x - E->k->ex] ? "long long" : "int", name, idx); break;
    }
}

static void unary_text(Emitter *E, const KExpr *x, char *out, size_t n) {
    char a[REFLEN];
    ref(E, x->a, a, sizeof a);
    int self = (int)(x - E->k->ex);
    const char *wd = widen(E, self);
    switch ((KUnOp)x->op) {
    case KU_NEG: snprintf(out, n, "-%s%s", wd, a); break;
    case KU_EXP: snprintf(out, n, "expf(%s)", a); break;
    case KU_LOG: snprintf(out, n, "logf(%s)", a); break;
    case KU_SQRT: snprintf(out, n, "sqrtf(%s)", a); break;
    case KU_RSQRT: snprintf(out, n, "1.0f / sqrtf(%s)", a); break;
    case KU_ABS:
        if (x->type == KT_FLOAT) snprintf(out, n, "fabsf(%s)", a);
        else snprintf(out, n, "%s < 0 ? -%s%s : %s%s", a, wd, a, wd, a);
        break;
    case KU_RECIP: snprintf(out, n, "1.0f / %s", a); break;
    case KU_SIGMOID: snprintf(out, n, "1.0f / (1.0f + expf(-%s))", a); break;
    case KU_TO_FLOAT: snprintf(out, n, "(float)%s", a); break;
    case KU_TO_INT: snprintf(out, n, "(%s)%s", node_type(E, self), a); break;
    case KU_NOT: snprintf(out, n, "!%s", a); break;
    case KU_TANH: snprintf(out, n, "tanhf(%s)", a); break;
    case KU_ERF: snprintf(out, n, "erff(%s)", a); break;
    case KU_EXPM1: snprintf(out, n, "expm1f(%s)", a); break;
    }
}

static void binary_text(Emitter *E, const KExpr *x, char *out, size_t n) {
    static const char *const infix[] = {"+", "-", "*", "/", NULL, NULL, "/", "%", "<", "<=", "==", "!=", "&&", "||"};
    char a[REFLEN], b[REFLEN];
    ref(E, x->a, a, sizeof a);
    ref(E, x->b, b, sizeof b);
    bool fl = x->type == KT_FLOAT;
    if (x->op == KB_MAX || x->op == KB_MIN) {
        if (fl) snprintf(out, n, "%s(%s, %s)", x->op == KB_MAX ? "fmaxf" : "fminf", a, b);
        else snprintf(out, n, "%s %s %s ? %s : %s", a, x->op == KB_MAX ? ">" : "<", b, a, b);
        return;
    }
    bool may_widen = x->op == KB_ADD || x->op == KB_SUB || x->op == KB_MUL;
    snprintf(out, n, "%s%s %s %s", may_widen ? widen(E, (int)(x - E->k->ex)) : "", a, infix[x->op], b);
}

static const char *reduce_init(KType t, int op, bool wide) {
    if (op == KR_SUM) return t == KT_FLOAT ? "0.0f" : "0";
    if (t == KT_FLOAT) return "__int_as_float((int)0xff800000)";
    return wide ? "(-9223372036854775807LL - 1)" : "(-2147483647 - 1)";
}

static void combine_line(Emitter *E, const char *acc, int op, KType t, const char *v) {
    if (op == KR_SUM) line(E, "%s += %s;", acc, v);
    else if (t == KT_FLOAT) line(E, "%s = fmaxf(%s, %s);", acc, acc, v);
    else line(E, "%s = %s > %s ? %s : %s;", acc, v, acc, v, acc);
}

/* Makes node e's value available in the current scope. */
static void emit_expr(Emitter *E, int e) {
    const KExpr *x = &E->k->ex[e];
    if (E->ready[e]) return;
    char text[8 * REFLEN], a[REFLEN], b[REFLEN];
    switch (x->kind) {
    case KE_CONST_F: case KE_CONST_I: case KE_VAR: case KE_SCALAR: case KE_ACC: return;
    case KE_LOAD:
        emit_expr(E, x->a);
        load_text(E, x, text, sizeof text);
        line(E, "const %s e%d = %s;", node_type(E, e), e, text);
        break;
    case KE_UNARY:
        emit_expr(E, x->a);
        unary_text(E, x, text, sizeof text);
        line(E, "const %s e%d = %s;", node_type(E, e), e, text);
        break;
    case KE_BINARY:
        emit_expr(E, x->a);
        emit_expr(E, x->b);
        binary_text(E, x, text, sizeof text);
        line(E, "const %s e%d = %s;", node_type(E, e), e, text);
        break;
    case KE_SELECT:
        emit_expr(E, x->a);
        ref(E, x->a, a, sizeof a);
        line(E, "%s e%d;", node_type(E, e), e);
        line(E, "if (%s) {", a);
        E->indent++;
        open_scope(E);
        emit_expr(E, x->b);
        ref(E, x->b, b, sizeof b);
        line(E, "e%d = %s;", e, b);
        close_scope(E);
        E->indent--;
        line(E, "} else {");
        E->indent++;
        open_scope(E);
        emit_expr(E, x->c);
        ref(E, x->c, b, sizeof b);
        line(E, "e%d = %s;", e, b);
        close_scope(E);
        E->indent--;
        line(E, "}");
        break;
    case KE_REDUCE: {
        char v[16], name[16];
        kir_var_name(v, sizeof v, x->var);
        snprintf(name, sizeof name, "e%d", e);
        line(E, "%s e%d = %s;", node_type(E, e), e, reduce_init(x->type, x->op, E->w.node_wide[e]));
        line(E, "for (%s %s = 0; %s < %lld; ++%s) {", E->itype, v, v, (long long)x->extent, v);
        E->indent++;
        open_scope(E);
        emit_expr(E, x->a);
        ref(E, x->a, a, sizeof a);
        combine_line(E, name, x->op, x->type, a);
        close_scope(E);
        E->indent--;
        line(E, "}");
        break;
    }
    case KE_RAND:
        emit_expr(E, x->a);
        ref(E, x->a, a, sizeof a);
        line(E, "const float e%d = rxc_rand_at(rxc_rand_stream(sc[%d], %lldLL), (long long)%s);", e, SC_RNG_SEED,
             (long long)x->i, a);
        break;
    }
    mark_ready(E, e);
}

static void emit_store(Emitter *E, const KStore *st) {
    const Kernel *k = E->k;
    emit_expr(E, st->index);
    emit_expr(E, st->value);
    char idx[REFLEN], v[REFLEN], name[40];
    ref(E, st->index, idx, sizeof idx);
    ref(E, st->value, v, sizeof v);
    buf_param(k, st->buf, name, sizeof name);
    if (E->lane >= 0 && st->buf < 64 && (E->vec_bufs >> st->buf & 1)) {
        char o[48], in[64];
        lane_text(E, "out", st->buf, o, sizeof o);
        lane_text(E, "in", st->buf, in, sizeof in);
        if (st->accumulate) line(E, "%s = %s + %s;", o, in, v);
        else line(E, "%s = %s;", o, v);
        return;
    }
    switch (k->bufs[st->buf].dtype) {
    case KD_F32:
        if (st->accumulate) line(E, "%s[%s] += %s;", name, idx, v);
        else line(E, "%s[%s] = %s;", name, idx, v);
        break;
    case KD_BF16:
        if (st->accumulate) line(E, "%s[%s] = __float2bfloat16(__bfloat162float(%s[%s]) + %s);", name, idx, name, idx, v);
        else line(E, "%s[%s] = __float2bfloat16(%s);", name, idx, v);
        break;
    case KD_U8:
        if (st->accumulate) line(E, "%s[%s] = (unsigned char)((float)%s[%s] + %s);", name, idx, name, idx, v);
        else line(E, "%s[%s] = (unsigned char)(%s);", name, idx, v);
        break;
    case KD_I64:
        if (st->accumulate) line(E, "%s[%s] += (long long)(%s);", name, idx, v);
        else line(E, "%s[%s] = (long long)(%s);", name, idx, v);
        break;
    }
}

static void emit_stores(Emitter *E, const KStage *st) {
    open_scope(E);
    /* every value of the stage is computed before the first store, so a
     * store never changes what another store of the same stage reads */
    for (int s = 0; s < st->n_stores; s++) {
        emit_expr(E, st->stores[s].index);
        emit_expr(E, st->stores[s].value);
    }
    for (int s = 0; s < st->n_stores; s++) emit_store(E, &st->stores[s]);
    close_scope(E);
}

/* ---- kernels ------------------------------------------------------------------ */

static void emit_signature(Emitter *E, const char *suffix, unsigned threads, bool scratch) {
    const Kernel *k = E->k;
    StrBuf *o = E->out;
    sb_printf(o, "extern \"C\" __global__ void __launch_bounds__(%u) %s%s(", threads, k->name, suffix);
    for (int b = 0; b < k->n_bufs; b++) {
        char name[40];
        buf_param(k, b, name, sizeof name);
        sb_printf(o, "%sRXC_GLOBAL(%s%s) %s", b ? ", " : "", k->bufs[b].written ? "" : "const ",
                  render_cuda_ctype(k->bufs[b].dtype), name);
    }
    sb_printf(o, "%sconst double *sc", k->n_bufs ? ", " : "");
    if (scratch) sb_puts(o, ", RXC_GLOBAL(float) scratch");
    sb_puts(o, ") {\n");
}

static KType acc_type(const Kernel *k, int a) { return k->ex[k->accs[a].value].type; }

static void declare_accs(Emitter *E, int stage) {
    const Kernel *k = E->k;
    for (int a = 0; a < k->n_accs; a++)
        if (k->accs[a].stage == stage)
            line(E, "%s acc%d = %s;", acc_ctype(E, a), a, reduce_init(acc_type(k, a), k->accs[a].op, E->w.acc_wide[a]));
}

/* The accumulations of a stage, and its element stores (KF_COLS), in one
 * scope: what both compute is computed once. */
static void accumulate_stage(Emitter *E, int stage) {
    const Kernel *k = E->k;
    open_scope(E);
    for (int a = 0; a < k->n_accs; a++) {
        if (k->accs[a].stage != stage) continue;
        char v[REFLEN], acc[16];
        emit_expr(E, k->accs[a].value);
        ref(E, k->accs[a].value, v, sizeof v);
        snprintf(acc, sizeof acc, "acc%d", a);
        combine_line(E, acc, k->accs[a].op, acc_type(k, a), v);
    }
    if (k->stages[stage].n_stores) emit_stores(E, &k->stages[stage]);
    close_scope(E);
}

/* ---- loop-invariant hoisting ------------------------------------------------- */

/* Marks what evaluating roots reaches: everything (branches of selects
 * included) into in_stage, and what is evaluated whenever they are into
 * reached. todo has room for 3 * n_ex + n_roots entries. */
static void reach(const Kernel *k, const int *roots, int n_roots, bool *reached, bool *in_stage, int *todo) {
    for (int pass = 0; pass < 2; pass++) {
        bool *mark = pass ? in_stage : reached;
        int n = n_roots;
        for (int r = 0; r < n_roots; r++) todo[r] = roots[r];
        while (n > 0) {
            int e = todo[--n];
            if (mark[e]) continue;
            mark[e] = true;
            const KExpr *x = &k->ex[e];
            switch (x->kind) {
            case KE_LOAD: case KE_UNARY: case KE_REDUCE: case KE_RAND: todo[n++] = x->a; break;
            case KE_SELECT:
                todo[n++] = x->a;
                if (pass) todo[n++] = x->b, todo[n++] = x->c;
                break;
            case KE_BINARY: todo[n++] = x->a, todo[n++] = x->b; break;
            default: break;
            }
        }
    }
}

/* Before a stage's inner loop: computes once per outer index every node of
 * the stage whose hoisting level (kir_analysis.h) is the outer loop, together
 * with all its operands, that is evaluated unconditionally or harmless to
 * evaluate early (a guarded load must stay guarded) and reads no buffer the
 * stage writes. The caller's scope ends with the stage, so a later stage
 * never sees a value from before its own stores. */
static void hoist_stage(Emitter *E, int stage) {
    const Kernel *k = E->k;
    const KStage *st = &k->stages[stage];
    size_t n_ex = (size_t)(k->n_ex ? k->n_ex : 1);
    KirDeps deps;
    kir_deps_init(&deps, k);
    uint64_t *outer_scope = xcalloc((size_t)deps.words, sizeof(uint64_t));
    kir_varset_add(outer_scope, KV_OUTER);
    bool *reached = xcalloc(n_ex, sizeof(bool)), *in_stage = xcalloc(n_ex, sizeof(bool));
    bool *hoistable = xcalloc(n_ex, sizeof(bool));
    bool *written = xcalloc((size_t)(k->n_bufs ? k->n_bufs : 1), sizeof(bool));
    size_t cap = (size_t)(3 * k->n_ex + 2 * st->n_stores + k->n_accs + 1);
    int *todo = xmalloc(sizeof(int) * cap), *roots = xmalloc(sizeof(int) * cap);
    int n_roots = 0;
    for (int q = 0; q < st->n_stores; q++) {
        written[st->stores[q].buf] = true;
        roots[n_roots++] = st->stores[q].index;
        roots[n_roots++] = st->stores[q].value;
    }
    for (int a = 0; a < k->n_accs; a++)
        if (k->accs[a].stage == stage) roots[n_roots++] = k->accs[a].value;
    reach(k, roots, n_roots, reached, in_stage, todo);
    for (int e = 0; e < k->n_ex; e++) {
        const KExpr *x = &k->ex[e];
        bool ok = kir_deps_computable(&deps, e, outer_scope, stage - 1) && !(x->kind == KE_LOAD && written[x->buf]);
        int ops[3] = {x->a, x->b, x->c};
        for (int o = 0; o < 3; o++) ok &= ops[o] < 0 || hoistable[ops[o]];
        hoistable[e] = ok;
    }
    for (int e = 0; e < k->n_ex; e++) {
        KExprKind kind = k->ex[e].kind;
        bool trivial = kind == KE_CONST_F || kind == KE_CONST_I || kind == KE_VAR || kind == KE_SCALAR || kind == KE_ACC;
        if (in_stage[e] && (reached[e] || deps.spec_safe[e]) && hoistable[e] && !trivial) emit_expr(E, e);
    }
    kir_deps_free(&deps);
    free(outer_scope);
    free(reached);
    free(in_stage);
    free(hoistable);
    free(written);
    free(todo);
    free(roots);
}

static void emit_rows_thread(Emitter *E, const CudaLaunch *l) {
    const Kernel *k = E->k;
    const char *it = E->itype;
    emit_signature(E, "", l->block[0], false);
    E->indent = 1;
    line(E, "for (%s i = (%s)blockIdx.x * %u + threadIdx.x; i < %lld; i += (%s)gridDim.x * %u) {", it, it,
         l->block[0], (long long)k->outer, it, l->block[0]);
    E->indent++;
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        line(E, "/* stage %d: %s */", s, st->kind == KS_REDUCE ? "reduce" : st->kind == KS_MAP ? "map" : "store");
        if (st->kind == KS_STORE) {
            line(E, "{");
            E->indent++;
            emit_stores(E, st);
            E->indent--;
            line(E, "}");
            continue;
        }
        if (st->kind == KS_REDUCE) declare_accs(E, s);
        line(E, "{");
        E->indent++;
        open_scope(E);
        hoist_stage(E, s);
        line(E, "for (%s j = 0; j < %lld; ++j) {", it, (long long)k->inner);
        E->indent++;
        if (st->kind == KS_REDUCE) accumulate_stage(E, s);
        else emit_stores(E, st);
        E->indent--;
        line(E, "}");
        close_scope(E);
        E->indent--;
        line(E, "}");
    }
    E->indent--;
    line(E, "}");
    sb_puts(E->out, "}\n\n");
}

/* ---- vector variants of pointwise kernels (launch_cuda.c chooses the buffers) ---- */

/* Sets *loads / *stores when kernel k's 8-wide variant loads / stores a bf16 vector. */
static void bf16_vector_use(const Kernel *k, const CudaLaunch *l, bool *loads, bool *stores) {
    if (!l->has_vec4 || l->vec_width != 8) return;
    uint64_t bf16 = 0;
    for (int b = 0; b < k->n_bufs && b < 64; b++)
        if (k->bufs[b].dtype == KD_BF16) bf16 |= 1ULL << b;
    bf16 &= l->vec4_bufs;
    for (int e = 0; e < k->n_ex; e++)
        if (k->ex[e].kind == KE_LOAD && (bf16 >> k->ex[e].buf & 1)) *loads = true;
    const KStage *st = &k->stages[0];
    for (int q = 0; q < st->n_stores; q++)
        if (bf16 >> st->stores[q].buf & 1) *stores = true, *loads |= st->stores[q].accumulate; /* += reads */
}

static void emit_rows_vec4(Emitter *E, const CudaLaunch *l) {
    const Kernel *k = E->k;
    const char *it = E->itype;
    const KStage *st = &k->stages[0];
    uint64_t loaded = 0, stored = 0;
    for (int e = 0; e < k->n_ex; e++)
        if (k->ex[e].kind == KE_LOAD) loaded |= 1ULL << k->ex[e].buf;
    for (int q = 0; q < st->n_stores; q++) {
        stored |= 1ULL << st->stores[q].buf;
        if (st->stores[q].accumulate) loaded |= 1ULL << st->stores[q].buf;
    }
    loaded &= l->vec4_bufs;
    stored &= l->vec4_bufs;
    int w = l->vec_width;
    emit_signature(E, "_v4", l->block[0], false);
    E->indent = 1;
    line(E, "for (%s q = (%s)blockIdx.x * %u + threadIdx.x; q < %lld; q += (%s)gridDim.x * %u) {", it, it, l->block[0],
         (long long)k->outer / w, it, l->block[0]);
    E->indent++;
    for (int b = 0; b < k->n_bufs; b++) {
        char name[40];
        buf_param(k, b, name, sizeof name);
        bool f32 = k->bufs[b].dtype == KD_F32;
        if (w == 4) {
            if (loaded >> b & 1) line(E, "const float4 in%d = RXC_LOAD4(%s, q);", b, name);
            if (stored >> b & 1) line(E, "float4 out%d;", b);
        } else if (f32) {
            if (loaded >> b & 1)
                line(E, "const float4 in%d_0 = RXC_LOAD4(%s, 2 * q), in%d_1 = RXC_LOAD4(%s, 2 * q + 1);", b, name, b, name);
            if (stored >> b & 1) line(E, "float4 out%d_0, out%d_1;", b, b);
        } else {
            if (loaded >> b & 1) line(E, "const uint4 in%d = RXC_LOAD_U4(%s, q);", b, name);
            if (stored >> b & 1) line(E, "float out%d[8];", b);
        }
    }
    E->vec_bufs = l->vec4_bufs;
    E->vec_width = w;
    for (int lane = 0; lane < w; lane++) {
        line(E, "{");
        E->indent++;
        open_scope(E);
        E->lane = lane;
        line(E, "const %s i = q * %d + %d;", it, w, lane);
        line(E, "(void)i; /* used only by the %s accesses in some kernels */", w == 4 ? "float4" : "vector");
        emit_stores(E, st);
        close_scope(E);
        E->indent--;
        line(E, "}");
    }
    E->lane = -1;
    for (int b = 0; b < k->n_bufs; b++) {
        char name[40];
        buf_param(k, b, name, sizeof name);
        if (!(stored >> b & 1)) continue;
        if (w == 4) line(E, "RXC_STORE4(%s, q, out%d);", name, b);
        else if (k->bufs[b].dtype == KD_F32)
            line(E, "RXC_STORE4(%s, 2 * q, out%d_0), RXC_STORE4(%s, 2 * q + 1, out%d_1);", name, b, name, b);
        else
            line(E, "RXC_STORE_U4(%s, q, make_uint4(rxc_bf16_pair(out%d[0], out%d[1]), rxc_bf16_pair(out%d[2], out%d[3]), "
                 "rxc_bf16_pair(out%d[4], out%d[5]), rxc_bf16_pair(out%d[6], out%d[7])));", name, b, b, b, b, b, b, b, b);
    }
    E->indent--;
    line(E, "}");
    sb_puts(E->out, "}\n\n");
}

/* KF_ROWS, a block or a warp per row: threads (lanes) stride over j, each
 * stage's accumulators are combined by a fixed tree and read back by every
 * thread, the store stage runs on thread 0. */
static void emit_rows_block(Emitter *E, const CudaLaunch *l) {
    const Kernel *k = E->k;
    const char *it = E->itype;
    const bool warp = l->mapping == CM_WARP_PER_ROW;
    unsigned threads = warp ? 32 : l->block[0], warps = threads / 32;
    emit_signature(E, "", l->block[0], false);
    E->indent = 1;
    bool any_int = false;
    for (int a = 0; a < k->n_accs; a++) any_int |= acc_type(k, a) != KT_FLOAT;
    if (warp) {
        line(E, "const int rxc_lane = threadIdx.x & 31;");
        line(E, "for (%s i = (%s)blockIdx.x * %u + (threadIdx.x >> 5); i < %lld; i += (%s)gridDim.x * %u) {", it, it,
             l->block[0] / 32, (long long)k->outer, it, l->block[0] / 32);
    } else {
        if (k->n_accs) line(E, "RXC_SHARED(%s, rxc_red, 33);", any_int ? "double" : "float");
        line(E, "for (%s i = blockIdx.x; i < %lld; i += gridDim.x) {", it, (long long)k->outer);
    }
    const char *tid = warp ? "rxc_lane" : "threadIdx.x";
    E->indent++;
    bool *loaded = xcalloc((size_t)(k->n_bufs ? k->n_bufs : 1), sizeof(bool));
    bool *stored = xcalloc((size_t)(k->n_bufs ? k->n_bufs : 1), sizeof(bool));
    for (int e = 0; e < k->n_ex; e++)
        if (k->ex[e].kind == KE_LOAD) loaded[k->ex[e].buf] = true;
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        /* other threads of the block wrote elements an earlier stage stored:
         * make them visible before this stage reads (rows_want_warp rules
         * this out for a warp per row) */
        bool hazard = false;
        for (int b = 0; b < k->n_bufs; b++) hazard |= stored[b] && loaded[b];
        if (hazard) line(E, "__syncthreads();");
        for (int q = 0; q < st->n_stores; q++) stored[st->stores[q].buf] = true;
        line(E, "/* stage %d: %s */", s, st->kind == KS_REDUCE ? "reduce" : st->kind == KS_MAP ? "map" : "store");
        if (st->kind == KS_STORE) {
            line(E, "if (%s == 0) {", tid);
            E->indent++;
            emit_stores(E, st);
            E->indent--;
            line(E, "}");
            continue;
        }
        if (st->kind == KS_REDUCE) declare_accs(E, s);
        line(E, "{");
        E->indent++;
        open_scope(E);
        hoist_stage(E, s);
        line(E, "for (%s j = %s; j < %lld; j += %u) {", it, tid, (long long)k->inner, threads);
        E->indent++;
        if (st->kind == KS_REDUCE) accumulate_stage(E, s);
        else emit_stores(E, st);
        E->indent--;
        line(E, "}");
        close_scope(E);
        E->indent--;
        line(E, "}");
        if (st->kind != KS_REDUCE) continue;
        for (int a = 0; a < k->n_accs; a++) {
            if (k->accs[a].stage != s) continue;
            const char *max = k->accs[a].op == KR_MAX ? "true" : "false";
            if (warp) /* lane 0's total, to every lane */
                line(E, "acc%d = __shfl_sync(0xffffffffu, rxc_warp_reduce<%s, %s>(acc%d), 0);", a, acc_ctype(E, a), max, a);
            else line(E, "acc%d = rxc_block_reduce<%s, %s, %u>(acc%d, rxc_red);", a, acc_ctype(E, a), max, warps, a);
        }
    }
    E->indent--;
    line(E, "}");
    sb_puts(E->out, "}\n\n");
    free(loaded);
    free(stored);
}

/* KF_COLS, part 1: rows of one chunk for a tile of columns, partials to scratch. */
static void emit_cols_partial(Emitter *E, const CudaLaunch *l) {
    const Kernel *k = E->k;
    const char *it = E->itype;
    const int tile = (int)l->block[0], lanes = (int)l->block[1];
    emit_signature(E, "", l->block[0] * l->block[1], true);
    E->indent = 1;
    int n_accs = k->n_accs ? k->n_accs : 1;
    bool any_int = false;
    for (int a = 0; a < k->n_accs; a++) any_int |= acc_type(k, a) != KT_FLOAT;
    const char *st = any_int ? "double" : "float";
    line(E, "RXC_SHARED(%s, rxc_part, %d);", st, n_accs * tile * lanes);
    line(E, "const %s i = (%s)blockIdx.x * %d + threadIdx.x;", it, it, tile);
    line(E, "const long long chunk = blockIdx.y;");
    const long long chunks = (long long)l->row_chunks;
    line(E, "const %s j_begin = (%s)(chunk * %lldLL / %lldLL);", it, it, (long long)k->inner, chunks);
    line(E, "const %s j_end = (%s)((chunk + 1) * %lldLL / %lldLL);", it, it, (long long)k->inner, chunks);
    declare_accs(E, 0);
    line(E, "if (i < %lld) {", (long long)k->outer);
    E->indent++;
    open_scope(E);
    hoist_stage(E, 0);
    line(E, "for (%s j = j_begin + threadIdx.y; j < j_end; j += %d) {", it, lanes);
    E->indent++;
    accumulate_stage(E, 0);
    E->indent--;
    line(E, "}");
    close_scope(E);
    E->indent--;
    line(E, "}");
    for (int a = 0; a < k->n_accs; a++)
        line(E, "rxc_part[(%d * %d + threadIdx.y) * %d + threadIdx.x] = acc%d;", a, lanes, tile, a);
    line(E, "__syncthreads();");
    line(E, "/* a fixed tree over the row lanes: the same order on every run */");
    line(E, "#pragma unroll");
    line(E, "for (int half = %d; half > 0; half >>= 1) {", lanes / 2);
    E->indent++;
    line(E, "if (threadIdx.y < half) {");
    E->indent++;
    for (int a = 0; a < k->n_accs; a++) {
        char lhs[96], rhs[96];
        snprintf(lhs, sizeof lhs, "rxc_part[(%d * %d + threadIdx.y) * %d + threadIdx.x]", a, lanes, tile);
        snprintf(rhs, sizeof rhs, "rxc_part[(%d * %d + threadIdx.y + half) * %d + threadIdx.x]", a, lanes, tile);
        if (k->accs[a].op == KR_SUM) line(E, "%s = %s + %s;", lhs, lhs, rhs);
        else line(E, "%s = %s > %s ? %s : %s;", lhs, rhs, lhs, rhs, lhs);
    }
    E->indent--;
    line(E, "}");
    line(E, "__syncthreads();");
    E->indent--;
    line(E, "}");
    line(E, "if (threadIdx.y == 0 && i < %lld) {", (long long)k->outer);
    E->indent++;
    for (int a = 0; a < k->n_accs; a++)
        line(E, "scratch[(%d * %lld + chunk) * %lld + i] = (float)rxc_part[(%d * %d) * %d + threadIdx.x];", a,
             (long long)l->row_chunks, (long long)k->outer, a, lanes, tile);
    E->indent--;
    line(E, "}");
    sb_puts(E->out, "}\n\n");
}

/* KF_COLS, part 2: a warp per column. Lane l combines the chunk partials
 * l, l + 32, l + 64, ... in chunk order, a fixed shuffle tree combines the 32
 * lanes (rxc_warp_reduce: the same order on every run, whatever the timing),
 * and lane 0 runs the store stage. */
static void emit_cols_finish(Emitter *E, const CudaLaunch *l) {
    const Kernel *k = E->k;
    const char *it = E->itype;
    const unsigned warps = l->finish_block / 32;
    const long long chunks = (long long)l->row_chunks, outer = (long long)k->outer;
    /* the scratch offset is the renderer's own: 64-bit when it needs it */
    const bool wide = (double)k->n_accs * (double)chunks * (double)outer > KIR_INT32_LIMIT;
    emit_signature(E, "_finish", l->finish_block, true);
    E->indent = 1;
    line(E, "const int rxc_lane = threadIdx.x & 31;");
    line(E, "for (%s i = (%s)blockIdx.x * %u + (threadIdx.x >> 5); i < %lld; i += (%s)gridDim.x * %u) {", it, it, warps,
         outer, it, warps);
    E->indent++;
    for (int a = 0; a < k->n_accs; a++) {
        KType t = acc_type(k, a);
        const char *ct = acc_ctype(E, a);
        line(E, "%s acc%d = %s;", ct, a, reduce_init(t, k->accs[a].op, E->w.acc_wide[a]));
        line(E, "for (int c = rxc_lane; c < %lld; c += 32) {", chunks);
        E->indent++;
        char part[128], acc[16];
        snprintf(part, sizeof part, "(%s)scratch[(%d * %lld%s + c) * %lld + i]", ct, a, chunks, wide ? "LL" : "", outer);
        snprintf(acc, sizeof acc, "acc%d", a);
        combine_line(E, acc, k->accs[a].op, t, part);
        E->indent--;
        line(E, "}");
        line(E, "acc%d = rxc_warp_reduce<%s, %s>(acc%d);", a, ct, k->accs[a].op == KR_MAX ? "true" : "false", a);
    }
    line(E, "if (rxc_lane == 0) {");
    E->indent++;
    open_scope(E);
    emit_stores(E, &k->stages[1]);
    close_scope(E);
    E->indent--;
    line(E, "}");
    E->indent--;
    line(E, "}");
    sb_puts(E->out, "}\n\n");
}

static void emit_kernel(StrBuf *out, const Kernel *k, const CudaLaunch *l) {
    Emitter E = {.k = k, .out = out, .itype = l->wide_index ? "long long" : "int", .w = kir_int_widths(k), .lane = -1};
    E.ready = xcalloc((size_t)(k->n_ex ? k->n_ex : 1), sizeof(bool));
    sb_printf(out, "/* %s: %s", k->name, k->form == KF_COLS ? "columns" : "rows");
    sb_printf(out, ", outer %lld, inner %lld", (long long)k->outer, (long long)k->inner);
    if (k->form == KF_COLS) sb_printf(out, ", %lld row chunks", (long long)k->row_chunks);
    if (k->fuses && *k->fuses) {
        sb_puts(out, "\n * fuses: ");
        for (const char *s = k->fuses; *s; s++) {
            if (s[0] == '*' && s[1] == '/') sb_puts(out, "* ");
            else sb_putc(out, *s == '\n' ? ' ' : *s);
        }
    }
    for (int b = 0; b <= k->n_bufs && getenv("RXC_CUDA_EXTENTS"); b++) /* test hook: sizes for tests/cuda/fake_gpu.cc */
        sb_printf(out, b == k->n_bufs ? " scratch %lld" : b ? " %lld" : "\n * extents: %lld", b == k->n_bufs ? (long long)l->scratch_floats : (long long)k->bufs[b].numel);
    sb_puts(out, " */\n");
    switch (l->mapping) {
    case CM_THREAD_PER_ROW:
        emit_rows_thread(&E, l);
        if (l->has_vec4) emit_rows_vec4(&E, l);
        break;
    case CM_BLOCK_PER_ROW:
    case CM_WARP_PER_ROW: emit_rows_block(&E, l); break;
    case CM_COLUMN_TILES:
        emit_cols_partial(&E, l);
        emit_cols_finish(&E, l);
        break;
    }
    free(E.ready);
    kir_int_widths_free(&E.w);
    free(E.undo);
    free(E.marks);
}

char *render_cuda(const KirModule *m, CudaLaunch **launches) {
    StrBuf out = {0};
    sb_puts(&out, prelude);
    bool uses_rand = false;
    for (int i = 0; i < m->n; i++)
        for (int e = 0; e < m->kernels[i]->n_ex; e++) uses_rand |= m->kernels[i]->ex[e].kind == KE_RAND;
    if (uses_rand) { /* unused static functions would be warnings */
        sb_puts(&out, kir_rand_source);
        sb_puts(&out, "\n");
    }
    sb_puts(&out, block_reduce);
    CudaLaunch *ls = xcalloc((size_t)(m->n ? m->n : 1), sizeof *ls);
    /* the bf16 lane helpers only where used: an unused static function is an NVRTC warning */
    bool loads = false, stores = false;
    for (int i = 0; i < m->n; i++) {
        ls[i] = render_cuda_launch(m->kernels[i]);
        bf16_vector_use(m->kernels[i], &ls[i], &loads, &stores);
    }
    if (loads) sb_puts(&out, bf16_vector_load_source);
    if (stores) sb_puts(&out, bf16_vector_store_source);
    for (int i = 0; i < m->n; i++) emit_kernel(&out, m->kernels[i], &ls[i]);
    if (launches) *launches = ls;
    else free(ls);
    return sb_take(&out);
}
