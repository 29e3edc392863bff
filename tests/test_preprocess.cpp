// Preprocessing equals torchvision + PIL bit for bit on lossless inputs (the reference is made by
// tests/fixtures/make_fixtures.py with the real libraries).
#include "config.h"
#include "image.h"
#include "preprocess.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <vector>

namespace ms {
namespace {

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  EXPECT_TRUE(f.good()) << path;
  std::vector<float> v(static_cast<size_t>(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  return v;
}

struct Case {
  const char* stem;
  const char* cfg;
};

class PilEquality : public ::testing::TestWithParam<Case> {};

TEST_P(PilEquality, MatchesTorchvisionBitForBit) {
  const Case c = GetParam();
  const std::string model_dir =
      std::string("../shared/models/") +
      (std::string(c.cfg) == "deit" ? "deit_tiny_patch16_224" : "vit_tiny_patch16_224.augreg_in21k_ft_in1k");
  const PreprocessSpec spec = preprocess_spec(load_config_json(model_dir + "/config.json"));
  const RgbImage image = load_image(test::fixtures_dir() + "/pil/" + c.stem + ".png");
  std::vector<float> ours(static_cast<size_t>(3) * spec.crop * spec.crop);
  preprocess(image, spec, ours.data());
  const std::vector<float> ref = read_f32(test::fixtures_dir() + "/pil/" + c.stem + "." + c.cfg + ".f32");
  ASSERT_EQ(ours.size(), ref.size());
  size_t mismatches = 0;
  float worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] != ref[i]) ++mismatches;
    worst = std::max(worst, std::fabs(ours[i] - ref[i]));
  }
  EXPECT_EQ(mismatches, 0u) << "max abs difference " << worst;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PilEquality,
                         ::testing::Values(Case{"noise_wide", "deit"}, Case{"noise_wide", "vit"},
                                           Case{"noise_tall", "deit"}, Case{"noise_tall", "vit"},
                                           Case{"grey_square", "deit"}, Case{"grey_square", "vit"},
                                           Case{"exact_short_side", "deit"}, Case{"exact_short_side", "vit"},
                                           Case{"tench", "deit"}, Case{"tench", "vit"}),
                         [](const auto& info) { return std::string(info.param.stem) + "_" + info.param.cfg; });

TEST(Preprocess, ResizeShortSideFollowsTorchvision) {
  RgbImage img;
  img.width = 500;
  img.height = 375;
  img.pixels.assign(500 * 375 * 3, 128);
  const RgbImage r = resize_short_side(img, 256, ResampleFilter::Bicubic);
  EXPECT_EQ(r.height, 256);
  EXPECT_EQ(r.width, 341);                       // int(256 * 500 / 375)
  for (uint8_t v : r.pixels) ASSERT_EQ(v, 128);  // weights are normalised: a flat image stays flat
}

TEST(Preprocess, CenterCropRoundsHalfToEven) {
  RgbImage img;
  img.width = 341;
  img.height = 256;
  img.pixels.resize(341 * 256 * 3);
  for (int y = 0; y < 256; ++y)
    for (int x = 0; x < 341; ++x) img.pixels[(y * 341 + x) * 3] = static_cast<uint8_t>(x);
  const RgbImage c = center_crop(img, 224, 224);
  EXPECT_EQ(c.pixels[0], 58);  // (341 - 224) / 2 = 58.5 -> Python round() gives 58
}

}  // namespace
}  // namespace ms
