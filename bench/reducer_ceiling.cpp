// The speed-up a reducer could give in this engine if its own work (matching, merging) cost nothing: every
// block's attention and MLP are timed at the token counts the reducer produces (attention with the keys the
// reducer reads and, when the method uses it, the log-size bias), against the same blocks at the full token
// count. Blocks at every size take turns in each round, so drift of a shared machine hits all sizes alike;
// times are medians over rounds. The real forward passes (none and the method) run in the same rounds, so
// the measured speed-up sits beside its ceiling and the MAC ratio. For scale, each round also times one GEMM
// at the MLP's first layer shape ([B*N, C] x [C, hidden], ATen addmm into a ready output): the rate BLAS
// reaches on its best case here, against the rate of the whole unreduced forward.
//
// usage: bench_reducer_ceiling ARCH SPEC [batch=32] [rounds=7]
#include "config.h"
#include "engine.h"
#include "flops.h"
#include "model.h"
#include "reduce/reducer.h"
#include "runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s ARCH SPEC [batch] [rounds]\n", argv[0]);
    return 2;
  }
  const std::string arch = argv[1], spec = argv[2];
  const int64_t B = argc > 3 ? std::atoi(argv[3]) : 32;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 7;
  if (B < 1 || rounds < 1) {
    std::fprintf(stderr, "bench_reducer_ceiling: batch and rounds must be positive integers\n");
    return 2;
  }
  ms::init_runtime();
  c10::InferenceMode guard;
  const auto model = ms::Model::random(arch, c10::Device(c10::kCPU), 0);
  const ms::VitConfig& c = model->config();
  const auto reducer = ms::make_reducer(spec);
  if (reducer->predict_tokens(0, c.depth, c.num_tokens(), c.num_prefix_tokens()) < 0) {
    std::fprintf(stderr, "%s: token counts depend on the image; this bench needs a fixed schedule\n", spec.c_str());
    return 1;
  }
  const std::vector<int> after = ms::predicted_tokens(c, *reducer);  // tokens leaving each block
  const int N0 = c.num_tokens();
  const bool bias = reducer->proportional_attention();

  // One block at n tokens in, m tokens into the MLP: what the reduced forward computes besides the reducer.
  std::map<std::pair<int, int>, std::vector<double>> block_ms;
  auto time_block = [&](int n, int m) {
    const at::Tensor x = at::randn({B, n, c.embed_dim}), x_mlp = at::randn({B, m, c.embed_dim});
    const at::Tensor log_size = at::rand({B, n}).log1p();
    at::Tensor keys;
    model->attention(x, 0, bias ? &log_size : nullptr, &keys);  // untimed: same sizes as the timed call
    model->mlp(x_mlp, 0);
    const auto t0 = Clock::now();
    model->attention(x, 0, bias ? &log_size : nullptr, &keys);
    model->mlp(x_mlp, 0);
    block_ms[{n, m}].push_back(ms_since(t0));
  };
  const at::Tensor images = at::randn({B, 3, c.img_size, c.img_size});
  std::vector<double> none_ms, method_ms, none_blocks, method_blocks, reducer_ms, gemm_ms;
  const int64_t hidden = c.mlp_hidden();
  const at::Tensor gemm_a = at::randn({B * N0, c.embed_dim}), gemm_w = at::randn({hidden, c.embed_dim}) * 0.02,
                   gemm_b = at::zeros({hidden});
  at::Tensor gemm_out = at::empty({B * N0, hidden});
  at::addmm_out(gemm_out, gemm_b, gemm_a, gemm_w.t());
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    const ms::RunResult a = ms::run(*model, images, nullptr, {});
    none_ms.push_back(ms_since(t0));
    none_blocks.push_back(1000.0 * a.block_seconds);
    t0 = Clock::now();
    const ms::RunResult b = ms::run(*model, images, reducer.get(), {});
    method_ms.push_back(ms_since(t0));
    method_blocks.push_back(1000.0 * b.block_seconds);
    reducer_ms.push_back(1000.0 * b.reducer_seconds);
    t0 = Clock::now();
    at::addmm_out(gemm_out, gemm_b, gemm_a, gemm_w.t());
    gemm_ms.push_back(ms_since(t0));
    time_block(N0, N0);
    for (int l = 0; l < c.depth; ++l) time_block(l == 0 ? N0 : after[l - 1], after[l]);
  }
  double full = 0, reduced = 0;
  for (int l = 0; l < c.depth; ++l) {
    full += median(block_ms[{N0, N0}]);
    reduced += median(block_ms[{l == 0 ? N0 : after[l - 1], after[l]}]);
  }
  const double none_gmacs = ms::model_cost(c, {}, nullptr).gmacs();
  const double mac_ratio = none_gmacs / ms::model_cost(c, after, reducer.get()).gmacs();
  std::printf("%s  %s  batch %lld  threads %d  %d rounds\n", arch.c_str(), reducer->spec().c_str(),
              static_cast<long long>(B), at::get_num_threads(), rounds);
  std::printf("blocks alone (attention + MLP at the method's token counts, no reducer):\n");
  std::printf("  full %.0f ms, reduced %.0f ms  -> ceiling %.3fx\n", full, reduced, full / reduced);
  std::printf("real forwards: none %.0f ms (blocks %.0f), %s %.0f ms (blocks %.0f, of which reducer %.0f)\n",
              median(none_ms), median(none_blocks), reducer->spec().c_str(), median(method_ms), median(method_blocks),
              median(reducer_ms));
  const double gemm_gmacs = 1e-9 * static_cast<double>(B * N0) * c.embed_dim * hidden;
  std::printf("rates: unreduced forward %.1f GMAC/s; one GEMM [%lld x %lld] x [%lld x %lld] %.1f GMAC/s\n",
              none_gmacs * static_cast<double>(B) / (median(none_ms) / 1000.0), static_cast<long long>(B * N0),
              static_cast<long long>(c.embed_dim), static_cast<long long>(c.embed_dim), static_cast<long long>(hidden),
              gemm_gmacs / (median(gemm_ms) / 1000.0));
  std::vector<double> ratios;
  for (int r = 0; r < rounds; ++r) ratios.push_back(none_ms[r] / method_ms[r]);
  // The same bound read off the real forwards: their block time without the reducer's share.
  const double real_bound = median(none_blocks) / (median(method_blocks) - median(reducer_ms));
  std::printf(
      "  measured speed-up %.3fx (median of per-round ratios)   MAC ratio %.3fx   ceiling %.3fx (blocks alone), "
      "%.3fx (real blocks less reducer)\n",
      median(ratios), mac_ratio, full / reduced, real_bound);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_reducer_ceiling: %s\n", e.what());
    return 1;
  }
}
