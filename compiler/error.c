/*
 * error.c — filling the one error type (error.h).
 */
#include "error.h"

#include <stdio.h>
#include <string.h>

int error_vset(Error *err, const char *fmt, va_list ap) {
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int error_set(Error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, fmt, ap);
    va_end(ap);
    return -1;
}

int error_at(Error *err, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(err, fmt, ap);
    va_end(ap);
    if (err) err->loc = loc;
    return -1;
}

int error_append(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    size_t n = strlen(err->msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - n, fmt, ap);
    va_end(ap);
    return -1;
}

int error_prefix(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    char context[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
    size_t n = strlen(context);
    if (n + 2 < sizeof err->msg) {
        memmove(err->msg + n + 2, err->msg, sizeof err->msg - n - 2);
        err->msg[sizeof err->msg - 1] = 0;
        memcpy(err->msg, context, n);
        memcpy(err->msg + n, ": ", 2);
    }
    return -1;
}
