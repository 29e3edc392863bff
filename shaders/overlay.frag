#version 330 core
// Merged-token overlay on the original image, one output pixel per image pixel. All arithmetic is on
// integers so that the CPU reference (app/gui/overlay.cpp, render_overlay_cpu) gives the same bytes: the
// tests compare the two pixel for pixel. Row 0 of the target is row 0 (top) of the image.

uniform usampler2D u_image;    // RGBA8UI, the original image
uniform isampler2D u_columns;  // RG32I, width x 1: patch column of each pixel column (-1: outside the crop), edge bits
uniform isampler2D u_rows;     // RG32I, height x 1: the same for pixel rows
uniform isampler2D u_groups;   // R32I, grid x grid: group (output token) of each patch, -1: pruned
uniform usampler2D u_fill;     // RGBA8UI, grid x grid: fill colour of each patch, alpha = its strength
uniform int u_grid;
uniform int u_opacity;         // 0..255
uniform int u_boundaries;      // 0 or 1
uniform int u_highlight;       // group to light up, -2: none
uniform ivec3 u_boundary_rgb;
uniform ivec3 u_highlight_rgb;

out vec4 frag_color;

int group_at(int row, int col) { return texelFetch(u_groups, ivec2(col, row), 0).r; }

// (a * (255 - t) + b * t + 127) / 255 per channel: the same rounding as overlay.cpp's blend().
ivec3 blend(ivec3 a, ivec3 b, int t) { return (a * (255 - t) + b * t + 127) / 255; }

void main() {
  ivec2 p = ivec2(gl_FragCoord.xy);
  ivec3 img = ivec3(texelFetch(u_image, p, 0).rgb);
  ivec2 col = texelFetch(u_columns, ivec2(p.x, 0), 0).rg;
  ivec2 row = texelFetch(u_rows, ivec2(p.y, 0), 0).rg;
  ivec3 result;
  if (col.x < 0 || row.x < 0) {
    result = blend(img, ivec3(0), 153);  // outside what the model sees: dimmed
  } else {
    int g = group_at(row.x, col.x);
    uvec4 fill = texelFetch(u_fill, ivec2(col.x, row.x), 0);
    int strength = (u_opacity * int(fill.a) + 127) / 255;
    result = blend(img, ivec3(fill.rgb), strength);
    bool lit = u_highlight != -2 && g == u_highlight;
    if (u_highlight != -2 && !lit) result = blend(result, ivec3(0), 110);
    if (u_boundaries != 0 || lit) {
      bool edge = ((col.y & 1) != 0 && col.x > 0 && group_at(row.x, col.x - 1) != g) ||
                  ((col.y & 2) != 0 && col.x < u_grid - 1 && group_at(row.x, col.x + 1) != g) ||
                  ((row.y & 1) != 0 && row.x > 0 && group_at(row.x - 1, col.x) != g) ||
                  ((row.y & 2) != 0 && row.x < u_grid - 1 && group_at(row.x + 1, col.x) != g);
      if (edge) result = lit ? u_highlight_rgb : u_boundary_rgb;
    }
  }
  frag_color = vec4(vec3(result) / 255.0, 1.0);
}
