// SGEMM for AVX-512F (chosen at run time when the CPU has it).
#include "gemm.h"
#if defined(__x86_64__) || defined(_M_X64)
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif
#define GEMM_NS gemm_avx512
#define GEMM_VBYTES 64
#ifndef GEMM_MR
#define GEMM_MR 12
#endif
#include "gemm_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
