/*
 * grad_buckets.h — the gradient all-reduce of data-parallel training, in
 * buckets that start while backward is still running (as PyTorch DDP's
 * Reducer does), on the CPU executor.
 *
 * The plan comes from the Program alone: for each byte of SPACE_GRADS, the
 * last step of PHASE_BACKWARD that references a gradient buffer covering it
 * (GEMM and conv operands, kernel arguments); after that step the bytes are
 * final. The space is cut into contiguous buckets walking down from its end
 * (reverse parameter order: the last layers' gradients are final first),
 * separately for the decayed and the undecayed parameters, which the layout
 * keeps apart. A bucket is ready after the latest step of its bytes; buckets
 * start in the order they become ready, the same on every rank.
 *
 * The executor calls grad_buckets_after_step (ExecHooks.after_step) after
 * every step. When armed (the last micro-batch of an optimizer step), it
 * starts each bucket that became ready with a nonblocking all-reduce, tests
 * the oldest outstanding one (Open MPI progresses only inside MPI calls),
 * and after backward's last step waits for the rest: when run returns,
 * SPACE_GRADS holds the sum over the ranks, which is the mean gradient
 * because each rank's loss gradient was scaled by 1 / the global batch
 * (TrainerConfig.ranks; no pass over the gradients divides by N).
 * The CUDA executor never calls that hook: it asks take_grad_reduce as its
 * backward starts and, when armed, enqueues the same plan's buckets as
 * NCCL all-reduces between its steps (target/cuda/exec_cuda_nccl.h), so
 * that grad_buckets_collect finds the sum done. With RXC_NCCL=off it asks
 * nothing and grad_buckets_collect does one blocking all-reduce through
 * host memory.
 *
 * RXC_GRAD_BUCKETS=off does the blocking all-reduce after backward (for
 * comparison); RXC_BUCKET_MB sets the bucket size (default: an eighth of
 * the gradients, between 1 and 25 MB).
 */
#ifndef RXC_GRAD_BUCKETS_H
#define RXC_GRAD_BUCKETS_H

#include <stdbool.h>
#include <stdint.h>

#include "distributed.h"
#include "executor.h"

typedef struct GradBuckets GradBuckets;

GradBuckets *grad_buckets_new(Dist *d);
void grad_buckets_free(GradBuckets *gb);

/* The hooks to give every executor of the run (ExecHooks.ctx = gb): these
 * buckets, STEP_ALLREDUCE's blocking sum over the ranks (sync_bn), and for
 * a device executor the group, the broadcast and the plan. */
ExecHooks grad_buckets_hooks(GradBuckets *gb);

/* The next backward is the last micro-batch before an update: reduce its
 * gradients as it runs. */
void grad_buckets_arm(GradBuckets *gb);

/* After that backward: SPACE_GRADS of e becomes the sum over ranks, by the
 * buckets (already done) or, where they did not run, by one blocking
 * all-reduce now. Returns 0 or -1. */
int grad_buckets_collect(GradBuckets *gb, Executor *e);

/* The last collected step: seconds the all-reduce cost on this rank's
 * critical path (MPI calls inside backward plus the final waits, or the
 * blocking all-reduce), of which waiting after backward's last step, and
 * the number of buckets (0: blocking). */
typedef struct GradReduceTimes {
    double exposed_seconds;
    double final_wait_seconds;
    int buckets;
} GradReduceTimes;
GradReduceTimes grad_buckets_times(const GradBuckets *gb);

int grad_buckets_after_step(void *ctx, Executor *e, Phase phase, int step, Error *err);

#endif
