// The analytical cost model (DESIGN.md), the one formula every cost figure comes from: `eval`, `bench`, `trace`,
// --match-macs, the app, and calibrate's differentiable MACs ratio. Per block with n tokens entering attention,
// m leaving the reduction (entering the MLP), width C and MLP hidden width H: qkv and proj 4nC^2, QK^T and AV
// 2n^2C, MLP 2mCH multiply-accumulates; plus the patch embedding, the head and the reducer's own similarity
// matrices. A reducer acting before the attention (MCTF) computes q, k and QK^T on the n tokens entering and v,
// proj and PV on the m it keeps; one acting after the MLP (DCT) runs the whole block on n. Figures are MACs, which is
// what the ToMe and PiToMe papers (and fvcore) report as "FLOPs"; multiply by 2 for floating-point operations.
#pragma once

#include <vector>

namespace ms {

struct VitConfig;
class Reducer;

// One block's MACs by part. T is double, or a tensor of (expected) token counts for calibrate's gradient.
template <class T>
struct BlockMacs {
  T projections;  // qkv and proj: 4 n C^2
  T attention;    // QK^T and AV: 2 n^2 C
  T mlp;          // fc1 and fc2: 2 m C H
};
template <class T>
BlockMacs<T> block_macs(const T& tokens_in, const T& tokens_out, double width, double hidden) {
  return {4 * tokens_in * width * width, 2 * tokens_in * tokens_in * width, 2 * tokens_out * width * hidden};
}

// Patch embedding and head(s) of one image: the part of the cost no reducer changes.
double embed_macs(const VitConfig& config);
double head_macs(const VitConfig& config);

struct CostBreakdown {
  double embed = 0, attention = 0, mlp = 0, head = 0, matching = 0;  // MACs per image
  std::vector<double> per_layer;                                     // block MACs incl. matching
  double total() const { return embed + attention + mlp + head + matching; }
  double gmacs() const { return total() * 1e-9; }
};

// Cost of one image when block l passes tokens_out[l] tokens to its MLP (and so to block l + 1); blocks past the
// end of tokens_out keep their tokens. The reducer's matching counts in blocks that reduce.
CostBreakdown model_cost(const VitConfig& config, const std::vector<int>& tokens_out, const Reducer* reducer);

}  // namespace ms
