// The app's door into the engine: a loaded model plus what the panes ask of it. The header holds no LibTorch
// (the model hides behind a pointer), so GUI files include it without paying LibTorch's compile time.
// Everything here runs on the worker thread and throws ms::Error naming the file and the problem.
#pragma once

#include "app_state.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ms::gui {

class ModelSession {
 public:
  // Loads a model folder, weights file or name on the search path; the labels from the data search path
  // (class indices when synset_words.txt is missing).
  // `dtype`: "fp32" or "bf16" (core/precision.h); throws ms::Error naming what is wrong.
  static std::shared_ptr<const ModelSession> load(const std::string& spec, const std::string& dtype = "fp32");

  const ModelSummary& summary() const { return summary_; }

  // Decodes an image and prepares what the model sees, where that lies in the original, and the copy the
  // overlay is drawn on when a side is over `max_overlay_side` (OverlayRenderer::max_side()).
  std::shared_ptr<LoadedImage> open_image(const std::string& path, int max_overlay_side = kMaxOverlaySide) const;

  // Runs one method spec on the image: trace (with energies and keys), top-5, GMACs per layer and the
  // spectral check. `cancelled` is polled between stages.
  std::shared_ptr<PaneResult> run(const LoadedImage& image, const std::string& spec,
                                  const std::function<bool()>& cancelled = {}) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
  ModelSummary summary_;
};

// The pane's spectral check from its trace (recorded with keys): SD after every block in the theorem view, the
// original and lifted spectra (analysis/spectral_distance.h, the function `mergescope-cli spectrum` uses too; NaN
// SD where pruning leaves it undefined). Needs no window and no model.
void spectral_check(PaneResult& result);

// Model names found on the search path ($MERGESCOPE_MODELS, ./models, ../shared/models).
std::vector<std::string> available_models();
// The shared sample images' folder on the data search path ("" if none).
std::string sample_image_folder();
// The first start's image: the tench among the samples, else the first sample ("" if none).
std::string default_image();

// Sets LibTorch's thread count (0: all cores) once for the process.
void init_engine_runtime(int threads);

}  // namespace ms::gui
