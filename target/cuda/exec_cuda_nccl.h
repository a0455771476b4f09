/*
 * exec_cuda_nccl.h — the GPU executor's collectives: data-parallel
 * gradient and SyncBatchNorm sums over the ranks with NCCL, on the compute
 * stream, so that they are part of the phases' CUDA graphs.
 *
 * The communicator. When the executor's hooks (executor.h) name a process
 * group of more than one rank, the first phase that needs a collective
 * opens it: rank 0 asks NCCL for a uniqueId, the hooks' broadcast carries
 * it over MPI, and every rank joins with ncclCommInitRank on its own
 * device. Every rank runs the same phases in the same order, so that first
 * use is the same point on every rank.
 *
 * Gradients. A backward that the runtime hands over (take_grad_reduce: the
 * last micro-batch before an update) enqueues one in-place ncclAllReduce
 * (sum, fp32) per gradient bucket right after the backward step that
 * finishes the bucket (the plan of grad_buckets.h), so the reduction of the
 * last layers' gradients overlaps the computation of the first layers'. A
 * sum, not ncclAvg: each rank's loss gradient is already scaled by 1 / the
 * global batch (trainer.h), as on the CPU path.
 *
 * SyncBatchNorm. A STEP_ALLREDUCE becomes an in-place ncclAllReduce of its
 * elements at its place in the phase.
 *
 * Graphs. NCCL 2.9 and newer may be captured: the all-reduces are then
 * nodes of the phase's graph. With an older NCCL the phases that hold one
 * run without a graph (a note says so once).
 *
 * RXC_NCCL=off leaves the gradients to the runtime's host path (staged
 * through host memory and MPI) for comparison; sync_bn then cannot run on
 * the GPU.
 */
#ifndef RXC_EXEC_CUDA_NCCL_H
#define RXC_EXEC_CUDA_NCCL_H

#include <stdbool.h>

#include "cuda_api.h"
#include "executor.h"
#include "nccl_api.h"

typedef struct CudaCollectives {
    NcclApi api;
    ncclComm_t comm;
    bool open;            /* the communicator exists */
    bool failed;          /* a collective failed: abort rather than destroy */
    bool capturable;      /* NCCL >= 2.9 */
    ExecBucket *buckets;  /* the gradient buckets, in start order */
    int n_buckets;
    int next_bucket;      /* while enqueueing a reducing backward */
    long long calls;      /* all-reduces enqueued (RXC_VERBOSE) */
} CudaCollectives;

/* The hooks name a group of several ranks and RXC_NCCL is not off. */
bool cuda_coll_wanted(const ExecHooks *h);

/* Opens the communicator on the current context's device (once; later
 * calls return 0), with the bucket plan of p. Returns 0 or -1. */
int cuda_coll_open(CudaCollectives *c, const ExecHooks *h, const Program *p, int ordinal, Error *err);

/* A reducing backward: call with step -1 before its first step, then after
 * every step; enqueues the buckets that became final on stream s. */
int cuda_coll_after_step(CudaCollectives *c, int step, CUdeviceptr grads, CUstream s, Error *err);

/* In place on stream s: n floats at buf summed over the ranks. */
int cuda_coll_sum(CudaCollectives *c, CUdeviceptr buf, int64_t n, CUstream s, Error *err);

/* An asynchronous NCCL error (a peer that failed), as an error; 0 if none. */
int cuda_coll_check(CudaCollectives *c, Error *err);

/* Destroys the communicator, or aborts it after a failure. */
void cuda_coll_close(CudaCollectives *c);

#endif
