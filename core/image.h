// Image decoding: JPEG with libjpeg-turbo exactly as Pillow decodes it, PNG and BMP with stb_image, plus the
// checks the decoders leave out: truncated JPEG/BMP data, CMYK, 12-bit or arithmetic-coded JPEGs,
// unsupported formats. No LibTorch here, so the desktop app can use it directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ms {

// 8-bit RGB, row-major, 3 bytes per pixel.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * 3; }
};

// Decodes JPEG (baseline, progressive), PNG or BMP; greyscale becomes RGB, alpha is dropped (as PIL's
// convert("RGB") does; JPEG pixels equal Pillow's exactly). Throws ms::Error("<path>: <problem>").
RgbImage load_image(const std::string& path);
RgbImage decode_image(const std::vector<char>& bytes, const std::string& path);

// Writes an RGB image as PNG; throws ms::Error on failure.
void write_png(const std::string& path, const RgbImage& image);

}  // namespace ms
