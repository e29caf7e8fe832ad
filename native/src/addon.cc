// N-API entry points of fedtune's native kernels: sgemm over Float32Arrays (which may view the
// tfjs wasm heap), a small persistent thread pool, and run-time choice of the instruction set.
#include <node_api.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "gemm.h"
#include "parts.h"

namespace {

GemmRowsFn g_gemm = gemm_generic::gemm_rows;
const char* g_isa = "generic";

void pickIsa() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) { g_gemm = gemm_avx512::gemm_rows; g_isa = "avx512"; return; }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { g_gemm = gemm_avx2::gemm_rows; g_isa = "avx2"; return; }
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
  std::mutex mu_;
  std::condition_variable cv_, done_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<int> next_{0};
  int nTasks_ = 0, active_ = 0, running_ = 0;
  unsigned long gen_ = 0;
  bool stop_ = false, closed_ = true;
};

Pool* g_pool = nullptr;

// ---- N-API helpers ----
napi_value throwRange(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, nullptr, msg.c_str());
  return nullptr;
}

bool f32(napi_env env, napi_value v, float** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type type;
  void* p = nullptr;
  napi_value ab;
  size_t off = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &p, &ab, &off) != napi_ok || type != napi_float32_array) return false;
  *data = static_cast<float*>(p);
  return true;
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
  if (!f32(env, argv[0], &a, &la) || !f32(env, argv[1], &b, &lb) || !f32(env, argv[2], &c, &lc)) {
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
  if (!g_pool) g_pool = new Pool();
  g_pool->run((int)(batch * chunks), use, job);
  return nullptr;
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
  if (want == "generic") { g_gemm = gemm_generic::gemm_rows; g_isa = "generic"; ok = true; }
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  else if (want == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { g_gemm = gemm_avx2::gemm_rows; g_isa = "avx2"; ok = true; }
  else if (want == "avx512" && __builtin_cpu_supports("avx512f")) { g_gemm = gemm_avx512::gemm_rows; g_isa = "avx512"; ok = true; }
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
  };
  napi_define_properties(env, exports, 3, props);
  fedtune_attention_init(env, exports);
  fedtune_rowwise_init(env, exports);
  fedtune_dequant_init(env, exports);
  return exports;
}

}  // namespace

void fedtune_parallel_for(int nTasks, int nThreads, const std::function<void(int)>& job) {
  if (!g_pool) g_pool = new Pool();
  g_pool->run(nTasks, nThreads, job);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
