/*
 * kir_analysis.h — the one analysis of the kernel IR (kir.h) that the
 * simplifier and validator in kir.c and both renderers (render_c.c,
 * render_cuda.c) share, so that they never disagree about a kernel:
 *
 *   integer ranges   an interval per node that contains every value the
 *                    node can take (one rule set for every operator), and
 *                    from it the width of each integer: 32 or 64 bits;
 *   dependencies     per node, the loop variables its value depends on (a
 *                    bitset), the latest stage whose accumulators it reads,
 *                    and whether evaluating it when it is not needed is
 *                    harmless: together they say at which loop level a node
 *                    can be computed (its hoisting level).
 *
 * Integer semantics are C's: `idiv` truncates towards zero and `mod` takes
 * the sign of its left operand (the IR's operands are >= 0, but the rules
 * stay sound without that).
 */
#ifndef RXC_KIR_ANALYSIS_H
#define RXC_KIR_ANALYSIS_H

#include <stdbool.h>
#include <stdint.h>

#include "kir.h"

/* ---- integer ranges ------------------------------------------------------- */

/* Every value lies in [lo, hi]; an unknown bound is an infinity. Bounds are
 * exact integers: one that would need more than 53 bits becomes infinite. */
typedef struct KirRange { double lo, hi; } KirRange;

/* The largest magnitude a 32-bit integer of a kernel may reach. It stays
 * 2^27 below INT32_MAX so that a renderer may step a loop counter past its
 * bound: CUDA's grid-stride loops overshoot by at most 65536 blocks x 256
 * threads = 2^24. */
#define KIR_INT32_LIMIT 2013265919.0 /* 2^31 - 1 - 2^27 */

/* The range of integer node id, from the nodes before it. A reduce variable
 * whose KE_REDUCE does not exist yet (its body is being built) is unknown. */
KirRange kir_int_range(const Kernel *k, int id);

/* Loop variable var runs over [0, extent): k->outer, k->inner, or the extent
 * of the KE_REDUCE that binds it; 0 when no reduce binds it (yet). */
int64_t kir_var_extent(const Kernel *k, int var);

bool kir_range_fits_int32(KirRange r);

/* The width of every integer of a kernel. Both renderers spell each integer
 * node, accumulator and loop counter at exactly this width, so they always
 * agree. A node is wide when its range does not fit 32 bits; the operations
 * that produce a wide node are done in 64 bits. */
typedef struct KirWidths {
    bool *node_wide;  /* per node: an integer node that needs 64 bits (loop variables: loops_wide) */
    bool *acc_wide;   /* per accumulator: an integer accumulator whose partial values need 64 bits */
    bool loops_wide;  /* some loop counter (i, j, a reduce variable) needs 64 bits */
} KirWidths;

KirWidths kir_int_widths(const Kernel *k);
void kir_int_widths_free(KirWidths *w);

/* Does all of the kernel's index arithmetic fit in 32 bits: no wide loop
 * counter, node or accumulator? */
bool kir_index_fits_int32(const Kernel *k);

/* ---- dependencies and hoisting levels -------------------------------------- */

/* A set of loop variables: words 64-bit words, bit v = variable v. */
static inline bool kir_varset_has(const uint64_t *set, int v) { return set[v / 64] >> (v % 64) & 1; }
static inline void kir_varset_add(uint64_t *set, int v) { set[v / 64] |= 1ULL << (v % 64); }
static inline void kir_varset_remove(uint64_t *set, int v) { set[v / 64] &= ~(1ULL << (v % 64)); }

typedef struct KirDeps {
    int n_vars;          /* variables the sets hold: k->n_vars plus a renderer's extra ones */
    int words;           /* 64-bit words per set */
    uint64_t *vars;      /* per node: the loop variables its value depends on */
    int *acc_stage;      /* per node: the latest stage whose accumulators it reads, -1 if none */
    bool *spec_safe;     /* per node: harmless to evaluate where its value is not needed
                          * (no load, no inner loop, no division by a non-constant) */
    bool *pinned;        /* per node: its set was given by kir_deps_pin */
} KirDeps;

/* Allocates sets for k's variables plus extra_vars more (ids k->n_vars on),
 * which a renderer that restructures loops uses for its own variables. */
void kir_deps_alloc(KirDeps *d, const Kernel *k, int extra_vars);
/* Before kir_deps_compute: node id depends on var (and on the other vars
 * pinned to it) instead of what its operands say; nodes above it inherit
 * that. render_c renames a split loop's v, v % c and v / c this way. */
void kir_deps_pin(KirDeps *d, int id, int var);
/* Fills every node's sets: a variable depends on itself, an accumulator on
 * the outer index (one value per i), a reduce on its body's variables but
 * its own, anything else on its operands' variables. */
void kir_deps_compute(KirDeps *d, const Kernel *k);
/* alloc + compute, without extra variables or pins. */
void kir_deps_init(KirDeps *d, const Kernel *k);
void kir_deps_free(KirDeps *d);

static inline const uint64_t *kir_deps_vars(const KirDeps *d, int id) {
    return d->vars + (size_t)id * (size_t)d->words;
}
static inline bool kir_deps_has(const KirDeps *d, int id, int var) {
    return kir_varset_has(kir_deps_vars(d, id), var);
}

/* The hoisting level: node id can be computed at a point where exactly the
 * loop variables in scope (a set of d->words words) are defined and the
 * accumulators of stages <= final_stage are final. */
bool kir_deps_computable(const KirDeps *d, int id, const uint64_t *scope, int final_stage);

/* ---- values ---------------------------------------------------------------- */

/* Is float node id stored into a buffer of type dt exactly its value, so that
 * a later kernel loading it reads what this one computed? Always for f32; for
 * narrower types, when the value is a load from a buffer of type dt, zero, or
 * a select between such values (a ReLU mask applied to a bf16 gradient). */
bool kir_value_exact_in(const Kernel *k, int id, KDType dt);

#endif
