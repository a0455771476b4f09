/*
 * demo.h — the offline demo data set: the 1,797 8x8 handwritten digits that
 * Debian's python3-sklearn ships (sklearn/datasets/data/digits.csv.gz),
 * written as an ImageFolder tree of 32x32 RGB JPEGs.
 *
 * Split (fixed): sample i of the CSV (0-based, file order) goes to val/ when
 * i % 5 == 4, else to train/: 1,438 train and 359 val images. Files are
 * <split>/<digit>/<i as 4 digits>.jpg; pixels are v*255/16 (rounded), grey
 * replicated to RGB, upscaled 4x with PIL's bilinear resize; JPEG quality 95.
 */
#ifndef RXC_DATA_DEMO_H
#define RXC_DATA_DEMO_H

#include <stddef.h>
#include "error.h"

#define DEMO_CSV_IN_PACKAGE "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

/* Finds digits.csv.gz: csv_path if given; else the installed package's copy;
 * else downloads python3-sklearn with `apt-get download` into a temporary
 * directory and unpacks it with `dpkg -x` (no installation). Then writes the
 * tree to out_dir. Progress goes to stderr. Returns 0, or -1 with a message. */
int demo_prepare(const char *out_dir, const char *csv_path, Error *err);

#endif
