/*
 * kir_analysis.c — the shared analysis of the kernel IR (kir_analysis.h):
 * integer ranges and the integer widths they give, and per-node
 * dependencies (loop variables, accumulator stages, speculation safety)
 * that say where a node can be computed.
 *
 * Ranges are computed in one forward pass: a node's operands always come
 * before it. Doubles hold the bounds; a bound that does not stay below 2^53
 * in magnitude is widened to an infinity (or, for a lower bound of a large
 * positive value, to 2^53), so every finite bound is an exact integer and
 * no rounding can make an interval smaller than the values it describes.
 */
#include "kir_analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- integer ranges ------------------------------------------------------- */

static const double EXACT = 9007199254740992.0; /* 2^53 */

static const KirRange UNKNOWN = {-INFINITY, INFINITY};

/* Makes a computed interval safe to keep (see the file comment). */
static KirRange settle(KirRange r) {
    if (isnan(r.lo) || isnan(r.hi)) return UNKNOWN;
    if (r.lo <= -EXACT) r.lo = -INFINITY;
    else if (r.lo >= EXACT) r.lo = EXACT;
    if (r.hi >= EXACT) r.hi = INFINITY;
    else if (r.hi <= -EXACT) r.hi = -EXACT;
    return r;
}

/* x * y where an infinity stands for "unbounded": 0 times anything is 0. */
static double bound_mul(double x, double y) { return x == 0 || y == 0 ? 0 : x * y; }

static KirRange hull(KirRange a, KirRange b) { return (KirRange){fmin(a.lo, b.lo), fmax(a.hi, b.hi)}; }

static KirRange mul_range(KirRange a, KirRange b) {
    double p[4] = {bound_mul(a.lo, b.lo), bound_mul(a.lo, b.hi), bound_mul(a.hi, b.lo), bound_mul(a.hi, b.hi)};
    KirRange r = {p[0], p[0]};
    for (int q = 1; q < 4; q++) r = hull(r, (KirRange){p[q], p[q]});
    return r;
}

/* One corner of a quotient: x / y truncated. inf / inf is a limit that
 * lies between the other corners, so any value (here an infinity) is safe. */
static double corner_quotient(double x, double y) {
    double q = trunc(x / y);
    return isnan(q) ? ((x < 0) != (y < 0) ? -INFINITY : INFINITY) : q;
}

/* Truncating division. Within each sign of the divisor the quotient is
 * monotonic in both operands, so its extremes are at the corners of the
 * divisor's nonzero parts (a division by zero computes nothing). */
static KirRange idiv_range(KirRange a, KirRange b) {
    double divisors[4];
    int n = 0;
    if (b.lo <= -1) divisors[n++] = b.lo, divisors[n++] = fmin(b.hi, -1);
    if (b.hi >= 1) divisors[n++] = fmax(b.lo, 1), divisors[n++] = b.hi;
    if (n == 0) return UNKNOWN;
    KirRange r = {INFINITY, -INFINITY};
    double dividends[2] = {a.lo, a.hi};
    for (int q = 0; q < n; q++)
        for (int x = 0; x < 2; x++) {
            double v = corner_quotient(dividends[x], divisors[q]);
            /* from 2^52 on, x / y may round to the next integer: allow for it */
            double slack = isfinite(dividends[x]) && fabs(dividends[x]) >= EXACT / 2 ? 1 : 0;
            r = hull(r, (KirRange){v - slack, v + slack});
        }
    return r;
}

/* C's remainder: |a % b| <= |a| and < |b|, with the sign of a. */
static KirRange mod_range(KirRange a, KirRange b) {
    double m = fmax(fabs(b.lo), fabs(b.hi)) - 1;
    if (m < 0) return UNKNOWN; /* b is 0: nothing is computed */
    KirRange r = {fmax(a.lo, -m), fmin(a.hi, m)};
    if (a.lo >= 0) r.lo = 0;
    if (a.hi <= 0) r.hi = 0;
    return r;
}

static KirRange binary_range(KBinOp op, KirRange a, KirRange b) {
    switch (op) {
    case KB_ADD: return (KirRange){a.lo + b.lo, a.hi + b.hi};
    case KB_SUB: return (KirRange){a.lo - b.hi, a.hi - b.lo};
    case KB_MUL: return mul_range(a, b);
    case KB_MAX: return (KirRange){fmax(a.lo, b.lo), fmax(a.hi, b.hi)};
    case KB_MIN: return (KirRange){fmin(a.lo, b.lo), fmin(a.hi, b.hi)};
    case KB_IDIV: return idiv_range(a, b);
    case KB_MOD: return mod_range(a, b);
    default: return UNKNOWN;
    }
}

static KirRange abs_range(KirRange a) {
    double lo = a.lo > 0 ? a.lo : a.hi < 0 ? -a.hi : 0;
    return (KirRange){lo, fmax(fabs(a.lo), fabs(a.hi))};
}

/* A sum of n terms in [lo, hi], and every partial sum on the way from 0:
 * the accumulator holds those too. */
static KirRange sum_range(KirRange term, double n) {
    return (KirRange){fmin(0, bound_mul(term.lo, n)), fmax(0, bound_mul(term.hi, n))};
}

typedef struct RangePass {
    const Kernel *k;
    KirRange *node;      /* per node */
    int64_t *extent;     /* per variable, 0 unknown */
} RangePass;

static KirRange operand(const RangePass *p, int self, int op) {
    return op >= 0 && op < self ? p->node[op] : UNKNOWN;
}

/* The value range of an accumulator: every partial value it holds. */
static KirRange acc_range(const RangePass *p, int acc, int self) {
    const Kernel *k = p->k;
    if (acc < 0 || acc >= k->n_accs) return UNKNOWN;
    KirRange v = operand(p, self, k->accs[acc].value);
    return k->accs[acc].op == KR_SUM ? sum_range(v, (double)k->inner) : v;
}

static KirRange node_range(const RangePass *p, int id) {
    const KExpr *e = &p->k->ex[id];
    if (e->type == KT_BOOL) return (KirRange){0, 1};
    if (e->type != KT_INT) return UNKNOWN;
    KirRange a = operand(p, id, e->a), b = operand(p, id, e->b), c = operand(p, id, e->c);
    switch (e->kind) {
    case KE_CONST_I: return (KirRange){(double)e->i, (double)e->i};
    case KE_VAR:
        if (e->var < 0 || e->var >= p->k->n_vars || p->extent[e->var] < 1) return UNKNOWN;
        return (KirRange){0, (double)p->extent[e->var] - 1};
    case KE_UNARY:
        if (e->op == KU_NEG) return (KirRange){-a.hi, -a.lo};
        if (e->op == KU_ABS) return abs_range(a);
        return UNKNOWN; /* to_int of a float */
    case KE_BINARY: return binary_range((KBinOp)e->op, a, b);
    case KE_SELECT: return hull(b, c);
    case KE_REDUCE: return e->op == KR_SUM ? sum_range(a, (double)e->extent) : a;
    case KE_ACC: return acc_range(p, e->acc, id);
    default: return UNKNOWN; /* loads of int64 buffers */
    }
}

int64_t kir_var_extent(const Kernel *k, int var) {
    if (var == KV_OUTER) return k->outer;
    if (var == KV_INNER) return k->inner;
    for (int id = 0; id < k->n_ex; id++)
        if (k->ex[id].kind == KE_REDUCE && k->ex[id].var == var) return k->ex[id].extent;
    return 0;
}

/* Ranges of nodes [0, upto) into p->node (which has room for them). */
static void range_pass(RangePass *p, const Kernel *k, int upto) {
    p->k = k;
    p->extent = xcalloc((size_t)(k->n_vars > 2 ? k->n_vars : 2), sizeof(int64_t));
    p->extent[KV_OUTER] = k->outer;
    p->extent[KV_INNER] = k->inner;
    for (int id = k->n_ex - 1; id >= 0; id--) /* the first binding reduce wins, as in kir_var_extent */
        if (k->ex[id].kind == KE_REDUCE && k->ex[id].var >= 2 && k->ex[id].var < k->n_vars)
            p->extent[k->ex[id].var] = k->ex[id].extent;
    for (int id = 0; id < upto; id++) p->node[id] = settle(node_range(p, id));
    free(p->extent);
}

KirRange kir_int_range(const Kernel *k, int id) {
    if (id < 0 || id >= k->n_ex || k->ex[id].type != KT_INT) return UNKNOWN;
    RangePass p = {.node = xcalloc((size_t)id + 1, sizeof(KirRange))};
    range_pass(&p, k, id + 1);
    KirRange r = p.node[id];
    free(p.node);
    return r;
}

bool kir_range_fits_int32(KirRange r) { return r.lo >= -KIR_INT32_LIMIT && r.hi <= KIR_INT32_LIMIT; }

KirWidths kir_int_widths(const Kernel *k) {
    KirWidths w = {0};
    w.node_wide = xcalloc((size_t)(k->n_ex ? k->n_ex : 1), sizeof(bool));
    w.acc_wide = xcalloc((size_t)(k->n_accs ? k->n_accs : 1), sizeof(bool));
    /* loop counters reach their extent when the loop ends */
    w.loops_wide = (double)k->outer > KIR_INT32_LIMIT || (double)k->inner > KIR_INT32_LIMIT;
    /* test hook: every integer 64-bit, so small models exercise the wide path */
    bool force_wide = getenv("RXC_FORCE_INDEX64") && *getenv("RXC_FORCE_INDEX64") == '1';
    w.loops_wide |= force_wide;
    for (int v = 2; v < k->n_vars; v++) w.loops_wide |= (double)kir_var_extent(k, v) > KIR_INT32_LIMIT;
    RangePass p = {.node = xcalloc((size_t)(k->n_ex ? k->n_ex : 1), sizeof(KirRange))};
    range_pass(&p, k, k->n_ex);
    for (int id = 0; id < k->n_ex; id++) {
        const KExpr *e = &k->ex[id];
        if (e->type != KT_INT) continue;
        w.node_wide[id] = e->kind == KE_VAR ? w.loops_wide : force_wide || !kir_range_fits_int32(p.node[id]);
        if (e->kind == KE_ACC && e->acc >= 0 && e->acc < k->n_accs) w.acc_wide[e->acc] = w.node_wide[id];
    }
    free(p.node);
    return w;
}

void kir_int_widths_free(KirWidths *w) {
    free(w->node_wide);
    free(w->acc_wide);
    w->node_wide = w->acc_wide = NULL;
}

bool kir_index_fits_int32(const Kernel *k) {
    KirWidths w = kir_int_widths(k);
    bool fits = !w.loops_wide;
    for (int id = 0; id < k->n_ex; id++) fits &= !w.node_wide[id];
    for (int a = 0; a < k->n_accs; a++) fits &= !w.acc_wide[a];
    kir_int_widths_free(&w);
    return fits;
}

/* ---- dependencies ---------------------------------------------------------- */

void kir_deps_alloc(KirDeps *d, const Kernel *k, int extra_vars) {
    size_t n = (size_t)(k->n_ex ? k->n_ex : 1);
    d->n_vars = k->n_vars + extra_vars;
    d->words = (d->n_vars + 63) / 64;
    if (d->words < 1) d->words = 1;
    d->vars = xcalloc(n * (size_t)d->words, sizeof(uint64_t));
    d->acc_stage = xcalloc(n, sizeof(int));
    d->spec_safe = xcalloc(n, sizeof(bool));
    d->pinned = xcalloc(n, sizeof(bool));
}

void kir_deps_pin(KirDeps *d, int id, int var) {
    uint64_t *vs = d->vars + (size_t)id * (size_t)d->words;
    if (!d->pinned[id]) memset(vs, 0, (size_t)d->words * sizeof(uint64_t));
    d->pinned[id] = true;
    kir_varset_add(vs, var);
}

/* Evaluating node e early can fault or cost a loop. */
static bool risky_alone(const Kernel *k, const KExpr *e) {
    if (e->kind == KE_LOAD || e->kind == KE_REDUCE) return true;
    if (e->kind != KE_BINARY || (e->op != KB_IDIV && e->op != KB_MOD)) return false;
    const KExpr *b = e->b >= 0 && e->b < k->n_ex ? &k->ex[e->b] : NULL;
    return !(b && b->kind == KE_CONST_I && b->i != 0);
}

void kir_deps_compute(KirDeps *d, const Kernel *k) {
    for (int id = 0; id < k->n_ex; id++) {
        const KExpr *e = &k->ex[id];
        uint64_t *vs = d->vars + (size_t)id * (size_t)d->words;
        bool safe = !risky_alone(k, e);
        d->acc_stage[id] = -1;
        int ops[3] = {e->a, e->b, e->c};
        for (int o = 0; o < 3; o++) {
            if (ops[o] < 0 || ops[o] >= id) continue;
            const uint64_t *ov = kir_deps_vars(d, ops[o]);
            if (!d->pinned[id])
                for (int w = 0; w < d->words; w++) vs[w] |= ov[w];
            if (d->acc_stage[ops[o]] > d->acc_stage[id]) d->acc_stage[id] = d->acc_stage[ops[o]];
            safe &= d->spec_safe[ops[o]];
        }
        d->spec_safe[id] = safe;
        if (e->kind == KE_ACC && e->acc >= 0 && e->acc < k->n_accs) d->acc_stage[id] = k->accs[e->acc].stage;
        if (d->pinned[id]) continue;
        if (e->kind == KE_VAR && e->var >= 0 && e->var < d->n_vars) kir_varset_add(vs, e->var);
        if (e->kind == KE_ACC) kir_varset_add(vs, KV_OUTER); /* one value per outer index */
        if (e->kind == KE_REDUCE && e->var >= 0 && e->var < d->n_vars) kir_varset_remove(vs, e->var);
    }
}

void kir_deps_init(KirDeps *d, const Kernel *k) {
    kir_deps_alloc(d, k, 0);
    kir_deps_compute(d, k);
}

void kir_deps_free(KirDeps *d) {
    free(d->vars);
    free(d->acc_stage);
    free(d->spec_safe);
    free(d->pinned);
    memset(d, 0, sizeof *d);
}

bool kir_deps_computable(const KirDeps *d, int id, const uint64_t *scope, int final_stage) {
    if (d->acc_stage[id] > final_stage) return false;
    const uint64_t *vs = kir_deps_vars(d, id);
    for (int w = 0; w < d->words; w++)
        if (vs[w] & ~scope[w]) return false;
    return true;
}

/* ---- values ------------------------------------------------------------------ */

bool kir_value_exact_in(const Kernel *k, int id, KDType dt) {
    if (dt == KD_F32) return true;
    const KExpr *e = &k->ex[id];
    switch (e->kind) {
    case KE_LOAD: return k->bufs[e->buf].dtype == dt;
    case KE_CONST_F: return e->f == 0.0;
    case KE_SELECT: return kir_value_exact_in(k, e->b, dt) && kir_value_exact_in(k, e->c, dt);
    default: return false;
    }
}
