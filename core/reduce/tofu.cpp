// ToFu: Token Fusion (Kim et al., WACV 2024, arXiv:2312.01026), as the PiToMe repository's algo/tofu runs it
// (the version the PiToMe paper compares against; scripts/golden/make_tofu.py makes the golden file with it).
//
// Paper: prune in the early blocks (where tokens are still dissimilar and merging hurts), merge in the later
// ones with MLERP, a norm-preserving merge: the average's direction with the largest member norm.
//
// Released code (algo/tofu/merge.py, patch/timm.py, patch/deit.py), what this file does:
//  - acts between attention and MLP on the keys averaged over heads, like ToMe; keep ratio `ratio` in every
//    block: r = floor(T - T * ratio) with T counting all tokens, CLS included (pitome-code counts non-CLS);
//  - ToMe's bipartite step: A = even positions, B = odd, each A's most similar B, the r best edges go; CLS
//    (A[0]) is protected; output [unmerged A in position order, all B];
//  - blocks 0..L/2 (0..6 of 12: `i > L // 2` merges) prune: the r chosen A tokens are discarded, nothing is added
//    to their B; blocks L/2+1.. merge: each B becomes the plain (unweighted, sizes ignored) mean of itself and
//    its A tokens, rescaled by max(member norms) / (the B token's own norm before the merge) -- applied to every
//    B, also those that received nothing (x / |x| * |x|);
//  - no proportional attention (the patch passes sizes that ToFu never sets).
// Where the released code differs from the paper: MLERP divides by the norm of the average, the code by the B
// token's pre-merge norm, so a merged token's norm is |mean| max|x_i| / |x_B| instead of max|x_i| (0.78-1.14x
// of MLERP on the golden images). Reproduced, since the published comparisons ran it. No clamp of r exists in the
// released code; ratio <= 0.5 would merge CLS or fail there, so it is refused here. The distillation token is
// neither protected nor kept in place by the released code: distilled models are refused.
#include "../engine.h"
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace ms {
namespace {

class Tofu final : public Reducer {
 public:
  explicit Tofu(double ratio) : ratio_(ratio) {}

  std::string spec() const override { return "tofu:ratio=" + reduce::format_number(ratio_); }

  // r = floor(T - T * ratio) in double, in that order (no fused multiply-add), as merge.py's math.floor.
  int removed(int tokens) const {
    if (ratio_ >= 1.0) return 0;
    volatile double product = tokens * ratio_;
    return static_cast<int>(std::floor(tokens - product));
  }
  static bool merges(int layer, int depth) { return layer > depth / 2; }

  int predict_tokens(int, int, int tokens, int) const override { return tokens - removed(tokens); }

  double matching_macs(int tokens, int, int, int key_dim, int) const override {
    return static_cast<double>((tokens + 1) / 2) * (tokens / 2) * key_dim;  // A x B similarities, as ToMe
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (ctx.distill_token)
      fail(spec(),
           "distilled models are not supported (the released ToFu neither protects nor keeps the "
           "distillation token)");
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1);
    const int64_t r = removed(static_cast<int>(N));
    ReductionPlan plan;
    plan.tokens = N;
    if (r <= 0) return plan;
    const bool merge = merges(ctx.layer, ctx.depth);
    const reduce::RowBest best =
        reduce::best_b(reduce::normalize(ctx.keys_mean), ctx.prefix_tokens > 0, false, ctx.record_margins && merge);
    const at::Tensor edge_idx = best.value.argsort(-1, /*descending=*/true);
    const int64_t Na = best.value.size(1), Nb = N - Na, n_unm = Na - r;
    const at::Tensor unm_idx = std::get<0>(edge_idx.slice(1, r).sort(1));  // position order, CLS first
    const at::Tensor src_idx = edge_idx.slice(1, 0, r);
    const at::Tensor dst_idx = best.index.gather(1, src_idx);
    const auto opts = ctx.x.options().dtype(at::kLong);
    at::Tensor dest_a = at::empty({B, Na}, opts);
    dest_a.scatter_(1, unm_idx, at::arange(n_unm, opts).expand({B, n_unm}));
    dest_a.scatter_(1, src_idx, merge ? dst_idx + n_unm : at::full({B, r}, -1, opts));
    plan.dest = at::empty({B, N}, opts);
    const reduce::AbSplit dest = reduce::alternate(plan.dest);
    dest.a.copy_(dest_a);
    dest.b.copy_((at::arange(Nb, opts) + n_unm).expand({B, Nb}));
    plan.tokens = n_unm + Nb;

    // Copies (prune) or plain means (merge) of each slot's members: weights 1.
    const at::Tensor ones = at::ones({B, N}, ctx.x.options());
    plan.x = apply_plan(ctx.x, ones, plan.dest, plan.tokens).first;
    if (merge) {
      const at::Tensor norms = ctx.x.norm(2, {-1});  // [B,N]
      const reduce::AbSplit n = reduce::alternate(norms);
      const at::Tensor own = n.b.contiguous();  // each B token's norm before the merge
      // largest member norm of each B slot: its own, or one of the A tokens it receives
      const at::Tensor receives = dst_idx.unsqueeze(2) == at::arange(Nb, opts).view({1, 1, Nb});  // [B,r,Nb]
      const at::Tensor src_norms = n.a.gather(1, src_idx).unsqueeze(2).expand({B, r, Nb});
      const at::Tensor top = at::maximum(
          own,
          at::where(receives, src_norms, at::full({}, -std::numeric_limits<float>::infinity(), own.options())).amax(1));
      at::Tensor b_slots = plan.x.slice(1, n_unm);
      b_slots.copy_(b_slots / own.unsqueeze(2) * top.unsqueeze(2));
    }
    if (ctx.record_margins) {  // A tokens decide: the cut of the r best edges (and in merge blocks their B)
      plan.margin = at::full({B, N}, std::numeric_limits<float>::infinity(), best.value.options());
      reduce::alternate(plan.margin)
          .a.copy_(merge ? reduce::bipartite_margin(best, edge_idx, r) : reduce::cut_margin(best.value, edge_idx, r));
    }
    return plan;
  }

 private:
  double ratio_;
};

}  // namespace

std::unique_ptr<Reducer> make_tofu(ReducerSpec& spec) {
  if (!spec.has("ratio"))
    fail("method spec '" + spec.text() + "'", "tofu needs ratio= (keep ratio, e.g. tofu:ratio=0.9)");
  // Above 0.5: at 0.5 the released code's r reaches half the tokens and CLS itself would go.
  const double ratio = spec.get_double("ratio", 1.0, 0.0, 1.0);
  if (!(ratio > 0.5))
    fail("method spec '" + spec.text() + "'", "tofu ratio=" + reduce::format_number(ratio) +
                                                  " must be above 0.5 (the released code removes at most half the "
                                                  "tokens; at 0.5 CLS itself is merged)");
  return std::make_unique<Tofu>(ratio);
}

}  // namespace ms
