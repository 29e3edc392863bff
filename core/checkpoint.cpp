#include "checkpoint.h"

#include "error.h"
#include "io.h"
#include "safetensors.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace ms {
namespace {

std::vector<std::string> search_path(const char* env_var, const char* folder) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv(env_var)) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = list.find(':', start);
      const std::string dir = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (!dir.empty()) dirs.push_back(dir);
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  dirs.push_back(std::string("./") + folder);
  dirs.push_back(std::string("../shared/") + folder);
  return dirs;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

const char* kWeightNames[] = {"model.safetensors", "pytorch_model.bin", "model.pth"};

CheckpointLocation from_folder(const fs::path& dir) {
  CheckpointLocation loc;
  const fs::path config = dir / "config.json";
  if (!is_regular_file(config.string())) fail(dir.string(), "model folder has no config.json");
  loc.config_path = config.string();
  for (const char* name : kWeightNames)
    if (is_regular_file((dir / name).string())) {
      loc.weights_path = (dir / name).string();
      return loc;
    }
  fail(dir.string(), "model folder has no weights (expected model.safetensors, pytorch_model.bin or model.pth)");
}

}  // namespace

std::vector<std::string> model_search_path() { return search_path("MERGESCOPE_MODELS", "models"); }
std::vector<std::string> data_search_path() { return search_path("MERGESCOPE_DATA", "data"); }

std::string find_data_file(const std::string& relative) {
  const auto dirs = data_search_path();
  for (const auto& dir : dirs) {
    const fs::path p = fs::path(dir) / relative;
    if (fs::exists(p)) return p.string();
  }
  fail(relative, "not found; looked in " + join(dirs));
}

CheckpointLocation locate_model(const std::string& spec) {
  if (spec.empty()) fail("--model", "empty model name");
  if (is_directory(spec)) return from_folder(spec);
  if (is_regular_file(spec)) {
    CheckpointLocation loc;
    loc.weights_path = spec;
    const fs::path config = fs::path(spec).parent_path() / "config.json";
    if (is_regular_file(config.string())) loc.config_path = config.string();
    return loc;
  }
  const auto dirs = model_search_path();
  std::vector<std::string> tried;
  for (const auto& dir : dirs) {
    const fs::path candidate = fs::path(dir) / spec;
    if (is_directory(candidate.string())) return from_folder(candidate);
    // An absolute spec is the same path under every folder: list each place once.
    if (std::find(tried.begin(), tried.end(), candidate.string()) == tried.end()) tried.push_back(candidate.string());
  }
  fail(spec, "model not found; looked in " + join(tried) + " (set MERGESCOPE_MODELS to add folders)");
}

StateDict read_state_dict(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".safetensors") return read_safetensors(path).tensors;
  if (ext == ".pth" || ext == ".pt" || ext == ".bin") return read_pth_state_dict(path);
  fail(path, "unknown weights format '" + excerpt(ext) + "' (expected .safetensors, .pth, .pt or .bin)");
}

}  // namespace ms
