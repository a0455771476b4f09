/*
 * diag.c — the diagnostics sink: source table, error/warning/note printing
 * with the source line and a caret, the error cap, and "did you mean".
 */
#include "diag.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct Source {
    char *name;
    char *text;
    size_t len;
} Source;

struct Diag {
    FILE *out;
    Source *sources;
    int n_sources, cap_sources;
    int errors;
    bool dropping_notes;  /* the last error was over the cap */
    char *first;
};

Diag *diag_new(FILE *out) {
    Diag *d = xcalloc(1, sizeof *d);
    d->out = out;
    return d;
}

void diag_free(Diag *d) {
    if (!d) return;
    for (int i = 0; i < d->n_sources; i++) {
        free(d->sources[i].name);
        free(d->sources[i].text);
    }
    free(d->sources);
    free(d->first);
    free(d);
}

static const Source *find_source(const Diag *d, const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < d->n_sources; i++)
        if (d->sources[i].name == name || !strcmp(d->sources[i].name, name)) return &d->sources[i];
    return NULL;
}

const char *diag_add_source(Diag *d, const char *name, const char *text, size_t len) {
    const Source *old = find_source(d, name);
    if (old) return old->name;
    GROW(d->sources, d->cap_sources, d->n_sources + 1);
    Source *s = &d->sources[d->n_sources++];
    s->name = xstrdup(name);
    s->text = xstrndup(text ? text : "", text ? len : 0);
    s->len = text ? len : 0;
    return s->name;
}

const char *diag_source_text(const Diag *d, const char *name) {
    const Source *s = find_source(d, name);
    return s ? s->text : NULL;
}

/* Prints the line `loc` points into and a caret under its column. Tabs in
 * the line are kept in the caret line so that the caret lines up. */
static void show_line(const Diag *d, SrcLoc loc) {
    const Source *s = find_source(d, loc.file);
    if (!s || loc.line <= 0) return;
    const char *p = s->text, *end = s->text + s->len;
    for (int line = 1; line < loc.line && p < end; p++)
        if (*p == '\n') line++;
    if (p > end) return;
    const char *eol = p;
    while (eol < end && *eol != '\n' && *eol != '\0') eol++;
    int n = (int)(eol - p);
    if (n > 0 && p[n - 1] == '\r') n--;
    fprintf(d->out, "    %.*s\n    ", n, p);
    int col = loc.col > 0 ? loc.col : 1;
    for (int i = 0; i < col - 1; i++) fputc(i < n && p[i] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
}

static void report(Diag *d, const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
    StrBuf head = {0};
    if (loc.file && loc.line > 0) sb_printf(&head, "%s:%d:%d: %s: ", loc.file, loc.line, loc.col > 0 ? loc.col : 1, kind);
    else if (loc.file) sb_printf(&head, "%s: %s: ", loc.file, kind);
    else sb_printf(&head, "rxc: %s: ", kind);
    sb_vprintf(&head, fmt, ap);
    if (!strcmp(kind, "error") && !d->first) d->first = xstrdup(head.s);
    if (d->out) {
        fprintf(d->out, "%s\n", head.s);
        show_line(d, loc);
    }
    free(head.s);
}

void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap) {
    d->errors++;
    if (d->errors > DIAG_MAX_ERRORS) {
        if (d->errors == DIAG_MAX_ERRORS + 1 && d->out)
            fprintf(d->out, "rxc: too many errors (%d); stopping the report here\n", DIAG_MAX_ERRORS);
        d->dropping_notes = true;
        return;
    }
    d->dropping_notes = false;
    report(d, "error", loc, fmt, ap);
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, SrcLoc loc, const char *fmt, ...) {
    if (d->errors > DIAG_MAX_ERRORS) return;
    va_list ap;
    va_start(ap, fmt);
    report(d, "warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) {
    if (d->dropping_notes) return;
    va_list ap;
    va_start(ap, fmt);
    report(d, "note", loc, fmt, ap);
    va_end(ap);
}

int diag_errors(const Diag *d) { return d->errors; }
bool diag_saturated(const Diag *d) { return d->errors >= DIAG_MAX_ERRORS; }
const char *diag_first(const Diag *d) { return d->first; }

/* Optimal string alignment distance (Damerau-Levenshtein without repeated
 * edits of one substring): a swap of two neighbours counts as one typo. */
int edit_distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 64 || m > 64) return n > m ? n : m; /* names are short; no suggestion for essays */
    int dist[65][65];
    for (int i = 0; i <= n; i++) dist[i][0] = i;
    for (int j = 0; j <= m; j++) dist[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = dist[i - 1][j] + 1;
            if (dist[i][j - 1] + 1 < best) best = dist[i][j - 1] + 1;
            if (dist[i - 1][j - 1] + cost < best) best = dist[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && dist[i - 2][j - 2] + 1 < best)
                best = dist[i - 2][j - 2] + 1;
            dist[i][j] = best;
        }
    return dist[n][m];
}

const char *diag_closest(const char *word, const char *const *candidates, int n) {
    int limit = (int)strlen(word) / 3;
    if (limit < 1) limit = 1;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!candidates[i] || !strcmp(candidates[i], word)) continue;
        int dd = edit_distance(word, candidates[i]);
        /* A candidate that shares no letter with word is a replacement, not
         * a typo ('z' for 'x'), however short both are. */
        int longer = (int)strlen(candidates[i]) > (int)strlen(word) ? (int)strlen(candidates[i]) : (int)strlen(word);
        if (dd >= longer) continue;
        if (dd < best_d) { best_d = dd; best = candidates[i]; }
    }
    return best;
}
