// Image decoding: JPEG with libjpeg-turbo and PNG with libpng, both to exactly Pillow's pixels, BMP with
// stb_image, plus the checks the decoders leave out: truncated JPEG/BMP data, CMYK, 12-bit or arithmetic-coded
// JPEGs, unsupported formats, and one decode budget for every format. No LibTorch here, so the desktop app can
// use it directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms {

// The decode budget, the same for every format and checked from the header before any pixel buffer exists.
// Pixels: Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS = 89,478,485; Pillow refuses images over
// twice that): 178,956,970 pixels, 537 MB as 8-bit RGB. Sides: libpng's default user limit; a PNG decoder's
// row buffers grow with the width (up to 16 bytes a pixel for 16-bit RGBA), and with the pixel budget a
// longer side means an aspect ratio over 5,000:1, which preprocessing refuses anyway.
constexpr uint64_t kMaxImagePixels = 2 * 89478485ull;
constexpr uint64_t kMaxImageSide = 1000000;

// Throws ms::Error("<path>: WxH ... over the limit ...") when an image of width x height is outside the budget
// (or has a zero side); `what` names the image in the message ("PNG", "resized image", ...).
void check_image_budget(uint64_t width, uint64_t height, const std::string& path, const std::string& what = "image");

// 8-bit RGB, row-major, 3 bytes per pixel.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

// Decodes JPEG (baseline, progressive), PNG (every colour type and bit depth, interlaced too) or BMP into
// the pixels of PIL's Image.open(path).convert("RGB"): greyscale replicated, palettes looked up, alpha dropped
// without compositing (JPEG and PNG equal Pillow's exactly). Throws ms::Error("<path>: <problem>") for every
// failure, running out of memory included.
RgbImage load_image(const std::string& path);
RgbImage decode_image(const std::vector<char>& bytes, const std::string& path);

// Writes an RGB image as PNG; throws ms::Error on failure.
void write_png(const std::string& path, const RgbImage& image);

}  // namespace ms
