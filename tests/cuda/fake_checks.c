/*
 * fake_checks.c — the fake GPU's own checks (tests/cuda/fake_gpu.cc), driven
 * through cuda_api.c as the executor drives the real libraries: cuBLAS
 * argument checks and tensor-core eligibility, and stream ordering with
 * deliberately broken programs that the fake must catch (a kernel reading a
 * copy stream's data with no event wait, a copy overwriting what a kernel
 * on another stream still reads, the host reading a result before
 * synchronising, a capture waiting on an outside event) next to the correct
 * pattern the executor's input staging uses; and the documented contract of
 * cuEventElapsedTime that RXC_PROFILE's timing relies on.
 *
 * Usage: fake_checks SCENARIO      one scenario per process, since an
 * unordered access is a sticky error, as a fault on a GPU is. Prints one
 * PASS/FAIL line per case (tests/harness.h). Needs LD_LIBRARY_PATH and
 * CUDA_HOME pointing at the fake, and RXC_FAKE_GPU_EMU_INCLUDE.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "cuda_api.h"

#include "twice_kernel.h"

enum { N = TWICE_N };

typedef struct Rig {
    CudaApi api;
    CUcontext ctx;
    CUstream compute, copy;
    CUevent ready;
    CUmodule module;
    CUfunction twice;
    CUdeviceptr landing, out, sc;
    float host[N];
} Rig;

static int rig_open(Rig *r, bool with_kernel, Error *err) {
    memset(r, 0, sizeof *r);
    if (cuda_api_load(&r->api, CUDA_LIB_DRIVER | CUDA_LIB_CUBLAS, err)) return -1;
    CudaApi *a = &r->api;
    CUdevice dev;
    if (a->cuInit(0) || a->cuDeviceGet(&dev, 0) || a->cuDevicePrimaryCtxRetain(&r->ctx, dev) ||
        a->cuCtxSetCurrent(r->ctx) || a->cuStreamCreate(&r->compute, RXC_CU_STREAM_NON_BLOCKING) ||
        a->cuStreamCreate(&r->copy, RXC_CU_STREAM_NON_BLOCKING) ||
        a->cuEventCreate(&r->ready, RXC_CU_EVENT_DISABLE_TIMING) || a->cuMemAlloc(&r->landing, N * 4) ||
        a->cuMemAlloc(&r->out, N * 4) || a->cuMemAlloc(&r->sc, 64)) {
        error_set(err, "the fake GPU does not set up");
        return -1;
    }
    for (int i = 0; i < N; i++) r->host[i] = (float)i;
    if (with_kernel && (a->cuModuleLoadData(&r->module, twice_source) || a->cuModuleGetFunction(&r->twice, r->module, "twice"))) {
        error_set(err, "the test kernel does not load");
        return -1;
    }
    return 0;
}

static CUresult launch_twice(Rig *r) {
    void *params[3] = {&r->landing, &r->out, &r->sc};
    return r->api.cuLaunchKernel(r->twice, 1, 1, 1, 256, 1, 1, 0, r->compute, params, NULL);
}

/* Copy stream fills the landing area; the compute stream's kernel reads it,
 * with (ordered) or without the event wait. */
static CUresult staged_kernel(Rig *r, bool wait) {
    CudaApi *a = &r->api;
    CUresult e = a->cuMemcpyHtoDAsync(r->landing, r->host, N * 4, r->copy);
    if (!e) e = a->cuEventRecord(r->ready, r->copy);
    if (!e && wait) e = a->cuStreamWaitEvent(r->compute, r->ready, 0);
    if (!e) e = launch_twice(r);
    if (!e) e = a->cuStreamSynchronize(r->compute);
    CUresult e2 = a->cuStreamSynchronize(r->copy);
    return e ? e : e2;
}

static void expect_caught(const char *name, CUresult e, const char *what) {
    harness_check(name, e != 0, "the fake GPU did not catch %s", what);
}

/* The documented contract of cuEventElapsedTime (RXC_PROFILE's timer):
 * NULL when the fake keeps it, else what broke (*got: the last answer). */
static const char *events_contract(Rig *r, int *got_out) {
    CudaApi *a = &r->api;
    CUevent t0 = NULL, t1 = NULL, untimed = NULL, in_capture = NULL;
    float ms = -1;
    const char *broken = NULL;
    int got = 0;
    if (a->cuEventCreate(&t0, 0) || a->cuEventCreate(&t1, 0) || a->cuEventCreate(&in_capture, 0) ||
        a->cuEventCreate(&untimed, RXC_CU_EVENT_DISABLE_TIMING) || staged_kernel(r, true))
        broken = "the events or the first kernel do not set up";
    else if ((got = a->cuEventElapsedTime(&ms, t0, t1)) != RXC_CUDA_ERROR_INVALID_HANDLE)
        broken = "events never recorded: want CUDA_ERROR_INVALID_HANDLE";
    else if (a->cuEventRecord(t0, r->compute) || launch_twice(r) || a->cuEventRecord(t1, r->compute) ||
             a->cuEventRecord(untimed, r->compute))
        broken = "recording around a kernel failed";
    else if ((got = a->cuEventElapsedTime(&ms, t0, t1)) != RXC_CUDA_ERROR_NOT_READY)
        broken = "before the host waited for the end event: want CUDA_ERROR_NOT_READY";
    else if (a->cuEventSynchronize(t1) || (got = a->cuEventElapsedTime(&ms, t0, t1)) != 0 || !(ms >= 0))
        broken = "after cuEventSynchronize: want CUDA_SUCCESS and a time >= 0";
    else if ((got = a->cuEventElapsedTime(&ms, t0, untimed)) != RXC_CUDA_ERROR_INVALID_HANDLE)
        broken = "an event created with CU_EVENT_DISABLE_TIMING: want CUDA_ERROR_INVALID_HANDLE";
    else if (launch_twice(r) || a->cuEventRecord(t1, r->compute) ||
             (got = a->cuEventElapsedTime(&ms, t0, t1)) != RXC_CUDA_ERROR_NOT_READY)
        broken = "t1 recorded again and not waited for (its latest record counts): want CUDA_ERROR_NOT_READY";
    else if (a->cuStreamSynchronize(r->compute) || (got = a->cuEventElapsedTime(&ms, t0, t1)) != 0)
        broken = "after synchronising the stream: want CUDA_SUCCESS";
    else {
        CUgraph g = NULL;
        if (a->cuStreamBeginCapture(r->compute, RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL) ||
            a->cuEventRecord(in_capture, r->compute))
            broken = "recording inside a capture failed";
        a->cuStreamEndCapture(r->compute, &g);
        if (g) a->cuGraphDestroy(g);
        if (!broken && (got = a->cuEventElapsedTime(&ms, in_capture, t1)) != RXC_CUDA_ERROR_INVALID_HANDLE)
            broken = "an event recorded only inside a capture: want CUDA_ERROR_INVALID_HANDLE";
    }
    CUevent all[4] = {t0, t1, untimed, in_capture};
    for (int i = 0; i < 4; i++)
        if (all[i]) a->cuEventDestroy(all[i]);
    *got_out = got;
    return broken;
}

static void scenario_streams(const char *which) {
    Rig r;
    Error err = {0};
    char name[96];
    snprintf(name, sizeof name, "fake_gpu_%s", which);
    bool kernel = strcmp(which, "capture_external_wait") != 0;
    if (rig_open(&r, kernel, &err)) {
        harness_fail(name, "%s", err.msg);
        return;
    }
    CudaApi *a = &r.api;
    if (!strcmp(which, "ordered_staging_passes")) {
        float got[N];
        CUresult e = staged_kernel(&r, true);
        if (!e) e = a->cuMemcpyDtoH(got, r.out, sizeof got);
        bool right = !e;
        for (int i = 0; right && i < N; i++) right = got[i] == 2.0f * (float)i;
        harness_check(name, right, "the ordered program failed (CUDA error %d) or computed wrong values", e);
    } else if (!strcmp(which, "catches_kernel_without_event_wait")) {
        expect_caught(name, staged_kernel(&r, false), "a kernel reading the copy stream's data with no event wait");
    } else if (!strcmp(which, "catches_copy_over_unfinished_reads")) {
        /* the kernel reads the landing area; the next upload overwrites it
         * without waiting for the compute stream (exec_cuda's landing_free) */
        CUresult e = staged_kernel(&r, true);
        if (e) {
            harness_fail(name, "the ordered first half failed (CUDA error %d)", e);
            return;
        }
        e = launch_twice(&r);
        if (!e) e = a->cuMemcpyHtoDAsync(r.landing, r.host, N * 4, r.copy);
        CUresult e1 = a->cuStreamSynchronize(r.copy), e2 = a->cuStreamSynchronize(r.compute);
        expect_caught(name, e ? e : e1 ? e1 : e2, "a copy overwriting data a kernel on another stream reads");
    } else if (!strcmp(which, "catches_host_read_before_sync")) {
        float got[N];
        CUresult e = staged_kernel(&r, true);
        if (!e) e = launch_twice(&r);
        if (!e) e = a->cuMemcpyDtoH(got, r.out, sizeof got); /* the stream was not synchronised */
        /* whichever ran first, the error shows at the copy or at the next synchronisation */
        CUresult e2 = a->cuStreamSynchronize(r.compute);
        expect_caught(name, e ? e : e2, "a synchronous read of a result before synchronising its stream");
    } else if (!strcmp(which, "events_follow_the_contract")) {
        int got = 0;
        const char *broken = events_contract(&r, &got);
        harness_check(name, !broken, "%s (got CUDA error %d)", broken ? broken : "", got);
    } else if (!strcmp(which, "capture_external_wait")) {
        CUresult e = a->cuMemcpyHtoDAsync(r.landing, r.host, N * 4, r.copy);
        if (!e) e = a->cuEventRecord(r.ready, r.copy);
        if (!e) e = a->cuStreamBeginCapture(r.compute, RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        CUresult w = e ? e : a->cuStreamWaitEvent(r.compute, r.ready, 0);
        CUgraph g = NULL;
        a->cuStreamEndCapture(r.compute, &g);
        if (g) a->cuGraphDestroy(g);
        snprintf(name, sizeof name, "fake_gpu_catches_capture_waiting_on_outside_event");
        expect_caught(name, w, "a captured wait on an event recorded outside the capture");
    } else {
        harness_fail(name, "no such scenario");
    }
}

/* ---- cuBLAS ----------------------------------------------------------------- */

typedef struct Gemm {
    int ta, tb, m, n, k, at, bt, ct, lda, ldb, ldc, batch, compute;
    long long sa, sb, sc;
    size_t offset; /* bytes added to every pointer */
} Gemm;

static int run_gemm(Rig *r, cublasHandle_t h, Gemm g, CUdeviceptr buf) {
    float alpha = 1, beta = 0;
    const void *p = (const void *)(uintptr_t)(buf + g.offset);
    return r->api.cublasGemmStridedBatchedEx(h, g.ta, g.tb, g.m, g.n, g.k, &alpha, p, g.at, g.lda, g.sa, p, g.bt, g.ldb,
                                             g.sb, &beta, (void *)p, g.ct, g.ldc, g.sc, g.batch, g.compute,
                                             RXC_CUBLAS_GEMM_DEFAULT);
}

static void scenario_blas(void) {
    Rig r;
    Error err = {0};
    if (rig_open(&r, false, &err)) {
        harness_fail("fake_cublas_rejects_invalid_arguments", "%s", err.msg);
        harness_fail("fake_cublas_strict_tensor_cores", "%s", err.msg);
        return;
    }
    CudaApi *a = &r.api;
    cublasHandle_t h;
    CUdeviceptr buf;
    if (a->cublasCreate(&h) || a->cublasSetStream(h, r.compute) || a->cuMemAlloc(&buf, 1 << 20)) {
        harness_fail("fake_cublas_rejects_invalid_arguments", "cuBLAS does not set up");
        return;
    }
    const int F = RXC_CUDA_R_32F, B = RXC_CUDA_R_16BF, C32 = RXC_CUBLAS_COMPUTE_32F, TF = RXC_CUBLAS_COMPUTE_32F_FAST_TF32;
    /* column-major 16x8 = (16x4)(4x8) in fp32: valid */
    const Gemm ok = {0, 0, 16, 8, 4, F, F, F, 16, 4, 16, 1, C32, 0, 0, 0, 0};
    struct {
        const char *what;
        Gemm g;
        int status;
    } cases[] = {
        {"a valid fp32 GEMM", ok, 0},
        {"m < 0", {0, 0, -1, 8, 4, F, F, F, 16, 4, 16, 1, C32, 0, 0, 0, 0}, 7},
        {"lda < m (A not transposed)", {0, 0, 16, 8, 4, F, F, F, 8, 4, 16, 1, C32, 0, 0, 0, 0}, 7},
        {"lda < k (A transposed)", {1, 0, 16, 8, 4, F, F, F, 2, 4, 16, 1, C32, 0, 0, 0, 0}, 7},
        {"ldb < k", {0, 0, 16, 8, 4, F, F, F, 16, 2, 16, 1, C32, 0, 0, 0, 0}, 7},
        {"ldb < n (B transposed)", {0, 1, 16, 8, 4, F, F, F, 16, 4, 16, 1, C32, 0, 0, 0, 0}, 7},
        {"ldc < m", {0, 0, 16, 8, 4, F, F, F, 16, 4, 8, 1, C32, 0, 0, 0, 0}, 7},
        {"batchCount < 0", {0, 0, 16, 8, 4, F, F, F, 16, 4, 16, -1, C32, 0, 0, 0, 0}, 7},
        {"bf16 A/B with bf16 C, COMPUTE_32F", {0, 0, 16, 8, 8, B, B, B, 16, 8, 16, 1, C32, 0, 0, 0, 0}, 0},
        {"bf16 A/B with f32 C, COMPUTE_32F", {0, 0, 16, 8, 8, B, B, F, 16, 8, 16, 1, C32, 0, 0, 0, 0}, 0},
        {"f32 with FAST_TF32", {0, 0, 16, 8, 4, F, F, F, 16, 4, 16, 1, TF, 0, 0, 0, 0}, 0},
        {"bf16 A/B with FAST_TF32 (f32 only)", {0, 0, 16, 8, 8, B, B, B, 16, 8, 16, 1, TF, 0, 0, 0, 0}, 15},
        {"f32 A with bf16 B", {0, 0, 16, 8, 4, F, B, F, 16, 8, 16, 1, C32, 0, 0, 0, 0}, 15},
        {"f32 A/B with bf16 C", {0, 0, 16, 8, 4, F, F, B, 16, 4, 16, 1, C32, 0, 0, 0, 0}, 15},
        /* a 1x1 stride-2 conv's data gradient (conv_strided.c): one A for the batch (strideA 0),
         * each C the strided pixels of one input row, ldc = 2 x 16 channels, rows 2 x 8 pixels apart */
        {"strided rows: A broadcast, C rows apart", {0, 0, 16, 4, 8, B, B, B, 16, 8, 32, 3, C32, 0, 32, 256, 0}, 0},
        {"the batch's C matrices overlap", {0, 0, 16, 4, 8, B, B, B, 16, 8, 32, 3, C32, 0, 32, 16, 0}, 7},
    };
    char bad[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = run_gemm(&r, h, cases[i].g, buf);
        if (st != cases[i].status && !bad[0])
            snprintf(bad, sizeof bad, "%s: status %d, want %d", cases[i].what, st, cases[i].status);
    }
    CUresult e = a->cuStreamSynchronize(r.compute);
    if (!bad[0] && e) snprintf(bad, sizeof bad, "the valid GEMMs failed when run (CUDA error %d)", e);
    harness_check("fake_cublas_rejects_invalid_arguments", !bad[0], "%s", bad);

    /* bf16 with k = 36 per group (72 B strides), as a grouped conv's GEMM:
     * valid but not tensor-core eligible; RXC_FAKE_GPU_STRICT_TC makes it an error */
    Gemm grouped = {0, 0, 8, 16, 36, B, B, B, 8, 36, 8, 4, C32, 8 * 36, 36 * 16, 8 * 16, 0};
    Gemm aligned = {0, 0, 8, 16, 40, B, B, B, 8, 40, 8, 4, C32, 8 * 40, 40 * 16, 8 * 16, 0};
    Gemm misaligned = aligned;
    misaligned.offset = 8;
    setenv("RXC_FAKE_GPU_STRICT_TC", "1", 1);
    int s_grouped = run_gemm(&r, h, grouped, buf), s_aligned = run_gemm(&r, h, aligned, buf),
        s_mis = run_gemm(&r, h, misaligned, buf);
    unsetenv("RXC_FAKE_GPU_STRICT_TC");
    int s_lenient = run_gemm(&r, h, grouped, buf);
    e = a->cuStreamSynchronize(r.compute);
    harness_check("fake_cublas_strict_tensor_cores", s_grouped == 15 && s_aligned == 0 && s_mis == 15 && s_lenient == 0 && !e,
                  "strict: k=36 status %d (want 15), k=40 status %d (want 0), pointer +8 B status %d (want 15); "
                  "lenient k=36 status %d (want 0); run: CUDA error %d",
                  s_grouped, s_aligned, s_mis, s_lenient, e);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fake_checks blas|SCENARIO\n");
        return 2;
    }
    if (!strcmp(argv[1], "blas")) scenario_blas();
    else scenario_streams(argv[1]);
    return harness_status();
}
