// ToMe: Token Merging (Bolya et al., ICLR 2023), bipartite soft matching as in the released tome/merge.py.
//
// Tokens alternate into A (even positions) and B (odd). Each A keeps its most similar B by cosine
// similarity of the keys averaged over heads; the r best of those edges merge. CLS (and the DeiT
// distillation token) never merge. Output order: unmerged A sorted by position (CLS first), then all B.
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

namespace ms {
namespace {

class Tome final : public Reducer {
 public:
  Tome(int r, double inflect, std::vector<int> schedule, bool prop_attn)
      : r_(r), inflect_(inflect), schedule_(std::move(schedule)), prop_attn_(prop_attn) {}

  std::string spec() const override {
    std::string s = "tome:";
    if (!schedule_.empty()) {
      s += "schedule=" + reduce::format_list(schedule_);
    } else {
      s += "r=" + std::to_string(r_);
      if (inflect_ != 0) s += ",inflect=" + reduce::format_number(inflect_);
    }
    if (!prop_attn_) s += ",prop_attn=0";
    return s;
  }

  bool proportional_attention() const override { return prop_attn_; }

  // ToMe's parse_r: a list is padded with zeros; (r, inflect) is int(lo + (hi - lo) / (L - 1) * l) with
  // lo = int(r (1 - inflect)), hi = 2r - lo; a constant r is inflect = 0.
  int requested_r(int layer, int depth) const {
    if (!schedule_.empty()) return layer < static_cast<int>(schedule_.size()) ? schedule_[layer] : 0;
    const int lo = static_cast<int>(r_ * (1.0 - inflect_));
    const int hi = 2 * r_ - lo;
    const double step = depth > 1 ? static_cast<double>(hi - lo) / (depth - 1) : 0.0;
    return static_cast<int>(lo + step * layer);
  }

  // r is clamped to half the unprotected tokens.
  static int clamp_r(int r, int tokens, int prefix) { return std::max(0, std::min(r, (tokens - prefix) / 2)); }

  int predict_tokens(int layer, int depth, int tokens, int prefix) const override {
    return tokens - clamp_r(requested_r(layer, depth), tokens, prefix);
  }

  double matching_macs(int tokens, int, int, int key_dim, int) const override {
    return static_cast<double>((tokens + 1) / 2) * (tokens / 2) * key_dim;  // A x B similarities
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1);
    const int wanted = requested_r(ctx.layer, ctx.depth);
    const int r = clamp_r(wanted, static_cast<int>(N), ctx.prefix_tokens);
    ReductionPlan plan;
    plan.tokens = N;
    if (r != wanted) plan.note = "r clamped from " + std::to_string(wanted) + " to " + std::to_string(r);
    if (r <= 0) return plan;

    // The CLS row (A[0]) and the distillation token's column (B[0]) never merge.
    const reduce::RowBest best =
        reduce::best_b(reduce::normalize(ctx.keys_mean), ctx.prefix_tokens > 0, ctx.distill_token, ctx.record_margins);
    const at::Tensor &node_max = best.value, &node_idx = best.index;
    const at::Tensor edge_idx = node_max.argsort(-1, /*descending=*/true);
    const int64_t Na = node_max.size(1), Nb = N - Na;
    const at::Tensor unm_idx =
        ctx.prefix_tokens > 0 ? std::get<0>(edge_idx.slice(1, r).sort(1)) : edge_idx.slice(1, r);  // CLS first
    const at::Tensor src_idx = edge_idx.slice(1, 0, r);
    const at::Tensor dst_idx = node_idx.gather(1, src_idx);
    const int64_t n_unm = Na - r;

    // Slots in ToMe's output order [unm, dst]: unmerged A -> its rank, merged A -> its B's slot.
    const auto opts = ctx.x.options().dtype(at::kLong);
    at::Tensor dest_a = at::empty({B, Na}, opts);
    dest_a.scatter_(1, unm_idx, at::arange(n_unm, opts).expand({B, n_unm}));
    dest_a.scatter_(1, src_idx, dst_idx + n_unm);
    at::Tensor dest_b = (at::arange(Nb, opts) + n_unm).expand({B, Nb});
    if (ctx.distill_token) {
      // ToMe keeps [unm[0], dst[0], unm[1:], dst[1:]] so CLS and the distillation token lead.
      at::Tensor remap = at::arange(n_unm + Nb, opts);
      remap.slice(0, 1, n_unm) += 1;
      remap[n_unm] = 1;
      dest_a = remap.index({dest_a});
      dest_b = remap.index({dest_b});
    }
    plan.dest = at::empty({B, N}, opts);
    const reduce::AbSplit dest = reduce::alternate(plan.dest);
    dest.a.copy_(dest_a);
    dest.b.copy_(dest_b);
    plan.tokens = n_unm + Nb;
    if (ctx.record_margins) {  // A tokens decide (which edges merge, into which B); B tokens decide nothing
      plan.margin = at::full({B, N}, std::numeric_limits<float>::infinity(), node_max.options());
      reduce::alternate(plan.margin).a.copy_(reduce::bipartite_margin(best, edge_idx, r));
    }
    return plan;
  }

 private:
  int r_;
  double inflect_;
  std::vector<int> schedule_;
  bool prop_attn_;
};

}  // namespace

std::unique_ptr<Reducer> make_tome(ReducerSpec& spec) {
  std::vector<int> schedule = spec.get_int_list("schedule");
  const bool has_r = spec.has("r");
  const int r = spec.get_int("r", 0, 0, 100000);
  const double inflect = spec.get_double("inflect", 0.0, -1.0, 1.0);
  const bool prop_attn = spec.get_bool("prop_attn", true);
  if (schedule.empty() && !has_r) fail("method spec '" + spec.text() + "'", "tome needs r=N or schedule=a;b;...");
  if (!schedule.empty() && has_r) fail("method spec '" + spec.text() + "'", "give r= or schedule=, not both");
  return std::make_unique<Tome>(r, inflect, std::move(schedule), prop_attn);
}

}  // namespace ms
