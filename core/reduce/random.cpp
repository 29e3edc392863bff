// Random merging: r random pairs of unprotected tokens merge in every block. No method should do worse;
// it is the floor every accuracy table needs.
#include "error.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace ms {
namespace {

class RandomMerge final : public Reducer {
 public:
  RandomMerge(int r, int seed) : r_(r), seed_(seed), gen_(at::detail::createCPUGenerator(seed)) {}

  std::string spec() const override { return "random:r=" + std::to_string(r_) + (seed_ ? ",seed=" + std::to_string(seed_) : ""); }

  int clamp(int tokens, int prefix) const { return std::max(0, std::min(r_, (tokens - prefix) / 2)); }
  int predict_tokens(int, int, int tokens, int prefix) const override { return tokens - clamp(tokens, prefix); }

  ReductionPlan plan(const ReducerContext& ctx) override {
    const int64_t B = ctx.x.size(0), N = ctx.x.size(1), P = ctx.prefix_tokens, T = N - P;
    const int64_t r = clamp(static_cast<int>(N), static_cast<int>(P));
    ReductionPlan plan;
    plan.tokens = N;
    if (r <= 0) return plan;
    const auto opts = at::TensorOptions().dtype(at::kLong);
    // Per image: a random permutation; its first r tokens merge into the next r, the rest stay.
    const at::Tensor perm = at::rand({B, T}, gen_).argsort(-1, false);
    const at::Tensor src = perm.slice(1, 0, r), dst = perm.slice(1, r, 2 * r), keep = perm.slice(1, r);
    at::Tensor dest_t = at::empty({B, T}, opts);
    // Survivors keep their relative order so the output stays spatially sorted.
    const at::Tensor keep_sorted = std::get<0>(keep.sort(1));
    dest_t.scatter_(1, keep_sorted, at::arange(T - r, opts).expand({B, T - r}));
    dest_t.scatter_(1, src, dest_t.gather(1, dst));
    plan.dest = at::empty({B, N}, opts);
    plan.dest.slice(1, 0, P).copy_(at::arange(P, opts).expand({B, P}));
    plan.dest.slice(1, P).copy_(dest_t + P);
    plan.tokens = N - r;
    return plan;
  }

 private:
  int r_, seed_;
  at::Generator gen_;
};

}  // namespace

std::unique_ptr<Reducer> make_random(ReducerSpec& spec) {
  const int r = spec.get_int("r", -1, 0, 100000);
  if (r < 0) fail("method spec '" + spec.text() + "'", "random needs r=N");
  return std::make_unique<RandomMerge>(r, spec.get_int("seed", 0, 0, 1 << 30));
}

}  // namespace ms
