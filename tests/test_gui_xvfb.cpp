// The real desktop app under Xvfb (Mesa's OpenGL): start it on a shared image with two methods, let it export
// and screenshot, then check the pictures. The GLSL overlay must equal its CPU reference byte for byte, and the
// screenshot must show the overlay where the panes were drawn. Bad input through every door (command line,
// drop, browser) must show a one-line message and leave the app running to its scripted end.
#include "image.h"
#include "overlay.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

namespace fs = std::filesystem;

namespace {

struct AppRun {
  int exit_code = -1;
  std::string output;  // stdout + stderr
};

AppRun run_app(const std::string& arguments) {
  const char* app = std::getenv("MERGESCOPE_APP");
  if (!app) throw std::runtime_error("MERGESCOPE_APP is not set (run through CTest)");
  const ms::test::CommandResult c = ms::test::run_command(std::string(app) + " " + arguments);
  return {c.exit_code, c.out + c.err};
}

std::string sample(const std::string& name) { return ms::test::shared_image(name); }

class GuiXvfb : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = ms::test::make_temp_dir("mergescope-gui"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

}  // namespace

TEST_F(GuiXvfb, OverlayEqualsCpuReferenceAndScreenshotShowsIt) {
  const std::string image = sample("n01440764_tench.JPEG");
  const AppRun r = run_app(image + " --method tome:r=13 --method pitome:ratio=0.9074 --layer 6 --size 1280x800 --frames 3" +
                        " --export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  ASSERT_EQ(state["panes"].size(), 2u);
  EXPECT_EQ(state["layer"], 6);
  const ms::RgbImage original = ms::load_image(image);
  ASSERT_EQ(state["image"]["width"], original.width);

  const ms::RgbImage shot = ms::load_image(dir_ + "/shot.png");
  ASSERT_EQ(shot.width, 1280);
  ASSERT_EQ(shot.height, 800);

  for (int p = 0; p < 2; ++p) {
    SCOPED_TRACE("pane " + std::to_string(p + 1));
    const nlohmann::json& pane = state["panes"][p];
    ASSERT_TRUE(pane.contains("png")) << pane.dump();
    const ms::RgbImage gl = ms::load_image(dir_ + "/export/" + pane["png"].get<std::string>());
    ASSERT_EQ(gl.width, original.width);
    ASSERT_EQ(gl.height, original.height);

    // The CPU reference from the same inputs the app used.
    ms::gui::OverlayInputs in;
    const auto& img = state["image"];
    ms::gui::CropMapping crop{img["crop"]["x0"], img["crop"]["y0"], img["crop"]["width"], img["crop"]["height"]};
    ms::gui::map_pixels_to_patches(in, original.width, original.height, crop, state["model"]["img_size"],
                                   state["model"]["patch"], img["line_width"]);
    in.group = pane["patch_groups"].get<std::vector<int32_t>>();
    in.fill = pane["patch_fill_rgba"].get<std::vector<uint8_t>>();
    ASSERT_EQ(in.group.size(), static_cast<size_t>(in.grid * in.grid));
    ms::gui::OverlayStyle style;
    style.opacity = state["opacity"];
    style.boundaries = state["boundaries"];
    const ms::RgbImage cpu = ms::gui::render_overlay_cpu(original, in, style);

    size_t differing = 0, boundary = 0;
    for (size_t i = 0; i < cpu.pixels.size(); i += 3) {
      if (gl.pixels[i] != cpu.pixels[i] || gl.pixels[i + 1] != cpu.pixels[i + 1] || gl.pixels[i + 2] != cpu.pixels[i + 2])
        ++differing;
    }
    EXPECT_EQ(differing, 0u) << "GLSL overlay and CPU reference differ";

    // Boundaries exist, exactly where groups meet: a merged layer-6 partition has many.
    std::set<int> groups(in.group.begin(), in.group.end());
    ASSERT_LT(groups.size(), in.group.size()) << "no merges at block 6";
    std::vector<bool> is_edge(static_cast<size_t>(original.width) * original.height, false);
    for (int y = 0; y < original.height; ++y)
      for (int x = 0; x < original.width; ++x) {
        const size_t i = (static_cast<size_t>(y) * original.width + x) * 3;
        if (cpu.pixels[i] == 255 && cpu.pixels[i + 1] == 255 && cpu.pixels[i + 2] == 255 &&
            in.column_patch[x] >= 0 && in.row_patch[y] >= 0) {
          is_edge[static_cast<size_t>(y) * original.width + x] = true;
          ++boundary;
        }
      }
    EXPECT_GT(boundary, 2000u);

    // On screen: the pane's image rectangle in the screenshot is brighter on boundary pixels than elsewhere.
    const auto rect = pane["screen_rect"].get<std::vector<float>>();
    ASSERT_EQ(rect.size(), 4u);
    ASSERT_GT(rect[2] - rect[0], 100.f);
    double edge_sum = 0, other_sum = 0;
    size_t edge_n = 0, other_n = 0;
    const double sx = (rect[2] - rect[0]) / original.width, sy = (rect[3] - rect[1]) / original.height;
    for (int y = 0; y < original.height; y += 2)
      for (int x = 0; x < original.width; x += 2) {
        if (in.column_patch[x] < 0 || in.row_patch[y] < 0) continue;
        const int X = static_cast<int>(rect[0] + (x + 0.5) * sx), Y = static_cast<int>(rect[1] + (y + 0.5) * sy);
        if (X < 0 || Y < 0 || X >= shot.width || Y >= shot.height) continue;
        const uint8_t* px = shot.row(Y) + X * 3;
        const double lum = (px[0] + px[1] + px[2]) / 3.0;
        if (is_edge[static_cast<size_t>(y) * original.width + x]) edge_sum += lum, ++edge_n;
        else other_sum += lum, ++other_n;
      }
    ASSERT_GT(edge_n, 100u);
    EXPECT_GT(edge_sum / edge_n, other_sum / other_n + 40) << "overlay boundaries not visible in the screenshot";
  }

  // Not blank: the window has many distinct colours.
  std::set<uint32_t> colours;
  for (size_t i = 0; i < shot.pixels.size(); i += 3 * 7)
    colours.insert(shot.pixels[i] << 16 | shot.pixels[i + 1] << 8 | shot.pixels[i + 2]);
  EXPECT_GT(colours.size(), 500u);

  // Every plot was exported in three formats.
  for (const auto& id : state["plots"])
    for (const char* ext : {".svg", ".png", ".csv"})
      EXPECT_TRUE(fs::exists(dir_ + "/export/" + id.get<std::string>() + ext)) << id << ext;
}

// Bad input: a message naming the file in the window and on stderr, the scripted run completes (screenshot
// written), and the exit code says an error was shown.
TEST_F(GuiXvfb, BadImageOnCommandLine) {
  const std::string bad = dir_ + "/broken.jpg";
  std::ofstream(bad) << "\xff\xd8\xff\xe0 not really a jpeg";
  const AppRun r = run_app(bad + " --frames 2 --size 1024x700 --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png")) << "the app did not keep running to its screenshot";
}

TEST_F(GuiXvfb, MissingImageDroppedAfterAGoodOne) {
  const std::string missing = dir_ + "/nope.png";
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --drop " + missing +
                        " --frames 2 --size 1024x700 --export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;
  // The good image stays loaded and its pane still ran.
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_NE(state["image"]["path"].get<std::string>().find("tench"), std::string::npos);
  EXPECT_TRUE(state["panes"][0].contains("png"));
}

TEST_F(GuiXvfb, WrongModelFolderDropped) {
  const std::string model = dir_ + "/not_a_model";
  fs::create_directories(model);
  std::ofstream(model + "/config.json") << "{\"architecture\": 12}";
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --drop " + model + " --frames 2 --size 1024x700 --screenshot " +
                        dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(model), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

TEST_F(GuiXvfb, WrongModelOnCommandLine) {
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --model " + dir_ + "/no_such_model --frames 2 --size 1024x700 " +
                        "--screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no_such_model"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

TEST_F(GuiXvfb, UnreadableImageFromBrowser) {
  const std::string folder = dir_ + "/images";
  fs::create_directories(folder);
  const std::string bad = folder + "/truncated.png";
  std::ofstream(bad) << "\x89PNG\r\n\x1a\n";
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --browse " + bad + " --frames 2 --size 1024x700 --screenshot " +
                        dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

TEST_F(GuiXvfb, MissingFolderInBrowser) {
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --browse " + dir_ + "/gone --frames 2 --size 1024x700 " +
                        "--screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(dir_ + "/gone: no such file or folder"), std::string::npos) << r.output;
}

TEST_F(GuiXvfb, BadMethodSpecInAPane) {
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --method tome:r=-3 --method tome:r=13 --frames 2 --size 1024x700 " +
                        "--export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tome:r=-3"), std::string::npos) << r.output;
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_TRUE(state["panes"][0].contains("error"));
  EXPECT_TRUE(state["panes"][1].contains("png")) << "the good pane must still run";
}
