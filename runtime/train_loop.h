/*
 * train_loop.h — one training run of a loaded model, as `rxc train` runs it:
 * start-up, the epoch loop, and the pieces `rxc eval` shares with it.
 *
 * Start-up (train_run_open): the trainer (on a GPU it takes uint8 batches,
 * which decides the loaders' output), the train and val loaders, the class
 * count check, the starting weights (--init, or --resume of a checkpoint),
 * and the run directory (runlog.h).
 *
 * The loop (run_epochs): a parallel loader feeds the trainer (trainer.h);
 * after each epoch it validates, prints the seed's epoch line, appends to the
 * run directory and writes the last and best checkpoints. Ctrl-C / SIGTERM
 * finish the current optimizer step, save a checkpoint and stop with 130; a
 * resumed run continues exactly where its checkpoint stopped (mid-epoch
 * included). A non-finite loss stops the run and leaves the last good
 * checkpoint in place.
 *
 * Data-parallel (run->dist, distributed.h): each rank compiles for batch/N
 * and trains its shard of every epoch; rank 0 alone prints the epoch lines,
 * the progress and the notes, and writes the run directory. Losses,
 * accuracies and the stop decision (a signal reaching any rank) are summed
 * over ranks every micro-batch, so every rank stops at the same step.
 *
 * Every function that can fail prints its message on stderr and returns the
 * process exit status: 0, 1 (failure at run time), 2 (bad input), 130
 * (interrupted). The command line is cli/cmd_train.c's.
 */
#ifndef RXC_TRAIN_LOOP_H
#define RXC_TRAIN_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "data/loader.h"
#include "distributed.h"
#include "frontend.h"
#include "run_dir.h"
#include "runlog.h"
#include "trainer.h"
#include "error.h"

/* Everything one run holds, released by train_run_close. The caller loads
 * model (and sets model_loaded); the rest is opened here. */
typedef struct TrainRun {
    Model model;
    bool model_loaded;
    Loader *train, *val;
    Trainer tr;
    bool trainer_open;
    RunLog *log;
    char *last_path, *best_path; /* the run directory's checkpoints */
    char *classes;               /* class names, one per line, saved in checkpoints */
    char *folders;               /* their folders, where they differ (Imagenette), or NULL */
    RunDir *dir;                 /* the locked run directory (run_dir.h) */
    Dist *dist;                  /* not owned; NULL: one process. Set before train_run_open */
} TrainRun;

/* How a training run starts and when it stops, beyond the model's recipe. */
typedef struct TrainStart {
    const char *resume;      /* a checkpoint to continue exactly, or NULL */
    const char *init;        /* weights to start from, or NULL */
    int64_t max_steps;       /* 0: none; stop (with a checkpoint) after this many optimizer steps */
} TrainStart;

/* Opens everything run_epochs needs. Returns 0 or an exit status. */
int train_run_open(TrainRun *run, const TrainStart *start);

/* Trains the remaining epochs of the recipe. Returns the exit status. */
int run_epochs(TrainRun *run, const TrainStart *start);

void train_run_close(TrainRun *run);

/* When the data set of `split` is absent: prints where rxc looked, how to
 * get Imagenette, and the offline demo, and returns true. */
bool report_missing_data(const Model *m, const char *split);

/* The exit status for a failed checkpoint load: 1 when the file cannot be
 * read, 2 when it does not fit the model (docs/rxc.1, EXIT STATUS). */
int checkpoint_load_status(int rc);

/* Opens run->tr for float NHWC batches (uint8 where the target asks for it,
 * when u8_on_gpu and both pipelines end in the same normalize) and
 * cross-entropy. */
int train_run_open_trainer(TrainRun *run, int batch, bool quiet, bool u8_on_gpu, Error *err);
/* The configuration train_run_open_trainer opens the trainer with (the
 * commands that show the training program build it the same way). */
void train_config_init(TrainerConfig *cfg, const Model *m, int batch, bool quiet, bool u8_on_gpu);

typedef struct EvalResult { double loss, acc; int64_t n; } EvalResult;

/* One pass over a split in eval mode. Returns 0, or -1 with a message. */
int evaluate_split(Trainer *t, Loader *split, EvalResult *res, Error *err);

/* For a command that trains several times in a row (rxc ablate): while
 * held, Ctrl-C/SIGTERM stay caught between trainings too, and
 * train_stop_requested() says whether one arrived. */
void train_hold_signals(bool hold);
bool train_stop_requested(void);

#endif
