/*
 * conv_igemm.h — inside the CUDA target's conv kernels (conv_cuda.c): the
 * implicit-GEMM form of one-group convolutions (conv_igemm.c), and the
 * pieces of conv_cuda.c that both forms share.
 */
#ifndef RXC_CONV_IGEMM_H
#define RXC_CONV_IGEMM_H

#include <stdbool.h>

#include "conv_cuda.h"
#include "util.h"

enum { CONV_FINISH_THREADS = 256 };

/* Whether conv_igemm has tensor-core kernels (bf16 activations) for all
 * three passes of this one-group geometry (tensors indexable with 32 bits). */
bool conv_igemm_supported(const ConvGeom *g);

/* k->launch for k's step (one of conv_igemm_supported's geometries). */
void conv_igemm_launch(ConvCudaKernel *k);

/* The source of k's pass (and NAME_finish for the weight gradient). */
void conv_igemm_render(StrBuf *o, const ConvCudaKernel *k);

/* Chunks of the weight gradient's first stage (its scratch holds this
 * many copies of dw). */
int conv_igemm_wgrad_chunks(const ConvGeom *g);

/* conv_cuda.c: a kernel's header comment and parameter list (suffix "" or
 * "_finish"), and NAME_finish: w (= or +=) the sum of `chunks` partials in
 * scratch, in chunk order. */
void conv_cuda_signature(StrBuf *o, const ConvCudaKernel *k, const char *suffix, int threads);
void conv_cuda_wgrad_finish(StrBuf *o, const ConvCudaKernel *k, int chunks);

#endif
