// Publication-quality line and histogram plots, exported as SVG (our own writer: the text stays editable), PNG
// and PDF (Cairo, text in DejaVu Sans found through fontconfig). No GUI, no LibTorch.
//
// Every format, and the app's on-screen plot, draws one layout (plot_layout.h), so an SVG, a PNG and a PDF of
// the same Figure show the same thing. Colours are "#rrggbb" (or "#rgb"); an empty colour takes the palette
// entry of the series' (or histogram's) index.
#pragma once

#include "image.h"

#include <optional>
#include <string>
#include <vector>

namespace ms {

struct Series {
  std::string label;  // legend entry; empty: not in the legend
  std::vector<double> x, y;
  std::vector<double> y_err;  // optional: band y ± y_err drawn as a translucent fill (e.g. mean ± std)
  std::string color;          // empty: method_palette()[index of the series % palette size]
  bool markers = true;
  bool dashed = false;
};
// Non-finite points (NaN, inf) leave a gap in the line.

struct Histogram {
  std::string label;
  std::vector<double> edges;   // bin edges, strictly increasing, counts.size() + 1 of them
  std::vector<double> counts;  // non-negative
  std::string color;           // empty: palette entry of (number of series + index of the histogram)
};

enum class LegendPlacement {
  Auto,  // the first inside corner (top-right, top-left, bottom-right, bottom-left) clear of data, else outside
  TopRight,
  TopLeft,
  BottomRight,
  BottomLeft,
  OutsideRight,
  Hidden,
};

struct Figure {
  std::string title, x_label, y_label;
  std::vector<Series> lines;
  std::vector<Histogram> histograms;  // drawn under the lines, overlaid with transparency
  bool log_y = false;                 // all y data (and a fixed y_min) must then be positive
  int width = 800, height = 500;      // size in px (CSS px: the PDF page is 0.75 pt per px); PNG: scale times
  // Fixed axis ranges; unset ends are taken from the data (with a small margin).
  std::optional<double> x_min, x_max, y_min, y_max;
  LegendPlacement legend = LegendPlacement::Auto;
};

// Self-contained SVG document. Throws ms::Error("figure '<title>': <problem>") on inconsistent data.
std::string render_svg(const Figure& figure);

// The figure rasterised at scale x its size (scale 1..8).
RgbImage render_png(const Figure& figure, int scale = 2);

// A one-page PDF document (vector lines, embedded font subset, the title in the document's metadata).
std::string render_pdf(const Figure& figure);

// A rectangle in figure pixels (y down).
struct PlotArea {
  double left = 0, top = 0, right = 0, bottom = 0;
};
// The axes' frame in figure pixels, for mapping data to pixels (a PNG at scale s: multiply by s).
PlotArea plot_area(const Figure& figure);

// The file formats save_figure writes, as extensions with the dot: ".svg", ".png", ".pdf".
const std::vector<std::string>& figure_formats();

// Writes <path>.svg, <path>.png and <path>.pdf; throws ms::Error naming the file that could not be written.
void save_figure(const Figure& figure, const std::string& path_without_extension, int png_scale = 2);

// Okabe-Ito colours (colour-blind safe), the order used for series without a colour.
const std::vector<std::string>& method_palette();

// The colour of a method family, the same in every plot: "tome:r=8" and "tome" give tome's colour. Known
// families: none (baseline), tome, pitome, pitome-code, random, ltmp, ltp, cluster (kmeans). Others get a
// palette colour chosen by a stable hash of the family name.
std::string color_for_method(const std::string& method_spec);

// Tick values k * step, step one of 1, 2, 5 x 10^n, the smallest such step giving at most max_intervals
// intervals; the first tick is <= lo and the last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int max_intervals = 6);

// A tick label with as many decimals as the step needs ("0.25", "10", "1.5e9" for large or tiny values).
std::string format_tick(double value, double step);

// The font file fontconfig picks for the plots' family (DejaVu Sans, or its substitute), "" when there is no
// font at all. Plots are drawn without text then (a warning goes to stderr once per process).
std::string plot_font_file(bool bold = false);

}  // namespace ms
