/*
 * value.h — the values the elaborator computes with: ints, floats, bools,
 * strings, lists, tensors (graph node ids) and the poison value of a failed
 * expression. Owns their conversions (which report a value of the wrong
 * kind) and the network language's comparisons and arithmetic, with integer
 * overflow checks. Used by the elaborator's files only (elaborate_internal.h).
 */
#ifndef RXC_VALUE_H
#define RXC_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ast.h"
#include "diag.h"

typedef enum ValKind {
    V_ERR,      /* poison: an error was reported already */
    V_NONE,     /* a block that returned nothing */
    V_INT,
    V_FLOAT,
    V_BOOL,
    V_STR,
    V_LIST,
    V_TENSOR,
    V_BRANCH,   /* a name bound in only one branch of an if (i: the if's line) */
} ValKind;

typedef struct Value {
    ValKind k;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        struct { struct Value *items; int n; } list;
        int tensor;
    } u;
} Value;

static const Value VERR = {.k = V_ERR};

static inline Value vint(int64_t i) { return (Value){.k = V_INT, .u.i = i}; }
static inline Value vfloat(double f) { return (Value){.k = V_FLOAT, .u.f = f}; }
static inline Value vbool(bool b) { return (Value){.k = V_BOOL, .u.b = b}; }
static inline Value vtensor(int id) { return (Value){.k = V_TENSOR, .u.tensor = id}; }

/* "an int", "a list", ... for messages. */
const char *kind_name(ValKind k);

/* An int or a float, as a double. */
double value_as_double(const Value *v);

/* Conversions for arguments and conditions. Each reports "WHAT must be ..."
 * at loc and returns false when v has the wrong kind or range; a poison v
 * returns false quietly. */
bool to_int(Diag *d, Value v, SrcLoc loc, const char *what, int64_t *out); /* or an integral float */
bool to_int_range(Diag *d, Value v, SrcLoc loc, const char *what, int64_t lo, int64_t hi, int *out);
bool to_float(Diag *d, Value v, SrcLoc loc, const char *what, double *out);
bool to_bool(Diag *d, Value v, SrcLoc loc, const char *what, bool *out);
bool to_tensor(Diag *d, Value v, SrcLoc loc, const char *what, int *out);
bool to_pair(Diag *d, Value v, SrcLoc loc, const char *what, int64_t lo, int out[2]); /* an int or [h, w] */

/* op is ==, !=, <, <=, > or >=, on plain values (not tensors, not poison). */
Value value_compare(Diag *d, AstBinOp op, const Value *a, const Value *b, SrcLoc loc);

/* op is +, -, *, /, //, % or ^ on numbers (not tensors, not poison);
 * reports other kinds, division by zero and integer overflow. */
Value value_arith(Diag *d, AstBinOp op, const Value *a, const Value *b, SrcLoc loc);

/* Unary minus (v not poison). */
Value value_negate(Diag *d, Value v, SrcLoc loc);

#endif
