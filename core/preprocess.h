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

// PIL Image.resize(size, filter) on an RGB image. The output and the intermediate of the separable resize
// (out_width x in.height) are held to the decode budget of image.h; throws ms::Error("resize: ...") beyond it.
RgbImage resize_like_pil(const RgbImage& in, int out_width, int out_height, ResampleFilter filter);

// torchvision Resize(int): short side to `size`, long side int(size * long / short) (computed in 64 bits).
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

// Checks, in 64-bit arithmetic and before anything is allocated, every size that preprocessing an image of
// width x height derives: the resized image (short side to spec.resize) must stay within the decode budget of
// image.h (kMaxImagePixels, kMaxImageSide) -- a resize never holds more than a decode may -- and the crop must
// fit in it. Throws ms::Error("<path>: ...") naming the sizes.
void check_preprocess_budget(int width, int height, const PreprocessSpec& spec, const std::string& path);

// Resize, crop, then write crop*crop*3 floats in CHW order to `out`: (v / 255 - mean) / std. Checks the
// budget first; every failure, running out of memory included, is an ms::Error naming `path`.
void preprocess(const RgbImage& image, const PreprocessSpec& spec, float* out, const std::string& path = "image");

// The resized and cropped RGB image the model sees (what the app overlays tokens on); errors as preprocess().
RgbImage model_view(const RgbImage& image, const PreprocessSpec& spec, const std::string& path = "image");

}  // namespace ms
