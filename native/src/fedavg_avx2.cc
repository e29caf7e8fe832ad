// FedAvg fold for AVX2 (chosen at run time when the CPU has it). The target is "avx2" without
// "fma", so the compiler cannot fuse the multiply and the add (see fedavg.h).
#include "fedavg.h"
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#pragma GCC optimize("fp-contract=off")
#endif
#include <immintrin.h>

namespace fold_avx2 {

int64_t check(const float* u, size_t n) {
  const __m256i expo = _mm256_set1_epi32(0x7f800000);
  constexpr size_t B = 64;  // floats per test: eight vectors OR-ed together
  size_t i0 = 0;
  for (; i0 + B <= n; i0 += B) {
    __m256i bad = _mm256_setzero_si256();
    for (size_t j = 0; j < B; j += 8) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(u + i0 + j));
      bad = _mm256_or_si256(bad, _mm256_cmpeq_epi32(_mm256_and_si256(v, expo), expo));
    }
    if (!_mm256_testz_si256(bad, bad)) return i0 + fold_generic::check(u + i0, B);
  }
  const int64_t t = fold_generic::check(u + i0, n - i0);
  return t < 0 ? -1 : (int64_t)i0 + t;
}

void add(double* sum, const float* u, size_t n, double w) {
  const __m256d wv = _mm256_set1_pd(w);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(u + i);
    const __m256 b = _mm256_loadu_ps(u + i + 8);
    const __m256d p0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), wv);
    const __m256d p1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), wv);
    const __m256d p2 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(b)), wv);
    const __m256d p3 = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(b, 1)), wv);
    _mm256_storeu_pd(sum + i, _mm256_add_pd(_mm256_loadu_pd(sum + i), p0));
    _mm256_storeu_pd(sum + i + 4, _mm256_add_pd(_mm256_loadu_pd(sum + i + 4), p1));
    _mm256_storeu_pd(sum + i + 8, _mm256_add_pd(_mm256_loadu_pd(sum + i + 8), p2));
    _mm256_storeu_pd(sum + i + 12, _mm256_add_pd(_mm256_loadu_pd(sum + i + 12), p3));
  }
  fold_generic::add(sum + i, u + i, n - i, w);
}

// k updates per load and store of the sum: with the sum in DRAM its 16 bytes of traffic per value
// are shared by k updates (4 → 12 bytes per value of update instead of 24 with the check pass).
void add_many(double* sum, const float* const* u, const double* w, int k, size_t n) {
  __m256d wv[FOLD_MAX_K];
  for (int j = 0; j < k; j++) wv[j] = _mm256_set1_pd(w[j]);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256d s0 = _mm256_loadu_pd(sum + i), s1 = _mm256_loadu_pd(sum + i + 4);
    for (int j = 0; j < k; j++) {
      const __m256 x = _mm256_loadu_ps(u[j] + i);
      s0 = _mm256_add_pd(s0, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), wv[j]));
      s1 = _mm256_add_pd(s1, _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), wv[j]));
    }
    _mm256_storeu_pd(sum + i, s0);
    _mm256_storeu_pd(sum + i + 4, s1);
  }
  const float* rest[FOLD_MAX_K];
  for (int j = 0; j < k; j++) rest[j] = u[j] + i;
  fold_generic::add_many(sum + i, rest, w, k, n - i);
}

}  // namespace fold_avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
