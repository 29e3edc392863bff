// Classification metrics and their per-image records, shared by the CLI and the app.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace ms {

class Labels;

struct Prediction {
  std::vector<int> classes;  // best first
  std::vector<float> probs;  // softmax probabilities
};

// Top-k classes and probabilities of each row of logits [B, classes].
std::vector<Prediction> top_k(const at::Tensor& logits, int k);

struct ImageResult {
  std::string file;
  int label = -1;  // -1 when the file name carries no known wnid
  Prediction prediction;
};

struct Accuracy {
  int images = 0;  // labelled images counted
  int top1 = 0;
  int top5 = 0;

  void add(const ImageResult& r);
  double top1_percent() const { return images ? 100.0 * top1 / images : 0.0; }
  double top5_percent() const { return images ? 100.0 * top5 / images : 0.0; }
};

// One method's totals over an image set: a row of eval's table (and of `sweep merge`'s, from shard files).
struct MethodTotals {
  std::string spec;
  Accuracy accuracy;
  int images = 0;              // every image, labelled or not
  double macs = 0;             // summed over images, in image order (so sums from shards equal eval's exactly)
  double seconds = 0;          // forward passes only
  std::string dtype = "fp32";  // the compute precision of the forwards (core/precision.h)

  void add(const ImageResult& r, double image_macs);
};

// eval's table: a line naming the model and the image count, then one row per method with top-1, top-5,
// GMACs per image, images/s, the speed-up against the "none" row when there is one, and the dtype.
std::string format_eval_table(const std::string& model, const std::vector<MethodTotals>& rows);

// Below eval's table when it has two rows or more: every other row's top-1 paired against row `against` (the first
// unless eval's --paired-against names another) on the same labelled images (analysis/paired.h: the difference,
// its 95% interval, McNemar's p and the discordant counts), so a difference the sample cannot tell from noise
// reads as such. Empty when fewer than two rows or no labelled image. results[i] holds row i's images in order.
std::string format_paired_table(const std::vector<MethodTotals>& rows,
                                const std::vector<const std::vector<ImageResult>*>& results, size_t against = 0);

// A method spec as a file-name part: every character but letters, digits, '.' and '-' becomes '_'
// ("tome:r=13" -> "tome_r_13").
std::string spec_file_tag(const std::string& spec);

// Per-image CSV: file,label,pred1..pred5,prob1..prob5,correct1,correct5.
void write_results_csv(const std::string& path, const std::vector<ImageResult>& results, const Labels& labels);
// JSON: {summary fields..., images: [{file, label, top5: [[class, prob], ...]}]}.
void write_results_json(const std::string& path, const std::vector<ImageResult>& results, const Labels& labels,
                        const std::string& model, const Accuracy& accuracy, double images_per_second);

}  // namespace ms
