/*
 * width_search.c — the equal-complexity width of a cardinality (see
 * width_search.h).
 */
#include "width_search.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* One counted width, remembered so that no width is counted twice. */
typedef struct Probe {
    int d;
    bool ok;
    int64_t params, macs;
} Probe;

typedef struct Search {
    WidthCounter count;
    void *ctx;
    int64_t p0, m0;
    Probe probes[64];
    int n;
} Search;

static const Probe *probe(Search *s, int d) {
    for (int i = 0; i < s->n; i++)
        if (s->probes[i].d == d) return &s->probes[i];
    /* Doubling up to WIDTH_SEARCH_MAX and bisecting take under 40 probes;
     * should a counter ever need more, the oldest entry is reused. */
    if (s->n == (int)(sizeof s->probes / sizeof s->probes[0])) {
        memmove(s->probes, s->probes + 1, sizeof s->probes - sizeof s->probes[0]);
        s->n--;
    }
    Probe *p = &s->probes[s->n++];
    p->d = d;
    p->ok = s->count(s->ctx, d, &p->params, &p->macs) == 0;
    return p;
}

double width_cost(int64_t params, int64_t macs, int64_t p0, int64_t m0) {
    return fmax(fabs((double)params / (double)p0 - 1), fabs((double)macs / (double)m0 - 1));
}

static double probe_cost(const Search *s, const Probe *p) {
    return p->ok ? width_cost(p->params, p->macs, s->p0, s->m0) : INFINITY;
}

/* At or above the base: the summed relative excess, which grows with d. */
static bool at_or_above(const Search *s, const Probe *p) {
    return p->ok && (double)p->params / (double)s->p0 + (double)p->macs / (double)s->m0 - 2 >= 0;
}

int width_hint(int base_c, int base_d, int c) {
    return (int)lround((double)base_d * sqrt((double)base_c / c));
}

int width_search(WidthCounter count, void *ctx, int64_t p0, int64_t m0, int d_hint) {
    Search s = {.count = count, .ctx = ctx, .p0 = p0, .m0 = m0};
    int lo = 1, hi = d_hint > 1 ? d_hint : 2;
    if (hi > WIDTH_SEARCH_MAX) hi = WIDTH_SEARCH_MAX;
    /* A bracket [lo, hi] with lo below the base and hi at or above it. */
    if (at_or_above(&s, probe(&s, lo))) return lo;
    while (!at_or_above(&s, probe(&s, hi)) && hi < WIDTH_SEARCH_MAX) {
        lo = hi;
        hi = hi * 2 > WIDTH_SEARCH_MAX ? WIDTH_SEARCH_MAX : hi * 2;
    }
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (at_or_above(&s, probe(&s, mid))) hi = mid;
        else lo = mid;
    }
    int best = -1;
    double best_cost = INFINITY;
    for (int d = lo - 1; d <= hi + 1; d++) {
        if (d < 1 || d > WIDTH_SEARCH_MAX) continue;
        double cost = probe_cost(&s, probe(&s, d));
        if (cost < best_cost) {
            best_cost = cost;
            best = d;
        }
    }
    return best;
}
