// FedAvg fold kernels (one per instruction set): check an update for non-finite values, and fold
// it into a float64 weighted sum. Every element is computed as sum + w·double(u), a rounded
// multiply then a rounded add (never a fused multiply-add), so the result is bit-identical to the
// scalar loop and to the wasm SIMD kernel in aggregators/fedavg.ts.
#pragma once
#include <cstddef>
#include <cstdint>

/** Index of the first non-finite value of u[0, n), or -1 when all are finite. */
typedef int64_t (*FoldCheckFn)(const float* u, size_t n);
/** sum[i] = sum[i] + w * double(u[i]) for i in [0, n). */
typedef void (*FoldAddFn)(double* sum, const float* u, size_t n, double w);
/**
 * The same for k ≤ FOLD_MAX_K updates in one pass over the sum, in order per element:
 * sum[i] = (…(sum[i] + w[0]·u[0][i]) + …) + w[k−1]·u[k−1][i] — the bits of k successive folds.
 */
typedef void (*FoldAddManyFn)(double* sum, const float* const* u, const double* w, int k, size_t n);
constexpr int FOLD_MAX_K = 4;

namespace fold_generic {
int64_t check(const float* u, size_t n);
void add(double* sum, const float* u, size_t n, double w);
void add_many(double* sum, const float* const* u, const double* w, int k, size_t n);
}  // namespace fold_generic
#if defined(__x86_64__) || defined(_M_X64)
namespace fold_avx2 {
int64_t check(const float* u, size_t n);
void add(double* sum, const float* u, size_t n, double w);
void add_many(double* sum, const float* const* u, const double* w, int k, size_t n);
}  // namespace fold_avx2
#endif
