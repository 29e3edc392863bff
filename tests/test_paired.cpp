// The paired accuracy comparison (analysis/paired.h): its pieces against statsmodels 0.13.5 (Debian's
// python3-statsmodels: proportion_confint(method='wilson'), confint_proportions_2indep(method='newcomb'),
// mcnemar(exact=True)), and its interval's coverage and the test's level by simulation.
#include "paired.h"

#include "test_util.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <sstream>

namespace ms {
namespace {

constexpr double kZ95 = 1.959963984540054;

// A table of paired outcomes as two correctness vectors.
void make_table(int both, int only_a, int only_b, int neither, std::vector<bool>& a, std::vector<bool>& b) {
  a.clear();
  b.clear();
  auto add = [&](int count, bool ra, bool rb) {
    a.insert(a.end(), count, ra);
    b.insert(b.end(), count, rb);
  };
  add(both, true, true);
  add(only_a, true, false);
  add(only_b, false, true);
  add(neither, false, false);
}

TEST(Paired, WilsonEqualsStatsmodels) {
  struct Case {
    int k, n;
    double low, high;
  };
  for (const Case& c : {Case{0, 10, 0.0, 0.277532799863}, Case{7, 10, 0.396778147461, 0.892208732594},
                        Case{382, 500, 0.724855643708, 0.799118704528}, Case{500, 500, 0.992375659538, 1.0}}) {
    const Interval w = wilson_interval(c.k, c.n, kZ95);
    EXPECT_NEAR(w.low, c.low, 1e-11) << c.k << "/" << c.n;
    EXPECT_NEAR(w.high, c.high, 1e-11) << c.k << "/" << c.n;
  }
}

// With a 2x2 table whose correlation is 0 (both x neither == only_a x only_b), method 10 is Newcombe's interval
// for independent proportions (his method 10 of the 1998 independent-samples paper).
TEST(Paired, UncorrelatedTableIsTheIndependentNewcombeInterval) {
  std::vector<bool> a, b;
  make_table(40, 20, 10, 5, a, b);  // b right on 50 of 75, a on 60 of 75
  const PairedAccuracy r = paired_accuracy(a, b);
  EXPECT_NEAR(r.difference, -10.0 / 75, 1e-15);
  EXPECT_NEAR(r.interval.low, -0.268467838499, 1e-11);
  EXPECT_NEAR(r.interval.high, 0.008454395445, 1e-11);
}

TEST(Paired, ExactMcNemarEqualsStatsmodels) {
  struct Case {
    int only_a, only_b;
    double p;
  };
  std::vector<bool> a, b;
  for (const Case& c : {Case{0, 5, 0.0625}, Case{1, 9, 0.021484375}, Case{12, 8, 0.503444671631}, Case{20, 20, 1.0},
                        Case{3, 0, 0.25}, Case{0, 0, 1.0}}) {
    make_table(100, c.only_a, c.only_b, 50, a, b);
    const PairedAccuracy r = paired_accuracy(a, b);
    EXPECT_NEAR(r.p_value, c.p, 1e-11) << c.only_a << " vs " << c.only_b;
    EXPECT_EQ(r.only_a, c.only_a);
    EXPECT_EQ(r.only_b, c.only_b);
    EXPECT_EQ(r.images, 150 + c.only_a + c.only_b);
  }
}

// Swapping the two runs mirrors the difference and its interval.
TEST(Paired, SwappingTheRunsMirrorsTheInterval) {
  std::vector<bool> a, b;
  make_table(370, 12, 8, 110, a, b);
  const PairedAccuracy ab = paired_accuracy(a, b), ba = paired_accuracy(b, a);
  EXPECT_NEAR(ab.difference, -ba.difference, 1e-15);
  EXPECT_NEAR(ab.interval.low, -ba.interval.high, 1e-14);
  EXPECT_NEAR(ab.interval.high, -ba.interval.low, 1e-14);
  EXPECT_EQ(ab.p_value, ba.p_value);
  EXPECT_LT(ab.interval.low, ab.difference);
  EXPECT_GT(ab.interval.high, ab.difference);
}

// Simulated pairs like fp32 vs bf16 on 500 images (77% right, 4% and 3% discordant): the 95% interval covers
// the true difference in 93-97% of 4,000 samples (Newcombe reports method 10 close to nominal), and the exact
// McNemar test at 5% rejects a true null in at most 6% (it is conservative: expect ~4%).
TEST(Paired, CoverageAndLevelBySimulation) {
  std::mt19937_64 rng(20261206);
  auto simulate = [&](double p_only_a, double p_only_b, int trials, int& covered, int& rejected) {
    const double truth = p_only_b - p_only_a;
    std::discrete_distribution<int> cell({0.73, p_only_a, p_only_b, 0.27 - p_only_a - p_only_b});
    covered = rejected = 0;
    std::vector<bool> a(500), b(500);
    for (int t = 0; t < trials; ++t) {
      for (size_t i = 0; i < a.size(); ++i) {
        const int c = cell(rng);
        a[i] = c == 0 || c == 1;
        b[i] = c == 0 || c == 2;
      }
      const PairedAccuracy r = paired_accuracy(a, b);
      covered += r.interval.low <= truth && truth <= r.interval.high;
      rejected += r.p_value < 0.05;
    }
    std::printf("true difference %+.3f: interval covered it in %d of %d, McNemar p < 0.05 in %d\n", truth, covered,
                trials, rejected);
  };
  int covered = 0, rejected = 0;
  simulate(0.04, 0.03, 4000, covered, rejected);
  EXPECT_GE(covered, 0.93 * 4000);
  EXPECT_LE(covered, 0.97 * 4000);
  simulate(0.035, 0.035, 4000, covered, rejected);
  EXPECT_GE(covered, 0.93 * 4000);
  EXPECT_LE(covered, 0.97 * 4000);
  EXPECT_LE(rejected, 0.06 * 4000);
  EXPECT_GE(rejected, 0.01 * 4000);
}

TEST(Paired, UnequalRunsAreAnError) { EXPECT_THROW(paired_accuracy({true, false}, {true}), std::exception); }

// eval's paired block: against the first row, or the row --paired-against names (in any spelling of its spec); the
// difference in points is the two rows' top-1 difference in the table above it.
TEST(PairedCli, EvalPrintsEachMethodAgainstTheReferenceRow) {
  const std::string cmd = test::cli_path() +
                          " eval --model deit_tiny_patch16_224 --images ../shared/data/imagenet-sample --limit 16"
                          " --method tome:r=16 --method none";
  const auto first = test::run_command(cmd);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("\ntop-1 against tome:r=16 (ref), paired on the same 16 labelled images"), std::string::npos)
      << first.out;
  const auto named = test::run_command(cmd + " --paired-against none");
  ASSERT_EQ(named.exit_code, 0) << named.err;
  EXPECT_NE(named.out.find("\ntop-1 against none (ref)"), std::string::npos) << named.out;
  const auto spelled = test::run_command(cmd + " --paired-against tome:r=16,prop_attn=1");  // ToMe's default
  EXPECT_NE(spelled.out.find("\ntop-1 against tome:r=16 (ref)"), std::string::npos) << spelled.out;
  // Rows: "<spec> <top-1>% ..." in the table, "<spec> <difference> [lo, hi] p only-ref only-this" below it.
  auto field = [](const std::string& out, const std::string& spec, size_t from) {
    const size_t at = out.find("\n" + spec + " ", from);
    std::istringstream line(out.substr(at + 1, out.find('\n', at + 1) - at - 1));
    std::string name, value;
    line >> name >> value;
    return std::stod(value);
  };
  const size_t paired_at = named.out.find("top-1 against");
  const double tome = field(named.out, "tome:r=16", 0), none = field(named.out, "none", 0);
  // One image is 6.25 points of 16: the table prints 2 decimals, the paired block 1.
  EXPECT_NEAR(field(named.out, "tome:r=16", paired_at), tome - none, 0.051) << named.out;
  EXPECT_NEAR(field(first.out, "none", first.out.find("top-1 against")), none - tome, 0.051) << first.out;

  for (const std::string& bad : {" --paired-against pitome:ratio=0.9", " --paired-against tome:q=1"}) {
    const auto r = test::run_command(cmd + bad);
    EXPECT_EQ(r.exit_code, 1) << bad;
    EXPECT_NE(r.err.find("--paired-against"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "not one line: " << r.err;
  }
}

}  // namespace
}  // namespace ms
