#include "latency_bench.h"

#include "app.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace ms::gui {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

std::string json_list(const std::vector<double>& v) {
  std::string t = "[";
  for (size_t i = 0; i < v.size(); ++i) t += (i ? ", " : "") + std::to_string(v[i]);
  return t + "]";
}

}  // namespace

void LatencyBench::interact(App& app, AppState& s, int frames_after_idle) {
  if (!active() || !app.idle() || !s.model_ready || frames_after_idle < 2) return;
  const int depth = s.depth();
  if (step_ < 2 * depth) {  // every block forwards, then backwards
    const double t0 = now_seconds();
    s.set_layer(step_ < depth ? step_ : 2 * depth - 1 - step_);
    s.overlay_dirty = true;
    app.render_overlays();
    layer_ms_.push_back(1000 * (now_seconds() - t0));
    layer_cpu_ms_.push_back(s.last_overlay_cpu_ms);
    ++step_;
  } else if (step_ - 2 * depth < static_cast<int>(methods_.size())) {
    if (method_seen_ == 0) method_seen_ = app.method_latencies_ms().size();
    const int k = step_ - 2 * depth;
    s.request(RequestKind::SetMethod, k % static_cast<int>(s.panes.size()), methods_[k]);
    ++step_;
  }
}

void LatencyBench::record_frame(bool busy, double ui_ms, double draw_ms, double frame_ms) {
  ui_ms_.push_back(ui_ms);
  draw_ms_.push_back(draw_ms);
  (busy ? busy_frames_ms_ : idle_frames_ms_).push_back(frame_ms);
}

bool LatencyBench::done(const App& app, const AppState& s, bool running) const {
  return step_ >= 2 * s.depth() + static_cast<int>(methods_.size()) && app.idle() && !running && s.depth() > 0;
}

bool LatencyBench::write(const App& app, const AppState& s) {
  const auto& latencies = app.method_latencies_ms();
  method_ms_.assign(latencies.begin() + static_cast<std::ptrdiff_t>(std::min(method_seen_, latencies.size())),
                    latencies.end());
  std::FILE* f = std::fopen(out_.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "mergescope: %s: cannot open for writing\n", out_.c_str());
    return false;
  }
  std::fprintf(f,
               "{\"model\": \"%s\", \"panes\": %zu, \"layer_change_ms\": {\"median\": %.3f, \"max\": %.3f, "
               "\"samples\": %s},\n \"method_change_ms\": {\"median\": %.1f, \"max\": %.1f, \"samples\": %s},\n"
               " \"frame_ms_while_working\": {\"median\": %.2f, \"p95\": %.2f, \"max\": %.2f, \"frames\": %zu},\n"
               " \"frame_ms_idle\": {\"median\": %.2f, \"p95\": %.2f, \"frames\": %zu},\n"
               " \"frame_parts_ms\": {\"imgui_cpu_median\": %.2f, \"gl_draw_and_swap_median\": %.2f},\n"
               " \"layer_change_overlay_inputs_cpu_ms_median\": %.3f}\n",
               s.model.name.c_str(), s.panes.size(), percentile(layer_ms_, 0.5), percentile(layer_ms_, 1.0),
               json_list(layer_ms_).c_str(), percentile(method_ms_, 0.5), percentile(method_ms_, 1.0),
               json_list(method_ms_).c_str(), percentile(busy_frames_ms_, 0.5), percentile(busy_frames_ms_, 0.95),
               percentile(busy_frames_ms_, 1.0), busy_frames_ms_.size(), percentile(idle_frames_ms_, 0.5),
               percentile(idle_frames_ms_, 0.95), idle_frames_ms_.size(), percentile(ui_ms_, 0.5),
               percentile(draw_ms_, 0.5), percentile(layer_cpu_ms_, 0.5));
  const bool ok = std::fclose(f) == 0;
  if (!ok) {
    std::fprintf(stderr, "mergescope: %s: cannot write\n", out_.c_str());
    return false;
  }
  std::printf(
      "layer change: median %.2f ms (max %.2f), method change: median %.0f ms (max %.0f), "
      "frame while working: median %.1f ms, p95 %.1f ms\n",
      percentile(layer_ms_, 0.5), percentile(layer_ms_, 1.0), percentile(method_ms_, 0.5), percentile(method_ms_, 1.0),
      percentile(busy_frames_ms_, 0.5), percentile(busy_frames_ms_, 0.95));
  return true;
}

}  // namespace ms::gui
