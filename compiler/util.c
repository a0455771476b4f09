/*
 * util.c — see util.h.
 */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void out_of_memory(size_t n) {
    fprintf(stderr, "rxc: out of memory (asked for %zu bytes)\n", n);
    abort();
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(n);
    return p;
}

void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) out_of_memory(count * size);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) out_of_memory(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...) {
    StrBuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    return sb_take(&b);
}

void grow_array(void **items, int *cap, int need, size_t elem) {
    if (need <= *cap) return;
    int n = *cap ? *cap : 8;
    while (n < need) n *= 2;
    *items = xrealloc(*items, (size_t)n * elem);
    memset((char *)*items + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *cap = n;
}

static void sb_reserve(StrBuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t n = b->cap ? b->cap : 64;
    while (n < b->len + extra + 1) n *= 2;
    b->s = xrealloc(b->s, n);
    b->cap = n;
}

void sb_putc(StrBuf *b, char c) {
    sb_reserve(b, 1);
    b->s[b->len++] = c;
    b->s[b->len] = 0;
}

void sb_puts(StrBuf *b, const char *s) {
    size_t n = strlen(s);
    sb_reserve(b, n);
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void sb_vprintf(StrBuf *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return;
    sb_reserve(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void sb_printf(StrBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

char *sb_take(StrBuf *b) {
    char *s = b->s ? b->s : xstrdup("");
    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    StrBuf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        sb_reserve(&b, n);
        memcpy(b.s + b.len, chunk, n);
        b.len += n;
        b.s[b.len] = 0;
    }
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        free(b.s);
        errno = saved ? saved : EIO;
        return NULL;
    }
    if (len) *len = b.len;
    return sb_take(&b);
}

char *atomic_temp_path(const char *path) { return xasprintf("%s" ATOMIC_TEMP_TAG "%ld", path, (long)getpid()); }

int write_file_atomic(const char *path, const void *data, size_t n, Error *err) {
    char *tmp = atomic_temp_path(path);
    FILE *f = fopen(tmp, "wb");
    int rc = -1, saved = 0;
    if (!f) {
        saved = errno;
        error_set(err, "cannot write %s: %s", path, strerror(saved));
    } else {
        bool ok = fwrite(data, 1, n, f) == n;
        if (fclose(f) != 0) ok = false;
        saved = errno;
        if (!ok) error_set(err, "cannot write %s: %s", path, strerror(saved));
        else if (rename(tmp, path) != 0) {
            saved = errno;
            error_set(err, "cannot rename %s to %s: %s", tmp, path, strerror(saved));
        } else rc = 0;
        if (rc) unlink(tmp);
    }
    free(tmp);
    if (rc) errno = saved;
    return rc;
}

bool is_directory(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int make_dirs(const char *path, unsigned mode, Error *err) {
    if (!*path) {
        errno = ENOENT;
        return error_set(err, "cannot create a directory with an empty name");
    }
    char *p = xstrdup(path);
    int rc = 0;
    /* Each prefix ending at a '/', then the whole path. */
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            int saved = errno;
            error_set(err, "cannot create directory %s: %s", p, strerror(saved));
            errno = saved;
            rc = -1;
        }
        *s = c;
        if (!c) break;
    }
    if (rc == 0 && !is_directory(p)) {
        error_set(err, "%s exists and is not a directory", p);
        errno = ENOTDIR;
        rc = -1;
    }
    free(p);
    return rc;
}

/* A cache directory rxc can use: made if missing, and writable. */
static int usable_cache_dir(const char *dir, Error *why) {
    if (make_dirs(dir, 0755, why) != 0) return -1;
    if (access(dir, W_OK) != 0) return error_set(why, "%s is not writable: %s", dir, strerror(errno));
    return 0;
}

static char *with_sub(const char *dir, const char *sub) {
    return sub && *sub ? xasprintf("%s/%s", dir, sub) : xstrdup(dir);
}

char *cache_dir_resolve(const char *chosen, const char *sub, Error *err) {
    Error why = {0};
    const char *env = getenv("RXC_CACHE_DIR");
    if (!chosen && env && *env) {
        char *dir = with_sub(env, sub);
        if (usable_cache_dir(dir, &why) == 0) return dir;
        error_set(err, "RXC_CACHE_DIR=%s cannot hold rxc's cache (%s); point it at a writable directory or unset it",
                  env, why.msg);
        free(dir);
        return NULL;
    }
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *dir = chosen ? xstrdup(chosen)
                : xdg && *xdg ? xasprintf("%s/rxc%s%s", xdg, sub ? "/" : "", sub ? sub : "")
                : home && *home ? xasprintf("%s/.cache/rxc%s%s", home, sub ? "/" : "", sub ? sub : "")
                                : NULL;
    if (dir && usable_cache_dir(dir, &why) == 0) return dir;
    if (!dir) error_set(&why, "neither HOME nor XDG_CACHE_HOME is set");
    /* An unusable default (read-only home, someone else's directory) should
     * not stop rxc: a per-user directory under /tmp works as well, since the
     * cache keys name everything an entry depends on. */
    char *base = xasprintf("/tmp/rxc-cache-%ld", (long)getuid());
    char *fallback = with_sub(base, sub);
    free(base);
    Error why2 = {0};
    if (usable_cache_dir(fallback, &why2) != 0) {
        error_set(err, "no usable cache directory (%s; %s)", why.msg, why2.msg);
        free(fallback);
        free(dir);
        return NULL;
    }
    fprintf(stderr, "rxc: note: %s; using %s for the cache instead\n", why.msg, fallback);
    free(dir);
    return fallback;
}

char *path_stem(const char *path) {
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    const char *dot = strrchr(s, '.');
    return dot && dot != s ? xstrndup(s, (size_t)(dot - s)) : xstrdup(s);
}

uint64_t fnv1a64(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

double rng_normal(Rng *r) {
    /* Box-Muller on two 53-bit uniforms; u1 in (0, 1] so log is finite. */
    double u1 = ((rng_next(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- SHA-256 (FIPS 180-4) ---- */
static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(uint32_t h[8], const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void sha256_hex(const void *data, size_t n, char out[65]) {
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t full = n / 64 * 64;
    for (size_t i = 0; i < full; i += 64) sha256_block(h, p + i);
    unsigned char tail[128] = {0};
    size_t rest = n - full;
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tail_len; i += 64) sha256_block(h, tail + i);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", h[i]);
}

void bf16_from_f32(uint16_t *dst, const void *src, int64_t n) {
    const unsigned char *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, s + i * 4, sizeof u);
        dst[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)0x7fc0u : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}
