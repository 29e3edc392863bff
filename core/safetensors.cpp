#include "safetensors.h"

#include "error.h"
#include "io.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

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

// The reference reader's MAX_HEADER_SIZE.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100000000;
// More dimensions than any model tensor has; bounds the work a hostile shape list can cause.
constexpr size_t kMaxRank = 64;

std::string hex_byte(char ch) {
  static const char* digits = "0123456789ABCDEF";
  const auto b = static_cast<unsigned char>(ch);
  return {digits[b >> 4], digits[b & 15]};
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  return with_file_errors(path, [&] { return parse_safetensors(read_file(path), path); });
}

// The format, as huggingface/safetensors documents it (README "Format") and its reference reader enforces
// (safetensors/src/tensor.rs: SafeTensors::read_metadata, Metadata::validate):
//  - 8 bytes: N, the header size, unsigned little-endian; 8 + N must fit in the file, and the reference refuses
//    N over MAX_HEADER_SIZE = 100,000,000 (HeaderTooLarge);
//  - N bytes: a UTF-8 JSON object; "The header data MUST begin with a { character (0x7B). The header data MAY
//    be trailing padded with whitespace (0x20)."; "Duplicate keys are disallowed";
//  - each entry {"dtype", "shape", "data_offsets": [BEGIN, END]}, offsets relative to the byte buffer, END one
//    past the last byte, END - BEGIN = product(shape) * dtype size (shape products checked for overflow);
//  - "The byte buffer needs to be entirely indexed, and cannot contain holes": sorted by offsets, every tensor
//    starts where the previous one ended (InvalidOffset), and the last one ends at the end of the file
//    (MetadataIncompleteBuffer). Empty tensors take no bytes and sit at such a boundary.
// A header length one byte short, or bytes inserted in the data, therefore shows as a gap or trailing bytes
// instead of loading every tensor shifted.
SafetensorsFile parse_safetensors(const std::vector<char>& bytes, const std::string& path) {
  return with_file_errors(path, [&] {
    const uint64_t file_size = bytes.size();
    if (file_size < 8)
      fail(path, "not a safetensors file: " + std::to_string(file_size) + " bytes, header length missing");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
    if (header_len > file_size - 8)
      fail(path, "safetensors header length " + std::to_string(header_len) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes)");
    if (header_len > kMaxSafetensorsHeaderBytes)
      fail(path, "safetensors header length " + std::to_string(header_len) + " is over the limit of " +
                     std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
    const char* header_begin = bytes.data() + 8;
    const char* header_end = header_begin + header_len;

    check_json_depth(header_begin, header_end, path);
    // Duplicate keys: nlohmann keeps the last silently, so every object's keys are tracked while parsing.
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    const nlohmann::json::parser_callback_t track_keys = [&](int, nlohmann::json::parse_event_t event,
                                                             nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::object_start) open_objects.emplace_back();
      if (event == nlohmann::json::parse_event_t::object_end && !open_objects.empty()) open_objects.pop_back();
      if (event == nlohmann::json::parse_event_t::key && !open_objects.empty() && duplicate.empty() &&
          !open_objects.back().insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    };
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(header_begin, header_end, track_keys);
    } catch (const nlohmann::json::exception& e) {
      fail(path, "safetensors header is not valid JSON (" + excerpt(one_line(e), 160) + ")");
    }
    if (!header.is_object()) fail(path, "safetensors header is not a JSON object");
    if (!duplicate.empty())
      fail(path, "safetensors header has the key '" + excerpt(duplicate) + "' twice (duplicate keys are not allowed)");
    if (header_begin[0] != '{')
      fail(path, "safetensors header must begin with '{', found byte 0x" + hex_byte(header_begin[0]) +
                     " (padding is allowed only after the JSON)");
    const char* last = header_end;
    while (last > header_begin && last[-1] == ' ') --last;
    if (last[-1] != '}')  // the header begins with '{', so last > header_begin
      fail(path, "safetensors header is padded with byte 0x" + hex_byte(last[-1]) +
                     " after its closing '}' (the format allows spaces, 0x20, only)");

    SafetensorsFile out;
    out.path = path;
    const uint64_t data_begin = 8 + header_len;
    const uint64_t data_size = file_size - data_begin;

    struct Span {
      uint64_t begin, end;
      std::string name;
      const DtypeInfo* dtype;
      std::vector<int64_t> shape;
    };
    std::vector<Span> spans;

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object())
          fail(path, "safetensors \"__metadata__\" is " + describe_json(entry) + ", expected an object");
        for (const auto& [k, v] : entry.items())
          if (v.is_string()) out.metadata[k] = v.get<std::string>();
        continue;
      }
      const std::string where = path + ": tensor '" + excerpt(name, 200) + "'";
      if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
        fail(where, "entry needs dtype, shape and data_offsets");
      if (!entry["dtype"].is_string()) fail(where, "dtype is not a string");
      const std::string dtype_name = entry["dtype"].get<std::string>();
      const DtypeInfo* dtype = find_dtype(dtype_name);
      if (!dtype)
        fail(where, "unknown dtype '" + excerpt(dtype_name) +
                        "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");

      std::vector<int64_t> shape;
      if (!entry["shape"].is_array()) fail(where, "shape is not an array");
      if (entry["shape"].size() > kMaxRank)
        fail(where, "shape has " + std::to_string(entry["shape"].size()) + " dimensions, over the limit of " +
                        std::to_string(kMaxRank));
      // Element and byte counts stay below 2^62, so no product below wraps around.
      constexpr uint64_t kLimit = uint64_t{1} << 62;
      uint64_t count = 1;
      for (const auto& d : entry["shape"]) {
        if (!d.is_number_unsigned()) fail(where, "shape has a non-integer or negative dimension");
        const uint64_t dim = d.get<uint64_t>();
        if (dim > kLimit || (dim != 0 && count > kLimit / dim)) fail(where, "shape is too large");
        count *= dim;
        shape.push_back(static_cast<int64_t>(dim));
      }
      if (count > kLimit / static_cast<uint64_t>(dtype->bytes)) fail(where, "shape is too large");
      const auto& offsets = entry["data_offsets"];
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
          !offsets[1].is_number_unsigned())
        fail(where, "data_offsets must be two non-negative integers");
      const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
      if (begin > end)
        fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
      if (end > data_size)
        fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                        "] are out of range (data section holds " + std::to_string(data_size) + " bytes)");
      if (end - begin != count * static_cast<uint64_t>(dtype->bytes))
        fail(where, "holds " + std::to_string(end - begin) + " bytes but " + dtype_name + shape_string(shape) +
                        " needs " + std::to_string(count * dtype->bytes));
      spans.push_back({begin, end, name, dtype, std::move(shape)});
    }

    // Coverage: the non-empty spans, sorted, must tile [0, data_size) exactly.
    std::vector<const Span*> order;
    for (const Span& s : spans)
      if (s.end > s.begin) order.push_back(&s);
    std::sort(order.begin(), order.end(), [](const Span* a, const Span* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::set<uint64_t> boundaries = {0};
    uint64_t covered = 0;
    const Span* previous = nullptr;
    for (const Span* s : order) {
      if (s->begin < covered)
        fail(path,
             "tensors '" + excerpt(previous->name) + "' and '" + excerpt(s->name) + "' have overlapping data_offsets");
      if (s->begin > covered)
        fail(path, "data bytes [" + std::to_string(covered) + ", " + std::to_string(s->begin) +
                       ") belong to no tensor (" + (previous ? "after '" + excerpt(previous->name) + "', " : "") +
                       "before '" + excerpt(s->name) + "'); the format allows no gaps");
      covered = s->end;
      boundaries.insert(covered);
      previous = s;
    }
    if (covered != data_size)
      fail(path, "the data section ends with " + std::to_string(data_size - covered) +
                     (data_size - covered == 1 ? " byte" : " bytes") + " no tensor covers (" +
                     (previous ? "the last tensor, '" + excerpt(previous->name) + "', ends at byte " +
                                     std::to_string(covered) + " of " + std::to_string(data_size)
                               : "no tensor has data") +
                     "): wrong header length or inserted bytes?");
    for (const Span& s : spans)
      if (s.end == s.begin && !boundaries.count(s.begin))
        fail(path, "empty tensor '" + excerpt(s.name) + "' has data_offsets [" + std::to_string(s.begin) + ", " +
                       std::to_string(s.end) + "] inside another tensor's data");

    for (const Span& s : spans) {
      at::Tensor t = at::empty(s.shape, at::TensorOptions().dtype(s.dtype->type));
      if (s.end > s.begin) std::memcpy(t.data_ptr(), bytes.data() + data_begin + s.begin, s.end - s.begin);
      out.tensors.emplace(s.name, std::move(t));
    }
    return out;
  });
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> ordered;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const DtypeInfo* dtype = find_dtype(tensor.scalar_type());
    if (!dtype)
      fail(path, "cannot write tensor '" + name + "' of dtype " + std::string(c10::toString(tensor.scalar_type())));
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
  for (const auto& t : ordered)
    f.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) fail(path, "write failed");
}

}  // namespace ms
