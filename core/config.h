// Architecture and preprocessing of a timm VisionTransformer, from a timm-hub config.json or from a timm
// model name (deit_small_patch16_224, vit_large_patch16_384, ...). Nothing about a model is hard-coded.
#pragma once

#include <array>
#include <string>

namespace ms {

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
  bool distilled = false;         // DeiT distillation token + second head (averaged at inference)
  std::string global_pool = "token";  // "token" (CLS) or "avg" (mean of patch tokens, then fc_norm)
  bool fc_norm = false;           // LayerNorm after pooling (timm: on for global_pool == "avg")
  bool layer_scale = false;       // LayerScale gammas ls1/ls2 in every block
  bool no_embed_class = false;    // position embedding covers patches only
  bool pre_norm = false;          // LayerNorm before the blocks (CLIP-style)
  double norm_eps = 1e-6;
  int num_classes = 1000;

  // timm eval transform: resize the short side to floor(img_size / crop_pct), centre crop img_size.
  std::string interpolation = "bicubic";
  double crop_pct = 0.875;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};

  int grid() const { return img_size / patch_size; }
  int num_patches() const { return grid() * grid(); }
  int num_prefix_tokens() const { return (class_token ? 1 : 0) + (distilled ? 1 : 0); }
  int num_tokens() const { return num_patches() + num_prefix_tokens(); }
  int head_dim() const { return embed_dim / num_heads; }
  int mlp_hidden() const { return static_cast<int>(embed_dim * mlp_ratio); }
  int resize_size() const;  // floor(img_size / crop_pct)

  // Throws ms::Error naming `source` when the combination is impossible.
  void validate(const std::string& source) const;
};

// Parses a timm-hub config.json (architecture, model_args, pretrained_cfg).
VitConfig load_config_json(const std::string& path);

// Parses the same from JSON text; `source` is used in messages.
VitConfig parse_config_json(const std::string& text, const std::string& source);

// Builds the config of a timm model name: {vit,deit,deit3}_{tiny,small,base,large,huge}[_distilled]_patch{P}_{S}
// plus optional tags after a dot (".augreg_in21k_ft_in1k"). Throws ms::Error for names outside that family.
VitConfig config_from_arch_name(const std::string& name);

}  // namespace ms
