// Plots: one layout ("scene" of primitives in figure pixels), two back ends (SVG text, anti-aliased raster).
//
// Raster coverage: strokes and discs by distance to the segment (round joins and caps, union by max), rectangles
// by exact pixel overlap, polygons by signed-area accumulation per scanline; each shape's coverage is then
// composited once with its colour and opacity, so translucent strokes do not darken where segments meet.
#include "plot.h"

#include "error.h"

#include <stb_truetype.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>

namespace ms {

namespace {

// ---------------------------------------------------------------------------------------------------------
// Colours

struct Rgb {
  double r = 0, g = 0, b = 0;  // 0..1, sRGB
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool parse_color(const std::string& s, Rgb* out) {
  if (s.empty() || s[0] != '#') return false;
  int v[6];
  if (s.size() == 7) {
    for (int i = 0; i < 6; ++i)
      if ((v[i] = hex_value(s[i + 1])) < 0) return false;
    *out = {(v[0] * 16 + v[1]) / 255.0, (v[2] * 16 + v[3]) / 255.0, (v[4] * 16 + v[5]) / 255.0};
    return true;
  }
  if (s.size() == 4) {
    for (int i = 0; i < 3; ++i)
      if ((v[i] = hex_value(s[i + 1])) < 0) return false;
    *out = {v[0] * 17 / 255.0, v[1] * 17 / 255.0, v[2] * 17 / 255.0};
    return true;
  }
  return false;
}

std::string hex(const Rgb& c) {
  auto byte = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", byte(c.r), byte(c.g), byte(c.b));
  return buf;
}

// ---------------------------------------------------------------------------------------------------------
// Numbers

// Compact decimal for SVG coordinates: at most 2 decimals, no trailing zeros.
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// Short human form for error messages.
std::string short_num(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
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

// ---------------------------------------------------------------------------------------------------------
// Fonts (stb_truetype)

struct Face {
  std::vector<unsigned char> data;
  stbtt_fontinfo info{};
  double ascent = 0, descent = 0;  // em units, both positive
};

struct Fonts {
  std::shared_ptr<const Face> regular, bold;
  std::string searched;  // where we looked, for the warning
};

std::shared_ptr<const Face> load_face(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  auto face = std::make_shared<Face>();
  face->data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (face->data.size() < 64) return nullptr;
  const int offset = stbtt_GetFontOffsetForIndex(face->data.data(), 0);
  if (offset < 0 || !stbtt_InitFont(&face->info, face->data.data(), offset)) return nullptr;
  int ascent = 0, descent = 0, gap = 0;
  stbtt_GetFontVMetrics(&face->info, &ascent, &descent, &gap);
  const double em = stbtt_ScaleForMappingEmToPixels(&face->info, 1.0f);
  face->ascent = ascent * em;
  face->descent = -descent * em;
  return face;
}

const std::vector<std::string>& default_font_paths() {
  static const std::vector<std::string> paths = {
      "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
      "/usr/share/fonts/TTF/DejaVuSans.ttf",
      "/usr/share/fonts/dejavu/DejaVuSans.ttf",
      "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
      "/usr/local/share/fonts/DejaVuSans.ttf",
      "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
      "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
      "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
      "/System/Library/Fonts/Supplemental/Arial.ttf",
      "/Library/Fonts/Arial.ttf",
  };
  return paths;
}

std::vector<std::string> bold_variants(const std::string& path) {
  std::vector<std::string> out;
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = path.rfind(from);
    if (at != std::string::npos) out.push_back(path.substr(0, at) + to + path.substr(at + from.size()));
  };
  replace("-Regular.ttf", "-Bold.ttf");
  replace(".ttf", "-Bold.ttf");
  replace(".ttf", "Bold.ttf");
  replace(".ttf", " Bold.ttf");
  return out;
}

Fonts resolve_fonts(const std::string& path) {
  Fonts fonts;
  const std::vector<std::string> paths = path.empty() ? default_font_paths() : std::vector<std::string>{path};
  for (const auto& p : paths) {
    fonts.searched += (fonts.searched.empty() ? "" : ", ") + p;
    if (auto face = load_face(p)) {
      fonts.regular = face;
      for (const auto& b : bold_variants(p))
        if ((fonts.bold = load_face(b))) break;
      break;
    }
  }
  if (!fonts.bold) fonts.bold = fonts.regular;
  return fonts;
}

std::mutex g_font_mutex;
bool g_fonts_resolved = false;
Fonts g_fonts;
std::atomic<bool> g_font_warning_given{false};

Fonts current_fonts() {
  std::lock_guard<std::mutex> lock(g_font_mutex);
  if (!g_fonts_resolved) {
    g_fonts = resolve_fonts("");
    g_fonts_resolved = true;
  }
  return g_fonts;
}

std::vector<uint32_t> utf8_codepoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp = 0xFFFD;
    int more = 0;
    if (c < 0x80) {
      cp = c;
    } else if ((c >> 5) == 6) {
      cp = c & 0x1F, more = 1;
    } else if ((c >> 4) == 14) {
      cp = c & 0x0F, more = 2;
    } else if ((c >> 3) == 30) {
      cp = c & 0x07, more = 3;
    }
    for (int k = 0; k < more; ++k) {
      if (i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xC0) == 0x80) {
        cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
      } else {
        cp = 0xFFFD;
        break;
      }
    }
    out.push_back(cp);
  }
  return out;
}

// Advance width in pixels of text at `size` px per em (an estimate without a font).
double text_width(const Face* face, const std::string& text, double size) {
  const auto cps = utf8_codepoints(text);
  if (!face) return 0.6 * size * static_cast<double>(cps.size());
  const double scale = stbtt_ScaleForMappingEmToPixels(&face->info, static_cast<float>(size));
  double width = 0;
  int prev = 0;
  for (uint32_t cp : cps) {
    const int glyph = stbtt_FindGlyphIndex(&face->info, static_cast<int>(cp));
    if (prev) width += scale * stbtt_GetGlyphKernAdvance(&face->info, prev, glyph);
    int advance = 0, lsb = 0;
    stbtt_GetGlyphHMetrics(&face->info, glyph, &advance, &lsb);
    width += scale * advance;
    prev = glyph;
  }
  return width;
}

// Horizontal text coverage: pen starts at column pad + start_fraction, baseline at row `baseline`.
struct TextMask {
  int width = 0, height = 0, baseline = 0, pad = 0;
  std::vector<float> alpha;
};

TextMask text_mask(const Face& face, const std::string& text, double size, double start_fraction) {
  TextMask m;
  const double scale = stbtt_ScaleForMappingEmToPixels(&face.info, static_cast<float>(size));
  m.pad = static_cast<int>(std::ceil(size * 0.3)) + 2;
  m.baseline = static_cast<int>(std::ceil(face.ascent * size)) + 1;
  m.height = m.baseline + static_cast<int>(std::ceil(face.descent * size)) + 1;
  m.width = static_cast<int>(std::ceil(start_fraction + text_width(&face, text, size))) + 2 * m.pad;
  m.alpha.assign(static_cast<size_t>(m.width) * m.height, 0.f);
  std::vector<unsigned char> glyph_bitmap;
  double pen = m.pad + start_fraction;
  int prev = 0;
  for (uint32_t cp : utf8_codepoints(text)) {
    const int glyph = stbtt_FindGlyphIndex(&face.info, static_cast<int>(cp));
    if (prev) pen += scale * stbtt_GetGlyphKernAdvance(&face.info, prev, glyph);
    prev = glyph;
    const double pen_floor = std::floor(pen);
    const float shift = static_cast<float>(pen - pen_floor);
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    const auto s = static_cast<float>(scale);
    stbtt_GetGlyphBitmapBoxSubpixel(&face.info, glyph, s, s, shift, 0.f, &x0, &y0, &x1, &y1);
    const int gw = x1 - x0, gh = y1 - y0;
    if (gw > 0 && gh > 0) {
      glyph_bitmap.assign(static_cast<size_t>(gw) * gh, 0);
      stbtt_MakeGlyphBitmapSubpixel(&face.info, glyph_bitmap.data(), gw, gh, gw, s, s, shift, 0.f, glyph);
      for (int gy = 0; gy < gh; ++gy) {
        const int my = m.baseline + y0 + gy;
        if (my < 0 || my >= m.height) continue;
        for (int gx = 0; gx < gw; ++gx) {
          const int mx = static_cast<int>(pen_floor) + x0 + gx;
          if (mx < 0 || mx >= m.width) continue;
          float& a = m.alpha[static_cast<size_t>(my) * m.width + mx];
          a = std::max(a, glyph_bitmap[static_cast<size_t>(gy) * gw + gx] / 255.f);
        }
      }
    }
    int advance = 0, lsb = 0;
    stbtt_GetGlyphHMetrics(&face.info, glyph, &advance, &lsb);
    pen += scale * advance;
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Scene: what both back ends draw, in figure pixels (y down).

struct Pt {
  double x = 0, y = 0;
};

enum class Kind { Line, Path, Polygon, Bars, Rect, Circle, Text };

struct Prim {
  Kind kind = Kind::Line;
  std::vector<std::vector<Pt>> runs;         // Line: {{a, b}}; Path: runs; Polygon: {outline}; Text: {{at}}
  std::vector<std::array<double, 4>> rects;  // Bars and Rect: x0, y0, x1, y1
  Rgb color;                                 // stroke (Line, Path), fill (others), text colour
  double alpha = 1;
  double width = 1;       // stroke width
  Rgb edge;               // Rect / Circle outline
  double edge_width = 0;  // 0: no outline
  double radius = 0;      // Circle
  bool fill = true;       // Rect
  bool dashed = false, clip = false, snap = false;
  std::string text;
  double size = 0;
  int anchor = 0;  // 0 start, 1 middle, 2 end
  bool rotated = false, bold = false;
  const char* cls = nullptr;
};

struct Scene {
  int width = 0, height = 0;
  double L = 0, T = 0, R = 0, B = 0;  // plot area
  std::vector<Prim> prims;
  std::string clip_id;
  Fonts fonts;
};

constexpr double kPad = 10;
constexpr double kTitleSize = 15;
constexpr double kLabelSize = 13;
constexpr double kTickSize = 11;
constexpr double kLegendSize = 11;
constexpr double kTickLen = 5;
constexpr double kLineWidth = 2;
constexpr double kMarkerRadius = 3.2;
constexpr double kBandAlpha = 0.2;
constexpr double kDash = 6;

const Rgb kText = {0.13, 0.13, 0.13};
const Rgb kAxis = {0.25, 0.25, 0.25};
const Rgb kGrid = {0.898, 0.898, 0.898};
const Rgb kWhite = {1, 1, 1};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  std::vector<std::string> labels;
  std::vector<double> minor;  // unlabelled ticks of a log axis (2..9 x 10^n)
  bool factor_out = false;    // may labels be mantissas with "(×10ⁿ)" added to the axis label?
  int factor_exp = 0;         // n when they are (0: plain labels)
  double t(double v) const { return log ? std::log10(v) : v; }
  double frac(double v) const { return (t(v) - t(lo)) / (t(hi) - t(lo)); }
};

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
void choose_ticks(Axis& axis, double length, bool horizontal, const Face* face) {
  int intervals = std::clamp(static_cast<int>(length / (horizontal ? 85 : 45)), 2, 10);
  for (;; --intervals) {
    if (axis.log)
      log_ticks(axis, intervals);
    else
      linear_ticks(axis, intervals);
    if (intervals <= 1 || axis.ticks.size() < 2) return;
    double widest = 0;
    for (const auto& l : axis.labels) widest = std::max(widest, text_width(face, l, kTickSize));
    const double need = horizontal ? widest + 12 : kTickSize * 1.6;
    double spacing = std::numeric_limits<double>::infinity();
    for (size_t i = 1; i < axis.ticks.size(); ++i)
      spacing = std::min(spacing, (axis.frac(axis.ticks[i]) - axis.frac(axis.ticks[i - 1])) * length);
    if (spacing >= need) return;
  }
}

struct LegendEntry {
  std::string label;
  Rgb color;
  bool histogram = false, dashed = false, markers = false, band = false;
};

// Cells of the plot area that hold data, to keep an inside legend off them.
struct Occupancy {
  double x0 = 0, y0 = 0, cell = 2;
  int nx = 0, ny = 0;
  std::vector<uint8_t> cells;

  Occupancy(double left, double top, double right, double bottom) : x0(left), y0(top) {
    nx = std::max(1, static_cast<int>(std::ceil((right - left) / cell)));
    ny = std::max(1, static_cast<int>(std::ceil((bottom - top) / cell)));
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
  void mark_segment(Pt a, Pt b) {
    const double len = std::hypot(b.x - a.x, b.y - a.y);
    const int n = static_cast<int>(std::min(20000.0, std::ceil(len))) + 1;
    for (int k = 0; k <= n; ++k) mark(a.x + (b.x - a.x) * k / n, a.y + (b.y - a.y) * k / n);
  }
  void mark_rect(double xa, double ya, double xb, double yb) {
    for (double x = std::max(xa, x0); x <= std::min(xb, x0 + nx * cell); x += cell * 0.5) mark_span(x, ya, yb);
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

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
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
  if (data.empty()) data = log ? Range{0, 1} : Range{0, 1};
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

double clamp_coord(double v) { return std::clamp(v, -1e6, 1e6); }

Scene build_scene(const Figure& fig) {
  const std::string where = fig.title.empty() ? std::string("figure") : "figure '" + fig.title + "'";
  if (fig.width < 64 || fig.height < 48 || fig.width > 16384 || fig.height > 16384)
    fail(where,
         "size " + std::to_string(fig.width) + "x" + std::to_string(fig.height) + " is outside 64x48 .. 16384x16384");
  auto check_range_value = [&](const std::optional<double>& v, const char* name) {
    if (v && !std::isfinite(*v)) fail(where, std::string(name) + " is not finite");
  };
  check_range_value(fig.x_min, "x_min");
  check_range_value(fig.x_max, "x_max");
  check_range_value(fig.y_min, "y_min");
  check_range_value(fig.y_max, "y_max");
  if (fig.log_y && fig.y_min && *fig.y_min <= 0)
    fail(where, "log_y needs a positive y_min, got " + short_num(*fig.y_min));
  if (fig.log_y && fig.y_max && *fig.y_max <= 0)
    fail(where, "log_y needs a positive y_max, got " + short_num(*fig.y_max));

  Scene scene;
  scene.width = fig.width;
  scene.height = fig.height;
  scene.fonts = current_fonts();
  const Face* regular = scene.fonts.regular.get();
  const Face* bold = scene.fonts.bold.get();
  const auto& palette = method_palette();

  // Colours and data checks.
  std::vector<Rgb> series_color(fig.lines.size()), hist_color(fig.histograms.size());
  Range xs_series, xs_hist, ys_series, ys_hist;
  bool any_hist = false;
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    const std::string name = s.label.empty() ? "series " + std::to_string(i) : "series '" + s.label + "'";
    const std::string color = s.color.empty() ? palette[i % palette.size()] : s.color;
    if (!parse_color(color, &series_color[i])) fail(where, name + ": colour '" + color + "' is not #rrggbb");
    if (s.x.size() != s.y.size())
      fail(where, name + ": x has " + std::to_string(s.x.size()) + " values, y has " + std::to_string(s.y.size()));
    if (!s.y_err.empty() && s.y_err.size() != s.y.size())
      fail(where,
           name + ": y_err has " + std::to_string(s.y_err.size()) + " values, y has " + std::to_string(s.y.size()));
    for (size_t j = 0; j < s.x.size(); ++j) {
      if (!std::isfinite(s.x[j]) || !std::isfinite(s.y[j])) continue;
      if (fig.log_y && s.y[j] <= 0)
        fail(where, name + ": log_y needs positive y values, got " + short_num(s.y[j]) + " at x=" + short_num(s.x[j]));
      xs_series.add(s.x[j]);
      ys_series.add(fig.log_y ? std::log10(s.y[j]) : s.y[j]);
      if (s.y_err.empty() || !std::isfinite(s.y_err[j])) continue;
      if (s.y_err[j] < 0)
        fail(where, name + ": negative y_err " + short_num(s.y_err[j]) + " at x=" + short_num(s.x[j]));
      const double hi = s.y[j] + s.y_err[j], lo = s.y[j] - s.y_err[j];
      ys_series.add(fig.log_y ? std::log10(hi) : hi);
      if (!fig.log_y || lo > 0) ys_series.add(fig.log_y ? std::log10(lo) : lo);
    }
  }
  for (size_t i = 0; i < fig.histograms.size(); ++i) {
    const Histogram& h = fig.histograms[i];
    const std::string name = h.label.empty() ? "histogram " + std::to_string(i) : "histogram '" + h.label + "'";
    const std::string color = h.color.empty() ? palette[(fig.lines.size() + i) % palette.size()] : h.color;
    if (!parse_color(color, &hist_color[i])) fail(where, name + ": colour '" + color + "' is not #rrggbb");
    if (h.counts.empty()) fail(where, name + ": no bins");
    if (h.edges.size() != h.counts.size() + 1)
      fail(where, name + ": " + std::to_string(h.counts.size()) + " counts need " +
                      std::to_string(h.counts.size() + 1) + " edges, got " + std::to_string(h.edges.size()));
    for (size_t j = 0; j < h.edges.size(); ++j) {
      if (!std::isfinite(h.edges[j])) fail(where, name + ": edge " + std::to_string(j) + " is not finite");
      if (j && !(h.edges[j] > h.edges[j - 1])) fail(where, name + ": edges are not strictly increasing");
    }
    for (size_t j = 0; j < h.counts.size(); ++j) {
      if (!std::isfinite(h.counts[j]) || h.counts[j] < 0)
        fail(where, name + ": count " + short_num(h.counts[j]) + " in bin " + std::to_string(j) +
                        " is not a non-negative number");
      if (h.counts[j] > 0 || !fig.log_y) ys_hist.add(fig.log_y ? std::log10(h.counts[j]) : h.counts[j]);
    }
    xs_hist.add(h.edges.front());
    xs_hist.add(h.edges.back());
    any_hist = true;
  }

  // Axis ranges: series get a margin so markers stay inside; histograms start at zero (linear y).
  Range xr = padded(xs_series, 0.03);
  if (!xs_hist.empty()) {
    xr.add(xs_hist.lo);
    xr.add(xs_hist.hi);
  }
  Range yr = padded(ys_series, 0.05);
  if (!ys_hist.empty()) {
    Range h = ys_hist;
    if (fig.log_y) {
      h = padded(h, 0.05);
    } else {
      h.add(0);
      h.hi = h.hi + 0.05 * (h.hi - h.lo);
      if (h.hi <= 0) h.hi = 1;
    }
    yr.add(h.lo);
    yr.add(h.hi);
  } else if (any_hist && yr.empty() && fig.log_y) {
    yr = {0, 1};  // every count is zero
  }
  Axis xa, ya;
  xa.factor_out = !fig.x_label.empty();
  ya.factor_out = !fig.y_label.empty();
  {
    const Range r = resolve_range(xr, fig.x_min, fig.x_max, false, where, "x");
    xa.lo = r.lo;
    xa.hi = r.hi;
    const Range s = resolve_range(yr, fig.y_min, fig.y_max, fig.log_y, where, "y");
    ya.log = fig.log_y;
    ya.lo = fig.log_y ? std::pow(10.0, s.lo) : s.lo;
    ya.hi = fig.log_y ? std::pow(10.0, s.hi) : s.hi;
  }

  // Legend entries.
  std::vector<LegendEntry> entries;
  for (size_t i = 0; i < fig.histograms.size(); ++i)
    if (!fig.histograms[i].label.empty())
      entries.push_back({fig.histograms[i].label, hist_color[i], true, false, false, false});
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    if (!s.label.empty()) entries.push_back({s.label, series_color[i], false, s.dashed, s.markers, !s.y_err.empty()});
  }
  const bool legend = !entries.empty() && fig.legend != LegendPlacement::Hidden;
  const double row_h = 18, swatch = 26;
  double legend_w = 0, legend_h = 0;
  if (legend) {
    double widest = 0;
    for (const auto& e : entries) widest = std::max(widest, text_width(regular, e.label, kLegendSize));
    legend_w = std::ceil(8 + swatch + 7 + widest + 9);
    legend_h = std::ceil(5 + row_h * entries.size() + 5);
  }

  // Layout; run again with room on the right when the legend goes outside.
  const double W = fig.width, H = fig.height;
  double title_size = kTitleSize;
  if (!fig.title.empty()) {
    const double w = text_width(bold, fig.title, kTitleSize);
    if (w > W - 2 * kPad) title_size = std::max(7.0, kTitleSize * (W - 2 * kPad) / w);
  }
  const double T = std::round(fig.title.empty() ? kPad + 6 : kPad + title_size * 1.0 + 12);
  const double B = std::round(H - (kTickLen + 4 + kTickSize + (fig.x_label.empty() ? 0 : 8 + kLabelSize) + kPad));
  if (B - T < 20) fail(where, "figure height " + std::to_string(fig.height) + " leaves no room for the plot");
  choose_ticks(ya, B - T, false, regular);
  double ytick_w = 0;
  for (const auto& l : ya.labels) ytick_w = std::max(ytick_w, text_width(regular, l, kTickSize));
  const double left_fixed = kPad + (fig.y_label.empty() ? 0 : kLabelSize + 8);

  LegendPlacement placement = fig.legend;
  double L = 0, R = 0;
  auto layout_x = [&](bool outside) {
    L = std::round(left_fixed + ytick_w + kTickLen + 5);
    const double right_edge = outside ? W - kPad - legend_w - 12 : W - kPad - 8;
    R = std::round(right_edge);
    for (int pass = 0; pass < 2; ++pass) {
      if (R - L < 20) fail(where, "figure width " + std::to_string(fig.width) + " leaves no room for the plot");
      choose_ticks(xa, R - L, true, regular);
      if (xa.ticks.empty()) break;
      // Keep the first and last tick labels inside the figure (and off an outside legend).
      const double first_w = text_width(regular, xa.labels.front(), kTickSize);
      const double last_w = text_width(regular, xa.labels.back(), kTickSize);
      const double first_left = L + xa.frac(xa.ticks.front()) * (R - L) - first_w / 2;
      const double last_right = L + xa.frac(xa.ticks.back()) * (R - L) + last_w / 2;
      const double limit = outside ? right_edge + 10 : W - 4;
      bool moved = false;
      if (first_left < 4) L = std::round(L + (4 - first_left)), moved = true;
      if (last_right > limit) R = std::round(R - (last_right - limit)), moved = true;
      if (!moved) break;
    }
  };
  // Outside only while the plot keeps most of the width; otherwise the top-right corner, over the data.
  const bool outside_fits =
      (W - kPad - legend_w - 12) - (left_fixed + ytick_w + kTickLen + 5) >= std::max(100.0, 0.45 * W);
  if (legend && placement == LegendPlacement::OutsideRight && !outside_fits) placement = LegendPlacement::TopRight;
  bool outside = legend && placement == LegendPlacement::OutsideRight;
  layout_x(outside);

  auto X = [&](double v) { return clamp_coord(L + xa.frac(v) * (R - L)); };
  auto Y = [&](double v) { return clamp_coord(B - ya.frac(v) * (B - T)); };

  // Series geometry: runs of finite points (figure pixels) and the band polygons.
  struct SeriesGeometry {
    std::vector<std::vector<Pt>> runs;
    std::vector<std::vector<Pt>> bands;  // closed outlines: upper forward, lower back
  };
  std::vector<SeriesGeometry> geometry(fig.lines.size());
  auto build_geometry = [&]() {
    for (size_t i = 0; i < fig.lines.size(); ++i) {
      const Series& s = fig.lines[i];
      SeriesGeometry g;
      std::vector<Pt> run, upper, lower;
      auto flush_band = [&]() {
        if (upper.size() >= 2) {
          std::vector<Pt> poly(upper);
          poly.insert(poly.end(), lower.rbegin(), lower.rend());
          g.bands.push_back(std::move(poly));
        }
        upper.clear();
        lower.clear();
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
        if (s.y_err.empty()) continue;
        if (!std::isfinite(s.y_err[j])) {
          flush_band();
          continue;
        }
        const double hi = s.y[j] + s.y_err[j], lo = s.y[j] - s.y_err[j];
        upper.push_back({px, Y(hi)});
        lower.push_back({px, (fig.log_y && lo <= 0) ? B + 2 : Y(lo)});
      }
      if (!run.empty()) g.runs.push_back(std::move(run));
      flush_band();
      geometry[i] = std::move(g);
    }
  };
  build_geometry();

  // Legend position.
  double lx = 0, ly = 0;
  if (legend && !outside) {
    const double inset = 8;
    const std::array<std::pair<LegendPlacement, Pt>, 4> corners = {{
        {LegendPlacement::TopRight, {R - inset - legend_w, T + inset}},
        {LegendPlacement::TopLeft, {L + inset, T + inset}},
        {LegendPlacement::BottomRight, {R - inset - legend_w, B - inset - legend_h}},
        {LegendPlacement::BottomLeft, {L + inset, B - inset - legend_h}},
    }};
    const bool fits = legend_w + 2 * inset <= R - L && legend_h + 2 * inset <= B - T;
    if (placement == LegendPlacement::Auto) {
      bool found = false;
      if (fits) {
        Occupancy occ(L, T, R, B);
        for (const auto& g : geometry) {
          for (const auto& run : g.runs) {
            occ.mark(run[0].x, run[0].y);
            for (size_t k = 1; k < run.size(); ++k) occ.mark_segment(run[k - 1], run[k]);
          }
          for (const auto& band : g.bands) {
            const size_t n = band.size() / 2;
            for (size_t k = 0; k + 1 < n; ++k) {
              const Pt u0 = band[k], u1 = band[k + 1], l0 = band[band.size() - 1 - k], l1 = band[band.size() - 2 - k];
              const double len = std::fabs(u1.x - u0.x);
              const int steps = static_cast<int>(std::min(20000.0, std::ceil(len))) + 1;
              for (int q = 0; q <= steps; ++q) {
                const double t = static_cast<double>(q) / steps;
                occ.mark_span(u0.x + (u1.x - u0.x) * t, u0.y + (u1.y - u0.y) * t, l0.y + (l1.y - l0.y) * t);
              }
            }
          }
        }
        for (const auto& h : fig.histograms)
          for (size_t j = 0; j < h.counts.size(); ++j)
            if (h.counts[j] > 0) occ.mark_rect(X(h.edges[j]), Y(h.counts[j]), X(h.edges[j + 1]), B);
        const double margin = 5;
        for (const auto& [where_at, p] : corners) {
          (void)where_at;
          if (occ.clear(p.x - margin, p.y - margin, p.x + legend_w + margin, p.y + legend_h + margin)) {
            lx = p.x;
            ly = p.y;
            found = true;
            break;
          }
        }
      }
      if (!found && outside_fits) outside = true;
      if (!found && !outside_fits) lx = corners[0].second.x, ly = corners[0].second.y;
    } else {
      for (const auto& [where_at, p] : corners)
        if (where_at == placement) lx = p.x, ly = p.y;
    }
    if (outside) {
      layout_x(true);
      build_geometry();
    }
  }
  if (legend && outside) {
    lx = R + 12;
    ly = T;
  }
  scene.L = L;
  scene.T = T;
  scene.R = R;
  scene.B = B;
  {
    std::string key = fig.title + "\n" + fig.x_label + "\n" + fig.y_label + "\n" + std::to_string(fig.width) + "x" +
                      std::to_string(fig.height);
    for (const auto& s : fig.lines) key += "\n" + s.label;
    char id[32];
    std::snprintf(id, sizeof id, "ms-plot-%08llx", static_cast<unsigned long long>(fnv1a(key) & 0xffffffffull));
    scene.clip_id = id;
  }

  // Primitives, back to front.
  auto& prims = scene.prims;
  auto line = [&](Pt a, Pt b, Rgb c, double width, bool snap) {
    Prim p;
    p.kind = Kind::Line;
    p.runs = {{a, b}};
    p.color = c;
    p.width = width;
    p.snap = snap;
    prims.push_back(std::move(p));
  };
  auto text = [&](const std::string& s, Pt at, double size, int anchor, bool rotated, bool is_bold) {
    Prim p;
    p.kind = Kind::Text;
    p.runs = {{at}};
    p.text = s;
    p.size = size;
    p.anchor = anchor;
    p.rotated = rotated;
    p.bold = is_bold;
    p.color = kText;
    prims.push_back(std::move(p));
  };
  std::vector<double> xpos, ypos;
  for (double v : xa.ticks) xpos.push_back(X(v));
  for (double v : ya.ticks) ypos.push_back(Y(v));

  // Grid.
  for (double x : xpos)
    if (x > L + 0.5 && x < R - 0.5) line({x, T}, {x, B}, kGrid, 1, true);
  for (double y : ypos)
    if (y > T + 0.5 && y < B - 0.5) line({L, y}, {R, y}, kGrid, 1, true);

  // Histograms: translucent bars (more transparent when several overlap) with a step outline.
  // All bars first, then all outlines, so no outline disappears under another histogram's bars.
  const double bar_alpha = fig.histograms.size() > 1 ? 0.4 : 0.6;
  std::vector<Prim> outlines;
  for (size_t i = 0; i < fig.histograms.size(); ++i) {
    const Histogram& h = fig.histograms[i];
    Prim bars;
    bars.kind = Kind::Bars;
    bars.color = hist_color[i];
    bars.alpha = bar_alpha;
    bars.clip = true;
    Prim outline;
    outline.kind = Kind::Path;
    outline.color = hist_color[i];
    outline.width = 1.3;
    outline.clip = true;
    outline.cls = "histogram";
    std::vector<Pt> step;
    auto top = [&](double c) { return (fig.log_y && c <= 0) ? B + 2 : Y(c); };
    const double base = fig.log_y ? B + 2 : Y(0);
    step.push_back({X(h.edges[0]), base});
    for (size_t j = 0; j < h.counts.size(); ++j) {
      const double x0 = X(h.edges[j]), x1 = X(h.edges[j + 1]), y = top(h.counts[j]);
      if (h.counts[j] > 0) bars.rects.push_back({x0, y, x1, base});
      step.push_back({x0, y});
      step.push_back({x1, y});
    }
    step.push_back({X(h.edges.back()), base});
    outline.runs = {std::move(step)};
    prims.push_back(std::move(bars));
    outlines.push_back(std::move(outline));
  }
  for (auto& o : outlines) prims.push_back(std::move(o));

  // Error bands under all lines, then each line with its markers.
  for (size_t i = 0; i < fig.lines.size(); ++i)
    for (const auto& band : geometry[i].bands) {
      Prim p;
      p.kind = Kind::Polygon;
      p.runs = {band};
      p.color = series_color[i];
      p.alpha = kBandAlpha;
      p.clip = true;
      prims.push_back(std::move(p));
    }
  for (size_t i = 0; i < fig.lines.size(); ++i) {
    const Series& s = fig.lines[i];
    Prim path;
    path.kind = Kind::Path;
    path.runs = geometry[i].runs;
    path.color = series_color[i];
    path.width = kLineWidth;
    path.dashed = s.dashed;
    path.clip = true;
    path.cls = "series";
    prims.push_back(std::move(path));
    if (!s.markers) continue;
    for (const auto& run : geometry[i].runs)
      for (const Pt& p : run) {
        Prim m;
        m.kind = Kind::Circle;
        m.runs = {{p}};
        m.radius = kMarkerRadius;
        m.color = series_color[i];
        m.edge = kWhite;
        m.edge_width = 0.9;
        m.clip = true;
        prims.push_back(std::move(m));
      }
  }

  // Frame, ticks, tick labels.
  {
    Prim frame;
    frame.kind = Kind::Rect;
    frame.rects = {{L, T, R, B}};
    frame.fill = false;
    frame.edge = kAxis;
    frame.edge_width = 1;
    prims.push_back(std::move(frame));
  }
  const double cap = 0.73;  // digit height in em, to centre labels on a position
  for (size_t k = 0; k < xpos.size(); ++k) {
    line({xpos[k], B}, {xpos[k], B + kTickLen}, kAxis, 1, true);
    text(xa.labels[k], {xpos[k], B + kTickLen + 4 + cap * kTickSize}, kTickSize, 1, false, false);
  }
  for (double v : ya.minor) line({L - 3, Y(v)}, {L, Y(v)}, kAxis, 1, true);
  for (size_t k = 0; k < ypos.size(); ++k) {
    line({L - kTickLen, ypos[k]}, {L, ypos[k]}, kAxis, 1, true);
    text(ya.labels[k], {L - kTickLen - 4, ypos[k] + 0.5 * cap * kTickSize}, kTickSize, 2, false, false);
  }

  // Title and axis labels, shrunk to fit.
  auto fitted = [&](const std::string& s, double size, double room, const Face* face) {
    const double w = text_width(face, s, size);
    return w > room && w > 0 ? std::max(7.0, size * room / w) : size;
  };
  if (!fig.title.empty()) {
    double cx = (L + R) / 2;
    const double w = text_width(bold, fig.title, title_size);
    cx = std::clamp(cx, kPad + w / 2, W - kPad - w / 2);
    if (w > W - 2 * kPad) cx = W / 2;
    text(fig.title, {cx, kPad + cap * title_size + 1}, title_size, 1, false, true);
  }
  auto with_factor = [](const std::string& label, const Axis& axis) {
    return axis.factor_exp ? label + " (\u00d7" + power_of_ten(axis.factor_exp) + ")" : label;
  };
  if (!fig.x_label.empty()) {
    const std::string label = with_factor(fig.x_label, xa);
    const double size = fitted(label, kLabelSize, W - 2 * kPad, regular);
    const double w = text_width(regular, label, size);
    const double cx = std::clamp((L + R) / 2, kPad + w / 2, std::max(kPad + w / 2, W - kPad - w / 2));
    text(label, {cx, B + kTickLen + 4 + kTickSize + 8 + cap * size + 1}, size, 1, false, false);
  }
  if (!fig.y_label.empty()) {
    const std::string label = with_factor(fig.y_label, ya);
    const double size = fitted(label, kLabelSize, H - 2 * kPad, regular);
    const double w = text_width(regular, label, size);
    const double cy = std::clamp((T + B) / 2, kPad + w / 2, std::max(kPad + w / 2, H - kPad - w / 2));
    const double ascent = regular ? regular->ascent : 0.8;
    text(label, {kPad + std::min(ascent, 0.8) * size, cy}, size, 1, true, false);
  }

  // Legend.
  if (legend) {
    Prim box;
    box.kind = Kind::Rect;
    box.rects = {{lx, ly, lx + legend_w, ly + legend_h}};
    box.color = kWhite;
    box.alpha = 0.9;
    box.edge = {0.8, 0.8, 0.8};
    box.edge_width = 1;
    box.snap = true;
    prims.push_back(std::move(box));
    for (size_t k = 0; k < entries.size(); ++k) {
      const LegendEntry& e = entries[k];
      const double cy = ly + 5 + row_h * (k + 0.5);
      const double x0 = lx + 8, x1 = x0 + swatch;
      if (e.histogram || e.band) {
        Prim sw;
        sw.kind = Kind::Rect;
        sw.rects = {e.histogram ? std::array<double, 4>{x0 + 4, cy - 5, x1 - 4, cy + 5}
                                : std::array<double, 4>{x0, cy - 5, x1, cy + 5}};
        sw.color = e.color;
        sw.alpha = e.histogram ? bar_alpha : kBandAlpha;
        if (e.histogram) {
          sw.edge = e.color;
          sw.edge_width = 1.3;
        }
        prims.push_back(std::move(sw));
      }
      if (!e.histogram) {
        Prim l;
        l.kind = Kind::Line;
        l.runs = {{{x0, cy}, {x1, cy}}};
        l.color = e.color;
        l.width = kLineWidth;
        l.dashed = e.dashed;
        prims.push_back(std::move(l));
        if (e.markers) {
          Prim m;
          m.kind = Kind::Circle;
          m.runs = {{{(x0 + x1) / 2, cy}}};
          m.radius = kMarkerRadius;
          m.color = e.color;
          m.edge = kWhite;
          m.edge_width = 0.9;
          prims.push_back(std::move(m));
        }
      }
      text(e.label, {x1 + 7, cy + 0.5 * cap * kLegendSize}, kLegendSize, 0, false, false);
    }
  }
  return scene;
}

// ---------------------------------------------------------------------------------------------------------
// SVG

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') ? ' ' : c;
    }
  }
  return out;
}

std::string svg_dash(const Prim& p) {
  return p.dashed ? " stroke-dasharray=\"" + num(kDash) + " " + num(kDash) + "\"" : "";
}

std::string to_svg(const Scene& scene) {
  std::string o;
  o += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(scene.width) + "\" height=\"" +
       std::to_string(scene.height) + "\" viewBox=\"0 0 " + std::to_string(scene.width) + " " +
       std::to_string(scene.height) +
       "\" font-family=\"DejaVu Sans, Bitstream Vera Sans, Verdana, Arial, sans-serif\">\n";
  o += "<defs><clipPath id=\"" + scene.clip_id + "\"><rect x=\"" + num(scene.L) + "\" y=\"" + num(scene.T) +
       "\" width=\"" + num(scene.R - scene.L) + "\" height=\"" + num(scene.B - scene.T) + "\"/></clipPath></defs>\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  bool clipped = false;
  for (const Prim& p : scene.prims) {
    if (p.clip != clipped) {
      o += p.clip ? "<g clip-path=\"url(#" + scene.clip_id + ")\">\n" : "</g>\n";
      clipped = p.clip;
    }
    const std::string opacity = [&](const char* attr) {
      return p.alpha < 1 ? std::string(" ") + attr + "=\"" + num(p.alpha) + "\"" : std::string();
    }(p.kind == Kind::Line || p.kind == Kind::Path ? "stroke-opacity" : "fill-opacity");
    switch (p.kind) {
      case Kind::Line: {
        const Pt a = p.runs[0][0], b = p.runs[0][1];
        o += "<line x1=\"" + num(a.x) + "\" y1=\"" + num(a.y) + "\" x2=\"" + num(b.x) + "\" y2=\"" + num(b.y) +
             "\" stroke=\"" + hex(p.color) + "\" stroke-width=\"" + num(p.width) + "\"" + opacity + svg_dash(p) +
             (p.snap ? " stroke-linecap=\"square\" shape-rendering=\"crispEdges\"" : " stroke-linecap=\"round\"") +
             "/>\n";
        break;
      }
      case Kind::Path: {
        std::string d;
        for (const auto& run : p.runs) {
          for (size_t k = 0; k < run.size(); ++k)
            d += (d.empty() ? "" : " ") + std::string(k ? "L" : "M") + num(run[k].x) + " " + num(run[k].y);
          if (run.size() == 1) d += " h0";  // an isolated point still shows as a dot with round caps
        }
        o += "<path";
        if (p.cls) o += std::string(" class=\"") + p.cls + "\"";
        o += " d=\"" + d + "\" fill=\"none\" stroke=\"" + hex(p.color) + "\" stroke-width=\"" + num(p.width) +
             "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"" + opacity + svg_dash(p) + "/>\n";
        break;
      }
      case Kind::Polygon: {
        std::string pts;
        for (const Pt& q : p.runs[0]) pts += (pts.empty() ? "" : " ") + num(q.x) + "," + num(q.y);
        o += "<polygon points=\"" + pts + "\" fill=\"" + hex(p.color) + "\"" + opacity + "/>\n";
        break;
      }
      case Kind::Bars: {
        o += "<g fill=\"" + hex(p.color) + "\"" + opacity + ">\n";
        for (const auto& r : p.rects)
          o += "<rect x=\"" + num(r[0]) + "\" y=\"" + num(r[1]) + "\" width=\"" + num(r[2] - r[0]) + "\" height=\"" +
               num(r[3] - r[1]) + "\"/>\n";
        o += "</g>\n";
        break;
      }
      case Kind::Rect: {
        const auto& r = p.rects[0];
        o += "<rect x=\"" + num(r[0]) + "\" y=\"" + num(r[1]) + "\" width=\"" + num(r[2] - r[0]) + "\" height=\"" +
             num(r[3] - r[1]) + "\"";
        o += p.fill ? " fill=\"" + hex(p.color) + "\"" + opacity : std::string(" fill=\"none\"");
        if (p.edge_width > 0) o += " stroke=\"" + hex(p.edge) + "\" stroke-width=\"" + num(p.edge_width) + "\"";
        o += "/>\n";
        break;
      }
      case Kind::Circle: {
        const Pt c = p.runs[0][0];
        o += "<circle cx=\"" + num(c.x) + "\" cy=\"" + num(c.y) + "\" r=\"" + num(p.radius) + "\" fill=\"" +
             hex(p.color) + "\"" + opacity;
        if (p.edge_width > 0) o += " stroke=\"" + hex(p.edge) + "\" stroke-width=\"" + num(p.edge_width) + "\"";
        o += "/>\n";
        break;
      }
      case Kind::Text: {
        const Pt a = p.runs[0][0];
        o += "<text x=\"" + num(a.x) + "\" y=\"" + num(a.y) + "\" font-size=\"" + num(p.size) + "\"";
        if (p.bold) o += " font-weight=\"bold\"";
        if (p.anchor == 1) o += " text-anchor=\"middle\"";
        if (p.anchor == 2) o += " text-anchor=\"end\"";
        if (p.rotated) o += " transform=\"rotate(-90 " + num(a.x) + " " + num(a.y) + ")\"";
        o += " fill=\"" + hex(p.color) + "\">" + xml_escape(p.text) + "</text>\n";
        break;
      }
    }
  }
  if (clipped) o += "</g>\n";
  o += "</svg>\n";
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Raster

struct IRect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
};

class Canvas {
 public:
  Canvas(int width, int height)
      : w_(width),
        h_(height),
        rgb_(static_cast<size_t>(width) * height * 3, 1.f),
        cov_(static_cast<size_t>(width) * height, 0.f) {
    reset_box();
  }

  // Exact area of the rectangle in each pixel, added (adjacent rectangles join without a seam).
  void cover_rect(double x0, double y0, double x1, double y1) {
    if (x0 > x1) std::swap(x0, x1);
    if (y0 > y1) std::swap(y0, y1);
    x0 = std::max(x0, 0.0), y0 = std::max(y0, 0.0), x1 = std::min(x1, double(w_)), y1 = std::min(y1, double(h_));
    if (x0 >= x1 || y0 >= y1) return;
    const int i0 = static_cast<int>(std::floor(x0)), i1 = static_cast<int>(std::ceil(x1));
    const int j0 = static_cast<int>(std::floor(y0)), j1 = static_cast<int>(std::ceil(y1));
    touch(i0, j0, i1, j1);
    for (int j = j0; j < j1; ++j) {
      const double fy = std::min(j + 1.0, y1) - std::max(double(j), y0);
      for (int i = i0; i < i1; ++i) {
        const double fx = std::min(i + 1.0, x1) - std::max(double(i), x0);
        float& c = cov_[static_cast<size_t>(j) * w_ + i];
        c = std::min(1.f, c + static_cast<float>(fx * fy));
      }
    }
  }

  // Capsule around a segment (a disc when a == b), coverage from the distance to the pixel centre.
  void cover_segment(Pt a, Pt b, double half_width) {
    const double reach = half_width + 1;
    const int i0 = std::max(0, static_cast<int>(std::floor(std::min(a.x, b.x) - reach)));
    const int i1 = std::min(w_, static_cast<int>(std::ceil(std::max(a.x, b.x) + reach)));
    const int j0 = std::max(0, static_cast<int>(std::floor(std::min(a.y, b.y) - reach)));
    const int j1 = std::min(h_, static_cast<int>(std::ceil(std::max(a.y, b.y) + reach)));
    if (i0 >= i1 || j0 >= j1) return;
    touch(i0, j0, i1, j1);
    const double dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
    const double thin = half_width < 0.5 ? 2 * half_width : 1;  // hairlines: fainter, not wider
    const double hw = std::max(half_width, 0.5);
    for (int j = j0; j < j1; ++j)
      for (int i = i0; i < i1; ++i) {
        const double px = i + 0.5 - a.x, py = j + 0.5 - a.y;
        const double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
        const double ex = px - t * dx, ey = py - t * dy;
        const double d = std::sqrt(ex * ex + ey * ey);
        const double c = std::clamp(hw + 0.5 - d, 0.0, 1.0) * thin;
        if (c > 0) {
          float& v = cov_[static_cast<size_t>(j) * w_ + i];
          v = std::max(v, static_cast<float>(c));
        }
      }
  }

  // Simple polygon by signed-area accumulation along each scanline.
  void cover_polygon(const std::vector<Pt>& pts) {
    if (pts.size() < 3) return;
    if (acc_.empty()) acc_.assign(static_cast<size_t>(w_ + 2) * h_, 0.f);
    double ymin = pts[0].y, ymax = pts[0].y, xmin = pts[0].x;
    for (const Pt& p : pts) ymin = std::min(ymin, p.y), ymax = std::max(ymax, p.y), xmin = std::min(xmin, p.x);
    for (size_t k = 0; k < pts.size(); ++k) accumulate_edge(pts[k], pts[(k + 1) % pts.size()]);
    const int j0 = std::max(0, static_cast<int>(std::floor(ymin)));
    const int j1 = std::min(h_, static_cast<int>(std::ceil(ymax)) + 1);
    const int i0 = std::clamp(static_cast<int>(std::floor(xmin)), 0, w_);
    if (j0 >= j1) return;
    touch(i0, j0, w_, j1);
    for (int j = j0; j < j1; ++j) {
      float* row = acc_.data() + static_cast<size_t>(j) * (w_ + 2);
      double sum = 0;
      for (int i = i0; i < w_ + 2; ++i) {
        sum += row[i];
        row[i] = 0;
        if (i < w_) {
          float& v = cov_[static_cast<size_t>(j) * w_ + i];
          v = std::max(v, static_cast<float>(std::min(1.0, std::fabs(sum))));
        }
      }
    }
  }

  // Text coverage; rotated turns it 90 degrees counter-clockwise about the baseline origin (ox, oy).
  void cover_text(const TextMask& m, int ox, int oy, int start, bool rotated) {
    for (int my = 0; my < m.height; ++my)
      for (int mx = 0; mx < m.width; ++mx) {
        const float a = m.alpha[static_cast<size_t>(my) * m.width + mx];
        if (a <= 0) continue;
        const int along = start - m.pad + mx, across = my - m.baseline;
        const int x = rotated ? ox + across : ox + along;
        const int y = rotated ? oy - along - 1 : oy + across;
        if (x < 0 || y < 0 || x >= w_ || y >= h_) continue;
        touch(x, y, x + 1, y + 1);
        float& v = cov_[static_cast<size_t>(y) * w_ + x];
        v = std::max(v, a);
      }
  }

  // Composites the accumulated coverage with colour and opacity (inside clip only) and clears it.
  void paint(const Rgb& c, double alpha, const IRect* clip) {
    if (bx0_ >= bx1_ || by0_ >= by1_) return;
    IRect r{bx0_, by0_, bx1_, by1_};
    if (clip)
      r = {std::max(r.x0, clip->x0), std::max(r.y0, clip->y0), std::min(r.x1, clip->x1), std::min(r.y1, clip->y1)};
    const float cr = static_cast<float>(c.r), cg = static_cast<float>(c.g), cb = static_cast<float>(c.b);
    for (int j = r.y0; j < r.y1; ++j)
      for (int i = r.x0; i < r.x1; ++i) {
        const size_t k = static_cast<size_t>(j) * w_ + i;
        const float a = cov_[k] * static_cast<float>(alpha);
        if (a <= 0) continue;
        float* px = &rgb_[k * 3];
        px[0] += (cr - px[0]) * a;
        px[1] += (cg - px[1]) * a;
        px[2] += (cb - px[2]) * a;
      }
    for (int j = by0_; j < by1_; ++j) std::fill_n(&cov_[static_cast<size_t>(j) * w_ + bx0_], bx1_ - bx0_, 0.f);
    reset_box();
  }

  RgbImage image() const {
    RgbImage img;
    img.width = w_;
    img.height = h_;
    img.pixels.resize(rgb_.size());
    for (size_t k = 0; k < rgb_.size(); ++k)
      img.pixels[k] = static_cast<uint8_t>(std::lround(std::clamp(rgb_[k], 0.f, 1.f) * 255));
    return img;
  }

  int width() const { return w_; }
  int height() const { return h_; }

 private:
  void reset_box() { bx0_ = w_, by0_ = h_, bx1_ = 0, by1_ = 0; }
  void touch(int x0, int y0, int x1, int y1) {
    bx0_ = std::max(0, std::min(bx0_, x0));
    by0_ = std::max(0, std::min(by0_, y0));
    bx1_ = std::min(w_, std::max(bx1_, x1));
    by1_ = std::min(h_, std::max(by1_, y1));
  }

  // Adds the edge's signed area, pixel by pixel, to the accumulation rows it crosses. x is clamped to the
  // canvas: area left of it lands in column 0, area right of it beyond the last column.
  void accumulate_edge(Pt p0, Pt p1) {
    if (p0.y == p1.y) return;
    double dir = 1;
    if (p0.y > p1.y) {
      std::swap(p0, p1);
      dir = -1;
    }
    const double dxdy = (p1.x - p0.x) / (p1.y - p0.y);
    double x = p0.x;
    int y_start = static_cast<int>(std::floor(p0.y));
    if (p0.y < 0) {
      x -= p0.y * dxdy;
      y_start = 0;
    }
    const int y_end = std::min(h_, static_cast<int>(std::ceil(p1.y)));
    const double xmax = w_;
    for (int y = y_start; y < y_end; ++y) {
      const double dy = std::min(y + 1.0, p1.y) - std::max(double(y), p0.y);
      const double x_next = x + dxdy * dy;
      const double d = dy * dir;
      const double xa = std::clamp(std::min(x, x_next), 0.0, xmax), xb = std::clamp(std::max(x, x_next), 0.0, xmax);
      float* row = acc_.data() + static_cast<size_t>(y) * (w_ + 2);
      const double xa_floor = std::floor(xa), xb_ceil = std::ceil(xb);
      const int ia = static_cast<int>(xa_floor), ib = static_cast<int>(xb_ceil);
      if (ib <= ia + 1) {
        const double mid = 0.5 * (xa + xb) - xa_floor;
        row[ia] += static_cast<float>(d * (1 - mid));
        row[ia + 1] += static_cast<float>(d * mid);
      } else {
        const double s = 1 / (xb - xa);
        const double fa = xa - xa_floor;
        const double a0 = 0.5 * s * (1 - fa) * (1 - fa);
        const double fb = xb - xb_ceil + 1;
        const double am = 0.5 * s * fb * fb;
        row[ia] += static_cast<float>(d * a0);
        if (ib == ia + 2) {
          row[ia + 1] += static_cast<float>(d * (1 - a0 - am));
        } else {
          const double a1 = s * (1.5 - fa);
          row[ia + 1] += static_cast<float>(d * (a1 - a0));
          for (int i = ia + 2; i < ib - 1; ++i) row[i] += static_cast<float>(d * s);
          const double a2 = a1 + (ib - ia - 3) * s;
          row[ib - 1] += static_cast<float>(d * (1 - a2 - am));
        }
        row[ib] += static_cast<float>(d * am);
      }
      x = x_next;
    }
  }

  int w_, h_;
  std::vector<float> rgb_, cov_, acc_;
  int bx0_ = 0, by0_ = 0, bx1_ = 0, by1_ = 0;
};

// Strokes a polyline; dashes (on/off lengths in device pixels) continue across vertices.
void cover_polyline(Canvas& cv, const std::vector<Pt>& run, double half_width, double dash) {
  if (run.size() == 1) {
    cv.cover_segment(run[0], run[0], half_width);
    return;
  }
  double phase = 0;  // distance into the current dash period
  for (size_t k = 1; k < run.size(); ++k) {
    const Pt a = run[k - 1], b = run[k];
    if (dash <= 0) {
      cv.cover_segment(a, b, half_width);
      continue;
    }
    const double len = std::hypot(b.x - a.x, b.y - a.y);
    double t = 0;
    while (t < len) {
      const double in_period = std::fmod(phase, 2 * dash);
      const bool on = in_period < dash;
      const double piece = std::min(len - t, (on ? dash : 2 * dash) - in_period);
      if (on) {
        const Pt p{a.x + (b.x - a.x) * t / len, a.y + (b.y - a.y) * t / len};
        const Pt q{a.x + (b.x - a.x) * (t + piece) / len, a.y + (b.y - a.y) * (t + piece) / len};
        cv.cover_segment(p, q, half_width);
      }
      t += piece;
      phase += piece;
      if (piece <= 1e-9) break;
    }
  }
}

// Device position of a thin axis-aligned line of device width wd: pixel-aligned so it stays crisp.
double snap(double v, double wd) {
  return (static_cast<int>(std::lround(wd)) % 2) ? std::floor(v) + 0.5 : std::round(v);
}

void warn_no_font(const Fonts& fonts) {
  if (fonts.regular || g_font_warning_given.exchange(true)) return;
  std::cerr << "mergescope: warning: no TrueType font found (looked for " << fonts.searched
            << "); PNG plots are drawn without text\n";
}

RgbImage rasterize(const Scene& scene, int scale) {
  const double s = scale;
  Canvas cv(scene.width * scale, scene.height * scale);
  const IRect plot_clip{static_cast<int>(std::lround(scene.L * s)), static_cast<int>(std::lround(scene.T * s)),
                        static_cast<int>(std::lround(scene.R * s)), static_cast<int>(std::lround(scene.B * s))};
  warn_no_font(scene.fonts);

  // An axis-aligned line with square ends, snapped to the pixel grid.
  auto crisp_line = [&](Pt a, Pt b, double width) {
    const double wd = std::max(1.0, std::round(width * s)), h = wd / 2;
    if (a.x == b.x) {
      const double x = snap(a.x * s, wd);
      cv.cover_rect(x - h, std::min(a.y, b.y) * s - h, x + h, std::max(a.y, b.y) * s + h);
    } else {
      const double y = snap(a.y * s, wd);
      cv.cover_rect(std::min(a.x, b.x) * s - h, y - h, std::max(a.x, b.x) * s + h, y + h);
    }
  };
  auto scaled = [&](const std::vector<Pt>& run) {
    std::vector<Pt> out(run.size());
    for (size_t k = 0; k < run.size(); ++k) out[k] = {run[k].x * s, run[k].y * s};
    return out;
  };

  for (const Prim& p : scene.prims) {
    const IRect* clip = p.clip ? &plot_clip : nullptr;
    switch (p.kind) {
      case Kind::Line: {
        const Pt a = p.runs[0][0], b = p.runs[0][1];
        if (p.snap && !p.dashed && (a.x == b.x || a.y == b.y))
          crisp_line(a, b, p.width);
        else
          cover_polyline(cv, scaled(p.runs[0]), p.width * s / 2, p.dashed ? kDash * s : 0);
        cv.paint(p.color, p.alpha, clip);
        break;
      }
      case Kind::Path:
        for (const auto& run : p.runs) cover_polyline(cv, scaled(run), p.width * s / 2, p.dashed ? kDash * s : 0);
        cv.paint(p.color, p.alpha, clip);
        break;
      case Kind::Polygon:
        cv.cover_polygon(scaled(p.runs[0]));
        cv.paint(p.color, p.alpha, clip);
        break;
      case Kind::Bars:
        for (const auto& r : p.rects) cv.cover_rect(r[0] * s, r[1] * s, r[2] * s, r[3] * s);
        cv.paint(p.color, p.alpha, clip);
        break;
      case Kind::Rect: {
        const auto& r = p.rects[0];
        if (p.fill) {
          cv.cover_rect(r[0] * s, r[1] * s, r[2] * s, r[3] * s);
          cv.paint(p.color, p.alpha, clip);
        }
        if (p.edge_width > 0) {
          const Pt tl{r[0], r[1]}, tr{r[2], r[1]}, br{r[2], r[3]}, bl{r[0], r[3]};
          crisp_line(tl, tr, p.edge_width);
          crisp_line(tr, br, p.edge_width);
          crisp_line(br, bl, p.edge_width);
          crisp_line(bl, tl, p.edge_width);
          cv.paint(p.edge, 1, clip);
        }
        break;
      }
      case Kind::Circle: {
        const Pt c{p.runs[0][0].x * s, p.runs[0][0].y * s};
        if (p.edge_width > 0) {
          cv.cover_segment(c, c, (p.radius + p.edge_width / 2) * s);
          cv.paint(p.edge, p.alpha, clip);
          cv.cover_segment(c, c, (p.radius - p.edge_width / 2) * s);
        } else {
          cv.cover_segment(c, c, p.radius * s);
        }
        cv.paint(p.color, p.alpha, clip);
        break;
      }
      case Kind::Text: {
        const Face* face = (p.bold ? scene.fonts.bold : scene.fonts.regular).get();
        if (!face || p.text.empty()) break;
        const double size = p.size * s;
        const double shift = -0.5 * p.anchor * text_width(face, p.text, size);
        const double start = std::floor(shift);
        const TextMask mask = text_mask(*face, p.text, size, shift - start);
        cv.cover_text(mask, static_cast<int>(std::lround(p.runs[0][0].x * s)),
                      static_cast<int>(std::lround(p.runs[0][0].y * s)), static_cast<int>(start), p.rotated);
        cv.paint(p.color, p.alpha, clip);
        break;
      }
    }
  }
  return cv.image();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Public API

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

const std::vector<std::string>& method_palette() {
  // Okabe & Ito (2008), ordered so that neighbours differ most; yellow, weak on white, comes last.
  static const std::vector<std::string> palette = {"#0072b2", "#d55e00", "#009e73", "#e69f00",
                                                   "#cc79a7", "#56b4e9", "#000000", "#f0e442"};
  return palette;
}

std::string color_for_method(const std::string& method_spec) {
  std::string family = method_spec.substr(0, method_spec.find(':'));
  const auto first = family.find_first_not_of(" \t");
  family =
      first == std::string::npos ? std::string() : family.substr(first, family.find_last_not_of(" \t") - first + 1);
  for (char& c : family) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::vector<std::pair<std::string, std::string>> known = {
      {"none", "#000000"},        {"baseline", "#000000"}, {"tome", "#0072b2"},    {"pitome", "#d55e00"},
      {"pitome-code", "#cc79a7"}, {"random", "#999999"},   {"ltmp", "#009e73"},    {"ltp", "#e69f00"},
      {"cluster", "#56b4e9"},     {"kmeans", "#56b4e9"},   {"k-means", "#56b4e9"},
  };
  for (const auto& [name, color] : known)
    if (family == name) return color;
  const auto& palette = method_palette();
  return palette[fnv1a(family) % palette.size()];
}

bool set_plot_font(const std::string& ttf_path) {
  Fonts fonts = resolve_fonts(ttf_path);
  const bool ok = fonts.regular != nullptr;
  std::lock_guard<std::mutex> lock(g_font_mutex);
  g_fonts = std::move(fonts);
  g_fonts_resolved = true;
  return ok;
}

bool plot_font_available() { return current_fonts().regular != nullptr; }

std::string render_svg(const Figure& figure) { return to_svg(build_scene(figure)); }

PlotArea plot_area(const Figure& figure) {
  const Scene scene = build_scene(figure);
  return {scene.L, scene.T, scene.R, scene.B};
}

RgbImage render_png(const Figure& figure, int scale) {
  if (scale < 1 || scale > 8) fail("render_png", "scale " + std::to_string(scale) + " is outside 1..8");
  return rasterize(build_scene(figure), scale);
}

void save_figure(const Figure& figure, const std::string& path_without_extension, int png_scale) {
  // Render both first: a bad figure fails before anything is written.
  const std::string svg = render_svg(figure);
  const RgbImage png = render_png(figure, png_scale);
  const std::string svg_path = path_without_extension + ".svg";
  {
    std::ofstream out(svg_path, std::ios::binary | std::ios::trunc);
    if (!out) fail(svg_path, std::string("cannot write SVG: ") + std::strerror(errno));
    out.write(svg.data(), static_cast<std::streamsize>(svg.size()));
    out.close();
    if (!out) fail(svg_path, "cannot write SVG");
  }
  write_png(path_without_extension + ".png", png);
}

}  // namespace ms
