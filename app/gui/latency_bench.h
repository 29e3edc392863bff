// --bench-latency: scripted interactions timed inside the app's frame loop (bench/gui_latency.sh runs it).
// Layer steps are served from the traces already computed (the overlay inputs are rebuilt and uploaded), method
// changes start a run on the worker; frames are timed while work runs and while idle. Results go to one JSON file.
#pragma once

#include <string>
#include <vector>

namespace ms::gui {

class App;
struct AppState;

class LatencyBench {
 public:
  explicit LatencyBench(std::string out) : out_(std::move(out)) {}
  bool active() const { return !out_.empty(); }

  // Before drawing a frame: the next interaction, once everything has loaded and the app has been idle 2 frames.
  void interact(App& app, AppState& s, int frames_after_idle);
  // After the frame: how long its ImGui build and GL draw (with glFinish) took, and the whole frame.
  void record_frame(bool busy, double ui_ms, double draw_ms, double frame_ms);
  // All interactions done and their runs finished.
  bool done(const App& app, const AppState& s, bool running) const;
  // Writes the JSON file and prints a one-line summary; false (with the error on stderr) when it cannot.
  bool write(const App& app, const AppState& s);

 private:
  std::string out_;
  int step_ = 0;
  size_t method_seen_ = 0;
  std::vector<double> layer_ms_, layer_cpu_ms_, method_ms_, busy_frames_ms_, idle_frames_ms_, ui_ms_, draw_ms_;
  const std::vector<std::string> methods_ = {
      "tome:r=8",    "pitome:ratio=0.93", "tome:r=16",           "pitome-code:ratio=0.9",
      "random:r=13", "tome:r=13",         "pitome:ratio=0.9074", "none"};
};

}  // namespace ms::gui
