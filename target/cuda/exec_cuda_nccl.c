/*
 * exec_cuda_nccl.c — the GPU executor's NCCL communicator and the
 * all-reduces it enqueues (exec_cuda_nccl.h).
 */
#include "exec_cuda_nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

bool cuda_coll_wanted(const ExecHooks *h) {
    const char *mode = getenv("RXC_NCCL");
    if (mode && !strcmp(mode, "off")) return false;
    return h->ranks > 1 && h->broadcast && h->take_grad_reduce && h->grad_bucket_plan;
}

/* One all-reduce per ncclAllReduce call: NCCL takes a size_t count, so no chunking is needed. */
static int enqueue_sum(CudaCollectives *c, CUdeviceptr buf, int64_t n, CUstream s, const char *what, Error *err) {
    if (n <= 0) return 0;
    void *p = (void *)(uintptr_t)buf;
    ncclResult_t r = c->api.ncclAllReduce(p, p, (size_t)n, RXC_NCCL_FLOAT32, RXC_NCCL_SUM, c->comm, s);
    if (r != RXC_NCCL_SUCCESS) {
        c->failed = true;
        return nccl_error_set(err, &c->api, r, "ncclAllReduce of %lld floats (%s)", (long long)n, what);
    }
    c->calls++;
    return 0;
}

int cuda_coll_open(CudaCollectives *c, const ExecHooks *h, const Program *p, int ordinal, Error *err) {
    if (c->open) return 0;
    if (nccl_api_load(&c->api, err) != 0) return -1;
    c->capturable = c->api.version >= RXC_NCCL_GRAPH_CAPTURE_VERSION;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ncclResult_t r = h->rank == 0 ? c->api.ncclGetUniqueId(&id) : RXC_NCCL_SUCCESS;
    /* every rank takes part in the broadcast, rank 0 after a failure too: a
     * rank that returned early would leave the others waiting in it (they
     * then fail in ncclCommInitRank, or the job is aborted first) */
    if (h->broadcast(h->ctx, &id, sizeof id, err) != 0) return error_prefix(err, "sending NCCL's uniqueId to every rank");
    if (r != RXC_NCCL_SUCCESS) return nccl_error_set(err, &c->api, r, "ncclGetUniqueId on rank 0");
    if ((r = c->api.ncclCommInitRank(&c->comm, h->ranks, id, h->rank)) != RXC_NCCL_SUCCESS) {
        c->comm = NULL;
        return nccl_error_set(err, &c->api, r, "ncclCommInitRank (rank %d of %d, cuda:%d)", h->rank, h->ranks, ordinal);
    }
    c->open = true;
    free(c->buckets);
    c->buckets = NULL;
    c->n_buckets = h->grad_bucket_plan(h->ctx, p, &c->buckets);
    if (getenv("RXC_VERBOSE")) fprintf(stderr, "rxc: rank %d of %d joined NCCL on cuda:%d\n", h->rank, h->ranks, ordinal);
    if (h->rank == 0) {
        char v[32];
        nccl_version_text(c->api.version, v, sizeof v);
        fprintf(stderr, "rxc: NCCL %s (%s): %d ranks, gradients summed on the GPU in %d bucket%s during backward, %s\n",
                v, c->api.path, h->ranks, c->n_buckets, c->n_buckets == 1 ? "" : "s",
                c->capturable ? "inside the CUDA graph" : "outside CUDA graphs (NCCL older than 2.9 cannot be captured)");
    }
    return 0;
}

int cuda_coll_after_step(CudaCollectives *c, int step, CUdeviceptr grads, CUstream s, Error *err) {
    if (step < 0) c->next_bucket = 0;
    while (c->next_bucket < c->n_buckets && c->buckets[c->next_bucket].ready <= step) {
        const ExecBucket *b = &c->buckets[c->next_bucket];
        char what[64];
        snprintf(what, sizeof what, "gradient bucket %d of %d", c->next_bucket, c->n_buckets);
        if (enqueue_sum(c, grads + (CUdeviceptr)(b->lo * 4), b->hi - b->lo, s, what, err) != 0) return -1;
        c->next_bucket++;
    }
    return 0;
}

int cuda_coll_sum(CudaCollectives *c, CUdeviceptr buf, int64_t n, CUstream s, Error *err) {
    return enqueue_sum(c, buf, n, s, "BatchNorm sums", err);
}

int cuda_coll_check(CudaCollectives *c, Error *err) {
    if (!c->open) return 0;
    ncclResult_t async = RXC_NCCL_SUCCESS;
    ncclResult_t r = c->api.ncclCommGetAsyncError(c->comm, &async);
    if (r != RXC_NCCL_SUCCESS) {
        c->failed = true;
        return nccl_error_set(err, &c->api, r, "ncclCommGetAsyncError");
    }
    if (async != RXC_NCCL_SUCCESS && async != RXC_NCCL_IN_PROGRESS) {
        c->failed = true;
        return nccl_error_set(err, &c->api, async, "an NCCL all-reduce failed (another rank died or its GPU failed?)");
    }
    return 0;
}

void cuda_coll_close(CudaCollectives *c) {
    if (c->open) {
        if (c->failed) c->api.ncclCommAbort(c->comm);
        else c->api.ncclCommDestroy(c->comm);
    }
    if (c->api.lib && getenv("RXC_VERBOSE")) fprintf(stderr, "rxc: %lld NCCL all-reduces enqueued\n", c->calls);
    free(c->buckets);
    nccl_api_unload(&c->api);
    memset(c, 0, sizeof *c);
}
