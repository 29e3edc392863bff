#include "batch.h"
#include "commands.h"
#include "engine.h"
#include "error.h"
#include "evaluation.h"
#include "labels.h"
#include "model.h"

#include <c10/core/InferenceMode.h>

#include <cstdio>

namespace ms::cli {

int cmd_classify(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert({"labels", "top"});
  const Args args(argv, {}, options);
  if (args.positionals().empty()) fail("classify", "no image given (usage: classify --model M IMAGE...)");
  const Labels labels = args.has("labels") ? Labels::load(args.get("labels")) : Labels::load_default();
  const int k = args.get_int("top", 5, 1, 1000);
  const auto model = load_model_from_args(args);
  if (static_cast<size_t>(model->config().num_classes) != labels.size())
    fail(args.get("labels", "labels"),
         std::to_string(labels.size()) + " classes, the model has " + std::to_string(model->config().num_classes));
  c10::InferenceMode guard;
  const at::Tensor input = load_batch(args.positionals(), preprocess_spec(model->config()));
  const at::Tensor logits = model->forward(input);
  check_finite_logits(logits, *model, args.positionals());
  const auto predictions = top_k(logits, k);
  for (size_t i = 0; i < predictions.size(); ++i) {
    std::printf("%s\n", args.positionals()[i].c_str());
    for (size_t j = 0; j < predictions[i].classes.size(); ++j)
      std::printf("  %zu. %6.2f%%  %s (%d)\n", j + 1, 100.0 * predictions[i].probs[j],
                  labels.name(predictions[i].classes[j]).c_str(), predictions[i].classes[j]);
  }
  return 0;
}

}  // namespace ms::cli
