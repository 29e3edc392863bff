// Where attention time goes: each step of Model::attention timed separately on random data, so changes to
// the attention path can be judged by numbers. usage: bench_attention_parts [B] [N] [C] [heads]
#include "model.h"
#include "runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

namespace {

double median_ms(const std::function<void()>& fn, int repeat = 7) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t B = argc > 1 ? std::atoi(argv[1]) : 32, N = argc > 2 ? std::atoi(argv[2]) : 197,
                C = argc > 3 ? std::atoi(argv[3]) : 384, H = argc > 4 ? std::atoi(argv[4]) : 6, D = C / H;
  ms::init_runtime();
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({B * N, C});
  const at::Tensor wqkv = at::randn({3 * C, C}) * 0.02, bqkv = at::zeros({3 * C});
  const at::Tensor wproj = at::randn({C, C}) * 0.02, bproj = at::zeros({C});
  const at::Tensor w1 = at::randn({4 * C, C}) * 0.02, b1 = at::zeros({4 * C});
  const at::Tensor ln_w = at::ones({C}), ln_b = at::zeros({C});
  at::Tensor qkv_flat, qkv, logits, probs, out;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  struct Step {
    const char* name;
    std::function<void()> fn;
  };
  std::vector<Step> steps = {
      {"layer_norm", [&] { at::layer_norm(x, {C}, ln_w, ln_b, 1e-6); }},
      {"qkv addmm", [&] { qkv_flat = at::addmm(bqkv, x, wqkv.t()); }},
      {"permute to [3,B,H,N,D]",
       [&] {
         qkv = qkv_flat.view({B, N, 3, H, D}).permute({2, 0, 3, 1, 4}).contiguous();
       }},
      {"q k^T (baddbmm)",
       [&] {
         logits = at::empty({B * H, N, N});
         at::baddbmm_out(logits, logits, qkv[0].view({B * H, N, D}), qkv[1].view({B * H, N, D}).transpose(1, 2), 0.0,
                         scale);
       }},
      {"softmax", [&] { probs = at::_softmax(logits, -1, false); }},
      {"softmax in place", [&] { at::_softmax_out(logits, logits, -1, false); }},
      {"attn @ v (bmm)",
       [&] {
         out = at::bmm(probs, qkv[2].view({B * H, N, D}));
       }},
      {"keys mean over heads (reducers)",
       [&] {
         qkv_flat.view({B, N, 3, H, D}).select(2, 1).mean(2);
       }},
      {"transpose back",
       [&] {
         out.view({B, H, N, D}).transpose(1, 2).reshape({B * N, C});
       }},
      {"proj addmm", [&] { at::addmm(bproj, x, wproj.t()); }},
      {"fc1 addmm (MLP, for scale)", [&] { at::addmm(b1, x, w1.t()); }},
  };
  // The whole attention branch as the engine runs it, on a model of the same width.
  const char* arch = C == 192   ? "deit_tiny_patch16_224"
                     : C == 384 ? "deit_small_patch16_224"
                     : C == 768 ? "vit_base_patch16_224"
                                : nullptr;
  if (arch && N == 197) {
    static std::shared_ptr<const ms::Model> model = ms::Model::random(arch);
    const at::Tensor x3 = x.view({B, N, C});
    steps.push_back({"Model::attention (all above)", [x3] { model->attention(x3, 0); }});
    steps.push_back({"Model::mlp", [x3] { model->mlp(x3, 0); }});
  }
  std::printf("B=%lld N=%lld C=%lld heads=%lld threads=%d\n", (long long)B, (long long)N, (long long)C, (long long)H,
              at::get_num_threads());
  for (auto& s : steps) std::printf("%-28s %9.2f ms\n", s.name, median_ms(s.fn));
  return 0;
}
