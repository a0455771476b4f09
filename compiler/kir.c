/*
 * kir.c — the kernel IR (kir.h): builders with hash-consing and type
 * inference, validation (kir_finish), structural hashing and deduplication
 * of kernels in a module, the text dump, and the counter-based random
 * function text that both renderers embed (kir_rand_source).
 *
 * Builders never fail: a builder given ill-typed or out-of-range operands
 * still records the node, and kir_finish reports the problem. That keeps the
 * lowering code free of error plumbing while making every mistake visible.
 */
#include "kir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kir_analysis.h"
#include "kir_text.h"
#include "util.h"

/* ---- the random function shared by render_c.c and render_cuda.c ---------
 *
 * rxc_rand(seed, salt, index) is util.h's rng_key(seed, salt, index) mapped
 * to a float in [0, 1) with 24 random bits:
 *     key = splitmix64(splitmix64(splitmix64(seed) ^ salt) ^ index)
 *     u   = (float)(key >> 40) * 2^-24
 * where seed = (uint64)sc[SC_RNG_SEED], salt = the node's salt, index = the
 * node's int index (as uint64, two's complement). The first two rounds
 * depend only on (seed, salt), so renderers compute them once per kernel
 * (rxc_rand_stream) and only the last round per element (rxc_rand_at).
 * Host code can reproduce any mask with rng_uniform(rng_key(...)).
 * The text uses only `unsigned long long` so NVRTC needs no headers; the
 * includer defines RXC_RAND_QUAL (e.g. `static inline` or
 * `__device__ __forceinline__`). */
const char *const kir_rand_source =
    "/* counter-based uniform random numbers: see kir.c (kir_rand_source) */\n"
    "RXC_RAND_QUAL unsigned long long rxc_splitmix64(unsigned long long x) {\n"
    "    x += 0x9e3779b97f4a7c15ULL;\n"
    "    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;\n"
    "    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;\n"
    "    return x ^ (x >> 31);\n"
    "}\n"
    "RXC_RAND_QUAL unsigned long long rxc_rand_stream(double seed, long long salt) {\n"
    "    return rxc_splitmix64(rxc_splitmix64((unsigned long long)seed) ^ (unsigned long long)salt);\n"
    "}\n"
    "RXC_RAND_QUAL float rxc_rand_at(unsigned long long stream, long long index) {\n"
    "    unsigned long long key = rxc_splitmix64(stream ^ (unsigned long long)index);\n"
    "    return (float)(key >> 40) * (1.0f / 16777216.0f);\n"
    "}\n";

/* ---- building ------------------------------------------------------------ */

/* Kernel names become C (and CUDA) symbols: anything else turns into '_',
 * and a leading digit gets a 'k' in front. */
static char *symbol_name(const char *name) {
    if (!name || !*name) name = "kernel";
    StrBuf b = {0};
    if (*name >= '0' && *name <= '9') sb_putc(&b, 'k');
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        sb_putc(&b, ok ? c : '_');
    }
    return sb_take(&b);
}

Kernel *kir_kernel_new(const char *name, KernelForm form, int64_t outer, int64_t inner) {
    Kernel *k = xcalloc(1, sizeof *k);
    k->name = symbol_name(name);
    k->fuses = xstrdup("");
    k->form = form;
    k->outer = outer;
    k->inner = inner;
    /* A COLS default that gives both cores work and keeps each partial sum
     * short; lowering may override it. Part of the IR, so fixed per shape. */
    int64_t chunks = inner / 256;
    if (chunks < 1) chunks = 1;
    if (chunks > 32) chunks = 32;
    k->row_chunks = form == KF_COLS ? chunks : 1;
    k->n_vars = 2;
    return k;
}

void kir_kernel_free(Kernel *k) {
    if (!k) return;
    free(k->name);
    free(k->fuses);
    for (int b = 0; b < k->n_bufs; b++) free(k->bufs[b].name);
    free(k->bufs);
    free(k->ex);
    free(k->accs);
    for (int s = 0; s < k->n_stages; s++) free(k->stages[s].stores);
    free(k->stages);
    free(k);
}

void kir_set_fuses(Kernel *k, const char *description) {
    free(k->fuses);
    k->fuses = xstrdup(description ? description : "");
}

int kir_buf(Kernel *k, const char *name, KDType dtype, int64_t numel, bool written) {
    GROW(k->bufs, k->cap_bufs, k->n_bufs + 1);
    KBuf *b = &k->bufs[k->n_bufs];
    b->name = xstrdup(name ? name : "buf");
    b->dtype = dtype;
    b->numel = numel;
    b->written = written;
    return k->n_bufs++;
}

static bool same_expr(const KExpr *x, const KExpr *y) {
    return x->kind == y->kind && x->type == y->type && x->a == y->a && x->b == y->b && x->c == y->c &&
           x->op == y->op && x->var == y->var && x->extent == y->extent && x->buf == y->buf &&
           x->acc == y->acc && x->scalar == y->scalar && x->i == y->i &&
           memcmp(&x->f, &y->f, sizeof x->f) == 0;
}

static KExpr blank_expr(KExprKind kind) {
    KExpr e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.a = e.b = e.c = -1;
    e.var = e.buf = e.acc = e.scalar = -1;
    return e;
}

static KType type_of(const Kernel *k, int id) {
    return id >= 0 && id < k->n_ex ? k->ex[id].type : KT_FLOAT;
}

/* Hash-consing: an equal node already present is returned instead of a new
 * one. Kernels have at most a few hundred nodes, so a backward scan is cheap
 * and needs no side table in the Kernel struct. KE_ACC nodes are unique per
 * accumulator by construction and never collide. */
static int intern(Kernel *k, KExpr e) {
    for (int i = k->n_ex - 1; i >= 0; i--)
        if (same_expr(&k->ex[i], &e)) return i;
    GROW(k->ex, k->cap_ex, k->n_ex + 1);
    k->ex[k->n_ex] = e;
    return k->n_ex++;
}

int kir_const_f(Kernel *k, double v) {
    KExpr e = blank_expr(KE_CONST_F);
    e.type = KT_FLOAT;
    e.f = (double)(float)v; /* the kernel computes in float: equal floats are one node */
    if (e.f == 0) e.f = signbit(e.f) ? -0.0 : 0.0;
    return intern(k, e);
}

int kir_const_i(Kernel *k, int64_t v) {
    KExpr e = blank_expr(KE_CONST_I);
    e.type = KT_INT;
    e.i = v;
    return intern(k, e);
}

int kir_var(Kernel *k, int var) {
    KExpr e = blank_expr(KE_VAR);
    e.type = KT_INT;
    e.var = var;
    return intern(k, e);
}

int kir_scalar(Kernel *k, ScalarId s) {
    KExpr e = blank_expr(KE_SCALAR);
    e.type = KT_FLOAT;
    e.scalar = (int)s;
    return intern(k, e);
}

int kir_load(Kernel *k, int buf, int index) {
    KExpr e = blank_expr(KE_LOAD);
    e.buf = buf;
    e.a = index;
    e.type = buf >= 0 && buf < k->n_bufs && k->bufs[buf].dtype == KD_I64 ? KT_INT : KT_FLOAT;
    return intern(k, e);
}

static KType unary_type(KUnOp op, KType a) {
    switch (op) {
    case KU_NEG: case KU_ABS: return a;
    case KU_TO_FLOAT: return KT_FLOAT;
    case KU_TO_INT: return KT_INT;
    case KU_NOT: return KT_BOOL;
    default: return KT_FLOAT;
    }
}

int kir_un(Kernel *k, KUnOp op, int a) {
    KExpr e = blank_expr(KE_UNARY);
    e.op = (int)op;
    e.a = a;
    e.type = unary_type(op, type_of(k, a));
    return intern(k, e);
}

static KType binary_type(KBinOp op, KType a) {
    switch (op) {
    case KB_IDIV: case KB_MOD: return KT_INT;
    case KB_LT: case KB_LE: case KB_EQ: case KB_NE: case KB_AND: case KB_OR: return KT_BOOL;
    default: return a;
    }
}

static bool commutative(KBinOp op) {
    return op == KB_ADD || op == KB_MUL || op == KB_MAX || op == KB_MIN || op == KB_EQ || op == KB_NE ||
           op == KB_AND || op == KB_OR;
}

/* ---- integer simplification at build time ---------------------------------
 *
 * Lowering writes index math on flat indices and takes them apart again:
 * c = (row * C + col) % C, row = (row * C + col) / C. When the remainder part
 * is provably in [0, c) (from the loop extents known at kir_kernel_new), the
 * decomposition is answered at build time, so the renderer sees `col`, a
 * contiguous index, instead of a division per element and a gather. Only
 * rewrites that are exact for the IR's non-negative idiv/mod operands are
 * made. Ranges come from kir_analysis.c; a reduce variable's extent is not
 * known yet while its body is built, so anything involving one is left alone. */

static bool is_const_i(const Kernel *k, int id, int64_t *v) {
    if (id < 0 || id >= k->n_ex || k->ex[id].kind != KE_CONST_I) return false;
    *v = k->ex[id].i;
    return true;
}

/* If node id is x * m with m a positive multiple of c and x >= 0, sets
 * *x_out and *m_out. */
static bool multiple_of(const Kernel *k, int id, int64_t c, int *x_out, int64_t *m_out) {
    if (id < 0 || id >= k->n_ex) return false;
    const KExpr *e = &k->ex[id];
    if (e->kind != KE_BINARY || e->op != KB_MUL || e->type != KT_INT) return false;
    int64_t m;
    int x;
    if (is_const_i(k, e->b, &m)) x = e->a;
    else if (is_const_i(k, e->a, &m)) x = e->b;
    else return false;
    if (m <= 0 || m % c != 0 || kir_int_range(k, x).lo < 0) return false;
    *x_out = x;
    *m_out = m;
    return true;
}

static int simplify_divmod(Kernel *k, KBinOp op, int a, int64_t c) {
    KirRange ra = kir_int_range(k, a);
    if (ra.lo >= 0 && ra.hi < (double)c) return op == KB_MOD ? a : kir_const_i(k, 0);
    const KExpr *e = a >= 0 && a < k->n_ex ? &k->ex[a] : NULL;
    if (!e || e->kind != KE_BINARY || e->op != KB_ADD || e->type != KT_INT) return -1;
    int sides[2][2] = {{e->a, e->b}, {e->b, e->a}};
    for (int s = 0; s < 2; s++) {
        int x, rest = sides[s][1];
        int64_t m;
        if (!multiple_of(k, sides[s][0], c, &x, &m)) continue;
        KirRange rr = kir_int_range(k, rest);
        if (rr.lo < 0) continue;
        if (op == KB_MOD) return kir_bin(k, KB_MOD, rest, kir_const_i(k, c)); /* (x*m + r) % c = r % c */
        if (rr.hi < (double)c) return m == c ? x : kir_bin(k, KB_MUL, x, kir_const_i(k, m / c));
    }
    return -1;
}

int kir_bin(Kernel *k, KBinOp op, int a, int b) {
    int64_t c;
    if ((op == KB_MOD || op == KB_IDIV) && type_of(k, a) == KT_INT && is_const_i(k, b, &c) && c > 0) {
        int simpler = simplify_divmod(k, op, a, c);
        if (simpler >= 0) return simpler;
    }
    /* Canonical operand order for commutative integer and boolean ops lets
     * index math written as j*W+i or i+W*j share nodes. Float ADD/MUL keep
     * their order: a+b and b+a round the same, but keeping the order keeps the
     * rendered source recognisable. */
    if (commutative(op) && type_of(k, a) != KT_FLOAT && a > b) {
        int t = a;
        a = b;
        b = t;
    }
    KExpr e = blank_expr(KE_BINARY);
    e.op = (int)op;
    e.a = a;
    e.b = b;
    e.type = binary_type(op, type_of(k, a));
    return intern(k, e);
}

int kir_select(Kernel *k, int cond, int a, int b) {
    KExpr e = blank_expr(KE_SELECT);
    e.a = cond;
    e.b = a;
    e.c = b;
    e.type = type_of(k, a);
    return intern(k, e);
}

int kir_rand(Kernel *k, int64_t salt, int index) {
    KExpr e = blank_expr(KE_RAND);
    e.type = KT_FLOAT;
    e.i = salt;
    e.a = index;
    return intern(k, e);
}

int kir_reduce_var(Kernel *k) { return k->n_vars++; }

int kir_reduce(Kernel *k, KRedOp op, int var, int64_t extent, int body) {
    KExpr e = blank_expr(KE_REDUCE);
    e.op = (int)op;
    e.var = var;
    e.extent = extent;
    e.a = body;
    e.type = type_of(k, body);
    return intern(k, e);
}

int kir_stage(Kernel *k, KStageKind kind) {
    GROW(k->stages, k->cap_stages, k->n_stages + 1);
    KStage *s = &k->stages[k->n_stages];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    return k->n_stages++;
}

int kir_acc(Kernel *k, int stage, KRedOp op, int value) {
    GROW(k->accs, k->cap_accs, k->n_accs + 1);
    KAcc *a = &k->accs[k->n_accs];
    a->op = op;
    a->value = value;
    a->stage = stage;
    KExpr e = blank_expr(KE_ACC);
    e.acc = k->n_accs++;
    e.type = type_of(k, value);
    return intern(k, e);
}

void kir_store(Kernel *k, int stage, int buf, int index, int value, bool accumulate) {
    if (stage < 0 || stage >= k->n_stages) {
        /* Keep the mistake for kir_finish: a store to a missing stage goes to
         * a sentinel stage that kir_finish rejects. */
        stage = kir_stage(k, (KStageKind)-1);
    }
    KStage *s = &k->stages[stage];
    GROW(s->stores, s->cap_stores, s->n_stores + 1);
    KStore *st = &s->stores[s->n_stores++];
    st->buf = buf;
    st->index = index;
    st->value = value;
    st->accumulate = accumulate;
}

/* ---- validation ---------------------------------------------------------- */

static const char *type_name(KType t) {
    switch (t) {
    case KT_FLOAT: return "float";
    case KT_INT: return "int";
    case KT_BOOL: return "bool";
    }
    return "?";
}

static const char *const unop_names[] = {"neg", "exp", "log", "sqrt", "rsqrt", "abs", "recip", "sigmoid",
                                         "to_float", "to_int", "not", "tanh", "erf", "expm1"};
static const char *const binop_names[] = {"add", "sub", "mul", "div", "max", "min", "idiv",
                                          "mod", "lt", "le", "eq", "ne", "and", "or"};
static const char *const dtype_names[] = {"f32", "bf16", "u8", "i64"};

static const char *unop_name(int op) {
    return op >= 0 && op <= KU_EXPM1 ? unop_names[op] : "?";
}
static const char *binop_name(int op) {
    return op >= 0 && op <= KB_OR ? binop_names[op] : "?";
}
static const char *dtype_name(int d) {
    return d >= 0 && d <= KD_I64 ? dtype_names[d] : "?";
}

typedef struct Checker {
    const Kernel *k;
    Error *err;
    KirDeps deps;        /* once every node is valid: what each one depends on */
    int *closed_by;      /* per variable: the KE_REDUCE node that binds it, -1 if none */
} Checker;

static int fail(Checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(Checker *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(c->err, fmt, ap);
    va_end(ap);
    return error_prefix(c->err, "kernel %s", c->k->name);
}

static bool operand_ok(const Kernel *k, int self, int op) { return op >= 0 && op < self && op < k->n_ex; }

static bool is_numeric(KType t) { return t == KT_FLOAT || t == KT_INT; }

/* The type of unary node id from its (existing) operand, or a failure. */
static int unary_type_check(Checker *c, int id, KType *want) {
    const KExpr *e = &c->k->ex[id];
    KType a = c->k->ex[e->a].type;
    switch ((KUnOp)e->op) {
    case KU_NEG: case KU_ABS:
        if (!is_numeric(a)) return fail(c, "e%d: %s of %s", id, unop_name(e->op), type_name(a));
        *want = a;
        return 0;
    case KU_EXP: case KU_LOG: case KU_SQRT: case KU_RSQRT: case KU_RECIP: case KU_SIGMOID:
    case KU_TANH: case KU_ERF: case KU_EXPM1:
        if (a != KT_FLOAT) return fail(c, "e%d: %s needs a float operand, got %s", id, unop_name(e->op), type_name(a));
        *want = KT_FLOAT;
        return 0;
    case KU_TO_FLOAT:
        if (a == KT_FLOAT) return fail(c, "e%d: to_float of a float", id);
        *want = KT_FLOAT;
        return 0;
    case KU_TO_INT:
        if (a == KT_INT) return fail(c, "e%d: to_int of an int", id);
        *want = KT_INT;
        return 0;
    case KU_NOT:
        if (a != KT_BOOL) return fail(c, "e%d: not of %s", id, type_name(a));
        *want = KT_BOOL;
        return 0;
    }
    return fail(c, "e%d: unknown unary op %d", id, e->op);
}

/* The type of binary node id from its (existing) operands, or a failure. */
static int binary_type_check(Checker *c, int id, KType *want) {
    const KExpr *e = &c->k->ex[id];
    KType a = c->k->ex[e->a].type, b = c->k->ex[e->b].type;
    if (a != b) return fail(c, "e%d: %s of %s and %s", id, binop_name(e->op), type_name(a), type_name(b));
    switch ((KBinOp)e->op) {
    case KB_ADD: case KB_SUB: case KB_MUL: case KB_MAX: case KB_MIN:
        if (!is_numeric(a)) return fail(c, "e%d: %s of bools", id, binop_name(e->op));
        *want = a;
        return 0;
    case KB_DIV:
        if (a != KT_FLOAT) return fail(c, "e%d: div of %ss (use idiv for ints)", id, type_name(a));
        *want = KT_FLOAT;
        return 0;
    case KB_IDIV: case KB_MOD:
        if (a != KT_INT) return fail(c, "e%d: %s of %ss", id, binop_name(e->op), type_name(a));
        *want = KT_INT;
        return 0;
    case KB_LT: case KB_LE:
        if (!is_numeric(a)) return fail(c, "e%d: %s of bools", id, binop_name(e->op));
        *want = KT_BOOL;
        return 0;
    case KB_EQ: case KB_NE: *want = KT_BOOL; return 0;
    case KB_AND: case KB_OR:
        if (a != KT_BOOL) return fail(c, "e%d: %s of %ss", id, binop_name(e->op), type_name(a));
        *want = KT_BOOL;
        return 0;
    }
    return fail(c, "e%d: unknown binary op %d", id, e->op);
}

/* Checks node id's operands and type. */
static int check_node(Checker *c, int id) {
    const Kernel *k = c->k;
    const KExpr *e = &k->ex[id];
#define OPERAND(field)                                                                            \
    do {                                                                                          \
        if (!operand_ok(k, id, e->field))                                                         \
            return fail(c, "e%d: operand " #field " = %d is not an earlier node", id, e->field); \
    } while (0)
#define TYPE(field) (k->ex[e->field].type)
    KType want = KT_FLOAT;
    switch (e->kind) {
    case KE_CONST_F: want = KT_FLOAT; break;
    case KE_CONST_I: want = KT_INT; break;
    case KE_VAR:
        if (e->var < 0 || e->var >= k->n_vars) return fail(c, "e%d: variable %d does not exist", id, e->var);
        want = KT_INT;
        break;
    case KE_SCALAR:
        if (e->scalar < 0 || e->scalar >= SC_COUNT) return fail(c, "e%d: scalar %d does not exist", id, e->scalar);
        want = KT_FLOAT;
        break;
    case KE_LOAD:
        if (e->buf < 0 || e->buf >= k->n_bufs) return fail(c, "e%d: load from buffer %d that does not exist", id, e->buf);
        OPERAND(a);
        if (TYPE(a) != KT_INT) return fail(c, "e%d: load index of %s has type %s, not int", id, k->bufs[e->buf].name, type_name(TYPE(a)));
        want = k->bufs[e->buf].dtype == KD_I64 ? KT_INT : KT_FLOAT;
        break;
    case KE_UNARY:
        OPERAND(a);
        if (unary_type_check(c, id, &want)) return -1;
        break;
    case KE_BINARY:
        OPERAND(a);
        OPERAND(b);
        if (binary_type_check(c, id, &want)) return -1;
        break;
    case KE_SELECT:
        OPERAND(a);
        OPERAND(b);
        OPERAND(c);
        if (TYPE(a) != KT_BOOL) return fail(c, "e%d: select condition has type %s, not bool", id, type_name(TYPE(a)));
        if (TYPE(b) != TYPE(c)) return fail(c, "e%d: select of %s and %s", id, type_name(TYPE(b)), type_name(TYPE(c)));
        want = TYPE(b);
        break;
    case KE_REDUCE:
        OPERAND(a);
        if (e->op != KR_SUM && e->op != KR_MAX) return fail(c, "e%d: unknown reduce op %d", id, e->op);
        if (e->var < 2 || e->var >= k->n_vars) return fail(c, "e%d: reduce over %d, which is not a variable from kir_reduce_var", id, e->var);
        if (c->closed_by[e->var] >= 0)
            return fail(c, "e%d: variable v%d is already bound by the reduce e%d", id, e->var, c->closed_by[e->var]);
        c->closed_by[e->var] = id;
        if (e->extent < 1) return fail(c, "e%d: reduce extent %lld < 1", id, (long long)e->extent);
        if (!is_numeric(TYPE(a))) return fail(c, "e%d: reduce of a bool", id);
        want = TYPE(a);
        break;
    case KE_ACC:
        if (e->acc < 0 || e->acc >= k->n_accs) return fail(c, "e%d: accumulator %d does not exist", id, e->acc);
        want = type_of(k, k->accs[e->acc].value);
        break;
    case KE_RAND:
        OPERAND(a);
        if (TYPE(a) != KT_INT) return fail(c, "e%d: rand index has type %s, not int", id, type_name(TYPE(a)));
        want = KT_FLOAT;
        break;
    default: return fail(c, "e%d: unknown expression kind %d", id, (int)e->kind);
    }
    if (e->type != want) return fail(c, "e%d: recorded type %s but the operands give %s", id, type_name(e->type), type_name(want));
    return 0;
#undef OPERAND
#undef TYPE
}

/* A root used in stage `stage`: only the loop variables that exist there,
 * only accumulators of earlier stages. */
static int check_root(Checker *c, int id, int stage, bool inner_ok, const char *what) {
    const Kernel *k = c->k;
    if (id < 0 || id >= k->n_ex) return fail(c, "stage %d: %s is e%d, which does not exist", stage, what, id);
    for (int v = 2; v < k->n_vars; v++)
        if (kir_deps_has(&c->deps, id, v))
            return fail(c, "stage %d: %s e%d uses v%d outside the reduce that binds it%s", stage, what, id, v,
                        c->closed_by[v] < 0 ? " (no kir_reduce closes it)" : "");
    if (!inner_ok && kir_deps_has(&c->deps, id, KV_INNER))
        return fail(c, "stage %d: %s e%d uses j (KV_INNER), which does not exist in a %s stage", stage, what, id,
                    k->stages[stage].kind == KS_STORE ? "KS_STORE" : "this");
    if (c->deps.acc_stage[id] >= stage)
        return fail(c, "stage %d: %s e%d reads an accumulator of stage %d, which is not finished yet", stage, what, id,
                    c->deps.acc_stage[id]);
    return 0;
}

static int check_structure(Checker *c) {
    const Kernel *k = c->k;
    if (k->outer < 1 || k->inner < 1)
        return fail(c, "outer %lld and inner %lld must be >= 1", (long long)k->outer, (long long)k->inner);
    if (k->form != KF_ROWS && k->form != KF_COLS) return fail(c, "unknown form %d", (int)k->form);
    if (k->n_stages < 1) return fail(c, "no stages");
    if (k->form == KF_COLS) {
        if (k->n_stages != 2 || k->stages[0].kind != KS_REDUCE || k->stages[1].kind != KS_STORE)
            return fail(c, "a KF_COLS kernel has exactly one KS_REDUCE stage then one KS_STORE stage");
        if (k->row_chunks < 1) return fail(c, "row_chunks %lld < 1", (long long)k->row_chunks);
    }
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        if (st->kind != KS_REDUCE && st->kind != KS_MAP && st->kind != KS_STORE)
            return fail(c, "stage %d has no valid kind (a store to a stage that does not exist?)", s);
        if (st->kind == KS_REDUCE && st->n_stores > 0 && k->form != KF_COLS)
            return fail(c, "stage %d: KS_REDUCE stages of KF_ROWS kernels hold accumulators, not stores", s);
        bool has_acc = false;
        for (int a = 0; a < k->n_accs; a++) has_acc |= k->accs[a].stage == s;
        if (st->kind == KS_REDUCE && !has_acc) return fail(c, "stage %d: a KS_REDUCE stage without accumulators", s);
        if (st->kind != KS_REDUCE && st->n_stores == 0) return fail(c, "stage %d: a stage without stores", s);
    }
    return 0;
}

/* A KF_COLS element store: each (i, j) is visited once, by whichever thread
 * reduces its row chunk, so the kernel must not read what it stores (another
 * chunk may not have written it yet). */
static int check_element_store(Checker *c, const KStore *so) {
    const Kernel *k = c->k;
    for (int e = 0; e < k->n_ex; e++)
        if (k->ex[e].kind == KE_LOAD && k->ex[e].buf == so->buf)
            return fail(c, "stage 0: the element store to %s, which the kernel also loads", k->bufs[so->buf].name);
    return 0;
}

int kir_finish(Kernel *k, Error *err) {
    Checker c = {.k = k, .err = err};
    c.closed_by = xmalloc((size_t)k->n_vars * sizeof(int));
    for (int v = 0; v < k->n_vars; v++) c.closed_by[v] = -1;
    int rc = check_structure(&c);
    for (int i = 0; rc == 0 && i < k->n_ex; i++) rc = check_node(&c, i);
    kir_deps_init(&c.deps, k); /* every operand is an earlier node from here on */
    for (int a = 0; rc == 0 && a < k->n_accs; a++) {
        const KAcc *acc = &k->accs[a];
        if (acc->stage < 0 || acc->stage >= k->n_stages || k->stages[acc->stage].kind != KS_REDUCE) {
            rc = fail(&c, "accumulator %d is defined in stage %d, which is not a KS_REDUCE stage", a, acc->stage);
            break;
        }
        if (acc->op != KR_SUM && acc->op != KR_MAX) rc = fail(&c, "accumulator %d: unknown op %d", a, acc->op);
        if (rc == 0) rc = check_root(&c, acc->value, acc->stage, true, "accumulator value");
        if (rc == 0 && !is_numeric(k->ex[acc->value].type)) rc = fail(&c, "accumulator %d: value is a bool", a);
    }
    for (int s = 0; rc == 0 && s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        for (int t = 0; rc == 0 && t < st->n_stores; t++) {
            const KStore *so = &st->stores[t];
            if (so->buf < 0 || so->buf >= k->n_bufs) {
                rc = fail(&c, "stage %d: store to buffer %d, which does not exist", s, so->buf);
                break;
            }
            const KBuf *b = &k->bufs[so->buf];
            if (!b->written) {
                rc = fail(&c, "stage %d: store to %s, which is not declared written", s, b->name);
                break;
            }
            bool per_element = st->kind == KS_MAP || st->kind == KS_REDUCE;
            rc = check_root(&c, so->index, s, per_element, "store index");
            if (rc == 0) rc = check_root(&c, so->value, s, per_element, "store value");
            if (rc == 0 && st->kind == KS_REDUCE) rc = check_element_store(&c, so);
            if (rc) break;
            if (k->ex[so->index].type != KT_INT)
                rc = fail(&c, "stage %d: store index into %s has type %s", s, b->name, type_name(k->ex[so->index].type));
            KType want = b->dtype == KD_I64 ? KT_INT : KT_FLOAT;
            if (rc == 0 && k->ex[so->value].type != want)
                rc = fail(&c, "stage %d: storing a %s into %s (%s), which holds %ss", s, type_name(k->ex[so->value].type),
                          b->name, dtype_name(b->dtype), type_name(want));
            if (rc == 0 && so->accumulate && b->dtype == KD_U8)
                rc = fail(&c, "stage %d: accumulating store into the u8 buffer %s", s, b->name);
        }
    }
    kir_deps_free(&c.deps);
    free(c.closed_by);
    if (rc) return -1;
    k->hash = 0;
    k->hash = kir_hash(k);
    return 0;
}

/* ---- structural hashing and equality ------------------------------------- */

#define HASH_FIELD(h, v)                          \
    do {                                          \
        __typeof__(v) hash_tmp_ = (v);            \
        h = fnv1a64(&hash_tmp_, sizeof hash_tmp_, h); \
    } while (0)

uint64_t kir_hash(const Kernel *k) {
    uint64_t h = FNV1A64_INIT;
    /* The name and the description are excluded: layers with the same
     * shapes produce the same kernel under different names. Buffer names
     * are for reading only and excluded too. */
    HASH_FIELD(h, (int)k->form);
    HASH_FIELD(h, k->outer);
    HASH_FIELD(h, k->inner);
    HASH_FIELD(h, k->row_chunks);
    HASH_FIELD(h, k->n_vars);
    HASH_FIELD(h, k->n_bufs);
    for (int b = 0; b < k->n_bufs; b++) {
        HASH_FIELD(h, (int)k->bufs[b].dtype);
        HASH_FIELD(h, k->bufs[b].numel);
        HASH_FIELD(h, (int)k->bufs[b].written);
    }
    HASH_FIELD(h, k->n_ex);
    for (int i = 0; i < k->n_ex; i++) {
        const KExpr *e = &k->ex[i];
        HASH_FIELD(h, (int)e->kind);
        HASH_FIELD(h, (int)e->type);
        HASH_FIELD(h, e->a);
        HASH_FIELD(h, e->b);
        HASH_FIELD(h, e->c);
        HASH_FIELD(h, e->op);
        HASH_FIELD(h, e->var);
        HASH_FIELD(h, e->extent);
        HASH_FIELD(h, e->buf);
        HASH_FIELD(h, e->acc);
        HASH_FIELD(h, e->scalar);
        HASH_FIELD(h, e->i);
        HASH_FIELD(h, e->f);
    }
    HASH_FIELD(h, k->n_accs);
    for (int a = 0; a < k->n_accs; a++) {
        HASH_FIELD(h, (int)k->accs[a].op);
        HASH_FIELD(h, k->accs[a].value);
        HASH_FIELD(h, k->accs[a].stage);
    }
    HASH_FIELD(h, k->n_stages);
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        HASH_FIELD(h, (int)st->kind);
        HASH_FIELD(h, st->n_stores);
        for (int t = 0; t < st->n_stores; t++) {
            HASH_FIELD(h, st->stores[t].buf);
            HASH_FIELD(h, st->stores[t].index);
            HASH_FIELD(h, st->stores[t].value);
            HASH_FIELD(h, (int)st->stores[t].accumulate);
        }
    }
    return h ? h : 1; /* 0 means "not finished" */
}

bool kir_equal(const Kernel *x, const Kernel *y) {
    if (x->form != y->form || x->outer != y->outer || x->inner != y->inner || x->row_chunks != y->row_chunks ||
        x->n_vars != y->n_vars || x->n_bufs != y->n_bufs || x->n_ex != y->n_ex || x->n_accs != y->n_accs ||
        x->n_stages != y->n_stages)
        return false;
    for (int b = 0; b < x->n_bufs; b++)
        if (x->bufs[b].dtype != y->bufs[b].dtype || x->bufs[b].numel != y->bufs[b].numel ||
            x->bufs[b].written != y->bufs[b].written)
            return false;
    for (int i = 0; i < x->n_ex; i++)
        if (!same_expr(&x->ex[i], &y->ex[i])) return false;
    for (int a = 0; a < x->n_accs; a++)
        if (x->accs[a].op != y->accs[a].op || x->accs[a].value != y->accs[a].value || x->accs[a].stage != y->accs[a].stage)
            return false;
    for (int s = 0; s < x->n_stages; s++) {
        const KStage *p = &x->stages[s], *q = &y->stages[s];
        if (p->kind != q->kind || p->n_stores != q->n_stores) return false;
        for (int t = 0; t < p->n_stores; t++)
            if (p->stores[t].buf != q->stores[t].buf || p->stores[t].index != q->stores[t].index ||
                p->stores[t].value != q->stores[t].value || p->stores[t].accumulate != q->stores[t].accumulate)
                return false;
    }
    return true;
}

/* ---- modules ------------------------------------------------------------- */

KirModule *kir_module_new(void) { return xcalloc(1, sizeof(KirModule)); }

void kir_module_free(KirModule *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) kir_kernel_free(m->kernels[i]);
    free(m->kernels);
    free(m);
}

static bool name_taken(const KirModule *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->kernels[i]->name, name)) return true;
    return false;
}

int kir_module_add(KirModule *m, Kernel *k) {
    uint64_t h = k->hash ? k->hash : kir_hash(k);
    k->hash = h;
    for (int i = 0; i < m->n; i++)
        if (m->kernels[i]->hash == h && kir_equal(m->kernels[i], k)) {
            kir_kernel_free(k);
            return i;
        }
    /* Names must be unique C symbols within the module: a clash between
     * different kernels gets a numeric suffix rather than a link error. */
    if (name_taken(m, k->name)) {
        for (int n = 2;; n++) {
            char *alt = xasprintf("%s_%d", k->name, n);
            if (!name_taken(m, alt)) {
                free(k->name);
                k->name = alt;
                break;
            }
            free(alt);
        }
    }
    GROW(m->kernels, m->cap, m->n + 1);
    m->kernels[m->n] = k;
    return m->n++;
}

/* ---- dump ---------------------------------------------------------------- */

static void dump_expr(StrBuf *b, const Kernel *k, int id) {
    const KExpr *e = &k->ex[id];
    sb_printf(b, "  e%-4d %-5s = ", id, type_name(e->type));
    switch (e->kind) {
    case KE_CONST_F: sb_printf(b, "%.9g", e->f); break;
    case KE_CONST_I: sb_printf(b, "%lld", (long long)e->i); break;
    case KE_VAR: {
        char name[16];
        kir_var_name(name, sizeof name, e->var);
        sb_puts(b, name);
        break;
    }
    case KE_SCALAR: sb_printf(b, "sc[%d]", e->scalar); break;
    case KE_LOAD:
        sb_printf(b, "load %s[e%d]", e->buf >= 0 && e->buf < k->n_bufs ? k->bufs[e->buf].name : "?", e->a);
        break;
    case KE_UNARY: sb_printf(b, "%s e%d", unop_name(e->op), e->a); break;
    case KE_BINARY: sb_printf(b, "%s e%d e%d", binop_name(e->op), e->a, e->b); break;
    case KE_SELECT: sb_printf(b, "select e%d ? e%d : e%d", e->a, e->b, e->c); break;
    case KE_REDUCE:
        sb_printf(b, "reduce_%s v%d < %lld of e%d", e->op == KR_MAX ? "max" : "sum", e->var, (long long)e->extent, e->a);
        break;
    case KE_ACC: sb_printf(b, "acc%d", e->acc); break;
    case KE_RAND: sb_printf(b, "rand salt %lld at e%d", (long long)e->i, e->a); break;
    default: sb_printf(b, "kind %d", (int)e->kind); break;
    }
    sb_putc(b, '\n');
}

char *kir_dump(const Kernel *k) {
    static const char *const stage_names[] = {"reduce", "map", "store"};
    StrBuf b = {0};
    sb_printf(&b, "kernel %s %s outer=%lld inner=%lld", k->name, k->form == KF_COLS ? "cols" : "rows",
              (long long)k->outer, (long long)k->inner);
    if (k->form == KF_COLS) sb_printf(&b, " row_chunks=%lld", (long long)k->row_chunks);
    sb_printf(&b, " hash=%016llx\n", (unsigned long long)k->hash);
    if (k->fuses && *k->fuses) sb_printf(&b, "  fuses: %s\n", k->fuses);
    for (int i = 0; i < k->n_bufs; i++)
        sb_printf(&b, "  buf%d %s %s[%lld]%s\n", i, k->bufs[i].name, dtype_name(k->bufs[i].dtype),
                  (long long)k->bufs[i].numel, k->bufs[i].written ? " written" : "");
    for (int i = 0; i < k->n_ex; i++) dump_expr(&b, k, i);
    for (int s = 0; s < k->n_stages; s++) {
        const KStage *st = &k->stages[s];
        int kind = st->kind;
        sb_printf(&b, "  stage %d %s\n", s, kind >= 0 && kind <= KS_STORE ? stage_names[kind] : "?");
        for (int a = 0; a < k->n_accs; a++)
            if (k->accs[a].stage == s)
                sb_printf(&b, "    acc%d %s= e%d\n", a, k->accs[a].op == KR_MAX ? "max" : "+", k->accs[a].value);
        for (int t = 0; t < st->n_stores; t++) {
            const KStore *so = &st->stores[t];
            sb_printf(&b, "    %s[e%d] %s e%d\n", so->buf >= 0 && so->buf < k->n_bufs ? k->bufs[so->buf].name : "?",
                      so->index, so->accumulate ? "+=" : "=", so->value);
        }
    }
    return sb_take(&b);
}
