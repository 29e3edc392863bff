#include "overlay.h"
#include "panels.h"

#include <imgui.h>

#include <cstdio>
#include <cstring>

namespace ms::gui {

namespace {

void swatch(const std::array<uint8_t, 3>& c, const char* label) {
  ImGui::ColorButton(label, ImVec4(c[0] / 255.f, c[1] / 255.f, c[2] / 255.f, 1.f),
                     ImGuiColorEditFlags_NoTooltip | ImGuiColorEditFlags_NoPicker, ImVec2(14, 14));
  ImGui::SameLine();
  ImGui::TextUnformatted(label);
}

void fill_legend(const AppState& s) {
  switch (s.fill) {
    case FillMode::GroupMean:
      ImGui::TextWrapped("Each group is filled with the mean colour of its pixels: what the merged token carries.");
      break;
    case FillMode::Palette:
      ImGui::TextWrapped("Merged groups get a colour (kept across blocks); single patches show the image.");
      break;
    case FillMode::Energy: {
      ImGui::TextWrapped("PiToMe energy of each patch's token at this block's input (low -> high):");
      ImDrawList* dl = ImGui::GetWindowDrawList();
      const ImVec2 p = ImGui::GetCursorScreenPos();
      const float w = ImGui::GetContentRegionAvail().x;
      for (int i = 0; i < 64; ++i) {
        const auto c = energy_color(i / 63.f);
        dl->AddRectFilled(ImVec2(p.x + w * i / 64, p.y), ImVec2(p.x + w * (i + 1) / 64 + 1, p.y + 12),
                          IM_COL32(c[0], c[1], c[2], 255));
      }
      ImGui::Dummy(ImVec2(w, 14));
      break;
    }
    case FillMode::Protected:
      swatch(ProtectedColors::merged_now, "merged in this block");
      swatch(ProtectedColors::merged_before, "merged earlier, untouched now");
      swatch(ProtectedColors::kept, "never merged (protected)");
      swatch(ProtectedColors::pruned, "pruned");
      break;
  }
}

}  // namespace

void draw_controls(AppState& s) {
  // Model
  ImGui::TextDisabled("MODEL");
  const char* current = s.model_ready ? s.model.name.c_str() : (s.model_spec.empty() ? "(none)" : s.model_spec.c_str());
  if (ImGui::BeginCombo("##model", current)) {
    for (const std::string& m : s.available_models)
      if (ImGui::Selectable(m.c_str(), m == s.model_spec)) s.request(RequestKind::LoadModel, -1, m);
    if (s.available_models.empty()) ImGui::TextDisabled("no models on the search path");
    ImGui::EndCombo();
  }
  if (s.model_ready)
    ImGui::TextDisabled("%d blocks, %d x %d patches, width %d, %s", s.model.depth, s.model.grid, s.model.grid,
                        s.model.width, s.model.dtype.c_str());
  // Compute precision (core/precision.h): a change reloads the model, whose bf16 weights are converted at load.
  int bf16 = s.dtype == "bf16";
  const bool changed = ImGui::RadioButton("fp32", &bf16, 0);
  ImGui::SameLine();
  if ((ImGui::RadioButton("bf16", &bf16, 1) || changed) && (bf16 == 1) != (s.dtype == "bf16")) {
    s.dtype = bf16 ? "bf16" : "fp32";
    if (!s.model_spec.empty()) s.request(RequestKind::LoadModel, -1, s.model_spec);
  }
  auto& model_path = s.model_path_edit;
  ImGui::SetNextItemWidth(-60);
  const bool enter = ImGui::InputTextWithHint("##modelpath", "model folder or file", model_path.data(),
                                              model_path.size(), ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  if ((ImGui::Button("Load") || enter) && model_path[0]) s.request(RequestKind::LoadModel, -1, model_path.data());

  // Image
  ImGui::Spacing();
  ImGui::TextDisabled("IMAGE");
  if (s.image) {
    const std::string& p = s.image->path;
    ImGui::TextWrapped("%s", p.substr(p.find_last_of('/') + 1).c_str());
    ImGui::TextDisabled("%d x %d px", s.image->original.width, s.image->original.height);
    if (s.image->display.width > 0)  // over the overlay's side limit: drawn (and exported) on a smaller copy
      ImGui::TextDisabled("drawn at %d x %d", s.image->display.width, s.image->display.height);
  }
  if (ImGui::Button("Browse images...")) {
    s.browser.open = true;
    s.browser.listed = false;
  }
  ImGui::SameLine();
  ImGui::TextDisabled("(or drop a file)");

  // Layer
  ImGui::Spacing();
  ImGui::TextDisabled("LAYER");
  if (s.depth() > 0) {
    int block = s.layer;  // 0-based, as the CLI and DESIGN.md's "after block l"
    ImGui::SetNextItemWidth(-1);
    if (ImGui::SliderInt("##layer", &block, 0, s.depth() - 1, "after block %d")) s.set_layer(block);
    ImGui::TextDisabled("Left/Right: step, Home/End: first/last");
  }

  // Overlay
  ImGui::Spacing();
  ImGui::TextDisabled("OVERLAY");
  ImGui::SetNextItemWidth(-1);
  if (ImGui::BeginCombo("##fill", fill_mode_name(s.fill))) {
    for (int m = 0; m < 4; ++m)
      if (ImGui::Selectable(fill_mode_name(static_cast<FillMode>(m)), static_cast<int>(s.fill) == m)) {
        s.fill = static_cast<FillMode>(m);
        s.overlay_dirty = true;
      }
    ImGui::EndCombo();
  }
  ImGui::SetNextItemWidth(-70);
  if (ImGui::SliderFloat("opacity", &s.opacity, 0.f, 1.f, "%.2f")) s.overlay_dirty = true;
  if (ImGui::Checkbox("group boundaries", &s.boundaries)) s.overlay_dirty = true;
  fill_legend(s);

  // Panes
  ImGui::Spacing();
  ImGui::TextDisabled("PANES");
  if (static_cast<int>(s.panes.size()) < kMaxPanes) {
    if (ImGui::BeginCombo("##add", "Add a pane...")) {
      for (const auto& [spec, label] : method_presets())
        if (ImGui::Selectable(label.c_str())) s.request(RequestKind::AddPane, -1, spec);
      ImGui::EndCombo();
    }
  } else {
    ImGui::TextDisabled("%d panes (the most)", kMaxPanes);
  }
  if (s.hover.pinned >= 0) {
    ImGui::Text("pinned patch (%d, %d)", s.hover.pinned / std::max(1, s.model.grid),
                s.hover.pinned % std::max(1, s.model.grid));
    ImGui::SameLine();
    if (ImGui::SmallButton("unpin")) {
      s.hover.pinned = -1;
      s.overlay_dirty = true;
    }
  }

  // Export
  ImGui::Spacing();
  ImGui::TextDisabled("EXPORT");
  auto& dir = s.export_dir_edit;
  if (!dir[0]) std::snprintf(dir.data(), dir.size(), "%s", s.export_dir.c_str());
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputText("##exportdir", dir.data(), dir.size())) s.export_dir = dir.data();
  if (ImGui::Button("Export all")) s.request(RequestKind::ExportAll, -1, s.export_dir);
  ImGui::SameLine();
  if (ImGui::Button("Screenshot")) s.request(RequestKind::Screenshot, -1, "");
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("Saves the window as PNG into the export folder");
}

}  // namespace ms::gui
