/*
 * kir.h — the kernel IR: one description of a fused kernel that every
 * renderer (render_c.c, render_cuda.c) turns into source.
 *
 * A kernel is a parallel loop over `outer` independent indices, with a short
 * list of stages inside. Everything inside a stage is an expression DAG over
 * the loop variables. Extents, strides and constants are compile-time
 * numbers: rxc generates code per model and batch size, so every kernel is
 * specialised to its shapes.
 *
 * Two forms:
 *
 *   KF_ROWS     for i in [0, outer) in parallel:
 *                   for each stage in order:
 *                     KS_REDUCE: for j in [0, inner): acc_k (op)= value_k
 *                     KS_MAP:    for j in [0, inner): stores
 *                     KS_STORE:  stores (once per i)
 *               Pointwise kernels are ROWS with inner = 1 or a single
 *               KS_STORE stage; softmax-cross-entropy is ROWS with
 *               REDUCE(max), REDUCE(sum exp), MAP(grad), STORE(loss).
 *
 *   KF_COLS     for i in [0, outer):               (columns, e.g. channels)
 *                   acc_k = reduce over j in [0, inner) of value_k   (rows)
 *                   KS_STORE stage: stores using acc_k
 *               Exactly one KS_REDUCE stage then one KS_STORE stage. This is
 *               the column reduction of NHWC data (BN statistics, bias and
 *               weight gradients). The KS_REDUCE stage may also hold element
 *               stores, done once at every (i, j) next to the accumulation
 *               (a BN gradient-sums pass that also writes an elementwise
 *               gradient it computes anyway); the kernel must not load what
 *               it stores that way. Memory is row-major, so renderers split
 *               the rows into `row_chunks` fixed chunks, reduce each chunk
 *               for all columns, then combine chunk partials in chunk order.
 *               The chunking is part of the IR, so the sum order never
 *               depends on the thread count.
 *
 * Expressions are nodes in the kernel's `ex` array and are referenced by
 * index; a node's operands always have smaller indices (a DAG in order).
 * Builders hash-cons, so equal subexpressions are computed once.
 * KE_REDUCE is a small inner reduction inside an expression (a 3x3 window,
 * a group's input channels): it introduces its own loop variable.
 * KE_SELECT evaluates only the chosen side, so a guarded load is
 * `select(in_bounds, load(...), 0)`.
 *
 * kir_analysis.h answers what every consumer asks of a kernel (integer
 * ranges and widths, what each node depends on); kir_text.h spells values
 * for the renderers.
 */
#ifndef RXC_KIR_H
#define RXC_KIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef enum KDType { KD_F32, KD_BF16, KD_U8, KD_I64 } KDType;

/* Runtime scalars: every kernel receives `const double *sc` indexed by these. */
typedef enum ScalarId {
    SC_LR,            /* learning rate of this step */
    SC_WEIGHT_DECAY,
    SC_MOMENTUM,
    SC_BETA1,
    SC_BETA2,
    SC_EPS,
    SC_BIAS_CORR1,    /* 1 - beta1^t */
    SC_BIAS_CORR2,    /* 1 - beta2^t */
    SC_STEP,          /* optimizer step count t, from 1 */
    SC_RNG_SEED,      /* per-step seed for dropout masks (< 2^53) */
    SC_GRAD_SCALE,    /* 1 / (batch * accum_steps): scales the loss gradient */
    SC_FIRST_STEP,    /* 1 on the first optimizer step (SGD momentum buffer init), else 0 */
    SC_MIX_PARTNER,   /* mixup/cutmix: the weight of sample N-1-i's label in sample i's target (0: none) */
    SC_COUNT
} ScalarId;

typedef enum KExprKind {
    KE_CONST_F,  /* f */
    KE_CONST_I,  /* i */
    KE_VAR,      /* loop variable var (KV_OUTER, KV_INNER, or a KE_REDUCE's) */
    KE_SCALAR,   /* sc[scalar] as float */
    KE_LOAD,     /* buf[a]; value converted to float (f32/bf16/u8) or int (i64) */
    KE_UNARY,    /* uop(a) */
    KE_BINARY,   /* bop(a, b) */
    KE_SELECT,   /* a ? b : c, lazily */
    KE_REDUCE,   /* rop over var in [0, extent) of a (the body) */
    KE_ACC,      /* value of accumulator acc, after the stage that defines it */
    KE_RAND,     /* uniform float in [0,1) from hash(sc[SC_RNG_SEED], salt, index a) */
} KExprKind;

typedef enum KUnOp {
    KU_NEG, KU_EXP, KU_LOG, KU_SQRT, KU_RSQRT, KU_ABS, KU_RECIP, KU_SIGMOID,
    KU_TO_FLOAT, /* int -> float */
    KU_TO_INT,   /* float -> int, truncating */
    KU_NOT,      /* bool */
    KU_TANH, KU_ERF, KU_EXPM1, /* float; the activations' (pointwise.c) */
} KUnOp;

typedef enum KBinOp {
    KB_ADD, KB_SUB, KB_MUL, KB_DIV, KB_MAX, KB_MIN,
    KB_IDIV, KB_MOD,               /* int, operands >= 0 */
    KB_LT, KB_LE, KB_EQ, KB_NE,    /* -> bool */
    KB_AND, KB_OR,                 /* bool */
} KBinOp;

typedef enum KRedOp { KR_SUM, KR_MAX } KRedOp;

typedef enum KType { KT_FLOAT, KT_INT, KT_BOOL } KType;

enum { KV_OUTER = 0, KV_INNER = 1 }; /* loop variables i and j */

typedef struct KExpr {
    KExprKind kind;
    KType type;
    int a, b, c;       /* operand expression ids, -1 when unused */
    int op;            /* KUnOp / KBinOp / KRedOp */
    int var;           /* KE_VAR, KE_REDUCE: variable id */
    int64_t extent;    /* KE_REDUCE */
    int buf;           /* KE_LOAD */
    int acc;           /* KE_ACC */
    int scalar;        /* KE_SCALAR */
    int64_t i;         /* KE_CONST_I; KE_RAND: salt */
    double f;          /* KE_CONST_F */
} KExpr;

typedef struct KBuf {
    char *name;        /* for reading the source: "x", "gamma", "dy" */
    KDType dtype;
    int64_t numel;     /* elements the kernel may touch: the emulator checks bounds */
    bool written;
} KBuf;

typedef struct KAcc {
    KRedOp op;
    int value;         /* expression over i, j */
    int stage;         /* defining KS_REDUCE stage */
} KAcc;

typedef struct KStore {
    int buf;
    int index;         /* int expression */
    int value;         /* float (or int for i64 buffers) */
    bool accumulate;   /* buf[index] += value */
} KStore;

typedef enum KStageKind { KS_REDUCE, KS_MAP, KS_STORE } KStageKind;

typedef struct KStage {
    KStageKind kind;
    KStore *stores;
    int n_stores, cap_stores;
} KStage;

typedef enum KernelForm { KF_ROWS, KF_COLS } KernelForm;

typedef struct Kernel {
    char *name;        /* unique within a module, a C identifier */
    char *fuses;       /* what the kernel fuses, for `rxc summary --kernels` */
    KernelForm form;
    int64_t outer, inner;
    int64_t row_chunks;  /* KF_COLS: fixed number of row chunks (>= 1) */
    KBuf *bufs;
    int n_bufs, cap_bufs;
    KExpr *ex;
    int n_ex, cap_ex;
    KAcc *accs;
    int n_accs, cap_accs;
    KStage *stages;
    int n_stages, cap_stages;
    int n_vars;        /* 2 + number of KE_REDUCE variables */
    uint64_t hash;     /* structural hash, set by kir_finish */
} Kernel;

typedef struct KirModule {
    Kernel **kernels;
    int n, cap;
} KirModule;

/* ---- building (kir.c) --------------------------------------------------- */
Kernel *kir_kernel_new(const char *name, KernelForm form, int64_t outer, int64_t inner);
void kir_kernel_free(Kernel *k);
void kir_set_fuses(Kernel *k, const char *description);
int kir_buf(Kernel *k, const char *name, KDType dtype, int64_t numel, bool written);

int kir_const_f(Kernel *k, double v);
int kir_const_i(Kernel *k, int64_t v);
int kir_var(Kernel *k, int var);           /* KV_OUTER, KV_INNER, or a reduce var */
int kir_scalar(Kernel *k, ScalarId s);
int kir_load(Kernel *k, int buf, int index);
int kir_un(Kernel *k, KUnOp op, int a);
int kir_bin(Kernel *k, KBinOp op, int a, int b);
int kir_select(Kernel *k, int cond, int a, int b);
int kir_rand(Kernel *k, int64_t salt, int index);
/* A reduce expression: first take a fresh variable, build the body with it,
 * then close: v = kir_reduce_var(k); body = ...kir_var(k, v)...;
 * r = kir_reduce(k, KR_SUM, v, extent, body). */
int kir_reduce_var(Kernel *k);
int kir_reduce(Kernel *k, KRedOp op, int var, int64_t extent, int body);

int kir_stage(Kernel *k, KStageKind kind);                /* returns stage index */
int kir_acc(Kernel *k, int stage, KRedOp op, int value);  /* returns a KE_ACC expr id */
void kir_store(Kernel *k, int stage, int buf, int index, int value, bool accumulate);

/* Validates (types, stage rules, forms) and computes the hash. Returns 0, or
 * -1 with a message: a failure is a compiler bug, reported, never hidden. */
int kir_finish(Kernel *k, Error *err);

/* Modules own their kernels. kir_module_add returns the index of an existing
 * structurally equal kernel (and frees k) or of k, newly added. */
KirModule *kir_module_new(void);
void kir_module_free(KirModule *m);
int kir_module_add(KirModule *m, Kernel *k);

/* Human-readable dump of one kernel, for tests and `rxc emit --target kir`. */
char *kir_dump(const Kernel *k);

/* Structural hash (kir_finish sets k->hash with it) and structural equality:
 * names, descriptions and buffer names are excluded. */
uint64_t kir_hash(const Kernel *k);
bool kir_equal(const Kernel *a, const Kernel *b);

/* C text of the counter-based random function behind KE_RAND, shared by all
 * renderers so that every target draws bit-identical numbers. The includer
 * defines RXC_RAND_QUAL first (`static inline`, `__device__ __forceinline__`).
 * It defines rxc_rand_stream(double seed, long long salt) -> unsigned long long
 * and rxc_rand_at(unsigned long long stream, long long index) -> float in [0,1):
 * KE_RAND(salt, index) = rxc_rand_at(rxc_rand_stream(sc[SC_RNG_SEED], salt), index)
 * = rng_uniform(rng_key(seed, salt, index)) of util.h. */
extern const char *const kir_rand_source;

#endif
