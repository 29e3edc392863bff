// Analytical cost per image from real token counts (DESIGN.md): per block with N tokens and width C,
// qkv 3NC^2, QK^T and AV 2N^2C, proj NC^2, MLP 2NC*hidden multiply-accumulates, plus patch embedding,
// head and the reducer's own similarity computations. Figures are MACs, which is what the ToMe and
// PiToMe papers (and fvcore) report as "FLOPs"; multiply by 2 for floating-point operations.
#pragma once

#include <string>
#include <vector>

namespace ms {

struct VitConfig;
class Reducer;

struct CostBreakdown {
  double embed = 0, attention = 0, mlp = 0, head = 0, matching = 0;  // MACs per image
  std::vector<double> per_layer;                                     // block MACs incl. matching
  double total() const { return embed + attention + mlp + head + matching; }
  double gmacs() const { return total() * 1e-9; }
};

// Cost when block l receives tokens_in[l] tokens and passes tokens_out[l] to its MLP.
CostBreakdown model_cost(const VitConfig& config, const std::vector<int>& tokens_out, const Reducer* reducer);

// Token counts leaving each block, predicted from the method alone; empty when they depend on the image.
std::vector<int> predicted_tokens(const VitConfig& config, const Reducer& reducer);

// The `pitome`/`pitome-code` keep ratio whose predicted MACs come closest to `target_gmacs`.
double match_pitome_ratio(const VitConfig& config, const std::string& method, double target_gmacs);

}  // namespace ms
