/*
 * run_dir.h — holding a run directory for the whole of one training run.
 *
 * run_dir_open creates the directory, takes an exclusive flock on
 * RUN_DIR/.lock (which records the holder's process id) and removes the
 * temporary files (NAME.tmp.<pid>) that writers killed mid-write left
 * behind. The kernel drops the lock when its holder exits, however it exits,
 * so a killed run never blocks the next one. runlog.h writes the logs and
 * the trainer the checkpoints inside the directory; this file only owns it.
 *
 * Checkpoints: the trainer writes best.safetensors before last.safetensors,
 * so a kill between the two leaves best ahead of last, which a resumed run
 * simply repeats. run_dir_reconcile_best repairs the other order (written
 * by earlier versions): last recording a best epoch that best does not hold.
 */
#ifndef RXC_RUN_DIR_H
#define RXC_RUN_DIR_H

#include <stddef.h>
#include <stdio.h>
#include "error.h"

typedef struct RunDir RunDir;

/* run_dir_open's results besides 0. */
enum { RUN_DIR_FAILED = -1, RUN_DIR_IN_USE = -2 };

/* Opens (creating it and its parents) and locks dir; *out is released with
 * run_dir_close. Returns 0; RUN_DIR_IN_USE when another process holds it
 * ("run directory X is in use by process P"); RUN_DIR_FAILED when it cannot
 * be made or locked. Removed temporary files are reported on note (may be
 * NULL). */
int run_dir_open(const char *dir, FILE *note, RunDir **out, Error *err);

/* Unlocks and frees; accepts NULL. */
void run_dir_close(RunDir *d);

/* "<dir>/<name>", malloc'd. */
char *run_dir_path(const RunDir *d, const char *name);

/* When last.safetensors records a best epoch that best.safetensors does not
 * hold (missing, or an earlier epoch) and last is that epoch's own
 * end-of-epoch checkpoint, best is rewritten from last; when last is a later
 * one, a warning says that best is stale. Notes go to note. Returns 0, or -1
 * with a message when the rewrite fails. */
int run_dir_reconcile_best(const RunDir *d, FILE *note, Error *err);

#endif
