/*
 * exec_cuda.c — the GPU executor (executor.h): generated CUDA kernels
 * compiled by NVRTC (cached cubins), cuBLAS GEMMs, one device arena, staged
 * input batches, and each phase captured once as a CUDA graph and replayed.
 *
 * Memory. One cuMemAlloc holds every storage space of the Program (offsets
 * from the memory plan), the chunk partials of column reductions, the
 * per-phase runtime scalars, cuBLAS's workspace, and the landing area of
 * staged inputs. Nothing is allocated after construction, which is also
 * what makes graph capture legal.
 *
 * Input. write() to SPACE_INPUT or SPACE_LABELS copies into pinned host
 * staging and starts an asynchronous copy to a landing area on a separate
 * stream, so the next batch travels while the previous step still runs.
 * The forward phases wait for it and move it into place with a
 * device-to-device copy that is part of their graph.
 *
 * Launch. The first run of a phase executes its steps directly (cuBLAS
 * settles its heuristics); the second captures the same sequence, scalars
 * upload included, as a CUDA graph; later runs replay it. The scalars are
 * read from pinned host memory when the graph executes, so a replay sees
 * the step's values. A capture that fails is an error (a GPU that cannot
 * replay graphs would silently run slower); RXC_NO_GRAPH=1 (or the older
 * RXC_CUDA_GRAPHS=0) turns graphs off on purpose. RXC_PROFILE
 * (profile_cuda.h) times the steps of a few training steps with events,
 * holding graphs back until its report is out.
 *
 * Direct convolutions. A STEP_CONV launches conv_cuda.c's kernel for its
 * (pass, geometry), rendered into the same module; the weight gradient's
 * chunk partials use the scratch area as column reductions do.
 *
 * GEMMs. Program GEMMs are row-major; cuBLAS is column-major, so
 * C = op(A) op(B) runs as C^T = op(B)^T op(A)^T with the operands swapped.
 * TF32 tensor cores are used for f32 GEMMs when the program's precision
 * asks for it; RXC_TF32=1 or =0 decides instead when set. The choice is
 * both the GEMMs' compute type and the handle's math mode. bf16 operands
 * use bf16 tensor cores with fp32 accumulation.
 *
 * Kernels. NVRTC compiles the module in parts (nvrtc_compile.h); each part
 * is its own CUmodule and each kernel is looked up in its part's.
 *
 * Data-parallel runs. Gradient buckets and STEP_ALLREDUCEs are NCCL
 * all-reduces enqueued between the steps (exec_cuda_nccl.h). A backward
 * that reduces its gradients and one that does not (gradient accumulation)
 * are different sequences, so each has its own graph: slot PHASE_COUNT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_cuda.h"
#include "cuda_api.h"
#include "exec_cuda.h"
#include "exec_cuda_nccl.h"
#include "nvrtc_compile.h"
#include "executor.h"
#include "profile_cuda.h"
#include "render_cuda.h"
#include "util.h"

enum { ALIGN = 256, BLAS_WORKSPACE = 32 << 20 };
/* the graph and run-count slot of a backward that all-reduces its gradients */
enum { SLOT_REDUCING_BACKWARD = PHASE_COUNT, SLOTS };

typedef struct CudaStep {
    CUfunction fn, finish;          /* STEP_KERNEL */
    CUfunction vec4;                /* NAME_v4, when its buffers are 16-byte aligned */
    CUdeviceptr *arg_values;        /* buffers, then sc, then scratch */
    void **params;                  /* pointers to arg_values, for cuLaunchKernel */
    const CudaLaunch *launch;
    CUdeviceptr a, b, c;            /* STEP_GEMM */
    int a_type, b_type, c_type;
} CudaStep;

typedef struct CudaExec {
    Executor base;
    char name[160];
    CudaApi api;
    int ordinal;
    CUdevice dev;
    CUcontext ctx;
    bool ctx_retained;
    CUstream stream, copy_stream;
    CUevent input_ready, landing_free, phase_done[PHASE_COUNT];
    CUmodule *modules;              /* one per NVRTC part */
    int n_modules;
    CUmodule *kernel_module;        /* per kernel of the KirModule: the module of its part */
    CUmodule *conv_module;          /* per conv_cuda kernel: the module of its part */
    CudaLaunch *launches;
    ConvCudaSet convs;              /* the STEP_CONV kernels and their launches */
    cublasHandle_t blas;
    bool tf32;

    CUdeviceptr arena;
    size_t arena_bytes;
    CUdeviceptr space[SPACE_COUNT];
    int64_t space_bytes[SPACE_COUNT];
    CUdeviceptr scratch, sc_dev[PHASE_COUNT], blas_ws, landing[SPACE_COUNT];

    double *sc_host;                /* pinned, PHASE_COUNT * SC_COUNT */
    unsigned char *staging[SPACE_COUNT]; /* pinned, SPACE_INPUT and SPACE_LABELS */
    bool staged_pending;

    CudaStep *steps[PHASE_COUNT];
    int runs[SLOTS];
    bool use_graphs;
    CUgraphExec graph[SLOTS];
    CudaCollectives coll;           /* NCCL, in a data-parallel run */
    CudaProfile *profile;           /* RXC_PROFILE, else NULL */
} CudaExec;

static bool is_staged(BufSpace s) { return s == SPACE_INPUT || s == SPACE_LABELS; }

static int64_t dtype_size(KDType t) { return t == KD_F32 ? 4 : t == KD_BF16 ? 2 : t == KD_U8 ? 1 : 8; }

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

#define CU_TRY(x, call)                                                                                  \
    do {                                                                                                 \
        CUresult r_ = (x)->api.call;                                                                     \
        if (r_ != 0) {                                                                                   \
            return cuda_error_set(err, &(x)->api, r_, "%s", #call);                                     \
        }                                                                                                \
    } while (0)

/* ---- running steps ------------------------------------------------------------ */

static int launch_kernel(CudaExec *x, const CudaStep *s, Error *err) {
    const CudaLaunch *l = s->launch;
    if (s->vec4) {
        CU_TRY(x, cuLaunchKernel(s->vec4, l->vec4_grid, 1, 1, l->block[0], 1, 1, 0, x->stream, s->params, NULL));
        return 0;
    }
    CU_TRY(x, cuLaunchKernel(s->fn, l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2], 0,
                             x->stream, s->params, NULL));
    if (l->has_finish)
        CU_TRY(x, cuLaunchKernel(s->finish, l->finish_grid, 1, 1, l->finish_block, 1, 1, 0, x->stream, s->params, NULL));
    return 0;
}

static int run_gemm(CudaExec *x, const GemmStep *g, const CudaStep *s, Error *err) {
    /* row-major C = op(A) op(B)  <=>  column-major C^T = op(B)^T op(A)^T */
    int compute = x->tf32 && s->a_type == RXC_CUDA_R_32F ? RXC_CUBLAS_COMPUTE_32F_FAST_TF32 : RXC_CUBLAS_COMPUTE_32F;
    cublasStatus_t st = x->api.cublasGemmStridedBatchedEx(
        x->blas, g->trans_b ? RXC_CUBLAS_OP_T : RXC_CUBLAS_OP_N, g->trans_a ? RXC_CUBLAS_OP_T : RXC_CUBLAS_OP_N, g->n,
        g->m, g->k, &g->alpha, (const void *)(uintptr_t)s->b, s->b_type, g->ldb, g->stride_b,
        (const void *)(uintptr_t)s->a, s->a_type, g->lda, g->stride_a, &g->beta, (void *)(uintptr_t)s->c, s->c_type,
        g->ldc, g->stride_c, g->batch, compute, RXC_CUBLAS_GEMM_DEFAULT);
    if (st != 0)
        return cublas_error_set(err, st, "cublasGemmStridedBatchedEx (%d x %d x %d, batch %d) failed", g->m, g->n,
                                g->k, g->batch);
    return 0;
}

static const char *phase_name(Phase ph);

/* A STEP_ALLREDUCE: NCCL's sum over the ranks; in one process, nothing. */
static int enqueue_allreduce(CudaExec *x, const AllreduceStep *a, const CudaStep *s, Error *err) {
    if (!x->coll.open) return 0;
    return cuda_coll_sum(&x->coll, s->a, a->count, x->stream, err);
}

/* Everything one run of a phase enqueues: scalars, staged input, steps;
 * when `reduce`, the gradient buckets' all-reduces between the steps; when
 * `timed`, RXC_PROFILE's events between the steps. */
static int enqueue_phase(CudaExec *x, Phase ph, bool reduce, bool timed, Error *err) {
    const Program *p = x->base.program;
    CU_TRY(x, cuMemcpyHtoDAsync(x->sc_dev[ph], x->sc_host + (size_t)ph * SC_COUNT, SC_COUNT * sizeof(double), x->stream));
    if (ph == PHASE_FORWARD_TRAIN || ph == PHASE_FORWARD_EVAL)
        for (int s = 0; s < SPACE_COUNT; s++)
            if (is_staged((BufSpace)s) && x->space_bytes[s] > 0)
                CU_TRY(x, cuMemcpyDtoDAsync(x->space[s], x->landing[s], (size_t)x->space_bytes[s], x->stream));
    if (reduce && cuda_coll_after_step(&x->coll, -1, x->space[SPACE_GRADS], x->stream, err)) return -1;
    for (int i = 0; i < p->n_steps[ph]; i++) {
        const Step *st = &p->steps[ph][i];
        if (timed && cuda_profile_mark(x->profile, ph, i, x->stream, err)) return -1;
        int rc = st->kind == STEP_GEMM        ? run_gemm(x, &st->gemm, &x->steps[ph][i], err)
                 : st->kind == STEP_ALLREDUCE ? enqueue_allreduce(x, &st->allreduce, &x->steps[ph][i], err)
                                              : launch_kernel(x, &x->steps[ph][i], err);
        if (rc == 0 && reduce) rc = cuda_coll_after_step(&x->coll, i, x->space[SPACE_GRADS], x->stream, err);
        if (rc) return error_append(err, " (step %d of %s: %s)", i, phase_name(ph), st->note ? st->note : "");
    }
    return timed ? cuda_profile_mark(x->profile, ph, p->n_steps[ph], x->stream, err) : 0;
}

static int capture_phase(CudaExec *x, Phase ph, bool reduce, CUgraphExec *out, Error *err) {
    CUgraph g = NULL;
    CU_TRY(x, cuStreamBeginCapture(x->stream, RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    int rc = enqueue_phase(x, ph, reduce, false, err);
    CUresult r = x->api.cuStreamEndCapture(x->stream, &g);
    if (rc) {
        if (g) x->api.cuGraphDestroy(g);
        return -1;
    }
    if (r != 0) return cuda_error_set(err, &x->api, r, "cuStreamEndCapture");
    r = x->api.cuGraphInstantiateWithFlags(out, g, 0);
    x->api.cuGraphDestroy(g);
    if (r != 0) {
        *out = NULL;
        return cuda_error_set(err, &x->api, r, "cuGraphInstantiateWithFlags");
    }
    return 0;
}

static const char *phase_name(Phase ph) {
    return ph == PHASE_BACKWARD ? "backward" : ph == PHASE_UPDATE ? "update" : ph == PHASE_EMA ? "ema" : "forward";
}

static bool has_allreduce_step(const Program *p, Phase ph) {
    for (int i = 0; i < p->n_steps[ph]; i++)
        if (p->steps[ph][i].kind == STEP_ALLREDUCE) return true;
    return false;
}

static bool phase_communicates(const CudaExec *x, Phase ph, bool reduce) {
    return reduce || has_allreduce_step(x->base.program, ph);
}

/* Opens NCCL at the first phase that needs it (the same point on every
 * rank) and says whether this run of ph reduces the gradients. */
static int collectives_for(CudaExec *x, Phase ph, bool *reduce, Error *err) {
    const ExecHooks *h = &x->base.hooks;
    bool group = h->ranks > 1, wanted = group && cuda_coll_wanted(h);
    if (group && !wanted && has_allreduce_step(x->base.program, ph))
        return error_set(err, "sync_bn on GPUs all-reduces BatchNorm sums with NCCL inside the %s phase, which "
                              "RXC_NCCL=off turns off: train with sync_bn false, or without RXC_NCCL=off",
                         phase_name(ph));
    if (!wanted) return 0;
    if (ph == PHASE_BACKWARD) *reduce = h->take_grad_reduce(h->ctx);
    if (!x->coll.open && (*reduce || has_allreduce_step(x->base.program, ph)) &&
        cuda_coll_open(&x->coll, h, x->base.program, x->ordinal, err) != 0)
        return error_prefix(err, "starting NCCL on cuda:%d", x->ordinal);
    return 0;
}

static int cuda_run(Executor *e, Phase ph, const double *sc, Error *err) {
    CudaExec *x = e->impl;
    if ((int)ph < 0 || ph >= PHASE_COUNT) {
        error_set(err, "no such phase %d", (int)ph);
        return -1;
    }
    CU_TRY(x, cuCtxSetCurrent(x->ctx));
    /* the previous run of this phase must have read its scalars */
    CU_TRY(x, cuEventSynchronize(x->phase_done[ph]));
    memcpy(x->sc_host + (size_t)ph * SC_COUNT, sc, SC_COUNT * sizeof(double));
    bool forward = ph == PHASE_FORWARD_TRAIN || ph == PHASE_FORWARD_EVAL;
    if (forward && x->staged_pending) {
        CU_TRY(x, cuStreamWaitEvent(x->stream, x->input_ready, 0));
        x->staged_pending = false;
    }
    bool reduce = false;
    if (collectives_for(x, ph, &reduce, err) != 0) return -1;
    int slot = reduce ? SLOT_REDUCING_BACKWARD : (int)ph, n = x->runs[slot]++;
    bool timed = cuda_profile_times(x->profile, ph, n);
    bool graph_ok = x->use_graphs && !cuda_profile_pending(x->profile) &&
                    (!x->coll.open || x->coll.capturable || !phase_communicates(x, ph, reduce));
    if (graph_ok && n >= 1 && !x->graph[slot] && capture_phase(x, ph, reduce, &x->graph[slot], err) != 0)
        return error_prefix(err, "capturing the %s phase as a CUDA graph failed (RXC_NO_GRAPH=1 runs without graphs)",
                            phase_name(ph));
    if (x->graph[slot]) CU_TRY(x, cuGraphLaunch(x->graph[slot], x->stream));
    else if (enqueue_phase(x, ph, reduce, timed, err)) return -1;
    if (x->coll.open && cuda_coll_check(&x->coll, err) != 0) return -1;
    CU_TRY(x, cuEventRecord(x->phase_done[ph], x->stream));
    if (forward) CU_TRY(x, cuEventRecord(x->landing_free, x->stream));
    return timed ? cuda_profile_collect(x->profile, ph, x->tf32, err) : 0;
}

/* ---- host <-> device ------------------------------------------------------------ */

/* Every copy is checked against the space's size (written so that off +
 * bytes cannot overflow), so a wrong size is an error, never a copy past
 * the end of a staging buffer or device allocation. */
static bool range_ok(CudaExec *x, BufSpace s, int64_t off, int64_t bytes) {
    return (int)s >= 0 && s < SPACE_COUNT && off >= 0 && bytes >= 0 && off <= x->space_bytes[s] &&
           bytes <= x->space_bytes[s] - off;
}

static int cuda_read(Executor *e, BufSpace s, int64_t off, void *dst, int64_t bytes) {
    CudaExec *x = e->impl;
    if (!range_ok(x, s, off, bytes)) return -1;
    if (!bytes) return 0;
    if (x->api.cuCtxSetCurrent(x->ctx) || x->api.cuStreamSynchronize(x->stream) ||
        x->api.cuStreamSynchronize(x->copy_stream))
        return -1;
    /* a staged space reads as last written, consumed by a forward phase or not */
    CUdeviceptr src = (is_staged(s) ? x->landing[s] : x->space[s]) + (CUdeviceptr)off;
    return x->api.cuMemcpyDtoH(dst, src, (size_t)bytes) ? -1 : 0;
}

/* The bf16 copy of the parameters (program.h: SPACE_PARAM_COPY) follows
 * every host write of SPACE_PARAMS, rounded as the update kernel rounds. */
static int write_param_copy(CudaExec *x, int64_t off, const void *src, int64_t bytes) {
    if (off % 4 || bytes % 4) return -1;
    uint16_t *copy = xmalloc((size_t)bytes / 2);
    bf16_from_f32(copy, src, bytes / 4);
    CUresult r = x->api.cuMemcpyHtoDAsync(x->space[SPACE_PARAM_COPY] + (CUdeviceptr)(off / 2), copy,
                                          (size_t)bytes / 2, x->stream);
    if (r == 0) r = x->api.cuStreamSynchronize(x->stream); /* copy is freed next */
    free(copy);
    return r ? -1 : 0;
}

static int cuda_write(Executor *e, BufSpace s, int64_t off, const void *src, int64_t bytes) {
    CudaExec *x = e->impl;
    if (!range_ok(x, s, off, bytes)) return -1;
    if (!bytes) return 0;
    if (x->api.cuCtxSetCurrent(x->ctx)) return -1;
    if (is_staged(s)) {
        /* The landing area always holds the latest contents written; the
         * staging buffer is free once its previous upload finished, and the
         * landing area once the last forward phase moved it into place. */
        if (x->api.cuStreamSynchronize(x->copy_stream) ||
            x->api.cuStreamWaitEvent(x->copy_stream, x->landing_free, 0))
            return -1;
        memcpy(x->staging[s] + off, src, (size_t)bytes);
        if (x->api.cuMemcpyHtoDAsync(x->landing[s] + (CUdeviceptr)off, x->staging[s] + off, (size_t)bytes,
                                     x->copy_stream) ||
            x->api.cuEventRecord(x->input_ready, x->copy_stream))
            return -1;
        x->staged_pending = true;
        return 0;
    }
    /* On the compute stream, so every later kernel sees it (a plain copy
     * from pageable memory may still be in flight when it returns). */
    if (x->api.cuMemcpyHtoDAsync(x->space[s] + (CUdeviceptr)off, src, (size_t)bytes, x->stream)) return -1;
    if (s == SPACE_PARAMS && x->space_bytes[SPACE_PARAM_COPY] > 0) return write_param_copy(x, off, src, bytes);
    return x->api.cuStreamSynchronize(x->stream) ? -1 : 0;
}

static void *cuda_host_ptr(Executor *e, BufSpace s) {
    (void)e;
    (void)s;
    return NULL;
}

static void cuda_free(Executor *e) {
    if (!e) return;
    CudaExec *x = e->impl;
    const Program *p = e->program;
    if (x->ctx) {
        x->api.cuCtxSetCurrent(x->ctx);
        if (x->stream) x->api.cuStreamSynchronize(x->stream);
        if (x->copy_stream) x->api.cuStreamSynchronize(x->copy_stream);
        cuda_coll_close(&x->coll);
        cuda_profile_close(x->profile, x->tf32);
        for (int slot = 0; slot < SLOTS; slot++)
            if (x->graph[slot]) x->api.cuGraphExecDestroy(x->graph[slot]);
        for (int ph = 0; ph < PHASE_COUNT; ph++)
            if (x->phase_done[ph]) x->api.cuEventDestroy(x->phase_done[ph]);
        if (x->blas) x->api.cublasDestroy(x->blas);
        for (int m = 0; m < x->n_modules; m++)
            if (x->modules[m]) x->api.cuModuleUnload(x->modules[m]);
        if (x->arena) x->api.cuMemFree(x->arena);
        if (x->sc_host) x->api.cuMemFreeHost(x->sc_host);
        for (int s = 0; s < SPACE_COUNT; s++)
            if (x->staging[s]) x->api.cuMemFreeHost(x->staging[s]);
        if (x->input_ready) x->api.cuEventDestroy(x->input_ready);
        if (x->landing_free) x->api.cuEventDestroy(x->landing_free);
        if (x->stream) x->api.cuStreamDestroy(x->stream);
        if (x->copy_stream) x->api.cuStreamDestroy(x->copy_stream);
        if (x->ctx_retained) x->api.cuDevicePrimaryCtxRelease(x->dev);
    }
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        if (!x->steps[ph]) continue;
        for (int i = 0; i < p->n_steps[ph]; i++) {
            free(x->steps[ph][i].arg_values);
            free(x->steps[ph][i].params);
        }
        free(x->steps[ph]);
    }
    free(x->launches);
    conv_cuda_set_free(&x->convs);
    free(x->modules);
    free(x->kernel_module);
    free(x->conv_module);
    cuda_api_unload(&x->api);
    free(x);
}

/* ---- construction ----------------------------------------------------------------- */

static int check_buffer(const Program *p, const CudaExec *x, int id, Error *err) {
    if (id < 0 || id >= p->n_bufs) {
        error_set(err, "program refers to buffer %d of %d", id, p->n_bufs);
        return -1;
    }
    const BufDesc *b = &p->bufs[id];
    int64_t end = b->offset + b->numel * dtype_size(b->dtype);
    if ((int)b->space < 0 || b->space >= SPACE_COUNT || b->offset < 0 || end > x->space_bytes[b->space]) {
        error_set(err, "buffer %s lies outside its space", b->name);
        return -1;
    }
    return 0;
}

static int data_type(KDType t, const char *what, Error *err) {
    if (t == KD_F32) return RXC_CUDA_R_32F;
    if (t == KD_BF16) return RXC_CUDA_R_16BF;
    error_set(err, "GEMM operand %s is neither f32 nor bf16", what);
    return -1;
}

/* A STEP_CONV: its conv_cuda kernel (and NAME_finish), with the
 * parameters (x, w, y, sc, scratch), then the buffers of whichever of the
 * input norm (stats, gamma, beta), gradient sums (bn_x, partials) and
 * output statistics (partials) the step has: library_step_buffers' slots
 * 3..8 in order, each holding at least what conv_step_extents says. */
static int resolve_conv(CudaExec *x, Phase ph, int i, Error *err) {
    const Program *p = x->base.program;
    const Step *st = &p->steps[ph][i];
    CudaStep *cs = &x->steps[ph][i];
    int k = x->convs.step_kernel[ph][i];
    if (k < 0) return error_set(err, "conv step %d has no kernel", i);
    const ConvCudaKernel *ck = &x->convs.kernels[k];
    int ids[LIBRARY_STEP_BUFS];
    int64_t need[LIBRARY_STEP_BUFS];
    library_step_buffers(st, ids);
    conv_step_extents(&st->conv, need);
    cs->arg_values = xcalloc(2 + LIBRARY_STEP_BUFS, sizeof(CUdeviceptr));
    cs->params = xcalloc(2 + LIBRARY_STEP_BUFS, sizeof(void *));
    int n_args = 0;
    for (int q = 0; q < LIBRARY_STEP_BUFS; q++) {
        if (ids[q] < 0) continue;
        if (check_buffer(p, x, ids[q], err)) return -1;
        const BufDesc *b = &p->bufs[ids[q]];
        /* past x, w, y (and bn_x, in the activations' dtype) every buffer is f32 */
        if (b->numel < need[q] || (q > 2 && q != 6 && b->dtype != KD_F32))
            return error_set(err, "conv kernel %s: buffer %s has %lld elements of dtype %d, needs %lld%s", ck->name,
                             b->name, (long long)b->numel, (int)b->dtype, (long long)need[q],
                             q > 2 && q != 6 ? " of f32" : "");
        cs->arg_values[n_args++] = x->space[b->space] + (CUdeviceptr)b->offset;
        if (q == 2) { /* then sc and scratch */
            cs->arg_values[n_args++] = x->sc_dev[ph];
            cs->arg_values[n_args++] = x->scratch;
        }
    }
    for (int a = 0; a < n_args; a++) cs->params[a] = &cs->arg_values[a];
    cs->launch = &ck->launch;
    CUresult r = x->api.cuModuleGetFunction(&cs->fn, x->conv_module[k], ck->name);
    if (r == 0 && ck->launch.has_finish) {
        char *fin = xasprintf("%s_finish", ck->name);
        r = x->api.cuModuleGetFunction(&cs->finish, x->conv_module[k], fin);
        free(fin);
    }
    if (r != 0) return cuda_error_set(err, &x->api, r, "kernel %s is missing from the cubin", ck->name);
    return 0;
}

/* A STEP_ALLREDUCE: the device address of its first element. */
static int resolve_allreduce(CudaExec *x, const AllreduceStep *a, CudaStep *cs, const char *note, Error *err) {
    const Program *p = x->base.program;
    if (check_buffer(p, x, a->buf, err)) return -1;
    const BufDesc *b = &p->bufs[a->buf];
    if (b->dtype != KD_F32 || a->offset < 0 || a->count < 0 || a->offset > b->numel || a->count > b->numel - a->offset)
        return error_set(err, "all-reduce step %s: elements [%lld, +%lld) of %s, which has %lld", note ? note : "?",
                         (long long)a->offset, (long long)a->count, b->name, (long long)b->numel);
    cs->a = x->space[b->space] + (CUdeviceptr)b->offset + (CUdeviceptr)(a->offset * 4);
    return 0;
}

static int resolve_steps(CudaExec *x, Error *err) {
    const Program *p = x->base.program;
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        x->steps[ph] = xcalloc((size_t)(p->n_steps[ph] ? p->n_steps[ph] : 1), sizeof(CudaStep));
        for (int i = 0; i < p->n_steps[ph]; i++) {
            const Step *st = &p->steps[ph][i];
            CudaStep *cs = &x->steps[ph][i];
            if (st->kind == STEP_CONV) {
                if (resolve_conv(x, ph, i, err)) return -1;
                continue;
            }
            if (st->kind == STEP_ALLREDUCE) {
                if (resolve_allreduce(x, &st->allreduce, cs, st->note, err)) return -1;
                continue;
            }
            if (st->kind == STEP_GEMM) {
                const GemmStep *g = &st->gemm;
                if (check_buffer(p, x, g->a, err) || check_buffer(p, x, g->b, err) ||
                    check_buffer(p, x, g->c, err))
                    return -1;
                const BufDesc *a = &p->bufs[g->a], *b = &p->bufs[g->b], *c = &p->bufs[g->c];
                if ((cs->a_type = data_type(a->dtype, a->name, err)) < 0 ||
                    (cs->b_type = data_type(b->dtype, b->name, err)) < 0 ||
                    (cs->c_type = data_type(c->dtype, c->name, err)) < 0)
                    return -1;
                cs->a = x->space[a->space] + (CUdeviceptr)a->offset + (CUdeviceptr)(g->off_a * dtype_size(a->dtype));
                cs->b = x->space[b->space] + (CUdeviceptr)b->offset + (CUdeviceptr)(g->off_b * dtype_size(b->dtype));
                cs->c = x->space[c->space] + (CUdeviceptr)c->offset + (CUdeviceptr)(g->off_c * dtype_size(c->dtype));
                continue;
            }
            if (st->kernel < 0 || st->kernel >= p->module->n) {
                error_set(err, "step %d refers to kernel %d of %d", i, st->kernel, p->module->n);
                return -1;
            }
            const Kernel *k = p->module->kernels[st->kernel];
            if (st->n_args != k->n_bufs) {
                error_set(err, "kernel %s takes %d buffers, its step gives %d", k->name, k->n_bufs, st->n_args);
                return -1;
            }
            cs->launch = &x->launches[st->kernel];
            CUmodule module = x->kernel_module[st->kernel];
            CUresult r = x->api.cuModuleGetFunction(&cs->fn, module, k->name);
            if (r == 0 && cs->launch->has_finish) {
                char *fin = xasprintf("%s_finish", k->name);
                r = x->api.cuModuleGetFunction(&cs->finish, module, fin);
                free(fin);
            }
            if (r != 0) return cuda_error_set(err, &x->api, r, "kernel %s is missing from the cubin", k->name);
            int n = k->n_bufs + 2;
            cs->arg_values = xcalloc((size_t)n, sizeof(CUdeviceptr));
            cs->params = xcalloc((size_t)n, sizeof(void *));
            for (int a = 0; a < k->n_bufs; a++) {
                if (check_buffer(p, x, st->args[a], err)) return -1;
                const BufDesc *b = &p->bufs[st->args[a]];
                if (b->dtype != k->bufs[a].dtype || b->numel < k->bufs[a].numel) {
                    error_set(err, "kernel %s buffer %s: the step's buffer %s does not match", k->name,
                              k->bufs[a].name, b->name);
                    return -1;
                }
                cs->arg_values[a] = x->space[b->space] + (CUdeviceptr)b->offset;
            }
            /* the float4 variant needs 16-byte aligned buffers (space offsets
             * come from the memory plan: known only here) */
            bool aligned = cs->launch->has_vec4;
            for (int a = 0; a < k->n_bufs && a < 64; a++)
                if (cs->launch->vec4_bufs >> a & 1) aligned &= cs->arg_values[a] % 16 == 0;
            if (aligned && !getenv("RXC_CUDA_NO_VEC4")) {
                char *v4 = xasprintf("%s_v4", k->name);
                r = x->api.cuModuleGetFunction(&cs->vec4, module, v4);
                free(v4);
                if (r != 0) {
                    error_set(err, "kernel %s_v4 is missing from the cubin", k->name);
                    return -1;
                }
            }
            cs->arg_values[k->n_bufs] = x->sc_dev[ph];
            cs->arg_values[k->n_bufs + 1] = x->scratch;
            for (int a = 0; a < n; a++) cs->params[a] = &cs->arg_values[a];
        }
    }
    return 0;
}

/* Compiles (or takes from the cache) every kernel and loads each NVRTC part
 * as a module. */
static int load_kernels(CudaExec *x, const Program *p, int sm, Error *err) {
    char *src = render_cuda_program(p, &x->launches, &x->convs, err);
    if (!src) return -1;
    NvrtcOptions opt = {.sm = sm, .use_cache = true};
    NvrtcModule mod;
    int rc = nvrtc_compile(&x->api, src, &opt, &mod, err);
    free(src);
    if (rc) return -1;
    if (getenv("RXC_VERBOSE"))
        fprintf(stderr, "rxc: %d CUDA kernels for sm_%d %s in %.3f s (%d part%s)\n", p->module->n, sm,
                mod.from_cache ? "loaded from the cubin cache" : "compiled by NVRTC", mod.seconds, mod.n_parts,
                mod.n_parts == 1 ? "" : "s");
    x->modules = xcalloc((size_t)mod.n_parts, sizeof *x->modules);
    x->n_modules = mod.n_parts;
    x->kernel_module = xcalloc((size_t)p->module->n, sizeof *x->kernel_module);
    for (int i = 0; i < mod.n_parts && rc == 0; i++) {
        CUresult r = x->api.cuModuleLoadData(&x->modules[i], mod.parts[i].cubin);
        if (r != 0) rc = cuda_error_set(err, &x->api, r, "cuModuleLoadData (part %d of %d)", i + 1, mod.n_parts);
    }
    for (int k = 0; k < p->module->n && rc == 0; k++) {
        int part = nvrtc_module_part_of(&mod, p->module->kernels[k]->name);
        if (part < 0) rc = error_set(err, "kernel %s is in no NVRTC part", p->module->kernels[k]->name);
        else x->kernel_module[k] = x->modules[part];
    }
    x->conv_module = xcalloc((size_t)(x->convs.n > 0 ? x->convs.n : 1), sizeof *x->conv_module);
    for (int k = 0; k < x->convs.n && rc == 0; k++) {
        int part = nvrtc_module_part_of(&mod, x->convs.kernels[k].name);
        if (part < 0) rc = error_set(err, "conv kernel %s is in no NVRTC part", x->convs.kernels[k].name);
        else x->conv_module[k] = x->modules[part];
    }
    nvrtc_module_free(&mod);
    return rc;
}

/* RXC_TF32=0/1 when set decides; else the program's precision (on). */
static void apply_tf32(CudaExec *x, bool precision_wants) {
    const char *env = getenv("RXC_TF32");
    x->tf32 = env && *env ? atoi(env) != 0 : precision_wants;
    if (x->blas) x->api.cublasSetMathMode(x->blas, x->tf32 ? RXC_CUBLAS_TF32_TENSOR_OP_MATH : RXC_CUBLAS_DEFAULT_MATH);
}

static int build(CudaExec *x, const Program *p, int ordinal, Error *err) {
    if (!cuda_available(err)) return error_prefix(err, "cuda requested but no GPU");
    if (cuda_api_load(&x->api, CUDA_LIB_DRIVER | CUDA_LIB_NVRTC | CUDA_LIB_CUBLAS, err)) return -1;
    CU_TRY(x, cuInit(0));
    char warning[512];
    if (cuda_check_versions(&x->api, warning, sizeof warning, err)) return -1;
    if (warning[0]) fprintf(stderr, "%s\n", warning);
    CU_TRY(x, cuDeviceGet(&x->dev, ordinal));
    char devname[96] = "";
    x->api.cuDeviceGetName(devname, sizeof devname, x->dev);
    CU_TRY(x, cuDevicePrimaryCtxRetain(&x->ctx, x->dev));
    x->ctx_retained = true;
    CU_TRY(x, cuCtxSetCurrent(x->ctx));
    int sm = cuda_device_sm(&x->api, ordinal, err), driver = cuda_driver_version(&x->api);
    if (sm < 0) return -1;
    snprintf(x->name, sizeof x->name, "cuda:%d (%s, sm_%d, driver %d.%d)", ordinal, devname, sm, driver / 1000,
             driver % 1000 / 10);
    bool any_conv = false;
    for (int ph = 0; ph < PHASE_COUNT; ph++)
        for (int i = 0; i < p->n_steps[ph]; i++) any_conv |= p->steps[ph][i].kind == STEP_CONV;
    if (p->module && (p->module->n > 0 || any_conv) && load_kernels(x, p, sm, err)) return -1;

    /* the arena: every space, scratch, scalars, cuBLAS workspace, landing areas */
    size_t scratch_floats = 0;
    for (int i = 0; p->module && i < p->module->n; i++)
        if ((size_t)x->launches[i].scratch_floats > scratch_floats) scratch_floats = (size_t)x->launches[i].scratch_floats;
    for (int i = 0; i < x->convs.n; i++)
        if ((size_t)x->convs.kernels[i].launch.scratch_floats > scratch_floats)
            scratch_floats = (size_t)x->convs.kernels[i].launch.scratch_floats;
    size_t offset = 0, space_off[SPACE_COUNT], landing_off[SPACE_COUNT] = {0}, sc_off[PHASE_COUNT];
    for (int s = 0; s < SPACE_COUNT; s++) {
        x->space_bytes[s] = p->space_bytes[s];
        space_off[s] = offset;
        offset += round_up((size_t)p->space_bytes[s]);
    }
    size_t scratch_off = offset;
    offset += round_up(scratch_floats * sizeof(float));
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        sc_off[ph] = offset;
        offset += round_up(SC_COUNT * sizeof(double));
    }
    size_t ws_off = offset;
    offset += BLAS_WORKSPACE;
    for (int s = 0; s < SPACE_COUNT; s++)
        if (is_staged((BufSpace)s)) {
            landing_off[s] = offset;
            offset += round_up((size_t)p->space_bytes[s]);
        }
    x->arena_bytes = offset;
    CUresult r = x->api.cuMemAlloc(&x->arena, x->arena_bytes);
    if (r != 0) {
        size_t free_b = 0, total_b = 0;
        x->api.cuMemGetInfo(&free_b, &total_b);
        x->arena = 0;
        return cuda_error_set(err, &x->api, r, "cannot allocate the %.1f MiB device arena (%.1f MiB free of %.1f)",
                              (double)x->arena_bytes / 1048576.0, (double)free_b / 1048576.0,
                              (double)total_b / 1048576.0);
    }
    for (int s = 0; s < SPACE_COUNT; s++) {
        x->space[s] = x->arena + space_off[s];
        if (is_staged((BufSpace)s)) x->landing[s] = x->arena + landing_off[s];
    }
    x->scratch = x->arena + scratch_off;
    for (int ph = 0; ph < PHASE_COUNT; ph++) x->sc_dev[ph] = x->arena + sc_off[ph];
    x->blas_ws = x->arena + ws_off;
    if (getenv("RXC_VERBOSE"))
        fprintf(stderr, "rxc: cuda arena %.1f MiB (plan peak %.1f MiB)\n", (double)x->arena_bytes / 1048576.0,
                (double)p->peak_bytes / 1048576.0);

    CU_TRY(x, cuStreamCreate(&x->stream, RXC_CU_STREAM_NON_BLOCKING));
    CU_TRY(x, cuStreamCreate(&x->copy_stream, RXC_CU_STREAM_NON_BLOCKING));
    CU_TRY(x, cuEventCreate(&x->input_ready, RXC_CU_EVENT_DISABLE_TIMING));
    CU_TRY(x, cuEventCreate(&x->landing_free, RXC_CU_EVENT_DISABLE_TIMING));
    for (int ph = 0; ph < PHASE_COUNT; ph++) CU_TRY(x, cuEventCreate(&x->phase_done[ph], RXC_CU_EVENT_DISABLE_TIMING));
    /* gradients and optimizer state start at zero, as on the CPU */
    CU_TRY(x, cuMemsetD8Async(x->arena, 0, x->arena_bytes, x->stream));
    CU_TRY(x, cuStreamSynchronize(x->stream));
    void *host = NULL;
    CU_TRY(x, cuMemAllocHost(&host, PHASE_COUNT * SC_COUNT * sizeof(double)));
    x->sc_host = host;
    memset(x->sc_host, 0, PHASE_COUNT * SC_COUNT * sizeof(double));
    for (int s = 0; s < SPACE_COUNT; s++)
        if (is_staged((BufSpace)s) && p->space_bytes[s] > 0) {
            CU_TRY(x, cuMemAllocHost(&host, (size_t)p->space_bytes[s]));
            x->staging[s] = host;
        }

    cublasStatus_t bs = x->api.cublasCreate(&x->blas);
    if (bs != 0) return cublas_error_set(err, bs, "cuBLAS initialisation (cublasCreate) failed");
    if ((bs = x->api.cublasSetStream(x->blas, x->stream)) != 0 ||
        (bs = x->api.cublasSetWorkspace(x->blas, (void *)(uintptr_t)x->blas_ws, BLAS_WORKSPACE)) != 0)
        return cublas_error_set(err, bs, "cuBLAS initialisation (stream, workspace) failed");
    apply_tf32(x, false);
    const char *no_graph = getenv("RXC_NO_GRAPH"), *graphs = getenv("RXC_CUDA_GRAPHS");
    x->use_graphs = !(no_graph && *no_graph && strcmp(no_graph, "0")) && !(graphs && !strcmp(graphs, "0"));
    if (cuda_profile_open(&x->profile, &x->api, p, x->name, devname, sm, err)) return -1;
    return resolve_steps(x, err);
}

Executor *exec_cuda_new(const Program *p, int device, Error *err) {
    CudaExec *x = xcalloc(1, sizeof *x);
    Executor *e = &x->base;
    e->impl = x;
    e->program = p;
    e->run = cuda_run;
    e->read = cuda_read;
    e->write = cuda_write;
    e->host_ptr = cuda_host_ptr;
    e->free = cuda_free;
    e->device_name = x->name;
    x->ordinal = device;
    if (build(x, p, device, err) != 0) {
        cuda_free(e);
        return NULL;
    }
    return e;
}

void exec_cuda_set_tf32(Executor *e, int on) {
    if (e && e->run == cuda_run) apply_tf32(e->impl, on != 0);
}
