// On-screen plots with ImDrawList: the layout analysis/plot_layout.h makes for the SVG/PNG/PDF export, made for
// the widget's size and drawn into the current ImGui window, so the screen shows the ticks, ranges, legend place
// and text positions of the export at that size; only pixels differ. Also the token heatmap (per-patch energy)
// and the export helpers (SVG + PNG + PDF + CSV). No LibTorch, no GL.
//
// The plot is drawn on white "paper" with dark ink, as the export is, so the palette's black baseline stays
// visible under a dark ImGui theme.
#pragma once

#include "plot.h"
#include "plot_layout.h"

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

// The UI font: the plots' font (DejaVu Sans through fontconfig, as the exports use) at `size` pixels, with the
// glyphs the plots and panels print beyond Latin-1 ("\u2026" for shortened text, "\u2212", the superscripts of an
// axis factor such as "\u00d710\u207b\u00b3", dashes and arrows). ImGui's default ranges stop at U+00FF and draw
// '?' for the rest. False, and the atlas untouched, when no font file is found (ImGui's built-in font then).
bool add_ui_font(ImFontAtlas& atlas, float size);

// Where a figure lands on screen: the export's layout at the reserved rectangle's size, moved to its corner.
struct PlotLayout {
  ImVec2 frame_min, frame_max;                    // the reserved rectangle
  ImVec2 area_min, area_max;                      // the axes' frame
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // axis ranges (y in log10 units when log_y)
  bool log_y = false;
  bool empty = true;      // nothing finite to draw, or no layout (see error)
  std::string error;      // why the figure cannot be laid out at this size (too small, inconsistent data)
  ms::FigureLayout plot;  // in figure pixels: add frame_min for the screen

  // Screen position of a data point (NaN coordinates for y <= 0 on a log axis).
  ImVec2 to_screen(double x, double y) const;
};

// The layout draw_figure would use for `fig` in the rectangle at top_left of `size`: ms::figure_layout(fig,
// size.x, size.y) moved to top_left. Never throws; a figure that cannot be laid out gets `error`.
PlotLayout layout_figure(const ms::Figure& fig, ImVec2 top_left, ImVec2 size);

// What draw_figure drew, in screen pixels and at the moment it drew it, for tests that hold the screen against
// an export. Roles are those of the layout (ms::TextItem::role; lines "grid", "x-tick", "y-tick", "y-minor",
// "swatch"; rectangles "background", "frame", "legend", "swatch").
struct DrawnText {
  std::string role, text;
  ImVec2 at;  // the anchor on the baseline
  ms::TextAnchor anchor = ms::TextAnchor::Start;
  bool rotated = false;
  float size = 0;
};
struct DrawnLine {
  std::string role;
  ImVec2 a, b;
};
struct DrawnRect {
  std::string role;
  ImVec2 min, max;
};
struct PlotDrawing {
  std::vector<DrawnText> texts;
  std::vector<DrawnLine> lines;
  std::vector<DrawnRect> rects;
};

// Draws `fig` at the cursor, reserving `size` (a component <= 0: the available width/height plus it, as ImGui
// sizes go; rounded to whole pixels). With the mouse over the axes, highlights the nearest line point or
// histogram bin, shows a tooltip and fills `hover`. A figure the export would refuse (x and y of different
// lengths, bad colours, non-positive values on a log axis) or a rectangle too small for the axes shows the
// reason instead; it never throws. Returns whether the plot is hovered. `drawn`, when given, records the
// text, rules and rectangles drawn.
bool draw_figure(const char* id, const ms::Figure& fig, ImVec2 size, PlotHover* hover = nullptr,
                 PlotDrawing* drawn = nullptr);

// `fig` with its width and height set to the size draw_figure last showed it at under `id`, so an export has
// the layout that was on screen. Unchanged when it has not been drawn, or cannot be laid out at that size.
ms::Figure as_shown(const std::string& id, ms::Figure fig);

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

// Writes <prefix>.svg, .png and .pdf (ms::save_figure) and <prefix>.csv; throws ms::Error naming the file that
// failed.
void export_figure(const ms::Figure& fig, const std::string& path_without_extension);

// Right-click menu over the last drawn item (call right after draw_figure): export to default_path_prefix
// (.svg/.png/.pdf/.csv, at the size shown) or copy the CSV. *status_message gets the written path or the error.
void figure_context_menu(const char* id, const ms::Figure& fig, const std::string& default_path_prefix,
                         std::string* status_message);

}  // namespace ms::gui
