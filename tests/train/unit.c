/*
 * unit.c — a small driver that exposes the trainer's pure pieces to the
 * test script (tests/train/run.sh), which checks them against independent
 * Python code and PyTorch:
 *   unit st-write OUT            writes a safetensors file with every dtype and metadata
 *   unit st-read FILE            reads FILE; prints "ok N" and each tensor, or the error (exit 1)
 *   unit st-copy IN OUT          reads IN and writes it back (atomic writer)
 *   unit lr KEY=VALUE...         prints the learning rate of every optimizer step
 *   unit scalars KEY=VALUE...    prints the runtime scalars of steps 1..3
 *   unit init                    prints mean/std/min/max of each InitKind's values
 * Built by run.sh with the same sources rxc uses.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "init.h"
#include "recipe.h"
#include "safetensors.h"
#include "mix.h"
#include "schedule.h"
#include "util.h"

static int st_write_demo(const char *out) {
    SafeTensors st = {0};
    float f[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};
    int64_t i64 = 12345678901LL;
    uint16_t bf[3] = {0x3f80, 0xc000, 0x4049}; /* 1, -2, 3.140625 */
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s5[1] = {5}, s0[1] = {0};
    st_add(&st, "a.weight", ST_F32, 2, s23, f, false);
    st_add(&st, "bn.num_batches_tracked", ST_I64, 0, NULL, &i64, true);
    st_add(&st, "half", ST_BF16, 1, s3, bf, true);
    st_add(&st, "bytes", ST_U8, 1, s5, u8, true);
    st_add(&st, "empty", ST_F32, 1, s0, NULL, true);
    st_set_meta(&st, "format", "unit");
    st_set_meta(&st, "quote", "a \"quoted\"\nvalue");
    Error err = {0};
    int rc = st_write(out, &st, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    st_free(&st);
    return rc ? 1 : 0;
}

static int st_read_print(const char *path) {
    SafeTensors st;
    Error err = {0};
    if (st_read(path, &st, &err) != 0) {
        printf("error %s\n", err.msg);
        return 1;
    }
    printf("ok %d\n", st.n);
    for (int i = 0; i < st.n; i++) {
        const StTensor *t = &st.t[i];
        char sh[128];
        float *v = xmalloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
        st_to_f32(t, v);
        double sum = 0;
        for (int64_t k = 0; k < t->numel; k++) sum += v[k];
        printf("tensor %s %s %s sum=%.9g\n", t->name, st_dtype_name(t->dtype), st_shape_str(t->rank, t->shape, sh, sizeof sh), sum);
        free(v);
    }
    for (int i = 0; i < st.n_meta; i++) printf("meta %s=%s\n", st.meta[i].key, st.meta[i].value);
    st_free(&st);
    return 0;
}

static int st_copy(const char *in, const char *out) {
    SafeTensors st;
    Error err = {0};
    if (st_read(in, &st, &err) != 0) {
        printf("error %s\n", err.msg);
        return 1;
    }
    int rc = st_write(out, &st, &err);
    if (rc) printf("error %s\n", err.msg);
    st_free(&st);
    return rc ? 1 : 0;
}

/* KEY=VALUE settings into a recipe; returns steps_per_epoch. */
static int64_t parse_recipe(int argc, char **argv, Recipe *r) {
    memset(r, 0, sizeof *r);
    r->lr = 0.1;
    r->epochs = 10;
    r->gamma = 0.1;
    r->warmup_start = 0.01;
    r->beta1 = 0.9;
    r->beta2 = 0.999;
    r->eps = 1e-8;
    r->accum_steps = 1;
    r->sched = SCHED_CONSTANT;
    int64_t spe = 1;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "sched")) {
            r->sched = !strcmp(v, "cosine") ? SCHED_COSINE : !strcmp(v, "step") ? SCHED_STEP
                     : !strcmp(v, "multistep") ? SCHED_MULTISTEP : SCHED_CONSTANT;
        } else if (!strcmp(k, "lr")) r->lr = atof(v);
        else if (!strcmp(k, "eta_min")) r->eta_min = atof(v);
        else if (!strcmp(k, "epochs")) r->epochs = atoi(v);
        else if (!strcmp(k, "spe")) spe = atoi(v);
        else if (!strcmp(k, "per_step")) r->sched_per_step = atoi(v) != 0;
        else if (!strcmp(k, "t_max")) r->t_max = atoi(v);
        else if (!strcmp(k, "step_size")) r->step_size = atoi(v);
        else if (!strcmp(k, "gamma")) r->gamma = atof(v);
        else if (!strcmp(k, "warmup")) r->warmup_epochs = atoi(v);
        else if (!strcmp(k, "warmup_start")) r->warmup_start = atof(v);
        else if (!strcmp(k, "warmup_steps")) r->warmup_steps = atoi(v);
        else if (!strcmp(k, "warmup_kind")) r->warmup_kind = !strcmp(v, "constant") ? WARMUP_CONSTANT : WARMUP_LINEAR;
        else if (!strcmp(k, "warmup_lr_init")) {
            r->warmup_from_lr_init = true;
            r->warmup_lr_init = atof(v);
        } else if (!strcmp(k, "warmup_prefix")) r->warmup_overlaps = atoi(v) == 0;
        else if (!strcmp(k, "beta1")) r->beta1 = atof(v);
        else if (!strcmp(k, "beta2")) r->beta2 = atof(v);
        else if (!strcmp(k, "seed")) r->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "accum")) r->accum_steps = atoi(v);
        else if (!strcmp(k, "milestones")) {
            for (char *s = (char *)v; *s && r->n_milestones < RXC_MAX_MILESTONES;) {
                r->milestones[r->n_milestones++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
            }
        }
    }
    return spe;
}

static void print_init_stats(const char *label, const Param *p, uint64_t seed) {
    float *v = xmalloc((size_t)p->numel * sizeof(float));
    init_param(p, seed, v);
    double s = 0, s2 = 0, mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < p->numel; i++) {
        s += v[i];
        s2 += (double)v[i] * v[i];
        mn = fmin(mn, v[i]);
        mx = fmax(mx, v[i]);
    }
    double mean = s / p->numel;
    printf("%s %.6g %.6g %.6g %.6g %.9g\n", label, mean, sqrt(s2 / p->numel - mean * mean), mn, mx, v[0]);
    free(v);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "st-write") && argc == 3) return st_write_demo(argv[2]);
    if (!strcmp(cmd, "st-read") && argc == 3) return st_read_print(argv[2]);
    if (!strcmp(cmd, "st-copy") && argc == 4) return st_copy(argv[2], argv[3]);
    if (!strcmp(cmd, "lr")) {
        Recipe r;
        int64_t spe = parse_recipe(argc - 2, argv + 2, &r);
        for (int64_t s = 0; s < (int64_t)r.epochs * spe; s++) printf("%.17g\n", schedule_lr(&r, spe, s));
        return 0;
    }
    if (!strcmp(cmd, "scalars")) {
        Recipe r;
        parse_recipe(argc - 2, argv + 2, &r);
        for (int t = 1; t <= 3; t++) {
            double sc[SC_COUNT];
            schedule_scalars(&r, 0.5, t, t - 1, 8, sc);
            for (int k = 0; k < SC_COUNT; k++) printf("%.17g%c", sc[k], k + 1 < SC_COUNT ? ' ' : '\n');
        }
        return 0;
    }
    if (!strcmp(cmd, "mix") && argc >= 9) {
        /* mix N MIXUP_ALPHA CUTMIX_ALPHA PROB SWITCH H W: the draws of N micro-batches */
        Recipe r;
        memset(&r, 0, sizeof r);
        r.seed = 9;
        r.mixup_alpha = atof(argv[3]);
        r.cutmix_alpha = atof(argv[4]);
        r.mix_prob = atof(argv[5]);
        r.mix_switch_prob = atof(argv[6]);
        for (int64_t s = 0; s < atoll(argv[2]); s++) {
            MixDraw d = mix_draw(&r, atoi(argv[7]), atoi(argv[8]), s);
            if (d.lam == 1.0) printf("none\n");
            else if (d.cutmix) printf("cutmix %.17g %d %d %d %d\n", d.lam, d.y0, d.y1, d.x0, d.x1);
            else printf("mixup %.17g\n", d.lam);
        }
        return 0;
    }
    if (!strcmp(cmd, "init")) {
        /* A 3x3 conv 64 -> 128 (fan_in 576, fan_out 1152) and each init kind. */
        Param p = {0};
        p.name = "layer.conv.weight";
        p.rank = 4;
        p.dim[0] = 128, p.dim[1] = 64, p.dim[2] = 3, p.dim[3] = 3;
        p.numel = 128 * 64 * 9;
        p.trainable = true;
        p.fan_in = 576;
        p.fan_out = 1152;
        p.role = ROLE_WEIGHT;
        p.init = INIT_KAIMING_NORMAL_FAN_OUT;
        print_init_stats("kaiming", &p, 0);
        print_init_stats("kaiming_seed0_again", &p, 0);
        print_init_stats("kaiming_seed1", &p, 1);
        p.init = INIT_PYTORCH_DEFAULT;
        print_init_stats("default", &p, 0);
        p.init = INIT_ONES;
        print_init_stats("ones", &p, 0);
        p.init = INIT_ZEROS;
        print_init_stats("zeros", &p, 0);
        p.role = ROLE_RUNNING_VAR;
        p.init = INIT_ZEROS;
        print_init_stats("running_var", &p, 0);
        p.role = ROLE_RUNNING_MEAN;
        print_init_stats("running_mean", &p, 0);
        return 0;
    }
    fprintf(stderr, "unit: unknown command\n");
    return 2;
}
