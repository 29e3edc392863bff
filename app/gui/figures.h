// The app's plots as ms::Figure values, built from the AppState: the same Figure is drawn on screen
// (plot_view.h) and exported as SVG/PNG/CSV (analysis/plot.h), so an export is exactly what was shown.
#pragma once

#include "app_state.h"
#include "plot.h"

#include <string>
#include <vector>

namespace ms::gui {

struct NamedFigure {
  std::string id;  // file stem for exports, e.g. "tokens_per_layer"
  Figure figure;
};

// Colour of pane i's method: its family colour, or a palette colour when an earlier pane has that family.
std::string pane_color(const AppState& state, int pane);

Figure tokens_figure(const AppState& state);
Figure gmacs_figure(const AppState& state);
Figure spectral_distance_figure(const AppState& state);
Figure eigenvalue_figure(const AppState& state);        // at the current layer
Figure energy_histogram_figure(const AppState& state);  // at the current layer

// Per-patch energy of pane `pane` at the current layer's input (grid*grid, NaN where none).
std::vector<float> energy_map(const AppState& state, int pane);

// Every plot, for "export all".
std::vector<NamedFigure> all_figures(const AppState& state);

}  // namespace ms::gui
