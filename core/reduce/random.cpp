// Random merging: r random pairs of unprotected tokens merge in every block. No method should do worse;
// it is the floor every accuracy table needs.
//
// Seeding: every image draws from its own generator, seeded from (seed=, the image's key, the block), where the
// key is a hash of the image's preprocessed pixels (reduce::content_keys, computed by the engine). So
// `random:r=13,seed=0` merges an image the same way at any --batch and --offset, in any position of its batch and
// in any command: a spec is a pure function of (model, image, spec), and two identical images merge alike. A
// generator kept across calls would make an image's merges depend on how many draws came before it.
#include "error.h"
#include "ops.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace ms {
namespace {

// splitmix64's finaliser: spreads every input bit over the whole word, so nearby seeds, keys and blocks give
// unrelated generator seeds.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class RandomMerge final : public Reducer {
 public:
  RandomMerge(int r, int seed) : r_(r), seed_(seed) {}

  std::string spec() const override {
    return "random:r=" + std::to_string(r_) + (seed_ ? ",seed=" + std::to_string(seed_) : "");
  }
  bool wants_image_keys() const override { return true; }

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
    // Without keys from the engine (a reducer driven directly) the block's tokens stand in for the pixels:
    // still deterministic, but no longer the same key in every block.
    const std::vector<uint64_t> keys = ctx.image_keys ? *ctx.image_keys : reduce::content_keys(ctx.x);
    std::vector<at::Tensor> perms;
    for (int64_t b = 0; b < B; ++b) {
      const uint64_t key = keys.at(b);
      at::Generator gen = at::detail::createCPUGenerator(mix(mix(mix(static_cast<uint64_t>(seed_)) ^ key) ^ ctx.layer));
      perms.push_back(at::rand({T}, gen).argsort(-1, false));
    }
    const at::Tensor perm = at::stack(perms);
    const at::Tensor src = perm.slice(1, 0, r), dst = perm.slice(1, r, 2 * r), keep = perm.slice(1, r);
    at::Tensor dest_t = at::empty({B, T}, opts);
    // Survivors keep their relative order so the output stays spatially sorted.
    const at::Tensor keep_sorted = std::get<0>(keep.sort(1));
    dest_t.scatter_(1, keep_sorted, at::arange(T - r, opts).expand({B, T - r}));
    dest_t.scatter_(1, src, dest_t.gather(1, dst));
    plan.dest = at::empty({B, N}, opts);
    plan.dest.slice(1, 0, P).copy_(at::arange(P, opts).expand({B, P}));
    plan.dest.slice(1, P).copy_(dest_t + P);
    plan.dest = plan.dest.to(ctx.x.device());  // drawn on the CPU (per-image generators), applied where the tokens are
    plan.tokens = N - r;
    return plan;
  }

 private:
  int r_, seed_;
};

}  // namespace

std::unique_ptr<Reducer> make_random(ReducerSpec& spec) {
  const int r = spec.get_int("r", -1, 0, 100000);
  if (r < 0) fail("method spec '" + spec.text() + "'", "random needs r=N");
  return std::make_unique<RandomMerge>(r, spec.get_int("seed", 0, 0, 1 << 30));
}

}  // namespace ms
