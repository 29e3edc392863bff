// Bad input end to end through the real mergescope-cli binary: every broken image, checkpoint, config,
// model name or option ends with exit status 1 (never a signal), nothing on stdout, and exactly one line on
// stderr: "mergescope-cli: error: <file or option>: <problem>". Positive controls show the same command
// line classifies good files in every supported encoding.
//
// Fixtures: tests/fixtures/make_bad_inputs.py (PIL) writes the image variants to <fixtures>/bad; truncations,
// the 12-bit and size patches, the scanless JPEG and the broken checkpoints are made here in a temporary folder.
#include "engine.h"
#include "error.h"
#include "model.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace ms {
namespace {

namespace fs = std::filesystem;

const std::string kModelDir = "../shared/models/deit_tiny_patch16_224";
const std::string kPrefix = "mergescope-cli: error: ";

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "cannot read " << path;
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << "cannot write " << path;
}

// A safetensors file from a raw header and `data_bytes` zero bytes of data.
std::string safetensors_bytes(const std::string& header, size_t data_bytes, uint64_t declared_len) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((declared_len >> (8 * i)) & 0xff));
  return out + header + std::string(data_bytes, '\0');
}

// Offset of the first baseline/extended/progressive frame header (SOF0/1/2 marker) of a JPEG; 0 if none.
size_t jpeg_frame_header(const std::string& jpeg) {
  size_t i = 2;
  while (i + 4 < jpeg.size()) {
    if (static_cast<uint8_t>(jpeg[i]) != 0xFF) {
      ADD_FAILURE() << "lost sync in JPEG marker walk at byte " << i;
      return 0;
    }
    const uint8_t marker = static_cast<uint8_t>(jpeg[i + 1]);
    const size_t len = static_cast<uint8_t>(jpeg[i + 2]) << 8 | static_cast<uint8_t>(jpeg[i + 3]);
    if (marker == 0xC0 || marker == 0xC1 || marker == 0xC2) return i;
    i += 2 + len;
  }
  ADD_FAILURE() << "no SOF0/1/2 segment found";
  return 0;
}

// Sets the sample precision of the first baseline/extended/progressive frame header of a JPEG.
std::string with_jpeg_precision(std::string jpeg, int precision) {
  const size_t i = jpeg_frame_header(jpeg);
  if (i == 0) return jpeg;
  EXPECT_EQ(static_cast<uint8_t>(jpeg[i + 4]), 8) << "source JPEG is not 8-bit";
  jpeg[i + 4] = static_cast<char>(precision);
  return jpeg;
}

// Sets the width and height the frame header claims (the scan data stays that of the real size).
std::string with_jpeg_size(std::string jpeg, int width, int height) {
  const size_t i = jpeg_frame_header(jpeg);
  if (i == 0) return jpeg;
  jpeg[i + 5] = static_cast<char>(height >> 8);
  jpeg[i + 6] = static_cast<char>(height & 0xff);
  jpeg[i + 7] = static_cast<char>(width >> 8);
  jpeg[i + 8] = static_cast<char>(width & 0xff);
  return jpeg;
}

struct ClassifyBlock {
  std::vector<std::string> ranks;  // "tench (0)" etc., best first, without the percentage
  std::vector<std::string> lines;  // the full lines
};

// Parses classify's stdout: a path line, then "  k.  pp.pp%  name (index)" lines.
std::map<std::string, ClassifyBlock> parse_classify(const std::string& out) {
  std::map<std::string, ClassifyBlock> blocks;
  std::istringstream s(out);
  std::string line, current;
  while (std::getline(s, line)) {
    if (line.rfind("  ", 0) != 0) {
      current = line;
      blocks[current];
      continue;
    }
    const auto pct = line.find("%  ");
    if (pct == std::string::npos) continue;
    blocks[current].ranks.push_back(line.substr(pct + 3));
    blocks[current].lines.push_back(line);
  }
  return blocks;
}

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = test::make_temp_dir("ms_bad_input_");
    bad_ = test::fixtures_dir() + "/bad";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  static std::string tmp(const std::string& name) { return tmp_ + "/" + name; }

  // A PIL-made fixture; fails the test (not just skips) when make_bad_inputs.py has not run.
  static std::string fixture(const std::string& name) {
    const std::string p = bad_ + "/" + name;
    EXPECT_TRUE(fs::exists(p)) << p << " is missing: run tests/fixtures/make_bad_inputs.py " << bad_
                               << " (ctest runs it as the make_bad_inputs fixture)";
    return p;
  }

  // The first `fraction` of a file, written to the temp folder.
  static std::string truncated(const std::string& source, const std::string& name, double fraction = 0.5) {
    const std::string bytes = read_bytes(source);
    EXPECT_GT(bytes.size(), 100u) << source;
    const std::string p = tmp(name);
    write_bytes(p, bytes.substr(0, static_cast<size_t>(bytes.size() * fraction)));
    return p;
  }

  // A model folder: the shared config.json (or `config_text`) and a model.safetensors holding `weights`.
  static std::string model_folder(const std::string& name, const std::string& weights,
                                  const char* config_text = nullptr) {
    const std::string dir = tmp(name);
    fs::create_directories(dir);
    if (config_text)
      write_bytes(dir + "/config.json", config_text);
    else
      fs::copy_file(kModelDir + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
    write_bytes(dir + "/model.safetensors", weights);
    return dir;
  }

  // The shared DeiT-Ti state dict, read once.
  static const std::map<std::string, at::Tensor>& real_weights() {
    static const std::map<std::string, at::Tensor> w = read_safetensors(kModelDir + "/model.safetensors").tensors;
    return w;
  }
  static std::string model_folder_with(const std::string& name, const std::map<std::string, at::Tensor>& weights) {
    const std::string dir = tmp(name);
    fs::create_directories(dir);
    fs::copy_file(kModelDir + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
    write_safetensors(dir + "/model.safetensors", weights);
    return dir;
  }

  // The shared config.json with each `from` replaced by its `to` (each must occur exactly once).
  static std::string shared_config_with(const std::vector<std::pair<std::string, std::string>>& edits) {
    std::string text = read_bytes(kModelDir + "/config.json");
    for (const auto& [from, to] : edits) {
      const size_t at = text.find(from);
      EXPECT_NE(at, std::string::npos) << "'" << from << "' not in the shared config.json";
      EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "'" << from << "' occurs twice";
      if (at != std::string::npos) text.replace(at, from.size(), to);
    }
    return text;
  }

  // A model folder with `config_text` beside the real shared weights (a symbolic link: never written).
  static std::string folder_with_shared_weights(const std::string& name, const std::string& config_text) {
    const std::string dir = tmp(name);
    fs::create_directories(dir);
    write_bytes(dir + "/config.json", config_text);
    fs::create_symlink(fs::absolute(kModelDir + "/model.safetensors"), dir + "/model.safetensors");
    return dir;
  }

  // The shared model.safetensors with its header length changed by `length_delta` and `insert` placed at
  // byte `insert_at` of the data section (npos: appended).
  static std::string shared_weights_bytes(int64_t length_delta, const std::string& insert = "",
                                          size_t insert_at = std::string::npos) {
    std::string bytes = read_bytes(kModelDir + "/model.safetensors");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    const uint64_t data_begin = 8 + n;
    n = static_cast<uint64_t>(static_cast<int64_t>(n) + length_delta);
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    if (!insert.empty()) bytes.insert(insert_at == std::string::npos ? bytes.size() : data_begin + insert_at, insert);
    return bytes;
  }

  static test::CommandResult cli(const std::string& args) {
    return test::run_command(quote(test::cli_path()) + " " + args);
  }
  static test::CommandResult classify(const std::string& image, const std::string& extra = "") {
    return cli("classify " + extra + (extra.empty() ? "" : " ") + quote(image));
  }
  static test::CommandResult classify_with_model(const std::string& model) {
    return cli("classify --model " + quote(model) + " " + quote(test::shared_image("n01440764_tench.JPEG")));
  }

  // The failure contract. `names`: the file or option the message must name; `keywords`: at least one
  // must appear (the problem).
  static void expect_clean_failure(const test::CommandResult& r, const std::string& names,
                                   const std::vector<std::string>& keywords, int expected_status = 1) {
    SCOPED_TRACE("stderr: " + r.err);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_LT(r.exit_code, 128) << "killed by a signal";
    EXPECT_EQ(r.exit_code, expected_status);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr is not exactly one line";
    EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << "stderr does not end in a newline";
    EXPECT_EQ(r.err.rfind(kPrefix, 0), 0u) << "stderr does not start with '" << kPrefix << "'";
    EXPECT_NE(r.err.find(names), std::string::npos) << "stderr does not name '" << names << "'";
    bool any = false;
    std::string wanted;
    for (const auto& k : keywords) {
      any = any || r.err.find(k) != std::string::npos;
      wanted += (wanted.empty() ? "'" : " or '") + k + "'";
    }
    EXPECT_TRUE(any) << "stderr has none of " << wanted;
    EXPECT_TRUE(r.out.empty()) << "stdout on failure: " << r.out;
  }

  static std::string tmp_, bad_;
};

std::string BadInput::tmp_, BadInput::bad_;

// ---- images -----------------------------------------------------------------------------------------

TEST_F(BadInput, ImageMissing) {
  const std::string p = tmp("no_such_image.JPEG");
  expect_clean_failure(classify(p), p, {"cannot open"});
}

TEST_F(BadInput, ImageIsADirectory) { expect_clean_failure(classify(tmp_), tmp_, {"directory"}); }

TEST_F(BadInput, EmptyImage) {
  const std::string p = tmp("empty.JPEG");
  write_bytes(p, "");
  expect_clean_failure(classify(p), p, {"empty"});
}

TEST_F(BadInput, RandomBytesWithJpegExtension) {
  std::mt19937 rng(1234);
  std::string bytes(8192, '\0');
  for (char& ch : bytes) ch = static_cast<char>(rng() & 0xff);
  bytes[0] = 0x42;  // certainly not FF D8 (JPEG) nor 'BM' / PNG
  bytes[1] = 0x00;
  const std::string p = tmp("random.JPEG");
  write_bytes(p, bytes);
  expect_clean_failure(classify(p), p, {"unsupported image format"});
}

TEST_F(BadInput, RandomBytesAfterJpegSignature) {
  std::mt19937 rng(99);
  std::string bytes(8192, '\0');
  for (char& ch : bytes) ch = static_cast<char>(rng() & 0xff);
  bytes[0] = '\xFF';
  bytes[1] = '\xD8';
  bytes[2] = '\xFF';
  const std::string p = tmp("random_soi.JPEG");
  write_bytes(p, bytes);
  expect_clean_failure(classify(p), p, {"JPEG", "corrupt"});
}

TEST_F(BadInput, TruncatedJpeg) {
  const std::string p = truncated(test::shared_image("n01440764_tench.JPEG"), "truncated.JPEG");
  expect_clean_failure(classify(p), p, {"truncated"});
}

TEST_F(BadInput, JpegWithoutEndMarker) {
  // All image data present, only the final FF D9 missing: PIL refuses this too (image file is truncated).
  const std::string bytes = read_bytes(test::shared_image("n01440764_tench.JPEG"));
  ASSERT_EQ(bytes.substr(bytes.size() - 2), "\xFF\xD9");
  const std::string p = tmp("no_eoi.JPEG");
  write_bytes(p, bytes.substr(0, bytes.size() - 2));
  expect_clean_failure(classify(p), p, {"truncated"});
}

TEST_F(BadInput, TruncatedPng) {
  const std::string p = truncated(fixture("tench.png"), "truncated.png");
  expect_clean_failure(classify(p), p, {"truncated", "corrupt"});
}

TEST_F(BadInput, TruncatedBmp) {
  const std::string p = truncated(fixture("tench.bmp"), "truncated.bmp");
  expect_clean_failure(classify(p), p, {"truncated"});
}

TEST_F(BadInput, TruncatedBmpHeader) {
  const std::string p = truncated(fixture("tench.bmp"), "truncated_header.bmp", 30.0 / 562554);
  expect_clean_failure(classify(p), p, {"truncated"});
}

TEST_F(BadInput, GifIsUnsupported) {
  const std::string p = fixture("tench.gif");
  expect_clean_failure(classify(p), p, {"unsupported image format"});
}

TEST_F(BadInput, TextFileIsUnsupported) {
  const std::string p = fixture("not_an_image.txt");
  expect_clean_failure(classify(p), p, {"unsupported image format"});
}

TEST_F(BadInput, CmykJpeg) {
  const std::string p = fixture("tench_cmyk.jpg");
  expect_clean_failure(classify(p), p, {"CMYK"});
}

TEST_F(BadInput, TwelveBitJpeg) {
  const std::string p = tmp("twelve_bit.JPEG");
  write_bytes(p, with_jpeg_precision(read_bytes(test::shared_image("n01440764_tench.JPEG")), 12));
  expect_clean_failure(classify(p), p, {"12-bit"});
}

// The marker walker passes these (every segment whole, EOI present); libjpeg itself refuses them, as Pillow
// does (make_bad_inputs.py checks that Pillow refuses the two fixtures), and its message becomes the one line.
TEST_F(BadInput, JpegScanWithUndefinedQuantisationTable) {
  const std::string p = fixture("tench_no_quant_table.jpg");
  const auto r = classify(p);
  expect_clean_failure(r, p, {"corrupt JPEG"});
  EXPECT_NE(r.err.find("Quantization table 0x00 was not defined"), std::string::npos) << r.err;
}

TEST_F(BadInput, ProgressiveJpegScanWithUndefinedHuffmanTable) {
  const std::string p = fixture("tench_progressive_no_huffman.jpg");
  const auto r = classify(p);
  expect_clean_failure(r, p, {"corrupt JPEG"});
  EXPECT_NE(r.err.find("Huffman table"), std::string::npos) << r.err;
}

TEST_F(BadInput, JpegWithHeadersButNoScan) {
  const std::string bytes = read_bytes(fixture("tench_baseline.jpg"));
  const size_t sos = bytes.find("\xFF\xDA");
  ASSERT_NE(sos, std::string::npos);
  const std::string p = tmp("no_scan.JPEG");
  write_bytes(p, bytes.substr(0, sos) + "\xFF\xD9");
  expect_clean_failure(classify(p), p, {"corrupt JPEG"});
}

TEST_F(BadInput, JpegClaimingHugeDimensions) {
  // 20000 x 20000 claimed by a 68 kB file: 1.2 GB of RGB. Refused before allocating, above Pillow's
  // decompression-bomb limit (Pillow raises DecompressionBombError for this file too).
  const std::string p = tmp("huge.JPEG");
  write_bytes(p, with_jpeg_size(read_bytes(fixture("tench_baseline.jpg")), 20000, 20000));
  const auto r = classify(p);
  expect_clean_failure(r, p, {"20000x20000"});
  EXPECT_NE(r.err.find("over the limit"), std::string::npos) << r.err;
}

TEST_F(BadInput, TruncatedProgressiveAndGreyscaleJpeg) {
  for (const char* name : {"tench_progressive.jpg", "tench_grey.jpg"}) {
    SCOPED_TRACE(name);
    const std::string p = truncated(fixture(name), std::string("truncated_") + name);
    expect_clean_failure(classify(p), p, {"truncated"});
  }
}

// libjpeg only warns about these and Pillow decodes them (test_jpeg_pillow compares the pixels): they
// classify, and no libjpeg warning reaches stderr.
TEST_F(BadInput, JpegDataLibjpegOnlyWarnsAboutClassifiesQuietly) {
  const std::vector<std::string> images = {fixture("tench_extraneous_bytes.jpg"), fixture("tench_short_scan.jpg")};
  const auto r = cli("classify " + quote(images[0]) + " " + quote(images[1]));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const auto blocks = parse_classify(r.out);
  for (const auto& p : images) {
    ASSERT_TRUE(blocks.count(p)) << p << " not in output:\n" << r.out;
    EXPECT_EQ(blocks.at(p).ranks.size(), 5u) << p;
  }
}

TEST_F(BadInput, BadImageAfterAGoodOneIsNamed) {
  const std::string bad = tmp("second_bad.JPEG");
  write_bytes(bad, "not an image");
  expect_clean_failure(cli("classify " + quote(test::shared_image("n01440764_tench.JPEG")) + " " + quote(bad)), bad,
                       {"unsupported image format"});
}

// ---- checkpoints ------------------------------------------------------------------------------------

TEST_F(BadInput, SafetensorsHeaderLengthPastEnd) {
  const std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const std::string dir = model_folder("st_len", safetensors_bytes(header, 4, 1 << 20));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"past the end"});
}

TEST_F(BadInput, SafetensorsOverlappingOffsets) {
  const std::string header = R"({"head.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]},)"
                             R"("head.weight":{"dtype":"F32","shape":[2],"data_offsets":[3992,4000]}})";
  const std::string dir = model_folder("st_overlap", safetensors_bytes(header, 4000, header.size()));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"overlapping"});
}

TEST_F(BadInput, SafetensorsOffsetsOutOfRange) {
  const std::string header = R"({"head.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}})";
  const std::string dir = model_folder("st_range", safetensors_bytes(header, 400, header.size()));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"out of range"});
}

TEST_F(BadInput, SafetensorsUnknownDtype) {
  const std::string header = R"({"head.bias":{"dtype":"F8_E4M3","shape":[1000],"data_offsets":[0,1000]}})";
  const std::string dir = model_folder("st_dtype", safetensors_bytes(header, 1000, header.size()));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"unknown dtype"});
}

TEST_F(BadInput, SafetensorsNotSafetensors) {
  const std::string dir = model_folder("st_text", "hello, world\n");
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"past the end", "not a safetensors"});
}

TEST_F(BadInput, TensorShapeDisagreesWithConfig) {
  auto weights = real_weights();
  weights["head.weight"] = weights.at("head.weight").narrow(0, 0, 999).contiguous();
  const std::string dir = model_folder_with("shape", weights);
  const auto r = classify_with_model(dir);
  expect_clean_failure(r, dir + "/model.safetensors", {"shape"});
  EXPECT_NE(r.err.find("'head.weight' has shape [999,192] but the config needs [1000,192]"), std::string::npos)
      << r.err;
}

TEST_F(BadInput, PositionEmbeddingForAnotherResolution) {
  auto weights = real_weights();
  weights["pos_embed"] = at::zeros({1, 577, 192});  // a 384-px checkpoint's pos_embed
  const std::string dir = model_folder_with("pos_embed", weights);
  expect_clean_failure(classify_with_model(dir), "pos_embed", {"[1,577,192]"});
}

TEST_F(BadInput, IntegerTensorWhereWeightsExpected) {
  auto weights = real_weights();
  weights["head.bias"] = at::zeros({1000}, at::kLong);
  const std::string dir = model_folder_with("int_tensor", weights);
  expect_clean_failure(classify_with_model(dir), "head.bias", {"floating point"});
}

TEST_F(BadInput, MissingTensor) {
  auto weights = real_weights();
  ASSERT_EQ(weights.erase("head.bias"), 1u);
  const std::string dir = model_folder_with("missing_tensor", weights);
  const auto r = classify_with_model(dir);
  expect_clean_failure(r, dir + "/model.safetensors", {"missing tensor"});
  EXPECT_NE(r.err.find("'head.bias'"), std::string::npos) << r.err;
}

TEST_F(BadInput, InvalidConfigJson) {
  const std::string dir = model_folder("bad_json", "", "{\"architecture\": \"deit_tiny_patch16_224\", ");
  expect_clean_failure(classify_with_model(dir), dir + "/config.json", {"invalid JSON"});
}

TEST_F(BadInput, UnknownArchitectureInConfig) {
  const std::string dir = model_folder("resnet", "", R"({"architecture": "resnet50", "num_classes": 1000})");
  const auto r = classify_with_model(dir);
  expect_clean_failure(r, dir + "/config.json", {"unknown architecture"});
  EXPECT_NE(r.err.find("resnet50"), std::string::npos) << r.err;
}

TEST_F(BadInput, ModelFolderWithoutWeights) {
  const std::string dir = tmp("no_weights");
  fs::create_directories(dir);
  fs::copy_file(kModelDir + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  expect_clean_failure(classify_with_model(dir), dir, {"no weights"});
}

TEST_F(BadInput, WeightsFileWithoutConfig) {
  const std::string dir = tmp("bare_weights");
  fs::create_directories(dir);
  const std::string p = dir + "/weights.safetensors";
  write_bytes(p, safetensors_bytes("{}", 0, 2));
  expect_clean_failure(classify_with_model(p), p, {"config.json"});
}

TEST_F(BadInput, ModelNameNotFound) {
  const auto r = classify_with_model("no_such_model_xyz");
  expect_clean_failure(r, "no_such_model_xyz", {"not found"});
  // It says where it looked: the default search path relative to the working directory.
  EXPECT_NE(r.err.find("./models/no_such_model_xyz"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("../shared/models/no_such_model_xyz"), std::string::npos) << r.err;
}

// ---- labels and options -----------------------------------------------------------------------------

TEST_F(BadInput, MissingLabelsFile) {
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--labels /nonexistent"), "/nonexistent",
                       {"cannot open"});
}

TEST_F(BadInput, LabelsFileIsADirectory) {
  // Not "labels file is empty": the user gave a folder.
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--labels " + quote(tmp_)), tmp_,
                       {"directory"});
}

TEST_F(BadInput, LabelsWithWrongClassCount) {
  const std::string p = tmp("ten_labels.txt");
  std::string text;
  for (int i = 0; i < 10; ++i) text += "n0000000" + std::to_string(i) + " class " + std::to_string(i) + "\n";
  write_bytes(p, text);
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--labels " + quote(p)), p, {"10 classes"});
}

TEST_F(BadInput, UnknownOption) {
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--frobnicate 3"), "--frobnicate",
                       {"unknown option"});
}

TEST_F(BadInput, CudaDeviceWithoutCudaBuild) {
  // Debian's LibTorch is CPU-only: asking for CUDA says so instead of failing inside LibTorch.
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--device cuda"), "--device",
                       {"built without CUDA"});
  expect_clean_failure(classify(test::shared_image("n01440764_tench.JPEG"), "--device tpu"), "--device",
                       {"not cpu or cuda"});
}

TEST_F(BadInput, OptionWithoutValue) { expect_clean_failure(cli("classify --model"), "--model", {"needs a value"}); }

TEST_F(BadInput, UnknownCommand) { expect_clean_failure(cli("frobnicate"), "frobnicate", {"unknown command"}, 2); }

TEST_F(BadInput, BatchNotAnInteger) {
  expect_clean_failure(cli("bench --batch abc --warmup 0 --repeat 1"), "--batch", {"not an integer"});
  expect_clean_failure(cli("bench --batch=12x --warmup 0 --repeat 1"), "--batch", {"not an integer"});
  expect_clean_failure(cli("eval --images " + quote(tmp_) + " --batch abc"), "--batch", {"not an integer"});
}

TEST_F(BadInput, BatchOutOfRange) {
  expect_clean_failure(cli("bench --batch 0 --warmup 0 --repeat 1"), "--batch", {"out of range"});
  expect_clean_failure(cli("bench --batch -3 --warmup 0 --repeat 1"), "--batch", {"out of range"});
  expect_clean_failure(cli("eval --images " + quote(tmp_) + " --batch 0"), "--batch", {"out of range"});
}

TEST_F(BadInput, EvalFolderWithoutImages) {
  const std::string dir = tmp("empty_folder");
  fs::create_directories(dir);
  expect_clean_failure(cli("eval --images " + quote(dir)), dir, {"no JPEG, PNG or BMP"});
}

// ---- hostile model files (issue 13): JSON limits, checked numbers, strict safetensors, config = weights ----

TEST_F(BadInput, DeeplyNestedConfigJson) {
  // 100,000 nested arrays as the architecture crashed the message that dumped it (stack overflow).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string dir = model_folder("deep_config", "unused", ("{\"architecture\": " + deep + "}").c_str());
  const auto r = classify_with_model(dir);
  expect_clean_failure(r, dir + "/config.json", {"deeper than 64"});
  EXPECT_LT(r.err.size(), 300u) << "the message quotes the structure";
}

TEST_F(BadInput, OversizedConfigJson) {
  const std::string text =
      shared_config_with({{"\"provenance\"", "\"padding\": \"" + std::string(2 << 20, 'x') + "\", \"provenance\""}});
  const std::string dir = model_folder("big_config", "unused", text.c_str());
  expect_clean_failure(classify_with_model(dir), dir + "/config.json", {"over the limit of 1048576 bytes"});
}

TEST_F(BadInput, DeeplyNestedThresholdFile) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string image = test::shared_image("n01440764_tench.JPEG");
  const std::string calibration = tmp("deep_calibration.json");
  write_bytes(calibration, "{\"method\": \"ltp\", \"blocks\": [{\"prune\": 0.1}], \"calibration\": " + deep + "}");
  const std::string prune = tmp("deep_prune.json");
  write_bytes(prune, "{\"method\": \"ltp\", \"blocks\": [{\"prune\": " + deep + "}]}");
  for (const auto& file : {calibration, prune}) {
    SCOPED_TRACE(file);
    const auto r = cli("trace --model " + quote(kModelDir) + " --method " + quote("ltp:thresholds=" + file) + " " +
                       quote(image) + " --out " + quote(tmp("deep_trace.json")));
    expect_clean_failure(r, file, {"deeper than 64"});
    EXPECT_LT(r.err.size(), 300u);
  }
  const std::string big = tmp("big_thresholds.json");
  write_bytes(big, "{\"blocks\": [{\"prune\": 0.1}], \"calibration\": \"" + std::string(2 << 20, 'x') + "\"}");
  expect_clean_failure(cli("trace --model " + quote(kModelDir) + " --method " + quote("ltp:thresholds=" + big) + " " +
                           quote(image) + " --out " + quote(tmp("big_trace.json"))),
                       big, {"over the limit of 1048576 bytes"});
}

TEST_F(BadInput, ConfigIntegersAreNotTruncated) {
  // Before: depth 4294967308 loaded as 12 and embed_dim 4294967488 as 192, and the model ran.
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"\"depth\": 12", "\"depth\": 4294967308", "depth 4294967308 is outside [1, 256]"},
      {"\"embed_dim\": 192", "\"embed_dim\": 4294967488", "embed_dim 4294967488 is outside [1, 16384]"},
      {"\"img_size\": 224", "\"img_size\": 1073741824", "img_size 1073741824 is outside [1, 4096]"},
      {"\"num_heads\": 3", "\"num_heads\": -3", "num_heads -3 is outside [1, 16384]"},
  };
  int i = 0;
  for (const auto& [from, to, message] : cases) {
    SCOPED_TRACE(to);
    const std::string dir =
        model_folder("int_" + std::to_string(i++), "unused", shared_config_with({{from, to}}).c_str());
    expect_clean_failure(classify_with_model(dir), dir + "/config.json", {message});
  }
}

TEST_F(BadInput, ConfigFloatsOutOfRangeOrNotFinite) {
  // Before: crop_pct 1e-12 and mlp_ratio 1e308 overflowed float-to-int conversions, crop_pct 1e-5 asked for
  // 33.6 GB, and mean 1e39 / norm_eps -1 printed "-nan%" with exit 0.
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"\"crop_pct\": 0.875", "\"crop_pct\": 1e-12", "crop_pct 1e-12 is outside [0.05, 1]"},
      {"\"crop_pct\": 0.875", "\"crop_pct\": 1e-5", "crop_pct 1e-05 is outside [0.05, 1]"},
      {"\"mlp_ratio\": 4.0", "\"mlp_ratio\": 1e308", "mlp_ratio 1e+308 is outside (0, 64]"},
      {"0.485", "1e39", "mean[0] 1e+39 is outside [0, 1]"},
      {"\"norm_eps\": 1e-06", "\"norm_eps\": -1", "norm_eps -1 is outside [1e-12, 1]"},
      {"\"input_size\": [\n      3,", "\"input_size\": [\n      1,",
       "pretrained_cfg.input_size [1,224,224] disagrees with in_chans 3 and img_size 224"},
  };
  int i = 0;
  for (const auto& [from, to, message] : cases) {
    SCOPED_TRACE(to);
    const std::string dir =
        model_folder("float_" + std::to_string(i++), "unused", shared_config_with({{from, to}}).c_str());
    expect_clean_failure(classify_with_model(dir), dir + "/config.json", {message});
  }
}

TEST_F(BadInput, SafetensorsHeaderLengthOneByteShort) {
  // Before: every tensor loaded shifted by one byte and classify printed "-nan%" with exit 0.
  const std::string dir = model_folder("st_short_by_one", shared_weights_bytes(-1));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors", {"ends with 1 byte no tensor covers"});
}

TEST_F(BadInput, SafetensorsBytesInsertedOrAppended) {
  const std::string inserted = model_folder("st_inserted", shared_weights_bytes(0, "WXYZ", 1000));
  expect_clean_failure(classify_with_model(inserted), inserted + "/model.safetensors",
                       {"ends with 4 bytes no tensor covers"});
  const std::string appended = model_folder("st_appended", shared_weights_bytes(0, std::string(16, '\0')));
  expect_clean_failure(classify_with_model(appended), appended + "/model.safetensors",
                       {"ends with 16 bytes no tensor covers"});
}

TEST_F(BadInput, SafetensorsGapBetweenTensors) {
  const std::string header = R"({"head.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]},)"
                             R"("head.weight":{"dtype":"F32","shape":[2],"data_offsets":[4008,4016]}})";
  const std::string dir = model_folder("st_gap", safetensors_bytes(header, 4016, header.size()));
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors",
                       {"data bytes [4000, 4008) belong to no tensor"});
}

TEST_F(BadInput, ConfigDepthDisagreesWithWeights) {
  // Before: depth 2 or 7 ran the 12-block weights' first blocks and ignored the rest.
  for (const auto& [depth, first_unused, unused] : std::vector<std::tuple<int, std::string, int>>{
           {2, "blocks.2.attn.proj.bias", 120}, {7, "blocks.7.attn.proj.bias", 60}}) {
    SCOPED_TRACE(depth);
    const std::string dir =
        folder_with_shared_weights("depth_" + std::to_string(depth),
                                   shared_config_with({{"\"depth\": 12", "\"depth\": " + std::to_string(depth)}}));
    const auto r = classify_with_model(dir);
    expect_clean_failure(r, dir + "/model.safetensors", {"unexpected tensor '" + first_unused + "'"});
    EXPECT_NE(r.err.find(std::to_string(unused) + " tensors are not part of the model the config describes: depth " +
                         std::to_string(depth)),
              std::string::npos)
        << r.err;
  }
  const std::string deeper =
      folder_with_shared_weights("depth_13", shared_config_with({{"\"depth\": 12", "\"depth\": 13"}}));
  expect_clean_failure(classify_with_model(deeper), deeper + "/model.safetensors",
                       {"missing tensor 'blocks.12.norm1.weight'"});
}

TEST_F(BadInput, ConfigDepthDisagreesWithPthWeights) {
  const std::string dir = tmp("pth_depth_7");
  fs::create_directories(dir);
  write_bytes(dir + "/config.json", shared_config_with({{"\"depth\": 12", "\"depth\": 7"}}));
  fs::create_symlink(fs::absolute(test::fixtures_dir() + "/deit_tiny.pth"), dir + "/model.pth");
  expect_clean_failure(classify_with_model(dir), dir + "/model.pth", {"unexpected tensor 'blocks.7.attn.proj.bias'"});
}

TEST_F(BadInput, NonFiniteWeight) {
  auto weights = real_weights();
  at::Tensor fc1 = weights.at("blocks.3.mlp.fc1.weight").clone();
  fc1[5][7] = std::nanf("");
  weights["blocks.3.mlp.fc1.weight"] = fc1;
  const std::string dir = model_folder_with("nan_weight", weights);
  expect_clean_failure(classify_with_model(dir), dir + "/model.safetensors",
                       {"tensor 'blocks.3.mlp.fc1.weight' holds NaN or infinite values"});
  // Finite as float64, infinite as the float32 the model computes in.
  weights = real_weights();
  weights["head.bias"] = at::full({1000}, 1e39, at::kDouble);
  const std::string dir64 = model_folder_with("inf_as_float32", weights);
  expect_clean_failure(classify_with_model(dir64), dir64 + "/model.safetensors",
                       {"tensor 'head.bias' holds NaN or infinite values (as float32)"});
}

TEST_F(BadInput, NonFiniteLogitsInEveryCommand) {
  // Finite weights whose products overflow float32: the logits are inf or NaN. Every command that runs the
  // model refuses them, naming the weights (and the image where one is given) instead of printing "-nan%".
  auto weights = real_weights();
  weights["head.weight"] = at::full({1000, 192}, 3e38f);
  const std::string dir = model_folder_with("overflowing_head", weights);
  const std::string weights_file = dir + "/model.safetensors";
  const std::string image = test::shared_image("n01440764_tench.JPEG");
  const std::string images = tmp("two_images");
  fs::create_directories(images);
  for (const char* name : {"n01440764_tench.JPEG", "n01484850_great_white_shark.JPEG"})
    fs::create_symlink(fs::absolute(test::shared_image(name)), images + "/" + name);
  const std::string model = " --model " + quote(dir) + " ";
  const std::string logits = "the forward pass gave NaN or infinite logits";
  {
    const auto r = cli("classify" + model + quote(image));
    expect_clean_failure(r, weights_file, {logits});
    EXPECT_NE(r.err.find("for " + image), std::string::npos) << r.err;
  }
  expect_clean_failure(cli("eval" + model + "--images " + quote(images)), weights_file, {logits});
  expect_clean_failure(
      cli("trace" + model + "--method tome:r=8 " + quote(image) + " --out " + quote(tmp("nan_trace.json"))),
      weights_file, {logits});
  expect_clean_failure(cli("bench" + model + "--warmup 0 --repeat 1"), weights_file, {logits});
  expect_clean_failure(cli("bench" + model + "--method tome:r=8 --warmup 0 --repeat 1"), weights_file, {logits});
  expect_clean_failure(
      cli("spectrum" + model + "--method tome:r=8 " + quote(image) + " --out " + quote(tmp("nan_spectrum"))),
      weights_file, {logits});
  {
    auto r = cli("calibrate" + model + "--method ltp --images " + quote(images) + " --batch 2 --out " +
                 quote(tmp("nan_thresholds.json")));
    // calibrate states its plan on stderr before it starts; the error is the line after it.
    const size_t plan_end = r.err.find('\n');
    ASSERT_NE(plan_end, std::string::npos) << r.err;
    EXPECT_EQ(r.err.rfind("calibrate ltp on 2 images", 0), 0u) << r.err;
    r.err.erase(0, plan_end + 1);
    expect_clean_failure(r, weights_file, {logits});
    EXPECT_FALSE(fs::exists(tmp("nan_thresholds.json")));
  }
}

TEST_F(BadInput, ScheduleEntriesAreStrictNumbers) {
  for (const std::string& spec :
       {"tome:schedule= 8;+8", "tome:schedule=8;+8", "tome:schedule=8;0x8", "tome:schedule=99999999999999999999"}) {
    SCOPED_TRACE(spec);
    expect_clean_failure(
        cli("bench --random-weights deit_tiny_patch16_224 --method " + quote(spec) + " --warmup 0 --repeat 1"),
        "method spec '" + spec + "'", {"is not a non-negative integer"});
  }
}

TEST_F(BadInput, MissingModelPathListsEachPlaceOnce) {
  const auto r = classify_with_model("/nonexistent");
  expect_clean_failure(r, "/nonexistent", {"model not found"});
  EXPECT_NE(r.err.find("looked in /nonexistent (set MERGESCOPE_MODELS"), std::string::npos) << r.err;
}

TEST(FiniteLogits, NamesTheModelAndTheFirstImageAtFault) {
  const auto model = Model::random("deit_tiny_patch16_224");
  at::Tensor logits = at::zeros({3, 1000});
  EXPECT_NO_THROW(check_finite_logits(logits, *model, {"a.png", "b.png", "c.png"}));
  logits[1][17] = std::nanf("");
  logits[2][3] = INFINITY;
  try {
    check_finite_logits(logits, *model, {"a.png", "b.png", "c.png"});
    ADD_FAILURE() << "NaN logits accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "random:deit_tiny_patch16_224: the forward pass gave NaN or infinite logits for b.png "
              "(2 of the 3 images of its batch) (weights or config values out of range for float32?)");
  }
  try {
    check_finite_logits(logits, *model);
    ADD_FAILURE() << "NaN logits accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("for 2 of 3 inputs"), std::string::npos) << e.what();
  }
}

// ---- positive controls ------------------------------------------------------------------------------

TEST_F(BadInput, GoodImagesInEveryEncodingClassify) {
  const std::string original = test::shared_image("n01440764_tench.JPEG");
  const std::vector<std::string> images = {original,
                                           fixture("tench_baseline.jpg"),
                                           fixture("tench_progressive.jpg"),
                                           fixture("tench_grey.jpg"),
                                           fixture("tench.png"),
                                           fixture("tench.bmp")};
  std::string args = "classify";
  for (const auto& p : images) args += " " + quote(p);
  const auto r = cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const auto blocks = parse_classify(r.out);
  ASSERT_EQ(blocks.size(), images.size()) << r.out;
  for (const auto& p : images) {
    ASSERT_TRUE(blocks.count(p)) << p << " not in output:\n" << r.out;
    EXPECT_EQ(blocks.at(p).ranks.size(), 5u) << p;
  }
  // PNG and BMP hold PIL's decode of the same JPEG: identical pixels, identical predictions, tench on top.
  const ClassifyBlock& png = blocks.at(fixture("tench.png"));
  const ClassifyBlock& bmp = blocks.at(fixture("tench.bmp"));
  ASSERT_FALSE(png.ranks.empty());
  EXPECT_EQ(png.ranks[0], "tench (0)") << r.out;
  EXPECT_EQ(png.lines, bmp.lines) << r.out;
  // The original JPEG decodes to exactly Pillow's pixels, which the PNG holds: the same predictions.
  EXPECT_EQ(blocks.at(original).lines, png.lines) << r.out;
  // The colour re-encodes (lossy, so not the PNG's pixels) still see a tench.
  for (const auto& p : {original, fixture("tench_baseline.jpg"), fixture("tench_progressive.jpg")})
    EXPECT_EQ(blocks.at(p).ranks.at(0), "tench (0)") << p << "\n" << r.out;
}

TEST_F(BadInput, TopOptionLimitsTheList) {
  const auto r = classify(fixture("tench.png"), "--top 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto blocks = parse_classify(r.out);
  ASSERT_EQ(blocks.size(), 1u) << r.out;
  EXPECT_EQ(blocks.begin()->second.ranks, (std::vector<std::string>{"tench (0)"})) << r.out;
}

}  // namespace
}  // namespace ms
