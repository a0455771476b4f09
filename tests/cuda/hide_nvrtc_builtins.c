/*
 * hide_nvrtc_builtins.c — an LD_PRELOAD shim for tests/cuda that makes the
 * loader's path hostile to NVRTC's builtins library, as on a machine where
 * the toolkit's lib directory is on neither LD_LIBRARY_PATH nor ldconfig's
 * cache (here it is on both, so the failure needs simulating).
 *
 * RXC_TEST_HIDE_BUILTINS=soname: dlopen("libnvrtc-builtins.so.X.Y"), a bare
 * soname as NVRTC asks for it, only finds a library already loaded (by rxc,
 * from libnvrtc's own directory). =all: a path to it fails too, so nothing
 * can load it and rxc's error must say which file and where it looked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

void *dlopen(const char *name, int flags) {
    void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    const char *mode = getenv("RXC_TEST_HIDE_BUILTINS");
    if (mode && name && strstr(name, "libnvrtc-builtins")) {
        if (!strcmp(mode, "all")) return NULL;
        if (!strchr(name, '/')) flags |= RTLD_NOLOAD;
    }
    return real(name, flags);
}
