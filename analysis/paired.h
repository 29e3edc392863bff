// Two classifiers on the same labelled images (fp32 and bf16, a method and its baseline): how far apart their
// top-1 accuracies are, and whether the sample can tell. A paired comparison only counts the images on which
// exactly one of them is right, so it is far tighter than comparing two accuracies as if independent.
#pragma once

#include <string>
#include <vector>

namespace ms {

// Wilson's score interval for k successes in n trials at normal quantile z (Wilson, 1927).
struct Interval {
  double low = 0, high = 0;
};
Interval wilson_interval(int k, int n, double z);

struct PairedAccuracy {
  int images = 0;  // images counted (labelled in both runs)
  int both = 0;    // right in both
  int only_a = 0;  // right in a, wrong in b
  int only_b = 0;  // wrong in a, right in b
  int neither = 0;
  double difference = 0;  // b's accuracy minus a's, a fraction of the images
  Interval interval;      // 95% interval for the difference: Newcombe (1998, Stat. Med. 17:2635), method 10
  double p_value = 1;     // exact two-sided McNemar: 2 P(X <= min(only_a, only_b)), X ~ Bin(only_a + only_b, 1/2)

  // "-0.8 points, 95% interval [-2.1, +0.5], McNemar p = 0.50 (right only in a: 12, only in b: 8)"
  std::string summary(const std::string& a_name, const std::string& b_name) const;
};

// a_correct[i], b_correct[i]: whether each classifier is right on image i (same length, same images).
PairedAccuracy paired_accuracy(const std::vector<bool>& a_correct, const std::vector<bool>& b_correct);

}  // namespace ms
