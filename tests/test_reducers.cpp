// Reducer behaviour beyond the golden vectors: spec parsing and its errors, ToMe's r schedule, the engine's
// trace invariants for every method, the distillation token, apply_plan, PiToMe ratio matching, the random
// floor's seeding, and the CLI's trace JSON.
#include "config.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "model.h"
#include "reduce/reducer.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace ms {
namespace {

// ---------------------------------------------------------------------------------------------------------
// 1. Spec strings

void expect_spec_error(const std::string& spec, const std::string& keyword) {
  SCOPED_TRACE("spec '" + spec + "'");
  try {
    make_reducer(spec);
    ADD_FAILURE() << "no error for '" << spec << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'" + spec + "'"), std::string::npos) << "message does not quote the spec: " << msg;
    EXPECT_NE(msg.find(keyword), std::string::npos) << "message lacks '" << keyword << "': " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an ms::Error: " << e.what();
  }
}

TEST(ReducerSpec, UnknownMethod) { expect_spec_error("foo:r=1", "unknown method 'foo'"); }
TEST(ReducerSpec, UnknownKey) { expect_spec_error("tome:r=8,x=1", "unknown key 'x'"); }
TEST(ReducerSpec, NegativeR) {
  expect_spec_error("tome:r=-1", "outside");
  expect_spec_error("random:r=-1", "outside");
}
TEST(ReducerSpec, RatioOutOfRange) {
  expect_spec_error("pitome:ratio=0.4", "outside");
  expect_spec_error("pitome-code:ratio=1.5", "outside");
  expect_spec_error("pitome:ratio=-0.9", "outside");
  expect_spec_error("pitome:ratio=nan", "not a number");
  expect_spec_error("pitome:ratio=inf", "not a number");
}
TEST(ReducerSpec, MalformedNumbers) {
  expect_spec_error("tome:r=abc", "not an integer");
  expect_spec_error("tome:r=8x", "not an integer");
  expect_spec_error("tome:r=", "not an integer");
  expect_spec_error("tome:r=8.5", "not an integer");
  expect_spec_error("pitome:ratio=0.9.1", "not a number");
  expect_spec_error("pitome:ratio=", "not a number");
  expect_spec_error("tome:r=16,inflect=x", "not a number");
  expect_spec_error("tome:schedule=8;x;4", "not a non-negative integer");
  expect_spec_error("tome:schedule=8;;4", "not a non-negative integer");
  expect_spec_error("tome:schedule=8;-1", "not a non-negative integer");
}
TEST(ReducerSpec, MissingEquals) {
  expect_spec_error("tome:r", "key=value");
  expect_spec_error("tome:r=8,", "key=value");
  expect_spec_error("tome:=8", "key=value");
  expect_spec_error("pitome:", "key=value");
}
TEST(ReducerSpec, DuplicateKey) { expect_spec_error("tome:r=8,r=9", "twice"); }
TEST(ReducerSpec, MissingRequiredKey) {
  expect_spec_error("tome", "needs r");
  expect_spec_error("tome:prop_attn=0", "needs r");
  expect_spec_error("pitome", "needs ratio");
  expect_spec_error("pitome-code", "needs ratio");
  expect_spec_error("random", "needs r");
  expect_spec_error("tome:r=8,schedule=8;8", "not both");
}
TEST(ReducerSpec, BadBoolean) { expect_spec_error("tome:r=8,prop_attn=maybe", "not a boolean"); }
TEST(ReducerSpec, NoMethodName) { expect_spec_error(":r=1", "no method name"); }

TEST(ReducerSpec, ValidSpecsParse) {
  for (const char* s : {"none", "tome:r=13", "tome:r=16,inflect=-1", "tome:r=8,prop_attn=0", "pitome:ratio=0.9",
                        "pitome-code:ratio=0.9", "random:r=13", "tome:schedule=8;8;4", "pitome:ratio=0.5",
                        "pitome:ratio=1", "tome:r=0", "random:r=13,seed=7", "tome:r=8,prop_attn=1"}) {
    SCOPED_TRACE(s);
    std::unique_ptr<Reducer> r;
    EXPECT_NO_THROW(r = make_reducer(s));
    EXPECT_TRUE(r != nullptr);
  }
}

TEST(ReducerSpec, Properties) {
  EXPECT_TRUE(make_reducer("tome:r=13")->proportional_attention());
  EXPECT_FALSE(make_reducer("tome:r=8,prop_attn=0")->proportional_attention());
  EXPECT_TRUE(make_reducer("pitome:ratio=0.9")->proportional_attention());
  EXPECT_FALSE(make_reducer("pitome-code:ratio=0.9")->proportional_attention());
  EXPECT_FALSE(make_reducer("random:r=13")->proportional_attention());
  EXPECT_FALSE(make_reducer("none")->proportional_attention());
}

// spec() is documented as the canonical spec string: canonical inputs come back unchanged.
TEST(ReducerSpec, CanonicalSpecRoundTrips) {
  for (const char* s : {"none", "tome:r=13", "tome:r=16,inflect=-1", "tome:r=13,inflect=0.5", "tome:r=8,prop_attn=0",
                        "tome:schedule=8;8;4", "pitome:ratio=0.9", "pitome-code:ratio=0.9", "pitome:ratio=1",
                        "random:r=13", "random:r=13,seed=7"}) {
    EXPECT_EQ(make_reducer(s)->spec(), s);
  }
}

TEST(ReducerSpec, MethodListIsComplete) {
  std::vector<std::string> names;
  for (const auto& [name, description] : reducer_methods()) {
    names.push_back(name);
    EXPECT_FALSE(description.empty()) << name;
  }
  for (const char* m : {"none", "tome", "pitome", "pitome-code", "random"})
    EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
}

// ---------------------------------------------------------------------------------------------------------
// 2. ToMe's r schedule

// ToMe's utils.parse_r, written out independently: a list padded with zeros, or (r, inflect).
std::vector<int> parse_r(int depth, int r, double inflect) {
  const int lo = static_cast<int>(r * (1.0 - inflect));
  const int hi = 2 * r - lo;
  const double step = static_cast<double>(hi - lo) / (depth - 1);
  std::vector<int> out;
  for (int l = 0; l < depth; ++l) out.push_back(static_cast<int>(lo + step * l));
  return out;
}

// Token counts ToMe produces: r clamped to (tokens - protected) // 2 in every block.
std::vector<int> tome_tokens(int tokens, int prefix, const std::vector<int>& rs) {
  std::vector<int> out;
  for (int r : rs) {
    tokens -= std::min(r, (tokens - prefix) / 2);
    out.push_back(tokens);
  }
  return out;
}

TEST(TomeSchedule, InflectMinusOne) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  ASSERT_EQ(c.depth, 12);
  ASSERT_EQ(c.num_tokens(), 197);
  const std::vector<int> rs = parse_r(c.depth, 16, -1.0);
  EXPECT_EQ(rs, (std::vector<int>{32, 29, 26, 23, 20, 17, 14, 11, 8, 5, 2, 0}));
  const auto reducer = make_reducer("tome:r=16,inflect=-1");
  const std::vector<int> predicted = predicted_tokens(c, *reducer);
  EXPECT_EQ(predicted, tome_tokens(197, 1, rs));
  EXPECT_EQ(predicted, (std::vector<int>{165, 136, 110, 87, 67, 50, 36, 25, 17, 12, 10, 10}));
}

TEST(TomeSchedule, OtherInflections) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  for (const auto& [r, inflect, text] :
       std::vector<std::tuple<int, double, std::string>>{{13, 0.5, "tome:r=13,inflect=0.5"},
                                                         {8, -0.5, "tome:r=8,inflect=-0.5"},
                                                         {20, 1.0, "tome:r=20,inflect=1"},
                                                         {11, -0.3, "tome:r=11,inflect=-0.3"}}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(predicted_tokens(c, *make_reducer(text)), tome_tokens(197, 1, parse_r(c.depth, r, inflect)));
  }
}

TEST(TomeSchedule, ConstantR) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  const std::vector<int> predicted = predicted_tokens(c, *make_reducer("tome:r=13"));
  ASSERT_EQ(predicted.size(), 12u);
  for (int l = 0; l < 12; ++l) EXPECT_EQ(predicted[l], 197 - 13 * (l + 1)) << "layer " << l;
  // r = 0 keeps everything.
  EXPECT_EQ(predicted_tokens(c, *make_reducer("tome:r=0")), std::vector<int>(12, 197));
}

TEST(TomeSchedule, ShortListPaddedWithZeros) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  std::vector<int> expected = {189, 181, 177};
  expected.resize(12, 177);
  EXPECT_EQ(predicted_tokens(c, *make_reducer("tome:schedule=8;8;4")), expected);
  // A full-length list is taken as is, with clamping.
  const std::vector<int> full = {50, 50, 50, 50, 1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(predicted_tokens(c, *make_reducer("tome:schedule=50;50;50;50;1;1;1;1;1;1;1;1")), tome_tokens(197, 1, full));
}

TEST(TomeSchedule, ClampedToHalfTheTokens) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  const std::vector<int> predicted = predicted_tokens(c, *make_reducer("tome:r=16"));
  EXPECT_EQ(predicted, tome_tokens(197, 1, std::vector<int>(12, 16)));
  EXPECT_EQ(predicted, (std::vector<int>{181, 165, 149, 133, 117, 101, 85, 69, 53, 37, 21, 11}));
  // A huge r halves (rounding the merged count down) every block.
  EXPECT_EQ(predicted_tokens(c, *make_reducer("tome:r=1000")), tome_tokens(197, 1, std::vector<int>(12, 1000)));
}

// ---------------------------------------------------------------------------------------------------------
// Shared fixture: the real DeiT-tiny and two golden input images.

class Images : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const SafetensorsFile golden = read_safetensors(test::golden_file());
    images_ = new at::Tensor(golden.tensors.at("input").slice(0, 0, 2).clone());
    model_ = Model::load("deit_tiny_patch16_224");
  }
  static void TearDownTestSuite() {
    delete images_;
    images_ = nullptr;
    model_.reset();
  }
  static at::Tensor* images_;
  static std::shared_ptr<const Model> model_;
};
at::Tensor* Images::images_ = nullptr;
std::shared_ptr<const Model> Images::model_;

TEST_F(Images, ClampNoteInTrace) {
  c10::InferenceMode guard;
  auto reducer = make_reducer("tome:r=16");
  RunOptions options;
  options.trace = true;
  const RunResult r = run(*model_, images_->slice(0, 0, 1), reducer.get(), options);
  EXPECT_EQ(r.tokens_per_layer, predicted_tokens(model_->config(), *reducer));
  ASSERT_EQ(r.traces.size(), 1u);
  ASSERT_EQ(r.traces[0].layers.size(), 12u);
  for (int l = 0; l < 11; ++l) EXPECT_EQ(r.traces[0].layers[l].note, "") << "layer " << l;
  const std::string& note = r.traces[0].layers[11].note;
  EXPECT_NE(note.find("clamped"), std::string::npos) << note;
  EXPECT_NE(note.find("16"), std::string::npos) << note;
  EXPECT_NE(note.find("10"), std::string::npos) << note;
}

// ---------------------------------------------------------------------------------------------------------
// 3. Engine invariants for every method

void check_trace_invariants(const RunResult& r, const std::vector<int>& predicted, int64_t batch, int original,
                            int prefix) {
  ASSERT_EQ(r.traces.size(), static_cast<size_t>(batch));
  ASSERT_FALSE(predicted.empty());
  EXPECT_EQ(r.tokens_per_layer, predicted);
  for (int64_t b = 0; b < batch; ++b) {
    const ImageTrace& t = r.traces[b];
    EXPECT_EQ(t.original_tokens, original);
    EXPECT_EQ(t.prefix_tokens, prefix);
    ASSERT_EQ(t.layers.size(), predicted.size());
    int tokens_in = original;
    for (size_t l = 0; l < t.layers.size(); ++l) {
      SCOPED_TRACE("image " + std::to_string(b) + " layer " + std::to_string(l));
      const LayerTrace& lt = t.layers[l];
      EXPECT_EQ(lt.tokens_in, tokens_in);
      EXPECT_EQ(lt.tokens, predicted[l]);
      tokens_in = lt.tokens;
      ASSERT_EQ(lt.sizes.size(), static_cast<size_t>(lt.tokens));
      ASSERT_EQ(lt.cluster_of_token.size(), static_cast<size_t>(original));
      double total = 0;
      for (float s : lt.sizes) total += s;
      EXPECT_NEAR(total, original, 1e-3);
      std::vector<int> members(lt.tokens, 0);
      bool in_range = true;
      for (int32_t c : lt.cluster_of_token) {
        if (c < 0 || c >= lt.tokens) {
          in_range = false;
          continue;
        }
        ++members[c];
      }
      ASSERT_TRUE(in_range) << "cluster_of_token outside [0, tokens)";
      for (int j = 0; j < lt.tokens; ++j) {
        EXPECT_GT(members[j], 0) << "output token " << j << " holds no original token";
        EXPECT_EQ(lt.sizes[j], static_cast<float>(members[j])) << "output token " << j;
      }
      for (int p = 0; p < prefix; ++p) {
        EXPECT_EQ(lt.cluster_of_token[p], p) << "prefix token " << p << " left its slot";
        EXPECT_EQ(members[p], 1) << "prefix token " << p << " was merged";
      }
      ASSERT_EQ(lt.energy.size(), static_cast<size_t>(lt.tokens_in));
      for (int i = 0; i < lt.tokens_in; ++i) {
        if (i < prefix)
          EXPECT_TRUE(std::isnan(lt.energy[i])) << "energy of prefix token " << i;
        else
          EXPECT_TRUE(std::isfinite(lt.energy[i])) << "energy of token " << i << " = " << lt.energy[i];
      }
    }
  }
}

class EngineInvariants : public Images, public ::testing::WithParamInterface<const char*> {};

TEST_P(EngineInvariants, TraceIsConsistent) {
  c10::InferenceMode guard;
  auto reducer = make_reducer(GetParam());
  RunOptions options;
  options.trace = options.trace_energy = true;
  const RunResult r = run(*model_, *images_, reducer.get(), options);
  ASSERT_EQ(r.logits.size(0), images_->size(0));
  EXPECT_TRUE(r.logits.isfinite().all().item<bool>());
  check_trace_invariants(r, predicted_tokens(model_->config(), *reducer), images_->size(0), 197, 1);
}

// Reducers work per image: an image's partition and logits do not depend on its batch neighbours (random's
// draws neither: it seeds per image from the image's pixels).
class BatchIndependence : public Images, public ::testing::WithParamInterface<const char*> {};

TEST_P(BatchIndependence, SameAsAlone) {
  c10::InferenceMode guard;
  RunOptions options;
  options.trace = true;
  auto batch_reducer = make_reducer(GetParam());
  const RunResult both = run(*model_, *images_, batch_reducer.get(), options);
  auto single_reducer = make_reducer(GetParam());
  const RunResult second = run(*model_, images_->slice(0, 1, 2), single_reducer.get(), options);
  for (size_t l = 0; l < second.traces[0].layers.size(); ++l)
    EXPECT_EQ(both.traces[1].layers[l].cluster_of_token, second.traces[0].layers[l].cluster_of_token) << "layer " << l;
  EXPECT_LT(test::relative_max_error(both.logits.slice(0, 1, 2), second.logits), test::kLogitRelTol);
}

INSTANTIATE_TEST_SUITE_P(Methods, EngineInvariants,
                         ::testing::Values("none", "tome:r=13", "tome:r=16,prop_attn=0", "pitome:ratio=0.9",
                                           "pitome-code:ratio=0.9", "random:r=13", "tome:r=16,inflect=-1"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });
INSTANTIATE_TEST_SUITE_P(Methods, BatchIndependence,
                         ::testing::Values("tome:r=13", "tome:r=16,prop_attn=0", "pitome:ratio=0.9",
                                           "pitome-code:ratio=0.9", "random:r=13", "random:r=8,seed=3"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

// No reducer at all (the CLI's "none") traces the identity partition with reference energies.
TEST_F(Images, NullReducerTracesIdentity) {
  c10::InferenceMode guard;
  RunOptions options;
  options.trace = options.trace_energy = true;
  const RunResult r = run(*model_, *images_, nullptr, options);
  check_trace_invariants(r, std::vector<int>(12, 197), images_->size(0), 197, 1);
  for (const auto& t : r.traces)
    for (const auto& lt : t.layers)
      for (int i = 0; i < 197; ++i) ASSERT_EQ(lt.cluster_of_token[i], i);
  // ...and the same logits as the plain forward pass.
  EXPECT_LT(test::relative_max_error(r.logits, model_->forward(*images_)), test::kLogitRelTol);
}

// ---------------------------------------------------------------------------------------------------------
// 4. Distillation token

class Distilled : public ::testing::TestWithParam<const char*> {};

TEST_P(Distilled, PrefixTokensStayAlone) {
  c10::InferenceMode guard;
  const auto model = Model::random("deit_tiny_distilled_patch16_224");
  ASSERT_TRUE(model->config().distilled);
  ASSERT_EQ(model->config().num_prefix_tokens(), 2);
  at::manual_seed(0);
  const at::Tensor images = at::randn({2, 3, 224, 224}, at::TensorOptions().dtype(at::kFloat));
  auto reducer = make_reducer(GetParam());
  RunOptions options;
  options.trace = options.trace_energy = true;
  const RunResult r = run(*model, images, reducer.get(), options);
  EXPECT_TRUE(r.logits.isfinite().all().item<bool>());
  const std::vector<int> predicted = predicted_tokens(model->config(), *reducer);
  check_trace_invariants(r, predicted, 2, 198, 2);
  if (std::string(GetParam()) == "tome:r=8")
    for (int l = 0; l < 12; ++l) EXPECT_EQ(predicted[l], 198 - 8 * (l + 1));
}

INSTANTIATE_TEST_SUITE_P(Methods, Distilled,
                         ::testing::Values("tome:r=8", "tome:r=16", "pitome:ratio=0.9", "pitome-code:ratio=0.9",
                                           "random:r=8"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

// ---------------------------------------------------------------------------------------------------------
// 5. apply_plan

TEST(ApplyPlan, SizeWeightedMeans) {
  const auto f = at::TensorOptions().dtype(at::kFloat);
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  // Two images, five tokens, two channels.
  const at::Tensor x = at::tensor({1.f,  10.f, 2.f,  20.f, 3.f,  30.f, 4.f,  40.f, 5.f,  50.f,  //
                                   -1.f, 0.f,  -2.f, 0.f,  -3.f, 0.f,  -4.f, 0.f,  -5.f, 0.f},
                                  f)
                           .view({2, 5, 2});
  const at::Tensor size = at::tensor({1.f, 2.f, 1.f, 3.f, 1.f, 1.f, 1.f, 1.f, 1.f, 4.f}, f).view({2, 5});
  const at::Tensor dest = at::tensor({0, 1, 0, 2, 1, 2, 2, 1, 0, 0}, i64).view({2, 5});
  const auto [nx, ns] = apply_plan(x, size, dest, 3);
  ASSERT_EQ(nx.sizes(), (at::IntArrayRef{2, 3, 2}));
  ASSERT_EQ(ns.sizes(), (at::IntArrayRef{2, 3}));
  // Image 0: slot 0 = tokens 0, 2 (sizes 1, 1); slot 1 = tokens 1, 4 (sizes 2, 1); slot 2 = token 3 (size 3).
  const at::Tensor want_x0 =
      at::tensor({2.f, 20.f, (2 * 2.f + 5.f) / 3, (2 * 20.f + 50.f) / 3, 4.f, 40.f}, f).view({3, 2});
  const at::Tensor want_s0 = at::tensor({2.f, 3.f, 3.f}, f);
  // Image 1: slot 0 = tokens 3, 4 (sizes 1, 4); slot 1 = token 2; slot 2 = tokens 0, 1.
  const at::Tensor want_x1 = at::tensor({(-4.f - 4 * 5.f) / 5, 0.f, -3.f, 0.f, -1.5f, 0.f}, f).view({3, 2});
  const at::Tensor want_s1 = at::tensor({5.f, 1.f, 2.f}, f);
  EXPECT_TRUE(at::allclose(nx[0], want_x0, 1e-6, 1e-6)) << nx[0];
  EXPECT_TRUE(at::allclose(nx[1], want_x1, 1e-6, 1e-6)) << nx[1];
  EXPECT_TRUE(at::equal(ns[0], want_s0)) << ns[0];
  EXPECT_TRUE(at::equal(ns[1], want_s1)) << ns[1];
}

TEST(ApplyPlan, MinusOneDropsToken) {
  const auto f = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor x = at::tensor({1.f, 2.f, 3.f, 100.f, 5.f}, f).view({1, 5, 1});
  const at::Tensor size = at::tensor({1.f, 2.f, 1.f, 7.f, 1.f}, f).view({1, 5});
  const at::Tensor dest = at::tensor({0, 1, 0, -1, 1}, at::TensorOptions().dtype(at::kLong)).view({1, 5});
  const auto [nx, ns] = apply_plan(x, size, dest, 2);
  ASSERT_EQ(nx.sizes(), (at::IntArrayRef{1, 2, 1}));
  ASSERT_EQ(ns.sizes(), (at::IntArrayRef{1, 2}));
  EXPECT_TRUE(at::allclose(nx.flatten(), at::tensor({2.f, (2 * 2.f + 5.f) / 3}, f), 1e-6, 1e-6)) << nx;
  EXPECT_TRUE(at::equal(ns.flatten(), at::tensor({2.f, 3.f}, f))) << ns;
  // The inputs are not modified.
  EXPECT_EQ(dest[0][3].item<int64_t>(), -1);
  EXPECT_EQ(size[0][3].item<float>(), 7.f);
}

// The CPU fast path against the ATen scatter_add path (the one other devices run) on random plans:
// many-to-one slots, single-contributor slots and pruned tokens in every image.
TEST(ApplyPlan, CpuPathMatchesAtenPath) {
  at::manual_seed(7);
  const int64_t B = 3, N = 40, C = 17, T = 15;
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  for (int trial = 0; trial < 5; ++trial) {
    const at::Tensor x = at::randn({B, N, C});
    const at::Tensor size = at::rand({B, N}) * 4 + 1;
    // Every slot gets token t = slot; the rest land anywhere, or are pruned (-1).
    at::Tensor dest = at::randint(-1, T, {B, N}, i64);
    dest.slice(1, 0, T).copy_(at::arange(T, i64).expand({B, T}));
    dest = dest.index_select(1, at::randperm(N, i64));
    const auto [nx, ns] = apply_plan(x, size, dest, T);
    const auto [want_x, want_s] = apply_plan_aten(x, size, dest, T);
    EXPECT_TRUE(at::allclose(ns, want_s, 1e-6, 0)) << "trial " << trial;
    EXPECT_TRUE(at::allclose(nx, want_x, 1e-6, 1e-6))
        << "trial " << trial << " max diff " << (nx - want_x).abs().max().item<float>();
  }
}

TEST(ApplyPlan, IdentityPlanKeepsTokens) {
  const at::Tensor x = at::randn({2, 6, 4});
  const at::Tensor size = at::rand({2, 6}) + 1;
  const at::Tensor dest = at::arange(6, at::TensorOptions().dtype(at::kLong)).expand({2, 6}).contiguous();
  const auto [nx, ns] = apply_plan(x, size, dest, 6);
  EXPECT_TRUE(at::allclose(nx, x, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(ns, size));
}

// ---------------------------------------------------------------------------------------------------------
// 6. match_strength for pitome / pitome-code (the keep ratio)

double pitome_gmacs(const VitConfig& c, const std::string& method, double ratio) {
  char spec[64];
  std::snprintf(spec, sizeof spec, "%s:ratio=%.4f", method.c_str(), ratio);
  const auto reducer = make_reducer(spec);
  return model_cost(c, predicted_tokens(c, *reducer), reducer.get()).gmacs();
}

TEST(MatchPitomeRatio, MatchesTomeR13) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  const auto tome = make_reducer("tome:r=13");
  const double target = model_cost(c, predicted_tokens(c, *tome), tome.get()).gmacs();
  const double none = model_cost(c, std::vector<int>(12, 197), nullptr).gmacs();
  ASSERT_LT(target, none);
  for (const std::string method : {"pitome", "pitome-code"}) {
    SCOPED_TRACE(method);
    const std::string spec = match_strength(c, method, target);
    ASSERT_EQ(spec.rfind(method + ":ratio=", 0), 0u) << spec;
    const double ratio = std::stod(spec.substr(spec.find('=') + 1));
    EXPECT_GE(ratio, 0.5);
    EXPECT_LE(ratio, 1.0);
    EXPECT_NEAR(ratio * 1e4, std::round(ratio * 1e4), 1e-6) << "not on the 1e-4 grid: " << ratio;
    const double best = std::fabs(pitome_gmacs(c, method, ratio) - target);
    EXPECT_LT(best / target, 0.01) << "ratio " << ratio << " gives " << pitome_gmacs(c, method, ratio)
                                   << " GMACs for target " << target;
    for (int k : {-50, -10, -3, -2, -1, 1, 2, 3, 10, 50}) {
      const double other = std::round(ratio * 1e4 + k) * 1e-4;
      if (other < 0.5 || other > 1.0) continue;
      EXPECT_GE(std::fabs(pitome_gmacs(c, method, other) - target), best) << "ratio " << other << " is closer";
    }
    for (double other : {0.5, 0.75, 0.85, 0.9, 0.95, 1.0})
      EXPECT_GE(std::fabs(pitome_gmacs(c, method, other) - target), best) << "ratio " << other << " is closer";
  }
}

// ---------------------------------------------------------------------------------------------------------
// 7. Random reducer seeding

std::vector<std::vector<int32_t>> partitions(const RunResult& r) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& t : r.traces)
    for (const auto& lt : t.layers) out.push_back(lt.cluster_of_token);
  return out;
}

TEST_F(Images, RandomSeed) {
  c10::InferenceMode guard;
  RunOptions options;
  options.trace = true;
  auto run_spec = [&](const std::string& spec, uint64_t global_seed) {
    at::manual_seed(global_seed);  // the reducer's own generator must not depend on the global one
    auto reducer = make_reducer(spec);
    return partitions(run(*model_, *images_, reducer.get(), options));
  };
  const auto a = run_spec("random:r=13,seed=1", 100);
  const auto b = run_spec("random:r=13,seed=1", 200);
  const auto c = run_spec("random:r=13,seed=2", 100);
  const auto d0 = run_spec("random:r=13", 100);
  const auto d1 = run_spec("random:r=13,seed=0", 300);
  EXPECT_EQ(a, b) << "same seed, different partitions";
  EXPECT_NE(a, c) << "different seeds, same partitions";
  EXPECT_EQ(d0, d1) << "default seed is not seed=0";
  // Layer 0 already differs between seeds (13 random pairs out of 196 tokens coinciding is implausible).
  EXPECT_NE(a.front(), c.front());
}

// ---------------------------------------------------------------------------------------------------------
// 8. CLI

class TempFile {
 public:
  explicit TempFile(const std::string& suffix) {
    char name[] = "/tmp/ms_test_reducersXXXXXX";
    const int fd = mkstemp(name);
    close(fd);
    std::remove(name);
    path_ = std::string(name) + suffix;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(Cli, TraceJson) {
  const TempFile out(".json");
  const std::string image = test::shared_image("n01440764_tench.JPEG");
  const auto r = test::run_command(test::cli_path() + " trace --model deit_tiny_patch16_224 --method tome:r=13 " +
                                   image + " --out " + out.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream f(out.path());
  ASSERT_TRUE(f.good()) << "no " << out.path();
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(f));
  ASSERT_TRUE(j.is_object());
  for (const char* key : {"model", "method", "image", "gmacs", "matching_gmacs", "top5", "layers"})
    ASSERT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j["model"].is_string() && !j["model"].get<std::string>().empty());
  EXPECT_EQ(j["method"], "tome:r=13");
  EXPECT_EQ(j["image"], image);

  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  const auto tome = make_reducer("tome:r=13");
  ASSERT_TRUE(j["gmacs"].is_number());
  EXPECT_NEAR(j["gmacs"].get<double>(), model_cost(c, predicted_tokens(c, *tome), tome.get()).gmacs(), 1e-9);
  EXPECT_FALSE(j.contains("gflops")) << "MACs are called MACs";

  ASSERT_TRUE(j["top5"].is_array());
  ASSERT_EQ(j["top5"].size(), 5u);
  double previous = 1.0;
  for (const auto& entry : j["top5"]) {
    ASSERT_TRUE(entry.is_array() && entry.size() == 3) << entry;
    EXPECT_TRUE(entry[0].is_string());
    const double p = entry[1].get<double>();
    EXPECT_GE(p, 0.0);
    EXPECT_LE(p, previous);
    previous = p;
    EXPECT_GE(entry[2].get<int>(), 0);
    EXPECT_LT(entry[2].get<int>(), 1000);
  }

  ASSERT_TRUE(j["layers"].is_array());
  ASSERT_EQ(j["layers"].size(), 12u);
  int tokens_in = 197;
  for (size_t l = 0; l < 12; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const auto& layer = j["layers"][l];
    for (const char* key : {"tokens", "cluster_of_token", "sizes", "energy"}) ASSERT_TRUE(layer.contains(key)) << key;
    const int tokens = layer["tokens"].get<int>();
    EXPECT_EQ(tokens, 197 - 13 * static_cast<int>(l + 1));
    ASSERT_EQ(layer["cluster_of_token"].size(), 197u);
    ASSERT_EQ(layer["sizes"].size(), static_cast<size_t>(tokens));
    double total = 0;
    for (const auto& s : layer["sizes"]) total += s.get<double>();
    EXPECT_NEAR(total, 197, 1e-3);
    for (const auto& cl : layer["cluster_of_token"]) {
      EXPECT_GE(cl.get<int>(), 0);
      EXPECT_LT(cl.get<int>(), tokens);
    }
    EXPECT_EQ(layer["cluster_of_token"][0], 0);
    ASSERT_EQ(layer["energy"].size(), static_cast<size_t>(tokens_in));
    EXPECT_TRUE(layer["energy"][0].is_null()) << "CLS energy should be null (NaN)";
    for (size_t i = 1; i < layer["energy"].size(); ++i) ASSERT_TRUE(layer["energy"][i].is_number()) << i;
    tokens_in = tokens;
  }
}

// bench --json: one object per method; speed-ups are against the first row (none) and the MAC ratio is
// that row's GMACs over this row's, both from the cost model for the token counts the run produced.
TEST(Cli, BenchJsonRows) {
  const auto r =
      test::run_command(test::cli_path() +
                        " bench --random-weights deit_tiny_patch16_224 --batch 2 --warmup 0 --repeat 1 --json"
                        " --method tome:r=13");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '{') rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[0]["method"], "none");
  EXPECT_EQ(rows[1]["method"], "tome:r=13");
  EXPECT_DOUBLE_EQ(rows[0]["speedup"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(rows[0]["mac_ratio"].get<double>(), 1.0);
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  const auto tome = make_reducer("tome:r=13");
  const double want =
      model_cost(c, {}, nullptr).gmacs() / model_cost(c, predicted_tokens(c, *tome), tome.get()).gmacs();
  EXPECT_NEAR(rows[1]["mac_ratio"].get<double>(), want, 1e-3);
  EXPECT_GT(rows[1]["speedup"].get<double>(), 0.0);
  for (const auto& row : rows) {
    EXPECT_GE(row["reducer_share"].get<double>(), 0.0);
    EXPECT_LT(row["reducer_share"].get<double>(), 1.0);
  }
}

TEST(Cli, BadSpecIsOneLineError) {
  const auto r = test::run_command(test::cli_path() +
                                   " eval --model deit_tiny_patch16_224 --images ../shared/data/imagenet-sample"
                                   " --method tome:r=-1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not exactly one line: " << r.err;
  EXPECT_NE(r.err.find("tome:r=-1"), std::string::npos) << r.err;
}

// Random merging is a pure function of (model, image, spec): per image the same predictions at batch 1 and 8, and
// for the images after --offset.
TEST(Cli, RandomIsTheSameAtAnyBatchAndOffset) {
  const std::string dir = test::make_temp_dir("ms_test_random");
  auto predictions = [&](const std::string& tag, const std::string& extra) {
    const auto r = test::run_command(test::cli_path() + " eval --model deit_tiny_patch16_224 --images " +
                                     "../shared/data/imagenet-sample --method random:r=13 --csv " + dir + "/" + tag +
                                     ".csv " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> out;  // file -> pred1..pred5
    {
      std::ifstream f(dir + "/" + tag + ".random_r_13.csv");  // eval's file per method: its spec, ':' and '=' as '_'
      std::string line;
      std::getline(f, line);  // header: file,label,label_name,pred1..pred5,...
      while (std::getline(f, line)) {
        std::vector<std::string> cells;
        std::stringstream row(line);
        for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
        if (cells.size() < 15) continue;
        // The five predictions are the 12th to 8th cells from the end (a class name may hold commas).
        const size_t p = cells.size() - 12;
        out[cells[0]] = cells[p] + " " + cells[p + 1] + " " + cells[p + 2] + " " + cells[p + 3] + " " + cells[p + 4];
      }
    }
    return out;
  };
  const auto batch1 = predictions("b1", "--limit 26 --batch 1");
  const auto batch8 = predictions("b8", "--limit 26 --batch 8");
  const auto offset = predictions("off", "--offset 13 --limit 13 --batch 8");
  ASSERT_EQ(batch1.size(), 26u) << "no CSV of the random method in " << dir;
  EXPECT_EQ(batch8, batch1);
  ASSERT_EQ(offset.size(), 13u);
  for (const auto& [file, preds] : offset) EXPECT_EQ(preds, batch1.at(file)) << file;
  std::system(("rm -rf " + dir).c_str());
}

// The same method twice would give two rows (and files) of one name: refused with one line, for every command
// that takes methods, also when the two specs differ only in spelling or one is matched to the other's cost.
TEST(Cli, SameMethodTwiceIsRefused) {
  const std::string image = test::shared_image("n01440764_tench.JPEG");
  const std::string model = " --model deit_tiny_patch16_224 ";
  const std::vector<std::string> method_pairs = {"--method tome:r=13 --method tome:r=13",
                                                 "--method tome:r=13 --method tome:r=13,prop_attn=1",
                                                 "--method pitome --method pitome:ratio=0.9047 --match-macs tome:r=13"};
  const std::vector<std::string> commands = {"eval" + model + "--images ../shared/data/imagenet-sample --limit 1 ",
                                             "spectrum" + model + image + " --out /tmp/ms_test_never_written ",
                                             "bench --random-weights deit_tiny_patch16_224 --repeat 1 --warmup 0 "};
  for (const std::string& methods : method_pairs)
    for (const std::string& command : commands) {
      SCOPED_TRACE(command + methods);
      const auto r = test::run_command(test::cli_path() + " " + command + methods);
      EXPECT_EQ(r.exit_code, 1);
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not exactly one line: " << r.err;
      EXPECT_TRUE(r.err.find("given twice") != std::string::npos || r.err.find("the same method") != std::string::npos)
          << r.err;
    }
}

// --match-flops, --match-gflops and --target-flops hold MACs: they work under their old names with a one-line
// notice, and match exactly what the new names match.
TEST(Cli, OldFlopsNamesStillWorkWithANotice) {
  const std::string bench =
      test::cli_path() + " bench --random-weights deit_tiny_patch16_224 --batch 1 --warmup 0 --repeat 1 --json";
  const auto now = test::run_command(bench + " --method pitome --match-macs tome:r=13");
  const auto old = test::run_command(bench + " --method pitome --match-flops tome:r=13");
  ASSERT_EQ(now.exit_code, 0) << now.err;
  ASSERT_EQ(old.exit_code, 0) << old.err;
  EXPECT_NE(old.err.find("--match-flops is deprecated: it matches MACs; use --match-macs\n"), std::string::npos)
      << old.err;
  EXPECT_EQ(now.err.find("deprecated"), std::string::npos) << now.err;
  EXPECT_NE(old.out.find("\"method\": \"pitome:ratio=0.9047\""), std::string::npos) << old.out;
  EXPECT_NE(now.out.find("\"method\": \"pitome:ratio=0.9047\""), std::string::npos) << now.out;
  const auto gmacs = test::run_command(bench + " --method pitome --match-gflops 0.735");
  EXPECT_EQ(gmacs.exit_code, 0) << gmacs.err;
  EXPECT_NE(gmacs.err.find("--match-gflops is deprecated: it matches GMACs; use --match-gmacs"), std::string::npos)
      << gmacs.err;
  const auto both = test::run_command(bench + " --method pitome --match-flops tome:r=13 --match-macs tome:r=13");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_NE(both.err.find("--match-macs"), std::string::npos) << both.err;
  const auto calibrate =
      test::run_command(test::cli_path() + " calibrate --model deit_tiny_patch16_224 --target-flops 0.6 --out /tmp/x");
  EXPECT_EQ(calibrate.exit_code, 1);  // no --images; the notice comes first
  EXPECT_NE(calibrate.err.find("--target-flops is deprecated: it targets a MACs ratio; use --target-macs\n"),
            std::string::npos)
      << calibrate.err;
}

TEST(Cli, TraceBadSpecFailsBeforeWriting) {
  const TempFile out(".json");
  const auto r =
      test::run_command(test::cli_path() + " trace --model deit_tiny_patch16_224 --method pitome:ratio=0.4 " +
                        test::shared_image("n01440764_tench.JPEG") + " --out " + out.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pitome:ratio=0.4"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(out.path()).good()) << "output written despite the error";
}

}  // namespace
}  // namespace ms
