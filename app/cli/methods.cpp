#include "methods.h"

#include "config.h"
#include "error.h"
#include "flops.h"
#include "reduce/reducer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ms::cli {

const std::set<std::string> kMethodOptions = {"method", "match-flops", "match-gflops"};

std::unique_ptr<Reducer> reducer_for(const std::string& spec) {
  auto reducer = make_reducer(spec);  // validates "none" too
  if (spec == "none") return nullptr;
  return reducer;
}

std::vector<std::string> resolve_methods(const Args& args, const VitConfig& config, bool with_baseline) {
  std::vector<std::string> specs = args.all("method");
  if (specs.empty()) specs.push_back("none");
  double target = -1;
  std::string target_name;
  if (args.has("match-flops") && args.has("match-gflops")) fail("--match-gflops", "give --match-flops SPEC or --match-gflops G, not both");
  if (args.has("match-flops")) {
    const std::string ref = args.get("match-flops");
    const auto reducer = make_reducer(ref);
    const auto tokens = predicted_tokens(config, *reducer);
    if (tokens.empty())
      fail("--match-flops", "'" + ref + "' has image-dependent token counts; evaluate it and pass its measured GMACs as --match-gflops G");
    target = model_cost(config, tokens, reducer.get()).gmacs();
    target_name = ref;
  }
  if (args.has("match-gflops")) {
    target = args.get_double("match-gflops", 0, 1e-6, 1e9);
    target_name = args.get("match-gflops") + " GMACs";
  }
  for (auto& spec : specs) {
    if (spec != "pitome" && spec != "pitome-code" && spec != "tome") continue;
    if (target < 0)
      fail("--method " + spec, "needs " + std::string(spec == "tome" ? "r= (e.g. tome:r=13)" : "ratio= (e.g. " + spec + ":ratio=0.9)") +
                                   " or --match-flops SPEC / --match-gflops G");
    char buf[64];
    if (spec == "tome") {
      // The constant r whose MACs come closest (r is an integer, so the match is to within one step).
      int best_r = 0;
      double best_gap = 1e300;
      for (int r = 0; r <= config.num_tokens() / 2; ++r) {
        const auto reducer = make_reducer("tome:r=" + std::to_string(r));
        const double gap = std::fabs(model_cost(config, predicted_tokens(config, *reducer), reducer.get()).gmacs() - target);
        if (gap < best_gap - 1e-12) best_gap = gap, best_r = r;
      }
      std::snprintf(buf, sizeof buf, "tome:r=%d", best_r);
    } else {
      std::snprintf(buf, sizeof buf, "%s:ratio=%.4f", spec.c_str(), match_pitome_ratio(config, spec, target));
    }
    std::fprintf(stderr, "%s matches %s at %.3f GMACs: %s\n", spec.c_str(), target_name.c_str(), target, buf);
    spec = buf;
  }
  for (const auto& spec : specs) make_reducer(spec);  // every spec is checked before any work starts
  if (with_baseline && std::find(specs.begin(), specs.end(), "none") == specs.end()) specs.insert(specs.begin(), "none");
  return specs;
}

}  // namespace ms::cli
