/*
 * schedule.c — learning-rate schedules and per-step scalars (see schedule.h).
 */
#include "schedule.h"

#include <math.h>

#include "util.h"

/* A stream id for dropout seeds, distinct from the data pipeline's. */
#define STREAM_DROPOUT 0x64726f706f7574ULL /* "dropout" */

static double main_schedule(const Recipe *r, int64_t v, int64_t remaining) {
    switch (r->sched) {
    case SCHED_CONSTANT: return r->lr;
    case SCHED_COSINE: {
        int64_t T = r->t_max > 0 ? r->t_max : remaining;
        if (T < 1) T = 1;
        return r->eta_min + (r->lr - r->eta_min) * (1.0 + cos(M_PI * (double)v / (double)T)) / 2.0;
    }
    case SCHED_STEP: {
        int64_t size = r->step_size > 0 ? r->step_size : 1;
        return r->lr * pow(r->gamma, (double)(v / size));
    }
    case SCHED_MULTISTEP: {
        int passed = 0;
        for (int i = 0; i < r->n_milestones; i++)
            if (v >= r->milestones[i]) passed++;
        return r->lr * pow(r->gamma, passed);
    }
    }
    return r->lr;
}

static double lr_at_unit(const Recipe *r, int64_t u, int64_t total_units, int64_t warmup_units) {
    if (u < warmup_units) {
        if (r->warmup_kind == WARMUP_CONSTANT) return r->lr * r->warmup_start;
        if (r->warmup_from_lr_init)
            return r->warmup_lr_init + (r->lr - r->warmup_lr_init) * (double)u / (double)warmup_units;
        double ws = r->warmup_start;
        return r->lr * (ws + (1.0 - ws) * (double)u / (double)warmup_units);
    }
    if (r->warmup_overlaps) return main_schedule(r, u, total_units);
    return main_schedule(r, u - warmup_units, total_units - warmup_units);
}

double schedule_lr(const Recipe *r, int64_t steps_per_epoch, int64_t step) {
    if (steps_per_epoch < 1) steps_per_epoch = 1;
    int64_t epochs = r->epochs > 0 ? r->epochs : 1;
    /* warmup in steps: the front end allows it only with a per-step schedule, or a constant one (the same either way) */
    if (r->sched_per_step || r->warmup_steps > 0) {
        int64_t warmup = r->warmup_steps > 0 ? r->warmup_steps : (int64_t)r->warmup_epochs * steps_per_epoch;
        return lr_at_unit(r, step, epochs * steps_per_epoch, warmup);
    }
    return lr_at_unit(r, step / steps_per_epoch, epochs, r->warmup_epochs);
}

double schedule_epoch_lr(const Recipe *r, int64_t steps_per_epoch, int epoch) {
    if (steps_per_epoch < 1) steps_per_epoch = 1;
    return schedule_lr(r, steps_per_epoch, (int64_t)epoch * steps_per_epoch);
}

void schedule_scalars(const Recipe *r, double lr, int64_t opt_step, int64_t micro_step, int batch,
                      double sc[SC_COUNT]) {
    for (int i = 0; i < SC_COUNT; i++) sc[i] = 0.0;
    int accum = r->accum_steps > 0 ? r->accum_steps : 1;
    double t = (double)(opt_step > 0 ? opt_step : 1);
    sc[SC_LR] = lr;
    sc[SC_WEIGHT_DECAY] = r->weight_decay;
    sc[SC_MOMENTUM] = r->momentum;
    sc[SC_BETA1] = r->beta1;
    sc[SC_BETA2] = r->beta2;
    sc[SC_EPS] = r->eps;
    sc[SC_BIAS_CORR1] = 1.0 - pow(r->beta1, t);
    sc[SC_BIAS_CORR2] = 1.0 - pow(r->beta2, t);
    sc[SC_STEP] = t;
    /* < 2^53 so that it survives the trip through a double exactly. */
    sc[SC_RNG_SEED] = (double)(rng_key(r->seed, STREAM_DROPOUT, (uint64_t)micro_step) >> 11);
    sc[SC_GRAD_SCALE] = 1.0 / ((double)(batch > 0 ? batch : 1) * accum);
    sc[SC_FIRST_STEP] = opt_step <= 1 ? 1.0 : 0.0;
}
