// calibrate: learns LTP / LTMP thresholds on a frozen model (core/calibrate.h) and writes them as JSON.
#include "batch.h"
#include "calibrate.h"
#include "commands.h"
#include "config.h"
#include "engine.h"
#include "error.h"
#include "labels.h"
#include "model.h"
#include "precision.h"
#include "progress.h"
#include "thresholds.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ms::cli {

int cmd_calibrate(const std::vector<std::string>& argv) {
  auto options = kModelOptions;
  options.insert({"method", "images", "labels", "limit", "offset", "target-macs", "out", "epochs", "batch", "lambda",
                  "lambda-rate", "lr-merge", "lr-prune", "tau-merge", "tau-prune", "mask", "merge-init", "prune-init"});
  const Args args(argv, {"distill"}, options);
  if (!args.positionals().empty()) fail(args.positionals()[0], "unexpected argument (calibrate reads --images DIR)");
  if (!args.has("images")) fail("calibrate", "--images DIR is required");
  if (!args.has("out")) fail("calibrate", "--out FILE is required (thresholds JSON)");
  CalibrationOptions o;
  o.method = args.get("method", "ltmp");
  if (o.method != "ltmp" && o.method != "ltp")
    fail("--method", "'" + o.method + "' cannot be calibrated (ltmp or ltp)");
  const bool ltmp = o.method == "ltmp";
  // Defaults: the papers' where they fit 250 images on a CPU; README "Learned thresholds" says what changed.
  o.target_macs = args.get_double("target-macs", 0.6, 0.05, 1.0);
  o.distill = args.flag("distill");
  o.epochs = args.get_int("epochs", 1, 1, 1000);
  o.batch = args.get_int("batch", 8, 1, 4096);
  o.lambda = args.get_double("lambda", ltmp ? 10.0 : 1.0, 0, 1e9);
  o.lambda_rate = args.get_double("lambda-rate", ltmp ? 0.0 : 20.0, 0, 1e9);
  o.lr_merge = args.get_double("lr-merge", 0.05, 0, 1e9);
  o.lr_prune = args.get_double("lr-prune", ltmp ? 1e-4 : 5e-6, 0, 1e9);
  const std::string mask = args.get("mask", ltmp ? "ste" : "soft");
  if (mask != "ste" && mask != "soft") fail("--mask", "'" + mask + "' is not ste or soft");
  o.masks.straight_through = mask == "ste";
  o.masks.tau_merge = args.get_double("tau-merge", 0.1, 1e-12, 1e9);
  o.masks.tau_prune = args.get_double("tau-prune", ltmp ? 0.1 : 1e-3, 1e-12, 1e9);
  o.merge_init = args.get_double("merge-init", 0.9, 0, 1);
  o.prune_init = args.get_double("prune-init", 0.0, 0, 1);
  o.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, 1 << 30));

  // Training stays fp32: the thresholds' gradients flow through soft masks and a MACs ratio whose changes are
  // far below bf16's resolution (8-bit mantissa, ~0.4% steps). Learned thresholds run under --dtype bf16 in eval.
  if (args.has("dtype") && parse_dtype(args.get("dtype"), "--dtype") != Dtype::Float32)
    fail("--dtype", "calibrate trains in fp32 only; evaluate its thresholds with eval --dtype bf16");
  std::vector<std::string> files = list_images(args.get("images"));
  const int offset = args.get_int("offset", 0, 0, 1 << 30);
  const int limit = args.get_int("limit", 0, 0, 1 << 30);
  files.erase(files.begin(), files.begin() + std::min<size_t>(offset, files.size()));
  if (limit > 0 && files.size() > static_cast<size_t>(limit)) files.resize(limit);
  if (files.empty()) fail(args.get("images"), "no images to calibrate on (check --offset/--limit)");

  const auto model = load_model_from_args(args);
  const Labels labels = args.has("labels") ? Labels::load(args.get("labels")) : Labels::load_default();
  std::vector<int64_t> label_index;
  for (const auto& f : files) {
    const int k = labels.index_from_filename(f);
    if (k < 0 && !o.distill)
      fail(f, "no class label in the file name (<wnid>_*.JPEG); use --distill to learn without labels");
    label_index.push_back(k < 0 ? 0 : k);
  }
  std::fprintf(stderr, "calibrate %s on %zu images of %s (from #%d), target %.3f of the unreduced MACs, %s loss\n",
               o.method.c_str(), files.size(), args.get("images").c_str(), offset + 1, o.target_macs,
               o.distill ? "KL-to-unreduced" : "cross-entropy");
  const at::Tensor images = load_batch(files, preprocess_spec(model->config()));
  const at::Tensor labels_t = at::tensor(label_index, at::kLong);
  {
    // core/calibrate.cpp refuses a non-finite loss without naming the model; one unreduced forward of the
    // first batch names the weights (and the image) when the model itself gives NaN or inf logits.
    c10::InferenceMode guard;
    const int64_t first = std::min<int64_t>(o.batch, images.size(0));
    check_finite_logits(model->forward(images.slice(0, 0, first)), *model,
                        std::vector<std::string>(files.begin(), files.begin() + first));
  }

  Progress progress("calibrate", files.size() * o.epochs);
  const CalibrationResult r = calibrate(*model, images, labels_t, o, [&](const CalibrationStep& s) {
    char extra[160];
    std::snprintf(extra, sizeof extra, "step %d/%d  loss %.3f (mean %.3f)  MACs ratio %.3f (mean %.3f)", s.step,
                  s.steps, s.loss, s.running_loss, s.macs_ratio, s.running_macs_ratio);
    progress.update(s.images_done, extra);
  });
  progress.finish();

  LearnedThresholds t = r.thresholds;
  nlohmann::json info;
  info["images"] = args.get("images");
  info["offset"] = offset;
  info["count"] = files.size();
  info["target_macs"] = o.target_macs;
  info["loss"] = o.distill ? "kl_to_unreduced" : "cross_entropy";
  info["penalty"] = ltmp ? "lambda*(target-macs_ratio)^2" : "lambda*mask_mean (lambda by dual ascent)";
  info["lambda"] = o.lambda;
  if (!ltmp) info["lambda_rate"] = o.lambda_rate, info["lambda_final"] = r.steps.back().lambda;
  info["epochs"] = o.epochs;
  info["batch"] = o.batch;
  info["optimizer"] = "sgd, cosine schedule, thresholds clamped to [0,1]";
  if (ltmp) info["lr_merge"] = o.lr_merge;
  info["lr_prune"] = o.lr_prune;
  info["mask"] = mask;
  if (ltmp) info["tau_merge"] = o.masks.tau_merge;
  info["tau_prune"] = o.masks.tau_prune;
  if (ltmp) info["merge_init"] = o.merge_init;
  info["prune_init"] = o.prune_init;
  info["seed"] = o.seed;
  info["seconds"] = r.seconds;
  info["last_epoch_macs_ratio"] = r.steps.back().running_macs_ratio;
  info["last_epoch_loss"] = r.steps.back().running_loss;
  t.calibration = info.dump();
  save_thresholds(args.get("out"), t);

  std::printf("%s thresholds for %s, %zu images x %d epoch(s), %.1f s\n", o.method.c_str(), model->source().c_str(),
              files.size(), o.epochs, r.seconds);
  std::printf("block  %10s  %10s\n", "merge", "prune");
  for (int l = 0; l < t.depth(); ++l) {
    if (ltmp)
      std::printf("%5d  %10.5f  %10.6f\n", l, t.merge[l], t.prune[l]);
    else
      std::printf("%5d  %10s  %10.6f\n", l, "-", t.prune[l]);
  }
  std::printf("training MACs ratio (last epoch mean) %.3f, target %.3f\nwrote %s\n", r.steps.back().running_macs_ratio,
              o.target_macs, args.get("out").c_str());
  return 0;
}

}  // namespace ms::cli
