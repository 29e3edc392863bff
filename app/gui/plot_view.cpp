#include "plot_view.h"

#include "error.h"

#include <algorithm>
#include <cerrno>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <unordered_map>

namespace ms::gui {
namespace {

// Paper colours of the export, so the screen shows what the SVG/PNG/PDF will.
constexpr ImU32 kPaper = IM_COL32(255, 255, 255, 255);
constexpr ImU32 kInk = IM_COL32(34, 34, 34, 255);
constexpr ImU32 kMissing = IM_COL32(128, 128, 128, 255);
constexpr float kPad = 6, kTickLen = 4;
constexpr float kHoverRadius = 24;  // farther than this from every point and bar: no read-out
constexpr double kInf = std::numeric_limits<double>::infinity();

ImU32 color_u32(const Rgba& c) {
  auto byte = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
  return IM_COL32(byte(c.r), byte(c.g), byte(c.b), byte(c.a));
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
  std::vector<double> at;
  std::vector<std::string> labels;
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

// A line of the layout's dash pattern (6 on, 6 off), the phase carried across vertices as in SVG and Cairo.
void draw_dashed(ImDrawList* dl, const std::vector<ImVec2>& run, ImU32 col, float width, float offset) {
  const float on = 6, off = 6;
  float phase = std::fmod(offset, on + off);
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
                    ImVec2(a.x + t1 * (b.x - a.x), a.y + t1 * (b.y - a.y)), col, width);
      }
      s += step;
      phase = std::fmod(phase + step, on + off);
    }
  }
}

// The layout drawn with ImDrawList at `origin` (the figure's top left on screen). Data is clipped by geometry,
// not by a clip rectangle, so no vertex leaves the plot area; text is clipped to the frame.
class ImDrawPainter final : public PlotPainter {
 public:
  ImDrawPainter(ImDrawList* dl, ImVec2 frame_min, ImVec2 frame_max, PlotDrawing* record)
      : dl_(dl), o_(frame_min), frame_max_(frame_max), record_(record) {}

  void clip(const Box* area) override {
    clipping_ = area != nullptr;
    if (area) clip_min_ = at(Point{area->left, area->top}), clip_max_ = at(Point{area->right, area->bottom});
  }

  void line(Point a, Point b, const Stroke& s, const char* role) override {
    ImVec2 p = at(a), q = at(b);
    if (record_) record_->lines.push_back({role, p, q});
    if (s.crisp && p.x == q.x) p.x = q.x = snapped(p.x, s.width);
    if (s.crisp && p.y == q.y) p.y = q.y = snapped(p.y, s.width);
    stroke({p, q}, s);
  }

  void path(const std::vector<std::vector<Point>>& runs, const Stroke& s, const char*) override {
    for (const auto& run : runs) {
      if (run.size() == 1) {
        const ImVec2 p = at(run[0]);
        if (!clipping_ || inside(p, clip_min_, clip_max_))
          dl_->AddCircleFilled(p, static_cast<float>(s.width) / 2, color_u32(s.color), 12);
        continue;
      }
      std::vector<ImVec2> piece;
      for (size_t k = 1; k < run.size(); ++k) {
        const ImVec2 a = at(run[k - 1]), b = at(run[k]);
        double ax = a.x, ay = a.y, bx = b.x, by = b.y;
        if (clipping_ && !clip_segment(ax, ay, bx, by, clip_min_, clip_max_)) {
          stroke(piece, s);
          piece.clear();
          continue;
        }
        const ImVec2 ca(static_cast<float>(ax), static_cast<float>(ay)),
            cb(static_cast<float>(bx), static_cast<float>(by));
        if (piece.empty() || piece.back().x != ca.x || piece.back().y != ca.y) {
          stroke(piece, s);
          piece = {ca};
        }
        piece.push_back(cb);
      }
      stroke(piece, s);
    }
  }

  void band(const Band& b, const Rgba& fill) override {
    // ImGui fills convex polygons only: one quad per segment, each clipped.
    for (size_t k = 0; k + 1 < b.upper.size(); ++k) {
      std::vector<ImVec2> quad = {at(b.upper[k]), at(b.upper[k + 1]), at(b.lower[k + 1]), at(b.lower[k])};
      if (clipping_) quad = clip_polygon(quad, clip_min_, clip_max_);
      if (quad.size() >= 3) dl_->AddConvexPolyFilled(quad.data(), static_cast<int>(quad.size()), color_u32(fill));
    }
  }

  void bars(const std::vector<Box>& boxes, const Rgba& fill) override {
    for (const Box& r : boxes) {
      ImVec2 mn = at(Point{r.left, r.top}), mx = at(Point{r.right, r.bottom});
      if (clipping_) mn = clamped(mn), mx = clamped(mx);
      if (mx.x > mn.x && mx.y > mn.y) dl_->AddRectFilled(mn, mx, color_u32(fill));
    }
  }

  void rect(const Box& r, const Rgba* fill, const Stroke* edge, const char* role) override {
    const ImVec2 mn = at(Point{r.left, r.top}), mx = at(Point{r.right, r.bottom});
    if (record_) record_->rects.push_back({role, mn, mx});
    if (fill) dl_->AddRectFilled(mn, mx, color_u32(*fill));
    // AddRect strokes half a pixel inside its corners: from there, the edges fall where Cairo snaps them.
    if (edge)
      dl_->AddRect(ImVec2(std::floor(mn.x), std::floor(mn.y)), ImVec2(std::floor(mx.x) + 1, std::floor(mx.y) + 1),
                   color_u32(edge->color), 0, 0, static_cast<float>(edge->width));
  }

  void marker(Point c, double radius, const Rgba& fill, const Stroke& edge) override {
    const ImVec2 p = at(c);
    if (clipping_ && !inside(p, clip_min_, clip_max_)) return;
    dl_->AddCircleFilled(p, static_cast<float>(radius), color_u32(fill), 12);
    dl_->AddCircle(p, static_cast<float>(radius), color_u32(edge.color), 12, static_cast<float>(edge.width));
  }

  void text(const TextItem& t) override {
    if (t.text.empty()) return;
    const ImVec2 pivot = at(t.at);
    if (record_) record_->texts.push_back({t.role, t.text, pivot, t.anchor, t.rotated, static_cast<float>(t.size)});
    // The app's font at the layout's size, placed by the same anchor on the same baseline.
    ImFont* font = ImGui::GetFont();
    const float size = static_cast<float>(t.size);
    const float width = font->CalcTextSizeA(size, FLT_MAX, 0, t.text.c_str()).x;
    const float shift = t.anchor == TextAnchor::Start ? 0 : t.anchor == TextAnchor::Middle ? width / 2 : width;
    const ImVec2 top_left(pivot.x - shift, pivot.y - font->Ascent * size / font->FontSize);
    const ImU32 col = color_u32(t.color);
    if (!t.rotated) {
      const ImVec4 clip(o_.x, o_.y, frame_max_.x, frame_max_.y);
      dl_->AddText(font, size, top_left, col, t.text.c_str(), nullptr, 0, &clip);
      return;
    }
    // ImGui cannot rotate text: lay it out level through the pivot, clipped to the frame's pre-image, then
    // turn its vertices 90° counter-clockwise about the pivot.
    const ImVec4 pre(pivot.x + pivot.y - frame_max_.y, pivot.y + o_.x - pivot.x, pivot.x + pivot.y - o_.y,
                     pivot.y + frame_max_.x - pivot.x);
    dl_->PushClipRect(ImVec2(std::min(pre.x, o_.x), std::min(pre.y, o_.y)),
                      ImVec2(std::max(pre.z, frame_max_.x), std::max(pre.w, frame_max_.y)), false);
    const int first = dl_->VtxBuffer.Size;
    dl_->AddText(font, size, top_left, col, t.text.c_str(), nullptr, 0, &pre);
    for (int i = first; i < dl_->VtxBuffer.Size; ++i) {
      ImVec2& v = dl_->VtxBuffer[i].pos;
      v = ImVec2(pivot.x + (v.y - pivot.y), pivot.y - (v.x - pivot.x));
    }
    dl_->PopClipRect();
  }

 private:
  ImVec2 at(Point p) const {
    return ImVec2(static_cast<float>(o_.x + clamp_coord(p.x)), static_cast<float>(o_.y + clamp_coord(p.y)));
  }
  ImVec2 clamped(ImVec2 p) const {
    return ImVec2(std::clamp(p.x, clip_min_.x, clip_max_.x), std::clamp(p.y, clip_min_.y, clip_max_.y));
  }
  // A rule of odd width on a pixel centre, of even width on a pixel edge: crisp, as Cairo draws it.
  static float snapped(float v, double width) { return std::lround(width) % 2 ? std::floor(v) + 0.5f : std::round(v); }

  void stroke(const std::vector<ImVec2>& pts, const Stroke& s) {
    if (pts.size() < 2) return;
    const ImU32 col = color_u32(s.color);
    const float width = static_cast<float>(s.width);
    if (s.dashed)
      draw_dashed(dl_, pts, col, width, static_cast<float>(s.dash_offset));
    else
      dl_->AddPolyline(pts.data(), static_cast<int>(pts.size()), col, ImDrawFlags_None, width);
  }

  ImDrawList* dl_;
  ImVec2 o_, frame_max_;
  PlotDrawing* record_;
  bool clipping_ = false;
  ImVec2 clip_min_, clip_max_;
};

// Bar j of h on screen, clamped to the axes; false when it has no height there.
bool bar_rect(const Histogram& h, size_t j, const PlotLayout& L, ImVec2* mn, ImVec2* mx) {
  const ImVec2 a = L.to_screen(h.edges[j], h.counts[j]);
  const ImVec2 b = L.to_screen(h.edges[j + 1], L.log_y ? std::pow(10.0, L.y_lo) : 0.0);
  if (!std::isfinite(a.x + a.y + b.x + b.y)) return false;
  *mn = ImVec2(std::clamp(a.x, L.area_min.x, L.area_max.x), std::clamp(a.y, L.area_min.y, L.area_max.y));
  *mx = ImVec2(std::clamp(b.x, L.area_min.x, L.area_max.x), std::clamp(b.y, L.area_min.y, L.area_max.y));
  return mx->x > mn->x && mx->y >= mn->y;
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

// Whole pixels: the layout on screen and the export at the shown size (integer width and height) agree.
ImVec2 resolve_size(ImVec2 size) {
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  if (size.x <= 0) size.x = std::max(1.f, avail.x + size.x);
  if (size.y <= 0) size.y = std::max(1.f, avail.y + size.y);
  return ImVec2(std::max(1.f, std::round(size.x)), std::max(1.f, std::round(size.y)));
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

// A figure's layout at a size, or why there is none.
struct Laid {
  ms::FigureLayout plot;
  std::string error;
};

Laid lay_out(const Figure& fig, ImVec2 size) {
  Laid laid;
  if (size.x < 64 || size.y < 48) {
    laid.error = "too small";
    return laid;
  }
  try {
    laid.plot = figure_layout(fig, size.x, size.y);
  } catch (const std::exception& e) {
    laid.error = one_line(e);
  }
  return laid;
}

// FNV-1a over everything figure_layout reads.
struct Hash {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  }
  template <class T>
  void add(const T& v) {
    bytes(&v, sizeof v);
  }
  void add(const std::string& s) { add(s.size()), bytes(s.data(), s.size()); }
  void add(const std::vector<double>& v) { add(v.size()), bytes(v.data(), v.size() * sizeof(double)); }
  void add(const std::optional<double>& v) { add(v.has_value()), add(v.value_or(0.0)); }
};

uint64_t layout_key(const Figure& f, ImVec2 size) {
  Hash h;
  h.add(size.x), h.add(size.y), h.add(f.title), h.add(f.x_label), h.add(f.y_label), h.add(f.log_y), h.add(f.legend);
  h.add(f.x_min), h.add(f.x_max), h.add(f.y_min), h.add(f.y_max);
  for (const Series& s : f.lines)
    h.add(s.label), h.add(s.x), h.add(s.y), h.add(s.y_err), h.add(s.color), h.add(s.markers), h.add(s.dashed);
  for (const Histogram& g : f.histograms) h.add(g.label), h.add(g.edges), h.add(g.counts), h.add(g.color);
  h.add(f.lines.size()), h.add(f.histograms.size());
  return h.h;
}

// What draw_figure showed under an id: the size, for as_shown, and the layout with the key it was made for, so
// an unchanged plot is laid out once rather than every frame (main thread only, as ImGui is).
struct Shown {
  ImVec2 size;
  bool laid_out = false;
  uint64_t key = 0;
  Laid laid;
};

std::unordered_map<std::string, Shown>& shown_plots() {
  static std::unordered_map<std::string, Shown> plots;
  return plots;
}

// The layout moved to the rectangle at top_left.
PlotLayout placed(const Laid& laid, ImVec2 top_left, ImVec2 size) {
  PlotLayout L;
  L.frame_min = top_left;
  L.frame_max = ImVec2(top_left.x + size.x, top_left.y + size.y);
  L.area_min = ImVec2(top_left.x + kPad, top_left.y + kPad);
  L.area_max = ImVec2(std::max(L.area_min.x, L.frame_max.x - kPad), std::max(L.area_min.y, L.frame_max.y - kPad));
  L.error = laid.error;
  if (!L.error.empty()) return L;
  L.plot = laid.plot;
  const Box& a = L.plot.plot;
  L.area_min = ImVec2(top_left.x + static_cast<float>(a.left), top_left.y + static_cast<float>(a.top));
  L.area_max = ImVec2(top_left.x + static_cast<float>(a.right), top_left.y + static_cast<float>(a.bottom));
  L.x_lo = L.plot.x.lo;
  L.x_hi = L.plot.x.hi;
  L.log_y = L.plot.y.log;
  L.y_lo = L.log_y ? std::log10(L.plot.y.lo) : L.plot.y.lo;
  L.y_hi = L.log_y ? std::log10(L.plot.y.hi) : L.plot.y.hi;
  L.empty = L.plot.empty;
  return L;
}

// `fig` at `size` when the export can lay it out there.
Figure sized(Figure fig, ImVec2 size) {
  const int w = static_cast<int>(std::lround(size.x)), h = static_cast<int>(std::lround(size.y));
  try {
    figure_layout(fig, w, h);
  } catch (const std::exception&) {
    return fig;
  }
  fig.width = w;
  fig.height = h;
  return fig;
}

}  // namespace

ImVec2 PlotLayout::to_screen(double x, double y) const {
  const Point p = plot.to_px(x, y);
  const double sx = frame_min.x + p.x, sy = frame_min.y + p.y;
  if (!std::isfinite(sx) || !std::isfinite(sy)) return ImVec2(NAN, NAN);
  return ImVec2(static_cast<float>(clamp_coord(sx)), static_cast<float>(clamp_coord(sy)));
}

PlotLayout layout_figure(const Figure& fig, ImVec2 top_left, ImVec2 size) {
  return placed(lay_out(fig, size), top_left, size);
}

bool draw_figure(const char* id, const Figure& fig, ImVec2 size, PlotHover* hover, PlotDrawing* drawn) {
  size = resolve_size(size);
  Shown& shown = shown_plots()[id];
  shown.size = size;
  const uint64_t key = layout_key(fig, size);
  if (!shown.laid_out || shown.key != key) shown.laid = lay_out(fig, size), shown.key = key, shown.laid_out = true;
  ImGui::InvisibleButton(id, size);
  const bool hovered = ImGui::IsItemHovered();
  const PlotLayout L = placed(shown.laid, ImGui::GetItemRectMin(), size);
  if (hover) *hover = PlotHover{};
  if (drawn) *drawn = PlotDrawing{};
  if (!ImGui::IsItemVisible()) return hovered;

  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->PushClipRect(L.frame_min, L.frame_max, true);
  if (!L.error.empty()) {
    dl->AddRectFilled(L.frame_min, L.frame_max, kPaper);
    const ImVec4 clip(L.frame_min.x, L.frame_min.y, L.frame_max.x, L.frame_max.y);
    dl->AddText(ImGui::GetFont(), ImGui::GetFontSize(), ImVec2(L.frame_min.x + kPad, L.frame_min.y + kPad), kMissing,
                L.error.c_str(), nullptr, std::max(1.f, size.x - 2 * kPad), &clip);
    dl->PopClipRect();
    return hovered;
  }
  ImDrawPainter painter(dl, L.frame_min, L.frame_max, drawn);
  paint_figure(L.plot, painter);

  const ImVec2 mouse = ImGui::GetIO().MousePos;
  if (hovered && inside(mouse, L.area_min, L.area_max)) {
    const PlotHover h = find_hover(fig, L, mouse);
    if (h.active) {
      if (h.series >= 0) {
        const ImVec2 p = L.to_screen(h.x, h.y);
        dl->AddCircle(p, static_cast<float>(L.plot.marker_radius) + 3, kInk, 16, 1.5f);
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

Figure as_shown(const std::string& id, Figure fig) {
  const auto it = shown_plots().find(id);
  return it == shown_plots().end() ? fig : sized(std::move(fig), it->second.size);
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
  const ImVec2 shown = ImGui::GetItemRectSize();  // the plot's, before the menu becomes the last item
  if (!ImGui::BeginPopupContextItem(id)) return;
  ImGui::TextDisabled("%s.{svg,png,pdf,csv}", default_path_prefix.c_str());
  if (ImGui::MenuItem("Export SVG+PNG+PDF+CSV")) {
    std::string status;
    try {
      export_figure(sized(fig, shown), default_path_prefix);
      status = "wrote " + default_path_prefix + ".svg, .png, .pdf, .csv";
    } catch (const std::exception& e) {
      status = one_line(e);
    }
    if (status_message) *status_message = status;
  }
  if (ImGui::MenuItem("Copy data as CSV")) ImGui::SetClipboardText(figure_csv(fig).c_str());
  ImGui::EndPopup();
}

bool add_ui_font(ImFontAtlas& atlas, float size) {
  // Ranges stay referenced by the atlas until it is built: static storage.
  static const ImWchar kRanges[] = {
      0x0020, 0x00FF,  // Basic Latin, Latin-1 (x, +-, superscripts 1-3, degree)
      0x2010, 0x2027,  // dashes, quotes, bullet, ellipsis
      0x2070, 0x207F,  // superscripts 0, 4-9, minus
      0x2190, 0x2193,  // arrows
      0x2212, 0x2212,  // minus sign
      0x2264, 0x2265,  // less / greater or equal
      0,
  };
  const std::string file = plot_font_file();
  if (file.empty()) return false;
  return atlas.AddFontFromFileTTF(file.c_str(), size, nullptr, kRanges) != nullptr;
}

}  // namespace ms::gui
