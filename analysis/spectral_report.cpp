#include "spectral_report.h"

#include "error.h"
#include "plot.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

namespace ms {
namespace {

const char* kRandomBaseline = "random: partition of the same sizes";
const char* kKmeansBaseline = "k-means: same number of groups";

double h_edge(int b) {
  return EnergyHistogram::kLo + b * (EnergyHistogram::kHi - EnergyHistogram::kLo) / EnergyHistogram::kBins;
}

bool is_baseline(const std::string& name) { return name == kRandomBaseline || name == kKmeansBaseline; }

// Rows [prefix, tokens) of a trace layer's keys.
const float* patch_keys(const LayerTrace& lt, int prefix) {
  return lt.keys.data() + static_cast<size_t>(prefix) * lt.key_dim;
}

double sd_or_nan(const TokenGraph& g, const std::optional<Partition>& p, Eigen::VectorXd* lifted = nullptr) {
  return p ? g.sd(*p, lifted) : std::nan("");
}

// Energies of block l's input tokens, split by whether the block merged them (pruned ones are neither).
void add_energies(MethodSpectra& r, const ImageTrace& tr, int l) {
  const LayerTrace& lt = tr.layers[l];
  const int P = tr.prefix_tokens;
  if (static_cast<int>(lt.energy.size()) != lt.tokens_in)
    fail("spectral report", "traces need energies (RunOptions::trace_energy, released_energy)");
  const std::vector<int> dest = layer_partition(tr, l);
  std::map<int, int> arrivals;
  for (int d : dest) ++arrivals[d];
  double sum_m = 0, sum_k = 0;
  int n_m = 0, n_k = 0;
  for (size_t j = 0; j < dest.size(); ++j) {
    if (dest[j] < 0) continue;
    const double e = lt.energy[P + j];
    const bool merged = arrivals[dest[j]] > 1;
    r.energy[l].add(e, merged);
    (merged ? sum_m : sum_k) += e;
    (merged ? n_m : n_k) += 1;
  }
  if (n_m) r.mean_energy_merged[l].add(sum_m / n_m);
  if (n_k) r.mean_energy_kept[l].add(sum_k / n_k);
}

}  // namespace

double RunningStat::std() const {
  if (n < 2) return n ? 0 : std::nan("");
  const double m = mean();
  return std::sqrt(std::max(0.0, sum_sq / n - m * m));
}

void EnergyHistogram::add(double energy, bool was_merged) {
  if (!std::isfinite(energy)) return;
  int bin = static_cast<int>((energy - kLo) / (kHi - kLo) * kBins);
  bin = std::clamp(bin, 0, kBins - 1);
  (was_merged ? merged : kept)[bin] += 1;
}

SpectralReport::SpectralReport(std::vector<std::string> methods, int depth, SpectralOptions options)
    : methods_(std::move(methods)),
      depth_(depth),
      curve_layer_(options.curve_layer < 0 ? depth / 2 : options.curve_layer),
      options_(options) {
  if (curve_layer_ >= depth)
    fail("--layer", std::to_string(curve_layer_) + " is past the last block (" + std::to_string(depth - 1) + ")");
  for (size_t i = 0; i < methods_.size(); ++i)
    for (size_t j = 0; j < i; ++j)  // one row per method: two would share (and race on) one row's statistics
      if (methods_[i] == methods_[j]) fail("spectral report", "method '" + methods_[i] + "' given twice");
  for (const auto& m : methods_) row(m);
  if (options_.baselines) {
    row(kRandomBaseline);
    row(kKmeansBaseline);
  }
}

MethodSpectra& SpectralReport::row(const std::string& name) {
  for (auto& r : rows_)
    if (r.method == name) return r;
  MethodSpectra r;
  r.method = name;
  r.sd_theorem.resize(depth_);
  r.sd_layer.resize(depth_);
  r.tokens.resize(depth_);
  r.energy.resize(depth_);
  r.mean_energy_merged.resize(depth_);
  r.mean_energy_kept.resize(depth_);
  rows_.push_back(std::move(r));
  return rows_.back();
}

void SpectralReport::check_lemma1(const TokenGraph& g0, const Partition& cumulative, const Eigen::VectorXd& lifted) {
  // Lemma 1 on this real graph: the explicit (dense) lift vs the coarse spectrum plus ones.
  const int N = g0.nodes();
  const Eigen::MatrixXd W0 = g0.dense();
  const Eigen::MatrixXd Wsum = coarsen_sum(W0, cumulative);
  const Eigen::VectorXd explicit_lift = eigenvalues(normalized_laplacian(lift(Wsum, cumulative)));
  lemma_sum_ = std::max(lemma_sum_, (explicit_lift - lifted).cwiseAbs().maxCoeff());
  const Eigen::VectorXd mean_coarse = eigenvalues(normalized_laplacian(coarsen_mean(W0, cumulative)));
  lemma_mean_ =
      std::max(lemma_mean_, (explicit_lift - lifted_spectrum_from_coarse(mean_coarse, N)).cwiseAbs().maxCoeff());
}

void SpectralReport::add_theorem(size_t m, int l, const ImageTrace& tr, const TokenGraph& g0, bool reference) {
  MethodSpectra& r = row(methods_[m]);
  const std::optional<Partition> cumulative = sd_partition(tr, SdView::Theorem, l);
  Eigen::VectorXd lifted;
  r.sd_theorem[l].add(sd_or_nan(g0, cumulative, &lifted));
  if (l == curve_layer_ && !g0.spectrum().partial && cumulative) {
    const int N = g0.nodes();
    if (r.eig_original.empty()) r.eig_original.resize(N), r.eig_lifted.resize(N);
    for (int i = 0; i < N; ++i) r.eig_original[i].add(g0.spectrum().low(i)), r.eig_lifted[i].add(lifted(i));
    if (reference && cumulative->groups < N && N <= options_.dense_limit) check_lemma1(g0, *cumulative, lifted);
  }
  if (reference && options_.baselines && cumulative) {
    const unsigned seed = baseline_seed(l);
    const LayerTrace& first = tr.layers[0];
    row(kRandomBaseline).sd_theorem[l].add(g0.sd(random_partition_like(*cumulative, seed)));
    row(kKmeansBaseline)
        .sd_theorem[l]
        .add(g0.sd(kmeans_partition(patch_keys(first, tr.prefix_tokens), g0.nodes(), first.key_dim, cumulative->groups,
                                    seed)));
  }
}

void SpectralReport::add_layer(size_t m, int l, const ImageTrace& tr, bool reference) {
  MethodSpectra& r = row(methods_[m]);
  const TokenGraph g = sd_graph(tr, SdView::Layer, l, options_);
  const std::optional<Partition> own = sd_partition(tr, SdView::Layer, l);
  r.sd_layer[l].add(sd_or_nan(g, own));
  if (reference && options_.baselines && own) {
    const unsigned seed = baseline_seed(l);
    const LayerTrace& lt = tr.layers[l];
    row(kRandomBaseline).sd_layer[l].add(g.sd(random_partition_like(*own, seed)));
    row(kKmeansBaseline)
        .sd_layer[l]
        .add(g.sd(kmeans_partition(patch_keys(lt, tr.prefix_tokens), g.nodes(), lt.key_dim, own->groups, seed)));
  }
}

unsigned SpectralReport::baseline_seed(int l) const {
  return options_.seed * 7919u + static_cast<unsigned>(images_ * 131 + l);
}

void SpectralReport::add_image(const std::vector<ImageTrace>& traces, int reference) {
  if (traces.size() != methods_.size()) fail("spectral report", "one trace per method expected");
  const ImageTrace& ref = traces.at(reference);
  if (ref.layers.at(0).keys.empty()) fail("spectral report", "traces need keys (RunOptions::trace_keys)");
  const int P = ref.prefix_tokens;

  // Theorem view: one graph per image (block 0 sees every method's tokens unreduced).
  const TokenGraph g0 = sd_graph(ref, SdView::Theorem, 0, options_);
  if (options_.graph.kernel != GraphKernel::OneMinusCos)
    for (const ImageTrace& tr : traces)
      for (const LayerTrace& lt : tr.layers) partial_used_ = partial_used_ || lt.tokens_in - P > options_.dense_limit;

  // Every (method, block) pair writes only its own statistics (rows exist since the constructor; the baselines
  // are written by the reference method's pairs alone), so the pairs run in parallel; the eigensolvers inside
  // are single-threaded.
  const int64_t M = static_cast<int64_t>(traces.size());
  for (int64_t m = 0; m < M; ++m)
    for (const LayerTrace& lt : traces[m].layers) row(methods_[m]).mixes_all |= lt.mixes_all;
  at::parallel_for(0, M * depth_, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const size_t m = static_cast<size_t>(item / depth_);
      const int l = static_cast<int>(item % depth_);
      const bool is_reference = m == static_cast<size_t>(reference);
      MethodSpectra& r = row(methods_[m]);
      r.tokens[l].add(traces[m].layers[l].tokens);
      if (is_reference && options_.baselines) {  // the baselines copy the reference's token counts
        row(kRandomBaseline).tokens[l].add(traces[m].layers[l].tokens);
        row(kKmeansBaseline).tokens[l].add(traces[m].layers[l].tokens);
      }
      add_theorem(m, l, traces[m], g0, is_reference);
      add_layer(m, l, traces[m], is_reference);
      add_energies(r, traces[m], l);
    }
  });
  ++images_;
}

namespace {

std::ofstream open_out(const std::string& path) {
  std::ofstream f(path);
  if (!f) fail(path, "cannot open for writing");
  return f;
}

std::vector<double> means(const std::vector<RunningStat>& v) {
  std::vector<double> out;
  for (const auto& s : v) out.push_back(s.mean());
  return out;
}

std::vector<double> stds(const std::vector<RunningStat>& v) {
  std::vector<double> out;
  for (const auto& s : v) out.push_back(s.std());
  return out;
}

void write_sd_csv(const SpectralReport& rep, const std::string& path) {
  auto sd = open_out(path);
  sd << "method,view,layer,tokens,sd_mean,sd_std,images\n";
  for (const auto& r : rep.rows())
    for (size_t l = 0; l < r.sd_layer.size(); ++l) {
      sd << '"' << r.method << "\",theorem," << l << ',' << r.tokens[l].mean() << ',' << r.sd_theorem[l].mean() << ','
         << r.sd_theorem[l].std() << ',' << r.sd_theorem[l].n << '\n';
      sd << '"' << r.method << "\",layer," << l << ',' << r.tokens[l].mean() << ',' << r.sd_layer[l].mean() << ','
         << r.sd_layer[l].std() << ',' << r.sd_layer[l].n << '\n';
    }
}

void write_eigenvalues_csv(const SpectralReport& rep, const std::string& path) {
  auto eig = open_out(path);
  eig << "method,layer,index,original_mean,lifted_mean,lifted_std\n";
  for (const auto& r : rep.rows())
    for (size_t i = 0; i < r.eig_lifted.size(); ++i)
      eig << '"' << r.method << "\"," << rep.curve_layer() << ',' << i << ',' << r.eig_original[i].mean() << ','
          << r.eig_lifted[i].mean() << ',' << r.eig_lifted[i].std() << '\n';
}

void write_energy_csv(const SpectralReport& rep, const std::string& path) {
  auto en = open_out(path);
  en << "method,layer,bin_lo,bin_hi,merged,kept\n";
  for (const auto& r : rep.rows())
    for (size_t l = 0; l < r.energy.size(); ++l)
      for (int b = 0; b < EnergyHistogram::kBins; ++b) {
        if (r.energy[l].merged[b] == 0 && r.energy[l].kept[b] == 0) continue;
        en << '"' << r.method << "\"," << l << ',' << h_edge(b) << ',' << h_edge(b + 1) << ',' << r.energy[l].merged[b]
           << ',' << r.energy[l].kept[b] << '\n';
      }
}

void write_tokens_csv(const SpectralReport& rep, const std::string& path,
                      const std::vector<std::vector<double>>& gmacs_per_layer) {
  auto tk = open_out(path);
  const auto& rows = rep.rows();
  tk << "method,layer,tokens,gmacs_block\n";
  for (size_t m = 0; m < rows.size(); ++m)
    for (size_t l = 0; l < rows[m].tokens.size(); ++l)
      tk << '"' << rows[m].method << "\"," << l << ',' << rows[m].tokens[l].mean() << ','
         << (m < gmacs_per_layer.size() && l < gmacs_per_layer[m].size() ? gmacs_per_layer[m][l] : NAN) << '\n';
}

void write_summary_json(const SpectralReport& rep, const std::string& path, const std::string& model) {
  nlohmann::json j;
  j["model"] = model;
  j["images"] = rep.images();
  j["kernel"] = kernel_name(rep.options().graph.kernel);
  j["curve_layer"] = rep.curve_layer();
  j["layer_note"] = "0-based block index; values after block l";
  j["lemma1_max_error_block_sum"] = rep.lemma_error_sum();
  j["lemma1_max_deviation_block_mean"] = rep.lemma_error_mean();
  j["sd_over"] = rep.used_partial_spectra() ? "the " + std::to_string(rep.options().partial_k) +
                                                  " smallest and largest eigenvalues (graphs above " +
                                                  std::to_string(rep.options().dense_limit) + " nodes)"
                                            : "all eigenvalues";
  j["sd_pruned"] = "null (undefined) after a block that pruned tokens: Theorem 1 describes coarsening only";
  j["sd_mixes_all"] = "null (undefined) for a method whose tokens mix all patch tokens (dct): no partition exists";
  for (const auto& r : rep.rows()) {
    nlohmann::json m;
    if (r.mixes_all) m["mixes_all_tokens"] = true;
    m["tokens"] = means(r.tokens);
    m["sd_theorem_mean"] = means(r.sd_theorem);
    m["sd_theorem_std"] = stds(r.sd_theorem);
    m["sd_layer_mean"] = means(r.sd_layer);
    m["sd_layer_std"] = stds(r.sd_layer);
    m["energy_merged_mean"] = means(r.mean_energy_merged);
    m["energy_kept_mean"] = means(r.mean_energy_kept);
    j["methods"][r.method] = m;
  }
  auto js = open_out(path);
  js << j.dump(1) << '\n';
}

Figure layer_figure(const SpectralReport& rep, const std::string& title, const std::string& ylabel,
                    std::vector<RunningStat> MethodSpectra::*field) {
  Figure fig;
  fig.title = title;
  fig.x_label = "block (layer)";
  fig.y_label = ylabel;
  for (const auto& r : rep.rows()) {
    Series s;
    s.label = r.method;
    s.color = color_for_method(r.method);
    s.dashed = is_baseline(r.method);
    for (size_t l = 0; l < (r.*field).size(); ++l) {
      s.x.push_back(static_cast<double>(l));
      s.y.push_back((r.*field)[l].mean());
      s.y_err.push_back((r.*field)[l].std());
    }
    fig.lines.push_back(std::move(s));
  }
  return fig;
}

// Series with the same values as an earlier one would hide behind it: say so in the legend and dash them.
void mark_identical(Figure& fig) {
  for (size_t i = 1; i < fig.lines.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (fig.lines[i].y == fig.lines[j].y) {
        fig.lines[i].label += " (same as " + fig.lines[j].label + ")";
        fig.lines[i].dashed = true;
        break;
      }
}

void plot_sd(const SpectralReport& rep, const std::string& p) {
  const std::string n_images = std::to_string(rep.images()) + (rep.images() == 1 ? " image" : " images, mean ± std");
  save_figure(layer_figure(rep, "Spectral distance, theorem view (block-0 graph, cumulative merges) — " + n_images,
                           "SD(G, G_lifted)", &MethodSpectra::sd_theorem),
              p + "sd_theorem");
  save_figure(layer_figure(rep, "Spectral distance, per-layer view (block-l graph, its own merges) — " + n_images,
                           "SD(G_l, G_l lifted)", &MethodSpectra::sd_layer),
              p + "sd_layer");
}

void plot_tokens(const SpectralReport& rep, const std::string& p) {
  Figure fig = layer_figure(rep, "Tokens leaving each block", "tokens", &MethodSpectra::tokens);
  // The baselines copy the reference method's token counts; leave them out here.
  fig.lines.erase(
      std::remove_if(fig.lines.begin(), fig.lines.end(), [](const Series& s) { return is_baseline(s.label); }),
      fig.lines.end());
  for (auto& s : fig.lines) s.y_err.clear();
  mark_identical(fig);
  save_figure(fig, p + "tokens");
}

void plot_gmacs(const SpectralReport& rep, const std::string& p,
                const std::vector<std::vector<double>>& gmacs_per_layer) {
  const auto& rows = rep.rows();
  Figure fig;
  fig.title = "Cost per block (GMACs per image, matching included)";
  fig.x_label = "block (layer)";
  fig.y_label = "GMACs";
  for (size_t m = 0; m < gmacs_per_layer.size() && m < rows.size(); ++m) {
    Series s;
    s.label = rows[m].method;
    s.color = color_for_method(s.label);
    for (size_t l = 0; l < gmacs_per_layer[m].size(); ++l)
      s.x.push_back(static_cast<double>(l)), s.y.push_back(gmacs_per_layer[m][l]);
    fig.lines.push_back(std::move(s));
  }
  mark_identical(fig);
  save_figure(fig, p + "gmacs");
}

void plot_eigenvalues(const SpectralReport& rep, const std::string& p) {
  Figure fig;
  // On these near-complete graphs the spectrum is ~1 except at both ends; show the top end, where merges
  // move it (the full curves are in eigenvalues.csv).
  constexpr int kShown = 40;
  fig.title = "Largest normalised-Laplacian eigenvalues after block " + std::to_string(rep.curve_layer()) +
              ": original vs lifted (theorem view)";
  fig.x_label = "eigenvalue index";
  fig.y_label = "eigenvalue";
  bool original_drawn = false;
  for (const auto& r : rep.rows()) {
    if (r.eig_lifted.empty()) continue;
    if (!original_drawn) {
      Series o;
      o.label = "original graph";
      o.color = "#000000";
      o.markers = false;
      for (size_t i = 0; i < r.eig_original.size(); ++i)
        o.x.push_back(static_cast<double>(i)), o.y.push_back(r.eig_original[i].mean());
      fig.lines.push_back(std::move(o));
      original_drawn = true;
    }
    Series s;
    s.label = r.method + " (lifted)";
    s.color = color_for_method(r.method);
    s.markers = false;
    for (size_t i = 0; i < r.eig_lifted.size(); ++i)
      s.x.push_back(static_cast<double>(i)), s.y.push_back(r.eig_lifted[i].mean());
    fig.lines.push_back(std::move(s));
  }
  if (!fig.lines.empty()) {
    const size_t n = fig.lines.front().x.size();
    const size_t first = n > kShown ? n - kShown : 0;
    double lo = 1e300, hi = -1e300;
    for (auto& s : fig.lines) {
      s.x.erase(s.x.begin(), s.x.begin() + first);
      s.y.erase(s.y.begin(), s.y.begin() + first);
      s.markers = true;
      for (double v : s.y) lo = std::min(lo, v), hi = std::max(hi, v);
    }
    const double pad = 0.05 * std::max(hi - lo, 1e-6);
    fig.y_min = lo - pad;
    fig.y_max = hi + pad;
  }
  save_figure(fig, p + "eigenvalues_layer" + std::to_string(rep.curve_layer()));
}

void plot_energy(const SpectralReport& rep, const std::string& p, int l) {
  const auto& rows = rep.rows();
  Figure fig;
  fig.title = "PiToMe energy (released formula) of block " + std::to_string(l) + "'s input tokens: merged vs kept";
  fig.x_label = "energy";
  fig.y_label = "tokens";
  std::vector<double> edges;
  for (int b = 0; b <= EnergyHistogram::kBins; ++b) edges.push_back(h_edge(b));
  for (const auto& r : rows) {
    if (is_baseline(r.method)) continue;
    double merged_total = 0;
    for (double c : r.energy[l].merged) merged_total += c;
    if (merged_total > 0)
      fig.histograms.push_back({r.method + ": merged", edges, r.energy[l].merged, color_for_method(r.method)});
  }
  if (!rows.empty())
    fig.histograms.push_back({rows.front().method + ": kept", edges, rows.front().energy[l].kept, "#999999"});
  // Zoom to the occupied bins.
  int lo = EnergyHistogram::kBins, hi = 0;
  for (const auto& h : fig.histograms)
    for (int b = 0; b < EnergyHistogram::kBins; ++b)
      if (h.counts[b] > 0) lo = std::min(lo, b), hi = std::max(hi, b + 1);
  if (lo < hi) {
    fig.x_min = h_edge(std::max(0, lo - 2));
    fig.x_max = h_edge(std::min(EnergyHistogram::kBins, hi + 2));
  }
  save_figure(fig, p + "energy_layer" + std::to_string(l));
}

}  // namespace

void export_spectral_report(const SpectralReport& rep, const std::string& dir, const std::string& model,
                            const std::vector<std::vector<double>>& gmacs_per_layer) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create folder: " + ec.message());
  const std::string p = dir + "/";
  write_sd_csv(rep, p + "sd.csv");
  write_eigenvalues_csv(rep, p + "eigenvalues.csv");
  write_energy_csv(rep, p + "energy.csv");
  write_tokens_csv(rep, p + "tokens.csv", gmacs_per_layer);
  write_summary_json(rep, p + "summary.json", model);
  plot_sd(rep, p);
  plot_tokens(rep, p);
  plot_gmacs(rep, p, gmacs_per_layer);
  plot_eigenvalues(rep, p);
  for (int l : {0, rep.curve_layer(), static_cast<int>(rep.rows().front().energy.size()) - 1}) plot_energy(rep, p, l);
}

}  // namespace ms
