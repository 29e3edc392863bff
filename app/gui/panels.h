// The app's windows, one file each (panel_*.cpp). Every panel reads and edits the AppState and queues
// requests; none runs a model or touches GL. layout.cpp places them in a fixed layout over the main
// viewport (Dear ImGui 1.86 has no docking).
#pragma once

#include "app_state.h"

namespace ms::gui {

struct Layout {
  float sidebar_width = 300, plots_height = 380, status_height = 30;
};

// All windows for one frame, at fixed positions over the viewport.
void draw_app(AppState& state, const Layout& layout = {});

void draw_controls(AppState& state);    // model, image, layer, fill mode, panes, exports
void draw_panes(AppState& state);       // up to four method panes side by side
void draw_plots(AppState& state);       // energy, spectrum and cost plots of the current layer
void draw_browser(AppState& state);     // image browser window (when open)
void draw_status_bar(AppState& state);  // worker progress + cancel, last message
void draw_messages(AppState& state);    // error pop-up for the newest unseen error
// Left/Right step the layer, Home/End jump to the first/last block; ignored while a text field has focus.
void handle_shortcuts(AppState& state);

}  // namespace ms::gui
