// GL side of the overlay: uploads OverlayInputs as integer textures and runs shaders/overlay.frag into an
// off-screen target at the image's full resolution. The same target is what a pane shows and what "export
// PNG" reads back. Main (render) thread only.
#pragma once

#include "overlay.h"

#include <cstdint>

namespace ms::gui {

struct OverlayTarget {
  unsigned framebuffer = 0, texture = 0;
  int width = 0, height = 0;
};

class OverlayRenderer {
 public:
  // Compiles the embedded shaders; throws ms::Error with the compiler's log when that fails.
  OverlayRenderer();
  ~OverlayRenderer();
  OverlayRenderer(const OverlayRenderer&) = delete;
  OverlayRenderer& operator=(const OverlayRenderer&) = delete;

  // The longest side an image (and so a pane target) may have here: kMaxOverlaySide within this GL's
  // GL_MAX_TEXTURE_SIZE, GL_MAX_RENDERBUFFER_SIZE and GL_MAX_VIEWPORT_DIMS.
  int max_side() const { return max_side_; }
  // The image every pane draws on (uploaded once per image); throws ms::Error when it is larger than
  // max_side() or GL cannot hold it.
  void set_image(const RgbImage& image);
  // Draws the overlay into `target`, (re)allocating it at the image size (the old texture is deleted: a
  // caller whose UI has already queued it for this frame retires the target first, see App); throws
  // ms::Error when GL cannot.
  void render(const OverlayInputs& in, const OverlayStyle& style, OverlayTarget& target);
  // The target's pixels, row 0 = top.
  RgbImage read(const OverlayTarget& target) const;
  static void release(OverlayTarget& target);

 private:
  unsigned program_ = 0, vao_ = 0;
  unsigned image_ = 0, columns_ = 0, rows_ = 0, groups_ = 0, fill_ = 0;
  int image_width_ = 0, image_height_ = 0;
  int max_side_ = 0;
};

}  // namespace ms::gui
