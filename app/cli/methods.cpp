#include "methods.h"

#include "config.h"
#include "error.h"
#include "flops.h"
#include "reduce/reducer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ms::cli {

const std::set<std::string> kMethodOptions = {"method", "match-macs", "match-gmacs"};

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
  if (args.has("match-macs") && args.has("match-gmacs"))
    fail("--match-gmacs", "give --match-macs SPEC or --match-gmacs G, not both");
  if (args.has("match-macs")) {
    const std::string ref = args.get("match-macs");
    const auto reducer = make_reducer(ref);
    const auto tokens = predicted_tokens(config, *reducer);
    if (tokens.empty())
      fail(
          "--match-macs",
          "'" + ref + "' has image-dependent token counts; evaluate it and pass its measured GMACs as --match-gmacs G");
    target = model_cost(config, tokens, reducer.get()).gmacs();
    target_name = ref;
  }
  if (args.has("match-gmacs")) {
    target = args.get_double("match-gmacs", 0, 1e-6, 1e9);
    target_name = args.get("match-gmacs") + " GMACs";
  }
  std::vector<std::string> notes;  // printed once every spec is known to be valid and distinct
  for (auto& spec : specs) {
    const std::string key = matchable_strength(spec);  // a bare method name whose strength can be matched
    if (key.empty()) continue;
    if (target < 0) {
      if (spec == "evit" || spec == "mctf") continue;  // their released defaults (keep 0.7; r 16)
      fail("--method " + spec, "needs " + key + "= (e.g. " + spec + ":" + key + "=" + (key == "r" ? "13" : "0.9") +
                                   ") or --match-macs SPEC / --match-gmacs G");
    }
    const std::string matched = match_strength(config, spec, target);
    char note[256];
    std::snprintf(note, sizeof note, "%s matches %s at %.3f GMACs: %s", spec.c_str(), target_name.c_str(), target,
                  matched.c_str());
    notes.push_back(note);
    spec = matched;
  }
  // Every spec is checked before any work starts, and each method may appear once.
  std::vector<std::string> canonical;
  for (size_t i = 0; i < specs.size(); ++i) {
    canonical.push_back(make_reducer(specs[i])->spec());
    for (size_t j = 0; j < i; ++j)
      if (canonical[j] == canonical[i])
        fail("--method " + specs[i], specs[i] == specs[j]
                                         ? "given twice"
                                         : "the same method as --method " + specs[j] + " (" + canonical[i] + ")");
  }
  for (const auto& note : notes) std::fprintf(stderr, "%s\n", note.c_str());
  if (with_baseline && std::find(specs.begin(), specs.end(), "none") == specs.end())
    specs.insert(specs.begin(), "none");
  return specs;
}

}  // namespace ms::cli
