#include "io.h"

#include "error.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace ms {

std::vector<char> read_file(const std::string& path, uint64_t max_bytes, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, expected a file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  const std::streamoff size = f.tellg();
  // Pipes and some special files have no size; -1 would otherwise become a 16 EiB allocation.
  if (size < 0) fail(path, "cannot determine the file size (not a regular file?)");
  if (static_cast<uint64_t>(size) > max_bytes)
    fail(path,
         what + " is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max_bytes) + " bytes");
  std::vector<char> bytes;
  try {
    bytes.resize(static_cast<size_t>(size));
  } catch (const std::bad_alloc&) {
    fail(path, "out of memory reading " + std::to_string(size) + " bytes");
  }
  f.seekg(0);
  if (size > 0 && !f.read(bytes.data(), size)) fail(path, "read failed");
  return bytes;
}

void check_json_depth(const char* begin, const char* end, const std::string& source, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (const char* p = begin; p < end; ++p) {
    const char ch = *p;
    if (in_string) {
      if (ch == '\\' && p + 1 < end)
        ++p;  // the escaped character cannot end the string
      else if (ch == '"')
        in_string = false;
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      if (++depth > max_depth)
        fail(source, "JSON nests arrays/objects deeper than " + std::to_string(max_depth) + " levels (at byte " +
                         std::to_string(p - begin) + "); refused");
    } else if (ch == ']' || ch == '}') {
      --depth;  // unbalanced text is the parser's to report
    }
  }
}

std::string describe_json(const nlohmann::json& value) {
  if (value.is_object()) return "an object";
  if (value.is_array())
    return "an array of " + std::to_string(value.size()) + (value.size() == 1 ? " value" : " values");
  if (value.is_string()) return "\"" + excerpt(value.get_ref<const std::string&>()) + "\"";
  return excerpt(value.dump());  // number, boolean or null: short
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
