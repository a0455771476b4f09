/*
 * width_search_test.c — compiler/width_search.c on its own, against
 * independent computations: closed-form parameter and MAC counts of
 * ResNeXt-50 (the seed's layout and torchvision's, written here from the
 * architectures, not from rxc), an exhaustive search over every width
 * 1..WIDTH_SEARCH_MAX, and the widths of the ResNeXt paper's Table 2.
 * Prints one PASS/FAIL line per case.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "width_search.h"

static void report(const char *name, bool ok, const char *why) { harness_check(name, ok, "%s", why); }

/* ---- independent counts -------------------------------------------------------- */

typedef struct Counts {
    int64_t params, macs;
} Counts;

static void conv(Counts *n, int64_t cin, int64_t cout, int k, int64_t h_out, int groups) {
    int64_t p = cout * (cin / groups) * k * k;
    n->params += p;
    n->macs += p * h_out * h_out;
}

static void bn(Counts *n, int64_t ch) { n->params += 2 * ch; }

/* ResNeXt-50 (blocks 3, 4, 6, 3) at 224x224. seed: no max-pool, stride 2 on
 * the grouped 3x3 of every stage's first block; torchvision: a max-pool
 * after the stem, stride 2 on the first block's 3x3 from stage 2 on. */
static Counts resnext50(bool torchvision, int c, int d, int classes) {
    Counts n = {0, 0};
    int64_t h = 112;
    conv(&n, 3, 64, 7, h, 1);
    bn(&n, 64);
    if (torchvision) h = 56;
    int64_t cin = 64;
    static const int blocks[4] = {3, 4, 6, 3};
    for (int s = 0; s < 4; s++) {
        int64_t out = 256 << s, w = (int64_t)c * d << s;
        for (int i = 0; i < blocks[s]; i++) {
            int64_t h_in = h;
            if (i == 0 && (!torchvision || s > 0)) h /= 2;
            conv(&n, cin, w, 1, h_in, 1);
            bn(&n, w);
            conv(&n, w, w, 3, h, c);
            bn(&n, w);
            conv(&n, w, out, 1, h, 1);
            bn(&n, out);
            if (i == 0) {
                conv(&n, cin, out, 1, h, 1);
                bn(&n, out);
            }
            cin = out;
        }
    }
    n.params += 2048 * (int64_t)classes + classes;
    n.macs += 2048 * (int64_t)classes;
    return n;
}

/* The counter the search calls: a layout and a cardinality, with a log of
 * the widths asked for. */
typedef struct Counter {
    bool torchvision;
    int c, classes;
    int min_width;           /* widths below fail, as if the model could not be made */
    bool always_fail;
    int asked[256], n_asked;
} Counter;

static int count(void *ctx, int d, int64_t *params, int64_t *macs) {
    Counter *k = ctx;
    if (k->n_asked < 256) k->asked[k->n_asked] = d;
    k->n_asked++;
    if (k->always_fail || d < k->min_width) return -1;
    Counts n = resnext50(k->torchvision, k->c, d, k->classes);
    *params = n.params;
    *macs = n.macs;
    return 0;
}

/* Every width, the smallest of the lowest cost: what the search must find. */
static int exhaustive(Counter *k, int64_t p0, int64_t m0) {
    int best = -1;
    double best_cost = INFINITY;
    for (int d = 1; d <= WIDTH_SEARCH_MAX; d++) {
        int64_t p, m;
        if (count(k, d, &p, &m) != 0) continue;
        double cost = width_cost(p, m, p0, m0);
        if (cost < best_cost) {
            best_cost = cost;
            best = d;
        }
    }
    return best;
}

static bool asked_twice(const Counter *k) {
    int n = k->n_asked < 256 ? k->n_asked : 256;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (k->asked[i] == k->asked[j]) return true;
    return false;
}

/* ---- cases ---------------------------------------------------------------------- */

static void check_layout(const char *name, bool torchvision, int classes, int min_width) {
    static const int cards[] = {1, 2, 3, 4, 8, 16, 32, 64};
    const int base_c = 32, base_d = 4;
    Counts base = resnext50(torchvision, base_c, base_d, classes);
    char why[2048] = "";
    size_t at = 0;
    bool ok = true, few = true;
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        int c = cards[i];
        Counter k = {.torchvision = torchvision, .c = c, .classes = classes, .min_width = min_width};
        int got = width_search(count, &k, base.params, base.macs, width_hint(base_c, base_d, c));
        int asked = k.n_asked;
        bool twice = asked_twice(&k);
        k.n_asked = 0;
        int want = exhaustive(&k, base.params, base.macs);
        if (got != want) {
            ok = false;
            at += (size_t)snprintf(why + at, at < sizeof why ? sizeof why - at : 0, "C=%d: searched %d, exhaustive %d; ",
                                   c, got, want);
        }
        if (asked >= 40 || twice) {
            few = false;
            at += (size_t)snprintf(why + at, at < sizeof why ? sizeof why - at : 0, "C=%d: %d counts%s; ", c, asked,
                                   twice ? ", a width counted twice" : "");
        }
    }
    char full[128];
    snprintf(full, sizeof full, "%s_matches_exhaustive_search", name);
    report(full, ok, why);
    snprintf(full, sizeof full, "%s_fewer_than_40_counts_none_repeated", name);
    report(full, few, why);
}

static void check_table2(void) {
    /* The paper's Table 2 (ResNet-50 budget, torchvision's layout, 1000 classes). */
    static const int cards[] = {1, 2, 4, 8, 32}, widths[] = {64, 40, 24, 14, 4};
    Counts base = resnext50(true, 32, 4, 1000);
    char why[512] = "";
    bool ok = true;
    for (int i = 0; i < 5; i++) {
        Counter k = {.torchvision = true, .c = cards[i], .classes = 1000};
        int got = width_search(count, &k, base.params, base.macs, width_hint(32, 4, cards[i]));
        if (got != widths[i]) {
            ok = false;
            size_t n = strlen(why);
            snprintf(why + n, sizeof why - n, "%dx%dd expected, got %dx%dd; ", cards[i], widths[i], cards[i], got);
        }
    }
    report("table2_widths", ok, why);
}

static void check_edges(void) {
    Counts base = resnext50(false, 32, 4, 10);
    Counter none = {.c = 4, .classes = 10, .always_fail = true};
    int got = width_search(count, &none, base.params, base.macs, 10);
    char why[128];
    snprintf(why, sizeof why, "got %d", got);
    report("no_countable_width_gives_minus_1", got == -1, why);

    Counter same = {.c = 32, .classes = 10};
    got = width_search(count, &same, base.params, base.macs, width_hint(32, 4, 32));
    snprintf(why, sizeof why, "got %d", got);
    report("base_cardinality_gives_base_width", got == 4, why);

    /* A tiny base: the very first width is already at the base. */
    Counts tiny = resnext50(false, 64, 1, 10);
    Counter first = {.c = 64, .classes = 10};
    got = width_search(count, &first, tiny.params, tiny.macs, 7);
    snprintf(why, sizeof why, "got %d", got);
    report("width_1_at_the_base", got == 1, why);

    /* A huge base: the search stops at the largest width. */
    Counter big = {.c = 1, .classes = 10};
    got = width_search(count, &big, INT64_MAX / 4, INT64_MAX / 4, 8);
    snprintf(why, sizeof why, "got %d, %d counts", got, big.n_asked);
    report("unreachable_base_gives_largest_width", got == WIDTH_SEARCH_MAX && big.n_asked < 40, why);

    snprintf(why, sizeof why, "%d %d %d", width_hint(32, 4, 1), width_hint(32, 4, 8), width_hint(32, 4, 32));
    report("hint_keeps_c_times_d_squared", width_hint(32, 4, 1) == 23 && width_hint(32, 4, 8) == 8 &&
                                              width_hint(32, 4, 32) == 4, why);
}

int main(void) {
    check_layout("seed", false, 10, 1);
    check_layout("tv", true, 1000, 1);
    check_layout("seed_widths_below_3_fail", false, 10, 3);
    check_table2();
    check_edges();
    return harness_status();
}
