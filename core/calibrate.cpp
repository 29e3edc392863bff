// Threshold learning for LTP / LTMP (see calibrate.h). Facts used, from the papers and their released code:
//  - LTMP (Bonnaerens & Dambre 2023): per block a merge threshold (init 0.9) on ToMe's best A->B key
//    similarity and a prune threshold (init 0) on attention received; merged tokens take their members'
//    maximum importance; straight-through masks m = hard + sigmoid((s - theta) / tau) - sg(sigmoid(...));
//    masked softmax exp(a_j) m_j / sum_k exp(a_k) m_k; loss = CE + lambda (target - r_FLOPs)^2 with
//    r_FLOPs (a MACs ratio here) from expected token counts; SGD on the thresholds only, clamped to [0, 1].
//  - LTP (Kim et al. KDD 2022): soft masks sigmoid((s - theta) / T) during learning, penalty lambda * mean
//    of the masks, hard pruning at inference.
// The masked forward keeps every token in the tensor but reproduces the inference order exactly: after a
// merge step tokens are re-sorted to [prefix, unmerged A, B, masked], so the next block's alternating A/B
// split over the *kept* tokens is the one the reducer makes on the compacted sequence.
#include "calibrate.h"

#include "config.h"
#include "cost.h"
#include "error.h"
#include "model.h"
#include "reduce/ops.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace ms {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Keep gate for score - threshold = v: hard (v > 0) in the forward pass with the sigmoid's gradient, or the
// sigmoid itself. hard + (soft - sg(soft)) keeps the forward value exactly 0 or 1.
at::Tensor gate(const at::Tensor& v, double tau, bool straight_through) {
  const at::Tensor soft = at::sigmoid(v / tau);
  if (!straight_through) return soft;
  return (v > 0).to(v.scalar_type()) + (soft - soft.detach());
}

// softmax over keys with key weights `mask` [B,N]: exp(a_j) m_j / sum_k exp(a_k) m_k. The shift uses only
// keys with m > 0, and masked keys' exponents are capped at 0 so they cannot overflow.
at::Tensor masked_softmax(const at::Tensor& logits, const at::Tensor& mask) {
  const at::Tensor key_mask = mask.unsqueeze(1).unsqueeze(1);  // [B,1,1,N]
  const at::Tensor shift = logits.detach().masked_fill(key_mask.detach() <= 0, -kInf).amax(-1, true);
  const at::Tensor e = at::exp(at::clamp_max(logits - shift, 0.0)) * key_mask;
  return e / e.sum(-1, true);
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() ? at::addmm(b, x.reshape({-1, x.size(-1)}), w.t()).view({x.size(0), x.size(1), w.size(0)})
                     : at::matmul(x, w.t());
}

}  // namespace

MaskedForward masked_forward(const Model& model, const at::Tensor& images, const std::string& method,
                             const at::Tensor& merge, const at::Tensor& prune, const MaskOptions& opts) {
  const VitConfig& c = model.config();
  if (method != "ltmp" && method != "ltp") fail("calibrate", "method must be ltmp or ltp, not '" + method + "'");
  if (c.global_pool == "avg")
    fail(model.source(), "average-pooling models are not supported by calibrate (the head would need a masked mean)");
  const bool ltmp = method == "ltmp";
  const int64_t Hh = c.num_heads, D = c.head_dim(), C = c.embed_dim, L = c.depth;
  const int prefix = c.num_prefix_tokens();
  if (prune.numel() != L || (ltmp && merge.numel() != L))
    fail("calibrate", "need one threshold per block (" + std::to_string(L) + ")");

  at::Tensor x = model.embed(images);
  const int64_t B = x.size(0), N = x.size(1);
  const auto fopts = x.options();
  at::Tensor size = at::ones({B, N}, fopts);
  at::Tensor mask = at::ones({B, N}, fopts);
  const at::Tensor positions = at::arange(N, at::TensorOptions().dtype(at::kLong));
  const at::Tensor is_prefix = (positions < prefix).unsqueeze(0).expand({B, N});
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));

  // Cost per image with the cost model (core/cost.h) as a function of expected token counts; the reducer's
  // matching is left out of the training ratio.
  const double hidden = c.mlp_hidden();
  const double unreduced = model_cost(c, {}, nullptr).total();
  at::Tensor cost = at::full({B}, embed_macs(c) + head_macs(c), fopts);
  at::Tensor n_in = at::full({B}, static_cast<double>(N), fopts);
  std::vector<at::Tensor> kept_per_block;

  for (int64_t l = 0; l < L; ++l) {
    const BlockWeights& w = model.block(static_cast<int>(l));
    // Attention with masked softmax (+ log size on the keys for LTMP: proportional attention).
    const at::Tensor h = at::layer_norm(x, {C}, w.norm1_w, w.norm1_b, c.norm_eps);
    const at::Tensor qkv = linear(h, w.qkv_w, w.qkv_b).view({B, N, 3, Hh, D}).permute({2, 0, 3, 1, 4});
    const at::Tensor q = qkv[0], k = qkv[1], v = qkv[2];  // [B,H,N,D]
    at::Tensor logits = at::matmul(q, k.transpose(-2, -1)) * scale;
    if (ltmp) logits = logits + size.log().unsqueeze(1).unsqueeze(1);
    const at::Tensor probs = masked_softmax(logits, mask);
    at::Tensor y = linear(at::matmul(probs, v).transpose(1, 2).reshape({B, N, C}), w.proj_w, w.proj_b);
    if (w.ls1.defined()) y = y * w.ls1;
    x = x + y;

    // Importance: attention received, mean over heads and over the kept queries (as the compacted
    // sequence at inference, where pruned tokens are no queries).
    const at::Tensor query_w = mask.detach();
    at::Tensor importance = (probs.mean(1) * query_w.unsqueeze(2)).sum(1) / query_w.sum(1, true);

    if (ltmp) {
      const at::Tensor kept = mask.detach() > 0.5;
      const at::Tensor rank = at::cumsum(kept.to(at::kLong), 1) - 1;
      const at::Tensor is_a = kept & (rank.remainder(2) == 0), is_b = kept & (rank.remainder(2) == 1);
      const at::Tensor row_ok = is_a & ~is_prefix;                                   // CLS never merges
      const at::Tensor col_ok = is_b & ~(is_prefix & (positions > 0).unsqueeze(0));  // nor the distillation token
      // ToMe's best B for every A among the kept tokens (reduce/ops.h), the other pairs masked out.
      const at::Tensor metric = reduce::normalize(k.mean(1));
      const at::Tensor sim =
          reduce::similarities(metric, metric).masked_fill(~(row_ok.unsqueeze(2) & col_ok.unsqueeze(1)), -kInf);
      const reduce::RowBest best = reduce::row_best(sim, false);
      const at::Tensor &node_max_raw = best.value, &node_idx_raw = best.index;
      const at::Tensor can_merge = row_ok & col_ok.any(1, true);
      const at::Tensor node_max = at::where(can_merge, node_max_raw, at::zeros_like(node_max_raw));
      const at::Tensor node_idx = at::where(can_merge, node_idx_raw, at::zeros_like(node_idx_raw));
      const at::Tensor merge_gate =
          gate(node_max - merge[l], opts.tau_merge, opts.straight_through) * can_merge.to(x.scalar_type());
      const at::Tensor merged = merge_gate.detach() > 0.5;

      // Size-weighted merge into B with the (detached) gate as weight, as LTMP's code; A keeps 1 - gate.
      const at::Tensor weight = merge_gate.detach();
      const at::Tensor xs = x * size.unsqueeze(2);
      const at::Tensor xs_merged = xs.scatter_add(1, node_idx.unsqueeze(2).expand({B, N, C}), xs * weight.unsqueeze(2));
      size = size.scatter_add(1, node_idx, size * weight);
      x = xs_merged / size.unsqueeze(2);
      mask = mask * (1 - merge_gate);
      // A merged token's importance: its members' maximum.
      const at::Tensor into = merged.unsqueeze(2) & (node_idx.unsqueeze(2) == positions.view({1, 1, N}));
      const at::Tensor from_merged = importance.unsqueeze(2).expand({B, N, N}).masked_fill(~into, -kInf).amax(1);
      importance = at::maximum(importance, from_merged);

      // Re-sort to the inference order [prefix, unmerged A, B, the rest].
      const at::Tensor group = at::where(is_prefix, at::zeros_like(rank),
                                         at::where(is_a & ~merged, at::ones_like(rank),
                                                   at::where(is_b, at::full_like(rank, 2), at::full_like(rank, 3))));
      const at::Tensor order = std::get<1>((group * N + positions.unsqueeze(0)).sort(1));
      x = x.gather(1, order.unsqueeze(2).expand({B, N, C}));
      size = size.gather(1, order);
      mask = mask.gather(1, order);
      importance = importance.gather(1, order);
    }

    // Prune on importance; prefix tokens (first positions in every order) always stay.
    const at::Tensor keep =
        at::where(is_prefix, at::ones_like(mask), gate(importance - prune[l], opts.tau_prune, opts.straight_through));
    mask = mask * keep;

    const at::Tensor n_out = mask.sum(1);
    const BlockMacs<at::Tensor> block = block_macs(n_in, n_out, static_cast<double>(C), hidden);
    cost = cost + block.projections + block.attention + block.mlp;
    kept_per_block.push_back(n_out);
    n_in = n_out;

    // MLP (out of place: autograd needs the pre-activation).
    const at::Tensor h2 = at::layer_norm(x, {C}, w.norm2_w, w.norm2_b, c.norm_eps);
    at::Tensor m = linear(at::gelu(linear(h2, w.fc1_w, w.fc1_b)), w.fc2_w, w.fc2_b);
    if (w.ls2.defined()) m = m * w.ls2;
    x = x + m;
  }
  MaskedForward out;
  out.logits = model.head(x);  // prefix tokens stay at the first positions
  out.tokens = at::stack(kept_per_block, 1);
  out.macs_ratio = (cost / unreduced).mean();
  out.mask_mean = (out.tokens / static_cast<double>(N)).mean();
  return out;
}

CalibrationResult calibrate(const Model& model, const at::Tensor& images, const at::Tensor& labels,
                            const CalibrationOptions& o, const std::function<void(const CalibrationStep&)>& progress) {
  const VitConfig& c = model.config();
  const bool ltmp = o.method == "ltmp";
  const int64_t n = images.size(0), L = c.depth;
  if (n == 0) fail("calibrate", "no images");
  if (o.batch < 1 || o.epochs < 1) fail("calibrate", "batch and epochs must be positive");
  const auto start = std::chrono::steady_clock::now();
  at::AutoGradMode grad_on(true);

  at::Tensor merge = at::full({L}, o.merge_init, at::kFloat).set_requires_grad(ltmp);
  at::Tensor prune = at::full({L}, o.prune_init, at::kFloat).set_requires_grad(true);

  at::Tensor teacher;  // log-probabilities of the unreduced model, once per image
  if (o.distill) {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> parts;
    for (int64_t s = 0; s < n; s += 32)
      parts.push_back(at::log_softmax(model.forward(images.slice(0, s, std::min(n, s + 32))), -1));
    teacher = at::cat(parts, 0);
  }

  std::mt19937_64 rng(o.seed);
  const int64_t per_epoch = (n + o.batch - 1) / o.batch;
  const int64_t total_steps = per_epoch * o.epochs;
  double lambda = o.lambda;
  CalibrationResult result;
  int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    double loss_sum = 0, ratio_sum = 0;
    for (int64_t b = 0; b < per_epoch; ++b, ++step) {
      const int64_t lo = b * o.batch, hi = std::min(n, lo + o.batch);
      const at::Tensor idx = at::tensor(std::vector<int64_t>(order.begin() + lo, order.begin() + hi), at::kLong);
      const at::Tensor x = images.index_select(0, idx);
      const MaskedForward f = masked_forward(model, x, o.method, merge, prune, o.masks);
      const at::Tensor log_p = at::log_softmax(f.logits, -1);
      const at::Tensor task =
          o.distill ? (teacher.index_select(0, idx).exp() * (teacher.index_select(0, idx) - log_p)).sum(-1).mean()
                    : at::nll_loss(log_p, labels.index_select(0, idx));
      const at::Tensor penalty = ltmp ? at::pow(o.target_macs - f.macs_ratio, 2) * o.lambda : f.mask_mean * lambda;
      const at::Tensor loss = task + penalty;
      if (merge.grad().defined()) merge.mutable_grad().zero_();
      if (prune.grad().defined()) prune.mutable_grad().zero_();
      loss.backward();

      // SGD with a cosine schedule (LTMP's timm defaults: momentum 0, no warm-up), thresholds kept in [0, 1].
      const double cosine = 0.5 * (1 + std::cos(M_PI * static_cast<double>(step) / total_steps));
      {
        at::NoGradGuard no_grad;
        if (ltmp) merge.sub_(merge.grad() * (o.lr_merge * cosine)).clamp_(0, 1);
        prune.sub_(prune.grad() * (o.lr_prune * cosine)).clamp_(0, 1);
      }
      const double ratio = f.macs_ratio.item<double>();
      if (!ltmp) lambda = std::max(0.0, lambda + o.lambda_rate * (ratio - o.target_macs));  // dual ascent

      CalibrationStep s;
      s.step = static_cast<int>(step + 1);
      s.steps = static_cast<int>(total_steps);
      s.images_done = static_cast<size_t>(epoch * n + hi);
      s.images_total = static_cast<size_t>(n * o.epochs);
      s.loss = loss.item<double>();
      s.task_loss = task.item<double>();
      s.macs_ratio = ratio;
      s.lambda = ltmp ? o.lambda : lambda;
      loss_sum += s.loss;
      ratio_sum += ratio;
      s.running_loss = loss_sum / (b + 1);
      s.running_macs_ratio = ratio_sum / (b + 1);
      if (!std::isfinite(s.loss))
        fail("calibrate", "loss became " + std::to_string(s.loss) + " at step " + std::to_string(s.step));
      result.steps.push_back(s);
      if (progress) progress(s);
    }
  }
  result.thresholds.method = o.method;
  result.thresholds.model = model.source();
  const at::Tensor p = prune.detach().to(at::kDouble).contiguous();
  result.thresholds.prune.assign(p.data_ptr<double>(), p.data_ptr<double>() + L);
  if (ltmp) {
    const at::Tensor m = merge.detach().to(at::kDouble).contiguous();
    result.thresholds.merge.assign(m.data_ptr<double>(), m.data_ptr<double>() + L);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace ms
