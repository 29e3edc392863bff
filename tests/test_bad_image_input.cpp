// Images that are too large for their size on disk, or broken in ways only a checksum shows, end to end through
// the real mergescope-cli: exit status 1 (never a signal), nothing on stdout, exactly one stderr line
// "mergescope-cli: error: <file>: <problem>" that names the sizes or the check that failed. The budgets are
// image.h's kMaxImagePixels / kMaxImageSide (decode) and preprocess.h's check_preprocess_budget (resize).
//
// Every file is written here, by hand, byte for byte (zlib for the deflate streams and CRCs), so a test shows
// exactly what is wrong with it. Running out of memory is tested in-process: a global operator new that
// refuses large blocks stands in for a small machine (an address-space limit on the CLI makes LibTorch's
// thread pools spin instead of failing).
#include "error.h"
#include "image.h"
#include "preprocess.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <new>
#include <string>
#include <vector>

// Allocations larger than this fail with std::bad_alloc (only while a test sets it).
static std::atomic<size_t> g_refuse_allocations_over{std::numeric_limits<size_t>::max()};

void* operator new(std::size_t size) {
  if (size > g_refuse_allocations_over.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace ms {
namespace {

namespace fs = std::filesystem;

const std::string kErrorPrefix = "mergescope-cli: error: ";

// ---- writing images byte by byte -------------------------------------------------------------------------

std::string big_endian32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}
std::string little_endian32(uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16), static_cast<char>(v >> 24)};
}
std::string little_endian16(uint16_t v) { return {static_cast<char>(v), static_cast<char>(v >> 8)}; }

uint32_t crc_of(const std::string& bytes) {
  return static_cast<uint32_t>(
      crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// One PNG chunk: length, type, data, CRC over type and data (plus `crc_error` to spoil it).
std::string chunk(const std::string& type, const std::string& data, uint32_t crc_error = 0) {
  return big_endian32(static_cast<uint32_t>(data.size())) + type + data + big_endian32(crc_of(type + data) ^ crc_error);
}

std::string zlib_stream(const std::string& raw) {
  uLongf size = compressBound(raw.size());
  std::string out(size, '\0');
  EXPECT_EQ(
      compress2(reinterpret_cast<Bytef*>(&out[0]), &size, reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 9),
      Z_OK);
  out.resize(size);
  return out;
}

// `rows` rows of filter byte 0 and `row_bytes` bytes of `value` (8-bit grey when row_bytes = width).
std::string raw_rows(size_t row_bytes, size_t rows, char value = 0) {
  std::string raw;
  raw.reserve((row_bytes + 1) * rows);
  for (size_t y = 0; y < rows; ++y) raw += '\0' + std::string(row_bytes, value);
  return raw;
}

const std::string kPngSignature = "\x89PNG\r\n\x1a\n";

std::string ihdr(uint32_t width, uint32_t height, int bit_depth = 8, int colour_type = 0) {
  return big_endian32(width) + big_endian32(height) +
         std::string{static_cast<char>(bit_depth), static_cast<char>(colour_type), 0, 0, 0};
}

struct PngParts {
  uint32_t width = 0, height = 0;
  int bit_depth = 8, colour_type = 0;
  std::string idat;         // the zlib stream
  std::string before_idat;  // chunks between IHDR and IDAT
  uint32_t ihdr_crc_error = 0, idat_crc_error = 0;
};

std::string png_bytes(const PngParts& p) {
  return kPngSignature + chunk("IHDR", ihdr(p.width, p.height, p.bit_depth, p.colour_type), p.ihdr_crc_error) +
         p.before_idat + chunk("IDAT", p.idat, p.idat_crc_error) + chunk("IEND", "");
}

// A whole, valid 8-bit grey PNG of width x height, every pixel `value`.
std::string grey_png(uint32_t width, uint32_t height, char value = 0) {
  PngParts p;
  p.width = width;
  p.height = height;
  p.idat = zlib_stream(raw_rows(width, height, value));
  return png_bytes(p);
}

// A BMP file header and BITMAPINFOHEADER (40 bytes) claiming width x height at 24 bits, then `pixel_bytes`
// zero bytes.
std::string bmp_bytes(int32_t width, int32_t height, size_t pixel_bytes = 0) {
  std::string info = little_endian32(40) + little_endian32(static_cast<uint32_t>(width)) +
                     little_endian32(static_cast<uint32_t>(height)) + little_endian16(1) + little_endian16(24) +
                     little_endian32(0) + little_endian32(0) + little_endian32(2835) + little_endian32(2835) +
                     little_endian32(0) + little_endian32(0);
  const uint32_t offset = 14 + 40;
  return "BM" + little_endian32(offset + static_cast<uint32_t>(pixel_bytes)) + little_endian32(0) +
         little_endian32(offset) + info + std::string(pixel_bytes, '\0');
}

// The same with the 12-byte OS/2 BITMAPCOREHEADER, whose sizes are 16-bit.
std::string os2_bmp_bytes(uint16_t width, uint16_t height) {
  const std::string core =
      little_endian32(12) + little_endian16(width) + little_endian16(height) + little_endian16(1) + little_endian16(24);
  return "BM" + little_endian32(14 + 12) + little_endian32(0) + little_endian32(14 + 12) + core;
}

// ---- running the CLI --------------------------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

class BadImageInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = test::make_temp_dir("ms_bad_image_"); }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(f.good()) << "cannot write " << path;
    return path;
  }

  static test::CommandResult classify(const std::string& image) {
    return test::run_command(shell_quote(test::cli_path()) + " classify " + shell_quote(image));
  }

  // The failure contract: exit 1, no signal, nothing on stdout, one stderr line that starts with the prefix
  // and the file, and holds every one of `phrases`.
  static void expect_refused(const std::string& image, const std::vector<std::string>& phrases) {
    const test::CommandResult r = classify(image);
    SCOPED_TRACE("stderr: " + r.err);
    EXPECT_EQ(r.exit_code, 1) << (r.exit_code >= 128 ? "killed by a signal" : "");
    EXPECT_TRUE(r.out.empty()) << "stdout: " << r.out;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr is not one line";
    EXPECT_EQ(r.err.rfind(kErrorPrefix + image + ": ", 0), 0u) << "stderr does not start with the prefix and the file";
    for (const std::string& phrase : phrases)
      EXPECT_NE(r.err.find(phrase), std::string::npos) << "no '" << phrase << "'";
  }

  static std::string dir_;
};

std::string BadImageInput::dir_;

// ---- sizes: decode budget ---------------------------------------------------------------------------------

TEST_F(BadImageInput, PngBombIsRefusedFromItsHeader) {
  // 20000 x 20000 (400 M pixels, 1.2 GB as RGB) in a few hundred bytes: the first rows of a zero image. Pillow
  // refuses it (DecompressionBombError); so does the decoder, before allocating or inflating anything.
  PngParts p;
  p.width = p.height = 20000;
  p.idat = zlib_stream(raw_rows(20000, 16));
  const std::string bytes = png_bytes(p);
  EXPECT_LT(bytes.size(), 1000u);
  expect_refused(write("bomb_20000x20000.png", bytes),
                 {"PNG of 20000x20000 pixels (400000000) is over the limit of 178956970 pixels", "decompression-bomb"});
}

TEST_F(BadImageInput, PngWithASideOverTheLimit) {
  PngParts p;
  p.width = 1000001;
  p.height = 1;
  p.idat = zlib_stream(raw_rows(1000001, 1));
  expect_refused(write("side_1000001x1.png", png_bytes(p)),
                 {"PNG of 1000001x1 pixels has a side over the limit of 1000000 pixels"});
}

TEST_F(BadImageInput, BmpHeadersClaimingHugeImages) {
  // 54 bytes claiming 30 GB of pixels; a top-down one (negative height); one too wide; an OS/2 header with
  // its 16-bit sizes at their maximum.
  expect_refused(write("huge.bmp", bmp_bytes(100000, 100000)),
                 {"BMP of 100000x100000 pixels (10000000000) is over the limit of 178956970 pixels"});
  expect_refused(write("huge_top_down.bmp", bmp_bytes(20000, -20000)), {"BMP of 20000x20000 pixels (400000000)"});
  expect_refused(write("wide.bmp", bmp_bytes(2000000, 1)), {"BMP of 2000000x1 pixels has a side over the limit"});
  expect_refused(write("huge_os2.bmp", os2_bmp_bytes(65535, 65535)), {"BMP of 65535x65535 pixels (4294836225)"});
}

TEST_F(BadImageInput, ImageFileOverTwoGigabytes) {
  // A sparse file: no disk used. Refused from its size, before reading (the decoders take int lengths).
  const std::string path = write("two_gigabytes.png", kPngSignature);
  fs::resize_file(path, uint64_t{1} << 31);
  expect_refused(path, {"image file is 2147483648 bytes, over the limit of 2147483647 bytes"});
}

// ---- sizes: resize budget ---------------------------------------------------------------------------------

TEST_F(BadImageInput, TallPngWhoseResizeIsOverTheSideLimit) {
  // 118 bytes. Resize(256) makes it 256 x 5,120,000 (3.9 GB); before the budget it took 4.2 GB and 16 s.
  const std::string bytes = grey_png(1, 20000);
  EXPECT_LT(bytes.size(), 200u);
  expect_refused(
      write("tall_1x20000.png", bytes),
      {"resizing 1x20000 (short side to 256) gives 256x5120000 pixels, a side over the limit of 1000000 pixels"});
}

TEST_F(BadImageInput, WidePngWhoseResizeIsOverTheSideLimit) {
  expect_refused(write("wide_60000x1.png", grey_png(60000, 1)), {"resizing 60000x1", "gives 15360000x256 pixels"});
}

TEST_F(BadImageInput, LongPngWhoseResizeIsOverThePixelLimit) {
  // Both resized sides within 10^6, but 196,608,000 pixels: over the budget all the same.
  expect_refused(
      write("long_3000x1.png", grey_png(3000, 1)),
      {"resizing 3000x1 (short side to 256) gives 768000x256 pixels (196608000), over the limit of 178956970"});
}

TEST_F(BadImageInput, PngAtTheOldOverlayLimitClassifies) {
  // 16385 x 8 (over a GL texture's 16384): an image, not a bomb. Its resize, 524320 x 256, is within the
  // budget (134 M pixels; about 0.6 GB and a few seconds), so it classifies. The app draws it downscaled.
  const std::string path = write("wide_16385x8.png", grey_png(16385, 8, 100));
  const test::CommandResult r = classify(path);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_EQ(r.out.rfind(path + "\n", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '%'), 5) << r.out;
}

// ---- checksums and structure ------------------------------------------------------------------------------

TEST_F(BadImageInput, PngWithACorruptIhdrCrc) {
  // Pillow refuses this ("broken PNG file"); stb_image decoded it as if nothing were wrong.
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 16, 77));
  p.ihdr_crc_error = 1;
  expect_refused(write("ihdr_crc.png", png_bytes(p)), {"corrupt PNG: IHDR: CRC error"});
}

TEST_F(BadImageInput, PngWithACorruptAncillaryCrcBeforeTheImageData) {
  // Pillow checks the CRC of every chunk before IDAT, ancillary ones too, and so does the decoder.
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 16, 77));
  p.before_idat = chunk("gAMA", big_endian32(45455), 0x100);
  expect_refused(write("gama_crc.png", png_bytes(p)), {"corrupt PNG: gAMA: CRC error"});
}

TEST_F(BadImageInput, PngWithACorruptIdatCrc) {
  // Stricter than Pillow, which does not check IDAT CRCs: a flipped bit in the image data is refused even
  // where the deflate stream would still decode.
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 16, 77));
  p.idat_crc_error = 0x8000;
  expect_refused(write("idat_crc.png", png_bytes(p)), {"corrupt PNG: IDAT: CRC error"});
}

TEST_F(BadImageInput, PngWithACorruptZlibStream) {
  // Valid chunk CRCs around a broken deflate stream: block type 3 (reserved) in the first block header.
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 16, 77));
  p.idat[2] = static_cast<char>(p.idat[2] | 0x06);
  expect_refused(write("zlib_block_type.png", png_bytes(p)), {"corrupt PNG: IDAT: invalid block type"});
}

TEST_F(BadImageInput, PngWithAWrongZlibChecksum) {
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 16, 77));
  p.idat.back() = static_cast<char>(p.idat.back() ^ 1);  // the Adler-32 at the end of the stream
  expect_refused(write("zlib_adler.png", png_bytes(p)), {"corrupt PNG: IDAT: incorrect data check"});
}

TEST_F(BadImageInput, PngWithTooLittleImageData) {
  PngParts p;
  p.width = p.height = 16;
  p.idat = zlib_stream(raw_rows(16, 12, 77));  // 12 of the 16 rows
  expect_refused(write("short_data.png", png_bytes(p)), {"corrupt PNG: Not enough image data"});
}

TEST_F(BadImageInput, PngWithAnUnknownRowFilter) {
  PngParts p;
  p.width = p.height = 16;
  std::string raw = raw_rows(16, 16, 77);
  raw[17 * 5] = 9;  // filter types are 0..4
  p.idat = zlib_stream(raw);
  expect_refused(write("filter.png", png_bytes(p)), {"corrupt PNG: bad adaptive filter value"});
}

TEST_F(BadImageInput, PngWithAZeroWidth) {
  PngParts p;
  p.width = 0;
  p.height = 16;
  p.idat = zlib_stream(raw_rows(0, 16));
  expect_refused(write("zero_width.png", png_bytes(p)),
                 {"corrupt PNG: Invalid IHDR data (Image width is zero in IHDR)"});
}

TEST_F(BadImageInput, PalettePngWithoutAPalette) {
  PngParts p;
  p.width = p.height = 16;
  p.colour_type = 3;
  p.idat = zlib_stream(raw_rows(16, 16, 1));
  expect_refused(write("no_plte.png", png_bytes(p)), {"corrupt PNG: IDAT: Missing PLTE before IDAT"});
}

TEST_F(BadImageInput, TruncatedPngs) {
  PngParts p;
  p.width = p.height = 64;
  std::string raw;
  for (int i = 0; i < 64 * 65; ++i) raw += static_cast<char>(i % 65 == 0 ? 0 : i * 7);  // filter 0, varied pixels
  p.idat = zlib_stream(raw);
  const std::string whole = png_bytes(p);
  // Inside IHDR, inside the IDAT data, and inside the IDAT CRC (all image data there, its checksum cut).
  for (size_t cut : {size_t{8}, size_t{20}, whole.size() / 2, whole.size() - 12 - 2}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(whole.size()));
    expect_refused(write("truncated_" + std::to_string(cut) + ".png", whole.substr(0, cut)),
                   {"truncated PNG: the file ends after " + std::to_string(cut) + " bytes"});
  }
}

// ---- running out of memory (in-process) ----------------------------------------------------------------

class RefuseLargeAllocations {
 public:
  explicit RefuseLargeAllocations(size_t bytes) { g_refuse_allocations_over = bytes; }
  ~RefuseLargeAllocations() { g_refuse_allocations_over = std::numeric_limits<size_t>::max(); }
};

TEST_F(BadImageInput, OutOfMemoryWhileDecodingNamesTheFile) {
  // 4000 x 4000 is within the budget; its 48 MB of pixels are more than this "machine" gives.
  const std::string path = write("needs_48mb.png", grey_png(4000, 4000));
  try {
    RefuseLargeAllocations limit(32 << 20);
    load_image(path);
    ADD_FAILURE() << "decoded with allocations over 32 MB refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": out of memory decoding the image");
  }
}

TEST_F(BadImageInput, OutOfMemoryWhilePreprocessingNamesTheFile) {
  // The 3000 x 10 image itself is small; Resize(256) makes it 76800 x 256 (59 MB).
  const std::string path = write("needs_59mb_resized.png", grey_png(3000, 10, 50));
  const RgbImage image = load_image(path);
  PreprocessSpec spec;
  std::vector<float> out(3 * 224 * 224);
  try {
    RefuseLargeAllocations limit(32 << 20);
    preprocess(image, spec, out.data(), path);
    ADD_FAILURE() << "preprocessed with allocations over 32 MB refused";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": out of memory preprocessing the 3000x10 image");
  }
  // Without the limit the same call works: the failure was the allocation, not the image.
  EXPECT_NO_THROW(preprocess(image, spec, out.data(), path));
}

}  // namespace
}  // namespace ms
