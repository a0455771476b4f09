/*
 * nccl_checks.c — the fake NCCL's own checks (tests/cuda/fake_nccl.cc),
 * driven through cuda_api.c and nccl_api.c as the GPU executor drives the
 * real libraries: two processes (ranks), each with the fake GPU, a kernel
 * producing a buffer on the compute stream, then an in-place ncclAllReduce.
 *   sums            on the compute stream: the sum, on both ranks, inside a
 *                   captured graph replayed twice too
 *   wrong_stream    on the copy stream, no event wait after the kernel: the
 *                   fake must fail it as an unordered access
 *   count_mismatch  rank 1 reduces half the count: both ranks must fail
 * Usage: nccl_checks SCENARIO RANK IDFILE — rank 0 writes the uniqueId to
 * IDFILE (MPI's broadcast in rxc), rank 1 waits for it. Exit 0 when the
 * scenario behaved as it must; rank 0 prints one PASS/FAIL line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_api.h"
#include "nccl_api.h"

#include "twice_kernel.h"

enum { N = TWICE_N };

static int exchange_id(int rank, const char *path, ncclUniqueId *id, NcclApi *nc) {
    if (rank == 0) {
        if (nc->ncclGetUniqueId(id)) return -1;
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(id, sizeof *id, 1, f) != 1) return -1;
        fclose(f);
        return rename(tmp, path);
    }
    for (int i = 0; i < 6000; i++) {
        FILE *f = fopen(path, "rb");
        if (f) {
            size_t got = fread(id, sizeof *id, 1, f);
            fclose(f);
            if (got == 1) return 0;
        }
        usleep(10000);
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *scenario = argv[1];
    int rank = atoi(argv[2]);
    Error err = {0};
    CudaApi a = {0};
    NcclApi nc;
    if (cuda_api_load(&a, CUDA_LIB_DRIVER, &err) || nccl_api_load(&nc, &err)) {
        printf("FAIL fake_nccl_%s: %s\n", scenario, err.msg);
        return 1;
    }
    CUdevice dev;
    CUcontext ctx;
    CUstream compute, copy;
    CUmodule module;
    CUfunction twice;
    CUdeviceptr in, out, sc;
    float host[N], got[N];
    for (int i = 0; i < N; i++) host[i] = (float)(i * (rank + 1));
    if (a.cuInit(0) || a.cuDeviceGet(&dev, 0) || a.cuDevicePrimaryCtxRetain(&ctx, dev) || a.cuCtxSetCurrent(ctx) ||
        a.cuStreamCreate(&compute, RXC_CU_STREAM_NON_BLOCKING) || a.cuStreamCreate(&copy, RXC_CU_STREAM_NON_BLOCKING) ||
        a.cuMemAlloc(&in, N * 4) || a.cuMemAlloc(&out, N * 4) || a.cuMemAlloc(&sc, 64) ||
        a.cuModuleLoadData(&module, twice_source) || a.cuModuleGetFunction(&twice, module, "twice")) {
        printf("FAIL fake_nccl_%s: the fake GPU does not set up\n", scenario);
        return 1;
    }
    ncclUniqueId id;
    ncclComm_t comm;
    ncclResult_t r;
    if (exchange_id(rank, argv[3], &id, &nc) || (r = nc.ncclCommInitRank(&comm, 2, id, rank))) {
        printf("FAIL fake_nccl_%s: no communicator\n", scenario);
        return 1;
    }
    void *params[3] = {&in, &out, &sc};
    bool wrong = !strcmp(scenario, "wrong_stream"), mismatch = !strcmp(scenario, "count_mismatch");
    size_t count = mismatch && rank == 1 ? N / 2 : N;
    CUresult e = a.cuMemcpyHtoDAsync(in, host, N * 4, compute);
    if (!e) e = a.cuLaunchKernel(twice, 1, 1, 1, 256, 1, 1, 0, compute, params, NULL);
    void *o = (void *)(uintptr_t)out;
    r = nc.ncclAllReduce(o, o, count, RXC_NCCL_FLOAT32, RXC_NCCL_SUM, comm, wrong ? copy : compute);
    if (!e && !r) e = a.cuStreamSynchronize(wrong ? copy : compute);
    if (!e && !r) e = a.cuMemcpyDtoH(got, out, N * 4);
    bool ok = !e && !r;
    for (int i = 0; ok && i < N; i++) ok = got[i] == 2.0f * (float)i * 3.0f;
    if (ok && !strcmp(scenario, "sums")) {
        /* the same inside a graph, replayed twice: each replay recomputes and sums again */
        CUgraph g;
        CUgraphExec ge;
        e = a.cuStreamBeginCapture(compute, RXC_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        if (!e) e = a.cuLaunchKernel(twice, 1, 1, 1, 256, 1, 1, 0, compute, params, NULL);
        if (!e) r = nc.ncclAllReduce(o, o, N, RXC_NCCL_FLOAT32, RXC_NCCL_SUM, comm, compute);
        CUresult end = a.cuStreamEndCapture(compute, &g);
        if (!e && !r && !end) e = a.cuGraphInstantiateWithFlags(&ge, g, 0);
        for (int k = 0; k < 2 && !e && !r && !end; k++) e = a.cuGraphLaunch(ge, compute);
        if (!e && !r && !end) e = a.cuStreamSynchronize(compute);
        if (!e && !r && !end) e = a.cuMemcpyDtoH(got, out, N * 4);
        ok = !e && !r && !end;
        for (int i = 0; ok && i < N; i++) ok = got[i] == 2.0f * (float)i * 3.0f;
    }
    bool must_fail = wrong || mismatch;
    bool behaved = must_fail ? !ok : ok;
    if (rank == 0) {
        if (behaved) printf("PASS fake_nccl_%s\n", scenario);
        else printf("FAIL fake_nccl_%s: %s (cuda %d, nccl %d)\n", scenario,
                    must_fail ? "the fake accepted a broken all-reduce" : "wrong sums", e, r);
    }
    fflush(stdout);
    _exit(behaved ? 0 : 1); /* a failed stream may hold a worker waiting on the other rank */
}
