// compare: mergescope's partitions against a reference implementation's, tie-aware (analysis/trace_compare.h).
// The reference file has the golden layout (../shared/golden/README.md): <setting.>cluster_of_token
// [images, layers, tokens] int64, optional <setting.>logits; the images are its `input` tensor or, with
// --images DIR, the files its metadata "images" lists (scripts/pyref/traces.py writes such files). With
// --against fp32 the reference is the same model in fp32 (what --dtype bf16 changes).
#include "batch.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "evaluation.h"
#include "labels.h"
#include "methods.h"
#include "model.h"
#include "paired.h"
#include "precision.h"
#include "progress.h"
#include "safetensors.h"
#include "trace_compare.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

namespace ms::cli {
namespace {

using Outcome = PartitionComparison::Outcome;

const at::Tensor& tensor(const SafetensorsFile& f, const std::string& name) {
  const auto it = f.tensors.find(name);
  if (it == f.tensors.end()) fail(f.path, "no tensor '" + name + "' (see --setting)");
  return it->second;
}

std::vector<std::string> reference_images(const SafetensorsFile& f, const std::string& folder, int64_t count) {
  const auto it = f.metadata.find("images");
  if (it == f.metadata.end()) fail(f.path, "no \"images\" list in the metadata, so --images cannot be used");
  const auto names = nlohmann::json::parse(it->second, nullptr, false);
  if (!names.is_array() || static_cast<int64_t>(names.size()) != count)
    fail(f.path, "metadata \"images\" is not a list of " + std::to_string(count) + " file names");
  std::vector<std::string> paths;
  for (const auto& n : names) {
    if (!n.is_string()) fail(f.path, "metadata \"images\" holds a non-string entry");
    const std::string p = (std::filesystem::path(folder) / n.get<std::string>()).string();
    if (!std::filesystem::is_regular_file(p)) fail(p, "image listed by " + f.path + " not found");
    paths.push_back(p);
  }
  return paths;
}

// Same grouping of the original tokens (ids are arbitrary: compared through first occurrence).
bool same_partition(const std::vector<int32_t>& ours, const std::vector<int64_t>& theirs) {
  if (ours.size() != theirs.size()) return false;
  std::map<int64_t, int64_t> to_ours, to_theirs;
  for (size_t t = 0; t < ours.size(); ++t) {
    if ((ours[t] < 0) != (theirs[t] < 0)) return false;
    if (ours[t] < 0) continue;
    const auto [a, new_a] = to_ours.emplace(theirs[t], ours[t]);
    const auto [b, new_b] = to_theirs.emplace(ours[t], theirs[t]);
    if (a->second != ours[t] || b->second != theirs[t]) return false;
  }
  return true;
}

// --against fp32: the reference is this model computed in fp32, in this process, on --images DIR (sorted, after
// --offset/--limit); what changes with --dtype bf16.
struct SelfReference {
  std::vector<std::string> files;
  at::Tensor clusters, logits;  // [images, layers, tokens] int64, [images, classes]
};

SelfReference fp32_reference(const Args& args, const Model& fp32, const std::string& method, int batch) {
  SelfReference ref;
  if (!args.has("images")) fail("--against", "needs --images DIR");
  ref.files = list_images(args.get("images"));
  const int offset = args.get_int("offset", 0, 0, 1 << 30), limit = args.get_int("limit", 0, 0, 1 << 30);
  ref.files.erase(ref.files.begin(), ref.files.begin() + std::min<size_t>(offset, ref.files.size()));
  if (limit > 0 && ref.files.size() > static_cast<size_t>(limit)) ref.files.resize(limit);
  if (ref.files.empty()) fail(args.get("images"), "no images to compare on (check --offset/--limit)");
  auto reducer = reducer_for(method);
  const PreprocessSpec pre = preprocess_spec(fp32.config());
  RunOptions run_options;
  run_options.trace = true;
  std::vector<at::Tensor> clusters, logits;
  Progress progress("fp32 reference", ref.files.size());
  for (size_t start = 0; start < ref.files.size(); start += batch) {
    const size_t end = std::min(ref.files.size(), start + batch);
    const RunResult r =
        run(fp32, load_batch({ref.files.begin() + start, ref.files.begin() + end}, pre), reducer.get(), run_options);
    logits.push_back(r.logits);
    for (const ImageTrace& tr : r.traces) {
      at::Tensor c = at::empty({static_cast<int64_t>(tr.layers.size()), tr.original_tokens}, at::kLong);
      for (size_t l = 0; l < tr.layers.size(); ++l)
        for (int t = 0; t < tr.original_tokens; ++t) c[l][t] = tr.layers[l].cluster_of_token[t];
      clusters.push_back(c);
    }
    progress.update(end, "");
  }
  progress.finish();
  ref.clusters = at::stack(clusters);
  ref.logits = at::cat(logits);
  return ref;
}

}  // namespace

int cmd_compare(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert(kMethodOptions.begin(), kMethodOptions.end());
  options.insert({"reference", "setting", "images", "labels", "batch", "tolerance", "against", "offset", "limit"});
  const Args args(argv, {"quiet"}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument (compare reads --reference FILE)");
  if (args.has("against") == args.has("reference")) fail("compare", "give --reference FILE or --against fp32");
  if (args.has("against") && args.get("against") != "fp32")
    fail("--against", "'" + args.get("against") + "' is not fp32 (the one in-process reference)");
  if (args.all("method").size() > 1) fail("--method", "compare takes one method");
  const double tolerance = args.get_double("tolerance", kTieTolerance, 0, 1);
  const int batch = args.get_int("batch", 32, 1, 4096);
  const auto model = load_model_from_args(args);
  const PreprocessSpec pre = preprocess_spec(model->config());

  // The reference: a file in the golden layout, or this model in fp32.
  std::string method = args.get("method"), ref_name, prefix;
  std::vector<std::string> files;
  at::Tensor clusters, input, ref_logits;
  if (args.has("reference")) {
    const SafetensorsFile ref = read_safetensors(args.get("reference"));
    ref_name = ref.path;
    prefix = args.has("setting") ? args.get("setting") + "." : "";
    if (!ref.tensors.count(prefix + "cluster_of_token") && ref.tensors.count(prefix + "logits"))
      fail(ref.path, "no " + prefix +
                         "cluster_of_token: a reference of a method that mixes all tokens (dct) has no partition to "
                         "compare (tests/test_reducers_golden.cpp checks its tokens and logits)");
    clusters = tensor(ref, prefix + "cluster_of_token");
    if (clusters.dim() != 3 || clusters.scalar_type() != at::kLong)
      fail(ref.path, prefix + "cluster_of_token must be int64 [images, layers, tokens]");
    if (method.empty() && ref.metadata.count("method")) method = ref.metadata.at("method");
    if (method.empty()) fail("compare", "--method SPEC is required (the reference names none)");
    if (args.has("images")) files = reference_images(ref, args.get("images"), clusters.size(0));
    if (files.empty()) input = tensor(ref, "input");
    if (files.empty() && input.size(0) != clusters.size(0))
      fail(ref.path, "input and cluster_of_token hold different image counts");
    if (ref.tensors.count(prefix + "logits")) ref_logits = ref.tensors.at(prefix + "logits");
  } else {
    if (method.empty()) fail("compare", "--method SPEC is required");
    c10::InferenceMode guard;
    SelfReference self = fp32_reference(args, *Model::with_dtype(model, Dtype::Float32), method, batch);
    ref_name = std::string("fp32 (") + model->source() + ")";
    files = std::move(self.files);
    clusters = self.clusters;
    ref_logits = self.logits;
  }
  const int64_t count = clusters.size(0);
  auto reducer = reducer_for(method);
  // Labels from the file names (eval's rule), for the accuracy of both runs on the same images; a reference
  // that carries its input tensor has no file names.
  const Labels labels = files.empty()        ? Labels()
                        : args.has("labels") ? Labels::load(args.get("labels"))
                                             : Labels::load_default();
  std::vector<bool> ref_top1, ours_top1;
  int ref_top5 = 0, ours_top5 = 0;

  c10::InferenceMode guard;
  RunOptions run_options;
  run_options.trace = true;
  std::vector<PartitionComparison> results;
  int top1_equal = 0;
  int64_t layers_same = 0;  // (image, block) partitions identical
  double logit_error = 0;   // over images identical at every layer
  Progress progress("compare", count);
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t end = std::min(count, start + batch);
    const at::Tensor x =
        files.empty() ? input.slice(0, start, end) : load_batch({files.begin() + start, files.begin() + end}, pre);
    const RunResult r = run(*model, x, reducer.get(), run_options);
    check_finite_logits(r.logits, *model,
                        files.empty() ? std::vector<std::string>{}
                                      : std::vector<std::string>(files.begin() + start, files.begin() + end));
    for (int64_t b = 0; b < end - start; ++b) {
      const at::Tensor c = clusters[start + b].contiguous();
      ReferencePartitions reference(c.size(0));
      for (int64_t l = 0; l < c.size(0); ++l) {
        reference[l].assign(c[l].data_ptr<int64_t>(), c[l].data_ptr<int64_t>() + c.size(1));
        if (static_cast<size_t>(l) < r.traces[b].layers.size())
          layers_same += same_partition(r.traces[b].layers[l].cluster_of_token, reference[l]);
      }
      results.push_back(compare_partitions(r.traces[b], reference, tolerance));
      if (!ref_logits.defined()) continue;
      const at::Tensor ours = r.logits[b], theirs = ref_logits[start + b];
      top1_equal += ours.argmax().item<int64_t>() == theirs.argmax().item<int64_t>();
      const int label = files.empty() ? -1 : labels.index_from_filename(files[start + b]);
      if (label >= 0) {
        const at::Tensor ours5 = std::get<1>(ours.topk(5)), theirs5 = std::get<1>(theirs.topk(5));
        ours_top1.push_back(ours5[0].item<int64_t>() == label);
        ref_top1.push_back(theirs5[0].item<int64_t>() == label);
        ours_top5 += (ours5 == label).any().item().toBool();
        ref_top5 += (theirs5 == label).any().item().toBool();
      }
      if (results.back().outcome == Outcome::kIdentical)
        logit_error = std::max(logit_error, ((ours - theirs).abs().max() / theirs.abs().max()).item<double>());
    }
    progress.update(end, "");
  }
  progress.finish();

  auto name = [&](size_t i) { return files.empty() ? "image " + std::to_string(i) : files[i]; };
  int n[3] = {0, 0, 0};
  std::vector<int> tie_layers(clusters.size(1), 0);
  for (size_t i = 0; i < results.size(); ++i) {
    const PartitionComparison& c = results[i];
    ++n[static_cast<int>(c.outcome)];
    if (c.outcome == Outcome::kTie) ++tie_layers[c.layer];
    if (c.outcome != Outcome::kIdentical && !args.flag("quiet"))
      std::printf("%s %s: %s\n", outcome_name(c.outcome), name(i).c_str(), c.detail.c_str());
  }
  const double total = static_cast<double>(count);
  std::printf("reference %s (%lld images, %lld layers), mergescope %s (%s) on %s, tie tolerance %g\n", ref_name.c_str(),
              static_cast<long long>(count), static_cast<long long>(clusters.size(1)), method.c_str(),
              dtype_name(model->dtype()), model->source().c_str(), tolerance);
  std::printf("identical at every layer: %d (%.1f%%)\n", n[0], 100 * n[0] / total);
  std::printf("(image, layer) partitions identical: %lld of %lld (%.1f%%)\n", static_cast<long long>(layers_same),
              static_cast<long long>(count * clusters.size(1)), 100.0 * layers_same / (total * clusters.size(1)));
  std::printf("ties (first difference on a decision with margin < %g): %d (%.1f%%); first tie at layer:", tolerance,
              n[1], 100 * n[1] / total);
  for (size_t l = 0; l < tie_layers.size(); ++l)
    if (tie_layers[l]) std::printf(" %zu (%d)", l, tie_layers[l]);
  std::printf("\nmismatches: %d (%.1f%%)\n", n[2], 100 * n[2] / total);
  if (ref_logits.defined() && n[0] > 0)
    std::printf("top-1 equal: %d of %lld; logits of the identical images within %.2e of max |logit|\n", top1_equal,
                static_cast<long long>(count), logit_error);
  else if (ref_logits.defined())
    std::printf("top-1 equal: %d of %lld; no image identical at every layer\n", top1_equal,
                static_cast<long long>(count));
  if (!ref_top1.empty()) {
    // Accuracy of both runs on the same labelled images, and whether their difference exceeds the sample's noise.
    const std::string a = args.has("against") ? "fp32" : "the reference";
    const std::string b = args.has("against") ? dtype_name(model->dtype()) : "mergescope";
    const PairedAccuracy paired = paired_accuracy(ref_top1, ours_top1);
    const double labelled = static_cast<double>(ref_top1.size());
    std::printf("accuracy on %zu labelled images: top-1 %s %.1f%%, %s %.1f%%; top-5 %s %.1f%%, %s %.1f%%\n",
                ref_top1.size(), a.c_str(), 100.0 * (paired.both + paired.only_a) / labelled, b.c_str(),
                100.0 * (paired.both + paired.only_b) / labelled, a.c_str(), 100.0 * ref_top5 / labelled, b.c_str(),
                100.0 * ours_top5 / labelled);
    std::printf("top-1 difference (%s - %s): %s\n", b.c_str(), a.c_str(), paired.summary(a, b).c_str());
  }
  return n[2] == 0 ? 0 : 1;
}

}  // namespace ms::cli
