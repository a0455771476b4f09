/*
 * loader.h — the parallel data loader the trainer calls: a dataset split
 * (ImageFolder, CIFAR-10/100 binary, or the demo set), decoded and
 * transformed by N worker threads into ready batches in a bounded prefetch
 * queue.
 *
 * Randomness: every random choice for a sample (shuffle order, crop, flip,
 * AutoAugment) is a pure function of (recipe seed, epoch, sample index), so
 * batches are identical for any thread count.
 *
 * Bad input (corrupt, truncated, zero-byte or non-image files, huge declared
 * dimensions, 1x1 images, unreadable files, empty class folders) is skipped
 * at open and counted; loader_report prints the counts and the first paths.
 */
#ifndef RXC_DATA_LOADER_H
#define RXC_DATA_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "recipe.h"
#include "error.h"

typedef enum LoaderOutput {
    LOADER_F32_NHWC, /* float, normalized with the pipeline's normalize op (if any) */
    LOADER_U8_NHWC   /* uint8 0..255, normalize NOT applied: the consumer fuses it
                        (loader_normalize gives mean/std) */
} LoaderOutput;

typedef struct Batch {
    void *data;            /* n*h*w*3 floats or bytes, NHWC; owned by the loader,
                              valid until the next loader_next/begin_epoch/close */
    const int64_t *labels; /* n class indices */
    const int *indices;    /* n dataset sample indices (for debugging/predict) */
    int n, h, w;           /* n <= batch size; the last batch may be short unless drop_last */
    LoaderOutput kind;
} Batch;

typedef struct Loader Loader;

/* Opens a split: `split` is the split's folder name (r->train_split or
 * r->val_split); `train` selects shuffling and r->train_tf (else no shuffle and
 * r->val_tf). threads <= 0: r->workers, and if that is 0, all cores.
 * Scans the split, validates every file (and fills the cache per r->cache).
 * Returns NULL with a message in err (e.g. a split with no usable image). */
Loader *loader_open(const Recipe *r, const char *split, int batch, bool train,
                    LoaderOutput out, int threads, Error *err);

int loader_num_samples(const Loader *L);              /* usable samples */
int loader_num_classes(const Loader *L);
const char *loader_class_name(const Loader *L, int c); /* display name if given, else folder name */
const char *loader_class_folder(const Loader *L, int c);/* folder name (wnid) */
int loader_num_batches(const Loader *L);              /* per epoch, honouring drop_last */
/* The class names one per line, in label order (for checkpoints): display
 * names, or with folders the folder names, then NULL when every folder
 * name is its display name. malloc'd. */
char *loader_class_text(const Loader *L, bool folders);

/* Labels by class name rather than folder position: relabels the split so
 * that its labels index `classes` (the training classes in label order; see
 * dataset_relabel). A class of this split that is not among them is an
 * error naming it; a training class with no images here is a warning on
 * warn (may be NULL). Call before the first epoch. Returns 0 or -1. */
int loader_use_classes(Loader *L, char *const *classes, int n_classes, FILE *warn, Error *err);
/* The same with the training split's loader as the list (validation). */
int loader_match_classes(Loader *L, const Loader *train, FILE *warn, Error *err);
void loader_sample_shape(const Loader *L, int *h, int *w); /* every sample's output h, w (c = 3) */
/* Normalize op of the pipeline (mean/std in 0..1 units); false if none
 * (then the identity mean 0, std 1 is written). */
bool loader_normalize(const Loader *L, float mean[3], float std[3]);

/* Starts epoch `epoch` (0-based): new shuffle order, workers begin filling
 * the queue. Returns 0, or -1 with a previous epoch's error in err. */
int loader_begin_epoch(Loader *L, int epoch, Error *err);
/* Next batch of the current epoch: returns its size n (> 0), 0 at epoch end,
 * -1 with the first failed sample's error in err (the epoch stops there). */
int loader_next(Loader *L, Batch *out, Error *err);

double loader_stall_seconds(const Loader *L); /* total time loader_next waited for workers */
/* Prints the split summary (samples, classes, cache mode and the memory it
 * holds, threads), the skipped-file report (counts by reason, first paths)
 * and, for a training split smaller than one batch, a note saying so. */
void loader_report(const Loader *L, FILE *f);
int loader_num_skipped(const Loader *L);
void loader_close(Loader *L);

/* Applies a split's pipeline (train or val) to one image file, for `rxc
 * predict` and tools: writes h*w*3 values to dst (float per `out` rules or
 * bytes). loader_output_shape gives h, w before (a pipeline without a
 * fixed-size op keeps the image's own size: then call with dst NULL first to
 * learn it). sample_seed makes the random ops reproducible. Returns 0 or -1. */
int loader_prepare_file(const Recipe *r, bool train, const char *path, uint64_t sample_seed,
                        LoaderOutput out, void *dst, size_t dst_bytes, int *h, int *w,
                        Error *err);

#endif
