/*
 * conv_cuda_internal.h — shared by conv_cuda.c and conv_cuda_tc.c only: the
 * plan of a direct grouped conv kernel (View, Plan), the tile helpers both
 * forms plan with, the source helpers both render with (defined in
 * conv_cuda.c), and the tensor-core forms conv_cuda.c picks (defined in
 * conv_cuda_tc.c).
 */
#ifndef RXC_CONV_CUDA_INTERNAL_H
#define RXC_CONV_CUDA_INTERNAL_H

#include <stdbool.h>

#include "conv_cuda.h"
#include "util.h"

enum {
    SHARED_FLOATS = 12000, /* floats of static shared memory a block may use (48 KB is the static limit) */
    N_TILE_SHAPES = 7      /* pixel tiles a plan tries, largest first (conv_cuda.c's tile_shapes) */
};

/* The two passes of the gathered form seen from the destination. */
typedef struct View {
    int dst_h, dst_w, dst_c, src_h, src_w, src_c;
    int dg, sg; /* channels per group, destination and source */
} View;

typedef struct Plan {
    int ct, cit;           /* destination channels per block; source channels staged */
    int pix;               /* floats per staged pixel: cit + 1, see conv_halo_floats */
    int th, tw, halo_h, halo_w;
    int tiles_h, tiles_w;
    int cpt, cl, pl, ppt, threads; /* channels and pixels per thread, lanes of each */
    /* weight gradient */
    int elems, ept, chunks, work_tiles;
    /* tensor-core forms: K of a 16-wide channel tile per tap, 16x16 result
     * tiles per block, warps, tiles per warp, and the shared bytes */
    int kn, frags, warps, fpw, shared_bytes;
} Plan;

static inline int conv_ceil_div(int a, int b) { return (a + b - 1) / b; }

static inline View conv_view_of(ConvPass pass, const ConvGeom *g) {
    int cig = g->cin / g->groups, cog = g->cout / g->groups;
    if (pass == CONV_DATA_GRAD)
        return (View){g->h, g->w, g->cin, g->oh, g->ow, g->cout, cig, cog};
    return (View){g->oh, g->ow, g->cout, g->h, g->w, g->cin, cog, cig};
}

/* Source rows a tile of `t` destination rows reads: the forward window
 * span, or for the data gradient every output row whose window reaches
 * one of the tile's input rows. */
static inline int conv_halo(ConvPass pass, int t, int k, int stride) {
    return pass == CONV_DATA_GRAD ? conv_ceil_div(t + k - 2, stride) + 1 : (t - 1) * stride + k;
}

/* A staged pixel takes cit + 1 floats: with an odd stride the pixels that
 * neighbouring lanes read fall in different shared-memory banks (with cit
 * floats, 4 pixels x 8 groups of 4 channels hit 8 banks 4 ways). */
static inline int conv_halo_floats(const Plan *P) { return P->halo_h * P->halo_w * P->pix; }

/* ---- conv_cuda.c: plans ---- */

/* P's pixel tile: the s-th of the N_TILE_SHAPES, its halo and tile counts. */
void conv_set_tile(Plan *P, ConvPass pass, const ConvGeom *g, int s);

/* The source channels a tile of ct destination channels stages, 0 if ct is not a tile. */
int conv_staged_channels(int ct, int dst_c, int dg, int sg);

/* The weight gradient's chunks of pixel tiles; false when the indices overflow. */
bool conv_set_chunks(Plan *P, const ConvGeom *g);

/* ---- conv_cuda.c: source helpers ---- */

/* `dst = value of expr` for a load of dtype t (bf16 widens exactly) */
void conv_load_into(StrBuf *o, const char *indent, const char *dst, KDType t, const char *expr);
void conv_store_value(StrBuf *o, const char *indent, const char *dst, KDType t, const char *value);
/* `at = value` or, accumulating, `at = old + value` (t: at's dtype) */
void conv_store_result(StrBuf *o, const char *indent, const char *at, KDType t, bool accumulate, const char *value);

/* Stages the halo of a tile into s_name (f32, or bf16 when to_bf16), with
 * x's input norm when norm is on; expects tid, n, r0, q0, s_c0. */
void conv_stage_halo(StrBuf *o, const char *s_name, const char *t, KDType type, int h, int w, int c, const Plan *P,
                     bool to_bf16, const ConvInputNorm *norm);

/* The start of the source rows of the tile: r0 (rows) and q0 (columns). */
void conv_tile_origin(StrBuf *o, ConvPass pass, const ConvGeom *g);
void conv_wgrad_tile_begin(StrBuf *o, const ConvCudaKernel *k, const Plan *P, bool to_bf16);

/* ---- conv_cuda_tc.c: the tensor-core forms (bf16 activations) ---- */

bool plan_gather_tc(ConvPass pass, const ConvGeom *g, Plan *out);
bool plan_weight_grad_tc(const ConvGeom *g, Plan *out);
void render_gather_tc(StrBuf *o, const ConvCudaKernel *k, const Plan *P);
void render_weight_grad_tc(StrBuf *o, const ConvCudaKernel *k, const Plan *P);

#endif
