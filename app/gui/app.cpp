#include "app.h"

#include "error.h"
#include "figures.h"
#include "image.h"
#include "io.h"
#include "plot_view.h"
#include "preprocess.h"
#include "session.h"

#include <epoxy/gl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

namespace ms::gui {

namespace fs = std::filesystem;

// What tasks read at run time, so that a queued run uses the model and image loaded just before it.
struct App::Backend {
  std::mutex mutex;
  std::shared_ptr<const ModelSession> session;
  std::shared_ptr<const LoadedImage> image;
  std::string image_path;

  std::pair<std::shared_ptr<const ModelSession>, std::shared_ptr<const LoadedImage>> get() {
    std::lock_guard<std::mutex> lock(mutex);
    return {session, image};
  }
};

namespace {

double clock_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void set_spec_text(Pane& pane, const std::string& spec) {
  std::snprintf(pane.spec_edit.data(), pane.spec_edit.size(), "%s", spec.c_str());
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

}  // namespace

App::App(const AppOptions& o) : backend_(std::make_shared<Backend>()) {
  worker_ = std::make_unique<Worker>([this](const std::string& message) { state_.post(true, message); });
  renderer_ = std::make_unique<OverlayRenderer>();
  // By default LibTorch gets all cores but one: the frame loop (and a software GL) keeps a core. With every
  // core given to LibTorch, its parallel regions wait on a thread the frame loop has descheduled: on this
  // 2-core machine under Xvfb a deit_tiny pane took 5.9 s instead of 0.2 s.
  state_.dtype = o.dtype;
  init_engine_runtime(o.threads > 0 ? o.threads
                                    : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1));
  state_.fill = o.fill;
  state_.opacity = o.opacity;
  state_.plot_tab = o.plot_tab;
  state_.export_dir = o.export_dir;
  state_.available_models = available_models();
  state_.browser.folder = sample_image_folder();
  if (state_.browser.folder.empty()) state_.browser.folder = fs::current_path().string();
  state_.layer = o.layer;  // -1: the middle; clamped once the model is known
  const std::vector<std::string> methods =
      o.methods.empty() ? std::vector<std::string>{"tome:r=13", "pitome:ratio=0.9074"} : o.methods;
  for (const std::string& m : methods) {
    if (state_.panes.size() >= static_cast<size_t>(kMaxPanes)) {
      state_.post(true, "--method: at most " + std::to_string(kMaxPanes) + " panes; '" + m + "' is left out");
      break;
    }
    state_.panes.emplace_back();
    set_spec_text(state_.panes.back(), m);
    state_.panes.back().spec = m;
    targets_.emplace_back();
    pane_ids_.push_back(next_pane_id_++);
  }
  state_.request(RequestKind::LoadModel, -1, o.model);
  const std::string image = o.image.empty() ? default_image() : o.image;
  if (image.empty())
    state_.post(true, "no image given and no sample images on the data search path");
  else
    state_.request(RequestKind::OpenImage, -1, image);
}

App::~App() {
  worker_.reset();  // joins before the GL objects go
  for (OverlayTarget& t : targets_) OverlayRenderer::release(t);
  for (OverlayTarget& t : retired_) OverlayRenderer::release(t);
  for (auto& [path, thumb] : state_.browser.thumbnails)
    if (thumb.texture) {
      const GLuint tex = static_cast<GLuint>(thumb.texture);
      glDeleteTextures(1, &tex);
    }
}

bool App::idle() const { return worker_->idle() && state_.requests.empty(); }

int App::pane_index(uint64_t id) const {
  for (size_t i = 0; i < pane_ids_.size(); ++i)
    if (pane_ids_[i] == id) return static_cast<int>(i);
  return -1;
}

void App::retire_target(size_t pane) {
  if (targets_[pane].framebuffer) retired_.push_back(targets_[pane]);
  targets_[pane] = {};
  state_.panes[pane].texture = 0;
}

void App::update(double now) {
  state_.now = now;
  for (OverlayTarget& t : retired_) OverlayRenderer::release(t);  // the frame that showed them is drawn
  retired_.clear();
  worker_->run_posted();
  std::vector<Request> requests;
  requests.swap(state_.requests);
  for (const Request& r : requests) {
    try {
      handle(r);
    } catch (const std::exception& e) {
      state_.post(true, one_line(e));
    }
  }
  if (!state_.browser.wanted.empty()) load_thumbnails();
  state_.work = worker_->status();
}

void App::open_path(const std::string& path) {
  // Called from GLFW's drop callback: nothing may propagate into its C frames.
  try {
    if (is_directory(path)) {
      if (is_regular_file(path + "/config.json"))
        state_.request(RequestKind::LoadModel, -1, path);
      else
        state_.post(true, path + ": a folder, but not a model folder (no config.json)");
    } else {
      state_.request(RequestKind::OpenImage, -1, path);
    }
  } catch (const std::exception& e) {
    state_.post(true, path + ": " + one_line(e));
  }
}

void App::handle(const Request& r) {
  switch (r.kind) {
    case RequestKind::LoadModel:
      load_model(r.text);
      break;
    case RequestKind::OpenImage:
      open_image(r.text);
      break;
    case RequestKind::SetMethod: {
      if (r.pane < 0 || r.pane >= static_cast<int>(state_.panes.size())) break;
      Pane& pane = state_.panes[r.pane];
      pane.spec = trimmed(r.text);
      set_spec_text(pane, pane.spec);
      submit_run(r.pane);
      break;
    }
    case RequestKind::AddPane:
      add_pane(r.text);
      break;
    case RequestKind::RemovePane:
      remove_pane(r.pane);
      break;
    case RequestKind::BrowseFolder:
      list_folder(trimmed(r.text));
      break;
    case RequestKind::ExportAll:
      export_all(r.text.empty() ? state_.export_dir : r.text);
      break;
    case RequestKind::ExportPane: {
      const std::string path =
          r.text.empty() ? state_.export_dir + "/pane" + std::to_string(r.pane + 1) + ".png" : r.text;
      export_pane_png(r.pane, path);
      break;
    }
    case RequestKind::Screenshot:
      state_.screenshot_requested = true;  // main.cpp reads the window after this frame is drawn
      break;
    case RequestKind::CancelWork:
      cancel_work();
      break;
  }
}

void App::load_model(const std::string& text) {
  auto backend = backend_;
  const int max_overlay_side = renderer_->max_side();
  const std::string spec = trimmed(text);
  state_.model_spec = spec;
  const std::string dtype = state_.dtype;
  worker_->submit("loading model", [this, backend, spec, dtype, max_overlay_side](TaskContext& ctx) {
    auto session = ModelSession::load(spec, dtype);
    ctx.check();
    std::shared_ptr<const LoadedImage> image;
    std::string path;
    {
      std::lock_guard<std::mutex> lock(backend->mutex);
      path = backend->image_path;
    }
    // The crop depends on the model's input size and resize rule: reopen the current image for it. An
    // image this model cannot take (over the resize budget, say) is its own error: the model still loads.
    std::string image_error;
    if (!path.empty()) {
      try {
        image = session->open_image(path, max_overlay_side);
      } catch (const std::exception& e) {
        image_error = one_line(e);
      }
    }
    {
      std::lock_guard<std::mutex> lock(backend->mutex);
      backend->session = session;
      if (image) backend->image = image;
      if (!image_error.empty()) backend->image = nullptr;  // the old crop no longer fits this model
    }
    ctx.post([this, session, image, image_error] {
      if (!image_error.empty()) {
        state_.post(true, "opening image: " + image_error);
        state_.image = nullptr;
      }
      state_.model = session->summary();
      state_.model_ready = true;
      state_.set_layer(state_.layer < 0 ? state_.model.depth / 2 : state_.layer);
      if (image) {
        state_.image = image;
        image_uploaded_ = false;
        note_downscaled(*image);
      }
      state_.post(false,
                  "loaded " + state_.model.name + " from " + state_.model.source + " (" + state_.model.dtype + ")");
      if (!state_.model.dtype_notice.empty()) state_.post(false, state_.model.dtype_notice);
      rerun_all();
    });
  });
}

void App::open_image(const std::string& text) {
  auto backend = backend_;
  const int max_overlay_side = renderer_->max_side();
  const std::string path = trimmed(text);
  worker_->submit("opening image", [this, backend, path, max_overlay_side](TaskContext& ctx) {
    std::shared_ptr<const ModelSession> session = backend->get().first;
    if (!session) {
      // The model is still loading (or failed): check the file now, let the model load open it.
      load_image(path);
      {
        std::lock_guard<std::mutex> lock(backend->mutex);
        backend->image_path = path;
      }
      ctx.post([this, path] { state_.post(false, path + ": opens once a model is loaded"); });
      return;
    }
    auto image = session->open_image(path, max_overlay_side);
    ctx.check();
    {
      std::lock_guard<std::mutex> lock(backend->mutex);
      backend->image = image;
      backend->image_path = path;
    }
    ctx.post([this, image] {
      state_.image = image;
      image_uploaded_ = false;
      state_.hover.pinned = -1;
      note_downscaled(*image);
      rerun_all();
    });
  });
}

void App::add_pane(const std::string& spec) {
  if (state_.panes.size() >= static_cast<size_t>(kMaxPanes)) {
    state_.post(true, "at most " + std::to_string(kMaxPanes) + " panes");
    return;
  }
  state_.panes.emplace_back();
  state_.panes.back().spec = spec;
  set_spec_text(state_.panes.back(), spec);
  targets_.emplace_back();
  pane_ids_.push_back(next_pane_id_++);
  submit_run(static_cast<int>(state_.panes.size()) - 1);
}

void App::remove_pane(int index) {
  if (index < 0 || index >= static_cast<int>(state_.panes.size())) return;
  OverlayRenderer::release(targets_[index]);
  state_.panes.erase(state_.panes.begin() + index);
  targets_.erase(targets_.begin() + index);
  pane_ids_.erase(pane_ids_.begin() + index);
  state_.plot_pane = std::min(state_.plot_pane, static_cast<int>(state_.panes.size()) - 1);
}

void App::cancel_work() {
  worker_->cancel_all();
  for (Pane& p : state_.panes)
    if (p.running) {
      p.running = false;
      ++p.generation;  // drop whatever arrives late
      p.error = "cancelled";
    }
  state_.post(false, "cancelled");
}

void App::note_downscaled(const LoadedImage& image) {
  if (image.display.width == 0) return;
  state_.post(false, image.path + ": " + std::to_string(image.original.width) + "x" +
                         std::to_string(image.original.height) + " pixels, drawn at " +
                         std::to_string(image.display.width) + "x" + std::to_string(image.display.height) +
                         " (the overlay's limit here is " + std::to_string(renderer_->max_side()) + " pixels a side)");
}

void App::rerun_all() {
  for (size_t i = 0; i < state_.panes.size(); ++i) submit_run(static_cast<int>(i));
}

void App::submit_run(int index) {
  Pane& pane = state_.panes[index];
  pane.running = true;
  pane.error.clear();
  pane.requested_at = clock_seconds();
  const uint64_t generation = ++pane.generation;
  const uint64_t id = pane_ids_[index];
  const std::string spec = pane.spec;
  auto backend = backend_;
  worker_->submit("running " + spec, [this, backend, spec, generation, id](TaskContext& ctx) {
    auto [session, image] = backend->get();
    if (!session || !image) {
      ctx.post([this, id, generation] {
        const int i = pane_index(id);
        if (i >= 0 && state_.panes[i].generation == generation) state_.panes[i].running = false;
      });
      return;
    }
    std::shared_ptr<const PaneResult> result;
    std::string error;
    try {
      ctx.progress(0.1f);
      result = session->run(*image, spec, [&ctx] { return ctx.cancelled(); });
      ctx.check();
    } catch (const Cancelled&) {
      throw;
    } catch (const std::exception& e) {
      error = one_line(e);
    }
    ctx.post([this, id, generation, result, error, image] {
      const int i = pane_index(id);
      if (i < 0 || state_.panes[i].generation != generation) return;
      Pane& p = state_.panes[i];
      p.running = false;
      p.error = error;
      if (result && image == state_.image) {
        p.result = result;
        p.fresh = true;
        state_.overlay_dirty = true;
      }
      if (!error.empty()) state_.post(true, "pane " + std::to_string(i + 1) + ": " + error);
    });
  });
}

void App::list_folder(const std::string& path) {
  BrowserState& b = state_.browser;
  if (path.empty()) return;
  if (is_regular_file(path)) {
    state_.request(RequestKind::OpenImage, -1, path);
    b.open = false;
    return;
  }
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    b.error = path + ": no such file or folder";
    state_.post(true, b.error);
    return;
  }
  std::vector<std::string> dirs, files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code ec2;
    if (e.is_directory(ec2)) {
      dirs.push_back(name);
    } else {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext == ".jpeg" || ext == ".jpg" || ext == ".png" || ext == ".bmp") files.push_back(name);
    }
  }
  if (ec) {
    b.error = path + ": cannot list folder: " + ec.message();
    state_.post(true, b.error);
    return;
  }
  std::sort(dirs.begin(), dirs.end());
  std::sort(files.begin(), files.end());
  b.folder = path;
  b.dirs = std::move(dirs);
  b.files = std::move(files);
  b.error.clear();
  b.listed = true;
  std::snprintf(b.path_edit.data(), b.path_edit.size(), "%s", path.c_str());
}

void App::load_thumbnails() {
  std::vector<std::string> paths;
  paths.swap(state_.browser.wanted);
  for (const std::string& p : paths) state_.browser.thumbnails[p];  // placeholder: asked for once
  worker_->submit("thumbnails", [this, paths](TaskContext& ctx) {
    for (size_t i = 0; i < paths.size(); ++i) {
      ctx.check();
      ctx.progress(static_cast<float>(i) / paths.size());
      auto thumb = std::make_shared<RgbImage>();
      try {
        const RgbImage full = load_image(paths[i]);
        const double k = 128.0 / std::max(full.width, full.height);
        *thumb = resize_like_pil(full, std::max(1, static_cast<int>(full.width * k)),
                                 std::max(1, static_cast<int>(full.height * k)), ResampleFilter::Bilinear);
      } catch (const std::exception&) {
        thumb.reset();  // shown as "unreadable"; opening it gives the full message
      }
      const std::string path = paths[i];
      ctx.post([this, path, thumb] {
        Thumbnail& t = state_.browser.thumbnails[path];
        if (!thumb) {
          t.failed = true;
          return;
        }
        GLuint tex = 0;
        glGenTextures(1, &tex);
        glBindTexture(GL_TEXTURE_2D, tex);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
        glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
        glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB8, thumb->width, thumb->height, 0, GL_RGB, GL_UNSIGNED_BYTE,
                     thumb->pixels.data());
        t.texture = tex;
        t.width = thumb->width;
        t.height = thumb->height;
      });
    }
  });
}

int App::pinned_group(int pane) const {
  const Pane& p = state_.panes[pane];
  if (state_.hover.pinned < 0 || !p.result) return -2;
  return group_of_patch(*p.result, state_.layer, state_.hover.pinned);
}

int App::highlight_group(int pane) const {
  const Pane& p = state_.panes[pane];
  const int patch = state_.hover.patch >= 0 ? state_.hover.patch : state_.hover.pinned;
  if (patch < 0 || !p.result) return -2;
  return group_of_patch(*p.result, state_.layer, patch);
}

void App::render_overlays() {
  if (!state_.image || !state_.model_ready) return;
  if (!state_.overlay_dirty && image_uploaded_) return;
  if (overlay_failed_for_ == state_.image) return;  // said once; the panes stay blank until another image
  try {
    draw_overlays();
  } catch (const std::exception& e) {
    // The request boundary of drawing: the image stays loaded (the panes' numbers and plots still show), its
    // overlay is refused with one message instead of taking the app down.
    overlay_failed_for_ = state_.image;
    image_uploaded_ = false;
    for (size_t i = 0; i < targets_.size(); ++i) retire_target(i);
    state_.overlay_dirty = false;
    state_.post(true, state_.image->path + ": " + one_line(e));  // "<image>: overlay: <what GL refused>"
  }
}

void App::draw_overlays() {
  const auto t0 = std::chrono::steady_clock::now();
  if (!image_uploaded_) {
    renderer_->set_image(state_.image->shown());
    image_uploaded_ = true;
  }
  const bool stale_model = state_.image->model_view.width != state_.model.img_size;
  double cpu_seconds = 0;
  for (size_t i = 0; i < state_.panes.size(); ++i) {
    Pane& p = state_.panes[i];
    const PaneResult* result = stale_model ? nullptr : p.result.get();
    const double c0 = clock_seconds();
    OverlayInputs in = make_overlay_inputs(*state_.image, state_.model, result, state_.layer, state_.fill);
    cpu_seconds += clock_seconds() - c0;
    OverlayStyle style;
    style.opacity = static_cast<int>(std::lround(state_.opacity * 255));
    style.boundaries = state_.boundaries;
    style.highlight = highlight_group(static_cast<int>(i));
    if (targets_[i].width != in.width || targets_[i].height != in.height) retire_target(i);
    renderer_->render(in, style, targets_[i]);
    p.texture = targets_[i].texture;
  }
  glFinish();  // so that the latency below includes the GPU's work
  const double t1 = clock_seconds();
  state_.last_overlay_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  state_.last_overlay_cpu_ms = 1000 * cpu_seconds;
  for (Pane& p : state_.panes)
    if (p.fresh) {
      method_latencies_ms_.push_back(1000 * (t1 - p.requested_at));
      p.fresh = false;
    }
  state_.overlay_dirty = false;
}

RgbImage App::render_pane(int pane) {
  if (pane < 0 || pane >= static_cast<int>(state_.panes.size())) fail("export", "no pane " + std::to_string(pane + 1));
  if (!state_.image || !state_.model_ready) fail("export", "nothing to export yet");
  const Pane& p = state_.panes[pane];
  OverlayInputs in = make_overlay_inputs(*state_.image, state_.model, p.result.get(), state_.layer, state_.fill);
  OverlayStyle style;
  style.opacity = static_cast<int>(std::lround(state_.opacity * 255));
  style.boundaries = state_.boundaries;
  style.highlight = pinned_group(pane);  // a pinned group lights up in the export as on screen; a hover does not
  if (overlay_failed_for_ == state_.image) fail(state_.image->path, "the overlay could not be drawn for this image");
  OverlayTarget target;
  if (!image_uploaded_) {
    renderer_->set_image(state_.image->shown());
    image_uploaded_ = true;
  }
  try {
    renderer_->render(in, style, target);
    RgbImage pixels = renderer_->read(target);
    OverlayRenderer::release(target);
    return pixels;
  } catch (...) {
    OverlayRenderer::release(target);
    throw;
  }
}

void App::export_pane_png(int pane, const std::string& path) {
  auto pixels = std::make_shared<RgbImage>(render_pane(pane));
  worker_->submit("exporting pane", [this, pixels, path](TaskContext& ctx) {
    write_png(path, *pixels);
    ctx.post([this, path] { state_.post(false, "wrote " + path); });
  });
}

App::ExportState App::export_state() const { return export_state_; }

void App::export_all(const std::string& dir) {
  export_state_ = ExportState::Failed;  // until the worker has written the last file
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir, ec))
    fail(dir, "cannot create the export folder: " + (ec ? ec.message() : std::string("a file of that name exists")));
  // GL readbacks and the state are taken here, on the main thread; encoding and writing the files (PNG
  // compression, plot rasterising: seconds) happens on the worker so the window keeps drawing.
  std::vector<std::pair<std::string, std::shared_ptr<RgbImage>>> pane_pngs;
  nlohmann::json j;
  j["model"] = {{"name", state_.model.name}, {"source", state_.model.source}, {"depth", state_.model.depth},
                {"grid", state_.model.grid}, {"patch", state_.model.patch},   {"img_size", state_.model.img_size}};
  if (state_.image) {
    const CropMapping& c = state_.image->crop;
    j["image"] = {{"path", state_.image->path},
                  {"width", state_.image->original.width},
                  {"height", state_.image->original.height},
                  {"crop", {{"x0", c.x0}, {"y0", c.y0}, {"width", c.width}, {"height", c.height}}},
                  {"line_width", default_line_width(c, state_.model.img_size)}};
    // The pane PNGs are drawn on LoadedImage::shown(): the original, or its downscaled copy for an image
    // with a side over the overlay limit; the same fields in its pixels.
    const RgbImage& shown = state_.image->shown();
    const CropMapping& sc = state_.image->shown_crop();
    j["overlay"] = {{"width", shown.width},
                    {"height", shown.height},
                    {"downscaled", state_.image->display.width > 0},
                    {"max_side", renderer_->max_side()},
                    {"crop", {{"x0", sc.x0}, {"y0", sc.y0}, {"width", sc.width}, {"height", sc.height}}},
                    {"line_width", default_line_width(sc, state_.model.img_size)}};
  }
  j["layer"] = state_.layer;  // blocks from 0, as everywhere
  const int grid = std::max(1, state_.model.grid);
  j["pinned_patch"] = state_.hover.pinned >= 0
                          ? nlohmann::json::array({state_.hover.pinned / grid, state_.hover.pinned % grid})
                          : nlohmann::json(nullptr);  // [row, col]
  j["layer_note"] = "block index from 0; overlays show the partition after this block";
  j["dtype"] = state_.model_ready ? state_.model.dtype : state_.dtype;
  j["fill"] = fill_mode_name(state_.fill);
  j["opacity"] = static_cast<int>(std::lround(state_.opacity * 255));
  j["boundaries"] = state_.boundaries;
  j["gmacs_unit"] = "GMACs per image (multiply-accumulates, the ToMe/PiToMe papers' 'FLOPs')";
  nlohmann::json panes = nlohmann::json::array();
  for (size_t i = 0; i < state_.panes.size(); ++i) {
    const Pane& p = state_.panes[i];
    nlohmann::json pj;
    pj["spec"] = p.spec;
    pj["screen_rect"] = p.image_rect;  // where the window showed the pane's image last frame
    if (!p.error.empty()) pj["error"] = p.error;
    if (p.result && state_.image) {
      const PaneResult& r = *p.result;
      if (overlay_failed_for_ == state_.image) {
        pj["png_error"] = "the overlay could not be drawn for this image";  // shown when it happened
      } else {
        const std::string png = "pane" + std::to_string(i + 1) + ".png";
        pane_pngs.emplace_back(dir + "/" + png, std::make_shared<RgbImage>(render_pane(static_cast<int>(i))));
        pj["png"] = png;
      }
      pj["method"] = r.spec;
      pj["gmacs"] = r.gmacs;
      pj["top5"] = r.top5;
      pj["tokens_per_layer"] = r.tokens_per_layer;
      pj["gmacs_per_layer"] = r.gmacs_per_layer;
      pj["spectral_distance"] = r.spectral_distance;
      const OverlayInputs in = make_overlay_inputs(*state_.image, state_.model, &r, state_.layer, state_.fill);
      pj["patch_groups"] = in.group;
      pj["highlight_group"] = pinned_group(static_cast<int>(i));  // lit in the PNG; -2: none, -1: a pruned patch
      pj["patch_fill_rgba"] = in.fill;
      std::vector<nlohmann::json> energy;
      for (float e : energy_map(state_, static_cast<int>(i)))
        energy.push_back(std::isfinite(e) ? nlohmann::json(e) : nlohmann::json(nullptr));
      pj["patch_energy"] = energy;
      if (state_.layer < static_cast<int>(r.eig_lifted.size())) pj["eigenvalues_lifted"] = r.eig_lifted[state_.layer];
      pj["eigenvalues_original"] = r.eig_original;
      pj["run_seconds"] = r.run_seconds;
      pj["spectra_seconds"] = r.spectra_seconds;
    }
    panes.push_back(pj);
  }
  j["panes"] = panes;
  std::vector<NamedFigure> figures = all_figures(state_);
  // Plots on screen are written at the size shown, so each file has the screen's layout (SVG, PNG, PDF).
  for (NamedFigure& f : figures) f.figure = as_shown(f.id, std::move(f.figure));
  nlohmann::json plots = nlohmann::json::array();
  for (const NamedFigure& f : figures) plots.push_back(f.id);
  j["plots"] = plots;
  export_state_ = ExportState::Running;
  worker_->submit("exporting", [this, dir, j, pane_pngs, figures](TaskContext& ctx) {
    try {
      const size_t steps = pane_pngs.size() + figures.size() + 1;
      size_t done = 0;
      for (const auto& [path, pixels] : pane_pngs) {
        ctx.progress(static_cast<float>(done++) / steps);
        write_png(path, *pixels);
      }
      for (const NamedFigure& f : figures) {
        ctx.check();
        ctx.progress(static_cast<float>(done++) / steps);
        export_figure(f.figure, dir + "/" + f.id);
      }
      const std::string json_path = dir + "/state.json";
      std::ofstream out(json_path);
      out << j.dump(1) << '\n';
      if (!out) fail(json_path, "cannot write");
    } catch (...) {
      // The worker shows the error; the export is over and failed (a cancel counts as a failure too).
      ctx.post([this] { export_state_ = ExportState::Failed; });
      throw;
    }
    ctx.post([this, dir] {
      export_state_ = ExportState::Done;
      state_.post(false, "exported to " + dir);
    });
  });
}

}  // namespace ms::gui
