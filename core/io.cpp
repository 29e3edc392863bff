#include "io.h"

#include "error.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace ms {

std::vector<char> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, expected a file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const std::streamsize size = f.tellg();
  std::vector<char> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(bytes.data(), size)) fail(path, "read failed");
  return bytes;
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace ms
