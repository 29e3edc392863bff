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

double match_pitome_ratio(const VitConfig& c, const std::string& method, double target_gmacs) {
  double best_ratio = 1.0, best_gap = INFINITY;
  // Token counts are step functions of the ratio; a 1e-4 grid over [0.5, 1] finds every step.
  for (int i = 10000; i >= 5000; --i) {
    const double ratio = i * 1e-4;
    char spec[64];
    std::snprintf(spec, sizeof spec, "%s:ratio=%.4f", method.c_str(), ratio);
    const auto reducer = make_reducer(spec);
    const double gmacs = model_cost(c, predicted_tokens(c, *reducer), reducer.get()).gmacs();
    const double gap = std::fabs(gmacs - target_gmacs);
    if (gap < best_gap - 1e-12) {
      best_gap = gap;
      best_ratio = ratio;
    }
  }
  return best_ratio;
}

}  // namespace ms
