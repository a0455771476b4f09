/*
 * kir_text.h — how kernel-IR values are spelled in C-family source, the
 * part both renderers (render_c.c, render_cuda.c) write the same way: loop
 * variable names and integer and float literals.
 */
#ifndef RXC_KIR_TEXT_H
#define RXC_KIR_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* "i" for KV_OUTER, "j" for KV_INNER, "vN" for reduce variable N. */
void kir_var_name(char *buf, size_t n, int var);

/* An integer literal of value v: plain when it fits int, with LL otherwise,
 * parenthesised when negative, INT64_MIN as an expression (it has no
 * literal). */
void kir_int_literal(char *buf, size_t n, int64_t v);

/* What a target writes for the floats that have no decimal literal. */
typedef struct KirNonFinite {
    const char *nan, *inf, *neg_inf;
} KirNonFinite;

/* A float literal that rounds to (float)v exactly: "%.9g" with an f suffix,
 * parenthesised when negative; NaN and infinities as the target spells them. */
void kir_float_literal(char *buf, size_t n, double v, const KirNonFinite *spell);

#endif
