/*
 * harness.h — the PASS/FAIL/SKIP printer of every C test program under
 * tests/. One line per case, in the form tests/run_all.sh counts:
 *     PASS name[: detail]      FAIL name: why      SKIP name: why
 * A SKIP fails in strict mode unless its reason starts with "no GPU".
 * How many cases a suite runs is declared by its run.sh (tests/run_all.sh);
 * harness_cases is for the rare program whose case list is computed.
 *
 * Header-only: each program includes it once and returns harness_status()
 * from main.
 */
#ifndef RXC_TESTS_HARNESS_H
#define RXC_TESTS_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

/* Declares n more cases: only for cases enumerated at run time (the kernels
 * the compiler emits), printed before the first of them. */
static inline void harness_cases(int n) { printf("CASES %d\n", n), fflush(stdout); }

/* FAIL lines printed so far: the program's exit status depends on it. */
static int harness_failures;

static inline void harness_vline(const char *verdict, const char *name, const char *fmt, va_list ap) {
    printf("%s %s", verdict, name);
    if (fmt && *fmt) {
        printf(": ");
        vprintf(fmt, ap);
    }
    printf("\n");
    /* a crash in a later case must not swallow the lines already reported */
    fflush(stdout);
}

static inline void harness_pass(const char *name) { printf("PASS %s\n", name), fflush(stdout); }

/* PASS with a detail (the measured error, the tolerance, ...). */
static inline void harness_passf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void harness_passf(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_vline("PASS", name, fmt, ap);
    va_end(ap);
}

static inline void harness_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void harness_fail(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_vline("FAIL", name, fmt, ap);
    va_end(ap);
    harness_failures++;
}

static inline void harness_skip(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void harness_skip(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_vline("SKIP", name, fmt, ap);
    va_end(ap);
}

/* PASS name, or FAIL name: why. Returns ok. */
static inline bool harness_check(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool harness_check(const char *name, bool ok, const char *fmt, ...) {
    if (ok) {
        harness_pass(name);
        return true;
    }
    va_list ap;
    va_start(ap, fmt);
    harness_vline("FAIL", name, fmt, ap);
    va_end(ap);
    harness_failures++;
    return false;
}

/* PASS name: text, or FAIL name: text (the same measurement either way). Returns ok. */
static inline bool harness_measured(const char *name, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool harness_measured(const char *name, bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    harness_vline(ok ? "PASS" : "FAIL", name, fmt, ap);
    va_end(ap);
    harness_failures += !ok;
    return ok;
}

/* main's exit status: 1 once a case failed. */
static inline int harness_status(void) { return harness_failures ? 1 : 0; }

#endif
