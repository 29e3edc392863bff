#include "flops.h"

#include "config.h"
#include "error.h"
#include "reduce/reducer.h"

#include <cmath>
#include <cstdio>

namespace ms {

std::vector<int> predicted_tokens(const VitConfig& c, const Reducer& reducer) {
  std::vector<int> out;
  int n = c.num_tokens();
  for (int l = 0; l < c.depth; ++l) {
    n = reducer.predict_tokens(l, c.depth, n, c.num_prefix_tokens());
    if (n < 0) return {};
    out.push_back(n);
  }
  return out;
}

std::string matchable_strength(const std::string& method) {
  if (method == "tome" || method == "mctf") return "r";
  if (method == "pitome" || method == "pitome-code" || method == "tofu" || method == "dct" || method == "diffrate")
    return "ratio";
  if (method == "evit") return "keep";
  return "";
}

std::string match_strength(const VitConfig& c, const std::string& method, double target_gmacs) {
  const std::string key = matchable_strength(method);
  if (key.empty()) fail("--match-macs", "method " + method + " has no strength to match");
  std::string best_spec;
  double best_gap = INFINITY;
  auto consider = [&](const std::string& spec) {
    const auto reducer = make_reducer(spec);
    const double gap = std::fabs(model_cost(c, predicted_tokens(c, *reducer), reducer.get()).gmacs() - target_gmacs);
    if (gap < best_gap - 1e-12) best_gap = gap, best_spec = spec;
  };
  char spec[64];
  if (key == "r") {
    for (int r = 0; r <= c.num_tokens() / 2; ++r) consider(method + ":r=" + std::to_string(r));
  } else {
    // From no reduction down; ToFu's ratio must stay above 0.5, the others reach lower costs below it.
    const int lowest = method == "tofu" ? 5001 : method == "evit" || method == "dct" ? 1000 : 5000;
    for (int i = 10000; i >= lowest; --i) {
      std::snprintf(spec, sizeof spec, "%s:%s=%.4f", method.c_str(), key.c_str(), i * 1e-4);
      consider(spec);
    }
  }
  return best_spec;
}

}  // namespace ms
