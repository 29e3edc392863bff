#include "plot_view.h"

#include "error.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

namespace ms::gui {
namespace {

// Paper colours of the export, so the screen shows what the SVG/PNG will.
constexpr ImU32 kPaper = IM_COL32(255, 255, 255, 255);
constexpr ImU32 kInk = IM_COL32(34, 34, 34, 255);
constexpr ImU32 kGrid = IM_COL32(0, 0, 0, 30);
constexpr ImU32 kMissing = IM_COL32(128, 128, 128, 255);
constexpr float kPad = 6, kTickLen = 4, kLineWidth = 2, kMarkerRadius = 3.5f;
constexpr float kHoverRadius = 24;  // farther than this from every point and bar: no read-out
constexpr double kInf = std::numeric_limits<double>::infinity();

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_color(const std::string& s, ImU32* out) {
  if (s.empty() || s[0] != '#' || (s.size() != 7 && s.size() != 4)) return false;
  int v[6];
  for (size_t i = 1; i < s.size(); ++i)
    if ((v[i - 1] = hex_digit(s[i])) < 0) return false;
  if (s.size() == 4)
    *out = IM_COL32(v[0] * 17, v[1] * 17, v[2] * 17, 255);
  else
    *out = IM_COL32(v[0] * 16 + v[1], v[2] * 16 + v[3], v[4] * 16 + v[5], 255);
  return true;
}

// A colour that does not parse falls back to the palette, as the export would refuse it.
ImU32 palette_color(const std::string& color, size_t index) {
  const auto& palette = method_palette();
  ImU32 c = kInk;
  if (parse_color(color, &c)) return c;
  parse_color(palette[index % palette.size()], &c);
  return c;
}

ImU32 with_alpha(ImU32 c, float alpha) {
  return (c & ~IM_COL32_A_MASK) | (static_cast<ImU32>(std::clamp(alpha, 0.f, 1.f) * 255.f + 0.5f) << IM_COL32_A_SHIFT);
}

struct Range {
  double lo = kInf, hi = -kInf;
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

Range padded(Range r, double frac) {
  if (r.empty()) return r;
  const double span = r.hi - r.lo;
  if (span <= 0) {
    const double d = r.lo != 0 ? std::fabs(r.lo) * 0.1 : 1;
    return {r.lo - d, r.hi + d};
  }
  return {r.lo - frac * span, r.hi + frac * span};
}

double axis_y(double y, bool log) { return log ? (y > 0 ? std::log10(y) : std::nan("")) : y; }
size_t point_count(const Series& s) { return std::min(s.x.size(), s.y.size()); }
bool has_err(const Series& s) { return !s.y_err.empty() && s.y_err.size() >= point_count(s); }
size_t bin_count(const Histogram& h) { return h.edges.empty() ? 0 : std::min(h.counts.size(), h.edges.size() - 1); }

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// Cuts text to max_width with "..." on a UTF-8 boundary, so labels never leave the reserved rectangle.
std::string fit_text(const std::string& s, float max_width) {
  if (ImGui::CalcTextSize(s.c_str()).x <= max_width) return s;
  const float dots = ImGui::CalcTextSize("...").x;
  if (dots > max_width) return "";
  size_t n = s.size();
  while (n > 0) {
    do --n;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80);
    if (ImGui::CalcTextSize(s.c_str(), s.c_str() + n).x + dots <= max_width) break;
  }
  return s.substr(0, n) + "...";
}

// Text at pos, shifted to stay inside [mn, mx].
void text_in(ImDrawList* dl, ImVec2 pos, const std::string& s, ImU32 col, ImVec2 mn, ImVec2 mx) {
  const std::string t = fit_text(s, mx.x - mn.x);
  const ImVec2 sz = ImGui::CalcTextSize(t.c_str());
  pos.x = std::clamp(pos.x, mn.x, std::max(mn.x, mx.x - sz.x));
  pos.y = std::clamp(pos.y, mn.y, std::max(mn.y, mx.y - sz.y));
  if (!t.empty()) dl->AddText(pos, col, t.c_str());
}

struct Ticks {
  std::vector<double> at;  // axis units (log10 for a log axis)
  std::vector<std::string> labels;
};

// The most ticks (a 1-2-5 step from nice_ticks, inside [lo, hi]) whose labels do not collide.
Ticks linear_ticks(double lo, double hi, float length, bool horizontal, bool log_units) {
  const double span = hi - lo;
  for (int n = std::clamp(static_cast<int>(length / (horizontal ? 85 : 40)), 2, 10);; --n) {
    const double a = log_units ? std::pow(10.0, lo) : lo, b = log_units ? std::pow(10.0, hi) : hi;
    // nice_ticks covers [lo, hi], so up to one interval on each side falls outside: ask for two more.
    const std::vector<double> all = nice_ticks(a, b, n + 2);
    const double step = all.size() > 1 ? all[1] - all[0] : 1;
    Ticks t;
    float widest = 0;
    for (double v : all) {
      const double u = log_units ? (v > 0 ? std::log10(v) : -kInf) : v;
      if (u < lo - 1e-9 * span || u > hi + 1e-9 * span) continue;
      t.at.push_back(u);
      t.labels.push_back(format_tick(v, step));
      widest = std::max(widest, ImGui::CalcTextSize(t.labels.back().c_str()).x);
    }
    double spacing = kInf;
    for (size_t i = 1; i < t.at.size(); ++i) spacing = std::min(spacing, (t.at[i] - t.at[i - 1]) / span * length);
    const double need = horizontal ? widest + 12 : ImGui::GetFontSize() * 1.5;
    if (n <= 2 || spacing >= need) return t;
  }
}

// Decades (every stride-th when there are many), or 1-2-5 within a decade when the range is short.
Ticks log_ticks(double lo, double hi, float length) {
  const int d0 = static_cast<int>(std::ceil(lo - 1e-9)), d1 = static_cast<int>(std::floor(hi + 1e-9));
  const int max_n = std::clamp(static_cast<int>(length / 40), 2, 10);
  Ticks t;
  if (d1 - d0 >= 1) {
    const int stride = std::max(1, (d1 - d0 + max_n - 1) / max_n);
    for (int d = d0; d <= d1; d += stride) t.at.push_back(d);
  } else {
    for (int d = d0 - 1; d <= d1; ++d)
      for (double m : {1.0, 2.0, 5.0}) {
        const double u = std::log10(m) + d;
        if (u >= lo - 1e-9 && u <= hi + 1e-9) t.at.push_back(u);
      }
  }
  if (t.at.size() < 2) return linear_ticks(lo, hi, length, false, true);
  for (double u : t.at) {
    const double v = std::pow(10.0, u);
    t.labels.push_back(format_tick(v, v));
  }
  return t;
}

struct LegendEntry {
  std::string label;
  ImU32 color;
  bool histogram, dashed;
};

// Everything draw_figure needs besides the data: the layout plus ticks and legend placement.
struct Scene {
  PlotLayout layout;
  bool too_small = false;
  Ticks x_ticks, y_ticks;
  std::vector<LegendEntry> legend;
  ImVec2 legend_min, legend_max;
  float title_y = 0, y_label_y = 0, x_label_y = 0;
};

double clamp_coord(double v) { return std::clamp(v, -1e6, 1e6); }

// Liang-Barsky: clips the segment to the rectangle; false when nothing is left.
bool clip_segment(double& ax, double& ay, double& bx, double& by, ImVec2 mn, ImVec2 mx) {
  double t0 = 0, t1 = 1;
  const double dx = bx - ax, dy = by - ay;
  const double p[4] = {-dx, dx, -dy, dy}, q[4] = {ax - mn.x, mx.x - ax, ay - mn.y, mx.y - ay};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
      continue;
    }
    const double r = q[i] / p[i];
    if (p[i] < 0)
      t0 = std::max(t0, r);
    else
      t1 = std::min(t1, r);
    if (t0 > t1) return false;
  }
  bx = ax + t1 * dx;
  by = ay + t1 * dy;
  ax += t0 * dx;
  ay += t0 * dy;
  return true;
}

bool inside(ImVec2 p, ImVec2 mn, ImVec2 mx) { return p.x >= mn.x && p.x <= mx.x && p.y >= mn.y && p.y <= mx.y; }

// Screen polylines of a series, clipped to the axes, split at non-finite points.
std::vector<std::vector<ImVec2>> series_runs(const Series& s, const PlotLayout& L) {
  std::vector<std::vector<ImVec2>> runs;
  bool open = false;
  for (size_t j = 1; j < point_count(s); ++j) {
    const ImVec2 a = L.to_screen(s.x[j - 1], s.y[j - 1]), b = L.to_screen(s.x[j], s.y[j]);
    double ax = a.x, ay = a.y, bx = b.x, by = b.y;
    if (!std::isfinite(ax + ay + bx + by) || !clip_segment(ax, ay, bx, by, L.area_min, L.area_max)) {
      open = false;
      continue;
    }
    const ImVec2 ca(static_cast<float>(ax), static_cast<float>(ay)), cb(static_cast<float>(bx), static_cast<float>(by));
    if (!open || runs.back().back().x != ca.x || runs.back().back().y != ca.y) runs.push_back({ca});
    runs.back().push_back(cb);
    open = true;
  }
  return runs;
}

// Clockwise convex polygon clipped to the rectangle (Sutherland-Hodgman, one edge at a time).
std::vector<ImVec2> clip_polygon(std::vector<ImVec2> poly, ImVec2 mn, ImVec2 mx) {
  for (int edge = 0; edge < 4 && !poly.empty(); ++edge) {
    auto dist = [&](ImVec2 p) {
      switch (edge) {
        case 0:
          return p.x - mn.x;
        case 1:
          return mx.x - p.x;
        case 2:
          return p.y - mn.y;
        default:
          return mx.y - p.y;
      }
    };
    std::vector<ImVec2> out;
    for (size_t i = 0; i < poly.size(); ++i) {
      const ImVec2 a = poly[i], b = poly[(i + 1) % poly.size()];
      const float da = dist(a), db = dist(b);
      if (da >= 0) out.push_back(a);
      if ((da >= 0) != (db >= 0)) {
        const float t = da / (da - db);
        out.push_back(ImVec2(a.x + t * (b.x - a.x), a.y + t * (b.y - a.y)));
      }
    }
    poly = std::move(out);
  }
  return poly;
}

// Whether data would show under a legend box at [mn, mx].
bool legend_covers_data(const Figure& fig, const PlotLayout& L, ImVec2 mn, ImVec2 mx) {
  for (const Series& s : fig.lines) {
    for (size_t j = 0; j < point_count(s); ++j)
      if (inside(L.to_screen(s.x[j], s.y[j]), mn, mx)) return true;
    for (const auto& run : series_runs(s, L))
      for (size_t j = 1; j < run.size(); ++j) {
        double ax = run[j - 1].x, ay = run[j - 1].y, bx = run[j].x, by = run[j].y;
        if (clip_segment(ax, ay, bx, by, mn, mx)) return true;
      }
  }
  for (const Histogram& h : fig.histograms)
    for (size_t j = 0; j < bin_count(h); ++j) {
      const ImVec2 top_left = L.to_screen(h.edges[j], h.counts[j]), right = L.to_screen(h.edges[j + 1], 0);
      if (h.counts[j] > 0 && top_left.x < mx.x && right.x > mn.x && top_left.y < mx.y) return true;
    }
  return false;
}

Scene build_scene(const Figure& fig, ImVec2 top_left, ImVec2 size, bool legend_outside) {
  Scene sc;
  PlotLayout& L = sc.layout;
  L.frame_min = top_left;
  L.frame_max = ImVec2(top_left.x + size.x, top_left.y + size.y);
  L.log_y = fig.log_y;

  // Data ranges as analysis/plot takes them: series padded, histograms from zero.
  Range xs, ys, xh, yh;
  for (const Series& s : fig.lines)
    for (size_t j = 0; j < point_count(s); ++j) {
      const double y = axis_y(s.y[j], fig.log_y);
      if (!std::isfinite(s.x[j]) || !std::isfinite(y)) continue;
      xs.add(s.x[j]);
      ys.add(y);
      if (has_err(s) && std::isfinite(s.y_err[j])) {
        ys.add(axis_y(s.y[j] + std::fabs(s.y_err[j]), fig.log_y));
        ys.add(axis_y(s.y[j] - std::fabs(s.y_err[j]), fig.log_y));
      }
    }
  for (const Histogram& h : fig.histograms)
    for (size_t j = 0; j < bin_count(h); ++j) {
      xh.add(h.edges[j]);
      xh.add(h.edges[j + 1]);
      yh.add(axis_y(h.counts[j], fig.log_y));
    }
  Range xr = padded(xs, 0.03), yr = padded(ys, 0.05);
  xr.add(xh.lo);
  xr.add(xh.hi);
  if (!yh.empty()) {
    Range h = yh;
    if (fig.log_y) {
      h = padded(h, 0.05);
    } else {
      h.add(0);
      h.hi += 0.05 * (h.hi - h.lo);
      if (h.hi <= 0) h.hi = 1;
    }
    yr.add(h.lo);
    yr.add(h.hi);
  } else if (!xh.empty() && yr.empty()) {
    yr = {0, 1};  // every count is zero on a log axis
  }
  L.empty = xr.empty() || yr.empty();
  auto fix = [](Range r, std::optional<double> lo, std::optional<double> hi, bool log) {
    if (lo && std::isfinite(axis_y(*lo, log))) r.lo = axis_y(*lo, log);
    if (hi && std::isfinite(axis_y(*hi, log))) r.hi = axis_y(*hi, log);
    if (!(r.lo < r.hi)) {
      const double d = log ? 1 : std::max(1.0, std::fabs(r.lo) * 0.1);
      if (lo)
        r.hi = r.lo + d;
      else
        r.lo = r.hi - d;
    }
    return r;
  };
  if (!L.empty) {
    xr = fix(xr, fig.x_min, fig.x_max, false);
    yr = fix(yr, fig.y_min, fig.y_max, fig.log_y);
    L.x_lo = xr.lo, L.x_hi = xr.hi, L.y_lo = yr.lo, L.y_hi = yr.hi;
  }

  for (size_t i = 0; i < fig.histograms.size(); ++i)
    if (!fig.histograms[i].label.empty())
      sc.legend.push_back(
          {fig.histograms[i].label, palette_color(fig.histograms[i].color, fig.lines.size() + i), true, false});
  for (size_t i = 0; i < fig.lines.size(); ++i)
    if (!fig.lines[i].label.empty())
      sc.legend.push_back({fig.lines[i].label, palette_color(fig.lines[i].color, i), false, fig.lines[i].dashed});
  if (fig.legend == LegendPlacement::Hidden) sc.legend.clear();

  const float font = ImGui::GetFontSize();
  float top = L.frame_min.y + kPad;
  sc.title_y = top;
  if (!fig.title.empty()) top += font + 4;
  sc.y_label_y = top;
  if (!fig.y_label.empty()) top += font + 2;
  top += font * 0.5f;  // half of the top tick label
  const float bottom = L.frame_max.y - kPad - (fig.x_label.empty() ? 0 : font + 4) - font - kTickLen - 2;
  sc.x_label_y = L.frame_max.y - kPad - font;

  float legend_w = 0, legend_h = 0, widest = 0;
  for (const auto& e : sc.legend) widest = std::max(widest, ImGui::CalcTextSize(e.label.c_str()).x);
  if (!sc.legend.empty()) {
    legend_w = std::min(6 + 20 + 6 + widest + 6, std::max(40.f, size.x * 0.4f));
    legend_h = 8 + sc.legend.size() * (font + 4);
  }

  if (L.empty || bottom - top < 16) {
    L.empty = true;
    sc.too_small = bottom - top < 16;
    L.area_min = ImVec2(L.frame_min.x + kPad, top);
    L.area_max = ImVec2(L.frame_max.x - kPad, std::max(top, bottom));
    return sc;
  }
  sc.y_ticks =
      fig.log_y ? log_ticks(L.y_lo, L.y_hi, bottom - top) : linear_ticks(L.y_lo, L.y_hi, bottom - top, false, false);
  float label_w = 0;
  for (const auto& l : sc.y_ticks.labels) label_w = std::max(label_w, ImGui::CalcTextSize(l.c_str()).x);
  const float left = L.frame_min.x + kPad + label_w + kTickLen + 4;
  // Twice the pad on the right: the hover ring around a point on the edge stays inside the frame.
  const float right = L.frame_max.x - 2 * kPad - (legend_outside ? legend_w : 0);
  if (right - left < 16) {
    L.empty = sc.too_small = true;
    return sc;
  }
  L.area_min = ImVec2(std::round(left), std::round(top));
  L.area_max = ImVec2(std::round(right), std::round(bottom));
  sc.x_ticks = linear_ticks(L.x_lo, L.x_hi, right - left, true, false);

  legend_h = std::min(legend_h, L.area_max.y - L.area_min.y - 12);
  if (legend_h < font + 8) sc.legend.clear();
  if (!sc.legend.empty()) {
    // Corners clear of data, as analysis/plot's Auto does; outside on the right when none is.
    const float m = 6;
    const ImVec2 corners[4] = {{L.area_max.x - m - legend_w, L.area_min.y + m},
                               {L.area_min.x + m, L.area_min.y + m},
                               {L.area_max.x - m - legend_w, L.area_max.y - m - legend_h},
                               {L.area_min.x + m, L.area_max.y - m - legend_h}};
    int pick = 0;
    switch (fig.legend) {
      case LegendPlacement::TopLeft:
        pick = 1;
        break;
      case LegendPlacement::BottomRight:
        pick = 2;
        break;
      case LegendPlacement::BottomLeft:
        pick = 3;
        break;
      case LegendPlacement::Auto:
        pick = -1;
        for (int c = 0; c < 4 && pick < 0; ++c)
          if (!legend_covers_data(fig, L, corners[c], ImVec2(corners[c].x + legend_w, corners[c].y + legend_h)))
            pick = c;
        break;
      default:
        break;
    }
    if (legend_outside) {
      sc.legend_min = ImVec2(L.area_max.x + kPad, L.area_min.y);
    } else if (pick < 0) {
      sc.legend_min = corners[0];
      if (size.x > 3 * legend_w) return build_scene(fig, top_left, size, true);
    } else {
      sc.legend_min = corners[pick];
    }
    sc.legend_max = ImVec2(sc.legend_min.x + legend_w, sc.legend_min.y + legend_h);
  }
  return sc;
}

Scene scene_for(const Figure& fig, ImVec2 top_left, ImVec2 size) {
  const bool outside = fig.legend == LegendPlacement::OutsideRight;
  return build_scene(fig, top_left, size, outside && size.x > 300);
}

void draw_dashed(ImDrawList* dl, const std::vector<ImVec2>& run, ImU32 col) {
  const float on = 7, off = 4;
  float phase = 0;  // distance into the current on+off period, carried across vertices
  for (size_t j = 1; j < run.size(); ++j) {
    const ImVec2 a = run[j - 1], b = run[j];
    const float len = std::hypot(b.x - a.x, b.y - a.y);
    float s = 0;
    while (s < len) {
      const bool drawing = phase < on;
      const float step = std::min(len - s, drawing ? on - phase : on + off - phase);
      if (drawing && len > 0) {
        const float t0 = s / len, t1 = (s + step) / len;
        dl->AddLine(ImVec2(a.x + t0 * (b.x - a.x), a.y + t0 * (b.y - a.y)),
                    ImVec2(a.x + t1 * (b.x - a.x), a.y + t1 * (b.y - a.y)), col, kLineWidth);
      }
      s += step;
      phase = std::fmod(phase + step, on + off);
    }
  }
}

// Bar j of h on screen, clamped to the axes; false when it has no height there.
bool bar_rect(const Histogram& h, size_t j, const PlotLayout& L, ImVec2* mn, ImVec2* mx) {
  const ImVec2 a = L.to_screen(h.edges[j], h.counts[j]);
  const ImVec2 b = L.to_screen(h.edges[j + 1], L.log_y ? std::pow(10.0, L.y_lo) : 0.0);
  if (!std::isfinite(a.x + a.y + b.x + b.y)) return false;
  *mn = ImVec2(std::clamp(a.x, L.area_min.x, L.area_max.x), std::clamp(a.y, L.area_min.y, L.area_max.y));
  *mx = ImVec2(std::clamp(b.x, L.area_min.x, L.area_max.x), std::clamp(b.y, L.area_min.y, L.area_max.y));
  return mx->x > mn->x && mx->y >= mn->y;
}

void draw_data(ImDrawList* dl, const Figure& fig, const PlotLayout& L) {
  for (size_t i = 0; i < fig.histograms.size(); ++i) {
    const Histogram& h = fig.histograms[i];
    const ImU32 col = palette_color(h.color, fig.lines.size() + i);
    for (size_t j = 0; j < bin_count(h); ++j) {
      ImVec2 mn, mx;
      if (!bar_rect(h, j, L, &mn, &mx) || mx.y - mn.y < 0.5f) continue;
      dl->AddRectFilled(mn, mx, with_alpha(col, 0.45f));
      dl->AddRect(mn, mx, with_alpha(col, 0.9f));
    }
  }
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    const ImU32 col = palette_color(s.color, i);
    const size_t n = point_count(s);
    if (has_err(s)) {
      auto band = [&](size_t j, double sign) {
        double y = s.y[j] + sign * std::fabs(s.y_err[j]);
        if (L.log_y && !(y > 0)) y = std::pow(10.0, L.y_lo);  // the lower edge runs off a log axis
        return L.to_screen(s.x[j], y);
      };
      for (size_t j = 0; j < n; ++j) {
        if (!std::isfinite(s.y_err[j])) continue;
        const bool next = j + 1 < n && std::isfinite(s.y_err[j + 1]);
        const bool prev = j > 0 && std::isfinite(s.y_err[j - 1]);
        if (next) {
          std::vector<ImVec2> quad = {band(j, 1), band(j + 1, 1), band(j + 1, -1), band(j, -1)};
          bool finite = true;
          for (auto& p : quad) {
            finite = finite && std::isfinite(p.x + p.y);
            p = ImVec2(static_cast<float>(clamp_coord(p.x)), static_cast<float>(clamp_coord(p.y)));
          }
          quad = finite ? clip_polygon(quad, L.area_min, L.area_max) : std::vector<ImVec2>{};
          if (quad.size() >= 3)
            dl->AddConvexPolyFilled(quad.data(), static_cast<int>(quad.size()), with_alpha(col, 0.2f));
        } else if (!prev) {  // an isolated point: an error bar instead of a band
          double ax = band(j, 1).x, ay = band(j, 1).y, bx = band(j, -1).x, by = band(j, -1).y;
          if (std::isfinite(ax + ay + bx + by) && clip_segment(ax, ay, bx, by, L.area_min, L.area_max))
            dl->AddLine(ImVec2(ax, ay), ImVec2(bx, by), with_alpha(col, 0.6f), kLineWidth);
        }
      }
    }
    for (const auto& run : series_runs(s, L)) {
      if (s.dashed)
        draw_dashed(dl, run, col);
      else
        dl->AddPolyline(run.data(), static_cast<int>(run.size()), col, 0, kLineWidth);
    }
    for (size_t j = 0; j < n; ++j) {
      const ImVec2 p = L.to_screen(s.x[j], s.y[j]);
      if (!std::isfinite(p.x + p.y) || !inside(p, L.area_min, L.area_max)) continue;
      // Without markers a point with no finite neighbour would be invisible.
      const bool isolated = (j == 0 || !std::isfinite(L.to_screen(s.x[j - 1], s.y[j - 1]).y)) &&
                            (j + 1 >= n || !std::isfinite(L.to_screen(s.x[j + 1], s.y[j + 1]).y));
      if (!s.markers && !isolated) continue;
      dl->AddCircleFilled(p, kMarkerRadius, col, 12);
      dl->AddCircle(p, kMarkerRadius + 0.5f, kPaper, 12, 1);  // the export's white rim, so markers separate
    }
  }
}

void draw_axes(ImDrawList* dl, const Figure& fig, const Scene& sc) {
  const PlotLayout& L = sc.layout;
  const float font = ImGui::GetFontSize();
  for (size_t k = 0; k < sc.y_ticks.at.size(); ++k) {
    const float y = std::round(L.to_screen(L.x_lo, L.log_y ? std::pow(10.0, sc.y_ticks.at[k]) : sc.y_ticks.at[k]).y);
    if (!(y >= L.area_min.y - 0.5f && y <= L.area_max.y + 0.5f)) continue;
    dl->AddLine(ImVec2(L.area_min.x, y), ImVec2(L.area_max.x, y), kGrid);
    dl->AddLine(ImVec2(L.area_min.x - kTickLen, y), ImVec2(L.area_min.x, y), kInk);
    const std::string& t = sc.y_ticks.labels[k];
    const float w = ImGui::CalcTextSize(t.c_str()).x;
    text_in(dl, ImVec2(L.area_min.x - kTickLen - 3 - w, y - font * 0.5f), t, kInk, L.frame_min, L.frame_max);
  }
  for (size_t k = 0; k < sc.x_ticks.at.size(); ++k) {
    const float x = std::round(L.to_screen(sc.x_ticks.at[k], L.log_y ? 1.0 : 0.0).x);
    if (!(x >= L.area_min.x - 0.5f && x <= L.area_max.x + 0.5f)) continue;
    dl->AddLine(ImVec2(x, L.area_min.y), ImVec2(x, L.area_max.y), kGrid);
    dl->AddLine(ImVec2(x, L.area_max.y), ImVec2(x, L.area_max.y + kTickLen), kInk);
    const std::string& t = sc.x_ticks.labels[k];
    const float w = ImGui::CalcTextSize(t.c_str()).x;
    text_in(dl, ImVec2(x - w * 0.5f, L.area_max.y + kTickLen + 2), t, kInk, L.frame_min, L.frame_max);
  }
  if (!fig.x_label.empty()) {
    const float w = ImGui::CalcTextSize(fig.x_label.c_str()).x;
    text_in(dl, ImVec2((L.area_min.x + L.area_max.x - w) * 0.5f, sc.x_label_y), fig.x_label, kInk, L.frame_min,
            L.frame_max);
  }
  // ImGui cannot rotate text: the y label reads horizontally above the axis.
  if (!fig.y_label.empty())
    text_in(dl, ImVec2(L.frame_min.x + kPad, sc.y_label_y), fig.y_label, kInk, L.frame_min, L.frame_max);
}

void draw_legend(ImDrawList* dl, const Scene& sc) {
  if (sc.legend.empty()) return;
  const float font = ImGui::GetFontSize();
  dl->AddRectFilled(sc.legend_min, sc.legend_max, IM_COL32(255, 255, 255, 225));
  dl->AddRect(sc.legend_min, sc.legend_max, IM_COL32(0, 0, 0, 60));
  float y = sc.legend_min.y + 4;
  for (const auto& e : sc.legend) {
    if (y + font > sc.legend_max.y) break;  // rows beyond a legend taller than the axes are left out
    const float x = sc.legend_min.x + 6, mid = y + font * 0.5f;
    if (e.histogram)
      dl->AddRectFilled(ImVec2(x + 4, y + 1), ImVec2(x + 16, y + font - 1), with_alpha(e.color, 0.6f));
    else if (e.dashed)
      draw_dashed(dl, {ImVec2(x, mid), ImVec2(x + 20, mid)}, e.color);
    else
      dl->AddLine(ImVec2(x, mid), ImVec2(x + 20, mid), e.color, kLineWidth);
    text_in(dl, ImVec2(x + 26, y), e.label, kInk, ImVec2(x + 26, sc.legend_min.y),
            ImVec2(sc.legend_max.x - 4, sc.legend_max.y));
    y += font + 4;
  }
}

// Nearest line point (or bar under / near the mouse) within kHoverRadius pixels.
PlotHover find_hover(const Figure& fig, const PlotLayout& L, ImVec2 mouse) {
  PlotHover best;
  double best_d = kHoverRadius;
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    for (size_t j = 0; j < point_count(s); ++j) {
      const ImVec2 p = L.to_screen(s.x[j], s.y[j]);
      if (!std::isfinite(p.x + p.y) || !inside(p, L.area_min, L.area_max)) continue;
      const double d = std::hypot(p.x - mouse.x, p.y - mouse.y);
      if (d > best_d) continue;
      best_d = d;
      best = PlotHover{true, static_cast<int>(i), -1, static_cast<int>(j), s.x[j], s.y[j], s.x[j], {}};
    }
  }
  for (size_t i = 0; i < fig.histograms.size(); ++i) {
    const Histogram& h = fig.histograms[i];
    for (size_t j = 0; j < bin_count(h); ++j) {
      ImVec2 mn, mx;
      if (!bar_rect(h, j, L, &mn, &mx)) continue;
      const double dx = std::max({mn.x - mouse.x, 0.f, mouse.x - mx.x}),
                   dy = std::max({mn.y - mouse.y, 0.f, mouse.y - mx.y});
      const double d = std::hypot(dx, dy) + 6;  // a line point close by wins over the bar it sits on
      if (d >= best_d) continue;
      best_d = d;
      best = PlotHover{true, -1, static_cast<int>(i), static_cast<int>(j), h.edges[j], h.counts[j], h.edges[j + 1], {}};
    }
  }
  if (best.series >= 0) {
    const Series& s = fig.lines[best.series];
    best.text = (s.label.empty() ? "series " + std::to_string(best.series) : s.label) + ": x = " + fmt(best.x) +
                ", y = " + fmt(best.y);
    if (has_err(s) && std::isfinite(s.y_err[best.index]))
      best.text += " \xC2\xB1 " + fmt(std::fabs(s.y_err[best.index]));
  } else if (best.histogram >= 0) {
    const Histogram& h = fig.histograms[best.histogram];
    best.text = (h.label.empty() ? "histogram " + std::to_string(best.histogram) : h.label) + ": bin [" + fmt(best.x) +
                ", " + fmt(best.x_hi) + "): " + fmt(best.y);
  }
  return best;
}

ImVec2 resolve_size(ImVec2 size) {
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (size.x <= 0) size.x = std::max(1.f, avail.x + size.x);
  if (size.y <= 0) size.y = std::max(1.f, avail.y + size.y);
  return size;
}

std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return std::string(buf, r.ptr);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Colour-bar ticks in value units; a zero span gets one label, drawn mid-bar.
Ticks colorbar_ticks(float vmin, float vmax) {
  Ticks t;
  if (!(vmax > vmin)) {
    t.at.push_back(vmin);
    t.labels.push_back(fmt(vmin));
    return t;
  }
  const std::vector<double> all = nice_ticks(vmin, vmax, 5);
  const double step = all.size() > 1 ? all[1] - all[0] : 1, eps = 1e-6 * (vmax - vmin);
  for (double v : all)
    if (v >= vmin - eps && v <= vmax + eps) {
      t.at.push_back(v);
      t.labels.push_back(format_tick(v, step));
    }
  return t;
}

}  // namespace

ImVec2 PlotLayout::to_screen(double x, double y) const {
  const double yy = axis_y(y, log_y);
  const double fx = (x - x_lo) / (x_hi - x_lo), fy = (yy - y_lo) / (y_hi - y_lo);
  const double sx = area_min.x + fx * (area_max.x - area_min.x), sy = area_max.y - fy * (area_max.y - area_min.y);
  if (!std::isfinite(sx) || !std::isfinite(sy)) return ImVec2(NAN, NAN);
  return ImVec2(static_cast<float>(clamp_coord(sx)), static_cast<float>(clamp_coord(sy)));
}

PlotLayout layout_figure(const Figure& fig, ImVec2 top_left, ImVec2 size) {
  return scene_for(fig, top_left, size).layout;
}

bool draw_figure(const char* id, const Figure& fig, ImVec2 size, PlotHover* hover) {
  size = resolve_size(size);
  ImGui::InvisibleButton(id, size);
  const bool hovered = ImGui::IsItemHovered();
  const Scene sc = scene_for(fig, ImGui::GetItemRectMin(), size);
  const PlotLayout& L = sc.layout;
  if (hover) *hover = PlotHover{};
  if (!ImGui::IsItemVisible()) return hovered;

  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->PushClipRect(L.frame_min, L.frame_max, true);
  dl->AddRectFilled(L.frame_min, L.frame_max, kPaper);
  if (!fig.title.empty()) {
    const float w = ImGui::CalcTextSize(fig.title.c_str()).x;
    text_in(dl, ImVec2((L.frame_min.x + L.frame_max.x - w) * 0.5f, sc.title_y), fig.title, kInk, L.frame_min,
            L.frame_max);
  }
  if (L.empty) {
    const std::string msg = sc.too_small ? "too small" : "no data";
    const ImVec2 sz = ImGui::CalcTextSize(msg.c_str());
    text_in(dl, ImVec2((L.frame_min.x + L.frame_max.x - sz.x) * 0.5f, (L.frame_min.y + L.frame_max.y - sz.y) * 0.5f),
            msg, kMissing, L.frame_min, L.frame_max);
    dl->PopClipRect();
    return hovered;
  }
  draw_axes(dl, fig, sc);
  dl->PushClipRect(L.area_min, L.area_max, true);
  draw_data(dl, fig, L);
  dl->PopClipRect();
  dl->AddRect(L.area_min, L.area_max, kInk);
  draw_legend(dl, sc);

  const ImVec2 mouse = ImGui::GetIO().MousePos;
  if (hovered && inside(mouse, L.area_min, L.area_max)) {
    const PlotHover h = find_hover(fig, L, mouse);
    if (h.active) {
      if (h.series >= 0) {
        const ImVec2 p = L.to_screen(h.x, h.y);
        dl->AddCircle(p, kMarkerRadius + 3, kInk, 16, 1.5f);
      } else {
        ImVec2 mn, mx;
        bar_rect(fig.histograms[h.histogram], h.index, L, &mn, &mx);
        dl->AddRect(mn, mx, kInk, 0, 0, 2);
      }
      ImGui::SetTooltip("%s", h.text.c_str());
      if (hover) *hover = h;
    }
  }
  dl->PopClipRect();
  return hovered;
}

ImU32 heatmap_color(float t) {
  if (std::isnan(t)) return kMissing;
  // Dark violet through blue and teal to green and yellow: lightness rises monotonically, as in viridis.
  static const float anchors[][3] = {{68, 1, 84},    {65, 68, 135},  {42, 120, 142},
                                     {34, 168, 132}, {122, 209, 81}, {253, 231, 37}};
  constexpr int n = sizeof anchors / sizeof anchors[0];
  const float u = std::clamp(t, 0.f, 1.f) * (n - 1);
  const int k = std::min(static_cast<int>(u), n - 2);
  const float f = u - k;
  auto mix = [&](int c) { return static_cast<int>(anchors[k][c] + f * (anchors[k + 1][c] - anchors[k][c]) + 0.5f); };
  return IM_COL32(mix(0), mix(1), mix(2), 255);
}

HeatmapLayout layout_heatmap(int rows, int cols, float vmin, float vmax, ImVec2 top_left, ImVec2 size) {
  HeatmapLayout H;
  const float font = ImGui::GetFontSize(), bar_w = 14;
  float label_w = 0;
  if (std::isfinite(vmin) && std::isfinite(vmax))
    for (const auto& l : colorbar_ticks(vmin, vmax).labels)
      label_w = std::max(label_w, ImGui::CalcTextSize(l.c_str()).x);
  const float avail_w = size.x - 2 * kPad - 10 - bar_w - kTickLen - 3 - label_w, avail_h = size.y - 2 * kPad;
  if (rows <= 0 || cols <= 0 || avail_w <= 0 || avail_h <= 0) return H;
  H.cell = std::min(avail_w / cols, avail_h / rows);
  if (H.cell >= 2) H.cell = std::floor(H.cell);
  H.grid_min = ImVec2(top_left.x + kPad, top_left.y + kPad);
  H.grid_max = ImVec2(H.grid_min.x + H.cell * cols, H.grid_min.y + H.cell * rows);
  H.bar_min = ImVec2(H.grid_max.x + 10, H.grid_min.y + font + 4 + font * 0.5f);
  H.bar_max = ImVec2(H.bar_min.x + bar_w, std::max(H.bar_min.y + 8, H.grid_max.y - font * 0.5f));
  return H;
}

ImVec2 HeatmapLayout::cell_center(int row, int col) const {
  return ImVec2(grid_min.x + (col + 0.5f) * cell, grid_min.y + (row + 0.5f) * cell);
}

void draw_heatmap(const char* id, const std::vector<float>& values, int rows, int cols, float vmin, float vmax,
                  ImVec2 size, const char* colorbar_label, int* hovered_cell) {
  size = resolve_size(size);
  if (hovered_cell) *hovered_cell = -1;
  ImGui::InvisibleButton(id, size);
  const bool hovered = ImGui::IsItemHovered();
  const ImVec2 fmin = ImGui::GetItemRectMin(), fmax = ImGui::GetItemRectMax();
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->PushClipRect(fmin, fmax, true);
  dl->AddRectFilled(fmin, fmax, kPaper);
  const bool valid = rows > 0 && cols > 0 && values.size() == static_cast<size_t>(rows) * cols;
  if (!std::isfinite(vmin) || !std::isfinite(vmax)) {
    Range r;
    for (float v : values) r.add(v);
    vmin = r.empty() ? 0.f : static_cast<float>(r.lo);
    vmax = r.empty() ? 1.f : static_cast<float>(r.hi);
  }
  if (vmin > vmax) std::swap(vmin, vmax);
  const HeatmapLayout H = layout_heatmap(rows, cols, vmin, vmax, fmin, size);
  if (!valid || H.cell <= 0) {
    const std::string msg = valid ? "too small" : "no data";
    text_in(dl, ImVec2(fmin.x + kPad, fmin.y + kPad), msg, kMissing, fmin, fmax);
    dl->PopClipRect();
    return;
  }
  const float span = vmax - vmin;
  auto t_of = [&](float v) { return std::isnan(v) ? NAN : span > 0 ? (v - vmin) / span : 0.5f; };
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const ImVec2 a(H.grid_min.x + c * H.cell, H.grid_min.y + r * H.cell);
      dl->AddRectFilled(a, ImVec2(a.x + H.cell, a.y + H.cell),
                        heatmap_color(t_of(values[static_cast<size_t>(r) * cols + c])));
    }

  // Colour bar, top = vmax, as strips so the gradient follows every anchor.
  const int strips = 32;
  const float bh = H.bar_max.y - H.bar_min.y;
  for (int k = 0; k < strips; ++k) {
    const float y0 = H.bar_min.y + bh * k / strips, y1 = H.bar_min.y + bh * (k + 1) / strips;
    const ImU32 top = heatmap_color(1 - static_cast<float>(k) / strips),
                bot = heatmap_color(1 - static_cast<float>(k + 1) / strips);
    dl->AddRectFilledMultiColor(ImVec2(H.bar_min.x, y0), ImVec2(H.bar_max.x, y1), top, top, bot, bot);
  }
  dl->AddRect(H.bar_min, H.bar_max, kInk);
  const float font = ImGui::GetFontSize();
  const Ticks ticks = colorbar_ticks(vmin, vmax);
  for (size_t k = 0; k < ticks.at.size(); ++k) {
    const float f = span > 0 ? static_cast<float>((ticks.at[k] - vmin) / span) : 0.5f;
    const float y = std::round(H.bar_max.y - f * bh);
    dl->AddLine(ImVec2(H.bar_max.x, y), ImVec2(H.bar_max.x + kTickLen, y), kInk);
    text_in(dl, ImVec2(H.bar_max.x + kTickLen + 3, y - font * 0.5f), ticks.labels[k], kInk, fmin, fmax);
  }
  if (colorbar_label && *colorbar_label)
    text_in(dl, ImVec2(H.bar_min.x, H.grid_min.y), colorbar_label, kInk, ImVec2(H.bar_min.x, fmin.y), fmax);

  const ImVec2 mouse = ImGui::GetIO().MousePos;
  if (hovered && mouse.x >= H.grid_min.x && mouse.x < H.grid_max.x && mouse.y >= H.grid_min.y &&
      mouse.y < H.grid_max.y) {
    const int c = std::min(cols - 1, static_cast<int>((mouse.x - H.grid_min.x) / H.cell));
    const int r = std::min(rows - 1, static_cast<int>((mouse.y - H.grid_min.y) / H.cell));
    const ImVec2 a(H.grid_min.x + c * H.cell, H.grid_min.y + r * H.cell);
    dl->AddRect(a, ImVec2(a.x + H.cell, a.y + H.cell), IM_COL32(255, 255, 255, 255), 0, 0, 2);
    const float v = values[static_cast<size_t>(r) * cols + c];
    ImGui::SetTooltip("row %d, col %d: %s", r, c, std::isnan(v) ? "nan" : fmt(v).c_str());
    if (hovered_cell) *hovered_cell = r * cols + c;
  }
  dl->PopClipRect();
}

std::string figure_csv(const Figure& fig) {
  std::string out = "series,label,x,y,y_err\n";
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    const std::string head = std::to_string(i) + "," + csv_field(s.label) + ",";
    for (size_t j = 0; j < point_count(s); ++j)
      out += head + csv_number(s.x[j]) + "," + csv_number(s.y[j]) + "," +
             (has_err(s) ? csv_number(s.y_err[j]) : std::string()) + "\n";
  }
  if (fig.histograms.empty()) return out;
  out += "\nhistogram,label,bin_lo,bin_hi,count\n";
  for (size_t i = 0; i < fig.histograms.size(); ++i) {
    const Histogram& h = fig.histograms[i];
    const std::string head = std::to_string(i) + "," + csv_field(h.label) + ",";
    for (size_t j = 0; j < bin_count(h); ++j)
      out += head + csv_number(h.edges[j]) + "," + csv_number(h.edges[j + 1]) + "," + csv_number(h.counts[j]) + "\n";
  }
  return out;
}

void export_figure(const Figure& fig, const std::string& path_without_extension) {
  save_figure(fig, path_without_extension);
  const std::string path = path_without_extension + ".csv";
  const std::string csv = figure_csv(fig);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, std::string("cannot write CSV: ") + std::strerror(errno));
  out.write(csv.data(), static_cast<std::streamsize>(csv.size()));
  out.close();
  if (!out) fail(path, "cannot write CSV");
}

void figure_context_menu(const char* id, const Figure& fig, const std::string& default_path_prefix,
                         std::string* status_message) {
  if (!ImGui::BeginPopupContextItem(id)) return;
  ImGui::TextDisabled("%s.{svg,png,csv}", default_path_prefix.c_str());
  if (ImGui::MenuItem("Export SVG+PNG+CSV")) {
    std::string status;
    try {
      export_figure(fig, default_path_prefix);
      status = "wrote " + default_path_prefix + ".svg, .png, .csv";
    } catch (const std::exception& e) {
      status = one_line(e);
    }
    if (status_message) *status_message = status;
  }
  if (ImGui::MenuItem("Copy data as CSV")) ImGui::SetClipboardText(figure_csv(fig).c_str());
  ImGui::EndPopup();
}

}  // namespace ms::gui
