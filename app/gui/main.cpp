// mergescope: the desktop app. GLFW window, Dear ImGui frame loop, screenshots; the rest is App.
#include "app.h"
#include "args.h"
#include "error.h"
#include "image.h"
#include "latency_bench.h"
#include "panels.h"
#include "plot.h"
#include "plot_view.h"

// epoxy first: it must be the first GL header, and GLFW includes one.
#include <epoxy/gl.h>

#include <GLFW/glfw3.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <imgui.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

const char* kUsage =
    "usage: mergescope [IMAGE] [options]\n"
    "  IMAGE                an image to open (default: the tench among the shared sample images)\n"
    "  --model M            model folder, weights file or name on the search path (default deit_tiny_patch16_224)\n"
    "  --method SPEC        a pane's method; repeat for up to 4 panes (default: tome:r=13 and pitome:ratio=0.9074,\n"
    "                       PiToMe at ToMe r=13's GMACs on DeiT-Ti)\n"
    "  --layer L            show the partition after block L, blocks numbered from 0 (default: the middle)\n"
    "  --fill MODE          mean | palette | energy | protected\n"
    "  --opacity F          0..1 (default 0.55)\n"
    "  --plots TAB          energy | spectrum | cost\n"
    "  --pin R,C            pin patch (row, col): its group lights up in every pane\n"
    "  --size WxH           window size (default 1600x1000)\n"
    "  --threads T          LibTorch threads (default: all cores but one, which the window keeps)\n"
    "  --dtype fp32|bf16    compute precision (default fp32; README, Precision)\n"
    "  --screenshot FILE    when all work is done, render --frames N more frames, save the window as PNG, exit\n"
    "  --frames N           frames to render before the screenshot (default 3)\n"
    "  --export-all DIR     when all work is done, export panes, plots and state.json into DIR (then exit if\n"
    "                       --screenshot is given or --exit is set)\n"
    "  --bench-latency FILE time layer and method changes and frame times while work runs; JSON to FILE, exit\n"
    "  --exit               exit once the screenshot/export is written\n"
    "  --drop PATH          as if PATH were dropped on the window (scripting)\n"
    "  --browse PATH        open the image browser on PATH, as if typed into its path field (scripting)\n"
    "Scripted runs (--screenshot, --export-all --exit) exit with 1 when the app showed an error.\n";

ms::gui::App* g_app = nullptr;

void on_drop(GLFWwindow*, int count, const char** paths) {
  // A GLFW (C) callback: no exception may leave it. open_path shows its own errors.
  try {
    if (g_app && count > 0) g_app->open_path(paths[0]);
  } catch (...) {
  }
}

void on_glfw_error(int code, const char* text) { std::fprintf(stderr, "mergescope: GLFW error %d: %s\n", code, text); }

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The window's back buffer, top row first.
ms::RgbImage read_window(int width, int height) {
  ms::RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.resize(static_cast<size_t>(width) * height * 3);
  std::vector<uint8_t> flipped(img.pixels.size());
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, flipped.data());
  const size_t row = static_cast<size_t>(width) * 3;
  for (int y = 0; y < height; ++y) std::copy_n(&flipped[(height - 1 - y) * row], row, &img.pixels[y * row]);
  return img;
}

ms::gui::FillMode parse_fill(const std::string& s) {
  if (s == "mean") return ms::gui::FillMode::GroupMean;
  if (s == "palette") return ms::gui::FillMode::Palette;
  if (s == "energy") return ms::gui::FillMode::Energy;
  if (s == "protected") return ms::gui::FillMode::Protected;
  ms::fail("--fill", "'" + s + "' is not one of mean, palette, energy, protected");
}

// Everything the command line asks for: the app's options and what a scripted run does around them.
struct Launch {
  ms::gui::AppOptions app;
  std::string screenshot, export_dir, bench_out, drop, browse;
  int frames = 3, width = 1600, height = 1000;
  bool exit_after = false;
  int pin_row = -1, pin_col = -1;  // applied once the model's grid is known
};

// Throws ms::Error naming the option.
Launch parse_launch(const std::vector<std::string>& argv) {
  using ms::fail;
  Launch l;
  ms::gui::AppOptions& options = l.app;
  const ms::cli::Args args(argv, {"exit"},
                           {"model", "method", "layer", "fill", "opacity", "plots", "pin", "size", "threads", "dtype",
                            "screenshot", "frames", "export-all", "bench-latency", "drop", "browse"});
  if (args.positionals().size() > 1) fail("mergescope", "give at most one IMAGE");
  if (!args.positionals().empty()) options.image = args.positionals()[0];
  options.model = args.get("model", options.model);
  options.methods = args.all("method");
  options.layer = args.get_int("layer", -1, 0, 999);
  if (args.has("fill")) options.fill = parse_fill(args.get("fill"));
  options.opacity = static_cast<float>(args.get_double("opacity", options.opacity, 0, 1));
  if (args.has("plots")) {
    const std::string t = args.get("plots");
    options.plot_tab = t == "energy" ? 0 : t == "spectrum" ? 1 : t == "cost" ? 2 : -1;
    if (options.plot_tab < 0) fail("--plots", "'" + t + "' is not one of energy, spectrum, cost");
  }
  options.threads = args.get_int("threads", 0, 0, 1024);
  options.dtype = args.get("dtype", "fp32");
  if (options.dtype != "fp32" && options.dtype != "bf16")
    fail("--dtype", "'" + options.dtype + "' is not fp32 or bf16");
  if (args.has("size")) {
    const std::string s = args.get("size");
    const size_t x = s.find('x');
    if (x == std::string::npos) fail("--size", "'" + s + "' is not WxH");
    l.width = ms::cli::parse_int(s.substr(0, x), "--size");
    l.height = ms::cli::parse_int(s.substr(x + 1), "--size");
    if (l.width < 640 || l.height < 480 || l.width > 8192 || l.height > 8192)
      fail("--size", "'" + s + "' is outside 640x480..8192x8192");
  }
  l.screenshot = args.get("screenshot");
  l.frames = args.get_int("frames", 3, 1, 100000);
  l.export_dir = args.get("export-all");
  l.bench_out = args.get("bench-latency");
  l.drop = args.get("drop");
  l.browse = args.get("browse");
  l.exit_after = args.flag("exit") || !l.screenshot.empty() || !l.bench_out.empty();
  if (!l.export_dir.empty()) options.export_dir = l.export_dir;
  if (args.has("pin")) {
    const std::string h = args.get("pin");
    const size_t comma = h.find(',');
    if (comma == std::string::npos) fail("--pin", "'" + h + "' is not R,C");
    const int r = ms::cli::parse_int(h.substr(0, comma), "--pin"), c = ms::cli::parse_int(h.substr(comma + 1), "--pin");
    if (r < 0 || c < 0 || r >= 1000 || c >= 1000) fail("--pin", "'" + h + "' is outside the patch grid");
    l.pin_row = r;
    l.pin_col = c;
  }
  return l;
}

// GLFW window with an OpenGL 3.3 core context and Dear ImGui on it; nullptr (after a one-line error) if none.
GLFWwindow* open_window(const Launch& l) {
  glfwSetErrorCallback(on_glfw_error);
  if (!glfwInit()) {
    std::fprintf(stderr, "mergescope: cannot initialise GLFW (no display? try xvfb-run)\n");
    return nullptr;
  }
  glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
  glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
  glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
  GLFWwindow* window = glfwCreateWindow(l.width, l.height, "mergescope", nullptr, nullptr);
  if (!window) {
    std::fprintf(stderr, "mergescope: cannot create an OpenGL 3.3 window\n");
    glfwTerminate();
    return nullptr;
  }
  glfwMakeContextCurrent(window);
  glfwSwapInterval(l.bench_out.empty() ? 1 : 0);

  IMGUI_CHECKVERSION();
  ImGui::CreateContext();
  ImGuiIO& io = ImGui::GetIO();
  io.IniFilename = nullptr;
  ImGui::StyleColorsDark();
  ImGui::GetStyle().FrameRounding = 3;
  // The plot font (DejaVu Sans) for the UI too, so screenshots and exported plots read alike.
  ms::gui::add_ui_font(*io.Fonts, 15.0f);
  ImGui_ImplGlfw_InitForOpenGL(window, true);
  ImGui_ImplOpenGL3_Init("#version 330 core");
  return window;
}

void close_window(GLFWwindow* window) {
  ImGui_ImplOpenGL3_Shutdown();
  ImGui_ImplGlfw_Shutdown();
  ImGui::DestroyContext();
  glfwDestroyWindow(window);
  glfwTerminate();
}

// What a scripted run does at the end of a frame: --export-all once all work is done, then --screenshot (or the
// screenshot button's request), and closing the window when the run is over. Failures set *rc to 1.
struct ScriptedOutputs {
  const Launch& launch;
  bool exported = false;

  void after_frame(ms::gui::App& app, GLFWwindow* window, int fb_w, int fb_h, int& frames_after_idle, bool give_up,
                   int* rc) {
    using namespace ms;
    gui::AppState& s = app.state();
    if (!launch.export_dir.empty() && !exported && (frames_after_idle >= launch.frames || give_up)) {
      try {
        app.export_all(launch.export_dir);  // files are written by the worker: wait for idle below
      } catch (const std::exception& e) {
        std::fprintf(stderr, "mergescope: %s\n", one_line(e).c_str());
        *rc = 1;
      }
      exported = true;
      frames_after_idle = 0;
    }
    const bool export_done = launch.export_dir.empty() || (exported && app.idle());
    if (!launch.export_dir.empty() && export_done && launch.screenshot.empty() && launch.exit_after) {
      // Only an export whose every file was written says so; a failed one has shown its error already.
      if (app.export_state() == gui::App::ExportState::Done)
        std::printf("exported %s\n", launch.export_dir.c_str());
      else
        *rc = 1;
      glfwSetWindowShouldClose(window, 1);
    }
    const bool final_shot =
        !launch.screenshot.empty() && export_done && (frames_after_idle >= launch.frames || give_up);
    if (!final_shot && !s.screenshot_requested) return;
    // The button saves into the export folder; --screenshot to its file, and then the app exits.
    const std::string path = final_shot ? launch.screenshot : s.export_dir + "/screenshot.png";
    s.screenshot_requested = false;
    try {
      std::error_code ec;
      if (!final_shot && !std::filesystem::create_directories(s.export_dir, ec) && ec)
        fail(s.export_dir, "cannot create the export folder: " + ec.message());
      write_png(path, read_window(fb_w, fb_h));
      std::printf("wrote %s\n", path.c_str());
      if (!final_shot) s.post(false, "wrote " + path);
    } catch (const std::exception& e) {
      // The button's screenshot fails like any request (modal, status bar, stderr on the next frame);
      // --screenshot's is the end of a scripted run.
      if (final_shot) {
        std::fprintf(stderr, "mergescope: %s\n", one_line(e).c_str());
        *rc = 1;
      } else {
        s.post(true, one_line(e));
      }
    }
    if (final_shot && launch.exit_after) glfwSetWindowShouldClose(window, 1);
  }
};

// The frame loop until the window closes; returns the exit status.
int run_frames(ms::gui::App& app, GLFWwindow* window, const Launch& launch) {
  using namespace ms;
  int rc = 0;
  const double start = now_seconds();
  int frames_after_idle = -1;
  bool mapped_pin = false;
  size_t errors_printed = 0;
  gui::LatencyBench bench(launch.bench_out);
  ScriptedOutputs outputs{launch};
  while (!glfwWindowShouldClose(window)) {
    const double frame_start = now_seconds();
    gui::AppState& s = app.state();
    const bool busy = !app.idle();
    if (launch.exit_after || busy)
      glfwPollEvents();
    else
      glfwWaitEventsTimeout(0.1);
    app.update(frame_start - start);
    // Once the model's grid is known and the image is in (opening an image clears the pin).
    if (!mapped_pin && s.model_ready && s.image && launch.pin_row >= 0) {
      if (launch.pin_row < s.model.grid && launch.pin_col < s.model.grid) {
        s.hover.pinned = launch.pin_row * s.model.grid + launch.pin_col;
        s.overlay_dirty = true;
      } else {
        s.post(true, "--pin: patch outside the " + std::to_string(s.model.grid) + " x " + std::to_string(s.model.grid) +
                         " grid");
      }
      mapped_pin = true;
    }
    // Errors also go to stderr, one line each, so scripted runs see them.
    for (; errors_printed < s.messages.size(); ++errors_printed)
      if (s.messages[errors_printed].error)
        std::fprintf(stderr, "mergescope: %s\n", s.messages[errors_printed].text.c_str());

    const double ui_start = now_seconds();
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    gui::draw_app(s);
    const double ui_end = now_seconds();

    bench.interact(app, s, frames_after_idle);  // --bench-latency: one scripted interaction at a time
    app.render_overlays();

    ImGui::Render();
    const double draw_start = now_seconds();
    int fb_w = 0, fb_h = 0;
    glfwGetFramebufferSize(window, &fb_w, &fb_h);
    glViewport(0, 0, fb_w, fb_h);
    glClearColor(0.08f, 0.08f, 0.09f, 1.f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

    const bool idle = app.idle();  // also after a failed load: the screenshot then shows the error
    bool running = false;
    for (const auto& p : s.panes) running |= p.running;
    if (idle && !running)
      frames_after_idle = std::max(frames_after_idle, 0) + 1;
    else if (frames_after_idle >= 0 && !bench.active())
      frames_after_idle = 0;
    const bool give_up = now_seconds() - start > 300;
    if (give_up) std::fprintf(stderr, "mergescope: work did not finish within 300 s; saving what is there\n");
    outputs.after_frame(app, window, fb_w, fb_h, frames_after_idle, give_up, &rc);

    glfwSwapBuffers(window);
    const double draw_ms = bench.active() ? (glFinish(), 1000 * (now_seconds() - draw_start)) : 0;
    // At most 60 frames per second: without a vsync (Xvfb, some drivers) the loop would otherwise spin and
    // take the cores the worker needs.
    const double frame_ms = 1000 * (now_seconds() - frame_start);
    if (frame_ms < 1000.0 / 60)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(1000.0 / 60 - frame_ms));

    if (bench.active()) {
      bench.record_frame(busy, 1000 * (ui_end - ui_start), draw_ms, frame_ms);
      if (bench.done(app, s, running) || give_up) {
        if (!bench.write(app, s)) rc = 1;
        glfwSetWindowShouldClose(window, 1);
      }
    }
  }
  if (launch.exit_after && rc == 0)
    for (const auto& m : app.state().messages)
      if (m.error) rc = 1;
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ms;
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  if (!argv_list.empty() && (argv_list[0] == "--help" || argv_list[0] == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Launch launch;
  try {
    launch = parse_launch(argv_list);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mergescope: %s\n", one_line(e).c_str());
    return 2;
  }
  GLFWwindow* window = open_window(launch);
  if (!window) return 1;
  int rc = 1;
  {
    std::unique_ptr<gui::App> app;
    try {
      app = std::make_unique<gui::App>(launch.app);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mergescope: %s\n", one_line(e).c_str());
    }
    if (app) {
      g_app = app.get();
      glfwSetDropCallback(window, on_drop);
      if (!launch.drop.empty()) app->open_path(launch.drop);
      if (!launch.browse.empty()) {
        app->state().browser.open = app->state().browser.listed = true;
        app->state().request(gui::RequestKind::BrowseFolder, -1, launch.browse);
      }
      rc = run_frames(*app, window, launch);
      g_app = nullptr;
    }
  }
  close_window(window);
  return rc;
}
