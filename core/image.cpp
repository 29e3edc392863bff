#include "image.h"

#include "error.h"
#include "io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

// After <cstdio>: jpeglib.h uses FILE and size_t without declaring them.
#include <jerror.h>
#include <jpeglib.h>

namespace ms {
namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// Walks the JPEG marker segments (and the entropy-coded data after each SOS) up to EOI, before libjpeg sees
// the file: a truncated file gets a "truncated" message (libjpeg's memory source would invent an EOI and
// only warn), and lossless, arithmetic-coded, hierarchical, 12-bit and CMYK/YCCK files get one message
// naming what mergescope does not support, whatever libjpeg would have made of them.
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

// Pillow's DecompressionBombError threshold (Image.MAX_IMAGE_PIXELS = 89478485, refused above twice that).
// libjpeg accepts up to 65500 x 65500 pixels, which a 1 kB file can claim: 12.9 GB of RGB.
constexpr uint64_t kMaxJpegPixels = 2 * 89478485ull;

// libjpeg's default error_exit calls exit(). Ours jumps back into JpegDecompressor, the frame that armed the
// jump: C++ exceptions must not unwind through libjpeg's C frames, so the ms::Error is thrown only after the
// jump has left them.
struct JpegErrors {
  jpeg_error_mgr mgr;  // first member: libjpeg only sees a jpeg_error_mgr*
  std::jmp_buf jump;
  bool truncated = false;
  char message[JMSG_LENGTH_MAX] = {};
};

void jpeg_error_exit(j_common_ptr cinfo) {
  JpegErrors* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  cinfo->err->format_message(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings (corrupt entropy data, extraneous bytes before a marker, ...) are ignored and decoding goes on,
// as in Pillow: its libjpeg error manager prints nothing and never turns a warning into an error (checked
// with Debian's Pillow 9.4: a scan cut short before EOI, or junk before EOI, decodes). The exception is
// running out of data, where libjpeg's memory source invents an EOI and warns; Pillow instead runs out of
// input and refuses the file ("image file is truncated"), so that warning is fatal here.
void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  ++cinfo->err->num_warnings;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
    reinterpret_cast<JpegErrors*>(cinfo->err)->truncated = true;
    jpeg_error_exit(cinfo);
  }
}

void jpeg_output_message(j_common_ptr) {}  // nothing reaches stderr: errors become one ms::Error line

// One libjpeg decompression. Every libjpeg call happens inside a member function that arms the jump first
// and returns false when libjpeg fails; those functions keep no C++ objects with destructors in their
// frame, so the jump never skips a destructor, and after a jump they only return (nothing that changed
// since setjmp is read again). The destructor frees libjpeg's memory on every path, errors included.
class JpegDecompressor {
 public:
  JpegDecompressor() {
    cinfo_.err = jpeg_std_error(&errors_.mgr);
    errors_.mgr.error_exit = jpeg_error_exit;
    errors_.mgr.emit_message = jpeg_emit_message;
    errors_.mgr.output_message = jpeg_output_message;
  }
  ~JpegDecompressor() { jpeg_destroy_decompress(&cinfo_); }  // a no-op before jpeg_create_decompress
  JpegDecompressor(const JpegDecompressor&) = delete;
  JpegDecompressor& operator=(const JpegDecompressor&) = delete;

  // Reads the headers and chooses Pillow's output: 3 components as JCS_RGB, 1 as JCS_GRAYSCALE
  // (Pillow's "RGB" and "L" raw modes). Pillow leaves libjpeg's defaults alone outside draft mode, so the
  // IDCT stays JDCT_ISLOW and fancy upsampling stays on; they are set anyway so a library built with other
  // defaults cannot change the pixels.
  bool read_header(const uint8_t* data, size_t size) {
    if (setjmp(errors_.jump)) return false;
    jpeg_create_decompress(&cinfo_);
    jpeg_mem_src(&cinfo_, data, size);
    jpeg_read_header(&cinfo_, TRUE);
    cinfo_.out_color_space = cinfo_.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    cinfo_.dct_method = JDCT_ISLOW;
    cinfo_.do_fancy_upsampling = TRUE;
    return true;
  }

  // Decodes into `out`, width * height * output_components() bytes, rows top to bottom.
  bool decode(uint8_t* out) {
    if (setjmp(errors_.jump)) return false;
    jpeg_start_decompress(&cinfo_);
    const size_t stride = static_cast<size_t>(cinfo_.output_width) * cinfo_.output_components;
    JSAMPROW rows[16];
    while (cinfo_.output_scanline < cinfo_.output_height) {
      const JDIMENSION first = cinfo_.output_scanline;
      const JDIMENSION count = std::min<JDIMENSION>(16, cinfo_.output_height - first);
      for (JDIMENSION r = 0; r < count; ++r) rows[r] = out + (first + r) * stride;
      jpeg_read_scanlines(&cinfo_, rows, count);
    }
    jpeg_finish_decompress(&cinfo_);  // reads up to EOI, as Pillow does; may still warn or fail
    return true;
  }

  int width() const { return static_cast<int>(cinfo_.image_width); }
  int height() const { return static_cast<int>(cinfo_.image_height); }
  int components() const { return cinfo_.num_components; }
  bool truncated() const { return errors_.truncated; }
  const char* message() const { return errors_.message; }

 private:
  jpeg_decompress_struct cinfo_{};  // zeroed, so the destructor is safe whatever point creation reached
  JpegErrors errors_;
};

// check_jpeg has already refused what mergescope does not support (CMYK/YCCK, 12-bit, lossless, ...); the
// component check here only guards against libjpeg reading the frame header differently.
RgbImage decode_jpeg(const uint8_t* d, size_t n, const std::string& path) {
  JpegDecompressor jpeg;
  const auto libjpeg_failure = [&] {
    fail(path, std::string(jpeg.truncated() ? "truncated JPEG: " : "corrupt JPEG: ") + jpeg.message());
  };
  if (!jpeg.read_header(d, n)) libjpeg_failure();
  if (jpeg.components() != 1 && jpeg.components() != 3)
    fail(path, "JPEG with " + std::to_string(jpeg.components()) + " components is not supported");
  const uint64_t pixels = static_cast<uint64_t>(jpeg.width()) * jpeg.height();
  if (pixels > kMaxJpegPixels)
    fail(path, std::to_string(jpeg.width()) + "x" + std::to_string(jpeg.height()) + " pixels is over the limit of " +
                   std::to_string(kMaxJpegPixels) + " pixels (Pillow's decompression-bomb limit)");
  RgbImage img;
  img.width = jpeg.width();
  img.height = jpeg.height();
  img.pixels.resize(pixels * 3);
  if (!jpeg.decode(img.pixels.data())) libjpeg_failure();
  if (jpeg.components() == 1) {
    // The grey values fill the first third of the buffer. Spreading them to R = G = B from the last pixel
    // backwards never overwrites one not yet read: pixel i goes to 3i..3i+2, those still unread lie below i.
    // Pillow's convert("RGB") from "L" is this same replication.
    for (size_t i = pixels; i-- > 0;) img.pixels[3 * i] = img.pixels[3 * i + 1] = img.pixels[3 * i + 2] = img.pixels[i];
  }
  return img;
}

}  // namespace

RgbImage decode_image(const std::vector<char>& bytes, const std::string& path) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n == 0) fail(path, "empty file");
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
    // libjpeg-turbo, the decoder Pillow links: stb_image's IDCT and chroma upsampling differ from it by a
    // grey level here and there, enough to change token merges and the odd top-1 against Python.
    check_jpeg(d, n, path);
    return decode_jpeg(d, n, path);
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
