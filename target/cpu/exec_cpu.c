/*
 * exec_cpu.c — the CPU executor (executor.h): allocates every storage space
 * once, compiles the program's kernels through the JIT cache, resolves each
 * step's buffer addresses once, and runs phases: generated C kernels and
 * OpenBLAS sgemm calls, and direct grouped convolutions (conv_cpu.c).
 *
 * Threads. Kernels parallelise with OpenMP, and so do GEMMs: each GEMM step
 * is split by this file into fixed tiles (batch entries, then row or column
 * blocks chosen from the shape alone) that the OpenMP team works through,
 * each tile a single-threaded cblas_sgemm. One thread pool serves both kinds
 * of step: OpenMP workers, which spin for a while after each parallel
 * region, never compete for the two cores with OpenBLAS's own worker
 * threads, and grouped convolutions (many small products) run their groups
 * side by side instead of as many small threaded calls. Tiles never split
 * the k dimension, so every element of C is summed in the same order
 * whatever the thread count. For comparison: RXC_GEMM_THREADS=blas makes
 * plain calls threaded by OpenBLAS; =hybrid does that for batch-1 steps
 * and tiles the batched ones.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas_cpu.h"
#include "conv_cpu.h"
#include "executor.h"
#include "jit.h"
#include "render_c.h"
#include "util.h"

typedef void (*KernelFn)(void *const *bufs, const double *sc);

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process: with one thread, the work of a step
 * regardless of what else the machine runs (RXC_PROFILE_CLOCK=cpu). */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct GemmTile {
    int b;             /* batch entry, or -1: every entry in order */
    int r0, rows;      /* rows of C */
    int c0, cols;      /* columns of C */
} GemmTile;

typedef struct ResolvedStep {
    KernelFn fn;        /* STEP_KERNEL */
    void **args;        /* STEP_KERNEL: one address per kernel buffer */
    float *a, *b, *c;   /* STEP_GEMM: first batch entry */
    GemmTile *tiles;    /* STEP_GEMM */
    int n_tiles;
    float *x, *w, *y;   /* STEP_CONV */
} ResolvedStep;

typedef struct CpuExec {
    Executor base;
    char name[96];
    CpuBlas blas;
    unsigned char *space[SPACE_COUNT];
    int64_t space_bytes[SPACE_COUNT];
    JitLib *lib;
    ResolvedStep *steps[PHASE_COUNT];
    void *conv_scratch;                /* shared by the STEP_CONVs, which run one at a time */
    int threads;
    double *step_seconds[PHASE_COUNT]; /* RXC_PROFILE: time per step, summed over runs */
    double (*clock)(void);             /* wall time, or process CPU time */
    int runs[PHASE_COUNT];
    bool blas_threads;  /* RXC_GEMM_THREADS=blas */
    bool hybrid;        /* RXC_GEMM_THREADS=hybrid: batch 1 threaded by OpenBLAS, batches tiled */
} CpuExec;

static int64_t dtype_size(KDType t) {
    switch (t) {
    case KD_F32: return 4;
    case KD_BF16: return 2;
    case KD_U8: return 1;
    case KD_I64: return 8;
    }
    return 4;
}

static const char *space_name(BufSpace s) {
    static const char *const names[] = {"arena", "params", "grads", "state", "buffers", "input", "labels", "param_copy"};
    return (int)s >= 0 && s < SPACE_COUNT ? names[s] : "?";
}

/* ---- the GEMM tiling ------------------------------------------------------- */

/* Tiles for one GEMM step, from its shape only. About 8 tiles in all keeps
 * 2-8 threads busy; tiles stay at least 64 rows or columns (rounded to 16)
 * so each single-threaded call is still efficient. Each tile packs the
 * whole of the operand it does not split, so with a long k (weight
 * gradients: k = batch x pixels) fewer, larger tiles repack less. The side
 * split is the larger of m and n, which duplicates the smaller operand. */
static GemmTile *tile_gemm(const GemmStep *g, int *n_tiles) {
    /* Grouped convolutions: the batch entries sit side by side within each
     * row of A and C (column slabs). Tiling by group would stream the
     * whole of A from memory once per group for a thin slab each time; row
     * blocks that run every group keep the block in cache. */
    bool side_by_side = g->batch > 1 && !g->trans_a && g->stride_a < g->lda && g->stride_c < g->ldc && g->m >= 64;
    if (side_by_side) {
        const char *env = getenv("RXC_GEMM_ROWS");
        int64_t row_bytes = ((int64_t)g->lda + g->ldc) * 4;
        int block = env ? atoi(env) : (int)(96 * 1024 / row_bytes);
        block = block < 16 ? 16 : (block + 15) / 16 * 16;
        int blocks = (g->m + block - 1) / block;
        GemmTile *tiles = xcalloc((size_t)blocks, sizeof *tiles);
        for (int q = 0; q < blocks; q++) {
            int start = q * block, len = g->m - start < block ? g->m - start : block;
            tiles[q] = (GemmTile){.b = -1, .r0 = start, .rows = len, .c0 = 0, .cols = g->n};
        }
        *n_tiles = blocks;
        return tiles;
    }
    const int target = g->k <= 512 ? 8 : g->k <= 2048 ? 4 : 2;
    int per_batch = g->batch >= target ? 1 : (target + g->batch - 1) / g->batch;
    bool split_rows = g->m >= g->n;
    int extent = split_rows ? g->m : g->n;
    int max_blocks = extent / 64 > 0 ? extent / 64 : 1;
    if (per_batch > max_blocks) per_batch = max_blocks;
    int block = (extent + per_batch - 1) / per_batch;
    block = (block + 15) / 16 * 16;
    int blocks = (extent + block - 1) / block;
    GemmTile *tiles = xcalloc((size_t)g->batch * (size_t)blocks, sizeof *tiles);
    int n = 0;
    for (int b = 0; b < g->batch; b++)
        for (int q = 0; q < blocks; q++) {
            int start = q * block, len = extent - start < block ? extent - start : block;
            GemmTile t = {.b = b, .r0 = 0, .rows = g->m, .c0 = 0, .cols = g->n};
            if (split_rows) t.r0 = start, t.rows = len;
            else t.c0 = start, t.cols = len;
            tiles[n++] = t;
        }
    *n_tiles = n;
    return tiles;
}

static void gemm_tile(BlasSgemmFn sgemm, const GemmStep *g, const ResolvedStep *rs, const GemmTile *t) {
    if (t->b < 0) {
        for (int b = 0; b < g->batch; b++) {
            GemmTile one = *t;
            one.b = b;
            gemm_tile(sgemm, g, rs, &one);
        }
        return;
    }
    const float *a = rs->a + (int64_t)t->b * g->stride_a;
    const float *b = rs->b + (int64_t)t->b * g->stride_b;
    float *c = rs->c + (int64_t)t->b * g->stride_c;
    /* Row block r0: rows of op(A). Column block c0: columns of op(B). */
    a += g->trans_a ? (int64_t)t->r0 : (int64_t)t->r0 * g->lda;
    b += g->trans_b ? (int64_t)t->c0 * g->ldb : (int64_t)t->c0;
    c += (int64_t)t->r0 * g->ldc + t->c0;
    sgemm(BLAS_ROW_MAJOR, g->trans_a ? BLAS_TRANS : BLAS_NO_TRANS, g->trans_b ? BLAS_TRANS : BLAS_NO_TRANS, t->rows,
          t->cols, g->k, g->alpha, a, g->lda, b, g->ldb, g->beta, c, g->ldc);
}

static void run_gemm(CpuExec *x, const GemmStep *g, const ResolvedStep *rs) {
    BlasSgemmFn sgemm = x->blas.sgemm;
    if (x->blas_threads) {
        for (int b = 0; b < g->batch; b++) {
            GemmTile t = {.b = b, .r0 = 0, .rows = g->m, .c0 = 0, .cols = g->n};
            gemm_tile(sgemm, g, rs, &t);
        }
        return;
    }
    if (g->batch == 1 && x->hybrid) {
        /* One big product: OpenBLAS's own threading packs B once for all
         * threads and splits C the same way (never k). */
        GemmTile whole = {.b = 0, .r0 = 0, .rows = g->m, .c0 = 0, .cols = g->n};
        x->blas.set_num_threads(x->threads);
        gemm_tile(sgemm, g, rs, &whole);
        x->blas.set_num_threads(1);
        return;
    }
    if (rs->n_tiles == 1) {
        /* Small: one tile, not worth waking the team. */
        gemm_tile(sgemm, g, rs, &rs->tiles[0]);
        return;
    }
    /* Static, not dynamic: thread t always gets the t-th contiguous share of
     * the tiles, so the rows of C it writes are the rows that the generated
     * kernels (static shares of NHWC rows) and the conv steps give it next.
     * On a host that puts this VM's two vCPUs on different CCDs (L3s) for
     * minutes at a time, a row written by one core and read by the other
     * costs a cross-die transfer each: there dynamic tiles cost 5% of a step. */
#pragma omp parallel for schedule(static)
    for (int q = 0; q < rs->n_tiles; q++) gemm_tile(sgemm, g, rs, &rs->tiles[q]);
}

/* ---- validation of the program against itself ------------------------------ */

static int check_buffer_extent(const Program *p, const CpuExec *x, int id, Error *err) {
    if (id < 0 || id >= p->n_bufs) {
        error_set(err, "program refers to buffer %d of %d", id, p->n_bufs);
        return -1;
    }
    const BufDesc *b = &p->bufs[id];
    if ((int)b->space < 0 || b->space >= SPACE_COUNT) {
        error_set(err, "buffer %s: no such space %d", b->name, (int)b->space);
        return -1;
    }
    int64_t end = b->offset + b->numel * dtype_size(b->dtype);
    if (b->offset < 0 || b->numel < 0 || end > x->space_bytes[b->space]) {
        error_set(err, "buffer %s: bytes [%lld, %lld) lie outside the %s space of %lld bytes", b->name,
                  (long long)b->offset, (long long)end, space_name(b->space), (long long)x->space_bytes[b->space]);
        return -1;
    }
    return 0;
}

/* The last element a GEMM operand touches must lie inside its buffer. */
static int check_gemm_operand(const Program *p, const char *what, int buf, int64_t off, int64_t stride, int batch,
                              int rows, int cols, int ld, const char *note, Error *err) {
    const BufDesc *b = &p->bufs[buf];
    if (b->dtype != KD_F32) {
        error_set(err, "GEMM %s: operand %s (%s) is not f32", note, what, b->name);
        return -1;
    }
    if (ld < cols || rows < 0 || cols < 0) {
        error_set(err, "GEMM %s: operand %s has %d x %d with leading dimension %d", note, what, rows, cols, ld);
        return -1;
    }
    int64_t last = off + (int64_t)(batch - 1) * stride + (int64_t)(rows - 1) * ld + cols;
    if (off < 0 || (rows > 0 && cols > 0 && last > b->numel)) {
        error_set(err, "GEMM %s: operand %s reaches element %lld of %s, which has %lld", note, what,
                  (long long)last, b->name, (long long)b->numel);
        return -1;
    }
    return 0;
}

static void *buffer_address(CpuExec *x, const BufDesc *b) { return x->space[b->space] + b->offset; }

static int resolve_conv(CpuExec *x, const Program *p, const ConvStep *c, const char *note, ResolvedStep *rs,
                        Error *err) {
    const ConvGeom *g = &c->g;
    bool sane = g->n > 0 && g->h > 0 && g->w > 0 && g->oh > 0 && g->ow > 0 && g->groups > 0 && g->kh > 0 &&
                g->kw > 0 && g->sh > 0 && g->sw > 0 && g->ph >= 0 && g->pw >= 0 && g->cin > 0 && g->cout > 0 &&
                g->cin % g->groups == 0 && g->cout % g->groups == 0 &&
                (int64_t)(g->oh - 1) * g->sh - g->ph + g->kh <= (int64_t)g->h + g->ph &&
                (int64_t)(g->ow - 1) * g->sw - g->pw + g->kw <= (int64_t)g->w + g->pw;
    if (!sane) {
        error_set(err, "conv step %s: inconsistent geometry", note);
        return -1;
    }
    if (c->norm.on) { /* the CPU target never asks for one (its Target.conv_input_norm is NULL) */
        error_set(err, "conv step %s: the CPU's conv passes apply no input norm", note);
        return -1;
    }
    /* the tap tables hold pixel indices as int32, and a block's tap pointers live on the stack */
    if ((int64_t)g->n * g->h * g->w > INT32_MAX || (int64_t)g->n * g->oh * g->ow > INT32_MAX ||
        (int64_t)g->kh * g->kw > 4096) {
        error_set(err, "conv step %s: %d images of %dx%d or a %dx%d kernel exceed the direct conv's limits", note,
                  g->n, g->h, g->w, g->kh, g->kw);
        return -1;
    }
    const int ids[3] = {c->x, c->w, c->y};
    const int64_t need[3] = {(int64_t)g->n * g->h * g->w * g->cin, (int64_t)g->cout * (g->cin / g->groups) * g->kh * g->kw,
                             (int64_t)g->n * g->oh * g->ow * g->cout};
    float **addr[3] = {&rs->x, &rs->w, &rs->y};
    for (int q = 0; q < 3; q++) {
        if (check_buffer_extent(p, x, ids[q], err) != 0) return -1;
        const BufDesc *b = &p->bufs[ids[q]];
        if (b->dtype != KD_F32 || b->numel < need[q]) {
            error_set(err, "conv step %s: buffer %s needs %lld f32 elements, has %lld of dtype %d", note, b->name,
                      (long long)need[q], (long long)b->numel, (int)b->dtype);
            return -1;
        }
        *addr[q] = buffer_address(x, b);
    }
    return 0;
}

static int resolve_allreduce(CpuExec *x, const Program *p, const AllreduceStep *a, const char *note, ResolvedStep *rs,
                             Error *err) {
    if (check_buffer_extent(p, x, a->buf, err) != 0) return -1;
    const BufDesc *b = &p->bufs[a->buf];
    if (b->dtype != KD_F32 || a->offset < 0 || a->count < 0 || a->offset > b->numel || a->count > b->numel - a->offset)
        return error_set(err, "all-reduce step %s: elements [%lld, +%lld) of %s, which has %lld (dtype %d)", note,
                         (long long)a->offset, (long long)a->count, b->name, (long long)b->numel, (int)b->dtype);
    rs->x = (float *)buffer_address(x, b) + a->offset;
    return 0;
}

static int resolve_step(CpuExec *x, const Program *p, const Step *s, ResolvedStep *rs, Error *err) {
    const char *note = s->note ? s->note : "(no note)";
    if (s->kind == STEP_KERNEL) {
        if (s->kernel < 0 || s->kernel >= p->module->n) {
            error_set(err, "step %s: kernel %d of %d", note, s->kernel, p->module->n);
            return -1;
        }
        const Kernel *k = p->module->kernels[s->kernel];
        if (s->n_args != k->n_bufs) {
            error_set(err, "step %s: kernel %s takes %d buffers, the step gives %d", note, k->name, k->n_bufs,
                      s->n_args);
            return -1;
        }
        rs->fn = (KernelFn)jit_symbol(x->lib, k->name);
        if (!rs->fn) {
            error_set(err, "kernel %s is missing from the compiled object", k->name);
            return -1;
        }
        rs->args = xcalloc((size_t)(k->n_bufs ? k->n_bufs : 1), sizeof(void *));
        for (int a = 0; a < k->n_bufs; a++) {
            if (check_buffer_extent(p, x, s->args[a], err) != 0) return -1;
            const BufDesc *b = &p->bufs[s->args[a]];
            if (b->dtype != k->bufs[a].dtype || b->numel < k->bufs[a].numel) {
                error_set(err,
                          "step %s: kernel %s buffer %d (%s) wants %lld elements of dtype %d, got %s with %lld of "
                          "dtype %d",
                          note, k->name, a, k->bufs[a].name, (long long)k->bufs[a].numel, (int)k->bufs[a].dtype,
                          b->name, (long long)b->numel, (int)b->dtype);
                return -1;
            }
            rs->args[a] = buffer_address(x, b);
        }
        return 0;
    }
    if (s->kind == STEP_CONV) return resolve_conv(x, p, &s->conv, note, rs, err);
    if (s->kind == STEP_ALLREDUCE) return resolve_allreduce(x, p, &s->allreduce, note, rs, err);
    const GemmStep *g = &s->gemm;
    if (check_buffer_extent(p, x, g->a, err) || check_buffer_extent(p, x, g->b, err) ||
        check_buffer_extent(p, x, g->c, err))
        return -1;
    if (g->batch < 1 || g->m < 1 || g->n < 1 || g->k < 1) {
        error_set(err, "GEMM %s: shape %d x %d x %d, batch %d", note, g->m, g->n, g->k, g->batch);
        return -1;
    }
    /* Stored shapes of A and B as row-major matrices. */
    int a_rows = g->trans_a ? g->k : g->m, a_cols = g->trans_a ? g->m : g->k;
    int b_rows = g->trans_b ? g->n : g->k, b_cols = g->trans_b ? g->k : g->n;
    if (check_gemm_operand(p, "A", g->a, g->off_a, g->stride_a, g->batch, a_rows, a_cols, g->lda, note, err) ||
        check_gemm_operand(p, "B", g->b, g->off_b, g->stride_b, g->batch, b_rows, b_cols, g->ldb, note, err) ||
        check_gemm_operand(p, "C", g->c, g->off_c, g->stride_c, g->batch, g->m, g->n, g->ldc, note, err))
        return -1;
    rs->a = (float *)buffer_address(x, &p->bufs[g->a]) + g->off_a;
    rs->b = (float *)buffer_address(x, &p->bufs[g->b]) + g->off_b;
    rs->c = (float *)buffer_address(x, &p->bufs[g->c]) + g->off_c;
    rs->tiles = tile_gemm(g, &rs->n_tiles);
    return 0;
}

/* ---- the interface ------------------------------------------------------------ */

static int cpu_run(Executor *e, Phase phase, const double *sc, Error *err) {
    CpuExec *x = e->impl;
    const Program *p = e->program;
    if ((int)phase < 0 || phase >= PHASE_COUNT) {
        error_set(err, "no such phase %d", (int)phase);
        return -1;
    }
    if (!x->blas_threads) x->blas.set_num_threads(1);
    double *prof = x->step_seconds[phase];
    x->runs[phase]++;
    for (int i = 0; i < p->n_steps[phase]; i++) {
        const Step *s = &p->steps[phase][i];
        const ResolvedStep *rs = &x->steps[phase][i];
        double start = prof ? x->clock() : 0;
        if (s->kind == STEP_KERNEL) rs->fn(rs->args, sc);
        else if (s->kind == STEP_CONV) conv_cpu_run(&s->conv, rs->x, rs->w, rs->y, x->conv_scratch);
        else if (s->kind == STEP_GEMM) run_gemm(x, &s->gemm, rs);
        else if (e->hooks.allreduce && e->hooks.allreduce(e->hooks.ctx, rs->x, s->allreduce.count, err) != 0)
            return -1;
        if (prof) prof[i] += x->clock() - start;
        if (e->hooks.after_step && e->hooks.after_step(e->hooks.ctx, e, phase, i, err) != 0) return -1;
    }
    return 0;
}

typedef struct ProfRow {
    double seconds;
    int phase, step;
} ProfRow;

static int by_time_desc(const void *a, const void *b) {
    double x = ((const ProfRow *)a)->seconds, y = ((const ProfRow *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* RXC_PROFILE=N: on free, the N slowest steps and the totals per phase and
 * kind, per run, to stderr. */
static void print_profile(CpuExec *x, const Program *p) {
    const char *env = getenv("RXC_PROFILE");
    int top = env ? atoi(env) : 0;
    if (top <= 0) top = 30;
    static const char *const phase_names[] = {"forward_train", "backward", "update", "forward_eval", "ema"};
    int total = 0;
    for (int ph = 0; ph < PHASE_COUNT; ph++) total += x->step_seconds[ph] && x->runs[ph] ? p->n_steps[ph] : 0;
    ProfRow *rows = xcalloc((size_t)(total ? total : 1), sizeof *rows);
    int n = 0;
    fprintf(stderr, "rxc profile (%s), %s seconds per run:\n", x->name, x->clock == cpu_seconds ? "CPU" : "wall");
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (!x->step_seconds[ph] || !x->runs[ph]) continue;
        double by_kind[4] = {0, 0, 0, 0}; /* StepKind order: kernels, GEMMs, direct convs, all-reduces */
        for (int i = 0; i < p->n_steps[ph]; i++) {
            double t = x->step_seconds[ph][i] / x->runs[ph];
            by_kind[p->steps[ph][i].kind] += t;
            rows[n++] = (ProfRow){t, ph, i};
        }
        fprintf(stderr, "  %-14s kernels %.4f  gemm %.4f  conv %.4f  (%d runs)\n", phase_names[ph], by_kind[0],
                by_kind[1], by_kind[2], x->runs[ph]);
    }
    qsort(rows, (size_t)n, sizeof *rows, by_time_desc);
    for (int r = 0; r < n && r < top; r++) {
        const Step *s = &p->steps[rows[r].phase][rows[r].step];
        const char *what = s->kind == STEP_KERNEL ? p->module->kernels[s->kernel]->name
                           : s->kind == STEP_CONV ? conv_cpu_kernel_name(&s->conv)
                           : s->kind == STEP_GEMM ? "gemm"
                                                  : "allreduce";
        char rate[48] = "";
        if (s->kind == STEP_GEMM && rows[r].seconds > 0) {
            const GemmStep *g = &s->gemm;
            double flops = 2.0 * g->batch * g->m * g->n * g->k;
            snprintf(rate, sizeof rate, "%s%s %dx%dx%d %.0f GFLOP/s", g->trans_a ? "T" : "N", g->trans_b ? "T" : "N",
                     g->m, g->n, g->k, flops / rows[r].seconds * 1e-9);
        }
        fprintf(stderr, "  %8.4f  %-14s %-28s %s %s\n", rows[r].seconds, phase_names[rows[r].phase], what,
                s->note ? s->note : "", rate);
    }
    free(rows);
}

/* Every read and write is checked against the space's size (written so
 * that offset + bytes cannot overflow), so a wrong size is an error, never
 * a memcpy past the end. */
static int space_range_ok(CpuExec *x, BufSpace space, int64_t offset, int64_t bytes) {
    return (int)space >= 0 && space < SPACE_COUNT && offset >= 0 && bytes >= 0 && offset <= x->space_bytes[space] &&
           bytes <= x->space_bytes[space] - offset;
}

static int cpu_read(Executor *e, BufSpace space, int64_t offset, void *dst, int64_t bytes) {
    CpuExec *x = e->impl;
    if (!space_range_ok(x, space, offset, bytes)) return -1;
    if (bytes) memcpy(dst, x->space[space] + offset, (size_t)bytes);
    return 0;
}

static int cpu_write(Executor *e, BufSpace space, int64_t offset, const void *src, int64_t bytes) {
    CpuExec *x = e->impl;
    if (!space_range_ok(x, space, offset, bytes)) return -1;
    bool mirror = space == SPACE_PARAMS && x->space_bytes[SPACE_PARAM_COPY] > 0;
    if (mirror && (offset % 4 || bytes % 4)) return -1;
    if (bytes) memcpy(x->space[space] + offset, src, (size_t)bytes);
    if (mirror) bf16_from_f32((uint16_t *)(void *)(x->space[SPACE_PARAM_COPY] + offset / 2), src, bytes / 4);
    return 0;
}

/* SPACE_PARAMS is not exposed when the program keeps its bf16 copy: a write
 * must go through cpu_write, which keeps the copy current (program.h). */
static void *cpu_host_ptr(Executor *e, BufSpace space) {
    CpuExec *x = e->impl;
    if (space == SPACE_PARAMS && x->space_bytes[SPACE_PARAM_COPY] > 0) return NULL;
    return (int)space >= 0 && space < SPACE_COUNT ? x->space[space] : NULL;
}

static void cpu_free(Executor *e) {
    if (!e) return;
    CpuExec *x = e->impl;
    const Program *p = e->program;
    if (x->step_seconds[0]) print_profile(x, p);
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        free(x->step_seconds[ph]);
        if (!x->steps[ph]) continue;
        for (int i = 0; i < p->n_steps[ph]; i++) {
            free(x->steps[ph][i].args);
            free(x->steps[ph][i].tiles);
        }
        free(x->steps[ph]);
    }
    for (int s = 0; s < SPACE_COUNT; s++) free(x->space[s]);
    free(x->conv_scratch);
    jit_free(x->lib);
    blas_cpu_close(&x->blas);
    free(x);
}

Executor *exec_cpu_new(const Program *p, Error *err) {
    CpuExec *x = xcalloc(1, sizeof *x);
    Executor *e = &x->base;
    e->impl = x;
    e->program = p;
    e->run = cpu_run;
    e->read = cpu_read;
    e->write = cpu_write;
    e->host_ptr = cpu_host_ptr;
    e->free = cpu_free;
    x->threads = omp_get_max_threads();
    const char *mode = getenv("RXC_GEMM_THREADS");
    x->blas_threads = mode && !strcmp(mode, "blas");
    x->hybrid = mode && !strcmp(mode, "hybrid");
    snprintf(x->name, sizeof x->name, "cpu (%d thread%s)", x->threads, x->threads == 1 ? "" : "s");
    e->device_name = x->name;
    if (blas_cpu_open(&x->blas, err) != 0) {
        cpu_free(e);
        return NULL;
    }
    x->blas.set_num_threads(x->blas_threads ? x->threads : 1);
    snprintf(x->name, sizeof x->name, "cpu (%d thread%s, OpenBLAS %s kernels%s)", x->threads, x->threads == 1 ? "" : "s",
             x->blas.corename(), x->blas.preferred ? ", rxc's choice" : "");

    for (int s = 0; s < SPACE_COUNT; s++) {
        int64_t bytes = p->space_bytes[s];
        if (bytes < 0) {
            error_set(err, "space %s has %lld bytes", space_name((BufSpace)s), (long long)bytes);
            cpu_free(e);
            return NULL;
        }
        x->space_bytes[s] = bytes;
        /* 64-byte aligned and zeroed: kernels vectorise on cache lines, and
         * gradients and optimizer state start at zero. */
        size_t rounded = (size_t)((bytes + 63) / 64 * 64);
        x->space[s] = aligned_alloc(64, rounded ? rounded : 64);
        if (!x->space[s]) {
            error_set(err, "cannot allocate %lld bytes for the %s space", (long long)bytes, space_name((BufSpace)s));
            cpu_free(e);
            return NULL;
        }
        memset(x->space[s], 0, rounded ? rounded : 64);
    }

    if (p->module && p->module->n > 0) {
        char *source = render_c(p->module);
        JitInfo info;
        x->lib = jit_load(source, NULL, &info, err);
        free(source);
        if (!x->lib) {
            cpu_free(e);
            return NULL;
        }
        if (getenv("RXC_JIT_VERBOSE"))
            fprintf(stderr, "rxc: %d kernels %s in %.2f s (%s)\n", p->module->n,
                    info.cache_hit ? "loaded from the cache" : "compiled", info.seconds, info.so_path);
    }
    const char *clock_env = getenv("RXC_PROFILE_CLOCK");
    x->clock = clock_env && !strcmp(clock_env, "cpu") ? cpu_seconds : now_seconds;
    if (getenv("RXC_PROFILE"))
        for (int ph = 0; ph < PHASE_COUNT; ph++)
            x->step_seconds[ph] = xcalloc((size_t)(p->n_steps[ph] ? p->n_steps[ph] : 1), sizeof(double));
    size_t conv_scratch_bytes = 0;
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        x->steps[ph] = xcalloc((size_t)(p->n_steps[ph] ? p->n_steps[ph] : 1), sizeof(ResolvedStep));
        for (int i = 0; i < p->n_steps[ph]; i++) {
            const Step *s = &p->steps[ph][i];
            if (s->kind == STEP_KERNEL && !x->lib) {
                error_set(err, "a kernel step without a kernel module");
                cpu_free(e);
                return NULL;
            }
            if (resolve_step(x, p, s, &x->steps[ph][i], err) != 0) {
                cpu_free(e);
                return NULL;
            }
            size_t scratch = s->kind == STEP_CONV ? conv_cpu_scratch_bytes(&s->conv) : 0;
            if (scratch > conv_scratch_bytes) conv_scratch_bytes = scratch;
        }
    }
    if (conv_scratch_bytes && !(x->conv_scratch = aligned_alloc(64, (conv_scratch_bytes + 63) / 64 * 64))) {
        error_set(err, "cannot allocate %zu bytes of convolution scratch", conv_scratch_bytes);
        cpu_free(e);
        return NULL;
    }
    return e;
}
