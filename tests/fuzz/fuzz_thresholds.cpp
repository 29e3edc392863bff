// libFuzzer target: an LTP/LTMP thresholds JSON file through load_thresholds, as both methods. An accepted file
// must hold one finite-or-infinite threshold per block (two for ltmp) and survive save_thresholds ->
// load_thresholds unchanged, since `calibrate` writes exactly what `ltmp:thresholds=FILE` reads.
#include "fuzz_util.h"
#include "thresholds.h"

#include <cmath>
#include <string>

namespace {

bool same_values(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return false;  // NaN never equals: it must not be there at all
  return true;
}

void check_accepted(const ms::LearnedThresholds& t, const std::string& method) {
  using ms::fuzz::check;
  check(t.method == method, "asked for " + method + ", got thresholds for '" + ms::excerpt(t.method) + "'");
  check(!t.prune.empty(), "accepted a file without blocks");
  check(t.depth() == static_cast<int>(t.prune.size()), "depth() disagrees with the prune list");
  check(method == "ltmp" ? t.merge.size() == t.prune.size() : t.merge.empty(),
        method + " file with " + std::to_string(t.merge.size()) + " merge and " + std::to_string(t.prune.size()) +
            " prune thresholds");
  for (double v : t.prune) check(!std::isnan(v), "a NaN prune threshold was accepted");
  for (double v : t.merge) check(!std::isnan(v), "a NaN merge threshold was accepted");
  ms::check_threshold_depth(t, t.depth(), "fuzz");  // must not throw for its own depth

  static const std::string copy = ms::fuzz::scratch_file(".json");
  ms::save_thresholds(copy, t);
  const ms::LearnedThresholds again = ms::load_thresholds(copy, method);
  check(same_values(again.prune, t.prune) && same_values(again.merge, t.merge),
        "thresholds changed in a save/load round trip");
  check(again.model == t.model, "model name changed in a save/load round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ms::fuzz::scratch_file(".json");
  ms::fuzz::write_scratch(path, data, size);
  for (const char* method : {"ltmp", "ltp"})
    ms::fuzz::run_one([&] { check_accepted(ms::load_thresholds(path, method), method); });
  return 0;
}
