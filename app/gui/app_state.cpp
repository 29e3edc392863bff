#include "app_state.h"

#include <algorithm>
#include <cmath>

namespace ms::gui {

const char* fill_mode_name(FillMode mode) {
  switch (mode) {
    case FillMode::GroupMean:
      return "group mean colour";
    case FillMode::Palette:
      return "palette (merged groups)";
    case FillMode::Energy:
      return "energy heatmap";
    case FillMode::Protected:
      return "protected vs merged";
  }
  return "?";
}

void AppState::set_layer(int l) {
  const int clamped = std::clamp(l, 0, std::max(0, model.depth - 1));
  if (clamped != layer) overlay_dirty = true;
  layer = clamped;
}

const std::vector<std::pair<std::string, std::string>>& method_presets() {
  static const std::vector<std::pair<std::string, std::string>> presets = {
      {"none", "no reduction"},
      {"tome:r=8", "ToMe, r = 8"},
      {"tome:r=13", "ToMe, r = 13"},
      {"tome:r=16", "ToMe, r = 16"},
      {"tome:r=13,prop_attn=0", "ToMe r = 13 without proportional attention"},
      {"tome:r=16,inflect=-1", "ToMe r = 16, decreasing schedule"},
      {"pitome:ratio=0.93", "PiToMe (paper), keep 93% per block"},
      {"pitome:ratio=0.9", "PiToMe (paper), keep 90% per block"},
      {"pitome-code:ratio=0.9", "PiToMe (released code), keep 90%"},
      {"random:r=13", "random pairs, r = 13 (floor)"},
      // The methods PiToMe is compared against, at ToMe r = 13's GMACs on the 224/16 models (--match-macs)
      {"tofu:ratio=0.9086", "ToFu (released), prune early, merge late"},
      {"mctf:r=15", "MCTF (released), one-step-ahead attention"},
      {"dct:ratio=0.8888", "DCT low-pass (mixes all tokens: no groups)"},
      {"diffrate:ratio=0.9106", "DiffRate (PiToMe's init), CLS-attention order"},
      {"evit:keep=0.6224", "EViT, top-k by CLS attention + fused token"},
      {"evit", "EViT defaults: keep 0.7 at blocks 3, 6, 9"},
  };
  return presets;
}

int group_of_patch(const PaneResult& result, int layer, int patch) {
  const auto& layers = result.trace.layers;
  if (layer < 0 || layer >= static_cast<int>(layers.size())) return -1;
  const auto& c = layers[layer].cluster_of_token;
  const size_t t = static_cast<size_t>(result.trace.prefix_tokens + patch);
  return t < c.size() ? c[t] : -1;
}

int input_token(const ImageTrace& trace, int layer, int t) {
  return layer == 0 ? t : trace.layers[layer - 1].cluster_of_token[t];
}

std::vector<float> patch_energies(const PaneResult& result, int layer, int grid) {
  std::vector<float> out(static_cast<size_t>(grid) * grid, NAN);
  const ImageTrace& tr = result.trace;
  if (layer < 0 || layer >= static_cast<int>(tr.layers.size())) return out;
  const std::vector<float>& energy = tr.layers[layer].energy;
  for (int p = 0; p < grid * grid; ++p) {
    const int tok = input_token(tr, layer, tr.prefix_tokens + p);
    if (tok >= 0 && tok < static_cast<int>(energy.size())) out[p] = energy[tok];
  }
  return out;
}

GroupInfo group_info(const PaneResult& result, int layer, int patch, int pinned_patch) {
  GroupInfo info;
  const auto& layers = result.trace.layers;
  if (layer < 0 || layer >= static_cast<int>(layers.size())) return info;
  const int prefix = result.trace.prefix_tokens;
  const int t = prefix + patch;
  info.group = group_of_patch(result, layer, patch);
  if (info.group < 0) return info;
  const LayerTrace& lt = layers[layer];
  info.size = info.group < static_cast<int>(lt.sizes.size()) ? static_cast<int>(std::lround(lt.sizes[info.group])) : 0;
  // Groups only grow, so the group had these members from the first block after which its size was this size.
  if (info.size > 1) {
    info.formed_layer = layer;
    for (int l = layer - 1; l >= 0; --l) {
      const int g = layers[l].cluster_of_token[t];
      if (g < 0 || std::lround(layers[l].sizes[g]) != info.size) break;
      info.formed_layer = l;
    }
  }
  const int in_token = input_token(result.trace, layer, t);
  if (in_token >= 0 && in_token < static_cast<int>(lt.energy.size()) && std::isfinite(lt.energy[in_token])) {
    info.energy = lt.energy[in_token];
    info.has_energy = true;
  }
  if (pinned_patch >= 0 && lt.key_dim > 0) {
    const int other = input_token(result.trace, layer, prefix + pinned_patch);
    const int n = static_cast<int>(lt.keys.size()) / lt.key_dim;
    if (in_token >= 0 && other >= 0 && in_token < n && other < n) {
      const float* a = &lt.keys[static_cast<size_t>(in_token) * lt.key_dim];
      const float* b = &lt.keys[static_cast<size_t>(other) * lt.key_dim];
      double ab = 0, aa = 0, bb = 0;
      for (int k = 0; k < lt.key_dim; ++k) ab += a[k] * b[k], aa += a[k] * a[k], bb += b[k] * b[k];
      info.similarity = static_cast<float>(ab / std::sqrt(std::max(aa * bb, 1e-30)));
      info.has_similarity = true;
    }
  }
  return info;
}

}  // namespace ms::gui
