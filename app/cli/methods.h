// --method / --match-flops handling shared by eval, bench, trace.
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

extern const std::set<std::string> kMethodOptions;  // method, match-flops

// The method specs to run, in order. Bare `pitome` / `pitome-code` take the ratio whose GFLOPs match
// --match-flops SPEC. With `with_baseline`, "none" is put first unless given.
std::vector<std::string> resolve_methods(const Args& args, const VitConfig& config, bool with_baseline);

// make_reducer, but "none" gives nullptr (the engine's plain path).
std::unique_ptr<Reducer> reducer_for(const std::string& spec);

}  // namespace ms::cli
