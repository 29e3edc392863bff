#include "error.h"
#include "reducer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace ms {

// One line per method: name, description, factory (defined in the method's own file).
std::unique_ptr<Reducer> make_none(ReducerSpec&);
std::unique_ptr<Reducer> make_tome(ReducerSpec&);
std::unique_ptr<Reducer> make_pitome(ReducerSpec&);
std::unique_ptr<Reducer> make_pitome_code(ReducerSpec&);
std::unique_ptr<Reducer> make_random(ReducerSpec&);
std::unique_ptr<Reducer> make_ltp(ReducerSpec&);
std::unique_ptr<Reducer> make_ltmp(ReducerSpec&);
std::unique_ptr<Reducer> make_tofu(ReducerSpec&);
std::unique_ptr<Reducer> make_mctf(ReducerSpec&);
std::unique_ptr<Reducer> make_dct(ReducerSpec&);
std::unique_ptr<Reducer> make_diffrate(ReducerSpec&);
std::unique_ptr<Reducer> make_evit(ReducerSpec&);

namespace {

struct Entry {
  const char* name;
  const char* description;
  ReducerFactory factory;
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"none", "no reduction", make_none},
      {"tome", "ToMe bipartite soft matching: r=, inflect=, schedule=a;b;c, prop_attn=0|1", make_tome},
      {"pitome",
       "PiToMe as the paper writes it (Eq. 4 energy, margin 0.9-0.9l/L, prop. attention): ratio=", make_pitome},
      {"pitome-code", "PiToMe as the released code behaves (ELU energy, margin 0.75-0.75l/L, BSM first half): ratio=",
       make_pitome_code},
      {"random", "random pairs merged, a floor for every method: r=, seed=", make_random},
      {"ltp", "learned per-block prune thresholds on attention received (LTP): thresholds=FILE, prune=V", make_ltp},
      {"ltmp", "learned per-block merge + prune thresholds (LTMP): thresholds=FILE, merge=V, prune=V", make_ltmp},
      {"tofu",
       "ToFu as released in PiToMe's algo/tofu (prune early blocks, norm-rescaled merge late): ratio=", make_tofu},
      {"mctf",
       "MCTF (mlvlab/MCTF): multi-criteria score, bidirectional, one-step-ahead attention: r=16, blocks=, "
       "tau_sim=, tau_info=, tau_size=",
       make_mctf},
      {"dct", "DCT low-pass along the tokens after every MLP (PiToMe's algo/dct; mixes all tokens): ratio=", make_dct},
      {"diffrate", "DiffRate (PiToMe's algo/DiffRate): CLS-attention prune + merge; r=, ratio= or prune=..,merge=..",
       make_diffrate},
      {"evit", "EViT (youweiliang/evit): keep top-k by CLS attention, fuse the rest: keep=0.7, fuse=1, blocks=3;6;9",
       make_evit},
  };
  return entries;
}

class NoReduction final : public Reducer {
 public:
  std::string spec() const override { return "none"; }
  int predict_tokens(int, int, int tokens, int) const override { return tokens; }
  ReductionPlan plan(const ReducerContext& ctx) override {
    ReductionPlan plan;
    plan.tokens = ctx.x.size(1);
    return plan;
  }
};

}  // namespace

std::unique_ptr<Reducer> make_none(ReducerSpec&) { return std::make_unique<NoReduction>(); }

ReducerSpec::ReducerSpec(const std::string& text) : text_(text) {
  const auto colon = text.find(':');
  method_ = text.substr(0, colon);
  if (method_.empty()) fail("method spec '" + text + "'", "no method name");
  if (colon == std::string::npos) return;
  const std::string rest = text.substr(colon + 1);
  size_t start = 0;
  while (start <= rest.size()) {
    const auto comma = rest.find(',', start);
    const std::string item = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto eq = item.find('=');
    if (item.empty() || eq == std::string::npos || eq == 0)
      fail("method spec '" + text + "'", "expected key=value, got '" + item + "'");
    const std::string key = item.substr(0, eq);
    if (values_.count(key)) fail("method spec '" + text + "'", "key '" + key + "' given twice");
    values_[key] = item.substr(eq + 1);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

std::string ReducerSpec::take(const std::string& key) {
  used_[key] = true;
  return values_.at(key);
}

namespace {
// strtod/strtol accept leading blanks, '+' and hex; a spec number is plain decimal.
bool plain_decimal(const std::string& s) {
  if (s.empty()) return false;
  for (char ch : s)
    if (!(std::isdigit(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == 'e' || ch == 'E'))
      return false;
  return true;
}
}  // namespace

double ReducerSpec::get_double(const std::string& key, double fallback, double min, double max) {
  if (!has(key)) return fallback;
  const std::string s = take(key);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (!plain_decimal(s) || *end || errno || !std::isfinite(v))
    fail("method spec '" + text_ + "'", key + "='" + s + "' is not a number");
  if (v < min || v > max)
    fail("method spec '" + text_ + "'",
         key + "=" + s + " is outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

int ReducerSpec::get_int(const std::string& key, int fallback, int min, int max) {
  if (!has(key)) return fallback;
  const std::string s = take(key);
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (!plain_decimal(s) || *end || errno) fail("method spec '" + text_ + "'", key + "='" + s + "' is not an integer");
  if (v < min || v > max)
    fail("method spec '" + text_ + "'",
         key + "=" + s + " is outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return static_cast<int>(v);
}

bool ReducerSpec::get_bool(const std::string& key, bool fallback) {
  if (!has(key)) return fallback;
  const std::string s = take(key);
  if (s == "1" || s == "true" || s == "on") return true;
  if (s == "0" || s == "false" || s == "off") return false;
  fail("method spec '" + text_ + "'", key + "='" + s + "' is not a boolean (use 0 or 1)");
}

std::vector<int> ReducerSpec::get_int_list(const std::string& key) {
  std::vector<int> out;
  if (!has(key)) return out;
  const std::string s = take(key);
  size_t start = 0;
  while (start <= s.size()) {
    const auto semi = s.find(';', start);
    const std::string item = s.substr(start, semi == std::string::npos ? std::string::npos : semi - start);
    // Digits only, as get_int's plain_decimal: strtol alone would take " 8" and "+8". Six digits bound the value
    // before strtol can overflow.
    const bool digits = !item.empty() && item.size() <= 6 && std::all_of(item.begin(), item.end(), [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch));
    });
    const long v = digits ? std::strtol(item.c_str(), nullptr, 10) : -1;
    if (!digits || v > 100000)
      fail("method spec '" + text_ + "'",
           key + " entry '" + item + "' is not a non-negative integer (digits only, at most 100000)");
    out.push_back(static_cast<int>(v));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  return out;
}

std::string ReducerSpec::get_string(const std::string& key, const std::string& fallback) {
  if (!has(key)) return fallback;
  const std::string s = take(key);
  if (s.empty()) fail("method spec '" + text_ + "'", key + "= is empty");
  return s;
}

void ReducerSpec::finish() const {
  for (const auto& [key, value] : values_)
    if (!used_.count(key)) fail("method spec '" + text_ + "'", "unknown key '" + key + "' for method " + method_);
}

std::unique_ptr<Reducer> make_reducer(const std::string& text) {
  ReducerSpec spec(text);
  for (const auto& e : registry())
    if (spec.method() == e.name) {
      auto reducer = e.factory(spec);
      spec.finish();
      return reducer;
    }
  std::string names;
  for (const auto& e : registry()) names += std::string(names.empty() ? "" : ", ") + e.name;
  fail("method spec '" + text + "'", "unknown method '" + spec.method() + "' (known: " + names + ")");
}

std::vector<std::pair<std::string, std::string>> reducer_methods() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : registry()) out.emplace_back(e.name, e.description);
  return out;
}

namespace reduce {
void check_blocks(const std::string& spec, const std::vector<int>& blocks, int depth) {
  for (int b : blocks)
    if (b >= depth)
      fail(spec, "block " + std::to_string(b) + " does not exist (the model has " + std::to_string(depth) +
                     " blocks, 0-based)");
}

std::string format_list(const std::vector<int>& values) {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ";" : "") + std::to_string(values[i]);
  return s;
}

std::string format_number(double v) {
  // The shortest plain decimal that parses back to v, so a canonical spec names exactly the method that runs
  // (std::to_string's six decimals turned 1e-81 into "0", a different and possibly invalid spec); exponent
  // form (without '+', which spec numbers do not take) only where plain decimals would be long.
  char buf[64];
  for (int decimals = 0; decimals <= 17; ++decimals) {
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    if (std::strlen(buf) <= 24 && std::strtod(buf, nullptr) == v) return buf;
  }
  for (int digits = 1; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  s.erase(std::remove(s.begin(), s.end(), '+'), s.end());
  return s;
}
}  // namespace reduce

}  // namespace ms
