// LTP / LTMP: learned-threshold reducers and their calibration (core/reduce/ltp.cpp, ltmp.cpp,
// core/calibrate.h, core/thresholds.h): gradients reach the thresholds; the masked training forward with a
// vanishing temperature (and with straight-through masks) computes what the inference reducers compute;
// infinite thresholds keep or drop everything; the training MACs ratio is core/cost.h's model_cost; the trace
// marks pruned tokens; per-image grouping equals single-image runs; calibration is deterministic; bad or
// mismatched threshold files give one-line errors naming the file.
#include "batch.h"
#include "calibrate.h"
#include "config.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "model.h"
#include "reduce/reducer.h"
#include "safetensors.h"
#include "test_util.h"
#include "thresholds.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace ms {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

class LearnedThresholds_ : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load("deit_tiny_patch16_224");
    images_ = load_batch({test::shared_image("n01440764_tench.JPEG"), test::shared_image("n01530575_brambling.JPEG"),
                          test::shared_image("n01614925_bald_eagle.JPEG")},
                         preprocess_spec(model_->config()));
  }
  static void TearDownTestSuite() { model_.reset(); }

  static std::string temp_path(const std::string& name) {
    return "/tmp/mergescope_lt_" + std::to_string(getpid()) + "_" + name;
  }
  // Varied per-block thresholds that merge and prune a fair share of tokens on DeiT-Ti.
  static LearnedThresholds some_thresholds(const std::string& method) {
    LearnedThresholds t;
    t.method = method;
    for (int l = 0; l < 12; ++l) {
      if (method == "ltmp") t.merge.push_back(0.80 + 0.01 * l);
      t.prune.push_back(l % 3 == 2 ? 0.0 : 0.0025 + 0.0002 * l);
    }
    return t;
  }
  static at::Tensor as_tensor(const std::vector<double>& v) { return at::tensor(v, at::kDouble).to(at::kFloat); }

  static std::shared_ptr<const Model> model_;
  static at::Tensor images_;
};
std::shared_ptr<const Model> LearnedThresholds_::model_;
at::Tensor LearnedThresholds_::images_;

// ---------------------------------------------------------------------------------------------------------
// Gradients

TEST_F(LearnedThresholds_, GradientsReachTheThresholds) {
  for (const std::string method : {"ltmp", "ltp"}) {
    SCOPED_TRACE(method);
    at::AutoGradMode grad(true);
    const LearnedThresholds t = some_thresholds(method);
    at::Tensor merge = method == "ltmp" ? as_tensor(t.merge).set_requires_grad(true) : at::zeros({12});
    at::Tensor prune = as_tensor(t.prune).set_requires_grad(true);
    MaskOptions masks;
    masks.straight_through = method == "ltmp";
    masks.tau_prune = method == "ltmp" ? 0.1 : 1e-3;
    const MaskedForward f = masked_forward(*model_, images_, method, merge, prune, masks);
    const at::Tensor labels = at::tensor({0, 10, 21}, at::kLong);
    const at::Tensor loss =
        at::cross_entropy_loss(f.logits, labels) + 10 * at::pow(0.5 - f.macs_ratio, 2) + f.mask_mean;
    loss.backward();
    for (const at::Tensor& p : {merge, prune}) {
      if (!p.requires_grad()) continue;
      ASSERT_TRUE(p.grad().defined());
      EXPECT_TRUE(at::isfinite(p.grad()).all().item<bool>()) << p.grad();
      EXPECT_GT(p.grad().abs().max().item<double>(), 0.0) << p.grad();
      // Every block's threshold gets a gradient (every block reduces and the penalty sees its tokens).
      EXPECT_GT((p.grad() != 0).sum().item<int64_t>(), 8) << p.grad();
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Training forward == inference reducer

void expect_same_as_inference(const Model& model, const at::Tensor& images, const LearnedThresholds& t,
                              const MaskOptions& masks, const std::string& path) {
  save_thresholds(path, t);
  at::Tensor merge = t.method == "ltmp" ? at::tensor(t.merge, at::kDouble).to(at::kFloat) : at::zeros({12});
  const MaskedForward f = [&] {
    at::NoGradGuard no_grad;
    return masked_forward(model, images, t.method, merge, at::tensor(t.prune, at::kDouble).to(at::kFloat), masks);
  }();
  c10::InferenceMode guard;
  const auto reducer = make_reducer(t.method + ":thresholds=" + path);
  const RunResult r = run(model, images, reducer.get());
  ASSERT_EQ(r.tokens_per_image.size(), static_cast<size_t>(images.size(0)));
  bool reduced = false;
  for (int64_t b = 0; b < images.size(0); ++b)
    for (int l = 0; l < 12; ++l) {
      EXPECT_NEAR(f.tokens[b][l].item<double>(), r.tokens_per_image[b][l], 1e-3) << "image " << b << " block " << l;
      reduced |= r.tokens_per_image[b][l] < 150;
    }
  EXPECT_TRUE(reduced) << "thresholds too weak to test anything";
  EXPECT_LT(test::relative_max_error(f.logits, r.logits), test::kLogitRelTol);
}

TEST_F(LearnedThresholds_, VanishingTemperatureSoftPathEqualsHardInference) {
  for (const std::string method : {"ltmp", "ltp"}) {
    SCOPED_TRACE(method);
    MaskOptions soft;
    soft.straight_through = false;
    soft.tau_merge = soft.tau_prune = 1e-9;
    expect_same_as_inference(*model_, images_, some_thresholds(method), soft, temp_path(method + "_soft.json"));
  }
}

TEST_F(LearnedThresholds_, StraightThroughForwardEqualsHardInference) {
  for (const std::string method : {"ltmp", "ltp"}) {
    SCOPED_TRACE(method);
    MaskOptions ste;  // any temperature: the forward value is the hard decision
    ste.tau_merge = ste.tau_prune = 0.5;
    expect_same_as_inference(*model_, images_, some_thresholds(method), ste, temp_path(method + "_ste.json"));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Infinite thresholds

TEST_F(LearnedThresholds_, InfiniteThresholdsKeepOrDropEverything) {
  c10::InferenceMode guard;
  const at::Tensor x = images_.slice(0, 0, 1);
  const RunResult none = run(*model_, x, nullptr);
  auto tokens = [&](const std::string& spec) {
    const auto reducer = make_reducer(spec);
    return run(*model_, x, reducer.get());
  };
  // Keep everything: the same tokens and logits as no reduction.
  for (const std::string spec : {"ltp:prune=-inf", "ltmp:merge=inf,prune=-inf"}) {
    SCOPED_TRACE(spec);
    const RunResult r = tokens(spec);
    EXPECT_EQ(r.tokens_per_layer, std::vector<int>(12, 197));
    EXPECT_LT(test::relative_max_error(r.logits, none.logits), test::kLogitRelTol);
  }
  // Drop everything but CLS in the first block.
  for (const std::string spec : {"ltp:prune=inf", "ltmp:merge=inf,prune=inf", "ltmp:merge=-inf,prune=inf"})
    EXPECT_EQ(tokens(spec).tokens_per_layer, std::vector<int>(12, 1)) << spec;
  // Merge every A but CLS into its B: n -> 1 + floor(n / 2) (197 -> 99 -> 50 -> 26 -> ... -> 2)
  std::vector<int> halving;
  for (int n = 197, l = 0; l < 12; ++l) halving.push_back(n = 1 + n / 2);
  EXPECT_EQ(tokens("ltmp:merge=-inf,prune=-inf").tokens_per_layer, halving);

  // The same in the training forward.
  at::NoGradGuard no_grad;
  const at::Tensor inf = at::full({12}, kInf), minus_inf = at::full({12}, -kInf);
  MaskOptions ste;
  EXPECT_TRUE(at::equal(masked_forward(*model_, x, "ltp", inf, minus_inf, ste).tokens, at::full({1, 12}, 197.0)));
  EXPECT_TRUE(at::equal(masked_forward(*model_, x, "ltp", inf, inf, ste).tokens, at::full({1, 12}, 1.0)));
  EXPECT_TRUE(at::equal(masked_forward(*model_, x, "ltmp", inf, inf, ste).tokens, at::full({1, 12}, 1.0)));
  EXPECT_TRUE(at::equal(
      masked_forward(*model_, x, "ltmp", minus_inf, minus_inf, ste).tokens,
      at::tensor(std::vector<double>(halving.begin(), halving.end()), at::kDouble).to(at::kFloat).view({1, 12})));
  const MaskedForward keep = masked_forward(*model_, x, "ltmp", inf, minus_inf, ste);
  EXPECT_NEAR(keep.macs_ratio.item<double>(), 1.0, test::kFlopsRatioRelTol);
  EXPECT_LT(test::relative_max_error(keep.logits, none.logits), test::kLogitRelTol);
}

// ---------------------------------------------------------------------------------------------------------
// MACs ratio, trace, grouping

TEST_F(LearnedThresholds_, TrainingFlopsRatioIsModelCost) {
  at::NoGradGuard no_grad;
  const LearnedThresholds t = some_thresholds("ltmp");
  const MaskedForward f =
      masked_forward(*model_, images_, "ltmp", as_tensor(t.merge), as_tensor(t.prune), MaskOptions{});
  const VitConfig& c = model_->config();
  double sum = 0;
  for (int64_t b = 0; b < images_.size(0); ++b) {
    std::vector<int> tokens;
    for (int l = 0; l < 12; ++l) tokens.push_back(static_cast<int>(std::lround(f.tokens[b][l].item<double>())));
    sum += model_cost(c, tokens, nullptr).total();
  }
  const double expected = sum / images_.size(0) / model_cost(c, {}, nullptr).total();
  EXPECT_NEAR(f.macs_ratio.item<double>(), expected, test::kFlopsRatioRelTol * expected);
  EXPECT_LT(expected, 0.9);
}

TEST_F(LearnedThresholds_, TraceMarksPrunedTokens) {
  c10::InferenceMode guard;
  RunOptions opts;
  opts.trace = true;
  for (const std::string spec : {"ltp:prune=0.004", "ltmp:merge=0.85,prune=0.004", "tome:r=13"}) {
    SCOPED_TRACE(spec);
    const auto reducer = make_reducer(spec);
    const RunResult r = run(*model_, images_, reducer.get(), opts);
    ASSERT_EQ(r.traces.size(), 3u);
    size_t pruned_total = 0;
    for (const ImageTrace& trace : r.traces) {
      std::vector<int32_t> previous(197);
      for (int t = 0; t < 197; ++t) previous[t] = t;
      for (const LayerTrace& lt : trace.layers) {
        std::vector<int32_t> newly;
        for (int t = 0; t < 197; ++t)
          if (previous[t] >= 0 && lt.cluster_of_token[t] < 0) newly.push_back(t);
        EXPECT_EQ(lt.pruned, newly);
        pruned_total += lt.pruned.size();
        for (int t = 0; t < trace.prefix_tokens; ++t) EXPECT_GE(lt.cluster_of_token[t], 0) << "CLS pruned";
        previous = lt.cluster_of_token;
      }
    }
    if (spec.rfind("tome", 0) == 0)
      EXPECT_EQ(pruned_total, 0u);
    else
      EXPECT_GT(pruned_total, 0u);
  }
}

TEST_F(LearnedThresholds_, BatchRunsEachImageWithItsOwnTokenCount) {
  c10::InferenceMode guard;
  const auto reducer = make_reducer("ltmp:merge=0.85,prune=0.003");
  const RunResult batch = run(*model_, images_, reducer.get());
  ASSERT_EQ(batch.logits.size(0), 3);
  bool differ = false;
  for (int64_t b = 0; b < 3; ++b) {
    const RunResult one = run(*model_, images_.slice(0, b, b + 1), reducer.get());
    EXPECT_EQ(batch.tokens_per_image[b], one.tokens_per_layer);
    EXPECT_TRUE(at::equal(batch.logits[b], one.logits[0]));
    differ |= batch.tokens_per_image[b] != batch.tokens_per_image[0];
  }
  EXPECT_TRUE(differ) << "expected image-dependent token counts";
}

TEST_F(LearnedThresholds_, CalibrationIsDeterministicAndMovesTowardTheTarget) {
  CalibrationOptions o;
  o.method = "ltmp";
  o.batch = 2;
  o.target_macs = 0.5;
  o.lr_prune = 1e-4;
  o.seed = 7;
  const at::Tensor labels = at::tensor({0, 10, 21}, at::kLong);
  const CalibrationResult a = calibrate(*model_, images_, labels, o);
  const CalibrationResult b = calibrate(*model_, images_, labels, o);
  EXPECT_EQ(a.thresholds.merge, b.thresholds.merge);
  EXPECT_EQ(a.thresholds.prune, b.thresholds.prune);
  ASSERT_EQ(a.steps.size(), 2u);
  // The first step starts above the target, so the penalty lowers merge thresholds / raises prune ones.
  double moved = 0;
  for (int l = 0; l < 12; ++l) moved += (0.9 - a.thresholds.merge[l]) + a.thresholds.prune[l];
  EXPECT_GT(moved, 0.0);
  o.distill = true;  // no labels needed
  const CalibrationResult d = calibrate(*model_, images_, at::Tensor(), o);
  EXPECT_TRUE(std::isfinite(d.steps.back().loss));
}

// ---------------------------------------------------------------------------------------------------------
// Files and specs

TEST(LearnedThresholdFiles, RoundTripWithInfinities) {
  LearnedThresholds t;
  t.method = "ltmp";
  t.merge = {0.9, kInf, 0.5};
  t.prune = {0.001, -kInf, kInf};
  t.calibration = "{\"seed\": 1}";
  const std::string path = "/tmp/mergescope_lt_" + std::to_string(getpid()) + "_rt.json";
  save_thresholds(path, t);
  const LearnedThresholds u = load_thresholds(path, "ltmp");
  EXPECT_EQ(u.merge, t.merge);
  EXPECT_EQ(u.prune, t.prune);
  std::remove(path.c_str());
}

TEST(LearnedThresholdFiles, ImportsLtmpCheckpointKeys) {
  const std::string path = "/tmp/mergescope_lt_" + std::to_string(getpid()) + "_ckpt.safetensors";
  std::map<std::string, at::Tensor> tensors;
  for (int l = 0; l < 12; ++l) {
    tensors["blocks." + std::to_string(l) + ".merge_masker.threshold"] = at::full({1}, 0.8 + 0.01 * l);
    tensors["blocks." + std::to_string(l) + ".prune_masker.threshold"] = at::full({1}, 0.001 * l);
    tensors["blocks." + std::to_string(l) + ".attn.qkv.weight"] = at::zeros({2, 2});  // a full checkpoint has more
  }
  write_safetensors(path, tensors);
  const LearnedThresholds t = load_thresholds(path, "ltmp");
  ASSERT_EQ(t.depth(), 12);
  EXPECT_NEAR(t.merge[3], 0.83, 1e-6);
  EXPECT_NEAR(t.prune[5], 0.005, 1e-6);
  EXPECT_NO_THROW(make_reducer("ltmp:thresholds=" + path));
  // An ltp run cannot silently drop the merge thresholds.
  try {
    load_thresholds(path, "ltp");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("merge"), std::string::npos) << e.what();
  }
  // A missing block.
  tensors.erase("blocks.4.prune_masker.threshold");
  write_safetensors(path, tensors);
  try {
    load_thresholds(path, "ltmp");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.4.prune_masker.threshold"), std::string::npos) << e.what();
  }
  std::remove(path.c_str());
}

void expect_file_error(const std::string& content, const std::string& method, const std::string& keyword) {
  const std::string path = "/tmp/mergescope_lt_" + std::to_string(getpid()) + "_bad.json";
  {
    std::ofstream f(path);
    f << content;
  }
  SCOPED_TRACE(content);
  try {
    load_thresholds(path, method);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << "does not start with the path: " << msg;
    EXPECT_NE(msg.find(keyword), std::string::npos) << "lacks '" << keyword << "': " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  std::remove(path.c_str());
}

TEST(LearnedThresholdFiles, BadFilesGiveClearErrors) {
  expect_file_error("{not json", "ltmp", "not valid JSON");
  expect_file_error("[1, 2]", "ltmp", "no \"blocks\"");
  expect_file_error("{\"blocks\": []}", "ltmp", "non-empty");
  expect_file_error("{\"method\": \"ltp\", \"blocks\": [{\"prune\": 0.1}]}", "ltmp", "holds ltp thresholds");
  expect_file_error("{\"method\": \"ltmp\", \"blocks\": [{\"merge\": 0.9, \"prune\": 0.1}]}", "ltp",
                    "holds ltmp thresholds");
  expect_file_error("{\"blocks\": [{\"merge\": 0.9}]}", "ltmp", "block 0 has no \"prune\"");
  expect_file_error("{\"blocks\": [{\"prune\": 0.1}]}", "ltmp", "no \"merge\"");
  expect_file_error("{\"blocks\": [{\"merge\": 0.9, \"prune\": 0.1}]}", "ltp", "ltp only prunes");
  expect_file_error("{\"blocks\": [{\"merge\": \"high\", \"prune\": 0.1}]}", "ltmp", "block 0 merge is \"high\"");
  expect_file_error("{\"blocks\": [{\"merge\": 0.9, \"prune\": 0.1, \"r\": 3}]}", "ltmp", "unknown key 'r'");
  try {
    load_thresholds("/nonexistent/th.json", "ltmp");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/th.json: cannot open thresholds file");
  }
}

TEST(LearnedThresholdFiles, SpecsAndDepthMismatch) {
  auto expect_error = [](const std::string& spec, const std::string& keyword) {
    try {
      make_reducer(spec);
      ADD_FAILURE() << "no error for " << spec;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(keyword), std::string::npos) << e.what();
    }
  };
  expect_error("ltmp", "needs thresholds=FILE");
  expect_error("ltmp:prune=0.01", "both merge=V and prune=V");
  expect_error("ltp:prune=abc", "not a number");
  expect_error("ltp:prune=0.01,merge=0.9", "unknown key 'merge'");
  expect_error("ltmp:merge=0.9,prune=0.1,r=3", "unknown key 'r'");
  EXPECT_EQ(make_reducer("ltmp:merge=inf,prune=-inf")->spec(), "ltmp:merge=inf,prune=-inf");

  // 3 blocks of thresholds on a 12-block model: the error names the file at the first use.
  LearnedThresholds t;
  t.method = "ltp";
  t.prune = {0.1, 0.1, 0.1};
  const std::string path = "/tmp/mergescope_lt_" + std::to_string(getpid()) + "_depth.json";
  save_thresholds(path, t);
  const auto model = Model::random("deit_tiny_patch16_224");
  const auto reducer = make_reducer("ltp:thresholds=" + path);
  c10::InferenceMode guard;
  try {
    run(*model, at::zeros({1, 3, 224, 224}), reducer.get());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ": has thresholds for 3 blocks, but the model has 12 (thresholds are learned per model)");
  }
  // The CLI: one line, exit 1.
  const auto r = test::run_command(
      test::cli_path() +
      " eval --model deit_tiny_patch16_224 --images ../shared/data/imagenet-sample --limit 1 --method ltp:thresholds=" +
      path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "mergescope-cli: error: " + path +
                       ": has thresholds for 3 blocks, but the model has 12 (thresholds are learned per model)\n");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ms
