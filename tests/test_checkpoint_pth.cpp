// A torch.save()d state dict gives the same model as the safetensors file it was made from.
#include "checkpoint.h"
#include "config.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace ms {
namespace {

void expect_golden_logits(const Model& model) {
  const SafetensorsFile golden = read_safetensors(test::golden_file());
  c10::InferenceMode guard;
  EXPECT_LT(test::relative_max_error(model.forward(golden.tensors.at("input")), golden.tensors.at("none.logits")),
            test::kLogitRelTol);
}

TEST(CheckpointPth, PlainStateDict) {
  const VitConfig config = config_from_arch_name("deit_tiny_patch16_224");
  const std::string path = test::fixtures_dir() + "/deit_tiny.pth";
  const StateDict dict = read_state_dict(path);
  EXPECT_EQ(dict.size(), read_safetensors("../shared/models/deit_tiny_patch16_224/model.safetensors").tensors.size());
  expect_golden_logits(*Model::from_state_dict(config, dict, path));
}

TEST(CheckpointPth, WrappedUnderModelKey) {
  const VitConfig config = config_from_arch_name("deit_tiny_patch16_224");
  const std::string path = test::fixtures_dir() + "/deit_tiny_wrapped.pth";
  expect_golden_logits(*Model::from_state_dict(config, read_state_dict(path), path));
}

TEST(CheckpointPth, NotAZipIsAClearError) {
  const std::string renamed = test::fixtures_dir() + "/not_a_checkpoint.pth";
  at::Tensor t = at::zeros({1});
  write_safetensors(renamed, {{"x", t}});  // a safetensors file is not a zip either
  try {
    read_state_dict(renamed);
    FAIL() << "expected ms::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(renamed), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("zip"), std::string::npos);
  }
}

TEST(CheckpointPth, ConfigAndWeightsMustAgreeExactly) {
  // As for safetensors: a config for fewer or more blocks than the checkpoint holds is refused, naming the
  // first tensor without a place in the model (or the first one missing).
  const std::string path = test::fixtures_dir() + "/deit_tiny.pth";
  const StateDict dict = read_state_dict(path);
  for (const auto& [depth, expected] :
       std::vector<std::pair<int, std::string>>{{7, "unexpected tensor 'blocks.7.attn.proj.bias' (60 tensors"},
                                                {2, "unexpected tensor 'blocks.2.attn.proj.bias' (120 tensors"},
                                                {13, "missing tensor 'blocks.12.norm1.weight'"}}) {
    VitConfig config = config_from_arch_name("deit_tiny_patch16_224");
    config.depth = depth;
    try {
      Model::from_state_dict(config, dict, path);
      ADD_FAILURE() << "depth " << depth << " accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    }
  }
  // An extra tensor of any name, too.
  StateDict extra = dict;
  extra["blocks.0.attn.q_norm.weight"] = at::ones({64});
  try {
    Model::from_state_dict(config_from_arch_name("deit_tiny_patch16_224"), extra, path);
    ADD_FAILURE() << "extra tensor accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected tensor 'blocks.0.attn.q_norm.weight' (1 tensor is not part"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ms
