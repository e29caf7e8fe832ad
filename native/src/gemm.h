// Shared declarations of the SGEMM kernels (one per instruction set) and their helpers.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

/** 64-byte aligned allocator for packed panels. */
template <class T>
struct AlignedAlloc {
  using value_type = T;
  AlignedAlloc() = default;
  template <class U> AlignedAlloc(const AlignedAlloc<U>&) {}
  T* allocate(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, n * sizeof(T) + 64) != 0) std::abort();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { free(p); }
  template <class U> bool operator==(const AlignedAlloc<U>&) const { return true; }
  template <class U> bool operator!=(const AlignedAlloc<U>&) const { return false; }
};

/** Rows [m0, m1) of C[M,N] = op(A) op(B), row-major; ta/tb transpose A ([K,M]) / B ([N,K]). */
typedef void (*GemmRowsFn)(const float*, const float*, float*, int, int, int, bool, bool, int, int);

namespace gemm_generic { void gemm_rows(const float*, const float*, float*, int, int, int, bool, bool, int, int); }
#if defined(__x86_64__) || defined(_M_X64)
namespace gemm_avx2 { void gemm_rows(const float*, const float*, float*, int, int, int, bool, bool, int, int); }
namespace gemm_avx512 { void gemm_rows(const float*, const float*, float*, int, int, int, bool, bool, int, int); }
#endif
