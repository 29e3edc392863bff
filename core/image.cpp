#include "image.h"

#include "error.h"
#include "io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <cstring>
#include <memory>

namespace ms {
namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// Walks the JPEG marker segments (and the entropy-coded data after each SOS) up to EOI. stb_image decodes a
// truncated file into a partly grey image without complaint and converts CMYK silently; PIL refuses both.
void check_jpeg(const uint8_t* d, size_t n, const std::string& path) {
  size_t i = 2;
  bool seen_frame = false;
  while (true) {
    while (i < n && d[i] != 0xFF) ++i;  // tolerate fill bytes between segments
    while (i < n && d[i] == 0xFF) ++i;
    if (i >= n) fail(path, "truncated JPEG: the file ends before the end-of-image marker");
    const uint8_t marker = d[i++];
    if (marker == 0xD9) break;                                  // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // TEM, RSTn: no length
    if (i + 2 > n) fail(path, "truncated JPEG: a segment header is cut off");
    const size_t len = be16(d + i);
    if (len < 2 || i + len > n) fail(path, "truncated JPEG: a segment runs past the end of the file");
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (len < 8) fail(path, "corrupt JPEG: frame header too short");
      if (marker == 0xC3 || marker == 0xC7 || marker == 0xCB || marker == 0xCF)
        fail(path, "lossless JPEG is not supported");
      if (marker >= 0xC9) fail(path, "arithmetic-coded JPEG is not supported");
      if (marker == 0xC5 || marker == 0xC6) fail(path, "hierarchical JPEG is not supported");
      const int precision = d[i + 2];
      const int components = d[i + 7];
      if (precision != 8) fail(path, std::to_string(precision) + "-bit JPEG is not supported (8-bit only)");
      if (components == 4) fail(path, "CMYK/YCCK JPEG is not supported (convert it to RGB first)");
      if (components != 1 && components != 3)
        fail(path, "JPEG with " + std::to_string(components) + " components is not supported");
      seen_frame = true;
    }
    i += len;
    if (marker == 0xDA) {  // SOS: skip entropy-coded data up to the next real marker
      while (true) {
        while (i < n && d[i] != 0xFF) ++i;
        if (i + 1 >= n) fail(path, "truncated JPEG: image data ends before the end-of-image marker");
        const uint8_t next = d[i + 1];
        if (next == 0x00 || next == 0xFF || (next >= 0xD0 && next <= 0xD7)) {
          i += (next == 0xFF) ? 1 : 2;
          continue;
        }
        break;
      }
    }
  }
  if (!seen_frame) fail(path, "corrupt JPEG: no frame header");
}

// stb_image reads past the end of an uncompressed BMP as zeros; check the pixel array fits.
void check_bmp(const uint8_t* d, size_t n, const std::string& path) {
  if (n < 54) fail(path, "truncated BMP header");
  const uint32_t pixel_offset = le32(d + 10);
  const uint32_t header_size = le32(d + 14);
  if (header_size < 40) return;  // old OS/2 headers: leave to stb
  const int32_t width = static_cast<int32_t>(le32(d + 18));
  const int32_t height = static_cast<int32_t>(le32(d + 22));
  const int bpp = d[28] | d[29] << 8;
  const uint32_t compression = le32(d + 30);
  if (width <= 0 || height == 0) fail(path, "corrupt BMP: bad dimensions");
  if (compression != 0 && compression != 3) return;  // RLE: stb checks as it goes
  const uint64_t row = ((static_cast<uint64_t>(width) * bpp + 31) / 32) * 4;
  const uint64_t need = pixel_offset + row * static_cast<uint64_t>(height < 0 ? -static_cast<int64_t>(height) : height);
  if (need > n) fail(path, "truncated BMP: pixel data needs " + std::to_string(need) + " bytes, file has " + std::to_string(n));
}

}  // namespace

RgbImage decode_image(const std::vector<char>& bytes, const std::string& path) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n == 0) fail(path, "empty file");
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
    check_jpeg(d, n, path);
  } else if (n >= 8 && std::memcmp(d, kPng, 8) == 0) {
    // stb_image validates PNG chunk structure and the zlib stream itself.
  } else if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
    check_bmp(d, n, path);
  } else {
    fail(path, "unsupported image format (expected JPEG, PNG or BMP)");
  }
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> data(
      stbi_load_from_memory(d, static_cast<int>(n), &w, &h, &channels, 3), stbi_image_free);
  if (!data) fail(path, std::string("corrupt image: ") + (stbi_failure_reason() ? stbi_failure_reason() : "decode failed"));
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

RgbImage load_image(const std::string& path) { return decode_image(read_file(path), path); }

void write_png(const std::string& path, const RgbImage& image) {
  if (!stbi_write_png(path.c_str(), image.width, image.height, 3, image.pixels.data(), image.width * 3))
    fail(path, "cannot write PNG");
}

}  // namespace ms
