/*
 * optimizer_lamb.c — the LAMB update (lower.h), timm's timm.optim.Lamb with
 * its defaults (bias correction, grad averaging, weight decay added to the
 * update, not decoupled): Adam's moments, the direction
 *     u = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps) + wd * w
 * and a per-tensor trust ratio ||w|| / ||u|| (1 when either norm is 0;
 * clamped to 1 with trust_clip), applied to tensors that get weight decay,
 * or to all with always_adapt. Four kernels, because the ratio needs whole
 * tensors' norms before any element moves:
 *   lamb_moments      m, v from the (clipped) gradient; zeroes the gradient
 *   lamb_sqnorms      sums of w^2 and u^2 per chunk; a chunk lies in one tensor
 *   lamb_trust_ratio  per tensor: its chunks' sums in order, then the ratio
 *   lamb_update       w -= lr * ratio[tensor] * u (and the bf16 copy)
 * Which tensor or chunk an index falls in is a compile-time table, spelled
 * in the IR as a balanced tree of selects over constants, so the C and CUDA
 * renderers need nothing new and every sum runs in a fixed order. The
 * partial sums and the ratios live in SPACE_STATE after m and v
 * (lamb_scratch_floats): the memory plan places no update-phase buffer, and
 * two arena buffers there would share offset 0.
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

/* Parameter elements per partial sum of squares; see optimizer.c's. */
#define LAMB_CHUNK 4096

typedef struct Segment {
    int64_t start, numel;  /* in SPACE_PARAMS elements */
    int64_t first_chunk, n_chunks;
} Segment;

static int by_start(const void *a, const void *b) {
    int64_t x = ((const Segment *)a)->start, y = ((const Segment *)b)->start;
    return (x > y) - (x < y);
}

/* The trainable tensors in SPACE_PARAMS order, with their chunks. */
static Segment *lamb_segments(const Lower *L, int *n_out, int64_t *chunks_out) {
    Segment *s = xcalloc((size_t)L->g->n_params + 1, sizeof *s);
    int n = 0;
    for (int i = 0; i < L->g->n_params; i++)
        if (L->g->params[i].trainable && L->g->params[i].numel > 0)
            s[n++] = (Segment){.start = L->p->param_offset[i], .numel = L->g->params[i].numel};
    qsort(s, (size_t)n, sizeof *s, by_start);
    int64_t chunks = 0;
    for (int t = 0; t < n; t++) {
        s[t].first_chunk = chunks;
        s[t].n_chunks = (s[t].numel + LAMB_CHUNK - 1) / LAMB_CHUNK;
        chunks += s[t].n_chunks;
    }
    *n_out = n;
    *chunks_out = chunks;
    return s;
}

int64_t lamb_scratch_floats(const Graph *g) {
    int64_t floats = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable && g->params[i].numel > 0)
            floats += 2 * ((g->params[i].numel + LAMB_CHUNK - 1) / LAMB_CHUNK) + 1;
    return floats;
}

typedef enum SegKey { KEY_INDEX, KEY_START, KEY_FIRST_CHUNK } SegKey;
typedef enum SegValue { VAL_INDEX, VAL_FIRST_CHUNK, VAL_CHUNKS, VAL_CHUNK_SHIFT, VAL_END } SegValue;

static int64_t seg_key(const Segment *s, int t, SegKey key) {
    return key == KEY_INDEX ? t : key == KEY_START ? s->start : s->first_chunk;
}

static int64_t seg_value(const Segment *s, int t, SegValue v) {
    switch (v) {
    case VAL_INDEX: return t;
    case VAL_FIRST_CHUNK: return s->first_chunk;
    case VAL_CHUNKS: return s->n_chunks;
    case VAL_CHUNK_SHIFT: return s->start - s->first_chunk * LAMB_CHUNK;
    case VAL_END: return s->start + s->numel;
    }
    return 0;
}

/* The value of segment t for the t with key(t) <= at < key(t + 1), among
 * segments [lo, hi): a balanced tree of selects, depth log2(hi - lo). */
static int seg_lookup(Kernel *k, const Segment *s, int lo, int hi, int at, SegKey key, SegValue v) {
    if (hi - lo == 1) return e_i(k, seg_value(&s[lo], lo, v));
    int mid = lo + (hi - lo) / 2;
    return kir_select(k, kir_bin(k, KB_LT, at, e_i(k, seg_key(&s[mid], mid, key))), seg_lookup(k, s, lo, mid, at, key, v),
                      seg_lookup(k, s, mid, hi, at, key, v));
}

/* u, the update before the trust ratio, from the stored new moments. */
static int lamb_direction(Kernel *k, int par, int m, int v, int decay) {
    int denom = e_add(k, e_div(k, kir_un(k, KU_SQRT, v), kir_un(k, KU_SQRT, kir_scalar(k, SC_BIAS_CORR2))),
                      kir_scalar(k, SC_EPS));
    return e_add(k, e_div(k, e_div(k, m, kir_scalar(k, SC_BIAS_CORR1)), denom), e_mul(k, decay, par));
}

static int element_decay(Kernel *k, const Program *p, int64_t P, int i) {
    if (p->n_decayed >= P) return kir_scalar(k, SC_WEIGHT_DECAY);
    return kir_select(k, kir_bin(k, KB_LT, i, e_i(k, p->n_decayed)), kir_scalar(k, SC_WEIGHT_DECAY), e_f(k, 0));
}

typedef struct LambBufs {
    int params, grads, m, v, factor; /* factor: the clipping factor's buffer, or -1 */
    int partial, ratio;
} LambBufs;

static void lamb_moments(Lower *L, const LambBufs *b, int64_t P) {
    KB kb;
    kb_begin(&kb, L, "lamb_moments", KF_ROWS, P, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), st = kir_stage(k, KS_STORE);
    int gi = kb_buf(&kb, L, b->grads, true), mi = kb_buf(&kb, L, b->m, true), vi = kb_buf(&kb, L, b->v, true);
    int g = kir_load(k, gi, i);
    if (b->factor >= 0) g = e_mul(k, g, kir_load(k, kb_buf(&kb, L, b->factor, false), e_i(k, 0)));
    int b1 = kir_scalar(k, SC_BETA1), b2 = kir_scalar(k, SC_BETA2);
    int m = e_add(k, e_mul(k, kir_load(k, mi, i), b1), e_mul(k, g, e_sub(k, e_f(k, 1), b1)));
    int v = e_add(k, e_mul(k, kir_load(k, vi, i), b2), e_mul(k, e_mul(k, g, g), e_sub(k, e_f(k, 1), b2)));
    kir_store(k, st, mi, i, m, false);
    kir_store(k, st, vi, i, v, false);
    kir_store(k, st, gi, i, e_f(k, 0), false);
    kb_end(&kb, L,
           b->factor >= 0 ? "LAMB moments (bias-corrected later) of all parameters, gradients clipped by global norm, + zero grads"
                          : "LAMB moments (bias-corrected later) of all parameters + zero grads",
           PH(PHASE_UPDATE), false);
}

static void lamb_sqnorms(Lower *L, const LambBufs *b, const Segment *s, int n, int64_t chunks, int64_t P) {
    KB kb;
    kb_begin(&kb, L, "lamb_sqnorms", KF_ROWS, chunks, LAMB_CHUNK);
    Kernel *k = kb.k;
    int c = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int pi = kb_buf(&kb, L, b->params, false), mi = kb_buf(&kb, L, b->m, false), vi = kb_buf(&kb, L, b->v, false);
    int si = kb_buf(&kb, L, b->partial, true);
    int at = e_add(k, e_add(k, e_muli(k, c, LAMB_CHUNK), j), seg_lookup(k, s, 0, n, c, KEY_FIRST_CHUNK, VAL_CHUNK_SHIFT));
    int inside = kir_bin(k, KB_LT, at, seg_lookup(k, s, 0, n, c, KEY_FIRST_CHUNK, VAL_END));
    int par = kir_load(k, pi, at);
    int u = lamb_direction(k, par, kir_load(k, mi, at), kir_load(k, vi, at), element_decay(k, L->p, P, at));
    int red = kir_stage(k, KS_REDUCE);
    int w2 = kir_acc(k, red, KR_SUM, kir_select(k, inside, e_mul(k, par, par), e_f(k, 0)));
    int u2 = kir_acc(k, red, KR_SUM, kir_select(k, inside, e_mul(k, u, u), e_f(k, 0)));
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, si, c, w2, false);
    kir_store(k, st, si, e_addi(k, c, chunks), u2, false);
    kb_end(&kb, L, "LAMB: sums of squares of the weights and of the update, per chunk of one tensor", PH(PHASE_UPDATE),
           false);
}

static void lamb_trust_ratio(Lower *L, const LambBufs *b, const Segment *s, int n, int64_t chunks, int n_decayed) {
    int64_t widest = 1;
    for (int t = 0; t < n; t++)
        if (s[t].n_chunks > widest) widest = s[t].n_chunks;
    KB kb;
    kb_begin(&kb, L, "lamb_trust_ratio", KF_ROWS, n, widest);
    Kernel *k = kb.k;
    int t = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int si = kb_buf(&kb, L, b->partial, false), ri = kb_buf(&kb, L, b->ratio, true);
    int first = seg_lookup(k, s, 0, n, t, KEY_INDEX, VAL_FIRST_CHUNK);
    int inside = kir_bin(k, KB_LT, j, seg_lookup(k, s, 0, n, t, KEY_INDEX, VAL_CHUNKS));
    int red = kir_stage(k, KS_REDUCE);
    int w2 = kir_acc(k, red, KR_SUM, kir_select(k, inside, kir_load(k, si, e_add(k, first, j)), e_f(k, 0)));
    int u2 = kir_acc(k, red, KR_SUM, kir_select(k, inside, kir_load(k, si, e_addi(k, e_add(k, first, j), chunks)), e_f(k, 0)));
    int wn = kir_un(k, KU_SQRT, w2), un = kir_un(k, KU_SQRT, u2), one = e_f(k, 1), zero = e_f(k, 0);
    int ratio = kir_select(k, kir_bin(k, KB_LT, zero, wn),
                           kir_select(k, kir_bin(k, KB_LT, zero, un), e_div(k, wn, un), one), one);
    if (L->o->lamb_trust_clip) ratio = kir_bin(k, KB_MIN, ratio, one);
    if (!L->o->lamb_always_adapt) {
        /* timm adapts only where the tensor's weight decay is not 0 */
        int decay = kir_select(k, kir_bin(k, KB_LT, t, e_i(k, n_decayed)), kir_scalar(k, SC_WEIGHT_DECAY), zero);
        ratio = kir_select(k, kir_bin(k, KB_LT, zero, decay), ratio, one);
    }
    kir_store(k, kir_stage(k, KS_STORE), ri, t, ratio, false);
    kb_end(&kb, L, "LAMB trust ratio per tensor: ||w|| / ||update||", PH(PHASE_UPDATE), false);
}

static void lamb_apply(Lower *L, const LambBufs *b, const Segment *s, int n, int64_t P) {
    Program *p = L->p;
    KB kb;
    kb_begin(&kb, L, "lamb_update", KF_ROWS, P, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER), st = kir_stage(k, KS_STORE);
    int pi = kb_buf(&kb, L, b->params, true), mi = kb_buf(&kb, L, b->m, false), vi = kb_buf(&kb, L, b->v, false);
    int ri = kb_buf(&kb, L, b->ratio, false);
    int copy = p->space_bytes[SPACE_PARAM_COPY] > 0
                   ? kb_buf(&kb, L, lw_new_buf(L, "params:bf16", SPACE_PARAM_COPY, 0, P, KD_BF16), true)
                   : -1;
    int par = kir_load(k, pi, i);
    int u = lamb_direction(k, par, kir_load(k, mi, i), kir_load(k, vi, i), element_decay(k, p, P, i));
    int ratio = kir_load(k, ri, seg_lookup(k, s, 0, n, i, KEY_START, VAL_INDEX));
    int np = e_sub(k, par, e_mul(k, kir_scalar(k, SC_LR), e_mul(k, u, ratio)));
    kir_store(k, st, pi, i, np, false);
    if (copy >= 0) kir_store(k, st, copy, i, np, false);
    kb_end(&kb, L, copy >= 0 ? "LAMB step of all parameters (trust ratio per tensor) + their bf16 copy"
                             : "LAMB step of all parameters (trust ratio per tensor)",
           PH(PHASE_UPDATE), false);
}

int lower_update_lamb(Lower *L, int params_buf, int grads_buf, int factor_buf) {
    Program *p = L->p;
    int64_t P = p->space_bytes[SPACE_PARAMS] / 4;
    int n;
    int64_t chunks;
    Segment *s = lamb_segments(L, &n, &chunks);
    int n_decayed = 0;
    while (n_decayed < n && s[n_decayed].start < p->n_decayed) n_decayed++;
    LambBufs b = {.params = params_buf, .grads = grads_buf, .factor = factor_buf};
    b.m = lw_new_buf(L, "lamb_m", SPACE_STATE, 0, P, KD_F32);
    b.v = lw_new_buf(L, "lamb_v", SPACE_STATE, P * 4, P, KD_F32);
    b.partial = lw_new_buf(L, "lamb_sqnorm_partial", SPACE_STATE, P * 8, 2 * chunks, KD_F32);
    b.ratio = lw_new_buf(L, "lamb_trust_ratio", SPACE_STATE, P * 8 + 2 * chunks * 4, n, KD_F32);
    if (P * 8 + (2 * chunks + n) * 4 > p->space_bytes[SPACE_STATE])
        lw_fail(L, "internal error: LAMB's sums do not fit in the optimizer state");
    if (!lw_failed(L)) lamb_moments(L, &b, P);
    if (!lw_failed(L)) lamb_sqnorms(L, &b, s, n, chunks, P);
    if (!lw_failed(L)) lamb_trust_ratio(L, &b, s, n, chunks, n_decayed);
    if (!lw_failed(L)) lamb_apply(L, &b, s, n, P);
    free(s);
    return lw_failed(L) ? -1 : 0;
}
