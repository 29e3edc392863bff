// Spectral and energy analysis of traces, accumulated over images: for every method and block the spectral
// distance in the two views (spectral_distance.h, which also states the rule for pruned tokens), baselines that
// give it meaning, eigenvalue curves and energy histograms.
#pragma once

#include "spectral_distance.h"
#include "trace.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace ms {

// Mean and spread over images of one statistic. NaN values (an SD that pruning leaves undefined) are not counted,
// so `n` says how many images had it; with none, mean and std are NaN.
struct RunningStat {
  double n = 0, sum = 0, sum_sq = 0;
  void add(double v) {
    if (std::isnan(v)) return;
    ++n;
    sum += v;
    sum_sq += v * v;
  }
  double mean() const { return n ? sum / n : std::nan(""); }
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
  bool mixes_all = false;                         // its tokens mix all patches (dct): no partition, SD undefined
  std::vector<RunningStat> sd_theorem, sd_layer;  // per layer
  std::vector<RunningStat> tokens;                // tokens leaving each block
  // Per layer: energies of the block's input tokens, all methods by one formula (the released code's, as the
  // trace records it with RunOptions::released_energy) so that every method's merges read against the same
  // scale. Tokens the block pruned are neither merged nor kept and are left out.
  std::vector<EnergyHistogram> energy;
  std::vector<RunningStat> mean_energy_merged, mean_energy_kept;
  // Eigenvalue curves at the chosen layer, theorem view: original and lifted, averaged over images.
  std::vector<RunningStat> eig_original, eig_lifted;
};

struct SpectralOptions : SdOptions {
  int curve_layer = -1;  // block whose eigenvalue curves are kept (-1: the middle block)
  unsigned seed = 0;
  bool baselines = true;
};

class SpectralReport {
 public:
  SpectralReport(std::vector<std::string> methods, int depth, SpectralOptions options);

  // Adds one image: one trace per method (same order as the constructor's list), each recorded with keys and
  // the released energy (RunOptions::trace_keys, released_energy). Baselines ("random partition", "k-means")
  // copy the group sizes / counts of `reference`, where its SD is defined.
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
  // The stages of add_image for method m's trace `tr` and block l; `reference` also feeds the baselines.
  void add_theorem(size_t m, int l, const ImageTrace& tr, const TokenGraph& g0, bool reference);
  void add_layer(size_t m, int l, const ImageTrace& tr, bool reference);
  void check_lemma1(const TokenGraph& g0, const Partition& cumulative, const Eigen::VectorXd& lifted);
  unsigned baseline_seed(int l) const;
  std::vector<std::string> methods_;
  std::vector<MethodSpectra> rows_;
  int depth_, images_ = 0, curve_layer_;
  SpectralOptions options_;
  double lemma_sum_ = 0, lemma_mean_ = 0;
  bool partial_used_ = false;
};

// Writes sd.csv, eigenvalues.csv, energy.csv, tokens.csv, summary.json and the plots (SVG + PNG) into `dir`.
void export_spectral_report(const SpectralReport& report, const std::string& dir, const std::string& model,
                            const std::vector<std::vector<double>>& gmacs_per_layer);

}  // namespace ms
