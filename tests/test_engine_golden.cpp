// The engine without reduction reproduces the reference DeiT-Ti logits (official timm forward).
#include "model.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace ms {
namespace {

TEST(EngineGolden, DeitTinyLogitsMatchReference) {
  const SafetensorsFile golden = read_safetensors(test::golden_file());
  const auto model = Model::load("deit_tiny_patch16_224", test::test_device());
  c10::InferenceMode guard;
  const at::Tensor logits = model->forward(golden.tensors.at("input"));
  const at::Tensor& expected = golden.tensors.at("none.logits");
  ASSERT_EQ(logits.sizes(), expected.sizes());
  const double err = test::relative_max_error(logits, expected);
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", err);
  RecordProperty("relative_max_error", text);
  EXPECT_LT(err, test::kLogitRelTol);
  EXPECT_TRUE(at::equal(logits.argmax(1).cpu(), expected.argmax(1)));
}

TEST(EngineGolden, BatchOfOneEqualsBatchedRows) {
  // Every row is computed independently: batching must not change a single image's logits.
  const SafetensorsFile golden = read_safetensors(test::golden_file());
  const auto model = Model::load("deit_tiny_patch16_224", test::test_device());
  c10::InferenceMode guard;
  const at::Tensor input = golden.tensors.at("input");
  const at::Tensor batched = model->forward(input);
  for (int64_t i = 0; i < input.size(0); ++i)
    EXPECT_LT(test::relative_max_error(model->forward(input.slice(0, i, i + 1)), batched.slice(0, i, i + 1)), 1e-5);
}

TEST(EngineGolden, RandomWeightShapesFollowTheArchitectureName) {
  const auto model = Model::random("deit_small_patch16_224");
  EXPECT_EQ(model->config().embed_dim, 384);
  EXPECT_EQ(model->config().num_heads, 6);
  c10::InferenceMode guard;
  const at::Tensor logits = model->forward(at::randn({2, 3, 224, 224}));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 1000}));
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
}

}  // namespace
}  // namespace ms
