// A loaded Vision Transformer: immutable weights plus the forward pieces the engine composes. One Model
// serves many runs (and threads) at once; per-run state lives with the caller.
#pragma once

#include "checkpoint.h"
#include "config.h"
#include "precision.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace ms {

struct BlockWeights {
  at::Tensor norm1_w, norm1_b, qkv_w, qkv_b, proj_w, proj_b, ls1;
  at::Tensor norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2;
};

class Model {
 public:
  // Loads a model by folder, weights file or name on the search path (see locate_model).
  static std::shared_ptr<const Model> load(const std::string& spec, c10::Device device = c10::kCPU);

  // Loads a weights file with an explicit config (e.g. a .pth with --arch).
  static std::shared_ptr<const Model> from_state_dict(const VitConfig& config, const StateDict& weights,
                                                      const std::string& source, c10::Device device = c10::kCPU);

  // timm shapes for `arch` with random weights (normal(0, 0.02), LayerNorm 1/0), for speed work.
  static std::shared_ptr<const Model> random(const std::string& arch, c10::Device device = c10::kCPU,
                                             uint64_t seed = 0);

  // A copy that takes `img_size` inputs: the position embedding is resampled bicubically (as timm's
  // resample_abs_pos_embed does), the rest is shared. Throws when img_size is not a multiple of the patch.
  static std::shared_ptr<const Model> with_input_size(const std::shared_ptr<const Model>& model, int img_size);

  // A copy that computes in `dtype` (core/precision.h says what runs in bf16 and what stays fp32); the blocks'
  // linear weights are converted once, the fp32 weights stay shared. fp32 returns `model` itself.
  static std::shared_ptr<const Model> with_dtype(const std::shared_ptr<const Model>& model, Dtype dtype);

  const VitConfig& config() const { return config_; }
  Dtype dtype() const { return dtype_; }
  const std::string& source() const { return source_; }
  c10::Device device() const { return device_; }

  // Patch embedding + prefix tokens + position embedding: [B,3,H,W] -> [B,N,C].
  at::Tensor embed(const at::Tensor& images) const;

  // Attention branch of block `layer` on x [B,N,C] (LayerNorm inside, LayerScale applied, residual not added).
  // `log_size` [B,N] (optional) is added to every key's logit: ToMe's proportional attention.
  // When `keys_mean` is non-null it receives the keys averaged over heads [B,N,head_dim].
  // When `attn_probs` is non-null it receives the attention probabilities [B,heads,N,N].
  at::Tensor attention(const at::Tensor& x, int layer, const at::Tensor* log_size = nullptr,
                       at::Tensor* keys_mean = nullptr, at::Tensor* attn_probs = nullptr) const;

  // The two halves of the attention branch for a reducer that fuses tokens between them (MCTF's one-step-ahead
  // attention): the probabilities [B,H,N,N] of block `layer` on x (softmax of q k^T / sqrt(d) + log_size), with
  // the keys averaged over heads in `keys_mean` when non-null; and the branch's output (LayerScale applied,
  // residual not added) of tokens x [B,M,C] under given probabilities [B,H,M,M]: proj(P v(LN1(x))).
  at::Tensor attention_probs(const at::Tensor& x, int layer, const at::Tensor* log_size,
                             at::Tensor* keys_mean = nullptr) const;
  at::Tensor attention_with_probs(const at::Tensor& x, int layer, const at::Tensor& probs) const;

  // MLP branch of block `layer` (LayerNorm inside, LayerScale applied, residual not added).
  at::Tensor mlp(const at::Tensor& x, int layer) const;

  // Final norm, pooling and classifier head(s): [B,N,C] -> logits [B,classes].
  at::Tensor head(const at::Tensor& x) const;

  // Plain forward without token reduction: images [B,3,H,W] float32 -> logits.
  at::Tensor forward(const at::Tensor& images) const;

  // The frozen weights of block `layer`, for differentiable forwards built from ATen ops (core/calibrate.cpp).
  const BlockWeights& block(int layer) const { return blocks_.at(layer); }

 private:
  Model() = default;
  void assign(const StateDict& weights, const std::string& source);
  // LN1(x) times rows [part C, (part + parts) C) of block `layer`'s qkv projection (q = part 0, k = 1, v = 2).
  at::Tensor qkv_rows(const at::Tensor& x, int layer, int64_t part, int64_t parts) const;
  at::Tensor attention_bf16(const at::Tensor& h, int layer, int64_t B, int64_t N, const at::Tensor* log_size,
                            at::Tensor* keys_mean, at::Tensor* attn_probs) const;

  VitConfig config_;
  std::string source_;
  c10::Device device_ = c10::kCPU;
  at::Tensor patch_w_;  // [C, 3*p*p], flattened conv kernel
  at::Tensor patch_b_, cls_token_, dist_token_, pos_embed_, norm_pre_w_, norm_pre_b_;
  at::Tensor norm_w_, norm_b_, fc_norm_w_, fc_norm_b_, head_w_, head_b_, head_dist_w_, head_dist_b_;
  std::vector<BlockWeights> blocks_;
  Dtype dtype_ = Dtype::Float32;
  // bf16: per block, qkv/proj/fc1/fc2 weights and biases converted once (undefined tensors in fp32).
  std::vector<BlockWeights> low_;
  bool bf16_rounded_ = false;                 // bf16 values held in fp32 tensors (Bf16Path::RoundedFp32)
  at::Tensor low(const at::Tensor& t) const;  // rounded to bf16, in the tensor type of the bf16 path
};

}  // namespace ms
