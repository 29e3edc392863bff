// libFuzzer target: config.json text through parse_config_json, or (input not starting with '{') a timm model
// name through config_from_arch_name. An accepted config must pass validate() and keep every derived size
// inside VitLimits, so nothing downstream allocates from an unchecked number.
#include "config.h"
#include "fuzz_util.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace {

void check_accepted(const ms::VitConfig& c) {
  using ms::fuzz::check;
  using L = ms::VitLimits;
  c.validate("fuzz config");  // an accepted config is a valid one: this must not throw
  check(c.img_size >= 1 && c.img_size <= L::kMaxImgSize,
        "img_size " + std::to_string(c.img_size) + " outside its limit");
  check(c.patch_size >= 1 && c.patch_size <= c.img_size && c.img_size % c.patch_size == 0,
        "patch_size " + std::to_string(c.patch_size) + " does not divide img_size " + std::to_string(c.img_size));
  check(c.grid() >= 1 && c.grid() <= L::kMaxGrid, "grid " + std::to_string(c.grid()) + " outside its limit");
  check(c.num_patches() == c.grid() * c.grid() && c.num_tokens() >= c.num_patches(), "token counts inconsistent");
  check(c.embed_dim >= 1 && c.embed_dim <= L::kMaxEmbedDim, "embed_dim outside its limit");
  check(c.num_heads >= 1 && c.embed_dim % c.num_heads == 0 && c.head_dim() >= 1, "num_heads does not divide embed_dim");
  check(c.depth >= 1 && c.depth <= L::kMaxDepth, "depth outside its limit");
  check(std::isfinite(c.mlp_ratio) && c.mlp_ratio > 0 && c.mlp_ratio <= L::kMaxMlpRatio, "mlp_ratio outside its limit");
  check(c.mlp_hidden() >= 1 && c.mlp_hidden() <= L::kMaxMlpHidden, "mlp_hidden outside its limit");
  check(c.num_classes >= 1 && c.num_classes <= L::kMaxClasses, "num_classes outside its limit");
  check(c.norm_eps >= L::kMinNormEps && c.norm_eps <= L::kMaxNormEps, "norm_eps outside its limit");
  check(c.crop_pct >= L::kMinCropPct && c.crop_pct <= 1, "crop_pct outside its limit");
  check(c.resize_size() >= c.img_size && c.resize_size() <= L::kMaxResize,
        "resize_size " + std::to_string(c.resize_size()) + " outside [img_size, kMaxResize]");
  for (int i = 0; i < 3; ++i) {
    check(std::isfinite(c.mean[i]) && c.mean[i] >= 0 && c.mean[i] <= L::kMaxMean, "mean outside its limit");
    check(std::isfinite(c.std[i]) && c.std[i] >= L::kMinStd && c.std[i] <= L::kMaxStd, "std outside its limit");
  }
  check(c.global_pool == "token" || c.global_pool == "avg",
        "global_pool '" + ms::excerpt(c.global_pool) + "' accepted");
  check(c.interpolation == "bicubic" || c.interpolation == "bilinear",
        "interpolation '" + ms::excerpt(c.interpolation) + "' accepted");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ms::fuzz::run_one([&] {
    if (!text.empty() && text[0] != '{') {
      check_accepted(ms::config_from_arch_name(text));
      return;
    }
    check_accepted(ms::parse_config_json(text, "fuzz/config.json"));
  });
  return 0;
}
