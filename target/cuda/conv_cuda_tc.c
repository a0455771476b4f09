/*
 * conv_cuda_tc.c — the tensor-core forms (bf16 activations) of the direct
 * grouped convolutions (conv_cuda.c): the plans and the CUDA source of the
 * forward, data-gradient and weight-gradient passes of a step whose engine is
 * CONV_ENGINE_TENSOR_CORES, on conv_cuda.c's tiles and source helpers
 * (conv_cuda_internal.h).
 *
 * nvcuda::wmma, m16n16k16, bf16 operands, f32 accumulators. Forward and data
 * gradient: a 16x16 result tile is 16 destination pixels x 16 destination
 * channels, K the source channels of their group x taps. Per tap the block
 * copies the tile's source rows out of the staged halo into s_a (M pixels x
 * the staged channels: any tile shape or stride, and zero rows for the
 * data gradient's taps between strides), then every warp multiplies its
 * tiles' A from s_a with B, the tap's bf16 weights staged once. Weight
 * gradient: a tile is 16 output x 16 input channels of one tap, K 16 output
 * pixels of one row, which are equally spaced in the staged x halo, so A (dy)
 * and B (x) load straight from shared memory. A 16-wide channel tile holds a
 * whole group's K (groups of 16 or more), or packs 16/dg narrow groups
 * block-diagonally, zeros off the diagonal: up to 4x the multiplies of the
 * convolution, on units about 15x the f32 FMA rate, in passes that are
 * memory-bound either way. Sums run taps, then 16-wide K chunks, in order.
 */
#include "conv_cuda_internal.h"
#include "conv_igemm.h" /* conv_cuda_signature, conv_cuda_wgrad_finish */

#include <stdio.h>

enum { WMMA = 16, WMMA_MOST_WARPS = 16 };

/* K of one 16-wide tile of destination channels at one tap: the source
 * channels of its group, or of the 16/dg groups it packs. */
static int tc_k_span(int dg, int sg) { return dg >= WMMA ? sg : WMMA / dg * sg; }

/* The fewest warps (dividing the tile count) that leave at most `most`
 * result tiles to each. */
static void tc_warps(Plan *P, int frags, int most) {
    P->frags = frags, P->warps = 1;
    for (int w = 1; w <= WMMA_MOST_WARPS; w++) {
        if (frags % w) continue;
        P->warps = w;
        if (frags / w <= most) break;
    }
    P->fpw = frags / P->warps, P->threads = 32 * P->warps;
}

bool plan_gather_tc(ConvPass pass, const ConvGeom *g, Plan *out) {
    const View v = conv_view_of(pass, g);
    const int taps = g->kh * g->kw, kn = tc_k_span(v.dg, v.sg);
    if (kn % WMMA || v.dst_c % WMMA) return false;
    bool found = false;
    for (int s = 0; s < N_TILE_SHAPES; s++) {
        for (int ct = 4 * WMMA; ct >= WMMA; ct /= 2) {
            Plan P = {0};
            conv_set_tile(&P, pass, g, s);
            const int m = P.th * P.tw;
            P.cit = conv_staged_channels(ct, v.dst_c, v.dg, v.sg), P.pix = P.cit, P.ct = ct, P.kn = kn;
            if (m % WMMA || !P.cit) continue;
            /* bf16 halo, weights and rows of a tap; f32 results */
            P.shared_bytes = 2 * (conv_halo_floats(&P) + ct / WMMA * taps * kn * WMMA + m * P.cit) + 4 * m * ct;
            if (P.shared_bytes > 4 * SHARED_FLOATS) continue;
            if (found && ct * m <= out->ct * out->th * out->tw) continue;
            tc_warps(&P, m / WMMA * (ct / WMMA), 2);
            *out = P;
            found = true;
        }
    }
    return found;
}

/* Pixel tiles of th rows x 16 columns (one K chunk per row). */
bool plan_weight_grad_tc(const ConvGeom *g, Plan *out) {
    const int cig = g->cin / g->groups, cog = g->cout / g->groups, taps = g->kh * g->kw, kn = tc_k_span(cog, cig);
    if (kn % WMMA || g->cout % WMMA) return false;
    for (int ct = 2 * WMMA; ct >= WMMA; ct /= 2) {
        const int cit = conv_staged_channels(ct, g->cout, cog, cig);
        if (!cit) continue;
        for (int th = 8; th >= 1; th /= 2) {
            Plan P = {.th = th, .tw = WMMA, .ct = ct, .cit = cit, .pix = cit, .kn = kn};
            P.halo_h = conv_halo(CONV_FORWARD, th, g->kh, g->sh), P.halo_w = conv_halo(CONV_FORWARD, WMMA, g->kw, g->sw);
            P.tiles_h = conv_ceil_div(g->oh, th), P.tiles_w = conv_ceil_div(g->ow, WMMA);
            tc_warps(&P, taps * (ct / WMMA) * (kn / WMMA), 4);
            P.shared_bytes = 2 * (conv_halo_floats(&P) + th * WMMA * ct) + 4 * P.warps * WMMA * WMMA;
            if (P.shared_bytes > 4 * SHARED_FLOATS) continue;
            P.elems = ct * cig * taps;
            if (!conv_set_chunks(&P, g)) return false;
            *out = P;
            return true;
        }
    }
    return false;
}

static const char *const frag_acc = "nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>";

/* The fragments of one K chunk: A and B, bf16 in the given layouts. */
static void declare_operands(StrBuf *o, const char *indent, const char *a_layout, const char *b_layout) {
    sb_printf(o, "%snvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::%s> a;\n",
              indent, a_layout);
    sb_printf(o, "%snvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::%s> b;\n",
              indent, b_layout);
}

static void declare_accumulators(StrBuf *o, const Plan *P) {
    sb_printf(o, "    %s acc[%d];\n", frag_acc, P->fpw);
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) nvcuda::wmma::fill_fragment(acc[fi], 0.0f);\n", P->fpw);
}

/* s_w[j][tap][k][16]: B of channel tile j at a tap, bf16, zero where a
 * packed tile's source and destination channels are in different groups. */
static void stage_weights_tc(StrBuf *o, ConvPass pass, const View *v, int taps, const Plan *P) {
    const int total = P->ct / WMMA * taps * P->kn * WMMA;
    sb_printf(o, "    for (int e = tid; e < %d; e += %d) {\n", total, P->threads);
    sb_printf(o, "        const int nn = e %% 16, kk = e / 16 %% %d, t = e / %d %% %d, j = e / %d;\n", P->kn, 16 * P->kn,
              taps, 16 * P->kn * taps);
    sb_printf(o, "        const int d = c0 + j * 16 + nn, sc = s_c0 + ((c0 + j * 16) / %d - c0 / %d) * %d + kk, s = sc %% %d;\n",
              v->dg, v->dg, v->sg, v->sg);
    sb_puts(o, "        float wv = 0.0f;\n");
    sb_printf(o, "        %s", v->dg < WMMA ? "" : "/* one group */ ");
    if (v->dg < WMMA) sb_printf(o, "if (sc / %d == d / %d) ", v->sg, v->dg);
    if (pass == CONV_FORWARD) sb_printf(o, "wv = w[(d * %d + s) * %d + t];\n", v->sg, taps);
    else sb_printf(o, "wv = w[((d / %d * %d + s) * %d + d %% %d) * %d + t];\n", v->dg, v->sg, v->dg, v->dg, taps);
    sb_puts(o, "        s_w[e] = __float2bfloat16(wv);\n    }\n");
}

/* s_a[p][c] = the source of destination pixel p at tap (kh, kw), channel c. */
static void stage_tap_rows(StrBuf *o, ConvPass pass, const ConvGeom *g, const Plan *P) {
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", P->th * P->tw * P->cit, P->threads);
    sb_printf(o, "            const int c = e %% %d, p = e / %d, pr = p / %d, pc = p %% %d;\n", P->cit, P->cit, P->tw, P->tw);
    if (pass == CONV_FORWARD) {
        sb_printf(o, "            s_a[e] = s_src[((pr * %d + kh) * %d + pc * %d + kw) * %d + c];\n", g->sh, P->halo_w, g->sw,
                  P->pix);
    } else {
        sb_printf(o, "            const int th = d0h + pr + %d - kh, tw = d0w + pc + %d - kw;\n", g->ph + g->sh * g->kh,
                  g->pw + g->sw * g->kw);
        char at[200];
        snprintf(at, sizeof at, "s_src[((th / %d - %d - r0) * %d + tw / %d - %d - q0) * %d + c]", g->sh, g->kh, P->halo_w,
                 g->sw, g->kw, P->pix);
        if (g->sh > 1 || g->sw > 1)
            sb_printf(o, "            s_a[e] = th %% %d == 0 && tw %% %d == 0 ? (__nv_bfloat16)%s : __float2bfloat16(0.0f);\n",
                      g->sh, g->sw, at);
        else sb_printf(o, "            s_a[e] = %s;\n", at);
    }
    sb_puts(o, "        }\n        __syncthreads(); /* the tap's rows */\n");
}

/* ConvGradSums (program.h): after a data-gradient tile is stored, a thread
 * per channel of the tile sums its valid pixels in order, from dx as
 * stored (s_out, rounded to dx's dtype) and the BN input, into the block's
 * row of the partials. The sum runs over 16..64 pixels: a fixed order, no
 * atomics, so the kernel-IR reduction over the rows gives the same result
 * every run. */
static void render_grad_sums(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const int m = P->th * P->tw;
    sb_puts(o, "    /* the BatchNorm gradient sums of this block's pixels (ConvGradSums) */\n");
    sb_printf(o, "    for (int c = tid; c < %d; c += %d) {\n", P->ct, P->threads);
    sb_puts(o, "        const int ch = c0 + c;\n");
    sb_printf(o, "        const float mean = norm_stats[ch], inv = norm_stats[%d + ch], ga = norm_gamma[ch], be = norm_beta[ch];\n",
              g->cin);
    sb_puts(o, "        float s1 = 0.0f, s2 = 0.0f;\n");
    sb_printf(o, "        for (int p = 0; p < %d; p++) {\n", m);
    sb_printf(o, "            const int dh = d0h + p / %d, dw = d0w + p %% %d;\n", P->tw, P->tw);
    sb_printf(o, "            if (dh >= %d || dw >= %d) continue;\n", g->h, g->w);
    sb_printf(o, "            const int at = ((n * %d + dh) * %d + dw) * %d + ch;\n", g->h, g->w, g->cin);
    sb_printf(o, "            float gv = s_out[p * %d + c];\n", P->ct);
    if (k->x_type == KD_BF16) sb_puts(o, "            gv = __bfloat162float(__float2bfloat16(gv)); /* as stored */\n");
    sb_puts(o, "            float xv;\n");
    conv_load_into(o, "            ", "xv", k->x_type, "sums_bn_x[at]");
    sb_puts(o, "            const float xhat = (xv - mean) * inv;\n");
    if (s->norm.relu) sb_puts(o, "            if (!(xhat * ga + be > 0.0f)) gv = 0.0f; /* the ReLU's mask */\n");
    sb_puts(o, "            s1 += gv;\n            s2 += gv * xhat;\n        }\n");
    sb_printf(o, "        const int row = blockIdx.y * %d + blockIdx.x;\n", P->tiles_h * P->tiles_w);
    sb_printf(o, "        sums_partials[row * %d + ch] = s1;\n", g->cin);
    sb_printf(o, "        sums_partials[(%d + row) * %d + ch] = s2;\n    }\n", s->sums.rows, g->cin);
}

/* ConvOutStats (program.h): after a forward tile is stored, a thread per
 * channel of the tile sums its valid pixels in order, as stored (rounded
 * to y's dtype), about the first one, into the block's row of the partials:
 * the shifted one-pass sums of lower.c's BN statistics, per block. */
static void render_out_stats(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const int m = P->th * P->tw, plane = s->stats.rows * g->cout;
    sb_puts(o, "    /* the BatchNorm statistics of this block's pixels (ConvOutStats) */\n");
    sb_printf(o, "    for (int c = tid; c < %d; c += %d) {\n", P->ct, P->threads);
    sb_puts(o, "        float k = 0.0f, s1 = 0.0f, s2 = 0.0f, count = 0.0f;\n");
    sb_printf(o, "        for (int p = 0; p < %d; p++) {\n", m);
    sb_printf(o, "            const int dh = d0h + p / %d, dw = d0w + p %% %d;\n", P->tw, P->tw);
    sb_printf(o, "            if (dh >= %d || dw >= %d) continue;\n", g->oh, g->ow);
    sb_printf(o, "            float v = s_out[p * %d + c];\n", P->ct);
    if (k->y_type == KD_BF16) sb_puts(o, "            v = __bfloat162float(__float2bfloat16(v)); /* as stored */\n");
    sb_puts(o, "            if (count == 0.0f) k = v;\n");
    sb_puts(o, "            const float d = v - k;\n            s1 += d;\n            s2 += d * d;\n            count += 1.0f;\n");
    sb_puts(o, "        }\n");
    sb_printf(o, "        const int at = (blockIdx.y * %d + blockIdx.x) * %d + c0 + c;\n", P->tiles_h * P->tiles_w, g->cout);
    sb_printf(o, "        stats_partials[at] = s1;\n        stats_partials[%d + at] = s2;\n", plane);
    sb_printf(o, "        stats_partials[%d + at] = count;\n        stats_partials[%d + at] = k;\n    }\n", 2 * plane,
              3 * plane);
}

void render_gather_tc(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const ConvPass pass = s->pass;
    const View v = conv_view_of(pass, g);
    const bool fwd = pass == CONV_FORWARD;
    const KDType dt = fwd ? k->y_type : k->x_type;
    const int taps = g->kh * g->kw, m = P->th * P->tw, nt = P->ct / WMMA;
    conv_cuda_signature(o, k, "", P->threads);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_src, %d);\n", conv_halo_floats(P));
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_w, %d);\n", nt * taps * P->kn * WMMA);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_a, %d);\n", m * P->cit);
    sb_printf(o, "    RXC_SHARED_WMMA(float, s_out, %d);\n", m * P->ct);
    sb_puts(o, "    const int tid = threadIdx.x, warp = tid / 32, n = blockIdx.y;\n");
    sb_printf(o, "    const int d0h = (int)(blockIdx.x / %d) * %d, d0w = (int)(blockIdx.x %% %d) * %d;\n", P->tiles_w,
              P->th, P->tiles_w, P->tw);
    sb_printf(o, "    const int c0 = blockIdx.z * %d, s_c0 = c0 / %d * %d;\n", P->ct, v.dg, v.sg);
    conv_tile_origin(o, pass, g);
    conv_stage_halo(o, "s_src", fwd ? "x" : "y", fwd ? k->x_type : k->y_type, v.src_h, v.src_w, v.src_c, P, true,
               fwd ? &s->norm : NULL);
    stage_weights_tc(o, pass, &v, taps, P);
    sb_puts(o, "    __syncthreads(); /* the halo and the weights */\n");
    declare_accumulators(o, P);
    sb_printf(o, "#pragma unroll 1\n    for (int t = 0; t < %d; t++) {\n", taps);
    sb_printf(o, "        const int kh = t / %d, kw = t %% %d;\n", g->kw, g->kw);
    stage_tap_rows(o, pass, g, P);
    sb_printf(o, "#pragma unroll\n        for (int fi = 0; fi < %d; fi++) {\n", P->fpw);
    sb_printf(o, "            const int f = warp + fi * %d, mt = f / %d, j = f %% %d;\n", P->warps, nt, nt);
    sb_printf(o, "            const int a_at = mt * %d + ((c0 + j * 16) / %d - c0 / %d) * %d;\n", WMMA * P->cit, v.dg, v.dg,
              v.sg);
    sb_printf(o, "#pragma unroll\n            for (int kc = 0; kc < %d; kc++) {\n", P->kn / WMMA);
    declare_operands(o, "                ", "row_major", "row_major");
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(a, s_a + a_at + kc * 16, %d);\n", P->cit);
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(b, s_w + ((j * %d + t) * %d + kc * 16) * 16, 16);\n", taps,
              P->kn);
    sb_puts(o, "                nvcuda::wmma::mma_sync(acc[fi], a, b, acc[fi]);\n            }\n        }\n");
    sb_puts(o, "        __syncthreads(); /* every warp is done with the rows */\n    }\n");
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) {\n", P->fpw);
    sb_printf(o, "        const int f = warp + fi * %d, mt = f / %d, j = f %% %d;\n", P->warps, nt, nt);
    sb_printf(o, "        nvcuda::wmma::store_matrix_sync(s_out + mt * %d + j * 16, acc[fi], %d, nvcuda::wmma::mem_row_major);\n",
              WMMA * P->ct, P->ct);
    sb_puts(o, "    }\n    __syncthreads();\n");
    sb_printf(o, "    for (int e = tid; e < %d; e += %d) {\n", m * P->ct, P->threads);
    sb_printf(o, "        const int c = e %% %d, p = e / %d, dh = d0h + p / %d, dw = d0w + p %% %d;\n", P->ct, P->ct, P->tw,
              P->tw);
    sb_printf(o, "        if (dh >= %d || dw >= %d) continue;\n", v.dst_h, v.dst_w);
    sb_printf(o, "        const int at = ((n * %d + dh) * %d + dw) * %d + c0 + c;\n", v.dst_h, v.dst_w, v.dst_c);
    char at[32];
    snprintf(at, sizeof at, "%s[at]", fwd ? "y" : "x");
    conv_store_result(o, "        ", at, dt, s->accumulate, "s_out[e]");
    sb_puts(o, "    }\n");
    if (s->sums.on) render_grad_sums(o, k, P);
    if (s->stats.on) render_out_stats(o, k, P);
    sb_puts(o, "}\n\n");
}

/* The result tiles of warp `warp`, fi-th: tap t, output-channel tile mi,
 * input-channel tile ni; b0 = the tile's first staged input channel. */
static void wgrad_tile_of(StrBuf *o, const char *indent, const ConvGeom *g, const Plan *P) {
    const int cig = g->cin / g->groups, cog = g->cout / g->groups, mts = P->ct / WMMA, nks = P->kn / WMMA;
    sb_printf(o, "%sconst int f = warp + fi * %d, t = f / %d, mi = f / %d %% %d, ni = f %% %d;\n", indent, P->warps,
              mts * nks, nks, mts, nks);
    sb_printf(o, "%sconst int b0 = ((c0 + mi * 16) / %d - c0 / %d) * %d + ni * 16;\n", indent, cog, cog, cig);
}

void render_weight_grad_tc(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvGeom *g = &k->step.g;
    const int cig = g->cin / g->groups, cog = g->cout / g->groups, taps = g->kh * g->kw, total = g->cout * cig * taps;
    conv_cuda_signature(o, k, "", P->threads);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_x, %d);\n", conv_halo_floats(P));
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_dy, %d);\n", P->th * WMMA * P->ct);
    sb_printf(o, "    RXC_SHARED_WMMA(float, s_out, %d);\n", P->warps * WMMA * WMMA);
    sb_printf(o, "    const int tid = threadIdx.x, warp = tid / 32, lane = tid %% 32, chunk = blockIdx.x;\n");
    sb_printf(o, "    const int c0 = blockIdx.y * %d, s_c0 = c0 / %d * %d;\n", P->ct, cog, cig);
    declare_accumulators(o, P);
    conv_wgrad_tile_begin(o, k, P, true);
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", P->th * WMMA * P->ct, P->threads);
    sb_printf(o, "            const int c = e %% %d, p = e / %d, oh = oh0 + p / 16, ow = ow0 + p %% 16;\n", P->ct, P->ct);
    sb_puts(o, "            float v = 0.0f;\n");
    sb_printf(o, "            if (oh < %d && ow < %d) {\n", g->oh, g->ow);
    char expr[160];
    snprintf(expr, sizeof expr, "y[((n * %d + oh) * %d + ow) * %d + c0 + c]", g->oh, g->ow, g->cout);
    conv_load_into(o, "                ", "v", k->y_type, expr);
    sb_puts(o, "            }\n            s_dy[e] = __float2bfloat16(v);\n        }\n        __syncthreads();\n");
    sb_printf(o, "#pragma unroll\n        for (int fi = 0; fi < %d; fi++) {\n", P->fpw);
    wgrad_tile_of(o, "            ", g, P);
    sb_printf(o, "            const int b_at = (t / %d * %d + t %% %d) * %d + b0;\n", g->kw, P->halo_w, g->kw, P->pix);
    sb_printf(o, "            for (int r = 0; r < %d; r++) {\n", P->th);
    declare_operands(o, "                ", "col_major", "row_major");
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(a, s_dy + r * %d + mi * 16, %d);\n", WMMA * P->ct, P->ct);
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(b, s_x + b_at + r * %d, %d);\n", g->sh * P->halo_w * P->pix,
              g->sw * P->pix);
    sb_puts(o, "                nvcuda::wmma::mma_sync(acc[fi], a, b, acc[fi]);\n            }\n        }\n");
    sb_puts(o, "        __syncthreads();\n    }\n");
    /* each tile's valid elements to this chunk's partials, a warp's tile at a time */
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) {\n", P->fpw);
    wgrad_tile_of(o, "        ", g, P);
    sb_puts(o, "        nvcuda::wmma::store_matrix_sync(s_out + warp * 256, acc[fi], 16, nvcuda::wmma::mem_row_major);\n");
    sb_puts(o, "        __syncthreads();\n        for (int q = lane; q < 256; q += 32) {\n");
    sb_puts(o, "            const int co = c0 + mi * 16 + q / 16, sc = s_c0 + b0 + q % 16;\n");
    if (cog < WMMA) sb_printf(o, "            if (sc / %d != co / %d) continue;\n", cig, cog);
    sb_printf(o, "            scratch[chunk * %d + (co * %d + sc %% %d) * %d + t] = s_out[warp * 256 + q];\n", total, cig, cig,
              taps);
    sb_puts(o, "        }\n        __syncthreads();\n    }\n}\n\n");
    conv_cuda_wgrad_finish(o, k, P->chunks);
}
