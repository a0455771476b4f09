/*
 * nvrtc_compile.c — NVRTC compilation of generated CUDA source, the cubin
 * cache, and the per-kernel resource report (nvrtc_compile.h).
 */
#include "nvrtc_compile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#ifndef RXC_CUDA_HOME
#define RXC_CUDA_HOME "/usr/local/cuda"
#endif

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int nvrtc_parse_arch(const char *s) {
    if (!s) return -1;
    if (!strncmp(s, "sm_", 3)) s += 3;
    int major = 0, minor = 0, n = 0;
    if (sscanf(s, "%d.%d%n", &major, &minor, &n) == 2 && s[n] == 0) return major * 10 + minor;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 30 || v > 999) return -1;
    return (int)v;
}

/* The directory holding cuda_bf16.h, or NULL (the source then defines its own bf16). */
static char *bf16_include_dir(const CudaApi *api) {
    const char *env = getenv("CUDA_HOME");
    char *candidates[4] = {0};
    int n = 0;
    if (env && *env) candidates[n++] = xasprintf("%s/include", env);
    candidates[n++] = xstrdup(RXC_CUDA_HOME "/include");
    if (api->nvrtc_path[0]) {
        /* <toolkit>/lib64/libnvrtc.so -> <toolkit>/include */
        char *dir = xstrdup(api->nvrtc_path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            candidates[n++] = xasprintf("%s/../include", dir);
        }
        free(dir);
    }
    char *found = NULL;
    for (int i = 0; i < n; i++) {
        char *h = xasprintf("%s/cuda_bf16.h", candidates[i]);
        if (!found && access(h, R_OK) == 0) found = xstrdup(candidates[i]);
        free(h);
        free(candidates[i]);
    }
    return found;
}

/* The generated kernel whose source contains line `target` (1-based). */
static void kernel_at_line(const char *src, int target, char *out, size_t n) {
    snprintf(out, n, "(module prelude)");
    int line = 1;
    for (const char *s = src; *s && line <= target; line++) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        if (!strncmp(s, "extern \"C\" __global__", 21)) {
            /* the name is the word before the parameter list, after __launch_bounds__(N) */
            const char *bounds = strstr(s, "__launch_bounds__(");
            const char *from = bounds && bounds < s + len ? strchr(bounds, ')') : s;
            const char *paren = from ? memchr(from, '(', len - (size_t)(from - s)) : NULL;
            if (paren) {
                const char *start = paren;
                while (start > s && start[-1] != ' ') start--;
                snprintf(out, n, "%.*s", (int)(paren - start), start);
            }
        }
        if (!eol) break;
        s = eol + 1;
    }
}

static void error_with_kernels(const char *src, const char *log, Error *err) {
    StrBuf b = {0};
    sb_puts(&b, "NVRTC rejected the generated CUDA source (a compiler bug, please report it)");
    const char *p = log;
    int shown = 0;
    while ((p = strstr(p, "rxc.cu(")) && shown < 5) {
        int line = atoi(p + 7);
        const char *eol = strchr(p, '\n');
        if (strstr(p, "error") && (!eol || strstr(p, "error") < eol)) {
            char name[160];
            kernel_at_line(src, line, name, sizeof name);
            sb_printf(&b, "\n  in kernel %s: %.*s", name, (int)(eol ? eol - p : (long)strlen(p)), p);
            shown++;
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    sb_printf(&b, "\nNVRTC log:\n%s", log);
    error_set(err, "%s", b.s);
    free(b.s);
}

static CudaKernelStats *stats_for(NvrtcModule *m, const char *name) {
    for (int i = 0; i < m->n_kernels; i++)
        if (!strcmp(m->kernels[i].name, name)) return &m->kernels[i];
    m->kernels = xrealloc(m->kernels, (size_t)(m->n_kernels + 1) * sizeof *m->kernels);
    CudaKernelStats *k = &m->kernels[m->n_kernels++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    return k;
}

/* The integer written just before phrase in line ("12 bytes smem"), or 0. */
static int number_before(const char *line, const char *phrase) {
    const char *p = strstr(line, phrase);
    if (!p) return 0;
    while (p > line && p[-1] == ' ') p--;
    while (p > line && p[-1] >= '0' && p[-1] <= '9') p--;
    return atoi(p);
}

/* Reads ptxas -v lines: per entry function, registers, smem, stack, spills. */
static void parse_log(NvrtcModule *m) {
    CudaKernelStats *cur = NULL;
    for (const char *s = m->log; s && *s;) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        char *line = xstrndup(s, len);
        const char *q;
        if ((q = strstr(line, "Compiling entry function '")) || (q = strstr(line, "Function properties for "))) {
            const char *name = strchr(q, '\'') ? strchr(q, '\'') + 1 : q + strlen("Function properties for ");
            char buf[128];
            size_t n = strcspn(name, "' \n");
            snprintf(buf, sizeof buf, "%.*s", (int)n, name);
            cur = stats_for(m, buf);
        } else if (cur && strstr(line, "bytes stack frame")) {
            cur->stack_bytes = number_before(line, "bytes stack frame");
            cur->spill_stores = number_before(line, "bytes spill stores");
            cur->spill_loads = number_before(line, "bytes spill loads");
        } else if (cur && strstr(line, "Used ")) {
            cur->registers = number_before(line, "registers");
            cur->shared_bytes = number_before(line, "bytes smem");
        }
        if (strstr(line, ": warning") || strstr(line, "warning #") || strstr(line, "ptxas warning")) m->n_warnings++;
        free(line);
        if (!eol) break;
        s = eol + 1;
    }
}

int nvrtc_compile(const CudaApi *api, const char *source, const NvrtcOptions *opt, NvrtcModule *out, Error *err) {
    memset(out, 0, sizeof *out);
    out->sm = opt->sm;
    if (!(api->loaded & CUDA_LIB_NVRTC)) {
        error_set(err, "NVRTC is not loaded");
        return -1;
    }
    double t0 = now_seconds();
    api->nvrtcVersion(&out->nvrtc_major, &out->nvrtc_minor);

    char arch[32];
    snprintf(arch, sizeof arch, "-arch=sm_%d", opt->sm);
    char *inc_dir = bf16_include_dir(api);
    char *inc = inc_dir ? xasprintf("-I%s", inc_dir) : xstrdup("-DRXC_NO_CUDA_BF16_H");
    const char *options[] = {arch, "--std=c++17", "-Xptxas", "-v", inc};
    int n_options = (int)(sizeof options / sizeof options[0]);

    /* The key covers everything that determines the binary. The include
     * directory's path stands in for the header version. */
    StrBuf keytext = {0};
    sb_printf(&keytext, "rxc-cubin-v1\nnvrtc %d.%d\n", out->nvrtc_major, out->nvrtc_minor);
    for (int i = 0; i < n_options; i++) sb_printf(&keytext, "option %s\n", options[i]);
    sb_puts(&keytext, "source\n");
    sb_puts(&keytext, source);
    sha256_hex(keytext.s, keytext.len, out->key);
    const char *dump = getenv("RXC_NVRTC_DUMP"); /* debugging: the exact text behind the key */
    if (dump && *dump) {
        FILE *f = fopen(dump, "w");
        if (f) {
            fwrite(keytext.s, 1, keytext.len, f);
            fclose(f);
        }
    }
    free(keytext.s);

    int rc = -1;
    char *dir = opt->use_cache ? cache_dir_resolve(opt->cache_dir, "cuda", err) : NULL;
    char *cubin_path = dir ? xasprintf("%s/%s.cubin", dir, out->key) : NULL;
    char *log_path = dir ? xasprintf("%s/%s.log", dir, out->key) : NULL;
    if (opt->use_cache && !dir) goto done;

    if (cubin_path && !opt->refresh) {
        size_t n = 0;
        char *log = read_file(log_path, NULL);
        char *cubin = log ? read_file(cubin_path, &n) : NULL;
        if (log && cubin && n > 0) {
            out->cubin = cubin;
            out->cubin_size = n;
            out->log = log;
            out->from_cache = true;
            parse_log(out);
            out->seconds = now_seconds() - t0;
            rc = 0;
            goto done;
        }
        free(log);
        free(cubin);
    }

    nvrtcProgram prog = NULL;
    nvrtcResult r = api->nvrtcCreateProgram(&prog, source, "rxc.cu", 0, NULL, NULL);
    if (r != 0) {
        error_set(err, "nvrtcCreateProgram: %s", api->nvrtcGetErrorString(r));
        goto done;
    }
    r = api->nvrtcCompileProgram(prog, n_options, options);
    size_t log_size = 0;
    api->nvrtcGetProgramLogSize(prog, &log_size);
    out->log = xmalloc(log_size + 1);
    out->log[0] = 0;
    if (log_size) api->nvrtcGetProgramLog(prog, out->log);
    out->log[log_size] = 0;
    if (r != 0) {
        error_with_kernels(source, out->log, err);
        api->nvrtcDestroyProgram(&prog);
        goto done;
    }
    size_t n = 0;
    if ((r = api->nvrtcGetCUBINSize(prog, &n)) != 0 || n == 0) {
        error_set(err, "NVRTC produced no cubin for sm_%d (%s)", opt->sm,
                  r ? api->nvrtcGetErrorString(r) : "empty");
        api->nvrtcDestroyProgram(&prog);
        goto done;
    }
    out->cubin = xmalloc(n);
    out->cubin_size = n;
    api->nvrtcGetCUBIN(prog, out->cubin);
    api->nvrtcDestroyProgram(&prog);
    parse_log(out);
    out->seconds = now_seconds() - t0;
    rc = 0;
    /* A cache that cannot be written only costs time next run. */
    if (dir && write_file_atomic(log_path, out->log, strlen(out->log), NULL) == 0)
        write_file_atomic(cubin_path, out->cubin, out->cubin_size, NULL);

done:
    free(inc_dir);
    free(inc);
    free(dir);
    free(cubin_path);
    free(log_path);
    if (rc) {
        nvrtc_module_free(out);
    }
    return rc;
}

void nvrtc_module_free(NvrtcModule *m) {
    free(m->cubin);
    free(m->log);
    free(m->kernels);
    m->cubin = NULL;
    m->log = NULL;
    m->kernels = NULL;
    m->n_kernels = 0;
}
