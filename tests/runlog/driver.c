/*
 * driver.c — drives the run-directory code (runtime/runlog.c, tfevents.c,
 * plot.c, progress.c) the way the trainer does, with known values, so that
 * tests/runlog/check.py can compare every file with an independent reading.
 *
 *   driver crc                       print crc32c("123456789") in hex
 *   driver run DIR MODEL             fresh run: 10 step scalars, 3 epochs
 *   driver resume DIR MODEL          resume after epoch 2, then epoch 3 again
 *   driver progress STEPS LOG_EVERY  progress output for one epoch on stdout
 *   driver line                      the epoch line of a known record
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "runlog.h"
#include "tfevents.h"

static EpochRecord record(int epoch, double bump) {
    EpochRecord e = {
        .epoch = epoch, .epochs = 3,
        .train_loss = 2.0 / epoch + bump, .train_acc = 0.3 * epoch,
        .val_loss = epoch == 2 ? NAN : 2.5 / epoch, .val_acc = 0.25 * epoch,
        .lr = 1e-3 / epoch, .seconds = 10.0 + epoch, .images_per_s = 100.0 * epoch,
    };
    return e;
}

int main(int argc, char **argv) {
    Error err = {0};
    if (argc >= 2 && !strcmp(argv[1], "crc")) {
        printf("%08x\n", crc32c("123456789", 9));
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "line")) {
        EpochRecord e = {.epoch = 200, .epochs = 200, .train_loss = 0.57251, .train_acc = 0.975,
                         .val_loss = 0.63364, .val_acc = 0.947515923566879, .seconds = 22.08944};
        char buf[256];
        puts(runlog_epoch_line(&e, buf, sizeof buf));
        return 0;
    }
    if (argc == 4 && (!strcmp(argv[1], "run") || !strcmp(argv[1], "resume"))) {
        int resume = !strcmp(argv[1], "resume");
        RunLog *l = runlog_open(argv[2], argv[3], "network demo { classes 10 }\n", resume ? 2 : 0, &err);
        if (!l) {
            fprintf(stderr, "runlog_open: %s\n", err.msg);
            return 1;
        }
        if (!resume)
            for (int s = 0; s < 10; s++) runlog_scalar(l, "train/loss", s, 1.0 / (s + 1));
        for (int ep = resume ? 3 : 1; ep <= 3; ep++) {
            EpochRecord e = record(ep, resume ? 0.5 : 0);
            char buf[256];
            runlog_note(l, runlog_epoch_line(&e, buf, sizeof buf));
            runlog_epoch(l, &e);
        }
        char *p = runlog_path(l, "last.ckpt");
        printf("%s\n", p);
        free(p);
        runlog_close(l);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "progress")) {
        Progress p;
        int steps = atoi(argv[2]);
        progress_begin(&p, stdout, 1, 5, steps, atoi(argv[3]));
        for (int s = 1; s <= steps; s++) progress_step(&p, s, 64, 2.0);
        progress_end(&p);
        printf("done\n");
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "open")) { /* error path: a run dir that cannot be made */
        RunLog *l = runlog_open(argv[2], NULL, NULL, 0, &err);
        if (!l) {
            printf("error: %s\n", err.msg);
            return 1;
        }
        runlog_close(l);
        return 0;
    }
    fprintf(stderr, "usage: see the header comment\n");
    return 2;
}
