/*
 * conv_igemm.c — one-group convolutions on tensor cores as implicit GEMMs:
 * the CUDA source of the three STEP_CONV passes of a dense conv (ResNeXt's
 * 7x7 stride-2 stem, its 1x1 stride-2 downsamples), specialised to the
 * geometry, f32 weights, f32 accumulation (nvcuda::wmma) on bf16 operands:
 * activations in bf16 (an f32 one, such as the input image's gradient,
 * is rounded to bf16 where it is staged, as the weights are).
 *
 * Why: as im2col + GEMM, the stem wrote a column buffer 49x its 3-channel
 * input (147 columns a pixel) in the forward and again for the weight
 * gradient, and each 1x1 stride-2 downsample copied a quarter of its input
 * out and back. Here a block builds its tile of the column matrix in shared
 * memory only, straight from x (or dy), and multiplies it there.
 *
 * Each pass is a GEMM over a column matrix A that is never stored:
 *   forward         Y[p][co] = sum_k A[p][k] W[co][k]    p an output pixel,
 *                   k = (ci, kh, kw) in PyTorch's weight order, A = x at the tap
 *   data gradient   DX[p][ci] = sum_k A[p][k] W[co][ci][t]   p an input pixel,
 *                   k = (co, t), A = dy of the output pixel whose window puts
 *                   tap t on p (zero between strides and off the output): the
 *                   gather form, so every input pixel is written once (a 1x1
 *                   stride-2 conv's skipped pixels get their zeros here)
 *   weight gradient DW[co][k] = sum_p DY[p][co] A[p][k], A as in the forward
 * Forward and data gradient: a block owns 64 destination pixels x BN
 * channels and walks K in 32-wide chunks, staging the chunk's A and B tiles
 * as bf16 in shared memory (zeros past M, N and K), each warp two 16x16
 * result tiles. Weight gradient: a block owns 64 output channels x 64
 * columns of DW and a chunk of consecutive 32-pixel tiles, in two
 * deterministic stages as conv_cuda.c's (partials to scratch, NAME_finish
 * adds the chunks in order). Sums run K chunks (pixel tiles) in order: a
 * fixed order, no atomics.
 */
#include "conv_igemm.h"

#include <stdio.h>
#include <string.h>

enum {
    IG_BM = 64, IG_BK = 32, IG_FRAGS_PER_WARP = 2,
    /* weight gradient: the grid it aims for, and the fewest pixel tiles a chunk */
    IG_WGRAD_BLOCKS = 512, IG_MIN_TILES = 4
};

/* The GEMM of a pass seen from its destination: m rows (pixels), n columns
 * (channels), k the reduction (the weight gradient: m = cout, n = the
 * weight's columns, k = the output pixels). */
typedef struct IgDims {
    int m, n, k;
} IgDims;

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static int taps_of(const ConvGeom *g) { return g->kh * g->kw; }

static IgDims dims_of(ConvPass pass, const ConvGeom *g) {
    const int out_px = g->n * g->oh * g->ow, in_px = g->n * g->h * g->w;
    if (pass == CONV_FORWARD) return (IgDims){out_px, g->cout, g->cin * taps_of(g)};
    if (pass == CONV_DATA_GRAD) return (IgDims){in_px, g->cin, g->cout * taps_of(g)};
    return (IgDims){g->cout, g->cin * taps_of(g), out_px};
}

/* Destination channels per block of the forward and data gradient: 16, 32 or 64. */
static int block_n(int n) { return n <= 16 ? 16 : n <= 32 ? 32 : 64; }

bool conv_igemm_supported(const ConvGeom *g) {
    if (g->groups != 1 || g->n <= 0 || g->h <= 0 || g->w <= 0 || g->oh <= 0 || g->ow <= 0 || g->cin <= 0 ||
        g->cout <= 0 || g->kh <= 0 || g->kw <= 0 || g->sh <= 0 || g->sw <= 0 || g->ph < 0 || g->pw < 0)
        return false;
    /* 32-bit indices with room for the tiles past the end */
    const int64_t limit = INT32_MAX / 2;
    return (int64_t)g->n * g->h * g->w * g->cin <= limit && (int64_t)g->n * g->oh * g->ow * g->cout <= limit &&
           (int64_t)g->cout * g->cin * taps_of(g) <= limit / 64 && (int64_t)g->n * g->h * g->w <= limit / 64;
}

int conv_igemm_wgrad_chunks(const ConvGeom *g) {
    const IgDims d = dims_of(CONV_WEIGHT_GRAD, g);
    const int tiles = ceil_div(d.m, IG_BM) * ceil_div(d.n, IG_BM), work = ceil_div(d.k, IG_BK);
    int chunks = ceil_div(IG_WGRAD_BLOCKS, tiles);
    if (chunks > ceil_div(work, IG_MIN_TILES)) chunks = ceil_div(work, IG_MIN_TILES);
    while (chunks > 1 && (int64_t)chunks * d.m * d.n > (1 << 26)) chunks /= 2;
    return chunks;
}

static int warps_of(const ConvStep *s) {
    const int bn = s->pass == CONV_WEIGHT_GRAD ? IG_BM : block_n(dims_of(s->pass, &s->g).n);
    return IG_BM / 16 * (bn / 16) / IG_FRAGS_PER_WARP;
}

void conv_igemm_launch(ConvCudaKernel *k) {
    const ConvStep *s = &k->step;
    const IgDims d = dims_of(s->pass, &s->g);
    CudaLaunch *l = &k->launch;
    memset(l, 0, sizeof *l);
    l->mapping = CM_BLOCK_PER_ROW;
    l->block[0] = (unsigned)(32 * warps_of(s)), l->block[1] = l->block[2] = 1;
    if (s->pass == CONV_WEIGHT_GRAD) {
        const int chunks = conv_igemm_wgrad_chunks(&s->g);
        l->grid[0] = (unsigned)chunks, l->grid[1] = (unsigned)ceil_div(d.m, IG_BM);
        l->grid[2] = (unsigned)ceil_div(d.n, IG_BM);
        l->has_finish = true;
        l->finish_block = CONV_FINISH_THREADS;
        l->finish_grid = (unsigned)ceil_div(d.m * d.n, CONV_FINISH_THREADS);
        l->scratch_floats = (int64_t)chunks * d.m * d.n;
        l->shared_bytes = (unsigned)(2 * 2 * IG_BK * IG_BM + 4 * warps_of(s) * 256);
    } else {
        const int bn = block_n(d.n);
        l->grid[0] = (unsigned)ceil_div(d.m, IG_BM), l->grid[1] = (unsigned)ceil_div(d.n, bn), l->grid[2] = 1;
        l->shared_bytes = (unsigned)(2 * IG_BK * (IG_BM + bn) + 4 * IG_BM * bn);
    }
}

/* `v = ` the column matrix's A[pix][kk] (in range) as f32, from x (the
 * forward's taps) or y (= dy, the data gradient's). */
static void gather_a(StrBuf *o, const char *in, ConvPass pass, const ConvCudaKernel *k) {
    const ConvGeom *g = &k->step.g;
    const int taps = taps_of(g);
    const bool fwd = pass != CONV_DATA_GRAD;
    sb_printf(o, "%sconst int ch = kk / %d, t = kk %% %d, kh = t / %d, kw = t %% %d;\n", in, taps, taps, g->kw, g->kw);
    char at[200];
    if (fwd) {
        sb_printf(o, "%sconst int n = pix / %d, r = pix %% %d;\n", in, g->oh * g->ow, g->oh * g->ow);
        sb_printf(o, "%sconst int ih = r / %d * %d - %d + kh, iw = r %% %d * %d - %d + kw;\n", in, g->ow, g->sh, g->ph, g->ow,
                  g->sw, g->pw);
        sb_printf(o, "%sif (ih >= 0 && ih < %d && iw >= 0 && iw < %d)", in, g->h, g->w);
        snprintf(at, sizeof at, "x[((n * %d + ih) * %d + iw) * %d + ch]", g->h, g->w, g->cin);
    } else {
        sb_printf(o, "%sconst int n = pix / %d, r = pix %% %d;\n", in, g->h * g->w, g->h * g->w);
        sb_printf(o, "%sconst int th = r / %d + %d - kh, tw = r %% %d + %d - kw;\n", in, g->w, g->ph, g->w, g->pw);
        sb_printf(o, "%sif (th >= 0 && tw >= 0 && th %% %d == 0 && tw %% %d == 0 && th / %d < %d && tw / %d < %d)", in,
                  g->sh, g->sw, g->sh, g->oh, g->sw, g->ow);
        snprintf(at, sizeof at, "y[((n * %d + th / %d) * %d + tw / %d) * %d + ch]", g->oh, g->sh, g->ow, g->sw, g->cout);
    }
    sb_printf(o, (fwd ? k->x_type : k->y_type) == KD_BF16 ? " v = __bfloat162float(%s);\n" : " v = %s;\n", at);
}

static const char *const frag_acc = "nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>";

/* Each warp's result tiles f = warp + fi * warps (row mi = f / nt, column
 * ni = f % nt) += A B over the staged 32-wide chunk of K, 16 at a time (kc):
 * A and B tiles at the expressions a_at and b_at, leading dimension ld;
 * then the barrier before the next chunk overwrites the staged `what`. */
static void mma_chunk(StrBuf *o, int warps, int nt, const char *a_layout, const char *a_at, const char *b_layout,
                      const char *b_at, int ld, const char *what) {
    sb_printf(o, "#pragma unroll\n        for (int fi = 0; fi < %d; fi++) {\n", IG_FRAGS_PER_WARP);
    sb_printf(o, "            const int f = warp + fi * %d, mi = f / %d, ni = f %% %d;\n", warps, nt, nt);
    sb_printf(o, "#pragma unroll\n            for (int kc = 0; kc < %d; kc++) {\n", IG_BK / 16);
    sb_printf(o, "                nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::%s> a;\n",
              a_layout);
    sb_printf(o, "                nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::%s> b;\n",
              b_layout);
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(a, %s, %d);\n", a_at, ld);
    sb_printf(o, "                nvcuda::wmma::load_matrix_sync(b, %s, %d);\n", b_at, ld);
    sb_puts(o, "                nvcuda::wmma::mma_sync(acc[fi], a, b, acc[fi]);\n            }\n        }\n");
    sb_printf(o, "        __syncthreads(); /* every warp is done with the %s */\n    }\n", what);
}

static void accumulators(StrBuf *o) {
    sb_printf(o, "    %s acc[%d];\n", frag_acc, IG_FRAGS_PER_WARP);
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) nvcuda::wmma::fill_fragment(acc[fi], 0.0f);\n",
              IG_FRAGS_PER_WARP);
}

/* Forward and data gradient: s_a[64 pixels][32 k], s_b[bn channels][32 k]
 * (B column-major), results through s_out to the destination. */
static void render_gather_igemm(StrBuf *o, const ConvCudaKernel *k) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const bool fwd = s->pass == CONV_FORWARD;
    const IgDims d = dims_of(s->pass, g);
    const int bn = block_n(d.n), nt = bn / 16, warps = warps_of(s), taps = taps_of(g);
    const KDType dt = fwd ? k->y_type : k->x_type;
    conv_cuda_signature(o, k, "", 32 * warps);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_a, %d);\n", IG_BM * IG_BK);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_b, %d);\n", bn * IG_BK);
    sb_printf(o, "    RXC_SHARED_WMMA(float, s_out, %d);\n", IG_BM * bn);
    sb_printf(o, "    const int tid = threadIdx.x, warp = tid / 32, m0 = blockIdx.x * %d, n0 = blockIdx.y * %d;\n", IG_BM, bn);
    accumulators(o);
    sb_printf(o, "#pragma unroll 1\n    for (int k0 = 0; k0 < %d; k0 += %d) {\n", ceil_div(d.k, IG_BK) * IG_BK, IG_BK);
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", IG_BM * IG_BK, 32 * warps);
    sb_printf(o, "            const int kk = k0 + e %% %d, pix = m0 + e / %d;\n            float v = 0.0f;\n", IG_BK, IG_BK);
    sb_printf(o, "            if (kk < %d && pix < %d) {\n", d.k, d.m);
    gather_a(o, "                ", s->pass, k);
    sb_puts(o, "            }\n            s_a[e] = __float2bfloat16(v);\n        }\n");
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", bn * IG_BK, 32 * warps);
    sb_printf(o, "            const int kk = k0 + e %% %d, j = n0 + e / %d;\n            float v = 0.0f;\n", IG_BK, IG_BK);
    if (fwd) sb_printf(o, "            if (kk < %d && j < %d) v = w[j * %d + kk];\n", d.k, d.n, d.k);
    else
        sb_printf(o, "            if (kk < %d && j < %d) v = w[(kk / %d * %d + j) * %d + kk %% %d];\n", d.k, d.n, taps, g->cin,
                  taps, taps);
    sb_puts(o, "            s_b[e] = __float2bfloat16(v);\n        }\n        __syncthreads(); /* the chunk's tiles */\n");
    char a_at[64], b_at[64];
    snprintf(a_at, sizeof a_at, "s_a + mi * %d + kc * 16", 16 * IG_BK);
    snprintf(b_at, sizeof b_at, "s_b + ni * %d + kc * 16", 16 * IG_BK);
    mma_chunk(o, warps, nt, "row_major", a_at, "col_major", b_at, IG_BK, "chunk");
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) {\n", IG_FRAGS_PER_WARP);
    sb_printf(o, "        const int f = warp + fi * %d, mi = f / %d, ni = f %% %d;\n", warps, nt, nt);
    sb_printf(o, "        nvcuda::wmma::store_matrix_sync(s_out + mi * %d + ni * 16, acc[fi], %d, nvcuda::wmma::mem_row_major);\n",
              16 * bn, bn);
    sb_puts(o, "    }\n    __syncthreads(); /* the block's results */\n");
    sb_printf(o, "    for (int e = tid; e < %d; e += %d) {\n", IG_BM * bn, 32 * warps);
    sb_printf(o, "        const int pix = m0 + e / %d, c = n0 + e %% %d;\n", bn, bn);
    sb_printf(o, "        if (pix >= %d || c >= %d) continue;\n", d.m, d.n);
    const char *dst = fwd ? "y" : "x";
    const char *conv_in = dt == KD_BF16 ? "__bfloat162float(" : "(", *conv_out = dt == KD_BF16 ? "__float2bfloat16" : "";
    if (s->accumulate)
        sb_printf(o, "        const float old = %s%s[pix * %d + c]);\n        %s[pix * %d + c] = %s(old + s_out[e]);\n", conv_in, dst,
                  d.n, dst, d.n, conv_out);
    else sb_printf(o, "        %s[pix * %d + c] = %s(s_out[e]);\n", dst, d.n, conv_out);
    sb_puts(o, "    }\n}\n\n");
}

/* Weight gradient: per 32-pixel tile s_dy[pixel][64 channels] (A = its
 * transpose, column-major) and s_x[pixel][64 columns of A] (B), then each
 * warp's tiles to this chunk's partials. */
static void render_wgrad_igemm(StrBuf *o, const ConvCudaKernel *k) {
    const ConvStep *s = &k->step;
    const ConvGeom *g = &s->g;
    const IgDims d = dims_of(CONV_WEIGHT_GRAD, g);
    const int warps = warps_of(s), threads = 32 * warps, chunks = conv_igemm_wgrad_chunks(g);
    const int work = ceil_div(d.k, IG_BK), nt = IG_BM / 16;
    conv_cuda_signature(o, k, "", threads);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_dy, %d);\n", IG_BK * IG_BM);
    sb_printf(o, "    RXC_SHARED_WMMA(__nv_bfloat16, s_x, %d);\n", IG_BK * IG_BM);
    sb_printf(o, "    RXC_SHARED_WMMA(float, s_out, %d);\n", warps * 256);
    sb_puts(o, "    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, chunk = blockIdx.x;\n");
    sb_printf(o, "    const int c0 = blockIdx.y * %d, k0 = blockIdx.z * %d;\n", IG_BM, IG_BM);
    accumulators(o);
    sb_printf(o, "    const int pt_end = (chunk + 1) * %d / %d;\n", work, chunks);
    sb_printf(o, "    for (int pt = chunk * %d / %d; pt < pt_end; pt++) {\n", work, chunks);
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", IG_BK * IG_BM, threads);
    sb_printf(o, "            const int pix = pt * %d + e / %d, co = c0 + e %% %d;\n            float v = 0.0f;\n", IG_BK,
              IG_BM, IG_BM);
    sb_printf(o, k->y_type == KD_BF16 ? "            if (pix < %d && co < %d) v = __bfloat162float(y[pix * %d + co]);\n"
                                      : "            if (pix < %d && co < %d) v = y[pix * %d + co];\n",
              d.k, g->cout, g->cout);
    sb_puts(o, "            s_dy[e] = __float2bfloat16(v);\n        }\n");
    sb_printf(o, "        for (int e = tid; e < %d; e += %d) {\n", IG_BK * IG_BM, threads);
    sb_printf(o, "            const int pix = pt * %d + e / %d, kk = k0 + e %% %d;\n            float v = 0.0f;\n", IG_BK,
              IG_BM, IG_BM);
    sb_printf(o, "            if (pix < %d && kk < %d) {\n", d.k, d.n);
    gather_a(o, "                ", CONV_FORWARD, k);
    sb_puts(o, "            }\n            s_x[e] = __float2bfloat16(v);\n        }\n");
    sb_puts(o, "        __syncthreads(); /* the tile's dy and columns */\n");
    char a_at[64], b_at[64];
    snprintf(a_at, sizeof a_at, "s_dy + kc * %d + mi * 16", 16 * IG_BM);
    snprintf(b_at, sizeof b_at, "s_x + kc * %d + ni * 16", 16 * IG_BM);
    mma_chunk(o, warps, nt, "col_major", a_at, "row_major", b_at, IG_BM, "tile");
    sb_printf(o, "#pragma unroll\n    for (int fi = 0; fi < %d; fi++) {\n", IG_FRAGS_PER_WARP);
    sb_printf(o, "        const int f = warp + fi * %d, mi = f / %d, ni = f %% %d;\n", warps, nt, nt);
    sb_puts(o, "        nvcuda::wmma::store_matrix_sync(s_out + warp * 256, acc[fi], 16, nvcuda::wmma::mem_row_major);\n");
    sb_puts(o, "        __syncthreads();\n        for (int q = lane; q < 256; q += 32) {\n");
    sb_puts(o, "            const int co = c0 + mi * 16 + q / 16, kk = k0 + ni * 16 + q % 16;\n");
    sb_printf(o, "            if (co < %d && kk < %d) scratch[chunk * %d + co * %d + kk] = s_out[warp * 256 + q];\n", d.m, d.n,
              d.m * d.n, d.n);
    sb_puts(o, "        }\n        __syncthreads();\n    }\n}\n\n");
    conv_cuda_wgrad_finish(o, k, chunks);
}

void conv_igemm_render(StrBuf *o, const ConvCudaKernel *k) {
    if (k->step.pass == CONV_WEIGHT_GRAD) render_wgrad_igemm(o, k);
    else render_gather_igemm(o, k);
}
