// Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw data.
// Every structural problem (truncation, a header that is not one JSON object starting with '{' and padded with
// spaces only, duplicate keys, offsets out of range, overlapping or leaving bytes of the data uncovered, unknown
// dtype, sizes that disagree with shapes) is reported as ms::Error naming the file, as strictly as the
// reference reader (huggingface/safetensors) refuses them; see safetensors.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ms {

struct SafetensorsFile {
  std::string path;
  std::map<std::string, at::Tensor> tensors;    // owned CPU tensors, in their stored dtype
  std::map<std::string, std::string> metadata;  // "__metadata__", string values only
};

// Reads and validates the whole file.
SafetensorsFile read_safetensors(const std::string& path);

// Parses an in-memory image of a file; `path` is used in messages only.
SafetensorsFile parse_safetensors(const std::vector<char>& bytes, const std::string& path);

// Writes tensors (F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL) with optional string metadata.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ms
