#include "thresholds.h"

#include "checkpoint.h"
#include "error.h"
#include "io.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace ms {
namespace {

// Threshold files hold a few numbers per block and a short calibration record (a few KB).
constexpr uint64_t kMaxThresholdsJsonBytes = 1 << 20;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double threshold_value(const nlohmann::json& v, const std::string& path, const std::string& what) {
  if (v.is_number()) {
    const double d = v.get<double>();
    if (std::isnan(d)) fail(path, what + " is NaN");
    return d;
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "inf" || s == "+inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  fail(path, what + " is " + describe_json(v) + ", expected a number, \"inf\" or \"-inf\"");
}

nlohmann::json threshold_json(double v) {
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

LearnedThresholds load_json(const std::string& path, const std::string& method) {
  if (!std::ifstream(path)) fail(path, "cannot open thresholds file");
  const std::vector<char> text = read_file(path, kMaxThresholdsJsonBytes, "thresholds file");
  check_json_depth(text.data(), text.data() + text.size(), path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    fail(path, "not valid JSON (" + excerpt(one_line(e), 160) + ")");
  }
  if (!j.is_object() || !j.contains("blocks")) fail(path, "not a thresholds file (no \"blocks\" list)");
  LearnedThresholds t;
  t.method = j.contains("method") && j["method"].is_string() ? j["method"].get<std::string>() : method;
  if (t.method != method)
    fail(path, "holds " + excerpt(t.method) + " thresholds, but the method is " + method +
                   (t.method == "ltmp" ? " (use ltmp:thresholds=" + path + ")" : ""));
  if (j.contains("model") && j["model"].is_string()) t.model = j["model"].get<std::string>();
  // Informational; dumping it is safe only because the depth and size were bounded above.
  if (j.contains("calibration")) t.calibration = j["calibration"].dump();
  const nlohmann::json& blocks = j["blocks"];
  if (!blocks.is_array() || blocks.empty()) fail(path, "\"blocks\" must be a non-empty list, one entry per block");
  for (size_t l = 0; l < blocks.size(); ++l) {
    const std::string where = "block " + std::to_string(l);
    if (!blocks[l].is_object()) fail(path, where + " is not an object like {\"merge\": 0.9, \"prune\": 0.002}");
    for (const auto& [key, value] : blocks[l].items())
      if (key != "prune" && key != "merge")
        fail(path, where + ": unknown key '" + excerpt(key) + "' (expected merge, prune)");
    if (!blocks[l].contains("prune")) fail(path, where + " has no \"prune\" threshold");
    t.prune.push_back(threshold_value(blocks[l]["prune"], path, where + " prune"));
    if (method == "ltmp") {
      if (!blocks[l].contains("merge")) fail(path, where + " has no \"merge\" threshold (an ltmp file needs both)");
      t.merge.push_back(threshold_value(blocks[l]["merge"], path, where + " merge"));
    } else if (blocks[l].contains("merge")) {
      fail(path, where + " has a \"merge\" threshold; ltp only prunes (use ltmp:thresholds=" + path + ")");
    }
  }
  return t;
}

// LTMP's reduced checkpoints: blocks.{l}.merge_masker.threshold / blocks.{l}.prune_masker.threshold.
LearnedThresholds load_checkpoint(const std::string& path, const std::string& method) {
  const StateDict dict = read_state_dict(path);
  LearnedThresholds t;
  t.method = method;
  auto scalar = [&](const std::string& key) {
    const at::Tensor& v = dict.at(key);
    if (v.numel() != 1) fail(path, "tensor '" + key + "' has " + std::to_string(v.numel()) + " values, expected 1");
    const double d = v.to(at::kDouble).item<double>();
    if (std::isnan(d)) fail(path, "tensor '" + key + "' is NaN");
    return d;
  };
  int depth = 0;
  while (dict.count("blocks." + std::to_string(depth) + ".prune_masker.threshold") ||
         dict.count("blocks." + std::to_string(depth) + ".merge_masker.threshold"))
    ++depth;
  if (depth == 0)
    fail(path, "no learned thresholds in this checkpoint (expected blocks.0.prune_masker.threshold" +
                   std::string(method == "ltmp" ? " and blocks.0.merge_masker.threshold)" : ")"));
  for (int l = 0; l < depth; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    if (!dict.count(p + "prune_masker.threshold")) fail(path, "missing tensor '" + p + "prune_masker.threshold'");
    t.prune.push_back(scalar(p + "prune_masker.threshold"));
    const bool has_merge = dict.count(p + "merge_masker.threshold") > 0;
    if (method == "ltmp") {
      if (!has_merge) fail(path, "missing tensor '" + p + "merge_masker.threshold' (an ltmp checkpoint needs both)");
      t.merge.push_back(scalar(p + "merge_masker.threshold"));
    } else if (has_merge) {
      fail(path, "has merge thresholds ('" + p +
                     "merge_masker.threshold'); ltp only prunes (use ltmp:thresholds=" + path + ")");
    }
  }
  for (const auto& [key, value] : dict)
    if (key.rfind("blocks.", 0) == 0 && ends_with(key, "_masker.threshold")) {
      const int l = std::atoi(key.c_str() + 7);
      if (l >= depth)
        fail(path, "tensor '" + key + "' but block " + std::to_string(depth) + " has none (blocks must be 0.." +
                       std::to_string(depth - 1) + ")");
    }
  t.calibration = "{\"imported_from\": \"checkpoint\"}";
  return t;
}

}  // namespace

LearnedThresholds load_thresholds(const std::string& path, const std::string& method) {
  if (method != "ltmp" && method != "ltp") fail(path, "thresholds are for ltmp or ltp, not " + method);
  return with_file_errors(path, [&] {
    if (ends_with(path, ".pth") || ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".safetensors"))
      return load_checkpoint(path, method);
    return load_json(path, method);
  });
}

void save_thresholds(const std::string& path, const LearnedThresholds& t) {
  nlohmann::json j;
  j["format"] = "mergescope-thresholds";
  j["method"] = t.method;
  if (!t.model.empty()) j["model"] = t.model;
  nlohmann::json blocks = nlohmann::json::array();
  for (size_t l = 0; l < t.prune.size(); ++l) {
    nlohmann::json b;
    if (t.method == "ltmp") b["merge"] = threshold_json(t.merge.at(l));
    b["prune"] = threshold_json(t.prune[l]);
    blocks.push_back(b);
  }
  j["blocks"] = blocks;
  if (!t.calibration.empty()) j["calibration"] = nlohmann::json::parse(t.calibration);
  std::ofstream f(path);
  if (!f) fail(path, "cannot open for writing");
  f << j.dump(2) << '\n';
  if (!f) fail(path, "write failed");
}

void check_threshold_depth(const LearnedThresholds& t, int depth, const std::string& source) {
  if (t.depth() != depth)
    fail(source, "has thresholds for " + std::to_string(t.depth()) + " blocks, but the model has " +
                     std::to_string(depth) + " (thresholds are learned per model)");
  if (t.method == "ltmp" && static_cast<int>(t.merge.size()) != depth)
    fail(source,
         "has " + std::to_string(t.merge.size()) + " merge thresholds for " + std::to_string(depth) + " blocks");
}

}  // namespace ms
