// timm's eval transform reproduced bit for bit: PIL's antialiased resampling (Pillow's Resample.c
// algorithm: separable, horizontal pass first, 22-bit fixed-point weights, 8-bit rounding between passes),
// torchvision's short-side Resize and CenterCrop arithmetic, ToTensor and Normalize in float32.
// No LibTorch here; the engine wraps the float output in a tensor.
#pragma once

#include "image.h"

#include <array>
#include <string>
#include <vector>

namespace ms {

struct VitConfig;

enum class ResampleFilter { Bilinear, Bicubic };

ResampleFilter filter_from_name(const std::string& name);

// PIL Image.resize(size, filter) on an RGB image.
RgbImage resize_like_pil(const RgbImage& in, int out_width, int out_height, ResampleFilter filter);

// torchvision Resize(int): short side to `size`, long side int(size * long / short).
RgbImage resize_short_side(const RgbImage& in, int size, ResampleFilter filter);

// torchvision CenterCrop: offsets int(round((in - out) / 2)) with Python's round-half-to-even.
RgbImage center_crop(const RgbImage& in, int out_width, int out_height);

struct PreprocessSpec {
  int resize = 256;  // short side after resize
  int crop = 224;
  ResampleFilter filter = ResampleFilter::Bicubic;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

PreprocessSpec preprocess_spec(const VitConfig& config);

// Resize, crop, then write crop*crop*3 floats in CHW order to `out`: (v / 255 - mean) / std.
void preprocess(const RgbImage& image, const PreprocessSpec& spec, float* out);

// The resized and cropped RGB image the model sees (what the app overlays tokens on).
RgbImage model_view(const RgbImage& image, const PreprocessSpec& spec);

}  // namespace ms
