// Plots: SVG structure and escaping, tick choice, PNG rasterisation (size, colours where the data are, text),
// data checks and file errors. MERGESCOPE_PLOT_EXAMPLES=<dir> also writes example figures there to look at.
#include "plot.h"

#include "error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
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
  if (!ms::plot_font_available()) GTEST_SKIP() << "no TrueType font on this system";
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

TEST(PlotPng, WithoutAFontThePlotIsStillDrawn) {
  const bool had_font = ms::plot_font_available();
  testing::internal::CaptureStderr();
  EXPECT_FALSE(ms::set_plot_font("/nonexistent/font.ttf"));
  const ms::RgbImage img = ms::render_png(three_series(), 1);
  ms::render_png(three_series(), 1);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(ms::set_plot_font("") || !had_font);
  EXPECT_EQ(img.width, 800);
  size_t non_white = 0;
  for (size_t i = 0; i < img.pixels.size(); i += 3) non_white += img.pixels[i] < 240;
  EXPECT_GT(non_white, 3000u);
  if (had_font) {
    EXPECT_NE(err.find("no TrueType font"), std::string::npos) << err;
    EXPECT_EQ(count_of(err, "warning"), 1u) << err;  // once per process
  }
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

TEST(PlotSave, WritesSvgAndPng) {
  const std::string base = testing::TempDir() + "mergescope_test_plot";
  ms::save_figure(three_series(), base);
  std::ifstream svg(base + ".svg"), png(base + ".png", std::ios::binary);
  ASSERT_TRUE(svg && png);
  std::string head(5, '\0');
  svg.read(&head[0], 5);
  EXPECT_EQ(head, "<?xml");
  char magic[4] = {};
  png.read(magic, 4);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
  std::remove((base + ".svg").c_str());
  std::remove((base + ".png").c_str());
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
}

}  // namespace
