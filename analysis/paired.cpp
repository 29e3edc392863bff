#include "paired.h"

#include "error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ms {
namespace {

constexpr double kZ95 = 1.959963984540054;  // the standard normal's 97.5% quantile

// P(X <= k) for X ~ Bin(m, 1/2), summed in log space (m may be in the tens of thousands).
double binomial_half_cdf(int k, int m) {
  double sum = 0;
  for (int i = 0; i <= k; ++i)
    sum += std::exp(std::lgamma(m + 1.0) - std::lgamma(i + 1.0) - std::lgamma(m - i + 1.0) - m * std::log(2.0));
  return sum;
}

}  // namespace

Interval wilson_interval(int k, int n, double z) {
  if (n <= 0) return {0, 1};
  const double z2 = z * z, p = static_cast<double>(k) / n;
  const double center = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = z / (1 + z2 / n) * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

PairedAccuracy paired_accuracy(const std::vector<bool>& a_correct, const std::vector<bool>& b_correct) {
  if (a_correct.size() != b_correct.size()) fail("paired accuracy", "the two runs cover different image counts");
  PairedAccuracy r;
  r.images = static_cast<int>(a_correct.size());
  for (size_t i = 0; i < a_correct.size(); ++i) {
    if (a_correct[i] && b_correct[i]) ++r.both;
    if (a_correct[i] && !b_correct[i]) ++r.only_a;
    if (!a_correct[i] && b_correct[i]) ++r.only_b;
    if (!a_correct[i] && !b_correct[i]) ++r.neither;
  }
  if (r.images == 0) {
    r.interval = {-1, 1};
    return r;
  }
  const double n = r.images;
  r.difference = (r.only_b - r.only_a) / n;

  // Newcombe's method 10 for the paired difference p1 - p2, with p1 = b's accuracy and p2 = a's: Wilson intervals
  // of the two margins, combined with the correlation phi of the 2x2 table (0 when a margin is empty).
  const int right_b = r.both + r.only_b, right_a = r.both + r.only_a;
  const double p1 = right_b / n, p2 = right_a / n;
  const Interval w1 = wilson_interval(right_b, r.images, kZ95), w2 = wilson_interval(right_a, r.images, kZ95);
  const double margins = static_cast<double>(right_b) * (r.images - right_b) * right_a * (r.images - right_a);
  const double phi =
      margins > 0
          ? (static_cast<double>(r.both) * r.neither - static_cast<double>(r.only_b) * r.only_a) / std::sqrt(margins)
          : 0.0;
  auto combine = [phi](double d1, double d2) {
    return std::sqrt(std::max(0.0, d1 * d1 - 2 * phi * d1 * d2 + d2 * d2));
  };
  r.interval.low = r.difference - combine(p1 - w1.low, w2.high - p2);
  r.interval.high = r.difference + combine(w1.high - p1, p2 - w2.low);

  const int discordant = r.only_a + r.only_b;
  r.p_value = discordant == 0 ? 1.0 : std::min(1.0, 2 * binomial_half_cdf(std::min(r.only_a, r.only_b), discordant));
  return r;
}

std::string PairedAccuracy::summary(const std::string& a_name, const std::string& b_name) const {
  char line[256];
  std::snprintf(
      line, sizeof line,
      "%+.1f points, 95%% interval [%+.1f, %+.1f] (Newcombe, paired), McNemar p = %.2g (right only in %s: %d, "
      "only in %s: %d)",
      100 * difference, 100 * interval.low, 100 * interval.high, p_value, a_name.c_str(), only_a, b_name.c_str(),
      only_b);
  return line;
}

}  // namespace ms
