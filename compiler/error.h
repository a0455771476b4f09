/*
 * error.h — the one error type: what failed, in one line, and where in a
 * .net file when the failure is about one.
 *
 * A function that can fail takes `Error *err` as its last parameter, and on
 * failure fills it with error_set (or error_at) and returns -1 or NULL; the
 * return value says whether it failed, never the message. A caller that can
 * add context does so with error_prefix and passes the error up; the
 * command (cli/) prints err.msg. err may be NULL where the caller does not
 * want the message. Broken invariants are assert()s, not errors.
 */
#ifndef RXC_ERROR_H
#define RXC_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

typedef struct SrcLoc {
    const char *file; /* owned by the front end's source table */
    int line, col;    /* 1-based; 0 when the node came from code, not text */
} SrcLoc;

typedef struct Error {
    /* Long enough for a compiler's log (NVRTC, cc), which some messages carry. */
    char msg[16384];
    SrcLoc loc;       /* line 0: not about a place in a .net file */
} Error;

/* Each sets the message (truncated to fit) and returns -1. */
int error_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int error_vset(Error *err, const char *fmt, va_list ap);
int error_at(Error *err, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "CONTEXT: previous message" */
int error_prefix(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "previous message" followed by the formatted text (a hint, a detail) */
int error_append(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline bool error_is_set(const Error *err) { return err && err->msg[0]; }
static inline void error_clear(Error *err) {
    if (err) err->msg[0] = 0, err->loc = (SrcLoc){0};
}

#endif
