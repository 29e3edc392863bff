// Small file helpers shared by the loaders.
#pragma once

#include <string>
#include <vector>

namespace ms {

// Reads a whole file; throws ms::Error("<path>: cannot open: <reason>") when it cannot.
std::vector<char> read_file(const std::string& path);

bool is_directory(const std::string& path);
bool is_regular_file(const std::string& path);

}  // namespace ms
