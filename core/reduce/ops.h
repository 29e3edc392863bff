// Operations shared by the reducers: matching and the margins of their decisions.
//
// A margin is how far a decision was from going the other way, in the units the method decides in
// (cosine similarity, PiToMe energy, attention relative to uniform). The trace records one margin per
// token entering a block (the smallest among the decisions that token's fate depended on; +inf when it
// depended on none), so a comparison with a reference implementation can tell a real difference from a
// near-tie that float32 rounding may break either way (analysis/trace_compare.h). Margins are >= 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace ms::reduce {

// Best column of every row of scores [B,n,m] (ties to the lowest index, as torch.max), and with
// `with_gap` the gap best - second best (+inf for a single column).
struct RowBest {
  at::Tensor value;  // [B,n]
  at::Tensor index;  // [B,n] int64
  at::Tensor gap;    // [B,n], defined only with_gap
};
RowBest row_best(const at::Tensor& scores, bool with_gap);

// `order` [B,n] sorts `values` [B,n] in descending order and its first k entries are chosen. For every
// element (in the original positions): chosen -> value - best unchosen, unchosen -> worst chosen - value.
// +inf where there is no other side (k <= 0 or k >= n) or the value is -inf (a protected row).
at::Tensor cut_margin(const at::Tensor& values, const at::Tensor& order, int64_t k);

// Along `order` (descending sort of `values`), the gap of each of the first `limit` elements to its
// neighbours among those `limit` (the smaller of the two); elements at positions >= limit get +inf. An
// alternating A/B split along the order swaps roles when two neighbours swap places.
at::Tensor neighbour_gap(const at::Tensor& values, const at::Tensor& order, int64_t limit);

// Margins of a bipartite step for the A tokens: the cut between the r best edges (`edge_order` sorts
// best.value descending) and the rest, and for the r merged ones also the choice of their B.
at::Tensor bipartite_margin(const RowBest& best, const at::Tensor& edge_order, int64_t r);

// |values - threshold| * scale, the margin of a fixed-threshold decision.
at::Tensor threshold_margin(const at::Tensor& values, double threshold, double scale);

}  // namespace ms::reduce
