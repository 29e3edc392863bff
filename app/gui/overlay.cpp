#include "overlay.h"

#include "plot_view.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace ms::gui {

namespace {

// The same rounding as blend() in shaders/overlay.frag.
inline int blend(int a, int b, int t) { return (a * (255 - t) + b * t + 127) / 255; }

}  // namespace

std::array<uint8_t, 3> energy_color(float t) {
  // The energy plot's colour map, so that the overlay and the heatmap read alike.
  if (!(t >= 0)) t = 0;  // NaN too
  const ImU32 c = heatmap_color(std::min(t, 1.0f));
  return {static_cast<uint8_t>(c >> IM_COL32_R_SHIFT), static_cast<uint8_t>(c >> IM_COL32_G_SHIFT),
          static_cast<uint8_t>(c >> IM_COL32_B_SHIFT)};
}

std::array<uint8_t, 3> palette_color(int index) {
  // Twelve well-separated hues; groups are told apart by boundaries too, so reuse after twelve is fine.
  static const uint8_t colors[12][3] = {{230, 159, 0},   {86, 180, 233},  {0, 158, 115},   {240, 228, 66},
                                        {0, 114, 178},   {213, 94, 0},    {204, 121, 167}, {166, 86, 40},
                                        {153, 153, 255}, {102, 194, 165}, {255, 127, 127}, {178, 223, 138}};
  const auto& c = colors[static_cast<unsigned>(index) % 12];
  return {c[0], c[1], c[2]};
}

int patch_at(const CropMapping& crop, int img_size, int patch, double x, double y) {
  const int grid = img_size / patch;
  const double u = (std::floor(x) + 0.5 - crop.x0) * img_size / crop.width;
  const double v = (std::floor(y) + 0.5 - crop.y0) * img_size / crop.height;
  if (!(u >= 0 && u < img_size && v >= 0 && v < img_size)) return -1;
  return std::min(static_cast<int>(v / patch), grid - 1) * grid + std::min(static_cast<int>(u / patch), grid - 1);
}

int default_line_width(const CropMapping& crop, int img_size) {
  // Both patches at an edge draw their side of it, so a boundary is twice this wide.
  return std::max(1, static_cast<int>(std::lround(crop.width / img_size * 0.75)));
}

void map_pixels_to_patches(OverlayInputs& in, int width, int height, const CropMapping& crop, int img_size, int patch,
                           int line_width) {
  in.width = width;
  in.height = height;
  in.grid = img_size / patch;
  auto axis = [&](int n, double origin, double extent, std::vector<int32_t>& which, std::vector<int32_t>& edges) {
    which.assign(n, -1);
    edges.assign(n, 0);
    for (int i = 0; i < n; ++i) {
      const double u = (i + 0.5 - origin) * img_size / extent;  // pixel centre in model pixels
      if (u >= 0 && u < img_size) which[i] = std::min(static_cast<int>(u / patch), in.grid - 1);
    }
    for (int i = 0; i < n; ++i) {
      if (which[i] < 0) continue;
      const bool low = i - line_width < 0 || which[i - line_width] != which[i];
      const bool high = i + line_width >= n || which[i + line_width] != which[i];
      edges[i] = (low ? 1 : 0) | (high ? 2 : 0);
    }
  };
  axis(width, crop.x0, crop.width, in.column_patch, in.column_edges);
  axis(height, crop.y0, crop.height, in.row_patch, in.row_edges);
}

void set_partition(OverlayInputs& in, const PaneResult* result, int layer, FillMode mode, const RgbImage& model_view,
                   int patch) {
  const int G = in.grid, P = G * G;
  in.group.assign(P, 0);
  in.fill.assign(static_cast<size_t>(P) * 4, 0);
  const bool have = result && layer >= 0 && layer < static_cast<int>(result->trace.layers.size());
  if (!have) {
    for (int p = 0; p < P; ++p) in.group[p] = p;
    return;
  }
  const ImageTrace& tr = result->trace;
  const LayerTrace& lt = tr.layers[layer];
  const int prefix = tr.prefix_tokens;
  if (lt.mixes_all) return;  // every token mixes all patches (DCT): one group, no borders, no fill -- nothing to draw
  for (int p = 0; p < P; ++p) in.group[p] = lt.cluster_of_token[prefix + p];
  auto put = [&](int p, std::array<uint8_t, 3> c, uint8_t a) {
    for (int k = 0; k < 3; ++k) in.fill[p * 4 + k] = c[k];
    in.fill[p * 4 + 3] = a;
  };
  switch (mode) {
    case FillMode::GroupMean: {
      // Mean colour of each group over the model's pixels, every patch weighted by its pixel count.
      std::map<int, std::array<double, 4>> sum;
      for (int p = 0; p < P; ++p) {
        const int py = p / G, px = p % G;
        auto& s = sum[in.group[p]];
        for (int y = py * patch; y < (py + 1) * patch && y < model_view.height; ++y) {
          const uint8_t* row = model_view.row(y);
          for (int x = px * patch; x < (px + 1) * patch && x < model_view.width; ++x) {
            for (int k = 0; k < 3; ++k) s[k] += row[x * 3 + k];
            s[3] += 1;
          }
        }
      }
      for (int p = 0; p < P; ++p) {
        if (in.group[p] < 0) {
          put(p, ProtectedColors::pruned, 230);
          continue;
        }
        const auto& s = sum[in.group[p]];
        std::array<uint8_t, 3> c{};
        for (int k = 0; k < 3; ++k) c[k] = static_cast<uint8_t>(std::lround(s[3] > 0 ? s[k] / s[3] : 0));
        put(p, c, 255);
      }
      break;
    }
    case FillMode::Palette: {
      // A group keeps its colour across layers: it is named by its lowest patch, which never changes as it grows.
      std::map<int, int> lowest;
      std::map<int, int> members;
      for (int p = 0; p < P; ++p) {
        if (in.group[p] < 0) continue;
        lowest.emplace(in.group[p], p);
        ++members[in.group[p]];
      }
      for (int p = 0; p < P; ++p) {
        if (in.group[p] < 0)
          put(p, ProtectedColors::pruned, 230);
        else if (members[in.group[p]] > 1)
          put(p, palette_color(lowest[in.group[p]] * 7), 255);
      }
      break;
    }
    case FillMode::Energy: {
      if (lt.energy.empty()) break;
      float lo = std::numeric_limits<float>::infinity(), hi = -lo;
      for (float e : lt.energy)
        if (std::isfinite(e)) lo = std::min(lo, e), hi = std::max(hi, e);
      const std::vector<float> energy = patch_energies(*result, layer, G);
      for (int p = 0; p < P; ++p) {
        const float e = energy[p];
        if (!std::isfinite(e))
          put(p, ProtectedColors::pruned, 230);
        else
          put(p, energy_color(hi > lo ? (e - lo) / (hi - lo) : 0.5f), 255);
      }
      break;
    }
    case FillMode::Protected: {
      // Merged in this block: the output token took more than one of the block's input tokens.
      std::map<int, std::set<int>> inputs_of;
      for (int p = 0; p < P; ++p)
        if (in.group[p] >= 0) inputs_of[in.group[p]].insert(input_token(tr, layer, prefix + p));
      for (int p = 0; p < P; ++p) {
        const int g = in.group[p];
        if (g < 0)
          put(p, ProtectedColors::pruned, 230);
        else if (inputs_of[g].size() > 1)
          put(p, ProtectedColors::merged_now, 255);
        else if (g < static_cast<int>(lt.sizes.size()) && lt.sizes[g] > 1)
          put(p, ProtectedColors::merged_before, 255);
        else
          put(p, ProtectedColors::kept, 255);
      }
      break;
    }
  }
}

OverlayInputs make_overlay_inputs(const LoadedImage& image, const ModelSummary& model, const PaneResult* result,
                                  int layer, FillMode mode) {
  OverlayInputs in;
  const RgbImage& shown = image.shown();
  map_pixels_to_patches(in, shown.width, shown.height, image.shown_crop(), model.img_size, model.patch,
                        default_line_width(image.shown_crop(), model.img_size));
  set_partition(in, result, layer, mode, image.model_view, model.patch);
  return in;
}

RgbImage render_overlay_cpu(const RgbImage& original, const OverlayInputs& in, const OverlayStyle& style) {
  RgbImage out;
  out.width = in.width;
  out.height = in.height;
  out.pixels.resize(static_cast<size_t>(in.width) * in.height * 3);
  const int G = in.grid;
  auto group_at = [&](int r, int c) { return in.group[r * G + c]; };
  for (int y = 0; y < in.height; ++y) {
    const int ry = in.row_patch[y], ey = in.row_edges[y];
    const uint8_t* src = original.row(y);
    uint8_t* dst = out.pixels.data() + static_cast<size_t>(y) * in.width * 3;
    for (int x = 0; x < in.width; ++x) {
      const int cx = in.column_patch[x], ex = in.column_edges[x];
      int rgb[3] = {src[x * 3], src[x * 3 + 1], src[x * 3 + 2]};
      if (cx < 0 || ry < 0) {
        for (int& v : rgb) v = blend(v, 0, 153);
      } else {
        const int g = group_at(ry, cx);
        const uint8_t* f = &in.fill[(ry * G + cx) * 4];
        const int strength = (style.opacity * f[3] + 127) / 255;
        for (int k = 0; k < 3; ++k) rgb[k] = blend(rgb[k], f[k], strength);
        const bool lit = style.highlight != -2 && g == style.highlight;
        if (style.highlight != -2 && !lit)
          for (int& v : rgb) v = blend(v, 0, 110);
        if (style.boundaries || lit) {
          const bool edge = ((ex & 1) && cx > 0 && group_at(ry, cx - 1) != g) ||
                            ((ex & 2) && cx < G - 1 && group_at(ry, cx + 1) != g) ||
                            ((ey & 1) && ry > 0 && group_at(ry - 1, cx) != g) ||
                            ((ey & 2) && ry < G - 1 && group_at(ry + 1, cx) != g);
          if (edge)
            for (int k = 0; k < 3; ++k) rgb[k] = lit ? style.highlight_rgb[k] : style.boundary_rgb[k];
        }
      }
      for (int k = 0; k < 3; ++k) dst[x * 3 + k] = static_cast<uint8_t>(rgb[k]);
    }
  }
  return out;
}

}  // namespace ms::gui
