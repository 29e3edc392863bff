#include "preprocess.h"

#include "config.h"
#include "error.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdint>

namespace ms {
namespace {

// Pillow's fixed-point precision for 8-bit images: 32 - 8 (pixel) - 2 (headroom for negative lobes).
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {  // Keys cubic with a = -0.5, as PIL uses
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

struct Coefficients {
  int taps = 0;                 // weights per output pixel (padded)
  std::vector<int> first;       // first input index per output pixel
  std::vector<int> count;       // number of inputs used
  std::vector<int32_t> weight;  // fixed-point weights, out_size * taps
};

// For each output pixel: the input window and normalised weights, exactly as PIL computes them
// (support scaled by the downscale factor, window centre at (x + 0.5) * scale, rounding of the bounds).
Coefficients coefficients(int in_size, int out_size, ResampleFilter filter) {
  const double support_unit = filter == ResampleFilter::Bicubic ? 2.0 : 1.0;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = support_unit * filter_scale;
  Coefficients c;
  c.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weight.assign(static_cast<size_t>(out_size) * c.taps, 0);
  std::vector<double> w(c.taps);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double inv = 1.0 / filter_scale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double total = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double arg = (x + xmin - center + 0.5) * inv;
      w[x] = filter == ResampleFilter::Bicubic ? bicubic(arg) : triangle(arg);
      total += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = total != 0.0 ? w[x] / total : w[x];
      // Pillow rounds half away from zero when converting to fixed point.
      c.weight[static_cast<size_t>(xx) * c.taps + x] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

RgbImage resample_horizontal(const RgbImage& in, int out_width, ResampleFilter filter) {
  const Coefficients c = coefficients(in.width, out_width, filter);
  RgbImage out;
  out.width = out_width;
  out.height = in.height;
  out.pixels.resize(static_cast<size_t>(out_width) * in.height * 3);
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * out_width * 3;
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* k = &c.weight[static_cast<size_t>(xx) * c.taps];
      const uint8_t* s = src + static_cast<size_t>(c.first[xx]) * 3;
      int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int x = 0; x < c.count[xx]; ++x)
        for (int ch = 0; ch < 3; ++ch) acc[ch] += s[x * 3 + ch] * k[x];
      for (int ch = 0; ch < 3; ++ch) dst[xx * 3 + ch] = clip8(acc[ch]);
    }
  }
  return out;
}

RgbImage resample_vertical(const RgbImage& in, int out_height, ResampleFilter filter) {
  const Coefficients c = coefficients(in.height, out_height, filter);
  RgbImage out;
  out.width = in.width;
  out.height = out_height;
  out.pixels.resize(static_cast<size_t>(in.width) * out_height * 3);
  const size_t stride = static_cast<size_t>(in.width) * 3;
  std::vector<int32_t> acc(stride);
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* k = &c.weight[static_cast<size_t>(yy) * c.taps];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.row(c.first[yy] + y);
      const int32_t w = k[y];
      for (size_t i = 0; i < stride; ++i) acc[i] += src[i] * w;
    }
    uint8_t* dst = out.pixels.data() + yy * stride;
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

int python_round_half_even(double v) {
  const int saved = std::fegetround();
  std::fesetround(FE_TONEAREST);
  const double r = std::nearbyint(v);
  std::fesetround(saved);
  return static_cast<int>(r);
}

}  // namespace

ResampleFilter filter_from_name(const std::string& name) {
  if (name == "bicubic") return ResampleFilter::Bicubic;
  if (name == "bilinear") return ResampleFilter::Bilinear;
  fail("interpolation", "'" + name + "' is not supported (expected bicubic or bilinear)");
}

RgbImage resize_like_pil(const RgbImage& in, int out_width, int out_height, ResampleFilter filter) {
  if (out_width <= 0 || out_height <= 0 || in.width <= 0 || in.height <= 0)
    fail("resize", "invalid size " + std::to_string(out_width) + "x" + std::to_string(out_height));
  // PIL skips a pass whose size does not change; the horizontal pass runs first.
  RgbImage tmp = out_width != in.width ? resample_horizontal(in, out_width, filter) : in;
  return out_height != in.height ? resample_vertical(tmp, out_height, filter) : tmp;
}

RgbImage resize_short_side(const RgbImage& in, int size, ResampleFilter filter) {
  const bool wide = in.width >= in.height;
  const int short_side = wide ? in.height : in.width;
  const int long_side = wide ? in.width : in.height;
  if (short_side == size) return in;  // torchvision returns the image unchanged
  const int new_long = static_cast<int>(static_cast<int64_t>(size) * long_side / short_side);
  return wide ? resize_like_pil(in, new_long, size, filter) : resize_like_pil(in, size, new_long, filter);
}

RgbImage center_crop(const RgbImage& in, int out_width, int out_height) {
  if (out_width > in.width || out_height > in.height)
    fail("center_crop", "crop " + std::to_string(out_width) + "x" + std::to_string(out_height) + " is larger than the image " +
                            std::to_string(in.width) + "x" + std::to_string(in.height));
  const int top = python_round_half_even((in.height - out_height) / 2.0);
  const int left = python_round_half_even((in.width - out_width) / 2.0);
  RgbImage out;
  out.width = out_width;
  out.height = out_height;
  out.pixels.resize(static_cast<size_t>(out_width) * out_height * 3);
  for (int y = 0; y < out_height; ++y)
    std::copy_n(in.row(top + y) + static_cast<size_t>(left) * 3, static_cast<size_t>(out_width) * 3,
                out.pixels.data() + static_cast<size_t>(y) * out_width * 3);
  return out;
}

PreprocessSpec preprocess_spec(const VitConfig& config) {
  PreprocessSpec s;
  s.resize = config.resize_size();
  s.crop = config.img_size;
  s.filter = filter_from_name(config.interpolation);
  s.mean = config.mean;
  s.std = config.std;
  return s;
}

RgbImage model_view(const RgbImage& image, const PreprocessSpec& spec) {
  return center_crop(resize_short_side(image, spec.resize, spec.filter), spec.crop, spec.crop);
}

void preprocess(const RgbImage& image, const PreprocessSpec& spec, float* out) {
  const RgbImage view = model_view(image, spec);
  const size_t plane = static_cast<size_t>(spec.crop) * spec.crop;
  for (int ch = 0; ch < 3; ++ch) {
    const float mean = spec.mean[ch], std = spec.std[ch];
    float* dst = out + ch * plane;
    for (size_t i = 0; i < plane; ++i) {
      // torchvision: to float, div(255), then sub_(mean).div_(std) -- same float32 operations, same order
      const float v = static_cast<float>(view.pixels[i * 3 + ch]) / 255.0f;
      dst[i] = (v - mean) / std;
    }
  }
}

}  // namespace ms
