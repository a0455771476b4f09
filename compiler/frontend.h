/*
 * frontend.h — loading a .net file into a checked Graph and Recipe.
 *
 * model_load runs the whole front end: scanner and parser (grammar/),
 * includes, command-line overrides, elaboration into the graph IR and every
 * check. Diagnostics go to stderr as `file:line:col: error: ...` with the
 * source line and a caret; several are reported in one run where possible.
 */
#ifndef RXC_FRONTEND_H
#define RXC_FRONTEND_H

#include <stdint.h>

#include "graph.h"
#include "recipe.h"
#include "error.h"

typedef struct SetOverride {
    const char *name;   /* "cardinality", "classes", "stages", "lr", ... */
    const char *value;  /* "8", "[3,4,6,3]", "1e-3" */
} SetOverride;

typedef struct LoadOptions {
    const SetOverride *sets;
    int n_sets;
    int batch_hint;     /* 0, or the batch size, for messages only */
} LoadOptions;

typedef struct Model {
    char *path;
    Graph *graph;
    Recipe recipe;
    char *resolved_text;   /* the file after includes and overrides, as rxc understood it */
    char source_sha256[65];/* hash of the model text plus overrides, stored in checkpoints; run-only
                              settings (recipe_run_only_setting) are left out */
} Model;

enum { LOAD_OK = 0, LOAD_IO_ERROR = 1, LOAD_BAD_FILE = 2 };

/* Returns LOAD_OK, LOAD_IO_ERROR (file unreadable; message printed) or
 * LOAD_BAD_FILE (diagnostics printed). On success *out owns everything. */
int model_load(const char *path, const LoadOptions *opt, Model *out);
void model_free(Model *m);

/* Parses one augmentation pipeline in the language's syntax, as written after
 * `augment train:`, e.g. "resize(256) -> center_crop(224) -> normalize(...)".
 * Returns 0, or -1 with a message (with a column) in err. *ops is malloc'd. */
int augment_parse(const char *text, TransformOp **ops, int *n_ops, Error *err);

#endif
