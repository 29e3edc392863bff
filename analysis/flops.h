// MACs matching: token counts predicted from a method alone, and the strength of a method that meets a cost. The
// cost model itself (MACs per block, model_cost) is core/cost.h, which calibration uses too.
#pragma once

#include "cost.h"

#include <string>
#include <vector>

namespace ms {

struct VitConfig;
class Reducer;

// Token counts leaving each block, predicted from the method alone; empty when they depend on the image.
std::vector<int> predicted_tokens(const VitConfig& config, const Reducer& reducer);

// Methods whose strength --match-macs can set: the key it sets (r, ratio, keep), empty for other methods.
std::string matchable_strength(const std::string& method);
// The spec of `method` (a bare name with matchable_strength) whose predicted MACs come closest to
// `target_gmacs`: integers (r) by scanning every value, ratios and keep rates on a 1e-4 grid (token counts are step
// functions of them, so the grid finds every step). E.g. "tofu:ratio=0.9050", "mctf:r=13".
std::string match_strength(const VitConfig& config, const std::string& method, double target_gmacs);

}  // namespace ms
