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

enum { ROUNDS = 200000 };

static _Alignas(64) atomic_int flag;
static _Alignas(64) atomic_int ready; /* the responder: 1 pinned, -1 could not pin */

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *responder(void *arg) {
    if (pin(*(int *)arg) != 0) {
        atomic_store(&ready, -1);
        return NULL;
    }
    atomic_store(&ready, 1);
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 1) {}
        atomic_store_explicit(&flag, 0, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int a = argc > 2 ? atoi(argv[1]) : 0, b = argc > 2 ? atoi(argv[2]) : 1;
    /* Both CPUs must be ours: two spinners sharing one CPU would take a
     * scheduler slice per round (minutes in all). */
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || a == b || a < 0 || b < 0 || a >= CPU_SETSIZE ||
        b >= CPU_SETSIZE || !CPU_ISSET(a, &allowed) || !CPU_ISSET(b, &allowed)) {
        fprintf(stderr, "core_latency: needs two distinct CPUs this process may run on, got %d and %d\n", a, b);
        return 1;
    }
    if (pin(a) != 0) {
        fprintf(stderr, "core_latency: cannot run on CPU %d\n", a);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, responder, &b) != 0) return 1;
    while (atomic_load(&ready) == 0) {}
    if (atomic_load(&ready) < 0) {
        pthread_join(t, NULL);
        fprintf(stderr, "core_latency: cannot run on CPU %d\n", b);
        return 1;
    }
    struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&flag, 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 0) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &e);
    pthread_join(t, NULL);
    double ns = ((double)(e.tv_sec - s.tv_sec) * 1e9 + (double)(e.tv_nsec - s.tv_nsec)) / ROUNDS;
    printf("round trip %.0f ns\n", ns);
    return 0;
}
