/*
 * launch_cuda.c — the CUDA target's launch shapes (render_cuda.h:
 * render_cuda_launch): which loop mapping each kernel of the IR gets, its
 * grid and block, the GPU's row chunks of column reductions, and which
 * buffers a pointwise kernel's vector variant covers. render_cuda.c spells
 * the kernels for the launch it is given; the executor launches them so.
 */
#include "render_cuda.h"

#include "kir_analysis.h"

enum {
    ROW_THREADS = 256,       /* block size of thread-per-row and finish kernels (8 warps) */
    COL_TILE = 32,           /* columns per KF_COLS block: one warp wide, coalesced */
    COL_LANES = 8,           /* row lanes per column in a KF_COLS block */
    LONG_INNER = 64,         /* from here a row gets a block of its own */
    WARP_INNER = 8,          /* from here a short contiguous row gets a warp of its own */
    WARP_ROWS = 8,           /* rows (warps) per block of the warp-per-row mapping */
    MAX_GRID = 65536,        /* grid-stride loops cover the rest */
};

/* KF_COLS: the GPU's row chunks. Each IR chunk is split into 2^s parts
 * (boundaries floor(g * inner / total) nest inside the IR's chunks) until
 * the grid fills a large GPU, keeping at least 256 rows per part. */
static int64_t gpu_chunks(const Kernel *k) {
    int64_t tiles = (k->outer + COL_TILE - 1) / COL_TILE, chunks = k->row_chunks > 0 ? k->row_chunks : 1, sub = 1;
    while (tiles * chunks * sub < 1024 && k->inner / (chunks * sub * 2) >= 256 && chunks * sub * 2 <= 65535) sub *= 2;
    return chunks * sub;
}

static bool rows_need_block(const Kernel *k) {
    if (k->form != KF_ROWS || k->inner < LONG_INNER) return false;
    for (int s = 0; s < k->n_stages; s++)
        if (k->stages[s].kind != KS_STORE) return true;
    return false;
}

/* index node ix is base + j with base independent of j: a warp's lanes
 * taking consecutive j touch consecutive elements */
static bool unit_stride_in_j(const Kernel *k, const KirDeps *d, int ix) {
    const KExpr *x = &k->ex[ix];
    if (!kir_deps_has(d, ix, KV_INNER)) return true;
    if (x->kind != KE_BINARY || x->op != KB_ADD) return false;
    const KExpr *a = &k->ex[x->a], *b = &k->ex[x->b];
    return (a->kind == KE_VAR && a->var == KV_INNER && !kir_deps_has(d, x->b, KV_INNER)) ||
           (b->kind == KE_VAR && b->var == KV_INNER && !kir_deps_has(d, x->a, KV_INNER));
}

/* A short row (WARP_INNER <= inner < LONG_INNER) with a reduce or map stage,
 * every access unit-stride in j (the loss over 10 classes: a thread per row
 * would walk its row alone, a block per row would idle most lanes), and no
 * buffer both read and written (lanes of a warp share no barrier here). A
 * strided row, like the global average pool's 49 pixels of one channel,
 * stays a thread per row: there neighbouring threads read neighbouring
 * channels. */
static bool rows_want_warp(const Kernel *k) {
    if (k->form != KF_ROWS || k->inner < WARP_INNER || k->inner >= LONG_INNER) return false;
    bool reduces = false;
    for (int s = 0; s < k->n_stages; s++) reduces |= k->stages[s].kind != KS_STORE;
    if (!reduces) return false;
    KirDeps d;
    kir_deps_init(&d, k);
    bool ok = true;
    uint64_t loaded = 0, stored = 0;
    for (int e = 0; e < k->n_ex && ok; e++)
        if (k->ex[e].kind == KE_LOAD) {
            loaded |= 1ULL << (k->ex[e].buf & 63);
            ok = unit_stride_in_j(k, &d, k->ex[e].a);
        }
    for (int s = 0; s < k->n_stages && ok; s++)
        for (int q = 0; q < k->stages[s].n_stores && ok; q++) {
            const KStore *so = &k->stages[s].stores[q];
            stored |= 1ULL << (so->buf & 63);
            ok = unit_stride_in_j(k, &d, so->index);
        }
    kir_deps_free(&d);
    return ok && !(loaded & stored) && k->n_bufs <= 64;
}

static unsigned row_block_threads(int64_t inner) {
    unsigned t = 32;
    while (t < 256 && (int64_t)t * 4 <= inner) t *= 2;
    return t;
}

static unsigned clamp_grid(int64_t n) { return n < 1 ? 1 : n > MAX_GRID ? MAX_GRID : (unsigned)n; }

/* The f32 and bf16 buffers a pure pointwise kernel touches only at index i
 * (so consecutive elements per thread are 16-byte accesses), or 0 when the
 * kernel does not qualify: one store stage, outer large enough to matter and
 * a multiple of the width, no buffer stored twice. *width: 8 when one of
 * them is bf16 (8 bf16 are 16 bytes), else 4 (and bf16 buffers, if outer is
 * no multiple of 8, stay scalar). Whether the buffers are 16-byte aligned
 * is known only to the executor, which picks NAME_v4 or NAME. */
static uint64_t vec_buffers(const Kernel *k, int *width) {
    *width = 4;
    if (k->form != KF_ROWS || k->n_stages != 1 || k->stages[0].kind != KS_STORE || k->outer % 4 || k->outer < 4096 ||
        k->n_bufs > 64)
        return 0;
    uint64_t at_i = 0, elsewhere = 0, stored = 0, twice = 0;
    for (int e = 0; e < k->n_ex; e++) {
        const KExpr *x = &k->ex[e];
        if (x->kind != KE_LOAD) continue;
        const KExpr *ix = &k->ex[x->a];
        if (ix->kind == KE_VAR && ix->var == KV_OUTER) at_i |= 1ULL << x->buf;
        else elsewhere |= 1ULL << x->buf;
    }
    const KStage *st = &k->stages[0];
    for (int q = 0; q < st->n_stores; q++) {
        const KStore *so = &st->stores[q];
        const KExpr *ix = &k->ex[so->index];
        uint64_t bit = 1ULL << so->buf;
        twice |= stored & bit;
        stored |= bit;
        if (ix->kind == KE_VAR && ix->var == KV_OUTER) at_i |= bit;
        else elsewhere |= bit;
    }
    if (twice) return 0;
    uint64_t v = at_i & ~elsewhere, f32 = 0, bf16 = 0;
    for (int b = 0; b < k->n_bufs; b++) {
        if (k->bufs[b].dtype == KD_F32) f32 |= 1ULL << b;
        if (k->bufs[b].dtype == KD_BF16) bf16 |= 1ULL << b;
    }
    if (v & bf16 && k->outer % 8 == 0) {
        *width = 8;
        return v & (f32 | bf16);
    }
    return v & f32;
}


CudaLaunch render_cuda_launch(const Kernel *k) {
    CudaLaunch l = {0};
    for (int d = 0; d < 3; d++) l.grid[d] = l.block[d] = 1;
    KirWidths w = kir_int_widths(k);
    l.wide_index = w.loops_wide;
    kir_int_widths_free(&w);
    if (k->form == KF_COLS) {
        l.mapping = CM_COLUMN_TILES;
        l.grid[0] = (unsigned)((k->outer + COL_TILE - 1) / COL_TILE);
        l.row_chunks = gpu_chunks(k);
        l.grid[1] = (unsigned)l.row_chunks;
        l.block[0] = COL_TILE;
        l.block[1] = COL_LANES;
        l.shared_bytes = (unsigned)(sizeof(double) * COL_TILE * COL_LANES * (k->n_accs ? k->n_accs : 1));
        l.has_finish = true;
        l.finish_block = ROW_THREADS; /* a warp per column */
        l.finish_grid = clamp_grid((k->outer + ROW_THREADS / 32 - 1) / (ROW_THREADS / 32));
        l.scratch_floats = k->outer * l.row_chunks * (k->n_accs ? k->n_accs : 1);
    } else if (rows_want_warp(k)) {
        l.mapping = CM_WARP_PER_ROW;
        l.block[0] = 32 * WARP_ROWS;
        l.grid[0] = clamp_grid((k->outer + WARP_ROWS - 1) / WARP_ROWS);
    } else if (rows_need_block(k)) {
        l.mapping = CM_BLOCK_PER_ROW;
        l.grid[0] = clamp_grid(k->outer);
        l.block[0] = row_block_threads(k->inner);
        l.shared_bytes = 33 * sizeof(double);
    } else {
        l.mapping = CM_THREAD_PER_ROW;
        l.block[0] = ROW_THREADS;
        l.grid[0] = clamp_grid((k->outer + ROW_THREADS - 1) / ROW_THREADS);
        l.vec4_bufs = vec_buffers(k, &l.vec_width);
        if (l.vec4_bufs) {
            l.has_vec4 = true;
            l.vec4_grid = clamp_grid((k->outer / l.vec_width + ROW_THREADS - 1) / ROW_THREADS);
        }
    }
    return l;
}
