/*
 * emu_test.c — runs the CUDA source render_cuda emits on the CPU
 * (cuda_emu.h: every thread a fiber, barriers and shuffles real, races and
 * out-of-bounds accesses detected) and compares every kernel with an
 * independent reference: a direct interpreter of the kernel IR below, which
 * shares no code with either renderer.
 *
 * Negative tests break rendered kernels on purpose (a missing barrier, a
 * missing shared-memory write, a shifted index, a wrong loop stride, lanes
 * left out of a warp's reduction tree, a wrong broadcast lane), with at
 * least one broken twin per kernel form (thread, warp and block per row,
 * column partials, column finish, float4), and require the harness to notice.
 *
 * Usage: emu_test WORKDIR       prints PASS/FAIL lines; needs g++.
 * Tolerances: f32 |emu - ref| <= 1e-5 + 1e-4 |ref| (sum order differs);
 * bf16 outputs within 1e-2 + 1e-2 |ref| (one bf16 step is 2^-8 relative).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "kir.h"
#include "render_cuda.h"
#include "target_cuda.h"
#include "sample_kernels.h"
#include "render_c.h"
#include "util.h"
#ifdef EMU_WITH_COMPILER
#include "compile.h"
#include "frontend.h"
#endif

/* ---- the reference: a direct interpreter of the kernel IR ----------------- */

typedef struct Val {
    float f;
    int64_t i; /* ints and bools */
} Val;

typedef struct Interp {
    const Kernel *k;
    void *const *bufs;
    const double *sc;
    int64_t *vars;
    Val *accs;
} Interp;

static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static Val eval(Interp *in, int e) {
    const KExpr *x = &in->k->ex[e];
    Val r = {0, 0}, a, b;
    switch (x->kind) {
    case KE_CONST_F: r.f = (float)x->f; break;
    case KE_CONST_I: r.i = x->i; break;
    case KE_VAR: r.i = in->vars[x->var]; break;
    case KE_SCALAR: r.f = (float)in->sc[x->scalar]; break;
    case KE_ACC: r = in->accs[x->acc]; break;
    case KE_LOAD: {
        int64_t idx = eval(in, x->a).i;
        const KBuf *kb = &in->k->bufs[x->buf];
        if (idx < 0 || idx >= kb->numel) {
            fprintf(stderr, "reference: index %lld out of %s\n", (long long)idx, kb->name);
            abort();
        }
        switch (kb->dtype) {
        case KD_F32: r.f = ((const float *)in->bufs[x->buf])[idx]; break;
        case KD_BF16: r.f = bf16_to_float(((const uint16_t *)in->bufs[x->buf])[idx]); break;
        case KD_U8: r.f = (float)((const uint8_t *)in->bufs[x->buf])[idx]; break;
        case KD_I64: r.i = ((const int64_t *)in->bufs[x->buf])[idx]; break;
        }
        break;
    }
    case KE_UNARY:
        a = eval(in, x->a);
        switch ((KUnOp)x->op) {
        case KU_NEG: r.f = -a.f, r.i = -a.i; break;
        case KU_EXP: r.f = expf(a.f); break;
        case KU_LOG: r.f = logf(a.f); break;
        case KU_SQRT: r.f = sqrtf(a.f); break;
        case KU_RSQRT: r.f = 1.0f / sqrtf(a.f); break;
        case KU_ABS: r.f = fabsf(a.f), r.i = a.i < 0 ? -a.i : a.i; break;
        case KU_RECIP: r.f = 1.0f / a.f; break;
        case KU_SIGMOID: r.f = 1.0f / (1.0f + expf(-a.f)); break;
        case KU_TO_FLOAT: r.f = (float)a.i; break;
        case KU_TO_INT: r.i = (int64_t)a.f; break;
        case KU_NOT: r.i = !a.i; break;
        case KU_TANH: r.f = tanhf(a.f); break;
        case KU_ERF: r.f = erff(a.f); break;
        case KU_EXPM1: r.f = expm1f(a.f); break;
        }
        break;
    case KE_BINARY: {
        a = eval(in, x->a);
        b = eval(in, x->b);
        bool fl = in->k->ex[x->a].type == KT_FLOAT;
        switch ((KBinOp)x->op) {
        case KB_ADD: r.f = a.f + b.f, r.i = a.i + b.i; break;
        case KB_SUB: r.f = a.f - b.f, r.i = a.i - b.i; break;
        case KB_MUL: r.f = a.f * b.f, r.i = a.i * b.i; break;
        case KB_DIV: r.f = a.f / b.f; break;
        case KB_MAX: r.f = fmaxf(a.f, b.f), r.i = a.i > b.i ? a.i : b.i; break;
        case KB_MIN: r.f = fminf(a.f, b.f), r.i = a.i < b.i ? a.i : b.i; break;
        case KB_IDIV: r.i = a.i / b.i; break;
        case KB_MOD: r.i = a.i % b.i; break;
        case KB_LT: r.i = fl ? a.f < b.f : a.i < b.i; break;
        case KB_LE: r.i = fl ? a.f <= b.f : a.i <= b.i; break;
        case KB_EQ: r.i = fl ? a.f == b.f : a.i == b.i; break;
        case KB_NE: r.i = fl ? a.f != b.f : a.i != b.i; break;
        case KB_AND: r.i = a.i && b.i; break;
        case KB_OR: r.i = a.i || b.i; break;
        }
        break;
    }
    case KE_SELECT: r = eval(in, x->a).i ? eval(in, x->b) : eval(in, x->c); break;
    case KE_REDUCE: {
        bool fl = x->type == KT_FLOAT;
        r.f = x->op == KR_SUM ? 0.0f : -INFINITY;
        r.i = x->op == KR_SUM ? 0 : INT64_MIN;
        for (int64_t v = 0; v < x->extent; v++) {
            in->vars[x->var] = v;
            Val t = eval(in, x->a);
            if (x->op == KR_SUM) r.f += t.f, r.i += t.i;
            else if (fl) r.f = fmaxf(r.f, t.f);
            else r.i = t.i > r.i ? t.i : r.i;
        }
        break;
    }
    case KE_RAND: {
        int64_t idx = eval(in, x->a).i;
        r.f = rng_uniform(rng_key((uint64_t)in->sc[SC_RNG_SEED], (uint64_t)x->i, (uint64_t)idx));
        break;
    }
    }
    return r;
}

static void run_stores(Interp *in, const KStage *st) {
    int n = st->n_stores;
    Val *vals = xcalloc((size_t)(n ? n : 1), sizeof(Val));
    int64_t *idx = xcalloc((size_t)(n ? n : 1), sizeof(int64_t));
    for (int s = 0; s < n; s++) {
        idx[s] = eval(in, st->stores[s].index).i;
        vals[s] = eval(in, st->stores[s].value);
    }
    for (int s = 0; s < n; s++) {
        const KStore *so = &st->stores[s];
        const KBuf *kb = &in->k->bufs[so->buf];
        void *p = in->bufs[so->buf];
        int64_t i = idx[s];
        if (i < 0 || i >= kb->numel) {
            fprintf(stderr, "reference: store index %lld out of %s\n", (long long)i, kb->name);
            abort();
        }
        switch (kb->dtype) {
        case KD_F32: ((float *)p)[i] = so->accumulate ? ((float *)p)[i] + vals[s].f : vals[s].f; break;
        case KD_BF16: {
            uint16_t *q = p;
            q[i] = float_to_bf16(so->accumulate ? bf16_to_float(q[i]) + vals[s].f : vals[s].f);
            break;
        }
        case KD_U8: ((uint8_t *)p)[i] = (uint8_t)(so->accumulate ? ((uint8_t *)p)[i] + vals[s].f : vals[s].f); break;
        case KD_I64: ((int64_t *)p)[i] = so->accumulate ? ((int64_t *)p)[i] + vals[s].i : vals[s].i; break;
        }
    }
    free(vals);
    free(idx);
}

static void reduce_stage(Interp *in, int stage) {
    const Kernel *k = in->k;
    for (int a = 0; a < k->n_accs; a++)
        if (k->accs[a].stage == stage)
            in->accs[a] = k->accs[a].op == KR_SUM ? (Val){0, 0} : (Val){-INFINITY, INT64_MIN};
    for (int64_t j = 0; j < k->inner; j++) {
        in->vars[KV_INNER] = j;
        for (int a = 0; a < k->n_accs; a++) {
            if (k->accs[a].stage != stage) continue;
            Val v = eval(in, k->accs[a].value);
            if (k->accs[a].op == KR_SUM) in->accs[a].f += v.f, in->accs[a].i += v.i;
            else in->accs[a].f = fmaxf(in->accs[a].f, v.f), in->accs[a].i = v.i > in->accs[a].i ? v.i : in->accs[a].i;
        }
        run_stores(in, &k->stages[stage]); /* a KF_COLS reduce stage's element stores */
    }
}

static void interpret(const Kernel *k, void *const *bufs, const double *sc) {
    Interp in = {.k = k, .bufs = bufs, .sc = sc};
    in.vars = xcalloc((size_t)k->n_vars, sizeof(int64_t));
    in.accs = xcalloc((size_t)(k->n_accs ? k->n_accs : 1), sizeof(Val));
    for (int64_t i = 0; i < k->outer; i++) {
        in.vars[KV_OUTER] = i;
        for (int s = 0; s < k->n_stages; s++) {
            const KStage *st = &k->stages[s];
            if (st->kind == KS_REDUCE) reduce_stage(&in, s);
            else if (st->kind == KS_STORE) run_stores(&in, st);
            else
                for (int64_t j = 0; j < k->inner; j++) {
                    in.vars[KV_INNER] = j;
                    run_stores(&in, st);
                }
        }
    }
    free(in.vars);
    free(in.accs);
}

/* ---- the emulated side ---------------------------------------------------------- */

static size_t elem_size(KDType t) { return t == KD_F32 ? 4 : t == KD_BF16 ? 2 : t == KD_U8 ? 1 : 8; }

/* C++ glue after the generated source: one thunk per entry point that builds
 * checked pointers, and rxc_emu_run(kernel index, ...). */
static char *emu_glue(const KirModule *m, const CudaLaunch *ls) {
    StrBuf b = {0};
    for (int i = 0; i < m->n; i++) {
        const Kernel *k = m->kernels[i];
        for (int part = 0; part < 3; part++) {
            if ((part == 1 && !ls[i].has_finish) || (part == 2 && !ls[i].has_vec4)) continue;
            sb_printf(&b, "static void rxc_call_%d_%d(rxc_emu::Launch *L) {\n    %s%s(", i, part, k->name,
                      part == 1 ? "_finish" : part == 2 ? "_v4" : "");
            for (int a = 0; a < k->n_bufs; a++)
                sb_printf(&b, "%srxc_emu::GPtr<%s%s>(L, %d)", a ? ", " : "", k->bufs[a].written ? "" : "const ",
                          render_cuda_ctype(k->bufs[a].dtype), a);
            sb_printf(&b, "%sL->sc", k->n_bufs ? ", " : "");
            if (ls[i].has_finish) sb_printf(&b, ", rxc_emu::GPtr<float>(L, %d)", k->n_bufs);
            sb_puts(&b, ");\n}\n");
        }
    }
    /* the float4 variants of pointwise kernels */
    sb_puts(&b, "extern \"C\" int rxc_emu_run_v4(int kernel, void *const *bufs, const long long *numel,\n"
                "                               const char *const *names, const double *sc, char *err, size_t errlen) {\n"
                "    switch (kernel) {\n");
    for (int i = 0; i < m->n; i++)
        if (ls[i].has_vec4)
            sb_printf(&b,
                      "    case %d: {\n"
                      "        static const unsigned grid[3] = {%uu, 1u, 1u}, block[3] = {%uu, 1u, 1u};\n"
                      "        return rxc_emu_launch(rxc_call_%d_2, grid, block, bufs, numel, names, %d, sc, err, errlen);\n"
                      "    }\n",
                      i, ls[i].vec4_grid, ls[i].block[0], i, m->kernels[i]->n_bufs);
    sb_puts(&b, "    }\n    snprintf(err, errlen, \"no float4 kernel %d\", kernel);\n    return 1;\n}\n");
    sb_puts(&b, "extern \"C\" int rxc_emu_run(int kernel, void *const *bufs, const long long *numel,\n"
                "                            const char *const *names, const double *sc, char *err, size_t errlen) {\n"
                "    switch (kernel) {\n");
    for (int i = 0; i < m->n; i++) {
        const Kernel *k = m->kernels[i];
        const CudaLaunch *l = &ls[i];
        sb_printf(&b, "    case %d: {\n", i);
        sb_printf(&b, "        static const unsigned grid[3] = {%uu, %uu, %uu}, block[3] = {%uu, %uu, %uu};\n", l->grid[0],
                  l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2]);
        if (!l->has_finish) {
            sb_printf(&b, "        return rxc_emu_launch(rxc_call_%d_0, grid, block, bufs, numel, names, %d, sc, err, errlen);\n",
                      i, k->n_bufs);
        } else {
            /* scratch starts as NaN: a partial never written shows in the result */
            sb_printf(&b,
                      "        std::vector<float> scratch(%lld, __int_as_float(0x7fc00000));\n"
                      "        std::vector<void *> b2(bufs, bufs + %d); b2.push_back(scratch.data());\n"
                      "        std::vector<long long> n2(numel, numel + %d); n2.push_back(%lld);\n"
                      "        std::vector<const char *> s2(names, names + %d); s2.push_back(\"scratch\");\n"
                      "        int e = rxc_emu_launch(rxc_call_%d_0, grid, block, b2.data(), n2.data(), s2.data(), %d, sc, err, errlen);\n"
                      "        if (e) return e;\n"
                      "        static const unsigned fgrid[3] = {%uu, 1u, 1u}, fblock[3] = {%uu, 1u, 1u};\n"
                      "        return rxc_emu_launch(rxc_call_%d_1, fgrid, fblock, b2.data(), n2.data(), s2.data(), %d, sc, err, errlen);\n",
                      (long long)l->scratch_floats, k->n_bufs, k->n_bufs, (long long)l->scratch_floats, k->n_bufs, i,
                      k->n_bufs + 1, l->finish_grid, l->finish_block, i, k->n_bufs + 1);
        }
        sb_puts(&b, "    }\n");
    }
    sb_puts(&b, "    }\n    snprintf(err, errlen, \"no kernel %d\", kernel);\n    return 1;\n}\n");
    return sb_take(&b);
}

typedef int (*EmuRun)(int, void *const *, const long long *, const char *const *, const double *, char *, size_t);

/* Writes source + glue, compiles it with g++, loads it. NULL with a message. */
static void *build_emulator(const char *workdir, const char *tag, const char *source, const KirModule *m,
                            const CudaLaunch *ls, char *err, size_t errlen) {
    char *path = xasprintf("%s/%s.cc", workdir, tag), *so = xasprintf("%s/%s.so", workdir, tag);
    char *glue = emu_glue(m, ls);
    FILE *f = fopen(path, "w");
    void *h = NULL;
    if (!f) {
        snprintf(err, errlen, "cannot write %s", path);
        goto out;
    }
    fprintf(f, "#include \"cuda_emu.h\"\n%s\n%s", source, glue);
    fclose(f);
    char *cmd = xasprintf("g++ -std=c++17 -O1 -g -shared -fPIC -w -Itests/emu -o %s %s 2>%s/%s.log", so, path, workdir, tag);
    int rc = system(cmd);
    free(cmd);
    if (rc != 0) {
        char *logp = xasprintf("%s/%s.log", workdir, tag);
        char *log = read_file(logp, NULL);
        snprintf(err, errlen, "g++ failed on the emulated source:\n%.3000s", log ? log : "");
        free(log);
        free(logp);
        goto out;
    }
    h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h) snprintf(err, errlen, "dlopen %s: %s", so, dlerror());
out:
    free(glue);
    free(path);
    free(so);
    return h;
}

/* ---- buffers and comparison ----------------------------------------------------- */

typedef struct Buffers {
    int n;
    void **ref, **emu, **cpu;
    long long *numel;
    const char **names;
} Buffers;

static Buffers make_buffers(const Kernel *k, uint64_t seed) {
    Buffers b = {.n = k->n_bufs};
    b.ref = xcalloc((size_t)b.n + 1, sizeof(void *));
    b.emu = xcalloc((size_t)b.n + 1, sizeof(void *));
    b.cpu = xcalloc((size_t)b.n + 1, sizeof(void *));
    b.numel = xcalloc((size_t)b.n + 1, sizeof(long long));
    b.names = xcalloc((size_t)b.n + 1, sizeof(char *));
    Rng rng = {seed, 1, 0};
    for (int a = 0; a < b.n; a++) {
        const KBuf *kb = &k->bufs[a];
        size_t bytes = (size_t)kb->numel * elem_size(kb->dtype);
        b.ref[a] = xmalloc(bytes);
        b.emu[a] = xmalloc(bytes);
        b.cpu[a] = xmalloc(bytes);
        b.numel[a] = kb->numel;
        b.names[a] = kb->name;
        for (int64_t i = 0; i < kb->numel; i++) {
            float u = rng_uniform(rng_next(&rng)) * 4.0f - 2.0f;
            switch (kb->dtype) {
            case KD_F32: ((float *)b.ref[a])[i] = u; break;
            case KD_BF16: ((uint16_t *)b.ref[a])[i] = float_to_bf16(u); break;
            case KD_U8: ((uint8_t *)b.ref[a])[i] = (uint8_t)(rng_next(&rng) & 255); break;
            case KD_I64: ((int64_t *)b.ref[a])[i] = (int64_t)(rng_next(&rng) % (uint64_t)k->inner); break;
            }
        }
        memcpy(b.emu[a], b.ref[a], bytes);
        memcpy(b.cpu[a], b.ref[a], bytes);
    }
    return b;
}

static void free_buffers(Buffers *b) {
    for (int a = 0; a < b->n; a++) {
        free(b->ref[a]);
        free(b->emu[a]);
        free(b->cpu[a]);
    }
    free(b->ref);
    free(b->emu);
    free(b->cpu);
    free(b->numel);
    free(b->names);
}

static double element(const KBuf *kb, void *p, int64_t i) {
    switch (kb->dtype) {
    case KD_F32: return ((float *)p)[i];
    case KD_BF16: return bf16_to_float(((uint16_t *)p)[i]);
    case KD_U8: return ((uint8_t *)p)[i];
    default: return (double)((int64_t *)p)[i];
    }
}

/* Every written buffer of `got` against `want`: max|got - want| <=
 * tol * max(1, max|want|) per buffer, tol 1e-4 for f32 (summation order
 * differs), 1e-2 for bf16 (one bf16 step is 2^-8), exact for integers.
 * NaN must meet NaN. */
static bool compare(const Kernel *k, void *const *want, void *const *got, const char *what, char *msg, size_t n) {
    for (int a = 0; a < k->n_bufs; a++) {
        const KBuf *kb = &k->bufs[a];
        if (!kb->written) continue;
        double tol = kb->dtype == KD_F32 ? 1e-4 : kb->dtype == KD_BF16 ? 1e-2 : 0, scale = 1;
        for (int64_t i = 0; i < kb->numel; i++) {
            double r = fabs(element(kb, want[a], i));
            if (r > scale && !isinf(r)) scale = r;
        }
        for (int64_t i = 0; i < kb->numel; i++) {
            double r = element(kb, want[a], i), e = element(kb, got[a], i);
            if (isnan(r) || isnan(e) || isinf(r) || isinf(e) ? !(isnan(r) && isnan(e)) && r != e
                                                                : fabs(e - r) > tol * scale) {
                snprintf(msg, n, "%s[%lld]: %s %.9g, reference %.9g (tolerance %.2g)", kb->name, (long long)i, what,
                         e, r, tol * scale);
                return false;
            }
        }
    }
    return true;
}

typedef void (*CKernel)(void *const *bufs, const double *sc);

/* Runs kernel `index` of the loaded emulator, the reference interpreter and,
 * when cpu_lib is given, the C backend (render_c) on the same inputs.
 * Returns 0 on agreement, 1 on a harness error (race, bounds, divergence:
 * message in why), 2 on a numeric mismatch. */
static int check_kernel(void *so, void *cpu_lib, int index, const Kernel *k, bool vec4, char *why, size_t n) {
    EmuRun run = (EmuRun)dlsym(so, vec4 ? "rxc_emu_run_v4" : "rxc_emu_run");
    if (!run) {
        snprintf(why, n, "rxc_emu_run missing");
        return 1;
    }
    double sc[SC_COUNT] = {0};
    sc[SC_LR] = 0.1, sc[SC_WEIGHT_DECAY] = 1e-4, sc[SC_MOMENTUM] = 0.9, sc[SC_GRAD_SCALE] = 0.25;
    sc[SC_RNG_SEED] = 12345, sc[SC_STEP] = 3, sc[SC_EPS] = 1e-5, sc[SC_BETA1] = 0.9, sc[SC_BETA2] = 0.999;
    sc[SC_BIAS_CORR1] = 1 - 0.9 * 0.9 * 0.9, sc[SC_BIAS_CORR2] = 1 - 0.999 * 0.999 * 0.999;
    Buffers b = make_buffers(k, 1000 + (uint64_t)index);
    interpret(k, b.ref, sc);
    int errors = run(index, b.emu, b.numel, b.names, sc, why, n);
    int rc = errors ? 1 : compare(k, b.ref, b.emu, "emulated CUDA", why, n) ? 0 : 2;
    if (rc == 0 && cpu_lib) {
        CKernel fn = (CKernel)dlsym(cpu_lib, k->name);
        if (!fn) {
            snprintf(why, n, "C backend has no kernel %s", k->name);
            rc = 2;
        } else {
            fn(b.cpu, sc);
            char cwhy[512];
            if (!compare(k, b.cpu, b.emu, "emulated CUDA vs C backend", cwhy, sizeof cwhy)) {
                snprintf(why, n, "%s", cwhy);
                rc = 2;
            }
        }
    }
    free_buffers(&b);
    return rc;
}

/* The C backend's source for the module (render_c), compiled as the CPU
 * executor would, loaded. NULL with a message. */
static void *build_c_backend(const char *workdir, const char *tag, const KirModule *m, char *err, size_t errlen) {
    char *src = render_c(m);
    char *path = xasprintf("%s/%s_cpu.c", workdir, tag), *so = xasprintf("%s/%s_cpu.so", workdir, tag);
    void *h = NULL;
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(src, f);
        fclose(f);
        char *cmd = xasprintf("cc -std=c11 -O1 -fopenmp -shared -fPIC -w -o %s %s -lm 2>%s/%s_cpu.log", so, path,
                              workdir, tag);
        if (system(cmd) == 0) h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        free(cmd);
    }
    if (!h) snprintf(err, errlen, "the C backend source did not build (%s/%s_cpu.log)", workdir, tag);
    free(src);
    free(path);
    free(so);
    return h;
}

/* ---- negative tests ---------------------------------------------------------------- */

typedef struct Mutation {
    const char *name;      /* test name */
    const char *kernel;    /* the sample kernel it breaks */
    const char *find;      /* text to change (first occurrence after the kernel's start, or in the prelude) */
    const char *replace;
    bool in_prelude;
    const char *expect;    /* substring of the harness error, or NULL: a numeric mismatch */
    bool vec4;             /* run the kernel's NAME_v4 form */
} Mutation;

static const Mutation mutations[] = {
    {"emu_detects_missing_barrier_block_reduce", "softmax_xent_block",
     "    if (lane == 0) red[warp] = v;\n    __syncthreads();\n", "    if (lane == 0) red[warp] = v;\n", true, "shared"},
    {"emu_detects_missing_barrier_column_tree", "col_stats", "    __syncthreads();\n    }\n", "    }\n", false, "race"},
    {"emu_detects_missing_barrier_between_stages", "rows_two_maps", "        __syncthreads();\n        /* stage 1",
     "        /* stage 1", false, "race"},
    {"emu_detects_missing_shared_write", "softmax_xent_block", "    if (lane == 0) red[warp] = v;\n", "", true,
     "uninitialised shared"},
    {"emu_detects_shifted_store_index", "affine_relu", "b3_y[i] = ", "b3_y[i + 1] = ", false, "out-of-bounds"},
    {"emu_detects_shifted_thread_index", "affine_relu", "+ threadIdx.x;", "+ threadIdx.x + 1;", false, NULL},
    {"emu_detects_wrong_load_index", "conv3x3_g2", "b0_x[e", "b0_x[1 + e", false, NULL},
    {"emu_detects_wrong_row_stride", "col_stats", "j += 8)", "j += 4)", false, NULL},
    /* one broken twin per kernel form: the float4 variant and the column finish (a warp per column) */
    {"emu_detects_v4_shifted_quad", "affine_relu_large", "RXC_LOAD4(b0_x, q)", "RXC_LOAD4(b0_x, q + 1)", false,
     "out-of-bounds", true},
    {"emu_detects_finish_skipping_a_chunk", "col_stats", "for (int c = rxc_lane; c < 3;", "for (int c = rxc_lane + 1; c < 3;",
     false, NULL},
    {"emu_detects_finish_past_the_last_column", "col_many_chunks", "i < 37; i += (int)gridDim.x * 8) {\n        float acc0",
     "i <= 37; i += (int)gridDim.x * 8) {\n        float acc0", false, "out-of-bounds"},
    /* NAME_finish: a shuffle tree that leaves out lanes 16..31, and lanes that skip chunks */
    {"emu_detects_finish_missing_lanes", "col_many_chunks", "offset = 16;", "offset = 8;", true, NULL},
    {"emu_detects_finish_wrong_chunk_stride", "col_many_chunks", "c += 32)", "c += 33)", false, NULL},
    /* a warp per row handing lanes lane 1's partial sum instead of lane 0's total */
    {"emu_detects_warp_row_wrong_broadcast", "softmax_xent_warp", "(acc1), 0);", "(acc1), 1);", false, NULL},
    /* a column reduction's element stores (the BN gradient sums writing the residual gradient): to the
     * row's first element, and done by one row lane of eight only */
    {"emu_detects_element_store_wrong_index", "col_grad_sums_bf16", "b5_dres[e4] = ", "b5_dres[e3] = ", false, NULL},
    {"emu_detects_element_store_one_row_lane", "col_grad_sums_bf16", "b6_dacc[e4] += e20;",
     "if (threadIdx.y == 0) b6_dacc[e4] += e20;", false, NULL},
    /* the 8-wide vector variant reading bf16 lane 3 for lane 2 (run.sh checks NAME_v4 too) */
    {"emu_detects_wrong_vector_lane", "mixed_f32_bf16", "rxc_bf16_lo(in1.y)", "rxc_bf16_hi(in1.y)", false, NULL},
};

static void run_mutation(const char *workdir, const KirModule *full, const Mutation *mu) {
    int index = -1;
    for (int i = 0; i < full->n; i++)
        if (!strcmp(full->kernels[i]->name, mu->kernel)) index = i;
    if (index < 0) {
        harness_fail(mu->name, "sample kernel missing");
        return;
    }
    /* a module holding only that kernel keeps the compile short */
    KirModule one = {.kernels = &full->kernels[index], .n = 1, .cap = 1};
    CudaLaunch *ls = NULL;
    char *src = render_cuda(&one, &ls);
    char *from = mu->in_prelude ? src : strstr(src, "extern \"C\" __global__");
    char *at = from ? strstr(from, mu->find) : NULL;
    char why[2048];
    if (!at) {
        harness_fail(mu->name, "the text to mutate was not found in the rendered source");
    } else {
        char *mutated = xasprintf("%.*s%s%s", (int)(at - src), src, mu->replace, at + strlen(mu->find));
        void *so = build_emulator(workdir, mu->name, mutated, &one, ls, why, sizeof why);
        if (!so) harness_fail(mu->name, "%s", why);
        else {
            int rc = check_kernel(so, NULL, 0, one.kernels[0], mu->vec4, why, sizeof why);
            if (rc == 0 && !mu->vec4 && ls[0].has_vec4) rc = check_kernel(so, NULL, 0, one.kernels[0], true, why, sizeof why);
            bool ok = mu->expect ? rc == 1 && strstr(why, mu->expect) != NULL : rc != 0;
            char msg[2300];
            snprintf(msg, sizeof msg, "the broken kernel was not caught as expected (%s): %s",
                     mu->expect ? mu->expect : "any error", rc ? why : "it agreed with the reference");
            harness_check(mu->name, ok, "%s", msg);
            if (ok) printf("  caught: %s\n", why);
            dlclose(so);
        }
        free(mutated);
    }
    free(src);
    free(ls);
}

/* Emulates every kernel of module m and compares it with the reference
 * and the C backend; test names are PREFIX_KERNEL_MAPPING. With declare,
 * the cases are first declared to the harness: a model's kernels are the
 * compiler's output, so run.sh cannot know how many there are. */
static void check_module(const char *workdir, const char *tag, const KirModule *m, const char *prefix, bool declare) {
    char err[4096];
    CudaLaunch *ls = NULL;
    char *src = render_cuda(m, &ls);
    if (declare) {
        int n_cases = m->n;
        for (int i = 0; i < m->n; i++) n_cases += ls[i].has_vec4;
        harness_cases(n_cases);
    }
    void *so = build_emulator(workdir, tag, src, m, ls, err, sizeof err);
    void *cpu = so ? build_c_backend(workdir, tag, m, err, sizeof err) : NULL;
    if (!so || !cpu) {
        char name[160];
        snprintf(name, sizeof name, "%s_build", prefix);
        harness_fail(name, "%s", err);
    } else {
        for (int i = 0; i < m->n; i++) {
            char name[200], why[2048];
            const char *mapping = ls[i].mapping == CM_THREAD_PER_ROW  ? "thread_per_row"
                                  : ls[i].mapping == CM_BLOCK_PER_ROW ? "block_per_row"
                                  : ls[i].mapping == CM_WARP_PER_ROW  ? "warp_per_row"
                                                                      : "column_tiles";
            snprintf(name, sizeof name, "%s_%s_%s", prefix, m->kernels[i]->name, mapping);
            int rc = check_kernel(so, cpu, i, m->kernels[i], false, why, sizeof why);
            harness_check(name, rc == 0, "%s", why);
            if (ls[i].has_vec4) {
                snprintf(name, sizeof name, "%s_%s_float4", prefix, m->kernels[i]->name);
                rc = check_kernel(so, cpu, i, m->kernels[i], true, why, sizeof why);
                harness_check(name, rc == 0, "%s", why);
            }
        }
    }
    if (so) dlclose(so);
    if (cpu) dlclose(cpu);
    free(src);
    free(ls);
}

#ifdef EMU_WITH_COMPILER
/* Every kernel the training compiler emits for FILE at a small input size. */
static void check_model(const char *workdir, const char *file, const char *input, int batch) {
    SetOverride sets[] = {{"input", input}};
    LoadOptions lo = {sets, 1, batch};
    Model model;
    char prefix[160];
    Error err = {0};
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    snprintf(prefix, sizeof prefix, "emu_%.*s", (int)strcspn(base, "."), base);
    if (model_load(file, &lo, &model) != LOAD_OK) {
        harness_fail(prefix, "model does not load");
        return;
    }
    CompileOptions o;
    compile_options_from_recipe(&o, &model.recipe, batch, &target_cuda);
    Program *p = compile_training(model.graph, &o, &err);
    if (!p) harness_fail(prefix, "%s", err.msg);
    else {
        harness_passf(prefix, "compiles to %d kernels", p->module->n);
        check_module(workdir, prefix, p->module, prefix, true);
        program_free(p);
    }
    model_free(&model);
}
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: emu_test WORKDIR [MODEL.net INPUT BATCH]...\n");
        return 2;
    }
    const char *workdir = argv[1];
    Error err = {0};
    KirModule *m = sample_module(&err);
    if (!m) {
        harness_fail("emu_sample_module", "%s", err.msg);
        return 1;
    }
    check_module(workdir, "samples", m, "emu", false);

    for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++) run_mutation(workdir, m, &mutations[i]);
    kir_module_free(m);
    for (int i = 2; i + 2 < argc; i += 3) {
#ifdef EMU_WITH_COMPILER
        check_model(workdir, argv[i], argv[i + 1], atoi(argv[i + 2]));
#else
        char name[300];
        snprintf(name, sizeof name, "emu_model_%s", argv[i]);
        harness_skip(name, "built without the training compiler");
#endif
    }
    return harness_status();
}
