// libFuzzer target: a method spec string ("tome:r=13", "pitome:ratio=0.9", "ltmp:merge=0.9,prune=0.002", ...)
// through make_reducer, then the reducer it builds through every block of a small model (17 tokens, 4 blocks)
// as the engine drives it. Checked on every accepted spec:
//  - the canonical spec() parses again to the same spec (traces and CSVs record it for re-running);
//  - predict_tokens() stays in [prefix tokens, tokens] and equals what plan() does when it claims to know;
//  - every plan is one the engine can apply: destinations in [-1, tokens), no empty output slot (its mean
//    would be 0/0), prefix tokens kept and never merged.
#include "fuzz_util.h"
#include "reduce/reducer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using ms::fuzz::check;

constexpr int kDepth = 4, kChannels = 8, kHeads = 2;

// Deterministic tokens, keys and attention for N tokens: distinct, with near-ties, no randomness.
struct Block {
  at::Tensor x, keys, attn, size;
};
Block make_block(int64_t batch, int64_t tokens, int layer) {
  const auto f = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor i = at::arange(batch * tokens * kChannels, f).reshape({batch, tokens, kChannels});
  Block b;
  b.x = at::sin(i * 0.37 + layer);
  b.keys = at::cos(i * 0.11 + 0.5 * layer) + at::sin(i * 1.3);
  const at::Tensor logits =
      at::sin(at::arange(batch * kHeads * tokens * tokens, f) * 0.7 + layer).reshape({batch, kHeads, tokens, tokens});
  b.attn = at::softmax(logits * 3.0, -1);
  b.size = at::ones({batch, tokens}, f);
  return b;
}

void check_plan(const ms::ReductionPlan& plan, int64_t batch, int64_t tokens, int prefix, const std::string& where) {
  if (plan.mixes_all) {  // dct: new tokens, no slots
    check(plan.x.defined() && plan.x.size(0) == batch && plan.x.size(1) == plan.tokens && plan.tokens >= prefix &&
              plan.tokens <= tokens,
          where + ": a plan that mixes all tokens must give its " + std::to_string(plan.tokens) + " tokens");
    check(at::isfinite(plan.x).all().item<bool>(), where + ": non-finite tokens");
    return;
  }
  if (!plan.dest.defined()) {
    check(plan.tokens == tokens,
          where + ": no plan, but " + std::to_string(plan.tokens) + " tokens out of " + std::to_string(tokens));
    return;
  }
  check(plan.tokens >= prefix && plan.tokens <= tokens,
        where + ": " + std::to_string(plan.tokens) + " output tokens from " + std::to_string(tokens));
  check(plan.dest.dim() == 2 && plan.dest.size(0) == batch && plan.dest.size(1) == tokens,
        where + ": dest has the wrong shape");
  const at::Tensor dest = plan.dest.to(at::kLong).contiguous();
  const int64_t* d = dest.data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<int> count(static_cast<size_t>(plan.tokens), 0);
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t slot = d[b * tokens + t];
      check(slot >= -1 && slot < plan.tokens,
            where + ": token " + std::to_string(t) + " goes to slot " + std::to_string(slot));
      if (slot >= 0) ++count[static_cast<size_t>(slot)];
      if (t < prefix) check(slot >= 0, where + ": prefix token " + std::to_string(t) + " was dropped");
    }
    for (int64_t s = 0; s < plan.tokens; ++s)
      check(count[static_cast<size_t>(s)] > 0, where + ": output slot " + std::to_string(s) + " is empty");
    for (int64_t t = 0; t < prefix; ++t)
      check(count[static_cast<size_t>(d[b * tokens + t])] == 1,
            where + ": prefix token " + std::to_string(t) + " was merged");
  }
  if (plan.energy.defined()) check(plan.energy.sizes() == dest.sizes(), where + ": energy has the wrong shape");
  if (plan.margin.defined()) check(plan.margin.sizes() == dest.sizes(), where + ": margin has the wrong shape");
}

// Runs the reducer through kDepth blocks as the engine does; tokens shrink as the plans say.
void run_model(ms::Reducer& reducer, int64_t batch, int prefix, bool record) {
  int64_t tokens = 17;
  for (int layer = 0; layer < kDepth; ++layer) {
    const Block blk = make_block(batch, tokens, layer);
    const ms::ReducerContext ctx{
        blk.x,  blk.keys, reducer.wants_attention() ? &blk.attn : nullptr, blk.size, layer, kDepth, prefix, prefix == 2,
        record, record};
    const ms::ReductionPlan plan = reducer.plan(ctx);
    const std::string where = reducer.spec() + " block " + std::to_string(layer);
    check_plan(plan, batch, tokens, prefix, where);
    const int predicted = reducer.predict_tokens(layer, kDepth, static_cast<int>(tokens), prefix);
    check(predicted < 0 || predicted == plan.tokens,
          where + ": predict_tokens says " + std::to_string(predicted) + ", plan gives " + std::to_string(plan.tokens));
    tokens = plan.tokens;
  }
}

void check_accepted(ms::Reducer& reducer) {
  const std::string canonical = reducer.spec();
  const auto again = ms::make_reducer(canonical);  // an ms::Error here is a finding, not a refusal
  check(again->spec() == canonical, "spec '" + canonical + "' parses back as '" + again->spec() + "'");

  for (int prefix : {1, 2}) {  // ViT-B (197 tokens, 12 blocks): predictions in range, costs finite
    int tokens = 196 + prefix;
    for (int layer = 0; layer < 12; ++layer) {
      const int next = reducer.predict_tokens(layer, 12, tokens, prefix);
      check(next < 0 || (next >= prefix && next <= tokens), canonical + ": predict_tokens(block " +
                                                                std::to_string(layer) + ", " + std::to_string(tokens) +
                                                                ") = " + std::to_string(next));
      const double macs = reducer.matching_macs(tokens, tokens / 2, prefix, 64, 768);
      check(std::isfinite(macs) && macs >= 0, canonical + ": matching_macs " + std::to_string(macs));
      if (next < 0) break;
      tokens = next;
    }
  }
  run_model(reducer, 1, 1, true);
  run_model(reducer, 2, 2, false);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Specs reach make_reducer from argv and from the app's text fields, C strings both: no byte after a NUL.
  std::string spec(reinterpret_cast<const char*>(data), size);
  spec = spec.substr(0, spec.find('\0'));
  std::unique_ptr<ms::Reducer> reducer;
  ms::fuzz::run_one([&] { reducer = ms::make_reducer(spec); });
  if (!reducer) return 0;
  // Past parsing, an ms::Error is a finding too, except the two refusals a learned reducer makes by design: a
  // thresholds file for another depth than this model's, and a batch whose images keep different token counts
  // (the engine runs those one image at a time).
  try {
    check_accepted(*reducer);
  } catch (const ms::Error& e) {
    const std::string what = e.what();
    // The methods PiToMe is compared against refuse distilled models (two prefix tokens here), blocks past the
    // model's depth (evit's default 3;6;9 on this 4-block model) and count lists of another length.
    const bool by_design = what.find("run them one at a time") != std::string::npos ||
                           what.find("distilled models are not supported") != std::string::npos ||
                           what.find("blocks, 0-based)") != std::string::npos ||
                           what.find("need one count per block") != std::string::npos ||
                           what.find("thresholds are learned per model") != std::string::npos ||
                           what.find(" merge thresholds for ") != std::string::npos;
    if (!by_design) ms::fuzz::finding("spec '" + ms::excerpt(spec, 200) + "' was accepted, then failed: " + what);
  } catch (const std::exception& e) {
    ms::fuzz::finding(std::string("exception other than ms::Error escaped: ") + typeid(e).name() + ": " + e.what());
  }
  return 0;
}
