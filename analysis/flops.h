// MACs matching: token counts predicted from a method alone, and the PiToMe keep ratio that meets a cost. The
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

// The `pitome`/`pitome-code` keep ratio whose predicted MACs come closest to `target_gmacs`.
double match_pitome_ratio(const VitConfig& config, const std::string& method, double target_gmacs);

}  // namespace ms
