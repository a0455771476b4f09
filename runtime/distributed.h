/*
 * distributed.h — data-parallel training across processes over MPI (the CPU
 * path of issue 14): whether this process was started by a launcher, the
 * communicator, and the collectives the training loop and `rxc step` use.
 *
 * Launch: a process counts as launched when mpirun (OMPI_COMM_WORLD_SIZE),
 * a PMI/PMIx launcher (PMI_SIZE, PMIX_RANK) or Slurm's srun (SLURM_NTASKS
 * with SLURM_STEP_ID and SLURM_PROCID) set its environment. `--distributed
 * auto` (the default) then initialises MPI; a launch of one process stays
 * single-process without touching MPI. `off` ignores the launcher (each
 * process trains alone), `on` requires a launcher and libmpi.
 *
 * A NULL Dist* is the single process: every function below accepts it and
 * then behaves as rank 0 of 1 (collectives do nothing).
 *
 * Semantics (docs/guide.md, "Training on several processes"): the file's
 * batch is the global batch, each rank takes batch/N; each rank's loss
 * gradient is scaled by 1 / the global batch, so the sum of SPACE_GRADS
 * over the ranks (in buckets during backward, grad_buckets.h) is the mean
 * gradient; BatchNorm statistics are per rank (or global with sync_bn), and rank 0's running statistics are
 * broadcast after every update (as DDP's broadcast_buffers does), so that
 * every rank validates with, and rank 0 saves, the same buffers.
 */
#ifndef RXC_DISTRIBUTED_H
#define RXC_DISTRIBUTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor.h"
#include "error.h"

typedef enum DistMode { DIST_AUTO, DIST_ON, DIST_OFF } DistMode;

typedef struct Dist Dist;

/* "auto", "on" or "off" -> *m; -1 for anything else (the --distributed option). */
int dist_mode_parse(const char *s, DistMode *m);

/* Sets *out to NULL (one process) or to an initialised communicator of more
 * than one rank. Returns 0, or -1 with a message: `on` without a launcher,
 * a launch of several processes without a loadable Open MPI, MPI_Init failing. */
int dist_open(DistMode mode, Dist **out, Error *err);

/* Ends MPI. A status other than 0 aborts the whole job with it (MPI_Abort),
 * so that no rank is left waiting in a collective for one that failed. */
void dist_close(Dist *d, int status);

int dist_rank(const Dist *d);
int dist_size(const Dist *d);
bool dist_is_root(const Dist *d); /* rank 0: the rank that prints and writes files */
/* This rank's index among the ranks on its node (0 for a NULL Dist): the
 * launcher's OMPI_COMM_WORLD_LOCAL_RANK or SLURM_LOCALID, else the rank in
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). Each rank trains on GPU
 * local_rank % device count. */
int dist_local_rank(const Dist *d);

/* In-place sums over all ranks. Return 0 or -1. */
int dist_sum_f64(Dist *d, double *v, int n);
int dist_sum_f32(Dist *d, float *v, int64_t n);
/* Copies bytes from rank 0 to every rank. */
int dist_broadcast(Dist *d, void *buf, int64_t bytes);
/* Rank r's `bytes` land at recv + r * bytes on rank 0 (recv unused elsewhere). */
int dist_gather(Dist *d, const void *send, int64_t bytes, void *recv);

/* A nonblocking in-place sum of n floats (n < 2^28) over all ranks: start it,
 * then test or wait until it is done (the gradient buckets, grad_buckets.h).
 * Open MPI moves a nonblocking collective on only inside MPI calls, so
 * whoever starts one tests it now and then. */
typedef struct DistRequest { void *handle; } DistRequest;
int dist_isum_f32(Dist *d, float *v, int64_t n, DistRequest *req);
int dist_test(Dist *d, DistRequest *req, bool *done);
int dist_wait(Dist *d, DistRequest *req);

/* The sum over ranks of a space of e (SPACE_GRADS after backward). */
int dist_sum_space(Dist *d, Executor *e, BufSpace space, int64_t bytes);
/* Rank 0's copy of a space to every rank (SPACE_BUFFERS, SPACE_PARAMS). */
int dist_broadcast_space(Dist *d, Executor *e, BufSpace space, int64_t bytes);

#endif
