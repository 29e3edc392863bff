// Plots: SVG structure and escaping, tick choice, the layout (ticks, legend, text that fits), PNG through Cairo
// (size, colours where the data are, text where the layout put it), PDF (valid, with the title as text, where
// the layout put it; checked with poppler's pdfinfo and pdftotext), data checks and file errors.
// MERGESCOPE_PLOT_EXAMPLES=<dir> also writes example figures there to look at.
#include "plot.h"

#include "error.h"
#include "plot_layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + needle.size())) ++n;
  return n;
}

struct Color {
  int r, g, b;
};

Color parse_hex(const std::string& hex) {
  return {std::stoi(hex.substr(1, 2), nullptr, 16), std::stoi(hex.substr(3, 2), nullptr, 16),
          std::stoi(hex.substr(5, 2), nullptr, 16)};
}

Color pixel(const ms::RgbImage& img, int x, int y) {
  const uint8_t* p = img.row(y) + 3 * x;
  return {p[0], p[1], p[2]};
}

int distance(Color a, Color b) { return std::abs(a.r - b.r) + std::abs(a.g - b.g) + std::abs(a.b - b.b); }

// Accuracy-vs-ratio style figure: three series with mean ± std bands.
ms::Figure three_series() {
  ms::Figure f;
  f.title = "Top-1 accuracy vs. merge ratio";
  f.x_label = "tokens merged per layer (r)";
  f.y_label = "top-1 accuracy (%)";
  const std::vector<std::string> methods = {"tome", "pitome", "random"};
  for (size_t m = 0; m < methods.size(); ++m) {
    ms::Series s;
    s.label = methods[m];
    s.color = ms::color_for_method(methods[m]);
    s.dashed = methods[m] == "random";
    for (int r = 0; r <= 16; r += 2) {
      s.x.push_back(r);
      s.y.push_back(72.2 - (0.02 + 0.03 * m) * r * r);
      s.y_err.push_back(0.3 + 0.05 * r);
    }
    f.lines.push_back(s);
  }
  return f;
}

ms::Figure histograms() {
  ms::Figure f;
  f.title = "Token energy per layer";
  f.x_label = "energy";
  f.y_label = "tokens";
  for (int k = 0; k < 2; ++k) {
    ms::Histogram h;
    h.label = k == 0 ? "layer 3" : "layer 9";
    for (int i = 0; i <= 30; ++i) h.edges.push_back(-1.0 + i * (2.0 / 30));
    const double centre = k == 0 ? -0.25 : 0.3, width = k == 0 ? 0.35 : 0.25;
    for (int i = 0; i < 30; ++i) {
      const double x = 0.5 * (h.edges[i] + h.edges[i + 1]);
      h.counts.push_back(std::round(900 * std::exp(-0.5 * std::pow((x - centre) / width, 2))));
    }
    f.histograms.push_back(h);
  }
  return f;
}

TEST(PlotSvg, HasTitleLabelsLegendAndOnePathPerSeries) {
  const ms::Figure f = three_series();
  const std::string svg = ms::render_svg(f);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"500\""), std::string::npos);
  EXPECT_NE(svg.find(">Top-1 accuracy vs. merge ratio</text>"), std::string::npos);
  EXPECT_NE(svg.find(">tokens merged per layer (r)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">top-1 accuracy (%)</text>"), std::string::npos);
  for (const auto& s : f.lines) EXPECT_NE(svg.find(">" + s.label + "</text>"), std::string::npos) << s.label;
  EXPECT_EQ(count_of(svg, "<path"), f.lines.size());
  EXPECT_EQ(count_of(svg, "<polygon"), f.lines.size());  // one band each
  EXPECT_NE(svg.find("rotate(-90"), std::string::npos);  // y label
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find(ms::color_for_method("pitome")), std::string::npos);
  EXPECT_EQ(count_of(svg, "<svg"), 1u);
  EXPECT_EQ(count_of(svg, "</svg>"), 1u);
}

TEST(PlotSvg, EscapesSpecialCharacters) {
  ms::Figure f = three_series();
  f.title = "A < B & C > D";
  f.lines[0].label = "tome <r=8> & co";
  const std::string svg = ms::render_svg(f);
  EXPECT_NE(svg.find("A &lt; B &amp; C &gt; D"), std::string::npos);
  EXPECT_NE(svg.find("tome &lt;r=8&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(svg.find("A < B"), std::string::npos);
  EXPECT_EQ(svg.find("<r=8>"), std::string::npos);
}

TEST(PlotSvg, HistogramsAreTranslucentBars) {
  const ms::Figure f = histograms();
  const std::string svg = ms::render_svg(f);
  EXPECT_NE(svg.find("fill-opacity=\""), std::string::npos);
  EXPECT_GE(count_of(svg, "<rect"), 40u);  // the bars with counts > 0
  EXPECT_NE(svg.find(">layer 3</text>"), std::string::npos);
  EXPECT_NE(svg.find(">layer 9</text>"), std::string::npos);
}

TEST(PlotTicks, NiceValuesCoverTheRange) {
  const std::vector<std::pair<double, double>> ranges = {{0, 1},        {0, 16},        {0.713, 0.794}, {-3.2, 47.9},
                                                         {1e-9, 3e-9},  {1.2e9, 4.6e9}, {-5, -5},       {0, 0},
                                                         {99.5, 100.5}, {-1e6, 1e6},    {3, 1}};
  for (const auto& [lo, hi] : ranges)
    for (int n : {2, 5, 6, 10}) {
      const auto ticks = ms::nice_ticks(lo, hi, n);
      SCOPED_TRACE(std::to_string(lo) + " .. " + std::to_string(hi) + " n=" + std::to_string(n));
      ASSERT_GE(ticks.size(), 2u);
      EXPECT_LE(ticks.size(), static_cast<size_t>(n + 1));
      const double step = ticks[1] - ticks[0];
      const double tol = 1e-9 * step;
      EXPECT_LE(ticks.front(), std::min(lo, hi) + tol);
      EXPECT_GE(ticks.back(), std::max(lo, hi) - tol);
      const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
      EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 || std::fabs(mantissa - 5) < 1e-6)
          << "step " << step;
      for (size_t i = 0; i < ticks.size(); ++i) {
        EXPECT_NEAR(ticks[i] / step, std::round(ticks[i] / step), 1e-6);  // multiples of the step
        if (i) EXPECT_NEAR(ticks[i] - ticks[i - 1], step, 1e-6 * step);
      }
    }
  EXPECT_EQ(ms::nice_ticks(0, 16, 8), (std::vector<double>{0, 2, 4, 6, 8, 10, 12, 14, 16}));
  EXPECT_EQ(ms::nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  EXPECT_THROW(ms::nice_ticks(0, NAN), ms::Error);
}

TEST(PlotTicks, LabelsHaveTheDecimalsTheStepNeeds) {
  EXPECT_EQ(ms::format_tick(0.25, 0.05), "0.25");
  EXPECT_EQ(ms::format_tick(0.30000000000000004, 0.1), "0.3");
  EXPECT_EQ(ms::format_tick(10, 5), "10");
  EXPECT_EQ(ms::format_tick(-2.5, 0.5), "-2.5");
  EXPECT_EQ(ms::format_tick(-1e-17, 0.1), "0.0");  // zero with the decimals of its neighbours
  EXPECT_EQ(ms::format_tick(0, 5), "0");
  EXPECT_EQ(ms::format_tick(0, 1e6), "0");
  EXPECT_EQ(ms::format_tick(1.5e9, 5e8), "1.5e9");
  EXPECT_EQ(ms::format_tick(2e9, 5e8), "2e9");
  EXPECT_EQ(ms::format_tick(3e-6, 1e-6), "3e-6");
}

TEST(PlotTicks, LargeValuesMoveTheirPowerOfTenIntoTheAxisLabel) {
  ms::Figure f;
  f.x_label = "FLOPs";
  ms::Series s;
  s.x = {0.8e9, 1.0e9, 1.26e9};
  s.y = {1, 2, 3};
  f.lines.push_back(s);
  std::string svg = ms::render_svg(f);
  EXPECT_NE(svg.find(">FLOPs (\u00d710\u2079)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">1.0</text>"), std::string::npos);
  f.x_label.clear();  // no label to carry the factor: each tick says it
  svg = ms::render_svg(f);
  EXPECT_NE(svg.find(">1e9</text>"), std::string::npos);
}

TEST(PlotColors, MethodFamiliesKeepTheirColour) {
  EXPECT_EQ(ms::color_for_method("tome:r=8"), ms::color_for_method("tome"));
  EXPECT_EQ(ms::color_for_method("pitome:ratio=0.9"), ms::color_for_method("pitome"));
  EXPECT_EQ(ms::color_for_method("kmeans"), ms::color_for_method("cluster"));
  const std::vector<std::string> families = {"none",   "tome", "pitome", "pitome-code",
                                             "random", "ltmp", "ltp",    "cluster"};
  for (size_t i = 0; i < families.size(); ++i)
    for (size_t j = i + 1; j < families.size(); ++j)
      EXPECT_NE(ms::color_for_method(families[i]), ms::color_for_method(families[j]))
          << families[i] << " " << families[j];
  EXPECT_EQ(ms::color_for_method("something-new:a=1"), ms::color_for_method("something-new"));
  for (const auto& c : ms::method_palette()) EXPECT_EQ(c.size(), 7u);
  EXPECT_EQ(ms::method_palette().size(), 8u);
}

TEST(PlotPng, HasTheRequestedSizeAndIsNotBlank) {
  const ms::Figure f = three_series();
  const ms::RgbImage img = ms::render_png(f, 2);
  ASSERT_EQ(img.width, 1600);
  ASSERT_EQ(img.height, 1000);
  ASSERT_EQ(img.pixels.size(), 1600u * 1000 * 3);
  size_t non_white = 0;
  for (size_t i = 0; i < img.pixels.size(); i += 3)
    if (img.pixels[i] < 240 || img.pixels[i + 1] < 240 || img.pixels[i + 2] < 240) ++non_white;
  EXPECT_GT(non_white, 20000u);
  const ms::RgbImage small = ms::render_png(f, 1);
  EXPECT_EQ(small.width, 800);
  EXPECT_EQ(small.height, 500);
  EXPECT_THROW(ms::render_png(f, 0), ms::Error);
}

TEST(PlotPng, LinePixelsHaveTheSeriesColourWhereTheDataAre) {
  ms::Figure f;
  f.x_min = 0, f.x_max = 10, f.y_min = 0, f.y_max = 10;
  ms::Series s;
  s.x = {0, 5, 10};
  s.y = {2, 8, 5};
  s.color = "#d55e00";
  s.markers = false;
  f.lines.push_back(s);
  const int scale = 2;
  const ms::RgbImage img = ms::render_png(f, scale);
  const ms::PlotArea a = ms::plot_area(f);
  ASSERT_LT(a.left, a.right);
  ASSERT_LT(a.top, a.bottom);
  auto px = [&](double x) { return (a.left + x / 10 * (a.right - a.left)) * scale; };
  auto py = [&](double y) { return (a.bottom - y / 10 * (a.bottom - a.top)) * scale; };
  const Color want = parse_hex(s.color);
  for (size_t k = 1; k < s.x.size(); ++k)
    for (double t = 0.05; t < 1; t += 0.1) {
      const double x = s.x[k - 1] + t * (s.x[k] - s.x[k - 1]), y = s.y[k - 1] + t * (s.y[k] - s.y[k - 1]);
      const int ix = static_cast<int>(px(x)), iy = static_cast<int>(py(y));
      int best = 1 << 30;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) best = std::min(best, distance(pixel(img, ix + dx, iy + dy), want));
      EXPECT_LT(best, 30) << "no line colour near data (" << x << ", " << y << ")";
    }
  // Away from the line: background or grid, not the series colour.
  const Color far = pixel(img, static_cast<int>(px(5)), static_cast<int>(py(2)));
  EXPECT_GT(distance(far, want), 200);
}

TEST(PlotPng, ErrorBandIsATranslucentFill) {
  ms::Figure f;
  f.x_min = 0, f.x_max = 10, f.y_min = 0, f.y_max = 10;
  ms::Series s;
  s.x = {0, 10};
  s.y = {5, 5};
  s.y_err = {2, 2};
  s.color = "#0072b2";
  s.markers = false;
  f.lines.push_back(s);
  const ms::RgbImage img = ms::render_png(f, 1);
  const ms::PlotArea a = ms::plot_area(f);
  const int x = static_cast<int>(a.left + 0.55 * (a.right - a.left));
  const int y_band = static_cast<int>(a.bottom - 0.35 * (a.bottom - a.top));  // y = 3.5: inside the band
  const int y_out = static_cast<int>(a.bottom - 0.15 * (a.bottom - a.top));   // y = 1.5: outside
  const Color band = pixel(img, x, y_band), out = pixel(img, x, y_out), line = parse_hex(s.color);
  EXPECT_EQ(distance(out, {255, 255, 255}), 0);
  EXPECT_GT(distance(band, {255, 255, 255}), 60);  // tinted
  EXPECT_GT(distance(band, line), 150);            // but far lighter than the line
  EXPECT_GT(band.b, band.r);                       // with the series' hue
}

TEST(PlotPng, TextIsDrawnWithTheFontAndTheYLabelIsRotated) {
  if (ms::plot_font_file().empty()) GTEST_SKIP() << "fontconfig finds no font on this system";
  ms::Figure f = three_series();
  f.y_label = "a long rotated y label";
  const ms::PlotArea a = ms::plot_area(f);
  const ms::RgbImage with = ms::render_png(f, 1);
  // Dark pixels left of the tick labels: the y label, taller than wide.
  int x0 = 1 << 30, x1 = -1, y0 = 1 << 30, y1 = -1;
  for (int y = 0; y < with.height; ++y)
    for (int x = 0; x < 24; ++x)
      if (pixel(with, x, y).r < 128)
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  ASSERT_GE(x1, 0) << "no y label pixels";
  EXPECT_GT(y1 - y0, 4 * (x1 - x0));
  // The title is above the plot; without it that band stays white.
  auto dark_above = [&](const ms::RgbImage& img, const ms::PlotArea& area) {
    int n = 0;
    for (int y = 0; y < static_cast<int>(area.top) - 2; ++y)
      for (int x = 0; x < img.width; ++x) n += pixel(img, x, y).r < 128;
    return n;
  };
  EXPECT_GT(dark_above(with, a), 100);
  f.title.clear();
  EXPECT_EQ(dark_above(ms::render_png(f, 1), ms::plot_area(f)), 0);
}

// The box a text item covers (figure pixels): from its baseline up by the digit height, as wide as measured.
ms::PlotArea text_box(const ms::TextItem& t) {
  const double w = ms::plot_text_width(t.text, t.size, t.bold);
  const double left = t.at.x - (t.anchor == ms::TextAnchor::Middle ? w / 2 : t.anchor == ms::TextAnchor::End ? w : 0);
  return {left, t.at.y - 0.73 * t.size, left + w, t.at.y};
}

TEST(PlotPng, TitlePixelsAreWhereTheLayoutPutThem) {
  if (ms::plot_font_file().empty()) GTEST_SKIP() << "fontconfig finds no font on this system";
  const ms::Figure f = three_series();
  const ms::FigureLayout layout = ms::figure_layout(f);
  ASSERT_EQ(layout.title.text, f.title);
  const ms::PlotArea box = text_box(layout.title);
  const int scale = 2;
  const ms::RgbImage img = ms::render_png(f, scale);
  // Text pixels (dark, grey ink) fill a good part of the title's box, and none of the title band outside it.
  int inside = 0, inside_total = 0, outside = 0;
  for (int y = 0; y < static_cast<int>(layout.plot.top * scale) - 4; ++y)
    for (int x = 0; x < img.width; ++x) {
      const bool dark = pixel(img, x, y).r < 128;
      const double fx = (x + 0.5) / scale, fy = (y + 0.5) / scale;
      // Descenders and the bold face's overhang may reach a little past the digit box.
      const bool in = fx >= box.left - 2 && fx <= box.right + 2 && fy >= box.top - 4 && fy <= box.bottom + 4;
      if (in) inside += dark, ++inside_total;
      if (!in) outside += dark;
    }
  EXPECT_GT(inside, inside_total / 10) << "too few text pixels in the title's box";
  EXPECT_EQ(outside, 0) << "text pixels in the title band outside the title's box";
  ms::Figure untitled = f;
  untitled.title = " ";  // the same room above the plot, no glyphs
  ASSERT_EQ(ms::plot_area(untitled).top, layout.plot.top);
  const ms::RgbImage blank = ms::render_png(untitled, scale);
  int dark = 0;
  for (int y = static_cast<int>(box.top * scale); y < static_cast<int>(box.bottom * scale); ++y)
    for (int x = static_cast<int>(box.left * scale); x < static_cast<int>(box.right * scale); ++x)
      dark += pixel(blank, x, y).r < 128;
  EXPECT_EQ(dark, 0);
}

TEST(PlotPng, BadTextDoesNotBreakThePlot) {
  ms::Figure f = three_series();
  f.title = "bad \xff\xfe UTF-8 and a\tcontrol \x01 character";
  f.lines[0].label = std::string("cut \xe2\x82", 6);
  const ms::RgbImage img = ms::render_png(f, 1);
  size_t non_white = 0;
  for (size_t i = 0; i < img.pixels.size(); i += 3) non_white += img.pixels[i] < 240;
  EXPECT_GT(non_white, 3000u);
  EXPECT_NE(ms::render_pdf(f).rfind("%PDF-", 0), std::string::npos);
  const std::string svg = ms::render_svg(f);
  EXPECT_EQ(svg.find('\x01'), std::string::npos);
}

TEST(PlotData, LogYRejectsNonPositiveData) {
  ms::Figure f = three_series();
  f.log_y = true;
  EXPECT_NO_THROW(ms::render_svg(f));
  EXPECT_NO_THROW(ms::render_png(f, 1));
  f.lines[1].y[3] = 0;
  try {
    ms::render_png(f, 1);
    FAIL() << "expected ms::Error";
  } catch (const ms::Error& e) {
    EXPECT_NE(std::string(e.what()).find("log_y"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pitome"), std::string::npos) << e.what();
  }
  f.lines[1].y[3] = -1;
  EXPECT_THROW(ms::render_svg(f), ms::Error);
  ms::Figure g = three_series();
  g.log_y = true;
  g.y_min = 0;
  EXPECT_THROW(ms::render_svg(g), ms::Error);
}

TEST(PlotData, InconsistentDataIsAnError) {
  ms::Figure f = three_series();
  f.lines[0].y.pop_back();
  EXPECT_THROW(ms::render_svg(f), ms::Error);
  f = three_series();
  f.lines[0].y_err.resize(2);
  EXPECT_THROW(ms::render_svg(f), ms::Error);
  f = three_series();
  f.lines[0].color = "blue";
  EXPECT_THROW(ms::render_svg(f), ms::Error);
  ms::Figure h = histograms();
  h.histograms[0].edges.pop_back();
  EXPECT_THROW(ms::render_svg(h), ms::Error);
  h = histograms();
  h.histograms[0].counts[2] = -1;
  EXPECT_THROW(ms::render_svg(h), ms::Error);
  h = histograms();
  h.x_min = 1, h.x_max = 0;
  EXPECT_THROW(ms::render_svg(h), ms::Error);
  // Gaps (NaN) are fine, and so is an empty figure.
  f = three_series();
  f.lines[0].y[4] = NAN;
  EXPECT_NO_THROW(ms::render_png(f, 1));
  EXPECT_NO_THROW(ms::render_png(ms::Figure{}, 1));
}

TEST(PlotSave, WritesSvgPngAndPdf) {
  const std::string base = testing::TempDir() + "mergescope_test_plot";
  ms::save_figure(three_series(), base);
  EXPECT_EQ(ms::figure_formats(), (std::vector<std::string>{".svg", ".png", ".pdf"}));
  std::ifstream svg(base + ".svg"), png(base + ".png", std::ios::binary), pdf(base + ".pdf", std::ios::binary);
  ASSERT_TRUE(svg && png && pdf);
  std::string head(5, '\0');
  svg.read(&head[0], 5);
  EXPECT_EQ(head, "<?xml");
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  pdf.read(&head[0], 5);
  EXPECT_EQ(head, "%PDF-");
  for (const auto& ext : ms::figure_formats()) std::remove((base + ext).c_str());
}

TEST(PlotSave, UnwritablePathIsAnErrorNamingIt) {
  const std::string base = "/nonexistent-mergescope-dir/sub/plot";
  try {
    ms::save_figure(three_series(), base);
    FAIL() << "expected ms::Error";
  } catch (const ms::Error& e) {
    EXPECT_NE(std::string(e.what()).find(base + ".svg"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------------------
// PDF, checked with poppler-utils (scripts/install-deps.sh installs it).

// stdout of a shell command, and its exit status.
std::string run(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) {
    *status = -1;
    return out;
  }
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *status = pclose(p);
  return out;
}

bool have(const char* tool) {
  int status = 0;
  run(std::string("command -v ") + tool + " >/dev/null 2>&1", &status);
  return status == 0;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(PlotPdf, IsAValidOnePagePdfWithTheTitleAsText) {
  ASSERT_TRUE(have("pdftotext") && have("pdfinfo")) << "poppler-utils is missing (scripts/install-deps.sh)";
  const ms::Figure f = three_series();
  const std::string pdf = ms::render_pdf(f);
  ASSERT_EQ(pdf.rfind("%PDF-", 0), 0u);
  EXPECT_NE(pdf.find("%%EOF", pdf.size() - 16), std::string::npos);
  const std::string path = write_temp("mergescope_test_plot.pdf", pdf);
  int status = 0;
  const std::string info = run("pdfinfo '" + path + "' 2>&1", &status);
  ASSERT_EQ(status, 0) << info;
  EXPECT_TRUE(std::regex_search(info, std::regex("Pages:\\s+1\\n"))) << info;
  EXPECT_TRUE(std::regex_search(info, std::regex("Page size:\\s+600 x 375 pts"))) << info;  // 0.75 pt per px
  EXPECT_TRUE(std::regex_search(info, std::regex("Title:\\s+" + std::string("Top-1 accuracy")))) << info;

  const std::string text = run("pdftotext -layout '" + path + "' - 2>&1", &status);
  ASSERT_EQ(status, 0) << text;
  EXPECT_NE(text.find(f.title), std::string::npos) << text;
  EXPECT_NE(text.find(f.x_label), std::string::npos) << text;
  for (const auto& s : f.lines) EXPECT_NE(text.find(s.label), std::string::npos) << s.label << "\n" << text;
  for (const auto& t : ms::figure_layout(f).y.ticks)
    EXPECT_NE(text.find(t.label.text), std::string::npos) << t.label.text;

  // Without a title the page text has none: pdftotext reads the page, not the document's metadata.
  ms::Figure untitled = f;
  untitled.title.clear();
  const std::string path2 = write_temp("mergescope_test_plot_untitled.pdf", ms::render_pdf(untitled));
  EXPECT_EQ(run("pdftotext '" + path2 + "' - 2>&1", &status).find(f.title), std::string::npos);
  std::remove(path.c_str());
  std::remove(path2.c_str());
}

TEST(PlotPdf, TextIsWhereTheLayoutPutIt) {
  ASSERT_TRUE(have("pdftotext")) << "poppler-utils is missing (scripts/install-deps.sh)";
  const ms::Figure f = three_series();
  const ms::FigureLayout layout = ms::figure_layout(f);
  const std::string path = write_temp("mergescope_test_plot_bbox.pdf", ms::render_pdf(f));
  int status = 0;
  const std::string words = run("pdftotext -bbox '" + path + "' - 2>&1", &status);
  ASSERT_EQ(status, 0) << words;
  // The title's first word starts at the layout's left edge of the title (0.75 pt per figure pixel) and the
  // last x tick label sits centred on its tick.
  auto word_box = [&](const std::string& word, double* x_min, double* x_max) {
    const std::regex re("<word xMin=\"([0-9.]+)\" yMin=\"[0-9.]+\" xMax=\"([0-9.]+)\" yMax=\"[0-9.]+\">" + word +
                        "</word>");
    std::smatch m;
    if (!std::regex_search(words, m, re)) return false;
    *x_min = std::stod(m[1]) / 0.75;
    *x_max = std::stod(m[2]) / 0.75;
    return true;
  };
  double x0 = 0, x1 = 0;
  ASSERT_TRUE(word_box("Top-1", &x0, &x1)) << words;
  EXPECT_NEAR(x0, text_box(layout.title).left, 1.5);
  const ms::Tick& last = layout.x.ticks.back();
  ASSERT_TRUE(word_box(last.label.text, &x0, &x1)) << words;
  EXPECT_NEAR((x0 + x1) / 2, last.pos, 1.5);
  std::remove(path.c_str());
}

// ---------------------------------------------------------------------------------------------------------
// The layout

TEST(PlotLayout, TicksAreInsideThePlotAndLabelledAtTheirPositions) {
  const ms::Figure f = three_series();
  const ms::FigureLayout L = ms::figure_layout(f, 700, 420);
  EXPECT_EQ(L.width, 700);
  EXPECT_EQ(L.height, 420);
  ASSERT_GE(L.x.ticks.size(), 3u);
  ASSERT_GE(L.y.ticks.size(), 3u);
  for (const ms::Tick& t : L.x.ticks) {
    EXPECT_GE(t.pos, L.plot.left - 1e-9);
    EXPECT_LE(t.pos, L.plot.right + 1e-9);
    EXPECT_DOUBLE_EQ(t.pos, L.x.to_px(t.value));
    EXPECT_DOUBLE_EQ(t.label.at.x, t.pos);
    EXPECT_GT(t.label.at.y, L.plot.bottom);
    EXPECT_EQ(t.label.anchor, ms::TextAnchor::Middle);
  }
  for (const ms::Tick& t : L.y.ticks) {
    EXPECT_GE(t.pos, L.plot.top - 1e-9);
    EXPECT_LE(t.pos, L.plot.bottom + 1e-9);
    EXPECT_LT(t.label.at.x, L.plot.left);
    EXPECT_EQ(t.label.anchor, ms::TextAnchor::End);
  }
  EXPECT_DOUBLE_EQ(L.x.to_px(L.x.lo), L.plot.left);
  EXPECT_DOUBLE_EQ(L.x.to_px(L.x.hi), L.plot.right);
  EXPECT_DOUBLE_EQ(L.y.to_px(L.y.lo), L.plot.bottom);
  EXPECT_DOUBLE_EQ(L.y.to_px(L.y.hi), L.plot.top);
  // Pure: the same figure at the same size gives the same layout; the figure's own size is not used.
  ms::Figure g = f;
  g.width = 300;
  const ms::FigureLayout again = ms::figure_layout(g, 700, 420);
  EXPECT_EQ(again.plot.left, L.plot.left);
  EXPECT_EQ(again.legend.box.left, L.legend.box.left);
  ASSERT_EQ(again.x.ticks.size(), L.x.ticks.size());
  for (size_t k = 0; k < L.x.ticks.size(); ++k) EXPECT_EQ(again.x.ticks[k].label.text, L.x.ticks[k].label.text);
  EXPECT_THROW(ms::figure_layout(f, 40, 30), ms::Error);
}

TEST(PlotLayout, SeriesSplitAtNonFinitePointsAndBandsFollow) {
  ms::Figure f;
  ms::Series s;
  s.x = {0, 1, 2, 3, 4, 5, 6};
  s.y = {1, 2, NAN, 3, 4, INFINITY, 5};
  s.y_err = {0.1, 0.1, 0.1, 0.1, NAN, 0.1, 0.1};
  f.lines.push_back(s);
  const ms::FigureLayout L = ms::figure_layout(f);
  ASSERT_EQ(L.series.size(), 1u);
  const auto& runs = L.series[0].runs;
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].size(), 2u);
  EXPECT_EQ(runs[1].size(), 2u);
  EXPECT_EQ(runs[2].size(), 1u);
  EXPECT_DOUBLE_EQ(runs[1][0].x, L.x.to_px(3));
  EXPECT_DOUBLE_EQ(runs[1][0].y, L.y.to_px(3));
  EXPECT_EQ(L.series[0].markers.size(), 5u);
  ASSERT_EQ(L.series[0].bands.size(), 1u);  // {0, 1}; 3 stands alone, 4 has no error, 6 alone
  EXPECT_DOUBLE_EQ(L.series[0].bands[0].upper[1].y, L.y.to_px(2.1));
  EXPECT_DOUBLE_EQ(L.series[0].bands[0].lower[1].y, L.y.to_px(1.9));
  EXPECT_FALSE(L.empty);
  EXPECT_TRUE(L.note.text.empty());
  EXPECT_EQ(ms::figure_layout(ms::Figure{}).note.text, "no data");
}

TEST(PlotLayout, AutoLegendSitsInAFreeCornerAndLongLegendsAreCut) {
  ms::Figure f;
  ms::Series rising;
  rising.label = "rising";
  rising.x = {0, 1, 2, 3, 4};
  rising.y = {0, 1, 2, 3, 4};
  f.lines.push_back(rising);
  ms::FigureLayout L = ms::figure_layout(f);
  ASSERT_TRUE(L.legend.shown);
  EXPECT_EQ(L.legend.placement, ms::LegendPlacement::TopLeft);  // the data leave the top-right corner
  EXPECT_LT(L.legend.box.right, (L.plot.left + L.plot.right) / 2);
  f.legend = ms::LegendPlacement::Hidden;
  EXPECT_FALSE(ms::figure_layout(f).legend.shown);

  ms::Figure many;
  for (int i = 0; i < 60; ++i) {
    ms::Series s;
    s.label = "series " + std::to_string(i) + std::string(i == 3 ? 400 : 0, 'x');
    s.x = {0, 1};
    s.y = {1.0 * i, 2.0 * i};
    many.lines.push_back(s);
  }
  L = ms::figure_layout(many);
  ASSERT_TRUE(L.legend.shown);
  EXPECT_LE(L.legend.box.bottom, L.height);
  EXPECT_LE(L.legend.box.right, L.width);
  EXPECT_LT(L.legend.rows.size(), 60u);
  EXPECT_EQ(L.legend.rows.back().label.text.rfind("\u2026 and ", 0), 0u) << L.legend.rows.back().label.text;
  EXPECT_NE(L.legend.rows[3].label.text.find("\u2026"), std::string::npos);  // the long label, shortened
}

TEST(PlotLayout, LongTitleShrinksThenIsShortenedToFit) {
  ms::Figure f = three_series();
  f.title = std::string(300, 'W');
  const ms::FigureLayout L = ms::figure_layout(f, 600, 400);
  const ms::PlotArea box = text_box(L.title);
  EXPECT_GE(box.left, 0);
  EXPECT_LE(box.right, 600);
  EXPECT_LT(L.title.size, 15);
  EXPECT_NE(L.title.text.find("\u2026"), std::string::npos);
}

// A title with spaces that is too wide for one line breaks into two at full size (the app's figure titles in a
// narrow pane); both lines fit, together they are the title, and the plot starts below the second.
TEST(PlotLayout, LongTitleWithSpacesWrapsToTwoLines) {
  ms::Figure f = three_series();
  const ms::FigureLayout one_line = ms::figure_layout(f, 420, 300);
  f.title = "Largest Laplacian eigenvalues after block 8: original vs lifted";
  const ms::FigureLayout L = ms::figure_layout(f, 420, 300);
  ASSERT_FALSE(L.title_continued.text.empty()) << L.title.text;
  EXPECT_EQ(L.title.text + " " + L.title_continued.text, f.title);
  EXPECT_EQ(L.title.size, 15);
  EXPECT_EQ(L.title_continued.size, 15);
  const ms::PlotArea first = text_box(L.title), second = text_box(L.title_continued);
  for (const ms::PlotArea& box : {first, second}) {
    EXPECT_GE(box.left, 0);
    EXPECT_LE(box.right, 420);
  }
  EXPECT_GE(second.top, first.bottom);   // below the first line, not over it
  EXPECT_LE(second.bottom, L.plot.top);  // and above the plot
  EXPECT_GT(L.plot.top, one_line.plot.top);
  // Painted: the second line is drawn as text like the first.
  std::vector<std::string> drawn;
  struct Recorder : ms::PlotPainter {
    std::vector<std::string>* out;
    void clip(const ms::Box*) override {}
    void line(ms::Point, ms::Point, const ms::Stroke&, const char*) override {}
    void path(const std::vector<std::vector<ms::Point>>&, const ms::Stroke&, const char*) override {}
    void band(const ms::Band&, const ms::Rgba&) override {}
    void bars(const std::vector<ms::Box>&, const ms::Rgba&) override {}
    void rect(const ms::Box&, const ms::Rgba*, const ms::Stroke*, const char*) override {}
    void marker(ms::Point, double, const ms::Rgba&, const ms::Stroke&) override {}
    void text(const ms::TextItem& t) override { out->push_back(t.text); }
  } recorder;
  recorder.out = &drawn;
  ms::paint_figure(L, recorder);
  EXPECT_NE(std::find(drawn.begin(), drawn.end(), L.title_continued.text), drawn.end());
}

// Writes the example figures (to look at) when MERGESCOPE_PLOT_EXAMPLES names a directory.
TEST(PlotExamples, WriteWhenAsked) {
  const char* dir = std::getenv("MERGESCOPE_PLOT_EXAMPLES");
  if (!dir || !*dir) GTEST_SKIP() << "set MERGESCOPE_PLOT_EXAMPLES=<dir> to write example plots";
  ms::save_figure(three_series(), std::string(dir) + "/plot_example");
  ms::save_figure(histograms(), std::string(dir) + "/plot_hist");
  ms::Figure fig = three_series();
  fig.title = "Latency (log scale)";
  fig.y_label = "ms per image";
  fig.log_y = true;
  for (size_t m = 0; m < fig.lines.size(); ++m) {
    ms::Series& s = fig.lines[m];
    for (size_t i = 0; i < s.y.size(); ++i) {
      s.y[i] = std::pow(10.0, 0.3 * i) * (1 + 0.6 * m);
      s.y_err[i] = 0.15 * s.y[i];
    }
  }
  ms::save_figure(fig, std::string(dir) + "/plot_log");
  ms::Figure narrow = three_series();
  narrow.title = "Largest Laplacian eigenvalues after block 8: original vs lifted";
  narrow.width = 420;
  narrow.height = 300;
  ms::save_figure(narrow, std::string(dir) + "/plot_two_line_title");
}

}  // namespace
