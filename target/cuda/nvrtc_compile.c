/*
 * nvrtc_compile.c — NVRTC compilation of generated CUDA source split into
 * parts compiled on parallel threads, the cubin cache, and the per-kernel
 * resource report (nvrtc_compile.h).
 */
#include "nvrtc_compile.h"

#include <pthread.h>
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

static void error_with_kernels(const CudaApi *api, const char *src, const char *log, Error *err) {
    if (strstr(log, "libnvrtc-builtins")) {
        /* not the generated code: NVRTC could not load its own library */
        error_set(err,
                  "NVRTC (%s) could not load its builtins library: rxc looked for %s, then NVRTC on the loader's "
                  "path (LD_LIBRARY_PATH, ldconfig). Install the toolkit's NVRTC completely (libnvrtc-builtins "
                  "ships next to libnvrtc), or add its lib directory to LD_LIBRARY_PATH.\nNVRTC log:\n%s",
                  api->nvrtc_path[0] ? api->nvrtc_path : "libnvrtc", api->nvrtc_builtins_sought[0]
                  ? api->nvrtc_builtins_sought : "libnvrtc-builtins (NVRTC's version unknown)", log);
        return;
    }
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

/* ---- splitting the module ---------------------------------------------------- */

/* A kernel begins at its header comment "/ * NAME: " (no space) at the start of
 * a line after an empty line; render_cuda writes one before each kernel. */
static bool kernel_starts_at(const char *src, const char *p) {
    if (p - src < 2 || p[-1] != '\n' || p[-2] != '\n' || strncmp(p, "/* ", 3)) return false;
    const char *q = p + 3;
    if (!(*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))) return false;
    while (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9')) q++;
    return q[0] == ':' && q[1] == ' ';
}

/* Splits src into at most `parts` translation units of similar size at
 * kernel starts; each starts with the prelude (everything before the first
 * kernel), where an unused function (warning 177) is no warning. Returns
 * how many. */
static int split_kernels(const char *src, int parts, char ***out) {
    const char *first = NULL;
    for (const char *p = strstr(src, "\n\n/* "); p && !first; p = strstr(p + 1, "\n\n/* "))
        if (kernel_starts_at(src, p + 2)) first = p + 2;
    char **units = xcalloc((size_t)(parts > 1 ? parts : 1), sizeof(char *));
    *out = units;
    if (parts <= 1 || !first) {
        units[0] = xstrdup(src);
        return 1;
    }
    size_t prelude = (size_t)(first - src), body = strlen(first);
    int n = 0;
    const char *p = first;
    while (*p) {
        const char *end = p + strlen(p);
        if (n < parts - 1) {
            /* the first kernel start at or past this part's share of the body */
            const char *target = first + body * (size_t)(n + 1) / (size_t)parts;
            const char *q = target > p ? target : p + 1;
            for (q = strstr(q - 2, "\n\n/* "); q && !kernel_starts_at(src, q + 2); q = strstr(q + 1, "\n\n/* ")) {}
            if (q) end = q + 2;
        }
        /* a prelude helper only some parts use (random numbers) must not warn in the others */
        units[n++] = xasprintf("#pragma nv_diag_suppress 177\n%.*s#pragma nv_diag_default 177\n%.*s", (int)prelude,
                               src, (int)(end - p), p);
        p = end;
    }
    return n;
}

/* The entry points a part defines: the word before "(" on each
 * `extern "C" __global__` line, after __launch_bounds__(N). */
static void find_entries(NvrtcPart *part, const char *src) {
    const char *head = "extern \"C\" __global__";
    for (const char *s = strstr(src, head); s; s = strstr(s + 1, head)) {
        if (s > src && s[-1] != '\n') continue;
        const char *eol = strchr(s, '\n');
        const char *bounds = strstr(s, "__launch_bounds__(");
        const char *from = bounds && (!eol || bounds < eol) ? strchr(bounds, ')') : s + strlen(head);
        const char *paren = from ? strchr(from, '(') : NULL;
        if (!paren || (eol && paren > eol)) continue;
        const char *start = paren;
        while (start > s && start[-1] != ' ') start--;
        part->entries = xrealloc(part->entries, (size_t)(part->n_entries + 1) * sizeof(char *));
        part->entries[part->n_entries++] = xstrndup(start, (size_t)(paren - start));
    }
}

int nvrtc_module_part_of(const NvrtcModule *m, const char *name) {
    for (int p = 0; p < m->n_parts; p++)
        for (int e = 0; e < m->parts[p].n_entries; e++)
            if (!strcmp(m->parts[p].entries[e], name)) return p;
    return -1;
}

/* RXC_NVRTC_THREADS, else the online cores; one part for a small source
 * unless the count was given (it compiles faster whole). */
static int part_count(const NvrtcOptions *opt, size_t source_len) {
    if (opt->threads > 0) return opt->threads;
    const char *env = getenv("RXC_NVRTC_THREADS");
    if (env && atoi(env) > 0) return atoi(env) < 256 ? atoi(env) : 256;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (source_len < 64 * 1024 || cpus < 1) return 1;
    return cpus < 256 ? (int)cpus : 256;
}

/* ---- compiling the parts ---------------------------------------------------------- */

typedef struct PartJob {
    const CudaApi *api;
    const char *source;
    const char *const *options;
    int n_options, sm;
    NvrtcPart *part;
    char *log;
    bool compile_failed;  /* NVRTC rejected the source: the log says why */
    Error err;            /* any other failure */
} PartJob;

static void *compile_part(void *arg) {
    PartJob *j = arg;
    const CudaApi *api = j->api;
    nvrtcProgram prog = NULL;
    nvrtcResult r = api->nvrtcCreateProgram(&prog, j->source, "rxc.cu", 0, NULL, NULL);
    if (r != 0) {
        error_set(&j->err, "nvrtcCreateProgram: %s", api->nvrtcGetErrorString(r));
        return NULL;
    }
    r = api->nvrtcCompileProgram(prog, j->n_options, j->options);
    size_t log_size = 0;
    api->nvrtcGetProgramLogSize(prog, &log_size);
    j->log = xmalloc(log_size + 1);
    j->log[0] = 0;
    if (log_size) api->nvrtcGetProgramLog(prog, j->log);
    j->log[log_size] = 0;
    size_t n = 0;
    if (r != 0) j->compile_failed = true;
    else if ((r = api->nvrtcGetCUBINSize(prog, &n)) != 0 || n == 0)
        error_set(&j->err, "NVRTC produced no cubin for sm_%d (%s)", j->sm, r ? api->nvrtcGetErrorString(r) : "empty");
    else {
        j->part->cubin = xmalloc(n);
        j->part->cubin_size = n;
        api->nvrtcGetCUBIN(prog, j->part->cubin);
    }
    api->nvrtcDestroyProgram(&prog);
    return NULL;
}

/* Compiles every job, at most `threads` at once (the jobs are similar in
 * size, so batches of `threads` keep every thread busy). */
static void run_jobs(PartJob *jobs, int n, int threads) {
    pthread_t *tids = xcalloc((size_t)(n ? n : 1), sizeof *tids);
    bool *started = xcalloc((size_t)(n ? n : 1), sizeof *started);
    for (int from = 0; from < n; from += threads) {
        int to = from + threads < n ? from + threads : n;
        for (int i = from; i < to; i++)
            /* the last of a batch runs here; a thread that cannot start runs here too */
            started[i] = i + 1 < to && pthread_create(&tids[i], NULL, compile_part, &jobs[i]) == 0;
        for (int i = from; i < to; i++)
            if (!started[i]) compile_part(&jobs[i]);
        for (int i = from; i < to; i++)
            if (started[i]) pthread_join(tids[i], NULL);
    }
    free(tids);
    free(started);
}

/* ---- the cache and the module ----------------------------------------------------- */

/* The key of one part: everything that determines its binary. The include
 * directory's path stands in for the header version. */
static void part_key(const NvrtcModule *m, const char *const *options, int n_options, const char *source,
                     const char *dump, int index, char key[65]) {
    StrBuf keytext = {0};
    sb_printf(&keytext, "rxc-cubin-v1\nnvrtc %d.%d\n", m->nvrtc_major, m->nvrtc_minor);
    for (int i = 0; i < n_options; i++) sb_printf(&keytext, "option %s\n", options[i]);
    sb_puts(&keytext, "source\n");
    sb_puts(&keytext, source);
    sha256_hex(keytext.s, keytext.len, key);
    if (dump && *dump) { /* debugging: the exact text behind the key */
        char *path = index ? xasprintf("%s.%d", dump, index) : xstrdup(dump);
        FILE *f = fopen(path, "w");
        if (f) {
            fwrite(keytext.s, 1, keytext.len, f);
            fclose(f);
        }
        free(path);
    }
    free(keytext.s);
}

/* A cached part: its cubin and log. Returns 0 on a hit. */
static int load_cached(const char *dir, NvrtcPart *part, char **log) {
    char *cubin_path = xasprintf("%s/%s.cubin", dir, part->key);
    char *log_path = xasprintf("%s/%s.log", dir, part->key);
    size_t n = 0;
    *log = read_file(log_path, NULL);
    char *cubin = *log ? read_file(cubin_path, &n) : NULL;
    free(cubin_path);
    free(log_path);
    if (*log && cubin && n > 0) {
        part->cubin = cubin;
        part->cubin_size = n;
        part->from_cache = true;
        return 0;
    }
    free(*log);
    free(cubin);
    *log = NULL;
    return -1;
}

/* A cache that cannot be written only costs time next run. */
static void store_cached(const char *dir, const NvrtcPart *part, const char *log) {
    char *cubin_path = xasprintf("%s/%s.cubin", dir, part->key);
    char *log_path = xasprintf("%s/%s.log", dir, part->key);
    if (write_file_atomic(log_path, log, strlen(log), NULL) == 0)
        write_file_atomic(cubin_path, part->cubin, part->cubin_size, NULL);
    free(cubin_path);
    free(log_path);
}

/* Every part from the cache or NVRTC; the logs joined in part order. */
static int compile_parts(const CudaApi *api, char **units, const char *const *options, int n_options,
                         const NvrtcOptions *opt, const char *dir, NvrtcModule *out, Error *err) {
    PartJob *jobs = xcalloc((size_t)out->n_parts, sizeof *jobs);
    int n_jobs = 0, rc = 0;
    int *job_of = xcalloc((size_t)out->n_parts, sizeof *job_of);
    char **logs = xcalloc((size_t)out->n_parts, sizeof *logs);
    for (int i = 0; i < out->n_parts; i++) {
        job_of[i] = -1;
        if (dir && !opt->refresh && load_cached(dir, &out->parts[i], &logs[i]) == 0) continue;
        jobs[n_jobs] = (PartJob){.api = api, .source = units[i], .options = options, .n_options = n_options,
                                 .sm = opt->sm, .part = &out->parts[i]};
        job_of[i] = n_jobs++;
    }
    out->threads = n_jobs < out->threads ? (n_jobs ? n_jobs : 1) : out->threads;
    run_jobs(jobs, n_jobs, out->threads);
    StrBuf all = {0};
    out->from_cache = n_jobs == 0;
    for (int i = 0; i < out->n_parts; i++) {
        PartJob *j = job_of[i] >= 0 ? &jobs[job_of[i]] : NULL;
        if (j && !rc && j->compile_failed) rc = (error_with_kernels(api, units[i], j->log, err), -1);
        else if (j && !rc && error_is_set(&j->err)) rc = error_set(err, "%s", j->err.msg);
        if (j && !rc && dir) store_cached(dir, &out->parts[i], j->log);
        sb_puts(&all, j ? (j->log ? j->log : "") : logs[i]);
    }
    out->log = sb_take(&all);
    for (int i = 0; i < out->n_parts; i++) free(logs[i]);
    for (int j = 0; j < n_jobs; j++) free(jobs[j].log);
    free(logs);
    free(job_of);
    free(jobs);
    return rc;
}

int nvrtc_compile(const CudaApi *api, const char *source, const NvrtcOptions *opt, NvrtcModule *out, Error *err) {
    memset(out, 0, sizeof *out);
    out->sm = opt->sm;
    if (!(api->loaded & CUDA_LIB_NVRTC)) return error_set(err, "NVRTC is not loaded");
    double t0 = now_seconds();
    api->nvrtcVersion(&out->nvrtc_major, &out->nvrtc_minor);

    char arch[32];
    snprintf(arch, sizeof arch, "-arch=sm_%d", opt->sm);
    char *inc_dir = bf16_include_dir(api);
    char *inc = inc_dir ? xasprintf("-I%s", inc_dir) : xstrdup("-DRXC_NO_CUDA_BF16_H");
    const char *options[] = {arch, "--std=c++17", "-Xptxas", "-v", inc};
    int n_options = (int)(sizeof options / sizeof options[0]);

    char **units = NULL;
    out->threads = part_count(opt, strlen(source));
    out->n_parts = split_kernels(source, out->threads, &units);
    out->parts = xcalloc((size_t)out->n_parts, sizeof *out->parts);
    StrBuf keys = {0};
    for (int i = 0; i < out->n_parts; i++) {
        part_key(out, options, n_options, units[i], getenv("RXC_NVRTC_DUMP"), i, out->parts[i].key);
        find_entries(&out->parts[i], units[i]);
        sb_puts(&keys, out->parts[i].key);
    }
    if (out->n_parts == 1) memcpy(out->key, out->parts[0].key, sizeof out->key);
    else sha256_hex(keys.s, keys.len, out->key);
    free(keys.s);

    int rc = -1;
    char *dir = opt->use_cache ? cache_dir_resolve(opt->cache_dir, "cuda", err) : NULL;
    if ((!opt->use_cache || dir) && compile_parts(api, units, options, n_options, opt, dir, out, err) == 0) {
        parse_log(out);
        out->seconds = now_seconds() - t0;
        rc = 0;
    }
    for (int i = 0; i < out->n_parts; i++) free(units[i]);
    free(units);
    free(inc_dir);
    free(inc);
    free(dir);
    if (rc) nvrtc_module_free(out);
    return rc;
}

void nvrtc_module_free(NvrtcModule *m) {
    for (int p = 0; p < m->n_parts; p++) {
        free(m->parts[p].cubin);
        for (int e = 0; e < m->parts[p].n_entries; e++) free(m->parts[p].entries[e]);
        free(m->parts[p].entries);
    }
    free(m->parts);
    free(m->log);
    free(m->kernels);
    m->parts = NULL;
    m->n_parts = 0;
    m->log = NULL;
    m->kernels = NULL;
    m->n_kernels = 0;
}
