// Portable SGEMM: 16-byte vectors (SSE2 on x86-64, NEON on arm64).
#include "gemm.h"
#define GEMM_NS gemm_generic
#define GEMM_VBYTES 16
#include "gemm_kernel.inc"
