/*
 * recipe_read.h — internal to the recipe readers (recipe.c, which defines
 * these, and recipe_augment.c): reading checked values from AST
 * expressions, each failure reported at the offending text and counted.
 */
#ifndef RXC_RECIPE_READ_H
#define RXC_RECIPE_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "ast.h"

/* The context for reading values: constants at top level may be used in the
 * train and data sections (`lr base_lr * 2`). */
typedef struct Reader {
    const AstFile *ast;
    Diag *d;
    int errors;
    int depth;
} Reader;

void read_error(Reader *rd, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const AstExpr *lookup_const(const Reader *rd, const char *name);
/* A numeric constant expression: 0, or -1 when e is not a number (nothing
 * reported: the caller says what it expected). */
int eval_number(Reader *rd, const AstExpr *e, double *v, bool *is_int);
bool get_number(Reader *rd, const AstExpr *e, const char *what, double *out);
bool get_int(Reader *rd, const AstExpr *e, const char *what, int64_t lo, int64_t hi, int64_t *out);
bool get_int32(Reader *rd, const AstExpr *e, const char *what, int lo, int hi, int *out);
/* A number in [lo, hi] (closed) or [lo, hi) when hi_open. */
bool get_range(Reader *rd, const AstExpr *e, const char *what, double lo, double hi, bool hi_open, double *out);
bool get_bool(Reader *rd, const AstExpr *e, const char *what, bool *out);
bool get_string(Reader *rd, const AstExpr *e, const char *what, char **out);
/* A word from a fixed set: `layout imagefolder`, `device cuda`. */
bool get_word(Reader *rd, const AstExpr *e, const char *what, const char *const *words, int n, int *out);
/* A list of min_n to max_n numbers; returns how many, or -1. */
int get_numbers(Reader *rd, const AstExpr *e, const char *what, int min_n, int max_n, double *out);

/* A call's parameters: `adamw(lr=1e-3)`, `random_crop(224, padding=4)`. */
typedef struct Spec {
    const char *name;  /* the op or callee, for messages */
    const char *const *params;
    int n_params;
    int n_required;    /* the first n_required params must be given */
} Spec;

/* Binds a call's arguments to the spec's parameters (positional first, then
 * keywords); a bare word (`hflip`, `constant`) is a call without arguments. */
bool bind_call(Reader *rd, const AstExpr *e, const Spec *s, const AstExpr **vals);

#endif
