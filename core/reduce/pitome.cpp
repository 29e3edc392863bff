// PiToMe: Spectrum-Preserving Token Merging (Tran et al., NeurIPS 2024), in two variants.
//
// `pitome` follows the paper: energy E_i = 1/N sum_{j != i} f_m(cos(k_i, k_j)) over the non-CLS keys with
// f_m(x) = x for x >= m, alpha (exp(x - m) - 1) otherwise (Eq. 4, alpha = 1), margin m_l = 0.9 - 0.9 l / L.
// The 2k highest-energy tokens are merge candidates and alternate into A and B along the energy order;
// every A merges into its most similar B; the rest (isolated, informative tokens) are protected.
// Proportional attention is on. Output [CLS, protected in energy order, B].
//
// `pitome-code` follows the released algo/pitome/merge.py + patch/timm.py: energy = mean_j ELU(cos - m)
// with j = i included, m_l = 0.75 - 0.75 l / L, the first ceil(L/2) blocks use bipartite matching over
// all tokens split along the energy order (ToMe-style r best edges), no proportional attention.
// Both remove k = floor(T - T * ratio) of the T non-CLS tokens per block.
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace ms {
namespace {

enum class Variant { Paper, Code };

class Pitome final : public Reducer {
 public:
  Pitome(Variant variant, double ratio) : variant_(variant), ratio_(ratio) {}

  std::string spec() const override {
    return std::string(variant_ == Variant::Paper ? "pitome" : "pitome-code") +
           ":ratio=" + reduce::format_number(ratio_);
  }

  bool proportional_attention() const override { return variant_ == Variant::Paper; }

  // Tokens removed from T non-CLS tokens, computed in double exactly as math.floor(T - T * ratio).
  int removed(int non_prefix) const {
    return ratio_ < 1.0 ? static_cast<int>(std::floor(non_prefix - non_prefix * ratio_)) : 0;
  }

  int predict_tokens(int, int, int tokens, int prefix) const override { return tokens - removed(tokens - prefix); }

  double matching_macs(int tokens, int, int prefix, int key_dim, int) const override {
    const double t = tokens - prefix;
    return t * t * key_dim;  // the full T x T similarity behind the energies
  }

  reduce::EnergyFormula formula() const {
    return variant_ == Variant::Paper ? reduce::EnergyFormula::Paper : reduce::EnergyFormula::Code;
  }

  ReductionPlan plan(const ReducerContext& ctx) override {
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1), P = ctx.prefix_tokens, T = N - P;
    const int64_t r = removed(static_cast<int>(T));
    ReductionPlan plan;
    plan.tokens = N;
    if (r <= 0 && !ctx.record_energy) return plan;

    const at::Tensor metric = reduce::normalize(ctx.keys_mean.slice(1, P));
    const at::Tensor sim = reduce::similarities(metric, metric);
    const at::Tensor e = reduce::energy(metric, reduce::energy_margin(formula(), ctx.layer, ctx.depth), formula(), sim);
    if (ctx.record_energy) plan.energy = reduce::with_prefix(e, P, std::nan(""));
    if (r <= 0) return plan;
    const at::Tensor order = e.argsort(-1, /*descending=*/true);
    const auto opts = ctx.x.options().dtype(at::kLong);
    at::Tensor dest_t = at::empty({B, T}, opts);  // slot of each non-prefix token, before adding P

    const bool bipartite = variant_ == Variant::Code && ctx.layer < (ctx.depth + 1) / 2;
    // Margins: a token's role (A or B) follows its place in the energy order, so the gap to its neighbours
    // there counts, then the matching's own decisions.
    at::Tensor margin_t;  // [B,T]
    if (bipartite) {
      // pitome_bsm: A/B alternate along the energy order over all T tokens; r best A->B edges merge.
      const reduce::AbSplit ab = reduce::alternate(order);
      const at::Tensor &a_idx = ab.a, &b_idx = ab.b;
      const int64_t Nb = b_idx.size(1);
      const reduce::RowBest best = reduce::best_b_among(sim, a_idx, b_idx, ctx.record_margins);
      const at::Tensor &node_max = best.value, &node_idx = best.index;
      const at::Tensor edge_idx = node_max.argsort(-1, true);
      const at::Tensor unm = edge_idx.slice(1, r), src = edge_idx.slice(1, 0, r);
      const int64_t n_unm = unm.size(1);
      // Output [unm (edge order, not sorted), B]: the released code does not re-sort here.
      dest_t.scatter_(1, a_idx.gather(1, unm), at::arange(n_unm, opts).expand({B, n_unm}));
      dest_t.scatter_(1, a_idx.gather(1, src), node_idx.gather(1, src) + n_unm);
      dest_t.scatter_(1, b_idx, (at::arange(Nb, opts) + n_unm).expand({B, Nb}));
      plan.tokens = P + n_unm + Nb;
      if (ctx.record_margins) {
        margin_t = reduce::neighbour_gap(e, order, T);
        margin_t.scatter_(1, a_idx,
                          at::minimum(margin_t.gather(1, a_idx), reduce::bipartite_margin(best, edge_idx, r)));
      }
    } else {
      // The 2r highest-energy tokens alternate into A and B; each A merges into its most similar B.
      const at::Tensor protect = order.slice(1, 2 * r);
      const reduce::AbSplit ab = reduce::alternate(order.slice(1, 0, 2 * r));
      const at::Tensor &a_idx = ab.a, &b_idx = ab.b;
      const int64_t n_prot = T - 2 * r;
      const reduce::RowBest best = reduce::best_b_among(sim, a_idx, b_idx, ctx.record_margins);
      dest_t.scatter_(1, protect, at::arange(n_prot, opts).expand({B, n_prot}));
      dest_t.scatter_(1, b_idx, (at::arange(r, opts) + n_prot).expand({B, r}));
      dest_t.scatter_(1, a_idx, best.index + n_prot);
      plan.tokens = P + n_prot + r;
      if (ctx.record_margins) {  // the energy cut at 2r, the A/B alternation among candidates, each A's B
        margin_t = at::minimum(reduce::cut_margin(e, order, 2 * r), reduce::neighbour_gap(e, order, 2 * r));
        margin_t.scatter_(1, a_idx, at::minimum(margin_t.gather(1, a_idx), best.gap));
      }
    }
    if (ctx.record_margins) plan.margin = reduce::with_prefix(margin_t, P, std::numeric_limits<double>::infinity());
    plan.dest = at::empty({B, N}, opts);
    plan.dest.slice(1, 0, P).copy_(at::arange(P, opts).expand({B, P}));
    plan.dest.slice(1, P).copy_(dest_t + P);
    return plan;
  }

 private:
  Variant variant_;
  double ratio_;
};

std::unique_ptr<Reducer> make(ReducerSpec& spec, Variant v) {
  if (!spec.has("ratio"))
    fail("method spec '" + spec.text() + "'", spec.method() + " needs ratio= (kept fraction per block, 0.5 to 1)");
  return std::make_unique<Pitome>(v, spec.get_double("ratio", 1.0, 0.5, 1.0));
}

}  // namespace

std::unique_ptr<Reducer> make_pitome(ReducerSpec& spec) { return make(spec, Variant::Paper); }
std::unique_ptr<Reducer> make_pitome_code(ReducerSpec& spec) { return make(spec, Variant::Code); }

}  // namespace ms
