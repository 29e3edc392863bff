// PNG and PDF through Cairo, and the text metrics of the layout. Fonts come from fontconfig through Cairo's
// toy text API ("DejaVu Sans"), unhinted, so a label measures the same at every scale and in every format.
#include "plot_layout.h"

#include "error.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>

namespace ms {

namespace {

constexpr const char* kFamily = "DejaVu Sans";
constexpr double kPdfPointsPerPixel = 0.75;  // CSS px: a PDF page is as large as the SVG shown at 100%

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
};
using Surface = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using Context = std::unique_ptr<cairo_t, ContextDeleter>;

// Unhinted outlines and metrics: hinting would make advance widths depend on the pixel size, and so the
// layout on the PNG scale.
void set_text_options(cairo_t* cr) {
  cairo_font_options_t* options = cairo_font_options_create();
  cairo_font_options_set_hint_style(options, CAIRO_HINT_STYLE_NONE);
  cairo_font_options_set_hint_metrics(options, CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_antialias(options, CAIRO_ANTIALIAS_GRAY);
  cairo_set_font_options(cr, options);
  cairo_font_options_destroy(options);
}

void select_font(cairo_t* cr, double size, bool bold) {
  cairo_select_font_face(cr, kFamily, CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

// Cairo puts a context into an error state for good on invalid UTF-8; labels may come from file names.
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size() && c != 0;
    for (int k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

double advance(cairo_t* cr, const std::string& text) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, text.c_str(), &e);
  return e.x_advance;
}

void warn_once_without_font() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (plot_font_file().empty())
      std::cerr << "mergescope: warning: fontconfig finds no font (looked for " << kFamily
                << "); plots are drawn without text\n";
  });
}

class CairoPainter final : public PlotPainter {
 public:
  // snap: a raster target, where crisp rules are moved onto whole device pixels.
  CairoPainter(cairo_t* cr, bool snap) : cr_(cr), snap_(snap) { set_text_options(cr); }

  void clip(const Box* area) override {
    cairo_reset_clip(cr_);
    if (!area) return;
    cairo_rectangle(cr_, area->left, area->top, area->right - area->left, area->bottom - area->top);
    cairo_clip(cr_);
  }

  void line(Point a, Point b, const Stroke& s, const char*) override {
    if (s.crisp && a.x == b.x) a.x = b.x = snapped(a.x, s.width, true);
    if (s.crisp && a.y == b.y) a.y = b.y = snapped(a.y, s.width, false);
    set_stroke(s);
    cairo_move_to(cr_, a.x, a.y);
    cairo_line_to(cr_, b.x, b.y);
    cairo_stroke(cr_);
  }

  void path(const std::vector<std::vector<Point>>& runs, const Stroke& s, const char*) override {
    // One stroke for all runs: a translucent line does not darken where its segments meet.
    for (const auto& run : runs) {
      if (run.empty()) continue;
      cairo_move_to(cr_, run[0].x, run[0].y);
      for (size_t k = run.size() == 1 ? 0 : 1; k < run.size(); ++k) cairo_line_to(cr_, run[k].x, run[k].y);
    }
    set_stroke(s);  // round caps: a run of one point shows as a dot
    cairo_stroke(cr_);
  }

  void band(const Band& b, const Rgba& fill) override {
    for (size_t k = 0; k < b.upper.size(); ++k) (k ? cairo_line_to : cairo_move_to)(cr_, b.upper[k].x, b.upper[k].y);
    for (size_t k = b.lower.size(); k-- > 0;) cairo_line_to(cr_, b.lower[k].x, b.lower[k].y);
    cairo_close_path(cr_);
    set_color(fill);
    cairo_fill(cr_);
  }

  void bars(const std::vector<Box>& boxes, const Rgba& fill) override {
    // One path: neighbouring bars join without a seam.
    for (const Box& r : boxes) cairo_rectangle(cr_, r.left, r.top, r.right - r.left, r.bottom - r.top);
    set_color(fill);
    cairo_fill(cr_);
  }

  void rect(const Box& r, const Rgba* fill, const Stroke* edge, const char*) override {
    if (fill) {
      cairo_rectangle(cr_, r.left, r.top, r.right - r.left, r.bottom - r.top);
      set_color(*fill);
      cairo_fill(cr_);
    }
    if (!edge) return;
    Box e = r;
    if (edge->crisp) {
      e = {snapped(r.left, edge->width, true), snapped(r.top, edge->width, false), snapped(r.right, edge->width, true),
           snapped(r.bottom, edge->width, false)};
    }
    cairo_rectangle(cr_, e.left, e.top, e.right - e.left, e.bottom - e.top);
    set_stroke(*edge);
    cairo_stroke(cr_);
  }

  void marker(Point c, double radius, const Rgba& fill, const Stroke& edge) override {
    cairo_new_sub_path(cr_);
    cairo_arc(cr_, c.x, c.y, radius, 0, 2 * M_PI);
    set_color(fill);
    cairo_fill_preserve(cr_);
    set_stroke(edge);
    cairo_stroke(cr_);
  }

  void text(const TextItem& t) override {
    if (t.text.empty()) return;
    const std::string s = valid_utf8(t.text);
    select_font(cr_, t.size, t.bold);
    const double shift = t.anchor == TextAnchor::Start ? 0 : t.anchor == TextAnchor::Middle ? 0.5 : 1;
    const double w = advance(cr_, s);
    cairo_save(cr_);
    cairo_translate(cr_, t.at.x, t.at.y);
    if (t.rotated) cairo_rotate(cr_, -M_PI / 2);
    cairo_move_to(cr_, -shift * w, 0);
    set_color(t.color);
    cairo_show_text(cr_, s.c_str());
    cairo_new_path(cr_);
    cairo_restore(cr_);
  }

 private:
  void set_color(const Rgba& c) { cairo_set_source_rgba(cr_, c.r, c.g, c.b, c.a); }

  void set_stroke(const Stroke& s) {
    set_color(s.color);
    cairo_set_line_width(cr_, s.width);
    const double dash[2] = {6, 6};
    cairo_set_dash(cr_, dash, s.dashed ? 2 : 0, s.dash_offset);
    cairo_set_line_cap(cr_, s.crisp ? CAIRO_LINE_CAP_SQUARE : CAIRO_LINE_CAP_ROUND);
    cairo_set_line_join(cr_, s.crisp ? CAIRO_LINE_JOIN_MITER : CAIRO_LINE_JOIN_ROUND);
  }

  // The coordinate moved so that a rule of this width covers whole device pixels (centre on a pixel centre
  // for an odd width, on a pixel edge for an even one); unchanged on a vector target.
  double snapped(double v, double width, bool is_x) {
    if (!snap_) return v;
    double dx = is_x ? width : 0, dy = is_x ? 0 : width;
    cairo_user_to_device_distance(cr_, &dx, &dy);
    const long device_width = std::max(1L, std::lround(std::fabs(is_x ? dx : dy)));
    double x = is_x ? v : 0, y = is_x ? 0 : v;
    cairo_user_to_device(cr_, &x, &y);
    double& d = is_x ? x : y;
    d = device_width % 2 ? std::floor(d) + 0.5 : std::round(d);
    cairo_device_to_user(cr_, &x, &y);
    return is_x ? x : y;
  }

  cairo_t* cr_;
  bool snap_;
};

void check(cairo_status_t status, const std::string& where) {
  if (status != CAIRO_STATUS_SUCCESS) fail(where, std::string("Cairo: ") + cairo_status_to_string(status));
}

std::string where_of(const Figure& f) { return f.title.empty() ? std::string("figure") : "figure '" + f.title + "'"; }

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

double plot_text_width(const std::string& text, double size, bool bold) {
  // One scratch context per thread: the app lays plots out on the main thread while a worker exports.
  struct Scratch {
    Surface surface{cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1)};
    Context cr{cairo_create(surface.get())};
    Scratch() { set_text_options(cr.get()); }
  };
  thread_local std::unique_ptr<Scratch> scratch;
  if (!scratch || cairo_status(scratch->cr.get()) != CAIRO_STATUS_SUCCESS) scratch = std::make_unique<Scratch>();
  if (text.empty() || !(size > 0)) return 0;
  select_font(scratch->cr.get(), size, bold);
  return advance(scratch->cr.get(), valid_utf8(text));
}

std::string plot_font_file(bool bold) {
  FcPattern* pattern = FcNameParse(reinterpret_cast<const FcChar8*>(bold ? "DejaVu Sans:bold" : "DejaVu Sans"));
  if (!pattern) return "";
  FcConfigSubstitute(nullptr, pattern, FcMatchPattern);
  FcDefaultSubstitute(pattern);
  FcResult result = FcResultNoMatch;
  FcPattern* match = FcFontMatch(nullptr, pattern, &result);
  std::string file;
  FcChar8* path = nullptr;
  if (match && FcPatternGetString(match, FC_FILE, 0, &path) == FcResultMatch && path)
    file = reinterpret_cast<const char*>(path);
  if (match) FcPatternDestroy(match);
  FcPatternDestroy(pattern);
  return file;
}

RgbImage render_png(const Figure& figure, int scale) {
  if (scale < 1 || scale > 8) fail("render_png", "scale " + std::to_string(scale) + " is outside 1..8");
  const FigureLayout layout = figure_layout(figure);
  const int w = figure.width * scale, h = figure.height * scale;
  if (w > 32767 || h > 32767)
    fail(where_of(figure), "a PNG of " + std::to_string(w) + "x" + std::to_string(h) + " px is over Cairo's 32767");
  warn_once_without_font();
  Surface surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h));
  check(cairo_surface_status(surface.get()), where_of(figure));
  {
    Context cr(cairo_create(surface.get()));
    cairo_scale(cr.get(), scale, scale);
    CairoPainter painter(cr.get(), true);
    paint_figure(layout, painter);
    check(cairo_status(cr.get()), where_of(figure));
  }
  cairo_surface_flush(surface.get());
  RgbImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize(static_cast<size_t>(w) * h * 3);
  const unsigned char* data = cairo_image_surface_get_data(surface.get());
  const int stride = cairo_image_surface_get_stride(surface.get());
  for (int y = 0; y < h; ++y) {
    const auto* row = reinterpret_cast<const uint32_t*>(data + static_cast<size_t>(y) * stride);
    uint8_t* out = img.pixels.data() + static_cast<size_t>(y) * w * 3;
    for (int x = 0; x < w; ++x) {
      out[3 * x] = static_cast<uint8_t>(row[x] >> 16);  // RGB24: 0x00RRGGBB in native byte order
      out[3 * x + 1] = static_cast<uint8_t>(row[x] >> 8);
      out[3 * x + 2] = static_cast<uint8_t>(row[x]);
    }
  }
  return img;
}

std::string render_pdf(const Figure& figure) {
  const FigureLayout layout = figure_layout(figure);
  warn_once_without_font();
  std::string bytes;
  {
    Surface surface(cairo_pdf_surface_create_for_stream(append_to_string, &bytes, figure.width * kPdfPointsPerPixel,
                                                        figure.height * kPdfPointsPerPixel));
    check(cairo_surface_status(surface.get()), where_of(figure));
#if CAIRO_VERSION >= CAIRO_VERSION_ENCODE(1, 16, 0)
    if (!figure.title.empty())
      cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_TITLE, valid_utf8(figure.title).c_str());
    cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_CREATOR, "mergescope");
#endif
    {
      Context cr(cairo_create(surface.get()));
      cairo_scale(cr.get(), kPdfPointsPerPixel, kPdfPointsPerPixel);
      CairoPainter painter(cr.get(), false);
      paint_figure(layout, painter);
      check(cairo_status(cr.get()), where_of(figure));
    }
    cairo_surface_finish(surface.get());
    check(cairo_surface_status(surface.get()), where_of(figure));
  }
  return bytes;
}

}  // namespace ms
