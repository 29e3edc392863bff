#include "panels.h"

#include <imgui.h>

#include <algorithm>
#include <cstdio>

namespace ms::gui {

void draw_browser(AppState& s) {
  BrowserState& b = s.browser;
  if (!b.open) return;
  if (!b.listed) {
    s.request(RequestKind::BrowseFolder, -1, b.folder);
    b.listed = true;
  }
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(ImVec2(vp->WorkPos.x + vp->WorkSize.x * 0.5f, vp->WorkPos.y + vp->WorkSize.y * 0.5f),
                          ImGuiCond_Appearing, ImVec2(0.5f, 0.5f));
  ImGui::SetNextWindowSize(ImVec2(900, 620), ImGuiCond_Appearing);
  if (!ImGui::Begin("Open image", &b.open, ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings)) {
    ImGui::End();
    return;
  }
  if (!b.path_edit[0] || ImGui::IsWindowAppearing())
    std::snprintf(b.path_edit.data(), b.path_edit.size(), "%s", b.folder.c_str());
  ImGui::SetNextItemWidth(-140);
  const bool enter =
      ImGui::InputText("##path", b.path_edit.data(), b.path_edit.size(), ImGuiInputTextFlags_EnterReturnsTrue);
  ImGui::SameLine();
  if (ImGui::Button("Open path") || enter) {
    const std::string path = b.path_edit.data();
    // A folder lists; anything else is opened as an image (and errors name it).
    s.request(RequestKind::BrowseFolder, -1, path);
  }
  ImGui::SameLine();
  if (ImGui::Button("Up")) {
    std::string parent = b.folder;
    while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
    const size_t slash = parent.find_last_of('/');
    parent = slash == std::string::npos ? ".." : (slash == 0 ? "/" : parent.substr(0, slash));
    s.request(RequestKind::BrowseFolder, -1, parent);
  }
  if (!b.error.empty()) ImGui::TextColored(ImVec4(1.f, 0.45f, 0.4f, 1.f), "%s", b.error.c_str());
  ImGui::BeginChild("entries", ImVec2(0, 0), true);
  for (const std::string& d : b.dirs)
    if (ImGui::Selectable(("[dir] " + d).c_str())) s.request(RequestKind::BrowseFolder, -1, b.folder + "/" + d);
  // Thumbnails in a grid of fixed cells; textures arrive from the worker over a few frames.
  const float cell = 132, gap = 10;
  const float x0 = ImGui::GetCursorPosX();
  const int columns = std::max(1, static_cast<int>((ImGui::GetContentRegionAvail().x + gap) / (cell + gap)));
  const float row_height = cell + ImGui::GetTextLineHeightWithSpacing() + 8;
  ImGuiListClipper clipper;
  const int rows = (static_cast<int>(b.files.size()) + columns - 1) / columns;
  clipper.Begin(rows, row_height);
  while (clipper.Step()) {
    for (int row = clipper.DisplayStart; row < clipper.DisplayEnd; ++row) {
      const float y0 = ImGui::GetCursorPosY();
      for (int column = 0; column < columns; ++column) {
        const size_t i = static_cast<size_t>(row) * columns + column;
        if (i >= b.files.size()) break;
        const std::string path = b.folder + "/" + b.files[i];
        const float cx = x0 + column * (cell + gap);
        ImGui::PushID(static_cast<int>(i));
        auto it = b.thumbnails.find(path);
        bool clicked = false;
        if (it != b.thumbnails.end() && it->second.texture) {
          const Thumbnail& t = it->second;
          const float k = std::min((cell - 4) / t.width, (cell - 4) / t.height);
          const ImVec2 size(t.width * k, t.height * k);
          ImGui::SetCursorPos(ImVec2(cx + (cell - 4 - size.x) / 2, y0 + (cell - 4 - size.y) / 2));
          clicked = ImGui::ImageButton(reinterpret_cast<ImTextureID>(t.texture), size, ImVec2(0, 0), ImVec2(1, 1), 2);
        } else {
          if (it == b.thumbnails.end() && std::find(b.wanted.begin(), b.wanted.end(), path) == b.wanted.end())
            b.wanted.push_back(path);
          ImGui::SetCursorPos(ImVec2(cx, y0));
          clicked =
              ImGui::Button(it != b.thumbnails.end() && it->second.failed ? "unreadable" : "...", ImVec2(cell, cell));
        }
        // The name, shortened to the cell's width; the tooltip has all of it.
        std::string label = b.files[i];
        while (label.size() > 4 && ImGui::CalcTextSize(label.c_str()).x > cell)
          label = label.substr(0, label.size() - 4) + "..";
        ImGui::SetCursorPos(ImVec2(cx, y0 + cell + 2));
        ImGui::TextUnformatted(label.c_str());
        if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", b.files[i].c_str());
        ImGui::PopID();
        if (clicked) {
          s.request(RequestKind::OpenImage, -1, path);
          b.open = false;
        }
      }
      ImGui::SetCursorPos(ImVec2(x0, y0 + row_height));
    }
  }
  ImGui::EndChild();
  ImGui::End();
}

}  // namespace ms::gui
