#include "batch.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "flops.h"
#include "io.h"
#include "methods.h"
#include "model.h"
#include "progress.h"
#include "spectral_report.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>

namespace ms::cli {

int cmd_spectrum(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert(kMethodOptions.begin(), kMethodOptions.end());
  options.insert({"out", "kernel", "sigma", "layer", "limit", "batch", "dense-limit", "partial-k"});
  const Args args(argv, {"no-baselines"}, options);
  if (args.positionals().size() != 1)
    fail("spectrum", "give one IMAGE or folder (usage: spectrum --model M --method SPEC IMAGE|DIR --out DIR)");
  if (!args.has("out")) fail("spectrum", "--out DIR is required");
  if (!args.has("method")) fail("spectrum", "give at least one --method");
  const std::string input = args.positionals()[0];
  std::vector<std::string> files = is_directory(input) ? list_images(input) : std::vector<std::string>{input};
  const int limit = args.get_int("limit", 0, 0, 1 << 30);
  if (limit > 0 && files.size() > static_cast<size_t>(limit)) files.resize(limit);
  if (files.empty()) fail(input, "no JPEG, PNG or BMP images in folder");

  SpectralOptions so;
  so.graph.kernel = kernel_from_name(args.get("kernel", "one-minus-cos"));
  so.graph.sigma = args.get_double("sigma", 0.5, 1e-3, 10.0);
  so.curve_layer = args.get_int("layer", -1, -1, 1000);
  so.baselines = !args.flag("no-baselines");
  so.dense_limit = args.get_int("dense-limit", so.dense_limit, 8, 100000);
  so.partial_k = args.get_int("partial-k", so.partial_k, 1, 1000);
  const int batch = args.get_int("batch", 8, 1, 256);

  const auto model = load_model_from_args(args);
  const VitConfig& c = model->config();
  const std::vector<std::string> specs = resolve_methods(args, c, false);
  std::vector<std::unique_ptr<Reducer>> reducers;
  for (const auto& s : specs) reducers.push_back(reducer_for(s));
  // The baselines copy the token counts of the first method that reduces and has a partition (not dct).
  int reference = 0;
  auto skip = [&](int m) {
    return specs[m] == "none" || (reducers[m] && reducers[m]->stage() == ReducerStage::AfterMlp);
  };
  while (reference + 1 < static_cast<int>(specs.size()) && skip(reference)) ++reference;
  SpectralReport report(specs, c.depth, so);
  std::vector<std::vector<double>> gmacs(specs.size());

  c10::InferenceMode guard;
  RunOptions ro;
  ro.trace = ro.trace_energy = ro.released_energy = ro.trace_keys = true;
  const PreprocessSpec pre = preprocess_spec(c);
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  double forward_s = 0, analysis_s = 0;
  Progress progress("spectrum", files.size());
  for (size_t start = 0; start < files.size(); start += batch) {
    const std::vector<std::string> chunk(files.begin() + start, files.begin() + std::min(files.size(), start + batch));
    const at::Tensor images = load_batch(chunk, pre);
    std::vector<RunResult> runs;
    const auto t_forward = Clock::now();
    for (size_t m = 0; m < specs.size(); ++m) {
      runs.push_back(run(*model, images, reducers[m].get(), ro));
      check_finite_logits(runs.back().logits, *model, chunk);
      if (gmacs[m].empty()) {
        for (double v : model_cost(c, runs.back().tokens_per_layer, reducers[m].get()).per_layer)
          gmacs[m].push_back(v * 1e-9);
      }
    }
    forward_s += since(t_forward);
    const auto t_analysis = Clock::now();
    for (size_t i = 0; i < chunk.size(); ++i) {
      std::vector<ImageTrace> traces;
      for (auto& r : runs) traces.push_back(std::move(r.traces[i]));
      report.add_image(traces, reference);
      progress.update(report.images());
    }
    analysis_s += since(t_analysis);
  }
  progress.finish();
  const auto t_export = Clock::now();
  export_spectral_report(report, args.get("out"), model->source(), gmacs);
  const double export_s = since(t_export);

  std::printf("%s, %d image(s), kernel %s; spectral distance per block, mean over images\n", model->source().c_str(),
              report.images(), kernel_name(so.graph.kernel).c_str());
  std::printf("%-32s %14s %14s %14s %14s\n", "method", "theorem@mid", "theorem@last", "layer mean", "layer@last");
  for (const auto& r : report.rows()) {
    double layer_mean = 0;
    for (const auto& s : r.sd_layer) layer_mean += s.mean() / r.sd_layer.size();
    if (r.mixes_all) {  // dct: every token mixes all patches, so there is no partition and no SD
      std::printf("%-32s %14s %s\n", r.method.c_str(), "", "no partition: every token mixes all patch tokens");
      continue;
    }
    std::printf("%-32s %14.4f %14.4f %14.4f %14.4f\n", r.method.c_str(), r.sd_theorem[report.curve_layer()].mean(),
                r.sd_theorem.back().mean(), layer_mean, r.sd_layer.back().mean());
  }
  std::printf("time: forward passes %.2f s, graphs and spectra %.2f s, export %.2f s (%d tokens per image%s)\n",
              forward_s, analysis_s, export_s, c.num_tokens(),
              report.used_partial_spectra() ? ", partial spectra" : "");
  std::printf("Lemma 1 on these graphs: block sums max error %.2e; block means max deviation %.2e\nwrote %s\n",
              report.lemma_error_sum(), report.lemma_error_mean(), args.get("out").c_str());
  return 0;
}

}  // namespace ms::cli
