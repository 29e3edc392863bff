// JPEG and PNG decoding equal Pillow's pixel for pixel: every shared sample image, plus greyscale, progressive
// and damaged-but-decodable JPEG variants, and PNGs of every colour type and bit depth, plain and interlaced.
// The reference (size and pixel hash of PIL.Image.open(p).convert("RGB")) is made by
// tests/fixtures/make_pillow_jpeg_hashes.py and make_pillow_png_hashes.py; for an image that differs, the test
// asks Debian's /usr/bin/python3 for Pillow's pixels of that one image to say how many values differ and by
// how much.
#include "image.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace ms {
namespace {

namespace fs = std::filesystem;

// Must stay identical to pixel_hash in make_pillow_jpeg_hashes.py: sum_i (splitmix64(i) | 1) * byte_i mod 2^64.
uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t pixel_hash(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0;
  for (size_t i = 0; i < bytes.size(); ++i) h += (splitmix64(i) | 1) * bytes[i];
  return h;
}

struct Reference {
  int width = 0, height = 0;
  uint64_t hash = 0;
};

// Reads one reference file into `r`.
void read_references(const std::string& file, const std::string& script, std::map<std::string, Reference>& r) {
  const std::string path = test::fixtures_dir() + "/" + file;
  std::ifstream f(path);
  if (!f) {
    ADD_FAILURE() << path << " is missing: run tests/fixtures/" << script << ".py " << test::fixtures_dir()
                  << " (ctest runs it as the " << script << " fixture)";
    return;
  }
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream s(line);
    std::string name, hex;
    Reference ref;
    if (!(s >> name >> ref.width >> ref.height >> hex)) {
      ADD_FAILURE() << path << ": bad line '" << line << "'";
      continue;
    }
    ref.hash = std::stoull(hex, nullptr, 16);
    r[name] = ref;
  }
}

// name -> Pillow's decode; names with a "bad/" or "png/" prefix live in <fixtures>/bad or <fixtures>/png, the
// others in the shared sample.
const std::map<std::string, Reference>& references() {
  static const std::map<std::string, Reference> refs = [] {
    std::map<std::string, Reference> r;
    read_references("pillow_jpeg_hashes.txt", "make_pillow_jpeg_hashes", r);
    read_references("pillow_png_hashes.txt", "make_pillow_png_hashes", r);
    return r;
  }();
  return refs;
}

bool has_prefix(const std::string& name, const char* prefix) { return name.rfind(prefix, 0) == 0; }

std::string image_path(const std::string& name) {
  return has_prefix(name, "bad/") || has_prefix(name, "png/") ? test::fixtures_dir() + "/" + name
                                                              : test::shared_image(name);
}

// How many of the 3*W*H values differ from Pillow's decode, and the largest difference; asks Pillow itself.
struct ValueDifference {
  size_t values = 0;
  int largest = 0;
  std::string error;  // when Pillow's pixels could not be had
};

ValueDifference count_differing_values(const std::string& path, const RgbImage& ours) {
  const std::string dir = test::make_temp_dir("ms_jpeg_pillow_");
  const std::string dump = dir + "/pillow.rgb";
  const auto r = test::run_command(
      "/usr/bin/python3 -c 'import sys; from PIL import Image; "
      "open(sys.argv[2], \"wb\").write(Image.open(sys.argv[1]).convert(\"RGB\").tobytes())' '" +
      path + "' '" + dump + "'");
  std::ifstream f(dump, std::ios::binary);
  const std::vector<uint8_t> pillow((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  ValueDifference d;
  if (r.exit_code != 0)
    d.error = "Pillow dump failed: " + r.err;
  else if (pillow.size() != ours.pixels.size())
    d.error = "Pillow dumped " + std::to_string(pillow.size()) + " bytes";
  else
    for (size_t i = 0; i < pillow.size(); ++i) {
      const int diff = std::abs(int(pillow[i]) - int(ours.pixels[i]));
      d.values += diff != 0;
      d.largest = std::max(d.largest, diff);
    }
  return d;
}

// Decodes the named images and compares them with Pillow's; returns how many differ (reported per image).
size_t count_differences(const std::vector<std::string>& names, bool report_timing = false,
                         const char* label = "jpeg") {
  // Asking Pillow costs ~0.1 s an image; a decoder that is off everywhere needs only a few examples.
  constexpr size_t kMaxCounted = 10;
  size_t differing = 0, counted = 0, differing_values = 0;
  double decode_seconds = 0;
  for (const auto& name : names) {
    const auto it = references().find(name);
    if (it == references().end()) {
      ADD_FAILURE() << name << " has no Pillow reference";
      ++differing;
      continue;
    }
    const std::string path = image_path(name);
    const auto t0 = std::chrono::steady_clock::now();
    const RgbImage ours = load_image(path);
    decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Reference& ref = it->second;
    if (ours.width != ref.width || ours.height != ref.height) {
      ADD_FAILURE() << name << ": " << ours.width << "x" << ours.height << ", Pillow " << ref.width << "x"
                    << ref.height;
      ++differing;
    } else if (pixel_hash(ours.pixels) != ref.hash) {
      ++differing;
      if (counted++ >= kMaxCounted) {
        ADD_FAILURE() << name << ": pixels differ from Pillow's (values not counted)";
        continue;
      }
      const ValueDifference d = count_differing_values(path, ours);
      differing_values += d.values;
      ADD_FAILURE() << name << ": pixels differ from Pillow's: "
                    << (d.error.empty() ? std::to_string(d.values) + " of " + std::to_string(ours.pixels.size()) +
                                              " values differ, by at most " + std::to_string(d.largest)
                                        : d.error);
    }
  }
  std::printf("[ %-8s ] %zu image(s) compared with Pillow, %zu differ", label, names.size(), differing);
  if (differing > 0)
    std::printf(" (%zu differing values in the first %zu)", differing_values, std::min(differing, kMaxCounted));
  if (report_timing)
    std::printf("; decoding took %.3f s (%.2f ms an image)", decode_seconds, 1e3 * decode_seconds / names.size());
  std::printf("\n");
  return differing;
}

TEST(JpegPillow, EverySampleImageDecodesAsPillowDoes) {
  std::vector<std::string> names;
  for (const auto& [name, ref] : references())
    if (!has_prefix(name, "bad/") && !has_prefix(name, "png/")) names.push_back(name);
  size_t jpegs_in_sample = 0;
  for (const auto& e : fs::directory_iterator(fs::path(test::shared_image("")))) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    jpegs_in_sample += ext == ".jpeg" || ext == ".jpg";
  }
  ASSERT_GT(jpegs_in_sample, 0u);
  EXPECT_EQ(names.size(), jpegs_in_sample) << "the reference does not cover the whole sample";
  EXPECT_EQ(count_differences(names, true), 0u);
}

TEST(JpegPillow, ProgressiveAndBaselineReencodesDecodeAsPillowDoes) {
  EXPECT_EQ(count_differences({"bad/tench_baseline.jpg", "bad/tench_progressive.jpg"}), 0u);
}

TEST(JpegPillow, GreyscaleIsReplicatedToRgbAsPillowDoes) {
  EXPECT_EQ(count_differences({"bad/tench_grey.jpg"}), 0u);
  const RgbImage grey = load_image(image_path("bad/tench_grey.jpg"));
  size_t coloured = 0;
  for (size_t i = 0; i + 2 < grey.pixels.size(); i += 3)
    coloured += grey.pixels[i] != grey.pixels[i + 1] || grey.pixels[i] != grey.pixels[i + 2];
  EXPECT_EQ(coloured, 0u) << "greyscale pixels with R, G, B not all equal";
}

// libjpeg only warns about these; Pillow ignores the warnings and decodes, and so must we (same pixels).
TEST(JpegPillow, DataLibjpegWarnsAboutDecodesAsPillowDoes) {
  EXPECT_EQ(count_differences({"bad/tench_extraneous_bytes.jpg", "bad/tench_short_scan.jpg"}), 0u);
}

// Every PNG colour type at every bit depth it allows, plain and Adam7-interlaced, as Pillow's
// convert("RGB") gives it: grey replicated (sub-byte depths scaled, 16-bit clipped), palettes looked up (an
// index past PLTE gets Pillow's grey ramp), alpha and tRNS dropped, 16-bit samples reduced to their high byte.
TEST(PngPillow, EveryColourTypeAndBitDepthDecodesAsPillowDoes) {
  std::vector<std::string> names;
  for (const auto& [name, ref] : references())
    if (has_prefix(name, "png/")) names.push_back(name);
  // The fixture covers each combination the PNG spec allows (colour type: bit depths), both ways.
  const std::vector<std::string> combos = {"grey1",    "grey2",       "grey4",        "grey8",    "grey16",
                                           "rgb8",     "rgb16",       "palette1",     "palette2", "palette4",
                                           "palette8", "grey_alpha8", "grey_alpha16", "rgba8",    "rgba16"};
  for (const auto& c : combos)
    for (const char* suffix : {".png", "_adam7.png"})
      EXPECT_TRUE(references().count("png/" + c + suffix)) << "no Pillow reference for png/" << c << suffix;
  EXPECT_GE(names.size(), 50u);
  EXPECT_EQ(count_differences(names, true, "png"), 0u);
}

TEST(PngPillow, SixteenBitGreyIsClippedAsPillowDoes) {
  // Pillow opens 16-bit grey as mode "I" and converts I -> RGB by clipping, so the rows stored above 255 are
  // white, the others keep their value: both appear in the fixture, and the decode matches Pillow's above.
  const RgbImage grey16 = load_image(image_path("png/grey16.png"));
  size_t white = 0, grey = 0;
  for (size_t i = 0; i + 2 < grey16.pixels.size(); i += 3) {
    EXPECT_TRUE(grey16.pixels[i] == grey16.pixels[i + 1] && grey16.pixels[i] == grey16.pixels[i + 2]);
    (grey16.pixels[i] == 255 ? white : grey) += 1;
  }
  EXPECT_GT(white, 0u);
  EXPECT_GT(grey, 0u);
}

}  // namespace
}  // namespace ms
