/*
 * diag.h — diagnostics for the front end: a sink that knows the text of
 * every loaded source (files, included files, command-line overrides) and
 * prints each problem as
 *
 *     file:line:col: error: message
 *         <the source line>
 *         <a caret under the column>
 *
 * The scanner, parser, include and --set handling (frontend.c), the
 * elaborator (elaborate.c) and the recipe checks (recipe.c) all report
 * through one Diag, so one run shows several problems. After DIAG_MAX_ERRORS
 * errors the sink says so once and drops the rest; callers may keep going.
 */
#ifndef RXC_DIAG_H
#define RXC_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "graph.h" /* SrcLoc */

#define DIAG_MAX_ERRORS 20

typedef struct Diag Diag;

/* out: where messages go (stderr normally); NULL collects silently (fuzzing,
 * tests), counting errors and keeping the first message (diag_first). */
Diag *diag_new(FILE *out);
void diag_free(Diag *d);

/* Registers a source under a display name ("models/x.net", "<command line>")
 * and copies its text. Returns the name pointer to put in SrcLoc.file: it
 * stays valid until diag_free. Registering the same name twice returns the
 * first registration (its text is not replaced). */
const char *diag_add_source(Diag *d, const char *name, const char *text, size_t len);
/* The text of a registered source (NUL-terminated), or NULL. */
const char *diag_source_text(const Diag *d, const char *name);

/* loc.file may be NULL or loc.line 0: then no position and no caret is shown
 * ("rxc: error: message"). */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note belongs to the error just before it (e.g. "first defined here");
 * notes after the error cap are dropped with their error. */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap);

int diag_errors(const Diag *d);      /* errors reported so far (also those over the cap) */
bool diag_saturated(const Diag *d);  /* the cap is reached: callers may stop early */
/* The first error's header line "file:line:col: error: message" (no newline),
 * or NULL when there was none. */
const char *diag_first(const Diag *d);

/* "Did you mean": the candidate closest to word by edit distance (Damerau:
 * insert, delete, substitute, swap), if it is close enough to be a likely
 * typo (distance <= max(1, strlen(word)/3), and less than the longer
 * name's length, so that a one-letter name is not offered another); else NULL. */
const char *diag_closest(const char *word, const char *const *candidates, int n);
int edit_distance(const char *a, const char *b);

#endif
