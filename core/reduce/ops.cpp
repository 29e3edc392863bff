#include "ops.h"

#include <ATen/ATen.h>

#include <limits>

namespace ms::reduce {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// -inf - -inf is NaN: a decision between two excluded entries, which is no decision at all.
at::Tensor nan_to_inf(const at::Tensor& t) { return at::where(at::isnan(t), at::full({}, kInf, t.options()), t); }

}  // namespace

RowBest row_best(const at::Tensor& scores, bool with_gap) {
  RowBest out;
  std::tie(out.value, out.index) = scores.max(-1);
  if (!with_gap) return out;
  if (scores.size(-1) < 2) {
    out.gap = at::full_like(out.value, kInf);
    return out;
  }
  at::Tensor others = scores.clone();
  others.scatter_(-1, out.index.unsqueeze(-1), -kInf);
  out.gap = nan_to_inf(out.value - others.amax(-1));
  return out;
}

at::Tensor cut_margin(const at::Tensor& values, const at::Tensor& order, int64_t k) {
  const int64_t n = values.size(1);
  if (k <= 0 || k >= n) return at::full_like(values, kInf);
  const at::Tensor sorted = values.gather(1, order);
  const at::Tensor best_unchosen = sorted.slice(1, k, k + 1), worst_chosen = sorted.slice(1, k - 1, k);
  at::Tensor by_rank = at::empty_like(sorted);
  by_rank.slice(1, 0, k).copy_(sorted.slice(1, 0, k) - best_unchosen);
  by_rank.slice(1, k).copy_(worst_chosen - sorted.slice(1, k));
  return at::empty_like(values).scatter_(1, order, nan_to_inf(by_rank));
}

at::Tensor neighbour_gap(const at::Tensor& values, const at::Tensor& order, int64_t limit) {
  at::Tensor out = at::full_like(values, kInf);
  if (limit < 2) return out;
  const at::Tensor head = order.slice(1, 0, limit);
  const at::Tensor sorted = values.gather(1, head);
  const at::Tensor step = nan_to_inf(sorted.slice(1, 0, limit - 1) - sorted.slice(1, 1, limit));  // >= 0
  at::Tensor by_rank = at::full_like(sorted, kInf);
  by_rank.slice(1, 0, limit - 1).copy_(step);                                                    // gap below
  by_rank.slice(1, 1, limit).copy_(at::minimum(by_rank.slice(1, 1, limit), step));                // gap above
  return out.scatter_(1, head, by_rank);
}

at::Tensor bipartite_margin(const RowBest& best, const at::Tensor& edge_order, int64_t r) {
  const at::Tensor cut = cut_margin(best.value, edge_order, r);
  const at::Tensor merged = at::zeros_like(cut, at::kBool).scatter_(1, edge_order.slice(1, 0, r), true);
  return at::where(merged, at::minimum(cut, best.gap), cut);
}

at::Tensor threshold_margin(const at::Tensor& values, double threshold, double scale) {
  return nan_to_inf((values - threshold).abs() * scale);
}

}  // namespace ms::reduce
