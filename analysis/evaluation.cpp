#include "evaluation.h"

#include "error.h"
#include "labels.h"
#include "paired.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>

namespace ms {

std::vector<Prediction> top_k(const at::Tensor& logits, int k) {
  const at::Tensor probs = at::softmax(logits.to(at::kCPU, at::kFloat), 1);
  const auto [values, indices] = probs.topk(std::min<int64_t>(k, probs.size(1)), 1);
  std::vector<Prediction> out(static_cast<size_t>(probs.size(0)));
  for (int64_t i = 0; i < probs.size(0); ++i)
    for (int64_t j = 0; j < values.size(1); ++j) {
      out[i].classes.push_back(static_cast<int>(indices[i][j].item<int64_t>()));
      out[i].probs.push_back(values[i][j].item<float>());
    }
  return out;
}

namespace {

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

// The label is among the first k predictions.
bool in_top(const ImageResult& r, size_t k) {
  const auto& c = r.prediction.classes;
  const auto end = c.begin() + std::min(k, c.size());
  return r.label >= 0 && std::find(c.begin(), end, r.label) != end;
}

}  // namespace

void Accuracy::add(const ImageResult& r) {
  if (r.label < 0) return;
  ++images;
  top1 += in_top(r, 1);
  top5 += in_top(r, 5);
}

std::string spec_file_tag(const std::string& spec) {
  std::string tag = spec;
  for (char& ch : tag)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-') ch = '_';
  return tag;
}

void MethodTotals::add(const ImageResult& r, double image_macs) {
  accuracy.add(r);
  ++images;
  macs += image_macs;
}

std::string format_eval_table(const std::string& model, const std::vector<MethodTotals>& rows) {
  std::string out;
  char line[512];
  auto print = [&](const char* format, auto... values) {
    std::snprintf(line, sizeof line, format, values...);
    out += line;
  };
  const int n = rows.empty() ? 0 : rows.front().images;
  const MethodTotals* baseline = nullptr;
  for (const auto& t : rows)
    if (t.spec == "none") baseline = &t;
  print("model %s, %d images (%d labelled); GMACs per image (MACs, as the ToMe/PiToMe papers' \"GFLOPs\")\n",
        model.c_str(), n, rows.empty() ? 0 : rows.front().accuracy.images);
  print("%-28s %8s %8s %8s %10s %9s %5s\n", "method", "top-1", "top-5", "GMACs", "images/s", "speed-up", "dtype");
  for (const auto& t : rows) {
    const double ips = t.images / t.seconds;
    print("%-28s %7.2f%% %7.2f%% %8.3f %10.1f", t.spec.c_str(), t.accuracy.top1_percent(), t.accuracy.top5_percent(),
          t.macs / t.images * 1e-9, ips);
    if (baseline)
      print(" %8.2fx", ips / (baseline->images / baseline->seconds));
    else
      print(" %9s", "");
    print(" %5s\n", t.dtype.c_str());
  }
  return out;
}

std::string format_paired_table(const std::vector<MethodTotals>& rows,
                                const std::vector<const std::vector<ImageResult>*>& results, size_t against) {
  if (rows.size() < 2 || rows.size() != results.size() || against >= rows.size()) return "";
  auto correct = [](const std::vector<ImageResult>& images) {
    std::vector<bool> c;
    for (const auto& r : images)
      if (r.label >= 0) c.push_back(in_top(r, 1));
    return c;
  };
  const std::vector<bool> ref = correct(*results[against]);
  if (ref.empty()) return "";
  std::string out;
  char line[512];
  // Columns: this row's top-1 minus the compared row's in points, its 95% interval, McNemar's p, and the images
  // only the compared row (ref) gets right and only this row gets right.
  std::snprintf(
      line, sizeof line,
      "top-1 against %s (ref), paired on the same %zu labelled images (95%% interval: Newcombe 1998; p: exact "
      "McNemar)\n%-28s %10s %16s %7s %10s %10s\n",
      rows[against].spec.c_str(), ref.size(), "method", "difference", "95% interval", "p", "only ref", "only this");
  out += line;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == against) continue;
    const PairedAccuracy p = paired_accuracy(ref, correct(*results[i]));
    char interval[40];
    std::snprintf(interval, sizeof interval, "[%+.1f, %+.1f]", 100 * p.interval.low, 100 * p.interval.high);
    std::snprintf(line, sizeof line, "%-28s %+10.1f %16s %7.2g %10d %10d\n", rows[i].spec.c_str(), 100 * p.difference,
                  interval, p.p_value, p.only_a, p.only_b);
    out += line;
  }
  return out;
}

void write_results_csv(const std::string& path, const std::vector<ImageResult>& results, const Labels& labels) {
  std::ofstream f(path);
  if (!f) fail(path, "cannot open for writing");
  f << "file,label,label_name";
  for (int i = 1; i <= 5; ++i) f << ",pred" << i;
  for (int i = 1; i <= 5; ++i) f << ",prob" << i;
  f << ",correct_top1,correct_top5\n";
  for (const auto& r : results) {
    f << csv_quote(r.file) << ',' << r.label << ',' << csv_quote(r.label >= 0 ? labels.name(r.label) : "");
    for (size_t i = 0; i < 5; ++i) f << ',' << (i < r.prediction.classes.size() ? r.prediction.classes[i] : -1);
    for (size_t i = 0; i < 5; ++i) f << ',' << (i < r.prediction.probs.size() ? r.prediction.probs[i] : 0.0f);
    f << ',' << in_top(r, 1) << ',' << in_top(r, 5) << '\n';
  }
  if (!f) fail(path, "write failed");
}

void write_results_json(const std::string& path, const std::vector<ImageResult>& results, const Labels& labels,
                        const std::string& model, const Accuracy& accuracy, double images_per_second) {
  nlohmann::json j;
  j["model"] = model;
  j["images"] = accuracy.images;
  j["top1"] = accuracy.top1_percent();
  j["top5"] = accuracy.top5_percent();
  j["images_per_second"] = images_per_second;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json top = nlohmann::json::array();
    for (size_t i = 0; i < r.prediction.classes.size(); ++i)
      top.push_back({labels.name(r.prediction.classes[i]), r.prediction.classes[i], r.prediction.probs[i]});
    rows.push_back({{"file", r.file}, {"label", r.label}, {"top5", top}});
  }
  j["results"] = rows;
  std::ofstream f(path);
  if (!f) fail(path, "cannot open for writing");
  f << j.dump(1) << '\n';
  if (!f) fail(path, "write failed");
}

}  // namespace ms
