/*
 * util.h — small helpers shared by the compiler and the runtime: checked
 * allocation, a growable string, files (whole-file reading, atomic writes,
 * `mkdir -p`, the cache directory), hashing, bfloat16 rounding and a
 * deterministic random number generator.
 *
 * Allocation failure aborts with a message: rxc cannot do anything useful
 * without memory, and every other error is passed up as a value.
 */
#ifndef RXC_UTIL_H
#define RXC_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grows *items (of *cap elements of size elem) so that it holds at least
 * need elements. */
void grow_array(void **items, int *cap, int need, size_t elem);
#define GROW(arr, cap, need) grow_array((void **)&(arr), &(cap), (need), sizeof *(arr))

typedef struct StrBuf {
    char *s;      /* always NUL-terminated once anything was added */
    size_t len, cap;
} StrBuf;

void sb_putc(StrBuf *b, char c);
void sb_puts(StrBuf *b, const char *s);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);
char *sb_take(StrBuf *b); /* returns the string (never NULL) and resets b */

/* Reads a whole file; returns NULL and sets errno on failure. *len may be NULL. */
char *read_file(const char *path, size_t *len);

/* The temporary name an atomic write of path uses before its rename:
 * "PATH" ATOMIC_TEMP_TAG "PID", so that a reader (runtime/run_dir.c) can tell
 * a dead writer's leftovers. malloc'd. */
#define ATOMIC_TEMP_TAG ".tmp."
char *atomic_temp_path(const char *path);

/* Writes data to path through "path.tmp.PID" and a rename, so that a reader
 * (another rxc process, a viewer) never sees half a file. Returns 0, or -1
 * with a message in err (err may be NULL) and errno set; the temporary file
 * is removed and a previous file at path is left untouched. */
int write_file_atomic(const char *path, const void *data, size_t n, Error *err);

/* True when path (may be NULL) names a directory. */
bool is_directory(const char *path);

/* `mkdir -p path`: creates path and its missing parents with mode (before
 * the umask). Returns 0 when path is a directory afterwards, or -1 with a
 * message naming the part that failed in err (may be NULL) and errno set
 * (ENOTDIR when something on the way is not a directory). */
int make_dirs(const char *path, unsigned mode, Error *err);

/* rxc's cache directory (compiled kernels), created if missing, as a
 * malloc'd path:
 *   chosen (a caller's explicit directory, used as given) when non-NULL,
 *   else $RXC_CACHE_DIR, else $XDG_CACHE_HOME/rxc, else $HOME/.cache/rxc,
 *   each followed by "/sub" when sub (e.g. "cuda") is non-NULL.
 * When $RXC_CACHE_DIR is set but cannot be created or written, that is the
 * user's mistake: NULL with a message naming the variable and the path.
 * When the default (or chosen) directory cannot be, /tmp/rxc-cache-UID is
 * used instead and a note saying so goes to stderr; NULL with a message
 * only when that fails too. */
char *cache_dir_resolve(const char *chosen, const char *sub, Error *err);

/* The file name of path without its directory and last extension
 * ("models/tiny.net" -> "tiny"), malloc'd. */
char *path_stem(const char *path);

/* FNV-1a, 64 bit: for hash tables and structural hashing, not for caches. */
uint64_t fnv1a64(const void *data, size_t n, uint64_t h);
#define FNV1A64_INIT 0xcbf29ce484222325ULL

/* SHA-256 of data as 64 lowercase hex digits plus NUL: cache keys. */
void sha256_hex(const void *data, size_t n, char out[65]);

/* splitmix64: a counter-based generator. Every random choice in rxc is a
 * pure function of (seed, stream, counter), so results never depend on the
 * thread count or on the order in which work is scheduled. */
static inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
static inline uint64_t rng_key(uint64_t seed, uint64_t stream, uint64_t counter) {
    return splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ counter);
}
/* Uniform in [0, 1) with 24 random bits, exactly representable in float. */
static inline float rng_uniform(uint64_t key) { return (float)(key >> 40) * (1.0f / 16777216.0f); }

/* n floats (any alignment) rounded to bfloat16 as the kernels store them:
 * to nearest even, NaN to the quiet NaN 0x7fc0 (CUDA's __float2bfloat16). */
void bf16_from_f32(uint16_t *dst, const void *src, int64_t n);

/* A sequential stream for code that draws many numbers (initialisation). */
typedef struct Rng { uint64_t seed, stream, counter; } Rng;
static inline uint64_t rng_next(Rng *r) { return rng_key(r->seed, r->stream, r->counter++); }
double rng_normal(Rng *r); /* standard normal, Box-Muller */

#endif
