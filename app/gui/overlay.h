// The merged-token overlay, computed on the CPU up to the per-pixel step: which patch every pixel of the
// original image falls in, each patch's group and fill colour. The GL renderer (overlay_gl.h) uploads these
// as textures and runs shaders/overlay.frag; render_overlay_cpu is the same per-pixel function in C++, the
// reference the GL output is tested against pixel for pixel. No GL and no LibTorch here.
#pragma once

#include "app_state.h"
#include "image.h"

#include <array>
#include <cstdint>
#include <vector>

namespace ms::gui {

struct OverlayStyle {
  int opacity = 140;  // 0..255: how strongly the fill covers the image
  bool boundaries = true;
  int highlight = -2;  // group to light up (others dim), -2: none
  std::array<int, 3> boundary_rgb{255, 255, 255};
  std::array<int, 3> highlight_rgb{255, 214, 0};
};

// Everything the shader reads besides the image.
struct OverlayInputs {
  int width = 0, height = 0;  // size of the image drawn on (LoadedImage::shown()) = output size
  int grid = 0;
  // Per pixel column (row): the patch column (row) it falls in, -1 outside the model's crop, and edge bits:
  // 1 = within the line width of the patch's low edge, 2 = of its high edge.
  std::vector<int32_t> column_patch, column_edges, row_patch, row_edges;
  std::vector<int32_t> group;  // grid*grid, row-major: output token holding the patch, -1: pruned
  std::vector<uint8_t> fill;   // grid*grid*4 RGBA
};

// Pixel -> patch lookups for an image and crop; line width in original pixels.
void map_pixels_to_patches(OverlayInputs& in, int width, int height, const CropMapping& crop, int img_size, int patch,
                           int line_width);

// The patch (row-major) under original-image pixel coordinates (x, y), -1 outside the model's crop; the same
// mapping as map_pixels_to_patches, for hovering.
int patch_at(const CropMapping& crop, int img_size, int patch, double x, double y);

// The line width the app uses for an image: about one model pixel, at least one image pixel.
int default_line_width(const CropMapping& crop, int img_size);

// Fills group and fill colours for `result`'s partition after block `layer`. `model_view` supplies the colours of
// the group-mean mode. Without a result every patch is its own group with no fill.
void set_partition(OverlayInputs& in, const PaneResult* result, int layer, FillMode mode, const RgbImage& model_view,
                   int patch);

// All of it for one pane, in the pixels of image.shown() (the original, or its downscaled display copy).
OverlayInputs make_overlay_inputs(const LoadedImage& image, const ModelSummary& model, const PaneResult* result,
                                  int layer, FillMode mode);

// The overlay in C++: what shaders/overlay.frag draws, byte for byte.
RgbImage render_overlay_cpu(const RgbImage& original, const OverlayInputs& in, const OverlayStyle& style);

// Colours the overlay uses, for legends.
std::array<uint8_t, 3> energy_color(float t);  // t in [0, 1]: low -> high energy (the heatmap plot's map)
struct ProtectedColors {
  static constexpr std::array<uint8_t, 3> kept{0, 158, 115};            // never merged (protected so far)
  static constexpr std::array<uint8_t, 3> merged_before{86, 180, 233};  // group formed in an earlier block
  static constexpr std::array<uint8_t, 3> merged_now{230, 159, 0};      // merged in this block
  static constexpr std::array<uint8_t, 3> pruned{40, 40, 40};
};
std::array<uint8_t, 3> palette_color(int index);

}  // namespace ms::gui
