#include "sweep.h"

#include "batch.h"
#include "checkpoint.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "io.h"
#include "labels.h"
#include "model.h"
#include "plot.h"
#include "reduce/reducer.h"
#include "spectral_distance.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace ms {
namespace {

namespace fs = std::filesystem;
// Ordered, so that a method's keys become a spec in the order the sweep file writes them.
using Json = nlohmann::ordered_json;

constexpr uint64_t kMaxSweepFileBytes = 1 << 20;
constexpr uint64_t kMaxUnitFileBytes = uint64_t(1) << 30;
constexpr int kMaxValuesPerKey = 1000;
constexpr int kUnitFormat = 1;

std::string describe(const Json& v) { return describe_json(nlohmann::json::parse(v.dump())); }

// Messages name the sweep file and the key: "sweep.json: images.chunk: ...".
[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& what) {
  fail(source, key + ": " + what);
}

std::string get_string(const Json& v, const std::string& source, const std::string& key) {
  if (!v.is_string()) bad(source, key, "is " + describe(v) + ", expected a string");
  const std::string s = v.get<std::string>();
  if (s.empty()) bad(source, key, "is empty");
  return s;
}

int get_int(const Json& v, const std::string& source, const std::string& key, int min, int max) {
  if (!v.is_number_integer()) bad(source, key, "is " + describe(v) + ", expected an integer");
  const int64_t i = v.get<int64_t>();
  if (i < min || i > max)
    bad(source, key, std::to_string(i) + " is out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return static_cast<int>(i);
}

double get_number(const Json& v, const std::string& source, const std::string& key) {
  if (!v.is_number()) bad(source, key, "is " + describe(v) + ", expected a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) bad(source, key, "is not finite");
  return d;
}

void check_keys(const Json& object, const std::set<std::string>& known, const std::string& source,
                const std::string& where) {
  for (const auto& [key, value] : object.items()) {
    (void)value;
    if (known.count(key)) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    bad(source, where.empty() ? excerpt(key) : where + "." + excerpt(key),
        "unknown key (expected one of " + list + ")");
  }
}

// A value of a method key as it appears in a spec: integers without a decimal point, others as the
// canonical specs print them.
std::string spec_value(const Json& v, const std::string& source, const std::string& key) {
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return reduce::format_number(get_number(v, source, key));
  const std::string s = get_string(v, source, key);
  if (s.find_first_of(",=") != std::string::npos)
    bad(source, key, "'" + excerpt(s) + "' cannot hold ',' or '=' (it goes into a method spec)");
  return s;
}

// A method key's values: one value, a list, or {"from": a, "to": b, "step": s} (b included).
std::vector<std::string> key_values(const Json& v, const std::string& source, const std::string& key) {
  std::vector<std::string> out;
  if (v.is_array()) {
    if (v.empty()) bad(source, key, "is an empty list");
    if (v.size() > static_cast<size_t>(kMaxValuesPerKey))
      bad(source, key, "has more than " + std::to_string(kMaxValuesPerKey) + " values");
    for (size_t i = 0; i < v.size(); ++i) out.push_back(spec_value(v[i], source, key + "[" + std::to_string(i) + "]"));
  } else if (v.is_object()) {
    check_keys(v, {"from", "to", "step"}, source, key);
    for (const char* k : {"from", "to", "step"})
      if (!v.contains(k)) bad(source, key, std::string("a range needs \"") + k + "\"");
    const double from = get_number(v["from"], source, key + ".from"), to = get_number(v["to"], source, key + ".to"),
                 step = get_number(v["step"], source, key + ".step");
    if (step <= 0) bad(source, key + ".step", "must be positive");
    if (to < from) bad(source, key, "\"to\" is below \"from\"");
    // A small tolerance so that 0.9 .. 0.95 step 0.01 includes 0.95 despite rounding.
    const double count = std::floor((to - from) / step + 1e-9) + 1;
    if (count > kMaxValuesPerKey) bad(source, key, "gives more than " + std::to_string(kMaxValuesPerKey) + " values");
    const bool integral = v["from"].is_number_integer() && v["step"].is_number_integer();
    for (int i = 0; i < static_cast<int>(count); ++i) {
      const double x = from + i * step;
      out.push_back(integral ? std::to_string(static_cast<int64_t>(std::llround(x))) : reduce::format_number(x));
    }
  } else {
    out.push_back(spec_value(v, source, key));
  }
  return out;
}

SweepMethodRule parse_method(const Json& v, const std::string& source, const std::string& where) {
  SweepMethodRule rule;
  rule.where = where;
  if (v.is_string()) {
    rule.spec = get_string(v, source, where);
    return rule;
  }
  if (!v.is_object()) bad(source, where, "is " + describe(v) + ", expected a spec string or an object");
  if (!v.contains("method")) bad(source, where, "needs \"method\" (e.g. \"tome\")");
  rule.method = get_string(v["method"], source, where + ".method");
  if (rule.method.find_first_of(":,=") != std::string::npos)
    bad(source, where + ".method",
        "'" + excerpt(rule.method) + "' is a method name; put its keys beside it (\"r\": 13)");
  for (const auto& [key, value] : v.items()) {
    const std::string at = where + "." + excerpt(key);
    if (key == "method") continue;
    if (key == "match") {
      rule.match = get_string(value, source, at);
    } else if (key == "models") {
      if (!value.is_array() || value.empty())
        bad(source, at, "is " + describe(value) + ", expected a list of model names");
      for (size_t i = 0; i < value.size(); ++i)
        rule.models.push_back(get_string(value[i], source, at + "[" + std::to_string(i) + "]"));
    } else {
      rule.keys.emplace_back(key, key_values(value, source, at));
    }
  }
  if (!rule.match.empty()) {
    if (matchable_strength(rule.method).empty())
      bad(source, where + ".match",
          "only tome, pitome, pitome-code, tofu, mctf, dct, diffrate and evit take a strength matched to another "
          "method's GMACs");
    if (!rule.keys.empty())
      bad(source, where, "\"match\" sets the " + matchable_strength(rule.method) + "; give no other keys with it");
  }
  return rule;
}

uint64_t fnv1a(const std::string& text, uint64_t h = 14695981039346656037ull) {
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
  return h;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string file_fingerprint(const std::string& path) {
  const std::vector<char> bytes = read_file(path);
  return hex16(fnv1a(std::string(bytes.begin(), bytes.end())));
}

// Specs of one rule for one model, before matching.
std::vector<std::string> rule_specs(const SweepMethodRule& rule) {
  if (!rule.spec.empty()) return {rule.spec};
  std::vector<std::string> specs = {""};
  for (const auto& [key, values] : rule.keys) {
    std::vector<std::string> next;
    for (const auto& prefix : specs)
      for (const auto& v : values) next.push_back(prefix + (prefix.empty() ? "" : ",") + key + "=" + v);
    specs = std::move(next);
  }
  for (auto& s : specs) s = s.empty() ? rule.method : rule.method + ":" + s;
  return specs;
}

std::string family_of(const std::string& spec) { return spec.substr(0, spec.find(':')); }

// The random reducer advances one generator over every batch it sees, so its draws depend on everything
// before an image: it only reproduces eval as one unit over all images.
bool draws_in_sequence(const std::string& spec) { return family_of(spec) == "random"; }

// What eval --match-macs does for a bare method: the strength whose predicted MACs are closest (analysis/flops.h).
std::string matched_spec(const SweepMethodRule& rule, const VitConfig& config, const std::string& target,
                         const std::string& source) {
  const auto reducer = make_reducer(target);
  const auto tokens = predicted_tokens(config, *reducer);
  if (tokens.empty())
    bad(source, rule.where + ".match",
        "'" + target + "' has image-dependent token counts; give " + rule.method + " its strength instead");
  return match_strength(config, rule.method, model_cost(config, tokens, reducer.get()).gmacs());
}

// Learned thresholds are checked for depth only when loaded, so the two tiny models (both 12 blocks) would
// take each other's files silently. A threshold file records the weights it was calibrated on; refuse it for
// another model.
void check_thresholds_model(const SweepFile& sw, const SweepMethodRule& rule, const std::string& spec,
                            const std::string& model, const std::string& weights) {
  ReducerSpec parsed(spec);
  if (!parsed.has("thresholds")) return;
  const std::string file = parsed.get_string("thresholds", "");
  std::string calibrated_on;
  try {
    const std::vector<char> bytes = read_file(file, kMaxSweepFileBytes, "threshold file");
    const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
    if (j.is_object() && j.contains("model") && j["model"].is_string()) calibrated_on = j["model"].get<std::string>();
  } catch (const std::exception&) {
    return;  // make_reducer has read it already; an odd file is its business
  }
  if (calibrated_on.empty()) return;
  std::error_code ec1, ec2;
  const bool same = fs::exists(calibrated_on, ec1) ? fs::equivalent(calibrated_on, weights, ec2)
                                                   : fs::path(calibrated_on).parent_path().filename() ==
                                                         fs::path(weights).parent_path().filename();
  if (!same)
    bad(sw.path, rule.where,
        file + " holds thresholds calibrated on " + excerpt(calibrated_on, 120) + ", not on " + model + " (" + weights +
            "); give the rule \"models\": [\"<its model>\"]");
}

std::vector<std::string> expand_methods(const SweepFile& sw, const std::string& model, const VitConfig& config,
                                        const std::string& weights) {
  auto applies = [&](const SweepMethodRule& r) {
    return r.models.empty() || std::find(r.models.begin(), r.models.end(), model) != r.models.end();
  };
  // Matching looks at every unmatched spec of the model, wherever it stands in the list.
  std::vector<std::string> unmatched;
  for (const auto& rule : sw.methods)
    if (applies(rule) && rule.match.empty())
      for (const auto& s : rule_specs(rule)) unmatched.push_back(s);
  std::vector<std::string> specs;
  for (const auto& rule : sw.methods) {
    if (!applies(rule)) continue;
    std::vector<std::string> specs_of_rule;
    if (rule.match.empty()) {
      specs_of_rule = rule_specs(rule);
    } else if (rule.match.find(':') != std::string::npos || rule.match == "none") {
      specs_of_rule.push_back(matched_spec(rule, config, rule.match, sw.path));
    } else {
      for (const auto& s : unmatched)
        if (family_of(s) == rule.match) specs_of_rule.push_back(matched_spec(rule, config, s, sw.path));
      if (specs_of_rule.empty())
        bad(sw.path, rule.where + ".match", "no '" + excerpt(rule.match) + "' method for model " + model + " to match");
    }
    for (const auto& s : specs_of_rule) {
      try {
        make_reducer(s);  // unknown methods, keys and threshold files fail here, before any work
      } catch (const Error& e) {
        bad(sw.path, rule.where, e.what());
      }
      check_thresholds_model(sw, rule, s, model, weights);
      if (std::find(specs.begin(), specs.end(), s) != specs.end())
        bad(sw.path, rule.where, "'" + s + "' is already in the sweep for model " + model);
      specs.push_back(s);
    }
  }
  if (specs.empty()) bad(sw.path, "methods", "no method applies to model " + model);
  return specs;
}

}  // namespace

SweepFile parse_sweep(const std::string& text, const std::string& source) {
  check_json_depth(text.data(), text.data() + text.size(), source);
  Json j;
  try {
    j = Json::parse(text);
  } catch (const std::exception& e) {
    fail(source, "not valid JSON (" + one_line(e) + ")");
  }
  if (!j.is_object()) fail(source, "is " + describe(j) + ", expected a JSON object");
  check_keys(j,
             {"name", "description", "models", "methods", "images", "batch", "labels", "analyses", "spectrum", "out"},
             source, "");
  SweepFile sw;
  sw.path = source;
  for (const char* key : {"name", "models", "methods", "images"})
    if (!j.contains(key)) fail(source, std::string("needs \"") + key + "\"");
  sw.name = get_string(j["name"], source, "name");
  if (sw.name.size() > 64 ||
      sw.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          std::string::npos)
    bad(source, "name",
        "'" + excerpt(sw.name) + "' must be 1-64 letters, digits, '.', '_' or '-' (it names jobs and files)");
  if (j.contains("description") && !j["description"].is_string()) bad(source, "description", "expected a string");

  const Json& models = j["models"];
  if (!models.is_array() || models.empty())
    bad(source, "models", "is " + describe(models) + ", expected a list of model names");
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string m = get_string(models[i], source, "models[" + std::to_string(i) + "]");
    if (std::find(sw.models.begin(), sw.models.end(), m) != sw.models.end())
      bad(source, "models", "'" + excerpt(m) + "' is listed twice");
    sw.models.push_back(m);
  }

  const Json& images = j["images"];
  if (images.is_string()) {
    sw.image_folder = get_string(images, source, "images");
  } else if (images.is_object()) {
    check_keys(images, {"folder", "offset", "limit", "chunk"}, source, "images");
    if (!images.contains("folder")) bad(source, "images", "needs \"folder\"");
    sw.image_folder = get_string(images["folder"], source, "images.folder");
    if (images.contains("offset")) sw.offset = get_int(images["offset"], source, "images.offset", 0, 1 << 30);
    if (images.contains("limit")) sw.limit = get_int(images["limit"], source, "images.limit", 0, 1 << 30);
    if (images.contains("chunk")) sw.chunk = get_int(images["chunk"], source, "images.chunk", 1, 1 << 20);
  } else {
    bad(source, "images", "is " + describe(images) + ", expected a folder or {\"folder\": ..., \"chunk\": ...}");
  }
  if (j.contains("batch")) sw.batch = get_int(j["batch"], source, "batch", 1, 4096);
  if (!images.is_object() || !images.contains("chunk")) sw.chunk = 8 * sw.batch;
  if (sw.chunk % sw.batch != 0)
    bad(source, "images.chunk",
        std::to_string(sw.chunk) + " is not a multiple of batch " + std::to_string(sw.batch) +
            " (units must cut where eval's batches do, or their numbers would differ from eval's)");
  if (j.contains("labels")) sw.labels = get_string(j["labels"], source, "labels");
  if (j.contains("out")) sw.out = get_string(j["out"], source, "out");

  if (j.contains("analyses")) {
    const Json& a = j["analyses"];
    if (!a.is_array()) bad(source, "analyses", "is " + describe(a) + ", expected a list (\"accuracy\", \"spectrum\")");
    for (size_t i = 0; i < a.size(); ++i) {
      const std::string name = get_string(a[i], source, "analyses[" + std::to_string(i) + "]");
      if (name == "spectrum")
        sw.spectrum = true;
      else if (name != "accuracy")
        bad(source, "analyses[" + std::to_string(i) + "]", "'" + excerpt(name) + "' is not accuracy or spectrum");
    }
  }
  if (j.contains("spectrum")) {
    const Json& s = j["spectrum"];
    if (!s.is_object()) bad(source, "spectrum", "is " + describe(s) + ", expected {\"kernel\": ..., \"sigma\": ...}");
    check_keys(s, {"kernel", "sigma"}, source, "spectrum");
    if (s.contains("kernel")) sw.kernel = get_string(s["kernel"], source, "spectrum.kernel");
    if (s.contains("sigma")) sw.sigma = get_number(s["sigma"], source, "spectrum.sigma");
    try {
      kernel_from_name(sw.kernel);
    } catch (const Error& e) {
      bad(source, "spectrum.kernel", e.what());
    }
    if (sw.sigma < 1e-3 || sw.sigma > 10) bad(source, "spectrum.sigma", "must be in [0.001, 10]");
  }

  const Json& methods = j["methods"];
  if (!methods.is_array() || methods.empty())
    bad(source, "methods", "is " + describe(methods) + ", expected a list of methods");
  for (size_t i = 0; i < methods.size(); ++i) {
    SweepMethodRule rule = parse_method(methods[i], source, "methods[" + std::to_string(i) + "]");
    for (const auto& m : rule.models)
      if (std::find(sw.models.begin(), sw.models.end(), m) == sw.models.end())
        bad(source, rule.where + ".models", "'" + excerpt(m) + "' is not one of the sweep's models");
    sw.methods.push_back(std::move(rule));
  }
  return sw;
}

SweepFile read_sweep_file(const std::string& path) {
  const std::vector<char> text = read_file(path, kMaxSweepFileBytes, "sweep file");
  return parse_sweep(std::string(text.begin(), text.end()), path);
}

int SweepPlan::chunks() const {
  const int n = static_cast<int>(images.size());
  return (n + sweep.chunk - 1) / sweep.chunk;
}

SweepPlan expand_sweep(const SweepFile& sw) {
  SweepPlan plan;
  plan.sweep = sw;
  nlohmann::json canon;
  canon["format"] = kUnitFormat;
  canon["name"] = sw.name;
  canon["batch"] = sw.batch;
  canon["labels"] = sw.labels;
  canon["spectrum"] = sw.spectrum ? nlohmann::json{{"kernel", sw.kernel}, {"sigma", sw.sigma}} : nlohmann::json();

  for (const auto& name : sw.models) {
    SweepModel m;
    m.name = name;
    CheckpointLocation loc;
    try {
      loc = locate_model(name);
      if (loc.config_path.empty()) fail(loc.weights_path, "no config.json beside the weights");
      m.config = load_config_json(loc.config_path);
    } catch (const Error& e) {
      bad(sw.path, "models", e.what());
    }
    m.weights = loc.weights_path;
    std::error_code ec;
    const auto bytes = fs::file_size(m.weights, ec);
    canon["models"].push_back({{"name", name},
                               {"weights", m.weights},
                               {"weights_bytes", ec ? 0 : bytes},
                               {"config", file_fingerprint(loc.config_path)}});
    plan.models.push_back(std::move(m));
  }

  if (!is_directory(sw.image_folder))
    fail(sw.image_folder, "image folder not found (images.folder in " + sw.path + ")");
  plan.images = list_images(sw.image_folder);
  plan.images.erase(plan.images.begin(), plan.images.begin() + std::min<size_t>(sw.offset, plan.images.size()));
  if (sw.limit > 0 && plan.images.size() > static_cast<size_t>(sw.limit)) plan.images.resize(sw.limit);
  if (plan.images.empty())
    fail(sw.image_folder, "no JPEG, PNG or BMP images (after offset " + std::to_string(sw.offset) + ")");
  canon["images"] = plan.images;

  std::map<std::string, std::string> files;  // threshold files: results depend on their contents
  const int n = static_cast<int>(plan.images.size());
  for (size_t mi = 0; mi < plan.models.size(); ++mi) {
    SweepModel& m = plan.models[mi];
    m.methods = expand_methods(sw, m.name, m.config, m.weights);
    for (const auto& spec : m.methods) {
      ReducerSpec parsed(spec);
      if (parsed.has("thresholds")) {
        const std::string file = parsed.get_string("thresholds", "");
        files[file] = file_fingerprint(file);
      }
      const int chunk = draws_in_sequence(spec) ? n : sw.chunk;
      for (int first = 0; first < n; first += chunk) {
        WorkUnit u;
        u.index = static_cast<int>(plan.units.size());
        u.model = static_cast<int>(mi);
        u.method = spec;
        u.first = first;
        u.count = std::min(chunk, n - first);
        canon["units"].push_back({u.model, u.method, u.first, u.count});
        plan.units.push_back(std::move(u));
      }
    }
  }
  canon["files"] = files;
  plan.canonical = canon.dump();
  plan.hash = hex16(fnv1a(plan.canonical));
  return plan;
}

std::pair<int, int> parse_shard(const std::string& text, const std::string& option) {
  const auto slash = text.find('/');
  int k = -1, n = 0;
  try {
    size_t used_k = 0, used_n = 0;
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
    k = std::stoi(a, &used_k);
    n = std::stoi(b, &used_n);
    if (used_k != a.size() || used_n != b.size()) throw std::invalid_argument("trailing text");
  } catch (const std::exception&) {
    fail(option, "'" + excerpt(text) + "' is not K/N (shard K of N, counted from 0: 0/4 .. 3/4)");
  }
  if (n < 1) fail(option, "'" + excerpt(text) + "': N must be at least 1");
  if (k < 0 || k >= n)
    fail(option, "'" + excerpt(text) + "': K must be in 0.." + std::to_string(n - 1) + " (shards are counted from 0)");
  return {k, n};
}

std::vector<int> shard_units(const SweepPlan& plan, int k, int n) {
  std::vector<int> out;
  for (int i = k; i < static_cast<int>(plan.units.size()); i += n) out.push_back(i);
  return out;
}

UnitResult run_unit(const SweepPlan& plan, const WorkUnit& unit, const Model& model, const Labels& labels) {
  using Clock = std::chrono::steady_clock;
  const auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  const auto start = Clock::now();
  const SweepFile& sw = plan.sweep;
  const VitConfig& config = model.config();
  std::unique_ptr<Reducer> reducer = make_reducer(unit.method);
  if (unit.method == "none") reducer.reset();  // the engine's plain path, as eval runs it

  // SD needs traces with keys; an accuracy sweep runs exactly as eval does.
  RunOptions options;
  options.trace = options.trace_keys = sw.spectrum;
  SdOptions so;
  so.graph.kernel = kernel_from_name(sw.kernel);
  so.graph.sigma = sw.sigma;

  c10::InferenceMode guard;
  const PreprocessSpec pre = preprocess_spec(config);
  UnitResult result;
  result.unit = unit.index;
  const int end = unit.first + unit.count;
  for (int b = unit.first; b < end; b += sw.batch) {
    const std::vector<std::string> files(plan.images.begin() + b, plan.images.begin() + std::min(end, b + sw.batch));
    const at::Tensor input = load_batch(files, pre);
    const auto t0 = Clock::now();
    RunResult r = run(model, input, reducer.get(), options);
    result.forward_seconds += since(t0);
    check_finite_logits(r.logits, model, files);
    const auto predictions = top_k(r.logits, 5);
    for (size_t i = 0; i < files.size(); ++i) {
      UnitImage im;
      im.index = b + static_cast<int>(i);
      im.label = labels.index_from_filename(files[i]);
      im.prediction = predictions[i];
      im.macs = model_cost(config, r.tokens_per_image[i], reducer.get()).total();
      if (sw.spectrum) {
        // `spectrum`'s numbers for this image (NaN where pruning leaves SD undefined).
        im.sd_theorem = trace_spectral_distance(r.traces[i], SdView::Theorem, so).sd;
        im.sd_layer = trace_spectral_distance(r.traces[i], SdView::Layer, so).sd;
      }
      result.images.push_back(std::move(im));
    }
  }
  result.seconds = since(start);
  return result;
}

std::string unit_path(const std::string& out, int unit) {
  char name[32];
  std::snprintf(name, sizeof name, "u%05d.jsonl", unit);
  return (fs::path(out) / "units" / name).string();
}

void write_unit(const SweepPlan& plan, const UnitResult& result, const std::string& out) {
  const WorkUnit& u = plan.units.at(result.unit);
  const SweepModel& m = plan.models[u.model];
  std::string text;
  Json header;
  header["mergescope_sweep_unit"] = kUnitFormat;
  header["sweep"] = plan.sweep.name;
  header["plan"] = plan.hash;
  header["unit"] = u.index;
  header["units"] = plan.units.size();
  header["model"] = m.name;
  header["method"] = u.method;
  header["first"] = u.first;
  header["count"] = u.count;
  header["shard"] = result.shard;
  header["shards"] = result.shards;
  header["threads"] = result.threads;
  header["host"] = result.host;
  text += header.dump() + "\n";
  for (const auto& im : result.images) {
    Json line;
    line["image"] = plan.images[im.index];
    line["index"] = im.index;
    line["label"] = im.label;
    line["model"] = m.name;
    line["method"] = u.method;
    line["top5"] = im.prediction.classes;
    line["prob5"] = im.prediction.probs;  // float -> double: the shortest round-trip text gives the float back
    line["gmacs"] = im.macs * 1e-9;
    line["macs"] = im.macs;
    if (plan.sweep.spectrum) {
      line["sd_theorem"] = im.sd_theorem;
      line["sd_layer"] = im.sd_layer;
    }
    text += line.dump() + "\n";
  }
  Json end;
  end["end"] = true;
  end["images"] = result.images.size();
  end["seconds"] = result.seconds;
  end["forward_seconds"] = result.forward_seconds;
  text += end.dump() + "\n";

  const std::string path = unit_path(out, u.index);
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) fail(fs::path(path).parent_path().string(), "cannot create folder: " + ec.message());
  // A temporary name per process, renamed over the final one once on disk: readers and a resumed shard see
  // a whole unit or none, even when this process is killed mid-write.
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, std::string("cannot open for writing: ") + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(tmp, "write failed: " + why);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail(tmp, "cannot flush to disk: " + why);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail(path, "cannot rename the finished unit into place: " + why);
  }
  // The rename itself reaches the disk with the folder.
  const int dir = ::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

namespace {

struct UnitProblem {
  UnitFileState state;
  std::string what;
};

// Reads a unit file against the plan; throws UnitProblem.
UnitResult parse_unit(const SweepPlan& plan, const WorkUnit& u, const std::string& path) {
  const std::vector<char> bytes = read_file(path, kMaxUnitFileBytes, "unit file");
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  std::string text;
  int line_no = 0;
  auto corrupt = [&](const std::string& what) {
    throw UnitProblem{UnitFileState::Corrupt, "line " + std::to_string(line_no) + ": " + what};
  };
  auto next = [&](Json& j) {
    if (!std::getline(in, text)) return false;
    ++line_no;
    try {
      check_json_depth(text.data(), text.data() + text.size(), path, 8);
      j = Json::parse(text);
    } catch (const std::exception& e) {
      corrupt("not JSON (" + one_line(e) + ")");
    }
    if (!j.is_object()) corrupt("is " + describe(j) + ", expected an object");
    return true;
  };
  const SweepModel& m = plan.models[u.model];
  const int depth = m.config.depth;
  UnitResult r;
  Json h;
  if (!next(h) || !h.contains("mergescope_sweep_unit")) {
    line_no = std::max(line_no, 1);
    corrupt("not a mergescope sweep unit file (no header)");
  }
  try {
    if (h.value("mergescope_sweep_unit", 0) != kUnitFormat)
      corrupt("unit file format " + h["mergescope_sweep_unit"].dump() + ", expected 1");
    const std::string hash = h.value("plan", std::string());
    if (hash != plan.hash)
      throw UnitProblem{UnitFileState::Foreign,
                        "belongs to another sweep ('" + excerpt(h.value("sweep", std::string())) + "', plan " +
                            excerpt(hash) + "; this sweep '" + plan.sweep.name + "' has plan " + plan.hash + ")"};
    if (h.value("unit", -1) != u.index)
      throw UnitProblem{UnitFileState::Foreign,
                        "holds unit " + h["unit"].dump() + " of this sweep, not unit " + std::to_string(u.index)};
    if (h.value("model", std::string()) != m.name || h.value("method", std::string()) != u.method ||
        h.value("first", -1) != u.first || h.value("count", -1) != u.count)
      corrupt("the header's model, method or images differ from unit " + std::to_string(u.index) + " of the plan");
    r.unit = u.index;
    r.shard = h.value("shard", 0);
    r.shards = h.value("shards", 1);
    r.threads = h.value("threads", 0);
    r.host = h.value("host", std::string());
  } catch (const Json::exception& e) {
    corrupt("bad header (" + one_line(e) + ")");
  }
  const int classes = m.config.num_classes;
  // `undefined_ok`: null stands for NaN (JSON has none), an SD that pruning leaves undefined.
  auto numbers = [&](const Json& j, const char* key, size_t min, size_t max, bool undefined_ok = false) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() < min || j[key].size() > max)
      corrupt(std::string("\"") + key + "\" is missing or has the wrong length");
    std::vector<double> v;
    for (const auto& x : j[key]) {
      if (undefined_ok && x.is_null()) {
        v.push_back(std::nan(""));
        continue;
      }
      if (!x.is_number() || !std::isfinite(x.get<double>()))
        corrupt(std::string("\"") + key + "\" holds " + describe(x));
      v.push_back(x.get<double>());
    }
    return v;
  };
  for (int i = 0; i < u.count; ++i) {
    Json j;
    if (!next(j))
      corrupt("the file ends after " + std::to_string(i) + " of " + std::to_string(u.count) + " images (no end line)");
    if (j.contains("end"))
      corrupt("end line after " + std::to_string(i) + " of " + std::to_string(u.count) + " images");
    UnitImage im;
    im.index = u.first + i;
    if (!j["index"].is_number_integer() || j["index"].get<int64_t>() != im.index ||
        j.value("image", std::string()) != plan.images[im.index])
      corrupt("expected image " + std::to_string(im.index) + " (" + plan.images[im.index] + ")");
    if (j.value("model", std::string()) != m.name || j.value("method", std::string()) != u.method)
      corrupt("model or method differs from the header");
    if (!j["label"].is_number_integer()) corrupt("\"label\" is not an integer");
    im.label = j["label"].get<int>();
    const std::vector<double> classes5 = numbers(j, "top5", 1, 5),
                              probs = numbers(j, "prob5", classes5.size(), classes5.size());
    for (double c : classes5) {
      if (c != std::floor(c) || c < 0 || c >= classes)
        corrupt("class " + reduce::format_number(c) + " is not in 0.." + std::to_string(classes - 1));
      im.prediction.classes.push_back(static_cast<int>(c));
    }
    for (double p : probs) {
      if (p < 0 || p > 1) corrupt("probability " + reduce::format_number(p) + " is not in [0, 1]");
      im.prediction.probs.push_back(static_cast<float>(p));
    }
    if (!j["macs"].is_number() || !(j["macs"].get<double>() >= 0) || !std::isfinite(j["macs"].get<double>()))
      corrupt("\"macs\" is not a non-negative number");
    im.macs = j["macs"].get<double>();
    if (plan.sweep.spectrum) {
      im.sd_theorem = numbers(j, "sd_theorem", depth, depth, true);
      im.sd_layer = numbers(j, "sd_layer", depth, depth, true);
    }
    r.images.push_back(std::move(im));
  }
  Json end;
  if (!next(end) || !end.value("end", false))
    corrupt("expected the end line after " + std::to_string(u.count) + " images");
  if (!end["images"].is_number_integer() || end["images"].get<int64_t>() != u.count)
    corrupt("the end line counts other images than the unit holds");
  if (!end["seconds"].is_number() || !end["forward_seconds"].is_number()) corrupt("the end line has no times");
  r.seconds = end["seconds"].get<double>();
  r.forward_seconds = end["forward_seconds"].get<double>();
  Json extra;
  if (next(extra)) corrupt("text after the end line");
  return r;
}

}  // namespace

UnitFileState inspect_unit(const SweepPlan& plan, int unit, const std::string& out, UnitResult* result,
                           std::string* problem) {
  const std::string path = unit_path(out, unit);
  if (!fs::exists(path)) return UnitFileState::Missing;
  try {
    UnitResult r = parse_unit(plan, plan.units.at(unit), path);
    if (result) *result = std::move(r);
    return UnitFileState::Done;
  } catch (const UnitProblem& p) {
    if (problem) *problem = p.what;
    return p.state;
  } catch (const Error& e) {
    if (problem) *problem = e.what();
    return UnitFileState::Corrupt;
  }
}

MergedSweep merge_sweep(const SweepPlan& plan, const std::string& out, int shards) {
  // Files that are not units of this plan (another sweep's, or past the plan's end) are refused too.
  const fs::path dir = fs::path(out) / "units";
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() < 8 || name[0] != 'u' || name.compare(name.size() - 6, 6, ".jsonl") != 0)
        continue;  // temporaries
      const std::string digits = name.substr(1, name.size() - 7);
      if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
      if (std::stoll(digits) >= static_cast<long long>(plan.units.size())) {
        std::ifstream f(entry.path());
        std::string first;
        std::getline(f, first);
        std::string foreign_plan;
        try {
          foreign_plan = Json::parse(first).value("plan", std::string());
        } catch (const std::exception&) {
        }
        fail(entry.path().string(),
             "is not a unit of this sweep ('" + plan.sweep.name + "', plan " + plan.hash + ", " +
                 std::to_string(plan.units.size()) + " units)" +
                 (foreign_plan.empty() || foreign_plan == plan.hash ? ""
                                                                    : "; it belongs to plan " + excerpt(foreign_plan)));
      }
    }
  }

  std::vector<UnitResult> results(plan.units.size());
  std::vector<int> missing;
  std::map<int, int> shard_counts;  // N -> units written by shards of N
  std::set<int> threads;
  for (size_t i = 0; i < plan.units.size(); ++i) {
    std::string problem;
    switch (inspect_unit(plan, static_cast<int>(i), out, &results[i], &problem)) {
      case UnitFileState::Missing:
        missing.push_back(static_cast<int>(i));
        break;
      case UnitFileState::Foreign:
        fail(unit_path(out, static_cast<int>(i)), problem);
      case UnitFileState::Corrupt:
        fail(unit_path(out, static_cast<int>(i)),
             "corrupt unit file: " + problem + "; run its shard again, which redoes the unit");
      case UnitFileState::Done:
        ++shard_counts[results[i].shards];
        threads.insert(results[i].threads);
        break;
    }
  }
  if (!missing.empty()) {
    std::string msg = "incomplete sweep: " + std::to_string(missing.size()) + " of " +
                      std::to_string(plan.units.size()) + " units missing";
    int n = shards;
    if (n <= 0 && shard_counts.size() == 1) n = shard_counts.begin()->first;
    auto unit_list = [](const std::vector<int>& units) {
      std::string s = units.size() == 1 ? "unit " : "units ";
      for (size_t i = 0; i < units.size() && i < 6; ++i) s += (i ? ", " : "") + std::to_string(units[i]);
      if (units.size() > 6) s += " and " + std::to_string(units.size() - 6) + " more";
      return s;
    };
    if (n > 0) {
      std::map<int, std::vector<int>> by_shard;
      for (int u : missing) by_shard[u % n].push_back(u);
      msg += ": shard" + std::string(by_shard.size() == 1 ? " " : "s ");
      int listed = 0;
      for (const auto& [k, units] : by_shard) {
        if (listed == 8) {
          msg += ", and " + std::to_string(by_shard.size() - 8) + " more shards";
          break;
        }
        msg += (listed++ ? ", " : "") + std::to_string(k) + "/" + std::to_string(n) + " (" + unit_list(units) + ")";
      }
      msg += "; run them again (units already done are skipped)";
    } else {
      msg += " (" + unit_list(missing) + ")";
      msg +=
          shard_counts.empty() ? "; no unit is done yet: run the shards first" : "; give --shards N to name the shards";
    }
    fail(out, msg);
  }

  MergedSweep merged;
  merged.threads.assign(threads.begin(), threads.end());
  for (size_t mi = 0; mi < plan.models.size(); ++mi) {
    MergedModel mm;
    mm.model = &plan.models[mi];
    const int depth = mm.model->config.depth;
    for (const auto& spec : mm.model->methods) {
      // Rows in image order, whatever order the units came in, so that sums equal eval's bit for bit.
      std::vector<const UnitImage*> rows(plan.images.size(), nullptr);
      MergedMethod mm_method;
      mm_method.totals.spec = spec;
      for (size_t i = 0; i < plan.units.size(); ++i) {
        const WorkUnit& u = plan.units[i];
        if (u.model != static_cast<int>(mi) || u.method != spec) continue;
        mm_method.totals.seconds += results[i].forward_seconds;
        for (const auto& im : results[i].images) rows[im.index] = &im;
      }
      if (plan.sweep.spectrum) mm_method.sd_theorem.resize(depth), mm_method.sd_layer.resize(depth);
      for (size_t i = 0; i < rows.size(); ++i) {
        const UnitImage& im = *rows[i];  // every image is in exactly one unit of the method (the plan's chunks)
        ImageResult r{plan.images[i], im.label, im.prediction};
        mm_method.totals.add(r, im.macs);
        mm_method.results.push_back(std::move(r));
        for (size_t l = 0; l < im.sd_theorem.size(); ++l) {
          mm_method.sd_theorem[l].add(im.sd_theorem[l]);
          mm_method.sd_layer[l].add(im.sd_layer[l]);
        }
      }
      mm.methods.push_back(std::move(mm_method));
    }
    merged.models.push_back(std::move(mm));
  }
  for (const auto& r : results) merged.unit_seconds += r.seconds;
  return merged;
}

namespace {

double gmacs_of(const MethodTotals& t) { return t.macs / t.images * 1e-9; }

// The table `spectrum` prints (its columns and format), for the methods of one model.
std::string format_spectrum_table(const SweepPlan& plan, const MergedModel& mm) {
  std::string out;
  char line[512];
  const int depth = mm.model->config.depth, mid = depth / 2;
  std::snprintf(line, sizeof line, "%s, %d image(s), kernel %s; spectral distance per block, mean over images\n",
                mm.model->weights.c_str(), static_cast<int>(plan.images.size()), plan.sweep.kernel.c_str());
  out += line;
  std::snprintf(line, sizeof line, "%-32s %14s %14s %14s %14s\n", "method", "theorem@mid", "theorem@last", "layer mean",
                "layer@last");
  out += line;
  for (const auto& m : mm.methods) {
    double layer_mean = 0;
    for (const auto& s : m.sd_layer) layer_mean += s.mean() / m.sd_layer.size();
    std::snprintf(line, sizeof line, "%-32s %14.4f %14.4f %14.4f %14.4f\n", m.totals.spec.c_str(),
                  m.sd_theorem[mid].mean(), m.sd_theorem.back().mean(), layer_mean, m.sd_layer.back().mean());
    out += line;
  }
  return out;
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

std::string family_name(const std::string& family) {
  static const std::map<std::string, std::string> names = {{"none", "no reduction"},
                                                           {"tome", "ToMe"},
                                                           {"pitome", "PiToMe (paper)"},
                                                           {"pitome-code", "PiToMe (code)"},
                                                           {"random", "random merging"},
                                                           {"ltmp", "LTMP"},
                                                           {"ltp", "LTP"},
                                                           {"tofu", "ToFu"},
                                                           {"mctf", "MCTF"},
                                                           {"dct", "DCT"},
                                                           {"diffrate", "DiffRate"},
                                                           {"evit", "EViT"}};
  const auto it = names.find(family);
  return it == names.end() ? family : it->second;
}

// "r = 2..16 step 2", "r = 8, 12, 16": the values of a key, as short as they go.
std::string values_text(const std::string& key, const std::vector<std::string>& values) {
  std::vector<long long> ints;
  for (const auto& v : values) {
    if (v.empty() || v.find_first_not_of("-0123456789") != std::string::npos || v.size() > 12) break;
    ints.push_back(std::stoll(v));
  }
  if (ints.size() == values.size() && ints.size() >= 4) {
    std::vector<long long> sorted = ints;
    std::sort(sorted.begin(), sorted.end());
    const long long step = sorted[1] - sorted[0];
    bool even = step > 0;
    for (size_t i = 1; i < sorted.size(); ++i) even = even && sorted[i] - sorted[i - 1] == step;
    if (even)
      return key + " = " + std::to_string(sorted.front()) + ".." + std::to_string(sorted.back()) +
             (step == 1 ? "" : " step " + std::to_string(step));
  }
  std::string text = key + " = ";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + values[i];
  return text;
}

// The legend entry of one method family of one model: its name and what varies, e.g. "ToMe, r = 2..16 step 2",
// "PiToMe (code) at ToMe's GMACs", "LTMP, target MACs 0.75, 0.6, 0.5".
std::string series_label(const SweepFile& sw, const std::string& model, const std::string& family,
                         const std::vector<std::string>& specs) {
  const std::string name = family_name(family);
  if (family == "none") return name;
  for (const auto& rule : sw.methods)
    if (rule.method == family && !rule.match.empty() &&
        (rule.models.empty() || std::find(rule.models.begin(), rule.models.end(), model) != rule.models.end()))
      return name + " at " + (rule.match.find(':') == std::string::npos ? family_name(rule.match) + "'s" : rule.match) +
             " GMACs";
  // One key that varies over the family's specs: name it and its values.
  std::string key;
  std::vector<std::string> values;
  for (const auto& spec : specs) {
    const auto colon = spec.find(':'), eq = spec.find('=');
    if (colon == std::string::npos || eq == std::string::npos || spec.find(',') != std::string::npos) return name;
    const std::string k = spec.substr(colon + 1, eq - colon - 1);
    if (!key.empty() && k != key) return name;
    key = k;
    values.push_back(spec.substr(eq + 1));
  }
  if (key.empty()) return name;
  if (key == "thresholds") {
    // The targets the files were calibrated for, when they say.
    std::vector<std::string> targets;
    for (const auto& file : values) {
      try {
        const std::vector<char> bytes = read_file(file, kMaxSweepFileBytes, "threshold file");
        const auto j = nlohmann::json::parse(bytes.begin(), bytes.end());
        const auto& c = j.at("calibration");  // files written before MACs were called MACs say target_flops
        targets.push_back(reduce::format_number(
            (c.contains("target_macs") ? c.at("target_macs") : c.at("target_flops")).get<double>()));
      } catch (const std::exception&) {
        return name + ", " + std::to_string(values.size()) + " threshold file" + (values.size() == 1 ? "" : "s");
      }
    }
    return name + ", " + values_text("target MACs", targets);
  }
  return name + ", " + values_text(key, values);
}

// One series per method family (tome, pitome, ...), points in GMACs order; `value` gives y.
template <typename F>
Figure family_figure(const SweepPlan& plan, const MergedModel& mm, const std::string& title, const std::string& y_label,
                     F value) {
  Figure fig;
  fig.title = title;
  fig.x_label = "GMACs per image (MACs, as the ToMe/PiToMe papers' \"GFLOPs\")";
  fig.y_label = y_label;
  std::vector<std::string> families;
  std::map<std::string, std::vector<std::pair<double, double>>> points;
  std::map<std::string, std::vector<std::string>> specs;
  for (const auto& m : mm.methods) {
    const std::string family = family_of(m.totals.spec);
    if (!points.count(family)) families.push_back(family);
    points[family].emplace_back(gmacs_of(m.totals), value(m));
    specs[family].push_back(m.totals.spec);
  }
  for (const auto& family : families) {
    auto& p = points[family];
    std::sort(p.begin(), p.end());
    Series s;
    s.label = series_label(plan.sweep, mm.model->name, family, specs[family]);
    s.color = color_for_method(family);
    for (const auto& [x, y] : p) s.x.push_back(x), s.y.push_back(y);
    fig.lines.push_back(std::move(s));
  }
  return fig;
}

}  // namespace

std::string format_merged_tables(const SweepPlan& plan, const MergedSweep& merged) {
  std::string out;
  std::string threads;
  for (int t : merged.threads) threads += (threads.empty() ? "" : ", ") + std::to_string(t);
  out += "sweep " + plan.sweep.name + " (plan " + plan.hash + "): " + std::to_string(plan.units.size()) +
         " units, batch " + std::to_string(plan.sweep.batch) + ", " + threads + " thread(s) per shard\n";
  for (const auto& mm : merged.models) {
    std::vector<MethodTotals> rows;
    std::vector<const std::vector<ImageResult>*> results;
    for (const auto& m : mm.methods) rows.push_back(m.totals), results.push_back(&m.results);
    out += "\n" + format_eval_table(mm.model->weights, rows);
    if (const std::string paired = format_paired_table(rows, results); !paired.empty()) out += "\n" + paired;
    if (plan.sweep.spectrum) out += "\n" + format_spectrum_table(plan, mm);
  }
  return out;
}

void write_merged_report(const SweepPlan& plan, const MergedSweep& merged, const std::string& dir, const Labels& labels,
                         bool per_image) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create folder: " + ec.message());
  auto open_out = [](const std::string& path) {
    std::ofstream f(path);
    if (!f) fail(path, "cannot open for writing");
    return f;
  };
  {
    auto f = open_out(dir + "/tables.txt");
    f << format_merged_tables(plan, merged);
  }
  {
    auto f = open_out(dir + "/summary.csv");
    f << "model,method,family,images,labelled,top1,top5,gmacs,images_per_second";
    if (plan.sweep.spectrum) f << ",sd_theorem_mid,sd_theorem_last,sd_layer_mean,sd_layer_last";
    f << '\n';
    char buf[256];
    for (const auto& mm : merged.models)
      for (const auto& m : mm.methods) {
        const MethodTotals& t = m.totals;
        std::snprintf(buf, sizeof buf, ",%d,%d,%.4f,%.4f,%.6f,%.3f", t.images, t.accuracy.images,
                      t.accuracy.top1_percent(), t.accuracy.top5_percent(), gmacs_of(t), t.images / t.seconds);
        f << csv_quote(mm.model->name) << ',' << csv_quote(t.spec) << ',' << family_of(t.spec) << buf;
        if (plan.sweep.spectrum) {
          double layer_mean = 0;
          for (const auto& s : m.sd_layer) layer_mean += s.mean() / m.sd_layer.size();
          std::snprintf(buf, sizeof buf, ",%.6f,%.6f,%.6f,%.6f", m.sd_theorem[m.sd_theorem.size() / 2].mean(),
                        m.sd_theorem.back().mean(), layer_mean, m.sd_layer.back().mean());
          f << buf;
        }
        f << '\n';
      }
    if (!f) fail(dir + "/summary.csv", "write failed");
  }
  const std::string n_images = std::to_string(plan.images.size()) + " images";
  for (const auto& mm : merged.models) {
    const std::string tag = spec_file_tag(mm.model->name);
    std::string threads;
    for (int t : merged.threads) threads += (threads.empty() ? "" : ",") + std::to_string(t);
    save_figure(family_figure(plan, mm, mm.model->name + ": top-1 vs GMACs, " + n_images, "top-1 accuracy (%)",
                              [](const MergedMethod& m) { return m.totals.accuracy.top1_percent(); }),
                dir + "/top1_vs_gmacs_" + tag);
    save_figure(family_figure(plan, mm,
                              mm.model->name + ": images/s vs GMACs, batch " + std::to_string(plan.sweep.batch) + ", " +
                                  threads + (threads == "1" ? " thread" : " threads") + " per shard",
                              "images/s (forward passes only)",
                              [](const MergedMethod& m) { return m.totals.images / m.totals.seconds; }),
                dir + "/speed_vs_gmacs_" + tag);
    if (plan.sweep.spectrum)
      save_figure(
          family_figure(plan, mm,
                        mm.model->name + ": spectral distance after the last block (theorem view), mean of " + n_images,
                        "SD(G, G_lifted)", [](const MergedMethod& m) { return m.sd_theorem.back().mean(); }),
          dir + "/sd_vs_gmacs_" + tag);
    if (per_image) {
      const std::string sub = dir + "/" + tag;
      fs::create_directories(sub, ec);
      if (ec) fail(sub, "cannot create folder: " + ec.message());
      for (const auto& m : mm.methods) {
        const std::string base = sub + "/" + spec_file_tag(m.totals.spec);
        write_results_csv(base + ".csv", m.results, labels);
        write_results_json(base + ".json", m.results, labels, mm.model->weights + " " + m.totals.spec,
                           m.totals.accuracy, m.totals.images / m.totals.seconds);
      }
    }
  }
}

}  // namespace ms
