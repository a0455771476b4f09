/*
 * safetensors.h — reading and writing safetensors files, the format rxc's
 * checkpoints and its verification entry points (`rxc step`, `rxc grad`)
 * exchange with PyTorch.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * ..., "__metadata__": {"key": "string", ...}}), then the tensors' raw
 * little-endian bytes; data_offsets are relative to the end of the header.
 *
 * Reading is strict: the header length, the JSON, every entry's dtype, shape
 * and offsets are validated, the tensors must tile the data section exactly
 * (no gaps, no overlaps, no trailing bytes), and a failure is a message
 * naming the file and what is wrong, never a crash. Writing is atomic: a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory, so a crash never leaves a truncated file in place of a good one.
 */
#ifndef RXC_SAFETENSORS_H
#define RXC_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef enum StDType { ST_F32, ST_I64, ST_BF16, ST_U8 } StDType;

#define ST_MAX_RANK 8

typedef struct StTensor {
    char *name;
    StDType dtype;
    int rank;
    int64_t shape[ST_MAX_RANK];
    int64_t numel;
    void *data;        /* numel elements of dtype */
    bool owned;        /* data is freed with the set */
} StTensor;

typedef struct StMeta { char *key, *value; } StMeta;

typedef struct SafeTensors {
    StTensor *t;
    int n, cap;
    StMeta *meta;
    int n_meta, cap_meta;
    void *blob;        /* a read file's bytes; tensors point into it */
} SafeTensors;

size_t st_dtype_size(StDType d);
const char *st_dtype_name(StDType d); /* "F32", "I64", "BF16", "U8" */

/* st_read's result when the file itself cannot be read (missing, no
 * permission, a directory), as opposed to a file whose contents are bad. */
#define ST_UNREADABLE (-2)

/* Reads and validates path into *out (which is zeroed first). Returns 0,
 * ST_UNREADABLE, or -1 for bad contents; both failures leave a message in err
 * that names the file. */
int st_read(const char *path, SafeTensors *out, Error *err);

/* Reads only the header's __metadata__ (a checkpoint's epoch, class names...)
 * into out->meta, without the tensors; cheap for any file size. Returns 0,
 * ST_UNREADABLE, or -1 for a malformed header. */
int st_read_meta(const char *path, SafeTensors *out, Error *err);

/* Writes atomically (see above). Tensors are written in the order added. */
int st_write(const char *path, const SafeTensors *st, Error *err);

/* Adds a tensor. copy: the data is copied (and owned); otherwise the caller
 * keeps data alive until the set is written or freed. A later tensor with
 * the same name replaces the earlier one. Returns the new tensor. */
StTensor *st_add(SafeTensors *st, const char *name, StDType dtype, int rank, const int64_t *shape,
                 const void *data, bool copy);
/* Adds a tensor with zeroed, owned storage and returns it for filling. */
StTensor *st_add_zeroed(SafeTensors *st, const char *name, StDType dtype, int rank, const int64_t *shape);

const StTensor *st_find(const SafeTensors *st, const char *name);

void st_set_meta(SafeTensors *st, const char *key, const char *value);
const char *st_get_meta(const SafeTensors *st, const char *key); /* NULL when absent */

/* Copies a tensor's values into dst as float (F32, BF16, U8, I64 accepted). */
void st_to_f32(const StTensor *t, float *dst);

/* "[4, 3, 64, 64]" into buf. */
const char *st_shape_str(int rank, const int64_t *shape, char *buf, size_t buflen);

void st_free(SafeTensors *st);

#endif
