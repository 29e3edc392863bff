// Spectral and energy analysis of traces, accumulated over images: for every method and layer the spectral
// distance in the two views, baselines that give it meaning, eigenvalue curves and energy histograms.
//
// Views (PiToMe §3.3):
//  - theorem: the graph of block 0's keys over all original patch tokens, coarsened by the cumulative
//    partition after block l (what Theorem 1 talks about);
//  - layer: the graph of block l's input keys, coarsened by that block's own merges.
// Prefix tokens (CLS, distillation) are never merged and are left out of every graph.
#pragma once

#include "spectral.h"
#include "trace.h"

#include <map>
#include <string>
#include <vector>

namespace ms {

struct RunningStat {
  double n = 0, sum = 0, sum_sq = 0;
  void add(double v) {
    ++n;
    sum += v;
    sum_sq += v * v;
  }
  double mean() const { return n ? sum / n : 0; }
  double std() const;  // population standard deviation over images
};

struct EnergyHistogram {
  static constexpr double kLo = -1.0, kHi = 1.0;
  static constexpr int kBins = 100;
  std::vector<double> merged = std::vector<double>(kBins, 0.0), kept = std::vector<double>(kBins, 0.0);
  void add(double energy, bool was_merged);
};

struct MethodSpectra {
  std::string method;
  std::vector<RunningStat> sd_theorem, sd_layer;      // per layer
  std::vector<RunningStat> tokens;                    // tokens leaving each block
  // Per layer: energies of the block's input tokens, all methods by one formula (the released code's,
  // mean_j ELU(cos - m_l), m_l = 0.75 - 0.75 l/L) so that every method's merges read against the same scale.
  std::vector<EnergyHistogram> energy;
  std::vector<RunningStat> mean_energy_merged, mean_energy_kept;
  // Eigenvalue curves at the chosen layer, theorem view: original and lifted, averaged over images.
  std::vector<RunningStat> eig_original, eig_lifted;
};

struct SpectralOptions {
  GraphOptions graph;
  int curve_layer = -1;  // layer whose eigenvalue curves are kept (-1: the middle block)
  unsigned seed = 0;
  bool baselines = true;
  // Graphs with more nodes than this use Spectra for the k smallest and k largest eigenvalues only, and SD is
  // summed over those 2k (the rest of a normalised Laplacian spectrum of these graphs sits near 1).
  int dense_limit = 600;
  int partial_k = 32;
};

class SpectralReport {
 public:
  SpectralReport(std::vector<std::string> methods, int depth, SpectralOptions options);

  // Adds one image: one trace per method (same order as the constructor's list), each recorded with keys
  // and energies. Baselines ("random partition", "k-means") copy the group sizes / counts of `reference`.
  void add_image(const std::vector<ImageTrace>& traces, int reference);

  const std::vector<MethodSpectra>& rows() const { return rows_; }
  int images() const { return images_; }
  int curve_layer() const { return curve_layer_; }
  const SpectralOptions& options() const { return options_; }
  // Largest |spec(L_lift) - (spec(L_coarse) + ones)| seen, for block sums and for block means (Lemma 1).
  double lemma_error_sum() const { return lemma_sum_; }
  double lemma_error_mean() const { return lemma_mean_; }
  bool used_partial_spectra() const { return partial_used_; }

 private:
  MethodSpectra& row(const std::string& name);
  std::vector<std::string> methods_;
  std::vector<MethodSpectra> rows_;
  int depth_, images_ = 0, curve_layer_;
  SpectralOptions options_;
  double lemma_sum_ = 0, lemma_mean_ = 0;
  bool partial_used_ = false;
};

// The released PiToMe code's energy of n tokens with unit-normalised keys, margin m.
std::vector<double> reference_energies(const float* keys, int n, int dim, double margin);

// Partition of block l's input tokens (prefix excluded) by where they go at block l; -1 for pruned tokens.
std::vector<int> layer_partition(const ImageTrace& trace, int layer);

// Writes sd.csv, eigenvalues.csv, energy.csv, tokens.csv, summary.json and the plots (SVG + PNG) into `dir`.
void export_spectral_report(const SpectralReport& report, const std::string& dir, const std::string& model,
                            const std::vector<std::vector<double>>& gmacs_per_layer);

}  // namespace ms
