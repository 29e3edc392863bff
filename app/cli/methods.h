// --method / --match-macs handling shared by eval, bench, trace, compare and spectrum.
#pragma once

#include "args.h"

#include <memory>
#include <string>
#include <vector>

namespace ms {
struct VitConfig;
class Reducer;
}  // namespace ms

namespace ms::cli {

extern const std::set<std::string> kMethodOptions;  // method, match-macs, match-gmacs

// The method specs to run, in order. Bare `pitome` / `pitome-code` take the ratio (bare `tome` the r) whose MACs
// match --match-macs SPEC or --match-gmacs G. With `with_baseline`, "none" is put first unless given. The same
// method given twice (after matching, e.g. `tome:r=13` and `tome:r=13,prop_attn=1`) is an error: every method is
// one row (and one file) of the output, and two rows of one name could not be told apart.
std::vector<std::string> resolve_methods(const Args& args, const VitConfig& config, bool with_baseline);

// make_reducer, but "none" gives nullptr (the engine's plain path).
std::unique_ptr<Reducer> reducer_for(const std::string& spec);

}  // namespace ms::cli
