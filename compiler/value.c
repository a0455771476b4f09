/*
 * value.c — the elaborator's values (see value.h): kind names, conversions
 * with their messages, equality and ordering, and the arithmetic of the
 * network language. Integer arithmetic is checked: an overflow is an error at
 * the operator, never a wrapped value that would size a layer.
 */
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *kind_name(ValKind k) {
    switch (k) {
    case V_ERR: return "an error";
    case V_NONE: return "nothing";
    case V_INT: return "an int";
    case V_FLOAT: return "a float";
    case V_BOOL: return "a bool";
    case V_STR: return "a string";
    case V_LIST: return "a list";
    case V_TENSOR: return "a tensor";
    case V_BRANCH: return "a name bound in one branch";
    }
    return "?";
}

double value_as_double(const Value *v) { return v->k == V_INT ? (double)v->u.i : v->u.f; }

static void format_value(const Value *v, char *buf, size_t len) {
    switch (v->k) {
    case V_INT: snprintf(buf, len, "%lld", (long long)v->u.i); break;
    case V_FLOAT: snprintf(buf, len, "%g", v->u.f); break;
    case V_BOOL: snprintf(buf, len, "%s", v->u.b ? "true" : "false"); break;
    case V_STR: snprintf(buf, len, "\"%s\"", v->u.s); break;
    default: snprintf(buf, len, "%s", kind_name(v->k)); break;
    }
}

/* ---- conversions with messages ------------------------------------------------ */

/* v as an int: an int, or a float with an integral value in range. */
static bool integral(const Value *v, int64_t *out) {
    if (v->k == V_INT) {
        *out = v->u.i;
        return true;
    }
    if (v->k != V_FLOAT || v->u.f != floor(v->u.f) || fabs(v->u.f) >= 9e18) return false;
    *out = (int64_t)v->u.f;
    return true;
}

bool to_int(Diag *d, Value v, SrcLoc loc, const char *what, int64_t *out) {
    if (v.k == V_ERR) return false;
    if (integral(&v, out)) return true;
    char buf[64];
    format_value(&v, buf, sizeof buf);
    if (v.k == V_FLOAT) diag_error(d, loc, "%s must be an int, got %s", what, buf);
    else diag_error(d, loc, "%s must be an int, got %s", what, kind_name(v.k));
    return false;
}

/* hi == INT32_MAX means "no upper bound" to the reader: the message names
 * only the lower one. */
bool to_int_range(Diag *d, Value v, SrcLoc loc, const char *what, int64_t lo, int64_t hi, int *out) {
    int64_t i;
    if (!to_int(d, v, loc, what, &i)) return false;
    if (i < lo || i > hi) {
        if (hi == INT32_MAX) diag_error(d, loc, "%s must be at least %lld, got %lld", what, (long long)lo, (long long)i);
        else diag_error(d, loc, "%s must be between %lld and %lld, got %lld", what, (long long)lo, (long long)hi,
                        (long long)i);
        return false;
    }
    *out = (int)i;
    return true;
}

bool to_float(Diag *d, Value v, SrcLoc loc, const char *what, double *out) {
    if (v.k == V_ERR) return false;
    if (v.k == V_FLOAT) *out = v.u.f;
    else if (v.k == V_INT) *out = (double)v.u.i;
    else {
        diag_error(d, loc, "%s must be a number, got %s", what, kind_name(v.k));
        return false;
    }
    return true;
}

bool to_bool(Diag *d, Value v, SrcLoc loc, const char *what, bool *out) {
    if (v.k == V_ERR) return false;
    if (v.k != V_BOOL) {
        diag_error(d, loc, "%s must be a bool (true or false), got %s", what, kind_name(v.k));
        return false;
    }
    *out = v.u.b;
    return true;
}

bool to_tensor(Diag *d, Value v, SrcLoc loc, const char *what, int *out) {
    if (v.k == V_ERR) return false;
    if (v.k != V_TENSOR) {
        diag_error(d, loc, "%s must be a tensor, got %s", what, kind_name(v.k));
        return false;
    }
    *out = v.u.tensor;
    return true;
}

bool to_pair(Diag *d, Value v, SrcLoc loc, const char *what, int64_t lo, int out[2]) {
    if (v.k == V_LIST) {
        if (v.u.list.n != 2) {
            diag_error(d, loc, "%s must be an int or a pair [h, w], got a list of %d", what, v.u.list.n);
            return false;
        }
        return to_int_range(d, v.u.list.items[0], loc, what, lo, INT32_MAX, &out[0]) &&
               to_int_range(d, v.u.list.items[1], loc, what, lo, INT32_MAX, &out[1]);
    }
    if (!to_int_range(d, v, loc, what, lo, INT32_MAX, &out[0])) return false;
    out[1] = out[0];
    return true;
}

/* ---- comparisons ----------------------------------------------------------------- */

static bool num_pair(const Value *a, const Value *b) {
    return (a->k == V_INT || a->k == V_FLOAT) && (b->k == V_INT || b->k == V_FLOAT);
}

/* Equality of plain values (numbers compare by value across int and
 * float; lists element by element). Returns -1 when the kinds cannot be
 * compared. */
static int values_equal(const Value *a, const Value *b) {
    if (num_pair(a, b))
        return (a->k == V_INT && b->k == V_INT) ? a->u.i == b->u.i : value_as_double(a) == value_as_double(b);
    if (a->k != b->k) return -1;
    switch (a->k) {
    case V_BOOL: return a->u.b == b->u.b;
    case V_STR: return strcmp(a->u.s, b->u.s) == 0;
    case V_LIST:
        if (a->u.list.n != b->u.list.n) return 0;
        for (int i = 0; i < a->u.list.n; i++) {
            int r = values_equal(&a->u.list.items[i], &b->u.list.items[i]);
            if (r != 1) return r;
        }
        return 1;
    default: return -1;
    }
}

Value value_compare(Diag *d, AstBinOp op, const Value *a, const Value *b, SrcLoc loc) {
    if (op == BIN_EQ || op == BIN_NE) {
        int eq = values_equal(a, b);
        if (eq < 0) {
            diag_error(d, loc, "cannot compare %s with %s", kind_name(a->k), kind_name(b->k));
            return VERR;
        }
        return vbool(op == BIN_EQ ? eq : !eq);
    }
    if (!num_pair(a, b)) {
        diag_error(d, loc, "'%s' needs numbers, got %s and %s", ast_binop_text(op), kind_name(a->k), kind_name(b->k));
        return VERR;
    }
    int c;
    if (a->k == V_INT && b->k == V_INT) c = (a->u.i > b->u.i) - (a->u.i < b->u.i);
    else c = (value_as_double(a) > value_as_double(b)) - (value_as_double(a) < value_as_double(b));
    bool r = op == BIN_LT ? c < 0 : op == BIN_LE ? c <= 0 : op == BIN_GT ? c > 0 : c >= 0;
    return vbool(r);
}

/* ---- arithmetic --------------------------------------------------------------------- */

static Value int_pow(Diag *d, int64_t base, int64_t ex, SrcLoc loc) {
    if (ex < 0) return vfloat(pow((double)base, (double)ex));
    int64_t r = 1;
    while (ex > 0) {
        if (ex & 1)
            if (__builtin_mul_overflow(r, base, &r)) goto overflow;
        ex >>= 1;
        if (ex && __builtin_mul_overflow(base, base, &base)) goto overflow;
    }
    return vint(r);
overflow:
    diag_error(d, loc, "integer overflow in '^'");
    return VERR;
}

/* '//' and '%' round towards minus infinity, as Python's. */
static Value floor_div_mod(Diag *d, AstBinOp op, int64_t a, int64_t b, SrcLoc loc) {
    if (b == 0) {
        diag_error(d, loc, "%s by zero", op == BIN_IDIV ? "division" : "modulo");
        return VERR;
    }
    if (a == INT64_MIN && b == -1) {
        diag_error(d, loc, "integer overflow in '%s'", ast_binop_text(op));
        return VERR;
    }
    int64_t q = a / b, m = a % b;
    if (m != 0 && ((m < 0) != (b < 0))) {
        q -= 1;
        m += b;
    }
    return vint(op == BIN_IDIV ? q : m);
}

Value value_arith(Diag *d, AstBinOp op, const Value *a, const Value *b, SrcLoc loc) {
    const char *opt = ast_binop_text(op);
    if (!num_pair(a, b)) {
        diag_error(d, loc, "'%s' needs numbers, got %s and %s", opt, kind_name(a->k), kind_name(b->k));
        return VERR;
    }
    bool ints = a->k == V_INT && b->k == V_INT;
    double x = value_as_double(a), y = value_as_double(b);
    int64_t r;
    switch (op) {
    case BIN_ADD:
        if (!ints) return vfloat(x + y);
        if (__builtin_add_overflow(a->u.i, b->u.i, &r)) break;
        return vint(r);
    case BIN_SUB:
        if (!ints) return vfloat(x - y);
        if (__builtin_sub_overflow(a->u.i, b->u.i, &r)) break;
        return vint(r);
    case BIN_MUL:
        if (!ints) return vfloat(x * y);
        if (__builtin_mul_overflow(a->u.i, b->u.i, &r)) break;
        return vint(r);
    case BIN_DIV:
        if (y == 0) {
            diag_error(d, loc, "division by zero");
            return VERR;
        }
        return vfloat(x / y);
    case BIN_IDIV:
    case BIN_MOD: {
        /* an integral float counts as an int here, as everywhere an int is expected */
        int64_t ia, ib;
        if (!integral(a, &ia) || !integral(b, &ib)) {
            diag_error(d, loc, "'%s' needs ints, got %s and %s", opt, kind_name(a->k), kind_name(b->k));
            return VERR;
        }
        return floor_div_mod(d, op, ia, ib, loc);
    }
    case BIN_POW:
        if (ints) return int_pow(d, a->u.i, b->u.i, loc);
        return vfloat(pow(x, y));
    default:
        break;
    }
    diag_error(d, loc, "integer overflow in '%s'", opt);
    return VERR;
}

Value value_negate(Diag *d, Value v, SrcLoc loc) {
    if (v.k == V_INT) {
        if (v.u.i == INT64_MIN) {
            diag_error(d, loc, "integer overflow in '-'");
            return VERR;
        }
        return vint(-v.u.i);
    }
    if (v.k == V_FLOAT) return vfloat(-v.u.f);
    diag_error(d, loc, "'-' needs a number, got %s", kind_name(v.k));
    return VERR;
}
