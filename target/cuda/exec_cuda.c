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
 * the step's values. RXC_CUDA_GRAPHS=0 turns capture off.
 *
 * GEMMs. Program GEMMs are row-major; cuBLAS is column-major, so
 * C = op(A) op(B) runs as C^T = op(B)^T op(A)^T with the operands swapped.
 * TF32 tensor cores are used for f32 GEMMs when the program's precision
 * asks for it (RXC_TF32=1 forces it on, =0 off); bf16 operands use bf16
 * tensor cores with fp32 accumulation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "exec_cuda.h"
#include "nvrtc_compile.h"
#include "executor.h"
#include "render_cuda.h"
#include "util.h"

enum { ALIGN = 256, BLAS_WORKSPACE = 32 << 20 };

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
    CUmodule module;
    CudaLaunch *launches;
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
    int runs[PHASE_COUNT];
    bool use_graphs;
    CUgraphExec graph[PHASE_COUNT];
    bool graph_failed[PHASE_COUNT];
} CudaExec;

static bool is_staged(BufSpace s) { return s == SPACE_INPUT || s == SPACE_LABELS; }

static int64_t dtype_size(KDType t) { return t == KD_F32 ? 4 : t == KD_BF16 ? 2 : t == KD_U8 ? 1 : 8; }

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

#define CU_TRY(x, call)                                                                                  \
    do {                                                                                                 \
        CUresult r_ = (x)->api.call;                                                                     \
        if (r_ != 0) {                                                                                   \
            error_set(err, "%s: %s (CUDA error %d)", #call, cuda_result_text(&(x)->api, r_), r_); \
            return -1;                                                                                   \
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
    if (st != 0) {
        error_set(err, "cublasGemmStridedBatchedEx (%d x %d x %d, batch %d) failed with status %d", g->m, g->n,
                  g->k, g->batch, st);
        return -1;
    }
    return 0;
}

/* Everything one run of a phase enqueues: scalars, staged input, steps. */
static int enqueue_phase(CudaExec *x, Phase ph, Error *err) {
    const Program *p = x->base.program;
    CU_TRY(x, cuMemcpyHtoDAsync(x->sc_dev[ph], x->sc_host + (size_t)ph * SC_COUNT, SC_COUNT * sizeof(double), x->stream));
    if (ph == PHASE_FORWARD_TRAIN || ph == PHASE_FORWARD_EVAL)
        for (int s = 0; s < SPACE_COUNT; s++)
            if (is_staged((BufSpace)s) && x->space_bytes[s] > 0)
                CU_TRY(x, cuMemcpyDtoDAsync(x->space[s], x->landing[s], (size_t)x->space_bytes[s], x->stream));
    for (int i = 0; i < p->n_steps[ph]; i++) {
        const Step *st = &p->steps[ph][i];
        int rc = st->kind == STEP_KERNEL ? launch_kernel(x, &x->steps[ph][i], err)
                                         : run_gemm(x, &st->gemm, &x->steps[ph][i], err);
        if (rc) {
            return error_append(err, " (step %d of %s: %s)", i,
                                ph == PHASE_BACKWARD ? "backward" : ph == PHASE_UPDATE ? "update" : "forward",
                                st->note ? st->note : "");
        }
    }
    return 0;
}

static int capture_phase(CudaExec *x, Phase ph, Error *err) {
    CUgraph g = NULL;
    CU_TRY(x, cuStreamBeginCapture(x->stream, RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    int rc = enqueue_phase(x, ph, err);
    CUresult r = x->api.cuStreamEndCapture(x->stream, &g);
    if (rc) {
        if (g) x->api.cuGraphDestroy(g);
        return -1;
    }
    if (r != 0) {
        error_set(err, "cuStreamEndCapture: %s", cuda_result_text(&x->api, r));
        return -1;
    }
    r = x->api.cuGraphInstantiateWithFlags(&x->graph[ph], g, 0);
    x->api.cuGraphDestroy(g);
    if (r != 0) {
        x->graph[ph] = NULL;
        error_set(err, "cuGraphInstantiate: %s", cuda_result_text(&x->api, r));
        return -1;
    }
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
    int n = x->runs[ph]++;
    if (x->use_graphs && !x->graph_failed[ph] && n >= 1 && !x->graph[ph]) {
        Error why = {0};
        if (capture_phase(x, ph, &why) != 0) {
            x->graph_failed[ph] = true;
            if (getenv("RXC_VERBOSE")) fprintf(stderr, "rxc: cuda graph capture failed, running steps directly: %s\n",
                                               why.msg);
        }
    }
    if (x->graph[ph]) CU_TRY(x, cuGraphLaunch(x->graph[ph], x->stream));
    else if (enqueue_phase(x, ph, err)) return -1;
    CU_TRY(x, cuEventRecord(x->phase_done[ph], x->stream));
    if (forward) CU_TRY(x, cuEventRecord(x->landing_free, x->stream));
    return 0;
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
        for (int ph = 0; ph < PHASE_COUNT; ph++) {
            if (x->graph[ph]) x->api.cuGraphExecDestroy(x->graph[ph]);
            if (x->phase_done[ph]) x->api.cuEventDestroy(x->phase_done[ph]);
        }
        if (x->blas) x->api.cublasDestroy(x->blas);
        if (x->module) x->api.cuModuleUnload(x->module);
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

static int resolve_steps(CudaExec *x, Error *err) {
    const Program *p = x->base.program;
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        x->steps[ph] = xcalloc((size_t)(p->n_steps[ph] ? p->n_steps[ph] : 1), sizeof(CudaStep));
        for (int i = 0; i < p->n_steps[ph]; i++) {
            const Step *st = &p->steps[ph][i];
            CudaStep *cs = &x->steps[ph][i];
            if (st->kind == STEP_CONV) {
                error_set(err,
                          "step %s is a direct conv (STEP_CONV), which only the CPU executor runs: compile "
                          "the program for the CUDA target (target_cuda)", st->note ? st->note : "?");
                return -1;
            }
            if (st->kind == STEP_ALLREDUCE) {
                error_set(err, "step %s all-reduces across processes inside a phase (sync_bn), which only the CPU "
                               "executor does so far: train with sync_bn false on the GPU", st->note ? st->note : "?");
                return -1;
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
            CUresult r = x->api.cuModuleGetFunction(&cs->fn, x->module, k->name);
            if (r == 0 && cs->launch->has_finish) {
                char *fin = xasprintf("%s_finish", k->name);
                r = x->api.cuModuleGetFunction(&cs->finish, x->module, fin);
                free(fin);
            }
            if (r != 0) {
                error_set(err, "kernel %s is missing from the cubin: %s", k->name, cuda_result_text(&x->api, r));
                return -1;
            }
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
                r = x->api.cuModuleGetFunction(&cs->vec4, x->module, v4);
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

static int build(CudaExec *x, const Program *p, int ordinal, Error *err) {
    if (!cuda_available(err)) return error_prefix(err, "cuda requested but no GPU");
    if (cuda_api_load(&x->api, CUDA_LIB_DRIVER | CUDA_LIB_NVRTC | CUDA_LIB_CUBLAS, err)) return -1;
    CU_TRY(x, cuInit(0));
    CU_TRY(x, cuDeviceGet(&x->dev, ordinal));
    char devname[96] = "";
    x->api.cuDeviceGetName(devname, sizeof devname, x->dev);
    snprintf(x->name, sizeof x->name, "cuda:%d %s", ordinal, devname);
    CU_TRY(x, cuDevicePrimaryCtxRetain(&x->ctx, x->dev));
    x->ctx_retained = true;
    CU_TRY(x, cuCtxSetCurrent(x->ctx));
    int sm = cuda_device_sm(&x->api, ordinal, err);
    if (sm < 0) return -1;

    /* kernels */
    if (p->module && p->module->n > 0) {
        char *src = render_cuda(p->module, &x->launches);
        NvrtcOptions opt = {.sm = sm, .use_cache = true};
        NvrtcModule mod;
        int rc = nvrtc_compile(&x->api, src, &opt, &mod, err);
        free(src);
        if (rc) return -1;
        if (getenv("RXC_VERBOSE"))
            fprintf(stderr, "rxc: %d CUDA kernels for sm_%d %s in %.3f s\n", p->module->n, sm,
                    mod.from_cache ? "loaded from the cubin cache" : "compiled by NVRTC", mod.seconds);
        CUresult r = x->api.cuModuleLoadData(&x->module, mod.cubin);
        nvrtc_module_free(&mod);
        if (r != 0) {
            error_set(err, "cuModuleLoadData: %s", cuda_result_text(&x->api, r));
            return -1;
        }
    }

    /* the arena: every space, scratch, scalars, cuBLAS workspace, landing areas */
    size_t scratch_floats = 0;
    for (int i = 0; p->module && i < p->module->n; i++)
        if ((size_t)x->launches[i].scratch_floats > scratch_floats) scratch_floats = (size_t)x->launches[i].scratch_floats;
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
        error_set(err, "cannot allocate the %.1f MiB device arena (%.1f MiB free of %.1f): %s",
                  (double)x->arena_bytes / 1048576.0, (double)free_b / 1048576.0, (double)total_b / 1048576.0,
                  cuda_result_text(&x->api, r));
        x->arena = 0;
        return -1;
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

    if (x->api.cublasCreate(&x->blas) != 0 || x->api.cublasSetStream(x->blas, x->stream) != 0 ||
        x->api.cublasSetWorkspace(x->blas, (void *)(uintptr_t)x->blas_ws, BLAS_WORKSPACE) != 0) {
        error_set(err, "cuBLAS initialisation failed");
        return -1;
    }
    const char *tf32 = getenv("RXC_TF32");
    x->tf32 = tf32 ? atoi(tf32) != 0 : false;
    const char *graphs = getenv("RXC_CUDA_GRAPHS");
    x->use_graphs = !(graphs && !strcmp(graphs, "0"));
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
    if (e && e->run == cuda_run) ((CudaExec *)e->impl)->tf32 = on != 0;
}
