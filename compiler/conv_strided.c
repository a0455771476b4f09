/*
 * conv_strided.c — 1x1 strided convolutions (ResNeXt's stride-2
 * downsamples) whose target answered CONV_ENGINE_STRIDED_GEMM
 * (program.h): the forward and the data gradient as batched GEMMs that
 * read and write the strided pixels in place.
 *
 * Why: the output pixel (n, oh, ow) reads input pixel (n, oh*sh, ow*sw),
 * so one output row's pixels are input pixels sw*C elements apart, and
 * with H = OH*sh consecutive output rows start sh*W*C elements apart: one
 * GEMM per output row (batch N*OH, M = OW) with lda = sw*C and stride
 * sh*W*C reads them where they are. im2col copied a quarter of x out and
 * back (and col2im gathered it back in the data gradient) in each pass.
 * The weight gradient, whose reduction runs over every output pixel (no
 * single stride), is the target's direct STEP_CONV.
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

void lower_conv_strided_forward(Lower *L, int v, int out, float beta, unsigned phases, const char *lab) {
    const Node *n = &L->g->nodes[v];
    const ConvAttr *a = &n->a.conv;
    const ConvGeom g = conv_geom(L, v);
    GemmStep gs = {.a = L->fwd_buf[n->in[0]], .b = conv_gemm_weight(L, v, phases), .c = out, .trans_b = true,
                   .m = g.ow, .n = a->cout, .k = a->cin, .lda = g.sw * a->cin, .ldb = (int)conv_cols(L, v).kb,
                   .ldc = a->cout, .alpha = 1, .beta = beta, .batch = g.n * g.oh,
                   .stride_a = (int64_t)g.sh * g.w * a->cin, .stride_b = 0, .stride_c = (int64_t)g.ow * a->cout};
    char *note = xasprintf("%s: 1x1 conv %d/%d forward as %d GEMMs (one per output row) over the strided rows of x",
                           lab, g.sh, g.sw, gs.batch);
    lw_gemm(L, phases, &gs, note);
    free(note);
}

/* xt = 0: the GEMMs then write only the pixels a window reads */
static void zero_fill(Lower *L, int xt, int64_t numel, const char *lab) {
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, numel, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, kb_buf(&kb, L, xt, true), i, e_f(k, 0), false);
    kb_end(&kb, L, "zeros: the strided conv's data gradient writes only the pixels it read", PH(PHASE_BACKWARD), false);
}

/* xt (= or += with acc) the data gradient of strided conv v from its dy */
static void emit_data_grad(Lower *L, int v, int xt, bool acc) {
    const ConvAttr *a = &L->g->nodes[v].a.conv;
    const ConvGeom g = conv_geom(L, v);
    const int dy = L->grad_buf[v];
    char *lab = lw_label(L, v);
    if (!acc) zero_fill(L, xt, (int64_t)g.n * g.h * g.w * a->cin, lab);
    GemmStep gs = {.a = dy, .b = gemm_weight(L, L->g->nodes[L->g->nodes[v].in[1]].a.param.index, PH(PHASE_BACKWARD)),
                   .c = xt, .m = g.ow, .n = a->cin, .k = a->cout, .lda = a->cout, .ldb = a->cin, .ldc = g.sw * a->cin,
                   .alpha = 1, .beta = acc ? 1.0f : 0.0f, .batch = g.n * g.oh, .stride_a = (int64_t)g.ow * a->cout,
                   .stride_b = 0, .stride_c = (int64_t)g.sh * g.w * a->cin};
    char *note = xasprintf("%s: 1x1 conv %d/%d data gradient as %d GEMMs dy W into the strided rows of dx", lab, g.sh,
                           g.sw, gs.batch);
    lw_gemm(L, PH(PHASE_BACKWARD), &gs, note);
    free(note);
    free(lab);
}

/* Why defer: the GEMMs write only the strided pixels, so as dx's first
 * contribution they need a zero fill of all of dx first, and the next
 * contribution (the block's conv1 data gradient, a full GEMM) then reads dx
 * back as C. Emitted after every other contribution, they add onto the
 * strided pixels instead: two passes over dx fewer, for a quarter of one. */
void conv_strided_data_grad(Lower *L, int v) {
    const int x = L->g->nodes[v].in[0];
    if (grad_claim(L, x) < 0) return;
    if (L->grad_written[x]) {
        bool acc;
        const int xt = grad_target(L, x, &acc);
        emit_data_grad(L, v, xt, acc);
        return;
    }
    if (L->grad_deferred[x] >= 0) conv_strided_flush(L, x); /* a second strided conv reads x: the first goes now */
    L->grad_deferred[x] = v;
}

void conv_strided_flush(Lower *L, int x) {
    const int v = L->grad_deferred[x];
    bool acc;
    L->grad_deferred[x] = -1;
    const int xt = grad_target(L, x, &acc);
    emit_data_grad(L, v, xt, acc);
}
