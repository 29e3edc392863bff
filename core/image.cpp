#include "image.h"

#include "error.h"
#include "io.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

// After <cstdio>: jpeglib.h uses FILE and size_t without declaring them.
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

namespace ms {
namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | static_cast<uint32_t>(p[3]) << 24; }

// One line for a failure the decoding library reported: the file ran out, the library ran out of memory
// (libjpeg: "Insufficient memory", libpng: "Out of memory"; not the file's fault), or the file is corrupt.
[[noreturn]] void decoder_failure(const std::string& path, const char* format, const char* library, bool truncated,
                                  const char* message) {
  std::string lower = message;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (truncated) fail(path, std::string("truncated ") + format + ": " + message);
  if (lower.find("memory") != std::string::npos)
    fail(path, std::string("out of memory decoding the image (") + library + ": " + message + ")");
  fail(path, std::string("corrupt ") + format + ": " + message);
}

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
    if (marker == 0xD9) break;                                           // EOI
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

// stb_image reads past the end of an uncompressed BMP as zeros; check the pixel array fits. The size goes
// through the decode budget here, from the header, because stb_image allocates the whole image first.
void check_bmp(const uint8_t* d, size_t n, const std::string& path) {
  if (n < 18) fail(path, "truncated BMP header");
  const uint32_t pixel_offset = le32(d + 10);
  const uint32_t header_size = le32(d + 14);
  // OS/2 1.x headers (12 bytes) hold 16-bit sizes; the Windows ones (40 bytes and longer) 32-bit sizes and a
  // negative height for top-down rows. stb_image refuses the other header sizes.
  const bool os2 = header_size == 12;
  if (!os2 && header_size < 40) fail(path, "corrupt BMP: unknown header size " + std::to_string(header_size));
  if (n < 14 + (os2 ? 12u : 40u)) fail(path, "truncated BMP header");
  const int64_t width = os2 ? le16(d + 18) : static_cast<int32_t>(le32(d + 18));
  const int64_t height = os2 ? le16(d + 20) : static_cast<int32_t>(le32(d + 22));
  const int bpp = os2 ? le16(d + 24) : le16(d + 28);
  const uint32_t compression = os2 ? 0 : le32(d + 30);
  if (width <= 0 || height == 0)
    fail(path, "corrupt BMP: bad dimensions " + std::to_string(width) + "x" + std::to_string(height));
  const uint64_t rows = static_cast<uint64_t>(height < 0 ? -height : height);
  check_image_budget(static_cast<uint64_t>(width), rows, path, "BMP");
  if (compression != 0 && compression != 3) return;  // RLE: stb checks as it goes
  const uint64_t row = ((static_cast<uint64_t>(width) * bpp + 31) / 32) * 4;
  const uint64_t need = pixel_offset + row * rows;
  if (need > n)
    fail(path, "truncated BMP: pixel data needs " + std::to_string(need) + " bytes, file has " + std::to_string(n));
}

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
  const auto libjpeg_failure = [&] { decoder_failure(path, "JPEG", "libjpeg", jpeg.truncated(), jpeg.message()); };
  if (!jpeg.read_header(d, n)) libjpeg_failure();
  if (jpeg.components() != 1 && jpeg.components() != 3)
    fail(path, "JPEG with " + std::to_string(jpeg.components()) + " components is not supported");
  check_image_budget(jpeg.width(), jpeg.height(), path, "JPEG");
  const uint64_t pixels = static_cast<uint64_t>(jpeg.width()) * jpeg.height();
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

// ---- PNG ----------------------------------------------------------------------------------------------

// Pillow's convert("RGB") of every PNG colour type and bit depth (Debian's Pillow 9.4, PngImagePlugin's
// modes and raw modes, checked pixel for pixel by tests/test_jpeg_pillow.cpp against PNGs that Pillow and
// the test's own writer make):
//  - grey at 1, 2, 4 bits: Pillow's "1", "L;2" and "L;4" unpackers scale to 0..255 (x255, x85, x17);
//  - grey at 16 bits: Pillow opens it as mode "I", and I -> RGB clips to 0..255 rather than scaling, so
//    every value from 255 up is white;
//  - RGB, grey+alpha and RGBA at 16 bits: the high byte of each sample (raw modes "RGB;16B", "LA;16B",
//    "RGBA;16B");
//  - alpha is dropped, never composited, and tRNS changes no pixel;
//  - palette: the PLTE entry; an index past the end of PLTE gets the entry of Pillow's default palette,
//    the grey ramp (i, i, i).
struct PngLayout {
  int color_type = 0;
  int bit_depth = 0;
  std::array<uint8_t, 256 * 3> palette{};
};

// Converts `count` pixels of one row of PNG samples (big-endian 16-bit samples, sub-byte samples unpacked to
// a byte each by png_set_packing) to RGB at out, out + step, out + 2 * step, ...
void png_row_to_rgb(const uint8_t* in, uint32_t count, const PngLayout& f, uint8_t* out, size_t step) {
  const auto put = [&out, step](uint8_t r, uint8_t g, uint8_t b) {
    out[0] = r;
    out[1] = g;
    out[2] = b;
    out += step;
  };
  const bool wide = f.bit_depth == 16;
  switch (f.color_type) {
    case PNG_COLOR_TYPE_GRAY:
      if (wide) {
        for (uint32_t x = 0; x < count; ++x, in += 2) {
          const uint8_t v = in[0] != 0 ? 255 : in[1];  // min(value, 255)
          put(v, v, v);
        }
      } else {
        const int scale = 255 / ((1 << f.bit_depth) - 1);
        for (uint32_t x = 0; x < count; ++x, ++in) {
          const uint8_t v = static_cast<uint8_t>(*in * scale);
          put(v, v, v);
        }
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      for (uint32_t x = 0; x < count; ++x, in += wide ? 4 : 2) put(in[0], in[0], in[0]);
      break;
    case PNG_COLOR_TYPE_RGB:
      for (uint32_t x = 0; x < count; ++x, in += wide ? 6 : 3)
        wide ? put(in[0], in[2], in[4]) : put(in[0], in[1], in[2]);
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      for (uint32_t x = 0; x < count; ++x, in += wide ? 8 : 4)
        wide ? put(in[0], in[2], in[4]) : put(in[0], in[1], in[2]);
      break;
    case PNG_COLOR_TYPE_PALETTE:
      for (uint32_t x = 0; x < count; ++x, ++in) {
        const uint8_t* rgb = &f.palette[*in * 3];
        put(rgb[0], rgb[1], rgb[2]);
      }
      break;
  }
}

// libpng's default error handler longjmps into png_jmpbuf, and its default read function uses stdio. Ours
// record the message and jump back into PngDecoder's frame that armed the jump, so that C++ exceptions never
// unwind through libpng's C frames (the ms::Error is thrown after the jump, as for libjpeg); the read
// function reads from memory and reports running out of file as a libpng error.
struct PngErrors {
  std::jmp_buf jump;
  char message[256] = {};
  char last_warning[128] = {};
};

struct PngSource {
  const uint8_t* data = nullptr;
  size_t size = 0, offset = 0;
  bool truncated = false;
  char message[128] = {};
};

[[noreturn]] void png_error_exit(png_structp png, png_const_charp message) {
  PngErrors* errors = static_cast<PngErrors*>(png_get_error_ptr(png));
  const char* text = message ? message : "unknown libpng error";
  // libpng explains a bad IHDR in warnings ("Image width is zero in IHDR") before failing with a generic one.
  if (std::strcmp(text, "Invalid IHDR data") == 0 && errors->last_warning[0])
    std::snprintf(errors->message, sizeof errors->message, "%s (%s)", text, errors->last_warning);
  else
    std::snprintf(errors->message, sizeof errors->message, "%s", text);
  std::longjmp(errors->jump, 1);
}

// Warnings (ancillary-chunk problems, which libpng skips, and trailing zlib data after the last row, which
// Pillow also ignores) never reach stderr: errors become one ms::Error line. The last one is kept for it.
void png_keep_warning(png_structp png, png_const_charp message) {
  PngErrors* errors = static_cast<PngErrors*>(png_get_error_ptr(png));
  std::snprintf(errors->last_warning, sizeof errors->last_warning, "%s", message ? message : "");
}

void png_read_from_memory(png_structp png, png_bytep out, size_t count) {
  PngSource* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (count > source->size - source->offset) {
    source->truncated = true;
    std::snprintf(source->message, sizeof source->message, "the file ends after %zu bytes, inside a chunk",
                  source->size);
    png_error(png, source->message);
  }
  std::memcpy(out, source->data + source->offset, count);
  source->offset += count;
}

// One libpng decode, built like JpegDecompressor: every libpng call happens in a member function that arms
// the jump first and returns false when libpng fails; those functions hold no C++ objects with destructors
// and after a jump only return. The destructor frees libpng's memory on every path.
class PngDecoder {
 public:
  PngDecoder(const uint8_t* data, size_t size) {
    source_.data = data;
    source_.size = size;
  }
  ~PngDecoder() {
    if (png_) png_destroy_read_struct(&png_, &info_, nullptr);
  }
  PngDecoder(const PngDecoder&) = delete;
  PngDecoder& operator=(const PngDecoder&) = delete;

  // Reads the chunks up to the first IDAT. CRC policy, as Pillow's: a bad CRC on any chunk read here
  // (IHDR, PLTE and the ancillary ones alike) is an error; libpng also refuses a bad IDAT CRC, which Pillow
  // does not check. Ancillary chunks other than tRNS are skipped unparsed (their CRC still checked): the
  // pixels depend on IHDR, PLTE and IDAT only, and skipping keeps libpng from inflating iCCP or zTXt data.
  // The side limit is ours (check_image_budget after this), so libpng's own is lifted to the format's.
  bool read_header() {
    if (setjmp(errors_.jump)) return false;
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors_, png_error_exit, png_keep_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) {
      std::snprintf(errors_.message, sizeof errors_.message, "out of memory starting libpng");
      return false;
    }
    png_set_read_fn(png_, &source_, png_read_from_memory);
    png_set_crc_action(png_, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png_, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_set_keep_unknown_chunks(png_, PNG_HANDLE_CHUNK_NEVER, nullptr, -1);
    png_read_info(png_, info_);
    layout_.color_type = png_get_color_type(png_, info_);
    layout_.bit_depth = png_get_bit_depth(png_, info_);
    interlaced_ = png_get_interlace_type(png_, info_) != PNG_INTERLACE_NONE;
    for (int i = 0; i < 256; ++i) layout_.palette[3 * i] = layout_.palette[3 * i + 1] = layout_.palette[3 * i + 2] = i;
    png_colorp plte = nullptr;
    int entries = 0;
    if (layout_.color_type == PNG_COLOR_TYPE_PALETTE && png_get_PLTE(png_, info_, &plte, &entries))
      for (int i = 0; i < entries && i < 256; ++i) {
        layout_.palette[3 * i] = plte[i].red;
        layout_.palette[3 * i + 1] = plte[i].green;
        layout_.palette[3 * i + 2] = plte[i].blue;
      }
    return true;
  }

  // Sets up row reading (libpng allocates its row buffers here): samples as stored, sub-byte ones unpacked to
  // a byte each. No png_set_interlace_handling: for an interlaced image libpng then returns the rows of each
  // Adam7 pass in turn and decode() places the pixels, so no whole-image buffer of raw samples is needed.
  bool start() {
    if (setjmp(errors_.jump)) return false;
    if (layout_.bit_depth < 8) png_set_packing(png_);
    png_read_update_info(png_, info_);
    row_bytes_ = png_get_rowbytes(png_, info_);
    return true;
  }

  // Decodes into `rgb` (width * height * 3 bytes), reading rows through `row` (row_bytes() bytes). libpng
  // skips Adam7 passes that hold no pixels (images narrower or shorter than 5 pixels); so does the loop.
  bool decode(uint8_t* rgb, uint8_t* row) {
    if (setjmp(errors_.jump)) return false;
    const uint32_t w = width(), h = height();
    for (int pass = 0; pass < (interlaced_ ? 7 : 1); ++pass) {
      const uint32_t cols = interlaced_ ? PNG_PASS_COLS(w, pass) : w;
      const uint32_t rows = interlaced_ ? PNG_PASS_ROWS(h, pass) : h;
      if (cols == 0 || rows == 0) continue;
      const uint32_t first_col = interlaced_ ? PNG_PASS_START_COL(pass) : 0;
      const size_t step = size_t{3} << (interlaced_ ? PNG_PASS_COL_SHIFT(pass) : 0);
      for (uint32_t r = 0; r < rows; ++r) {
        png_read_row(png_, row, nullptr);
        const uint32_t y = interlaced_ ? PNG_ROW_FROM_PASS_ROW(r, pass) : r;
        png_row_to_rgb(row, cols, layout_, rgb + (static_cast<size_t>(y) * w + first_col) * 3, step);
      }
    }
    // No png_read_end: like Pillow, nothing after the image data (text chunks, a missing IEND) matters.
    return true;
  }

  uint32_t width() const { return png_get_image_width(png_, info_); }
  uint32_t height() const { return png_get_image_height(png_, info_); }
  size_t row_bytes() const { return row_bytes_; }
  bool truncated() const { return source_.truncated; }
  const char* message() const { return errors_.message; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  PngErrors errors_;
  PngSource source_;
  PngLayout layout_;
  bool interlaced_ = false;
  size_t row_bytes_ = 0;
};

RgbImage decode_png(const uint8_t* d, size_t n, const std::string& path) {
  PngDecoder png(d, n);
  const auto libpng_failure = [&] { decoder_failure(path, "PNG", "libpng", png.truncated(), png.message()); };
  if (!png.read_header()) libpng_failure();
  check_image_budget(png.width(), png.height(), path, "PNG");
  if (!png.start()) libpng_failure();
  RgbImage img;
  img.width = static_cast<int>(png.width());
  img.height = static_cast<int>(png.height());
  img.pixels.resize(static_cast<size_t>(img.width) * img.height * 3);
  std::vector<uint8_t> row(png.row_bytes());
  if (!png.decode(img.pixels.data(), row.data())) libpng_failure();
  return img;
}

}  // namespace

namespace {

RgbImage decode_bmp(const uint8_t* d, size_t n, const std::string& path) {
  check_bmp(d, n, path);
  int w = 0, h = 0, channels = 0;
  // stb_image takes an int length; check_bmp has made sure the pixel data lies in the first INT_MAX bytes
  // (the budget keeps it under 716 MB) for everything but RLE, which stb checks as it goes.
  const int length = static_cast<int>(std::min<size_t>(n, INT_MAX));
  std::unique_ptr<stbi_uc, void (*)(void*)> data(stbi_load_from_memory(d, length, &w, &h, &channels, 3),
                                                 stbi_image_free);
  if (!data) {
    const char* reason = stbi_failure_reason();
    if (reason && std::strcmp(reason, "outofmem") == 0) throw std::bad_alloc();
    fail(path, std::string("corrupt BMP: ") + (reason ? reason : "decode failed"));
  }
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * 3);
  return img;
}

}  // namespace

void check_image_budget(uint64_t width, uint64_t height, const std::string& path, const std::string& what) {
  const std::string size = std::to_string(width) + "x" + std::to_string(height);
  if (width == 0 || height == 0) fail(path, what + " of " + size + " pixels has no pixels");
  if (width > kMaxImageSide || height > kMaxImageSide)
    fail(path,
         what + " of " + size + " pixels has a side over the limit of " + std::to_string(kMaxImageSide) + " pixels");
  // Both sides are at most 10^6 here: the product fits in 64 bits.
  if (width * height > kMaxImagePixels)
    fail(path, what + " of " + size + " pixels (" + std::to_string(width * height) + ") is over the limit of " +
                   std::to_string(kMaxImagePixels) + " pixels (Pillow's decompression-bomb limit)");
}

RgbImage decode_image(const std::vector<char>& bytes, const std::string& path) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n == 0) fail(path, "empty file");
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  // Each decoder checks the budget before allocating; running out of memory within it is still possible
  // (a budget-sized image on a small machine) and must name the file too.
  try {
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
      // libjpeg-turbo, the decoder Pillow links: stb_image's IDCT and chroma upsampling differ from it by a
      // grey level here and there, enough to change token merges and the odd top-1 against Python.
      check_jpeg(d, n, path);
      return decode_jpeg(d, n, path);
    }
    // libpng rather than stb_image: stb checks neither chunk CRCs nor the zlib checksum, so a PNG that Pillow
    // refuses (a corrupt IHDR CRC, for one) decoded as if nothing were wrong.
    if (n >= 8 && std::memcmp(d, kPng, 8) == 0) return decode_png(d, n, path);
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return decode_bmp(d, n, path);
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory decoding the image");
  }
  fail(path, "unsupported image format (expected JPEG, PNG or BMP)");
}

// stb_image and libpng take at most 2^31 - 1 bytes; nothing within the decode budget needs more.
RgbImage load_image(const std::string& path) { return decode_image(read_file(path, INT_MAX, "image file"), path); }

void write_png(const std::string& path, const RgbImage& image) {
  if (!stbi_write_png(path.c_str(), image.width, image.height, 3, image.pixels.data(), image.width * 3))
    fail(path, "cannot write PNG");
}

}  // namespace ms
