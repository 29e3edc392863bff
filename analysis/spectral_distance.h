// The spectral distance of PiToMe §3.3 measured on a traced run: the one implementation behind the CLI's spectral
// report (spectral_report.h) and the app's SD plot and readouts (app/gui/session.cpp).
//
// Views, for the partition after block l (0-based, as DESIGN.md's "after block l"):
//  - theorem: the graph of block 0's keys over all original patch tokens, coarsened by the cumulative partition
//    after block l (what Theorem 1 talks about);
//  - layer: the graph of block l's input keys, coarsened by that block's own merges.
// Prefix tokens (CLS, distillation) are never merged and are left out of every graph.
//
// Pruned tokens (ltp, ltmp): SD is undefined (NaN; the app shows "n/a") for a partition that removes tokens, that
// is in the theorem view for every block from the first one that pruned, and in the layer view for each block that
// pruned. Theorem 1 and Lemma 1 are about coarsening, a partition of all N nodes into groups; a pruned token
// belongs to no group. Putting all pruned tokens into one group would invent a merge of unrelated tokens (and its
// SD measures that invention), and restricting to the kept tokens would change the original graph G itself, so
// the numbers would compare different graphs across methods and blocks. Merges before the first pruning are
// measured as for any merging method.
#pragma once

#include "spectral.h"
#include "trace.h"

#include <optional>
#include <vector>

namespace ms {

enum class SdView { Theorem, Layer };

struct SdOptions {
  GraphOptions graph;
  // Graphs with more nodes than this use Spectra for the k smallest and k largest eigenvalues only, and SD is
  // summed over those 2k (the rest of a normalised Laplacian spectrum of these graphs sits near 1). The 1 - cos
  // kernel needs neither: its exact spectrum comes from a (dim + 1)-sized problem at any size.
  int dense_limit = 600;
  int partial_k = 32;
};

// A normalised-Laplacian spectrum, whole (`low` holds every eigenvalue, ascending) or as its k smallest (`low`)
// and k largest (`high`) eigenvalues.
struct Spectrum {
  Eigen::VectorXd low, high;
  bool partial = false;
};

// A token graph over patch keys with its spectrum: for the 1 - cos kernel its low-rank factor (exact spectra
// from a (dim+1)-sized problem, any number of nodes), for the other kernels the dense weights.
class TokenGraph {
 public:
  TokenGraph(const float* keys, int n, int dim, const SdOptions& options);
  int nodes() const;
  const Spectrum& spectrum() const { return spectrum_; }
  Eigen::MatrixXd dense() const;  // the weights W
  // SD between this graph and the one lifted back from its block-sum coarsening by `p` (Lemma 1: the lifted
  // spectrum is the coarse one plus ones). `lifted` receives the whole lifted spectrum when it is whole.
  double sd(const Partition& p, Eigen::VectorXd* lifted = nullptr) const;

 private:
  Eigen::MatrixXd W_;  // dense kernels
  Eigen::MatrixXd B_;  // 1 - cos: W = B diag(signs) B^T
  Eigen::VectorXd signs_;
  SdOptions options_;
  Spectrum spectrum_;
};

// The graph a view measures after block `layer` of a trace recorded with keys (RunOptions::trace_keys).
TokenGraph sd_graph(const ImageTrace& trace, SdView view, int layer, const SdOptions& options);

// The partition a view coarsens that graph by after block `layer`; nullopt where tokens were pruned (see above).
std::optional<Partition> sd_partition(const ImageTrace& trace, SdView view, int layer);

// Block l's input tokens (prefix excluded) by the output token block l sends them to; -1 for pruned tokens.
std::vector<int> layer_partition(const ImageTrace& trace, int layer);

// One view of a whole trace, per block: SD (NaN where undefined), the spectrum of the graph measured and the lifted
// one (both empty where the spectra are partial; lifted also where SD is undefined). The theorem view builds block
// 0's graph once, so its `original` is the same for every block.
struct TraceSpectralDistance {
  std::vector<double> sd;
  std::vector<Eigen::VectorXd> original, lifted;
};
TraceSpectralDistance trace_spectral_distance(const ImageTrace& trace, SdView view, const SdOptions& options);

}  // namespace ms
