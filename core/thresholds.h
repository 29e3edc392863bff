// Learned thresholds of the LTP and LTMP reducers: per block a merge threshold (LTMP only) on ToMe's best
// A->B key similarity and a prune threshold on the attention a token receives. Plain data, no LibTorch.
//
// JSON file (written by `mergescope-cli calibrate`, read by `ltmp:thresholds=FILE` / `ltp:thresholds=FILE`):
//   {"format": "mergescope-thresholds", "method": "ltmp", "model": "...",
//    "blocks": [{"merge": 0.93, "prune": 0.0021}, ...],          // one entry per block; ltp: "prune" only
//    "calibration": {...}}                                        // how they were learned (informational)
// A threshold may be the string "inf" or "-inf": merge=inf never merges, prune=-inf never prunes.
// LTMP's own checkpoints (.pth or .safetensors) are read too: blocks.{l}.merge_masker.threshold and
// blocks.{l}.prune_masker.threshold, one-element tensors.
#pragma once

#include <string>
#include <vector>

namespace ms {

struct LearnedThresholds {
  std::string method;         // "ltmp" or "ltp"
  std::vector<double> merge;  // per block, LTMP only (empty for LTP); a token merges when similarity > merge
  std::vector<double> prune;  // per block; a token is kept when its importance > prune
  std::string model;          // the model they were learned on, informational ("" when unknown)
  std::string calibration;    // JSON text describing the calibration run, informational
  int depth() const { return static_cast<int>(prune.size()); }
};

// Reads a thresholds JSON file or an LTMP/LTP checkpoint (.pth, .bin, .safetensors) for `method`.
// Throws ms::Error("<path>: <problem>") for unreadable files, wrong method, missing or non-numeric values.
LearnedThresholds load_thresholds(const std::string& path, const std::string& method);

// Writes the JSON form; throws ms::Error naming the path when it cannot be written.
void save_thresholds(const std::string& path, const LearnedThresholds& thresholds);

// Throws ms::Error("<source>: ...") unless there is one threshold per block of a `depth`-block model.
void check_threshold_depth(const LearnedThresholds& thresholds, int depth, const std::string& source);

}  // namespace ms
