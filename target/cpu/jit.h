/*
 * jit.h — compiles generated C at run time into a shared object, loads it
 * with dlopen, and keeps compiled objects in an on-disk cache.
 *
 * Cache key: SHA-256 over the source, the resolved compiler path, its
 * `--version` output, the flags and the CPU model and feature flags (the
 * default flags contain -march=native). Anything that could change the
 * object changes the key, so a stale object cannot be loaded. Each entry is
 * KEY.so plus KEY.so.sha256 (the object's own checksum, written last); an
 * object whose checksum does not match is rebuilt. Entries are written to a
 * temporary name and renamed into place, so concurrent rxc processes never
 * see half-written files. KEY.c keeps the source for reading.
 *
 * Cache directory: JitOptions.cache_dir, else $RXC_CACHE_DIR, else
 * $XDG_CACHE_HOME/rxc, else ~/.cache/rxc (cache_dir_resolve in util.h: an
 * unusable $RXC_CACHE_DIR is an error, an unusable default falls back to
 * /tmp/rxc-cache-UID with a note).
 * Compiler: $RXC_CC, else `cc`.
 */
#ifndef RXC_JIT_H
#define RXC_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include "error.h"

/* -O3 for vectorisation; -march=native because the object is built on and
 * for this machine (the CPU is part of the key); -ffp-contract=off so a*b+c
 * is never fused into an FMA: results then match a plain C (or PyTorch
 * reference) evaluation of the same expression order and do not change with
 * the instruction set; -fno-math-errno lets sqrtf compile to one
 * instruction (errno is never read). No -ffast-math: it would reassociate
 * sums and change results between compilers. */
#define JIT_DEFAULT_FLAGS "-O3 -march=native -fopenmp -fPIC -shared -std=c11 -ffp-contract=off -fno-math-errno"

typedef struct JitOptions {
    const char *cc;        /* NULL: $RXC_CC or "cc" */
    const char *flags;     /* NULL: JIT_DEFAULT_FLAGS; split on spaces */
    const char *cache_dir; /* NULL: see above */
    int parts;             /* split the source into this many objects compiled in parallel; <= 1: one */
} JitOptions;

typedef struct JitInfo {
    bool cache_hit;        /* loaded from the cache, nothing compiled */
    bool rebuilt_corrupt;  /* a cached object failed its checksum and was rebuilt */
    double seconds;        /* wall time of jit_load: compile (cold) or load (warm) */
    char key[65];
    char so_path[4096];
} JitInfo;

typedef struct JitLib JitLib;

/* Compiles (or loads from the cache) one C translation unit. On failure
 * returns NULL with a message: for a compile error, the kernel and line the
 * compiler complained about, where the source was kept, and the compiler's
 * log. opts and info may be NULL. */
JitLib *jit_load(const char *source, const JitOptions *opts, JitInfo *info, Error *err);
void *jit_symbol(JitLib *lib, const char *name);
void jit_free(JitLib *lib);

#endif
