#include "config.h"

#include "error.h"
#include "io.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <regex>
#include <type_traits>

namespace ms {
namespace {

struct Width {
  const char* name;
  int embed_dim, depth, num_heads;
};
// timm's VisionTransformer sizes (timm/models/vision_transformer.py model definitions).
constexpr Width kWidths[] = {
    {"tiny", 192, 12, 3}, {"small", 384, 12, 6}, {"base", 768, 12, 12}, {"large", 1024, 24, 16}, {"huge", 1280, 32, 16},
};

// nlohmann converts 12.5 to 12 and true to 1 without complaint; a config with those is wrong.
template <typename T>
struct JsonKind {
  static bool matches(const nlohmann::json& v) {
    if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
    else if constexpr (std::is_integral_v<T>) return v.is_number_integer();
    else if constexpr (std::is_floating_point_v<T>) return v.is_number();
    else return v.is_string();
  }
};
template <typename T, size_t N>
struct JsonKind<std::array<T, N>> {
  static bool matches(const nlohmann::json& v) {
    if (!v.is_array() || v.size() != N) return false;
    for (const auto& e : v)
      if (!JsonKind<T>::matches(e)) return false;
    return true;
  }
};

template <typename T>
void read_field(const nlohmann::json& obj, const char* key, T& value, const std::string& source) {
  if (!obj.contains(key) || obj[key].is_null()) return;
  if (!JsonKind<T>::matches(obj[key]))
    fail(source, std::string("field '") + key + "' has the wrong type: " + obj[key].dump());
  try {
    value = obj[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(source, std::string("field '") + key + "' has the wrong type: " + obj[key].dump());
  }
}

}  // namespace

int VitConfig::resize_size() const { return static_cast<int>(std::floor(img_size / crop_pct)); }

void VitConfig::validate(const std::string& source) const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail(source, what);
  };
  need(img_size > 0 && patch_size > 0 && img_size % patch_size == 0,
       "img_size " + std::to_string(img_size) + " is not a positive multiple of patch_size " + std::to_string(patch_size));
  need(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0,
       "embed_dim " + std::to_string(embed_dim) + " is not divisible by num_heads " + std::to_string(num_heads));
  need(depth > 0 && depth <= 256, "depth " + std::to_string(depth) + " is out of range");
  need(mlp_ratio > 0, "mlp_ratio must be positive");
  need(num_classes > 0, "num_classes must be positive");
  need(in_chans == 3, "in_chans " + std::to_string(in_chans) + " is not supported (RGB only)");
  need(global_pool == "token" || global_pool == "avg",
       "global_pool '" + global_pool + "' is not supported (expected 'token' or 'avg')");
  need(global_pool != "token" || class_token, "global_pool 'token' needs a class token");
  need(crop_pct > 0 && crop_pct <= 1.0, "crop_pct " + std::to_string(crop_pct) + " is outside (0, 1]");
  need(interpolation == "bicubic" || interpolation == "bilinear",
       "interpolation '" + interpolation + "' is not supported (expected bicubic or bilinear)");
  for (float s : std) need(s > 0, "std values must be positive");
}

VitConfig config_from_arch_name(const std::string& name) {
  static const std::regex pattern(R"(^(vit|deit|deit3)_(tiny|small|base|large|huge)(_distilled)?_patch(\d{1,4})_(\d{1,4})(\..*)?$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern))
    fail(name, "unknown architecture (mergescope runs the timm VisionTransformer family: "
               "{vit,deit,deit3}_{tiny,small,base,large,huge}[_distilled]_patch{14,16,32}_{224,384,...})");
  VitConfig c;
  c.architecture = name;
  for (const auto& w : kWidths)
    if (m[2] == w.name) {
      c.embed_dim = w.embed_dim;
      c.depth = w.depth;
      c.num_heads = w.num_heads;
    }
  c.distilled = m[3].matched;
  c.patch_size = std::stoi(m[4]);
  c.img_size = std::stoi(m[5]);
  c.layer_scale = c.no_embed_class = m[1] == "deit3";
  if (m[1] == "vit") {  // timm's ViT defaults (AugReg): mean = std = 0.5, crop 0.9
    c.mean = c.std = {0.5f, 0.5f, 0.5f};
    c.crop_pct = 0.9;
  }
  if (c.img_size != 224) c.crop_pct = 1.0;  // timm's 384-px configs crop nothing
  c.validate(name);
  return c;
}

VitConfig parse_config_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(source, "invalid JSON (" + one_line(e) + ")");
  }
  if (!j.is_object()) fail(source, "invalid config: expected a JSON object");
  std::string arch;
  read_field(j, "architecture", arch, source);
  if (arch.empty()) fail(source, "invalid config: no 'architecture' field");
  VitConfig c;
  try {
    c = config_from_arch_name(arch);
  } catch (const Error& e) {
    fail(source, "unknown architecture '" + arch + "' (expected the timm VisionTransformer family: vit_*, deit_*, deit3_*)");
  }
  read_field(j, "num_classes", c.num_classes, source);
  if (j.contains("model_args")) {
    const auto& a = j["model_args"];
    if (!a.is_object()) fail(source, "invalid config: 'model_args' is not an object");
    read_field(a, "img_size", c.img_size, source);
    read_field(a, "patch_size", c.patch_size, source);
    read_field(a, "in_chans", c.in_chans, source);
    read_field(a, "embed_dim", c.embed_dim, source);
    read_field(a, "depth", c.depth, source);
    read_field(a, "num_heads", c.num_heads, source);
    read_field(a, "mlp_ratio", c.mlp_ratio, source);
    read_field(a, "qkv_bias", c.qkv_bias, source);
    read_field(a, "class_token", c.class_token, source);
    read_field(a, "global_pool", c.global_pool, source);
    read_field(a, "no_embed_class", c.no_embed_class, source);
    read_field(a, "pre_norm", c.pre_norm, source);
    read_field(a, "norm_eps", c.norm_eps, source);
    read_field(a, "num_classes", c.num_classes, source);
    if (a.contains("init_values") && !a["init_values"].is_null()) c.layer_scale = true;
    // timm: fc_norm defaults to (global_pool == 'avg')
    c.fc_norm = c.global_pool == "avg";
    read_field(a, "fc_norm", c.fc_norm, source);
  }
  if (j.contains("pretrained_cfg")) {
    const auto& p = j["pretrained_cfg"];
    if (!p.is_object()) fail(source, "invalid config: 'pretrained_cfg' is not an object");
    read_field(p, "interpolation", c.interpolation, source);
    read_field(p, "crop_pct", c.crop_pct, source);
    read_field(p, "mean", c.mean, source);
    read_field(p, "std", c.std, source);
    if (p.contains("input_size")) {
      std::array<int, 3> input_size{};
      read_field(p, "input_size", input_size, source);
      if (input_size[1] != input_size[2] || input_size[1] != c.img_size)
        fail(source, "pretrained_cfg.input_size [" + std::to_string(input_size[0]) + "," + std::to_string(input_size[1]) + "," +
                         std::to_string(input_size[2]) + "] disagrees with img_size " + std::to_string(c.img_size));
    }
  }
  c.validate(source);
  return c;
}

VitConfig load_config_json(const std::string& path) {
  const auto bytes = read_file(path);
  return parse_config_json(std::string(bytes.begin(), bytes.end()), path);
}

}  // namespace ms
