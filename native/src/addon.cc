// N-API entry points of fedtune's native kernels: sgemm over Float32Arrays (which may view the
// tfjs wasm heap), a small persistent thread pool, the FedAvg fold (aggregators/fedavg.ts), and
// run-time choice of the instruction set.
#include <node_api.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fedavg.h"
#include "gemm.h"
#include "parts.h"

namespace {

GemmRowsFn g_gemm = gemm_generic::gemm_rows;
FoldCheckFn g_foldCheck = fold_generic::check;
FoldAddFn g_foldAdd = fold_generic::add;
FoldAddManyFn g_foldAddMany = fold_generic::add_many;
const char* g_isa = "generic";

void useIsa(const char* isa) {
  g_isa = isa;
  g_gemm = gemm_generic::gemm_rows;
  g_foldCheck = fold_generic::check;
  g_foldAdd = fold_generic::add;
  g_foldAddMany = fold_generic::add_many;
#if defined(__x86_64__) || defined(_M_X64)
  const bool avx2 = std::string(isa) == "avx2", avx512 = std::string(isa) == "avx512";
  if (avx2) g_gemm = gemm_avx2::gemm_rows;
  if (avx512) g_gemm = gemm_avx512::gemm_rows;
  // the fold is memory-bound: AVX2 serves the AVX-512 machines too
  if (avx2 || avx512) { g_foldCheck = fold_avx2::check; g_foldAdd = fold_avx2::add; g_foldAddMany = fold_avx2::add_many; }
#endif
}

void pickIsa() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) { useIsa("avx512"); return; }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { useIsa("avx2"); return; }
#endif
}

// ---- thread pool: the caller and the workers run job(i) for i drawn from a shared counter ----
// The caller never waits for a worker that has not started: once it has drained the counter it
// closes the job, and workers that wake later skip it (a loaded machine may wake them late).
class Pool {
 public:
  ~Pool() {
    { std::lock_guard<std::mutex> l(mu_); stop_ = true; gen_++; }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  void run(int nTasks, int nThreads, const std::function<void(int)>& job) {
    if (nThreads <= 1 || nTasks <= 1) { for (int i = 0; i < nTasks; i++) job(i); return; }
    // One caller at a time: the pool serves every JS thread of the process (worker_threads load
    // the addon once per process). A caller that finds it busy does its work alone rather than
    // waiting for, or interleaving with, another thread's job.
    std::unique_lock<std::mutex> owner(runMu_, std::try_to_lock);
    if (!owner.owns_lock()) { for (int i = 0; i < nTasks; i++) job(i); return; }
    while ((int)workers_.size() < nThreads - 1) {
      const int index = (int)workers_.size();
      workers_.emplace_back([this, index] { loop(index); });
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      job_ = &job;
      nTasks_ = nTasks;
      next_.store(0);
      active_ = nThreads - 1;
      closed_ = false;
      gen_++;
    }
    cv_.notify_all();
    drain(job);
    std::unique_lock<std::mutex> l(mu_);
    closed_ = true;
    done_.wait(l, [this] { return running_ == 0; });
    job_ = nullptr;
  }

 private:
  void drain(const std::function<void(int)>& job) {
    for (int i; (i = next_.fetch_add(1)) < nTasks_;) job(i);
  }
  void loop(int index) {
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || gen_ != seen; });
        if (stop_) return;
        seen = gen_;
        if (closed_ || index >= active_) continue;  // finished without us, or fewer threads wanted
        running_++;
        job = job_;
      }
      drain(*job);
      {
        std::lock_guard<std::mutex> l(mu_);
        if (--running_ == 0) done_.notify_one();
      }
    }
  }
  std::vector<std::thread> workers_;
  std::mutex runMu_;  // held by the one caller using the pool
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<int> next_{0};
  int nTasks_ = 0, active_ = 0, running_ = 0;
  unsigned long gen_ = 0;
  bool stop_ = false, closed_ = true;
};

/** The process's pool, made on first use (a function-local static: safe from any thread). */
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: threads may still run at exit
  return *p;
}

// ---- N-API helpers ----
napi_value throwRange(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}


// sgemm(a, b, c, batch, M, N, K, transA, transB, strideA, strideB, threads): for each batch
// entry i, c[i*M*N ...] = op(a[i*strideA ...]) op(b[i*strideB ...]); strides in floats (0 = broadcast).
napi_value Sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 12) return throwRange(env, "sgemm: expected 12 arguments");
  float *a, *b, *c;
  size_t la, lb, lc;
  if (!fedtune_f32(env, argv[0], &a, &la) || !fedtune_f32(env, argv[1], &b, &lb) || !fedtune_f32(env, argv[2], &c, &lc)) {
    napi_throw_type_error(env, nullptr, "sgemm: a, b and c must be Float32Arrays");
    return nullptr;
  }
  int64_t n[7];
  // batch, M, N, K, strideA, strideB, threads
  const int idx[7] = {3, 4, 5, 6, 9, 10, 11};
  for (int i = 0; i < 7; i++) {
    if (napi_get_value_int64(env, argv[idx[i]], &n[i]) != napi_ok || n[i] < 0 || n[i] > 0x7fffffff)
      return throwRange(env, "sgemm: batch, sizes, strides and threads must be non-negative 32-bit integers");
  }
  bool ta = false, tb = false;
  napi_get_value_bool(env, argv[7], &ta);
  napi_get_value_bool(env, argv[8], &tb);
  const int64_t batch = n[0], M = n[1], N = n[2], K = n[3], sa = n[4], sb = n[5];
  const int threads = (int)std::max<int64_t>(1, std::min<int64_t>(n[6], 64));
  if (batch == 0 || M == 0 || N == 0) return nullptr;
  if ((batch - 1) * sa + M * K > (int64_t)la) return throwRange(env, "sgemm: a is too short for batch, M, K and strideA");
  if ((batch - 1) * sb + K * N > (int64_t)lb) return throwRange(env, "sgemm: b is too short for batch, K, N and strideB");
  if (batch * M * N > (int64_t)lc) return throwRange(env, "sgemm: c is too short for batch, M and N");
  const double flops = 2.0 * batch * M * N * K;
  int use = flops < 4e6 ? 1 : threads;
  // tasks: row chunks of every batch entry, about 2 per thread, at least 24 rows each
  int chunks = 1;
  if (use > 1 && batch < 2 * use) chunks = (int)std::max<int64_t>(1, std::min<int64_t>((2 * use + batch - 1) / batch, (M + 23) / 24));
  const int rowsPer = (int)((M + chunks - 1) / chunks);
  const GemmRowsFn gemm = g_gemm;
  std::function<void(int)> job = [&](int t) {
    const int64_t i = t / chunks, ch = t % chunks;
    const int m0 = (int)(ch * rowsPer), m1 = (int)std::min<int64_t>(M, (ch + 1) * rowsPer);
    gemm(a + i * sa, b + i * sb, c + i * M * N, (int)M, (int)N, (int)K, ta, tb, m0, m1);
  };
  pool().run((int)(batch * chunks), use, job);
  return nullptr;
}

// fedavgFold(sum, update, weight) → -1 when sum[i] = sum[i] + weight·update[i] was applied to every
// i, else the index of update's first non-finite value (and sum is untouched). sum: Float64Array,
// update: Float32Array of the same length, both read and written in place.
napi_value FedavgFold(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 3) return throwRange(env, "fedavgFold: expected 3 arguments (sum, update, weight)");
  size_t ls = 0, lu = 0;
  void* ps = nullptr;
  if (!fedtune_typed_array(env, argv[0], napi_float64_array, &ps, &ls)) {
    napi_throw_type_error(env, nullptr, "fedavgFold: sum must be a Float64Array");
    return nullptr;
  }
  float* u = nullptr;
  if (!fedtune_f32(env, argv[1], &u, &lu)) {
    napi_throw_type_error(env, nullptr, "fedavgFold: update must be a Float32Array");
    return nullptr;
  }
  if (lu != ls) return throwRange(env, "fedavgFold: update and sum must have the same length");
  double w = 0;
  if (napi_get_value_double(env, argv[2], &w) != napi_ok) {
    napi_throw_type_error(env, nullptr, "fedavgFold: weight must be a number");
    return nullptr;
  }
  int64_t bad = lu ? g_foldCheck(u, lu) : -1;
  if (bad < 0 && lu) g_foldAdd(static_cast<double*>(ps), u, lu, w);
  napi_value r;
  napi_create_int64(env, bad, &r);
  return r;
}

// fedavgFoldMany(sum, updates, weights) → the same as fedavgFold for each update in turn, stopping at
// the first update with a non-finite value: returns −1 when all were folded, else that update's
// index (the ones before it were folded, it and the ones after were not). Updates of 1Mi values
// or more are folded FOLD_MAX_K per pass over the sum, each pass after checking its updates; the
// bits are those of successive fedavgFold calls. updates: array of Float32Arrays; weights: Float64Array.
napi_value FedavgFoldMany(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != 3) return throwRange(env, "fedavgFoldMany: expected 3 arguments (sum, updates, weights)");
  size_t ls = 0, lw = 0;
  void *ps = nullptr, *pw = nullptr;
  if (!fedtune_typed_array(env, argv[0], napi_float64_array, &ps, &ls)) {
    napi_throw_type_error(env, nullptr, "fedavgFoldMany: sum must be a Float64Array");
    return nullptr;
  }
  if (!fedtune_typed_array(env, argv[2], napi_float64_array, &pw, &lw)) {
    napi_throw_type_error(env, nullptr, "fedavgFoldMany: weights must be a Float64Array");
    return nullptr;
  }
  bool isArray = false;
  uint32_t count = 0;
  if (napi_is_array(env, argv[1], &isArray) != napi_ok || !isArray || napi_get_array_length(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, nullptr, "fedavgFoldMany: updates must be an array of Float32Arrays");
    return nullptr;
  }
  if (count != lw) return throwRange(env, "fedavgFoldMany: weights must have one entry per update");
  std::vector<const float*> us(count);
  for (uint32_t j = 0; j < count; j++) {
    napi_value e;
    float* u = nullptr;
    size_t lu = 0;
    if (napi_get_element(env, argv[1], j, &e) != napi_ok || !fedtune_f32(env, e, &u, &lu)) {
      napi_throw_type_error(env, nullptr, "fedavgFoldMany: updates must be an array of Float32Arrays");
      return nullptr;
    }
    if (lu != ls) return throwRange(env, "fedavgFoldMany: every update must have the sum's length");
    us[j] = u;
  }
  double* sum = static_cast<double*>(ps);
  const double* w = static_cast<const double*>(pw);
  // Sharing a pass pays once the sum has left the cache: at 4.5 MiB (L3-resident) one update per
  // pass measured faster here, at 8 MiB and beyond four per pass (BENCHMARKS.md, streaming FedAvg).
  const uint32_t group = ls >= (size_t(1) << 20) ? FOLD_MAX_K : 1;
  int64_t failed = -1;
  for (uint32_t j0 = 0; j0 < count && failed < 0; j0 += group) {
    int k = (int)std::min<uint32_t>(group, count - j0);
    for (int j = 0; j < k; j++) {
      if (ls && g_foldCheck(us[j0 + j], ls) >= 0) { failed = j0 + j; k = j; break; }
    }
    if (k > 0 && ls) g_foldAddMany(sum, us.data() + j0, w + j0, k, ls);
  }
  napi_value r;
  napi_create_int64(env, failed, &r);
  return r;
}

napi_value Isa(napi_env env, napi_callback_info) {
  napi_value s;
  napi_create_string_utf8(env, g_isa, NAPI_AUTO_LENGTH, &s);
  return s;
}

// setIsa(name): force 'generic', 'avx2' or 'avx512' (for tests); returns false when the CPU lacks it.
napi_value SetIsa(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  char buf[16] = {0};
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], buf, sizeof buf, &len) != napi_ok) {
    napi_throw_type_error(env, nullptr, "setIsa: name must be a string");
    return nullptr;
  }
  std::string want(buf);
  bool ok = false;
  if (want == "generic") { useIsa("generic"); ok = true; }
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  else if (want == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { useIsa("avx2"); ok = true; }
  else if (want == "avx512" && __builtin_cpu_supports("avx512f")) { useIsa("avx512"); ok = true; }
#endif
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

napi_value Init(napi_env env, napi_value exports) {
  pickIsa();
  napi_property_descriptor props[] = {
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"isa", nullptr, Isa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setIsa", nullptr, SetIsa, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fedavgFold", nullptr, FedavgFold, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"fedavgFoldMany", nullptr, FedavgFoldMany, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 5, props);
  fedtune_attention_init(env, exports);
  fedtune_rowwise_init(env, exports);
  fedtune_dequant_init(env, exports);
  return exports;
}

}  // namespace

bool fedtune_typed_array(napi_env env, napi_value v, napi_typedarray_type want, void** data, size_t* len) {
  bool is = false;
  napi_typedarray_type type;
  napi_value ab;
  size_t off = 0;
  return napi_is_typedarray(env, v, &is) == napi_ok && is && napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) == napi_ok && type == want;
}

void fedtune_parallel_for(int nTasks, int nThreads, const std::function<void(int)>& job) {
  pool().run(nTasks, nThreads, job);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
