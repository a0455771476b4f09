/*
 * fuzz_frontend.c — libFuzzer target over the whole front end: scanner,
 * parser, --set-free loading, elaboration into the graph and the recipe
 * checks, on arbitrary bytes. Built with ASan and UBSan by `make fuzz`
 * (mk/fuzz.mk); findings are recorded in docs/fuzzing.md.
 *
 * An input holding a byte 0x01 is split there: the text before is the file,
 * the text after is one `--set NAME=VALUE` override.
 *
 * Besides "no crash, no leak, no undefined behaviour", it checks one
 * property: a file that parses cleanly prints (ast_print) to text that
 * parses cleanly again and prints the same, so the resolved text stored in
 * checkpoints means what the user wrote.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "frontend.h"
#include "util.h"

static char *print_parsed(const char *text, size_t len, int *errors) {
    Diag *d = diag_new(NULL);
    const char *src = diag_add_source(d, "fuzz.net", text, len);
    AstFile *f = ast_file_new(src);
    *errors = ast_parse_source(d, src, text, len, f) + diag_errors(d);
    StrBuf out = {0};
    ast_print(f, &out);
    ast_free(f);
    diag_free(d);
    return sb_take(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 16384) return 0;
    const char *text = (const char *)data;

    size_t file_len = size;
    char *set_text = NULL;
    SetOverride set = {0};
    LoadOptions opt = {0};
    const char *sep = memchr(text, 1, size);
    if (sep) {
        file_len = (size_t)(sep - text);
        set_text = xstrndup(sep + 1, size - file_len - 1);
        char *eq = strchr(set_text, '=');
        if (eq) {
            *eq = 0;
            set.name = set_text;
            set.value = eq + 1;
            opt.sets = &set;
            opt.n_sets = 1;
        }
    }
    Diag *d = diag_new(NULL);
    Model m;
    if (frontend_load_text("fuzz.net", text, file_len, &opt, false, d, &m) == LOAD_OK) {
        if (!m.graph || m.graph->input < 0 || m.graph->output < 0) abort();
        model_free(&m);
    }
    diag_free(d);
    free(set_text);

    int errors;
    char *once = print_parsed(text, size, &errors);
    if (errors == 0) {
        int errors2;
        char *twice = print_parsed(once, strlen(once), &errors2);
        if (errors2 != 0 || strcmp(once, twice) != 0) {
            fprintf(stderr, "print/parse round trip differs:\n--- first\n%s\n--- second\n%s\n", once, twice);
            abort();
        }
        free(twice);
    }
    free(once);
    return 0;
}
