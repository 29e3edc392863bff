#include "batch.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "evaluation.h"
#include "flops.h"
#include "labels.h"
#include "methods.h"
#include "model.h"
#include "precision.h"
#include "progress.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>

namespace ms::cli {
namespace {

struct MethodTally {
  MethodTotals totals;
  std::unique_ptr<Reducer> reducer;
  std::vector<ImageResult> results;
};

std::string output_path(const std::string& path, const std::string& spec, size_t methods) {
  if (methods == 1) return path;
  const std::string tag = spec_file_tag(spec);
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? path + "." + tag : path.substr(0, dot) + "." + tag + path.substr(dot);
}

}  // namespace

int cmd_eval(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert(kMethodOptions.begin(), kMethodOptions.end());
  options.insert({"images", "labels", "batch", "csv", "json", "limit", "offset", "paired-against"});
  const Args args(argv, {}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument (eval reads --images DIR)");
  if (!args.has("images")) fail("eval", "--images DIR is required");
  const Labels labels = args.has("labels") ? Labels::load(args.get("labels")) : Labels::load_default();
  const int batch_size = args.get_int("batch", 32, 1, 4096);
  std::vector<std::string> files = list_images(args.get("images"));
  const int offset = args.get_int("offset", 0, 0, 1 << 30);  // e.g. --offset 250: evaluate images 251..
  files.erase(files.begin(), files.begin() + std::min<size_t>(offset, files.size()));
  const int limit = args.get_int("limit", 0, 0, 1 << 30);
  if (limit > 0 && files.size() > static_cast<size_t>(limit)) files.resize(limit);
  if (files.empty()) fail(args.get("images"), "no JPEG, PNG or BMP images in folder");

  const auto model = load_model_from_args(args);
  const VitConfig& config = model->config();
  const std::vector<std::string> specs = resolve_methods(args, config, args.all("method").size() > 0);
  // The row the others are paired against below the table: the first, or the method --paired-against names.
  size_t against = 0;
  if (args.has("paired-against")) {
    std::string name;
    try {
      name = make_reducer(args.get("paired-against"))->spec();
    } catch (const Error& e) {
      fail("--paired-against", e.what());
    }
    const auto it =
        std::find_if(specs.begin(), specs.end(), [&](const std::string& s) { return make_reducer(s)->spec() == name; });
    if (it == specs.end())
      fail("--paired-against " + args.get("paired-against"),
           "is not one of the methods evaluated (give it as --method)");
    against = static_cast<size_t>(it - specs.begin());
  }
  std::vector<MethodTally> tallies;
  for (const auto& s : specs) {
    tallies.emplace_back();
    tallies.back().totals.spec = s;
    tallies.back().totals.dtype = dtype_name(model->dtype());
    tallies.back().reducer = reducer_for(s);
  }
  const PreprocessSpec pre = preprocess_spec(config);
  c10::InferenceMode guard;

  Progress progress("eval", files.size());
  for (size_t start = 0; start < files.size(); start += batch_size) {
    const std::vector<std::string> chunk(files.begin() + start,
                                         files.begin() + std::min(files.size(), start + batch_size));
    const at::Tensor input = load_batch(chunk, pre);  // decoded once, shared by every method
    for (auto& t : tallies) {
      const auto t0 = std::chrono::steady_clock::now();
      const RunResult r = run(*model, input, t.reducer.get());
      t.totals.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      check_finite_logits(r.logits, *model, chunk);
      const auto predictions = top_k(r.logits, 5);
      for (size_t i = 0; i < chunk.size(); ++i) {
        ImageResult res{chunk[i], labels.index_from_filename(chunk[i]), predictions[i]};
        t.totals.add(res, model_cost(config, r.tokens_per_image[i], t.reducer.get()).total());
        t.results.push_back(std::move(res));
      }
    }
    char extra[64];
    std::snprintf(extra, sizeof extra, "top-1 %.1f%% (%s)", tallies.back().totals.accuracy.top1_percent(),
                  tallies.back().totals.spec.c_str());
    progress.update(tallies.front().results.size(), extra);
  }
  progress.finish();

  const double n = static_cast<double>(files.size());
  std::vector<MethodTotals> rows;
  for (const auto& t : tallies) rows.push_back(t.totals);
  std::fputs(format_eval_table(model->source(), rows).c_str(), stdout);
  std::vector<const std::vector<ImageResult>*> results;
  for (const auto& t : tallies) results.push_back(&t.results);
  if (const std::string paired = format_paired_table(rows, results, against); !paired.empty())
    std::printf("\n%s", paired.c_str());
  if (tallies.front().totals.accuracy.images == 0)
    std::fprintf(stderr, "mergescope-cli: warning: no file name starts with a known wnid; accuracy is undefined\n");
  for (const auto& t : tallies) {
    const std::string& spec = t.totals.spec;
    if (args.has("csv")) write_results_csv(output_path(args.get("csv"), spec, tallies.size()), t.results, labels);
    if (args.has("json"))
      write_results_json(output_path(args.get("json"), spec, tallies.size()), t.results, labels,
                         model->source() + " " + spec, t.totals.accuracy, n / t.totals.seconds);
  }
  return 0;
}

}  // namespace ms::cli
