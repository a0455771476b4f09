/*
 * cost.c — the work and memory traffic of one Program step (cost.h): the
 * byte ranges a kernel touches, from the shared range analysis
 * (kir_analysis.h), its float operations from the dependency analysis, and
 * the closed forms of GEMM and convolution steps.
 */
#include "cost.h"

#include <stdlib.h>

#include "kir_analysis.h"
#include "util.h"

static double dtype_bytes(KDType t) { return t == KD_I64 ? 8 : t == KD_BF16 ? 2 : t == KD_U8 ? 1 : 4; }

/* ---- kernels: bytes ---------------------------------------------------------- */

typedef struct Interval { double lo, hi; } Interval;

/* Element ranges one Program buffer sees through a kernel, in one direction. */
typedef struct Touches {
    int arg;              /* Program buffer id (or the kernel buffer's index without args) */
    double numel;         /* the largest numel of the kernel buffers bound to it */
    double elem_bytes;
    Interval *iv;
    int n, cap;
} Touches;

static int compare_lo(const void *a, const void *b) {
    double x = ((const Interval *)a)->lo, y = ((const Interval *)b)->lo;
    return x < y ? -1 : x > y;
}

/* Length of the union of the intervals (which it sorts), at most numel. */
static double union_length(Touches *t) {
    qsort(t->iv, (size_t)t->n, sizeof *t->iv, compare_lo);
    double total = 0, lo = 0, hi = -1;
    for (int i = 0; i < t->n; i++) {
        if (t->iv[i].lo > hi + 1) {
            total += hi - lo + 1;
            lo = t->iv[i].lo;
            hi = t->iv[i].hi;
        } else if (t->iv[i].hi > hi) {
            hi = t->iv[i].hi;
        }
    }
    total += hi - lo + 1;
    return total < t->numel ? total : t->numel;
}

typedef struct TouchSet {
    Touches *t;
    int n;
} TouchSet;

static Touches *touches_of(TouchSet *set, int arg, const KBuf *b) {
    for (int i = 0; i < set->n; i++)
        if (set->t[i].arg == arg) {
            if ((double)b->numel > set->t[i].numel) set->t[i].numel = (double)b->numel;
            return &set->t[i];
        }
    Touches *t = &set->t[set->n++];
    *t = (Touches){.arg = arg, .numel = (double)b->numel, .elem_bytes = dtype_bytes(b->dtype)};
    return t;
}

/* Records that kernel buffer buf is accessed at integer node index. An
 * unbounded range clips to the buffer: the kernel cannot touch more. */
static void touch(TouchSet *set, const Kernel *k, const Step *s, int buf, int index) {
    if (buf < 0 || buf >= k->n_bufs) return;
    const KBuf *b = &k->bufs[buf];
    Touches *t = touches_of(set, s && buf < s->n_args ? s->args[buf] : buf, b);
    KirRange r = kir_int_range(k, index);
    Interval iv = {r.lo < 0 ? 0 : r.lo, r.hi > (double)b->numel - 1 ? (double)b->numel - 1 : r.hi};
    if (iv.hi < iv.lo) return;
    grow_array((void **)&t->iv, &t->cap, t->n + 1, sizeof *t->iv);
    t->iv[t->n++] = iv;
}

static double set_bytes(TouchSet *set) {
    double bytes = 0;
    for (int i = 0; i < set->n; i++) {
        if (set->t[i].n) bytes += union_length(&set->t[i]) * set->t[i].elem_bytes;
        free(set->t[i].iv);
    }
    free(set->t);
    return bytes;
}

static void kernel_bytes(const Kernel *k, const Step *s, StepCost *c) {
    TouchSet reads = {xcalloc((size_t)k->n_bufs + 1, sizeof(Touches)), 0};
    TouchSet writes = {xcalloc((size_t)k->n_bufs + 1, sizeof(Touches)), 0};
    for (int id = 0; id < k->n_ex; id++)
        if (k->ex[id].kind == KE_LOAD) touch(&reads, k, s, k->ex[id].buf, k->ex[id].a);
    for (int st = 0; st < k->n_stages; st++)
        for (int i = 0; i < k->stages[st].n_stores; i++) {
            const KStore *w = &k->stages[st].stores[i];
            touch(&writes, k, s, w->buf, w->index);
            if (w->accumulate) touch(&reads, k, s, w->buf, w->index);
        }
    c->bytes_read = set_bytes(&reads);
    c->bytes_written = set_bytes(&writes);
}

/* ---- kernels: flops ------------------------------------------------------------ */

/* How many times a node with the dependency set vars is evaluated. */
static double evaluations(const Kernel *k, const KirDeps *d, int id) {
    double n = 1;
    for (int v = 0; v < k->n_vars; v++)
        if (kir_deps_has(d, id, v)) n *= (double)kir_var_extent(k, v);
    return n;
}

static double kernel_flops(const Kernel *k) {
    KirDeps d;
    kir_deps_init(&d, k);
    double flops = 0;
    for (int id = 0; id < k->n_ex; id++) {
        const KExpr *e = &k->ex[id];
        if (e->type != KT_FLOAT) continue;
        if (e->kind == KE_BINARY || (e->kind == KE_UNARY && e->op != KU_TO_FLOAT))
            flops += evaluations(k, &d, id);
        else if (e->kind == KE_REDUCE)
            flops += evaluations(k, &d, id) * (double)e->extent;
    }
    for (int a = 0; a < k->n_accs; a++)
        if (k->accs[a].value >= 0 && k->ex[k->accs[a].value].type == KT_FLOAT)
            flops += (double)k->outer * (double)k->inner;
    kir_deps_free(&d);
    return flops;
}

/* ---- library steps ------------------------------------------------------------- */

/* Distinct elements of a strided batch of rows x cols matrices with leading
 * dimension ld: the span they cover when they overlap or interleave. */
static double batch_elements(double rows, double cols, double ld, int batch, int64_t stride) {
    double one = rows * cols;
    if (batch <= 1 || stride == 0) return one;
    double span = (double)(batch - 1) * (double)(stride < 0 ? -stride : stride) + (rows - 1) * ld + cols;
    return span < one * batch ? span : one * batch;
}

static double buf_bytes(const Program *p, int buf, double elements) {
    return buf >= 0 && buf < p->n_bufs ? elements * dtype_bytes(p->bufs[buf].dtype) : 0;
}

static KDType buf_dtype(const Program *p, int buf) { return buf >= 0 && buf < p->n_bufs ? p->bufs[buf].dtype : KD_F32; }

/* An operand whose leading dimension, batch stride and offset are all
 * multiples of 16 bytes (Program buffers themselves start aligned). */
static bool aligned16(const Program *p, int buf, int ld, int64_t stride, int64_t off) {
    int64_t e = (int64_t)dtype_bytes(buf_dtype(p, buf));
    return (int64_t)ld * e % 16 == 0 && stride * e % 16 == 0 && off * e % 16 == 0;
}

static StepCost gemm_cost(const Program *p, const GemmStep *g, bool tf32) {
    StepCost c = {.matmul = true};
    double m = g->m, n = g->n, k = g->k;
    c.flops = 2.0 * m * n * k * (double)g->batch;
    double a = g->trans_a ? batch_elements(k, m, g->lda, g->batch, g->stride_a)
                          : batch_elements(m, k, g->lda, g->batch, g->stride_a);
    double b = g->trans_b ? batch_elements(n, k, g->ldb, g->batch, g->stride_b)
                          : batch_elements(k, n, g->ldb, g->batch, g->stride_b);
    double out = buf_bytes(p, g->c, batch_elements(m, n, g->ldc, g->batch, g->stride_c));
    c.bytes_read = buf_bytes(p, g->a, a) + buf_bytes(p, g->b, b) + (g->beta != 0 ? out : 0);
    c.bytes_written = out;
    KDType ta = buf_dtype(p, g->a), tb = buf_dtype(p, g->b);
    c.math = ta == KD_BF16 && tb == KD_BF16 ? COST_MATH_BF16
             : ta == KD_F32 && tb == KD_F32 && tf32 ? COST_MATH_TF32
                                                    : COST_MATH_SCALAR;
    bool aligned = aligned16(p, g->a, g->lda, g->stride_a, g->off_a) && aligned16(p, g->b, g->ldb, g->stride_b, g->off_b) &&
                   aligned16(p, g->c, g->ldc, g->stride_c, g->off_c);
    if (!aligned) c.math = COST_MATH_SCALAR;
    return c;
}

/* Input rows (or columns) that some window of the `out` outputs reaches:
 * all unless the stride skips some (a 1x1 stride-2 conv reads every other
 * one, and a direct pass reads only those). */
static double reached(int in, int out, int k, int stride, int pad) {
    double n = 0;
    for (int i = 0; i < in; i++)
        for (int t = 0; t < k; t++) {
            const int o = i + pad - t;
            if (o >= 0 && stride > 0 && o % stride == 0 && o / stride < out) {
                n++;
                break;
            }
        }
    return n;
}

static StepCost conv_cost(const Program *p, const ConvStep *cs) {
    const ConvGeom *g = &cs->g;
    StepCost c = {.matmul = true};
    int groups = g->groups > 0 ? g->groups : 1;
    double cin_g = (double)g->cin / groups;
    c.flops = 2.0 * g->n * g->oh * g->ow * (double)g->cout * cin_g * g->kh * g->kw;
    int bufs[LIBRARY_STEP_BUFS];
    int out = library_step_buffers(&(Step){.kind = STEP_CONV, .conv = *cs}, bufs);
    /* x whole where the pass writes it (the data gradient), else the pixels it reads */
    double x_pixels = cs->pass == CONV_DATA_GRAD ? (double)g->h * g->w
                                                 : reached(g->h, g->oh, g->kh, g->sh, g->ph) *
                                                       reached(g->w, g->ow, g->kw, g->sw, g->pw);
    int64_t extents[LIBRARY_STEP_BUFS];
    conv_step_extents(cs, extents);
    for (int i = 0; i < LIBRARY_STEP_BUFS; i++) {
        if (bufs[i] < 0) continue;
        double bytes = buf_bytes(p, bufs[i], i == 0 ? (double)g->n * x_pixels * g->cin : (double)extents[i]);
        if (library_step_writes(i, out)) c.bytes_written += bytes;
        if (!library_step_writes(i, out) || (i == out && cs->accumulate)) c.bytes_read += bytes;
    }
    /* The target said which cores sum the products (ConvStep.engine);
     * FLOPs stay the convolution's own, not the zeros a tensor-core form
     * multiplies when it packs narrow groups into one 16-wide tile. */
    c.math = cs->engine == CONV_ENGINE_TENSOR_CORES ? COST_MATH_BF16 : COST_MATH_SCALAR;
    return c;
}

StepCost cost_of_step(const Program *p, const Step *s, bool tf32) {
    if (s->kind == STEP_GEMM) return gemm_cost(p, &s->gemm, tf32);
    if (s->kind == STEP_CONV) return conv_cost(p, &s->conv);
    StepCost c = {.math = COST_MATH_SCALAR};
    if (!p->module || s->kernel < 0 || s->kernel >= p->module->n) return c;
    const Kernel *k = p->module->kernels[s->kernel];
    kernel_bytes(k, s->n_args == k->n_bufs ? s : NULL, &c);
    c.flops = kernel_flops(k);
    return c;
}
