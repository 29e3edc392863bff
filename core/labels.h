// ImageNet class names (synset_words.txt: "wnid label[, synonyms]" per line, line number = class index).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace ms {

class Labels {
 public:
  // Throws ms::Error("<path>: ...") when the file is missing or malformed.
  static Labels load(const std::string& path);
  // The default file, synset_words.txt on the data search path.
  static Labels load_default();

  size_t size() const { return wnids_.size(); }
  const std::string& wnid(size_t i) const { return wnids_.at(i); }
  const std::string& name(size_t i) const { return names_.at(i); }  // the first synonym, e.g. "tench"
  // Class index of a wnid, or -1.
  int index_of(const std::string& wnid) const;
  // Class index from a file name "<wnid>_anything.ext", or -1.
  int index_from_filename(const std::string& filename) const;

 private:
  std::vector<std::string> wnids_, names_;
  std::unordered_map<std::string, int> index_;
};

}  // namespace ms
