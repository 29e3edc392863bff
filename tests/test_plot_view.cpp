// The ImDrawList plot widget in a windowless ImGui context (no backend, no display): the screen draws the
// exported layout (the same text at the same places, the same ticks, ranges and legend box as the SVG of the
// figure at the size shown), awkward figures draw without leaving the reserved rectangle, hovering a known
// point or bin or heatmap cell reads it out, the CSV reads back exactly, and exports write their four files or
// fail naming the file.
#include "plot_view.h"

#include "error.h"

#include <gtest/gtest.h>
#include <imgui.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using ms::gui::PlotHover;

constexpr float kVertexSlack = 1.0f;  // anti-aliasing fringes may reach half a pixel out

class PlotView : public ::testing::Test {
 protected:
  void SetUp() override {
    context_ = ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.DisplaySize = ImVec2(1280, 800);
    io.DeltaTime = 1.0f / 60;
    io.IniFilename = nullptr;
    unsigned char* pixels = nullptr;
    int w = 0, h = 0;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h);
  }
  void TearDown() override { ImGui::DestroyContext(context_); }

  // One frame with `body` inside a full-screen window; returns the draw data.
  ImDrawData* frame(const std::function<void()>& body) {
    ImGui::GetIO().DeltaTime = 1.0f / 60;
    ImGui::NewFrame();
    // Inset, so the window's own border fringe stays on the display too.
    ImGui::SetNextWindowPos(ImVec2(10, 10));
    ImGui::SetNextWindowSize(ImVec2(ImGui::GetIO().DisplaySize.x - 20, ImGui::GetIO().DisplaySize.y - 20));
    ImGui::Begin("plots", nullptr, ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove);
    body();
    ImGui::End();
    ImGui::Render();
    return ImGui::GetDrawData();
  }

  // Draws `fig` and checks that every vertex it added lies inside the rectangle it reserved, and that all
  // vertices of the frame lie on the display.
  void draw_checked(const ms::Figure& fig, ImVec2 size = ImVec2(600, 400)) {
    PlotHover hover;
    ImVec2 mn, mx;
    int first = 0, last = 0;
    ImDrawList* list = nullptr;
    ImDrawData* data = frame([&] {
      list = ImGui::GetWindowDrawList();
      first = list->VtxBuffer.Size;
      ms::gui::draw_figure("fig", fig, size, &hover);
      last = list->VtxBuffer.Size;
      mn = ImGui::GetItemRectMin();
      mx = ImGui::GetItemRectMax();
    });
    EXPECT_NEAR(mx.x - mn.x, size.x, 0.5f);
    EXPECT_NEAR(mx.y - mn.y, size.y, 0.5f);
    EXPECT_GT(last, first) << "nothing drawn for '" << fig.title << "'";
    auto within = [](ImVec2 p, ImVec2 lo, ImVec2 hi) {
      return p.x >= lo.x - kVertexSlack && p.x <= hi.x + kVertexSlack && p.y >= lo.y - kVertexSlack &&
             p.y <= hi.y + kVertexSlack;
    };
    for (int i = first; i < last; ++i) {
      const ImVec2 p = list->VtxBuffer[i].pos;
      if (!within(p, mn, mx)) {
        ADD_FAILURE() << "figure '" << fig.title << "' at " << size.x << "x" << size.y << ": vertex (" << p.x << ", "
                      << p.y << ") outside [" << mn.x << ", " << mx.x << "] x [" << mn.y << ", " << mx.y << "]";
        return;
      }
    }
    for (int l = 0; l < data->CmdListsCount; ++l)
      for (const ImDrawVert& v : data->CmdLists[l]->VtxBuffer)
        if (!within(v.pos, ImVec2(0, 0), ImVec2(1280, 800))) {
          ADD_FAILURE() << "vertex (" << v.pos.x << ", " << v.pos.y << ") off the display";
          return;
        }
  }

  // Moves the mouse to `at` (screen) and draws `fig` a few frames; returns the last hover.
  PlotHover hover_at(const ms::Figure& fig, ImVec2 size, const std::function<ImVec2(const ms::gui::PlotLayout&)>& at,
                     bool* hovered = nullptr) {
    ms::gui::PlotLayout layout;
    frame([&] {
      const ImVec2 top_left = ImGui::GetCursorScreenPos();
      layout = ms::gui::layout_figure(fig, top_left, size);
      ms::gui::draw_figure("fig", fig, size);
    });
    ImGui::GetIO().MousePos = at(layout);
    PlotHover hover;
    bool h = false;
    for (int k = 0; k < 3; ++k) frame([&] { h = ms::gui::draw_figure("fig", fig, size, &hover); });
    if (hovered) *hovered = h;
    return hover;
  }

  ImGuiContext* context_ = nullptr;
};

ms::Series line(const std::string& label, std::vector<double> x, std::vector<double> y,
                std::vector<double> y_err = {}) {
  ms::Series s;
  s.label = label;
  s.x = std::move(x);
  s.y = std::move(y);
  s.y_err = std::move(y_err);
  return s;
}

ms::Figure accuracy_figure() {
  ms::Figure f;
  f.title = "Accuracy vs keep ratio";
  f.x_label = "keep ratio";
  f.y_label = "top-1 (%)";
  ms::Series a;
  a.label = "tome";
  a.x = {0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  a.y = {62.5, 68.25, 71.0, 72.5, 73.0, 73.25};
  a.y_err = {1.0, 0.8, 0.5, 0.4, 0.3, 0.2};
  a.color = ms::color_for_method("tome");
  ms::Series b = a;
  b.label = "pitome";
  b.y = {64.0, 69.5, 71.75, 72.75, 73.125, 73.25};
  b.color = "#d50";
  b.dashed = true;
  b.markers = false;
  f.lines = {a, b};
  return f;
}

ms::Figure energy_histogram() {
  ms::Figure f;
  f.title = "Energy";
  f.x_label = "energy";
  f.y_label = "tokens";
  ms::Histogram h;
  h.label = "layer 3";
  h.edges = {-1.0, -0.5, 0.0, 0.5, 1.0};
  h.counts = {3, 10, 25, 8};
  f.histograms = {h};
  return f;
}

TEST_F(PlotView, AwkwardFiguresStayInsideTheirRectangle) {
  const double nan = std::nan("");
  std::vector<ms::Figure> figures;
  figures.push_back(ms::Figure{});  // empty: "no data"
  {
    ms::Figure f;
    f.title = "NaN gaps";
    f.lines.push_back(line("gappy", {0, 1, 2, 3, 4, 5}, {1, nan, 2, 3, nan, 1}));
    f.lines.push_back(line("all nan", {nan, nan}, {nan, nan}));
    figures.push_back(f);
  }
  {
    ms::Figure f;
    f.title = "single point";
    f.lines.push_back(line("one", {3}, {7}, {0.5}));
    f.lines.back().markers = false;
    figures.push_back(f);
  }
  {
    ms::Figure f;
    f.title = "constant";
    f.lines.push_back(line("flat", {0, 1, 2}, {5, 5, 5}));
    f.lines.back().dashed = true;
    f.lines.push_back(line("vertical", {1, 1}, {0, 0}));
    figures.push_back(f);
  }
  {
    ms::Figure f = accuracy_figure();
    f.title = "log y";
    f.log_y = true;
    f.lines[0].y = {1e-4, 1e-2, 1, 1e2, 1e4, 1e6};
    f.lines[1].y = {-1, 0, 1, 2, 3, 4};  // non-positive values on a log axis are skipped, not fatal
    f.histograms = energy_histogram().histograms;
    f.histograms[0].counts = {0, 10, 2500, 8};
    figures.push_back(f);
  }
  {
    ms::Figure f = accuracy_figure();
    f.title = "fixed ranges cut the data, legend outside";
    f.x_min = 0.65;
    f.x_max = 0.85;
    f.y_min = 70;
    f.y_max = 72;
    f.legend = ms::LegendPlacement::OutsideRight;
    figures.push_back(f);
  }
  {
    ms::Figure f = energy_histogram();
    f.lines = accuracy_figure().lines;
    f.lines[0].x = {-1e300, 0, 1e300, 2, 3, 4};
    f.lines[1].x.resize(3);  // x and y of different lengths
    f.lines[1].color = "not a colour";
    f.histograms[0].edges.pop_back();  // edges do not match the counts
    f.title = std::string(300, 'W');   // wider than the plot
    figures.push_back(f);
  }
  {
    ms::Figure f = energy_histogram();
    f.title = "many legend rows";
    for (int i = 0; i < 40; ++i) f.lines.push_back(line("series " + std::to_string(i), {0, 1}, {1.0 * i, 2.0 * i}));
    figures.push_back(f);
  }
  for (const auto& f : figures) {
    draw_checked(f);
    draw_checked(f, ImVec2(120, 90));  // cramped
    draw_checked(f, ImVec2(20, 15));   // too small for axes
  }
}

TEST_F(PlotView, LayoutMapsDataRangeOntoTheAxes) {
  const ms::Figure f = accuracy_figure();
  ms::gui::PlotLayout L;
  frame([&] { L = ms::gui::layout_figure(f, ImVec2(10, 20), ImVec2(600, 400)); });
  ASSERT_FALSE(L.empty);
  EXPECT_GT(L.area_min.x, 10);
  EXPECT_LT(L.area_max.x, 610);
  EXPECT_GT(L.area_min.y, 20);
  EXPECT_LT(L.area_max.y, 420);
  EXPECT_LT(L.x_lo, 0.5);
  EXPECT_GT(L.x_hi, 1.0);
  EXPECT_NEAR(L.to_screen(L.x_lo, L.y_lo).x, L.area_min.x, 1e-3);
  EXPECT_NEAR(L.to_screen(L.x_lo, L.y_lo).y, L.area_max.y, 1e-3);
  EXPECT_NEAR(L.to_screen(L.x_hi, L.y_hi).x, L.area_max.x, 1e-3);
  EXPECT_NEAR(L.to_screen(L.x_hi, L.y_hi).y, L.area_min.y, 1e-3);

  ms::Figure flat;
  flat.lines.push_back(line("flat", {2, 2}, {5, 5}));
  frame([&] { L = ms::gui::layout_figure(flat, ImVec2(0, 0), ImVec2(600, 400)); });
  EXPECT_LT(L.x_lo, 2);
  EXPECT_GT(L.x_hi, 2);
  EXPECT_LT(L.y_lo, 5);
  EXPECT_GT(L.y_hi, 5);

  ms::Figure logf = flat;
  logf.log_y = true;
  logf.lines[0].y = {10, 1000};
  frame([&] { L = ms::gui::layout_figure(logf, ImVec2(0, 0), ImVec2(600, 400)); });
  EXPECT_TRUE(std::isnan(L.to_screen(2, 0).y));
  EXPECT_LT(L.y_lo, 1.0);  // log10 units
  EXPECT_GT(L.y_hi, 3.0);

  // What the export would refuse is not drawn but explained, as the export's error says it.
  ms::Figure bad = accuracy_figure();
  bad.lines[1].x.pop_back();
  frame([&] { L = ms::gui::layout_figure(bad, ImVec2(0, 0), ImVec2(600, 400)); });
  EXPECT_TRUE(L.empty);
  EXPECT_NE(L.error.find("series 'pitome': x has 5 values, y has 6"), std::string::npos) << L.error;
  frame([&] { L = ms::gui::layout_figure(f, ImVec2(0, 0), ImVec2(50, 40)); });
  EXPECT_EQ(L.error, "too small");
}

// The screen against the SVG export of the figure at the size shown: every text (role, string, anchor point),
// every tick mark and the legend box are where the export put them, and the axis ranges are the export's.
struct SvgText {
  std::string role, text;
  double x, y;
};

std::vector<SvgText> svg_texts(const std::string& svg) {
  std::vector<SvgText> out;
  const std::regex re("<text class=\"([a-z-]+)\" x=\"([-0-9.]+)\" y=\"([-0-9.]+)\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back({(*it)[1], (*it)[4], std::stod((*it)[2]), std::stod((*it)[3])});
  return out;
}

// x1 y1 x2 y2 of the SVG's lines of one class, or x y width height of its rectangles of one class.
std::vector<std::array<double, 4>> svg_shapes(const std::string& svg, const std::string& element,
                                              const std::string& role) {
  const std::string a = element == "line" ? "x1" : "x", b = element == "line" ? "y1" : "y";
  const std::string c = element == "line" ? "x2" : "width", d = element == "line" ? "y2" : "height";
  const std::regex re("<" + element + " class=\"" + role + "\" " + a + "=\"([-0-9.]+)\" " + b + "=\"([-0-9.]+)\" " + c +
                      "=\"([-0-9.]+)\" " + d + "=\"([-0-9.]+)\"");
  std::vector<std::array<double, 4>> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back({std::stod((*it)[1]), std::stod((*it)[2]), std::stod((*it)[3]), std::stod((*it)[4])});
  return out;
}

TEST_F(PlotView, ScreenDrawsTheExportedLayout) {
  constexpr double kTol = 0.011;  // the SVG writes two decimals
  std::vector<ms::Figure> figures = {accuracy_figure(), energy_histogram()};
  {
    ms::Figure f = accuracy_figure();
    f.title = "log y, legend outside";
    f.log_y = true;
    f.lines[0].y = {1e-2, 1, 1e2, 1e4, 1e5, 1e6};
    f.lines[1].y = {3, 30, 300, 3000, 30000, 300000};
    f.legend = ms::LegendPlacement::OutsideRight;
    figures.push_back(f);
  }
  {
    ms::Figure f = energy_histogram();
    f.title = "large x values, fixed ranges, series over bars";
    f.x_label = "MACs";
    for (double& e : f.histograms[0].edges) e = 1e9 + 1e8 * e;
    f.lines.push_back(line("mean", {0.95e9, 1.05e9}, {20, 12}));
    f.y_min = 0;
    f.y_max = 30;
    figures.push_back(f);
  }
  for (const ms::Figure& f : figures)
    for (const ImVec2 size : {ImVec2(600, 400), ImVec2(900, 330), ImVec2(420, 520)}) {
      SCOPED_TRACE(f.title + " at " + std::to_string(size.x) + "x" + std::to_string(size.y));
      ms::gui::PlotDrawing drawn;
      ImVec2 top_left;
      ms::gui::PlotLayout screen;
      frame([&] {
        top_left = ImGui::GetCursorScreenPos();
        screen = ms::gui::layout_figure(f, top_left, size);
        ms::gui::draw_figure("compared", f, size, nullptr, &drawn);
      });
      const ms::Figure shown = ms::gui::as_shown("compared", f);
      ASSERT_EQ(shown.width, static_cast<int>(size.x));
      ASSERT_EQ(shown.height, static_cast<int>(size.y));
      const std::string svg = ms::render_svg(shown);
      const ms::FigureLayout exported = ms::figure_layout(shown);

      EXPECT_EQ(screen.x_lo, exported.x.lo);
      EXPECT_EQ(screen.x_hi, exported.x.hi);
      EXPECT_EQ(screen.y_lo, exported.y.log ? std::log10(exported.y.lo) : exported.y.lo);
      EXPECT_EQ(screen.y_hi, exported.y.log ? std::log10(exported.y.hi) : exported.y.hi);
      EXPECT_EQ(screen.area_min.x - top_left.x, exported.plot.left);
      EXPECT_EQ(screen.area_max.y - top_left.y, exported.plot.bottom);

      const std::vector<SvgText> texts = svg_texts(svg);
      ASSERT_GE(texts.size(), 8u);
      EXPECT_EQ(texts.size(), drawn.texts.size());
      for (const SvgText& t : texts) {
        const bool found = std::any_of(drawn.texts.begin(), drawn.texts.end(), [&](const ms::gui::DrawnText& d) {
          return d.role == t.role && d.text == t.text && std::fabs(d.at.x - top_left.x - t.x) <= kTol &&
                 std::fabs(d.at.y - top_left.y - t.y) <= kTol;
        });
        EXPECT_TRUE(found) << t.role << " '" << t.text << "' at (" << t.x << ", " << t.y << ") not drawn there";
      }
      for (const char* role : {"x-tick", "y-tick"}) {
        const auto lines = svg_shapes(svg, "line", role);
        std::vector<std::array<double, 4>> screen_lines;
        for (const auto& l : drawn.lines)
          if (l.role == role)
            screen_lines.push_back({l.a.x - top_left.x, l.a.y - top_left.y, l.b.x - top_left.x, l.b.y - top_left.y});
        ASSERT_EQ(lines.size(), screen_lines.size()) << role;
        ASSERT_GE(lines.size(), 2u) << role;
        for (size_t k = 0; k < lines.size(); ++k)
          for (int c = 0; c < 4; ++c) EXPECT_NEAR(lines[k][c], screen_lines[k][c], kTol) << role << " " << k;
      }
      const auto legend = svg_shapes(svg, "rect", "legend");
      const auto drawn_legend = std::find_if(drawn.rects.begin(), drawn.rects.end(),
                                             [](const ms::gui::DrawnRect& r) { return r.role == "legend"; });
      ASSERT_EQ(legend.size(), 1u);
      ASSERT_NE(drawn_legend, drawn.rects.end());
      EXPECT_NEAR(drawn_legend->min.x - top_left.x, legend[0][0], kTol);
      EXPECT_NEAR(drawn_legend->min.y - top_left.y, legend[0][1], kTol);
      EXPECT_NEAR(drawn_legend->max.x - drawn_legend->min.x, legend[0][2], kTol);
      EXPECT_NEAR(drawn_legend->max.y - drawn_legend->min.y, legend[0][3], kTol);
      EXPECT_EQ(exported.legend.placement, screen.plot.legend.placement);
    }
  EXPECT_EQ(ms::gui::as_shown("never drawn", accuracy_figure()).width, 800);
}

TEST_F(PlotView, HoverReadsOutTheNearestPoint) {
  const ms::Figure f = accuracy_figure();
  const ImVec2 size(700, 450);
  for (int series = 0; series < 2; ++series)
    for (int index : {0, 2, 4}) {
      bool hovered = false;
      const PlotHover h = hover_at(
          f, size,
          [&](const ms::gui::PlotLayout& L) { return L.to_screen(f.lines[series].x[index], f.lines[series].y[index]); },
          &hovered);
      EXPECT_TRUE(hovered);
      ASSERT_TRUE(h.active) << "series " << series << " point " << index;
      EXPECT_EQ(h.series, series);
      EXPECT_EQ(h.histogram, -1);
      EXPECT_EQ(h.index, index);
      EXPECT_EQ(h.x, f.lines[series].x[index]);
      EXPECT_EQ(h.y, f.lines[series].y[index]);
      std::ostringstream x, y;
      x << f.lines[series].x[index];
      y << f.lines[series].y[index];
      EXPECT_NE(h.text.find(f.lines[series].label + ": x = " + x.str() + ", y = " + y.str()), std::string::npos)
          << h.text;
    }
  // Where two series share a point, the one drawn last (on top) is read out.
  const PlotHover top = hover_at(f, size, [&](const ms::gui::PlotLayout& L) { return L.to_screen(1.0, 73.25); });
  EXPECT_EQ(top.series, 1);
  EXPECT_EQ(top.index, 5);
  // Off the plot: nothing.
  const PlotHover away =
      hover_at(f, size, [](const ms::gui::PlotLayout& L) { return ImVec2(L.frame_max.x + 50, L.frame_max.y + 50); });
  EXPECT_FALSE(away.active);
}

TEST_F(PlotView, HoverReadsOutAHistogramBin) {
  const ms::Figure f = energy_histogram();
  const PlotHover h = hover_at(f, ImVec2(600, 400), [&](const ms::gui::PlotLayout& L) {
    const ImVec2 base = L.to_screen(0.25, 0), top = L.to_screen(0.25, 25);
    return ImVec2(base.x, (base.y + top.y) * 0.5f);
  });
  ASSERT_TRUE(h.active);
  EXPECT_EQ(h.series, -1);
  EXPECT_EQ(h.histogram, 0);
  EXPECT_EQ(h.index, 2);
  EXPECT_EQ(h.x, 0.0);
  EXPECT_EQ(h.x_hi, 0.5);
  EXPECT_EQ(h.y, 25);
  EXPECT_NE(h.text.find("layer 3: bin [0, 0.5): 25"), std::string::npos) << h.text;
}

TEST_F(PlotView, HeatmapHoverGivesTheCell) {
  const int rows = 14, cols = 14;
  std::vector<float> energy(rows * cols);
  for (int i = 0; i < rows * cols; ++i) energy[i] = -0.5f + 1.5f * i / (rows * cols - 1);
  energy[5] = std::nanf("");
  const ImVec2 size(420, 360);
  for (auto [row, col] : {std::pair{0, 0}, {3, 5}, {13, 13}, {7, 1}}) {
    ms::gui::HeatmapLayout H;
    frame([&] {
      H = ms::gui::layout_heatmap(rows, cols, -0.5f, 1.0f, ImGui::GetCursorScreenPos(), size);
      ms::gui::draw_heatmap("energy", energy, rows, cols, -0.5f, 1.0f, size, "energy", nullptr);
    });
    ASSERT_GT(H.cell, 4);
    EXPECT_LE(H.bar_max.x, size.x + 8);
    ImGui::GetIO().MousePos = H.cell_center(row, col);
    int cell = -2;
    for (int k = 0; k < 3; ++k)
      frame([&] { ms::gui::draw_heatmap("energy", energy, rows, cols, -0.5f, 1.0f, size, "energy", &cell); });
    EXPECT_EQ(cell, row * cols + col);
  }
  // Bad sizes and a constant map draw without trouble; the mouse outside gives -1.
  ImGui::GetIO().MousePos = ImVec2(1200, 790);
  int cell = 0;
  frame([&] {
    ms::gui::draw_heatmap("bad", energy, 3, 3, 0, 1, size, "x", &cell);
    ms::gui::draw_heatmap("flat", std::vector<float>(4, 2.f), 2, 2, NAN, NAN, size, "", &cell);
  });
  EXPECT_EQ(cell, -1);
}

TEST_F(PlotView, ColormapIsMonotonicInLightness) {
  auto luma = [](ImU32 c) {
    const ImVec4 v = ImGui::ColorConvertU32ToFloat4(c);
    return 0.2126f * v.x + 0.7152f * v.y + 0.0722f * v.z;
  };
  for (int k = 1; k <= 100; ++k)
    EXPECT_GT(luma(ms::gui::heatmap_color(k / 100.f)), luma(ms::gui::heatmap_color((k - 1) / 100.f)));
  EXPECT_EQ(ms::gui::heatmap_color(NAN), ms::gui::heatmap_color(NAN));
  EXPECT_EQ(ms::gui::heatmap_color(-3), ms::gui::heatmap_color(0));
}

// Minimal RFC 4180 reader: rows of fields, quotes doubled inside quoted fields.
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        rows.back().back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        rows.back().back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else {
      rows.back().back() += c;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

void expect_same(double expected, const std::string& text) {
  const double got = std::strtod(text.c_str(), nullptr);
  if (std::isnan(expected))
    EXPECT_TRUE(std::isnan(got)) << text;
  else
    EXPECT_EQ(got, expected) << text;
}

// Code points of UTF-8 text (the plots' own strings are valid UTF-8).
std::vector<unsigned> code_points(const std::string& s) {
  std::vector<unsigned> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    unsigned cp = n == 1 ? c : c & (0x3F >> (n - 1));
    for (int k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(cp);
    i += n;
  }
  return out;
}

// Every character a plot prints has a glyph in the app's font: the ellipsis of a shortened legend label and x label,
// the axis factor's "x10" with its superscript minus and digit. ImGui's default glyph ranges stop at U+00FF and
// drew '?' for these until add_ui_font gave the atlas the plots' ranges.
TEST(PlotViewFont, UiFontHasEveryGlyphThePlotsPrint) {
  if (ms::plot_font_file().empty()) GTEST_SKIP() << "fontconfig finds no font on this system";
  ImFontAtlas atlas;
  ASSERT_TRUE(ms::gui::add_ui_font(atlas, 15));
  ASSERT_TRUE(atlas.Build());
  const ImFont* font = atlas.Fonts[0];
  ms::Figure f = accuracy_figure();
  f.lines[1].label = "pane 2: pitome:ratio=0.9074, a label far too long for the legend box of this figure";
  f.x_label = "eigenvalue index (ascending; all below the range are 1 or 0), a label longer than the plot is wide";
  for (auto* s : {&f.lines[0], &f.lines[1]})
    for (double& y : s->y) y *= 2e-7;  // ticks 1e-5 apart: the y label reads "... (x10^-5)"
  for (auto* s : {&f.lines[0], &f.lines[1]}) s->y_err.clear();
  const ms::FigureLayout L = ms::figure_layout(f, 420, 300);
  std::string printed = L.title.text + L.title_continued.text + L.x_label.text + L.y_label.text;
  for (const auto& row : L.legend.rows) printed += row.label.text;
  for (const auto& t : L.x.ticks) printed += t.label.text;
  for (const auto& t : L.y.ticks) printed += t.label.text;
  ASSERT_NE(printed.find("\u2026"), std::string::npos) << printed;  // the cases this test is about occur
  ASSERT_NE(printed.find("\u207b"), std::string::npos) << printed;
  for (const unsigned cp : code_points(printed))
    EXPECT_NE(font->FindGlyphNoFallback(static_cast<ImWchar>(cp)), nullptr) << "U+" << std::hex << cp;
  // What else the app's figures print beyond ASCII: "mean \u00b1 std", em dashes, the minus sign, arrows.
  for (const unsigned cp : code_points("\u00b1\u2014\u2013\u2212\u2192\u2264\u2265\u00d7\u00b2\u2070\u2079"))
    EXPECT_NE(font->FindGlyphNoFallback(static_cast<ImWchar>(cp)), nullptr) << "U+" << std::hex << cp;
}

TEST(PlotViewCsv, ReadsBackExactly) {
  ms::Figure f = accuracy_figure();
  f.lines[0].label = "tome, r=\"8\"";
  f.lines[0].y[2] = 1.0 / 3;
  f.lines[0].y_err[4] = std::nan("");
  f.lines[1].y_err.clear();
  f.lines[1].x[1] = 1e-300;
  f.lines[1].y[3] = -std::numeric_limits<double>::infinity();
  f.histograms = energy_histogram().histograms;
  f.histograms.push_back(f.histograms[0]);
  f.histograms[1].label = "line\nbreak";
  f.histograms[1].counts[1] = 0.1;

  const auto rows = read_csv(ms::gui::figure_csv(f));
  size_t r = 0;
  ASSERT_EQ(rows.at(r++), (std::vector<std::string>{"series", "label", "x", "y", "y_err"}));
  for (size_t i = 0; i < f.lines.size(); ++i)
    for (size_t j = 0; j < f.lines[i].x.size(); ++j) {
      const auto& row = rows.at(r++);
      ASSERT_EQ(row.size(), 5u);
      EXPECT_EQ(row[0], std::to_string(i));
      EXPECT_EQ(row[1], f.lines[i].label);
      expect_same(f.lines[i].x[j], row[2]);
      expect_same(f.lines[i].y[j], row[3]);
      if (f.lines[i].y_err.empty())
        EXPECT_EQ(row[4], "");
      else
        expect_same(f.lines[i].y_err[j], row[4]);
    }
  EXPECT_EQ(rows.at(r++), std::vector<std::string>{""});
  ASSERT_EQ(rows.at(r++), (std::vector<std::string>{"histogram", "label", "bin_lo", "bin_hi", "count"}));
  for (size_t i = 0; i < f.histograms.size(); ++i)
    for (size_t j = 0; j < f.histograms[i].counts.size(); ++j) {
      const auto& row = rows.at(r++);
      ASSERT_EQ(row.size(), 5u);
      EXPECT_EQ(row[0], std::to_string(i));
      EXPECT_EQ(row[1], f.histograms[i].label);
      expect_same(f.histograms[i].edges[j], row[2]);
      expect_same(f.histograms[i].edges[j + 1], row[3]);
      expect_same(f.histograms[i].counts[j], row[4]);
    }
  EXPECT_EQ(r, rows.size());

  EXPECT_EQ(ms::gui::figure_csv(ms::Figure{}), "series,label,x,y,y_err\n");
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("mergescope_test_plot_view_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(PlotViewExport, WritesSvgPngPdfAndCsv) {
  const fs::path dir = fresh_dir("export");
  const ms::Figure f = accuracy_figure();
  const std::string prefix = (dir / "accuracy").string();
  ms::gui::export_figure(f, prefix);
  for (const char* ext : {".svg", ".png", ".pdf", ".csv"}) {
    ASSERT_TRUE(fs::exists(prefix + ext)) << prefix + ext;
    EXPECT_GT(fs::file_size(prefix + ext), 0u) << prefix + ext;
  }
  std::ifstream csv(prefix + ".csv", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(csv)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, ms::gui::figure_csv(f));
  fs::remove_all(dir);
}

TEST(PlotViewExport, UnwritablePathNamesTheFile) {
  const fs::path dir = fresh_dir("unwritable");
  const std::string missing = (dir / "no_such_folder" / "plot").string();
  try {
    ms::gui::export_figure(accuracy_figure(), missing);
    FAIL() << "expected ms::Error";
  } catch (const ms::Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  // SVG, PNG and PDF can be written but the CSV cannot: the message names the CSV.
  const std::string prefix = (dir / "plot").string();
  fs::create_directories(prefix + ".csv");
  try {
    ms::gui::export_figure(accuracy_figure(), prefix);
    FAIL() << "expected ms::Error";
  } catch (const ms::Error& e) {
    EXPECT_NE(std::string(e.what()).find(prefix + ".csv"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST_F(PlotView, ContextMenuExportsAndReports) {
  const fs::path dir = fresh_dir("menu");
  const ms::Figure f = accuracy_figure();
  const std::string prefix = (dir / "menu").string();
  std::string status;
  ImGuiIO& io = ImGui::GetIO();
  auto draw = [&] {
    ms::gui::draw_figure("fig", f, ImVec2(500, 300));
    ms::gui::figure_context_menu("fig_menu", f, prefix, &status);
  };
  frame(draw);
  io.MousePos = ImVec2(200, 150);
  frame(draw);
  io.MouseDown[1] = true;  // right click opens the menu on release
  frame(draw);
  io.MouseDown[1] = false;
  frame(draw);
  // The first menu item sits just below the disabled path line; click it.
  ImVec2 item;
  frame([&] {
    ms::gui::draw_figure("fig", f, ImVec2(500, 300));
    if (ImGui::BeginPopupContextItem("fig_menu")) {
      ImGui::TextDisabled("%s.{svg,png,pdf,csv}", prefix.c_str());
      item = ImGui::GetCursorScreenPos();
      ImGui::EndPopup();
    }
  });
  ASSERT_GT(item.x, 0) << "context menu did not open";
  io.MousePos = ImVec2(item.x + 20, item.y + ImGui::GetFontSize() * 0.5f);
  for (int k = 0; k < 3; ++k) frame(draw);  // the popup auto-fits its full menu a frame late
  io.MouseDown[0] = true;
  frame(draw);
  io.MouseDown[0] = false;
  frame(draw);
  EXPECT_EQ(status, "wrote " + prefix + ".svg, .png, .pdf, .csv");
  EXPECT_TRUE(fs::exists(prefix + ".png"));
  EXPECT_TRUE(fs::exists(prefix + ".pdf"));
  EXPECT_TRUE(fs::exists(prefix + ".csv"));
  // At the size it was shown, so the file has the screen's layout.
  std::ifstream svg(prefix + ".svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("width=\"500\" height=\"300\""), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
