#include "panels.h"

#include <imgui.h>

namespace ms::gui {

namespace {
constexpr ImGuiWindowFlags kFixed = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse |
                                    ImGuiWindowFlags_NoSavedSettings;
}

void handle_shortcuts(AppState& s) {
  const ImGuiIO& io = ImGui::GetIO();
  if (io.WantCaptureKeyboard || io.WantTextInput || s.depth() == 0) return;
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_LeftArrow))) s.set_layer(s.layer - 1);
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_RightArrow))) s.set_layer(s.layer + 1);
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Home))) s.set_layer(0);
  if (ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_End))) s.set_layer(s.depth() - 1);
}

void draw_app(AppState& s, const Layout& layout) {
  // Panels re-detect the hovered patch every frame; the overlays change only when it really moved.
  const int hovered_before = s.hover.patch;
  handle_shortcuts(s);
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  const ImVec2 origin = vp->WorkPos, size = vp->WorkSize;
  const float main_width = size.x - layout.sidebar_width;
  const float panes_height = size.y - layout.plots_height - layout.status_height;

  ImGui::SetNextWindowPos(origin);
  ImGui::SetNextWindowSize(ImVec2(layout.sidebar_width, size.y - layout.status_height));
  if (ImGui::Begin("mergescope", nullptr, kFixed)) draw_controls(s);
  ImGui::End();

  ImGui::SetNextWindowPos(ImVec2(origin.x + layout.sidebar_width, origin.y));
  ImGui::SetNextWindowSize(ImVec2(main_width, panes_height));
  if (ImGui::Begin("Panes", nullptr, kFixed | ImGuiWindowFlags_NoTitleBar)) draw_panes(s);
  ImGui::End();

  ImGui::SetNextWindowPos(ImVec2(origin.x + layout.sidebar_width, origin.y + panes_height));
  ImGui::SetNextWindowSize(ImVec2(main_width, layout.plots_height));
  if (ImGui::Begin("Plots", nullptr, kFixed | ImGuiWindowFlags_NoTitleBar)) draw_plots(s);
  ImGui::End();

  ImGui::SetNextWindowPos(ImVec2(origin.x, origin.y + size.y - layout.status_height));
  ImGui::SetNextWindowSize(ImVec2(size.x, layout.status_height));
  if (ImGui::Begin("Status", nullptr, kFixed | ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoScrollbar))
    draw_status_bar(s);
  ImGui::End();

  draw_browser(s);
  draw_messages(s);
  if (s.hover.patch != hovered_before) s.overlay_dirty = true;
}

}  // namespace ms::gui
