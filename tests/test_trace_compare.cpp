// Decision margins (core/reduce/ops.h) and the tie-aware partition comparison (analysis/trace_compare.h):
// the margin operations on hand-made inputs, the comparator on synthetic traces (identical, a tie, a real
// difference, invalid margins, pruning), and the margins real runs record, recomputed here from the
// traced keys for ToMe.
#include "engine.h"
#include "reduce/ops.h"
#include "test_util.h"
#include "trace_compare.h"

#include "batch.h"
#include "model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ms {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

at::Tensor row(std::vector<float> v) { return at::tensor(v).unsqueeze(0); }

TEST(MarginOps, RowBestGapIsBestMinusSecond) {
  const at::Tensor scores = at::tensor({0.1f, 0.9f, 0.7f, 0.5f, 0.5f, -kInf}).view({1, 2, 3});
  const reduce::RowBest best = reduce::row_best(scores, true);
  EXPECT_EQ(best.index[0][0].item<int64_t>(), 1);
  EXPECT_EQ(best.index[0][1].item<int64_t>(), 0);  // ties go to the lowest index, as torch.max
  EXPECT_NEAR(best.gap[0][0].item<float>(), 0.2f, 1e-7);
  EXPECT_EQ(best.gap[0][1].item<float>(), 0.0f);
  const at::Tensor protected_row = at::full({1, 1, 3}, -kInf);
  EXPECT_EQ(reduce::row_best(protected_row, true).gap.item<float>(), kInf);  // no decision, not NaN
}

TEST(MarginOps, CutMarginIsDistanceToTheOtherSide) {
  const at::Tensor v = row({0.5f, 0.9f, 0.1f, 0.7f, -kInf});
  const at::Tensor order = v.argsort(-1, true);          // 0.9, 0.7, 0.5, 0.1, -inf
  const at::Tensor m = reduce::cut_margin(v, order, 2);  // chosen: 0.9, 0.7; best unchosen 0.5
  EXPECT_NEAR(m[0][1].item<float>(), 0.4f, 1e-6);
  EXPECT_NEAR(m[0][3].item<float>(), 0.2f, 1e-6);
  EXPECT_NEAR(m[0][0].item<float>(), 0.2f, 1e-6);  // worst chosen 0.7 - 0.5
  EXPECT_NEAR(m[0][2].item<float>(), 0.6f, 1e-6);
  EXPECT_EQ(m[0][4].item<float>(), kInf);  // a protected entry never competes
  EXPECT_EQ(reduce::cut_margin(v, order, 0).min().item<float>(), kInf);
  EXPECT_EQ(reduce::cut_margin(v, order, 5).min().item<float>(), kInf);
}

TEST(MarginOps, NeighbourGapAlongTheOrder) {
  const at::Tensor v = row({0.5f, 0.9f, 0.45f, 0.7f});
  const at::Tensor order = v.argsort(-1, true);  // 0.9, 0.7, 0.5, 0.45
  const at::Tensor all = reduce::neighbour_gap(v, order, 4);
  EXPECT_NEAR(all[0][1].item<float>(), 0.2f, 1e-6);
  EXPECT_NEAR(all[0][3].item<float>(), 0.2f, 1e-6);
  EXPECT_NEAR(all[0][0].item<float>(), 0.05f, 1e-6);
  EXPECT_NEAR(all[0][2].item<float>(), 0.05f, 1e-6);
  const at::Tensor head = reduce::neighbour_gap(v, order, 2);  // only the first two compete for roles
  EXPECT_NEAR(head[0][1].item<float>(), 0.2f, 1e-6);
  EXPECT_EQ(head[0][0].item<float>(), kInf);
  EXPECT_EQ(head[0][2].item<float>(), kInf);
}

TEST(MarginOps, ThresholdMargin) {
  const at::Tensor m = reduce::threshold_margin(row({0.3f, 0.1f}), 0.2, 10.0);
  EXPECT_NEAR(m[0][0].item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(m[0][1].item<float>(), 1.0f, 1e-6);
  EXPECT_EQ(reduce::threshold_margin(row({0.3f}), std::numeric_limits<double>::infinity(), 1).item<float>(), kInf);
}

// ---- the comparator on synthetic traces: 1 prefix token + 4 patches, two layers

LayerTrace layer(int tokens_in, std::vector<int32_t> cluster, std::vector<float> margin) {
  LayerTrace l;
  l.tokens_in = tokens_in;
  l.cluster_of_token = std::move(cluster);
  l.tokens = 1 + *std::max_element(l.cluster_of_token.begin(), l.cluster_of_token.end());
  l.margin = std::move(margin);
  return l;
}

ImageTrace trace(std::vector<LayerTrace> layers) {
  ImageTrace t;
  t.original_tokens = 5;
  t.layers = std::move(layers);
  return t;
}

// Our run: block 0 merges 2 into 1 (token 3's margin is tiny: it nearly merged instead), block 1 merges 3
// into 0... of its 4 input tokens.
ImageTrace ours_with(float margin_of_3) {
  return trace({layer(5, {0, 1, 1, 2, 3}, {kInf, 0.3f, 0.3f, margin_of_3, 0.5f}),
                layer(4, {0, 1, 1, 2, 2}, {kInf, 0.4f, 0.4f, 0.4f})});
}

TEST(CompareTraces, IdenticalPartitionsWithOtherIds) {
  const ReferencePartitions ref = {{7, 5, 5, 6, 8}, {3, 1, 1, 2, 2}};
  const PartitionComparison c = compare_partitions(ours_with(0.2f), ref);
  EXPECT_EQ(c.outcome, PartitionComparison::Outcome::kIdentical) << c.detail;
}

TEST(CompareTraces, DifferenceOnANearTieIsATieAndLaterLayersAreNotCompared) {
  // The reference merged 3 into 2's group instead of 2; its block 1 differs too, which is not looked at.
  const ReferencePartitions ref = {{0, 1, 2, 2, 3}, {0, 1, 2, 2, 2}};
  const PartitionComparison tie = compare_partitions(ours_with(1e-6f), ref);
  EXPECT_EQ(tie.outcome, PartitionComparison::Outcome::kTie) << tie.detail;
  EXPECT_EQ(tie.layer, 0);
  EXPECT_FLOAT_EQ(tie.margin, 1e-6f);
  const PartitionComparison real = compare_partitions(ours_with(0.2f), ref);
  EXPECT_EQ(real.outcome, PartitionComparison::Outcome::kMismatch);
  EXPECT_EQ(real.layer, 0);
  EXPECT_NE(real.detail.find("input tokens {1,2,3}"), std::string::npos) << real.detail;
  // The tolerance is the caller's to state: the same difference passes with a wider one.
  EXPECT_EQ(compare_partitions(ours_with(0.2f), ref, 0.25).outcome, PartitionComparison::Outcome::kTie);
}

TEST(CompareTraces, DifferenceInALaterLayerIsFoundThere) {
  const ReferencePartitions ref = {{0, 1, 1, 2, 3}, {0, 1, 1, 2, 3}};  // block 1 merged nothing
  const PartitionComparison c = compare_partitions(ours_with(0.2f), ref);
  EXPECT_EQ(c.outcome, PartitionComparison::Outcome::kMismatch);
  EXPECT_EQ(c.layer, 1);
  EXPECT_NE(c.detail.find("input tokens {2,3}"), std::string::npos) << c.detail;  // block 1's own token ids
}

TEST(CompareTraces, InvalidMarginsFailEvenWherePartitionsAgree) {
  const ReferencePartitions ref = {{0, 1, 1, 2, 3}, {0, 1, 1, 2, 2}};
  for (float bad : {-1e-3f, std::nanf("")}) {
    const PartitionComparison c = compare_partitions(ours_with(bad), ref);
    EXPECT_EQ(c.outcome, PartitionComparison::Outcome::kMismatch);
    EXPECT_NE(c.detail.find("invalid margin"), std::string::npos) << c.detail;
  }
}

TEST(CompareTraces, NoMarginsMeansNoTies) {
  ImageTrace t = ours_with(1e-6f);
  for (auto& l : t.layers) l.margin.clear();
  EXPECT_EQ(compare_partitions(t, {{0, 1, 2, 2, 3}, {0, 1, 2, 2, 2}}).outcome, PartitionComparison::Outcome::kMismatch);
}

TEST(CompareTraces, PrunedTokensAndShapeErrors) {
  const ImageTrace pruned = trace({layer(5, {0, 1, -1, 2, 3}, {kInf, 0.3f, 1e-6f, 0.3f, 0.3f})});
  EXPECT_EQ(compare_partitions(pruned, {{0, 1, -1, 2, 3}}).outcome, PartitionComparison::Outcome::kIdentical);
  EXPECT_EQ(compare_partitions(pruned, {{0, 1, 2, 3, 4}}).outcome, PartitionComparison::Outcome::kTie);
  EXPECT_EQ(compare_partitions(pruned, {{0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}}).outcome,
            PartitionComparison::Outcome::kMismatch);  // layer count
  EXPECT_EQ(compare_partitions(pruned, {{0, 1, 2, 3}}).outcome, PartitionComparison::Outcome::kMismatch);
}

// ---- margins of real runs

class RealMargins : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = Model::load("deit_tiny_patch16_224"); }
  static void TearDownTestSuite() { model_.reset(); }
  static RunResult run_traced(const std::string& spec) {
    auto reducer = make_reducer(spec);
    RunOptions o;
    o.trace = o.trace_keys = true;
    c10::InferenceMode guard;
    const at::Tensor x = load_batch({test::shared_image("n01440764_tench.JPEG")}, preprocess_spec(model_->config()));
    return run(*model_, x, spec == "none" ? nullptr : reducer.get(), o);
  }
  static std::shared_ptr<const Model> model_;
};
std::shared_ptr<const Model> RealMargins::model_;

TEST_F(RealMargins, EveryMethodRecordsValidMarginsForEveryToken) {
  for (const char* spec :
       {"tome:r=13", "pitome:ratio=0.9", "pitome-code:ratio=0.9", "ltmp:merge=0.9,prune=0.002", "ltp:prune=0.004"}) {
    const RunResult r = run_traced(spec);
    int finite = 0;
    for (const LayerTrace& l : r.traces[0].layers) {
      ASSERT_EQ(static_cast<int>(l.margin.size()), l.tokens_in) << spec;
      for (float m : l.margin) {
        EXPECT_GE(m, 0.0f) << spec;
        finite += std::isfinite(m);
      }
      EXPECT_EQ(l.margin[0], kInf) << spec << ": CLS decides nothing";
    }
    EXPECT_GT(finite, 0) << spec;
  }
}

// ToMe's margins at block 0 recomputed in double from the traced keys: for every A token the distance of its
// best edge from the cut between the 13 merged edges and the rest, and for a merged A also the gap between
// its best and second-best B.
TEST_F(RealMargins, TomeMarginsEqualAnIndependentComputation) {
  const RunResult r = run_traced("tome:r=13");
  const LayerTrace& l = r.traces[0].layers[0];
  const int N = l.tokens_in, D = l.key_dim, r13 = 13;
  std::vector<std::vector<double>> unit(N, std::vector<double>(D));
  for (int i = 0; i < N; ++i) {
    double norm = 0;
    for (int d = 0; d < D; ++d) norm += double(l.keys[i * D + d]) * l.keys[i * D + d];
    for (int d = 0; d < D; ++d) unit[i][d] = l.keys[i * D + d] / std::sqrt(norm);
  }
  std::vector<double> best(N, -1e300), gap(N, 1e300);
  for (int a = 2; a < N; a += 2) {  // A = even positions, CLS (0) excluded
    std::vector<double> s;
    for (int b = 1; b < N; b += 2)
      s.push_back(std::inner_product(unit[a].begin(), unit[a].end(), unit[b].begin(), 0.0));
    std::sort(s.rbegin(), s.rend());
    best[a] = s[0];
    gap[a] = s[0] - s[1];
  }
  std::vector<double> edges;
  for (int a = 2; a < N; a += 2) edges.push_back(best[a]);
  std::sort(edges.rbegin(), edges.rend());
  const double worst_merged = edges[r13 - 1], best_kept = edges[r13];
  for (int a = 2; a < N; a += 2) {
    const bool merged = best[a] >= worst_merged;
    const double expected = merged ? std::min(best[a] - best_kept, gap[a]) : worst_merged - best[a];
    EXPECT_NEAR(l.margin[a], expected, 2e-6) << "A token " << a;
  }
  for (int b = 1; b < N; b += 2) EXPECT_EQ(l.margin[b], kInf);
}

}  // namespace
}  // namespace ms
