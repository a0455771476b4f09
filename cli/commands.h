/*
 * commands.h — the subcommands of the rxc driver (main.c).
 *
 * Each command takes the arguments after its name (argv[0] is the command
 * name) and returns the process exit status: 0 success, 1 failure at run
 * time, 2 bad input (a bad .net file, bad arguments), 130 interrupted.
 * Each lives in the file that owns its concern.
 */
#ifndef RXC_COMMANDS_H
#define RXC_COMMANDS_H

int cmd_check(int argc, char **argv);     /* cmd_frontend.c */
int cmd_summary(int argc, char **argv);   /* cmd_frontend.c */
int cmd_graph(int argc, char **argv);     /* cmd_frontend.c */
int cmd_emit(int argc, char **argv);      /* cmd_codegen.c */
int cmd_compile(int argc, char **argv);   /* cli/cmd_compile.c */
int cmd_train(int argc, char **argv);     /* cli/cmd_train.c */
int cmd_step(int argc, char **argv);      /* cli/cmd_step.c */
int cmd_grad(int argc, char **argv);      /* cli/cmd_step.c */
int cmd_eval(int argc, char **argv);      /* cli/cmd_train.c */
int cmd_predict(int argc, char **argv);   /* cli/cmd_train.c */
int cmd_transform(int argc, char **argv); /* cli/cmd_data.c */
int cmd_augment(int argc, char **argv);   /* cli/cmd_data.c */
int cmd_demo(int argc, char **argv);      /* cli/cmd_data.c */
int cmd_ablate(int argc, char **argv);    /* cli/cmd_ablate.c */

/* Removes every `--set NAME=VALUE` (and `--set=NAME=VALUE`) from argv,
 * compacting it, and appends them to *sets (malloc'd). Returns 0, or -1 with
 * a message on stderr for a malformed one (cli_args.c). */
struct SetOverride;
int cli_take_sets(int *argc, char **argv, struct SetOverride **sets, int *n_sets);

/* Removes `--distributed auto|on|off` (and `--distributed=...`) from argv
 * and opens the communicator it asks for (distributed.h): *d NULL for one
 * process. Returns 0, or 2 after a message on stderr (a bad value, `on`
 * without mpirun/srun, a launch of several processes without Open MPI). */
struct Dist;
int cli_take_distributed(int *argc, char **argv, struct Dist **d);

/* `rxc summary FILE --kernels/--memory` is answered by the training compiler
 * (cmd_codegen.c), which cmd_summary calls after loading the model. */
struct Model;
int summary_training_report(struct Model *m, int batch, int want_kernels, int want_memory, int json, int cuda);

/* The options the trainer compiles m's training step with on target at this
 * batch (trainer_compile_options, with `rxc train`'s configuration: uint8
 * batches normalized by the first kernel where the target wants them), so
 * that emit, summary and compile show the program that trains. Single-op
 * networks, which end in a feature map, get an external loss gradient
 * (cmd_codegen.c). */
struct CompileOptions;
struct Target;
void trainer_program_options(const struct Model *m, int batch, const struct Target *target, int arch,
                             struct CompileOptions *o);

#endif
