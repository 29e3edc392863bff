// Plots: the public API, colours of the methods, and the SVG back end (our own writer, so the text stays text
// a person can edit). The layout is plot_layout.cpp; PNG and PDF are plot_cairo.cpp.
#include "plot.h"

#include "error.h"
#include "plot_layout.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace ms {

namespace {

uint64_t fnv1a(const std::string& s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

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

std::string hex(const Rgba& c) {
  auto byte = [](double v) { return static_cast<int>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", byte(c.r), byte(c.g), byte(c.b));
  return buf;
}

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

std::string cls(const char* role) { return role && *role ? std::string(" class=\"") + role + "\"" : std::string(); }

std::string fill_attrs(const Rgba& c) {
  return " fill=\"" + hex(c) + "\"" + (c.a < 1 ? " fill-opacity=\"" + num(c.a) + "\"" : std::string());
}

std::string stroke_attrs(const Stroke& s) {
  std::string o = " stroke=\"" + hex(s.color) + "\" stroke-width=\"" + num(s.width) + "\"";
  if (s.color.a < 1) o += " stroke-opacity=\"" + num(s.color.a) + "\"";
  if (s.dashed) o += " stroke-dasharray=\"6 6\"";
  if (s.dashed && s.dash_offset != 0) o += " stroke-dashoffset=\"" + num(s.dash_offset) + "\"";
  return o;
}

class SvgPainter final : public PlotPainter {
 public:
  SvgPainter(const FigureLayout& lay, const std::string& clip_id) : clip_id_(clip_id) {
    const std::string w = num(lay.width), h = num(lay.height);
    o_ += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    o_ += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" + h + "\" viewBox=\"0 0 " + w +
          " " + h + "\" font-family=\"DejaVu Sans, Bitstream Vera Sans, Verdana, Arial, sans-serif\">\n";
    const Box& a = lay.plot;
    o_ += "<defs><clipPath id=\"" + clip_id + "\"><rect x=\"" + num(a.left) + "\" y=\"" + num(a.top) + "\" width=\"" +
          num(a.right - a.left) + "\" height=\"" + num(a.bottom - a.top) + "\"/></clipPath></defs>\n";
  }

  std::string finish() {
    clip(nullptr);
    return o_ + "</svg>\n";
  }

  void clip(const Box* area) override {
    if ((area != nullptr) == clipped_) return;
    o_ += area ? "<g clip-path=\"url(#" + clip_id_ + ")\">\n" : "</g>\n";
    clipped_ = area != nullptr;
  }

  void line(Point a, Point b, const Stroke& s, const char* role) override {
    o_ += "<line" + cls(role) + " x1=\"" + num(a.x) + "\" y1=\"" + num(a.y) + "\" x2=\"" + num(b.x) + "\" y2=\"" +
          num(b.y) + "\"" + stroke_attrs(s) +
          (s.crisp ? " stroke-linecap=\"square\" shape-rendering=\"crispEdges\"" : " stroke-linecap=\"round\"") +
          "/>\n";
  }

  void path(const std::vector<std::vector<Point>>& runs, const Stroke& s, const char* role) override {
    std::string d;
    for (const auto& run : runs) {
      for (size_t k = 0; k < run.size(); ++k)
        d += (d.empty() ? "" : " ") + std::string(k ? "L" : "M") + num(run[k].x) + " " + num(run[k].y);
      if (run.size() == 1) d += " h0";  // an isolated point still shows as a dot with round caps
    }
    if (d.empty()) return;
    o_ += "<path" + cls(role) + " d=\"" + d + "\" fill=\"none\"" + stroke_attrs(s) +
          " stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n";
  }

  void band(const Band& b, const Rgba& fill) override {
    std::string pts;
    for (const Point& q : b.upper) pts += (pts.empty() ? "" : " ") + num(q.x) + "," + num(q.y);
    for (size_t k = b.lower.size(); k-- > 0;) pts += " " + num(b.lower[k].x) + "," + num(b.lower[k].y);
    o_ += "<polygon points=\"" + pts + "\"" + fill_attrs(fill) + "/>\n";
  }

  void bars(const std::vector<Box>& boxes, const Rgba& fill) override {
    o_ += "<g" + fill_attrs(fill) + ">\n";
    for (const Box& r : boxes) o_ += "<rect" + box_attrs(r) + "/>\n";
    o_ += "</g>\n";
  }

  void rect(const Box& r, const Rgba* fill, const Stroke* edge, const char* role) override {
    if (std::string(role) == "background") {
      o_ += "<rect width=\"100%\" height=\"100%\"" + fill_attrs(*fill) + "/>\n";
      return;
    }
    o_ += "<rect" + cls(role) + box_attrs(r) + (fill ? fill_attrs(*fill) : std::string(" fill=\"none\""));
    if (edge) o_ += stroke_attrs(*edge);
    o_ += "/>\n";
  }

  void marker(Point c, double radius, const Rgba& fill, const Stroke& edge) override {
    o_ += "<circle cx=\"" + num(c.x) + "\" cy=\"" + num(c.y) + "\" r=\"" + num(radius) + "\"" + fill_attrs(fill) +
          stroke_attrs(edge) + "/>\n";
  }

  void text(const TextItem& t) override {
    o_ += "<text" + cls(t.role) + " x=\"" + num(t.at.x) + "\" y=\"" + num(t.at.y) + "\" font-size=\"" + num(t.size) +
          "\"";
    if (t.bold) o_ += " font-weight=\"bold\"";
    if (t.anchor == TextAnchor::Middle) o_ += " text-anchor=\"middle\"";
    if (t.anchor == TextAnchor::End) o_ += " text-anchor=\"end\"";
    if (t.rotated) o_ += " transform=\"rotate(-90 " + num(t.at.x) + " " + num(t.at.y) + ")\"";
    o_ += fill_attrs(t.color) + ">" + xml_escape(t.text) + "</text>\n";
  }

 private:
  static std::string box_attrs(const Box& r) {
    return " x=\"" + num(r.left) + "\" y=\"" + num(r.top) + "\" width=\"" + num(r.right - r.left) + "\" height=\"" +
           num(r.bottom - r.top) + "\"";
  }

  std::string o_, clip_id_;
  bool clipped_ = false;
};

void write_file(const std::string& path, const std::string& bytes, const char* what) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail(path, std::string("cannot write ") + what + ": " + std::strerror(errno));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) fail(path, std::string("cannot write ") + what);
}

}  // namespace

std::string render_svg(const Figure& figure) {
  const FigureLayout layout = figure_layout(figure);
  // A clip id of its own per figure, so several SVGs pasted into one document do not share clip paths.
  std::string key = figure.title + "\n" + figure.x_label + "\n" + figure.y_label + "\n" + std::to_string(figure.width) +
                    "x" + std::to_string(figure.height);
  for (const auto& s : figure.lines) key += "\n" + s.label;
  char id[32];
  std::snprintf(id, sizeof id, "ms-plot-%08llx", static_cast<unsigned long long>(fnv1a(key) & 0xffffffffull));
  SvgPainter painter(layout, id);
  paint_figure(layout, painter);
  return painter.finish();
}

PlotArea plot_area(const Figure& figure) { return figure_layout(figure).plot; }

const std::vector<std::string>& figure_formats() {
  static const std::vector<std::string> formats = {".svg", ".png", ".pdf"};
  return formats;
}

void save_figure(const Figure& figure, const std::string& path_without_extension, int png_scale) {
  // Render all first: a bad figure fails before anything is written.
  const std::string svg = render_svg(figure);
  const RgbImage png = render_png(figure, png_scale);
  const std::string pdf = render_pdf(figure);
  write_file(path_without_extension + ".svg", svg, "SVG");
  write_png(path_without_extension + ".png", png);
  write_file(path_without_extension + ".pdf", pdf, "PDF");
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
      {"none", "#000000"},
      {"baseline", "#000000"},
      {"tome", "#0072b2"},
      {"pitome", "#d55e00"},
      {"pitome-code", "#cc79a7"},
      {"random", "#999999"},
      {"ltmp", "#009e73"},
      {"ltp", "#e69f00"},
      {"cluster", "#56b4e9"},
      {"kmeans", "#56b4e9"},
      {"k-means", "#56b4e9"},
      // the methods PiToMe is compared against (Paul Tol's muted/vibrant colours, distinct from the above)
      {"tofu", "#882255"},
      {"mctf", "#44aa99"},
      {"dct", "#997700"},
      {"diffrate", "#332288"},
      {"evit", "#ee3377"},
  };
  for (const auto& [name, color] : known)
    if (family == name) return color;
  const auto& palette = method_palette();
  return palette[fnv1a(family) % palette.size()];
}

}  // namespace ms
