/*
 * jit.c — run-time compilation of generated C with the system compiler, an
 * on-disk cache of the shared objects, and symbol lookup (see jit.h).
 */
#include "jit.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct JitLib {
    void *handle;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- processes ------------------------------------------------------------ */

/* Starts argv with stdout and stderr going to out_path (appended), returns
 * the pid or -1. */
static pid_t spawn(char *const argv[], const char *out_path) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static int wait_status(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Runs argv and returns its output (stdout + stderr), or NULL. */
static char *capture(char *const argv[], const char *tmp_path) {
    unlink(tmp_path);
    pid_t pid = spawn(argv, tmp_path);
    if (pid < 0) return NULL;
    int rc = wait_status(pid);
    char *text = read_file(tmp_path, NULL);
    unlink(tmp_path);
    if (rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- identity of the compiler and the machine ------------------------------ */

static char *resolve_program(const char *name) {
    char real[PATH_MAX];
    if (strchr(name, '/')) return realpath(name, real) ? xstrdup(real) : NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char *copy = xstrdup(path), *save = NULL;
    char *found = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        char *cand = xasprintf("%s/%s", *dir ? dir : ".", name);
        if (access(cand, X_OK) == 0 && realpath(cand, real)) found = xstrdup(real);
        free(cand);
    }
    free(copy);
    return found;
}

/* The CPU model and feature flags of the first processor: -march=native
 * output depends on both. */
static char *cpu_identity(void) {
    char *info = read_file("/proc/cpuinfo", NULL);
    StrBuf b = {0};
    if (info) {
        const char *wanted[] = {"vendor_id", "cpu family", "model\t", "model name", "flags"};
        for (size_t w = 0; w < sizeof wanted / sizeof wanted[0]; w++) {
            const char *p = strstr(info, wanted[w]);
            if (!p) continue;
            const char *end = strchr(p, '\n');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            char *l = xstrndup(p, n);
            sb_puts(&b, l);
            sb_putc(&b, '\n');
            free(l);
        }
        free(info);
    }
    return sb_take(&b);
}

/* ---- options ---------------------------------------------------------------- */

typedef struct Args {
    char **v;
    int n, cap;
} Args;

static void args_push(Args *a, const char *s) {
    GROW(a->v, a->cap, a->n + 2);
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

static void args_push_flags(Args *a, const char *flags, bool drop_shared) {
    char *copy = xstrdup(flags), *save = NULL;
    for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
        if (!(drop_shared && !strcmp(t, "-shared"))) args_push(a, t);
    free(copy);
}

static void args_free(Args *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

/* ---- files -------------------------------------------------------------------- */

/* True when path exists and its SHA-256 equals the one recorded next to it. */
static bool checksum_ok(const char *so_path) {
    char *sum_path = xasprintf("%s.sha256", so_path);
    size_t n = 0, m = 0;
    char *recorded = read_file(sum_path, &m);
    char *bytes = recorded ? read_file(so_path, &n) : NULL;
    bool ok = false;
    if (recorded && bytes && m >= 64) {
        char actual[65];
        sha256_hex(bytes, n, actual);
        ok = memcmp(actual, recorded, 64) == 0;
    }
    free(sum_path);
    free(recorded);
    free(bytes);
    return ok;
}

/* The kernel whose body holds line `line_no` of source: the last
 * "void NAME(void *const *bufs" at or above it. */
static char *kernel_at_line(const char *source, long line_no) {
    long line = 1;
    char *name = NULL;
    for (const char *p = source; *p && line <= line_no; line++) {
        const char *end = strchr(p, '\n');
        if (!strncmp(p, "void ", 5)) {
            const char *paren = strchr(p + 5, '(');
            if (paren && (!end || paren < end)) {
                free(name);
                name = xstrndup(p + 5, (size_t)(paren - p - 5));
            }
        }
        if (!end) break;
        p = end + 1;
    }
    return name;
}

/* A compile error in generated code is a bug in rxc: say where, keep the
 * source, show the compiler's own words. */
static void report_compile_error(const char *log_path, const char *src_path, const char *part_source, Error *err) {
    char *log = read_file(log_path, NULL);
    long line_no = -1;
    if (log) {
        /* the first "PATH:LINE:" of the log (skipping "PATH: In function ...") */
        size_t n = strlen(src_path);
        for (const char *p = strstr(log, src_path); p && line_no <= 0; p = strstr(p + n, src_path))
            if (p[n] == ':' && p[n + 1] >= '0' && p[n + 1] <= '9') line_no = strtol(p + n + 1, NULL, 10);
    }
    char *kernel = line_no > 0 ? kernel_at_line(part_source, line_no) : NULL;
    const char *text = log ? log : "(no compiler output)";
    size_t text_len = strlen(text);
    const size_t keep = 3000;
    error_set(err,
              "internal error: the C compiler rejected generated code%s%s (line %ld of %s, kept for reading); "
              "this is a bug in rxc's code generator. Compiler output%s:\n%.*s",
              kernel ? " in kernel " : "", kernel ? kernel : "", line_no, src_path,
              text_len > keep ? " (first part)" : "", (int)(text_len > keep ? keep : text_len), text);
    free(kernel);
    free(log);
}

/* Splits source at kernel boundaries (a line starting "/ * kernel ", without
 * the space) into at most `parts`
 * translation units of similar size, each starting with the shared prelude
 * (everything before the first kernel). */
static int split_source(const char *source, int parts, char ***out) {
    const char *marker = "\n/* kernel ";
    const char *first = strstr(source, marker);
    if (parts <= 1 || !first) {
        *out = xmalloc(sizeof(char *));
        (*out)[0] = xstrdup(source);
        return 1;
    }
    size_t prelude = (size_t)(first - source) + 1;
    size_t body = strlen(source) - prelude;
    char **units = xcalloc((size_t)parts, sizeof(char *));
    int n = 0;
    const char *p = source + prelude;
    for (int u = 0; u < parts && *p; u++) {
        const char *end;
        if (u == parts - 1) end = p + strlen(p);
        else {
            const char *target = source + prelude + body * (size_t)(u + 1) / (size_t)parts;
            if (target <= p) target = p + 1;
            const char *next = strstr(target - 1, marker);
            end = next ? next + 1 : p + strlen(p);
        }
        if (end <= p) continue;
        StrBuf b = {0};
        char *pre = xstrndup(source, prelude);
        sb_puts(&b, pre);
        free(pre);
        char *chunk = xstrndup(p, (size_t)(end - p));
        sb_puts(&b, chunk);
        free(chunk);
        units[n++] = sb_take(&b);
        p = end;
    }
    *out = units;
    return n;
}

static int default_parts(size_t source_len) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (cpus > 8) cpus = 8;
    /* Small sources compile faster in one piece than split and linked. */
    return source_len < 64 * 1024 ? 1 : (int)cpus;
}

/* Compiles source into out_so (a temporary path in the cache directory). */
static int compile(const char *source, const char *cc, const char *flags, int parts, const char *dir,
                   const char *key, const char *out_so, Error *err) {
    char **units = NULL;
    int n_units = split_source(source, parts, &units);
    char **src_paths = xcalloc((size_t)n_units, sizeof(char *));
    char **obj_paths = xcalloc((size_t)n_units, sizeof(char *));
    char **log_paths = xcalloc((size_t)n_units, sizeof(char *));
    pid_t *pids = xcalloc((size_t)n_units, sizeof(pid_t));
    long tag = (long)getpid();
    int rc = 0;
    if (n_units > 1) {
        /* The whole source is kept for reading as KEY.c; the parts go. */
        char *whole = xasprintf("%s/%s.c", dir, key);
        rc = write_file_atomic(whole, source, strlen(source), err);
        free(whole);
    }
    for (int u = 0; u < n_units; u++) {
        src_paths[u] = n_units == 1 ? xasprintf("%s/%s.c", dir, key) : xasprintf("%s/%s.part%d.c", dir, key, u);
        obj_paths[u] = xasprintf("%s/tmp-%s-%ld-%d.o", dir, key, tag, u);
        log_paths[u] = xasprintf("%s/tmp-%s-%ld-%d.log", dir, key, tag, u);
        unlink(log_paths[u]);
        if (write_file_atomic(src_paths[u], units[u], strlen(units[u]), err) != 0) rc = -1;
    }
    for (int u = 0; u < n_units && rc == 0; u++) {
        Args a = {0};
        args_push(&a, cc);
        if (n_units == 1) {
            args_push_flags(&a, flags, false);
            args_push(&a, "-o");
            args_push(&a, out_so);
        } else {
            args_push_flags(&a, flags, true);
            args_push(&a, "-c");
            args_push(&a, "-o");
            args_push(&a, obj_paths[u]);
        }
        args_push(&a, src_paths[u]);
        pids[u] = spawn(a.v, log_paths[u]);
        args_free(&a);
        if (pids[u] < 0) {
            error_set(err, "cannot start the C compiler %s: %s", cc, strerror(errno));
            rc = -1;
        }
    }
    int failed = -1;
    for (int u = 0; u < n_units; u++)
        if (pids[u] > 0 && wait_status(pids[u]) != 0 && failed < 0) failed = u;
    if (rc == 0 && failed >= 0) {
        report_compile_error(log_paths[failed], src_paths[failed], units[failed], err);
        rc = -1;
    }
    if (rc == 0 && n_units > 1) {
        Args a = {0};
        args_push(&a, cc);
        args_push_flags(&a, flags, false);
        args_push(&a, "-o");
        args_push(&a, out_so);
        for (int u = 0; u < n_units; u++) args_push(&a, obj_paths[u]);
        pid_t pid = spawn(a.v, log_paths[0]);
        args_free(&a);
        if (pid < 0 || wait_status(pid) != 0) {
            char *log = read_file(log_paths[0], NULL);
            error_set(err, "linking the generated kernels failed: %s", log ? log : strerror(errno));
            free(log);
            rc = -1;
        }
    }
    for (int u = 0; u < n_units; u++) {
        unlink(obj_paths[u]);
        unlink(log_paths[u]);
        /* The split sources are only kept when they failed to compile. */
        if (n_units > 1 && !(rc != 0 && u == failed)) unlink(src_paths[u]);
        free(src_paths[u]);
        free(obj_paths[u]);
        free(log_paths[u]);
        free(units[u]);
    }
    free(src_paths);
    free(obj_paths);
    free(log_paths);
    free(pids);
    free(units);
    return rc;
}

/* ---- the entry points ---------------------------------------------------------- */

/* The cache key: SHA-256 over the compiler, its --version, the flags, this
 * CPU and the source (jit.h). */
static int cache_key(const char *source, char *cc_path, const char *flags, const char *dir, char key[65], Error *err) {
    char *probe = xasprintf("%s/tmp-version-%ld.txt", dir, (long)getpid());
    char *version_argv[] = {cc_path, "--version", NULL};
    char *version = capture(version_argv, probe);
    free(probe);
    if (!version) return error_set(err, "the C compiler %s does not answer --version", cc_path);
    char *cpu = cpu_identity();
    StrBuf keytext = {0};
    sb_printf(&keytext, "rxc-jit 1\ncompiler %s\n%s\nflags %s\ncpu\n%s\nsource\n", cc_path, version, flags, cpu);
    sb_puts(&keytext, source);
    sha256_hex(keytext.s, keytext.len, key);
    free(keytext.s);
    free(version);
    free(cpu);
    return 0;
}

static JitLib *open_object(const char *so_path, Error *err) {
    void *h = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        error_set(err, "cannot load the compiled kernels %s: %s", so_path, dlerror());
        return NULL;
    }
    JitLib *lib = xcalloc(1, sizeof *lib);
    lib->handle = h;
    return lib;
}

/* The cached object info->so_path when present and intact (jit.h). */
static JitLib *open_cached(JitInfo *info) {
    struct stat st;
    if (stat(info->so_path, &st) != 0) return NULL;
    JitLib *lib = checksum_ok(info->so_path) ? open_object(info->so_path, NULL) : NULL;
    info->cache_hit = lib != NULL;
    info->rebuilt_corrupt = lib == NULL;
    return lib;
}

/* Compiles source into dir/KEY.so (info->so_path) and records its checksum. */
static int build_object(const char *source, const JitOptions *opts, const char *cc_path, const char *flags,
                        const char *dir, const JitInfo *info, Error *err) {
    char *tmp_so = xasprintf("%s/tmp-%s-%ld.so", dir, info->key, (long)getpid());
    int parts = opts && opts->parts > 0 ? opts->parts : default_parts(strlen(source));
    int rc = compile(source, cc_path, flags, parts, dir, info->key, tmp_so, err);
    if (rc == 0) {
        size_t n = 0;
        char *bytes = read_file(tmp_so, &n);
        char sum[65];
        if (bytes) sha256_hex(bytes, n, sum);
        free(bytes);
        char *sum_path = xasprintf("%s.sha256", info->so_path);
        /* The object first, its checksum last: a reader that finds the
         * checksum finds the complete object it describes. */
        if (!bytes || rename(tmp_so, info->so_path) != 0 || write_file_atomic(sum_path, sum, 64, NULL) != 0) {
            error_set(err, "cannot store the compiled kernels in %s: %s", dir, strerror(errno));
            rc = -1;
        }
        free(sum_path);
    }
    unlink(tmp_so);
    free(tmp_so);
    return rc;
}

JitLib *jit_load(const char *source, const JitOptions *opts, JitInfo *info, Error *err) {
    double start = now_seconds();
    JitInfo local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    char *dir = cache_dir_resolve(opts ? opts->cache_dir : NULL, NULL, err);
    if (!dir) return NULL;
    const char *cc_name = opts && opts->cc ? opts->cc : getenv("RXC_CC");
    if (!cc_name || !*cc_name) cc_name = "cc";
    const char *flags = opts && opts->flags ? opts->flags : JIT_DEFAULT_FLAGS;
    char *cc_path = resolve_program(cc_name);
    JitLib *lib = NULL;
    if (!cc_path) {
        error_set(err, "cannot find the C compiler '%s' (set RXC_CC to choose one)", cc_name);
    } else if (cache_key(source, cc_path, flags, dir, info->key, err) == 0) {
        char *so_path = xasprintf("%s/%s.so", dir, info->key);
        if (strlen(so_path) >= sizeof info->so_path) {
            error_set(err, "the kernel cache directory's path is too long: %s", dir);
        } else {
            memcpy(info->so_path, so_path, strlen(so_path) + 1);
            lib = open_cached(info);
            if (!lib && build_object(source, opts, cc_path, flags, dir, info, err) == 0)
                lib = open_object(info->so_path, err);
        }
        free(so_path);
    }
    free(cc_path);
    free(dir);
    info->seconds = now_seconds() - start;
    return lib;
}

void *jit_symbol(JitLib *lib, const char *name) { return lib ? dlsym(lib->handle, name) : NULL; }

void jit_free(JitLib *lib) {
    if (!lib) return;
    dlclose(lib->handle);
    free(lib);
}
