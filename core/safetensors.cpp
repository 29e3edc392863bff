#include "safetensors.h"

#include "error.h"
#include "io.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace ms {
namespace {

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  int64_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* find_dtype(at::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

SafetensorsFile parse_safetensors(const std::vector<char>& bytes, const std::string& path) {
  const uint64_t file_size = bytes.size();
  if (file_size < 8) fail(path, "not a safetensors file: " + std::to_string(file_size) + " bytes, header length missing");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_len > file_size - 8)
    fail(path, "safetensors header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes)");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(path, "safetensors header is not valid JSON (" + one_line(e) + ")");
  }
  if (!header.is_object()) fail(path, "safetensors header is not a JSON object");

  SafetensorsFile out;
  out.path = path;
  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = file_size - data_begin;

  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_object())
        for (const auto& [k, v] : entry.items())
          if (v.is_string()) out.metadata[k] = v.get<std::string>();
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      fail(where, "entry needs dtype, shape and data_offsets");
    if (!entry["dtype"].is_string()) fail(where, "dtype is not a string");
    const std::string dtype_name = entry["dtype"].get<std::string>();
    const DtypeInfo* dtype = find_dtype(dtype_name);
    if (!dtype) fail(where, "unknown dtype '" + dtype_name + "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");

    std::vector<int64_t> shape;
    if (!entry["shape"].is_array()) fail(where, "shape is not an array");
    uint64_t count = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(where, "shape has a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && count > (uint64_t{1} << 62) / dim) fail(where, "shape is too large");
      count *= dim;
      shape.push_back(static_cast<int64_t>(dim));
    }
    if (count > (uint64_t{1} << 62) / static_cast<uint64_t>(dtype->bytes)) fail(where, "shape is too large");
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      fail(where, "data_offsets must be two non-negative integers");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end) fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > data_size)
      fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are out of range (data section holds " +
                      std::to_string(data_size) + " bytes)");
    if (end - begin != count * static_cast<uint64_t>(dtype->bytes))
      fail(where, "holds " + std::to_string(end - begin) + " bytes but " + dtype_name + shape_string(shape) + " needs " +
                      std::to_string(count * dtype->bytes));
    spans.push_back({begin, end, name});

    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype->type));
    if (end > begin) std::memcpy(t.data_ptr(), bytes.data() + data_begin + begin, end - begin);
    out.tensors.emplace(name, std::move(t));
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  // Compare with the furthest end so far: an empty tensor sorted in between must not hide an overlap.
  const Span* furthest = nullptr;
  for (const Span& s : spans) {
    if (s.end == s.begin) continue;
    if (furthest && s.begin < furthest->end)
      fail(path, "tensors '" + furthest->name + "' and '" + s.name + "' have overlapping data_offsets");
    if (!furthest || s.end > furthest->end) furthest = &s;
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> ordered;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const DtypeInfo* dtype = find_dtype(tensor.scalar_type());
    if (!dtype) fail(path, "cannot write tensor '" + name + "' of dtype " + std::string(c10::toString(tensor.scalar_type())));
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(t.numel()) * dtype->bytes;
    header[name] = {{"dtype", dtype->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    ordered.push_back(t);
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');  // keep the data section 8-byte aligned
  std::ofstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open for writing");
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((len >> (8 * i)) & 0xff));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : ordered) f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) fail(path, "write failed");
}

}  // namespace ms
