// Shared by the learned-threshold reducers (ltp.cpp, ltmp.cpp) and their calibration (core/calibrate.cpp).
//
// Importance of a token = the attention it receives, averaged over heads and queries (LTP, Kim et al.
// KDD 2022, Eq. 3; LTMP, Bonnaerens & Dambre 2023, Eq. 2). Prefix tokens (CLS, distillation token) are never
// pruned or merged. A token is kept when importance > prune threshold and an A token merges into its most
// similar B when that similarity > merge threshold (LTMP's hard masks at inference).
//
// Variable token counts: how many tokens survive depends on the image, so the engine runs these reducers one
// image at a time (groups of one, see engine.cpp) and plan() requires every image of a batch to keep the same
// count. No padding: pruned tokens really leave the tensor.
#pragma once

#include "reducer.h"
#include "thresholds.h"

#include <ATen/core/Tensor.h>

#include <string>

namespace ms::reduce {

// attn [B,H,N,N] -> importance [B,N] (mean over heads and queries).
at::Tensor attention_importance(const at::Tensor& attn);

// Reads thresholds=FILE and the inline constants merge=V / prune=V (which replace that kind for every
// block; "inf" and "-inf" allowed) from a spec. With constants only, resolve(depth) makes the per-block values.
struct LearnedSpec {
  LearnedThresholds thresholds;  // per block; empty vectors when only constants are given (filled at plan time)
  bool has_file = false;
  std::string file;
  bool has_merge_constant = false, has_prune_constant = false;
  double merge_constant = 0, prune_constant = 0;
  std::string canonical;  // e.g. "ltmp:thresholds=th.json"
  // Per-block thresholds for a `depth`-block model (constants expanded); throws on a depth mismatch.
  LearnedThresholds resolve(int depth) const;
};
LearnedSpec parse_learned_spec(ReducerSpec& spec, const std::string& method);

}  // namespace ms::reduce
