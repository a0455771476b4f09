/*
 * trainer.h — a training session: one model compiled for one batch size,
 * running on one device, with its parameters, optimizer state and counters.
 *
 * One optimizer step is: for each of accum_steps micro-batches, write the
 * batch, run PHASE_FORWARD_TRAIN then PHASE_BACKWARD (gradients accumulate);
 * then PHASE_UPDATE. num_batches_tracked is counted here, on the host.
 *
 * A batch smaller than the compiled size (the last batch of an epoch when
 * drop_last is off) trains on a second program compiled for that size: the
 * parameters, BN statistics, gradients and optimizer state are copied over
 * and back, so the step is exactly PyTorch's on the short batch. Evaluation
 * pads short batches instead (eval mode treats samples independently).
 *
 * Users: runtime/train_loop.c and runtime/inference.c (rxc train, eval,
 * predict) and cli/cmd_step.c (rxc step, rxc grad).
 */
#ifndef RXC_TRAINER_H
#define RXC_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "compile.h"
#include "executor.h"
#include "frontend.h"
#include "error.h"

typedef struct Loader Loader; /* data/loader.h */

typedef struct TrainerConfig {
    int batch;               /* compiled batch size (>= 1) */
    DeviceKind device;       /* DEVICE_AUTO: CUDA when available, else the CPU */
    int device_index;        /* the GPU: cuda:K when >= 0 (--device cuda:K wins); -1: local_rank % the GPUs */
    int local_rank;          /* this process's index on its node (distributed.h dist_local_rank) */
    LossMode loss;
    bool want_input_grad;
    bool u8_input;           /* batches are uint8 NHWC; normalize is fused (mean/std) */
    bool u8_where_target_wants; /* u8_input only on a target that asks for it (Target.u8_input:
                                the GPU, where the 4x smaller host-to-device copy matters);
                                trainer_open leaves cfg.u8_input telling which one it chose */
    float mean[3], std[3];
    bool quiet;              /* no note on stderr about the device */
    ExecHooks hooks;         /* given to every executor the trainer makes (distributed: grad_buckets.h) */
    int ranks;               /* data-parallel processes whose gradients are summed (0 or 1: none): the loss
                                gradient is scaled by 1 / (batch x ranks x accum), so that their sum is the
                                mean over the global batch */
} TrainerConfig;

typedef struct StepStats {
    int n;                   /* samples */
    double loss_sum;         /* sum of per-sample losses */
    int64_t correct;         /* argmax(logits) == label */
} StepStats;

typedef struct Trainer {
    Model *model;            /* not owned */
    const Graph *graph;
    const Recipe *recipe;
    TrainerConfig cfg;
    CompileOptions copts;
    Program *prog;
    Executor *exec;
    Program *short_prog;     /* for one smaller batch size, made on first use */
    Executor *short_exec;
    int short_batch;
    bool use_cuda;
    int device_arch;         /* the GPU's compute capability sm_XX; 0 on the CPU */
    int device_ordinal;      /* the GPU's CUDA ordinal (TrainerConfig.device_index) */
    char precision_note[64]; /* the precision the program runs, and why: "bf16 (precision auto on sm_90)" */
    int64_t *num_batches;    /* per graph parameter (ROLE_NUM_BATCHES entries used) */
    TrainState state;
    ModelRef ref;            /* for checkpoint.h, bound to prog/exec */
    int64_t out_numel;       /* per-sample output elements (classes for a classifier) */
    float *logits;           /* batch x out_numel, host copy of the last forward */
    float *losses;           /* batch per-sample losses of the last forward */
    size_t in_sample_bytes;  /* one input sample in SPACE_INPUT */
} Trainer;

/* Compiles the model for cfg and creates the executor. Returns 0, or -1 with
 * a message. The parameters are uninitialised until trainer_init_params or a
 * checkpoint load. */
/* "cpu", "cuda", "cuda:K" or "auto" -> *d and *index (K, else -1); -1 for
 * anything else (the --device option). */
int device_parse(const char *s, DeviceKind *d, int *index);

int trainer_open(Trainer *t, Model *m, const TrainerConfig *cfg, Error *err);

/* The options trainer_open compiles m with for cfg on target (the recipe's,
 * cfg's loss, input gradient and input format): `rxc compile`, `rxc emit`
 * and `rxc summary --kernels` build the trainer's exact program with it. */
void trainer_compile_options(const Model *m, const TrainerConfig *cfg, const Target *target, CompileOptions *o);
void trainer_close(Trainer *t);

/* The sample shape a data pipeline gives (3 x h x w, RGB) against the
 * network's input, checked once at start-up so that no batch of another
 * size reaches the device. pipeline: "train" or "val" (the `augment`
 * section). Returns 0, or -1 with a message that names both shapes and the
 * fix (a resize or crop, or --set input=...). */
int trainer_check_samples(const Trainer *t, const char *pipeline, int h, int w, Error *err);
/* The same for the loaders of both splits (val may be NULL). */
int trainer_check_loaders(const Trainer *t, const Loader *train, const Loader *val, Error *err);

/* The classes a weights file was trained on, in label order: the
 * checkpoint's list (checkpoint_class_list: folder names with folders, else
 * display names), else, for weights from elsewhere, the training split's
 * class folders; NULL when neither is known. Free with dataset_free_names. */
char **trainer_weight_classes(const char *weights, const Recipe *r, bool folders, int *n);

/* Initialises every parameter (init.h) from seed, BN buffers to 0/1,
 * num_batches_tracked to 0, gradients and optimizer state to 0. */
void trainer_init_params(Trainer *t, uint64_t seed);

/* One micro-batch forward (train mode) and backward; gradients accumulate.
 * x: n samples in the input layout (f32 NHWC, or u8 when cfg.u8_input); y: n
 * labels (may be NULL for LOSS_EXTERNAL_GRAD). lr/opt_step only feed the
 * runtime scalars. Fills *stats and the host logits/losses. Returns 0 or -1. */
int trainer_forward_backward(Trainer *t, const void *x, const int64_t *y, int n, double lr, int64_t opt_step,
                             StepStats *stats, Error *err);

/* The same on a batch that mix.h mixed: sample i's target is its label and
 * sample n-1-i's, that one with weight partner_weight (what mix_apply returned). */
int trainer_forward_backward_mixed(Trainer *t, const void *x, const int64_t *y, int n, double lr, int64_t opt_step,
                                   double partner_weight, StepStats *stats, Error *err);

/* The optimizer update with the accumulated gradients (which it zeroes). */
int trainer_update(Trainer *t, double lr, int64_t opt_step, Error *err);

/* The EMA of the weights (the recipe's `ema`, program.h SPACE_EMA).
 * trainer_ema_update runs PHASE_EMA when the optimizer step just taken is
 * a multiple of ema_every; callers run it once the step's BN buffers are
 * final (after a distributed run's broadcast). trainer_ema_reset starts the
 * average at the current weights and buffers (trainer_init_params and
 * trainer_load_weights call it). trainer_swap_ema exchanges the weights and
 * buffers with their average, so that evaluation runs on the average; a
 * second call swaps back, exactly. Without `ema` they do nothing. */
bool trainer_has_ema(const Trainer *t);
int trainer_ema_update(Trainer *t, Error *err);
void trainer_ema_reset(Trainer *t);
int trainer_swap_ema(Trainer *t, Error *err);

/* Forward in eval mode on n <= batch samples (padded); fills *stats and the
 * host logits/losses for those samples. */
int trainer_eval(Trainer *t, const void *x, const int64_t *y, int n, StepStats *stats, Error *err);

/* Reads buffer `buf` of the main program (program.h ids) into dst. */
int trainer_read_buf(Trainer *t, int buf, void *dst, int64_t bytes);
int trainer_write_buf(Trainer *t, int buf, const void *src, int64_t bytes);

/* Checkpoint helpers bound to this session's state. */
int trainer_save(Trainer *t, const char *path, Error *err);
int trainer_resume(Trainer *t, const char *path, Error *err);
int trainer_load_weights(Trainer *t, const char *path, Error *err);

#endif
