/*
 * cli_args.c — command-line helpers every command shares (commands.h): the
 * `--set NAME=VALUE` overrides, which the front end applies to a model file,
 * and `--distributed`, which starts MPI before anything else runs.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "distributed.h"
#include "frontend.h"
#include "util.h"

int cli_take_sets(int *argc, char **argv, SetOverride **sets, int *n_sets) {
    int w = 0, cap = *n_sets;
    for (int i = 0; i < *argc; i++) {
        const char *spec = NULL;
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "rxc: --set needs NAME=VALUE\n");
                return -1;
            }
            spec = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            spec = argv[i] + 6;
        } else {
            argv[w++] = argv[i];
            continue;
        }
        char *eq = strchr(spec, '=');
        if (!eq || eq == spec) {
            fprintf(stderr, "rxc: --set '%s': expected NAME=VALUE, e.g. --set cardinality=8\n", spec);
            return -1;
        }
        GROW(*sets, cap, *n_sets + 1);
        /* The name is cut at '=' in place: argv strings are writable. */
        *eq = 0;
        (*sets)[*n_sets].name = spec;
        (*sets)[*n_sets].value = eq + 1;
        (*n_sets)++;
    }
    if (w < *argc) argv[w] = NULL;
    *argc = w;
    return 0;
}

int cli_take_distributed(int *argc, char **argv, Dist **d) {
    *d = NULL;
    const char *value = "auto";
    int w = 0;
    for (int i = 0; i < *argc; i++) {
        if (!strcmp(argv[i], "--distributed")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "rxc: --distributed needs auto, on or off\n");
                return 2;
            }
            value = argv[++i];
        } else if (!strncmp(argv[i], "--distributed=", 14)) {
            value = argv[i] + 14;
        } else {
            argv[w++] = argv[i];
        }
    }
    if (w < *argc) argv[w] = NULL;
    *argc = w;
    DistMode mode;
    if (dist_mode_parse(value, &mode) != 0) {
        fprintf(stderr, "rxc: --distributed must be auto, on or off (got '%s')\n", value);
        return 2;
    }
    Error err = {0};
    if (dist_open(mode, d, &err) != 0) {
        fprintf(stderr, "rxc: %s\n", err.msg);
        return 2;
    }
    return 0;
}
