// LTMP: Learned Thresholds token Merging and Pruning (Bonnaerens & Dambre, 2023), inference with hard masks.
//
// In block l, after attention:
//  1. merge: tokens alternate into A (even positions) and B (odd), as in ToMe; each A finds its most similar
//     B by cosine similarity of the keys averaged over heads, and merges into it when that similarity exceeds
//     the learned merge threshold (no fixed r: the count depends on the image). CLS never merges.
//  2. prune: importance = attention received, averaged over heads and queries; a merged token takes its
//     members' maximum. Tokens whose importance does not exceed the learned prune threshold are dropped.
// Output order: [CLS, (distillation token,) unmerged A, B] minus the pruned tokens. Proportional attention
// (log size on the keys) as in ToMe and LTMP's code. Thresholds: `mergescope-cli calibrate --method ltmp`,
// LTMP's checkpoints (blocks.{l}.merge_masker.threshold), or merge=V,prune=V for all blocks.
#include "error.h"
#include "learned.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace ms {
namespace {

class Ltmp final : public Reducer {
 public:
  explicit Ltmp(reduce::LearnedSpec spec) : spec_(std::move(spec)) {}

  std::string spec() const override { return spec_.canonical; }
  bool proportional_attention() const override { return true; }
  bool wants_attention() const override { return true; }
  int predict_tokens(int, int, int, int) const override { return -1; }  // image-dependent
  double matching_macs(int tokens, int, int, int key_dim, int) const override {
    return static_cast<double>((tokens + 1) / 2) * (tokens / 2) * key_dim;  // A x B similarities, as ToMe
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (thresholds_.depth() != ctx.depth) thresholds_ = spec_.resolve(ctx.depth);
    const double merge_theta = thresholds_.merge[ctx.layer], prune_theta = thresholds_.prune[ctx.layer];
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1), Na = (N + 1) / 2, Nb = N / 2;
    const int prefix = ctx.prefix_tokens;
    const at::Tensor importance = reduce::attention_importance(*ctx.attn).to(at::kDouble).contiguous();

    // Best B for every A (CLS row and distillation-token column excluded), as ToMe's bipartite step.
    constexpr double inf = std::numeric_limits<double>::infinity();
    at::Tensor node_max = at::full({B, Na}, -inf, at::kDouble);
    at::Tensor node_idx = at::zeros({B, Na}, at::kLong);
    at::Tensor node_gap = at::full({B, Na}, inf, at::kDouble);  // best - second best B (margins only)
    if (Nb > 0) {
      const reduce::RowBest best =
          reduce::best_b(reduce::normalize(ctx.keys_mean), prefix > 0, ctx.distill_token, ctx.record_margins);
      node_max = best.value.to(at::kDouble).contiguous();
      node_idx = best.index.contiguous();
      if (ctx.record_margins) node_gap = best.gap.to(at::kDouble).contiguous();
    }
    auto imp = importance.accessor<double, 2>();
    auto nmax = node_max.accessor<double, 2>();
    auto nidx = node_idx.accessor<int64_t, 2>();
    // Per token, for the prune margins: the importance of the slot it ends in (NaN for protected slots).
    const at::Tensor slot_importance_of =
        ctx.record_margins ? at::full({B, N}, std::nan(""), at::kDouble) : at::Tensor();

    ReductionPlan plan;
    plan.dest = at::empty({B, N}, at::TensorOptions().dtype(at::kLong));
    auto dest = plan.dest.accessor<int64_t, 2>();
    int merged_total = 0, pruned_total = 0;
    for (int64_t b = 0; b < B; ++b) {
      // Output slots before pruning: [CLS, distillation token, unmerged A, remaining B].
      std::vector<int64_t> slot(N, -1);
      std::vector<double> slot_importance;
      std::vector<bool> slot_protected;
      auto add_slot = [&](int64_t t, bool protect) {
        slot[t] = static_cast<int64_t>(slot_importance.size());
        slot_importance.push_back(imp[b][t]);
        slot_protected.push_back(protect);
      };
      auto is_merged = [&](int64_t t) { return t % 2 == 0 && t >= prefix && nmax[b][t / 2] > merge_theta; };
      if (prefix > 0) add_slot(0, true);
      if (ctx.distill_token) add_slot(1, true);
      for (int64_t t = 0; t < N; t += 2)
        if (slot[t] < 0 && !is_merged(t)) add_slot(t, t < prefix);
      for (int64_t t = 1; t < N; t += 2)
        if (slot[t] < 0) add_slot(t, t < prefix);
      for (int64_t t = 0; t < N; t += 2)
        if (is_merged(t)) {
          const int64_t into = slot[2 * nidx[b][t / 2] + 1];
          slot[t] = into;
          slot_importance[into] = std::max(slot_importance[into], imp[b][t]);  // a merged token: its members' max
          ++merged_total;
        }
      // Prune on the merged importance; renumber the surviving slots in order.
      std::vector<int64_t> renumber(slot_importance.size(), -1);
      int64_t kept = 0;
      for (size_t s = 0; s < slot_importance.size(); ++s)
        if (slot_protected[s] || slot_importance[s] > prune_theta)
          renumber[s] = kept++;
        else
          ++pruned_total;
      for (int64_t t = 0; t < N; ++t) dest[b][t] = renumber[slot[t]];
      if (ctx.record_margins) {
        auto of = slot_importance_of.accessor<double, 2>();
        for (int64_t t = 0; t < N; ++t)
          if (!slot_protected[slot[t]]) of[b][t] = slot_importance[slot[t]];
      }
      if (b > 0 && kept != plan.tokens)
        fail("ltmp", "images of one batch keep different token counts; run them one at a time (the engine does)");
      plan.tokens = kept;
    }
    // Even when nothing merges the order changes to [unmerged A, B] (as LTMP's code), which sets the next
    // block's A/B split, so the plan is always applied.
    if (ctx.record_margins) {
      // Merge: an A token's best similarity vs the merge threshold (and, once merged, the choice of its B);
      // prune: its slot's importance vs the prune threshold, times N (importance relative to uniform attention
      // 1/N) so that it reads on the same scale as a similarity. NaN (no such decision) reads as +inf.
      at::Tensor merge_margin = reduce::threshold_margin(node_max, merge_theta, 1.0);
      merge_margin = at::where(node_max > merge_theta, at::minimum(merge_margin, node_gap), merge_margin);
      at::Tensor margin = at::full({B, N}, inf, at::kDouble);
      reduce::alternate(margin).a.slice(1, prefix > 0 ? 1 : 0).copy_(merge_margin.slice(1, prefix > 0 ? 1 : 0));
      margin = at::minimum(margin, reduce::threshold_margin(slot_importance_of, prune_theta, static_cast<double>(N)));
      plan.margin = margin.to(at::kFloat);
    }
    if (merged_total || pruned_total)
      plan.note = std::to_string(merged_total) + " merged, " + std::to_string(pruned_total) + " pruned";
    return plan;
  }

 private:
  reduce::LearnedSpec spec_;
  LearnedThresholds thresholds_;
};

}  // namespace

std::unique_ptr<Reducer> make_ltmp(ReducerSpec& spec) {
  return std::make_unique<Ltmp>(reduce::parse_learned_spec(spec, "ltmp"));
}

}  // namespace ms
