// The real desktop app under Xvfb (Mesa's OpenGL): start it on a shared image with two methods, let it export
// and screenshot, then check the pictures. The GLSL overlay must equal its CPU reference byte for byte, and the
// screenshot must show the overlay where the panes were drawn. Bad input through every door (command line,
// drop, browser, model folder, method spec, export folder) must show a one-line message naming the file and
// leave the app running to its scripted end. An image wider than GL allows is drawn on a downscaled copy.
#include "image.h"
#include "overlay.h"
#include "preprocess.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <algorithm>

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

// Lines of the app's output that mention `text`.
size_t lines_naming(const std::string& output, const std::string& text) {
  size_t n = 0, start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    n += output.substr(start, end - start).find(text) != std::string::npos;
    start = end + 1;
  }
  return n;
}

// A grey PNG of width x height (stb_image_write through ms::write_png).
std::string write_grey_png(const std::string& path, int width, int height, uint8_t value) {
  ms::RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.assign(static_cast<size_t>(width) * height * 3, value);
  for (size_t i = 0; i < img.pixels.size(); i += 7) img.pixels[i] = static_cast<uint8_t>(i * 31);  // some texture
  ms::write_png(path, img);
  return path;
}

// A small PNG whose IHDR claims width x height, its CRC made right: a decompression bomb of a few bytes.
std::string write_png_claiming(const std::string& path, uint32_t width, uint32_t height) {
  const std::string small = path + ".small.png";
  write_grey_png(small, 8, 8, 0);
  std::ifstream in(small, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove(small);
  for (int i = 0; i < 4; ++i) {
    bytes[16 + i] = static_cast<char>(width >> (24 - 8 * i));
    bytes[20 + i] = static_cast<char>(height >> (24 - 8 * i));
  }
  const uLong crc = crc32(crc32(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data() + 12), 17);
  for (int i = 0; i < 4; ++i) bytes[29 + i] = static_cast<char>(crc >> (24 - 8 * i));
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// A JSON text nesting `depth` arrays as the value of `key`.
std::string deeply_nested(const std::string& key, int depth) {
  return "{\"" + key + "\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
}

}  // namespace

TEST_F(GuiXvfb, OverlayEqualsCpuReferenceAndScreenshotShowsIt) {
  const std::string image = sample("n01440764_tench.JPEG");
  const AppRun r =
      run_app(image + " --method tome:r=13 --method pitome:ratio=0.9074 --layer 6 --size 1280x800 --frames 3" +
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
      if (gl.pixels[i] != cpu.pixels[i] || gl.pixels[i + 1] != cpu.pixels[i + 1] ||
          gl.pixels[i + 2] != cpu.pixels[i + 2])
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
        if (cpu.pixels[i] == 255 && cpu.pixels[i + 1] == 255 && cpu.pixels[i + 2] == 255 && in.column_patch[x] >= 0 &&
            in.row_patch[y] >= 0) {
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
        if (is_edge[static_cast<size_t>(y) * original.width + x])
          edge_sum += lum, ++edge_n;
        else
          other_sum += lum, ++other_n;
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

// --pin R,C lights the group holding that patch in every pane, dims the rest, and the export shows it as the
// screen does (the pin was lost when the image arrived after the model, so the README's screenshot had none).
TEST_F(GuiXvfb, PinnedPatchLightsItsGroupInScreenAndExport) {
  const std::string image = sample("n01440764_tench.JPEG");
  const AppRun r = run_app(image + " --method tome:r=13 --layer 11 --pin 7,6 --size 1280x800 --frames 3" +
                           " --export-all " + dir_ + "/pin --exit");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json state = read_json(dir_ + "/pin/state.json");
  ASSERT_EQ(state["pinned_patch"], nlohmann::json::array({7, 6})) << state["pinned_patch"].dump();
  const nlohmann::json& pane = state["panes"][0];
  const auto groups = pane["patch_groups"].get<std::vector<int32_t>>();
  const int grid = state["model"]["img_size"].get<int>() / state["model"]["patch"].get<int>();
  ASSERT_EQ(groups.size(), static_cast<size_t>(grid * grid));
  ASSERT_EQ(pane["highlight_group"], groups[7 * grid + 6]);
  ASSERT_GE(pane["highlight_group"].get<int>(), 0);

  // The exported pane equals the CPU reference with that group lit, and differs from it without.
  const ms::RgbImage original = ms::load_image(image);
  const ms::RgbImage gl = ms::load_image(dir_ + "/pin/" + pane["png"].get<std::string>());
  ms::gui::OverlayInputs in;
  const auto& img = state["image"];
  ms::gui::map_pixels_to_patches(
      in, original.width, original.height,
      ms::gui::CropMapping{img["crop"]["x0"], img["crop"]["y0"], img["crop"]["width"], img["crop"]["height"]},
      state["model"]["img_size"], state["model"]["patch"], img["line_width"]);
  in.group = groups;
  in.fill = pane["patch_fill_rgba"].get<std::vector<uint8_t>>();
  ms::gui::OverlayStyle style;
  style.opacity = state["opacity"];
  style.boundaries = state["boundaries"];
  const ms::RgbImage plain = ms::gui::render_overlay_cpu(original, in, style);
  style.highlight = pane["highlight_group"];
  const ms::RgbImage lit = ms::gui::render_overlay_cpu(original, in, style);
  EXPECT_EQ(gl.pixels, lit.pixels) << "the export is not the CPU reference with the pinned group lit";
  EXPECT_NE(gl.pixels, plain.pixels);
}

// Bad input: a message naming the file in the window and on stderr, the scripted run completes (screenshot
// written), and the exit code says an error was shown.
// --dtype bf16 (core/precision.h): the model loads in bf16, the panes run, state.json says so; a bad dtype is one line.
TEST_F(GuiXvfb, Bf16FromTheCommandLine) {
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --dtype bf16 --method tome:r=13 --export-all " + dir_ +
                           "/bf16 --exit");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json state = read_json(dir_ + "/bf16/state.json");
  EXPECT_EQ(state["dtype"], "bf16");
  const AppRun bad = run_app("--dtype fp16 --exit");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("--dtype"), std::string::npos) << bad.output;
}

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
  const AppRun r =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --drop " + missing +
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
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --drop " + model +
                           " --frames 2 --size 1024x700 --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(model), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

TEST_F(GuiXvfb, WrongModelOnCommandLine) {
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --model " + dir_ +
                           "/no_such_model --frames 2 --size 1024x700 " + "--screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("no_such_model"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

TEST_F(GuiXvfb, UnreadableImageFromBrowser) {
  const std::string folder = dir_ + "/images";
  fs::create_directories(folder);
  const std::string bad = folder + "/truncated.png";
  std::ofstream(bad) << "\x89PNG\r\n\x1a\n";
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --browse " + bad +
                           " --frames 2 --size 1024x700 --screenshot " + dir_ + "/shot.png");
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
  const AppRun r =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=-3 --method tome:r=13 --frames 2 --size 1024x700 " +
              "--export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tome:r=-3"), std::string::npos) << r.output;
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_TRUE(state["panes"][0].contains("error"));
  EXPECT_TRUE(state["panes"][1].contains("png")) << "the good pane must still run";
}

// ---- images larger than GL allows, images over the budgets -------------------------------------------------

// 16385 x 8 is one pixel wider than Mesa's GL_MAX_TEXTURE_SIZE; it used to abort the app (an uncaught
// "off-screen framebuffer is incomplete"). It is within the decode and resize budgets, so it opens and runs;
// the overlay is drawn on a copy downscaled to fit (state.json's "overlay"), and that drawing still equals
// the CPU reference on the same copy.
namespace {

void expect_wide_image_drawn_downscaled(const std::string& dir, const std::string& image, const AppRun& r) {
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("mergescope: "), std::string::npos) << "an error was shown:\n" << r.output;
  EXPECT_TRUE(fs::exists(dir + "/shot.png"));
  const nlohmann::json state = read_json(dir + "/export/state.json");
  EXPECT_EQ(state["image"]["path"], image);
  EXPECT_EQ(state["image"]["width"], 16385);
  const nlohmann::json& overlay = state["overlay"];
  ASSERT_TRUE(overlay.is_object()) << state.dump(1);
  EXPECT_TRUE(overlay["downscaled"].get<bool>());
  const int max_side = overlay["max_side"], w = overlay["width"], h = overlay["height"];
  EXPECT_LE(max_side, 16384);
  EXPECT_EQ(w, max_side);
  EXPECT_EQ(h, std::max(1, static_cast<int>(std::lround(8.0 * max_side / 16385))));

  const ms::RgbImage display = ms::resize_like_pil(ms::load_image(image), w, h, ms::ResampleFilter::Bilinear);
  const nlohmann::json& pane = state["panes"][0];
  ASSERT_TRUE(pane.contains("png")) << pane.dump();
  const ms::RgbImage gl = ms::load_image(dir + "/export/" + pane["png"].get<std::string>());
  ASSERT_EQ(gl.width, w);
  ASSERT_EQ(gl.height, h);
  ms::gui::OverlayInputs in;
  const auto& c = overlay["crop"];
  ms::gui::map_pixels_to_patches(in, w, h, ms::gui::CropMapping{c["x0"], c["y0"], c["width"], c["height"]},
                                 state["model"]["img_size"], state["model"]["patch"], overlay["line_width"]);
  in.group = pane["patch_groups"].get<std::vector<int32_t>>();
  in.fill = pane["patch_fill_rgba"].get<std::vector<uint8_t>>();
  ms::gui::OverlayStyle style;
  style.opacity = state["opacity"];
  style.boundaries = state["boundaries"];
  EXPECT_TRUE(ms::gui::render_overlay_cpu(display, in, style).pixels == gl.pixels) << "GL and CPU overlays differ";
}

}  // namespace

TEST_F(GuiXvfb, ImageWiderThanGlAllowsOnCommandLine) {
  const std::string wide = write_grey_png(dir_ + "/wide_16385x8.png", 16385, 8, 90);
  const AppRun r = run_app(wide + " --method tome:r=8 --frames 2 --size 1024x700 --export-all " + dir_ +
                           "/export --screenshot " + dir_ + "/shot.png");
  expect_wide_image_drawn_downscaled(dir_, wide, r);
}

TEST_F(GuiXvfb, ImageWiderThanGlAllowsDropped) {
  const std::string wide = write_grey_png(dir_ + "/wide_16385x8.png", 16385, 8, 160);
  const AppRun r =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --drop " + wide +
              " --frames 2 --size 1024x700 --export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  expect_wide_image_drawn_downscaled(dir_, wide, r);
}

// Over the budgets: one line naming the file, the app runs on (the good image stays), exit code 1.
TEST_F(GuiXvfb, DecompressionBombDroppedAfterAGoodImage) {
  const std::string bomb = write_png_claiming(dir_ + "/bomb_20000x20000.png", 20000, 20000);
  const AppRun r =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --drop " + bomb +
              " --frames 2 --size 1024x700 --export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, bomb), 1u) << r.output;
  EXPECT_NE(r.output.find("20000x20000"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_NE(state["image"]["path"].get<std::string>().find("tench"), std::string::npos);
  EXPECT_TRUE(state["panes"][0].contains("png"));
}

TEST_F(GuiXvfb, ImageOverTheResizeBudgetOnCommandLine) {
  const std::string tall = write_grey_png(dir_ + "/tall_1x20000.png", 1, 20000, 90);
  const AppRun r = run_app(tall + " --frames 2 --size 1024x700 --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, tall), 1u) << r.output;
  EXPECT_NE(r.output.find("256x5120000"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

// ---- exports ------------------------------------------------------------------------------------------------

// A folder that cannot be made (its parent is a file, which stops root too): one line naming it, no
// "exported" line, exit code 1; with --screenshot the app still gets to its screenshot.
TEST_F(GuiXvfb, ExportIntoAFolderThatCannotBeCreated) {
  std::ofstream(dir_ + "/a_file") << "not a folder\n";
  const std::string target = dir_ + "/a_file/export";
  const AppRun r = run_app(sample("n01440764_tench.JPEG") +
                           " --method tome:r=8 --frames 2 --size 1024x700 --export-all " + target + " --exit");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, target), 1u) << r.output;
  EXPECT_EQ(r.output.find("exported"), std::string::npos) << r.output;

  const AppRun shot =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --frames 2 --size 1024x700 --export-all " + target +
              " --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(shot.exit_code, 1) << shot.output;
  EXPECT_EQ(lines_naming(shot.output, target), 1u) << shot.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
}

// The folder exists but a file in it cannot be written (a folder is in the way): the worker's error names the
// file, and the export does not claim to be done.
TEST_F(GuiXvfb, ExportFileThatCannotBeWritten) {
  fs::create_directories(dir_ + "/export/state.json");
  const AppRun r = run_app(sample("n01440764_tench.JPEG") +
                           " --method tome:r=8 --frames 2 --size 1024x700 --export-all " + dir_ + "/export --exit");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, dir_ + "/export/state.json"), 1u) << r.output;
  EXPECT_EQ(r.output.find("exported"), std::string::npos) << r.output;
}

// ---- JSON nested 100,000 deep (crashed the JSON serializer; the config and threshold readers now refuse it) --

TEST_F(GuiXvfb, DeeplyNestedConfigInADroppedModelFolder) {
  const std::string model = dir_ + "/deep_model";
  fs::create_directories(model);
  std::ofstream(model + "/config.json") << deeply_nested("architecture", 100000);
  fs::create_symlink(fs::absolute("../shared/models/deit_tiny_patch16_224/model.safetensors"),
                     model + "/model.safetensors");
  const AppRun r =
      run_app(sample("n01440764_tench.JPEG") + " --method tome:r=8 --drop " + model +
              " --frames 2 --size 1024x700 --export-all " + dir_ + "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, model + "/config.json"), 1u) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_EQ(state["model"]["name"], "deit_tiny_patch16_224") << "the model loaded before stays";
  EXPECT_TRUE(state["panes"][0].contains("png"));
}

TEST_F(GuiXvfb, DeeplyNestedThresholdFileInAPane) {
  const std::string thresholds = dir_ + "/deep_thresholds.json";
  std::ofstream(thresholds) << deeply_nested("calibration", 100000);
  const AppRun r = run_app(sample("n01440764_tench.JPEG") + " --method ltp:thresholds=" + thresholds +
                           " --method tome:r=8 --frames 2 --size 1024x700 --export-all " + dir_ +
                           "/export --screenshot " + dir_ + "/shot.png");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(lines_naming(r.output, thresholds), 1u) << r.output;
  EXPECT_TRUE(fs::exists(dir_ + "/shot.png"));
  const nlohmann::json state = read_json(dir_ + "/export/state.json");
  EXPECT_TRUE(state["panes"][0].contains("error"));
  EXPECT_TRUE(state["panes"][1].contains("png")) << "the good pane must still run";
}
