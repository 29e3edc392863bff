// Every reducer inside the engine reproduces its released implementation: ToMe and PiToMe against the shared
// golden file (golden/README.md), ToFu, MCTF, DiffRate and EViT against tests/golden/<method>.safetensors (made by
// scripts/golden/make_<method>.py with the released code; same layout, the shared file's input): identical
// token counts per layer, partitions identical at every layer or different only after a decision whose
// margin in our run is below kTieTolerance (analysis/trace_compare.h: a near-tie another BLAS kernel may
// break either way; that image's later layers are then not compared), logits within the stated tolerance
// for every image without a tie. Ties are printed and counted. CTest runs this suite under each OpenBLAS
// kernel the CPU can execute (tests/CMakeLists.txt).
//
// The comparator is shown to catch real bugs: reducers with one decision mutated (an A token sent to its
// second-best B, r off by one, margins with the sign flipped) fail it.
#include "engine.h"
#include "reduce/ops.h"
#include "safetensors.h"
#include "test_util.h"
#include "trace_compare.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

namespace ms {
namespace {

std::string blas_kernel_name() {
  using Fn = char* (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return fn ? fn() : "not OpenBLAS";
}

struct Setting {
  const char* golden;
  const char* spec;
  const char* file = nullptr;  // tests/golden/<file>.safetensors; nullptr: the shared golden file
};

// The project's golden files, by method name (loaded once).
const SafetensorsFile& project_golden(const std::string& name) {
  static std::map<std::string, SafetensorsFile> files;
  auto it = files.find(name);
  if (it == files.end()) it = files.emplace(name, read_safetensors("tests/golden/" + name + ".safetensors")).first;
  return it->second;
}

class ReducerGolden : public ::testing::TestWithParam<Setting> {
 protected:
  static void SetUpTestSuite() {
    golden_ = new SafetensorsFile(read_safetensors(test::golden_file()));
    model_ = Model::load("deit_tiny_patch16_224", test::test_device());
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

ReferencePartitions reference_of(const at::Tensor& clusters, int64_t image) {
  const at::Tensor c = clusters[image].contiguous();
  ReferencePartitions out(c.size(0));
  for (int64_t l = 0; l < c.size(0); ++l) out[l].assign(c[l].data_ptr<int64_t>(), c[l].data_ptr<int64_t>() + c.size(1));
  return out;
}

// The golden check of one setting: tokens per layer identical, no partition mismatch, logits within the
// tolerance for every image without a tie. Returns what failed (empty: passed) and prints the ties.
struct GoldenCheck {
  std::vector<PartitionComparison> images;
  std::vector<std::string> failures;
  int identical = 0, ties = 0;
  double logit_error = 0;  // over the images without a tie
};

GoldenCheck check_against_golden(const Model& model, const SafetensorsFile& golden, const std::string& key,
                                 Reducer* reducer, const at::Tensor& input) {
  RunOptions options;
  options.trace = true;
  c10::InferenceMode guard;
  const RunResult r = run(model, input, reducer, options);
  GoldenCheck check;
  const at::Tensor tokens = golden.tensors.at(key + ".tokens_per_layer");
  for (int64_t l = 0; l < tokens.size(0); ++l)
    if (l >= static_cast<int64_t>(r.tokens_per_layer.size()) || r.tokens_per_layer[l] != tokens[l].item<int64_t>())
      check.failures.push_back("tokens per layer differ at layer " + std::to_string(l));
  const at::Tensor clusters = golden.tensors.at(key + ".cluster_of_token");
  const at::Tensor logits_ref = golden.tensors.at(key + ".logits");
  for (int64_t b = 0; b < clusters.size(0); ++b) {
    const PartitionComparison& c =
        check.images.emplace_back(compare_partitions(r.traces[b], reference_of(clusters, b)));
    const std::string image = "image " + std::to_string(b);
    if (c.outcome == PartitionComparison::Outcome::kMismatch) check.failures.push_back(image + ": " + c.detail);
    if (c.outcome == PartitionComparison::Outcome::kTie) {
      ++check.ties;  // the later layers and the logits follow an equally valid other decision: not compared
      std::printf("tie: %s %s (BLAS kernel %s): %s\n", key.c_str(), image.c_str(), blas_kernel_name().c_str(),
                  c.detail.c_str());
      continue;
    }
    check.identical += c.outcome == PartitionComparison::Outcome::kIdentical;
    check.logit_error = std::max(check.logit_error, test::relative_max_error(r.logits[b], logits_ref[b]));
  }
  if (!(check.logit_error < test::kLogitRelTol))
    check.failures.push_back("logits differ by " + std::to_string(check.logit_error));
  return check;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

GoldenCheck check_against_golden(const Model& model, const SafetensorsFile& golden, const std::string& key,
                                 Reducer* reducer) {
  return check_against_golden(model, golden, key, reducer, golden.tensors.at("input"));
}

TEST_P(ReducerGolden, MatchesOfficialCode) {
  const Setting s = GetParam();
  auto reducer = make_reducer(s.spec);
  const GoldenCheck check = s.file ? check_against_golden(*model_, project_golden(s.file), s.golden, reducer.get(),
                                                          golden_->tensors.at("input"))
                                   : check_against_golden(*model_, *golden_, s.golden, reducer.get());
  EXPECT_TRUE(check.failures.empty()) << joined(check.failures);
  std::printf("%s: %d images identical at every layer, %d ties; logits max error %.2e of max |logit|\n", s.golden,
              check.identical, check.ties, check.logit_error);
  RecordProperty("ties", check.ties);
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", check.logit_error);
  RecordProperty("relative_max_error", text);
}

INSTANTIATE_TEST_SUITE_P(
    Golden, ReducerGolden,
    ::testing::Values(
        Setting{"none", "none"}, Setting{"tome_r8", "tome:r=8"}, Setting{"tome_r13", "tome:r=13"},
        Setting{"tome_r16_noprop", "tome:r=16,prop_attn=0"}, Setting{"pitome_code_0.9", "pitome-code:ratio=0.9"},
        Setting{"tofu_0.95", "tofu:ratio=0.95", "tofu"}, Setting{"tofu_0.9", "tofu:ratio=0.9", "tofu"},
        Setting{"tofu_0.875", "tofu:ratio=0.875", "tofu"}, Setting{"mctf_r8", "mctf:r=8", "mctf"},
        Setting{"mctf_r13", "mctf:r=13", "mctf"}, Setting{"mctf_r16", "mctf:r=16", "mctf"},
        Setting{"mctf_fast_0.35", "mctf:r=0.35,blocks=3;6;9", "mctf"},
        Setting{"diffrate_ratio0.95", "diffrate:ratio=0.95", "diffrate"},
        Setting{"diffrate_r13", "diffrate:r=13", "diffrate"}, Setting{"diffrate_r16", "diffrate:r=16", "diffrate"},
        Setting{"diffrate_sched_deit_t_0.7",
                "diffrate:prune=197;196;194;180;150;123;98;82;68;60;52;3,"
                "merge=197;196;192;158;133;103;88;72;64;58;49;3",
                "diffrate"},
        Setting{"evit_0.8", "evit:keep=0.8", "evit"}, Setting{"evit_0.7", "evit", "evit"},
        Setting{"evit_0.5", "evit:keep=0.5", "evit"}, Setting{"evit_0.7_nofuse", "evit:keep=0.7,fuse=0", "evit"}),
    [](const auto& info) {
      std::string n = info.param.golden;
      for (char& ch : n)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

// ---- mutations: the comparator must fail each of them on the golden images

// Wraps a real reducer and changes its plan after the fact.
class Mutated final : public Reducer {
 public:
  enum class Kind { SecondBestB, NegatedMargins };
  Mutated(std::unique_ptr<Reducer> inner, Kind kind) : inner_(std::move(inner)), kind_(kind) {}
  std::string spec() const override { return inner_->spec() + " (mutated)"; }
  bool proportional_attention() const override { return inner_->proportional_attention(); }
  int predict_tokens(int l, int d, int t, int p) const override { return inner_->predict_tokens(l, d, t, p); }

  ReductionPlan plan(const ReducerContext& ctx) override {
    ReductionPlan plan = inner_->plan(ctx);
    if (!plan.dest.defined()) return plan;
    if (kind_ == Kind::NegatedMargins) {
      plan.margin = -plan.margin;
    } else if (ctx.layer == 0) {
      send_one_to_second_best(ctx, plan);
    }
    return plan;
  }

 private:
  // ToMe's layout (A even positions, B odd, no distillation token): the merged A whose decision margin is
  // largest goes to its second-best B instead, so this is no tie but one wrong decision.
  static void send_one_to_second_best(const ReducerContext& ctx, ReductionPlan& plan) {
    const int64_t N = ctx.x.size(1);
    const at::Tensor metric = reduce::normalize(ctx.keys_mean);
    const at::Tensor scores = at::bmm(metric.slice(1, 0, N, 2), metric.slice(1, 1, N, 2).transpose(1, 2));
    const at::Tensor second = std::get<1>(scores.topk(2, -1)).select(-1, 1);  // [B, Na]
    for (int64_t b = 0; b < ctx.x.size(0); ++b) {
      int64_t chosen = -1;
      float best_margin = -1;
      for (int64_t a = 1; a < (N + 1) / 2; ++a) {                                        // A[0] is CLS
        const bool merged = plan.dest[b][2 * a].item<int64_t>() >= plan.tokens - N / 2;  // into a B slot
        const float m = plan.margin[b][2 * a].item<float>();
        if (merged && m > best_margin) best_margin = m, chosen = a;
      }
      ASSERT_GE(chosen, 0);
      const int64_t b_second = second[b][chosen].item<int64_t>();
      plan.dest[b][2 * chosen] = plan.dest[b][2 * b_second + 1].item<int64_t>();
    }
  }

  std::unique_ptr<Reducer> inner_;
  Kind kind_;
};

TEST_F(ReducerGolden, CatchesSecondBestB) {
  Mutated reducer(make_reducer("tome:r=13"), Mutated::Kind::SecondBestB);
  const GoldenCheck check = check_against_golden(*model_, *golden_, "tome_r13", &reducer);
  for (const auto& c : check.images) {  // one wrong decision in each image, found where it was made
    EXPECT_EQ(c.outcome, PartitionComparison::Outcome::kMismatch) << c.detail;
    EXPECT_EQ(c.layer, 0) << c.detail;
  }
}

TEST_F(ReducerGolden, CatchesROffByOne) {
  for (const char* spec : {"tome:r=12", "tome:r=14"}) {
    auto reducer = make_reducer(spec);
    const GoldenCheck check = check_against_golden(*model_, *golden_, "tome_r13", reducer.get());
    EXPECT_FALSE(check.failures.empty()) << spec;
    EXPECT_NE(joined(check.failures).find("tokens per layer differ at layer 0"), std::string::npos) << spec;
  }
}

TEST_F(ReducerGolden, CatchesNegatedMargins) {
  for (const auto& [key, spec] : {std::pair{"tome_r13", "tome:r=13"}, {"pitome_code_0.9", "pitome-code:ratio=0.9"}}) {
    Mutated reducer(make_reducer(spec), Mutated::Kind::NegatedMargins);
    const GoldenCheck check = check_against_golden(*model_, *golden_, key, &reducer);
    for (const auto& c : check.images) {
      EXPECT_EQ(c.outcome, PartitionComparison::Outcome::kMismatch) << spec;
      EXPECT_NE(c.detail.find("invalid margin"), std::string::npos) << c.detail;
    }
  }
}

// DiffRate from a schedule file in the authors' compression_rate.json layout (lists as strings, keyed by model and
// GFLOPs): the same partitions and logits as the explicit lists of the searched DeiT-Ti 0.7 schedule.
TEST_F(ReducerGolden, DiffrateScheduleFileMatchesReleasedCode) {
  const std::string dir = test::make_temp_dir("ms_test_diffrate_schedule");
  const std::string path = dir + "/compression_rate.json";
  {
    std::ofstream f(path);
    f << R"({"ViT-T-DeiT": {"0.7": {"prune_kept_num": "[197,196,194,180,150,123,98,82,68,60,52,3]",
                                   "merge_kept_num": "[197,196,192,158,133,103,88,72,64,58,49,3]"}}})";
  }
  auto reducer = make_reducer("diffrate:schedule=" + path + ",entry=ViT-T-DeiT/0.7");
  EXPECT_EQ(reducer->spec(), "diffrate:schedule=" + path + ",entry=ViT-T-DeiT/0.7");
  const GoldenCheck check = check_against_golden(*model_, project_golden("diffrate"), "diffrate_sched_deit_t_0.7",
                                                 reducer.get(), golden_->tensors.at("input"));
  EXPECT_TRUE(check.failures.empty()) << joined(check.failures);
  EXPECT_EQ(check.identical, 4);
  std::system(("rm -rf " + dir).c_str());
}

// ---- DCT: every output token mixes all patch tokens, so there is no partition to compare (its golden file has
// none). The transform itself equals the released one bit for bit on the golden unit vectors (the same ATen
// calls in the same order); the model's logits are compared with kLogitRelTolFloat16Output (test_util.h: the
// released code rounds every block's tokens to float16, which turns ~1e-6 differences into float16 steps).

TEST(DctGolden, TransformEqualsReleasedBitForBit) {
  const SafetensorsFile& g = project_golden("dct");
  const at::Tensor input = g.tensors.at("unit.input");  // [2, 51, 16]
  for (const char* ratio : {"0.95", "0.9", "0.86"}) {
    const at::Tensor expected = g.tensors.at(std::string("unit.") + ratio + ".output");
    const at::Tensor ours = reduce::dc_transform(input, expected.size(1) - 1);
    ASSERT_EQ(ours.sizes(), expected.sizes()) << ratio;
    EXPECT_TRUE(at::equal(ours, expected))
        << ratio << ": max difference " << (ours - expected).abs().max().item<float>();
    EXPECT_TRUE(at::equal(ours.slice(1, 1), ours.slice(1, 1).to(at::kHalf).to(at::kFloat))) << "not float16 values";
    EXPECT_TRUE(at::equal(ours.slice(1, 0, 1), input.slice(1, 0, 1))) << "CLS changed";
  }
}

TEST_F(ReducerGolden, DctMatchesReleasedCode) {
  const SafetensorsFile& g = project_golden("dct");
  for (const char* ratio : {"0.95", "0.9", "0.86"}) {
    const std::string key = std::string("dct_") + ratio;
    auto reducer = make_reducer(std::string("dct:ratio=") + ratio);
    RunOptions options;
    options.trace = true;
    c10::InferenceMode guard;
    const RunResult r = run(*model_, golden_->tensors.at("input"), reducer.get(), options);
    const at::Tensor tokens = g.tensors.at(key + ".tokens_per_layer");
    ASSERT_EQ(static_cast<int64_t>(r.tokens_per_layer.size()), tokens.size(0));
    for (int64_t l = 0; l < tokens.size(0); ++l) EXPECT_EQ(r.tokens_per_layer[l], tokens[l].item<int64_t>()) << key;
    const at::Tensor ref = g.tensors.at(key + ".logits");
    const double err = test::relative_max_error(r.logits, ref);
    EXPECT_LT(err, test::kLogitRelTolFloat16Output) << key;
    EXPECT_TRUE(at::equal(r.logits.argmax(1).cpu(), ref.argmax(1))) << key;
    for (const auto& trace : r.traces)  // the trace says there is no partition instead of drawing one
      for (const auto& lt : trace.layers) EXPECT_TRUE(lt.mixes_all) << key;
    std::printf("%s: tokens identical, logits max error %.2e of max |logit|\n", key.c_str(), err);
  }
}

}  // namespace
}  // namespace ms
