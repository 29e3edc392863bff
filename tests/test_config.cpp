// Model configs: timm architecture names and timm-hub config.json files, including every way a config can
// be wrong (each an ms::Error naming its source).
#include "config.h"
#include "error.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
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
      config_text(
          R"("global_pool": "avg", "init_values": 1e-6, "num_classes": 10, "qkv_bias": false)",
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
  expect_config_error([] { load_config_json("/nonexistent/config.json"); }, "/nonexistent/config.json",
                      {"cannot open"});
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
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "num_classes": "1000"})",
                    {"'num_classes'", "wrong type"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "model_args": 5})", {"'model_args'", "not an object"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "pretrained_cfg": []})",
                    {"'pretrained_cfg'", "not an object"});
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

// ---- hostile values (issue 13): limits, overflow, non-finite numbers ------------------------------------

TEST(ConfigJson, DeepNestingIsRefusedBeforeParsing) {
  // 100,000 nested arrays crashed the message that dumped them (stack overflow in the serializer).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  expect_json_error(config_text("", "", deep), {"deeper than 64"});
  expect_json_error(config_text(R"("unused": )" + deep), {"deeper than 64"});
  // Brackets inside strings are text, not nesting.
  expect_json_error(config_text("", "", "\"" + std::string(1000, '[') + "\""), {"unknown architecture"});
  const std::string at_limit = std::string(62, '[') + std::string(62, ']');  // + the config's own 2 levels = 64
  EXPECT_NO_THROW(parse_config_json(config_text(R"("unused": )" + at_limit), "x.json"));
}

TEST(ConfigJson, OversizedFileIsRefused) {
  const std::string padding(kMaxConfigJsonBytes, ' ');
  expect_json_error(config_text("") + padding, {"over the limit of 1048576 bytes"});
}

TEST(ConfigJson, MessagesQuoteOnlyAShortPrefixOfUntrustedValues) {
  const std::string long_name = "deit_" + std::string(200000, 'x') + "\n\x01";
  try {
    parse_config_json(config_text("", "", "\"" + long_name.substr(0, long_name.size() - 2) + "\""), "x.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 300u) << "message quotes the whole value";
    EXPECT_NE(std::string(e.what()).find("unknown architecture 'deit_xxx"), std::string::npos) << e.what();
  }
  try {
    parse_config_json(config_text(R"("global_pool": ")" + std::string(5000, 'g') + "\\n\\u0001\"", ""), "x.json");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_LT(msg.size(), 300u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  expect_json_error(config_text(R"("depth": [[[[12]]]])"), {"'depth'", "an array of 1 value"});
}

TEST(ConfigJson, IntegersAreNotNarrowed) {
  // nlohmann's get<int>() wraps these to 12 and 192.
  expect_json_error(config_text(R"("depth": 4294967308)"), {"depth 4294967308 is outside [1, 256]"});
  expect_json_error(config_text(R"("embed_dim": 4294967488)"), {"embed_dim 4294967488 is outside [1, 16384]"});
  expect_json_error(config_text(R"("img_size": 1073741824)"), {"img_size 1073741824 is outside [1, 4096]"});
  expect_json_error(config_text(R"("depth": 18446744073709551615)"), {"depth 18446744073709551615"});
  expect_json_error(config_text(R"("depth": 18446744073709551616)"),
                    {"'depth'", "wrong type"});  // past uint64: a float
  expect_json_error(config_text(R"("depth": -12)"), {"depth -12 is outside [1, 256]"});
  expect_json_error(R"({"architecture": "deit_tiny_patch16_224", "num_classes": 4294968296})",
                    {"num_classes 4294968296 is outside [1, 100000]"});
  expect_json_error(config_text(R"("num_heads": 2147483651)"), {"num_heads 2147483651"});
}

TEST(ConfigJson, DerivedSizesAreBounded) {
  // (img/patch)^2 patches: 4096/8 = 512 per side would be 262,144 tokens.
  expect_json_error(
      config_text(R"("img_size": 4096, "patch_size": 8)", R"("crop_pct": 1.0, "input_size": [3, 4096, 4096])"),
      {"512 patches per side", "over the limit of 256"});
  const VitConfig big = parse_config_json(
      config_text(R"("img_size": 4096, "patch_size": 16)", R"("crop_pct": 1.0, "input_size": [3, 4096, 4096])"),
      "x.json");
  EXPECT_EQ(big.num_patches(), 65536);
  EXPECT_EQ(big.resize_size(), 4096);
  // The resize target floor(img_size / crop_pct).
  expect_json_error(
      config_text(R"("img_size": 4096, "patch_size": 16)", R"("crop_pct": 0.4, "input_size": [3, 4096, 4096])"),
      {"crop_pct 0.4 with img_size 4096", "10240 px", "over the limit of 8192"});
  // The MLP width int(embed_dim * mlp_ratio).
  expect_json_error(config_text(R"("embed_dim": 16384, "num_heads": 16, "mlp_ratio": 32)"), {"MLP width", "524288"});
  expect_json_error(config_text(R"("mlp_ratio": 0.001)"), {"MLP width", "= 0 is outside [1, 262144]"});
}

TEST(ConfigJson, FloatsNeedRangeAndFiniteness) {
  expect_json_error(config_text("", R"("crop_pct": 1e-12)"), {"crop_pct 1e-12 is outside [0.05, 1]"});
  expect_json_error(config_text("", R"("crop_pct": 1e-5)"), {"crop_pct 1e-05 is outside [0.05, 1]"});
  expect_json_error(config_text(R"("mlp_ratio": 1e308)"), {"mlp_ratio 1e+308 is outside (0, 64]"});
  expect_json_error(config_text(R"("mlp_ratio": 0)"), {"mlp_ratio 0 is outside (0, 64]"});
  expect_json_error(config_text(R"("mlp_ratio": true)"), {"'mlp_ratio'", "wrong type"});
  expect_json_error(config_text("", R"("mean": [1e39, 0.5, 0.5])"), {"mean[0] 1e+39 is outside [0, 1]"});
  expect_json_error(config_text("", R"("mean": [0.5, -0.1, 0.5])"), {"mean[1] -0.1 is outside [0, 1]"});
  expect_json_error(config_text("", R"("std": [0.2, 0.2, 1e300])"), {"std[2] 1e+300 is outside [0.01, 10]"});
  expect_json_error(config_text(R"("norm_eps": -1)"), {"norm_eps -1 is outside [1e-12, 1]"});
  expect_json_error(config_text(R"("norm_eps": 0)"), {"norm_eps 0 is outside"});
  expect_json_error(config_text(R"("norm_eps": 1e-300)"), {"norm_eps 1e-300 is outside"});
  // A number past double's range is a JSON error of its own (nlohmann refuses to parse it).
  expect_json_error(config_text(R"("mlp_ratio": 1e400)"), {"invalid JSON"});
}

TEST(ConfigJson, InputSizeMustBeThreeChannelsAtImgSize) {
  expect_json_error(config_text("", R"("input_size": [1, 224, 224])"),
                    {"input_size [1,224,224] disagrees with in_chans 3 and img_size 224", "[3,224,224]"});
  expect_json_error(config_text("", R"("input_size": [3, 224, 192])"), {"input_size [3,224,192]"});
  expect_json_error(config_text("", R"("input_size": [3, 224])"), {"'input_size'", "wrong type"});
  expect_json_error(config_text("", R"("input_size": [3.0, 224, 224])"), {"'input_size'", "wrong type"});
  expect_json_error(config_text("", R"("input_size": [4294967299, 224, 224])"), {"input_size [4294967299,224,224]"});
}

TEST(ConfigValidate, ConfigsBuiltInCodeAreCheckedToo) {
  // Model::from_state_dict validates whatever config it gets; derived sizes never overflow an int.
  VitConfig c = config_from_arch_name("deit_tiny_patch16_224");
  c.img_size = 1073741824;
  expect_config_error([&] { c.validate("code"); }, "code", {"img_size 1073741824 is outside [1, 4096]"});
  c = config_from_arch_name("deit_tiny_patch16_224");
  c.crop_pct = 1e-12;
  expect_config_error([&] { c.resize_size(); }, "deit_tiny_patch16_224", {"crop_pct 1e-12", "resize target"});
  c = config_from_arch_name("deit_tiny_patch16_224");
  c.mlp_ratio = 1e308;
  expect_config_error([&] { c.mlp_hidden(); }, "deit_tiny_patch16_224", {"MLP width"});
  c = config_from_arch_name("deit_tiny_patch16_224");
  c.mean[2] = std::numeric_limits<float>::infinity();
  expect_config_error([&] { c.validate("code"); }, "code", {"mean[2] inf is outside [0, 1]"});
  c = config_from_arch_name("deit_tiny_patch16_224");
  c.norm_eps = std::nan("");
  expect_config_error([&] { c.validate("code"); }, "code", {"norm_eps nan"});
}

TEST(ConfigJson, RealConfigsStayWithinTheLimits) {
  for (const auto& path : {kDeitConfig, kVitConfig}) EXPECT_NO_THROW(load_config_json(path)) << path;
  for (const char* name : {"vit_huge_patch14_224", "vit_large_patch16_384", "deit3_base_patch16_384",
                           "deit_base_distilled_patch16_224", "vit_base_patch32_224"})
    EXPECT_NO_THROW(config_from_arch_name(name)) << name;
}

}  // namespace
}  // namespace ms
