// The desktop app's panels in a windowless ImGui context (no backend, no GL, no model): every panel draws for
// every state the app can be in; shortcuts, hovering, pinning, typing a spec, presets, closing a pane, the error
// pop-up and the image browser act on the AppState as documented; group facts, the CPU overlay and the figures
// agree with a synthetic ToMe-like trace whose partitions are known by construction.
#include "app_state.h"
#include "figures.h"
#include "overlay.h"
#include "panels.h"

#include <gtest/gtest.h>
#include <imgui.h>
#include <imgui_internal.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace ms::gui;

// Tolerances, stated once.
constexpr double kCosTolerance = 1e-6;  // group_info's cosine (double sums of float keys) vs ours
constexpr float kLayoutSlack = 0.5f;    // screen-pixel rounding of ImGui layout
constexpr float kEnergyTolerance = 0;   // energies are copied, never recomputed: exact

// ---------------------------------------------------------------------------------------------------------------
// Synthetic deit_tiny-like run.
//
// Block l merges the horizontal pairs (l, 2k) + (l, 2k+1) of grid row l (rows 0..11; rows 12 and 13 are never
// merged). Block 1 also merges the pair {0, 1} with the pair {2, 3}. Block 2 prunes patch 195 (row 13, column
// 13); block 4 prunes the pair {26, 27} (merged in block 1). Output tokens are ordered by their lowest original
// token, CLS first. Energies and keys are simple functions of (block, input token), so expected values are known.
// ---------------------------------------------------------------------------------------------------------------
constexpr int kGrid = 14, kPatch = 16, kImgSize = 224, kDepth = 12, kPrefix = 1, kKeyDim = 4;
constexpr int kPatches = kGrid * kGrid, kTokens = kPrefix + kPatches;

float synthetic_energy(int layer, int input_token) {
  return input_token == 0 ? NAN : 0.25f * static_cast<float>(layer) + 0.01f * static_cast<float>(input_token);
}

std::array<float, kKeyDim> synthetic_key(int layer, int input_token) {
  const float j = static_cast<float>(input_token);
  return {std::cos(0.37f * j), std::sin(0.37f * j), std::cos(0.11f * j + static_cast<float>(layer)), 0.5f};
}

ms::ImageTrace make_trace(bool merge) {
  ms::ImageTrace tr;
  tr.original_tokens = kTokens;
  tr.prefix_tokens = kPrefix;
  std::vector<int> owner(kTokens);  // lowest original token of the group holding token t, -1: pruned
  for (int t = 0; t < kTokens; ++t) owner[t] = t;
  auto join = [&](int patch_a, int patch_b) {
    const int a = owner[kPrefix + patch_a], b = owner[kPrefix + patch_b];
    const int lo = std::min(a, b), hi = std::max(a, b);
    for (int& o : owner)
      if (o == hi) o = lo;
  };
  int tokens_in = kTokens;
  for (int l = 0; l < kDepth; ++l) {
    ms::LayerTrace lt;
    lt.tokens_in = tokens_in;
    lt.key_dim = kKeyDim;
    for (int j = 0; j < tokens_in; ++j) {
      lt.energy.push_back(synthetic_energy(l, j));
      for (float k : synthetic_key(l, j)) lt.keys.push_back(k);
    }
    if (merge) {
      for (int c = 0; c + 1 < kGrid; c += 2) join(l * kGrid + c, l * kGrid + c + 1);
      if (l == 1) join(0, 2);
      auto prune = [&](int patch) {
        const int r = owner[kPrefix + patch];
        for (int t = 0; t < kTokens; ++t)
          if (owner[t] == r) owner[t] = -1, lt.pruned.push_back(t);
      };
      if (l == 2) prune(195);
      if (l == 4) prune(26);
      if (l == 3) lt.note = "r clamped from 16 to 10";
    }
    std::vector<int> reps;
    for (int o : owner)
      if (o >= 0) reps.push_back(o);
    std::sort(reps.begin(), reps.end());
    reps.erase(std::unique(reps.begin(), reps.end()), reps.end());
    lt.cluster_of_token.assign(kTokens, -1);
    lt.sizes.assign(reps.size(), 0.f);
    for (int t = 0; t < kTokens; ++t) {
      if (owner[t] < 0) continue;
      const int out = static_cast<int>(std::lower_bound(reps.begin(), reps.end(), owner[t]) - reps.begin());
      lt.cluster_of_token[t] = out;
      lt.sizes[out] += 1;
    }
    lt.tokens = static_cast<int>(reps.size());
    tokens_in = lt.tokens;
    tr.layers.push_back(std::move(lt));
  }
  return tr;
}

std::shared_ptr<PaneResult> make_result(const std::string& spec, bool merge) {
  auto r = std::make_shared<PaneResult>();
  r->spec = spec;
  r->trace = make_trace(merge);
  r->eig_original = {0, 0.2, 0.5, 0.9, 1.1, 1.4};
  for (int l = 0; l < kDepth; ++l) {
    const int tokens = r->trace.layers[l].tokens;
    r->tokens_per_layer.push_back(tokens);
    r->gmacs_per_layer.push_back(0.105 * tokens / kTokens);
    r->gmacs += r->gmacs_per_layer.back();
    r->spectral_distance.push_back(merge ? 0.01 * (l + 1) : 0.0);
    std::vector<double> lifted = r->eig_original;
    if (merge) lifted.back() += 0.02 * (l + 1);
    r->eig_lifted.push_back(lifted);
  }
  r->top5 = {{"tench", 0.81f},
             {"goldfish", 0.07f},
             {"great white shark", 0.03f},
             {"tiger shark", 0.02f},
             {"hammerhead", 0.01f}};
  r->run_seconds = 0.012;
  r->spectra_seconds = 0.004;
  return r;
}

// Where torchvision's Resize(256) + CenterCrop(224) lands in a width x height image (our own derivation).
CropMapping torchvision_crop(int width, int height) {
  const bool wide = width >= height;
  const int short_side = wide ? height : width, long_side = wide ? width : height;
  const int new_long = 256 * long_side / short_side;  // torchvision truncates
  const int rw = wide ? new_long : 256, rh = wide ? 256 : new_long;
  const double sx = static_cast<double>(width) / rw, sy = static_cast<double>(height) / rh;
  CropMapping c;
  c.x0 = std::nearbyint((rw - 224) / 2.0) * sx;  // Python's round(): half to even
  c.y0 = std::nearbyint((rh - 224) / 2.0) * sy;
  c.width = 224 * sx;
  c.height = 224 * sy;
  return c;
}

// A gradient whose channels stay <= 250, so no image pixel equals the white boundary colour.
ms::RgbImage gradient_image(int width, int height) {
  ms::RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &img.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(x * 250 / (width - 1));
      p[1] = static_cast<uint8_t>(y * 250 / (height - 1));
      p[2] = static_cast<uint8_t>((3 * x + 5 * y) % 200 + 25);
    }
  return img;
}

std::shared_ptr<LoadedImage> make_image(int width, int height) {
  auto img = std::make_shared<LoadedImage>();
  img->path = "/data/imagenet-sample/n01440764_synthetic.JPEG";
  img->original = gradient_image(width, height);
  img->crop = torchvision_crop(width, height);
  // The model's view: nearest-neighbour samples of the crop (close enough to the real resize for the overlay).
  ms::RgbImage& mv = img->model_view;
  mv.width = mv.height = kImgSize;
  mv.pixels.resize(static_cast<size_t>(kImgSize) * kImgSize * 3);
  for (int v = 0; v < kImgSize; ++v)
    for (int u = 0; u < kImgSize; ++u) {
      const int x = std::min(width - 1, static_cast<int>(img->crop.x0 + (u + 0.5) * img->crop.width / kImgSize));
      const int y = std::min(height - 1, static_cast<int>(img->crop.y0 + (v + 0.5) * img->crop.height / kImgSize));
      std::memcpy(&mv.pixels[(static_cast<size_t>(v) * kImgSize + u) * 3], img->original.row(y) + x * 3, 3);
    }
  return img;
}

void set_spec(Pane& pane, const std::string& spec) {
  pane.spec = spec;
  std::snprintf(pane.spec_edit.data(), pane.spec_edit.size(), "%s", spec.c_str());
}

// A deit_tiny-like state: model loaded, a 500x375 image, `panes` panes (0..4): pane 0 ToMe-like merging,
// pane 1 the "none" baseline, pane 2 a failed request, pane 3 a running one.
AppState make_state(int panes, bool with_model = true, bool with_image = true) {
  AppState s;
  if (with_model) {
    s.model_spec = "synthetic";
    s.model = {"synthetic", "synthetic.safetensors", kDepth, kGrid, kPatch, kImgSize, kPrefix, 192, 3};
    s.model_ready = true;
    s.available_models = {"synthetic", "deit_small_patch16_224"};
  }
  if (with_image) s.image = make_image(500, 375);
  for (int i = 0; i < panes; ++i) {
    Pane p;
    switch (i) {
      case 0:
        set_spec(p, "tome:r=8"), p.result = make_result("tome:r=8", true);
        break;
      case 1:
        set_spec(p, "none"), p.result = make_result("none", false);
        break;
      case 2:
        set_spec(p, "pitome:ratio=2"), p.error = "pitome:ratio=2: ratio must be in (0, 1], got 2";
        break;
      default:
        set_spec(p, "random:r=13"), p.running = true;
        break;
    }
    s.panes.push_back(std::move(p));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Windowless ImGui.
// ---------------------------------------------------------------------------------------------------------------
enum Key { kLeft = 1, kRight, kUp, kDown, kHome, kEnd, kEnter, kEscape, kBackspace, kTab, kDelete, kA, kC, kV, kX };

class GuiPanels : public ::testing::Test {
 protected:
  void SetUp() override {
    context_ = ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = nullptr;  // tests run from the repository root: write no imgui.ini there
    io.LogFilename = nullptr;
    io.DisplaySize = ImVec2(1600, 1000);
    io.DeltaTime = 1.0f / 60;
    io.KeyMap[ImGuiKey_LeftArrow] = kLeft;
    io.KeyMap[ImGuiKey_RightArrow] = kRight;
    io.KeyMap[ImGuiKey_UpArrow] = kUp;
    io.KeyMap[ImGuiKey_DownArrow] = kDown;
    io.KeyMap[ImGuiKey_Home] = kHome;
    io.KeyMap[ImGuiKey_End] = kEnd;
    io.KeyMap[ImGuiKey_Enter] = kEnter;
    io.KeyMap[ImGuiKey_Escape] = kEscape;
    io.KeyMap[ImGuiKey_Backspace] = kBackspace;
    io.KeyMap[ImGuiKey_Tab] = kTab;
    io.KeyMap[ImGuiKey_Delete] = kDelete;
    io.KeyMap[ImGuiKey_A] = kA;
    io.KeyMap[ImGuiKey_C] = kC;
    io.KeyMap[ImGuiKey_V] = kV;
    io.KeyMap[ImGuiKey_X] = kX;
    unsigned char* pixels = nullptr;
    int w = 0, h = 0, bpp = 0;
    io.Fonts->GetTexDataAsRGBA32(&pixels, &w, &h, &bpp);
    mouse_away();
  }
  void TearDown() override { ImGui::DestroyContext(context_); }

  static void mouse_away() { ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX); }

  // One frame of the app; `after` runs after draw_app, before Render (outside every window).
  ImDrawData* frame(AppState& s, const std::function<void()>& after = {}) {
    ImGui::GetIO().DeltaTime = 1.0f / 60;
    ImGui::NewFrame();
    draw_app(s);
    if (after) after();
    ImGui::Render();
    return ImGui::GetDrawData();
  }

  // Mouse down for one frame, up for the next.
  void click(AppState& s, ImVec2 at) {
    ImGuiIO& io = ImGui::GetIO();
    io.MousePos = at;
    io.MouseDown[0] = true;
    frame(s);
    io.MouseDown[0] = false;
    frame(s);
  }

  // Key down for one frame, up for the next.
  void press(AppState& s, Key key) {
    ImGuiIO& io = ImGui::GetIO();
    io.KeysDown[key] = true;
    frame(s);
    io.KeysDown[key] = false;
    frame(s);
  }

  // The screen position of the point (fx, fy) (0..1, 0.5: centre) within patch (r, c) of pane `pane`'s image,
  // via the crop mapping.
  static ImVec2 patch_centre(const AppState& s, int pane, int r, int c, double fx = 0.5, double fy = 0.5) {
    const auto& rect = s.panes[pane].image_rect;
    const CropMapping& crop = s.image->crop;
    const double x = crop.x0 + (c + fx) * kPatch * crop.width / kImgSize;
    const double y = crop.y0 + (r + fy) * kPatch * crop.height / kImgSize;
    const double sx = (rect[2] - rect[0]) / s.image->original.width,
                 sy = (rect[3] - rect[1]) / s.image->original.height;
    return ImVec2(static_cast<float>(rect[0] + x * sx), static_cast<float>(rect[1] + y * sy));
  }

  // The pane's child window (ImGui internals: children are named "<parent>/<id>_<hash>"), left to right.
  static ImGuiWindow* pane_window(int pane) {
    std::vector<ImGuiWindow*> found;
    for (ImGuiWindow* w : ImGui::GetCurrentContext()->Windows)
      if (std::strncmp(w->Name, "Panes/pane_", 11) == 0 && w->Active) found.push_back(w);
    std::sort(found.begin(), found.end(), [](ImGuiWindow* a, ImGuiWindow* b) { return a->Pos.x < b->Pos.x; });
    return pane < static_cast<int>(found.size()) ? found[pane] : nullptr;
  }

  // The pane header's widgets, from the layout rules of pane_header(): on the first line of the pane's child
  // window, the spec field (width max(80, avail - 90)), the "presets" button, then the "x" small button.
  struct Header {
    ImVec2 spec_field, presets, close;  // centres
  };
  static Header header(int pane) {
    const ImGuiStyle& style = ImGui::GetStyle();
    Header h;
    ImGuiWindow* w = pane_window(pane);
    EXPECT_NE(w, nullptr) << "no child window for pane " << pane;
    if (!w) return h;
    const ImVec2 start = w->DC.CursorStartPos;
    const float centre_y = start.y + ImGui::GetFrameHeight() / 2;
    const float field = std::max(80.f, w->ContentRegionRect.Max.x - start.x - 90);
    const float presets = ImGui::CalcTextSize("presets").x + 2 * style.FramePadding.x;
    const float close = ImGui::CalcTextSize("x").x + 2 * style.FramePadding.x;
    h.spec_field = ImVec2(start.x + std::min(60.f, field - 4), centre_y);
    h.presets = ImVec2(start.x + field + style.ItemSpacing.x + presets / 2, centre_y);
    h.close = ImVec2(start.x + field + style.ItemSpacing.x + presets + style.ItemSpacing.x + close / 2, centre_y);
    return h;
  }

  // Whether a tooltip window was drawn last frame (ImGui internals name them "##Tooltip_<n>").
  static bool tooltip_shown() {
    for (ImGuiWindow* w : ImGui::GetCurrentContext()->Windows)
      if (std::strncmp(w->Name, "##Tooltip_", 10) == 0 && w->Active) return true;
    return false;
  }

  static std::vector<Request> take(AppState& s, RequestKind kind) {
    std::vector<Request> out;
    for (const Request& r : s.requests)
      if (r.kind == kind) out.push_back(r);
    return out;
  }

  ImGuiContext* context_ = nullptr;
};

// ---------------------------------------------------------------------------------------------------------------
// 1. Every state draws.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, DrawsEveryStateTheAppCanBeIn) {
  struct Case {
    std::string name;
    AppState state;
  };
  std::vector<Case> cases;
  cases.push_back({"default (no model)", AppState{}});
  cases.push_back({"model, no image", make_state(2, true, false)});
  cases.push_back({"model, image, no panes", make_state(0)});
  for (int n = 1; n <= kMaxPanes; ++n) cases.push_back({std::to_string(n) + " pane(s)", make_state(n)});
  {
    AppState s = make_state(1);
    s.panes[0].result.reset();
    s.panes[0].error = "tome:r=999: r must be at most 98, got 999";
    cases.push_back({"only an error pane", s});
  }
  {
    AppState s = make_state(2);
    s.panes[1].running = true;
    s.work = {true, "tome:r=8 on n01440764", 0.4f, 2};
    s.last_overlay_ms = 1.7;
    s.messages.push_back({false, "wrote mergescope-export/tokens_per_layer.svg", 0});
    cases.push_back({"a running pane, busy worker", s});
  }
  for (FillMode mode : {FillMode::GroupMean, FillMode::Palette, FillMode::Energy, FillMode::Protected})
    for (int tab = 0; tab < 3; ++tab) {
      AppState s = make_state(4);
      s.fill = mode;
      s.plot_tab = tab;
      s.layer = 11;
      s.hover.pinned = 17;
      cases.push_back({std::string("4 panes, ") + fill_mode_name(mode) + ", tab " + std::to_string(tab), s});
    }

  int facts_checked = 0;  // panes whose facts had their full room (all of them on this 1600x1000 display)
  for (Case& c : cases) {
    SCOPED_TRACE(c.name);
    ImDrawData* data = nullptr;
    ASSERT_NO_THROW(data = frame(c.state));
    ASSERT_NO_THROW(data = frame(c.state));  // the second frame lays out with last frame's sizes
    ASSERT_NE(data, nullptr);
    EXPECT_GT(data->TotalVtxCount, 0);
    EXPECT_TRUE(c.state.requests.empty()) << "drawing alone queued a request";
    const bool images = c.state.image != nullptr;
    for (size_t i = 0; i < c.state.panes.size(); ++i) {
      const auto& r = c.state.panes[i].image_rect;
      if (!images) {
        EXPECT_EQ(r, (std::array<float, 4>{})) << "pane " << i << " placed an image without one";
        continue;
      }
      // The image keeps the original's aspect ratio, lies on the display and the panes do not overlap.
      ASSERT_GT(r[2] - r[0], 1.f);
      ASSERT_GT(r[3] - r[1], 1.f);
      EXPECT_NEAR((r[2] - r[0]) / (r[3] - r[1]), 500.f / 375.f, 0.01f) << "pane " << i;
      EXPECT_GE(r[0], 0.f);
      EXPECT_LE(r[2], 1600.f);
      EXPECT_LE(r[3], 1000.f);
      if (i > 0) {
        EXPECT_LE(c.state.panes[i - 1].image_rect[2], r[0] + kLayoutSlack) << "panes " << i - 1 << ", " << i;
      }
      // Below the pane's header line, at its left edge, as large as the pane allows: it fills the width or the
      // height left above the tallest facts (their heights last frame, which draw_panes keeps), and the facts end
      // inside the pane (a note line or a wrapped fact takes room from the images, not from the last top-5 bar).
      ImGuiWindow* w = pane_window(static_cast<int>(i));
      ASSERT_NE(w, nullptr);
      EXPECT_NEAR(r[0], w->DC.CursorStartPos.x, kLayoutSlack) << "pane " << i << ": image not at the left edge";
      EXPECT_GE(r[1], w->DC.CursorStartPos.y + ImGui::GetFrameHeight()) << "pane " << i << ": image on the header line";
      const float avail_w = w->ContentRegionRect.Max.x - r[0];
      float facts = 0;  // the tallest facts of any pane: every pane's image has the same size
      for (const Pane& p : c.state.panes) facts = std::max(facts, p.facts_height);
      ASSERT_GE(c.state.panes[i].facts_height, 0.f) << "pane " << i << ": facts never measured";
      const float inner_h = w->ContentRegionRect.Max.y - r[1];
      if (inner_h - facts >= 0.5f * inner_h) {  // else the facts scroll: a short window keeps the images large
        EXPECT_LE(w->DC.CursorMaxPos.y, w->ContentRegionRect.Max.y + kLayoutSlack) << "pane " << i << ": facts cut off";
        ++facts_checked;
      }
      const float avail_h = std::max(inner_h - facts, 0.5f * inner_h);  // the image keeps half a short pane
      EXPECT_NEAR(std::max((r[2] - r[0]) / avail_w, (r[3] - r[1]) / avail_h), 1.f, 0.01f)
          << "pane " << i << ": image " << r[2] - r[0] << " x " << r[3] - r[1] << " in " << avail_w << " x " << avail_h;
    }
  }
  EXPECT_GT(facts_checked, 40);
}

// A fact that does not fit beside the line before it goes below it: with four narrow panes nothing runs past a
// pane's right edge (a pruning method's "SD n/a (tokens pruned)" and DCT's "no groups" note did, cut mid-word).
TEST_F(GuiPanels, PaneFactsStayInsideNarrowPanes) {
  AppState s = make_state(4);
  s.layer = 3;
  auto pruning = make_result("tofu:ratio=0.9", true);
  for (double& sd : pruning->spectral_distance) sd = NAN;
  auto mixing = make_result("dct:ratio=0.9", true);
  for (double& sd : mixing->spectral_distance) sd = NAN;
  for (auto& layer : mixing->trace.layers) layer.mixes_all = true;
  s.panes[2].error.clear();
  s.panes[2].result = pruning;
  s.panes[3].running = false;
  s.panes[3].result = mixing;
  for (const float width : {1600.f, 1366.f}) {  // a desktop and a laptop display
    ImGui::GetIO().DisplaySize = ImVec2(width, 1000);
    frame(s);
    frame(s);
    for (int i = 0; i < 4; ++i) {
      ImGuiWindow* w = pane_window(i);
      ASSERT_NE(w, nullptr);
      EXPECT_LE(w->DC.CursorMaxPos.x, w->ContentRegionRect.Max.x + kLayoutSlack)
          << "pane " << i << " at a " << width << "-px display: text past the right edge (" << w->DC.CursorMaxPos.x
          << " > " << w->ContentRegionRect.Max.x << ", pane from " << w->ContentRegionRect.Min.x << ")";
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Shortcuts.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, ArrowsHomeEndMoveTheLayerWithinTheModel) {
  AppState s = make_state(2);
  s.layer = 5;
  frame(s);
  auto expect_step = [&](Key key, int layer, bool dirty) {
    s.overlay_dirty = false;
    press(s, key);
    EXPECT_EQ(s.layer, layer);
    EXPECT_EQ(s.overlay_dirty, dirty);
  };
  expect_step(kRight, 6, true);
  expect_step(kLeft, 5, true);
  expect_step(kLeft, 4, true);
  expect_step(kHome, 0, true);
  expect_step(kLeft, 0, false);  // clamped: nothing changed, nothing to re-render
  expect_step(kEnd, kDepth - 1, true);
  expect_step(kRight, kDepth - 1, false);
  expect_step(kEnd, kDepth - 1, false);
  EXPECT_TRUE(s.requests.empty());

  // Without a model there are no blocks to step through.
  AppState empty;
  frame(empty);
  press(empty, kRight);
  press(empty, kEnd);
  EXPECT_EQ(empty.layer, 0);
}

TEST_F(GuiPanels, ArrowsAreTextEditingWhileASpecFieldIsActive) {
  AppState s = make_state(2);
  s.layer = 5;
  frame(s);
  frame(s);
  click(s, header(0).spec_field);
  ASSERT_TRUE(ImGui::GetIO().WantTextInput) << "the click did not activate pane 0's spec field";
  press(s, kRight);
  press(s, kLeft);
  press(s, kLeft);
  press(s, kHome);
  EXPECT_EQ(s.layer, 5);

  // Escape leaves the field; the same key then steps the layer again.
  press(s, kEscape);
  frame(s);  // io.WantTextInput reports the previous frame's text field
  ASSERT_FALSE(ImGui::GetIO().WantTextInput);
  press(s, kRight);
  EXPECT_EQ(s.layer, 6);
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Hover and pin.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, HoverFindsThePatchUnderTheMouseAndAClickPinsIt) {
  AppState s = make_state(2);
  s.layer = 1;
  frame(s);
  frame(s);
  for (int pane : {0, 1})
    for (auto [r, c] : std::vector<std::pair<int, int>>{{0, 0}, {13, 13}, {6, 9}, {0, 13}, {13, 0}, {7, 2}}) {
      SCOPED_TRACE("pane " + std::to_string(pane) + " patch (" + std::to_string(r) + ", " + std::to_string(c) + ")");
      // The centre and points near the four corners of the patch (about 3 image pixels in).
      for (auto [fx, fy] :
           std::vector<std::pair<double, double>>{{0.5, 0.5}, {0.15, 0.15}, {0.85, 0.15}, {0.15, 0.85}, {0.85, 0.85}}) {
        ImGui::GetIO().MousePos = patch_centre(s, pane, r, c, fx, fy);
        frame(s);
        EXPECT_EQ(s.hover.patch, r * kGrid + c) << "at (" << fx << ", " << fy << ") of the patch";
        EXPECT_EQ(s.hover.pane, pane);
      }
    }
  // Left of the crop (x < crop.x0) is on the image but outside what the model sees.
  const auto& rect = s.panes[0].image_rect;
  const float scale = (rect[2] - rect[0]) / 500.f;
  ImGui::GetIO().MousePos = ImVec2(rect[0] + static_cast<float>(s.image->crop.x0 / 2) * scale, (rect[1] + rect[3]) / 2);
  frame(s);
  EXPECT_EQ(s.hover.patch, -1);
  EXPECT_EQ(s.hover.pane, 0);
  // Off every image: nothing hovered, and the change marks the overlays dirty.
  ImGui::GetIO().MousePos = patch_centre(s, 0, 3, 3);
  frame(s);
  s.overlay_dirty = false;
  mouse_away();
  frame(s);
  EXPECT_EQ(s.hover.patch, -1);
  EXPECT_EQ(s.hover.pane, -1);
  EXPECT_TRUE(s.overlay_dirty);

  // Click pins, a second click on the same patch unpins, a click elsewhere moves the pin.
  const ImVec2 at = patch_centre(s, 0, 4, 5);
  ImGui::GetIO().MousePos = at;
  frame(s);
  click(s, at);
  EXPECT_EQ(s.hover.pinned, 4 * kGrid + 5);
  click(s, at);
  EXPECT_EQ(s.hover.pinned, -1);
  click(s, at);
  click(s, patch_centre(s, 1, 9, 2));
  EXPECT_EQ(s.hover.pinned, 9 * kGrid + 2);
  EXPECT_TRUE(s.requests.empty());
}

TEST_F(GuiPanels, ASteadyHoverDoesNotReRenderTheOverlay) {
  AppState s = make_state(2);
  frame(s);
  frame(s);
  const ImVec2 centre = patch_centre(s, 0, 4, 5);
  ImGui::GetIO().MousePos = centre;
  frame(s);
  ASSERT_EQ(s.hover.patch, 4 * kGrid + 5);
  EXPECT_TRUE(s.overlay_dirty);
  // The overlay is re-rendered only when what it shows changes: not on every frame the mouse rests on a patch.
  for (ImVec2 at : {centre, ImVec2(centre.x + 1, centre.y + 1), centre}) {
    s.overlay_dirty = false;
    ImGui::GetIO().MousePos = at;
    frame(s);
    EXPECT_EQ(s.hover.patch, 4 * kGrid + 5);
    EXPECT_FALSE(s.overlay_dirty) << "hovering the same patch re-renders the overlays every frame";
  }
  s.overlay_dirty = false;
  ImGui::GetIO().MousePos = patch_centre(s, 0, 4, 6);
  frame(s);
  EXPECT_EQ(s.hover.patch, 4 * kGrid + 6);
  EXPECT_TRUE(s.overlay_dirty);
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Real UI interactions queue requests.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, TypingASpecAndEnterQueuesSetMethodForThatPane) {
  AppState s = make_state(2);
  set_spec(s.panes[1], "tome");
  frame(s);
  frame(s);
  click(s, header(1).spec_field);  // right of the text: the cursor lands at its end
  ASSERT_TRUE(ImGui::GetIO().WantTextInput);
  for (char ch : std::string(":r=13")) ImGui::GetIO().AddInputCharacter(static_cast<unsigned>(ch));
  frame(s);
  EXPECT_TRUE(s.requests.empty()) << "typing alone must not run anything";
  press(s, kEnter);
  const std::vector<Request> set = take(s, RequestKind::SetMethod);
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].pane, 1);
  EXPECT_EQ(set[0].text, "tome:r=13");
  EXPECT_STREQ(s.panes[1].spec_edit.data(), "tome:r=13");
  EXPECT_STREQ(s.panes[0].spec_edit.data(), "tome:r=8");
  EXPECT_EQ(s.requests.size(), 1u);
}

TEST_F(GuiPanels, ChoosingAPresetQueuesSetMethodWithItsSpec) {
  AppState s = make_state(2);
  frame(s);
  frame(s);
  click(s, header(0).presets);
  frame(s);  // the popup's first frame only measures it
  ImGuiContext& g = *ImGui::GetCurrentContext();
  ASSERT_FALSE(g.OpenPopupStack.empty()) << "the presets button did not open its popup";
  ImGuiWindow* popup = g.OpenPopupStack.back().Window;
  ASSERT_NE(popup, nullptr);
  // Selectables are one text line each, ItemSpacing.y apart.
  const int pick = 2;
  const float row = ImGui::GetFontSize() + ImGui::GetStyle().ItemSpacing.y;
  click(s, ImVec2(popup->DC.CursorStartPos.x + 20, popup->DC.CursorStartPos.y + pick * row + ImGui::GetFontSize() / 2));
  const std::vector<Request> set = take(s, RequestKind::SetMethod);
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set[0].pane, 0);
  EXPECT_EQ(set[0].text, method_presets()[pick].first);
  EXPECT_EQ(std::string(s.panes[0].spec_edit.data()), method_presets()[pick].first);
  EXPECT_TRUE(g.OpenPopupStack.empty()) << "the popup stays open after a choice";
}

TEST_F(GuiPanels, TheCloseButtonQueuesRemovePaneForThatPaneOnly) {
  AppState s = make_state(3);
  frame(s);
  frame(s);
  click(s, header(2).close);
  std::vector<Request> removed = take(s, RequestKind::RemovePane);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].pane, 2);
  EXPECT_EQ(s.panes.size(), 3u) << "a panel removed the pane itself instead of asking";
  s.requests.clear();
  click(s, header(0).close);
  removed = take(s, RequestKind::RemovePane);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].pane, 0);

  // Hovering "x" explains it; hovering "presets" does not claim to close the pane.
  ImGui::GetIO().MousePos = header(1).close;
  frame(s);
  frame(s);
  EXPECT_TRUE(tooltip_shown());
  ImGui::GetIO().MousePos = header(1).presets;
  frame(s);
  frame(s);
  EXPECT_FALSE(tooltip_shown());
}

TEST_F(GuiPanels, ALonePaneHasNoCloseButtonAndItsImageStaysBelowTheHeader) {
  AppState one = make_state(1);
  frame(one);
  frame(one);
  ImGuiWindow* w = pane_window(0);
  ASSERT_NE(w, nullptr);
  const float header_bottom = w->DC.CursorStartPos.y + ImGui::GetFrameHeight();
  EXPECT_GE(one.panes[0].image_rect[1], header_bottom) << "the image went onto the header line";
  EXPECT_NEAR(one.panes[0].image_rect[0], w->DC.CursorStartPos.x, kLayoutSlack);
  // Where "x" would be there is nothing to click, and hovering "presets" shows no "Close this pane".
  click(one, header(0).close);
  EXPECT_TRUE(take(one, RequestKind::RemovePane).empty());
  ImGui::GetIO().MousePos = header(0).presets;
  frame(one);
  frame(one);
  EXPECT_FALSE(tooltip_shown()) << "a tooltip on the presets button";
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Group facts for the tooltip.
// ---------------------------------------------------------------------------------------------------------------
double cosine(const std::array<float, kKeyDim>& a, const std::array<float, kKeyDim>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int k = 0; k < kKeyDim; ++k) ab += a[k] * b[k], aa += a[k] * a[k], bb += b[k] * b[k];
  return ab / std::sqrt(aa * bb);
}

TEST_F(GuiPanels, GroupInfoFollowsTheSyntheticSchedule) {
  const auto r = make_result("tome:r=8", true);

  // Sizes and the block that formed the group.
  struct Expect {
    int layer, patch, size, formed;
  };
  for (const Expect& e : std::vector<Expect>{
           {0, 0, 2, 0},    // pair (0,0)+(0,1), block 0
           {1, 0, 4, 1},    // grown to {0..3} in block 1
           {7, 3, 4, 1},    // and unchanged since
           {0, 14, 1, -1},  // row 1 is merged in block 1
           {1, 14, 2, 1},
           {5, 15, 2, 1},
           {11, 11 * kGrid + 4, 2, 11},
           {11, 12 * kGrid + 3, 1, -1},  // row 12: never merged
           {1, 195, 1, -1},              // pruned in block 2, alive before
       }) {
    SCOPED_TRACE("layer " + std::to_string(e.layer) + " patch " + std::to_string(e.patch));
    const GroupInfo g = group_info(*r, e.layer, e.patch, -1);
    EXPECT_GE(g.group, 0);
    EXPECT_EQ(g.group, group_of_patch(*r, e.layer, e.patch));
    EXPECT_EQ(g.size, e.size);
    EXPECT_EQ(g.formed_layer, e.formed);
    EXPECT_FALSE(g.has_similarity) << "nothing pinned";
  }

  // Energy of the block's input token. Block 1's inputs: CLS, the seven row-0 pairs (tokens 1..7), then single
  // patches from row 1 on, so patch 2 (pair {2,3}) is input token 2 and patch 14 is input token 8. Block 2's
  // inputs: CLS, {0..3}, five row-0 pairs, seven row-1 pairs, so patch 28 is input token 14.
  struct EnergyAt {
    int layer, patch, input_token;
  };
  for (const EnergyAt& e :
       std::vector<EnergyAt>{{0, 0, 1}, {0, 195, 196}, {1, 2, 2}, {1, 3, 2}, {1, 14, 8}, {2, 28, 14}}) {
    SCOPED_TRACE("layer " + std::to_string(e.layer) + " patch " + std::to_string(e.patch));
    const GroupInfo g = group_info(*r, e.layer, e.patch, -1);
    ASSERT_TRUE(g.has_energy);
    EXPECT_NEAR(g.energy, synthetic_energy(e.layer, e.input_token), kEnergyTolerance);
  }

  // Cosine of the block's keys to the pinned patch, by input token.
  EXPECT_NEAR(group_info(*r, 0, 0, 5).similarity, cosine(synthetic_key(0, 1), synthetic_key(0, 6)), kCosTolerance);
  EXPECT_NEAR(group_info(*r, 1, 14, 2).similarity, cosine(synthetic_key(1, 8), synthetic_key(1, 2)), kCosTolerance);
  const GroupInfo same = group_info(*r, 1, 0, 1);  // patches 0 and 1 entered block 1 as one token
  ASSERT_TRUE(same.has_similarity);
  EXPECT_NEAR(same.similarity, 1.0, kCosTolerance);
  EXPECT_TRUE(group_info(*r, 0, 0, 5).has_similarity);

  // Pruned: patch 195 from block 2 on, pair {26, 27} from block 4 on.
  for (auto [layer, patch] : std::vector<std::pair<int, int>>{{2, 195}, {11, 195}, {4, 26}, {4, 27}, {9, 27}}) {
    SCOPED_TRACE("pruned: layer " + std::to_string(layer) + " patch " + std::to_string(patch));
    const GroupInfo g = group_info(*r, layer, patch, 0);
    EXPECT_EQ(g.group, -1);
    EXPECT_EQ(g.size, 0);
    EXPECT_EQ(g.formed_layer, -1);
    EXPECT_FALSE(g.has_energy);
    EXPECT_FALSE(g.has_similarity);
  }
  EXPECT_EQ(group_info(*r, 3, 26, -1).size, 2);  // still there before block 4
  // A pinned patch that is gone at the block's input has no similarity.
  EXPECT_FALSE(group_info(*r, 3, 0, 195).has_similarity);
  EXPECT_TRUE(group_info(*r, 2, 0, 195).has_similarity);  // 195 entered block 2, which pruned it

  // Out of range layers give an empty answer.
  EXPECT_EQ(group_info(*r, -1, 0, -1).group, -1);
  EXPECT_EQ(group_info(*r, kDepth, 0, -1).group, -1);
  EXPECT_EQ(group_of_patch(*r, kDepth, 0), -1);

  // The baseline never merges.
  const auto none = make_result("none", false);
  for (int l : {0, 6, 11}) {
    const GroupInfo g = group_info(*none, l, 100, -1);
    EXPECT_EQ(g.size, 1);
    EXPECT_EQ(g.formed_layer, -1);
    EXPECT_EQ(g.group, kPrefix + 100);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 6. The CPU overlay.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, PatchAtAgreesWithThePixelMapsForEveryPixel) {
  for (auto [w, h] : std::vector<std::pair<int, int>>{{500, 375}, {375, 500}}) {
    SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h));
    const CropMapping crop = torchvision_crop(w, h);
    OverlayInputs in;
    map_pixels_to_patches(in, w, h, crop, kImgSize, kPatch, default_line_width(crop, kImgSize));
    ASSERT_EQ(in.grid, kGrid);
    ASSERT_EQ(static_cast<int>(in.column_patch.size()), w);
    ASSERT_EQ(static_cast<int>(in.row_patch.size()), h);
    int mismatches = 0;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int expected =
            in.row_patch[y] < 0 || in.column_patch[x] < 0 ? -1 : in.row_patch[y] * kGrid + in.column_patch[x];
        // Anywhere inside the pixel gives the pixel's patch.
        for (double f : {0.0, 0.5, 0.999})
          if (patch_at(crop, kImgSize, kPatch, x + f, y + f) != expected && ++mismatches <= 5)
            ADD_FAILURE() << "pixel (" << x << ", " << y << ") + " << f << ": patch_at "
                          << patch_at(crop, kImgSize, kPatch, x + f, y + f) << ", map " << expected;
      }
    EXPECT_EQ(mismatches, 0);
    // The maps themselves: patch columns run 0..13 left to right over the crop, about crop.width / 14 pixels each.
    auto check_axis = [&](const std::vector<int32_t>& which, double origin, double extent) {
      std::vector<int> count(kGrid, 0);
      int previous = -1;
      for (size_t i = 0; i < which.size(); ++i) {
        const bool inside = i + 0.5 >= origin && i + 0.5 < origin + extent;
        EXPECT_EQ(which[i] >= 0, inside) << "pixel " << i;
        if (which[i] < 0) continue;
        EXPECT_TRUE(which[i] == previous || which[i] == previous + 1) << "pixel " << i;
        previous = which[i];
        ++count[which[i]];
      }
      for (int c = 0; c < kGrid; ++c) EXPECT_NEAR(count[c], extent / kGrid, 1.0) << "patch column/row " << c;
    };
    check_axis(in.column_patch, crop.x0, crop.width);
    check_axis(in.row_patch, crop.y0, crop.height);
  }
}

// An image over the overlay's side limit (kMaxOverlaySide or the GL's) is drawn on a downscaled copy: the overlay
// inputs are in the copy's pixels, with the crop scaled alike, while hover still maps the mouse into the original.
TEST_F(GuiPanels, AnImageOverTheOverlayLimitIsDrawnOnItsDownscaledCopy) {
  AppState s = make_state(1);
  auto image = std::make_shared<LoadedImage>(*s.image);  // 500 x 375, shown at 250 x 188 here
  image->display = gradient_image(250, 188);
  const double sx = 250.0 / 500, sy = 188.0 / 375;
  image->display_crop = {image->crop.x0 * sx, image->crop.y0 * sy, image->crop.width * sx, image->crop.height * sy};
  s.image = image;
  EXPECT_EQ(&image->shown(), &image->display);
  EXPECT_EQ(image->shown_crop().width, image->display_crop.width);

  const OverlayInputs in = make_overlay_inputs(*image, s.model, s.panes[0].result.get(), 1, FillMode::Palette);
  ASSERT_EQ(in.width, 250);
  ASSERT_EQ(in.height, 188);
  ASSERT_EQ(in.column_patch.size(), 250u);
  ASSERT_EQ(in.row_patch.size(), 188u);
  // Every display pixel's patch is patch_at of the display crop, and it is the patch of the original pixel at
  // the same place, except within a pixel of a patch edge (the copy's pixels straddle the original's).
  int mismatches = 0, away_from_edges = 0;
  for (int y = 0; y < 188; ++y)
    for (int x = 0; x < 250; ++x) {
      const int mapped =
          in.row_patch[y] < 0 || in.column_patch[x] < 0 ? -1 : in.row_patch[y] * kGrid + in.column_patch[x];
      if (patch_at(image->display_crop, kImgSize, kPatch, x + 0.5, y + 0.5) != mapped) ++mismatches;
      const double ox = (x + 0.5) / sx, oy = (y + 0.5) / sy;
      bool near_edge = false;
      for (double d : {-1.0 / sx, 1.0 / sx})
        near_edge |=
            patch_at(image->crop, kImgSize, kPatch, ox + d, oy) != patch_at(image->crop, kImgSize, kPatch, ox, oy);
      for (double d : {-1.0 / sy, 1.0 / sy})
        near_edge |=
            patch_at(image->crop, kImgSize, kPatch, ox, oy + d) != patch_at(image->crop, kImgSize, kPatch, ox, oy);
      if (near_edge) continue;
      ++away_from_edges;
      EXPECT_EQ(mapped, patch_at(image->crop, kImgSize, kPatch, ox, oy)) << "display pixel (" << x << ", " << y << ")";
    }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GT(away_from_edges, 250 * 188 / 3);
  EXPECT_EQ(std::set<int32_t>(in.column_patch.begin(), in.column_patch.end()).size(), static_cast<size_t>(kGrid + 1));

  // The pane keeps the original's aspect ratio and hover works in original pixels, as for any image.
  frame(s);
  frame(s);
  ImGui::GetIO().MousePos = patch_centre(s, 0, 6, 9);
  frame(s);
  EXPECT_EQ(s.hover.patch, 6 * kGrid + 9);
}

// The category set_partition's Protected mode should give patch p after block `layer`, from the schedule.
std::array<uint8_t, 3> protected_category(int layer, int p) {
  const int row = p / kGrid;
  if ((layer >= 2 && p == 195) || (layer >= 4 && (p == 26 || p == 27))) return ProtectedColors::pruned;
  if (row == layer || (layer == 1 && p < 4)) return ProtectedColors::merged_now;
  if (row < layer) return ProtectedColors::merged_before;
  return ProtectedColors::kept;
}

TEST_F(GuiPanels, ProtectedModeSortsPatchesByWhenTheyMerged) {
  const auto image = make_image(500, 375);
  const auto r = make_result("tome:r=8", true);
  for (int layer = 0; layer < kDepth; ++layer) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    OverlayInputs in;
    map_pixels_to_patches(in, 500, 375, image->crop, kImgSize, kPatch, 1);
    set_partition(in, r.get(), layer, FillMode::Protected, image->model_view, kPatch);
    ASSERT_EQ(in.group.size(), static_cast<size_t>(kPatches));
    ASSERT_EQ(in.fill.size(), static_cast<size_t>(kPatches) * 4);
    int wrong = 0;
    for (int p = 0; p < kPatches; ++p) {
      EXPECT_EQ(in.group[p], r->trace.layers[layer].cluster_of_token[kPrefix + p]);
      const std::array<uint8_t, 3> want = protected_category(layer, p);
      const std::array<uint8_t, 3> got{in.fill[p * 4], in.fill[p * 4 + 1], in.fill[p * 4 + 2]};
      if (got != want && ++wrong <= 5)
        ADD_FAILURE() << "patch " << p << ": (" << int(got[0]) << ", " << int(got[1]) << ", " << int(got[2])
                      << "), want (" << int(want[0]) << ", " << int(want[1]) << ", " << int(want[2]) << ")";
      EXPECT_GT(in.fill[p * 4 + 3], 0) << "patch " << p << " has no fill";
    }
    EXPECT_EQ(wrong, 0);
  }
}

TEST_F(GuiPanels, GroupMeanFillIsTheMeanOfTheGroupsModelPixels) {
  const auto image = make_image(500, 375);
  const auto r = make_result("tome:r=8", true);
  OverlayInputs in;
  map_pixels_to_patches(in, 500, 375, image->crop, kImgSize, kPatch, 1);
  set_partition(in, r.get(), 1, FillMode::GroupMean, image->model_view, kPatch);
  auto mean_over = [&](const std::vector<int>& patches) {
    std::array<double, 3> sum{};
    int n = 0;
    for (int p : patches)
      for (int y = (p / kGrid) * kPatch; y < (p / kGrid + 1) * kPatch; ++y)
        for (int x = (p % kGrid) * kPatch; x < (p % kGrid + 1) * kPatch; ++x, ++n)
          for (int k = 0; k < 3; ++k) sum[k] += image->model_view.row(y)[x * 3 + k];
    std::array<int, 3> m{};
    for (int k = 0; k < 3; ++k) m[k] = static_cast<int>(std::lround(sum[k] / n));
    return m;
  };
  for (const std::vector<int>& group : std::vector<std::vector<int>>{{0, 1, 2, 3}, {14, 15}, {100}, {195}})
    for (int p : group) {
      SCOPED_TRACE("patch " + std::to_string(p));
      const std::array<int, 3> want = mean_over(group);
      for (int k = 0; k < 3; ++k) EXPECT_EQ(in.fill[p * 4 + k], want[k]);
      EXPECT_EQ(in.fill[p * 4 + 3], 255);
    }

  // Without a result every patch is its own group and nothing is filled.
  set_partition(in, nullptr, 1, FillMode::GroupMean, image->model_view, kPatch);
  for (int p = 0; p < kPatches; ++p) {
    EXPECT_EQ(in.group[p], p);
    EXPECT_EQ(in.fill[p * 4 + 3], 0);
  }
}

// Boundary pixels by our own definition: inside the crop, and a pixel `line_width` away (left, right, up or down)
// lies in another patch of another group.
bool expected_edge(const CropMapping& crop, const std::vector<int32_t>& group, int w, int h, int x, int y, int lw) {
  const int here = patch_at(crop, kImgSize, kPatch, x, y);
  if (here < 0) return false;
  const int offsets[4][2] = {{-lw, 0}, {lw, 0}, {0, -lw}, {0, lw}};
  for (const auto& o : offsets) {
    const int nx = x + o[0], ny = y + o[1];
    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
    const int there = patch_at(crop, kImgSize, kPatch, nx, ny);
    if (there >= 0 && there != here && group[there] != group[here]) return true;
  }
  return false;
}

uint8_t dimmed(uint8_t v, int t) { return static_cast<uint8_t>((v * (255 - t) + 127) / 255); }

TEST_F(GuiPanels, BoundariesAreDrawnExactlyBetweenGroups) {
  const auto r = make_result("tome:r=8", true);
  for (auto [w, h] : std::vector<std::pair<int, int>>{{500, 375}, {375, 500}})
    for (int layer : {0, 1, 4, 11}) {
      SCOPED_TRACE(std::to_string(w) + "x" + std::to_string(h) + " layer " + std::to_string(layer));
      const auto image = make_image(w, h);
      ModelSummary model;
      model.img_size = kImgSize;
      model.patch = kPatch;
      const OverlayInputs in = make_overlay_inputs(*image, model, r.get(), layer, FillMode::Palette);
      const int lw = default_line_width(image->crop, kImgSize);
      OverlayStyle style;
      style.opacity = 0;
      style.boundaries = true;
      const ms::RgbImage out = render_overlay_cpu(image->original, in, style);
      ASSERT_EQ(out.width, w);
      ASSERT_EQ(out.height, h);
      int wrong = 0, edges = 0;
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const uint8_t* src = image->original.row(y) + x * 3;
          const uint8_t* got = out.row(y) + x * 3;
          std::array<int, 3> want{};
          const bool inside = patch_at(image->crop, kImgSize, kPatch, x, y) >= 0;
          const bool edge = expected_edge(image->crop, in.group, w, h, x, y, lw);
          edges += edge;
          for (int k = 0; k < 3; ++k) want[k] = !inside ? dimmed(src[k], 153) : edge ? style.boundary_rgb[k] : src[k];
          if ((got[0] != want[0] || got[1] != want[1] || got[2] != want[2]) && ++wrong <= 5)
            ADD_FAILURE() << "pixel (" << x << ", " << y << ")" << (edge ? " (edge)" : "")
                          << (inside ? "" : " (outside)") << ": (" << int(got[0]) << ", " << int(got[1]) << ", "
                          << int(got[2]) << "), want (" << want[0] << ", " << want[1] << ", " << want[2] << ")";
        }
      EXPECT_EQ(wrong, 0);
      EXPECT_GT(edges, 0);
    }
}

TEST_F(GuiPanels, AHighlightedGroupIsOutlinedAndTheRestDimmed) {
  const auto image = make_image(500, 375);
  const auto r = make_result("tome:r=8", true);
  ModelSummary model;
  model.img_size = kImgSize;
  model.patch = kPatch;
  const int layer = 1;
  const OverlayInputs in = make_overlay_inputs(*image, model, r.get(), layer, FillMode::Palette);
  OverlayStyle style;
  style.opacity = 0;
  style.boundaries = false;
  style.highlight = in.group[0];  // {0, 1, 2, 3}
  const ms::RgbImage out = render_overlay_cpu(image->original, in, style);
  const int lw = default_line_width(image->crop, kImgSize);
  int wrong = 0, outlined = 0;
  for (int y = 0; y < 375; ++y)
    for (int x = 0; x < 500; ++x) {
      const int p = patch_at(image->crop, kImgSize, kPatch, x, y);
      const uint8_t* src = image->original.row(y) + x * 3;
      const uint8_t* got = out.row(y) + x * 3;
      std::array<int, 3> want{};
      const bool lit = p >= 0 && in.group[p] == style.highlight;
      const bool edge = lit && expected_edge(image->crop, in.group, 500, 375, x, y, lw);
      outlined += edge;
      for (int k = 0; k < 3; ++k)
        want[k] = p < 0 ? dimmed(src[k], 153) : edge ? style.highlight_rgb[k] : lit ? src[k] : dimmed(src[k], 110);
      if ((got[0] != want[0] || got[1] != want[1] || got[2] != want[2]) && ++wrong <= 5)
        ADD_FAILURE() << "pixel (" << x << ", " << y << "): (" << int(got[0]) << ", " << int(got[1]) << ", "
                      << int(got[2]) << "), want (" << want[0] << ", " << want[1] << ", " << want[2] << ")";
    }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(outlined, 0);
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Figures.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, PerLayerFiguresHaveOneLabelledSeriesPerResultAndTheLayerMarker) {
  AppState s = make_state(4);  // panes 2 (error) and 3 (running) have no result
  s.layer = 6;
  using Getter = std::function<std::vector<double>(const PaneResult&)>;
  const std::vector<std::pair<std::function<ms::Figure(const AppState&)>, Getter>> figures = {
      {tokens_figure,
       [](const PaneResult& r) { return std::vector<double>(r.tokens_per_layer.begin(), r.tokens_per_layer.end()); }},
      {gmacs_figure, [](const PaneResult& r) { return r.gmacs_per_layer; }},
      {spectral_distance_figure, [](const PaneResult& r) { return r.spectral_distance; }},
  };
  for (const auto& [make, values] : figures) {
    const ms::Figure f = make(s);
    SCOPED_TRACE(f.title);
    ASSERT_EQ(f.lines.size(), 3u);  // two results + the marker
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < 2; ++i) {
      const ms::Series& line = f.lines[i];
      EXPECT_EQ(line.label, "pane " + std::to_string(i + 1) + ": " + s.panes[i].result->spec);
      EXPECT_EQ(line.color, pane_color(s, i));
      EXPECT_FALSE(line.dashed);
      const std::vector<double> want = values(*s.panes[i].result);
      ASSERT_EQ(line.y.size(), want.size());
      for (size_t l = 0; l < want.size(); ++l) {
        EXPECT_EQ(line.x[l], static_cast<double>(l));  // blocks from 0, as the CLI
        EXPECT_EQ(line.y[l], want[l]);
        lo = std::min(lo, want[l]), hi = std::max(hi, want[l]);
      }
    }
    const ms::Series& marker = f.lines.back();
    EXPECT_TRUE(marker.dashed);
    EXPECT_TRUE(marker.label.empty()) << "the marker is not a legend entry";
    EXPECT_EQ(marker.x, (std::vector<double>{6, 6}));
    EXPECT_EQ(marker.y, (std::vector<double>{lo, hi}));
    EXPECT_NO_THROW(ms::render_svg(f));
  }
  EXPECT_EQ(spectral_distance_figure(s).y_min, 0.0);
  // The two panes' colours differ (different families).
  EXPECT_NE(pane_color(s, 0), pane_color(s, 1));

  // No results: no series and no marker.
  AppState empty = make_state(2);
  for (Pane& p : empty.panes) p.result.reset();
  EXPECT_TRUE(tokens_figure(empty).lines.empty());
  EXPECT_TRUE(gmacs_figure(empty).lines.empty());
  EXPECT_TRUE(spectral_distance_figure(empty).lines.empty());
  EXPECT_EQ(all_figures(s).size(), 5u);
}

TEST_F(GuiPanels, EnergyHistogramCountsEveryFiniteEnergyOnce) {
  AppState s = make_state(4);
  for (int layer : {0, 1, 5, 11}) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    s.layer = layer;
    const ms::Figure f = energy_histogram_figure(s);
    ASSERT_EQ(f.histograms.size(), 2u);
    for (int i = 0; i < 2; ++i) {
      const ms::Histogram& h = f.histograms[i];
      EXPECT_EQ(h.label, "pane " + std::to_string(i + 1) + ": " + s.panes[i].result->spec);
      const auto& energy = s.panes[i].result->trace.layers[layer].energy;
      const double finite =
          static_cast<double>(std::count_if(energy.begin(), energy.end(), [](float e) { return std::isfinite(e); }));
      EXPECT_EQ(finite, s.panes[i].result->trace.layers[layer].tokens_in - 1);  // all but CLS
      double sum = 0;
      for (double c : h.counts) sum += c;
      EXPECT_EQ(sum, finite);
      ASSERT_EQ(h.edges.size(), h.counts.size() + 1);
      for (size_t b = 1; b < h.edges.size(); ++b) EXPECT_LT(h.edges[b - 1], h.edges[b]);
      // Every energy lies within the edges.
      for (float e : energy)
        if (std::isfinite(e)) {
          EXPECT_GE(e, h.edges.front() - 1e-9);
          EXPECT_LE(e, h.edges.back() + 1e-9);
        }
    }
    EXPECT_NO_THROW(ms::render_svg(f));
  }
}

TEST_F(GuiPanels, EnergyMapIsTheEnergyOfEachPatchsInputToken) {
  AppState s = make_state(2);
  const auto& tr = s.panes[0].result->trace;
  for (int layer : {0, 1, 2, 4, 11}) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    s.layer = layer;
    const std::vector<float> map = energy_map(s, 0);
    ASSERT_EQ(map.size(), static_cast<size_t>(kPatches));
    for (int p = 0; p < kPatches; ++p) {
      const int tok = layer == 0 ? kPrefix + p : tr.layers[layer - 1].cluster_of_token[kPrefix + p];
      if (tok < 0)
        EXPECT_TRUE(std::isnan(map[p])) << "patch " << p << " was pruned before block " << layer;
      else
        EXPECT_EQ(map[p], synthetic_energy(layer, tok)) << "patch " << p;
    }
  }
  // Hand-checked points (see GroupInfoFollowsTheSyntheticSchedule).
  s.layer = 1;
  EXPECT_EQ(energy_map(s, 0)[14], synthetic_energy(1, 8));
  s.layer = 2;
  EXPECT_EQ(energy_map(s, 0)[28], synthetic_energy(2, 14));
  s.layer = 5;
  EXPECT_TRUE(std::isnan(energy_map(s, 0)[195]));
  EXPECT_TRUE(std::isnan(energy_map(s, 0)[27]));
  // Panes without a result, or out of range: all NaN.
  for (int pane : {2, 3, 7, -1}) {
    const std::vector<float> none = energy_map(s, pane);
    EXPECT_EQ(std::count_if(none.begin(), none.end(), [](float e) { return std::isnan(e); }), kPatches) << pane;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 8. Error pop-up.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, AnErrorOpensTheModalOnceWithTheNewestErrorText) {
  AppState s = make_state(1);
  frame(s);
  bool open = true;
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_FALSE(open);

  // An info message advances the count but opens nothing.
  s.post(false, "wrote mergescope-export/gmacs_per_layer.svg");
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_FALSE(open);
  EXPECT_EQ(s.messages_shown, 1u);

  // Two errors in one frame: one modal, the newest text. The modal auto-sizes to its text (wrapped at 600).
  s.post(true, "x: y");
  const std::string newest = "models/deit_tiny/model.safetensors: expected 12 blocks, found 11";
  s.post(true, newest);
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_TRUE(open);
  EXPECT_EQ(s.messages_shown, 3u);
  frame(s);
  frame(s);
  ImGuiWindow* modal = ImGui::FindWindowByName("Error");
  ASSERT_NE(modal, nullptr);
  EXPECT_TRUE(modal->Active);
  EXPECT_GT(modal->DrawList->VtxBuffer.Size, 0);
  EXPECT_NEAR(modal->ContentSize.x, ImGui::CalcTextSize(newest.c_str()).x, 1.0f)
      << "the modal is not sized for the newest error";

  // Enter dismisses it, and it stays closed.
  press(s, kEnter);
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_FALSE(open);
  frame(s);
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_FALSE(open);

  // A later error opens it again.
  s.post(true, "x: y");
  frame(s, [&] { open = ImGui::IsPopupOpen("Error"); });
  EXPECT_TRUE(open);
  EXPECT_EQ(s.messages_shown, 4u);
}

TEST_F(GuiPanels, ShortcutsAreIgnoredWhileTheErrorModalIsOpen) {
  AppState s = make_state(2);
  s.layer = 5;
  frame(s);
  s.post(true, "x: y");
  frame(s);
  frame(s);
  press(s, kLeft);
  press(s, kEnd);
  EXPECT_EQ(s.layer, 5) << "keys meant for the modal moved the layer behind it";
  press(s, kEnter);  // dismiss
  frame(s);
  press(s, kLeft);
  EXPECT_EQ(s.layer, 4);
}

// ---------------------------------------------------------------------------------------------------------------
// 9. Image browser.
// ---------------------------------------------------------------------------------------------------------------
TEST_F(GuiPanels, TheBrowserListsItsFolderOnceAndWantsEachVisibleThumbnailOnce) {
  AppState s = make_state(1);
  s.browser.open = true;
  s.browser.folder = "/data/imagenet-sample";
  frame(s);
  std::vector<Request> browse = take(s, RequestKind::BrowseFolder);
  ASSERT_EQ(browse.size(), 1u);
  EXPECT_EQ(browse[0].text, "/data/imagenet-sample");
  EXPECT_TRUE(s.browser.listed);
  frame(s);
  frame(s);
  EXPECT_EQ(take(s, RequestKind::BrowseFolder).size(), 1u) << "the folder was listed again";

  // The worker's listing arrives: 200 files, no thumbnails yet.
  s.requests.clear();
  for (int i = 0; i < 200; ++i) s.browser.files.push_back("img_" + std::to_string(1000 + i) + ".JPEG");
  auto check_wanted = [&] {
    std::set<std::string> unique(s.browser.wanted.begin(), s.browser.wanted.end());
    EXPECT_EQ(unique.size(), s.browser.wanted.size()) << "a thumbnail was wanted twice";
    for (const std::string& path : s.browser.wanted) {
      ASSERT_EQ(path.rfind(s.browser.folder + "/img_", 0), 0u) << path;
      EXPECT_NE(std::find(s.browser.files.begin(), s.browser.files.end(), path.substr(s.browser.folder.size() + 1)),
                s.browser.files.end())
          << path;
    }
  };
  for (int f = 0; f < 5; ++f) frame(s);
  check_wanted();
  const size_t visible = s.browser.wanted.size();
  EXPECT_GT(visible, 0u);
  EXPECT_LT(visible, 200u) << "files off screen were wanted too";
  EXPECT_EQ(s.browser.wanted.front(), s.browser.folder + "/img_1000.JPEG");

  // Scrolling down shows more; each is wanted once.
  ImGui::GetIO().MousePos = ImVec2(800, 500);  // the browser is centred on the display
  for (int f = 0; f < 10; ++f) {
    ImGui::GetIO().MouseWheel = -5;
    frame(s);
  }
  ImGui::GetIO().MouseWheel = 0;
  frame(s);
  check_wanted();
  EXPECT_GT(s.browser.wanted.size(), visible) << "scrolling revealed no new files";

  // The app takes the list and leaves a placeholder per path (App::load_thumbnails); some then fail. Neither is
  // wanted again.
  for (const std::string& path : s.browser.wanted) s.browser.thumbnails[path];
  s.browser.thumbnails[s.browser.wanted.front()].failed = true;
  s.browser.wanted.clear();
  frame(s);
  frame(s);
  EXPECT_TRUE(s.browser.wanted.empty());
  EXPECT_TRUE(take(s, RequestKind::BrowseFolder).empty());
  EXPECT_TRUE(take(s, RequestKind::OpenImage).empty());
}

}  // namespace
