/*
 * dump_tables.c — prints the front end's own tables of names, one per line as
 * "KIND NAME": the primitive ops and builtins the elaborator knows, the
 * augmentation ops, and the keys of each recipe section. check_language_doc.py
 * compares them with docs/language.md, so the reference and the parser cannot
 * drift apart.
 */
#include <stdio.h>

#include "ast.h"
#include "elaborate.h"
#include "recipe.h"

int main(void) {
    for (int i = 0; elaborate_op_names[i]; i++) printf("op %s\n", elaborate_op_names[i]);
    for (int i = 0; elaborate_builtin_names[i]; i++) printf("builtin %s\n", elaborate_builtin_names[i]);
    for (int k = 0; k < TF_COUNT; k++) printf("transform %s\n", transform_name((TransformKind)k));
    const char *sections[] = {"data", "train", "optimizer", "schedule", "loss"};
    for (int s = 0; s < 5; s++) {
        int n = 0;
        const char *const *keys = recipe_keys(sections[s], &n);
        for (int i = 0; i < n; i++) printf("%s %s\n", sections[s], keys[i]);
    }
    return 0;
}
