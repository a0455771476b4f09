/*
 * tfevents.h — TensorBoard event files, written without TensorFlow or
 * protobuf libraries.
 *
 * File format (what TensorBoard's EventFileLoader reads): a sequence of
 * TFRecords, each
 *     uint64 length (little endian)
 *     uint32 masked_crc32c(the 8 length bytes)
 *     byte   data[length]            a serialized tensorflow.Event
 *     uint32 masked_crc32c(data)
 * with masked_crc32c(x) = ((c >> 15) | (c << 17)) + 0xa282ead8, c = CRC-32C
 * (Castagnoli, reflected polynomial 0x82f63b78) of x.
 *
 * The protobuf messages, of which only these fields are written
 * (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto):
 *     Event   { double wall_time = 1;  int64 step = 2;
 *               string file_version = 3;  Summary summary = 5; }
 *     Summary { repeated Value value = 1; }
 *     Value   { string tag = 1;  float simple_value = 2; }
 * Wire encoding: key = (field << 3) | wire_type; wire types used: 0 varint
 * (step), 1 fixed64 (wall_time), 2 length-delimited (strings, messages),
 * 5 fixed32 (simple_value). Integers are little endian.
 * The first record of a file is Event{wall_time, file_version =
 * "brain.Event:2"}; each scalar is one Event{wall_time, step, summary}.
 */
#ifndef RXC_TFEVENTS_H
#define RXC_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct TfEvents TfEvents;

/* Opens a new file "<dir>/events.out.tfevents.<seconds>.<host>.<pid>.rxc" (dir
 * must exist) and writes the file_version event. NULL with a message in err. */
TfEvents *tfevents_open(const char *dir, Error *err);

/* Appends one scalar. wall_time is seconds since the Unix epoch (use
 * tfevents_wall_time()). Returns 0, or -1 when the write failed. */
int tfevents_scalar(TfEvents *w, const char *tag, int64_t step, double wall_time, float value);

int tfevents_flush(TfEvents *w);
void tfevents_close(TfEvents *w);
const char *tfevents_path(const TfEvents *w);

double tfevents_wall_time(void);

/* Exposed for tests and for anyone else who needs TFRecord framing. */
uint32_t crc32c(const void *data, size_t n);
uint32_t tfrecord_masked_crc(const void *data, size_t n);

#endif
