#include "ops.h"

#include "cuda/fused_kernels.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <limits>

namespace ms::reduce {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kFusedMaxDim = 256;  // the fused kernels hold one key row in shared memory

// -inf - -inf is NaN: a decision between two excluded entries, which is no decision at all.
at::Tensor nan_to_inf(const at::Tensor& t) { return at::where(at::isnan(t), at::full({}, kInf, t.options()), t); }

// The fused CUDA kernels take float rows of at most kFusedMaxDim; anything else stays on the ATen path.
// MERGESCOPE_FUSED=0 keeps CUDA tensors on the ATen path too (benchmarks with and without the kernels).
bool use_fused_cuda(const at::Tensor& t) {
  if (!t.is_cuda() || t.scalar_type() != at::kFloat || t.size(-1) > kFusedMaxDim || !fused::cuda_kernels_built())
    return false;
  const char* fused = std::getenv("MERGESCOPE_FUSED");
  return !(fused && std::strcmp(fused, "0") == 0);
}

}  // namespace

at::Tensor normalize(const at::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

at::Tensor similarities(const at::Tensor& a, const at::Tensor& b) { return at::bmm(a, b.transpose(1, 2)); }

AbSplit alternate(const at::Tensor& x) {
  const int64_t n = x.size(1);
  return {x.slice(1, 0, n, 2), x.slice(1, 1, n, 2)};
}

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

RowBest best_b(const at::Tensor& metric, bool protect_cls, bool protect_distill, bool with_gap) {
  const AbSplit ab = alternate(metric);
  if (!with_gap && use_fused_cuda(metric)) {
    // Pointers into device memory; the kernel runs on the default stream, which orders it after ATen's work there.
    const at::Tensor a = ab.a.contiguous(), b = ab.b.contiguous();
    const int64_t B = a.size(0), Na = a.size(1), Nb = b.size(1), D = a.size(2);
    RowBest out;
    out.value = at::empty({B, Na}, a.options());
    out.index = at::empty({B, Na}, a.options().dtype(at::kLong));
    fused::bipartite_match_cuda(a.data_ptr<float>(), b.data_ptr<float>(), B, Na, Nb, D, protect_cls, protect_distill,
                                out.index.data_ptr<int64_t>(), out.value.data_ptr<float>());
    return out;
  }
  at::Tensor scores = similarities(ab.a, ab.b);
  if (protect_cls) scores.select(1, 0).fill_(-kInf);
  if (protect_distill) scores.select(2, 0).fill_(-kInf);
  return row_best(scores, with_gap);
}

RowBest best_b_among(const at::Tensor& sim, const at::Tensor& a_idx, const at::Tensor& b_idx, bool with_gap) {
  // Gathered from the full matrix rather than recomputed for the subsets: a smaller GEMM may round differently.
  const int64_t B = sim.size(0), T = sim.size(1), Na = a_idx.size(1), Nb = b_idx.size(1);
  const at::Tensor cols = sim.gather(2, b_idx.unsqueeze(1).expand({B, T, Nb}));
  return row_best(cols.gather(1, a_idx.unsqueeze(2).expand({B, Na, Nb})), with_gap);
}

double energy_margin(EnergyFormula formula, int layer, int depth) {
  const double m0 = formula == EnergyFormula::Paper ? 0.9 : 0.75;
  return m0 - m0 * layer / depth;
}

at::Tensor energy(const at::Tensor& unit_keys, double margin, EnergyFormula formula, const at::Tensor& sim) {
  if (formula == EnergyFormula::Code && use_fused_cuda(unit_keys)) {
    const at::Tensor k = unit_keys.contiguous();
    at::Tensor out = at::empty({k.size(0), k.size(1)}, k.options());
    fused::pitome_energy_cuda(k.data_ptr<float>(), k.size(0), k.size(1), k.size(2), static_cast<float>(margin), 1.0f,
                              out.data_ptr<float>());
    return out;
  }
  const at::Tensor s = sim.defined() ? sim : similarities(unit_keys, unit_keys);
  if (formula == EnergyFormula::Code) return at::elu(s - margin).mean(-1);
  // f_m: identity above the margin, exp(x - m) - 1 below; the diagonal (self) is left out of the sum but not of T.
  at::Tensor f = at::where(s >= margin, s, at::exp(s - margin) - 1.0);
  f.diagonal(0, 1, 2).zero_();
  return f.sum(-1) / static_cast<double>(s.size(1));
}

at::Tensor with_prefix(const at::Tensor& values, int64_t prefix, double fill) {
  at::Tensor out = at::full({values.size(0), values.size(1) + prefix}, fill, values.options());
  out.slice(1, prefix).copy_(values);
  return out;
}

std::vector<uint64_t> content_keys(const at::Tensor& batch) {
  const at::Tensor values = batch.to(at::kCPU, at::kFloat).contiguous();
  const int64_t n = values.size(0), per_entry = n > 0 ? values.numel() / n : 0;
  const float* data = values.data_ptr<float>();
  std::vector<uint64_t> keys(n);
  for (int64_t b = 0; b < n; ++b) {
    uint64_t h = 14695981039346656037ull;
    for (int64_t i = 0; i < per_entry; ++i) {
      uint32_t bits;
      std::memcpy(&bits, data + b * per_entry + i, sizeof bits);
      h = (h ^ bits) * 1099511628211ull;
    }
    keys[b] = h;
  }
  return keys;
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
  by_rank.slice(1, 0, limit - 1).copy_(step);                                       // gap below
  by_rank.slice(1, 1, limit).copy_(at::minimum(by_rank.slice(1, 1, limit), step));  // gap above
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
