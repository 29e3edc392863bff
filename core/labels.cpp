#include "labels.h"

#include "checkpoint.h"
#include "error.h"
#include "io.h"

#include <filesystem>
#include <fstream>

namespace ms {

Labels Labels::load(const std::string& path) {
  if (is_directory(path)) fail(path, "is a directory, expected a labels file");
  std::ifstream f(path);
  if (!f) fail(path, "cannot open labels file");
  Labels labels;
  std::string line;
  int number = 0;
  while (std::getline(f, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto space = line.find(' ');
    const std::string wnid = line.substr(0, space);
    std::string name = space == std::string::npos ? wnid : line.substr(space + 1);
    name = name.substr(0, name.find(','));
    if (labels.index_.count(wnid)) fail(path, "line " + std::to_string(number) + ": duplicate class id '" + wnid + "'");
    labels.index_[wnid] = static_cast<int>(labels.wnids_.size());
    labels.wnids_.push_back(wnid);
    labels.names_.push_back(name);
  }
  if (labels.wnids_.empty()) fail(path, "labels file is empty");
  return labels;
}

Labels Labels::load_default() { return load(find_data_file("synset_words.txt")); }

int Labels::index_of(const std::string& wnid) const {
  const auto it = index_.find(wnid);
  return it == index_.end() ? -1 : it->second;
}

int Labels::index_from_filename(const std::string& filename) const {
  const std::string base = std::filesystem::path(filename).filename().string();
  return index_of(base.substr(0, base.find('_')));
}

}  // namespace ms
