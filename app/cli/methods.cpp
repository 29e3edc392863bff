#include "methods.h"

#include "config.h"
#include "error.h"
#include "flops.h"
#include "reduce/reducer.h"

#include <algorithm>
#include <cstdio>

namespace ms::cli {

const std::set<std::string> kMethodOptions = {"method", "match-flops"};

std::unique_ptr<Reducer> reducer_for(const std::string& spec) {
  auto reducer = make_reducer(spec);  // validates "none" too
  if (spec == "none") return nullptr;
  return reducer;
}

std::vector<std::string> resolve_methods(const Args& args, const VitConfig& config, bool with_baseline) {
  std::vector<std::string> specs = args.all("method");
  if (specs.empty()) specs.push_back("none");
  double target = -1;
  if (args.has("match-flops")) {
    const std::string ref = args.get("match-flops");
    const auto reducer = make_reducer(ref);
    const auto tokens = predicted_tokens(config, *reducer);
    if (tokens.empty()) fail("--match-flops", "'" + ref + "' has image-dependent token counts; give a ToMe/PiToMe setting");
    target = model_cost(config, tokens, reducer.get()).gmacs();
  }
  for (auto& spec : specs) {
    if (spec != "pitome" && spec != "pitome-code") continue;
    if (target < 0) fail("--method " + spec, "needs ratio= (e.g. " + spec + ":ratio=0.9) or --match-flops SPEC");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s:ratio=%.4f", spec.c_str(), match_pitome_ratio(config, spec, target));
    std::fprintf(stderr, "%s matches %s at %.3f GMACs: %s\n", spec.c_str(), args.get("match-flops").c_str(), target, buf);
    spec = buf;
  }
  for (const auto& spec : specs) make_reducer(spec);  // every spec is checked before any work starts
  if (with_baseline && std::find(specs.begin(), specs.end(), "none") == specs.end()) specs.insert(specs.begin(), "none");
  return specs;
}

}  // namespace ms::cli
