// The desktop app without its window: owns the AppState, the worker and the overlay renderer, turns
// panel requests into worker tasks and results back into state. main.cpp adds GLFW, ImGui and the frame loop.
#pragma once

#include "app_state.h"
#include "overlay_gl.h"
#include "worker.h"

#include <memory>
#include <string>
#include <vector>

namespace ms::gui {

class ModelSession;

struct AppOptions {
  std::string image;  // "" = the default sample image
  std::string model = "deit_tiny_patch16_224";
  std::vector<std::string> methods;  // empty = ToMe r=13 and PiToMe at its GMACs
  int layer = -1;                    // block, numbered from 0 (the partition after it); -1 = the middle
  FillMode fill = FillMode::GroupMean;
  float opacity = 0.55f;
  int plot_tab = 0;
  int threads = 0;
  std::string dtype = "fp32";  // fp32 | bf16 (core/precision.h)
  std::string export_dir = "mergescope-export";
};

class App {
 public:
  explicit App(const AppOptions& options);  // needs a current GL context
  ~App();

  AppState& state() { return state_; }
  // Main thread, once per frame before the UI: runs worker results, handles requests, copies progress.
  void update(double now);
  // Main thread, after the UI and before ImGui renders: redraws overlays when something changed. Never
  // throws: when GL cannot draw the image's overlay, that is shown as an error once and the panes stay blank.
  void render_overlays();
  // Nothing running, queued or pending.
  bool idle() const;

  // Pane i's overlay (without hover) at the image's full resolution.
  RgbImage render_pane(int pane);
  // Writes it as PNG (on the worker).
  void export_pane_png(int pane, const std::string& path);
  // Writes every pane, every plot and state.json into `dir` (files written on the worker; done when idle()).
  // Throws ms::Error naming the folder when it cannot be created; a file that cannot be written is shown as
  // an error by the worker. export_state() says how the last export ended.
  void export_all(const std::string& dir);
  enum class ExportState { None, Running, Done, Failed };
  ExportState export_state() const;
  // A file dropped on the window (or given on the command line): images open, model folders load. Never
  // throws (GLFW's drop callback calls it); problems are shown as errors.
  void open_path(const std::string& path);

  // Per method change: ms from the request to its overlay drawn (GL finished).
  const std::vector<double>& method_latencies_ms() const { return method_latencies_ms_; }

 private:
  struct Backend;                 // worker-side: the current session and image
  void handle(const Request& r);  // one request of the UI, dispatched to the functions below
  void load_model(const std::string& spec);
  void open_image(const std::string& path);
  void add_pane(const std::string& spec);
  void remove_pane(int pane);
  void cancel_work();
  void submit_run(int pane);
  void rerun_all();
  void draw_overlays();
  void note_downscaled(const LoadedImage& image);
  void list_folder(const std::string& path);
  void load_thumbnails();
  int pane_index(uint64_t id) const;
  int highlight_group(int pane) const;
  // The group holding the pinned patch at the current layer (the export lights it), -2 when nothing is pinned.
  int pinned_group(int pane) const;

  AppState state_;
  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<OverlayRenderer> renderer_;
  std::vector<OverlayTarget> targets_;  // parallel to state_.panes
  // Targets replaced after the UI had queued their textures for this frame: deleted at the next update(),
  // once that frame is drawn (deleting them at once made ImGui bind a deleted texture name).
  std::vector<OverlayTarget> retired_;
  void retire_target(size_t pane);
  std::vector<uint64_t> pane_ids_;  // parallel to state_.panes
  uint64_t next_pane_id_ = 1;
  bool image_uploaded_ = false;
  std::shared_ptr<const LoadedImage> overlay_failed_for_;  // the image whose overlay GL could not draw
  ExportState export_state_ = ExportState::None;
  std::vector<double> method_latencies_ms_;
};

}  // namespace ms::gui
