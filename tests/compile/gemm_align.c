/*
 * gemm_align.c — tests/compile: every GEMM step of a model's training
 * Program is laid out so that cuBLAS's tensor-core paths are eligible:
 * each operand's base address, leading dimension and (batched) per-group
 * stride a multiple of 16 bytes (8 bf16 or 4 f32 elements). Addresses are
 * checked as the GPU executor places them: every storage space starts on a
 * 256-byte boundary (exec_cuda.c), a buffer at its planned offset.
 *
 * usage: gemm_align cuda|cpu fp32|bf16 MODEL.net CASE_NAME [--expect-misaligned]
 * Prints PASS/FAIL CASE_NAME. --expect-misaligned inverts the verdict: the
 * CPU target keeps the unpadded layout, so the checker must find GEMMs
 * there (it can fail).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile.h"
#include "frontend.h"
#include "target_cpu.h"
#include "target_cuda.h"
#include "util.h"

enum { WANT_BYTES = 16 };

static int64_t elt_bytes(KDType t) { return t == KD_BF16 ? 2 : t == KD_F32 ? 4 : t == KD_U8 ? 1 : 8; }

/* Appends one line per misaligned property of operand `which` of a GEMM. */
static int check_operand(const Program *p, const GemmStep *g, char which, int buf, int64_t off, int ld,
                         int64_t stride, const char *note, StrBuf *why) {
    const BufDesc *b = &p->bufs[buf];
    int64_t e = elt_bytes(b->dtype), bad = 0;
    int64_t base = b->offset + off * e;
    if (base % WANT_BYTES) bad++, sb_printf(why, "    %s: %c (%s) starts at byte %lld\n", note, which, b->name, (long long)base);
    if ((int64_t)ld * e % WANT_BYTES)
        bad++, sb_printf(why, "    %s: ld%c = %d elements (%lld bytes)\n", note, which, ld, (long long)(ld * e));
    if (g->batch > 1 && stride * e % WANT_BYTES)
        bad++, sb_printf(why, "    %s: stride_%c = %lld elements (%lld bytes)\n", note, which, (long long)stride,
                         (long long)(stride * e));
    return bad > 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: gemm_align cuda|cpu fp32|bf16 MODEL.net CASE [--expect-misaligned]\n");
        return 2;
    }
    const Target *target = !strcmp(argv[1], "cuda") ? &target_cuda : &target_cpu;
    Precision prec = !strcmp(argv[2], "bf16") ? PREC_BF16 : PREC_FP32;
    const char *name = argv[4];
    bool expect_bad = argc > 5 && !strcmp(argv[5], "--expect-misaligned");
    Model m;
    LoadOptions lo = {0};
    if (model_load(argv[3], &lo, &m) != LOAD_OK) {
        printf("FAIL %s: cannot load %s\n", name, argv[3]);
        return 1;
    }
    CompileOptions o;
    compile_options_from_recipe(&o, &m.recipe, 2, target);
    o.precision = prec;
    Error err = {0};
    Program *p = compile_training(m.graph, &o, &err);
    if (!p) {
        printf("FAIL %s: %s\n", name, err.msg);
        return 1;
    }
    int n = 0, bad = 0;
    StrBuf why = {0};
    for (int ph = 0; ph < PHASE_COUNT; ph++)
        for (int s = 0; s < p->n_steps[ph]; s++) {
            const Step *st = &p->steps[ph][s];
            if (st->kind != STEP_GEMM) continue;
            const GemmStep *g = &st->gemm;
            const char *note = st->note ? st->note : "?";
            n++;
            int b = check_operand(p, g, 'a', g->a, g->off_a, g->lda, g->stride_a, note, &why);
            b |= check_operand(p, g, 'b', g->b, g->off_b, g->ldb, g->stride_b, note, &why);
            b |= check_operand(p, g, 'c', g->c, g->off_c, g->ldc, g->stride_c, note, &why);
            bad += b;
        }
    bool ok = expect_bad ? bad > 0 : bad == 0 && n > 0;
    if (ok) printf("PASS %s (%d GEMM steps, %d misaligned%s)\n", name, n, bad, expect_bad ? ", as expected" : "");
    else if (expect_bad) printf("FAIL %s: all %d GEMM steps aligned, the checker found nothing to catch\n", name, n);
    else printf("FAIL %s: %d of %d GEMM steps misaligned for tensor cores:\n%.3000s", name, bad, n, why.s ? why.s : "\n");
    free(why.s);
    program_free(p);
    model_free(&m);
    return ok ? 0 : 1;
}
