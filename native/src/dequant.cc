// Dequantization of fedtune's block-quantized frozen weights (model/quant.ts: Q8_0 int8 codes and
// Q4_0 nibbles, one float16 scale per block) straight into a float32 array — the tfjs wasm heap —
// threaded over blocks. Every value is code · scale, exact in float32 (an 8-bit code times an
// 11-bit significand), so the result is bit-identical to quant.ts's dequantizeInto.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "parts.h"

namespace {

// IEEE half → float, subnormals, infinities and NaN included
inline float halfToFloat(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  float f;
  if (exp == 0) {
    f = std::ldexp((float)man, -24);  // zero or subnormal: man · 2^−24
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  const uint32_t bits = sign | (exp == 31 ? (0xffu << 23) | (man << 13) : ((uint32_t)(exp - 15 + 127) << 23) | (man << 13));
  std::memcpy(&f, &bits, 4);
  return f;
}

napi_value fail(napi_env env, const std::string& msg, bool type = false) {
  if (type) napi_throw_type_error(env, nullptr, msg.c_str());
  else napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}

// dequantize(kind, data, scales, block, out, n, threads): kind 8 = Q8_0 (data Int8Array), 4 = Q4_0
// (data Uint8Array, element j of a block in the low nibble of byte j, element j + block/2 in the
// high nibble); out[i] = code_i · half(scales[i / block]) for i < n.
napi_value Dequantize(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 7) return fail(env, "dequantize: expected 7 arguments");
  int64_t kind, block, n, threads;
  if (napi_get_value_int64(env, argv[0], &kind) != napi_ok || (kind != 8 && kind != 4)) return fail(env, "dequantize: kind must be 8 (Q8_0) or 4 (Q4_0)");
  if (napi_get_value_int64(env, argv[3], &block) != napi_ok || block < 2 || block % 2 != 0 || block > 4096) return fail(env, "dequantize: block must be an even number in [2, 4096]");
  if (napi_get_value_int64(env, argv[5], &n) != napi_ok || n < 0 || n > 0x7fffffff) return fail(env, "dequantize: n must be a non-negative 32-bit integer");
  if (napi_get_value_int64(env, argv[6], &threads) != napi_ok || threads < 1) return fail(env, "dequantize: threads must be ≥ 1");
  void *data, *scales, *out;
  size_t ld, ls, lo;
  if (!fedtune_typed_array(env, argv[1], kind == 8 ? napi_int8_array : napi_uint8_array, &data, &ld)) return fail(env, kind == 8 ? "dequantize: Q8_0 data must be an Int8Array" : "dequantize: Q4_0 data must be a Uint8Array", true);
  if (!fedtune_typed_array(env, argv[2], napi_uint16_array, &scales, &ls)) return fail(env, "dequantize: scales must be a Uint16Array", true);
  if (!fedtune_typed_array(env, argv[4], napi_float32_array, &out, &lo)) return fail(env, "dequantize: out must be a Float32Array", true);
  const int64_t nb = (n + block - 1) / block;
  if (lo < (size_t)n || ls < (size_t)nb || ld < (size_t)(kind == 8 ? n : nb * (block / 2))) return fail(env, "dequantize: an array is shorter than n and block need");
  const int8_t* q8 = static_cast<const int8_t*>(data);
  const uint8_t* q4 = static_cast<const uint8_t*>(data);
  const uint16_t* sc = static_cast<const uint16_t*>(scales);
  float* o = static_cast<float*>(out);
  const int chunks = (int)std::min<int64_t>(2 * std::min<int64_t>(threads, 64), std::max<int64_t>(1, n / 65536));
  const int64_t per = (nb + chunks - 1) / chunks;
  std::function<void(int)> job = [&](int c) {
    const int64_t b1 = std::min(nb, (c + 1) * per);
    for (int64_t b = c * per; b < b1; b++) {
      const float d = halfToFloat(sc[b]);
      const int64_t s = b * block, e = std::min(n, s + block);
      if (kind == 8) {
        for (int64_t i = s; i < e; i++) o[i] = (float)q8[i] * d;
      } else {
        const int64_t half = block / 2;
        const uint8_t* bytes = q4 + b * half;
        for (int64_t i = s; i < e; i++) {
          const int64_t j = i - s;
          const int code = j < half ? (bytes[j] & 0x0f) : (bytes[j - half] >> 4);
          o[i] = (float)(code - 8) * d;
        }
      }
    }
  };
  fedtune_parallel_for(chunks, chunks == 1 ? 1 : (int)std::min<int64_t>(threads, 64), job);
  return nullptr;
}

}  // namespace

void fedtune_dequant_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"dequantize", nullptr, Dequantize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 1, props);
}
