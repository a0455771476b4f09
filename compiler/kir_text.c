/*
 * kir_text.c — the spelling of kernel-IR values shared by both renderers
 * (kir_text.h).
 */
#include "kir_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kir.h"

void kir_var_name(char *buf, size_t n, int var) {
    if (var == KV_OUTER) snprintf(buf, n, "i");
    else if (var == KV_INNER) snprintf(buf, n, "j");
    else snprintf(buf, n, "v%d", var);
}

void kir_int_literal(char *buf, size_t n, int64_t v) {
    const char *open = v < 0 ? "(" : "", *close = v < 0 ? ")" : "";
    if (v >= -2147483647LL && v <= 2147483647LL) snprintf(buf, n, "%s%lld%s", open, (long long)v, close);
    else if (v == INT64_MIN) snprintf(buf, n, "(-9223372036854775807LL - 1)");
    else snprintf(buf, n, "%s%lldLL%s", open, (long long)v, close);
}

void kir_float_literal(char *buf, size_t n, double v, const KirNonFinite *spell) {
    float f = (float)v;
    if (isnan(f)) snprintf(buf, n, "%s", spell->nan);
    else if (isinf(f)) snprintf(buf, n, "%s", f > 0 ? spell->inf : spell->neg_inf);
    else {
        char tmp[48];
        snprintf(tmp, sizeof tmp, "%.9g", (double)f);
        bool has_point = strpbrk(tmp, ".e") != NULL;
        snprintf(buf, n, "%s%s%sf%s", f < 0 ? "(" : "", tmp, has_point ? "" : ".0", f < 0 ? ")" : "");
    }
}
