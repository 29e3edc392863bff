#include "session.h"
#include "precision.h"

#include "batch.h"
#include "checkpoint.h"
#include "engine.h"
#include "error.h"
#include "evaluation.h"
#include "flops.h"
#include "io.h"
#include "labels.h"
#include "model.h"
#include "preprocess.h"
#include "runtime.h"
#include "spectral_distance.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <dirent.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

namespace ms::gui {

struct ModelSession::Impl {
  std::shared_ptr<const Model> model;
  PreprocessSpec preprocess;
  std::optional<Labels> labels;
};

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int round_half_even(double v) { return static_cast<int>(std::nearbyint(v)); }

// Where torchvision's Resize(short side) + CenterCrop lands in the original image.
CropMapping crop_mapping(int width, int height, const PreprocessSpec& spec) {
  const bool wide = width >= height;
  const int short_side = wide ? height : width, long_side = wide ? width : height;
  const int new_long = short_side == spec.resize
                           ? long_side
                           : static_cast<int>(static_cast<int64_t>(spec.resize) * long_side / short_side);
  const int rw = short_side == spec.resize ? width : (wide ? new_long : spec.resize);
  const int rh = short_side == spec.resize ? height : (wide ? spec.resize : new_long);
  CropMapping c;
  const double sx = static_cast<double>(width) / rw, sy = static_cast<double>(height) / rh;
  c.x0 = round_half_even((rw - spec.crop) / 2.0) * sx;
  c.y0 = round_half_even((rh - spec.crop) / 2.0) * sy;
  c.width = spec.crop * sx;
  c.height = spec.crop * sy;
  return c;
}

}  // namespace

void spectral_check(PaneResult& r) {
  r.spectral_distance.clear();
  r.eig_original.clear();
  r.eig_lifted.clear();
  if (r.trace.layers.empty() || r.trace.layers[0].key_dim == 0) return;
  const TraceSpectralDistance t = trace_spectral_distance(r.trace, SdView::Theorem, SdOptions());
  r.spectral_distance = t.sd;
  const Eigen::VectorXd& original = t.original.front();
  r.eig_original.assign(original.data(), original.data() + original.size());
  for (const Eigen::VectorXd& lifted : t.lifted)
    r.eig_lifted.emplace_back(lifted.data(), lifted.data() + lifted.size());
}

std::shared_ptr<const ModelSession> ModelSession::load(const std::string& spec, const std::string& dtype) {
  auto impl = std::make_shared<Impl>();
  impl->model = Model::with_dtype(Model::load(spec), parse_dtype(dtype, "--dtype"));
  const VitConfig& c = impl->model->config();
  impl->preprocess = preprocess_spec(c);
  try {
    impl->labels = Labels::load_default();
  } catch (const Error&) {
    // No class names on the data search path: the panes show class indices.
  }
  auto session = std::shared_ptr<ModelSession>(new ModelSession());
  session->impl_ = impl;
  ModelSummary& s = session->summary_;
  s.name = c.architecture;
  s.source = impl->model->source();
  s.depth = c.depth;
  s.grid = c.grid();
  s.patch = c.patch_size;
  s.img_size = c.img_size;
  s.prefix_tokens = c.num_prefix_tokens();
  s.width = c.embed_dim;
  s.heads = c.num_heads;
  s.dtype = dtype_name(impl->model->dtype());
  if (impl->model->dtype() != Dtype::Float32) s.dtype_notice = bf16_notice();
  return session;
}

std::shared_ptr<LoadedImage> ModelSession::open_image(const std::string& path, int max_overlay_side) const {
  auto img = std::make_shared<LoadedImage>();
  img->path = path;
  img->original = load_image(path);  // errors name the file, running out of memory included
  img->model_view = model_view(img->original, impl_->preprocess, path);
  img->crop = crop_mapping(img->original.width, img->original.height, impl_->preprocess);
  const int w = img->original.width, h = img->original.height;
  if (std::max(w, h) > max_overlay_side) {
    // Within the limit on both sides, aspect ratio kept as far as whole pixels allow.
    const double k = static_cast<double>(max_overlay_side) / std::max(w, h);
    const int dw = std::clamp(static_cast<int>(std::lround(w * k)), 1, max_overlay_side);
    const int dh = std::clamp(static_cast<int>(std::lround(h * k)), 1, max_overlay_side);
    with_file_errors(path, [&] { img->display = resize_like_pil(img->original, dw, dh, ResampleFilter::Bilinear); });
    const double sx = static_cast<double>(dw) / w, sy = static_cast<double>(dh) / h;
    img->display_crop = {img->crop.x0 * sx, img->crop.y0 * sy, img->crop.width * sx, img->crop.height * sy};
  }
  return img;
}

std::shared_ptr<PaneResult> ModelSession::run(const LoadedImage& image, const std::string& spec,
                                              const std::function<bool()>& cancelled) const {
  const auto t0 = std::chrono::steady_clock::now();
  const Model& model = *impl_->model;
  const VitConfig& c = model.config();
  std::unique_ptr<Reducer> reducer = spec == "none" ? nullptr : make_reducer(spec);
  auto r = std::make_shared<PaneResult>();
  r->spec = reducer ? reducer->spec() : "none";
  {
    c10::InferenceMode guard;
    at::Tensor input = at::empty({1, 3, c.img_size, c.img_size}, at::kFloat);
    preprocess(image.original, impl_->preprocess, input.data_ptr<float>(), image.path);
    RunOptions opts;
    opts.trace = opts.trace_energy = opts.trace_keys = true;
    RunResult run_result = ms::run(model, input, reducer.get(), opts);
    r->trace = std::move(run_result.traces.front());
    r->tokens_per_layer = run_result.tokens_per_layer;
    const Prediction p = top_k(run_result.logits, 5).front();
    for (size_t i = 0; i < p.classes.size(); ++i) {
      const int k = p.classes[i];
      const std::string name = impl_->labels && k < static_cast<int>(impl_->labels->size())
                                   ? impl_->labels->name(k)
                                   : "class " + std::to_string(k);
      r->top5.emplace_back(name, p.probs[i]);
    }
    const CostBreakdown cost = model_cost(c, r->tokens_per_layer, reducer.get());
    r->gmacs = cost.gmacs();
    for (double m : cost.per_layer) r->gmacs_per_layer.push_back(m * 1e-9);
  }
  r->run_seconds = seconds_since(t0);
  if (cancelled && cancelled()) return r;
  const auto t1 = std::chrono::steady_clock::now();
  spectral_check(*r);
  r->spectra_seconds = seconds_since(t1);
  return r;
}

std::vector<std::string> available_models() {
  std::vector<std::string> names;
  for (const std::string& dir : model_search_path()) {
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      if (is_regular_file(dir + "/" + name + "/config.json") &&
          std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string sample_image_folder() {
  for (const std::string& dir : data_search_path())
    if (is_directory(dir + "/imagenet-sample")) return dir + "/imagenet-sample";
  return "";
}

std::string default_image() {
  const std::string folder = sample_image_folder();
  if (folder.empty()) return "";
  const std::vector<std::string> files = list_images(folder);
  for (const std::string& f : files)
    if (f.find("n01440764_") != std::string::npos) return f;
  return files.empty() ? "" : files.front();
}

void init_engine_runtime(int threads) { init_runtime(threads); }

}  // namespace ms::gui
