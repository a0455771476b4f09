/*
 * wmma_emu.h — nvcuda::wmma for the CPU emulator (cuda_emu.h): the fragment
 * types, fill_fragment and the warp-wide load_matrix_sync, mma_sync and
 * store_matrix_sync, m16n16k16 with bf16 (or f32) operands and f32
 * accumulators, on shared memory: what conv_cuda.c's tensor-core kernels use.
 *
 * Generated source includes it under RXC_EMU (after cuda_emu.h) in place of
 * <mma.h>. As on a GPU, the _sync operations are warp-collective: the
 * emulator waits until all 32 lanes of the warp reach one (a lane that does
 * not is a divergence error, as for a shuffle). A GPU spreads a fragment over
 * the lanes in a layout NVIDIA does not specify; here every lane keeps a
 * whole copy of an A or B tile, and owns the accumulator elements e (row-major
 * index) with e % 32 == lane: mma_sync computes and store_matrix_sync writes
 * only those. So the race checker sees each stored element written by one
 * thread, and a lane reading what another lane stored, before a barrier, is
 * a race, as it can be on hardware.
 *
 * Arithmetic: D[i][j] = C[i][j] + sum_k A[i][k] * B[k][j], each product exact
 * in f32 (bf16 x bf16 has a 16-bit significand), added to C one at a time in
 * k order, each sum rounded to nearest f32. Tensor cores add the same exact
 * products in an order and internal width NVIDIA does not document, so a
 * GPU's result can differ from this in the last bits of f32 (rounding
 * errors of the partial sums); tests compare against float64 with
 * tolerances far above that.
 *
 * Checks (errors of the launch): ldm a multiple of 16 bytes, the tile's first
 * element 32-byte aligned within its shared array (kernels declare those
 * arrays 32-byte aligned), every element in bounds, and through the shared
 * shadows initialised and race-free.
 */
#ifndef RXC_WMMA_EMU_H
#define RXC_WMMA_EMU_H

#include <type_traits>

#include "cuda_emu.h"

namespace rxc_emu {

/* A pointer into a shared array: `s_tile + offset` in generated source. */
template <typename T, int N>
struct SPtr {
    SharedArray<T, N> *a;
    long long off;
};
template <typename T, int N>
static inline SPtr<T, N> operator+(SharedArray<T, N> &a, long long off) {
    return SPtr<T, N>{&a, off};
}
template <typename T, int N>
static inline SPtr<T, N> operator+(SPtr<T, N> p, long long off) {
    return SPtr<T, N>{p.a, p.off + off};
}

static inline float widen(float v) { return v; }
static inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

/* Every lane of the warp is here (as for a shuffle), then the tile is checked. */
template <typename T, int N>
static bool wmma_enter(const char *op, const SPtr<T, N> &p, unsigned ldm) {
    yield(AT_SHUFFLE);
    if (ldm * sizeof(T) % 16) {
        error("%s: ldm %u of %s is not a multiple of 16 bytes", op, ldm, p.a->name);
        return false;
    }
    if (p.off * (long long)sizeof(T) % 32) {
        error("%s: the tile at %s[%lld] is not 32-byte aligned", op, p.a->name, p.off);
        return false;
    }
    return true;
}

static inline int wmma_lane() { return S.current->tid & 31; }

} /* namespace rxc_emu */

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

/* v: A as [m][k], B as [k][n], an accumulator as [m][n], whatever the memory layout. */
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator has the m16n16k16 shape only");
    static_assert(std::is_same<T, float>::value || std::is_same<T, __nv_bfloat16>::value,
                  "the emulator has bf16 and f32 fragments only");
    float v[256];
};

template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, float value) {
    const float v = std::is_same<T, float>::value ? value : __bfloat162float(__float2bfloat16(value));
    for (int e = 0; e < 256; e++) f.v[e] = v;
}

/* A or B: element (r, c) of the tile at p[r * ldm + c] (row_major) or p[c * ldm + r] (col_major). */
template <typename Use, typename T, typename Layout, int NS>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &f, rxc_emu::SPtr<T, NS> p, unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value, "an accumulator load names its layout_t");
    if (!rxc_emu::wmma_enter("load_matrix_sync", p, ldm)) return;
    const bool col = std::is_same<Layout, col_major>::value;
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            long long at = p.off + (col ? (long long)c * ldm + r : (long long)r * ldm + c);
            f.v[r * 16 + c] = rxc_emu::widen((T)(*p.a)[at]);
        }
}

/* An accumulator: this lane's elements. */
template <int NS>
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, rxc_emu::SPtr<float, NS> p, unsigned ldm,
                             layout_t layout) {
    if (!rxc_emu::wmma_enter("load_matrix_sync", p, ldm)) return;
    for (int e = rxc_emu::wmma_lane(); e < 256; e += 32) {
        int r = e / 16, c = e % 16;
        f.v[e] = (*p.a)[p.off + (layout == mem_col_major ? (long long)c * ldm + r : (long long)r * ldm + c)];
    }
}

template <int NS>
inline void store_matrix_sync(rxc_emu::SPtr<float, NS> p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm,
                              layout_t layout) {
    if (!rxc_emu::wmma_enter("store_matrix_sync", p, ldm)) return;
    for (int e = rxc_emu::wmma_lane(); e < 256; e += 32) {
        int r = e / 16, c = e % 16;
        (*p.a)[p.off + (layout == mem_col_major ? (long long)c * ldm + r : (long long)r * ldm + c)] = f.v[e];
    }
}

/* d = a * b + c, this lane's elements, k in order (d and c may be one fragment). */
template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, T, LB> &b, const fragment<accumulator, 16, 16, 16, float> &c) {
    rxc_emu::yield(rxc_emu::AT_SHUFFLE);
    for (int e = rxc_emu::wmma_lane(); e < 256; e += 32) {
        const int i = e / 16, j = e % 16;
        float s = c.v[e];
        for (int k = 0; k < 16; k++) s += a.v[i * 16 + k] * b.v[k * 16 + j];
        d.v[e] = s;
    }
}

} /* namespace wmma */
} /* namespace nvcuda */

#endif
