// libFuzzer target: a whole safetensors file (header length, JSON header, data) through parse_safetensors.
// Beyond "no crash": an accepted file must be fully covered by its tensors (the byte count of the tensors is the
// data section's size, so nothing was skipped or shifted) and must survive write_safetensors -> parse unchanged.
#include "fuzz_util.h"
#include "safetensors.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

uint64_t header_length(const std::vector<char>& bytes) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  return n;
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) == 0);
}

void check_accepted(const std::vector<char>& bytes, const ms::SafetensorsFile& file) {
  using ms::fuzz::check;
  check(bytes.size() >= 8, "accepted a file shorter than its 8-byte header length");
  const uint64_t n = header_length(bytes);
  check(n <= bytes.size() - 8, "accepted a header length past the end of the file");
  const uint64_t data_size = bytes.size() - 8 - n;
  uint64_t covered = 0;
  for (const auto& [name, t] : file.tensors) {
    check(t.defined() && t.device().is_cpu() && t.is_contiguous(),
          "tensor '" + name + "' is not a contiguous CPU tensor");
    covered += t.nbytes();
  }
  // Overlaps and gaps are refused, so the tensors' bytes add up to the data section exactly.
  check(covered == data_size, "tensors hold " + std::to_string(covered) + " bytes of a " + std::to_string(data_size) +
                                  "-byte data section: bytes skipped or shared");

  static const std::string scratch = ms::fuzz::scratch_file(".safetensors");
  ms::write_safetensors(scratch, file.tensors, file.metadata);
  const ms::SafetensorsFile again = ms::read_safetensors(scratch);
  check(again.metadata == file.metadata, "metadata changed in a write/read round trip");
  check(again.tensors.size() == file.tensors.size(), "tensor count changed in a write/read round trip");
  for (const auto& [name, t] : file.tensors) {
    const auto it = again.tensors.find(name);
    check(it != again.tensors.end() && same_bytes(t, it->second),
          "tensor '" + name + "' changed in a write/read round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(data, data + size);
  ms::fuzz::run_one([&] {
    const ms::SafetensorsFile file = ms::parse_safetensors(bytes, "fuzz.safetensors");
    check_accepted(bytes, file);
  });
  return 0;
}
