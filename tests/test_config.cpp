// Model configs: timm architecture names and timm-hub config.json files, including every way a config can
// be wrong (each an ms::Error naming its source).
#include "config.h"
#include "error.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace ms {
namespace {

const std::string kDeitConfig = "../shared/models/deit_tiny_patch16_224/config.json";
const std::string kVitConfig = "../shared/models/vit_tiny_patch16_224.augreg_in21k_ft_in1k/config.json";

const std::array<float, 3> kImagenetMean{0.485f, 0.456f, 0.406f};
const std::array<float, 3> kImagenetStd{0.229f, 0.224f, 0.225f};
const std::array<float, 3> kHalf{0.5f, 0.5f, 0.5f};

// `f` must throw ms::Error with a one-line message that names `source` and contains every part.
template <typename F>
void expect_config_error(F f, const std::string& source, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << source << ": accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(source + ": ", 0), 0u) << "message does not start with the source: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    for (const auto& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << source << ": threw a non-ms::Error: " << one_line(e);
  }
}

void expect_json_error(const std::string& text, const std::vector<std::string>& parts) {
  const std::string source = "memory/config.json";
  expect_config_error([&] { parse_config_json(text, source); }, source, parts);
}

void expect_name_error(const std::string& name, const std::vector<std::string>& parts = {}) {
  expect_config_error([&] { config_from_arch_name(name); }, name, parts);
}

// A valid deit_tiny config.json with `model_args` and `pretrained_cfg` bodies replaced.
std::string config_text(const std::string& model_args, const std::string& pretrained_cfg = "",
                        const std::string& architecture = "\"deit_tiny_patch16_224\"") {
  std::string s = "{\"architecture\": " + architecture + ", \"num_classes\": 1000";
  if (!model_args.empty()) s += ", \"model_args\": {" + model_args + "}";
  if (!pretrained_cfg.empty()) s += ", \"pretrained_cfg\": {" + pretrained_cfg + "}";
  return s + "}";
}

// ---- architecture names -----------------------------------------------------------------------------

TEST(ConfigFromName, DeitTiny) {
  const VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  EXPECT_EQ(c.architecture, "deit_tiny_patch16_224");
  EXPECT_EQ(c.embed_dim, 192);
  EXPECT_EQ(c.depth, 12);
  EXPECT_EQ(c.num_heads, 3);
  EXPECT_EQ(c.head_dim(), 64);
  EXPECT_EQ(c.mlp_hidden(), 768);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.img_size, 224);
  EXPECT_EQ(c.grid(), 14);
  EXPECT_EQ(c.num_patches(), 196);
  EXPECT_EQ(c.num_prefix_tokens(), 1);
  EXPECT_EQ(c.num_tokens(), 197);
  EXPECT_FALSE(c.distilled);
  EXPECT_FALSE(c.layer_scale);
  EXPECT_FALSE(c.no_embed_class);
  EXPECT_EQ(c.global_pool, "token");
  EXPECT_EQ(c.num_classes, 1000);
  EXPECT_DOUBLE_EQ(c.crop_pct, 0.875);
  EXPECT_EQ(c.resize_size(), 256);
  EXPECT_EQ(c.interpolation, "bicubic");
  EXPECT_EQ(c.mean, kImagenetMean);
  EXPECT_EQ(c.std, kImagenetStd);
}

TEST(ConfigFromName, DeitSmallAndBase) {
  const VitConfig s = config_from_arch_name("deit_small_patch16_224");
  EXPECT_EQ(s.embed_dim, 384);
  EXPECT_EQ(s.depth, 12);
  EXPECT_EQ(s.num_heads, 6);
  EXPECT_EQ(s.head_dim(), 64);
  EXPECT_EQ(s.mlp_hidden(), 1536);
  const VitConfig b = config_from_arch_name("deit_base_patch16_224");
  EXPECT_EQ(b.embed_dim, 768);
  EXPECT_EQ(b.depth, 12);
  EXPECT_EQ(b.num_heads, 12);
  EXPECT_EQ(b.mlp_hidden(), 3072);
  EXPECT_EQ(b.num_tokens(), 197);
  EXPECT_EQ(b.resize_size(), 256);
}

TEST(ConfigFromName, VitLarge384) {
  const VitConfig c = config_from_arch_name("vit_large_patch16_384");
  EXPECT_EQ(c.embed_dim, 1024);
  EXPECT_EQ(c.depth, 24);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.img_size, 384);
  EXPECT_EQ(c.grid(), 24);
  EXPECT_EQ(c.num_tokens(), 577);
  EXPECT_DOUBLE_EQ(c.crop_pct, 1.0);  // timm's 384-px configs crop nothing
  EXPECT_EQ(c.resize_size(), 384);
  EXPECT_EQ(c.mean, kHalf);
  EXPECT_EQ(c.std, kHalf);
}

TEST(ConfigFromName, VitHugePatch14) {
  const VitConfig c = config_from_arch_name("vit_huge_patch14_224");
  EXPECT_EQ(c.embed_dim, 1280);
  EXPECT_EQ(c.depth, 32);
  EXPECT_EQ(c.num_heads, 16);
  EXPECT_EQ(c.head_dim(), 80);
  EXPECT_EQ(c.patch_size, 14);
  EXPECT_EQ(c.grid(), 16);
  EXPECT_EQ(c.num_tokens(), 257);
  EXPECT_DOUBLE_EQ(c.crop_pct, 0.9);
  EXPECT_EQ(c.resize_size(), 248);
  EXPECT_EQ(c.mean, kHalf);
}

TEST(ConfigFromName, DeitBaseDistilled) {
  const VitConfig c = config_from_arch_name("deit_base_distilled_patch16_224");
  EXPECT_TRUE(c.distilled);
  EXPECT_TRUE(c.class_token);
  EXPECT_EQ(c.embed_dim, 768);
  EXPECT_EQ(c.num_prefix_tokens(), 2);
  EXPECT_EQ(c.num_tokens(), 198);
  EXPECT_FALSE(c.layer_scale);
  EXPECT_EQ(c.mean, kImagenetMean);
}

TEST(ConfigFromName, Deit3HasLayerScaleAndPatchOnlyPositions) {
  const VitConfig c = config_from_arch_name("deit3_small_patch16_224");
  EXPECT_TRUE(c.layer_scale);
  EXPECT_TRUE(c.no_embed_class);
  EXPECT_FALSE(c.distilled);
  EXPECT_EQ(c.embed_dim, 384);
  EXPECT_EQ(c.num_heads, 6);
  EXPECT_EQ(c.num_prefix_tokens(), 1);
  const VitConfig b = config_from_arch_name("deit3_base_patch16_384");
  EXPECT_TRUE(b.layer_scale);
  EXPECT_EQ(b.img_size, 384);
  EXPECT_EQ(b.resize_size(), 384);
}

TEST(ConfigFromName, PretrainedTagAfterDotIsAccepted) {
  const VitConfig c = config_from_arch_name("vit_tiny_patch16_224.augreg_in21k_ft_in1k");
  EXPECT_EQ(c.architecture, "vit_tiny_patch16_224.augreg_in21k_ft_in1k");
  EXPECT_EQ(c.embed_dim, 192);
  EXPECT_EQ(c.resize_size(), 248);
  EXPECT_EQ(c.mean, kHalf);
}

TEST(ConfigFromName, UnknownNamesThrow) {
  expect_name_error("resnet50", {"unknown architecture"});
  expect_name_error("vit_giant_xx", {"unknown architecture"});
  expect_name_error("vit_giant_patch14_224", {"unknown architecture"});
  expect_name_error("vit_base_patch16", {"unknown architecture"});
  expect_name_error("swin_tiny_patch4_window7_224", {"unknown architecture"});
  expect_name_error("DEIT_TINY_PATCH16_224", {"unknown architecture"});
  expect_name_error("deit_tiny_patch16_224 ", {"unknown architecture"});
  expect_config_error([] { config_from_arch_name(""); }, "", {"unknown architecture"});
}

TEST(ConfigFromName, ImpossibleGeometryThrows) {
  expect_name_error("deit_tiny_patch15_224", {"img_size 224", "patch_size 15"});
  expect_name_error("vit_base_patch0_224", {"patch_size 0"});
  expect_name_error("vit_base_patch16_0", {"img_size 0"});
}

TEST(ConfigFromName, OversizedNumbersThrowMsError) {
  // Digits that do not fit an int must be a config error, not std::out_of_range from std::stoi.
  expect_name_error("vit_base_patch16_99999999999");
  expect_name_error("vit_base_patch99999999999_224");
}

// ---- config.json ------------------------------------------------------------------------------------

TEST(ConfigJson, SharedDeitTiny) {
  const VitConfig c = load_config_json(kDeitConfig);
  EXPECT_EQ(c.architecture, "deit_tiny_patch16_224");
  EXPECT_EQ(c.embed_dim, 192);
  EXPECT_EQ(c.depth, 12);
  EXPECT_EQ(c.num_heads, 3);
  EXPECT_EQ(c.img_size, 224);
  EXPECT_EQ(c.patch_size, 16);
  EXPECT_EQ(c.num_classes, 1000);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.class_token);
  EXPECT_FALSE(c.fc_norm);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.crop_pct, 0.875);
  EXPECT_EQ(c.resize_size(), 256);
  EXPECT_EQ(c.interpolation, "bicubic");
  EXPECT_EQ(c.mean, kImagenetMean);
  EXPECT_EQ(c.std, kImagenetStd);
}

TEST(ConfigJson, SharedVitTinyAugreg) {
  const VitConfig c = load_config_json(kVitConfig);
  EXPECT_EQ(c.architecture, "vit_tiny_patch16_224");
  EXPECT_EQ(c.embed_dim, 192);
  EXPECT_DOUBLE_EQ(c.crop_pct, 0.9);
  EXPECT_EQ(c.resize_size(), 248);
  EXPECT_EQ(c.mean, kHalf);
  EXPECT_EQ(c.std, kHalf);
}

TEST(ConfigJson, JsonValuesOverrideTheNameDefaults) {
  const VitConfig c = parse_config_json(
      config_text(R"("global_pool": "avg", "init_values": 1e-6, "num_classes": 10, "qkv_bias": false)",
                  R"("crop_pct": 0.95, "interpolation": "bilinear", "mean": [0.1, 0.2, 0.3], "input_size": [3, 224, 224])"),
      "x.json");
  EXPECT_EQ(c.global_pool, "avg");
  EXPECT_TRUE(c.fc_norm);  // timm: fc_norm defaults to global_pool == 'avg'
  EXPECT_TRUE(c.layer_scale);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.num_classes, 10);
  EXPECT_DOUBLE_EQ(c.crop_pct, 0.95);
  EXPECT_EQ(c.resize_size(), 235);
  EXPECT_EQ(c.interpolation, "bilinear");
  EXPECT_EQ(c.mean, (std::array<float, 3>{0.1f, 0.2f, 0.3f}));
  EXPECT_EQ(c.std, kImagenetStd);
}

TEST(ConfigJson, MissingFile) {
  expect_config_error([] { load_config_json("/nonexistent/config.json"); }, "/nonexistent/config.json", {"cannot open"});
}

TEST(ConfigJson, InvalidJson) {
  expect_json_error("{\"architecture\": \"deit_tiny_patch16_224\",", {"invalid JSON"});
  expect_json_error("", {"invalid JSON"});
  expect_json_error("architecture: deit", {"invalid JSON"});
}

TEST(ConfigJson, NotAnObject) {
  expect_json_error("[\"deit_tiny_patch16_224\"]", {"JSON object"});
  expect_json_error("\"deit_tiny_patch16_224\"", {"JSON object"});
}

TEST(ConfigJson, MissingArchitecture) {
  expect_json_error("{}", {"'architecture'"});
  expect_json_error(R"({"num_classes": 1000, "model_args": {"embed_dim": 192}})", {"'architecture'"});
  expect_json_error(R"({"architecture": ""})", {"'architecture'"});
}

TEST(ConfigJson, UnknownArchitecture) {
  expect_json_error(config_text("", "", "\"resnet50\""), {"unknown architecture 'resnet50'"});
  expect_json_error(config_text("", "", "\"vit_giant_xx\""), {"unknown architecture 'vit_giant_xx'"});
}

TEST(ConfigJson, WrongFieldTypes) {
  expect_json_error(config_text("", "", "5"), {"'architecture'", "wrong type"});
  expect_json_error(config_text(R"("embed_dim": "192")"), {"'embed_dim'", "wrong type", "\"192\""});
  expect_json_error(config_text(R"("depth": [12])"), {"'depth'", "wrong type"});
  expect_json_error(config_text(R"("qkv_bias": "yes")"), {"'qkv_bias'", "wrong type"});
  expect_json_error(config_text(R"("global_pool": 1)"), {"'global_pool'", "wrong type"});
  expect_json_error(config_text("", R"("crop_pct": "0.875")"), {"'crop_pct'", "wrong type"});
  expect_json_error(config_text("", R"("mean": "imagenet")"), {"'mean'", "wrong type"});
  expect_json_error(config_text("", R"("mean": [0.5, 0.5])"), {"'mean'"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "num_classes": "1000"})", {"'num_classes'", "wrong type"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "model_args": 5})", {"'model_args'", "not an object"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "pretrained_cfg": []})", {"'pretrained_cfg'", "not an object"});
}

TEST(ConfigJson, FractionalIntegerFieldIsRejected) {
  // nlohmann's get<int>() truncates 12.5 to 12; a model with "depth": 12.5 is not a valid config.
  expect_json_error(config_text(R"("depth": 12.5)"), {"'depth'"});
  expect_json_error(config_text(R"("img_size": 224.9)"), {"'img_size'"});
}

TEST(ConfigJson, BooleanForIntegerFieldIsRejected) {
  expect_json_error(config_text(R"("num_heads": true)"), {"'num_heads'"});
}

TEST(ConfigJson, ImgSizeNotDivisibleByPatch) {
  expect_json_error(config_text(R"("img_size": 225)", R"("input_size": [3, 225, 225])"),
                    {"img_size 225", "patch_size 16"});
  expect_json_error(config_text(R"("patch_size": 0)"), {"patch_size 0"});
}

TEST(ConfigJson, EmbedDimNotDivisibleByHeads) {
  expect_json_error(config_text(R"("num_heads": 5)"), {"embed_dim 192", "num_heads 5"});
  expect_json_error(config_text(R"("num_heads": 0)"), {"num_heads 0"});
}

TEST(ConfigJson, OtherImpossibleValues) {
  expect_json_error(config_text(R"("depth": 0)"), {"depth 0"});
  expect_json_error(config_text(R"("in_chans": 1)"), {"in_chans 1"});
  expect_json_error(config_text(R"("global_pool": "max")"), {"global_pool 'max'"});
  expect_json_error(config_text(R"("class_token": false)"), {"class token"});
  expect_json_error(config_text("", R"("crop_pct": 0)"), {"crop_pct"});
  expect_json_error(config_text("", R"("crop_pct": 1.5)"), {"crop_pct"});
  expect_json_error(config_text("", R"("interpolation": "lanczos")"), {"interpolation 'lanczos'"});
  expect_json_error(config_text("", R"("std": [0.2, 0, 0.2])"), {"std"});
  expect_json_error(config_text("", R"("input_size": [3, 384, 384])"), {"input_size", "img_size 224"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "num_classes": 0})", {"num_classes"});
}

}  // namespace
}  // namespace ms
