/*
 * test_cost.c — the cost model (compiler/cost.h) and the GPU roofline
 * (target/cuda/gpu_specs.h) against hand-computed figures for small
 * programs built here: GEMMs (FLOPs 2mnk, bytes (mk + kn + mn) x size, C
 * read back only with beta, grouped and shared batch operands counted once,
 * tensor-core eligibility), kernels (a pointwise kernel moves its input and
 * output once; overlapping loads of one buffer count their union; two
 * kernel buffers bound to one Program buffer count once; a column
 * reduction), a direct convolution, and the roofline formula. No timing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "gpu_specs.h"
#include "harness.h"
#include "kir.h"
#include "render_cuda.h"
#include "util.h"

/* A program with nb buffers of the given dtypes and numels, one module. */
static Program *program_new(int nb, const KDType *types, const int64_t *numel) {
    Program *p = xcalloc(1, sizeof *p);
    p->module = kir_module_new();
    p->bufs = xcalloc((size_t)nb, sizeof *p->bufs);
    p->n_bufs = p->cap_bufs = nb;
    for (int b = 0; b < nb; b++) p->bufs[b] = (BufDesc){.dtype = types[b], .numel = numel[b]};
    p->batch = 1;
    return p;
}

static void program_del(Program *p) {
    kir_module_free(p->module);
    free(p->bufs);
    free(p);
}

static bool near(double got, double want) { return fabs(got - want) <= 1e-9 * fmax(1, fabs(want)); }

static bool check_cost(const char *name, StepCost c, double flops, double rd, double wr) {
    return harness_check(name, near(c.flops, flops) && near(c.bytes_read, rd) && near(c.bytes_written, wr),
                         "flops %.0f bytes read %.0f written %.0f; expected %.0f, %.0f, %.0f", c.flops,
                         c.bytes_read, c.bytes_written, flops, rd, wr);
}

static Step gemm_step(int m, int n, int k, int batch) {
    Step s = {.kind = STEP_GEMM};
    s.gemm = (GemmStep){.a = 0, .b = 1, .c = 2, .m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n,
                        .alpha = 1, .beta = 0, .batch = batch};
    return s;
}

static void test_gemms(void) {
    enum { M = 64, N = 32, K = 16 };
    Program *p = program_new(3, (KDType[]){KD_F32, KD_F32, KD_F32}, (int64_t[]){M * K, K * N, M * N});
    Step s = gemm_step(M, N, K, 1);
    StepCost c = cost_of_step(p, &s, false);
    check_cost("cost_gemm_2mnk_and_operands_once", c, 2.0 * M * N * K, (M * K + K * N) * 4.0, M * N * 4.0);
    harness_check("cost_gemm_fp32_no_tensor_cores", c.matmul && c.math == COST_MATH_SCALAR, "math %d", c.math);
    harness_check("cost_gemm_tf32_tensor_cores", cost_of_step(p, &s, true).math == COST_MATH_TF32, "not TF32");
    s.gemm.beta = 1;
    check_cost("cost_gemm_beta_reads_c", cost_of_step(p, &s, false), 2.0 * M * N * K, (M * K + K * N + M * N) * 4.0,
               M * N * 4.0);
    program_del(p);

    /* bf16 operands, f32 output: tensor cores when 16-byte aligned */
    p = program_new(3, (KDType[]){KD_BF16, KD_BF16, KD_F32}, (int64_t[]){M * K, K * N, M * N});
    s = gemm_step(M, N, K, 1);
    c = cost_of_step(p, &s, false);
    check_cost("cost_gemm_bf16_bytes", c, 2.0 * M * N * K, (M * K + K * N) * 2.0, M * N * 4.0);
    harness_check("cost_gemm_bf16_tensor_cores", c.math == COST_MATH_BF16, "math %d", c.math);
    s.gemm.k = 36, s.gemm.lda = 36; /* 72-byte rows: not a multiple of 16 */
    harness_check("cost_gemm_misaligned_no_tensor_cores", cost_of_step(p, &s, false).math == COST_MATH_SCALAR,
                  "a 72-byte leading dimension was counted on tensor cores");
    program_del(p);

    /* 8 groups interleaved in one NHWC matrix (A: M x 8*KG, lda = 8*KG, stride KG),
     * a weight shared by every batch entry (stride 0): each byte once */
    enum { G = 8, KG = 4, NG = 4 };
    p = program_new(3, (KDType[]){KD_F32, KD_F32, KD_F32}, (int64_t[]){M * G * KG, KG * NG, M * G * NG});
    s = gemm_step(M, NG, KG, G);
    s.gemm.lda = G * KG, s.gemm.stride_a = KG;
    s.gemm.ldb = NG, s.gemm.stride_b = 0;
    s.gemm.ldc = G * NG, s.gemm.stride_c = NG;
    check_cost("cost_gemm_grouped_interleaved_and_shared", cost_of_step(p, &s, false), 2.0 * M * NG * KG * G,
               (M * G * KG + KG * NG) * 4.0, M * G * NG * 4.0);
    program_del(p);
}

static int add_kernel(Program *p, Kernel *k, Step *s, const int *args) {
    Error err = {0};
    if (kir_finish(k, &err) != 0) {
        fprintf(stderr, "kir_finish: %s\n", err.msg);
        exit(1);
    }
    *s = (Step){.kind = STEP_KERNEL, .kernel = kir_module_add(p->module, k), .n_args = k->n_bufs};
    s->args = xcalloc((size_t)k->n_bufs, sizeof(int));
    memcpy(s->args, args, (size_t)k->n_bufs * sizeof(int));
    return s->kernel;
}

enum { PN = 1000 };

/* y[i] = x[i] * 2 + 1 over PN elements: 2 PN flops, x and y once. */
static void test_pointwise(void) {
    Program *p = program_new(2, (KDType[]){KD_F32, KD_BF16}, (int64_t[]){PN, PN});
    Kernel *k = kir_kernel_new("axpb", KF_ROWS, PN, 1);
    int x = kir_buf(k, "x", KD_F32, PN, false), y = kir_buf(k, "y", KD_BF16, PN, true);
    int i = kir_var(k, KV_OUTER);
    int v = kir_bin(k, KB_ADD, kir_bin(k, KB_MUL, kir_load(k, x, i), kir_const_f(k, 2)), kir_const_f(k, 1));
    kir_store(k, kir_stage(k, KS_STORE), y, i, v, false);
    Step s;
    add_kernel(p, k, &s, (int[]){0, 1});
    StepCost c = cost_of_step(p, &s, false);
    check_cost("cost_pointwise_in_and_out_once", c, 2.0 * PN, PN * 4.0, PN * 2.0);
    StepEstimate e = gpu_estimate_step(gpu_spec_find("h200"), p, &s, false);
    harness_check("cost_pointwise_one_launch", e.launches == 1 && !c.matmul, "%d launches", e.launches);
    free(s.args);
    program_del(p);
}

/* z[i] = x[i] + x[i+1] (x has PN + 1 elements): x's ranges overlap, so
 * PN + 1 elements are read, not 2 PN; then the same kernel with x and z
 * bound to one Program buffer (in place) reads it once, writes it once. */
static void test_union_and_alias(void) {
    Program *p = program_new(2, (KDType[]){KD_F32, KD_F32}, (int64_t[]){PN + 1, PN + 1});
    Kernel *k = kir_kernel_new("pairs", KF_ROWS, PN, 1);
    int x = kir_buf(k, "x", KD_F32, PN + 1, false), z = kir_buf(k, "z", KD_F32, PN, true);
    int i = kir_var(k, KV_OUTER);
    int next = kir_bin(k, KB_ADD, i, kir_const_i(k, 1));
    kir_store(k, kir_stage(k, KS_STORE), z, i, kir_bin(k, KB_ADD, kir_load(k, x, i), kir_load(k, x, next)), false);
    Step s;
    add_kernel(p, k, &s, (int[]){0, 1});
    check_cost("cost_overlapping_loads_count_union", cost_of_step(p, &s, false), PN, (PN + 1) * 4.0, PN * 4.0);
    s.args[1] = 0;
    check_cost("cost_aliased_buffers_count_once", cost_of_step(p, &s, false), PN, (PN + 1) * 4.0, PN * 4.0);
    free(s.args);
    program_del(p);
}

enum { RR = 512, RC = 24 };

/* Column sums of an R x C tensor: R C adds, x once, C sums written; on the
 * GPU a second launch (NAME_finish) and the chunk partials both ways. */
static void test_cols(void) {
    Program *p = program_new(2, (KDType[]){KD_F32, KD_F32}, (int64_t[]){RR * RC, RC});
    Kernel *k = kir_kernel_new("colsum", KF_COLS, RC, RR);
    int x = kir_buf(k, "x", KD_F32, RR * RC, false), y = kir_buf(k, "y", KD_F32, RC, true);
    int i = kir_var(k, KV_OUTER), j = kir_var(k, KV_INNER);
    int idx = kir_bin(k, KB_ADD, kir_bin(k, KB_MUL, j, kir_const_i(k, RC)), i);
    int s0 = kir_stage(k, KS_REDUCE);
    int acc = kir_acc(k, s0, KR_SUM, kir_load(k, x, idx));
    kir_store(k, kir_stage(k, KS_STORE), y, i, acc, false);
    Step s;
    int kid = add_kernel(p, k, &s, (int[]){0, 1});
    check_cost("cost_column_reduction", cost_of_step(p, &s, false), (double)RR * RC, RR * RC * 4.0, RC * 4.0);
    StepEstimate e = gpu_estimate_step(gpu_spec_find("h200"), p, &s, false);
    CudaLaunch l = render_cuda_launch(p->module->kernels[kid]);
    double scratch = (double)l.scratch_floats * 4;
    harness_check("cost_cols_finish_launch_and_scratch",
                  e.launches == 2 && near(e.scratch_bytes, scratch) && near(e.cost.bytes_read, RR * RC * 4.0 + scratch) &&
                      near(e.cost.bytes_written, RC * 4.0 + scratch),
                  "%d launches, scratch %.0f (launch table %.0f)", e.launches, e.scratch_bytes, scratch);
    free(s.args);
    program_del(p);
}

static void test_conv_and_roofline(void) {
    /* N 2, 8x8, Cin 8 -> Cout 16, 2 groups, 3x3 stride 1 pad 1 */
    ConvGeom g = {.n = 2, .h = 8, .w = 8, .cin = 8, .oh = 8, .ow = 8, .cout = 16, .groups = 2, .kh = 3, .kw = 3,
                  .sh = 1, .sw = 1, .ph = 1, .pw = 1};
    double xe = 2 * 8 * 8 * 8, we = 16 * 4 * 9, ye = 2 * 8 * 8 * 16, flops = 2.0 * 2 * 8 * 8 * 16 * 4 * 9;
    Program *p = program_new(3, (KDType[]){KD_F32, KD_F32, KD_F32}, (int64_t[]){(int64_t)xe, (int64_t)we, (int64_t)ye});
    Step s = {.kind = STEP_CONV, .conv = {.pass = CONV_FORWARD, .g = g, .x = 0, .w = 1, .y = 2}};
    check_cost("cost_conv_forward", cost_of_step(p, &s, false), flops, (xe + we) * 4, ye * 4);
    s.conv.pass = CONV_WEIGHT_GRAD;
    s.conv.accumulate = true;
    check_cost("cost_conv_weight_grad_accumulate", cost_of_step(p, &s, false), flops, (xe + we + ye) * 4, we * 4);
    /* the cores are the step's engine (the target's answer), not a guess */
    StepCost cuda_cores = cost_of_step(p, &s, false);
    s.conv.engine = CONV_ENGINE_TENSOR_CORES;
    StepCost tensor_cores = cost_of_step(p, &s, false);
    harness_check("cost_conv_engine_names_the_cores",
                  cuda_cores.math == COST_MATH_SCALAR && tensor_cores.math == COST_MATH_BF16 && tensor_cores.matmul &&
                      near(tensor_cores.flops, flops),
                  "math %d (CUDA cores) and %d (tensor cores)", cuda_cores.math, tensor_cores.math);

    /* a 1x1 stride-2 pass reads the quarter of x its windows reach; its data gradient writes all of x */
    ConvGeom ds = {.n = 2, .h = 8, .w = 8, .cin = 8, .oh = 4, .ow = 4, .cout = 16, .groups = 1, .kh = 1, .kw = 1,
                   .sh = 2, .sw = 2, .ph = 0, .pw = 0};
    Step d = {.kind = STEP_CONV, .conv = {.pass = CONV_WEIGHT_GRAD, .g = ds, .x = 0, .w = 1, .y = 2}};
    check_cost("cost_conv_strided_reads_the_reached_pixels", cost_of_step(p, &d, false), 2.0 * 2 * 4 * 4 * 16 * 8,
               (2 * 4 * 4 * 8 + 2 * 4 * 4 * 16) * 4, 16 * 8 * 4);
    d.conv.pass = CONV_DATA_GRAD;
    check_cost("cost_conv_strided_data_grad_writes_all_of_dx", cost_of_step(p, &d, false), 2.0 * 2 * 4 * 4 * 16 * 8,
               (16 * 8 + 2 * 4 * 4 * 16) * 4, 2 * 8 * 8 * 8 * 4);

    /* roofline: max(flops / fp32 peak, bytes / bandwidth) + launches x overhead */
    const GpuSpec *h200 = gpu_spec_find("h200");
    Program *q = program_new(3, (KDType[]){KD_F32, KD_F32, KD_F32}, (int64_t[]){4096 * 4096, 4096 * 4096, 4096 * 4096});
    Step big = gemm_step(4096, 4096, 4096, 1);
    StepEstimate e = gpu_estimate_step(h200, q, &big, false);
    double want = fmax(2.0 * 4096 * 4096 * 4096 / 67e12, 3.0 * 4096 * 4096 * 4 / 4.8e12) + GPU_LAUNCH_OVERHEAD_S;
    harness_check("roofline_formula", near(e.seconds, want) && e.launches == 1, "%.9g s, expected %.9g", e.seconds, want);
    e = gpu_estimate_step(h200, q, &big, true);
    want = fmax(2.0 * 4096 * 4096 * 4096 / 494.5e12, 3.0 * 4096 * 4096 * 4 / 4.8e12) + GPU_LAUNCH_OVERHEAD_S;
    harness_check("roofline_tf32_peak", near(e.seconds, want), "%.9g s, expected %.9g", e.seconds, want);
    harness_check("gpu_table", gpu_spec_find("a100") && gpu_spec_find("h100") && !gpu_spec_find("v100") &&
                                   gpu_spec_find("h100")->hbm_bytes_per_s < h200->hbm_bytes_per_s,
                  "lookup of the GPU table");
    program_del(q);
    program_del(p);
}

int main(void) {
    test_gemms();
    test_pointwise();
    test_union_and_alias();
    test_cols();
    test_conv_and_roofline();
    return harness_status();
}
