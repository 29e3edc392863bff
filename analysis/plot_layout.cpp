// The plot layout in stages: data checks and colours, axis ranges, ticks, the frame (room for labels and an
// outside legend), series and histogram geometry, legend placement, text; then the drawing order for every
// back end (paint_figure).
#include "plot_layout.h"

#include "error.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <tuple>

namespace ms {

namespace {

constexpr double kPad = 10;
constexpr double kTitleSize = 15;
constexpr double kLabelSize = 13;
constexpr double kTickSize = 11;
constexpr double kLegendSize = 11;
constexpr double kMinTextSize = 7;
constexpr double kTickLen = 5;
constexpr double kLineWidth = 2;
constexpr double kBandAlpha = 0.2;
constexpr double kCap = 0.73;        // digit height in em, to centre a label on a position
constexpr double kLabelInset = 0.8;  // the rotated y label's baseline, in em right of the pad: room for capitals
constexpr double kLegendRow = 18;    // legend geometry: row height, swatch length, inset from the axes
constexpr double kSwatch = 26;
constexpr double kLegendInset = 8;

const Rgba kText = {0.13, 0.13, 0.13, 1};
const Rgba kAxis = {0.25, 0.25, 0.25, 1};
const Rgba kGrid = {0.898, 0.898, 0.898, 1};
const Rgba kWhite = {1, 1, 1, 1};
const Rgba kNote = {0.5, 0.5, 0.5, 1};

// ---------------------------------------------------------------------------------------------------------
// Numbers and colours

std::string short_num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_color(const std::string& s, Rgba* out) {
  if (s.empty() || s[0] != '#' || (s.size() != 7 && s.size() != 4)) return false;
  int v[6];
  for (size_t i = 1; i < s.size(); ++i)
    if ((v[i - 1] = hex_value(s[i])) < 0) return false;
  if (s.size() == 4)
    *out = {v[0] * 17 / 255.0, v[1] * 17 / 255.0, v[2] * 17 / 255.0, 1};
  else
    *out = {(v[0] * 16 + v[1]) / 255.0, (v[2] * 16 + v[3]) / 255.0, (v[4] * 16 + v[5]) / 255.0, 1};
  return true;
}

Rgba with_alpha(Rgba c, double a) {
  c.a = a;
  return c;
}

// 1, 2 or 5 times a power of ten, the smallest not below span / intervals.
double nice_step(double span, int intervals) {
  const double raw = span / std::max(1, intervals);
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double base = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * base >= raw * (1 - 1e-9)) return m * base;
  return 10 * base;
}

double next_nice(double step, bool up) {
  const double e = std::floor(std::log10(step) + 1e-9);
  const double base = std::pow(10.0, e);
  const double m = std::round(step / base);
  if (up) return m < 1.5 ? 2 * base : m < 3 ? 5 * base : 10 * base;
  return m < 1.5 ? 0.5 * base : m < 3 ? base : 2 * base;
}

const char* const kSuperscript[] = {"\u2070", "\u00b9", "\u00b2", "\u00b3", "\u2074",
                                    "\u2075", "\u2076", "\u2077", "\u2078", "\u2079"};

// "10" with the exponent as superscript digits.
std::string power_of_ten(int e) {
  std::string out = "10";
  if (e < 0) out += "\u207b";
  for (char c : std::to_string(std::abs(e))) out += kSuperscript[c - '0'];
  return out;
}

// Labels for a logarithmic axis: plain decimals from 0.001 to 10000, otherwise 10ⁿ and 2×10ⁿ.
std::string format_log_tick(double v) {
  const int e = static_cast<int>(std::floor(std::log10(v) + 1e-9));
  const double m = v / std::pow(10.0, e);
  const int mi = static_cast<int>(std::lround(m));
  if (e >= -3 && e <= 4 && std::fabs(m - mi) < 1e-6) return format_tick(v, std::pow(10.0, e));
  if (e >= -3 && e <= 4) return format_tick(v, std::pow(10.0, e - 1));
  std::string out;
  if (std::fabs(m - mi) > 1e-6) {
    out = short_num(m) + "\u00d7";
  } else if (mi != 1) {
    out = std::to_string(mi) + "\u00d7";
  }
  return out + power_of_ten(e);
}

double text_width(const std::string& s, double size, bool bold = false) { return plot_text_width(s, size, bold); }

// `s` cut on a UTF-8 boundary with "…" so that it fits `room` at `size`.
std::string ellipsized(const std::string& s, double size, bool bold, double room) {
  if (text_width(s, size, bold) <= room) return s;
  const std::string dots = "\u2026";
  for (size_t n = s.size(); n > 0;) {
    do --n;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80);
    const std::string cut = s.substr(0, n) + dots;
    if (text_width(cut, size, bold) <= room) return cut;
  }
  return text_width(dots, size, bold) <= room ? dots : std::string();
}

// The size at which `s` fits `room` (down to kMinTextSize), and the text shortened if it still does not.
std::pair<std::string, double> fitted(const std::string& s, double size, bool bold, double room) {
  const double w = text_width(s, size, bold);
  if (w > room && w > 0) size = std::max(kMinTextSize, size * room / w);
  return {ellipsized(s, size, bold, room), size};
}

// A title that does not fit on one line at `size` breaks at the space that makes its wider half narrowest; both
// lines then share one size, shrunk (down to kMinTextSize) only if the wider half still does not fit, and are
// shortened with an ellipsis past that. A title without spaces stays one line (fitted).
struct TitleLines {
  std::vector<std::string> lines;
  double size = 0;
};

TitleLines title_lines(const std::string& title, double size, double room) {
  if (text_width(title, size, true) <= room) return {{title}, size};
  size_t best = std::string::npos;
  double best_width = std::numeric_limits<double>::infinity();
  for (size_t at = title.find(' '); at != std::string::npos; at = title.find(' ', at + 1)) {
    const size_t end = title.find_last_not_of(' ', at), start = title.find_first_not_of(' ', at);
    if (end == std::string::npos || start == std::string::npos) continue;  // spaces at either end only
    const double w =
        std::max(text_width(title.substr(0, end + 1), size, true), text_width(title.substr(start), size, true));
    if (w < best_width) best_width = w, best = at;
  }
  if (best == std::string::npos) {
    const auto [s, fitted_size] = fitted(title, size, true, room);
    return {{s}, fitted_size};
  }
  const double line_size = best_width <= room ? size : std::max(kMinTextSize, size * room / best_width);
  const std::string first = title.substr(0, title.find_last_not_of(' ', best) + 1);
  const std::string second = title.substr(title.find_first_not_of(' ', best));
  return {{ellipsized(first, line_size, true, room), ellipsized(second, line_size, true, room)}, line_size};
}

constexpr double kTitleLeading = 1.25;  // line distance of a two-line title, in em

TextItem text_item(std::string s, Point at, double size, TextAnchor anchor, const char* role) {
  TextItem t;
  t.text = std::move(s);
  t.at = at;
  t.size = size;
  t.anchor = anchor;
  t.color = kText;
  t.role = role;
  return t;
}

double clamp_coord(double v) { return std::clamp(v, -1e6, 1e6); }

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// ---------------------------------------------------------------------------------------------------------
// Stage 1: data checks, colours, extents of the data

struct Data {
  std::string where;  // "figure 'title'", for messages
  std::vector<Rgba> series_color, hist_color;
  Range xs_series, xs_hist, ys_series, ys_hist;  // y in log10 units on a log axis
  bool any_hist = false;
};

void check_settings(const Figure& fig, double width, double height, const std::string& where) {
  if (!(width >= 64 && height >= 48 && width <= 16384 && height <= 16384))
    fail(where, "size " + short_num(width) + "x" + short_num(height) + " is outside 64x48 .. 16384x16384");
  auto check_finite = [&](const std::optional<double>& v, const char* name) {
    if (v && !std::isfinite(*v)) fail(where, std::string(name) + " is not finite");
  };
  check_finite(fig.x_min, "x_min");
  check_finite(fig.x_max, "x_max");
  check_finite(fig.y_min, "y_min");
  check_finite(fig.y_max, "y_max");
  if (fig.log_y && fig.y_min && *fig.y_min <= 0)
    fail(where, "log_y needs a positive y_min, got " + short_num(*fig.y_min));
  if (fig.log_y && fig.y_max && *fig.y_max <= 0)
    fail(where, "log_y needs a positive y_max, got " + short_num(*fig.y_max));
}

void check_series(const Figure& fig, size_t i, Data& d) {
  const Series& s = fig.lines[i];
  const std::string name = s.label.empty() ? "series " + std::to_string(i) : "series '" + s.label + "'";
  const auto& palette = method_palette();
  const std::string color = s.color.empty() ? palette[i % palette.size()] : s.color;
  if (!parse_color(color, &d.series_color[i])) fail(d.where, name + ": colour '" + color + "' is not #rrggbb");
  if (s.x.size() != s.y.size())
    fail(d.where, name + ": x has " + std::to_string(s.x.size()) + " values, y has " + std::to_string(s.y.size()));
  if (!s.y_err.empty() && s.y_err.size() != s.y.size())
    fail(d.where,
         name + ": y_err has " + std::to_string(s.y_err.size()) + " values, y has " + std::to_string(s.y.size()));
  auto y_unit = [&](double v) { return fig.log_y ? std::log10(v) : v; };
  for (size_t j = 0; j < s.x.size(); ++j) {
    if (!std::isfinite(s.x[j]) || !std::isfinite(s.y[j])) continue;
    if (fig.log_y && s.y[j] <= 0)
      fail(d.where, name + ": log_y needs positive y values, got " + short_num(s.y[j]) + " at x=" + short_num(s.x[j]));
    d.xs_series.add(s.x[j]);
    d.ys_series.add(y_unit(s.y[j]));
    if (s.y_err.empty() || !std::isfinite(s.y_err[j])) continue;
    if (s.y_err[j] < 0)
      fail(d.where, name + ": negative y_err " + short_num(s.y_err[j]) + " at x=" + short_num(s.x[j]));
    const double hi = s.y[j] + s.y_err[j], lo = s.y[j] - s.y_err[j];
    d.ys_series.add(y_unit(hi));
    if (!fig.log_y || lo > 0) d.ys_series.add(y_unit(lo));
  }
}

void check_histogram(const Figure& fig, size_t i, Data& d) {
  const Histogram& h = fig.histograms[i];
  const std::string name = h.label.empty() ? "histogram " + std::to_string(i) : "histogram '" + h.label + "'";
  const auto& palette = method_palette();
  const std::string color = h.color.empty() ? palette[(fig.lines.size() + i) % palette.size()] : h.color;
  if (!parse_color(color, &d.hist_color[i])) fail(d.where, name + ": colour '" + color + "' is not #rrggbb");
  if (h.counts.empty()) fail(d.where, name + ": no bins");
  if (h.edges.size() != h.counts.size() + 1)
    fail(d.where, name + ": " + std::to_string(h.counts.size()) + " counts need " +
                      std::to_string(h.counts.size() + 1) + " edges, got " + std::to_string(h.edges.size()));
  for (size_t j = 0; j < h.edges.size(); ++j) {
    if (!std::isfinite(h.edges[j])) fail(d.where, name + ": edge " + std::to_string(j) + " is not finite");
    if (j && !(h.edges[j] > h.edges[j - 1])) fail(d.where, name + ": edges are not strictly increasing");
  }
  for (size_t j = 0; j < h.counts.size(); ++j) {
    if (!std::isfinite(h.counts[j]) || h.counts[j] < 0)
      fail(d.where, name + ": count " + short_num(h.counts[j]) + " in bin " + std::to_string(j) +
                        " is not a non-negative number");
    if (h.counts[j] > 0 || !fig.log_y) d.ys_hist.add(fig.log_y ? std::log10(h.counts[j]) : h.counts[j]);
  }
  d.xs_hist.add(h.edges.front());
  d.xs_hist.add(h.edges.back());
  d.any_hist = true;
}

Data check_data(const Figure& fig, double width, double height) {
  Data d;
  d.where = fig.title.empty() ? std::string("figure") : "figure '" + fig.title + "'";
  check_settings(fig, width, height, d.where);
  d.series_color.resize(fig.lines.size());
  d.hist_color.resize(fig.histograms.size());
  for (size_t i = 0; i < fig.lines.size(); ++i) check_series(fig, i, d);
  for (size_t i = 0; i < fig.histograms.size(); ++i) check_histogram(fig, i, d);
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// Stage 2: axis ranges

struct Axis {
  double lo = 0, hi = 1;  // data units
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;
  std::vector<double> minor;  // unlabelled ticks of a log axis (2..9 x 10^n)
  bool factor_out = false;    // may labels be mantissas with "(×10ⁿ)" added to the axis label?
  int factor_exp = 0;         // n when they are (0: plain labels)
  double t(double v) const { return log ? std::log10(v) : v; }
  double frac(double v) const { return (t(v) - t(lo)) / (t(hi) - t(lo)); }
};

// Widens [lo, hi] by frac of its span on both sides (a zero span by 10% of the value, or 1).
Range padded(Range r, double frac) {
  if (r.empty()) return r;
  double span = r.hi - r.lo;
  if (span <= 0) {
    const double d = r.lo != 0 ? std::fabs(r.lo) * 0.1 : 1;
    return {r.lo - d, r.hi + d};
  }
  return {r.lo - frac * span, r.hi + frac * span};
}

// Combines a data range with the fixed ends of the figure; in log units when log is set.
Range resolve_range(Range data, std::optional<double> fixed_lo, std::optional<double> fixed_hi, bool log,
                    const std::string& where, const char* axis) {
  if (data.empty()) data = Range{0, 1};
  Range r = data;
  if (fixed_lo) r.lo = log ? std::log10(*fixed_lo) : *fixed_lo;
  if (fixed_hi) r.hi = log ? std::log10(*fixed_hi) : *fixed_hi;
  if (fixed_lo && fixed_hi && !(r.lo < r.hi))
    fail(where, std::string(axis) + " range: minimum " + short_num(*fixed_lo) + " is not below maximum " +
                    short_num(*fixed_hi));
  if (!(r.lo < r.hi)) {
    const double d = std::max(1.0, std::fabs(fixed_lo ? r.lo : r.hi) * 0.1);
    if (fixed_lo)
      r.hi = r.lo + (log ? 1 : d);
    else
      r.lo = r.hi - (log ? 1 : d);
  }
  return r;
}

// Series get a margin so markers stay inside; histograms start at zero (linear y).
void set_ranges(const Figure& fig, const Data& d, Axis& xa, Axis& ya) {
  Range xr = padded(d.xs_series, 0.03);
  if (!d.xs_hist.empty()) {
    xr.add(d.xs_hist.lo);
    xr.add(d.xs_hist.hi);
  }
  Range yr = padded(d.ys_series, 0.05);
  if (!d.ys_hist.empty()) {
    Range h = d.ys_hist;
    if (fig.log_y) {
      h = padded(h, 0.05);
    } else {
      h.add(0);
      h.hi = h.hi + 0.05 * (h.hi - h.lo);
      if (h.hi <= 0) h.hi = 1;
    }
    yr.add(h.lo);
    yr.add(h.hi);
  } else if (d.any_hist && yr.empty() && fig.log_y) {
    yr = {0, 1};  // every count is zero
  }
  xa.factor_out = !fig.x_label.empty();
  ya.factor_out = !fig.y_label.empty();
  const Range x = resolve_range(xr, fig.x_min, fig.x_max, false, d.where, "x");
  xa.lo = x.lo;
  xa.hi = x.hi;
  const Range y = resolve_range(yr, fig.y_min, fig.y_max, fig.log_y, d.where, "y");
  ya.log = fig.log_y;
  ya.lo = fig.log_y ? std::pow(10.0, y.lo) : y.lo;
  ya.hi = fig.log_y ? std::pow(10.0, y.hi) : y.hi;
}

// ---------------------------------------------------------------------------------------------------------
// Stage 3: ticks

// Ticks within [lo, hi]: the finest 1-2-5 step that leaves at most `intervals` intervals between them.
std::vector<double> ticks_inside(double lo, double hi, int intervals, double* step_out) {
  auto inside_intervals = [&](double step) { return std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9); };
  double step = nice_step(hi - lo, intervals);
  for (int finer = 0; finer < 3 && inside_intervals(next_nice(step, false)) <= intervals; ++finer)
    step = next_nice(step, false);
  for (int guard = 0; guard < 8; ++guard) {
    const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
    if (k1 - k0 >= 1 || guard == 7) {
      std::vector<double> ticks;
      for (double k = k0; k <= k1 && ticks.size() < 100; k += 1) ticks.push_back(std::fabs(k) < 0.5 ? 0.0 : k * step);
      *step_out = step;
      return ticks;
    }
    step = next_nice(step, false);
  }
  *step_out = step;
  return {};
}

// Very large or small values: with an axis label, ticks read 0.8, 1.0, 1.2 and the label gets "(×10⁹)";
// without one, each tick says 8e8, 1e9, 1.2e9.
void linear_ticks(Axis& axis, int intervals) {
  double step = 1;
  axis.minor.clear();
  axis.factor_exp = 0;
  axis.ticks = ticks_inside(axis.lo, axis.hi, intervals, &step);
  axis.labels.clear();
  double largest = 0;
  for (double v : axis.ticks) largest = std::max(largest, std::fabs(v));
  if (axis.factor_out && (step >= 1e5 || step < 1e-4) && largest > 0) {
    axis.factor_exp = static_cast<int>(std::floor(std::log10(largest) + 1e-9));
    const int step_exp = static_cast<int>(std::floor(std::log10(step) + 1e-9));
    const double unit = std::pow(10.0, axis.factor_exp);
    for (double v : axis.ticks)
      axis.labels.push_back(format_tick(v / unit, std::pow(10.0, step_exp - axis.factor_exp)));
    return;
  }
  for (double v : axis.ticks) axis.labels.push_back(format_tick(v, step));
}

void log_ticks(Axis& axis, int intervals) {
  const double llo = std::log10(axis.lo), lhi = std::log10(axis.hi);
  const int d0 = static_cast<int>(std::ceil(llo - 1e-9)), d1 = static_cast<int>(std::floor(lhi + 1e-9));
  const int decades = d1 - d0 + 1;
  axis.ticks.clear();
  axis.factor_exp = 0;
  if (decades >= 3) {
    const int stride = std::max(1, (decades - 1 + intervals - 1) / std::max(1, intervals));
    for (int d = d0; d <= d1; d += stride) axis.ticks.push_back(std::pow(10.0, d));
  } else {
    for (int d = d0 - 1; d <= d1; ++d)
      for (double m : {1.0, 2.0, 5.0}) {
        const double v = m * std::pow(10.0, d);
        if (v >= axis.lo * (1 - 1e-9) && v <= axis.hi * (1 + 1e-9)) axis.ticks.push_back(v);
      }
    if (static_cast<int>(axis.ticks.size()) > intervals + 1) {  // keep the decades only
      axis.ticks.clear();
      for (int d = d0; d <= d1; ++d) axis.ticks.push_back(std::pow(10.0, d));
    }
    if (axis.ticks.size() < 2) {
      linear_ticks(axis, intervals);
      return;
    }
  }
  axis.labels.clear();
  for (double v : axis.ticks) axis.labels.push_back(format_log_tick(v));
  axis.minor.clear();
  if (decades < 12)
    for (int d = d0 - 1; d <= d1; ++d)
      for (int m = 2; m <= 9; ++m) {
        const double v = m * std::pow(10.0, d);
        const bool labelled =
            std::any_of(axis.ticks.begin(), axis.ticks.end(), [&](double t) { return std::fabs(t - v) <= 1e-9 * v; });
        if (!labelled && v >= axis.lo && v <= axis.hi) axis.minor.push_back(v);
      }
}

// Chooses ticks whose labels fit: widest label plus a gap between horizontal neighbours, a line height
// between vertical ones.
void choose_ticks(Axis& axis, double length, bool horizontal) {
  for (int intervals = std::clamp(static_cast<int>(length / (horizontal ? 85 : 45)), 2, 10);; --intervals) {
    if (axis.log)
      log_ticks(axis, intervals);
    else
      linear_ticks(axis, intervals);
    if (intervals <= 1 || axis.ticks.size() < 2) return;
    double widest = 0;
    for (const auto& l : axis.labels) widest = std::max(widest, text_width(l, kTickSize));
    const double need = horizontal ? widest + 12 : kTickSize * 1.6;
    double spacing = std::numeric_limits<double>::infinity();
    for (size_t i = 1; i < axis.ticks.size(); ++i)
      spacing = std::min(spacing, (axis.frac(axis.ticks[i]) - axis.frac(axis.ticks[i - 1])) * length);
    if (spacing >= need) return;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Stage 4: the frame

struct LegendEntry {
  std::string label;
  Rgba color;
  bool histogram = false, dashed = false, markers = false, band = false, more = false;
};

struct Legend {
  std::vector<LegendEntry> entries;
  double w = 0, h = 0;
};

std::vector<LegendEntry> legend_entries(const Figure& fig, const Data& d) {
  std::vector<LegendEntry> entries;
  if (fig.legend == LegendPlacement::Hidden) return entries;
  for (size_t i = 0; i < fig.histograms.size(); ++i)
    if (!fig.histograms[i].label.empty()) entries.push_back({fig.histograms[i].label, d.hist_color[i], true});
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    if (!s.label.empty()) entries.push_back({s.label, d.series_color[i], false, s.dashed, s.markers, !s.y_err.empty()});
  }
  return entries;
}

// The legend's rows cut to `max_h` (the last one then says how many are left out) and labels to half the
// figure's width, so a legend never leaves the figure.
Legend size_legend(std::vector<LegendEntry> entries, double max_h, double figure_w) {
  Legend g;
  const size_t fit = max_h > 10 ? static_cast<size_t>(std::floor((max_h - 10) / kLegendRow)) : 0;
  if (fit == 0 || entries.empty()) return g;
  if (entries.size() > fit) {
    const size_t left_out = entries.size() - (fit - 1);
    entries.resize(fit - 1);
    LegendEntry more;
    more.label = "\u2026 and " + std::to_string(left_out) + " more";
    more.more = true;
    entries.push_back(more);
  }
  const double room = std::max(40.0, 0.5 * figure_w - (8 + kSwatch + 7 + 9));
  double widest = 0;
  for (auto& e : entries) {
    e.label = ellipsized(e.label, kLegendSize, false, room);
    widest = std::max(widest, text_width(e.label, kLegendSize));
  }
  g.entries = std::move(entries);
  g.w = std::ceil(8 + kSwatch + 7 + widest + 9);
  g.h = std::ceil(5 + kLegendRow * g.entries.size() + 5);
  return g;
}

struct Frame {
  double L = 0, T = 0, R = 0, B = 0;
  double left_fixed = 0;  // room for the y label
  TitleLines title;       // none, one or two lines
};

// Top and bottom of the plot; the y axis' ticks (they depend on its length only).
Frame frame_vertical(const Figure& fig, double W, double H, const std::string& where, Axis& ya) {
  Frame f;
  if (!fig.title.empty()) f.title = title_lines(fig.title, kTitleSize, W - 2 * kPad);
  const double title_height = f.title.size * (1 + kTitleLeading * (static_cast<double>(f.title.lines.size()) - 1));
  f.T = std::round(fig.title.empty() ? kPad + 6 : kPad + title_height + 12);
  f.B = std::round(H - (kTickLen + 4 + kTickSize + (fig.x_label.empty() ? 0 : 8 + kLabelSize) + kPad));
  if (f.B - f.T < 20) fail(where, "figure height " + short_num(H) + " leaves no room for the plot");
  choose_ticks(ya, f.B - f.T, false);
  f.left_fixed = kPad + (fig.y_label.empty() ? 0 : kLabelSize + 8);
  return f;
}

double widest_label(const Axis& a) {
  double w = 0;
  for (const auto& l : a.labels) w = std::max(w, text_width(l, kTickSize));
  return w;
}

// Left and right of the plot and the x axis' ticks, keeping the outer tick labels inside the figure (and off
// an outside legend of width legend_w).
void frame_horizontal(Frame& f, double W, bool outside, double legend_w, const std::string& where, const Axis& ya,
                      Axis& xa) {
  f.L = std::round(f.left_fixed + widest_label(ya) + kTickLen + 5);
  const double right_edge = outside ? W - kPad - legend_w - 12 : W - kPad - 8;
  f.R = std::round(right_edge);
  for (int pass = 0; pass < 2; ++pass) {
    if (f.R - f.L < 20) fail(where, "figure width " + short_num(W) + " leaves no room for the plot");
    choose_ticks(xa, f.R - f.L, true);
    if (xa.ticks.empty()) break;
    const double first_left =
        f.L + xa.frac(xa.ticks.front()) * (f.R - f.L) - text_width(xa.labels.front(), kTickSize) / 2;
    const double last_right =
        f.L + xa.frac(xa.ticks.back()) * (f.R - f.L) + text_width(xa.labels.back(), kTickSize) / 2;
    const double limit = outside ? right_edge + 10 : W - 4;
    bool moved = false;
    if (first_left < 4) f.L = std::round(f.L + (4 - first_left)), moved = true;
    if (last_right > limit) f.R = std::round(f.R - (last_right - limit)), moved = true;
    if (!moved) break;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Stage 5: geometry

AxisLayout axis_layout(const Axis& a, double px_lo, double px_hi) {
  AxisLayout out;
  out.lo = a.lo;
  out.hi = a.hi;
  out.log = a.log;
  out.px_lo = px_lo;
  out.px_hi = px_hi;
  out.factor_exp = a.factor_exp;
  for (size_t k = 0; k < a.ticks.size(); ++k) {
    Tick t;
    t.value = a.ticks[k];
    t.pos = out.to_px(a.ticks[k]);
    t.label.text = a.labels[k];
    out.ticks.push_back(std::move(t));
  }
  for (double v : a.minor) out.minor.push_back(out.to_px(v));
  return out;
}

SeriesLayout series_layout(const Series& s, Rgba color, const FigureLayout& lay, bool log_y) {
  SeriesLayout g;
  g.line = {color, kLineWidth, s.dashed, 0, false};
  g.band_fill = with_alpha(color, kBandAlpha);
  auto X = [&](double v) { return clamp_coord(lay.x.to_px(v)); };
  auto Y = [&](double v) { return clamp_coord(lay.y.to_px(v)); };
  std::vector<Point> run;
  Band band;
  auto flush_band = [&]() {
    if (band.upper.size() >= 2) g.bands.push_back(std::move(band));
    band = Band{};
  };
  for (size_t j = 0; j < s.x.size(); ++j) {
    if (!std::isfinite(s.x[j]) || !std::isfinite(s.y[j])) {
      if (!run.empty()) g.runs.push_back(std::move(run));
      run.clear();
      flush_band();
      continue;
    }
    const double px = X(s.x[j]);
    run.push_back({px, Y(s.y[j])});
    if (s.markers) g.markers.push_back(run.back());
    if (s.y_err.empty()) continue;
    if (!std::isfinite(s.y_err[j])) {
      flush_band();
      continue;
    }
    const double hi = s.y[j] + s.y_err[j], lo = s.y[j] - s.y_err[j];
    band.upper.push_back({px, Y(hi)});
    band.lower.push_back({px, (log_y && lo <= 0) ? lay.plot.bottom + 2 : Y(lo)});
  }
  if (!run.empty()) g.runs.push_back(std::move(run));
  flush_band();
  return g;
}

// Translucent bars (more transparent when several overlap) with a step outline.
HistogramLayout histogram_layout(const Histogram& h, Rgba color, double bar_alpha, const FigureLayout& lay,
                                 bool log_y) {
  HistogramLayout g;
  g.bar_fill = with_alpha(color, bar_alpha);
  g.outline = {color, 1.3, false, 0, false};
  auto X = [&](double v) { return clamp_coord(lay.x.to_px(v)); };
  auto top = [&](double c) { return (log_y && c <= 0) ? lay.plot.bottom + 2 : clamp_coord(lay.y.to_px(c)); };
  const double base = log_y ? lay.plot.bottom + 2 : clamp_coord(lay.y.to_px(0));
  g.steps.push_back({X(h.edges[0]), base});
  for (size_t j = 0; j < h.counts.size(); ++j) {
    const double x0 = X(h.edges[j]), x1 = X(h.edges[j + 1]), y = top(h.counts[j]);
    if (h.counts[j] > 0) g.bars.push_back({x0, y, x1, base});
    g.steps.push_back({x0, y});
    g.steps.push_back({x1, y});
  }
  g.steps.push_back({X(h.edges.back()), base});
  return g;
}

void lay_out_data(const Figure& fig, const Data& d, FigureLayout& lay) {
  lay.series.clear();
  lay.histograms.clear();
  const double bar_alpha = fig.histograms.size() > 1 ? 0.4 : 0.6;
  for (size_t i = 0; i < fig.histograms.size(); ++i)
    lay.histograms.push_back(histogram_layout(fig.histograms[i], d.hist_color[i], bar_alpha, lay, fig.log_y));
  for (size_t i = 0; i < fig.lines.size(); ++i)
    lay.series.push_back(series_layout(fig.lines[i], d.series_color[i], lay, fig.log_y));
}

// ---------------------------------------------------------------------------------------------------------
// Stage 6: legend placement

// Cells of the plot area that hold data, to keep an inside legend off them.
struct Occupancy {
  double x0 = 0, y0 = 0, cell = 2;
  int nx = 0, ny = 0;
  std::vector<uint8_t> cells;

  explicit Occupancy(const Box& b) : x0(b.left), y0(b.top) {
    nx = std::max(1, static_cast<int>(std::ceil((b.right - b.left) / cell)));
    ny = std::max(1, static_cast<int>(std::ceil((b.bottom - b.top) / cell)));
    cells.assign(static_cast<size_t>(nx) * ny, 0);
  }
  void mark(double x, double y) {
    const double fi = std::floor((x - x0) / cell), fj = std::floor((y - y0) / cell);
    if (fi >= 0 && fi < nx && fj >= 0 && fj < ny) cells[static_cast<size_t>(fj) * nx + static_cast<size_t>(fi)] = 1;
  }
  void mark_span(double x, double ya, double yb) {
    if (ya > yb) std::swap(ya, yb);
    ya = std::max(ya, y0 - cell);
    yb = std::min(yb, y0 + ny * cell + cell);
    for (double y = ya; y <= yb; y += cell * 0.5) mark(x, y);
    mark(x, yb);
  }
  void mark_segment(Point a, Point b) {
    const double len = std::hypot(b.x - a.x, b.y - a.y);
    const int n = static_cast<int>(std::min(20000.0, std::ceil(len))) + 1;
    for (int k = 0; k <= n; ++k) mark(a.x + (b.x - a.x) * k / n, a.y + (b.y - a.y) * k / n);
  }
  void mark_rect(const Box& r) {
    for (double x = std::max(r.left, x0); x <= std::min(r.right, x0 + nx * cell); x += cell * 0.5)
      mark_span(x, r.top, r.bottom);
  }
  bool clear(double xa, double ya, double xb, double yb) const {
    const int i0 = std::max(0, static_cast<int>(std::floor((xa - x0) / cell)));
    const int i1 = std::min(nx - 1, static_cast<int>(std::floor((xb - x0) / cell)));
    const int j0 = std::max(0, static_cast<int>(std::floor((ya - y0) / cell)));
    const int j1 = std::min(ny - 1, static_cast<int>(std::floor((yb - y0) / cell)));
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i)
        if (cells[static_cast<size_t>(j) * nx + i]) return false;
    return true;
  }
};

Occupancy occupancy(const FigureLayout& lay) {
  Occupancy occ(lay.plot);
  for (const auto& s : lay.series) {
    for (const auto& run : s.runs) {
      occ.mark(run[0].x, run[0].y);
      for (size_t k = 1; k < run.size(); ++k) occ.mark_segment(run[k - 1], run[k]);
    }
    for (const Band& b : s.bands)
      for (size_t k = 0; k + 1 < b.upper.size(); ++k) {
        const Point u0 = b.upper[k], u1 = b.upper[k + 1], l0 = b.lower[k], l1 = b.lower[k + 1];
        const int steps = static_cast<int>(std::min(20000.0, std::ceil(std::fabs(u1.x - u0.x)))) + 1;
        for (int q = 0; q <= steps; ++q) {
          const double t = static_cast<double>(q) / steps;
          occ.mark_span(u0.x + (u1.x - u0.x) * t, u0.y + (u1.y - u0.y) * t, l0.y + (l1.y - l0.y) * t);
        }
      }
  }
  for (const auto& h : lay.histograms)
    for (const Box& bar : h.bars) occ.mark_rect(bar);
  return occ;
}

// The corner for `placement`, or with Auto the first corner clear of data (5 px margin); OutsideRight when
// none is and the caller may move it outside; Hidden when it may not and should stay top right over the data.
std::pair<LegendPlacement, Point> corner_for(const FigureLayout& lay, const Legend& g, LegendPlacement placement) {
  const Box& p = lay.plot;
  const std::array<std::pair<LegendPlacement, Point>, 4> corners = {{
      {LegendPlacement::TopRight, {p.right - kLegendInset - g.w, p.top + kLegendInset}},
      {LegendPlacement::TopLeft, {p.left + kLegendInset, p.top + kLegendInset}},
      {LegendPlacement::BottomRight, {p.right - kLegendInset - g.w, p.bottom - kLegendInset - g.h}},
      {LegendPlacement::BottomLeft, {p.left + kLegendInset, p.bottom - kLegendInset - g.h}},
  }};
  if (placement != LegendPlacement::Auto) {
    for (const auto& c : corners)
      if (c.first == placement) return c;
    return corners[0];
  }
  const bool fits = g.w + 2 * kLegendInset <= p.right - p.left && g.h + 2 * kLegendInset <= p.bottom - p.top;
  if (fits) {
    const Occupancy occ = occupancy(lay);
    const double margin = 5;
    for (const auto& c : corners)
      if (occ.clear(c.second.x - margin, c.second.y - margin, c.second.x + g.w + margin, c.second.y + g.h + margin))
        return c;
  }
  return {LegendPlacement::OutsideRight, corners[0].second};
}

void legend_rows(const Legend& g, double bar_alpha, LegendLayout& out) {
  const double lx = out.box.left, ly = out.box.top;
  for (size_t k = 0; k < g.entries.size(); ++k) {
    const LegendEntry& e = g.entries[k];
    const double cy = ly + 5 + kLegendRow * (k + 0.5);
    const double x0 = lx + 8, x1 = x0 + kSwatch;
    LegendRow row;
    if (!e.more && (e.histogram || e.band)) {
      row.patch = true;
      row.patch_box = e.histogram ? Box{x0 + 4, cy - 5, x1 - 4, cy + 5} : Box{x0, cy - 5, x1, cy + 5};
      row.patch_fill = with_alpha(e.color, e.histogram ? bar_alpha : kBandAlpha);
      row.patch_edge = e.histogram;
      row.patch_stroke = {e.color, 1.3, false, 0, false};
    }
    if (!e.more && !e.histogram) {
      row.line = true;
      row.line_from = {x0, cy};
      row.line_to = {x1, cy};
      // A dash centred on the swatch, so its ends match: "-- o --" rather than "--- o - .".
      row.line_stroke = {e.color, kLineWidth, e.dashed, std::fmod(3 - kSwatch / 2 + 120, 12.0), false};
      row.marker = e.markers;
      row.marker_at = {(x0 + x1) / 2, cy};
    }
    row.label = text_item(e.label, {e.more ? x0 : x1 + 7, cy + 0.5 * kCap * kLegendSize}, kLegendSize,
                          TextAnchor::Start, "legend");
    out.rows.push_back(std::move(row));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Stage 7: text

void lay_out_text(const Figure& fig, const Frame& f, FigureLayout& lay) {
  const double W = lay.width, H = lay.height;
  for (Tick& t : lay.x.ticks)
    t.label = text_item(t.label.text, {t.pos, f.B + kTickLen + 4 + kCap * kTickSize}, kTickSize, TextAnchor::Middle,
                        "x-tick");
  for (Tick& t : lay.y.ticks)
    t.label = text_item(t.label.text, {f.L - kTickLen - 4, t.pos + 0.5 * kCap * kTickSize}, kTickSize, TextAnchor::End,
                        "y-tick");
  auto with_factor = [](const std::string& label, const AxisLayout& axis) {
    return axis.factor_exp ? label + " (\u00d7" + power_of_ten(axis.factor_exp) + ")" : label;
  };
  for (size_t i = 0; i < f.title.lines.size(); ++i) {
    const std::string& s = f.title.lines[i];
    const double size = f.title.size, w = text_width(s, size, true);
    const double cx = std::clamp((f.L + f.R) / 2, kPad + w / 2, std::max(kPad + w / 2, W - kPad - w / 2));
    TextItem& line = i == 0 ? lay.title : lay.title_continued;
    line = text_item(s, {cx, kPad + kCap * size + 1 + i * kTitleLeading * size}, size, TextAnchor::Middle, "title");
    line.bold = true;
  }
  if (!fig.x_label.empty()) {
    const auto [s, size] = fitted(with_factor(fig.x_label, lay.x), kLabelSize, false, W - 2 * kPad);
    const double w = text_width(s, size);
    const double cx = std::clamp((f.L + f.R) / 2, kPad + w / 2, std::max(kPad + w / 2, W - kPad - w / 2));
    lay.x_label =
        text_item(s, {cx, f.B + kTickLen + 4 + kTickSize + 8 + kCap * size + 1}, size, TextAnchor::Middle, "x-label");
  }
  if (!fig.y_label.empty()) {
    const auto [s, size] = fitted(with_factor(fig.y_label, lay.y), kLabelSize, false, H - 2 * kPad);
    const double w = text_width(s, size);
    const double cy = std::clamp((f.T + f.B) / 2, kPad + w / 2, std::max(kPad + w / 2, H - kPad - w / 2));
    lay.y_label = text_item(s, {kPad + kLabelInset * size, cy}, size, TextAnchor::Middle, "y-label");
    lay.y_label.rotated = true;
  }
  if (lay.empty) {
    lay.note = text_item("no data", {(f.L + f.R) / 2, (f.T + f.B) / 2 + 0.5 * kCap * kLabelSize}, kLabelSize,
                         TextAnchor::Middle, "note");
    lay.note.color = kNote;
  }
}

bool has_finite_point(const Figure& fig) {
  for (const Series& s : fig.lines)
    for (size_t j = 0; j < s.x.size(); ++j)
      if (std::isfinite(s.x[j]) && std::isfinite(s.y[j])) return true;
  return false;
}

}  // namespace

double AxisLayout::to_px(double v) const {
  const double t = log ? (v > 0 ? std::log10(v) : std::nan("")) : v;
  const double t0 = log ? std::log10(lo) : lo, t1 = log ? std::log10(hi) : hi;
  return px_lo + (t - t0) / (t1 - t0) * (px_hi - px_lo);
}

FigureLayout figure_layout(const Figure& fig, double W, double H) {
  const Data d = check_data(fig, W, H);
  Axis xa, ya;
  set_ranges(fig, d, xa, ya);
  Frame f = frame_vertical(fig, W, H, d.where, ya);

  FigureLayout lay;
  lay.width = W;
  lay.height = H;
  lay.paper = kWhite;
  lay.grid = {kGrid, 1, false, 0, true};
  lay.axis = {kAxis, 1, false, 0, true};
  lay.tick_length = kTickLen;
  lay.marker_edge = {kWhite, 0.9, false, 0, false};
  lay.empty = !d.any_hist && !has_finite_point(fig);

  // The legend goes outside on the right only while the plot keeps most of the width.
  Legend g = size_legend(legend_entries(fig, d), f.B - f.T - 2 * kLegendInset, W);
  const bool legend = !g.entries.empty();
  const double plot_w_outside = (W - kPad - g.w - 12) - (f.left_fixed + widest_label(ya) + kTickLen + 5);
  const bool outside_fits = plot_w_outside >= std::max(100.0, 0.45 * W);
  LegendPlacement placement = fig.legend;
  if (legend && placement == LegendPlacement::OutsideRight && !outside_fits) placement = LegendPlacement::TopRight;
  // An outside legend has the figure's height below the title to itself.
  if (legend && placement == LegendPlacement::OutsideRight) g = size_legend(legend_entries(fig, d), H - kPad - f.T, W);
  auto place = [&](bool outside) {
    frame_horizontal(f, W, outside, g.w, d.where, ya, xa);
    lay.plot = {f.L, f.T, f.R, f.B};
    lay.x = axis_layout(xa, f.L, f.R);
    lay.y = axis_layout(ya, f.B, f.T);
    lay_out_data(fig, d, lay);
  };
  place(legend && placement == LegendPlacement::OutsideRight);

  if (legend) {
    LegendLayout& out = lay.legend;
    out.shown = true;
    out.fill = with_alpha(kWhite, 0.9);
    out.edge = {{0.8, 0.8, 0.8, 1}, 1, false, 0, true};
    Point at;
    if (placement == LegendPlacement::OutsideRight) {
      out.placement = placement;
    } else {
      std::tie(out.placement, at) = corner_for(lay, g, placement);
      if (out.placement == LegendPlacement::OutsideRight && outside_fits) {
        g = size_legend(legend_entries(fig, d), H - kPad - f.T, W);
        place(true);
      } else if (out.placement == LegendPlacement::OutsideRight) {
        out.placement = LegendPlacement::TopRight;  // no room outside: top right, over the data
      }
    }
    if (out.placement == LegendPlacement::OutsideRight) at = {f.R + 12, f.T};
    out.box = {at.x, at.y, at.x + g.w, at.y + g.h};
    legend_rows(g, fig.histograms.size() > 1 ? 0.4 : 0.6, out);
  }
  lay_out_text(fig, f, lay);
  return lay;
}

void paint_figure(const FigureLayout& lay, PlotPainter& p) {
  const Box page{0, 0, lay.width, lay.height};
  p.rect(page, &lay.paper, nullptr, "background");
  const Box& a = lay.plot;
  for (const Tick& t : lay.x.ticks)
    if (t.pos > a.left + 0.5 && t.pos < a.right - 0.5) p.line({t.pos, a.top}, {t.pos, a.bottom}, lay.grid, "grid");
  for (const Tick& t : lay.y.ticks)
    if (t.pos > a.top + 0.5 && t.pos < a.bottom - 0.5) p.line({a.left, t.pos}, {a.right, t.pos}, lay.grid, "grid");

  // All bars first, then all outlines, so no outline disappears under another histogram's bars; bands under
  // every line.
  p.clip(&a);
  for (const auto& h : lay.histograms) p.bars(h.bars, h.bar_fill);
  for (const auto& h : lay.histograms) p.path({h.steps}, h.outline, "histogram");
  for (const auto& s : lay.series)
    for (const Band& b : s.bands) p.band(b, s.band_fill);
  for (const auto& s : lay.series) {
    p.path(s.runs, s.line, "series");
    for (const Point& m : s.markers) p.marker(m, lay.marker_radius, s.line.color, lay.marker_edge);
  }
  p.clip(nullptr);

  p.rect(a, nullptr, &lay.axis, "frame");
  for (const Tick& t : lay.x.ticks) {
    p.line({t.pos, a.bottom}, {t.pos, a.bottom + lay.tick_length}, lay.axis, "x-tick");
    p.text(t.label);
  }
  for (double y : lay.y.minor) p.line({a.left - lay.minor_tick_length, y}, {a.left, y}, lay.axis, "y-minor");
  for (const Tick& t : lay.y.ticks) {
    p.line({a.left - lay.tick_length, t.pos}, {a.left, t.pos}, lay.axis, "y-tick");
    p.text(t.label);
  }
  for (const TextItem* t : {&lay.title, &lay.title_continued, &lay.x_label, &lay.y_label, &lay.note})
    if (!t->text.empty()) p.text(*t);

  const LegendLayout& g = lay.legend;
  if (!g.shown) return;
  p.rect(g.box, &g.fill, &g.edge, "legend");
  for (const LegendRow& row : g.rows) {
    if (row.patch) p.rect(row.patch_box, &row.patch_fill, row.patch_edge ? &row.patch_stroke : nullptr, "swatch");
    if (row.line) p.line(row.line_from, row.line_to, row.line_stroke, "swatch");
    if (row.marker) p.marker(row.marker_at, lay.marker_radius, row.line_stroke.color, lay.marker_edge);
    p.text(row.label);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Public tick helpers

std::vector<double> nice_ticks(double lo, double hi, int max_intervals) {
  if (!std::isfinite(lo) || !std::isfinite(hi))
    fail("nice_ticks", "range [" + short_num(lo) + ", " + short_num(hi) + "] is not finite");
  if (lo > hi) std::swap(lo, hi);
  max_intervals = std::max(1, max_intervals);
  if (hi == lo) {
    const double d = lo != 0 ? std::fabs(lo) * 0.1 : 1;
    lo -= d;
    hi += d;
  }
  double step = nice_step(hi - lo, max_intervals);
  for (;;) {
    const double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
    if (k1 - k0 <= max_intervals) {
      std::vector<double> ticks;
      for (double k = k0; k <= k1; k += 1) ticks.push_back(std::fabs(k) < 0.5 ? 0.0 : k * step);
      return ticks;
    }
    step = next_nice(step, true);
  }
}

std::string format_tick(double value, double step) {
  step = std::fabs(step);
  if (!(step > 0) || !std::isfinite(step)) step = std::fabs(value) > 0 ? std::fabs(value) : 1;
  const int step_exp = static_cast<int>(std::floor(std::log10(step) + 1e-9));
  char buf[64];
  const bool scientific = step >= 1e5 || step < 1e-4;
  if (std::fabs(value) < step * 1e-6) value = 0;
  if (value == 0 && scientific) return "0";
  if (scientific) {
    const int exp = static_cast<int>(std::floor(std::log10(std::fabs(value)) + 1e-9));
    const int decimals = std::clamp(exp - step_exp, 0, 12);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value / std::pow(10.0, exp));
    std::string mantissa = buf;
    if (mantissa.find('.') != std::string::npos) {
      while (mantissa.back() == '0') mantissa.pop_back();
      if (mantissa.back() == '.') mantissa.pop_back();
    }
    return mantissa + "e" + std::to_string(exp);
  }
  const int decimals = std::clamp(-step_exp, 0, 12);
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string out = buf;
  if (out[0] == '-' && out.find_first_not_of("-0.") == std::string::npos) out.erase(0, 1);  // no "-0.0"
  return out;
}

}  // namespace ms
