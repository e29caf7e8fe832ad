// What addon.cc shares with the kernels kept in their own files, and their N-API registration.
#pragma once
#include <node_api.h>

#include <functional>

/** Run job(i) for every i in [0, nTasks) on up to nThreads threads of the addon's pool (addon.cc). */
void fedtune_parallel_for(int nTasks, int nThreads, const std::function<void(int)>& job);

/** Add the fused causal attention functions to the addon's exports (attention.cc). */
void fedtune_attention_init(napi_env env, napi_value exports);

/** Add the fused RMSNorm and SwiGLU functions to the addon's exports (rowwise.cc). */
void fedtune_rowwise_init(napi_env env, napi_value exports);

/** Add the block dequantization function to the addon's exports (dequant.cc). */
void fedtune_dequant_init(napi_env env, napi_value exports);
