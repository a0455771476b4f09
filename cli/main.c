/*
 * main.c — the rxc command-line driver: finds the subcommand and hands over.
 *
 * `rxc FILE.net [options]` is `rxc train FILE.net [options]`: training the
 * file is the main job. Everything else is a named subcommand.
 */
#include <stdio.h>
#include <string.h>

#include "blas_cpu.h"
#include "commands.h"
#include "version.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"train",     cmd_train,     "train a model as its file says (the default command)"},
    {"check",     cmd_check,     "check a .net file; exit 0, or 2 with diagnostics"},
    {"summary",   cmd_summary,   "per-layer table, parameters and MACs (--json, --kernels, --memory)"},
    {"graph",     cmd_graph,     "print the graph for Graphviz (--dot)"},
    {"emit",      cmd_emit,      "write the generated kernel source (--target c|cuda|kir)"},
    {"compile",   cmd_compile,   "compile the CUDA kernels with NVRTC and report registers and spills"},
    {"step",      cmd_step,      "run K training steps on one batch from a safetensors file"},
    {"grad",      cmd_grad,      "write the loss gradients of one batch (verification)"},
    {"eval",      cmd_eval,      "evaluate weights on the validation split"},
    {"predict",   cmd_predict,   "top-5 classes for images"},
    {"transform", cmd_transform, "apply an augmentation pipeline to one image"},
    {"augment",   cmd_augment,   "write a grid of augmented training samples"},
    {"demo",      cmd_demo,      "prepare the offline demo data set (handwritten digits)"},
    {"ablate",    cmd_ablate,    "cardinality ablation at equal complexity or width"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out,
            "usage: rxc FILE.net [options]          train as the file says\n"
            "       rxc COMMAND [arguments]\n"
            "       rxc COMMAND --help              help for one command\n"
            "       rxc --version\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions common to commands that read a model: --set NAME=VALUE (repeatable).\n"
                 "See `man rxc` and docs/ for the language.\n");
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* before any thread starts: it may setenv (target/cpu/blas_cpu.h) */
    blas_cpu_choose_kernels();
    const char *first = argv[1];
    if (!strcmp(first, "--help") || !strcmp(first, "-h") || !strcmp(first, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(first, "--version") || !strcmp(first, "-V")) {
        char blas[320];
        blas_cpu_describe(blas, sizeof blas);
        printf("rxc %s\n%s\n", RXC_VERSION, blas);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(first, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    if (ends_with(first, ".net")) {
        /* `rxc FILE.net ...` -> `train FILE.net ...`: argv[0] becomes the command name. */
        argv[0] = "train";
        return cmd_train(argc, argv);
    }
    fprintf(stderr, "rxc: unknown command '%s'\n\n", first);
    usage(stderr);
    return 2;
}
