/*
 * profile_cuda.c — RXC_PROFILE on the GPU (profile_cuda.h): the events
 * around every step of the training phases, the measured times, and the
 * report against the cost model (gpu_specs.h), as a table on stderr and as
 * JSON lines (RXC_PROFILE_JSON).
 */
#include "profile_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gpu_specs.h"
#include "util.h"

enum { DEFAULT_STEPS = 3 };

/* The phases of one training step, as `rxc compile --estimate` counts it. */
static const Phase timed_phases[] = {PHASE_FORWARD_TRAIN, PHASE_BACKWARD, PHASE_UPDATE};
enum { N_TIMED = sizeof timed_phases / sizeof timed_phases[0] };

/* A goal of issue 13: the kernels within 1.5x of the cost model's time in sum. */
#define GOAL_RATIO 1.5

struct CudaProfile {
    const CudaApi *api;
    const Program *p;
    char device[200];
    const GpuSpec *gpu;
    char gpu_note[400];
    int steps;                      /* runs of each phase to time after the first */
    CUevent *events[PHASE_COUNT];   /* n_steps + 1 boundaries per timed phase */
    double *seconds[PHASE_COUNT];   /* per step, summed over the timed runs */
    int runs[PHASE_COUNT];          /* timed runs read */
    bool reported;
};

static bool is_timed_phase(Phase ph) { return ph == PHASE_FORWARD_TRAIN || ph == PHASE_BACKWARD || ph == PHASE_UPDATE; }

int cuda_profile_open(CudaProfile **out, const CudaApi *api, const Program *p, const char *device,
                      const char *device_name, int sm, Error *err) {
    *out = NULL;
    const char *env = getenv("RXC_PROFILE"), *steps_env = getenv("RXC_PROFILE_STEPS");
    if (!env || !*env || !strcmp(env, "0")) return 0;
    CudaProfile *prof = xcalloc(1, sizeof *prof);
    *out = prof;
    prof->api = api;
    prof->p = p;
    snprintf(prof->device, sizeof prof->device, "%s", device);
    prof->gpu = gpu_spec_for_device(device_name, sm, prof->gpu_note, sizeof prof->gpu_note);
    prof->steps = steps_env && atoi(steps_env) > 0 ? atoi(steps_env) : DEFAULT_STEPS;
    for (int q = 0; q < N_TIMED; q++) {
        Phase ph = timed_phases[q];
        int n = p->n_steps[ph];
        prof->events[ph] = xcalloc((size_t)n + 1, sizeof(CUevent));
        prof->seconds[ph] = xcalloc((size_t)n + 1, sizeof(double));
        for (int b = 0; b <= n; b++) {
            CUresult r = api->cuEventCreate(&prof->events[ph][b], 0); /* timing events */
            if (r != 0) {
                prof->reported = true; /* nothing to report when closed */
                return cuda_error_set(err, api, r, "RXC_PROFILE: cuEventCreate");
            }
        }
    }
    fprintf(stderr,
            "rxc: RXC_PROFILE: timing every step of %d training steps after the first with CUDA events; direct "
            "launches, no CUDA graphs, until the report\n",
            prof->steps);
    return 0;
}

bool cuda_profile_times(const CudaProfile *prof, Phase ph, int run) {
    return prof && !prof->reported && is_timed_phase(ph) && run >= 1 && run <= prof->steps;
}

bool cuda_profile_pending(const CudaProfile *prof) { return prof && !prof->reported; }

int cuda_profile_mark(CudaProfile *prof, Phase ph, int b, CUstream s, Error *err) {
    CUresult r = prof->api->cuEventRecord(prof->events[ph][b], s);
    return r ? cuda_error_set(err, prof->api, r, "RXC_PROFILE: cuEventRecord") : 0;
}

/* ---- the report ------------------------------------------------------------------ */

typedef struct ProfileRow {
    Phase phase;
    int index;
    const Step *step;
    char *name;
    double measured, model;
    int launches;
} ProfileRow;

typedef struct ProfileTotals {
    double measured[PHASE_COUNT], model[PHASE_COUNT], all_measured, all_model;
    int entries;
} ProfileTotals;

static int by_lost_time(const void *a, const void *b) {
    const ProfileRow *x = a, *y = b;
    double lx = x->measured - x->model, ly = y->measured - y->model;
    return lx > ly ? -1 : lx < ly;
}

/* One row per step of every phase with timed runs, largest lost time first. */
static ProfileRow *report_rows(const CudaProfile *prof, bool tf32, ProfileTotals *t) {
    const Program *p = prof->p;
    int total = 0;
    for (int q = 0; q < N_TIMED; q++) total += p->n_steps[timed_phases[q]];
    ProfileRow *rows = xcalloc((size_t)total + 1, sizeof *rows);
    memset(t, 0, sizeof *t);
    for (int q = 0; q < N_TIMED; q++) {
        Phase ph = timed_phases[q];
        if (!prof->runs[ph]) continue;
        for (int i = 0; i < p->n_steps[ph]; i++) {
            const Step *s = &p->steps[ph][i];
            StepEstimate e = gpu_estimate_step(prof->gpu, p, s, tf32);
            ProfileRow *r = &rows[t->entries++];
            *r = (ProfileRow){ph, i, s, gpu_step_label(p, s), prof->seconds[ph][i] / prof->runs[ph], e.seconds,
                              e.launches};
            t->measured[ph] += r->measured;
            t->model[ph] += r->model;
            t->all_measured += r->measured;
            t->all_model += r->model;
        }
    }
    qsort(rows, (size_t)t->entries, sizeof *rows, by_lost_time);
    return rows;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }

static void print_text(const CudaProfile *prof, const ProfileRow *rows, const ProfileTotals *t) {
    fprintf(stderr, "rxc profile: measured on %s with CUDA events, direct launches (no CUDA graphs)\n", prof->device);
    fprintf(stderr, "  timed runs: forward %d, backward %d, update %d (after the first of each); batch %d\n",
            prof->runs[PHASE_FORWARD_TRAIN], prof->runs[PHASE_BACKWARD], prof->runs[PHASE_UPDATE], prof->p->batch);
    fprintf(stderr, "  model: the cost model of `rxc compile --estimate --gpu %s` (%s; an estimate)\n", prof->gpu->name,
            prof->gpu->full_name);
    if (prof->gpu_note[0]) fprintf(stderr, "  note: %s\n", prof->gpu_note);
    fprintf(stderr, "%-8s %4s  %-40s %12s %10s %6s %12s %2s  %s\n", "phase", "step", "kernel / library step",
            "measured us", "model us", "eff.", "lost us", "L", "note");
    for (int i = 0; i < t->entries; i++) {
        const ProfileRow *r = &rows[i];
        fprintf(stderr, "%-8s %4d  %-40s %12.2f %10.2f %6.3f %12.2f %2d  %.60s\n", gpu_phase_key(r->phase), r->index,
                r->name, r->measured * 1e6, r->model * 1e6, ratio(r->model, r->measured),
                (r->measured - r->model) * 1e6, r->launches, r->step->note ? r->step->note : "");
    }
    for (int q = 0; q < N_TIMED; q++) {
        Phase ph = timed_phases[q];
        fprintf(stderr, "  %-8s measured %10.3f ms, model %10.3f ms\n", gpu_phase_key(ph), t->measured[ph] * 1e3,
                t->model[ph] * 1e3);
    }
    double r = ratio(t->all_measured, t->all_model);
    fprintf(stderr,
            "totals: %d entries, measured %.3f ms per step, model %.3f ms per step, efficiency %.3f; "
            "measured / model %.2fx (goal: within %.1fx in sum: %s)\n",
            t->entries, t->all_measured * 1e3, t->all_model * 1e3, ratio(t->all_model, t->all_measured), r, GOAL_RATIO,
            r > 0 && r <= GOAL_RATIO ? "met" : "not met");
}

static void put_line(FILE *f, cJSON *o) {
    char *text = cJSON_PrintUnformatted(o);
    fprintf(f, "%s\n", text);
    free(text);
    cJSON_Delete(o);
}

/* RXC_PROFILE_JSON=FILE: a "profile" line, one "entry" line per row (in
 * the table's order), a "totals" line. */
static void write_json(const CudaProfile *prof, const ProfileRow *rows, const ProfileTotals *t, bool tf32) {
    const char *path = getenv("RXC_PROFILE_JSON");
    if (!path || !*path) return;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "rxc: RXC_PROFILE_JSON: cannot write %s\n", path);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "profile");
    cJSON_AddStringToObject(o, "device", prof->device);
    cJSON_AddStringToObject(o, "gpu", prof->gpu->name);
    cJSON_AddStringToObject(o, "gpu_note", prof->gpu_note);
    cJSON_AddNumberToObject(o, "batch", prof->p->batch);
    cJSON_AddBoolToObject(o, "tf32", tf32);
    cJSON_AddBoolToObject(o, "graphs", false);
    for (int q = 0; q < N_TIMED; q++) {
        char key[32];
        snprintf(key, sizeof key, "runs_%s", gpu_phase_key(timed_phases[q]));
        cJSON_AddNumberToObject(o, key, prof->runs[timed_phases[q]]);
    }
    put_line(f, o);
    for (int i = 0; i < t->entries; i++) {
        const ProfileRow *r = &rows[i];
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "entry");
        cJSON_AddStringToObject(o, "phase", gpu_phase_key(r->phase));
        cJSON_AddNumberToObject(o, "index", r->index);
        cJSON_AddStringToObject(o, "kind", gpu_step_kind(r->step));
        cJSON_AddStringToObject(o, "name", r->name);
        cJSON_AddStringToObject(o, "note", r->step->note ? r->step->note : "");
        cJSON_AddNumberToObject(o, "launches", r->launches);
        cJSON_AddNumberToObject(o, "measured_s", r->measured);
        cJSON_AddNumberToObject(o, "model_s", r->model);
        cJSON_AddNumberToObject(o, "efficiency", ratio(r->model, r->measured));
        cJSON_AddNumberToObject(o, "lost_s", r->measured - r->model);
        put_line(f, o);
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "totals");
    cJSON_AddNumberToObject(o, "entries", t->entries);
    cJSON_AddNumberToObject(o, "measured_s", t->all_measured);
    cJSON_AddNumberToObject(o, "model_s", t->all_model);
    cJSON_AddNumberToObject(o, "measured_over_model", ratio(t->all_measured, t->all_model));
    cJSON_AddBoolToObject(o, "within_goal", ratio(t->all_measured, t->all_model) <= GOAL_RATIO && t->all_model > 0);
    put_line(f, o);
    fclose(f);
}

static void report(CudaProfile *prof, bool tf32) {
    ProfileTotals t;
    ProfileRow *rows = report_rows(prof, tf32, &t);
    print_text(prof, rows, &t);
    write_json(prof, rows, &t, tf32);
    for (int i = 0; i < t.entries; i++) free(rows[i].name);
    free(rows);
    prof->reported = true;
}

int cuda_profile_collect(CudaProfile *prof, Phase ph, bool tf32, Error *err) {
    const CudaApi *api = prof->api;
    int n = prof->p->n_steps[ph];
    CUresult r = api->cuEventSynchronize(prof->events[ph][n]);
    if (r != 0) return cuda_error_set(err, api, r, "RXC_PROFILE: cuEventSynchronize");
    for (int i = 0; i < n; i++) {
        float ms = 0;
        r = api->cuEventElapsedTime(&ms, prof->events[ph][i], prof->events[ph][i + 1]);
        if (r != 0) return cuda_error_set(err, api, r, "RXC_PROFILE: cuEventElapsedTime (%s step %d)", gpu_phase_key(ph), i);
        prof->seconds[ph][i] += ms * 1e-3;
    }
    prof->runs[ph]++;
    bool all = true;
    for (int q = 0; q < N_TIMED; q++) all &= prof->runs[timed_phases[q]] >= prof->steps || !prof->p->n_steps[timed_phases[q]];
    if (all) report(prof, tf32);
    return 0;
}

void cuda_profile_close(CudaProfile *prof, bool tf32) {
    if (!prof) return;
    if (!prof->reported) {
        bool any = false;
        for (int q = 0; q < N_TIMED; q++) any |= prof->runs[timed_phases[q]] > 0;
        if (any) {
            fprintf(stderr, "rxc profile: the run ended before %d timed runs of every phase: the report covers those timed\n",
                    prof->steps);
            report(prof, tf32);
        } else {
            fprintf(stderr, "rxc profile: nothing timed: the first run of each phase is not timed, so RXC_PROFILE "
                            "needs at least 2 training steps\n");
        }
    }
    for (int ph = 0; ph < PHASE_COUNT; ph++) {
        for (int b = 0; prof->events[ph] && b <= prof->p->n_steps[ph]; b++)
            if (prof->events[ph][b]) prof->api->cuEventDestroy(prof->events[ph][b]);
        free(prof->events[ph]);
        free(prof->seconds[ph]);
    }
    free(prof);
}
