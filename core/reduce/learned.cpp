#include "learned.h"

#include "error.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace ms::reduce {

at::Tensor attention_importance(const at::Tensor& attn) { return attn.mean({1, 2}); }

namespace {
double parse_threshold(ReducerSpec& spec, const std::string& key) {
  const std::string s = spec.get_string(key, "");
  if (s == "inf" || s == "+inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  // strtod also takes "+5", " 5", hex and "nan"; the canonical form's exponents ("2.14748365e+09") stay valid.
  const bool odd_form = s.empty() || s[0] == '+' || s.find_first_of(" \t\n\r\f\vxXnN") != std::string::npos;
  if (*end || !std::isfinite(v) || odd_form)
    fail("method spec '" + spec.text() + "'", key + "='" + s + "' is not a number (or inf, -inf)");
  return v;
}
}  // namespace

LearnedSpec parse_learned_spec(ReducerSpec& spec, const std::string& method) {
  LearnedSpec out;
  out.has_file = spec.has("thresholds");
  out.has_prune_constant = spec.has("prune");
  out.has_merge_constant = method == "ltmp" && spec.has("merge");
  if (out.has_prune_constant) out.prune_constant = parse_threshold(spec, "prune");
  if (out.has_merge_constant) out.merge_constant = parse_threshold(spec, "merge");
  out.canonical = method + ":";
  std::string sep;
  if (out.has_file) {
    out.file = spec.get_string("thresholds", "");
    out.thresholds = load_thresholds(out.file, method);
    out.canonical += "thresholds=" + out.file;
    sep = ",";
  }
  auto constant_text = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return std::string(buf);
  };
  if (out.has_merge_constant) out.canonical += sep + "merge=" + constant_text(out.merge_constant), sep = ",";
  if (out.has_prune_constant) out.canonical += sep + "prune=" + constant_text(out.prune_constant), sep = ",";
  if (!out.has_file) {
    const bool complete = out.has_prune_constant && (method == "ltp" || out.has_merge_constant);
    if (!complete)
      fail("method spec '" + spec.text() + "'",
           method + " needs thresholds=FILE (from `mergescope-cli calibrate`)" +
               (method == "ltmp" ? " or both merge=V and prune=V" : " or prune=V"));
  }
  out.thresholds.method = method;
  return out;
}

LearnedThresholds LearnedSpec::resolve(int depth) const {
  LearnedThresholds t = thresholds;
  if (has_file) check_threshold_depth(t, depth, file);
  if (has_prune_constant) t.prune.assign(depth, prune_constant);
  if (t.method == "ltmp" && has_merge_constant) t.merge.assign(depth, merge_constant);
  return t;
}

}  // namespace ms::reduce
