/*
 * twice_kernel.h — the test kernel of the fake GPU's own checks
 * (fake_checks.c, nccl_checks.c): as render_cuda writes one, with its
 * buffer extents, out[i] = 2 in[i] for TWICE_N elements.
 */
#ifndef RXC_TWICE_KERNEL_H
#define RXC_TWICE_KERNEL_H

enum { TWICE_N = 256 };

static const char *const twice_source =
    "/* twice: rows, outer 256, inner 1\n"
    " * extents: 256 256 */\n"
    "extern \"C\" __global__ void __launch_bounds__(256) twice(RXC_GLOBAL(const float) b0_in, "
    "RXC_GLOBAL(float) b1_out, const double *sc) {\n"
    "    int i = (int)blockIdx.x * 256 + threadIdx.x;\n"
    "    if (i < 256) b1_out[i] = 2.0f * b0_in[i];\n"
    "}\n";

#endif
