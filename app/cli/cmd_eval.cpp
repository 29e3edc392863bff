#include "batch.h"
#include "commands.h"
#include "error.h"
#include "evaluation.h"
#include "labels.h"
#include "model.h"
#include "progress.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>

namespace ms::cli {

int cmd_eval(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert({"images", "labels", "batch", "csv", "json", "limit"});
  const Args args(argv, {}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument (eval reads --images DIR)");
  if (!args.has("images")) fail("eval", "--images DIR is required");
  const Labels labels = args.has("labels") ? Labels::load(args.get("labels")) : Labels::load_default();
  const int batch_size = args.get_int("batch", 32, 1, 4096);
  std::vector<std::string> files = list_images(args.get("images"));
  const int limit = args.get_int("limit", 0, 0, 1 << 30);
  if (limit > 0 && files.size() > static_cast<size_t>(limit)) files.resize(limit);
  if (files.empty()) fail(args.get("images"), "no JPEG, PNG or BMP images in folder");

  const auto model = load_model_from_args(args);
  const PreprocessSpec spec = preprocess_spec(model->config());
  c10::InferenceMode guard;

  std::vector<ImageResult> results;
  Accuracy accuracy;
  double model_seconds = 0;
  Progress progress("eval", files.size());
  for (size_t start = 0; start < files.size(); start += batch_size) {
    const std::vector<std::string> chunk(files.begin() + start, files.begin() + std::min(files.size(), start + batch_size));
    const at::Tensor input = load_batch(chunk, spec);
    const auto t0 = std::chrono::steady_clock::now();
    const at::Tensor logits = model->forward(input);
    model_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto predictions = top_k(logits, 5);
    for (size_t i = 0; i < chunk.size(); ++i) {
      ImageResult r{chunk[i], labels.index_from_filename(chunk[i]), predictions[i]};
      accuracy.add(r);
      results.push_back(std::move(r));
    }
    char extra[64];
    std::snprintf(extra, sizeof extra, "top-1 %.1f%%", accuracy.top1_percent());
    progress.update(results.size(), extra);
  }
  const double total_seconds = progress.elapsed_seconds();
  progress.finish();
  const double ips = results.size() / total_seconds;
  std::printf("model %s  images %zu (labelled %d)  top-1 %.2f%%  top-5 %.2f%%  %.1f images/s end-to-end, %.1f images/s model only\n",
              model->source().c_str(), results.size(), accuracy.images, accuracy.top1_percent(), accuracy.top5_percent(), ips,
              results.size() / model_seconds);
  if (accuracy.images == 0)
    std::fprintf(stderr, "mergescope-cli: warning: no file name starts with a known wnid; accuracy is undefined\n");
  if (args.has("csv")) write_results_csv(args.get("csv"), results, labels);
  if (args.has("json")) write_results_json(args.get("json"), results, labels, model->source(), accuracy, ips);
  return 0;
}

}  // namespace ms::cli
