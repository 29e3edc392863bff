#include "panels.h"

#include <imgui.h>

namespace ms::gui {

void draw_status_bar(AppState& s) {
  if (s.work.busy || s.work.queued > 0) {
    ImGui::Text("%s", s.work.task.empty() ? "waiting" : s.work.task.c_str());
    ImGui::SameLine();
    ImGui::SetNextItemWidth(220);
    if (s.work.progress >= 0)
      ImGui::ProgressBar(s.work.progress, ImVec2(220, 0));
    else
      ImGui::ProgressBar(static_cast<float>(s.now - static_cast<int>(s.now)), ImVec2(220, 0), "working");
    if (s.work.queued > 0) {
      ImGui::SameLine();
      ImGui::TextDisabled("+%d queued", s.work.queued);
    }
    ImGui::SameLine();
    if (ImGui::SmallButton("Cancel")) s.request(RequestKind::CancelWork);
    ImGui::SameLine();
  }
  if (!s.messages.empty()) {
    const Message& m = s.messages.back();
    if (m.error)
      ImGui::TextColored(ImVec4(1.f, 0.45f, 0.4f, 1.f), "%s", m.text.c_str());
    else
      ImGui::TextDisabled("%s", m.text.c_str());
  } else {
    ImGui::TextDisabled("ready");
  }
  if (s.last_overlay_ms > 0) {
    ImGui::SameLine(ImGui::GetWindowWidth() - 170);
    ImGui::TextDisabled("overlay %.2f ms", s.last_overlay_ms);
  }
}

void draw_messages(AppState& s) {
  // The newest error opens a modal once; it stays in the status bar after it is dismissed.
  size_t& shown = s.messages_shown;
  if (shown > s.messages.size()) shown = 0;
  for (size_t i = shown; i < s.messages.size(); ++i)
    if (s.messages[i].error) {
      ImGui::OpenPopup("Error");
      shown = i + 1;
    }
  if (shown < s.messages.size()) shown = s.messages.size();
  if (ImGui::BeginPopupModal("Error", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    for (auto it = s.messages.rbegin(); it != s.messages.rend(); ++it)
      if (it->error) {
        ImGui::PushTextWrapPos(600);
        ImGui::TextUnformatted(it->text.c_str());
        ImGui::PopTextWrapPos();
        break;
      }
    if (ImGui::Button("OK") || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Enter))) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
}

}  // namespace ms::gui
