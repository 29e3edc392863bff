// safetensors reader and writer: round trips through real files, and every structural problem a broken or
// hostile file can have is an ms::Error whose one-line message names the file and the problem.
#include "error.h"
#include "safetensors.h"
#include "test_util.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace ms {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = ms::test::make_temp_dir("ms_safetensors_"); }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  static std::string write_bytes(const std::string& name, const std::string& bytes) {
    const std::string p = path(name);
    std::ofstream f(p, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(f.good()) << p;
    return p;
  }

  // 8-byte little-endian length, the header text, then `data_bytes` bytes of data.
  static std::string file_bytes(const std::string& header, size_t data_bytes, uint64_t declared_len) {
    std::string out;
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((declared_len >> (8 * i)) & 0xff));
    out += header;
    for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<char>(i & 0xff));
    return out;
  }
  static std::string write_file(const std::string& name, const std::string& header, size_t data_bytes) {
    return write_bytes(name, file_bytes(header, data_bytes, header.size()));
  }

  // Reading `p` must throw ms::Error with a one-line message naming `p` and containing every part.
  static void expect_read_error(const std::string& p, const std::vector<std::string>& parts) {
    try {
      read_safetensors(p);
      ADD_FAILURE() << p << ": read_safetensors accepted the file";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
      for (const auto& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << p << ": threw a non-ms::Error: " << one_line(e);
    }
  }

  static std::string dir_;
};

std::string SafetensorsTest::dir_;

// ---- round trips ------------------------------------------------------------------------------------

TEST_F(SafetensorsTest, RoundTripKeepsDtypesShapesValuesAndMetadata) {
  const at::Tensor f32 = at::randn({2, 3, 4});
  const at::Tensor f16 = at::randn({5}).to(at::kHalf);
  const at::Tensor i64 = at::tensor(std::vector<int64_t>{0, -7, int64_t{1} << 40, INT64_MAX, INT64_MIN});
  const at::Tensor u8 = at::tensor(std::vector<uint8_t>{0, 1, 128, 255}).reshape({2, 2});
  const std::map<std::string, at::Tensor> tensors = {{"a.f32", f32}, {"b.f16", f16}, {"c.i64", i64}, {"d.u8", u8}};
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "mergescope \"test\" \xc3\xa9"}};
  const std::string p = path("roundtrip.safetensors");
  write_safetensors(p, tensors, metadata);

  const SafetensorsFile back = read_safetensors(p);
  EXPECT_EQ(back.path, p);
  EXPECT_EQ(back.metadata, metadata);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    ASSERT_TRUE(back.tensors.count(name)) << name;
    const at::Tensor& t = back.tensors.at(name);
    EXPECT_EQ(t.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(t.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(t, expected)) << name;
  }
}

TEST_F(SafetensorsTest, RoundTripOtherDtypesScalarsEmptyAndNonContiguous) {
  const at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
  const std::map<std::string, at::Tensor> tensors = {
      {"f64", at::randn({3}, at::kDouble)},
      {"bf16", at::randn({4}).to(at::kBFloat16)},
      {"i32", at::tensor(std::vector<int32_t>{INT32_MIN, -1, 0, INT32_MAX})},
      {"i16", at::tensor(std::vector<int16_t>{-32768, 32767})},
      {"i8", at::tensor(std::vector<int8_t>{-128, 127})},
      {"bool", at::tensor(std::vector<uint8_t>{1, 0, 1}).to(at::kBool)},
      {"scalar", at::scalar_tensor(3.5)},
      {"empty", at::empty({0, 3})},
      {"transposed", base.t()},  // written in logical (row-major) order, not storage order
  };
  const std::string p = path("roundtrip2.safetensors");
  write_safetensors(p, tensors);
  const SafetensorsFile back = read_safetensors(p);
  EXPECT_TRUE(back.metadata.empty());
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const at::Tensor& t = back.tensors.at(name);
    EXPECT_EQ(t.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(t.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(t, expected)) << name;
  }
  EXPECT_EQ(back.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(back.tensors.at("transposed")[0][1].item<float>(), 4.0f);
}

TEST_F(SafetensorsTest, WrittenFileFollowsTheFormat) {
  // Independent check of the byte layout: u64 LE header length, JSON header, data in header order.
  const at::Tensor t = at::tensor(std::vector<float>{1.0f, -2.0f});
  const std::string p = path("layout.safetensors");
  write_safetensors(p, {{"x", t}});
  std::ifstream f(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  ASSERT_EQ(bytes.size(), 8 + n + 8) << "header length + 8 data bytes";
  EXPECT_EQ((8 + n) % 8, 0u) << "data section is 8-byte aligned";
  const std::string header = bytes.substr(8, n);
  EXPECT_NE(header.find("\"dtype\":\"F32\""), std::string::npos) << header;
  EXPECT_NE(header.find("\"data_offsets\":[0,8]"), std::string::npos) << header;
  float values[2];
  std::memcpy(values, bytes.data() + 8 + n, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -2.0f);
}

TEST_F(SafetensorsTest, ReadsHandWrittenFileWithMetadataAndPadding) {
  // Non-string metadata values are skipped; trailing spaces in the header are legal JSON.
  const std::string header =
      R"({"__metadata__":{"format":"pt","n":5},"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}   )";
  std::string bytes = file_bytes(header, 0, header.size());
  const int64_t vals[2] = {-3, 1234567890123};
  bytes.append(reinterpret_cast<const char*>(vals), sizeof vals);
  const SafetensorsFile f = read_safetensors(write_bytes("hand.safetensors", bytes));
  EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_TRUE(f.tensors.count("w"));
  EXPECT_EQ(f.tensors.at("w").scalar_type(), at::kLong);
  EXPECT_EQ(f.tensors.at("w")[0].item<int64_t>(), -3);
  EXPECT_EQ(f.tensors.at("w")[1].item<int64_t>(), 1234567890123);
}

TEST_F(SafetensorsTest, ReadsTheSharedModel) {
  const std::string p = "../shared/models/deit_tiny_patch16_224/model.safetensors";
  const SafetensorsFile f = read_safetensors(p);
  ASSERT_TRUE(f.tensors.count("head.weight"));
  EXPECT_EQ(f.tensors.at("head.weight").sizes(), (std::vector<int64_t>{1000, 192}));
  EXPECT_EQ(f.tensors.at("pos_embed").sizes(), (std::vector<int64_t>{1, 197, 192}));
  EXPECT_EQ(f.tensors.at("blocks.11.mlp.fc1.weight").sizes(), (std::vector<int64_t>{768, 192}));
  EXPECT_EQ(f.tensors.at("head.weight").scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(f.tensors.at("head.weight")).all().item<bool>());
}

TEST_F(SafetensorsTest, WriteToUnwritablePathThrows) {
  const std::string p = path("no_such_dir/x.safetensors");
  try {
    write_safetensors(p, {{"x", at::zeros({2})}});
    ADD_FAILURE() << "write to a missing folder succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsTest, WriteOfUnsupportedDtypeThrows) {
  const std::string p = path("complex.safetensors");
  try {
    write_safetensors(p, {{"z", at::zeros({2}, at::kComplexFloat)}});
    ADD_FAILURE() << "complex tensor written";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("'z'"), std::string::npos) << msg;
  }
}

// ---- corrupt files -----------------------------------------------------------------------------------

TEST_F(SafetensorsTest, MissingFile) { expect_read_error(path("does_not_exist.safetensors"), {"cannot open"}); }

TEST_F(SafetensorsTest, EmptyFile) {
  expect_read_error(write_bytes("empty.safetensors", ""), {"header length missing"});
}

TEST_F(SafetensorsTest, ShorterThanEightBytes) {
  expect_read_error(write_bytes("short.safetensors", std::string("\x10\x00\x00\x00\x00", 5)),
                    {"not a safetensors file", "5 bytes"});
}

TEST_F(SafetensorsTest, HeaderLengthPastEnd) {
  const std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  expect_read_error(write_bytes("len_past_end.safetensors", file_bytes(header, 4, header.size() + 100)),
                    {"header length", "past the end"});
}

TEST_F(SafetensorsTest, HugeHeaderLengthDoesNotOverflow) {
  expect_read_error(write_bytes("len_huge.safetensors", file_bytes("{}", 0, UINT64_MAX)), {"past the end"});
  expect_read_error(write_bytes("len_huge2.safetensors", file_bytes("{}", 0, UINT64_MAX - 6)), {"past the end"});
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  expect_read_error(write_file("not_json.safetensors", "{\"x\": [1, 2", 0), {"not valid JSON"});
  expect_read_error(write_file("binary.safetensors", std::string("\x89PNG\r\n\x1a\n", 8), 0), {"not valid JSON"});
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  expect_read_error(write_file("array.safetensors", "[1, 2, 3]", 0), {"not a JSON object"});
  expect_read_error(write_file("string.safetensors", "\"hello\"", 0), {"not a JSON object"});
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expect_read_error(write_file("f8.safetensors", R"({"x":{"dtype":"F8","shape":[4],"data_offsets":[0,4]}})", 4),
                    {"'x'", "unknown dtype 'F8'"});
  expect_read_error(write_file("c64.safetensors", R"({"x":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8),
                    {"unknown dtype 'C64'"});
  expect_read_error(write_file("dtype_num.safetensors", R"({"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
                    {"dtype is not a string"});
}

TEST_F(SafetensorsTest, EntryMissingFields) {
  expect_read_error(write_file("no_offsets.safetensors", R"({"x":{"dtype":"F32","shape":[1]}})", 4),
                    {"'x'", "data_offsets"});
  expect_read_error(write_file("entry_not_obj.safetensors", R"({"x":[1,2]})", 0), {"'x'", "needs dtype"});
}

TEST_F(SafetensorsTest, BadShape) {
  expect_read_error(write_file("neg_dim.safetensors", R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
                    {"'x'", "negative dimension"});
  expect_read_error(
      write_file("frac_dim.safetensors", R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
      {"'x'", "non-integer"});
  expect_read_error(
      write_file("shape_str.safetensors", R"({"x":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", 16),
      {"'x'", "shape is not an array"});
  expect_read_error(write_file("shape_huge.safetensors",
                               R"({"x":{"dtype":"U8","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", 4),
                    {"'x'", "too large"});
}

TEST_F(SafetensorsTest, ElementCountTimesDtypeSizeDoesNotWrapAround) {
  // 2^62 F64 elements are 2^65 bytes: 0 modulo 2^64. A wrapped product would match the empty span [0, 0]
  // and the reader would then try to allocate 32 EiB.
  expect_read_error(
      write_file("wrap.safetensors", R"({"x":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0),
      {"'x'"});
  expect_read_error(write_file("wrap32.safetensors",
                               R"({"x":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}})", 0),
                    {"'x'"});
}

TEST_F(SafetensorsTest, BadOffsets) {
  expect_read_error(write_file("offs_neg.safetensors", R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 4),
                    {"'x'", "data_offsets"});
  expect_read_error(
      write_file("offs_three.safetensors", R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4,8]}})", 8),
      {"'x'", "data_offsets"});
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  expect_read_error(write_file("range.safetensors", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12),
                    {"'x'", "[0, 16]", "out of range", "12 bytes"});
  expect_read_error(
      write_file("range_huge.safetensors",
                 R"({"x":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551612,18446744073709551615]}})", 4),
      {"'x'", "out of range"});
}

TEST_F(SafetensorsTest, ReversedOffsets) {
  expect_read_error(write_file("reversed.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
                    {"'x'", "[8, 4]", "reversed"});
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  expect_read_error(write_file("overlap.safetensors",
                               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                               12),
                    {"'a'", "'b'", "overlapping"});
  // The same span twice (aliasing tensors) is an overlap too.
  expect_read_error(write_file("alias.safetensors",
                               R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})",
                               8),
                    {"overlapping"});
  // One span inside another, listed in the other order.
  expect_read_error(write_file("nested.safetensors",
                               R"({"inner":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                               R"("outer":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}})",
                               16),
                    {"'inner'", "'outer'", "overlapping"});
}

TEST_F(SafetensorsTest, OverlapHiddenBehindAnEmptyTensorIsFound) {
  // "big" covers [0, 16); "late" [12, 16) lies inside it. The empty tensor at [8, 8] sorts between them.
  expect_read_error(write_file("overlap_empty.safetensors",
                               R"({"big":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
                               R"("empty":{"dtype":"U8","shape":[0],"data_offsets":[8,8]},)"
                               R"("late":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}})",
                               16),
                    {"'late'", "overlapping"});
}

TEST_F(SafetensorsTest, AdjacentAndEmptySpansAreNotOverlaps) {
  const std::string p = write_file("adjacent.safetensors",
                                   R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                   R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                                   R"("b":{"dtype":"U8","shape":[2,2],"data_offsets":[4,8]}})",
                                   8);
  const SafetensorsFile f = read_safetensors(p);
  ASSERT_EQ(f.tensors.size(), 3u);
  EXPECT_EQ(f.tensors.at("a")[3].item<uint8_t>(), 3);  // data bytes are 0, 1, 2, ...
  EXPECT_EQ(f.tensors.at("b")[1][1].item<uint8_t>(), 7);
  EXPECT_EQ(f.tensors.at("e").numel(), 0);
}

TEST_F(SafetensorsTest, ByteCountDisagreesWithShape) {
  expect_read_error(write_file("count.safetensors", R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 12),
                    {"'x'", "holds 12 bytes", "F32[2,2]", "needs 16"});
  expect_read_error(write_file("count16.safetensors", R"({"x":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", 8),
                    {"'x'", "holds 8 bytes", "needs 6"});
}

// ---- as strict as the reference reader (issue 13) ----------------------------------------------------------

TEST_F(SafetensorsTest, DataSectionMustBeFullyCovered) {
  // A gap between two tensors.
  expect_read_error(write_file("gap.safetensors",
                               R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]}})",
                               12),
                    {"data bytes [4, 8) belong to no tensor", "after 'a'", "before 'b'"});
  // A gap at the start.
  expect_read_error(write_file("gap_start.safetensors", R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8),
                    {"data bytes [0, 4) belong to no tensor", "before 'b'"});
  // Bytes after the last tensor.
  expect_read_error(write_file("trailing.safetensors", R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", 7),
                    {"ends with 3 bytes no tensor covers", "'a', ends at byte 4 of 7"});
  expect_read_error(write_file("trailing_none.safetensors", "{}", 1),
                    {"ends with 1 byte no tensor covers", "no tensor has data"});
  // An empty tensor must sit at a boundary, not inside another tensor's bytes (the reference's InvalidOffset).
  expect_read_error(write_file("empty_inside.safetensors",
                               R"({"big":{"dtype":"U8","shape":[16],"data_offsets":[0,16]},)"
                               R"("e":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}})",
                               16),
                    {"empty tensor 'e'", "[8, 8]", "inside another tensor"});
}

TEST_F(SafetensorsTest, HeaderLengthOneByteShortOrBytesInsertedAreRefused) {
  // Before: every tensor loaded shifted by one byte and the model printed "-nan%".
  const std::string padded = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})" + std::string(3, ' ');
  std::string good = file_bytes(padded, 8, padded.size());
  expect_read_error(write_bytes("short_by_one.safetensors", file_bytes(padded, 8, padded.size() - 1)),
                    {"ends with 1 byte no tensor covers"});
  EXPECT_NO_THROW(read_safetensors(write_bytes("good_padded.safetensors", good)));
  std::string inserted = good;
  inserted.insert(8 + padded.size() + 4, "XYZW");
  expect_read_error(write_bytes("inserted.safetensors", inserted), {"ends with 4 bytes no tensor covers"});
  // Without padding, one byte short cuts the closing brace.
  const std::string tight = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_read_error(write_bytes("short_tight.safetensors", file_bytes(tight, 8, tight.size() - 1)), {"not valid JSON"});
}

TEST_F(SafetensorsTest, HeaderStartAndPaddingFollowTheFormat) {
  expect_read_error(write_file("leading_space.safetensors", " {}", 0), {"must begin with '{'", "0x20"});
  expect_read_error(write_file("newline_pad.safetensors", "{}\n", 0), {"padded with byte 0x0A", "spaces, 0x20, only"});
  expect_read_error(write_file("tab_pad.safetensors", "{} \t ", 0), {"padded with byte 0x09"});
  EXPECT_NO_THROW(read_safetensors(write_file("space_pad.safetensors", "{}       ", 0)));
}

TEST_F(SafetensorsTest, DuplicateKeysAreRefused) {
  expect_read_error(write_file("dup.safetensors",
                               R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                               R"("a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                               4),
                    {"key 'a' twice"});
  expect_read_error(
      write_file("dup_inner.safetensors", R"({"a":{"dtype":"U8","dtype":"F32","shape":[4],"data_offsets":[0,4]}})", 4),
      {"key 'dtype' twice"});
}

TEST_F(SafetensorsTest, DeepOrHostileHeadersAreRefused) {
  const std::string deep = "{\"__metadata__\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  expect_read_error(write_file("deep.safetensors", deep, 0), {"deeper than 64"});
  expect_read_error(write_file("meta_array.safetensors", R"({"__metadata__":[1]})", 0),
                    {"__metadata__", "expected an object"});
  std::string rank = R"({"x":{"dtype":"U8","shape":[)";
  for (int i = 0; i < 65; ++i) rank += i ? ",1" : "1";
  expect_read_error(write_file("rank.safetensors", rank + R"(],"data_offsets":[0,1]}})", 1), {"65 dimensions"});
  // Messages quote a short prefix of hostile names, on one line.
  const std::string name = std::string(5000, 'n') + "\\n";
  try {
    read_safetensors(
        write_file("long_name.safetensors", "{\"" + name + R"(":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", 1));
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 500u);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST_F(SafetensorsTest, FilesOfTheReferenceWriterPass) {
  // The shared model and golden file were written by huggingface/safetensors: padded, contiguous, covered.
  EXPECT_NO_THROW(read_safetensors("../shared/models/deit_tiny_patch16_224/model.safetensors"));
  EXPECT_NO_THROW(read_safetensors(test::golden_file()));
}

}  // namespace
}  // namespace ms
