#include "spectral_distance.h"

#include "error.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ms {
namespace {

Spectrum dense_spectrum(const Eigen::MatrixXd& L, const SdOptions& o) {
  Spectrum s;
  const int n = static_cast<int>(L.rows());
  if (n <= o.dense_limit || 2 * o.partial_k + 2 >= n) {
    s.low = eigenvalues(L);
    return s;
  }
  s.partial = true;
  s.low = extreme_eigenvalues(L, o.partial_k, false);
  s.high = extreme_eigenvalues(L, o.partial_k, true);
  return s;
}

Spectrum spectrum_of(const Eigen::MatrixXd& B, const Eigen::VectorXd& signs, const Eigen::MatrixXd& W,
                     const SdOptions& o) {
  if (B.size() > 0) {
    Spectrum s;
    s.low = low_rank_laplacian_spectrum(B, signs);
    if (s.low.size() == B.rows()) return s;  // else a node without edges: the dense path handles it
    return dense_spectrum(normalized_laplacian(B * signs.asDiagonal() * B.transpose()), o);
  }
  return dense_spectrum(normalized_laplacian(W), o);
}

// The lifted spectrum from the coarse one (Lemma 1), in the same form as `like`.
Spectrum lifted_like(const Spectrum& coarse, int coarse_n, int original_n, const Spectrum& like) {
  Spectrum out;
  out.partial = like.partial;
  if (!like.partial) {
    out.low = lifted_spectrum_from_coarse(coarse.low, original_n);
    return out;
  }
  std::vector<double> values(coarse.low.data(), coarse.low.data() + coarse.low.size());
  if (coarse.partial) values.insert(values.end(), coarse.high.data(), coarse.high.data() + coarse.high.size());
  const int k = static_cast<int>(like.low.size());
  values.insert(values.end(), std::min(original_n - coarse_n, k), 1.0);  // enough ones to fill either end
  std::sort(values.begin(), values.end());
  out.low = Eigen::Map<Eigen::VectorXd>(values.data(), k);
  out.high = Eigen::Map<Eigen::VectorXd>(values.data() + values.size() - k, k);
  return out;
}

double distance(const Spectrum& a, const Spectrum& b) {
  double d = spectral_distance(a.low, b.low);
  if (a.partial) d += spectral_distance(a.high, b.high);
  return d;
}

// Rows [prefix, tokens_in) of a trace layer's keys.
const float* patch_keys(const LayerTrace& lt, int prefix) {
  if (lt.keys.empty()) fail("spectral distance", "the trace has no keys (RunOptions::trace_keys)");
  return lt.keys.data() + static_cast<size_t>(prefix) * lt.key_dim;
}

std::optional<Partition> partition_unless_pruned(const std::vector<int>& ids) {
  if (std::any_of(ids.begin(), ids.end(), [](int id) { return id < 0; })) return std::nullopt;
  return make_partition(ids);
}

}  // namespace

TokenGraph::TokenGraph(const float* keys, int n, int dim, const SdOptions& options) : options_(options) {
  if (options.graph.kernel == GraphKernel::OneMinusCos) {
    B_ = one_minus_cos_factor(keys, n, dim);
    signs_ = one_minus_cos_signs(dim);
  } else {
    W_ = token_graph(keys, n, dim, options.graph);
  }
  spectrum_ = spectrum_of(B_, signs_, W_, options_);
}

int TokenGraph::nodes() const { return static_cast<int>(B_.size() > 0 ? B_.rows() : W_.rows()); }

Eigen::MatrixXd TokenGraph::dense() const {
  return B_.size() > 0 ? Eigen::MatrixXd(B_ * signs_.asDiagonal() * B_.transpose()) : W_;
}

double TokenGraph::sd(const Partition& p, Eigen::VectorXd* lifted) const {
  const Spectrum coarse = B_.size() > 0 ? spectrum_of(coarsen_factor(B_, p), signs_, W_, options_)
                                        : spectrum_of(B_, signs_, coarsen_sum(W_, p), options_);
  const Spectrum l = lifted_like(coarse, p.groups, nodes(), spectrum_);
  if (lifted && !l.partial) *lifted = l.low;
  return distance(spectrum_, l);
}

TokenGraph sd_graph(const ImageTrace& trace, SdView view, int layer, const SdOptions& options) {
  const LayerTrace& lt = trace.layers.at(view == SdView::Theorem ? 0 : layer);
  const int prefix = trace.prefix_tokens;
  return TokenGraph(patch_keys(lt, prefix), lt.tokens_in - prefix, lt.key_dim, options);
}

std::vector<int> layer_partition(const ImageTrace& trace, int layer) {
  const LayerTrace& lt = trace.layers.at(layer);
  const int P = trace.prefix_tokens;
  std::vector<int> out(std::max(0, lt.tokens_in - P), -1);
  for (int t = 0; t < trace.original_tokens; ++t) {
    const int in = layer == 0 ? t : trace.layers[layer - 1].cluster_of_token[t];
    if (in >= P) out[in - P] = lt.cluster_of_token[t];
  }
  return out;
}

std::optional<Partition> sd_partition(const ImageTrace& trace, SdView view, int layer) {
  if (view == SdView::Layer) return partition_unless_pruned(layer_partition(trace, layer));
  const std::vector<int32_t>& cot = trace.layers.at(layer).cluster_of_token;
  return partition_unless_pruned(std::vector<int>(cot.begin() + trace.prefix_tokens, cot.end()));
}

TraceSpectralDistance trace_spectral_distance(const ImageTrace& trace, SdView view, const SdOptions& options) {
  TraceSpectralDistance out;
  std::optional<TokenGraph> g0;
  if (view == SdView::Theorem && !trace.layers.empty()) g0.emplace(sd_graph(trace, view, 0, options));
  for (int l = 0; l < static_cast<int>(trace.layers.size()); ++l) {
    std::optional<TokenGraph> own;
    const TokenGraph& g = g0 ? *g0 : own.emplace(sd_graph(trace, view, l, options));
    const std::optional<Partition> p = sd_partition(trace, view, l);
    Eigen::VectorXd lifted;
    out.sd.push_back(p ? g.sd(*p, &lifted) : std::numeric_limits<double>::quiet_NaN());
    out.original.push_back(g.spectrum().partial ? Eigen::VectorXd() : g.spectrum().low);
    out.lifted.push_back(lifted);
  }
  return out;
}

}  // namespace ms
