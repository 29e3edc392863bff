#include "overlay_gl.h"

#include "error.h"
#include "shaders_embedded.h"

#include <epoxy/gl.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace ms::gui {

namespace {

unsigned compile(GLenum kind, const char* source, const char* name) {
  const GLuint s = glCreateShader(kind);
  glShaderSource(s, 1, &source, nullptr);
  glCompileShader(s);
  GLint ok = 0;
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    char log[2048] = {};
    glGetShaderInfoLog(s, sizeof log, nullptr, log);
    glDeleteShader(s);
    std::string text = log;
    for (char& c : text)
      if (c == '\n') c = ' ';
    fail(name, "shader does not compile: " + text);
  }
  return s;
}

unsigned make_texture() {
  GLuint t = 0;
  glGenTextures(1, &t);
  glBindTexture(GL_TEXTURE_2D, t);
  // Integer textures can only be sampled with NEAREST.
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  return t;
}

// Clears errors other GL users left behind, so that check_gl() below reports only the calls it follows.
void drain_gl_errors() {
  for (int i = 0; i < 16 && glGetError() != GL_NO_ERROR; ++i) {
  }
}

// Throws when a GL call since the last check failed (GL_OUT_OF_MEMORY above all: a texture GL could not
// allocate otherwise only shows later as an incomplete framebuffer or a black pane).
void check_gl(const char* what) {
  GLenum first = glGetError();
  if (first == GL_NO_ERROR) return;
  while (glGetError() != GL_NO_ERROR) {
  }
  char code[16];
  std::snprintf(code, sizeof code, "0x%04X", first);
  fail("overlay",
       std::string(what) + " failed (GL error " + code + (first == GL_OUT_OF_MEMORY ? ", out of memory)" : ")"));
}

void upload_rg32i(unsigned tex, const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<int32_t> data(a.size() * 2);
  for (size_t i = 0; i < a.size(); ++i) data[2 * i] = a[i], data[2 * i + 1] = b[i];
  glBindTexture(GL_TEXTURE_2D, tex);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RG32I, static_cast<GLsizei>(a.size()), 1, 0, GL_RG_INTEGER, GL_INT, data.data());
}

}  // namespace

OverlayRenderer::OverlayRenderer() {
  const GLuint vs = compile(GL_VERTEX_SHADER, kOverlayVertexShader, "shaders/overlay.vert");
  const GLuint fs = compile(GL_FRAGMENT_SHADER, kOverlayFragmentShader, "shaders/overlay.frag");
  program_ = glCreateProgram();
  glAttachShader(program_, vs);
  glAttachShader(program_, fs);
  glLinkProgram(program_);
  glDeleteShader(vs);
  glDeleteShader(fs);
  GLint ok = 0;
  glGetProgramiv(program_, GL_LINK_STATUS, &ok);
  if (!ok) {
    char log[2048] = {};
    glGetProgramInfoLog(program_, sizeof log, nullptr, log);
    fail("shaders/overlay", std::string("program does not link: ") + log);
  }
  glGenVertexArrays(1, &vao_);
  // Images with a longer side are drawn on a downscaled copy (LoadedImage::display), so nothing asks GL for a
  // texture or framebuffer it cannot make: before this, a 16385 x 8 image aborted the app on Mesa (whose
  // limit is 16384) with an incomplete framebuffer.
  GLint texture_limit = 0, renderbuffer_limit = 0, viewport_limit[2] = {0, 0};
  glGetIntegerv(GL_MAX_TEXTURE_SIZE, &texture_limit);
  glGetIntegerv(GL_MAX_RENDERBUFFER_SIZE, &renderbuffer_limit);
  glGetIntegerv(GL_MAX_VIEWPORT_DIMS, viewport_limit);
  max_side_ = kMaxOverlaySide;
  for (GLint limit : {texture_limit, renderbuffer_limit, viewport_limit[0], viewport_limit[1]})
    if (limit > 0) max_side_ = std::min<int>(max_side_, limit);
  image_ = make_texture();
  columns_ = make_texture();
  rows_ = make_texture();
  groups_ = make_texture();
  fill_ = make_texture();
}

OverlayRenderer::~OverlayRenderer() {
  const GLuint textures[] = {image_, columns_, rows_, groups_, fill_};
  glDeleteTextures(5, textures);
  glDeleteVertexArrays(1, &vao_);
  glDeleteProgram(program_);
}

void OverlayRenderer::set_image(const RgbImage& image) {
  image_width_ = image_height_ = 0;  // until the upload succeeds, render() refuses
  if (image.width <= 0 || image.height <= 0 || image.width > max_side_ || image.height > max_side_)
    fail("overlay", "a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                        " image is over this OpenGL's limit of " + std::to_string(max_side_) + " pixels a side");
  std::vector<uint8_t> rgba(static_cast<size_t>(image.width) * image.height * 4, 255);
  for (size_t i = 0, n = static_cast<size_t>(image.width) * image.height; i < n; ++i)
    for (int k = 0; k < 3; ++k) rgba[i * 4 + k] = image.pixels[i * 3 + k];
  drain_gl_errors();
  glBindTexture(GL_TEXTURE_2D, image_);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8UI, image.width, image.height, 0, GL_RGBA_INTEGER, GL_UNSIGNED_BYTE,
               rgba.data());
  check_gl("uploading the image");
  image_width_ = image.width;
  image_height_ = image.height;
}

void OverlayRenderer::render(const OverlayInputs& in, const OverlayStyle& style, OverlayTarget& target) {
  if (in.width != image_width_ || in.height != image_height_) fail("overlay", "inputs do not match the image size");
  if (target.width != in.width || target.height != in.height || !target.framebuffer) {
    release(target);
    drain_gl_errors();
    glGenTextures(1, &target.texture);
    glBindTexture(GL_TEXTURE_2D, target.texture);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, in.width, in.height, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    if (glGetError() != GL_NO_ERROR) {
      release(target);
      fail("overlay",
           "cannot allocate a " + std::to_string(in.width) + "x" + std::to_string(in.height) + " pane texture");
    }
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glGenFramebuffers(1, &target.framebuffer);
    glBindFramebuffer(GL_FRAMEBUFFER, target.framebuffer);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, target.texture, 0);
    if (glCheckFramebufferStatus(GL_FRAMEBUFFER) != GL_FRAMEBUFFER_COMPLETE) {
      glBindFramebuffer(GL_FRAMEBUFFER, 0);
      release(target);
      fail("overlay", "off-screen framebuffer of " + std::to_string(in.width) + "x" + std::to_string(in.height) +
                          " pixels is incomplete");
    }
    target.width = in.width;
    target.height = in.height;
  }
  upload_rg32i(columns_, in.column_patch, in.column_edges);
  upload_rg32i(rows_, in.row_patch, in.row_edges);
  glBindTexture(GL_TEXTURE_2D, groups_);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_R32I, in.grid, in.grid, 0, GL_RED_INTEGER, GL_INT, in.group.data());
  glBindTexture(GL_TEXTURE_2D, fill_);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8UI, in.grid, in.grid, 0, GL_RGBA_INTEGER, GL_UNSIGNED_BYTE, in.fill.data());

  GLint viewport[4];
  glGetIntegerv(GL_VIEWPORT, viewport);
  glBindFramebuffer(GL_FRAMEBUFFER, target.framebuffer);
  glViewport(0, 0, in.width, in.height);
  glDisable(GL_BLEND);
  glDisable(GL_SCISSOR_TEST);
  glUseProgram(program_);
  const unsigned textures[] = {image_, columns_, rows_, groups_, fill_};
  const char* names[] = {"u_image", "u_columns", "u_rows", "u_groups", "u_fill"};
  for (int i = 0; i < 5; ++i) {
    glActiveTexture(GL_TEXTURE0 + i);
    glBindTexture(GL_TEXTURE_2D, textures[i]);
    glUniform1i(glGetUniformLocation(program_, names[i]), i);
  }
  glUniform1i(glGetUniformLocation(program_, "u_grid"), in.grid);
  glUniform1i(glGetUniformLocation(program_, "u_opacity"), style.opacity);
  glUniform1i(glGetUniformLocation(program_, "u_boundaries"), style.boundaries ? 1 : 0);
  glUniform1i(glGetUniformLocation(program_, "u_highlight"), style.highlight);
  glUniform3i(glGetUniformLocation(program_, "u_boundary_rgb"), style.boundary_rgb[0], style.boundary_rgb[1],
              style.boundary_rgb[2]);
  glUniform3i(glGetUniformLocation(program_, "u_highlight_rgb"), style.highlight_rgb[0], style.highlight_rgb[1],
              style.highlight_rgb[2]);
  glBindVertexArray(vao_);
  glDrawArrays(GL_TRIANGLES, 0, 3);
  glBindVertexArray(0);
  glUseProgram(0);
  glActiveTexture(GL_TEXTURE0);
  glBindFramebuffer(GL_FRAMEBUFFER, 0);
  glViewport(viewport[0], viewport[1], viewport[2], viewport[3]);
}

RgbImage OverlayRenderer::read(const OverlayTarget& target) const {
  RgbImage out;
  out.width = target.width;
  out.height = target.height;
  out.pixels.resize(static_cast<size_t>(out.width) * out.height * 3);
  glBindFramebuffer(GL_FRAMEBUFFER, target.framebuffer);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadPixels(0, 0, out.width, out.height, GL_RGB, GL_UNSIGNED_BYTE, out.pixels.data());
  glBindFramebuffer(GL_FRAMEBUFFER, 0);
  return out;
}

void OverlayRenderer::release(OverlayTarget& target) {
  if (target.framebuffer) glDeleteFramebuffers(1, &target.framebuffer);
  if (target.texture) glDeleteTextures(1, &target.texture);
  target = {};
}

}  // namespace ms::gui
