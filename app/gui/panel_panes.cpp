#include "overlay.h"
#include "panels.h"

#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace ms::gui {

namespace {

void pane_header(AppState& s, int i) {
  Pane& pane = s.panes[i];
  ImGui::PushID(i);
  ImGui::SetNextItemWidth(std::max(80.f, ImGui::GetContentRegionAvail().x - 90));
  if (ImGui::InputText("##spec", pane.spec_edit.data(), pane.spec_edit.size(), ImGuiInputTextFlags_EnterReturnsTrue))
    s.request(RequestKind::SetMethod, i, pane.spec_edit.data());
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("Method spec; Enter runs it (e.g. tome:r=13, pitome:ratio=0.9)");
  ImGui::SameLine();
  if (ImGui::Button("presets")) ImGui::OpenPopup("presets");
  if (ImGui::BeginPopup("presets")) {
    for (const auto& [spec, label] : method_presets())
      if (ImGui::Selectable(label.c_str())) {
        std::snprintf(pane.spec_edit.data(), pane.spec_edit.size(), "%s", spec.c_str());
        s.request(RequestKind::SetMethod, i, spec);
      }
    ImGui::EndPopup();
  }
  if (s.panes.size() > 1) {
    ImGui::SameLine();
    if (ImGui::SmallButton("x")) s.request(RequestKind::RemovePane, i);
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("Close this pane");
  }
  ImGui::PopID();
}

void group_tooltip(const AppState& s, const PaneResult& r, int patch) {
  const GroupInfo g = group_info(r, s.layer, patch, s.hover.pinned);
  const int grid = std::max(1, s.model.grid);
  ImGui::BeginTooltip();
  ImGui::Text("%s  patch (%d, %d), after block %d", r.spec.c_str(), patch / grid, patch % grid, s.layer);
  if (g.group < 0) {
    ImGui::TextUnformatted("pruned");
  } else {
    ImGui::Text("group size: %d patch%s", g.size, g.size == 1 ? "" : "es");
    if (g.formed_layer >= 0)
      ImGui::Text("formed in block %d", g.formed_layer);
    else
      ImGui::TextUnformatted("never merged");
  }
  if (g.has_energy) ImGui::Text("energy at this block: %.4f", g.energy);
  if (g.has_similarity)
    ImGui::Text("cos similarity to the pinned patch (block %d keys): %.3f", s.layer, g.similarity);
  else if (s.hover.pinned < 0)
    ImGui::TextDisabled("click to pin this patch");
  ImGui::EndTooltip();
}

void pane_image(AppState& s, int i, ImVec2 avail) {
  Pane& pane = s.panes[i];
  if (!s.image) {
    ImGui::TextDisabled("no image");
    return;
  }
  const RgbImage& img = s.image->original;
  const float scale = std::min(avail.x / img.width, avail.y / img.height);
  const ImVec2 size(img.width * scale, img.height * scale);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  pane.image_rect = {p0.x, p0.y, p0.x + size.x, p0.y + size.y};
  if (pane.texture) {
    ImGui::Image(reinterpret_cast<ImTextureID>(pane.texture), size);
  } else {
    ImGui::Dummy(size);
    ImGui::GetWindowDrawList()->AddRectFilled(p0, ImVec2(p0.x + size.x, p0.y + size.y), IM_COL32(40, 40, 40, 255));
  }
  if (ImGui::IsItemHovered()) {
    const ImVec2 m = ImGui::GetIO().MousePos;
    const int patch =
        patch_at(s.image->crop, s.model.img_size, s.model.patch, (m.x - p0.x) / scale, (m.y - p0.y) / scale);
    s.hover.patch = patch;
    s.hover.pane = i;
    if (patch >= 0 && pane.result) group_tooltip(s, *pane.result, patch);
    if (patch >= 0 && ImGui::IsMouseClicked(0)) {
      s.hover.pinned = s.hover.pinned == patch ? -1 : patch;
      s.overlay_dirty = true;
    }
  }
  if (pane.running) {
    const char* text = "running...";
    const ImVec2 ts = ImGui::CalcTextSize(text);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(ImVec2(p0.x + 6, p0.y + 6), ImVec2(p0.x + ts.x + 18, p0.y + ts.y + 14), IM_COL32(0, 0, 0, 180),
                      4);
    dl->AddText(ImVec2(p0.x + 12, p0.y + 10), IM_COL32(255, 255, 255, 255), text);
  }
}

// A grey fact after the item before it, or on a line of its own (wrapped) when it would run past the pane's right
// edge: four panes on a laptop screen are ~270 px wide.
void trailing_fact(const char* text) {
  ImGui::SameLine();
  if (ImGui::CalcTextSize(text).x > ImGui::GetContentRegionAvail().x) ImGui::NewLine();
  ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyle().Colors[ImGuiCol_TextDisabled]);
  ImGui::TextWrapped("%s", text);
  ImGui::PopStyleColor();
}

void pane_facts(const AppState& s, const Pane& pane, const PaneResult* baseline) {
  if (!pane.error.empty()) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.f, 0.45f, 0.4f, 1.f));
    ImGui::TextWrapped("%s", pane.error.c_str());
    ImGui::PopStyleColor();
  }
  if (!pane.result) return;
  const PaneResult& r = *pane.result;
  const int l = std::min<int>(
      {s.layer, static_cast<int>(r.tokens_per_layer.size()) - 1, static_cast<int>(r.trace.layers.size()) - 1});
  if (l >= 0) {
    ImGui::Text("%d tokens after block %d", r.tokens_per_layer[l], l);
    if (l < static_cast<int>(r.spectral_distance.size())) {
      char sd[64];
      std::snprintf(sd, sizeof sd, " SD %.3f", r.spectral_distance[l]);
      trailing_fact(std::isfinite(r.spectral_distance[l]) ? sd
                    : r.trace.layers[l].mixes_all         ? " no groups, no SD: every token mixes all patches"
                                                          : " SD n/a (tokens pruned)");
    }
  }
  if (baseline && baseline->gmacs > 0)
    ImGui::Text("%.3f GMACs (%.0f%% of none)", r.gmacs, 100 * r.gmacs / baseline->gmacs);
  else
    ImGui::Text("%.3f GMACs", r.gmacs);
  char ms_text[32];
  std::snprintf(ms_text, sizeof ms_text, " %.0f ms", 1000 * (r.run_seconds + r.spectra_seconds));
  trailing_fact(ms_text);
  if (l >= 0 && !r.trace.layers[l].note.empty()) ImGui::TextDisabled("%s", r.trace.layers[l].note.c_str());
  for (const auto& [name, prob] : r.top5) {
    char overlay[160];
    std::snprintf(overlay, sizeof overlay, "%5.1f%%  %s", 100 * prob, name.c_str());
    ImGui::ProgressBar(prob, ImVec2(-1, 0), overlay);
  }
}

}  // namespace

void draw_panes(AppState& s) {
  if (s.panes.empty()) {
    ImGui::TextDisabled("No panes: add one from the sidebar.");
    return;
  }
  // Hover is re-detected every frame; a pane sets it when the mouse is over its image (draw_app compares).
  s.hover.patch = -1;
  s.hover.pane = -1;
  const PaneResult* baseline = nullptr;
  for (const Pane& p : s.panes)
    if (p.result && p.result->spec == "none") baseline = p.result.get();
  const int n = static_cast<int>(s.panes.size());
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const float spacing = ImGui::GetStyle().ItemSpacing.x;
  const float width = (avail.x - spacing * (n - 1)) / n;
  // The images get the room the tallest facts below them leave (last frame's heights: a note line, a fact wrapped
  // in a narrow pane, an error), so every pane's image has the same size; nine text lines before the first frame.
  // On a short window the image keeps at least half the pane's height, and the facts that no longer fit scroll
  // (mouse wheel) instead of shrinking the image to a thumbnail.
  float facts_height = 0;
  for (const Pane& p : s.panes)
    facts_height =
        std::max(facts_height, p.facts_height >= 0 ? p.facts_height : 9 * ImGui::GetTextLineHeightWithSpacing());
  for (int i = 0; i < n; ++i) {
    if (i) ImGui::SameLine();
    ImGui::PushID(i);
    ImGui::BeginChild("pane", ImVec2(width, avail.y), true, ImGuiWindowFlags_NoScrollbar);
    pane_header(s, i);
    const ImVec2 inner = ImGui::GetContentRegionAvail();
    pane_image(s, i, ImVec2(inner.x, std::max({40.f, inner.y - facts_height, 0.5f * inner.y})));
    const float facts_top = ImGui::GetCursorPosY();
    pane_facts(s, s.panes[i], baseline == s.panes[i].result.get() ? nullptr : baseline);
    s.panes[i].facts_height = ImGui::GetCursorPosY() - facts_top;
    ImGui::EndChild();
    ImGui::PopID();
    if (static_cast<size_t>(i) >= s.panes.size()) break;  // a request never removes a pane mid-frame, but be safe
  }
}

}  // namespace ms::gui
