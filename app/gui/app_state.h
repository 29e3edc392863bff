// The desktop app's state: plain data that panels read and edit, and requests they queue. No LibTorch, no
// GL: panels are tested in a windowless ImGui context with this struct alone. The App (app.h) owns it, turns
// requests into worker tasks, and puts results back into it on the main thread.
#pragma once

#include "image.h"
#include "trace.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ms::gui {

constexpr int kMaxPanes = 4;

enum class FillMode { GroupMean = 0, Palette = 1, Energy = 2, Protected = 3 };
const char* fill_mode_name(FillMode mode);

// What the app shows of a model; filled from the loaded Model by the worker.
struct ModelSummary {
  std::string name;    // architecture, e.g. deit_tiny_patch16_224
  std::string source;  // weights file
  int depth = 0, grid = 0, patch = 0, img_size = 0, prefix_tokens = 1, width = 0, heads = 0;
  std::string dtype = "fp32";  // compute precision (core/precision.h)
  std::string dtype_notice;    // bf16 without native support: what runs instead (shown once)
};

// Where the model's input crop lies in the original image: the crop covers original pixels
// [x0, x0 + side) x [y0, y0 + side) (fractional), which the model sees as img_size x img_size.
struct CropMapping {
  double x0 = 0, y0 = 0, width = 0, height = 0;
};

// The overlay is drawn at the image's own resolution up to this many pixels a side (and within the GL
// implementation's texture, renderbuffer and viewport limits); a larger image is drawn on a downscaled copy.
// Panes show it at well under 1000 px. At 4096 a side an RGBA pane target is at most 67 MB, and Mesa's
// software renderer redraws one in about a second (8192: 268 MB and 3.4 s, measured on a 12000 x 9000
// image under Xvfb); photos up to 12 megapixels (4000 x 3000) are still drawn and exported 1:1.
constexpr int kMaxOverlaySide = 4096;

struct LoadedImage {
  std::string path;
  RgbImage original;    // as decoded
  RgbImage model_view;  // resized and cropped, img_size x img_size: what the model sees
  CropMapping crop;
  // What the overlay is drawn on, and exported at: the original, or when a side is over the overlay limit a
  // copy downscaled to fit (Pillow's antialiased bilinear) with the crop in its pixels. Hover and the model
  // always use the original.
  RgbImage display;          // empty: the original is drawn as it is
  CropMapping display_crop;  // `crop` in display pixels
  const RgbImage& shown() const { return display.width > 0 ? display : original; }
  const CropMapping& shown_crop() const { return display.width > 0 ? display_crop : crop; }
};

// One method on one image: everything the panes and plots show, computed by the worker.
struct PaneResult {
  std::string spec;                                 // canonical spec actually run
  ImageTrace trace;                                 // clusters, sizes, energies and keys per layer
  std::vector<std::pair<std::string, float>> top5;  // class name, probability
  std::vector<int> tokens_per_layer;                // tokens leaving each block
  std::vector<double> gmacs_per_layer;              // block GMACs incl. the reducer's matching
  double gmacs = 0;                                 // whole model, per image
  // Spectral check, theorem view (block 0 keys over the patch tokens, coarsened by the partition after block l;
  // analysis/spectral_distance.h):
  std::vector<double> spectral_distance;        // per layer; NaN after a block that pruned tokens
  std::vector<double> eig_original;             // normalised Laplacian spectrum of the original graph
  std::vector<std::vector<double>> eig_lifted;  // per layer, lifted spectrum (Lemma 1)
  double run_seconds = 0, spectra_seconds = 0;
};

struct Pane {
  std::array<char, 256> spec_edit{};  // the text field
  std::string spec;                   // what was last asked for
  std::shared_ptr<const PaneResult> result;
  std::string error;  // last failure for this pane, shown in the pane
  bool running = false;
  uint64_t generation = 0;            // results of older requests are dropped
  uintptr_t texture = 0;              // overlay texture (GL name) for ImGui::Image; 0: none yet
  double requested_at = 0;            // clock when the current request was made (latency timing)
  bool fresh = false;                 // a new result arrived and is not on screen yet
  std::array<float, 4> image_rect{};  // where the panel drew the image last frame (x0, y0, x1, y1), screen px
  float facts_height = -1;            // height of the facts below the image last frame, px (-1: not drawn yet)
};

enum class RequestKind {
  OpenImage,     // text: path
  LoadModel,     // text: model spec (folder, file or name)
  SetMethod,     // pane, text: spec
  AddPane,       // text: spec
  RemovePane,    // pane
  ExportAll,     // text: folder ("" = default)
  ExportPane,    // pane, text: PNG path ("" = default)
  BrowseFolder,  // text: folder to list in the browser
  Screenshot,    // text: PNG path ("" = default)
  CancelWork,
};

struct Request {
  RequestKind kind;
  int pane = -1;
  std::string text, text2;
};

struct Message {
  bool error = false;
  std::string text;
  double time = 0;  // app clock when posted
};

// Progress of the worker's current task (copied from the worker once per frame).
struct WorkStatus {
  bool busy = false;
  std::string task;
  float progress = 0;  // 0..1, < 0: unknown
  int queued = 0;
};

struct Thumbnail {
  uintptr_t texture = 0;  // GL name; 0 while loading or when it failed
  int width = 0, height = 0;
  bool failed = false;
};

struct BrowserState {
  bool open = false;
  bool listed = false;             // folder listing is current
  std::string folder;              // current folder
  std::vector<std::string> dirs;   // sub-folders (names)
  std::vector<std::string> files;  // image files (names)
  std::string error;
  std::array<char, 512> path_edit{};
  std::map<std::string, Thumbnail> thumbnails;  // by full path
  std::vector<std::string> wanted;              // paths whose thumbnails the browser wants loaded
};

struct HoverState {
  int patch = -1;   // hovered patch (row-major over the grid), -1: none
  int pane = -1;    // pane the mouse is over
  int pinned = -1;  // pinned patch, -1: none
};

struct AppState {
  // Model
  std::string model_spec;
  std::string dtype = "fp32";  // the compute precision models load with (--dtype)
  ModelSummary model;
  bool model_ready = false;
  std::vector<std::string> available_models;  // names found on the search path
  // Image
  std::shared_ptr<const LoadedImage> image;
  // Panes, all on the same image and layer
  std::vector<Pane> panes;
  int layer = 0;  // block index, 0..depth-1: the overlay shows the partition after this block
  FillMode fill = FillMode::GroupMean;
  float opacity = 0.55f;
  bool boundaries = true;
  HoverState hover;
  int plot_pane = 0;  // pane whose energies the heatmap shows
  int plot_tab = 0;   // 0 energy, 1 spectrum, 2 cost
  BrowserState browser;
  WorkStatus work;
  std::vector<Message> messages;
  size_t messages_shown = 0;  // messages before this one have had their chance at the error pop-up
  std::array<char, 512> model_path_edit{};
  std::array<char, 512> export_dir_edit{};
  std::vector<Request> requests;
  std::string export_dir = "mergescope-export";
  double now = 0;             // app clock, seconds
  bool overlay_dirty = true;  // re-render the overlays this frame
  bool screenshot_requested = false;

  void request(RequestKind kind, int pane = -1, std::string text = {}, std::string text2 = {}) {
    requests.push_back({kind, pane, std::move(text), std::move(text2)});
  }
  void post(bool error, std::string text) { messages.push_back({error, std::move(text), now}); }
  int depth() const { return model.depth; }
  double last_overlay_ms = 0;      // time the last overlay update took (inputs + upload + render), status bar
  double last_overlay_cpu_ms = 0;  // of which building the inputs on the CPU
  // Moves the layer, clamped to the model's blocks; marks the overlays for re-rendering when it changed.
  void set_layer(int l);
};

// Method presets offered in the panes (spec, label).
const std::vector<std::pair<std::string, std::string>>& method_presets();

// Which group of `result`'s partition after block `layer` holds patch `patch` (row-major), -1 if pruned.
int group_of_patch(const PaneResult& result, int layer, int patch);

// The token of block `layer`'s input that holds original token t (block 0's input is the original order).
int input_token(const ImageTrace& trace, int layer, int t);

// PiToMe energy of every patch's token at block `layer`'s input (grid*grid, NaN where none).
std::vector<float> patch_energies(const PaneResult& result, int layer, int grid);

// Facts about a patch's group for the tooltip.
struct GroupInfo {
  int group = -1;         // output token at this layer, -1: pruned
  int size = 0;           // original tokens in the group
  int formed_layer = -1;  // first block after which the group had these members (-1: never merged)
  float energy = 0;       // PiToMe energy of the token holding the patch at this block's input (NaN: none)
  bool has_energy = false;
  float similarity = 0;  // cosine of block-`layer` keys between this patch's token and the pinned patch's
  bool has_similarity = false;
};
GroupInfo group_info(const PaneResult& result, int layer, int patch, int pinned_patch);

}  // namespace ms::gui
