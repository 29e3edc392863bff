// The spectral report's numbers (analysis/spectral_report.h), the project's headline measurement, against spectral
// distances computed here independently (dense weights, explicit N x N lift, Eigen's dense solver; none of
// analysis/spectral*.cpp), on real DeiT-Ti traces of the tench: ToMe (merging) and LTMP with constant thresholds,
// which merges in blocks 0-4 and prunes from block 5 on (SD undefined there). And the app's SD path
// (app/gui/session.cpp) against the CLI report's on the same traces: identical, NaN where undefined.
#include "batch.h"
#include "engine.h"
#include "model.h"
#include "preprocess.h"
#include "reduce/reducer.h"
#include "session.h"
#include "spectral_report.h"
#include "test_util.h"

#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ms {
namespace {

constexpr double kSdTol = 1e-9;  // two double-precision routes to the same SD (sums of ~196 eigenvalue gaps)

// ---- The independent computation: nothing from analysis/.

Eigen::MatrixXd one_minus_cos(const LayerTrace& lt, int prefix) {
  const int n = lt.tokens_in - prefix, d = lt.key_dim;
  Eigen::MatrixXd k(n, d);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) k(i, c) = lt.keys[static_cast<size_t>(prefix + i) * d + c];
  for (int i = 0; i < n; ++i) k.row(i) /= k.row(i).norm();
  Eigen::MatrixXd W = Eigen::MatrixXd::Ones(n, n) - k * k.transpose();
  W.diagonal().setZero();
  return 0.5 * (W + W.transpose());
}

Eigen::VectorXd laplacian_spectrum(const Eigen::MatrixXd& W) {
  const Eigen::VectorXd inv_sqrt = W.rowwise().sum().cwiseSqrt().cwiseInverse();
  Eigen::MatrixXd L = Eigen::MatrixXd::Identity(W.rows(), W.cols()) - inv_sqrt.asDiagonal() * W * inv_sqrt.asDiagonal();
  return Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(0.5 * (L + L.transpose()), Eigen::EigenvaluesOnly)
      .eigenvalues();
}

// SD between W and its block-sum coarsening by `group` lifted back explicitly: W_l[i,j] = W_c[g(i), g(j)] /
// (|g(i)| |g(j)|). NaN when a node has no group (pruned), the rule the report follows.
double independent_sd(const Eigen::MatrixXd& W, const std::vector<int>& group) {
  const int n = static_cast<int>(W.rows());
  std::map<int, int> size;
  for (int g : group) {
    if (g < 0) return std::nan("");
    ++size[g];
  }
  std::map<std::pair<int, int>, double> coarse;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) coarse[{group[i], group[j]}] += W(i, j);
  Eigen::MatrixXd lifted(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      lifted(i, j) = coarse[{group[i], group[j]}] / (static_cast<double>(size[group[i]]) * size[group[j]]);
  return (laplacian_spectrum(W) - laplacian_spectrum(lifted)).cwiseAbs().sum();
}

// Theorem view: the output token each patch token is in after block l.
std::vector<int> cumulative_groups(const ImageTrace& t, int l) {
  const auto& c = t.layers[l].cluster_of_token;
  return std::vector<int>(c.begin() + t.prefix_tokens, c.end());
}

// Layer view: block l's input patch tokens by the output token block l sends them to (-1: pruned).
std::vector<int> block_groups(const ImageTrace& t, int l) {
  const int P = t.prefix_tokens;
  std::vector<int> out(t.layers[l].tokens_in - P, -1);
  for (int tok = 0; tok < t.original_tokens; ++tok) {
    const int in = l == 0 ? tok : t.layers[l - 1].cluster_of_token[tok];
    if (in >= P) out[in - P] = t.layers[l].cluster_of_token[tok];
  }
  return out;
}

// ---- Fixture: traces of the tench with keys and released energies, as `mergescope-cli spectrum` records them.

class SpectralReportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load("deit_tiny_patch16_224");
    const std::string image = test::shared_image("n01440764_tench.JPEG");
    c10::InferenceMode guard;
    const at::Tensor input = load_batch({image}, preprocess_spec(model_->config()));
    RunOptions o;
    o.trace = o.trace_energy = o.released_energy = o.trace_keys = true;
    traces_ = new std::vector<ImageTrace>;
    for (const std::string& spec : methods()) {
      auto reducer = make_reducer(spec);
      traces_->push_back(std::move(run(*model_, input, reducer.get(), o).traces.front()));
    }
  }
  static void TearDownTestSuite() {
    delete traces_;
    traces_ = nullptr;
    model_.reset();
  }
  static std::vector<std::string> methods() { return {"tome:r=13", "ltmp:merge=0.9,prune=0.002"}; }
  static const ImageTrace& tome() { return (*traces_)[0]; }
  static const ImageTrace& ltmp() { return (*traces_)[1]; }

  static std::shared_ptr<const Model> model_;
  static std::vector<ImageTrace>* traces_;
};
std::shared_ptr<const Model> SpectralReportTest::model_;
std::vector<ImageTrace>* SpectralReportTest::traces_ = nullptr;

SpectralReport report_of(const std::vector<ImageTrace>& traces, const std::vector<std::string>& methods, int reference,
                         bool baselines) {
  SpectralOptions o;
  o.baselines = baselines;
  SpectralReport report(methods, 12, o);
  report.add_image(traces, reference);
  return report;
}

// One SD of a one-image report: the mean over the images that had it, or NaN (and no image counted) where none.
void expect_sd(const RunningStat& got, double want, const std::string& where) {
  if (std::isnan(want)) {
    EXPECT_EQ(got.n, 0) << where;
    EXPECT_TRUE(std::isnan(got.mean())) << where << ": " << got.mean();
  } else {
    EXPECT_EQ(got.n, 1) << where;
    EXPECT_NEAR(got.mean(), want, kSdTol) << where;
  }
}

TEST_F(SpectralReportTest, TheLtmpTraceMergesFirstAndPrunesLater) {
  // What the pruning checks below rely on.
  for (int l = 0; l < 5; ++l) EXPECT_TRUE(ltmp().layers[l].pruned.empty()) << "block " << l;
  for (int l = 5; l < 12; ++l) EXPECT_FALSE(ltmp().layers[l].pruned.empty()) << "block " << l;
  EXPECT_LT(ltmp().layers[0].tokens, 197) << "block 0 merges";
}

TEST_F(SpectralReportTest, NumbersEqualIndependentSpectralDistances) {
  const SpectralReport report = report_of(*traces_, methods(), 0, true);
  ASSERT_EQ(report.images(), 1);
  const int P = tome().prefix_tokens;
  const Eigen::MatrixXd W0 = one_minus_cos(tome().layers[0], P);
  for (size_t m = 0; m < methods().size(); ++m) {
    const ImageTrace& t = (*traces_)[m];
    const MethodSpectra& row = report.rows()[m];
    ASSERT_EQ(row.method, methods()[m]);
    for (int l = 0; l < 12; ++l) {
      const std::string where = methods()[m] + " block " + std::to_string(l);
      expect_sd(row.sd_theorem[l], independent_sd(W0, cumulative_groups(t, l)), where + " theorem");
      expect_sd(row.sd_layer[l], independent_sd(one_minus_cos(t.layers[l], P), block_groups(t, l)), where + " layer");
      EXPECT_EQ(row.tokens[l].mean(), t.layers[l].tokens) << where;
    }
  }
  // The pruning rule, spelled out: LTMP's theorem-view SD exists up to block 4 and not from block 5 on.
  const MethodSpectra& ltmp_row = report.rows()[1];
  for (int l = 0; l < 12; ++l) EXPECT_EQ(std::isnan(ltmp_row.sd_theorem[l].mean()), l >= 5) << "block " << l;
  // Baselines follow the reference (ToMe), defined everywhere.
  for (const MethodSpectra& row : report.rows())
    if (row.method.rfind("random", 0) == 0 || row.method.rfind("k-means", 0) == 0)
      for (int l = 0; l < 12; ++l) EXPECT_EQ(row.sd_theorem[l].n, 1) << row.method << " block " << l;
}

TEST_F(SpectralReportTest, EnergiesComeFromTheTrace) {
  // Every non-pruned input token counts once, merged (its output token holds several) or kept, at the energy the
  // trace recorded for it; pruned tokens are neither.
  const SpectralReport report = report_of(*traces_, methods(), 0, false);
  for (size_t m = 0; m < methods().size(); ++m) {
    const ImageTrace& t = (*traces_)[m];
    for (int l = 0; l < 12; ++l) {
      SCOPED_TRACE(methods()[m] + " block " + std::to_string(l));
      const std::vector<int> groups = block_groups(t, l);
      std::map<int, int> arrivals;
      for (int g : groups) ++arrivals[g];
      double sum[2] = {0, 0};
      int n[2] = {0, 0};
      for (size_t j = 0; j < groups.size(); ++j) {
        if (groups[j] < 0) continue;
        const int merged = arrivals[groups[j]] > 1;
        sum[merged] += t.layers[l].energy[t.prefix_tokens + j];
        ++n[merged];
      }
      const MethodSpectra& row = report.rows()[m];
      double counted = 0;
      for (int b = 0; b < EnergyHistogram::kBins; ++b) counted += row.energy[l].merged[b] + row.energy[l].kept[b];
      EXPECT_EQ(counted, n[0] + n[1]);
      for (int merged : {0, 1}) {
        const RunningStat& got = merged ? row.mean_energy_merged[l] : row.mean_energy_kept[l];
        EXPECT_EQ(got.n, n[merged] ? 1 : 0);
        if (n[merged]) EXPECT_NEAR(got.mean(), sum[merged] / n[merged], 1e-12);
      }
    }
  }
}

TEST_F(SpectralReportTest, AppAndCliGiveIdenticalSpectralDistances) {
  for (size_t m = 0; m < methods().size(); ++m) {
    SCOPED_TRACE(methods()[m]);
    gui::PaneResult pane;
    pane.trace = (*traces_)[m];
    gui::spectral_check(pane);
    const SpectralReport report = report_of({(*traces_)[m]}, {methods()[m]}, 0, false);
    ASSERT_EQ(pane.spectral_distance.size(), 12u);
    for (int l = 0; l < 12; ++l) {
      const double cli = report.rows()[0].sd_theorem[l].mean(), app = pane.spectral_distance[l];
      if (std::isnan(cli)) {
        EXPECT_TRUE(std::isnan(app)) << "block " << l << ": app " << app;
        EXPECT_TRUE(pane.eig_lifted[l].empty()) << "block " << l;
      } else {
        EXPECT_EQ(app, cli) << "block " << l;  // the same function, bit for bit
      }
    }
    // The curves the app plots at the report's curve layer equal the report's.
    const int c = report.curve_layer();
    if (!std::isnan(pane.spectral_distance[c])) {
      ASSERT_EQ(report.rows()[0].eig_lifted.size(), pane.eig_lifted[c].size());
      for (size_t i = 0; i < pane.eig_lifted[c].size(); ++i) {
        EXPECT_EQ(pane.eig_lifted[c][i], report.rows()[0].eig_lifted[i].mean());
        EXPECT_EQ(pane.eig_original[i], report.rows()[0].eig_original[i].mean());
      }
    }
  }
}

TEST_F(SpectralReportTest, RefusesAMethodTwice) {
  try {
    SpectralReport report({"tome:r=13", "tome:r=13"}, 12, SpectralOptions());
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("given twice"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ms
