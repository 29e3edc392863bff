// Architecture and preprocessing of a timm VisionTransformer, from a timm-hub config.json or from a timm
// model name (deit_small_patch16_224, vit_large_patch16_384, ...). Nothing about a model is hard-coded.
#pragma once

#include <array>
#include <cstddef>
#include <string>

namespace ms {

// Accepted values (validate() checks every one; config.json fields are also refused on reading when they do
// not fit). Wide enough for every timm ViT checkpoint; every derived size below is bounded by them.
struct VitLimits {
  static constexpr int kMaxImgSize = 4096;      // img_size in [1, 4096]; patch_size in [1, img_size], dividing it
  static constexpr int kMaxGrid = 256;          // img_size / patch_size: at most 65,536 patches
  static constexpr int kMaxEmbedDim = 16384;    // embed_dim in [1, 16384], divisible by num_heads in [1, embed_dim]
  static constexpr int kMaxDepth = 256;         // depth in [1, 256]
  static constexpr double kMaxMlpRatio = 64;    // mlp_ratio in (0, 64]
  static constexpr int kMaxMlpHidden = 262144;  // int(embed_dim * mlp_ratio) in [1, 262144]
  static constexpr int kMaxClasses = 100000;    // num_classes in [1, 100000]
  static constexpr int kMaxInChans = 16;        // in_chans read as [1, 16]; only 3 is supported
  static constexpr double kMinNormEps = 1e-12;  // norm_eps in [1e-12, 1]: smaller vanishes in float32
  static constexpr double kMaxNormEps = 1;
  static constexpr double kMinCropPct = 0.05;            // crop_pct in [0.05, 1], far below any timm config
  static constexpr int kMaxResize = 2 * kMaxImgSize;     // floor(img_size / crop_pct) at most 8192 px
  static constexpr double kMaxMean = 1;                  // mean in [0, 1]: pixels are scaled to [0, 1] first
  static constexpr double kMinStd = 0.01, kMaxStd = 10;  // std in [0.01, 10]
};

struct VitConfig {
  std::string architecture;  // timm model name, e.g. "deit_tiny_patch16_224"
  int img_size = 224;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 768;
  int depth = 12;
  int num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  bool class_token = true;
  bool distilled = false;             // DeiT distillation token + second head (averaged at inference)
  std::string global_pool = "token";  // "token" (CLS) or "avg" (mean of patch tokens, then fc_norm)
  bool fc_norm = false;               // LayerNorm after pooling (timm: on for global_pool == "avg")
  bool layer_scale = false;           // LayerScale gammas ls1/ls2 in every block
  bool no_embed_class = false;        // position embedding covers patches only
  bool pre_norm = false;              // LayerNorm before the blocks (CLIP-style)
  double norm_eps = 1e-6;
  int num_classes = 1000;

  // timm eval transform: resize the short side to floor(img_size / crop_pct), centre crop img_size.
  std::string interpolation = "bicubic";
  double crop_pct = 0.875;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};

  // Derived sizes; within VitLimits (validate()) none of them overflows an int.
  int grid() const { return img_size / patch_size; }
  int num_patches() const { return grid() * grid(); }
  int num_prefix_tokens() const { return (class_token ? 1 : 0) + (distilled ? 1 : 0); }
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }
  int head_dim() const { return embed_dim / num_heads; }
  int mlp_hidden() const;   // int(embed_dim * mlp_ratio), as timm's Mlp
  int resize_size() const;  // floor(img_size / crop_pct)

  // Throws ms::Error naming `source` when a value is outside VitLimits or the combination is impossible.
  void validate(const std::string& source) const;
};

// config.json files larger than this are refused unread (timm's are about 1 KB).
constexpr size_t kMaxConfigJsonBytes = 1 << 20;

// Parses a timm-hub config.json (architecture, model_args, pretrained_cfg).
VitConfig load_config_json(const std::string& path);

// Parses the same from JSON text; `source` is used in messages.
VitConfig parse_config_json(const std::string& text, const std::string& source);

// Builds the config of a timm model name: {vit,deit,deit3}_{tiny,small,base,large,huge}[_distilled]_patch{P}_{S}
// plus optional tags after a dot (".augreg_in21k_ft_in1k"). Throws ms::Error for names outside that family.
VitConfig config_from_arch_name(const std::string& name);

}  // namespace ms
