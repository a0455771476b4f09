/*
 * checkpoint.h — saving and loading a model's state as safetensors.
 *
 * A checkpoint holds, under the graph's names (PyTorch's state_dict names,
 * torchvision's for torchvision-layout models):
 *   every trainable parameter (F32, PyTorch layout) and BN buffer
 *   (running_mean/var F32, num_batches_tracked I64 scalar);
 *   the optimizer state, as "optimizer.<slot>.<param name>" with slot
 *   exp_avg / exp_avg_sq (Adam, AdamW) or momentum_buffer (SGD);
 *   with the recipe's `ema`, the EMA of every parameter and buffer as
 *   "ema.<name>" (num_batches_tracked: the model's count);
 *   and in __metadata__: format, network, optimizer, epoch, step, the
 *   position inside an unfinished epoch, its running sums, the best
 *   validation accuracy, the seed, the model source's SHA-256 and the
 *   training split's classes in label order (see ModelRef).
 * rxc's randomness is counter-based (util.h: a pure function of seed,
 * stream and counter), so the RNG state is the seed plus the step counters.
 *
 * A checkpoint is a valid `--init` weights file, and any PyTorch state_dict
 * saved with safetensors.torch.save_file is one too.
 */
#ifndef RXC_CHECKPOINT_H
#define RXC_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "executor.h"
#include "graph.h"
#include "program.h"
#include "recipe.h"
#include "safetensors.h"
#include "error.h"

/* Where a run stands; saved in the metadata and restored on resume. */
typedef struct TrainState {
    int epoch;               /* finished epochs */
    int64_t step;            /* optimizer steps taken */
    int64_t micro_step;      /* forward/backward passes taken (> step with accumulation) */
    int64_t batch_in_epoch;  /* batches of the unfinished epoch already trained (0 at a boundary) */
    double epoch_loss_sum;   /* sums over those batches, for the epoch line */
    int64_t epoch_correct, epoch_seen;
    double epoch_seconds;    /* time spent in the unfinished epoch */
    double best_val_acc;     /* -1 when none yet */
    int best_epoch;
    uint64_t seed;
} TrainState;

/* Everything a checkpoint stores, bound to one program and executor. */
typedef struct ModelRef {
    const Graph *graph;
    const Program *program;
    Executor *exec;
    int64_t *num_batches;    /* per graph parameter; used for ROLE_NUM_BATCHES (the trainer's counts) */
    OptKind opt;
    double momentum;         /* SGD: no momentum buffers when 0 */
    const char *class_names; /* optional, one per line: saved as metadata "class_names" for rxc predict */
    const char *class_folders; /* optional, one per line: the class folder names, saved as metadata
                                  "class_folders" when they differ from class_names (Imagenette's
                                  WordNet ids); rxc eval maps a split's folders by them */
    const char *precision;   /* optional: saved as metadata "precision" by mixed-precision runs (bf16,
                                tf32); absent means fp32, so fp32 checkpoints keep their bytes */
} ModelRef;

/* What the loaders return when the file cannot be read at all (missing, no
 * permission), as opposed to -1 for a file that does not fit the model:
 * the commands exit 1 for the first and 2 for the second. */
#define CHECKPOINT_UNREADABLE (-2)
/* checkpoint_load_ema_weights' answer for a file without "ema." entries (exit 2). */
#define CHECKPOINT_NO_EMA (-3)

/* Adds every parameter and BN buffer (copied from the device) to st, under
 * the checkpoint names; with_optimizer adds the optimizer state too. */
void checkpoint_collect(const ModelRef *m, SafeTensors *st, bool with_optimizer);

/* Writes a full checkpoint atomically. Returns 0, or -1 with a message. */
int checkpoint_save(const char *path, const ModelRef *m, const TrainState *s, const char *source_sha256,
                    Error *err);

/* Restores a full checkpoint for --resume: parameters, buffers, optimizer
 * state and *s. Names and shapes are checked strictly. A different model
 * source hash is allowed (a run may be extended with --epochs) but reported
 * on stderr. Returns 0, or -1 (CHECKPOINT_UNREADABLE when the file cannot be
 * read) with a message in err: a summary line, then one line per problem. */
int checkpoint_load_resume(const char *path, const ModelRef *m, TrainState *s, const char *source_sha256,
                           Error *err);

/* Loads weights only (--init): every parameter and buffer of the graph must
 * be in the file with its exact shape, and the file must hold nothing else
 * (an "optimizer." or "ema." entry is ignored). F32 or BF16 for float tensors; I64 (or
 * an integral F32) for num_batches_tracked. On a mismatch nothing is loaded
 * and err lists EVERY missing, unexpected, mis-shaped or mis-typed tensor.
 * Returns 0, -1, or CHECKPOINT_UNREADABLE when the file cannot be read. */
int checkpoint_load_weights(const char *path, const ModelRef *m, Error *err);

/* Loads a checkpoint's EMA weights (its "ema." entries, `rxc eval --ema`)
 * as the weights, with checkpoint_load_weights' strict check. Returns 0,
 * -1, CHECKPOINT_UNREADABLE, or CHECKPOINT_NO_EMA when it has none. */
int checkpoint_load_ema_weights(const char *path, const ModelRef *m, Error *err);

/* Restoring for --resume (above) restores the EMA too when the model's
 * program has one: from the file's "ema." entries, which must then be
 * complete, or from the resumed weights when the file has none (a note on
 * stderr says so). Without `ema` the entries are ignored. */

/* The training classes a checkpoint lists, in label order (malloc'd array of
 * *n malloc'd names), or NULL when it lists none (weights from elsewhere).
 * folders: the folder names ("class_folders", else "class_names"); else
 * the display names ("class_names"). Reads only the file's header. */
char **checkpoint_class_list(const char *path, bool folders, int *n);

/* The same strict check and load from an already-read set (cmd_step). */
int checkpoint_apply_weights(const char *what, const SafeTensors *st, const ModelRef *m, Error *err);

#endif
