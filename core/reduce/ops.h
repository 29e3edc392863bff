// Operations shared by the reducers, the engine's trace, calibration and the analysis: every formula the
// methods have in common is written once here (unit rows, similarities, ToMe's A/B split and best-B matching,
// both PiToMe energies and their margin schedule), and so are the margins of their decisions.
//
// Device: CPU tensors take the ATen path, which is the reference (the golden tests run it). CUDA tensors take the
// fused kernels of core/cuda/fused_kernels.h where the build has them and the op has one (the released PiToMe
// energy; best-B matching without the second-best gap); everything else runs ATen on any device.
//
// A margin is how far a decision was from going the other way, in the units the method decides in
// (cosine similarity, PiToMe energy, attention relative to uniform). The trace records one margin per
// token entering a block (the smallest among the decisions that token's fate depended on; +inf when it
// depended on none), so a comparison with a reference implementation can tell a real difference from a
// near-tie that float32 rounding may break either way (analysis/trace_compare.h). Margins are >= 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace ms::reduce {

// ---- Formulas

// Rows of `x` [..., D] scaled to unit L2 norm, the norm clamped below at 1e-12 (PiToMe's F.normalize). ToMe's
// released code divides by the plain norm; the two agree bit for bit on every row whose norm is at least 1e-12
// (the golden tests pass either way), and the clamp keeps a zero row at zero instead of NaN.
at::Tensor normalize(const at::Tensor& x);

// Cosine similarities of unit rows a [B,n,D] and b [B,m,D]: [B,n,m].
at::Tensor similarities(const at::Tensor& a, const at::Tensor& b);

// ToMe's A/B split along dim 1: even positions are A, odd positions B (views of `x`, so writing into them
// writes into `x`). PiToMe splits its energy order the same way.
struct AbSplit {
  at::Tensor a, b;
};
AbSplit alternate(const at::Tensor& x);

// Best column of every row of scores [B,n,m] (ties to the lowest index, as torch.max), and with
// `with_gap` the gap best - second best (+inf for a single column).
struct RowBest {
  at::Tensor value;  // [B,n]
  at::Tensor index;  // [B,n] int64
  at::Tensor gap;    // [B,n], defined only with_gap
};
RowBest row_best(const at::Tensor& scores, bool with_gap);

// ToMe's matching step on unit keys `metric` [B,N,D]: split alternately (A even, B odd), every A's most similar
// B (row_best of A B^T). With `protect_cls` A[0] (CLS) scores -inf everywhere, with `protect_distill` B[0] (the
// distillation token) is never chosen. CUDA tensors without `with_gap` run the fused kernel.
RowBest best_b(const at::Tensor& metric, bool protect_cls, bool protect_distill, bool with_gap);

// The same step for A and B given as index sets [B,|A|], [B,|B|] into a full similarity matrix sim [B,T,T]
// (PiToMe's split along its energy order): every A's most similar B among b_idx, as positions into b_idx.
RowBest best_b_among(const at::Tensor& sim, const at::Tensor& a_idx, const at::Tensor& b_idx, bool with_gap);

// The two PiToMe energies (Tran et al., NeurIPS 2024) of tokens with similarities s_ij and margin m:
//  - Paper (Eq. 4): E_i = 1/T sum_{j != i} f_m(s_ij), f_m(x) = x if x >= m else exp(x - m) - 1 (alpha = 1);
//  - Code (the released merge.py): E_i = mean_j ELU(s_ij - m), j = i included.
enum class EnergyFormula { Paper, Code };

// Margin of block `layer` of `depth`: m_l = m0 - m0 l / L with m0 = 0.9 (paper) or 0.75 (released code, DeiT/MAE).
double energy_margin(EnergyFormula formula, int layer, int depth);

// Energy [B,T] of every row of unit keys [B,T,D]. `sim` = similarities(keys, keys) when the caller already has it
// (the ATen path reuses it). CUDA tensors with the Code formula run the fused kernel (no T x T matrix).
at::Tensor energy(const at::Tensor& unit_keys, double margin, EnergyFormula formula, const at::Tensor& sim = {});

// Per-token values [B, N - prefix] of the non-prefix tokens as [B, N], the `prefix` leading tokens set to `fill`
// (NaN for energies, +inf for margins: prefix tokens decide nothing).
at::Tensor with_prefix(const at::Tensor& values, int64_t prefix, double fill);

// A key per entry of dim 0 of `batch` (an image [3,H,W] of the engine's input) from its values (FNV-1a over the
// float bits): the same for an image at any batch size, offset or position in its batch, since preprocessing is
// per image. Random decisions seeded from it make a spec a pure function of (model, image, spec).
std::vector<uint64_t> content_keys(const at::Tensor& batch);

// DCT's transforms (reduce/dct.cpp), in the arithmetic of the released code: orthonormal DCT-II of every row of
// u [R,N] float32, orthonormal DCT-III of every row of c [R,K], and the block transform of x [B,N,C]: CLS kept, the
// N - 1 patch tokens replaced by the k-token low-pass of the DCT along the token axis, rounded to float16 values.
at::Tensor dct2_ortho(const at::Tensor& u);
at::Tensor dct3_ortho(const at::Tensor& c);
at::Tensor dc_transform(const at::Tensor& x, int64_t k);

// ---- Margins

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
