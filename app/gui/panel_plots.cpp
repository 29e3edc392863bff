#include "figures.h"
#include "panels.h"
#include "plot_view.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace ms::gui {

namespace {

std::string export_prefix(const AppState& s, const std::string& id) { return s.export_dir + "/" + id; }

// One plot with its right-click export menu.
void plot(AppState& s, const char* id, const Figure& f, ImVec2 size) {
  draw_figure(id, f, size);
  std::string status;
  figure_context_menu(id, f, export_prefix(s, id), &status);
  if (!status.empty()) s.post(status.rfind("wrote", 0) != 0, status);
}

void energy_tab(AppState& s, ImVec2 avail) {
  const float w = avail.x * 0.6f;
  plot(s, "energy_histogram", energy_histogram_figure(s), ImVec2(w, avail.y));
  ImGui::SameLine();
  ImGui::BeginGroup();
  s.plot_pane = std::clamp(s.plot_pane, 0, std::max(0, static_cast<int>(s.panes.size()) - 1));
  ImGui::SetNextItemWidth(avail.x - w - 16);
  const std::string current =
      s.panes.empty() ? "" : "pane " + std::to_string(s.plot_pane + 1) + ": " + s.panes[s.plot_pane].spec;
  if (ImGui::BeginCombo("##heatpane", current.c_str())) {
    for (int i = 0; i < static_cast<int>(s.panes.size()); ++i)
      if (ImGui::Selectable(("pane " + std::to_string(i + 1) + ": " + s.panes[i].spec).c_str(), i == s.plot_pane))
        s.plot_pane = i;
    ImGui::EndCombo();
  }
  const std::vector<float> map = energy_map(s, s.plot_pane);
  float lo = INFINITY, hi = -INFINITY;
  for (float e : map)
    if (std::isfinite(e)) lo = std::min(lo, e), hi = std::max(hi, e);
  if (!(lo <= hi)) lo = 0, hi = 1;
  const float side = std::min(avail.x - w - 16, ImGui::GetContentRegionAvail().y);
  int cell = -1;
  draw_heatmap("energy_map", map, s.model.grid, s.model.grid, lo, hi, ImVec2(side * 1.25f, side), "energy", &cell);
  if (cell >= 0) s.hover.patch = cell;
  ImGui::EndGroup();
}

}  // namespace

void draw_plots(AppState& s) {
  const char* tabs[] = {"Energy", "Spectrum", "Cost"};
  for (int t = 0; t < 3; ++t) {
    if (t) ImGui::SameLine();
    if (ImGui::RadioButton(tabs[t], s.plot_tab == t)) s.plot_tab = t;
  }
  ImGui::SameLine();
  ImGui::TextDisabled("   after block %d - right-click a plot to export it (SVG, PNG, PDF, CSV)", s.layer);
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float half = (avail.x - ImGui::GetStyle().ItemSpacing.x) / 2;
  switch (s.plot_tab) {
    case 0:
      energy_tab(s, avail);
      break;
    case 1:
      plot(s, "spectral_distance", spectral_distance_figure(s), ImVec2(half, avail.y));
      ImGui::SameLine();
      plot(s, "eigenvalues", eigenvalue_figure(s), ImVec2(half, avail.y));
      break;
    default:
      plot(s, "tokens_per_layer", tokens_figure(s), ImVec2(half, avail.y));
      ImGui::SameLine();
      plot(s, "gmacs_per_layer", gmacs_figure(s), ImVec2(half, avail.y));
      break;
  }
}

}  // namespace ms::gui
