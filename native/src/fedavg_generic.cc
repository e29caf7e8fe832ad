// Portable FedAvg fold: plain loops the compiler vectorises (SSE2 on x86-64, NEON on arm64).
// Contraction into fused multiply-adds is switched off here: NEON has them, and one would change
// the rounding of sum + w·u (see fedavg.h).
#pragma STDC FP_CONTRACT OFF
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <cstring>

#include "fedavg.h"

namespace fold_generic {

int64_t check(const float* u, size_t n) {
  // a float is non-finite iff its exponent bits are all ones; test 256 at a time, then find the first
  constexpr size_t B = 256;
  for (size_t i0 = 0; i0 < n; i0 += B) {
    const size_t m = n - i0 < B ? n - i0 : B;
    uint32_t bad = 0;
    for (size_t i = 0; i < m; i++) {
      uint32_t bits;
      std::memcpy(&bits, u + i0 + i, 4);
      bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) {
      for (size_t i = 0; i < m; i++) {
        uint32_t bits;
        std::memcpy(&bits, u + i0 + i, 4);
        if ((bits & 0x7f800000u) == 0x7f800000u) return (int64_t)(i0 + i);
      }
    }
  }
  return -1;
}

void add(double* sum, const float* u, size_t n, double w) {
  for (size_t i = 0; i < n; i++) {
    const double p = w * (double)u[i];
    sum[i] = sum[i] + p;
  }
}

void add_many(double* sum, const float* const* u, const double* w, int k, size_t n) {
  for (size_t i = 0; i < n; i++) {
    double s = sum[i];
    for (int j = 0; j < k; j++) {
      const double p = w[j] * (double)u[j][i];
      s = s + p;
    }
    sum[i] = s;
  }
}

}  // namespace fold_generic
