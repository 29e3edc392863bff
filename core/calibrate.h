// Learning the thresholds of the LTP and LTMP reducers on a frozen model, with LibTorch autograd on the CPU.
//
// Training runs a masked forward: nothing is removed, every block computes a keep mask per token and
// attention ignores masked keys (masked softmax), so a threshold's effect on the loss is differentiable.
// Masks are either straight-through (forward: the hard inference decision; backward: the gradient of
// sigmoid((score - threshold) / tau)), as LTMP trains, or soft sigmoids, as LTP's soft stage. With hard
// masks the masked forward computes exactly what the ltp/ltmp reducers compute at inference (tested).
//
// MACs ratio (the LTMP paper's "FLOPs ratio") = MACs per image from the expected token counts (sum of masks),
// with the cost model of core/cost.h (patch embedding + blocks + head, no matching cost), divided by the
// unreduced model's MACs; averaged over the images of a batch. Differentiable in the masks.
#pragma once

#include "thresholds.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ms {

class Model;

struct MaskOptions {
  bool straight_through = true;  // hard forward + sigmoid gradient (LTMP); false: soft sigmoid masks (LTP)
  double tau_merge = 0.1;        // sigmoid temperature of the merge masks (similarity units)
  double tau_prune = 0.1;        // sigmoid temperature of the prune masks (importance units)
};

struct MaskedForward {
  at::Tensor logits;      // [B, classes]
  at::Tensor macs_ratio;  // scalar, mean over images of MACs(expected counts) / unreduced MACs
  at::Tensor mask_mean;   // scalar, LTP's penalty: kept fraction of the original tokens, mean over blocks
  at::Tensor tokens;      // [B, depth] expected tokens leaving each block (sum of keep masks)
};

// The differentiable masked forward of `method` ("ltmp" or "ltp") with per-block thresholds `merge` [depth]
// (ltmp; ignored for ltp) and `prune` [depth] (float tensors, may require grad). Throws ms::Error for
// models it cannot train (average pooling).
MaskedForward masked_forward(const Model& model, const at::Tensor& images, const std::string& method,
                             const at::Tensor& merge, const at::Tensor& prune, const MaskOptions& masks);

struct CalibrationOptions {
  std::string method = "ltmp";  // "ltmp" or "ltp"
  double target_macs = 0.6;     // wanted MACs ratio to the unreduced model
  double lambda = 10;           // LTMP: weight of (target - ratio)^2; LTP: initial weight of the mask mean
  double lambda_rate = 0;       // LTP: dual ascent on lambda, lambda += rate * (ratio - target) per step
  bool distill = false;         // task loss: KL to the unreduced model's output instead of cross-entropy
  int epochs = 1;
  int batch = 8;
  double lr_merge = 0.005, lr_prune = 0.005;  // SGD, cosine schedule over all steps, no momentum
  double merge_init = 0.9, prune_init = 0.0;
  MaskOptions masks;
  uint64_t seed = 0;  // image order
};

struct CalibrationStep {
  int step = 0, steps = 0;
  size_t images_done = 0, images_total = 0;
  double loss = 0, task_loss = 0, macs_ratio = 0, lambda = 0;
  double running_loss = 0, running_macs_ratio = 0;  // means over the steps so far in this epoch
};

struct CalibrationResult {
  LearnedThresholds thresholds;
  std::vector<CalibrationStep> steps;
  double seconds = 0;
};

// Learns thresholds on preprocessed `images` [N,3,H,W] with `labels` [N] (int64 class indices; unused with
// distill). `progress` is called after every step.
CalibrationResult calibrate(const Model& model, const at::Tensor& images, const at::Tensor& labels,
                            const CalibrationOptions& options,
                            const std::function<void(const CalibrationStep&)>& progress = {});

}  // namespace ms
