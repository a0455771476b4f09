/*
 * tfevents.c — TensorBoard event files: a tiny protobuf encoder for the few
 * Event fields rxc writes, and TFRecord framing. The format is described in
 * tfevents.h.
 */
#include "tfevents.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct TfEvents {
    FILE *f;
    char *path;
};

/* ---- CRC-32C ----------------------------------------------------------------
 * Bit at a time: event records are tens of bytes and a few per step, so a
 * lookup table would buy nothing. */
uint32_t crc32c(const void *data, size_t n) {
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
    }
    return c ^ 0xffffffffu;
}

uint32_t tfrecord_masked_crc(const void *data, size_t n) {
    uint32_t c = crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protobuf wire encoding -------------------------------------------------- */
enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void pb_varint(StrBuf *b, uint64_t v) {
    while (v >= 0x80) {
        sb_putc(b, (char)(unsigned char)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    sb_putc(b, (char)(unsigned char)v);
}

static void pb_key(StrBuf *b, int field, int wire) { pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

static void pb_le(StrBuf *b, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) sb_putc(b, (char)(unsigned char)(v >> (8 * i)));
}

static void pb_double(StrBuf *b, int field, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    pb_key(b, field, WIRE_FIXED64);
    pb_le(b, bits, 8);
}

static void pb_float(StrBuf *b, int field, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    pb_key(b, field, WIRE_FIXED32);
    pb_le(b, bits, 4);
}

static void pb_bytes(StrBuf *b, int field, const char *s, size_t n) {
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    for (size_t i = 0; i < n; i++) sb_putc(b, s[i]);
}

/* Event field numbers (event.proto) and Summary/Value field numbers (summary.proto). */
enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5 };
enum { SUMMARY_VALUE = 1 };
enum { VALUE_TAG = 1, VALUE_SIMPLE_VALUE = 2 };

/* ---- TFRecord framing ------------------------------------------------------- */
static int write_record(TfEvents *w, const char *data, size_t n) {
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    uint32_t len_crc = tfrecord_masked_crc(len, 8), data_crc = tfrecord_masked_crc(data, n);
    unsigned char c1[4], c2[4];
    for (int i = 0; i < 4; i++) {
        c1[i] = (unsigned char)(len_crc >> (8 * i));
        c2[i] = (unsigned char)(data_crc >> (8 * i));
    }
    if (fwrite(len, 1, 8, w->f) != 8 || fwrite(c1, 1, 4, w->f) != 4 ||
        (n && fwrite(data, 1, n, w->f) != n) || fwrite(c2, 1, 4, w->f) != 4)
        return -1;
    return 0;
}

double tfevents_wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

TfEvents *tfevents_open(const char *dir, Error *err) {
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
    host[sizeof host - 1] = 0;
    double now = tfevents_wall_time();
    /* TensorBoard sorts event files by name; the seconds keep them in order. */
    /* The pid keeps two runs started in the same second apart. */
    char *path = xasprintf("%s/events.out.tfevents.%lld.%s.%ld.rxc", dir, (long long)now, host, (long)getpid());
    FILE *f = fopen(path, "ab");
    if (!f) {
        error_set(err, "cannot create %s: %s", path, strerror(errno));
        free(path);
        return NULL;
    }
    TfEvents *w = xcalloc(1, sizeof *w);
    w->f = f;
    w->path = path;
    StrBuf b = {0};
    pb_double(&b, EVENT_WALL_TIME, now);
    static const char version[] = "brain.Event:2";
    pb_bytes(&b, EVENT_FILE_VERSION, version, sizeof version - 1);
    int rc = write_record(w, b.s, b.len);
    free(b.s);
    if (rc != 0 || fflush(f) != 0) {
        error_set(err, "cannot write %s: %s", path, strerror(errno));
        tfevents_close(w);
        return NULL;
    }
    return w;
}

int tfevents_scalar(TfEvents *w, const char *tag, int64_t step, double wall_time, float value) {
    if (!w) return 0;
    StrBuf value_msg = {0}, summary = {0}, event = {0};
    pb_bytes(&value_msg, VALUE_TAG, tag, strlen(tag));
    pb_float(&value_msg, VALUE_SIMPLE_VALUE, value);
    pb_bytes(&summary, SUMMARY_VALUE, value_msg.s, value_msg.len);
    pb_double(&event, EVENT_WALL_TIME, wall_time);
    pb_key(&event, EVENT_STEP, WIRE_VARINT);
    pb_varint(&event, (uint64_t)step); /* int64 varints encode negatives as 10 bytes, as here */
    pb_bytes(&event, EVENT_SUMMARY, summary.s, summary.len);
    int rc = write_record(w, event.s, event.len);
    free(value_msg.s);
    free(summary.s);
    free(event.s);
    return rc;
}

int tfevents_flush(TfEvents *w) { return w && fflush(w->f) != 0 ? -1 : 0; }

const char *tfevents_path(const TfEvents *w) { return w ? w->path : NULL; }

void tfevents_close(TfEvents *w) {
    if (!w) return;
    fclose(w->f);
    free(w->path);
    free(w);
}
