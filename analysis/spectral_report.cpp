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

double h_edge(int b) { return EnergyHistogram::kLo + b * (EnergyHistogram::kHi - EnergyHistogram::kLo) / EnergyHistogram::kBins; }

bool is_baseline(const std::string& name) { return name == kRandomBaseline || name == kKmeansBaseline; }

// Rows [prefix, tokens) of a trace layer's keys.
const float* patch_keys(const LayerTrace& lt, int prefix) { return lt.keys.data() + static_cast<size_t>(prefix) * lt.key_dim; }

// A spectrum, whole (low holds every eigenvalue) or as its k smallest and k largest eigenvalues.
struct Spectrum {
  Eigen::VectorXd low, high;
  bool partial = false;
};

Spectrum spectrum_of(const Eigen::MatrixXd& L, const SpectralOptions& o) {
  Spectrum s;
  const int n = static_cast<int>(L.rows());
  if (n <= o.dense_limit || 2 * o.partial_k + 2 >= n) {
    s.low = eigenvalues(L);
    return s;
  }
  s.partial = true;
  s.low = extreme_eigenvalues(L, o.partial_k, false);
  s.high = extreme_eigenvalues(L, o.partial_k, true);
  return s;
}

// A token graph: for the 1 - cos kernel its low-rank factor (exact spectra from a (dim+1)-sized problem,
// any number of nodes); for the other kernels the dense weights.
struct Graph {
  Eigen::MatrixXd W;       // dense kernels
  Eigen::MatrixXd B;       // 1 - cos: W = B diag(signs) B^T
  Eigen::VectorXd signs;
  bool low_rank() const { return B.size() > 0; }
  Eigen::Index nodes() const { return low_rank() ? B.rows() : W.rows(); }
  Eigen::MatrixXd dense() const { return low_rank() ? Eigen::MatrixXd(B * signs.asDiagonal() * B.transpose()) : W; }
};

Graph make_graph(const float* keys, int n, int dim, const SpectralOptions& o) {
  Graph g;
  if (o.graph.kernel == GraphKernel::OneMinusCos) {
    g.B = one_minus_cos_factor(keys, n, dim);
    g.signs = one_minus_cos_signs(dim);
  } else {
    g.W = token_graph(keys, n, dim, o.graph);
  }
  return g;
}

Spectrum spectrum_of(const Graph& g, const SpectralOptions& o) {
  if (g.low_rank()) {
    Spectrum s;
    s.low = low_rank_laplacian_spectrum(g.B, g.signs);
    if (s.low.size() == g.nodes()) return s;  // else a node without edges: the dense path handles it
  }
  return spectrum_of(normalized_laplacian(g.dense()), o);
}

Graph coarsen(const Graph& g, const Partition& p) {
  Graph c;
  if (g.low_rank()) {
    c.B = coarsen_factor(g.B, p);
    c.signs = g.signs;
  } else {
    c.W = coarsen_sum(g.W, p);
  }
  return c;
}

// Lifted spectrum from the coarse one (Lemma 1), in the same form as `like`.
Spectrum lifted_like(const Spectrum& coarse, int coarse_n, int original_n, const Spectrum& like) {
  Spectrum out;
  out.partial = like.partial;
  std::vector<double> values(coarse.low.data(), coarse.low.data() + coarse.low.size());
  if (coarse.partial) values.insert(values.end(), coarse.high.data(), coarse.high.data() + coarse.high.size());
  const int ones = original_n - coarse_n;
  if (!like.partial) {
    out.low = lifted_spectrum_from_coarse(coarse.low, original_n);
    return out;
  }
  const int k = static_cast<int>(like.low.size());
  values.insert(values.end(), std::min(ones, k), 1.0);  // enough ones to fill either end
  std::sort(values.begin(), values.end());
  out.low = Eigen::Map<Eigen::VectorXd>(values.data(), k);
  out.high = Eigen::Map<Eigen::VectorXd>(values.data() + values.size() - k, k);
  return out;
}

double distance(const Spectrum& a, const Spectrum& b) {
  double d = spectral_distance(a.low, b.low);
  if (a.partial) d += spectral_distance(a.high, b.high);
  return d;
}

double sd_of(const Graph& g, const Spectrum& spectrum, const Partition& p, const SpectralOptions& o,
             Eigen::VectorXd* lifted = nullptr) {
  const Spectrum coarse = spectrum_of(coarsen(g, p), o);
  const Spectrum l = lifted_like(coarse, p.groups, static_cast<int>(g.nodes()), spectrum);
  if (lifted && !l.partial) *lifted = l.low;
  return distance(spectrum, l);
}

std::vector<int> tail(const std::vector<int32_t>& v, int from) { return std::vector<int>(v.begin() + from, v.end()); }

}  // namespace

double RunningStat::std() const {
  if (n < 2) return 0;
  const double m = mean();
  return std::sqrt(std::max(0.0, sum_sq / n - m * m));
}

void EnergyHistogram::add(double energy, bool was_merged) {
  if (!std::isfinite(energy)) return;
  int bin = static_cast<int>((energy - kLo) / (kHi - kLo) * kBins);
  bin = std::clamp(bin, 0, kBins - 1);
  (was_merged ? merged : kept)[bin] += 1;
}

std::vector<double> reference_energies(const float* keys, int n, int dim, double margin) {
  Eigen::MatrixXd k = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(keys, n, dim).cast<double>();
  for (int i = 0; i < n; ++i) k.row(i) /= std::max(k.row(i).norm(), 1e-12);
  const Eigen::MatrixXd cos = k * k.transpose();
  std::vector<double> e(n, 0.0);
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int j = 0; j < n; ++j) {
      const double x = cos(i, j) - margin;
      sum += x > 0 ? x : std::expm1(x);  // ELU, alpha = 1
    }
    e[i] = sum / n;
  }
  return e;
}

std::vector<int> layer_partition(const ImageTrace& trace, int layer) {
  const LayerTrace& lt = trace.layers.at(layer);
  const int P = trace.prefix_tokens;
  std::vector<int> out(std::max(0, lt.tokens_in - P), -1);
  for (int t = 0; t < trace.original_tokens; ++t) {
    const int in = layer == 0 ? t : trace.layers[layer - 1].cluster_of_token[t];
    if (in >= P) out[in - P] = lt.cluster_of_token[t];
  }
  return out;
}

SpectralReport::SpectralReport(std::vector<std::string> methods, int depth, SpectralOptions options)
    : methods_(std::move(methods)), depth_(depth), curve_layer_(options.curve_layer < 0 ? depth / 2 : options.curve_layer),
      options_(options) {
  if (curve_layer_ >= depth) fail("--layer", std::to_string(curve_layer_) + " is past the last block (" + std::to_string(depth - 1) + ")");
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

void SpectralReport::add_image(const std::vector<ImageTrace>& traces, int reference) {
  if (traces.size() != methods_.size()) fail("spectral report", "one trace per method expected");
  const ImageTrace& ref = traces.at(reference);
  const int P = ref.prefix_tokens;
  const LayerTrace& first = ref.layers.at(0);
  if (first.keys.empty()) fail("spectral report", "traces need keys (RunOptions::trace_keys)");
  const int N = first.tokens_in - P;

  // Theorem view: one graph per image (block 0 sees every method's tokens unreduced).
  const Graph G0 = make_graph(patch_keys(first, P), N, first.key_dim, options_);
  const Spectrum spec0 = spectrum_of(G0, options_);
  if (!G0.low_rank())
    for (const ImageTrace& tr : traces)
      for (const LayerTrace& lt : tr.layers) partial_used_ = partial_used_ || lt.tokens_in - P > options_.dense_limit;

  // Every (method, block) pair writes only its own statistics (rows exist since the constructor), so the
  // pairs run in parallel; the eigensolvers inside are single-threaded.
  const int64_t M = static_cast<int64_t>(traces.size());
  at::parallel_for(0, M * depth_, 1, [&](int64_t begin, int64_t end) {
   for (int64_t item = begin; item < end; ++item) {
    const size_t m = static_cast<size_t>(item / depth_);
    const int l = static_cast<int>(item % depth_);
    MethodSpectra& r = row(methods_[m]);
    const ImageTrace& tr = traces[m];
    {
      const LayerTrace& lt = tr.layers[l];
      r.tokens[l].add(lt.tokens);
      const Partition cumulative = make_partition(tail(lt.cluster_of_token, P));
      Eigen::VectorXd lifted;
      r.sd_theorem[l].add(sd_of(G0, spec0, cumulative, options_, &lifted));
      if (l == curve_layer_ && !spec0.partial) {
        if (r.eig_original.empty()) r.eig_original.resize(N), r.eig_lifted.resize(N);
        for (int i = 0; i < N; ++i) r.eig_original[i].add(spec0.low(i)), r.eig_lifted[i].add(lifted(i));
        if (m == static_cast<size_t>(reference) && cumulative.groups < N && N <= options_.dense_limit) {
          // Lemma 1 on this real graph: the explicit (dense) lift vs the coarse spectrum plus ones.
          const Eigen::MatrixXd W0 = G0.dense();
          const Eigen::MatrixXd Wsum = coarsen_sum(W0, cumulative);
          const Eigen::VectorXd explicit_lift = eigenvalues(normalized_laplacian(lift(Wsum, cumulative)));
          lemma_sum_ = std::max(lemma_sum_, (explicit_lift - lifted).cwiseAbs().maxCoeff());
          const Eigen::VectorXd mean_coarse = eigenvalues(normalized_laplacian(coarsen_mean(W0, cumulative)));
          lemma_mean_ = std::max(lemma_mean_, (explicit_lift - lifted_spectrum_from_coarse(mean_coarse, N)).cwiseAbs().maxCoeff());
        }
      }

      // Layer view: this block's input graph and its own merges.
      const int n_in = lt.tokens_in - P;
      const Graph G = make_graph(patch_keys(lt, P), n_in, lt.key_dim, options_);
      const Spectrum spec = spectrum_of(G, options_);
      const std::vector<int> dest = layer_partition(tr, l);
      const Partition own = make_partition(dest);
      r.sd_layer[l].add(sd_of(G, spec, own, options_));

      // Energies of the input tokens, split by whether the block merged them.
      std::map<int, int> arrivals;
      for (int d : dest) ++arrivals[d];
      double sum_m = 0, sum_k = 0;
      int n_m = 0, n_k = 0;
      const std::vector<double> energies = reference_energies(patch_keys(lt, P), n_in, lt.key_dim, 0.75 - 0.75 * l / depth_);
      for (int j = 0; j < n_in; ++j) {
        const double e = energies[j];
        const bool merged = arrivals[dest[j]] > 1;
        r.energy[l].add(e, merged);
        (merged ? sum_m : sum_k) += e;
        (merged ? n_m : n_k) += 1;
      }
      if (n_m) r.mean_energy_merged[l].add(sum_m / n_m);
      if (n_k) r.mean_energy_kept[l].add(sum_k / n_k);

      if (options_.baselines && m == static_cast<size_t>(reference)) {
        MethodSpectra& rnd = row(kRandomBaseline);
        MethodSpectra& km = row(kKmeansBaseline);
        const unsigned seed = options_.seed * 7919u + static_cast<unsigned>(images_ * 131 + l);
        rnd.tokens[l].add(lt.tokens);
        km.tokens[l].add(lt.tokens);
        rnd.sd_theorem[l].add(sd_of(G0, spec0, random_partition_like(cumulative, seed), options_));
        km.sd_theorem[l].add(
            sd_of(G0, spec0, kmeans_partition(patch_keys(first, P), N, first.key_dim, cumulative.groups, seed), options_));
        rnd.sd_layer[l].add(sd_of(G, spec, random_partition_like(own, seed), options_));
        km.sd_layer[l].add(sd_of(G, spec, kmeans_partition(patch_keys(lt, P), n_in, lt.key_dim, own.groups, seed), options_));
      }
    }
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

}  // namespace

void export_spectral_report(const SpectralReport& rep, const std::string& dir, const std::string& model,
                            const std::vector<std::vector<double>>& gmacs_per_layer) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create folder: " + ec.message());
  const std::string p = dir + "/";
  const auto& rows = rep.rows();

  auto sd = open_out(p + "sd.csv");
  sd << "method,view,layer,tokens,sd_mean,sd_std,images\n";
  for (const auto& r : rows)
    for (size_t l = 0; l < r.sd_layer.size(); ++l) {
      sd << '"' << r.method << "\",theorem," << l << ',' << r.tokens[l].mean() << ',' << r.sd_theorem[l].mean() << ','
         << r.sd_theorem[l].std() << ',' << r.sd_theorem[l].n << '\n';
      sd << '"' << r.method << "\",layer," << l << ',' << r.tokens[l].mean() << ',' << r.sd_layer[l].mean() << ','
         << r.sd_layer[l].std() << ',' << r.sd_layer[l].n << '\n';
    }

  auto eig = open_out(p + "eigenvalues.csv");
  eig << "method,layer,index,original_mean,lifted_mean,lifted_std\n";
  for (const auto& r : rows)
    for (size_t i = 0; i < r.eig_lifted.size(); ++i)
      eig << '"' << r.method << "\"," << rep.curve_layer() << ',' << i << ',' << r.eig_original[i].mean() << ','
          << r.eig_lifted[i].mean() << ',' << r.eig_lifted[i].std() << '\n';

  auto en = open_out(p + "energy.csv");
  en << "method,layer,bin_lo,bin_hi,merged,kept\n";
  for (const auto& r : rows)
    for (size_t l = 0; l < r.energy.size(); ++l)
      for (int b = 0; b < EnergyHistogram::kBins; ++b) {
        if (r.energy[l].merged[b] == 0 && r.energy[l].kept[b] == 0) continue;
        const double w = (EnergyHistogram::kHi - EnergyHistogram::kLo) / EnergyHistogram::kBins;
        en << '"' << r.method << "\"," << l << ',' << EnergyHistogram::kLo + b * w << ',' << EnergyHistogram::kLo + (b + 1) * w
           << ',' << r.energy[l].merged[b] << ',' << r.energy[l].kept[b] << '\n';
      }

  auto tk = open_out(p + "tokens.csv");
  tk << "method,layer,tokens,gmacs_block\n";
  for (size_t m = 0; m < rows.size(); ++m)
    for (size_t l = 0; l < rows[m].tokens.size(); ++l)
      tk << '"' << rows[m].method << "\"," << l << ',' << rows[m].tokens[l].mean() << ','
         << (m < gmacs_per_layer.size() && l < gmacs_per_layer[m].size() ? gmacs_per_layer[m][l] : NAN) << '\n';

  nlohmann::json j;
  j["model"] = model;
  j["images"] = rep.images();
  j["kernel"] = kernel_name(rep.options().graph.kernel);
  j["curve_layer"] = rep.curve_layer();
  j["lemma1_max_error_block_sum"] = rep.lemma_error_sum();
  j["lemma1_max_deviation_block_mean"] = rep.lemma_error_mean();
  j["sd_over"] = rep.used_partial_spectra() ? "the " + std::to_string(rep.options().partial_k) +
                                                  " smallest and largest eigenvalues (graphs above " +
                                                  std::to_string(rep.options().dense_limit) + " nodes)"
                                            : "all eigenvalues";
  for (const auto& r : rows) {
    nlohmann::json m;
    auto means = [](const std::vector<RunningStat>& v) {
      std::vector<double> out;
      for (const auto& s : v) out.push_back(s.mean());
      return out;
    };
    auto stds = [](const std::vector<RunningStat>& v) {
      std::vector<double> out;
      for (const auto& s : v) out.push_back(s.std());
      return out;
    };
    m["tokens"] = means(r.tokens);
    m["sd_theorem_mean"] = means(r.sd_theorem);
    m["sd_theorem_std"] = stds(r.sd_theorem);
    m["sd_layer_mean"] = means(r.sd_layer);
    m["sd_layer_std"] = stds(r.sd_layer);
    m["energy_merged_mean"] = means(r.mean_energy_merged);
    m["energy_kept_mean"] = means(r.mean_energy_kept);
    j["methods"][r.method] = m;
  }
  auto js = open_out(p + "summary.json");
  js << j.dump(1) << '\n';

  // Plots.
  const std::string n_images = std::to_string(rep.images()) + (rep.images() == 1 ? " image" : " images, mean ± std");
  save_figure(layer_figure(rep, "Spectral distance, theorem view (block-0 graph, cumulative merges) — " + n_images,
                           "SD(G, G_lifted)", &MethodSpectra::sd_theorem),
              p + "sd_theorem");
  save_figure(layer_figure(rep, "Spectral distance, per-layer view (block-l graph, its own merges) — " + n_images,
                           "SD(G_l, G_l lifted)", &MethodSpectra::sd_layer),
              p + "sd_layer");
  {
    Figure fig = layer_figure(rep, "Tokens leaving each block", "tokens", &MethodSpectra::tokens);
    // The baselines copy the reference method's token counts; leave them out here.
    fig.lines.erase(std::remove_if(fig.lines.begin(), fig.lines.end(), [](const Series& s) { return is_baseline(s.label); }),
                    fig.lines.end());
    for (auto& s : fig.lines) s.y_err.clear();
    mark_identical(fig);
    save_figure(fig, p + "tokens");
  }
  {
    Figure fig;
    fig.title = "Cost per block (GMACs per image, matching included)";
    fig.x_label = "block (layer)";
    fig.y_label = "GMACs";
    for (size_t m = 0; m < gmacs_per_layer.size() && m < rows.size(); ++m) {
      Series s;
      s.label = rows[m].method;
      s.color = color_for_method(s.label);
      for (size_t l = 0; l < gmacs_per_layer[m].size(); ++l) s.x.push_back(static_cast<double>(l)), s.y.push_back(gmacs_per_layer[m][l]);
      fig.lines.push_back(std::move(s));
    }
    mark_identical(fig);
    save_figure(fig, p + "gmacs");
  }
  {
    Figure fig;
    // On these near-complete graphs the spectrum is ~1 except at both ends; show the top end, where merges
    // move it (the full curves are in eigenvalues.csv).
    constexpr int kShown = 40;
    fig.title = "Largest normalised-Laplacian eigenvalues after block " + std::to_string(rep.curve_layer()) +
                ": original vs lifted (theorem view)";
    fig.x_label = "eigenvalue index";
    fig.y_label = "eigenvalue";
    bool original_drawn = false;
    for (const auto& r : rows) {
      if (r.eig_lifted.empty()) continue;
      if (!original_drawn) {
        Series o;
        o.label = "original graph";
        o.color = "#000000";
        o.markers = false;
        for (size_t i = 0; i < r.eig_original.size(); ++i) o.x.push_back(static_cast<double>(i)), o.y.push_back(r.eig_original[i].mean());
        fig.lines.push_back(std::move(o));
        original_drawn = true;
      }
      Series s;
      s.label = r.method + " (lifted)";
      s.color = color_for_method(r.method);
      s.markers = false;
      for (size_t i = 0; i < r.eig_lifted.size(); ++i) s.x.push_back(static_cast<double>(i)), s.y.push_back(r.eig_lifted[i].mean());
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
  for (int l : {0, rep.curve_layer(), static_cast<int>(rows.front().energy.size()) - 1}) {
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
      if (merged_total > 0) fig.histograms.push_back({r.method + ": merged", edges, r.energy[l].merged, color_for_method(r.method)});
    }
    if (!rows.empty()) {
      fig.histograms.push_back({rows.front().method + ": kept", edges, rows.front().energy[l].kept, "#999999"});
    }
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
}

}  // namespace ms
