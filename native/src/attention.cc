// Fused causal attention (scores, causal mask, softmax, · V, and the gradient of all of it) for
// the training step, threaded over (batch entry, kv head) groups. The kernel body is
// attention_kernel.inc, compiled here once per instruction set and picked at run time.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "gemm.h"  // AlignedAlloc
#include "parts.h"

/** Sizes of one attention call: batch, positions, query heads, kv heads, head size, score scale. */
struct AttGeometry {
  int B, T, H, kvH, hs;
  float scale;
};

#define ATT_NS att_generic
#define ATT_VBYTES 16
#include "attention_kernel.inc"
#undef ATT_NS
#undef ATT_VBYTES

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define ATT_X86 1
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define ATT_NS att_avx2
#define ATT_VBYTES 32
#include "attention_kernel.inc"
#undef ATT_NS
#undef ATT_VBYTES
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif
#define ATT_NS att_avx512
#define ATT_VBYTES 64
#include "attention_kernel.inc"
#undef ATT_NS
#undef ATT_VBYTES
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

namespace {

struct Isa {
  const char* name;
  decltype(&att_generic::forwardGroup) fwd;
  decltype(&att_generic::backwardGroup) bwd;
};
const Isa kGeneric{"generic", att_generic::forwardGroup, att_generic::backwardGroup};
Isa g_att = kGeneric;
bool g_picked = false;

bool has(const std::string& name) {
#ifdef ATT_X86
  __builtin_cpu_init();
  if (name == "avx512") return __builtin_cpu_supports("avx512f");
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return name == "generic";
}

bool select(const std::string& name) {
  if (!has(name)) return false;
#ifdef ATT_X86
  if (name == "avx512") { g_att = {"avx512", att_avx512::forwardGroup, att_avx512::backwardGroup}; return true; }
  if (name == "avx2") { g_att = {"avx2", att_avx2::forwardGroup, att_avx2::backwardGroup}; return true; }
#endif
  g_att = kGeneric;
  return true;
}

void pick() {
  if (g_picked) return;
  g_picked = true;
  if (!select("avx512") && !select("avx2")) select("generic");
}

napi_value fail(napi_env env, const std::string& msg, bool type = false) {
  if (type) napi_throw_type_error(env, nullptr, msg.c_str());
  else napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}


// Reads the trailing (B, T, H, kvH, hs, scale, threads) arguments starting at argv[at].
bool geometry(napi_env env, napi_value* argv, int at, const char* fn, AttGeometry* g, int* threads) {
  int64_t n[5];
  for (int i = 0; i < 5; i++) {
    if (napi_get_value_int64(env, argv[at + i], &n[i]) != napi_ok || n[i] < 1 || n[i] > 0x7fffffff) {
      fail(env, std::string(fn) + ": B, T, H, kvH and hs must be positive 32-bit integers");
      return false;
    }
  }
  double scale = 0, th = 0;
  if (napi_get_value_double(env, argv[at + 5], &scale) != napi_ok || !std::isfinite(scale)) { fail(env, std::string(fn) + ": scale must be a finite number"); return false; }
  if (napi_get_value_double(env, argv[at + 6], &th) != napi_ok || !(th >= 1)) { fail(env, std::string(fn) + ": threads must be ≥ 1"); return false; }
  if (n[2] % n[3] != 0) { fail(env, std::string(fn) + ": H must be a multiple of kvH"); return false; }
  if (n[4] > 1024) { fail(env, std::string(fn) + ": hs must be at most 1024"); return false; }
  *g = {(int)n[0], (int)n[1], (int)n[2], (int)n[3], (int)n[4], (float)scale};
  *threads = (int)std::min(64.0, th);
  return true;
}

bool arrays(napi_env env, napi_value* argv, int count, float** out, size_t* len, const char* fn) {
  for (int i = 0; i < count; i++) {
    if (!fedtune_f32(env, argv[i], &out[i], &len[i])) {
      fail(env, std::string(fn) + ": every array argument must be a Float32Array", true);
      return false;
    }
  }
  return true;
}

// Rotary position embedding applied inside the op: per position t and dimension i,
// y_i = x_i·cos[t,i] + sign_i·x_{partner_i}·sin[t,i] (partner pairs the dimensions, sign is −1 on
// the first of a pair and +1 on the second); its transpose, for gradients, is
// dx_i = dy_i·cos[t,i] − sign_i·dy_{partner_i}·sin[t,i].
struct Rope {
  const float *cos = nullptr, *sin = nullptr, *sign = nullptr;
  const int32_t* partner = nullptr;
};

// Reads (cos, sin, partner, sign) from argv[at..at+4) into r; null cos means no RoPE.
bool ropeArgs(napi_env env, napi_value* argv, int at, const AttGeometry& G, const char* fn, Rope* r) {
  napi_valuetype t;
  napi_typeof(env, argv[at], &t);
  if (t == napi_null || t == napi_undefined) return true;
  float *c, *s, *g;
  size_t lc, ls, lg, lp;
  void* p = nullptr;
  if (!fedtune_f32(env, argv[at], &c, &lc) || !fedtune_f32(env, argv[at + 1], &s, &ls) || !fedtune_f32(env, argv[at + 3], &g, &lg) ||
      !fedtune_typed_array(env, argv[at + 2], napi_int32_array, &p, &lp)) {
    fail(env, std::string(fn) + ": cos, sin and sign must be Float32Arrays and partner an Int32Array", true);
    return false;
  }
  const size_t need = (size_t)G.T * G.hs;
  if (lc < need || ls < need || lg < (size_t)G.hs || lp < (size_t)G.hs) { fail(env, std::string(fn) + ": the RoPE tables are shorter than T and hs need"); return false; }
  const int32_t* partner = static_cast<const int32_t*>(p);
  for (int i = 0; i < G.hs; i++) {
    if (partner[i] < 0 || partner[i] >= G.hs || partner[partner[i]] != i) { fail(env, std::string(fn) + ": partner must pair the head's dimensions"); return false; }
  }
  *r = {c, s, g, partner};
  return true;
}

// q and k after RoPE, kept across calls of one JS thread (thread_local: worker_threads share
// the addon, and two threads resizing one buffer corrupt it — the fleet hung so): a fresh
// allocation per call would page-fault its way through ~1 MB each time
thread_local std::vector<float> g_qr, g_kr;  // per JS thread: worker_threads share the addon

// x [B, T, heads, hs] rotated into y (forward), or its transpose (inverse = true), over threads
void rotate(const float* x, float* y, int B, int T, int heads, int hs, const Rope& r, bool inverse, int threads) {
  std::function<void(int)> job = [&](int bt) {
    const int t = bt % T;
    const float* c = r.cos + (size_t)t * hs;
    const float* s = r.sin + (size_t)t * hs;
    for (int h = 0; h < heads; h++) {
      const float* xr = x + ((size_t)bt * heads + h) * hs;
      float* yr = y + ((size_t)bt * heads + h) * hs;
      float tmp[1024];
      for (int i = 0; i < hs; i++) {
        const float other = xr[r.partner[i]] * r.sign[i] * s[i];
        tmp[i] = inverse ? xr[i] * c[i] - other : xr[i] * c[i] + other;
      }
      std::memcpy(yr, tmp, sizeof(float) * hs);
    }
  };
  fedtune_parallel_for(B * T, B * T >= 64 ? threads : 1, job);
}

// q and k through RoPE into this thread's buffers; *q and *k then point at the rotated copies
void rotateQK(const float** q, const float** k, size_t nq, size_t nk, const AttGeometry& G, const Rope& rope, int threads) {
  if (g_qr.size() < nq) g_qr.resize(nq);
  if (g_kr.size() < nk) g_kr.resize(nk);
  rotate(*q, g_qr.data(), G.B, G.T, G.H, G.hs, rope, false, threads);
  rotate(*k, g_kr.data(), G.B, G.T, G.kvH, G.hs, rope, false, threads);
  *q = g_qr.data();
  *k = g_kr.data();
}

// attentionForward(q, k, v, out, lse, B, T, H, kvH, hs, scale, threads[, cos, sin, partner, sign])
// With the RoPE tables, q and k are taken before RoPE and rotated here.
napi_value Forward(napi_env env, napi_callback_info info) {
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 12 && argc != 16) return fail(env, "attentionForward: expected 12 or 16 arguments");
  float* a[5];
  size_t len[5];
  if (!arrays(env, argv, 5, a, len, "attentionForward")) return nullptr;
  AttGeometry G;
  int threads;
  if (!geometry(env, argv, 5, "attentionForward", &G, &threads)) return nullptr;
  const size_t nq = (size_t)G.B * G.T * G.H * G.hs, nk = (size_t)G.B * G.T * G.kvH * G.hs;
  if (len[0] < nq || len[3] < nq || len[1] < nk || len[2] < nk || len[4] < (size_t)G.B * G.H * G.T) return fail(env, "attentionForward: an array is shorter than B, T, H, kvH and hs need");
  Rope rope;
  if (argc == 16 && !ropeArgs(env, argv, 12, G, "attentionForward", &rope)) return nullptr;
  pick();
  const float *q = a[0], *k = a[1];
  if (rope.cos) rotateQK(&q, &k, nq, nk, G, rope, threads);
  const auto fwd = g_att.fwd;
  std::function<void(int)> job = [&](int i) { fwd(q, k, a[2], a[3], a[4], G, i / G.kvH, i % G.kvH); };
  fedtune_parallel_for(G.B * G.kvH, threads, job);
  return nullptr;
}

// attentionBackward(q, k, v, lse, dout, dq, dk, dv, B, T, H, kvH, hs, scale, threads[, cos, sin, partner, sign])
// With the RoPE tables, q and k are before RoPE and dq, dk come back through it.
napi_value Backward(napi_env env, napi_callback_info info) {
  size_t argc = 19;
  napi_value argv[19];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 15 && argc != 19) return fail(env, "attentionBackward: expected 15 or 19 arguments");
  float* a[8];
  size_t len[8];
  if (!arrays(env, argv, 8, a, len, "attentionBackward")) return nullptr;
  AttGeometry G;
  int threads;
  if (!geometry(env, argv, 8, "attentionBackward", &G, &threads)) return nullptr;
  const size_t nq = (size_t)G.B * G.T * G.H * G.hs, nk = (size_t)G.B * G.T * G.kvH * G.hs;
  if (len[0] < nq || len[4] < nq || len[5] < nq || len[1] < nk || len[2] < nk || len[6] < nk || len[7] < nk || len[3] < (size_t)G.B * G.H * G.T)
    return fail(env, "attentionBackward: an array is shorter than B, T, H, kvH and hs need");
  Rope rope;
  if (argc == 19 && !ropeArgs(env, argv, 15, G, "attentionBackward", &rope)) return nullptr;
  pick();
  const float *q = a[0], *k = a[1];
  if (rope.cos) rotateQK(&q, &k, nq, nk, G, rope, threads);
  const auto bwd = g_att.bwd;
  std::function<void(int)> job = [&](int i) { bwd(q, k, a[2], a[3], a[4], a[5], a[6], a[7], G, i / G.kvH, i % G.kvH); };
  fedtune_parallel_for(G.B * G.kvH, threads, job);
  if (rope.cos) {
    rotate(a[5], a[5], G.B, G.T, G.H, G.hs, rope, true, threads);
    rotate(a[6], a[6], G.B, G.T, G.kvH, G.hs, rope, true, threads);
  }
  return nullptr;
}

napi_value IsaName(napi_env env, napi_callback_info) {
  pick();
  napi_value s;
  napi_create_string_utf8(env, g_att.name, NAPI_AUTO_LENGTH, &s);
  return s;
}

// attentionSetIsa(name): force 'generic', 'avx2' or 'avx512' (tests); false when the CPU lacks it
napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char buf[16] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &len) != napi_ok) return fail(env, "attentionSetIsa: name must be a string", true);
  g_picked = true;
  napi_value r;
  napi_get_boolean(env, select(buf), &r);
  return r;
}

}  // namespace

void fedtune_attention_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"attentionForward", nullptr, Forward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionBackward", nullptr, Backward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionIsa", nullptr, IsaName, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionSetIsa", nullptr, SetIsa, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 4, props);
}
