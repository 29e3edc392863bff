#include "cost.h"

#include "config.h"
#include "reduce/reducer.h"

namespace ms {

double embed_macs(const VitConfig& c) {
  const double P = c.patch_size;
  return static_cast<double>(c.num_patches()) * c.embed_dim * c.in_chans * P * P;
}

double head_macs(const VitConfig& c) {
  return static_cast<double>(c.embed_dim) * c.num_classes * (c.distilled ? 2 : 1);
}

CostBreakdown model_cost(const VitConfig& c, const std::vector<int>& tokens_out, const Reducer* reducer) {
  CostBreakdown cost;
  cost.embed = embed_macs(c);
  cost.head = head_macs(c);
  double n_in = c.num_tokens();
  const ReducerStage stage = reducer ? reducer->stage() : ReducerStage::AfterAttention;
  const double C = c.embed_dim;
  for (int l = 0; l < c.depth; ++l) {
    const double n_out = l < static_cast<int>(tokens_out.size()) ? tokens_out[l] : n_in;
    BlockMacs<double> block = block_macs(n_in, n_out, C, c.mlp_hidden());
    if (stage == ReducerStage::AfterMlp) {  // the whole block runs on the tokens entering it (DCT)
      block.mlp = block_macs(n_in, n_in, C, c.mlp_hidden()).mlp;
    } else if (stage == ReducerStage::BeforeAttention) {
      // MCTF: q, k and QK^T on the tokens entering; v, proj and P'V on the fused tokens
      block.projections = 2 * n_in * C * C + 2 * n_out * C * C;
      block.attention = n_in * n_in * C + n_out * n_out * C;
    }
    const double attn = block.projections + block.attention;
    const double match = reducer ? reducer->matching_macs(static_cast<int>(n_in), static_cast<int>(n_out),
                                                          c.num_prefix_tokens(), c.head_dim(), c.embed_dim)
                                 : 0.0;
    cost.attention += attn;
    cost.mlp += block.mlp;
    if (n_out < n_in) cost.matching += match;  // a block that merges nothing computes no matching either
    cost.per_layer.push_back(attn + block.mlp + (n_out < n_in ? match : 0.0));
    n_in = n_out;
  }
  return cost;
}

}  // namespace ms
