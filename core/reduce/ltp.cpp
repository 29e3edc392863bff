// LTP: Learned Token Pruning (Kim et al., KDD 2022), applied to ViTs between attention and MLP.
//
// Importance of token i = attention it receives, averaged over heads and queries (learned.h). Block l keeps
// the tokens whose importance exceeds its learned threshold theta_l (CLS and the distillation token always
// stay) and drops the rest for real: later blocks see fewer tokens, and the count depends on the image.
// Thresholds come from `mergescope-cli calibrate --method ltp` (core/calibrate.h) or prune=V for all blocks.
#include "error.h"
#include "learned.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <limits>

namespace ms {
namespace {

class Ltp final : public Reducer {
 public:
  explicit Ltp(reduce::LearnedSpec spec) : spec_(std::move(spec)) {}

  std::string spec() const override { return spec_.canonical; }
  bool wants_attention() const override { return true; }
  int predict_tokens(int, int, int, int) const override { return -1; }  // image-dependent

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (thresholds_.depth() != ctx.depth) thresholds_ = spec_.resolve(ctx.depth);
    const double theta = thresholds_.prune[ctx.layer];
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1);
    const at::Tensor importance = reduce::attention_importance(*ctx.attn).to(at::kDouble).contiguous();
    ReductionPlan plan;
    plan.dest = at::empty({B, N}, at::TensorOptions().dtype(at::kLong));
    auto imp = importance.accessor<double, 2>();
    auto dest = plan.dest.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t kept = 0;
      for (int64_t t = 0; t < N; ++t) dest[b][t] = (t < ctx.prefix_tokens || imp[b][t] > theta) ? kept++ : -1;
      if (b > 0 && kept != plan.tokens)
        fail("ltp", "images of one batch keep different token counts; run them one at a time (the engine does)");
      plan.tokens = kept;
    }
    if (ctx.record_margins) {  // importance vs threshold, times N: relative to uniform attention 1/N
      plan.margin = reduce::threshold_margin(importance, theta, static_cast<double>(N)).to(at::kFloat);
      plan.margin.slice(1, 0, ctx.prefix_tokens).fill_(std::numeric_limits<float>::infinity());
    }
    if (plan.tokens == N) plan.dest = at::Tensor();  // nothing pruned
    return plan;
  }

 private:
  reduce::LearnedSpec spec_;
  LearnedThresholds thresholds_;
};

}  // namespace

std::unique_ptr<Reducer> make_ltp(ReducerSpec& spec) {
  return std::make_unique<Ltp>(reduce::parse_learned_spec(spec, "ltp"));
}

}  // namespace ms
