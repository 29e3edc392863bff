// EViT: "Not All Patches are What You Need: Expediting Vision Transformers via Token Reorganizations" (Liang et
// al., ICLR 2022, arXiv:2202.07800), as youweiliang/evit's evit.py runs it at inference (scripts/golden/
// make_evit.py makes the golden file with it).
//
// Paper and code agree on the method: in a few blocks, between attention and MLP, keep the k patch tokens the
// CLS token attends to most and fuse the others into one token, weighted by that attention. What this file
// does, as the released code (evit.py Attention/Block, helpers.complement_idx):
//  - a_i = CLS row of the block's attention probabilities averaged over heads, i >= 1 (CLS->CLS excluded, not
//    renormalised); k = ceil(keep * (N - 1)) in double, N counting every token including an earlier fused one;
//    k == N - 1: the block does nothing;
//  - output [CLS, the k kept tokens in descending a (topk order, not position order), fused] where
//    fused = sum of a_i x_i over the others: an unnormalised weighted sum (the weights sum to less than 1);
//    with fuse=0 the others are dropped. A fused token is an ordinary token later: kept, or fused again;
//  - default schedule of its DeiT-S/B models and scripts: keep 0.7 at blocks 3, 6, 9, fusion on (--fuse_token
//    is off in main.py's argparse but on in every script and the README: the paper's method fuses);
//  - no proportional attention, sizes unused (tracked here for the trace only).
// The published EViT numbers are for models trained with the schedule; here it runs on off-the-shelf weights.
// Prefix tokens: the released code handles only CLS; distilled models are refused.
#include "../engine.h"
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ms {
namespace {

class Evit final : public Reducer {
 public:
  Evit(double keep, bool fuse, std::vector<int> blocks) : keep_(keep), fuse_(fuse), blocks_(std::move(blocks)) {}

  std::string spec() const override {
    std::string s = "evit:keep=" + reduce::format_number(keep_);
    if (!fuse_) s += ",fuse=0";
    if (blocks_ != std::vector<int>{3, 6, 9}) {
      s += ",blocks=" + reduce::format_list(blocks_);
    }
    return s;
  }
  bool wants_attention() const override { return true; }

  bool acts(int layer) const { return std::find(blocks_.begin(), blocks_.end(), layer) != blocks_.end(); }
  // k = ceil(keep * (N - 1)) in double, as math.ceil in evit.py
  int kept(int tokens) const {
    volatile double product = keep_ * (tokens - 1);
    return static_cast<int>(std::ceil(product));
  }

  int predict_tokens(int layer, int depth, int tokens, int) const override {
    check_blocks(depth);
    if (!acts(layer) || keep_ >= 1.0) return tokens;
    const int k = kept(tokens);
    return k >= tokens - 1 ? tokens : 1 + k + (fuse_ ? 1 : 0);
  }

  double matching_macs(int tokens_in, int tokens_out, int, int, int width) const override {
    return static_cast<double>(tokens_in - tokens_out + 1) * width;  // the fused weighted sum
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (ctx.distill_token)
      fail(spec(), "distilled models are not supported (the released EViT treats the distillation token as a patch)");
    check_blocks(ctx.depth);
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1);
    ReductionPlan plan;
    plan.tokens = N;
    if (!acts(ctx.layer) || keep_ >= 1.0) return plan;
    const int64_t k = kept(static_cast<int>(N));
    if (k >= N - 1) return plan;
    if (k < 1)
      fail(spec(), "keeps no patch token of " + std::to_string(N - 1) + " in block " + std::to_string(ctx.layer));
    const at::Tensor a = ctx.attn->select(2, 0).mean(1).slice(1, 1);  // [B, N-1] CLS attention to the patches
    const at::Tensor order = std::get<1>(a.topk(k, -1, /*largest=*/true, /*sorted=*/true));  // [B,k]
    const auto opts = ctx.x.options().dtype(at::kLong);
    plan.tokens = 1 + k + (fuse_ ? 1 : 0);
    // Patch tokens: kept -> 1 + rank, the rest -> the fused slot (or pruned).
    at::Tensor dest_p = at::full({B, N - 1}, fuse_ ? 1 + k : -1, opts);
    dest_p.scatter_(1, order, (at::arange(k, opts) + 1).expand({B, k}));
    plan.dest = at::cat({at::zeros({B, 1}, opts), dest_p}, 1);
    const at::Tensor kept_x = ctx.x.slice(1, 1).gather(1, order.unsqueeze(2).expand({B, k, ctx.x.size(2)}));
    std::vector<at::Tensor> parts = {ctx.x.slice(1, 0, 1), kept_x};
    if (fuse_) {
      const at::Tensor others = (dest_p == 1 + k).to(a.scalar_type());
      parts.push_back(at::bmm((a * others).unsqueeze(1), ctx.x.slice(1, 1)));  // sum of a_i x_i
    }
    plan.x = at::cat(parts, 1);
    if (ctx.record_margins) {  // the top-k cut in units of uniform attention, 1/(N-1)
      plan.margin = at::full({B, N}, std::numeric_limits<float>::infinity(), a.options());
      plan.margin.slice(1, 1).copy_(reduce::cut_margin(a, std::get<1>(a.sort(-1, true)), k) * (N - 1));
    }
    return plan;
  }

 private:
  void check_blocks(int depth) const { reduce::check_blocks(spec(), blocks_, depth); }

  double keep_;
  bool fuse_;
  std::vector<int> blocks_;
};

}  // namespace

std::unique_ptr<Reducer> make_evit(ReducerSpec& spec) {
  // Defaults of the released DeiT-S/B shrink models and scripts: keep 0.7 at blocks 3, 6, 9, fused token on.
  const double keep = spec.get_double("keep", 0.7, 0.0, 1.0);
  if (!(keep > 0)) fail("method spec '" + spec.text() + "'", "evit keep= must be above 0");
  const bool fuse = spec.get_bool("fuse", true);
  std::vector<int> blocks = spec.has("blocks") ? spec.get_int_list("blocks") : std::vector<int>{3, 6, 9};
  std::sort(blocks.begin(), blocks.end());
  if (std::adjacent_find(blocks.begin(), blocks.end()) != blocks.end())
    fail("method spec '" + spec.text() + "'", "evit blocks= lists a block twice");
  return std::make_unique<Evit>(keep, fuse, std::move(blocks));
}

}  // namespace ms
