// The LoRA training step of issue 15 in PyTorch's C++ API (libtorch), for a same-run comparison
// with fedtune (bench/side-by-side.ts). Llama block (RMSNorm, RoPE, causal attention, SwiGLU),
// random frozen base held as Q8_0 (int8 values + one scale per 32), dequantized per use: a
// custom autograd function keeps only the int8 blocks and dequantizes again in backprop, as
// fedtune's frozenMatMul does, so no float32 copy of a frozen matrix outlives its product.
// LoRA (rank 8, alpha 16) on wq and wv; AdamW (lr 2e-3, betas 0.9/0.999, eps 1e-8, decay 0);
// global gradient-norm clip at 1; mean next-token cross-entropy.
//
// Usage: lora_step <dim256|stories260K> <steps> <threads>
// Prints one JSON line: tokens/s, 1024³ matMul GFLOP/s, peak RSS (getrusage ru_maxrss).
#include <torch/torch.h>
#include <sys/resource.h>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

struct Config { int dim, hidden, layers, heads, kvHeads, vocab, seq, batch; };

static Config configNamed(const std::string& n) {
  if (n == "dim256") return {256, 688, 4, 8, 8, 512, 128, 8};
  if (n == "stories260K") return {64, 172, 5, 8, 4, 512, 256, 8};
  throw std::runtime_error("unknown config " + n + " (dim256 or stories260K)");
}

static constexpr int64_t BLOCK = 32;

// A frozen matrix W [out, in] as Q8_0: int8 values and one float scale per 32 consecutive values.
struct Q8 {
  torch::Tensor q;      // int8 [out, in]
  torch::Tensor scale;  // float [out * in / 32, 1]
  int64_t out, in;
};

static Q8 quantize(const torch::Tensor& w) {
  auto blocks = w.reshape({-1, BLOCK});
  auto d = std::get<0>(blocks.abs().max(1, true)) / 127.0;
  d = d.to(torch::kHalf).to(torch::kFloat);  // fp16 scales, as GGUF
  auto inv = torch::where(d > 0, 1.0 / d, torch::zeros_like(d));
  auto q = (blocks * inv).round().clamp(-127, 127).to(torch::kInt8).reshape(w.sizes());
  return {q, d, w.size(0), w.size(1)};
}

static torch::Tensor dequant(const Q8& m) {
  return (m.q.reshape({-1, BLOCK}).to(torch::kFloat) * m.scale).reshape({m.out, m.in});
}

// y = x Wᵀ with W dequantized in forward and again in backward; gradient to x only.
struct FrozenLinear : public torch::autograd::Function<FrozenLinear> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, const Q8* m) {
    ctx->saved_data["m"] = reinterpret_cast<int64_t>(m);
    return torch::matmul(x, dequant(*m).t());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    const Q8* m = reinterpret_cast<const Q8*>(ctx->saved_data["m"].toInt());
    return {torch::matmul(g[0], dequant(*m)), torch::Tensor()};
  }
};

static torch::Tensor frozen(const torch::Tensor& x, const Q8& m) { return FrozenLinear::apply(x, &m); }

struct Layer {
  Q8 wq, wk, wv, wo, w1, w2, w3;
  torch::Tensor attNorm, ffnNorm;
  torch::Tensor aq, bq, av, bv;  // LoRA: A [r, in], B [out, r]
};

static torch::Tensor rmsNorm(const torch::Tensor& x, const torch::Tensor& w) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5) * w;
}

// interleaved (llama2.c) RoPE on x [B, T, H, hs]
static torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto sz = x.sizes();
  auto xr = x.reshape({sz[0], sz[1], sz[2], sz[3] / 2, 2});
  auto a = xr.select(-1, 0), b = xr.select(-1, 1);
  return torch::stack({a * cos - b * sin, a * sin + b * cos}, -1).reshape(sz);
}

static double matmulGflops() {
  torch::NoGradGuard ng;
  auto a = torch::randn({1024, 1024}), b = torch::randn({1024, 1024});
  torch::mm(a, b);
  const int reps = 8;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) torch::mm(a, b);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * 1024 * 1024 * 1024 * reps / s / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <dim256|stories260K> <steps> <threads>\n", argv[0]);
    return 2;
  }
  const Config c = configNamed(argv[1]);
  const int steps = std::stoi(argv[2]);
  torch::set_num_threads(std::stoi(argv[3]));
  torch::manual_seed(1);
  const int hs = c.dim / c.heads, rep = c.heads / c.kvHeads, r = 8;
  const double scale = 16.0 / r;
  const int64_t kvDim = int64_t(c.kvHeads) * hs;

  // random frozen base (values do not affect time or memory), quantized as it is drawn
  auto q8 = [](int64_t o, int64_t i) { return quantize(torch::randn({o, i}) * 0.02); };
  std::vector<Layer> layers;
  std::vector<torch::Tensor> params;
  for (int l = 0; l < c.layers; l++) {
    Layer L{q8(c.dim, c.dim), q8(kvDim, c.dim), q8(kvDim, c.dim), q8(c.dim, c.dim), q8(c.hidden, c.dim), q8(c.dim, c.hidden), q8(c.hidden, c.dim),
            torch::ones({c.dim}), torch::ones({c.dim}), {}, {}, {}, {}};
    const double bound = 1.0 / std::sqrt(double(c.dim));
    L.aq = (torch::rand({r, c.dim}) * 2 - 1).mul_(bound).requires_grad_();
    L.bq = torch::zeros({c.dim, r}).requires_grad_();
    L.av = (torch::rand({r, c.dim}) * 2 - 1).mul_(bound).requires_grad_();
    L.bv = torch::zeros({kvDim, r}).requires_grad_();
    params.insert(params.end(), {L.aq, L.bq, L.av, L.bv});
    layers.push_back(std::move(L));
  }
  const Q8 head = q8(c.vocab, c.dim);  // shared with the token embedding
  const auto finalNorm = torch::ones({c.dim});
  torch::optim::AdamW opt(params, torch::optim::AdamWOptions(2e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0));

  // RoPE tables [T, 1, hs/2] and the causal mask [T, T]
  auto pos = torch::arange(c.seq, torch::kFloat).unsqueeze(1);
  auto freq = torch::pow(10000.0, -torch::arange(0, hs, 2, torch::kFloat) / hs).unsqueeze(0);
  auto ang = (pos * freq).unsqueeze(1);
  auto cos = ang.cos(), sin = ang.sin();
  auto mask = torch::full({c.seq, c.seq}, -1e9).triu(1);

  // the token stream of bench/side-by-side.ts: 3 + (i·7919 mod (vocab − 3)), windows led by BOS (1)
  const int nTok = 20000;
  std::vector<int64_t> stream(nTok);
  for (int i = 0; i < nTok; i++) stream[i] = 3 + (int64_t(i) * 7919) % (c.vocab - 3);
  uint64_t lcg = 1;

  auto step = [&]() -> double {
    // batch: BOS + seq tokens per window; inputs are the first seq, targets the last seq
    std::vector<int64_t> in(c.batch * c.seq), tgt(c.batch * c.seq);
    for (int b = 0; b < c.batch; b++) {
      lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
      int64_t s = int64_t((lcg >> 33) % uint64_t(nTok - c.seq));
      in[b * c.seq] = 1;
      for (int t = 1; t < c.seq; t++) in[b * c.seq + t] = stream[s + t - 1];
      for (int t = 0; t < c.seq; t++) tgt[b * c.seq + t] = stream[s + t];
    }
    auto inputs = torch::from_blob(in.data(), {c.batch * c.seq}, torch::kInt64).clone();
    auto targets = torch::from_blob(tgt.data(), {c.batch * c.seq}, torch::kInt64).clone();
    // embedding rows dequantized from the int8 head
    auto rows = head.q.index_select(0, inputs).to(torch::kFloat).reshape({-1, BLOCK});
    auto rowScale = head.scale.reshape({c.vocab, c.dim / BLOCK}).index_select(0, inputs).reshape({-1, 1});
    auto x = (rows * rowScale).reshape({c.batch * c.seq, c.dim});
    const int B = c.batch, T = c.seq;
    for (auto& L : layers) {
      auto xn = rmsNorm(x, L.attNorm);
      auto q = frozen(xn, L.wq) + torch::matmul(torch::matmul(xn, L.aq.t()), L.bq.t()) * scale;
      auto k = frozen(xn, L.wk);
      auto v = frozen(xn, L.wv) + torch::matmul(torch::matmul(xn, L.av.t()), L.bv.t()) * scale;
      q = rope(q.reshape({B, T, c.heads, hs}), cos, sin).permute({0, 2, 1, 3});  // [B, H, T, hs]
      k = rope(k.reshape({B, T, c.kvHeads, hs}), cos, sin).permute({0, 2, 1, 3});
      auto vh = v.reshape({B, T, c.kvHeads, hs}).permute({0, 2, 1, 3});
      if (rep > 1) {
        k = k.repeat_interleave(rep, 1);
        vh = vh.repeat_interleave(rep, 1);
      }
      auto att = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(hs)) + mask, -1);
      auto merged = torch::matmul(att, vh).permute({0, 2, 1, 3}).reshape({B * T, c.dim});
      x = x + frozen(merged, L.wo);
      auto hn = rmsNorm(x, L.ffnNorm);
      auto h1 = frozen(hn, L.w1);
      x = x + frozen(torch::silu(h1) * frozen(hn, L.w3), L.w2);
    }
    auto logits = frozen(rmsNorm(x, finalNorm), head);
    auto loss = torch::nn::functional::cross_entropy(logits, targets);
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    return loss.item<double>();
  };

  for (int i = 0; i < 2; i++) step();  // warm-up, as fedtune's bench
  const double mm1 = matmulGflops();
  auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  double loss = 0;
  for (int i = 0; i < steps; i++) loss = step();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
  const double mm2 = matmulGflops();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"side\":\"pytorch\",\"config\":\"%s\",\"threads\":%d,\"steps\":%d,\"tokensPerSecond\":%.1f,\"tokensPerCpuSecond\":%.1f,\"matmulGflops\":%.2f,\"peakRssBytes\":%ld,\"lastLoss\":%.4f,\"torch\":\"%s\"}\n",
              argv[1], torch::get_num_threads(), steps, double(steps) * c.batch * c.seq / s, double(steps) * c.batch * c.seq / cpu, (mm1 + mm2) / 2, ru.ru_maxrss * 1024L, loss, TORCH_VERSION);
  return 0;
}
