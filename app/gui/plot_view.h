// On-screen plots with ImDrawList: the same ms::Figure that analysis/plot exports as SVG/PNG, drawn into the
// current ImGui window, so what a user sees is what they export. Also the token heatmap (per-patch energy) and
// the export helpers (SVG + PNG + CSV). No LibTorch, no GL.
//
// The plot is drawn on white "paper" with dark ink, as the export is, so the palette's black baseline stays
// visible under a dark ImGui theme.
#pragma once

#include "plot.h"

#include <imgui.h>

#include <string>
#include <vector>

namespace ms::gui {

// What the mouse points at after draw_figure: a line point (series >= 0) or a histogram bin (histogram >= 0).
struct PlotHover {
  bool active = false;
  int series = -1;      // index into Figure::lines
  int histogram = -1;   // index into Figure::histograms
  int index = -1;       // point index in the series, or bin index in the histogram
  double x = 0, y = 0;  // the point, or the bin's [lo, hi) in x and y and its count in y
  double x_hi = 0;      // a bin's upper edge
  std::string text;     // the tooltip text
};

// Where a figure lands on screen for a given reserved rectangle; draw_figure uses exactly this layout.
struct PlotLayout {
  ImVec2 frame_min, frame_max;                    // the reserved rectangle
  ImVec2 area_min, area_max;                      // the axes' frame
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // axis ranges (y in log10 units when log_y)
  bool log_y = false;
  bool empty = true;  // nothing finite to draw

  // Screen position of a data point (NaN coordinates for y <= 0 on a log axis).
  ImVec2 to_screen(double x, double y) const;
};

// The layout draw_figure would use for `fig` in the rectangle at top_left of `size`. Needs an ImGui context
// (text is measured with the current font).
PlotLayout layout_figure(const ms::Figure& fig, ImVec2 top_left, ImVec2 size);

// Draws `fig` at the cursor, reserving `size` (a component <= 0: the available width/height plus it, as ImGui
// sizes go). With the mouse over the axes, highlights the nearest line point
// or histogram bin, shows a tooltip and fills `hover`. Inconsistent data (x and y of different lengths, bad
// colours, non-positive values on a log axis) is drawn as far as it makes sense, never throws. Returns whether
// the plot is hovered.
bool draw_figure(const char* id, const ms::Figure& fig, ImVec2 size, PlotHover* hover = nullptr);

// Geometry of a heatmap drawn by draw_heatmap in the rectangle at top_left of `size` (the colour bar's tick
// labels, which depend on vmin and vmax, take room from the cells).
struct HeatmapLayout {
  ImVec2 grid_min, grid_max;  // the cells (square cells, centred on the left of the colour bar)
  ImVec2 bar_min, bar_max;    // the colour bar
  float cell = 0;             // cell side in pixels
  ImVec2 cell_center(int row, int col) const;
};
HeatmapLayout layout_heatmap(int rows, int cols, float vmin, float vmax, ImVec2 top_left, ImVec2 size);

// A perceptual (viridis-like) colour for t in [0, 1]; NaN gives grey.
ImU32 heatmap_color(float t);

// Draws `values` (rows x cols, row-major) as coloured cells with a colour bar from vmin to vmax (non-finite
// vmin/vmax: the range of the finite values). NaN cells are grey. Sets *hovered_cell to row * cols + col of
// the cell under the mouse, or -1.
void draw_heatmap(const char* id, const std::vector<float>& values, int rows, int cols, float vmin, float vmax,
                  ImVec2 size, const char* colorbar_label, int* hovered_cell = nullptr);

// The figure's data as CSV: a section "series,label,x,y,y_err" (one row per point; non-finite values as
// nan/inf/-inf, an empty y_err when the series has none), then, after a blank line, a section
// "histogram,label,bin_lo,bin_hi,count". Numbers round-trip exactly.
std::string figure_csv(const ms::Figure& fig);

// Writes <prefix>.svg, <prefix>.png and <prefix>.csv; throws ms::Error naming the file that failed.
void export_figure(const ms::Figure& fig, const std::string& path_without_extension);

// Right-click menu over the last drawn item (call right after draw_figure): export to default_path_prefix
// (.svg/.png/.csv) or copy the CSV. *status_message gets the written path or the error.
void figure_context_menu(const char* id, const ms::Figure& fig, const std::string& default_path_prefix,
                         std::string* status_message);

}  // namespace ms::gui
