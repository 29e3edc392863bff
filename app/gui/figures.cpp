#include "figures.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace ms::gui {

namespace {

bool has_result(const AppState& s, int i) { return s.panes[i].result != nullptr; }

std::string label_of(const AppState& s, int i) {
  return "pane " + std::to_string(i + 1) + ": " + s.panes[i].result->spec;
}

// A dashed vertical line at the current block so each per-layer plot shows where the slider is.
void mark_layer(Figure& f, const AppState& s, double lo, double hi) {
  Series m;
  m.x = {static_cast<double>(s.layer), static_cast<double>(s.layer)};
  m.y = {lo, hi};
  m.color = "#999999";
  m.dashed = true;
  m.markers = false;
  f.lines.push_back(m);
}

Figure per_layer(const AppState& s, const std::string& title, const std::string& y_label,
                 std::vector<double> (*values)(const PaneResult&)) {
  Figure f;
  f.title = title;
  f.x_label = "block";
  f.y_label = y_label;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (size_t i = 0; i < s.panes.size(); ++i) {
    if (!has_result(s, static_cast<int>(i))) continue;
    const std::vector<double> v = values(*s.panes[i].result);
    Series line;
    line.label = label_of(s, static_cast<int>(i));
    line.color = pane_color(s, static_cast<int>(i));
    for (size_t l = 0; l < v.size(); ++l) {
      line.x.push_back(static_cast<double>(l));  // blocks from 0, as everywhere
      line.y.push_back(v[l]);
      if (std::isfinite(v[l])) lo = std::min(lo, v[l]), hi = std::max(hi, v[l]);
    }
    f.lines.push_back(line);
  }
  if (!f.lines.empty() && lo <= hi) mark_layer(f, s, lo, hi);
  return f;
}

std::vector<double> tokens_of(const PaneResult& r) { return {r.tokens_per_layer.begin(), r.tokens_per_layer.end()}; }
std::vector<double> gmacs_of(const PaneResult& r) { return r.gmacs_per_layer; }
std::vector<double> sd_of(const PaneResult& r) { return r.spectral_distance; }

std::string family(const std::string& spec) { return spec.substr(0, spec.find(':')); }

}  // namespace

std::string pane_color(const AppState& s, int pane) {
  const std::string mine = family(s.panes[pane].spec);
  for (int j = 0; j < pane; ++j)
    if (family(s.panes[j].spec) == mine) return method_palette()[pane % method_palette().size()];
  return color_for_method(s.panes[pane].spec);
}

Figure tokens_figure(const AppState& s) { return per_layer(s, "Tokens leaving each block", "tokens", tokens_of); }

Figure gmacs_figure(const AppState& s) { return per_layer(s, "GMACs per block (incl. matching)", "GMACs", gmacs_of); }

Figure spectral_distance_figure(const AppState& s) {
  Figure f = per_layer(s, "Spectral distance to the original token graph (block 0 keys, 1 - cos)", "SD", sd_of);
  f.y_min = 0;
  return f;
}

Figure eigenvalue_figure(const AppState& s) {
  Figure f;
  f.title = "Largest Laplacian eigenvalues after block " + std::to_string(s.layer) + ": original vs lifted";
  f.x_label = "eigenvalue index (ascending; all below the range are 1 or 0)";
  f.y_label = "eigenvalue";
  bool original_done = false;
  for (size_t i = 0; i < s.panes.size(); ++i) {
    if (!has_result(s, static_cast<int>(i))) continue;
    const PaneResult& r = *s.panes[i].result;
    if (!original_done && !r.eig_original.empty()) {
      Series o;
      o.label = "original graph";
      o.color = "#000000";
      o.markers = false;
      for (size_t k = 0; k < r.eig_original.size(); ++k)
        o.x.push_back(static_cast<double>(k)), o.y.push_back(r.eig_original[k]);
      f.lines.push_back(o);
      original_done = true;
    }
    if (s.layer >= static_cast<int>(r.eig_lifted.size()) || r.eig_lifted[s.layer].empty()) continue;  // pruned
    Series line;
    line.label = label_of(s, static_cast<int>(i));
    line.color = pane_color(s, static_cast<int>(i));
    line.markers = false;
    line.dashed = true;
    const auto& e = r.eig_lifted[s.layer];
    for (size_t k = 0; k < e.size(); ++k) line.x.push_back(static_cast<double>(k)), line.y.push_back(e[k]);
    f.lines.push_back(line);
  }
  // The normalised Laplacian of a rank-(d+1) 1 - cos graph has eigenvalue 1 everywhere but its top d or so (and
  // the 0 at the bottom): show the top end, where original and lifted spectra differ.
  size_t n = 0;
  for (const Series& l : f.lines) n = std::max(n, l.x.size());
  if (n > 40) {
    f.x_min = static_cast<double>(n - 40);
    f.x_max = static_cast<double>(n - 1);
    double lo = 1, hi = 1;
    for (const Series& l : f.lines)
      for (size_t k = n - 40; k < l.y.size(); ++k) lo = std::min(lo, l.y[k]), hi = std::max(hi, l.y[k]);
    f.y_min = lo - 0.02 * (hi - lo + 1e-3);
    f.y_max = hi + 0.02 * (hi - lo + 1e-3);
  }
  return f;
}

std::vector<float> energy_map(const AppState& s, int pane) {
  if (pane < 0 || pane >= static_cast<int>(s.panes.size()) || !s.panes[pane].result)
    return std::vector<float>(static_cast<size_t>(s.model.grid) * s.model.grid, NAN);
  return patch_energies(*s.panes[pane].result, s.layer, s.model.grid);
}

Figure energy_histogram_figure(const AppState& s) {
  Figure f;
  f.title = "PiToMe energy of block " + std::to_string(s.layer) + "'s input tokens";
  f.x_label = "energy";
  f.y_label = "tokens";
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Pane& p : s.panes) {
    if (!p.result || s.layer >= static_cast<int>(p.result->trace.layers.size())) continue;
    for (float e : p.result->trace.layers[s.layer].energy)
      if (std::isfinite(e)) lo = std::min(lo, static_cast<double>(e)), hi = std::max(hi, static_cast<double>(e));
  }
  if (!(lo <= hi)) return f;
  if (hi - lo < 1e-6) lo -= 0.5, hi += 0.5;
  const int bins = 30;
  for (size_t i = 0; i < s.panes.size(); ++i) {
    if (!has_result(s, static_cast<int>(i)) || s.layer >= static_cast<int>(s.panes[i].result->trace.layers.size()))
      continue;
    Histogram h;
    h.label = label_of(s, static_cast<int>(i));
    h.color = pane_color(s, static_cast<int>(i));
    for (int b = 0; b <= bins; ++b) h.edges.push_back(lo + (hi - lo) * b / bins);
    h.counts.assign(bins, 0);
    for (float e : s.panes[i].result->trace.layers[s.layer].energy) {
      if (!std::isfinite(e)) continue;
      h.counts[std::clamp(static_cast<int>((e - lo) / (hi - lo) * bins), 0, bins - 1)] += 1;
    }
    f.histograms.push_back(h);
  }
  return f;
}

std::vector<NamedFigure> all_figures(const AppState& s) {
  return {{"energy_histogram", energy_histogram_figure(s)},
          {"spectral_distance", spectral_distance_figure(s)},
          {"eigenvalues", eigenvalue_figure(s)},
          {"tokens_per_layer", tokens_figure(s)},
          {"gmacs_per_layer", gmacs_figure(s)}};
}

}  // namespace ms::gui
