#include "config.h"

#include "error.h"
#include "io.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <regex>

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

using json = nlohmann::json;
using L = VitLimits;

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string range_text(int64_t lo, int64_t hi) { return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; }
std::string range_text(double lo, double hi, bool open_low = false) {
  return (open_low ? "(" : "[") + number_text(lo) + ", " + number_text(hi) + "]";
}

// The value of `key`, or nullptr when it is absent or null (timm writes null for "use the default").
const json* field(const json& obj, const char* key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

[[noreturn]] void wrong_type(const std::string& source, const char* key, const json& v, const std::string& expected) {
  fail(source, std::string("field '") + key + "' has the wrong type: " + describe_json(v) + ", expected " + expected);
}

// Integers are range-checked as 64-bit values before narrowing: nlohmann's get<int>() would turn 4294967308
// into 12 without a word, and 12.5 into 12, and true into 1.
void read_int(const json& obj, const char* key, int& value, int64_t min, int64_t max, const std::string& source) {
  const json* v = field(obj, key);
  if (!v) return;
  if (!v->is_number_integer()) wrong_type(source, key, *v, "an integer in " + range_text(min, max));
  bool in_range;
  if (v->is_number_unsigned()) {  // nlohmann keeps non-negative integers unsigned, up to 2^64 - 1
    const uint64_t u = v->get<uint64_t>();
    in_range = max >= 0 && u <= static_cast<uint64_t>(max) && (min <= 0 || u >= static_cast<uint64_t>(min));
  } else {
    const int64_t i = v->get<int64_t>();
    in_range = i >= min && i <= max;
  }
  if (!in_range) fail(source, std::string(key) + " " + v->dump() + " is outside " + range_text(min, max));
  value = static_cast<int>(v->get<int64_t>());
}

// A finite number in [min, max] ((min, max] when open_low). Range-checked as a double, so a float field never
// receives a value it cannot hold (1e39 is inf as a float).
double checked_number(const json& v, const std::string& name, double min, double max, bool open_low,
                      const std::string& source) {
  if (!v.is_number()) wrong_type(source, name.c_str(), v, "a number in " + range_text(min, max, open_low));
  const double d = v.get<double>();
  const bool low_ok = open_low ? d > min : d >= min;
  if (!std::isfinite(d) || !low_ok || d > max)
    fail(source, name + " " + number_text(d) + " is outside " + range_text(min, max, open_low));
  return d;
}

void read_number(const json& obj, const char* key, double& value, double min, double max, bool open_low,
                 const std::string& source) {
  if (const json* v = field(obj, key)) value = checked_number(*v, key, min, max, open_low, source);
}

void read_rgb(const json& obj, const char* key, std::array<float, 3>& value, double min, double max,
              const std::string& source) {
  const json* v = field(obj, key);
  if (!v) return;
  if (!v->is_array() || v->size() != 3) wrong_type(source, key, *v, "3 numbers in " + range_text(min, max));
  for (size_t i = 0; i < 3; ++i)
    value[i] = static_cast<float>(
        checked_number((*v)[i], std::string(key) + "[" + std::to_string(i) + "]", min, max, false, source));
}

void read_bool(const json& obj, const char* key, bool& value, const std::string& source) {
  const json* v = field(obj, key);
  if (!v) return;
  if (!v->is_boolean()) wrong_type(source, key, *v, "true or false");
  value = v->get<bool>();
}

void read_string(const json& obj, const char* key, std::string& value, const std::string& source) {
  const json* v = field(obj, key);
  if (!v) return;
  if (!v->is_string()) wrong_type(source, key, *v, "a string");
  value = v->get<std::string>();
}

// pretrained_cfg.input_size must be exactly [in_chans, img_size, img_size]: [1,224,224] is not this model's input.
void check_input_size(const json& cfg, const VitConfig& c, const std::string& source) {
  const json* v = field(cfg, "input_size");
  if (!v) return;
  if (!v->is_array() || v->size() != 3) wrong_type(source, "input_size", *v, "[channels, height, width]");
  std::string text = "[";
  bool matches = true;
  const int64_t expected[3] = {c.in_chans, c.img_size, c.img_size};
  for (size_t i = 0; i < 3; ++i) {
    const json& e = (*v)[i];
    if (!e.is_number_integer()) wrong_type(source, "input_size", *v, "[channels, height, width] as integers");
    text += (i ? "," : "") + e.dump();
    matches = matches && e.is_number_unsigned() && e.get<uint64_t>() == static_cast<uint64_t>(expected[i]);
  }
  if (!matches)
    fail(source, "pretrained_cfg.input_size " + text + "] disagrees with in_chans " + std::to_string(c.in_chans) +
                     " and img_size " + std::to_string(c.img_size) + " (expected [" + std::to_string(c.in_chans) + "," +
                     std::to_string(c.img_size) + "," + std::to_string(c.img_size) + "])");
}

}  // namespace

int VitConfig::mlp_hidden() const {
  // timm: int(dim * mlp_ratio). Guarded for configs built by hand and never validated.
  const double hidden = std::floor(embed_dim * mlp_ratio);
  if (!(hidden >= 0 && hidden <= L::kMaxMlpHidden))
    fail(architecture.empty() ? "config" : architecture,
         "MLP width embed_dim " + std::to_string(embed_dim) + " x mlp_ratio " + number_text(mlp_ratio) +
             " is outside [0, " + std::to_string(L::kMaxMlpHidden) + "]");
  return static_cast<int>(hidden);
}

int VitConfig::resize_size() const {
  const double size = std::floor(img_size / crop_pct);
  if (!(size >= 1 && size <= L::kMaxResize))
    fail(architecture.empty() ? "config" : architecture,
         "crop_pct " + number_text(crop_pct) + " with img_size " + std::to_string(img_size) +
             " gives a resize target outside [1, " + std::to_string(L::kMaxResize) + "] px");
  return static_cast<int>(size);
}

void VitConfig::validate(const std::string& source) const {
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail(source, what);
  };
  auto int_in = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    need(v >= lo && v <= hi, std::string(name) + " " + std::to_string(v) + " is outside " + range_text(lo, hi));
  };
  auto number_in = [&](const std::string& name, double v, double lo, double hi, bool open_low) {
    const bool low_ok = open_low ? v > lo : v >= lo;
    need(std::isfinite(v) && low_ok && v <= hi,
         name + " " + number_text(v) + " is outside " + range_text(lo, hi, open_low));
  };
  int_in("img_size", img_size, 1, L::kMaxImgSize);
  int_in("patch_size", patch_size, 1, img_size);
  need(img_size % patch_size == 0,
       "img_size " + std::to_string(img_size) + " is not a multiple of patch_size " + std::to_string(patch_size));
  // Derived sizes in 64-bit, bounded before anything is allocated from them.
  const int64_t grid_side = img_size / patch_size;
  need(grid_side <= L::kMaxGrid, "img_size " + std::to_string(img_size) + " / patch_size " +
                                     std::to_string(patch_size) + " = " + std::to_string(grid_side) +
                                     " patches per side, over the limit of " + std::to_string(L::kMaxGrid) + " (" +
                                     std::to_string(int64_t{L::kMaxGrid} * L::kMaxGrid) + " patches)");
  int_in("embed_dim", embed_dim, 1, L::kMaxEmbedDim);
  int_in("num_heads", num_heads, 1, embed_dim);
  need(embed_dim % num_heads == 0,
       "embed_dim " + std::to_string(embed_dim) + " is not divisible by num_heads " + std::to_string(num_heads));
  int_in("depth", depth, 1, L::kMaxDepth);
  number_in("mlp_ratio", mlp_ratio, 0, L::kMaxMlpRatio, true);
  const double hidden = std::floor(static_cast<double>(embed_dim) * mlp_ratio);
  need(hidden >= 1 && hidden <= L::kMaxMlpHidden,
       "MLP width int(embed_dim " + std::to_string(embed_dim) + " x mlp_ratio " + number_text(mlp_ratio) +
           ") = " + number_text(hidden) + " is outside [1, " + std::to_string(L::kMaxMlpHidden) + "]");
  int_in("num_classes", num_classes, 1, L::kMaxClasses);
  need(in_chans == 3, "in_chans " + std::to_string(in_chans) + " is not supported (RGB only: 3)");
  need(global_pool == "token" || global_pool == "avg",
       "global_pool '" + excerpt(global_pool) + "' is not supported (expected 'token' or 'avg')");
  need(global_pool != "token" || class_token, "global_pool 'token' needs a class token");
  number_in("norm_eps", norm_eps, L::kMinNormEps, L::kMaxNormEps, false);
  number_in("crop_pct", crop_pct, L::kMinCropPct, 1.0, false);
  const double resize = std::floor(img_size / crop_pct);
  need(resize <= L::kMaxResize, "crop_pct " + number_text(crop_pct) + " with img_size " + std::to_string(img_size) +
                                    " resizes images to " + number_text(resize) + " px, over the limit of " +
                                    std::to_string(L::kMaxResize));
  need(interpolation == "bicubic" || interpolation == "bilinear",
       "interpolation '" + excerpt(interpolation) + "' is not supported (expected bicubic or bilinear)");
  for (size_t i = 0; i < 3; ++i) {
    number_in("mean[" + std::to_string(i) + "]", mean[i], 0, L::kMaxMean, false);
    number_in("std[" + std::to_string(i) + "]", std[i], L::kMinStd, L::kMaxStd, false);
  }
}

VitConfig config_from_arch_name(const std::string& name) {
  // std::regex matches recursively: a long name (64 KB) overflows the stack. Real names are < 64 characters.
  constexpr size_t kMaxArchName = 256;
  if (name.size() > kMaxArchName)
    fail(excerpt(name), "unknown architecture (a name of " + std::to_string(name.size()) + " characters; at most " +
                            std::to_string(kMaxArchName) + ")");
  static const std::regex pattern(
      R"(^(vit|deit|deit3)_(tiny|small|base|large|huge)(_distilled)?_patch(\d{1,4})_(\d{1,4})(\..*)?$)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern))
    fail(name,
         "unknown architecture (mergescope runs the timm VisionTransformer family: "
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
  if (text.size() > kMaxConfigJsonBytes)
    fail(source, "config.json is " + std::to_string(text.size()) + " bytes, over the limit of " +
                     std::to_string(kMaxConfigJsonBytes) + " bytes");
  check_json_depth(text.data(), text.data() + text.size(), source);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, "invalid JSON (" + excerpt(one_line(e), 160) + ")");
  }
  if (!j.is_object()) fail(source, "invalid config: expected a JSON object");
  std::string arch;
  read_string(j, "architecture", arch, source);
  if (arch.empty()) fail(source, "invalid config: no 'architecture' field");
  VitConfig c;
  try {
    c = config_from_arch_name(arch);
  } catch (const Error& e) {
    fail(source, "unknown architecture '" + excerpt(arch) +
                     "' (expected the timm VisionTransformer family: vit_*, deit_*, deit3_*)");
  }
  read_int(j, "num_classes", c.num_classes, 1, L::kMaxClasses, source);
  if (const json* a = field(j, "model_args")) {
    if (!a->is_object()) fail(source, "invalid config: 'model_args' is not an object");
    read_int(*a, "img_size", c.img_size, 1, L::kMaxImgSize, source);
    read_int(*a, "patch_size", c.patch_size, 1, L::kMaxImgSize, source);
    read_int(*a, "in_chans", c.in_chans, 1, L::kMaxInChans, source);
    read_int(*a, "embed_dim", c.embed_dim, 1, L::kMaxEmbedDim, source);
    read_int(*a, "depth", c.depth, 1, L::kMaxDepth, source);
    read_int(*a, "num_heads", c.num_heads, 1, L::kMaxEmbedDim, source);
    read_number(*a, "mlp_ratio", c.mlp_ratio, 0, L::kMaxMlpRatio, true, source);
    read_bool(*a, "qkv_bias", c.qkv_bias, source);
    read_bool(*a, "class_token", c.class_token, source);
    read_string(*a, "global_pool", c.global_pool, source);
    read_bool(*a, "no_embed_class", c.no_embed_class, source);
    read_bool(*a, "pre_norm", c.pre_norm, source);
    read_number(*a, "norm_eps", c.norm_eps, L::kMinNormEps, L::kMaxNormEps, false, source);
    read_int(*a, "num_classes", c.num_classes, 1, L::kMaxClasses, source);
    if (field(*a, "init_values")) c.layer_scale = true;
    // timm: fc_norm defaults to (global_pool == 'avg')
    c.fc_norm = c.global_pool == "avg";
    read_bool(*a, "fc_norm", c.fc_norm, source);
  }
  if (const json* p = field(j, "pretrained_cfg")) {
    if (!p->is_object()) fail(source, "invalid config: 'pretrained_cfg' is not an object");
    read_string(*p, "interpolation", c.interpolation, source);
    read_number(*p, "crop_pct", c.crop_pct, L::kMinCropPct, 1.0, false, source);
    read_rgb(*p, "mean", c.mean, 0, L::kMaxMean, source);
    read_rgb(*p, "std", c.std, L::kMinStd, L::kMaxStd, source);
    check_input_size(*p, c, source);
  }
  c.validate(source);
  return c;
}

VitConfig load_config_json(const std::string& path) {
  // Out of memory while parsing (nlohmann allocates per value) names the file too.
  return with_file_errors(path, [&] {
    const auto bytes = read_file(path, kMaxConfigJsonBytes, "config.json");
    return parse_config_json(std::string(bytes.begin(), bytes.end()), path);
  });
}

}  // namespace ms
