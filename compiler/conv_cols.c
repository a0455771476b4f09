/*
 * conv_cols.c — the column layout of convolutions lowered as im2col + GEMM
 * (lower.h, ConvCols): the layout itself, the im2col kernel, the GEMMs'
 * weight operand in that layout, the column index col2im reads, and the
 * scatter of a merged weight gradient back into the parameter's gradient.
 *
 * Why padding and merging: cuBLAS runs tensor-core kernels only on operands
 * whose base addresses, leading dimensions and batch strides are multiples
 * of 16 bytes. ResNeXt's grouped 3x3 convolutions have 4..32 input channels
 * per group, so a group's kg = 9 * cig columns (36 at width 4: 72 bytes in
 * bf16) and an output group of cog = 4 channels (8 bytes in bf16) miss it.
 * Zero columns pad kg to kgp; pairs (or more) of narrow groups become one
 * GEMM whose weight is block-diagonal (its off-diagonal zeros cost FLOPs
 * only in those narrow convolutions). Results are unchanged: every padded
 * or off-diagonal product is an exact zero added to the same sums.
 */
#include <stdlib.h>

#include "lower.h"
#include "util.h"

static int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

static int64_t gcd(int64_t a, int64_t b) { return b ? gcd(b, a % b) : a; }

ConvCols conv_cols(const Lower *L, int conv) {
    const ConvAttr *a = &L->g->nodes[conv].a.conv;
    ConvCols c = {.groups = a->groups, .cog = a->cout / a->groups, .cig = a->cin / a->groups, .merge = 1};
    c.kg = (int64_t)c.cig * a->kh * a->kw;
    c.kgp = c.kg;
    int align = L->o->target->gemm_stride_align_bytes;
    if (align > 0) {
        int64_t per = align / (L->act == KD_BF16 ? 2 : 4); /* elements of an aligned unit */
        if (per < 1) per = 1;
        c.kgp = round_up(c.kg, per);
        /* the output's per-entry stride merge * cog must be a multiple of per */
        int64_t m = per / gcd(c.cog, per);
        if (c.groups > 1 && m > 1 && c.groups % m == 0) c.merge = (int)m;
    }
    c.row = c.kgp * c.groups;
    c.batch = c.groups / c.merge;
    c.nb = c.merge * c.cog;
    c.kb = c.merge * c.kgp;
    return c;
}

int conv_col_index(Kernel *k, const ConvCols *c, const ConvAttr *a, int ci, int kh, int kw) {
    int64_t kk = (int64_t)a->kh * a->kw;
    if (c->kgp == c->kg) return e_add(k, e_muli(k, ci, kk), e_add(k, e_muli(k, kh, a->kw), kw));
    int tap = e_add(k, e_muli(k, kh, a->kw), kw);
    int g = e_idiv(k, ci, c->cig), cl = e_mod(k, ci, c->cig);
    return e_add(k, e_muli(k, g, c->kgp), e_add(k, e_muli(k, cl, kk), tap));
}

int lower_im2col(Lower *L, int conv, int xb, unsigned phases) {
    const Node *n = &L->g->nodes[conv];
    const Node *x = &L->g->nodes[n->in[0]];
    const ConvAttr *a = &n->a.conv;
    ConvCols c = conv_cols(L, conv);
    int64_t H = x->dim[0], W = x->dim[1], Cin = a->cin, OH = n->dim[0], OW = n->dim[1];
    int64_t M = (int64_t)L->N * OH * OW, Kt = c.row;
    char *lab = lw_label(L, conv);
    char *nm = xasprintf("%s:cols", lab);
    int cols = lw_act(L, nm, M * Kt);
    free(nm);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, M, Kt);
    Kernel *k = kb.k;
    int xi = kb_buf(&kb, L, xb, false), ci_ = kb_buf(&kb, L, cols, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int ow = e_mod(k, i, OW), t = e_idiv(k, i, OW), oh = e_mod(k, t, OH), nn = e_idiv(k, t, OH);
    /* column j: group j / kgp, then (ci, kh, kw) within the group's first kg; the rest is padding */
    int r = c.kgp == c.kg ? j : e_mod(k, j, c.kgp);
    int kw = e_mod(k, r, a->kw), t2 = e_idiv(k, r, a->kw), kh = e_mod(k, t2, a->kh), ci = e_idiv(k, t2, a->kh);
    if (c.kgp != c.kg) ci = e_add(k, e_muli(k, e_idiv(k, j, c.kgp), c.cig), ci);
    int ih = e_add(k, e_addi(k, e_muli(k, oh, a->sh), -a->ph), e_muli(k, kh, a->dh));
    int iw = e_add(k, e_addi(k, e_muli(k, ow, a->sw), -a->pw), e_muli(k, kw, a->dw));
    int src = e_add(k, e_muli(k, e_add(k, e_muli(k, e_add(k, e_muli(k, nn, H), ih), W), iw), Cin), ci);
    int val = kir_load(k, xi, src);
    bool pad = a->ph > 0 || a->pw > 0;
    if (c.kgp == c.kg) {
        if (pad) val = kir_select(k, e_and(k, e_inrange(k, ih, 0, H), e_inrange(k, iw, 0, W)), val, e_f(k, 0));
    } else {
        int ok = e_inrange(k, r, 0, c.kg);
        if (pad) ok = e_and(k, ok, e_and(k, e_inrange(k, ih, 0, H), e_inrange(k, iw, 0, W)));
        val = kir_select(k, ok, val, e_f(k, 0));
    }
    int st = kir_stage(k, KS_MAP);
    kir_store(k, st, ci_, e_add(k, e_muli(k, i, Kt), j), val, false);
    char *fuses = c.kgp == c.kg ? xasprintf("im2col %dx%d stride %d pad %d (columns ci,kh,kw)", a->kh, a->kw, a->sh, a->ph)
                                : xasprintf("im2col %dx%d stride %d pad %d (columns g,ci,kh,kw; %lld per group padded to "
                                            "%lld)", a->kh, a->kw, a->sh, a->ph, (long long)c.kg, (long long)c.kgp);
    if (a->dh != 1 || a->dw != 1) {
        char *d = xasprintf("%s, dilation %dx%d", fuses, a->dh, a->dw);
        free(fuses);
        fuses = d;
    }
    kb_end(&kb, L, fuses, phases, false);
    free(fuses);
    free(lab);
    return cols;
}

int conv_gemm_weight(Lower *L, int conv, unsigned phases) {
    const Node *n = &L->g->nodes[conv];
    int param = L->g->nodes[n->in[1]].a.param.index;
    ConvCols c = conv_cols(L, conv);
    if (conv_cols_plain(&c)) return gemm_weight(L, param, phases);
    char *nm = xasprintf("%s:gemm_w", L->g->params[param].name);
    int copy = lw_act(L, nm, (int64_t)c.batch * c.nb * c.kb);
    free(nm);
    KB kb;
    kb_begin(&kb, L, "weight_pad", KF_ROWS, (int64_t)c.batch * c.nb * c.kb, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    /* element (entry e, row o, column q): group go = o / cog of the entry owns columns go*kgp .. go*kgp + kg */
    int q = e_mod(k, i, c.kb), t = e_idiv(k, i, c.kb), o = e_mod(k, t, c.nb), e = e_idiv(k, t, c.nb);
    int go = e_idiv(k, o, c.cog), r = e_mod(k, q, c.kgp);
    int ok = e_inrange(k, r, 0, c.kg);
    if (c.merge > 1) ok = e_and(k, kir_bin(k, KB_EQ, go, e_idiv(k, q, c.kgp)), ok);
    int row = e_add(k, e_muli(k, e, c.nb), o); /* = (e*merge + go)*cog + o % cog: the weight's output channel */
    int src = e_add(k, e_muli(k, row, c.kg), r);
    int val = kir_select(k, ok, kir_load(k, kb_buf(&kb, L, L->param_buf[param], false), src), e_f(k, 0));
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, kb_buf(&kb, L, copy, true), i, val, false);
    char *fuses = xasprintf("the GEMMs' copy of a conv weight: %lld columns per group padded to %lld, %d group(s) "
                            "per block-diagonal GEMM", (long long)c.kg, (long long)c.kgp, c.merge);
    kb_end(&kb, L, fuses, phases, false);
    free(fuses);
    return copy;
}

void conv_wgrad_scatter(Lower *L, int conv, int t, int wg, const char *lab) {
    ConvCols c = conv_cols(L, conv);
    KB kb;
    kb_begin(&kb, L, lab, KF_ROWS, (int64_t)c.groups * c.cog * c.kg, 1);
    Kernel *k = kb.k;
    int i = kir_var(k, KV_OUTER);
    /* wg[g][o][r] (row g*cog + o of the weight) is t[entry g / merge][(g % merge)*cog + o][(g % merge)*kgp + r] */
    int r = e_mod(k, i, c.kg), row = e_idiv(k, i, c.kg);
    int g = e_idiv(k, row, c.cog), gm = e_mod(k, g, c.merge);
    int trow = e_add(k, e_muli(k, e_idiv(k, g, c.merge), c.nb), e_add(k, e_muli(k, gm, c.cog), e_mod(k, row, c.cog)));
    int src = e_add(k, e_muli(k, trow, c.kb), e_add(k, e_muli(k, gm, c.kgp), r));
    int st = kir_stage(k, KS_STORE);
    kir_store(k, st, kb_buf(&kb, L, wg, true), i, kir_load(k, kb_buf(&kb, L, t, false), src), true);
    kb_end(&kb, L, "conv weight gradient: the diagonal blocks of the padded GEMM result, accumulated", PH(PHASE_BACKWARD),
           false);
}
