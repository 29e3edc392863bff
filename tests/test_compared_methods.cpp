// The methods PiToMe is compared against (ToFu, MCTF, DCT, DiffRate, EViT) beyond their golden files
// (test_reducers_golden.cpp): token counts predicted before a run equal the counts of the run, --match-macs
// finds each method's strength, the cost model follows where a method acts, DCT's trace says it has no
// partition, and bad specs are one-line errors naming the spec.
#include "batch.h"
#include "engine.h"
#include "flops.h"
#include "preprocess.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>

namespace ms {
namespace {

const char* kSpecs[] = {"tofu:ratio=0.9",
                        "tofu:ratio=0.875",
                        "mctf:r=13",
                        "mctf:r=0.35,blocks=3;6;9",
                        "dct:ratio=0.9",
                        "diffrate:ratio=0.95",
                        "diffrate:r=16",
                        "evit",
                        "evit:keep=0.5",
                        "evit:keep=0.7,fuse=0",
                        "evit:keep=0.6,blocks=2;5;8"};

class Compared : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load("deit_tiny_patch16_224");
    const VitConfig& c = model_->config();
    images_ =
        load_batch({test::shared_image("n01440764_tench.JPEG"), test::shared_image("n01484850_great_white_shark.JPEG")},
                   preprocess_spec(c));
  }
  static void TearDownTestSuite() { model_.reset(); }
  static std::shared_ptr<const Model> model_;
  static at::Tensor images_;
};
std::shared_ptr<const Model> Compared::model_;
at::Tensor Compared::images_;

TEST_F(Compared, PredictedTokensAreTheRunsTokens) {
  c10::InferenceMode guard;
  for (const char* spec : kSpecs) {
    auto reducer = make_reducer(spec);
    const std::vector<int> predicted = predicted_tokens(model_->config(), *reducer);
    const RunResult r = run(*model_, images_, reducer.get());
    EXPECT_EQ(predicted, r.tokens_per_layer) << spec;
    EXPECT_TRUE(at::isfinite(r.logits).all().item<bool>()) << spec;
    EXPECT_EQ(make_reducer(reducer->spec())->spec(), reducer->spec()) << "canonical spec does not re-parse: " << spec;
  }
}

// --match-macs: every method's matched strength lands within one step of ToMe r = 13's GMACs, and no other value
// of its strength comes closer (checked against the neighbouring steps).
TEST_F(Compared, MatchMacsFindsEachMethodsStrength) {
  const VitConfig& c = model_->config();
  auto gmacs = [&](const std::string& spec) {
    const auto reducer = make_reducer(spec);
    return model_cost(c, predicted_tokens(c, *reducer), reducer.get()).gmacs();
  };
  const double target = gmacs("tome:r=13");
  for (const char* method : {"tofu", "mctf", "dct", "diffrate", "evit"}) {
    const std::string spec = match_strength(c, method, target);
    ASSERT_EQ(spec.rfind(std::string(method) + ":", 0), 0u) << spec;
    const double got = gmacs(spec);
    EXPECT_LT(std::fabs(got - target) / target, 0.03) << spec << " " << got << " vs " << target;
    if (std::string(method) == "mctf") {  // integer r: the neighbours are no closer
      const int r = std::stoi(spec.substr(spec.find('=') + 1));
      for (int n : {r - 1, r + 1})
        EXPECT_GE(std::fabs(gmacs("mctf:r=" + std::to_string(n)) - target), std::fabs(got - target)) << n;
    }
  }
}

// Where a method acts decides what its tokens save: DCT runs the whole block on the tokens entering it, MCTF
// fuses before v, proj and PV (so its acting block already saves). With the same token counts: none > dct > tome >
// mctf.
TEST_F(Compared, CostFollowsWhereTheMethodActs) {
  const VitConfig& c = model_->config();
  const auto tome = make_reducer("tome:r=13");
  const std::vector<int> tokens = predicted_tokens(c, *tome);
  const double t = model_cost(c, tokens, tome.get()).gmacs();
  const double d = model_cost(c, tokens, make_reducer("dct:ratio=0.9").get()).gmacs();
  const double m = model_cost(c, tokens, make_reducer("mctf:r=13").get()).gmacs();
  const double none = model_cost(c, {}, nullptr).gmacs();
  EXPECT_GT(none, d);
  EXPECT_GT(d, t);
  EXPECT_GT(t, m);
  // DCT: every block's MLP at the tokens entering it. Block 0 of the ToMe counts: 197 in, 184 out.
  const CostBreakdown dc = model_cost(c, tokens, make_reducer("dct:ratio=0.9").get());
  const CostBreakdown tc = model_cost(c, tokens, tome.get());
  EXPECT_GT(dc.mlp, tc.mlp);
  EXPECT_DOUBLE_EQ(dc.attention, tc.attention);
}

// DCT mixes all tokens: the trace marks every block and gives no groups; the JSON says so instead of a partition.
TEST_F(Compared, DctTraceSaysItHasNoPartition) {
  const std::string dir = test::make_temp_dir("ms_test_dct_trace");
  const auto r = test::run_command(test::cli_path() + " trace --model deit_tiny_patch16_224 --method dct:ratio=0.9 " +
                                   test::shared_image("n01440764_tench.JPEG") + " --out " + dir + "/t.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(dir + "/t.json");
  const nlohmann::json j = nlohmann::json::parse(f);
  ASSERT_EQ(j["layers"].size(), 12u);
  for (const auto& l : j["layers"]) {
    EXPECT_TRUE(l.value("mixes_all_tokens", false));
    EXPECT_FALSE(l.contains("cluster_of_token"));
  }
  std::system(("rm -rf " + dir).c_str());
}

// Bad specs of the new methods: exit 1, exactly one line on stderr naming the spec and the problem, nothing on
// stdout, before any output file is written.
TEST(ComparedCli, BadSpecsAreOneLineErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"tofu", "needs ratio="},
      {"tofu:ratio=0.5", "must be above 0.5"},
      {"tofu:ratio=1.5", "outside"},
      {"tofu:r=13", "needs ratio="},
      {"dct:ratio=0", "must be above 0"},
      {"dct:ratio=x", "not a number"},
      {"diffrate", "needs ratio="},
      {"diffrate:r=13,ratio=0.9", "exactly one of"},
      {"diffrate:prune=197;196,merge=197;196", "one count per block"},
      {"diffrate:prune=197;1;197;197;197;197;197;197;197;197;197;197,merge=197;197;197;197;197;197;197;197;197;197;"
       "197;197",
       "at least 2"},
      {"diffrate:merge=197", "both prune and merge counts"},
      {"evit:keep=0", "must be above 0"},
      {"evit:blocks=3;12", "block 12 does not exist"},
      {"evit:blocks=3;3", "twice"},
      {"evit:fuse=2", "not a boolean"},
      {"mctf:r=13.5", "whole number"},
      {"mctf:blocks=12", "block 12 does not exist"},
      {"mctf:tau_info=-1", "outside"},
      {"mctf:depth=3", "unknown key 'depth'"},
      {"diffrate:schedule=/no/such/schedule.json", "cannot open"},
      {"diffrate:schedule=SCHEDULE", "pick one with entry="},
      {"diffrate:schedule=SCHEDULE,entry=ViT-T-DeiT/0.65", "no entry"},
      {"diffrate:schedule=SCHEDULE,entry=CAFormer-S36/5.2", "is None"},
      {"diffrate:schedule=SCHEDULE,r=13", "exactly one of"},
  };
  const std::string dir = test::make_temp_dir("ms_test_bad_specs");
  const std::string schedule = dir + "/compression_rate.json";  // the authors' layout, two entries
  std::ofstream(schedule) << R"({"ViT-T-DeiT": {"0.7": {"prune_kept_num": "[197,196,194,180,150,123,98,82,68,60,52,3]",
      "merge_kept_num": "[197,196,192,158,133,103,88,72,64,58,49,3]"}},
      "CAFormer-S36": {"5.2": {"prune_kept_num": "None", "merge_kept_num": "[196, 193]"}}})";
  for (auto [spec, problem] : cases) {
    if (const auto at = spec.find("SCHEDULE"); at != std::string::npos) spec.replace(at, 8, schedule);
    const auto r = test::run_command(test::cli_path() + " trace --model deit_tiny_patch16_224 --method '" + spec +
                                     "' " + test::shared_image("n01440764_tench.JPEG") + " --out " + dir + "/t.json");
    EXPECT_EQ(r.exit_code, 1) << spec;
    EXPECT_TRUE(r.out.empty()) << spec << ": " << r.out;
    ASSERT_FALSE(r.err.empty()) << spec;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not exactly one line: " << r.err;
    // Parse errors quote the spec as given; errors found against the model (block counts) its canonical form.
    EXPECT_NE(r.err.find(spec.substr(0, spec.find(':'))), std::string::npos) << "method not named: " << r.err;
    EXPECT_NE(r.err.find(problem), std::string::npos) << spec << ": " << r.err;
    EXPECT_FALSE(std::ifstream(dir + "/t.json").good()) << spec << ": output written";
  }
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ms
