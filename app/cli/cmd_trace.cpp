#include "batch.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "evaluation.h"
#include "flops.h"
#include "labels.h"
#include "methods.h"
#include "model.h"

#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

namespace ms::cli {

int cmd_trace(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert(kMethodOptions.begin(), kMethodOptions.end());
  options.insert({"out", "labels"});
  const Args args(argv, {"keys"}, options);
  if (args.positionals().size() != 1)
    fail("trace", "give exactly one IMAGE (usage: trace --model M --method SPEC IMAGE --out F)");
  if (!args.has("out")) fail("trace", "--out FILE is required");
  if (args.all("method").size() > 1) fail("--method", "trace takes one method");
  const std::string image = args.positionals()[0];
  const Labels labels = args.has("labels") ? Labels::load(args.get("labels")) : Labels::load_default();
  const auto model = load_model_from_args(args);
  const VitConfig& c = model->config();
  const std::string spec = resolve_methods(args, c, false).front();
  auto reducer = reducer_for(spec);
  c10::InferenceMode guard;
  RunOptions opts;
  opts.trace = opts.trace_energy = true;
  opts.trace_keys = args.flag("keys");
  const RunResult r = run(*model, load_batch({image}, preprocess_spec(c)), reducer.get(), opts);
  check_finite_logits(r.logits, *model, {image});
  const CostBreakdown cost = model_cost(c, r.tokens_per_layer, reducer.get());

  nlohmann::json j;
  j["model"] = model->source();
  j["architecture"] = c.architecture;
  j["method"] = spec;
  j["image"] = image;
  j["gmacs"] = cost.gmacs();
  j["gmacs_unit"] = "GMACs per image (multiply-accumulates, the ToMe/PiToMe papers' 'FLOPs')";
  j["matching_gmacs"] = cost.matching * 1e-9;
  j["grid"] = c.grid();
  j["prefix_tokens"] = c.num_prefix_tokens();
  nlohmann::json top = nlohmann::json::array();
  const Prediction p = top_k(r.logits, 5).front();
  for (size_t i = 0; i < p.classes.size(); ++i) top.push_back({labels.name(p.classes[i]), p.probs[i], p.classes[i]});
  j["top5"] = top;
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerTrace& lt : r.traces.front().layers) {
    nlohmann::json l;
    l["tokens_in"] = lt.tokens_in;
    l["tokens"] = lt.tokens;
    if (lt.mixes_all)  // DCT: every output token is a mix of all patch tokens; no partition to give
      l["mixes_all_tokens"] = true;
    else
      l["cluster_of_token"] = lt.cluster_of_token;
    l["sizes"] = lt.sizes;
    nlohmann::json energy = nlohmann::json::array();
    for (float e : lt.energy) energy.push_back(std::isnan(e) ? nlohmann::json(nullptr) : nlohmann::json(e));
    l["energy"] = energy;
    if (!lt.margin.empty()) {  // per input token: distance of its decisions from going the other way (+inf: none)
      nlohmann::json margin = nlohmann::json::array();
      for (float m : lt.margin) margin.push_back(std::isinf(m) ? nlohmann::json(nullptr) : nlohmann::json(m));
      l["margin"] = margin;
    }
    if (!lt.note.empty()) l["note"] = lt.note;
    l["pruned"] = lt.pruned;  // original tokens this block pruned (ltp/ltmp), not merged
    if (opts.trace_keys) {
      l["key_dim"] = lt.key_dim;
      l["keys"] = lt.keys;
    }
    layers.push_back(l);
  }
  j["layers"] = layers;
  std::ofstream f(args.get("out"));
  if (!f) fail(args.get("out"), "cannot open for writing");
  f << j.dump() << '\n';
  if (!f) fail(args.get("out"), "write failed");
  std::printf("%s  %s  %.3f GMACs  top-1 %s (%.1f%%)  tokens:", image.c_str(), spec.c_str(), cost.gmacs(),
              labels.name(p.classes[0]).c_str(), 100 * p.probs[0]);
  for (int t : r.tokens_per_layer) std::printf(" %d", t);
  std::printf("\nwrote %s\n", args.get("out").c_str());
  return 0;
}

}  // namespace ms::cli
