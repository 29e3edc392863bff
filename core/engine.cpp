#include "engine.h"

#include "error.h"
#include "reduce/ops.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace ms {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

namespace {

// CPU float32, per image: sizes and contributor counts first, then one pass over the tokens that writes
// each slot's rows directly (w x / size for the many slots with one contributor, a running sum scaled
// once for merged slots) -- no zero-filled output and no second pass over it. Summation order and the
// final multiply by 1/size are those of the plain accumulate-then-scale loop, so results are unchanged.
// ATen's scatter_add_ with an expanded [B,N,C] index costs several times more (~4% of block time at batch 32).
std::pair<at::Tensor, at::Tensor> apply_plan_cpu(const at::Tensor& x_in, const at::Tensor& size_in,
                                                 const at::Tensor& dest_in, int64_t tokens) {
  const at::Tensor x = x_in.contiguous(), size = size_in.contiguous(), dest = dest_in.contiguous();
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  at::Tensor out = at::empty({B, tokens, C}, x.options());
  at::Tensor out_size = at::zeros({B, tokens}, size.options());
  const float* xs = x.data_ptr<float>();
  const float* ss = size.data_ptr<float>();
  const int64_t* ds = dest.data_ptr<int64_t>();
  float* o = out.data_ptr<float>();
  float* os = out_size.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int32_t> count(tokens), left(tokens);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t* db = ds + b * N;
      const float* sb = ss + b * N;
      float* osb = os + b * tokens;
      std::fill(count.begin(), count.end(), 0);
      for (int64_t t = 0; t < N; ++t) {
        if (db[t] < 0) continue;  // pruned
        osb[db[t]] += sb[t];
        ++count[db[t]];
      }
      left = count;
      for (int64_t t = 0; t < N; ++t) {
        const int64_t d = db[t];
        if (d < 0) continue;
        const float w = sb[t];
        float* dst = o + (b * tokens + d) * C;
        const float* src = xs + (b * N + t) * C;
        if (count[d] == 1) {
          const float inv = 1.0f / osb[d];
          for (int64_t c = 0; c < C; ++c) dst[c] = (w * src[c]) * inv;
          continue;
        }
        if (left[d] == count[d]) {
          for (int64_t c = 0; c < C; ++c) dst[c] = w * src[c];
        } else {
          for (int64_t c = 0; c < C; ++c) dst[c] += w * src[c];
        }
        if (--left[d] == 0) {
          const float inv = 1.0f / osb[d];
          for (int64_t c = 0; c < C; ++c) dst[c] *= inv;
        }
      }
      for (int64_t d = 0; d < tokens; ++d)  // a slot nobody maps to: 0/0, as the generic path gives
        if (count[d] == 0) std::fill(o + (b * tokens + d) * C, o + (b * tokens + d + 1) * C, std::nanf(""));
    }
  });
  return {out, out_size};
}

}  // namespace

namespace {
// Pruned tokens (slot -1) go to a scratch slot `tokens`, cut off afterwards.
at::Tensor slots_with_scratch(const at::Tensor& dest, int64_t tokens) {
  return at::where(dest < 0, at::full({}, tokens, dest.options()), dest);
}
}  // namespace

at::Tensor merge_sizes(const at::Tensor& size, const at::Tensor& dest, int64_t tokens) {
  return at::zeros({size.size(0), tokens + 1}, size.options())
      .scatter_add_(1, slots_with_scratch(dest, tokens), size)
      .slice(1, 0, tokens);
}

std::pair<at::Tensor, at::Tensor> apply_plan_aten(const at::Tensor& x, const at::Tensor& size, const at::Tensor& dest,
                                                  int64_t tokens) {
  const int64_t B = x.size(0), C = x.size(2);
  const at::Tensor index = slots_with_scratch(dest, tokens);
  // sum(size * x) / sum(size), as ToMe's merge_wavg
  const at::Tensor new_size = merge_sizes(size, dest, tokens);
  const at::Tensor new_x =
      at::zeros({B, tokens + 1, C}, x.options())
          .scatter_add_(1, index.unsqueeze(2).expand({B, index.size(1), C}), x * size.unsqueeze(2));
  return {new_x.slice(1, 0, tokens) / new_size.unsqueeze(2), new_size};
}

std::pair<at::Tensor, at::Tensor> apply_plan(const at::Tensor& x, const at::Tensor& size, const at::Tensor& dest,
                                             int64_t tokens) {
  if (x.is_cpu() && x.scalar_type() == at::kFloat && size.scalar_type() == at::kFloat)
    return apply_plan_cpu(x, size, dest.to(at::kLong), tokens);
  return apply_plan_aten(x, size, dest, tokens);
}

void check_finite_logits(const at::Tensor& logits, const Model& model, const std::vector<std::string>& images) {
  if (at::isfinite(logits).all().item<bool>()) return;
  const at::Tensor rows_2d = logits.dim() >= 2 ? logits.flatten(1) : logits.reshape({1, -1});
  const at::Tensor row_ok = at::isfinite(rows_2d).all(1).to(at::kCPU);
  const int64_t rows = row_ok.size(0);
  int64_t first_bad = -1, bad = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (!row_ok[i].item<bool>()) {
      bad += 1;
      if (first_bad < 0) first_bad = i;
    }
  std::string which;
  if (static_cast<int64_t>(images.size()) == rows)
    which = " for " + images[first_bad] +
            (rows > 1 ? " (" + std::to_string(bad) + " of the " + std::to_string(rows) + " images of its batch)" : "");
  else
    which = " for " + std::to_string(bad) + " of " + std::to_string(rows) + " inputs";
  fail(model.source(), "the forward pass gave NaN or infinite logits" + which +
                           " (weights or config values out of range for float32?)");
}

at::Tensor reference_energy(const at::Tensor& keys_mean, int prefix_tokens, int layer, int depth) {
  const reduce::EnergyFormula code = reduce::EnergyFormula::Code;
  const at::Tensor e = reduce::energy(reduce::normalize(keys_mean.slice(1, prefix_tokens)),
                                      reduce::energy_margin(code, layer, depth), code);
  return reduce::with_prefix(e, prefix_tokens, std::nan(""));
}

namespace {

// Image-dependent token counts: one image at a time, results concatenated.
RunResult run_each_image(const Model& model, const at::Tensor& images, Reducer* reducer, const RunOptions& options) {
  RunResult result;
  std::vector<at::Tensor> logits;
  for (int64_t b = 0; b < images.size(0); ++b) {
    RunResult r = run(model, images.slice(0, b, b + 1), reducer, options);
    logits.push_back(r.logits);
    result.tokens_per_image.push_back(r.tokens_per_layer);
    for (auto& t : r.traces) result.traces.push_back(std::move(t));
    result.block_seconds += r.block_seconds;
    result.reducer_seconds += r.reducer_seconds;
    result.attention_seconds += r.attention_seconds;
    result.mlp_seconds += r.mlp_seconds;
  }
  result.logits = at::cat(logits, 0);
  const size_t layers = result.tokens_per_image.front().size();
  for (size_t l = 0; l < layers; ++l) {
    double sum = 0;
    for (const auto& t : result.tokens_per_image) sum += t[l];
    result.tokens_per_layer.push_back(static_cast<int>(std::lround(sum / result.tokens_per_image.size())));
  }
  return result;
}

}  // namespace

RunResult run(const Model& model, const at::Tensor& images, Reducer* reducer, const RunOptions& options) {
  const VitConfig& c = model.config();
  if (reducer && images.size(0) > 1 && reducer->predict_tokens(0, c.depth, c.num_tokens(), c.num_prefix_tokens()) < 0)
    return run_each_image(model, images, reducer, options);
  RunResult result;
  at::Tensor x = model.embed(images);
  const int64_t B = x.size(0), N0 = x.size(1);
  const int prefix = c.num_prefix_tokens();
  at::Tensor size = at::ones({B, N0}, x.options());
  at::Tensor log_size;  // defined once a merge happened and the method wants proportional attention
  at::Tensor source = at::arange(N0, at::TensorOptions().dtype(at::kLong)).expand({B, N0}).contiguous();
  if (options.trace) {
    result.traces.resize(B);
    for (auto& t : result.traces) {
      t.original_tokens = static_cast<int>(N0);
      t.prefix_tokens = prefix;
    }
  }
  const bool prop_attn = reducer && reducer->proportional_attention();
  const ReducerStage stage = reducer ? reducer->stage() : ReducerStage::AfterAttention;
  const bool trace_energy = options.trace && (options.trace_energy || options.released_energy);
  const std::vector<uint64_t> keys_of_images =
      reducer && reducer->wants_image_keys() ? reduce::content_keys(images) : std::vector<uint64_t>{};
  at::Tensor attn_size = size;  // sizes proportional attention uses (DiffRate keeps its own)
  bool mixed = false;           // a block mixed all tokens (DCT): no partition from there on
  const auto t_blocks = Clock::now();
  for (int l = 0; l < c.depth; ++l) {
    at::Tensor keys_mean, attn;
    const bool want_attn = reducer && reducer->wants_attention();
    const bool want_keys = reducer || options.trace_keys || trace_energy;
    const int64_t n_in = x.size(1);
    ReductionPlan plan;
    at::Tensor pruned_now;  // [B,N0] original tokens whose token this block pruned (trace only)
    // Plans and applies a reduction of x at the reducer's stage.
    auto reduce_here = [&](const at::Tensor& probs) {
      const auto t_reduce = Clock::now();
      const ReducerContext ctx{x,
                               keys_mean,
                               want_attn ? &probs : nullptr,
                               size,
                               l,
                               c.depth,
                               prefix,
                               c.distilled,
                               trace_energy && !options.released_energy,
                               options.trace,
                               reducer->wants_image_keys() ? &keys_of_images : nullptr,
                               &attn_size};
      plan = reducer->plan(ctx);
      if (plan.mixes_all) {
        x = plan.x;
        size = at::ones({B, x.size(1)}, size.options());
        attn_size = size;
        mixed = true;
      } else if (plan.dest.defined()) {
        if (plan.x.defined()) {
          size = merge_sizes(size, plan.dest, plan.tokens);
          x = plan.x;
        } else {
          std::tie(x, size) = apply_plan(x, size, plan.dest, plan.tokens);
        }
        attn_size = plan.attention_size.defined() ? plan.attention_size : size;
        if (prop_attn) log_size = attn_size.log();
        if (options.trace) {
          // Original tokens already pruned (-1) stay pruned; the rest follow their token to its slot.
          const at::Tensor before = source;
          source = at::where(before < 0, before, plan.dest.to(at::kCPU).gather(1, before.clamp_min(0)));
          pruned_now = (before >= 0) & (source < 0);
        }
      }
      result.reducer_seconds += seconds_since(t_reduce);
    };
    const auto t_attn = Clock::now();
    // A reducer acting before the attention, in a block where it removes tokens (its predicted count is image-
    // independent): the block's attention on the tokens entering it, the reduction, then the attention output of
    // the reduced tokens under the fused probabilities the plan returns (MCTF's one-step-ahead attention). In its
    // other blocks the ordinary attention runs and the reducer is not asked.
    if (stage == ReducerStage::BeforeAttention &&
        reducer->predict_tokens(l, c.depth, static_cast<int>(n_in), prefix) < n_in) {
      attn = model.attention_probs(x, l, prop_attn ? &log_size : nullptr, &keys_mean);
      result.attention_seconds += seconds_since(t_attn);
      reduce_here(attn);
      const auto t_attn2 = Clock::now();
      if (plan.dest.defined()) {
        if (!plan.attn.defined()) fail(reducer->spec(), "a plan before the attention must give the fused attention");
        x.add_(model.attention_with_probs(x, l, plan.attn));
      } else {
        x.add_(model.attention(x, l, prop_attn ? &log_size : nullptr));
      }
      result.attention_seconds += seconds_since(t_attn2);
    } else {
      const bool probs = want_attn && stage != ReducerStage::BeforeAttention;  // a block MCTF leaves alone: none
      x.add_(model.attention(x, l, prop_attn ? &log_size : nullptr, want_keys ? &keys_mean : nullptr,
                             probs ? &attn : nullptr));
      result.attention_seconds += seconds_since(t_attn);
      if (stage == ReducerStage::AfterAttention && reducer) reduce_here(attn);
    }
    const auto t_mlp = Clock::now();
    x.add_(model.mlp(x, l));
    result.mlp_seconds += seconds_since(t_mlp);
    if (reducer && stage == ReducerStage::AfterMlp) reduce_here(attn);
    result.tokens_per_layer.push_back(static_cast<int>(x.size(1)));
    if (options.trace) {
      if (trace_energy && (options.released_energy || !plan.energy.defined()))
        plan.energy = reference_energy(keys_mean, prefix, l, c.depth);
      for (int64_t b = 0; b < B; ++b) {
        LayerTrace lt;
        lt.tokens_in = static_cast<int>(n_in);
        lt.tokens = static_cast<int>(x.size(1));
        if (mixed) {
          // Every output token mixes all patch tokens: prefix tokens keep their slot, the rest have no group.
          lt.mixes_all = true;
          lt.cluster_of_token.assign(N0, -1);
          for (int t = 0; t < prefix; ++t) lt.cluster_of_token[t] = t;
        } else {
          const at::Tensor src = source[b].to(at::kInt).contiguous();
          lt.cluster_of_token.assign(src.data_ptr<int32_t>(), src.data_ptr<int32_t>() + N0);
        }
        lt.sizes = to_vector(size[b]);
        if (plan.energy.defined()) lt.energy = to_vector(plan.energy[b]);
        if (plan.margin.defined()) lt.margin = to_vector(plan.margin[b]);
        if (options.trace_keys) {
          lt.keys = to_vector(keys_mean[b]);
          lt.key_dim = static_cast<int>(keys_mean.size(2));
        }
        lt.note = plan.note;
        if (pruned_now.defined()) {
          const at::Tensor idx = pruned_now[b].nonzero().view(-1).to(at::kInt).contiguous();
          lt.pruned.assign(idx.data_ptr<int32_t>(), idx.data_ptr<int32_t>() + idx.numel());
        }
        result.traces[b].layers.push_back(std::move(lt));
      }
    }
  }
  result.block_seconds = seconds_since(t_blocks);
  result.tokens_per_image.assign(B, result.tokens_per_layer);
  result.logits = model.head(x);
  return result;
}

}  // namespace ms
