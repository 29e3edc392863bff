// Small file helpers shared by the loaders, and the limits every untrusted JSON input is held to.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ms {

// Untrusted JSON (config.json, threshold files, safetensors headers) may nest arrays and objects at most this
// deep. Real files nest 3 levels; nlohmann's serializer and copies recurse once per level, so a 100,000-deep
// "[[[..." would overflow the stack.
constexpr int kMaxJsonDepth = 64;

// Reads a whole file; throws ms::Error("<path>: cannot open: <reason>") when it cannot, and
// ms::Error("<path>: <what> is N bytes, over the limit of M bytes") before reading one larger than `max_bytes`.
std::vector<char> read_file(const std::string& path, uint64_t max_bytes = std::numeric_limits<uint64_t>::max(),
                            const std::string& what = "file");

// Throws ms::Error("<source>: ...") when the JSON text [begin, end) nests arrays/objects deeper than
// `max_depth`. A scan of the text only (strings and escapes respected), run before parsing; syntax errors
// are left to the parser.
void check_json_depth(const char* begin, const char* end, const std::string& source, int max_depth = kMaxJsonDepth);

// A JSON value for an error message without dumping it: "an object", "an array of 3 values", a quoted string
// or number excerpt (see excerpt()).
std::string describe_json(const nlohmann::json& value);

bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

}  // namespace ms
