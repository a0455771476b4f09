/*
 * render_c.c — renders a kernel IR module (kir.h) to one C11 translation
 * unit for the CPU: each kernel becomes
 *     void NAME(void *const *bufs, const double *sc)
 * parallel over its outer loop (KF_ROWS) or over fixed row chunks (KF_COLS)
 * with OpenMP.
 *
 * Expression nodes become SSA locals (`eN`). Each node is emitted in the
 * outermost scope where all its loop variables exist and the accumulators
 * it reads are final, so loop-invariant work is hoisted out of inner loops.
 * KE_SELECT is lazy: a node reached only through a select branch is hoisted
 * only when evaluating it early is harmless (no load, no inner reduction, no
 * division by a non-constant integer); otherwise it is computed inside the
 * branch, which is what makes `select(in_bounds, load(...), 0)` safe.
 *
 * Each integer is int32_t unless the shared range analysis (kir_analysis.h)
 * finds that it may not fit, then int64_t, the width render_cuda.c uses for
 * it too: 32-bit lanes vectorise twice as wide. Where a node is placed, and
 * whether it may be evaluated early, comes from the same analysis.
 *
 * Loops over a variable decomposed by div/mod are split into nested loops
 * (choose_split), and values that depend only on a reduce variable and
 * outer loops are tabulated once per tap (expand_tables). Loops whose
 * iterations the IR makes independent carry `#pragma omp simd`.
 *
 * Sum order is fixed by the IR alone (sequential over j and reduce
 * variables; KF_COLS: per row chunk, then chunks in order), never by the
 * number of threads; SIMD lanes never split a sum.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kir_analysis.h"
#include "kir_text.h"
#include "render_c.h"
#include "util.h"

/* Below this many estimated operations a kernel runs on one thread: waking
 * the team costs more than it saves. Results do not depend on it. */
#define PARALLEL_MIN_WORK 32768

typedef struct Renderer {
    const Kernel *k;
    StrBuf *out;
    int indent;
    KirDeps deps;         /* per node: loop variables (with the split's q and r), accumulator stage, spec safety */
    KirWidths widths;     /* per integer: 32 or 64 bits (kir_analysis.h) */
    bool *avail;          /* per node: a local for it is visible here */
    int *avail_stack, n_avail, cap_avail;
    uint64_t *scope_vars; /* loop variables defined at the current point */
    int allowed_acc;      /* accumulators of stages <= this are final here */
    const char *itype;    /* loop counters: int32_t or int64_t */
    int *rand_stream;     /* per node: index of the rand stream local (KE_RAND) */
    /* Loop splitting (see choose_split): the innermost loop variable
     * split_var = q * split_c + r, with q and r pseudo-variables. */
    int split_var;        /* KV_OUTER, KV_INNER, or -1 */
    int64_t split_c;
    int q_var, r_var;     /* pseudo-variable ids (>= n_vars) */
    int mod_node, div_node; /* the nodes split_var % c and split_var / c, or -1 */
    bool expanding;       /* place() may precompute reduce-variable tables here */
    int *expanded;        /* per node: the reduce variable its table is indexed by, or -1 */
} Renderer;

/* ---- node properties ------------------------------------------------------ */

static bool vars_in_scope(Renderer *r, int id) { return kir_deps_computable(&r->deps, id, r->scope_vars, INT_MAX); }

/* The shared analysis, with the loop split's renaming: after a split the
 * variable is q*c + r, and its remainder and quotient by c are the
 * pseudo-variables themselves. */
static void analyse(Renderer *r) {
    const Kernel *k = r->k;
    int n = k->n_ex ? k->n_ex : 1;
    kir_deps_alloc(&r->deps, k, 2);
    if (r->split_var >= 0)
        for (int id = 0; id < k->n_ex; id++) {
            bool is_var = k->ex[id].kind == KE_VAR && k->ex[id].var == r->split_var;
            if (is_var || id == r->mod_node) kir_deps_pin(&r->deps, id, r->r_var);
            if (is_var || id == r->div_node) kir_deps_pin(&r->deps, id, r->q_var);
        }
    kir_deps_compute(&r->deps, k);
    r->widths = kir_int_widths(k);
    r->itype = r->widths.loops_wide ? "int64_t" : "int32_t";
    r->avail = xcalloc((size_t)n, sizeof(bool));
    r->scope_vars = xcalloc((size_t)r->deps.words, sizeof(uint64_t));
    r->rand_stream = xcalloc((size_t)n, sizeof(int));
    r->expanded = xmalloc((size_t)n * sizeof(int));
    for (int id = 0; id < n; id++) r->expanded[id] = -1;
}

/* Loop splitting. Flattened NHWC index math decomposes a loop variable v by
 * div/mod (c = v % C, pixel = v / C): computed per element that costs a
 * division and makes every per-channel load a gather. When the kernel has a
 * node v % c with c dividing v's extent, the loop over v becomes
 *     for (vq < extent / c) for (vr < c) { v = vq * c + vr; ... }
 * where v % c is vr and v / c is vq: per-channel loads become contiguous,
 * and everything that depends on v / c only (the pixel's coordinates, a
 * padding guard) is hoisted out of the inner loop by the usual placement.
 * Split: the outer variable of a ROWS kernel made only of KS_STORE stages
 * with inner 1 (pointwise kernels), or the inner variable of a ROWS kernel
 * (im2col-like MAP stages). The smallest such c is the fastest-varying
 * dimension. */
static void choose_split(Renderer *r) {
    const Kernel *k = r->k;
    r->split_var = -1;
    r->mod_node = r->div_node = -1;
    if (k->form != KF_ROWS) return;
    bool store_only = true;
    for (int s = 0; s < k->n_stages; s++) store_only &= k->stages[s].kind == KS_STORE;
    int var;
    int64_t extent;
    if (k->inner == 1 && store_only) var = KV_OUTER, extent = k->outer;
    else if (k->inner > 1 && !store_only) var = KV_INNER, extent = k->inner;
    else return;
    int64_t best = 0;
    for (int id = 0; id < k->n_ex; id++) {
        const KExpr *e = &k->ex[id];
        if (e->kind != KE_BINARY || e->op != KB_MOD) continue;
        const KExpr *a = &k->ex[e->a], *b = &k->ex[e->b];
        if (a->kind != KE_VAR || a->var != var || b->kind != KE_CONST_I) continue;
        if (b->i < 2 || b->i >= extent || extent % b->i != 0) continue;
        if (best == 0 || b->i < best) best = b->i, r->mod_node = id;
    }
    if (!best) return;
    for (int id = 0; id < k->n_ex; id++) {
        const KExpr *e = &k->ex[id];
        if (e->kind == KE_BINARY && e->op == KB_IDIV && k->ex[e->a].kind == KE_VAR && k->ex[e->a].var == var &&
            k->ex[e->b].kind == KE_CONST_I && k->ex[e->b].i == best)
            r->div_node = id;
    }
    r->split_var = var;
    r->split_c = best;
    r->q_var = k->n_vars;
    r->r_var = k->n_vars + 1;
}

/* ---- text helpers --------------------------------------------------------- */

static void line(Renderer *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(Renderer *r, const char *fmt, ...) {
    for (int i = 0; i < r->indent; i++) sb_puts(r->out, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(r->out, fmt, ap);
    va_end(ap);
    sb_putc(r->out, '\n');
}

static void open_block(Renderer *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void open_block(Renderer *r, const char *fmt, ...) {
    for (int i = 0; i < r->indent; i++) sb_puts(r->out, "    ");
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(r->out, fmt, ap);
    va_end(ap);
    sb_puts(r->out, " {\n");
    r->indent++;
    GROW(r->avail_stack, r->cap_avail, r->n_avail + 1);
    r->avail_stack[r->n_avail++] = -1; /* block marker */
}

static void close_block(Renderer *r) {
    while (r->n_avail > 0) {
        int id = r->avail_stack[--r->n_avail];
        if (id < 0) break;
        r->avail[id] = false;
        r->expanded[id] = -1;
    }
    r->indent--;
    line(r, "}");
}

static void mark_avail(Renderer *r, int id) {
    r->avail[id] = true;
    GROW(r->avail_stack, r->cap_avail, r->n_avail + 1);
    r->avail_stack[r->n_avail++] = id;
}

static const char *int_ctype(bool wide) { return wide ? "int64_t" : "int32_t"; }

/* The C type of node id's value. */
static const char *node_ctype(Renderer *r, int id) {
    KType t = r->k->ex[id].type;
    return t == KT_FLOAT ? "float" : t == KT_INT ? int_ctype(r->widths.node_wide[id]) : "int";
}

static const char *acc_ctype(Renderer *r, int a) {
    return r->k->ex[r->k->accs[a].value].type == KT_FLOAT ? "float" : int_ctype(r->widths.acc_wide[a]);
}

static const KirNonFinite c_non_finite = {"NAN", "INFINITY", "(-INFINITY)"};

/* The text that denotes node id where it is visible: literals and loop
 * variables inline, everything else its SSA local. */
static void ref(Renderer *r, int id, char *buf, size_t n) {
    const KExpr *e = &r->k->ex[id];
    if (id == r->mod_node || id == r->div_node) {
        char v[16];
        kir_var_name(v, sizeof v, r->split_var);
        snprintf(buf, n, "%s%s", v, id == r->mod_node ? "r" : "q");
        return;
    }
    if (r->expanded[id] >= 0) {
        char v[16];
        kir_var_name(v, sizeof v, r->expanded[id]);
        snprintf(buf, n, "t%d[%s]", id, v);
        return;
    }
    switch (e->kind) {
    case KE_CONST_F: kir_float_literal(buf, n, e->f, &c_non_finite); break;
    case KE_CONST_I: kir_int_literal(buf, n, e->i); break;
    case KE_VAR: kir_var_name(buf, n, e->var); break;
    default: snprintf(buf, n, "e%d", id); break;
    }
}

static bool is_inline(Renderer *r, int id) {
    const KExpr *e = &r->k->ex[id];
    return e->kind == KE_CONST_F || e->kind == KE_CONST_I || e->kind == KE_VAR || id == r->mod_node ||
           id == r->div_node;
}

/* ---- emission ------------------------------------------------------------- */

static void ensure(Renderer *r, int id);
static void place(Renderer *r, const int *roots, int n_roots);

/* The load e at index text idx. */
static void load_text(Renderer *r, const KExpr *e, const char *idx, char *buf, size_t n) {
    switch (r->k->bufs[e->buf].dtype) {
    case KD_F32: snprintf(buf, n, "b%d[%s]", e->buf, idx); break;
    case KD_BF16: snprintf(buf, n, "rxc_from_bf16(b%d[%s])", e->buf, idx); break;
    case KD_U8: snprintf(buf, n, "(float)b%d[%s]", e->buf, idx); break;
    case KD_I64: snprintf(buf, n, "(%s)b%d[%s]", node_ctype(r, (int)(e - r->k->ex)), e->buf, idx); break;
    }
}

static void unary_text(Renderer *r, const KExpr *e, const char *a, char *text, size_t n) {
    switch ((KUnOp)e->op) {
    case KU_NEG: snprintf(text, n, "-%s", a); break;
    case KU_EXP: snprintf(text, n, "expf(%s)", a); break;
    case KU_LOG: snprintf(text, n, "logf(%s)", a); break;
    case KU_SQRT: snprintf(text, n, "sqrtf(%s)", a); break;
    case KU_RSQRT: snprintf(text, n, "1.0f / sqrtf(%s)", a); break;
    case KU_ABS:
        if (e->type == KT_FLOAT) snprintf(text, n, "fabsf(%s)", a);
        else snprintf(text, n, "(%s < 0 ? -%s : %s)", a, a, a);
        break;
    case KU_RECIP: snprintf(text, n, "1.0f / %s", a); break;
    case KU_SIGMOID: snprintf(text, n, "1.0f / (1.0f + expf(-%s))", a); break;
    case KU_TO_FLOAT: snprintf(text, n, "(float)%s", a); break;
    case KU_TO_INT: snprintf(text, n, "(%s)%s", node_ctype(r, (int)(e - r->k->ex)), a); break;
    case KU_NOT: snprintf(text, n, "!%s", a); break;
    case KU_TANH: snprintf(text, n, "tanhf(%s)", a); break;
    case KU_ERF: snprintf(text, n, "erff(%s)", a); break;
    case KU_EXPM1: snprintf(text, n, "expm1f(%s)", a); break;
    }
}

static void binary_text(Renderer *r, const KExpr *e, const char *a, const char *b, char *text, size_t n) {
    static const char *const infix[] = {"+", "-", "*", "/", NULL, NULL, "/", "%", "<", "<=", "==", "!=", "&", "|"};
    if (e->op == KB_MAX || e->op == KB_MIN) {
        /* `a > b ? a : b` rather than fmaxf: it maps to one vector max
         * instruction without -ffast-math. */
        const char *cmp = e->op == KB_MAX ? ">" : "<";
        snprintf(text, n, "%s %s %s ? %s : %s", a, cmp, b, a, b);
    } else {
        /* Only a sum, difference or product can leave its operands' width;
         * a wide one is computed in 64 bits. */
        bool widen = e->type == KT_INT && (e->op == KB_ADD || e->op == KB_SUB || e->op == KB_MUL) &&
                     r->widths.node_wide[e - r->k->ex];
        snprintf(text, n, "%s%s %s %s", widen ? "(int64_t)" : "", a, infix[e->op], b);
    }
}

/* The expression text of a select branch when it needs no statements of its
 * own: visible values, loads, arithmetic and nested selects over them, as
 * one C expression. C's `?:` evaluates only the chosen side, so loads stay
 * guarded, and a single expression is what compilers turn into masked
 * vector loads. Small trees only; false when the text would not fit. */
static bool branch_inline(Renderer *r, int id, char *buf, size_t n, int depth) {
    const KExpr *e = &r->k->ex[id];
    if (is_inline(r, id) || r->avail[id]) {
        ref(r, id, buf, n);
        return true;
    }
    if (depth > 4 || n < 64) return false;
    char a[256], b[256], c[256], text[1280];
    switch (e->kind) {
    case KE_LOAD:
        if (!branch_inline(r, e->a, a, sizeof a, depth + 1)) return false;
        load_text(r, e, a, text, sizeof text);
        break;
    case KE_UNARY:
        if (!branch_inline(r, e->a, a, sizeof a, depth + 1)) return false;
        unary_text(r, e, a, text, sizeof text);
        break;
    case KE_BINARY:
        if (!branch_inline(r, e->a, a, sizeof a, depth + 1) || !branch_inline(r, e->b, b, sizeof b, depth + 1))
            return false;
        binary_text(r, e, a, b, text, sizeof text);
        break;
    case KE_SELECT:
        if (!branch_inline(r, e->a, a, sizeof a, depth + 1) || !branch_inline(r, e->b, b, sizeof b, depth + 1) ||
            !branch_inline(r, e->c, c, sizeof c, depth + 1))
            return false;
        snprintf(text, sizeof text, "%s ? %s : %s", a, b, c);
        break;
    default: return false; /* reductions, random numbers, scalars: statements */
    }
    size_t len = strlen(text);
    if (len + 3 > n || len + 3 > 250) return false;
    snprintf(buf, n, "(%s)", text);
    return true;
}

static void emit_node(Renderer *r, int id) {
    const Kernel *k = r->k;
    const KExpr *e = &k->ex[id];
    const char *t = node_ctype(r, id);
    char a[256], b[256], c[256], text[1280];
    if (is_inline(r, id)) return;
    switch (e->kind) {
    case KE_CONST_F: case KE_CONST_I: case KE_VAR: return;
    case KE_SCALAR: line(r, "const float e%d = (float)sc[%d];", id, e->scalar); break;
    case KE_LOAD:
        ensure(r, e->a);
        ref(r, e->a, a, sizeof a);
        load_text(r, e, a, text, sizeof text);
        line(r, "const %s e%d = %s;", t, id, text);
        break;
    case KE_ACC: line(r, "const %s e%d = a%d;", t, id, e->acc); break;
    case KE_RAND:
        ensure(r, e->a);
        ref(r, e->a, a, sizeof a);
        line(r, "const float e%d = rxc_rand_at(rs%d, (long long)%s);", id, r->rand_stream[id], a);
        break;
    case KE_UNARY:
        ensure(r, e->a);
        ref(r, e->a, a, sizeof a);
        unary_text(r, e, a, text, sizeof text);
        line(r, "const %s e%d = %s;", t, id, text);
        break;
    case KE_BINARY:
        ensure(r, e->a);
        ensure(r, e->b);
        ref(r, e->a, a, sizeof a);
        ref(r, e->b, b, sizeof b);
        binary_text(r, e, a, b, text, sizeof text);
        line(r, "const %s e%d = %s;", t, id, text);
        break;
    case KE_SELECT: {
        ensure(r, e->a);
        ref(r, e->a, a, sizeof a);
        if (branch_inline(r, e->b, b, sizeof b, 0) && branch_inline(r, e->c, c, sizeof c, 0)) {
            line(r, "const %s e%d = %s ? %s : %s;", t, id, a, b, c);
            break;
        }
        line(r, "%s e%d;", t, id);
        open_block(r, "if (%s)", a);
        ensure(r, e->b);
        ref(r, e->b, b, sizeof b);
        line(r, "e%d = %s;", id, b);
        close_block(r);
        open_block(r, "else");
        ensure(r, e->c);
        ref(r, e->c, c, sizeof c);
        line(r, "e%d = %s;", id, c);
        close_block(r);
        break;
    }
    case KE_REDUCE: {
        char v[16];
        kir_var_name(v, sizeof v, e->var);
        const char *init = e->op == KR_SUM ? (e->type == KT_FLOAT ? "0.0f" : "0")
                                           : (e->type == KT_FLOAT ? "-INFINITY" : r->widths.node_wide[id] ? "INT64_MIN" : "INT32_MIN");
        line(r, "%s e%d = %s;", t, id, init);
        open_block(r, "for (%s %s = 0; %s < %lld; %s++)", r->itype, v, v, (long long)e->extent, v);
        kir_varset_add(r->scope_vars, e->var);
        place(r, &e->a, 1);
        ensure(r, e->a);
        ref(r, e->a, a, sizeof a);
        if (e->op == KR_SUM) line(r, "e%d = e%d + %s;", id, id, a);
        else line(r, "e%d = %s > e%d ? %s : e%d;", id, a, id, a, id);
        kir_varset_remove(r->scope_vars, e->var);
        close_block(r);
        break;
    }
    }
    mark_avail(r, id);
}

static void ensure(Renderer *r, int id) {
    if (r->avail[id] || is_inline(r, id)) return;
    emit_node(r, id);
}

/* Reduce-variable tables. A reduce loop nested inside a loop it does not
 * depend on (col2im: taps inside the channel loop; a direct convolution:
 * taps inside the output-channel loop) would recompute, for every inner
 * iteration, everything that depends only on the tap and outer variables:
 * padding guards, source offsets, weights. Placed before that inner loop,
 * those values are computed once per tap into small arrays `tN[v]`, and
 * the reduce loop reads them. Only nodes that are needed unconditionally
 * or are harmless to compute early, with exactly one reduce variable v, are
 * tabulated; the arrays hold the values that nodes outside the table read. */
enum { MAX_TABLE_EXTENT = 1024 };

static bool table_candidate(Renderer *r, const unsigned char *mark, int id, int v) {
    const Kernel *k = r->k;
    if (!mark[id] || r->avail[id] || is_inline(r, id)) return false;
    if (mark[id] != 2 && !r->deps.spec_safe[id]) return false;
    if (k->ex[id].kind == KE_REDUCE || r->deps.acc_stage[id] > r->allowed_acc) return false;
    const uint64_t *vs = kir_deps_vars(&r->deps, id);
    if (!(vs[v / 64] >> (v % 64) & 1)) return false;
    for (int w = 0; w < r->deps.words; w++) {
        uint64_t extra = vs[w] & ~r->scope_vars[w];
        if (w == v / 64) extra &= ~(1ULL << (v % 64));
        if (extra) return false;
    }
    return true;
}

static void expand_tables(Renderer *r, const unsigned char *mark, int top, int v) {
    const Kernel *k = r->k;
    int64_t extent = kir_var_extent(k, v);
    if (extent < 1 || extent > MAX_TABLE_EXTENT) return;
    /* the reduce that binds v must live deeper, or there is nothing to save */
    for (int id = 0; id <= top; id++)
        if (k->ex[id].kind == KE_REDUCE && k->ex[id].var == v && (!mark[id] || vars_in_scope(r, id))) return;
    bool *cand = xcalloc((size_t)top + 1, sizeof(bool)), *frontier = xcalloc((size_t)top + 1, sizeof(bool));
    bool any = false;
    for (int id = 0; id <= top; id++) cand[id] = table_candidate(r, mark, id, v);
    for (int id = 0; id <= top; id++) {
        if (!mark[id] || cand[id]) continue;
        const KExpr *e = &k->ex[id];
        int ops[3] = {e->a, e->b, e->c};
        for (int o = 0; o < 3; o++)
            if (ops[o] >= 0 && cand[ops[o]]) frontier[ops[o]] = any = true;
    }
    if (any) {
        char vn[16];
        kir_var_name(vn, sizeof vn, v);
        for (int id = 0; id <= top; id++)
            if (frontier[id]) line(r, "%s t%d[%lld];", node_ctype(r, id), id, (long long)extent);
        open_block(r, "for (%s %s = 0; %s < %lld; %s++)", r->itype, vn, vn, (long long)extent, vn);
        kir_varset_add(r->scope_vars, v);
        for (int id = 0; id <= top; id++)
            if (cand[id]) ensure(r, id);
        for (int id = 0; id <= top; id++)
            if (frontier[id]) line(r, "t%d[%s] = e%d;", id, vn, id);
        kir_varset_remove(r->scope_vars, v);
        close_block(r);
        for (int id = 0; id <= top; id++)
            if (frontier[id]) {
                mark_avail(r, id);
                r->expanded[id] = v;
            }
    }
    free(cand);
    free(frontier);
}

/* Emits, in the current scope, every node reachable from roots that can
 * live here: its loop variables are defined, the accumulators it reads are
 * final, and it is needed unconditionally or is harmless to compute early.
 * This is the hoisting: a scope is placed before the loops nested in it. */
static void place(Renderer *r, const int *roots, int n_roots) {
    const Kernel *k = r->k;
    if (k->n_ex == 0) return;
    unsigned char *mark = xcalloc((size_t)k->n_ex, 1); /* 1 reached, 2 reached unconditionally */
    int top = -1;
    for (int q = 0; q < n_roots; q++) {
        if (roots[q] < 0) continue;
        mark[roots[q]] = 2;
        if (roots[q] > top) top = roots[q];
    }
    for (int id = top; id >= 0; id--) {
        if (!mark[id] || r->avail[id]) continue; /* a visible value needs nothing below it */
        const KExpr *e = &k->ex[id];
        bool uncond = mark[id] == 2;
        int ops[3] = {e->a, e->b, e->c};
        for (int o = 0; o < 3; o++) {
            if (ops[o] < 0) continue;
            bool branch = e->kind == KE_SELECT && o > 0;
            unsigned char m = uncond && !branch ? 2 : 1;
            if (m > mark[ops[o]]) mark[ops[o]] = m;
        }
    }
    for (int id = 0; id <= top; id++) {
        if (!mark[id] || r->avail[id] || is_inline(r, id)) continue;
        if (mark[id] != 2 && !r->deps.spec_safe[id]) continue;
        if (!kir_deps_computable(&r->deps, id, r->scope_vars, r->allowed_acc)) continue;
        emit_node(r, id);
    }
    if (r->expanding)
        for (int v = 2; v < k->n_vars; v++) expand_tables(r, mark, top, v);
    free(mark);
}

/* ---- stores --------------------------------------------------------------- */

static void emit_store(Renderer *r, const KStore *s) {
    ensure(r, s->index);
    ensure(r, s->value);
    char idx[64], v[64];
    ref(r, s->index, idx, sizeof idx);
    ref(r, s->value, v, sizeof v);
    const char *op = s->accumulate ? "+=" : "=";
    switch (r->k->bufs[s->buf].dtype) {
    case KD_F32: line(r, "b%d[%s] %s %s;", s->buf, idx, op, v); break;
    case KD_BF16:
        if (s->accumulate) line(r, "b%d[%s] = rxc_to_bf16(rxc_from_bf16(b%d[%s]) + %s);", s->buf, idx, s->buf, idx, v);
        else line(r, "b%d[%s] = rxc_to_bf16(%s);", s->buf, idx, v);
        break;
    case KD_U8: line(r, "b%d[%s] = rxc_to_u8(%s);", s->buf, idx, v); break;
    case KD_I64: line(r, "b%d[%s] %s (int64_t)%s;", s->buf, idx, op, v); break;
    }
}

/* Roots of stages [from, to): accumulator values and store operands. */
static int collect_roots(const Kernel *k, int from, int to, int **out) {
    int n = 0, cap = 0;
    int *roots = NULL;
    for (int s = from; s < to; s++) {
        for (int a = 0; a < k->n_accs; a++)
            if (k->accs[a].stage == s) {
                GROW(roots, cap, n + 1);
                roots[n++] = k->accs[a].value;
            }
        for (int t = 0; t < k->stages[s].n_stores; t++) {
            GROW(roots, cap, n + 2);
            roots[n++] = k->stages[s].stores[t].index;
            roots[n++] = k->stages[s].stores[t].value;
        }
    }
    *out = roots;
    return n;
}

static void place_stages(Renderer *r, int from, int to) {
    int *roots;
    int n = collect_roots(r->k, from, to, &roots);
    place(r, roots, n);
    free(roots);
}

static const char *acc_init(Renderer *r, const KAcc *a) {
    KType t = r->k->ex[a->value].type;
    if (a->op == KR_SUM) return t == KT_FLOAT ? "0.0f" : "0";
    return t == KT_FLOAT ? "-INFINITY" : r->widths.acc_wide[a - r->k->accs] ? "INT64_MIN" : "INT32_MIN";
}

static void acc_update(Renderer *r, const char *target, const KAcc *a) {
    char v[64];
    ensure(r, a->value);
    ref(r, a->value, v, sizeof v);
    if (a->op == KR_SUM) line(r, "%s = %s + %s;", target, target, v);
    else line(r, "%s = %s > %s ? %s : %s;", target, v, target, v, target);
}

/* ---- the two forms -------------------------------------------------------- */

static int64_t work_estimate(const Kernel *k) {
    int64_t per = k->n_ex > 0 ? k->n_ex : 1;
    for (int id = 0; id < k->n_ex; id++)
        if (k->ex[id].kind == KE_REDUCE) per += k->ex[id].extent * 4;
    return k->outer * k->inner * per;
}

static bool depends_on_inner(Renderer *r, int id) {
    if (r->split_var == KV_INNER) return kir_deps_has(&r->deps, id, r->q_var) || kir_deps_has(&r->deps, id, r->r_var);
    return kir_deps_has(&r->deps, id, KV_INNER);
}

/* True when distinct j give distinct values of node id: j itself, its split
 * remainder, or j plus, minus or times a nonzero constant, or plus a
 * j-independent value. */
static bool injective_in_inner(Renderer *r, int id) {
    const KExpr *e = &r->k->ex[id];
    if (e->kind == KE_VAR) return e->var == KV_INNER;
    if (id == r->mod_node) return r->split_var == KV_INNER;
    if (e->kind != KE_BINARY) return false;
    switch ((KBinOp)e->op) {
    case KB_ADD:
        return (injective_in_inner(r, e->a) && !depends_on_inner(r, e->b)) ||
               (injective_in_inner(r, e->b) && !depends_on_inner(r, e->a));
    case KB_SUB: return injective_in_inner(r, e->a) && !depends_on_inner(r, e->b);
    case KB_MUL: {
        const KExpr *a = &r->k->ex[e->a], *b = &r->k->ex[e->b];
        return (injective_in_inner(r, e->a) && b->kind == KE_CONST_I && b->i != 0) ||
               (injective_in_inner(r, e->b) && a->kind == KE_CONST_I && a->i != 0);
    }
    default: return false;
    }
}

/* A MAP stage's j iterations may run in SIMD lanes when no two iterations
 * touch the same element: every store index is injective in j, and a
 * buffer the stage stores to is only loaded (anywhere in the kernel) at
 * exactly a store's index. Buffers that share bytes must be accessed at the
 * same index (the memory planner's in-place rule), so distinct buffers
 * never create a hazard between lanes. */
static bool map_is_simd_safe(Renderer *r, int stage) {
    const Kernel *k = r->k;
    const KStage *st = &k->stages[stage];
    for (int t = 0; t < st->n_stores; t++) {
        const KStore *so = &st->stores[t];
        if (!injective_in_inner(r, so->index)) return false;
        for (int id = 0; id < k->n_ex; id++) {
            const KExpr *e = &k->ex[id];
            if (e->kind != KE_LOAD || e->buf != so->buf) continue;
            bool same_index = false;
            for (int u = 0; u < st->n_stores; u++) same_index |= st->stores[u].buf == so->buf && st->stores[u].index == e->a;
            if (!same_index) return false;
        }
    }
    return true;
}

/* Opens the loop over var (extent iterations) at the current point: one
 * loop, or the split pair (see choose_split) with placement between them.
 * Returns the number of blocks to close. Nodes of stages [from, to) are
 * placed inside. */
static int open_var_loop(Renderer *r, int var, int64_t extent, int from, int to, bool parallel, bool simd) {
    const char *it = r->itype;
    char v[16];
    kir_var_name(v, sizeof v, var);
    if (r->split_var != var) {
        if (parallel) line(r, "#pragma omp parallel for%s schedule(static)", simd ? " simd" : "");
        else if (simd) line(r, "#pragma omp simd");
        open_block(r, "for (%s %s = 0; %s < %lld; %s++)", it, v, v, (long long)extent, v);
        kir_varset_add(r->scope_vars, var);
        /* the i body of a ROWS kernel with j loops inside */
        r->expanding = var == KV_OUTER && r->k->inner > 1;
        place_stages(r, from, to);
        r->expanding = false;
        return 1;
    }
    long long c = (long long)r->split_c;
    if (parallel) line(r, "#pragma omp parallel for schedule(static)");
    open_block(r, "for (%s %sq = 0; %sq < %lld; %sq++)", it, v, v, (long long)extent / c, v);
    kir_varset_add(r->scope_vars, r->q_var);
    r->expanding = true;
    place_stages(r, from, to);
    r->expanding = false;
    if (simd) line(r, "#pragma omp simd");
    open_block(r, "for (%s %sr = 0; %sr < %lld; %sr++)", it, v, v, c, v);
    line(r, "const %s %s = %sq * %lld + %sr;", it, v, v, c, v);
    kir_varset_add(r->scope_vars, r->r_var);
    place_stages(r, from, to);
    return 2;
}

static void close_var_loop(Renderer *r, int var, int blocks) {
    for (int b = 0; b < blocks; b++) close_block(r);
    if (r->split_var == var) {
        kir_varset_remove(r->scope_vars, r->q_var);
        kir_varset_remove(r->scope_vars, r->r_var);
    } else {
        kir_varset_remove(r->scope_vars, var);
    }
}

static void render_rows(Renderer *r) {
    const Kernel *k = r->k;
    bool parallel = work_estimate(k) >= PARALLEL_MIN_WORK && k->outer > 1;
    r->allowed_acc = -1;
    /* The IR makes the i iterations independent (they run in parallel), so
     * a kernel whose only loop is i may run them in SIMD lanes too. */
    bool outer_simd = false;
    if (k->inner == 1) {
        outer_simd = true;
        for (int s = 0; s < k->n_stages; s++) outer_simd &= k->stages[s].kind == KS_STORE;
    }
    int outer_blocks = open_var_loop(r, KV_OUTER, k->outer, 0, k->n_stages, parallel, outer_simd);
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        r->allowed_acc = s - 1;
        if (st->kind == KS_STORE) {
            line(r, "/* stage %d: store */", s);
            place_stages(r, s, s + 1);
            for (int t = 0; t < st->n_stores; t++) emit_store(r, &st->stores[t]);
            continue;
        }
        line(r, "/* stage %d: %s over j */", s, st->kind == KS_REDUCE ? "reduce" : "map");
        for (int a = 0; a < k->n_accs; a++)
            if (k->accs[a].stage == s) line(r, "%s a%d = %s;", acc_ctype(r, a), a, acc_init(r, &k->accs[a]));
        int blocks = open_var_loop(r, KV_INNER, k->inner, s, s + 1, false, st->kind == KS_MAP && map_is_simd_safe(r, s));
        for (int a = 0; a < k->n_accs; a++)
            if (k->accs[a].stage == s) {
                char target[16];
                snprintf(target, sizeof target, "a%d", a);
                acc_update(r, target, &k->accs[a]);
            }
        for (int t = 0; t < st->n_stores; t++) emit_store(r, &st->stores[t]);
        close_var_loop(r, KV_INNER, blocks);
        if (st->kind == KS_REDUCE) {
            /* Values that only need this stage's accumulators are computed
             * once per row here, not per element in later loops. */
            r->allowed_acc = s;
            r->expanding = true;
            place_stages(r, s + 1, k->n_stages);
            r->expanding = false;
        }
    }
    close_var_loop(r, KV_OUTER, outer_blocks);
}

static void render_cols(Renderer *r) {
    const Kernel *k = r->k;
    const char *it = r->itype;
    long long cols = (long long)k->outer, rows = (long long)k->inner, chunks = (long long)k->row_chunks;
    int n_acc = k->n_accs;
    /* Partials: [chunk][acc][column]. With an int accumulator among them
     * the storage is double, which holds floats and ints below 2^53 exactly. */
    bool any_int = false;
    for (int a = 0; a < n_acc; a++) any_int |= k->ex[k->accs[a].value].type == KT_INT;
    const char *pt = any_int ? "double" : "float";
    line(r, "%s *part = (%s *)malloc(sizeof(%s) * %lldu);", pt, pt, pt, chunks * n_acc * cols);
    line(r, "if (!part) { fprintf(stderr, \"rxc: out of memory in kernel %s\\n\"); abort(); }", k->name);
    /* Tasks: (row chunk, block of columns). Wide, short tensors (deep
     * layers: few rows, many channels, one chunk) still split across threads
     * by columns; each column's sum order is unchanged by the blocking. */
    const long long col_block = 256;
    long long n_cb = (cols + col_block - 1) / col_block, cb_len = cols < col_block ? cols : col_block;
    bool parallel = work_estimate(k) >= PARALLEL_MIN_WORK && chunks * n_cb > 1;
    if (parallel) line(r, "#pragma omp parallel for schedule(static)");
    open_block(r, "for (%s task = 0; task < %lld; task++)", it, chunks * n_cb);
    line(r, "const %s ch = task / %lld, c0 = task %% %lld * %lld;", it, n_cb, n_cb, cb_len);
    line(r, "const %s c1 = c0 + %lld < %lld ? c0 + %lld : %lld;", it, cb_len, cols, cb_len, cols);
    line(r, "const %s j0 = (%s)((int64_t)ch * %lld / %lld), j1 = (%s)((int64_t)(ch + 1) * %lld / %lld);", it, it, rows,
         chunks, it, rows, chunks);
    for (int a = 0; a < n_acc; a++) {
        line(r, "%s *p%d = part + ((size_t)ch * %d + %d) * %lldu;", pt, a, n_acc, a, cols);
        line(r, "for (%s i = c0; i < c1; i++) p%d[i] = %s;", it, a, acc_init(r, &k->accs[a]));
    }
    open_block(r, "for (%s j = j0; j < j1; j++)", it);
    kir_varset_add(r->scope_vars, KV_INNER);
    r->allowed_acc = -1;
    place_stages(r, 0, 1);
    line(r, "#pragma omp simd"); /* columns are independent partial sums */
    open_block(r, "for (%s i = c0; i < c1; i++)", it);
    kir_varset_add(r->scope_vars, KV_OUTER);
    place_stages(r, 0, 1);
    for (int a = 0; a < n_acc; a++) {
        char target[16];
        snprintf(target, sizeof target, "p%d[i]", a);
        acc_update(r, target, &k->accs[a]);
    }
    for (int t = 0; t < k->stages[0].n_stores; t++) emit_store(r, &k->stages[0].stores[t]); /* element stores */
    close_block(r);
    kir_varset_remove(r->scope_vars, KV_INNER);
    close_block(r);
    close_block(r);
    kir_varset_remove(r->scope_vars, KV_OUTER);

    line(r, "/* combine the chunk partials in chunk order, then the store stage */");
    bool parallel2 = cols * (k->n_ex + chunks) >= PARALLEL_MIN_WORK && cols > 1;
    if (parallel2) line(r, "#pragma omp parallel for schedule(static)");
    open_block(r, "for (%s i = 0; i < %lld; i++)", it, cols);
    kir_varset_add(r->scope_vars, KV_OUTER);
    for (int a = 0; a < n_acc; a++) {
        const char *t = acc_ctype(r, a);
        line(r, "%s a%d = (%s)part[(size_t)%d * %lldu + i];", t, a, t, a, cols);
        if (k->accs[a].op == KR_SUM)
            line(r, "for (%s ch = 1; ch < %lld; ch++) a%d = a%d + (%s)part[((size_t)ch * %d + %d) * %lldu + i];", it,
                 chunks, a, a, t, n_acc, a, cols);
        else
            line(r,
                 "for (%s ch = 1; ch < %lld; ch++) { %s q = (%s)part[((size_t)ch * %d + %d) * %lldu + i]; a%d = q > a%d ? q : a%d; }",
                 it, chunks, t, t, n_acc, a, cols, a, a, a);
    }
    r->allowed_acc = 0;
    place_stages(r, 1, 2);
    for (int t = 0; t < k->stages[1].n_stores; t++) emit_store(r, &k->stages[1].stores[t]);
    close_block(r);
    kir_varset_remove(r->scope_vars, KV_OUTER);
    line(r, "free(part);");
}

static const char *const buf_ctype[] = {"float", "uint16_t", "uint8_t", "int64_t"};

static void render_kernel(StrBuf *out, const Kernel *k) {
    Renderer r = {.k = k, .out = out};
    choose_split(&r);
    analyse(&r);
    r.allowed_acc = -1;
    sb_printf(out, "\n/* kernel %s: %s, outer %lld, inner %lld", k->name, k->form == KF_COLS ? "cols" : "rows",
              (long long)k->outer, (long long)k->inner);
    if (k->form == KF_COLS) sb_printf(out, ", %lld row chunks", (long long)k->row_chunks);
    if (k->fuses && *k->fuses) {
        sb_puts(out, "\n * fuses: ");
        for (const char *p = k->fuses; *p; p++) {
            if (p[0] == '*' && p[1] == '/') sb_puts(out, "* ");
            else sb_putc(out, *p);
        }
    }
    sb_puts(out, " */\n");
    sb_printf(out, "void %s(void *const *bufs, const double *sc) {\n", k->name);
    r.indent = 1;
    line(&r, "(void)bufs; (void)sc;");
    for (int b = 0; b < k->n_bufs; b++) {
        const KBuf *kb = &k->bufs[b];
        char safe_name[64];
        size_t n = 0;
        for (const char *p = kb->name; *p && n + 1 < sizeof safe_name; p++)
            safe_name[n++] = (p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*') ? '_' : *p;
        safe_name[n] = 0;
        line(&r, "%s%s *b%d = (%s%s *)bufs[%d]; /* %s */", kb->written ? "" : "const ", buf_ctype[kb->dtype], b,
             kb->written ? "" : "const ", buf_ctype[kb->dtype], b, safe_name);
    }
    /* One random stream per salt, computed once per call. */
    int n_streams = 0;
    for (int id = 0; id < k->n_ex; id++) {
        if (k->ex[id].kind != KE_RAND) continue;
        int found = -1;
        for (int q = 0; q < id && found < 0; q++)
            if (k->ex[q].kind == KE_RAND && k->ex[q].i == k->ex[id].i) found = r.rand_stream[q];
        if (found < 0) {
            found = n_streams++;
            line(&r, "const unsigned long long rs%d = rxc_rand_stream(sc[%d], %lldLL);", found, SC_RNG_SEED,
                 (long long)k->ex[id].i);
        }
        r.rand_stream[id] = found;
    }
    /* Kernel-level invariants: scalars, constant-index loads. */
    GROW(r.avail_stack, r.cap_avail, 1);
    r.avail_stack[r.n_avail++] = -1;
    place_stages(&r, 0, k->n_stages);
    if (k->form == KF_COLS) render_cols(&r);
    else render_rows(&r);
    sb_puts(out, "}\n");
    kir_deps_free(&r.deps);
    kir_int_widths_free(&r.widths);
    free(r.avail);
    free(r.avail_stack);
    free(r.scope_vars);
    free(r.rand_stream);
    free(r.expanded);
}

static const char prelude[] =
    "/* generated by rxc (target/cpu/render_c.c): one function per fused kernel. */\n"
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "\n"
    "static inline float rxc_from_bf16(uint16_t h) {\n"
    "    uint32_t u = (uint32_t)h << 16;\n"
    "    float f;\n"
    "    memcpy(&f, &u, sizeof f);\n"
    "    return f;\n"
    "}\n"
    "/* float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */\n"
    "static inline uint16_t rxc_to_bf16(float f) {\n"
    "    uint32_t u;\n"
    "    memcpy(&u, &f, sizeof u);\n"
    "    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);\n"
    "    u += 0x7fffu + ((u >> 16) & 1u);\n"
    "    return (uint16_t)(u >> 16);\n"
    "}\n"
    "/* float -> u8: round half up, clamped to [0, 255]. */\n"
    "static inline uint8_t rxc_to_u8(float f) {\n"
    "    return f <= 0.0f ? 0 : f >= 255.0f ? 255 : (uint8_t)(f + 0.5f);\n"
    "}\n"
    "#define RXC_RAND_QUAL static inline\n";

char *render_c(const KirModule *m) {
    StrBuf out = {0};
    sb_puts(&out, prelude);
    sb_puts(&out, kir_rand_source);
    for (int i = 0; i < m->n; i++) render_kernel(&out, m->kernels[i]);
    return sb_take(&out);
}
