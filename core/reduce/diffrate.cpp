// DiffRate: Differentiable Compression Rate (Chen et al., ICCV 2023, arXiv:2305.17997), as the PiToMe
// repository's algo/DiffRate runs it at inference (scripts/golden/make_diffrate.py makes the golden file).
//
// Paper: per block, sort the tokens by the attention CLS pays them, prune the least important ones, then merge
// the next least important into their most similar important token; the two counts per block are learned
// (a differentiable search under a FLOPs budget). At inference they are fixed integers.
// Released code (patch/timm.py DiffRateBlock, merge.py get_merge_func, patch/deit.py), what this file does,
// between attention (with proportional attention) and MLP:
//  - imp_i = CLS row of the attention probabilities averaged over heads, i >= 1; every block re-orders all
//    tokens as [CLS, the rest by imp descending] (torch.sort, descending);
//  - prune: keep the first min(N, prune[l]) sorted tokens; the rest are discarded;
//  - merge (merge[l] < kept): each token at sorted position m..kept-1 goes to its most similar token (cosine of
//    the tokens x themselves, not the keys) among positions 1..m-1; every one of them merges, several may share a
//    destination. x of a destination becomes the plain mean of itself and what it received (sizes ignored);
//    its size for proportional attention becomes size + sum of size_u * similarity_u (not clamped);
//  - counts include CLS. From r (`r=`) or a keep ratio (`ratio=`) they are initialised as PiToMe's
//    init_kept_num_using_r / _ratio do, starting from the patch count (196) although the counts include CLS:
//    so block 0 keeps 196 of 197 tokens and prunes the patch CLS attends to least -- one token, reproduced here
//    as released -- and merges r (or floor(196 - 196 ratio)) more; later blocks only merge. Explicit per-block
//    counts (`prune=a;b;..,merge=a;b;..`, or `schedule=FILE[,entry=ViT-T-DeiT/0.7]`: the authors' searched
//    compression_rate.json of OpenGVLab/DiffRate, or a file with just the two lists) are taken as given.
// Where the code differs from the paper as summarised: the merge metric is x, the merge is an unweighted mean
// while the attention size is similarity-weighted. Prefix tokens: only CLS is handled by the released code;
// distilled models are refused.
#include "../engine.h"
#include "error.h"
#include "io.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ms {
namespace {

class Diffrate final : public Reducer {
 public:
  enum class Init { R, Ratio, Lists };
  // `file`: the schedule=FILE[,entry=..] the lists came from, which the spec names instead of the lists.
  Diffrate(Init init, int r, double ratio, std::vector<int> prune, std::vector<int> merge, std::string file = "")
      : init_(init), r_(r), ratio_(ratio), prune_(std::move(prune)), merge_(std::move(merge)), file_(std::move(file)) {}

  std::string spec() const override {
    if (init_ == Init::R) return "diffrate:r=" + std::to_string(r_);
    if (init_ == Init::Ratio) return "diffrate:ratio=" + reduce::format_number(ratio_);
    if (!file_.empty()) return "diffrate:" + file_;
    return "diffrate:prune=" + reduce::format_list(prune_) + ",merge=" + reduce::format_list(merge_);
  }
  bool proportional_attention() const override { return true; }
  bool wants_attention() const override { return true; }

  // (prune kept, merge kept) of block `layer` entering with `tokens`. The initialisers' running count N starts
  // at the patch count (tokens - 1 in block 0) and, from block 1 on, equals the tokens entering the block.
  // Neither count goes below the prefix tokens and one more (a token to merge into): the released initialisers
  // reach 1 at extreme rates (N = 2 at ratio 0.1), where its merge turns every size into NaN.
  std::pair<int, int> counts(int layer, int depth, int tokens, int prefix) const {
    auto [prune, merge] = released_counts(layer, depth, tokens);
    const int lowest = std::min(tokens, prefix + 1);
    return {std::max(prune, lowest), std::max(merge, lowest)};
  }
  std::pair<int, int> released_counts(int layer, int depth, int tokens) const {
    if (init_ == Init::Lists) {
      if (static_cast<int>(prune_.size()) != depth || static_cast<int>(merge_.size()) != depth)
        fail(spec(), "prune= and merge= need one count per block: the model has " + std::to_string(depth) +
                         " blocks, the lists have " + std::to_string(prune_.size()) + " and " +
                         std::to_string(merge_.size()));
      return {prune_[layer], merge_[layer]};
    }
    const int n = layer == 0 ? tokens - 1 : tokens;
    int r = 0;
    if (init_ == Init::R) {
      r = std::min(r_, n / 2);
    } else {
      volatile double product = n * ratio_;
      r = static_cast<int>(std::floor(n - product));
    }
    return {n, n - r};
  }

  int predict_tokens(int layer, int depth, int tokens, int prefix) const override {
    const auto [prune, merge] = counts(layer, depth, tokens, prefix);
    return std::min({tokens, prune, merge});
  }

  double matching_macs(int tokens_in, int tokens_out, int, int, int width) const override {
    return static_cast<double>(tokens_in - tokens_out) * tokens_out * width;  // unimportant x important cosines
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (ctx.distill_token)
      fail(spec(),
           "distilled models are not supported (the released DiffRate sorts the distillation token as a patch)");
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1), C = ctx.x.size(2);
    const auto [prune, merge] = counts(ctx.layer, ctx.depth, static_cast<int>(N), ctx.prefix_tokens);
    const int64_t p = std::min<int64_t>(N, prune);
    const int64_t m = std::min<int64_t>(p, merge);
    ReductionPlan plan;
    plan.tokens = N;
    if (m == N) return plan;  // the released block re-sorts even then; the order changes no later decision
    const auto opts = ctx.x.options().dtype(at::kLong);
    const at::Tensor imp = ctx.attn->select(2, 0).mean(1).slice(1, 1);              // [B, N-1]
    const auto [imp_sorted, imp_order] = imp.sort(-1, /*descending=*/true);         // torch.sort
    const at::Tensor order = at::cat({at::zeros({B, 1}, opts), imp_order + 1}, 1);  // [B,N] CLS first
    const at::Tensor xs = ctx.x.gather(1, order.unsqueeze(2).expand({B, N, C}));    // sorted tokens
    const at::Tensor sizes = ctx.attention_size ? *ctx.attention_size : ctx.size;
    const at::Tensor ss = sizes.gather(1, order);
    at::Tensor dest_sorted = at::full({B, N}, -1, opts);  // pruned by default
    dest_sorted.slice(1, 0, m).copy_(at::arange(m, opts).expand({B, m}));
    at::Tensor new_x = xs.slice(1, 0, m).clone(), new_size = ss.slice(1, 0, m).clone();
    reduce::RowBest best;
    if (m < p) {
      if (m < 2) fail(spec(), "merge count " + std::to_string(m) + " leaves no token to merge into (CLS excluded)");
      const at::Tensor unit = xs.slice(1, 0, p) / xs.slice(1, 0, p).norm(2, {-1}, /*keepdim=*/true);  // no eps
      at::Tensor sim = at::bmm(unit.slice(1, m, p), unit.slice(1, 0, m).transpose(1, 2));             // [B, p-m, m]
      sim.select(2, 0).fill_(-std::numeric_limits<float>::infinity());                                // never into CLS
      best = reduce::row_best(sim, ctx.record_margins);
      dest_sorted.slice(1, m, p).copy_(best.index);
      // x: plain mean of the destination and its merged tokens; attention size: + size_u * similarity_u.
      const at::Tensor idx = best.index.unsqueeze(2).expand({B, p - m, C});
      const at::Tensor sum = new_x.scatter_add(1, idx, xs.slice(1, m, p));
      const at::Tensor count =
          at::ones({B, m}, ss.options()).scatter_add(1, best.index, at::ones({B, p - m}, ss.options()));
      new_x = sum / count.unsqueeze(2);
      new_size = new_size.scatter_add(1, best.index, ss.slice(1, m, p) * best.value);
    }
    plan.dest = at::empty({B, N}, opts).scatter_(1, order, dest_sorted);
    plan.tokens = m;
    plan.x = new_x;
    plan.attention_size = new_size;
    if (ctx.record_margins) {
      // Sorted-position margins: the importance cuts at p (prune) and m (merge) in units of uniform attention,
      // and each merged token's best vs second-best destination (cosine).
      at::Tensor margin = at::full({B, N}, std::numeric_limits<float>::infinity(), imp.options());
      const at::Tensor positions = at::arange(N - 1, opts).expand({B, N - 1});
      at::Tensor cut = at::full({B, N - 1}, std::numeric_limits<float>::infinity(), imp.options());
      if (p < N) cut = at::minimum(cut, reduce::cut_margin(imp_sorted, positions, p - 1));
      if (m < p) cut = at::minimum(cut, reduce::cut_margin(imp_sorted, positions, m - 1));
      margin.slice(1, 1).copy_(cut * (N - 1));
      if (m < p) margin.slice(1, m, p).copy_(at::minimum(margin.slice(1, m, p), best.gap));
      plan.margin = at::empty_like(margin).scatter_(1, order, margin);
    }
    return plan;
  }

 private:
  Init init_;
  int r_;
  double ratio_;
  std::vector<int> prune_, merge_;
  std::string file_;
};

}  // namespace

namespace {

// One list of a schedule file: a JSON array of integers, or (the authors' compression_rate.json) a string holding one.
std::vector<int> schedule_list(const nlohmann::json& entry, const std::string& key, const std::string& path) {
  if (!entry.is_object() || !entry.contains(key)) fail(path, "diffrate schedule: no \"" + key + "\" in the schedule");
  nlohmann::json list = entry[key];
  if (list.is_string()) {
    const std::string text = list.get<std::string>();
    if (text == "None")
      fail(path,
           "diffrate schedule: " + key + " is None (a schedule without " + key.substr(0, key.find('_')) + " counts)");
    check_json_depth(text.data(), text.data() + text.size(), path);
    try {
      list = nlohmann::json::parse(text);
    } catch (const std::exception&) {
      fail(path,
           "diffrate schedule: " + key + " is " + describe_json(entry[key]) + ", expected a list of token counts");
    }
  }
  std::vector<int> out;
  if (!list.is_array())
    fail(path, "diffrate schedule: " + key + " is " + describe_json(list) + ", expected a list of token counts");
  for (const auto& v : list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 100000)
      fail(path,
           "diffrate schedule: " + key + " holds " + describe_json(v) + ", expected token counts (integers 0..100000)");
    out.push_back(v.get<int>());
  }
  return out;
}

// A schedule file: {"prune_kept_num": [...], "merge_kept_num": [...]}, or the authors' compression_rate.json
// ({"ViT-T-DeiT": {"0.7": {...}}, ...}) with entry = "ViT-T-DeiT/0.7".
std::pair<std::vector<int>, std::vector<int>> load_schedule(const std::string& path, const std::string& entry) {
  if (!is_regular_file(path)) fail(path, "cannot open (diffrate schedule=FILE)");
  const std::vector<char> text = read_file(path, 1 << 20, "DiffRate schedule file");
  check_json_depth(text.data(), text.data() + text.size(), path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const std::exception&) {
    fail(path, "diffrate schedule: not valid JSON");
  }
  nlohmann::json e = j;
  if (!entry.empty()) {
    const auto slash = entry.find('/');
    const std::string model = entry.substr(0, slash), flops = slash == std::string::npos ? "" : entry.substr(slash + 1);
    if (!j.is_object() || !j.contains(model)) fail(path, "diffrate schedule: no entry \"" + excerpt(model) + "\"");
    if (flops.empty() || !j[model].is_object() || !j[model].contains(flops))
      fail(path,
           "diffrate schedule: no entry \"" + excerpt(entry) + "\" (give entry=MODEL/GFLOPS, e.g. ViT-T-DeiT/0.7)");
    e = j[model][flops];
  } else if (j.is_object() && !j.contains("prune_kept_num")) {
    fail(path, "diffrate schedule: holds several schedules: pick one with entry=MODEL/GFLOPS (e.g. ViT-T-DeiT/0.7)");
  }
  return {schedule_list(e, "prune_kept_num", path), schedule_list(e, "merge_kept_num", path)};
}

void check_counts(const std::vector<int>& prune, const std::vector<int>& merge, const std::string& where) {
  if (prune.empty() || merge.empty()) fail(where, "diffrate needs both prune and merge counts");
  for (int v : prune)
    if (v < 2) fail(where, "diffrate prune counts include CLS and must be at least 2");
  for (int v : merge)
    if (v < 2) fail(where, "diffrate merge counts include CLS and must be at least 2 (1 leaves nothing to merge into)");
}

}  // namespace

std::unique_ptr<Reducer> make_diffrate(ReducerSpec& spec) {
  const std::string where = "method spec '" + spec.text() + "'";
  const bool has_r = spec.has("r"), has_ratio = spec.has("ratio"), has_lists = spec.has("prune") || spec.has("merge");
  const bool has_file = spec.has("schedule");
  if (has_r + has_ratio + has_lists + has_file != 1)
    fail(where,
         "diffrate needs exactly one of r=N, ratio=KEEP, prune=a;b;..,merge=a;b;.. (counts incl. CLS) or "
         "schedule=FILE[,entry=MODEL/GFLOPS]");
  if (has_file) {
    const std::string path = spec.get_string("schedule", ""), entry = spec.get_string("entry", "");
    auto [prune, merge] = load_schedule(path, entry);
    check_counts(prune, merge, path);
    return std::make_unique<Diffrate>(Diffrate::Init::Lists, 0, 1.0, std::move(prune), std::move(merge),
                                      "schedule=" + path + (entry.empty() ? "" : ",entry=" + entry));
  }
  if (has_lists) {
    std::vector<int> prune = spec.get_int_list("prune"), merge = spec.get_int_list("merge");
    check_counts(prune, merge, where);
    return std::make_unique<Diffrate>(Diffrate::Init::Lists, 0, 1.0, std::move(prune), std::move(merge));
  }
  if (has_r)
    return std::make_unique<Diffrate>(Diffrate::Init::R, spec.get_int("r", 0, 0, 100000), 1.0, std::vector<int>{},
                                      std::vector<int>{});
  const double ratio = spec.get_double("ratio", 1.0, 0.0, 1.0);
  if (!(ratio > 0)) fail(where, "diffrate ratio= must be above 0");
  return std::make_unique<Diffrate>(Diffrate::Init::Ratio, 0, ratio, std::vector<int>{}, std::vector<int>{});
}

}  // namespace ms
