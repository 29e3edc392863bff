// MCTF: Multi-criteria Token Fusion with One-step-ahead Attention (Lee, Choi, Kim, CVPR 2024, arXiv:2403.10030),
// as the authors' repository mlvlab/MCTF (utils/mctf.py, models/modules/blocks.py, MHSA.py) runs it with the
// defaults of its DeiT-T evaluation script run/eval_deit_t_mctf.sh (scripts/golden/make_mctf.py makes the golden
// file with it). PiToMe's algo/mctf copy does not run (it calls merge_wavg without the attention it needs).
//
// What this file does, as the released code:
//  - acts at the start of blocks 1..L-1 (block 0 never fuses), before the attention, on the block input x (the
//    residual stream, not the keys): the block's attention probabilities P on the unfused tokens come first
//    (proportional attention: + log size on every key), the fusion uses them, and the block's attention output
//    is proj(P' V) with V from LN1 of the fused tokens and P' = P fused (below) -- "one-step-ahead attention":
//    the fusion that used to end block l-1 sees block l's attention, and block l does not recompute it;
//  - r tokens per block (default 16), r' = N - 10 when fewer than 10 would remain, int((N - 1) r) when r < 1
//    (MCTF-Fast: r=0.35 at blocks 3;6;9), at most (N - 1) / 2;
//  - score of A token i (even positions) and B token j (odd): ((cos(x_i, x_j) + 1) / 2)^(1/tau_sim) *
//    (a~_i a~_j)^(1/tau_info) * (s~_i s~_j)^(1/tau_size), with a_j = attention token j receives (mean over heads
//    and queries), a~ = (1/a) / max(1/a), s~ = (1/s) / max(1/s); tau = 1, 20, 40; CLS's row is -inf;
//  - bidirectional matching on that one score matrix: r/2 A tokens (best edges) into their best B, then
//    r - r/2 B tokens (best edges, over the A tokens still there) into their best A; a B that received A tokens
//    moves with them. Output [remaining A in position order (CLS first), remaining B in descending step-2 score];
//  - fusion weights w_i = a_i s_i / max s: x' = sum w x / sum w (not size-weighted), sizes add up;
//    P'[q', k'] = sum_{q -> q'} w_q sum_{k -> k'} P[q, k] / sum_{q -> q'} w_q (keys summed, queries averaged).
// The paper's numbers (DeiT-T 72.7 %) are for fine-tuned models under fp16 autocast; here it runs off-the-shelf
// weights in float32. Prefix tokens: the released code protects only CLS correctly; distilled models are refused.
#include "../engine.h"
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace ms {
namespace {

// P'[q', k'] = sum_{q -> q'} w_q sum_{k -> k'} P[q, k] / norm[q'] for P [B,H,N,N], slots dest [B,N] (no pruning),
// weights w [B,N] and norm = per-slot sum of w [B,M]. CPU float32: one pass over P per (image, head), the M x M
// result in cache (the two ATen index_adds read and write P-sized tensors three times, ~60% of MCTF's time).
at::Tensor fuse_attention(const at::Tensor& P, const at::Tensor& dest, const at::Tensor& w, const at::Tensor& norm,
                          int64_t M) {
  const int64_t B = P.size(0), H = P.size(1), N = P.size(2);
  if (!(P.is_cpu() && P.scalar_type() == at::kFloat && w.scalar_type() == at::kFloat)) {
    at::Tensor out = at::empty({B, H, M, M}, P.options());
    for (int64_t b = 0; b < B; ++b) {
      const at::Tensor d = dest[b];
      const at::Tensor by_key = at::zeros({H, N, M}, P.options()).index_add_(2, d, P[b]);
      out[b].zero_().index_add_(1, d, by_key * w[b].view({1, N, 1})).div_(norm[b].view({1, M, 1}));
    }
    return out;
  }
  const at::Tensor p = P.contiguous(), d = dest.to(at::kLong).contiguous(), wc = w.contiguous();
  const at::Tensor inv = norm.reciprocal().contiguous();
  at::Tensor out = at::zeros({B, H, M, M}, P.options());
  const float* ps = p.data_ptr<float>();
  const int64_t* ds = d.data_ptr<int64_t>();
  const float* ws = wc.data_ptr<float>();
  const float* is = inv.data_ptr<float>();
  float* os = out.data_ptr<float>();
  at::parallel_for(0, B * H, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t b = s / H;
      const int64_t* db = ds + b * N;
      const float* wb = ws + b * N;
      float* ob = os + s * M * M;
      for (int64_t q = 0; q < N; ++q) {
        const float* row = ps + (s * N + q) * N;
        float* orow = ob + db[q] * M;
        const float wq = wb[q];
        for (int64_t k = 0; k < N; ++k) orow[db[k]] += wq * row[k];
      }
      const float* ib = is + b * M;
      for (int64_t q = 0; q < M; ++q)
        for (int64_t k = 0; k < M; ++k) ob[q * M + k] *= ib[q];
    }
  });
  return out;
}

class Mctf final : public Reducer {
 public:
  Mctf(double r, std::vector<int> blocks, double tau_sim, double tau_info, double tau_size)
      : r_(r), blocks_(std::move(blocks)), tau_sim_(tau_sim), tau_info_(tau_info), tau_size_(tau_size) {}

  std::string spec() const override {
    std::string s = "mctf:r=" + reduce::format_number(r_);
    if (!blocks_.empty()) {
      s += ",blocks=" + reduce::format_list(blocks_);
    }
    if (tau_sim_ != 1) s += ",tau_sim=" + reduce::format_number(tau_sim_);
    if (tau_info_ != 20) s += ",tau_info=" + reduce::format_number(tau_info_);
    if (tau_size_ != 40) s += ",tau_size=" + reduce::format_number(tau_size_);
    return s;
  }
  bool proportional_attention() const override { return true; }
  bool wants_attention() const override { return true; }
  ReducerStage stage() const override { return ReducerStage::BeforeAttention; }

  bool acts(int layer) const {
    return blocks_.empty() ? layer >= 1 : std::find(blocks_.begin(), blocks_.end(), layer) != blocks_.end();
  }
  // Tokens fused in a block entering with `tokens` (utils/mctf.py's r arithmetic, one protected token).
  int fused(int tokens) const {
    double r = r_;
    if (tokens - r < 10) r = tokens - 10;
    const int whole = r < 1 ? static_cast<int>((tokens - 1) * r) : static_cast<int>(r);
    return std::max(0, std::min(whole, (tokens - 1) / 2));
  }

  int predict_tokens(int layer, int depth, int tokens, int) const override {
    check_blocks(depth);
    return acts(layer) ? tokens - fused(tokens) : tokens;
  }

  double matching_macs(int tokens_in, int, int, int, int width) const override {
    return static_cast<double>((tokens_in + 1) / 2) * (tokens_in / 2) * width;  // A x B cosines of x
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    if (ctx.distill_token) fail(spec(), "distilled models are not supported (the released MCTF protects only CLS)");
    check_blocks(ctx.depth);
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1);
    ReductionPlan plan;
    plan.tokens = N;
    if (!acts(ctx.layer)) return plan;
    const int64_t r = fused(static_cast<int>(N));
    if (r <= 0) return plan;
    const int64_t r1 = r / 2, r2 = r - r / 2;
    const at::Tensor& P = *ctx.attn;      // [B,H,N,N]
    const at::Tensor a = P.mean({1, 2});  // attention each token receives [B,N]

    // Scores [B, Na, Nb]
    const reduce::AbSplit xm = reduce::alternate(reduce::normalize(ctx.x));
    at::Tensor score = reduce::similarities(xm.a, xm.b);
    score = tau_sim_ > 0 ? ((score + 1) / 2).pow(1 / tau_sim_) : at::ones_like(score);  // tau 0: criterion off
    if (tau_info_ > 0) {
      at::Tensor inv = 1 / a;
      inv = inv / std::get<0>(inv.max(1, true));
      const reduce::AbSplit ia = reduce::alternate(inv.unsqueeze(2));
      score = score * (ia.a * ia.b.transpose(1, 2)).pow(1 / tau_info_);
    }
    if (tau_size_ > 0) {
      at::Tensor inv = 1 / ctx.size;
      inv = inv / std::get<0>(inv.max(1, true));
      const reduce::AbSplit is = reduce::alternate(inv.unsqueeze(2));
      score = score * (is.a * is.b.transpose(1, 2)).pow(1 / tau_size_);
    }
    score.select(1, 0).fill_(-std::numeric_limits<float>::infinity());  // CLS
    const int64_t Na = score.size(1), Nb = score.size(2);

    // Step 1: r1 A tokens into their best B.
    const reduce::RowBest best1 = reduce::row_best(score, ctx.record_margins);
    const at::Tensor &node_max = best1.value, &node_idx = best1.index;
    const at::Tensor edge_idx = node_max.argsort(-1, /*descending=*/true);
    const at::Tensor unm_a = std::get<0>(edge_idx.slice(1, r1).sort(1));  // [B, Na-r1] position order
    const at::Tensor src_a = edge_idx.slice(1, 0, r1);
    const at::Tensor dst_a = node_idx.gather(1, src_a);
    // Step 2: r2 B tokens into their best remaining A, on the same scores.
    const at::Tensor score2 = score.gather(1, unm_a.unsqueeze(2).expand({B, Na - r1, Nb})).transpose(1, 2);
    const reduce::RowBest best2 = reduce::row_best(score2, ctx.record_margins);  // [B, Nb]
    const at::Tensor &node_max2 = best2.value, &node_idx2 = best2.index;
    const at::Tensor edge_idx2 = std::get<1>(node_max2.sort(-1, /*descending=*/true));
    const at::Tensor src_b = edge_idx2.slice(1, 0, r2), unm_b = edge_idx2.slice(1, r2);
    const at::Tensor dst_b = node_idx2.gather(1, src_b);  // positions into unm_a = output slots

    const auto opts = ctx.x.options().dtype(at::kLong);
    const int64_t n_a = Na - r1;
    at::Tensor slot_a = at::empty({B, Na}, opts), slot_b = at::empty({B, Nb}, opts);
    slot_a.scatter_(1, unm_a, at::arange(n_a, opts).expand({B, n_a}));
    slot_b.scatter_(1, unm_b, (at::arange(Nb - r2, opts) + n_a).expand({B, Nb - r2}));
    slot_b.scatter_(1, src_b, dst_b);
    slot_a.scatter_(1, src_a, slot_b.gather(1, dst_a));
    plan.dest = at::empty({B, N}, opts);
    const reduce::AbSplit dest = reduce::alternate(plan.dest);
    dest.a.copy_(slot_a);
    dest.b.copy_(slot_b);
    plan.tokens = N - r;

    // Fusion weighted by attention received x size / max size; the block's attention fused the same way.
    const at::Tensor w = a * (ctx.size / std::get<0>(ctx.size.max(1, true)));
    at::Tensor norm;
    std::tie(plan.x, norm) = apply_plan(ctx.x, w, plan.dest, plan.tokens);
    plan.attn = fuse_attention(P, plan.dest, w, norm, plan.tokens);
    if (ctx.record_margins) {
      // Score units. A tokens decide in step 1 (the cut of the r1 best edges, and a fused one's choice of B), B
      // tokens in step 2 (the same over the remaining A tokens).
      plan.margin = at::full({B, N}, std::numeric_limits<float>::infinity(), score.options());
      reduce::alternate(plan.margin).a.copy_(reduce::bipartite_margin(best1, edge_idx, r1));
      reduce::alternate(plan.margin).b.copy_(reduce::bipartite_margin(best2, edge_idx2, r2));
      // Where a token lands sets the next acting block's A/B split: the remaining B tokens leave in descending
      // step-2 score (two with near-equal scores may swap places), and a pair can fuse either way round (A into B in
      // step 1, or B into A in step 2: the same group at another slot). So each output slot carries the smallest
      // margin of its members and its gap to its neighbours in the B order, and these join the margins of the tokens
      // they become in the next acting block, where such a swap first changes a partition.
      if (order_margin_.defined() && order_layer_ < ctx.layer && order_margin_.size(0) == B &&
          order_margin_.size(1) == N)
        plan.margin = at::minimum(plan.margin, order_margin_.to(plan.margin.device()));
      const at::Tensor gaps = reduce::neighbour_gap(node_max2, unm_b, Nb - r2);  // by B token
      at::Tensor slot_margin = at::full({B, plan.tokens}, std::numeric_limits<float>::infinity(), score.options());
      slot_margin.scatter_(1, slot_b.gather(1, unm_b), gaps.gather(1, unm_b));
      slot_margin = slot_margin.cpu().contiguous();
      const at::Tensor member = plan.margin.cpu().contiguous(), dest_cpu = plan.dest.cpu().contiguous();
      auto sm = slot_margin.accessor<float, 2>();
      auto mm = member.accessor<float, 2>();
      auto dd = dest_cpu.accessor<int64_t, 2>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < N; ++t) sm[b][dd[b][t]] = std::min(sm[b][dd[b][t]], mm[b][t]);
      order_margin_ = slot_margin;
      order_layer_ = ctx.layer;
    }
    return plan;
  }

 private:
  void check_blocks(int depth) const { reduce::check_blocks(spec(), blocks_, depth); }

  double r_;
  std::vector<int> blocks_;  // empty: 1 .. depth-1 (the DeiT-T script's activate_layer)
  // With margins: the order margins of the last acting block's output tokens (see plan) and that block.
  at::Tensor order_margin_;
  int order_layer_ = -1;
  double tau_sim_, tau_info_, tau_size_;
};

}  // namespace

std::unique_ptr<Reducer> make_mctf(ReducerSpec& spec) {
  const std::string where = "method spec '" + spec.text() + "'";
  // Defaults of run/eval_deit_t_mctf.sh: r 16, blocks 1..11, tau_sim 1, tau_info 20, tau_size 40.
  const double r = spec.get_double("r", 16, 0, 100000);
  if (r != std::floor(r) && r >= 1)
    fail(where, "mctf r= is a whole number of tokens, or a share below 1 (MCTF-Fast: 0.35)");
  std::vector<int> blocks = spec.get_int_list("blocks");
  std::sort(blocks.begin(), blocks.end());
  if (std::adjacent_find(blocks.begin(), blocks.end()) != blocks.end()) fail(where, "mctf blocks= lists a block twice");
  const double tau_sim = spec.get_double("tau_sim", 1, 0, 1000);
  const double tau_info = spec.get_double("tau_info", 20, 0, 1000);
  const double tau_size = spec.get_double("tau_size", 40, 0, 1000);
  return std::make_unique<Mctf>(r, std::move(blocks), tau_sim, tau_info, tau_size);
}

}  // namespace ms
