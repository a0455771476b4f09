/*
 * conv_cuda.c — direct grouped convolutions on the GPU (STEP_CONV): CUDA
 * source for the forward, data-gradient and weight-gradient passes of each
 * conv of a Program, specialised to its geometry (every shape, stride and
 * tile is a literal), on NHWC activations (f32 or bf16) with f32 weights
 * in PyTorch's layout [cout][cin/groups][kh][kw] and f32 accumulation.
 *
 * Why: as im2col + one skinny GEMM per group, ResNeXt's grouped 3x3 convs
 * (4..32 channels per group) copy their input nine times into column
 * buffers in every pass and move several times the bytes of x, w and y;
 * here each pass reads its tensors about once from DRAM.
 *
 * Forward and data gradient are one gathered form. A block owns a tile of
 * TH x TW destination pixels of one image and CT destination channels (a
 * few whole groups, or part of one wide group). It stages the source
 * pixels the tile's windows reach (the halo included, zeros off the image)
 * for the source channels of those groups, and the CT x SG x taps weights,
 * in shared memory once; each thread then sums CPT channels of one group
 * x PPT pixels in registers, over taps then source channels (a fixed
 * order). For the data gradient the destinations are input pixels and the
 * sources the output pixels whose windows reach them (the gather form of
 * the transposed conv; a tap that falls between strides is skipped), so no
 * two threads write one element and no atomics are needed.
 *
 * Weight gradient: dw[co][ci][t] sums dy * x over all N*OH*OW output
 * pixels, in two deterministic stages. A block owns CT output channels
 * (their groups' input channels) and a chunk of consecutive pixel tiles;
 * it stages each tile's x halo and dy in shared memory and every thread
 * adds, pixel by pixel in order, into its own few dw elements; the chunk's
 * partials go to the executor's scratch area. NAME_finish then adds the
 * chunks in chunk order into w (= or +=). No atomics, so every result is
 * the same from run to run.
 *
 * A step whose engine is CONV_ENGINE_TENSOR_CORES (bf16 activations, what
 * conv_cuda_engine told the compiler) runs the same three passes with bf16
 * MMAs (nvcuda::wmma) instead: conv_cuda_tc.c renders those on the plans
 * and source helpers here (conv_cuda_internal.h); this file picks the form
 * of each step and renders the Program's conv kernels.
 */
#include "conv_cuda.h"
#include "conv_cuda_internal.h"
#include "conv_igemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum {
    MAX_GROUP_WIDTH = 64,
    /* weight gradient: dw elements per block, the grid it aims for, and the
     * fewest pixel tiles per chunk (each chunk writes all its partials) */
    WGRAD_ELEMS = 2304, WGRAD_BLOCKS = 1024, WGRAD_MIN_TILES = 4
};

static bool is_pow2(int v) { return v > 0 && (v & (v - 1)) == 0; }

static const int tile_shapes[][2] = {{8, 8}, {4, 8}, {4, 4}, {2, 4}, {2, 2}, {1, 2}, {1, 1}};
_Static_assert(sizeof tile_shapes / sizeof tile_shapes[0] == N_TILE_SHAPES, "N_TILE_SHAPES counts tile_shapes");

void conv_set_tile(Plan *P, ConvPass pass, const ConvGeom *g, int s) {
    const View v = conv_view_of(pass == CONV_WEIGHT_GRAD ? CONV_FORWARD : pass, g);
    P->th = tile_shapes[s][0], P->tw = tile_shapes[s][1];
    P->halo_h = conv_halo(pass == CONV_WEIGHT_GRAD ? CONV_FORWARD : pass, P->th, g->kh, g->sh);
    P->halo_w = conv_halo(pass == CONV_WEIGHT_GRAD ? CONV_FORWARD : pass, P->tw, g->kw, g->sw);
    P->tiles_h = conv_ceil_div(v.dst_h, P->th), P->tiles_w = conv_ceil_div(v.dst_w, P->tw);
}

/* Channel tiles: powers of two dividing the channel count that hold whole
 * groups or part of one. Returns the source channels it stages, 0 if ct is
 * not a tile. */
int conv_staged_channels(int ct, int dst_c, int dg, int sg) {
    if (dst_c % ct || (ct % dg && dg % ct)) return 0;
    return ct >= dg ? ct / dg * sg : sg;
}

/* Forward and data gradient: the tile with the most outputs per block that
 * fits in shared memory (ties: more channels, whose weights every pixel
 * reuses). */
static bool plan_gather(ConvPass pass, const ConvGeom *g, Plan *out) {
    const View v = conv_view_of(pass, g);
    const int taps = g->kh * g->kw;
    bool found = false;
    for (int s = 0; s < N_TILE_SHAPES; s++) {
        for (int ct = 32; ct >= 1; ct /= 2) {
            Plan P = {0};
            conv_set_tile(&P, pass, g, s);
            P.cit = conv_staged_channels(ct, v.dst_c, v.dg, v.sg), P.pix = P.cit + 1;
            if (!P.cit || (int64_t)conv_halo_floats(&P) + (int64_t)ct * v.sg * taps > SHARED_FLOATS) continue;
            if (found && ct * P.th * P.tw <= out->ct * out->th * out->tw) continue;
            P.ct = ct;
            P.cpt = ct < 4 ? ct : 4;
            if (v.dg < P.cpt) P.cpt = v.dg;
            P.cl = ct / P.cpt;
            int pixels = P.th * P.tw;
            P.pl = 128 / P.cl < 1 ? 1 : 128 / P.cl;
            if (P.pl > pixels) P.pl = pixels;
            P.ppt = pixels / P.pl;
            P.threads = P.cl * P.pl;
            *out = P;
            found = true;
        }
    }
    return found;
}

/* Chunks of pixel tiles so that the weight gradient's grid has about
 * WGRAD_BLOCKS blocks, each chunk at least WGRAD_MIN_TILES tiles (its
 * partials cost a write and a read). False when the indices overflow. */
bool conv_set_chunks(Plan *P, const ConvGeom *g) {
    P->work_tiles = g->n * P->tiles_h * P->tiles_w;
    int ctiles = g->cout / P->ct;
    P->chunks = conv_ceil_div(WGRAD_BLOCKS, ctiles);
    const int most = conv_ceil_div(P->work_tiles, WGRAD_MIN_TILES);
    if (P->chunks > most) P->chunks = most;
    int64_t total = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
    while (P->chunks > 1 && (int64_t)P->chunks * total > (1 << 26)) P->chunks /= 2;
    return (int64_t)P->chunks * P->work_tiles <= INT32_MAX;
}

/* Weight gradient: the widest channel tile with at most WGRAD_ELEMS dw
 * elements per block, then the largest pixel tile that fits; chunks of
 * pixel tiles (conv_set_chunks). */
static bool plan_weight_grad(const ConvGeom *g, Plan *out) {
    const int cig = g->cin / g->groups, cog = g->cout / g->groups, taps = g->kh * g->kw;
    for (int ct = 32; ct >= 1; ct /= 2) {
        int cit = conv_staged_channels(ct, g->cout, cog, cig);
        if (!cit || (int64_t)ct * cig * taps > WGRAD_ELEMS) continue;
        for (int s = 0; s < N_TILE_SHAPES; s++) {
            Plan P = {0};
            conv_set_tile(&P, CONV_WEIGHT_GRAD, g, s);
            P.ct = ct, P.cit = cit, P.pix = cit + 1;
            if ((int64_t)conv_halo_floats(&P) + (int64_t)P.th * P.tw * ct > SHARED_FLOATS) continue;
            P.elems = ct * cig * taps;
            P.threads = 256;
            while (P.threads > 32 && P.elems % P.threads) P.threads /= 2;
            if (P.elems < P.threads) P.threads = conv_ceil_div(P.elems, 32) * 32;
            P.ept = conv_ceil_div(P.elems, P.threads);
            if (!conv_set_chunks(&P, g)) return false;
            *out = P;
            return true;
        }
    }
    return false;
}

static bool geometry_sane(const ConvGeom *g) {
    return g->n > 0 && g->h > 0 && g->w > 0 && g->oh > 0 && g->ow > 0 && g->groups > 0 && g->kh > 0 && g->kw > 0 &&
           g->sh > 0 && g->sw > 0 && g->ph >= 0 && g->pw >= 0 && g->cin > 0 && g->cout > 0 &&
           g->cin % g->groups == 0 && g->cout % g->groups == 0 &&
           (int64_t)(g->oh - 1) * g->sh - g->ph + g->kh <= (int64_t)g->h + g->ph &&
           (int64_t)(g->ow - 1) * g->sw - g->pw + g->kw <= (int64_t)g->w + g->pw;
}

bool conv_cuda_supported(const ConvGeom *g) {
    if (g->groups <= 1 || !geometry_sane(g)) return false;
    int cig = g->cin / g->groups, cog = g->cout / g->groups;
    if (!is_pow2(cig) || !is_pow2(cog) || cig > MAX_GROUP_WIDTH || cog > MAX_GROUP_WIDTH) return false;
    if (g->kh > 7 || g->kw > 7 || g->sh > 4 || g->sw > 4 || g->ph >= g->kh || g->pw >= g->kw) return false;
    /* 32-bit indices with room for the tile arithmetic past the end */
    const int64_t limit = INT32_MAX / 2;
    if ((int64_t)g->n * g->h * g->w * g->cin > limit || (int64_t)g->n * g->oh * g->ow * g->cout > limit) return false;
    Plan P;
    return plan_gather(CONV_FORWARD, g, &P) && plan_gather(CONV_DATA_GRAD, g, &P) && plan_weight_grad(g, &P);
}

/* ---- source ----------------------------------------------------------------------- */

static const char *ctype(KDType t) { return render_cuda_ctype(t); }

/* `dst = value of expr` for a load of dtype t (bf16 widens exactly) */
void conv_load_into(StrBuf *o, const char *indent, const char *dst, KDType t, const char *expr) {
    if (t == KD_BF16) sb_printf(o, "%s%s = __bfloat162float(%s);\n", indent, dst, expr);
    else sb_printf(o, "%s%s = %s;\n", indent, dst, expr);
}

void conv_store_result(StrBuf *o, const char *indent, const char *at, KDType t, bool accumulate, const char *value) {
    if (!accumulate) {
        conv_store_value(o, indent, at, t, value);
        return;
    }
    char sum[96];
    snprintf(sum, sizeof sum, "old + %s", value);
    conv_load_into(o, indent, "const float old", t, at);
    conv_store_value(o, indent, at, t, sum);
}

void conv_store_value(StrBuf *o, const char *indent, const char *dst, KDType t, const char *value) {
    if (t == KD_BF16) sb_printf(o, "%s%s = __float2bfloat16(%s);\n", indent, dst, value);
    else sb_printf(o, "%s%s = %s;\n", indent, dst, value);
}

/* The elements of each buffer parameter, in the kernel's order: x, w, y,
 * scratch, then library_step_buffers' slots 3..8 the step has. */
static void print_extents(StrBuf *o, const ConvCudaKernel *k) {
    const Step st = {.kind = STEP_CONV, .conv = k->step};
    int bufs[LIBRARY_STEP_BUFS];
    int64_t e[LIBRARY_STEP_BUFS];
    library_step_buffers(&st, bufs);
    conv_step_extents(&k->step, e);
    sb_printf(o, "\n * extents: %lld %lld %lld scratch %lld", (long long)e[0], (long long)e[1], (long long)e[2],
              (long long)k->launch.scratch_floats);
    for (int q = 3; q < LIBRARY_STEP_BUFS; q++)
        if (bufs[q] >= 0) sb_printf(o, " %lld", (long long)e[q]);
}

void conv_cuda_signature(StrBuf *o, const ConvCudaKernel *k, const char *suffix, int threads) {
    ConvPass pass = k->step.pass;
    /* the header comment nvrtc_compile splits the module at (NAME_finish stays with NAME) */
    if (!*suffix) {
        const ConvGeom *g = &k->step.g;
        sb_printf(o, "/* %s: %s, %s", k->name, g->groups > 1 ? "direct grouped conv" : "implicit-GEMM conv",
                  pass == CONV_FORWARD ? "forward" : pass == CONV_DATA_GRAD ? "data gradient" : "weight gradient");
        if (getenv("RXC_CUDA_EXTENTS")) /* test hook: the sizes tests/cuda/fake_gpu.cc bounds-checks */
            print_extents(o, k);
        sb_puts(o, " */\n");
    }
    sb_printf(o,
              "extern \"C\" __global__ void __launch_bounds__(%d) %s%s(RXC_GLOBAL(%s%s) x, RXC_GLOBAL(%sfloat) w, "
              "RXC_GLOBAL(%s%s) y, const double *sc, RXC_GLOBAL(float) scratch%s",
              threads, k->name, suffix, pass == CONV_DATA_GRAD ? "" : "const ", ctype(k->x_type),
              pass == CONV_WEIGHT_GRAD ? "" : "const ", pass == CONV_FORWARD ? "" : "const ", ctype(k->y_type),
              k->step.norm.on ? ", RXC_GLOBAL(const float) norm_stats, RXC_GLOBAL(const float) norm_gamma, "
                                "RXC_GLOBAL(const float) norm_beta" : "");
    if (k->step.sums.on) sb_printf(o, ", RXC_GLOBAL(const %s) sums_bn_x, RXC_GLOBAL(float) sums_partials", ctype(k->x_type));
    if (k->step.stats.on) sb_puts(o, ", RXC_GLOBAL(float) stats_partials");
    sb_puts(o, ") {\n");
}

/* `v = ` x's input norm (program.h ConvInputNorm) of v, channel ch of c,
 * rounded as the tree's kernel would have stored it when t is bf16 and the
 * stage keeps f32 (a bf16 stage rounds it anyway). */
static void apply_input_norm(StrBuf *o, const char *indent, const ConvInputNorm *norm, int c, KDType t, bool to_bf16,
                             const char *ch) {
    sb_printf(o, "%sv = (v - norm_stats[%s]) * norm_stats[%d + %s] * norm_gamma[%s] + norm_beta[%s];\n", indent, ch, c,
              ch, ch, ch);
    if (norm->relu) sb_printf(o, "%sv = fmaxf(v, 0.0f);\n", indent);
    if (t == KD_BF16 && !to_bf16) sb_printf(o, "%sv = __bfloat162float(__float2bfloat16(v));\n", indent);
}

/* Stages the halo of a tile: s_name[HALO_H][HALO_W][pix] from tensor t
 * (h x w x c per image) at rows r0.., columns q0.., channels s_c0..,
 * zeros off the image, as f32 or (to_bf16: exact from bf16) bf16, with x's
 * input norm applied on the image when norm is on. Expects tid, n, r0, q0,
 * s_c0. */
void conv_stage_halo(StrBuf *o, const char *s_name, const char *t, KDType type, int h, int w, int c, const Plan *P,
                       bool to_bf16, const ConvInputNorm *norm) {
    int total = P->halo_h * P->halo_w * P->cit;
    sb_printf(o, "    for (int e = tid; e < %d; e += %d) {\n", total, P->threads);
    sb_printf(o, "        const int c = e %% %d, px = e / %d;\n", P->cit, P->cit);
    sb_printf(o, "        const int r = r0 + px / %d, q = q0 + px %% %d;\n", P->halo_w, P->halo_w);
    sb_puts(o, "        float v = 0.0f;\n");
    sb_printf(o, "        if (r >= 0 && r < %d && q >= 0 && q < %d) {\n", h, w);
    char expr[160];
    snprintf(expr, sizeof expr, "%s[((n * %d + r) * %d + q) * %d + s_c0 + c]", t, h, w, c);
    conv_load_into(o, "            ", "v", type, expr);
    if (norm && norm->on) apply_input_norm(o, "            ", norm, c, type, to_bf16, "s_c0 + c");
    sb_puts(o, "        }\n");
    sb_printf(o, to_bf16 ? "        %s[px * %d + c] = __float2bfloat16(v);\n    }\n" : "        %s[px * %d + c] = v;\n    }\n",
              s_name, P->pix);
}

/* The start of the source rows of the tile: r0 (rows) and q0 (columns). */
void conv_tile_origin(StrBuf *o, ConvPass pass, const ConvGeom *g) {
    if (pass == CONV_DATA_GRAD) {
        /* floor((d0 + p - (k - 1)) / s), kept non-negative by s * k */
        sb_printf(o, "    const int r0 = (d0h + %d) / %d - %d, q0 = (d0w + %d) / %d - %d;\n",
                  g->ph - (g->kh - 1) + g->sh * g->kh, g->sh, g->kh, g->pw - (g->kw - 1) + g->sw * g->kw, g->sw, g->kw);
    } else {
        sb_printf(o, "    const int r0 = d0h * %d - %d, q0 = d0w * %d - %d;\n", g->sh, g->ph, g->sw, g->pw);
    }
}

/* Per tap: off[q], the tile offset of the source pixel of pixel q (and
 * ok[q] for a strided data gradient, whose taps can fall between rows). */
static void tap_offsets(StrBuf *o, ConvPass pass, const ConvGeom *g, const Plan *P, bool strided) {
    sb_printf(o, "            int off[%d];\n", P->ppt);
    if (strided) sb_printf(o, "            bool ok[%d];\n", P->ppt);
    sb_printf(o, "#pragma unroll\n            for (int q = 0; q < %d; q++) {\n", P->ppt);
    sb_printf(o, "                const int p = pl + q * %d, pr = p / %d, pc = p %% %d;\n", P->pl, P->tw, P->tw);
    if (pass == CONV_FORWARD) {
        sb_printf(o, "                off[q] = ((pr * %d + kh) * %d + pc * %d + kw) * %d + sb;\n", g->sh, P->halo_w, g->sw,
                  P->pix);
    } else {
        sb_printf(o, "                const int th = d0h + pr + %d - kh, tw = d0w + pc + %d - kw;\n",
                  g->ph + g->sh * g->kh, g->pw + g->sw * g->kw);
        if (strided) sb_printf(o, "                ok[q] = th %% %d == 0 && tw %% %d == 0;\n", g->sh, g->sw);
        sb_printf(o, "                off[q] = ((th / %d - %d - r0) * %d + tw / %d - %d - q0) * %d + sb;\n", g->sh, g->kh,
                  P->halo_w, g->sw, g->kw, P->pix);
    }
    sb_puts(o, "            }\n");
}

static void render_gather(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const ConvPass pass = s->pass;
    const View v = conv_view_of(pass, g);
    const bool fwd = pass == CONV_FORWARD, strided = !fwd && (g->sh > 1 || g->sw > 1);
    const KDType st = fwd ? k->x_type : k->y_type, dt = fwd ? k->y_type : k->x_type;
    const char *src = fwd ? "x" : "y", *dst = fwd ? "y" : "x";
    const int taps = g->kh * g->kw;
    conv_cuda_signature(o, k, "", P->threads);
    sb_printf(o, "    RXC_SHARED(float, s_src, %d);\n", conv_halo_floats(P));
    sb_printf(o, "    RXC_SHARED(float, s_w, %d);\n", P->ct * v.sg * taps);
    sb_puts(o, "    const int tid = threadIdx.x, n = blockIdx.y;\n");
    sb_printf(o, "    const int d0h = (int)(blockIdx.x / %d) * %d, d0w = (int)(blockIdx.x %% %d) * %d;\n", P->tiles_w,
              P->th, P->tiles_w, P->tw);
    sb_printf(o, "    const int c0 = blockIdx.z * %d, s_c0 = c0 / %d * %d;\n", P->ct, v.dg, v.sg);
    conv_tile_origin(o, pass, g);
    conv_stage_halo(o, "s_src", src, st, v.src_h, v.src_w, v.src_c, P, false, fwd ? &s->norm : NULL);
    /* weights as s_w[tap][source channel][destination channel] */
    sb_printf(o, "    for (int e = tid; e < %d; e += %d) {\n", P->ct * v.sg * taps, P->threads);
    sb_printf(o, "        const int d = c0 + e %% %d, s = e / %d %% %d, t = e / %d;\n", P->ct, P->ct, v.sg, P->ct * v.sg);
    if (fwd) sb_printf(o, "        s_w[e] = w[(d * %d + s) * %d + t];\n", v.sg, taps);
    else sb_printf(o, "        s_w[e] = w[((d / %d * %d + s) * %d + d %% %d) * %d + t];\n", v.dg, v.sg, v.dg, v.dg, taps);
    sb_puts(o, "    }\n    __syncthreads();\n");
    sb_printf(o, "    const int pl = tid / %d, dc = tid %% %d * %d;\n", P->cl, P->cl, P->cpt);
    sb_printf(o, "    const int sb = ((c0 + dc) / %d - c0 / %d) * %d;\n", v.dg, v.dg, v.sg);
    sb_printf(o, "    float acc[%d][%d];\n", P->ppt, P->cpt);
    sb_printf(o, "#pragma unroll\n    for (int q = 0; q < %d; q++)\n#pragma unroll\n        for (int j = 0; j < %d; j++) "
                 "acc[q][j] = 0.0f;\n", P->ppt, P->cpt);
    /* one tap at a time: unrolled taps only lengthen live ranges (ptxas spilled) */
    sb_printf(o, "#pragma unroll 1\n    for (int kh = 0; kh < %d; kh++) {\n#pragma unroll 1\n        for (int kw = 0; kw < %d; kw++) {\n",
              g->kh, g->kw);
    tap_offsets(o, pass, g, P, strided);
    sb_printf(o, "            for (int s = 0; s < %d; s++) {\n", v.sg);
    sb_printf(o, "                float wv[%d];\n#pragma unroll\n                for (int j = 0; j < %d; j++) "
                 "wv[j] = s_w[((kh * %d + kw) * %d + s) * %d + dc + j];\n", P->cpt, P->cpt, g->kw, v.sg, P->ct);
    sb_printf(o, "#pragma unroll\n                for (int q = 0; q < %d; q++) {\n", P->ppt);
    if (strided) sb_puts(o, "                    if (!ok[q]) continue;\n");
    sb_puts(o, "                    const float xv = s_src[off[q] + s];\n");
    sb_printf(o, "#pragma unroll\n                    for (int j = 0; j < %d; j++) acc[q][j] += xv * wv[j];\n", P->cpt);
    sb_puts(o, "                }\n            }\n        }\n    }\n");
    sb_printf(o, "#pragma unroll\n    for (int q = 0; q < %d; q++) {\n", P->ppt);
    sb_printf(o, "        const int p = pl + q * %d, dh = d0h + p / %d, dw = d0w + p %% %d;\n", P->pl, P->tw, P->tw);
    sb_printf(o, "        if (dh >= %d || dw >= %d) continue;\n", v.dst_h, v.dst_w);
    sb_printf(o, "        const int base = ((n * %d + dh) * %d + dw) * %d + c0 + dc;\n", v.dst_h, v.dst_w, v.dst_c);
    sb_printf(o, "#pragma unroll\n        for (int j = 0; j < %d; j++) {\n", P->cpt);
    char at[64];
    snprintf(at, sizeof at, "%s[base + j]", dst);
    conv_store_result(o, "            ", at, dt, s->accumulate, "acc[q][j]");
    sb_puts(o, "        }\n    }\n}\n\n");
}

/* A weight-gradient block's loop over its chunk's pixel tiles, opened, with
 * the tile's x halo staged (as bf16 when to_bf16): both forms start so. */
void conv_wgrad_tile_begin(StrBuf *o, const ConvCudaKernel *k, const Plan *P, bool to_bf16) {
    const ConvGeom *g = &k->step.g;
    sb_printf(o, "    const int wt_end = (chunk + 1) * %d / %d;\n", P->work_tiles, P->chunks);
    sb_printf(o, "    for (int wt = chunk * %d / %d; wt < wt_end; wt++) {\n", P->work_tiles, P->chunks);
    sb_printf(o, "        const int n = wt / %d, tile = wt %% %d;\n", P->tiles_h * P->tiles_w, P->tiles_h * P->tiles_w);
    sb_printf(o, "        const int oh0 = tile / %d * %d, ow0 = tile %% %d * %d;\n", P->tiles_w, P->th, P->tiles_w, P->tw);
    sb_printf(o, "        const int r0 = oh0 * %d - %d, q0 = ow0 * %d - %d;\n", g->sh, g->ph, g->sw, g->pw);
    conv_stage_halo(o, "s_x", "x", k->x_type, g->h, g->w, g->cin, P, to_bf16, &k->step.norm);
}

/* NAME_finish: w (= or +=) the chunks' partials in scratch, in chunk order. */
void conv_cuda_wgrad_finish(StrBuf *o, const ConvCudaKernel *k, int chunks) {
    const ConvGeom *g = &k->step.g;
    const int total = g->cout * (g->cin / g->groups) * g->kh * g->kw;
    conv_cuda_signature(o, k, "_finish", CONV_FINISH_THREADS);
    sb_printf(o, "    const int e = blockIdx.x * %d + threadIdx.x;\n    if (e >= %d) return;\n", CONV_FINISH_THREADS, total);
    sb_printf(o, "    float s = 0.0f;\n    for (int c = 0; c < %d; c++) s += scratch[c * %d + e];\n", chunks, total);
    if (k->step.accumulate) sb_puts(o, "    const float old = w[e];\n    w[e] = old + s;\n}\n\n");
    else sb_puts(o, "    w[e] = s;\n}\n\n");
}

static void render_weight_grad(StrBuf *o, const ConvCudaKernel *k, const Plan *P) {
    const ConvGeom *g = &k->step.g;
    const int cig = g->cin / g->groups, cog = g->cout / g->groups, taps = g->kh * g->kw;
    const int pixels = P->th * P->tw, total = g->cout * cig * taps;
    const bool ragged = P->elems % P->threads != 0;
    conv_cuda_signature(o, k, "", P->threads);
    sb_printf(o, "    RXC_SHARED(float, s_x, %d);\n", conv_halo_floats(P));
    sb_printf(o, "    RXC_SHARED(float, s_dy, %d);\n", pixels * P->ct);
    sb_printf(o, "    const int tid = threadIdx.x, chunk = blockIdx.x, c0 = blockIdx.y * %d, s_c0 = c0 / %d * %d;\n",
              P->ct, cog, cig);
    sb_printf(o, "    int xo[%d], yo[%d];\n    float acc[%d];\n", P->ept, P->ept, P->ept);
    sb_printf(o, "#pragma unroll\n    for (int k = 0; k < %d; k++) {\n", P->ept);
    if (ragged) sb_printf(o, "        const int e = tid + k * %d < %d ? tid + k * %d : 0;\n", P->threads, P->elems, P->threads);
    else sb_printf(o, "        const int e = tid + k * %d;\n", P->threads);
    sb_printf(o, "        const int co = e %% %d, ci = e / %d %% %d, t = e / %d;\n", P->ct, P->ct, cig, P->ct * cig);
    sb_printf(o, "        yo[k] = co;\n        xo[k] = (t / %d * %d + t %% %d) * %d + ((c0 + co) / %d - c0 / %d) * %d + ci;\n",
              g->kw, P->halo_w, g->kw, P->pix, cog, cog, cig);
    sb_puts(o, "        acc[k] = 0.0f;\n    }\n");
    conv_wgrad_tile_begin(o, k, P, false);
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", pixels * P->ct, P->threads);
    sb_printf(o, "            const int c = e %% %d, p = e / %d, oh = oh0 + p / %d, ow = ow0 + p %% %d;\n", P->ct, P->ct,
              P->tw, P->tw);
    sb_puts(o, "            float v = 0.0f;\n");
    sb_printf(o, "            if (oh < %d && ow < %d) {\n", g->oh, g->ow);
    char expr[160];
    snprintf(expr, sizeof expr, "y[((n * %d + oh) * %d + ow) * %d + c0 + c]", g->oh, g->ow, g->cout);
    conv_load_into(o, "                ", "v", k->y_type, expr);
    sb_puts(o, "            }\n            s_dy[e] = v;\n        }\n        __syncthreads();\n");
    sb_printf(o, "        for (int p = 0; p < %d; p++) {\n", pixels);
    sb_printf(o, "            const int px = (p / %d * %d + p %% %d * %d) * %d;\n", P->tw, g->sh * P->halo_w, P->tw, g->sw,
              P->pix);
    sb_printf(o, "#pragma unroll\n            for (int k = 0; k < %d; k++) acc[k] += s_dy[p * %d + yo[k]] * s_x[px + xo[k]];\n",
              P->ept, P->ct);
    sb_puts(o, "        }\n        __syncthreads();\n    }\n");
    sb_printf(o, "#pragma unroll\n    for (int k = 0; k < %d; k++) {\n", P->ept);
    sb_printf(o, "        const int e = tid + k * %d;\n", P->threads);
    if (ragged) sb_printf(o, "        if (e >= %d) break;\n", P->elems);
    sb_printf(o, "        const int co = e %% %d, ci = e / %d %% %d, t = e / %d;\n", P->ct, P->ct, cig, P->ct * cig);
    sb_printf(o, "        scratch[chunk * %d + ((c0 + co) * %d + ci) * %d + t] = acc[k];\n    }\n}\n\n", total, cig, taps);
    conv_cuda_wgrad_finish(o, k, P->chunks);
}

/* Once per translation unit with tensor-core kernels, before everything
 * (its macro expands only where a kernel uses it): nvcuda::wmma, or the
 * emulator's. */
static const char *const wmma_preamble =
    "/* conv_cuda.c's tensor-core kernels: nvcuda::wmma (tests/emu/wmma_emu.h under the emulator);\n"
    " * their shared tiles are 32-byte aligned, as load/store_matrix_sync require. */\n"
    "#if defined(RXC_EMU)\n"
    "#include \"wmma_emu.h\"\n"
    "#define RXC_SHARED_WMMA(T, name, n) RXC_SHARED(T, name, n)\n"
    "#elif defined(RXC_NO_CUDA_BF16_H)\n"
    "#error \"tensor-core convolutions need the CUDA toolkit's mma.h: set CUDA_HOME\"\n"
    "#else\n"
    "#include <mma.h>\n"
    "#define RXC_SHARED_WMMA(T, name, n) __shared__ __align__(32) T name[n]\n"
    "#endif\n\n";

/* ---- the Program's conv kernels ----------------------------------------------------- */

static const char *pass_tag(ConvPass p) { return p == CONV_FORWARD ? "fwd" : p == CONV_DATA_GRAD ? "dgrad" : "wgrad"; }

static bool same_kernel(const ConvCudaKernel *k, const ConvStep *s, KDType xt, KDType yt) {
    return k->step.pass == s->pass && k->step.accumulate == s->accumulate && k->step.engine == s->engine &&
           k->x_type == xt && k->y_type == yt && !memcmp(&k->step.g, &s->g, sizeof s->g) &&
           k->step.norm.on == s->norm.on && k->step.norm.relu == s->norm.relu && k->step.sums.on == s->sums.on &&
           k->step.sums.rows == s->sums.rows && k->step.stats.on == s->stats.on && k->step.stats.rows == s->stats.rows;
}

static bool tensor_cores(const ConvStep *s) { return s->engine == CONV_ENGINE_TENSOR_CORES; }

/* The plan of a step's pass in the form its engine names. */
static bool plan_step(const ConvStep *s, Plan *P) {
    const ConvGeom *g = &s->g;
    if (!conv_cuda_supported(g)) return false;
    if (tensor_cores(s)) return s->pass == CONV_WEIGHT_GRAD ? plan_weight_grad_tc(g, P) : plan_gather_tc(s->pass, g, P);
    return s->pass == CONV_WEIGHT_GRAD ? plan_weight_grad(g, P) : plan_gather(s->pass, g, P);
}

ConvEngine conv_cuda_engine(const ConvGeom *g, KDType act) {
    /* one group: the implicit-GEMM form (conv_igemm.c), bf16 on tensor cores only */
    if (g->groups == 1 && (act != KD_BF16 || !conv_igemm_supported(g))) return CONV_ENGINE_NONE;
    /* 1x1 strided: cuBLAS over the strided rows, 16-byte aligned strides (the weight gradient here) */
    if (g->groups == 1 && g->kh == 1 && g->kw == 1 && g->ph == 0 && g->pw == 0 && (g->sh > 1 || g->sw > 1) &&
        g->h == g->oh * g->sh &&
        g->cin % 8 == 0 && g->cout % 8 == 0)
        return CONV_ENGINE_STRIDED_GEMM;
    if (g->groups == 1) return CONV_ENGINE_TENSOR_CORES;
    if ((act != KD_F32 && act != KD_BF16) || !conv_cuda_supported(g)) return CONV_ENGINE_NONE;
    Plan P;
    if (act == KD_BF16 && plan_gather_tc(CONV_FORWARD, g, &P) && plan_gather_tc(CONV_DATA_GRAD, g, &P) &&
        plan_weight_grad_tc(g, &P))
        return CONV_ENGINE_TENSOR_CORES;
    return CONV_ENGINE_CUDA_CORES;
}

/* One row per block of a tensor-core gather pass: render_grad_sums and
 * render_out_stats read its s_out tile. */
static int tc_gather_rows(ConvPass pass, const ConvGeom *g, ConvEngine engine) {
    Plan P;
    if (g->groups <= 1 || engine != CONV_ENGINE_TENSOR_CORES || !plan_gather_tc(pass, g, &P)) return 0;
    return g->n * P.tiles_h * P.tiles_w;
}

int conv_cuda_dgrad_sums_rows(const ConvGeom *g, ConvEngine engine) { return tc_gather_rows(CONV_DATA_GRAD, g, engine); }

int conv_cuda_forward_stats_rows(const ConvGeom *g, ConvEngine engine) { return tc_gather_rows(CONV_FORWARD, g, engine); }

bool conv_cuda_input_norm(const ConvGeom *g, ConvEngine engine) {
    /* conv_stage_halo applies it; the implicit-GEMM form (one group) stages its own tiles */
    return g->groups > 1 && (engine == CONV_ENGINE_CUDA_CORES || engine == CONV_ENGINE_TENSOR_CORES);
}

static void fill_launch(ConvCudaKernel *k, const Plan *P) {
    const ConvGeom *g = &k->step.g;
    CudaLaunch *l = &k->launch;
    memset(l, 0, sizeof *l);
    l->mapping = CM_BLOCK_PER_ROW;
    l->block[0] = (unsigned)P->threads, l->block[1] = l->block[2] = 1;
    if (k->step.pass == CONV_WEIGHT_GRAD) {
        int64_t total = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw;
        l->grid[0] = (unsigned)P->chunks, l->grid[1] = (unsigned)(g->cout / P->ct), l->grid[2] = 1;
        l->has_finish = true;
        l->finish_block = CONV_FINISH_THREADS;
        l->finish_grid = (unsigned)((total + CONV_FINISH_THREADS - 1) / CONV_FINISH_THREADS);
        l->scratch_floats = (int64_t)P->chunks * total;
        l->shared_bytes = (unsigned)(tensor_cores(&k->step) ? P->shared_bytes : 4 * (conv_halo_floats(P) + P->th * P->tw * P->ct));
    } else {
        const View v = conv_view_of(k->step.pass, g);
        l->grid[0] = (unsigned)(P->tiles_h * P->tiles_w), l->grid[1] = (unsigned)g->n;
        l->grid[2] = (unsigned)(v.dst_c / P->ct);
        l->shared_bytes = (unsigned)(tensor_cores(&k->step) ? P->shared_bytes
                                                            : 4 * (conv_halo_floats(P) + P->ct * v.sg * g->kh * g->kw));
    }
}

static int add_kernel(ConvCudaSet *set, StrBuf *src, const ConvStep *s, KDType xt, KDType yt, Error *err) {
    for (int i = 0; i < set->n; i++)
        if (same_kernel(&set->kernels[i], s, xt, yt)) return i;
    const ConvGeom *g = &s->g;
    Plan P;
    const bool igemm = g->groups == 1;
    if (tensor_cores(s) && !igemm && (xt != KD_BF16 || yt != KD_BF16))
        return error_set(err, "a tensor-core direct convolution needs bf16 activations");
    if (s->norm.on && (s->pass == CONV_DATA_GRAD ? !s->sums.on : !conv_cuda_input_norm(g, s->engine)))
        return error_set(err, "this conv pass cannot apply an input norm (only grouped forward and weight-gradient passes do)");
    if (s->sums.on && (s->pass != CONV_DATA_GRAD || s->accumulate || !s->norm.on || s->sums.rows < 1 ||
                       s->sums.rows != conv_cuda_dgrad_sums_rows(g, s->engine)))
        return error_set(err, "gradient sums need a grouped tensor-core data-gradient pass that writes dx (=), with its "
                              "BN's norm and the rows conv_cuda_dgrad_sums_rows gives");
    if (s->stats.on && (s->pass != CONV_FORWARD || s->accumulate || s->stats.rows < 1 ||
                        s->stats.rows != conv_cuda_forward_stats_rows(g, s->engine)))
        return error_set(err, "output statistics need a grouped tensor-core forward pass that writes y (=), with the "
                              "rows conv_cuda_forward_stats_rows gives");
    if (igemm ? !tensor_cores(s) || !conv_igemm_supported(g) : !plan_step(s, &P)) {
        error_set(err, "no CUDA direct convolution%s for %dx%dx%d -> %dx%dx%d, %d groups, %dx%d kernel, stride %dx%d",
                  tensor_cores(s) ? " on tensor cores" : "", g->h, g->w, g->cin, g->oh, g->ow, g->cout, g->groups, g->kh,
                  g->kw, g->sh, g->sw);
        return -1;
    }
    set->kernels = xrealloc(set->kernels, (size_t)(set->n + 1) * sizeof *set->kernels);
    ConvCudaKernel *k = &set->kernels[set->n];
    memset(k, 0, sizeof *k);
    k->step = *s;
    k->x_type = xt, k->y_type = yt;
    snprintf(k->name, sizeof k->name, "dconv_%s_%s%s_n%d_%dx%dx%d_%dx%dx%d_g%d_k%dx%d_s%dx%d_p%dx%d%s%s%s%s", pass_tag(s->pass),
             xt == KD_BF16 ? "bf16" : "f32", yt == xt ? "" : yt == KD_BF16 ? "_ybf16" : "_yf32", g->n, g->h, g->w,
             g->cin, g->oh, g->ow, g->cout, g->groups, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw,
             s->accumulate ? "_acc" : "", tensor_cores(s) ? "_tc" : "",
             !s->norm.on ? "" : s->norm.relu ? "_bnrelu" : "_bn", s->sums.on ? "_sums" : s->stats.on ? "_stats" : "");
    if (igemm) {
        conv_igemm_launch(k);
        conv_igemm_render(src, k);
        return set->n++;
    }
    fill_launch(k, &P);
    if (s->pass == CONV_WEIGHT_GRAD) (tensor_cores(s) ? render_weight_grad_tc : render_weight_grad)(src, k, &P);
    else (tensor_cores(s) ? render_gather_tc : render_gather)(src, k, &P);
    return set->n++;
}

static int step_types(const Program *p, const ConvStep *c, KDType *xt, KDType *yt, Error *err) {
    const int ids[3] = {c->x, c->w, c->y};
    for (int q = 0; q < 3; q++)
        if (ids[q] < 0 || ids[q] >= p->n_bufs) return error_set(err, "conv step refers to buffer %d", ids[q]);
    *xt = p->bufs[c->x].dtype, *yt = p->bufs[c->y].dtype;
    KDType wt = p->bufs[c->w].dtype;
    if ((*xt != KD_F32 && *xt != KD_BF16) || (*yt != KD_F32 && *yt != KD_BF16) || wt != KD_F32)
        return error_set(err, "conv step on %s, %s, %s: x and y must be f32 or bf16 and w f32", p->bufs[c->x].name,
                         p->bufs[c->w].name, p->bufs[c->y].name);
    return 0;
}

int conv_cuda_render(const Program *p, ConvCudaSet *set, char **source, Error *err) {
    memset(set, 0, sizeof *set);
    StrBuf src = {0};
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        set->step_kernel[ph] = xmalloc((size_t)(p->n_steps[ph] ? p->n_steps[ph] : 1) * sizeof(int));
        for (int i = 0; i < p->n_steps[ph]; i++) {
            const Step *st = &p->steps[ph][i];
            set->step_kernel[ph][i] = -1;
            if (st->kind != STEP_CONV) continue;
            KDType xt = KD_F32, yt = KD_F32;
            int k = step_types(p, &st->conv, &xt, &yt, err) ? -1 : add_kernel(set, &src, &st->conv, xt, yt, err);
            if (k < 0) {
                free(sb_take(&src));
                conv_cuda_set_free(set);
                return error_prefix(err, "step %s: ", st->note ? st->note : "?");
            }
            set->step_kernel[ph][i] = k;
        }
    }
    *source = sb_take(&src);
    return 0;
}

void conv_cuda_set_free(ConvCudaSet *set) {
    if (!set) return;
    free(set->kernels);
    for (int ph = 0; ph < PHASE_COUNT; ph++) free(set->step_kernel[ph]);
    memset(set, 0, sizeof *set);
}

char *render_cuda_program(const Program *p, CudaLaunch **launches, ConvCudaSet *convs, Error *err) {
    ConvCudaSet local;
    ConvCudaSet *set = convs ? convs : &local;
    char *conv_src = NULL;
    if (conv_cuda_render(p, set, &conv_src, err)) return NULL;
    char *mod_src = render_cuda(p->module, launches);
    bool any_tc = false;
    for (int i = 0; i < set->n; i++) any_tc |= tensor_cores(&set->kernels[i].step);
    /* first: nvrtc_compile's parallel parts each repeat what precedes the first kernel */
    char *all = xasprintf("%s%s%s", any_tc ? wmma_preamble : "", mod_src, conv_src);
    free(mod_src);
    free(conv_src);
    if (!convs) conv_cuda_set_free(&local);
    return all;
}

int64_t conv_cuda_bytes(const ConvStep *s, KDType x_type, KDType y_type) {
    const ConvGeom *g = &s->g;
    int64_t xb = (int64_t)g->n * g->h * g->w * g->cin * (x_type == KD_BF16 ? 2 : 4);
    int64_t yb = (int64_t)g->n * g->oh * g->ow * g->cout * (y_type == KD_BF16 ? 2 : 4);
    int64_t wb = (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw * 4;
    switch (s->pass) {
    case CONV_FORWARD: return xb + wb + yb * (s->accumulate ? 2 : 1);
    case CONV_DATA_GRAD: return yb + wb + xb * (s->accumulate ? 2 : 1);
    case CONV_WEIGHT_GRAD: {
        Plan P;
        int64_t chunks = g->groups == 1 ? conv_igemm_wgrad_chunks(g) : plan_step(s, &P) ? P.chunks : 0;
        int64_t scratch = chunks * (wb / 4) * 4 * 2;
        return xb + yb + scratch + wb * (s->accumulate ? 2 : 1);
    }
    }
    return 0;
}
