/*
 * exec_cuda.h — GPU-executor settings beyond executor.h's interface
 * (exec_cuda_new is declared there).
 */
#ifndef RXC_EXEC_CUDA_H
#define RXC_EXEC_CUDA_H

#include "executor.h"

/* TF32 tensor cores for f32 GEMMs (recipe precision tf32). Off by default.
 * The environment variable RXC_TF32, when set, decides instead: =1 on, =0
 * off, whatever the precision asks. No effect on other executors. */
void exec_cuda_set_tf32(Executor *e, int on);

#endif
