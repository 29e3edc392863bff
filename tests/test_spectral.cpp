// The spectral mathematics checked by invariants (Spectra's way): symmetric Laplacians, eigenvalues in
// [0, 2], zero eigenvalues = connected components, Lemma 1 for block sums, residuals of the partial solver.
#include "engine.h"
#include "reduce/reducer.h"
#include "safetensors.h"
#include "spectral.h"
#include "spectral_report.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace ms {
namespace {

constexpr double kLemmaTol = 1e-8;   // issue 4: Lemma 1 holds for block sums to 1e-8
constexpr double kEigenTol = 1e-10;  // bounds such as lambda in [0, 2]

std::vector<float> random_keys(int n, int dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> k(static_cast<size_t>(n) * dim);
  for (float& v : k) v = g(rng);
  return k;
}

Partition random_groups(int n, int groups, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = i < groups ? i : static_cast<int>(rng() % groups);  // every group used
  std::shuffle(ids.begin(), ids.end(), rng);
  return make_partition(ids);
}

void expect_lemma1(const Eigen::MatrixXd& W, const Partition& p) {
  const Eigen::MatrixXd coarse = coarsen_sum(W, p);
  const Eigen::VectorXd lifted = eigenvalues(normalized_laplacian(lift(coarse, p)));
  const Eigen::VectorXd predicted =
      lifted_spectrum_from_coarse(eigenvalues(normalized_laplacian(coarse)), static_cast<int>(W.rows()));
  EXPECT_LT((lifted - predicted).cwiseAbs().maxCoeff(), kLemmaTol);
}

class Kernels : public ::testing::TestWithParam<GraphKernel> {};

TEST_P(Kernels, LaplacianIsSymmetricWithEigenvaluesInZeroTwo) {
  const auto keys = random_keys(120, 16, 1);
  GraphOptions o;
  o.kernel = GetParam();
  const Eigen::MatrixXd W = token_graph(keys.data(), 120, 16, o);
  EXPECT_EQ((W - W.transpose()).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_GE(W.minCoeff(), 0.0);
  const Eigen::MatrixXd L = normalized_laplacian(W);
  EXPECT_EQ((L - L.transpose()).cwiseAbs().maxCoeff(), 0.0);
  const Eigen::VectorXd ev = eigenvalues(L);
  EXPECT_GT(ev.minCoeff(), -kEigenTol);
  EXPECT_LT(ev.maxCoeff(), 2.0 + kEigenTol);
  EXPECT_NEAR(ev(0), 0.0, 1e-9);  // connected graph: exactly one zero eigenvalue
  EXPECT_GT(ev(1), 1e-6);
}

TEST_P(Kernels, Lemma1HoldsForBlockSumsOnRandomGraphs) {
  GraphOptions o;
  o.kernel = GetParam();
  for (unsigned seed = 0; seed < 5; ++seed) {
    const int n = 60 + 10 * seed;
    const auto keys = random_keys(n, 8, 100 + seed);
    expect_lemma1(token_graph(keys.data(), n, 8, o), random_groups(n, n / 3, seed));
  }
}

INSTANTIATE_TEST_SUITE_P(All, Kernels,
                         ::testing::Values(GraphKernel::OneMinusCos, GraphKernel::ClippedCos, GraphKernel::Gaussian),
                         [](const auto& info) {
                           std::string n = kernel_name(info.param);
                           n.erase(std::remove(n.begin(), n.end(), '-'), n.end());
                           return n;
                         });

TEST(Spectral, ZeroEigenvaluesCountConnectedComponents) {
  // Three groups of keys in orthogonal subspaces: clipped cosine has no edge between groups.
  const int per = 20, dim = 9;
  std::vector<float> keys(3 * per * dim, 0.0f);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  for (int g = 0; g < 3; ++g)
    for (int i = 0; i < per; ++i)
      for (int d = 0; d < 3; ++d) keys[(g * per + i) * dim + g * 3 + d] = u(rng);
  GraphOptions o;
  o.kernel = GraphKernel::ClippedCos;
  const Eigen::VectorXd ev = eigenvalues(normalized_laplacian(token_graph(keys.data(), 3 * per, dim, o)));
  EXPECT_EQ((ev.array() < 1e-9).count(), 3);
  EXPECT_GT(ev(3), 1e-3);
}

TEST(Spectral, CoarsenSumIsPtWP) {
  const auto keys = random_keys(30, 5, 7);
  const Eigen::MatrixXd W = token_graph(keys.data(), 30, 5);
  const Partition p = random_groups(30, 7, 2);
  Eigen::MatrixXd P = Eigen::MatrixXd::Zero(30, p.groups);
  for (int i = 0; i < 30; ++i) P(i, p.group[i]) = 1;
  EXPECT_LT((coarsen_sum(W, p) - P.transpose() * W * P).cwiseAbs().maxCoeff(), 1e-12);
  const std::vector<int> s = p.sizes();
  const Eigen::MatrixXd mean = coarsen_mean(W, p);
  EXPECT_NEAR(mean(0, 1), (P.transpose() * W * P)(0, 1) / (s[0] * s[1]), 1e-12);
}

TEST(Spectral, IdentityPartitionHasZeroDistance) {
  const auto keys = random_keys(40, 6, 9);
  const Eigen::MatrixXd W = token_graph(keys.data(), 40, 6);
  std::vector<int> ids(40);
  for (int i = 0; i < 40; ++i) ids[i] = i;
  const Partition p = make_partition(ids);
  const Eigen::VectorXd original = eigenvalues(normalized_laplacian(W));
  const Eigen::VectorXd lifted = lifted_spectrum_from_coarse(eigenvalues(normalized_laplacian(coarsen_sum(W, p))), 40);
  EXPECT_LT(spectral_distance(original, lifted), 1e-9);
}

TEST(Spectral, BlockMeansBreakLemma1) {
  // The paper's Definition 1 (block means): the lifted spectrum is not the coarse spectrum plus ones.
  const auto keys = random_keys(80, 8, 11);
  const Eigen::MatrixXd W = token_graph(keys.data(), 80, 8);
  const Partition p = random_groups(80, 20, 5);
  const Eigen::VectorXd lifted = eigenvalues(normalized_laplacian(lift(coarsen_sum(W, p), p)));
  const Eigen::VectorXd from_means =
      lifted_spectrum_from_coarse(eigenvalues(normalized_laplacian(coarsen_mean(W, p))), 80);
  const double deviation = (lifted - from_means).cwiseAbs().maxCoeff();
  RecordProperty("block_mean_deviation", std::to_string(deviation));
  EXPECT_GT(deviation, 1e-3);
}

TEST(Spectral, PartialSolverMatchesDenseEnds) {
  const auto keys = random_keys(300, 12, 13);
  const Eigen::MatrixXd L = normalized_laplacian(token_graph(keys.data(), 300, 12));
  const Eigen::VectorXd all = eigenvalues(L);
  const Eigen::VectorXd small = extreme_eigenvalues(L, 6, false), large = extreme_eigenvalues(L, 6, true);
  for (int i = 0; i < 6; ++i) {
    EXPECT_NEAR(small(i), all(i), 1e-8);
    EXPECT_NEAR(large(i), all(300 - 6 + i), 1e-8);
  }
}

TEST(Spectral, BaselinesKeepSizesAndFindClusters) {
  const Partition p = random_groups(50, 12, 17);
  auto sorted_sizes = [](const Partition& q) {
    auto s = q.sizes();
    std::sort(s.begin(), s.end());
    return s;
  };
  EXPECT_EQ(sorted_sizes(random_partition_like(p, 3)), sorted_sizes(p));
  // Four tight, well separated clusters: k-means recovers them exactly.
  std::vector<float> keys;
  std::mt19937 rng(19);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 10; ++i)
      for (int d = 0; d < 4; ++d) keys.push_back((d == c ? 1.0f : 0.0f) + noise(rng));
  const Partition km = kmeans_partition(keys.data(), 40, 4, 4, 1);
  EXPECT_EQ(km.groups, 4);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(km.group[i], km.group[(i / 10) * 10]);
}

TEST(Spectral, Lemma1HoldsOnRealMergedGraphs) {
  // Real keys (DeiT-Ti block 0 on the golden images) and real ToMe / PiToMe partitions.
  const SafetensorsFile golden = read_safetensors(test::golden_file());
  const auto model = Model::load("deit_tiny_patch16_224");
  c10::InferenceMode guard;
  RunOptions o;
  o.trace = o.trace_keys = true;
  for (const char* spec : {"tome:r=13", "pitome-code:ratio=0.9"}) {
    auto reducer = make_reducer(spec);
    const RunResult r = run(*model, golden.tensors.at("input").slice(0, 0, 2), reducer.get(), o);
    for (const ImageTrace& t : r.traces) {
      const LayerTrace& first = t.layers[0];
      const int n = first.tokens_in - t.prefix_tokens;
      const Eigen::MatrixXd W = token_graph(first.keys.data() + first.key_dim, n, first.key_dim);
      for (int l : {0, 5, 11}) {
        const std::vector<int32_t>& cot = t.layers[l].cluster_of_token;
        expect_lemma1(W, make_partition(std::vector<int>(cot.begin() + 1, cot.end())));
        // The per-layer partition covers the block's input tokens exactly.
        EXPECT_EQ(static_cast<int>(layer_partition(t, l).size()), t.layers[l].tokens_in - 1);
      }
    }
  }
}

}  // namespace
}  // namespace ms

namespace ms {
namespace {

TEST(Spectral, LowRankOneMinusCosSpectrumEqualsDense) {
  // W = 11^T - K K^T: the (dim+1)-sized problem gives every eigenvalue of the dense normalised Laplacian,
  // for the graph and for its block-sum coarsening.
  for (unsigned seed = 0; seed < 3; ++seed) {
    const int n = 150 + 40 * seed, dim = 12;
    const auto keys = random_keys(n, dim, 300 + seed);
    const Eigen::VectorXd dense = eigenvalues(normalized_laplacian(token_graph(keys.data(), n, dim)));
    const Eigen::MatrixXd B = one_minus_cos_factor(keys.data(), n, dim);
    const Eigen::VectorXd signs = one_minus_cos_signs(dim);
    const Eigen::VectorXd fast = low_rank_laplacian_spectrum(B, signs);
    ASSERT_EQ(fast.size(), n);
    EXPECT_LT((fast - dense).cwiseAbs().maxCoeff(), 1e-10);
    EXPECT_GE(((fast.array() - 1.0).abs() < 1e-12).count(), n - dim - 1);  // eigenvalue 1, n - rank times
    const Partition p = random_groups(n, n / 4, seed);
    const Eigen::VectorXd coarse_dense =
        eigenvalues(normalized_laplacian(coarsen_sum(token_graph(keys.data(), n, dim), p)));
    const Eigen::VectorXd coarse_fast = low_rank_laplacian_spectrum(coarsen_factor(B, p), signs);
    EXPECT_LT((coarse_fast - coarse_dense).cwiseAbs().maxCoeff(), 1e-10);
  }
}

}  // namespace
}  // namespace ms
