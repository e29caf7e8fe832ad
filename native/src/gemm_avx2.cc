// SGEMM for AVX2 + FMA (chosen at run time when the CPU has them).
#include "gemm.h"
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define GEMM_NS gemm_avx2
#define GEMM_VBYTES 32
#include "gemm_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
