// The engine: runs a Model on a batch with a token reducer acting in every block, and records traces.
#pragma once

#include "model.h"
#include "reduce/reducer.h"
#include "trace.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace ms {

struct RunOptions {
  bool trace = false;         // record cluster_of_token and sizes per layer
  bool trace_energy = false;  // also PiToMe energies: the method's own (pitome, pitome-code), else the released code's
  bool released_energy = false;  // with trace_energy: the released code's energy for every method, pitome's too, so
                                 // that all methods read on one scale (the spectral report's histograms)
  bool trace_keys = false;       // also the block keys averaged over heads (large: N x head_dim per layer)
};

struct RunResult {
  at::Tensor logits;                               // [B, classes]
  std::vector<int> tokens_per_layer;               // tokens leaving each block (image-dependent reducers: rounded mean)
  std::vector<std::vector<int>> tokens_per_image;  // per image, tokens leaving each block (use for costs)
  std::vector<ImageTrace> traces;                  // one per image when options.trace
  double block_seconds = 0;                        // wall time inside the blocks
  double reducer_seconds = 0;                      // of which planning and applying reductions
  double attention_seconds = 0;                    // of which attention branches (LayerNorm, qkv, softmax, proj)
  double mlp_seconds = 0;                          // of which MLP branches
};

// Runs images [B,3,H,W] through `model` with `reducer` (nullptr: no reduction). Reducers whose token counts
// depend on the image (predict_tokens < 0: ltp, ltmp) run one image at a time, so every image keeps exactly
// the tokens its thresholds select (grouping by image, no padding); results are concatenated in order.
RunResult run(const Model& model, const at::Tensor& images, Reducer* reducer, const RunOptions& options = {});

// Throws ms::Error("<model source>: ...") unless every logit is finite: NaN or inf from a model would otherwise
// print as "-nan%". `images` names the batch's rows (or is empty) so that the message names the first image
// whose logits are not finite. One isfinite().all() per batch when all is well.
void check_finite_logits(const at::Tensor& logits, const Model& model, const std::vector<std::string>& images = {});

// Applies a plan: size-weighted means of the tokens sharing a slot; returns the merged x and sizes.
// Tokens whose slot is -1 are dropped.
std::pair<at::Tensor, at::Tensor> apply_plan(const at::Tensor& x, const at::Tensor& size, const at::Tensor& dest,
                                             int64_t tokens);
// Sizes only: the member counts of the slots of a plan (pruned tokens, slot -1, count nowhere).
at::Tensor merge_sizes(const at::Tensor& size, const at::Tensor& dest, int64_t tokens);
// The same with ATen scatter_add on any device: what apply_plan runs off the CPU fast path (also its test reference).
std::pair<at::Tensor, at::Tensor> apply_plan_aten(const at::Tensor& x, const at::Tensor& size, const at::Tensor& dest,
                                                  int64_t tokens);

// The released PiToMe code's energy (reduce/ops.h) of every token of block `layer` (prefix tokens: NaN), for the
// trace of methods that don't compute it.
at::Tensor reference_energy(const at::Tensor& keys_mean, int prefix_tokens, int layer, int depth);

}  // namespace ms
