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
  // With both sides at most kMaxImageSide the coefficient tables stay small too: out_size * taps is about
  // 4 * in_size + 5 * out_size weights.
  if (out_width != in.width) check_image_budget(out_width, in.height, "resize", "intermediate image");
  check_image_budget(out_width, out_height, "resize", "resized image");
  // PIL skips a pass whose size does not change; the horizontal pass runs first.
  RgbImage tmp = out_width != in.width ? resample_horizontal(in, out_width, filter) : in;
  return out_height != in.height ? resample_vertical(tmp, out_height, filter) : tmp;
}

namespace {

// torchvision Resize(size)'s output size for a width x height image, in 64 bits (a 1-pixel-wide image asks
// for size * height).
struct ResizedSize {
  int64_t width = 0, height = 0;
};

ResizedSize short_side_resized(int width, int height, int size) {
  const bool wide = width >= height;
  const int64_t short_side = wide ? height : width, long_side = wide ? width : height;
  if (short_side == size) return {width, height};  // torchvision returns the image unchanged
  const int64_t new_long = short_side > 0 ? static_cast<int64_t>(size) * long_side / short_side : 0;
  return wide ? ResizedSize{new_long, size} : ResizedSize{size, new_long};
}

}  // namespace

RgbImage resize_short_side(const RgbImage& in, int size, ResampleFilter filter) {
  const ResizedSize r = short_side_resized(in.width, in.height, size);
  if (r.width == in.width && r.height == in.height) return in;
  check_image_budget(static_cast<uint64_t>(std::max<int64_t>(r.width, 0)),
                     static_cast<uint64_t>(std::max<int64_t>(r.height, 0)), "resize", "resized image");
  return resize_like_pil(in, static_cast<int>(r.width), static_cast<int>(r.height), filter);
}

RgbImage center_crop(const RgbImage& in, int out_width, int out_height) {
  if (out_width > in.width || out_height > in.height)
    fail("center_crop", "crop " + std::to_string(out_width) + "x" + std::to_string(out_height) +
                            " is larger than the image " + std::to_string(in.width) + "x" + std::to_string(in.height));
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

void check_preprocess_budget(int width, int height, const PreprocessSpec& spec, const std::string& path) {
  if (spec.resize <= 0 || spec.crop <= 0)
    fail(path,
         "cannot preprocess with resize " + std::to_string(spec.resize) + " and crop " + std::to_string(spec.crop));
  if (width <= 0 || height <= 0)
    fail(path, "image of " + std::to_string(width) + "x" + std::to_string(height) + " pixels has no pixels");
  const ResizedSize r = short_side_resized(width, height, spec.resize);
  const std::string resize = "resizing " + std::to_string(width) + "x" + std::to_string(height) + " (short side to " +
                             std::to_string(spec.resize) + ") gives " + std::to_string(r.width) + "x" +
                             std::to_string(r.height) + " pixels";
  // Each side is below 2^62 (an int times an int over a positive int); their product is taken only once both
  // are known to be small.
  const int64_t max_side = static_cast<int64_t>(kMaxImageSide);
  if (r.width > max_side || r.height > max_side)
    fail(path, resize + ", a side over the limit of " + std::to_string(kMaxImageSide) + " pixels");
  const uint64_t pixels = static_cast<uint64_t>(r.width) * static_cast<uint64_t>(r.height);
  if (pixels > kMaxImagePixels)
    fail(path, resize + " (" + std::to_string(pixels) + "), over the limit of " + std::to_string(kMaxImagePixels) +
                   " pixels (the decode budget)");
  if (spec.crop > r.width || spec.crop > r.height)
    fail(path, resize + ", smaller than the " + std::to_string(spec.crop) + "x" + std::to_string(spec.crop) + " crop");
}

namespace {

// Runs one preprocessing step for `path`: the budget is checked already, so what can still go wrong is the
// machine running out of memory within it; that names the file too.
template <typename F>
auto for_image(const RgbImage& image, const std::string& path, F&& step) -> decltype(step()) {
  try {
    return step();
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory preprocessing the " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                   " image");
  }
}

}  // namespace

RgbImage model_view(const RgbImage& image, const PreprocessSpec& spec, const std::string& path) {
  check_preprocess_budget(image.width, image.height, spec, path);
  return for_image(image, path, [&] {
    return center_crop(resize_short_side(image, spec.resize, spec.filter), spec.crop, spec.crop);
  });
}

void preprocess(const RgbImage& image, const PreprocessSpec& spec, float* out, const std::string& path) {
  const RgbImage view = model_view(image, spec, path);
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
