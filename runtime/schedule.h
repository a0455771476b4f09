/*
 * schedule.h — the learning rate of every optimizer step, and the other
 * per-step runtime scalars the compiled program reads (kir.h ScalarId).
 *
 * The schedule is a pure function of the recipe and the step number, so a
 * resumed run recomputes exactly the values an uninterrupted run would have
 * used. Semantics, in PyTorch terms (u counts epochs, or optimizer steps
 * when Recipe.sched_per_step; W = warmup_epochs in the same unit, i.e.
 * warmup_epochs * steps_per_epoch per step, or warmup_steps, which counts
 * optimizer steps and comes only with a per-step or constant schedule):
 *   u <  W  linear warmup, torch.optim.lr_scheduler.LinearLR(start_factor =
 *           warmup_start, total_iters = W): lr * (ws + (1 - ws) * u / W);
 *           from warmup_lr_init: l0 + (lr - l0) * u / W (timm's warmup);
 *           constant warmup, ConstantLR(factor = warmup_start): lr * ws
 *   u >= W  v = u - W into the main schedule (SequentialLR's hand-over), or
 *           v = u with warmup_overlaps (timm's warmup_prefix=False: the
 *           schedule spans the whole run, warmup replaces its first values):
 *     constant   lr
 *     cosine     CosineAnnealingLR's closed form
 *                eta_min + (lr - eta_min) * (1 + cos(pi * v / T)) / 2,
 *                T = t_max, or (the run's length - W) when t_max is 0
 *                (the run's length with warmup_overlaps)
 *     step       StepLR: lr * gamma^floor(v / step_size)
 *     multistep  MultiStepLR: lr * gamma^(number of milestones <= v)
 * t_max, step_size and milestones are in the scheduling unit (epochs, or
 * steps with sched_per_step).
 */
#ifndef RXC_SCHEDULE_H
#define RXC_SCHEDULE_H

#include <stdint.h>

#include "kir.h"
#include "recipe.h"

/* The learning rate for optimizer step `step` (0-based over the whole run).
 * steps_per_epoch counts optimizer steps (batches / accum_steps), >= 1. */
double schedule_lr(const Recipe *r, int64_t steps_per_epoch, int64_t step);

/* The learning rate in effect during epoch `epoch` (0-based) of a
 * per-epoch schedule, or at the epoch's first step of a per-step one. */
double schedule_epoch_lr(const Recipe *r, int64_t steps_per_epoch, int epoch);

/* Fills sc[SC_COUNT] for one forward/backward pass of micro-batch
 * `micro_step` (0-based over the run; dropout masks differ per micro-batch)
 * that belongs to optimizer step `opt_step` (1-based, the t of Adam's bias
 * correction). batch is the micro-batch size. */
void schedule_scalars(const Recipe *r, double lr, int64_t opt_step, int64_t micro_step, int batch,
                      double sc[SC_COUNT]);

#endif
