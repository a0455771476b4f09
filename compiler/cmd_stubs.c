/*
 * cmd_stubs.c — placeholders for commands that this build does not have yet.
 *
 * Each is a weak symbol: the file that implements a command for real
 * overrides it at link time. A stub says plainly that the command is missing
 * rather than pretending to work.
 */
#include <stdio.h>

#include "commands.h"

#define MISSING(fn, what)                                                        \
    __attribute__((weak)) int fn(int argc, char **argv) {                        \
        (void)argc; (void)argv;                                                  \
        fprintf(stderr, "rxc: '%s' is not implemented in this build\n", what);  \
        return 1;                                                                \
    }

MISSING(cmd_check, "check")
MISSING(cmd_summary, "summary")
MISSING(cmd_graph, "graph")
MISSING(cmd_emit, "emit")
MISSING(cmd_compile, "compile")
MISSING(cmd_train, "train")
MISSING(cmd_step, "step")
MISSING(cmd_grad, "grad")
MISSING(cmd_eval, "eval")
MISSING(cmd_predict, "predict")
MISSING(cmd_transform, "transform")
MISSING(cmd_augment, "augment")
MISSING(cmd_demo, "demo")
MISSING(cmd_ablate, "ablate")

__attribute__((weak)) int summary_training_report(struct Model *m, int batch, int want_kernels,
                                                  int want_memory, int json) {
    (void)m; (void)batch; (void)want_kernels; (void)want_memory; (void)json;
    fprintf(stderr, "rxc: summary --kernels/--memory is not implemented in this build\n");
    return 1;
}
