// DCT: low-frequency truncation along the token axis, from the Fourier Transformer (He et al., Findings of ACL
// 2023, arXiv:2305.15099: DCT along the sequence, drop the high frequencies, inverse DCT to a shorter sequence),
// as the PiToMe repository's algo/dct applies it to ViTs (scripts/golden/make_dct.py makes the golden file).
//
// Released code (algo/dct/merge.py dc_transform, patch/timm.py DCTBlock), what this file does:
//  - acts at the end of every block, after the MLP (the DCTBlock docstring says between attention and MLP;
//    the code does it after), on x only: no keys, no attention, no sizes, no proportional attention;
//  - CLS (index 0) is kept as is; the T patch tokens go through an orthonormal DCT-II along the token axis,
//    independently per channel, the K = ceil(T * ratio) lowest coefficients are kept, and an orthonormal
//    DCT-III *of length K* turns them back into K tokens. Tokens after the block: 1 + K, in every block,
//    the last one included (it only changes patch tokens the head never reads);
//  - the result is rounded to float16 and concatenated to the float32 CLS (so back to float32): reproduced,
//    although the DeiT evaluation runs in float32 -- a mixed-precision leftover;
//  - forward and inverse are orthonormal for different lengths, so a constant sequence a comes back as
//    a sqrt(T / K): smooth content grows by sqrt(T / K) per block. Not compensated, as released.
// The transforms use the released arithmetic (even/odd reordering, one complex FFT, float32 twiddles) with the
// same ATen calls, so the tokens equal the released ones bit for bit (tests/test_reducers_golden.cpp checks
// the transform on the golden unit vectors); the float16 rounding turns the engine's ~1e-6 differences from
// PyTorch into whole float16 steps, which is why DCT's logits have their own, stated tolerance.
// Every output token mixes all patch tokens: there is no partition, and the trace says so (mixes_all).
// Cost: the block runs on the tokens entering it (ReducerStage::AfterMlp); the transform counts as its dense
// equivalent, C K T multiply-adds. Distilled models are refused (the released code transforms the distillation
// token with the patches and then reads a low-frequency token as it).
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <cmath>

namespace ms {

namespace reduce {

// Orthonormal DCT-II of every row of u [R,N] float32, in the released arithmetic.
at::Tensor dct2_ortho(const at::Tensor& u) {
  const int64_t n = u.size(1);
  const at::Tensor v = at::cat({u.slice(1, 0, n, 2), u.slice(1, 1, n, 2).flip({1})}, 1);
  const at::Tensor f = at::fft_fft(v, c10::nullopt, 1);
  const at::Tensor w = at::arange(n, u.options()).unsqueeze(0).neg().mul(M_PI).div(static_cast<double>(2 * n));
  at::Tensor out = at::real(f) * at::cos(w) - at::imag(f) * at::sin(w);
  out.select(1, 0).div_(std::sqrt(static_cast<double>(n)) * 2);
  out.slice(1, 1).div_(std::sqrt(n / 2.0) * 2);
  return out.mul(2);
}

// Orthonormal DCT-III (the inverse of dct2_ortho) of every row of c [R,K] float32, in the released arithmetic.
at::Tensor dct3_ortho(const at::Tensor& c) {
  const int64_t n = c.size(1);
  at::Tensor h = c.div(2);
  h.select(1, 0).mul_(std::sqrt(static_cast<double>(n)) * 2);
  h.slice(1, 1).mul_(std::sqrt(n / 2.0) * 2);
  const at::Tensor w = at::arange(n, c.options()).unsqueeze(0).mul(M_PI).div(static_cast<double>(2 * n));
  const at::Tensor wr = at::cos(w), wi = at::sin(w);
  const at::Tensor im = at::cat({h.slice(1, 0, 1) * 0, h.flip({1}).slice(1, 0, n - 1).neg()}, 1);
  const at::Tensor v = at::real(at::fft_ifft(at::complex(h * wr - im * wi, h * wi + im * wr), c10::nullopt, 1));
  at::Tensor y = at::zeros_like(v);
  y.slice(1, 0, n, 2).add_(v.slice(1, 0, n - n / 2));
  y.slice(1, 1, n, 2).add_(v.flip({1}).slice(1, 0, n / 2));
  return y;
}

// x [B,N,C]: CLS kept, the N - 1 patch tokens replaced by the K-token low-pass (float16-rounded values).
at::Tensor dc_transform(const at::Tensor& x, int64_t k) {
  const int64_t B = x.size(0), T = x.size(1) - 1, C = x.size(2);
  const at::Tensor rows = x.slice(1, 1).to(at::kFloat).permute({2, 0, 1}).reshape({C * B, T});
  const at::Tensor y = dct3_ortho(dct2_ortho(rows).slice(1, 0, k).contiguous());
  const at::Tensor tokens = y.reshape({C, B, k}).permute({1, 2, 0}).to(at::kHalf).to(x.scalar_type());
  return at::cat({x.slice(1, 0, 1), tokens}, 1);
}

}  // namespace reduce

namespace {

class Dct final : public Reducer {
 public:
  explicit Dct(double ratio) : ratio_(ratio) {}

  std::string spec() const override { return "dct:ratio=" + reduce::format_number(ratio_); }
  ReducerStage stage() const override { return ReducerStage::AfterMlp; }

  // K = ceil(T * ratio) of the T = tokens - 1 non-CLS tokens, in double (math.ceil(T * ratio)).
  int kept(int patch_tokens) const {
    volatile double product = patch_tokens * ratio_;
    return static_cast<int>(std::ceil(product));
  }

  int predict_tokens(int, int, int tokens, int) const override { return ratio_ < 1.0 ? 1 + kept(tokens - 1) : tokens; }

  double matching_macs(int tokens_in, int tokens_out, int, int, int width) const override {
    return static_cast<double>(width) * (tokens_in - 1) * (tokens_out - 1);  // the transform as a dense matrix
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (ctx.distill_token)
      fail(spec(),
           "distilled models are not supported (the released DCT mixes the distillation token into the "
           "patch tokens)");
    ReductionPlan plan;
    plan.tokens = ctx.x.size(1);
    if (ratio_ >= 1.0) return plan;
    const int64_t k = kept(static_cast<int>(ctx.x.size(1) - 1));
    plan.x = reduce::dc_transform(ctx.x, k);
    plan.tokens = 1 + k;
    plan.mixes_all = true;
    plan.note = "mixes all tokens (no partition)";
    return plan;
  }

 private:
  double ratio_;
};

}  // namespace

std::unique_ptr<Reducer> make_dct(ReducerSpec& spec) {
  if (!spec.has("ratio"))
    fail("method spec '" + spec.text() + "'", "dct needs ratio= (keep ratio, e.g. dct:ratio=0.9)");
  const double ratio = spec.get_double("ratio", 1.0, 0.0, 1.0);
  if (!(ratio > 0)) fail("method spec '" + spec.text() + "'", "dct ratio= must be above 0");
  return std::make_unique<Dct>(ratio);
}

}  // namespace ms
