// Fused row-wise pieces of the Llama block for the training step, forward and gradient, each one
// pass over memory instead of tfjs's chain of element-wise kernels: RMSNorm over the last axis
// and SwiGLU (silu(a)·b), and the next-token loss of logit rows. Portable vector code (16-byte vectors: SSE2 / NEON), threaded over rows.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "parts.h"

namespace {

constexpr int V = 4;
typedef float vf __attribute__((vector_size(16)));
typedef int vi __attribute__((vector_size(16)));

inline vf ld(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
inline void st(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return (vf){} + x; }
inline float hsum(vf v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// e^x as in attention_kernel.inc (Cephes expf polynomial, ≈ 1 ulp; x clamped to [−87.3, 88.7])
inline vf vexp(vf x) {
  x = x < splat(88.7f) ? x : splat(88.7f);
  x = x > splat(-87.3f) ? x : splat(-87.3f);
  const vf magic = splat(12582912.f);
  vf n = (x * splat(1.44269504088896341f) + magic) - magic;
  vf r = x - n * splat(0.693359375f);
  r = r - n * splat(-2.12194440e-4f);
  vf p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.f);
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)e;
}
inline float sexp(float x) { return vexp(splat(x))[0]; }
inline vf vsigmoid(vf a) { return splat(1.f) / (splat(1.f) + vexp(-a)); }

// Split [0, n) into about 2 chunks per thread of at least `minChunk` items; run f(begin, end).
template <class F>
void chunked(int64_t n, int threads, int64_t minChunk, F f) {
  int chunks = (int)std::min<int64_t>((int64_t)2 * threads, std::max<int64_t>(1, n / minChunk));
  if (threads <= 1) chunks = 1;
  const int64_t per = (n + chunks - 1) / chunks;
  std::function<void(int)> job = [&](int c) {
    const int64_t b = c * per, e = std::min<int64_t>(n, b + per);
    if (b < e) f(b, e);
  };
  fedtune_parallel_for(chunks, chunks == 1 ? 1 : threads, job);
}

// 1 / √(mean(x²) + eps) of one row
inline float rowScale(const float* x, int dim, float eps) {
  vf acc = splat(0.f);
  int c = 0;
  for (; c + V <= dim; c += V) { const vf v = ld(x + c); acc += v * v; }
  float s = hsum(acc);
  for (; c < dim; c++) s += x[c] * x[c];
  return 1.f / std::sqrt(s / dim + eps);
}

napi_value fail(napi_env env, const std::string& msg, bool type = false) {
  if (type) napi_throw_type_error(env, nullptr, msg.c_str());
  else napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}

// Float32Array arguments argv[0..count) (argv[i] may be null when `optional` has bit i set)
bool arrays(napi_env env, napi_value* argv, int count, unsigned optional, float** out, size_t* len, const char* fn) {
  for (int i = 0; i < count; i++) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    if ((optional >> i) & 1 && t == napi_null) { out[i] = nullptr; len[i] = 0; continue; }
    if (!fedtune_f32(env, argv[i], &out[i], &len[i])) {
      fail(env, std::string(fn) + ": every array argument must be a Float32Array", true);
      return false;
    }
  }
  return true;
}

bool ints(napi_env env, napi_value* argv, int count, int64_t* out, const char* fn) {
  for (int i = 0; i < count; i++) {
    if (napi_get_value_int64(env, argv[i], &out[i]) != napi_ok || out[i] < 0 || out[i] > 0x7fffffff) {
      fail(env, std::string(fn) + ": sizes and threads must be non-negative 32-bit integers");
      return false;
    }
  }
  return true;
}

// rmsNormForward(x, w, y, rows, dim, eps, threads): y = x / √(mean(x²) + eps) · w per row
napi_value RmsForward(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 7) return fail(env, "rmsNormForward: expected 7 arguments");
  float* a[3];
  size_t len[3];
  int64_t n[2], th;
  double eps;
  if (!arrays(env, argv, 3, 0, a, len, "rmsNormForward") || !ints(env, argv + 3, 2, n, "rmsNormForward") || !ints(env, argv + 6, 1, &th, "rmsNormForward")) return nullptr;
  if (napi_get_value_double(env, argv[5], &eps) != napi_ok || !(eps >= 0)) return fail(env, "rmsNormForward: eps must be a number ≥ 0");
  const int64_t rows = n[0], dim = n[1];
  if (dim == 0 || len[0] < (size_t)(rows * dim) || len[2] < (size_t)(rows * dim) || len[1] < (size_t)dim) return fail(env, "rmsNormForward: an array is shorter than rows and dim need");
  const float *x = a[0], *w = a[1];
  float* y = a[2];
  chunked(rows, (int)th, std::max<int64_t>(1, 16384 / dim), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* xr = x + i * dim;
      float* yr = y + i * dim;
      const float r = rowScale(xr, (int)dim, (float)eps);
      for (int64_t c = 0; c < dim; c++) yr[c] = xr[c] * r * w[c];
    }
  });
  return nullptr;
}

// rmsNormBackward(x, w, dy, dx, dw | null, rows, dim, eps, threads):
// dx = r·g − x·r³·mean(x·g) with g = dy·w; dw = Σ_rows dy·x·r (when dw is given)
napi_value RmsBackward(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 9) return fail(env, "rmsNormBackward: expected 9 arguments");
  float* a[5];
  size_t len[5];
  int64_t n[2], th;
  double eps;
  if (!arrays(env, argv, 5, 1u << 4, a, len, "rmsNormBackward") || !ints(env, argv + 5, 2, n, "rmsNormBackward") || !ints(env, argv + 8, 1, &th, "rmsNormBackward")) return nullptr;
  if (napi_get_value_double(env, argv[7], &eps) != napi_ok || !(eps >= 0)) return fail(env, "rmsNormBackward: eps must be a number ≥ 0");
  const int64_t rows = n[0], dim = n[1], total = rows * dim;
  if (dim == 0 || len[0] < (size_t)total || len[2] < (size_t)total || len[3] < (size_t)total || len[1] < (size_t)dim || (a[4] && len[4] < (size_t)dim))
    return fail(env, "rmsNormBackward: an array is shorter than rows and dim need");
  const float *x = a[0], *w = a[1], *dy = a[2];
  float *dx = a[3], *dw = a[4];
  chunked(rows, (int)th, std::max<int64_t>(1, 16384 / dim), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* xr = x + i * dim;
      const float* dyr = dy + i * dim;
      float* dxr = dx + i * dim;
      const float r = rowScale(xr, (int)dim, (float)eps);
      float dot = 0.f;
      for (int64_t c = 0; c < dim; c++) dot += xr[c] * dyr[c] * w[c];
      const float k = r * r * r * (dot / dim);
      for (int64_t c = 0; c < dim; c++) dxr[c] = r * dyr[c] * w[c] - xr[c] * k;
    }
  });
  if (dw) {
    // column sums in row order, one thread (a trainable norm weight is rare)
    std::memset(dw, 0, sizeof(float) * dim);
    for (int64_t i = 0; i < rows; i++) {
      const float* xr = x + i * dim;
      const float* dyr = dy + i * dim;
      const float r = rowScale(xr, (int)dim, (float)eps);
      for (int64_t c = 0; c < dim; c++) dw[c] += dyr[c] * xr[c] * r;
    }
  }
  return nullptr;
}

// swigluForward(a, b, y, n, threads): y = a·σ(a)·b
napi_value SwigluForward(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 5) return fail(env, "swigluForward: expected 5 arguments");
  float* p[3];
  size_t len[3];
  int64_t n[2];
  if (!arrays(env, argv, 3, 0, p, len, "swigluForward") || !ints(env, argv + 3, 2, n, "swigluForward")) return nullptr;
  if (len[0] < (size_t)n[0] || len[1] < (size_t)n[0] || len[2] < (size_t)n[0]) return fail(env, "swigluForward: an array is shorter than n");
  const float *a = p[0], *b = p[1];
  float* y = p[2];
  chunked(n[0] / V, (int)n[1], 8192, [&](int64_t c0, int64_t c1) {
    for (int64_t i = c0 * V; i < c1 * V; i += V) { const vf x = ld(a + i); st(y + i, x * vsigmoid(x) * ld(b + i)); }
  });
  for (int64_t i = n[0] / V * V; i < n[0]; i++) y[i] = a[i] / (1.f + sexp(-a[i])) * b[i];
  return nullptr;
}

// swigluBackward(a, b, dy, da, db, n, threads): s = σ(a); da = dy·b·s·(1 + a·(1 − s)); db = dy·a·s
napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 7) return fail(env, "swigluBackward: expected 7 arguments");
  float* p[5];
  size_t len[5];
  int64_t n[2];
  if (!arrays(env, argv, 5, 0, p, len, "swigluBackward") || !ints(env, argv + 5, 2, n, "swigluBackward")) return nullptr;
  for (int i = 0; i < 5; i++) if (len[i] < (size_t)n[0]) return fail(env, "swigluBackward: an array is shorter than n");
  const float *a = p[0], *b = p[1], *dy = p[2];
  float *da = p[3], *db = p[4];
  chunked(n[0] / V, (int)n[1], 8192, [&](int64_t c0, int64_t c1) {
    for (int64_t i = c0 * V; i < c1 * V; i += V) {
      const vf x = ld(a + i), g = ld(dy + i), s = vsigmoid(x);
      st(da + i, g * ld(b + i) * (s * (splat(1.f) + x * (splat(1.f) - s))));
      st(db + i, g * (x * s));
    }
  });
  for (int64_t i = n[0] / V * V; i < n[0]; i++) {
    const float s = 1.f / (1.f + sexp(-a[i]));
    da[i] = dy[i] * b[i] * (s * (1.f + a[i] * (1.f - s)));
    db[i] = dy[i] * (a[i] * s);
  }
  return nullptr;
}

bool int32s(napi_env env, napi_value v, const int32_t** out, size_t* len) {
  void* p = nullptr;
  if (!fedtune_typed_array(env, v, napi_int32_array, &p, len)) return false;
  *out = static_cast<const int32_t*>(p);
  return true;
}

// max and log-sum-exp of one row of n logits
inline float rowLse(const float* x, int64_t n) {
  vf mv = splat(-INFINITY);
  int64_t c = 0;
  for (; c + V <= n; c += V) { const vf v = ld(x + c); mv = v > mv ? v : mv; }
  float m = std::max(std::max(mv[0], mv[1]), std::max(mv[2], mv[3]));
  for (; c < n; c++) m = std::max(m, x[c]);
  vf acc = splat(0.f);
  for (c = 0; c + V <= n; c += V) acc += vexp(ld(x + c) - splat(m));
  float s = hsum(acc);
  for (; c < n; c++) s += sexp(x[c] - m);
  return m + std::log(s);
}

// nllForward(logits, targets, nll, lse, rows, vocab, threads): per row, lse = log Σ exp(logits) and
// nll = lse − logits[target]
napi_value NllForward(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 7) return fail(env, "nllForward: expected 7 arguments");
  float* a[4];
  size_t len[4];
  const int32_t* tg;
  size_t tl;
  int64_t n[3];
  if (!arrays(env, argv, 1, 0, a, len, "nllForward") || !arrays(env, argv + 2, 2, 0, a + 2, len + 2, "nllForward") || !ints(env, argv + 4, 3, n, "nllForward")) return nullptr;
  if (!int32s(env, argv[1], &tg, &tl)) return fail(env, "nllForward: targets must be an Int32Array", true);
  const int64_t rows = n[0], vocab = n[1];
  if (vocab == 0 || len[0] < (size_t)(rows * vocab) || tl < (size_t)rows || len[2] < (size_t)rows || len[3] < (size_t)rows) return fail(env, "nllForward: an array is shorter than rows and vocab need");
  for (int64_t i = 0; i < rows; i++) if (tg[i] < 0 || tg[i] >= vocab) return fail(env, "nllForward: a target is outside the vocabulary");
  const float* x = a[0];
  float *nll = a[2], *lse = a[3];
  chunked(rows, (int)n[2], std::max<int64_t>(1, 32768 / vocab), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      lse[i] = rowLse(x + i * vocab, vocab);
      nll[i] = lse[i] - x[i * vocab + tg[i]];
    }
  });
  return nullptr;
}

// nllBackward(logits, lse, targets, dnll, dlogits, rows, vocab, threads):
// dlogits = dnll · (exp(logits − lse) − onehot(target)) per row
napi_value NllBackward(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 8) return fail(env, "nllBackward: expected 8 arguments");
  float* a[5];
  size_t len[5];
  const int32_t* tg;
  size_t tl;
  int64_t n[3];
  if (!arrays(env, argv, 2, 0, a, len, "nllBackward") || !arrays(env, argv + 3, 2, 0, a + 3, len + 3, "nllBackward") || !ints(env, argv + 5, 3, n, "nllBackward")) return nullptr;
  if (!int32s(env, argv[2], &tg, &tl)) return fail(env, "nllBackward: targets must be an Int32Array", true);
  const int64_t rows = n[0], vocab = n[1];
  if (vocab == 0 || len[0] < (size_t)(rows * vocab) || len[4] < (size_t)(rows * vocab) || tl < (size_t)rows || len[1] < (size_t)rows || len[3] < (size_t)rows) return fail(env, "nllBackward: an array is shorter than rows and vocab need");
  for (int64_t i = 0; i < rows; i++) if (tg[i] < 0 || tg[i] >= vocab) return fail(env, "nllBackward: a target is outside the vocabulary");
  const float *x = a[0], *lse = a[1], *dnll = a[3];
  float* dx = a[4];
  chunked(rows, (int)n[2], std::max<int64_t>(1, 32768 / vocab), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      const float* xr = x + i * vocab;
      float* dr = dx + i * vocab;
      const vf l = splat(lse[i]), g = splat(dnll[i]);
      int64_t c = 0;
      for (; c + V <= vocab; c += V) st(dr + c, g * vexp(ld(xr + c) - l));
      for (; c < vocab; c++) dr[c] = dnll[i] * sexp(xr[c] - lse[i]);
      dr[tg[i]] -= dnll[i];
    }
  });
  return nullptr;
}

}  // namespace

void fedtune_rowwise_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"rmsNormForward", nullptr, RmsForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsNormBackward", nullptr, RmsBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluForward", nullptr, SwigluForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluBackward", nullptr, SwigluBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"nllForward", nullptr, NllForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"nllBackward", nullptr, NllBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 6, props);
}
