// ToMe and PiToMe inside the engine reproduce the official implementations (golden/README.md): identical
// token counts per layer, identical partitions at every layer, logits within the stated tolerance.
#include "engine.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cstdio>

#include <map>

namespace ms {
namespace {

// Canonical form of a partition: each token labelled by the first token of its group.
std::vector<int64_t> canonical(const int64_t* cluster, int64_t n) {
  std::map<int64_t, int64_t> first;
  std::vector<int64_t> out(n);
  for (int64_t t = 0; t < n; ++t) out[t] = first.emplace(cluster[t], t).first->second;
  return out;
}

struct Setting {
  const char* golden;
  const char* spec;
};

class ReducerGolden : public ::testing::TestWithParam<Setting> {
 protected:
  static void SetUpTestSuite() {
    golden_ = new SafetensorsFile(read_safetensors(test::golden_file()));
    model_ = Model::load("deit_tiny_patch16_224");
  }
  static void TearDownTestSuite() {
    delete golden_;
    model_.reset();
  }
  static SafetensorsFile* golden_;
  static std::shared_ptr<const Model> model_;
};
SafetensorsFile* ReducerGolden::golden_ = nullptr;
std::shared_ptr<const Model> ReducerGolden::model_;

TEST_P(ReducerGolden, MatchesOfficialCode) {
  const Setting s = GetParam();
  const std::string key = s.golden;
  const at::Tensor input = golden_->tensors.at("input");
  const at::Tensor tokens = golden_->tensors.at(key + ".tokens_per_layer");
  const at::Tensor clusters = golden_->tensors.at(key + ".cluster_of_token").contiguous();
  const at::Tensor logits_ref = golden_->tensors.at(key + ".logits");

  auto reducer = make_reducer(s.spec);
  RunOptions options;
  options.trace = true;
  c10::InferenceMode guard;
  const RunResult r = run(*model_, input, reducer.get(), options);

  ASSERT_EQ(static_cast<int64_t>(r.tokens_per_layer.size()), tokens.size(0));
  for (int64_t l = 0; l < tokens.size(0); ++l) EXPECT_EQ(r.tokens_per_layer[l], tokens[l].item<int64_t>()) << "layer " << l;

  const int64_t B = input.size(0), L = clusters.size(1), N0 = clusters.size(2);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t l = 0; l < L; ++l) {
      const auto& ours = r.traces[b].layers[l].cluster_of_token;
      std::vector<int64_t> ours64(ours.begin(), ours.end());
      const int64_t* ref = clusters.data_ptr<int64_t>() + (b * L + l) * N0;
      EXPECT_EQ(canonical(ours64.data(), N0), canonical(ref, N0)) << "image " << b << " layer " << l;
    }
  const double err = test::relative_max_error(r.logits, logits_ref);
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", err);
  RecordProperty("relative_max_error", text);
  EXPECT_LT(err, test::kLogitRelTol);
}

INSTANTIATE_TEST_SUITE_P(Golden, ReducerGolden,
                         ::testing::Values(Setting{"none", "none"}, Setting{"tome_r8", "tome:r=8"},
                                           Setting{"tome_r13", "tome:r=13"},
                                           Setting{"tome_r16_noprop", "tome:r=16,prop_attn=0"},
                                           Setting{"pitome_code_0.9", "pitome-code:ratio=0.9"}),
                         [](const auto& info) {
                           std::string n = info.param.golden;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace ms
