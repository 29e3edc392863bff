// The one plot layout: a Figure at a target size becomes everything a back end draws (plot area, axis ranges,
// ticks and their labels, legend place and rows, title and label positions, resolved colours, series split at
// non-finite points, bands and histogram bars), in figure pixels (origin top left, y down). The SVG writer,
// Cairo (PNG, PDF) and the app's ImDrawList all draw it through paint_figure, so they differ only in pixels.
//
// Text is measured in DejaVu Sans (through Cairo and fontconfig); no GUI, no LibTorch.
#pragma once

#include "plot.h"

#include <string>
#include <vector>

namespace ms {

struct Rgba {
  double r = 0, g = 0, b = 0, a = 1;  // 0..1, sRGB, not premultiplied
};

struct Point {
  double x = 0, y = 0;
};

using Box = PlotArea;

enum class TextAnchor { Start, Middle, End };

struct TextItem {
  std::string text;  // UTF-8; already shortened with "…" where it would not fit
  Point at;          // the anchor point on the baseline
  double size = 11;  // font size, px per em
  TextAnchor anchor = TextAnchor::Start;
  bool rotated = false;  // turned 90° counter-clockwise about `at` (reads bottom to top)
  bool bold = false;
  Rgba color;
  const char* role = "";  // what it is: "title", "x-label", "y-label", "x-tick", "y-tick", "legend", "note"
};

struct Stroke {
  Rgba color;
  double width = 1;
  bool dashed = false;     // 6 px on, 6 px off
  double dash_offset = 0;  // how far into the pattern the line starts
  bool crisp = false;      // an axis-aligned rule: raster back ends snap it to the pixel grid
};

struct Tick {
  double value = 0;  // in data units
  double pos = 0;    // x (x axis) or y (y axis) in figure pixels
  TextItem label;
};

struct AxisLayout {
  double lo = 0, hi = 1;  // the range in data units (positive on a log axis)
  bool log = false;
  double px_lo = 0, px_hi = 1;  // figure pixel of lo and of hi (y: bottom and top)
  std::vector<Tick> ticks;
  std::vector<double> minor;  // pixel positions of unlabelled ticks (2..9 x 10^n on a log axis)
  int factor_exp = 0;         // n when the labels are mantissas and the axis label ends in "(×10ⁿ)"

  // Figure pixel of a data value (NaN for v <= 0 on a log axis), not clamped to the axis.
  double to_px(double v) const;
};

struct Band {
  std::vector<Point> upper, lower;  // y + err and y - err at the same x, left to right
};

struct SeriesLayout {
  Stroke line;
  std::vector<std::vector<Point>> runs;  // the polyline, split at non-finite points
  std::vector<Band> bands;               // split where y_err is not finite
  Rgba band_fill;
  std::vector<Point> markers;  // empty when the series has none
};

struct HistogramLayout {
  Rgba bar_fill;
  std::vector<Box> bars;  // bins with a count above the axis
  Stroke outline;
  std::vector<Point> steps;  // the step outline along the bin tops, from and back to the base
};

struct LegendRow {
  bool patch = false;  // a filled swatch (histogram bar or band)
  Box patch_box;
  Rgba patch_fill;
  bool patch_edge = false;
  Stroke patch_stroke;
  bool line = false;  // a line swatch
  Point line_from, line_to;
  Stroke line_stroke;
  bool marker = false;
  Point marker_at;
  TextItem label;
};

struct LegendLayout {
  bool shown = false;
  LegendPlacement placement = LegendPlacement::Hidden;  // where it went: a corner or OutsideRight
  Box box;
  Rgba fill;
  Stroke edge;
  std::vector<LegendRow> rows;  // a legend taller than its room ends in a row "… and N more"
};

struct FigureLayout {
  double width = 0, height = 0;
  Rgba paper;
  Box plot;  // the axes' frame
  AxisLayout x, y;
  Stroke grid, axis;  // grid lines at the inner ticks; frame and tick marks
  double tick_length = 5, minor_tick_length = 3;
  std::vector<HistogramLayout> histograms;  // drawn first, bars of all, then outlines of all
  std::vector<SeriesLayout> series;         // bands of all, then each line with its markers
  double marker_radius = 3.2;
  Stroke marker_edge;
  LegendLayout legend;
  TextItem title, x_label, y_label;  // empty text: none
  TextItem title_continued;          // a title too wide for one line: its second line (empty: one line)
  TextItem note;                     // "no data" in the middle when nothing finite is plotted
  bool empty = true;                 // no finite point and no histogram

  Point to_px(double x_value, double y_value) const { return {x.to_px(x_value), y.to_px(y_value)}; }
};

// The layout of `figure` at width x height figure pixels (figure.width and .height are not used). Pure: the
// same figure and size give the same layout. Throws ms::Error("figure '<title>': <problem>") on inconsistent
// data or a size outside 64x48 .. 16384x16384 or too small for the axes.
FigureLayout figure_layout(const Figure& figure, double width, double height);
inline FigureLayout figure_layout(const Figure& figure) { return figure_layout(figure, figure.width, figure.height); }

// What a back end can draw; paint_figure calls these back to front. Coordinates are figure pixels.
class PlotPainter {
 public:
  virtual ~PlotPainter() = default;
  // Until the next call, data is drawn inside `area` only (nullptr: no clipping).
  virtual void clip(const Box* area) = 0;
  virtual void line(Point a, Point b, const Stroke& stroke, const char* role) = 0;
  virtual void path(const std::vector<std::vector<Point>>& runs, const Stroke& stroke, const char* role) = 0;
  virtual void band(const Band& band, const Rgba& fill) = 0;
  virtual void bars(const std::vector<Box>& bars, const Rgba& fill) = 0;
  virtual void rect(const Box& box, const Rgba* fill, const Stroke* edge, const char* role) = 0;
  virtual void marker(Point center, double radius, const Rgba& fill, const Stroke& edge) = 0;
  virtual void text(const TextItem& text) = 0;
};

// Draws the layout: paper, grid, histograms, bands, lines and markers (clipped to the plot), frame, ticks,
// labels, title, legend, note.
void paint_figure(const FigureLayout& layout, PlotPainter& painter);

// Advance width in figure pixels of `text` at `size` px per em, as the layout measures it (DejaVu Sans or
// fontconfig's substitute, unhinted, so widths scale linearly with the size). Thread-safe.
double plot_text_width(const std::string& text, double size, bool bold);

}  // namespace ms
