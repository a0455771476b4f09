/*
 * safetensors.c — the safetensors reader and writer (see safetensors.h).
 *
 * The JSON header is parsed and printed with cJSON. The reader trusts
 * nothing in the file: every count and offset is checked against the file
 * size with overflow-checked arithmetic before anything is allocated or read.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rxc's safetensors code assumes a little-endian host"
#endif

/* A header larger than this is refused before it is parsed (the reference
 * implementation's limit). */
#define ST_MAX_HEADER (100u * 1024u * 1024u)


size_t st_dtype_size(StDType d) {
    switch (d) {
    case ST_F32: return 4;
    case ST_I64: return 8;
    case ST_BF16: return 2;
    case ST_U8: return 1;
    }
    return 0;
}

const char *st_dtype_name(StDType d) {
    switch (d) {
    case ST_F32: return "F32";
    case ST_I64: return "I64";
    case ST_BF16: return "BF16";
    case ST_U8: return "U8";
    }
    return "?";
}

static int dtype_from_name(const char *s, StDType *out) {
    static const StDType all[] = {ST_F32, ST_I64, ST_BF16, ST_U8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, st_dtype_name(all[i]))) {
            *out = all[i];
            return 0;
        }
    return -1;
}

const char *st_shape_str(int rank, const int64_t *shape, char *buf, size_t buflen) {
    size_t n = 0;
    if (buflen == 0) return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, n < buflen ? buflen - n : 0, "[");
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(buf + n, n < buflen ? buflen - n : 0, "%s%lld", i ? ", " : "", (long long)shape[i]);
    snprintf(buf + (n < buflen ? n : buflen - 1), n < buflen ? buflen - n : 1, "]");
    return buf;
}

/* ---- building ------------------------------------------------------------ */

static void free_tensor(StTensor *t) {
    free(t->name);
    if (t->owned) free(t->data);
    memset(t, 0, sizeof *t);
}

static StTensor *add_entry(SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) {
            free_tensor(&st->t[i]);
            st->t[i].name = xstrdup(name);
            return &st->t[i];
        }
    GROW(st->t, st->cap, st->n + 1);
    StTensor *t = &st->t[st->n++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    return t;
}

static int64_t shape_numel(int rank, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= shape[i];
    return n;
}

StTensor *st_add(SafeTensors *st, const char *name, StDType dtype, int rank, const int64_t *shape,
                 const void *data, bool copy) {
    StTensor *t = add_entry(st, name);
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
    t->numel = shape_numel(rank, shape);
    size_t bytes = (size_t)t->numel * st_dtype_size(dtype);
    if (copy) {
        t->data = xmalloc(bytes);
        if (bytes) memcpy(t->data, data, bytes);
        t->owned = true;
    } else {
        t->data = (void *)data;
        t->owned = false;
    }
    return t;
}

StTensor *st_add_zeroed(SafeTensors *st, const char *name, StDType dtype, int rank, const int64_t *shape) {
    StTensor *t = add_entry(st, name);
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->shape[i] = shape[i];
    t->numel = shape_numel(rank, shape);
    t->data = xcalloc((size_t)(t->numel ? t->numel : 1), st_dtype_size(dtype));
    t->owned = true;
    return t;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

void st_set_meta(SafeTensors *st, const char *key, const char *value) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key)) {
            free(st->meta[i].value);
            st->meta[i].value = xstrdup(value);
            return;
        }
    GROW(st->meta, st->cap_meta, st->n_meta + 1);
    st->meta[st->n_meta].key = xstrdup(key);
    st->meta[st->n_meta].value = xstrdup(value);
    st->n_meta++;
}

const char *st_get_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
    return NULL;
}

void st_to_f32(const StTensor *t, float *dst) {
    for (int64_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case ST_F32: dst[i] = ((const float *)t->data)[i]; break;
        case ST_I64: dst[i] = (float)((const int64_t *)t->data)[i]; break;
        case ST_U8: dst[i] = (float)((const uint8_t *)t->data)[i]; break;
        case ST_BF16: {
            uint32_t bits = (uint32_t)((const uint16_t *)t->data)[i] << 16;
            memcpy(&dst[i], &bits, 4);
            break;
        }
        }
    }
}

void st_free(SafeTensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free_tensor(&st->t[i]);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->t);
    free(st->meta);
    free(st->blob);
    memset(st, 0, sizeof *st);
}

/* ---- reading ------------------------------------------------------------- */

/* A JSON number that is a non-negative integer exactly representable in a
 * double (the format's sizes are u64; anything beyond 2^53 cannot be a real
 * file here). */
static int json_uint(const cJSON *j, int64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return -1;
    *out = (int64_t)d;
    return 0;
}

typedef struct Span { int64_t begin, end; int index; } Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index - y->index;
}

static int parse_entry(const char *path, const cJSON *e, StTensor *t, Span *span, Error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return error_set(err, "%s: header entry '%s' is not an object", path, name);
    const cJSON *dt = NULL, *shape = NULL, *offs = NULL;
    for (const cJSON *f = e->child; f; f = f->next) {
        if (!strcmp(f->string, "dtype") && !dt) dt = f;
        else if (!strcmp(f->string, "shape") && !shape) shape = f;
        else if (!strcmp(f->string, "data_offsets") && !offs) offs = f;
        else return error_set(err, "%s: tensor '%s' has an unexpected or repeated key '%s'", path, name, f->string);
    }
    if (!dt || !shape || !offs)
        return error_set(err, "%s: tensor '%s' lacks '%s'", path, name,
                         !dt ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt))
        return error_set(err, "%s: tensor '%s': dtype is not a string", path, name);
    if (dtype_from_name(dt->valuestring, &t->dtype) != 0)
        return error_set(err, "%s: tensor '%s': unsupported dtype '%s' (rxc reads F32, I64, BF16, U8)", path, name,
                    dt->valuestring);
    if (!cJSON_IsArray(shape))
        return error_set(err, "%s: tensor '%s': shape is not an array", path, name);
    int rank = cJSON_GetArraySize(shape);
    if (rank > ST_MAX_RANK)
        return error_set(err, "%s: tensor '%s': rank %d exceeds %d", path, name, rank, ST_MAX_RANK);
    t->rank = rank;
    int64_t numel = 1;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        if (json_uint(d, &t->shape[i]) != 0)
            return error_set(err, "%s: tensor '%s': shape entry %d is not a non-negative integer", path, name, i);
        if (__builtin_mul_overflow(numel, t->shape[i], &numel))
            return error_set(err, "%s: tensor '%s': element count overflows", path, name);
    }
    t->numel = numel;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || json_uint(offs->child, &span->begin) != 0 ||
        json_uint(offs->child->next, &span->end) != 0)
        return error_set(err, "%s: tensor '%s': data_offsets must be two non-negative integers", path, name);
    if (span->end < span->begin)
        return error_set(err, "%s: tensor '%s': data_offsets [%lld, %lld] end before they begin", path, name,
                    (long long)span->begin, (long long)span->end);
    int64_t bytes;
    if (__builtin_mul_overflow(numel, (int64_t)st_dtype_size(t->dtype), &bytes) || bytes != span->end - span->begin) {
        char sh[160];
        return error_set(err, "%s: tensor '%s': %s %s needs %lld bytes but data_offsets [%lld, %lld] give %lld", path,
                    name, st_dtype_name(t->dtype), st_shape_str(rank, t->shape, sh, sizeof sh),
                    (long long)numel * (long long)st_dtype_size(t->dtype), (long long)span->begin,
                    (long long)span->end, (long long)(span->end - span->begin));
    }
    return 0;
}

static int parse_metadata(const char *path, const cJSON *m, SafeTensors *out, Error *err) {
    if (!cJSON_IsObject(m)) return error_set(err, "%s: __metadata__ is not an object", path);
    for (const cJSON *f = m->child; f; f = f->next) {
        if (!cJSON_IsString(f))
            return error_set(err, "%s: __metadata__ value '%s' is not a string", path, f->string);
        if (st_get_meta(out, f->string))
            return error_set(err, "%s: __metadata__ key '%s' appears twice", path, f->string);
        st_set_meta(out, f->string, f->valuestring);
    }
    return 0;
}

/* The JSON header of a file read whole: checks the length prefix and that
 * the header is one JSON object (padding aside). Returns the parsed object
 * and sets *hlen_out, or NULL with a message. */
static cJSON *parse_header(const char *path, const unsigned char *buf, size_t len, uint64_t *hlen_out, Error *err) {
    if (len < 8) {
        error_set(err, "%s: not a safetensors file: %zu bytes, shorter than the 8-byte header length", path, len);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > len - 8) {
        error_set(err, "%s: header length %llu exceeds the %zu bytes after it (truncated, or not a safetensors file)",
                  path, (unsigned long long)hlen, len - 8);
        return NULL;
    }
    if (hlen < 2 || hlen > ST_MAX_HEADER) {
        error_set(err, "%s: implausible header length %llu (not a safetensors file?)", path,
                  (unsigned long long)hlen);
        return NULL;
    }
    const char *header = (const char *)buf + 8;
    /* JSON allows no raw control characters (cJSON would accept a NUL inside a
     * name and silently cut the name there). */
    for (uint64_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)header[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            error_set(err, "%s: the JSON header is malformed (control character 0x%02x at byte %llu)", path, ch,
                      (unsigned long long)i);
            return NULL;
        }
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)hlen, &end, 0);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= header && at <= header + hlen) ? (long)(at - header) : -1;
        error_set(err, "%s: the JSON header is malformed (near byte %ld of %llu)", path, off,
                  (unsigned long long)hlen);
        return NULL;
    }
    /* The writer may pad the header with spaces; anything else after the JSON is corruption. */
    for (const char *p = end; p && p < header + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            error_set(err, "%s: unexpected bytes after the JSON header (at byte %ld)", path, (long)(p - header));
            return NULL;
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        error_set(err, "%s: the JSON header is not an object", path);
        return NULL;
    }
    *hlen_out = hlen;
    return root;
}

/* Adds every tensor and the metadata of the header to out, recording each
 * tensor's byte range in spans (index = its place in out->t). */
static int parse_entries(const char *path, const cJSON *root, SafeTensors *out, Span *spans, int *n_spans, Error *err) {
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (parse_metadata(path, e, out, err) != 0) return -1;
            continue;
        }
        if (st_find(out, e->string))
            return error_set(err, "%s: tensor '%s' appears twice in the header", path, e->string);
        StTensor tmp = {0};
        Span sp = {0};
        if (parse_entry(path, e, &tmp, &sp, err) != 0) return -1;
        GROW(out->t, out->cap, out->n + 1);
        StTensor *t = &out->t[out->n];
        *t = tmp;
        t->name = xstrdup(e->string);
        sp.index = out->n;
        out->n++;
        spans[(*n_spans)++] = sp;
    }
    return 0;
}

/* The tensors must tile the data section exactly: no overlap, no gap, nothing after. */
static int check_tiling(const char *path, const SafeTensors *st, Span *spans, int n_spans, int64_t data_len,
                        Error *err) {
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    int64_t at = 0;
    for (int i = 0; i < n_spans; i++) {
        const char *name = st->t[spans[i].index].name;
        if (spans[i].begin < at)
            return error_set(err, "%s: tensor '%s' overlaps the previous tensor (offset %lld < %lld)", path, name,
                             (long long)spans[i].begin, (long long)at);
        if (spans[i].begin > at)
            return error_set(err, "%s: a gap of %lld bytes before tensor '%s'", path,
                             (long long)(spans[i].begin - at), name);
        if (spans[i].end > data_len)
            return error_set(err,
                             "%s: tensor '%s' ends at byte %lld but the data section has %lld bytes (truncated file)",
                             path, name, (long long)spans[i].end, (long long)data_len);
        at = spans[i].end;
    }
    if (at != data_len)
        return error_set(err, "%s: %lld bytes after the last tensor (the header does not describe them)", path,
                         (long long)(data_len - at));
    return 0;
}

/* Points each tensor at its bytes in the file image, or at an aligned copy. */
static void bind_data(SafeTensors *st, const Span *spans, int n_spans, const unsigned char *data) {
    for (int i = 0; i < n_spans; i++) {
        StTensor *t = &st->t[spans[i].index];
        const unsigned char *p = data + spans[i].begin;
        size_t bytes = (size_t)(spans[i].end - spans[i].begin);
        size_t align = st_dtype_size(t->dtype);
        if (((uintptr_t)p % align) != 0) {
            /* The header length need not be a multiple of 8: copy rather than read misaligned. */
            t->data = xmalloc(bytes ? bytes : 1);
            memcpy(t->data, p, bytes);
            t->owned = true;
        } else {
            t->data = (void *)p;
            t->owned = false;
        }
    }
}

int st_read(const char *path, SafeTensors *out, Error *err) {
    memset(out, 0, sizeof *out);
    size_t len = 0;
    unsigned char *buf = (unsigned char *)read_file(path, &len);
    if (!buf) {
        error_set(err, "%s: cannot read: %s", path, strerror(errno));
        return ST_UNREADABLE;
    }
    out->blob = buf;
    uint64_t hlen = 0;
    cJSON *root = parse_header(path, buf, len, &hlen, err);
    if (!root) {
        st_free(out);
        return -1;
    }
    int64_t data_len = (int64_t)(len - 8 - hlen);
    int n_entries = cJSON_GetArraySize(root);
    Span *spans = xcalloc((size_t)(n_entries ? n_entries : 1), sizeof *spans);
    int n_spans = 0;
    int rc = parse_entries(path, root, out, spans, &n_spans, err);
    cJSON_Delete(root);
    if (rc == 0) rc = check_tiling(path, out, spans, n_spans, data_len, err);
    if (rc == 0) bind_data(out, spans, n_spans, buf + 8 + hlen);
    free(spans);
    if (rc) st_free(out);
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

static char *build_header(const SafeTensors *st, size_t *out_len) {
    cJSON *root = cJSON_CreateObject();
    if (st->n_meta) {
        cJSON *m = cJSON_CreateObject();
        for (int i = 0; i < st->n_meta; i++) cJSON_AddItemToObject(m, st->meta[i].key, cJSON_CreateString(st->meta[i].value));
        cJSON_AddItemToObject(root, "__metadata__", m);
    }
    int64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        const StTensor *t = &st->t[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "dtype", cJSON_CreateString(st_dtype_name(t->dtype)));
        cJSON *shape = cJSON_CreateArray();
        for (int d = 0; d < t->rank; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(e, "shape", shape);
        int64_t bytes = t->numel * (int64_t)st_dtype_size(t->dtype);
        cJSON *offs = cJSON_CreateArray();
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)at));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(at + bytes)));
        cJSON_AddItemToObject(e, "data_offsets", offs);
        cJSON_AddItemToObject(root, t->name, e);
        at += bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return NULL;
    /* Pad with spaces so that the data section starts 8-byte aligned. */
    size_t n = strlen(json), padded = (n + 7) & ~(size_t)7;
    char *h = xmalloc(padded + 1);
    memcpy(h, json, n);
    memset(h + n, ' ', padded - n);
    h[padded] = 0;
    cJSON_free(json);
    *out_len = padded;
    return h;
}

int st_read_meta(const char *path, SafeTensors *out, Error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "%s: cannot read: %s", path, strerror(errno));
        return ST_UNREADABLE;
    }
    unsigned char lenbytes[8];
    uint64_t hlen = 0;
    bool ok = fread(lenbytes, 1, 8, f) == 8;
    for (int i = 7; ok && i >= 0; i--) hlen = (hlen << 8) | lenbytes[i];
    ok = ok && hlen >= 2 && hlen <= ST_MAX_HEADER;
    char *header = ok ? xmalloc((size_t)hlen) : NULL;
    ok = ok && fread(header, 1, (size_t)hlen, f) == hlen;
    fclose(f);
    cJSON *root = ok ? cJSON_ParseWithLength(header, (size_t)hlen) : NULL;
    free(header);
    int rc = root && cJSON_IsObject(root) ? 0 : error_set(err, "%s: not a safetensors file (bad header)", path);
    const cJSON *m = rc == 0 ? cJSON_GetObjectItemCaseSensitive(root, "__metadata__") : NULL;
    if (m) rc = parse_metadata(path, m, out, err);
    cJSON_Delete(root);
    if (rc) st_free(out);
    return rc;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return xstrdup(".");
    if (slash == path) return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

int st_write(const char *path, const SafeTensors *st, Error *err) {
    size_t hlen = 0;
    char *header = build_header(st, &hlen);
    if (!header) return error_set(err, "%s: cannot build the JSON header", path);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(header);
        free(tmp);
        return error_set(err, "%s: cannot create a temporary file next to it: %s", path, strerror(e));
    }
    unsigned char lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int rc = write_all(fd, lenbytes, 8);
    if (rc == 0) rc = write_all(fd, header, hlen);
    for (int i = 0; i < st->n && rc == 0; i++)
        rc = write_all(fd, st->t[i].data, (size_t)st->t[i].numel * st_dtype_size(st->t[i].dtype));
    int e = errno;
    free(header);
    if (rc == 0 && fsync(fd) != 0) {
        rc = -1;
        e = errno;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        free(tmp);
        return error_set(err, "%s: write failed: %s (the previous file, if any, is untouched)", path, strerror(e));
    }
    free(tmp);
    /* Make the rename itself durable. */
    char *dir = dir_of(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}
