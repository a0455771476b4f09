/*
 * dataset.h — what a split contains: the file list of an ImageFolder tree
 * (torchvision's sorted class order, optional display names) or the images
 * of a CIFAR-10/100 binary file, and the report of what was skipped.
 *
 * The dataset only lists; reading and validating pixels is the loader's job
 * (loader.c), which records rejected files in the same SkipLog.
 */
#ifndef RXC_DATA_DATASET_H
#define RXC_DATA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data/image.h"
#include "recipe.h"
#include "error.h"

/* Skip reasons: the DecodeStatus values, then these. */
enum { SKIP_EMPTY_CLASS = DEC_NSTATUS, SKIP_OTHER_EXT, SKIP_NREASONS };
#define SKIP_EXAMPLES 5

typedef struct SkipLog {
    int count[SKIP_NREASONS];
    int total;
    int n_examples;
    char *example_path[SKIP_EXAMPLES];
    int example_reason[SKIP_EXAMPLES];
} SkipLog;

const char *skip_reason_name(int reason);
void skiplog_add(SkipLog *log, const char *path, int reason);
void skiplog_print(const SkipLog *log, FILE *f, const char *indent);
void skiplog_free(SkipLog *log);

typedef struct Dataset {
    char *dir;             /* the split's directory or file set, for messages */
    int n_classes;
    char **class_folder;   /* wnid / folder name, or CIFAR label name */
    char **class_display;  /* display name (the folder name if none given) */
    int n;                 /* samples listed */
    char **path;           /* per sample (NULL for in-memory datasets) */
    int *label;
    uint8_t *pixels;       /* in-memory datasets (CIFAR): n * h * w * 3, HWC */
    int mem_w, mem_h;
    SkipLog skipped;
} Dataset;

/* root/<split>/<class>/...: classes are the sorted subfolders; files are
 * found recursively (sorted) with extensions .jpg/.jpeg/.png (any case).
 * Imagenette's WordNet-id folders get built-in display names; class_names_file
 * (NULL: none), "<folder> <display name>" per line, overrides them.
 * Returns 0, or -1 with a message naming the path. */
int dataset_imagefolder(const char *root, const char *split, const char *class_names_file, Dataset *ds,
                        Error *err);
/* The sorted class folders of root/<split>, as dataset_imagefolder lists
 * them (malloc'd array of *n malloc'd names), or NULL when the directory
 * cannot be read. */
char **dataset_list_classes(const char *root, const char *split, int *n);
/* Frees such a list (accepts NULL). */
void dataset_free_names(char **names, int n);

/* Relabels ds by name so that its labels index `classes` (the training
 * split's class folders, in label order): each of ds's classes is found by
 * folder name, else by display name. ds then has exactly those classes, some
 * maybe without samples. A class of ds not in `classes` is an error naming
 * it (nothing is changed). Returns 0 or -1 with a message. */
int dataset_relabel(Dataset *ds, char *const *classes, int n_classes, Error *err);

/* CIFAR-10 (data_batch_1..5.bin / test_batch.bin) or CIFAR-100 (train.bin /
 * test.bin, fine labels) binary files in root or its cifar-10-batches-bin /
 * cifar-100-binary subfolder. train: the training files, else the test file. */
int dataset_cifar(const char *root, bool cifar100, bool train, Dataset *ds, Error *err);
void dataset_free(Dataset *ds);

#endif
