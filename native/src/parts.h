// What addon.cc shares with the kernels kept in their own files, and their N-API registration.
#pragma once
#include <node_api.h>

#include <functional>

/** Run job(i) for every i in [0, nTasks) on up to nThreads threads of the addon's pool (addon.cc). */
void fedtune_parallel_for(int nTasks, int nThreads, const std::function<void(int)>& job);

/**
 * The data and length (in elements) of `v` if it is a typed array of type `want`; false otherwise
 * (addon.cc). Every kernel reads its array arguments through this (or fedtune_f32).
 */
bool fedtune_typed_array(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* len);

/** fedtune_typed_array for a Float32Array. */
inline bool fedtune_f32(napi_env env, napi_value v, float** data, size_t* len) {
  void* p = nullptr;
  if (!fedtune_typed_array(env, v, napi_float32_array, &p, len)) return false;
  *data = static_cast<float*>(p);
  return true;
}

/** Add the fused causal attention functions to the addon's exports (attention.cc). */
void fedtune_attention_init(napi_env env, napi_value exports);

/** Add the fused RMSNorm and SwiGLU functions to the addon's exports (rowwise.cc). */
void fedtune_rowwise_init(napi_env env, napi_value exports);

/** Add the block dequantization function to the addon's exports (dequant.cc). */
void fedtune_dequant_init(napi_env env, napi_value exports);
