/*
 * bench/core_latency.c — round trip of one cache line between two CPUs.
 *
 * bench/cpu_step prints it around every round: on a VM the host may place
 * the vCPUs on one die (tens of ns) or on two (hundreds), and a step that
 * hands tensors from one core to the other is slower in the second case.
 *
 *   core_latency [CPU_A CPU_B]      (default 0 1) -> "round trip 56 ns"
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 200000 };

static _Alignas(64) atomic_int flag;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* answers every round even where it could not be pinned, so main never waits forever */
static void *responder(void *arg) {
    void *failed = pin(*(int *)arg) != 0 ? (void *)1 : NULL;
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 1) {}
        atomic_store_explicit(&flag, 0, memory_order_release);
    }
    return failed;
}

int main(int argc, char **argv) {
    int a = argc > 2 ? atoi(argv[1]) : 0, b = argc > 2 ? atoi(argv[2]) : 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (a == b || a < 0 || b < 0 || a >= cpus || b >= cpus) {
        /* two spinners on one CPU would take a scheduler slice per round */
        fprintf(stderr, "core_latency: needs two distinct CPUs below %ld, got %d and %d\n", cpus, a, b);
        return 1;
    }
    if (pin(a) != 0) {
        fprintf(stderr, "core_latency: cannot run on CPU %d\n", a);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, responder, &b) != 0) return 1;
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&flag, 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 0) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &e);
    void *failed;
    pthread_join(t, &failed);
    if (failed) {
        fprintf(stderr, "core_latency: cannot run on CPU %d\n", b);
        return 1;
    }
    double ns = ((double)(e.tv_sec - s.tv_sec) * 1e9 + (double)(e.tv_nsec - s.tv_nsec)) / ROUNDS;
    printf("round trip %.0f ns\n", ns);
    return 0;
}
