/*
 * inference.h — a trained model in eval mode: the setup `rxc eval` and
 * `rxc predict` share, and what predict computes for one image.
 *
 * Like train_loop.h, functions that can fail print their message on stderr
 * and return the process exit status (1 at run time, 2 for bad input).
 */
#ifndef RXC_INFERENCE_H
#define RXC_INFERENCE_H

#include "train_loop.h"

/* For run->model (loaded by the caller): with split non-NULL, checks the
 * data and opens that split's loader (run->val, float batches of `batch`);
 * then opens the trainer for `batch` samples in eval mode and loads the
 * weights file (strict names and shapes), or with ema its EMA weights
 * (checkpoint_load_ema_weights; exit 2 when it has none). Returns 0 or an
 * exit status. */
int inference_open(TrainRun *run, int batch, const char *split, const char *weights, bool ema);

/* Class names for n outputs: from the weights file's metadata (written by
 * rxc train), else the data set's class folders, else "class N". Returns a
 * malloc'd array of n malloc'd strings. */
char **predict_class_names(const char *weights, const Recipe *r, int n);

/* Runs one image file through the validation transform and the network
 * (opened for batch 1) and writes the softmax over the classes to prob.
 * Returns 0 or an exit status (2 when the transform's size is not the
 * network's input). */
int predict_image(TrainRun *run, const char *path, float *prob);

#endif
