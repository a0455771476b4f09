/*
 * width_search.h — the width rule of `rxc ablate --keep complexity`: for a
 * cardinality C, the bottleneck width d (of one group) whose parameter and
 * multiply-accumulate counts are closest to a base model's. This is the
 * rule of the ResNeXt paper's Table 2 (ResNet-50 = 1x64d, 2x40d, 4x24d,
 * 8x14d, 32x4d).
 *
 * The search is pure: the counts of a width come from the caller's
 * WidthCounter (rxc ablate elaborates the model with that width and counts
 * its graph, so the rule holds for any block a file writes). Both counts
 * grow with d, so doubling and then bisection find where their summed
 * relative excess over the base crosses zero; the widths around the
 * crossing are then compared by width_cost. Fewer than 40 counts are asked
 * for, each at most once.
 */
#ifndef RXC_WIDTH_SEARCH_H
#define RXC_WIDTH_SEARCH_H

#include <stdint.h>

/* Widths are searched in 1..WIDTH_SEARCH_MAX. */
#define WIDTH_SEARCH_MAX 4096

/* The counts of the network at width d: 0, or -1 when no network can be
 * made with d (such widths are never chosen). */
typedef int (*WidthCounter)(void *ctx, int d, int64_t *params, int64_t *macs);

/* Relative distance of (params, macs) to the base (p0, m0 > 0): the larger
 * of the parameter and the MAC deviation, so that neither drifts far to buy
 * the other (this reproduces Table 2 for ResNet-50 in torchvision's layout). */
double width_cost(int64_t params, int64_t macs, int64_t p0, int64_t m0);

/* Where the search starts for cardinality c, from the base's (base_c,
 * base_d): the rule of thumb C*d^2 ~ const (the grouped 3x3 dominates). */
int width_hint(int base_c, int base_d, int c);

/* The width with the smallest width_cost near the crossing (the smallest
 * such width on a tie), or -1 when no width could be counted. */
int width_search(WidthCounter count, void *ctx, int64_t p0, int64_t m0, int d_hint);

#endif
